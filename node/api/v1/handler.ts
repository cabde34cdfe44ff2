/**
 * What a handler of the public API (src/api/routes.ts) receives and answers. The router has checked
 * the token against the route's `auth`, and parsed the path parameters, query and body with the
 * route's schemas, before a handler runs; a handler checks the agent it acts as (`actingAs`) and
 * answers the route's response, which the router serializes.
 *
 * A stream route (`stream: true`) writes its own response to `res` and resolves when it ends.
 *
 * @example
 * const handlers: Partial<Handlers> = {
 *   whoami: async ({ caller }) => ({ caller: caller.kind, … })
 * }
 */
import type * as z from 'zod'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Caller } from '../agent-tokens.ts'
import type { ROUTES, RouteName, RouteSpec } from '../../../src/api/routes.ts'

type Parsed<S> = S extends z.ZodType ? z.output<S> : undefined

export interface HandlerInput<R extends RouteSpec> {
  params: Parsed<R['params']>
  query: Parsed<R['query']>
  body: Parsed<R['body']>
  caller: Caller
  /** Aborted when the client goes away. */
  signal: AbortSignal
  req: IncomingMessage
  /** The response: written only by stream routes. */
  res: ServerResponse
}

export type Handler<R extends RouteSpec> = (
  input: HandlerInput<R>
) => Promise<R['stream'] extends true ? void : z.input<R['response']>>

export type Handlers = { [K in RouteName]: Handler<(typeof ROUTES)[K]> }

/**
 * Something else served on the API's port under a path prefix: the MCP endpoint (`/mcp`), the A2A
 * binding (`/a2a/…`, agent cards). The server checks the Host (and Origin) as for every request; for
 * `auth: 'agent'` it resolves the bearer token first (401 problem without a live one) and passes the
 * caller, for `public` it passes undefined. The mount writes the whole response itself.
 */
export interface Mount {
  /** e.g. '/mcp' (that path and below) */
  prefix: string
  auth: 'public' | 'agent'
  handle(req: IncomingMessage, res: ServerResponse, url: URL, caller: Caller | undefined): Promise<void>
  close?(): Promise<void>
}
