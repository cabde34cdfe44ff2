/**
 * A second thread for libsodium's verifies, so the signatures of one certificate chain are checked
 * on two cores at once when two are free (bench spki: a depth-5 chain cold).
 *
 * A batch is put in shared memory and both threads take its signatures one at a time from a shared
 * counter (a compare-and-swap on one word), the calling thread included: it never hands work away
 * and waits for it, it takes what the helper has not taken. So when the helper is asleep, slow to
 * wake or has no core (other processes hold it), the caller checks everything itself at the cost of
 * one copy into shared memory and one wake-up call; it waits only for a signature the helper has
 * already started, about one verify's time. A helper that has started one and not answered within
 * HELPER_WAIT_MS (its thread stopped, or the machine starved it) is given up: the caller checks that
 * signature itself, stops the thread, and starts no other for a while (RETRY_MS, doubling up to
 * MAX_RETRY_MS).
 *
 * Idle, the helper costs nothing: it sleeps in Atomics.wait until a batch is published (watching the
 * counter for a while after each batch first gained nothing measurable here: 0.5 and 2 ms of
 * spinning against none), and after IDLE_EXIT_MS without a batch its thread ends; the next batch
 * starts another. It never keeps the process alive. Running, it holds about 17 MB (a V8 isolate).
 * No answer depends on it: a process where it cannot start checks everything on the calling thread.
 *
 * A result is read as good only if the helper wrote exactly VALID for that slot of the current
 * batch; slots are cleared before a batch is published, and a batch is not replaced while a
 * signature of it is still being checked (or the helper is given up first, and its memory with it).
 * A thread reads a signature's bytes only after its compare-and-swap took that signature's index
 * from the current word, so a claim from a stale reading succeeds only if the word still holds that
 * value, and then takes that index of the batch now published.
 */
import { Worker } from 'node:worker_threads'
import { PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH } from '../src/crypto/ed25519.ts'
import type { SignedMessage } from '../src/crypto/ed25519.ts'

/** Most signatures in one published batch (the counter has 5 bits for each of count and next). */
export const MAX_BATCH = 31
const COUNT_SHIFT = 5
const INDEX_MASK = 31
/** Int32 slots: the batch word (count << 5 | next), then a result per signature, then an offset per signature. */
const WORD = 0
const RESULTS = 1
const OFFSETS = RESULTS + MAX_BATCH
const HEADER_BYTES = 4 * (OFFSETS + MAX_BATCH)
const BUFFER_BYTES = 64 * 1024
const PENDING = 0
const VALID = 1
const INVALID = 2
/** Each signature's fixed part: message length (4), key (32), signature (64). */
const ITEM_HEADER = 4 + PUBLIC_KEY_LENGTH + SIGNATURE_LENGTH

/** How long the helper sleeps without a batch before its thread ends. */
const IDLE_EXIT_MS = 5 * 60_000
/** How long the caller waits for a signature the helper started before giving the helper up. */
export const HELPER_WAIT_MS = 20
const RETRY_MS = 1_000
const MAX_RETRY_MS = 10 * 60_000

const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads')
const sodium = require(workerData.sodium)
parentPort.postMessage('ready')
const control = new Int32Array(workerData.buffer, 0, ${HEADER_BYTES / 4})
const bytes = new Uint8Array(workerData.buffer)
const view = new DataView(workerData.buffer)
for (;;) {
  const word = Atomics.load(control, ${WORD})
  const next = word & ${INDEX_MASK}
  if (next < word >>> ${COUNT_SHIFT}) {
    if (Atomics.compareExchange(control, ${WORD}, word, word + 1) !== word) continue
    const at = control[${OFFSETS} + next]
    const length = view.getUint32(at, true)
    let ok = false
    try {
      ok = sodium.crypto_sign_verify_detached(
        bytes.subarray(at + ${4 + PUBLIC_KEY_LENGTH}, at + ${ITEM_HEADER}),
        bytes.subarray(at + ${ITEM_HEADER}, at + ${ITEM_HEADER} + length),
        bytes.subarray(at + 4, at + ${4 + PUBLIC_KEY_LENGTH})
      )
    } catch {}
    Atomics.store(control, ${RESULTS} + next, ok ? ${VALID} : ${INVALID})
    Atomics.notify(control, ${RESULTS} + next)
    continue
  }
  if (Atomics.wait(control, ${WORD}, word, workerData.idleMs) === 'timed-out') break
}
`

export interface VerifyHelperOptions {
  /** How long the caller waits for a signature the helper started (HELPER_WAIT_MS). */
  waitMs?: number
  /** How long the helper thread sleeps without a batch before it ends (IDLE_EXIT_MS). */
  idleMs?: number
}

/** How the caller checks one signature itself (libsodium on this thread). */
export type VerifyHere = (item: SignedMessage) => boolean

/** One helper thread and the shared memory it works in; given up as a whole. */
class Helper {
  readonly worker: Worker
  ready = false
  /** True once the thread has libsodium loaded and waits for batches; false if it ended first. */
  readonly started: Promise<boolean>
  readonly control: Int32Array
  readonly bytes: Uint8Array
  readonly view: DataView

  /** `onEnd` is told once when the thread ends: `idle` when it ended by itself, having slept idleMs. */
  constructor(sodiumPath: string, idleMs: number, onEnd: (helper: Helper, idle: boolean) => void) {
    const buffer = new SharedArrayBuffer(BUFFER_BYTES)
    this.control = new Int32Array(buffer, 0, HEADER_BYTES / 4)
    this.bytes = new Uint8Array(buffer)
    this.view = new DataView(buffer)
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { sodium: sodiumPath, buffer, idleMs },
      name: 'ed25519-verify',
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 }
    })
    let resolveStarted: (ok: boolean) => void = () => {}
    this.started = new Promise(resolve => (resolveStarted = resolve))
    // held until it is ready (so awaiting start() cannot leave the event loop empty), then never
    this.worker.once('message', () => {
      this.ready = true
      this.worker.unref()
      resolveStarted(true)
    })
    let ended = false
    const end = (idle: boolean): void => {
      this.ready = false
      resolveStarted(false)
      if (!ended) onEnd(this, idle)
      ended = true
    }
    this.worker.once('error', () => end(false))
    this.worker.once('exit', code => end(code === 0))
  }
}

/**
 * The verifies of a process (or thread) that a helper thread shares. `verify` answers as
 * `items.map(verifyHere)` would, whatever the helper does.
 */
export class VerifyHelper {
  private helper?: Helper
  private notBefore = 0
  private retryMs = RETRY_MS
  private readonly sodiumPath: string
  private readonly waitMs: number
  private readonly idleMs: number
  /** Threads started, batches published and signatures the helper checked (for tests and benchmarks). */
  readonly counts = { started: 0, batches: 0, byHelper: 0, givenUp: 0 }

  constructor(sodiumPath: string, options: VerifyHelperOptions = {}) {
    this.sodiumPath = sodiumPath
    this.waitMs = options.waitMs ?? HELPER_WAIT_MS
    this.idleMs = options.idleMs ?? IDLE_EXIT_MS
  }

  /** Whether a helper thread runs now. */
  get running(): boolean {
    return this.helper?.ready === true
  }

  /** Starts the helper thread now (else the first batch does); resolves once it runs, false if it cannot. */
  async start(): Promise<boolean> {
    return (await this.current()?.started) ?? false
  }

  /** Ends the helper thread (a later batch starts another). */
  async stop(): Promise<void> {
    const helper = this.helper
    this.helper = undefined
    await helper?.worker.terminate()
  }

  /** The helper, started if there is none and none was given up lately. */
  private current(): Helper | undefined {
    if (this.helper == null && performance.now() >= this.notBefore) {
      try {
        this.counts.started++
        this.helper = new Helper(this.sodiumPath, this.idleMs, (ended, idle) => {
          if (this.helper !== ended) return
          // a thread that failed (its start, or later) is not started again at once
          if (!idle) return this.giveUp()
          this.helper = undefined
          this.retryMs = RETRY_MS
        })
      } catch {
        this.giveUp()
      }
    }
    return this.helper
  }

  /** Stops the helper (if any) and starts none before notBefore, later each time it happens again. */
  private giveUp(): void {
    const helper = this.helper
    this.helper = undefined
    this.counts.givenUp++
    this.notBefore = performance.now() + this.retryMs
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS)
    void helper?.worker.terminate()
  }

  /** Each item's answer (items the strict pre-checks passed), checked here and on the helper at once. */
  verify(items: readonly SignedMessage[], verifyHere: VerifyHere): boolean[] {
    const out: boolean[] = new Array(items.length)
    let from = 0
    while (from < items.length) {
      const helper = items.length - from >= 2 ? this.current() : undefined
      if (helper == null || !helper.ready) {
        for (let i = from; i < items.length; i++) out[i] = verifyHere(items[i])
        break
      }
      from = this.batch(helper, items, from, out, verifyHere)
    }
    return out
  }

  /** Publishes items from `from` on (as many as fit), checks them with the helper; returns where it stopped. */
  private batch(
    helper: Helper,
    items: readonly SignedMessage[],
    from: number,
    out: boolean[],
    verifyHere: VerifyHere
  ): number {
    const { control, bytes, view } = helper
    let offset = HEADER_BYTES
    let count = 0
    while (count < MAX_BATCH && from + count < items.length) {
      const { publicKey, message, signature } = items[from + count]
      if (offset + ITEM_HEADER + message.length > BUFFER_BYTES) break
      view.setUint32(offset, message.length, true)
      bytes.set(publicKey, offset + 4)
      bytes.set(signature, offset + 4 + PUBLIC_KEY_LENGTH)
      bytes.set(message, offset + ITEM_HEADER)
      control[OFFSETS + count] = offset
      control[RESULTS + count] = PENDING
      offset += ITEM_HEADER + message.length
      count++
    }
    // a message too long to share is checked here alone
    if (count === 0) {
      out[from] = verifyHere(items[from])
      return from + 1
    }
    this.counts.batches++
    Atomics.store(control, WORD, count << COUNT_SHIFT)
    Atomics.notify(control, WORD, 1)
    try {
      return this.share(helper, items, from, count, out, verifyHere)
    } catch (error) {
      // left while the helper may still check a signature of this batch: it would answer into the
      // next batch's slots, so this memory (and the thread) is not used again
      this.giveUp()
      throw error
    }
  }

  /** Takes signatures of the published batch until none is left, then waits for those the helper took. */
  private share(
    helper: Helper,
    items: readonly SignedMessage[],
    from: number,
    count: number,
    out: boolean[],
    verifyHere: VerifyHere
  ): number {
    const { control } = helper
    const mine = new Array<boolean>(count).fill(false)
    for (;;) {
      const word = Atomics.load(control, WORD)
      const next = word & INDEX_MASK
      if (next >= count) break
      if (Atomics.compareExchange(control, WORD, word, word + 1) !== word) continue
      mine[next] = true
      out[from + next] = verifyHere(items[from + next])
    }
    const deadline = performance.now() + this.waitMs
    for (let i = 0; i < count; i++) {
      if (mine[i]) continue
      let state = Atomics.load(control, RESULTS + i)
      while (state === PENDING) {
        const left = deadline - performance.now()
        if (left <= 0) break
        Atomics.wait(control, RESULTS + i, PENDING, left)
        state = Atomics.load(control, RESULTS + i)
      }
      if (state === PENDING) {
        // the helper took this one and did not answer: check the rest here, and give it up
        this.giveUp()
        for (let j = i; j < count; j++) if (!mine[j]) out[from + j] = verifyHere(items[from + j])
        return from + count
      }
      this.counts.byHelper++
      out[from + i] = state === VALID
    }
    return from + count
  }
}
