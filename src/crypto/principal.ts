/**
 * Principals: in Cyberspace a principal is an Ed25519 public key. Its readable id is the key as a
 * multibase (base58btc) multikey — `z6Mk…`, the form did:key uses — so ids are self-certifying:
 * the id is the key. A node's principal is its libp2p key, so a PeerId and a principal convert
 * into each other.
 *
 * @example
 * const id = principalId(publicKey)          // 'z6Mk…'
 * principalPublicKey(id)                     // the 32 bytes again
 * principalFromPeerId(node.peerId) === id    // for the node's own key
 */
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import { base58btc } from 'multiformats/bases/base58'
import { PUBLIC_KEY_LENGTH } from './ed25519.ts'
import { InvalidKeyError } from './errors.ts'
import type { PeerId } from '@libp2p/interface'

/** A principal id; branded so a peer id string or any other string cannot stand in for one. */
export type PrincipalId = string & { readonly __principal: true }

/** The multicodec varint of an Ed25519 public key (0xed). */
const ED25519_PUB = Uint8Array.from([0xed, 0x01])
/** Length of an id: 'z' and base58 of 34 bytes. */
const MAX_ID_LENGTH = 64

export function principalId(publicKey: Uint8Array): PrincipalId {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_LENGTH) {
    throw new InvalidKeyError(`an Ed25519 public key is ${PUBLIC_KEY_LENGTH} bytes`)
  }
  const bytes = new Uint8Array(ED25519_PUB.length + PUBLIC_KEY_LENGTH)
  bytes.set(ED25519_PUB)
  bytes.set(publicKey, ED25519_PUB.length)
  return base58btc.encode(bytes) as PrincipalId
}

/** The public key a principal id names; throws InvalidKeyError for anything else. */
export function principalPublicKey(id: string): Uint8Array {
  if (typeof id !== 'string' || id.length > MAX_ID_LENGTH || !id.startsWith('z')) {
    throw new InvalidKeyError('a principal id is a base58btc multibase string starting with z')
  }
  let bytes: Uint8Array
  try {
    bytes = base58btc.decode(id)
  } catch (err) {
    throw new InvalidKeyError(`principal id is not base58btc: ${(err as Error).message}`)
  }
  if (
    bytes.length !== ED25519_PUB.length + PUBLIC_KEY_LENGTH ||
    bytes[0] !== ED25519_PUB[0] ||
    bytes[1] !== ED25519_PUB[1]
  ) {
    throw new InvalidKeyError('principal id is not an Ed25519 public key multikey')
  }
  return bytes.slice(ED25519_PUB.length)
}

export function isPrincipalId(value: unknown): value is PrincipalId {
  try {
    principalPublicKey(value as string)
    return true
  } catch {
    return false
  }
}

export function principalFromPeerId(peerId: PeerId): PrincipalId {
  if (peerId.type !== 'Ed25519' || peerId.publicKey == null) {
    throw new InvalidKeyError(`only Ed25519 peers are principals, not ${peerId.type}`)
  }
  return principalId(peerId.publicKey.raw)
}

export function peerIdFromPrincipal(id: PrincipalId): PeerId {
  return peerIdFromPublicKey(publicKeyFromRaw(principalPublicKey(id)))
}

/** A principal from what people paste: a principal id (`z6Mk…`) or an Ed25519 peer id (`12D3Koo…`). */
export function parsePrincipal(text: string): PrincipalId {
  if (isPrincipalId(text)) return text
  let peerId: PeerId
  try {
    peerId = peerIdFromString(text)
  } catch {
    throw new InvalidKeyError(`"${text.slice(0, 80)}" is neither a principal id (z6Mk…) nor a peer id (12D3Koo…)`)
  }
  return principalFromPeerId(peerId)
}
