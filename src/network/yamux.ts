/**
 * Yamux as this node runs it: @chainsafe/libp2p-yamux, with its receive window credited back the
 * way hashicorp/yamux (the Go reference) and the yamux spec's own flow control intend.
 *
 * @chainsafe/libp2p-yamux 8 answers every data frame with a window update frame, however little of
 * the window the frame used: each small message (a gossip copy, a SWIM probe) costs its receiver a
 * second encrypted frame to write and its sender one to read — in an idle cluster about a tenth
 * of all CPU time, by profile. hashicorp/yamux sends an update only once at least half the window is
 * used (or a flag must go out); the sender still has the other half to send meanwhile, so nothing
 * stalls. `yamuxMuxer` makes @chainsafe's streams do the same, on streams that are established (a
 * stream resuming after a pause is one again); the opening handshake (SYN, ACK) and a paused stream
 * keep the library's behaviour.
 * If the library's stream no longer looks as expected (another version), it is left alone.
 *
 * @example
 * createLibp2p({ streamMuxers: [yamuxMuxer({ keepAliveInterval: 300_000 })] })
 */
import { yamux } from '@chainsafe/libp2p-yamux'
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import type { YamuxMuxerInit } from '@chainsafe/libp2p-yamux'

/** The fields of a @chainsafe/libp2p-yamux stream that the window rule reads. */
interface WindowState {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
}

interface Patchable {
  sendWindowUpdate?: (this: WindowState) => void
  halfWindowUpdates?: true
}

/**
 * The yamux spec's initial stream window: all a sender can count on before the receiver's first
 * update, whatever window the receiver itself chose.
 */
const SPEC_INITIAL_WINDOW = 256 * 1024

/**
 * Whether an established stream may hold its window update back: less than half its window used
 * (half of at most the spec's initial window: a receiver with a larger one must credit before a
 * sender that assumes 256 KiB runs out).
 */
export function holdsWindowUpdate(stream: WindowState): boolean {
  return (
    stream.state === StreamState.Established &&
    typeof stream.recvWindow === 'number' &&
    typeof stream.recvWindowCapacity === 'number' &&
    stream.recvWindow - stream.recvWindowCapacity < Math.min(stream.recvWindow, SPEC_INITIAL_WINDOW) / 2
  )
}

/** Installs the half-window rule on @chainsafe/libp2p-yamux's streams, once; false if their shape is unknown. */
export function creditHalfWindows(): boolean {
  const proto = YamuxStream.prototype as unknown as Patchable
  if (proto.halfWindowUpdates === true) return true
  const original = proto.sendWindowUpdate
  if (typeof original !== 'function' || typeof StreamState?.Established !== 'number') return false
  proto.sendWindowUpdate = function (this: WindowState): void {
    if (holdsWindowUpdate(this)) return
    original.call(this)
  }
  proto.halfWindowUpdates = true
  return true
}

/** yamux(init) with the half-window rule installed. */
export function yamuxMuxer(init: YamuxMuxerInit = {}): ReturnType<typeof yamux> {
  creditHalfWindows()
  return yamux(init)
}
