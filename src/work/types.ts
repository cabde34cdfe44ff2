/**
 * The shapes of coordination: work items on boards, the operations that change them, how a board's
 * operations are settled, and what the work service offers (`node.work`). The wire form of an
 * operation is in protocols/work/ (codec and limits); the deterministic fold that turns a board's
 * operations into items is src/work/board.ts; the service that binds boards to the replicated log,
 * authority and agents is src/work/service.ts.
 *
 * @example
 * const board = await node.work.board('release', { mode: 'eventual' })
 * await board.create({ item: 'goal', title: 'ship 1.0', kind: 'goal' }, { as: coordinator })
 * await board.create({ item: 't1', parent: 'goal', title: 'tests', kind: 'task', deps: [] }, { as: coordinator })
 * const outcome = await board.claim('t1', { as: implementer }) // { accepted: true } or a named error
 */
import type { HlcTimestamp } from '../clock/hlc.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Artifact, ItemStatus, WorkAction, WorkOp } from '../../protocols/work/types.ts'
import type { Signer } from '../crypto/sign.ts'
import type { AbortOptions } from '@libp2p/interface'

export { ITEM_STATUSES, TERMINAL_STATUSES, WORK_ACTIONS } from '../../protocols/work/types.ts'
export type { Artifact, ItemStatus, OpScope, WorkAction, WorkOp, WorkRight } from '../../protocols/work/types.ts'

/** LOCAL: this node only. EVENTUAL: replicated, conflicts settled by the fold. STRONG: through an ordered log (a later issue). */
export type ConsistencyMode = 'local' | 'eventual' | 'strong'

export interface Progress {
  /** 0..100. */
  percent: number
  message?: string
}

/** An operation without the scope this node fills in: a create names its kind (its path comes from its parent), others neither. */
export type UnscopedWorkOp = WorkOp extends infer O
  ? O extends { op: 'create' }
    ? Omit<O, 'path'>
    : O extends WorkOp
      ? Omit<O, 'kind' | 'path'>
      : never
  : never

/** Where an operation sits in the one order every replica folds in: HLC, then actor, then index in its event. */
export interface OpStamp {
  hlc: HlcTimestamp
  actor: PrincipalId
  /** Index of the operation in its event (several operations can share one event). */
  index: number
}

export interface StampedOp extends OpStamp {
  body: WorkOp
}

/** Why the fold did not apply an operation (the same on every replica). */
export type RefusalReason =
  | 'unknown-item'
  | 'exists'
  | 'unknown-parent'
  | 'unknown-dependency'
  | 'too-deep'
  | 'not-ready'
  | 'already-claimed'
  | 'not-assignee'
  | 'terminal'
  | 'bad-transition'
  | 'deleted'
  | 'bad-scope'

export interface HistoryEntry {
  hlc: HlcTimestamp
  actor: PrincipalId
  op: WorkAction
  /** Status after the operation. */
  status: ItemStatus
  assignee?: PrincipalId
  message?: string
}

export interface WorkItem {
  id: string
  parent?: string
  /** Ancestor ids and this id joined by '/', e.g. `goal/t1`: what path-scoped rights match. */
  path: string
  title: string
  description?: string
  kind: string
  status: ItemStatus
  assignee?: PrincipalId
  skills: string[]
  deps: string[]
  /** Whether every dependency is completed. */
  ready: boolean
  priority: number
  progress?: Progress
  result?: unknown
  error?: string
  artifacts: Artifact[]
  /** State a handoff carried to the current assignee. */
  handoff?: { from: PrincipalId; state?: unknown }
  created: HlcTimestamp
  updated: HlcTimestamp
  createdBy: PrincipalId
  deleted: boolean
  history: HistoryEntry[]
}

/** What became of one submitted operation once folded where it was submitted. */
export interface OpOutcome {
  accepted: boolean
  reason?: RefusalReason
  /** For a lost claim: who holds the item. */
  winner?: PrincipalId
}

/** Something that changed on a board, in fold order. */
export type BoardChange =
  | { type: 'applied'; board: string; item: string; stamp: OpStamp; op: WorkAction; status: ItemStatus }
  /**
   * An operation that was applied until an earlier one (by HLC) arrived and took its place — the
   * loser of a concurrent claim is told this way — or that was refused when it arrived.
   */
  | {
      type: 'refused'
      board: string
      item: string
      stamp: OpStamp
      op: WorkAction
      reason: RefusalReason
      winner?: PrincipalId
    }

/** Who acts, and how long to wait for the outcome. */
export interface ActOptions extends AbortOptions {
  /** The acting principal's key: an agent's signer (`node.agents` hands them to hosted agents). */
  as: Signer
}

export interface ListOptions extends AbortOptions {
  /** The reader, for `read`: each item is checked for `(work <board> read <kind> <path>)`. */
  as?: PrincipalId
  status?: ItemStatus | ItemStatus[]
  assignee?: PrincipalId
  parent?: string
  kind?: string
  /** Only items whose dependencies are all completed and that nobody holds. */
  ready?: boolean
  /** Page: items after this id (ids sort as strings), at most `limit` (default 100, at most 1000). */
  after?: string
  limit?: number
}

/**
 * One board, whatever its mode. Each operation checks the actor's authority and the transition
 * here first (a named error, nothing written), then writes it; the fold on every replica checks
 * it again. For EVENTUAL, a concurrent operation can still lose after it was written: the returned
 * outcome is as folded here, and a later loss is a `refused` change naming the actor.
 */
export interface Board {
  readonly name: string
  readonly mode: ConsistencyMode
  /** This node's view of an item (no reader check: for code running in this node). */
  item(id: string): WorkItem | undefined
  /** This node's view, filtered and paged (no reader check; `as` is ignored: use `read`). */
  items(options?: ListOptions): WorkItem[]
  /**
   * A page of the items `options.as` may read, each by a `(work <board> read <kind> <path>)` grant
   * (checked for the whole board, then per kind, then — a bounded number per call — per item).
   */
  read(options: ListOptions & { as: PrincipalId }): Promise<ReadPage>
  /** Creates an item; its path is the parent's (as this node sees it) plus the id. */
  create(op: Omit<Extract<WorkOp, { op: 'create' }>, 'op' | 'path'>, options: ActOptions): Promise<OpOutcome>
  update(op: Omit<Extract<WorkOp, { op: 'update' }>, 'op' | 'kind' | 'path'>, options: ActOptions): Promise<OpOutcome>
  delete(item: string, options: ActOptions): Promise<OpOutcome>
  assign(item: string, assignee: PrincipalId | null, options: ActOptions): Promise<OpOutcome>
  claim(item: string, options: ActOptions): Promise<OpOutcome>
  release(item: string, options: ActOptions & { reason?: string }): Promise<OpOutcome>
  progress(
    item: string,
    progress: Omit<Extract<WorkOp, { op: 'progress' }>, 'op' | 'item' | 'kind' | 'path'>,
    options: ActOptions
  ): Promise<OpOutcome>
  complete(item: string, result: { result?: unknown; artifacts?: Artifact[] }, options: ActOptions): Promise<OpOutcome>
  fail(item: string, error: string, options: ActOptions & { rejected?: boolean }): Promise<OpOutcome>
  cancel(item: string, options: ActOptions & { reason?: string }): Promise<OpOutcome>
  handoff(item: string, to: PrincipalId, options: ActOptions & { state?: unknown }): Promise<OpOutcome>
  /** One operation of any kind, its item's kind and path filled in as this node sees them (a create's from its parent). */
  perform(op: UnscopedWorkOp, options: ActOptions): Promise<OpOutcome>
  /** Several operations (each naming its item's kind and path) by one actor in one event: all are written, each folded on its own. */
  submit(ops: WorkOp[], options: ActOptions): Promise<OpOutcome[]>
  /**
   * Watches the assignees of items in progress and releases (assign to none) the items of one that
   * is gone — no heartbeat from it, or its host is dead — so another agent claims them. Acts as
   * `options.as`, which needs the `assign` right. Runs until `options.signal` aborts.
   */
  watchAssignees(options: WatchOptions): void
  addEventListener(type: 'change', listener: (e: CustomEvent<BoardChange>) => void): void
  removeEventListener(type: 'change', listener: (e: CustomEvent<BoardChange>) => void): void
}

/** A page of `read`. */
export interface ReadPage {
  items: WorkItem[]
  /** Pass as `after` for the next page; null when there is none. */
  next: string | null
  /**
   * The page ended early: its per-call budget of single-item checks ran out (a reader whose grants
   * name paths, not kinds), so it may hold fewer than `limit` items while more follow.
   */
  partial: boolean
}

export interface WatchOptions {
  as: Signer
  /** Ends the watch. */
  signal: AbortSignal
  /** How often to look, in ms; default 5 s. */
  interval?: number
}

export interface BoardOptions extends AbortOptions {
  /** Default 'eventual'. A board keeps the mode it was first opened with. */
  mode?: ConsistencyMode
}

/** A board as listed. */
export interface BoardInfo {
  name: string
  mode: ConsistencyMode
  /** Items, deleted ones excluded. */
  items: number
  /** Operations folded (applied and refused). */
  ops: number
}

/**
 * The work service (`node.work`): boards, and (see fleet.ts, events.ts, swarm.ts) the fleet's
 * heartbeats, the HLC event journal and the swarm's messages.
 */
export interface WorkBoards {
  /** Opens (or creates) a board; a board keeps the mode it was first opened with (BoardModeMismatchError). */
  board(name: string, options?: BoardOptions): Promise<Board>
  /** The boards open or stored on this node. */
  boards(options?: AbortOptions): Promise<BoardInfo[]>
}
