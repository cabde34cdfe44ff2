/**
 * C2SP's CCTV Ed25519 vectors (test/crypto/fixtures, 914 signatures over every edge case of the
 * points A and R: small order, mixed order, non-canonical encodings, torsion left or cleared):
 * every back end, and both libraries the Node back end can verify with, gives each the answer
 * OpenSSL's own cofactorless check gives it, alone and in batches through verifyMany.
 */
import { strict as assert } from 'node:assert'
import { createPublicKey, verify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { hasSodium, nodeEd25519 } from '../../node/ed25519.ts'
import { nobleEd25519, SPKI_PREFIX, webCrypto } from '../../src/crypto/ed25519.ts'
import type { Ed25519, SignedMessage } from '../../src/crypto/ed25519.ts'

interface Vector {
  number: number
  key: string
  sig: string
  msg: string
  flags: string[] | null
}

const vectors = JSON.parse(
  readFileSync(new URL('./fixtures/cctv-ed25519vectors.json', import.meta.url), 'utf8')
) as Vector[]
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
const items: SignedMessage[] = vectors.map(v => ({
  publicKey: hex(v.key),
  message: new TextEncoder().encode(v.msg),
  signature: hex(v.sig)
}))

/** OpenSSL's answer with none of our checks before it: the reference. */
function openssl({ publicKey, message, signature }: SignedMessage): boolean {
  try {
    const key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' })
    return verify(null, message, key, signature)
  } catch {
    return false
  }
}

describe('Ed25519: C2SP CCTV vectors', function () {
  this.timeout(60_000)
  const expected = items.map(openssl)
  const backEnds = async (): Promise<Array<[string, Ed25519]>> => {
    const subtle = await webCrypto()
    assert.ok(subtle != null, 'Node has WebCrypto Ed25519')
    return [
      ['node (libsodium, as installed)', nodeEd25519()],
      ['node (OpenSSL)', nodeEd25519({ verifier: 'openssl' })],
      ['webcrypto', subtle],
      ['noble', nobleEd25519]
    ]
  }

  it('holds all 914, some of which OpenSSL accepts, across every kind of edge case', () => {
    assert.equal(vectors.length, 914)
    const accepted = expected.filter(Boolean).length
    assert.ok(accepted > 0 && accepted < 914, `${accepted} accepted`)
    const flags = new Set(vectors.flatMap(v => v.flags ?? []))
    for (const flag of ['low_order_A', 'low_order_R', 'non_canonical_A', 'non_canonical_R', 'low_order_residue']) {
      assert.ok(flags.has(flag), flag)
    }
  })

  it('libsodium is what the Node back end verifies with on this platform', () => {
    // a prebuilt binary ships for linux-x64: if it stops loading, the OpenSSL case below is all that runs
    assert.equal(hasSodium, true)
  })

  it('each back end gives every vector OpenSSL’s answer, one at a time', async () => {
    for (const [name, backend] of await backEnds()) {
      for (const [i, item] of items.entries()) {
        assert.equal(
          await backend.verify(item.publicKey, item.message, item.signature),
          expected[i],
          `${name}, vector ${vectors[i].number} (${(vectors[i].flags ?? []).join(' ')})`
        )
      }
    }
  })

  it('verifyMany gives the same answers, in order, in batches of every size up to 40', async () => {
    for (const [name, backend] of await backEnds()) {
      if (name === 'noble') continue // verifyMany is verify per item there
      let start = 0
      for (let size = 1; start < items.length; size = (size % 40) + 1) {
        const got = await backend.verifyMany(items.slice(start, start + size))
        assert.deepEqual(got, expected.slice(start, start + size), `${name}, vectors ${start}…${start + size - 1}`)
        start += size
      }
    }
  })

  it('concurrent verifyMany calls each get their own answers (libsodium, and OpenSSL on the thread pool)', async () => {
    const batches = Array.from({ length: 30 }, (_, b) => items.slice(b * 30, b * 30 + 30))
    for (const backend of [nodeEd25519(), nodeEd25519({ verifier: 'openssl' })]) {
      const got = await Promise.all(batches.map(async batch => await backend.verifyMany(batch)))
      assert.deepEqual(got.flat(), expected.slice(0, got.flat().length))
    }
  })
})
