/**
 * The event journal: every change to boards, agents, membership, the swarm and the fleet that this
 * node has seen, as entries kept in one order — HLC, then source, subject, type, id — so the same
 * entries give the same sequence whatever order they arrived in. `since` pages through what is
 * after a point; `subscribe` replays what is after a point and then continues live, with no gap
 * and no duplicate where the replay ends. The journal is bounded: past `maxEntries` the oldest go,
 * and asking for a point older than what is kept throws EventsTruncatedError (naming the oldest hlc
 * kept) rather than answering with a silent gap.
 *
 * An entry that arrives with an HLC earlier than entries already kept (a remote board's operation
 * that travelled slowly) is inserted in order; a live subscriber is handed it when it arrives, so it
 * sees every entry after its starting point exactly once, in HLC order except such late ones.
 * A reader that resumes from an HLC it saw misses late entries below that HLC: resume from the
 * `cursor` of the page (it is a position, not a time) and page again for anything older.
 *
 * The journal lives in memory and starts anew with each run of the node. A cursor names the run
 * that issued it (`run`, random at construction); a cursor of another run is refused with
 * EventCursorExpiredError, which carries the cursor's HLC: resume from that HLC (`since`).
 *
 * @example
 * const journal = new EventJournal()
 * const stopWatching = journal.watchMembership(node.membership, clock)
 * journal.record({ hlc: clock.tick(), source: 'board', type: 'claim', subject: 'release/t1', data: { actor }, id })
 * const page = journal.since([1767000000000, 0], { limit: 100 }) // { events, cursor, more }
 * const stop = journal.subscribe(page.cursor, e => send(e), { signal })
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
export { EventCursorExpiredError } from './fleet-errors.ts'
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

/** An event as the journal keeps it. */
export interface JournalEvent {
  hlc: HlcTimestamp
  source: EventSource
  type: string
  subject: string
  data: unknown
  id?: string
  /** This journal's arrival number (local: it orders nothing but identical keys). */
  seq: number
}

export interface EventJournalInit {
  /** Names this run in the cursors it issues; default 8 random bytes (base64url). */
  run?: string
  /** Most entries kept; the oldest go first. Default 100,000. */
  maxEntries?: number
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
  /** Whether more events follow (the page was cut at its limit). */
  more: boolean
}

export interface WatchOptions {
  signal?: AbortSignal
}

/** A position in the order: strictly after it is what a reader asks for. */
interface Position {
  hlc: HlcTimestamp
  source: string
  subject: string
  type: string
  id: string
  seq: number
}

/** Greater than every source name: a position at an hlc with this source is after every entry at that hlc. */
const AFTER_ALL = '\uffff'

function comparePositions(a: Position, b: Position): number {
  const byHlc = compareHlc(a.hlc, b.hlc)
  if (byHlc !== 0) return byHlc
  if (a.source !== b.source) return a.source < b.source ? -1 : 1
  if (a.subject !== b.subject) return a.subject < b.subject ? -1 : 1
  if (a.type !== b.type) return a.type < b.type ? -1 : 1
  if (a.id !== b.id) return a.id < b.id ? -1 : 1
  return a.seq - b.seq
}

const positionOf = (e: JournalEvent): Position => ({
  hlc: e.hlc,
  source: e.source,
  subject: e.subject,
  type: e.type,
  id: e.id ?? '',
  seq: e.seq
})

/** The position right after every entry at `hlc`. */
const afterHlc = (hlc: HlcTimestamp): Position => ({ hlc, source: AFTER_ALL, subject: '', type: '', id: '', seq: 0 })

/** Longest run name. */
export const MAX_RUN_LENGTH = 64

function encodeCursor(run: string, p: Position): string {
  return base64url.encode(
    new TextEncoder().encode(JSON.stringify([run, p.hlc[0], p.hlc[1], p.source, p.subject, p.type, p.id, p.seq]))
  )
}

/**
 * A cursor's position, if `run` issued it. A well-formed cursor of another run (or of the earlier
 * format, which named none) throws EventCursorExpiredError with its HLC; anything else
 * InvalidEventQueryError.
 */
function decodeCursor(cursor: string, run: string): Position {
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
  if (!Array.isArray(parsed) || (parsed.length !== 8 && parsed.length !== 7)) return bad()
  const fields = parsed as unknown[]
  const issuer = fields.length === 8 ? fields[0] : undefined
  const [wall, logical, source, subject, type, id, seq] = fields.slice(fields.length - 7)
  const hlc = [wall, logical]
  if (!isHlc(hlc)) return bad()
  if (typeof source !== 'string' || !(source === AFTER_ALL || (EVENT_SOURCES as readonly string[]).includes(source)))
    return bad()
  if (typeof subject !== 'string' || subject.length > MAX_EVENT_SUBJECT) return bad()
  if (typeof type !== 'string' || type.length > MAX_EVENT_TYPE) return bad()
  if (typeof id !== 'string' || id.length > MAX_EVENT_ID) return bad()
  if (!Number.isSafeInteger(seq) || (seq as number) < 0) return bad()
  if (issuer !== undefined && (typeof issuer !== 'string' || issuer.length === 0 || issuer.length > MAX_RUN_LENGTH))
    return bad()
  if (issuer !== run) throw new EventCursorExpiredError([hlc[0], hlc[1]])
  return { hlc, source, subject, type, id, seq: seq as number }
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

interface Subscriber {
  from: Position | undefined
  listener: (event: JournalEvent) => void
}

export class EventJournal {
  readonly maxEntries: number
  /** Names this run of the journal in its cursors. */
  readonly run: string
  private readonly onListenerError?: (err: unknown) => void
  /** Kept entries in order, from `head` on (the slots before it were dropped and are compacted away in batches). */
  private entries: JournalEvent[] = []
  private head = 0
  private readonly ids = new Map<string, JournalEvent>()
  /** The position of the last entry dropped: nothing at or before it is kept any more. */
  private dropped?: Position
  private nextSeq = 0
  private readonly subscribers = new Set<Subscriber>()

  constructor(init: EventJournalInit = {}) {
    const max = init.maxEntries ?? DEFAULT_MAX_EVENTS
    if (!Number.isSafeInteger(max) || max < 1) throw new InvalidEventQueryError('maxEntries is a positive integer')
    this.maxEntries = max
    const run = init.run ?? randomRun()
    if (typeof run !== 'string' || run.length === 0 || run.length > MAX_RUN_LENGTH)
      throw new InvalidEventQueryError(`run is 1-${MAX_RUN_LENGTH} characters`)
    this.run = run
    this.onListenerError = init.onListenerError
  }

  /** The cursor right after `event`: what a reader that had it resumes from (an SSE id, say) — exact, unlike its HLC. */
  cursorOf(event: JournalEvent): string {
    return encodeCursor(this.run, positionOf(event))
  }

  /** Entries kept. */
  get size(): number {
    return this.entries.length - this.head
  }

  /** The hlc of the oldest entry kept. */
  oldest(): HlcTimestamp | undefined {
    return this.entries[this.head]?.hlc
  }

  /** The hlc of the newest entry kept. */
  newest(): HlcTimestamp | undefined {
    return this.entries.length > this.head ? this.entries[this.entries.length - 1].hlc : undefined
  }

  /**
   * Keeps `input` in order and hands it to every subscriber whose starting point it is after.
   * Returns false (and keeps nothing) for an id already kept, or an entry at or before what was
   * dropped to stay within maxEntries. Throws InvalidEventError for a malformed entry.
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
      seq: this.nextSeq
    }
    if (input.id !== undefined) event.id = input.id
    const position = positionOf(event)
    if (this.dropped != null && comparePositions(position, this.dropped) <= 0) return false
    this.nextSeq++
    const last = this.entries[this.entries.length - 1]
    if (this.size === 0 || comparePositions(positionOf(last), position) < 0) this.entries.push(event)
    else this.entries.splice(this.upperBound(position), 0, event)
    if (event.id !== undefined) this.ids.set(event.id, event)
    if (this.size > this.maxEntries) {
      this.dropOldest()
      // a late entry older than everything kept goes at once
      if (this.dropped != null && comparePositions(position, this.dropped) <= 0) return false
    }
    // a subscriber is handed what is after its starting point, once, as it arrives
    for (const sub of [...this.subscribers]) {
      if (!this.subscribers.has(sub)) continue
      if (sub.from != null && comparePositions(position, sub.from) <= 0) continue
      this.deliver(sub, event)
    }
    return true
  }

  /**
   * Events strictly after `hlc` (all kept when absent) or after `options.after` (a cursor), in
   * order, at most `limit`. Throws EventsTruncatedError if events after that point were dropped,
   * EventCursorExpiredError for a cursor of another run, InvalidEventQueryError for a bad hlc,
   * cursor or limit.
   */
  since(hlc?: HlcTimestamp, options: SinceOptions = {}): EventPage {
    const limit = options.limit ?? DEFAULT_PAGE
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE)
      throw new InvalidEventQueryError(`limit is 1-${MAX_PAGE}`)
    const from = this.startingPoint(options.after ?? hlc)
    const start = from == null ? this.head : this.upperBound(from)
    const events = this.entries.slice(start, start + limit)
    const last = events[events.length - 1]
    const cursor =
      last != null ? encodeCursor(this.run, positionOf(last)) : from != null ? encodeCursor(this.run, from) : undefined
    return { events, cursor, more: start + limit < this.entries.length }
  }

  /**
   * Hands `listener` every kept event after `after` (an hlc, a cursor, or absent for all kept) in
   * order, then each new one as it is recorded, until the returned function is called or `signal`
   * aborts. The replay and the switch to live happen in one step: no event is missed or handed twice.
   * Throws as `since` does.
   */
  subscribe(
    after: HlcTimestamp | string | undefined,
    listener: (event: JournalEvent) => void,
    options: WatchOptions = {}
  ): () => void {
    if (typeof listener !== 'function') throw new InvalidEventQueryError('listener is a function')
    const from = this.startingPoint(after)
    if (options.signal?.aborted === true) return () => {}
    const backlog = this.entries.slice(from == null ? this.head : this.upperBound(from))
    const sub: Subscriber = { from, listener }
    this.subscribers.add(sub)
    const unsubscribe = (): void => {
      this.subscribers.delete(sub)
      options.signal?.removeEventListener('abort', unsubscribe)
    }
    options.signal?.addEventListener('abort', unsubscribe, { once: true })
    for (const event of backlog) {
      if (!this.subscribers.has(sub)) break
      this.deliver(sub, event)
    }
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

  /** The first index whose entry is after `p`. */
  private upperBound(p: Position): number {
    let lo = this.head
    let hi = this.entries.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (comparePositions(positionOf(this.entries[mid]), p) <= 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Resolves a reader's starting point; throws EventsTruncatedError when events after it were dropped. */
  private startingPoint(after: HlcTimestamp | string | undefined): Position | undefined {
    let from: Position | undefined
    if (typeof after === 'string') from = decodeCursor(after, this.run)
    else if (after !== undefined) {
      if (!isHlc(after)) throw new InvalidEventQueryError('hlc must be [wall, logical] of non-negative integers')
      from = afterHlc(after)
    }
    if (from != null && this.dropped != null && comparePositions(from, this.dropped) < 0)
      throw new EventsTruncatedError(this.oldest())
    return from
  }

  private dropOldest(): void {
    while (this.size > this.maxEntries) {
      const gone = this.entries[this.head]
      this.entries[this.head] = undefined as unknown as JournalEvent
      this.head++
      this.dropped = positionOf(gone)
      if (gone.id !== undefined) this.ids.delete(gone.id)
    }
    // compact in batches: a shift per drop would be O(n) each
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head)
      this.head = 0
    }
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
