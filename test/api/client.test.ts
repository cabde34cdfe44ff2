/**
 * The TypeScript SDK (src/api/client.ts). Its own protocol handling against a small node:http
 * server written here (what it sends; problems, dead and silent servers, oversized answers; the
 * event stream's reconnection with Last-Event-ID, the server's retry, missed events, 410, idle
 * connections, early exits), every route against a real node's public API on 127.0.0.1, and that
 * it bundles for the browser.
 */
import { strict as assert } from 'node:assert'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'
import {
  ApiNetworkError,
  ApiProblemError,
  ApiTimeoutError,
  CLIENT_METHODS,
  Client,
  EventStreamLostError,
  EventsMissedError,
  InvalidCallError,
  InvalidResponseError,
  ResponseTooLargeError
} from '../../src/api/client.ts'
import { ROUTES } from '../../src/api/routes.ts'
import { apiClient } from '../../node/api/client.ts'
import { startApiServer } from '../../node/api/server.ts'
import { v1Handlers } from '../../node/api/v1/handlers.ts'
import { formatHlc } from '../../src/clock/hlc.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { EventJournal } from '../../src/work/events.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { grant, key } from '../spki/fixtures.ts'
import type { ApiServer } from '../../node/api/server.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { ApiEvent } from '../../src/api/client.ts'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

const TOKEN = 'test-t0ken'
const AGENT = 'z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'

interface Seen {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: string
}

/** A node:http server on 127.0.0.1 answering with `handler`, recording every request. */
async function localServer(
  handler: (req: IncomingMessage, res: ServerResponse, seen: Seen, n: number) => void | Promise<void>
): Promise<{ url: string; seen: Seen[]; closed: number; server: Server; close: () => Promise<void> }> {
  const seen: Seen[] = []
  const state = { closed: 0 }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const s = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString()
      }
      seen.push(s)
      res.on('close', () => {
        state.closed++
      })
      void Promise.resolve(handler(req, res, s, seen.length)).catch(err => {
        res.destroy(err as Error)
      })
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    get closed() {
      return state.closed
    },
    server,
    close: async () => {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    }
  }
}

/**
 * The list of a page. (The route table's page() types a page as any object, not by its field: this
 * names the field until it does.)
 */
function rows<T = Record<string, unknown>>(page: unknown, field: string): T[] {
  const list = (page as Record<string, unknown>)[field]
  assert.ok(Array.isArray(list), `the page has no ${field}[]`)
  return list as T[]
}

function json(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function sseHead(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' })
}

/** An event of the journal as the server sends it, with cursor `c<n>`. */
function journalEvent(n: number): ApiEvent {
  return {
    cursor: `c${n}`,
    hlc: [1_763_700_000_000 + n, 0],
    source: 'board',
    type: 'claim',
    subject: `b/t${n}`,
    data: { n }
  }
}

function sse(n: number): string {
  return `id: c${n}\ndata: ${JSON.stringify(journalEvent(n))}\n\n`
}

/** Reads `client.subscribe(options)` until `count` events, or until it throws (returned as `error`). */
async function collect(
  client: Client,
  count: number,
  options: Parameters<Client['subscribe']>[0] = {}
): Promise<{ events: ApiEvent[]; error?: Error }> {
  const events: ApiEvent[] = []
  try {
    for await (const e of client.subscribe({ retryDelay: 10, ...options })) {
      events.push(e)
      if (events.length >= count) break
    }
  } catch (err) {
    return { events, error: err as Error }
  }
  return { events }
}

describe('TypeScript SDK', function () {
  this.timeout(30_000)

  describe('requests and answers', () => {
    it('fills the path (percent-encoded), sends the query as text, the JSON body and the token, and answers the JSON', async () => {
      const server = await localServer((_req, res) => {
        json(res, 200, { ok: true })
      })
      try {
        const client = new Client({ url: server.url + '/', token: TOKEN })
        assert.deepEqual(await client.completeTask('rel-1:t 1/x', { result: { n: 1 } }), { ok: true })
        await client.listWorknodes('rel-1', { status: 'submitted', ready: true, limit: 5, after: undefined })
        await client.getDocument('notes?x=1#y')
        await client.inbox(AGENT, { wait: 0 })
        await client.deleteWorknode('b:t1', { as: AGENT })
        await client.mintToken(AGENT)
        const [complete, list, doc, inbox, del, mint] = server.seen
        assert.equal(complete.method, 'POST')
        assert.equal(complete.url, '/api/tasks/rel-1%3At%201%2Fx/complete')
        assert.equal(complete.headers.authorization, `Bearer ${TOKEN}`)
        assert.equal(complete.headers['content-type'], 'application/json')
        assert.deepEqual(JSON.parse(complete.body), { result: { n: 1 } })
        assert.equal(list.method, 'GET')
        assert.equal(list.url, '/api/worknodes?status=submitted&ready=true&limit=5&board=rel-1')
        assert.equal(list.body, '')
        assert.equal(list.headers['content-type'], undefined)
        assert.equal(doc.url, '/api/documents/notes%3Fx%3D1%23y')
        assert.equal(inbox.url, `/api/agents/${AGENT}/inbox?wait=0`)
        assert.equal(del.method, 'DELETE')
        assert.equal(del.url, `/api/worknodes/b%3At1?as=${AGENT}`)
        // a POST without a body schema sends no body
        assert.equal(mint.method, 'POST')
        assert.equal(mint.body, '')
      } finally {
        await server.close()
      }
    })

    it('sends {} for a route with a body the caller left out, and keeps a path prefix of the url', async () => {
      const server = await localServer((_req, res) => {
        json(res, 200, {})
      })
      try {
        await new Client({ url: `${server.url}/cs/`, token: TOKEN }).claimTask('b:t1')
        assert.equal(server.seen[0].url, '/cs/api/tasks/b%3At1/claim')
        assert.equal(server.seen[0].body, '{}')
      } finally {
        await server.close()
      }
    })

    it('uses the fetch it is given', async () => {
      const calls: string[] = []
      const client = new Client({
        url: 'http://example.invalid',
        fetch: async input => {
          calls.push(String(input))
          return new Response(JSON.stringify({ caller: 'agent' }), { headers: { 'content-type': 'application/json' } })
        }
      })
      assert.deepEqual(await client.whoami(), { caller: 'agent' })
      assert.deepEqual(calls, ['http://example.invalid/api/whoami'])
    })

    it('refuses path parameters a URL would read as path steps, and missing ones, before sending', async () => {
      let sent = 0
      const client = new Client({
        url: 'http://example.invalid',
        fetch: async () => {
          sent++
          return new Response('{}')
        }
      })
      for (const bad of ['', '.', '..']) {
        await assert.rejects(client.getDocument(bad), { name: 'InvalidCallError' })
      }
      await assert.rejects(client.call('getWorknode', {} as never), InvalidCallError)
      await assert.rejects(client.call('nope' as never), { name: 'InvalidCallError' })
      await assert.rejects(client.call('eventStream' as never), { name: 'InvalidCallError' })
      assert.equal(sent, 0)
      assert.throws(() => new Client({ url: 'ftp://x' }), { name: 'InvalidCallError' })
      assert.throws(() => new Client({ url: 'not a url' }), { name: 'InvalidCallError' })
      assert.throws(() => new Client({ url: 'http://x', timeout: 0 }), { name: 'InvalidCallError' })
    })

    it('has a method for every route of the table', () => {
      assert.deepEqual(Object.keys(CLIENT_METHODS).sort(), Object.keys(ROUTES).sort())
      for (const method of Object.values(CLIENT_METHODS)) {
        assert.equal(typeof Client.prototype[method], 'function', method)
      }
    })
  })

  describe('errors', () => {
    it('throws a problem as ApiProblemError named by the node, with every field and the whole body', async () => {
      const problem = {
        type: 'urn:cyberspace:error:InvalidRequestError',
        title: 'The request is not valid',
        status: 400,
        detail: 'body.title: must be 1-200 characters',
        name: 'InvalidRequestError',
        errors: [{ field: 'body.title', message: 'must be 1-200 characters' }],
        extra: 7
      }
      const server = await localServer((_req, res) => {
        json(res, 400, problem, 'application/problem+json')
      })
      try {
        const err = await new Client({ url: server.url }).createWorknode({ board: 'b', title: '' }).then(
          () => assert.fail('expected a problem'),
          (e: unknown) => e as ApiProblemError
        )
        assert.ok(err instanceof ApiProblemError)
        assert.equal(err.name, 'InvalidRequestError')
        assert.equal(err.status, 400)
        assert.equal(err.type, problem.type)
        assert.equal(err.title, problem.title)
        assert.equal(err.detail, problem.detail)
        assert.equal(err.message, problem.detail)
        assert.deepEqual(err.errors, problem.errors)
        assert.deepEqual(err.problem, problem)
      } finally {
        await server.close()
      }
    })

    it('makes a problem of an error answer that is not one (a proxy page, the old {error} shape)', async () => {
      const server = await localServer((req, res) => {
        if (req.url?.includes('whoami') === true) {
          res.writeHead(502, { 'content-type': 'text/html' })
          res.end('<html>Bad Gateway</html>')
        } else json(res, 409, { error: 'the item is claimed', name: 'ItemClaimedError' })
      })
      try {
        const client = new Client({ url: server.url })
        await assert.rejects(client.whoami(), (err: ApiProblemError) => {
          assert.ok(err instanceof ApiProblemError)
          assert.equal(err.name, 'HttpError')
          assert.equal(err.status, 502)
          assert.match(err.detail, /502.*Bad Gateway/)
          return true
        })
        await assert.rejects(client.claimTask('b:t1'), {
          name: 'ItemClaimedError',
          status: 409,
          detail: 'the item is claimed'
        })
      } finally {
        await server.close()
      }
    })

    it('names the URL when nothing answers', async () => {
      const server = await localServer(() => {})
      const { url } = server
      await server.close()
      await assert.rejects(new Client({ url }).whoami(), (err: ApiNetworkError) => {
        assert.equal(err.name, 'ApiNetworkError')
        assert.ok(err.message.includes(`${url}/api/whoami`), err.message)
        assert.equal(err.url, `${url}/api/whoami`)
        return true
      })
    })

    it('times out a node that never answers, naming it; a long poll has its wait on top', async () => {
      const server = await localServer((req, res) => {
        if (req.url?.includes('events') === true) {
          setTimeout(() => {
            json(res, 200, { events: [], more: false })
          }, 300)
        }
        // else: never answer
      })
      try {
        const client = new Client({ url: server.url, timeout: 100 })
        await assert.rejects(client.whoami(), (err: ApiTimeoutError) => {
          assert.equal(err.name, 'ApiTimeoutError')
          assert.match(err.message, /\/api\/whoami got no answer within 100 ms/)
          return true
        })
        assert.deepEqual(await client.events({ wait: 5000 }), { events: [], more: false })
      } finally {
        await server.close()
      }
    })

    it("passes the caller's abort through as it is", async () => {
      const server = await localServer(() => {})
      try {
        const controller = new AbortController()
        const reason = new Error('stop')
        setTimeout(() => {
          controller.abort(reason)
        }, 50)
        await assert.rejects(
          new Client({ url: server.url }).whoami({ signal: controller.signal }),
          err => err === reason
        )
      } finally {
        await server.close()
      }
    })

    it('refuses an answer larger than maxResponseBytes, declared or streamed', async () => {
      const server = await localServer((req, res) => {
        const big = JSON.stringify({ pad: 'x'.repeat(5000) })
        if (req.url?.includes('whoami') === true) {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': big.length })
          res.end(big)
        } else {
          res.writeHead(200, { 'content-type': 'application/json' }) // chunked: no length said
          for (let i = 0; i < 10; i++) res.write(big)
          res.end()
        }
      })
      try {
        const client = new Client({ url: server.url, maxResponseBytes: 1000 })
        await assert.rejects(client.whoami(), ResponseTooLargeError)
        await assert.rejects(client.node(), { name: 'ResponseTooLargeError' })
      } finally {
        await server.close()
      }
    })

    it('checks answers against the route schema only with validate: true', async () => {
      const good = { caller: 'agent', principal: AGENT, node: 'n1' }
      const server = await localServer((req, res) => {
        if (req.url?.includes('whoami') === true) json(res, 200, good)
        else if (req.url?.includes('node') === true) json(res, 200, { caller: 'robot' })
        else {
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end('{not json')
        }
      })
      try {
        const strict = new Client({ url: server.url, validate: true })
        const lax = new Client({ url: server.url })
        assert.deepEqual(await strict.whoami(), good)
        // /api/node's answer lacks peerId and multiaddrs
        await assert.rejects(strict.node(), (err: InvalidResponseError) => {
          assert.equal(err.name, 'InvalidResponseError')
          assert.match(err.message, /peerId/)
          return true
        })
        assert.deepEqual(await lax.node(), { caller: 'robot' })
        await assert.rejects(lax.fleet(), { name: 'InvalidResponseError' })
      } finally {
        await server.close()
      }
    })
  })

  describe('pages', () => {
    it('walks every page following next, and stops at null', async () => {
      const server = await localServer((req, res) => {
        const after = new URL(req.url ?? '', 'http://x').searchParams.get('after')
        const pages: Record<string, unknown> = {
          '': { items: [1, 2], next: 'p2' },
          p2: { items: [3], next: 'p3' },
          p3: { items: [], next: 'p4' },
          p4: { items: [4], next: null }
        }
        json(res, 200, pages[after ?? ''])
      })
      try {
        const items: unknown[] = []
        for await (const item of new Client({ url: server.url }).all('listWorknodes', {
          query: { board: 'b', limit: 2 }
        })) {
          items.push(item)
        }
        assert.deepEqual(items, [1, 2, 3, 4])
        assert.deepEqual(
          server.seen.map(s => s.url),
          [
            '/api/worknodes?board=b&limit=2',
            '/api/worknodes?board=b&limit=2&after=p2',
            '/api/worknodes?board=b&limit=2&after=p3',
            '/api/worknodes?board=b&limit=2&after=p4'
          ]
        )
      } finally {
        await server.close()
      }
    })

    it("walks a page's list, not another array beside it", async () => {
      const server = await localServer((_req, res) => {
        json(res, 200, {
          agents: [{ agent: 'a' }],
          next: null,
          skipped: [{ peer: 'p', name: 'TimeoutError', message: 'slow' }]
        })
      })
      try {
        const found: unknown[] = []
        for await (const a of new Client({ url: server.url }).all('findAgents', { query: { skill: 'x' } }))
          found.push(a)
        assert.deepEqual(found, [{ agent: 'a' }])
      } finally {
        await server.close()
      }
    })

    it('stops paging when the loop breaks, and refuses a server that answers the same cursor again', async () => {
      const server = await localServer((_req, res) => {
        json(res, 200, { boards: [{ name: 'x' }], next: 'same' })
      })
      try {
        const client = new Client({ url: server.url })
        for await (const board of client.all('listBoards')) {
          assert.deepEqual(board, { name: 'x' })
          break
        }
        assert.equal(server.seen.length, 1)
        const walk = async (): Promise<void> => {
          for await (const board of client.all('listBoards')) void board
        }
        await assert.rejects(walk(), { name: 'InvalidResponseError' })
        assert.equal(server.seen.length, 3)
      } finally {
        await server.close()
      }
    })
  })

  describe('the event stream', () => {
    it('yields the events in order, sending since first and then Last-Event-ID after a drop', async () => {
      const server = await localServer((_req, res, _seen, n) => {
        sseHead(res)
        if (n === 1) {
          res.write(': hello\n\n' + sse(1) + sse(2))
          // the connection breaks mid-event
          res.write('id: c3\ndata: {"cur')
          setTimeout(() => res.destroy(), 20)
        } else res.write(sse(3) + sse(4))
      })
      try {
        const client = new Client({ url: server.url, token: TOKEN })
        const { events, error } = await collect(client, 4, { since: '1763700000000.0' })
        assert.equal(error, undefined)
        assert.deepEqual(
          events.map(e => e.cursor),
          ['c1', 'c2', 'c3', 'c4']
        )
        assert.deepEqual(events[0], journalEvent(1))
        assert.equal(server.seen.length, 2)
        assert.equal(server.seen[0].url, '/api/events/stream?since=1763700000000.0')
        assert.equal(server.seen[0].headers['last-event-id'], undefined)
        assert.equal(server.seen[0].headers.accept, 'text/event-stream')
        assert.equal(server.seen[0].headers.authorization, `Bearer ${TOKEN}`)
        // the half-sent c3 was not taken: it resumes after c2
        assert.equal(server.seen[1].url, '/api/events/stream')
        assert.equal(server.seen[1].headers['last-event-id'], 'c2')
      } finally {
        await server.close()
      }
    })

    it('starts after a cursor with Last-Event-ID, and moves on with an id-only event', async () => {
      const server = await localServer((_req, res, _seen, n) => {
        sseHead(res)
        if (n === 1) res.end(sse(8) + 'id: c9\n\n')
        else res.write(sse(10))
      })
      try {
        const { events } = await collect(new Client({ url: server.url }), 2, { after: 'c7' })
        assert.deepEqual(
          events.map(e => e.cursor),
          ['c8', 'c10']
        )
        assert.equal(server.seen[0].headers['last-event-id'], 'c7')
        assert.equal(server.seen[1].headers['last-event-id'], 'c9')
      } finally {
        await server.close()
      }
    })

    it("waits the server's retry rather than its own retryDelay", async function () {
      // its own delay is capped at 30 s, less at most a quarter: waiting it would overrun this
      this.timeout(15_000)
      const server = await localServer((_req, res, _seen, n) => {
        sseHead(res)
        if (n === 1) res.end('retry: 20\n\n' + sse(1))
        else res.write(sse(2))
      })
      try {
        const { events } = await collect(new Client({ url: server.url }), 2, { retryDelay: 600_000 })
        assert.deepEqual(
          events.map(e => e.cursor),
          ['c1', 'c2']
        )
      } finally {
        await server.close()
      }
    })

    it('retries a busy node (503, 429), and gives up after retries connections in a row that deliver nothing', async () => {
      const busy = await localServer((_req, res, _seen, n) => {
        if (n <= 2) json(res, n === 1 ? 503 : 429, { name: 'BusyError', title: 'busy', detail: 'busy', status: 503 })
        else {
          sseHead(res)
          res.write(sse(1))
        }
      })
      const down = await localServer((_req, res) => {
        json(res, 503, { name: 'ShuttingDownError', title: 'down', detail: 'the node is stopping', status: 503 })
      })
      try {
        const up = await collect(new Client({ url: busy.url }), 1)
        assert.deepEqual(
          up.events.map(e => e.cursor),
          ['c1']
        )
        assert.equal(busy.seen.length, 3)
        const lost = await collect(new Client({ url: down.url }), 1, { retries: 3 })
        assert.ok(lost.error instanceof EventStreamLostError, String(lost.error))
        assert.equal(lost.error.name, 'EventStreamLostError')
        assert.equal((lost.error.cause as ApiProblemError).name, 'ShuttingDownError')
        assert.equal(down.seen.length, 4)
      } finally {
        await busy.close()
        await down.close()
      }
    })

    it('counts connections that end without an event toward the retries, and says where to resume', async () => {
      const server = await localServer((_req, res, _seen, n) => {
        sseHead(res)
        res.end(n === 1 ? sse(1) : ': nothing\n\n')
      })
      try {
        const { events, error } = await collect(new Client({ url: server.url }), 5, { retries: 2 })
        assert.deepEqual(
          events.map(e => e.cursor),
          ['c1']
        )
        assert.equal(error?.name, 'EventStreamLostError')
        assert.equal((error as EventStreamLostError).resume, 'c1')
        // the first connection, then one that delivered nothing, then two more retries
        assert.equal(server.seen.length, 4)
        assert.ok(server.seen.slice(1).every(s => s.headers['last-event-id'] === 'c1'))
      } finally {
        await server.close()
      }
    })

    it('goes on from the cursor event: missed names, so nothing is lost', async () => {
      const server = await localServer((_req, res, _seen, n) => {
        sseHead(res)
        if (n === 1)
          res.end(sse(1) + sse(2) + `event: missed\ndata: ${JSON.stringify({ missed: 42, resume: 'c2' })}\n\n` + sse(9))
        else res.write(sse(3) + sse(4))
      })
      try {
        const { events, error } = await collect(new Client({ url: server.url }), 4)
        assert.equal(error, undefined)
        assert.deepEqual(
          events.map(e => e.cursor),
          ['c1', 'c2', 'c3', 'c4']
        )
        assert.equal(server.seen.length, 2)
        assert.equal(server.seen[1].headers['last-event-id'], 'c2')
      } finally {
        await server.close()
      }
    })

    it('with resumeMissed: false throws EventsMissedError with the count and the cursor, after the events before it', async () => {
      const server = await localServer((_req, res) => {
        sseHead(res)
        res.end(sse(1) + sse(2) + `event: missed\ndata: ${JSON.stringify({ missed: 42, resume: 'c2' })}\n\n` + sse(3))
      })
      try {
        const { events, error } = await collect(new Client({ url: server.url }), 10, { resumeMissed: false })
        assert.deepEqual(
          events.map(e => e.cursor),
          ['c1', 'c2']
        )
        assert.ok(error instanceof EventsMissedError)
        assert.equal(error.name, 'EventsMissedError')
        assert.equal(error.missed, 42)
        assert.equal(error.resume, 'c2')
        // not a reconnection: the reader decides
        assert.equal(server.seen.length, 1)
      } finally {
        await server.close()
      }
    })

    it('takes a resume of null as "start again as before"', async () => {
      const server = await localServer((_req, res) => {
        sseHead(res)
        res.end(`event: missed\ndata: ${JSON.stringify({ missed: 3, resume: null })}\n\n`)
      })
      try {
        const { error } = await collect(new Client({ url: server.url }), 1, {
          since: '1763700000000.0',
          resumeMissed: false
        })
        assert.ok(error instanceof EventsMissedError)
        assert.equal(error.missed, 3)
        assert.equal(error.resume, undefined)
      } finally {
        await server.close()
      }
    })

    it("reconnects after the node's event: end, and throws the problem the reconnection answers (a revoked token)", async () => {
      const server = await localServer((_req, res, _seen, n) => {
        if (n === 1) {
          sseHead(res)
          res.end(
            sse(1) +
              `event: end\ndata: ${JSON.stringify({ name: 'ApiTokenError', message: 'the token was revoked' })}\n\n`
          )
        } else {
          json(res, 401, { name: 'ApiTokenError', title: 'Unauthorized', status: 401, detail: 'the token was revoked' })
        }
      })
      try {
        const { events, error } = await collect(new Client({ url: server.url }), 5)
        assert.deepEqual(
          events.map(e => e.cursor),
          ['c1']
        )
        assert.ok(error instanceof ApiProblemError)
        assert.equal(error.name, 'ApiTokenError')
        assert.equal(error.status, 401)
        assert.equal(server.seen.length, 2)
      } finally {
        await server.close()
      }
    })

    it("throws a cursor of another run (410) as the node's named problem, without retrying", async () => {
      const problem = {
        type: 'urn:cyberspace:error:EventCursorExpiredError',
        title: 'Event cursor expired',
        status: 410,
        detail: 'the cursor is from another run of the node: resume with since=1763700000000.0',
        name: 'EventCursorExpiredError',
        since: '1763700000000.0'
      }
      const server = await localServer((_req, res) => {
        json(res, 410, problem, 'application/problem+json')
      })
      try {
        const { error } = await collect(new Client({ url: server.url }), 1, { after: 'old-cursor' })
        assert.ok(error instanceof ApiProblemError)
        assert.equal(error.name, 'EventCursorExpiredError')
        assert.equal(error.status, 410)
        assert.equal(error.problem.since, '1763700000000.0')
        assert.equal(server.seen.length, 1)
      } finally {
        await server.close()
      }
    })

    it('reconnects when the connection goes silent past idleTimeout', async () => {
      const server = await localServer((_req, res, _seen, n) => {
        sseHead(res)
        if (n === 1)
          res.write(sse(1)) // then nothing, connection open
        else res.write(sse(2))
      })
      try {
        const { events } = await collect(new Client({ url: server.url }), 2, { idleTimeout: 200 })
        assert.deepEqual(
          events.map(e => e.cursor),
          ['c1', 'c2']
        )
        assert.equal(server.seen[1].headers['last-event-id'], 'c1')
      } finally {
        await server.close()
      }
    })

    it('reads a stream trickled byte by byte', async () => {
      const text = ': hi\r\n\r\n' + sse(1) + `id: c2\r\ndata: ${JSON.stringify(journalEvent(2))}\r\n\r\n`
      const server = await localServer(async (_req, res) => {
        sseHead(res)
        for (const ch of Buffer.from(text)) {
          res.write(Buffer.from([ch]))
          await new Promise(resolve => setImmediate(resolve))
        }
      })
      try {
        const { events } = await collect(new Client({ url: server.url }), 2)
        assert.deepEqual(events, [journalEvent(1), journalEvent(2)])
      } finally {
        await server.close()
      }
    })

    it('refuses an event past maxEventLength, and one whose data is not JSON, without reconnecting', async () => {
      const server = await localServer((req, res) => {
        sseHead(res)
        res.write(req.headers['last-event-id'] === 'big' ? `data: ${'x'.repeat(5000)}\n\n` : 'data: {oops\n\n')
      })
      try {
        const big = await collect(new Client({ url: server.url }), 1, { after: 'big', maxEventLength: 1000 })
        assert.equal(big.error?.name, 'SseEventTooLargeError')
        const bad = await collect(new Client({ url: server.url }), 1)
        assert.equal(bad.error?.name, 'InvalidResponseError')
        assert.equal(server.seen.length, 2)
      } finally {
        await server.close()
      }
    })

    it('refuses an answer that is not an event stream', async () => {
      const server = await localServer((_req, res) => {
        json(res, 200, { events: [] })
      })
      try {
        const { error } = await collect(new Client({ url: server.url }), 1)
        assert.equal(error?.name, 'InvalidResponseError')
        assert.match(error?.message ?? '', /application\/json, not text\/event-stream/)
      } finally {
        await server.close()
      }
    })

    it('closes the connection when the loop breaks, and when the signal aborts', async () => {
      const server = await localServer((_req, res) => {
        sseHead(res)
        res.write(sse(1))
      })
      try {
        await collect(new Client({ url: server.url }), 1)
        for (let i = 0; i < 100 && server.closed < 1; i++) await new Promise(resolve => setTimeout(resolve, 20))
        assert.equal(server.closed, 1)
        const controller = new AbortController()
        const reason = new Error('enough')
        const events: ApiEvent[] = []
        await assert.rejects(
          (async () => {
            for await (const e of new Client({ url: server.url }).subscribe({ signal: controller.signal })) {
              events.push(e)
              controller.abort(reason)
            }
          })(),
          err => err === reason
        )
        assert.equal(events.length, 1)
        for (let i = 0; i < 100 && server.closed < 2; i++) await new Promise(resolve => setTimeout(resolve, 20))
        assert.equal(server.closed, 2)
        assert.equal(server.seen.length, 2)
      } finally {
        await server.close()
      }
    })
  })

  describe('against a real node', function () {
    this.timeout(60_000)
    const BOARD = 'sdk'
    let node: CyberspaceNode
    let server: ApiServer
    let operator: Client
    let agent: Client
    let agentId: string
    let otherId: string
    let start: string

    /** The first `count` events from a point, page after page. */
    const eventsOf = async (
      client: Client,
      from: { since?: string; after?: string },
      count: number
    ): Promise<ApiEvent[]> => {
      const events: ApiEvent[] = []
      let query: { since?: string; after?: string } = from
      for (let pages = 0; events.length < count && pages < 100; pages++) {
        const page = await client.events({ ...query, limit: 100 })
        events.push(...page.events)
        if (!page.more || page.cursor == null) break
        query = { after: page.cursor }
      }
      return events.slice(0, count)
    }

    /** Fails unless `request` is refused with this status and problem name; answers the error. */
    const refused = async (request: Promise<unknown>, status: number, name: string): Promise<ApiProblemError> => {
      const err = await request.then(
        answer => assert.fail(`expected ${status} ${name}, got ${JSON.stringify(answer)}`),
        (e: unknown) => e
      )
      assert.ok(err instanceof ApiProblemError, String(err))
      assert.equal(err.name, name, err.message)
      assert.equal(err.status, status, err.message)
      assert.equal(err.type, `urn:cyberspace:error:${name}`)
      return err
    }

    before(async () => {
      node = await memoryNode()
      server = await startApiServer({
        node,
        token: TOKEN,
        port: 0,
        pageDir: '/nonexistent',
        handlers: ({ node, tokens }) => v1Handlers(node, { tokens })
      })
      // every answer below is checked against its route's schema
      operator = new Client({ url: server.url, token: TOKEN, validate: true })
      const v0 = apiClient(server.url, TOKEN)
      const root = await key()
      await v0.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
      const attached = await operator.attachAgent({ kind: 'external', id: 'ts-agent' })
      const other = await operator.attachAgent({ kind: 'external', id: 'ts-other', token: false })
      assert.ok(attached.token != null, 'attaching an external agent minted its token')
      assert.equal(other.token, undefined)
      agentId = attached.principal
      otherId = other.principal
      for (const principal of [agentId, otherId]) {
        const cert = await grant(
          root,
          { kind: 'key', principal: principal as PrincipalId },
          `(cyberspace (work ${BOARD}))`,
          {
            propagate: false
          }
        )
        await v0.post('spki/import', { sexp: toAdvanced(signedCertToSexp(cert)) })
      }
      const mail = await grant(
        root,
        { kind: 'key', principal: agentId as PrincipalId },
        `(cyberspace (mailbox (send ${otherId})))`,
        {
          propagate: false
        }
      )
      await v0.post('spki/import', { sexp: toAdvanced(signedCertToSexp(mail)) })
      agent = new Client({ url: server.url, token: attached.token, validate: true })
      start = formatHlc(node.work.events.since(undefined, { limit: 1 }).events[0]?.hlc ?? [0, 0])
      assert.deepEqual(await operator.openBoard(BOARD, 'eventual'), { name: BOARD, mode: 'eventual', items: 0, ops: 0 })
    })

    after(async () => {
      await server?.close()
      await node?.stop()
    })

    it('says who a token acts as', async () => {
      const me = await agent.whoami()
      assert.equal(me.caller, 'agent')
      assert.equal(me.principal, agentId)
      assert.equal(me.node, node.peerId.toString())
      assert.equal((await operator.whoami()).caller, 'operator')
      assert.equal((await operator.node()).peerId, node.peerId.toString())
    })

    it('works a task through its life: create, read, list, claim, progress, complete, and lists it among the agent tasks', async () => {
      const created = await agent.createWorknode({ board: BOARD, id: 't1', title: 'write the SDK', skills: ['ts'] })
      assert.equal(created.ref, `${BOARD}:t1`)
      assert.deepEqual(created.outcome, { accepted: true })
      assert.equal(created.item?.status, 'submitted')
      assert.equal(created.item?.createdBy, agentId)
      const claimed = await agent.claimTask(`${BOARD}:t1`)
      assert.equal(claimed.item?.status, 'working')
      assert.equal(claimed.item?.assignee, agentId)
      await agent.progressTask(`${BOARD}:t1`, { percent: 50, message: 'half' })
      const done = await agent.completeTask(`${BOARD}:t1`, { result: { lines: 700 } })
      assert.equal(done.item?.status, 'completed')
      assert.deepEqual(done.item?.result, { lines: 700 })
      const item = await agent.getWorknode(`${BOARD}:t1`)
      assert.deepEqual(
        item.history?.map(h => h.op),
        ['create', 'claim', 'progress', 'complete']
      )
      const listed = await agent.listWorknodes(BOARD, { status: 'completed' })
      assert.ok(rows<{ ref: string }>(listed, 'items').some(i => i.ref === `${BOARD}:t1`))
      const mine: unknown[] = []
      for await (const task of agent.all('agentTasks', { params: { id: agentId }, query: { limit: 1 } }))
        mine.push(task)
      assert.ok(
        mine.some(t => (t as { ref: string }).ref === `${BOARD}:t1`),
        JSON.stringify(mine)
      )
      assert.ok(rows<{ name: string }>(await agent.listBoards(), 'boards').some(b => b.name === BOARD))
      assert.equal((await agent.getBoard(BOARD)).mode, 'eventual')
    })

    it('hands over, fails, cancels, updates and deletes', async () => {
      await agent.createWorknode({ board: BOARD, id: 't2', title: 'hand me over' })
      await agent.claimTask(`${BOARD}:t2`)
      const handed = await agent.handoffTask(`${BOARD}:t2`, { to: otherId as string, state: { step: 2 } })
      assert.equal(handed.item?.assignee, otherId)
      await agent.createWorknode({ board: BOARD, id: 't3', title: 'fail me' })
      await agent.claimTask(`${BOARD}:t3`)
      assert.equal((await agent.failTask(`${BOARD}:t3`, { error: 'no disk' })).item?.status, 'failed')
      await agent.createWorknode({ board: BOARD, id: 't4', title: 'cancel me' })
      const renamed = await agent.updateWorknode(`${BOARD}:t4`, { title: 'cancel me now' })
      assert.equal(renamed.item?.title, 'cancel me now')
      assert.equal((await agent.cancelTask(`${BOARD}:t4`, { reason: 'not needed' })).item?.status, 'canceled')
      await agent.createWorknode({ board: BOARD, id: 't8', title: 'assign me' })
      assert.equal((await agent.assignTask(`${BOARD}:t8`, { assignee: agentId })).item?.assignee, agentId)
      assert.equal((await agent.assignTask(`${BOARD}:t8`, { assignee: null })).item?.assignee, undefined)
      await agent.claimTask(`${BOARD}:t8`)
      const released = await agent.releaseTask(`${BOARD}:t8`, { reason: 'busy' })
      assert.equal(released.item?.assignee, undefined)
      await agent.createWorknode({ board: BOARD, id: 't5', title: 'delete me' })
      const deleted = await agent.deleteWorknode(`${BOARD}:t5`)
      assert.equal(deleted.outcome.accepted, true)
    })

    it('acts as the agent the operator names, and refuses what a board or the token does not allow, by name', async () => {
      await operator.createWorknode({ board: BOARD, id: 't6', title: 'contested', as: otherId })
      assert.equal((await operator.claimTask(`${BOARD}:t6`, { as: otherId })).item?.assignee, otherId)
      // claimed already
      const taken = await agent.claimTask(`${BOARD}:t6`).then(
        r => r,
        (e: unknown) => e
      )
      if (taken instanceof ApiProblemError) assert.equal(taken.status, 409, taken.message)
      else assert.equal((taken as { outcome: { accepted: boolean } }).outcome.accepted, false)
      // the operator must say who acts
      const noAs = await refused(operator.claimTask(`${BOARD}:t6`), 400, 'InvalidRequestError')
      assert.deepEqual(
        noAs.errors?.map(e => e.field),
        ['body.as']
      )
      // an agent's token acts only as its agent, and calls no operator route
      await refused(agent.claimTask(`${BOARD}:t6`, { as: otherId }), 403, 'AgentTokenScopeError')
      await refused(agent.openBoard('elsewhere'), 403, 'AgentTokenScopeError')
      // a malformed reference is named field by field, before anything is done
      const bad = await refused(agent.getWorknode('not a ref'), 400, 'InvalidRequestError')
      assert.deepEqual(
        bad.errors?.map(e => e.field),
        ['params.id']
      )
      const badBody = await refused(agent.createWorknode({ board: BOARD, title: '' }), 400, 'InvalidRequestError')
      assert.deepEqual(
        badBody.errors?.map(e => e.field),
        ['body.title']
      )
      await refused(agent.getWorknode(`${BOARD}:nope`), 404, 'ItemNotFoundError')
    })

    it('streams the events in HLC order, and resumes after a cursor with exactly what followed', async () => {
      const seen: ApiEvent[] = []
      for await (const e of agent.subscribe({ since: start })) {
        seen.push(e)
        if (e.subject === `${BOARD}/t1` && e.type === 'complete') break
      }
      const ops = seen.filter(e => e.subject === `${BOARD}/t1`).map(e => e.type)
      assert.deepEqual(ops, ['create', 'claim', 'progress', 'complete'])
      for (let i = 1; i < seen.length; i++) {
        const [a, b] = [seen[i - 1].hlc, seen[i].hlc]
        assert.ok(a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1]), `out of HLC order at ${i}`)
      }
      // what pages from the same point hold, the stream held (an agent's page is filtered after
      // its limit, so it may hold fewer than asked: page on)
      const paged = await eventsOf(agent, { since: start }, seen.length)
      assert.deepEqual(
        paged.map(e => e.cursor),
        seen.map(e => e.cursor)
      )
      // resumed after the last one read: the next is the first event after it, none twice
      const last = seen[seen.length - 1].cursor
      const controller = new AbortController()
      const resumed: ApiEvent[] = []
      const reading = (async () => {
        for await (const e of agent.subscribe({ after: last, signal: controller.signal })) {
          resumed.push(e)
          if (e.subject === `${BOARD}/t7`) break
        }
      })()
      await agent.createWorknode({ board: BOARD, id: 't7', title: 'after the cursor' })
      await reading
      const cursors = new Set(seen.map(e => e.cursor))
      assert.ok(
        resumed.every(e => !cursors.has(e.cursor)),
        'an event came twice'
      )
      const after = await eventsOf(agent, { after: last }, resumed.length)
      assert.deepEqual(
        after.map(e => e.cursor),
        resumed.map(e => e.cursor)
      )
    })

    it('refuses a cursor of another run of the node with 410 EventCursorExpiredError, naming the HLC to go on since', async () => {
      const elsewhere = new EventJournal({ run: 'another-run' })
      elsewhere.record({ hlc: [1_763_700_000_000, 3], source: 'board', type: 'create', subject: `${BOARD}/x` })
      const cursor = elsewhere.cursorOf(elsewhere.since(undefined).events[0])
      const streamed = await collect(agent, 1, { after: cursor })
      assert.ok(streamed.error instanceof ApiProblemError, String(streamed.error))
      assert.equal(streamed.error.name, 'EventCursorExpiredError')
      assert.equal(streamed.error.status, 410)
      assert.match(streamed.error.detail, /since=1763700000000\.3/)
      await refused(agent.events({ after: cursor }), 410, 'EventCursorExpiredError')
    })

    it('mints, lists and revokes tokens; a revoked token gets 401, and its stream ends with it', async () => {
      const minted = await operator.mintToken(agentId)
      const second = new Client({ url: server.url, token: minted.token, validate: true })
      assert.equal((await second.whoami()).tokenId, minted.id)
      assert.ok(
        rows<{ id: string }>(await operator.listTokens({ agent: agentId }), 'tokens').some(t => t.id === minted.id)
      )
      // a stream open when the token goes
      const streaming = collect(second, 1_000_000, { since: formatHlc([Date.now(), 0]) })
      await new Promise(resolve => setTimeout(resolve, 200))
      assert.deepEqual(
        (await operator.revokeToken(minted.id)).revoked.map((t: { id: string }) => t.id),
        [minted.id]
      )
      await refused(second.whoami(), 401, 'ApiTokenError')
      const { error } = await streaming
      assert.ok(error instanceof ApiProblemError, String(error))
      assert.equal(error.name, 'ApiTokenError')
      await refused(operator.revokeToken(minted.id), 404, 'TokenNotFoundError')
    })

    it('sends a message as one agent, reads it in the inbox of another, and the confirmation ends the send', async () => {
      // a message to an external agent is delivered once the agent confirms it (a reply)
      const sending = agent.send(agentId, { to: otherId, type: 'note', body: { hello: 1 } })
      const inbox = await operator.inbox(otherId, { wait: 20_000 })
      const got = inbox.messages.find(m => m.type === 'note' && m.from === agentId)
      assert.ok(got != null, JSON.stringify(inbox))
      assert.deepEqual(got.body, { hello: 1 })
      assert.equal(got.to, otherId)
      const replied = await operator.reply(otherId, { message: got.id })
      assert.deepEqual(replied, { agent: otherId, id: got.id, answered: true })
      assert.equal((await sending).id, got.id)
      // an agent's token reads only its own inbox
      await refused(agent.inbox(otherId), 403, 'AgentTokenScopeError')
    })

    it('reads and writes documents with the rights of the caller', async () => {
      const written = await operator.updateDocument('tally', {
        type: 'g-counter',
        update: { op: 'increment', value: 2 }
      })
      assert.equal(written.value, 2)
      assert.equal((await operator.getDocument('tally')).value, 2)
      assert.ok(rows<{ name: string }>(await operator.listDocuments(), 'documents').some(d => d.name === 'tally'))
      // the agent's chain grants no reading of it: as if it were not there
      await refused(agent.getDocument('tally'), 404, 'DocumentNotFoundError')
      assert.ok(!rows<{ name: string }>(await agent.listDocuments(), 'documents').some(d => d.name === 'tally'))
    })

    it('lists certificates, hosted agents, members and the fleet', async () => {
      const all = await operator.listCertificates()
      assert.ok(rows<{ subject: string }>(all, 'certificates').some(c => c.subject === agentId))
      const own = await agent.listCertificates()
      assert.ok(rows(own, 'certificates').length > 0)
      assert.ok(
        rows<{ subject: string; issuer: string }>(own, 'certificates').every(
          c => c.subject === agentId || c.issuer === agentId
        )
      )
      const issued = await operator.issueCertificate({ subject: otherId, tag: '(cyberspace (work scratch))' })
      assert.equal(issued.type, 'auth')
      assert.equal(issued.subject, otherId)
      assert.ok(
        rows<{ hash: string }>(await operator.listCertificates({ subject: otherId }), 'certificates').some(
          c => c.hash === issued.hash
        )
      )
      await refused(agent.issueCertificate({ subject: agentId, tag: '(cyberspace)' }), 403, 'AgentTokenScopeError')
      // this lone node is no cluster's member: its agents are in no registry
      const record = await refused(agent.getAgent(agentId), 403, 'HostNotMemberError')
      assert.ok(record.detail.length > 0)
      const hosted = await agent.hostedAgents()
      assert.deepEqual(
        rows<{ principal: string }>(hosted, 'agents').map(a => a.principal),
        [agentId]
      )
      assert.ok(rows(await operator.hostedAgents(), 'agents').length >= 2)
      assert.ok(Array.isArray(rows(await agent.members(), 'members')))
      assert.ok(typeof (await agent.fleet()).totals === 'object')
    })

    it('stops an agent: its tokens go with it', async () => {
      const extra = await operator.attachAgent({ kind: 'external', id: 'ts-gone' })
      const gone = new Client({ url: server.url, token: extra.token })
      assert.equal((await gone.whoami()).principal, extra.principal)
      assert.deepEqual(await operator.stopAgent(extra.principal), { agent: extra.principal, stopped: true })
      await refused(gone.whoami(), 401, 'ApiTokenError')
    })
  })

  describe('its guide', () => {
    it('docs/api.md lists every route with its method, path and SDK method', async () => {
      const guide = await readFile(new URL('../../docs/api.md', import.meta.url), 'utf8')
      for (const [name, route] of Object.entries(ROUTES)) {
        const method = CLIENT_METHODS[name as keyof typeof CLIENT_METHODS]
        const row = guide.split('\n').find(l => l.startsWith('|') && l.includes(`\`${route.method} ${route.path}\``))
        assert.ok(row != null, `docs/api.md has no row for ${route.method} ${route.path} (${name})`)
        assert.ok(row.includes(`\`${method}\``), `docs/api.md's row for ${name} does not name ${method}`)
        assert.ok(row.includes(`| ${route.auth} `), `docs/api.md's row for ${name} does not say ${route.auth}`)
      }
    })
  })

  describe('in the browser', () => {
    it('bundles for the browser with no node: import', async () => {
      const result = await esbuild.build({
        entryPoints: [fileURLToPath(new URL('../../src/api/client.ts', import.meta.url))],
        bundle: true,
        platform: 'browser',
        format: 'esm',
        minify: true,
        write: false,
        metafile: true,
        logLevel: 'silent'
      })
      assert.equal(result.errors.length, 0)
      const inputs = Object.keys(result.metafile.inputs)
      assert.ok(!inputs.some(i => i.startsWith('node:')), inputs.join(', '))
      const code = result.outputFiles[0].text
      assert.ok(code.includes('/api/events/stream'))
    })
  })
})

/**
 * Compile-time checks (tsc --noEmit runs them): the methods take what the route table says.
 * Never called.
 */
export function typeChecks(client: Client): void {
  // @ts-expect-error a task reference is a string
  void client.getWorknode(1)
  // @ts-expect-error a status is one of the item statuses
  void client.listWorknodes('b', { status: 'nope' })
  // @ts-expect-error createWorknode needs a board and a title
  void client.createWorknode({ title: 't' })
  // @ts-expect-error progress needs a percent
  void client.progressTask('b:t', { message: 'half' })
  // @ts-expect-error the mode is one of local, eventual, strong
  void client.openBoard('b', 'fast')
  // @ts-expect-error getWorknode's params are required
  void client.call('getWorknode')
  void client.call('getWorknode', { params: { id: 'b:t' } }).then(item => {
    const ref: string = item.ref
    // @ts-expect-error an item's ref is a string
    const wrong: number = item.ref
    void ref
    void wrong
  })
  void client.completeTask('b:t').then(r => {
    const accepted: boolean = r.outcome.accepted
    void accepted
  })
  void client.listWorknodes('b', { ready: true, limit: 10 })
}
