/**
 * A hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014): timestamps
 * `[wall, logical]` that never go backwards, stay within a bounded distance of physical time, and
 * order every event after everything its author had seen. A timestamp from another node that is
 * further ahead of our physical clock than `maxDrift` is refused (ClockDriftError), so one node
 * with a wrong clock, or a forger, cannot drag every replica's clock into the future.
 *
 * On the wire a timestamp is the dag-cbor array `[wall ms since the epoch, logical counter]`.
 *
 * @example
 * const clock = new Hlc()
 * const t = clock.tick()                // for a local event
 * clock.receive(remote.hlc)             // before accepting a remote one; throws ClockDriftError
 * compareHlc(t, remote.hlc)             // -1, 0 or 1
 */
import { isTimestamp, MAX_LOGICAL } from '../../protocols/log/codec.ts'
import { ClockDriftError, InvalidTimestampError } from './errors.ts'

export type HlcTimestamp = readonly [wall: number, logical: number]

/** Largest logical counter (the wire limit); past it the clock moves its wall part on by one millisecond instead. */
export { MAX_LOGICAL }
/** Default for how far ahead of our physical clock a remote timestamp may be, in ms. */
export const DEFAULT_MAX_DRIFT = 60_000

export interface HlcInit {
  /** Physical time in ms; default Date.now. Tests inject their own. */
  now?: () => number
  /** Largest accepted lead of a remote timestamp over `now()`, in ms; default 60 s. */
  maxDrift?: number
  /** The last timestamp issued before a restart, so the clock continues after it. */
  last?: HlcTimestamp
}

/** A well-formed timestamp: `[wall, logical]`, non-negative integers, logical ≤ MAX_LOGICAL. */
export const isHlc: (x: unknown) => x is HlcTimestamp = isTimestamp

export function checkHlc(x: unknown, field = 'hlc'): asserts x is HlcTimestamp {
  if (!isHlc(x)) {
    throw new InvalidTimestampError(`${field} must be [wall, logical]: non-negative integers, logical ≤ ${MAX_LOGICAL}`)
  }
}

/** A timestamp as text, `wall.logical`: the form the CLI prints and `--since` / `since=` take. */
export function formatHlc(hlc: HlcTimestamp): string {
  return `${hlc[0]}.${hlc[1]}`
}

/** `wall.logical`, or a bare wall in ms (logical 0), as a timestamp; undefined if it is neither. */
export function parseHlc(text: string): [number, number] | undefined {
  const match = /^(\d{1,15})(?:\.(\d{1,10}))?$/.exec(text)
  if (match == null) return undefined
  const wall = Number(match[1])
  const logical = match[2] === undefined ? 0 : Number(match[2])
  if (!Number.isSafeInteger(wall) || logical > MAX_LOGICAL) return undefined
  return [wall, logical]
}

export function compareHlc(a: HlcTimestamp, b: HlcTimestamp): -1 | 0 | 1 {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1
  if (a[1] !== b[1]) return a[1] < b[1] ? -1 : 1
  return 0
}

export class Hlc {
  private readonly now: () => number
  readonly maxDrift: number
  private wall = 0
  private logical = 0

  constructor(init: HlcInit = {}) {
    this.now = init.now ?? Date.now
    this.maxDrift = init.maxDrift ?? DEFAULT_MAX_DRIFT
    if (!Number.isSafeInteger(this.maxDrift) || this.maxDrift < 0) {
      throw new RangeError('maxDrift must be a non-negative integer of ms')
    }
    if (init.last != null) {
      checkHlc(init.last, 'last')
      ;[this.wall, this.logical] = init.last
    }
  }

  /** The last timestamp issued or received. */
  last(): HlcTimestamp {
    return [this.wall, this.logical]
  }

  /** A new timestamp for a local event: later than every one before it. */
  tick(): HlcTimestamp {
    const physical = this.physical()
    if (physical > this.wall) this.set(physical, 0)
    else this.set(this.wall, this.logical + 1)
    return this.last()
  }

  /** Throws ClockDriftError if `remote` is further ahead of physical time than maxDrift allows. */
  check(remote: HlcTimestamp): void {
    checkHlc(remote)
    const physical = this.physical()
    if (remote[0] > physical + this.maxDrift) {
      throw new ClockDriftError(
        `timestamp ${remote[0]} is ${remote[0] - physical} ms ahead of this clock (at most ${this.maxDrift} ms allowed)`
      )
    }
  }

  /** Moves the clock past a remote timestamp (after check), and returns the new local time. */
  receive(remote: HlcTimestamp): HlcTimestamp {
    this.check(remote)
    const physical = this.physical()
    const wall = Math.max(this.wall, remote[0], physical)
    if (wall === this.wall && wall === remote[0]) this.set(wall, Math.max(this.logical, remote[1]) + 1)
    else if (wall === this.wall) this.set(wall, this.logical + 1)
    else if (wall === remote[0]) this.set(wall, remote[1] + 1)
    else this.set(wall, 0)
    return this.last()
  }

  /**
   * Moves the clock past a timestamp already accepted earlier (e.g. while replaying a stored
   * log), without the drift check: that check was made when it arrived.
   */
  witness(t: HlcTimestamp): void {
    checkHlc(t)
    if (compareHlc(t, [this.wall, this.logical]) > 0) this.set(t[0], t[1])
  }

  private physical(): number {
    const t = Math.floor(this.now())
    if (!Number.isSafeInteger(t) || t < 0) throw new InvalidTimestampError(`physical clock returned ${t}`)
    return t
  }

  private set(wall: number, logical: number): void {
    // a counter at its limit moves the wall part on instead: still monotonic, still close to real time
    if (logical > MAX_LOGICAL) {
      wall += 1
      logical = 0
    }
    this.wall = wall
    this.logical = logical
  }
}
