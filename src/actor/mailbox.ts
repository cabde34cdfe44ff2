/**
 * A bounded FIFO mailbox with backpressure. `offer` refuses at once with `MailboxFullError` when
 * the mailbox holds `capacity` items; `put` waits for room up to a deadline, then refuses the same
 * way. Nothing accepted is dropped: an item leaves only by `take`, `remove`, or `close`, which
 * hands every remaining item back to the caller so it can answer each one.
 *
 * @example
 * const box = new Mailbox<string>({ capacity: 2 })
 * box.offer('a'); box.offer('b')
 * box.offer('c')            // throws MailboxFullError (capacity 2)
 * box.take()                // 'a'
 * await box.put('c', { timeout: 100 }) // room now: accepted at once
 */
import { MAX_TIMER_MS, systemClock } from './clock.ts'
import { ActorStoppedError, InvalidActorOptionError, MailboxFullError } from './errors.ts'
import type { ActorClock } from './clock.ts'
import type { AbortOptions } from '@libp2p/interface'

/** Default capacity of an actor's mailbox. */
export const DEFAULT_MAILBOX_CAPACITY = 1024
/** Largest capacity a mailbox accepts (memory is the caller's to bound). */
export const MAX_MAILBOX_CAPACITY = 1_000_000
/** Most `put` callers that may wait for room at once; more are refused at once. */
export const MAX_WAITING_PUTS = 1024

export interface MailboxOptions {
  /** Items held at most: 1..MAX_MAILBOX_CAPACITY; default DEFAULT_MAILBOX_CAPACITY. */
  capacity?: number
  /** Name used in errors. */
  name?: string
  clock?: ActorClock
  /** Called (synchronously) whenever an item is accepted. */
  onItem?: () => void
}

export interface PutOptions extends AbortOptions {
  /** Longest wait for room in ms; 0 (the default) refuses at once like `offer`. */
  timeout?: number
}

interface WaitingPut<T> {
  item: T
  resolve: () => void
  reject: (error: Error) => void
  done: boolean
}

/** Checks a capacity option and returns it as an integer. */
export function checkCapacity(capacity: unknown, field = 'capacity'): number {
  if (typeof capacity !== 'number' || !Number.isInteger(capacity) || capacity < 1 || capacity > MAX_MAILBOX_CAPACITY) {
    throw new InvalidActorOptionError(
      `${field} must be an integer in 1..${MAX_MAILBOX_CAPACITY}, got ${String(capacity)}`
    )
  }
  return capacity
}

/** Checks a delay in ms: a finite integer in 0..MAX_TIMER_MS (or `min`..). */
export function checkDelay(ms: unknown, field: string, min = 0): number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < min || ms > MAX_TIMER_MS) {
    throw new InvalidActorOptionError(`${field} must be a number of ms in ${min}..${MAX_TIMER_MS}, got ${String(ms)}`)
  }
  return ms
}

export class Mailbox<T> {
  readonly capacity: number
  readonly name: string
  private readonly clock: ActorClock
  private readonly onItem?: () => void
  /** Items from `head` on are queued, oldest first. */
  private items: T[] = []
  private head = 0
  private readonly waiting: Array<WaitingPut<T>> = []
  private closedBy?: Error

  constructor(options: MailboxOptions = {}) {
    this.capacity = checkCapacity(options.capacity ?? DEFAULT_MAILBOX_CAPACITY)
    this.name = options.name ?? 'mailbox'
    this.clock = options.clock ?? systemClock
    this.onItem = options.onItem
  }

  /** Items queued (not counting puts still waiting for room). */
  get size(): number {
    return this.items.length - this.head
  }

  get closed(): boolean {
    return this.closedBy !== undefined
  }

  /** Queues `item` or throws: MailboxFullError when full, the close reason when closed. */
  offer(item: T): void {
    if (this.closedBy !== undefined) throw this.closedBy
    if (this.size >= this.capacity)
      throw new MailboxFullError(this.capacity, `${this.name} full (capacity ${this.capacity})`)
    this.items.push(item)
    this.onItem?.()
  }

  /**
   * Queues `item`, waiting up to `timeout` ms for room (callers are served in the order they
   * came); rejects with MailboxFullError if there is still no room then.
   */
  async put(item: T, options: PutOptions = {}): Promise<void> {
    options.signal?.throwIfAborted()
    const timeout = checkDelay(options.timeout ?? 0, 'timeout')
    if (this.closedBy !== undefined) throw this.closedBy
    if (this.size < this.capacity && this.waiting.length === 0) {
      this.offer(item)
      return
    }
    if (timeout === 0 || this.waiting.length >= MAX_WAITING_PUTS) {
      throw new MailboxFullError(this.capacity, `${this.name} full (capacity ${this.capacity})`)
    }
    await new Promise<void>((resolve, reject) => {
      const wait: WaitingPut<T> = { item, resolve, reject, done: false }
      const finish = (error?: Error): void => {
        if (wait.done) return
        wait.done = true
        this.clock.clearTimeout(timer)
        options.signal?.removeEventListener('abort', onAbort)
        const i = this.waiting.indexOf(wait)
        if (i >= 0) this.waiting.splice(i, 1)
        if (error === undefined) resolve()
        else reject(error)
      }
      const onAbort = (): void => finish(options.signal?.reason ?? new Error('aborted'))
      const timer = this.clock.setTimeout(
        () =>
          finish(
            new MailboxFullError(this.capacity, `${this.name} full (capacity ${this.capacity}) for ${timeout} ms`)
          ),
        timeout
      )
      options.signal?.addEventListener('abort', onAbort, { once: true })
      wait.resolve = () => finish()
      wait.reject = finish
      this.waiting.push(wait)
    })
  }

  /** The oldest item, or undefined when empty. */
  take(): T | undefined {
    if (this.size === 0) return undefined
    const item = this.items[this.head]
    this.items[this.head] = undefined as T
    this.head++
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    this.admitWaiting()
    return item
  }

  /** The oldest item without taking it. */
  peek(): T | undefined {
    return this.size === 0 ? undefined : this.items[this.head]
  }

  /** Takes `item` out wherever it is queued (a caller gave up); true if it was there. */
  remove(item: T): boolean {
    const i = this.items.indexOf(item, this.head)
    if (i < 0) return false
    this.items.splice(i, 1)
    this.admitWaiting()
    return true
  }

  /**
   * Refuses everything from now on with `reason` (waiting puts too) and returns the items still
   * queued, oldest first, for the caller to answer.
   */
  close(reason: Error = new ActorStoppedError(this.name, 'closed')): T[] {
    if (this.closedBy === undefined) this.closedBy = reason
    for (const wait of this.waiting.slice()) wait.reject(this.closedBy)
    const rest = this.items.slice(this.head)
    this.items = []
    this.head = 0
    return rest
  }

  private admitWaiting(): void {
    while (this.size < this.capacity && this.waiting.length > 0) {
      const wait = this.waiting[0]
      this.items.push(wait.item)
      wait.resolve()
      this.onItem?.()
    }
  }
}
