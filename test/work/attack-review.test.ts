/**
 * An attacker's review of coordination (issue 15): what a hostile agent, member or API caller can make
 * a node do through boards, their replicated documents, the control API and the scaling decisions.
 *
 * Each test is labelled:
 * - DEFECT: fails on the code as reviewed; the report names the fix. Left failing on purpose.
 * - GUARD: a defence that holds, kept as a regression test.
 *
 * Board events are made here as a peer would make them — signed op-log events with chosen HLCs and
 * parents — and handed to a node's log as a join of blocks received (what sync does), so the node's
 * own rule for `work.` documents, its clock checks and its fold decide what becomes of them.
 */
import { strict as assert } from 'node:assert'
import { defaultLogger } from '@libp2p/logger'
import { apiClient } from '../../node/api/client.ts'
import { startApiServer } from '../../node/api/server.ts'
import { Hlc } from '../../src/clock/hlc.ts'
import { compareOpLogEntries, opLog } from '../../src/crdt/op-log.ts'
import { peerIdFromPrincipal, principalId } from '../../src/crypto/principal.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { signEvent } from '../../src/log/event.ts'
import { spkiTime, spkiTimeMs } from '../../src/spki/cert.ts'
import { createScaling, membersOf } from '../../src/work/scaling.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { Event } from '../../protocols/log/codec.ts'
import type { HostedAgentView } from '../../node/api/agent-routes.ts'
import type { ApiClient } from '../../node/api/client.ts'
import type { ApiServer } from '../../node/api/server.ts'
import type { WorkOpResult } from '../../node/api/work-routes.ts'
import type { HlcTimestamp } from '../../src/clock/hlc.ts'
import type { OpLogEntry } from '../../src/crdt/op-log.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { OpLogDocument } from '../../src/log/documents.ts'
import type { Block } from '../../src/log/event.ts'
import type { JoinResult } from '../../src/log/log.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { ScalingLog, ScalingRow } from '../../src/work/scaling.ts'
import type { BoardChange } from '../../src/work/types.ts'
import type { SignedCert, Validity } from '../../src/spki/cert.ts'
import type { Key } from '../spki/fixtures.ts'
import type { CID } from 'multiformats/cid'

/** A signed event of board document `work.<board>` appending `bodies` at `hlc` after `parents`. */
async function boardEvent(
  signer: Signer,
  board: string,
  hlc: HlcTimestamp,
  parents: CID[],
  bodies: unknown[]
): Promise<Block<Event>> {
  const delta = opLog.append(opLog.empty(), { replica: signer.principal, hlc }, bodies)
  return await signEvent(signer, { log: `work.${board}`, hlc, parents, ops: [opLog.encodeDelta(delta)] })
}

/** Hands `events` to the document's log as blocks a peer sent (what a sync does). */
async function deliver(doc: OpLogDocument, events: Array<Block<Event>>): Promise<JoinResult> {
  const blocks = new Map(events.map(e => [e.cid.toString(), e.bytes]))
  return await doc.log.join(
    events.map(e => e.cid),
    { blocks }
  )
}

/** An HLC after every entry the document holds and after the wall clock. */
function nextHlc(doc: OpLogDocument): HlcTimestamp {
  let wall = Date.now()
  for (const e of doc.entries()) wall = Math.max(wall, e.hlc[0] + 1)
  return [wall, 0]
}

async function rejects(promise: Promise<unknown>, name: string): Promise<Error> {
  let caught: Error | undefined
  await assert.rejects(promise, (err: Error) => {
    assert.equal(err.name, name, `${err.name}: ${err.message}`)
    caught = err
    return true
  })
  return caught as Error
}

describe('attack review of coordination (issue 15)', function () {
  this.timeout(60_000)
  let a: CyberspaceNode
  let b: CyberspaceNode
  let root: Key
  const signers = new Map<string, Signer>()
  const who = (name: string): Signer => signers.get(name) as Signer

  async function signer(name: string): Promise<Signer> {
    const s = await seedSigner((await key()).secret)
    signers.set(name, s)
    return s
  }

  async function grantOn(
    nodes: CyberspaceNode[],
    to: PrincipalId,
    text: string,
    validity?: Validity
  ): Promise<SignedCert> {
    const cert = await grant(root, { kind: 'key', principal: to }, text, { propagate: false, validity })
    for (const n of nodes) await n.spki.addAll({ certs: [cert], crls: [] })
    return cert
  }

  before(async () => {
    a = await memoryNode()
    b = await memoryNode()
    root = await key()
    for (const n of [a, b]) await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
    await signer('coord')
    await signer('worker')
    await signer('mallory')
  })

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()])
  })

  describe('boards: what a replica applies', () => {
    it('DEFECT: a replica receiving an event after its author’s grant expired applies it, and what was built on it, as a replica that received it in time did (no permanent split)', async () => {
      const board = 'split'
      await grantOn([a, b], who('coord').principal, `(cyberspace (work ${board}))`)
      // the implementer's chain is short-lived, as chains are by default
      const notAfter = spkiTime(Date.now() + 2000)
      await grantOn([a, b], who('worker').principal, `(cyberspace (work ${board} (* set claim complete read) task))`, {
        notBefore: spkiTime(Date.now() - 60_000),
        notAfter
      })
      const boardA = await a.work.board(board)
      const boardB = await b.work.board(board)
      const docA = await a.state.open(`work.${board}`, 'op-log')
      const docB = await b.state.open(`work.${board}`, 'op-log')
      const t0 = nextHlc(docA)
      const e1 = await boardEvent(
        who('coord'),
        board,
        t0,
        [],
        [{ op: 'create', item: 't1', kind: 'task', path: 't1', title: 'tests' }]
      )
      const e2 = await boardEvent(
        who('worker'),
        board,
        [t0[0], 1],
        [e1.cid],
        [{ op: 'claim', item: 't1', kind: 'task', path: 't1' }]
      )
      // A hears of both while the worker's chain is valid
      const atA = await deliver(docA, [e1, e2])
      assert.equal(atA.applied.length, 2, `A applies both: ${atA.rejected.map(r => r.error.message).join('; ')}`)
      assert.equal(boardA.item('t1')?.assignee, who('worker').principal)
      // the chain expires; the coordinator goes on writing, after the claim
      // (SPKI times have whole seconds: valid through the second notAfter names)
      await waitUntil('the worker’s chain to expire', () => Date.now() >= spkiTimeMs(notAfter) + 1050, 5000, 50)
      const e3 = await boardEvent(
        who('coord'),
        board,
        nextHlc(docA),
        [e2.cid],
        [{ op: 'create', item: 't2', kind: 'task', path: 't2', title: 'docs' }]
      )
      assert.equal((await deliver(docA, [e3])).applied.length, 1)
      assert.ok(boardA.item('t2') != null)
      // B was partitioned (or joined the cluster later): it receives the same three events now
      const atB = await deliver(docB, [e1, e2, e3])
      const view = (x: typeof boardA): unknown => ({
        t1: x.item('t1')?.assignee ?? null,
        t2: x.item('t2')?.status ?? null
      })
      assert.deepEqual(
        view(boardB),
        view(boardA),
        `B refused: ${atB.rejected.map(r => `${r.error.name}: ${r.error.message.slice(0, 120)}`).join(' | ')}`
      )
    })

    it('DEFECT: a create that names an assignee needs the assign right too (protocols/work/README.md) — through the service', async () => {
      const board = 'assign'
      await grantOn([a], who('mallory').principal, `(cyberspace (work ${board} (* set create read)))`)
      const boardA = await a.work.board(board)
      const victim = (await key()).id
      // mallory may create but not assign: it must not hold an item for anyone at creation
      await rejects(
        boardA.create({ item: 'held', kind: 'task', title: 'reserved', assignee: victim }, { as: who('mallory') }),
        'WorkUnauthorizedError'
      )
      assert.equal(boardA.item('held'), undefined)
    })

    it('DEFECT: a create that names an assignee needs the assign right too — on a replica receiving the event', async () => {
      const board = 'assign'
      const boardA = await a.work.board(board)
      const docA = await a.state.open(`work.${board}`, 'op-log')
      const victim = (await key()).id
      const e = await boardEvent(who('mallory'), board, nextHlc(docA), docA.heads(), [
        { op: 'create', item: 'held2', kind: 'task', path: 'held2', title: 'reserved', assignee: victim }
      ])
      const result = await deliver(docA, [e])
      assert.equal(result.applied.length, 0, 'the event is refused by the rule for work. documents')
      assert.equal(boardA.item('held2'), undefined)
    })

    it('DEFECT: an author signing two events at one HLC makes a replica report the operation replaced, not every change of the board a second time', async () => {
      const board = 'equiv'
      await grantOn([a], who('coord').principal, `(cyberspace (work ${board}))`)
      await grantOn([a], who('worker').principal, `(cyberspace (work ${board} (* set claim complete read) task))`)
      await grantOn([a], who('mallory').principal, `(cyberspace (work ${board} (* set update) task))`)
      const boardA = await a.work.board(board)
      const docA = await a.state.open(`work.${board}`, 'op-log')
      await boardA.create({ item: 't1', kind: 'task', title: 'one' }, { as: who('coord') })
      await boardA.create({ item: 't2', kind: 'task', title: 'two' }, { as: who('coord') })
      await boardA.claim('t1', { as: who('worker') })
      await boardA.complete('t1', { result: { ok: true } }, { as: who('worker') })
      const completed = boardA.item('t1')?.history.at(-1)
      assert.equal(completed?.op, 'complete')
      const seen: BoardChange[] = []
      boardA.addEventListener('change', e => seen.push(e.detail))
      // mallory, who may only update tasks, equivocates: two events at one HLC, two bodies
      const hlc = nextHlc(docA)
      const parents = docA.heads()
      const left = await boardEvent(who('mallory'), board, hlc, parents, [
        { op: 'update', item: 't2', kind: 'task', path: 't2', title: 'aaa' }
      ])
      const right = await boardEvent(who('mallory'), board, hlc, parents, [
        { op: 'update', item: 't2', kind: 'task', path: 't2', title: 'zzz' }
      ])
      assert.equal((await deliver(docA, [left])).applied.length, 1)
      assert.equal((await deliver(docA, [right])).applied.length, 1)
      // both replicas keep the greater body: the state is right
      assert.equal(boardA.item('t2')?.title, 'zzz')
      assert.equal(boardA.item('t1')?.status, 'completed')
      // but the worker's completion, applied long before, is reported applied again (and counted again
      // in its heartbeat's `done`, and every refused operation of a hosted agent is told again)
      const again = seen.filter(c => c.stamp.actor !== who('mallory').principal)
      assert.deepEqual(
        again.map(c => `${c.type} ${c.op} ${c.item}`),
        [],
        'an equivocation reports only what changed: the operation replaced'
      )
    })

    it('GUARD: an event stamped an hour ahead is refused (ClockDriftError, for now, not for good) and folds nothing', async () => {
      const board = 'guard'
      await grantOn([a], who('coord').principal, `(cyberspace (work ${board}))`)
      const boardA = await a.work.board(board)
      const docA = await a.state.open(`work.${board}`, 'op-log')
      const e = await boardEvent(who('coord'), board, [Date.now() + 3_600_000, 0], docA.heads(), [
        { op: 'create', item: 'future', kind: 'task', path: 'future', title: 'pins the order' }
      ])
      const result = await deliver(docA, [e])
      assert.equal(result.applied.length, 0)
      assert.equal(result.rejected[0]?.error.name, 'ClockDriftError')
      assert.equal(boardA.item('future'), undefined)
    })

    it('GUARD: an operation wider than its author’s chain is refused (not for good: a grant may come); a malformed one for good', async () => {
      const board = 'guard'
      await grantOn([a], who('worker').principal, `(cyberspace (work ${board} (* set claim complete read) task))`)
      const boardA = await a.work.board(board)
      const docA = await a.state.open(`work.${board}`, 'op-log')
      const wide = await boardEvent(who('worker'), board, nextHlc(docA), docA.heads(), [
        { op: 'create', item: 'w1', kind: 'task', path: 'w1', title: 'not mine to create' }
      ])
      const r1 = await deliver(docA, [wide])
      assert.equal(r1.applied.length, 0)
      assert.equal(r1.rejected[0]?.error.name, 'UnauthorizedEventError')
      assert.notEqual((r1.rejected[0]?.error as Error & { permanent?: boolean }).permanent, true)
      assert.equal(boardA.item('w1'), undefined)
      const junk = await boardEvent(who('coord'), board, nextHlc(docA), docA.heads(), [{ op: 'steal', item: 'w1' }])
      const r2 = await deliver(docA, [junk])
      assert.equal(r2.applied.length, 0)
      assert.equal((r2.rejected[0]?.error as Error & { permanent?: boolean }).permanent, true)
    })

    it('GUARD: an operation naming a narrower scope than its item’s (a task right used on a goal) passes the chain check and is refused bad-scope by the fold', async () => {
      const board = 'guard'
      const boardA = await a.work.board(board)
      const docA = await a.state.open(`work.${board}`, 'op-log')
      await boardA.create({ item: 'g1', kind: 'goal', title: 'a goal' }, { as: who('coord') })
      const refused: BoardChange[] = []
      boardA.addEventListener('change', e => {
        if (e.detail.type === 'refused') refused.push(e.detail)
      })
      // the service refuses it before writing (it names the item's own scope)...
      await rejects(boardA.claim('g1', { as: who('worker') }), 'WorkUnauthorizedError')
      // ...and a peer that lies about the scope gets its event applied but its operation refused
      const lie = await boardEvent(who('worker'), board, nextHlc(docA), docA.heads(), [
        { op: 'claim', item: 'g1', kind: 'task', path: 'g1' }
      ])
      assert.equal((await deliver(docA, [lie])).applied.length, 1)
      assert.equal(boardA.item('g1')?.assignee, undefined)
      assert.deepEqual(
        refused.map(c => (c.type === 'refused' ? c.reason : c.type)),
        ['bad-scope']
      )
    })
  })

  describe('the control API: agent tokens', () => {
    const TOKEN = 'operator-t0ken'
    const board = 'api'
    let server: ApiServer
    let api: ApiClient
    let coord: PrincipalId
    let reader: PrincipalId
    let readerApi: ApiClient
    let readerToken: string

    /** status and name of a refused request. */
    const refusal = async (request: Promise<unknown>): Promise<{ status?: number; name?: string; message: string }> => {
      try {
        await request
      } catch (err) {
        const e = err as Error & { status?: number; errorName?: string }
        return { status: e.status, name: e.errorName, message: e.message }
      }
      return assert.fail('the request was answered')
    }

    before(async () => {
      server = await startApiServer({ node: a, token: TOKEN, port: 0, pageDir: '/nonexistent' })
      api = apiClient(server.url, TOKEN)
      coord = (await api.post<HostedAgentView>('agents', { kind: 'external', id: 'coord', token: false })).principal
      reader = (await api.post<HostedAgentView>('agents', { kind: 'external', id: 'reader', token: false })).principal
      readerToken = server.tokens.mint(reader).token
      readerApi = apiClient(server.url, readerToken)
      await grantOn([a], coord, `(cyberspace (work ${board}))`)
      // the reader may claim tasks, and read nothing
      await grantOn([a], reader, `(cyberspace (work ${board} (* set claim) task))`)
      const op = { board, as: coord }
      await api.post('work/op', {
        ...op,
        op: { op: 'create', item: 'pub', kind: 'task', title: 'public task', description: 'details' }
      })
      await api.post('work/op', {
        ...op,
        op: { op: 'create', item: 'sec', kind: 'secret', title: 'hidden', description: 'launch codes' }
      })
    })

    after(async () => {
      await server?.close()
    })

    it('DEFECT: reading an item the token’s agent may not read answers as for an item that does not exist, naming nothing of it', async () => {
      const hidden = await refusal(readerApi.get('work/item', { board, item: 'sec' }))
      const missing = await refusal(readerApi.get('work/item', { board, item: 'nothing' }))
      assert.doesNotMatch(hidden.message, /secret/, 'the refusal names the hidden item’s kind and path')
      assert.deepEqual(
        [hidden.status, hidden.name],
        [missing.status, missing.name],
        'an unreadable item and a missing one are told apart'
      )
    })

    it('DEFECT: an operation by an agent without the read right answers without the item', async () => {
      const result = await readerApi.post<WorkOpResult>('work/op', {
        board,
        as: reader,
        op: { op: 'claim', item: 'pub' }
      })
      assert.deepEqual(result.outcome, { accepted: true })
      assert.equal(
        result.item,
        null,
        `the reader may not read pub, yet got ${JSON.stringify(result.item).slice(0, 120)}`
      )
    })

    it('DEFECT: an operation the agent may not do is refused 403 without naming the kind and path of an item it may not read', async () => {
      const refused = await refusal(readerApi.post('work/op', { board, as: reader, op: { op: 'claim', item: 'sec' } }))
      assert.equal(refused.status, 403)
      assert.equal(refused.name, 'WorkUnauthorizedError')
      assert.doesNotMatch(refused.message, /secret/)
    })

    it('DEFECT: a page of items for a reader who may read none of them costs a few authority checks, not one per item of the board', async () => {
      const wide = 'wide'
      await grantOn([a], coord, `(cyberspace (work ${wide}))`)
      await grantOn([a], reader, `(cyberspace (work ${wide} (* set claim) task))`)
      const boardA = await a.work.board(wide)
      const as = a.agents.agent(coord)?.signer as Signer
      for (let batch = 0; batch < 4; batch++) {
        const ops = Array.from({ length: 500 }, (_, i) => {
          const item = `s${String(batch * 500 + i).padStart(4, '0')}`
          return { op: 'create' as const, item, kind: 'secret', path: item, title: 'hidden' }
        })
        await boardA.submit(ops, { as })
      }
      assert.equal(boardA.items({ limit: 1000, kind: 'secret' }).length, 1000)
      const spki = a.spki
      const authorize = spki.authorize.bind(spki)
      let checks = 0
      spki.authorize = async (...args: Parameters<typeof authorize>) => {
        checks++
        return await authorize(...args)
      }
      try {
        const page = await readerApi.get<{ items: unknown[] }>('work/items', { board: wide })
        assert.deepEqual(page.items, [])
      } finally {
        spki.authorize = authorize
      }
      // ~500 µs each here: a board of 100,000 such items costs one request ~50 s of the node's CPU
      assert.ok(checks <= 100, `one page cost ${checks} authority checks, one per item`)
    })

    it('GUARD: the control API no longer serves the journal to anyone (the public API serves each token what it may read: test/node/api-handlers.test.ts)', async () => {
      const paged = await refusal(readerApi.get('events', {}))
      assert.equal(paged.status, 404)
      const res = await fetch(`${server.url}/api/v0/events/stream`, {
        headers: { authorization: `Bearer ${readerToken}` },
        signal: AbortSignal.timeout(5000)
      })
      assert.equal(res.status, 404)
      await res.body?.cancel()
    })
  })

  describe('scaling: decisions a hostile member writes', () => {
    const principal = (): PrincipalId => principalId(crypto.getRandomValues(new Uint8Array(32)))

    /** One member's view of `cyberspace.scaling`: its own appends, and entries other members wrote. */
    class Decisions extends EventTarget implements ScalingLog {
      private readonly list: OpLogEntry[] = []
      private readonly clock = new Hlc()
      private readonly self: string

      constructor(self: string) {
        super()
        this.self = self
      }

      entries(): readonly OpLogEntry[] {
        return [...this.list].sort(compareOpLogEntries)
      }

      async append(bodies: readonly unknown[]): Promise<unknown> {
        this.write(this.self, bodies)
        return undefined
      }

      /** Entries `actor` wrote (as its events would carry them). */
      write(actor: string, bodies: readonly unknown[]): void {
        const hlc = this.clock.tick()
        bodies.forEach((body, index) => this.list.push({ hlc, actor, index, body: structuredClone(body) }))
        this.dispatchEvent(new Event('change'))
      }
    }

    /** A member running kinds `w` (scaled: min 1, max 3) and `coord` (not scaled), with one agent of each. */
    async function target() {
      const self = principal()
      const peer = peerIdFromPrincipal(self).toString()
      const doc = new Decisions(self)
      const running = new Map<PrincipalId, { principal: PrincipalId; kind: string; id: string }>()
      const spawned: string[] = []
      const retired: PrincipalId[] = []
      const stopped: PrincipalId[] = []
      const coordAgent = principal()
      const original = principal()
      running.set(coordAgent, { principal: coordAgent, kind: 'coord', id: 'coordinator' })
      running.set(original, { principal: original, kind: 'w', id: 'w0' })
      const agents = {
        spawn: async (kind: string, options: { id: string }) => {
          const p = principal()
          running.set(p, { principal: p, kind, id: options.id })
          spawned.push(`${kind}/${options.id}`)
          return { principal: p }
        },
        stop: async (p: PrincipalId) => {
          running.delete(p)
          stopped.push(p)
        },
        list: () => [...running.values()],
        get: (p: PrincipalId) => running.get(p)
      }
      const rows = (): ScalingRow[] =>
        [...running.values()].map(r => ({ agent: r.principal, kind: r.kind, status: 'active', load: 0.5, host: peer }))
      const scaling = createScaling(
        { policies: [{ kind: 'w', min: 1, max: 3, target: 0.8, sustain: 3_600_000 }], settle: 0, interval: 3_600_000 },
        {
          self: peer,
          openLog: async () => doc,
          fleet: { rows, memberLoads: () => new Map() },
          members: () => membersOf([{ peerId: peer, state: 'alive', meta: { kinds: 'coord,w' } }]),
          agents,
          retire: async p => {
            retired.push(p)
            await agents.stop(p)
          },
          logger: defaultLogger()
        }
      )
      await scaling.start()
      return { peer, doc, scaling, running, spawned, retired, stopped, coordAgent, original }
    }

    it('DEFECT: a target carries out no retire decision of an agent no scaling spawn put there, nor one below min whatever reason it gives', async () => {
      const t = await target()
      const mallory = principal()
      try {
        t.doc.write(mallory, [
          // the coordinator, named under a kind nobody scales
          {
            decision: 'retire',
            kind: 'nokind',
            slot: 'shrink:nokind:2',
            gen: 0,
            target: t.peer,
            agent: t.coordAgent,
            reason: 'idle',
            id: 'evil-retire-1'
          },
          // the last replica of w (min 1), as the end of a swat agent
          {
            decision: 'retire',
            kind: 'w',
            slot: 'swat-end:x/1',
            gen: 0,
            target: t.peer,
            agent: t.original,
            reason: 'swat',
            need: 'x/1',
            id: 'evil-retire-2'
          }
        ])
        await t.scaling.carryOut()
        assert.deepEqual(t.retired, [], 'the target retired agents no scaling decision of its own policy allows')
        assert.ok(t.running.has(t.coordAgent) && t.running.has(t.original))
      } finally {
        await t.scaling.stop()
      }
    })

    it('DEFECT: a target refuses spawn decisions for a skill no policy of its rebalances, or a kind no policy of its scales (else it spawns without bound)', async () => {
      const t = await target()
      const mallory = principal()
      try {
        const flood = Array.from({ length: 12 }, (_, i) => ({
          decision: 'spawn',
          kind: i % 2 === 0 ? 'w' : 'coord',
          slot: i % 2 === 0 ? `rebalance:w:s${i}:0` : `grow:coord:${i}`,
          gen: i % 2 === 0 ? 0 : i,
          target: t.peer,
          reason: i % 2 === 0 ? 'rebalance' : 'load',
          ...(i % 2 === 0 ? { scope: `s${i}` } : {}),
          id: `evil-spawn-${i}`
        }))
        t.doc.write(mallory, flood)
        for (let pass = 0; pass < 3; pass++) await t.scaling.carryOut()
        assert.deepEqual(t.spawned, [], `spawned for mallory: ${t.spawned.join(', ')}`)
      } finally {
        await t.scaling.stop()
      }
    })

    it('DEFECT: once the target said done, another member marking the spawn failed does not make it stop the agent', async () => {
      const t = await target()
      const decider = principal()
      const mallory = principal()
      try {
        // an honest decision: grow w by one on this member
        t.doc.write(decider, [
          { decision: 'spawn', kind: 'w', slot: 'grow:w:1', gen: 0, target: t.peer, reason: 'load', id: 'r-honest' }
        ])
        await t.scaling.carryOut()
        assert.deepEqual(t.spawned, ['w/r-honest'])
        assert.equal(t.scaling.decisions().find(d => d.decision.id === 'r-honest')?.status, 'done')
        // long after it was done, mallory says it failed
        t.doc.write(mallory, [{ failed: 'grow:w:1', id: 'r-honest', error: 'not-carried-out' }])
        await t.scaling.carryOut()
        assert.deepEqual(
          t.stopped,
          [],
          'the replica carried out and reported done was stopped on a third member’s word'
        )
      } finally {
        await t.scaling.stop()
      }
    })
  })
})
