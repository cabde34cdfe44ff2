/** Members and dealt groups for the threshold tests. */
import { key } from '../spki/fixtures.ts'
import { dealShares } from '../../src/threshold/dealer.ts'
import { hexToBytes } from '@noble/hashes/utils.js'
import { Fn, frost, Point, randomScalar, scalarBytes } from '../../src/threshold/group.ts'
import type { Key as Member } from '../spki/fixtures.ts'
import type { Key } from '@noble/curves/abstract/frost.js'

export type { Member }

export async function members(n: number): Promise<Member[]> {
  return await Promise.all(Array.from({ length: n }, async () => await key()))
}

/** A t-of-n group from a dealer: each member's FROST key package. */
export function dealtGroup(ms: Member[], t: number): { secret: Uint8Array; keys: Key[] } {
  const secret = scalarBytes(randomScalar())
  const dealt = dealShares(
    secret,
    ms.map(m => m.id),
    t
  )
  return { secret, keys: ms.map(m => ({ public: dealt.public, secret: dealt.shares.get(m.id)! })) }
}

/** A FROST signature by exactly `keys` (all of them sign; no coordinator). */
export function signWith(keys: Key[], msg: Uint8Array): Uint8Array {
  const nonces = keys.map(k => frost.commit(k.secret))
  const list = nonces.map(n => n.commitments)
  const shares = Object.fromEntries(
    keys.map((k, i) => [k.secret.identifier, frost.signShare(k.secret, k.public, nonces[i].nonces, list, msg)])
  )
  return frost.aggregate(keys[0].public, list, msg, shares)
}

/** The encoding of the point of order 2, (0, −1). */
export const ORDER_2 = hexToBytes('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f')

/** The point plus the point of order 2: canonical and not of small order, but outside the prime-order subgroup. */
export function withTorsion(bytes: Uint8Array): Uint8Array {
  return Point.fromBytes(bytes).add(Point.fromBytes(ORDER_2)).toBytes()
}

/** A share changed by `delta` (mod ℓ): a colluding pair sends +δ and −δ, so the sum stays right. */
export function shifted(share: Uint8Array, delta: bigint): Uint8Array {
  return Fn.toBytes(Fn.add(Fn.fromBytes(share), delta))
}
