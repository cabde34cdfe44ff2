/**
 * One request and one answer at a time on a stream, length-prefixed, each bounded in size and time:
 * the shape of the cluster's protocols. The requester reads the answer; the server decodes with its
 * own limits and always answers (a refusal is an answer too).
 *
 * A protocol is served under two ids: `<id>`, one request per stream, and `<id>/many`
 * (`reusable(id)`), where the requester may send the next request on the same stream once it has
 * read the answer, and closes the stream when it is done. A `StreamPool` keeps such streams open
 * between requests to a peer: opening a stream costs a multistream negotiation and, on both sides,
 * more CPU than a small request and its answer, so a member probed every few seconds should not pay
 * it every time. The pool offers `<id>/many` first and falls back to `<id>`, so it works with a peer
 * that serves only `<id>`.
 *
 * @example
 * const answer = await requestOnce(libp2p.dialProtocol.bind(libp2p), peer, PROTOCOL, bytes, { maxBytes, signal, pool })
 * await handleRequests(registrar, PROTOCOL, serveRequests(async (bytes, connection) => answerBytes, { maxBytes, timeout, log }))
 */
import { lpStream } from '@libp2p/utils'
import type { ErrorAnswer } from '../../protocols/wire.ts'
import type {
  AbortOptions,
  Connection,
  Logger,
  PeerId,
  Stream,
  StreamHandler,
  StreamHandlerOptions
} from '@libp2p/interface'
import type { LengthPrefixedStream } from '@libp2p/utils'

/** Opens a stream to a peer for a protocol (the first of several the peer supports): ConnectionManager.openStream, or Libp2p.dialProtocol. */
export type OpenStream = (peer: PeerId, protocol: string | string[], options: AbortOptions) => Promise<Stream>

/** The suffix of a protocol id whose streams carry requests one after another. */
const MANY = '/many'
/**
 * How long a server waits for the next request on a reused stream before it closes it, ms: longer
 * than any requester keeps one idle (StreamPool's idleMs), shorter than libp2p's inactivity timeout
 * for streams (120 s), which would abort it.
 */
export const SERVE_IDLE_MS = 115_000

/** The id under which `protocol` is served with many requests per stream, one after another. */
export function reusable(protocol: string): string {
  return protocol + MANY
}

export interface RequestOptions extends AbortOptions {
  maxBytes: number
  signal: AbortSignal
  /** Keeps the stream for the next request to the same peer and protocol. */
  pool?: StreamPool
}

/**
 * Sends one request and reads its answer: on a stream of its own, closed after, or with
 * `options.pool`, on a stream the pool keeps for the next request (`StreamPool.request`).
 */
export async function requestOnce(
  open: OpenStream,
  peer: PeerId,
  protocol: string,
  request: Uint8Array,
  options: RequestOptions
): Promise<Uint8Array> {
  if (options.pool != null) return await options.pool.request(open, peer, protocol, request, options)
  const { signal } = options
  const stream = await open(peer, protocol, { signal })
  const answer = await exchange(stream, boundedLp(stream, options.maxBytes), request, signal)
  await closeOrAbort(stream, signal)
  return answer
}

/** A length-prefixed view of `stream` that reads messages of at most `maxBytes` and buffers no more than one. */
function boundedLp(stream: Stream, maxBytes: number): LengthPrefixedStream<Stream> {
  return lpStream(stream, { maxDataLength: maxBytes, maxBufferSize: maxBytes + 16 })
}

/** Writes `request` and reads its answer; the stream is aborted if either fails. */
async function exchange(
  stream: Stream,
  lp: LengthPrefixedStream<Stream>,
  request: Uint8Array,
  signal: AbortSignal
): Promise<Uint8Array> {
  try {
    await lp.write(request, { signal })
    return (await lp.read({ signal })).subarray()
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

async function closeOrAbort(stream: Stream, signal: AbortSignal): Promise<void> {
  try {
    await stream.close({ signal })
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

/** Idle streams a pool keeps per peer, protocol and answer bound; concurrent requests open more, closed after use. */
const MAX_IDLE_PER_KEY = 2
/**
 * Errors of a stream or connection that died under a request: not an answer, not the caller's
 * timeout. A kept stream can look open for a moment after its connection closed.
 */
const LOST_STREAM = new Set([
  'StreamStateError',
  'StreamResetError',
  'StreamAbortedError',
  'ConnectionClosedError',
  'ConnectionClosingError',
  'MuxerClosedError',
  'UnexpectedEOFError'
])

/** Whether `err` says the stream or connection died under a request (see LOST_STREAM). */
export function lostStream(err: unknown): boolean {
  return LOST_STREAM.has((err as Error | undefined)?.name ?? '')
}

/** The longest a pool keeps a stream idle: well under SERVE_IDLE_MS, so the server never closes one as it is taken. */
const MAX_POOL_IDLE_MS = 100_000

interface Pooled {
  stream: Stream
  lp: LengthPrefixedStream<Stream>
  /** Bytes that arrived on the stream, and bytes read as answers: equal when nothing unasked waits. */
  bytes: Arrivals
  timer?: ReturnType<typeof setTimeout>
  onClose?: () => void
}

/** Counts the bytes a stream received and those its reader consumed, message by message. */
class Arrivals {
  received = 0
  consumed = 0
  /** Called once when bytes next arrive, if set. */
  onData?: () => void

  constructor(stream: Stream) {
    stream.addEventListener('message', evt => {
      this.received += evt.data.byteLength
      const onData = this.onData
      this.onData = undefined
      onData?.()
    })
  }

  /** `message` was read off the stream with its length prefix. */
  read(message: Uint8Array): void {
    this.consumed += varintLength(message.byteLength) + message.byteLength
  }

  /** Whether bytes arrived that nobody has read: a request (or answer) begun, or sent unasked. */
  get waiting(): boolean {
    return this.received > this.consumed
  }
}

function varintLength(n: number): number {
  let length = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    length++
  }
  return length
}

export interface StreamPoolOptions {
  /** A stream unused this long is closed, ms (default 60 s; at most 100 s, under the server's SERVE_IDLE_MS). */
  idleMs?: number
}

/**
 * Streams kept open between requests, per peer, protocol and answer bound. A request takes an idle
 * stream, or opens one offering `reusable(protocol)` first; after a whole answer it gives the stream
 * back, unless the peer answered under the plain id (one request per stream) or the stream is no
 * longer open both ways. A stream that failed, or whose request was aborted, is aborted, never kept:
 * a later request never reads an answer meant for an earlier one. Idle streams are bounded per key
 * and closed after `idleMs`; `close()` (the owner's stop) closes them all.
 */
export class StreamPool {
  private readonly idle = new Map<string, Pooled[]>()
  private readonly idleMs: number
  private closed = false

  constructor(options: StreamPoolOptions = {}) {
    this.idleMs = Math.min(options.idleMs ?? 60_000, MAX_POOL_IDLE_MS)
  }

  async request(
    open: OpenStream,
    peer: PeerId,
    protocol: string,
    request: Uint8Array,
    options: RequestOptions
  ): Promise<Uint8Array> {
    const { signal, maxBytes } = options
    const key = `${peer.toString()} ${protocol} ${maxBytes}`
    const kept = this.take(key)
    if (kept != null) {
      try {
        return await this.exchange(key, kept, protocol, request, signal)
      } catch (err) {
        // a kept stream whose connection just died: asked once more on a new stream, as an HTTP
        // client does on a reused connection (every protocol here answers a repeat the same, or
        // refuses it by name)
        if (signal.aborted || !lostStream(err)) throw err
      }
    }
    const stream = await open(peer, [reusable(protocol), protocol], { signal })
    // an answer's bytes at most are buffered: a peer cannot park more on an idle stream
    const entry = { stream, lp: boundedLp(stream, maxBytes), bytes: new Arrivals(stream) }
    return await this.exchange(key, entry, protocol, request, signal)
  }

  /** One request and its answer on `entry`'s stream, which is kept after a whole answer if it may be. */
  private async exchange(
    key: string,
    entry: Pooled,
    protocol: string,
    request: Uint8Array,
    signal: AbortSignal
  ): Promise<Uint8Array> {
    const answer = await exchange(entry.stream, entry.lp, request, signal)
    entry.bytes.read(answer)
    if (entry.stream.protocol === reusable(protocol)) this.give(key, entry)
    else await closeOrAbort(entry.stream, signal)
    return answer
  }

  /** Closes every idle stream; later requests open streams of their own and close them after use. */
  close(): void {
    this.closed = true
    for (const list of this.idle.values()) for (const entry of list) this.drop(entry)
    this.idle.clear()
  }

  /** Idle streams, for tests and stats. */
  get size(): number {
    let n = 0
    for (const list of this.idle.values()) n += list.length
    return n
  }

  private take(key: string): Pooled | undefined {
    const list = this.idle.get(key)
    while (list != null && list.length > 0) {
      const entry = list.pop() as Pooled
      if (list.length === 0) this.idle.delete(key)
      this.unwatch(entry)
      if (usable(entry.stream) && !entry.bytes.waiting) return entry
      // closed, or the peer sent bytes nobody asked for: never read as the next answer
      entry.stream.abort(new Error('the stream was closed, or sent unasked bytes, while idle'))
    }
    return undefined
  }

  private give(key: string, entry: Pooled): void {
    const list = this.idle.get(key) ?? []
    if (this.closed || !usable(entry.stream) || entry.bytes.waiting || list.length >= MAX_IDLE_PER_KEY) {
      if (entry.bytes.waiting) entry.stream.abort(new Error('the peer sent more than its answer'))
      else this.drop(entry)
      return
    }
    list.push(entry)
    this.idle.set(key, list)
    const forget = (): void => {
      this.unwatch(entry)
      const at = list.indexOf(entry)
      if (at >= 0) list.splice(at, 1)
      if (list.length === 0 && this.idle.get(key) === list) this.idle.delete(key)
    }
    entry.onClose = forget
    entry.stream.addEventListener('close', forget, { once: true })
    entry.timer = setTimeout(() => {
      forget()
      this.drop(entry)
    }, this.idleMs)
  }

  private unwatch(entry: Pooled): void {
    clearTimeout(entry.timer)
    if (entry.onClose != null) entry.stream.removeEventListener('close', entry.onClose)
    entry.timer = undefined
    entry.onClose = undefined
  }

  /** Closes a stream that is not kept: the server sees a clean end and stops waiting for requests. */
  private drop(entry: Pooled): void {
    this.unwatch(entry)
    entry.stream.close().catch(err => entry.stream.abort(err as Error))
  }
}

function usable(stream: Stream): boolean {
  return stream.status === 'open' && stream.writeStatus === 'writable' && stream.remoteWriteStatus === 'writable'
}

export interface ServeOptions {
  maxBytes: number
  timeout: number
  log: Logger
  /** The answer to a request that could not be read (too large, too slow); without it the stream is aborted. */
  refuse?: (err: unknown) => Uint8Array
}

export interface AnswerOptions<A extends { type: string }, K extends string> extends RequestOptions {
  decode: (bytes: Uint8Array) => A
  /** The answer type that is a success. */
  expected: K
  /** The error to throw for a refusal (an error answer). */
  refused: (answer: ErrorAnswer) => Error
  /** The error to throw for an answer of another type. */
  unexpected: (type: string) => Error
}

/**
 * requestOnce, then the answer decoded: a refusal (an error answer) or an answer of another type
 * than `expected` throws the caller's error; otherwise the answer, narrowed to its type.
 */
export async function requestAnswer<A extends { type: string }, K extends A['type']>(
  open: OpenStream,
  peer: PeerId,
  protocol: string,
  request: Uint8Array,
  options: AnswerOptions<A, K>
): Promise<Extract<A, { type: K }>> {
  const answer = options.decode(await requestOnce(open, peer, protocol, request, options))
  if (answer.type === 'error') throw options.refused(answer as unknown as ErrorAnswer)
  if (answer.type !== options.expected) throw options.unexpected(answer.type)
  return answer as Extract<A, { type: K }>
}

/** A signal that fires after `ms`, or with `signal`, whichever comes first. */
export function withTimeout(ms: number, signal?: AbortSignal): AbortSignal {
  return signal == null ? AbortSignal.timeout(ms) : AbortSignal.any([AbortSignal.timeout(ms), signal])
}

/**
 * A stream handler that reads a request and writes what `answer` returns for it: once on a stream of
 * the plain id, and again for every further request on a stream of `reusable(id)` until the
 * requester closes it (or sends nothing for SERVE_IDLE_MS). Each request has `timeout` ms to arrive
 * whole (the first) and to be answered.
 */
export function serveRequests(
  answer: (request: Uint8Array, connection: Connection, signal: AbortSignal) => Promise<Uint8Array>,
  options: ServeOptions
): StreamHandler {
  return async (stream: Stream, connection: Connection): Promise<void> => {
    const many = stream.protocol.endsWith(MANY)
    const lp = boundedLp(stream, options.maxBytes)
    const bytes = new Arrivals(stream)
    try {
      for (let served = 0; ; served++) {
        // the first request has `timeout` to arrive whole; a later one may be awaited SERVE_IDLE_MS,
        // but from its first byte it too has `timeout`
        const arrival = new AbortController()
        const expire = (ms: number): ReturnType<typeof setTimeout> =>
          setTimeout(() => arrival.abort(new DOMException('no whole request in time', 'TimeoutError')), ms)
        let timer = expire(served === 0 || bytes.waiting ? options.timeout : SERVE_IDLE_MS)
        if (served > 0 && !bytes.waiting)
          bytes.onData = () => {
            clearTimeout(timer)
            timer = expire(options.timeout)
          }
        let request: Uint8Array
        try {
          request = (await lp.read({ signal: arrival.signal })).subarray()
          bytes.read(request)
        } catch (err) {
          // the requester closed its side between requests: the end of a reused stream
          if (served > 0 && stream.remoteWriteStatus !== 'writable' && (err as Error).name === 'UnexpectedEOFError')
            break
          if (served > 0 || options.refuse == null) throw err
          options.log('refusing a request from %p - %e', connection.remotePeer, err)
          await lp.write(options.refuse(err), { signal: AbortSignal.timeout(options.timeout) })
          break
        } finally {
          clearTimeout(timer)
          bytes.onData = undefined
        }
        const signal = AbortSignal.timeout(options.timeout)
        let reply: Uint8Array
        try {
          reply = await answer(request, connection, signal)
        } catch (err) {
          if (options.refuse == null) throw err
          options.log('refusing a request from %p - %e', connection.remotePeer, err)
          reply = options.refuse(err)
        }
        await lp.write(reply, { signal })
        if (!many) break
      }
      await stream.close({ signal: AbortSignal.timeout(options.timeout) })
    } catch (err) {
      options.log('stream from %p failed - %e', connection.remotePeer, err)
      stream.abort(err as Error)
    }
  }
}

/** Something protocols are registered with: the registrar, or libp2p itself. */
interface Handles {
  handle(protocol: string, handler: StreamHandler, options?: StreamHandlerOptions): Promise<void>
  unhandle(protocol: string): Promise<void>
}

/**
 * Registers `handler` (a serveRequests handler) under `protocol` and `reusable(protocol)`.
 * `maxInboundStreams` bounds each id's streams per connection.
 */
export async function handleRequests(
  registrar: Handles,
  protocol: string,
  handler: StreamHandler,
  options?: StreamHandlerOptions
): Promise<void> {
  await registrar.handle(protocol, handler, options)
  await registrar.handle(reusable(protocol), handler, options)
}

export async function unhandleRequests(registrar: Handles, protocol: string): Promise<void> {
  await registrar.unhandle(protocol)
  await registrar.unhandle(reusable(protocol))
}
