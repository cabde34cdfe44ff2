/**
 * The handlers of the public HTTP API: one per route of ROUTES (src/api/routes.ts), each calling
 * the node's services directly — boards and the event journal (node.work), the agents it hosts
 * (node.agents), the registry, membership, documents (node.state), certificates (node.spki). The
 * router (node/api/v1/router.ts) checks the token against the route's `auth` and parses the
 * request with the route's schemas before a handler runs, and serializes what it answers; every
 * answer is the route's response schema.
 *
 * Who acts: an agent's token acts as its own agent (`as`, if given, must name it); the operator's
 * token acts as the hosted agent `as` names, required on acting routes (400 InvalidRequestError
 * naming the field). Who reads: an agent's token with its agent's rights, the operator as the node.
 * The handlers are split by subject: handlers-work.ts, handlers-events.ts, handlers-agents.ts,
 * handlers-node.ts; what they share is in handlers-common.ts, their errors in handlers-errors.ts.
 *
 * @example
 * const handlers = v1Handlers(node, { tokens: api.tokens })
 * await handlers.whoami({ caller: OPERATOR, … })   // { caller: 'operator', principal: 'z6Mk…', node: '12D3Koo…' }
 */
import { MAX_INBOX_WAITERS } from '../agent-routes.ts'
import { MAX_EVENT_WAITERS } from './handlers-events.ts'
import { waiterPlaces } from './handlers-common.ts'
import { agentHandlers } from './handlers-agents.ts'
import { eventHandlers } from './handlers-events.ts'
import { nodeHandlers } from './handlers-node.ts'
import { workHandlers } from './handlers-work.ts'
import type { AgentTokens } from '../agent-tokens.ts'
import type { ApiPlaces } from './handlers-common.ts'
import type { Handlers } from './handler.ts'
import type { EventHandlersOptions } from './handlers-events.ts'
import type { CyberspaceNode } from '../../../src/node.ts'

export interface V1HandlersOptions extends Omit<EventHandlersOptions, 'places'> {
  /** The agents' tokens the API accepts (the server's): minted, listed and revoked here. */
  tokens: AgentTokens
  /** The places of waiting requests, shared with the control API (the server's); apiPlaces() by default. */
  places?: ApiPlaces
}

/** One pool of places per kind of waiting request, for one API port (the server makes one and shares it). */
export function apiPlaces(): ApiPlaces {
  return {
    inbox: waiterPlaces(MAX_INBOX_WAITERS, 'inbox streams and long polls'),
    events: waiterPlaces(MAX_EVENT_WAITERS, 'event streams and long polls')
  }
}

export function v1Handlers(node: CyberspaceNode, options: V1HandlersOptions): Handlers {
  const places = options.places ?? apiPlaces()
  return {
    ...nodeHandlers(node),
    ...agentHandlers(node, options.tokens, places.inbox),
    ...workHandlers(node),
    ...eventHandlers(node, options.tokens, { ...options, places: places.events })
  }
}
