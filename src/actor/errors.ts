/**
 * Named errors of actors, mailboxes, supervisors and worker behaviours. Tests and callers match on
 * `.name` (and the fields below), never on message text.
 *
 * @example
 * try { await ref.tell(msg) } catch (err) { if (err.name === 'MailboxFullError') backOff(err.capacity) }
 */

/** A mailbox holds `capacity` messages already: the message was refused, not queued (backpressure). */
export class MailboxFullError extends Error {
  static name = 'MailboxFullError'
  name = 'MailboxFullError'
  readonly capacity: number
  constructor(capacity: number, message = `mailbox full (capacity ${capacity})`) {
    super(message)
    this.capacity = capacity
  }
}

/**
 * The actor is stopped (or was stopped, or killed, before it handled the message): the message was
 * not handled. `reason` is 'normal', 'shutdown', 'killed' or the crash's error name.
 */
export class ActorStoppedError extends Error {
  static name = 'ActorStoppedError'
  name = 'ActorStoppedError'
  readonly reason: string
  constructor(actor: string, reason: string, message = `actor ${actor} stopped (${reason})`) {
    super(message)
    this.reason = reason
  }
}

/** A handler (or init) did not finish within the actor's deadline; the actor crashed. */
export class HandlerTimeoutError extends Error {
  static name = 'HandlerTimeoutError'
  name = 'HandlerTimeoutError'
  readonly timeout: number
  constructor(actor: string, timeout: number, what = 'handler') {
    super(`${what} of actor ${actor} missed its ${timeout} ms deadline`)
    this.timeout = timeout
  }
}

/** A caller's `ask` got no answer within its own timeout (the actor did not crash for it). */
export class AskTimeoutError extends Error {
  static name = 'AskTimeoutError'
  name = 'AskTimeoutError'
  readonly timeout: number
  constructor(actor: string, timeout: number) {
    super(`no answer from actor ${actor} within ${timeout} ms`)
    this.timeout = timeout
  }
}

/**
 * An actor crashed with a value that is not an Error (a behaviour threw a string, say), or its
 * init failed while its supervisor started it: `cause` holds what was thrown.
 */
export class ActorCrashedError extends Error {
  static name = 'ActorCrashedError'
  name = 'ActorCrashedError'
}

/** A child failed to start (its init threw, rejected or missed its deadline). */
export class ChildStartError extends Error {
  static name = 'ChildStartError'
  name = 'ChildStartError'
  readonly child: string
  constructor(child: string, cause: unknown) {
    super(
      `child ${child} failed to start: ${cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)}`,
      {
        cause
      }
    )
    this.child = child
  }
}

/**
 * A supervisor restarted its children more than `intensity` times within `period` ms: it shut
 * its children down and exited with this reason, which its parent supervisor sees as a crash.
 */
export class RestartIntensityError extends Error {
  static name = 'RestartIntensityError'
  name = 'RestartIntensityError'
  readonly supervisor: string
  readonly intensity: number
  readonly period: number
  constructor(supervisor: string, intensity: number, period: number, cause?: unknown) {
    super(`supervisor ${supervisor} exceeded ${intensity} restart(s) in ${period} ms`, { cause })
    this.supervisor = supervisor
    this.intensity = intensity
    this.period = period
  }
}

/** A child id is already in use in this supervisor, or names no child. */
export class ChildIdError extends Error {
  static name = 'ChildIdError'
  name = 'ChildIdError'
}

/** The supervisor is not running (stopped, or exited after escalating). */
export class SupervisorStoppedError extends Error {
  static name = 'SupervisorStoppedError'
  name = 'SupervisorStoppedError'
}

/** An option is out of its allowed range or of the wrong type; the message names the field. */
export class InvalidActorOptionError extends Error {
  static name = 'InvalidActorOptionError'
  name = 'InvalidActorOptionError'
}

/** A message (or an answer) to cross a worker boundary encodes to more than the allowed bytes. */
export class MessageTooLargeError extends Error {
  static name = 'MessageTooLargeError'
  name = 'MessageTooLargeError'
  readonly limit: number
  constructor(what: string, size: number, limit: number) {
    super(`${what} of ${size} bytes exceeds the ${limit}-byte limit`)
    this.limit = limit
  }
}

/** A worker exited or failed (not through a handler's own error), or sent something malformed. */
export class WorkerCrashedError extends Error {
  static name = 'WorkerCrashedError'
  name = 'WorkerCrashedError'
}
