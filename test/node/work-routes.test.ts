/**
 * The coordination routes of the control API, in process over real HTTP on 127.0.0.1: boards
 * (reads never open one, modes kept), operations as a hosted agent (bad input, unknown actors and
 * the board's refusals as problem JSON with their names), pages with `next`, an agent's token
 * acting only as its own agent and reading with its own rights, the fleet, and the event journal —
 * paged by HLC and cursor, long polled, and streamed as server-sent events resumable with
 * Last-Event-ID.
 */
import { strict as assert } from 'node:assert'
import { apiClient } from '../../node/api/client.ts'
import { startApiServer } from '../../node/api/server.ts'
import { MAX_EVENT_WAITERS } from '../../node/api/work-routes.ts'
import { formatHlc as hlcText } from '../../src/clock/hlc.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { grant, key } from '../spki/fixtures.ts'
import type { HostedAgentView } from '../../node/api/agent-routes.ts'
import type { ApiClient } from '../../node/api/client.ts'
import type { ApiServer } from '../../node/api/server.ts'
import type {
  BoardPage,
  EventPage,
  EventView,
  FleetView,
  ItemPage,
  OpenedBoard,
  WorkItemView,
  WorkOpResult
} from '../../node/api/work-routes.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'

const TOKEN = 'operator-t0ken'
const BOARD = 'b1'

describe('control API: work, fleet and events routes', function () {
  this.timeout(60_000)
  let node: CyberspaceNode
  let server: ApiServer
  let api: ApiClient
  let root: Key
  let coord: PrincipalId
  let helper: PrincipalId
  let helperApi: ApiClient

  /** Fails unless `request` is refused with `status`, the error `name` and a message matching `message`. */
  const refused = async (request: Promise<unknown>, status: number, name: string, message?: RegExp): Promise<void> => {
    await assert.rejects(request, (err: Error & { status?: number; errorName?: string }) => {
      assert.equal(err.status, status, err.message)
      assert.equal(err.errorName, name, err.message)
      if (message != null) assert.match(err.message, message)
      return true
    })
  }

  const grantTo = async (principal: PrincipalId, tagText: string): Promise<void> => {
    const cert = await grant(root, { kind: 'key', principal }, tagText, { propagate: false })
    await api.post('spki/import', { sexp: toAdvanced(signedCertToSexp(cert)) })
  }

  const op = async (as: PrincipalId, body: Record<string, unknown>, client = api): Promise<WorkOpResult> =>
    await client.post<WorkOpResult>('work/op', { board: BOARD, as, op: body })

  before(async () => {
    node = await memoryNode()
    server = await startApiServer({ node, token: TOKEN, port: 0, pageDir: '/nonexistent' })
    api = apiClient(server.url, TOKEN)
    root = await key()
    await api.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
    coord = (await api.post<HostedAgentView>('agents', { kind: 'external', id: 'coord', token: false })).principal
    helper = (await api.post<HostedAgentView>('agents', { kind: 'external', id: 'helper', token: false })).principal
    helperApi = apiClient(server.url, server.tokens.mint(helper).token)
    await grantTo(coord, `(cyberspace (work ${BOARD}))`)
  })

  after(async () => {
    await server.close()
    await node.stop()
  })

  it('reads never open a board; POST work/boards does, and a board keeps its mode', async () => {
    await refused(
      api.get('work/items', { board: BOARD }),
      404,
      'Error',
      /holds no board b1: open it with .* work open b1/
    )
    await refused(api.get('work/item', { board: BOARD, item: 'x' }), 404, 'Error', /holds no board b1/)
    assert.deepEqual(await api.get<BoardPage>('work/boards'), { boards: [], next: null })
    assert.deepEqual(await api.post<OpenedBoard>('work/boards', { board: 'scratch', mode: 'local' }), {
      name: 'scratch',
      mode: 'local',
      items: 0,
      ops: 0
    })
    await refused(
      api.post('work/boards', { board: 'scratch', mode: 'eventual' }),
      409,
      'BoardModeMismatchError',
      /scratch is local, not eventual/
    )
    // opened again without a mode: the one it has
    assert.equal((await api.post<OpenedBoard>('work/boards', { board: 'scratch' })).mode, 'local')
    await refused(api.post('work/boards', { board: 'later', mode: 'strong' }), 501, 'StrongModeUnavailableError')
    await refused(api.post('work/boards', { board: 'Bad Name' }), 400, 'Error', /board must be a board name/)
    await refused(api.post('work/boards', { board: 'x', mode: 'fast' }), 400, 'Error', /mode must be local or eventual/)
    // a create on a board this node does not hold opens it, eventual by default
    const created = await op(coord, { op: 'create', item: 'goal', title: 'ship', kind: 'goal' })
    assert.deepEqual(created.outcome, { accepted: true })
    assert.equal(created.item?.status, 'submitted')
    assert.equal(created.item?.createdBy, coord)
    const boards = await api.get<BoardPage>('work/boards')
    assert.deepEqual(
      boards.boards.map(b => [b.name, b.mode]),
      [
        [BOARD, 'eventual'],
        ['scratch', 'local']
      ]
    )
    const first = await api.get<BoardPage>('work/boards', { limit: '1' })
    assert.deepEqual(
      first.boards.map(b => b.name),
      [BOARD]
    )
    assert.equal(first.next, BOARD)
    const second = await api.get<BoardPage>('work/boards', { limit: '1', after: BOARD })
    assert.deepEqual(second, { boards: [{ name: 'scratch', mode: 'local', items: 0, ops: 0 }], next: null })
  })

  it('refuses malformed operations, and actors not hosted here, before anything is written', async () => {
    const before = (await api.get<BoardPage>('work/boards')).boards.find(b => b.name === BOARD)?.ops
    const other = (await key()).id
    await refused(
      api.post('work/op', { board: BOARD, as: other, op: { op: 'claim', item: 'goal' } }),
      404,
      'AgentNotFoundHereError',
      /does not run on this node: .*agents list/
    )
    await refused(
      api.post('work/op', { board: BOARD, as: 'bob', op: { op: 'claim', item: 'goal' } }),
      400,
      'Error',
      /as must be an agent principal/
    )
    await refused(api.post('work/op', { board: BOARD, as: coord }), 400, 'Error', /op must be a JSON object/)
    await refused(op(coord, { op: 'steal', item: 'goal' }), 400, 'Error', /op.op must be one of create, update/)
    await refused(op(coord, { op: 'claim', item: '../x' }), 400, 'Error', /op.item must be an item id/)
    // the fields are checked by the work protocol's codec, as every replica checks them
    await refused(
      op(coord, { op: 'progress', item: 'goal', percent: 101 }),
      400,
      'InvalidWorkOpError',
      /percent: must be a number from 0 to 100/
    )
    await refused(
      op(coord, { op: 'progress', item: 'goal', percent: 5, status: 'done' }),
      400,
      'InvalidWorkOpError',
      /status/
    )
    await refused(op(coord, { op: 'claim', item: 'goal', extra: 1 }), 400, 'InvalidWorkOpError', /extra/)
    await refused(
      op(coord, { op: 'create', item: 'long', title: 'x'.repeat(201), kind: 'task' }),
      400,
      'InvalidWorkOpError',
      /title/
    )
    await refused(
      op(coord, { op: 'create', item: 'd', title: 'x', kind: 'task', deps: 'goal' }),
      400,
      'InvalidWorkOpError',
      /deps/
    )
    await refused(op(coord, { op: 'claim', item: 'nothing' }), 404, 'ItemNotFoundError')
    await refused(
      api.post('work/op', { board: 'nope', as: coord, op: { op: 'claim', item: 'goal' } }),
      404,
      'Error',
      /holds no board nope/
    )
    assert.equal((await api.get<BoardPage>('work/boards')).boards.find(b => b.name === BOARD)?.ops, before)
  })

  it('performs operations as the agent named, answering the outcome and the item; refusals are 409 with their names', async () => {
    for (const id of ['t1', 't2', 't3', 't4', 't5'])
      await op(coord, { op: 'create', item: id, parent: 'goal', title: `task ${id}`, kind: 'task', skills: ['ts'] })
    await op(coord, { op: 'create', item: 't6', parent: 'goal', title: 'after t1', kind: 'task', deps: ['t1'] })
    const claimed = await op(coord, { op: 'claim', item: 't1' })
    assert.deepEqual(claimed.outcome, { accepted: true })
    assert.equal(claimed.op, 'claim')
    assert.equal(claimed.item?.assignee, coord)
    await grantTo(helper, `(cyberspace (work ${BOARD} (* set claim progress complete read) task))`)
    await refused(
      op(helper, { op: 'claim', item: 't1' }, helperApi),
      409,
      'ItemAlreadyClaimedError',
      new RegExp(`held by ${coord}`)
    )
    await refused(op(helper, { op: 'claim', item: 't6' }, helperApi), 409, 'ItemNotReadyError')
    await refused(op(helper, { op: 'complete', item: 't1' }, helperApi), 409, 'NotAssigneeError')
    const progress = await op(coord, {
      op: 'progress',
      item: 't1',
      percent: 40,
      message: 'going',
      status: 'input-required'
    })
    assert.equal(progress.item?.status, 'input-required')
    assert.deepEqual(progress.item?.progress, { percent: 40, message: 'going' })
    // results and handoff states travel as DAG-JSON: bytes and links survive
    const result = {
      bytes: { '/': { bytes: 'AQID' } },
      n: 1.5,
      link: { '/': 'bafyreidjl336ad7kddhhetkge2oehnmohh5rjn3r4enkvby5s54rmriukm' }
    }
    const completed = await op(coord, {
      op: 'complete',
      item: 't1',
      result,
      artifacts: [
        { cid: 'bafyreidjl336ad7kddhhetkge2oehnmohh5rjn3r4enkvby5s54rmriukm', name: 'report', mediaType: 'text/plain' }
      ]
    })
    assert.equal(completed.item?.status, 'completed')
    assert.deepEqual(completed.item?.result, result)
    assert.equal(completed.item?.artifacts[0].name, 'report')
    await refused(op(coord, { op: 'cancel', item: 't1' }), 409, 'ItemTerminalError')
    const t6 = await api.get<WorkItemView>('work/item', { board: BOARD, item: 't6' })
    assert.equal(t6.ready, true)
    await op(coord, { op: 'claim', item: 't2' })
    const handed = await op(coord, {
      op: 'handoff',
      item: 't2',
      to: helper,
      state: { step: 2, raw: { '/': { bytes: 'AA' } } }
    })
    assert.deepEqual(handed.item?.handoff, { from: coord, state: { step: 2, raw: { '/': { bytes: 'AA' } } } })
    assert.equal(handed.item?.assignee, helper)
    const failed = await op(coord, { op: 'create', item: 't7', title: 'x', kind: 'task' })
    assert.equal(failed.item?.path, 't7')
    await op(coord, { op: 'claim', item: 't7' })
    const rejected = await op(coord, { op: 'fail', item: 't7', error: 'not doable', rejected: true })
    assert.equal(rejected.item?.status, 'rejected')
    assert.equal(rejected.item?.error, 'not doable')
    const deleted = await op(coord, { op: 'delete', item: 't7' })
    assert.equal(deleted.item, null, 'a deleted item is gone from the answer')
    await refused(api.get('work/item', { board: BOARD, item: 't7' }), 404, 'Error', /has no item t7/)
  })

  it('pages items with next, filtered by status, assignee, parent, kind and readiness', async () => {
    const ids: string[] = []
    let after: string | undefined
    for (let pages = 0; pages < 10; pages++) {
      const page: ItemPage = await api.get<ItemPage>('work/items', {
        board: BOARD,
        limit: '2',
        ...(after != null ? { after } : {})
      })
      assert.ok(page.items.length <= 2)
      ids.push(...page.items.map(i => i.id))
      if (page.next == null) break
      assert.equal(page.next, page.items[page.items.length - 1].id)
      after = page.next
    }
    assert.deepEqual(ids, ['goal', 't1', 't2', 't3', 't4', 't5', 't6'])
    const list = async (query: Record<string, string>): Promise<string[]> =>
      (await api.get<ItemPage>('work/items', { board: BOARD, ...query })).items.map(i => i.id)
    assert.deepEqual(await list({ status: 'completed,working' }), ['t1', 't2'])
    assert.deepEqual(await list({ assignee: helper }), ['t2'])
    assert.deepEqual(await list({ kind: 'goal' }), ['goal'])
    assert.deepEqual(await list({ parent: 'goal', ready: 'true' }), ['t3', 't4', 't5', 't6'])
    await refused(list({ status: 'done' }), 400, 'Error', /status must be one or more of/)
    await refused(list({ limit: '0' }), 400, 'Error', /limit must be a whole number from 1 to 500/)
    await refused(list({ limit: '501' }), 400, 'Error', /limit must be a whole number from 1 to 500/)
    await refused(list({ assignee: 'me' }), 400, 'Error', /assignee must be an agent principal/)
    await refused(list({ ready: 'yes' }), 400, 'Error', /ready must be true or false/)
  })

  it("lets an agent's token act and read only as its own agent, with its own rights; the rest is the operator's", async () => {
    await refused(
      op(coord, { op: 'claim', item: 't3' }, helperApi),
      403,
      'AgentTokenScopeError',
      /may not act on boards as agent/
    )
    await refused(
      helperApi.get('work/items', { board: BOARD, as: coord }),
      403,
      'AgentTokenScopeError',
      /may not read as agent/
    )
    // it reads as itself: its grant covers kind task only
    const mine = await helperApi.get<ItemPage>('work/items', { board: BOARD })
    assert.deepEqual(
      mine.items.map(i => i.id),
      ['t1', 't2', 't3', 't4', 't5', 't6']
    )
    // an item it may not read is answered as one that does not exist
    await refused(helperApi.get('work/item', { board: BOARD, item: 'goal' }), 404, 'Error', /has no item goal that/)
    assert.equal((await helperApi.get<WorkItemView>('work/item', { board: BOARD, item: 't3' })).id, 't3')
    // the operator reads as the node, or as an agent it names
    assert.equal((await api.get<ItemPage>('work/items', { board: BOARD, as: helper })).items.length, 6)
    assert.equal((await api.get<ItemPage>('work/items', { board: BOARD })).items.length, 7)
    const claimed = await op(helper, { op: 'claim', item: 't3' }, helperApi)
    assert.equal(claimed.item?.assignee, helper)
    // a right its grant does not name is refused by its chain, before the transition is looked at
    await refused(op(helper, { op: 'cancel', item: 't4' }, helperApi), 403, 'WorkUnauthorizedError')
    await refused(
      op(helper, { op: 'create', item: 'x1', title: 'x', kind: 'task' }, helperApi),
      403,
      'WorkUnauthorizedError'
    )
    assert.deepEqual(
      (await helperApi.get<BoardPage>('work/boards')).boards.map(b => b.name),
      [BOARD, 'scratch']
    )
    for (const request of [
      helperApi.post('work/boards', { board: 'mine' }),
      helperApi.get('fleet'),
      helperApi.get('events'),
      helperApi.get('events/stream')
    ])
      await refused(request, 403, 'AgentTokenScopeError', /needs the node's operator token/)
  })

  it("fills a reader's page past a window of items it may not read", async () => {
    // 1001 goals the helper may not read sort before every task it may
    const board = await node.work.board(BOARD)
    const signer = node.agents.agent(coord)?.signer
    assert.ok(signer != null)
    for (let batch = 0; batch < 11; batch++) {
      const ops = Array.from({ length: batch < 10 ? 100 : 1 }, (_, i) => {
        const item = `a${String(batch * 100 + i).padStart(4, '0')}`
        return { op: 'create' as const, item, kind: 'goal', path: item, title: 'hidden' }
      })
      await board.submit(ops, { as: signer })
    }
    assert.equal((await api.get<ItemPage>('work/items', { board: BOARD, limit: '500' })).items.length, 500)
    // a reader whose grant names a kind it does not hold there costs a bounded number of checks per
    // request: its pages end early with a `next` to go on from, until the readable items come
    const seen: string[] = []
    let after: string | null = null
    let requests = 0
    for (; requests < 40; requests++) {
      const page: ItemPage = await helperApi.get<ItemPage>('work/items', {
        board: BOARD,
        limit: '500',
        ...(after != null ? { after } : {})
      })
      seen.push(...page.items.map(i => i.id))
      after = page.next
      if (after == null) break
    }
    assert.deepEqual(seen, ['t1', 't2', 't3', 't4', 't5', 't6'])
    assert.ok(requests > 1 && requests < 40, `${requests} requests`)
    const two = await helperApi.get<ItemPage>('work/items', { board: BOARD, limit: '2', after: 'goal' })
    assert.deepEqual([two.items.map(i => i.id), two.next], [['t1', 't2'], 't2'])
  })

  it('answers the fleet: totals, members, agent rows and drops', async () => {
    const fleet = await api.get<FleetView>('fleet')
    assert.deepEqual(Object.keys(fleet).sort(), ['agents', 'drops', 'members', 'totals'])
    assert.equal(fleet.totals.agents, fleet.agents.length)
    assert.equal(typeof fleet.totals.load, 'number')
    assert.equal(fleet.drops.forged, 0)
    assert.ok(Array.isArray(fleet.members))
  })

  describe('events', () => {
    let start: [number, number]
    const boardEvents = (events: EventView[]): string[] =>
      events.filter(e => e.source === 'board').map(e => `${e.type} ${e.subject}`)

    before(() => {
      start = [Date.now(), 0]
    })

    it('pages the journal after an HLC, then by cursor, in HLC order', async () => {
      await op(coord, { op: 'create', item: 'e1', title: 'events', kind: 'task' })
      await op(coord, { op: 'claim', item: 'e1' })
      await op(coord, { op: 'progress', item: 'e1', percent: 10 })
      // an event joins the journal once settled (its settle delay after its HLC time)
      await node.work.events.settled()
      const all = await api.get<EventPage>('events', { since: hlcText(start), limit: '1000' })
      assert.deepEqual(boardEvents(all.events), [`create ${BOARD}/e1`, `claim ${BOARD}/e1`, `progress ${BOARD}/e1`])
      assert.equal(all.next, null)
      assert.ok(all.cursor != null)
      const seen: EventView[] = []
      let cursor: string | null = null
      for (let pages = 0; pages < 20; pages++) {
        const page: EventPage = await api.get<EventPage>(
          'events',
          cursor == null ? { since: hlcText(start), limit: '1' } : { cursor, limit: '1' }
        )
        seen.push(...page.events)
        if (page.next == null) break
        assert.equal(page.next, page.cursor)
        cursor = page.next
      }
      assert.deepEqual(seen, all.events)
      for (let i = 1; i < seen.length; i++) {
        const [p, q] = [seen[i - 1].hlc, seen[i].hlc]
        assert.ok(p[0] < q[0] || (p[0] === q[0] && p[1] <= q[1]))
      }
      const claim = all.events.find(e => e.type === 'claim')
      // an operation as written (what became of it is the item's, or a refused event)
      assert.deepEqual(claim?.data, { actor: coord, index: 0 })
      // a bare wall means .0
      assert.deepEqual(await api.get<EventPage>('events', { since: String(start[0]), limit: '1000' }), all)
      await refused(api.get('events', { since: 'noon' }), 400, 'Error', /since must be an HLC/)
      await refused(api.get('events', { since: hlcText(start), cursor: all.cursor ?? '' }), 400, 'Error', /not both/)
      await refused(api.get('events', { cursor: 'bm90IGEgY3Vyc29y' }), 400, 'InvalidEventQueryError')
      await refused(api.get('events', { wait: '30001' }), 400, 'Error', /wait must be/)
    })

    it('long-polls for the next event after a cursor, and answers at the deadline when none comes', async () => {
      const end = (await api.get<EventPage>('events', { since: hlcText(start), limit: '1000' })).cursor as string
      const empty = await api.get<EventPage>('events', { cursor: end, wait: '200' })
      assert.deepEqual(empty.events, [])
      assert.equal(empty.cursor, end)
      const poll = api.get<EventPage>('events', { cursor: end, wait: '20000' })
      setTimeout(() => {
        void op(coord, { op: 'complete', item: 'e1', result: 'ok' })
      }, 300)
      const page = await poll
      assert.ok(page.events.length >= 1)
      assert.ok(boardEvents(page.events).includes(`complete ${BOARD}/e1`), JSON.stringify(page.events))
    })

    it('streams the journal as server-sent events with cursor ids, resumable exactly with Last-Event-ID', async () => {
      /** Reads the stream until `count` events, then closes it. */
      const read = async (
        headers: Record<string, string>,
        count: number
      ): Promise<Array<{ id: string; event: EventView }>> => {
        const controller = new AbortController()
        const res = await fetch(`${server.url}/api/v0/events/stream?since=${hlcText(start)}`, {
          headers: { authorization: `Bearer ${TOKEN}`, ...headers },
          signal: AbortSignal.any([controller.signal, AbortSignal.timeout(20_000)])
        })
        assert.equal(res.status, 200)
        assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
        const out: Array<{ id: string; event: EventView }> = []
        const decoder = new TextDecoder()
        let text = ''
        const reader = (res.body as ReadableStream<Uint8Array>).getReader()
        try {
          while (out.length < count) {
            const { value, done } = await reader.read()
            if (done) break
            text += decoder.decode(value, { stream: true })
            let end: number
            while ((end = text.indexOf('\n\n')) >= 0 && out.length < count) {
              const block = text.slice(0, end)
              text = text.slice(end + 2)
              const id = /^id: (.*)$/m.exec(block)?.[1]
              const data = /^data: (.*)$/m.exec(block)?.[1]
              if (id != null && data != null) out.push({ id, event: JSON.parse(data) as EventView })
            }
          }
        } finally {
          controller.abort()
        }
        return out
      }
      const page = await api.get<EventPage>('events', { since: hlcText(start), limit: '1000' })
      const streamed = await read({}, page.events.length)
      assert.deepEqual(
        streamed.map(s => s.event),
        page.events,
        'the stream replays what the page holds, in order'
      )
      // each id is the cursor after its event: reading from it gives exactly the events after it
      const after = await api.get<EventPage>('events', { cursor: streamed[0].id, limit: '1000' })
      assert.deepEqual(after.events, page.events.slice(1))
      // live: an event after the replay arrives on the open stream
      const live = read({}, page.events.length + 1)
      setTimeout(() => {
        void op(coord, { op: 'create', item: 'e2', title: 'live', kind: 'task' })
      }, 300)
      const withLive = await live
      assert.equal(
        `${withLive[withLive.length - 1].event.type} ${withLive[withLive.length - 1].event.subject}`,
        `create ${BOARD}/e2`
      )
      // a reconnecting reader goes on right after the last id it had
      const resumed = await read({ 'last-event-id': withLive[1].id }, 1)
      assert.deepEqual(resumed[0].event, withLive[2].event)
      // an HLC as the id is taken too: later events only
      const cut = withLive[1].event.hlc
      const byHlc = (await read({ 'last-event-id': hlcText(cut) }, 1))[0].event.hlc
      assert.ok(byHlc[0] > cut[0] || (byHlc[0] === cut[0] && byHlc[1] > cut[1]), 'resumed after the HLC')
      await refused(
        (async () => {
          const res = await fetch(`${server.url}/api/v0/events/stream`, {
            headers: { authorization: `Bearer ${TOKEN}`, 'last-event-id': 'garbage' }
          })
          const body = (await res.json()) as { error: string; name: string }
          throw Object.assign(new Error(body.error), { status: res.status, errorName: body.name })
        })(),
        400,
        'InvalidEventQueryError',
        /cursor is not one this journal issued/
      )
    })

    it('refuses a point older than the journal keeps (410), naming the oldest HLC kept', async () => {
      const small = await memoryNode({ workOptions: { events: { maxEntries: 3 } } })
      const smallServer = await startApiServer({ node: small, token: TOKEN, port: 0, pageDir: '/nonexistent' })
      try {
        const client = apiClient(smallServer.url, TOKEN)
        for (let i = 1; i <= 5; i++)
          small.work.events.record({ hlc: [1000 + i, 0], source: 'swarm', type: 'offer', subject: `s${i}` })
        const kept = await client.get<EventPage>('events')
        assert.deepEqual(
          kept.events.map(e => e.subject),
          ['s3', 's4', 's5']
        )
        await refused(
          client.get('events', { since: '1001.0' }),
          410,
          'EventsTruncatedError',
          /go on from where what is kept begins \(events --since 1002\.0;/
        )
        const res = await fetch(`${smallServer.url}/api/v0/events/stream?since=1001`, {
          headers: { authorization: `Bearer ${TOKEN}` }
        })
        assert.equal(res.status, 410, 'refused before the stream starts')
        assert.equal(((await res.json()) as { name: string }).name, 'EventsTruncatedError')
        assert.deepEqual(
          (await client.get<EventPage>('events', { since: '1002.0' })).events.map(e => e.subject),
          ['s3', 's4', 's5'],
          'since the HLC named: every event kept'
        )
      } finally {
        await smallServer.close()
        await small.stop()
      }
    })

    it(`holds at most ${MAX_EVENT_WAITERS} long polls and streams open at once`, async () => {
      await node.work.events.settled()
      const end = (await api.get<EventPage>('events', { since: hlcText(start), limit: '1000' })).cursor as string
      const controller = new AbortController()
      const polls = Array.from(
        { length: MAX_EVENT_WAITERS },
        async () =>
          await fetch(`${server.url}/api/v0/events?cursor=${encodeURIComponent(end)}&wait=20000`, {
            headers: { authorization: `Bearer ${TOKEN}` },
            signal: controller.signal
          }).catch(() => undefined)
      )
      try {
        // once the polls have arrived (each waits 20 s for an event that does not come), the next is refused at once
        await new Promise(resolve => setTimeout(resolve, 1000))
        const res = await fetch(`${server.url}/api/v0/events?cursor=${encodeURIComponent(end)}&wait=20000`, {
          headers: { authorization: `Bearer ${TOKEN}` },
          signal: AbortSignal.timeout(10_000)
        })
        assert.equal(res.status, 429)
        assert.match(((await res.json()) as { error: string }).error, /16 event streams and polls are open already/)
      } finally {
        controller.abort()
        await Promise.all(polls)
      }
    })
  })
})
