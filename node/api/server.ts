/**
 * The API port of a node process: the public HTTP API (`/api/…`, routed by node/api/v1/router.ts
 * from src/api/routes.ts), its OpenAPI document (`/api/openapi.json`), the CLI's control API
 * (`/api/v0/…`), Prometheus metrics (`/metrics`), mounts (MCP at `/mcp`, A2A), and the web page.
 *
 * Bound to 127.0.0.1 unless `host` says otherwise; off loopback it needs `tls` (then it answers
 * https) or an explicit `insecure`. Every request must carry a Host header naming an address the
 * API is bound to (loopback names always; the bound address; every address of the machine when
 * bound to all of them; `publicHost`), so a DNS-rebinding page cannot reach it under another name.
 * Requests to the API, the metrics and the mounts must carry an Origin of the API's own if any, and
 * not come cross-site. The operator's token (`api-token` in the data directory) may call every
 * route; an agent's token (agent-tokens.ts) only the routes its agent may, and only as its agent.
 * The page (`/`, `/bundle.js`), `/bootstrap.json` and `/api/openapi.json` are public.
 *
 * Every error is answered as RFC 9457 problem details (http.ts `problemOf`).
 *
 * @example
 * const api = await startApiServer({ node, token, port: 4100, pageDir: 'dist/browser' })
 * console.log(api.url)
 */
import { timingSafeEqual } from 'node:crypto'
import { createServer, STATUS_CODES } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import { isIPv6 } from 'node:net'
import { networkInterfaces } from 'node:os'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { WebSockets } from '@multiformats/multiaddr-matcher'
import { MAX_NAME_LENGTH, MAX_VALUE_BYTES, valueKey } from '../../protocols/values/codec.ts'
import { clusterRoutes, CLUSTER_ERROR_STATUS } from './cluster-routes.ts'
import { membershipRoutes, MEMBERSHIP_ERROR_STATUS } from './membership-routes.ts'
import {
  agentRoutes,
  agentStreams,
  AGENT_ERROR_STATUS,
  AGENT_TOKEN_ROUTES,
  revokeTokensOfStoppedAgents
} from './agent-routes.ts'
import { AgentTokens, ApiTokenError, OPERATOR, operatorOnly } from './agent-tokens.ts'
import type { Caller } from './agent-tokens.ts'
import type { StreamRoute } from './agent-routes.ts'
import { spkiRoutes, SPKI_ERROR_STATUS } from './spki-routes.ts'
import { stateRoutes, STATE_ERROR_STATUS } from './state-routes.ts'
import { workRoutes, WORK_ERROR_STATUS, WORK_TOKEN_ROUTES } from './work-routes.ts'
import type { Route } from './http.ts'
import {
  API_PREFIX,
  bearerToken,
  checkApiBind,
  ForbiddenHostError,
  HttpError,
  isLoopback,
  MAX_BODY_BYTES,
  MethodNotAllowedError,
  problemOf,
  readJson,
  RouteNotFoundError,
  send,
  sendProblem,
  stringField
} from './http.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Message } from '@libp2p/gossipsub'
import { openApiDocument } from '../../src/api/openapi.ts'
import { ApiBindError } from '../errors.ts'
import { ApiMetrics, METRICS_CONTENT_TYPE } from './metrics.ts'
import { apiPlaces, v1Handlers } from './v1/handlers.ts'
import type { ApiPlaces } from './v1/handlers-common.ts'
import { v1Router } from './v1/router.ts'
import type { Handlers, Mount } from './v1/handler.ts'
import type { RouteMatch } from './v1/router.ts'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'

const utf8 = new TextDecoder()
export const MAX_TOPIC_LENGTH = 256
export const MAX_TOPICS = 16
export const MAX_BUFFERED_MESSAGES = 1000
/** Bytes of message data buffered per topic (oldest dropped first), so at most 64 MiB in all. */
export const MAX_BUFFERED_BYTES_PER_TOPIC = 4 * 1024 * 1024
/** Concurrent HTTP connections the control API accepts. */
export const MAX_API_CONNECTIONS = 1024
/** Connections one remote address (other than this machine's loopback) may hold at once. */
export const MAX_CONNECTIONS_PER_ADDRESS = 32

export interface ApiServerInit {
  node: CyberspaceNode
  token: string
  /** 0 picks a free port. */
  port: number
  /** Folder holding the built page (index.html, bundle.js). */
  pageDir: string
  /** Told of server errors after it started listening (they never stop the node). */
  onError?: (err: Error) => void
  /** Called after `POST members/leave` spread this node's leave: the process should stop. */
  onLeave?: () => void
  /** The address to listen on; 127.0.0.1 by default. Off loopback it needs `tls` or `insecure`. */
  host?: string
  /** Answer https with this certificate and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer }
  /** Plain HTTP off loopback, knowingly: tokens cross the network in clear. */
  insecure?: boolean
  /** A name clients reach the API by (DNS, a proxy's), accepted in Host and Origin besides its addresses. */
  publicHost?: string
  /**
   * Served under their prefixes on this port (MCP, A2A), after the Host and Origin checks; or a
   * function of the API's URL (known once it listens, when the port was 0) giving them.
   */
  mounts?: Mount[] | ((api: { url: string; port: number; tokens: AgentTokens }) => Mount[])
  /**
   * The public API's handlers, given the server's tokens and its places for waiting requests
   * (shared with the control API); v1Handlers(node, { tokens, places }) by default.
   */
  handlers?: (context: { node: CyberspaceNode; tokens: AgentTokens; places: ApiPlaces }) => Partial<Handlers>
}

export interface ApiServer {
  /** How a client on this machine reaches the API: http://127.0.0.1:<port>, or the https URL. */
  url: string
  port: number
  /** Whether it answers https. */
  tls: boolean
  /** The agents' tokens this API accepts besides the operator's. */
  tokens: AgentTokens
  close(): Promise<void>
}

export interface BufferedMessage {
  seq: number
  from: string
  data: string
  /** Wall-clock arrival time in ms (sub-millisecond precision). */
  receivedAt: number
}

interface TopicBuffer {
  messages: BufferedMessage[]
  next: number
  bytes: number
}

/** HTTP status for the named errors the node raises on bad requests. */
export const ERROR_STATUS: Record<string, number> = {
  ValueNotFoundError: 404,
  InvalidValueRecordError: 400,
  InvalidParametersError: 400,
  TimeoutError: 504,
  ...SPKI_ERROR_STATUS,
  ...CLUSTER_ERROR_STATUS,
  ...MEMBERSHIP_ERROR_STATUS,
  ...AGENT_ERROR_STATUS,
  ...STATE_ERROR_STATUS,
  ...WORK_ERROR_STATUS
}

/** The status an error is answered with: its own (HttpError), its name's in ERROR_STATUS, else 500. */
export function statusOf(err: unknown): number {
  if (err instanceof HttpError) return err.status
  return ERROR_STATUS[(err as Error | undefined)?.name ?? ''] ?? 500
}

/** Addresses that mean every interface. */
const WILDCARDS = new Set(['0.0.0.0', '::'])

/** A host as it stands in a URL or Host header: IPv6 in brackets. */
function hostText(host: string): string {
  return isIPv6(host) ? `[${host}]` : host
}

const PAGE_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/bundle.js': { file: 'bundle.js', type: 'text/javascript; charset=utf-8' }
}

export async function startApiServer(init: ApiServerInit): Promise<ApiServer> {
  checkApiBind(init)
  const { node } = init
  const expectedToken = Buffer.from(init.token)
  const tokens = new AgentTokens()
  const topics = new Map<string, TopicBuffer>()
  let port = 0

  const onMessage = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    const buffer = topics.get(msg.topic)
    if (buffer == null) return
    const data = utf8.decode(msg.data)
    buffer.messages.push({
      seq: buffer.next++,
      from: msg.type === 'signed' ? msg.from.toString() : '',
      data,
      receivedAt: performance.timeOrigin + performance.now()
    })
    buffer.bytes += data.length
    while (
      buffer.messages.length > MAX_BUFFERED_MESSAGES ||
      (buffer.bytes > MAX_BUFFERED_BYTES_PER_TOPIC && buffer.messages.length > 0)
    ) {
      buffer.bytes -= buffer.messages.shift()?.data.length ?? 0
    }
  }
  node.pubsub.addEventListener('message', onMessage)
  const state = stateRoutes(node)
  const stopRevoking = revokeTokensOfStoppedAgents(node, tokens)
  const bindHost = init.host ?? '127.0.0.1'
  const scheme = init.tls != null ? 'https' : 'http'
  /** Longest prefix first; set once the server listens (before it answers anything). */
  let mounts: Mount[] = []
  const metrics = new ApiMetrics({ node, tokens })
  /** The places of long polls and streams, one pool per kind, for the control API and the public API together. */
  const places = apiPlaces()
  const router = v1Router({
    handlers: init.handlers?.({ node, tokens, places }) ?? v1Handlers(node, { tokens, places }),
    authenticate: req => callerOf(req),
    onStream: (route, delta) => {
      metrics.stream(route, delta)
    }
  })
  let openApiText: string | undefined
  /** Host headers this API answers (`name:port`, lower case), set once it listens. */
  let allowedHosts = new Set<string>()
  let allowedOrigins = new Set<string>()

  const routes: Record<string, Route> = {
    'GET id': async () => ({
      peerId: node.peerId.toString(),
      multiaddrs: node.multiaddrs().map(String),
      dhtMode: node.dht.getMode(),
      pubsubPeers: node.pubsub.getPeers().length,
      topics: node.pubsub.getTopics(),
      bootstrap: node.bootstrap.status()
    }),
    'GET peers': async () => node.peers(),
    'POST dht/put': async req => {
      const body = await readJson(req)
      const name = stringField(body, 'name', MAX_NAME_LENGTH)
      const value = stringField(body, 'value', MAX_VALUE_BYTES)
      await node.putValue(name, new TextEncoder().encode(value), { signal: AbortSignal.timeout(30_000) })
      return { key: valueKey(node.peerId.toString(), name) }
    },
    'GET dht/get': async (_req, url) => {
      const peer = url.searchParams.get('peer') ?? ''
      const name = url.searchParams.get('name') ?? ''
      const { seq, value } = await node.getValue(peer, name, { signal: AbortSignal.timeout(30_000) })
      return { peer, name, seq, value: new TextDecoder().decode(value) }
    },
    'POST pubsub/subscribe': async req => {
      const topic = stringField(await readJson(req), 'topic', MAX_TOPIC_LENGTH)
      if (!topics.has(topic)) {
        if (topics.size >= MAX_TOPICS) throw new HttpError(429, `at most ${MAX_TOPICS} topics`)
        topics.set(topic, { messages: [], next: 1, bytes: 0 })
        node.pubsub.subscribe(topic)
      }
      return { topic }
    },
    'POST pubsub/unsubscribe': async req => {
      const topic = stringField(await readJson(req), 'topic', MAX_TOPIC_LENGTH)
      topics.delete(topic)
      node.pubsub.unsubscribe(topic)
      return { topic }
    },
    'POST pubsub/publish': async req => {
      const body = await readJson(req)
      const topic = stringField(body, 'topic', MAX_TOPIC_LENGTH)
      const data = stringField(body, 'data', MAX_BODY_BYTES)
      try {
        const result = await node.pubsub.publish(topic, new TextEncoder().encode(data))
        return { topic, recipients: result.recipients.map(String) }
      } catch (err) {
        const message = (err as Error).message
        if (message.includes('NoPeersSubscribedToTopic'))
          throw new HttpError(409, `no peer subscribes to ${topic} yet (nothing was sent)`)
        throw new HttpError(409, `could not publish on ${topic}: ${message}`)
      }
    },
    'GET pubsub/peers': async (_req, url) => {
      const topic = url.searchParams.get('topic') ?? ''
      return node.pubsub.getSubscribers(topic).map(String)
    },
    'GET pubsub/messages': async (_req, url) => {
      const topic = url.searchParams.get('topic') ?? ''
      const after = Number(url.searchParams.get('after') ?? '0')
      const buffer = topics.get(topic)
      if (buffer == null) throw new HttpError(404, `not subscribed to ${topic}`)
      return { topic, messages: buffer.messages.filter(m => m.seq > after), next: buffer.next - 1 }
    },
    ...spkiRoutes(node),
    ...clusterRoutes(node),
    ...membershipRoutes(node, { onLeave: init.onLeave }),
    ...agentRoutes(node, { tokens }),
    ...state.routes,
    ...workRoutes(node)
  }
  /** Routes that write their own response (event streams, long polls that watch the connection). */
  const streams: Record<string, StreamRoute> = agentStreams(node, { tokens, places: places.inbox })

  /** Who sends the request: the operator's token, or an agent's that is live; else 401. */
  function callerOf(req: IncomingMessage): Caller {
    const text = bearerToken(req)
    const given = Buffer.from(text)
    if (given.length === expectedToken.length && timingSafeEqual(given, expectedToken)) return OPERATOR
    const token = tokens.verify(text)
    if (token != null) return { kind: 'agent', agent: token.agent, tokenId: token.id }
    throw new ApiTokenError(
      text === ''
        ? 'no bearer token: send Authorization: Bearer <token> (api-token in the data directory, or an agent token)'
        : 'wrong or revoked token (see api-token in the data directory; an agent token ends when revoked, when its agent stops, or when the node restarts)'
    )
  }

  /** What the metrics count a request under: its route's name, and whether it is a stream. */
  interface Labels {
    route: string
    stream: boolean
  }

  /** Refuses a request from a page elsewhere: an Origin not the API's own, or a cross-site fetch. */
  function sameOrigin(req: IncomingMessage): void {
    const origin = req.headers.origin
    if (origin != null && !allowedOrigins.has(origin.toLowerCase())) {
      throw new ForbiddenHostError(`forbidden origin ${origin.slice(0, 200)}`)
    }
    if (req.headers['sec-fetch-site'] === 'cross-site') throw new ForbiddenHostError('forbidden cross-site request')
  }

  async function handle(req: IncomingMessage, res: ServerResponse, labels: Labels): Promise<void> {
    const host = (req.headers.host ?? '').toLowerCase()
    if (!allowedHosts.has(host)) {
      throw new ForbiddenHostError(
        `forbidden host ${JSON.stringify(host.slice(0, 200))}: call this API as ${[...allowedHosts].slice(0, 4).join(' or ')}`
      )
    }
    const url = new URL(req.url ?? '/', `${scheme}://127.0.0.1:${port}`)
    const path = url.pathname
    const method = req.method ?? ''
    const mount = mounts.find(
      m => path === m.prefix || path.startsWith(m.prefix.endsWith('/') ? m.prefix : `${m.prefix}/`)
    )
    if (mount != null) {
      labels.route = mount.prefix
      sameOrigin(req)
      await mount.handle(req, res, url, mount.auth === 'agent' ? callerOf(req) : undefined)
      return
    }
    if (path === '/api/openapi.json') {
      labels.route = 'openapi'
      if (method !== 'GET' && method !== 'HEAD')
        throw new MethodNotAllowedError(`${method} ${path}: only GET and HEAD here`, ['GET', 'HEAD'])
      openApiText ??= JSON.stringify(openApiDocument())
      send(res, 200, 'application/json', openApiText)
      return
    }
    if (path === '/metrics') {
      labels.route = 'metrics'
      if (method !== 'GET') throw new MethodNotAllowedError(`${method} ${path}: only GET here`, ['GET'])
      sameOrigin(req)
      operatorOnly(callerOf(req), 'GET /metrics')
      send(res, 200, METRICS_CONTENT_TYPE, await metrics.render())
      return
    }
    if (path.startsWith(API_PREFIX)) {
      labels.route = 'v0'
      sameOrigin(req)
      const caller = callerOf(req)
      const key = `${method} ${path.slice(API_PREFIX.length)}`
      const stream = streams[key]
      const route = routes[key]
      if (stream == null && route == null) throw new RouteNotFoundError(`no such endpoint: ${method} ${path}`)
      // an agent's token reaches only its agent's routes; each of them checks the agent it names
      if (!AGENT_TOKEN_ROUTES.has(key) && !WORK_TOKEN_ROUTES.has(key)) operatorOnly(caller, key)
      if (stream != null) {
        labels.stream = true
        metrics.stream('v0', 1)
        try {
          await stream(req, url, res, caller)
        } finally {
          metrics.stream('v0', -1)
        }
        return
      }
      const result = await route(req, url, caller)
      send(res, 200, 'application/json', JSON.stringify(result))
      return
    }
    if (path === '/api' || path.startsWith('/api/')) {
      const match: RouteMatch = router.match(method, path)
      labels.route = match.name
      labels.stream = match.spec.stream === true
      sameOrigin(req)
      await router.dispatch(match, req, res, url)
      return
    }
    labels.route = 'page'
    if (method !== 'GET' && method !== 'HEAD')
      throw new MethodNotAllowedError(`${method} ${path}: only GET and HEAD here`, ['GET', 'HEAD'])
    if (url.pathname === '/bootstrap.json') {
      const multiaddrs = node
        .multiaddrs()
        .filter(ma => WebSockets.matches(ma))
        .map(String)
      send(res, 200, 'application/json', JSON.stringify({ peerId: node.peerId.toString(), multiaddrs }))
      return
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204).end()
      return
    }
    const page = PAGE_FILES[url.pathname]
    if (page == null) throw new RouteNotFoundError(`not found: ${url.pathname}`)
    let body: Buffer
    try {
      body = await readFile(join(init.pageDir, page.file))
    } catch {
      throw new HttpError(404, `${page.file} is not built; run npm run build:browser`)
    }
    send(res, 200, page.type, body)
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now()
    const labels: Labels = { route: 'unmatched', stream: false }
    res.once('close', () => {
      const seconds = labels.stream ? undefined : (performance.now() - started) / 1000
      metrics.request(labels.route, req.method ?? '', res.statusCode, seconds)
    })
    handle(req, res, labels).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy()
        return
      }
      const status = statusOf(err)
      const path = (req.url ?? '/').split('?')[0]
      sendProblem(
        res,
        problemOf(err, status, { instance: path.slice(0, 256), legacy: path.startsWith(API_PREFIX) }),
        err instanceof HttpError ? err.headers : {}
      )
    })
  }
  /** Lets go of what the API holds on the node (listeners, watches). */
  const release = (): void => {
    node.pubsub.removeEventListener('message', onMessage)
    state.close()
    stopRevoking()
  }
  let server: Server
  try {
    server =
      init.tls != null
        ? createTlsServer({ cert: init.tls.cert, key: init.tls.key, connectionsCheckingInterval: 1_000 }, onRequest)
        : createServer({ connectionsCheckingInterval: 1_000 }, onRequest)
  } catch (err) {
    release()
    throw new ApiBindError(`the API's TLS certificate and key do not work: ${(err as Error).message}`)
  }
  server.requestTimeout = 60_000
  server.headersTimeout = 10_000
  server.maxConnections = MAX_API_CONNECTIONS
  // what Node's parser refuses (a header too large, a malformed request) is a problem too
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) {
      socket.destroy()
      return
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    const body = JSON.stringify(problemOf(new HttpError(status, STATUS_CODES[status] ?? 'Bad request'), status))
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
    )
  })
  // one remote address holds a share of the connections, never all of them
  const perAddress = new Map<string, number>()
  server.on('connection', socket => {
    const address = socket.remoteAddress ?? ''
    if (isLoopback(address) || address === '::ffff:127.0.0.1') return
    const held = (perAddress.get(address) ?? 0) + 1
    perAddress.set(address, held)
    socket.once('close', () => {
      const n = (perAddress.get(address) ?? 1) - 1
      if (n <= 0) perAddress.delete(address)
      else perAddress.set(address, n)
    })
    if (held > MAX_CONNECTIONS_PER_ADDRESS) socket.destroy()
  })
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(init.port, bindHost, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    release()
    throw err
  }
  // after listening, an error (e.g. EMFILE on accept) must not take the node down
  server.on('error', err => {
    init.onError?.(err)
  })
  const address = server.address()
  port = typeof address === 'object' && address != null ? address.port : init.port
  const names = new Set(['127.0.0.1', 'localhost', '[::1]'])
  if (WILDCARDS.has(bindHost)) {
    // bound to every interface: each of the machine's addresses names it (an IP literal is no rebinding risk)
    for (const list of Object.values(networkInterfaces()))
      for (const a of list ?? []) names.add(hostText(a.address.split('%')[0]).toLowerCase())
  } else names.add(hostText(bindHost).toLowerCase())
  allowedHosts = new Set([...names].map(n => `${n}:${port}`))
  if (init.publicHost != null) {
    const name = init.publicHost.toLowerCase()
    // behind a proxy on the scheme's own port the Host has no port
    allowedHosts.add(`${name}:${port}`).add(name)
  }
  allowedOrigins = new Set([...allowedHosts].map(h => `${scheme}://${h}`))
  const localHost = WILDCARDS.has(bindHost) ? '127.0.0.1' : hostText(bindHost)
  const apiUrl = `${scheme}://${localHost}:${port}`
  try {
    const given = typeof init.mounts === 'function' ? init.mounts({ url: apiUrl, port, tokens }) : (init.mounts ?? [])
    mounts = [...given].sort((a, b) => b.prefix.length - a.prefix.length)
  } catch (err) {
    release()
    server.close()
    throw err
  }
  return {
    url: apiUrl,
    port,
    tls: init.tls != null,
    tokens,
    close: async () => {
      release()
      await Promise.allSettled(mounts.map(async m => await m.close?.()))
      server.closeAllConnections()
      await new Promise<void>(resolve => {
        server.close(() => {
          resolve()
        })
      })
    }
  }
}
