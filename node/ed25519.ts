/**
 * Ed25519 for a Node process, the back end it installs at start (`useEd25519(nodeEd25519())`).
 * Signing is node:crypto's (OpenSSL) on KeyObjects held in a bounded cache — private keys by a
 * digest of their seed, each with its public key — so a key is imported once however often it
 * signs. Verifying is libsodium's (sodium-native, a prebuilt binary): measured on this project's
 * machines it costs half the CPU of OpenSSL's (about 120 against 240 µs a signature; bench
 * crypto and spki print both), and where sodium-native does not load it is OpenSSL's.
 *
 * Both verify by the strict rules of src/crypto/ed25519.ts: each checks the cofactorless equation
 * and refuses small-order points, and the cheap checks of those rules run first all the same, so
 * the answer depends on neither library's version (test/crypto/cctv.test.ts: the 914 edge vectors
 * of C2SP's CCTV set get OpenSSL's answer from both).
 *
 * `verifyMany` checks its signatures one after the other on the calling thread (libsodium is
 * synchronous: about 90 µs each). With `helperThread` it can split them with one helper thread
 * shared by the process (a worker running libsodium, handed its half through shared memory), so a
 * chain's signatures are checked on two cores at once when two are free; off by default, see
 * NodeEd25519Options.
 *
 * @example
 * useEd25519(nodeEd25519())
 * const ed = await ed25519() // this back end
 */
import { createPrivateKey, createPublicKey, hash, sign, verify } from 'node:crypto'
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import {
  checkBytes,
  DEFAULT_PRIVATE_KEYS,
  DEFAULT_PUBLIC_KEYS,
  isStrictPublicKey,
  isStrictSignature,
  pkcs8Of,
  PUBLIC_KEY_LENGTH,
  SECRET_KEY_LENGTH,
  SIGNATURE_LENGTH,
  SPKI_PREFIX,
  verifyEach
} from '../src/crypto/ed25519.ts'
import { RecentMap } from '../src/recent-map.ts'
import type { Ed25519, KeyCacheSizes, SignedMessage } from '../src/crypto/ed25519.ts'
import type { KeyObject } from 'node:crypto'

export interface NodeEd25519Options extends KeyCacheSizes {
  /** Which library verifies: libsodium where it loads (the default), else OpenSSL. */
  verifier?: 'sodium' | 'openssl'
  /**
   * Whether verifyMany hands half its signatures to the process's helper thread: true while that
   * pays, 'always' on every call whatever it gains (for tests), false (the default) never. Off by
   * default because on this project's shared 2-core machines it did not pay: with other
   * processes running, main thread + worker verified only 1.06–1.5× one thread's rate, and a
   * depth-5 chain with the helper ran at 0.85–1.10× (one at a time) and 0.7× (8 in flight) of
   * one thread (bench spki measures both side by side); on a machine with a free core, measure
   * again.
   */
  helperThread?: boolean | 'always'
}

interface PrivateEntry {
  key: KeyObject
  publicKey: Uint8Array
}

/** What this file uses of sodium-native. */
interface Sodium {
  crypto_sign_verify_detached(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
}

const requireHere = createRequire(import.meta.url)

/** sodium-native and the path it loaded from, or undefined where it does not load. */
const sodium = ((): { library: Sodium; path: string } | undefined => {
  try {
    const path = requireHere.resolve('sodium-native')
    const library = requireHere(path) as Sodium
    return typeof library.crypto_sign_verify_detached === 'function' ? { library, path } : undefined
  } catch {
    return undefined
  }
})()

/** Whether verifying runs on libsodium in this process (false: sodium-native did not load). */
export const hasSodium = sodium != null

/** libsodium's answer, for inputs the strict pre-checks passed (so of the right lengths). */
function sodiumVerify(library: Sodium, item: SignedMessage): boolean {
  try {
    return library.crypto_sign_verify_detached(item.signature, item.message, item.publicKey)
  } catch {
    return false
  }
}

// ------------------------------------------------------------ the helper thread
//
// One job at a time through a SharedArrayBuffer: the calling thread writes the items (length of
// the message, key, signature, message), sets STATE to JOB and wakes the worker; the worker
// verifies each with libsodium, writes VALID or INVALID per item, sets STATE to DONE and wakes the
// caller (Atomics.waitAsync: the event loop runs meanwhile). A result is read as good only if it
// is exactly VALID, so a slot the worker never wrote is a refusal, never an acceptance.

const IDLE = 0
const JOB = 1
const DONE = 2
const STATE = 0
const COUNT = 1
const RESULTS = 2
/** Most signatures handed over in one job. */
const MAX_HANDED = 32
const VALID = 1
const INVALID = 2
/** Where the worker writes when it finished a job (a float64: ms, performance.timeOrigin + now()). */
const FINISHED_AT = 4 * (RESULTS + MAX_HANDED)
/** Where the items start (after the state, the count, the results and the finishing time). */
const DATA = FINISHED_AT + 8
const BUFFER_BYTES = 64 * 1024
/** Fewest and most verifyMany calls the helper sits out after a job that did not pay. */
const MIN_REST = 8
const MAX_REST = 1024
/** Each item's fixed part: message length (4), key (32), signature (64). */
const ITEM_HEADER = 4 + PUBLIC_KEY_LENGTH + SIGNATURE_LENGTH

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads')
const sodium = require(workerData.sodium)
const control = new Int32Array(workerData.buffer, 0, ${FINISHED_AT / 4})
const finishedAt = new Float64Array(workerData.buffer, ${FINISHED_AT}, 1)
const bytes = new Uint8Array(workerData.buffer)
const view = new DataView(workerData.buffer)
for (;;) {
  let state
  while ((state = Atomics.load(control, ${STATE})) !== ${JOB}) Atomics.wait(control, ${STATE}, state)
  const count = control[${COUNT}]
  let offset = ${DATA}
  for (let i = 0; i < count; i++) {
    const length = view.getUint32(offset, true)
    const key = bytes.subarray(offset + 4, offset + 36)
    const signature = bytes.subarray(offset + 36, offset + 100)
    const message = bytes.subarray(offset + 100, offset + 100 + length)
    let ok = false
    try { ok = sodium.crypto_sign_verify_detached(signature, message, key) } catch {}
    control[${RESULTS} + i] = ok ? ${VALID} : ${INVALID}
    offset += ${ITEM_HEADER} + length
  }
  finishedAt[0] = performance.timeOrigin + performance.now()
  Atomics.store(control, ${STATE}, ${DONE})
  Atomics.notify(control, ${STATE})
}
`

/**
 * The process's helper thread: started at the first verifyMany that could use it, never keeping
 * the process alive while idle, and given up for good (verifyMany then checks everything itself)
 * if it ever fails.
 */
class HelperThread {
  private worker?: Worker
  private online?: Promise<boolean>
  /** Jobs and signatures handed over so far (for tests and benchmarks). */
  jobs = 0
  handed = 0
  private ready = false
  private failed = false
  private busy = false
  private readonly buffer = new SharedArrayBuffer(BUFFER_BYTES)
  private readonly control = new Int32Array(this.buffer, 0, FINISHED_AT / 4)
  private readonly finishedAt = new Float64Array(this.buffer, FINISHED_AT, 1)
  private readonly bytes = new Uint8Array(this.buffer)
  private readonly view = new DataView(this.buffer)
  /** Wakes a caller waiting for a job when the worker dies instead. */
  private wake?: () => void
  private readonly sodiumPath: string

  constructor(sodiumPath: string) {
    this.sodiumPath = sodiumPath
  }

  /** Calls to sit out before handing over again, and the length of the last such rest. */
  private resting = 0
  private rest = 0
  /** Whether another call found the thread busy while the current job was out. */
  private overlapped = false

  /**
   * Whether a job can be handed over now; if not (starting, busy, failed, resting after a job that
   * did not pay), the caller checks all itself.
   */
  available(always = false): boolean {
    if (this.busy) this.overlapped = true
    if (this.failed || this.busy) return false
    if (this.resting > 0 && !always) {
      this.resting--
      return false
    }
    if (this.worker == null) this.start()
    return this.ready
  }

  /**
   * Told how the last job went: when the caller got its answers later after checking its own share
   * than it would have needed to check the job's too (no core was free for the worker: other
   * processes had it), handing over is put off for a while, for twice as many calls each time it
   * happens again (MIN_REST to MAX_REST). "Later" is how long the caller waited (`waitedMs`: the
   * worker's wake-up and the hand-back count), except when other calls came while the job was out:
   * then the caller's event loop had other work, which may have delayed its reading the answers,
   * and the worker's own finishing time (`finishedAt`, against `hereDoneAt`) is what counts.
   */
  judge(handed: number, msPerSignatureHere: number, hereDoneAt: number, waitedMs: number): void {
    const late = this.overlapped ? this.finishedAt[0] - hereDoneAt : waitedMs
    if (late > handed * msPerSignatureHere) {
      this.rest = Math.min(Math.max(this.rest * 2, MIN_REST), MAX_REST)
      this.resting = this.rest
    } else {
      this.rest = 0
    }
  }

  private start(): void {
    let worker: Worker
    try {
      worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { sodium: this.sodiumPath, buffer: this.buffer },
        name: 'ed25519-verify'
      })
    } catch {
      this.failed = true
      return
    }
    // held until it runs (so a caller awaiting started() is not left with an empty event loop),
    // then never keeping the process alive while idle
    this.online = new Promise(resolve => {
      worker.on('online', () => {
        this.ready = true
        worker.unref()
        resolve(true)
      })
      const fail = (): void => {
        this.failed = true
        this.ready = false
        this.wake?.()
        resolve(false)
      }
      worker.on('error', fail)
      worker.on('exit', fail)
    })
    this.worker = worker
  }

  /** Starts the worker if need be; true once it runs (false if it cannot). */
  async started(): Promise<boolean> {
    if (this.failed) return false
    if (this.worker == null) this.start()
    return (await this.online) ?? false
  }

  /**
   * Hands over as many of `items` (by index) as fit, and returns how many it took; then `results`
   * gives their answers. Only after `available()`.
   */
  hand(items: readonly SignedMessage[], indices: number[]): number {
    let offset = DATA
    let count = 0
    for (const i of indices) {
      const { publicKey, message, signature } = items[i]
      if (count === MAX_HANDED || offset + ITEM_HEADER + message.length > BUFFER_BYTES) break
      this.view.setUint32(offset, message.length, true)
      this.bytes.set(publicKey, offset + 4)
      this.bytes.set(signature, offset + 4 + PUBLIC_KEY_LENGTH)
      this.bytes.set(message, offset + ITEM_HEADER)
      offset += ITEM_HEADER + message.length
      count++
    }
    if (count === 0) return 0
    this.jobs++
    this.handed += count
    this.busy = true
    this.overlapped = false
    this.control.fill(0, RESULTS, RESULTS + count)
    this.control[COUNT] = count
    // held while a job is out, so the process does not exit under a pending verify
    this.worker?.ref()
    Atomics.store(this.control, STATE, JOB)
    Atomics.notify(this.control, STATE)
    return count
  }

  /** The answers of the job handed over (undefined if the worker died meanwhile: check them again). */
  async results(count: number): Promise<boolean[] | undefined> {
    try {
      if (Atomics.load(this.control, STATE) !== DONE && !this.failed) {
        const waiting = Atomics.waitAsync(this.control, STATE, JOB)
        if (waiting.async) {
          await Promise.race([waiting.value, new Promise<void>(resolve => (this.wake = resolve))])
        }
      }
      if (Atomics.load(this.control, STATE) !== DONE) return undefined
      const out: boolean[] = []
      for (let i = 0; i < count; i++) out.push(this.control[RESULTS + i] === VALID)
      return out
    } finally {
      this.wake = undefined
      if (!this.failed) Atomics.store(this.control, STATE, IDLE)
      this.worker?.unref()
      this.busy = false
    }
  }
}

let helper: HelperThread | undefined
const helperThread = (): HelperThread | undefined =>
  sodium == null ? undefined : (helper ??= new HelperThread(sodium.path))

/**
 * Starts the process's helper thread now rather than at the first verifyMany (which checks
 * everything itself until the thread runs); false where it cannot run (no libsodium, a failed start).
 */
export async function startHelperThread(): Promise<boolean> {
  return (await helperThread()?.started()) ?? false
}

/** How many jobs, and signatures in them, the helper thread has been handed so far. */
export function helperThreadWork(): { jobs: number; signatures: number } {
  return { jobs: helper?.jobs ?? 0, signatures: helper?.handed ?? 0 }
}

// ------------------------------------------------------------ the back end

/**
 * The bytes of `buffer` as a plain Uint8Array that owns its memory: a view when the Buffer has its
 * own ArrayBuffer (as a signature from crypto.sign has), a copy when it sits on a shared pool.
 */
const own = (buffer: Uint8Array): Uint8Array =>
  buffer.byteOffset === 0 && buffer.buffer.byteLength === buffer.length
    ? new Uint8Array(buffer.buffer, 0, buffer.length)
    : new Uint8Array(buffer)

const latin1 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1')

export function nodeEd25519(options: NodeEd25519Options = {}): Ed25519 {
  const library = options.verifier === 'openssl' ? undefined : sodium?.library
  const useHelper = library != null && options.helperThread != null && options.helperThread !== false
  // null: a key the strict rules or OpenSSL refuse, remembered as refused
  const publicKeys = new RecentMap<string, KeyObject | null>(options.publicKeys ?? DEFAULT_PUBLIC_KEYS)
  const privateKeys = new RecentMap<string, PrivateEntry>(options.privateKeys ?? DEFAULT_PRIVATE_KEYS)

  const publicKeyOf = (publicKey: Uint8Array): KeyObject | null => {
    const id = latin1(publicKey)
    let key = publicKeys.get(id)
    if (key === undefined) {
      key = null
      if (isStrictPublicKey(publicKey)) {
        try {
          key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' })
        } catch {}
      }
      publicKeys.set(id, key)
    }
    return key
  }
  /**
   * The key to verify `signature` by (OpenSSL), or null when the strict rules refuse the signature
   * or the key (a key of the wrong length throws InvalidKeyError).
   */
  const verifierOf = (publicKey: Uint8Array, signature: Uint8Array): KeyObject | null => {
    checkBytes('public key', publicKey, PUBLIC_KEY_LENGTH)
    return isStrictSignature(signature) ? publicKeyOf(publicKey) : null
  }
  /** Whether the strict rules' cheap checks pass (libsodium then decides); InvalidKeyError for a wrong length. */
  const passesChecks = (item: SignedMessage): boolean => {
    checkBytes('public key', item.publicKey, PUBLIC_KEY_LENGTH)
    return isStrictSignature(item.signature) && isStrictPublicKey(item.publicKey)
  }
  /** libsodium on every item, split with the helper thread when it is free. */
  const sodiumVerifyMany = async (sodiumLibrary: Sodium, items: readonly SignedMessage[]): Promise<boolean[]> => {
    const out = items.map(() => false)
    const todo: number[] = []
    for (const [i, item] of items.entries()) if (passesChecks(item)) todo.push(i)
    const thread = useHelper && todo.length >= 2 ? helperThread() : undefined
    if (thread == null || !thread.available(options.helperThread === 'always')) {
      for (const i of todo) out[i] = sodiumVerify(sodiumLibrary, items[i])
      return out
    }
    // the helper takes the first half while this thread checks the rest
    const handed = todo.slice(0, thread.hand(items, todo.slice(0, todo.length >> 1)))
    const here = todo.slice(handed.length)
    const start = performance.now()
    for (const i of here) out[i] = sodiumVerify(sodiumLibrary, items[i])
    const checked = performance.now()
    let answers: boolean[] | undefined = []
    if (handed.length > 0) {
      answers = await thread.results(handed.length)
      if (answers != null)
        thread.judge(
          handed.length,
          (checked - start) / here.length,
          performance.timeOrigin + checked,
          performance.now() - checked
        )
    }
    for (const [n, i] of handed.entries()) out[i] = answers?.[n] ?? sodiumVerify(sodiumLibrary, items[i])
    return out
  }
  /** As in the WebCrypto back end: only `sign` remembers the key it imports (`remember`). */
  const privateKeyOf = (secretKey: Uint8Array, remember: boolean): PrivateEntry => {
    checkBytes('secret key', secretKey, SECRET_KEY_LENGTH)
    // keyed by a digest: no copy of the seed in a string, which could not be wiped
    const id = hash('sha256', secretKey, 'base64')
    let entry = privateKeys.get(id)
    if (entry === undefined) {
      // the DER holding the seed is our own memory, wiped after use (Buffer.concat would copy the
      // seed into the shared Buffer pool, which is never wiped and which allocUnsafe hands out)
      const der = pkcs8Of(secretKey)
      let key: KeyObject
      try {
        key = createPrivateKey({ key: Buffer.from(der.buffer, 0, der.length), format: 'der', type: 'pkcs8' })
      } finally {
        der.fill(0)
      }
      const spki = createPublicKey(key).export({ format: 'der', type: 'spki' })
      entry = { key, publicKey: own(spki.subarray(SPKI_PREFIX.length)) }
      if (remember) privateKeys.set(id, entry)
    }
    return entry
  }
  const backend: Ed25519 = {
    name: 'node',
    async sign(secretKey, message) {
      return own(sign(null, message, privateKeyOf(secretKey, true).key))
    },
    async verify(publicKey, message, signature) {
      if (library != null) {
        const item = { publicKey, message, signature }
        return passesChecks(item) && sodiumVerify(library, item)
      }
      const key = verifierOf(publicKey, signature)
      if (key == null) return false
      try {
        return verify(null, message, key, signature)
      } catch {
        return false
      }
    },
    async verifyMany(items) {
      if (library != null) return await sodiumVerifyMany(library, items)
      // OpenSSL: one synchronous (the thread pool's hand-off costs more than it saves); several
      // on libuv's thread pool
      if (items.length < 2) return await verifyEach(backend, items)
      return await Promise.all(
        items.map(async ({ publicKey, message, signature }) => {
          const key = verifierOf(publicKey, signature)
          if (key == null) return false
          return await new Promise<boolean>(resolve => {
            try {
              verify(null, message, key, signature, (err, ok) => resolve(err == null && ok))
            } catch {
              resolve(false)
            }
          })
        })
      )
    },
    async publicKey(secretKey) {
      return privateKeyOf(secretKey, false).publicKey.slice()
    },
    async prepare(secretKey) {
      const { key, publicKey } = privateKeyOf(secretKey, false)
      return { publicKey: publicKey.slice(), sign: async message => own(sign(null, message, key)) }
    }
  }
  return backend
}

/** The process's back end, with the process's caches: what node/platform.ts installs. */
export const processEd25519: Ed25519 = nodeEd25519()
