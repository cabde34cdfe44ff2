/**
 * Agent sessions: an agent's state as its own replicated document, so another node can resume it.
 *
 * Agent P's session is the state-service document `sessionDocumentName(P)` (src/log/service.ts), an
 * OR-Map whose events and snapshots only P's key signs: every replica refuses anyone else's (the
 * node's own key included), members read it, and it is never public. Each `record` is one event: the
 * agent's state fields it changes, last-writer-wins per field (replay is deterministic: the log's
 * one order), the id of the message it just handled (per sender, so a mailbox can drop a message
 * redelivered after the agent moved), and the session's sequence number. A `checkpoint` is the log's
 * snapshot, signed by P, and by default deletes the history behind it; one is taken every
 * `checkpointEvery` events, so a resume replays at most that many.
 *
 * Members that may take the agent over `follow` its session: they hold it as it is written (events
 * announced by CID on the deltas topic, heads exchanged with the host every round), take each
 * checkpoint as their base and drop the history behind it. `resume` on such a member opens the copy
 * it holds with P's signer: the last checkpoint and the events after it, and how many those are.
 *
 * Acknowledged means replicated: `record` resolves only once `replicas` of the session's
 * followers (`replicateTo`, named by the host: the members that would take the agent over) hold the
 * event — each asked directly to join the host's heads and answer once it has them on disk
 * (`State.replicate`, `hold` on `/cyberspace/heads/2.1.0`); concurrent records share those requests.
 * So a message whose handling made the change can be acked, and the host may die right after: a
 * successor resumes with the change. Otherwise it fails with ReplicationTimeoutError (how many
 * confirmed of how many asked, and why the others did not) — the event is then on the host's disk
 * only, and `replicate` waits for it again — or at once, before writing anything, with
 * NotEnoughReplicasError when fewer followers are named than replicas asked. A checkpoint is pushed
 * to the followers as soon as it is taken.
 *
 * Layout of the document: `['seq']` the number of records, `['fields', name]` a field's value,
 * `['handled', sender]` `[message id, seq]` of the sender's last handled message.
 *
 * @example
 * const sessions = new Sessions(node.state, { checkpointEvery: 100 })
 * const session = await sessions.open(agentSigner)                 // on the host
 * session.replicateTo([successor.peerId])
 * await session.record({ plan: 'draft' }, { handled: { from: sender, id: 'm-17' } })   // held by the successor too
 * await othersSessions.follow(agentSigner.principal)                // on a successor, ahead of time
 * const { state, replayed } = await othersSessions.resume(agent, agentSigner)   // after the host died
 */
import * as dagCbor from '@ipld/dag-cbor'
import { isPrincipalId } from '../crypto/principal.ts'
import { MAX_SNAPSHOT_BYTES } from '../../protocols/log/codec.ts'
import { SESSION_PREFIX, sessionDocumentName, sessionOwner } from '../log/service.ts'
import { NotEnoughReplicasError } from '../log/errors.ts'
import {
  InvalidSessionChangeError,
  SessionLimitError,
  SessionNotFoundError,
  SessionSignerError
} from './session-errors.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Signer } from '../crypto/sign.ts'
import type { MapUpdates, OrMapDocument } from '../log/documents.ts'
import type { State } from '../log/service.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export { sessionDocumentName } from '../log/service.ts'

export interface SessionInit {
  /** Take a checkpoint once this many events follow the last one (1-10 000); default 100. */
  checkpointEvery?: number
  /** Whether a checkpoint deletes the history behind it; default true. */
  compact?: boolean
  /** Most state fields; default 1024. */
  maxFields?: number
  /** Largest dag-cbor encoding of one field's value, in bytes; default 16 KiB (at most 64 KiB). */
  maxValueBytes?: number
  /**
   * Largest size of the whole state, fields and handled ids, as estimated from their encodings, in
   * bytes; default 512 KiB, at most 768 KiB: a checkpoint is one snapshot of at most 1 MiB.
   */
  maxStateBytes?: number
  /** Most senders whose last handled message is kept; the longest unheard-of goes first. Default 4096. */
  maxSenders?: number
  /**
   * How many followers (members other than the host) must hold a record before `record` resolves
   * (0-16; 0: once it is on this node's disk). Default 0: a host that replicates names its
   * followers (`replicateTo`) and sets this (the agents service: 1).
   */
  replicas?: number
  /** Longest a record waits for its replicas, in ms (1-600 000); default 5 s. */
  replicationTimeout?: number
}

/** What a session holds. */
export interface SessionState {
  /** Number of records so far (the last record's sequence number). */
  seq: number
  /** The agent's state fields. */
  fields: Record<string, unknown>
  /** Per sender, the id of the last message the agent recorded as handled. */
  handled: Record<string, string>
}

/** A change of the agent's state: each field to its new value, or to `undefined` to delete it. */
export type SessionChange = Record<string, unknown>

export interface ReplicationOptions extends AbortOptions {
  /** How many followers must hold the session; default the session's `replicas`. */
  replicas?: number
  /** The followers to ask, this time; default those named with `replicateTo`. */
  followers?: PeerId[]
  /** Longest wait, in ms; default the session's `replicationTimeout`. */
  replicationTimeout?: number
}

export interface RecordOptions extends ReplicationOptions {
  /** The message whose handling made this change: its id becomes the sender's last handled one. */
  handled?: { from: PrincipalId; id: string }
}

export interface RecordResult {
  /** The event's CID. */
  cid: CID
  /** The followers that confirmed they hold it (the first `replicas` to answer). */
  replicas: PeerId[]
  /** The record's sequence number: 1 for the session's first. */
  seq: number
  /** The checkpoint this record triggered, if it did. */
  checkpoint?: CID
  /** Why the checkpoint this record was due to trigger failed (the record itself is written); the next record tries again. */
  checkpointError?: Error
}

export interface Checkpoint {
  snapshot: CID
  /** Events deleted behind it (0 without compaction). */
  removed: number
}

export interface Resumed {
  session: AgentSession
  state: SessionState
  /** Events replayed after the last checkpoint (all of them, if the copy holds none). */
  replayed: number
  /** The checkpoint the state starts from, if the copy holds one. */
  checkpoint?: CID
}

export interface FollowOptions extends AbortOptions {
  /** Peers to exchange heads with at once (e.g. the agent's host): otherwise the next round does. */
  peers?: PeerId[]
}

/** Longest field name, in UTF-16 code units. */
export const MAX_FIELD_NAME_LENGTH = 128
/** Longest message id recorded as handled. */
export const MAX_MESSAGE_ID_LENGTH = 256
/** What one entry costs in the state beyond its name and value: its dot, timestamp and encoding. */
const ENTRY_OVERHEAD = 128
const DOCUMENT_TYPE = 'or-map'
/** Most followers a record may wait for. */
const MAX_REPLICAS = 16

interface Limits {
  checkpointEvery: number
  compact: boolean
  maxFields: number
  maxValueBytes: number
  maxStateBytes: number
  maxSenders: number
  replicas: number
  replicationTimeout: number
}

function limitsOf(init: SessionInit): Limits {
  const limits: Limits = {
    checkpointEvery: init.checkpointEvery ?? 100,
    compact: init.compact ?? true,
    maxFields: init.maxFields ?? 1024,
    maxValueBytes: init.maxValueBytes ?? 16 * 1024,
    maxStateBytes: init.maxStateBytes ?? 512 * 1024,
    maxSenders: init.maxSenders ?? 4096,
    replicas: init.replicas ?? 0,
    replicationTimeout: init.replicationTimeout ?? 5000
  }
  const check = (name: keyof Limits, most: number, least = 1): void => {
    const n = limits[name] as number
    if (!Number.isSafeInteger(n) || n < least || n > most) {
      throw new RangeError(`${name} is an integer from ${least} to ${most}`)
    }
  }
  check('replicas', MAX_REPLICAS, 0)
  check('replicationTimeout', 600_000)
  check('checkpointEvery', 10_000)
  check('maxFields', 65_536)
  check('maxValueBytes', 64 * 1024)
  check('maxStateBytes', (MAX_SNAPSHOT_BYTES * 3) / 4)
  check('maxSenders', 65_536)
  return limits
}

/** The sessions of the agents this node hosts or follows, over its state service. */
export class Sessions {
  private readonly state: State
  private readonly init: SessionInit

  constructor(state: State, init: SessionInit = {}) {
    limitsOf(init)
    this.state = state
    this.init = init
  }

  /**
   * The session of the agent whose key `signer` holds, written from this node from now on: the copy
   * this node holds (followed, or written here before), or a new one.
   */
  async open(signer: Signer, options: AbortOptions = {}): Promise<AgentSession> {
    const name = sessionDocumentName(signer.principal)
    const document = await this.state.open(name, DOCUMENT_TYPE, { signer, signal: options.signal })
    return new AgentSession(signer.principal, document, this.init, this.state)
  }

  /**
   * Resumes agent `principal` here from the copy of its session this node holds: its last
   * checkpoint and the events after it. Throws SessionNotFoundError if this node holds none (it did
   * not follow the agent), SessionSignerError if `signer` is not the agent's key.
   */
  async resume(principal: PrincipalId, signer: Signer, options: AbortOptions = {}): Promise<Resumed> {
    if (signer.principal !== principal) {
      throw new SessionSignerError(`the signer is ${signer.principal}, not agent ${principal}`)
    }
    const name = sessionDocumentName(principal)
    const held = await this.state.find(name, options)
    if (held == null || (held.heads().length === 0 && held.log.snapshots().length === 0)) {
      throw new SessionNotFoundError(`this node holds no session of agent ${principal}: follow it first`)
    }
    const session = await this.open(signer, options)
    const snapshots = session.document.log.snapshots()
    return {
      session,
      state: session.state(),
      replayed: session.eventsSinceCheckpoint(),
      checkpoint: snapshots.length > 0 ? snapshots[snapshots.length - 1] : undefined
    }
  }

  /**
   * Holds agent `principal`'s session and keeps it in sync (also across restarts: stored documents
   * are reopened), so this node can resume the agent. Writes nothing.
   */
  async follow(principal: PrincipalId, options: FollowOptions = {}): Promise<void> {
    await this.state.open(sessionDocumentName(principal), DOCUMENT_TYPE, { signal: options.signal })
    await Promise.all(
      (options.peers ?? []).map(async peer => {
        try {
          await this.state.sync(peer, options)
        } catch {
          options.signal?.throwIfAborted()
          // an unreachable peer: the periodic rounds and the agent's announcements still come
        }
      })
    )
  }

  /** Stops holding agent `principal`'s session: its blocks and record are deleted. False if none was held. */
  async unfollow(principal: PrincipalId, options: AbortOptions = {}): Promise<boolean> {
    return await this.state.delete(sessionDocumentName(principal), options)
  }

  /** The agents whose sessions this node holds open (followed or written). */
  following(): PrincipalId[] {
    const out: PrincipalId[] = []
    for (const name of this.state.names()) {
      if (!name.startsWith(SESSION_PREFIX)) continue
      const owner = sessionOwner(name)
      if (owner != null) out.push(owner)
    }
    return out
  }
}

/** One agent's session, written from this node with the agent's key. */
export class AgentSession {
  readonly principal: PrincipalId
  readonly document: OrMapDocument
  private readonly limits: Limits
  /** Records and checkpoints run one at a time: each checks its bounds against the state it extends. */
  private queue: Promise<unknown> = Promise.resolve()
  /** Entry sizes of the state, as of `seq`. */
  private footprint?: Footprint
  /** Replicates the session to followers; without it, only `replicas: 0` records are possible. */
  private readonly stateService?: State
  /** The members that follow the session, the likeliest successor first. */
  private followerPeers: PeerId[] = []

  /** `document`: the agent's session document, opened with its signer through `state` (see `Sessions.open`). */
  constructor(principal: PrincipalId, document: OrMapDocument, init: SessionInit = {}, state?: State) {
    if (document.name !== sessionDocumentName(principal)) {
      throw new SessionSignerError(`${document.name} is not the session of agent ${principal}`)
    }
    this.principal = principal
    this.document = document
    this.limits = limitsOf(init)
    this.stateService = state
  }

  /**
   * Names the members that follow this session (the host knows them: the members ranked after it
   * for the agent), whom records wait for. They must follow it (`Sessions.follow`) to confirm.
   */
  replicateTo(followers: PeerId[]): void {
    this.followerPeers = [...followers]
  }

  /** The followers named with `replicateTo`. */
  followers(): PeerId[] {
    return [...this.followerPeers]
  }

  /**
   * Resolves once `replicas` followers hold the session as it is now, with those that confirmed
   * first; ReplicationTimeoutError at the deadline, NotEnoughReplicasError at once when fewer
   * followers are named. (A record waits for this itself; a host calls it before acking a message
   * it had recorded as handled before, whose record may not have been confirmed.)
   */
  async replicate(options: ReplicationOptions = {}): Promise<PeerId[]> {
    const { replicas, followers } = this.replicationOf(options)
    if (replicas === 0) return []
    if (this.stateService == null) throw new NotEnoughReplicasError(replicas, 0)
    return await this.stateService.replicate(this.document.name, {
      replicas,
      peers: followers,
      timeout: options.replicationTimeout ?? this.limits.replicationTimeout,
      signal: options.signal
    })
  }

  /** The replicas and followers `options` ask for; NotEnoughReplicasError if there are fewer followers than replicas. */
  private replicationOf(options: ReplicationOptions): { replicas: number; followers: PeerId[] } {
    const replicas = options.replicas ?? this.limits.replicas
    if (!Number.isSafeInteger(replicas) || replicas < 0 || replicas > MAX_REPLICAS) {
      throw new RangeError(`replicas is an integer from 0 to ${MAX_REPLICAS}`)
    }
    const followers = options.followers ?? this.followerPeers
    const distinct = new Set(followers.map(String)).size
    if (replicas > distinct || (replicas > 0 && this.stateService == null)) {
      throw new NotEnoughReplicasError(replicas, this.stateService == null ? 0 : distinct)
    }
    return { replicas, followers }
  }

  /** The session's state now. */
  state(): SessionState {
    const value = this.document.value()
    const handled: Record<string, string> = {}
    for (const [from, entry] of Object.entries(asRecord(value.handled))) {
      if (Array.isArray(entry) && typeof entry[0] === 'string') handled[from] = entry[0]
    }
    return {
      seq: typeof value.seq === 'number' ? value.seq : 0,
      fields: { ...asRecord(value.fields) },
      handled
    }
  }

  /** One field's value, or undefined. */
  get(field: string): unknown {
    return this.document.get(['fields', field])
  }

  /** The id of the last message from `from` recorded as handled, or undefined. */
  lastHandled(from: PrincipalId): string | undefined {
    const entry = this.document.get(['handled', from])
    return Array.isArray(entry) && typeof entry[0] === 'string' ? entry[0] : undefined
  }

  /** Events since the last checkpoint: what a resume from this copy would replay. */
  eventsSinceCheckpoint(): number {
    return this.document.log.eventsSinceSnapshot()
  }

  /**
   * Records a change of the agent's state as one event signed by the agent. Resolves once it is on
   * this node's disk (blocks and the log's record written, fsynced by the node's stores) and
   * `replicas` followers hold it too. Takes a checkpoint once `checkpointEvery` events follow the
   * last one. NotEnoughReplicasError (nothing written) if fewer followers are named than replicas
   * asked; ReplicationTimeoutError if too few confirmed in time (written here only: the next record
   * or `replicate` waits for it again).
   */
  async record(change: SessionChange, options: RecordOptions = {}): Promise<RecordResult> {
    // checked before anything is written: a record that cannot be confirmed is not made
    const replication = this.replicationOf(options)
    const result = await this.serially(async () => {
      const planned = this.checkChange(change, options)
      const { writes, evicted } = planned
      const seq = this.measure().seq + 1
      const cid = await this.document.batch((m: MapUpdates) => {
        for (const [name, value] of writes) {
          if (value === undefined) m.delete(['fields', name])
          else m.set(['fields', name], value)
        }
        for (const from of evicted) m.delete(['handled', from])
        if (options.handled != null) m.set(['handled', options.handled.from], [options.handled.id, seq])
        m.set('seq', seq)
      }, options)
      // every record writes `seq`: an event is always made
      if (cid == null) throw new InvalidSessionChangeError('the change made no event')
      this.commit(planned, seq, options.handled?.from)
      const result: RecordResult = { cid, seq, replicas: [] }
      if (this.eventsSinceCheckpoint() >= this.limits.checkpointEvery) {
        // the record is on disk whatever happens here: a failed checkpoint is tried again next time
        try {
          result.checkpoint = (await this.takeCheckpoint(options)).snapshot
        } catch (err) {
          result.checkpointError = err as Error
        }
      }
      return result
    })
    // outside the queue: the next records are written while this one waits, and share its pushes
    result.replicas = await this.replicate({ ...options, ...replication })
    return result
  }

  /**
   * Takes a checkpoint: a snapshot of the state signed by the agent, which followers take as their
   * base; with `compact` (the default) the history behind it is deleted here.
   */
  async checkpoint(options: AbortOptions = {}): Promise<Checkpoint> {
    return await this.serially(async () => await this.takeCheckpoint(options))
  }

  private async takeCheckpoint(options: AbortOptions): Promise<Checkpoint> {
    const log = this.document.log
    const checkpoint = this.limits.compact
      ? await log.compact(options)
      : { snapshot: (await log.snapshot(options)).cid, removed: 0 }
    // the followers take it as their base now rather than at their next heads round
    if (this.followerPeers.length > 0) this.stateService?.push(this.document.name, this.followerPeers)
    return checkpoint
  }

  /**
   * The writes of `change`, checked against the bounds with the state as it is now, and the
   * senders forgotten to make room for a new one (those unheard-of longest).
   */
  private checkChange(change: SessionChange, options: RecordOptions): Planned {
    if (change == null || typeof change !== 'object' || Array.isArray(change)) {
      throw new InvalidSessionChangeError('a change is an object of field names to values')
    }
    const now = this.measure()
    // entry sizes this record changes: `f <field>` and `h <sender>`, undefined for a deletion
    const sizes = new Map<string, number | undefined>()
    const writes: Array<[string, unknown]> = []
    let fields = now.fields
    for (const [name, value] of Object.entries(change)) {
      if (name.length < 1 || name.length > MAX_FIELD_NAME_LENGTH) {
        throw new InvalidSessionChangeError(
          `field name "${name.slice(0, 40)}" is not 1-${MAX_FIELD_NAME_LENGTH} characters`
        )
      }
      const had = now.sizes.has(`f ${name}`)
      if (value === undefined) {
        if (had) fields--
        sizes.set(`f ${name}`, undefined)
      } else {
        const bytes = encodedLength(value)
        if (bytes > this.limits.maxValueBytes) {
          throw new SessionLimitError(
            'maxValueBytes',
            `field ${name} is ${bytes} bytes, more than the session's ${this.limits.maxValueBytes}`
          )
        }
        if (!had) fields++
        sizes.set(`f ${name}`, entrySize(name, bytes))
      }
      writes.push([name, value])
    }
    if (fields > this.limits.maxFields) {
      throw new SessionLimitError(
        'maxFields',
        `the session would hold ${fields} fields, more than ${this.limits.maxFields}`
      )
    }
    const handled = options.handled
    let evicted: string[] = []
    if (handled != null) {
      if (!isPrincipalId(handled.from)) throw new InvalidSessionChangeError('handled.from is an agent principal')
      if (typeof handled.id !== 'string' || handled.id.length < 1 || handled.id.length > MAX_MESSAGE_ID_LENGTH) {
        throw new InvalidSessionChangeError(`handled.id is 1-${MAX_MESSAGE_ID_LENGTH} characters`)
      }
      if (!now.senders.has(handled.from) && now.senders.size >= this.limits.maxSenders) {
        evicted = [...now.senders]
          .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))
          .slice(0, now.senders.size + 1 - this.limits.maxSenders)
          .map(([from]) => from)
        for (const from of evicted) sizes.set(`h ${from}`, undefined)
      }
      sizes.set(`h ${handled.from}`, handledSize(handled.from, handled.id))
    }
    let total = now.total
    for (const [key, size] of sizes) total += (size ?? 0) - (now.sizes.get(key) ?? 0)
    if (total > this.limits.maxStateBytes) {
      throw new SessionLimitError(
        'maxStateBytes',
        `the session's state would take about ${total} bytes, more than ${this.limits.maxStateBytes}: delete fields`
      )
    }
    return { writes, evicted, sizes, fields, total }
  }

  /** The sizes of the state's entries, measured once and then kept up to date by each record. */
  private measure(): Footprint {
    const seq = this.document.get('seq')
    if (this.footprint != null && this.footprint.seq === seq) return this.footprint
    const state = this.document.value()
    const sizes = new Map<string, number>()
    const senders = new Map<string, number>()
    for (const [name, value] of Object.entries(asRecord(state.fields))) {
      sizes.set(`f ${name}`, entrySize(name, encodedLength(value)))
    }
    for (const [from, entry] of Object.entries(asRecord(state.handled))) {
      const [id, at] = Array.isArray(entry) ? entry : []
      sizes.set(`h ${from}`, handledSize(from, typeof id === 'string' ? id : ''))
      senders.set(from, typeof at === 'number' ? at : 0)
    }
    let total = 0
    for (const n of sizes.values()) total += n
    this.footprint = {
      seq: typeof seq === 'number' ? seq : 0,
      sizes,
      senders,
      fields: Object.keys(asRecord(state.fields)).length,
      total
    }
    return this.footprint
  }

  /** Brings the footprint up to date with a record that was written. */
  private commit(planned: Planned, seq: number, from: string | undefined): void {
    const footprint = this.measure()
    for (const [key, size] of planned.sizes) {
      if (size == null) footprint.sizes.delete(key)
      else footprint.sizes.set(key, size)
    }
    for (const gone of planned.evicted) footprint.senders.delete(gone)
    if (from != null) footprint.senders.set(from, seq)
    footprint.fields = planned.fields
    footprint.total = planned.total
    footprint.seq = seq
  }

  private async serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => {})
    return await run
  }
}

/** Entry sizes (by `f <field>` and `h <sender>`) and counts of the state as of record `seq`. */
interface Footprint {
  seq: number
  sizes: Map<string, number>
  /** Senders with a handled entry, and the seq of the record that set it. */
  senders: Map<string, number>
  fields: number
  total: number
}

/** What one record will write, checked, and the footprint it leaves. */
interface Planned {
  writes: Array<[string, unknown]>
  evicted: string[]
  sizes: Map<string, number | undefined>
  fields: number
  total: number
}

function handledSize(from: string, id: string): number {
  return entrySize(from, id.length + 16)
}

function entrySize(name: string, valueBytes: number): number {
  return name.length + valueBytes + ENTRY_OVERHEAD
}

function encodedLength(value: unknown): number {
  try {
    return dagCbor.encode(value).length
  } catch (err) {
    throw new InvalidSessionChangeError(`a value dag-cbor cannot hold: ${(err as Error).message}`)
  }
}

function asRecord(x: unknown): Record<string, unknown> {
  return x != null && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : {}
}
