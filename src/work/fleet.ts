/**
 * The fleet: every member publishes, once per interval (30 s by default; every QUIET_BEATS intervals
 * while its rows do not change, and not at all once it said EMPTY_BEATS times that it has none),
 * ONE heartbeat signed by its node key with a row per agent it hosts — status (active, idle,
 * overloaded, retiring), load factor, tasks done and failed, mean latency — on
 * `/cyberspace/fleet/1.0.0/<namespace>` (spec: protocols/fleet/README.md), and a one-line summary
 * of them in its membership metadata under `fleet` (`n=12 a=9 i=2 o=1 r=0 load=0.71`). The rows themselves are not metadata: a member's
 * metadata is at most 16 keys and 1024 characters in all, which 256 rows of ~200 bytes overflow
 * hundreds of times, and every change of it is a new signed alive spread to every member.
 *
 * Every node keeps the latest rows of each member (a member's rows replace its previous ones: at
 * most members × 256 rows), answers `status()` and `rows(kind)` from them, and drops a member's
 * rows when it dies, leaves or is removed. Inbound heartbeats are hostile until checked: from a
 * member of this node's view only, no sooner than interval/4 after the member's last one, within a
 * per-member budget, decoded with limits, the host field equal to the gossipsub publisher, newer
 * than its last and not too far ahead of this clock, the signature valid — gossipsub Reject
 * (penalising the sender) for what is malformed or forged, and every drop counted by reason.
 *
 * @example
 * const service = fleet({ interval: 30_000, rows: () => workRows() })({
 *   peerId, privateKey, pubsub: node.pubsub, membership: node.membership, logger: node.libp2p.logger, agents: node.agents
 * })
 * await service.start()
 * service.status() // { totals: { agents, active, idle, … }, members: [...], agents: [...] }
 * await service.beat() // publish now, e.g. once an agent is retiring
 */
import * as dagCbor from '@ipld/dag-cbor'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import {
  checkHeartbeatRow,
  decodeHeartbeat,
  DEFAULT_FLEET_INTERVAL,
  DEFAULT_NAMESPACE,
  encodeHeartbeat,
  fleetTopic,
  HEARTBEAT_DOMAIN,
  MAX_FLEET_INTERVAL,
  MAX_HEARTBEAT_BYTES,
  MAX_HEARTBEAT_ROWS,
  MIN_FLEET_INTERVAL
} from '../../protocols/fleet/codec.ts'
import { unsignedBody } from '../../protocols/wire.ts'
import { compareHlc, Hlc } from '../clock/hlc.ts'
import { principalFromPeerId, principalPublicKey } from '../crypto/principal.ts'
import { seedSigner, verifyAs } from '../crypto/sign.ts'
import { PeerBudget } from '../peer-budget.ts'
import { RecentMap } from '../recent-map.ts'
import { FleetNotTakingPartError, InvalidFleetOptionError } from './fleet-errors.ts'
import type { AgentLoadStatus, Heartbeat, HeartbeatRow, UnsignedHeartbeat } from '../../protocols/fleet/codec.ts'
import type { HlcTimestamp } from '../clock/hlc.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Signer } from '../crypto/sign.ts'
import type { Agents } from '../actor/agents.ts'
import type { Membership, MemberView } from '../membership/service.ts'
import type { EventJournal } from './events.ts'
import type { GossipSub, Message } from '@libp2p/gossipsub'
import type { AbortOptions, ComponentLogger, Logger, PeerId, PrivateKey, Startable } from '@libp2p/interface'

export {
  AGENT_LOAD_STATUSES,
  DEFAULT_FLEET_INTERVAL,
  fleetTopic,
  MAX_FLEET_INTERVAL,
  MAX_HEARTBEAT_ROWS,
  MIN_FLEET_INTERVAL
} from '../../protocols/fleet/codec.ts'
export type { AgentLoadStatus, HeartbeatRow } from '../../protocols/fleet/codec.ts'

/** The membership metadata key of a node's fleet summary. */
export const FLEET_META_KEY = 'fleet'
/** Rows whose last heartbeat is older than this many intervals are stale; older than FORGET_AFTER intervals (by default), gone. */
export const STALE_AFTER = 5
export const FORGET_AFTER = 10
/**
 * While its rows do not change, a member publishes a heartbeat every QUIET_BEATS intervals instead
 * of every interval: its rows turn stale on the others after STALE_AFTER intervals, so one interval
 * is left for delivery and timer drift. A change of rows goes out at the next interval, as before.
 * Death and leaving reach the fleet through membership at once, so a quiet member costs the cluster
 * one message per QUIET_BEATS intervals (in an idle cluster, the gossip it still carries).
 */
export const QUIET_BEATS = 4
/**
 * A member that hosts no agents publishes its empty heartbeat this many times in a row (once more,
 * QUIET_BEATS intervals later, for a receiver that missed it; a heartbeat that reached no peer does
 * not count), then nothing until it has rows: no row of it can go stale, and receivers, once they
 * forget its empty entry after forgetAfter, list it with no agents. An idle cluster of agentless
 * members then publishes no heartbeats.
 */
export const EMPTY_BEATS = 2
/** A member's heartbeat arriving sooner than interval × FLOOD_GAP after its last accepted one is dropped. */
export const FLOOD_GAP = 1 / 4
/** This node publishes no sooner than interval × PUBLISH_GAP after its last heartbeat (room for jitter over FLOOD_GAP). */
export const PUBLISH_GAP = 3 / 8

/** A row as the rows callback gives it: the hlc is the heartbeat's when absent. */
export type HeartbeatRowInput = Omit<HeartbeatRow, 'hlc'> & { hlc?: HlcTimestamp }

/** A row as this node holds it: the host that reported it and how old that report is. */
export interface FleetRow extends HeartbeatRow {
  agent: PrincipalId
  host: PrincipalId
  /** When this node received the heartbeat (its own clock), ms. */
  at: number
  /** ms since then. */
  age: number
  /** Older than STALE_AFTER intervals: not counted as active, idle, overloaded or retiring. */
  stale: boolean
}

export interface FleetTotals {
  /** Rows known (stale included): active + idle + overloaded + retiring + stale. */
  agents: number
  active: number
  idle: number
  overloaded: number
  retiring: number
  stale: number
  /** Mean load factor of the rows that are not stale (0 when none). */
  load: number
  /** Sums over every row. */
  done: number
  failed: number
}

export interface FleetMember {
  member: PrincipalId
  /** Its summary: from its latest heartbeat, else from its membership metadata. */
  summary: string
  /** When its latest heartbeat arrived, ms (0: known from its metadata only). */
  at: number
}

export interface FleetStatus {
  totals: FleetTotals
  members: FleetMember[]
  /** Sorted by kind, then principal. */
  agents: FleetRow[]
}

/** Why an inbound heartbeat (or a row of one) was not taken. */
export type FleetDropReason =
  'non-member' | 'budget' | 'flood' | 'malformed' | 'forged' | 'replay' | 'stale' | 'drift' | 'full' | 'foreign-row'
export const FLEET_DROP_REASONS: readonly FleetDropReason[] = [
  'non-member',
  'budget',
  'flood',
  'malformed',
  'forged',
  'replay',
  'stale',
  'drift',
  'full',
  'foreign-row'
]

export interface FleetInit {
  /** Time between two heartbeats, ms; default 30 000. Every member should use the same. */
  interval?: number
  /** The topic's last segment (normally one per cluster); default `default`. */
  namespace?: string
  /**
   * The rows of the agents this node hosts, asked for at every heartbeat (the work service gives
   * them from agents and work statistics). Default: every agent `agents.list()` shows, idle (or
   * retiring while it stops), with zero counts. Rows of agents the agents service does not host
   * here are dropped; at most 256 rows are sent (by kind, then principal).
   */
  rows?: () => HeartbeatRowInput[] | Promise<HeartbeatRowInput[]>
  /**
   * Who this node believes hosts an agent (e.g. the agent directory), to drop rows a member
   * reports for agents hosted elsewhere; `undefined` when it does not know (the row is kept).
   */
  hostOf?: (agent: PrincipalId) => PrincipalId | undefined
  /** Where `agent:move` and `agent:status` events go (source `fleet`). */
  journal?: EventJournal
  /** The clock heartbeats are stamped with and remote ones received into; default a new Hlc. */
  clock?: Hlc
  /** Whether to publish the summary in membership metadata (key `fleet`); default true. */
  summaryInMeta?: boolean
  /** A member silent this long (ms) is forgotten; default 10 intervals (it stays listed, stale, until then). */
  forgetAfter?: number
  /** Most members (besides this node) whose rows are held; default 512 (the membership view's default). */
  maxHosts?: number
  now?: () => number
}

export interface FleetComponents {
  peerId: PeerId
  /** The node's key, which signs its heartbeats: `privateKey` (libp2p's component) or a `signer` of the same key. */
  privateKey?: PrivateKey
  signer?: Signer
  pubsub: GossipSub
  membership: Membership
  logger: ComponentLogger
  /** The agents this node hosts: the default rows, and which agents a row may name. */
  agents?: Agents
}

export interface Fleet {
  /** The gossipsub topic of this fleet. */
  readonly topic: string
  readonly interval: number
  /** Totals, members and per-agent rows as this node holds them now. */
  status(): FleetStatus
  /** The rows held now, of one kind or all; sorted by kind, then principal. */
  rows(kind?: string): FleetRow[]
  /**
   * Publishes a heartbeat now (e.g. when an agent starts retiring, so peers learn at once): at the
   * earliest interval × 3/8 after the previous one, which peers would drop as a flood. Throws
   * FleetNotTakingPartError when the fleet is stopped or this node is not a member.
   */
  beat(options?: AbortOptions): Promise<void>
  /** Inbound heartbeats (and rows) not taken, by reason, since start. */
  drops(): Record<FleetDropReason, number>
}

/** What this node holds of one member. */
interface HostEntry {
  rows: HeartbeatRow[]
  hlc: HlcTimestamp
  /** Local ms the heartbeat arrived (or was published, for this node). */
  at: number
}

/** The summary line of a set of rows: counts by status (stale rows count in n only) and the mean load. */
export function fleetSummary(rows: ReadonlyArray<Pick<HeartbeatRow, 'status' | 'load'> & { stale?: boolean }>): string {
  const count = { active: 0, idle: 0, overloaded: 0, retiring: 0 }
  let load = 0
  let fresh = 0
  for (const r of rows) {
    if (r.stale === true) continue
    count[r.status]++
    load += r.load
    fresh++
  }
  const mean = fresh === 0 ? 0 : load / fresh
  return `n=${rows.length} a=${count.active} i=${count.idle} o=${count.overloaded} r=${count.retiring} load=${mean.toFixed(2)}`
}

/** A component that may be absent, also from libp2p's components (which throw for a name they lack). */
function optional<K extends keyof FleetComponents>(
  components: FleetComponents,
  name: K
): FleetComponents[K] | undefined {
  try {
    return components[name] ?? undefined
  } catch {
    return undefined
  }
}

const byKindThenAgent = (a: { kind: string; agent: string }, b: { kind: string; agent: string }): number =>
  a.kind !== b.kind ? (a.kind < b.kind ? -1 : 1) : a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0

export class FleetService implements Fleet, Startable {
  readonly topic: string
  readonly interval: number
  private readonly components: FleetComponents
  private readonly log: Logger
  private readonly self: PrincipalId
  private readonly now: () => number
  private readonly clock: Hlc
  private readonly rowsOf: () => HeartbeatRowInput[] | Promise<HeartbeatRowInput[]>
  private readonly hostOf?: (agent: PrincipalId) => PrincipalId | undefined
  private readonly journal?: EventJournal
  private readonly summaryInMeta: boolean
  private readonly maxHosts: number
  private readonly forgetAfter: number
  private readonly agents?: Agents
  private readonly signerGiven?: Signer
  private readonly privateKey?: PrivateKey
  private readonly table = new Map<PrincipalId, HostEntry>()
  /** Where each agent was last reported, and in what status (for the journal's move and status events). */
  private readonly whereabouts = new Map<PrincipalId, { host: PrincipalId; status: AgentLoadStatus }>()
  /** The newest heartbeat hlc accepted from each member, kept after its rows go, so an old one cannot be replayed. */
  private readonly lastHlc = new RecentMap<PrincipalId, HlcTimestamp>(4096)
  /** When each member's last accepted heartbeat arrived (local ms). */
  private readonly lastArrival = new RecentMap<PrincipalId, number>(4096)
  private readonly budget: PeerBudget
  private readonly dropCounts = Object.fromEntries(FLEET_DROP_REASONS.map(r => [r, 0])) as Record<
    FleetDropReason,
    number
  >
  private signer?: Signer
  private started = false
  private subscribed = false
  private timer?: ReturnType<typeof setTimeout>
  private lastPublished = -Infinity
  /** The rows of the last heartbeat this node published, hlc left out (what a periodic one compares). */
  private lastRowsKey?: string
  /** Heartbeats without rows that reached a peer, in a row (see EMPTY_BEATS). */
  private emptyBeats = 0
  private pending?: Promise<void>
  private metaWriting = false
  private shutdown = new AbortController()

  constructor(components: FleetComponents, init: FleetInit = {}) {
    this.components = components
    this.log = components.logger.forComponent('cyberspace:fleet')
    const interval = init.interval ?? DEFAULT_FLEET_INTERVAL
    if (!Number.isSafeInteger(interval) || interval < MIN_FLEET_INTERVAL || interval > MAX_FLEET_INTERVAL)
      throw new InvalidFleetOptionError(`interval is ${MIN_FLEET_INTERVAL}-${MAX_FLEET_INTERVAL} ms, got ${interval}`)
    this.interval = interval
    try {
      this.topic = fleetTopic(init.namespace ?? DEFAULT_NAMESPACE)
    } catch (err) {
      throw new InvalidFleetOptionError((err as Error).message)
    }
    if (init.rows != null && typeof init.rows !== 'function')
      throw new InvalidFleetOptionError('rows is a function returning the rows of the agents hosted here')
    const maxHosts = init.maxHosts ?? 512
    if (!Number.isSafeInteger(maxHosts) || maxHosts < 1)
      throw new InvalidFleetOptionError('maxHosts is a positive integer')
    this.maxHosts = maxHosts
    const forgetAfter = init.forgetAfter ?? FORGET_AFTER * interval
    if (!Number.isSafeInteger(forgetAfter) || forgetAfter < STALE_AFTER * interval)
      throw new InvalidFleetOptionError(`forgetAfter is an integer of ms, at least ${STALE_AFTER} intervals`)
    this.forgetAfter = forgetAfter
    this.self = principalFromPeerId(components.peerId)
    // libp2p hands services a proxy that throws for a component it does not have (signer, agents)
    this.signerGiven = optional(components, 'signer')
    this.agents = optional(components, 'agents')
    this.privateKey = optional(components, 'privateKey')
    if (this.privateKey == null && this.signerGiven == null)
      throw new InvalidFleetOptionError("the fleet needs the node's privateKey or signer")
    if (this.signerGiven != null && this.signerGiven.principal !== this.self)
      throw new InvalidFleetOptionError("the signer must hold the node's own key: heartbeats are signed by their host")
    this.now = init.now ?? Date.now
    this.clock = init.clock ?? new Hlc({ now: this.now })
    this.rowsOf = init.rows ?? (() => this.defaultRows())
    this.hostOf = init.hostOf
    this.journal = init.journal
    this.summaryInMeta = init.summaryInMeta ?? true
    // per member: 8 heartbeats' worth of validation work per interval, at most 8 at once
    this.budget = new PeerBudget((8 * 60_000) / interval, Infinity, this.now, 1024, 8)
  }

  readonly [Symbol.toStringTag] = 'cyberspace/fleet'

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    if (this.started) return
    this.shutdown = new AbortController()
    const signer = this.signerGiven ?? (await seedSigner((this.privateKey as PrivateKey).raw))
    if (signer.principal !== this.self)
      throw new InvalidFleetOptionError("the fleet signs with the node's own key: privateKey is not the peer id's")
    this.signer = signer
    // two fleets on one topic would replace each other's validator (and the first to stop would remove both)
    if (this.components.pubsub.topicValidators.has(this.topic))
      throw new InvalidFleetOptionError(
        `a fleet already runs on ${this.topic} on this node: give this one another namespace`
      )
    this.components.pubsub.topicValidators.set(this.topic, this.validate)
    this.components.membership.addEventListener('member:change', this.onMemberChange)
    this.components.membership.addEventListener('member:remove', this.onMemberRemove)
    this.started = true
    this.lastRowsKey = undefined
    this.emptyBeats = 0
    this.schedule(0)
  }

  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    this.shutdown.abort(new FleetNotTakingPartError('the fleet stopped'))
    clearTimeout(this.timer)
    this.components.membership.removeEventListener('member:change', this.onMemberChange)
    this.components.membership.removeEventListener('member:remove', this.onMemberRemove)
    if (this.components.pubsub.topicValidators.get(this.topic) === this.validate)
      this.components.pubsub.topicValidators.delete(this.topic)
    if (this.subscribed) {
      try {
        this.components.pubsub.unsubscribe(this.topic)
      } catch {}
      this.subscribed = false
    }
    this.table.clear()
    this.whereabouts.clear()
  }

  private schedule(delay: number): void {
    clearTimeout(this.timer)
    if (!this.started) return
    this.timer = setTimeout(() => {
      this.tick().catch(err => {
        if (this.started) this.log.error('heartbeat failed - %e', err)
      })
    }, delay)
  }

  /** One period: follow this node's membership (subscribe while a member), forget what is too old, publish. */
  private async tick(): Promise<void> {
    if (!this.started) return
    this.schedule(this.interval)
    this.forgetOld()
    if (!this.followMembership()) return
    const key = this.lastRowsKey == null ? undefined : rowsKey(await this.rowsOf())
    if (key != null && key === this.lastRowsKey) {
      // rows unchanged since the last heartbeat, which is recent enough: nothing to say yet
      const quietUntil = this.lastPublished + QUIET_BEATS * this.interval - this.interval / 2
      if (this.now() < quietUntil) return
      // no rows, said twice (once more in case a receiver missed it): none can go stale, and a
      // member without a heartbeat is summed up from its membership metadata
      if (key === NO_ROWS && this.emptyBeats >= EMPTY_BEATS) return
    }
    await this.beat({ signal: this.shutdown.signal })
  }

  /** Subscribes while this node is a member, unsubscribes otherwise; whether it is one. */
  private followMembership(): boolean {
    const member = this.components.membership.isMember()
    if (member && !this.subscribed) {
      this.components.pubsub.subscribe(this.topic)
      this.subscribed = true
    } else if (!member && this.subscribed) {
      try {
        this.components.pubsub.unsubscribe(this.topic)
      } catch {}
      this.subscribed = false
    }
    return member
  }

  // ---------------------------------------------------------------- publishing

  async beat(options: AbortOptions = {}): Promise<void> {
    if (!this.started) throw new FleetNotTakingPartError('the fleet is not started')
    if (!this.followMembership())
      throw new FleetNotTakingPartError('this node holds no member chain: it publishes no heartbeat')
    // calls while one waits or publishes share it
    this.pending ??= this.publishSoon().finally(() => {
      this.pending = undefined
    })
    const pending = this.pending
    if (options.signal == null) return await pending
    options.signal.throwIfAborted()
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(options.signal?.reason)
      options.signal?.addEventListener('abort', onAbort, { once: true })
      pending.then(resolve, reject).finally(() => options.signal?.removeEventListener('abort', onAbort))
    })
  }

  private async publishSoon(): Promise<void> {
    const wait = this.lastPublished + this.interval * PUBLISH_GAP - this.now()
    if (wait > 0) {
      await new Promise<void>((resolve, reject) => {
        const signal = this.shutdown.signal
        const done = (): void => {
          clearTimeout(timer)
          signal.removeEventListener('abort', done)
          if (signal.aborted) reject(signal.reason)
          else resolve()
        }
        const timer = setTimeout(done, wait)
        signal.addEventListener('abort', done, { once: true })
      })
    }
    if (!this.started) throw new FleetNotTakingPartError('the fleet stopped')
    await this.publish()
    // the next periodic heartbeat comes a full interval after this one
    this.schedule(this.interval)
  }

  private async publish(): Promise<void> {
    if (this.signer == null) throw new FleetNotTakingPartError('the fleet is not started')
    const hlc = this.clock.tick()
    const input = await this.rowsOf()
    const rows = this.ownRows(input, hlc)
    const unsigned: UnsignedHeartbeat = { v: 1, type: 'heartbeat', host: this.self, hlc, rows }
    const sig = await this.signer.sign(HEARTBEAT_DOMAIN, dagCbor.encode(unsigned))
    const bytes = encodeHeartbeat({ ...unsigned, sig })
    this.lastPublished = this.now()
    this.lastRowsKey = rowsKey(input)
    const empty = this.lastRowsKey === NO_ROWS
    if (!empty) this.emptyBeats = 0
    this.take(this.self, rows, hlc, this.now())
    try {
      const { recipients } = await this.components.pubsub.publish(this.topic, bytes)
      // an empty heartbeat counts once it reached someone
      if (empty && recipients.length > 0) this.emptyBeats++
    } catch (err) {
      // no member subscribed yet (the mesh forms after the first heartbeats): the next one goes out
      this.log.trace('publishing on %s failed - %e', this.topic, err)
    }
    await this.publishSummary(rows)
  }

  /** The rows to publish: well formed, hosted here, each agent once, at most 256 (by kind, then agent). */
  private ownRows(input: HeartbeatRowInput[], hlc: HlcTimestamp): HeartbeatRow[] {
    if (!Array.isArray(input)) {
      this.log.error('the rows callback returned no list')
      return []
    }
    const hosted = this.agents == null ? undefined : new Set(this.agents.list().map(a => a.principal))
    const seen = new Set<string>()
    const rows: HeartbeatRow[] = []
    for (const given of input) {
      const row: HeartbeatRow = {
        agent: given?.agent,
        kind: given?.kind,
        status: given?.status,
        load: given?.load,
        done: given?.done,
        failed: given?.failed,
        latency: given?.latency,
        hlc: given?.hlc ?? hlc
      }
      try {
        checkHeartbeatRow(row, hlc)
      } catch (err) {
        this.log.error('a row for agent %s is malformed: %s', String(given?.agent), (err as Error).message)
        continue
      }
      if (hosted != null && !hosted.has(row.agent as PrincipalId)) {
        this.log('dropping the row of agent %s: it is not hosted here', row.agent)
        continue
      }
      if (seen.has(row.agent)) continue
      seen.add(row.agent)
      rows.push(row)
    }
    rows.sort(byKindThenAgent)
    if (rows.length > MAX_HEARTBEAT_ROWS) {
      this.log.error('%d rows: only the first %d go out', rows.length, MAX_HEARTBEAT_ROWS)
      rows.length = MAX_HEARTBEAT_ROWS
    }
    return rows
  }

  /** Every agent hosted here, idle (retiring while it stops), with zero counts. */
  private defaultRows(): HeartbeatRowInput[] {
    const agents = this.agents
    if (agents == null) return []
    return agents
      .list()
      .filter(a => a.status !== 'stopped' && a.status !== 'crashed')
      .map(a => ({
        agent: a.principal,
        kind: a.kind,
        status: a.status === 'stopping' ? 'retiring' : 'idle',
        load: 0,
        done: 0,
        failed: 0,
        latency: 0
      }))
  }

  /** Puts the summary in membership metadata (merged with what is there) when it changed. */
  private async publishSummary(rows: HeartbeatRow[]): Promise<void> {
    if (!this.summaryInMeta || this.metaWriting) return
    const membership = this.components.membership
    // a member that hosts no agent says nothing (its metadata stays the operator's)
    const summary = rows.length === 0 ? undefined : fleetSummary(rows)
    if (membership.ownMeta()[FLEET_META_KEY] === summary) return
    this.metaWriting = true
    try {
      // only this key: the other keys (kinds, role…) are their writers'
      await membership.updateMeta({ [FLEET_META_KEY]: summary })
    } catch (err) {
      this.log.error('could not publish the fleet summary in membership metadata - %e', err)
    } finally {
      this.metaWriting = false
    }
  }

  // ---------------------------------------------------------------- receiving

  /**
   * Gossipsub's check of a heartbeat, before it is delivered or forwarded; cheap checks first and
   * no network work. Ignore: this node takes no part, the publisher is not a member here, over its
   * budget, sooner than interval/4 after its last, replayed, stale or from a clock too far ahead,
   * or no room. Reject (the sender is penalised): unsigned, malformed, a host that is not the
   * publisher, a bad signature. Accept: the member's rows replace what this node held of it.
   */
  readonly validate = async (_from: PeerId, msg: Message): Promise<TopicValidatorResult> => {
    if (!this.started || !this.components.membership.isMember()) return TopicValidatorResult.Ignore
    if (msg.type !== 'signed') return this.drop('forged', TopicValidatorResult.Reject)
    let publisher: PrincipalId
    try {
      publisher = principalFromPeerId(msg.from)
    } catch {
      return this.drop('forged', TopicValidatorResult.Reject)
    }
    if (publisher === this.self) return TopicValidatorResult.Ignore
    const member = this.components.membership.member(publisher)
    if (member == null || (member.state !== 'alive' && member.state !== 'suspect'))
      return this.drop('non-member', TopicValidatorResult.Ignore)
    const now = this.now()
    const last = this.lastArrival.get(publisher)
    if (last != null && now - last < this.interval * FLOOD_GAP) return this.drop('flood', TopicValidatorResult.Ignore)
    if (!this.budget.take(publisher)) return this.drop('budget', TopicValidatorResult.Ignore)
    if (!this.table.has(publisher) && this.table.size - (this.table.has(this.self) ? 1 : 0) >= this.maxHosts)
      return this.drop('full', TopicValidatorResult.Ignore)
    if (msg.data.length > MAX_HEARTBEAT_BYTES) return this.drop('malformed', TopicValidatorResult.Reject)
    let heartbeat: Heartbeat
    try {
      heartbeat = decodeHeartbeat(msg.data)
    } catch {
      return this.drop('malformed', TopicValidatorResult.Reject)
    }
    if (heartbeat.host !== publisher) return this.drop('forged', TopicValidatorResult.Reject)
    const previous = this.lastHlc.get(publisher)
    if (previous != null && compareHlc(heartbeat.hlc, previous) <= 0)
      return this.drop('replay', TopicValidatorResult.Ignore)
    if (heartbeat.hlc[0] < now - STALE_AFTER * this.interval) return this.drop('stale', TopicValidatorResult.Ignore)
    try {
      this.clock.check(heartbeat.hlc)
    } catch {
      return this.drop('drift', TopicValidatorResult.Ignore)
    }
    if (!(await this.signatureHolds(heartbeat))) return this.drop('forged', TopicValidatorResult.Reject)
    // the checks above were made before an await: the member may have gone meanwhile
    if (!this.started) return TopicValidatorResult.Ignore
    const still = this.components.membership.member(publisher)
    if (still == null || (still.state !== 'alive' && still.state !== 'suspect'))
      return this.drop('non-member', TopicValidatorResult.Ignore)
    const latest = this.lastHlc.get(publisher)
    if (latest != null && compareHlc(heartbeat.hlc, latest) <= 0)
      return this.drop('replay', TopicValidatorResult.Ignore)
    this.clock.receive(heartbeat.hlc)
    this.lastHlc.set(publisher, heartbeat.hlc)
    this.lastArrival.set(publisher, this.now())
    // rows age from when they were signed (or now, for a clock ahead): a relay that held a heartbeat
    // back cannot keep its rows looking fresh for longer than the publisher made them
    this.take(
      publisher,
      this.hostedBy(publisher, heartbeat.rows),
      heartbeat.hlc,
      Math.min(this.now(), heartbeat.hlc[0])
    )
    return TopicValidatorResult.Accept
  }

  private async signatureHolds(heartbeat: Heartbeat): Promise<boolean> {
    try {
      return await verifyAs(
        principalPublicKey(heartbeat.host),
        HEARTBEAT_DOMAIN,
        unsignedBody(heartbeat),
        heartbeat.sig
      )
    } catch {
      return false
    }
  }

  /** The rows of agents that, as far as this node knows, `host` does host. */
  private hostedBy(host: PrincipalId, rows: HeartbeatRow[]): HeartbeatRow[] {
    if (this.hostOf == null) return rows
    return rows.filter(r => {
      let believed: PrincipalId | undefined
      try {
        believed = this.hostOf?.(r.agent as PrincipalId)
      } catch {
        believed = undefined
      }
      if (believed == null || believed === host) return true
      this.dropCounts['foreign-row']++
      return false
    })
  }

  private drop(reason: FleetDropReason, result: TopicValidatorResult): TopicValidatorResult {
    this.dropCounts[reason]++
    return result
  }

  /** A member's rows replace what this node held of it; moves and status changes go to the journal. */
  private take(host: PrincipalId, rows: HeartbeatRow[], hlc: HlcTimestamp, at: number): void {
    const before = this.table.get(host)
    this.table.set(host, { rows, hlc, at })
    const now = new Set(rows.map(r => r.agent))
    for (const r of before?.rows ?? []) {
      if (!now.has(r.agent) && this.whereabouts.get(r.agent as PrincipalId)?.host === host)
        this.whereabouts.delete(r.agent as PrincipalId)
    }
    for (const r of rows) {
      const agent = r.agent as PrincipalId
      const was = this.whereabouts.get(agent)
      this.whereabouts.set(agent, { host, status: r.status })
      if (this.journal == null || was == null) continue
      if (was.host !== host) this.note('agent:move', agent, { from: was.host, to: host, kind: r.kind })
      else if (was.status !== r.status)
        this.note('agent:status', agent, { from: was.status, to: r.status, host, kind: r.kind })
    }
  }

  private note(type: string, subject: string, data: unknown): void {
    try {
      this.journal?.record({ hlc: this.clock.tick(), source: 'fleet', type, subject, data })
    } catch (err) {
      this.log.error('could not record %s - %e', type, err)
    }
  }

  private readonly onMemberChange = (e: CustomEvent<MemberView>): void => {
    if (e.detail.state === 'dead' || e.detail.state === 'left') this.forget(e.detail.principal)
    // this node just became a member: its first heartbeat goes out now, not an interval later
    else if (e.detail.self && e.detail.state === 'alive' && this.lastPublished === -Infinity && this.pending == null)
      this.schedule(0)
  }

  private readonly onMemberRemove = (e: CustomEvent<MemberView>): void => {
    this.forget(e.detail.principal)
  }

  /** Drops a member's rows (it died, left or lost its chain). */
  private forget(host: PrincipalId): void {
    const entry = this.table.get(host)
    if (entry == null) return
    this.table.delete(host)
    for (const r of entry.rows) {
      if (this.whereabouts.get(r.agent as PrincipalId)?.host === host) this.whereabouts.delete(r.agent as PrincipalId)
    }
  }

  /** Forgets members not heard from for `forgetAfter`. */
  private forgetOld(): void {
    const horizon = this.now() - this.forgetAfter
    for (const [host, entry] of [...this.table]) if (host !== this.self && entry.at < horizon) this.forget(host)
  }

  // ---------------------------------------------------------------- reading

  rows(kind?: string): FleetRow[] {
    const now = this.now()
    const staleBefore = now - STALE_AFTER * this.interval
    // an agent reported by two hosts (it moved; the old host has not said so yet): the later report holds
    const best = new Map<string, FleetRow>()
    for (const [host, entry] of this.table) {
      for (const r of entry.rows) {
        if (kind != null && r.kind !== kind) continue
        const row: FleetRow = {
          ...r,
          agent: r.agent as PrincipalId,
          hlc: [r.hlc[0], r.hlc[1]],
          host,
          at: entry.at,
          age: Math.max(0, now - entry.at),
          stale: entry.at < staleBefore
        }
        const other = best.get(r.agent)
        if (
          other == null ||
          compareHlc(row.hlc, other.hlc) > 0 ||
          (compareHlc(row.hlc, other.hlc) === 0 && host > other.host)
        )
          best.set(r.agent, row)
      }
    }
    return [...best.values()].sort(byKindThenAgent)
  }

  status(): FleetStatus {
    const agents = this.rows()
    const totals: FleetTotals = {
      agents: agents.length,
      active: 0,
      idle: 0,
      overloaded: 0,
      retiring: 0,
      stale: 0,
      load: 0,
      done: 0,
      failed: 0
    }
    let load = 0
    for (const r of agents) {
      totals.done += r.done
      totals.failed += r.failed
      if (r.stale) {
        totals.stale++
        continue
      }
      totals[r.status]++
      load += r.load
    }
    const fresh = totals.agents - totals.stale
    totals.load = fresh === 0 ? 0 : load / fresh
    const staleBefore = this.now() - STALE_AFTER * this.interval
    const members: FleetMember[] = []
    for (const m of this.components.membership.members()) {
      if (m.state !== 'alive' && m.state !== 'suspect') continue
      const entry = this.table.get(m.principal)
      if (entry != null) {
        const stale = entry.at < staleBefore
        members.push({
          member: m.principal,
          summary: fleetSummary(entry.rows.map(r => ({ ...r, stale }))),
          at: entry.at
        })
      } else {
        // no heartbeat held: its metadata's summary, else none (a member hosting no agents writes no
        // summary, and after EMPTY_BEATS no heartbeat)
        const meta = m.meta[FLEET_META_KEY]
        members.push({ member: m.principal, summary: typeof meta === 'string' ? meta : fleetSummary([]), at: 0 })
      }
    }
    return { totals, members, agents }
  }

  drops(): Record<FleetDropReason, number> {
    return { ...this.dropCounts }
  }
}

/** The fleet in the js-libp2p shape: `fleet(init)(components)`, then `start()`; membership must run. */
export function fleet(init: FleetInit = {}): (components: FleetComponents) => Fleet & Startable {
  return components => new FleetService(components, init)
}

/** rowsKey of no rows. */
const NO_ROWS = '[]'

/**
 * The rows callback's answer without the rows' own hlc (a row stamped anew but otherwise the same is
 * no news), as a string to compare; undefined when it cannot be written out (then it counts as new).
 */
function rowsKey(input: HeartbeatRowInput[]): string | undefined {
  if (Array.isArray(input) && input.length === 0) return NO_ROWS
  if (!Array.isArray(input)) return undefined
  try {
    return JSON.stringify(input.map(r => [r?.agent, r?.kind, r?.status, r?.load, r?.done, r?.failed, r?.latency]))
  } catch {
    return undefined
  }
}
