/**
 * The public API's handlers (node/api/v1/handlers*.ts) over real HTTP on 127.0.0.1, in process
 * with a memory node: every answer checked against its route's response schema (zod, and the JSON
 * Schema the OpenAPI document is made of, which refuses fields it does not list), every refusal a
 * problem with its name (and the field, for bad input). Who acts and who reads: the operator names
 * the agent it acts as, an agent's token acts and reads only as its own agent, with its own rights.
 * Events: pages, long polls, server-sent events resumed with Last-Event-ID, a slow reader told what
 * it missed (and losing nothing when it resumes), a cursor of another run refused with the HLC to
 * resume from, a revoked token's stream ended.
 */
import { strict as assert } from 'node:assert'
import { request as httpRequest } from 'node:http'
import { Ajv2020 } from 'ajv/dist/2020.js'
import * as z from 'zod'
import { base64url } from 'multiformats/bases/base64'
import { startApiServer } from '../../node/api/server.ts'
import { v1Handlers } from '../../node/api/v1/handlers.ts'
import { MAX_INBOX_WAITERS } from '../../node/api/agent-routes.ts'
import { MAX_EVENT_WAITERS } from '../../node/api/v1/handlers-events.ts'
import { ROUTES } from '../../src/api/routes.ts'
import { ItemId } from '../../src/api/schema.ts'
import { EventJournal } from '../../src/work/events.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { RouteName } from '../../src/api/routes.ts'
import type { ApiServer } from '../../node/api/server.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'
import type { IncomingMessage } from 'node:http'
import { AgentTokens } from '../../node/api/agent-tokens.ts'

const OPERATOR = 'operator-t0ken-for-the-handlers'
const BOARD = 'b1'
const OTHER = 'b2'
/** ms between heartbeats of a stream in these tests. */
const HEARTBEAT = 300
/** Events a stream holds for a slow reader in these tests. */
const BACKLOG = 20

/** An answer's JSON, read field by field in the assertions. */
type Json = any

interface Answer {
  status: number
  headers: Headers
  body: Json
}

const ajv = new Ajv2020({ strict: false, allErrors: true })
const validators = new Map<RouteName, (data: unknown) => boolean>()

/** Fails unless `body` is what route `name` says it answers: by zod, and by its JSON Schema (no field it does not list). */
function checkAnswer(name: RouteName, body: unknown): void {
  const schema = ROUTES[name].response as z.ZodType
  const parsed = schema.safeParse(body)
  assert.ok(parsed.success, `${name}: ${parsed.success ? '' : parsed.error.message}\n${JSON.stringify(body)}`)
  let validate = validators.get(name)
  if (validate == null) {
    validate = ajv.compile(z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }))
    validators.set(name, validate)
  }
  const valid = validate(body)
  assert.ok(valid, `${name}: ${ajv.errorsText((validate as unknown as { errors: unknown[] }).errors as never)}`)
}

describe('public API handlers over HTTP', function () {
  this.timeout(120_000)
  let node: CyberspaceNode
  let server: ApiServer
  let root: Key
  let coord: PrincipalId
  let helper: PrincipalId
  let outsider: PrincipalId
  let coordToken: string
  let helperToken: string
  let outsiderToken: string

  /** One request: `path` with `query`, a JSON `body`, as `token`. */
  const call = async (
    token: string | undefined,
    method: string,
    path: string,
    options: { body?: unknown; query?: Record<string, string>; headers?: Record<string, string> } = {}
  ): Promise<Answer> => {
    const url = new URL(path, server.url)
    for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v)
    const headers: Record<string, string> = { ...options.headers }
    if (token != null) headers.authorization = `Bearer ${token}`
    if (options.body !== undefined) headers['content-type'] = 'application/json'
    const res = await fetch(url, {
      method,
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {})
    })
    const text = await res.text()
    return { status: res.status, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) }
  }

  /** The answer of route `name` at `path`: 200, and what the route says it answers. */
  const ok = async (
    name: RouteName,
    token: string,
    path: string,
    options: { body?: unknown; query?: Record<string, string>; headers?: Record<string, string> } = {}
  ): Promise<Json> => {
    const res = await call(token, ROUTES[name].method, path, options)
    assert.equal(res.status, 200, `${name} ${path}: ${JSON.stringify(res.body)}`)
    checkAnswer(name, res.body)
    return res.body
  }

  /** Fails unless the request is answered as a problem: `status`, the error `name`, and (for bad input) the `field` named. */
  const problem = async (
    token: string | undefined,
    method: string,
    path: string,
    options: { body?: unknown; query?: Record<string, string>; headers?: Record<string, string> },
    status: number,
    name: string,
    expect: { field?: string; detail?: RegExp } = {}
  ): Promise<Json> => {
    const res = await call(token, method, path, options)
    assert.equal(res.status, status, `${method} ${path}: ${JSON.stringify(res.body)}`)
    assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/)
    assert.equal(res.body.name, name, JSON.stringify(res.body))
    assert.equal(res.body.status, status)
    if (expect.field != null)
      assert.ok(
        (res.body.errors ?? []).some((e: { field: string }) => e.field === expect.field),
        `expected ${expect.field} named: ${JSON.stringify(res.body)}`
      )
    if (expect.detail != null) assert.match(res.body.detail, expect.detail)
    return res.body
  }

  /** The cursor after the last event kept now. */
  const endCursor = async (): Promise<string> => {
    let page = await ok('events', OPERATOR, '/api/events', { query: { limit: '1000' } })
    for (let pages = 0; page.more === true && pages < 100; pages++)
      page = await ok('events', OPERATOR, '/api/events', { query: { limit: '1000', after: page.cursor } })
    return page.cursor
  }

  const grantTo = async (principal: PrincipalId, tagText: string): Promise<void> => {
    const cert = await grant(root, { kind: 'key', principal }, tagText, { propagate: false })
    await node.spki.addCert(cert)
  }

  /** Attaches an external agent `id` with a token of its own. */
  const attach = async (id: string): Promise<{ principal: PrincipalId; token: string }> => {
    const attached = await ok('attachAgent', OPERATOR, '/api/node/agents', { body: { kind: 'external', id } })
    assert.equal(typeof attached.token, 'string')
    return { principal: attached.principal, token: attached.token }
  }

  before(async () => {
    // alone, the registry asks no DHT peer: with a lookup timeout longer than mocha's, a find that
    // waited for peers that never come would fail this suite
    node = await memoryNode({ registryOptions: { lookupTimeout: 600_000 } })
    server = await startApiServer({
      node,
      token: OPERATOR,
      port: 0,
      pageDir: '/nonexistent',
      handlers: ({ node, tokens, places }) =>
        v1Handlers(node, { tokens, places, heartbeat: HEARTBEAT, backlog: BACKLOG })
    })
    root = await key()
    await node.spki.addAclEntry(root.id, tag('(cyberspace)'))
    ;({ principal: coord, token: coordToken } = await attach('coord'))
    ;({ principal: helper, token: helperToken } = await attach('helper'))
    ;({ principal: outsider, token: outsiderToken } = await attach('outsider'))
    await grantTo(coord, `(cyberspace (work ${BOARD}))`)
    await grantTo(coord, `(cyberspace (work ${OTHER}))`)
  })

  after(async () => {
    await server.close()
    await node.stop()
  })

  it('whoami, node, members and fleet answer as their routes say, for the operator and for an agent', async () => {
    const me = await ok('whoami', OPERATOR, '/api/whoami')
    assert.deepEqual(me, { caller: 'operator', principal: node.spki.principal, node: node.peerId.toString() })
    const agent = await ok('whoami', coordToken, '/api/whoami')
    assert.equal(agent.caller, 'agent')
    assert.equal(agent.principal, coord)
    assert.match(agent.tokenId, /^[0-9a-f]{16}$/)
    const info = await ok('node', coordToken, '/api/node')
    assert.equal(info.peerId, node.peerId.toString())
    assert.ok(info.kinds.includes('external'))
    const members = await ok('members', OPERATOR, '/api/members', { query: { limit: '10' } })
    assert.ok(Array.isArray(members.members))
    for (const m of members.members) assert.match(m.principal, /^z6Mk/)
    await problem(OPERATOR, 'GET', '/api/members', { query: { limit: '0' } }, 400, 'InvalidRequestError', {
      field: 'query.limit'
    })
    const fleet = await ok('fleet', coordToken, '/api/fleet')
    assert.ok('drops' in fleet)
  })

  it('opens, lists and reads boards; a board keeps its mode; an unknown board is 404 BoardNotFoundError', async () => {
    await problem(OPERATOR, 'GET', `/api/boards/${BOARD}`, {}, 404, 'BoardNotFoundError')
    const opened = await ok('openBoard', OPERATOR, '/api/boards', { body: { name: 'scratch', mode: 'local' } })
    assert.deepEqual(opened, { name: 'scratch', mode: 'local', items: 0, ops: 0 })
    // without a mode: the one it has
    assert.equal((await ok('openBoard', OPERATOR, '/api/boards', { body: { name: 'scratch' } })).mode, 'local')
    await problem(
      OPERATOR,
      'POST',
      '/api/boards',
      { body: { name: 'scratch', mode: 'eventual' } },
      409,
      'BoardModeMismatchError'
    )
    await problem(
      OPERATOR,
      'POST',
      '/api/boards',
      { body: { name: 'later', mode: 'strong' } },
      501,
      'StrongModeUnavailableError'
    )
    await problem(coordToken, 'POST', '/api/boards', { body: { name: 'mine' } }, 403, 'AgentTokenScopeError')
    await ok('openBoard', OPERATOR, '/api/boards', { body: { name: BOARD } })
    assert.equal((await ok('getBoard', coordToken, `/api/boards/${BOARD}`)).mode, 'eventual')
    const first = await ok('listBoards', OPERATOR, '/api/boards', { query: { limit: '1' } })
    assert.deepEqual(
      first.boards.map((b: { name: string }) => b.name),
      [BOARD]
    )
    assert.equal(first.next, BOARD)
    const second = await ok('listBoards', OPERATOR, '/api/boards', { query: { limit: '1', after: BOARD } })
    assert.deepEqual(
      second.boards.map((b: { name: string }) => b.name),
      ['scratch']
    )
    assert.equal(second.next, null)
  })

  it('creates work nodes as the agent the request names; the operator must name one, a token acts only as its own', async () => {
    // the operator's token acts as a hosted agent it names
    await problem(
      OPERATOR,
      'POST',
      '/api/worknodes',
      { body: { board: BOARD, title: 'x' } },
      400,
      'InvalidRequestError',
      {
        field: 'body.as'
      }
    )
    const notHere = (await key()).id
    await problem(
      OPERATOR,
      'POST',
      '/api/worknodes',
      { body: { board: BOARD, title: 'x', as: notHere } },
      404,
      'AgentNotFoundHereError'
    )
    // an agent's token acts as its own agent only
    await problem(
      helperToken,
      'POST',
      '/api/worknodes',
      { body: { board: BOARD, title: 'x', as: coord } },
      403,
      'AgentTokenScopeError'
    )
    // authority: the helper holds no right on the board yet
    await problem(
      helperToken,
      'POST',
      '/api/worknodes',
      { body: { board: BOARD, title: 'x' } },
      403,
      'WorkUnauthorizedError'
    )
    const goal = await ok('createWorknode', OPERATOR, '/api/worknodes', {
      body: { board: BOARD, id: 'goal', title: 'ship', kind: 'goal', as: coord }
    })
    assert.equal(goal.ref, `${BOARD}:goal`)
    assert.deepEqual(goal.outcome, { accepted: true })
    assert.equal(goal.item.board, BOARD)
    assert.equal(goal.item.createdBy, coord)
    assert.equal(goal.item.history, undefined, 'an operation answers the item without its history')
    // no id given: the node picks one
    const picked = await ok('createWorknode', coordToken, '/api/worknodes', {
      body: { board: BOARD, title: 'an idea', parent: 'goal' }
    })
    const pickedId = picked.ref.split(':')[1]
    assert.ok(ItemId.safeParse(pickedId).success, pickedId)
    assert.equal(picked.item.path, `goal/${pickedId}`)
    assert.equal(picked.item.kind, 'task')
    for (const id of ['t1', 't2', 't3', 't4'])
      await ok('createWorknode', coordToken, '/api/worknodes', {
        body: { board: BOARD, id, parent: 'goal', title: `task ${id}`, skills: ['ts'] }
      })
    await ok('createWorknode', coordToken, '/api/worknodes', {
      body: { board: BOARD, id: 't5', parent: 'goal', title: 'after t1', deps: ['t1'] }
    })
    // the board's refusals before writing: named problems
    await problem(
      coordToken,
      'POST',
      '/api/worknodes',
      { body: { board: BOARD, id: 't1', title: 'again' } },
      409,
      'ItemExistsError'
    )
    await problem(
      coordToken,
      'POST',
      '/api/worknodes',
      { body: { board: BOARD, title: 'orphan', parent: 'nothing' } },
      409,
      'UnknownParentError'
    )
    // the schema's refusals name the field
    await problem(
      coordToken,
      'POST',
      '/api/worknodes',
      { body: { board: 'Bad Board', title: 'x' } },
      400,
      'InvalidRequestError',
      {
        field: 'body.board'
      }
    )
    await problem(
      coordToken,
      'POST',
      '/api/worknodes',
      { body: { board: BOARD, title: '' } },
      400,
      'InvalidRequestError',
      {
        field: 'body.title'
      }
    )
  })

  it('reads work nodes with the caller’s rights; updates and deletes them as the acting agent', async () => {
    const t1 = await ok('getWorknode', coordToken, `/api/worknodes/${BOARD}:t1`)
    assert.equal(t1.ref, `${BOARD}:t1`)
    assert.ok(Array.isArray(t1.history) && t1.history.length === 1, 'one item is answered with its history')
    // percent-encoded ':' names the same item
    assert.equal((await ok('getWorknode', OPERATOR, `/api/worknodes/${BOARD}%3At1`)).id, 't1')
    // an item the reader may not read is answered as missing: nothing of it is told
    await problem(outsiderToken, 'GET', `/api/worknodes/${BOARD}:t1`, {}, 404, 'ItemNotFoundError')
    await problem(OPERATOR, 'GET', `/api/worknodes/${BOARD}:nothing`, {}, 404, 'ItemNotFoundError')
    await problem(OPERATOR, 'GET', '/api/worknodes/nope:t1', {}, 404, 'BoardNotFoundError')
    await problem(OPERATOR, 'GET', '/api/worknodes/not-a-ref', {}, 400, 'InvalidRequestError', { field: 'params.id' })
    const outsiderList = await ok('listWorknodes', outsiderToken, '/api/worknodes', { query: { board: BOARD } })
    assert.deepEqual(outsiderList, { items: [], next: null })

    const updated = await ok('updateWorknode', coordToken, `/api/worknodes/${BOARD}:t4`, {
      body: { title: 'task four', priority: 3 }
    })
    assert.equal(updated.op, 'update')
    assert.equal(updated.item.title, 'task four')
    assert.equal(updated.item.priority, 3)
    await problem(OPERATOR, 'PUT', `/api/worknodes/${BOARD}:t4`, { body: { title: 'x' } }, 400, 'InvalidRequestError', {
      field: 'body.as'
    })
    // DELETE names the acting agent in its query
    await problem(OPERATOR, 'DELETE', `/api/worknodes/${BOARD}:t4`, {}, 400, 'InvalidRequestError', {
      field: 'query.as'
    })
    const deleted = await ok('deleteWorknode', OPERATOR, `/api/worknodes/${BOARD}:t4`, { query: { as: coord } })
    assert.equal(deleted.op, 'delete')
    assert.equal(deleted.item, null)
    await problem(coordToken, 'GET', `/api/worknodes/${BOARD}:t4`, {}, 404, 'ItemNotFoundError')

    // pages with next, filtered
    const ids: string[] = []
    let after: string | undefined
    for (let pages = 0; pages < 10; pages++) {
      const page = await ok('listWorknodes', OPERATOR, '/api/worknodes', {
        query: { board: BOARD, kind: 'task', limit: '2', ...(after != null ? { after } : {}) }
      })
      ids.push(...page.items.map((i: { id: string }) => i.id))
      for (const i of page.items) assert.equal(i.history, undefined, 'lists leave out the history')
      if (page.next == null) break
      after = page.next
    }
    assert.deepEqual(
      ids.filter(id => id.startsWith('t')),
      ['t1', 't2', 't3', 't5']
    )
    const ready = await ok('listWorknodes', coordToken, '/api/worknodes', {
      query: { board: BOARD, ready: 'true', kind: 'task' }
    })
    assert.ok(!ready.items.some((i: { id: string }) => i.id === 't5'), 't5 waits for t1')
    await problem(OPERATOR, 'GET', '/api/worknodes', {}, 400, 'InvalidRequestError', { field: 'query.board' })
    await problem(
      OPERATOR,
      'GET',
      '/api/worknodes',
      { query: { board: BOARD, status: 'done' } },
      400,
      'InvalidRequestError',
      {
        field: 'query.status'
      }
    )
  })

  it('performs every task action as the acting agent; refusals before writing are named problems', async () => {
    await grantTo(helper, `(cyberspace (work ${BOARD} (* set claim release progress complete fail handoff read) task))`)
    const claimed = await ok('claimTask', coordToken, `/api/tasks/${BOARD}:t1/claim`, { body: {} })
    assert.deepEqual(claimed.outcome, { accepted: true })
    assert.equal(claimed.item.assignee, coord)
    // a refusal says why, as the board's refused events do, and a claim refused says who holds the item
    const held = await problem(
      helperToken,
      'POST',
      `/api/tasks/${BOARD}:t1/claim`,
      { body: {} },
      409,
      'ItemAlreadyClaimedError'
    )
    assert.equal(held.reason, 'already-claimed')
    assert.equal(held.holder, coord)
    const waiting = await problem(
      helperToken,
      'POST',
      `/api/tasks/${BOARD}:t5/claim`,
      { body: {} },
      409,
      'ItemNotReadyError'
    )
    assert.equal(waiting.reason, 'not-ready')
    assert.equal(waiting.holder, undefined)
    await problem(helperToken, 'POST', `/api/tasks/${BOARD}:t1/complete`, { body: {} }, 409, 'NotAssigneeError')
    await problem(outsiderToken, 'POST', `/api/tasks/${BOARD}:t2/claim`, { body: {} }, 403, 'WorkUnauthorizedError')
    await problem(coordToken, 'POST', `/api/tasks/${BOARD}:nothing/claim`, { body: {} }, 404, 'ItemNotFoundError')
    await problem(coordToken, 'POST', `/api/tasks/nope:t1/claim`, { body: {} }, 404, 'BoardNotFoundError')
    await problem(OPERATOR, 'POST', `/api/tasks/${BOARD}:t1/claim`, { body: {} }, 400, 'InvalidRequestError', {
      field: 'body.as'
    })
    const progress = await ok('progressTask', coordToken, `/api/tasks/${BOARD}:t1/progress`, {
      body: { percent: 40, message: 'going', status: 'input-required' }
    })
    assert.equal(progress.item.status, 'input-required')
    assert.deepEqual(progress.item.progress, { percent: 40, message: 'going' })
    await problem(
      coordToken,
      'POST',
      `/api/tasks/${BOARD}:t1/progress`,
      { body: { percent: 101 } },
      400,
      'InvalidRequestError',
      {
        field: 'body.percent'
      }
    )
    // results travel as DAG-JSON: bytes and links survive
    const result = { bytes: { '/': { bytes: 'AQID' } }, n: 1.5 }
    const completed = await ok('completeTask', OPERATOR, `/api/tasks/${BOARD}:t1/complete`, {
      body: {
        as: coord,
        result,
        artifacts: [
          {
            cid: 'bafyreidjl336ad7kddhhetkge2oehnmohh5rjn3r4enkvby5s54rmriukm',
            name: 'report',
            mediaType: 'text/plain'
          }
        ]
      }
    })
    assert.equal(completed.item.status, 'completed')
    assert.deepEqual(completed.item.result, result)
    await problem(
      coordToken,
      'POST',
      `/api/tasks/${BOARD}:t2/complete`,
      { body: { result: { '/': { bytes: 'not base64!' } } } },
      400,
      'InvalidRequestError',
      { field: 'body.result' }
    )
    await problem(coordToken, 'POST', `/api/tasks/${BOARD}:t1/cancel`, { body: {} }, 409, 'ItemTerminalError')
    // t5 is ready now; the helper takes it, hands it back with its state, and coord fails it
    await ok('claimTask', helperToken, `/api/tasks/${BOARD}:t5/claim`, { body: {} })
    const handed = await ok('handoffTask', helperToken, `/api/tasks/${BOARD}:t5/handoff`, {
      body: { to: coord, state: { step: 2, raw: { '/': { bytes: 'AA' } } } }
    })
    assert.deepEqual(handed.item.handoff, { from: helper, state: { step: 2, raw: { '/': { bytes: 'AA' } } } })
    const failed = await ok('failTask', coordToken, `/api/tasks/${BOARD}:t5/fail`, {
      body: { error: 'not doable', rejected: true }
    })
    assert.equal(failed.item.status, 'rejected')
    // assign (and clear), claim and release, cancel
    const assigned = await ok('assignTask', coordToken, `/api/tasks/${BOARD}:t3/assign`, { body: { assignee: helper } })
    assert.equal(assigned.item.assignee, helper)
    const cleared = await ok('assignTask', coordToken, `/api/tasks/${BOARD}:t3/assign`, { body: { assignee: null } })
    assert.equal(cleared.item.assignee, undefined)
    await ok('claimTask', helperToken, `/api/tasks/${BOARD}:t2/claim`, { body: {} })
    const released = await ok('releaseTask', helperToken, `/api/tasks/${BOARD}:t2/release`, {
      body: { reason: 'busy' }
    })
    assert.equal(released.item.assignee, undefined)
    assert.equal(released.item.status, 'submitted')
    const canceled = await ok('cancelTask', coordToken, `/api/tasks/${BOARD}:t3/cancel`, {
      body: { reason: 'not needed' }
    })
    assert.equal(canceled.item.status, 'canceled')
    // an agent that acted but may not read the item gets its outcome without the item
    await grantTo(outsider, `(cyberspace (work ${BOARD} claim task))`)
    const blind = await ok('claimTask', outsiderToken, `/api/tasks/${BOARD}:t2/claim`, { body: {} })
    assert.deepEqual(blind.outcome, { accepted: true })
    assert.equal(blind.item, null)
  })

  it("lists an agent's tasks across the boards it is held on, paged with a stable <board>:<item> cursor", async () => {
    for (const id of ['o1', 'o2'])
      await ok('createWorknode', coordToken, '/api/worknodes', { body: { board: OTHER, id, title: id } })
    for (const ref of [`${OTHER}:o1`, `${OTHER}:o2`])
      await ok('claimTask', coordToken, `/api/tasks/${ref}/claim`, { body: {} })
    // coord holds: b1:t1 (completed), b1:t5 (rejected), b2:o1, b2:o2 (working)
    const all: string[] = []
    let after: string | undefined
    for (let pages = 0; pages < 10; pages++) {
      const page = await ok('agentTasks', coordToken, `/api/agents/${coord}/tasks`, {
        query: { limit: '1', ...(after != null ? { after } : {}) }
      })
      all.push(...page.tasks.map((t: { ref: string }) => t.ref))
      if (page.next == null) break
      assert.match(page.next, /^[a-z0-9._-]+:[A-Za-z0-9._-]*$/)
      after = page.next
    }
    assert.deepEqual(all, [`${BOARD}:t1`, `${BOARD}:t5`, `${OTHER}:o1`, `${OTHER}:o2`])
    const working = await ok('agentTasks', OPERATOR, `/api/agents/${coord}/tasks`, { query: { status: 'working' } })
    assert.deepEqual(
      working.tasks.map((t: { ref: string }) => t.ref),
      [`${OTHER}:o1`, `${OTHER}:o2`]
    )
    const onOne = await ok('agentTasks', coordToken, `/api/agents/${coord}/tasks`, { query: { board: BOARD } })
    assert.deepEqual(
      onOne.tasks.map((t: { ref: string }) => t.ref),
      [`${BOARD}:t1`, `${BOARD}:t5`]
    )
    // an agent's token lists its own tasks only; the operator any agent's
    await problem(helperToken, 'GET', `/api/agents/${coord}/tasks`, {}, 403, 'AgentTokenScopeError')
    const helperTasks = await ok('agentTasks', OPERATOR, `/api/agents/${helper}/tasks`)
    assert.ok(Array.isArray(helperTasks.tasks))
    await problem(
      coordToken,
      'GET',
      `/api/agents/${coord}/tasks`,
      { query: { after: 'junk' } },
      400,
      'InvalidRequestError',
      {
        field: 'query.after'
      }
    )
    // the cursor is the work codec's names: a board name is lower case, an item id has no slash
    for (const after of ['B1:t1', `${BOARD}:t/1`, `${BOARD}`])
      await problem(coordToken, 'GET', `/api/agents/${coord}/tasks`, { query: { after } }, 400, 'InvalidRequestError', {
        field: 'query.after'
      })
    // a board's start
    const fromBoard = await ok('agentTasks', coordToken, `/api/agents/${coord}/tasks`, {
      query: { after: `${BOARD}:` }
    })
    assert.ok(fromBoard.tasks.every((t: { board: string }) => t.board >= BOARD))
    await problem(
      coordToken,
      'GET',
      `/api/agents/${coord}/tasks`,
      { query: { board: 'nope' } },
      404,
      'BoardNotFoundError'
    )
  })

  it(`holds at most ${MAX_INBOX_WAITERS} inbox long polls over the control API and the public API together, named TooManyWaitersError`, async () => {
    const stop = new AbortController()
    const polls: Array<Promise<number>> = []
    const poll = (path: string): void => {
      polls.push(
        fetch(new URL(path, server.url), {
          headers: { authorization: `Bearer ${OPERATOR}` },
          signal: stop.signal
        }).then(
          async res => {
            await res.text()
            return res.status
          },
          () => 0
        )
      )
    }
    try {
      // half the places through each API, each poll waiting 20 s for a message that does not come
      for (let i = 0; i < MAX_INBOX_WAITERS; i++)
        poll(
          i % 2 === 0 ? `/api/v0/agents/inbox?agent=${outsider}&wait=20000` : `/api/agents/${outsider}/inbox?wait=20000`
        )
      let refused: Answer | undefined
      for (let tries = 0; tries < 50 && refused == null; tries++) {
        await new Promise(resolve => setTimeout(resolve, 100))
        const res = await call(OPERATOR, 'GET', `/api/agents/${outsider}/inbox`, { query: { wait: '100' } })
        if (res.status === 429) refused = res
      }
      assert.ok(refused != null, 'the public inbox was not refused once the places were taken over both APIs')
      assert.equal(refused.body.name, 'TooManyWaitersError')
      const v0 = await call(OPERATOR, 'GET', '/api/v0/agents/inbox', { query: { agent: outsider, wait: '100' } })
      assert.equal(v0.status, 429)
      assert.equal(v0.body.name, 'TooManyWaitersError', 'the control API names it too')
    } finally {
      stop.abort()
      await Promise.all(polls)
    }
  })

  it('takes the bearer scheme in any case (RFC 7235): bearer and BEARER are Bearer', async () => {
    for (const scheme of ['bearer', 'BEARER', 'bEaReR'])
      assert.equal(
        (await call(undefined, 'GET', '/api/whoami', { headers: { authorization: `${scheme} ${OPERATOR}` } })).status,
        200,
        scheme
      )
    assert.equal(
      (await call(undefined, 'GET', '/api/v0/id', { headers: { authorization: `bearer ${OPERATOR}` } })).status,
      200,
      'the control API too'
    )
    await problem(
      undefined,
      'GET',
      '/api/whoami',
      { headers: { authorization: `Basic ${OPERATOR}` } },
      401,
      'ApiTokenError'
    )
  })

  it("keeps agents' open streams without a revoke listener each: a dozen streams, no MaxListenersExceededWarning, all forgotten when closed", async () => {
    const warnings: string[] = []
    const onWarning = (w: Error): void => {
      warnings.push(w.name)
    }
    process.on('warning', onWarning)
    const streams: SseStream[] = []
    try {
      const end = await endCursor()
      // a quarter of the places each: 4 streams for each of three agents
      for (const token of [coordToken, helperToken, outsiderToken])
        for (let i = 0; i < 4; i++) streams.push(await openStream(server.url, token, { lastEventId: end }))
      assert.equal(server.tokens.watching(), 12)
      await new Promise(resolve => setImmediate(resolve))
      assert.ok(!warnings.includes('MaxListenersExceededWarning'), warnings.join(', '))
    } finally {
      for (const s of streams) s.close()
      process.off('warning', onWarning)
    }
    for (let tries = 0; tries < 50 && server.tokens.watching() > 0; tries++)
      await new Promise(resolve => setTimeout(resolve, 100))
    assert.equal(server.tokens.watching(), 0, 'a closed stream is forgotten')
  })

  describe('events', () => {
    it('pages the journal since an HLC and after a cursor; each event carries its cursor', async () => {
      const first = await ok('events', OPERATOR, '/api/events', { query: { limit: '3' } })
      assert.equal(first.events.length, 3)
      assert.equal(first.more, true)
      const next = await ok('events', OPERATOR, '/api/events', { query: { after: first.cursor, limit: '3' } })
      assert.deepEqual(next.events[0].cursor !== first.events[2].cursor, true)
      // after the cursor of an event is exactly what follows it
      const fromEvent = await ok('events', OPERATOR, '/api/events', {
        query: { after: first.events[2].cursor, limit: '3' }
      })
      assert.deepEqual(fromEvent.events, next.events)
      const hlc = first.events[0].hlc as [number, number]
      const since = await ok('events', OPERATOR, '/api/events', {
        query: { since: `${hlc[0]}.${hlc[1]}`, limit: '1000' }
      })
      assert.ok(
        since.events.every(
          (e: { hlc: [number, number] }) => e.hlc[0] > hlc[0] || (e.hlc[0] === hlc[0] && e.hlc[1] > hlc[1])
        )
      )
      await problem(
        OPERATOR,
        'GET',
        '/api/events',
        { query: { since: '1.0', after: first.cursor } },
        400,
        'InvalidRequestError',
        {
          field: 'query.after'
        }
      )
      await problem(OPERATOR, 'GET', '/api/events', { query: { after: 'junk' } }, 400, 'InvalidRequestError', {
        field: 'query.after'
      })
      await problem(OPERATOR, 'GET', '/api/events', { query: { since: 'yesterday' } }, 400, 'InvalidRequestError', {
        field: 'query.since'
      })
    })

    it('refuses a cursor of another run of the node with 410 EventCursorExpiredError, naming the HLC to resume from', async () => {
      const earlier = new EventJournal()
      earlier.record({ hlc: [1763700000000, 4], source: 'fleet', type: 'agent:move', subject: 'x' })
      const stale = earlier.since(undefined).cursor as string
      const body = await problem(
        OPERATOR,
        'GET',
        '/api/events',
        { query: { after: stale } },
        410,
        'EventCursorExpiredError',
        {
          detail: /since=1763700000000\.4/
        }
      )
      assert.match(body.type, /EventCursorExpiredError$/)
      assert.deepEqual(body.hlc, [1763700000000, 4], 'the HLC to resume from, as a field')
      // a cursor of the earlier format (before cursors named their run) is another run's too
      const old = base64url.encode(
        new TextEncoder().encode(JSON.stringify([1763700000000, 5, 'fleet', 'x', 'agent:move', '', 0]))
      )
      await problem(OPERATOR, 'GET', '/api/events', { query: { after: old } }, 410, 'EventCursorExpiredError', {
        detail: /since=1763700000000\.5/
      })
      // the stream refuses it before it starts
      await problem(
        OPERATOR,
        'GET',
        '/api/events/stream',
        { headers: { 'last-event-id': stale } },
        410,
        'EventCursorExpiredError'
      )
    })

    it("shows an agent's token only the events it may read", async () => {
      const all = await ok('events', OPERATOR, '/api/events', { query: { limit: '1000' } })
      const boardEvents = all.events.filter((e: { source: string }) => e.source === 'board')
      assert.ok(boardEvents.length > 10)
      const outsiders = await ok('events', outsiderToken, '/api/events', { query: { limit: '1000' } })
      // its own claim of t2 it may not read; no other agent's lifecycle
      assert.ok(
        !outsiders.events.some((e: { source: string }) => e.source === 'board'),
        JSON.stringify(outsiders.events)
      )
      assert.ok(
        outsiders.events
          .filter((e: { source: string }) => e.source === 'agent')
          .every((e: { subject: string }) => e.subject === outsider)
      )
      assert.ok(
        outsiders.events.some(
          (e: { source: string; subject: string }) => e.source === 'agent' && e.subject === outsider
        )
      )
      // the helper reads tasks of b1: their events, none of b2's
      const helpers = await ok('events', helperToken, '/api/events', { query: { limit: '1000' } })
      const subjects = new Set(
        helpers.events
          .filter((e: { source: string }) => e.source === 'board')
          .map((e: { subject: string }) => e.subject)
      )
      assert.ok(subjects.has(`${BOARD}/t1`))
      assert.ok(!subjects.has(`${BOARD}/goal`), 'the goal is no task: not the helper’s to read')
      assert.ok(![...subjects].some(s => String(s).startsWith(`${OTHER}/`)))
      // coord reads the whole of both boards (one check a board decides): every board event the operator sees
      const coords = await ok('events', coordToken, '/api/events', { query: { limit: '1000' } })
      assert.deepEqual(
        coords.events.filter((e: { source: string }) => e.source === 'board').map((e: { cursor: string }) => e.cursor),
        boardEvents.map((e: { cursor: string }) => e.cursor)
      )
    })

    it('long-polls until an event the caller may see arrives, and answers an empty page at the deadline', async () => {
      const now = await endCursor()
      const waiting = ok('events', coordToken, '/api/events', { query: { after: now, wait: '20000' } })
      await new Promise(resolve => setTimeout(resolve, 100))
      await ok('createWorknode', coordToken, '/api/worknodes', { body: { board: OTHER, id: 'o3', title: 'late' } })
      // the poll answers at the first event coord may see: o3's, or one that came just before it
      let page = await waiting
      for (
        let polls = 0;
        polls < 10 && !page.events.some((e: { subject: string }) => e.subject === `${OTHER}/o3`);
        polls++
      )
        page = await ok('events', coordToken, '/api/events', { query: { after: page.cursor, wait: '5000' } })
      assert.ok(page.events.some((e: { subject: string }) => e.subject === `${OTHER}/o3`))
      const quiet = await ok('events', coordToken, '/api/events', { query: { after: page.cursor, wait: '200' } })
      assert.deepEqual(quiet.events, [])
      assert.equal(quiet.cursor, page.cursor, 'an empty page keeps its place')
    })

    it('streams events as SSE with cursor ids; Last-Event-ID wins over since; an idle stream carries heartbeats', async () => {
      const page = await ok('events', OPERATOR, '/api/events', { query: { limit: '5' } })
      const stream = await openStream(server.url, OPERATOR, {
        query: { since: '0.0' },
        lastEventId: page.events[1].cursor
      })
      try {
        const events = await stream.events(3)
        assert.deepEqual(
          events.map(e => e.id),
          page.events.slice(2, 5).map((e: { cursor: string }) => e.cursor)
        )
        for (const e of events) {
          const data = JSON.parse(e.data)
          checkAnswer('eventStream', data)
          assert.equal(data.cursor, e.id)
        }
        await stream.until(text => text.includes(': heartbeat'))
      } finally {
        stream.close()
      }
    })

    it('streams what a page holds, in order, then live events; resumes after an HLC as Last-Event-ID', async () => {
      const end = await endCursor()
      await ok('createWorknode', coordToken, '/api/worknodes', { body: { board: OTHER, id: 'o5', title: 'replayed' } })
      await node.work.events.settled()
      const page = await ok('events', OPERATOR, '/api/events', { query: { after: end, limit: '1000' } })
      assert.ok(page.events.length >= 1)
      const stream = await openStream(server.url, OPERATOR, { lastEventId: end })
      try {
        const replayed = await stream.events(page.events.length)
        assert.deepEqual(
          replayed.map(e => JSON.parse(e.data)),
          page.events,
          'the stream replays what the page holds, in order'
        )
        await ok('createWorknode', coordToken, '/api/worknodes', { body: { board: OTHER, id: 'o6', title: 'live' } })
        await stream.until(text => text.includes(`"subject":"${OTHER}/o6"`))
      } finally {
        stream.close()
      }
      // the stream's head: not cached, and not held back by a buffering proxy in front (nginx)
      const head = new AbortController()
      const res = await fetch(new URL('/api/events/stream', server.url), {
        headers: { authorization: `Bearer ${OPERATOR}`, 'last-event-id': end },
        signal: head.signal
      })
      head.abort()
      assert.equal(res.status, 200)
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
      assert.equal(res.headers.get('cache-control'), 'no-store')
      assert.equal(res.headers.get('x-accel-buffering'), 'no')
      // an HLC as the id: only the events after it
      const cut = page.events[0].hlc as [number, number]
      const byHlc = await openStream(server.url, OPERATOR, { lastEventId: `${cut[0]}.${cut[1]}` })
      try {
        const [first] = await byHlc.events(1)
        const hlc = JSON.parse(first.data).hlc as [number, number]
        assert.ok(hlc[0] > cut[0] || (hlc[0] === cut[0] && hlc[1] > cut[1]), 'resumed after the HLC')
      } finally {
        byHlc.close()
      }
      await problem(
        OPERATOR,
        'GET',
        '/api/events/stream',
        { headers: { 'last-event-id': 'garbage' } },
        400,
        'InvalidRequestError',
        { field: 'header Last-Event-ID' }
      )
    })

    it('refuses a point older than the journal keeps with 410 EventsTruncatedError, naming the oldest HLC kept', async () => {
      const small = await memoryNode({ workOptions: { events: { maxEntries: 3 } } })
      const smallServer = await startApiServer({
        node: small,
        token: OPERATOR,
        port: 0,
        pageDir: '/nonexistent',
        handlers: ({ node, tokens }) => v1Handlers(node, { tokens })
      })
      try {
        for (let i = 1; i <= 5; i++)
          small.work.events.record({ hlc: [1000 + i, 0], source: 'swarm', type: 'offer', subject: `s${i}` })
        const get = async (
          query: Record<string, string>,
          headers: Record<string, string> = {},
          path = '/api/events'
        ) => {
          const url = new URL(path, smallServer.url)
          for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v)
          const res = await fetch(url, { headers: { authorization: `Bearer ${OPERATOR}`, ...headers } })
          return { status: res.status, body: (await res.json()) as Json }
        }
        const kept = await get({})
        assert.equal(kept.status, 200)
        assert.deepEqual(
          kept.body.events.map((e: { subject: string }) => e.subject),
          ['s3', 's4', 's5']
        )
        const gone = await get({ since: '1001.0' })
        assert.equal(gone.status, 410)
        assert.equal(gone.body.name, 'EventsTruncatedError')
        assert.match(gone.body.detail, /resume with since=1002\.0/)
        const stream = await get({ since: '1001.0' }, {}, '/api/events/stream')
        assert.equal(stream.status, 410, 'refused before the stream starts')
        assert.equal(stream.body.name, 'EventsTruncatedError')
        assert.deepEqual(
          (await get({ since: '1002.0' })).body.events.map((e: { subject: string }) => e.subject),
          ['s3', 's4', 's5'],
          'since the HLC named: every event kept'
        )
      } finally {
        await smallServer.close()
        await small.stop()
      }
    })

    it('tells a slow reader what it missed, and the cursor to resume from loses nothing', async () => {
      const stream = await openStream(server.url, OPERATOR, { lastEventId: await endCursor() })
      const sent: string[] = []
      try {
        stream.pause()
        // big events, one a turn, while the reader reads nothing: the socket fills, then the stream's backlog
        const payload = 'x'.repeat(64 * 1024)
        for (let i = 0; i < 200; i++) {
          const subject = `slow-${i}`
          node.work.events.record({ hlc: [Date.now(), i], source: 'fleet', type: 'test', subject, data: payload })
          sent.push(subject)
          await new Promise(resolve => setImmediate(resolve))
        }
        stream.resume()
        const text = await stream.ended()
        const blocks = text.split('\n\n')
        const missed = blocks.find(b => b.startsWith('event: missed'))
        assert.ok(missed != null, 'the stream says what it missed')
        const info = JSON.parse(
          missed
            .split('\n')
            .find(l => l.startsWith('data: '))
            ?.slice(6) ?? '{}'
        )
        assert.ok(info.missed > 0 && info.missed <= 200, JSON.stringify(info))
        const got = blocks
          .filter(b => b.includes('\ndata: ') && !b.startsWith('event:'))
          .map(b =>
            JSON.parse(
              b
                .split('\n')
                .find(l => l.startsWith('data: '))
                ?.slice(6) ?? '{}'
            )
          )
          .filter(e => e.type === 'test')
          .map(e => e.subject as string)
        assert.ok(got.length < 200, 'it did not send them all')
        // resuming from the cursor it named gives the rest
        const rest: string[] = []
        let after = info.resume as string
        for (let pages = 0; pages < 10; pages++) {
          const page = await ok('events', OPERATOR, '/api/events', { query: { after, limit: '100' } })
          rest.push(
            ...page.events.filter((e: { type: string }) => e.type === 'test').map((e: { subject: string }) => e.subject)
          )
          if (!page.more) break
          after = page.cursor
        }
        assert.deepEqual([...got, ...rest], sent)
      } finally {
        stream.close()
      }
    })

    it("filters an agent's stream, and ends it with event: end when its token is revoked", async () => {
      const extra = await attach('streamer')
      const stream = await openStream(server.url, extra.token, { lastEventId: await endCursor() })
      try {
        await ok('createWorknode', coordToken, '/api/worknodes', { body: { board: OTHER, id: 'o4', title: 'hidden' } })
        // a fleet event it sees, recorded after the board's
        node.work.events.record({
          hlc: [Date.now() + 1000, 0],
          source: 'fleet',
          type: 'probe',
          subject: 'visible-probe'
        })
        await stream.until(text => text.includes('visible-probe'))
        const minted = await ok('listTokens', OPERATOR, '/api/tokens', { query: { agent: extra.principal } })
        await ok('revokeToken', OPERATOR, `/api/tokens/${minted.tokens[0].id as string}`)
        const text = await stream.ended()
        assert.match(text, /event: end\ndata: \{"name":"ApiTokenError"/)
        assert.ok(!text.includes(`${OTHER}/o4`), 'a board it may not read is not streamed')
      } finally {
        stream.close()
      }
      await problem(extra.token, 'GET', '/api/whoami', {}, 401, 'ApiTokenError')
    })

    it(`holds at most ${MAX_EVENT_WAITERS} long polls and streams; the next is 429 TooManyWaitersError`, async () => {
      const end = await endCursor()
      const streams = await Promise.all(
        Array.from(
          { length: MAX_EVENT_WAITERS },
          async () => await openStream(server.url, OPERATOR, { lastEventId: end })
        )
      )
      try {
        await problem(OPERATOR, 'GET', '/api/events/stream', {}, 429, 'TooManyWaitersError')
        await problem(
          OPERATOR,
          'GET',
          '/api/events',
          { query: { wait: '1000', since: `${Date.now() + 60_000}.0` } },
          429,
          'TooManyWaitersError'
        )
        // a page that waits for nothing takes no place
        await ok('events', OPERATOR, '/api/events', { query: { limit: '1' } })
      } finally {
        for (const s of streams) s.close()
      }
      // the places come back when the streams end
      for (let i = 0; i < 50; i++) {
        const res = await call(OPERATOR, 'GET', '/api/events', {
          query: { wait: '1', since: `${Date.now() + 60_000}.0` }
        })
        if (res.status === 200) return
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      assert.fail('the places did not come back')
    })
  })

  it('sends, requests, reads the inbox and replies as the token’s own agent', async () => {
    await problem(helperToken, 'GET', `/api/agents/${coord}/inbox`, {}, 403, 'AgentTokenScopeError')
    await problem(
      helperToken,
      'POST',
      `/api/agents/${coord}/messages`,
      { body: { to: helper, type: 'x' } },
      403,
      'AgentTokenScopeError'
    )
    await grantTo(coord, `(cyberspace (mailbox (send ${helper})))`)
    // a request waits for the helper's answer
    const asking = ok('send', coordToken, `/api/agents/${coord}/messages`, {
      body: { to: helper, type: 'ask', body: { q: 'sum', n: [1, 2] }, request: true, timeout: 20_000 }
    })
    const inbox = await ok('inbox', helperToken, `/api/agents/${helper}/inbox`, { query: { wait: '20000' } })
    assert.equal(inbox.agent, helper)
    const question = inbox.messages[0]
    assert.equal(question.from, coord)
    assert.equal(question.request, true)
    assert.deepEqual(question.body, { q: 'sum', n: [1, 2] })
    await problem(
      helperToken,
      'POST',
      `/api/agents/${helper}/replies`,
      { body: { message: question.id, body: 3, error: 'no' } },
      400,
      'InvalidRequestError',
      { field: 'body.error' }
    )
    const replied = await ok('reply', helperToken, `/api/agents/${helper}/replies`, {
      body: { message: question.id, body: { sum: 3 } }
    })
    assert.deepEqual(replied, { agent: helper, id: question.id, answered: true })
    const answered = await asking
    assert.deepEqual(answered.response, { sum: 3 })
    await problem(
      helperToken,
      'POST',
      `/api/agents/${helper}/replies`,
      { body: { message: question.id } },
      404,
      'NoSuchPendingMessageError'
    )
    // a one-way message: delivered once the external agent's program confirms it
    const sending = ok('send', coordToken, `/api/agents/${coord}/messages`, {
      body: { to: helper, type: 'note', body: 'hi', id: 'note-1' }
    })
    const notes = await ok('inbox', helperToken, `/api/agents/${helper}/inbox`, {
      query: { wait: '20000', limit: '1' }
    })
    assert.equal(notes.messages[0].id, 'note-1')
    assert.equal(notes.messages[0].request, false)
    await ok('reply', helperToken, `/api/agents/${helper}/replies`, { body: { message: 'note-1' } })
    const sent = await sending
    assert.equal(sent.id, 'note-1')
    assert.equal(sent.to, helper)
    await problem(
      coordToken,
      'POST',
      `/api/agents/${coord}/messages`,
      { body: { to: helper, type: 'x', id: '../x' } },
      400,
      'InvalidRequestError',
      {
        field: 'body.id'
      }
    )
    await problem(
      coordToken,
      'POST',
      `/api/agents/${coord}/messages`,
      { body: { to: helper, type: 'x', body: { '/': { bytes: 'not base64!' } } } },
      400,
      'InvalidRequestError',
      {
        field: 'body.body'
      }
    )
    // the mailbox's own authority: the helper may send to no one
    await problem(
      helperToken,
      'POST',
      `/api/agents/${helper}/messages`,
      { body: { to: coord, type: 'x' } },
      403,
      'UnauthorizedSenderError'
    )
    const empty = await ok('inbox', coordToken, `/api/agents/${coord}/inbox`)
    assert.deepEqual(empty, { agent: coord, messages: [] })
  })

  it('lists, attaches, stops agents and mints, lists and revokes their tokens (the operator’s)', async () => {
    const own = await ok('hostedAgents', coordToken, '/api/node/agents')
    assert.deepEqual(
      own.agents.map((a: { principal: string }) => a.principal),
      [coord]
    )
    const seen: string[] = []
    let after: string | undefined
    for (let pages = 0; pages < 20; pages++) {
      const page = await ok('hostedAgents', OPERATOR, '/api/node/agents', {
        query: { limit: '2', ...(after != null ? { after } : {}) }
      })
      seen.push(...page.agents.map((a: { principal: string }) => a.principal))
      if (page.next == null) break
      after = page.next
    }
    assert.ok([coord, helper, outsider].every(p => seen.includes(p)))
    assert.deepEqual(seen, [...seen].sort())

    await problem(coordToken, 'POST', '/api/node/agents', { body: { kind: 'external' } }, 403, 'AgentTokenScopeError')
    await problem(OPERATOR, 'POST', '/api/node/agents', { body: { kind: 'nope' } }, 404, 'UnknownKindError')
    await problem(
      OPERATOR,
      'POST',
      '/api/node/agents',
      { body: { kind: 'nope', token: true } },
      400,
      'InvalidRequestError',
      {
        field: 'body.token'
      }
    )
    // attaching again to a running external agent mints another token
    const again = await ok('attachAgent', OPERATOR, '/api/node/agents', { body: { kind: 'external', id: 'helper' } })
    assert.equal(again.principal, helper)
    assert.equal(again.attached, true)
    const quiet = await ok('attachAgent', OPERATOR, '/api/node/agents', {
      body: { kind: 'external', id: 'quiet', token: false }
    })
    assert.equal(quiet.token, undefined)

    const minted = await ok('mintToken', OPERATOR, `/api/agents/${quiet.principal as string}/tokens`)
    assert.equal(minted.agent, quiet.principal)
    assert.equal((await ok('whoami', minted.token, '/api/whoami')).principal, quiet.principal)
    await problem(OPERATOR, 'POST', `/api/agents/${(await key()).id}/tokens`, {}, 404, 'AgentNotFoundHereError')
    const listed = await ok('listTokens', OPERATOR, '/api/tokens', { query: { agent: quiet.principal } })
    assert.deepEqual(
      listed.tokens.map((t: { id: string }) => t.id),
      [minted.id]
    )
    assert.ok(!JSON.stringify(listed).includes(minted.token), 'a list never shows a secret')
    await problem(coordToken, 'GET', '/api/tokens', {}, 403, 'AgentTokenScopeError')
    const revoked = await ok('revokeToken', OPERATOR, `/api/tokens/${minted.id as string}`)
    assert.equal(revoked.revoked[0].id, minted.id)
    await problem(minted.token, 'GET', '/api/whoami', {}, 401, 'ApiTokenError')
    await problem(OPERATOR, 'DELETE', `/api/tokens/${minted.id as string}`, {}, 404, 'TokenNotFoundError')
    await problem(OPERATOR, 'DELETE', '/api/tokens/xyz', {}, 400, 'InvalidRequestError', { field: 'params.tokenId' })

    // stopping an agent ends its tokens
    const stopping = await ok('mintToken', OPERATOR, `/api/agents/${quiet.principal as string}/tokens`)
    const stopped = await ok('stopAgent', OPERATOR, `/api/node/agents/${quiet.principal as string}`)
    assert.deepEqual(stopped, { agent: quiet.principal, stopped: true })
    await problem(stopping.token, 'GET', '/api/whoami', {}, 401, 'ApiTokenError')
    await problem(
      OPERATOR,
      'DELETE',
      `/api/node/agents/${quiet.principal as string}`,
      {},
      404,
      'AgentNotFoundHereError'
    )
  })

  it('finds agents in the registry by skill and gets one by principal', async () => {
    // the registry lists records of member hosts: this node becomes one
    await grantTo(node.spki.principal, '(cyberspace member)')
    const published = await node.registry.publish({
      name: 'reviewer',
      description: 'reviews code',
      version: '1.0.0',
      skills: [{ id: 'code-review', name: 'Code review', description: 'reviews a change', tags: ['review'] }]
    })
    const found = await ok('findAgents', coordToken, '/api/agents', { query: { skill: 'code-review' } })
    assert.deepEqual(
      found.agents.map((a: { agent: string }) => a.agent),
      [published.agent]
    )
    assert.equal(found.agents[0].card.name, 'reviewer')
    assert.equal(found.next, null)
    const record = await ok('getAgent', coordToken, `/api/agents/${published.agent}`)
    assert.equal(record.agent, published.agent)
    assert.equal(record.card.skills[0].id, 'code-review')
    await problem(coordToken, 'GET', '/api/agents', {}, 400, 'InvalidRequestError', { field: 'query.skill' })
    await problem(
      coordToken,
      'GET',
      '/api/agents',
      { query: { skill: 'x', after: 'junk' } },
      400,
      'InvalidRequestError',
      {
        field: 'query.after'
      }
    )
    await problem(coordToken, 'GET', `/api/agents/${(await key()).id}`, {}, 404, 'AgentNotFoundError')
    await problem(coordToken, 'GET', '/api/agents/not-a-principal', {}, 400, 'InvalidRequestError', {
      field: 'params.id'
    })
  })

  it('reads and writes documents with the caller’s rights; the node’s own are no token’s', async () => {
    const created = await ok('updateDocument', OPERATOR, '/api/documents/notes', {
      body: { type: 'or-map', update: { op: 'set', path: ['k'], value: 1 } }
    })
    assert.deepEqual(created.value, { k: 1 })
    assert.equal(typeof created.cid, 'string')
    await ok('updateDocument', OPERATOR, '/api/documents/open-notes', {
      body: { type: 'lww-register', public: true, update: { op: 'set', value: 'hello' } }
    })
    // the outsider reads what is public, nothing else
    const listed = await ok('listDocuments', outsiderToken, '/api/documents')
    const names = listed.documents.map((d: { name: string }) => d.name)
    assert.ok(names.includes('open-notes'))
    assert.ok(!names.includes('notes'))
    assert.ok(!names.some((n: string) => n.startsWith('session.') || n === 'cyberspace.agents'))
    assert.equal((await ok('getDocument', outsiderToken, '/api/documents/open-notes')).value, 'hello')
    await problem(outsiderToken, 'GET', '/api/documents/notes', {}, 404, 'DocumentNotFoundError')
    await problem(
      outsiderToken,
      'POST',
      '/api/documents/notes',
      { body: { update: { op: 'set', path: ['k'], value: 2 } } },
      403,
      'DocumentUnauthorizedError'
    )
    // granted: the agent writes as itself
    await grantTo(outsider, '(cyberspace (log (* set (read notes) (append notes))))')
    const written = await ok('updateDocument', outsiderToken, '/api/documents/notes', {
      body: { update: { op: 'increment', path: ['count'], value: 2 } }
    })
    assert.deepEqual(written.value, { k: 1, count: 2 })
    const doc = await node.state.find('notes')
    assert.ok(doc != null)
    assert.ok(
      (await ok('listDocuments', outsiderToken, '/api/documents')).documents.some(
        (d: { name: string }) => d.name === 'notes'
      )
    )
    // bad updates name the field
    await problem(
      OPERATOR,
      'POST',
      '/api/documents/notes',
      { body: { update: { op: 'set', value: 1 } } },
      400,
      'InvalidRequestError',
      {
        field: 'body.update'
      }
    )
    await problem(
      OPERATOR,
      'POST',
      '/api/documents/notes',
      { body: { update: { op: 'shout' } } },
      400,
      'InvalidRequestError',
      {
        field: 'body.update.op'
      }
    )
    await problem(
      OPERATOR,
      'POST',
      '/api/documents/fresh',
      { body: { public: true, update: { op: 'set', value: 1 } } },
      400,
      'InvalidRequestError',
      { field: 'body.public' }
    )
    await problem(
      OPERATOR,
      'POST',
      '/api/documents/fresh',
      { body: { update: { op: 'set', value: 1 } } },
      404,
      'DocumentNotFoundError'
    )
    await problem(
      OPERATOR,
      'POST',
      '/api/documents/notes',
      { body: { type: 'text', update: { op: 'set', value: 'x' } } },
      409,
      'LogTypeMismatchError'
    )
    // the node's own documents
    await problem(
      OPERATOR,
      'POST',
      '/api/documents/cyberspace.agents',
      { body: { update: { op: 'set', path: ['x'], value: 1 } } },
      403,
      'DocumentUnauthorizedError'
    )
    const operatorList = await ok('listDocuments', OPERATOR, '/api/documents', { query: { limit: '500' } })
    assert.ok(operatorList.documents.some((d: { name: string }) => d.name === 'notes'))
    await problem(OPERATOR, 'GET', '/api/documents/Bad%20Name', {}, 400, 'InvalidRequestError', {
      field: 'params.name'
    })
  })

  it("issues certificates (the operator's) and lists them: an agent sees those of its own agent", async () => {
    const issued = await ok('issueCertificate', OPERATOR, '/api/certificates', {
      body: { subject: helper, tag: '(cyberspace (tool echo))', notAfter: '+1d' }
    })
    assert.equal(issued.issuer, node.spki.principal)
    assert.equal(issued.subject, helper)
    assert.match(issued.hash, /^[0-9a-f]{64}$/)
    await problem(
      coordToken,
      'POST',
      '/api/certificates',
      { body: { subject: helper, tag: '(x)' } },
      403,
      'AgentTokenScopeError'
    )
    await problem(
      OPERATOR,
      'POST',
      '/api/certificates',
      { body: { subject: helper, tag: '(unclosed' } },
      400,
      'SexpSyntaxError'
    )
    const all = await ok('listCertificates', OPERATOR, '/api/certificates', { query: { limit: '500' } })
    assert.ok(all.certificates.some((c: { hash: string }) => c.hash === issued.hash))
    const mine = await ok('listCertificates', helperToken, '/api/certificates', { query: { limit: '500' } })
    assert.ok(mine.certificates.length > 0)
    for (const c of mine.certificates) assert.ok(c.subject === helper || c.issuer === helper, JSON.stringify(c))
    const coords = await ok('listCertificates', coordToken, '/api/certificates', { query: { subject: helper } })
    assert.deepEqual(coords.certificates, [], "coord sees none of the helper's")
    const bySubject = await ok('listCertificates', OPERATOR, '/api/certificates', {
      query: { subject: coord, limit: '1' }
    })
    assert.equal(bySubject.certificates.length, 1)
    assert.equal(bySubject.certificates[0].subject, coord)
    assert.equal(typeof bySubject.next, 'string', 'coord holds more than one: a next page')
  })
})

// ------------------------------------------------------------------ a server-sent events reader

interface SseStream {
  /** The first `n` events (blocks with data) after the stream opened. */
  events(n: number): Promise<Array<{ id?: string; event?: string; data: string }>>
  until(test: (text: string) => boolean): Promise<string>
  /** Everything the stream sent, once it ended. */
  ended(): Promise<string>
  pause(): void
  resume(): void
  close(): void
}

/** Opens GET /api/events/stream with node:http (so the reader can stop reading: a slow consumer). */
async function openStream(
  base: string,
  token: string,
  options: { query?: Record<string, string>; lastEventId?: string }
): Promise<SseStream> {
  const url = new URL('/api/events/stream', base)
  for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v)
  let text = ''
  let done = false
  const waiters = new Set<() => void>()
  const changed = (): void => {
    for (const w of [...waiters]) w()
  }
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'text/event-stream',
          ...(options.lastEventId != null ? { 'last-event-id': options.lastEventId } : {})
        }
      },
      resolve
    )
    req.on('error', reject)
    req.end()
  })
  if (res.statusCode !== 200) {
    res.resume()
    throw new Error(`stream answered ${res.statusCode ?? 0}`)
  }
  res.setEncoding('utf8')
  res.on('data', (chunk: string) => {
    text += chunk
    changed()
  })
  res.on('close', () => {
    done = true
    changed()
  })
  const wait = async (test: () => boolean): Promise<void> => {
    const deadline = Date.now() + 30_000
    while (!test()) {
      if (done) throw new Error(`the stream ended: ${text.slice(-500)}`)
      if (Date.now() > deadline) throw new Error(`no such text in 30 s: ${text.slice(-500)}`)
      await new Promise<void>(resolve => {
        const timer = setTimeout(finish, 1000)
        function finish(): void {
          clearTimeout(timer)
          waiters.delete(finish)
          resolve()
        }
        waiters.add(finish)
      })
    }
  }
  const parsed = (): Array<{ id?: string; event?: string; data: string }> =>
    text
      .split('\n\n')
      .slice(0, -1)
      .map(block => {
        const fields: { id?: string; event?: string; data: string } = { data: '' }
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) fields.id = line.slice(4)
          else if (line.startsWith('event: ')) fields.event = line.slice(7)
          else if (line.startsWith('data: ')) fields.data += line.slice(6)
        }
        return fields
      })
      .filter(e => e.data !== '')
  return {
    events: async n => {
      await wait(() => parsed().length >= n)
      return parsed().slice(0, n)
    },
    until: async test => {
      await wait(() => test(text))
      return text
    },
    ended: async () => {
      const deadline = Date.now() + 30_000
      while (!done && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
      assert.ok(done, 'the stream ended')
      return text
    },
    pause: () => res.pause(),
    resume: () => res.resume(),
    close: () => res.destroy()
  }
}

describe('AgentTokens.watch', () => {
  it("aborts exactly the revoked token's waits, with ApiTokenError; a token not live aborts at once; release forgets", () => {
    const tokens = new AgentTokens()
    const a = tokens.mint('z6MkAgentA' as PrincipalId)
    const b = tokens.mint('z6MkAgentB' as PrincipalId)
    const waitsA = Array.from({ length: 20 }, () => tokens.watch(a.id))
    const waitB = tokens.watch(b.id)
    assert.equal(tokens.watching(), 21)
    waitsA[0].release()
    assert.equal(tokens.watching(), 20)
    tokens.revoke({ id: a.id })
    assert.ok(waitsA.slice(1).every(w => w.signal.aborted))
    assert.equal((waitsA[1].signal.reason as Error).name, 'ApiTokenError')
    assert.equal(waitsA[0].signal.aborted, false, 'a released wait is not told')
    assert.equal(waitB.signal.aborted, false, "another token's wait goes on")
    assert.equal(tokens.watching(), 1)
    const late = tokens.watch(a.id)
    assert.equal(late.signal.aborted, true, 'a revoked token waits for nothing')
    assert.equal(tokens.watching(), 1)
  })
})
