/**
 * The public API's agent handlers: the registry (find by skill, get by principal), the agents this
 * node hosts (list, attach or start, stop), an agent's messages (inbox by long poll, send — a
 * request waits for its answer — and reply), and the agents' tokens (list, mint, revoke).
 *
 * An agent's token acts only as its own agent: its inbox, its messages and replies, its entry among
 * the hosted (403 AgentTokenScopeError for another's). Attaching, stopping and tokens are the
 * operator's (the router refuses agent tokens on those routes).
 *
 * @example
 * POST /api/node/agents { "kind": "external", "id": "helper" }     → { "principal": "z6Mk…", "token": "…", "tokenId": "…", … }
 * GET  /api/agents/z6Mk…/inbox?wait=25000                            → { "agent": "z6Mk…", "messages": [{ "id": …, "request": true, … }] }
 * POST /api/agents/z6Mk…/messages { "to": "z6Mk…", "type": "ask", "request": true } → { "id": "…", "response": … }
 */
import { ID_PATTERN } from '../../../protocols/mailbox/codec.ts'
import { EXTERNAL_KIND } from '../../../src/actor/agents.ts'
import { isPrincipalId } from '../../../src/crypto/principal.ts'
import {
  agentView,
  attachAgent,
  pendingView,
  randomId,
  registryOf,
  requireExternal,
  revokedSignal,
  REGISTRY_TIMEOUT,
  sendAs
} from '../agent-routes.ts'
import { actingAs } from '../agent-tokens.ts'
import { byText, dataOf, pageOf } from './handlers-common.ts'
import { invalidField, TokenNotFoundError } from './handlers-errors.ts'
import type { AgentTokens } from '../agent-tokens.ts'
import type { WaiterPlaces } from './handlers-common.ts'
import type { Handlers } from './handler.ts'
import type { AgentRecord } from '../../../src/api/schema.ts'
import type { PrincipalId } from '../../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../../src/node.ts'
import type * as z from 'zod'

/** How long stopping an agent may take (its session records that it stopped, its record is withdrawn). */
const STOP_TIMEOUT = 30_000

/** A registry record as the public API answers it (the card as a plain object). */
function agentRecord(view: Parameters<typeof agentView>[0]): z.input<typeof AgentRecord> {
  const { card, ...rest } = agentView(view)
  return { ...rest, card: { ...card } }
}

/** The agents' handlers; `inboxPlaces` bounds the inbox long polls (the server's pool, shared with the control API). */
export function agentHandlers(
  node: CyberspaceNode,
  tokens: AgentTokens,
  inboxPlaces: WaiterPlaces
): Pick<
  Handlers,
  | 'findAgents'
  | 'getAgent'
  | 'inbox'
  | 'send'
  | 'reply'
  | 'hostedAgents'
  | 'attachAgent'
  | 'stopAgent'
  | 'listTokens'
  | 'mintToken'
  | 'revokeToken'
> {
  return {
    // ---------------------------------------------------------------- the registry
    findAgents: async ({ query }) => {
      if (query.after != null && !isPrincipalId(query.after))
        throw invalidField('query.after', 'must be the next of an earlier page (a principal)')
      // records come sorted by agent, those after the cursor: the registry pages past what one find returns
      const result = await registryOf(node).find(
        { skill: query.skill, limit: query.limit, ...(query.after != null ? { after: query.after } : {}) },
        { signal: AbortSignal.timeout(REGISTRY_TIMEOUT) }
      )
      const records = result.records
      return {
        agents: records.map(agentRecord),
        next: result.more && records.length > 0 ? records[records.length - 1].agent : null,
        ...(result.skipped.length > 0
          ? { skipped: result.skipped.map(s => ({ peer: s.peer, name: s.error.name, message: s.error.message })) }
          : {})
      }
    },
    getAgent: async ({ params }) =>
      agentRecord(await registryOf(node).get(params.id, { signal: AbortSignal.timeout(REGISTRY_TIMEOUT) })),

    // ---------------------------------------------------------------- an agent's messages
    inbox: async ({ params, query, caller, res, signal }) => {
      const agent = params.id as PrincipalId
      actingAs(caller, agent, 'read the inbox of')
      const release = query.wait > 0 ? inboxPlaces.take(caller) : undefined
      try {
        const revoked = revokedSignal(tokens, caller, res)
        const messages = await node.agents.inbox(agent, {
          wait: query.wait,
          max: query.limit,
          signal: AbortSignal.any([signal, revoked])
        })
        // a token revoked while it waited takes nothing, and learns why
        if (revoked.aborted) throw revoked.reason
        return { agent, messages: messages.map(m => ({ ...pendingView(m) })) }
      } finally {
        release?.()
      }
    },
    send: async ({ params, body, caller }) => {
      const from = params.id as PrincipalId
      actingAs(caller, from, 'send as')
      const id = body.id ?? randomId()
      if (!ID_PATTERN.test(id))
        throw invalidField('body.id', 'must be 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit')
      return await sendAs(node, from, {
        to: body.to,
        type: body.type,
        body: body.body === undefined ? null : dataOf(body.body, 'body.body'),
        request: body.request,
        timeout: body.timeout,
        id
      })
    },
    reply: async ({ params, body, caller }) => {
      const agent = params.id as PrincipalId
      actingAs(caller, agent, 'answer for')
      if (body.error != null && body.body !== undefined)
        throw invalidField('body.error', 'a reply carries a body or an error, not both')
      const value = body.body === undefined ? null : dataOf(body.body, 'body.body')
      node.agents.reply(agent, body.message, value, body.error == null ? {} : { error: body.error })
      return { agent, id: body.message, answered: true }
    },

    // ---------------------------------------------------------------- agents hosted here
    hostedAgents: async ({ query, caller }) => {
      // an agent's token sees only its own agent
      const visible = node.agents.list().filter(a => caller.kind !== 'agent' || a.principal === caller.agent)
      const { items, next } = pageOf(visible.sort(byText(a => a.principal)), a => a.principal, query.after, query.limit)
      return { agents: items.map(a => ({ ...a })), next }
    },
    attachAgent: async ({ body }) => {
      if (body.token === true && body.kind !== EXTERNAL_KIND)
        throw invalidField('body.token', `tokens are for agents of kind ${EXTERNAL_KIND}: a program acts as them`)
      const attached = await attachAgent(node, tokens, {
        kind: body.kind,
        id: body.id,
        mint: body.kind === EXTERNAL_KIND && body.token !== false
      })
      return { ...attached }
    },
    stopAgent: async ({ params }) => {
      const agent = params.id as PrincipalId
      await node.agents.stop(agent, { signal: AbortSignal.timeout(STOP_TIMEOUT) })
      tokens.revoke({ agent })
      return { agent, stopped: true }
    },

    // ---------------------------------------------------------------- tokens
    listTokens: async ({ query }) => {
      const live = tokens.list().filter(t => query.agent == null || t.agent === query.agent)
      const { items, next } = pageOf(live, t => t.id, query.after, query.limit)
      return { tokens: items, next }
    },
    mintToken: async ({ params }) => {
      const agent = params.id as PrincipalId
      requireExternal(node, agent)
      const { id, agent: holder, created, lastUsed, token } = tokens.mint(agent)
      return { id, agent: holder, created, lastUsed, token }
    },
    revokeToken: async ({ params }) => {
      const revoked = tokens.revoke({ id: params.tokenId })
      if (revoked.length === 0)
        throw new TokenNotFoundError(`no live token has id ${params.tokenId} (GET /api/tokens lists them)`)
      return { revoked }
    }
  }
}
