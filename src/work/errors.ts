/**
 * Named errors of the work service and its fold. A refusal of the fold (RefusalReason) maps 1:1 to
 * an error class (`refusalError`), so what an API caller is told before writing (BoardState.check)
 * and what the fold records after are the same thing; each carries its `reason`.
 *
 * @example
 * try { state.check(op, actor) } catch (err) { if (err.name === 'ItemAlreadyClaimedError') … err.holder }
 */
import type { PrincipalId } from '../crypto/principal.ts'
import type { ItemStatus, RefusalReason, WorkAction } from './types.ts'

export { InvalidBoardNameError, InvalidWorkOpError } from '../../protocols/work/codec.ts'

/** 'unknown-item': no item of that id exists (at the operation's position). */
export class ItemNotFoundError extends Error {
  static name = 'ItemNotFoundError'
  name = 'ItemNotFoundError'
  readonly reason = 'unknown-item'
}

/** 'exists': a create of an id that is taken, by a live or a deleted item. */
export class ItemExistsError extends Error {
  static name = 'ItemExistsError'
  name = 'ItemExistsError'
  readonly reason = 'exists'
}

/** 'unknown-parent': the parent does not exist or is deleted. */
export class UnknownParentError extends Error {
  static name = 'UnknownParentError'
  name = 'UnknownParentError'
  readonly reason = 'unknown-parent'
}

/** 'unknown-dependency': a dependency does not exist or is deleted. */
export class UnknownDependencyError extends Error {
  static name = 'UnknownDependencyError'
  name = 'UnknownDependencyError'
  readonly reason = 'unknown-dependency'
}

/** 'too-deep': the new item would sit below the deepest level a path may have. */
export class TooDeepError extends Error {
  static name = 'TooDeepError'
  name = 'TooDeepError'
  readonly reason = 'too-deep'
}

/** 'not-ready': a claim of an item whose dependencies are not all completed. */
export class ItemNotReadyError extends Error {
  static name = 'ItemNotReadyError'
  name = 'ItemNotReadyError'
  readonly reason = 'not-ready'
}

/** 'already-claimed': a claim of an item another principal holds (`holder`). */
export class ItemAlreadyClaimedError extends Error {
  static name = 'ItemAlreadyClaimedError'
  name = 'ItemAlreadyClaimedError'
  readonly reason = 'already-claimed'
  readonly holder: PrincipalId

  constructor(holder: PrincipalId, message: string) {
    super(message)
    this.holder = holder
  }
}

/** 'not-assignee': only the assignee may release, progress, complete, fail or hand off. */
export class NotAssigneeError extends Error {
  static name = 'NotAssigneeError'
  name = 'NotAssigneeError'
  readonly reason = 'not-assignee'
}

/** 'bad-transition': the state machine has no such step from the item's status (`from`). */
export class InvalidTransitionError extends Error {
  static name = 'InvalidTransitionError'
  name = 'InvalidTransitionError'
  readonly reason = 'bad-transition'
  readonly from: ItemStatus
  readonly op: WorkAction

  constructor(from: ItemStatus, op: WorkAction, message: string) {
    super(message)
    this.from = from
    this.op = op
  }
}

/** 'terminal': the item is completed, failed, canceled or rejected; only `delete` applies. */
export class ItemTerminalError extends Error {
  static name = 'ItemTerminalError'
  name = 'ItemTerminalError'
  readonly reason = 'terminal'
}

/** 'deleted': the item is deleted (a tombstone). */
export class ItemDeletedError extends Error {
  static name = 'ItemDeletedError'
  name = 'ItemDeletedError'
  readonly reason = 'deleted'
}

/** 'bad-scope': the kind or path an operation names is not its item's (for create: not the parent's path and the id). */
export class ScopeMismatchError extends Error {
  static name = 'ScopeMismatchError'
  name = 'ScopeMismatchError'
  readonly reason = 'bad-scope'
}

/** What a refusal error needs besides its reason. */
export interface RefusalDetails {
  item: string
  op: WorkAction
  /** The item's status, for 'bad-transition'. */
  status?: ItemStatus
  /** Who holds the item, for 'already-claimed'. */
  winner?: PrincipalId
}

/** The named error for a refusal of the fold. */
export function refusalError(reason: RefusalReason, details: RefusalDetails): Error {
  const { item, op } = details
  const what = `${op} of ${item}`
  switch (reason) {
    case 'unknown-item':
      return new ItemNotFoundError(`${what}: no item ${item}`)
    case 'exists':
      return new ItemExistsError(`${what}: ${item} exists (or existed: ids of deleted items stay taken)`)
    case 'unknown-parent':
      return new UnknownParentError(`${what}: the parent does not exist or is deleted`)
    case 'unknown-dependency':
      return new UnknownDependencyError(`${what}: a dependency does not exist or is deleted`)
    case 'too-deep':
      return new TooDeepError(`${what}: items nest at most 8 levels`)
    case 'not-ready':
      return new ItemNotReadyError(`${what}: not every dependency is completed`)
    case 'already-claimed':
      return new ItemAlreadyClaimedError(
        details.winner ?? ('' as PrincipalId),
        `${what}: held by ${details.winner ?? 'another principal'}`
      )
    case 'not-assignee':
      return new NotAssigneeError(`${what}: only the assignee may ${op}`)
    case 'terminal':
      return new ItemTerminalError(`${what}: the item is final`)
    case 'bad-transition':
      return new InvalidTransitionError(
        details.status ?? 'submitted',
        op,
        `${what}: no ${op} from ${details.status ?? 'this status'}`
      )
    case 'deleted':
      return new ItemDeletedError(`${what}: the item is deleted`)
    case 'bad-scope':
      return new ScopeMismatchError(`${what}: the kind or path named is not the item's`)
  }
}

// ---------------------------------------------------------------- the service's errors

/** A board opened in another mode than the one it has. */
export class BoardModeMismatchError extends Error {
  static name = 'BoardModeMismatchError'
  name = 'BoardModeMismatchError'
}

/** STRONG boards need the ordered log, which a later issue builds. */
export class StrongModeUnavailableError extends Error {
  static name = 'StrongModeUnavailableError'
  name = 'StrongModeUnavailableError'
}

/** The actor's chain does not grant the operation's tag. */
export class WorkUnauthorizedError extends Error {
  static name = 'WorkUnauthorizedError'
  name = 'WorkUnauthorizedError'
}

/** The work service was used before `start` or after `stop`. */
export class WorkNotStartedError extends Error {
  static name = 'WorkNotStartedError'
  name = 'WorkNotStartedError'
}

/** An agent named as the actor or the subject is not hosted on this node. */
export class AgentNotHostedError extends Error {
  static name = 'AgentNotHostedError'
  name = 'AgentNotHostedError'
}

/** An option or report the work service cannot take, naming the field. */
export class InvalidWorkOptionError extends Error {
  static name = 'InvalidWorkOptionError'
  name = 'InvalidWorkOptionError'
}
