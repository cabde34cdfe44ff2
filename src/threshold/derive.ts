/**
 * Agent keys from the cluster key by a threshold PRF: the seed of agent (kind, id) is a function
 * of s·H, where s is the cluster secret (which no one holds) and H a point hashed from the group
 * key, the kind and the id. Each member hands out its partial D_i = s_i·H with a proof that it
 * used its own share (dleq.ts); any t checked partials combine to s·H by Lagrange interpolation,
 * so a host that died can have the same key derived again elsewhere, and fewer than t partials
 * give nothing. A refresh or resharing changes the shares, not s: the seed stays.
 *
 * - H = hash_to_curve(edwards25519_XMD:SHA-512_ELL2_RO_, RFC 9380) with DST AGENT_KEY_DST over
 *   group key (32 bytes) ‖ len ‖ kind ‖ len ‖ id (each length one byte), in the prime-order subgroup.
 * - seed = HKDF-SHA256(ikm = s·H, salt = group key, info = AGENT_SEED_DOMAIN ‖ 0x00 ‖ len ‖ kind ‖
 *   len ‖ id), 32 bytes; the agent's principal is the Ed25519 public key of that seed.
 *
 * A member computes H itself from the name; it never evaluates s_i on a point someone else chose.
 *
 * @example
 * const partials = keys.slice(0, t).map(k => derivationShare(k, 'worker', 'w-1'))
 * const seed = combineDerivation(pub, 'worker', 'w-1', partials)
 * await agentPrincipal(seed) // the same z6Mk… from any t members
 */
import { ed25519_hasher } from '@noble/curves/ed25519.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes } from '@noble/hashes/utils.js'
import { AGENT_NAME_PATTERN } from '../../protocols/frost/codec.ts'
import { ed25519 } from '../crypto/ed25519.ts'
import { principalId } from '../crypto/principal.ts'
import { combinePartials, proveDleq, verifyDleq } from './dleq.ts'
import { InvalidAgentNameError, InvalidPointError, InvalidShareError, NotEnoughSignersError } from './errors.ts'
import { parsePoint, parseScalar } from './group.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { GroupPoint, Identifier } from './group.ts'
import type { FrostPublic, Key } from '@noble/curves/abstract/frost.js'

/** Domain-separation tag of the hash to the curve. */
export const AGENT_KEY_DST = 'cyberspace/agent-key/v1'
/** HKDF info prefix of the seed. */
export const AGENT_SEED_DOMAIN = 'cyberspace/agent-seed/v1'
/** Domain of the members' proofs (decryption's proofs have their own). */
export const AGENT_KEY_DLEQ_DOMAIN = 'cyberspace/agent-key-dleq/v1'
export const AGENT_SEED_BYTES = 32

/** A member's partial evaluation for one agent name, with its proof. */
export interface DerivationShare {
  identifier: Identifier
  /** D_i = s_i·H, 32 bytes. */
  share: Uint8Array
  /** Chaum–Pedersen proof (c ‖ z), 64 bytes. */
  proof: Uint8Array
}

const utf8 = new TextEncoder()

/** Throws InvalidAgentNameError unless `kind` and `id` follow the agents' naming rule. */
export function checkAgentName(kind: string, id: string): void {
  if (typeof kind !== 'string' || !AGENT_NAME_PATTERN.test(kind))
    throw new InvalidAgentNameError(
      `agent kind ${JSON.stringify(String(kind).slice(0, 80))}: 1-64 characters of a-z 0-9 . _ - starting with a letter or digit`
    )
  if (typeof id !== 'string' || !AGENT_NAME_PATTERN.test(id))
    throw new InvalidAgentNameError(
      `agent id ${JSON.stringify(String(id).slice(0, 80))}: 1-64 characters of a-z 0-9 . _ - starting with a letter or digit`
    )
}

/** len ‖ kind ‖ len ‖ id: the names are ASCII of at most 64 bytes, so one byte holds each length. */
function encodeName(kind: string, id: string): Uint8Array {
  checkAgentName(kind, id)
  const k = utf8.encode(kind)
  const i = utf8.encode(id)
  return concatBytes(new Uint8Array([k.length]), k, new Uint8Array([i.length]), i)
}

/** H(group, kind, id): the point every member evaluates its share on for this agent. */
export function agentKeyPoint(groupKey: Uint8Array, kind: string, id: string): GroupPoint {
  const group = parsePoint(groupKey, 'group key')
  const H = ed25519_hasher.hashToCurve(concatBytes(group.toBytes(), encodeName(kind, id)), { DST: AGENT_KEY_DST })
  // hash_to_curve clears the cofactor; the identity would need a hash collision with a known log
  if (H.is0()) throw new InvalidPointError('the agent name hashes to the identity')
  return H
}

/** Member `key`'s partial for agent (kind, id), with its proof. The share scalar never leaves. */
export function derivationShare(key: Key, kind: string, id: string): DerivationShare {
  const H = agentKeyPoint(key.public.commitments[0], kind, id)
  const s = parseScalar(key.secret.signingShare, 'signing share')
  const { point, proof } = proveDleq(AGENT_KEY_DLEQ_DOMAIN, s, H)
  return { identifier: key.secret.identifier, share: point.toBytes(), proof }
}

/**
 * D_i if `share` is its member's correct partial for (kind, id) by its proof; otherwise throws
 * InvalidShareError naming the identifier (or InvalidPointError / InvalidScalarError for
 * malformed bytes). `H` may be passed when the caller has it already.
 */
export function verifyDerivationShare(
  pub: FrostPublic,
  kind: string,
  id: string,
  share: DerivationShare,
  H: GroupPoint = agentKeyPoint(pub.commitments[0], kind, id)
): GroupPoint {
  const yBytes = pub.verifyingShares[share.identifier]
  if (yBytes == null) throw new InvalidShareError(`no member has identifier ${String(share.identifier).slice(0, 16)}…`)
  const Yi = parsePoint(yBytes, 'verifying share')
  const D = parsePoint(share.share, 'partial evaluation')
  if (!verifyDleq(AGENT_KEY_DLEQ_DOMAIN, Yi, H, D, share.proof))
    throw new InvalidShareError(`the partial evaluation of ${share.identifier.slice(0, 16)}… does not match its proof`)
  return D
}

/**
 * The seed from S = s·H: HKDF-SHA256(S, salt = group key, info = AGENT_SEED_DOMAIN ‖ 0 ‖ name).
 * S's encoding is zeroed once used.
 */
export function seedFromEvaluation(S: GroupPoint, groupKey: Uint8Array, kind: string, id: string): Uint8Array {
  const info = concatBytes(utf8.encode(AGENT_SEED_DOMAIN), new Uint8Array([0]), encodeName(kind, id))
  const ikm = S.toBytes()
  try {
    return hkdf(sha256, ikm, groupKey, info, AGENT_SEED_BYTES)
  } finally {
    ikm.fill(0)
  }
}

/**
 * The seed from checked partials D_i of at least t distinct members, by identifier (as
 * verifyDerivationShare returns them). Fewer than t throw NotEnoughSignersError.
 */
export function seedFromPartials(
  pub: FrostPublic,
  kind: string,
  id: string,
  verified: ReadonlyMap<Identifier, GroupPoint>
): Uint8Array {
  const t = pub.signers.min
  if (verified.size < t) throw new NotEnoughSignersError(`${verified.size} partial evaluations; ${t} are needed`)
  return seedFromEvaluation(combinePartials(verified), pub.commitments[0], kind, id)
}

/**
 * The seed of agent (kind, id) from members' partials: each is checked against its proof (a bad
 * one throws InvalidShareError naming its identifier), then the first t distinct ones combine.
 */
export function combineDerivation(pub: FrostPublic, kind: string, id: string, shares: DerivationShare[]): Uint8Array {
  const t = pub.signers.min
  const H = agentKeyPoint(pub.commitments[0], kind, id)
  const verified = new Map<Identifier, GroupPoint>()
  for (const share of shares) {
    if (verified.has(share.identifier)) continue
    verified.set(share.identifier, verifyDerivationShare(pub, kind, id, share, H))
    if (verified.size === t) break
  }
  return seedFromPartials(pub, kind, id, verified)
}

/** The agent’s principal: the Ed25519 public key of its seed (through the platform’s back end). */
export async function agentPrincipal(seed: Uint8Array): Promise<PrincipalId> {
  return principalId(await (await ed25519()).publicKey(seed))
}
