/**
 * One FROST(Ed25519, SHA-512) signing round (RFC 9591 §4–5) computed once: the commitment list is
 * checked and parsed once (through a PointCache), and the binding factors, group commitment,
 * challenge and Lagrange coefficients are derived once, then shared by signing a share, checking
 * shares and aggregating. noble's `ed25519_FROST` recomputes all of that (re-parsing every point,
 * each with its subgroup check) in each of signShare, verifyShare and aggregate; the arithmetic
 * here is the RFC's, on noble's Point and Fn, and its outputs are byte-for-byte noble's.
 *
 * Checking shares: `invalidShares` answers exactly what checking each share alone would — one
 * randomly weighted equation over all shares, Σ rᵢ(zᵢB − Dᵢ − ρᵢEᵢ − cλᵢYᵢ) = O, and only when it
 * fails each share on its own. Unit weights would be the plain "does the combined signature
 * verify" test, but two colluding signers could then cancel each other's errors and escape.
 *
 * @example
 * const round = prepareRound(pub, pkg.commitments, payload, points)
 * const share = round.signShare(key.secret, nonces)           // the signer
 * const bad = round.invalidShares(shares)                      // the coordinator: [] when all verify
 * const signature = round.aggregate(shares)
 */
import { sha512 } from '@noble/hashes/sha2.js'
import { concatBytes, hexToBytes } from '@noble/hashes/utils.js'
import { SigningRefusedError, ThresholdError } from './errors.ts'
import { batchWeight, Fn, identifierScalar, lagrange, Point, publicMsm, scalarOfHash } from './group.ts'
import type { GroupPoint, Identifier, PointCache } from './group.ts'
import type { FrostPublic, FrostSecret, NonceCommitments, Nonces } from '@noble/curves/abstract/frost.js'

const utf8 = new TextEncoder()
/** RFC 9591 §6.1 contextString of FROST-ED25519-SHA512-v1. */
const CONTEXT = 'FROST-ED25519-SHA512-v1'
const RHO = utf8.encode(`${CONTEXT}rho`)
const MSG = utf8.encode(`${CONTEXT}msg`)
const COM = utf8.encode(`${CONTEXT}com`)
const NONCE = utf8.encode(`${CONTEXT}nonce`)

/** H1: binding factors. */
const h1 = (m: Uint8Array): bigint => scalarOfHash(concatBytes(RHO, m))
/** H2: the challenge, undecorated so the result is an RFC 8032 signature. */
const h2 = (m: Uint8Array): bigint => scalarOfHash(m)
const h4 = (m: Uint8Array): Uint8Array => sha512(concatBytes(MSG, m))
const h5 = (m: Uint8Array): Uint8Array => sha512(concatBytes(COM, m))

interface Participant {
  id: Identifier
  x: bigint
  idBytes: Uint8Array
  hiding: GroupPoint
  binding: GroupPoint
  rho: bigint
  lambda: bigint
}

export interface PreparedRound {
  /** The group commitment R. */
  readonly groupCommitment: GroupPoint
  /** c = H2(R ‖ Y ‖ msg). */
  readonly challenge: bigint
  /** Identifiers of the round, ascending by scalar (the RFC's order). */
  readonly identifiers: Identifier[]
  /** ρᵢ, the binding factor of a signer of this round. */
  bindingFactor(id: Identifier): bigint
  /** RFC 9591 §5.2 sign(): zᵢ = dᵢ + eᵢρᵢ + λᵢsᵢc. The caller checks the nonces are this round's own. */
  signShare(secret: FrostSecret, nonces: Nonces): Uint8Array
  /** RFC 9591 §5.4 verify_signature_share for one signer. */
  verifyShare(id: Identifier, share: Uint8Array): boolean
  /**
   * The identifiers whose share does not verify, exactly as checking each alone would say (up to
   * probability 2^-128): one weighted equation first, each share alone only if that fails.
   */
  invalidShares(shares: Map<Identifier, Uint8Array>): Identifier[]
  /** R ‖ Σzᵢ: an RFC 8032 signature when every share verified. */
  aggregate(shares: Map<Identifier, Uint8Array>): Uint8Array
}

/** RFC 9591 §4.1 nonce_generate with its 32 random bytes given: H3(random ‖ SerializeScalar(s)). */
export function nonceFromRandomness(random: Uint8Array, secret: bigint): bigint {
  return scalarOfHash(concatBytes(NONCE, random, Fn.toBytes(secret)))
}

/**
 * RFC 9591 §5.1 commit(): two fresh nonces, each H3(random(32) ‖ sᵢ) as nonce_generate says, and
 * their commitments B·d, B·e (constant time: the nonces are secret). The commitments are
 * remembered in `points` — computed here, they need no check when the signing package brings them
 * back. Same output distribution as noble's `commit`, which computes the same.
 */
export function commitNonces(
  secret: FrostSecret,
  points: PointCache
): { nonces: Nonces; commitments: NonceCommitments } {
  const s = Fn.fromBytes(secret.signingShare)
  const nonce = (): bigint => {
    while (true) {
      const n = nonceFromRandomness(crypto.getRandomValues(new Uint8Array(32)), s)
      if (n !== 0n) return n
    }
  }
  const d = nonce()
  const e = nonce()
  const D = Point.BASE.multiply(d)
  const E = Point.BASE.multiply(e)
  points.remember(D)
  points.remember(E)
  return {
    nonces: { hiding: Fn.toBytes(d), binding: Fn.toBytes(e) },
    commitments: { identifier: secret.identifier, hiding: D.toBytes(), binding: E.toBytes() }
  } as { nonces: Nonces; commitments: NonceCommitments }
}

/**
 * Checks a commitment list against `pub` (t..n distinct members, every point through `points`)
 * and derives the round. Throws SigningRefusedError for a malformed list and InvalidPointError
 * for a bad point.
 */
export function prepareRound(
  pub: FrostPublic,
  list: NonceCommitments[],
  msg: Uint8Array,
  points: PointCache
): PreparedRound {
  if (list.length < pub.signers.min || list.length > pub.signers.max)
    throw new SigningRefusedError(`a signing package lists ${pub.signers.min}-${pub.signers.max} signers`)
  const seen = new Set<string>()
  const parts: Participant[] = []
  for (const c of list) {
    if (pub.verifyingShares[c.identifier] == null) throw new SigningRefusedError('a listed signer is not a member')
    if (seen.has(c.identifier)) throw new SigningRefusedError('a signer is listed twice')
    seen.add(c.identifier)
    parts.push({
      id: c.identifier,
      x: identifierScalar(c.identifier),
      idBytes: hexToBytes(c.identifier),
      hiding: points.parse(c.hiding, 'hiding commitment'),
      binding: points.parse(c.binding, 'binding commitment'),
      rho: 0n,
      lambda: 0n
    })
  }
  parts.sort((a, b) => (a.x < b.x ? -1 : a.x > b.x ? 1 : 0))
  const groupKeyBytes = pub.commitments[0]
  // the group key must be a valid element too (RFC 9591 §3.1); checked once per cache
  points.parse(groupKeyBytes, 'group key')
  // RFC 9591 §4.3–4.5: encoded commitment list, binding factors, group commitment
  const encoded = concatBytes(...parts.flatMap(p => [p.idBytes, p.hiding.toBytes(), p.binding.toBytes()]))
  const rhoPrefix = concatBytes(groupKeyBytes, h4(msg), h5(encoded))
  const xs = parts.map(p => p.x)
  let hidingSum = Point.ZERO
  for (const p of parts) {
    p.rho = h1(concatBytes(rhoPrefix, p.idBytes))
    p.lambda = lagrange(xs, p.x)
    hidingSum = hidingSum.add(p.hiding)
  }
  const R = hidingSum.add(
    publicMsm(
      parts.map(p => p.binding),
      parts.map(p => p.rho)
    )
  )
  const RBytes = R.toBytes()
  const c = h2(concatBytes(RBytes, groupKeyBytes, msg))
  const byId = new Map(parts.map(p => [p.id, p]))
  const verifying = (id: Identifier): GroupPoint => points.parse(pub.verifyingShares[id], 'verifying share')
  const part = (id: Identifier): Participant => {
    const p = byId.get(id)
    if (p == null) throw new ThresholdError(`${id} is not in this round`)
    return p
  }
  /** A share as a scalar, or undefined when it is not a canonical 32-byte scalar. */
  const shareScalar = (share: Uint8Array): bigint | undefined => {
    if (!(share instanceof Uint8Array) || share.length !== 32) return undefined
    try {
      return Fn.fromBytes(share)
    } catch {
      return undefined
    }
  }
  const verifyShare = (id: Identifier, share: Uint8Array): boolean => {
    const p = byId.get(id)
    const z = shareScalar(share)
    if (p == null || z == null) return false
    const expected = p.hiding.add(publicMsm([p.binding, verifying(id)], [p.rho, Fn.mul(c, p.lambda)]))
    return Point.BASE.multiplyUnsafe(z).equals(expected)
  }
  return {
    groupCommitment: R,
    challenge: c,
    identifiers: parts.map(p => p.id),
    bindingFactor: (id: Identifier): bigint => part(id).rho,
    signShare(secret: FrostSecret, nonces: Nonces): Uint8Array {
      const p = part(secret.identifier)
      const s = Fn.fromBytes(secret.signingShare)
      const d = Fn.fromBytes(nonces.hiding)
      const e = Fn.fromBytes(nonces.binding)
      if (d === 0n || e === 0n) throw new ThresholdError('signing nonces already used')
      return Fn.toBytes(Fn.add(Fn.add(d, Fn.mul(e, p.rho)), Fn.mul(Fn.mul(p.lambda, s), c)))
    },
    verifyShare,
    invalidShares(shares: Map<Identifier, Uint8Array>): Identifier[] {
      const bad: Identifier[] = []
      const points: GroupPoint[] = []
      const scalars: bigint[] = []
      let zSum = 0n
      const weighed: Identifier[] = []
      for (const p of parts) {
        const share = shares.get(p.id)
        const z = share == null ? undefined : shareScalar(share)
        if (z == null) {
          bad.push(p.id)
          continue
        }
        // rᵢ(zᵢB − Dᵢ − ρᵢEᵢ − cλᵢYᵢ): B-terms summed into one scalar, the rest one MSM
        const r = batchWeight()
        zSum = Fn.add(zSum, Fn.mul(r, z))
        points.push(p.hiding, p.binding, verifying(p.id))
        scalars.push(Fn.create(r), Fn.mul(r, p.rho), Fn.mul(r, Fn.mul(c, p.lambda)))
        weighed.push(p.id)
      }
      if (weighed.length === 0) return bad
      if (Point.BASE.multiplyUnsafe(zSum).equals(publicMsm(points, scalars))) return bad
      for (const id of weighed) if (!verifyShare(id, shares.get(id) as Uint8Array)) bad.push(id)
      const order = new Map(parts.map((p, i) => [p.id, i]))
      return bad.sort((a, b) => (order.get(a) as number) - (order.get(b) as number))
    },
    aggregate(shares: Map<Identifier, Uint8Array>): Uint8Array {
      let z = 0n
      for (const p of parts) {
        const share = shares.get(p.id)
        const zi = share == null ? undefined : shareScalar(share)
        if (zi == null) throw new ThresholdError(`no valid share from ${p.id}`)
        z = Fn.add(z, zi)
      }
      return concatBytes(RBytes, Fn.toBytes(z))
    }
  }
}
