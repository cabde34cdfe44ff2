/**
 * The swarm: how agents find help and share state. OFFER (I can help with these skills, at this
 * load), NEED (I need this skill, this urgently), REQUEST (please do this item of a board),
 * STATE_DELTA (these fields of an entity changed; merged per field, last writer by HLC wins) and
 * HANDOFF (take over this item, with its state). Each message is signed by the sending agent and
 * published on the gossipsub topic `/cyberspace/swarm/1.0.0/<namespace>`; one that names a
 * recipient (`to`) goes through the mailbox instead (type `swarm.<type>`) and reaches only that
 * agent's host. Wire format and limits: protocols/swarm/.
 *
 * On receipt, in this order, before anything is delivered: the forwarding peer's budget (messages
 * a minute, validations in flight; a peer with too many refusals is dropped unchecked for a while)
 * → the bytes' refusal remembered (a message refused before is not checked again) → decode within
 * limits → expiry and clock drift → replay window by (from, id), kept until each message expires →
 * the sender's signature → the sending agent's budget → authority: `(cyberspace (swarm <type>
 * <subject>))` by this node's ACL for every subject, a proof asked of the forwarding peer only →
 * delivery: the tables below, then a `message` event. A refusal is a named error (swarm-errors.ts),
 * recorded (`refusals()`, a `refused` event) and, on the topic, told to gossipsub: Reject (the
 * forwarding peer is penalised by the topic's score) for malformed, forged, replayed, expired and
 * unauthorized messages; Ignore for budgets and clock drift.
 *
 * Tables (all bounded): `offers(skill?)` — each agent's latest unexpired offer, least loaded first;
 * `needs(skill?)` — unexpired needs, most urgent first; `entities()` — STATE_DELTA merged per field
 * by (HLC, sender, id), at most 10,000 entities and 64 MiB of values: the entity changed longest ago
 * here is forgotten first (a later delta brings it back with that delta's fields only).
 *
 * @example
 * const node = await memoryNode({ services: { swarm: swarm() } })
 * const s = node.libp2p.services.swarm as Swarm
 * s.addEventListener('message', e => console.log(e.detail.type, e.detail.from))
 * await s.publish({ type: 'offer', body: { skills: ['review'], load: 0.2 } }, { as: agent.signer })
 * await s.publish({ type: 'handoff', body: { board: 'b', item: 't1' } }, { as: agent.signer, to: peerAgent })
 * s.offers('review') // [{ from, skills, load, … }]
 */
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { sha256 } from '@noble/hashes/sha2.js'
import * as dagCbor from '@ipld/dag-cbor'
import { TypedEventEmitter } from 'main-event'
import { base16 } from 'multiformats/bases/base16'
import {
  checkUnsignedSwarmMessage,
  decodeSwarmMessage,
  encodeSwarmMessage,
  MAX_SWARM_TTL_MS,
  swarmMailboxType,
  swarmSigningBody,
  swarmSubjects,
  swarmTopic,
  swarmTypeOfMailboxType,
  SWARM_SIGNING_DOMAIN,
  URGENCIES
} from '../../protocols/swarm/codec.ts'
import { compareHlc, Hlc } from '../clock/hlc.ts'
import { isPrincipalId, principalPublicKey } from '../crypto/principal.ts'
import { verifyAs } from '../crypto/sign.ts'
import { PeerBudget } from '../peer-budget.ts'
import { RecentMap } from '../recent-map.ts'
import { spkiTimeMs } from '../spki/cert.ts'
import {
  ClockDriftError,
  DuplicateSwarmMessageError,
  InvalidSwarmMessageError,
  SwarmBusyError,
  SwarmMailboxMissingError,
  SwarmMessageExpiredError,
  SwarmNotRunningError,
  SwarmRateLimitedError,
  SwarmSignatureError,
  SwarmTopicInUseError,
  UnauthorizedSwarmSenderError
} from './swarm-errors.ts'
import { swarmTag } from './tags.ts'
import type {
  SwarmBodies,
  SwarmMessage,
  SwarmType,
  UnsignedSwarmMessage,
  Urgency
} from '../../protocols/swarm/codec.ts'
import type { Mailbox, Receipt } from '../actor/mailbox-service.ts'
import type { HlcTimestamp } from '../clock/hlc.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Signer } from '../crypto/sign.ts'
import type { Spki } from '../spki/service.ts'
import type { GossipSub, Message } from '@libp2p/gossipsub'
import type { TopicScoreParams } from '@libp2p/gossipsub/score'
import type { AbortOptions, ComponentLogger, Logger, PeerId, Startable, TypedEventTarget } from '@libp2p/interface'

export type { SwarmBodies, SwarmMessage, SwarmType, Urgency } from '../../protocols/swarm/codec.ts'

export interface SwarmInit {
  /** The topic's namespace (`/cyberspace/swarm/1.0.0/<namespace>`); default `default`. */
  namespace?: string
  /** The clock of expiry checks; default Date.now. */
  now?: () => number
  /** The hybrid logical clock messages are stamped with and received into; default a new one on `now`. */
  clock?: Hlc
  /** Life of a published message in ms, 1 to 600 000; default 60 000. */
  ttl?: number
  /** Messages one forwarding peer may hand this node a minute (topic or direct); default 6000, bursts of 600. */
  messagesPerPeerPerMinute?: number
  /** Validations in flight per forwarding peer; default 8 (more wait their turn). */
  validationsPerPeer?: number
  /** Messages of one forwarding peer waiting for a validation slot; default 64 (more are ignored). */
  queuedPerPeer?: number
  /** Refused messages a peer may send a minute before its messages are dropped unchecked for a while; default 30. */
  refusalsPerPeerPerMinute?: number
  /** Messages one sending agent may have delivered here a minute; default 1200, bursts of 120. */
  messagesPerAgentPerMinute?: number
  /** Unexpired messages remembered against replay; default 65 536 (when full, new ones are refused with SwarmBusyError). */
  maxRemembered?: number
  /** Entities held; default 10 000. */
  maxEntities?: number
  /** Fields one entity holds; default 256 (a delta's new field past it is dropped here). */
  maxEntityFields?: number
  /** Encoded bytes of all entities' field values; default 64 MiB. */
  maxEntityBytes?: number
  /** Agents whose latest offer is held; default 10 000. */
  maxOffers?: number
  /** Open needs held; default 10 000. */
  maxNeeds?: number
  /** Refusals kept for `refusals()`; default 256. */
  maxRefusalsKept?: number
  /** How long an authorization is reused (at the same SPKI epoch), in ms; default 60 s. */
  authorizationTtl?: number
  /** How long a proof asked of the forwarding peer may take, in ms; default 5 s. */
  proofTimeout?: number
}

export interface SwarmComponents {
  pubsub: GossipSub
  spki: Spki
  logger: ComponentLogger
  /** The mailbox directed messages go through; also settable later (`setMailbox`) or per publish. */
  mailbox?: Mailbox
}

/** What to publish: a type and its body (the service adds id, sender, HLC, expiry and signature). */
export type SwarmDraft = { [T in SwarmType]: { type: T; body: SwarmBodies[T] } }[SwarmType]

export interface SwarmPublishOptions extends AbortOptions {
  /** The sending agent's key: it signs the message, and its chain must grant the message's tags. */
  as: Signer
  /** The one agent the message is for: it goes through the mailbox (from `as`, hosted on this node). */
  to?: PrincipalId
  /** Life of the message in ms (1 to 600 000); default the service's. */
  ttl?: number
  /** The mailbox for a directed message; default the one set or passed as a component. */
  mailbox?: Mailbox
}

export interface SwarmPublished {
  message: SwarmMessage
  /** Peers gossipsub sent it to (0 for a directed message, or when nobody else subscribes). */
  recipients: number
  /** For a directed message: the mailbox's receipt (the recipient handled it). */
  receipt?: Receipt
}

export interface AcceptDirectOptions extends AbortOptions {
  /** The mailbox envelope's sender, recipient and type: each must match the swarm message it carried. */
  from?: PrincipalId
  to?: PrincipalId
  type?: string
}

/** Where a field's value came from: what last-writer-wins compares (HLC, then sender, then id). */
export interface SwarmStamp {
  hlc: HlcTimestamp
  from: PrincipalId
  id: string
}

export interface SwarmEntity {
  entity: string
  fields: Record<string, unknown>
  stamps: Record<string, SwarmStamp>
  /** The latest HLC among its fields. */
  updated: HlcTimestamp
}

export interface SwarmOffer {
  from: PrincipalId
  id: string
  skills: string[]
  load: number
  capacity?: number
  hlc: HlcTimestamp
  expires: number
}

export interface SwarmNeed {
  from: PrincipalId
  id: string
  skill: string
  urgency: Urgency
  description?: string
  board?: string
  item?: string
  hlc: HlcTimestamp
  expires: number
}

/** A message this node refused, and why. */
export interface SwarmRefusal {
  /** ms since the epoch. */
  at: number
  /** The named error (swarm-errors.ts). */
  error: string
  message: string
  via: 'topic' | 'direct'
  /** The forwarding peer, when known. */
  peer?: string
  /** Sender, id and type, when the message decoded. */
  from?: string
  id?: string
  type?: SwarmType
}

export interface SwarmStats {
  /** Messages handed to the checks (topic and direct). */
  received: number
  delivered: number
  published: number
  refused: number
  /** Refusals by error name. */
  refusedBy: Record<string, number>
  /** Signature verifications made. */
  verifications: number
  /** Authority checks made (not answered from the cache). */
  authorizations: number
}

export interface SwarmEvents {
  /** A message passed every check (or this node published it): its tables are updated already. */
  message: CustomEvent<SwarmMessage>
  refused: CustomEvent<SwarmRefusal>
}

export interface Swarm extends TypedEventTarget<SwarmEvents> {
  /** The gossipsub topic of this namespace. */
  readonly topic: string
  /**
   * Signs and sends a message as `options.as`: on the topic, or to `options.to` through the
   * mailbox. Checks the fields (InvalidSwarmMessageError) and that this node's ACL grants the
   * sender every tag the message needs (UnauthorizedSwarmSenderError) before sending anything.
   */
  publish(draft: SwarmDraft, options: SwarmPublishOptions): Promise<SwarmPublished>
  /**
   * Runs the checks on a directed message that came through the mailbox (type `swarm.<type>`, its
   * body the encoded message) and delivers it; returns it, or throws the named refusal.
   */
  acceptDirect(bytes: Uint8Array, fromPeer?: PeerId, options?: AcceptDirectOptions): Promise<SwarmMessage>
  setMailbox(mailbox: Mailbox | undefined): void
  entities(): SwarmEntity[]
  entity(id: string): SwarmEntity | undefined
  /** Each agent's latest unexpired offer (of `skill`, if given), least loaded first. */
  offers(skill?: string): SwarmOffer[]
  /** Unexpired needs (of `skill`, if given), most urgent first, then oldest first. */
  needs(skill?: string): SwarmNeed[]
  /** The latest refusals, oldest first. */
  refusals(): SwarmRefusal[]
  stats(): SwarmStats
}

/**
 * Gossipsub scores for the swarm topic (installed for this node's topic at start unless the node
 * configured its own): a rejected message (malformed, forged, replayed, expired, unauthorized)
 * costs the peer that forwarded it.
 */
export const SWARM_TOPIC_SCORE_PARAMS: TopicScoreParams = {
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1000,
  timeInMeshCap: 100,
  firstMessageDeliveriesWeight: 0.1,
  firstMessageDeliveriesDecay: 0.9,
  firstMessageDeliveriesCap: 50,
  meshMessageDeliveriesWeight: 0,
  meshMessageDeliveriesDecay: 0.5,
  meshMessageDeliveriesCap: 100,
  meshMessageDeliveriesThreshold: 1,
  meshMessageDeliveriesWindow: 10,
  meshMessageDeliveriesActivation: 5000,
  meshFailurePenaltyWeight: 0,
  meshFailurePenaltyDecay: 0.5,
  // squared: one rejected message costs a peer a little, a handful graylists it
  invalidMessageDeliveriesWeight: -20,
  invalidMessageDeliveriesDecay: 0.5
}

const URGENCY_RANK: Record<Urgency, number> = Object.fromEntries(URGENCIES.map((u, i) => [u, i])) as Record<
  Urgency,
  number
>

/** Refusals that are the message's fault (gossipsub: Reject); anything else is Ignore. */
const REJECTED = new Set([
  'InvalidSwarmMessageError',
  'SwarmSignatureError',
  'SwarmMessageExpiredError',
  'DuplicateSwarmMessageError',
  'UnauthorizedSwarmSenderError'
])

/** Refusals a message's bytes are remembered by: the same bytes get the same answer unchecked. */
const REMEMBERED: Record<string, new (message: string) => Error> = {
  SwarmSignatureError,
  SwarmMessageExpiredError,
  UnauthorizedSwarmSenderError
}

const randomHex = (bytes: number): string => base16.baseEncode(crypto.getRandomValues(new Uint8Array(bytes)))

function compareStamps(a: SwarmStamp, b: SwarmStamp): number {
  const byHlc = compareHlc(a.hlc, b.hlc)
  if (byHlc !== 0) return byHlc
  if (a.from !== b.from) return a.from < b.from ? -1 : 1
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

/**
 * (from, id) of messages delivered, each kept at least until its message expires: a replay is
 * caught whenever it would still be accepted. Bucketed by the minute of expiry, so forgetting is
 * cheap; when it holds `capacity` unexpired entries, `add` refuses (SwarmBusyError) rather than
 * forget one early.
 */
export class ReplayWindow {
  private readonly capacity: number
  private readonly now: () => number
  private readonly entries = new Map<string, number>()
  private readonly buckets = new Map<number, string[]>()

  constructor(capacity: number, now: () => number) {
    this.capacity = Math.max(1, Math.floor(capacity))
    this.now = now
  }

  get size(): number {
    return this.entries.size
  }

  has(key: string): boolean {
    return this.entries.has(key)
  }

  /** Remembers `key` until `until` (ms); SwarmBusyError when the window is full of unexpired entries. */
  add(key: string, until: number): void {
    this.sweep()
    if (this.entries.has(key)) return
    if (this.entries.size >= this.capacity)
      throw new SwarmBusyError(`this node remembers ${this.capacity} unexpired messages: try again later`)
    this.entries.set(key, until)
    const bucket = Math.floor(until / 60_000)
    const keys = this.buckets.get(bucket)
    if (keys == null) this.buckets.set(bucket, [key])
    else keys.push(key)
  }

  /** Forgets every bucket whose minute has passed. */
  private sweep(): void {
    const now = this.now()
    for (const [bucket, keys] of this.buckets) {
      if ((bucket + 1) * 60_000 > now) continue
      for (const key of keys) this.entries.delete(key)
      this.buckets.delete(bucket)
    }
  }

  clear(): void {
    this.entries.clear()
    this.buckets.clear()
  }
}

interface FieldRecord {
  value: unknown
  stamp: SwarmStamp
  bytes: number
}

interface EntityRecord {
  fields: Map<string, FieldRecord>
  updated: HlcTimestamp
  bytes: number
}

/**
 * STATE_DELTA merged per field: a field takes a delta's value when the delta's stamp (HLC, then
 * sender, then id) is greater than the one it holds, so every node that received the same deltas
 * holds the same fields, whatever the order. Bounded: at most `maxEntities` entities, `maxFields`
 * fields each and `maxBytes` of encoded values; past a bound the entity changed longest ago here
 * is forgotten (past `maxFields`, a new field is dropped, and nodes may then differ).
 */
export class EntityTable {
  private readonly entities = new Map<string, EntityRecord>()
  private readonly maxEntities: number
  private readonly maxFields: number
  private readonly maxBytes: number
  private bytes = 0

  constructor(limits: { maxEntities?: number; maxFields?: number; maxBytes?: number } = {}) {
    this.maxEntities = limits.maxEntities ?? 10_000
    this.maxFields = limits.maxFields ?? 256
    this.maxBytes = limits.maxBytes ?? 64 * 1024 * 1024
  }

  get size(): number {
    return this.entities.size
  }

  /** Merges one delta; returns the names of the fields it changed. */
  merge(entity: string, fields: Record<string, unknown>, stamp: SwarmStamp): string[] {
    let record = this.entities.get(entity)
    const fresh = record == null
    record ??= { fields: new Map(), updated: stamp.hlc, bytes: 0 }
    const changed: string[] = []
    for (const [name, value] of Object.entries(fields)) {
      const held = record.fields.get(name)
      if (held != null && compareStamps(stamp, held.stamp) <= 0) continue
      if (held == null && record.fields.size >= this.maxFields) continue
      const bytes = dagCbor.encode(value).length
      record.bytes += bytes - (held?.bytes ?? 0)
      this.bytes += bytes - (held?.bytes ?? 0)
      record.fields.set(name, { value, stamp, bytes })
      changed.push(name)
    }
    if (changed.length === 0) return changed
    if (compareHlc(stamp.hlc, record.updated) > 0 || fresh) record.updated = stamp.hlc
    // the most recently changed last: the first is forgotten first
    this.entities.delete(entity)
    this.entities.set(entity, record)
    for (const [oldest, old] of this.entities) {
      if (this.entities.size <= this.maxEntities && this.bytes <= this.maxBytes) break
      if (oldest === entity && this.entities.size === 1) break
      this.entities.delete(oldest)
      this.bytes -= old.bytes
    }
    return changed
  }

  get(entity: string): SwarmEntity | undefined {
    const record = this.entities.get(entity)
    return record == null ? undefined : this.view(entity, record)
  }

  list(): SwarmEntity[] {
    return [...this.entities].map(([entity, record]) => this.view(entity, record))
  }

  clear(): void {
    this.entities.clear()
    this.bytes = 0
  }

  private view(entity: string, record: EntityRecord): SwarmEntity {
    const fields: Record<string, unknown> = {}
    const stamps: Record<string, SwarmStamp> = {}
    for (const name of [...record.fields.keys()].sort()) {
      const field = record.fields.get(name) as FieldRecord
      fields[name] = field.value
      stamps[name] = field.stamp
    }
    return { entity, fields, stamps, updated: record.updated }
  }
}

/** Entries in insertion order, at most `max`: the expired go first, then the oldest. */
class ExpiringTable<V extends { expires: number }> {
  private readonly entries = new Map<string, V>()
  private readonly max: number
  private readonly now: () => number

  constructor(max: number, now: () => number) {
    this.max = Math.max(1, max)
    this.now = now
  }

  get(key: string): V | undefined {
    return this.entries.get(key)
  }

  set(key: string, value: V): void {
    this.entries.delete(key)
    if (this.entries.size >= this.max) this.dropExpired()
    for (const oldest of this.entries.keys()) {
      if (this.entries.size < this.max) break
      this.entries.delete(oldest)
    }
    this.entries.set(key, value)
  }

  /** The unexpired entries (the expired are forgotten on the way). */
  live(): V[] {
    this.dropExpired()
    return [...this.entries.values()]
  }

  clear(): void {
    this.entries.clear()
  }

  private dropExpired(): void {
    const now = this.now()
    for (const [key, value] of this.entries) if (value.expires <= now) this.entries.delete(key)
  }
}

/**
 * Validations in flight per peer: at most `active` at once, at most `queued` more waiting their
 * turn (gossipsub hands over a burst at once; an honest relay's burst waits rather than being lost),
 * and beyond that refused. Keys with nothing active or waiting are forgotten.
 */
class ValidationGate {
  private readonly active: number
  private readonly queued: number
  private readonly peers = new Map<string, { active: number; waiting: Array<() => void> }>()

  constructor(active: number, queued: number) {
    this.active = Math.max(1, active)
    this.queued = Math.max(0, queued)
  }

  /** Resolves true once `key` has a slot (call `leave` after), false when its queue is full. */
  async enter(key: string): Promise<boolean> {
    let peer = this.peers.get(key)
    if (peer == null) {
      peer = { active: 0, waiting: [] }
      this.peers.set(key, peer)
    }
    if (peer.active < this.active) {
      peer.active++
      return true
    }
    if (peer.waiting.length >= this.queued) return false
    const waiting = peer.waiting
    await new Promise<void>(resolve => waiting.push(resolve))
    return true
  }

  leave(key: string): void {
    const peer = this.peers.get(key)
    if (peer == null) return
    const next = peer.waiting.shift()
    // the slot passes to the next in line
    if (next != null) next()
    else if (--peer.active === 0) this.peers.delete(key)
  }
}

/** A refusal on its way out of the checks: the error, and what was known of the message. */
class Refused extends Error {
  readonly error: Error
  readonly message_?: SwarmMessage
  constructor(error: Error, message?: SwarmMessage) {
    super(error.message)
    this.error = error
    this.message_ = message
  }
}

class SwarmService extends TypedEventEmitter<SwarmEvents> implements Swarm, Startable {
  readonly topic: string
  private readonly components: SwarmComponents
  private readonly log: Logger
  private readonly now: () => number
  private readonly clock: Hlc
  private readonly ttl: number
  private readonly authorizationTtl: number
  private readonly proofTimeout: number
  private readonly maxRefusalsKept: number
  private readonly peerMessages: PeerBudget
  private readonly validations: ValidationGate
  private readonly peerRefusals: PeerBudget
  private readonly agentMessages: PeerBudget
  private readonly refusalsPerPeerPerMinute: number
  /** Peers whose refusal budget ran out, until when their messages are dropped unchecked. */
  private readonly cooling = new RecentMap<string, number>(1024)
  /** Bytes refused before (sha256, hex), with the refusal and the SPKI epoch it was made at. */
  private readonly refusedBytes = new RecentMap<
    string,
    { name: string; message: string; epoch: number; field?: string }
  >(4096)
  private readonly replay: ReplayWindow
  /** Checks under way by (from, id): a second copy waits for the first. */
  private readonly checking = new Map<string, Promise<void>>()
  private readonly authorized = new RecentMap<string, { epoch: number; until: number }>(4096)
  private readonly unauthorized = new RecentMap<string, { epoch: number; until: number; message: string }>(4096)
  private readonly entityTable: EntityTable
  private readonly offerTable: ExpiringTable<SwarmOffer>
  private readonly needTable: ExpiringTable<SwarmNeed>
  private readonly refusalLog: SwarmRefusal[] = []
  private readonly counters: SwarmStats = {
    received: 0,
    delivered: 0,
    published: 0,
    refused: 0,
    refusedBy: {},
    verifications: 0,
    authorizations: 0
  }

  private mailbox?: Mailbox
  private running = false
  private subscribed = false
  private shutdown = new AbortController()

  constructor(components: SwarmComponents, init: SwarmInit) {
    super()
    this.components = components
    this.log = components.logger.forComponent('cyberspace:swarm')
    this.topic = swarmTopic(init.namespace)
    this.now = init.now ?? Date.now
    this.clock = init.clock ?? new Hlc({ now: this.now })
    this.ttl = init.ttl ?? 60_000
    if (!Number.isSafeInteger(this.ttl) || this.ttl < 1 || this.ttl > MAX_SWARM_TTL_MS)
      throw new RangeError(`ttl must be 1-${MAX_SWARM_TTL_MS} ms`)
    this.authorizationTtl = init.authorizationTtl ?? 60_000
    this.proofTimeout = init.proofTimeout ?? 5000
    this.maxRefusalsKept = Math.max(1, init.maxRefusalsKept ?? 256)
    const perPeer = init.messagesPerPeerPerMinute ?? 6000
    this.peerMessages = new PeerBudget(perPeer, Infinity, this.now, 1024, Math.max(1, Math.ceil(perPeer / 10)))
    this.validations = new ValidationGate(init.validationsPerPeer ?? 8, init.queuedPerPeer ?? 64)
    this.refusalsPerPeerPerMinute = init.refusalsPerPeerPerMinute ?? 30
    this.peerRefusals = new PeerBudget(this.refusalsPerPeerPerMinute, Infinity, this.now)
    const perAgent = init.messagesPerAgentPerMinute ?? 1200
    this.agentMessages = new PeerBudget(perAgent, Infinity, this.now, 4096, Math.max(1, Math.ceil(perAgent / 10)))
    this.replay = new ReplayWindow(init.maxRemembered ?? 65_536, this.now)
    this.entityTable = new EntityTable({
      maxEntities: init.maxEntities,
      maxFields: init.maxEntityFields,
      maxBytes: init.maxEntityBytes
    })
    this.offerTable = new ExpiringTable(init.maxOffers ?? 10_000, this.now)
    this.needTable = new ExpiringTable(init.maxNeeds ?? 10_000, this.now)
    this.mailbox = components.mailbox
  }

  readonly [Symbol.toStringTag] = 'cyberspace/swarm'

  async start(): Promise<void> {
    const { pubsub } = this.components
    // two swarms on one topic would replace each other's validator (and the first to stop would remove both)
    const validator = pubsub.topicValidators.get(this.topic)
    if (validator != null && validator !== this.validate)
      throw new SwarmTopicInUseError(
        `${this.topic} is validated by another service on this node: use another namespace`
      )
    this.shutdown = new AbortController()
    // gossipsub penalises rejected messages only on topics it scores; the node configures its own
    // topics (node.ts), and a namespace it did not know gets these params here (the GossipSub
    // interface has no setter: this reaches into @libp2p/gossipsub's peer score, and does nothing
    // where that is shaped otherwise)
    const scored = pubsub as { score?: { params?: { topics?: Record<string, TopicScoreParams> } } }
    const scores = scored.score?.params?.topics
    if (scores != null && scores[this.topic] == null) scores[this.topic] = SWARM_TOPIC_SCORE_PARAMS
    pubsub.topicValidators.set(this.topic, this.validate)
    this.running = true
    this.subscribe()
  }

  /** Gossipsub is started by now when this service is one of libp2p's (libp2p starts services together). */
  afterStart(): void {
    this.subscribe()
  }

  async stop(): Promise<void> {
    this.running = false
    this.shutdown.abort(new SwarmNotRunningError('the swarm service stopped'))
    const { pubsub } = this.components
    if (this.subscribed) {
      try {
        pubsub.unsubscribe(this.topic)
      } catch (err) {
        this.log('could not unsubscribe from %s - %e', this.topic, err)
      }
    }
    this.subscribed = false
    if (pubsub.topicValidators.get(this.topic) === this.validate) pubsub.topicValidators.delete(this.topic)
    this.replay.clear()
    this.checking.clear()
    this.entityTable.clear()
    this.offerTable.clear()
    this.needTable.clear()
  }

  private subscribe(): void {
    if (!this.running || this.subscribed) return
    try {
      this.components.pubsub.subscribe(this.topic)
      this.subscribed = true
    } catch (err) {
      // gossipsub not started yet: afterStart subscribes
      this.log.trace('not subscribed to %s yet - %e', this.topic, err)
    }
  }

  setMailbox(mailbox: Mailbox | undefined): void {
    this.mailbox = mailbox
  }

  // ---------------------------------------------------------------- publishing

  async publish(draft: SwarmDraft, options: SwarmPublishOptions): Promise<SwarmPublished> {
    if (!this.running) throw new SwarmNotRunningError('the swarm service is not running')
    options.signal?.throwIfAborted()
    const signer = options.as
    if (signer == null || !isPrincipalId(signer.principal))
      throw new InvalidSwarmMessageError('from', 'publishing needs a signer (`as`) of an agent principal')
    if (options.to !== undefined && !isPrincipalId(options.to))
      throw new InvalidSwarmMessageError('to', 'is an Ed25519 principal id')
    const ttl = options.ttl ?? this.ttl
    if (!Number.isSafeInteger(ttl) || ttl < 1 || ttl > MAX_SWARM_TTL_MS)
      throw new InvalidSwarmMessageError('expires', `a message lives 1-${MAX_SWARM_TTL_MS} ms`)
    const hlc = this.clock.tick()
    const unsigned = {
      v: 1,
      type: draft?.type,
      id: randomHex(16),
      from: signer.principal,
      ...(options.to === undefined ? {} : { to: options.to }),
      hlc,
      expires: hlc[0] + ttl,
      body: withoutUndefined(draft?.body)
    } as UnsignedSwarmMessage
    checkUnsignedSwarmMessage(unsigned)
    // this node's ACL must grant the sender every tag: its peers ask this node for the proof, and
    // reject (and penalise this node for) a message it cannot prove
    for (const subject of swarmSubjects(unsigned)) {
      try {
        await this.components.spki.authorize(signer.principal, swarmTag(unsigned.type, subject), {
          signal: options.signal
        })
      } catch (err) {
        options.signal?.throwIfAborted()
        throw new UnauthorizedSwarmSenderError(
          `${signer.principal} holds no chain here for (cyberspace (swarm ${unsigned.type} ${subject})): ${(err as Error).message}`
        )
      }
    }
    const sig = await signer.sign(SWARM_SIGNING_DOMAIN, swarmSigningBody(unsigned))
    const message = { ...unsigned, sig } as SwarmMessage
    const bytes = encodeSwarmMessage(message)
    if (options.to !== undefined) {
      const mailbox = options.mailbox ?? this.mailbox
      if (mailbox == null)
        throw new SwarmMailboxMissingError('a directed swarm message goes through a mailbox, and none is set')
      const receipt = await mailbox.send(signer.principal, options.to, swarmMailboxType(message.type), bytes, {
        id: message.id,
        timeout: Math.max(1, Math.min(MAX_SWARM_TTL_MS, message.expires - this.now())),
        signal: options.signal
      })
      this.counters.published++
      return { message, recipients: 0, receipt }
    }
    this.replay.add(`${message.from} ${message.id}`, message.expires)
    this.deliver(message)
    this.counters.published++
    let recipients = 0
    try {
      recipients = (await this.components.pubsub.publish(this.topic, bytes)).recipients.length
    } catch (err) {
      // nobody else subscribes yet: delivered here only
      if (!String((err as Error).message).includes('NoPeersSubscribedToTopic')) throw err
    }
    return { message, recipients }
  }

  // ---------------------------------------------------------------- receiving

  /**
   * Gossipsub's check of a message on the topic, run before it is delivered or forwarded: Accept
   * once every check passed (and it was delivered here), Reject for a message at fault, Ignore for
   * budgets and clock drift.
   */
  readonly validate = async (peer: PeerId, msg: Message): Promise<TopicValidatorResult> => {
    if (!this.running) return TopicValidatorResult.Ignore
    if (msg.type !== 'signed') {
      this.record(
        new Refused(new InvalidSwarmMessageError('gossip', 'a message on the topic is signed by its publishing node')),
        'topic',
        peer
      )
      return TopicValidatorResult.Reject
    }
    try {
      await this.receive(msg.data, 'topic', peer, peer.toString())
      return TopicValidatorResult.Accept
    } catch (err) {
      return REJECTED.has((err as Error).name) ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
    }
  }

  async acceptDirect(bytes: Uint8Array, fromPeer?: PeerId, options: AcceptDirectOptions = {}): Promise<SwarmMessage> {
    if (!this.running) throw new SwarmNotRunningError('the swarm service is not running')
    const budgetKey = options.from != null ? `agent ${options.from}` : fromPeer != null ? fromPeer.toString() : 'direct'
    return await this.receive(bytes, 'direct', fromPeer, budgetKey, options)
  }

  /** The checks, in order, then delivery; throws the named refusal (recorded). */
  private async receive(
    bytes: Uint8Array,
    via: 'topic' | 'direct',
    peer: PeerId | undefined,
    budgetKey: string,
    expect?: AcceptDirectOptions
  ): Promise<SwarmMessage> {
    this.counters.received++
    const cooling = this.cooling.get(budgetKey)
    if (cooling != null && cooling > this.now())
      throw this.record(
        new Refused(new SwarmRateLimitedError(`${budgetKey} sent too many refused messages: dropped unchecked`)),
        via,
        peer
      )
    if (!this.peerMessages.take(budgetKey))
      throw this.record(
        new Refused(new SwarmRateLimitedError(`${budgetKey} sent too many messages just now`)),
        via,
        peer
      )
    if (!(await this.validations.enter(budgetKey)))
      throw this.record(
        new Refused(new SwarmRateLimitedError(`${budgetKey} has too many messages waiting to be checked`)),
        via,
        peer
      )
    try {
      // its refusals may have run out while this one waited
      const cooled = this.cooling.get(budgetKey)
      if (cooled != null && cooled > this.now())
        throw new Refused(new SwarmRateLimitedError(`${budgetKey} sent too many refused messages: dropped unchecked`))
      const message = await this.check(bytes, via, peer, expect)
      this.deliver(message)
      return message
    } catch (err) {
      const refused = err instanceof Refused ? err : new Refused(err as Error)
      if (REJECTED.has(refused.error.name) && !this.peerRefusals.take(budgetKey))
        this.cooling.set(budgetKey, this.now() + 60_000 / Math.max(1, this.refusalsPerPeerPerMinute))
      throw this.record(refused, via, peer)
    } finally {
      this.validations.leave(budgetKey)
    }
  }

  private async check(
    bytes: Uint8Array,
    via: 'topic' | 'direct',
    peer: PeerId | undefined,
    expect?: AcceptDirectOptions
  ): Promise<SwarmMessage> {
    const epoch = this.components.spki.epoch
    const hash = base16.baseEncode(sha256(bytes))
    // an unauthorized message is remembered with the peer that could not prove it: the same bytes
    // from a peer that can are checked again
    const prover = `${hash} ${peer?.toString() ?? 'local'}`
    const known = this.refusedBytes.get(hash) ?? this.refusedBytes.get(prover)
    if (known != null && (known.name !== 'UnauthorizedSwarmSenderError' || known.epoch === epoch)) {
      const Known = REMEMBERED[known.name]
      throw new Refused(
        Known == null
          ? new InvalidSwarmMessageError(known.field ?? 'message', known.message.replace(/^[^:]*: /, ''))
          : new Known(known.message)
      )
    }
    const remember = (err: Error, message?: SwarmMessage): Refused => {
      const field = err instanceof InvalidSwarmMessageError ? err.field : undefined
      const key = err.name === 'UnauthorizedSwarmSenderError' ? prover : hash
      this.refusedBytes.set(key, { name: err.name, message: err.message, epoch, field })
      return new Refused(err, message)
    }
    let message: SwarmMessage
    try {
      message = decodeSwarmMessage(bytes)
      if (!isPrincipalId(message.from)) throw new InvalidSwarmMessageError('from', 'is not an Ed25519 principal id')
      if (message.to !== undefined && !isPrincipalId(message.to))
        throw new InvalidSwarmMessageError('to', 'is not an Ed25519 principal id')
    } catch (err) {
      throw remember(err as Error)
    }
    // not remembered: the same bytes may be fine where they belong (a directed message carried by
    // its own sender's mailbox message), and remembering would let anyone poison them
    try {
      if (via === 'topic' && message.to !== undefined)
        throw new InvalidSwarmMessageError('to', 'a directed message travels by mailbox, never on the topic')
      if (via === 'direct') {
        if (message.to === undefined)
          throw new InvalidSwarmMessageError('to', 'a message delivered directly names its recipient')
        if (expect?.from != null && expect.from !== message.from)
          throw new InvalidSwarmMessageError('from', `is not the mailbox sender ${expect.from}`)
        if (expect?.to != null && expect.to !== message.to)
          throw new InvalidSwarmMessageError('to', `is not the mailbox recipient ${expect.to}`)
        if (expect?.type != null && swarmTypeOfMailboxType(expect.type) !== message.type)
          throw new InvalidSwarmMessageError('type', `does not match the mailbox type ${expect.type.slice(0, 64)}`)
      }
    } catch (err) {
      throw new Refused(err as Error, message)
    }
    if (message.expires <= this.now())
      throw remember(
        new SwarmMessageExpiredError(`${message.id} from ${message.from} expired at ${message.expires}`),
        message
      )
    try {
      this.clock.check(message.hlc)
    } catch (err) {
      throw new Refused(new ClockDriftError((err as Error).message), message)
    }
    // one check at a time per (from, id): a second copy waits, then meets the replay window
    const key = `${message.from} ${message.id}`
    for (let waited = 0; this.checking.has(key) && waited < 4; waited++) await this.checking.get(key)
    if (this.replay.has(key))
      throw new Refused(
        new DuplicateSwarmMessageError(`${message.id} from ${message.from} was delivered here before`),
        message
      )
    if (this.checking.has(key))
      throw new Refused(new SwarmBusyError(`copies of ${message.id} from ${message.from} are being checked`), message)
    let done: () => void = () => {}
    this.checking.set(
      key,
      new Promise<void>(resolve => {
        done = resolve
      })
    )
    try {
      this.counters.verifications++
      const signed = await verifyAs(
        principalPublicKey(message.from),
        SWARM_SIGNING_DOMAIN,
        swarmSigningBody(message),
        message.sig
      ).catch(() => false)
      if (!signed) throw remember(new SwarmSignatureError(`${message.id} is not signed by ${message.from}`), message)
      if (!this.agentMessages.take(message.from))
        throw new Refused(new SwarmRateLimitedError(`${message.from} sent too many messages just now`), message)
      for (const subject of swarmSubjects(message)) {
        try {
          await this.authorize(message.from, message.type, subject, peer)
        } catch (err) {
          const e = err as Error
          throw e.name === 'UnauthorizedSwarmSenderError' ? remember(e, message) : new Refused(e, message)
        }
      }
      try {
        this.replay.add(key, message.expires)
      } catch (err) {
        throw new Refused(err as Error, message)
      }
      return message
    } finally {
      this.checking.delete(key)
      done()
    }
  }

  /** Resolves if `from` holds (cyberspace (swarm <type> <subject>)) by this node's ACL (proof asked of `peer` only). */
  private async authorize(from: PrincipalId, type: SwarmType, subject: string, peer?: PeerId): Promise<void> {
    const key = `${from} ${type} ${subject}`
    // a refusal holds for the prover asked: another peer may hold the chain
    const refusalKey = `${key} ${peer?.toString() ?? 'local'}`
    const spki = this.components.spki
    const epoch = spki.epoch
    const now = this.now()
    const cached = this.authorized.get(key)
    if (cached != null && cached.epoch === epoch && cached.until > now) return
    const refusal = this.unauthorized.get(refusalKey)
    if (refusal != null && refusal.epoch === epoch && refusal.until > now)
      throw new UnauthorizedSwarmSenderError(refusal.message)
    this.counters.authorizations++
    try {
      const grant = await spki.authorizeOrProve(from, swarmTag(type, subject), {
        signal: this.shutdown.signal,
        timeout: this.proofTimeout,
        providers: peer == null ? [] : [peer],
        refuse: (local, remote) =>
          new UnauthorizedSwarmSenderError(
            `${from} may not send ${type} for ${subject} here: ${local.message}; asked the forwarding peer: ${remote.message}`
          )
      })
      const notAfter = grant.validity.notAfter != null ? spkiTimeMs(grant.validity.notAfter) : Infinity
      this.authorized.set(key, { epoch, until: Math.min(this.now() + this.authorizationTtl, notAfter) })
    } catch (err) {
      const e = err as Error
      if (e.name === 'ProofRateLimitedError' || this.shutdown.signal.aborted)
        throw new SwarmRateLimitedError(`no verdict on ${from} for ${type} ${subject} just now: ${e.message}`)
      const refused =
        e.name === 'UnauthorizedSwarmSenderError'
          ? e
          : new UnauthorizedSwarmSenderError(`${from} may not send ${type} for ${subject} here: ${e.message}`)
      if (spki.epoch === epoch)
        this.unauthorized.set(refusalKey, { epoch, until: this.now() + 30_000, message: refused.message })
      throw refused
    }
  }

  /** Applies a checked message to the tables and tells the listeners. */
  private deliver(message: SwarmMessage): void {
    try {
      this.clock.receive(message.hlc)
    } catch {
      // its drift was checked on receipt; a message published here is this clock's own
    }
    const from = message.from as PrincipalId
    switch (message.type) {
      case 'offer': {
        const held = this.offerTable.get(from)
        const offer: SwarmOffer = {
          from,
          id: message.id,
          skills: message.body.skills,
          load: message.body.load,
          ...(message.body.capacity === undefined ? {} : { capacity: message.body.capacity }),
          hlc: message.hlc,
          expires: message.expires
        }
        if (held == null || compareStamps(offer, held as SwarmStamp) > 0) this.offerTable.set(from, offer)
        break
      }
      case 'need':
        this.needTable.set(`${from} ${message.id}`, {
          from,
          id: message.id,
          ...message.body,
          hlc: message.hlc,
          expires: message.expires
        })
        break
      case 'state-delta':
        this.entityTable.merge(message.body.entity, message.body.fields, { hlc: message.hlc, from, id: message.id })
        break
      default:
    }
    this.counters.delivered++
    this.safeDispatchEvent('message', { detail: message })
  }

  private record(refused: Refused, via: 'topic' | 'direct', peer?: PeerId): Error {
    const { error } = refused
    const message = refused.message_
    const refusal: SwarmRefusal = {
      at: this.now(),
      error: error.name,
      message: error.message,
      via,
      ...(peer == null ? {} : { peer: peer.toString() }),
      ...(message == null ? {} : { from: message.from, id: message.id, type: message.type })
    }
    this.counters.refused++
    this.counters.refusedBy[error.name] = (this.counters.refusedBy[error.name] ?? 0) + 1
    this.refusalLog.push(refusal)
    if (this.refusalLog.length > this.maxRefusalsKept) this.refusalLog.shift()
    this.log('refused a swarm message (%s) from %s - %s', via, refusal.peer ?? 'mailbox', error.name)
    this.safeDispatchEvent('refused', { detail: refusal })
    return error
  }

  // ---------------------------------------------------------------- tables

  entities(): SwarmEntity[] {
    return this.entityTable.list()
  }

  entity(id: string): SwarmEntity | undefined {
    return this.entityTable.get(id)
  }

  offers(skill?: string): SwarmOffer[] {
    return this.offerTable
      .live()
      .filter(o => skill == null || o.skills.includes(skill))
      .sort((a, b) => a.load - b.load || compareHlc(b.hlc, a.hlc) || (a.from < b.from ? -1 : a.from > b.from ? 1 : 0))
      .map(o => ({ ...o, skills: [...o.skills] }))
  }

  needs(skill?: string): SwarmNeed[] {
    return this.needTable
      .live()
      .filter(n => skill == null || n.skill === skill)
      .sort(
        (a, b) => URGENCY_RANK[b.urgency] - URGENCY_RANK[a.urgency] || compareStamps(a as SwarmStamp, b as SwarmStamp)
      )
      .map(n => ({ ...n }))
  }

  refusals(): SwarmRefusal[] {
    return [...this.refusalLog]
  }

  stats(): SwarmStats {
    return { ...this.counters, refusedBy: { ...this.counters.refusedBy } }
  }
}

/** A body without keys whose value is undefined (dag-cbor has no undefined). */
function withoutUndefined<T>(body: T): T {
  if (body == null || typeof body !== 'object' || Array.isArray(body)) return body
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined)) as T
}

export function swarm(init: SwarmInit = {}): (components: SwarmComponents) => Swarm {
  return components => new SwarmService(components, init)
}
