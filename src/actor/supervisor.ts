/**
 * Supervisors with Erlang/OTP's semantics: children start in order and stop in reverse; a child
 * that exits is restarted according to the supervisor's strategy and the child's restart type;
 * more than `intensity` restarts within `period` ms make the supervisor shut its children down
 * and exit with RestartIntensityError, which its parent supervisor sees as a crash of that child
 * (escalation). Restarts may wait a backoff with jitter (Akka's restartWithBackoff).
 *
 * Strategies: one_for_one restarts the child that exited; one_for_all stops the others (reverse
 * order) and restarts all (in order); rest_for_one stops and restarts the children started after
 * it as well; simple_one_for_one is a pool of children from one spec, added with
 * `startChild(args)`, each restarted alone.
 *
 * Restart types: permanent (always restarted), transient (only after an abnormal exit: anything
 * but 'normal' or 'shutdown'), temporary (never). A child that is not restarted is removed, and
 * its mailbox answers what it still holds with ActorStoppedError.
 *
 * @example
 * const sup = new Supervisor({
 *   name: 'root',
 *   strategy: 'one_for_one',
 *   intensity: 3,
 *   period: 10_000,
 *   children: [{ id: 'cache', behaviour: () => cacheBehaviour(), backoff: { min: 100, max: 5_000 } }]
 * })
 * sup.on(event => console.log(event.type, event.path.join('/')))
 * await sup.start()
 * await sup.ref('cache')?.ask({ get: 'k' })
 * await sup.stop()
 */
import { defaultLogger } from '@libp2p/logger'
import { Actor, DEFAULT_SHUTDOWN, checkShutdown, isAbnormal } from './actor.ts'
import { Backoff, checkBackoff } from './backoff.ts'
import { systemClock } from './clock.ts'
import {
  ActorStoppedError,
  ChildIdError,
  ChildStartError,
  InvalidActorOptionError,
  RestartIntensityError,
  SupervisorStoppedError
} from './errors.ts'
import { checkDelay } from './mailbox.ts'
import type { ActorOptions, ActorRef, Behaviour, ExitReason, Shutdown } from './actor.ts'
import type { BackoffOptions } from './backoff.ts'
import type { ActorClock, TimerHandle } from './clock.ts'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one' | 'simple_one_for_one'
export type RestartType = 'permanent' | 'transient' | 'temporary'

export const DEFAULT_INTENSITY = 1
export const DEFAULT_PERIOD = 5_000
export const MAX_INTENSITY = 1_000
export const DEFAULT_MAX_CHILDREN = 10_000

interface ChildSpecBase {
  /** Unique among the supervisor's children; printable ASCII, 1..256 characters. */
  id: string
  /** Default 'permanent'. */
  restart?: RestartType
  /** Default 5,000 ms for a worker, 'infinity' for a supervisor (as OTP). */
  shutdown?: Shutdown
  /** Delay restarts of this child; default none (restart at once). */
  backoff?: BackoffOptions
}

/** A worker child: an actor running `behaviour(args)`, a fresh one at each restart. */
export interface WorkerSpec<A = any, M = any, R = any> extends ChildSpecBase {
  type?: 'worker'
  behaviour: (args: A) => Behaviour<M, R>
  /** Mailbox capacity and deadlines of the child's actor. */
  actor?: Pick<ActorOptions, 'capacity' | 'handlerTimeout' | 'initTimeout'>
}

/** A supervisor child: a nested supervisor, created anew (with fresh children) at each restart. */
export interface SupervisorSpec<A = any> extends ChildSpecBase {
  type: 'supervisor'
  supervisor: (args: A) => SupervisorOptions
}

export type ChildSpec<A = any> = WorkerSpec<A> | SupervisorSpec<A>

export interface SupervisorOptions {
  /** Default 'supervisor'; a nested supervisor is named by its child id. */
  name?: string
  /** Default 'one_for_one'. */
  strategy?: Strategy
  /** Restarts allowed within `period` (0..1000); default 1, as OTP. */
  intensity?: number
  /** In ms; default 5,000, as OTP. */
  period?: number
  /** Started in this order by start(), stopped in reverse (not for simple_one_for_one). */
  children?: ChildSpec[]
  /** simple_one_for_one: the spec every `startChild(args)` instantiates. */
  template?: ChildSpec
  /** Most children at once; default 10,000. */
  maxChildren?: number
  clock?: ActorClock
  logger?: ComponentLogger
}

export type SupervisorState = 'starting' | 'running' | 'stopping' | 'stopped' | 'crashed'

/**
 * What a supervision tree reports. `path` runs from the root supervisor's name to the child's
 * id. `restarted` comes when a restarted child runs again, with the consecutive attempt number of
 * the child whose exit caused it and the backoff delay it waited; `escalated` comes from a
 * supervisor that exceeded its restart intensity, just before its parent hears of its exit.
 */
export type SupervisionEvent =
  | { type: 'started'; path: readonly string[] }
  | { type: 'crashed'; path: readonly string[]; reason: Error }
  | { type: 'stopped'; path: readonly string[]; reason: ExitReason }
  | { type: 'restarted'; path: readonly string[]; attempt: number; delay: number }
  | { type: 'escalated'; path: readonly string[]; reason: RestartIntensityError }

export type ChildStatus = 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped'

export interface ChildInfo {
  id: string
  type: 'worker' | 'supervisor'
  status: ChildStatus
  /** Restarts so far. */
  restarts: number
  /** A worker's actor: the same ref across restarts. */
  ref?: ActorRef
  /** A supervisor child's current incarnation. */
  supervisor?: Supervisor
}

interface ChildRecord {
  id: string
  spec: ChildSpec
  args: unknown
  type: 'worker' | 'supervisor'
  restart: RestartType
  shutdown: Shutdown
  backoff: Backoff
  status: ChildStatus
  restarts: number
  actor?: Actor
  supervisor?: Supervisor
  /** The actor incarnation whose exit counts (older ones' late exits are ignored). */
  incarnation: number
  restartTimer?: TimerHandle
  pending?: { attempt: number; delay: number }
}

/** How a nested supervisor reports to its parent. */
interface Parent {
  path: readonly string[]
  emit: (event: SupervisionEvent) => void
  onExit: (reason: Error) => void
}

const CHILD_ID = /^[\x21-\x7e]{1,256}$/
const STRATEGIES: readonly string[] = ['one_for_one', 'one_for_all', 'rest_for_one', 'simple_one_for_one']
const RESTARTS: readonly string[] = ['permanent', 'transient', 'temporary']

function checkSpec(spec: ChildSpec): void {
  if (spec == null || typeof spec !== 'object') throw new InvalidActorOptionError('a child spec must be an object')
  if (typeof spec.id !== 'string' || !CHILD_ID.test(spec.id)) {
    throw new InvalidActorOptionError(`child id must be 1..256 printable ASCII characters, got ${String(spec.id)}`)
  }
  if (spec.restart !== undefined && !RESTARTS.includes(spec.restart)) {
    throw new InvalidActorOptionError(`restart of child ${spec.id} must be one of ${RESTARTS.join(', ')}`)
  }
  if (spec.shutdown !== undefined) checkShutdown(spec.shutdown, `shutdown of child ${spec.id}`)
  if (spec.backoff !== undefined) checkBackoff(spec.backoff)
  if (spec.type === 'supervisor') {
    if (typeof spec.supervisor !== 'function')
      throw new InvalidActorOptionError(`child ${spec.id}: supervisor must be a function`)
  } else if (typeof spec.behaviour !== 'function') {
    throw new InvalidActorOptionError(`child ${spec.id}: behaviour must be a function`)
  }
}

export class Supervisor {
  readonly name: string
  readonly strategy: Strategy
  readonly intensity: number
  readonly period: number
  readonly path: readonly string[]
  private readonly staticSpecs: ChildSpec[]
  private readonly template?: ChildSpec
  private readonly maxChildren: number
  private readonly clock: ActorClock
  private readonly logger?: ComponentLogger
  private readonly log: Logger
  private readonly parent?: Parent
  private readonly listeners = new Set<(event: SupervisionEvent) => void>()
  private readonly records: ChildRecord[] = []
  private stateValue: SupervisorState = 'stopped'
  private started = false
  private restartTimes: number[] = []
  private queue: Promise<void> = Promise.resolve()
  private poolCount = 0
  private finished?: Promise<void>
  private killing = false
  private exitReason?: Error

  constructor(options: SupervisorOptions = {}, parent?: Parent) {
    this.name = options.name ?? 'supervisor'
    const strategy = options.strategy ?? 'one_for_one'
    if (!STRATEGIES.includes(strategy))
      throw new InvalidActorOptionError(`strategy must be one of ${STRATEGIES.join(', ')}`)
    this.strategy = strategy
    const intensity = options.intensity ?? DEFAULT_INTENSITY
    if (!Number.isInteger(intensity) || intensity < 0 || intensity > MAX_INTENSITY) {
      throw new InvalidActorOptionError(`intensity must be an integer in 0..${MAX_INTENSITY}, got ${String(intensity)}`)
    }
    this.intensity = intensity
    this.period = checkDelay(options.period ?? DEFAULT_PERIOD, 'period', 1)
    const maxChildren = options.maxChildren ?? DEFAULT_MAX_CHILDREN
    if (!Number.isInteger(maxChildren) || maxChildren < 1 || maxChildren > 1_000_000) {
      throw new InvalidActorOptionError(`maxChildren must be an integer in 1..1000000, got ${String(maxChildren)}`)
    }
    this.maxChildren = maxChildren
    if (strategy === 'simple_one_for_one') {
      if (options.template === undefined)
        throw new InvalidActorOptionError('simple_one_for_one needs a template child spec')
      if ((options.children ?? []).length > 0)
        throw new InvalidActorOptionError('simple_one_for_one takes no static children')
      checkSpec(options.template)
      this.template = options.template
    } else if (options.template !== undefined) {
      throw new InvalidActorOptionError('only simple_one_for_one takes a template')
    }
    this.staticSpecs = [...(options.children ?? [])]
    const ids = new Set<string>()
    for (const spec of this.staticSpecs) {
      checkSpec(spec)
      if (ids.has(spec.id)) throw new ChildIdError(`two children named ${spec.id}`)
      ids.add(spec.id)
    }
    if (this.staticSpecs.length > maxChildren) throw new InvalidActorOptionError(`more than ${maxChildren} children`)
    this.clock = options.clock ?? systemClock
    this.logger = options.logger
    this.log = (options.logger ?? defaultLogger()).forComponent(`cyberspace:actor:supervisor:${this.name}`)
    this.parent = parent
    this.path = parent === undefined ? [this.name] : [...parent.path, this.name]
  }

  get state(): SupervisorState {
    return this.stateValue
  }

  /** Why the supervisor exited, if it escalated. */
  get escalation(): Error | undefined {
    return this.exitReason
  }

  /** Watches this supervisor's tree (nested supervisors included). Returns the unsubscribe. */
  on(listener: (event: SupervisionEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** The children in start order. */
  children(): ChildInfo[] {
    return this.records.map(r => ({
      id: r.id,
      type: r.type,
      status: r.status,
      restarts: r.restarts,
      ref: r.actor,
      supervisor: r.supervisor
    }))
  }

  /** The actor of worker child `id` (stable across its restarts). */
  ref<M = unknown, R = unknown>(id: string): ActorRef<M, R> | undefined {
    return this.records.find(r => r.id === id)?.actor as ActorRef<M, R> | undefined
  }

  /** The current incarnation of supervisor child `id`. */
  child(id: string): Supervisor | undefined {
    return this.records.find(r => r.id === id)?.supervisor
  }

  /**
   * Starts the static children in order. If one fails to start, those already started are shut
   * down in reverse order and this rejects with ChildStartError.
   */
  async start(): Promise<void> {
    if (this.started) throw new InvalidActorOptionError(`supervisor ${this.name} was started before`)
    this.started = true
    this.stateValue = 'starting'
    // through the queue, so a child that exits while later ones start is handled once all run
    await this.enqueue(async () => await this.startStatic())
  }

  private async startStatic(): Promise<void> {
    for (const spec of this.staticSpecs) {
      if (this.stateValue !== 'starting') break
      const record = this.newRecord(spec, undefined, spec.id)
      this.records.push(record)
      try {
        await this.startRecord(record)
      } catch (error) {
        this.removeRecord(record, error as Error)
        if (this.stateValue === 'starting') {
          await this.shutdown('infinity')
          throw new ChildStartError(spec.id, error)
        }
        break
      }
      if (this.stateValue !== 'starting') break
      this.emitEvent({ type: 'started', path: this.childPath(record) })
    }
    if (this.stateValue !== 'starting') {
      await this.finished
      throw new SupervisorStoppedError(`supervisor ${this.name} stopped while starting`)
    }
    this.stateValue = 'running'
  }

  /**
   * Adds and starts a child: for simple_one_for_one, `startChild(args)` instantiates the
   * template with args (the child's id is `<template id>-<n>`); otherwise the argument is a child
   * spec. Rejects with ChildStartError if it fails to start (it is then not kept).
   */
  async startChild(specOrArgs: unknown): Promise<ChildInfo> {
    return await this.enqueue(async () => {
      if (this.stateValue !== 'running')
        throw new SupervisorStoppedError(`supervisor ${this.name} is ${this.stateValue}`)
      if (this.records.length >= this.maxChildren) {
        throw new InvalidActorOptionError(`supervisor ${this.name} already has ${this.maxChildren} children`)
      }
      let record: ChildRecord
      if (this.template !== undefined) {
        record = this.newRecord(this.template, specOrArgs, `${this.template.id}-${++this.poolCount}`)
      } else {
        const spec = specOrArgs as ChildSpec
        checkSpec(spec)
        if (this.records.some(r => r.id === spec.id))
          throw new ChildIdError(`supervisor ${this.name} has a child ${spec.id}`)
        record = this.newRecord(spec, undefined, spec.id)
      }
      this.records.push(record)
      try {
        await this.startRecord(record)
      } catch (error) {
        this.removeRecord(record, error as Error)
        throw new ChildStartError(record.id, error)
      }
      this.emitEvent({ type: 'started', path: this.childPath(record) })
      return this.children().find(c => c.id === record.id) as ChildInfo
    })
  }

  /** Stops child `id` with its shutdown spec and removes it (it is not restarted). */
  async terminateChild(id: string): Promise<void> {
    await this.enqueue(async () => {
      const record = this.records.find(r => r.id === id)
      if (record === undefined) throw new ChildIdError(`supervisor ${this.name} has no child ${id}`)
      const reason = await this.stopRecord(record, record.shutdown)
      this.removeRecord(record, reason ?? 'shutdown')
      if (reason !== undefined) this.emitEvent({ type: 'stopped', path: this.childPath(record), reason })
    })
  }

  /** Stops every child in reverse start order (each with its shutdown spec), then itself. */
  async stop(): Promise<void> {
    await this.shutdown('infinity')
  }

  /**
   * How a parent stops this supervisor: children in reverse order; after `mode` ms (or at once
   * for 'brutal_kill') the rest are killed. Resolves with 'shutdown' or 'killed'.
   */
  async shutdown(mode: Shutdown = 'infinity'): Promise<ExitReason> {
    checkShutdown(mode)
    if (this.finished === undefined) {
      this.stateValue = 'stopping'
      this.finished = this.stopAll().then(() => {
        if (this.stateValue === 'stopping') this.stateValue = 'stopped'
      })
    }
    if (mode === 'brutal_kill') this.killAll()
    let timer: TimerHandle | undefined
    if (typeof mode === 'number') timer = this.clock.setTimeout(() => this.killAll(), mode)
    try {
      await this.finished
    } finally {
      if (timer !== undefined) this.clock.clearTimeout(timer)
    }
    return this.killing ? 'killed' : 'shutdown'
  }

  private childPath(record: ChildRecord): string[] {
    return [...this.path, record.id]
  }

  private newRecord(spec: ChildSpec, args: unknown, id: string): ChildRecord {
    const type = spec.type === 'supervisor' ? 'supervisor' : 'worker'
    const record: ChildRecord = {
      id,
      spec,
      args,
      type,
      restart: spec.restart ?? 'permanent',
      shutdown: spec.shutdown ?? (type === 'supervisor' ? 'infinity' : DEFAULT_SHUTDOWN),
      backoff: new Backoff(spec.backoff, this.clock, this.period),
      status: 'stopped',
      restarts: 0,
      incarnation: 0
    }
    if (spec.type !== 'supervisor') {
      const worker = spec
      const actor = new Actor(() => worker.behaviour(args), {
        ...worker.actor,
        name: [...this.path, id].join('/'),
        clock: this.clock,
        logger: this.logger
      })
      actor.onExit = (reason, incarnation) => {
        void this.enqueue(async () => await this.childExited(record, incarnation, reason)).catch(error =>
          this.log.error('handling the exit of %s failed: %e', id, error)
        )
      }
      record.actor = actor
    }
    return record
  }

  /** Starts (or restarts) a child; rejects if its init (or its own children's) fails. */
  private async startRecord(record: ChildRecord): Promise<void> {
    record.status = 'starting'
    if (record.actor !== undefined) {
      await record.actor.start()
      record.incarnation = record.actor.incarnation
    } else {
      const spec = record.spec as SupervisorSpec
      const child: Supervisor = new Supervisor(
        { ...spec.supervisor(record.args), name: record.id, clock: this.clock, logger: this.logger },
        {
          path: this.path,
          emit: event => this.emitEvent(event),
          onExit: reason => {
            void this.enqueue(async () => {
              if (record.supervisor === child) await this.childExited(record, record.incarnation, reason)
            }).catch(error => this.log.error('handling the exit of %s failed: %e', record.id, error))
          }
        }
      )
      record.supervisor = child
      record.incarnation++
      await child.start()
    }
    if (record.status === 'starting') record.status = 'running'
    record.backoff.started()
  }

  /** Shuts a child down (no restart follows); undefined if it was not running. */
  private async stopRecord(record: ChildRecord, mode: Shutdown): Promise<ExitReason | undefined> {
    if (record.restartTimer !== undefined) {
      this.clock.clearTimeout(record.restartTimer)
      record.restartTimer = undefined
    }
    const wasRunning = record.status === 'running' || record.status === 'starting' || record.status === 'stopping'
    record.status = 'stopping'
    let reason: ExitReason | undefined
    if (wasRunning && record.actor !== undefined) reason = await record.actor.shutdown(mode)
    else if (wasRunning && record.supervisor !== undefined) reason = await record.supervisor.shutdown(mode)
    record.status = 'stopped'
    return reason
  }

  /** Takes a child out for good; its mailbox answers what it holds with ActorStoppedError. */
  private removeRecord(record: ChildRecord, reason: ExitReason): void {
    if (record.restartTimer !== undefined) this.clock.clearTimeout(record.restartTimer)
    record.restartTimer = undefined
    record.status = 'stopped'
    record.actor?.close(reason)
    const i = this.records.indexOf(record)
    if (i >= 0) this.records.splice(i, 1)
  }

  /** A child ended by itself: restart it (and siblings, by strategy), remove it, or escalate. */
  private async childExited(record: ChildRecord, incarnation: number, reason: ExitReason): Promise<void> {
    if (this.stateValue !== 'running') return
    if (!this.records.includes(record) || record.status !== 'running' || record.incarnation !== incarnation) return
    record.status = 'stopped'
    const path = this.childPath(record)
    if (isAbnormal(reason)) {
      const error = reason instanceof Error ? reason : new ActorStoppedError(record.id, reason)
      this.emitEvent({ type: 'crashed', path, reason: error })
    } else {
      this.emitEvent({ type: 'stopped', path, reason })
    }
    await this.restartAfter(record, reason)
  }

  private async restartAfter(record: ChildRecord, reason: ExitReason): Promise<void> {
    const restart = record.restart === 'permanent' || (record.restart === 'transient' && isAbnormal(reason))
    if (!restart) {
      this.removeRecord(record, reason)
      return
    }
    if (!this.countRestart()) {
      await this.escalate(reason)
      return
    }
    const { attempt, delay } = record.backoff.next()
    const at = this.records.indexOf(record)
    let group: ChildRecord[]
    if (this.strategy === 'one_for_all') group = [...this.records]
    else if (this.strategy === 'rest_for_one') group = this.records.slice(at)
    else group = [record]
    // siblings stop in reverse start order; temporary ones are not restarted (as OTP)
    for (const sibling of [...group].reverse()) {
      if (sibling === record) continue
      if (sibling.status === 'running' || sibling.status === 'starting') {
        const why = await this.stopRecord(sibling, sibling.shutdown)
        if (why !== undefined) this.emitEvent({ type: 'stopped', path: this.childPath(sibling), reason: why })
      } else if (sibling.restartTimer !== undefined) {
        this.clock.clearTimeout(sibling.restartTimer)
        sibling.restartTimer = undefined
      }
      if (sibling.restart === 'temporary') this.removeRecord(sibling, 'shutdown')
      if (this.stateValue !== 'running') return
    }
    group = group.filter(r => this.records.includes(r))
    for (const member of group) {
      member.status = 'restarting'
      member.pending = { attempt, delay }
    }
    if (delay === 0) {
      await this.restartGroup(group)
      return
    }
    const timer = this.clock.setTimeout(() => {
      for (const member of group) if (member.restartTimer === timer) member.restartTimer = undefined
      void this.enqueue(async () => await this.restartGroup(group)).catch(error =>
        this.log.error('restarting %s failed: %e', record.id, error)
      )
    }, delay)
    for (const member of group) member.restartTimer = timer
  }

  /** Starts a group of restarting children in order; a failure there counts as that child's crash. */
  private async restartGroup(group: ChildRecord[]): Promise<void> {
    for (const member of group) {
      if (this.stateValue !== 'running') return
      if (!this.records.includes(member) || member.status !== 'restarting' || member.restartTimer !== undefined)
        continue
      const pending = member.pending ?? { attempt: 0, delay: 0 }
      member.pending = undefined
      try {
        await this.startRecord(member)
      } catch (error) {
        if (this.stateValue !== 'running') return
        member.status = 'stopped'
        member.restarts++
        this.emitEvent({ type: 'crashed', path: this.childPath(member), reason: error as Error })
        await this.restartAfter(member, error as Error)
        return
      }
      member.restarts++
      this.emitEvent({
        type: 'restarted',
        path: this.childPath(member),
        attempt: pending.attempt,
        delay: pending.delay
      })
    }
  }

  /** Records a restart now; false when that exceeds the intensity within the period. */
  private countRestart(): boolean {
    const now = this.clock.now()
    this.restartTimes = this.restartTimes.filter(t => now - t < this.period)
    this.restartTimes.push(now)
    return this.restartTimes.length <= this.intensity
  }

  private async escalate(cause: ExitReason): Promise<void> {
    const error = new RestartIntensityError(this.name, this.intensity, this.period, cause)
    this.exitReason = error
    this.log('supervisor %s exceeded its restart intensity: %e', this.name, error)
    await this.shutdown('infinity')
    this.stateValue = 'crashed'
    this.emitEvent({ type: 'escalated', path: this.path, reason: error })
    this.parent?.onExit(error)
  }

  /** Stops every child in reverse start order (all at once for a pool), then closes them. */
  private async stopAll(): Promise<void> {
    const stopOne = async (record: ChildRecord): Promise<void> => {
      const reason = await this.stopRecord(record, this.killing ? 'brutal_kill' : record.shutdown)
      this.removeRecord(record, reason ?? 'shutdown')
      if (reason !== undefined) this.emitEvent({ type: 'stopped', path: this.childPath(record), reason })
    }
    if (this.strategy === 'simple_one_for_one') {
      await Promise.all([...this.records].reverse().map(stopOne))
    } else {
      for (const record of [...this.records].reverse()) await stopOne(record)
    }
  }

  /** Kills every child at once (a shutdown timeout passed, or brutal_kill). */
  private killAll(): void {
    this.killing = true
    for (const record of [...this.records].reverse()) {
      if (record.restartTimer !== undefined) this.clock.clearTimeout(record.restartTimer)
      record.restartTimer = undefined
      if (record.actor !== undefined) void record.actor.shutdown('brutal_kill')
      else if (record.supervisor !== undefined) void record.supervisor.shutdown('brutal_kill')
    }
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const result = this.queue.then(op)
    this.queue = result.then(
      () => undefined,
      () => undefined
    )
    return result
  }

  private emitEvent(event: SupervisionEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event)
      } catch (error) {
        this.log.error('a listener of supervisor %s threw: %e', this.name, error)
      }
    }
    this.parent?.emit(event)
  }
}
