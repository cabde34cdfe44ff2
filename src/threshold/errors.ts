/**
 * Named errors of the threshold layer. Errors caused by a member carry `culprit`, that member's
 * principal, so a session can abort naming it or a coordinator can exclude it and retry.
 * `memberFailure` and `describeFailures` are how every request that leaves members out says so.
 */
import { peerIdFromPrincipal } from '../crypto/principal.ts'
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

/**
 * Fewer than the threshold of members could take part. Where a request asked every member,
 * `failures` holds the error each member that failed it ended with (refused, silent, bad proof).
 */
export class NotEnoughSignersError extends ThresholdError {
  static name = 'NotEnoughSignersError'
  name = 'NotEnoughSignersError'
  readonly failures: ReadonlyMap<PrincipalId, Error>

  constructor(message: string, failures: ReadonlyMap<PrincipalId, Error> = new Map()) {
    super(message)
    this.failures = failures
  }
}

/** A signer refuses by policy (unauthorized requester, payload of a kind it does not sign, a changed payload). */
export class SigningRefusedError extends ThresholdError {
  static name = 'SigningRefusedError'
  name = 'SigningRefusedError'
}

/**
 * A requester is not authorized for what it asks by this member's ACL. On the wire this is the
 * error name a member answers, so the requester can tell a missing grant from other refusals.
 */
export class NotAuthorizedError extends SigningRefusedError {
  static name = 'NotAuthorizedError'
  name = 'NotAuthorizedError'
}

/** Ciphertext that does not open (tampered, or combined from wrong shares). */
export class DecryptionError extends ThresholdError {
  static name = 'DecryptionError'
  name = 'DecryptionError'
}

/** An agent's kind or id is not 1-64 characters of a-z 0-9 . _ - starting with a letter or digit. */
export class InvalidAgentNameError extends ThresholdError {
  static name = 'InvalidAgentNameError'
  name = 'InvalidAgentNameError'
}

/** A peer asked this member more often than its per-peer budget allows; it may ask again later. */
export class RateLimitedError extends ThresholdError {
  static name = 'RateLimitedError'
  name = 'RateLimitedError'
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

/** A member answered a request with a named refusal; `remoteName` and `remoteMessage` are the error it gave. */
export class MemberRefusedError extends ThresholdError {
  static name = 'MemberRefusedError'
  name = 'MemberRefusedError'
  readonly remoteName: string
  readonly remoteMessage: string
  constructor(member: PrincipalId, remoteName: string, remoteMessage: string) {
    super(`${member} refused: ${remoteName}: ${remoteMessage}`, member)
    this.remoteName = remoteName
    this.remoteMessage = remoteMessage
  }
}

/**
 * A request that needs every member it names failed at some of them: refused, unreachable, too
 * slow, or answered wrongly. `members` lists them in member order; `reasons` holds one line per
 * member saying what happened and, for a missing grant, the command that fixes it; `errors` the
 * error each request ended with. The message is those lines, one per member.
 */
export class MembersFailedError extends ThresholdError {
  static name = 'MembersFailedError'
  name = 'MembersFailedError'
  readonly members: PrincipalId[]
  readonly reasons: Map<PrincipalId, string>
  readonly errors: Map<PrincipalId, Error>

  constructor(failures: ReadonlyArray<{ member: PrincipalId; reason: string; error: Error }>, culprit?: PrincipalId) {
    super(failures.map(f => f.reason).join('\n'), culprit ?? failures[0]?.member)
    this.members = failures.map(f => f.member)
    this.reasons = new Map(failures.map(f => [f.member, f.reason]))
    this.errors = new Map(failures.map(f => [f.member, f.error]))
  }
}

/** How a member is shown to a person: its peer id, as `cyberspace peers` and `cluster init --members` show it. */
const shown = (member: PrincipalId): string => peerIdFromPrincipal(member).toString()

/** A member that did not answer at all: unreachable, too slow, the stream failed. */
const silent = (member: PrincipalId, err: Error): boolean =>
  !(err instanceof MemberRefusedError) && !(err instanceof ThresholdError && err.culprit === member)

/** What a grant hint gives when the caller names nothing narrower: every cluster ceremony. */
const CLUSTER_GRANT = '(cyberspace (cluster))'

/**
 * One line on why `member` failed a request of `requester`'s: a refusal for want of `authority`
 * (a tag, as text) says the command that grants it on that member — `grant` (a tag, as text),
 * by default `(cyberspace (cluster))`.
 */
export function memberFailure(
  member: PrincipalId,
  err: Error,
  requester: PrincipalId,
  authority?: string,
  grant = CLUSTER_GRANT
): string {
  const who = `member ${shown(member)}`
  if (err instanceof MemberRefusedError) {
    if (err.remoteName === NotAuthorizedError.name && authority != null)
      return (
        `${who} refused: it does not trust this node for ${authority}; ` +
        `on that member run: cyberspace acl add ${requester} '${grant}'`
      )
    return `${who} refused: ${err.remoteMessage} (${err.remoteName})`
  }
  if (!silent(member, err)) return `${who} failed: ${err.name}: ${err.message}`
  return `${who} did not answer: ${err.message}`
}

/** "members A, B did not answer; member C refused: …" for the members left out of a request. */
export function describeFailures(
  failures: ReadonlyMap<PrincipalId, Error>,
  requester: PrincipalId,
  authority?: string,
  grant?: string
): string {
  const quiet = [...failures].filter(([m, e]) => silent(m, e)).map(([m]) => shown(m))
  const parts = [...failures]
    .filter(([m, e]) => !silent(m, e))
    .map(([m, e]) => memberFailure(m, e, requester, authority, grant))
  if (quiet.length > 0) parts.unshift(`member${quiet.length === 1 ? '' : 's'} ${quiet.join(', ')} did not answer`)
  return parts.join('; ')
}

/**
 * A member of a resharing's new set holds no `(cyberspace member)` chain that this node's ACL
 * accepts (from its store, or proven by the member or the coordinator on demand).
 */
export class NoMemberChainError extends ThresholdError {
  static name = 'NoMemberChainError'
  name = 'NoMemberChainError'
}
