import { strict as assert } from 'node:assert'
import { bytesToHex } from '@noble/hashes/utils.js'
import fc from 'fast-check'
import { decodeFrostMessage, encodeFrostMessage } from '../../protocols/frost/codec.ts'
import * as dagCbor from '@ipld/dag-cbor'
import { DLEQ_DOMAIN, decryptionShare, encryptToGroup } from '../../src/threshold/decrypt.ts'
import { dealShares } from '../../src/threshold/dealer.ts'
import {
  AGENT_KEY_DLEQ_DOMAIN,
  agentKeyPoint,
  agentPrincipal,
  checkAgentName,
  combineDerivation,
  derivationShare,
  seedFromEvaluation,
  seedFromPartials,
  verifyDerivationShare
} from '../../src/threshold/derive.ts'
import { combinePartials, proveDleq, verifyDleq } from '../../src/threshold/dleq.ts'
import { hashToScalar, parsePoint, parseScalar, Point, randomScalar } from '../../src/threshold/group.ts'
import { dealtGroup, members } from './fixtures.ts'
import type { DerivationShare } from '../../src/threshold/derive.ts'
import type { GroupPoint } from '../../src/threshold/group.ts'
import type { Member } from './fixtures.ts'
import type { Key } from '@noble/curves/abstract/frost.js'

const hex = bytesToHex
const scalarOf = (secret: Uint8Array): bigint => parseScalar(secret, 'secret')
/** The PRF as one holder of the whole secret would compute it: what no member can, and t together do. */
const centralSeed = (secret: Uint8Array, groupKey: Uint8Array, kind: string, id: string): Uint8Array =>
  seedFromEvaluation(agentKeyPoint(groupKey, kind, id).multiply(scalarOf(secret)), groupKey, kind, id)

describe('agent keys by a threshold PRF', () => {
  let ms: Member[]
  let secret: Uint8Array
  let keys: Key[]
  let groupKey: Uint8Array
  let partials: DerivationShare[]

  before(async () => {
    ms = await members(5)
    ;({ secret, keys } = dealtGroup(ms, 3))
    groupKey = keys[0].public.commitments[0]
    partials = keys.map(k => derivationShare(k, 'worker', 'w-1'))
  })

  it('derives a fixed seed and principal for a fixed secret and name (the format cannot drift)', async () => {
    const s = 0x1234567890abcdefn
    const group = Point.BASE.multiply(s).toBytes()
    assert.equal(hex(group), 'c4c1227d7fff941a976049ecefad7b663fa5121d769cbbd79a53d344e4773e98')
    const H = agentKeyPoint(group, 'worker', 'w-1')
    assert.equal(hex(H.toBytes()), '5e1acd3e1df51f2fdc0b1d556005406093a0e0911b3716cf64849e012c54ed38')
    const seed = seedFromEvaluation(H.multiply(s), group, 'worker', 'w-1')
    assert.equal(hex(seed), '63c167d7b0aefa139e7cccb1729b62eeeb04a97650e327a2fe3373157f32421b')
    assert.equal(await agentPrincipal(seed), 'z6MkqHi4K78GCnXGkt7RtsMoTpCu49WLkwBPNZk35NJ8gNqM')
  })

  it('gives the same seed and principal from any t of n partials: the seed of the whole secret', async () => {
    const pub = keys[0].public
    const expected = centralSeed(secret, groupKey, 'worker', 'w-1')
    const principals = new Set<string>()
    for (const pick of [
      [0, 1, 2],
      [2, 3, 4],
      [4, 0, 3],
      [1, 3, 4]
    ]) {
      const seed = combineDerivation(
        pub,
        'worker',
        'w-1',
        pick.map(i => partials[i])
      )
      assert.equal(seed.length, 32)
      assert.deepEqual(seed, expected)
      principals.add(await agentPrincipal(seed))
    }
    assert.equal(principals.size, 1)
    // more than t checked partials interpolate to the same point
    const all = new Map(
      keys.map((k, i) => [k.secret.identifier, verifyDerivationShare(pub, 'worker', 'w-1', partials[i])])
    )
    assert.deepEqual(seedFromPartials(pub, 'worker', 'w-1', all), expected)
  })

  it('gives another seed for another kind, another id, another group, and keeps names apart', async () => {
    const seeds = new Set<string>()
    const pub = keys[0].public
    const seedOf = (kind: string, id: string): string =>
      hex(
        combineDerivation(
          pub,
          kind,
          id,
          keys.slice(0, 3).map(k => derivationShare(k, kind, id))
        )
      )
    for (const [kind, id] of [
      ['worker', 'w-1'],
      ['worker', 'w-2'],
      ['planner', 'w-1'],
      // length-prefixed: (ab, c) and (a, bc) are different names
      ['ab', 'c'],
      ['a', 'bc']
    ])
      seeds.add(seedOf(kind, id))
    assert.equal(seeds.size, 5)
    // the same name under another group (another secret) is another key
    const other = dealtGroup(ms, 3)
    const otherSeed = combineDerivation(
      other.keys[0].public,
      'worker',
      'w-1',
      other.keys.slice(0, 3).map(k => derivationShare(k, 'worker', 'w-1'))
    )
    assert.notEqual(hex(otherSeed), seedOf('worker', 'w-1'))
  })

  it('depends on the secret only: shares dealt anew for the same secret derive the same seed', () => {
    const redealt = dealShares(
      secret,
      ms.map(m => m.id),
      4
    )
    const newKeys = ms.map(m => ({ public: redealt.public, secret: redealt.shares.get(m.id)! }))
    assert.notDeepEqual(newKeys[0].secret.signingShare, keys[0].secret.signingShare)
    const seed = combineDerivation(
      redealt.public,
      'worker',
      'w-1',
      newKeys.slice(1, 5).map(k => derivationShare(k, 'worker', 'w-1'))
    )
    assert.deepEqual(seed, centralSeed(secret, groupKey, 'worker', 'w-1'))
  })

  it('derives nothing usable from t-1 partials', () => {
    const pub = keys[0].public
    const expected = hex(centralSeed(secret, groupKey, 'worker', 'w-1'))
    const checked = partials.map(
      (p, i) => [keys[i].secret.identifier, verifyDerivationShare(pub, 'worker', 'w-1', p)] as const
    )
    // the API refuses fewer than t, by name
    assert.throws(() => combineDerivation(pub, 'worker', 'w-1', partials.slice(0, 2)), {
      name: 'NotEnoughSignersError'
    })
    assert.throws(() => combineDerivation(pub, 'worker', 'w-1', [partials[0], partials[0], partials[1]]), {
      name: 'NotEnoughSignersError'
    })
    assert.throws(() => seedFromPartials(pub, 'worker', 'w-1', new Map(checked.slice(0, 2))), {
      name: 'NotEnoughSignersError'
    })
    // interpolating t-1 partials alone, or with the missing one guessed, gives another seed
    const guesses: GroupPoint[] = [
      Point.BASE.multiply(randomScalar()),
      // a partial of the same member for another name
      parsePoint(derivationShare(keys[2], 'worker', 'w-2').share, 'x'),
      // another member's partial for this name
      checked[3][1]
    ]
    const seedFrom = (m: Map<string, GroupPoint>): string =>
      hex(seedFromEvaluation(combinePartials(m), groupKey, 'worker', 'w-1'))
    assert.notEqual(seedFrom(new Map(checked.slice(0, 2))), expected)
    for (const guess of guesses)
      assert.notEqual(seedFrom(new Map([...checked.slice(0, 2), [keys[2].secret.identifier, guess]])), expected)
    // and the real third one gives it back
    assert.equal(seedFrom(new Map(checked.slice(0, 3))), expected)
  })

  it('names a bad partial by its proof, with its member', () => {
    const pub = keys[0].public
    const who = keys[1].secret.identifier
    const names = (err: Error): boolean => err.name === 'InvalidShareError' && err.message.includes(who.slice(0, 16))
    // another member's point under member 1's identifier, with that member's proof
    assert.throws(() => verifyDerivationShare(pub, 'worker', 'w-1', { ...partials[2], identifier: who }), names)
    // a valid partial of member 1 for another name
    const otherName = derivationShare(keys[1], 'worker', 'w-2')
    assert.throws(() => verifyDerivationShare(pub, 'worker', 'w-1', otherName), names)
    // a point computed with a wrong scalar, with a correct-looking proof for that scalar
    const wrongScalar = randomScalar()
    const forged = proveDleq(AGENT_KEY_DLEQ_DOMAIN, wrongScalar, agentKeyPoint(groupKey, 'worker', 'w-1'))
    assert.throws(
      () =>
        verifyDerivationShare(pub, 'worker', 'w-1', {
          identifier: who,
          share: forged.point.toBytes(),
          proof: forged.proof
        }),
      names
    )
    // the right point with a tampered proof
    const tampered = partials[1].proof.slice()
    tampered[5] ^= 1
    assert.throws(() => verifyDerivationShare(pub, 'worker', 'w-1', { ...partials[1], proof: tampered }), {
      name: /InvalidShareError|InvalidScalarError/
    })
    // malformed points: the identity, a small-order point, wrong length
    const identity = new Uint8Array(32)
    identity[0] = 1
    for (const share of [identity, new Uint8Array(32), new Uint8Array(31)])
      assert.throws(() => verifyDerivationShare(pub, 'worker', 'w-1', { ...partials[1], share }), {
        name: 'InvalidPointError'
      })
    // an unknown identifier
    assert.throws(() => verifyDerivationShare(pub, 'worker', 'w-1', { ...partials[1], identifier: 'ab'.repeat(32) }), {
      name: 'InvalidShareError'
    })
    // combining stops at the bad one and names it
    assert.throws(() => combineDerivation(pub, 'worker', 'w-1', [partials[0], otherName, partials[2]]), names)
  })

  it('keeps decryption proofs apart from derivation proofs', () => {
    const pub = keys[0].public
    // a decryption share asked for with R = H is s_i·H, but its proof is under the decryption domain
    const H = agentKeyPoint(groupKey, 'worker', 'w-1')
    const asDecryption = decryptionShare(keys[1], { ephemeral: H.toBytes(), ciphertext: new Uint8Array(16) })
    assert.deepEqual(asDecryption.share, partials[1].share)
    assert.throws(() => verifyDerivationShare(pub, 'worker', 'w-1', asDecryption), { name: 'InvalidShareError' })
  })

  it('proves decryption shares exactly as before the DLEQ moved to dleq.ts', () => {
    // the challenge as decrypt.ts computed it: H(domain, G, Y_i, R, D, zG − cY_i, zR − cD)
    const pub = keys[0].public
    const ct = encryptToGroup(groupKey, new Uint8Array([1, 2, 3]))
    const share = decryptionShare(keys[2], ct)
    const R = parsePoint(ct.ephemeral, 'R')
    const D = parsePoint(share.share, 'D')
    const Yi = parsePoint(pub.verifyingShares[share.identifier], 'Y')
    const c = parseScalar(share.proof.subarray(0, 32), 'c', { nonZero: false })
    const z = parseScalar(share.proof.subarray(32), 'z', { nonZero: false })
    const A1 = Point.BASE.multiply(z).subtract(Yi.multiply(c))
    const A2 = R.multiply(z).subtract(D.multiply(c))
    const parts = [Point.BASE, Yi, R, D, A1, A2].map(p => p.toBytes())
    assert.equal(hashToScalar(DLEQ_DOMAIN, ...parts), c)
    assert.equal(DLEQ_DOMAIN, 'cyberspace/threshold-dleq/v1')
    // and dleq.ts verifies it under that domain only
    assert.ok(verifyDleq(DLEQ_DOMAIN, Yi, R, D, share.proof))
    assert.ok(!verifyDleq(AGENT_KEY_DLEQ_DOMAIN, Yi, R, D, share.proof))
  })

  it('refuses malformed kinds and ids before any work, in the API and on the wire', () => {
    const ok = ['a', 'worker', '0', 'a.b_c-d', 'x'.repeat(64)]
    const bad = ['', 'Worker', '-a', '.a', '_a', 'a b', 'a/b', 'é', 'x'.repeat(65), 'a\u0000', 'a\n']
    for (const name of ok) {
      checkAgentName(name, name)
      const msg = { v: 1 as const, type: 'derive' as const, group: groupKey, epoch: 0, kind: name, id: name }
      assert.deepEqual(decodeFrostMessage(encodeFrostMessage(msg)), msg)
    }
    for (const name of bad) {
      assert.throws(() => checkAgentName(name, 'w-1'), { name: 'InvalidAgentNameError' })
      assert.throws(() => checkAgentName('worker', name), { name: 'InvalidAgentNameError' })
      assert.throws(() => derivationShare(keys[0], name, 'w-1'), { name: 'InvalidAgentNameError' })
      assert.throws(() => agentKeyPoint(groupKey, 'worker', name), { name: 'InvalidAgentNameError' })
      for (const fields of [
        { kind: name, id: 'w-1' },
        { kind: 'worker', id: name }
      ]) {
        const bytes = dagCbor.encode({ v: 1, type: 'derive', group: groupKey, epoch: 0, ...fields })
        assert.throws(() => decodeFrostMessage(bytes), { name: 'InvalidFrostMessageError' })
      }
    }
    // not a string, a point instead of a name, extra fields
    for (const extra of [
      { kind: 7, id: 'w-1' },
      { kind: 'worker', id: ['w-1'] },
      { kind: 'worker', id: 'w-1', point: new Uint8Array(32) },
      { kind: 'worker' }
    ]) {
      const bytes = dagCbor.encode({ v: 1, type: 'derive', group: groupKey, epoch: 0, ...extra })
      assert.throws(() => decodeFrostMessage(bytes), { name: 'InvalidFrostMessageError' })
    }
    // an answer's partial and proof have fixed lengths
    for (const [share, proof] of [
      [new Uint8Array(31), new Uint8Array(64)],
      [new Uint8Array(32), new Uint8Array(65)]
    ]) {
      const bytes = dagCbor.encode({ v: 1, type: 'derivation', identifier: 'a'.repeat(64), share, proof })
      assert.throws(() => decodeFrostMessage(bytes), { name: 'InvalidFrostMessageError' })
    }
  })

  it('gives the same seed from every random subset of at least t partials (property)', () => {
    const pub = keys[0].public
    const expected = hex(centralSeed(secret, groupKey, 'worker', 'w-1'))
    fc.assert(
      fc.property(fc.shuffledSubarray([0, 1, 2, 3, 4], { minLength: 3, maxLength: 5 }), pick => {
        const seed = combineDerivation(
          pub,
          'worker',
          'w-1',
          pick.map(i => partials[i])
        )
        return hex(seed) === expected
      }),
      { numRuns: 40 }
    )
    // and over random names, a random t-subset against the whole secret
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/),
        fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/),
        fc.shuffledSubarray([0, 1, 2, 3, 4], { minLength: 3, maxLength: 3 }),
        (kind, id, pick) => {
          const seed = combineDerivation(
            pub,
            kind,
            id,
            pick.map(i => derivationShare(keys[i], kind, id))
          )
          return hex(seed) === hex(centralSeed(secret, groupKey, kind, id))
        }
      ),
      { numRuns: 15 }
    )
  })

  it('shares the DLEQ proof: a proof verifies only for its own statement', () => {
    const s = randomScalar()
    const B = Point.BASE.multiply(randomScalar())
    const { point, proof } = proveDleq('cyberspace/test-dleq/v1', s, B)
    const Y = Point.BASE.multiply(s)
    assert.ok(verifyDleq('cyberspace/test-dleq/v1', Y, B, point, proof))
    assert.ok(!verifyDleq('cyberspace/test-dleq/v1', Point.BASE.multiply(randomScalar()), B, point, proof))
    assert.ok(!verifyDleq('cyberspace/test-dleq/v1', Y, Point.BASE.multiply(randomScalar()), point, proof))
    assert.ok(!verifyDleq('cyberspace/test-dleq/v1', Y, B, point.add(Point.BASE), proof))
    assert.throws(() => verifyDleq('cyberspace/test-dleq/v1', Y, B, point, proof.subarray(0, 63)), {
      name: 'InvalidShareError'
    })
  })
})
