/**
 * A replicated log: the Merkle DAG of signed events of one document, stored as dag-cbor blocks,
 * and the CRDT state those events build. Appends sign a new event whose parents are the current
 * heads; joins take a peer's heads, fetch every missing ancestor by CID (Helia fetches what is not
 * local), check each — shape, log id, clock drift, signature, the author's authority, timestamp
 * after its parents', decodable ops — and apply them in the one deterministic order (HLC, author,
 * CID), each exactly once. Snapshots (the state and the heads it covers, signed) let a replica
 * start without the history behind them, and compaction deletes that history.
 *
 * An append's parents are all the heads, folded through merge events (no ops, at most MAX_PARENTS
 * parents each) when there are more than MAX_PARENTS: so each author's events form one chain, and a
 * snapshot's `covered[author]` says exactly which of that author's events its state holds. Blocks
 * refused for good (malformed, another log's, forged, ops that cannot be their author's) are
 * remembered, so anti-entropy does not fetch and check them again; refusals that may change — the
 * author not authorized yet, a clock ahead of ours, missing parents — are not.
 *
 * On disk: the blocks in the blockstore, and one record per log in the datastore
 * (`/cyberspace/log/<id>`: heads and base snapshots). Blocks are written before the record that
 * points at them, so a crash between the two leaves only an unreferenced block; a restart replays
 * from the record and gets exactly the state it had.
 *
 * @example
 * const log = await Log.open({ id: 'tasks', type: crdtTypes['or-set'], blockstore, datastore, signer, clock, authorize })
 * await log.append(batch => batch.push(orSet.add(batch.state, batch.ctx, 'write the report')))
 * await log.join(peerHeads)                // fetch, verify, apply
 * log.value()                              // ['write the report', …]
 * await log.compact()                      // snapshot, then drop the history behind it
 */
import * as dagCbor from '@ipld/dag-cbor'
import { Key } from 'interface-datastore'
import { TypedEventEmitter } from 'main-event'
import { CID } from 'multiformats/cid'
import { defaultLogger } from '@libp2p/logger'
import {
  blockCid,
  checkLogId,
  decodeEvent,
  decodeSnapshot,
  EVENT_DOMAIN,
  isBlockCid,
  MAX_COVERED_AUTHORS,
  MAX_SNAPSHOT_HEADS,
  MAX_EVENT_BYTES,
  MAX_PARENTS,
  MAX_SNAPSHOT_BYTES,
  SNAPSHOT_DOMAIN
} from '../../protocols/log/codec.ts'
import { compareHlc } from '../clock/hlc.ts'
import { compareStrings } from '../crdt/codec.ts'
import { withTimeout } from '../network/rpc.ts'
import { RecentMap } from '../recent-map.ts'
import { readBlock } from './blocks.ts'
import { compareEvents, signEvent, signSnapshot, verifyEvent, verifySigned } from './event.ts'
import {
  EmptyLogError,
  EventRejectedError,
  HistoryTooLongError,
  InvalidEventError,
  LogClosedError,
  LogTypeMismatchError,
  MissingParentsError,
  UnauthorizedEventError
} from './errors.ts'
import type { LogBlockstore } from './blocks.ts'
import type { Block } from './event.ts'
import type { Event, Snapshot, Timestamp } from '../../protocols/log/codec.ts'
import type { Hlc, HlcTimestamp } from '../clock/hlc.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Signer } from '../crypto/sign.ts'
import type { CrdtLimits, CrdtType, MutationContext } from '../crdt/types.ts'
import type { AbortOptions, ComponentLogger, Logger, PeerId } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'

export type LogAction = 'append' | 'snapshot'
/**
 * Resolves if `author` may do `action` on this log; throws (UnauthorizedEventError, …) if not.
 * `providers` are the peers the event or snapshot came from (to ask for a proof), if known.
 * `deltas` are the event's deltas, decoded (an append's, before it is signed; a received one's,
 * before it is applied), for callbacks that decide by what an event writes; a merge event's list
 * is empty. `append` also asks once before it builds its event, without them: a callback that
 * decides by the deltas lets that call through and decides on the second.
 */
export type Authorize = (
  author: PrincipalId,
  action: LogAction,
  options: AbortOptions & { providers?: PeerId[]; deltas?: unknown[] }
) => Promise<void>

export interface AppendOptions extends AbortOptions {
  /**
   * Signs this event (and the merge events folded before it) instead of the log's signer: several
   * principals write one log from one replica, each event authorized for its own signer.
   */
  signer?: Signer
}

export interface LogLimits {
  crdt?: CrdtLimits
  /** Most events one join fetches; beyond it the join fails with HistoryTooLongError. Default 10 000. */
  maxJoinEvents?: number
  /** Most bytes of events (and covered blocks) one join holds; beyond it, HistoryTooLongError. Default 64 MiB. */
  maxJoinBytes?: number
  /** How long one block fetch may take, in ms; default 10 s. */
  fetchTimeout?: number
  /** Blocks fetched at once during a join; default 8. */
  fetchConcurrency?: number
  /** Most foreign snapshots a replica merges before it takes its own; default 16. */
  maxSnapshots?: number
  /** Blocks refused for good that are remembered (never fetched or checked again); default 4 096. */
  maxRefused?: number
  /** Events found covered by a merged snapshot that are remembered without being applied; default 65 536. */
  maxCoveredEvents?: number
}

/** Where to fetch missing blocks: peers known to hold them (the one that sent the heads). */
export interface FetchOptions extends AbortOptions {
  providers?: PeerId[]
  /**
   * Peers the authorize callback may ask to prove an author's authority; default `providers`.
   * Empty for what an unproven peer offered: its junk must not spend another peer's proof budget.
   */
  proofProviders?: PeerId[]
  /**
   * How many levels below the joined heads the block is (0: a head). The deeper a join walks, the
   * more of the block's ancestors a fetcher may ask for in the same request.
   */
  level?: number
}

/**
 * Fetches a block this replica lacks from peers (it must check the bytes hash to `cid`), within
 * `timeout` ms (a block the fetcher has at hand needs no timer).
 */
export type FetchBlock = (
  cid: CID,
  options: FetchOptions & { maxBytes: number; timeout: number }
) => Promise<Uint8Array>

export interface LogInit<S, D, V> {
  id: string
  type: CrdtType<S, D, V>
  blockstore: LogBlockstore
  /** How missing blocks are fetched; default: the blockstore's own get (Helia's fetches from peers). */
  fetch?: FetchBlock
  datastore: Datastore
  signer: Signer
  clock: Hlc
  authorize: Authorize
  limits?: LogLimits
  logger?: ComponentLogger
}

export interface ChangeDetail {
  kind: 'event' | 'snapshot'
  cid: CID
  author: PrincipalId
  hlc: HlcTimestamp
  /** True for this replica's own appends. */
  local: boolean
  /** The block, for own appends (to publish it). */
  bytes?: Uint8Array
  /** The event's parents, for own appends. */
  parents?: CID[]
}

export interface LogEvents {
  change: CustomEvent<ChangeDetail>
}

export interface JoinResult {
  applied: CID[]
  rejected: Array<{ cid: CID; error: Error }>
  /** Blocks that could not be fetched; events above them wait for the next join. */
  missing: CID[]
}

/** What an append's builder gets: the live state, the context for mutators, and where deltas go. */
export interface Batch<S, D> {
  readonly state: S
  readonly ctx: MutationContext
  /** Merges the delta into the state now (later mutators of the batch see it) and adds it to the event. */
  push(delta: D): void
}

/** How `adoptSnapshot` takes a snapshot. */
export interface AdoptOptions extends FetchOptions {
  /**
   * Adopt it even when this replica already holds every event it covers: it becomes part of the
   * base (and replaces the base snapshots it supersedes), so `dropCovered` can then delete the
   * history behind it. Default false: such a snapshot adds nothing and is ignored.
   */
  base?: boolean
}

export interface JoinOptions extends FetchOptions {
  /** Blocks already received (e.g. inline on gossip), by CID string. */
  blocks?: Map<string, Uint8Array>
  /** True if every key of `blocks` is the CID its bytes hash to (the caller hashed them): not hashed again. */
  hashed?: boolean
}

interface KnownEvent {
  hlc: Timestamp
  author: string
}

/** What a base snapshot covers: its heads and its covered vector. */
interface BaseSnapshot {
  heads: string[]
  covered: Record<string, Timestamp>
}

interface Fetched<D> {
  key: string
  cid: CID
  bytes: Uint8Array
  event: Event
  deltas: D[]
}

const RECORD_PREFIX = '/cyberspace/log/'
/** Most covered parents the record keeps as anchors (see `Log.anchors`). */
const MAX_ANCHORS = 4096
/** How long a snapshot that added nothing, or whose author was refused, is not fetched again. */
const SNAPSHOT_MISS_TTL = 30_000

export class Log<S, D, V> extends TypedEventEmitter<LogEvents> {
  readonly id: string
  readonly type: CrdtType<S, D, V>
  private readonly init: LogInit<S, D, V>
  private readonly log: Logger
  private readonly recordKey: Key
  private state: S
  /** Signs appends and snapshots: `init.signer` until `useSigner`. */
  private signer: Signer
  private readonly headCids = new Map<string, CID>()
  /** Events applied since the base snapshots: for dedup, parent checks and compaction. */
  private readonly known = new Map<string, KnownEvent>()
  /** The base: snapshots merged into the state, the heads they cover and the authors' latest covered timestamps. */
  private snapshotCids: CID[] = []
  /** Heads and covered vector of each base snapshot, by CID string. */
  private readonly bases = new Map<string, BaseSnapshot>()
  private snapshotHeads = new Set<string>()
  private readonly covered = new Map<string, Timestamp>()
  /** Events (signed, checked) found inside the base without being applied; forgetting one costs a re-fetch. */
  private readonly coveredEvents: RecentMap<string, CID>
  /** Blocks refused for good, with the reason. */
  private readonly refused: RecentMap<string, Error>
  /** Snapshots recently found to add nothing, or by an author not (yet) authorized: not fetched again for a while. */
  private readonly snapshotMisses = new RecentMap<string, { until: number; error?: Error; held?: boolean }>(1024)
  /**
   * Covered events that applied events name as parents, whose blocks this replica may not hold
   * (compacted, or met covered in an earlier join): kept in the record, so a replay knows them as
   * inside the base instead of as lost history.
   */
  private readonly anchors = new RecentMap<string, CID>(MAX_ANCHORS)
  /** Set when the merged snapshots could not be folded: checked again only after a while. */
  private unfoldable?: { until: number; error: Error }
  private queue: Promise<unknown> = Promise.resolve()
  private closed = false

  private constructor(init: LogInit<S, D, V>) {
    super()
    checkLogId(init.id)
    this.id = init.id
    this.type = init.type
    this.init = init
    this.log = (init.logger ?? defaultLogger()).forComponent(`cyberspace:log:${init.id}`)
    this.recordKey = new Key(RECORD_PREFIX + init.id)
    this.state = init.type.empty()
    this.signer = init.signer
    this.coveredEvents = new RecentMap(this.limit('maxCoveredEvents', 65_536))
    this.refused = new RecentMap(this.limit('maxRefused', 4096))
  }

  /** Opens a log, replaying what the datastore and blockstore hold. */
  static async open<S, D, V>(init: LogInit<S, D, V>): Promise<Log<S, D, V>> {
    const log = new Log(init)
    await log.replay()
    return log
  }

  value(): V {
    return this.type.value(this.state)
  }

  /** The live state (read only: change it through `append`). */
  current(): S {
    return this.state
  }

  heads(): CID[] {
    return [...this.headCids.values()]
  }

  snapshots(): CID[] {
    return [...this.snapshotCids]
  }

  /** Whether the event is part of this replica's state (applied, or covered by a snapshot). */
  has(cid: CID | string): boolean {
    const key = cid.toString()
    return this.known.has(key) || this.snapshotHeads.has(key) || this.coveredEvents.has(key)
  }

  /** Whether the event is applied since the base snapshots, so its block is in the blockstore. */
  holdsBlock(cid: CID | string): boolean {
    return this.known.has(cid.toString())
  }

  /** Number of events applied since the base snapshot. */
  get length(): number {
    return this.known.size
  }

  /**
   * Number of applied events the base snapshots do not cover: what a replay from the latest
   * snapshot applies. Unlike `length`, it does not count events a snapshot taken or adopted since
   * they were applied already holds.
   */
  eventsSinceSnapshot(): number {
    let n = 0
    for (const e of this.known.values()) if (!this.coveredBySnapshot(e)) n++
    return n
  }

  /** The principal that signs this replica's appends and snapshots. */
  get author(): PrincipalId {
    return this.signer.principal
  }

  /**
   * Signs this replica's later appends and snapshots with `signer` (e.g. an agent's own key for its
   * session). Each append and snapshot is checked with the authorize callback for its signer. One
   * append can name its own signer instead (`AppendOptions.signer`).
   */
  useSigner(signer: Signer): void {
    this.signer = signer
  }

  close(): void {
    this.closed = true
  }

  /**
   * Closes the log, waits for the work queued on it, and deletes it: every block of it found from
   * the heads down (events, the blocks of merged snapshots' boundaries) and its snapshots, then its
   * record. A later `Log.open` of the same id starts empty. Blocks another replica holds are not
   * touched: a peer may still send them, and a new log of this id would accept them again.
   */
  async destroy(options: AbortOptions = {}): Promise<void> {
    this.closed = true
    await this.queue
    options.signal?.throwIfAborted()
    let record: LogRecord | undefined
    try {
      record = decodeRecord(this.id, await this.init.datastore.get(this.recordKey, options))
    } catch {
      record = undefined // none, or corrupt: what memory holds is all there is to find
    }
    const from = [...this.heads(), ...(record?.heads ?? []), ...this.coveredEvents.values()]
    for (const key of [...this.snapshotHeads, ...this.known.keys()]) from.push(CID.parse(key))
    const removed = await this.deleteHistory(from, options)
    const snapshots = new Map<string, CID>()
    for (const cid of [...this.snapshotCids, ...(record?.snapshots ?? [])]) snapshots.set(cid.toString(), cid)
    for (const cid of snapshots.values()) {
      if (await this.init.blockstore.has(cid, options)) await this.init.blockstore.delete(cid, options)
    }
    await this.init.datastore.delete(this.recordKey, options)
    this.headCids.clear()
    this.known.clear()
    this.snapshotCids = []
    this.bases.clear()
    this.snapshotHeads = new Set()
    this.covered.clear()
    this.coveredEvents.clear()
    this.anchors.clear()
    this.state = this.type.empty()
    this.log('destroyed: %d events and %d snapshots deleted', removed, snapshots.size)
  }

  /**
   * Appends one event holding every delta the builder pushes, atomically: all of them are in the
   * state and on disk, or (if authorizing, signing or writing fails) none is. The deltas are merged
   * as they are pushed (a later mutator of the batch sees the earlier ones), so a refusal of the
   * built event replays the state from disk: where that is costly, use `appendDeltas`.
   */
  async append(build: (batch: Batch<S, D>) => void, options: AppendOptions = {}): Promise<Block<Event> | undefined> {
    this.checkOpen()
    // what every other replica will check, checked here first: an event they would all refuse is
    // not applied here either (an author refused whatever it writes costs no rebuild)
    const signer = options.signer ?? this.signer
    await this.init.authorize(signer.principal, 'append', { signal: options.signal })
    return await this.appendEvent(signer, options, true, (state, ctx) => {
      const deltas: D[] = []
      build({
        state,
        ctx,
        push: delta => {
          this.type.merge(this.state, delta)
          deltas.push(delta)
        }
      })
      return deltas
    })
  }

  /**
   * Appends one event of the deltas `make` returns, made from the state as it is (none of them is
   * merged before `make` returns, so they must not build on each other: e.g. the op-log's one
   * delta). They are authorized before anything is merged, so a refusal costs nothing. Resolves to
   * the event, or undefined if `make` returned no delta.
   */
  async appendDeltas(
    make: (state: S, ctx: MutationContext) => D[],
    options: AppendOptions = {}
  ): Promise<Block<Event> | undefined> {
    this.checkOpen()
    return await this.appendEvent(options.signer ?? this.signer, options, false, make)
  }

  /**
   * One append: ticks the clock, gets the deltas (`merged`: `produce` merges them itself), has
   * them authorized, signs the event (after merge events if the heads are too many), stores it.
   */
  private async appendEvent(
    signer: Signer,
    options: AbortOptions,
    merged: boolean,
    produce: (state: S, ctx: MutationContext) => D[]
  ): Promise<Block<Event> | undefined> {
    return await this.exclusive(async () => {
      options.signal?.throwIfAborted()
      // one merge event per MAX_PARENTS heads beyond the first MAX_PARENTS, each earlier than the event
      const mergeClocks: Timestamp[] = []
      for (let width = this.headCids.size; width > MAX_PARENTS; width -= MAX_PARENTS - 1) {
        mergeClocks.push(this.init.clock.tick())
      }
      const hlc = this.init.clock.tick()
      const ctx: MutationContext = { replica: signer.principal, hlc }
      let deltas: D[] = []
      if (!merged) {
        // nothing is in the state yet: a refusal here leaves it as it was
        deltas = produce(this.state, ctx)
        if (deltas.length === 0) return undefined
        await this.init.authorize(signer.principal, 'append', { signal: options.signal, deltas })
      }
      let block: Block<Event>
      const merges: Array<Block<Event>> = []
      try {
        if (merged) {
          deltas = produce(this.state, ctx)
          if (deltas.length === 0) return undefined
          await this.init.authorize(signer.principal, 'append', { signal: options.signal, deltas })
        } else {
          for (const delta of deltas) this.type.merge(this.state, delta)
        }
        // fold the frontier until it fits in one event's parents: every head is in the event's past
        let frontier = this.heads()
        for (const mergeHlc of mergeClocks) {
          const merge = await signEvent(signer, {
            log: this.id,
            hlc: mergeHlc,
            parents: frontier.slice(0, MAX_PARENTS),
            ops: []
          })
          merges.push(merge)
          frontier = [...frontier.slice(MAX_PARENTS), merge.cid]
        }
        block = await signEvent(signer, {
          log: this.id,
          hlc,
          parents: frontier,
          ops: deltas.map(d => this.type.encodeDelta(d))
        })
        for (const b of [...merges, block]) await this.init.blockstore.put(b.cid, b.bytes)
        await this.writeRecord(new Map([[block.cid.toString(), block.cid]]), this.snapshotCids)
      } catch (err) {
        // the deltas are in the state but not in the log: rebuild the state from what is stored
        await this.rebuildState()
        throw err
      }
      this.setHeads(new Map([[block.cid.toString(), block.cid]]))
      for (const b of [...merges, block]) {
        this.known.set(b.cid.toString(), { hlc: b.value.hlc, author: b.value.author })
        this.emitChange('event', b.cid, signer.principal, b.value.hlc, true, b.bytes, b.value.parents)
      }
      return block
    })
  }

  /**
   * Joins a peer's heads: fetches every missing ancestor (through the blockstore, which fetches by
   * CID from peers), checks each, and applies the ones whose whole history is present.
   * `blocks` may carry blocks already received (e.g. inline on gossip), keyed by CID string.
   */
  async join(heads: CID[], options: JoinOptions = {}): Promise<JoinResult> {
    this.checkOpen()
    const result: JoinResult = { applied: [], rejected: [], missing: [] }
    // blocks of covered events met on the way: stored only if an accepted event names one as a parent
    const covered = new Map<string, Uint8Array>()
    const fetched = await this.fetchMissing(heads, result, options, covered)
    if (fetched.size === 0) return result
    await this.exclusive(async () => await this.applyFetched(fetched, result, covered))
    return result
  }

  /** Signs a snapshot of the current state covering the current heads, and makes it this replica's base. */
  async snapshot(options: AbortOptions = {}): Promise<Block<Snapshot>> {
    return await this.exclusive(async () => await this.takeSnapshot(options))
  }

  /** Takes a snapshot and deletes from the blockstore every event and older snapshot behind it. */
  async compact(options: AbortOptions = {}): Promise<{ snapshot: CID; removed: number }> {
    return await this.exclusive(async () => {
      const previous = this.snapshotCids
      const snapshot = await this.takeSnapshot(options)
      const removed = await this.deleteHistory(this.heads(), options)
      for (const cid of previous) if (!cid.equals(snapshot.cid)) await this.init.blockstore.delete(cid)
      // still inside the base (a peer's later event may name one as a parent), though no longer stored
      for (const key of this.known.keys()) this.coveredEvents.set(key, CID.parse(key))
      this.known.clear()
      this.log('compacted %d events behind snapshot %c', removed, snapshot.cid)
      return { snapshot: snapshot.cid, removed }
    })
  }

  /** Deletes every stored event reachable from `from` (through stored parents); returns how many. */
  private async deleteHistory(from: CID[], options: AbortOptions): Promise<number> {
    const stack = [...from]
    const seen = new Set<string>()
    const doomed: CID[] = []
    let removed = 0
    while (stack.length > 0) {
      options.signal?.throwIfAborted()
      const cid = stack.pop() as CID
      const key = cid.toString()
      if (seen.has(key)) continue
      seen.add(key)
      const event = await this.readStoredEvent(cid).catch(() => undefined)
      if (event == null) continue // already gone, or never here (a snapshot's head, a covered event)
      // a snapshot may name anything as a head: never delete (or walk) another log's history
      if (event.log !== this.id) continue
      stack.push(...event.parents)
      doomed.push(cid)
    }
    // one write lock for all of them (Helia's blockstore takes one per delete)
    for await (const _ of this.init.blockstore.deleteMany(doomed, options)) removed++
    return removed
  }

  /**
   * Merges a peer's snapshot: checks it (signature, the author's authority to snapshot this log,
   * limits) and joins its state into ours. Events it covers that we lack need not be fetched. A
   * base snapshot it supersedes (one whose covered vector it reaches for every author) is dropped:
   * its history is inside the new one's.
   */
  async adoptSnapshot(cid: CID, options: AdoptOptions = {}): Promise<boolean> {
    this.checkOpen()
    if (this.snapshotCids.some(c => c.equals(cid))) return false
    const key = cid.toString()
    // refusals of a block read as a snapshot are kept apart from those of blocks read as events:
    // offering an event's CID as a snapshot must not get the event refused, nor the reverse
    const refusedKey = `snapshot ${key}`
    const refusal = this.refused.get(refusedKey)
    if (refusal != null) throw refusal
    const miss = this.snapshotMisses.get(key)
    // (a snapshot that added nothing only because every head was here may still become the base)
    if (miss != null && miss.until > Date.now() && !(miss.held === true && options.base === true)) {
      if (miss.error != null) throw miss.error
      return false
    }
    this.checkFoldable()
    const timeout = this.limit('fetchTimeout', 10_000)
    const signal = withTimeout(timeout, options.signal)
    const bytes = await this.fetchBlock(cid, {
      maxBytes: MAX_SNAPSHOT_BYTES,
      timeout,
      signal,
      providers: options.providers
    })
    let snapshot: Snapshot
    try {
      snapshot = decodeSnapshot(bytes)
      if (snapshot.log !== this.id) throw new EventRejectedError(`snapshot of log ${snapshot.log}, not ${this.id}`)
    } catch (err) {
      this.refused.set(refusedKey, err as Error)
      throw err
    }
    // a snapshot of nothing this replica lacks adds nothing (unless it is to become the base), and
    // one inside a base snapshot's history never does: no signature check, no state decode
    if (this.insideBase(snapshot)) {
      this.snapshotMisses.set(key, { until: Date.now() + SNAPSHOT_MISS_TTL })
      return false
    }
    if (options.base !== true && snapshot.heads.every(h => this.has(h))) {
      this.snapshotMisses.set(key, { until: Date.now() + SNAPSHOT_MISS_TTL, held: true })
      return false
    }
    try {
      await verifySigned(SNAPSHOT_DOMAIN, snapshot)
      checkCovered(snapshot)
    } catch (err) {
      this.refused.set(refusedKey, err as Error)
      throw err
    }
    // not remembered: the clock catches up, the author may be authorized later
    this.init.clock.check(snapshot.hlc)
    try {
      await this.init.authorize(snapshot.author as PrincipalId, 'snapshot', {
        signal,
        providers: options.proofProviders ?? options.providers
      })
    } catch (err) {
      // an author that can never be authorized is refused for good; another, for a while (it may
      // be authorized later)
      if (err instanceof UnauthorizedEventError && err.permanent) this.refused.set(refusedKey, err)
      else this.snapshotMisses.set(key, { until: Date.now() + SNAPSHOT_MISS_TTL, error: err as Error })
      throw err
    }
    let state: S
    try {
      state = this.type.decodeState(snapshot.state, this.init.limits?.crdt)
    } catch (err) {
      this.refused.set(refusedKey, err as Error)
      throw err
    }
    return await this.exclusive(async () => {
      if (this.snapshotCids.some(c => c.equals(cid))) return false
      let superseded = this.snapshotCids.filter(c => {
        const base = this.bases.get(c.toString())
        return base != null && reaches(snapshot.covered, base.covered)
      })
      let kept = this.snapshotCids.filter(c => !superseded.includes(c))
      if (kept.length >= this.limit('maxSnapshots', 16)) {
        // fold the merged snapshots into one of this replica's own, and drop theirs
        this.checkFoldable()
        const previous = this.snapshotCids
        const own = await this.takeSnapshot(options)
        for (const c of previous) if (!c.equals(own.cid)) await this.init.blockstore.delete(c)
        superseded = []
        kept = this.snapshotCids
      }
      await this.init.blockstore.put(cid, bytes)
      const heads = this.headsAfter(snapshot, superseded)
      await this.writeRecord(heads, [...kept, cid])
      this.dropBases(superseded)
      this.absorbSnapshot(cid, snapshot, state)
      this.setHeads(heads)
      // the record no longer names them: a crash before this point leaves only unreferenced blocks
      for (const c of superseded) await this.init.blockstore.delete(c)
      this.init.clock.witness(snapshot.hlc)
      this.emitChange('snapshot', cid, snapshot.author as PrincipalId, snapshot.hlc, false)
      return true
    })
  }

  /**
   * Deletes the stored events the base snapshots cover — the history `compact` removes — without
   * signing a snapshot: for a replica that merged another author's snapshot and may not sign one of
   * its own (a member following an agent's session). Returns how many events were deleted.
   */
  async dropCovered(options: AbortOptions = {}): Promise<number> {
    return await this.exclusive(async () => {
      const drop = new Map<string, CID>()
      for (const [key, e] of this.known) if (this.coveredBySnapshot(e)) drop.set(key, CID.parse(key))
      if (drop.size === 0) return 0
      // an event that stays and names a dropped one as a parent: the record keeps that parent as
      // an anchor, so a replay knows it as inside the base instead of as lost history
      for (const key of this.known.keys()) {
        if (drop.has(key)) continue
        const event = await this.readStoredEvent(CID.parse(key)).catch(() => undefined)
        for (const p of event?.parents ?? []) {
          const k = p.toString()
          if (drop.has(k) && !this.snapshotHeads.has(k)) this.anchors.set(k, p)
        }
      }
      await this.writeRecord(this.headCids, this.snapshotCids)
      for (const [key, cid] of drop) {
        this.known.delete(key)
        this.coveredEvents.set(key, cid)
      }
      // the record no longer needs them: a crash from here on leaves only unreferenced blocks
      let removed = 0
      for (const cid of drop.values()) {
        options.signal?.throwIfAborted()
        await this.init.blockstore.delete(cid)
        removed++
      }
      this.log('dropped %d events covered by the base snapshots', removed)
      return removed
    })
  }

  /** Rebuilds the state from the stored record and blocks alone, without touching this log. */
  async replayStored(): Promise<S> {
    const copy = new Log(this.init)
    await copy.replay()
    return copy.state
  }

  // --- internals ---

  /**
   * Throws if this replica holds as many foreign snapshots as it merges and cannot fold them into
   * one of its own (more heads or covered authors than a snapshot may list): checked before any
   * fetch, so an offered snapshot then costs nothing.
   */
  private checkFoldable(): void {
    if (this.snapshotCids.length < this.limit('maxSnapshots', 16)) return
    if (this.unfoldable != null && this.unfoldable.until > Date.now()) throw this.unfoldable.error
    const authors = new Set(this.covered.keys())
    for (const e of this.known.values()) authors.add(e.author)
    // the own snapshot must fit the limits every receiver applies, its state included
    const bytes =
      dagCbor.encode(this.type.encodeState(this.state)).length + this.headCids.size * 40 + authors.size * 96 + 1024
    if (this.headCids.size > MAX_SNAPSHOT_HEADS || authors.size > MAX_COVERED_AUTHORS || bytes > MAX_SNAPSHOT_BYTES) {
      const error = new EventRejectedError(
        `this replica merged ${this.snapshotCids.length} snapshots and cannot fold them into its own ` +
          `(${this.headCids.size} heads, ${authors.size} authors, about ${bytes} bytes): it merges no more for now`
      )
      this.unfoldable = { until: Date.now() + SNAPSHOT_MISS_TTL, error }
      throw error
    }
  }

  private async takeSnapshot(options: AbortOptions): Promise<Block<Snapshot>> {
    options.signal?.throwIfAborted()
    if (this.headCids.size === 0) throw new EmptyLogError(`log ${this.id} has no events to snapshot`)
    // a snapshot every other replica would refuse is not this replica's base either
    const signer = this.signer
    await this.init.authorize(signer.principal, 'snapshot', { signal: options.signal })
    const covered = new Map(this.covered)
    for (const e of this.known.values()) raise(covered, e.author, e.hlc)
    const block = await signSnapshot(signer, {
      log: this.id,
      hlc: this.init.clock.tick(),
      heads: this.heads(),
      covered: Object.fromEntries(covered),
      state: this.type.encodeState(this.state)
    })
    await this.init.blockstore.put(block.cid, block.bytes)
    // the new base's heads stop every walk above the old anchors: the record needs none
    await this.writeRecord(this.headCids, [block.cid], [])
    this.anchors.clear()
    this.snapshotCids = [block.cid]
    this.bases.clear()
    this.bases.set(block.cid.toString(), { heads: [...this.headCids.keys()], covered: block.value.covered })
    // the old base's heads stay inside the new base, remembered like any covered event
    for (const h of this.snapshotHeads) if (!this.headCids.has(h)) this.coveredEvents.set(h, CID.parse(h))
    this.snapshotHeads = new Set(this.headCids.keys())
    for (const [author, t] of covered) raise(this.covered, author, t)
    return block
  }

  private absorbSnapshot(cid: CID, snapshot: Snapshot, state: S): void {
    this.type.merge(this.state, this.type.toDelta(state))
    this.snapshotCids = [...this.snapshotCids, cid]
    const heads = snapshot.heads.map(String)
    this.bases.set(cid.toString(), { heads, covered: snapshot.covered })
    for (const h of heads) this.snapshotHeads.add(h)
    for (const [author, t] of Object.entries(snapshot.covered)) raise(this.covered, author, t)
  }

  /**
   * Takes base snapshots out of the base (their state stays: a snapshot that supersedes them holds
   * it); their heads that no other base snapshot names stay inside the base as covered events.
   */
  private dropBases(cids: CID[]): void {
    if (cids.length === 0) return
    const dropped = new Set(cids.map(String))
    this.snapshotCids = this.snapshotCids.filter(c => !dropped.has(c.toString()))
    const gone: string[] = []
    for (const key of dropped) {
      gone.push(...(this.bases.get(key)?.heads ?? []))
      this.bases.delete(key)
    }
    const named = new Set([...this.bases.values()].flatMap(b => b.heads))
    for (const h of gone) {
      if (named.has(h)) continue
      this.snapshotHeads.delete(h)
      this.coveredEvents.set(h, CID.parse(h))
    }
  }

  /** Whether a base snapshot's history holds everything `snapshot` claims to cover. */
  private insideBase(snapshot: Snapshot): boolean {
    for (const base of this.bases.values()) if (reaches(base.covered, snapshot.covered)) return true
    return false
  }

  /**
   * The heads once `snapshot` is merged (and `superseded` dropped): a head the snapshot covers is
   * in its history, so it gives way to the snapshot's heads.
   */
  private headsAfter(snapshot: Snapshot, superseded: CID[]): Map<string, CID> {
    const kept = new Set(
      this.snapshotCids
        .filter(c => !superseded.some(s => s.equals(c)))
        .flatMap(c => this.bases.get(c.toString())?.heads ?? [])
    )
    const goneHeads = new Set(superseded.flatMap(c => this.bases.get(c.toString())?.heads ?? []))
    const covers = (key: string): boolean => {
      const e = this.known.get(key)
      if (e != null) {
        const t = snapshot.covered[e.author]
        return t != null && compareHlc(e.hlc, t) <= 0
      }
      return goneHeads.has(key) && !kept.has(key)
    }
    const heads = new Map<string, CID>()
    const replaced = new Set<string>()
    for (const [key, cid] of this.headCids) {
      if (covers(key)) replaced.add(key)
      else heads.set(key, cid)
    }
    for (const h of snapshot.heads) {
      const key = h.toString()
      if (!this.has(key) || replaced.has(key)) heads.set(key, h)
    }
    return heads
  }

  /**
   * True if a snapshot we merged covers this event: its author's events up to that time are in it.
   * Exact for authors whose events form one chain (each append's past holds all the heads); only for
   * an event whose signature has been checked.
   */
  private coveredBySnapshot(event: { author: string; hlc: Timestamp }): boolean {
    const t = this.covered.get(event.author)
    return t != null && compareHlc(event.hlc, t) <= 0
  }

  private async fetchMissing(
    heads: CID[],
    result: JoinResult,
    options: JoinOptions,
    covered: Map<string, Uint8Array>
  ): Promise<Map<string, Fetched<D>>> {
    const fetched = new Map<string, Fetched<D>>()
    const seen = new Set<string>()
    const maxEvents = this.limit('maxJoinEvents', 10_000)
    const maxBytes = this.limit('maxJoinBytes', 64 * 1024 * 1024)
    let bytes = 0
    const concurrency = this.limit('fetchConcurrency', 8)
    let frontier = heads.filter(h => isBlockCid(h) && !this.has(h))
    let walk: JoinOptions = { ...options, level: 0 }
    while (frontier.length > 0) {
      const next: CID[] = []
      for (let i = 0; i < frontier.length; i += concurrency) {
        const slice = frontier.slice(i, i + concurrency).filter(cid => {
          const key = cid.toString()
          if (seen.has(key) || this.has(key)) return false
          seen.add(key)
          const refusal = this.refused.get(key)
          if (refusal != null) result.rejected.push({ cid, error: refusal })
          return refusal == null
        })
        if (fetched.size + slice.length > maxEvents) {
          throw new HistoryTooLongError(`joining ${this.id} needs more than ${maxEvents} events: join from a snapshot`)
        }
        const checked = await Promise.all(slice.map(async cid => await this.fetchEvent(cid, result, walk, covered)))
        // what this round holds: the events it checked and the covered blocks it met
        for (const f of checked) bytes += f?.bytes.length ?? 0
        for (const cid of slice) bytes += covered.get(cid.toString())?.length ?? 0
        if (bytes > maxBytes) {
          throw new HistoryTooLongError(`joining ${this.id} needs more than ${maxBytes} bytes: join from a snapshot`)
        }
        for (const f of checked) {
          if (f == null) continue
          fetched.set(f.key, f)
          for (const p of f.event.parents) if (!seen.has(p.toString()) && !this.has(p)) next.push(p)
        }
      }
      frontier = next
      walk = { ...options, level: (walk.level ?? 0) + 1 }
    }
    return fetched
  }

  /**
   * Fetches and checks one event; records why it was not usable in `result`, and remembers the
   * refusals that cannot change. The signature is checked before anything else looks at the
   * event's claims (its coverage by a snapshot, its author's authority).
   */
  private async fetchEvent(
    cid: CID,
    result: JoinResult,
    options: JoinOptions,
    covered: Map<string, Uint8Array>
  ): Promise<Fetched<D> | undefined> {
    const key = cid.toString()
    let bytes = options.blocks?.get(key)
    try {
      if (bytes == null || (options.hashed !== true && !(await blockCid(bytes)).equals(cid))) {
        bytes = await this.fetchBlock(cid, {
          maxBytes: MAX_EVENT_BYTES,
          timeout: this.limit('fetchTimeout', 10_000),
          signal: options.signal,
          providers: options.providers,
          level: options.level
        })
      }
    } catch (err) {
      options.signal?.throwIfAborted()
      this.log('could not fetch %c - %e', cid, err)
      result.missing.push(cid)
      return undefined
    }
    let event: Event
    let deltas: D[]
    try {
      event = decodeEvent(bytes)
      if (event.log !== this.id) throw new EventRejectedError(`event of log ${event.log}, not ${this.id}`)
      await verifyEvent(event, bytes)
    } catch (err) {
      this.refuse(cid, err as Error, result)
      return undefined
    }
    try {
      this.init.clock.check(event.hlc)
    } catch (err) {
      this.reject(cid, err as Error, result)
      return undefined
    }
    // an event a merged snapshot already covers is in the state: stop here, without fetching its past
    if (this.coveredBySnapshot(event)) {
      if (!this.closed) this.coveredEvents.set(key, cid)
      covered.set(key, bytes)
      return undefined
    }
    try {
      deltas = event.ops.map(op => this.decodeOp(op))
    } catch (err) {
      this.refuse(cid, err as Error, result)
      return undefined
    }
    try {
      await this.init.authorize(event.author as PrincipalId, 'append', {
        signal: options.signal,
        providers: options.proofProviders ?? options.providers,
        deltas
      })
    } catch (err) {
      options.signal?.throwIfAborted()
      // an author that no grant can ever authorize is refused for good; another is asked about again
      if (err instanceof UnauthorizedEventError && err.permanent) this.refuse(cid, err, result)
      else this.reject(cid, err as Error, result)
      return undefined
    }
    return { key, cid, bytes, event, deltas }
  }

  /** Records a refusal that may change (authority, clock, missing parents): the block is checked again next time. */
  private reject(cid: CID, error: Error, result: JoinResult): void {
    this.log('rejected event %c - %e', cid, error)
    result.rejected.push({ cid, error })
  }

  /** Records a refusal that cannot change and remembers it: the block is not fetched or checked again. */
  private refuse(cid: CID, error: Error, result: JoinResult): void {
    this.refused.set(cid.toString(), error)
    this.reject(cid, error, result)
  }

  /**
   * A block from the local store, or else from `init.fetch` (within `timeout` ms). The store is
   * asked whether it holds the block before it is read: most blocks a join meets are missing, and a
   * missed read costs an exception.
   */
  private async fetchBlock(
    cid: CID,
    options: FetchOptions & { maxBytes: number; timeout: number }
  ): Promise<Uint8Array> {
    const { blockstore, fetch } = this.init
    if (fetch == null) {
      const signal = withTimeout(options.timeout, options.signal)
      return await readBlock(blockstore, cid, { maxBytes: options.maxBytes, signal })
    }
    if (await blockstore.has(cid, { signal: options.signal })) {
      try {
        return await readBlock(blockstore, cid, { maxBytes: options.maxBytes, signal: options.signal, offline: true })
      } catch {
        // deleted meanwhile, or not what it should be: fetched instead
      }
    }
    return await fetch(cid, options)
  }

  private decodeOp(op: unknown): D {
    try {
      return this.type.decodeDelta(op, this.init.limits?.crdt)
    } catch (err) {
      throw new EventRejectedError(`an op is not a valid ${this.type.name} delta: ${(err as Error).message}`)
    }
  }

  /** Applies fetched events in replay order, each only if its parents are in the state. */
  private async applyFetched(
    fetched: Map<string, Fetched<D>>,
    result: JoinResult,
    covered: Map<string, Uint8Array>
  ): Promise<void> {
    const order = [...fetched.values()].filter(f => !this.known.has(f.key)).sort(compareEvents)
    const accepted: Fetched<D>[] = []
    const acceptedKeys = new Map<string, Timestamp>()
    const heads = new Map(this.headCids)
    try {
      for (const f of order) {
        // a snapshot merged since the event was fetched may hold it already: its ops are not new here
        if (this.coveredBySnapshot(f.event)) {
          this.coveredEvents.set(f.key, f.cid)
          covered.set(f.key, f.bytes)
          continue
        }
        const problem = this.parentProblem(f.event, acceptedKeys, fetched) ?? this.deltaProblem(f)
        if (problem instanceof MissingParentsError) {
          this.reject(f.cid, problem, result)
          continue
        }
        if (problem != null) {
          this.refuse(f.cid, problem, result)
          continue
        }
        // merged now, so the next event's claims are checked against a state that includes this one
        try {
          for (const delta of f.deltas) this.type.merge(this.state, delta)
        } catch (err) {
          // an op that decoded but cannot be applied: undo the half-merged event, refuse it alone
          await this.rebuildState()
          for (const a of accepted) for (const delta of a.deltas) this.type.merge(this.state, delta)
          this.refuse(f.cid, new EventRejectedError(`an op cannot be applied: ${(err as Error).message}`), result)
          continue
        }
        accepted.push(f)
        acceptedKeys.set(f.key, f.event.hlc)
      }
      if (accepted.length === 0) return
      for (const f of accepted) await this.init.blockstore.put(f.cid, f.bytes)
      // a covered event an accepted one names as a parent is stored, so a replay finds it there;
      // other covered blocks are not: whoever signed them, they never reach the disk
      for (const f of accepted) {
        for (const p of f.event.parents) {
          const key = p.toString()
          const bytes = covered.get(key)
          if (bytes != null) await this.init.blockstore.put(p, bytes)
          else if (this.coveredEvents.has(key) && !this.snapshotHeads.has(key)) this.anchors.set(key, p)
        }
      }
      for (const f of accepted) heads.set(f.key, f.cid)
      // a head an accepted event descends from is no longer a head
      for (const f of accepted) for (const p of f.event.parents) heads.delete(p.toString())
      await this.writeRecord(heads, this.snapshotCids)
    } catch (err) {
      // the deltas are in the state but not on disk: rebuild the state from what is stored
      await this.rebuildState()
      throw err
    }
    this.setHeads(heads)
    for (const f of accepted) {
      this.known.set(f.key, { hlc: f.event.hlc, author: f.event.author })
      this.init.clock.witness(f.event.hlc)
      result.applied.push(f.cid)
      this.emitChange('event', f.cid, f.event.author as PrincipalId, f.event.hlc, false)
    }
  }

  /**
   * Why an event's ops cannot be its author's: they create another replica's dots or entries, stamp a
   * write with another time than the event's, or claim to have seen what its parents do not hold.
   * Checked with the event's parents in the state, before any op of the event is merged.
   */
  private deltaProblem(f: Fetched<D>): Error | undefined {
    const ctx = { replica: f.event.author, hlc: f.event.hlc }
    try {
      for (const delta of f.deltas) this.type.checkDelta(this.state, delta, ctx)
    } catch (err) {
      return new EventRejectedError(`an op is not one its author could make: ${(err as Error).message}`)
    }
    return undefined
  }

  /**
   * Why an event cannot be applied: a parent refused for good, or a timestamp not after a parent's
   * (both for good), or a parent missing (for now: MissingParentsError).
   */
  private parentProblem(
    event: Event,
    accepted: Map<string, Timestamp>,
    fetched: Map<string, Fetched<D>>
  ): Error | undefined {
    let missing: Error | undefined
    for (const p of event.parents) {
      const key = p.toString()
      const t = accepted.get(key) ?? this.known.get(key)?.hlc ?? fetched.get(key)?.event.hlc
      if (t != null && compareHlc(event.hlc, t) <= 0) {
        return new EventRejectedError(`timestamp ${event.hlc.join('.')} is not after its parent's ${t.join('.')}`)
      }
      if (accepted.has(key) || this.has(key)) continue
      const refusal = this.refused.get(key)
      if (refusal != null) return new EventRejectedError(`parent ${key} is refused: ${refusal.message}`)
      missing ??= new MissingParentsError(`parent ${key} is not in the state`)
    }
    return missing
  }

  /** Loads the record, merges its snapshots and replays every stored event after them. */
  private async replay(): Promise<void> {
    const record = await this.readRecord()
    for (const cid of record.snapshots) {
      try {
        const snapshot = decodeSnapshot(
          await readBlock(this.init.blockstore, cid, { maxBytes: MAX_SNAPSHOT_BYTES, offline: true })
        )
        this.absorbSnapshot(cid, snapshot, this.type.decodeState(snapshot.state, this.init.limits?.crdt))
        this.init.clock.witness(snapshot.hlc)
      } catch (err) {
        this.log.error('snapshot %c of log %s is unreadable - %e', cid, this.id, err)
      }
    }
    for (const cid of record.covered) {
      this.anchors.set(cid.toString(), cid)
      this.coveredEvents.set(cid.toString(), cid)
    }
    const found = new Map<string, { key: string; cid: CID; event: Event }>()
    const stack = [...record.heads]
    while (stack.length > 0) {
      const cid = stack.pop() as CID
      const key = cid.toString()
      if (found.has(key) || this.snapshotHeads.has(key) || this.coveredEvents.has(key)) continue
      let event: Event
      try {
        event = await this.readStoredEvent(cid)
      } catch (err) {
        this.log.error('event %c of log %s is missing from the blockstore - %e', cid, this.id, err)
        continue
      }
      if (this.coveredBySnapshot(event)) {
        // counted as covered only with its author's signature: a stray block cannot claim it
        try {
          await verifySigned(EVENT_DOMAIN, event)
          this.coveredEvents.set(key, cid)
        } catch (err) {
          this.log.error('event %c of log %s claims a covered author but is not signed by it - %e', cid, this.id, err)
        }
        continue
      }
      found.set(key, { key, cid, event })
      stack.push(...event.parents)
    }
    for (const f of [...found.values()].sort(compareEvents)) {
      if (f.event.parents.some(p => !this.has(p))) {
        this.log.error('event %c of log %s lost part of its history; it waits for peers', f.cid, this.id)
        continue
      }
      for (const op of f.event.ops) this.type.merge(this.state, this.decodeOp(op))
      this.known.set(f.key, { hlc: f.event.hlc, author: f.event.author })
      this.init.clock.witness(f.event.hlc)
    }
    const heads = new Map<string, CID>()
    for (const h of record.heads) if (this.has(h)) heads.set(h.toString(), h)
    this.setHeads(heads)
  }

  private async readStoredEvent(cid: CID): Promise<Event> {
    return decodeEvent(await readBlock(this.init.blockstore, cid, { maxBytes: MAX_EVENT_BYTES, offline: true }))
  }

  private async rebuildState(): Promise<void> {
    this.known.clear()
    this.anchors.clear()
    this.snapshotHeads = new Set()
    this.covered.clear()
    this.snapshotCids = []
    this.bases.clear()
    this.state = this.type.empty()
    await this.replay()
  }

  private async readRecord(): Promise<LogRecord> {
    let bytes: Uint8Array
    try {
      bytes = await this.init.datastore.get(this.recordKey)
    } catch (err) {
      if ((err as Error).name !== 'NotFoundError') throw err
      // remember the log (and its type) from the moment it is opened, even before its first event
      await this.writeRecord(new Map(), [])
      return { type: this.type.name, heads: [], snapshots: [], covered: [] }
    }
    const record = decodeRecord(this.id, bytes)
    if (record.type !== this.type.name) {
      throw new LogTypeMismatchError(`log ${this.id} holds a ${record.type}, not a ${this.type.name}`)
    }
    return record
  }

  private async writeRecord(
    heads: Map<string, CID>,
    snapshots: CID[],
    anchors: CID[] = this.anchors.values()
  ): Promise<void> {
    const record = {
      v: 1,
      type: this.type.name,
      heads: [...heads.values()],
      snapshots,
      ...(anchors.length > 0 ? { covered: anchors } : {})
    }
    await this.init.datastore.put(this.recordKey, dagCbor.encode(record))
  }

  private setHeads(heads: Map<string, CID>): void {
    this.headCids.clear()
    for (const [k, v] of [...heads].sort((a, b) => compareStrings(a[0], b[0]))) this.headCids.set(k, v)
  }

  private emitChange(
    kind: ChangeDetail['kind'],
    cid: CID,
    author: PrincipalId,
    hlc: HlcTimestamp,
    local: boolean,
    bytes?: Uint8Array,
    parents?: CID[]
  ): void {
    this.safeDispatchEvent('change', { detail: { kind, cid, author, hlc, local, bytes, parents } })
  }

  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.checkOpen()
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => {})
    return await run
  }

  private checkOpen(): void {
    if (this.closed) throw new LogClosedError(`log ${this.id} is closed`)
  }

  private limit(
    name:
      | 'maxJoinEvents'
      | 'maxJoinBytes'
      | 'fetchTimeout'
      | 'fetchConcurrency'
      | 'maxSnapshots'
      | 'maxRefused'
      | 'maxCoveredEvents',
    fallback: number
  ): number {
    return this.init.limits?.[name] ?? fallback
  }
}

/**
 * Refuses a snapshot whose covered vector claims an author's events later than the snapshot itself:
 * its author is trusted for the state up to its own `hlc`, not for writes it cannot have seen.
 */
function checkCovered(snapshot: Snapshot): void {
  const entries = Object.entries(snapshot.covered)
  if (entries.length > MAX_COVERED_AUTHORS) {
    throw new EventRejectedError(`snapshot covers ${entries.length} authors, more than ${MAX_COVERED_AUTHORS}`)
  }
  for (const [author, t] of entries) {
    if (compareHlc(t, snapshot.hlc) > 0) {
      throw new EventRejectedError(
        `snapshot at ${snapshot.hlc.join('.')} claims ${author}'s events up to ${t.join('.')}, after itself`
      )
    }
  }
}

/** Whether covered vector `a` is at or after `b` for every author `b` names. */
function reaches(a: Record<string, Timestamp>, b: Record<string, Timestamp>): boolean {
  for (const [author, t] of Object.entries(b)) {
    const mine = a[author]
    if (mine == null || compareHlc(mine, t) < 0) return false
  }
  return true
}

function raise(vector: Map<string, Timestamp>, author: string, t: Timestamp): void {
  const old = vector.get(author)
  if (old == null || compareHlc(t, old) > 0) vector.set(author, t)
}

interface LogRecord {
  type: string
  heads: CID[]
  snapshots: CID[]
  /** Anchors: covered events named as parents whose blocks may be gone. */
  covered: CID[]
}

function decodeRecord(id: string, bytes: Uint8Array): LogRecord {
  let record: { v?: unknown; type?: unknown; heads?: unknown; snapshots?: unknown; covered?: unknown }
  try {
    record = dagCbor.decode(bytes)
  } catch {
    throw new InvalidEventError(`log record of ${id} is not dag-cbor`)
  }
  const cids = (list: unknown): CID[] => {
    if (!Array.isArray(list) || !list.every(isBlockCid)) throw new InvalidEventError(`log record of ${id} is corrupt`)
    return list.map(c => CID.asCID(c) as CID)
  }
  if (record?.v !== 1) throw new InvalidEventError(`log record of ${id} has an unknown version`)
  if (typeof record.type !== 'string') throw new InvalidEventError(`log record of ${id} has no type`)
  return {
    type: record.type,
    heads: cids(record.heads),
    snapshots: cids(record.snapshots),
    covered: record.covered === undefined ? [] : cids(record.covered)
  }
}

/** The type name of log `id` in `datastore`, or undefined if it has none there. */
export async function storedLogType(
  datastore: Datastore,
  id: string,
  options: AbortOptions = {}
): Promise<string | undefined> {
  checkLogId(id)
  try {
    return decodeRecord(id, await datastore.get(new Key(RECORD_PREFIX + id), options)).type
  } catch (err) {
    if ((err as Error).name === 'NotFoundError') return undefined
    throw err
  }
}

/** The logs `datastore` holds (at most `limit`), with their type names; corrupt records are skipped. */
export async function storedLogs(
  datastore: Datastore,
  limit: number,
  options: AbortOptions = {}
): Promise<Array<{ id: string; type: string }>> {
  const out: Array<{ id: string; type: string }> = []
  for await (const { key, value } of datastore.query({ prefix: RECORD_PREFIX }, options)) {
    const id = key.toString().slice(RECORD_PREFIX.length)
    try {
      checkLogId(id)
      out.push({ id, type: decodeRecord(id, value).type })
    } catch {
      continue
    }
    if (out.length >= limit) break
  }
  return out
}
