/**
 * Boards among three in-process member nodes (memory transport): a coordinator creates work, two
 * implementers on other nodes claim, progress and complete it, a validator reads and cannot write;
 * every replica folds the same items and the journal lists the same operations in the same HLC
 * order; concurrent claims from three nodes end with one assignee everywhere and the losers told;
 * LOCAL boards stay on their node; a retiring agent hands its work on; the items of an assignee
 * whose node is gone are released and finished by another.
 */
import assert from 'node:assert/strict'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { InboundMessage } from '../../src/actor/directory.ts'
import type { AgentDefinition } from '../../src/actor/agents.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Board, WorkItem } from '../../src/work/types.ts'
import type { Key } from '../spki/fixtures.ts'

async function rejects(promise: Promise<unknown>, name: string): Promise<Error> {
  let caught: Error | undefined
  await assert.rejects(promise, (err: Error) => {
    assert.equal(err.name, name, `${err.name}: ${err.message}`)
    caught = err
    return true
  })
  return caught as Error
}

/** Messages each agent of kind `idle` was sent, by principal. */
const inboxes = new Map<PrincipalId, InboundMessage[]>()
const idle: AgentDefinition = {
  behaviour: agent => ({
    handle: message => {
      const box = inboxes.get(agent.principal) ?? []
      box.push(message)
      inboxes.set(agent.principal, box)
      return null
    }
  })
}

const BOARD = 'release'

describe('work boards across member nodes', function () {
  this.timeout(180_000)
  const nodes: CyberspaceNode[] = []
  let root: Key
  const signers = new Map<string, Signer>()
  const as = (name: string): { as: Signer } => ({ as: signers.get(name) as Signer })
  const principal = (name: string): PrincipalId => signers.get(name)?.principal as PrincipalId
  let boards: Board[] = []

  async function grantAll(who: PrincipalId, tagText: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal: who }, tagText, { propagate: false })
    for (const n of nodes) await n.spki.addAll({ certs: [cert], crls: [] })
  }

  /** Spawns a local `idle` agent named `name` on node `i`. */
  async function agent(i: number, name: string): Promise<PrincipalId> {
    const info = await nodes[i].agents.spawn('idle', { id: name, key: 'local' })
    signers.set(name, nodes[i].agents.agent(info.principal)?.signer as Signer)
    return info.principal
  }

  const converged = (item: string, test: (x: WorkItem | undefined) => boolean): Promise<void> =>
    waitUntil(`every replica to agree on ${item}`, () => boards.every(b => test(b.item(item))), 60_000)

  before(async () => {
    const options = {
      membershipOptions: { probeInterval: 300, probeTimeout: 150 },
      stateOptions: { syncInterval: 1000 },
      workOptions: { fleet: { interval: 500 } }
    }
    nodes.push(await memoryNode(options))
    const at = [nodes[0].multiaddrs()[0]]
    for (let i = 1; i < 3; i++) nodes.push(await memoryNode({ ...options, bootstrap: at }))
    await waitUntil('every node connected to the first', () => nodes[0].peers().length === 2)
    root = await key()
    for (const n of nodes) await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
    for (const n of nodes) await grantAll(principalFromPeerId(n.peerId), '(cyberspace (* set member (agent)))')
    for (const n of nodes) n.agents.define('idle', idle)
    await waitUntil('three alive members everywhere', () =>
      nodes.every(n => n.membership.members().filter(m => m.state === 'alive').length === 3)
    )
    await agent(0, 'coordinator')
    await agent(0, 'validator')
    await agent(1, 'impl-1')
    await agent(2, 'impl-2')
    // the coordinator holds the whole board; implementers the work on tasks; the validator reads
    await grantAll(principal('coordinator'), `(cyberspace (work ${BOARD}))`)
    for (const name of ['impl-1', 'impl-2'])
      await grantAll(
        principal(name),
        `(cyberspace (work ${BOARD} (* set claim release progress complete fail handoff read) task))`
      )
    await grantAll(principal('validator'), `(cyberspace (work ${BOARD} read))`)
    boards = await Promise.all(nodes.map(async n => await n.work.board(BOARD)))
  })

  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it('a coordinator creates a goal and dependent tasks; implementers on other nodes claim, progress and complete them; every replica agrees', async () => {
    const [a, b, c] = boards
    await a.create({ item: 'goal', kind: 'goal', title: 'ship 1.0' }, as('coordinator'))
    await a.create({ item: 't1', parent: 'goal', kind: 'task', title: 'tests' }, as('coordinator'))
    await a.create({ item: 't2', parent: 'goal', kind: 'task', title: 'docs', deps: ['t1'] }, as('coordinator'))
    assert.equal(a.item('t2')?.path, 'goal/t2')
    await converged('t2', x => x != null)
    // t2 waits for t1
    await rejects(b.claim('t2', as('impl-1')), 'ItemNotReadyError')
    assert.deepEqual((await b.claim('t1', as('impl-1'))).accepted, true)
    await converged('t1', x => x?.assignee === principal('impl-1'))
    await rejects(c.claim('t1', as('impl-2')), 'ItemAlreadyClaimedError')
    await rejects(c.progress('t1', { percent: 10 }, as('impl-2')), 'NotAssigneeError')
    await b.progress('t1', { percent: 50, message: 'half' }, as('impl-1'))
    await b.complete('t1', { result: { ok: true } }, as('impl-1'))
    await converged('t2', x => x?.ready === true)
    await c.claim('t2', as('impl-2'))
    await c.complete('t2', {}, as('impl-2'))
    await converged('t2', x => x?.status === 'completed')
    for (const board of boards) {
      const t1 = board.item('t1') as WorkItem
      assert.equal(t1.status, 'completed')
      assert.deepEqual(t1.result, { ok: true })
      assert.deepEqual(
        t1.history.map(h => h.op),
        ['create', 'claim', 'progress', 'complete']
      )
    }
    // the journal of every node lists the same board operations in the same order, once they have settled
    await Promise.all(nodes.map(async n => await n.work.events.settled()))
    const ops = nodes.map(n =>
      n.work.events
        .since(undefined, { limit: 1000 })
        .events.filter(e => e.source === 'board' && e.type !== 'refused' && e.type !== 'reinstated')
        .map(e => `${e.type} ${e.subject}`)
    )
    assert.deepEqual(ops[1], ops[0])
    assert.deepEqual(ops[2], ops[0])
    assert.ok(ops[0].length >= 8, ops[0].join('\n'))
  })

  it('a validator reads and cannot write; an implementer cannot act beyond its tasks', async () => {
    const [a, b] = boards
    const read = (await a.read({ as: principal('validator') })).items
    assert.deepEqual(read.map(i => i.id).sort(), ['goal', 't1', 't2'])
    await rejects(a.create({ item: 'v1', kind: 'task', title: 'sneaky' }, as('validator')), 'WorkUnauthorizedError')
    await rejects(a.cancel('t2', as('validator')), 'WorkUnauthorizedError')
    // implementers may not create, and their rights cover tasks only
    await rejects(b.create({ item: 'i1', kind: 'task', title: 'mine' }, as('impl-1')), 'WorkUnauthorizedError')
    await a.create({ item: 'g2', kind: 'goal', title: 'another goal' }, as('coordinator'))
    await converged('g2', x => x != null)
    await rejects(b.claim('g2', as('impl-1')), 'WorkUnauthorizedError')
    // an implementer reads tasks only
    const theirs = (await b.read({ as: principal('impl-1') })).items
    assert.ok(theirs.every(i => i.kind === 'task'))
    assert.equal(b.item('g2')?.status, 'submitted')
  })

  it('concurrent claims of one item from three nodes: one assignee on every replica, the losers told', async () => {
    const claimers = ['coordinator', 'impl-1', 'impl-2']
    await boards[0].create({ item: 'hot', kind: 'task', title: 'everyone wants it' }, as('coordinator'))
    await converged('hot', x => x != null)
    const outcomes = await Promise.allSettled(claimers.map(async (name, i) => await boards[i].claim('hot', as(name))))
    const accepted = outcomes.filter(o => o.status === 'fulfilled' && o.value.accepted)
    assert.ok(accepted.length >= 1)
    await converged('hot', x => x?.assignee != null && boards.every(b => b.item('hot')?.assignee === x.assignee))
    const winner = boards[0].item('hot')?.assignee as PrincipalId
    assert.ok(claimers.map(principal).includes(winner))
    // a loser whose claim was written learns it: refused on every replica, and a work.lost message
    const losers = claimers.filter((name, i) => {
      const o = outcomes[i]
      return principal(name) !== winner && o.status === 'fulfilled' && o.value.accepted
    })
    for (const name of losers) {
      await waitUntil(`${name} to be told it lost`, () =>
        (inboxes.get(principal(name)) ?? []).some(
          m => m.type === 'work.lost' && (m.body as { item: string }).item === 'hot'
        )
      )
    }
  })

  it('a LOCAL board stays on its node; a board keeps its mode; STRONG says what it needs', async () => {
    const local = await nodes[0].work.board('scratch', { mode: 'local' })
    await grantAll(principal('coordinator'), '(cyberspace (work scratch))')
    await local.create({ item: 'x', kind: 'task', title: 'only here' }, as('coordinator'))
    const elsewhere = await nodes[1].work.board('scratch', { mode: 'local' })
    assert.equal(elsewhere.item('x'), undefined)
    await rejects(nodes[0].work.board('scratch'), 'BoardModeMismatchError')
    await rejects(nodes[0].work.board('ordered', { mode: 'strong' }), 'StrongModeUnavailableError')
  })

  it('a directed swarm message reaches the named agent checked and decoded; a forged one never reaches it', async () => {
    await grantAll(principal('coordinator'), '(cyberspace (* set (mailbox (send)) (swarm handoff)))')
    const before = (inboxes.get(principal('impl-1')) ?? []).length
    await nodes[0].work.swarm.publish(
      { type: 'handoff', body: { board: BOARD, item: 't1', state: { step: 3 } } },
      { ...as('coordinator'), to: principal('impl-1') }
    )
    await waitUntil('impl-1 to get the handoff', () => (inboxes.get(principal('impl-1')) ?? []).length > before)
    const got = (inboxes.get(principal('impl-1')) ?? []).at(-1) as InboundMessage
    assert.equal(got.type, 'swarm.handoff')
    const message = got.body as { type: string; from: string; body: { item: string; state: unknown } }
    assert.equal(message.type, 'handoff')
    assert.equal(message.from, principal('coordinator'))
    assert.deepEqual(message.body.state, { step: 3 })
    // the same type through the mailbox with bytes that are no swarm message: refused, never handed over
    const refused = await rejects(
      nodes[0].agents.send(principal('coordinator'), principal('impl-1'), 'swarm.handoff', new Uint8Array([1, 2, 3])),
      'HandlerFailedError'
    )
    assert.match(refused.message, /InvalidSwarmMessageError/)
    assert.equal((inboxes.get(principal('impl-1')) ?? []).length, before + 1)
  })

  it('work.lost comes only from an agent to itself (its node), and the scaling document takes only scaling entries', async () => {
    const forged = await rejects(
      nodes[0].agents.send(principal('coordinator'), principal('impl-1'), 'work.lost', { board: BOARD, item: 't1' }),
      'HandlerFailedError'
    )
    assert.match(forged.message, /WorkUnauthorizedError/)
    const scaling = await nodes[0].state.open('cyberspace.scaling', 'op-log')
    await rejects(scaling.append([{ junk: 'x'.repeat(100) }]), 'UnauthorizedEventError')
    assert.equal(scaling.size, 0)
  })

  it('a retiring agent hands its item to another agent of its kind and stops', async () => {
    await boards[0].create({ item: 'r1', kind: 'task', title: 'to hand on' }, as('coordinator'))
    await converged('r1', x => x != null)
    await boards[1].claim('r1', as('impl-1'))
    await converged('r1', x => x?.assignee === principal('impl-1'))
    await waitUntil('node 1 to see impl-2 in the fleet', () =>
      nodes[1].work.fleet.rows('idle').some(r => r.agent === principal('impl-2') && !r.stale)
    )
    const retired = await nodes[1].work.retire(principal('impl-1'))
    // r1, and `hot` if impl-1 won it
    assert.ok(retired.handedOff >= 1 && retired.released === 0, JSON.stringify(retired))
    assert.equal(nodes[1].agents.get(principal('impl-1')), undefined)
    await converged('r1', x => x?.assignee !== principal('impl-1'))
    const heir = boards[0].item('r1')?.assignee as PrincipalId
    assert.ok(heir != null && heir !== principal('impl-1'))
    assert.equal(boards[0].item('r1')?.status, 'working')
  })

  it('the items of an assignee whose node is gone are released by the coordinator and finished by another', async () => {
    const controller = new AbortController()
    boards[0].watchAssignees({ ...as('coordinator'), signal: controller.signal, interval: 200 })
    try {
      await boards[0].create({ item: 'k1', kind: 'task', title: 'outlives its first implementer' }, as('coordinator'))
      await converged('k1', x => x != null)
      await boards[2].claim('k1', as('impl-2'))
      await converged('k1', x => x?.assignee === principal('impl-2'))
      await nodes[2].stop()
      boards = boards.slice(0, 2)
      await waitUntil('the coordinator to release k1', () => boards[0].item('k1')?.status === 'submitted', 60_000)
      assert.equal(boards[0].item('k1')?.assignee, undefined)
      await converged('k1', x => x?.status === 'submitted')
      await boards[0].claim('k1', as('coordinator'))
      await boards[0].complete('k1', {}, as('coordinator'))
      await converged('k1', x => x?.status === 'completed')
    } finally {
      controller.abort()
    }
  })
})
