/**
 * The TypeScript SDK of a node's public HTTP API (`cyberspace/client`): fetch-based, so it runs in
 * Node and in browsers, and typed from the route table the server dispatches by (src/api/routes.ts)
 * — a route's parameters, query, body and answer are the `z.input`/`z.output` of its schemas, never
 * written twice. One method per route, a generic `call`, `all` to walk a paged list, and the event
 * stream as an async iterator that resumes after a dropped connection.
 *
 * Errors: an answer that is not 2xx throws ApiProblemError (its `name` is the node's error name:
 * switch on it); no answer throws ApiNetworkError or ApiTimeoutError naming the URL. Redirects are
 * not followed (the API never redirects; one would carry a request's body elsewhere): a 3xx throws
 * InvalidResponseError.
 *
 * Answers are not checked against their schemas unless `validate: true`: the node's own tests check
 * every answer against its schema, a check per answer costs the client a schema walk of every item,
 * and a strict check would turn a newer node's added field or status into an error here. Turn it on
 * to guard against a node you do not trust to keep the contract.
 *
 * Runs in browsers (no node: imports).
 *
 * @example
 * const client = new Client({ url: 'http://127.0.0.1:4100', token })
 * const { tasks } = await client.agentTasks(agentId, { status: 'working' })
 * await client.completeTask('release:t1', { result: { ok: true } })
 * for await (const event of client.subscribe({ since: '1763700000000.0' })) console.log(event.type, event.subject)
 */
import { ROUTES } from './routes.ts'
import { SseParser } from './sse.ts'
import type { RouteName } from './routes.ts'
import type { SseEvent } from './sse.ts'
import type * as z from 'zod'

// ------------------------------------------------------------------ types, from the route table

type Routes = typeof ROUTES
type Spec<N extends RouteName> = Routes[N]
type Simplify<T> = { [K in keyof T]: T[K] } & {}
/** The schema a route declares for `key` (params, query, body), or undefined. */
type SchemaOf<S, K extends string> = K extends keyof S ? NonNullable<S[K]> : undefined
type OptionalKeys<T> = { [K in keyof T]-?: undefined extends T[K] ? K : never }[keyof T]

/** Every route that answers JSON (all but the event stream). */
export type JsonRouteName = { [N in RouteName]: Spec<N> extends { stream: true } ? never : N }[RouteName]

/** A route's path parameters, as the caller gives them. */
export type RouteParams<N extends RouteName> =
  SchemaOf<Spec<N>, 'params'> extends infer P extends z.ZodType ? z.input<P> : undefined

/**
 * A route's query, as the caller gives it: the values as parsed (numbers, booleans — sent as
 * text), required where the schema has no default.
 */
export type RouteQuery<N extends RouteName> =
  SchemaOf<Spec<N>, 'query'> extends infer Q extends z.ZodType ? QueryOf<z.input<Q>, z.output<Q>> : undefined
type QueryOf<I, O> = Simplify<
  { [K in Exclude<keyof I, OptionalKeys<I>>]: Exclude<O[K & keyof O], undefined> } & {
    [K in OptionalKeys<I>]?: Exclude<O[K & keyof O], undefined>
  }
>

/** A route's JSON body, as the caller gives it. */
export type RouteBody<N extends RouteName> =
  SchemaOf<Spec<N>, 'body'> extends infer B extends z.ZodType ? z.input<B> : undefined

/** A route's answer (for the event stream: one event). */
export type RouteResponse<N extends RouteName> = z.output<Spec<N>['response']>

/** One event of the journal, as `events()` pages and `subscribe()` yields them. */
export type ApiEvent = RouteResponse<'eventStream'>

type Slot<K extends string, T> = [T] extends [undefined]
  ? { [P in K]?: undefined }
  : {} extends T
    ? { [P in K]?: T }
    : { [P in K]: T }

export interface RequestOptions {
  signal?: AbortSignal
  /** Overrides the client's timeout for this request, in ms. */
  timeout?: number
}

/** What `call` takes for route N: its params, query and body where it has them, and request options. */
export type CallInput<N extends RouteName> = Simplify<
  Slot<'params', RouteParams<N>> & Slot<'query', RouteQuery<N>> & Slot<'body', RouteBody<N>> & RequestOptions
>
type CallArgs<N extends RouteName> = {} extends CallInput<N> ? [input?: CallInput<N>] : [input: CallInput<N>]

/** Routes that answer a page (`next` is the cursor of the next one). */
export type PagedRouteName = {
  [N in JsonRouteName]: 'next' extends keyof RouteResponse<N>
    ? 'after' extends keyof RouteQuery<N>
      ? N
      : never
    : never
}[JsonRouteName]
type ItemOf<O> = { [K in keyof O]: K extends 'next' ? never : O[K] extends ReadonlyArray<infer T> ? T : never }[keyof O]
/** What `all(name)` yields: the items of one page's list. */
export type PageItem<N extends PagedRouteName> = [ItemOf<RouteResponse<N>>] extends [never]
  ? unknown
  : ItemOf<RouteResponse<N>>

// ------------------------------------------------------------------ errors

/** The `errors` of a validation problem: each bad field (`body.title`, `query.limit`) and what is wrong. */
export interface ProblemFieldError {
  field: string
  message: string
}

/**
 * The node answered with an error: an RFC 9457 problem. `name` is the node's error name
 * (`InvalidRequestError`, `EventCursorExpiredError`, `WorkUnauthorizedError`…): switch on it.
 */
export class ApiProblemError extends Error {
  static name = 'ApiProblemError'
  readonly status: number
  readonly type: string
  readonly title: string
  readonly detail: string
  readonly errors: ProblemFieldError[] | undefined
  /** The whole problem body, extension members included. */
  readonly problem: Record<string, unknown>

  constructor(status: number, problem: Record<string, unknown>) {
    const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)
    const title = text(problem.title) ?? `HTTP ${status}`
    const detail = text(problem.detail) ?? title
    super(detail)
    this.name = text(problem.name) ?? 'ApiProblemError'
    this.status = status
    this.type = text(problem.type) ?? 'about:blank'
    this.title = title
    this.detail = detail
    this.errors = Array.isArray(problem.errors) ? (problem.errors as ProblemFieldError[]) : undefined
    this.problem = problem
  }
}

/** The node did not answer: refused, reset, a DNS failure… `url` is where the client sent it. */
export class ApiNetworkError extends Error {
  static name = 'ApiNetworkError'
  name = 'ApiNetworkError'
  readonly url: string

  constructor(url: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.url = url
  }
}

/** The node did not answer within the timeout (or an event stream went silent past its idle timeout). */
export class ApiTimeoutError extends Error {
  static name = 'ApiTimeoutError'
  name = 'ApiTimeoutError'
  readonly url: string

  constructor(url: string, message: string) {
    super(message)
    this.url = url
  }
}

/** The node's answer is not what the route says: not JSON, or (with `validate`) not its schema. */
export class InvalidResponseError extends Error {
  static name = 'InvalidResponseError'
  name = 'InvalidResponseError'
  readonly url: string

  constructor(url: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.url = url
  }
}

/** An answer is larger than the client takes (`maxResponseBytes`). */
export class ResponseTooLargeError extends Error {
  static name = 'ResponseTooLargeError'
  name = 'ResponseTooLargeError'
}

/** The client was used wrongly: an unknown route, a path parameter missing or unsafe, an option out of range. */
export class InvalidCallError extends Error {
  static name = 'InvalidCallError'
  name = 'InvalidCallError'
}

/**
 * The event stream ended because this reader fell behind: the node held `missed` events for it
 * past its bound. Nothing is lost from the journal: subscribe again with `after: resume` to read
 * them (or, if they are gone by then, get EventsTruncatedError and go on `since` an HLC).
 */
export class EventsMissedError extends Error {
  static name = 'EventsMissedError'
  name = 'EventsMissedError'
  readonly missed: number
  /**
   * The cursor to resume from; undefined when the stream had passed no cursor yet (it started
   * `since` an HLC, or at the oldest event kept): subscribe again as it started.
   */
  readonly resume: string | undefined

  constructor(missed: number, resume: string | undefined) {
    super(
      `the event stream ended: this reader fell ${missed} events behind; subscribe again ${resume == null ? 'as before' : 'with after: the resume cursor'}`
    )
    this.missed = missed
    this.resume = resume
  }
}

/** The event stream dropped and did not come back within the retries; `cause` is the last failure. */
export class EventStreamLostError extends Error {
  static name = 'EventStreamLostError'
  name = 'EventStreamLostError'
  readonly url: string
  /** The cursor of the last event read (resume from it with `after`), if any. */
  readonly resume: string | undefined

  constructor(url: string, attempts: number, resume: string | undefined, cause: unknown) {
    super(
      `the event stream from ${url} is lost: ${attempts} reconnections in a row failed (${(cause as Error)?.message ?? String(cause)})`,
      { cause }
    )
    this.url = url
    this.resume = resume
  }
}

// ------------------------------------------------------------------ the client

export interface ClientInit {
  /** The node's API, e.g. `http://127.0.0.1:4100` (a path prefix is kept). */
  url: string
  /** An agent's token or the operator's; left out for public routes only. */
  token?: string
  /** The fetch to use (default: the global one). */
  fetch?: typeof globalThis.fetch
  /** How long a request may take, in ms (default 30 s; a long poll adds its `wait`). */
  timeout?: number
  /** Check every answer against its route's schema (default false: see the module comment). */
  validate?: boolean
  /** The largest answer taken, in bytes (default 32 MiB). */
  maxResponseBytes?: number
}

export interface SubscribeOptions {
  /** Start after this HLC (`wall.logical`); left out with `after` too: from the oldest event kept. */
  since?: string
  /** Start after this cursor (an event's `cursor`, a page's `cursor`); wins over `since`. */
  after?: string
  signal?: AbortSignal
  /** Reconnections in a row that deliver nothing before the stream is given up (default 5). */
  retries?: number
  /** The first wait before reconnecting, in ms, doubled each failure up to 30 s (default 1 s; the node's `retry:` wins, at least 100 ms). */
  retryDelay?: number
  /** No byte for this long means the connection is dead: reconnect (default 60 s; the node sends a comment every 15 s). */
  idleTimeout?: number
  /** The longest event taken, in characters (default 1 MiB). */
  maxEventLength?: number
  /**
   * When the node ends the stream because this reader fell behind (`event: missed`), reconnect
   * from where it stopped, so nothing is lost (default true, as the Python SDK); false throws
   * EventsMissedError instead, for a reader that would rather know.
   */
  resumeMissed?: boolean
}

export const DEFAULT_TIMEOUT = 30_000
export const DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
export const DEFAULT_RETRIES = 5
export const DEFAULT_RETRY_DELAY = 1000
export const DEFAULT_IDLE_TIMEOUT = 60_000
/** The longest wait between reconnections. */
export const MAX_RETRY_DELAY = 30_000
/** The shortest wait a node's `retry:` sets: `retry: 0` does not make the client reconnect in a hot loop. */
export const MIN_SERVER_RETRY_DELAY = 100

/** Statuses worth retrying a stream for: too many streams open, the node (or a proxy) busy. */
const RETRYABLE = new Set([429, 502, 503, 504])

export class Client {
  readonly url: string
  readonly #token: string | undefined
  readonly #fetch: typeof globalThis.fetch
  readonly #timeout: number
  readonly #validate: boolean
  readonly #maxBytes: number

  constructor(init: ClientInit) {
    let base: URL
    try {
      base = new URL(init.url)
    } catch {
      throw new InvalidCallError(`url must be an absolute http(s) URL, not ${JSON.stringify(init.url)}`)
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new InvalidCallError(`url must be http: or https:, not ${base.protocol}`)
    }
    this.url = base.href.replace(/\/+$/, '')
    this.#token = init.token
    const f = init.fetch
    this.#fetch = f ?? (async (input, req) => await globalThis.fetch(input, req))
    this.#timeout = positive(init.timeout ?? DEFAULT_TIMEOUT, 'timeout')
    this.#validate = init.validate ?? false
    this.#maxBytes = positive(init.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES, 'maxResponseBytes')
  }

  /**
   * Calls route `name` with its params, query and body; answers its parsed JSON.
   *
   * @example
   * const item = await client.call('getWorknode', { params: { id: 'release:t1' } })
   */
  async call<N extends JsonRouteName>(name: N, ...[input]: CallArgs<N>): Promise<RouteResponse<N>> {
    const spec = ROUTES[name] as Spec<RouteName> | undefined
    if (spec == null || !Object.hasOwn(ROUTES, name)) throw new InvalidCallError(`no route named ${String(name)}`)
    if ('stream' in spec) throw new InvalidCallError(`${name} is a stream: use subscribe()`)
    const given = (input ?? {}) as {
      params?: Record<string, unknown>
      query?: Record<string, unknown>
      body?: unknown
    } & RequestOptions
    const url = this.#url(spec.path, given.params, given.query)
    const hasBody = 'body' in spec
    const body = hasBody ? JSON.stringify(given.body ?? {}) : undefined
    const wait = Number(given.query?.wait ?? 0)
    const timeout =
      positive(given.timeout ?? this.#timeout, 'timeout') + (Number.isFinite(wait) ? Math.max(0, wait) : 0)
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.#token != null) headers.authorization = `Bearer ${this.#token}`
    if (body != null) headers['content-type'] = 'application/json'

    const timer = new AbortController()
    const timeoutId = setTimeout(() => {
      timer.abort()
    }, timeout)
    const signal = given.signal == null ? timer.signal : AbortSignal.any([given.signal, timer.signal])
    const label = `${spec.method} ${url}`
    try {
      let res: Response
      try {
        // the API never redirects: a redirect is not followed (it could carry the body elsewhere)
        res = await this.#fetch(url, { method: spec.method, headers, body, signal, redirect: 'manual' })
      } catch (err) {
        throw this.#failure(err, label, url, given.signal, timer.signal, timeout)
      }
      await refuseRedirect(res, url, label)
      let text: string
      try {
        text = await readText(res, this.#maxBytes, label)
      } catch (err) {
        if ((err as Error).name === 'ResponseTooLargeError') throw err
        throw this.#failure(err, label, url, given.signal, timer.signal, timeout)
      }
      if (!res.ok) throw problemOf(res, text)
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch (err) {
        throw new InvalidResponseError(
          url,
          `${label} answered ${res.status} with a body that is not JSON (${res.headers.get('content-type') ?? 'no content-type'})`,
          { cause: err }
        )
      }
      if (!this.#validate) return json as RouteResponse<N>
      const checked = spec.response.safeParse(json)
      if (!checked.success) {
        throw new InvalidResponseError(url, `${label} answered outside its schema: ${issuesText(checked.error)}`, {
          cause: checked.error
        })
      }
      return checked.data as RouteResponse<N>
    } finally {
      clearTimeout(timeoutId)
    }
  }

  /**
   * Every item of a paged list, page after page (following `next`), as an async iterator. Breaking
   * out of the loop stops the paging.
   *
   * @example
   * for await (const item of client.all('listWorknodes', { query: { board: 'release', status: 'open' } })) …
   */
  async *all<N extends PagedRouteName>(name: N, ...[input]: CallArgs<N>): AsyncGenerator<PageItem<N>, void, undefined> {
    const spec = ROUTES[name] as Spec<RouteName> | undefined
    // the page's list: its first field that is an array (not an optional one beside it, like skipped)
    const shape = (spec?.response as { shape?: Record<string, { type?: string }> } | undefined)?.shape
    const field = shape == null ? undefined : Object.keys(shape).find(k => k !== 'next' && shape[k]?.type === 'array')
    if (field == null) throw new InvalidCallError(`${String(name)} is not a paged route`)
    const given = (input ?? {}) as { query?: Record<string, unknown> }
    let after = given.query?.after as string | undefined
    for (;;) {
      const query = { ...given.query, ...(after != null ? { after } : {}) }
      const page = (await this.call(name, { ...input, query } as never)) as Record<string, unknown>
      const items = page[field]
      const next = page.next
      if (!Array.isArray(items) || (next !== null && typeof next !== 'string')) {
        throw new InvalidResponseError(this.url, `${name} answered a page without ${field}[] and next`)
      }
      for (const item of items) yield item as PageItem<N>
      if (next == null) return
      if (next === after) throw new InvalidResponseError(this.url, `${name} answered the same next cursor twice`)
      after = next
    }
  }

  /**
   * The node's events as they happen, over server-sent events (`GET /api/events/stream`), from
   * `after` a cursor or `since` an HLC. A dropped connection is resumed where it broke (the last
   * event's cursor goes as Last-Event-ID), waiting `retry` (the node's, else `retryDelay`) doubled
   * each failure, up to `retries` failures in a row; then EventStreamLostError.
   *
   * When the node ends the stream because this reader fell behind (`event: missed`), it goes on
   * from the cursor the node names (the events it could not send are still in the journal), or with
   * `resumeMissed: false` throws EventsMissedError.
   *
   * Ends by throwing: ApiProblemError for a refusal (401, 403, and 410
   * `EventCursorExpiredError` for a cursor from another run of the node — its `problem` says the
   * HLC to go on `since`); SseEventTooLargeError for an event past `maxEventLength`. Breaking out
   * of the loop (or aborting `signal`) closes the connection.
   *
   * @example
   * for await (const e of client.subscribe({ since: '1763700000000.0', signal })) if (e.type === 'complete') …
   */
  async *subscribe(options: SubscribeOptions = {}): AsyncGenerator<ApiEvent, void, undefined> {
    const { signal } = options
    const retries = nonNegative(options.retries ?? DEFAULT_RETRIES, 'retries')
    const retryDelay = nonNegative(options.retryDelay ?? DEFAULT_RETRY_DELAY, 'retryDelay')
    const idleTimeout = positive(options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT, 'idleTimeout')
    const resumeMissed = options.resumeMissed ?? true
    const spec = ROUTES.eventStream
    const url = this.#url(spec.path, undefined, options.since != null ? { since: options.since } : undefined)
    let lastId = options.after ?? ''
    let serverRetry: number | undefined
    /** Connections in a row that delivered nothing. */
    let failures = 0
    let lastError: unknown
    for (let attempts = 0; ; attempts++) {
      signal?.throwIfAborted()
      if (attempts > 0) {
        if (failures > retries)
          throw new EventStreamLostError(url, failures, lastId === '' ? undefined : lastId, lastError)
        await sleep(backoff(serverRetry ?? retryDelay, failures), signal)
      }
      failures++
      const attempt = new AbortController()
      const stop = (): void => {
        attempt.abort(signal?.reason)
      }
      signal?.addEventListener('abort', stop, { once: true })
      try {
        const headers: Record<string, string> = { accept: 'text/event-stream' }
        if (this.#token != null) headers.authorization = `Bearer ${this.#token}`
        if (lastId !== '') headers['last-event-id'] = lastId
        // since is where a stream starts; once an event was read, Last-Event-ID says where it goes on
        const target = lastId !== '' ? this.#url(spec.path, undefined, undefined) : url
        let res: Response
        const opened = await withTimer(
          attempt,
          this.#timeout,
          async () => await this.#fetch(target, { headers, signal: attempt.signal, redirect: 'manual' })
        )
        if (!opened.ok) {
          lastError = this.#failure(opened.error, `GET ${target}`, target, signal, attempt.signal, this.#timeout)
          if (signal?.aborted === true) throw signal.reason
          continue
        }
        res = opened.value
        await refuseRedirect(res, target, `GET ${target}`)
        if (!res.ok) {
          // the refusal's body within the timeout too: a node that stalls in it does not hold the reader
          const body = await withTimer(
            attempt,
            this.#timeout,
            async () => await readText(res, this.#maxBytes, `GET ${target}`)
          )
          if (signal?.aborted === true) throw signal.reason
          const err = problemOf(res, body.ok ? body.value : '')
          if (!RETRYABLE.has(res.status)) throw err
          lastError = err
          continue
        }
        const type = res.headers.get('content-type') ?? ''
        if (!type.startsWith('text/event-stream') || res.body == null) {
          throw new InvalidResponseError(
            target,
            `GET ${target} answered ${type === '' ? 'no content-type' : type}, not text/event-stream`
          )
        }
        const queue: SseEvent[] = []
        const parser = new SseParser({
          onEvent: e => queue.push(e),
          lastEventId: lastId,
          maxEventLength: options.maxEventLength
        })
        const reader = res.body.getReader()
        /** Why the node said it ended the stream, if it did. */
        let ended = ''
        reading: for (;;) {
          const read = await withTimer(attempt, idleTimeout, async () => await reader.read())
          if (!read.ok) {
            if (signal?.aborted === true) throw signal.reason
            lastError = read.timedOut
              ? new ApiTimeoutError(target, `the event stream from ${target} sent nothing for ${idleTimeout} ms`)
              : new ApiNetworkError(target, `the event stream from ${target} broke: ${messageOf(read.error)}`, {
                  cause: read.error
                })
            break
          }
          if (read.value.done) {
            parser.end()
            lastError = new ApiNetworkError(target, `the event stream from ${target} ended${ended}`)
            break
          }
          let refused: unknown
          try {
            parser.push(read.value.value)
          } catch (err) {
            refused = err
          }
          if (parser.retry != null) serverRetry = Math.max(MIN_SERVER_RETRY_DELAY, parser.retry)
          for (const e of queue.splice(0)) {
            if (e.type === 'missed') {
              const missed = missedOf(e.data, lastId)
              if (!resumeMissed) throw missed
              // the journal still holds what the node could not send: go on from where it stopped
              lastId = missed.resume ?? ''
              lastError = missed
              break reading
            }
            // the node ends a stream it cannot go on with (a revoked token, a journal that dropped
            // what the reader had not read): the reconnection answers the problem with its status
            if (e.type === 'end') ended = endOf(e.data)
            if (e.type !== 'message') continue
            const event = this.#event(target, e.data)
            if (e.id !== '') lastId = e.id
            failures = 0
            yield event
          }
          if (parser.lastEventId !== '') lastId = parser.lastEventId
          if (refused != null) throw refused
        }
      } finally {
        signal?.removeEventListener('abort', stop)
        attempt.abort()
      }
    }
  }

  // ---------------------------------------------------------------- who and where

  /** Who this token acts as. */
  async whoami(options?: RequestOptions): Promise<RouteResponse<'whoami'>> {
    return await this.call('whoami', { ...options })
  }

  /** This node's peer id, addresses and agents' kinds. */
  async node(options?: RequestOptions): Promise<RouteResponse<'node'>> {
    return await this.call('node', { ...options })
  }

  /** The cluster's members as this node sees them (a page). */
  async members(query?: RouteQuery<'members'>, options?: RequestOptions): Promise<RouteResponse<'members'>> {
    return await this.call('members', { query, ...options })
  }

  /** The fleet's status. */
  async fleet(options?: RequestOptions): Promise<RouteResponse<'fleet'>> {
    return await this.call('fleet', { ...options })
  }

  // ---------------------------------------------------------------- agents

  /** Agents in the registry with a skill (a page). */
  async findAgents(
    skill: string,
    query?: Omit<RouteQuery<'findAgents'>, 'skill'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'findAgents'>> {
    return await this.call('findAgents', { query: { ...query, skill }, ...options })
  }

  /** An agent's registry record and card. */
  async getAgent(agentId: string, options?: RequestOptions): Promise<RouteResponse<'getAgent'>> {
    return await this.call('getAgent', { params: { id: agentId }, ...options })
  }

  /** The tasks assigned to an agent, on every board this node holds or one (a page). */
  async agentTasks(
    agentId: string,
    query?: RouteQuery<'agentTasks'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'agentTasks'>> {
    return await this.call('agentTasks', { params: { id: agentId }, query, ...options })
  }

  /** Messages waiting for an agent hosted here; `wait` (ms) long-polls for the first. */
  async inbox(agentId: string, query?: RouteQuery<'inbox'>, options?: RequestOptions): Promise<RouteResponse<'inbox'>> {
    return await this.call('inbox', { params: { id: agentId }, query, ...options })
  }

  /**
   * Sends a message (or, with `request: true`, a request answered in `response`) as an agent hosted
   * here. A message to an external agent is done once that agent confirms it with `reply`.
   */
  async send(agentId: string, message: RouteBody<'send'>, options?: RequestOptions): Promise<RouteResponse<'send'>> {
    // a request waits up to its own timeout for the answer
    const timeout =
      message.request === true ? (options?.timeout ?? this.#timeout) + (message.timeout ?? 30_000) : options?.timeout
    return await this.call('send', { params: { id: agentId }, body: message, ...options, timeout })
  }

  /** Answers a request (or confirms a message) in the inbox of an agent hosted here. */
  async reply(agentId: string, reply: RouteBody<'reply'>, options?: RequestOptions): Promise<RouteResponse<'reply'>> {
    return await this.call('reply', { params: { id: agentId }, body: reply, ...options })
  }

  /** The agents this node hosts (an agent token sees only its own; a page). */
  async hostedAgents(
    query?: RouteQuery<'hostedAgents'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'hostedAgents'>> {
    return await this.call('hostedAgents', { query, ...options })
  }

  /** Starts an agent here, or attaches an external one and mints its token (operator). */
  async attachAgent(body: RouteBody<'attachAgent'>, options?: RequestOptions): Promise<RouteResponse<'attachAgent'>> {
    return await this.call('attachAgent', { body, ...options })
  }

  /** Stops an agent hosted here; its tokens are revoked (operator). */
  async stopAgent(agentId: string, options?: RequestOptions): Promise<RouteResponse<'stopAgent'>> {
    return await this.call('stopAgent', { params: { id: agentId }, ...options })
  }

  // ---------------------------------------------------------------- tokens

  /** The agents' live tokens, never their secrets (operator; a page). */
  async listTokens(query?: RouteQuery<'listTokens'>, options?: RequestOptions): Promise<RouteResponse<'listTokens'>> {
    return await this.call('listTokens', { query, ...options })
  }

  /** Mints a token bound to an external agent hosted here; the secret is in the answer once (operator). */
  async mintToken(agentId: string, options?: RequestOptions): Promise<RouteResponse<'mintToken'>> {
    return await this.call('mintToken', { params: { id: agentId }, ...options })
  }

  /** Revokes a token by its id (operator). */
  async revokeToken(tokenId: string, options?: RequestOptions): Promise<RouteResponse<'revokeToken'>> {
    return await this.call('revokeToken', { params: { tokenId }, ...options })
  }

  // ---------------------------------------------------------------- boards and work nodes

  /** The boards this node holds (a page). */
  async listBoards(query?: RouteQuery<'listBoards'>, options?: RequestOptions): Promise<RouteResponse<'listBoards'>> {
    return await this.call('listBoards', { query, ...options })
  }

  /** Opens (or creates) a board (operator): without `mode`, the mode it has, or eventual for a new one. */
  async openBoard(
    name: string,
    mode?: RouteBody<'openBoard'>['mode'],
    options?: RequestOptions
  ): Promise<RouteResponse<'openBoard'>> {
    return await this.call('openBoard', { body: { name, mode }, ...options })
  }

  /** One board. */
  async getBoard(name: string, options?: RequestOptions): Promise<RouteResponse<'getBoard'>> {
    return await this.call('getBoard', { params: { board: name }, ...options })
  }

  /** A board's items the caller may read, filtered (a page). */
  async listWorknodes(
    board: string,
    filter?: Omit<RouteQuery<'listWorknodes'>, 'board'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'listWorknodes'>> {
    return await this.call('listWorknodes', { query: { ...filter, board }, ...options })
  }

  /** Creates a work item (a goal, a task) on a board. */
  async createWorknode(
    body: RouteBody<'createWorknode'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'createWorknode'>> {
    return await this.call('createWorknode', { body, ...options })
  }

  /** One work item (`<board>:<item>`) with its history. */
  async getWorknode(ref: string, options?: RequestOptions): Promise<RouteResponse<'getWorknode'>> {
    return await this.call('getWorknode', { params: { id: ref }, ...options })
  }

  /** Changes a work item's title, description, priority or skills. */
  async updateWorknode(
    ref: string,
    body: RouteBody<'updateWorknode'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'updateWorknode'>> {
    return await this.call('updateWorknode', { params: { id: ref }, body, ...options })
  }

  /** Deletes a work item. */
  async deleteWorknode(
    ref: string,
    acting?: RouteQuery<'deleteWorknode'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'deleteWorknode'>> {
    return await this.call('deleteWorknode', { params: { id: ref }, query: acting, ...options })
  }

  /** Claims a ready, unassigned task. */
  async claimTask(
    ref: string,
    body?: RouteBody<'claimTask'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'claimTask'>> {
    return await this.call('claimTask', { params: { id: ref }, body, ...options })
  }

  /** Assigns a task (or with `assignee: null` clears its assignee). */
  async assignTask(
    ref: string,
    body: RouteBody<'assignTask'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'assignTask'>> {
    return await this.call('assignTask', { params: { id: ref }, body, ...options })
  }

  /** Gives back a task one holds. */
  async releaseTask(
    ref: string,
    body?: RouteBody<'releaseTask'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'releaseTask'>> {
    return await this.call('releaseTask', { params: { id: ref }, body, ...options })
  }

  /** Reports progress on a task one holds. */
  async progressTask(
    ref: string,
    body: RouteBody<'progressTask'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'progressTask'>> {
    return await this.call('progressTask', { params: { id: ref }, body, ...options })
  }

  /** Completes a task one holds, with its result and artifacts. */
  async completeTask(
    ref: string,
    body?: RouteBody<'completeTask'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'completeTask'>> {
    return await this.call('completeTask', { params: { id: ref }, body, ...options })
  }

  /** Fails (or with `rejected`, declines) a task one holds. */
  async failTask(
    ref: string,
    body: RouteBody<'failTask'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'failTask'>> {
    return await this.call('failTask', { params: { id: ref }, body, ...options })
  }

  /** Cancels a task. */
  async cancelTask(
    ref: string,
    body?: RouteBody<'cancelTask'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'cancelTask'>> {
    return await this.call('cancelTask', { params: { id: ref }, body, ...options })
  }

  /** Hands a task one holds to another agent, with its state so far. */
  async handoffTask(
    ref: string,
    body: RouteBody<'handoffTask'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'handoffTask'>> {
    return await this.call('handoffTask', { params: { id: ref }, body, ...options })
  }

  // ---------------------------------------------------------------- events

  /** A page of events since an HLC or after a cursor; `wait` (ms) long-polls for the first. */
  async events(query?: RouteQuery<'events'>, options?: RequestOptions): Promise<RouteResponse<'events'>> {
    return await this.call('events', { query, ...options })
  }

  // ---------------------------------------------------------------- documents

  /** The shared documents this node holds (a page). */
  async listDocuments(
    query?: RouteQuery<'listDocuments'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'listDocuments'>> {
    return await this.call('listDocuments', { query, ...options })
  }

  /** A document's value. */
  async getDocument(name: string, options?: RequestOptions): Promise<RouteResponse<'getDocument'>> {
    return await this.call('getDocument', { params: { name }, ...options })
  }

  /** Applies an update to a document. */
  async updateDocument(
    name: string,
    body: RouteBody<'updateDocument'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'updateDocument'>> {
    return await this.call('updateDocument', { params: { name }, body, ...options })
  }

  // ---------------------------------------------------------------- certificates

  /** The SPKI certificates this node holds (a page). */
  async listCertificates(
    query?: RouteQuery<'listCertificates'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'listCertificates'>> {
    return await this.call('listCertificates', { query, ...options })
  }

  /** Issues a certificate with this node's key (operator). */
  async issueCertificate(
    body: RouteBody<'issueCertificate'>,
    options?: RequestOptions
  ): Promise<RouteResponse<'issueCertificate'>> {
    return await this.call('issueCertificate', { body, ...options })
  }

  // ---------------------------------------------------------------- plumbing

  /** The URL of `path` with its `{param}` segments filled and the query appended. */
  #url(path: string, params: Record<string, unknown> | undefined, query: Record<string, unknown> | undefined): string {
    const filled = path.replace(/\{(\w+)\}/g, (_, key: string) => {
      const value = params?.[key]
      if (typeof value !== 'string' && typeof value !== 'number') {
        throw new InvalidCallError(`params.${key} is required (a string) for ${path}`)
      }
      const text = String(value)
      // URL parsing would resolve these as path steps, reaching another route
      if (text === '' || text === '.' || text === '..') {
        throw new InvalidCallError(`params.${key} must not be empty, "." or ".." (${path})`)
      }
      return encodeURIComponent(text)
    })
    const search = new URLSearchParams()
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined || value === null) continue
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        throw new InvalidCallError(`query.${key} must be a string, number or boolean`)
      }
      search.set(key, String(value))
    }
    const text = search.toString()
    return this.url + filled + (text === '' ? '' : `?${text}`)
  }

  /** One SSE event's data as an event of the journal. */
  #event(url: string, data: string): ApiEvent {
    let json: unknown
    try {
      json = JSON.parse(data)
    } catch (err) {
      throw new InvalidResponseError(url, `the event stream from ${url} sent an event whose data is not JSON`, {
        cause: err
      })
    }
    if (!this.#validate) return json as ApiEvent
    const checked = ROUTES.eventStream.response.safeParse(json)
    if (!checked.success) {
      throw new InvalidResponseError(
        url,
        `the event stream from ${url} sent an event outside its schema: ${issuesText(checked.error)}`,
        {
          cause: checked.error
        }
      )
    }
    return checked.data
  }

  /** What a failed fetch or read becomes: the caller's abort as is, else a timeout or network error naming the URL. */
  #failure(
    err: unknown,
    label: string,
    url: string,
    caller: AbortSignal | undefined,
    timer: AbortSignal,
    ms: number
  ): unknown {
    if (caller?.aborted === true) return caller.reason
    if (timer.aborted) return new ApiTimeoutError(url, `${label} got no answer within ${ms} ms`)
    return new ApiNetworkError(url, `${label} failed: the node does not answer (${messageOf(err)})`, { cause: err })
  }
}

/**
 * Which method of Client serves each route: the compiler checks that every route of the table has
 * one (a route added without a method fails the type check here).
 */
export const CLIENT_METHODS = {
  whoami: 'whoami',
  node: 'node',
  members: 'members',
  fleet: 'fleet',
  findAgents: 'findAgents',
  getAgent: 'getAgent',
  agentTasks: 'agentTasks',
  inbox: 'inbox',
  send: 'send',
  reply: 'reply',
  hostedAgents: 'hostedAgents',
  attachAgent: 'attachAgent',
  stopAgent: 'stopAgent',
  listTokens: 'listTokens',
  mintToken: 'mintToken',
  revokeToken: 'revokeToken',
  listBoards: 'listBoards',
  openBoard: 'openBoard',
  getBoard: 'getBoard',
  listWorknodes: 'listWorknodes',
  createWorknode: 'createWorknode',
  getWorknode: 'getWorknode',
  updateWorknode: 'updateWorknode',
  deleteWorknode: 'deleteWorknode',
  claimTask: 'claimTask',
  assignTask: 'assignTask',
  releaseTask: 'releaseTask',
  progressTask: 'progressTask',
  completeTask: 'completeTask',
  failTask: 'failTask',
  cancelTask: 'cancelTask',
  handoffTask: 'handoffTask',
  events: 'events',
  eventStream: 'subscribe',
  listDocuments: 'listDocuments',
  getDocument: 'getDocument',
  updateDocument: 'updateDocument',
  listCertificates: 'listCertificates',
  issueCertificate: 'issueCertificate'
} as const satisfies { [N in RouteName]: keyof Client }

// ------------------------------------------------------------------ helpers

function positive(value: number, field: string): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new InvalidCallError(`${field} must be a positive number of ms, not ${value}`)
  return value
}

function nonNegative(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new InvalidCallError(`${field} must be a non-negative integer, not ${value}`)
  return value
}

function messageOf(err: unknown): string {
  const e = err as { message?: unknown; cause?: { message?: unknown; code?: unknown } } | undefined
  const cause = e?.cause?.code ?? e?.cause?.message
  const message = typeof e?.message === 'string' ? e.message : String(err)
  return cause != null && cause !== message ? `${message}: ${String(cause)}` : message
}

function issuesText(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map(i => `${i.path.join('.') || '(answer)'}: ${i.message}`)
    .join('; ')
}

/** The body of `res` as text, at most `max` bytes (a larger one is refused before it is all read). */
async function readText(res: Response, max: number, label: string): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? Number.NaN)
  if (declared > max) {
    await res.body?.cancel().catch(() => {})
    throw new ResponseTooLargeError(`${label} answered ${declared} bytes, more than the ${max} this client takes`)
  }
  if (res.body == null) return ''
  const reader = res.body.getReader()
  const decoder = new TextDecoder()
  let text = ''
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > max) {
      await reader.cancel().catch(() => {})
      throw new ResponseTooLargeError(`${label} answered more than the ${max} bytes this client takes`)
    }
    text += decoder.decode(value, { stream: true })
  }
  return text + decoder.decode()
}

/**
 * Throws InvalidResponseError for a redirect (fetch with `redirect: 'manual'`: a 3xx in Node, an
 * opaque redirect in browsers): the API never redirects, so one is a misconfigured URL or someone
 * in the middle, and neither the token nor the body goes on to where it points.
 */
async function refuseRedirect(res: Response, url: string, label: string): Promise<void> {
  if (res.type !== 'opaqueredirect' && (res.status < 300 || res.status > 399)) return
  await res.body?.cancel().catch(() => {})
  const location = res.headers.get('location')
  throw new InvalidResponseError(
    url,
    `${label} answered a redirect${res.status !== 0 ? ` (${res.status})` : ''}${location != null ? ` to ${location.slice(0, 200)}` : ''}: the API never redirects, so it was not followed — check the client's url`
  )
}

/** The error an answer that is not 2xx stands for: its problem, or one made from its status. */
function problemOf(res: Response, text: string): ApiProblemError {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    body = undefined
  }
  if (body != null && typeof body === 'object' && !Array.isArray(body)) {
    const problem = body as Record<string, unknown>
    // the CLI's older answers carry `error` rather than `detail`
    if (typeof problem.detail !== 'string' && typeof problem.error === 'string') {
      return new ApiProblemError(res.status, { ...problem, detail: problem.error })
    }
    return new ApiProblemError(res.status, problem)
  }
  const snippet = text.slice(0, 200).trim()
  return new ApiProblemError(res.status, {
    type: 'about:blank',
    title: res.statusText !== '' ? res.statusText : `HTTP ${res.status}`,
    status: res.status,
    detail: `HTTP ${res.status}${snippet === '' ? '' : `: ${snippet}`}`,
    name: 'HttpError'
  })
}

/** `event: missed`'s `{ missed, resume }`; a resume of null means no cursor was passed yet (the last id read, if any). */
function missedOf(data: string, lastId: string): EventsMissedError {
  let missed = Number.NaN
  let resume = lastId === '' ? undefined : lastId
  try {
    const body = JSON.parse(data) as { missed?: unknown; resume?: unknown }
    if (typeof body.missed === 'number') missed = body.missed
    if (typeof body.resume === 'string' && body.resume !== '') resume = body.resume
  } catch {
    // the count stays unknown; the resume point is the last id read
  }
  return new EventsMissedError(missed, resume)
}

/** `event: end`'s `{ name, message }`, as the tail of an error message. */
function endOf(data: string): string {
  try {
    const body = JSON.parse(data) as { name?: unknown; message?: unknown }
    return `: ${String(body.name)}: ${String(body.message)}`.slice(0, 500)
  } catch {
    return ''
  }
}

/**
 * The wait before reconnecting after `failures` connections in a row that delivered nothing: `base`
 * (after a connection that delivered, or the first failure), doubled each further failure, at most
 * 30 s, less up to a quarter at random (so clients of a restarted node do not all come back at once).
 */
function backoff(base: number, failures: number): number {
  const delay = Math.min(MAX_RETRY_DELAY, base * 2 ** Math.max(0, failures - 1))
  return delay - Math.random() * delay * 0.25
}

async function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const done = (): void => {
      signal?.removeEventListener('abort', abort)
      resolve()
    }
    const abort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', abort, { once: true })
  })
}

type Timed<T> = { ok: true; value: T } | { ok: false; error: unknown; timedOut: boolean }

/** Runs `work`; if it takes longer than `ms`, aborts `attempt` (which fails the work). */
async function withTimer<T>(attempt: AbortController, ms: number, work: () => Promise<T>): Promise<Timed<T>> {
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    attempt.abort()
  }, ms)
  try {
    return { ok: true, value: await work() }
  } catch (error) {
    return { ok: false, error, timedOut }
  } finally {
    clearTimeout(timer)
  }
}
