import { strict as assert } from 'node:assert'
import { parseCert, certToSexp, spkiTime } from '../../src/spki/cert.ts'
import { certHash, parseSignedCrl, revocationCheck, signCrl, signedCrlToSexp } from '../../src/spki/crl.ts'
import { discoverChain, verifyProof } from '../../src/spki/discover.ts'
import { reduceChain } from '../../src/spki/reduce.ts'
import { decodeCanonical, encodeCanonical, parseAdvanced, toAdvanced } from '../../src/spki/sexp.ts'
import { grant, key, tag } from './fixtures.ts'
import type { Key } from './fixtures.ts'
import type { SignedCert } from '../../src/spki/cert.ts'
import type { Crl } from '../../src/spki/crl.ts'

const HOUR = 3_600_000
const window = (from: number, to: number): Crl['validity'] => ({ notBefore: spkiTime(from), notAfter: spkiTime(to) })

describe('revocation (CRLs)', () => {
  let root: Key, a: Key, b: Key
  let chain: SignedCert[]
  const now = Date.now()

  before(async () => {
    ;[root, a, b] = await Promise.all([key(), key(), key()])
    chain = [await grant(root, a), await grant(a, b)]
  })

  it('refuses a certificate its issuer revoked, in reduction and in discovery', async () => {
    const crl = await signCrl(
      { issuer: a.id, revoked: [certHash(chain[1])], validity: window(now - HOUR, now + HOUR) },
      a.secret
    )
    const revocation = await revocationCheck([crl], now)
    await assert.rejects(reduceChain(chain, { revocation }), { name: 'RevokedCertError' })
    await assert.rejects(verifyProof({ chain, names: [] }, [root.id], b.id, tag('(cyberspace)'), { revocation }), {
      name: 'RevokedCertError'
    })
    await assert.rejects(discoverChain(chain, [root.id], b.id, tag('(cyberspace)'), { revocation }), {
      name: 'ChainNotFoundError'
    })
    // without the CRL the chain stands
    await reduceChain(chain)
  })

  it('ignores a CRL outside its validity, and refuses a forged or foreign one', async () => {
    const stale = await signCrl(
      { issuer: a.id, revoked: [certHash(chain[1])], validity: window(now - 3 * HOUR, now - 2 * HOUR) },
      a.secret
    )
    await reduceChain(chain, { revocation: await revocationCheck([stale], now) })
    const forged = { ...stale, signature: new Uint8Array(64) }
    await assert.rejects(revocationCheck([forged], now), { name: 'InvalidCrlError' })
    // a CRL only speaks for its own issuer's certificates
    const foreign = await signCrl(
      { issuer: b.id, revoked: [certHash(chain[1])], validity: window(now - HOUR, now + HOUR) },
      b.secret
    )
    await reduceChain(chain, { revocation: await revocationCheck([foreign], now) })
    await assert.rejects(signCrl({ issuer: a.id, revoked: [], validity: window(now, now) }, b.secret), {
      name: 'InvalidCrlError'
    })
  })

  it('honours online revalidation: a certificate asking for a current CRL needs one', async () => {
    const online = await grant(a, b, '(cyberspace)', { validity: { requireCrl: true } })
    assert.match(toAdvanced(certToSexp(online.cert)), /\(valid \(online crl\)\)/)
    assert.deepEqual(parseCert(parseAdvanced(toAdvanced(certToSexp(online.cert)))), online.cert)
    await assert.rejects(reduceChain([chain[0], online], { revocation: await revocationCheck([], now) }), {
      name: 'RevalidationRequiredError'
    })
    const empty = await signCrl({ issuer: a.id, revoked: [], validity: window(now - HOUR, now + HOUR) }, a.secret)
    await reduceChain([chain[0], online], { revocation: await revocationCheck([empty], now) })
  })

  it('round-trips CRLs and refuses malformed ones', async () => {
    const crl = await signCrl(
      { issuer: a.id, revoked: [certHash(chain[0]), certHash(chain[1])], validity: window(now, now + HOUR) },
      a.secret
    )
    const back = parseSignedCrl(decodeCanonical(encodeCanonical(signedCrlToSexp(crl))))
    assert.deepEqual(back, crl)
    for (const bad of ['(signed-crl)', '(signed-crl (crl) (signature))', '(crl (issuer x))']) {
      assert.throws(() => parseSignedCrl(parseAdvanced(bad)), { name: 'InvalidCrlError' }, bad)
    }
  })
})
