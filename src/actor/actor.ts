/**
 * An actor: a behaviour that handles one message at a time from its own bounded mailbox. Each
 * handler call has a deadline; a handler that throws, rejects or misses it crashes the actor (the
 * caller of that message gets the error), and the actor's supervisor decides what follows. A
 * stalled handler stalls only its own actor: nothing here awaits across actors.
 *
 * The `Actor` object (and so its `ActorRef`) outlives restarts: a restart runs a fresh behaviour
 * from the same factory over the same mailbox, so messages queued during a crash are handled by
 * the next incarnation. When an actor stops for good, every message still queued is answered with
 * `ActorStoppedError` — nothing accepted is dropped silently.
 *
 * @example
 * const counter = await spawn(() => {
 *   let n = 0
 *   return { handle: (by: number) => (n += by) }
 * }, { name: 'counter', capacity: 100, handlerTimeout: 1_000 })
 * await counter.ask(2) // 2
 * await counter.tell(3) // resolves once handled
 * await counter.stop()
 */
import { defaultLogger } from '@libp2p/logger'
import { systemClock } from './clock.ts'
import {
  ActorCrashedError,
  ActorStoppedError,
  AskTimeoutError,
  HandlerTimeoutError,
  InvalidActorOptionError
} from './errors.ts'
import { DEFAULT_MAILBOX_CAPACITY, Mailbox, checkDelay } from './mailbox.ts'
import type { ActorClock, TimerHandle } from './clock.ts'
import type { AbortOptions, ComponentLogger, Logger } from '@libp2p/interface'

export type ActorState = 'starting' | 'running' | 'stopping' | 'stopped' | 'crashed'

/**
 * Why an incarnation ended: 'normal' (it stopped itself, or was stopped by its owner), 'shutdown'
 * (its supervisor stopped it), 'killed' (stopped without terminate: brutal_kill or a shutdown
 * timeout), or the error it crashed with.
 */
export type ExitReason = 'normal' | 'shutdown' | 'killed' | Error

/** Whether a transient child is restarted after this exit (OTP: anything but normal/shutdown). */
export const isAbnormal = (reason: ExitReason): boolean => reason !== 'normal' && reason !== 'shutdown'

/** The name of an exit reason: 'normal', 'shutdown', 'killed' or the error's name. */
export const reasonName = (reason: ExitReason): string => (typeof reason === 'string' ? reason : reason.name)

/** How a supervisor stops a child: wait up to ms for terminate then kill, kill at once, or wait. */
export type Shutdown = number | 'brutal_kill' | 'infinity'

export const DEFAULT_HANDLER_TIMEOUT = 30_000
export const DEFAULT_SHUTDOWN = 5_000

export interface ActorContext<M = unknown, R = unknown> {
  readonly name: string
  readonly self: ActorRef<M, R>
  /** 1 for the first start, +1 per restart. */
  readonly incarnation: number
  /** Aborted when this incarnation ends: crash, handler deadline, kill, or after terminate. */
  readonly signal: AbortSignal
  readonly clock: ActorClock
  readonly log: Logger
  /** Stops this actor after the current handler returns ('normal' unless told otherwise). */
  stop(reason?: 'normal' | 'shutdown'): void
}

/**
 * What an actor does. `init` runs at each (re)start before any message; `handle` answers one
 * message (its value is the answer to `ask`); `terminate` runs when the actor stops or crashes
 * (not when killed, nor after a failed init).
 */
export interface Behaviour<M = unknown, R = unknown> {
  init?(ctx: ActorContext<M, R>): void | Promise<void>
  handle(message: M, ctx: ActorContext<M, R>): R | Promise<R>
  terminate?(reason: ExitReason, ctx: ActorContext<M, R>): void | Promise<void>
}

export interface SendOptions extends AbortOptions {
  /** Wait up to this many ms for room when the mailbox is full; default 0: refuse at once. */
  waitForRoom?: number
}

export interface AskOptions extends SendOptions {
  /**
   * Give up (AskTimeoutError) if no answer within this many ms, counted from the call. A message
   * still queued then is taken out unhandled; one being handled is not interrupted.
   */
  timeout?: number
}

export interface ActorRef<M = unknown, R = unknown> {
  readonly name: string
  readonly state: ActorState
  /** One-way: resolves once handled, rejects with the handler's (or a named) error. */
  tell(message: M, options?: SendOptions): Promise<void>
  /** Request/response: resolves with the handler's value. */
  ask(message: M, options?: AskOptions): Promise<R>
}

export type ActorEvent =
  | { type: 'started'; name: string; incarnation: number }
  | { type: 'crashed'; name: string; incarnation: number; reason: Error }
  | { type: 'stopped'; name: string; incarnation: number; reason: ExitReason }

export interface ActorOptions {
  /** Used in errors, events and logs; default 'actor'. */
  name?: string
  /** Mailbox capacity: 1..1,000,000; default 1024. */
  capacity?: number
  /** Deadline of each handler call in ms; default 30 s. */
  handlerTimeout?: number
  /** Deadline of init in ms; default handlerTimeout. */
  initTimeout?: number
  clock?: ActorClock
  logger?: ComponentLogger
}

interface Envelope<M, R> {
  message: M
  settled: boolean
  resolve: (value: R) => void
  reject: (error: Error) => void
  cleanup?: () => void
}

interface Incarnation<M, R> {
  number: number
  behaviour?: Behaviour<M, R>
  ctx: ActorContext<M, R>
  controller: AbortController
  initDone: Promise<void>
  inFlight?: Envelope<M, R>
  idleWaiters: Array<() => void>
  /** Takes no more messages: a stop or a crash is underway. */
  stopping: boolean
  selfStop?: 'normal' | 'shutdown'
  /** Finished: nothing may act on it any more. */
  ended: boolean
  exitReported: boolean
  done: Promise<ExitReason>
  resolveDone: (reason: ExitReason) => void
}

/** Wraps whatever a behaviour threw as an Error (the exit reason of a crash). */
export function asError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown
  return new ActorCrashedError(`behaviour threw a non-error: ${String(thrown)}`, { cause: thrown })
}

/** Checks a child's or actor's shutdown option. */
export function checkShutdown(shutdown: unknown, field = 'shutdown'): Shutdown {
  if (shutdown === 'brutal_kill' || shutdown === 'infinity') return shutdown
  return checkDelay(shutdown, field)
}

export class Actor<M = unknown, R = unknown> implements ActorRef<M, R> {
  readonly name: string
  readonly handlerTimeout: number
  readonly initTimeout: number
  /**
   * Set by a supervisor: called when an incarnation ends by itself (crash or stop), not when the
   * supervisor shut it down. Without it, the actor closes its mailbox when it ends.
   */
  onExit?: (reason: ExitReason, incarnation: number) => void
  private readonly factory: () => Behaviour<M, R>
  private readonly mailbox: Mailbox<Envelope<M, R>>
  private readonly clock: ActorClock
  private readonly log: Logger
  private readonly listeners = new Set<(event: ActorEvent) => void>()
  private stateValue: ActorState = 'stopped'
  private incarnations = 0
  private current?: Incarnation<M, R>
  private lastExit?: ExitReason
  private pumping = false

  constructor(behaviour: () => Behaviour<M, R>, options: ActorOptions = {}) {
    if (typeof behaviour !== 'function')
      throw new InvalidActorOptionError('behaviour must be a function returning a behaviour')
    this.name = options.name ?? 'actor'
    this.factory = behaviour
    this.handlerTimeout = checkDelay(options.handlerTimeout ?? DEFAULT_HANDLER_TIMEOUT, 'handlerTimeout', 1)
    this.initTimeout = checkDelay(options.initTimeout ?? this.handlerTimeout, 'initTimeout', 1)
    this.clock = options.clock ?? systemClock
    this.log = (options.logger ?? defaultLogger()).forComponent(`cyberspace:actor:${this.name}`)
    this.mailbox = new Mailbox<Envelope<M, R>>({
      capacity: options.capacity ?? DEFAULT_MAILBOX_CAPACITY,
      name: `mailbox of ${this.name}`,
      clock: this.clock,
      onItem: () => this.pump()
    })
  }

  get state(): ActorState {
    return this.stateValue
  }

  /** Messages waiting (not counting the one being handled). */
  get queued(): number {
    return this.mailbox.size
  }

  get capacity(): number {
    return this.mailbox.capacity
  }

  /** Whether the actor stopped for good (its mailbox refuses everything). */
  get closed(): boolean {
    return this.mailbox.closed
  }

  /** Incarnations started so far (the current one's number while one runs). */
  get incarnation(): number {
    return this.incarnations
  }

  /** Why the last incarnation ended, if one did. */
  get exitReason(): ExitReason | undefined {
    return this.lastExit
  }

  /** Watches started / crashed / stopped; returns the function that stops watching. */
  on(listener: (event: ActorEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  tell(message: M, options?: SendOptions): Promise<void> {
    const handled = this.send(message, options).then(() => undefined)
    // one-way: a caller that does not await must not get an unhandled rejection; one that
    // awaits still sees the error
    handled.catch(() => {})
    return handled
  }

  ask(message: M, options?: AskOptions): Promise<R> {
    return this.send(message, options)
  }

  /**
   * Starts an incarnation: a fresh behaviour from the factory, then its init within the init
   * deadline. Rejects with init's error (the actor is then 'crashed', and no onExit is called: the
   * caller of start decides).
   */
  async start(): Promise<void> {
    if (this.mailbox.closed) throw new ActorStoppedError(this.name, 'closed')
    if (this.current !== undefined) throw new InvalidActorOptionError(`actor ${this.name} is already started`)
    let initDone!: () => void
    const inc = this.newIncarnation(new Promise<void>(resolve => (initDone = resolve)))
    this.current = inc
    this.setState('starting')
    try {
      const behaviour = this.factory()
      if (behaviour == null || typeof behaviour.handle !== 'function') {
        throw new InvalidActorOptionError(
          `the factory of actor ${this.name} returned no behaviour with a handle function`
        )
      }
      inc.behaviour = behaviour
      if (behaviour.init !== undefined) {
        await this.withDeadline(() => behaviour.init?.(inc.ctx), this.initTimeout, 'init', inc.controller.signal)
      }
    } catch (thrown) {
      const reason = asError(thrown)
      initDone()
      if (inc.ended) throw new ActorStoppedError(this.name, reasonName(this.lastExit ?? 'killed'))
      this.finish(inc, reason, 'crashed')
      throw reason
    }
    initDone()
    if (inc.ended) throw new ActorStoppedError(this.name, reasonName(this.lastExit ?? 'killed'))
    if (inc.stopping) return // a stop came during init; it proceeds now
    this.setState('running')
    this.emit({ type: 'started', name: this.name, incarnation: inc.number })
    if (inc.selfStop !== undefined) this.stopSelf(inc)
    else this.pump()
  }

  /**
   * Ends the current incarnation on its owner's request: waits for the message being handled,
   * runs terminate(reason), and kills it if that takes longer than `mode` ms ('brutal_kill': at
   * once, without terminate; 'infinity': waits as long as it takes). The mailbox stays open for
   * the next incarnation. Resolves with how it ended.
   */
  async shutdown(mode: Shutdown = DEFAULT_SHUTDOWN, reason: ExitReason = 'shutdown'): Promise<ExitReason> {
    checkShutdown(mode)
    const inc = this.current
    if (inc === undefined) return this.lastExit ?? reason
    if (mode === 'brutal_kill') {
      this.kill(inc)
      return await inc.done
    }
    if (!inc.stopping) {
      inc.stopping = true
      this.setState('stopping')
      void this.stopGracefully(inc, reason)
    }
    let timer: TimerHandle | undefined
    if (mode !== 'infinity') timer = this.clock.setTimeout(() => this.kill(inc), mode)
    try {
      return await inc.done
    } finally {
      if (timer !== undefined) this.clock.clearTimeout(timer)
    }
  }

  /**
   * Stops the actor as its owner: like shutdown with reason 'normal'. Unsupervised, it then
   * closes the mailbox (queued messages get ActorStoppedError); supervised, the supervisor hears
   * of a normal exit and applies the child's restart type.
   */
  async stop(options: { shutdown?: Shutdown } = {}): Promise<void> {
    const inc = this.current
    if (inc === undefined) {
      if (this.onExit === undefined) this.close('normal')
      return
    }
    const reason = await this.shutdown(options.shutdown ?? DEFAULT_SHUTDOWN, 'normal')
    this.reportExit(inc, reason)
  }

  /**
   * Stops for good: refuses new messages and answers every queued one with ActorStoppedError.
   * Kills a running incarnation first (supervisors shut it down before closing).
   */
  close(reason: ExitReason = 'shutdown'): void {
    if (this.current !== undefined) this.kill(this.current)
    const error = new ActorStoppedError(this.name, reasonName(reason))
    for (const envelope of this.mailbox.close(error)) this.settle(envelope, error)
  }

  private newIncarnation(initDone: Promise<void>): Incarnation<M, R> {
    const controller = new AbortController()
    let resolveDone!: (reason: ExitReason) => void
    const done = new Promise<ExitReason>(resolve => (resolveDone = resolve))
    const inc: Incarnation<M, R> = {
      number: ++this.incarnations,
      controller,
      initDone,
      idleWaiters: [],
      stopping: false,
      ended: false,
      exitReported: false,
      done,
      resolveDone,
      ctx: undefined as unknown as ActorContext<M, R>
    }
    inc.ctx = {
      name: this.name,
      self: this,
      incarnation: inc.number,
      signal: controller.signal,
      clock: this.clock,
      log: this.log,
      stop: (reason = 'normal') => {
        if (inc.ended || inc.stopping || inc.selfStop !== undefined) return
        inc.selfStop = reason
        if (inc.inFlight === undefined && this.stateValue === 'running' && this.current === inc) this.stopSelf(inc)
      }
    }
    return inc
  }

  private send(message: M, options: AskOptions = {}): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (options.signal?.aborted === true) {
        reject(options.signal.reason)
        return
      }
      const envelope: Envelope<M, R> = { message, settled: false, resolve, reject }
      let timer: TimerHandle | undefined
      const giveUp = (error: Error): void => {
        if (envelope.settled) return
        this.mailbox.remove(envelope)
        this.settle(envelope, error)
      }
      const onAbort = (): void => giveUp(options.signal?.reason)
      if (options.timeout !== undefined) {
        const timeout = checkDelay(options.timeout, 'timeout', 1)
        timer = this.clock.setTimeout(() => giveUp(new AskTimeoutError(this.name, timeout)), timeout)
      }
      options.signal?.addEventListener('abort', onAbort, { once: true })
      envelope.cleanup = () => {
        if (timer !== undefined) this.clock.clearTimeout(timer)
        options.signal?.removeEventListener('abort', onAbort)
      }
      const waitForRoom = options.waitForRoom ?? 0
      if (waitForRoom > 0) {
        this.mailbox
          .put(envelope, { timeout: waitForRoom, signal: options.signal })
          .catch((error: Error) => this.settle(envelope, error))
      } else {
        try {
          this.mailbox.offer(envelope)
        } catch (error) {
          this.settle(envelope, error as Error)
        }
      }
    })
  }

  private settle(envelope: Envelope<M, R>, outcome: Error | { value: R }): void {
    if (envelope.settled) return
    envelope.settled = true
    envelope.cleanup?.()
    if (outcome instanceof Error) envelope.reject(outcome)
    else envelope.resolve(outcome.value)
  }

  /** Starts the next handler if the actor is running and idle. */
  private pump(): void {
    const inc = this.current
    if (inc === undefined || this.stateValue !== 'running' || inc.inFlight !== undefined || inc.stopping) return
    if (inc.selfStop !== undefined || inc.ended || this.pumping) return
    // taking admits a waiting put, whose onItem calls pump again: not while this one takes
    this.pumping = true
    let envelope: Envelope<M, R> | undefined
    try {
      do envelope = this.mailbox.take()
      while (envelope !== undefined && envelope.settled)
    } finally {
      this.pumping = false
    }
    if (envelope === undefined) return
    const behaviour = inc.behaviour as Behaviour<M, R>
    const message = envelope.message
    inc.inFlight = envelope
    this.withDeadline(
      () => behaviour.handle(message, inc.ctx),
      this.handlerTimeout,
      'handler',
      inc.controller.signal
    ).then(
      value => this.handled(inc, envelope, { value }),
      (thrown: unknown) => this.handled(inc, envelope, asError(thrown))
    )
  }

  private handled(inc: Incarnation<M, R>, envelope: Envelope<M, R>, outcome: Error | { value: R }): void {
    if (inc.ended || inc.inFlight !== envelope) return // killed meanwhile: the caller was answered
    inc.inFlight = undefined
    this.settle(envelope, outcome)
    if (inc.stopping) {
      for (const wake of inc.idleWaiters.splice(0)) wake()
      return
    }
    if (outcome instanceof Error) {
      this.crash(inc, outcome)
      return
    }
    if (inc.selfStop !== undefined) this.stopSelf(inc)
    else this.pump()
  }

  /**
   * Runs fn within ms: the deadline rejects with HandlerTimeoutError, and `signal` (the
   * incarnation's, for handlers and init) rejects at once when the incarnation ends, so no timer
   * outlives it.
   */
  private withDeadline<T>(
    fn: () => T | Promise<T>,
    ms: number,
    what: 'handler' | 'init' | 'terminate',
    signal?: AbortSignal
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        this.clock.clearTimeout(timer)
        reject(signal?.reason)
      }
      const timer = this.clock.setTimeout(() => {
        signal?.removeEventListener('abort', onAbort)
        reject(new HandlerTimeoutError(this.name, ms, what))
      }, ms)
      signal?.addEventListener('abort', onAbort, { once: true })
      Promise.resolve()
        .then(fn)
        .then(
          value => {
            this.clock.clearTimeout(timer)
            signal?.removeEventListener('abort', onAbort)
            resolve(value)
          },
          (thrown: unknown) => {
            this.clock.clearTimeout(timer)
            signal?.removeEventListener('abort', onAbort)
            reject(asError(thrown))
          }
        )
    })
  }

  private crash(inc: Incarnation<M, R>, reason: Error): void {
    inc.stopping = true
    this.log('actor %s crashed: %e', this.name, reason)
    inc.controller.abort(reason)
    this.setState('stopping')
    void this.terminate(inc, reason, this.handlerTimeout).then(() => {
      if (this.finish(inc, reason, 'crashed')) this.reportExit(inc, reason)
    })
  }

  private stopSelf(inc: Incarnation<M, R>): void {
    const reason = inc.selfStop ?? 'normal'
    inc.stopping = true
    this.setState('stopping')
    void this.terminate(inc, reason, this.handlerTimeout).then(() => {
      if (this.finish(inc, reason, 'stopped')) this.reportExit(inc, reason)
    })
  }

  private async stopGracefully(inc: Incarnation<M, R>, reason: ExitReason): Promise<void> {
    await inc.initDone
    if (inc.ended) return
    if (inc.inFlight !== undefined) await new Promise<void>(resolve => inc.idleWaiters.push(resolve))
    if (inc.ended) return
    const behaviour = inc.behaviour
    if (behaviour?.terminate !== undefined) {
      try {
        await behaviour.terminate(reason, inc.ctx)
      } catch (error) {
        this.log.error('terminate of actor %s failed: %e', this.name, error)
      }
    }
    this.finish(inc, reason, 'stopped')
  }

  /** Runs terminate (after a crash or a self-stop) within ms; its failures are logged. */
  private async terminate(inc: Incarnation<M, R>, reason: ExitReason, ms: number): Promise<void> {
    const behaviour = inc.behaviour
    if (behaviour?.terminate === undefined) return
    try {
      await this.withDeadline(() => behaviour.terminate?.(reason, inc.ctx), ms, 'terminate')
    } catch (error) {
      this.log.error('terminate of actor %s failed: %e', this.name, error)
    }
  }

  /** Ends the incarnation at once: no terminate; the message being handled gets ActorStoppedError. */
  private kill(inc: Incarnation<M, R>): void {
    if (inc.ended) return
    const inFlight = inc.inFlight
    inc.inFlight = undefined
    this.finish(inc, 'killed', 'stopped')
    if (inFlight !== undefined) this.settle(inFlight, new ActorStoppedError(this.name, 'killed'))
  }

  /** Marks the incarnation ended (once); false if it already was. */
  private finish(inc: Incarnation<M, R>, reason: ExitReason, state: 'stopped' | 'crashed'): boolean {
    if (inc.ended) return false
    inc.ended = true
    inc.stopping = true
    if (!inc.controller.signal.aborted) {
      inc.controller.abort(reason instanceof Error ? reason : new ActorStoppedError(this.name, reason))
    }
    for (const wake of inc.idleWaiters.splice(0)) wake()
    if (this.current === inc) this.current = undefined
    this.lastExit = reason
    this.setState(state)
    if (state === 'crashed') {
      this.emit({ type: 'crashed', name: this.name, incarnation: inc.number, reason: reason as Error })
    } else {
      this.emit({ type: 'stopped', name: this.name, incarnation: inc.number, reason })
    }
    inc.resolveDone(reason)
    return true
  }

  private reportExit(inc: Incarnation<M, R>, reason: ExitReason): void {
    if (inc.exitReported) return
    inc.exitReported = true
    if (this.onExit !== undefined) this.onExit(reason, inc.number)
    else this.close(reason)
  }

  private setState(state: ActorState): void {
    this.stateValue = state
  }

  private emit(event: ActorEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event)
      } catch (error) {
        this.log.error('a listener of actor %s threw: %e', this.name, error)
      }
    }
  }
}

/** Creates and starts an unsupervised actor; rejects with init's error if it fails to start. */
export async function spawn<M, R>(behaviour: () => Behaviour<M, R>, options: ActorOptions = {}): Promise<Actor<M, R>> {
  const actor = new Actor(behaviour, options)
  try {
    await actor.start()
  } catch (error) {
    actor.close(asError(error))
    throw error
  }
  return actor
}
