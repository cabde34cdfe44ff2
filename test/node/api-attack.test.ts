/**
 * The public HTTP API (node/api/server.ts, node/api/v1/) played by its attackers, over real HTTP on
 * 127.0.0.1 against an in-process memory node serving the API with its MCP and A2A mounts, as
 * node/platform.ts mounts them:
 *
 * 1. a program holding an agent's token, acting as another agent or doing the operator's work;
 * 2. a web page in the user's browser: DNS rebinding (a foreign Host), cross-origin and cross-site
 *    requests, CSRF with simple requests (text/plain and form bodies, no Authorization);
 * 3. anyone who can open connections to the port;
 * 4. a slow or greedy client: huge headers, paths, queries and bodies, deep JSON, pathological
 *    percent-encoding, many streams and long polls, a stream reader that never reads;
 * 5. a hostile cursor or Last-Event-ID (another run's, forged, huge, malformed);
 * 6. a token reading what its agent may not: boards, events, documents, certificates, other
 *    agents' inboxes and tasks, metrics, and what error answers say.
 *
 * Each test plays an attack and states the defence that holds; those that were findings of the
 * review failed before their fix (per-address connection caps, per-agent waiter places, stalled
 * streams cut, revoked long polls ended, boards opened only for those who may create on them).
 */
import { strict as assert } from 'node:assert'
import { connect } from 'node:net'
import { base64url } from 'multiformats/bases/base64'
import { a2aMounts, A2A_RPC_PREFIX } from '../../node/a2a/mount.ts'
import { AGENT_TOKEN_ROUTES, MAX_INBOX_WAITERS } from '../../node/api/agent-routes.ts'
import { checkApiBind, MAX_BODY_BYTES } from '../../node/api/http.ts'
import { startApiServer } from '../../node/api/server.ts'
import { v1Handlers } from '../../node/api/v1/handlers.ts'
import { MAX_EVENT_WAITERS } from '../../node/api/v1/handlers-events.ts'
import { WORK_TOKEN_ROUTES } from '../../node/api/work-routes.ts'
import { mcpMount } from '../../node/mcp/http.ts'
import { ROUTES } from '../../src/api/routes.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { ApiServer } from '../../node/api/server.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'
import type { Socket } from 'node:net'

const OPERATOR = 'operator-t0ken-of-the-attack-tests-0123456789abcdef'
/** A board alice may do everything on, and bob nothing. */
const SECRET = 'secret'
/** ms between heartbeats of a stream here; events a stream holds for a slow reader. */
const HEARTBEAT = 300
const BACKLOG = 20

/** An answer's JSON, read field by field. */
type Json = any

interface Answer {
  status: number
  headers: Headers
  text: string
  body: Json
}

interface Agent {
  principal: PrincipalId
  token: string
  tokenId: string
}

interface CallOptions {
  /** Sent as JSON (content-type application/json) unless `raw` is given. */
  body?: unknown
  /** A body sent as it is, with `contentType`. */
  raw?: string
  contentType?: string
  query?: Record<string, string>
  headers?: Record<string, string>
}

/** Stack frames, source paths and file URLs: what no answer may carry. */
const LEAKS = [/\n\s+at /, /node_modules/, /file:\/\//, /\.ts:\d+/, new RegExp(process.cwd().replace(/[/.]/g, '\\$&'))]

function assertNoLeak(text: string, what: string): void {
  for (const leak of LEAKS) assert.doesNotMatch(text, leak, `${what} leaks ${String(leak)}: ${text.slice(0, 600)}`)
}

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/** A cursor of the journal's format ([run, count, wall, logical], multibase base64url). */
function cursorOf(fields: unknown[]): string {
  return base64url.encode(new TextEncoder().encode(JSON.stringify(fields)))
}

function fieldsOf(cursor: string): unknown[] {
  return JSON.parse(new TextDecoder().decode(base64url.decode(cursor))) as unknown[]
}

/**
 * A request written on a socket of its own, as bytes: what the whole answer was (until the server
 * closes, or `ms` pass). For what fetch will not send: a missing Host, a huge header, a bad request line.
 */
async function rawRequest(port: number, text: string, ms = 5_000): Promise<string> {
  return await new Promise(resolve => {
    const socket = connect(port, '127.0.0.1')
    let out = ''
    const done = (): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(out)
    }
    const timer = setTimeout(done, ms)
    socket.on('data', d => (out += d.toString('latin1')))
    socket.on('end', done)
    socket.on('close', done)
    socket.on('error', done)
    socket.write(text)
  })
}

/** An open server-sent event stream read through fetch: its text so far, read until a condition holds. */
interface OpenStream {
  status: number
  text: () => string
  /** Reads until `done(text)` holds, the stream ends, or `ms` pass; whether it held. */
  until: (done: (text: string) => boolean, ms?: number) => Promise<boolean>
  ended: () => boolean
  close: () => void
}

async function openStream(url: URL, headers: Record<string, string>): Promise<OpenStream> {
  const controller = new AbortController()
  const res = await fetch(url, { headers, signal: controller.signal })
  let text = ''
  let ended = false
  const reader = res.body?.getReader()
  const decoder = new TextDecoder()
  const stream: OpenStream = {
    status: res.status,
    text: () => text,
    ended: () => ended,
    close: () => {
      controller.abort()
    },
    until: async (done, ms = 10_000) => {
      const deadline = Date.now() + ms
      while (!done(text) && !ended && reader != null) {
        const left = deadline - Date.now()
        if (left <= 0) return false
        let timer: ReturnType<typeof setTimeout> | undefined
        const chunk = await Promise.race([
          reader.read().catch(() => ({ done: true, value: undefined })),
          new Promise<'timeout'>(resolve => (timer = setTimeout(() => resolve('timeout'), left)))
        ])
        clearTimeout(timer)
        if (chunk === 'timeout') return done(text)
        if (chunk.done) ended = true
        else text += decoder.decode(chunk.value, { stream: true })
      }
      return done(text)
    }
  }
  if (reader == null) ended = true
  return stream
}

describe('the public API under attack', function () {
  this.timeout(120_000)
  let node: CyberspaceNode
  let server: ApiServer
  let root: Key
  let alice: Agent
  let bob: Agent
  let attached = 0

  const call = async (
    token: string | undefined,
    method: string,
    path: string,
    options: CallOptions = {}
  ): Promise<Answer> => {
    const url = new URL(path, server.url)
    for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.append(k, v)
    const headers: Record<string, string> = { ...options.headers }
    if (token != null) headers.authorization = `Bearer ${token}`
    let body: string | undefined
    if (options.raw !== undefined) {
      body = options.raw
      headers['content-type'] = options.contentType ?? 'application/json'
    } else if (options.body !== undefined) {
      body = JSON.stringify(options.body)
      headers['content-type'] = 'application/json'
    }
    const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(60_000) })
    const text = await res.text()
    let parsed: Json
    try {
      parsed = text === '' ? undefined : JSON.parse(text)
    } catch {
      parsed = undefined
    }
    assertNoLeak(text, `${method} ${path}`)
    return { status: res.status, headers: res.headers, text, body: parsed }
  }

  const ok = async (token: string, method: string, path: string, options: CallOptions = {}): Promise<Json> => {
    const res = await call(token, method, path, options)
    assert.equal(res.status, 200, `${method} ${path}: ${res.text.slice(0, 600)}`)
    return res.body
  }

  /** Fails unless the answer is a problem (RFC 9457) of `status` named `name`, naming `field` if given. */
  const problem = async (
    token: string | undefined,
    method: string,
    path: string,
    options: CallOptions,
    status: number,
    name: string,
    field?: string
  ): Promise<Json> => {
    const res = await call(token, method, path, options)
    assert.equal(res.status, status, `${method} ${path}: ${res.text.slice(0, 600)}`)
    assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/, `${method} ${path}`)
    assert.equal(res.body?.name, name, `${method} ${path}: ${res.text.slice(0, 600)}`)
    assert.equal(res.body.status, status)
    assert.equal(res.headers.get('access-control-allow-origin'), null, 'no CORS grant on any answer')
    if (field != null)
      assert.ok(
        (res.body.errors ?? []).some((e: { field: string }) => e.field === field),
        `expected ${field} named: ${res.text.slice(0, 600)}`
      )
    return res.body
  }

  const attach = async (id: string): Promise<Agent> => {
    const a = await ok(OPERATOR, 'POST', '/api/node/agents', { body: { kind: 'external', id: `${id}-${attached++}` } })
    return { principal: a.principal, token: a.token, tokenId: a.tokenId }
  }

  const grantTo = async (principal: PrincipalId, tagText: string): Promise<void> => {
    await node.spki.addCert(await grant(root, { kind: 'key', principal }, tagText, { propagate: false }))
  }

  /** Records an event every agent's token may see (a member's update), and waits for it to join the feed. */
  const memberEvent = async (subject: string, data: unknown = {}): Promise<void> => {
    node.work.events.record({ hlc: [Date.now(), 0], source: 'membership', type: 'member:update', subject, data })
    await node.work.events.settled()
  }

  /** The cursor after the last event `token` may read now. */
  const endCursor = async (token: string): Promise<string> => {
    await node.work.events.settled()
    let page = await ok(token, 'GET', '/api/events', { query: { limit: '1000' } })
    for (let pages = 0; page.more === true && pages < 200; pages++)
      page = await ok(token, 'GET', '/api/events', { query: { limit: '1000', after: page.cursor } })
    return page.cursor
  }

  const stream = async (
    token: string,
    path = '/api/events/stream',
    headers: Record<string, string> = {}
  ): Promise<OpenStream> =>
    await openStream(new URL(path, server.url), { authorization: `Bearer ${token}`, ...headers })

  before(async () => {
    node = await memoryNode({ registryOptions: { lookupTimeout: 600_000 } })
    server = await startApiServer({
      node,
      token: OPERATOR,
      port: 0,
      pageDir: '/nonexistent',
      handlers: ({ node, tokens }) => v1Handlers(node, { tokens, heartbeat: HEARTBEAT, backlog: BACKLOG }),
      // as node/platform.ts mounts them
      mounts: ({ url, tokens }) => [mcpMount({ apiUrl: url }), ...a2aMounts({ node, url, tokens })]
    })
    root = await key()
    await node.spki.addAclEntry(root.id, tag('(cyberspace)'))
    alice = await attach('alice')
    bob = await attach('bob')
    await grantTo(alice.principal, `(cyberspace (work ${SECRET}))`)
    await ok(alice.token, 'POST', '/api/worknodes', {
      body: { board: SECRET, id: 't1', title: 'the plan', kind: 'task' }
    })
  })

  after(async () => {
    await server.close()
    await node.stop()
  })

  // ================================================================== 1. a token beyond its agent

  describe('an agent token beyond its agent', function () {
    it('is refused on every operator route of the table (403 AgentTokenScopeError), before anything is read', async () => {
      const nobody = (await key()).id
      const operatorRoutes = Object.entries(ROUTES).filter(([, spec]) => spec.auth === 'operator')
      assert.ok(operatorRoutes.length >= 7, 'the table has operator routes')
      for (const [name, spec] of operatorRoutes) {
        const path = spec.path.replace('{id}', nobody).replace('{tokenId}', alice.tokenId).replace('{board}', SECRET)
        // a body that would do harm if the check came late: stop alice, revoke her token, open a board
        const body =
          spec.method === 'POST' ? { kind: 'external', name: 'opened-by-bob', subject: bob.principal } : undefined
        const answer = await problem(
          bob.token,
          spec.method,
          path,
          body == null ? {} : { body },
          403,
          'AgentTokenScopeError'
        )
        assert.match(answer.detail, /operator token/, name)
      }
      // alice's token still works: the revoke above was refused
      await ok(alice.token, 'GET', '/api/whoami')
    })

    it("is refused on every control-API (v0) route that is not its own agent's", async () => {
      const v0 = [
        'GET id',
        'GET peers',
        'GET key',
        'GET cluster',
        'GET cluster/reshare',
        'GET dht/get',
        'GET fleet',
        'GET members',
        'GET pubsub/messages',
        'GET pubsub/peers',
        'GET spki/acl',
        'GET spki/certs',
        'GET spki/crls',
        'GET state',
        'GET state/get',
        'GET state/watch',
        'GET agents/tokens',
        'POST agents',
        'POST agents/publish',
        'POST agents/stop',
        'POST agents/token',
        'POST agents/tokens/revoke',
        'POST cluster/decrypt',
        'POST cluster/encrypt',
        'POST cluster/init',
        'POST cluster/issue',
        'POST cluster/refresh',
        'POST cluster/repair',
        'POST cluster/reshare',
        'POST cluster/sign',
        'POST dht/put',
        'POST members/leave',
        'POST members/meta',
        'POST pubsub/publish',
        'POST pubsub/subscribe',
        'POST pubsub/unsubscribe',
        'POST spki/acl',
        'POST spki/acl/remove',
        'POST spki/import',
        'POST spki/issue',
        'POST spki/name',
        'POST spki/revoke',
        'POST spki/verify',
        'POST state/delete',
        'POST state/open',
        'POST state/update',
        'POST work/boards'
      ]
      for (const key of v0) {
        assert.ok(!AGENT_TOKEN_ROUTES.has(key) && !WORK_TOKEN_ROUTES.has(key), `${key} is an agent's route`)
        const [method, path] = key.split(' ')
        await problem(
          bob.token,
          method,
          `/api/v0/${path}`,
          method === 'POST' ? { body: { agent: bob.principal } } : {},
          403,
          'AgentTokenScopeError'
        )
      }
    })

    it('acts and reads only as its own agent, on v1 and v0 alike (403 AgentTokenScopeError)', async () => {
      const a = alice.principal
      await problem(
        bob.token,
        'POST',
        '/api/worknodes',
        { body: { board: SECRET, title: 'x', as: a } },
        403,
        'AgentTokenScopeError'
      )
      await problem(
        bob.token,
        'POST',
        `/api/tasks/${SECRET}:t1/claim`,
        { body: { as: a } },
        403,
        'AgentTokenScopeError'
      )
      await problem(
        bob.token,
        'PUT',
        `/api/worknodes/${SECRET}:t1`,
        { body: { title: 'mine', as: a } },
        403,
        'AgentTokenScopeError'
      )
      await problem(
        bob.token,
        'DELETE',
        `/api/worknodes/${SECRET}:t1`,
        { query: { as: a } },
        403,
        'AgentTokenScopeError'
      )
      await problem(bob.token, 'GET', `/api/agents/${a}/tasks`, {}, 403, 'AgentTokenScopeError')
      await problem(bob.token, 'GET', `/api/agents/${a}/inbox`, {}, 403, 'AgentTokenScopeError')
      await problem(
        bob.token,
        'POST',
        `/api/agents/${a}/messages`,
        { body: { to: bob.principal, type: 'x' } },
        403,
        'AgentTokenScopeError'
      )
      await problem(
        bob.token,
        'POST',
        `/api/agents/${a}/replies`,
        { body: { message: 'm1', body: 1 } },
        403,
        'AgentTokenScopeError'
      )
      await problem(
        bob.token,
        'POST',
        '/api/documents/notes',
        { body: { type: 'or-map', update: { op: 'set', path: ['k'], value: 1 }, as: a } },
        403,
        'AgentTokenScopeError'
      )
      // v0: the same refusals
      await problem(bob.token, 'GET', '/api/v0/agents/inbox', { query: { agent: a } }, 403, 'AgentTokenScopeError')
      await problem(
        bob.token,
        'GET',
        '/api/v0/agents/inbox/events',
        { query: { agent: a } },
        403,
        'AgentTokenScopeError'
      )
      await problem(
        bob.token,
        'POST',
        '/api/v0/agents/send',
        { body: { from: a, to: bob.principal, type: 'x' } },
        403,
        'AgentTokenScopeError'
      )
      await problem(
        bob.token,
        'POST',
        '/api/v0/work/op',
        { body: { board: SECRET, as: a, op: { op: 'claim', item: 't1' } } },
        403,
        'AgentTokenScopeError'
      )
      await problem(
        bob.token,
        'GET',
        '/api/v0/work/items',
        { query: { board: SECRET, as: a } },
        403,
        'AgentTokenScopeError'
      )
      // what it lists of the hosted agents is itself
      const hosted = await ok(bob.token, 'GET', '/api/node/agents')
      assert.deepEqual(
        hosted.agents.map((x: { principal: string }) => x.principal),
        [bob.principal]
      )
      const who = await ok(bob.token, 'GET', '/api/whoami')
      assert.equal(who.principal, bob.principal)
      // nothing changed on t1
      const t1 = await ok(OPERATOR, 'GET', `/api/worknodes/${SECRET}:t1`)
      assert.equal(t1.title, 'the plan')
      assert.equal(t1.status, 'submitted')
    })

    it('gets no metrics (403), and neither does a request without a token (401)', async () => {
      await problem(bob.token, 'GET', '/metrics', {}, 403, 'AgentTokenScopeError')
      await problem(undefined, 'GET', '/metrics', {}, 401, 'ApiTokenError')
      await problem('x'.repeat(43), 'GET', '/metrics', {}, 401, 'ApiTokenError')
    })

    it('a wrong token of any length or shape is 401, never 500: the operator token, an agent token and neither', async () => {
      const wrong = [
        '',
        'x',
        OPERATOR.slice(0, -1),
        `${OPERATOR}x`,
        OPERATOR.toUpperCase(),
        `${alice.token.slice(0, -1)}${alice.token.endsWith('A') ? 'B' : 'A'}`,
        alice.token.replace(/./, c => (c === 'A' ? 'B' : 'A')),
        'y'.repeat(8000),
        '\u00e9'.repeat(OPERATOR.length / 2)
      ]
      for (const token of wrong) {
        const answer = await problem(token, 'GET', '/api/whoami', {}, 401, 'ApiTokenError')
        assert.ok(
          !answer.detail.includes(OPERATOR) && !answer.detail.includes(alice.token),
          'the answer names no token'
        )
      }
      // the token only in the Authorization header, as a bearer token
      await problem(undefined, 'GET', '/api/whoami', { query: { token: OPERATOR } }, 401, 'ApiTokenError')
      await problem(
        undefined,
        'GET',
        '/api/whoami',
        { headers: { authorization: `Basic ${OPERATOR}` } },
        401,
        'ApiTokenError'
      )
      await problem(undefined, 'GET', '/api/whoami', { headers: { cookie: `token=${OPERATOR}` } }, 401, 'ApiTokenError')
    })
  })

  // ================================================================== revoked tokens, everywhere

  describe('a revoked token', function () {
    it('is refused on every way in: v1, v0, /metrics, /mcp, /a2a (401)', async () => {
      const carol = await attach('carol')
      await ok(carol.token, 'GET', '/api/whoami')
      await ok(OPERATOR, 'DELETE', `/api/tokens/${carol.tokenId}`)
      await problem(carol.token, 'GET', '/api/whoami', {}, 401, 'ApiTokenError')
      await problem(carol.token, 'GET', '/api/events', {}, 401, 'ApiTokenError')
      await problem(carol.token, 'GET', '/api/events/stream', {}, 401, 'ApiTokenError')
      await problem(carol.token, 'GET', `/api/agents/${carol.principal}/inbox`, {}, 401, 'ApiTokenError')
      await problem(carol.token, 'GET', '/api/v0/agents/hosted', {}, 401, 'ApiTokenError')
      await problem(
        carol.token,
        'GET',
        '/api/v0/agents/inbox/events',
        { query: { agent: carol.principal } },
        401,
        'ApiTokenError'
      )
      await problem(carol.token, 'GET', '/metrics', {}, 401, 'ApiTokenError')
      const initialize = {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } }
      }
      await problem(
        carol.token,
        'POST',
        '/mcp',
        { body: initialize, headers: { accept: 'application/json, text/event-stream' } },
        401,
        'ApiTokenError'
      )
      await problem(
        carol.token,
        'POST',
        `${A2A_RPC_PREFIX}/${carol.principal}`,
        { body: { jsonrpc: '2.0', id: 1, method: 'GetTask', params: { id: 'x' } } },
        401,
        'ApiTokenError'
      )
    })

    it("ends the token's open streams and long polls: v1 events stream, v1 inbox, v0 inbox stream", async () => {
      const carol = await attach('carol')
      const events = await stream(carol.token)
      assert.equal(events.status, 200)
      const inboxStream = await stream(carol.token, `/api/v0/agents/inbox/events?agent=${carol.principal}`)
      assert.equal(inboxStream.status, 200)
      assert.ok(await events.until(t => t.includes(': events after')))
      assert.ok(await inboxStream.until(t => t.includes(': attached')))
      const poll = call(carol.token, 'GET', `/api/agents/${carol.principal}/inbox`, { query: { wait: '30000' } })
      await sleep(300)
      await ok(OPERATOR, 'DELETE', `/api/tokens/${carol.tokenId}`)
      const polled = await poll
      assert.equal(polled.status, 401, polled.text)
      assert.equal(polled.body.name, 'ApiTokenError')
      assert.ok(await events.until(t => /event: end\ndata: .*ApiTokenError/.test(t)), events.text())
      assert.ok(await inboxStream.until(t => /event: end\ndata: .*ApiTokenError/.test(t)), inboxStream.text())
      events.close()
      inboxStream.close()
    })

    it('a long poll of /api/events whose token is revoked while it waits answers 401, not the events that came after', async () => {
      const carol = await attach('carol')
      const after = await endCursor(carol.token)
      const poll = call(carol.token, 'GET', '/api/events', { query: { after, wait: '20000' } })
      await sleep(300)
      await ok(OPERATOR, 'DELETE', `/api/tokens/${carol.tokenId}`)
      // an event carol's token could read while it was live
      await memberEvent('zAfterTheRevocation', { secret: 'told to a revoked token' })
      const answer = await poll
      assert.ok(
        !answer.text.includes('told to a revoked token'),
        `a revoked token read an event: ${answer.text.slice(0, 400)}`
      )
      assert.equal(answer.status, 401, answer.text.slice(0, 400))
      assert.equal(answer.body.name, 'ApiTokenError')
    })
  })

  // ================================================================== 2. a web page in the browser

  describe("a web page in the user's browser", function () {
    it('is refused under a foreign Host (DNS rebinding) on every part of the port, and without one', async () => {
      const port = server.port
      for (const path of [
        '/api/whoami',
        '/api/v0/id',
        '/metrics',
        '/mcp',
        '/',
        '/api/openapi.json',
        '/bootstrap.json',
        `${A2A_RPC_PREFIX}/${alice.principal}`
      ]) {
        const answer = await rawRequest(
          port,
          `GET ${path} HTTP/1.1\r\nHost: attacker.example:${port}\r\nAuthorization: Bearer ${OPERATOR}\r\nConnection: close\r\n\r\n`
        )
        assert.match(answer, /^HTTP\/1\.1 403 /, `${path}: ${answer.slice(0, 300)}`)
        assert.match(answer, /ForbiddenHostError/)
      }
      for (const host of [
        `127.0.0.1.attacker.example:${port}`,
        `127.0.0.1:${port}.`,
        `127.0.0.1`,
        `127.0.0.1:${port + 1}`,
        `[::ffff:127.0.0.1]:${port}`
      ]) {
        const answer = await rawRequest(
          port,
          `GET /api/whoami HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${OPERATOR}\r\nConnection: close\r\n\r\n`
        )
        assert.match(answer, /^HTTP\/1\.1 403 /, `${host}: ${answer.slice(0, 300)}`)
      }
      // HTTP/1.0 without a Host at all
      const none = await rawRequest(port, `GET /api/whoami HTTP/1.0\r\nAuthorization: Bearer ${OPERATOR}\r\n\r\n`)
      assert.match(none, /^HTTP\/1\.1 403 /)
      // the names it is bound under answer
      const own = await rawRequest(
        port,
        `GET /api/whoami HTTP/1.1\r\nHost: LOCALHOST:${port}\r\nAuthorization: Bearer ${OPERATOR}\r\nConnection: close\r\n\r\n`
      )
      assert.match(own, /^HTTP\/1\.1 200 /)
    })

    it('is refused from another origin or cross-site, even with the operator token, on v1, v0, /metrics and /mcp', async () => {
      const paths: Array<[string, string]> = [
        ['GET', '/api/whoami'],
        ['GET', '/api/v0/id'],
        ['GET', '/metrics'],
        ['POST', '/mcp'],
        ['GET', '/api/events/stream']
      ]
      const foreign: Array<Record<string, string>> = [
        { origin: 'http://attacker.example' },
        { origin: 'null' },
        { origin: `http://127.0.0.1:${server.port + 1}` },
        { origin: `https://127.0.0.1:${server.port}` },
        { 'sec-fetch-site': 'cross-site' }
      ]
      for (const [method, path] of paths) {
        for (const headers of foreign)
          await problem(
            OPERATOR,
            method,
            path,
            method === 'POST' ? { body: {}, headers } : { headers },
            403,
            'ForbiddenHostError'
          )
      }
      // its own origin is fine
      await ok(OPERATOR, 'GET', '/api/whoami', { headers: { origin: server.url, 'sec-fetch-site': 'same-origin' } })
    })

    it('cannot forge a request with a simple (CSRF) request: no token, text/plain and form bodies change nothing', async () => {
      const before = await ok(OPERATOR, 'GET', '/api/worknodes', { query: { board: SECRET } })
      const create = JSON.stringify({ board: SECRET, title: 'csrf', as: alice.principal })
      await problem(
        undefined,
        'POST',
        '/api/worknodes',
        { raw: create, contentType: 'text/plain' },
        401,
        'ApiTokenError'
      )
      await problem(
        undefined,
        'POST',
        '/api/worknodes',
        { raw: 'board=secret&title=csrf', contentType: 'application/x-www-form-urlencoded' },
        401,
        'ApiTokenError'
      )
      await problem(
        undefined,
        'POST',
        '/api/v0/work/op',
        { raw: create, contentType: 'text/plain' },
        401,
        'ApiTokenError'
      )
      await problem(undefined, 'POST', '/mcp', { raw: '{}', contentType: 'text/plain' }, 401, 'ApiTokenError')
      // with a token, a body that is not JSON by its type is not read as JSON
      await problem(
        alice.token,
        'POST',
        '/api/worknodes',
        { raw: create, contentType: 'text/plain' },
        415,
        'UnsupportedMediaTypeError'
      )
      await problem(
        OPERATOR,
        'POST',
        '/api/v0/work/op',
        { raw: create, contentType: 'text/plain' },
        415,
        'UnsupportedMediaTypeError'
      )
      const after = await ok(OPERATOR, 'GET', '/api/worknodes', { query: { board: SECRET } })
      assert.equal(after.items.length, before.items.length)
      // no CORS: a preflight grants nothing
      const preflight = await call(undefined, 'OPTIONS', '/api/worknodes', {
        headers: {
          origin: 'http://attacker.example',
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization'
        }
      })
      assert.equal(preflight.headers.get('access-control-allow-origin'), null)
      assert.equal(preflight.headers.get('access-control-allow-headers'), null)
      assert.ok(preflight.status >= 400, `a preflight is refused: ${preflight.status}`)
    })
  })

  // ================================================================== 3. anyone on the network

  describe('anyone who can open connections to the port', function () {
    it('the API refuses to listen off loopback in plain HTTP unless told to', () => {
      for (const host of ['0.0.0.0', '::', '192.168.1.10'])
        assert.throws(() => checkApiBind({ host }), { name: 'ApiBindError' })
      assert.throws(() => checkApiBind({ host: 'attacker.example' }), { name: 'ApiBindError' })
      checkApiBind({ host: '0.0.0.0', insecure: true })
      checkApiBind({ host: '0.0.0.0', tls: { cert: 'x', key: 'y' } })
    })

    it('64 connections that never send a byte (no token) do not lock the operator out of the API', async () => {
      const sockets: Socket[] = []
      try {
        for (let i = 0; i < 64; i++) {
          const socket = connect(server.port, '127.0.0.1')
          socket.on('error', () => {})
          sockets.push(socket)
        }
        await Promise.all(sockets.map(async s => await new Promise(resolve => s.once('connect', resolve))))
        await sleep(200)
        // the operator, on a connection of its own (as the CLI opens one)
        const port = server.port
        const answer = await rawRequest(
          port,
          `GET /api/whoami HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${OPERATOR}\r\nConnection: close\r\n\r\n`
        )
        assert.match(
          answer,
          /^HTTP\/1\.1 200 /,
          `the operator could not reach the API: ${JSON.stringify(answer.slice(0, 200))}`
        )
      } finally {
        for (const s of sockets) s.destroy()
        await sleep(300)
      }
      // and it serves once they are gone
      await ok(OPERATOR, 'GET', '/api/whoami')
    })
  })

  // ================================================================== 4. slow and greedy clients

  describe('a slow or greedy client', function () {
    it('a header too large or a malformed request is answered as a problem too, not a bare 431/400', async () => {
      const port = server.port
      const big = await rawRequest(
        port,
        `GET /api/whoami HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Big: ${'a'.repeat(20_000)}\r\nConnection: close\r\n\r\n`
      )
      assert.match(big, /^HTTP\/1\.1 431 /)
      const garbage = await rawRequest(port, 'NOT-HTTP\r\n\r\n')
      assert.match(garbage, /^HTTP\/1\.1 400 /)
      for (const answer of [big, garbage]) {
        assert.match(
          answer,
          /content-type: application\/problem\+json/i,
          `not a problem: ${JSON.stringify(answer.slice(0, 200))}`
        )
        assert.match(answer, /"status":4\d\d/)
      }
    })

    it('paths, queries and percent-encoding past the limits are refused as named problems, and the node serves on', async () => {
      await problem(bob.token, 'GET', `/api${'/x'.repeat(40)}`, {}, 404, 'RouteNotFoundError')
      await problem(
        bob.token,
        'GET',
        `/api/worknodes/${'%41'.repeat(4000)}`,
        {},
        400,
        'InvalidRequestError',
        'params.id'
      )
      await problem(
        bob.token,
        'GET',
        `/api/documents/${'a'.repeat(6000)}`,
        {},
        400,
        'InvalidRequestError',
        'params.name'
      )
      await problem(bob.token, 'GET', '/api/worknodes/%E0%A4%A', {}, 400, 'InvalidRequestError', 'path')
      await problem(bob.token, 'GET', '/api/worknodes/%', {}, 400, 'InvalidRequestError', 'path')
      await problem(bob.token, 'GET', '/api/worknodes/secret:%00', {}, 400, 'InvalidRequestError', 'params.id')
      await problem(
        bob.token,
        'GET',
        '/api/documents/..%2F..%2Fapi-token',
        {},
        400,
        'InvalidRequestError',
        'params.name'
      )
      const many: Record<string, string> = {}
      for (let i = 0; i < 40; i++) many[`k${i}`] = 'v'
      await problem(bob.token, 'GET', '/api/boards', { query: many }, 400, 'InvalidRequestError', 'query')
      const twice = new URL('/api/boards?limit=1&limit=500', server.url)
      await problem(bob.token, 'GET', twice.pathname + twice.search, {}, 400, 'InvalidRequestError', 'query.limit')
      await problem(
        bob.token,
        'GET',
        '/api/boards',
        { query: { after: 'b'.repeat(5000) } },
        400,
        'InvalidRequestError',
        'query.after'
      )
      await problem(
        bob.token,
        'GET',
        '/api/boards',
        { query: { __proto__x: '1', constructor: '1' } },
        400,
        'InvalidRequestError'
      )
      await problem(
        bob.token,
        'GET',
        '/api/events',
        { query: { limit: '1001' } },
        400,
        'InvalidRequestError',
        'query.limit'
      )
      await ok(bob.token, 'GET', '/api/whoami')
    })

    it('bodies past the limits are refused before they are read whole: size, type, nesting, width', async () => {
      const huge = JSON.stringify({ board: SECRET, title: 'x'.repeat(MAX_BODY_BYTES) })
      await problem(alice.token, 'POST', '/api/worknodes', { raw: huge }, 413, 'BodyTooLargeError')
      await problem(OPERATOR, 'POST', '/api/v0/work/op', { raw: huge }, 413, 'BodyTooLargeError')
      const hugeCall = JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'whoami', arguments: { x: 'x'.repeat(4 * MAX_BODY_BYTES) } }
      })
      await problem(
        alice.token,
        'POST',
        '/mcp',
        { raw: hugeCall, headers: { accept: 'application/json, text/event-stream' } },
        413,
        'BodyTooLargeError'
      )
      // chunked, with no declared length: counted as it arrives
      const chunked = await new Promise<string>(resolve => {
        const socket = connect(server.port, '127.0.0.1')
        let out = ''
        socket.on('data', d => (out += d.toString()))
        socket.on('close', () => resolve(out))
        socket.on('error', () => resolve(out))
        socket.write(
          `POST /api/worknodes HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nAuthorization: Bearer ${alice.token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`
        )
        const piece = 'x'.repeat(16 * 1024)
        for (let i = 0; i < 8 && !socket.destroyed; i++) socket.write(`${piece.length.toString(16)}\r\n${piece}\r\n`)
        setTimeout(() => socket.destroy(), 5_000)
      })
      assert.match(chunked, /^HTTP\/1\.1 413 /)
      assert.match(chunked, /BodyTooLargeError/)
      // deep JSON, in a field any JSON value goes into: refused (400), not a crash or a 500
      const deep = `{"result":${'['.repeat(30_000)}${']'.repeat(30_000)}}`
      await problem(
        alice.token,
        'POST',
        `/api/tasks/${SECRET}:t1/complete`,
        { raw: deep },
        400,
        'InvalidRequestError',
        'body'
      )
      const deepish = `{"to":"${bob.principal}","type":"x","body":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`
      const answer = await call(alice.token, 'POST', `/api/agents/${alice.principal}/messages`, { raw: deepish })
      assert.equal(answer.status, 400, answer.text.slice(0, 300))
      // a body as wide as the limit allows: the field errors it lists are bounded
      const wide: Record<string, number> = {}
      for (let i = 0; i < 4000; i++) wide[`f${i}`] = i
      const refused = await problem(
        alice.token,
        'POST',
        '/api/worknodes',
        { body: { board: SECRET, title: 'x', ...wide } },
        400,
        'InvalidRequestError'
      )
      assert.ok(refused.errors.length <= 32, `${refused.errors.length} field errors`)
      // a body where none is taken (fetch sends none with a GET: written by hand)
      const port = server.port
      const withBody = await rawRequest(
        port,
        `GET /api/whoami HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${alice.token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`
      )
      assert.match(withBody, /^HTTP\/1\.1 400 /)
      assert.match(withBody, /"field":"body"/)
      // a JSON body whose keys try the prototype: refused as unknown fields, nothing polluted
      await problem(
        alice.token,
        'POST',
        '/api/worknodes',
        { raw: `{"board":"${SECRET}","title":"p","__proto__":{"polluted":1}}` },
        400,
        'InvalidRequestError',
        'body.__proto__'
      )
      assert.equal(({} as Record<string, unknown>).polluted, undefined)
      await ok(alice.token, 'GET', '/api/whoami')
    })

    it('event streams and long polls beyond the places are refused (429 TooManyWaitersError), and the places come back', async () => {
      const streams: OpenStream[] = []
      try {
        for (let i = 0; i < MAX_EVENT_WAITERS; i++) {
          const s = await stream(OPERATOR)
          assert.equal(s.status, 200)
          streams.push(s)
        }
        await problem(OPERATOR, 'GET', '/api/events/stream', {}, 429, 'TooManyWaitersError')
        const after = await endCursor(OPERATOR)
        await problem(OPERATOR, 'GET', '/api/events', { query: { after, wait: '5000' } }, 429, 'TooManyWaitersError')
      } finally {
        for (const s of streams) s.close()
      }
      // the places come back when the streams close
      let reopened: OpenStream | undefined
      for (let tries = 0; tries < 50; tries++) {
        const s = await stream(OPERATOR)
        if (s.status === 200) {
          reopened = s
          break
        }
        s.close()
        await sleep(100)
      }
      assert.ok(reopened != null, 'a stream opens again once the others closed')
      reopened.close()
    })

    it("one agent's token cannot take every event-stream place: the operator and other agents still get a stream", async () => {
      const streams: OpenStream[] = []
      try {
        // bob opens as many as the node allows in all (the later ones may be refused him)
        for (let i = 0; i < MAX_EVENT_WAITERS; i++) {
          const s = await stream(bob.token)
          if (s.status === 200) streams.push(s)
          else s.close()
        }
        assert.ok(streams.length >= 1)
        const mine = await stream(OPERATOR)
        streams.push(mine)
        assert.equal(mine.status, 200, "the operator's stream was refused: one agent holds every place")
        const hers = await stream(alice.token)
        streams.push(hers)
        assert.equal(hers.status, 200, "alice's stream was refused: one agent holds every place")
      } finally {
        for (const s of streams) s.close()
        await sleep(300)
      }
    })

    it("one agent's inbox long polls do not take every inbox place: another agent still polls its own", async () => {
      const polls: Array<Promise<Answer>> = []
      const stop = new AbortController()
      try {
        for (let i = 0; i < MAX_INBOX_WAITERS; i++)
          polls.push(
            fetch(new URL(`/api/agents/${bob.principal}/inbox?wait=20000`, server.url), {
              headers: { authorization: `Bearer ${bob.token}` },
              signal: stop.signal
            }).then(
              async res => ({ status: res.status, headers: res.headers, text: await res.text(), body: undefined }),
              () => ({ status: 0, headers: new Headers(), text: '', body: undefined })
            )
          )
        await sleep(500)
        const hers = await call(alice.token, 'GET', `/api/agents/${alice.principal}/inbox`, { query: { wait: '100' } })
        assert.equal(hers.status, 200, `alice's long poll of her own inbox was refused: ${hers.text.slice(0, 300)}`)
      } finally {
        stop.abort()
        await Promise.all(polls)
        await sleep(200)
      }
    })
  })

  // ================================================================== 5. hostile cursors

  describe('a hostile cursor or Last-Event-ID', function () {
    it("another run's cursor is 410 EventCursorExpiredError with the HLC to resume from; forged, huge and malformed ones are 400", async () => {
      await memberEvent('zCursor')
      const real = await endCursor(bob.token)
      const [run, count] = fieldsOf(real) as [string, number]
      assert.equal(typeof run, 'string')
      const expired = await problem(
        bob.token,
        'GET',
        '/api/events',
        { query: { after: cursorOf(['another-run', 3, 1700000000000, 7]) } },
        410,
        'EventCursorExpiredError'
      )
      assert.deepEqual(expired.hlc, [1700000000000, 7])
      assert.match(expired.detail, /since=1700000000000\.7/)
      // the earlier format (a position by its keys) is another run's too
      await problem(
        bob.token,
        'GET',
        '/api/events',
        { query: { after: cursorOf(['old', 1, 2, 'board', 's', 't', 'i', 0]) } },
        410,
        'EventCursorExpiredError'
      )
      const bad = [
        cursorOf([run, count + 1_000_000, 0, 0]), // a place the feed has not reached
        cursorOf([run, -1, 0, 0]),
        cursorOf([run, 1.5, 0, 0]),
        cursorOf([run, Number.MAX_SAFE_INTEGER + 2, 0, 0]),
        cursorOf([run, 1, -1, 0]),
        cursorOf(['', 1, 0, 0]),
        cursorOf(['r'.repeat(65), 1, 0, 0]),
        cursorOf([run, '1', 0, 0]),
        cursorOf({ run, count } as unknown as unknown[]),
        cursorOf([[[[[[[[[[[[[[[[[[[[run]]]]]]]]]]]]]]]]]]]]),
        'u!!!!',
        'not a cursor',
        `u${base64url.baseEncode(new Uint8Array([0xff, 0xfe, 0xfd]))}`,
        'm' + Buffer.from(JSON.stringify([run, 1, 0, 0])).toString('base64')
      ]
      for (const after of bad) {
        const answer = await problem(
          bob.token,
          'GET',
          '/api/events',
          { query: { after } },
          400,
          'InvalidRequestError',
          'query.after'
        )
        assert.ok(answer.detail.length < 1000)
      }
      await problem(
        bob.token,
        'GET',
        '/api/events',
        { query: { after: cursorOf(['x'.repeat(300)]) } },
        400,
        'InvalidRequestError',
        'query.after'
      )
      await problem(
        bob.token,
        'GET',
        '/api/events',
        { query: { after: real, since: '1.0' } },
        400,
        'InvalidRequestError',
        'query.after'
      )
      for (const since of ['99999999999999999999', '1e12', '-1', '1.-1', '1.99999999999', '0x10', ' 1', '1.0.0'])
        await problem(bob.token, 'GET', '/api/events', { query: { since } }, 400, 'InvalidRequestError', 'query.since')
      // a real cursor still reads
      const page = await ok(bob.token, 'GET', '/api/events', { query: { after: real } })
      assert.deepEqual(page.events, [])
    })

    it('a hostile Last-Event-ID answers a problem before the stream starts, and holds no place', async () => {
      const real = await endCursor(bob.token)
      const [run] = fieldsOf(real) as [string]
      const cases: Array<[string, number, string]> = [
        [cursorOf(['another-run', 3, 1700000000000, 7]), 410, 'EventCursorExpiredError'],
        [cursorOf([run, 10_000_000, 0, 0]), 400, 'InvalidRequestError'],
        ['u' + 'A'.repeat(5000), 400, 'InvalidRequestError'],
        ['garbage', 400, 'InvalidRequestError'],
        ['99999999999999999999', 400, 'InvalidRequestError']
      ]
      // more than the places: a refused stream must not hold one
      for (let round = 0; round < 2; round++)
        for (const [id, status, name] of cases)
          for (let i = 0; i < Math.ceil(MAX_EVENT_WAITERS / cases.length) + 1; i++)
            await problem(bob.token, 'GET', '/api/events/stream', { headers: { 'last-event-id': id } }, status, name)
      const s = await stream(bob.token, '/api/events/stream', { 'last-event-id': real })
      assert.equal(s.status, 200)
      s.close()
    })
  })

  // ================================================================== 6. reading what it may not

  describe('reading what its agent may not', function () {
    it('sees no event of a board it may not read, in pages and in the stream; its reader sees them', async () => {
      const bobFrom = await endCursor(bob.token)
      const aliceFrom = await endCursor(alice.token)
      const bobStream = await stream(bob.token, '/api/events/stream', { 'last-event-id': bobFrom })
      await ok(alice.token, 'POST', '/api/worknodes', {
        body: { board: SECRET, id: 'hidden-event', title: 'eyes only' }
      })
      await memberEvent('zAfterTheHiddenOne')
      await node.work.events.settled()
      const bobPage = await ok(bob.token, 'GET', '/api/events', { query: { after: bobFrom, limit: '1000' } })
      assert.ok(
        bobPage.events.every((e: { source: string; subject: string }) => e.source !== 'board'),
        JSON.stringify(bobPage.events)
      )
      assert.ok(bobPage.events.some((e: { subject: string }) => e.subject === 'zAfterTheHiddenOne'))
      assert.ok(await bobStream.until(t => t.includes('zAfterTheHiddenOne')), bobStream.text())
      assert.ok(!bobStream.text().includes('hidden-event'), bobStream.text())
      bobStream.close()
      const alicePage = await ok(alice.token, 'GET', '/api/events', { query: { after: aliceFrom, limit: '1000' } })
      assert.ok(alicePage.events.some((e: { subject: string }) => e.subject === `${SECRET}/hidden-event`))
    })

    it('reads no item of a board it may not read, and the refusal says nothing of the item', async () => {
      await problem(bob.token, 'GET', `/api/worknodes/${SECRET}:t1`, {}, 404, 'ItemNotFoundError')
      const list = await ok(bob.token, 'GET', '/api/worknodes', { query: { board: SECRET } })
      assert.deepEqual(list.items, [])
      const refused = await problem(
        bob.token,
        'POST',
        `/api/tasks/${SECRET}:t1/claim`,
        { body: {} },
        403,
        'WorkUnauthorizedError'
      )
      assert.ok(
        !/task|the plan|\(work/.test(refused.detail),
        `the refusal tells the item's kind or title: ${refused.detail}`
      )
      const v0 = await call(bob.token, 'GET', '/api/v0/work/item', { query: { board: SECRET, item: 't1' } })
      assert.equal(v0.status, 404)
      const tasks = await ok(bob.token, 'GET', `/api/agents/${bob.principal}/tasks`)
      assert.deepEqual(tasks.tasks, [])
    })

    it('whether an item exists on a board it may not read is not told by how an action is refused', async () => {
      // t1 exists on the secret board, nope does not: bob may read neither, so both answers must be alike
      const there = await call(bob.token, 'POST', `/api/tasks/${SECRET}:t1/claim`, { body: {} })
      const absent = await call(bob.token, 'POST', `/api/tasks/${SECRET}:nope/claim`, { body: {} })
      assert.equal(there.status, absent.status, `existing: ${there.text}\nabsent: ${absent.text}`)
      assert.equal(there.body.name, absent.body.name)
      const create = await call(bob.token, 'POST', '/api/worknodes', {
        body: { board: SECRET, id: 't1', title: 'probe' }
      })
      const createNew = await call(bob.token, 'POST', '/api/worknodes', {
        body: { board: SECRET, id: 'fresh-probe', title: 'probe' }
      })
      assert.equal(create.status, createNew.status)
      assert.equal(
        create.body.detail.replace('t1', 'ID'),
        createNew.body.detail.replace('fresh-probe', 'ID'),
        'the two refusals differ'
      )
    })

    it('a token with no right on a board does not make the node open it (v1 and v0)', async () => {
      const boardsNow = async (): Promise<string[]> =>
        (await ok(OPERATOR, 'GET', '/api/boards', { query: { limit: '500' } })).boards.map(
          (b: { name: string }) => b.name
        )
      const before = await boardsNow()
      for (let i = 0; i < 3; i++)
        await problem(
          bob.token,
          'POST',
          '/api/worknodes',
          { body: { board: `junk-v1-${i}`, title: 'x' } },
          403,
          'WorkUnauthorizedError'
        )
      const v0 = await call(bob.token, 'POST', '/api/v0/work/op', {
        body: {
          board: 'junk-v0',
          as: bob.principal,
          mode: 'local',
          op: { op: 'create', item: 'x', kind: 'task', title: 'x' }
        }
      })
      assert.equal(v0.status, 403, v0.text)
      const opened = (await boardsNow()).filter(b => !before.includes(b))
      assert.deepEqual(opened, [], `boards opened by a token with no right on them: ${opened.join(', ')}`)
    })

    it('the boards it may not read are not listed to it, nor their counts told', async () => {
      const listed = await ok(bob.token, 'GET', '/api/boards')
      assert.ok(
        !listed.boards.some((b: { name: string }) => b.name === SECRET),
        `listed: ${JSON.stringify(listed.boards)}`
      )
      await problem(bob.token, 'GET', `/api/boards/${SECRET}`, {}, 404, 'BoardNotFoundError')
      // alice, who may read it, sees it
      assert.ok((await ok(alice.token, 'GET', '/api/boards')).boards.some((b: { name: string }) => b.name === SECRET))
    })

    it("reads no document it is not granted, none of the node's own, and writes none it is not granted", async () => {
      await ok(OPERATOR, 'POST', '/api/documents/private-notes', {
        body: { type: 'or-map', update: { op: 'set', path: ['k'], value: 'secret value' } }
      })
      await problem(bob.token, 'GET', '/api/documents/private-notes', {}, 404, 'DocumentNotFoundError')
      const listed = await ok(bob.token, 'GET', '/api/documents', { query: { limit: '500' } })
      assert.ok(!listed.documents.some((d: { name: string }) => d.name === 'private-notes'))
      const all = await ok(OPERATOR, 'GET', '/api/documents', { query: { limit: '500' } })
      for (const d of all.documents as Array<{ name: string; public: boolean }>) {
        if (d.public) continue
        const read = await call(bob.token, 'GET', `/api/documents/${d.name}`)
        assert.equal(read.status, 404, `bob read ${d.name}: ${read.text.slice(0, 200)}`)
        assert.ok(!read.text.includes('secret value'))
      }
      await problem(
        bob.token,
        'POST',
        '/api/documents/private-notes',
        { body: { update: { op: 'set', path: ['k'], value: 'mine' } } },
        403,
        'DocumentUnauthorizedError'
      )
      await problem(
        bob.token,
        'POST',
        '/api/documents/bobs-new',
        { body: { type: 'or-map', update: { op: 'set', path: ['k'], value: 1 } } },
        403,
        'DocumentUnauthorizedError'
      )
      const still = await ok(OPERATOR, 'GET', '/api/documents/private-notes')
      assert.deepEqual(still.value, { k: 'secret value' })
    })

    it("lists only the certificates its agent issued or holds; the tokens and the node's stay hidden", async () => {
      const mine = await ok(bob.token, 'GET', '/api/certificates', { query: { limit: '500' } })
      for (const c of mine.certificates as Array<{ issuer: string; subject: string }>)
        assert.ok(c.issuer === bob.principal || c.subject === bob.principal, JSON.stringify(c))
      const hers = await ok(bob.token, 'GET', '/api/certificates', { query: { subject: alice.principal } })
      assert.deepEqual(hers.certificates, [])
      const operatorSees = await ok(OPERATOR, 'GET', '/api/certificates', { query: { subject: alice.principal } })
      assert.ok(operatorSees.certificates.length >= 1, 'alice holds a certificate the operator sees')
      await problem(bob.token, 'GET', '/api/tokens', {}, 403, 'AgentTokenScopeError')
      // no answer to bob carries another's token
      for (const path of ['/api/whoami', '/api/node', '/api/node/agents', '/api/members', '/api/fleet', '/api/agents'])
        assert.ok(!(await call(bob.token, 'GET', path)).text.includes(alice.token), path)
    })

    it('no refusal carries a stack, a source path or a file URL (every answer above was checked the same way)', async () => {
      const probes: Array<[string, string, CallOptions]> = [
        ['GET', '/api/nothing-here', {}],
        ['PATCH', '/api/whoami', {}],
        ['POST', '/api/worknodes', { raw: '{not json' }],
        ['POST', '/api/v0/work/op', { raw: '{not json' }],
        ['POST', '/api/v0/nothing', {}],
        ['GET', '/index.html', {}],
        ['GET', '/bundle.js', {}],
        ['POST', `/api/tasks/${SECRET}:t1/complete`, { body: { result: { '/': 'not-a-cid' } } }],
        ['POST', `/api/tasks/${SECRET}:t1/handoff`, { body: { to: 'z6MkNotAKey', state: { '/': { bytes: '!!' } } } }],
        ['GET', '/api/agents/z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', {}],
        ['POST', '/api/certificates', { body: { subject: bob.principal, tag: '(((', propagate: false } }]
      ]
      for (const [method, path, options] of probes) {
        const answer = await call(OPERATOR, method, path, options)
        assert.ok(answer.status >= 400, `${method} ${path}: ${answer.status}`)
        assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/, `${method} ${path}`)
        assert.notEqual(answer.status, 500, `${method} ${path}: ${answer.text.slice(0, 300)}`)
      }
    })
  })
})

// ================================================================== a reader that never reads

describe('an event-stream reader that never reads', function () {
  this.timeout(120_000)
  let node: CyberspaceNode
  let server: ApiServer
  let token: string

  before(async () => {
    node = await memoryNode({ registryOptions: { lookupTimeout: 600_000 } })
    server = await startApiServer({
      node,
      token: OPERATOR,
      port: 0,
      pageDir: '/nonexistent',
      handlers: ({ node, tokens }) => v1Handlers(node, { tokens, heartbeat: HEARTBEAT, backlog: BACKLOG })
    })
    const res = await fetch(new URL('/api/node/agents', server.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'external', id: 'never-reads' })
    })
    token = ((await res.json()) as { token: string }).token
  })

  after(async () => {
    await server.close()
    await node.stop()
  })

  /** Streams of /api/events/stream answering now, by the metrics. */
  const openStreams = async (): Promise<number> => {
    const text = await (
      await fetch(new URL('/metrics', server.url), { headers: { authorization: `Bearer ${OPERATOR}` } })
    ).text()
    const line = text.split('\n').find(l => l.startsWith('cyberspace_api_streams_open{route="eventStream"}'))
    return line == null ? 0 : Number(line.split(' ')[1])
  }

  it('streams replaying the journal to readers that do not read buffer a bounded amount, not every page', async () => {
    // 50 MB of events an agent's token may see, kept in the journal
    let wall = Date.now() - 60_000
    for (let i = 0; i < 200; i++)
      node.work.events.record({
        hlc: [wall++, 0],
        source: 'membership',
        type: 'member:update',
        subject: `zReplay${i}`,
        data: { big: String(i).padEnd(256 * 1024, 'x') }
      })
    await node.work.events.settled()
    await sleep(300)
    const before = process.memoryUsage().arrayBuffers
    const sockets: Socket[] = []
    try {
      // four streams from the oldest event kept, whose readers never read a byte
      for (let i = 0; i < 4; i++) {
        const socket = connect(server.port, '127.0.0.1')
        socket.on('error', () => {})
        socket.pause()
        socket.write(
          `GET /api/events/stream HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nAuthorization: Bearer ${token}\r\n\r\n`
        )
        sockets.push(socket)
      }
      await sleep(2_000)
      const buffered = process.memoryUsage().arrayBuffers - before
      // one stream's whole replay is 50 MB: what the node holds for four readers must stay below it
      assert.ok(
        buffered < 40 * 1024 * 1024,
        `the node buffers ${Math.round(buffered / 1e6)} MB for 4 readers that read nothing (a page of events each)`
      )
    } finally {
      for (const s of sockets) s.destroy()
      await sleep(300)
    }
  })

  it('a stream whose reader stopped reading and fell past its backlog ends, giving back its place', async () => {
    const socket = connect(server.port, '127.0.0.1')
    socket.on('error', () => {})
    try {
      await new Promise(resolve => socket.once('connect', resolve))
      // an agent's stream, read once (its head) and then never again
      socket.write(
        `GET /api/events/stream?since=${Date.now()}.0 HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nAuthorization: Bearer ${token}\r\n\r\n`
      )
      const head = await new Promise<string>(resolve => socket.once('data', d => resolve(d.toString())))
      assert.match(head, /^HTTP\/1\.1 200 /)
      socket.pause()
      assert.equal(await openStreams(), 1)
      // events it may see, a few at a time (each batch within its backlog), until the sockets' buffers are full
      const big = 'x'.repeat(256 * 1024)
      let wall = Date.now()
      for (let batch = 0; batch < 16; batch++) {
        for (let i = 0; i < BACKLOG / 2; i++)
          node.work.events.record({
            hlc: [wall++, 0],
            source: 'membership',
            type: 'member:update',
            subject: `zBig${batch}-${i}`,
            data: { big }
          })
        await node.work.events.settled()
        await sleep(100)
      }
      // then more than its backlog holds
      for (let i = 0; i < BACKLOG * 2; i++)
        node.work.events.record({
          hlc: [wall++, 0],
          source: 'membership',
          type: 'member:update',
          subject: `zSmall${i}`,
          data: {}
        })
      await node.work.events.settled()
      let open = await openStreams()
      for (let polls = 0; polls < 40 && open > 0; polls++) {
        await sleep(250)
        open = await openStreams()
      }
      assert.equal(open, 0, 'the stream still holds its place (and its connection) with a reader that reads nothing')
    } finally {
      socket.destroy()
    }
  })
})
