/**
 * Threshold decryption: anyone encrypts to the group key; opening needs t members' decryption
 * shares, each with a proof that it is correct, combined by Lagrange interpolation. No member,
 * and no fewer than t, learns anything about the plaintext.
 *
 * Encryption is ephemeral-key ECIES over the FROST group (edwards25519): a random r, R = rG,
 * S = rY for the group key Y; HKDF-SHA256(S, salt R‖Y) keys ChaCha20-Poly1305. Member i's
 * decryption share is D_i = s_i R with a Chaum–Pedersen proof that log_G Y_i = log_R D_i, where
 * Y_i is its public verifying share (dleq.ts); S = Σ λ_i D_i over any t valid shares.
 *
 * @example
 * const ct = encryptToGroup(groupKey, secret)
 * const shares = members.slice(0, t).map(m => decryptionShare(m.key, ct))
 * combineDecryption(pub, ct, shares) // the plaintext
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes } from '@noble/hashes/utils.js'
import { combinePartials, proveDleq, verifyDleq } from './dleq.ts'
import { DecryptionError, InvalidShareError, NotEnoughSignersError } from './errors.ts'
import { parsePoint, parseScalar, Point, randomScalar } from './group.ts'
import type { GroupPoint, Identifier } from './group.ts'
import type { FrostPublic, Key } from '@noble/curves/abstract/frost.js'

export const ECIES_DOMAIN = 'cyberspace/threshold-ecies/v1'
export const DLEQ_DOMAIN = 'cyberspace/threshold-dleq/v1'
/** Largest plaintext encrypted to a group. */
export const MAX_PLAINTEXT_BYTES = 1024 * 1024

export interface GroupCiphertext {
  /** R = rG, 32 bytes. */
  ephemeral: Uint8Array
  /** ChaCha20-Poly1305 ciphertext with its 16-byte tag. */
  ciphertext: Uint8Array
}

export interface DecryptionShare {
  identifier: Identifier
  /** D_i = s_i R, 32 bytes. */
  share: Uint8Array
  /** Chaum–Pedersen proof (c ‖ z), 64 bytes. */
  proof: Uint8Array
}

const utf8 = new TextEncoder()

function sealKey(S: GroupPoint, ephemeral: Uint8Array, groupKey: Uint8Array): { key: Uint8Array; nonce: Uint8Array } {
  const okm = hkdf(sha256, S.toBytes(), concatBytes(ephemeral, groupKey), utf8.encode(ECIES_DOMAIN), 44)
  return { key: okm.subarray(0, 32), nonce: okm.subarray(32) }
}

/** Encrypts to the group key (`pub.commitments[0]`); `aad` is bound but not encrypted. */
export function encryptToGroup(
  groupKey: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array = new Uint8Array()
): GroupCiphertext {
  if (plaintext.length > MAX_PLAINTEXT_BYTES)
    throw new RangeError(`at most ${MAX_PLAINTEXT_BYTES} bytes are encrypted to a group`)
  const Y = parsePoint(groupKey, 'group key')
  const r = randomScalar()
  const ephemeral = Point.BASE.multiply(r).toBytes()
  const { key, nonce } = sealKey(Y.multiply(r), ephemeral, groupKey)
  return { ephemeral, ciphertext: chacha20poly1305(key, nonce, aad).encrypt(plaintext) }
}

/** Member `key`'s share for opening `ct`, with its proof. The share scalar never leaves. */
export function decryptionShare(key: Key, ct: GroupCiphertext): DecryptionShare {
  const R = parsePoint(ct.ephemeral, 'ephemeral key')
  const s = parseScalar(key.secret.signingShare, 'signing share')
  const { point, proof } = proveDleq(DLEQ_DOMAIN, s, R)
  return { identifier: key.secret.identifier, share: point.toBytes(), proof }
}

/** Throws InvalidShareError unless `share` is the member's correct share for `ct`. */
export function verifyDecryptionShare(pub: FrostPublic, ct: GroupCiphertext, share: DecryptionShare): GroupPoint {
  const yBytes = pub.verifyingShares[share.identifier]
  if (yBytes == null) throw new InvalidShareError(`no member has identifier ${share.identifier.slice(0, 16)}…`)
  const Yi = parsePoint(yBytes, 'verifying share')
  const R = parsePoint(ct.ephemeral, 'ephemeral key')
  const D = parsePoint(share.share, 'decryption share')
  if (!verifyDleq(DLEQ_DOMAIN, Yi, R, D, share.proof))
    throw new InvalidShareError(`the decryption share of ${share.identifier.slice(0, 16)}… does not match its proof`)
  return D
}

/**
 * Opens `ct` from decryption shares: each is checked against its proof (a bad one throws
 * InvalidShareError naming its identifier), then the first t distinct valid ones are combined.
 */
export function combineDecryption(
  pub: FrostPublic,
  ct: GroupCiphertext,
  shares: DecryptionShare[],
  aad: Uint8Array = new Uint8Array()
): Uint8Array {
  const t = pub.signers.min
  const byId = new Map<Identifier, GroupPoint>()
  for (const share of shares) {
    if (byId.has(share.identifier)) continue
    byId.set(share.identifier, verifyDecryptionShare(pub, ct, share))
    if (byId.size === t) break
  }
  if (byId.size < t) throw new NotEnoughSignersError(`${byId.size} decryption shares; ${t} are needed`)
  return openWithShares(pub, ct, byId, aad)
}

/** Opens `ct` from t verified shares D_i (as verifyDecryptionShare returns them), by identifier. */
export function openWithShares(
  pub: FrostPublic,
  ct: GroupCiphertext,
  verified: Map<Identifier, GroupPoint>,
  aad: Uint8Array = new Uint8Array()
): Uint8Array {
  const S = combinePartials(verified)
  const groupKey = pub.commitments[0]
  const { key, nonce } = sealKey(S, ct.ephemeral, groupKey)
  try {
    return chacha20poly1305(key, nonce, aad).decrypt(ct.ciphertext)
  } catch {
    throw new DecryptionError('the ciphertext does not open: tampered, or encrypted to another group key')
  }
}
