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
  checkSecretShare,
  evaluate,
  evaluateCommitments,
  Fn,
  lagrange,
  memberIdentifier,
  memberScalar,
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
 * deal's commitments as points, constant term (zero) first. `points` holds points this node has
 * checked already (a refresh checks each deal when it arrives and again when it applies them).
 */
export function verifyRefreshShare(
  pub: FrostPublic,
  to: PrincipalId,
  received: ReceivedRefresh,
  points: PointCache = new PointCache()
): GroupPoint[] {
  try {
    const parsed = refreshPoints(pub, received, points)
    checkEvaluation(parsed, to, received.share, 'refresh share')
    return parsed
  } catch (err) {
    throw refreshError(received.from, err as Error)
  }
}

function refreshPoints(pub: FrostPublic, received: ReceivedRefresh, points: PointCache): GroupPoint[] {
  if (received.commitments.length !== pub.signers.min - 1) throw new Error('wrong number of commitments')
  return [Point.ZERO, ...received.commitments.map((c, i) => points.parse(c, `commitment ${i + 1}`))]
}

function refreshError(from: PrincipalId, err: Error): InvalidShareError {
  return new InvalidShareError(`the refresh share from ${from} is bad: ${err.message}`, from)
}

/**
 * The refreshed key of member `self`, from the deals of every member (its own included): a new
 * share, the same group key, and the public verifying shares and commitments moved along. Every
 * deal is checked (the first bad one, in order, is named) — all shares in one weighted equation,
 * one by one only if it fails.
 */
export function applyRefresh(
  key: Key,
  self: PrincipalId,
  members: PrincipalId[],
  deals: ReceivedRefresh[],
  points: PointCache = new PointCache()
): Key {
  const pub = key.public
  // exactly one deal per member: a deal counted twice would add its polynomial twice
  if (
    deals.length !== members.length ||
    new Set(deals.map(d => d.from)).size !== members.length ||
    !deals.every(d => members.includes(d.from))
  ) {
    throw new NotEnoughSignersError('a refresh needs exactly one deal from every member')
  }
  const parsed = readShares(
    deals,
    memberScalar(self),
    deal => deal.from,
    deal => {
      const commitments = refreshPoints(pub, deal, points)
      return { share: parseScalar(deal.share, 'refresh share', { nonZero: false }), commitments }
    },
    refreshError
  )
  let share = parseScalar(key.secret.signingShare, 'signing share')
  const added = Array.from({ length: pub.signers.min }, () => Point.ZERO)
  for (const deal of parsed) {
    share = Fn.add(share, deal.share)
    for (let k = 1; k < deal.commitments.length; k++) added[k] = added[k].add(deal.commitments[k])
  }
  // checked here (noble's validateSecret checked the sums instead): sums of subgroup points stay in it
  const before = pub.commitments.map((c, k) => points.parse(c, `group commitment ${k}`))
  const after = before.map((c, k) => (k === 0 ? c : c.add(added[k])))
  const commitments = after.map((c, k) => (k === 0 ? pub.commitments[0] : c.toBytes()))
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
  checkSecretShare(fresh.secret, after)
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
export function recoverShare(
  pub: FrostPublic,
  lost: PrincipalId,
  sums: Uint8Array[],
  points: PointCache = new PointCache()
): Key {
  if (sums.length < pub.signers.min) throw new NotEnoughSignersError(`${pub.signers.min} helpers' sums are needed`)
  const secret = { identifier: memberIdentifier(lost), signingShare: sumRepairShares(sums) }
  try {
    checkSecretShare(
      secret,
      pub.commitments.map((c, k) => points.parse(c, `group commitment ${k}`))
    )
  } catch {
    throw new InvalidShareError('the repaired share does not match the group: a helper sent a bad sum')
  }
  return { public: pub, secret }
}
