/**
 * Coordination among three node processes on 127.0.0.1: a coordinator agent (on A) creates a goal
 * with 10 dependent tasks; implementer agents on B and C — behaviours that act by themselves —
 * claim the ready ones, report progress and complete them; a validator with read-only rights reads
 * and cannot write; every process ends with the same items and lists the board's operations in the
 * same HLC order. 50 agents on the three processes claim one item at once: the losers are told, and
 * every replica converges to one assignee. kill -9 of the process of an implementer mid-task: the
 * coordinator releases its item and the other implementer finishes it.
 */
import { strict as assert } from 'node:assert'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { peerIdFromString } from '@libp2p/peer-id'
import { TOKEN_FILE } from '../../node/data-dir.ts'
import { Client } from '../../src/api/client.ts'
import { compareHlc } from '../../src/clock/hlc.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { spawnNode, stopNodes, waitUntil } from '../helpers/processes.ts'
import { grant, key } from '../spki/fixtures.ts'
import { BOARD } from '../work/fixtures/work-kinds.ts'
import type { ItemPage, WorkItemView, WorkOpResult } from '../../node/api/work-routes.ts'
import type { Event as EventSchema } from '../../src/api/schema.ts'
import type * as z from 'zod'
import type { AgentInfo } from '../../src/actor/agents.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { Key } from '../spki/fixtures.ts'

type Event = z.output<typeof EventSchema>

const KINDS = fileURLToPath(new URL('../work/fixtures/work-kinds.ts', import.meta.url))
const ARGS = ['--kind', KINDS, '--kind', 'echo', '--heartbeat-interval', '1000']
const principalOf = (node: NodeProcess): PrincipalId => principalFromPeerId(peerIdFromString(node.peerId))
const TASKS = 10
const IMPLEMENTER_RIGHTS = `(cyberspace (work ${BOARD} (* set claim release progress complete fail handoff read) task))`

describe('work: coordination across three node processes', function () {
  this.timeout(400_000)
  let nodes: NodeProcess[] = []
  let root: Key
  const agents = new Map<string, { principal: PrincipalId; node: NodeProcess }>()
  const principal = (name: string): PrincipalId => agents.get(name)?.principal as PrincipalId

  const live = (): NodeProcess[] => nodes.filter(n => n.proc.exitCode == null && n.proc.signalCode == null)

  async function grantAll(who: PrincipalId, tagText: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal: who }, tagText, { propagate: false })
    const sexp = toAdvanced(signedCertToSexp(cert))
    for (const n of live()) await n.api.post('spki/import', { sexp })
  }

  async function spawnAgent(node: NodeProcess, kind: string, id: string): Promise<PrincipalId> {
    const info = await node.api.post<AgentInfo>('agents', { kind, id, key: 'local' })
    agents.set(id, { principal: info.principal, node })
    return info.principal
  }

  async function op(name: string, body: Record<string, unknown>, via?: NodeProcess): Promise<WorkOpResult> {
    const who = agents.get(name)
    assert.ok(who != null, name)
    return await (via ?? who.node).api.post<WorkOpResult>('work/op', { board: BOARD, as: who.principal, op: body })
  }

  async function items(node: NodeProcess, query: Record<string, string> = {}): Promise<WorkItemView[]> {
    return (await node.api.get<ItemPage>('work/items', { board: BOARD, limit: '500', ...query })).items
  }

  async function item(node: NodeProcess, id: string): Promise<WorkItemView | undefined> {
    try {
      return await node.api.get<WorkItemView>('work/item', { board: BOARD, item: id })
    } catch {
      return undefined
    }
  }

  /** Every event in the journal of `node`, in its feed's order, read through the public API as its operator. */
  async function journalOf(node: NodeProcess): Promise<Event[]> {
    const token = (await readFile(join(node.dataDir, TOKEN_FILE), 'utf8')).trim()
    const client = new Client({ url: node.api.url, token })
    const out: Event[] = []
    let after: string | undefined
    for (let page = 0; page < 50; page++) {
      const got = await client.events({ limit: 1000, ...(after != null ? { after } : {}) })
      out.push(...got.events)
      if (!got.more || got.cursor == null) break
      after = got.cursor
    }
    return out
  }

  /** The board's operations in the journal of `node`, in its feed's order (refusals are each replica's own). */
  async function boardEvents(node: NodeProcess): Promise<Event[]> {
    return (await journalOf(node)).filter(e => e.source === 'board' && e.type !== 'refused' && e.type !== 'reinstated')
  }

  before(async () => {
    root = await key()
    const env = { CYBERSPACE_TEST_WORK_MS: '2000' }
    const a = await spawnNode({ extraArgs: ARGS, env })
    nodes = [
      a,
      ...(await Promise.all([1, 2].map(async () => await spawnNode({ bootstrap: [a.tcpAddr], extraArgs: ARGS, env }))))
    ]
    await waitUntil('A connected to B and C', async () => (await a.api.get<unknown[]>('peers')).length === 2, 60_000)
    for (const n of nodes) await n.api.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
    for (const n of nodes) await grantAll(principalOf(n), '(cyberspace (* set member (agent)))')
    await waitUntil(
      'three alive members everywhere',
      async () =>
        (
          await Promise.all(nodes.map(async n => await n.api.get<{ members: Array<{ state: string }> }>('members')))
        ).every(v => v.members.filter(m => m.state === 'alive').length === 3),
      90_000,
      500
    )
    const [nodeA, nodeB, nodeC] = nodes
    await spawnAgent(nodeA, 'coordinator', 'coordinator')
    await spawnAgent(nodeA, 'echo', 'validator')
    await grantAll(principal('coordinator'), `(cyberspace (work ${BOARD}))`)
    await grantAll(principal('validator'), `(cyberspace (work ${BOARD} read))`)
    // the implementers look for work at once: until their grants arrive, their claims are refused
    for (const [node, id] of [
      [nodeB, 'impl-b'],
      [nodeC, 'impl-c']
    ] as const) {
      await spawnAgent(node, 'implementer', id)
      await grantAll(principal(id), IMPLEMENTER_RIGHTS)
    }
  })

  after(async () => {
    await stopNodes(nodes)
  })

  it('a coordinator creates a goal and 10 dependent tasks; implementers on B and C finish them all; a validator reads and cannot write; every process agrees, in one HLC order', async () => {
    await op('coordinator', { op: 'create', item: 'goal', kind: 'goal', title: 'ship it' })
    for (let i = 1; i <= TASKS; i++) {
      // t1, t2 start free; each later task waits for the one two before it
      const deps = i > 2 ? [`t${i - 2}`] : []
      await op('coordinator', { op: 'create', item: `t${i}`, parent: 'goal', kind: 'task', title: `task ${i}`, deps })
    }
    // the validator reads, and may not write
    const read = await nodes[0].api.get<ItemPage>('work/items', {
      board: BOARD,
      as: principal('validator'),
      limit: '100'
    })
    assert.equal(read.items.length, TASKS + 1)
    await assert.rejects(
      op('validator', { op: 'cancel', item: 't1' }),
      (err: Error & { errorName?: string; status?: number }) => {
        assert.equal(err.errorName, 'WorkUnauthorizedError')
        assert.equal(err.status, 403)
        return true
      }
    )
    await waitUntil(
      'every task completed on every process',
      async () => {
        for (const n of nodes) {
          const done = (await items(n, { kind: 'task', status: 'completed' })).length
          if (done !== TASKS) return false
        }
        return true
      },
      240_000,
      1000
    )
    const implementers = new Set([principal('impl-b'), principal('impl-c')])
    const views = await Promise.all(nodes.map(async n => await items(n, { kind: 'task' })))
    for (const task of views[0]) {
      assert.ok(implementers.has(task.assignee as PrincipalId), `${task.id} done by ${task.assignee}`)
      const ops = task.history.map(h => h.op)
      assert.equal(ops[0], 'create')
      assert.equal(ops.at(-1), 'complete')
      assert.ok(ops.includes('claim') && ops.includes('progress'), `${task.id}: ${ops.join(' ')}`)
      // a dependent task was claimed only after its dependency completed
      if (task.deps.length > 0) {
        const dep = views[0].find(t => t.id === task.deps[0]) as WorkItemView
        const claimedAt = task.history.find(h => h.op === 'claim')?.hlc as [number, number]
        const depDone = dep.history.find(h => h.op === 'complete')?.hlc as [number, number]
        assert.ok(claimedAt[0] > depDone[0] || (claimedAt[0] === depDone[0] && claimedAt[1] > depDone[1]), task.id)
      }
    }
    // no update lost: every process holds the same items, histories included
    const strip = (xs: WorkItemView[]): unknown => xs.map(x => ({ ...x, ready: undefined }))
    assert.deepEqual(strip(views[1]), strip(views[0]))
    assert.deepEqual(strip(views[2]), strip(views[0]))
    // and every journal holds the same operations, each in HLC order but for those it marks late
    // (reached it past the settle delay: they join its feed at the end, so feeds may differ there)
    const line = (e: Event): string => `${e.hlc.join('.')} ${e.type} ${e.subject}`
    const held = (j: Event[]): string[] => j.map(line).sort()
    let journals: Event[][] = []
    await waitUntil('the journals to hold every operation', async () => {
      journals = await Promise.all(nodes.map(boardEvents))
      return (
        journals[0].length >= 1 + TASKS * 4 &&
        journals.every(j => JSON.stringify(held(j)) === JSON.stringify(held(journals[0])))
      )
    }).catch(() => {})
    assert.deepEqual(held(journals[1]), held(journals[0]))
    assert.deepEqual(held(journals[2]), held(journals[0]))
    assert.ok(journals[0].length >= 1 + TASKS * 4, `${journals[0].length} board events`)
    for (const j of journals) {
      const inOrder = j.filter(e => e.late !== true)
      for (let k = 1; k < inOrder.length; k++)
        assert.ok(
          compareHlc(inOrder[k].hlc, inOrder[k - 1].hlc) >= 0,
          `${line(inOrder[k])} after ${line(inOrder[k - 1])}`
        )
    }
  })

  it('50 agents on three processes claim one item at once: the losers are told and every replica converges to one assignee', async () => {
    const claimers = Array.from({ length: 50 }, (_, i) => `claimer-${i}`)
    // each node spawns its third at once; then each gets its grant
    await Promise.all(
      nodes.map(async (node, n) => {
        for (const id of claimers.filter((_, i) => i % 3 === n)) await spawnAgent(node, 'echo', id)
      })
    )
    // of a kind the implementers leave alone
    await Promise.all(
      claimers.map(async id => await grantAll(principal(id), `(cyberspace (work ${BOARD} (* set claim read) contest))`))
    )
    await op('coordinator', { op: 'create', item: 'contested', kind: 'contest', title: 'everyone wants it' })
    await waitUntil('every process to hold the item', async () => {
      for (const n of nodes) if ((await item(n, 'contested')) == null) return false
      return true
    })
    const results = await Promise.allSettled(claimers.map(async id => await op(id, { op: 'claim', item: 'contested' })))
    const accepted = new Set<PrincipalId>()
    let refusedNow = 0
    for (const [i, r] of results.entries()) {
      if (r.status === 'fulfilled' && r.value.outcome.accepted) accepted.add(principal(claimers[i]))
      else if (r.status === 'rejected') {
        assert.equal((r.reason as { errorName?: string }).errorName, 'ItemAlreadyClaimedError', String(r.reason))
        refusedNow++
      } else refusedNow++
    }
    assert.ok(accepted.size >= 1)
    let assignee: PrincipalId | undefined
    await waitUntil(
      'one assignee on every replica',
      async () => {
        const seen = await Promise.all(nodes.map(async n => (await item(n, 'contested'))?.assignee))
        assignee = seen[0]
        return assignee != null && seen.every(s => s === assignee)
      },
      60_000,
      500
    )
    assert.ok(accepted.has(assignee as PrincipalId), 'the winner is one whose claim was written')
    // every claim that was written and lost is refused in every journal, naming a claim that beat it
    const losers = [...accepted].filter(p => p !== assignee)
    await waitUntil('every written loser refused on every process', async () => {
      for (const n of nodes) {
        const refused = (await journalOf(n)).filter(
          e => e.source === 'board' && e.type === 'refused' && e.subject === `${BOARD}/contested`
        )
        for (const loser of losers) {
          const told = refused.find(e => (e.data as { actor?: string }).actor === loser)
          if (told == null) return false
          // the winner as this replica saw it then: a claim written earlier than every other it knew of
          assert.ok(accepted.has((told.data as { winner?: string }).winner as PrincipalId))
        }
      }
      return true
    })
    assert.equal(refusedNow + accepted.size, 50)
  })

  it('kill -9 of the process of an implementer mid-task: the coordinator releases its item and the other finishes it', async () => {
    await op('coordinator', { op: 'create', item: 'k1', kind: 'task', title: 'outlives its first implementer' })
    let holder: { principal: PrincipalId; node: NodeProcess } | undefined
    // Both implementers may claim k1 at once; a replica can show the later claim until the earlier
    // one reaches it. Once every process shows the same assignee, the loser's own process has seen
    // the winning claim, so the holder can no longer change.
    await waitUntil(
      'every process to show the same implementer working on k1',
      async () => {
        const seen = await Promise.all(nodes.map(n => item(n, 'k1')))
        if (seen.some(k1 => k1?.status !== 'working' || k1.assignee !== seen[0]?.assignee)) return false
        holder = [...agents.values()].find(a => a.principal === seen[0]?.assignee)
        return holder != null
      },
      60_000,
      100
    )
    assert.ok(holder != null && holder.node !== nodes[0])
    const survivor = holder.principal === principal('impl-b') ? principal('impl-c') : principal('impl-b')
    holder.node.proc.kill('SIGKILL')
    await waitUntil(
      'k1 finished by the other implementer',
      async () => {
        for (const n of live()) {
          const k1 = await item(n, 'k1')
          if (k1?.status !== 'completed' || k1.assignee !== survivor) return false
        }
        return true
      },
      120_000,
      500
    )
    const k1 = (await item(nodes[0], 'k1')) as WorkItemView
    const ops = k1.history.map(h => `${h.op}${h.op === 'assign' ? ':' + (h.assignee ?? 'none') : ''}`)
    // claimed by the dead one, released by the coordinator, claimed and completed by the survivor
    assert.deepEqual(ops.filter(o => o === 'claim').length, 2, ops.join(' '))
    assert.ok(ops.includes('assign:none'), ops.join(' '))
    assert.equal(k1.history.find(h => h.op === 'assign')?.actor, principal('coordinator'))
  })
})
