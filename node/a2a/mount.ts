/**
 * The A2A binding on the API's port (README.md in this folder): for each agent hosted here, its
 * agent card at `/a2a/<principal>/.well-known/agent-card.json` (public, as cards are in the
 * registry) and its A2A JSON-RPC endpoint at `/a2a/jsonrpc/<principal>`, which the card names (a
 * bearer token of this node required). The SDK's JSON-RPC transport reads each call — `JsonRpcTransportHandler` for v1.0
 * (`A2A-Version: 1.0`), `LegacyJsonRpcTransportHandler` for v0.3 (no header) — and answers it
 * through `AgentTasks` (tasks.ts), which keeps tasks as work items; this module is the HTTP around
 * it: the agent, the body's limits, the version, and streams as server-sent events.
 *
 * @example
 * const api = await startApiServer({ node, token, port: 4100, pageDir, mounts: ({ url, tokens }) => a2aMounts({ node, url, tokens }) })
 * // an A2A client: new ClientFactory().createFromUrl(`${api.url}/a2a/${principal}/`)
 */
import { AgentCard, A2A_VERSION_HEADER, formatSSEErrorEvent, formatSSEEvent } from '@a2a-js/sdk'
import { JsonRpcTransportHandler, ServerCallContext, validateVersion } from '@a2a-js/sdk/server'
import { LegacyJsonRpcTransportHandler } from '@a2a-js/sdk/compat/v0_3/server'
import { depthOver } from '../../src/api/depth.ts'
import { isPrincipalId } from '../../src/crypto/principal.ts'
import { revokedSignal } from '../api/agent-routes.ts'
import {
  closedSignal,
  drained,
  MethodNotAllowedError,
  readBody,
  RouteNotFoundError,
  send,
  startEventStream,
  UnsupportedMediaTypeError
} from '../api/http.ts'
import { INVALID_REQUEST, PARSE_ERROR, sendJsonRpcError } from '../api/jsonrpc.ts'
import { a2aCard, JSONRPC_BINDING, LEGACY_VERSION, legacyCardJson } from './card.ts'
import { A2aForbiddenError } from './errors.ts'
import { AgentNotFoundHereError } from '../../src/actor/agent-errors.ts'
import { A2aTasks, AgentTasks } from './tasks.ts'
import type { A2aTasksInit } from './tasks.ts'
import type { AgentTokens, Caller } from '../api/agent-tokens.ts'
import type { Mount } from '../api/v1/handler.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { User } from '@a2a-js/sdk/server'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** Where the agents' cards are on the API's port: `/a2a/<principal>/.well-known/agent-card.json`. */
export const A2A_PREFIX = '/a2a'
/** Where agents answer A2A JSON-RPC: `/a2a/jsonrpc/<principal>` (the card's interface url). */
export const A2A_RPC_PREFIX = '/a2a/jsonrpc'
/** Where an agent's card is, under its path. */
export const CARD_PATH = '/.well-known/agent-card.json'
/** Bytes of one JSON-RPC request: a message's text is at most 4000 characters, parts and envelope fit well within. */
export const MAX_A2A_BODY_BYTES = 64 * 1024
/** How often an idle task stream carries a comment, in ms, so proxies and clients see it alive. */
export const A2A_HEARTBEAT_MS = 15_000

/** Nesting of a request's JSON (the envelope is 5 deep to a part's data); deeper is refused before the SDK reads it. */
export const MAX_A2A_JSON_DEPTH = 32

export interface A2aMountsInit extends A2aTasksInit {
  /**
   * The API's URL as clients reach it, which cards name endpoints under (e.g. https://node.example:4100);
   * default: the origin of the request for the card, as the API server parsed it.
   */
  url?: string
  /**
   * The API server's agent tokens (startApiServer gives them to `mounts`): a stream or a blocking
   * send of a token that is revoked meanwhile ends then, as the API's own streams do. Without them,
   * such a call goes on until it ends or its client goes away.
   */
  tokens?: AgentTokens
  /** How often an idle stream carries a comment, in ms; default A2A_HEARTBEAT_MS. */
  heartbeat?: number
}

/**
 * The binding's mounts on the API server: the cards, public, under A2A_PREFIX; the calls, with a
 * token the server checks first (401 without a live one), under the longer A2A_RPC_PREFIX (the
 * server takes the longest prefix that matches; no principal is called `jsonrpc`).
 */
export function a2aMounts(init: A2aMountsInit): Mount[] {
  const { node } = init
  const tasks = new A2aTasks(init)
  const heartbeat = init.heartbeat ?? A2A_HEARTBEAT_MS

  /** The registry card of an agent hosted here, or AgentNotFoundHereError (404, as the API answers it). */
  const registryCard = (principal: string): NonNullable<ReturnType<typeof node.registry.published>[number]> => {
    const hosted = isPrincipalId(principal) ? node.agents.get(principal) : undefined
    const record = hosted == null ? undefined : node.registry.published().find(r => r.agent === principal)
    if (record == null)
      throw new AgentNotFoundHereError(
        `no agent ${principal.slice(0, 60)} is hosted on this node: an agent's A2A endpoint is on the node that hosts it (its record in the registry names the host)`
      )
    return record
  }

  const apiOrigin = (url: URL): string => (init.url == null ? url.origin : new URL(init.url).origin)

  const cardOf = (principal: PrincipalId, url: URL): AgentCard =>
    a2aCard(registryCard(principal).card, `${apiOrigin(url)}${A2A_RPC_PREFIX}/${principal}`)

  /** The principal a path names after `prefix`, and what follows it. */
  const split = (url: URL, prefix: string): { principal: PrincipalId; tail: string } | undefined => {
    const match = /^\/([^/]+)(\/.*)?$/.exec(url.pathname.slice(prefix.length))
    return match == null ? undefined : { principal: match[1] as PrincipalId, tail: match[2] ?? '' }
  }

  /** Serves a request under A2A_PREFIX: the agents' cards. */
  async function cards(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = split(url, A2A_PREFIX)
    if (path == null || path.tail !== CARD_PATH)
      throw new RouteNotFoundError(
        `no such endpoint: ${url.pathname} (an agent's card is at ${A2A_PREFIX}/<principal>${CARD_PATH}; it names where the agent answers A2A calls, ${A2A_RPC_PREFIX}/<principal>)`
      )
    if (req.method !== 'GET' && req.method !== 'HEAD')
      throw new MethodNotAllowedError(`${req.method ?? ''} ${url.pathname}: a card is read with GET`, ['GET', 'HEAD'])
    const card = cardOf(path.principal, url)
    // the card in the form of the version the client asks for: v0.3 when it does not say
    res.setHeader('vary', A2A_VERSION_HEADER)
    const legacy = versionOf(req) === LEGACY_VERSION
    send(res, 200, 'application/json', JSON.stringify(legacy ? legacyCardJson(card) : AgentCard.toJSON(card)))
  }

  /** Serves a request under A2A_RPC_PREFIX: an agent's JSON-RPC calls. */
  async function calls(req: IncomingMessage, res: ServerResponse, url: URL, caller: Caller | undefined): Promise<void> {
    const path = split(url, A2A_RPC_PREFIX)
    if (path == null || (path.tail !== '' && path.tail !== '/'))
      throw new RouteNotFoundError(
        `no such endpoint: ${url.pathname} (an agent answers A2A JSON-RPC at ${A2A_RPC_PREFIX}/<principal>, as its card says)`
      )
    const card = cardOf(path.principal, url)
    if (req.method !== 'POST')
      throw new MethodNotAllowedError(
        `${req.method ?? ''} ${url.pathname}: A2A calls are JSON-RPC requests, sent with POST`,
        ['POST']
      )
    // a mount with auth 'agent': the server has resolved the bearer token before (401 without a live one)
    await call(req, res, card, path.principal, caller as Caller)
  }

  async function call(
    req: IncomingMessage,
    res: ServerResponse,
    card: AgentCard,
    agent: PrincipalId,
    caller: Caller
  ): Promise<void> {
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
    if (type !== 'application/json' && type !== 'application/a2a+json')
      throw new UnsupportedMediaTypeError(
        `a JSON-RPC request is sent as content-type application/json, not ${type === '' ? 'nothing' : type.slice(0, 80)}`
      )
    const text = (await readBody(req, MAX_A2A_BODY_BYTES, 'JSON-RPC request')).toString('utf8')
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch (err) {
      sendJsonRpcError(res, {
        code: PARSE_ERROR,
        message: `Parse error: the body is not JSON (${(err as Error).message})`
      })
      return
    }
    if (Array.isArray(body)) {
      sendJsonRpcError(res, {
        code: INVALID_REQUEST,
        message: 'Invalid Request: batches are not served; send one request per HTTP request'
      })
      return
    }
    if (body == null || typeof body !== 'object') {
      sendJsonRpcError(res, { code: INVALID_REQUEST, message: 'Invalid Request: a JSON-RPC request is a JSON object' })
      return
    }
    if (depthOver(body, MAX_A2A_JSON_DEPTH)) {
      sendJsonRpcError(res, {
        code: INVALID_REQUEST,
        message: `Invalid Request: JSON nested deeper than ${MAX_A2A_JSON_DEPTH} levels`
      })
      return
    }
    const request = body as Record<string, unknown>
    const id = typeof request.id === 'string' || typeof request.id === 'number' ? request.id : null
    if (request.jsonrpc !== '2.0' || typeof request.method !== 'string') {
      sendJsonRpcError(
        res,
        { code: INVALID_REQUEST, message: 'Invalid Request: a JSON-RPC 2.0 request has jsonrpc "2.0" and a method' },
        id
      )
      return
    }
    // a request without A2A-Version is a v0.3 one (A2A v1.0 says so): the SDK's v0.3 transport reads it
    const version = versionOf(req)
    const legacy = version === LEGACY_VERSION
    const mapError = legacy
      ? LegacyJsonRpcTransportHandler.mapToLegacyJSONRPCError
      : JsonRpcTransportHandler.mapToJSONRPCError
    const context = new ServerCallContext({ user: userOf(caller), requestedVersion: version })
    try {
      validateVersion(version, card, JSONRPC_BINDING)
    } catch (err) {
      sendJsonRpcError(res, mapError(err), id)
      return
    }
    // a stream, or a send that waits for its task, holds a place while it lasts
    const release = waits(request, legacy)
      ? tasks.place(caller.kind === 'agent' ? `token:${caller.tokenId}` : 'operator')
      : undefined
    try {
      const revoked = init.tokens != null ? revokedSignal(init.tokens, caller, res) : undefined
      const signal = revoked != null ? AbortSignal.any([closedSignal(res), revoked]) : closedSignal(res)
      const handler = new AgentTasks(tasks, { caller, agent, card, signal })
      const transport = legacy ? new LegacyJsonRpcTransportHandler(handler) : new JsonRpcTransportHandler(handler)
      const answer = await transport.handle(request, context)
      if (!(Symbol.asyncIterator in answer)) {
        send(res, 200, 'application/json', JSON.stringify(answer))
        return
      }
      // a stream: its first event (or its refusal) decides between an event stream and one JSON answer
      const events = answer[Symbol.asyncIterator]()
      let first: IteratorResult<unknown>
      try {
        first = await events.next()
      } catch (err) {
        sendJsonRpcError(res, mapError(err), id)
        return
      }
      startEventStream(res)
      const timer = setInterval(() => {
        res.write(': heartbeat\n\n')
      }, heartbeat)
      try {
        for (let next = first; next.done !== true && !signal.aborted; next = await events.next()) {
          res.write(formatSSEEvent(next.value))
          await drained(res, signal)
        }
        // the token was revoked: the stream ends saying so
        if (revoked?.aborted === true && !res.writableEnded)
          res.write(
            formatSSEErrorEvent({
              jsonrpc: '2.0',
              id,
              error: mapError(
                new A2aForbiddenError(`the token of agent ${caller.kind === 'agent' ? caller.agent : ''} was revoked`)
              )
            })
          )
      } catch (err) {
        if (!res.writableEnded) res.write(formatSSEErrorEvent({ jsonrpc: '2.0', id, error: mapError(err) }))
      } finally {
        clearInterval(timer)
        await events.return?.(undefined)
        if (!res.writableEnded) res.end()
      }
    } finally {
      release?.()
    }
  }

  return [
    { prefix: A2A_RPC_PREFIX, auth: 'agent', handle: calls },
    { prefix: A2A_PREFIX, auth: 'public', handle: cards }
  ]
}

/** The A2A version a request asks for: its A2A-Version, or v0.3 without one. */
function versionOf(req: IncomingMessage): string {
  const version = req.headers[A2A_VERSION_HEADER.toLowerCase()]
  return typeof version === 'string' && version.trim() !== '' ? version.trim() : LEGACY_VERSION
}

/**
 * Whether a JSON-RPC request holds its connection while its task goes on: streams, and sends that
 * wait (v1.0 waits unless `returnImmediately`; v0.3 only when `blocking`). A flag counts as the
 * SDK's readers take it — any truthy value, not only `true` — so a send cannot wait without a place.
 */
function waits(request: Record<string, unknown>, legacy: boolean): boolean {
  const method = request.method
  const params = request.params as
    | {
        configuration?: { returnImmediately?: unknown; return_immediately?: unknown; blocking?: unknown } | null
      }
    | null
    | undefined
  const configuration = params?.configuration
  if (legacy) {
    if (method === 'message/stream' || method === 'tasks/resubscribe') return true
    // the v0.3 reader: returnImmediately = !blocking, blocking read with Boolean()
    return method === 'message/send' && Boolean(configuration?.blocking)
  }
  if (method === 'SendStreamingMessage' || method === 'SubscribeToTask') return true
  // the v1.0 reader: Boolean(returnImmediately), or of return_immediately when that is not set
  return method === 'SendMessage' && !Boolean(configuration?.returnImmediately ?? configuration?.return_immediately)
}

function userOf(caller: Caller): User {
  const userName = caller.kind === 'agent' ? caller.agent : 'operator'
  return { isAuthenticated: true, userName }
}
