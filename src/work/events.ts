/**
 * The event journal: every change to boards, agents, membership, the swarm and the fleet that this
 * node has seen, as one **feed** — a single sequence, the same for every reader of this node, in
 * HLC order (ties by source, subject, type, id). Readers page through it (`since`) or follow it
 * (`subscribe`: what is after a point, then live, with no gap and no duplicate where the replay
 * ends), and resume exactly from a `cursor`: a place in the feed.
 *
 * **Settling.** Entries do not reach the feed as they arrive: a remote board operation stamped
 * before an entry already here (two nodes writing at once) would otherwise come after it. An entry
 * waits until `settle` ms (default 500) have passed since its HLC time by this node's clock — since
 * its arrival if it is stamped ahead of that clock — and then joins with every entry pending before
 * it, in order. So entries that arrive within `settle` ms of their stamp (network delay plus clock
 * skew) join in HLC order, and every reader sees at most `settle` ms of added delay. An entry that
 * arrives later than that, after the feed has passed its HLC, is not dropped and not slipped into
 * the middle (a reader past that place would never see it): it joins at the end marked `late: true`
 * (late means out of HLC order; entries at one HLC that join apart keep the order they joined in).
 * With `settle: 0` entries join as they arrive (late ones marked).
 *
 * **Reading.** A cursor resumes after its place: every entry that joined after it, late ones
 * included, each once. `since(hlc)` reads the entries with an HLC after `hlc` — from the first
 * in-order entry past it, leaving out late entries at or before it; a read that starts at an HLC
 * (a page, a subscription) leaves those out throughout, while a cursor taken from it resumes by
 * place alone.
 *
 * **Bounds.** The feed keeps `maxEntries` (the oldest go); a point before what is kept throws
 * EventsTruncatedError, naming the HLC to resume from (`since`); an entry at or before one already
 * dropped is not kept (it would be older than the journal holds, and may be one it held before).
 * At most `maxPending` wait to settle (past it the oldest join at once). Entries with the same `id`
 * are one entry. The journal lives in memory and starts anew with each run of the node: a cursor
 * names the run that issued it (`run`) and a cursor of another run is refused with
 * EventCursorExpiredError, which carries the HLC to resume from. `close()` lets what is pending join
 * at once and stops the timer (entries recorded afterwards join as they come).
 *
 * @example
 * const journal = new EventJournal()          // { settle: 500 }
 * const stopWatching = journal.watchMembership(node.membership, clock)
 * journal.record({ hlc: clock.tick(), source: 'board', type: 'claim', subject: 'release/t1', data: { actor }, id })
 * const page = journal.since([1767000000000, 0], { limit: 100 }) // { events, cursor, more }
 * const stop = journal.subscribe(page.cursor, e => send(e, journal.cursorOf(e)), { signal })
 * journal.close()
 */
import { base64url } from 'multiformats/bases/base64'
import { compareHlc, isHlc } from '../clock/hlc.ts'
import { RecentMap } from '../recent-map.ts'
import {
  EventCursorExpiredError,
  EventsTruncatedError,
  InvalidEventError,
  InvalidEventQueryError
} from './fleet-errors.ts'
import type { HlcTimestamp } from '../clock/hlc.ts'
import type { Hlc } from '../clock/hlc.ts'
import type { AgentInfo, Agents } from '../actor/agents.ts'
import type { Membership, MemberView } from '../membership/service.ts'

export const EVENT_SOURCES = ['agent', 'board', 'fleet', 'membership', 'swarm'] as const
/** What an event is about: a board's items, a hosted agent, the member view, a swarm message, fleet heartbeats. */
export type EventSource = (typeof EVENT_SOURCES)[number]

/** Default and most entries kept; default and most entries of one page. */
export const DEFAULT_MAX_EVENTS = 100_000
export const DEFAULT_PAGE = 100
export const MAX_PAGE = 1000
/** Default ms an entry waits after its HLC time before it joins the feed, and the most allowed. */
export const DEFAULT_SETTLE = 500
export const MAX_SETTLE = 60_000
/** Default most entries waiting to settle. */
export const DEFAULT_MAX_PENDING = 10_000
/** Longest type, subject and id (characters). */
export const MAX_EVENT_TYPE = 64
export const MAX_EVENT_SUBJECT = 512
export const MAX_EVENT_ID = 256

/** An event as given to `record`. */
export interface EventInput {
  hlc: HlcTimestamp
  source: EventSource
  /** What happened, e.g. `claim`, `member:dead`, `agent:start`. */
  type: string
  /** What it happened to: a board item (`<board>/<item>`), a principal, a topic. */
  subject: string
  data?: unknown
  /** Entries with the same id are one entry: the second is not kept (e.g. the CID of a board event and the op's index). */
  id?: string
}

/** An event as the journal keeps it, once it has joined the feed. */
export interface JournalEvent {
  hlc: HlcTimestamp
  source: EventSource
  type: string
  subject: string
  data: unknown
  id?: string
  /** It joined the feed after an entry with a later HLC (it arrived more than `settle` ms after its stamp). */
  late?: true
  /** This journal's arrival number (local: it orders nothing but identical keys). */
  seq: number
  /** Its place in this run's feed, from 0 (what `cursorOf` names). */
  index: number
}

export interface EventJournalInit {
  /** Names this run in the cursors it issues; default 8 random bytes (base64url). */
  run?: string
  /** Most entries kept; the oldest go first. Default 100,000. */
  maxEntries?: number
  /** ms an entry waits after its HLC time (or its arrival, if stamped ahead) before it joins the feed; 0 to 60,000, default 500. */
  settle?: number
  /** Most entries waiting to settle; past it the oldest join at once. Default 10,000. */
  maxPending?: number
  /** This node's clock in ms, for settling; default Date.now (tests inject their own). */
  now?: () => number
  /** Called with what a subscriber's listener threw (the listener stays subscribed). */
  onListenerError?: (err: unknown) => void
}

export interface SinceOptions {
  /** At most this many (default 100, at most 1000). */
  limit?: number
  /** A cursor from an earlier page: continue strictly after it (it wins over the hlc). */
  after?: string
}

export interface EventPage {
  events: JournalEvent[]
  /** Where the page ends: pass it as `after` (or to `subscribe`) to continue. Absent only when the page is empty and no point was given. */
  cursor?: string
  /** Whether more of the feed follows (the page was cut at its limit). */
  more: boolean
}

export interface WatchOptions {
  signal?: AbortSignal
}

/** Where an entry sorts: hlc, then source, subject, type, id, and arrival for identical keys. */
interface Position {
  hlc: HlcTimestamp
  source: string
  subject: string
  type: string
  id: string
  seq: number
}

function compareKeys(a: Position, b: Position): number {
  const byHlc = compareHlc(a.hlc, b.hlc)
  if (byHlc !== 0) return byHlc
  if (a.source !== b.source) return a.source < b.source ? -1 : 1
  if (a.subject !== b.subject) return a.subject < b.subject ? -1 : 1
  if (a.type !== b.type) return a.type < b.type ? -1 : 1
  if (a.id !== b.id) return a.id < b.id ? -1 : 1
  return 0
}

const comparePositions = (a: Position, b: Position): number => compareKeys(a, b) || a.seq - b.seq

const positionOf = (e: JournalEvent): Position => ({
  hlc: e.hlc,
  source: e.source,
  subject: e.subject,
  type: e.type,
  id: e.id ?? '',
  seq: e.seq
})

const laterHlc = (a: HlcTimestamp, b: HlcTimestamp | undefined): HlcTimestamp =>
  b != null && compareHlc(b, a) > 0 ? b : a

/** Longest run name. */
export const MAX_RUN_LENGTH = 64

/** A cursor: after the first `count` entries of the feed of `run`; `hlc` is where to resume in another run. */
function encodeCursor(run: string, count: number, hlc: HlcTimestamp): string {
  return base64url.encode(new TextEncoder().encode(JSON.stringify([run, count, hlc[0], hlc[1]])))
}

/**
 * How many feed entries a cursor has read, if `run` issued it. A well-formed cursor of another run
 * — or of an earlier format, which named a position by its keys rather than a place in the feed —
 * throws EventCursorExpiredError with its HLC; anything else InvalidEventQueryError.
 */
function decodeCursor(cursor: string, run: string): number {
  const bad = (): never => {
    throw new InvalidEventQueryError('the cursor is not one this journal issued')
  }
  if (typeof cursor !== 'string' || cursor.length === 0 || cursor.length > 4096) bad()
  let parsed: unknown
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(base64url.decode(cursor)))
  } catch {
    return bad()
  }
  if (!Array.isArray(parsed)) return bad()
  const fields = parsed as unknown[]
  const isRun = (x: unknown): boolean => typeof x === 'string' && x.length > 0 && x.length <= MAX_RUN_LENGTH
  if (fields.length === 4) {
    const [issuer, count, wall, logical] = fields
    const hlc = [wall, logical]
    if (!isRun(issuer) || !isHlc(hlc) || !Number.isSafeInteger(count) || (count as number) < 0) return bad()
    if (issuer !== run) throw new EventCursorExpiredError([hlc[0], hlc[1]])
    return count as number
  }
  // the earlier formats: [run?, wall, logical, source, subject, type, id, seq] — always another run's
  if (fields.length !== 8 && fields.length !== 7) return bad()
  if (fields.length === 8 && !isRun(fields[0])) return bad()
  const [wall, logical, source, subject, type, id, seq] = fields.slice(fields.length - 7)
  const hlc = [wall, logical]
  if (!isHlc(hlc)) return bad()
  if (typeof source !== 'string' || typeof subject !== 'string' || typeof type !== 'string' || typeof id !== 'string')
    return bad()
  if (!Number.isSafeInteger(seq) || (seq as number) < 0) return bad()
  throw new EventCursorExpiredError([hlc[0], hlc[1]])
}

function randomRun(): string {
  return base64url.baseEncode(globalThis.crypto.getRandomValues(new Uint8Array(8)))
}

function checkInput(e: EventInput): void {
  if (e == null || typeof e !== 'object') throw new InvalidEventError('an event is an object')
  if (!isHlc(e.hlc)) throw new InvalidEventError('hlc must be [wall, logical] of non-negative integers')
  if (!(EVENT_SOURCES as readonly string[]).includes(e.source))
    throw new InvalidEventError(`source must be one of ${EVENT_SOURCES.join(', ')}`)
  if (typeof e.type !== 'string' || e.type.length === 0 || e.type.length > MAX_EVENT_TYPE)
    throw new InvalidEventError(`type is 1-${MAX_EVENT_TYPE} characters`)
  if (typeof e.subject !== 'string' || e.subject.length > MAX_EVENT_SUBJECT)
    throw new InvalidEventError(`subject is at most ${MAX_EVENT_SUBJECT} characters`)
  if (e.id !== undefined && (typeof e.id !== 'string' || e.id.length === 0 || e.id.length > MAX_EVENT_ID))
    throw new InvalidEventError(`id is 1-${MAX_EVENT_ID} characters`)
}

/** An entry waiting to settle. */
interface Pending {
  event: JournalEvent
  position: Position
  /** When it may join the feed (this node's ms). */
  due: number
}

/** Where a read starts: the feed index of its first entry, and the HLC it must be after, if it began at one. */
interface Start {
  index: number
  floor?: HlcTimestamp
}

interface Subscriber {
  floor?: HlcTimestamp
  listener: (event: JournalEvent) => void
  /** Entries that joined while its replay ran: handed over after it, in order. */
  held?: JournalEvent[]
}

function checkInteger(value: number, min: number, max: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < min || value > max)
    throw new InvalidEventQueryError(`${name} is an integer from ${min} to ${max}`)
  return value
}

export class EventJournal {
  readonly maxEntries: number
  readonly maxPending: number
  /** ms an entry waits after its HLC time before it joins the feed. */
  readonly settle: number
  /** Names this run of the journal in its cursors. */
  readonly run: string
  private readonly now: () => number
  private readonly onListenerError?: (err: unknown) => void
  /** The feed from `head` on: the entry at slot `head + k` has index `base + k` (earlier slots were dropped, compacted away in batches). */
  private feed: JournalEvent[] = []
  private head = 0
  private base = 0
  /** Indices of the feed's in-order (not late) entries, from `orderedHead` on: their HLCs never decrease. */
  private ordered: number[] = []
  private orderedHead = 0
  /** The greatest HLC in the feed: an entry that joins with an earlier one is late. */
  private highWater?: HlcTimestamp
  /** The greatest position dropped: nothing at or before it is kept any more. */
  private floor?: Position
  /** Entries waiting to settle, by position. */
  private pending: Pending[] = []
  private readonly ids = new Map<string, JournalEvent>()
  private nextSeq = 0
  private readonly subscribers = new Set<Subscriber>()
  /** Entries to join, and whether a join is running (a listener that records joins after it). */
  private joining: Pending[] = []
  private inJoin = false
  private timer?: ReturnType<typeof setTimeout>
  private timerAt = Infinity
  private closed = false
  /** Callers of `settled`, each waiting for the entries up to its arrival number to join. */
  private readonly waiters = new Set<{ seq: number; resolve: () => void }>()

  constructor(init: EventJournalInit = {}) {
    this.maxEntries = checkInteger(init.maxEntries ?? DEFAULT_MAX_EVENTS, 1, Number.MAX_SAFE_INTEGER, 'maxEntries')
    this.maxPending = checkInteger(init.maxPending ?? DEFAULT_MAX_PENDING, 1, Number.MAX_SAFE_INTEGER, 'maxPending')
    this.settle = checkInteger(init.settle ?? DEFAULT_SETTLE, 0, MAX_SETTLE, 'settle')
    const run = init.run ?? randomRun()
    if (typeof run !== 'string' || run.length === 0 || run.length > MAX_RUN_LENGTH)
      throw new InvalidEventQueryError(`run is 1-${MAX_RUN_LENGTH} characters`)
    this.run = run
    if (init.now !== undefined && typeof init.now !== 'function')
      throw new InvalidEventQueryError('now is a function giving ms')
    this.now = init.now ?? Date.now
    this.onListenerError = init.onListenerError
  }

  /** The cursor right after `event` (an entry of this journal's feed): what a reader that had it resumes from (an SSE id, say). */
  cursorOf(event: JournalEvent): string {
    if (!Number.isSafeInteger(event?.index) || event.index < 0)
      throw new InvalidEventQueryError('the event is not one of this journal')
    return encodeCursor(this.run, event.index + 1, event.hlc)
  }

  /** Entries kept in the feed. */
  get size(): number {
    return this.feed.length - this.head
  }

  /** Entries waiting to settle. */
  get pendingSize(): number {
    return this.pending.length
  }

  /** The hlc of the first entry kept in the feed. */
  oldest(): HlcTimestamp | undefined {
    return this.feed[this.head]?.hlc
  }

  /** The greatest hlc that has joined the feed (late entries are below it). */
  newest(): HlcTimestamp | undefined {
    return this.highWater
  }

  /**
   * Takes `input` in: it joins the feed once settled (at once with `settle: 0`), and is then handed
   * to every subscriber it is after the starting point of. Returns false (and keeps nothing) for an
   * id already kept or pending, or an entry at or before what was dropped to stay within maxEntries.
   * Throws InvalidEventError for a malformed entry.
   */
  record(input: EventInput): boolean {
    checkInput(input)
    if (input.id !== undefined && this.ids.has(input.id)) return false
    const event: JournalEvent = {
      hlc: [input.hlc[0], input.hlc[1]],
      source: input.source,
      type: input.type,
      subject: input.subject,
      data: input.data,
      seq: this.nextSeq,
      index: -1
    }
    if (input.id !== undefined) event.id = input.id
    const position = positionOf(event)
    // the floor is compared without the arrival number: an entry dropped and recorded again stays out
    if (this.floor != null && compareKeys(position, this.floor) <= 0) return false
    this.nextSeq++
    if (event.id !== undefined) this.ids.set(event.id, event)
    if (this.settle === 0 || this.closed) {
      this.join([{ event, position, due: 0 }])
      return true
    }
    const now = this.now()
    const entry: Pending = { event, position, due: Math.min(event.hlc[0], now) + this.settle }
    const last = this.pending[this.pending.length - 1]
    if (last == null || comparePositions(last.position, position) < 0) this.pending.push(entry)
    else this.pending.splice(this.pendingUpperBound(position), 0, entry)
    if (this.pending.length > this.maxPending) this.join(this.pending.splice(0, this.pending.length - this.maxPending))
    // past its time it joins at once; at its very time it waits for the timer (next turn), so what
    // arrives in the same turn with a lower HLC still joins with it, in order
    if (entry.due < now) this.settleDue()
    else if (entry.due < this.timerAt) this.schedule()
    return true
  }

  /**
   * Moves into the feed every pending entry whose time has come, with every entry pending before it
   * (in order), and sets the timer for the next. The timer calls it; so may a test with its own `now`.
   */
  settleDue(): void {
    const now = this.now()
    let last = -1
    for (let i = this.pending.length - 1; i >= 0; i--) {
      if (this.pending[i].due <= now) {
        last = i
        break
      }
    }
    if (last >= 0) this.join(this.pending.splice(0, last + 1))
    this.schedule()
  }

  /**
   * Resolves once every entry recorded before the call has joined the feed (at once if none waits):
   * what a reader that must see its own writes awaits before it reads. Rejects if `signal` aborts.
   */
  async settled(options: WatchOptions = {}): Promise<void> {
    options.signal?.throwIfAborted()
    if (this.pending.length === 0) return
    const seq = this.nextSeq - 1
    await new Promise<void>((resolve, reject) => {
      const waiter = { seq, resolve: () => done() }
      const onAbort = (): void => {
        this.waiters.delete(waiter)
        reject(options.signal?.reason)
      }
      const done = (): void => {
        options.signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      this.waiters.add(waiter)
      options.signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Lets every pending entry join the feed now and stops the timer; entries recorded afterwards join as they come. */
  close(): void {
    this.closed = true
    this.clearTimer()
    if (this.pending.length > 0) this.join(this.pending.splice(0))
  }

  /**
   * A page of the feed: after `options.after` (a cursor: every entry that joined after it), or the
   * entries with an HLC after `hlc` (all kept when absent), in feed order, at most `limit`. Throws
   * EventsTruncatedError if entries after that point were dropped, EventCursorExpiredError for a
   * cursor of another run, InvalidEventQueryError for a bad hlc, cursor or limit.
   */
  since(hlc?: HlcTimestamp, options: SinceOptions = {}): EventPage {
    const limit = options.limit ?? DEFAULT_PAGE
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE)
      throw new InvalidEventQueryError(`limit is 1-${MAX_PAGE}`)
    const start = this.startOf(options.after ?? hlc)
    const end = this.base + this.size
    const events: JournalEvent[] = []
    let index = start.index
    for (; index < end && events.length < limit; index++) {
      const e = this.at(index)
      if (this.admits(start.floor, e)) events.push(e)
    }
    let cursor: string | undefined
    if (index > start.index) {
      // after the last entry looked at; in another run, resume after its HLC (or the floor, if later)
      cursor = encodeCursor(this.run, index, laterHlc(this.at(index - 1).hlc, start.floor))
    } else if (typeof options.after === 'string') cursor = options.after
    else if (start.floor != null) cursor = encodeCursor(this.run, index, start.floor)
    return { events, cursor, more: index < end }
  }

  /**
   * Hands `listener` every kept entry after `after` (a cursor, an hlc, or absent for all kept) as
   * `since` reads them, then each entry as it joins the feed (after an hlc: those with a later HLC),
   * until the returned function is called or `signal` aborts. The replay and the switch to live
   * happen in one step: no entry is missed or handed twice. Throws as `since` does.
   */
  subscribe(
    after: HlcTimestamp | string | undefined,
    listener: (event: JournalEvent) => void,
    options: WatchOptions = {}
  ): () => void {
    if (typeof listener !== 'function') throw new InvalidEventQueryError('listener is a function')
    const start = this.startOf(after)
    if (options.signal?.aborted === true) return () => {}
    const end = this.base + this.size
    const sub: Subscriber = { listener, held: [] }
    if (start.floor != null) sub.floor = start.floor
    this.subscribers.add(sub)
    const unsubscribe = (): void => {
      this.subscribers.delete(sub)
      options.signal?.removeEventListener('abort', unsubscribe)
    }
    options.signal?.addEventListener('abort', unsubscribe, { once: true })
    // the replay reads the feed as it stood; what joins meanwhile (a listener that records) waits in `held`
    const backlog: JournalEvent[] = []
    for (let index = start.index; index < end; index++) {
      const e = this.at(index)
      if (this.admits(start.floor, e)) backlog.push(e)
    }
    for (const event of backlog) {
      if (!this.subscribers.has(sub)) break
      this.deliver(sub, event)
    }
    while (this.subscribers.has(sub) && sub.held != null && sub.held.length > 0) this.deliver(sub, sub.held.shift()!)
    delete sub.held
    return unsubscribe
  }

  /**
   * Records the member view's changes: `member:<state>` when a member's state changes (alive,
   * suspect, dead, left), `member:update` for new metadata, addresses or incarnation in the same
   * state, `member:remove` when it leaves the view. Subject: the member's principal.
   */
  watchMembership(membership: Membership, clock: Hlc, options: WatchOptions = {}): () => void {
    const states = new RecentMap<string, string>(4096)
    for (const m of membership.members()) states.set(m.principal, m.state)
    const data = (m: MemberView): unknown => ({ state: m.state, incarnation: m.incarnation, meta: m.meta })
    const onChange = (e: CustomEvent<MemberView>): void => {
      const m = e.detail
      const before = states.get(m.principal)
      states.set(m.principal, m.state)
      this.recordSafely({
        hlc: clock.tick(),
        source: 'membership',
        type: before === m.state ? 'member:update' : `member:${m.state}`,
        subject: m.principal,
        data: data(m)
      })
    }
    const onRemove = (e: CustomEvent<MemberView>): void => {
      states.delete(e.detail.principal)
      this.recordSafely({
        hlc: clock.tick(),
        source: 'membership',
        type: 'member:remove',
        subject: e.detail.principal,
        data: data(e.detail)
      })
    }
    membership.addEventListener('member:change', onChange)
    membership.addEventListener('member:remove', onRemove)
    return this.until(options.signal, () => {
      membership.removeEventListener('member:change', onChange)
      membership.removeEventListener('member:remove', onRemove)
    })
  }

  /**
   * Records what the agents service says of the agents it hosts: `agent:start` (spawned, resumed or
   * taken over here), `agent:restart` (running again after a crash), `agent:crash`, `agent:stop`.
   * Subject: the agent's principal; data: kind, id, host, status, restarts, lastExit. (That an
   * agent moved between hosts shows in the fleet's `agent:move`, see fleet.ts.)
   */
  watchAgents(agents: Agents, clock: Hlc, options: WatchOptions = {}): () => void {
    const statuses = new RecentMap<string, string>(4096)
    for (const a of agents.list()) statuses.set(a.principal, a.status)
    const onChange = (e: Event): void => {
      const info = (e as CustomEvent<AgentInfo>).detail
      if (info == null || typeof info.principal !== 'string') return
      const before = statuses.get(info.principal)
      statuses.set(info.principal, info.status)
      let type: string | undefined
      if (info.status === 'running' || info.status === 'starting')
        type = before === 'restarting' ? 'agent:restart' : before === 'running' ? undefined : 'agent:start'
      else if (info.status === 'restarting' || info.status === 'crashed') type = 'agent:crash'
      else if (info.status === 'stopping' || info.status === 'stopped')
        type = before === 'stopping' || before === 'stopped' ? undefined : 'agent:stop'
      if (type == null) return
      this.recordSafely({
        hlc: clock.tick(),
        source: 'agent',
        type,
        subject: info.principal,
        data: {
          kind: info.kind,
          id: info.id,
          host: info.host,
          status: info.status,
          restarts: info.restarts,
          ...(info.lastExit != null ? { lastExit: info.lastExit } : {})
        }
      })
    }
    agents.addEventListener('change', onChange)
    return this.until(options.signal, () => agents.removeEventListener('change', onChange))
  }

  // ---------------------------------------------------------------- internals

  /** The feed entry at `index` (kept). */
  private at(index: number): JournalEvent {
    return this.feed[this.head + index - this.base]
  }

  /** Whether a read that began after `floor` (an hlc) takes `e`. */
  private admits(floor: HlcTimestamp | undefined, e: JournalEvent): boolean {
    return floor == null || compareHlc(e.hlc, floor) > 0
  }

  /**
   * Resolves a reader's starting point; throws EventsTruncatedError when entries after it were
   * dropped. After an hlc, the read starts at the first in-order entry with a later HLC (the
   * in-order entries are sorted: a binary search). No late entry before that one has a later HLC
   * than `hlc`: a late entry joined below the in-order entry before it, whose HLC is at most `hlc`
   * (it precedes the start) — or, if that one was dropped, at most the floor's, which a read that
   * got here is not before. Late entries after the start with an HLC at or before `hlc` are skipped
   * as the read goes.
   */
  private startOf(after: HlcTimestamp | string | undefined): Start {
    const end = this.base + this.size
    if (typeof after === 'string') {
      const count = decodeCursor(after, this.run)
      if (count > end) throw new InvalidEventQueryError('the cursor is not one this journal issued')
      if (count < this.base) throw new EventsTruncatedError(this.resumeHlc())
      return { index: count }
    }
    if (after === undefined) return { index: this.base }
    if (!isHlc(after)) throw new InvalidEventQueryError('hlc must be [wall, logical] of non-negative integers')
    const hlc: HlcTimestamp = [after[0], after[1]]
    if (this.floor != null && compareHlc(hlc, this.floor.hlc) < 0) throw new EventsTruncatedError(this.resumeHlc())
    let lo = this.orderedHead
    let hi = this.ordered.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareHlc(this.at(this.ordered[mid]).hlc, hlc) <= 0) lo = mid + 1
      else hi = mid
    }
    return { index: lo < this.ordered.length ? this.ordered[lo] : end, floor: hlc }
  }

  /** The HLC a reader whose point was dropped resumes from: every entry kept with a later one is read. */
  private resumeHlc(): HlcTimestamp | undefined {
    return this.floor?.hlc ?? this.oldest()
  }

  /** The first pending slot whose entry is after `p`. */
  private pendingUpperBound(p: Position): number {
    let lo = 0
    let hi = this.pending.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (comparePositions(this.pending[mid].position, p) <= 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Appends settled entries (in position order) to the feed, marks the late ones, hands each to the subscribers. */
  private join(batch: Pending[]): void {
    for (const p of batch) this.joining.push(p)
    if (this.inJoin) return
    this.inJoin = true
    try {
      for (let k = 0; k < this.joining.length; k++) {
        const { event } = this.joining[k]
        event.index = this.base + this.size
        // late: out of HLC order (entries at one HLC that joined apart are in order, ties aside)
        if (this.highWater != null && compareHlc(event.hlc, this.highWater) < 0) event.late = true
        else {
          this.highWater = event.hlc
          this.ordered.push(event.index)
        }
        this.feed.push(event)
        // handed to those subscribed now, once: one that subscribes from a listener replays it already
        for (const sub of [...this.subscribers]) {
          if (!this.subscribers.has(sub) || !this.admits(sub.floor, event)) continue
          if (sub.held != null) sub.held.push(event)
          else this.deliver(sub, event)
        }
        if (this.size > this.maxEntries) this.dropOldest()
      }
    } finally {
      this.joining = []
      this.inJoin = false
    }
    if (this.waiters.size > 0) {
      let waiting = Infinity
      for (const p of this.pending) if (p.event.seq < waiting) waiting = p.event.seq
      for (const w of [...this.waiters]) {
        if (w.seq >= waiting) continue
        this.waiters.delete(w)
        w.resolve()
      }
    }
  }

  private dropOldest(): void {
    while (this.size > this.maxEntries) {
      const gone = this.feed[this.head]
      this.feed[this.head] = undefined as unknown as JournalEvent
      this.head++
      this.base++
      const position = positionOf(gone)
      if (this.floor == null || comparePositions(position, this.floor) > 0) this.floor = position
      if (gone.id !== undefined && this.ids.get(gone.id) === gone) this.ids.delete(gone.id)
    }
    while (this.orderedHead < this.ordered.length && this.ordered[this.orderedHead] < this.base) this.orderedHead++
    // compact in batches: a shift per drop would be O(n) each
    if (this.head > 1024 && this.head * 2 > this.feed.length) {
      this.feed = this.feed.slice(this.head)
      this.head = 0
    }
    if (this.orderedHead > 1024 && this.orderedHead * 2 > this.ordered.length) {
      this.ordered = this.ordered.slice(this.orderedHead)
      this.orderedHead = 0
    }
  }

  /** Sets the timer for the earliest pending entry's time (unref'd where the runtime can, so it keeps no process alive). */
  private schedule(): void {
    if (this.closed || this.pending.length === 0) {
      this.clearTimer()
      return
    }
    let due = Infinity
    for (const p of this.pending) if (p.due < due) due = p.due
    if (this.timer != null && this.timerAt <= due) return
    this.clearTimer()
    this.timerAt = due
    const timer = setTimeout(
      () => {
        this.timer = undefined
        this.timerAt = Infinity
        this.settleDue()
      },
      Math.max(0, due - this.now())
    )
    ;(timer as { unref?: () => void }).unref?.()
    this.timer = timer
  }

  private clearTimer(): void {
    if (this.timer != null) clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = Infinity
  }

  private deliver(sub: Subscriber, event: JournalEvent): void {
    try {
      sub.listener(event)
    } catch (err) {
      this.onListenerError?.(err)
    }
  }

  private recordSafely(input: EventInput): void {
    try {
      this.record(input)
    } catch (err) {
      this.onListenerError?.(err)
    }
  }

  private until(signal: AbortSignal | undefined, detach: () => void): () => void {
    let done = false
    const stop = (): void => {
      if (done) return
      done = true
      detach()
      signal?.removeEventListener('abort', stop)
    }
    if (signal?.aborted === true) stop()
    else signal?.addEventListener('abort', stop, { once: true })
    return stop
  }
}
