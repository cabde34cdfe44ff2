/**
 * The Ed25519 back ends attacked (issue 17): caches that could be poisoned, flooded or keep
 * secrets, and inputs of the wrong type. Each back end with caches is run with tiny caches so
 * that eviction happens within the test.
 */
import { strict as assert } from 'node:assert'
import { ed25519 as noble } from '@noble/curves/ed25519.js'
import { nodeEd25519 } from '../../node/ed25519.ts'
import { nobleEd25519, webCrypto, webCryptoEd25519 } from '../../src/crypto/ed25519.ts'
import type { Ed25519, KeyCacheSizes } from '../../src/crypto/ed25519.ts'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
/** An encoding of the point of order 2 (small order: refused as a key by every back end). */
const ORDER_2 = hex('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f')

async function backEnds(sizes: KeyCacheSizes): Promise<Ed25519[]> {
  const out: Ed25519[] = [nobleEd25519, nodeEd25519(sizes)]
  if ((await webCrypto()) != null) out.push(webCryptoEd25519(globalThis.crypto.subtle, sizes))
  return out
}

const seed = (fill: number): Uint8Array => new Uint8Array(32).fill(fill)

describe('Ed25519 back ends under attack', () => {
  it('leaves no copy of a secret seed in the Buffer pool that Buffer.allocUnsafe hands out', async () => {
    // Buffer.concat and Buffer.from(array) draw small buffers from one shared pool that is never
    // wiped: a seed copied there outlives the caller's seed.fill(0), and the next
    // Buffer.allocUnsafe (anywhere in the process: a codec, a socket write) may hand it out
    const secret = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff)
    // Buffer.alloc is never pooled: the probe itself is not in the pool
    const probe = Buffer.alloc(32, secret)
    const found = (): boolean => Buffer.from(Buffer.allocUnsafe(1).buffer).indexOf(probe) !== -1
    assert.equal(found(), false, 'the seed is in the pool before the back end sees it')
    const ed = nodeEd25519()
    const message = utf8('m')
    const sig = await ed.sign(secret, message)
    const prepared = await ed.prepare(secret)
    await ed.publicKey(secret)
    secret.fill(0)
    assert.equal(await ed.verify(prepared.publicKey, message, sig), true)
    assert.equal(found(), false, 'the seed lingers in the shared Buffer pool after signing')
  })

  it('a key mutated in place after a cached verification is judged by its new bytes', async () => {
    for (const ed of await backEnds({ publicKeys: 4, privateKeys: 4 })) {
      const a = await ed.prepare(seed(1))
      const b = await ed.prepare(seed(2))
      const message = utf8('pay 10 to a')
      const sigA = await a.sign(message)
      const key = a.publicKey.slice()
      assert.equal(await ed.verify(key, message, sigA), true, ed.name)
      // the same array now holds b's key: a's signature must not verify under it
      key.set(b.publicKey)
      assert.equal(await ed.verify(key, message, sigA), false, `${ed.name}: cache aliased a mutated key`)
      assert.equal(await ed.verify(key, message, await b.sign(message)), true, ed.name)
      // and a seed mutated after prepare does not change what the prepared key signs with
      const s = seed(3)
      const c = await ed.prepare(s)
      s.fill(4)
      const sigC = await c.sign(message)
      assert.equal(await ed.verify(c.publicKey, message, sigC), true, ed.name)
      assert.equal(noble.verify(sigC, message, noble.getPublicKey(seed(3))), true, ed.name)
    }
  })

  it('a flood of refused and unknown keys evicts entries but changes no answer, and prepared keys keep signing', async () => {
    for (const ed of await backEnds({ publicKeys: 2, privateKeys: 1 })) {
      const good = await ed.prepare(seed(9))
      const message = utf8('hello')
      const sig = await good.sign(message)
      assert.equal(await ed.verify(ORDER_2, message, sig), false, ed.name)
      assert.equal(await ed.verify(good.publicKey, message, sig), true, ed.name)
      // 20 keys from a peer, each cached then evicted (bounded count, no timing involved)
      for (let i = 0; i < 20; i++) {
        const junk = Uint8Array.from({ length: 32 }, (_, j) => (i * 31 + j * 7) & 0x7f)
        await ed.verify(junk, message, sig)
        await ed.sign(seed(100 + i), message) // evicts the private-key cache as well
      }
      assert.equal(await ed.verify(ORDER_2, message, sig), false, `${ed.name}: a refused key became good`)
      assert.equal(await ed.verify(good.publicKey, message, sig), true, ed.name)
      const again = await good.sign(message)
      assert.equal(await ed.verify(good.publicKey, message, again), true, `${ed.name}: prepared key after eviction`)
    }
  })

  it('inputs of the wrong type give false or InvalidKeyError, never another error', async () => {
    for (const ed of await backEnds({})) {
      const k = await ed.prepare(seed(5))
      const message = utf8('x')
      const sig = await k.sign(message)
      const weird: unknown[] = [
        undefined,
        null,
        'a'.repeat(64),
        Array.from(sig),
        sig.subarray(0, 63),
        new Uint16Array(64)
      ]
      for (const s of weird) {
        assert.equal(
          await ed.verify(k.publicKey, message, s as Uint8Array),
          false,
          `${ed.name}: signature ${String(s)}`
        )
      }
      for (const key of [undefined, 'k'.repeat(32), Array.from(k.publicKey), k.publicKey.subarray(1)]) {
        await assert.rejects(ed.verify(key as Uint8Array, message, sig), { name: 'InvalidKeyError' }, ed.name)
      }
      for (const s of [undefined, 's'.repeat(32), Array.from(seed(5)), seed(5).subarray(1)]) {
        await assert.rejects(ed.sign(s as Uint8Array, message), { name: 'InvalidKeyError' }, ed.name)
        await assert.rejects(ed.prepare(s as Uint8Array), { name: 'InvalidKeyError' }, ed.name)
      }
    }
  })
})
