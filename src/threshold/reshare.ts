/**
 * Resharing: moving a group key to a new member set and threshold without ever reconstructing it
 * (the dealer-set redistribution of Desmedt–Jajodia / Wong–Wang–Wing, with Feldman commitments).
 *
 * t_old old members D each deal a fresh polynomial g_i of degree t_new − 1 whose constant term is
 * their Lagrange-weighted share w_i = λ_i^D(0)·s_i, committing to every coefficient. New member j
 * gets g_i(x_j) from each dealer and its new share is s'_j = Σ g_i(x_j): a point on
 * G = Σ g_i, whose constant term Σ λ_i s_i is the old secret. Each piece is checked publicly:
 * g_i(x_j)·B against the dealer's commitments, and the dealer's constant commitment against its
 * old verifying share (C_i0 = λ_i·Y_i), so a dealer that deals anything but its share is named; the
 * constant commitments add up to the unchanged group key. New shares lie on a new random
 * polynomial: they do not combine with old ones.
 *
 * @example
 * const deal = dealReshare(oldKey, me, dealers, newMembers, 3)          // at each dealer
 * const key = combineReshare(oldPublic, dealers, j, newMembers, 3, received) // at new member j
 */
import { EquivocationError, InvalidShareError, NotEnoughSignersError } from './errors.ts'
import {
  checkSecretShare,
  evaluate,
  evaluateCommitments,
  Fn,
  lagrange,
  memberIdentifier,
  memberScalar,
  parseCurvePoint,
  parseScalar,
  Point,
  PointCache,
  randomScalar,
  readShares,
  scalarBytes
} from './group.ts'
import type { GroupPoint } from './group.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { FrostPublic, Key } from '@noble/curves/abstract/frost.js'

export interface ReshareDealt {
  /** Commitments to all t_new coefficients, the constant term (λ_i·s_i·B) first. */
  commitments: Uint8Array[]
  /** Each new member's evaluation, by principal: send each only to its member, sealed. */
  shares: Map<PrincipalId, Uint8Array>
}

export interface ReceivedReshare {
  from: PrincipalId
  commitments: Uint8Array[]
  share: Uint8Array
}

function checkDealers(pub: FrostPublic, dealers: PrincipalId[]): void {
  if (dealers.length !== pub.signers.min || new Set(dealers).size !== dealers.length)
    throw new NotEnoughSignersError(`a resharing is dealt by exactly ${pub.signers.min} distinct old members`)
  for (const d of dealers)
    if (pub.verifyingShares[memberIdentifier(d)] == null)
      throw new RangeError(`dealer ${d} holds no share of the group`)
}

/** Old member `self`'s deal of its weighted share to `members` with threshold `threshold`. */
export function dealReshare(
  key: Key,
  self: PrincipalId,
  dealers: PrincipalId[],
  members: PrincipalId[],
  threshold: number
): ReshareDealt {
  checkDealers(key.public, dealers)
  if (!dealers.includes(self)) throw new RangeError('this member is not among the dealers')
  const weighted = Fn.mul(
    lagrange(dealers.map(memberScalar), memberScalar(self)),
    parseScalar(key.secret.signingShare, 'signing share')
  )
  const coefficients = [weighted, ...Array.from({ length: threshold - 1 }, () => randomScalar())]
  const dealt = {
    commitments: coefficients.map(a => Point.BASE.multiply(a).toBytes()),
    shares: new Map(members.map(m => [m, scalarBytes(evaluate(coefficients, memberScalar(m)))]))
  }
  coefficients.fill(0n)
  return dealt
}

function reshareError(from: PrincipalId, err: Error): InvalidShareError {
  return new InvalidShareError(`the reshare deal of ${from} is bad: ${err.message}`, from)
}

/** A deal's commitments as points, the constant one checked against its dealer's weighted verifying share. */
function resharePoints(
  oldPub: FrostPublic,
  dealers: PrincipalId[],
  threshold: number,
  received: ReceivedReshare,
  points: PointCache
): GroupPoint[] {
  if (received.commitments.length !== threshold) throw new Error(`${threshold} commitments expected`)
  // the constant term must EQUAL λ·Y, a point of the prime-order subgroup: that equality is its
  // subgroup check; every other commitment gets the full one
  const parsed = received.commitments.map((c, i) =>
    i === 0 ? parseCurvePoint(c, 'commitment 0') : points.parse(c, `commitment ${i}`)
  )
  const verifying = points.parse(oldPub.verifyingShares[memberIdentifier(received.from)], 'verifying share')
  if (!parsed[0].equals(verifying.multiplyUnsafe(lagrange(dealers.map(memberScalar), memberScalar(received.from)))))
    throw new Error('its constant term is not its weighted share of the group key')
  return parsed
}

/**
 * New member `self`'s key in the reshared group: its share, the unchanged group key, the new
 * commitments and every new member's verifying share. Needs exactly one deal from each dealer;
 * the first bad one, in order, is named (all shares checked in one weighted equation, one by one
 * only if it fails).
 */
export function combineReshare(
  oldPub: FrostPublic,
  dealers: PrincipalId[],
  self: PrincipalId,
  members: PrincipalId[],
  threshold: number,
  received: ReceivedReshare[],
  points: PointCache = new PointCache()
): Key {
  checkDealers(oldPub, dealers)
  // exactly one deal per dealer: a deal counted twice would add its polynomial twice
  if (
    received.length !== dealers.length ||
    new Set(received.map(r => r.from)).size !== dealers.length ||
    !received.every(r => dealers.includes(r.from))
  )
    throw new NotEnoughSignersError('a resharing needs exactly one deal from every dealer')
  const parsed = readShares(
    received,
    memberScalar(self),
    r => r.from,
    r => {
      const commitments = resharePoints(oldPub, dealers, threshold, r, points)
      return { share: parseScalar(r.share, 'reshare share', { nonZero: false }), commitments }
    },
    reshareError
  )
  let share = 0n
  const sum = Array.from({ length: threshold }, () => Point.ZERO)
  for (const r of parsed) {
    share = Fn.add(share, r.share)
    for (let k = 0; k < threshold; k++) sum[k] = sum[k].add(r.commitments[k])
  }
  // each constant term was checked against its dealer's verifying share: together they are the group key
  const key: Key = {
    public: resharedPublic(oldPub.commitments[0], members, threshold, sum),
    secret: { identifier: memberIdentifier(self), signingShare: scalarBytes(share) }
  }
  // sums of checked points: in the subgroup; noble's validateSecret would re-check each
  checkSecretShare(key.secret, sum)
  return key
}

/**
 * The new group's public package from the sum of the dealers' commitments: what every new member
 * computes, and what a removed member recomputes from the deals to know what the new set acked.
 * Throws EquivocationError unless the constant terms add up to `group`.
 */
export function resharedPublic(
  group: Uint8Array,
  members: PrincipalId[],
  threshold: number,
  sum: GroupPoint[]
): FrostPublic {
  if (sum.length !== threshold || !sum[0].equals(Point.fromBytes(group)))
    throw new EquivocationError(
      'the dealt constant terms do not add up to the group key: the old package is inconsistent'
    )
  const commitments = sum.map(p => p.toBytes())
  commitments[0] = group
  return {
    signers: { min: threshold, max: members.length },
    commitments: commitments as FrostPublic['commitments'],
    verifyingShares: Object.fromEntries(
      members.map(m => [memberIdentifier(m), evaluateCommitments(sum, memberScalar(m)).toBytes()])
    ) as FrostPublic['verifyingShares']
  }
}
