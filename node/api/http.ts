/**
 * HTTP plumbing shared by the node's API (the public routes under /api/ and the CLI's control API
 * under /api/v0/): errors that carry a status, RFC 9457 problem details for every error the port
 * answers, bounded JSON bodies, typed fields.
 *
 * @example
 * const body = await readJson(req)
 * const name = stringField(body, 'name', 64) // HttpError 400 if missing or too long
 * sendProblem(res, problemOf(err, 404, { instance: url.pathname }))
 */
import { depthOver, MAX_JSON_DEPTH } from '../../src/api/depth.ts'
import { STATUS_CODES } from 'node:http'
import { isIP } from 'node:net'
import { ApiBindError } from '../errors.ts'
import type { Caller } from './agent-tokens.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** Where the control API's endpoints live. */
export const API_PREFIX = '/api/v0/'
export const MAX_BODY_BYTES = 64 * 1024
/** Levels a request body may nest: the deepest value a route carries (MAX_JSON_DEPTH) and its envelope. */
export const MAX_BODY_DEPTH = MAX_JSON_DEPTH + 16
/** The content type of every error the API answers (RFC 9457). */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

/**
 * A control-API endpoint: the JSON-able result of one request. `caller` is who sent it (the server
 * always says; a route called in-process without one acts for the operator).
 */
export type Route = (req: IncomingMessage, url: URL, caller?: Caller) => Promise<unknown>

/** An error answered with `status`; `headers` go with the answer (e.g. `allow` on a 405). */
export class HttpError extends Error {
  readonly status: number
  readonly headers: Record<string, string>
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message)
    this.status = status
    this.headers = headers
  }
}

/** One field of a request that failed validation: `body.title`, `query.limit`, `params.id`. */
export interface FieldError {
  field: string
  message: string
}

/** The request is malformed: its JSON, or fields its route's schema refuses (each named in `errors`). */
export class InvalidRequestError extends HttpError {
  static name = 'InvalidRequestError'
  name = 'InvalidRequestError'
  readonly errors: FieldError[]
  constructor(message: string, errors: FieldError[] = []) {
    super(400, message)
    this.errors = errors
  }
}

/** No route has this path. */
export class RouteNotFoundError extends HttpError {
  static name = 'RouteNotFoundError'
  name = 'RouteNotFoundError'
  constructor(message: string) {
    super(404, message)
  }
}

/** A route has this path, but not for this method: `allow` lists the methods it has. */
export class MethodNotAllowedError extends HttpError {
  static name = 'MethodNotAllowedError'
  name = 'MethodNotAllowedError'
  constructor(message: string, allow: string[]) {
    super(405, message, { allow: allow.join(', ') })
  }
}

/** A body that is not `application/json`. */
export class UnsupportedMediaTypeError extends HttpError {
  static name = 'UnsupportedMediaTypeError'
  name = 'UnsupportedMediaTypeError'
  constructor(message: string) {
    super(415, message)
  }
}

/** A body larger than the API takes (MAX_BODY_BYTES). */
export class BodyTooLargeError extends HttpError {
  static name = 'BodyTooLargeError'
  name = 'BodyTooLargeError'
  constructor(message: string) {
    super(413, message)
  }
}

/** A request under a name or from a page the API does not serve (DNS rebinding, cross-site). */
export class ForbiddenHostError extends HttpError {
  static name = 'ForbiddenHostError'
  name = 'ForbiddenHostError'
  constructor(message: string) {
    super(403, message)
  }
}

/** A route of the table that this node has no handler for (yet). */
export class RouteNotImplementedError extends HttpError {
  static name = 'RouteNotImplementedError'
  name = 'RouteNotImplementedError'
  constructor(message: string) {
    super(501, message)
  }
}

export function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'content-length': Buffer.byteLength(body)
  })
  res.end(body)
}

/**
 * The request's body, at most `limit` bytes: 413 BodyTooLargeError naming `what` past it, from its
 * declared length or once that many bytes came (it stops reading there).
 */
export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES, what = 'body'): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > limit) throw new BodyTooLargeError(`${what} larger than ${limit} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > limit) throw new BodyTooLargeError(`${what} larger than ${limit} bytes`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

/**
 * The request's body as JSON, at most `limit` bytes: 415 unless it says `application/json`, 413
 * past the limit (it stops reading there), 400 InvalidRequestError unless it parses.
 */
export async function readJsonValue(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<unknown> {
  if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
    throw new UnsupportedMediaTypeError('expected content-type application/json')
  }
  const body = await readBody(req, limit, 'body')
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8'))
  } catch {
    throw new InvalidRequestError('body is not JSON', [{ field: 'body', message: 'is not JSON' }])
  }
  // what reads it next (schemas, DAG-JSON, codecs) recurses: a value nested thousands deep stops here
  if (depthOver(value, MAX_BODY_DEPTH))
    throw new InvalidRequestError(`body nests deeper than ${MAX_BODY_DEPTH} levels`, [
      { field: 'body', message: `nests deeper than ${MAX_BODY_DEPTH} levels` }
    ])
  return value
}

export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const body = await readJsonValue(req)
  if (body == null || typeof body !== 'object' || Array.isArray(body))
    throw new InvalidRequestError('body must be a JSON object', [{ field: 'body', message: 'must be a JSON object' }])
  return body as Record<string, unknown>
}

export function stringField(body: Record<string, unknown>, field: string, max: number): string {
  const value = body[field]
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new HttpError(400, `${field} must be a string of 1-${max} characters`)
  }
  return value
}

/** An optional string field: undefined when absent, else as stringField. */
export function optionalString(body: Record<string, unknown>, field: string, max: number): string | undefined {
  return body[field] === undefined ? undefined : stringField(body, field, max)
}

export function booleanField(body: Record<string, unknown>, field: string): boolean {
  const value = body[field] ?? false
  if (typeof value !== 'boolean') throw new HttpError(400, `${field} must be true or false`)
  return value
}

/**
 * Starts a stream of server-sent events on `res`: 200 with `text/event-stream`, never cached, and
 * `x-accel-buffering: no` so a proxy in front (nginx) passes each event on as it is written.
 */
export function startEventStream(res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-accel-buffering': 'no'
  })
}

/** Aborted when the client goes away (or the response is done): what a stream or long poll waits on. */
export function closedSignal(res: ServerResponse): AbortSignal {
  const controller = new AbortController()
  res.once('close', () => {
    controller.abort(new Error('the client went away'))
  })
  return controller.signal
}

/** Resolves once `res` can take more, or the client went away. */
export async function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  if (!res.writableNeedDrain || signal.aborted) return
  await new Promise<void>(resolve => {
    const done = (): void => {
      res.off('drain', done)
      signal.removeEventListener('abort', done)
      resolve()
    }
    res.once('drain', done)
    signal.addEventListener('abort', done, { once: true })
  })
}

// ------------------------------------------------------------------ where the API listens

/** Whether `host` is a loopback address (or localhost). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'))
}

/**
 * Refuses (ApiBindError) an address the API may not listen on as asked: not an IP (or localhost),
 * or off loopback with neither TLS nor `insecure`. The message names both fixes.
 */
export function checkApiBind(options: { host?: string; tls?: unknown; insecure?: boolean; publicHost?: string }): void {
  const host = options.host ?? '127.0.0.1'
  if (host !== 'localhost' && isIP(host) === 0)
    throw new ApiBindError(
      `--api-host ${host} is not an IP address: give the address to listen on (0.0.0.0 for all), and the name clients use as --api-public-host`
    )
  if (
    options.publicHost != null &&
    !/^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*|\[[0-9A-Fa-f:.]+\])$/.test(options.publicHost)
  )
    throw new ApiBindError(`--api-public-host ${options.publicHost} is not a host name`)
  if (!isLoopback(host) && options.tls == null && options.insecure !== true)
    throw new ApiBindError(
      `the API would listen on ${host} off loopback in plain HTTP, where tokens cross the network in clear: pass --api-tls-cert <pem> --api-tls-key <pem> to answer https, or --api-insecure to accept plain HTTP`
    )
}

// ------------------------------------------------------------------ problem details (RFC 9457)

/** An error as RFC 9457 problem details, with the node's structured fields as extension members. */
export interface ProblemDetails {
  /** `urn:cyberspace:error:<name>` for a named error, `about:blank` for one that only has a status. */
  type: string
  title: string
  status: number
  detail: string
  /** The node's error name (what the SDKs raise); `Error` when it has none. */
  name: string
  instance?: string
  errors?: FieldError[]
  [extension: string]: unknown
}

/** Titles that read better than the name split into words. */
const TITLES: Record<string, string> = {
  ApiTokenError: 'Missing, wrong or revoked token',
  AgentTokenScopeError: 'Beyond what this token may do',
  InvalidRequestError: 'Invalid request',
  RouteNotFoundError: 'No such route',
  MethodNotAllowedError: 'Method not allowed',
  ForbiddenHostError: 'Forbidden host or origin'
}

/** `ItemNotFoundError` → `Item not found`. */
function titleOf(name: string): string {
  const words = name
    .replace(/Error$/, '')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .split(' ')
  return words.map((w, i) => (i === 0 || /^[A-Z0-9]{2,}$/.test(w) ? w : w.toLowerCase())).join(' ')
}

/**
 * Structured fields of an error that clients may act on: the members that refused, a remote error's
 * name, the HLC to resume events from (`hlc` of a cursor from another run, `oldest` kept), a work
 * refusal's `reason` (`already-claimed`, `not-ready`…, as the board's refused events name it) and,
 * for a claim refused, the `holder` of the item.
 */
const ERROR_FIELDS = [
  'members',
  'reasons',
  'remoteName',
  'culprit',
  'certHash',
  'hlc',
  'oldest',
  'reason',
  'holder'
] as const

/** An error's structured fields, as JSON: nested errors become `{ name, message }`, maps objects. */
export function errorFields(err: unknown): Record<string, unknown> {
  const fields: Record<string, unknown> = {}
  if (err == null || typeof err !== 'object') return fields
  for (const field of ERROR_FIELDS) {
    const value = (err as Record<string, unknown>)[field]
    if (value !== undefined) fields[field] = jsonSafe(value, 0)
  }
  return fields
}

function jsonSafe(value: unknown, depth: number): unknown {
  if (depth > 4) return null
  if (value == null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    return value
  if (value instanceof Error) return { name: value.name, message: value.message }
  if (value instanceof Map)
    return Object.fromEntries([...value].slice(0, 256).map(([k, v]) => [String(k), jsonSafe(v, depth + 1)]))
  if (Array.isArray(value)) return value.slice(0, 256).map(v => jsonSafe(v, depth + 1))
  if (typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value)
        .slice(0, 64)
        .map(([k, v]) => [k, jsonSafe(v, depth + 1)])
    )
  return String(value)
}

/**
 * `err` as problem details answered with `status`. A named error (any name but `Error`) gets the
 * type `urn:cyberspace:error:<name>`; an error that only carries a status gets `about:blank` and the
 * status's phrase as its title, as RFC 9457 §4.2.1 says. `legacy` adds `error` (the detail again),
 * which the control API's clients before problem details read.
 */
export function problemOf(
  err: unknown,
  status: number,
  options: { instance?: string; legacy?: boolean } = {}
): ProblemDetails {
  const e = err instanceof Error ? err : new Error(String(err))
  const named = /^[A-Za-z][A-Za-z0-9]{0,63}$/.test(e.name) && e.name !== 'Error'
  const name = named ? e.name : 'Error'
  const detail = e.message === '' ? (STATUS_CODES[status] ?? 'Error') : e.message
  const problem: ProblemDetails = {
    ...errorFields(e),
    type: named ? `urn:cyberspace:error:${name}` : 'about:blank',
    title: named ? (TITLES[name] ?? titleOf(name)) : (STATUS_CODES[status] ?? 'Error'),
    status,
    detail,
    name
  }
  if (options.instance != null) problem.instance = options.instance
  if (e instanceof InvalidRequestError && e.errors.length > 0) problem.errors = e.errors
  if (options.legacy === true) problem.error = detail
  return problem
}

/** Answers `problem` as `application/problem+json`, with `headers` (e.g. `allow`). */
export function sendProblem(res: ServerResponse, problem: ProblemDetails, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(problem)
  res.writeHead(problem.status, {
    ...headers,
    'content-type': PROBLEM_CONTENT_TYPE,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'content-length': Buffer.byteLength(body)
  })
  res.end(body)
}

/** The request's bearer token, or '' (the scheme's name in any case, RFC 7235 §2.1: `bearer` is Bearer). */
export function bearerToken(req: IncomingMessage): string {
  return /^bearer +(.*)$/i.exec(req.headers.authorization ?? '')?.[1] ?? ''
}
