/**
 * The public API's router: finds the route of ROUTES (src/api/routes.ts) a request names, checks
 * its token against the route's `auth`, parses its path parameters, query and body with the route's
 * schemas, calls the route's handler and answers what it returns as JSON.
 *
 * - Paths are matched segment by segment against a tree built once from the templates (a literal
 *   segment wins over a `{param}`); each segment is percent-decoded before it is compared or
 *   parsed, so `%3A` in `/api/tasks/release%3At1/claim` is the `:` of the task reference. An
 *   unknown path answers 404 RouteNotFoundError; a known path with another method 405
 *   MethodNotAllowedError with `Allow` listing the methods it has.
 * - The query: a key given twice is refused (400: which one would win is a guess, and a proxy may
 *   guess differently than the node), as is a key the route does not have (a misspelt `limt`).
 * - The body: JSON only (415 otherwise), at most MAX_BODY_BYTES (413), an object the route's schema
 *   takes; a request with no body is read as `{}`. A route without a body schema (GET, DELETE, a
 *   bare POST) refuses one. Every validation failure is 400 InvalidRequestError with `errors`
 *   naming each field: `body.title`, `query.limit`, `params.id`.
 * - `operator` routes refuse an agent's token (403 AgentTokenScopeError); `agent` routes take any
 *   live token, and the handler checks the agent it acts as.
 * - A stream route's handler writes its own answer to `res`; any other handler's answer is sent as
 *   `application/json` with `cache-control: no-store`.
 *
 * Errors are thrown, not answered: the server answers each as problem details (RFC 9457).
 *
 * @example
 * const router = v1Router({ handlers: v1Handlers(node, { tokens }), authenticate: req => callerOf(req) })
 * const match = router.match(req.method, url.pathname)   // throws 404 / 405
 * await router.dispatch(match, req, res, url)
 */
import * as z from 'zod'
import { ROUTES } from '../../../src/api/routes.ts'
import { requestSchemas } from '../../../src/api/openapi.ts'
import { operatorOnly } from '../agent-tokens.ts'
import {
  closedSignal,
  InvalidRequestError,
  MAX_BODY_BYTES,
  MethodNotAllowedError,
  readJsonValue,
  RouteNotFoundError,
  RouteNotImplementedError,
  send
} from '../http.ts'
import type { RequestSchemas } from '../../../src/api/openapi.ts'
import type { RouteSpec } from '../../../src/api/routes.ts'
import type { Caller } from '../agent-tokens.ts'
import type { FieldError } from '../http.ts'
import type { HandlerInput, Handlers } from './handler.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** Segments a path may have; the deepest template has 5, so a longer path is unknown at once. */
const MAX_SEGMENTS = 16
/** Query parameters a request may carry (more is refused before any is parsed). */
export const MAX_QUERY_PARAMS = 32
/** Field errors one answer lists at most. */
const MAX_FIELD_ERRORS = 32

export interface RouterInit {
  /** The route table; ROUTES by default. */
  routes?: Record<string, RouteSpec>
  /** One per route; a route without one answers 501 RouteNotImplementedError. */
  handlers: Partial<Handlers>
  /** Who sends the request; throws (401 ApiTokenError) unless it carries a live token. */
  authenticate(req: IncomingMessage): Caller
  /** Told when a stream route's answer starts (+1) and ends (-1): the open streams gauge. */
  onStream?(route: string, delta: 1 | -1): void
  /** Bytes a body may have; MAX_BODY_BYTES by default. */
  maxBodyBytes?: number
}

/** A request's route, found by method and path. */
export interface RouteMatch {
  name: string
  spec: RouteSpec
  /** The path parameters, percent-decoded (not yet checked). */
  params: Record<string, string>
  /** The route's schemas, compiled once. */
  schemas: RequestSchemas
}

export interface Router {
  /** The route `method` and the (still percent-encoded) `pathname` name; throws 404 or 405. */
  match(method: string, pathname: string): RouteMatch
  /** Authenticates, parses and answers a matched request. */
  dispatch(match: RouteMatch, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void>
}

interface Leaf {
  name: string
  spec: RouteSpec
  /** The name of each `{param}` segment, by position. */
  paramNames: Array<string | undefined>
  schemas: RequestSchemas
}

interface TreeNode {
  literal: Map<string, TreeNode>
  param?: TreeNode
  /** The routes ending here, by method. */
  methods: Map<string, Leaf>
}

const newNode = (): TreeNode => ({ literal: new Map(), methods: new Map() })

/** `/api/tasks/{id}/claim` → ['api', 'tasks', '{id}', 'claim']. */
function segmentsOf(path: string): string[] {
  return path.split('/').slice(1)
}

/** The routes whose template matches `segments`: literal segments first, then parameters. */
function collect(node: TreeNode, segments: string[], at: number, into: TreeNode[]): void {
  if (at === segments.length) {
    if (node.methods.size > 0) into.push(node)
    return
  }
  const next = node.literal.get(segments[at])
  if (next != null) collect(next, segments, at + 1, into)
  // a parameter is never empty: `/api/agents//tasks` names no agent
  if (node.param != null && segments[at] !== '') collect(node.param, segments, at + 1, into)
}

/** A ZodError's issues as the fields they name, under `where` (`body`, `query`, `params`). */
function fieldErrors(where: string, error: z.ZodError): FieldError[] {
  const fields: FieldError[] = []
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        fields.push({
          field: `${where}.${key}`,
          message: where === 'query' ? 'is not a parameter of this route' : 'is not a field of this route'
        })
    } else {
      const path = issue.path.map(String).join('.')
      fields.push({ field: path === '' ? where : `${where}.${path}`, message: issue.message })
    }
  }
  return fields.slice(0, MAX_FIELD_ERRORS)
}

/** One InvalidRequestError for every field that failed, its detail naming the first few. */
function invalid(fields: FieldError[]): InvalidRequestError {
  const named = fields
    .slice(0, 3)
    .map(f => `${f.field}: ${f.message}`)
    .join('; ')
  return new InvalidRequestError(
    `invalid request: ${named}${fields.length > 3 ? ` (and ${fields.length - 3} more)` : ''}`,
    fields
  )
}

/** Whether the request carries a body (a declared length above 0, or a chunked one). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length']
  if (length != null) return length !== '0'
  return req.headers['transfer-encoding'] != null
}

/** The query as an object, each key once. */
function queryOf(url: URL): Record<string, string> {
  const query: Record<string, string> = {}
  const repeated: FieldError[] = []
  let count = 0
  for (const [key, value] of url.searchParams) {
    if (++count > MAX_QUERY_PARAMS)
      throw invalid([{ field: 'query', message: `has more than ${MAX_QUERY_PARAMS} parameters` }])
    if (Object.hasOwn(query, key)) {
      if (!repeated.some(f => f.field === `query.${key}`))
        repeated.push({ field: `query.${key}`, message: 'is given more than once: give it once' })
      continue
    }
    query[key] = value
  }
  if (repeated.length > 0) throw invalid(repeated)
  return query
}

export function v1Router(init: RouterInit): Router {
  const routes = init.routes ?? ROUTES
  const maxBodyBytes = init.maxBodyBytes ?? MAX_BODY_BYTES
  const root = newNode()
  for (const [name, spec] of Object.entries(routes)) {
    if (spec.auth === 'public')
      // a handler's caller is an operator or an agent: a public route needs an anonymous caller first
      throw new Error(`route ${name}: public routes are not served by the router yet`)
    let node = root
    const paramNames: Array<string | undefined> = []
    for (const segment of segmentsOf(spec.path)) {
      const param = /^\{([A-Za-z][A-Za-z0-9]*)\}$/.exec(segment)
      if (param != null) {
        node = node.param ??= newNode()
        paramNames.push(param[1])
      } else {
        let next = node.literal.get(segment)
        if (next == null) node.literal.set(segment, (next = newNode()))
        node = next
        paramNames.push(undefined)
      }
    }
    if (node.methods.has(spec.method)) throw new Error(`${spec.method} ${spec.path} is declared twice (${name})`)
    node.methods.set(spec.method, { name, spec, paramNames, schemas: requestSchemas(spec) })
  }

  function match(method: string, pathname: string): RouteMatch {
    const raw = segmentsOf(pathname)
    const unknown = (): RouteNotFoundError =>
      new RouteNotFoundError(`no such route: ${pathname.slice(0, 200)} (see GET /api/openapi.json)`)
    if (raw.length > MAX_SEGMENTS) throw unknown()
    let segments: string[]
    try {
      segments = raw.map(s => decodeURIComponent(s))
    } catch {
      throw invalid([{ field: 'path', message: 'is not valid percent-encoding' }])
    }
    const found: TreeNode[] = []
    collect(root, segments, 0, found)
    if (found.length === 0) throw unknown()
    for (const node of found) {
      const leaf = node.methods.get(method)
      if (leaf == null) continue
      const params: Record<string, string> = {}
      leaf.paramNames.forEach((name, i) => {
        if (name != null) params[name] = segments[i]
      })
      return { name: leaf.name, spec: leaf.spec, params, schemas: leaf.schemas }
    }
    const allow = [...new Set(found.flatMap(node => [...node.methods.keys()]))].sort()
    throw new MethodNotAllowedError(
      `${method} is not a method of ${pathname.slice(0, 200)}: use ${allow.join(' or ')}`,
      allow
    )
  }

  async function dispatch(found: RouteMatch, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const { name, spec, schemas } = found
    const caller = init.authenticate(req)
    if (spec.auth === 'operator') operatorOnly(caller, `${spec.method} ${spec.path}`)
    const handler = init.handlers[name as keyof Handlers] as
      ((input: HandlerInput<RouteSpec>) => Promise<unknown>) | undefined
    if (handler == null) throw new RouteNotImplementedError(`${spec.method} ${spec.path} is not served by this node`)

    const fields: FieldError[] = []
    const params = schemas.params.safeParse(found.params)
    if (!params.success) fields.push(...fieldErrors('params', params.error))
    const query = schemas.query.safeParse(queryOf(url))
    if (!query.success) fields.push(...fieldErrors('query', query.error))
    let body: unknown
    if (schemas.body == null) {
      if (hasBody(req)) fields.push({ field: 'body', message: `${spec.method} ${spec.path} takes no body` })
    } else if (fields.length === 0) {
      // the body is read only for a request whose path and query are good
      const raw = hasBody(req) ? await readJsonValue(req, maxBodyBytes) : {}
      const parsed = schemas.body.safeParse(raw)
      if (parsed.success) body = parsed.data
      else fields.push(...fieldErrors('body', parsed.error))
    }
    if (fields.length > 0) throw invalid(fields)

    const input = {
      params: params.data,
      query: query.data,
      body,
      caller,
      signal: closedSignal(res),
      req,
      res
    } as HandlerInput<RouteSpec>
    if (spec.stream === true) {
      init.onStream?.(name, 1)
      try {
        await handler(input)
      } finally {
        init.onStream?.(name, -1)
      }
      if (!res.writableEnded) res.end()
      return
    }
    const answer = await handler(input)
    send(res, 200, 'application/json', JSON.stringify(answer ?? null))
  }

  return { match, dispatch }
}
