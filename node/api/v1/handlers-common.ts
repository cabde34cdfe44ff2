/**
 * What the public API's handlers share: who acts (the `as` of a request, checked against the
 * caller's token), who reads, DAG-JSON values named by their field, pages, and bounded places for
 * the requests that wait on their connection.
 *
 * @example
 * const { agent, signer } = acting(node, caller, body.as, 'body.as')   // 400 naming body.as for an operator without it
 * const reader = readerOf(caller)                                       // the agent, or undefined: the node's own view
 */
import { actingAs } from '../agent-tokens.ts'
import { HttpError } from '../http.ts'
import { dataValue } from '../state-routes.ts'
import { actorOf } from '../work-routes.ts'
import { invalidField, TooManyWaitersError } from './handlers-errors.ts'
import type { Caller } from '../agent-tokens.ts'
import type { PrincipalId } from '../../../src/crypto/principal.ts'
import type { Signer } from '../../../src/crypto/sign.ts'
import type { CyberspaceNode } from '../../../src/node.ts'

/** The agent a request acts as, and its key. */
export interface Acting {
  agent: PrincipalId
  signer: Signer
}

/**
 * The agent a request acts as: with an agent's token its own agent (`as`, if given, must name it:
 * 403 AgentTokenScopeError otherwise); with the operator's token the agent `as` names, which is
 * required (400 naming `field`). Either way an agent hosted on this node (404 AgentNotFoundHereError).
 */
export function acting(node: CyberspaceNode, caller: Caller, as: string | undefined, field: string): Acting {
  let agent: PrincipalId
  if (caller.kind === 'agent') {
    if (as != null) actingAs(caller, as as PrincipalId, 'act as')
    agent = caller.agent
  } else {
    if (as == null)
      throw invalidField(
        field,
        "the operator's token acts as an agent hosted on this node: name it (as: z6Mk…, see GET /api/node/agents)"
      )
    agent = as as PrincipalId
  }
  return { agent, signer: actorOf(node, agent) }
}

/** Who reads: an agent's token reads with its agent's rights; the operator reads as the node (everything it holds). */
export function readerOf(caller: Caller): PrincipalId | undefined {
  return caller.kind === 'agent' ? caller.agent : undefined
}

/** A DAG-JSON value as the data model stores it; 400 naming `field` when it is not DAG-JSON. */
export function dataOf(json: unknown, field: string): unknown {
  try {
    return dataValue(json)
  } catch (err) {
    throw invalidField(field, (err as Error).message)
  }
}

/**
 * Rethrows a v0 helper's unnamed 400 (an HttpError without a name of its own) as InvalidRequestError
 * naming `field`; anything else as it is.
 */
export function namedBadInput(err: unknown, field: string): never {
  if (err instanceof HttpError && err.status === 400 && err.name === 'Error') throw invalidField(field, err.message)
  throw err
}

/**
 * A page of `list` in the order of `key` (sorted here: the cursor is a key, so a page is right
 * whatever order the list came in), after the cursor `after`, at most `limit`; `next` the last
 * key, or null at the end.
 */
export function pageOf<T>(
  list: readonly T[],
  key: (item: T) => string,
  after: string | undefined,
  limit: number
): { items: T[]; next: string | null } {
  const rest = (after == null ? [...list] : list.filter(item => key(item) > after)).sort(byText(key))
  const items = rest.slice(0, limit)
  return { items, next: rest.length > limit ? key(items[items.length - 1]) : null }
}

/** Compares by `key`, as text (code units): the order cursors are compared in. */
export function byText<T>(key: (item: T) => string): (a: T, b: T) => number {
  return (a, b) => {
    const x = key(a)
    const y = key(b)
    return x < y ? -1 : x > y ? 1 : 0
  }
}

/** Bounded places for requests that hold their connection: `take` one (for `caller`), or be refused. */
export interface WaiterPlaces {
  /** A place for `caller`'s request, or TooManyWaitersError; returns the release (idempotent). */
  take: (caller?: Caller) => () => void
  /** Places held now. */
  open: () => number
}

/**
 * The API's places for waiting requests, one pool per kind, each shared by the control API (v0)
 * and the public API: `inbox` (long polls and streams of an external agent's inbox), `events`
 * (long polls and streams of the journal). So what waits on one port adds up to a known bound.
 */
export interface ApiPlaces {
  inbox: WaiterPlaces
  events: WaiterPlaces
}

/**
 * Places for requests that hold their connection (long polls, streams): at most `max` at once; an
 * agent's token at most `perAgent` of them, and agents together at most `max - reserved` (the rest
 * are the operator's). The next one refused with TooManyWaitersError naming `what`. `take`
 * returns the release (idempotent).
 */
export function waiterPlaces(
  max: number,
  what: string,
  options: { perAgent?: number; reserved?: number } = {}
): WaiterPlaces {
  const perAgent = options.perAgent ?? Math.max(1, Math.floor(max / 4))
  const reserved = options.reserved ?? Math.max(1, Math.floor(max / 8))
  let open = 0
  let byAgents = 0
  const held = new Map<string, number>()
  return {
    take: (caller?: Caller) => {
      const agent = caller?.kind === 'agent' ? caller.agent : undefined
      if (open >= max) throw new TooManyWaitersError(`${max} ${what} are open already: close one first`)
      if (agent != null) {
        if ((held.get(agent) ?? 0) >= perAgent)
          throw new TooManyWaitersError(`agent ${agent} holds ${perAgent} ${what} already: close one first`)
        if (byAgents >= max - reserved)
          throw new TooManyWaitersError(`${max - reserved} ${what} of agents are open already`)
        held.set(agent, (held.get(agent) ?? 0) + 1)
        byAgents++
      }
      open++
      let released = false
      return () => {
        if (released) return
        released = true
        open--
        if (agent != null) {
          byAgents--
          const n = (held.get(agent) ?? 1) - 1
          if (n <= 0) held.delete(agent)
          else held.set(agent, n)
        }
      }
    },
    open: () => open
  }
}
