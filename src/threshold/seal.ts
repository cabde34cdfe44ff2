/**
 * Scalars sealed to a member's identity key, for pieces a coordinator relays but must not read
 * (reshare shares, repair pieces and sums): ChaCha20-Poly1305 under HKDF-SHA256(X25519(e, M),
 * salt = session, info = "<info> <from> <to>"), e a one-time X25519 key of the sender, M the
 * Montgomery form of the recipient's Ed25519 principal key (RFC 7748 birational map). Only the
 * recipient's identity secret opens a box; a box is 48 bytes (a 32-byte scalar and its tag).
 *
 * @example
 * const { ephemeral, boxes } = sealScalars('cyberspace/reshare-share/v1', session, self, [{ to, secret }])
 * const s = openScalar('cyberspace/reshare-share/v1', session, from, self, seed, ephemeral, box)
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js'
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { principalPublicKey } from '../crypto/principal.ts'
import { InvalidShareError } from './errors.ts'
import type { PrincipalId } from '../crypto/principal.ts'

function cipher(
  shared: Uint8Array,
  info: string,
  session: Uint8Array,
  from: string,
  to: string
): ReturnType<typeof chacha20poly1305> {
  const okm = hkdf(sha256, shared, session, new TextEncoder().encode(`${info} ${from} ${to}`), 44)
  return chacha20poly1305(okm.subarray(0, 32), okm.subarray(32))
}

/** Seals each secret to its recipient under one fresh X25519 key; the secrets are zeroed after. */
export function sealScalars(
  info: string,
  session: Uint8Array,
  from: PrincipalId,
  secrets: Array<{ to: PrincipalId; secret: Uint8Array }>
): { ephemeral: Uint8Array; boxes: Array<{ to: PrincipalId; box: Uint8Array }> } {
  const e = x25519.utils.randomSecretKey()
  try {
    const boxes = secrets.map(({ to, secret }) => {
      const shared = x25519.getSharedSecret(e, ed25519.utils.toMontgomery(principalPublicKey(to)))
      const box = cipher(shared, info, session, from, to).encrypt(secret)
      secret.fill(0)
      return { to, box }
    })
    return { ephemeral: x25519.getPublicKey(e), boxes }
  } finally {
    e.fill(0)
  }
}

/** Opens a box sealed to `self` (whose Ed25519 seed is `seed`) by `from`; throws if it does not open. */
export function openScalar(
  info: string,
  session: Uint8Array,
  from: string,
  self: PrincipalId,
  seed: Uint8Array,
  ephemeral: Uint8Array,
  box: Uint8Array
): Uint8Array {
  const secret = ed25519.utils.toMontgomerySecret(seed)
  try {
    return cipher(x25519.getSharedSecret(secret, ephemeral), info, session, from, self).decrypt(box)
  } finally {
    secret.fill(0)
  }
}

/**
 * `self`'s box among those `from` sealed under one ephemeral key, opened. `what` names the piece
 * (`'reshare share'`); InvalidShareError naming `from` when there is no box for `self` or it does
 * not open.
 */
export function openBoxFor(
  info: string,
  session: Uint8Array,
  from: PrincipalId,
  self: PrincipalId,
  seed: Uint8Array,
  sealed: { ephemeral: Uint8Array; boxes: ReadonlyArray<{ to: string; box: Uint8Array }> },
  what: string
): Uint8Array {
  const box = sealed.boxes.find(b => b.to === self)
  if (box == null) throw new InvalidShareError(`${from} sealed no ${what} for this member`, from)
  try {
    return openScalar(info, session, from, self, seed, sealed.ephemeral, box.box)
  } catch {
    throw new InvalidShareError(`the ${what} sealed by ${from} does not open`, from)
  }
}
