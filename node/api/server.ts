/**
 * The local control API of a node process, and the web page it serves.
 *
 * Bound to 127.0.0.1 only. Every request must carry a Host header naming that loopback address
 * (so a DNS-rebinding page cannot reach it under another name); `/api/` requests must also carry
 * a bearer token and, if they carry an Origin, it must be the API's own (so a web page elsewhere
 * cannot drive the node). The operator's token (`api-token` in the data directory) may call every
 * route; an agent's token (agent-tokens.ts, minted when a program attaches as an external agent)
 * only the routes of AGENT_TOKEN_ROUTES, and there only as its own agent. The page (`/`,
 * `/bundle.js`) and `/bootstrap.json` are public: the page is a peer of its own and needs no authority.
 *
 * @example
 * const api = await startApiServer({ node, token, port: 4100, pageDir: 'dist/browser' })
 * console.log(api.url)
 */
import { timingSafeEqual } from 'node:crypto'
import { createServer } from 'node:http'
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
import { workRoutes, workStreams, WORK_ERROR_STATUS, WORK_TOKEN_ROUTES } from './work-routes.ts'
import type { Route } from './http.ts'
import {
  API_PREFIX,
  errorFields,
  ForbiddenHostError,
  HttpError,
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
import type { IncomingMessage, Server, ServerResponse } from 'node:http'

const utf8 = new TextDecoder()
export const MAX_TOPIC_LENGTH = 256
export const MAX_TOPICS = 16
export const MAX_BUFFERED_MESSAGES = 1000
/** Bytes of message data buffered per topic (oldest dropped first), so at most 64 MiB in all. */
export const MAX_BUFFERED_BYTES_PER_TOPIC = 4 * 1024 * 1024
/** Concurrent HTTP connections the control API accepts. */
export const MAX_API_CONNECTIONS = 64

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
}

export interface ApiServer {
  url: string
  port: number
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

export { errorFields }

/** The status an error is answered with: its own (HttpError), its name's in ERROR_STATUS, else 500. */
export function statusOf(err: unknown): number {
  if (err instanceof HttpError) return err.status
  return ERROR_STATUS[(err as Error | undefined)?.name ?? ''] ?? 500
}

const PAGE_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/bundle.js': { file: 'bundle.js', type: 'text/javascript; charset=utf-8' }
}

export async function startApiServer(init: ApiServerInit): Promise<ApiServer> {
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
  const streams: Record<string, StreamRoute> = { ...agentStreams(node, { tokens }), ...workStreams(node) }

  /** Who sends the request: the operator's token, or an agent's that is live; else 401. */
  function callerOf(req: IncomingMessage): Caller {
    const auth = req.headers.authorization ?? ''
    const text = auth.startsWith('Bearer ') ? auth.slice(7) : ''
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

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const allowedHosts = [`127.0.0.1:${port}`, `localhost:${port}`]
    if (!allowedHosts.includes(req.headers.host ?? '')) {
      throw new ForbiddenHostError(
        `forbidden host ${JSON.stringify(req.headers.host ?? '')}: call this API as ${allowedHosts.join(' or ')}`
      )
    }
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`)
    if (url.pathname.startsWith(API_PREFIX)) {
      const origin = req.headers.origin
      if (origin != null && !allowedHosts.map(h => `http://${h}`).includes(origin)) {
        throw new ForbiddenHostError(`forbidden origin ${origin}`)
      }
      if (req.headers['sec-fetch-site'] === 'cross-site') throw new ForbiddenHostError('forbidden cross-site request')
      const caller = callerOf(req)
      const key = `${req.method ?? ''} ${url.pathname.slice(API_PREFIX.length)}`
      const stream = streams[key]
      const route = routes[key]
      if (stream == null && route == null)
        throw new RouteNotFoundError(`no such endpoint: ${req.method ?? ''} ${url.pathname}`)
      // an agent's token reaches only its agent's routes; each of them checks the agent it names
      if (!AGENT_TOKEN_ROUTES.has(key) && !WORK_TOKEN_ROUTES.has(key)) operatorOnly(caller, key)
      if (stream != null) {
        await stream(req, url, res, caller)
        return
      }
      const result = await route(req, url, caller)
      send(res, 200, 'application/json', JSON.stringify(result))
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD')
      throw new MethodNotAllowedError(`${req.method ?? ''} ${url.pathname}: only GET and HEAD here`, ['GET', 'HEAD'])
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

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
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
  })
  server.requestTimeout = 60_000
  server.headersTimeout = 10_000
  server.maxConnections = MAX_API_CONNECTIONS
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(init.port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  // after listening, an error (e.g. EMFILE on accept) must not take the node down
  server.on('error', err => {
    init.onError?.(err)
  })
  const address = server.address()
  port = typeof address === 'object' && address != null ? address.port : init.port
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    tokens,
    close: async () => {
      node.pubsub.removeEventListener('message', onMessage)
      state.close()
      stopRevoking()
      server.closeAllConnections()
      await new Promise<void>(resolve => {
        server.close(() => {
          resolve()
        })
      })
    }
  }
}
