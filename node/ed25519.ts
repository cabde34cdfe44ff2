/**
 * Ed25519 on node:crypto (OpenSSL), the back end a Node process installs at start
 * (`useEd25519(nodeEd25519())`): signing and verifying are synchronous native calls on KeyObjects
 * held in bounded caches — public keys by their bytes, private keys by a digest of their seed,
 * each with its public key — so a key is imported once however often it is used. It verifies by the strict rules
 * of src/crypto/ed25519.ts: OpenSSL checks the cofactorless equation and (from 3.0) refuses
 * small-order points; the cheap checks of those rules run first all the same, so the answer does
 * not depend on the OpenSSL that Node was built with.
 *
 * @example
 * useEd25519(nodeEd25519())
 * const ed = await ed25519() // this back end
 */
import { createPrivateKey, createPublicKey, hash, sign, verify } from 'node:crypto'
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
import type { Ed25519, KeyCacheSizes } from '../src/crypto/ed25519.ts'
import type { KeyObject } from 'node:crypto'

interface PrivateEntry {
  key: KeyObject
  publicKey: Uint8Array
}

const latin1 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1')

/**
 * The bytes of `buffer` as a plain Uint8Array that owns its memory: a view when the Buffer has its
 * own ArrayBuffer (as a signature from crypto.sign has), a copy when it sits on a shared pool.
 */
const own = (buffer: Uint8Array): Uint8Array =>
  buffer.byteOffset === 0 && buffer.buffer.byteLength === buffer.length
    ? new Uint8Array(buffer.buffer, 0, buffer.length)
    : new Uint8Array(buffer)

export function nodeEd25519(sizes: KeyCacheSizes = {}): Ed25519 {
  // null: a key the strict rules or OpenSSL refuse, remembered as refused
  const publicKeys = new RecentMap<string, KeyObject | null>(sizes.publicKeys ?? DEFAULT_PUBLIC_KEYS)
  const privateKeys = new RecentMap<string, PrivateEntry>(sizes.privateKeys ?? DEFAULT_PRIVATE_KEYS)

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
   * The key to verify `signature` by, or null when the strict rules refuse the signature or the key
   * (a key of the wrong length throws InvalidKeyError).
   */
  const verifierOf = (publicKey: Uint8Array, signature: Uint8Array): KeyObject | null => {
    checkBytes('public key', publicKey, PUBLIC_KEY_LENGTH)
    return isStrictSignature(signature) ? publicKeyOf(publicKey) : null
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
      const key = verifierOf(publicKey, signature)
      if (key == null) return false
      try {
        return verify(null, message, key, signature)
      } catch {
        return false
      }
    },
    async verifyMany(items) {
      // one: synchronous (the thread pool's hand-off costs more than it saves); several: on
      // libuv's thread pool, so they run on every core
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
