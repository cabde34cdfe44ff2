/**
 * Restart backoff with jitter, as Akka's restartWithBackoff(min, max, randomFactor): the n-th
 * consecutive restart of a child waits min(max, min · 2^(n−1)) · (1 + random · randomFactor) ms.
 * A child that ran for `resetAfter` ms before it exited starts again from the first delay.
 *
 * @example
 * const backoff = new Backoff({ min: 100, max: 1_000, randomFactor: 0.2 }, clock)
 * backoff.started()       // child is running
 * backoff.next()          // after a crash: { attempt: 1, delay: 100 … 120 }
 */
import { checkDelay } from './mailbox.ts'
import { InvalidActorOptionError } from './errors.ts'
import type { ActorClock } from './clock.ts'

export interface BackoffOptions {
  /** First delay in ms (> 0). */
  min: number
  /** Cap of the doubling in ms (≥ min); jitter may add up to `randomFactor` of it. */
  max: number
  /** Jitter: the delay is multiplied by 1 + random · randomFactor; 0..1, default 0.2. */
  randomFactor?: number
  /** A child that ran this long without exiting starts over at `min`; default `max`. */
  resetAfter?: number
}

/** Checks backoff options and fills the defaults. */
export function checkBackoff(options: BackoffOptions): Required<BackoffOptions> {
  const min = checkDelay(options.min, 'backoff.min', 1)
  const max = checkDelay(options.max, 'backoff.max', min)
  const randomFactor = options.randomFactor ?? 0.2
  if (typeof randomFactor !== 'number' || !(randomFactor >= 0 && randomFactor <= 1)) {
    throw new InvalidActorOptionError(`backoff.randomFactor must be in 0..1, got ${String(randomFactor)}`)
  }
  const resetAfter = checkDelay(options.resetAfter ?? max, 'backoff.resetAfter', 1)
  return { min, max, randomFactor, resetAfter }
}

/** The delay of the `attempt`-th consecutive restart (1-based) with jitter sample `random`. */
export function backoffDelay(attempt: number, options: Required<BackoffOptions>, random: number): number {
  const doublings = Math.min(Math.max(0, attempt - 1), 52)
  const base = Math.min(options.max, options.min * 2 ** doublings)
  return Math.round(base * (1 + random * options.randomFactor))
}

/** The consecutive-restart count of one child and the delay of its next restart. */
export class Backoff {
  private readonly options?: Required<BackoffOptions>
  private readonly resetAfter: number
  private readonly clock: ActorClock
  private consecutive = 0
  private startedAt?: number

  /**
   * Without options every restart is immediate (OTP), and attempts still count: they start over
   * after the child ran `resetAfter` ms (the supervisor passes its intensity period).
   */
  constructor(options: BackoffOptions | undefined, clock: ActorClock, resetAfter = 0) {
    this.options = options === undefined ? undefined : checkBackoff(options)
    this.resetAfter = this.options?.resetAfter ?? resetAfter
    this.clock = clock
  }

  /** The child (re)started now. */
  started(): void {
    this.startedAt = this.clock.now()
  }

  /** The child exited and will be restarted: the attempt number and the delay before it. */
  next(): { attempt: number; delay: number } {
    if (this.startedAt !== undefined && this.clock.now() - this.startedAt >= this.resetAfter) this.consecutive = 0
    this.startedAt = undefined
    this.consecutive++
    const delay = this.options === undefined ? 0 : backoffDelay(this.consecutive, this.options, this.clock.random())
    return { attempt: this.consecutive, delay }
  }
}
