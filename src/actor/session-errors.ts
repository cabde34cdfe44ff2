/**
 * Named errors of agent sessions (src/actor/session.ts). Callers and tests match on `.name` and the
 * fields below, never on message text.
 *
 * @example
 * try { await sessions.resume(agent, signer) } catch (err) { if (err.name === 'SessionNotFoundError') await sessions.follow(agent) }
 */

/** This node holds no copy of the agent's session (it never followed it, or deleted it). */
export class SessionNotFoundError extends Error {
  static name = 'SessionNotFoundError'
  name = 'SessionNotFoundError'
}

/** The signer given is not the agent's key: only the agent signs its session. */
export class SessionSignerError extends Error {
  static name = 'SessionSignerError'
  name = 'SessionSignerError'
}

/** A change was refused because it would pass one of the session's bounds; `limit` names it. */
export class SessionLimitError extends Error {
  static name = 'SessionLimitError'
  name = 'SessionLimitError'
  readonly limit: 'maxFields' | 'maxValueBytes' | 'maxStateBytes'
  constructor(limit: SessionLimitError['limit'], message: string) {
    super(message)
    this.limit = limit
  }
}

/** A change that is no state: a field name that is not 1-128 characters, a value dag-cbor cannot hold, a bad message id. */
export class InvalidSessionChangeError extends Error {
  static name = 'InvalidSessionChangeError'
  name = 'InvalidSessionChangeError'
}

export { NotEnoughReplicasError, ReplicationTimeoutError } from '../log/errors.ts'
