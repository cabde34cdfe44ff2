/** Signed items and the forgeries an attacker would try on them, for the Ed25519 back ends' tests. */
import { randomBytes } from 'node:crypto'
import { ed25519 as noble } from '@noble/curves/ed25519.js'
import type { SignedMessage } from '../../src/crypto/ed25519.ts'

/** A signed item, then one of several mutations an attacker would try. */
export function candidates(count: number): SignedMessage[] {
  const out: SignedMessage[] = []
  const L = noble.Point.Fn.ORDER
  for (let i = 0; i < count; i++) {
    const secret = randomBytes(32)
    const publicKey = noble.getPublicKey(secret)
    const sizes = [0, 1, 31, 64, 1000, 40_000, 70_000]
    const message = new Uint8Array(randomBytes(sizes[i % sizes.length]))
    const signature = noble.sign(message, secret)
    const flip = (bytes: Uint8Array): Uint8Array => {
      const copy = bytes.slice()
      if (copy.length > 0) copy[i % copy.length] ^= 1 << (i % 8)
      return copy
    }
    switch (i % 8) {
      case 0:
        out.push({ publicKey, message, signature })
        break
      case 1:
        out.push({ publicKey, message, signature: flip(signature) })
        break
      case 2:
        out.push({ publicKey: flip(publicKey), message, signature })
        break
      case 3:
        out.push({ publicKey, message: flip(message), signature })
        break
      case 4: {
        // S + L: the same point, not canonical
        let s = 0n
        for (let b = 63; b >= 32; b--) s = (s << 8n) | BigInt(signature[b])
        s += L
        const sig = signature.slice()
        for (let b = 32; b < 64; b++, s >>= 8n) sig[b] = Number(s & 0xffn)
        out.push({ publicKey, message, signature: sig })
        break
      }
      case 5:
        // the key's sign bit flipped: the negated point (another key), or not a point
        out.push({ publicKey: Uint8Array.from(publicKey, (b, j) => (j === 31 ? b ^ 0x80 : b)), message, signature })
        break
      case 6:
        out.push({ publicKey: new Uint8Array(randomBytes(32)), message, signature: new Uint8Array(randomBytes(64)) })
        break
      default:
        // R of another honest signature of the same message
        out.push({
          publicKey,
          message,
          signature: new Uint8Array([
            ...noble.sign(message, randomBytes(32)).subarray(0, 32),
            ...signature.subarray(32)
          ])
        })
    }
  }
  return out
}
