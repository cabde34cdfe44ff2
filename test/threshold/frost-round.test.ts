import { strict as assert } from 'node:assert'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import fc from 'fast-check'
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import { InvalidShareError, ThresholdError } from '../../src/threshold/errors.ts'
import { commitNonces, nonceFromRandomness, prepareRound } from '../../src/threshold/frost-round.ts'
import { Fn, frost, memberIdentifier, parsePoint, Point, PointCache } from '../../src/threshold/group.ts'
import { coordinateSigning, Signer } from '../../src/threshold/sign.ts'
import { dealtGroup, members, ORDER_2, shifted, withTorsion } from './fixtures.ts'
import type { SigningPackage, SigningRequest, SigningResult, SigningTransport } from '../../src/threshold/sign.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Member } from './fixtures.ts'
import type { FrostPublic, Key, NonceCommitments, Nonces } from '@noble/curves/abstract/frost.js'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

describe('FROST rounds computed once (frost-round)', () => {
  // RFC 9591 Appendix E.1, FROST(Ed25519, SHA-512): participants 1 and 3 of a 2-of-3 group
  it('reproduces the RFC 9591 FROST(Ed25519, SHA-512) test vectors', async () => {
    const groupKey = hexToBytes('15d21ccd7ee42959562fc8aa63224c8851fb3ec85a3faf66040d380fb9738673')
    const coefficient = hexToBytes('178199860edd8c62f5212ee91eff1295d0d670ab4ed4506866bae57e7030b204')
    const shares: Record<number, string> = {
      1: '929dcc590407aae7d388761cddb0c0db6f5627aea8e217f4a033f2ec83d93509',
      2: 'a91e66e012e4364ac9aaa405fcafd370402d9859f7b6685c07eed76bf409e80d',
      3: 'd3cb090a075eb154e82fdb4b3cb507f110040905468bb9c46da8bdea643a9a02'
    }
    const round1 = [
      {
        i: 1,
        hidingRandom: '06894e04ee4aceec8619d5f6a0a180e2f47194d2ac306cba586b555e7c48d765',
        bindingRandom: '40d6f879ff22e22409f7d808fed81f37118e7d3e4af71c0f44c60207553bcbce',
        hidingNonce: 'ef6599dea4010581a72b3018c37c29a4341d7cab0773e8687ca74dcf14009701',
        bindingNonce: '2baadfa0c69aa60d517ad4751de372a73f9d89cfc39026601f18458cdec12605',
        hiding: '9b116f12589591a7e23fe8048059ab10ab48e67739e7a2fb3890f61a7999478c',
        binding: 'c39b66b7dfccb122da24f13587f9a08c4347cae70046ca15169adf90ba65854d',
        bindingFactor: 'ff960a65374e216a0918729b153466016664fa980d409bc3f308daa7acb30d0d',
        share: '60997f0142e43e8005027fe5ab7447dac00d22c2d7ddd9571a02613ba7d81c08'
      },
      {
        i: 3,
        hidingRandom: 'fa5d950626782aade9e33fa781376d4888c2d1de7c37518bc248eb818ed0cdde',
        bindingRandom: '7459a4d14ded0e365b085271be8dc6600d5b88f3978a2174297ffa32001a5afc',
        hidingNonce: '80f8d9a4b8f9366e1a0b618107c907cd3ee29fa9bb40b4691cc1bde696240005',
        bindingNonce: '2610b664a5a187b4855e87d2ff485bebdf043dc2f161fcd4854cd01dc0276404',
        hiding: 'e679a2a971748ccfaabead4dbe8ac1def61275c186c79d471e1e45091ad1e687',
        binding: 'b2a942478453fabb6bd3181c56ba657413447b4136e1daea2484d396d1a516b3',
        bindingFactor: '279d48ec56f16d234c09ea62f3d02ab776ee38e03f66b20f939f1316e13df10f',
        share: '79390e78bc59699c7af831f8f5fb478ec871a85f561a8641b5670ac4443f720f'
      }
    ]
    const signature =
      '154fb694ee7fcb37bf2381d94488c2a84b03b3352ad085feca81ad26d45852b7' +
      'ecfe971ce4da95c4a95db93ac376b053897fca212ef85f99cf696bffeb178f07'
    const id = (i: number): string => frost.Identifier.fromNumber(i)
    const pub: FrostPublic = {
      signers: { min: 2, max: 3 },
      commitments: [groupKey, Point.BASE.multiply(Fn.fromBytes(coefficient)).toBytes()],
      verifyingShares: Object.fromEntries(
        [1, 2, 3].map(i => [id(i), Point.BASE.multiply(Fn.fromBytes(hexToBytes(shares[i]))).toBytes()])
      )
    } as FrostPublic
    const msg = hexToBytes('74657374')
    const list: NonceCommitments[] = round1.map(r => ({
      identifier: id(r.i),
      hiding: hexToBytes(r.hiding),
      binding: hexToBytes(r.binding)
    })) as NonceCommitments[]
    const round = prepareRound(pub, [...list].reverse(), msg, new PointCache())
    const sigShares = new Map<string, Uint8Array>()
    for (const r of round1) {
      const s = Fn.fromBytes(hexToBytes(shares[r.i]))
      const d = nonceFromRandomness(hexToBytes(r.hidingRandom), s)
      const e = nonceFromRandomness(hexToBytes(r.bindingRandom), s)
      assert.equal(bytesToHex(Fn.toBytes(d)), r.hidingNonce)
      assert.equal(bytesToHex(Fn.toBytes(e)), r.bindingNonce)
      assert.equal(bytesToHex(Point.BASE.multiply(d).toBytes()), r.hiding)
      assert.equal(bytesToHex(Fn.toBytes(round.bindingFactor(id(r.i)))), r.bindingFactor)
      const z = round.signShare(
        { identifier: id(r.i), signingShare: hexToBytes(shares[r.i]) } as Key['secret'],
        { hiding: Fn.toBytes(d), binding: Fn.toBytes(e) } as Nonces
      )
      assert.equal(bytesToHex(z), r.share)
      assert.ok(round.verifyShare(id(r.i), z))
      sigShares.set(id(r.i), z)
    }
    assert.deepEqual(round.invalidShares(sigShares), [])
    const sig = round.aggregate(sigShares)
    assert.equal(bytesToHex(sig), signature)
    assert.ok(await nobleEd25519.verify(groupKey, msg, sig))
  })

  describe('against noble’s FROST on a dealt 3-of-5 group', () => {
    let keys: Key[]
    let pub: FrostPublic
    before(async () => {
      const ms = await members(5)
      keys = dealtGroup(ms, 3).keys
      pub = keys[0].public
    })

    it('signs the same share as noble for the same nonces and commitments, and aggregates the same signature', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.subarray([0, 1, 2, 3, 4], { minLength: 3, maxLength: 5 }),
          fc.uint8Array({ maxLength: 64 }),
          async (who, msg) => {
            const signing = who.map(i => keys[i])
            const points = new PointCache()
            const committed = signing.map(k => commitNonces(k.secret, points))
            const list = committed.map(c => c.commitments)
            const round = prepareRound(pub, list, msg, new PointCache())
            const ours = new Map<string, Uint8Array>()
            const theirs: Record<string, Uint8Array> = {}
            signing.forEach((k, i) => {
              const nonces = committed[i].nonces
              ours.set(k.secret.identifier, round.signShare(k.secret, nonces))
              // noble zeroes the nonces it used: give it copies
              const copy = { hiding: nonces.hiding.slice(), binding: nonces.binding.slice() }
              theirs[k.secret.identifier] = frost.signShare(k.secret, pub, copy as typeof nonces, list, msg)
              assert.equal(bytesToHex(ours.get(k.secret.identifier)!), bytesToHex(theirs[k.secret.identifier]))
            })
            const sig = round.aggregate(ours)
            assert.equal(bytesToHex(sig), bytesToHex(frost.aggregate(pub, list, msg, theirs)))
            assert.ok(await nobleEd25519.verify(pub.commitments[0], msg, sig))
          }
        ),
        { numRuns: 8 }
      )
    })

    it('refuses exactly the shares noble’s verifyShare refuses, one by one, whoever sends bad ones', async () => {
      const fault = fc.constantFrom('none', 'random', 'plus', 'minus', 'unreduced', 'short', 'missing', 'zero')
      await fc.assert(
        fc.asyncProperty(
          fc.array(fault, { minLength: 3, maxLength: 3 }),
          fc.bigInt(1n, Fn.ORDER - 1n),
          async (faults, delta) => {
            const signing = keys.slice(0, 3)
            const committed = signing.map(k => frost.commit(k.secret))
            const list = committed.map(c => c.commitments)
            const msg = utf8('which shares are bad')
            const round = prepareRound(pub, list, msg, new PointCache())
            const sent = new Map<string, Uint8Array>()
            signing.forEach((k, i) => {
              const z = round.signShare(k.secret, committed[i].nonces)
              const bad: Record<string, Uint8Array | undefined> = {
                none: z,
                random: crypto.getRandomValues(new Uint8Array(32)).map((b, j) => (j === 31 ? b & 0x0f : b)),
                // +δ and −δ: a colluding pair's errors cancel in the plain sum
                plus: shifted(z, delta),
                minus: shifted(z, Fn.neg(delta)),
                unreduced: hexToBytes('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010'),
                short: z.subarray(0, 31),
                missing: undefined,
                zero: new Uint8Array(32)
              }
              const share = bad[faults[i]]
              if (share != null) sent.set(k.secret.identifier, share)
            })
            const expected = signing
              .map(k => k.secret.identifier)
              .filter(id => {
                const share = sent.get(id)
                if (share == null) return true
                try {
                  return !frost.verifyShare(pub, list, msg, id, share)
                } catch {
                  return true
                }
              })
            assert.deepEqual(new Set(round.invalidShares(sent)), new Set(expected))
          }
        ),
        { numRuns: 40 }
      )
    })
  })

  it('caches only points that passed every check', () => {
    const cache = new PointCache(4)
    const good = Point.BASE.multiply(12345n).toBytes()
    assert.ok(cache.parse(good, 'p').equals(parsePoint(good, 'p')))
    assert.equal(cache.size, 1)
    // a point with an order-2 component: on the curve, canonical, not of small order, outside the subgroup
    const dirty = withTorsion(Point.BASE.multiply(12345n).toBytes())
    for (let i = 0; i < 2; i++) {
      assert.throws(() => cache.parse(dirty, 'dirty'), { name: 'InvalidPointError' })
      assert.throws(() => cache.parse(ORDER_2, 'small'), { name: 'InvalidPointError' })
    }
    assert.equal(cache.size, 1)
    for (let i = 0; i < 6; i++) cache.parse(Point.BASE.multiply(BigInt(i + 1)).toBytes(), 'p')
    assert.equal(cache.size, 4)
  })
})

/** What today's coordinator did before this change: every point parsed and every share checked alone. */
async function perShareCoordinator(
  pub: FrostPublic,
  members: PrincipalId[],
  payload: Uint8Array,
  transport: SigningTransport,
  coordinator: PrincipalId
): Promise<{ excluded: Set<PrincipalId>; signers?: PrincipalId[] }> {
  const t = pub.signers.min
  const excluded = new Set<PrincipalId>()
  for (let attempt = 1; attempt <= members.length - t + 1; attempt++) {
    const candidates = members.filter(m => !excluded.has(m))
    if (candidates.length < t) return { excluded }
    const request: SigningRequest = { session: crypto.getRandomValues(new Uint8Array(32)), coordinator, payload }
    const answers = await Promise.allSettled(candidates.map(async m => await transport.commit(m, request)))
    const committed: Array<{ member: PrincipalId; c: NonceCommitments }> = []
    answers.forEach((a, i) => {
      if (a.status === 'rejected') return excluded.add(candidates[i])
      try {
        if (a.value.identifier !== memberIdentifier(candidates[i])) throw new Error('other identifier')
        parsePoint(a.value.hiding, 'hiding')
        parsePoint(a.value.binding, 'binding')
        committed.push({ member: candidates[i], c: a.value })
      } catch {
        excluded.add(candidates[i])
      }
    })
    if (committed.length < t) return { excluded }
    const chosen = committed.slice(0, t)
    const pkg: SigningPackage = { ...request, commitments: chosen.map(c => c.c) }
    const shares = await Promise.allSettled(chosen.map(async c => await transport.sign(c.member, pkg)))
    let valid = 0
    shares.forEach((s, i) => {
      let ok = false
      try {
        ok =
          s.status === 'fulfilled' && frost.verifyShare(pub, pkg.commitments, payload, chosen[i].c.identifier, s.value)
      } catch {}
      if (ok) valid++
      else excluded.add(chosen[i].member)
    })
    if (valid === t) return { excluded, signers: chosen.map(c => c.member) }
  }
  return { excluded }
}

type Fault = 'none' | 'offline' | 'refuse-sign' | 'garbage' | 'plus' | 'minus' | 'small-order' | 'dirty' | 'identity'

describe('coordinateSigning excludes exactly whom per-share verification excludes', () => {
  let ms: Member[]
  let ids: PrincipalId[]
  let keys: Key[]
  let pub: FrostPublic
  const coordinator = 'z6MkCoordinator' as PrincipalId

  before(async () => {
    ms = await members(5)
    ids = ms.map(m => m.id)
    keys = dealtGroup(ms, 3).keys
    pub = keys[0].public
  })

  function transport(faults: Fault[], delta: bigint): SigningTransport {
    const signers = new Map(ids.map((m, i) => [m, new Signer(keys[i], m, async () => {})]))
    const fault = (m: PrincipalId): Fault => faults[ids.indexOf(m)]
    return {
      commit: async (m, req): Promise<NonceCommitments> => {
        if (fault(m) === 'offline') throw new ThresholdError(`${m} is unreachable`)
        const c = await signers.get(m)!.commit(req)
        const dirty = withTorsion(c.hiding)
        if (fault(m) === 'small-order') return { ...c, binding: ORDER_2 } as NonceCommitments
        if (fault(m) === 'dirty') return { ...c, hiding: dirty } as NonceCommitments
        if (fault(m) === 'identity') return { ...c, hiding: Point.ZERO.toBytes() } as NonceCommitments
        return c
      },
      sign: async (m, pkg) => {
        const z = signers.get(m)!.signShare(pkg)
        switch (fault(m)) {
          case 'refuse-sign':
            throw new ThresholdError('changed its mind')
          case 'garbage':
            return z.map((b, i) => (i === 0 ? b ^ 1 : b))
          case 'plus':
            return shifted(z, delta)
          case 'minus':
            return shifted(z, Fn.neg(delta))
          default:
            return z
        }
      }
    }
  }

  it('for every mix of offline, refusing, lying and colluding members', async () => {
    const fault = fc.constantFrom<Fault>(
      'none',
      'none',
      'offline',
      'refuse-sign',
      'garbage',
      'plus',
      'minus',
      'small-order',
      'dirty',
      'identity'
    )
    await fc.assert(
      fc.asyncProperty(
        fc.array(fault, { minLength: 5, maxLength: 5 }),
        fc.bigInt(1n, Fn.ORDER - 1n),
        async (faults, delta) => {
          const payload = utf8('a cluster decision')
          const reference = await perShareCoordinator(pub, ids, payload, transport(faults, delta), coordinator)
          let result: SigningResult | undefined
          try {
            result = await coordinateSigning(pub, ids, payload, transport(faults, delta), { coordinator })
          } catch (err) {
            assert.equal((err as Error).name, 'NotEnoughSignersError')
          }
          assert.equal(result != null, reference.signers != null, 'signs exactly when per-share checking signs')
          if (result == null) return
          assert.deepEqual(new Set(result.excluded.keys()), reference.excluded)
          assert.deepEqual(result.signers, reference.signers)
          assert.ok(await nobleEd25519.verify(pub.commitments[0], payload, result.signature))
          for (const [m, err] of result.excluded) {
            if (['garbage', 'plus', 'minus'].includes(faults[ids.indexOf(m)])) {
              assert.equal(err.name, 'InvalidShareError')
              assert.equal((err as InvalidShareError).culprit, m)
            }
          }
        }
      ),
      { numRuns: 25 }
    )
  })

  it('names both members of a colluding pair whose bad shares cancel in the sum', async () => {
    const faults: Fault[] = ['plus', 'minus', 'none', 'none', 'none']
    const payload = utf8('a cluster decision')
    const result = await coordinateSigning(pub, ids, payload, transport(faults, 777n), { coordinator })
    assert.deepEqual([...result.excluded.keys()], ids.slice(0, 2))
    for (const m of ids.slice(0, 2)) {
      assert.equal(result.excluded.get(m)?.name, 'InvalidShareError')
      assert.equal((result.excluded.get(m) as InvalidShareError).culprit, m)
    }
    assert.deepEqual(result.signers, ids.slice(2))
    assert.equal(result.attempts, 2)
    assert.ok(await nobleEd25519.verify(pub.commitments[0], payload, result.signature))
  })
})
