/**
 * Attacker against the libsodium back end (node/ed25519.ts): no input on which it and OpenSSL (and
 * the strict pure implementation) disagree, since nodes on different back ends must accept the
 * same signatures; each of many concurrent verifyMany calls gets the answers verify gives, items
 * of any message size included, from libsodium and OpenSSL alike.
 */
import { strict as assert } from 'node:assert'
import { randomBytes } from 'node:crypto'
import { ed25519 as noble } from '@noble/curves/ed25519.js'
import { nodeEd25519, hasSodium } from '../../node/ed25519.ts'
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import type { SignedMessage } from '../../src/crypto/ed25519.ts'

/** A signed item, then one of several mutations an attacker would try. */
function candidates(count: number): SignedMessage[] {
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

describe('attack17c: the libsodium back end agrees with OpenSSL and the strict rules', function () {
  this.timeout(120_000)
  const items = candidates(400)

  it('verify: libsodium, OpenSSL and the strict pure implementation give each input the same answer', async () => {
    assert.ok(hasSodium, 'sodium-native loads here')
    const sodium = nodeEd25519({ verifier: 'sodium' })
    const openssl = nodeEd25519({ verifier: 'openssl' })
    let valid = 0
    for (const [n, { publicKey, message, signature }] of items.entries()) {
      const expected = await nobleEd25519.verify(publicKey, message, signature)
      if (expected) valid++
      assert.equal(await sodium.verify(publicKey, message, signature), expected, `libsodium, case ${n}`)
      assert.equal(await openssl.verify(publicKey, message, signature), expected, `OpenSSL, case ${n}`)
    }
    // the honest ones (every eighth) pass, so the agreement above is not all refusals
    for (let n = 0; n < items.length; n += 8)
      assert.equal(await nobleEd25519.verify(items[n].publicKey, items[n].message, items[n].signature), true)
    assert.ok(valid >= items.length / 8)
  })

  it('verifyMany (libsodium, OpenSSL): 8 concurrent calls each get the answers verify gives, in order', async () => {
    const expected = await Promise.all(
      items.map(async i => await nobleEd25519.verify(i.publicKey, i.message, i.signature))
    )
    const slices = Array.from({ length: 8 }, (_, c) =>
      items.map((item, n) => ({ item, n })).filter(({ n }) => n % 8 !== c)
    )
    for (const verifier of ['sodium', 'openssl'] as const) {
      const backend = nodeEd25519({ verifier })
      const answers = await Promise.all(slices.map(async slice => await backend.verifyMany(slice.map(s => s.item))))
      for (const [c, slice] of slices.entries())
        assert.deepEqual(
          answers[c],
          slice.map(({ n }) => expected[n]),
          `${verifier}, call ${c}`
        )
    }
  })
})
