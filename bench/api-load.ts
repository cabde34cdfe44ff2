/**
 * The client loop of the API benchmark (bench/api.bench.ts): one keep-alive `node:http` agent per
 * target, requests one after another (latency) or N in flight (throughput and latency under load),
 * and a server-sent-event reader that stamps each event as it arrives. The floor and the node are
 * measured with these same functions.
 *
 * @example
 * const target = new HttpTarget('http://127.0.0.1:4100', token)
 * const ms = await sequential(1000, async () => { await target.json('GET', '/api/whoami') })
 * const load = await inFlight(16, 2000, async () => { await target.json('GET', '/api/whoami') })
 */
import { Agent, request } from 'node:http'
import type { IncomingMessage } from 'node:http'

/** Longest one request may take before the benchmark fails, ms. */
const REQUEST_TIMEOUT_MS = 30_000

export class HttpStatusError extends Error {
  static name = 'HttpStatusError'
  name = 'HttpStatusError'
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.status = status
  }
}

/** A server measured through one keep-alive agent, with a bearer token if it wants one. */
export class HttpTarget {
  readonly url: URL
  readonly agent: Agent
  private readonly headers: Record<string, string>

  constructor(url: string, token?: string, sockets = 64) {
    this.url = new URL(url)
    this.agent = new Agent({ keepAlive: true, maxSockets: sockets })
    this.headers = token != null ? { authorization: `Bearer ${token}` } : {}
  }

  /** Sends a request and answers the parsed JSON body; a status other than 2xx throws HttpStatusError. */
  async json<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const text = body === undefined ? undefined : JSON.stringify(body)
    const res = await this.send(method, path, text)
    const answer = await readText(res)
    const status = res.statusCode ?? 0
    if (status < 200 || status > 299)
      throw new HttpStatusError(status, `${method} ${path} answered ${status}: ${answer}`)
    return JSON.parse(answer) as T
  }

  /** Opens a request and answers the response as it starts (for streams). */
  async send(
    method: string,
    path: string,
    body?: string,
    headers: Record<string, string> = {}
  ): Promise<IncomingMessage> {
    return await new Promise((resolve, reject) => {
      const req = request(
        new URL(path, this.url),
        {
          method,
          agent: this.agent,
          headers: {
            ...this.headers,
            ...headers,
            ...(body != null ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {})
          },
          timeout: REQUEST_TIMEOUT_MS
        },
        resolve
      )
      req.once('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in ${REQUEST_TIMEOUT_MS} ms`)))
      req.once('error', reject)
      req.end(body)
    })
  }

  close(): void {
    this.agent.destroy()
  }
}

async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}

/** Runs `fn` `count` times one after another; answers each call's latency in ms, sorted. */
export async function sequential(count: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const ms: number[] = []
  for (let i = 0; i < count; i++) {
    const t0 = performance.now()
    await fn(i)
    ms.push(performance.now() - t0)
  }
  return ms.sort((a, b) => a - b)
}

export interface LoadResult {
  /** Each call's latency, ms, sorted. */
  ms: number[]
  /** Calls per second over the whole run. */
  perS: number
}

/** Runs `fn` `count` times, `n` at a time; answers the latencies and the calls per second. */
export async function inFlight(n: number, count: number, fn: (i: number) => Promise<unknown>): Promise<LoadResult> {
  const ms: number[] = []
  let next = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: Math.min(n, count) }, async () => {
      while (next < count) {
        const i = next++
        const start = performance.now()
        await fn(i)
        ms.push(performance.now() - start)
      }
    })
  )
  const seconds = (performance.now() - t0) / 1000
  return { ms: ms.sort((a, b) => a - b), perS: count / seconds }
}

export interface SseEvent {
  id?: string
  event: string
  data: string
  /** performance.now() when the event's last line arrived. */
  at: number
}

/** Largest event the reader holds, characters: past it the stream is broken off. */
const MAX_EVENT_CHARS = 1024 * 1024

/**
 * Reads server-sent events from `res` and hands each to `onEvent` as it arrives (comments skipped),
 * until the stream ends or `close()`. `done` resolves when it has ended.
 */
export function readSse(
  res: IncomingMessage,
  onEvent: (e: SseEvent) => void
): { done: Promise<void>; close: () => void } {
  let buffer = ''
  let fields: { id?: string; event?: string; data: string[] } = { data: [] }
  const line = (text: string, at: number): void => {
    if (text === '') {
      if (fields.data.length > 0)
        onEvent({ id: fields.id, event: fields.event ?? 'message', data: fields.data.join('\n'), at })
      fields = { data: [] }
      return
    }
    if (text.startsWith(':')) return
    const colon = text.indexOf(':')
    const name = colon < 0 ? text : text.slice(0, colon)
    const value = colon < 0 ? '' : text.slice(colon + 1).replace(/^ /, '')
    if (name === 'data') fields.data.push(value)
    else if (name === 'id') fields.id = value
    else if (name === 'event') fields.event = value
  }
  res.setEncoding('utf8')
  res.on('data', (chunk: string) => {
    const at = performance.now()
    buffer += chunk
    if (buffer.length > MAX_EVENT_CHARS) {
      res.destroy(new Error(`an event of more than ${MAX_EVENT_CHARS} characters`))
      return
    }
    let start = 0
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer.charCodeAt(i)
      if (c !== 10 && c !== 13) continue
      // a CR at the end of the chunk may be the first half of CRLF: wait for the next chunk
      if (c === 13 && i === buffer.length - 1) break
      line(buffer.slice(start, i), at)
      if (c === 13 && buffer.charCodeAt(i + 1) === 10) i++
      start = i + 1
    }
    buffer = buffer.slice(start)
  })
  const done = new Promise<void>(resolve => {
    res.once('close', resolve)
    res.once('error', () => resolve())
  })
  return { done, close: () => res.destroy() }
}
