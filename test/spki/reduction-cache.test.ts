import { strict as assert } from 'node:assert'
import { parseSignedCert, signedCertToSexp, spkiTime } from '../../src/spki/cert.ts'
import { certHash, revocationIndex, signCrl } from '../../src/spki/crl.ts'
import { reduceChain, ReductionCache } from '../../src/spki/reduce.ts'
import { decodeCanonical, encodeCanonical } from '../../src/spki/sexp.ts'
import { grant, key, localSpki, tag } from './fixtures.ts'
import type { Key } from './fixtures.ts'
import type { SignedCert } from '../../src/spki/cert.ts'
import type { Spki } from '../../src/spki/service.ts'

const HOUR = 3_600_000
const requested = tag('(cyberspace (mailbox (send alice note)))')

/** A copy of a certificate as a peer would send it again: parsed afresh from its wire bytes. */
const resent = (signed: SignedCert): SignedCert =>
  parseSignedCert(decodeCanonical(encodeCanonical(signedCertToSexp(signed))))

describe('cached SPKI reductions and decisions', () => {
  let keys: Key[]
  let chain: SignedCert[]
  /** When the third certificate expires. */
  const expiry = Date.now() + 2 * HOUR

  before(async () => {
    keys = await Promise.all([0, 1, 2, 3, 4, 5].map(key))
    chain = [
      await grant(keys[0], keys[1], '(cyberspace)'),
      await grant(keys[1], keys[2], '(cyberspace (mailbox))'),
      await grant(keys[2], keys[3], '(cyberspace (mailbox (send (* set alice bob))))', {
        validity: { notAfter: spkiTime(expiry) }
      }),
      await grant(keys[3], keys[4], '(cyberspace (mailbox (send alice)))'),
      await grant(keys[4], keys[5], '(cyberspace (mailbox (send alice (* set note task))))', { propagate: false })
    ]
  })

  describe('ReductionCache', () => {
    it('reduces a chain seen before to the same tuple, for the same chain sent again too', async () => {
      const reductions = new ReductionCache()
      const first = await reduceChain(chain, { reductions })
      assert.equal(reductions.size, 1)
      const again = await reduceChain(chain, { reductions })
      assert.deepEqual(again, first)
      // a copy: changing what a caller got changes no later answer
      again.propagate = true
      assert.equal((await reduceChain(chain, { reductions })).propagate, false)
      // the same certificates parsed afresh are the same chain
      const copy = await reduceChain(chain.map(resent), { reductions })
      assert.deepEqual(copy, first)
      assert.equal(reductions.size, 1)
    })

    it('refuses a certificate revoked after its chain was cached', async () => {
      const reductions = new ReductionCache()
      await reduceChain(chain, { reductions, revocation: revocationIndex([]) })
      const crl = await signCrl(
        {
          issuer: keys[3].id,
          revoked: [certHash(chain[3])],
          validity: { notBefore: spkiTime(Date.now() - HOUR), notAfter: spkiTime(Date.now() + HOUR) }
        },
        keys[3].secret
      )
      await assert.rejects(reduceChain(chain, { reductions, revocation: revocationIndex([crl]) }), {
        name: 'RevokedCertError'
      })
      await assert.rejects(reduceChain(chain.map(resent), { reductions, revocation: revocationIndex([crl]) }), {
        name: 'RevokedCertError'
      })
    })

    it('refuses a cached chain once one of its certificates has expired, and before any is valid', async () => {
      const reductions = new ReductionCache()
      await reduceChain(chain, { reductions })
      await reduceChain(chain, { reductions, now: expiry - 1000 })
      await assert.rejects(reduceChain(chain, { reductions, now: expiry + 1000 }), { name: 'ExpiredCertError' })
      // and a chain cached while valid is not valid before its not-before either
      const later = Date.now() + HOUR
      const notYet = [
        chain[0],
        await grant(keys[1], keys[2], '(cyberspace (mailbox))', { validity: { notBefore: spkiTime(later) } })
      ]
      await reduceChain(notYet, { reductions, now: later + 1000 })
      await assert.rejects(reduceChain(notYet, { reductions }), { name: 'NotYetValidCertError' })
    })

    it('never answers for another chain: a forged signature, a certificate changed in place, another order', async () => {
      const reductions = new ReductionCache()
      await reduceChain(chain, { reductions })
      // the same certificate with another signature is another certificate
      const forged = { ...chain[2], signature: Uint8Array.from(chain[2].signature, (b, i) => (i === 5 ? b ^ 1 : b)) }
      await assert.rejects(reduceChain([chain[0], chain[1], forged, chain[3], chain[4]], { reductions }), {
        name: 'BadSignatureError'
      })
      // a signature changed in place after its chain was cached
      const own = chain.map(resent)
      await reduceChain(own, { reductions })
      own[1].signature[0] ^= 1
      await assert.rejects(reduceChain(own, { reductions }), { name: 'BadSignatureError' })
      // a prefix of a cached chain is its own chain, reduced on its own
      const prefix = await reduceChain(chain.slice(0, 2), { reductions })
      assert.equal(prefix.subject.kind === 'key' ? prefix.subject.principal : '', keys[2].id)
      await assert.rejects(reduceChain([chain[1], chain[0]], { reductions }), { name: 'WrongSubjectError' })
    })

    it('stays within its bound however many distinct chains it is shown', async () => {
      const reductions = new ReductionCache(4)
      for (let i = 0; i < 12; i++) {
        const [a, b] = await Promise.all([key(), key()])
        await reduceChain([await grant(a, b, `(cyberspace (n${i}))`)], { reductions })
        assert.ok(reductions.size <= 4)
      }
      assert.equal(reductions.size, 4)
      // what was evicted is reduced again in full, correctly
      assert.equal((await reduceChain(chain, { reductions })).issuer, keys[0].id)
    })
  })

  describe("the service's remembered decisions", () => {
    let node: Spki

    beforeEach(async () => {
      node = await localSpki()
      await node.addAclEntry(keys[0].id, tag('(cyberspace)'))
      for (const signed of chain) await node.addCert(signed)
    })

    it('decides a repeated authorization by lookup, for that principal and tag only', async () => {
      const first = await node.authorize(keys[5].id, requested)
      assert.equal(first.proof.chain.length, 5)
      const again = await node.authorize(keys[5].id, tag('(cyberspace (mailbox (send alice note)))'))
      // the same proof object: the decision was remembered, not searched for again
      assert.equal(again.proof, first.proof)
      await assert.rejects(node.authorize(keys[5].id, tag('(cyberspace (mailbox (send bob note)))')), {
        name: 'ChainNotFoundError'
      })
      const stranger = await key()
      await assert.rejects(node.authorize(stranger.id, requested), { name: 'ChainNotFoundError' })
      // a proof shown for one principal proves nothing for another
      await node.authorize(keys[5].id, requested, { proof: first.proof })
      await assert.rejects(node.authorize(stranger.id, requested, { proof: first.proof }), {
        name: 'ChainNotFoundError'
      })
    })

    it('refuses at once after a revocation, though the grant was remembered', async () => {
      const shown = { chain: chain.map(resent), names: [] }
      await node.authorize(keys[5].id, requested)
      await node.authorize(keys[5].id, requested, { proof: shown })
      const epoch = node.epoch
      await node.addCrl(
        await signCrl(
          {
            issuer: keys[2].id,
            revoked: [certHash(chain[2])],
            validity: { notBefore: spkiTime(Date.now() - HOUR), notAfter: spkiTime(Date.now() + HOUR) }
          },
          keys[2].secret
        )
      )
      assert.ok(node.epoch > epoch)
      await assert.rejects(node.authorize(keys[5].id, requested), { name: 'RevokedCertError' })
      await assert.rejects(node.authorize(keys[5].id, requested, { proof: shown }), { name: 'RevokedCertError' })
    })

    it('refuses at a moment after a certificate of the remembered grant expired', async () => {
      const shown = { chain: chain.map(resent), names: [] }
      await node.authorize(keys[5].id, requested)
      await node.authorize(keys[5].id, requested, { proof: shown })
      await node.authorize(keys[5].id, requested, { at: expiry - 1000 })
      await assert.rejects(node.authorize(keys[5].id, requested, { at: expiry + 1000 }), {
        name: 'ChainNotFoundError'
      })
      await assert.rejects(node.authorize(keys[5].id, requested, { proof: shown, at: expiry + 1000 }), {
        name: 'ExpiredCertError'
      })
    })

    it('checks a shown chain again after a new epoch: in order, out of order, or forged', async () => {
      const shown = { chain: chain.map(resent), names: [] }
      const first = await node.authorize(keys[5].id, requested, { proof: shown })
      assert.equal(first.proof.chain.length, 5)
      // an unrelated change: a new epoch, every decision made again
      await node.addAclEntry((await key()).id, tag('(other)'))
      assert.equal((await node.authorize(keys[5].id, requested, { proof: shown })).tag.kind, 'list')
      // the same certificates out of order are still a proof (found by discovery)
      const shuffled = {
        chain: [shown.chain[3], shown.chain[0], shown.chain[4], shown.chain[2], shown.chain[1]],
        names: []
      }
      assert.equal((await node.authorize(keys[5].id, requested, { proof: shuffled })).proof.chain.length, 5)
      // a forged signature in a chain of certificates otherwise seen before is refused
      const forged = {
        ...shown.chain[1],
        signature: Uint8Array.from(shown.chain[1].signature, (b, i) => (i === 9 ? b ^ 1 : b))
      }
      await assert.rejects(
        node.authorize(keys[5].id, requested, {
          proof: { chain: [shown.chain[0], forged, ...shown.chain.slice(2)], names: [] }
        }),
        { name: 'BadSignatureError' }
      )
    })

    it('forgets remembered grants when trust in the root is withdrawn', async () => {
      await node.authorize(keys[5].id, requested)
      await node.removeAclEntry(keys[0].id)
      await assert.rejects(node.authorize(keys[5].id, requested), { name: 'ChainNotFoundError' })
    })
  })
})
