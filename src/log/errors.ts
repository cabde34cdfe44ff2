export { InvalidEventError } from '../../protocols/log/codec.ts'

/**
 * The event's author holds no chain granting it the right to write this log. `permanent` when no
 * grant can ever change that (a session document written by anyone but its agent): such a block is
 * refused for good, like a forged one, instead of being checked again at the next offer.
 */
export class UnauthorizedEventError extends Error {
  static name = 'UnauthorizedEventError'
  name = 'UnauthorizedEventError'
  readonly permanent: boolean

  constructor(message?: string, options: { permanent?: boolean } = {}) {
    super(message)
    this.permanent = options.permanent ?? false
  }
}

/** The event's signature does not verify against its author. */
export class InvalidSignatureError extends Error {
  static name = 'InvalidSignatureError'
  name = 'InvalidSignatureError'
}

/** Some of the event's ancestors could not be fetched, so it cannot be applied yet. */
export class MissingParentsError extends Error {
  static name = 'MissingParentsError'
  name = 'MissingParentsError'
}

/** The event breaks the log's rules: another log, a timestamp not after its parents', undecodable ops. */
export class EventRejectedError extends Error {
  static name = 'EventRejectedError'
  name = 'EventRejectedError'
}

/** A block is not in the blockstore (and could not be fetched), or is larger than allowed. */
export class BlockNotFoundError extends Error {
  static name = 'BlockNotFoundError'
  name = 'BlockNotFoundError'
}

/** A join would fetch more history than the limit: the peer should be joined from a snapshot. */
export class HistoryTooLongError extends Error {
  static name = 'HistoryTooLongError'
  name = 'HistoryTooLongError'
}

export class EmptyLogError extends Error {
  static name = 'EmptyLogError'
  name = 'EmptyLogError'
}

export class LogClosedError extends Error {
  static name = 'LogClosedError'
  name = 'LogClosedError'
}

/** The log was created with another CRDT type than the one it is opened with. */
export class LogTypeMismatchError extends Error {
  static name = 'LogTypeMismatchError'
  name = 'LogTypeMismatchError'
}

/** The asking peer holds no chain granting it the right to read this log, and the log is not public. */
export class UnauthorizedReadError extends Error {
  static name = 'UnauthorizedReadError'
  name = 'UnauthorizedReadError'
}

/** A session document is read by members only: it is never public (see `sessionDocumentName`). */
export class SessionDocumentError extends Error {
  static name = 'SessionDocumentError'
  name = 'SessionDocumentError'
}

/** A document members read (the agent directory) is never public. */
export class MemberDocumentError extends Error {
  static name = 'MemberDocumentError'
  name = 'MemberDocumentError'
}

/**
 * Fewer peers were named than the replicas asked for: no wait could succeed, so none starts (and a
 * session records nothing).
 */
export class NotEnoughReplicasError extends Error {
  static name = 'NotEnoughReplicasError'
  name = 'NotEnoughReplicasError'
  readonly asked: number
  readonly peers: number

  constructor(asked: number, peers: number) {
    super(`${asked} replicas asked for, but only ${peers} peers named to hold them`)
    this.asked = asked
    this.peers = peers
  }
}

/**
 * Fewer than the replicas asked for confirmed they hold the document within the deadline. What was
 * written is on this node's disk; `errors` says, per peer that did not confirm, why (its last answer).
 */
export class ReplicationTimeoutError extends Error {
  static name = 'ReplicationTimeoutError'
  name = 'ReplicationTimeoutError'
  /** How many peers confirmed. */
  readonly confirmed: number
  /** How many were asked for. */
  readonly asked: number
  /** The deadline, in ms. */
  readonly timeout: number
  readonly errors: Record<string, string>

  constructor(confirmed: number, asked: number, timeout: number, errors: Record<string, string>) {
    const why = Object.entries(errors)
      .map(([peer, error]) => `${peer}: ${error}`)
      .join('; ')
    super(
      `held by ${confirmed} of the ${asked} replicas asked for within ${timeout} ms (written here only)${why === '' ? '' : `: ${why}`}`
    )
    this.confirmed = confirmed
    this.asked = asked
    this.timeout = timeout
    this.errors = errors
  }
}

/** A peer asked this node to hold more documents at once than its per-peer budget allows. */
export class TooManyHoldsError extends Error {
  static name = 'TooManyHoldsError'
  name = 'TooManyHoldsError'
}

/** A peer answered a request with a refusal (its error answer's name is `reason`). */
export class RequestRefusedError extends Error {
  static name = 'RequestRefusedError'
  name = 'RequestRefusedError'
  readonly reason: string

  constructor(reason: string, message: string) {
    super(message)
    this.reason = reason
  }
}

/**
 * A local document is never replicated: it cannot be public, be held or replicated by peers, and a
 * session document or the agent directory cannot be local.
 */
export class LocalDocumentError extends Error {
  static name = 'LocalDocumentError'
  name = 'LocalDocumentError'
}

/** A document rule's prefix is malformed, already has a rule, or would cover a session document or the agent directory. */
export class InvalidRuleError extends Error {
  static name = 'InvalidRuleError'
  name = 'InvalidRuleError'
}
