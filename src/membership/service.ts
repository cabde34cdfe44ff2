/**
 * Membership: who is in the cluster and who has died, with no coordinator. SWIM failure detection
 * with Lifeguard over `/cyberspace/swim/1.0.0` (specs: protocols/swim/README.md and
 * protocols/membership/README.md), every update signed by the member that makes it, spread on
 * probes, on gossip pings and on the membership gossipsub topic.
 *
 * Only holders of a chain to `(cyberspace member)` from a root this node's ACL trusts take part.
 * A member announces itself with a signed `alive` that carries its chain, so every node decides
 * membership locally (no network lookup) and again whenever its SPKI state changes (`recheck`).
 * A node without a chain for itself stays passive: it neither probes nor announces.
 *
 * @example
 * const node = await createNode({ …, services: { membership: membership() } })
 * node.libp2p.services.membership.members() // [{ principal, state: 'alive', incarnation, addrs, … }]
 * await node.libp2p.services.membership.leave()
 */
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { multiaddr } from '@multiformats/multiaddr'
import { sha256 } from '@noble/hashes/sha2.js'
import { base64 } from 'multiformats/bases/base64'
import * as dagCbor from '@ipld/dag-cbor'
import { TypedEventEmitter } from 'main-event'
import {
  checkMeta,
  decodeTopicMessage,
  encodeTopicMessage,
  MAX_ADDR_LENGTH,
  MAX_ADDRS,
  MAX_CHAIN_BYTES,
  MAX_CHAIN_CERT_BYTES,
  MAX_CHAIN_CERTS,
  MAX_TOPIC_UPDATES,
  MEMBERSHIP_TOPIC,
  updateSigner
} from '../../protocols/membership/codec.ts'
import {
  decodeSwimMessage,
  encodeSwimMessage,
  MAX_INDIRECT_TIMEOUT,
  MAX_PIGGYBACK_UPDATES,
  MAX_PROBE_MESSAGE_BYTES,
  MAX_SWIM_MESSAGE_BYTES,
  MAX_SYNC_UPDATES,
  MIN_INDIRECT_TIMEOUT,
  SWIM_PROTOCOL
} from '../../protocols/swim/codec.ts'
import { errorAnswer } from '../../protocols/wire.ts'
import { isPrincipalId, peerIdFromPrincipal, principalFromPeerId } from '../crypto/principal.ts'
import { seedSigner } from '../crypto/sign.ts'
import {
  handleRequests,
  requestOnce,
  serveRequests,
  StreamPool,
  unhandleRequests,
  withTimeout
} from '../network/rpc.ts'
import { RecentMap } from '../recent-map.ts'
import { parseSignedCert, signedCertToSexp, spkiTimeMs } from '../spki/cert.ts'
import { decodeCanonical, encodeCanonical, parseAdvanced } from '../spki/sexp.ts'
import { parseTag } from '../spki/tag.ts'
import { BroadcastQueue } from './broadcasts.ts'
import {
  InvalidMetaError,
  InvalidUpdateSignatureError,
  MembershipRateLimitedError,
  NotAMemberError,
  NotTakingPartError,
  UnexpectedAnswerError,
  UnknownMemberError,
  WrongTargetError
} from './errors.ts'
import { PeerBudget } from '../peer-budget.ts'
import { Awareness, suspicionMinTimeout, suspicionTimeout } from './timing.ts'
import { precedence, signUpdate, verifyUpdate } from './update.ts'
import type {
  AccusationUpdate,
  AliveUpdate,
  LeftUpdate,
  UnsignedUpdate,
  Update
} from '../../protocols/membership/codec.ts'
import type { SwimAnswer, SwimMessage, SwimRequest } from '../../protocols/swim/codec.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Signer } from '../crypto/sign.ts'
import type { Spki } from '../spki/service.ts'
import type { Proof } from '../spki/discover.ts'
import type { GossipSub, Message } from '@libp2p/gossipsub'
import type {
  AbortOptions,
  ComponentLogger,
  Connection,
  Libp2pEvents,
  Logger,
  PeerId,
  PrivateKey,
  Startable,
  Stream,
  TypedEventTarget
} from '@libp2p/interface'
import type { AddressManager, ConnectionManager, Registrar } from '@libp2p/interface-internal'
import type { TopicScoreParams } from '@libp2p/gossipsub/score'

export { MEMBERSHIP_TOPIC } from '../../protocols/membership/codec.ts'
export { SWIM_PROTOCOL } from '../../protocols/swim/codec.ts'

/** The tag a member holds. */
export const MEMBER_TAG = parseTag(parseAdvanced('(cyberspace member)'))

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left'

export interface MemberView {
  /** The member's key (`z6Mk…`); the same key as its libp2p peer id. */
  principal: PrincipalId
  peerId: string
  state: MemberState
  incarnation: number
  /** The multiaddrs it announced (signed); may include `/p2p-circuit` relay addresses. */
  addrs: string[]
  /** When this node last had direct word from it (an answer, a request, or a new update it signed), ms. */
  lastHeard: number
  /** When it entered `state` in this view, ms. */
  since: number
  /** The small signed map it publishes (role, load, capabilities…). */
  meta: Record<string, string>
  self: boolean
}

export interface MembershipInit {
  /** Time between two probes, ms; default 1000. Stretched by local health (Lifeguard). */
  probeInterval?: number
  /** Time a direct probe waits for its ack before asking others, ms; default 500. Stretched by local health. */
  probeTimeout?: number
  /** Members asked to probe a target that missed its direct probe; default 3. */
  indirectChecks?: number
  /** Time between gossip rounds (pings carrying queued updates, only while some are queued), ms; default 200. */
  gossipInterval?: number
  /** Members each gossip round sends to; default 3. */
  gossipNodes?: number
  /** Time between full state exchanges with a random member, ms; default 30 000. */
  pushPullInterval?: number
  /** Suspicion timeout floor: suspicionMult × max(1, log10 n) × probeInterval; default 4. */
  suspicionMult?: number
  /** Suspicion timeout ceiling, as a multiple of the floor; default 6. */
  suspicionMaxTimeoutMult?: number
  /** Most probe intervals and timeouts are stretched when this node is unhealthy; default 8. */
  awarenessMaxMultiplier?: number
  /**
   * While the view is at rest (every probe answered, no member changed, suspected or lost), the
   * pause between two probes doubles after each quiet round, up to this many probe intervals; any
   * change brings it back to one at once. Default 4; 1 probes every interval always.
   */
  quietProbeMult?: number
  /** Each update rides on at most retransmitMult × ceil(log10(n + 1)) messages; default 4. */
  retransmitMult?: number
  /**
   * An event-loop stall longer than this (ms) means this node was not running (CPU starved,
   * SIGSTOP): it then accuses nobody until it has caught up on what arrived meanwhile; default 500.
   */
  stallThreshold?: number
  /** Most members in the view (dead and left ones are dropped first to make room); default 512. */
  maxMembers?: number
  /** How long dead and left members stay in the view, ms; default 15 min. */
  reapAfter?: number
  /** Per peer: pings answered per second (and burst); default 10 (20). */
  pingsPerSecond?: number
  /** Per peer: ping-reqs answered per second (and burst); default 10 (20). */
  pingReqsPerSecond?: number
  /** Per peer: syncs answered per second (and burst); default 0.5 (4). */
  syncsPerSecond?: number
  /** Per publisher: topic messages handled per second (and burst); default 10 (20). */
  topicMessagesPerSecond?: number
  /** Concurrent inbound streams of the protocol per connection; default 8. */
  maxInboundStreams?: number
  /**
   * The least time between two membership checks, ms; default 1000. A member checks when the SPKI
   * epoch moves; a passive node also looks for its own member chain every checkInterval.
   */
  checkInterval?: number
  /** Metadata this node publishes from the start. */
  meta?: Record<string, string>
  topic?: string
  protocol?: string
  /** The clock of the view and of rate limits; default Date.now. */
  now?: () => number
  /** Randomness for probe order and member choice, in [0, 1); default Math.random. */
  random?: () => number
}

export interface MembershipComponents {
  peerId: PeerId
  privateKey: PrivateKey
  registrar: Registrar
  connectionManager: ConnectionManager
  addressManager: AddressManager
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
  spki: Spki
  pubsub: GossipSub
}

export interface MembershipEvents {
  /** A member's state, incarnation, addresses or metadata changed in this view. */
  'member:change': CustomEvent<MemberView>
  /** A member left the view: its chain no longer holds (revoked, expired), or it was reaped. */
  'member:remove': CustomEvent<MemberView>
}

export interface Membership extends TypedEventTarget<MembershipEvents> {
  /** Whether this node takes part (it holds a valid chain to (cyberspace member) by its own ACL). */
  isMember(): boolean
  /** This node's view, self included, sorted by principal. */
  members(): MemberView[]
  member(principal: PrincipalId): MemberView | undefined
  /** Publishes new metadata: bumps the incarnation and spreads a signed alive. Throws InvalidMetaError. */
  setMeta(meta: Record<string, string>, options?: AbortOptions): Promise<void>
  /**
   * Changes some keys of this member's metadata (a key to `undefined` removes it) and publishes
   * the result, keeping every other key: several writers (the agents' kinds, the fleet's summary)
   * each own their keys. The merge happens at once, so concurrent calls never lose each other's keys.
   */
  updateMeta(patch: Record<string, string | undefined>, options?: AbortOptions): Promise<void>
  /** This member's metadata as it will next publish it. */
  ownMeta(): Record<string, string>
  /** Signs `left`, spreads it (probe piggyback and topic), then stops taking part. */
  leave(options?: AbortOptions): Promise<void>
  /** Re-checks every member's chain now: a member whose chain no longer holds is removed from the view. */
  recheck(options?: AbortOptions): Promise<void>
}

/**
 * Gossipsub topic scores for the membership topic, for `scoreParams.topics[MEMBERSHIP_TOPIC]`:
 * a message the validator rejects (forged, by a non-member, malformed) costs its sender; the
 * topic is quiet by design, so few deliveries cost nothing.
 */
export const MEMBERSHIP_TOPIC_SCORE_PARAMS: TopicScoreParams = {
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1000,
  timeInMeshCap: 100,
  firstMessageDeliveriesWeight: 0.5,
  firstMessageDeliveriesDecay: 0.9,
  firstMessageDeliveriesCap: 20,
  meshMessageDeliveriesWeight: 0,
  meshMessageDeliveriesDecay: 0.5,
  meshMessageDeliveriesCap: 100,
  meshMessageDeliveriesThreshold: 1,
  meshMessageDeliveriesWindow: 10,
  meshMessageDeliveriesActivation: 5000,
  meshFailurePenaltyWeight: 0,
  meshFailurePenaltyDecay: 0.5,
  // −20 per rejected message (squared): one costs a peer gossip briefly, two graylist it. Not one:
  // an honest member can relay a message it accepted that a peer holding a newer CRL rejects.
  invalidMessageDeliveriesWeight: -20,
  invalidMessageDeliveriesDecay: 0.5
}

const DEFAULTS = {
  probeInterval: 1000,
  probeTimeout: 500,
  indirectChecks: 3,
  gossipInterval: 200,
  gossipNodes: 3,
  pushPullInterval: 30_000,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  awarenessMaxMultiplier: 8,
  quietProbeMult: 4,
  retransmitMult: 4,
  stallThreshold: 500,
  maxMembers: 512,
  reapAfter: 15 * 60_000,
  pingsPerSecond: 10,
  pingReqsPerSecond: 10,
  syncsPerSecond: 0.5,
  topicMessagesPerSecond: 10,
  maxInboundStreams: 8,
  checkInterval: 1000
}

/** Time for an update to reach every member once made (gossipsub, then piggyback), ms: the spread term of the bound. */
export const SPREAD_ALLOWANCE = 1000

/**
 * The bound, in ms, within which every healthy survivor marks a member dead after it stops
 * abruptly (kill -9: its connections reset) in a cluster of `n` members with these settings:
 * 3 probe intervals (the prompt probe that the lost connection starts, ending at most one interval
 * later; the confirming probes of others; one interval's deferral if a node stalled) + the
 * suspicion floor (reached once k others confirm) + SPREAD_ALLOWANCE. See protocols/swim/README.md.
 */
export function detectionBound(n: number, init: MembershipInit = {}): number {
  const interval = init.probeInterval ?? DEFAULTS.probeInterval
  const mult = init.suspicionMult ?? DEFAULTS.suspicionMult
  return 3 * interval + suspicionMinTimeout(mult, n, interval) + SPREAD_ALLOWANCE
}

/**
 * The worst case without a connection reset (a member that hangs, or one never connected): the
 * slowest a probe can come round (each survivor probes every member once per round of n − 1
 * turns, so at most 2(n − 1) turns apart, and turns of a view at rest are up to quietProbeMult
 * intervals apart), one interval of probing, the unconfirmed suspicion ceiling, and the spread.
 */
export function worstCaseDetection(n: number, init: MembershipInit = {}): number {
  const interval = init.probeInterval ?? DEFAULTS.probeInterval
  const mult = init.suspicionMult ?? DEFAULTS.suspicionMult
  const maxMult = init.suspicionMaxTimeoutMult ?? DEFAULTS.suspicionMaxTimeoutMult
  // at rest, rounds are up to quietProbeMult intervals apart
  const quiet = Math.max(1, Math.floor(init.quietProbeMult ?? DEFAULTS.quietProbeMult))
  return (2 * (n - 1) * quiet + 1) * interval + maxMult * suspicionMinTimeout(mult, n, interval) + SPREAD_ALLOWANCE
}

/** One member as this node holds it. */
interface MemberRecord {
  principal: PrincipalId
  peerId: PeerId
  /** Its latest own alive (addresses, metadata, chain). */
  alive: AliveUpdate
  state: MemberState
  incarnation: number
  /** The update that set `state` at `incarnation`. */
  update: Update
  since: number
  lastHeard: number
  /** When it last asked this node something (a ping, ping-req or sync) and got its answer, ms. */
  lastAsked?: number
  suspicion?: Suspicion
}

interface Suspicion {
  incarnation: number
  start: number
  accusers: Set<PrincipalId>
  expected: number
  min: number
  max: number
  timer?: ReturnType<typeof setTimeout>
}

/** What receiving one update did. */
type Outcome = 'new' | 'confirm' | 'stale' | 'unknown' | 'forged' | 'non-member'

/** A membership decision about one chain, valid at one SPKI epoch and until the chain's expiry. */
interface ChainDecision {
  epoch: number
  ok: boolean
  until: number
}

const MAX_REMEMBERED = 4096
/** The lag tick's period while a probe or a suspicion is pending, ms. */
const LAG_TICK_MS = 100

class MembershipService extends TypedEventEmitter<MembershipEvents> implements Membership, Startable {
  private readonly components: MembershipComponents
  private readonly log: Logger
  private readonly opts: typeof DEFAULTS
  private readonly protocol: string
  private readonly topic: string
  private readonly now: () => number
  private readonly random: () => number
  private readonly self: PrincipalId
  private readonly awareness: Awareness
  private readonly queue: BroadcastQueue
  private readonly view = new Map<PrincipalId, MemberRecord>()
  /** Members reaped or removed: an update at or below the incarnation they had changes nothing. */
  private readonly tombstones = new RecentMap<PrincipalId, number>(MAX_REMEMBERED)
  /** Membership decisions by `<principal> <chain hash>`. */
  private readonly decisions = new RecentMap<string, ChainDecision>(MAX_REMEMBERED)
  /** Principals whose chain was refused, by the epoch it was refused at. */
  private readonly refused = new RecentMap<PrincipalId, number>(MAX_REMEMBERED)
  /** Update signatures already checked, by the hash of the whole update. */
  private readonly verified = new RecentMap<string, boolean>(MAX_REMEMBERED)
  /** When a sync was last started with each peer. */
  private readonly lastSync = new RecentMap<string, number>(MAX_REMEMBERED)
  private readonly pings: PeerBudget
  private readonly pingReqs: PeerBudget
  private readonly syncs: PeerBudget
  private readonly topicMessages: PeerBudget
  private signer?: Signer
  private meta: Record<string, string>
  private incarnation: number
  private ownAlive?: AliveUpdate
  private ownLeft?: LeftUpdate
  private chain: Uint8Array[] = []
  private started = false
  private active = false
  private leaving = false
  private checkedEpoch = -1
  private probeOrder: PrincipalId[] = []
  private probing = new Set<PrincipalId>()
  private lastProbed = new Map<PrincipalId, number>()
  private extraProbes = 0
  private probeTimer?: ReturnType<typeof setTimeout>
  /** When the next probe round is due (ms, this.now's clock). */
  private probeDueAt = 0
  /** The current pause between probe rounds, in probe intervals: 1, doubling while at rest, up to quietProbeMult. */
  private quiet = 1
  /** Something changed since the last probe round: the next pause is one interval. */
  private restless = true
  /** Runs only while the queue holds updates: an idle member wakes for nothing. */
  private gossipTimer?: ReturnType<typeof setInterval>
  private pushPullTimer?: ReturnType<typeof setInterval>
  /** The next membership check (see scheduleCheck), when it is due, and when the last one started. */
  private checkTimer?: ReturnType<typeof setTimeout>
  private checkDueAt = Infinity
  private lastCheck = -Infinity
  /** The lag tick, set while a probe or a suspicion is pending (see tick). */
  private lagTimer?: ReturnType<typeof setTimeout>
  private lastTick = 0
  private lastStall = -Infinity
  private checking?: Promise<void>
  private shutdown = new AbortController()
  /**
   * Streams to members kept between requests: a new stream costs more than a probe. Kept 100 s, so
   * a stream outlives the gap between two probes of one member in quiet rounds (about N × 4 s).
   */
  private streams = new StreamPool({ idleMs: 100_000 })

  constructor(components: MembershipComponents, init: MembershipInit = {}) {
    super()
    this.components = components
    this.log = components.logger.forComponent('cyberspace:membership')
    const defined = Object.fromEntries(Object.entries(init).filter(([, v]) => v !== undefined))
    this.opts = { ...DEFAULTS, ...defined } as typeof DEFAULTS
    this.protocol = init.protocol ?? SWIM_PROTOCOL
    this.topic = init.topic ?? MEMBERSHIP_TOPIC
    this.now = init.now ?? Date.now
    this.random = init.random ?? Math.random
    this.self = principalFromPeerId(components.peerId)
    this.awareness = new Awareness(this.opts.awarenessMaxMultiplier)
    this.queue = new BroadcastQueue(this.opts.maxMembers)
    const meta = { ...(init.meta ?? {}) }
    checkMeta(meta, fail => {
      throw new InvalidMetaError(fail)
    })
    this.meta = meta
    // a restarted node starts above any incarnation it announced before (refutation covers clock trouble)
    this.incarnation = Math.floor(this.now() / 1000)
    const rates = (perSecond: number): PeerBudget =>
      new PeerBudget(60 * perSecond, Infinity, this.now, 1024, Math.max(4, 2 * perSecond))
    this.pings = rates(this.opts.pingsPerSecond)
    this.pingReqs = rates(this.opts.pingReqsPerSecond)
    this.syncs = rates(this.opts.syncsPerSecond)
    this.topicMessages = rates(this.opts.topicMessagesPerSecond)
  }

  readonly [Symbol.toStringTag] = 'cyberspace/membership'

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    this.shutdown = new AbortController()
    this.streams = new StreamPool({ idleMs: 100_000 })
    this.signer = await seedSigner(this.components.privateKey.raw)
    // a (re)start is a rejoin: above every incarnation announced before, nothing left over
    this.incarnation = Math.max(this.incarnation + 1, Math.floor(this.now() / 1000))
    this.leaving = false
    this.ownLeft = undefined
    this.ownAlive = undefined
    this.checkedEpoch = -1
    this.view.clear()
    await handleRequests(
      this.components.registrar,
      this.protocol,
      serveRequests(async (bytes, connection) => await this.answer(bytes, connection), {
        maxBytes: MAX_SWIM_MESSAGE_BYTES,
        timeout: 10_000,
        log: this.log,
        refuse: err => encodeSwimMessage(errorAnswer(err))
      }),
      { maxInboundStreams: this.opts.maxInboundStreams, maxOutboundStreams: 64, runOnLimitedConnection: true }
    )
    this.components.pubsub.topicValidators.set(this.topic, this.validate)
    this.components.events.addEventListener('peer:identify', this.onIdentify)
    this.components.events.addEventListener('peer:disconnect', this.onDisconnect)
    this.components.events.addEventListener('self:peer:update', this.onSelfUpdate)
    this.started = true
    this.components.spki.addEventListener('epoch', this.onEpoch)
    this.lastCheck = this.now()
    await this.checkEpoch()
    this.checkAgain()
  }

  /** The SPKI epoch moved: check this node's chain and every member's, at most once per checkInterval. */
  private readonly onEpoch = (): void => {
    this.scheduleCheck(Math.max(this.now(), this.lastCheck + this.opts.checkInterval))
  }

  /** Runs checkEpoch at `at` (ms, this.now()), unless one is due sooner. */
  private scheduleCheck(at: number): void {
    if (!this.started || at >= this.checkDueAt) return
    clearTimeout(this.checkTimer)
    this.checkDueAt = at
    this.checkTimer = setTimeout(
      () => {
        this.checkTimer = undefined
        this.checkDueAt = Infinity
        this.lastCheck = this.now()
        this.checkEpoch()
          .catch(err => this.log.error('checking membership failed - %e', err))
          .finally(() => this.checkAgain())
      },
      Math.max(0, at - this.now())
    )
  }

  /**
   * While passive (no member chain yet, or none any more), looks for one every checkInterval: one
   * can be held without the epoch moving (a certificate that became valid with time). A member
   * checks only when the epoch moves (onEpoch): an idle member wakes for nothing.
   */
  private checkAgain(): void {
    if (!this.active && !this.leaving) this.scheduleCheck(this.lastCheck + this.opts.checkInterval)
  }

  async stop(): Promise<void> {
    this.started = false
    this.shutdown.abort(new NotTakingPartError('the membership service stopped'))
    this.streams.close()
    this.deactivate()
    this.components.spki.removeEventListener('epoch', this.onEpoch)
    clearTimeout(this.checkTimer)
    this.checkTimer = undefined
    this.checkDueAt = Infinity
    clearTimeout(this.lagTimer)
    this.lagTimer = undefined
    this.components.events.removeEventListener('peer:identify', this.onIdentify)
    this.components.events.removeEventListener('peer:disconnect', this.onDisconnect)
    this.components.events.removeEventListener('self:peer:update', this.onSelfUpdate)
    this.components.pubsub.topicValidators.delete(this.topic)
    await unhandleRequests(this.components.registrar, this.protocol)
  }

  /**
   * The event-loop lag tick: a tick later than LAG_TICK_MS + stallThreshold means this node was not
   * running. It ticks only while a probe or a suspicion is pending, when a stall decides whether
   * anyone is accused: an empty 100 ms timer alone costs an idle process about 0.1 % of a core, a
   * 1 s one 0.03 %. Between probes the probe timer tells a stall itself, by firing late (scheduleProbe).
   */
  private readonly tick = (): void => {
    const now = this.now()
    if (now - this.lastTick > LAG_TICK_MS + this.opts.stallThreshold) this.noteStall(now)
    this.lastTick = now
    this.lagTimer = this.started && this.watching() ? setTimeout(this.tick, LAG_TICK_MS) : undefined
  }

  /** This node was not running until `now`: its timeouts say nothing about others for a while. */
  private noteStall(now: number): void {
    this.lastStall = now
    this.awareness.apply(1)
  }

  /** Whether a stall now would decide an accusation: a probe under way or a suspicion running. */
  private watching(): boolean {
    if (this.probing.size > 0) return true
    for (const record of this.view.values()) if (record.suspicion != null) return true
    return false
  }

  /** A probe or a suspicion starts: the lag tick runs from now on (until neither is left). */
  private watchStalls(): void {
    if (this.lagTimer != null || !this.started) return
    this.lastTick = this.now()
    this.lagTimer = setTimeout(this.tick, LAG_TICK_MS)
  }

  /** Whether this node was not running lately (event loop stalled): its timeouts say nothing about others then. */
  private stalled(): boolean {
    const now = this.now()
    const window = this.awareness.scale(this.opts.probeInterval)
    const ticking = this.lagTimer != null
    return (ticking && now - this.lastTick > LAG_TICK_MS + this.opts.stallThreshold) || now - this.lastStall < window
  }

  // ---------------------------------------------------------------- taking part

  isMember(): boolean {
    return this.active || (this.ownAlive != null && this.leaving)
  }

  /** Runs `recheck` when the SPKI epoch moved, and (while passive) looks for this node's own chain. */
  private async checkEpoch(): Promise<void> {
    if (!this.started) return
    if (this.components.spki.epoch === this.checkedEpoch && (this.active || this.leaving)) return
    await this.recheck()
  }

  async recheck(options: AbortOptions = {}): Promise<void> {
    // one check at a time; a caller that asks during one gets the next
    while (this.checking != null) await this.checking.catch(() => {})
    const run = this.runRecheck(options)
    this.checking = run
    try {
      await run
    } finally {
      this.checking = undefined
    }
  }

  private async runRecheck(options: AbortOptions): Promise<void> {
    const epoch = this.components.spki.epoch
    this.checkedEpoch = epoch
    const own = await this.ownChain()
    options.signal?.throwIfAborted()
    if (own == null) {
      if (this.active) {
        this.log('this node no longer holds a member chain: it stops taking part')
        this.deactivate()
      }
      return
    }
    const changed = own.map(c => base64.encode(c)).join() !== this.chain.map(c => base64.encode(c)).join()
    this.chain = own
    if (!this.active && !this.leaving) {
      await this.activate()
    } else if (changed && this.active) {
      await this.announce()
    }
    for (const record of [...this.view.values()]) {
      if (record.principal === this.self) continue
      options.signal?.throwIfAborted()
      if (!(await this.chainHolds(record.alive))) this.remove(record, 'its chain no longer holds')
    }
  }

  /** This node's chain to (cyberspace member), encoded, or undefined when it holds none (or one too large to announce). */
  private async ownChain(): Promise<Uint8Array[] | undefined> {
    try {
      const grant = await this.components.spki.authorize(this.self, MEMBER_TAG)
      const certs = [...grant.proof.chain, ...grant.proof.names].map(c => encodeCanonical(signedCertToSexp(c)))
      const total = certs.reduce((n, c) => n + c.length, 0)
      if (
        certs.length > MAX_CHAIN_CERTS ||
        certs.some(c => c.length > MAX_CHAIN_CERT_BYTES) ||
        total > MAX_CHAIN_BYTES
      ) {
        this.log.error(
          'this node member chain is too large to announce (%d certificates, %d bytes)',
          certs.length,
          total
        )
        return undefined
      }
      return certs
    } catch (err) {
      this.log.trace('this node holds no member chain - %e', err)
      return undefined
    }
  }

  private async activate(): Promise<void> {
    this.active = true
    this.leaving = false
    this.ownLeft = undefined
    this.awareness.apply(-this.awareness.max)
    this.quiet = 1
    this.restless = true
    await this.announce()
    this.components.pubsub.subscribe(this.topic)
    this.scheduleProbe(this.opts.probeInterval * this.random())
    this.gossipSoon()
    this.pushPullTimer = setInterval(() => {
      this.pushPull()
    }, this.opts.pushPullInterval)
    this.log('taking part as %s at incarnation %d', this.self, this.incarnation)
    // learn the view from the members already connected
    for (const connection of this.components.connectionManager.getConnections()) {
      this.syncSoon(connection.remotePeer, 0)
    }
  }

  private deactivate(): void {
    const was = this.active
    this.active = false
    clearTimeout(this.probeTimer)
    clearInterval(this.gossipTimer)
    this.gossipTimer = undefined
    clearInterval(this.pushPullTimer)
    for (const record of this.view.values()) clearTimeout(record.suspicion?.timer)
    if (was) {
      try {
        this.components.pubsub.unsubscribe(this.topic)
      } catch {}
    }
    if (!this.leaving) {
      this.view.clear()
      this.ownAlive = undefined
    }
    this.checkAgain()
  }

  /** Signs a new alive at the current incarnation (bumped first if one was signed already) and spreads it. */
  private async announce(): Promise<void> {
    if (this.ownAlive != null && this.ownAlive.incarnation >= this.incarnation)
      this.incarnation = this.ownAlive.incarnation + 1
    const alive = await this.sign({
      v: 1,
      state: 'alive',
      member: this.self,
      incarnation: this.incarnation,
      addrs: this.ownAddrs(),
      meta: { ...this.meta },
      chain: this.chain
    })
    this.ownAlive = alive
    const now = this.now()
    const previous = this.view.get(this.self)
    const record: MemberRecord = {
      principal: this.self,
      peerId: this.components.peerId,
      alive,
      state: 'alive',
      incarnation: alive.incarnation,
      update: alive,
      since: previous?.state === 'alive' ? previous.since : now,
      lastHeard: now
    }
    this.view.set(this.self, record)
    this.changed(record)
    this.spread(alive)
  }

  private ownAddrs(): string[] {
    const id = this.components.peerId.toString()
    return this.components.addressManager
      .getAddresses()
      .map(a => a.toString())
      .filter(a => a.length <= MAX_ADDR_LENGTH)
      .slice(0, MAX_ADDRS)
      .map(a => (a.endsWith(`/p2p/${id}`) || a.length + id.length + 5 > MAX_ADDR_LENGTH ? a : `${a}/p2p/${id}`))
  }

  private async sign<U extends UnsignedUpdate>(unsigned: U): Promise<U & { sig: Uint8Array }> {
    if (this.signer == null) throw new NotTakingPartError('the membership service is not started')
    return await signUpdate(this.signer, unsigned)
  }

  /** Queues an update this node made for piggybacking and publishes it on the topic. */
  private spread(update: Update): void {
    this.enqueue(update)
    if (!this.active && !this.leaving) return
    const updates = update === this.ownAlive || this.ownAlive == null ? [update] : [this.ownAlive, update]
    this.publish(updates)
  }

  private publish(updates: Update[]): void {
    try {
      this.components.pubsub
        .publish(this.topic, encodeTopicMessage({ v: 1, type: 'updates', updates }))
        .catch(err => this.log.trace('publishing on %s failed - %e', this.topic, err))
    } catch (err) {
      this.log.trace('publishing on %s failed - %e', this.topic, err)
    }
  }

  async setMeta(meta: Record<string, string>, options: AbortOptions = {}): Promise<void> {
    const copy = { ...meta }
    checkMeta(copy, what => {
      throw new InvalidMetaError(what)
    })
    options.signal?.throwIfAborted()
    this.meta = copy
    if (this.active) await this.announce()
  }

  async updateMeta(patch: Record<string, string | undefined>, options: AbortOptions = {}): Promise<void> {
    const next = { ...this.meta }
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined) delete next[k]
      else next[k] = v
    }
    await this.setMeta(next, options)
  }

  ownMeta(): Record<string, string> {
    return { ...this.meta }
  }

  async leave(options: AbortOptions = {}): Promise<void> {
    if (!this.active || this.ownAlive == null)
      throw new NotTakingPartError('this node does not take part in the cluster')
    this.leaving = true
    const left = await this.sign({ v: 1, state: 'left', member: this.self, incarnation: this.incarnation })
    this.ownLeft = left
    const record = this.view.get(this.self)
    if (record != null) {
      Object.assign(record, { state: 'left', update: left, since: this.now() })
      this.changed(record)
    }
    this.spread(left)
    // tell a few members directly too, so the leave is known even where gossipsub has no mesh yet
    const targets = this.pick(
      this.others().filter(r => r.state === 'alive' || r.state === 'suspect'),
      Math.max(this.opts.gossipNodes, this.opts.indirectChecks)
    )
    const signal = withTimeout(2 * this.opts.probeTimeout, options.signal)
    await Promise.allSettled(
      targets.map(async r => {
        const ping = { v: 1 as const, type: 'ping' as const, target: r.principal, updates: [this.ownAlive!, left] }
        await this.request(r, ping, signal)
      })
    )
    this.deactivate()
  }

  // ---------------------------------------------------------------- the view

  members(): MemberView[] {
    return [...this.view.values()].map(r => this.toView(r)).sort((a, b) => (a.principal < b.principal ? -1 : 1))
  }

  member(principal: PrincipalId): MemberView | undefined {
    const record = this.view.get(principal)
    return record == null ? undefined : this.toView(record)
  }

  private toView(r: MemberRecord): MemberView {
    return {
      principal: r.principal,
      peerId: r.peerId.toString(),
      state: r.state,
      incarnation: r.incarnation,
      addrs: [...r.alive.addrs],
      lastHeard: r.lastHeard,
      since: r.since,
      meta: { ...r.alive.meta },
      self: r.principal === this.self
    }
  }

  private others(): MemberRecord[] {
    return [...this.view.values()].filter(r => r.principal !== this.self)
  }

  /** Members alive or suspect, self included: the n of the timing formulas. */
  private liveCount(): number {
    let n = 0
    for (const r of this.view.values()) if (r.state === 'alive' || r.state === 'suspect') n++
    return n
  }

  private changed(record: MemberRecord): void {
    this.stir()
    this.safeDispatchEvent('member:change', { detail: this.toView(record) })
  }

  private remove(record: MemberRecord, why: string): void {
    clearTimeout(record.suspicion?.timer)
    this.view.delete(record.principal)
    this.lastProbed.delete(record.principal)
    this.queue.forget(record.principal)
    this.tombstones.set(record.principal, record.incarnation)
    this.log('%s leaves the view: %s', record.principal, why)
    this.stir()
    this.safeDispatchEvent('member:remove', { detail: this.toView(record) })
  }

  /** Drops dead and left members older than reapAfter; when the view is full, the oldest of them. */
  private reap(room = false): boolean {
    const now = this.now()
    let oldest: MemberRecord | undefined
    for (const r of this.others()) {
      if (r.state !== 'dead' && r.state !== 'left') continue
      if (now - r.since > this.opts.reapAfter) this.remove(r, 'reaped')
      else if (oldest == null || r.since < oldest.since) oldest = r
    }
    if (room && this.view.size >= this.opts.maxMembers && oldest != null) this.remove(oldest, 'the view is full')
    return this.view.size < this.opts.maxMembers
  }

  // ---------------------------------------------------------------- checking updates

  private updateKey(update: Update): string {
    return base64.encode(sha256(dagCbor.encode(update)))
  }

  private async signatureHolds(update: Update): Promise<boolean> {
    const key = this.updateKey(update)
    const known = this.verified.get(key)
    if (known != null) return known
    const ok = await verifyUpdate(update)
    this.verified.set(key, ok)
    return ok
  }

  /** Whether an alive's chain grants its member (cyberspace member) by this node's ACL now. */
  private async chainHolds(alive: AliveUpdate): Promise<boolean> {
    const { spki } = this.components
    const epoch = spki.epoch
    const key = `${alive.member} ${base64.encode(sha256(dagCbor.encode(alive.chain)))}`
    const known = this.decisions.get(key)
    if (known != null && known.epoch === epoch && known.until > this.now()) return known.ok
    let decision: ChainDecision
    try {
      const certs = alive.chain.map(c => parseSignedCert(decodeCanonical(c, { maxBytes: MAX_CHAIN_CERT_BYTES })))
      const proof: Proof = {
        chain: certs.filter(c => c.cert.type === 'auth'),
        names: certs.filter(c => c.cert.type === 'name')
      }
      const grant = await spki.authorize(alive.member as PrincipalId, MEMBER_TAG, { proof })
      const notAfter = grant.validity.notAfter != null ? spkiTimeMs(grant.validity.notAfter) : Infinity
      decision = { epoch, ok: true, until: Math.min(notAfter, this.now() + 10 * 60_000) }
    } catch (err) {
      this.log.trace('%s holds no member chain here - %e', alive.member, err)
      decision = { epoch, ok: false, until: this.now() + 30_000 }
    }
    this.decisions.set(key, decision)
    if (!decision.ok) this.refused.set(alive.member as PrincipalId, epoch)
    else if (this.refused.get(alive.member as PrincipalId) != null) this.refused.delete(alive.member as PrincipalId)
    return decision.ok
  }

  /** Whether `principal` is a member in this view with a chain that holds now. */
  private async isKnownMember(principal: string): Promise<boolean> {
    const record = this.view.get(principal as PrincipalId)
    if (record == null) return false
    if (principal === this.self) return this.active || this.leaving
    return await this.chainHolds(record.alive)
  }

  /** Whether `principal`'s chain was refused at the current epoch. */
  private knownNonMember(principal: string): boolean {
    return this.refused.get(principal as PrincipalId) === this.components.spki.epoch
  }

  /**
   * Checks and applies updates (alives first, so a member's incarnation is known before an update
   * naming it). Each is checked on its own: a bad one changes nothing and does not stop the rest.
   */
  private async receive(updates: Update[], from?: PeerId): Promise<Outcome[]> {
    const ordered = [...updates.filter(u => u.state === 'alive'), ...updates.filter(u => u.state !== 'alive')]
    const outcomes: Outcome[] = []
    for (const update of ordered) {
      try {
        outcomes.push(await this.receiveOne(update, from))
      } catch (err) {
        this.log('an update about %s failed - %e', update.member, err)
        outcomes.push('stale')
      }
    }
    return outcomes
  }

  private async receiveOne(update: Update, from?: PeerId): Promise<Outcome> {
    const signer = updateSigner(update)
    if (!isPrincipalId(signer) || !isPrincipalId(update.member)) return 'forged'
    const tomb = this.tombstones.get(update.member)
    if (tomb != null && update.incarnation <= tomb) return 'stale'
    // cheap checks first: what cannot change the view costs no signature check
    const held = this.view.get(update.member)
    const before = precedence(update, held)
    if (update.state !== 'alive' && (this.knownNonMember(signer) || this.knownNonMember(update.member))) {
      return 'non-member'
    }
    // an accusation about a member not in the view, or above the incarnation it announced, changes
    // nothing (about this node too: only its own alive raises its incarnation)
    if (before === 'unknown') return 'unknown'
    if (before === 'stale' && update.member !== this.self) return 'stale'
    if (!(await this.signatureHolds(update))) return 'forged'
    if (update.state === 'alive') {
      if (!(await this.chainHolds(update))) return 'non-member'
    } else {
      if (!(await this.isKnownMember(signer))) return 'unknown'
      if (held == null) return 'unknown'
    }
    if (!this.active && !this.leaving) return 'stale'
    return this.apply(update, from)
  }

  /** Applies a checked update by SWIM precedence (after every await, so nothing interleaves). */
  private apply(update: Update, from?: PeerId): Outcome {
    if (update.member === this.self) return this.aboutSelf(update)
    const now = this.now()
    let record = this.view.get(update.member as PrincipalId)
    const outcome = precedence(update, record)
    if (outcome === 'stale' || outcome === 'unknown') return outcome
    if (record == null) {
      if (update.state !== 'alive') return 'unknown'
      if (this.view.size >= this.opts.maxMembers && !this.reap(true)) return 'stale'
      const principal = update.member as PrincipalId
      record = {
        principal,
        peerId: peerIdFromPrincipal(principal),
        alive: update,
        state: 'alive',
        incarnation: update.incarnation,
        update,
        since: now,
        lastHeard: now
      }
      this.view.set(principal, record)
      this.insertProbeTarget(principal)
      this.enqueue(update)
      this.changed(record)
      this.log('%s joins the view at incarnation %d', principal, update.incarnation)
      return 'new'
    }
    if (outcome === 'confirm') {
      return this.confirm(record, update as AccusationUpdate) ? 'confirm' : 'stale'
    }
    const previous = record.state
    if (update.state === 'alive') {
      record.alive = update
      record.lastHeard = now
    } else if (update.state === 'left' && from != null && from.equals(record.peerId)) {
      record.lastHeard = now
    }
    clearTimeout(record.suspicion?.timer)
    record.suspicion = undefined
    record.state = update.state
    record.incarnation = update.incarnation
    record.update = update
    if (previous !== update.state) record.since = now
    this.enqueue(update)
    if (update.state === 'suspect') this.suspect(record, update)
    if (update.state === 'dead' || update.state === 'left') this.probing.delete(record.principal)
    this.log(
      '%s is %s at incarnation %d (%s)',
      record.principal,
      update.state,
      update.incarnation,
      updateSigner(update)
    )
    this.changed(record)
    return 'new'
  }

  /** What others say about this node: a former life's announcements raise its incarnation; accusations are refuted. */
  private aboutSelf(update: Update): Outcome {
    if (!this.active || this.leaving) return 'stale'
    if (update.incarnation < this.incarnation) return 'stale'
    if (update.state === 'alive' && this.ownAlive != null && this.updateKey(update) === this.updateKey(this.ownAlive)) {
      return 'stale'
    }
    // An accusation above this node's incarnation names one it never announced in this life: from a
    // former life (whose alive, which others hold, rides with it: see piggyback and state) or made
    // up by its accuser, who could otherwise push this node to 2^53 and out of reach of refutation.
    if ((update.state === 'suspect' || update.state === 'dead') && update.incarnation > this.incarnation) {
      return 'unknown'
    }
    // an accusation at this incarnation, or anything this key signed in a former life at or above it
    this.incarnation = Math.max(this.incarnation, update.incarnation) + 1
    if (update.state === 'suspect' || update.state === 'dead') this.awareness.apply(1)
    this.log('refuting %s about this node at incarnation %d', update.state, update.incarnation)
    this.announce().catch(err => this.log.error('could not refute - %e', err))
    return 'new'
  }

  // ---------------------------------------------------------------- suspicion

  private suspect(record: MemberRecord, update: AccusationUpdate): void {
    const n = this.liveCount()
    const min = suspicionMinTimeout(this.opts.suspicionMult, n, this.opts.probeInterval)
    const max = this.opts.suspicionMaxTimeoutMult * min
    let expected = Math.max(0, Math.floor(this.opts.suspicionMult - 2))
    if (n - 2 < expected) expected = 0
    const suspicion: Suspicion = {
      incarnation: update.incarnation,
      start: this.now(),
      accusers: new Set([update.by as PrincipalId]),
      expected,
      min,
      max
    }
    record.suspicion = suspicion
    this.armSuspicion(record, expected < 1 ? min : max)
    // an accusation by another member is checked at once with a probe of our own (its confirmation or its refutation)
    if (update.by !== this.self) this.probeSoon(record.principal)
  }

  private confirm(record: MemberRecord, update: AccusationUpdate): boolean {
    const s = record.suspicion
    if (s == null || s.incarnation !== update.incarnation) return false
    if (s.accusers.has(update.by as PrincipalId)) return false
    s.accusers.add(update.by as PrincipalId)
    const confirmations = s.accusers.size - 1
    if (confirmations > s.expected) return false
    this.enqueue(update)
    const total = suspicionTimeout(confirmations, s.expected, s.min, s.max)
    this.armSuspicion(record, Math.max(0, s.start + total - this.now()))
    if (update.by !== this.self) this.probeSoon(record.principal)
    return true
  }

  private armSuspicion(record: MemberRecord, delay: number): void {
    const s = record.suspicion
    if (s == null) return
    this.watchStalls()
    clearTimeout(s.timer)
    s.timer = setTimeout(() => {
      this.suspicionExpired(record.principal, s).catch(err => this.log.error('declaring dead failed - %e', err))
    }, delay)
  }

  private async suspicionExpired(principal: PrincipalId, s: Suspicion): Promise<void> {
    const record = this.view.get(principal)
    if (record == null || record.suspicion !== s || record.state !== 'suspect' || !this.active) return
    if (this.stalled()) {
      // this node was not running: what arrived meanwhile (a refutation) is read before anyone is declared dead
      this.armSuspicion(record, this.awareness.scale(this.opts.probeInterval))
      return
    }
    if (record.lastHeard >= s.start) {
      // it answered or spoke since it was suspected: no death without fresh evidence, so probe it
      // again (its ping carries the suspicion, for the refutation); alive, it stays suspect
      const answered = this.probing.has(principal) || (await this.probe(record))
      if (this.view.get(principal) !== record || record.suspicion !== s || record.state !== 'suspect') return
      if (answered) {
        this.armSuspicion(record, this.awareness.scale(this.opts.probeInterval))
        return
      }
    }
    const dead = await this.sign({
      v: 1,
      state: 'dead',
      member: principal,
      incarnation: s.incarnation,
      by: this.self
    })
    if (this.view.get(principal) !== record || record.suspicion !== s || record.state !== 'suspect') return
    this.log('%s is dead: its suspicion at incarnation %d ran out', principal, s.incarnation)
    this.apply(dead)
    this.spread(dead)
  }

  /** This node accuses `record` of missing its probe (a new suspicion, or its confirmation of one). */
  private async accuse(record: MemberRecord): Promise<void> {
    const incarnation = record.incarnation
    const suspect = await this.sign({ v: 1, state: 'suspect', member: record.principal, incarnation, by: this.self })
    if (this.view.get(record.principal) !== record || record.incarnation !== incarnation) return
    const outcome = this.apply(suspect)
    if (outcome === 'new' || outcome === 'confirm') this.spread(suspect)
  }

  // ---------------------------------------------------------------- probing

  private scheduleProbe(delay: number): void {
    clearTimeout(this.probeTimer)
    if (!this.active) return
    this.probeDueAt = this.now() + delay
    this.probeTimer = setTimeout(() => {
      const started = this.now()
      // fired late: this node was not running (between probes no lag tick runs to see it)
      if (started - this.probeDueAt > this.opts.stallThreshold) this.noteStall(started)
      this.probeRound()
        .catch(err => {
          this.restless = true
          this.log('probe round failed - %e', err)
        })
        .finally(() => {
          this.scheduleProbe(Math.max(0, started + this.roundGap(true) - this.now()))
        })
    }, delay)
  }

  /**
   * The pause between two probe rounds: the probe interval, stretched by local health (Lifeguard)
   * and, while the view is at rest, by `quiet`. `next` moves on to the next round's: doubled
   * after a quiet round (only while this node is healthy), one interval after any change.
   */
  private roundGap(next = false): number {
    if (next) {
      const rest = !this.restless && this.awareness.score === 0
      this.quiet = rest ? Math.min(this.quiet * 2, Math.max(1, Math.floor(this.opts.quietProbeMult))) : 1
      this.restless = false
    }
    return this.awareness.scale(this.opts.probeInterval) * this.quiet
  }

  /** Something changed (a member changed state, left the view, lost its connection, missed a probe): probe every interval again, from now. */
  private stir(): void {
    this.restless = true
    if (this.quiet === 1) return
    this.quiet = 1
    const interval = this.awareness.scale(this.opts.probeInterval)
    if (this.active && this.probeDueAt - this.now() > interval) this.scheduleProbe(interval * this.random())
  }

  /** Randomised round robin: every member once per round, in a fresh random order each round. */
  private nextTarget(): MemberRecord | undefined {
    for (let tries = 0; tries < 2; tries++) {
      while (this.probeOrder.length > 0) {
        const principal = this.probeOrder.shift()!
        const record = this.view.get(principal)
        if (record != null && (record.state === 'alive' || record.state === 'suspect')) return record
      }
      this.probeOrder = this.shuffle(
        this.others()
          .filter(r => r.state === 'alive' || r.state === 'suspect')
          .map(r => r.principal)
      )
    }
    return undefined
  }

  private insertProbeTarget(principal: PrincipalId): void {
    const at = Math.floor(this.random() * (this.probeOrder.length + 1))
    this.probeOrder.splice(at, 0, principal)
  }

  private async probeRound(): Promise<void> {
    this.reap()
    const target = this.nextTarget()
    if (target == null) return
    // A member alive here that asked this node something within the last interval has shown, as
    // recently as a probe would, that it is up and that both ways between us work: its turn
    // passes. (Two members probing each other make one probe per interval between them instead of
    // two.) That answer left this node in time, the same word of its own health an ack gives.
    // A member that falls silent is probed at its next turn: at most one round later.
    if (target.state === 'alive' && target.lastAsked != null && this.now() - target.lastAsked < this.roundGap()) {
      this.awareness.apply(-1)
      return
    }
    await this.probe(target)
  }

  /** Probes `principal` outside the round robin (a lost connection, another member's accusation), if not probed lately. */
  private probeSoon(principal: PrincipalId): void {
    if (!this.active || this.probing.has(principal) || this.extraProbes >= 2) return
    const last = this.lastProbed.get(principal) ?? -Infinity
    if (this.now() - last < this.opts.probeInterval / 2) return
    const record = this.view.get(principal)
    if (record == null || (record.state !== 'alive' && record.state !== 'suspect')) return
    this.extraProbes++
    this.probe(record)
      .catch(err => this.log('probe of %s failed - %e', principal, err))
      .finally(() => {
        this.extraProbes--
      })
  }

  /**
   * One SWIM probe: a direct ping; if no ack within the probe timeout (or the ping failed at
   * once), ping-reqs through k other members; an ack by any path before the interval ends is
   * success. Otherwise this node accuses the target, unless it was itself stalled meanwhile.
   */
  private async probe(target: MemberRecord): Promise<boolean> {
    if (this.probing.has(target.principal)) return false
    this.probing.add(target.principal)
    this.watchStalls()
    const started = this.now()
    this.lastProbed.set(target.principal, started)
    try {
      const interval = this.awareness.scale(this.opts.probeInterval)
      const timeout = this.awareness.scale(this.opts.probeTimeout)
      const deadline = started + interval
      const signal = withTimeout(interval, this.shutdown.signal)
      let acked = false
      let wake: () => void = () => {}
      const wakeUp = (): void => {
        wake()
      }
      const direct = this.ping(target, signal).then(
        ok => {
          acked ||= ok
          return ok
        },
        () => false
      )
      let directDone = false
      void direct.finally(() => {
        directDone = true
        wakeUp()
      })
      await this.sleepUntil(
        started + timeout,
        () => acked || directDone,
        f => (wake = f)
      )
      if (acked) return this.probeSucceeded(target)
      this.stir()
      // indirect probes through k others
      const helpers = this.pick(
        this.others().filter(r => r.state === 'alive' && r !== target),
        this.opts.indirectChecks
      )
      const remaining = Math.max(MIN_INDIRECT_TIMEOUT, deadline - this.now())
      const helperTimeout = Math.min(MAX_INDIRECT_TIMEOUT, Math.max(MIN_INDIRECT_TIMEOUT, Math.floor(remaining * 0.8)))
      let nacks = 0
      let settled = 0
      const indirect = helpers.map(async helper => {
        try {
          const answer = await this.pingReq(helper, target, helperTimeout, signal)
          if (answer === 'ack') acked = true
          else nacks++
        } catch {
          // a helper that does not answer says nothing about the target
        } finally {
          settled++
          wakeUp()
        }
      })
      await this.sleepUntil(
        deadline,
        () => acked || (directDone && settled === helpers.length),
        f => (wake = f)
      )
      void Promise.allSettled(indirect)
      if (acked) return this.probeSucceeded(target)
      // Lifeguard: helpers that did not even nack mean this node's own links or clock are bad
      this.awareness.apply(helpers.length > 0 ? helpers.length - nacks : 1)
      const late = this.now() - deadline > this.opts.stallThreshold
      if (late || this.stalled()) {
        this.log('not accusing %s: this node was stalled during the probe', target.principal)
        return false
      }
      if (!this.active || this.view.get(target.principal) !== target) return false
      if (target.state !== 'alive' && target.state !== 'suspect') return false
      await this.accuse(target)
      return false
    } finally {
      this.probing.delete(target.principal)
    }
  }

  private probeSucceeded(target: MemberRecord): true {
    this.awareness.apply(-1)
    target.lastHeard = this.now()
    return true
  }

  /** Resolves at `until` or as soon as `done()` holds (checked whenever `onWake`'s callback is called). */
  private async sleepUntil(until: number, done: () => boolean, onWake: (wake: () => void) => void): Promise<void> {
    if (done()) return
    await new Promise<void>(resolve => {
      const timer = setTimeout(finish, Math.max(0, until - this.now()))
      function finish(): void {
        clearTimeout(timer)
        resolve()
      }
      onWake(() => {
        if (done()) finish()
      })
    })
  }

  /** Piggyback for a message to `to`: the buddy system puts its own suspicion first. */
  private piggyback(to?: MemberRecord): Update[] {
    const first: Update[] = []
    // a suspect hears its suspicion, and a member held dead that still speaks hears its death, to refute it
    // (with its own alive: after a restart with a clock behind, that is what it refutes above)
    if (to?.state === 'suspect' || to?.state === 'dead') first.push(to.alive, to.update)
    const limit = this.opts.retransmitMult * Math.ceil(Math.log10(this.liveCount() + 1))
    return this.queue.take(MAX_PIGGYBACK_UPDATES, MAX_PROBE_MESSAGE_BYTES / 2, Math.max(1, limit), first)
  }

  /** A direct ping; true on an ack. An error answer (the target is up but does not know this node) is an ack that starts a sync. */
  private async ping(target: MemberRecord, signal: AbortSignal): Promise<boolean> {
    const answer = await this.request(
      target,
      { v: 1, type: 'ping', target: target.principal, updates: this.piggyback(target) },
      signal
    )
    if (answer.type === 'ack') return true
    if (answer.type === 'error') {
      if (answer.name === 'UnknownMemberError') {
        this.syncSoon(target.peerId, 0)
        return true
      }
      if (answer.name === 'MembershipRateLimitedError') return true
    }
    return false
  }

  private async pingReq(
    helper: MemberRecord,
    target: MemberRecord,
    timeout: number,
    signal: AbortSignal
  ): Promise<'ack' | 'nack'> {
    const answer = await this.request(
      helper,
      { v: 1, type: 'ping-req', target: target.principal, timeout, updates: this.piggyback(helper) },
      signal
    )
    if (answer.type === 'ack' || answer.type === 'nack') return answer.type
    throw new UnexpectedAnswerError(`${helper.principal} answered a ping-req with ${answer.type}`)
  }

  /** Sends one request to a member and applies the updates its answer carries. */
  private async request(target: MemberRecord, msg: SwimRequest, signal: AbortSignal): Promise<SwimAnswer> {
    const bytes = await requestOnce(
      async (peer, protocol, options) => await this.openStream(peer, target.alive.addrs, protocol, options.signal!),
      target.peerId,
      this.protocol,
      encodeSwimMessage(msg),
      { maxBytes: MAX_SWIM_MESSAGE_BYTES, signal, pool: this.streams }
    )
    const answer = decodeSwimMessage(bytes) as SwimMessage
    if (answer.type === 'ping' || answer.type === 'ping-req') {
      throw new UnexpectedAnswerError(`${target.principal} answered with ${answer.type}`)
    }
    if (answer.type !== 'error') {
      target.lastHeard = this.now()
      await this.receive(answer.updates, target.peerId)
    }
    return answer
  }

  /** A stream over any open connection (relayed ones too), else a dial by the member's signed addresses. */
  private async openStream(
    peer: PeerId,
    addrs: string[],
    protocol: string | string[],
    signal: AbortSignal
  ): Promise<Stream> {
    const { connectionManager } = this.components
    const open = connectionManager.getConnections(peer).filter(c => c.status === 'open')
    let connection: Connection | undefined = open.find(c => c.limits == null) ?? open[0]
    if (connection == null) {
      const id = peer.toString()
      const targets = addrs.flatMap(a => {
        try {
          return [multiaddr(a.endsWith(`/p2p/${id}`) ? a : `${a}/p2p/${id}`)]
        } catch {
          return []
        }
      })
      connection = await connectionManager.openConnection(targets.length > 0 ? targets : peer, { signal })
    }
    return await connection.newStream(protocol, { signal, runOnLimitedConnection: true })
  }

  // ---------------------------------------------------------------- answering

  private async answer(bytes: Uint8Array, connection: Connection): Promise<Uint8Array> {
    const remote = connection.remotePeer
    const id = remote.toString()
    // a peer already found to hold no member chain is refused before its request is decoded
    let principal: PrincipalId | undefined
    try {
      principal = principalFromPeerId(remote)
    } catch {}
    if (principal != null && this.knownNonMember(principal))
      throw new NotAMemberError(`${principal} holds no member chain here`)
    const msg = decodeSwimMessage(bytes) as SwimMessage
    if (msg.type === 'ping') {
      if (!this.pings.take(id)) throw new MembershipRateLimitedError(`${id} sent pings too often`)
      return encodeSwimMessage(await this.answerPing(msg, remote))
    }
    if (msg.type === 'ping-req') {
      if (!this.pingReqs.take(id)) throw new MembershipRateLimitedError(`${id} sent ping-reqs too often`)
      return encodeSwimMessage(await this.answerPingReq(msg, remote))
    }
    if (msg.type === 'sync') {
      if (!this.syncs.take(id)) throw new MembershipRateLimitedError(`${id} asked for syncs too often`)
      return encodeSwimMessage(await this.answerSync(msg.updates, remote))
    }
    throw new UnexpectedAnswerError(`a ${msg.type} is not a request`)
  }

  /** Checks that the asking peer is a member known here; takes its own alive from `updates` if it is new. */
  private async admit(remote: PeerId, updates: Update[]): Promise<PrincipalId> {
    if (!this.active && !this.leaving) throw new NotTakingPartError('this node does not take part in the cluster')
    let principal: PrincipalId
    try {
      principal = principalFromPeerId(remote)
    } catch {
      throw new NotAMemberError(`${remote.toString()} is not an Ed25519 key`)
    }
    if (this.knownNonMember(principal)) throw new NotAMemberError(`${principal} holds no member chain here`)
    if (await this.isKnownMember(principal)) return principal
    const own = updates.find((u): u is AliveUpdate => u.state === 'alive' && u.member === principal)
    if (own == null) throw new UnknownMemberError(`${principal} is not in this node's view: sync first`)
    if (!(await this.signatureHolds(own))) throw new InvalidUpdateSignatureError(`${principal}'s alive is forged`)
    if (!(await this.chainHolds(own))) throw new NotAMemberError(`${principal} holds no member chain here`)
    return principal
  }

  private async answerPing(msg: { target: string; updates: Update[] }, remote: PeerId): Promise<SwimAnswer> {
    if (msg.target !== this.self) throw new WrongTargetError(`this node is ${this.self}, not ${msg.target}`)
    await this.admit(remote, msg.updates)
    await this.receive(msg.updates, remote)
    this.touch(remote, true)
    if (this.leaving && this.ownAlive != null && this.ownLeft != null) {
      return { v: 1, type: 'ack', updates: [this.ownAlive, this.ownLeft] }
    }
    return { v: 1, type: 'ack', updates: this.piggyback(this.view.get(principalFromPeerId(remote))) }
  }

  private async answerPingReq(
    msg: { target: string; timeout: number; updates: Update[] },
    remote: PeerId
  ): Promise<SwimAnswer> {
    await this.admit(remote, msg.updates)
    await this.receive(msg.updates, remote)
    this.touch(remote, true)
    const target = this.view.get(msg.target as PrincipalId)
    // only members alive or suspect here are probed for others: a dead or left one's addresses are not dialled on request
    if (target == null || !this.active || target.principal === this.self) return { v: 1, type: 'nack', updates: [] }
    if (target.state !== 'alive' && target.state !== 'suspect') return { v: 1, type: 'nack', updates: [] }
    let ok = false
    try {
      ok = await this.ping(target, withTimeout(msg.timeout, this.shutdown.signal))
    } catch {}
    const updates = this.piggyback(this.view.get(principalFromPeerId(remote)))
    return ok ? { v: 1, type: 'ack', updates } : { v: 1, type: 'nack', updates }
  }

  private async answerSync(updates: Update[], remote: PeerId): Promise<SwimAnswer> {
    await this.admit(remote, updates)
    await this.receive(updates, remote)
    this.touch(remote, true)
    this.lastSync.set(remote.toString(), this.now())
    return { v: 1, type: 'sync', updates: this.state() }
  }

  private touch(remote: PeerId, asked = false): void {
    const record = this.view.get(principalFromPeerId(remote))
    if (record == null) return
    record.lastHeard = this.now()
    if (asked) record.lastAsked = record.lastHeard
  }

  /**
   * The view as updates: each member's alive, and its state update when it is not alive. This node
   * first, then the others in random order, as many whole members as fit in one sync message (a
   * view of large alives can outgrow it; other syncs carry the rest).
   */
  private state(): Update[] {
    if (this.leaving && this.ownAlive != null && this.ownLeft != null) return [this.ownAlive, this.ownLeft]
    const self = this.view.get(this.self)
    const records = [...(self == null ? [] : [self]), ...this.shuffle(this.others())]
    const alives: Update[] = []
    const states: Update[] = []
    let bytes = 64
    for (const r of records) {
      const pair = r.update !== r.alive ? [r.alive, r.update] : [r.alive]
      const size = pair.reduce((n, u) => n + dagCbor.encode(u).length, 0)
      if (bytes + size > MAX_SWIM_MESSAGE_BYTES || alives.length + states.length + pair.length > MAX_SYNC_UPDATES)
        continue
      bytes += size
      alives.push(r.alive)
      if (pair.length > 1) states.push(r.update)
    }
    return [...alives, ...states]
  }

  // ---------------------------------------------------------------- gossip and anti-entropy

  /** Queues an update for piggybacking and gossip. */
  private enqueue(update: Update): void {
    this.queue.add(update)
    this.gossipSoon()
  }

  /** Starts the gossip timer if there is something to gossip and it is not running. */
  private gossipSoon(): void {
    if (this.gossipTimer != null || !this.active || this.queue.size === 0) return
    this.gossipTimer = setInterval(() => {
      this.gossip()
    }, this.opts.gossipInterval)
  }

  /** Sends queued updates to a few members, piggybacked on pings (only while some are queued). */
  private gossip(): void {
    if (!this.active || this.queue.size === 0) {
      // nothing left to spread: the timer rests until the next update
      clearInterval(this.gossipTimer)
      this.gossipTimer = undefined
      return
    }
    const targets = this.pick(
      this.others().filter(r => r.state === 'alive' || r.state === 'suspect'),
      this.opts.gossipNodes
    )
    if (targets.length === 0) {
      // no one to spread to, and an update leaves the queue only by being sent: the timer rests
      // until the next update (a member joining or coming back is one)
      clearInterval(this.gossipTimer)
      this.gossipTimer = undefined
      return
    }
    for (const target of targets) {
      if (this.probing.has(target.principal)) continue
      this.ping(target, withTimeout(this.opts.probeTimeout * 2, this.shutdown.signal)).catch(err =>
        this.log.trace('gossip to %s failed - %e', target.principal, err)
      )
    }
  }

  private pushPull(): void {
    if (!this.active) return
    const [target] = this.pick(
      this.others().filter(r => r.state === 'alive'),
      1
    )
    if (target != null) this.syncSoon(target.peerId, 0)
  }

  /** A full state exchange with `peer` after `delay` ms, at most once per 2 s per peer. */
  private syncSoon(peer: PeerId, delay: number): void {
    if (!this.active || peer.equals(this.components.peerId)) return
    const id = peer.toString()
    const last = this.lastSync.get(id)
    if (last != null && this.now() - last < 2000) return
    this.lastSync.set(id, this.now())
    setTimeout(() => {
      this.sync(peer).catch(err => this.log.trace('sync with %p failed - %e', peer, err))
    }, delay)
  }

  private async sync(peer: PeerId): Promise<void> {
    if (!this.active) return
    let principal: PrincipalId
    try {
      principal = principalFromPeerId(peer)
    } catch {
      return
    }
    const record = this.view.get(principal)
    // the view is for members only: a peer not known as one (first contact) gets this node's own
    // alive, proves itself in its answer, and learns the rest when it asks with its own alive
    const known = await this.isKnownMember(principal)
    const updates = known ? this.state() : this.state().filter(u => u.member === this.self)
    const signal = withTimeout(10_000, this.shutdown.signal)
    const bytes = await requestOnce(
      async (p, protocol, options) => await this.openStream(p, record?.alive.addrs ?? [], protocol, options.signal!),
      peer,
      this.protocol,
      encodeSwimMessage({ v: 1, type: 'sync', updates }),
      { maxBytes: MAX_SWIM_MESSAGE_BYTES, signal, pool: this.streams }
    )
    const answer = decodeSwimMessage(bytes) as SwimMessage
    if (answer.type !== 'sync') {
      if (answer.type === 'error') this.log.trace('%p refused a sync: %s', peer, answer.name)
      return
    }
    // the answer must hold the answerer's own alive with a chain that holds here
    const own = answer.updates.find(u => u.state === 'alive' && u.member === principal)
    if (own == null && !(await this.isKnownMember(principal))) return
    await this.receive(answer.updates, peer)
    this.touch(peer)
  }

  // ---------------------------------------------------------------- libp2p events

  private readonly onIdentify = (event: CustomEvent<{ peerId: PeerId; protocols: string[] }>): void => {
    const { peerId, protocols } = event.detail
    if (!protocols.includes(this.protocol)) return
    let principal: PrincipalId
    try {
      principal = principalFromPeerId(peerId)
    } catch {
      return
    }
    if (this.knownNonMember(principal)) return
    const record = this.view.get(principal)
    // first contact: a peer not in the view, or one whose state here is not alive
    if (record == null || record.state !== 'alive') this.syncSoon(peerId, 0)
  }

  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    let principal: PrincipalId
    try {
      principal = principalFromPeerId(event.detail)
    } catch {
      return
    }
    const record = this.view.get(principal)
    if (record == null || record.state !== 'alive') return
    this.stir()
    // a lost connection is no accusation, but worth a probe now rather than at its turn
    setTimeout(() => {
      this.probeSoon(principal)
    }, 10)
  }

  private addrsTimer?: ReturnType<typeof setTimeout>

  private readonly onSelfUpdate = (): void => {
    if (!this.active) return
    clearTimeout(this.addrsTimer)
    this.addrsTimer = setTimeout(() => {
      if (!this.active || this.ownAlive == null) return
      if (this.ownAddrs().join() === this.ownAlive.addrs.join()) return
      this.announce().catch(err => this.log('announcing new addresses failed - %e', err))
    }, 1000)
  }

  // ---------------------------------------------------------------- the topic

  /**
   * Gossipsub's check of a membership message, run before it is delivered or forwarded: a bounded
   * decode, signature checks and the local membership check; no network work. Every update must
   * be made by the publisher, whose own alive (with its chain) rides along. Reject (the sender is
   * penalised): malformed, forged, by a non-member, made by someone else, or an accusation of a
   * known non-member. Ignore: nothing new, or an accusation about a member this node does not know.
   */
  readonly validate = async (_from: PeerId, msg: Message): Promise<TopicValidatorResult> => {
    if (!this.active) return TopicValidatorResult.Ignore
    if (msg.type !== 'signed') return TopicValidatorResult.Reject
    let publisher: PrincipalId
    try {
      publisher = principalFromPeerId(msg.from)
    } catch {
      return TopicValidatorResult.Reject
    }
    if (this.knownNonMember(publisher)) return TopicValidatorResult.Reject
    if (!this.topicMessages.take(msg.from.toString())) return TopicValidatorResult.Ignore
    let updates: Update[]
    try {
      updates = decodeTopicMessage(msg.data).updates.slice(0, MAX_TOPIC_UPDATES)
    } catch {
      return TopicValidatorResult.Reject
    }
    if (!updates.every(u => updateSigner(u) === publisher)) return TopicValidatorResult.Reject
    const own = updates.find((u): u is AliveUpdate => u.state === 'alive' && u.member === publisher)
    if (own == null) return TopicValidatorResult.Reject
    if (!(await this.signatureHolds(own))) return TopicValidatorResult.Reject
    if (!(await this.chainHolds(own))) return TopicValidatorResult.Reject
    const outcomes = await this.receive(updates, msg.from)
    if (outcomes.includes('forged') || outcomes.includes('non-member')) return TopicValidatorResult.Reject
    if (outcomes.some(o => o === 'new' || o === 'confirm')) return TopicValidatorResult.Accept
    return TopicValidatorResult.Ignore
  }

  // ---------------------------------------------------------------- randomness

  private shuffle<T>(items: T[]): T[] {
    const out = [...items]
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1))
      ;[out[i], out[j]] = [out[j], out[i]]
    }
    return out
  }

  private pick<T>(items: T[], count: number): T[] {
    return this.shuffle(items).slice(0, Math.max(0, count))
  }
}

export function membership(init: MembershipInit = {}): (components: MembershipComponents) => Membership {
  return components => new MembershipService(components, init)
}
