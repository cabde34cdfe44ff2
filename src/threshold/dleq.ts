/**
 * Threshold evaluation of B ↦ s·B for the group secret s, which no one holds: each member hands
 * out its partial D_i = s_i·B with a Chaum–Pedersen proof of equal discrete logs (that D_i used
 * the same s_i as its public verifying share Y_i = s_i·G), and any t checked partials combine to
 * s·B by Lagrange interpolation in the exponent. Threshold decryption (B = the ciphertext's R)
 * and the agent-key PRF (B = a hash of the agent's name) both rest on it; each proves under its
 * own domain, so a proof made for one never verifies as the other.
 *
 * The proof is (c ‖ z), 64 bytes: for a random k, c = H(domain, G, Y_i, B, D, kG, kB) and
 * z = k + c·s_i; a verifier recomputes kG = zG − cY_i and kB = zB − cD and checks c.
 *
 * @example
 * const { point, proof } = proveDleq(DOMAIN, s, B)
 * verifyDleq(DOMAIN, Point.BASE.multiply(s), B, point, proof) // true
 * combinePartials(new Map([[id1, D1], [id2, D2], [id3, D3]])) // s·B, with t = 3
 */
import { concatBytes } from '@noble/hashes/utils.js'
import { InvalidShareError } from './errors.ts'
import { Fn, hashToScalar, identifierScalar, lagrange, parseScalar, Point, randomScalar, scalarBytes } from './group.ts'
import type { GroupPoint, Identifier } from './group.ts'

/** Length of a proof: the challenge and the response, 32 bytes each. */
export const DLEQ_PROOF_BYTES = 64

function challenge(
  domain: string,
  Yi: GroupPoint,
  B: GroupPoint,
  D: GroupPoint,
  A1: GroupPoint,
  A2: GroupPoint
): bigint {
  return hashToScalar(domain, Point.BASE.toBytes(), Yi.toBytes(), B.toBytes(), D.toBytes(), A1.toBytes(), A2.toBytes())
}

/** D = s·B with a proof that log_G (s·G) = log_B D. The scalar never leaves. */
export function proveDleq(domain: string, s: bigint, B: GroupPoint): { point: GroupPoint; proof: Uint8Array } {
  const Yi = Point.BASE.multiply(s)
  const D = B.multiply(s)
  const k = randomScalar()
  const c = challenge(domain, Yi, B, D, Point.BASE.multiply(k), B.multiply(k))
  const z = Fn.add(k, Fn.mul(c, s))
  return { point: D, proof: concatBytes(scalarBytes(c), scalarBytes(z)) }
}

/**
 * Whether `proof` shows log_G Yi = log_B D under `domain`. A proof of the wrong length throws
 * InvalidShareError, a non-canonical scalar in it InvalidScalarError; the points are the caller's
 * to have checked (parsePoint).
 */
export function verifyDleq(domain: string, Yi: GroupPoint, B: GroupPoint, D: GroupPoint, proof: Uint8Array): boolean {
  if (!(proof instanceof Uint8Array) || proof.length !== DLEQ_PROOF_BYTES)
    throw new InvalidShareError(`a proof is ${DLEQ_PROOF_BYTES} bytes`)
  const c = parseScalar(proof.subarray(0, 32), 'proof challenge', { nonZero: false })
  const z = parseScalar(proof.subarray(32), 'proof response', { nonZero: false })
  // public values: variable-time arithmetic is fine, and allows the zero scalars a forger may send
  const A1 = Point.BASE.multiplyUnsafe(z).subtract(Yi.multiplyUnsafe(c))
  const A2 = B.multiplyUnsafe(z).subtract(D.multiplyUnsafe(c))
  return challenge(domain, Yi, B, D, A1, A2) === c
}

/**
 * s·B from checked partials s_i·B of distinct members, by identifier: Σ λ_i D_i. Exact with any t
 * or more of them; fewer give a point unrelated to s·B (the caller counts).
 */
export function combinePartials(partials: ReadonlyMap<Identifier, GroupPoint>): GroupPoint {
  const xs = [...partials.keys()].map(identifierScalar)
  let S = Point.ZERO
  let i = 0
  for (const D of partials.values()) S = S.add(D.multiplyUnsafe(lagrange(xs, xs[i++])))
  return S
}
