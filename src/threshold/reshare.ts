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
  checkEvaluation,
  evaluate,
  evaluateCommitments,
  Fn,
  frost,
  lagrange,
  memberIdentifier,
  memberScalar,
  parsePoint,
  parseScalar,
  Point,
  randomScalar,
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

/**
 * Throws InvalidShareError naming the dealer unless its constant commitment is λ·Y of its old
 * verifying share and `share` is its polynomial at `to`; returns the commitments as points.
 */
export function verifyReshareShare(
  oldPub: FrostPublic,
  dealers: PrincipalId[],
  to: PrincipalId,
  threshold: number,
  received: ReceivedReshare
): GroupPoint[] {
  try {
    if (received.commitments.length !== threshold) throw new Error(`${threshold} commitments expected`)
    const points = received.commitments.map((c, i) => parsePoint(c, `commitment ${i}`))
    const verifying = Point.fromBytes(oldPub.verifyingShares[memberIdentifier(received.from)])
    if (!points[0].equals(verifying.multiply(lagrange(dealers.map(memberScalar), memberScalar(received.from)))))
      throw new Error('its constant term is not its weighted share of the group key')
    checkEvaluation(points, to, received.share, 'reshare share')
    return points
  } catch (err) {
    throw new InvalidShareError(`the reshare deal of ${received.from} is bad: ${(err as Error).message}`, received.from)
  }
}

/**
 * New member `self`'s key in the reshared group: its share, the unchanged group key, the new
 * commitments and every new member's verifying share. Needs exactly one deal from each dealer.
 */
export function combineReshare(
  oldPub: FrostPublic,
  dealers: PrincipalId[],
  self: PrincipalId,
  members: PrincipalId[],
  threshold: number,
  received: ReceivedReshare[]
): Key {
  checkDealers(oldPub, dealers)
  if (new Set(received.map(r => r.from)).size !== dealers.length || !received.every(r => dealers.includes(r.from)))
    throw new NotEnoughSignersError('a resharing needs exactly one deal from every dealer')
  let share = 0n
  const sum = Array.from({ length: threshold }, () => Point.ZERO)
  for (const r of received) {
    const points = verifyReshareShare(oldPub, dealers, self, threshold, r)
    share = Fn.add(share, parseScalar(r.share, 'reshare share', { nonZero: false }))
    for (let k = 0; k < threshold; k++) sum[k] = sum[k].add(points[k])
  }
  // each constant term was checked against its dealer's verifying share: together they are the group key
  const key: Key = {
    public: resharedPublic(oldPub.commitments[0], members, threshold, sum),
    secret: { identifier: memberIdentifier(self), signingShare: scalarBytes(share) }
  }
  frost.validateSecret(key.secret, key.public)
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
