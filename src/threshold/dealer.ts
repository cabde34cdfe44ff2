/**
 * Dealer mode: Shamir-split an existing secret t-of-n among members, and put it back together
 * (for recovery). The shares are FROST shares: the members can sign for the secret's public key
 * without ever reconstructing it. A dealt secret was once whole, so a DKG key is the better
 * cluster key; dealing is for bringing an existing key under threshold control.
 *
 * @example
 * const dealt = dealShares(scalarFromSeed(seed), members, 3)
 * reconstructSecret(dealt.public, [s1, s2, s3]) // the scalar again
 */
import { sha512 } from '@noble/hashes/sha2.js'
import { bytesToNumberLE } from '@noble/curves/utils.js'
import { MAX_GROUP_MEMBERS } from '../../protocols/dkg/codec.ts'
import { InvalidShareError, NotEnoughSignersError } from './errors.ts'
import { frost, Fn, memberIdentifier, scalarBytes } from './group.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { FrostPublic, FrostSecret } from '@noble/curves/abstract/frost.js'

export interface DealtShares {
  public: FrostPublic
  /** Each member's share, by principal: send each only to its member, encrypted. */
  shares: Map<PrincipalId, FrostSecret>
}

/** The Ed25519 signing scalar of a 32-byte seed (RFC 8032: clamped first half of SHA-512). */
export function scalarFromSeed(seed: Uint8Array): Uint8Array {
  if (seed.length !== 32) throw new RangeError('an Ed25519 seed is 32 bytes')
  const h = sha512(seed).slice(0, 32)
  h[0] &= 248
  h[31] &= 127
  h[31] |= 64
  return scalarBytes(Fn.create(bytesToNumberLE(h)))
}

export function checkGroupParams(members: PrincipalId[], threshold: number): void {
  if (new Set(members).size !== members.length) throw new RangeError('members repeat')
  if (members.length < 2 || members.length > MAX_GROUP_MEMBERS)
    throw new RangeError(`a group has 2-${MAX_GROUP_MEMBERS} members`)
  if (!Number.isSafeInteger(threshold) || threshold < 2 || threshold > members.length) {
    throw new RangeError(`the threshold is 2-${members.length} for ${members.length} members`)
  }
}

/** Splits the scalar `secret` (32 bytes, little-endian, below ℓ) into `threshold`-of-n shares. */
export function dealShares(secret: Uint8Array, members: PrincipalId[], threshold: number): DealtShares {
  checkGroupParams(members, threshold)
  const ids = members.map(memberIdentifier)
  const dealt = frost.trustedDealer({ min: threshold, max: members.length }, ids, secret)
  return {
    public: dealt.public,
    shares: new Map(members.map((m, i) => [m, dealt.secretShares[ids[i]]]))
  }
}

/** Rebuilds the secret scalar from at least t shares; each share is checked against the group's commitments first. */
export function reconstructSecret(pub: FrostPublic, shares: FrostSecret[]): Uint8Array {
  const distinct = new Map<string, FrostSecret>()
  for (const share of shares) {
    try {
      frost.validateSecret(share, pub)
    } catch (err) {
      throw new InvalidShareError(
        `the share of ${share.identifier.slice(0, 16)}… does not match the group: ${(err as Error).message}`
      )
    }
    distinct.set(share.identifier, share)
  }
  if (distinct.size < pub.signers.min) {
    throw new NotEnoughSignersError(`${distinct.size} shares; ${pub.signers.min} are needed to reconstruct`)
  }
  return frost.combineSecret([...distinct.values()].slice(0, pub.signers.min), pub.signers)
}
