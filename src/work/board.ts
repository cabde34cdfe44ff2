/**
 * The deterministic fold of a board (protocols/work/README.md, "The fold"): operations taken in
 * (HLC, actor, index) order, each checked against the state machine at its position and either
 * applied or refused with a reason. Every replica that holds the same operations, whatever order
 * they arrived in, holds the same items and the same refusals.
 *
 * Arrival order is free. An operation that sorts after every one seen is applied at once (O(1)
 * apart from its dependencies). An earlier one is inserted among its item's operations and that
 * item is folded again from its own operations; if that changes the item's timeline (when it came
 * to exist, its status, its deletion) the items that read it — its children and the items that
 * depend on it, as named by any of their create operations — are folded again too, transitively,
 * in the order of the earliest position that changed. A cross-item check (the parent exists, every
 * dependency is completed) reads the other item's timeline at the operation's position, so folding
 * one item never needs the whole board.
 *
 * `add` returns what the arrival changed, in fold order: `applied` for an operation now applied,
 * `refused` for one now refused — also one applied before that an earlier arrival displaced (the
 * loser of a concurrent claim learns it so).
 *
 * @example
 * const state = new BoardState('release')
 * state.add([{ hlc: [1, 0], actor: alice, index: 0, body: { op: 'create', item: 't1', kind: 'task', path: 't1', title: 'tests' } }])
 * state.check({ op: 'claim', item: 't1', kind: 'task', path: 't1' }, bob)    // throws the named error, or returns
 * state.item('t1')?.status                                                  // 'submitted'
 */
import { compareHlc } from '../clock/hlc.ts'
import { MAX_PATH_DEPTH } from '../../protocols/work/codec.ts'
import { refusalError } from './errors.ts'
import { ITEM_STATUSES } from './types.ts'
import type { HlcTimestamp } from '../clock/hlc.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type {
  Artifact,
  BoardChange,
  HistoryEntry,
  ItemStatus,
  OpOutcome,
  OpStamp,
  RefusalReason,
  StampedOp,
  WorkAction,
  WorkItem,
  WorkOp
} from './types.ts'

/** How many of an item's latest accepted operations its history shows, after the first (its create). */
export const HISTORY_TAIL = 256

// Status codes are indices into ITEM_STATUSES; the timeline adds DELETED to a code.
const SUBMITTED = 0
const WORKING = 1
const COMPLETED = 4
const FAILED = 5
const CANCELED = 6
const REJECTED = 7
const STATUS_MASK = 7
const DELETED = 8
const STATUS_CODE: Record<ItemStatus, number> = Object.fromEntries(ITEM_STATUSES.map((s, i) => [s, i])) as Record<
  ItemStatus,
  number
>

// Outcome codes: a status code (0..7, the status after) for an applied operation, REFUSED + reason
// for a refused one, UNFOLDED before the fold has seen it.
const REASONS: readonly RefusalReason[] = [
  'unknown-item',
  'exists',
  'unknown-parent',
  'unknown-dependency',
  'too-deep',
  'not-ready',
  'already-claimed',
  'not-assignee',
  'terminal',
  'bad-transition',
  'deleted',
  'bad-scope'
]
const REFUSED = 16
const ACCEPT = -1
const UNFOLDED = -1
const R_UNKNOWN_ITEM = 0
const R_EXISTS = 1
const R_UNKNOWN_PARENT = 2
const R_UNKNOWN_DEPENDENCY = 3
const R_TOO_DEEP = 4
const R_NOT_READY = 5
const R_ALREADY_CLAIMED = 6
const R_NOT_ASSIGNEE = 7
const R_TERMINAL = 8
const R_BAD_TRANSITION = 9
const R_DELETED = 10
const R_BAD_SCOPE = 11

const EMPTY: readonly never[] = Object.freeze([])
/** Most operations of one actor at one wall time kept in a list before they are indexed. */
const SHARED_WALL_LIST = 16

type CreateOp = Extract<WorkOp, { op: 'create' }>

/** One operation as the fold keeps it: its stamp, its body, and what became of it. */
class Entry {
  readonly hlc: HlcTimestamp
  readonly actor: PrincipalId
  readonly index: number
  readonly body: WorkOp
  /** A status code (applied: the status after), REFUSED + reason, or UNFOLDED. */
  out = UNFOLDED
  /** Applied: the assignee after it. Refused as already-claimed: the holder (winner). */
  who: PrincipalId | undefined = undefined

  constructor(hlc: HlcTimestamp, actor: PrincipalId, index: number, body: WorkOp) {
    this.hlc = hlc
    this.actor = actor
    this.index = index
    this.body = body
  }
}

function compareEntries(a: Entry, b: Entry): number {
  return compareHlc(a.hlc, b.hlc) || (a.actor < b.actor ? -1 : a.actor > b.actor ? 1 : 0) || a.index - b.index
}

/** An item's current state. Fields that only an operation's body holds are kept as that operation. */
class ItemRecord {
  /** The create that made it (id, kind, path, parent, deps, created, createdBy). */
  readonly create: Entry
  /** The last operation applied (updated). */
  last: Entry
  title: string
  description: string | undefined
  priority: number
  skills: readonly string[]
  status: number
  deleted = false
  assignee: PrincipalId | undefined
  /** The last progress applied since the item was last (re)claimed. */
  progress: Entry | undefined = undefined
  /** The handoff that gave the current assignee the item. */
  handoff: Entry | undefined = undefined
  /** The complete or fail that ended it. */
  end: Entry | undefined = undefined

  constructor(create: Entry, assignee: PrincipalId | undefined) {
    const body = create.body as CreateOp
    this.create = create
    this.last = create
    this.title = body.title
    this.description = body.description
    this.priority = body.priority ?? 0
    this.skills = body.skills ?? EMPTY
    this.status = SUBMITTED
    this.assignee = assignee
  }

  get kind(): string {
    return this.create.body.kind
  }

  get path(): string {
    return this.create.body.path
  }

  get deps(): readonly string[] {
    return (this.create.body as CreateOp).deps ?? EMPTY
  }
}

/** Everything known about one item id: the operations naming it, and what they made. */
class Slot {
  readonly id: string
  /** Operations on this id, in fold order. */
  ops: Entry[] = []
  item: ItemRecord | undefined = undefined
  /**
   * The item's timeline: pairs (operation, code) for each applied operation that created it or
   * changed its status or deletion, code = status | DELETED. Read by other items at a position.
   */
  timeline: Array<Entry | number> = []
  /** Ids whose create operations name this id as parent or dependency (they read its timeline). */
  watchers: string[] | undefined = undefined

  constructor(id: string) {
    this.id = id
  }
}

/** A min-heap of slots keyed by the earliest position at which their inputs changed. */
class RefoldQueue {
  private readonly keys: Entry[] = []
  private readonly slots: Slot[] = []
  /** The key a slot is queued under (older heap nodes with another key are stale). */
  readonly queued = new Map<Slot, Entry>()

  push(slot: Slot, key: Entry): void {
    const current = this.queued.get(slot)
    if (current !== undefined && compareEntries(current, key) <= 0) return
    this.queued.set(slot, key)
    const keys = this.keys
    const slots = this.slots
    let i = keys.length
    keys.push(key)
    slots.push(slot)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (compareEntries(keys[parent], key) <= 0) break
      keys[i] = keys[parent]
      slots[i] = slots[parent]
      i = parent
    }
    keys[i] = key
    slots[i] = slot
  }

  /** The slot with the least key, or undefined when empty. */
  pop(): Slot | undefined {
    while (this.keys.length > 0) {
      const key = this.keys[0]
      const slot = this.slots[0]
      const lastKey = this.keys.pop() as Entry
      const lastSlot = this.slots.pop() as Slot
      if (this.keys.length > 0) this.siftDown(lastKey, lastSlot)
      if (this.queued.get(slot) !== key) continue
      this.queued.delete(slot)
      return slot
    }
    return undefined
  }

  private siftDown(key: Entry, slot: Slot): void {
    const keys = this.keys
    const slots = this.slots
    const n = keys.length
    let i = 0
    for (;;) {
      let child = 2 * i + 1
      if (child >= n) break
      if (child + 1 < n && compareEntries(keys[child + 1], keys[child]) < 0) child++
      if (compareEntries(keys[child], key) >= 0) break
      keys[i] = keys[child]
      slots[i] = slots[child]
      i = child
    }
    keys[i] = key
    slots[i] = slot
  }
}

/** The outcome of an operation before an arrival, to report only what the arrival changed. */
interface Before {
  out: number
  who: PrincipalId | undefined
}

export class BoardState {
  /** The board's name, as changes report it. */
  readonly board: string
  private readonly slots = new Map<string, Slot>()
  /**
   * Operations by actor, then by wall time: one entry, a few that share both, or (past
   * SHARED_WALL_LIST) a map of them by logical time and index.
   */
  private readonly byActor = new Map<string, Map<number, Entry | Entry[] | Map<string, Entry>>>()
  /** Principals and other repeated strings, one copy each. */
  private readonly strings = new Map<string, string>()
  /** The operation that sorts last of all seen. */
  private latest: Entry | undefined = undefined
  /** Existing item ids in order, rebuilt when an item appears or vanishes. */
  private sorted: string[] | undefined = undefined
  /** Set by evaluate for an already-claimed refusal: who holds the item. */
  private winner: PrincipalId | undefined = undefined
  /** While refolding: the outcomes, before this arrival, of the operations it changed. */
  private changed: Map<Entry, Before> | undefined = undefined
  /** Operations folded. */
  private count = 0

  constructor(board: string) {
    this.board = board
  }

  /** Operations folded (applied and refused). */
  get opCount(): number {
    return this.count
  }

  /** Items that exist and are not deleted. */
  get liveItems(): number {
    let n = 0
    for (const slot of this.slots.values()) if (slot.item !== undefined && !slot.item.deleted) n++
    return n
  }

  /**
   * Takes operations in any order (duplicates, by stamp, ignored: the first body kept) and returns
   * what they changed, in fold order.
   */
  add(ops: readonly StampedOp[]): BoardChange[] {
    const fresh: Entry[] = []
    for (const op of ops) {
      if (this.find(op.hlc, op.actor, op.index) !== undefined) continue
      const entry = new Entry(op.hlc, this.intern(op.actor) as PrincipalId, op.index, op.body)
      this.remember(entry)
      fresh.push(entry)
    }
    if (fresh.length === 0) return []
    if (fresh.length > 1) fresh.sort(compareEntries)
    const changes: BoardChange[] = []

    // the ones that sort before something already folded are refolded with their items; the
    // rest (all after everything) are applied in order afterwards, each reported once
    const latest = this.latest
    let late = 0
    while (late < fresh.length && latest !== undefined && compareEntries(fresh[late], latest) < 0) late++
    if (late > 0) {
      const changed = new Map<Entry, Before>()
      this.changed = changed
      const queue = new RefoldQueue()
      for (let i = 0; i < late; i++) {
        const entry = fresh[i]
        changed.set(entry, { out: UNFOLDED, who: undefined })
        const slot = this.slot(entry.body.item)
        insertSorted(slot.ops, entry)
        this.watch(entry)
        queue.push(slot, entry)
      }
      this.refold(queue)
      this.changed = undefined
      const touched = [...changed].sort((a, b) => compareEntries(a[0], b[0]))
      for (const [entry, before] of touched) if (outcomeDiffers(before, entry)) changes.push(this.change(entry))
    }
    for (let i = late; i < fresh.length; i++) {
      const entry = fresh[i]
      const slot = this.slot(entry.body.item)
      slot.ops.push(entry)
      this.watch(entry)
      this.step(slot, entry)
      if (entry.body.op === 'create' && entry.out === SUBMITTED) this.sorted = undefined
      changes.push(this.change(entry))
    }
    const last = fresh[fresh.length - 1]
    if (latest === undefined || compareEntries(last, latest) > 0) this.latest = last
    return changes
  }

  /** The item `id` as folded, deleted ones included (`deleted: true`); undefined if it does not exist. */
  item(id: string): WorkItem | undefined {
    const slot = this.slots.get(id)
    return slot?.item === undefined ? undefined : this.materialize(slot)
  }

  /**
   * The items someone works on (working, input-required, auth-required) with their assignee,
   * without building each item: what heartbeats and the assignee watch look at often.
   */
  *inProgress(): IterableIterator<{ id: string; assignee: PrincipalId }> {
    for (const slot of this.slots.values()) {
      const item = slot.item
      if (item === undefined || item.deleted || item.assignee === undefined) continue
      if (item.status >= WORKING && item.status < COMPLETED) yield { id: slot.id, assignee: item.assignee }
    }
  }

  /** Every item, in no particular order; deleted ones only with `{ deleted: true }`. */
  *items(options: { deleted?: boolean } = {}): IterableIterator<WorkItem> {
    for (const slot of this.slots.values()) {
      if (slot.item === undefined || (slot.item.deleted && options.deleted !== true)) continue
      yield this.materialize(slot)
    }
  }

  /**
   * Items in id order (ids compare as strings, by UTF-16 code units: ASCII order), starting after
   * `after`; deleted ones too (check `deleted`). Lazy: a caller that stops early pays for what it took.
   */
  *sortedItems(after?: string): IterableIterator<WorkItem> {
    if (this.sorted === undefined) {
      const ids: string[] = []
      for (const slot of this.slots.values()) if (slot.item !== undefined) ids.push(slot.id)
      this.sorted = ids.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    }
    const ids = this.sorted
    let lo = 0
    if (after !== undefined) {
      let hi = ids.length
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (ids[mid] <= after) lo = mid + 1
        else hi = mid
      }
    }
    for (let i = lo; i < ids.length; i++) {
      // the list as it was when iteration began: an item that vanished since is skipped
      const slot = this.slots.get(ids[i])
      if (slot?.item !== undefined) yield this.materialize(slot)
    }
  }

  /** What became of the operation at `stamp`, or undefined if the fold has not seen it. */
  outcome(stamp: OpStamp): OpOutcome | undefined {
    const entry = this.find(stamp.hlc, stamp.actor, stamp.index)
    if (entry === undefined || entry.out === UNFOLDED) return undefined
    if (entry.out < REFUSED) return { accepted: true }
    const outcome: OpOutcome = { accepted: false, reason: REASONS[entry.out - REFUSED] }
    if (entry.who !== undefined) outcome.winner = entry.who
    return outcome
  }

  /**
   * Whether `op` by `actor` would be applied if it were folded now, after every operation seen:
   * returns if so, else throws the refusal's named error (errors.ts, `refusalError`).
   */
  check(op: WorkOp, actor: PrincipalId): void {
    const slot = this.slots.get(op.item)
    const code = this.evaluate(slot, op, actor, undefined)
    if (code === ACCEPT) return
    throw refusalError(REASONS[code], {
      item: op.item,
      op: op.op,
      status: slot?.item === undefined ? undefined : ITEM_STATUSES[slot.item.status],
      winner: this.winner
    })
  }

  // ---------------------------------------------------------------- folding

  /** The operation folded at this stamp, if any. */
  private find(hlc: HlcTimestamp, actor: string, index: number): Entry | undefined {
    const found = this.byActor.get(actor)?.get(hlc[0])
    if (found === undefined) return undefined
    if (found instanceof Entry) return found.hlc[1] === hlc[1] && found.index === index ? found : undefined
    if (Array.isArray(found)) return found.find(e => e.hlc[1] === hlc[1] && e.index === index)
    return found.get(`${hlc[1]}.${index}`)
  }

  private remember(entry: Entry): void {
    let byWall = this.byActor.get(entry.actor)
    if (byWall === undefined) {
      byWall = new Map()
      this.byActor.set(entry.actor, byWall)
    }
    const wall = entry.hlc[0]
    const known = byWall.get(wall)
    if (known === undefined) byWall.set(wall, entry)
    else if (known instanceof Entry) byWall.set(wall, [known, entry])
    else if (!Array.isArray(known)) known.set(`${entry.hlc[1]}.${entry.index}`, entry)
    else if (known.length < SHARED_WALL_LIST) known.push(entry)
    else {
      // many operations of one actor in one millisecond (a large event): index them
      const map = new Map<string, Entry>()
      for (const e of [...known, entry]) map.set(`${e.hlc[1]}.${e.index}`, e)
      byWall.set(wall, map)
    }
    this.count++
  }

  private intern(s: string): string {
    const known = this.strings.get(s)
    if (known !== undefined) return known
    this.strings.set(s, s)
    return s
  }

  private slot(id: string): Slot {
    let slot = this.slots.get(id)
    if (slot === undefined) {
      slot = new Slot(id)
      this.slots.set(id, slot)
    }
    return slot
  }

  /** A create makes its item a watcher of its parent and of each dependency (applied or not: it may be later). */
  private watch(entry: Entry): void {
    const body = entry.body
    if (body.op !== 'create') return
    if (body.parent !== undefined) addWatcher(this.slot(body.parent), body.item)
    if (body.deps !== undefined) for (const dep of body.deps) addWatcher(this.slot(dep), body.item)
  }

  /**
   * Refolds queued items in the order of the earliest position at which something they read
   * changed; an item whose timeline changes queues the items that read it after that position.
   */
  private refold(queue: RefoldQueue): void {
    for (let slot = queue.pop(); slot !== undefined; slot = queue.pop()) {
      const oldTimeline = slot.timeline
      const existed = slot.item !== undefined
      slot.item = undefined
      slot.timeline = []
      for (const entry of slot.ops) this.step(slot, entry)
      if ((slot.item !== undefined) !== existed) this.sorted = undefined
      const from = divergence(oldTimeline, slot.timeline)
      if (from === undefined || slot.watchers === undefined) continue
      for (const id of slot.watchers) {
        const watcher = this.slots.get(id)
        if (watcher === undefined || watcher.ops.length === 0) continue
        // only operations after the change read something different
        if (compareEntries(watcher.ops[watcher.ops.length - 1], from) > 0) queue.push(watcher, from)
      }
    }
  }

  /** Folds one operation at its position: records its outcome, and applies it if accepted. */
  private step(slot: Slot, entry: Entry): void {
    const beforeOut = entry.out
    const beforeWho = entry.who
    const code = this.evaluate(slot, entry.body, entry.actor, entry)
    if (code === ACCEPT) {
      this.apply(slot, entry)
    } else {
      entry.out = REFUSED + code
      entry.who = code === R_ALREADY_CLAIMED ? this.winner : undefined
    }
    const changed = this.changed
    if (changed !== undefined && (entry.out !== beforeOut || entry.who !== beforeWho) && !changed.has(entry)) {
      changed.set(entry, { out: beforeOut, who: beforeWho })
    }
  }

  /**
   * The refusal code of `body` by `actor` at position `at` (undefined: after everything), or ACCEPT.
   * Reads the item's own state as folded so far and other items' timelines before `at`.
   */
  private evaluate(slot: Slot | undefined, body: WorkOp, actor: PrincipalId, at: Entry | undefined): number {
    this.winner = undefined
    const item = slot?.item
    if (body.op === 'create') {
      if (item !== undefined) return R_EXISTS
      if (body.parent !== undefined) {
        const parent = this.codeAt(body.parent, at)
        if (parent < 0 || (parent & DELETED) !== 0) return R_UNKNOWN_PARENT
        const parentPath = (this.slots.get(body.parent) as Slot).item?.path ?? ''
        if (depthOf(parentPath) >= MAX_PATH_DEPTH) return R_TOO_DEEP
        if (body.path !== `${parentPath}/${body.item}`) return R_BAD_SCOPE
      } else if (body.path !== body.item) {
        return R_BAD_SCOPE
      }
      if (body.deps !== undefined) {
        for (const dep of body.deps) {
          const code = this.codeAt(dep, at)
          if (code < 0 || (code & DELETED) !== 0) return R_UNKNOWN_DEPENDENCY
        }
      }
      return ACCEPT
    }
    if (item === undefined) return R_UNKNOWN_ITEM
    if (body.kind !== item.kind || body.path !== item.path) return R_BAD_SCOPE
    if (item.deleted) return R_DELETED
    const status = item.status
    if (status >= COMPLETED) return body.op === 'delete' ? ACCEPT : R_TERMINAL
    switch (body.op) {
      case 'update':
      case 'assign':
      case 'cancel':
        return ACCEPT
      case 'delete':
        return status === WORKING ? R_BAD_TRANSITION : ACCEPT
      case 'claim':
        if (item.assignee !== undefined && item.assignee !== actor) {
          this.winner = item.assignee
          return R_ALREADY_CLAIMED
        }
        if (status !== SUBMITTED) return R_BAD_TRANSITION
        for (const dep of item.deps) if ((this.codeAt(dep, at) & STATUS_MASK) !== COMPLETED) return R_NOT_READY
        return ACCEPT
      default:
        // release, progress, complete, fail, handoff: the assignee, while it holds the item
        if (item.assignee !== actor) return R_NOT_ASSIGNEE
        if (status === SUBMITTED) return R_BAD_TRANSITION
        return ACCEPT
    }
  }

  /** Applies an accepted operation to its item. */
  private apply(slot: Slot, entry: Entry): void {
    const body = entry.body
    if (body.op === 'create') {
      const assignee = body.assignee === undefined ? undefined : (this.intern(body.assignee) as PrincipalId)
      const item = new ItemRecord(entry, assignee)
      slot.item = item
      slot.timeline.push(entry, SUBMITTED)
      entry.out = SUBMITTED
      entry.who = assignee
      return
    }
    const item = slot.item as ItemRecord
    const status = item.status
    const deleted = item.deleted
    switch (body.op) {
      case 'update':
        if (body.title !== undefined) item.title = body.title
        if (body.description !== undefined) item.description = body.description
        if (body.priority !== undefined) item.priority = body.priority
        if (body.skills !== undefined) item.skills = body.skills
        break
      case 'delete':
        item.deleted = true
        break
      case 'assign': {
        const assignee = body.assignee === null ? undefined : (this.intern(body.assignee) as PrincipalId)
        if (assignee !== item.assignee) {
          item.assignee = assignee
          item.handoff = undefined
        }
        if (assignee === undefined && status !== SUBMITTED) {
          item.status = SUBMITTED
          item.progress = undefined
        }
        break
      }
      case 'claim':
        item.status = WORKING
        item.assignee = entry.actor
        item.progress = undefined
        break
      case 'release':
        item.status = SUBMITTED
        item.assignee = undefined
        item.handoff = undefined
        item.progress = undefined
        break
      case 'progress':
        item.progress = entry
        if (body.status !== undefined) item.status = STATUS_CODE[body.status]
        break
      case 'complete':
        item.status = COMPLETED
        item.end = entry
        break
      case 'fail':
        item.status = body.rejected === true ? REJECTED : FAILED
        item.end = entry
        break
      case 'cancel':
        item.status = CANCELED
        item.end = entry
        break
      case 'handoff':
        item.assignee = this.intern(body.to) as PrincipalId
        item.status = WORKING
        item.handoff = entry
        break
    }
    item.last = entry
    if (item.status !== status || item.deleted !== deleted) {
      slot.timeline.push(entry, item.status | (item.deleted ? DELETED : 0))
    }
    entry.out = item.status
    entry.who = item.assignee
  }

  /** The timeline code of item `id` just before `at` (undefined: now): status | DELETED, or -1 if it did not exist. */
  private codeAt(id: string, at: Entry | undefined): number {
    const timeline = this.slots.get(id)?.timeline
    if (timeline === undefined || timeline.length === 0) return -1
    const n = timeline.length >> 1
    // the common case: the last change is before `at`
    if (at === undefined || compareEntries(timeline[2 * (n - 1)] as Entry, at) < 0) return timeline[2 * n - 1] as number
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (compareEntries(timeline[2 * mid] as Entry, at) < 0) lo = mid + 1
      else hi = mid
    }
    // lo: the first change not before `at`
    return lo === 0 ? -1 : (timeline[2 * lo - 1] as number)
  }

  // ---------------------------------------------------------------- reading

  private change(entry: Entry): BoardChange {
    const stamp: OpStamp = { hlc: entry.hlc, actor: entry.actor, index: entry.index }
    const base = { board: this.board, item: entry.body.item, stamp, op: entry.body.op }
    if (entry.out < REFUSED) return { type: 'applied', ...base, status: ITEM_STATUSES[entry.out] }
    const reason = REASONS[entry.out - REFUSED]
    return entry.who === undefined
      ? { type: 'refused', ...base, reason }
      : { type: 'refused', ...base, reason, winner: entry.who }
  }

  private materialize(slot: Slot): WorkItem {
    const item = slot.item as ItemRecord
    const create = item.create.body as CreateOp
    const out: WorkItem = {
      id: slot.id,
      path: item.path,
      title: item.title,
      kind: item.kind,
      status: ITEM_STATUSES[item.status],
      skills: [...item.skills],
      deps: [...item.deps],
      ready: item.deps.every(dep => (this.codeAt(dep, undefined) & STATUS_MASK) === COMPLETED),
      priority: item.priority,
      artifacts: [],
      created: item.create.hlc,
      updated: item.last.hlc,
      createdBy: item.create.actor,
      deleted: item.deleted,
      history: history(slot)
    }
    if (create.parent !== undefined) out.parent = create.parent
    if (item.description !== undefined) out.description = item.description
    if (item.assignee !== undefined) out.assignee = item.assignee
    if (item.progress !== undefined) {
      const progress = item.progress.body as Extract<WorkOp, { op: 'progress' }>
      out.progress =
        progress.message === undefined
          ? { percent: progress.percent }
          : { percent: progress.percent, message: progress.message }
    }
    const end = item.end?.body
    if (end?.op === 'complete') {
      if (end.result !== undefined) out.result = end.result
      if (end.artifacts !== undefined) out.artifacts = end.artifacts.map((a: Artifact) => ({ ...a }))
    } else if (end?.op === 'fail') {
      out.error = end.error
    }
    if (item.handoff !== undefined) {
      const handoff = item.handoff.body as Extract<WorkOp, { op: 'handoff' }>
      out.handoff =
        handoff.state === undefined ? { from: item.handoff.actor } : { from: item.handoff.actor, state: handoff.state }
    }
    return out
  }
}

/** Whether an operation's outcome now differs from `before` (a winner counts only for refusals). */
function outcomeDiffers(before: Before, entry: Entry): boolean {
  if (before.out !== entry.out) return true
  return entry.out >= REFUSED && before.who !== entry.who
}

/** The first position at which two timelines differ, or undefined if they are the same. */
function divergence(a: Array<Entry | number>, b: Array<Entry | number>): Entry | undefined {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i += 2) {
    if (a[i] !== b[i]) return compareEntries(a[i] as Entry, b[i] as Entry) < 0 ? (a[i] as Entry) : (b[i] as Entry)
    if (a[i + 1] !== b[i + 1]) return a[i] as Entry
  }
  if (a.length > n) return a[n] as Entry
  if (b.length > n) return b[n] as Entry
  return undefined
}

function insertSorted(ops: Entry[], entry: Entry): void {
  let lo = 0
  let hi = ops.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (compareEntries(ops[mid], entry) < 0) lo = mid + 1
    else hi = mid
  }
  ops.splice(lo, 0, entry)
}

function addWatcher(slot: Slot, id: string): void {
  if (slot.watchers === undefined) slot.watchers = [id]
  else if (slot.watchers[slot.watchers.length - 1] !== id) slot.watchers.push(id)
}

/** Levels of a path: its ids. */
function depthOf(path: string): number {
  let n = 1
  for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) === 47) n++
  return n
}

/** The accepted operations on an item: the first, then the last HISTORY_TAIL. */
function history(slot: Slot): HistoryEntry[] {
  const accepted: Entry[] = []
  for (const entry of slot.ops) if (entry.out >= 0 && entry.out < REFUSED) accepted.push(entry)
  const shown = accepted.length <= HISTORY_TAIL + 1 ? accepted : [accepted[0], ...accepted.slice(-HISTORY_TAIL)]
  return shown.map(historyEntry)
}

function historyEntry(entry: Entry): HistoryEntry {
  const body = entry.body
  const out: HistoryEntry = {
    hlc: entry.hlc,
    actor: entry.actor,
    op: body.op as WorkAction,
    status: ITEM_STATUSES[entry.out]
  }
  if (entry.who !== undefined) out.assignee = entry.who
  const message =
    body.op === 'progress'
      ? body.message
      : body.op === 'release' || body.op === 'cancel'
        ? body.reason
        : body.op === 'fail'
          ? body.error
          : undefined
  if (message !== undefined) out.message = message
  return out
}
