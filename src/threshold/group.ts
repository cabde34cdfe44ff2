/**
 * The group FROST(Ed25519, SHA-512) works in, with the checks every inbound element needs:
 * points must be canonical, not the identity, not of small order and in the prime-order
 * subgroup; scalars must be canonical (below the group order ℓ). A PointCache makes those checks
 * once per point. Also Lagrange coefficients, polynomial evaluation, share checks batched in one
 * randomly weighted equation, and a domain-separated hash to scalars, for the protocols that
 * `@noble/curves` leaves to us or whose FROST module repeats work (DKG, threshold decryption,
 * refresh, resharing, repair).
 *
 * @example
 * const R = parsePoint(bytes, 'ephemeral key')       // throws InvalidPointError
 * const l = lagrange([x1, x2, x3], x2)              // λ for x2 at 0
 */
import { mulAddUnsafe } from '@noble/curves/abstract/curve.js'
import { ed25519, ed25519_FROST } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, equalBytes } from '@noble/curves/utils.js'
import { sha512 } from '@noble/hashes/sha2.js'
import { bytesToHex, concatBytes, hexToBytes } from '@noble/hashes/utils.js'
import { RecentMap } from '../recent-map.ts'
import { InvalidPointError, InvalidScalarError, InvalidShareError } from './errors.ts'
import type { FrostSecret } from '@noble/curves/abstract/frost.js'
import type { PrincipalId } from '../crypto/principal.ts'

export const frost = ed25519_FROST
export const Point = ed25519.Point
export type GroupPoint = ReturnType<typeof Point.fromBytes>
export const Fn = Point.Fn
/** A FROST participant identifier: the hex of its scalar. */
export type Identifier = string

const utf8 = new TextEncoder()

/** A member's identifier, derived from its principal so it is the same in every session. */
export function memberIdentifier(principal: PrincipalId): Identifier {
  return frost.Identifier.derive(principal)
}

export function parsePoint(bytes: Uint8Array, what: string): GroupPoint {
  const p = parseCurvePoint(bytes, what)
  // [ℓ]P = O: a full scalar multiplication, most of what parsing a point costs (see PointCache)
  if (!p.isTorsionFree()) throw new InvalidPointError(`${what}: outside the prime-order subgroup`)
  return p
}

/**
 * Every check of parsePoint except membership of the prime-order subgroup: a canonical encoding of
 * a curve point that is neither the identity nor of small order. Only for a point that is then
 * required to EQUAL a point computed from subgroup elements (a proof's commitment R checked as
 * R = zB − cA): equality puts it in the subgroup, so the expensive check would be redundant.
 */
export function parseCurvePoint(bytes: Uint8Array, what: string): GroupPoint {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) throw new InvalidPointError(`${what}: a point is 32 bytes`)
  let p: GroupPoint
  try {
    p = Point.fromBytes(bytes, false)
  } catch (err) {
    throw new InvalidPointError(`${what}: not a point (${(err as Error).message})`)
  }
  // fromBytes accepts non-canonical y in some versions: the encoding must round-trip exactly
  if (!equalBytes(p.toBytes(), bytes)) throw new InvalidPointError(`${what}: non-canonical encoding`)
  if (p.is0()) throw new InvalidPointError(`${what}: the identity`)
  if (p.isSmallOrder()) throw new InvalidPointError(`${what}: a point of small order`)
  return p
}

/**
 * Points that passed parsePoint, by encoding, at most `capacity` of them (least recently used
 * forgotten): parsing the same 32 bytes again returns the checked point without checking it twice.
 * Only parsePoint's result or a point this node computed itself as B·k (`remember`) ever enters, so
 * a hit is exactly as safe as a fresh parse. One cache per node (a Signer holds one), so work saved
 * is work that node would have repeated, never another node's.
 *
 * @example
 * const points = new PointCache()
 * const R = points.parse(bytes, 'hiding commitment') // checked once; later calls are a lookup
 */
export class PointCache {
  private readonly checked: RecentMap<string, GroupPoint>

  constructor(capacity = 1024) {
    this.checked = new RecentMap(capacity)
  }

  parse(bytes: Uint8Array, what: string): GroupPoint {
    if (!(bytes instanceof Uint8Array) || bytes.length !== 32)
      throw new InvalidPointError(`${what}: a point is 32 bytes`)
    const key = bytesToHex(bytes)
    const hit = this.checked.get(key)
    if (hit != null) return hit
    const p = parsePoint(bytes, what)
    this.checked.set(key, p)
    return p
  }

  /** Adds a point this node computed as B·k with k in [1, ℓ): in the subgroup by construction. */
  remember(p: GroupPoint): void {
    this.checked.set(bytesToHex(p.toBytes()), p)
  }

  get size(): number {
    return this.checked.size
  }
}

/** Σ sᵢ·Pᵢ in variable time: only for public points and public (or random, non-secret) scalars. */
export function publicMsm(points: GroupPoint[], scalars: bigint[]): GroupPoint {
  if (points.length === 0) return Point.ZERO
  return mulAddUnsafe(Point, points, scalars)
}

/**
 * A random weight in [1, 2^128] for a batched check: Σ rᵢ·eᵢ = O with every eᵢ in the prime-order
 * subgroup holds for a nonzero eᵢ with probability at most 2^-128, so one weighted equation
 * checks every term at once — the same accept/reject answer as checking each term alone.
 */
export function batchWeight(): bigint {
  return bytesToNumberLE(crypto.getRandomValues(new Uint8Array(16))) + 1n
}

export function parseScalar(bytes: Uint8Array, what: string, { nonZero = true } = {}): bigint {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32)
    throw new InvalidScalarError(`${what}: a scalar is 32 bytes`)
  let n: bigint
  try {
    n = Fn.fromBytes(bytes)
  } catch {
    throw new InvalidScalarError(`${what}: not below the group order`)
  }
  if (nonZero && n === 0n) throw new InvalidScalarError(`${what}: zero`)
  return n
}

export function scalarBytes(n: bigint): Uint8Array<ArrayBuffer> {
  return Fn.toBytes(Fn.create(n)) as Uint8Array<ArrayBuffer>
}

export function randomScalar(): bigint {
  while (true) {
    // 64 uniform bytes reduced modulo ℓ: bias below 2^-250
    const n = Fn.create(bytesToNumberLE(crypto.getRandomValues(new Uint8Array(64))))
    if (n !== 0n) return n
  }
}

/** The identifier as a scalar (identifiers are hex of a canonical nonzero scalar). */
export function identifierScalar(id: Identifier): bigint {
  if (!/^[0-9a-f]{64}$/.test(id)) throw new InvalidScalarError('an identifier is 64 hex digits')
  return parseScalar(hexToBytes(id), 'identifier')
}

/** A member's identifier as a scalar: its x on every polynomial of the group. */
export function memberScalar(principal: PrincipalId): bigint {
  return identifierScalar(memberIdentifier(principal))
}

/**
 * `share` as a scalar if it is the value at member `to` of the polynomial committed to by
 * `commitments` (B·share = Σ C_k x^k); throws otherwise. Named `what` in a malformed-scalar error.
 */
export function checkEvaluation(commitments: GroupPoint[], to: PrincipalId, share: Uint8Array, what: string): bigint {
  const s = parseScalar(share, what, { nonZero: false })
  if (!baseTimesSecret(s).equals(evaluateCommitments(commitments, memberScalar(to))))
    throw new Error('does not match its commitments')
  return s
}

/** B·s in constant time, for a secret s (a share, or a combination of shares); s may be zero. */
function baseTimesSecret(s: bigint): GroupPoint {
  return s === 0n ? Point.ZERO : Point.BASE.multiply(s)
}

/**
 * The first sender, in order, whose share s_j is not its polynomial at x (B·s_j ≠ Σ_k C_jk·x^k) —
 * exactly what checking each alone finds: all of them in one randomly weighted equation
 * (Σ r_j s_j)·B = Σ_j Σ_k (r_j x^k)·C_jk, and one by one only when that fails.
 */
export function firstBadEvaluation<M>(received: Array<ReceivedEvaluation<M>>, x: bigint): M | undefined {
  if (received.length === 0) return undefined
  let sum = 0n
  const points: GroupPoint[] = []
  const scalars: bigint[] = []
  for (const { share, commitments } of received) {
    const r = batchWeight()
    sum = Fn.add(sum, Fn.mul(r, share))
    points.push(...commitments)
    scalars.push(...powers(x, commitments.length).map(p => Fn.mul(r, p)))
  }
  if (baseTimesSecret(sum).equals(publicMsm(points, scalars))) return undefined
  for (const { from, share, commitments } of received) {
    if (!baseTimesSecret(share).equals(evaluateCommitments(commitments, x))) return from
  }
  return undefined
}

/** A share received from `from`, as a scalar, with the sender's commitments as checked points. */
export interface ReceivedEvaluation<M> {
  from: M
  share: bigint
  commitments: GroupPoint[]
}

/**
 * Reads each item in order (`read` parses it and throws for a malformed one) and checks every
 * share is its sender's polynomial at x; throws `blame(sender, reason)` for the first bad item in
 * order — the one checking each alone would name: items are read up to the first `read` refuses,
 * those before it checked together (firstBadEvaluation), and the refused one is blamed only if
 * they all pass. Returns every item read, all good.
 */
export function readShares<T, M>(
  items: readonly T[],
  x: bigint,
  sender: (item: T) => M,
  read: (item: T) => { share: bigint; commitments: GroupPoint[] },
  blame: (from: M, reason: Error) => Error
): Array<ReceivedEvaluation<M>> {
  const received: Array<ReceivedEvaluation<M>> = []
  let refused: { from: M; reason: Error } | undefined
  for (const item of items) {
    try {
      received.push({ from: sender(item), ...read(item) })
    } catch (err) {
      refused = { from: sender(item), reason: err as Error }
      break
    }
  }
  const culprit = firstBadEvaluation(received, x)
  if (culprit != null) throw blame(culprit, new Error('does not match its commitments'))
  if (refused != null) throw blame(refused.from, refused.reason)
  return received
}

/**
 * noble's `validateSecret` (RFC 9591 Appendix C.2 vss_verify) over commitments already held as
 * checked points: B·s = Σ C_k x^k for this member's share, and no commitment the identity (noble
 * parses each again, with its subgroup check twice; points that are sums of checked points are in
 * the subgroup already). Throws InvalidShareError / InvalidPointError.
 */
export function checkSecretShare(secret: FrostSecret, commitments: GroupPoint[]): void {
  commitments.forEach((c, k) => {
    if (c.is0()) throw new InvalidPointError(`commitment ${k}: the identity`)
  })
  const s = parseScalar(secret.signingShare, 'signing share', { nonZero: false })
  if (!baseTimesSecret(s).equals(evaluateCommitments(commitments, identifierScalar(secret.identifier))))
    throw new InvalidShareError('the share does not match the group’s commitments')
}

/** λ_i(at) over the set `xs` (distinct): the coefficient of f(x_i) when interpolating f(at). */
export function lagrange(xs: bigint[], xi: bigint, at = 0n): bigint {
  let num = 1n
  let den = 1n
  for (const xj of xs) {
    if (xj === xi) continue
    num = Fn.mul(num, Fn.sub(at, xj))
    den = Fn.mul(den, Fn.sub(xi, xj))
  }
  return Fn.div(num, den)
}

/** Σ c_k x^k, coefficients lowest first. */
export function evaluate(coefficients: bigint[], x: bigint): bigint {
  let acc = 0n
  for (let k = coefficients.length - 1; k >= 0; k--) acc = Fn.add(Fn.mul(acc, x), coefficients[k])
  return acc
}

/** Σ C_k x^k over commitment points, lowest first (the public image of evaluate). */
export function evaluateCommitments(commitments: GroupPoint[], x: bigint): GroupPoint {
  return publicMsm(commitments, powers(x, commitments.length))
}

/** [1, x, x², …] mod ℓ, `count` of them. */
function powers(x: bigint, count: number): bigint[] {
  const out: bigint[] = []
  let p = 1n
  for (let k = 0; k < count; k++) {
    out.push(p)
    p = Fn.mul(p, x)
  }
  return out
}

/** SHA-512 of `bytes` as a scalar (reduced mod ℓ, little-endian): the hash-to-scalar of RFC 8032 and RFC 9591. */
export function scalarOfHash(bytes: Uint8Array): bigint {
  return Fn.create(bytesToNumberLE(sha512(bytes)))
}

/** A scalar from SHA-512 over a domain string and length-prefixed parts. */
export function hashToScalar(domain: string, ...parts: Uint8Array[]): bigint {
  const chunks: Uint8Array[] = [utf8.encode(domain), new Uint8Array([0])]
  for (const p of parts) {
    const len = new Uint8Array(4)
    new DataView(len.buffer).setUint32(0, p.length)
    chunks.push(len, p)
  }
  return scalarOfHash(concatBytes(...chunks))
}
