/**
 * One request and one answer per stream, length-prefixed, each bounded in size and time: the
 * shape of the cluster's protocols. The requester reads the answer and closes; the server decodes
 * with its own limits and always answers (a refusal is an answer too).
 *
 * @example
 * const answer = await requestOnce(libp2p.dialProtocol.bind(libp2p), peer, PROTOCOL, bytes, { maxBytes, signal })
 * await registrar.handle(PROTOCOL, serveOnce(async (bytes, connection) => answerBytes, { maxBytes, timeout, log }))
 */
import { lpStream } from '@libp2p/utils'
import type { ErrorAnswer } from '../../protocols/wire.ts'
import type { AbortOptions, Connection, Logger, PeerId, Stream, StreamHandler } from '@libp2p/interface'

/** Opens a stream to a peer for a protocol: ConnectionManager.openStream, or Libp2p.dialProtocol. */
export type OpenStream = (peer: PeerId, protocol: string, options: AbortOptions) => Promise<Stream>

export async function requestOnce(
  open: OpenStream,
  peer: PeerId,
  protocol: string,
  request: Uint8Array,
  options: AbortOptions & { maxBytes: number; signal: AbortSignal }
): Promise<Uint8Array> {
  const { signal } = options
  const stream = await open(peer, protocol, { signal })
  try {
    const lp = lpStream(stream, { maxDataLength: options.maxBytes })
    await lp.write(request, { signal })
    const answer = (await lp.read({ signal })).subarray()
    await stream.close({ signal })
    return answer
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

export interface ServeOptions {
  maxBytes: number
  timeout: number
  log: Logger
  /** The answer to a request that could not be read (too large, too slow); without it the stream is aborted. */
  refuse?: (err: unknown) => Uint8Array
}

export interface AnswerOptions<A extends { type: string }, K extends string> {
  maxBytes: number
  signal: AbortSignal
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

/** A stream handler that reads one request, and writes what `answer` returns for it. */
export function serveOnce(
  answer: (request: Uint8Array, connection: Connection, signal: AbortSignal) => Promise<Uint8Array>,
  options: ServeOptions
): StreamHandler {
  return async (stream: Stream, connection: Connection): Promise<void> => {
    const signal = AbortSignal.timeout(options.timeout)
    const lp = lpStream(stream, { maxDataLength: options.maxBytes })
    try {
      let reply: Uint8Array
      try {
        reply = await answer((await lp.read({ signal })).subarray(), connection, signal)
      } catch (err) {
        if (options.refuse == null) throw err
        options.log('refusing a request from %p - %e', connection.remotePeer, err)
        reply = options.refuse(err)
      }
      await lp.write(reply, { signal })
      await stream.close({ signal })
    } catch (err) {
      options.log('stream from %p failed - %e', connection.remotePeer, err)
      stream.abort(err as Error)
    }
  }
}
