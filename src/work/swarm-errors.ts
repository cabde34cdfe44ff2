/**
 * Named errors of the swarm (src/work/swarm.ts, protocols/swarm/): why a message was refused on
 * receipt (recorded, and gossipsub told to reject or ignore it) or why a publish failed. Tests and
 * callers match on `.name`, never on message text.
 *
 * @example
 * try { await swarm.acceptDirect(bytes) }
 * catch (err) { if (err.name === 'UnauthorizedSwarmSenderError') … }
 */
export { InvalidSwarmMessageError } from '../../protocols/swarm/codec.ts'
export { ClockDriftError } from '../clock/errors.ts'

/** The signature does not verify with the key of the message's `from`: forged or altered. */
export class SwarmSignatureError extends Error {
  static name = 'SwarmSignatureError'
  name = 'SwarmSignatureError'
}

/** The message's `expires` has passed. */
export class SwarmMessageExpiredError extends Error {
  static name = 'SwarmMessageExpiredError'
  name = 'SwarmMessageExpiredError'
}

/** A message with the same (from, id) was delivered here before: a replay. */
export class DuplicateSwarmMessageError extends Error {
  static name = 'DuplicateSwarmMessageError'
  name = 'DuplicateSwarmMessageError'
}

/** The sender holds no chain to `(cyberspace (swarm <type> <subject>))` for a subject of the message, by this node's ACL. */
export class UnauthorizedSwarmSenderError extends Error {
  static name = 'UnauthorizedSwarmSenderError'
  name = 'UnauthorizedSwarmSenderError'
}

/** A peer or an agent sent more than its budget allows just now (or too many refused messages): dropped unchecked. */
export class SwarmRateLimitedError extends Error {
  static name = 'SwarmRateLimitedError'
  name = 'SwarmRateLimitedError'
}

/** This node remembers as many unexpired messages as it allows (its replay window is full): try again later. */
export class SwarmBusyError extends Error {
  static name = 'SwarmBusyError'
  name = 'SwarmBusyError'
}

/** A directed message (with `to`) needs a mailbox, and none was given or set. */
export class SwarmMailboxMissingError extends Error {
  static name = 'SwarmMailboxMissingError'
  name = 'SwarmMailboxMissingError'
}

/** The swarm service is not running (not started, or stopped). */
export class SwarmNotRunningError extends Error {
  static name = 'SwarmNotRunningError'
  name = 'SwarmNotRunningError'
}

/** Another swarm (or anything else) already validates this topic on this node: give this one another namespace. */
export class SwarmTopicInUseError extends Error {
  static name = 'SwarmTopicInUseError'
  name = 'SwarmTopicInUseError'
}
