/**
 * The group FROST(Ed25519, SHA-512) works in, with the checks every inbound element needs:
 * points must be canonical, not the identity, not of small order and in the prime-order
 * subgroup; scalars must be canonical (below the group order ℓ). Also Lagrange coefficients,
 * polynomial evaluation and a domain-separated hash to scalars, for the protocols that
 * `@noble/curves` leaves to us (threshold decryption, refresh, repair).
 *
 * @example
 * const R = parsePoint(bytes, 'ephemeral key')       // throws InvalidPointError
 * const l = lagrange([x1, x2, x3], x2)              // λ for x2 at 0
 */
import { ed25519, ed25519_FROST } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, equalBytes } from '@noble/curves/utils.js'
import { sha512 } from '@noble/hashes/sha2.js'
import { concatBytes, hexToBytes } from '@noble/hashes/utils.js'
import { InvalidPointError, InvalidScalarError } from './errors.ts'
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
  if (!p.isTorsionFree()) throw new InvalidPointError(`${what}: outside the prime-order subgroup`)
  return p
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
  if (!Point.BASE.multiplyUnsafe(s).equals(evaluateCommitments(commitments, memberScalar(to))))
    throw new Error('does not match its commitments')
  return s
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
  let acc = Point.ZERO
  for (let k = commitments.length - 1; k >= 0; k--) acc = acc.multiplyUnsafe(x).add(commitments[k])
  return acc
}

/** A scalar from SHA-512 over a domain string and length-prefixed parts. */
export function hashToScalar(domain: string, ...parts: Uint8Array[]): bigint {
  const chunks: Uint8Array[] = [utf8.encode(domain), new Uint8Array([0])]
  for (const p of parts) {
    const len = new Uint8Array(4)
    new DataView(len.buffer).setUint32(0, p.length)
    chunks.push(len, p)
  }
  return Fn.create(bytesToNumberLE(sha512(concatBytes(...chunks))))
}
