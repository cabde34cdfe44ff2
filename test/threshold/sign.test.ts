import { strict as assert } from 'node:assert'
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import { peerIdFromPrincipal } from '../../src/crypto/principal.ts'
import { SigningRefusedError } from '../../src/threshold/errors.ts'
import { coordinateSigning, Signer } from '../../src/threshold/sign.ts'
import { dealtGroup, members } from './fixtures.ts'
import type { SigningPackage, SigningRequest, SigningTransport } from '../../src/threshold/sign.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Member } from './fixtures.ts'
import type { NonceCommitments } from '@noble/curves/abstract/frost.js'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

/** Signers reached in-process; `offline` members throw, `corrupt` ones return garbage shares. */
function transportFor(
  signers: Map<PrincipalId, Signer>,
  offline = new Set<PrincipalId>(),
  corrupt = new Set<PrincipalId>()
): SigningTransport {
  return {
    commit: async (m, req) => {
      if (offline.has(m)) throw new Error(`${m} is unreachable`)
      return await signers.get(m)!.commit(req)
    },
    sign: async (m, pkg) => {
      if (offline.has(m)) throw new Error(`${m} is unreachable`)
      const share = signers.get(m)!.signShare(pkg)
      return corrupt.has(m) ? crypto.getRandomValues(new Uint8Array(32)).map((b, i) => (i === 31 ? 0 : b)) : share
    }
  }
}

describe('FROST signing sessions', () => {
  let ms: Member[]
  let ids: PrincipalId[]
  let signers: Map<PrincipalId, Signer>
  let groupKey: Uint8Array
  let keys: ReturnType<typeof dealtGroup>['keys']
  let pub: (typeof keys)[0]['public']
  const coordinator = 'z6MkCoordinator' as PrincipalId

  before(async () => {
    ms = await members(5)
    ids = ms.map(m => m.id)
    keys = dealtGroup(ms, 3).keys
    pub = keys[0].public
    groupKey = pub.commitments[0]
    signers = new Map(ms.map((m, i) => [m.id, new Signer(keys[i], m.id, async () => {})]))
  })

  it('3-of-5 signs with all online, with 2 offline, and fails clearly with 3 offline', async () => {
    const payload = utf8('grant (cyberspace member) to K')
    const all = await coordinateSigning(pub, ids, payload, transportFor(signers), { coordinator })
    assert.ok(await nobleEd25519.verify(groupKey, payload, all.signature))
    assert.equal(all.signers.length, 3)
    const two = await coordinateSigning(pub, ids, payload, transportFor(signers, new Set(ids.slice(0, 2))), {
      coordinator
    })
    assert.ok(await nobleEd25519.verify(groupKey, payload, two.signature))
    assert.deepEqual(new Set(two.excluded.keys()), new Set(ids.slice(0, 2)))
    await assert.rejects(
      coordinateSigning(pub, ids, payload, transportFor(signers, new Set(ids.slice(0, 3))), { coordinator }),
      (err: Error) => {
        assert.equal(err.name, 'NotEnoughSignersError')
        const quiet = ids.slice(0, 3).map(m => peerIdFromPrincipal(m).toString())
        assert.equal(err.message, `2 of 5 members can sign; 3 are needed. members ${quiet.join(', ')} did not answer`)
        return true
      }
    )
  })

  it('a coordinator that is a member signs itself, asking t − 1 others for shares', async () => {
    const asked: PrincipalId[] = []
    const inner = transportFor(signers)
    const counting: SigningTransport = {
      commit: inner.commit,
      sign: async (m, pkg) => {
        asked.push(m)
        return await inner.sign(m, pkg)
      }
    }
    // the last member coordinates: it signs, with the first two that answered
    const r = await coordinateSigning(pub, ids, utf8('by the last member'), counting, { coordinator: ids[4] })
    assert.ok(await nobleEd25519.verify(groupKey, utf8('by the last member'), r.signature))
    assert.deepEqual(r.signers, [ids[4], ids[0], ids[1]])
    assert.deepEqual(asked, [ids[4], ids[0], ids[1]])
  })

  it('names and excludes a signer whose share is bad, and still signs', async () => {
    const payload = utf8('rotate')
    const liar = ids[1]
    const result = await coordinateSigning(pub, ids, payload, transportFor(signers, new Set(), new Set([liar])), {
      coordinator
    })
    assert.ok(await nobleEd25519.verify(groupKey, payload, result.signature))
    assert.equal(result.excluded.get(liar)?.name, 'InvalidShareError')
    assert.equal((result.excluded.get(liar) as Error & { culprit?: string }).culprit, liar)
    assert.ok(!result.signers.includes(liar))
    assert.equal(result.attempts, 2)
  })

  it('a signer uses a nonce once, for the payload it committed to, and follows its policy', async () => {
    const signer = signers.get(ids[0])!
    const session = crypto.getRandomValues(new Uint8Array(32))
    const request: SigningRequest = { session, coordinator, payload: utf8('one') }
    const mine = await signer.commit(request)
    await assert.rejects(signer.commit(request), { name: 'ReplayedMessageError' })
    const others = await Promise.all(ids.slice(1, 3).map(async m => await signers.get(m)!.commit(request)))
    const pkg: SigningPackage = { ...request, commitments: [mine, ...others] }
    // a coordinator that asks for another payload in the same session is refused, and the nonces are gone
    assert.throws(() => signer.signShare({ ...pkg, payload: utf8('two') }), { name: 'SigningRefusedError' })
    assert.throws(() => signer.signShare(pkg), { name: 'WrongSessionError' })
    // a package from another coordinator finds no session of its own (the coordinator's stays open);
    // one without this signer's commitments is refused
    const s2 = { ...request, session: crypto.getRandomValues(new Uint8Array(32)) }
    const c2 = await signer.commit(s2)
    const before = signer.open
    assert.throws(
      () => signer.signShare({ ...s2, coordinator: 'z6MkOther' as PrincipalId, commitments: [c2, ...others] }),
      { name: 'WrongSessionError' }
    )
    assert.equal(signer.open, before)
    const s3 = { ...request, session: crypto.getRandomValues(new Uint8Array(32)) }
    await signer.commit(s3)
    assert.throws(() => signer.signShare({ ...s3, commitments: [c2, c2, ...others] }), { name: 'SigningRefusedError' })
    // policy: a signer that refuses is excluded like an offline one
    const picky = new Map(signers)
    picky.set(
      ids[4],
      new Signer(keys[4], ids[4], async () => {
        throw new SigningRefusedError('not a kind of payload this member signs')
      })
    )
    const r = await coordinateSigning(pub, [ids[4], ...ids.slice(0, 4)], utf8('x'), transportFor(picky), {
      coordinator
    })
    assert.equal(r.excluded.get(ids[4])?.name, 'SigningRefusedError')
  })

  it('forgets committed nonces that are never used', async () => {
    let now = 0
    const signer = new Signer(keys[0], ids[0], async () => {}, { nonceTtl: 1000, maxPending: 2, now: () => now })
    await signer.commit({ session: new Uint8Array(32).fill(1), coordinator, payload: utf8('a') })
    await signer.commit({ session: new Uint8Array(32).fill(2), coordinator, payload: utf8('a') })
    // full, and by another coordinator's sessions: refused, and nothing of the other's is forgotten
    const other = 'z6MkOtherCoordinator' as PrincipalId
    await assert.rejects(
      signer.commit({ session: new Uint8Array(32).fill(3), coordinator: other, payload: utf8('a') }),
      {
        name: 'SigningRefusedError'
      }
    )
    assert.equal(signer.open, 2)
    now = 1001
    assert.equal(signer.open, 0)
  })

  it('a coordinator past its own limit of open sessions recycles its oldest, never another coordinator’s', async () => {
    const signer = new Signer(keys[0], ids[0], async () => {}, { maxPending: 4, maxPendingPerCoordinator: 2 })
    const other = 'z6MkOtherCoordinator' as PrincipalId
    const session = (b: number): Uint8Array => new Uint8Array(32).fill(b)
    const theirs = await signer.commit({ session: session(1), coordinator: other, payload: utf8('a') })
    const mine: NonceCommitments[] = []
    for (let b = 2; b <= 5; b++)
      mine.push(await signer.commit({ session: session(b), coordinator, payload: utf8('a') }))
    // the other coordinator's session and this coordinator's newest two are open; its first two are gone
    assert.equal(signer.open, 3)
    const rest = await Promise.all(
      ids
        .slice(1, 3)
        .map(async m => await signers.get(m)!.commit({ session: session(9), coordinator, payload: utf8('a') }))
    )
    const pkg = (b: number, c: NonceCommitments, who = coordinator): SigningPackage => ({
      session: session(b),
      coordinator: who,
      payload: utf8('a'),
      commitments: [c, ...rest]
    })
    assert.throws(() => signer.signShare(pkg(2, mine[0])), { name: 'WrongSessionError' })
    assert.throws(() => signer.signShare(pkg(3, mine[1])), { name: 'WrongSessionError' })
    assert.equal(signer.signShare(pkg(5, mine[3])).length, 32)
    assert.equal(signer.signShare(pkg(1, theirs, other)).length, 32)
  })

  it('members a coordinator does not pick keep answering it however often it signs', async () => {
    // the coordinator asks all five and uses three: the other two hold nonces nobody asks for
    const small = new Map(ms.map((m, i) => [m.id, new Signer(keys[i], m.id, async () => {}, { maxPending: 6 })]))
    for (let i = 0; i < 8; i++) {
      const r = await coordinateSigning(pub, ids, utf8(`decision ${i}`), transportFor(small), { coordinator })
      assert.deepEqual(
        [...r.excluded.keys()],
        [],
        `signature ${i}: ${[...r.excluded.values()].map(e => e.message).join('; ')}`
      )
    }
    // at most its own limit stays open on a member that was never picked
    assert.ok(small.get(ids[4])!.open <= 6)
  })
})
