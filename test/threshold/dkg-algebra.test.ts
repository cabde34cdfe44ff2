import { strict as assert } from 'node:assert'
import { bytesToHex } from '@noble/hashes/utils.js'
import fc from 'fast-check'
import { dkgKey, dkgRound1 } from '../../src/threshold/dkg.ts'
import {
  evaluate,
  evaluateCommitments,
  firstBadEvaluation,
  Fn,
  frost,
  identifierScalar,
  Point
} from '../../src/threshold/group.ts'
import type { GroupPoint } from '../../src/threshold/group.ts'

/** noble's DKG state for a polynomial we made, so its round2/round3 can be run on the same numbers. */
function nobleSecret(
  x: bigint,
  coefficients: bigint[],
  commitments: GroupPoint[],
  n: number
): Parameters<typeof frost.DKG.round2>[0] {
  return {
    identifier: x,
    coefficients: [...coefficients],
    commitment: commitments.map(c => c.toBytes()),
    signers: { min: coefficients.length, max: n },
    step: 1
  } as Parameters<typeof frost.DKG.round2>[0]
}

describe('DKG algebra against noble’s FROST DKG', () => {
  it('round 1, shares and the final key are noble’s, byte for byte and key for key', () => {
    for (const [t, n] of [
      [2, 3],
      [3, 5]
    ]) {
      const ids = Array.from({ length: n }, (_, i) => frost.Identifier.derive(`member ${i} of ${n}`))
      const xs = ids.map(identifierScalar)
      const r1 = xs.map(x => dkgRound1(x, t))
      const packages = ids.map((identifier, i) => ({
        identifier,
        commitment: r1[i].commitments.map(c => c.toBytes()),
        proofOfKnowledge: r1[i].proof
      }))
      const secrets = xs.map((x, i) => nobleSecret(x, r1[i].coefficients, r1[i].commitments, n))
      // noble checks every proof of knowledge in round 2 and computes the same shares
      const round2 = secrets.map((s, i) =>
        frost.DKG.round2(
          s,
          packages.filter((_, j) => j !== i)
        )
      )
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          if (i === j) continue
          assert.equal(
            bytesToHex(round2[i][ids[j]].signingShare),
            bytesToHex(Fn.toBytes(evaluate(r1[i].coefficients, xs[j])))
          )
        }
      }
      for (let i = 0; i < n; i++) {
        const others = ids.map((_, j) => j).filter(j => j !== i)
        const theirs = frost.DKG.round3(
          secrets[i],
          others.map(j => packages[j]),
          others.map(j => ({ identifier: ids[j], signingShare: round2[j][ids[i]].signingShare }))
        )
        const ours = dkgKey(
          { identifier: ids[i], coefficients: r1[i].coefficients, commitments: r1[i].commitments },
          t,
          n,
          others.map(j => ({
            identifier: ids[j],
            share: Fn.fromBytes(round2[j][ids[i]].signingShare),
            commitments: r1[j].commitments
          }))
        )
        assert.deepEqual(ours, theirs)
        assert.deepEqual(Object.keys(ours.public.verifyingShares), Object.keys(theirs.public.verifyingShares))
      }
    }
  })

  it('finds the first sender whose share is off its commitments, as checking each alone does, colluders too', () => {
    const n = 6
    const t = 3
    const xs = Array.from({ length: n }, (_, i) => identifierScalar(frost.Identifier.fromNumber(i + 1)))
    const polys = xs.map(x => dkgRound1(x, t))
    const commitments = new Map(polys.map((p, i) => [i, p.commitments]))
    const me = xs[0]
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('good', 'good', 'plus', 'minus', 'random'), { minLength: n - 1, maxLength: n - 1 }),
        fc.bigInt(1n, Fn.ORDER - 1n),
        (faults, delta) => {
          const received = faults.map((f, k) => {
            const from = k + 1
            const s = evaluate(polys[from].coefficients, me)
            const share =
              f === 'plus' ? Fn.add(s, delta) : f === 'minus' ? Fn.sub(s, delta) : f === 'random' ? Fn.add(s, 1n) : s
            return { from, share, commitments: commitments.get(from)! }
          })
          const alone = received.find(
            r => !Point.BASE.multiplyUnsafe(r.share).equals(evaluateCommitments(commitments.get(r.from)!, me))
          )
          assert.equal(firstBadEvaluation(received, me), alone?.from)
        }
      ),
      { numRuns: 30 }
    )
  })
})
