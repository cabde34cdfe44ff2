/**
 * Share maintenance without ever reconstructing the group secret:
 *
 * - Proactive refresh: every member deals a random polynomial with constant term 0 to all; each
 *   adds what it receives to its share. The group key stays the same, the new shares sign, and
 *   old shares no longer combine with new ones — a share stolen before the refresh is useless.
 * - Repair (the repairable threshold scheme of Laing and Stinson, as in frost-rs): t helpers
 *   rebuild a member's lost share. Helper i splits λ_i(x_r)·s_i into random summands, one per
 *   helper; each helper sums what it got and sends the sum to the member, who adds them up. No
 *   one but the member learns the share, and no one learns another helper's share.
 *
 * Every piece is checked against public commitments; the messages carrying the scalars must be
 * encrypted to their recipient by whoever moves them.
 *
 * @example
 * const deals = members.map(m => dealRefresh(pub, members))
 * const fresh = applyRefresh(key, myPrincipal, deals.map(d => ({ commitments: d.commitments, share: d.shares.get(me) })))
 */
import { InvalidShareError, NotEnoughSignersError } from './errors.ts'
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

export interface RefreshDeal {
  /** Commitments to the coefficients of x¹ … x^(t−1) (the constant term is zero). */
  commitments: Uint8Array[]
  /** Each member's evaluation, by principal: send each only to its member, encrypted. */
  shares: Map<PrincipalId, Uint8Array>
}

export interface ReceivedRefresh {
  from: PrincipalId
  commitments: Uint8Array[]
  share: Uint8Array
}

/** One member's contribution to a refresh of the group `pub` among `members`. */
export function dealRefresh(pub: FrostPublic, members: PrincipalId[]): RefreshDeal {
  if (members.length !== pub.signers.max) throw new RangeError('a refresh deals to every member')
  const coefficients = [0n, ...Array.from({ length: pub.signers.min - 1 }, () => randomScalar())]
  const deal = {
    commitments: coefficients.slice(1).map(a => Point.BASE.multiply(a).toBytes()),
    shares: new Map(members.map(m => [m, scalarBytes(evaluate(coefficients, memberScalar(m)))]))
  }
  coefficients.fill(0n)
  return deal
}

/**
 * Throws InvalidShareError (naming `from`) unless `share` is the dealt value for `to`; returns the
 * deal's commitments as points, constant term (zero) first.
 */
export function verifyRefreshShare(pub: FrostPublic, to: PrincipalId, received: ReceivedRefresh): GroupPoint[] {
  try {
    if (received.commitments.length !== pub.signers.min - 1) throw new Error('wrong number of commitments')
    const points = [Point.ZERO, ...received.commitments.map((c, i) => parsePoint(c, `commitment ${i + 1}`))]
    checkEvaluation(points, to, received.share, 'refresh share')
    return points
  } catch (err) {
    throw new InvalidShareError(
      `the refresh share from ${received.from} is bad: ${(err as Error).message}`,
      received.from
    )
  }
}

/**
 * The refreshed key of member `self`, from the deals of every member (its own included): a new
 * share, the same group key, and the public verifying shares and commitments moved along.
 */
export function applyRefresh(key: Key, self: PrincipalId, members: PrincipalId[], deals: ReceivedRefresh[]): Key {
  const pub = key.public
  if (new Set(deals.map(d => d.from)).size !== members.length || !deals.every(d => members.includes(d.from))) {
    throw new NotEnoughSignersError('a refresh needs exactly one deal from every member')
  }
  let share = parseScalar(key.secret.signingShare, 'signing share')
  const added = Array.from({ length: pub.signers.min }, () => Point.ZERO)
  for (const deal of deals) {
    const points = verifyRefreshShare(pub, self, deal)
    share = Fn.add(share, parseScalar(deal.share, 'refresh share', { nonZero: false }))
    for (let k = 1; k < points.length; k++) added[k] = added[k].add(points[k])
  }
  const commitments = pub.commitments.map((c, k) => (k === 0 ? c : Point.fromBytes(c).add(added[k]).toBytes()))
  const verifyingShares = Object.fromEntries(
    members.map(m => {
      const id = memberIdentifier(m)
      return [
        id,
        Point.fromBytes(pub.verifyingShares[id])
          .add(evaluateCommitments(added, memberScalar(m)))
          .toBytes()
      ]
    })
  )
  const fresh: Key = {
    public: {
      signers: { ...pub.signers },
      commitments: commitments as FrostPublic['commitments'],
      verifyingShares: verifyingShares as FrostPublic['verifyingShares']
    },
    secret: { identifier: key.secret.identifier, signingShare: scalarBytes(share) }
  }
  frost.validateSecret(fresh.secret, fresh.public)
  return fresh
}

/** Repair, step 1 at helper `key`: random summands of λ_i(x_lost)·s_i, one for each helper (itself included). */
export function repairShares(
  key: Key,
  self: PrincipalId,
  helpers: PrincipalId[],
  lost: PrincipalId
): Map<PrincipalId, Uint8Array> {
  if (helpers.length < key.public.signers.min || new Set(helpers).size !== helpers.length) {
    throw new NotEnoughSignersError(`a repair needs ${key.public.signers.min} distinct helpers`)
  }
  if (!helpers.includes(self) || helpers.includes(lost))
    throw new RangeError('helpers include this member, not the lost one')
  const delta = Fn.mul(
    lagrange(helpers.map(memberScalar), memberScalar(self), memberScalar(lost)),
    parseScalar(key.secret.signingShare, 'signing share')
  )
  const out = new Map<PrincipalId, Uint8Array>()
  let rest = delta
  for (const h of helpers.slice(0, -1)) {
    const piece = randomScalar()
    out.set(h, scalarBytes(piece))
    rest = Fn.sub(rest, piece)
  }
  out.set(helpers[helpers.length - 1], scalarBytes(rest))
  return out
}

/** Repair, step 2 at each helper: the sum of the summands it received, sent to the lost member. */
export function sumRepairShares(pieces: Uint8Array[]): Uint8Array<ArrayBuffer> {
  return scalarBytes(pieces.reduce((acc, p) => Fn.add(acc, parseScalar(p, 'repair piece', { nonZero: false })), 0n))
}

/** Repair, step 3 at the member: its share again, checked against its public verifying share. */
export function recoverShare(pub: FrostPublic, lost: PrincipalId, sums: Uint8Array[]): Key {
  if (sums.length < pub.signers.min) throw new NotEnoughSignersError(`${pub.signers.min} helpers' sums are needed`)
  const secret = { identifier: memberIdentifier(lost), signingShare: sumRepairShares(sums) }
  try {
    frost.validateSecret(secret, pub)
  } catch {
    throw new InvalidShareError('the repaired share does not match the group: a helper sent a bad sum')
  }
  return { public: pub, secret }
}
