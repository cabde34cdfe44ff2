import { strict as assert } from 'node:assert'
import {
  certToSexp,
  keyHash,
  parseCert,
  parseSignedCert,
  signCert,
  signedCertToSexp,
  spkiTime,
  verifyCert,
  VerifiedCertCache
} from '../../src/spki/cert.ts'
import { authorizeTuple, reduceChain } from '../../src/spki/reduce.ts'
import { decodeCanonical, encodeCanonical, parseAdvanced, toAdvanced } from '../../src/spki/sexp.ts'
import { grant, key, tag, toTagText } from './fixtures.ts'
import type { Key } from './fixtures.ts'
import type { AuthCert, SignedCert } from '../../src/spki/cert.ts'

const HOUR = 3_600_000

describe('SPKI certificates and 5-tuple reduction', () => {
  let keys: Key[]
  let chain: SignedCert[]
  const wide = { notBefore: spkiTime(Date.now() - HOUR), notAfter: spkiTime(Date.now() + 24 * HOUR) }

  before(async () => {
    keys = await Promise.all([0, 1, 2, 3, 4, 5].map(key))
    // root → k1 → k2 → k3 → k4 → k5, each link narrowing the tag
    chain = [
      await grant(keys[0], keys[1], '(cyberspace)', { validity: wide }),
      await grant(keys[1], keys[2], '(cyberspace (mailbox))'),
      await grant(keys[2], keys[3], '(cyberspace (mailbox (send (* set alice bob))))'),
      await grant(keys[3], { kind: 'hash', sha256: keyHash(keys[4].id) }, '(cyberspace (mailbox (send alice)))'),
      await grant(keys[4], keys[5], '(cyberspace (mailbox (send alice (* set note task))))', { propagate: false })
    ]
  })

  it('reduces a depth-5 chain with narrowing tags to the intersection', async () => {
    const tuple = await reduceChain(chain)
    assert.equal(tuple.issuer, keys[0].id)
    assert.deepEqual(tuple.subject, { kind: 'key', principal: keys[5].id })
    assert.equal(tuple.propagate, false)
    assert.equal(toTagText(tuple.tag), '(cyberspace (mailbox (send alice (* set note task))))')
    assert.deepEqual(tuple.validity, wide)
    authorizeTuple(tuple, keys[0].id, keys[5].id, tag('(cyberspace (mailbox (send alice note)))'))
    assert.throws(() => authorizeTuple(tuple, keys[0].id, keys[5].id, tag('(cyberspace (mailbox (send bob note)))')), {
      name: 'TagMismatchError'
    })
    assert.throws(
      () => authorizeTuple(tuple, keys[1].id, keys[5].id, tag('(cyberspace (mailbox (send alice note)))')),
      { name: 'WrongSubjectError' }
    )
    assert.throws(
      () => authorizeTuple(tuple, keys[0].id, keys[4].id, tag('(cyberspace (mailbox (send alice note)))')),
      { name: 'WrongSubjectError' }
    )
  })

  it('round-trips certificates through canonical and advanced forms', async () => {
    for (const signed of chain) {
      const canonical = encodeCanonical(signedCertToSexp(signed))
      const back = parseSignedCert(decodeCanonical(canonical))
      assert.deepEqual(encodeCanonical(signedCertToSexp(back)), canonical)
      await verifyCert(back)
      assert.deepEqual(parseCert(parseAdvanced(toAdvanced(certToSexp(signed.cert)))), signed.cert)
    }
  })

  it('rejects a forged signature', async () => {
    const forged = { ...chain[2], signature: Uint8Array.from(chain[2].signature, (b, i) => (i === 0 ? b ^ 1 : b)) }
    await assert.rejects(reduceChain([chain[0], chain[1], forged]), { name: 'BadSignatureError' })
    // a certificate altered after signing
    const altered: SignedCert = {
      cert: { ...(chain[1].cert as AuthCert), tag: tag('(*)') },
      signature: chain[1].signature
    }
    await assert.rejects(reduceChain([chain[0], altered]), { name: 'BadSignatureError' })
  })

  it('rejects a link whose subject is not the next issuer', async () => {
    await assert.rejects(reduceChain([chain[0], chain[2]]), { name: 'WrongSubjectError' })
  })

  it('rejects delegation through a certificate whose propagate bit is off', async () => {
    const stop = await grant(keys[1], keys[2], '(cyberspace (mailbox))', { propagate: false })
    await assert.rejects(reduceChain([chain[0], stop, chain[2]]), { name: 'PropagationError' })
  })

  it('rejects expired and not-yet-valid certificates', async () => {
    const expired = await grant(keys[1], keys[2], '(cyberspace)', {
      validity: { notAfter: spkiTime(Date.now() - HOUR) }
    })
    await assert.rejects(reduceChain([chain[0], expired]), { name: 'ExpiredCertError' })
    const future = await grant(keys[1], keys[2], '(cyberspace)', {
      validity: { notBefore: spkiTime(Date.now() + HOUR) }
    })
    await assert.rejects(reduceChain([chain[0], future]), { name: 'NotYetValidCertError' })
    // the same chain checked at a moment inside both periods is fine
    await reduceChain([chain[0], future], { now: Date.now() + 2 * HOUR })
  })

  it('rejects chains longer than the maximum, and tags with nothing in common', async () => {
    await assert.rejects(reduceChain(chain, { maxLength: 4 }), { name: 'ChainTooLongError' })
    const other = await grant(keys[1], keys[2], '(other-system)')
    await assert.rejects(reduceChain([chain[0], other]), { name: 'TagMismatchError' })
  })

  it('refuses to sign with a key that is not the issuer', async () => {
    const cert = { ...(chain[0].cert as AuthCert) }
    await assert.rejects(signCert(cert, keys[3].secret), { name: 'InvalidCertError' })
  })

  it('refuses malformed certificates with InvalidCertError', () => {
    const good = toAdvanced(certToSexp(chain[0].cert))
    const pk = good.slice(
      good.indexOf('(public-key'),
      good.indexOf(')', good.indexOf('|', good.indexOf('(public-key') + 30)) + 2
    )
    for (const bad of [
      '(certificate)',
      `(cert (issuer ${pk}))`,
      `(cert (issuer ${pk}) (subject ${pk}))`,
      `(cert (issuer ${pk}) (subject ${pk}) (tag (*)) (tag (*)))`,
      `(cert (issuer ${pk}) (subject ${pk}) (tag (*)) (frob))`,
      `(cert (issuer ${pk}) (subject ${pk}) (tag (*)) (valid (not-after yesterday)))`,
      `(cert (issuer ${pk}) (subject (hash sha256 |AAEC|)) (tag (*)))`,
      `(cert (issuer ${pk}) (subject (k-of-n 3 2 ${pk} ${pk})) (tag (*)))`,
      `(cert (issuer (public-key (rsa |AAEC|))) (subject ${pk}) (tag (*)))`,
      `(cert (issuer (name ${pk} "bad name!")) (subject ${pk}))`,
      `(cert (issuer (name ${pk} friends)) (subject ${pk}) (tag (*)))`
    ]) {
      assert.throws(() => parseCert(parseAdvanced(bad)), { name: 'InvalidCertError' }, bad)
    }
    // and a well-formed name certificate parses
    const named = parseCert(parseAdvanced(`(cert (issuer (name ${pk} friends)) (subject (name ${pk} family alice)))`))
    assert.equal(named.type, 'name')
  })

  it('remembers verified signatures, and never lets a forged one ride on a cached one', async () => {
    const cache = new VerifiedCertCache(3)
    await reduceChain(chain.slice(0, 3), { cache })
    assert.equal(cache.size, 3)
    await reduceChain(chain.slice(0, 3), { cache })
    assert.equal(cache.size, 3)
    const forged = { ...chain[1], signature: new Uint8Array(64) }
    await assert.rejects(reduceChain([chain[0], forged], { cache }), { name: 'BadSignatureError' })
    // bounded: a fourth certificate evicts the oldest
    await reduceChain(chain.slice(0, 4), { cache })
    assert.equal(cache.size, 3)
  })
})
