/**
 * Ed25519 signing and verification with interchangeable back ends: WebCrypto (native, where the
 * runtime has Ed25519: current Chromium, Firefox, Safari, Node), @noble/curves (pure JS,
 * everywhere), and whatever the platform installs with `useEd25519` — Node installs one on
 * node:crypto (node/ed25519.ts). All verify by the same strict rules, so a signature one accepts
 * every other accepts (the tests run each against the others, RFC 8032's vectors and the edge
 * cases where Ed25519 implementations are known to differ):
 *
 * - the public key A is a canonical encoding (y < p) of a point that is not of small order;
 * - R is not the encoding of a point of small order, and S < L;
 * - [S]B − [k]A, encoded, is exactly R (the cofactorless equation, as OpenSSL and BoringSSL
 *   check it), so R must be canonical too.
 *
 * These are RFC 8032's rules with its cofactorless check, plus the small-order rejections that
 * OpenSSL 3 makes: the 914 edge vectors of C2SP's CCTV set get the same answer from each back end.
 * (noble's own strict mode checks the cofactored equation and accepts 169 of them that OpenSSL
 * refuses — a signature with a small-order R, or torsion in R or A that the cofactor clears —
 * so the noble back end does its own cofactorless check with noble's point arithmetic.)
 *
 * @example
 * const ed = await ed25519()               // the installed back end, else WebCrypto, else noble
 * const sig = await ed.sign(secretKey, message)
 * await ed.verify(publicKey, message, sig) // true
 * const key = await ed.prepare(secretKey)   // imported once: for a key that signs many times
 * await key.sign(message)
 */
import { ed25519 as noble } from '@noble/curves/ed25519.js'
import { bytesToNumberLE } from '@noble/curves/utils.js'
import { sha256, sha512 } from '@noble/hashes/sha2.js'
import { base64url } from 'multiformats/bases/base64'
import { RecentMap } from '../recent-map.ts'
import { InvalidKeyError } from './errors.ts'

export const SECRET_KEY_LENGTH = 32
export const PUBLIC_KEY_LENGTH = 32
export const SIGNATURE_LENGTH = 64

/** A secret key made ready to sign: imported once, however many messages it signs. */
export interface PreparedKey {
  readonly publicKey: Uint8Array
  sign(message: Uint8Array): Promise<Uint8Array>
}

export interface Ed25519 {
  readonly name: 'webcrypto' | 'noble' | 'node'
  /** Signs with a 32-byte secret key (the RFC 8032 seed). */
  sign(secretKey: Uint8Array, message: Uint8Array): Promise<Uint8Array>
  /** False for a bad signature; throws InvalidKeyError only for inputs of the wrong length. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>
  publicKey(secretKey: Uint8Array): Promise<Uint8Array>
  /** The key ready to sign many messages (what a long-lived signer holds). */
  prepare(secretKey: Uint8Array): Promise<PreparedKey>
  /**
   * Each item's verify, by the same rules, in order; the back end may check them in parallel
   * (Node: libsodium on the calling thread and a helper thread, or OpenSSL on libuv's pool;
   * WebCrypto concurrently). For a caller holding several at once.
   */
  verifyMany(items: readonly SignedMessage[]): Promise<boolean[]>
}

export interface SignedMessage {
  publicKey: Uint8Array
  message: Uint8Array
  signature: Uint8Array
}

/** The fixed PKCS#8 header of an Ed25519 private key; the 32-byte seed follows it. */
export const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20
])

/** The fixed SPKI header of an Ed25519 public key; the 32-byte key follows it. */
export const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00])

/**
 * The encodings of the eight points of small order (the torsion subgroup), and the two
 * non-canonical ones with y < p: x = 0 with its sign bit set.
 */
const SMALL_ORDER = [
  '0100000000000000000000000000000000000000000000000000000000000000',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  '0000000000000000000000000000000000000000000000000000000000000080',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  '0000000000000000000000000000000000000000000000000000000000000000',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  '0100000000000000000000000000000000000000000000000000000000000080',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff'
].map(hex => Uint8Array.from(hex.match(/../g) as string[], b => parseInt(b, 16)))

/** The group order L, little-endian. */
const ORDER_LE = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0x10
])

function equalAt(a: Uint8Array, offset: number, b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (a[offset + i] !== b[i]) return false
  return true
}

function isSmallOrderEncoding(bytes: Uint8Array, offset: number): boolean {
  // every small-order encoding starts with one of these bytes: one comparison for nearly all keys
  const first = bytes[offset]
  if (first !== 0x00 && first !== 0x01 && first !== 0x26 && first !== 0xc7 && first !== 0xec) return false
  return SMALL_ORDER.some(point => equalAt(bytes, offset, point))
}

/** Whether the little-endian number at `offset` (32 bytes, top bit masked when `mask`) is below `bound`. */
function lessThan(bytes: Uint8Array, offset: number, bound: Uint8Array, mask: boolean): boolean {
  for (let i = 31; i >= 0; i--) {
    const b = i === 31 && mask ? bytes[offset + i] & 0x7f : bytes[offset + i]
    if (b !== bound[i]) return b < bound[i]
  }
  return false
}

/** p = 2^255 − 19, little-endian. */
const FIELD_LE = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 0xed : i === 31 ? 0x7f : 0xff))

/**
 * The strict rules' checks of a public key that need no curve arithmetic: 32 bytes, y canonical
 * (y < p), not one of the eight small-order points. (That it decodes to a point at all is the
 * verifier's to find.) Every back end makes it; a back end that caches keys makes it once per key.
 */
export function isStrictPublicKey(publicKey: Uint8Array): boolean {
  return (
    publicKey.length === PUBLIC_KEY_LENGTH &&
    lessThan(publicKey, 0, FIELD_LE, true) &&
    !isSmallOrderEncoding(publicKey, 0)
  )
}

/** The strict rules' checks of a signature that need no curve arithmetic: 64 bytes, R not of small order, S < L. */
export function isStrictSignature(signature: Uint8Array): boolean {
  return (
    signature instanceof Uint8Array &&
    signature.length === SIGNATURE_LENGTH &&
    // S < L, nearly always decided by its top byte
    (signature[63] < 0x10 || lessThan(signature, 32, ORDER_LE, false)) &&
    // R canonical (y < p): the equation's encoding never matches one that is not, whatever a
    // runtime's WebCrypto makes of it
    lessThan(signature, 0, FIELD_LE, true) &&
    !isSmallOrderEncoding(signature, 0)
  )
}

/** Throws InvalidKeyError unless `bytes` is a Uint8Array of `length` bytes (every back end's input check). */
export function checkBytes(what: string, bytes: Uint8Array, length: number): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new InvalidKeyError(`${what} must be ${length} bytes`)
  }
}

/** Each item's `backend.verify`, all started at once: verifyMany for a back end with no better way. */
export async function verifyEach(backend: Ed25519, items: readonly SignedMessage[]): Promise<boolean[]> {
  return await Promise.all(items.map(async i => await backend.verify(i.publicKey, i.message, i.signature)))
}

/** A fresh PKCS#8 DER of the seed, in memory of its own: the caller wipes it once imported. */
export function pkcs8Of(secretKey: Uint8Array): Uint8Array<ArrayBuffer> {
  const der = new Uint8Array(PKCS8_PREFIX.length + SECRET_KEY_LENGTH)
  der.set(PKCS8_PREFIX)
  der.set(secretKey, PKCS8_PREFIX.length)
  return der
}

/** The bytes as a string, to key a map by their content. */
function bytesKey(bytes: Uint8Array): string {
  // apply takes the typed array as it is (a spread builds an argument list first: 7× slower)
  return String.fromCharCode.apply(null, bytes as unknown as number[])
}

const Point = noble.Point
const Fn = Point.Fn

/** The cofactorless check with noble's arithmetic: [S]B − [k]A encodes to exactly R. */
function nobleVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!isStrictPublicKey(publicKey) || !isStrictSignature(signature)) return false
  let A: typeof Point.BASE
  try {
    A = Point.fromBytes(publicKey, false)
  } catch {
    return false // not a point
  }
  const r = signature.subarray(0, 32)
  const s = bytesToNumberLE(signature.subarray(32))
  const hashed = new Uint8Array(64 + message.length)
  hashed.set(r)
  hashed.set(publicKey, 32)
  hashed.set(message, 64)
  const k = Fn.create(bytesToNumberLE(sha512(hashed)))
  const computed = Point.BASE.multiplyUnsafe(s).subtract(A.multiplyUnsafe(k)).toBytes()
  return equalAt(computed, 0, r)
}

export const nobleEd25519: Ed25519 = {
  name: 'noble',
  async sign(secretKey, message) {
    checkBytes('secret key', secretKey, SECRET_KEY_LENGTH)
    return noble.sign(message, secretKey)
  },
  async verify(publicKey, message, signature) {
    checkBytes('public key', publicKey, PUBLIC_KEY_LENGTH)
    try {
      return nobleVerify(publicKey, message, signature)
    } catch {
      return false
    }
  },
  async publicKey(secretKey) {
    checkBytes('secret key', secretKey, SECRET_KEY_LENGTH)
    return noble.getPublicKey(secretKey)
  },
  async prepare(secretKey) {
    checkBytes('secret key', secretKey, SECRET_KEY_LENGTH)
    const seed = secretKey.slice()
    return { publicKey: noble.getPublicKey(seed), sign: async message => noble.sign(message, seed) }
  },
  async verifyMany(items) {
    return await verifyEach(nobleEd25519, items)
  }
}

export interface KeyCacheSizes {
  /** Public keys held imported, least recently used forgotten first; default 4096. */
  publicKeys?: number
  /** Private keys held imported (with their public keys); default 64. */
  privateKeys?: number
}

export const DEFAULT_PUBLIC_KEYS = 4096
export const DEFAULT_PRIVATE_KEYS = 64

interface ImportedPrivate {
  key: CryptoKey
  publicKey?: Uint8Array
}

/**
 * Ed25519 on WebCrypto. Imported keys are kept in bounded caches (public keys by their bytes,
 * private keys by a digest of their seed), so a signature no longer imports its key; calls that are not
 * awaited one by one run concurrently in the runtime's crypto.
 */
export function webCryptoEd25519(subtle: SubtleCrypto, sizes: KeyCacheSizes = {}): Ed25519 {
  const algorithm = { name: 'Ed25519' }
  // a key whose import fails (not a point, refused by the strict rules) is held as null
  const publicKeys = new RecentMap<string, Promise<CryptoKey | null>>(sizes.publicKeys ?? DEFAULT_PUBLIC_KEYS)
  const privateKeys = new RecentMap<string, Promise<ImportedPrivate>>(sizes.privateKeys ?? DEFAULT_PRIVATE_KEYS)

  const publicKeyOf = async (publicKey: Uint8Array): Promise<CryptoKey | null> => {
    const id = bytesKey(publicKey)
    let key = publicKeys.get(id)
    if (key == null) {
      key = isStrictPublicKey(publicKey)
        ? subtle.importKey('raw', publicKey.slice() as BufferSource, algorithm, false, ['verify']).catch(() => null)
        : Promise.resolve(null)
      publicKeys.set(id, key)
    }
    return await key
  }
  /**
   * The key imported for `secretKey`. Only `sign` remembers it (`remember`): a prepared key holds
   * its own, and a public key asked for once leaves nothing behind, so a seed its owner zeroes
   * (an agent's, when it stops) is not kept usable in a process-wide cache.
   */
  const privateKeyOf = async (secretKey: Uint8Array, remember: boolean): Promise<ImportedPrivate> => {
    checkBytes('secret key', secretKey, SECRET_KEY_LENGTH)
    // keyed by a digest: no copy of the seed in a string, which could not be wiped
    const id = bytesKey(sha256(secretKey))
    let entry = privateKeys.get(id)
    if (entry == null) {
      const pkcs8 = pkcs8Of(secretKey)
      // importKey copies its input before it returns: the seed's copy here is wiped at once
      const importing = subtle.importKey('pkcs8', pkcs8, algorithm, true, ['sign'])
      pkcs8.fill(0)
      entry = importing.then(key => ({ key }))
      if (!remember) return await entry
      privateKeys.set(id, entry)
      // a failed import is not remembered
      entry.catch(() => privateKeys.delete(id))
    }
    return await entry
  }
  const publicKeyFrom = async (imported: ImportedPrivate): Promise<Uint8Array> => {
    if (imported.publicKey == null) {
      const jwk = await subtle.exportKey('jwk', imported.key)
      if (typeof jwk.x !== 'string') throw new InvalidKeyError('WebCrypto did not export the public key')
      imported.publicKey = base64url.baseDecode(jwk.x)
    }
    return imported.publicKey.slice()
  }
  const signWith = async (key: CryptoKey, message: Uint8Array): Promise<Uint8Array> =>
    new Uint8Array(await subtle.sign(algorithm, key, message as BufferSource))
  const backend: Ed25519 = {
    name: 'webcrypto',
    async sign(secretKey, message) {
      return await signWith((await privateKeyOf(secretKey, true)).key, message)
    },
    async verify(publicKey, message, signature) {
      checkBytes('public key', publicKey, PUBLIC_KEY_LENGTH)
      if (!isStrictSignature(signature)) return false
      const key = await publicKeyOf(publicKey)
      if (key == null) return false
      try {
        return await subtle.verify(algorithm, key, signature as BufferSource, message as BufferSource)
      } catch {
        return false
      }
    },
    async publicKey(secretKey) {
      return await publicKeyFrom(await privateKeyOf(secretKey, false))
    },
    async prepare(secretKey) {
      const imported = await privateKeyOf(secretKey, false)
      const publicKey = await publicKeyFrom(imported)
      return { publicKey, sign: async message => await signWith(imported.key, message) }
    },
    async verifyMany(items) {
      return await verifyEach(backend, items)
    }
  }
  return backend
}

let installed: Ed25519 | undefined
let detected: Promise<Ed25519 | undefined> | undefined

/** The runtime's WebCrypto back end if it has Ed25519 (checked once, by signing and verifying a test message). */
function detectWebCrypto(): Promise<Ed25519 | undefined> {
  detected ??= (async () => {
    const subtle = globalThis.crypto?.subtle
    if (subtle == null) return undefined
    try {
      const candidate = webCryptoEd25519(subtle)
      const secret = new Uint8Array(SECRET_KEY_LENGTH).fill(7)
      const message = new Uint8Array([1, 2, 3])
      const sig = await candidate.sign(secret, message)
      const ok = await candidate.verify(await candidate.publicKey(secret), message, sig)
      return ok ? candidate : undefined
    } catch {
      return undefined
    }
  })()
  return detected
}

/**
 * Makes `backend` the one `ed25519()` returns from now on (a platform calls it at start: Node
 * installs its node:crypto back end). Returns the one installed before, if any, so a test can put
 * it back; `undefined` returns to detection.
 */
export function useEd25519(backend: Ed25519 | undefined): Ed25519 | undefined {
  const before = installed
  installed = backend
  return before
}

/** The installed back end, else WebCrypto if this runtime supports Ed25519, else noble. */
export async function ed25519(): Promise<Ed25519> {
  if (installed != null) return installed
  return (await detectWebCrypto()) ?? nobleEd25519
}

/** The WebCrypto back end, or undefined where the runtime lacks Ed25519 (for tests and benchmarks). */
export async function webCrypto(): Promise<Ed25519 | undefined> {
  return await detectWebCrypto()
}
