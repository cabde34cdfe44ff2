/**
 * The public API's router and the API port around it, over real HTTP on 127.0.0.1 with handlers
 * written here (the node's own handlers have their tests): matching by method and path template
 * with percent-decoding, 404 and 405 with Allow, every field of a bad request named in a 400
 * problem, bodies (JSON only, bounded, none where a route takes none), who may call what, answers
 * and streams, mounts, problem details for every error of the port (the control API's included, read
 * by the CLI's client), and the Prometheus metrics.
 */
import { strict as assert } from 'node:assert'
import { request } from 'node:http'
import { z } from 'zod'
import { apiClient } from '../../node/api/client.ts'
import { DURATION_BUCKETS } from '../../node/api/metrics.ts'
import { startApiServer } from '../../node/api/server.ts'
import { MAX_QUERY_PARAMS, v1Router } from '../../node/api/v1/router.ts'
import { MAX_BODY_BYTES } from '../../node/api/http.ts'
import { ItemNotFoundError } from '../../src/work/errors.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { key } from '../spki/fixtures.ts'
import type { Caller } from '../../node/api/agent-tokens.ts'
import type { ApiServer } from '../../node/api/server.ts'
import type { Handlers, Mount } from '../../node/api/v1/handler.ts'
import type { RouteSpec } from '../../src/api/routes.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { IncomingHttpHeaders } from 'node:http'

const TOKEN = 'operator-t0ken'

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  text: string
  json: any
}

/** One request with exactly these headers (Host included), answered in full. */
async function raw(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}
): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const target = new URL(url)
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname + target.search,
        method: options.method ?? 'GET',
        headers: {
          host: target.host,
          // GET and DELETE bodies are not chunked by node:http: say their length
          ...(options.body != null ? { 'content-length': String(Buffer.byteLength(options.body)) } : {}),
          ...options.headers
        },
        signal: AbortSignal.timeout(10_000)
      },
      res => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let json: unknown
          try {
            json = JSON.parse(text)
          } catch {}
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
        })
        res.on('error', reject)
      }
    )
    req.on('error', reject)
    req.end(options.body)
  })
}

/** Fails unless `answer` is a problem (RFC 9457) with this status and name. */
function problem(answer: Answer, status: number, name: string): any {
  assert.equal(answer.status, status, answer.text)
  assert.equal(answer.headers['content-type'], 'application/problem+json', answer.text)
  assert.equal(answer.json.status, status)
  assert.equal(answer.json.name, name)
  assert.equal(answer.json.type, `urn:cyberspace:error:${name}`)
  assert.equal(typeof answer.json.title, 'string')
  assert.equal(typeof answer.json.detail, 'string')
  assert.ok(answer.json.detail.length > 0)
  return answer.json
}

/** The fields a 400 InvalidRequestError names. */
function fields(answer: Answer): string[] {
  const body = problem(answer, 400, 'InvalidRequestError')
  return (body.errors as Array<{ field: string }>).map(e => e.field).sort()
}

describe('public API router', function () {
  this.timeout(60_000)
  let node: CyberspaceNode
  let server: ApiServer
  let agent: PrincipalId
  let agentToken: string
  let url: string
  const seen: Array<{ route: string; params: unknown; query: unknown; body: unknown; caller: Caller }> = []
  let streamGate: () => void = () => {}
  const mountCalls: Array<{ path: string; caller: Caller | undefined }> = []
  let mountClosed = false

  const op = { authorization: `Bearer ${TOKEN}` }
  const json = { ...op, 'content-type': 'application/json' }

  before(async () => {
    node = await memoryNode()
    agent = (await key()).id
    const record =
      (route: string) =>
      async (input: { params: unknown; query: unknown; body: unknown; caller: Caller }): Promise<any> => {
        seen.push({ route, params: input.params, query: input.query, body: input.body, caller: input.caller })
        return { route }
      }
    const handlers = {
      whoami: record('whoami'),
      getWorknode: record('getWorknode'),
      listWorknodes: record('listWorknodes'),
      createWorknode: record('createWorknode'),
      updateWorknode: record('updateWorknode'),
      deleteWorknode: record('deleteWorknode'),
      claimTask: record('claimTask'),
      getAgent: record('getAgent'),
      mintToken: record('mintToken'),
      attachAgent: record('attachAgent'),
      getBoard: async () => {
        throw new ItemNotFoundError('no item x on board b')
      },
      eventStream: async ({ res }: { res: import('node:http').ServerResponse }) => {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
        res.write('id: 1\ndata: {"n":1}\n\n')
        await new Promise<void>(resolve => {
          streamGate = resolve
        })
      }
    } as unknown as Partial<Handlers>
    const mount: Mount = {
      prefix: '/mcp',
      auth: 'agent',
      handle: async (req, res, mountUrl, caller) => {
        mountCalls.push({ path: mountUrl.pathname, caller })
        res.writeHead(200, { 'content-type': 'text/plain' }).end('mounted')
      },
      close: async () => {
        mountClosed = true
      }
    }
    server = await startApiServer({
      node,
      token: TOKEN,
      port: 0,
      pageDir: '/nonexistent',
      handlers: () => handlers,
      mounts: [mount]
    })
    url = server.url
    agentToken = server.tokens.mint(agent).token
  })

  after(async () => {
    streamGate()
    await server.close()
    await node.stop()
    assert.ok(mountClosed, 'close() closes the mounts')
  })

  describe('matching', () => {
    it('matches by method and path template, percent-decoding each segment into its parameter', async () => {
      const answer = await raw(`${url}/api/worknodes/release%3At1`, { headers: op })
      assert.equal(answer.status, 200, answer.text)
      assert.deepEqual(answer.json, { route: 'getWorknode' })
      assert.equal(answer.headers['content-type'], 'application/json')
      assert.equal(answer.headers['cache-control'], 'no-store')
      assert.deepEqual(seen.at(-1)?.params, { id: 'release:t1' })
      assert.deepEqual(seen.at(-1)?.caller, { kind: 'operator' })
      // the same path, other methods: other routes
      await raw(`${url}/api/worknodes/release:t1`, { method: 'DELETE', headers: op })
      assert.equal(seen.at(-1)?.route, 'deleteWorknode')
      await raw(`${url}/api/worknodes/release:t1`, { method: 'PUT', headers: json, body: '{"title":"x"}' })
      assert.equal(seen.at(-1)?.route, 'updateWorknode')
      assert.deepEqual(seen.at(-1)?.body, { title: 'x' })
    })

    it('answers 404 RouteNotFoundError for a path no route has, whatever the method', async () => {
      for (const [method, path] of [
        ['GET', '/api/nothing'],
        ['POST', '/api/tasks/b:i/explode'],
        ['GET', '/api/worknodes/b:i/extra'],
        ['GET', '/api'],
        ['GET', '/api/agents//tasks'],
        ['GET', '/api' + '/x'.repeat(40)]
      ]) {
        const body = problem(await raw(url + path, { method, headers: op }), 404, 'RouteNotFoundError')
        assert.equal(body.instance, path.slice(0, 256))
      }
    })

    it('answers 405 MethodNotAllowedError with Allow for a known path and another method', async () => {
      const cases: Array<[string, string, string]> = [
        ['PUT', '/api/whoami', 'GET'],
        ['GET', '/api/tasks/b:i/claim', 'POST'],
        ['PATCH', '/api/worknodes/b:i', 'DELETE, GET, PUT'],
        ['DELETE', '/api/node/agents', 'GET, POST'],
        ['HEAD', '/api/events/stream', 'GET']
      ]
      for (const [method, path, allow] of cases) {
        const answer = await raw(url + path, { method, headers: op })
        assert.equal(answer.status, 405, `${method} ${path}`)
        assert.equal(answer.headers.allow, allow)
        if (method !== 'HEAD') problem(answer, 405, 'MethodNotAllowedError')
      }
    })

    it('prefers a literal segment to a parameter, and refuses bad percent-encoding', () => {
      const routes: Record<string, RouteSpec> = {
        one: { method: 'GET', path: '/x/{id}', summary: '', tag: 't', auth: 'agent', response: z.object({}) },
        special: { method: 'GET', path: '/x/special', summary: '', tag: 't', auth: 'agent', response: z.object({}) },
        deeper: { method: 'POST', path: '/x/{id}/y', summary: '', tag: 't', auth: 'agent', response: z.object({}) },
        other: { method: 'POST', path: '/x/special/y/z', summary: '', tag: 't', auth: 'agent', response: z.object({}) }
      }
      const router = v1Router({ routes, handlers: {}, authenticate: () => ({ kind: 'operator' }) })
      assert.equal(router.match('GET', '/x/special').name, 'special')
      assert.deepEqual(router.match('GET', '/x/other').params, { id: 'other' })
      assert.deepEqual(router.match('GET', '/x/a%2Fb').params, { id: 'a/b' })
      // the literal branch has no /y: the parameter's does
      assert.deepEqual(router.match('POST', '/x/special/y').params, { id: 'special' })
      assert.equal(router.match('POST', '/x/special/y/z').name, 'other')
      assert.throws(() => router.match('GET', '/x/%ZZ'), { name: 'InvalidRequestError' })
      assert.throws(() => router.match('GET', '/x/'), { name: 'RouteNotFoundError' })
      assert.throws(
        () => router.match('DELETE', '/x/special'),
        (err: Error & { headers: Record<string, string> }) => {
          assert.equal(err.name, 'MethodNotAllowedError')
          assert.equal(err.headers.allow, 'GET')
          return true
        }
      )
      assert.throws(
        () =>
          v1Router({
            routes: { ...routes, again: { ...routes.one } },
            handlers: {},
            authenticate: () => ({ kind: 'operator' })
          }),
        /declared twice/
      )
    })
  })

  describe('requests', () => {
    it('names every bad field of params, query and body in one 400 InvalidRequestError', async () => {
      assert.deepEqual(fields(await raw(`${url}/api/agents/not-a-principal`, { headers: op })), ['params.id'])
      assert.deepEqual(fields(await raw(`${url}/api/worknodes?board=Bad!&limit=9999&status=nope`, { headers: op })), [
        'query.board',
        'query.limit',
        'query.status'
      ])
      const bad = await raw(`${url}/api/worknodes`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ board: 'b', title: '', priority: 'high', titel: 'typo' })
      })
      assert.deepEqual(fields(bad), ['body.priority', 'body.titel', 'body.title'])
      assert.match(bad.json.detail, /^invalid request: body\./)
      assert.equal(
        bad.json.errors.find((e: { field: string }) => e.field === 'body.titel').message,
        'is not a field of this route'
      )
      // nothing reached the handler
      assert.notEqual(seen.at(-1)?.route, 'createWorknode')
    })

    it('parses what it takes: defaults filled, numbers and booleans from the query', async () => {
      const answer = await raw(`${url}/api/worknodes?board=b&limit=7&ready=true`, { headers: op })
      assert.equal(answer.status, 200, answer.text)
      assert.deepEqual(seen.at(-1)?.query, { board: 'b', limit: 7, ready: true })
      await raw(`${url}/api/worknodes`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ board: 'b', title: 't' })
      })
      assert.deepEqual(seen.at(-1)?.body, { board: 'b', title: 't', kind: 'task' })
    })

    it('refuses a query key given twice, one the route does not have, and too many', async () => {
      const twice = await raw(`${url}/api/worknodes?board=a&board=b`, { headers: op })
      assert.deepEqual(fields(twice), ['query.board'])
      assert.match(twice.json.errors[0].message, /more than once/)
      const unknown = await raw(`${url}/api/worknodes?board=a&limt=5`, { headers: op })
      assert.deepEqual(fields(unknown), ['query.limt'])
      assert.equal(unknown.json.errors[0].message, 'is not a parameter of this route')
      assert.deepEqual(fields(await raw(`${url}/api/whoami?x=1`, { headers: op })), ['query.x'])
      const many = Array.from({ length: MAX_QUERY_PARAMS + 1 }, (_, i) => `k${i}=1`).join('&')
      assert.deepEqual(fields(await raw(`${url}/api/whoami?${many}`, { headers: op })), ['query'])
    })

    it('takes JSON bodies only, bounded, and reads a request without one as {}', async () => {
      problem(
        await raw(`${url}/api/worknodes`, {
          method: 'POST',
          headers: { ...op, 'content-type': 'text/plain' },
          body: 'board=b'
        }),
        415,
        'UnsupportedMediaTypeError'
      )
      const notJson = await raw(`${url}/api/worknodes`, { method: 'POST', headers: json, body: '{"board": ' })
      assert.deepEqual(fields(notJson), ['body'])
      assert.deepEqual(fields(await raw(`${url}/api/worknodes`, { method: 'POST', headers: json, body: '[1,2]' })), [
        'body'
      ])
      const huge = JSON.stringify({ board: 'b', title: 'x'.repeat(MAX_BODY_BYTES) })
      problem(
        await raw(`${url}/api/worknodes`, { method: 'POST', headers: json, body: huge }),
        413,
        'BodyTooLargeError'
      )
      // a claim as an agent needs no body at all
      const claim = await raw(`${url}/api/tasks/b:t1/claim`, {
        method: 'POST',
        headers: { authorization: `Bearer ${agentToken}` }
      })
      assert.equal(claim.status, 200, claim.text)
      assert.deepEqual(seen.at(-1)?.body, {})
      // a missing required field is named, as with a body that lacks it
      assert.deepEqual(fields(await raw(`${url}/api/worknodes`, { method: 'POST', headers: op })), [
        'body.board',
        'body.title'
      ])
    })

    it('refuses a body on a route that takes none (GET, DELETE, a bare POST)', async () => {
      for (const [method, path] of [
        ['GET', '/api/whoami'],
        ['DELETE', '/api/worknodes/b:i'],
        ['POST', `/api/agents/${agent}/tokens`]
      ]) {
        const answer = await raw(url + path, { method, headers: json, body: '{}' })
        assert.deepEqual(fields(answer), ['body'], `${method} ${path}`)
        assert.match(answer.json.errors[0].message, /takes no body/)
      }
    })
  })

  describe('who may call', () => {
    it('answers 401 ApiTokenError without a live token, before looking at the request', async () => {
      problem(await raw(`${url}/api/whoami`), 401, 'ApiTokenError')
      problem(
        await raw(`${url}/api/whoami`, { headers: { authorization: 'Bearer ' + 'A'.repeat(43) } }),
        401,
        'ApiTokenError'
      )
      // a bad body from someone without a token is not looked at
      problem(
        await raw(`${url}/api/worknodes`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: 'not json'
        }),
        401,
        'ApiTokenError'
      )
    })

    it("lets an agent's token call agent routes as its agent, and refuses operator routes with 403 AgentTokenScopeError", async () => {
      const auth = { authorization: `Bearer ${agentToken}` }
      const answer = await raw(`${url}/api/whoami`, { headers: auth })
      assert.equal(answer.status, 200)
      const caller = seen.at(-1)?.caller
      assert.equal(caller?.kind, 'agent')
      assert.equal((caller as { agent: string }).agent, agent)
      const before = seen.length
      problem(
        await raw(`${url}/api/node/agents`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: '{"kind":"external"}'
        }),
        403,
        'AgentTokenScopeError'
      )
      problem(
        await raw(`${url}/api/agents/${agent}/tokens`, { method: 'POST', headers: auth }),
        403,
        'AgentTokenScopeError'
      )
      assert.equal(seen.length, before, 'no operator handler ran')
      // revoked: 401 from then on
      const extra = server.tokens.mint(agent)
      server.tokens.revoke({ id: extra.id })
      problem(
        await raw(`${url}/api/whoami`, { headers: { authorization: `Bearer ${extra.token}` } }),
        401,
        'ApiTokenError'
      )
    })

    it('refuses another Host (DNS rebinding) and a foreign Origin with 403 ForbiddenHostError', async () => {
      const port = new URL(url).port
      problem(
        await raw(`${url}/api/whoami`, { headers: { ...op, host: `rebound.example:${port}` } }),
        403,
        'ForbiddenHostError'
      )
      problem(
        await raw(`${url}/api/whoami`, { headers: { ...op, origin: 'http://evil.example' } }),
        403,
        'ForbiddenHostError'
      )
      problem(
        await raw(`${url}/api/whoami`, { headers: { ...op, 'sec-fetch-site': 'cross-site' } }),
        403,
        'ForbiddenHostError'
      )
      const own = await raw(`${url}/api/whoami`, { headers: { ...op, origin: `http://localhost:${port}` } })
      assert.equal(own.status, 200)
    })
  })

  describe('answers', () => {
    it("answers a node error by its name's status, as a problem", async () => {
      const body = problem(await raw(`${url}/api/boards/b`, { headers: op }), 404, 'ItemNotFoundError')
      assert.equal(body.detail, 'no item x on board b')
      assert.equal(body.title, 'Item not found')
    })

    it('answers 501 RouteNotImplementedError for a route without a handler', async () => {
      problem(await raw(`${url}/api/fleet`, { headers: op }), 501, 'RouteNotImplementedError')
    })

    it('hands a stream route the response, and counts it open while it runs', async () => {
      const controller = new AbortController()
      const res = await fetch(`${url}/api/events/stream`, { headers: op, signal: controller.signal })
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-type'), 'text/event-stream')
      const reader = (res.body as ReadableStream<Uint8Array>).getReader()
      const first = new TextDecoder().decode((await reader.read()).value)
      assert.equal(first, 'id: 1\ndata: {"n":1}\n\n')
      const open = await raw(`${url}/metrics`, { headers: op })
      assert.match(open.text, /^cyberspace_api_streams_open\{route="eventStream"\} 1$/m)
      streamGate()
      assert.equal((await reader.read()).done, true)
      const closed = await raw(`${url}/metrics`, { headers: op })
      assert.doesNotMatch(closed.text, /cyberspace_api_streams_open\{route="eventStream"\}/)
    })

    it('answers the control API’s errors as problems too, keeping error beside detail, and the CLI client reads them', async () => {
      const answer = await raw(`${url}/api/v0/no/such/thing`, { headers: op })
      const body = problem(answer, 404, 'RouteNotFoundError')
      assert.equal(body.error, body.detail)
      // a bare HttpError has no name of its own: about:blank, the status's phrase as title
      const bare = await raw(`${url}/api/v0/pubsub/messages?topic=none`, { headers: op })
      assert.equal(bare.status, 404)
      assert.equal(bare.headers['content-type'], 'application/problem+json')
      assert.equal(bare.json.type, 'about:blank')
      assert.equal(bare.json.title, 'Not Found')
      assert.equal(bare.json.detail, 'not subscribed to none')
      await assert.rejects(
        apiClient(url, TOKEN).get('pubsub/messages', { topic: 'none' }),
        (err: Error & { status: number; errorName: string; details: Record<string, unknown> }) => {
          assert.equal(err.message, 'not subscribed to none')
          assert.equal(err.status, 404)
          assert.deepEqual(err.details, {})
          return true
        }
      )
      // the page's errors too
      problem(await raw(`${url}/nothing-here`), 404, 'RouteNotFoundError')
      problem(await raw(`${url}/`, { method: 'POST' }), 405, 'MethodNotAllowedError')
    })

    it('serves the OpenAPI document without a token', async () => {
      const answer = await raw(`${url}/api/openapi.json`)
      assert.equal(answer.status, 200)
      assert.equal(answer.json.openapi, '3.1.0')
      assert.ok(answer.json.paths['/api/tasks/{id}/complete'].post != null)
      problem(await raw(`${url}/api/openapi.json`, { method: 'POST' }), 405, 'MethodNotAllowedError')
    })
  })

  describe('mounts', () => {
    it('passes a request under its prefix to the mount, with the caller resolved, after the Host check', async () => {
      const answer = await raw(`${url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${agentToken}` } })
      assert.equal(answer.status, 200)
      assert.equal(answer.text, 'mounted')
      assert.equal(mountCalls.at(-1)?.path, '/mcp')
      assert.equal((mountCalls.at(-1)?.caller as { agent: string }).agent, agent)
      await raw(`${url}/mcp/sub/path`, { headers: op })
      assert.deepEqual(mountCalls.at(-1), { path: '/mcp/sub/path', caller: { kind: 'operator' } })
      const calls = mountCalls.length
      problem(await raw(`${url}/mcp`, { method: 'POST' }), 401, 'ApiTokenError')
      const port = new URL(url).port
      problem(await raw(`${url}/mcp`, { headers: { ...op, host: `evil.example:${port}` } }), 403, 'ForbiddenHostError')
      problem(await raw(`${url}/mcp`, { headers: { ...op, origin: 'http://evil.example' } }), 403, 'ForbiddenHostError')
      assert.equal(mountCalls.length, calls, 'refused requests never reach the mount')
      // only the prefix as a whole path segment
      problem(await raw(`${url}/mcpx`, { headers: op }), 404, 'RouteNotFoundError')
    })
  })

  describe('metrics', () => {
    it('needs the operator token', async () => {
      problem(await raw(`${url}/metrics`), 401, 'ApiTokenError')
      problem(
        await raw(`${url}/metrics`, { headers: { authorization: `Bearer ${agentToken}` } }),
        403,
        'AgentTokenScopeError'
      )
    })

    it('counts answers by route, method and status, times them, and reads the node’s gauges', async () => {
      const count = (text: string, series: string): number => {
        const line = text.split('\n').find(l => l.startsWith(series + ' '))
        return line == null ? 0 : Number(line.slice(series.length + 1))
      }
      const series = 'cyberspace_api_requests_total{route="whoami",method="GET",status="200"}'
      const before = count((await raw(`${url}/metrics`, { headers: op })).text, series)
      for (let i = 0; i < 3; i++) await raw(`${url}/api/whoami`, { headers: op })
      await raw(`${url}/api/whoami`, { method: 'PUT', headers: op })
      const answer = await raw(`${url}/metrics`, { headers: op })
      assert.equal(answer.status, 200)
      assert.equal(answer.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
      const text = answer.text
      assert.equal(count(text, series) - before, 3)
      assert.ok(count(text, 'cyberspace_api_requests_total{route="unmatched",method="PUT",status="405"}') >= 1)
      const buckets = text
        .split('\n')
        .filter(l => l.startsWith('cyberspace_api_request_duration_seconds_bucket{route="whoami"'))
      assert.equal(buckets.length, DURATION_BUCKETS.length + 1)
      const counts = buckets.map(l => Number(l.split(' ')[1]))
      assert.deepEqual(
        counts,
        [...counts].sort((a, b) => a - b),
        'buckets are cumulative'
      )
      assert.equal(counts.at(-1), count(text, 'cyberspace_api_request_duration_seconds_count{route="whoami"}'))
      assert.equal(count(text, 'cyberspace_api_agent_tokens'), server.tokens.list().length)
      assert.equal(count(text, 'cyberspace_hosted_agents'), node.agents.list().length)
      assert.equal(count(text, 'cyberspace_event_journal_entries'), node.work.events.size)
      assert.equal(count(text, 'cyberspace_peers'), 0)
      assert.match(text, /^cyberspace_boards \d+$/m)
      const members = text.split('\n').filter(l => l.startsWith('cyberspace_members{'))
      assert.equal(
        members.reduce((sum, l) => sum + Number(l.split(' ')[1]), 0),
        node.membership.members().length
      )
      // every line is a comment or a sample: name{labels} value
      for (const line of text.trimEnd().split('\n'))
        assert.match(
          line,
          /^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+="[^"\n]*"(,[a-z_]+="[^"\n]*")*\})? [-+0-9.e]+(Inf)?)$/,
          line
        )
    })
  })
})
