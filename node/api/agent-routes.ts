/**
 * Control-API routes for the agent registry (`cyberspace agents …`): read an agent's record by
 * principal or SDSI name, find agents by skill (paginated), and publish a card for this node's key.
 *
 * @example
 * GET  /api/v0/agents/get?agent=cluster%27s%20reviewer      → { "agents": [{ "agent": "z6Mk…", "host": "12D3Koo…", "seq": …, "card": {…}, … }] }
 * GET  /api/v0/agents?skill=code-review&limit=20&cursor=z6Mk… → { "skill": "code-review", "agents": [...], "next": "z6Mk…" | null, "skipped": [...] }
 * POST /api/v0/agents { "card": { "name": "reviewer", … }, "ttl": 3600000 } → { "agent": "z6Mk…", "peers": 7, … }
 */
import { MAX_RECORD_TTL_MS } from '../../protocols/registry/codec.ts'
import { isPrincipalId } from '../../src/crypto/principal.ts'
import { CLI } from './client.ts'
import { HttpError, readJson } from './http.ts'
import type { Route } from './http.ts'
import type { AgentCard } from '../../protocols/registry/codec.ts'
import type { AgentCardInput, AgentRecordView, Registry } from '../../src/registry/service.ts'
import type { CyberspaceNode } from '../../src/node.ts'

/** Longest `agent` query value: a principal, a peer id, or a name of up to 16 words. */
const MAX_AGENT_QUERY = 1024
export const DEFAULT_PAGE = 20
export const MAX_PAGE = 100
/** How long one registry request through the API may take. */
const REGISTRY_TIMEOUT = 30_000

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

/** Whether the text is an SDSI name (`cluster's reviewer`) rather than a principal or peer id. */
export const isAgentName = (text: string): boolean => /'s\s/.test(text)

function registryOf(node: CyberspaceNode): Registry {
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

export function agentRoutes(node: CyberspaceNode): Record<string, Route> {
  return {
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
      if (skill.length === 0) throw new HttpError(400, `skill is required: ${CLI} agents find --skill <id>`)
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
    'POST agents': async req => {
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

/** HTTP status of the registry's named errors. */
export const AGENT_ERROR_STATUS: Record<string, number> = {
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
  InvalidRegistryMessageError: 502
}
