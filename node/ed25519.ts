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
 * `verifyMany` checks its signatures with libsodium on the calling thread and, for two or more, on a
 * helper thread at once (node/verify-helper.ts: both take signatures from a shared counter, so the
 * caller never waits on a helper that has no core); or with OpenSSL on libuv's thread pool.
 *
 * @example
 * useEd25519(nodeEd25519())
 * const ed = await ed25519() // this back end
 */
import { createPrivateKey, createPublicKey, hash, sign, verify } from 'node:crypto'
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import {
  checkBytes,
  DEFAULT_PRIVATE_KEYS,
  DEFAULT_PUBLIC_KEYS,
  isStrictPublicKey,
  isStrictSignature,
  pkcs8Of,
  PUBLIC_KEY_LENGTH,
  SECRET_KEY_LENGTH,
  SPKI_PREFIX,
  verifyEach
} from '../src/crypto/ed25519.ts'
import { RecentMap } from '../src/recent-map.ts'
import { VerifyHelper } from './verify-helper.ts'
import type { Ed25519, KeyCacheSizes, SignedMessage } from '../src/crypto/ed25519.ts'
import type { KeyObject } from 'node:crypto'

export interface NodeEd25519Options extends KeyCacheSizes {
  /** Which library verifies: libsodium where it loads (the default), else OpenSSL. */
  verifier?: 'sodium' | 'openssl'
  /**
   * The helper thread libsodium's verifyMany shares its signatures with: by default the process's,
   * false for the calling thread alone, or a helper of its own (tests, benchmarks).
   */
  helper?: false | VerifyHelper
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

/** sodium-native and the path it loads from, or undefined where it does not load. */
const sodiumModule = ((): { library: Sodium; path: string } | undefined => {
  try {
    const path = requireHere.resolve('sodium-native')
    const library = requireHere(path) as Sodium
    return typeof library.crypto_sign_verify_detached === 'function' ? { library, path } : undefined
  } catch {
    return undefined
  }
})()
const sodium = sodiumModule?.library

/**
 * The helper thread this process's (or worker thread's) back ends share, where libsodium loads and
 * the process may use more than one core (with one, a helper could only take turns with the caller).
 */
export const processVerifyHelper: VerifyHelper | undefined =
  sodiumModule == null || availableParallelism() < 2 ? undefined : new VerifyHelper(sodiumModule.path)

/** Where sodium-native loads from (a helper thread of its own: `new VerifyHelper(sodiumPath)`). */
export const sodiumPath = sodiumModule?.path

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
  const library = options.verifier === 'openssl' ? undefined : sodium
  const helper = library == null || options.helper === false ? undefined : (options.helper ?? processVerifyHelper)
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
  /** libsodium on each item (here and on the helper thread), once the cheap checks ran on all of them. */
  const sodiumVerifyMany = (sodiumLibrary: Sodium, items: readonly SignedMessage[]): boolean[] => {
    const passed = items.map(passesChecks)
    const here = (item: SignedMessage): boolean => sodiumVerify(sodiumLibrary, item)
    if (helper == null) return items.map((item, i) => passed[i] && here(item))
    const checked = items.filter((_, i) => passed[i])
    const answers = helper.verify(checked, here)
    let next = 0
    return passed.map(ok => ok && answers[next++])
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
      if (library != null) return sodiumVerifyMany(library, items)
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
