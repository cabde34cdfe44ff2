/**
 * The operation log (op-log): a grow-only set of entries `{ hlc, actor, index, body }`, read in one
 * order every replica agrees on — HLC, then actor, then index. An append adds the entries of one
 * event: every body stamped with the event's HLC and author and its position in the event, so an
 * entry's identity (hlc, actor, index) is its author's and no one else can write under it. It is
 * what an application that folds its own operations (a work board, an event journal) replicates:
 * the log settles delivery, this type settles the order, the application decides what each entry
 * means at its position.
 *
 * A replica also keeps the order it received entries in (`arrival`, append-only), so a consumer
 * that folds incrementally reads only what is new since its last position. The array is replaced,
 * never rewritten, when an entry is replaced (below); the log replaces the whole state when it
 * rebuilds it. Either way the consumer sees another array and folds again from `value`.
 *
 * Two entries under one identity with different bodies can only come from an author that signed
 * two events at one HLC (equivocation). Every replica keeps the body with the greater dag-cbor
 * bytes, whatever order they came in, so joins stay commutative; `checkDelta` does not refuse
 * the second one, since what a replica saw first would then decide which one it keeps, forever.
 *
 * A delta is a state holding the entries of one event (D = S).
 *
 * Encoding (state and delta): `[{ hlc: [wall, logical], actor, bodies: [body, …] }, …]`, one map
 * per (hlc, actor) — per event — sorted by hlc then actor; entry `index` is the body's position
 * in `bodies`, so an event's indices are always 0..n-1. Bodies are dag-cbor data model values.
 *
 * @example
 * const s = opLog.empty()
 * const delta = opLog.append(s, { replica: 'alice', hlc: clock.tick() }, [{ op: 'claim', item: 't1' }])
 * opLog.merge(s, delta)
 * opLog.value(s)       // [{ hlc, actor: 'alice', index: 0, body: { op: 'claim', item: 't1' } }]
 * s.arrival            // the same entries, in the order this replica received them
 */
import { compareHlc } from '../clock/hlc.ts'
import {
  checkMutationContext,
  checkStamp,
  compareStrings,
  compareValues,
  dataEquals,
  deltaError,
  encodeValue,
  expectArray,
  expectHlc,
  expectMap,
  fail,
  MAX_VALUE_BYTES,
  resolveLimits,
  storableValue,
  valueError
} from './codec.ts'
import { isText } from '../../protocols/wire.ts'
import type { HlcTimestamp } from '../clock/hlc.ts'
import type { CrdtLimits, CrdtType, MutationContext } from './types.ts'

/** Longest actor of an entry, in UTF-16 code units. */
export const MAX_ACTOR_LENGTH = 128

/** One entry: a body stamped with its event's HLC, author and position in the event. */
export interface OpLogEntry {
  readonly hlc: HlcTimestamp
  readonly actor: string
  readonly index: number
  readonly body: unknown
}

/** The one order of entries: HLC, then actor (as strings compare), then index. */
export function compareOpLogEntries(a: OpLogEntry, b: OpLogEntry): number {
  return compareHlc(a.hlc, b.hlc) || compareStrings(a.actor, b.actor) || a.index - b.index
}

/** The key of an event's entries: its HLC and author (no other pair spells the same key). */
function groupKey(hlc: HlcTimestamp, actor: string): string {
  return `${hlc[0]}.${hlc[1]} ${actor}`
}

export class OpLogState {
  /** Entries by (hlc, actor): the entries of one event, at their indices. */
  readonly groups = new Map<string, OpLogEntry[]>()
  /**
   * The entries in the order this replica received them. Append-only while it is the same array:
   * replacing an entry (equivocation, see the module header) installs a new array instead.
   */
  arrival: OpLogEntry[] = []
  /** `entries()`, kept sorted as entries arrive; undefined after many out-of-order ones, until asked for. */
  private sorted?: OpLogEntry[]
  /** Whether `sorted` was handed out by `entries()`: it is copied before anything but an append changes it. */
  private shared = false
  /** Entries spliced into `sorted` since it was last sorted whole. */
  private spliced = 0

  get size(): number {
    return this.arrival.length
  }

  /** The entries in arrival order (for a delta: its event's entries, by index). */
  [Symbol.iterator](): Iterator<OpLogEntry> {
    return this.arrival[Symbol.iterator]()
  }

  /** The entry at (hlc, actor, index), if this state holds it. */
  get(hlc: HlcTimestamp, actor: string, index: number): OpLogEntry | undefined {
    return this.groups.get(groupKey(hlc, actor))?.[index]
  }

  /**
   * The entries in the one order. Later merges may append entries that sort last to the returned
   * array, and never reorder or rewrite it: an entry that sorts before others makes a new array.
   * Copy it to keep it as it is now.
   */
  entries(): readonly OpLogEntry[] {
    if (this.sorted == null) {
      this.sorted = [...this.arrival].sort(compareOpLogEntries)
      this.spliced = 0
    }
    this.shared = true
    return this.sorted
  }

  /** Adds an entry this state does not hold, or replaces one whose body it loses to (same identity). */
  add(entry: OpLogEntry): void {
    const key = groupKey(entry.hlc, entry.actor)
    let group = this.groups.get(key)
    if (group == null) {
      group = []
      this.groups.set(key, group)
    }
    const held = group[entry.index]
    if (held == null) {
      group[entry.index] = entry
      this.arrival.push(entry)
      this.insertSorted(entry)
      return
    }
    if (held.body === entry.body || compareValues(entry.body, held.body) <= 0) return
    // equivocation: every replica keeps the greater body; consumers see new arrays and fold again
    group[entry.index] = entry
    this.arrival = this.arrival.map(e => (e === held ? entry : e))
    if (this.sorted != null) {
      const at = this.findSorted(held)
      this.ownSorted()[at] = entry
    }
  }

  private insertSorted(entry: OpLogEntry): void {
    const sorted = this.sorted
    if (sorted == null) return
    const n = sorted.length
    if (n === 0 || compareOpLogEntries(sorted[n - 1], entry) < 0) {
      sorted.push(entry)
      return
    }
    // out of order: a few are spliced in (a binary search and a move each); after many, the next
    // entries() sorts once instead
    if (this.spliced >= 64) {
      this.sorted = undefined
      return
    }
    this.spliced++
    this.ownSorted().splice(this.findSorted(entry), 0, entry)
  }

  /** The position of `entry` in `sorted` (or where it would go). */
  private findSorted(entry: OpLogEntry): number {
    const sorted = this.sorted as OpLogEntry[]
    let lo = 0
    let hi = sorted.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareOpLogEntries(sorted[mid], entry) < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  private ownSorted(): OpLogEntry[] {
    if (this.shared) {
      this.sorted = [...(this.sorted as OpLogEntry[])]
      this.shared = false
    }
    return this.sorted as OpLogEntry[]
  }
}

/** The first entry an event's group holds (index 0 but in a state made by hand). */
function firstOf(group: OpLogEntry[]): OpLogEntry {
  return group.find(e => e != null) as OpLogEntry
}

/** A delta: the entries of one event. */
export type OpLogDelta = OpLogState

export interface OpLogType extends CrdtType<OpLogState, OpLogDelta, readonly OpLogEntry[]> {
  /**
   * The delta of one event appending `bodies`: entry i is `{ hlc: ctx.hlc, actor: ctx.replica,
   * index: i, body: bodies[i] }` (a private copy). Throws InvalidValueError for a body outside the
   * dag-cbor data model or larger than 64 KiB encoded.
   */
  append(state: OpLogState, ctx: MutationContext, bodies: readonly unknown[]): OpLogDelta
}

/** The entries of deltas of the op-log (what a log's authorize callback is handed as `deltas`), in order. */
export function opLogEntries(deltas: readonly unknown[]): OpLogEntry[] {
  const out: OpLogEntry[] = []
  for (const d of deltas) {
    if (!(d instanceof OpLogState)) throw new TypeError('not an op-log delta')
    out.push(...[...d.arrival].sort(compareOpLogEntries))
  }
  return out
}

function decode(data: unknown, limits: CrdtLimits | undefined): OpLogState {
  const { maxEntries, maxValueBytes } = resolveLimits(limits)
  const state = new OpLogState()
  let count = 0
  expectArray(data, 'oplog', maxEntries).forEach((g, i) => {
    const at = `oplog[${i}]`
    const m = expectMap(g, at, ['actor', 'bodies', 'hlc'])
    const hlc = expectHlc(m.hlc, `${at}.hlc`)
    if (!isText(m.actor, MAX_ACTOR_LENGTH)) fail(`${at}.actor`, `is not a string of 1-${MAX_ACTOR_LENGTH} characters`)
    const actor = m.actor
    if (state.groups.has(groupKey(hlc, actor))) fail(at, 'repeats an hlc and actor')
    const bodies = expectArray(m.bodies, `${at}.bodies`, maxEntries, 1)
    count += bodies.length
    if (count > maxEntries) fail('oplog', `has more than ${maxEntries} entries`)
    bodies.forEach((body, index) => {
      // the decoded data is the decoder's own: measured and checked, not copied
      encodeValue(body, maxValueBytes, deltaError(`${at}.bodies[${index}]`))
      state.add({ hlc, actor, index, body })
    })
  })
  return state
}

function encode(state: OpLogState): unknown[] {
  return [...state.groups.values()]
    .map(group => ({ first: firstOf(group), group }))
    .sort((a, b) => compareOpLogEntries(a.first, b.first))
    .map(({ first, group }) => ({
      hlc: [first.hlc[0], first.hlc[1]],
      actor: first.actor,
      bodies: group.filter(e => e != null).map(e => e.body)
    }))
}

function mergeInto(into: OpLogState, delta: OpLogState): OpLogState {
  if (into === delta) return into
  for (const entry of [...delta.arrival]) into.add(entry)
  return into
}

export const opLog: OpLogType = {
  name: 'op-log',
  empty: () => new OpLogState(),
  merge: mergeInto,
  join: (a, b) => mergeInto(mergeInto(new OpLogState(), a), b),
  toDelta: state => state,
  clone: state => mergeInto(new OpLogState(), state),
  equals: (a, b) => {
    if (a.size !== b.size) return false
    for (const e of a.arrival) {
      const other = b.get(e.hlc, e.actor, e.index)
      if (other == null || !dataEquals(e.body, other.body)) return false
    }
    return true
  },
  value: state => state.entries(),
  encodeState: encode,
  decodeState: decode,
  encodeDelta: encode,
  decodeDelta: decode,
  checkDelta: (_state, delta, ctx) => {
    for (const [key, group] of delta.groups) {
      const { actor, hlc } = firstOf(group)
      if (actor !== ctx.replica) fail(`oplog ${key}`, `is written as ${actor}, not as its author ${ctx.replica}`)
      checkStamp(hlc, ctx, `oplog ${key}.hlc`)
      // entries 0..n-1 of one event, no gaps (decoded deltas have none; a delta made in memory might)
      for (let i = 0; i < group.length; i++) {
        if (group[i]?.index !== i) fail(`oplog ${key}`, `has no entry at index ${i} of ${group.length}`)
      }
    }
  },

  append(_state, ctx, bodies) {
    checkMutationContext(ctx)
    if (!Array.isArray(bodies)) throw new TypeError('bodies must be an array')
    const hlc: HlcTimestamp = [ctx.hlc[0], ctx.hlc[1]]
    const delta = new OpLogState()
    bodies.forEach((body, index) => {
      const stored = storableValue(body, MAX_VALUE_BYTES, valueError(`bodies[${index}]`)).value
      delta.add({ hlc, actor: ctx.replica, index, body: stored })
    })
    return delta
  }
}
