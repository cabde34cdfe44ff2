/**
 * Ed25519 signing and verification with two interchangeable back ends: WebCrypto (native, where
 * the runtime has Ed25519: Node 24, current Chromium, Firefox, Safari) and @noble/curves (pure JS,
 * everywhere). Both verify by RFC 8032's strict rules (noble with ZIP-215 off), so a signature one
 * accepts the other accepts; the tests check each against the other and against RFC 8032 vectors.
 *
 * @example
 * const ed = await ed25519()               // WebCrypto if present, else noble
 * const sig = await ed.sign(secretKey, message)
 * await ed.verify(publicKey, message, sig) // true
 */
import { ed25519 as noble } from '@noble/curves/ed25519.js'
import { base64url } from 'multiformats/bases/base64'
import { InvalidKeyError } from './errors.ts'

export const SECRET_KEY_LENGTH = 32
export const PUBLIC_KEY_LENGTH = 32
export const SIGNATURE_LENGTH = 64

export interface Ed25519 {
  readonly name: 'webcrypto' | 'noble'
  /** Signs with a 32-byte secret key (the RFC 8032 seed). */
  sign(secretKey: Uint8Array, message: Uint8Array): Promise<Uint8Array>
  /** False for a bad signature; throws InvalidKeyError only for inputs of the wrong length. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>
  publicKey(secretKey: Uint8Array): Promise<Uint8Array>
}

/** The fixed PKCS#8 header of an Ed25519 private key; the 32-byte seed follows it. */
const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20
])

function check(what: string, bytes: Uint8Array, length: number): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new InvalidKeyError(`${what} must be ${length} bytes`)
  }
}

export const nobleEd25519: Ed25519 = {
  name: 'noble',
  async sign(secretKey, message) {
    check('secret key', secretKey, SECRET_KEY_LENGTH)
    return noble.sign(message, secretKey)
  },
  async verify(publicKey, message, signature) {
    check('public key', publicKey, PUBLIC_KEY_LENGTH)
    if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH) return false
    try {
      return noble.verify(signature, message, publicKey, { zip215: false })
    } catch {
      return false
    }
  },
  async publicKey(secretKey) {
    check('secret key', secretKey, SECRET_KEY_LENGTH)
    return noble.getPublicKey(secretKey)
  }
}

function webCryptoEd25519(subtle: SubtleCrypto): Ed25519 {
  const algorithm = { name: 'Ed25519' }
  const privateKey = async (secretKey: Uint8Array): Promise<CryptoKey> => {
    check('secret key', secretKey, SECRET_KEY_LENGTH)
    const pkcs8 = new Uint8Array(PKCS8_PREFIX.length + SECRET_KEY_LENGTH)
    pkcs8.set(PKCS8_PREFIX)
    pkcs8.set(secretKey, PKCS8_PREFIX.length)
    return await subtle.importKey('pkcs8', pkcs8, algorithm, true, ['sign'])
  }
  return {
    name: 'webcrypto',
    async sign(secretKey, message) {
      return new Uint8Array(await subtle.sign(algorithm, await privateKey(secretKey), message as BufferSource))
    },
    async verify(publicKey, message, signature) {
      check('public key', publicKey, PUBLIC_KEY_LENGTH)
      if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH) return false
      try {
        const key = await subtle.importKey('raw', publicKey as BufferSource, algorithm, false, ['verify'])
        return await subtle.verify(algorithm, key, signature as BufferSource, message as BufferSource)
      } catch {
        // an encoding that is not a point on the curve
        return false
      }
    },
    async publicKey(secretKey) {
      const jwk = await subtle.exportKey('jwk', await privateKey(secretKey))
      if (typeof jwk.x !== 'string') throw new InvalidKeyError('WebCrypto did not export the public key')
      return base64url.baseDecode(jwk.x)
    }
  }
}

let detected: Promise<Ed25519> | undefined

/**
 * The WebCrypto back end if this runtime supports Ed25519 (checked once, by signing and
 * verifying a test message), otherwise noble.
 */
export async function ed25519(): Promise<Ed25519> {
  detected ??= (async () => {
    const subtle = globalThis.crypto?.subtle
    if (subtle == null) return nobleEd25519
    try {
      const candidate = webCryptoEd25519(subtle)
      const secret = new Uint8Array(SECRET_KEY_LENGTH).fill(7)
      const message = new Uint8Array([1, 2, 3])
      const sig = await candidate.sign(secret, message)
      const ok = await candidate.verify(await candidate.publicKey(secret), message, sig)
      return ok ? candidate : nobleEd25519
    } catch {
      return nobleEd25519
    }
  })()
  return await detected
}

/** The WebCrypto back end, or undefined where the runtime lacks Ed25519 (for tests and benchmarks). */
export async function webCrypto(): Promise<Ed25519 | undefined> {
  const chosen = await ed25519()
  return chosen.name === 'webcrypto' ? chosen : undefined
}
