/**
 * Worker behaviours in a browser: each worker is a module Web Worker whose script is this file,
 * bundled on its own (`runnerUrl`); in the worker it runs `runWorker` over the worker scope and
 * imports the behaviour module, whose URL it reads from its own script URL.
 *
 * The runner must be served as a separate ES module (a bundle of this file), not inside the page
 * bundle: a worker loading the page bundle would run the page. Browsers do not report a worker
 * that closes itself; its pending handler then ends at the actor's deadline like a stuck one.
 *
 * @example
 * const host = browserWorkerHost({ runnerUrl: new URL('./worker-runner.js', location.href) })
 * const behaviour = () => workerBehaviour(host, new URL('./hash-behaviour.js', location.href))
 */
import { WorkerCrashedError } from '../src/actor/errors.ts'
import { runWorker } from '../src/actor/worker.ts'
import type { WorkerHandle, WorkerHost } from '../src/actor/worker.ts'

/** The runner URL's search parameter that names the behaviour module. */
const MODULE_PARAM = 'cyberspace-actor-module'

export interface BrowserWorkerHostOptions {
  /** Where the bundled runner (this file) is served; default this module's own URL. */
  runnerUrl?: string | URL
}

export function browserWorkerHost(options: BrowserWorkerHostOptions = {}): WorkerHost {
  const runner = (options.runnerUrl ?? import.meta.url).toString()
  return {
    spawn({ moduleUrl, name }): WorkerHandle {
      const url = new URL(runner)
      url.searchParams.set(MODULE_PARAM, moduleUrl)
      const worker = new Worker(url, { type: 'module', name })
      let ended = false
      let exitListener: ((error: Error) => void) | undefined
      const exit = (error: Error): void => {
        if (ended) return
        ended = true
        exitListener?.(error)
      }
      worker.addEventListener('error', event => {
        event.preventDefault()
        exit(new WorkerCrashedError(`worker ${name} failed: ${event.message}`))
      })
      worker.addEventListener('messageerror', () =>
        exit(new WorkerCrashedError(`worker ${name} sent an unreadable message`))
      )
      return {
        post: data => {
          const bytes = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice()
          worker.postMessage(bytes, [bytes.buffer as ArrayBuffer])
        },
        onMessage: listener => worker.addEventListener('message', event => listener(event.data)),
        onExit: listener => void (exitListener = listener),
        terminate: async () => {
          ended = true
          worker.terminate()
        }
      }
    }
  }
}

interface WorkerScope {
  location: { href: string }
  postMessage(data: unknown, transfer: ArrayBuffer[]): void
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
}

const scope = globalThis as unknown as WorkerScope & { WorkerGlobalScope?: abstract new () => unknown }
if (typeof scope.WorkerGlobalScope === 'function' && scope instanceof scope.WorkerGlobalScope) {
  const moduleUrl = new URL(scope.location.href).searchParams.get(MODULE_PARAM)
  if (moduleUrl !== null) {
    runWorker(
      {
        post: data => {
          const bytes = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice()
          scope.postMessage(bytes, [bytes.buffer as ArrayBuffer])
        },
        onMessage: listener => scope.addEventListener('message', event => listener(event.data))
      },
      async url => (await import(url)) as Record<string, unknown>,
      moduleUrl
    )
  }
}
