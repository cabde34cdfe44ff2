/**
 * Worker behaviours on Node.js: each worker is a worker_threads Worker whose entry is this very
 * file; in the worker it runs `runWorker` over `parentPort` and imports the behaviour module
 * (TypeScript modules load by type stripping, as everywhere in this project).
 *
 * @example
 * const host = nodeWorkerHost({ maxOldGenerationSizeMb: 128 })
 * const behaviour = () => workerBehaviour(host, new URL('./hash.ts', import.meta.url))
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { runWorker } from '../src/actor/worker.ts'
import { WorkerCrashedError } from '../src/actor/errors.ts'
import type { WorkerHandle, WorkerHost } from '../src/actor/worker.ts'

/** The key in workerData that marks a worker as an actor's (so other workers importing this file do nothing). */
const MARK = 'cyberspaceActorWorker'

export interface NodeWorkerHostOptions {
  /** Heap limit of each worker in MB; default 256. A worker that exceeds it exits (a crash). */
  maxOldGenerationSizeMb?: number
}

/**
 * Posts bytes, moving their buffer when they are a plain Uint8Array owning all of it; otherwise a
 * copy (a Node Buffer may share a pooled ArrayBuffer, which cannot be moved).
 */
function post(target: { postMessage: (value: unknown, transfer: ArrayBuffer[]) => void }, data: Uint8Array): void {
  const own =
    Object.getPrototypeOf(data) === Uint8Array.prototype &&
    data.buffer instanceof ArrayBuffer &&
    data.byteOffset === 0 &&
    data.byteLength === data.buffer.byteLength
  const bytes = own ? data : new Uint8Array(data)
  target.postMessage(bytes, [bytes.buffer as ArrayBuffer])
}

export function nodeWorkerHost(options: NodeWorkerHostOptions = {}): WorkerHost {
  return {
    spawn({ moduleUrl, name }): WorkerHandle {
      const worker = new Worker(new URL(import.meta.url), {
        name,
        workerData: { [MARK]: moduleUrl },
        resourceLimits: { maxOldGenerationSizeMb: options.maxOldGenerationSizeMb ?? 256 },
        stdout: false,
        stderr: false
      })
      let terminated = false
      let exitListener: ((error: Error) => void) | undefined
      let exited = false
      const exit = (error: Error): void => {
        if (exited || terminated) return
        exited = true
        exitListener?.(error)
      }
      worker.on('error', error =>
        exit(new WorkerCrashedError(`worker ${name} failed: ${error.name}: ${error.message}`))
      )
      worker.on('exit', code => exit(new WorkerCrashedError(`worker ${name} exited with code ${code}`)))
      worker.on('messageerror', error =>
        exit(new WorkerCrashedError(`worker ${name} sent an unreadable message: ${error.message}`))
      )
      return {
        post: data => post(worker, data),
        onMessage: listener => void worker.on('message', listener),
        onExit: listener => void (exitListener = listener),
        terminate: async () => {
          if (terminated) return
          terminated = true
          await worker.terminate()
        }
      }
    }
  }
}

if (
  !isMainThread &&
  parentPort !== null &&
  typeof (workerData as Record<string, unknown> | null)?.[MARK] === 'string'
) {
  const port = parentPort
  runWorker(
    {
      post: data => post(port, data),
      onMessage: listener => void port.on('message', listener)
    },
    async url => (await import(url)) as Record<string, unknown>,
    (workerData as Record<string, string>)[MARK]
  )
}
