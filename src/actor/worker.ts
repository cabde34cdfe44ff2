/**
 * CPU-bound behaviours in a worker (a worker thread in Node, a Web Worker in a browser), so a
 * busy handler does not stall the event loop every other actor runs on. The actor keeps its
 * mailbox, deadline and supervisor on the main side; each message crosses to the worker as
 * dag-cbor bytes of bounded size. When a handler misses its deadline the actor crashes and the
 * worker is terminated; the restart spawns a fresh worker.
 *
 * The platform is injected as a `WorkerHost` (node/worker-host.ts, browser/worker-host.ts); the
 * worker side runs `runWorker` over its end of the channel.
 *
 * The worker module exports (as `default` or `behaviour`) a `WorkerBehaviour` or a function of
 * the init args returning one. Messages, answers and args must be IPLD data (dag-cbor).
 *
 * @example
 * // hash.ts (runs in the worker)
 * export default (args: { rounds: number }) => ({ handle: (data: Uint8Array) => slowHash(data, args.rounds) })
 *
 * // main side
 * const host = nodeWorkerHost()
 * const sup = new Supervisor({ children: [{
 *   id: 'hasher',
 *   behaviour: () => workerBehaviour(host, new URL('./hash.ts', import.meta.url), { args: { rounds: 12 } }),
 *   actor: { handlerTimeout: 2_000 }
 * }] })
 */
import * as dagCbor from '@ipld/dag-cbor'
import { MAX_ERROR_MESSAGE, MAX_ERROR_NAME } from '../../protocols/wire.ts'
import { reasonName } from './actor.ts'
import { InvalidActorOptionError, MessageTooLargeError, WorkerCrashedError } from './errors.ts'
import type { ActorContext, Behaviour } from './actor.ts'

/** Default bound of one message or answer crossing the worker boundary (encoded). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
/** Largest bound one may set. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024

/** The main thread's handle on one worker. */
export interface WorkerHandle {
  /** Sends bytes to the worker (the buffer may be transferred). */
  post(data: Uint8Array): void
  /** Each message the worker sends. */
  onMessage(listener: (data: unknown) => void): void
  /** Called once if the worker fails or exits without being terminated. */
  onExit(listener: (error: Error) => void): void
  /** Stops the worker at once, whatever it is doing. */
  terminate(): Promise<void>
}

/** What a platform provides: starting a worker that runs `runWorker` and loads `moduleUrl`. */
export interface WorkerHost {
  spawn(options: { moduleUrl: string; name: string }): WorkerHandle
}

/** The worker's end of the channel. */
export interface WorkerPort {
  post(data: Uint8Array): void
  onMessage(listener: (data: unknown) => void): void
}

/** What runs in the worker: like a Behaviour, without a context (it cannot cross). */
export interface WorkerBehaviour<M = any, R = any> {
  init?(): void | Promise<void>
  handle(message: M): R | Promise<R>
  terminate?(reason: string): void | Promise<void>
}

export interface WorkerBehaviourOptions {
  /** Passed to the module's exported function at each (re)start; IPLD data. */
  args?: unknown
  /** Bound of each message and answer, encoded; default 1 MiB. */
  maxMessageBytes?: number
  /** The worker's name (for debuggers); default the actor's name. */
  name?: string
}

/** Messages between the two sides (dag-cbor maps). */
type ToWorker =
  | { v: 1; t: 'init'; args: unknown; max: number }
  | { v: 1; t: 'handle'; n: number; body: unknown }
  | { v: 1; t: 'terminate'; reason: string }
type FromWorker =
  | { v: 1; t: 'ready' }
  | { v: 1; t: 'result'; n: number; body: unknown }
  | { v: 1; t: 'error'; n: number; name: string; message: string }
  | { v: 1; t: 'terminated' }

function encode(message: ToWorker | FromWorker, max: number, what: string): Uint8Array {
  const bytes = dagCbor.encode(message)
  if (bytes.length > max) throw new MessageTooLargeError(what, bytes.length, max)
  return bytes
}

function decode(data: unknown, max: number): Record<string, unknown> {
  if (!(data instanceof Uint8Array)) throw new WorkerCrashedError('the worker sent something other than bytes')
  if (data.length > max) throw new MessageTooLargeError('a message from the worker', data.length, max)
  let value: unknown
  try {
    value = dagCbor.decode(data)
  } catch (error) {
    throw new WorkerCrashedError(`the worker sent malformed dag-cbor: ${(error as Error).message}`)
  }
  if (value == null || typeof value !== 'object' || Array.isArray(value) || (value as { v?: unknown }).v !== 1) {
    throw new WorkerCrashedError('the worker sent a message of unknown shape')
  }
  return value as Record<string, unknown>
}

/** An Error carrying the name and message a worker's handler threw. */
function remoteError(name: unknown, message: unknown): Error {
  const error = new Error(typeof message === 'string' ? message.slice(0, MAX_ERROR_MESSAGE) : 'error in worker')
  error.name = typeof name === 'string' && name.length > 0 ? name.slice(0, MAX_ERROR_NAME) : 'Error'
  return error
}

function checkMax(max: unknown): number {
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 64 || max > MAX_MESSAGE_BYTES) {
    throw new InvalidActorOptionError(
      `maxMessageBytes must be an integer in 64..${MAX_MESSAGE_BYTES}, got ${String(max)}`
    )
  }
  return max
}

/**
 * A behaviour whose handler runs in a worker started through `host`. Call it in a child spec's
 * behaviour factory so each restart gets a fresh worker.
 */
export function workerBehaviour<M = unknown, R = unknown>(
  host: WorkerHost,
  moduleUrl: string | URL,
  options: WorkerBehaviourOptions = {}
): Behaviour<M, R> {
  const max = checkMax(options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES)
  const url = moduleUrl.toString()
  let worker: WorkerHandle | undefined
  let failure: Error | undefined
  let seq = 0
  const waiting = new Map<
    number | 'ready' | 'terminated',
    { resolve: (value: unknown) => void; reject: (e: Error) => void }
  >()
  const fail = (error: Error): void => {
    if (failure !== undefined) return
    failure = error
    for (const w of waiting.values()) w.reject(error)
    waiting.clear()
    void worker?.terminate()
  }
  const expect = (key: number | 'ready' | 'terminated'): Promise<unknown> => {
    if (failure !== undefined) return Promise.reject(failure)
    return new Promise((resolve, reject) => waiting.set(key, { resolve, reject }))
  }
  const settle = (key: number | 'ready' | 'terminated', outcome: { value: unknown } | Error): void => {
    const w = waiting.get(key)
    if (w === undefined) {
      fail(new WorkerCrashedError(`the worker answered ${String(key)}, which was not asked`))
      return
    }
    waiting.delete(key)
    if (outcome instanceof Error) w.reject(outcome)
    else w.resolve(outcome.value)
  }
  const onMessage = (data: unknown): void => {
    try {
      const m = decode(data, max)
      if (m.t === 'ready') settle('ready', { value: undefined })
      else if (m.t === 'terminated') settle('terminated', { value: undefined })
      else if (m.t === 'result' && typeof m.n === 'number') settle(m.n, { value: m.body })
      else if (m.t === 'error' && m.n === 0)
        settle('ready', remoteError(m.name, m.message)) // init failed
      else if (m.t === 'error' && typeof m.n === 'number') settle(m.n, remoteError(m.name, m.message))
      else throw new WorkerCrashedError(`the worker sent an unknown message type ${String(m.t)}`)
    } catch (error) {
      fail(error instanceof WorkerCrashedError ? error : new WorkerCrashedError((error as Error).message))
    }
  }
  const post = (message: ToWorker, what: string): void => {
    if (worker === undefined || failure !== undefined)
      throw failure ?? new WorkerCrashedError('the worker is not running')
    worker.post(encode(message, max, what))
  }

  return {
    async init(ctx: ActorContext<M, R>): Promise<void> {
      worker = host.spawn({ moduleUrl: url, name: options.name ?? ctx.name })
      worker.onMessage(onMessage)
      worker.onExit(error => fail(error instanceof WorkerCrashedError ? error : new WorkerCrashedError(error.message)))
      // a missed deadline, a kill or the end of this incarnation stops the worker, busy or not
      ctx.signal.addEventListener('abort', () => fail(new WorkerCrashedError('the actor ended; worker terminated')), {
        once: true
      })
      const ready = expect('ready')
      post({ v: 1, t: 'init', args: options.args ?? null, max }, 'the init args')
      await ready
    },
    async handle(message: M): Promise<R> {
      const n = ++seq
      const answer = expect(n)
      post({ v: 1, t: 'handle', n, body: message as unknown }, 'a message to the worker')
      return (await answer) as R
    },
    async terminate(reason): Promise<void> {
      if (worker === undefined || failure !== undefined) return
      const done = expect('terminated')
      post({ v: 1, t: 'terminate', reason: reasonName(reason) }, 'terminate')
      try {
        await done
      } finally {
        fail(new WorkerCrashedError('terminated'))
      }
    }
  }
}

/**
 * The worker side: loads the module on init, then answers each message in order. `load` imports
 * the module (the platform's dynamic import).
 */
export function runWorker(
  port: WorkerPort,
  load: (url: string) => Promise<Record<string, unknown>>,
  moduleUrl: string
): void {
  let behaviour: WorkerBehaviour | undefined
  let max = DEFAULT_MAX_MESSAGE_BYTES
  let queue: Promise<void> = Promise.resolve()
  const send = (message: FromWorker): void => {
    let bytes: Uint8Array
    try {
      bytes = encode(message, max, 'an answer from the worker')
    } catch (error) {
      if (message.t !== 'result') throw error
      const e = error as Error
      bytes = encode(
        { v: 1, t: 'error', n: message.n, name: e.name, message: e.message.slice(0, MAX_ERROR_MESSAGE) },
        max,
        'an error'
      )
    }
    port.post(bytes)
  }
  const failed = (n: number, error: unknown): void => {
    const e = error instanceof Error ? error : new Error(String(error))
    send({ v: 1, t: 'error', n, name: e.name.slice(0, MAX_ERROR_NAME), message: e.message.slice(0, MAX_ERROR_MESSAGE) })
  }
  port.onMessage(data => {
    queue = queue.then(async () => {
      const m = decode(data, MAX_MESSAGE_BYTES)
      if (m.t === 'init') {
        if (typeof m.max === 'number') max = checkMax(m.max)
        try {
          const module = await load(moduleUrl)
          const exported = module.default ?? module.behaviour
          const made =
            typeof exported === 'function' ? await (exported as (args: unknown) => unknown)(m.args) : exported
          if (made == null || typeof (made as WorkerBehaviour).handle !== 'function') {
            throw new InvalidActorOptionError(
              `${moduleUrl} exports no worker behaviour (default or behaviour, with handle)`
            )
          }
          behaviour = made as WorkerBehaviour
          await behaviour.init?.()
          send({ v: 1, t: 'ready' })
        } catch (error) {
          failed(0, error)
        }
      } else if (m.t === 'handle' && typeof m.n === 'number') {
        const n = m.n
        try {
          if (behaviour === undefined) throw new WorkerCrashedError('handle before init')
          send({ v: 1, t: 'result', n, body: (await behaviour.handle(m.body)) ?? null })
        } catch (error) {
          failed(n, error)
        }
      } else if (m.t === 'terminate') {
        try {
          await behaviour?.terminate?.(typeof m.reason === 'string' ? m.reason : 'shutdown')
        } finally {
          send({ v: 1, t: 'terminated' })
        }
      }
    })
  })
}
