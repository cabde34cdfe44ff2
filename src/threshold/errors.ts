/**
 * Named errors of the threshold layer. Errors caused by a member carry `culprit`, that member's
 * principal, so a session can abort naming it or a coordinator can exclude it and retry.
 */
import type { PrincipalId } from '../crypto/principal.ts'

export class ThresholdError extends Error {
  static name = 'ThresholdError'
  name = 'ThresholdError'
  /** The member whose message caused the error, when one did. */
  readonly culprit?: PrincipalId

  constructor(message: string, culprit?: PrincipalId) {
    super(message)
    if (culprit != null) this.culprit = culprit
  }
}

/** A point is malformed, non-canonical, the identity, of small order or outside the prime-order subgroup. */
export class InvalidPointError extends ThresholdError {
  static name = 'InvalidPointError'
  name = 'InvalidPointError'
}

/** A scalar is malformed, not reduced modulo the group order, or zero where zero is not allowed. */
export class InvalidScalarError extends ThresholdError {
  static name = 'InvalidScalarError'
  name = 'InvalidScalarError'
}

/** A message comes from a principal that is not a member of the session. */
export class NotAMemberError extends ThresholdError {
  static name = 'NotAMemberError'
  name = 'NotAMemberError'
}

/** A message belongs to another session (or none this node runs). */
export class WrongSessionError extends ThresholdError {
  static name = 'WrongSessionError'
  name = 'WrongSessionError'
}

/** A message arrives in a round the session is not in, or is addressed to someone else. */
export class WrongRoundError extends ThresholdError {
  static name = 'WrongRoundError'
  name = 'WrongRoundError'
}

/** A second message for a round from the same member: a replay, or equivocation if it differs. */
export class ReplayedMessageError extends ThresholdError {
  static name = 'ReplayedMessageError'
  name = 'ReplayedMessageError'
}

/** A message's signature does not verify with its sender's key. */
export class MessageSignatureError extends ThresholdError {
  static name = 'MessageSignatureError'
  name = 'MessageSignatureError'
}

/** A member's proof of knowledge, share or proof of correct decryption does not check. */
export class InvalidShareError extends ThresholdError {
  static name = 'InvalidShareError'
  name = 'InvalidShareError'
}

/** Members disagree about the outcome (different transcripts or group keys): someone equivocated. */
export class EquivocationError extends ThresholdError {
  static name = 'EquivocationError'
  name = 'EquivocationError'
}

/** Fewer than the threshold of members could take part. */
export class NotEnoughSignersError extends ThresholdError {
  static name = 'NotEnoughSignersError'
  name = 'NotEnoughSignersError'
}

/** A signer refuses by policy (unauthorized requester, payload of a kind it does not sign, a changed payload). */
export class SigningRefusedError extends ThresholdError {
  static name = 'SigningRefusedError'
  name = 'SigningRefusedError'
}

/** Ciphertext that does not open (tampered, or combined from wrong shares). */
export class DecryptionError extends ThresholdError {
  static name = 'DecryptionError'
  name = 'DecryptionError'
}

/** This node holds no cluster share (run `cluster init`), or the request names another cluster. */
export class NoClusterError extends ThresholdError {
  static name = 'NoClusterError'
  name = 'NoClusterError'
}

/** This node already holds a share of a cluster. */
export class ClusterExistsError extends ThresholdError {
  static name = 'ClusterExistsError'
  name = 'ClusterExistsError'
}

/** A request is for another share generation than this member holds (a refresh happened in between). */
export class WrongEpochError extends ThresholdError {
  static name = 'WrongEpochError'
  name = 'WrongEpochError'
}

/** A member answered a request with a named refusal; `remoteName` is the error it gave. */
export class MemberRefusedError extends ThresholdError {
  static name = 'MemberRefusedError'
  name = 'MemberRefusedError'
  readonly remoteName: string
  constructor(message: string, remoteName: string, culprit?: PrincipalId) {
    super(message, culprit)
    this.remoteName = remoteName
  }
}

/** "member: ErrorName: message" for each member left out, joined by "; ". */
export function describeExcluded(excluded: Iterable<readonly [string, Error]>): string {
  return [...excluded].map(([m, e]) => `${m}: ${e.name}: ${e.message}`).join('; ')
}
