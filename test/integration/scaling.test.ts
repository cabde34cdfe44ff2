/**
 * Elastic scaling among three in-process member nodes (memory transport), each running the work
 * service of the node — the fleet (heartbeats every 400 ms, whose load the test sets through
 * `work.report`), and the scaling loop over the replicated document `cyberspace.scaling`: load
 * pushed above target on two members that decide at once ends with exactly one replica (two
 * decisions written, one carried out, the other undone by its target, which says so in the document
 * and in every member's event journal); when load drops, the idle replica retires (through
 * `work.retire`) and the original agent stays.
 */
import { strict as assert } from 'node:assert'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { fleetView } from '../../src/work/scaling.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { sleep, waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { SettledDecision } from '../../src/work/scaling.ts'

const KIND = 'w'
const SUSTAIN = 1500

describe('scaling: load above target spawns one replica, idle replicas retire (three member nodes)', function () {
  this.timeout(180_000)
  const nodes: CyberspaceNode[] = []
  let original: PrincipalId
  let replica: PrincipalId

  /** Agents of the kind running on any node. */
  const running = (): Array<{ node: number; principal: PrincipalId; id: string }> =>
    nodes.flatMap((n, i) =>
      n.agents
        .list()
        .filter(a => a.kind === KIND && a.status === 'running')
        .map(a => ({ node: i, principal: a.principal, id: a.id }))
    )

  /** Every agent of the kind reports `load` for its next heartbeats. */
  function setLoad(load: number): void {
    for (const n of nodes) for (const a of n.agents.list()) if (a.kind === KIND) n.work.report(a.principal, { load })
  }

  const fleetRows = (n: CyberspaceNode): ReturnType<ReturnType<typeof fleetView>['rows']> =>
    fleetView(n.work.fleet).rows()

  before(async () => {
    const options = {
      membershipOptions: { probeInterval: 300, probeTimeout: 150 },
      stateOptions: { syncInterval: 1000 },
      workOptions: {
        fleet: { interval: 400 },
        // the test makes the passes (the timer's would come every hour), so two members decide at the same moment
        scaling: {
          policies: [{ kind: KIND, min: 1, max: 3, target: 0.8, sustain: SUSTAIN }],
          interval: 3_600_000,
          settle: 500
        }
      }
    }
    nodes.push(await memoryNode(options))
    const at = [nodes[0].multiaddrs()[0]]
    for (let i = 1; i < 3; i++) nodes.push(await memoryNode({ ...options, bootstrap: at }))
    await waitUntil('every node connected to the first', () => nodes[0].peers().length === 2)
    const root = await key()
    for (const n of nodes) await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
    for (const n of nodes) {
      const cert = await grant(root, { kind: 'key', principal: principalFromPeerId(n.peerId) }, '(cyberspace member)', {
        propagate: false
      })
      for (const m of nodes) await m.spki.addAll({ certs: [cert], crls: [] })
    }
    for (const n of nodes)
      n.agents.define(KIND, {
        description: 'a worker whose load the test sets',
        behaviour: () => ({ handle: () => null })
      })
    await waitUntil('every node sees three alive members offering the kind', () =>
      nodes.every(
        n =>
          n.membership.members().filter(m => m.state === 'alive' && (m.meta.kinds ?? '').split(',').includes(KIND))
            .length === 3
      )
    )
  })

  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it('two members deciding at once on load above target: exactly one replica results, and the loser says so', async () => {
    original = (await nodes[0].agents.spawn(KIND, { id: 'w-0', key: 'local' })).principal
    setLoad(1)
    await waitUntil('every fleet to show the original busy', () =>
      nodes.every(n => fleetRows(n).some(r => r.agent === original && r.load === 1))
    )
    // A and B start their clocks, and decide once the load has stayed above target for sustain
    assert.deepEqual(await nodes[0].work.scaling.tick(), [])
    assert.deepEqual(await nodes[1].work.scaling.tick(), [])
    await sleep(SUSTAIN + 100)
    const [fromA, fromB] = await Promise.all([nodes[0].work.scaling.tick(), nodes[1].work.scaling.tick()])
    assert.equal(fromA.length, 1)
    assert.equal(fromB.length, 1)
    assert.equal(fromA[0].slot, `grow:${KIND}:1`)
    assert.equal(fromB[0].slot, fromA[0].slot)
    assert.equal(fromB[0].gen, fromA[0].gen)
    assert.notEqual(fromA[0].id, fromB[0].id)
    const ids = new Set([fromA[0].id, fromB[0].id])

    const settled = (i: number): SettledDecision[] =>
      nodes[i].work.scaling.decisions().filter(d => ids.has(d.decision.id))
    await waitUntil(
      'every member to see one decision done and the other undone',
      () =>
        nodes.every((_, i) => {
          const s = settled(i)
            .map(d => d.status)
            .sort()
          return s.length === 2 && s[0] === 'done' && s[1] === 'undone'
        }),
      60_000,
      100
    )
    const winner = settled(0).find(d => d.status === 'done')
    const loser = settled(0).find(d => d.status === 'undone')
    assert.ok(winner != null && loser != null)
    // the earlier by (HLC, actor) won, and every member names it as the winner
    const earlier = [...settled(0)].sort((x, y) =>
      x.hlc[0] !== y.hlc[0]
        ? x.hlc[0] - y.hlc[0]
        : x.hlc[1] !== y.hlc[1]
          ? x.hlc[1] - y.hlc[1]
          : x.actor < y.actor
            ? -1
            : 1
    )[0]
    assert.equal(winner.decision.id, earlier.decision.id)
    for (let i = 0; i < 3; i++) assert.equal(settled(i).find(d => d.status === 'undone')?.winner, winner.decision.id)
    assert.ok(winner.agent != null)
    replica = winner.agent

    // one replica: the original and the winner's agent, nothing for the loser's id
    await waitUntil('the replica to run', () => running().some(a => a.principal === replica))
    assert.deepEqual(
      running()
        .map(a => a.id)
        .sort(),
      [winner.decision.id, 'w-0'].sort()
    )
    assert.ok(!running().some(a => a.id === loser.decision.id))
    // the loser said so, in every member's journal (once what it holds has settled)
    await Promise.all(nodes.map(async n => await n.work.events.settled()))
    for (const [i, n] of nodes.entries()) {
      const events = n.work.events.since(undefined, { limit: 1000 }).events.filter(e => e.type.startsWith('scaling.'))
      assert.ok(
        events.some(e => e.type === 'scaling.undo' && (e.data as { id?: string }).id === loser.decision.id),
        `node ${i} journal has the undo`
      )
      assert.equal(events.filter(e => e.type === 'scaling.spawn').length, 2, `node ${i} journal has both decisions`)
    }
    // the change under way holds every member's loop: passes meanwhile decide nothing more
    for (let pass = 0; pass < 3; pass++) for (const n of nodes) assert.deepEqual(await n.work.scaling.tick(), [])
    assert.equal(running().length, 2)
  })

  it('load drops below idleBelow: the idle replica retires, the original stays', async () => {
    setLoad(0.1)
    await waitUntil(
      'every fleet to show both agents idle',
      () =>
        nodes.every(n => {
          const rows = fleetRows(n)
          return [original, replica].every(p => rows.some(r => r.agent === p && r.load === 0.1))
        }),
      30_000,
      100
    )
    assert.deepEqual(await nodes[2].work.scaling.tick(), [])
    await sleep(SUSTAIN + 100)
    const decided = await nodes[2].work.scaling.tick()
    assert.equal(decided.length, 1)
    const retire = decided[0]
    assert.ok(retire.decision === 'retire')
    assert.equal(retire.agent, replica, 'the replica scaling spawned, not the original')
    assert.equal(retire.slot, `shrink:${KIND}:2`)
    const host = running().find(a => a.principal === replica)?.node
    assert.ok(host != null)
    assert.equal(retire.target, nodes[host].peerId.toString())
    await waitUntil('the replica to be gone', () => !running().some(a => a.principal === replica), 30_000, 100)
    await waitUntil(
      'every member to see the retire done',
      () => nodes.every(n => n.work.scaling.decisions().find(d => d.decision.id === retire.id)?.status === 'done'),
      30_000,
      100
    )
    assert.deepEqual(
      running().map(a => a.principal),
      [original]
    )
    // at min: however long the load stays low, the original does not retire
    await waitUntil(
      'every fleet to drop the retired replica',
      () => nodes.every(n => !fleetRows(n).some(r => r.agent === replica)),
      30_000,
      100
    )
    await nodes[2].work.scaling.tick()
    await sleep(SUSTAIN + 100)
    assert.deepEqual(await nodes[2].work.scaling.tick(), [])
    assert.deepEqual(
      running().map(a => a.principal),
      [original]
    )
  })
})
