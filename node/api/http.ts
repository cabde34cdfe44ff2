/**
 * HTTP plumbing shared by the control API's routes: errors that carry a status, bounded JSON
 * bodies, typed fields.
 *
 * @example
 * const body = await readJson(req)
 * const name = stringField(body, 'name', 64) // HttpError 400 if missing or too long
 */
import type { Caller } from './agent-tokens.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** Where the control API's endpoints live. */
export const API_PREFIX = '/api/v0/'
export const MAX_BODY_BYTES = 64 * 1024

/**
 * A control-API endpoint: the JSON-able result of one request. `caller` is who sent it (the server
 * always says; a route called in-process without one acts for the operator).
 */
export type Route = (req: IncomingMessage, url: URL, caller?: Caller) => Promise<unknown>

export class HttpError extends Error {
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.status = status
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

export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
    throw new HttpError(415, 'expected content-type application/json')
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`)
    chunks.push(chunk as Buffer)
  }
  let body: unknown
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new HttpError(400, 'body is not JSON')
  }
  if (body == null || typeof body !== 'object' || Array.isArray(body))
    throw new HttpError(400, 'body must be a JSON object')
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
