/**
 * The work service (`node.work`): boards of work items that agents on many nodes create, claim,
 * progress and complete. A board is an `op-log` document (src/crdt/op-log.ts) whose entries are
 * operations (protocols/work/), each in an event signed by the acting agent; BoardState
 * (src/work/board.ts) folds them in (HLC, actor, index) order, the same on every replica.
 *
 * - Modes: LOCAL boards are local documents (never replicated); EVENTUAL boards are replicated to
 *   members as `work.<board>`, and a concurrent operation that loses (two claims of one item) is
 *   refused by every replica's fold: the losing agent is told (a `refused` change, and a `work.lost`
 *   message in its mailbox when it is hosted here). STRONG is the same Board over an ordered log — a
 *   later issue; opening a strong board says so.
 * - Authority, on every replica, before an event is applied: each operation's tag
 *   `(cyberspace (work <board> <action> <kind> <path>))` must be granted to the event's author (the
 *   actor) by the replica's ACL; the kind and path an operation claims are then checked by the fold
 *   against the item's own. Reading through this service checks `(work <board> read <kind> <path>)`
 *   for the reader named; members replicate boards.
 * - Before writing, an operation is checked here (authority and transition): a named error, nothing
 *   written. A write is acknowledged once the event is on this node's disk.
 *
 * @example
 * const board = await node.work.board('release')
 * await board.create({ item: 'goal', path: 'goal', title: 'ship', kind: 'goal' }, { as: coordinator.signer })
 */
import { TypedEventEmitter } from 'main-event'
import {
  boardDocumentName,
  boardOfDocument,
  BOARD_DOCUMENT_PREFIX,
  decodeWorkOp,
  encodeWorkOp
} from '../../protocols/work/codec.ts'
import { UnauthorizedEventError } from '../log/errors.ts'
import { BoardState } from './board.ts'
import {
  AgentNotHostedError,
  BoardModeMismatchError,
  InvalidWorkOptionError,
  ItemNotFoundError,
  StrongModeUnavailableError,
  UnknownParentError,
  WorkNotStartedError,
  WorkUnauthorizedError
} from './errors.ts'
import { opTag, opTags, workTag } from './tags.ts'
import { opLogEntries } from '../crdt/op-log.ts'
import { formatHlc, Hlc } from '../clock/hlc.ts'
import { MEMBER_TAG } from '../membership/service.ts'
import { EventJournal } from './events.ts'
import { RecentMap } from '../recent-map.ts'
import { FleetService } from './fleet.ts'
import {
  createScaling,
  fleetView,
  membersOf,
  parseScalingEntry,
  scalingDocument,
  SCALING_DOCUMENT,
  swarmView
} from './scaling.ts'
import { swarm as createSwarm } from './swarm.ts'
import { InvalidSwarmMessageError, SWARM_MAILBOX_TYPE_PREFIX } from '../../protocols/swarm/codec.ts'
import type { OpLogDocument } from '../log/documents.ts'
import type { OpLogEntry } from '../crdt/op-log.ts'
import type { State } from '../log/service.ts'
import type { Agents } from '../actor/agents.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Signer } from '../crypto/sign.ts'
import type { Spki } from '../spki/service.ts'
import type { Tag } from '../spki/tag.ts'
import type { Membership } from '../membership/service.ts'
import type { Mailbox } from '../actor/mailbox-service.ts'
import type { EventJournalInit } from './events.ts'
import type { Fleet, FleetInit, HeartbeatRowInput } from './fleet.ts'
import type { Scaling, ScalingInit } from './scaling.ts'
import type { Swarm, SwarmInit, SwarmMessage } from './swarm.ts'
import type { GossipSub } from '@libp2p/gossipsub'
import type {
  ActOptions,
  Artifact,
  Board,
  BoardChange,
  BoardInfo,
  BoardOptions,
  ConsistencyMode,
  ListOptions,
  OpOutcome,
  OpStamp,
  ReadPage,
  StampedOp,
  UnscopedWorkOp,
  WorkBoards,
  WorkItem,
  WatchOptions,
  WorkOp
} from './types.ts'
import type { AbortOptions, ComponentLogger, Logger, PeerId } from '@libp2p/interface'

export interface WorkComponents {
  peerId: PeerId
  /** The node's key: it signs heartbeats. */
  signer: Signer
  state: State
  spki: Spki
  membership: Membership
  pubsub: GossipSub
  mailbox: Mailbox
  agents: Agents
  logger: ComponentLogger
  /** The node's clock, shared with the state service: swarm messages, heartbeats and board operations in one causal order. */
  clock?: Hlc
}

export interface WorkInit {
  fleet?: Omit<FleetInit, 'rows' | 'journal' | 'clock'>
  swarm?: Omit<SwarmInit, 'clock'>
  scaling?: ScalingInit
  /** The event journal: its size, and `settle`, how long an entry waits to join in HLC order (default 500 ms). */
  events?: EventJournalInit
}

/**
 * The work service as a node offers it (`node.work`): boards, the event journal, the fleet, the
 * swarm, scaling, and what an operator does with its agents' work.
 */
export interface Work extends WorkBoards {
  /** Every change to boards, agents, membership, the swarm and the fleet, in HLC order. */
  readonly events: EventJournal
  readonly fleet: Fleet
  readonly swarm: Swarm
  readonly scaling: Scaling
  /** What a hosted agent says of its own load, for its next heartbeats. */
  report(agent: PrincipalId, report: AgentReport): void
  /** Hands a hosted agent's items in progress on (or releases them), says so, and stops it. */
  retire(agent: PrincipalId, options?: AbortOptions): Promise<{ handedOff: number; released: number }>
  /** Whether `reader` holds `(work <board> read <kind> <path>)` for `item` by this node's ACL. */
  mayRead(board: string, reader: PrincipalId, item: WorkItem, options?: AbortOptions): Promise<boolean>
}

/** What an open board asks of the service that opened it. */
interface BoardHost {
  recordOp(board: string, op: StampedOp): void
  changed(change: BoardChange, item: WorkItem | undefined): void
  isAlive(agent: PrincipalId): boolean
  goneGrace(): number
  note(what: string, err: unknown): void
  mayReadTag(reader: PrincipalId, tag: Tag, options?: AbortOptions): Promise<boolean>
  mayRead(board: string, reader: PrincipalId, item: WorkItem, options?: AbortOptions): Promise<boolean>
  authorize(principal: PrincipalId, tag: Tag, options?: AbortOptions): Promise<void>
}

/** What an agent reports of itself for its heartbeat (`work.report`); the rest the service counts. */
export interface AgentReport {
  /** Load factor: 1 is full. Default: its items in progress over `capacity`. */
  load?: number
  /** Items it works on at once; default 1. */
  capacity?: number
}

/** Most items one page holds. */
const MAX_PAGE = 1000
/** Checks of single items one read (one API request) makes at most. */
const READ_CHECKS = 64

function pageLimit(limit: number | undefined): number {
  return Math.min(Math.max(limit ?? 100, 1), MAX_PAGE)
}

interface BoardEvents {
  change: CustomEvent<BoardChange>
}

/** One open board: its document, its fold, and the cursor of what the fold has taken. */
class OpenBoard extends TypedEventEmitter<BoardEvents> implements Board {
  readonly name: string
  readonly mode: ConsistencyMode
  private readonly doc: OpLogDocument
  private readonly service: BoardHost
  private state: BoardState
  /** How many of the document's arrived entries the fold has taken. */
  private taken = 0
  private epoch: number
  private queue: Promise<unknown> = Promise.resolve()

  constructor(name: string, mode: ConsistencyMode, doc: OpLogDocument, service: BoardHost) {
    super()
    this.name = name
    this.mode = mode
    this.doc = doc
    this.service = service
    this.state = new BoardState(name)
    this.epoch = doc.epoch
    this.catchUp()
    doc.addEventListener('change', () => this.catchUp())
  }

  /** Folds what arrived since the last call; a rebuilt document state is folded again from scratch. */
  private catchUp(): void {
    // folded again from scratch (an entry replaced, or the log rebuilt): report only what differs
    let before: BoardState | undefined
    if (this.doc.epoch !== this.epoch) {
      this.epoch = this.doc.epoch
      before = this.state
      this.state = new BoardState(this.name)
      this.taken = 0
    }
    const arrived = this.doc.arrived()
    if (arrived.length <= this.taken) return
    const fresh = arrived.slice(this.taken)
    this.taken = arrived.length
    const ops: StampedOp[] = []
    for (const entry of fresh) {
      const op = stamped(entry)
      if (op != null) ops.push(op)
    }
    // each operation is an event once, whatever it became: the same on every replica
    for (const op of ops) this.service.recordOp(this.name, op)
    for (const change of this.state.add(ops)) {
      if (before != null && sameOutcome(before.outcome(change.stamp), change)) continue
      this.safeDispatchEvent('change', { detail: change })
      this.service.changed(change, this.state.item(change.item))
    }
  }

  /** How many items each assignee has in progress here. */
  inProgress(): Map<PrincipalId, number> {
    const out = new Map<PrincipalId, number>()
    for (const { assignee } of this.state.inProgress()) out.set(assignee, (out.get(assignee) ?? 0) + 1)
    return out
  }

  watchAssignees(options: WatchOptions): void {
    const interval = options.interval ?? 5000
    if (!Number.isSafeInteger(interval) || interval < 50 || interval > 3_600_000)
      throw new InvalidWorkOptionError('interval is an integer of ms in 50..3600000')
    /** Since when each assignee has shown no sign of life, local ms. */
    const missing = new Map<PrincipalId, number>()
    const look = async (): Promise<void> => {
      const now = Date.now()
      const seen = new Set<PrincipalId>()
      for (const { id, assignee } of [...this.state.inProgress()]) {
        if (options.signal.aborted) return
        seen.add(assignee)
        if (this.service.isAlive(assignee)) {
          missing.delete(assignee)
          continue
        }
        const since = missing.get(assignee) ?? now
        missing.set(assignee, since)
        if (now - since < this.service.goneGrace()) continue
        try {
          await this.assign(id, null, { as: options.as, signal: options.signal })
        } catch (err) {
          // someone else released or finished it meanwhile, or the watcher may not: said in the log
          this.service.note(`could not release ${id} of ${this.name} from ${assignee}`, err)
        }
      }
      for (const assignee of [...missing.keys()]) if (!seen.has(assignee)) missing.delete(assignee)
    }
    const timer = setInterval(() => {
      look().catch(err => this.service.note(`watching the assignees of ${this.name} failed`, err))
    }, interval)
    options.signal.addEventListener('abort', () => clearInterval(timer), { once: true })
  }

  item(id: string): WorkItem | undefined {
    const item = this.state.item(id)
    return item == null || item.deleted ? undefined : item
  }

  items(options: ListOptions = {}): WorkItem[] {
    return this.list(options)
  }

  async read(options: ListOptions & { as: PrincipalId }): Promise<ReadPage> {
    const limit = pageLimit(options.limit)
    // the whole board, then each kind, one check each; single items only where neither grants, and
    // only READ_CHECKS of them: a reader who may read nothing costs a few checks, not one per item
    const whole = await this.service.mayReadTag(options.as, workTag(this.name, 'read'), options)
    let checks = READ_CHECKS
    const kinds = new Map<string, boolean>()
    const items: WorkItem[] = []
    /** The last item looked at: where a page that ends early goes on from. */
    let last = options.after
    for (const item of this.matching(options)) {
      let allowed = whole
      if (!allowed) {
        let kind = kinds.get(item.kind)
        if (kind === undefined) {
          kind = await this.service.mayReadTag(options.as, workTag(this.name, 'read', item.kind), options)
          kinds.set(item.kind, kind)
        }
        allowed = kind
      }
      if (!allowed) {
        // out of checks: the page ends here, and the next one goes on after this item's predecessor
        if (checks <= 0) return { items, next: last ?? null, partial: true }
        checks--
        allowed = await this.service.mayRead(this.name, options.as, item, options)
      }
      if (allowed && items.length === limit) return { items, next: items[limit - 1].id, partial: false }
      last = item.id
      if (allowed) items.push(item)
    }
    return { items, next: null, partial: false }
  }

  /** The items `options` selects, in id order from `options.after`, deleted ones left out. */
  private *matching(options: ListOptions): Generator<WorkItem> {
    const statuses = options.status == null ? undefined : new Set([options.status].flat())
    for (const item of this.state.sortedItems(options.after)) {
      if (item.deleted) continue
      if (statuses != null && !statuses.has(item.status)) continue
      if (options.assignee != null && item.assignee !== options.assignee) continue
      if (options.parent != null && item.parent !== options.parent) continue
      if (options.kind != null && item.kind !== options.kind) continue
      if (options.ready === true && !(item.ready && item.status === 'submitted' && item.assignee == null)) continue
      yield item
    }
  }

  private list(options: ListOptions): WorkItem[] {
    const limit = pageLimit(options.limit)
    const out: WorkItem[] = []
    for (const item of this.matching(options)) {
      out.push(item)
      if (out.length >= limit) break
    }
    return out
  }

  /** The scope an operation on an existing item names: its kind and path as this node sees them. */
  private scope(id: string): { item: string; kind: string; path: string } {
    const item = this.state.item(id)
    if (item == null) throw new ItemNotFoundError(`board ${this.name} has no item ${id}`)
    return { item: id, kind: item.kind, path: item.path }
  }

  async perform(op: UnscopedWorkOp, options: ActOptions): Promise<OpOutcome> {
    if (op.op !== 'create') return await this.one({ ...op, ...this.scope(op.item) } as WorkOp, options)
    let path = op.item
    if (op.parent != null) {
      const parent = this.state.item(op.parent)
      if (parent == null) throw new UnknownParentError(`board ${this.name} has no item ${op.parent} to be a parent`)
      path = `${parent.path}/${op.item}`
    }
    return await this.one({ ...op, path }, options)
  }

  async create(op: Omit<Extract<WorkOp, { op: 'create' }>, 'op' | 'path'>, options: ActOptions): Promise<OpOutcome> {
    return await this.perform({ ...op, op: 'create' }, options)
  }

  async update(
    op: Omit<Extract<WorkOp, { op: 'update' }>, 'op' | 'kind' | 'path'>,
    options: ActOptions
  ): Promise<OpOutcome> {
    return await this.one({ ...op, ...this.scope(op.item), op: 'update' }, options)
  }

  async delete(item: string, options: ActOptions): Promise<OpOutcome> {
    return await this.one({ op: 'delete', ...this.scope(item) }, options)
  }

  async assign(item: string, assignee: PrincipalId | null, options: ActOptions): Promise<OpOutcome> {
    return await this.one({ op: 'assign', ...this.scope(item), assignee }, options)
  }

  async claim(item: string, options: ActOptions): Promise<OpOutcome> {
    return await this.one({ op: 'claim', ...this.scope(item) }, options)
  }

  async release(item: string, options: ActOptions & { reason?: string }): Promise<OpOutcome> {
    return await this.one({ op: 'release', ...this.scope(item), reason: options.reason }, options)
  }

  async progress(
    item: string,
    progress: Omit<Extract<WorkOp, { op: 'progress' }>, 'op' | 'item' | 'kind' | 'path'>,
    options: ActOptions
  ): Promise<OpOutcome> {
    return await this.one({ ...progress, op: 'progress', ...this.scope(item) }, options)
  }

  async complete(
    item: string,
    result: { result?: unknown; artifacts?: Artifact[] },
    options: ActOptions
  ): Promise<OpOutcome> {
    return await this.one({ ...result, op: 'complete', ...this.scope(item) }, options)
  }

  async fail(item: string, error: string, options: ActOptions & { rejected?: boolean }): Promise<OpOutcome> {
    return await this.one({ op: 'fail', ...this.scope(item), error, rejected: options.rejected }, options)
  }

  async cancel(item: string, options: ActOptions & { reason?: string }): Promise<OpOutcome> {
    return await this.one({ op: 'cancel', ...this.scope(item), reason: options.reason }, options)
  }

  async handoff(item: string, to: PrincipalId, options: ActOptions & { state?: unknown }): Promise<OpOutcome> {
    return await this.one({ op: 'handoff', ...this.scope(item), to, state: options.state }, options)
  }

  private async one(op: WorkOp, options: ActOptions): Promise<OpOutcome> {
    return (await this.submit([op], options))[0]
  }

  async submit(ops: WorkOp[], options: ActOptions): Promise<OpOutcome[]> {
    // one at a time: each is checked against everything written before it here
    const run = this.queue.then(async () => await this.write(ops, options))
    this.queue = run.catch(() => {})
    return await run
  }

  private async write(ops: WorkOp[], options: ActOptions): Promise<OpOutcome[]> {
    options.signal?.throwIfAborted()
    const actor = options.as.principal
    // the wire form first (checked as every replica will): what they would refuse as malformed is refused here
    const bodies = ops.map(encodeWorkOp)
    // authority first: an actor without the right learns nothing of the board's state
    for (const body of bodies) {
      try {
        for (const tag of opTags(this.name, body)) await this.service.authorize(actor, tag, options)
      } catch (err) {
        options.signal?.throwIfAborted()
        throw new WorkUnauthorizedError(
          `${actor} may not ${body.op} ${body.item} on board ${this.name}: ${(err as Error).message}`
        )
      }
    }
    // the transition as of now; an op on an item an earlier op of the batch touches is left to the fold
    const touched = new Set<string>()
    for (const op of bodies) {
      if (!touched.has(op.item)) this.state.check(op, actor)
      touched.add(op.item)
    }
    let appended: Awaited<ReturnType<OpLogDocument['append']>>
    try {
      appended = await this.doc.append(bodies, { signer: options.as, signal: options.signal })
    } catch (err) {
      if (err instanceof UnauthorizedEventError) throw new WorkUnauthorizedError(err.message)
      throw err
    }
    this.catchUp()
    if (appended == null) return []
    return appended.entries.map(
      entry =>
        this.state.outcome({ hlc: entry.hlc, actor: entry.actor as PrincipalId, index: entry.index }) ?? {
          accepted: false
        }
    )
  }

  info(): BoardInfo {
    return { name: this.name, mode: this.mode, items: this.state.liveItems, ops: this.state.opCount }
  }
}

/** Whether `change` says what `outcome` (an operation's outcome before a refold) said already. */
function sameOutcome(outcome: OpOutcome | undefined, change: BoardChange): boolean {
  if (outcome == null) return false
  if (change.type === 'applied') return outcome.accepted
  return !outcome.accepted && outcome.reason === change.reason && outcome.winner === change.winner
}

/** A document entry as a stamped operation; an entry whose body is no operation is skipped (the rule refuses such events). */
function stamped(entry: OpLogEntry): StampedOp | undefined {
  try {
    return { hlc: entry.hlc, actor: entry.actor as PrincipalId, index: entry.index, body: decodeWorkOp(entry.body) }
  } catch {
    return undefined
  }
}

/** Per hosted agent: what its heartbeat says beyond status. */
interface AgentStats {
  done: number
  failed: number
  /** Sum and count of claim-to-end times of its items, ms (by the operations' HLC walls). */
  latencySum: number
  latencyCount: number
  report: AgentReport
}

/** How long an assignee may be without a fresh heartbeat before its items are released; at least this, in ms. */
const MIN_GONE_GRACE = 3000

export class WorkService implements Work {
  readonly events: EventJournal
  private readonly components: WorkComponents
  private readonly init: WorkInit
  private readonly log: Logger
  private readonly clock: Hlc
  private readonly open = new Map<string, OpenBoard>()
  private readonly opening = new Map<string, Promise<OpenBoard>>()
  private readonly stats = new Map<PrincipalId, AgentStats>()
  private readonly retiring = new Set<PrincipalId>()
  /** Operations the fold refused, by key: a later `applied` change of one is a reinstatement. */
  private readonly refusedOps = new RecentMap<string, true>(65_536)
  private readonly stopWatching: Array<() => void> = []
  private fleetService?: FleetService
  private swarmService?: Swarm & { start?(): Promise<void> | void; stop?(): Promise<void> | void }
  private scalingService?: Scaling
  private shutdown = new AbortController()

  /** What the boards this service opens may ask of it. */
  private readonly host: BoardHost = {
    recordOp: (board, op) => this.recordOp(board, op),
    changed: (change, item) => this.changed(change, item),
    isAlive: agent => this.isAlive(agent),
    goneGrace: () => this.goneGrace(),
    note: (what, err) => this.log('%s - %e', what, err),
    mayReadTag: async (reader, tag, options) => await this.mayReadTag(reader, tag, options),
    mayRead: async (board, reader, item, options) => await this.mayRead(board, reader, item, options),
    authorize: async (principal, tag, options) => {
      await this.components.spki.authorize(principal, tag, options)
    }
  }

  constructor(components: WorkComponents, init: WorkInit = {}) {
    this.components = components
    this.init = init
    this.log = components.logger.forComponent('cyberspace:work')
    this.clock = components.clock ?? new Hlc()
    this.events = new EventJournal(init.events)
  }

  get fleet(): Fleet {
    if (this.fleetService == null) throw new WorkNotStartedError('the work service is not started')
    return this.fleetService
  }

  get swarm(): Swarm {
    if (this.swarmService == null) throw new WorkNotStartedError('the work service is not started')
    return this.swarmService
  }

  get scaling(): Scaling {
    if (this.scalingService == null) throw new WorkNotStartedError('the work service is not started')
    return this.scalingService
  }

  async start(): Promise<void> {
    const { state, spki, membership, pubsub, mailbox, agents, logger, peerId, signer } = this.components
    this.shutdown = new AbortController()
    state.addRule(BOARD_DOCUMENT_PREFIX, {
      readers: 'members',
      authorizeAppend: async (name, author, deltas, options) => {
        await this.authorizeAppend(name, author, deltas, options)
      }
    })
    // scaling decisions: written and read by members
    // scaling decisions: members write and read them; anything but a scaling entry is refused for good
    state.addRule(SCALING_DOCUMENT, {
      readers: 'members',
      authorizeAppend: async (_name, author, deltas, options) => {
        for (const entry of opLogEntries(deltas)) {
          if (parseScalingEntry(entry.body) == null)
            throw new UnauthorizedEventError(`an entry of ${SCALING_DOCUMENT} is no scaling entry`, { permanent: true })
        }
        await spki.authorizeOrProve(author, MEMBER_TAG, { signal: options.signal, providers: options.providers })
      }
    })
    // work.* messages (work.lost) are what this node tells its own agents: from an agent to itself only
    this.stopWatching.push(
      agents.intercept('work.', async message => {
        if (message.from !== message.to)
          throw new WorkUnauthorizedError(
            `${message.type} is what an agent's node tells it, not another agent's to send`
          )
        return message
      })
    )
    this.stopWatching.push(this.events.watchMembership(membership, this.clock))
    this.stopWatching.push(this.events.watchAgents(agents, this.clock))
    this.swarmService = createSwarm({ ...this.init.swarm, clock: this.clock })({ pubsub, spki, logger, mailbox })
    await this.swarmService.start?.()
    // every message the swarm delivers (or this node publishes) is an event, with its own HLC
    const onSwarm = (e: CustomEvent<SwarmMessage>): void => {
      this.recordSwarm(e.detail)
    }
    this.swarmService.addEventListener('message', onSwarm)
    this.stopWatching.push(() => this.swarmService?.removeEventListener('message', onSwarm))
    // a directed swarm message reaches a hosted agent checked and decoded (a forged or replayed one never does)
    const swarmService = this.swarmService
    this.stopWatching.push(
      agents.intercept(SWARM_MAILBOX_TYPE_PREFIX, async (message, options) => {
        if (!(message.body instanceof Uint8Array))
          throw new InvalidSwarmMessageError(
            'body',
            `a ${message.type} message carries the encoded swarm message as bytes`
          )
        const checked = await swarmService.acceptDirect(message.body, undefined, {
          from: message.from,
          to: message.to,
          type: message.type,
          signal: options.signal
        })
        return { ...message, body: checked }
      })
    )
    this.fleetService = new FleetService(
      { peerId, signer, pubsub, membership, logger, agents },
      { ...this.init.fleet, rows: () => this.heartbeatRows(), journal: this.events, clock: this.clock }
    )
    await this.fleetService.start()
    this.scalingService = createScaling(this.init.scaling ?? {}, {
      self: peerId.toString(),
      openLog: scalingDocument(state),
      fleet: fleetView(this.fleetService),
      swarm: swarmView(this.swarmService),
      members: () => membersOf(membership.members()),
      agents,
      retire: async (principal, options) => {
        await this.retire(principal, options)
      },
      record: event => {
        this.events.record(event)
      },
      logger
    })
    await this.scalingService.start()
  }

  async stop(): Promise<void> {
    this.shutdown.abort()
    await this.scalingService?.stop()
    await this.fleetService?.stop()
    await this.swarmService?.stop?.()
    for (const stop of this.stopWatching.splice(0)) stop()
    // what waits to settle joins the journal now, and its timer stops
    this.events.close()
    this.components.state.removeRule(BOARD_DOCUMENT_PREFIX)
    this.components.state.removeRule(SCALING_DOCUMENT)
    this.open.clear()
  }

  async board(name: string, options: BoardOptions = {}): Promise<Board> {
    const mode = options.mode ?? 'eventual'
    if (mode === 'strong') {
      throw new StrongModeUnavailableError(
        `board ${name}: STRONG boards need the ordered log (a later issue); open it as 'eventual' or 'local'`
      )
    }
    const docName = boardDocumentName(name)
    let pending = this.opening.get(name)
    const known = this.open.get(name)
    if (known == null && pending == null) {
      pending = (async () => {
        const { state } = this.components
        const stored = (await state.stored(options)).some(d => d.name === docName)
        const doc = await state.open(docName, 'op-log', {
          signal: options.signal,
          ...(stored ? {} : { local: mode === 'local' })
        })
        const board = new OpenBoard(name, state.isLocal(docName) ? 'local' : 'eventual', doc, this.host)
        this.open.set(name, board)
        return board
      })()
      this.opening.set(name, pending)
      pending.finally(() => this.opening.delete(name)).catch(() => {})
    }
    const board = known ?? (await pending)
    if (board == null) throw new WorkNotStartedError(`board ${name} could not be opened`)
    if (board.mode !== mode) {
      throw new BoardModeMismatchError(`board ${name} is ${board.mode}, not ${mode}: open it as ${board.mode}`)
    }
    return board
  }

  async boards(options: AbortOptions = {}): Promise<BoardInfo[]> {
    const out = new Map<string, BoardInfo>()
    for (const board of this.open.values()) out.set(board.name, board.info())
    for (const { name } of await this.components.state.stored(options)) {
      const board = boardOfDocument(name)
      if (board == null || out.has(board)) continue
      out.set(board, {
        name: board,
        mode: this.components.state.isLocal(name) ? 'local' : 'eventual',
        items: -1,
        ops: -1
      })
    }
    return [...out.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  /** What a hosted agent says of its own load, for its next heartbeats. */
  report(agent: PrincipalId, report: AgentReport): void {
    if (this.components.agents.get(agent) == null) throw new AgentNotHostedError(`agent ${agent} is not hosted here`)
    const load = report.load
    if (load !== undefined && (typeof load !== 'number' || !Number.isFinite(load) || load < 0 || load > 1000))
      throw new InvalidWorkOptionError('load is a number in 0..1000')
    const capacity = report.capacity
    if (capacity !== undefined && (!Number.isSafeInteger(capacity) || capacity < 1 || capacity > 10_000))
      throw new InvalidWorkOptionError('capacity is an integer in 1..10000')
    const stats = this.statsOf(agent)
    stats.report = { ...stats.report, ...report }
  }

  /**
   * Retires a hosted agent: hands each of its items in progress, on every open board, to another
   * agent of its kind (the least loaded with a fresh heartbeat) or releases it when there is none,
   * says so (a STATE_DELTA of the agent's entity, when its chain allows), and stops it.
   */
  async retire(agent: PrincipalId, options: AbortOptions = {}): Promise<{ handedOff: number; released: number }> {
    const { agents } = this.components
    const handle = agents.agent(agent)
    if (handle == null) throw new AgentNotHostedError(`agent ${agent} is not hosted here`)
    const kind = handle.info()?.kind
    this.retiring.add(agent)
    try {
      await this.fleetService?.beat(options).catch(err => this.log('could not beat before retiring - %e', err))
      let handedOff = 0
      let released = 0
      for (const board of this.open.values()) {
        for (const item of board.items({ assignee: agent, limit: MAX_PAGE })) {
          if (!IN_PROGRESS.has(item.status)) continue
          const peer = this.successorOf(agent, kind)
          try {
            if (peer != null) {
              await board.handoff(item.id, peer, {
                as: handle.signer,
                state: item.handoff?.state ?? item.progress,
                signal: options.signal
              })
              handedOff++
            } else {
              await board.release(item.id, { as: handle.signer, reason: 'its agent retired', signal: options.signal })
              released++
            }
          } catch (err) {
            options.signal?.throwIfAborted()
            this.log('could not hand on %s of %s as %s retires - %e', item.id, board.name, agent, err)
          }
        }
      }
      await this.swarmService
        ?.publish(
          { type: 'state-delta', body: { entity: agent, fields: { status: 'retired', handedOff, released } } },
          { as: handle.signer, signal: options.signal }
        )
        .catch(err => this.log('%s retires without a last state delta - %e', agent, err))
      await agents.stop(agent, options)
      return { handedOff, released }
    } finally {
      this.retiring.delete(agent)
      this.stats.delete(agent)
    }
  }

  /** The least loaded other agent of `kind` with a fresh heartbeat that is not retiring. */
  private successorOf(agent: PrincipalId, kind: string | undefined): PrincipalId | undefined {
    if (kind == null || this.fleetService == null) return undefined
    const rows = this.fleetService
      .rows(kind)
      .filter(r => r.agent !== agent && !r.stale && r.status !== 'retiring' && !this.retiring.has(r.agent))
      .sort((a, b) => a.load - b.load || (a.agent < b.agent ? -1 : 1))
    return rows[0]?.agent
  }

  /** Whether `agent` is hosted here or has a fresh heartbeat. */
  private isAlive(agent: PrincipalId): boolean {
    if (this.components.agents.get(agent) != null) return true
    return this.fleetService?.rows().some(r => r.agent === agent && !r.stale) ?? false
  }

  /** How long an assignee may go without a sign of life before its items are released. */
  private goneGrace(): number {
    return Math.max(MIN_GONE_GRACE, 2 * (this.fleetService?.interval ?? 0))
  }

  /** A board change: recorded in the journal, counted for heartbeats, and told to a losing agent hosted here. */
  /** A swarm message as a journal event: subject the entity, `skill:<skills>` or `<board>/<item>` it is about. */
  private recordSwarm(m: SwarmMessage): void {
    const subject =
      m.type === 'state-delta'
        ? m.body.entity
        : m.type === 'need'
          ? `skill:${m.body.skill}`
          : m.type === 'offer'
            ? `skill:${m.body.skills.join(',')}`
            : `${m.body.board}/${m.body.item}`
    this.events.record({
      hlc: m.hlc,
      source: 'swarm',
      type: m.type,
      subject: subject.slice(0, 512),
      id: `swarm/${m.from}/${m.id}`,
      data: { from: m.from, ...(m.to === undefined ? {} : { to: m.to }), body: m.body }
    })
  }

  /**
   * A board operation as a journal event (type: its action), recorded once whatever the fold made of
   * it, so every replica's journal lists the same operations in the same order.
   */
  private recordOp(board: string, op: StampedOp): void {
    this.events.record({
      hlc: op.hlc,
      source: 'board',
      type: op.body.op,
      subject: `${board}/${op.body.item}`,
      id: opKey(board, op),
      data: { actor: op.actor, index: op.index }
    })
  }

  /**
   * A change of an operation's outcome. A refusal is a journal event (`refused`, naming the reason
   * and, for a lost claim, the winner); an operation refused before and applied once an earlier one
   * arrived is `reinstated`. These are this replica's observations: one that saw the operations in
   * order never saw the refusal it did not make.
   */
  private changed(change: BoardChange, item: WorkItem | undefined): void {
    const { stamp } = change
    const key = opKey(change.board, stamp)
    const subject = `${change.board}/${change.item}`
    if (change.type === 'refused') {
      this.refusedOps.set(key, true)
      this.events.record({
        hlc: stamp.hlc,
        source: 'board',
        type: 'refused',
        subject,
        id: `${key}/refused`,
        data: { actor: stamp.actor, index: stamp.index, op: change.op, reason: change.reason, winner: change.winner }
      })
    } else if (this.refusedOps.has(key)) {
      this.refusedOps.delete(key)
      this.events.record({
        hlc: stamp.hlc,
        source: 'board',
        type: 'reinstated',
        subject,
        id: `${key}/reinstated`,
        data: { actor: stamp.actor, index: stamp.index, op: change.op, status: change.status }
      })
    }
    const { agents } = this.components
    if (change.type === 'applied') {
      if ((change.op === 'complete' || change.op === 'fail') && agents.get(stamp.actor) != null) {
        const stats = this.statsOf(stamp.actor)
        if (change.op === 'complete') stats.done++
        else stats.failed++
        const claimed = item?.history.findLast(h => h.op === 'claim' || h.op === 'handoff')
        if (claimed != null) {
          stats.latencySum += Math.max(0, stamp.hlc[0] - claimed.hlc[0])
          stats.latencyCount++
        }
      }
      return
    }
    const actor = stamp.actor
    if (agents.get(actor) == null) return
    agents
      .send(actor, actor, 'work.lost', {
        board: change.board,
        item: change.item,
        op: change.op,
        reason: change.reason,
        ...(change.winner != null ? { winner: change.winner } : {})
      })
      .catch(err => this.log('could not tell %s its %s of %s was refused - %e', actor, change.op, change.item, err))
  }

  private statsOf(agent: PrincipalId): AgentStats {
    let stats = this.stats.get(agent)
    if (stats == null) {
      stats = { done: 0, failed: 0, latencySum: 0, latencyCount: 0, report: {} }
      this.stats.set(agent, stats)
    }
    return stats
  }

  /** The heartbeat rows of the agents hosted here. */
  private heartbeatRows(): HeartbeatRowInput[] {
    const inProgress = new Map<PrincipalId, number>()
    for (const board of this.open.values()) {
      for (const [assignee, n] of board.inProgress()) inProgress.set(assignee, (inProgress.get(assignee) ?? 0) + n)
    }
    return this.components.agents.list().map(info => {
      const stats = this.stats.get(info.principal)
      const capacity = stats?.report.capacity ?? 1
      const working = inProgress.get(info.principal) ?? 0
      const load = stats?.report.load ?? working / capacity
      const status = this.retiring.has(info.principal)
        ? 'retiring'
        : load > 1
          ? 'overloaded'
          : working > 0 || load > 0
            ? 'active'
            : 'idle'
      return {
        agent: info.principal,
        kind: info.kind,
        status,
        load,
        done: stats?.done ?? 0,
        failed: stats?.failed ?? 0,
        latency: stats == null || stats.latencyCount === 0 ? 0 : stats.latencySum / stats.latencyCount
      }
    })
  }

  /** Whether `reader` holds `tag` by this node's ACL. */
  private async mayReadTag(
    reader: PrincipalId,
    tag: ReturnType<typeof workTag>,
    options: AbortOptions = {}
  ): Promise<boolean> {
    try {
      await this.components.spki.authorize(reader, tag, options)
      return true
    } catch (err) {
      options.signal?.throwIfAborted()
      return false
    }
  }

  /** Whether `reader` holds `(work <board> read <kind> <path>)` for `item` by this node's ACL. */
  async mayRead(board: string, reader: PrincipalId, item: WorkItem, options: AbortOptions = {}): Promise<boolean> {
    try {
      await this.components.spki.authorize(reader, workTag(board, 'read', item.kind, item.path), options)
      return true
    } catch (err) {
      options.signal?.throwIfAborted()
      this.log.trace('%s may not read %s on %s - %e', reader, item.id, board, err)
      return false
    }
  }

  /**
   * The rule for `work.` documents: every operation of an event must be granted to its author by
   * this node's ACL (an event with none — a merge of heads — needs the read right on the board).
   * A malformed operation is refused for good; a missing grant only for now (one may come).
   */
  private async authorizeAppend(
    name: string,
    author: PrincipalId,
    deltas: unknown[],
    options: AbortOptions & { providers?: PeerId[] }
  ): Promise<void> {
    const board = boardOfDocument(name)
    if (board == null) throw new UnauthorizedEventError(`${name} names no board`, { permanent: true })
    const tags = new Map<string, ReturnType<typeof opTag>>()
    const entries = opLogEntries(deltas)
    // authority as of the event's own time (its entries carry its HLC): every replica, whenever it
    // receives the event, decides the same; an event with no entries (a merge) is decided now
    const at = entries[0]?.hlc[0]
    for (const entry of entries) {
      let op: WorkOp
      try {
        op = decodeWorkOp(entry.body)
      } catch (err) {
        throw new UnauthorizedEventError(`an entry of ${name} is no work operation: ${(err as Error).message}`, {
          permanent: true
        })
      }
      for (const tag of opTags(board, op)) tags.set(JSON.stringify(tag), tag)
    }
    if (tags.size === 0) {
      const tag = workTag(board, 'read')
      tags.set(JSON.stringify(tag), tag)
    }
    for (const tag of tags.values()) {
      try {
        await this.components.spki.authorizeOrProve(author, tag, {
          signal: options.signal,
          providers: options.providers,
          at
        })
      } catch (err) {
        options.signal?.throwIfAborted()
        throw new UnauthorizedEventError(`${author} may not do this on board ${board}: ${(err as Error).message}`)
      }
    }
  }
}

/** An operation's key in the journal: its board and stamp. */
function opKey(board: string, stamp: OpStamp): string {
  return `${board}/${formatHlc(stamp.hlc)}/${stamp.actor}/${stamp.index}`
}

/** Statuses of an item someone works on. */
const IN_PROGRESS: ReadonlySet<string> = new Set(['working', 'input-required', 'auth-required'])
