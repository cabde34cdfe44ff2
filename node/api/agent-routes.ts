/**
 * Control-API routes for agents (`cyberspace agents …`): the agents this node hosts (spawn, attach,
 * list, stop, send, request, call a tool as the agent, within its own authority), the mailbox of an
 * external agent (long poll, server-sent events, replies and confirmations), the tokens of external
 * agents (mint, list, revoke), and the agent registry (get by principal or SDSI name, find by skill,
 * publish a card).
 *
 * Attaching an external agent answers a token bound to it (agent-tokens.ts): with it, its program
 * calls only AGENT_TOKEN_ROUTES, and only as its own agent; every other route needs the operator's.
 *
 * Message bodies are JSON in, JSON out, read and written as DAG-JSON: numbers, strings, booleans,
 * null, arrays and objects map to their dag-cbor kinds (whole numbers as integers, others as
 * floats), `{"/": {"bytes": "<base64>"}}` to bytes and `{"/": "<cid>"}` to a link.
 *
 * @example
 * POST /api/v0/agents { "kind": "external", "id": "helper" }             → { "principal": "z6Mk…", "attached": false, "token": "…", … }
 * POST /api/v0/agents/send { "from": "z6Mk…", "to": "z6Mk…", "type": "ask", "body": {…}, "request": true } → { "id": …, "response": … }
 * GET  /api/v0/agents/inbox?agent=z6Mk…&wait=25000                        → { "agent": "z6Mk…", "messages": [{ "id": …, "request": true, … }] }
 * GET  /api/v0/agents/inbox/events?agent=z6Mk…                             → text/event-stream, one `message` event per message
 * POST /api/v0/agents/reply { "agent": "z6Mk…", "id": "…", "body": {…} }  → { "agent": "z6Mk…", "id": "…", "answered": true }
 * POST /api/v0/agents/reply { "agent": "z6Mk…", "id": "…" }               → the same: a one-way message confirmed
 * GET  /api/v0/agents/tokens?agent=z6Mk…                                   → { "tokens": [{ "id": …, "agent": …, "created": …, "lastUsed": … }], "next": null }
 * POST /api/v0/agents/tokens/revoke { "agent": "z6Mk…" } (or { "id": … })  → { "revoked": [{ "id": …, … }] }
 * POST /api/v0/agents/tool { "agent": "z6Mk…", "name": "doc.get", "args": { "doc": "notes", "key": "k" } } → { "result": … }
 * GET  /api/v0/agents/get?agent=cluster%27s%20reviewer                     → { "agents": [{ "agent": "z6Mk…", "host": "12D3Koo…", … }] }
 * GET  /api/v0/agents?skill=code-review&limit=20&cursor=z6Mk…              → { "skill": "code-review", "agents": [...], "next": … }
 * POST /api/v0/agents/publish { "card": { "name": "reviewer", … }, "ttl": 3600000 } → { "agent": "z6Mk…", "peers": 7, … }
 */
import { MAX_RECORD_TTL_MS } from '../../protocols/registry/codec.ts'
import { ID_PATTERN, MAX_ID_LENGTH, MAX_TYPE_LENGTH } from '../../protocols/mailbox/codec.ts'
import { EXTERNAL_KIND } from '../../src/actor/agents.ts'
import { AgentNotFoundHereError, NotExternalAgentError, UnknownKindError } from '../../src/actor/agent-errors.ts'
import { isPrincipalId } from '../../src/crypto/principal.ts'
import { CLI } from './client.ts'
import { MAX_INBOX_WAIT, MAX_SEND_TIMEOUT } from '../agent-commands.ts'
import {
  booleanField,
  closedSignal,
  drained,
  HttpError,
  optionalString,
  readJson,
  send,
  startEventStream,
  stringField
} from './http.ts'
import { actingAs, AgentTokens, OPERATOR, operatorOnly, TOKEN_ID } from './agent-tokens.ts'
import type { AgentTokenInfo, Caller, MintedAgentToken } from './agent-tokens.ts'
import { dataValue, jsonValue } from './state-routes.ts'
import type { Route } from './http.ts'
import type { WaiterPlaces } from './v1/handlers-common.ts'
import type { AgentCard } from '../../protocols/registry/codec.ts'
import type { AgentInfo, KeySource, PendingMessage } from '../../src/actor/agents.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { AgentCardInput, AgentRecordView, Registry } from '../../src/registry/service.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** Longest `agent` query value: a principal, a peer id, or a name of up to 16 words. */
const MAX_AGENT_QUERY = 1024
export const DEFAULT_PAGE = 20
export const MAX_PAGE = 100
/** How long one registry request through the API may take. */
export const REGISTRY_TIMEOUT = 30_000
/** How long a spawn through the API may take (a cluster key needs t members' help). */
const SPAWN_TIMEOUT = 55_000
/** Most messages one long poll returns. */
export const MAX_INBOX_TAKE = 100
/** Long polls and event streams open at once, over all agents: the API takes 64 connections in all. */
export const MAX_INBOX_WAITERS = 16
/** How often an idle event stream carries a comment, in ms, so proxies and clients see it alive. */
export const HEARTBEAT_MS = 15_000
/** Messages one turn of an event stream takes from the inbox before it writes them. */
const STREAM_BATCH = 16
/** Longest error text an external agent may answer with. */
const MAX_REPLY_ERROR = 1024

/** A route that writes its own response (a stream, or JSON after waiting on the connection). */
export type StreamRoute = (req: IncomingMessage, url: URL, res: ServerResponse, caller?: Caller) => Promise<void>

/**
 * The routes an agent's token may call, each only about its own agent (the route checks the agent
 * it names): its messages, inbox and replies, its tools, its own entry among the hosted agents,
 * and reads of the registry. Every other route answers an agent's token 403 AgentTokenScopeError.
 */
export const AGENT_TOKEN_ROUTES: ReadonlySet<string> = new Set([
  'POST agents/send',
  'POST agents/reply',
  'POST agents/tool',
  'GET agents/inbox',
  'GET agents/inbox/events',
  'GET agents/hosted',
  'GET agents/get',
  'GET agents'
])

export interface AgentView {
  agent: string
  host: string
  addrs: string[]
  seq: number
  /** ms since the epoch */
  expires: number
  expiresAt: string
  key: string
  card: AgentCard
}

export interface AgentPage {
  skill: string
  agents: AgentView[]
  /** The cursor of the next page, or null on the last one. */
  next: string | null
  /** Providers of the skill left out, and why. */
  skipped: Array<{ peer: string; name: string; message: string }>
}

/**
 * An agent this node hosts, as `POST agents` answers it: `attached` when an external agent ran
 * already. For an external agent also a new token bound to it (shown this once), its id, and how
 * many tokens the agent holds now: earlier ones stay valid until revoked.
 */
export type HostedAgentView = AgentInfo & {
  attached?: boolean
  token?: string
  tokenId?: string
  tokens?: number
}

/** What minting a token answers: the secret (shown this once) and how many tokens the agent holds now. */
export type MintedTokenView = MintedAgentToken & { tokens: number }

export interface TokenPage {
  tokens: AgentTokenInfo[]
  /** The cursor of the next page (a token id), or null on the last one. */
  next: string | null
}

export interface HostedPage {
  agents: AgentInfo[]
  /** The cursor of the next page (a principal), or null on the last one. */
  next: string | null
}

/** A message waiting for an external agent; `body` as DAG-JSON. */
export interface PendingMessageView {
  id: string
  from: string
  to: string
  type: string
  request: boolean
  body: unknown
  /** Why `body` is null: the value the sender gave has no DAG-JSON form (only agents on this node can send one). */
  bodyError?: string
  /** When the node handed it to the inbox, ms since the epoch. */
  received: number
}

export interface InboxView {
  agent: string
  messages: PendingMessageView[]
}

/** What `POST agents/send` answers: a receipt for a one-way message, the response for a request. */
export type SendResult = { id: string; to: string; local: boolean } | { id: string; response: unknown }

export function agentView(view: AgentRecordView): AgentView {
  return {
    agent: view.agent,
    host: view.host,
    addrs: view.addrs,
    seq: view.seq,
    expires: view.expires,
    expiresAt: new Date(view.expires).toISOString(),
    key: view.key,
    card: view.card
  }
}

/** A body, response or result as DAG-JSON, or why it has no such form (an agent on this node may hand over any value). */
function dagJsonOf(value: unknown): { json: unknown } | { error: string } {
  try {
    return { json: jsonValue(value) }
  } catch (err) {
    return { error: `it has no DAG-JSON form: ${(err as Error).message}` }
  }
}

/** As DAG-JSON, or a 502 naming what the agent answered with when that has none. */
function answerJson(value: unknown, what: string): unknown {
  const converted = dagJsonOf(value)
  if ('error' in converted) throw new HttpError(502, `${what} was handled, but ${converted.error}`)
  return converted.json
}

export function pendingView(message: PendingMessage): PendingMessageView {
  const body = dagJsonOf(message.body)
  return {
    id: message.id,
    from: message.from,
    to: message.to,
    type: message.type,
    request: message.request,
    body: 'json' in body ? body.json : null,
    ...('error' in body ? { bodyError: `the body: ${body.error}` } : {}),
    received: message.received
  }
}

/** Whether the text is an SDSI name (`cluster's reviewer`) rather than a principal or peer id. */
export const isAgentName = (text: string): boolean => /'s\s/.test(text)

export function registryOf(node: CyberspaceNode): Registry {
  const registry = node.libp2p.services.registry as Registry | undefined
  if (registry == null) throw new HttpError(503, 'this node runs no agent registry')
  return registry
}

function pageSize(text: string | null): number {
  if (text == null) return DEFAULT_PAGE
  if (!/^\d{1,3}$/.test(text) || Number(text) < 1 || Number(text) > MAX_PAGE)
    throw new HttpError(400, `limit must be a whole number from 1 to ${MAX_PAGE}`)
  return Number(text)
}

/** A whole number from `min` to `max` in a query or body, or `fallback` when absent. */
function wholeNumber(value: unknown, field: string, min: number, max: number, fallback: number): number {
  if (value === undefined || value === null) return fallback
  const n = typeof value === 'string' && /^\d{1,9}$/.test(value) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max)
    throw new HttpError(400, `${field} must be a whole number from ${min} to ${max}`)
  return n
}

function principalField(value: unknown, field: string): PrincipalId {
  if (typeof value !== 'string' || !isPrincipalId(value))
    throw new HttpError(400, `${field} must be an agent principal (z6Mk…): see ${CLI} agents list`)
  return value
}

function bodyValue(body: Record<string, unknown>): unknown {
  return body.body === undefined ? null : dataValue(body.body)
}

function keyField(value: unknown): KeySource | undefined {
  if (value === undefined) return undefined
  if (value !== 'cluster' && value !== 'local') throw new HttpError(400, 'key must be cluster or local')
  return value
}

/** An external agent hosted here, or the named error saying why `agent` is none. */
export function requireExternal(node: CyberspaceNode, agent: PrincipalId): AgentInfo {
  const info = node.agents.get(agent)
  if (info == null) throw new AgentNotFoundHereError(`agent ${agent} does not run on this node`)
  if (!info.external)
    throw new NotExternalAgentError(
      `agent ${agent} is of kind ${info.kind}, not ${EXTERNAL_KIND}: nothing attaches to it`
    )
  return info
}

/**
 * Revokes the tokens of an agent once it no longer runs here (stopped, crashed for good, or moved
 * to another node): a token outlives neither. Returns what stops the watching.
 */
export function revokeTokensOfStoppedAgents(node: CyberspaceNode, tokens: AgentTokens): () => void {
  const onChange = (evt: Event): void => {
    const info = (evt as CustomEvent<AgentInfo>).detail
    if (node.agents.get(info.principal) == null) tokens.revoke({ agent: info.principal })
  }
  node.agents.addEventListener('change', onChange)
  return () => {
    node.agents.removeEventListener('change', onChange)
  }
}

export interface AgentRoutesOptions {
  /** The tokens `POST agents` mints for external agents; a store of its own when absent. */
  tokens?: AgentTokens
}

/**
 * Starts an agent of `kind` here, or — for an external agent whose `id` runs already — attaches to
 * it; for an external agent with `mint`, with a new token bound to it (shown this once).
 */
export async function attachAgent(
  node: CyberspaceNode,
  tokens: AgentTokens,
  request: { kind: string; id?: string; key?: KeySource; mint: boolean }
): Promise<HostedAgentView> {
  const { kind, id, key, mint } = request
  /** The agent as attached: with a new token bound to it, unless the operator asked for none. */
  const attached = (info: AgentInfo, again: boolean): HostedAgentView => {
    if (!mint) return { ...info, attached: again }
    const minted = tokens.mint(info.principal)
    return { ...info, attached: again, token: minted.token, tokenId: minted.id, tokens: tokens.count(info.principal) }
  }
  const attachable = (): AgentInfo | undefined =>
    kind === EXTERNAL_KIND && id != null
      ? node.agents.list().find(a => a.kind === kind && a.id === id && (key == null || a.key === key))
      : undefined
  const running = attachable()
  if (running != null) return attached(running, true)
  try {
    const info = await node.agents.spawn(kind, { id, key, signal: AbortSignal.timeout(SPAWN_TIMEOUT) })
    return attached(info, false)
  } catch (err) {
    const name = (err as Error).name
    // two programs attaching at once: the second attaches to what the first started
    const now = name === 'AgentRunningError' ? attachable() : undefined
    if (now != null) return attached(now, true)
    if (name === 'UnknownKindError')
      throw new UnknownKindError(
        `this node runs no agents of kind ${kind} (it runs ${node.agents.kinds().join(', ')}): start it with --kind ${kind}`
      )
    throw err
  }
}

/** What a message sent through the API says: its recipient, type, body (as stored values), whether it is a request. */
export interface OutgoingMessage {
  to: string
  type: string
  body: unknown
  request: boolean
  /** ms */
  timeout: number
  id: string
}

/** Sends `message` as the hosted agent `from`: a receipt for a one-way message, the answer (as DAG-JSON) for a request. */
export async function sendAs(node: CyberspaceNode, from: PrincipalId, message: OutgoingMessage): Promise<SendResult> {
  const { to, type, body, request, timeout, id } = message
  if (request) {
    const response = await node.agents.request(from, to, type, body, { id, timeout })
    return { id, response: answerJson(response, `request ${id}`) }
  }
  const receipt = await node.agents.send(from, to, type, body, { id, timeout })
  return { id: receipt.id, to: receipt.to, local: receipt.local }
}

export function agentRoutes(node: CyberspaceNode, options: AgentRoutesOptions = {}): Record<string, Route> {
  const tokens = options.tokens ?? new AgentTokens()
  return {
    // ---------------------------------------------------------------- agents hosted here
    'POST agents': async req => {
      const body = await readJson(req)
      if (body.card !== undefined)
        throw new HttpError(400, 'a card is published with POST agents/publish; POST agents spawns { kind, id?, key? }')
      const kind = stringField(body, 'kind', 64)
      const id = optionalString(body, 'id', 64)
      const key = keyField(body.key)
      if (body.token !== undefined && typeof body.token !== 'boolean')
        throw new HttpError(400, 'token must be true or false: whether to mint a token for the external agent')
      if (body.token === true && kind !== EXTERNAL_KIND)
        throw new HttpError(400, `tokens are for agents of kind ${EXTERNAL_KIND}: a program acts as them`)
      return await attachAgent(node, tokens, { kind, id, key, mint: kind === EXTERNAL_KIND && body.token !== false })
    },
    'GET agents/hosted': async (_req, url, caller = OPERATOR) => {
      const limit = pageSize(url.searchParams.get('limit'))
      const cursor = url.searchParams.get('cursor')
      if (cursor != null && !isPrincipalId(cursor))
        throw new HttpError(400, 'cursor must be the next value of the previous page (a principal id)')
      // an agent's token sees only its own agent
      const visible =
        caller.kind === 'agent' ? node.agents.list().filter(a => a.principal === caller.agent) : node.agents.list()
      const after = visible.filter(a => cursor == null || a.principal > cursor)
      const page = after.slice(0, limit)
      const body: HostedPage = {
        agents: page,
        next: after.length > limit ? page[page.length - 1].principal : null
      }
      return body
    },
    'POST agents/stop': async req => {
      const agent = principalField((await readJson(req)).agent, 'agent')
      await node.agents.stop(agent, { signal: AbortSignal.timeout(REGISTRY_TIMEOUT) })
      tokens.revoke({ agent })
      return { agent, stopped: true }
    },
    'POST agents/send': async (req, _url, caller = OPERATOR) => {
      const body = await readJson(req)
      const from = principalField(body.from, 'from')
      actingAs(caller, from, 'send as')
      const to = stringField(body, 'to', MAX_AGENT_QUERY)
      const type = stringField(body, 'type', MAX_TYPE_LENGTH)
      const request = booleanField(body, 'request')
      const timeout = wholeNumber(body.timeout, 'timeout (ms)', 1, MAX_SEND_TIMEOUT, 30_000)
      const id = optionalString(body, 'id', MAX_ID_LENGTH) ?? randomId()
      if (!ID_PATTERN.test(id))
        throw new HttpError(400, 'id must be 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit')
      return await sendAs(node, from, { to, type, body: bodyValue(body), request, timeout, id })
    },
    'POST agents/reply': async (req, _url, caller = OPERATOR) => {
      const body = await readJson(req)
      const agent = principalField(body.agent, 'agent')
      actingAs(caller, agent, 'answer for')
      const id = stringField(body, 'id', MAX_ID_LENGTH)
      const error = optionalString(body, 'error', MAX_REPLY_ERROR)
      if (error != null && body.body !== undefined)
        throw new HttpError(400, 'a reply carries a body or an error, not both')
      node.agents.reply(agent, id, bodyValue(body), error == null ? {} : { error })
      return { agent, id, answered: true }
    },
    'POST agents/tool': async (req, _url, caller = OPERATOR) => {
      const body = await readJson(req)
      const agent = principalField(body.agent, 'agent')
      actingAs(caller, agent, 'call tools as')
      const name = stringField(body, 'name', 64)
      const args = body.args === undefined ? {} : dataValue(body.args)
      if (args == null || typeof args !== 'object' || Array.isArray(args) || args instanceof Uint8Array)
        throw new HttpError(400, "args must be a JSON object: the tool's arguments")
      const result = await node.agents.tool(agent, name, args as Record<string, unknown>, {
        signal: AbortSignal.timeout(MAX_SEND_TIMEOUT)
      })
      return { agent, name, result: answerJson(result, `tool ${name}`) }
    },

    // ---------------------------------------------------------------- external agents' tokens (the operator's)
    'POST agents/token': async (req, _url, caller = OPERATOR) => {
      operatorOnly(caller, 'POST agents/token')
      const agent = principalField((await readJson(req)).agent, 'agent')
      requireExternal(node, agent)
      const minted = tokens.mint(agent)
      return { ...minted, tokens: tokens.count(agent) } satisfies MintedTokenView
    },
    'GET agents/tokens': async (_req, url, caller = OPERATOR) => {
      operatorOnly(caller, 'GET agents/tokens')
      const limit = pageSize(url.searchParams.get('limit'))
      const cursor = url.searchParams.get('cursor')
      if (cursor != null && !TOKEN_ID.test(cursor))
        throw new HttpError(400, 'cursor must be the next value of the previous page (a token id)')
      const agent = url.searchParams.get('agent')
      if (agent != null) principalField(agent, 'agent')
      const after = tokens.list().filter(t => (agent == null || t.agent === agent) && (cursor == null || t.id > cursor))
      const page = after.slice(0, limit)
      return { tokens: page, next: after.length > limit ? page[page.length - 1].id : null } satisfies TokenPage
    },
    'POST agents/tokens/revoke': async (req, _url, caller = OPERATOR) => {
      operatorOnly(caller, 'POST agents/tokens/revoke')
      const body = await readJson(req)
      if ((body.agent === undefined) === (body.id === undefined))
        throw new HttpError(400, 'name the tokens to revoke: { agent } for all of an agent’s, or { id } for one')
      const agent = body.agent === undefined ? undefined : principalField(body.agent, 'agent')
      const id = body.id === undefined ? undefined : stringField(body, 'id', 16)
      if (id != null && !TOKEN_ID.test(id))
        throw new HttpError(400, `id must be a token id (16 of 0-9 a-f): see ${CLI} agents tokens`)
      return { revoked: tokens.revoke({ agent, id }) }
    },

    // ---------------------------------------------------------------- the registry
    'GET agents/get': async (_req, url) => {
      const agent = url.searchParams.get('agent') ?? ''
      if (agent.length === 0 || agent.length > MAX_AGENT_QUERY)
        throw new HttpError(400, `agent must be a principal, a peer id or a name like cluster's reviewer`)
      const registry = registryOf(node)
      const signal = AbortSignal.timeout(REGISTRY_TIMEOUT)
      const views = isAgentName(agent)
        ? await registry.resolve(agent, { signal })
        : [await registry.get(agent, { signal })]
      return { agents: views.map(agentView) }
    },
    'GET agents': async (_req, url) => {
      const skill = url.searchParams.get('skill') ?? ''
      if (skill.length === 0)
        throw new HttpError(
          400,
          `skill is required: ${CLI} agents find --skill <id> (the agents this node hosts: GET agents/hosted)`
        )
      const limit = pageSize(url.searchParams.get('limit'))
      const cursor = url.searchParams.get('cursor')
      if (cursor != null && !isPrincipalId(cursor))
        throw new HttpError(400, 'cursor must be the next value of the previous page (a principal id)')
      // records come sorted by agent, those after the cursor: the registry pages past what one find returns
      const result = await registryOf(node).find(
        { skill, limit, ...(cursor == null ? {} : { after: cursor }) },
        { signal: AbortSignal.timeout(REGISTRY_TIMEOUT) }
      )
      const page = result.records
      const body: AgentPage = {
        skill,
        agents: page.map(agentView),
        next: result.more && page.length > 0 ? page[page.length - 1].agent : null,
        skipped: result.skipped.map(s => ({ peer: s.peer, name: s.error.name, message: s.error.message }))
      }
      return body
    },
    'POST agents/publish': async req => {
      const body = await readJson(req)
      const card = body.card
      if (card == null || typeof card !== 'object' || Array.isArray(card))
        throw new HttpError(400, 'card must be a JSON object: an A2A agent card')
      const ttl = body.ttl
      if (
        ttl !== undefined &&
        (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < 1000 || ttl > MAX_RECORD_TTL_MS)
      )
        throw new HttpError(400, `ttl must be a whole number of ms from 1000 to ${MAX_RECORD_TTL_MS}`)
      const published = await registryOf(node).publish(card as AgentCardInput, {
        ttl: ttl as number | undefined,
        signal: AbortSignal.timeout(REGISTRY_TIMEOUT)
      })
      return { ...agentView(published), peers: published.peers }
    }
  }
}

export function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  return Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('')
}

/**
 * Aborted when the caller's token is revoked (never for the operator), with ApiTokenError; the
 * tokens forget the wait when the response closes.
 */
export function revokedSignal(tokens: AgentTokens, caller: Caller, res: ServerResponse): AbortSignal {
  if (caller.kind !== 'agent') return new AbortController().signal
  const wait = tokens.watch(caller.tokenId)
  res.once('close', wait.release)
  return wait.signal
}

/** One server-sent event: `event`, `id` (a message id: no line breaks) and `data` as one line of JSON. */
function sseEvent(event: string, data: unknown, id?: string): string {
  return `${id == null ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

/**
 * The routes that wait on the connection: an external agent's inbox by long poll and as an event
 * stream. Each holds one of `places` while it waits (the server's inbox pool, which the public
 * API's inbox shares: MAX_INBOX_WAITERS in all, a quarter at most for one agent).
 */
export function agentStreams(
  node: CyberspaceNode,
  options: { places: WaiterPlaces; heartbeat?: number; tokens?: AgentTokens }
): Record<string, StreamRoute> {
  const heartbeat = options.heartbeat ?? HEARTBEAT_MS
  const tokens = options.tokens ?? new AgentTokens()
  const places = options.places
  return {
    'GET agents/inbox': async (_req, url, res, caller = OPERATOR) => {
      const agent = principalField(url.searchParams.get('agent'), 'agent')
      actingAs(caller, agent, 'read the inbox of')
      const wait = wholeNumber(url.searchParams.get('wait') ?? undefined, 'wait (ms)', 0, MAX_INBOX_WAIT, 0)
      const max = wholeNumber(url.searchParams.get('max') ?? undefined, 'max', 1, MAX_INBOX_TAKE, MAX_INBOX_TAKE)
      const release = places.take(caller)
      try {
        const revoked = revokedSignal(tokens, caller, res)
        const messages = await node.agents.inbox(agent, {
          wait,
          max,
          signal: AbortSignal.any([closedSignal(res), revoked])
        })
        // a token revoked while it waited takes nothing, and learns why
        if (revoked.aborted) throw revoked.reason
        const body: InboxView = { agent, messages: messages.map(pendingView) }
        send(res, 200, 'application/json', JSON.stringify(body))
      } finally {
        release()
      }
    },
    'GET agents/inbox/events': async (_req, url, res, caller = OPERATOR) => {
      const agent = principalField(url.searchParams.get('agent'), 'agent')
      actingAs(caller, agent, 'read the inbox of')
      // the checks inbox() makes, before the stream starts: afterwards only an event can say what went wrong
      requireExternal(node, agent)
      const release = places.take(caller)
      const revoked = revokedSignal(tokens, caller, res)
      const signal = AbortSignal.any([closedSignal(res), revoked])
      try {
        startEventStream(res)
        res.write(`: attached to ${agent}\n\n`)
        while (!signal.aborted) {
          // a slow reader: nothing more is taken from the inbox until it has read what was written
          await drained(res, signal)
          if (signal.aborted) break
          let messages: PendingMessage[]
          try {
            messages = await node.agents.inbox(agent, { wait: heartbeat, max: STREAM_BATCH, signal })
          } catch (err) {
            // the agent stopped or moved: say so, and end the stream
            const e = err as Error
            res.end(sseEvent('end', { name: e.name, message: e.message }))
            return
          }
          if (messages.length === 0) res.write(': heartbeat\n\n')
          for (const message of messages) res.write(sseEvent('message', pendingView(message), message.id))
        }
        if (revoked.aborted) {
          const e = revoked.reason as Error
          res.end(sseEvent('end', { name: e.name, message: e.message }))
        }
      } finally {
        release()
        if (!res.writableEnded) res.end()
      }
    }
  }
}

/** HTTP status of the agents', mailboxes' and registry's named errors. */
export const AGENT_ERROR_STATUS: Record<string, number> = {
  // the registry
  AgentNotFoundError: 404,
  AgentRecordExpiredError: 404,
  AgentNameError: 404,
  // name certificates that lead back to a name being resolved: the name denotes nothing
  NameCycleError: 404,
  AgentNotPublishedError: 404,
  HostNotMemberError: 403,
  InvalidAgentCardError: 400,
  InvalidAgentRecordError: 400,
  AgentCardTooLargeError: 413,
  StaleAgentRecordError: 409,
  // a peer sent something bad, or refused
  AgentRecordSignatureError: 502,
  RegistryRefusedError: 502,
  InvalidRegistryMessageError: 502,
  // the agents this node hosts
  UnknownKindError: 404,
  AgentUnauthorizedError: 403,
  AgentRunningError: 409,
  AgentNotFoundHereError: 404,
  UnknownToolError: 404,
  InvalidAgentOptionError: 400,
  InvalidAgentNameError: 400,
  NotExternalAgentError: 409,
  NoSuchPendingMessageError: 404,
  NoClusterKeyError: 409,
  LeaseLostError: 409,
  // messages between agents
  UnauthorizedSenderError: 403,
  UnknownAgentError: 404,
  AgentNotHostedError: 404,
  SenderNotHostedError: 404,
  AmbiguousRecipientError: 409,
  InvalidMailboxMessageError: 400,
  MailboxMessageTooLargeError: 413,
  DuplicateMessageError: 409,
  // backpressure: the recipient's mailbox is full; try again later
  MailboxFullError: 429,
  MailboxRateLimitedError: 429,
  MailboxBusyError: 503,
  SequenceGapError: 503,
  MessagePendingError: 503,
  MessageExpiredError: 504,
  DeliveryTimeoutError: 504,
  HandlerTimeoutError: 504,
  AskTimeoutError: 504,
  // the recipient (or the peer on the way) failed
  HandlerFailedError: 502,
  ExternalAgentError: 502,
  MessageSignatureError: 502,
  DeliveryFailedError: 502,
  ActorStoppedError: 503
}
