/**
 * Attacker against the libsodium back end (node/ed25519.ts): no input on which it and OpenSSL (and
 * the strict pure implementation) disagree, since nodes on different back ends must accept the
 * same signatures; each of many concurrent verifyMany calls gets the answers verify gives, items
 * of any message size included, from libsodium and OpenSSL alike.
 */
import { strict as assert } from 'node:assert'
import { nodeEd25519, hasSodium, sodiumPath } from '../../node/ed25519.ts'
import { VerifyHelper } from '../../node/verify-helper.ts'
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import { candidates } from './forgeries.ts'

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
    // libsodium on a helper thread that runs (the process's may still be starting), and alone
    const helper = new VerifyHelper(sodiumPath!)
    try {
      assert.equal(await helper.start(), true)
      const backends = {
        'libsodium + helper thread': nodeEd25519({ helper }),
        'libsodium alone': nodeEd25519({ helper: false }),
        OpenSSL: nodeEd25519({ verifier: 'openssl' })
      }
      for (const [name, backend] of Object.entries(backends)) {
        const answers = await Promise.all(slices.map(async slice => await backend.verifyMany(slice.map(s => s.item))))
        for (const [c, slice] of slices.entries())
          assert.deepEqual(
            answers[c],
            slice.map(({ n }) => expected[n]),
            `${name}, call ${c}`
          )
      }
      assert.ok(helper.counts.batches > 0, 'no batch was shared with the helper thread')
    } finally {
      await helper.stop()
    }
  })
})
