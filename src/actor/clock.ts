/**
 * The time and randomness actors and supervisors use, injected so tests never wait on the wall
 * clock: `systemClock` in production, `ManualClock` in tests (time moves only when the test says).
 *
 * @example
 * const clock = new ManualClock({ random: () => 0.5 })
 * const sup = new Supervisor({ strategy: 'one_for_one', clock, children: [...] })
 * await clock.advance(1_000) // fires every timer due within the next second, in order
 */

export type TimerHandle = unknown

export interface ActorClock {
  /** Milliseconds; only differences matter. */
  now(): number
  setTimeout(fn: () => void, ms: number): TimerHandle
  clearTimeout(handle: TimerHandle): void
  /** Uniform in [0, 1): the jitter of restart backoff. */
  random(): number
}

/** The platform's clock and Math.random. */
export const systemClock: ActorClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: handle => globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>),
  random: () => Math.random()
}

/** Longest delay a platform timer holds (2^31 − 1 ms); longer deadlines are refused as options. */
export const MAX_TIMER_MS = 2_147_483_647

interface ManualTimer {
  id: number
  due: number
  fn: () => void
}

/** Runs queued promise callbacks: one macrotask turn drains every microtask queued before it. */
const turn = (): Promise<void> =>
  new Promise(resolve => {
    const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate
    if (typeof immediate === 'function') immediate(resolve)
    else globalThis.setTimeout(resolve, 0)
  })

export interface ManualClockOptions {
  /** Start time; default 1,000,000. */
  now?: number
  /** The jitter source; default always 0 (no jitter). */
  random?: () => number
}

/**
 * A clock that moves only when told. `advance(ms)` fires due timers one at a time in due order,
 * letting the promise callbacks each one causes run before the next, so a test reads like a
 * timeline.
 */
export class ManualClock implements ActorClock {
  private time: number
  private readonly timers: ManualTimer[] = []
  private nextId = 1
  private readonly randomSource: () => number

  constructor(options: ManualClockOptions = {}) {
    this.time = options.now ?? 1_000_000
    this.randomSource = options.random ?? (() => 0)
  }

  now(): number {
    return this.time
  }

  random(): number {
    return this.randomSource()
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = { id: this.nextId++, due: this.time + Math.max(0, ms), fn }
    this.timers.push(timer)
    return timer.id
  }

  clearTimeout(handle: TimerHandle): void {
    const i = this.timers.findIndex(t => t.id === handle)
    if (i >= 0) this.timers.splice(i, 1)
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.timers.length
  }

  /** When the earliest timer is due, or undefined when none is set. */
  nextDue(): number | undefined {
    let due: number | undefined
    for (const t of this.timers) if (due === undefined || t.due < due) due = t.due
    return due
  }

  /** Lets every pending promise callback run (a few event-loop turns; no time passes). */
  async settle(turns = 3): Promise<void> {
    for (let i = 0; i < turns; i++) await turn()
  }

  /**
   * Moves time forward by `ms`, firing each timer due by then in due order (ties in the order
   * they were set), settling promises before and after each. At most `maxTimers` fire.
   */
  async advance(ms: number, maxTimers = 100_000): Promise<void> {
    const target = this.time + Math.max(0, ms)
    await this.settle()
    for (let fired = 0; ; fired++) {
      let next: ManualTimer | undefined
      for (const t of this.timers) if (t.due <= target && (next === undefined || t.due < next.due)) next = t
      if (next === undefined) break
      if (fired >= maxTimers) throw new Error(`ManualClock.advance: more than ${maxTimers} timers fired`)
      this.timers.splice(this.timers.indexOf(next), 1)
      this.time = Math.max(this.time, next.due)
      next.fn()
      await this.settle()
    }
    this.time = target
    await this.settle()
  }
}
