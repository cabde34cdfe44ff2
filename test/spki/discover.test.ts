import { strict as assert } from 'node:assert'
import { spkiTime } from '../../src/spki/cert.ts'
import { base16 } from 'multiformats/bases/base16'
import { certHash, revocationCheck, signCrl } from '../../src/spki/crl.ts'
import { discoverChain, resolveName, revokedLinkError, verifyProof } from '../../src/spki/discover.ts'
import { grant, key, nameCert, tag } from './fixtures.ts'
import type { Key } from './fixtures.ts'
import type { SignedCert, Subject } from '../../src/spki/cert.ts'

const HOUR = 3_600_000

const k = (key: Key): Subject => ({ kind: 'key', principal: key.id })

describe('SDSI names and chain discovery', () => {
  let root: Key, k1: Key, k2: Key, k3: Key, k4: Key, k5: Key, agent: Key, other: Key
  let pool: SignedCert[]
  const request = tag('(cyberspace (mailbox (send alice note)))')

  before(async () => {
    ;[root, k1, k2, k3, k4, k5, agent, other] = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(key))
    pool = [
      // root → k1 → (k1's team's lead = k3) → k4 → k5 → agent, each narrowing
      await grant(root, k(k1), '(cyberspace)'),
      await grant(k1, { kind: 'name', issuer: k1.id, names: ['team', 'lead'] }, '(cyberspace (mailbox))'),
      await nameCert(k1, 'team', k(k2)),
      await nameCert(k2, 'lead', k(k3)),
      await grant(k3, k(k4), '(cyberspace (mailbox (send (* set alice bob))))'),
      await grant(k4, k(k5), '(cyberspace (mailbox (send alice)))'),
      await grant(k5, k(agent), '(cyberspace (mailbox (send alice (* set note task))))', { propagate: false }),
      // distractors: an unrelated grant, an expired shortcut, a forged shortcut
      await grant(k1, k(other), '(cyberspace (log))'),
      await grant(root, k(agent), '(cyberspace)', {
        propagate: false,
        validity: { notAfter: spkiTime(Date.now() - HOUR) }
      }),
      { ...(await grant(root, k(agent), '(cyberspace)', { propagate: false })), signature: new Uint8Array(64) }
    ]
  })

  it('resolves a linked name to the key it denotes, with its proof', async () => {
    const resolved = await resolveName(pool, k1.id, ['team', 'lead'])
    assert.deepEqual([...resolved.keys()], [k3.id])
    assert.equal(resolved.get(k3.id)?.length, 2)
    assert.equal((await resolveName(pool, k1.id, ['nobody'])).size, 0)
  })

  it('discovers a depth-5 chain through a linked name, which the verifier accepts', async () => {
    const found = await discoverChain(pool, [root.id], agent.id, request)
    assert.equal(found.proof.chain.length, 5)
    assert.equal(found.proof.names.length, 2)
    const verified = await verifyProof(found.proof, [root.id], agent.id, request)
    assert.equal(verified.proof.chain.length, 5)
  })

  it('finds nothing wider than the chain grants, nor from another root', async () => {
    await assert.rejects(discoverChain(pool, [root.id], agent.id, tag('(cyberspace (mailbox (send bob note)))')), {
      name: 'ChainNotFoundError'
    })
    await assert.rejects(discoverChain(pool, [k4.id, other.id], agent.id, tag('(cyberspace (log))')), {
      name: 'ChainNotFoundError'
    })
    await assert.rejects(discoverChain(pool, [root.id], agent.id, request, { maxLength: 4 }), {
      name: 'ChainNotFoundError'
    })
  })

  it('refuses a presented proof with a forged, expired or missing certificate', async () => {
    const { proof } = await discoverChain(pool, [root.id], agent.id, request)
    const forged = {
      ...proof,
      chain: proof.chain.map((c, i) => (i === 2 ? { ...c, signature: new Uint8Array(64) } : c))
    }
    await assert.rejects(verifyProof(forged, [root.id], agent.id, request), { name: 'BadSignatureError' })
    await assert.rejects(verifyProof({ ...proof, names: proof.names.slice(1) }, [root.id], agent.id, request), {
      name: 'ChainNotFoundError'
    })
    const expired = await grant(root, k(agent), '(cyberspace)', {
      propagate: false,
      validity: { notAfter: spkiTime(Date.now() - HOUR) }
    })
    await assert.rejects(verifyProof({ chain: [expired], names: [] }, [root.id], agent.id, request), {
      name: 'ExpiredCertError'
    })
    // k1 could vouch (it sits inside the chain), but a key outside it cannot
    await assert.rejects(verifyProof(proof, [other.id], agent.id, request), { name: 'ChainNotFoundError' })
  })

  it('does not delegate through a certificate whose propagate bit is off', async () => {
    const stopped = [
      await grant(root, k(k1), '(cyberspace)', { propagate: false }),
      await grant(k1, k(agent), '(cyberspace)')
    ]
    await assert.rejects(discoverChain(stopped, [root.id], agent.id, request), { name: 'ChainNotFoundError' })
  })

  it('says a chain was not found because a certificate on it is revoked, naming its hash', async () => {
    const now = Date.now()
    const revoked = await grant(k1, k(k2), '(cyberspace)')
    const pool = [await grant(root, k(k1), '(cyberspace)'), revoked, await grant(k2, k(agent), '(cyberspace)')]
    const crl = await signCrl(
      {
        issuer: k1.id,
        revoked: [certHash(revoked)],
        validity: { notBefore: spkiTime(now - HOUR), notAfter: spkiTime(now + HOUR) }
      },
      k1.secret
    )
    const revocation = await revocationCheck([crl], now)
    await assert.rejects(discoverChain(pool, [root.id], agent.id, request, { revocation }), {
      name: 'ChainNotFoundError'
    })
    const why = await revokedLinkError(pool, [root.id], agent.id, request, { revocation })
    assert.equal(why?.name, 'RevokedCertError')
    assert.equal((why as Error & { certHash?: string }).certHash, base16.baseEncode(certHash(revoked)))
    // no chain even without the CRL: revocation is not the reason, and nothing is blamed on it
    assert.equal(await revokedLinkError(pool, [root.id], other.id, request, { revocation }), undefined)
    assert.equal(await revokedLinkError(pool, [root.id], agent.id, request), undefined)
  })

  it('names a cycle of name certificates', async () => {
    const cyclic = [
      await nameCert(k1, 'a', { kind: 'name', issuer: k1.id, names: ['b'] }),
      await nameCert(k1, 'b', { kind: 'name', issuer: k1.id, names: ['a'] })
    ]
    await assert.rejects(resolveName(cyclic, k1.id, ['a']), { name: 'NameCycleError' })
    const viaCycle = [...cyclic, await grant(root, { kind: 'name', issuer: k1.id, names: ['a'] }, '(cyberspace)')]
    await assert.rejects(discoverChain(viaCycle, [root.id], agent.id, request), { name: 'NameCycleError' })
  })
})
