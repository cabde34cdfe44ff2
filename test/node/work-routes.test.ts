/**
 * The coordination routes of the control API, in process over real HTTP on 127.0.0.1: boards
 * (reads never open one, modes kept), operations as a hosted agent (bad input, unknown actors and
 * the board's refusals as problem JSON with their names), pages with `next`, an agent's token
 * acting only as its own agent and reading with its own rights, and the fleet. The event journal
 * is the public API's (test/node/api-handlers.test.ts).
 */
import { strict as assert } from 'node:assert'
import { apiClient } from '../../node/api/client.ts'
import { startApiServer } from '../../node/api/server.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { grant, key } from '../spki/fixtures.ts'
import type { HostedAgentView } from '../../node/api/agent-routes.ts'
import type { ApiClient } from '../../node/api/client.ts'
import type { ApiServer } from '../../node/api/server.ts'
import type {
  BoardPage,
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

describe('control API: work and fleet routes', function () {
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
      'BoardNotFoundError',
      /holds no board b1: open it with .* work open b1/
    )
    await refused(api.get('work/item', { board: BOARD, item: 'x' }), 404, 'BoardNotFoundError', /holds no board b1/)
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
      'BoardNotFoundError',
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
    await refused(api.get('work/item', { board: BOARD, item: 't7' }), 404, 'ItemNotFoundError', /has no item t7/)
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
    await refused(
      helperApi.get('work/item', { board: BOARD, item: 'goal' }),
      404,
      'ItemNotFoundError',
      /has no item goal that/
    )
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
    for (const request of [helperApi.post('work/boards', { board: 'mine' }), helperApi.get('fleet')])
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
})
