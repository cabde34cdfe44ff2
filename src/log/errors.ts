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
