import { strict as assert } from 'node:assert'
import {
  combineDecryption,
  decryptionShare,
  encryptToGroup,
  verifyDecryptionShare
} from '../../src/threshold/decrypt.ts'
import { dealShares, reconstructSecret, scalarFromSeed } from '../../src/threshold/dealer.ts'
import { frost } from '../../src/threshold/group.ts'
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import { dealtGroup, members } from './fixtures.ts'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

describe('threshold decryption', () => {
  it('round-trips with any t of n shares, and t-1 reveal nothing usable', async () => {
    const { keys } = dealtGroup(await members(5), 3)
    const pub = keys[0].public
    const message = utf8('the cluster secret')
    const ct = encryptToGroup(pub.commitments[0], message, utf8('label'))
    const shares = keys.map(k => decryptionShare(k, ct))
    for (const pick of [
      [0, 1, 2],
      [2, 3, 4],
      [4, 0, 3]
    ]) {
      assert.deepEqual(
        combineDecryption(
          pub,
          ct,
          pick.map(i => shares[i]),
          utf8('label')
        ),
        message
      )
    }
    assert.throws(() => combineDecryption(pub, ct, shares.slice(0, 2), utf8('label')), {
      name: 'NotEnoughSignersError'
    })
    // the same share twice does not count twice
    assert.throws(() => combineDecryption(pub, ct, [shares[0], shares[0], shares[1]]), {
      name: 'NotEnoughSignersError'
    })
    // with t-1 shares, pretending a third member's share is anything else opens nothing
    const fake = { ...shares[2], identifier: keys[2].secret.identifier, share: shares[3].share }
    assert.throws(() => combineDecryption(pub, ct, [shares[0], shares[1], fake], utf8('label')), {
      name: 'InvalidShareError'
    })
    // the label is bound
    assert.throws(() => combineDecryption(pub, ct, shares.slice(0, 3), utf8('other')), { name: 'DecryptionError' })
  })

  it('detects a bad decryption share by its proof, naming its member', async () => {
    const { keys } = dealtGroup(await members(4), 2)
    const pub = keys[0].public
    const ct = encryptToGroup(pub.commitments[0], utf8('x'))
    const good = decryptionShare(keys[1], ct)
    // a share computed with the wrong scalar, with a proof for that wrong scalar
    const other = dealtGroup(await members(4), 2).keys[1]
    const wrong = {
      ...decryptionShare({ public: pub, secret: { ...other.secret, identifier: keys[1].secret.identifier } }, ct)
    }
    assert.throws(
      () => verifyDecryptionShare(pub, ct, wrong),
      (err: Error & { message: string }) => {
        return err.name === 'InvalidShareError' && err.message.includes(keys[1].secret.identifier.slice(0, 16))
      }
    )
    // a tampered proof, a malformed point, the identity, a small-order point
    const tamperedProof = good.proof.slice()
    tamperedProof[40] ^= 1
    assert.throws(() => verifyDecryptionShare(pub, ct, { ...good, proof: tamperedProof }), {
      name: /InvalidShareError|InvalidScalarError/
    })
    const identity = new Uint8Array(32)
    identity[0] = 1
    const smallOrder = new Uint8Array(32) // y = 0: order 4
    for (const share of [identity, smallOrder, new Uint8Array(31), new Uint8Array(32).fill(0xff)]) {
      assert.throws(() => verifyDecryptionShare(pub, ct, { ...good, share }), { name: 'InvalidPointError' })
    }
    assert.throws(() => verifyDecryptionShare(pub, { ...ct, ephemeral: identity }, good), { name: 'InvalidPointError' })
    assert.throws(() => encryptToGroup(smallOrder, utf8('x')), { name: 'InvalidPointError' })
  })
})

describe('dealer mode (Shamir)', () => {
  it('splits an existing Ed25519 key so t members sign for it, and reconstructs it', async () => {
    const ms = await members(5)
    const seed = crypto.getRandomValues(new Uint8Array(32))
    const secret = scalarFromSeed(seed)
    const dealt = dealShares(
      secret,
      ms.map(m => m.id),
      3
    )
    // the group key is the original key's public key
    assert.deepEqual(dealt.public.commitments[0], await nobleEd25519.publicKey(seed))
    const shares = ms.map(m => dealt.shares.get(m.id)!)
    assert.deepEqual(reconstructSecret(dealt.public, shares.slice(1, 4)), secret)
    assert.deepEqual(reconstructSecret(dealt.public, [shares[4], shares[0], shares[2]]), secret)
    assert.throws(() => reconstructSecret(dealt.public, shares.slice(0, 2)), { name: 'NotEnoughSignersError' })
    const corrupt = { ...shares[0], signingShare: shares[1].signingShare }
    assert.throws(() => reconstructSecret(dealt.public, [corrupt, shares[1], shares[2]]), { name: 'InvalidShareError' })
    // and a signature from the reconstructed scalar verifies as plain Ed25519
    const msg = utf8('recovered')
    assert.ok(await nobleEd25519.verify(dealt.public.commitments[0], msg, frost.sign(msg, secret)))
  })

  it('refuses bad group parameters', async () => {
    const ms = (await members(3)).map(m => m.id)
    for (const [list, t] of [
      [ms, 1],
      [ms, 4],
      [[ms[0]], 1],
      [[ms[0], ms[0], ms[1]], 2],
      [ms, 2.5]
    ] as const) {
      assert.throws(() => dealShares(new Uint8Array(32).fill(1), [...list], t), { name: 'RangeError' })
    }
  })
})
