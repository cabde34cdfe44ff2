/**
 * The agent registry: signed agent records (A2A v1.0 agent cards) in the cluster's DHT, found by
 * agent principal, by SDSI name and by skill. Wire format and protocol: protocols/registry/.
 *
 * - `publish(card)` signs a record for an agent key this node holds (default: the node's own),
 *   puts it under `/cyberspace-agent/<key hash>`, announces this node as a provider of every skill
 *   id and tag the card declares, and republishes it a third into its lifetime with a higher seq until
 *   `unpublish`.
 * - `get(principal)` reads the record from the DHT (the highest valid seq wins; one older than a
 *   record this node has seen is refused), and returns it only if its host holds
 *   `(cyberspace member)` by this node's ACL (`HostNotMemberError` otherwise).
 * - `resolve("cluster's reviewer")` resolves an SDSI name with name certificates (this node's
 *   store first, else asking connected peers, whose certificates are verified), then `get`s each key.
 * - `find({ skill })` asks the DHT for providers of the skill's key, checks each provider is a
 *   member, asks it over `/cyberspace/registry/1.0.0` for the records it hosts that declare the
 *   skill, and verifies every record (signature, expiry, host, skill).
 *
 * Registry data is public within the DHT: the protocol answers any peer, within a per-peer budget.
 *
 * @example
 * // createNode runs the registry and its DHT validator on every node
 * await node.registry.publish({ name: 'reviewer', description: 'reviews code', version: '1.0.0',
 *   skills: [{ id: 'code-review', name: 'Code review', description: 'reviews a diff', tags: ['review'] }] })
 * const { records: found } = await other.registry.find({ skill: 'review' })
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { base16 } from 'multiformats/bases/base16'
import {
  agentKey,
  checkAgentCard,
  declaresSkill,
  decodeAgentRecord,
  decodeRegistryMessage,
  encodeRegistryMessage,
  LIBP2P_BINDING,
  libp2pInterface,
  MAX_ADDR_LENGTH,
  MAX_ADDRS,
  MAX_LIST_RECORDS,
  MAX_NAME_CERT_BYTES,
  MAX_NAME_CERTS,
  MAX_NAME_PATH,
  MAX_RECORD_TTL_MS,
  MAX_REGISTRY_MESSAGE_BYTES,
  normalizeSkill,
  REGISTRY_PROTOCOL,
  skillCid,
  skillKeysOf
} from '../../protocols/registry/codec.ts'
import { errorAnswer } from '../../protocols/wire.ts'
import { parsePrincipal, principalFromPeerId } from '../crypto/principal.ts'
import { seedSigner } from '../crypto/sign.ts'
import { requestAnswer, serveRequests, withTimeout } from '../network/rpc.ts'
import { RecentMap } from '../recent-map.ts'
import { parseSignedCert, signedCertToSexp } from '../spki/cert.ts'
import { resolveName } from '../spki/discover.ts'
import { MEMBER_TAG } from '../membership/service.ts'
import { decodeCanonical, encodeCanonical } from '../spki/sexp.ts'
import { PeerBudget } from '../peer-budget.ts'
import { tagImplies } from '../spki/tag.ts'
import {
  AgentNameError,
  AgentNotFoundError,
  AgentNotPublishedError,
  AgentRecordExpiredError,
  HostNotMemberError,
  InvalidAgentRecordError,
  InvalidRegistryMessageError,
  RegistryRefusedError,
  StaleAgentRecordError
} from './errors.ts'
import { SeenRecords, signAgentRecord, verifyAgentRecord } from './record.ts'
import type { AgentRecordView } from './record.ts'
import type { AgentCard, AgentCapabilities, AgentInterface, RegistryMessage } from '../../protocols/registry/codec.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Signer } from '../crypto/sign.ts'
import type { SignedCert } from '../spki/cert.ts'
import type { Membership } from '../membership/service.ts'
import type { Spki } from '../spki/service.ts'
import type { Cluster } from '../threshold/service.ts'
import type {
  AbortOptions,
  ComponentLogger,
  Libp2pEvents,
  Logger,
  PeerId,
  PrivateKey,
  Startable,
  TypedEventTarget
} from '@libp2p/interface'
import type { AddressManager, ConnectionManager, Registrar } from '@libp2p/interface-internal'
import type { KadDHT, QueryEvent } from '@libp2p/kad-dht'

export type { AgentRecordView } from './record.ts'

export interface RegistryInit {
  protocol?: string
  /** The highest seqs seen, shared with this node's DHT validator (agentDhtRecords().seen); default a private one. */
  seen?: SeenRecords
  /** How long one request to a peer may take, in ms; default 10 s. */
  timeout?: number
  /** How long a DHT lookup (get, put, provide, find providers) may take, in ms; default 30 s. */
  lookupTimeout?: number
  /** Lifetime of a published record when `publish` is not told, in ms; default 1 hour. */
  defaultTtl?: number
  /** Lifetime of the record that replaces an unpublished one, in ms; default 10 s. */
  withdrawalTtl?: number
  /** Concurrent inbound registry streams per connection; default 2. */
  maxInboundStreams?: number
  /** Registry requests this node answers for one peer per minute; default 60. */
  maxAnswersPerMinute?: number
  /** Most providers of a skill `find` asks; default 16. */
  maxProviders?: number
  /** Most records `find` and `resolve` return; default 100. */
  maxResults?: number
  /** Most connected peers `resolve` asks for name certificates; default 8. */
  maxNamePeers?: number
}

export interface RegistryComponents {
  peerId: PeerId
  privateKey: PrivateKey
  logger: ComponentLogger
  registrar: Registrar
  connectionManager: ConnectionManager
  addressManager: AddressManager
  dht: KadDHT
  spki: Spki
  cluster?: Cluster
  /** This node's membership view: a provider in it is a member known without asking anyone. */
  membership?: Membership
  /** libp2p's events: a lookup on a node with no connection waits a moment for its first one. */
  events?: TypedEventTarget<Libp2pEvents>
}

/** How long a lookup on a node with no connection waits for one (a node still bootstrapping) before answering from what it holds. */
const ALONE_WAIT_MS = 2000

/** A card as a publisher gives it: the libp2p interface, modes and capabilities are filled in. */
export type AgentCardInput = Omit<
  AgentCard,
  'supportedInterfaces' | 'capabilities' | 'defaultInputModes' | 'defaultOutputModes'
> & {
  supportedInterfaces?: AgentInterface[]
  capabilities?: AgentCapabilities
  defaultInputModes?: string[]
  defaultOutputModes?: string[]
}

export interface PublishOptions extends AbortOptions {
  /** Lifetime of the record in ms (1 s to 7 days); default the service's defaultTtl. */
  ttl?: number
  /** The agent's key, held by this node (Ed25519); default the node's own key. */
  privateKey?: PrivateKey
}

export interface PublishedRecord extends AgentRecordView {
  /** Peers that acknowledged storing the record. */
  peers: number
}

export interface GetOptions extends AbortOptions {
  /** Filled in with what the DHT lookup cost (queries, hops). */
  stats?: LookupStats
}

export interface FindQuery {
  skill: string
  /** Only agents whose principal sorts after this one (the cursor of a page). */
  after?: string
  /** Most records returned, at most the service's maxResults (its default). */
  limit?: number
}

export interface FindResult {
  /** Verified records of member hosts that declare the skill, one per agent, sorted by agent. */
  records: AgentRecordView[]
  /** Whether agents after the last record returned were found too (ask again with `after`). */
  more: boolean
  /** Providers (peer ids) left out, and why. */
  skipped: Array<{ peer: string; error: Error }>
}

export interface Registry {
  /** Signs and publishes a record for the agent whose key is given (default this node's), and keeps it alive. */
  publish(card: AgentCardInput, options?: PublishOptions): Promise<PublishedRecord>
  /** Stops republishing; the record is replaced by one that expires within withdrawalTtl. */
  unpublish(principal: string, options?: AbortOptions): Promise<void>
  /**
   * Stops republishing without a withdrawal: the record lapses at its expiry. What a host does when
   * it lost an agent's lease, since a withdrawal (a higher seq) would override the new host's record.
   */
  forget(principal: string): boolean
  /** The records this node publishes now. */
  published(): AgentRecordView[]
  /** The current record of an agent (principal or peer id) whose host is a member. */
  get(principal: string, options?: GetOptions): Promise<AgentRecordView>
  /** The records of the agents an SDSI name (`cluster's reviewer`, `z6Mk…'s reviewer`) denotes. */
  resolve(name: string, options?: AbortOptions): Promise<AgentRecordView[]>
  /** Records whose cards declare `skill` as a skill id or tag, from member hosts. */
  find(query: FindQuery, options?: AbortOptions): Promise<FindResult>
}

/** Most distinct providers of a skill `find` looks at before choosing the ones it asks. */
export const MAX_PROVIDER_CANDIDATES = 64
/** The first word of a name that stands for the cluster principal. */
export const CLUSTER_WORD = 'cluster'

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

/**
 * What one DHT lookup cost: queries sent, responses, and hops, the depth of the first peer that
 * answered with the value (a peer from the routing table is at depth 1, a peer learned from a
 * depth-d peer's answer at d + 1, this node's own store at 0).
 */
export class LookupStats {
  queries = 0
  responses = 0
  hops?: number
  /** The asking node's peer id: a value from its own store is 0 hops (set by `get` when not given). */
  self?: string
  private readonly depth = new Map<string, number>()

  constructor(self?: string) {
    this.self = self
  }

  observe(event: QueryEvent): void {
    switch (event.name) {
      case 'SEND_QUERY':
        this.queries++
        if (!this.depth.has(event.to.toString())) this.depth.set(event.to.toString(), 1)
        break
      case 'PEER_RESPONSE': {
        this.responses++
        const d = this.depth.get(event.from.toString()) ?? 1
        for (const peer of event.closer) {
          const id = peer.id.toString()
          if ((this.depth.get(id) ?? Infinity) > d + 1) this.depth.set(id, d + 1)
        }
        break
      }
      case 'VALUE': {
        const from = event.from.toString()
        const d = from === this.self ? 0 : (this.depth.get(from) ?? 1)
        if (this.hops == null || d < this.hops) this.hops = d
        break
      }
    }
  }
}

/** One agent this node publishes. */
interface Hosted {
  signer: Signer
  card: AgentCard
  ttl: number
  view: AgentRecordView
  timer?: ReturnType<typeof setTimeout>
}

/** Runs `work` on each item, at most `concurrency` at once. */
async function eachLimited<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++])
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
}

class RegistryService implements Registry, Startable {
  private readonly components: RegistryComponents
  private readonly log: Logger
  private readonly protocol: string
  private readonly seen: SeenRecords
  private readonly timeout: number
  private readonly lookupTimeout: number
  private readonly defaultTtl: number
  private readonly withdrawalTtl: number
  private readonly maxInboundStreams: number
  private readonly maxProviders: number
  private readonly maxResults: number
  private readonly maxNamePeers: number
  private readonly budget: PeerBudget
  private readonly hosted = new Map<PrincipalId, Hosted>()
  /** Skill keys (normalized) this node provides, with how many hosted records declare each. */
  private readonly provided = new Map<string, number>()
  /** Provided skill keys whose last announcement failed or was skipped (no peers): announced again at the next republish. */
  private readonly unprovided = new Set<string>()
  /** The newest record this node verified per agent: a later, older answer from the DHT never replaces it. */
  private readonly latest = new RecentMap<PrincipalId, AgentRecordView>(1024)
  /** Publishing per agent, one at a time. */
  private readonly busy = new Map<PrincipalId, Promise<unknown>>()
  private running = false
  /** This node's key, countersigning the records of the agents it hosts. */
  private hostSigner?: Signer

  constructor(components: RegistryComponents, init: RegistryInit) {
    this.components = components
    this.log = components.logger.forComponent('cyberspace:registry')
    this.protocol = init.protocol ?? REGISTRY_PROTOCOL
    this.seen = init.seen ?? new SeenRecords()
    this.timeout = init.timeout ?? 10_000
    this.lookupTimeout = init.lookupTimeout ?? 30_000
    this.defaultTtl = init.defaultTtl ?? 3_600_000
    this.withdrawalTtl = init.withdrawalTtl ?? 10_000
    this.maxInboundStreams = init.maxInboundStreams ?? 2
    this.budget = new PeerBudget(init.maxAnswersPerMinute ?? 60, this.maxInboundStreams, Date.now)
    this.maxProviders = init.maxProviders ?? 16
    this.maxResults = init.maxResults ?? 100
    this.maxNamePeers = init.maxNamePeers ?? 8
  }

  readonly [Symbol.toStringTag] = 'cyberspace/registry'

  async start(): Promise<void> {
    const handler = serveRequests(async (bytes, connection) => await this.answerWithin(bytes, connection.remotePeer), {
      maxBytes: MAX_REGISTRY_MESSAGE_BYTES,
      timeout: this.timeout,
      log: this.log,
      refuse: err => encodeRegistryMessage(errorAnswer(err))
    })
    await this.components.registrar.handle(this.protocol, handler, { maxInboundStreams: this.maxInboundStreams })
    this.running = true
  }

  async stop(): Promise<void> {
    this.running = false
    for (const entry of this.hosted.values()) clearTimeout(entry.timer)
    this.hosted.clear()
    this.provided.clear()
    await this.components.registrar.unhandle(this.protocol)
  }

  private get spki(): Spki {
    return this.components.spki
  }

  private get self(): string {
    return this.components.peerId.toString()
  }

  published(): AgentRecordView[] {
    return [...this.hosted.values()].map(h => h.view)
  }

  // --- publishing ---

  async publish(input: AgentCardInput, options: PublishOptions = {}): Promise<PublishedRecord> {
    const key = options.privateKey ?? this.components.privateKey
    if (key.type !== 'Ed25519') throw new InvalidAgentRecordError(`an agent key is Ed25519, not ${key.type}`)
    const ttl = options.ttl ?? this.defaultTtl
    if (!Number.isSafeInteger(ttl) || ttl < 1000 || ttl > MAX_RECORD_TTL_MS)
      throw new InvalidAgentRecordError(`ttl must be 1000-${MAX_RECORD_TTL_MS} ms`)
    const signer = await seedSigner(key.raw)
    const card = this.completeCard(input, signer.principal)
    return await this.serialized(signer.principal, async () => {
      // the first record of this agent in this run beats whatever the DHT holds (an earlier run's, with a clock ahead)
      const published = await this.putRecord(signer, card, ttl, {
        ...options,
        lookup: !this.hosted.has(signer.principal)
      })
      const previous = this.hosted.get(signer.principal)
      clearTimeout(previous?.timer)
      const entry: Hosted = { signer, card, ttl, view: published }
      this.hosted.set(signer.principal, entry)
      this.schedule(entry)
      await this.updateProvided(previous?.card, card, options)
      return published
    })
  }

  /** The card with this host's libp2p interface first, and A2A's required fields defaulted. */
  private completeCard(input: AgentCardInput, agent: PrincipalId): AgentCard {
    if (input == null || typeof input !== 'object') return checkAgentCard(input)
    const others = (input.supportedInterfaces ?? []).filter(i => i?.protocolBinding !== LIBP2P_BINDING)
    return checkAgentCard({
      ...input,
      supportedInterfaces: [libp2pInterface(this.self, agent), ...others],
      capabilities: input.capabilities ?? {},
      defaultInputModes: input.defaultInputModes ?? ['text/plain'],
      defaultOutputModes: input.defaultOutputModes ?? ['text/plain']
    })
  }

  private async serialized<T>(agent: PrincipalId, work: () => Promise<T>): Promise<T> {
    const before = this.busy.get(agent) ?? Promise.resolve()
    const run = before.catch(() => {}).then(work)
    this.busy.set(agent, run)
    try {
      return await run
    } finally {
      if (this.busy.get(agent) === run) this.busy.delete(agent)
    }
  }

  /**
   * Signs the next record of `signer`'s agent, countersigned by this node as its host, and stores
   * it locally and at the closest peers. With `lookup`, the seq also beats the record the DHT holds.
   */
  private async putRecord(
    signer: Signer,
    card: AgentCard,
    ttl: number,
    options: AbortOptions & { lookup?: boolean }
  ): Promise<PublishedRecord> {
    const keyText = agentKey(signer.principal)
    let last = Math.max(this.hosted.get(signer.principal)?.view.seq ?? -1, this.seen.seq(keyText) ?? -1)
    if (options.lookup === true) last = Math.max(last, await this.storedSeq(keyText, options))
    const now = Date.now()
    // strictly increasing even within one millisecond or when the clock steps back
    const seq = Math.max(now, last + 1)
    if (!Number.isSafeInteger(seq))
      throw new StaleAgentRecordError(
        `a record of ${signer.principal} with seq ${last} is in the DHT: no newer one can be published before it expires`
      )
    const addrs = this.components.addressManager
      .getAddresses()
      .map(String)
      .filter(a => a.length <= MAX_ADDR_LENGTH)
      .slice(0, MAX_ADDRS)
    this.hostSigner ??= await seedSigner(this.components.privateKey.raw)
    const { bytes } = await signAgentRecord(signer, this.hostSigner, { addrs, seq, expires: now + ttl, card })
    const view = await verifyAgentRecord(keyText, bytes)
    this.seen.observe(view)
    this.latest.set(view.agent, view)
    let peers = 0
    const signal = withTimeout(this.lookupTimeout, options.signal)
    if (!this.alone()) {
      for await (const event of this.components.dht.put(utf8(keyText), bytes, { signal })) {
        if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') peers++
      }
    }
    this.log('published %s seq %d at %d peers', view.agent, seq, peers)
    return { ...view, peers }
  }

  /** The highest seq of a valid record under `keyText` the DHT gives now; -1 when none. */
  private async storedSeq(keyText: string, options: AbortOptions): Promise<number> {
    let highest = -1
    if (this.alone()) return highest
    try {
      for await (const event of this.components.dht.get(utf8(keyText), {
        signal: withTimeout(this.lookupTimeout, options.signal)
      })) {
        if (event.name !== 'VALUE') continue
        try {
          highest = Math.max(highest, (await verifyAgentRecord(keyText, event.value)).seq)
        } catch {}
      }
    } catch (err) {
      options.signal?.throwIfAborted()
      this.log('no current record under %s - %e', keyText, err)
    }
    return highest
  }

  /** Republishes `entry` a third into its lifetime with a higher seq, until unpublished or stopped. */
  private schedule(entry: Hosted): void {
    const timer = setTimeout(
      () => {
        if (!this.running || this.hosted.get(entry.view.agent) !== entry) return
        this.serialized(entry.view.agent, async () => {
          if (!this.running || this.hosted.get(entry.view.agent) !== entry) return
          entry.view = await this.putRecord(entry.signer, entry.card, entry.ttl, {})
          await this.announce([...this.unprovided], {})
          this.schedule(entry)
        }).catch((err: unknown) => {
          this.log.error('could not republish %s - %e', entry.view.agent, err)
          // try again soon, while the record still lives
          if (this.running && this.hosted.get(entry.view.agent) === entry) {
            entry.timer = setTimeout(
              () => {
                this.schedule(entry)
              },
              Math.min(5000, entry.ttl / 8)
            )
          }
        })
        // a third into the record's life, counted from when it was signed (not from when its put
        // ended): a slow put leaves two thirds of the life for the next one to land
      },
      Math.max(0, entry.view.expires - (2 * entry.ttl) / 3 - Date.now())
    )
    if (typeof timer === 'object' && 'unref' in timer) timer.unref()
    entry.timer = timer
  }

  /** Provides the skill keys `next` adds and stops reproviding those no hosted card declares any more. */
  private async updateProvided(
    previous: AgentCard | undefined,
    next: AgentCard | undefined,
    options: AbortOptions
  ): Promise<void> {
    const before = previous == null ? [] : skillKeysOf(previous)
    const after = next == null ? [] : skillKeysOf(next)
    for (const skill of before) {
      const n = (this.provided.get(skill) ?? 1) - 1
      if (n > 0) this.provided.set(skill, n)
      else this.provided.delete(skill)
    }
    const added: string[] = []
    for (const skill of after) {
      const n = this.provided.get(skill) ?? 0
      if (n === 0 && !before.includes(skill)) added.push(skill)
      this.provided.set(skill, n + 1)
    }
    for (const skill of before) {
      if (!this.provided.has(skill)) await this.components.dht.cancelReprovide(skillCid(skill), options)
    }
    for (const skill of this.unprovided) if (!this.provided.has(skill)) this.unprovided.delete(skill)
    await this.announce([...new Set([...added, ...this.unprovided])], options)
  }

  /** Announces this node as a provider of `skills`; those it cannot announce now (no peers, a failure) wait for the next republish. */
  private async announce(skills: string[], options: AbortOptions): Promise<void> {
    if (skills.length === 0) return
    if (this.alone()) {
      for (const skill of skills) this.unprovided.add(skill)
      return
    }
    const signal = withTimeout(this.lookupTimeout, options.signal)
    await eachLimited(skills, 4, async skill => {
      try {
        for await (const _event of this.components.dht.provide(skillCid(skill), { signal })) {
          // drain: the provide completes when the closest peers hold the provider record
        }
        this.unprovided.delete(skill)
      } catch (err) {
        this.unprovided.add(skill)
        this.log.error('could not provide skill %s - %e', skill, err)
      }
    })
  }

  /**
   * Whether this node has no connection at all: a DHT query would only wait for peers until it
   * times out, so lookups answer from what this node holds and puts wait for the next republish.
   */
  private alone(): boolean {
    return this.components.connectionManager.getConnections().length === 0
  }

  /** Whether this node has a connection, waiting up to ALONE_WAIT_MS for a first one (a node still bootstrapping). */
  private async connected(signal: AbortSignal): Promise<boolean> {
    const events = this.components.events
    if (!this.alone() || events == null) return !this.alone()
    return await new Promise<boolean>(resolve => {
      const done = (): void => {
        clearTimeout(timer)
        events.removeEventListener('connection:open', done)
        signal.removeEventListener('abort', done)
        resolve(!this.alone())
      }
      const timer = setTimeout(done, ALONE_WAIT_MS)
      events.addEventListener('connection:open', done)
      signal.addEventListener('abort', done, { once: true })
    })
  }

  async unpublish(principal: string, options: AbortOptions = {}): Promise<void> {
    const agent = parsePrincipal(principal)
    await this.serialized(agent, async () => {
      const entry = this.hosted.get(agent)
      if (entry == null) throw new AgentNotPublishedError(`this node does not publish ${agent}`)
      clearTimeout(entry.timer)
      this.hosted.delete(agent)
      await this.updateProvided(entry.card, undefined, options)
      // a higher seq that expires soon replaces the long-lived record everywhere it is stored
      await this.putRecord(entry.signer, entry.card, this.withdrawalTtl, options)
    })
  }

  forget(principal: string): boolean {
    const agent = parsePrincipal(principal)
    const entry = this.hosted.get(agent)
    if (entry == null) return false
    clearTimeout(entry.timer)
    this.hosted.delete(agent)
    // providing the skill stops with the next reprovide; the record itself is left to lapse
    void this.updateProvided(entry.card, undefined, {}).catch(err => {
      this.log('could not stop providing the skills of %s - %e', agent, err)
    })
    return true
  }

  // --- lookups ---

  async get(principal: string, options: GetOptions = {}): Promise<AgentRecordView> {
    const agent = parsePrincipal(principal)
    const view = await this.lookup(agent, options)
    await this.checkHost(view.host, `${view.agent}'s host`, options)
    return view
  }

  /** The newest valid record of `agent`: from the DHT, this node's own, or the newest it verified before. */
  private async lookup(agent: PrincipalId, options: GetOptions): Promise<AgentRecordView> {
    const keyText = agentKey(agent)
    const candidates: AgentRecordView[] = []
    const errors: Error[] = []
    const signal = withTimeout(this.lookupTimeout, options.signal)
    let found: Uint8Array | undefined
    if (options.stats != null) options.stats.self ??= this.self
    try {
      if (await this.connected(signal))
        for await (const event of this.components.dht.get(utf8(keyText), { signal })) {
          options.stats?.observe(event)
          if (event.name === 'VALUE') found = event.value
        }
    } catch (err) {
      options.signal?.throwIfAborted()
      // the value can be found and still a correction to a stale peer fail afterwards
      if ((err as Error).name !== 'NotFoundError') errors.push(err as Error)
    }
    if (found != null) {
      try {
        candidates.push(await verifyAgentRecord(keyText, found))
      } catch (err) {
        errors.push(err as Error)
      }
    }
    const own = this.hosted.get(agent)?.view
    const remembered = this.latest.get(agent)
    for (const view of [own, remembered]) {
      if (view == null) continue
      if (view.expires > Date.now()) candidates.push(view)
      else
        errors.push(
          new AgentRecordExpiredError(
            `the record of ${agent} expired at ${new Date(view.expires).toISOString()}`,
            view.expires,
            view
          )
        )
    }
    let best: AgentRecordView | undefined
    for (const view of candidates) if (best == null || view.seq > best.seq) best = view
    if (best == null) {
      const expired = errors.find(e => e.name === 'AgentRecordExpiredError')
      if (expired != null) throw expired
      const cause = errors[0]
      throw new AgentNotFoundError(
        `no current record of ${agent} in the DHT${cause == null ? '' : ` (${cause.name}: ${cause.message})`}: its host publishes one with \`cyberspace agents publish --card <file>\``
      )
    }
    this.seen.observe(best)
    this.latest.set(agent, best)
    return best
  }

  /** Throws HostNotMemberError unless `hostId` holds (cyberspace member) by this node's ACL. */
  private async checkHost(hostId: string, what: string, options: AbortOptions): Promise<void> {
    const host = peerIdFromString(hostId)
    const principal = principalFromPeerId(host)
    const refuse = (err: Error): Error =>
      new HostNotMemberError(
        `${what} ${hostId} is not a member by this node's ACL (${err.message}): a member chain comes from \`cyberspace cluster issue ${hostId} '(cyberspace member)'\``,
        err
      )
    try {
      await this.spki.authorizeOrProve(principal, MEMBER_TAG, { signal: options.signal })
      return
    } catch (err) {
      options.signal?.throwIfAborted()
      if ((err as Error).name !== 'ProverNotConnectedError' || host.equals(this.components.peerId))
        throw refuse(err as Error)
    }
    // the host can prove its own membership once connected: only after its agent's signature checked out
    try {
      await this.components.connectionManager.openConnection(host, {
        signal: withTimeout(this.timeout, options.signal)
      })
      await this.spki.authorizeOrProve(principal, MEMBER_TAG, { signal: options.signal })
    } catch (err) {
      options.signal?.throwIfAborted()
      throw refuse(err as Error)
    }
  }

  async resolve(name: string, options: AbortOptions = {}): Promise<AgentRecordView[]> {
    const { root, path } = this.parseName(name)
    let keys = await resolveName(this.spki.certs(), root, path, { verified: true })
    if (keys.size === 0) keys = await this.askNames(root, path, options)
    if (keys.size === 0)
      throw new AgentNameError(
        `no name certificate known here or to connected peers makes ${name} denote a key: issue one with \`cyberspace cert name\` and import it with \`cyberspace cert import\``
      )
    const out: AgentRecordView[] = []
    let first: Error | undefined
    for (const principal of [...keys.keys()].sort().slice(0, this.maxResults)) {
      try {
        out.push(await this.get(principal, options))
      } catch (err) {
        options.signal?.throwIfAborted()
        first ??= err as Error
      }
    }
    if (out.length === 0 && first != null) throw first
    return out
  }

  /** `<root>'s n1's n2…`: the root is `cluster`, a principal id or a peer id. */
  private parseName(name: string): { root: PrincipalId; path: string[] } {
    if (typeof name !== 'string' || name.length > 1024)
      throw new AgentNameError('a name is a string of at most 1024 characters')
    const words = name.trim().split(/'s\s+/)
    if (
      words.length < 2 ||
      words.length > MAX_NAME_PATH + 1 ||
      words.some(w => !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(w))
    )
      throw new AgentNameError(`"${name.slice(0, 80)}" is not a name like cluster's reviewer or z6Mk…'s reviewer`)
    const [first, ...path] = words
    return { root: this.nameRoot(first), path }
  }

  /**
   * The key a name's first word stands for: `cluster` is this node's cluster principal (from its
   * share), or else the one ACL root trusted for (cyberspace member); any other word is a
   * principal id or peer id.
   */
  private nameRoot(word: string): PrincipalId {
    if (word !== CLUSTER_WORD) {
      try {
        return parsePrincipal(word)
      } catch (err) {
        throw new AgentNameError(`the first word of a name is cluster or a principal: ${(err as Error).message}`)
      }
    }
    let cluster: PrincipalId | undefined
    try {
      cluster = this.components.cluster?.info()?.principal
    } catch {
      // no cluster service on this node
    }
    if (cluster != null) return cluster
    const roots = this.spki.acl().filter(e => tagImplies(e.tag, MEMBER_TAG))
    if (roots.length === 1) return roots[0].principal
    throw new AgentNameError(
      roots.length === 0
        ? 'this node holds no cluster share and trusts no root for (cyberspace member), so "cluster" names nothing: start the name with a principal instead'
        : 'this node holds no cluster share and trusts several roots for (cyberspace member): start the name with the principal meant instead of "cluster"'
    )
  }

  /** Asks connected peers for the name certificates resolving root's path; only verified, valid certificates count. */
  private async askNames(
    root: PrincipalId,
    path: string[],
    options: AbortOptions
  ): Promise<Map<PrincipalId, SignedCert[]>> {
    const peers = this.connectedPeers().slice(0, this.maxNamePeers)
    const certs: SignedCert[] = []
    await eachLimited(peers, 4, async peer => {
      try {
        const answer = await this.request(peer, { v: 1, type: 'names', issuer: root, names: path }, 'certs', options)
        for (const bytes of answer.certs) {
          const signed = parseSignedCert(decodeCanonical(bytes, { maxBytes: MAX_NAME_CERT_BYTES }))
          if (signed.cert.type === 'name') certs.push(signed)
        }
      } catch (err) {
        options.signal?.throwIfAborted()
        this.log('no name certificates from %p - %e', peer, err)
      }
    })
    // resolveName verifies each signature and validity; forged or expired ones are left out
    return await resolveName(certs, root, path)
  }

  /** Peers with an open, unlimited connection, each once, in peer id order. */
  private connectedPeers(): PeerId[] {
    const byId = new Map<string, PeerId>()
    for (const c of this.components.connectionManager.getConnections()) {
      if (c.status === 'open' && c.limits == null) byId.set(c.remotePeer.toString(), c.remotePeer)
    }
    return [...byId.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, p]) => p)
  }

  async find(query: FindQuery, options: AbortOptions = {}): Promise<FindResult> {
    const skill = normalizeSkill(query?.skill)
    const after = typeof query.after === 'string' ? query.after : undefined
    const limit = Number.isSafeInteger(query.limit)
      ? Math.max(1, Math.min(query.limit as number, this.maxResults))
      : this.maxResults
    const providers = new Map<string, PeerId>()
    if ([...this.hosted.values()].some(h => declaresSkill(h.card, skill)))
      providers.set(this.self, this.components.peerId)
    // provider records are unauthenticated: look at more providers than are asked, and ask members
    // this node knows (its membership view, its own store) first, so a flood of outsiders claiming
    // the skill cannot crowd them out
    const candidates = Math.max(this.maxProviders, MAX_PROVIDER_CANDIDATES)
    const signal = withTimeout(this.lookupTimeout, options.signal)
    // alone, the DHT has no one to ask: a lookup would only wait out its timeout
    if (!this.alone()) {
      try {
        for await (const event of this.components.dht.findProviders(skillCid(skill), { signal })) {
          if (event.name !== 'PROVIDER' && event.name !== 'PEER_RESPONSE') continue
          for (const info of event.providers) {
            if (providers.size >= candidates) break
            providers.set(info.id.toString(), info.id)
          }
          if (providers.size >= candidates) break
        }
      } catch (err) {
        options.signal?.throwIfAborted()
        if (providers.size === 0 && (err as Error).name !== 'NotFoundError') throw err
      }
    }
    const ranked: Array<{ peer: PeerId; known: boolean }> = []
    for (const peer of providers.values())
      ranked.push({ peer, known: peer.equals(this.components.peerId) || (await this.knownMember(peer, options)) })
    const asked = [...ranked.filter(r => r.known), ...ranked.filter(r => !r.known)]
      .slice(0, this.maxProviders)
      .map(r => r.peer)
    const byAgent = new Map<PrincipalId, AgentRecordView>()
    const skipped: FindResult['skipped'] = []
    await eachLimited(asked, 4, async peer => {
      try {
        for (const view of await this.recordsFrom(peer, skill, options)) {
          const known = byAgent.get(view.agent)
          if (known == null || view.seq > known.seq) byAgent.set(view.agent, view)
        }
      } catch (err) {
        options.signal?.throwIfAborted()
        skipped.push({ peer: peer.toString(), error: err as Error })
      }
    })
    const sorted = [...byAgent.values()]
      .filter(r => after == null || r.agent > after)
      .sort((a, b) => (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0))
    return { records: sorted.slice(0, limit), more: sorted.length > limit, skipped }
  }

  /** Whether `peer` is a member by what this node knows without asking anyone: its membership view, or its own store. */
  private async knownMember(peer: PeerId, options: AbortOptions): Promise<boolean> {
    let principal: PrincipalId
    try {
      principal = principalFromPeerId(peer)
    } catch {
      return false
    }
    try {
      const state = this.components.membership?.member(principal)?.state
      if (state === 'alive' || state === 'suspect') return true
    } catch {
      // no membership view on this node
    }
    try {
      await this.spki.authorize(principal, MEMBER_TAG, { signal: options.signal })
      return true
    } catch {
      options.signal?.throwIfAborted()
      return false
    }
  }

  /** The verified records `peer` hosts that declare `skill`, once `peer` is known to be a member. */
  private async recordsFrom(peer: PeerId, skill: string, options: AbortOptions): Promise<AgentRecordView[]> {
    const host = peer.toString()
    // membership before any question: a non-member provider is asked nothing
    await this.checkHost(host, 'provider', options)
    const encoded = peer.equals(this.components.peerId)
      ? this.hostedDeclaring(skill)
      : (await this.request(peer, { v: 1, type: 'list', skill }, 'records', options)).records
    const out: AgentRecordView[] = []
    for (const bytes of encoded) {
      try {
        const record = decodeAgentRecord(bytes)
        const view = await verifyAgentRecord(agentKey(record.agent), bytes)
        if (view.host !== host)
          throw new InvalidAgentRecordError(`${host} answered with a record hosted by ${view.host}`)
        if (!declaresSkill(view.card, skill))
          throw new InvalidAgentRecordError(`${view.agent} does not declare ${skill}`)
        this.seen.observe(view)
        out.push(view)
      } catch (err) {
        this.log('dropping a record from %p - %e', peer, err)
      }
    }
    return out
  }

  /** The encoded records this node hosts whose cards declare `skill`, at most MAX_LIST_RECORDS. */
  private hostedDeclaring(skill: string): Uint8Array[] {
    const now = Date.now()
    return [...this.hosted.values()]
      .map(h => {
        // a republish signs its record before its DHT put ends: serve the newer one meanwhile, so a
        // put slower than the rest of the old record's life leaves no gap
        const signed = this.latest.get(h.view.agent)
        return signed != null && signed.seq > h.view.seq && signed.host === this.self ? signed : h.view
      })
      .filter(view => declaresSkill(view.card, skill) && view.expires > now)
      .slice(0, MAX_LIST_RECORDS)
      .map(view => view.bytes)
  }

  private async request<K extends 'records' | 'certs'>(
    peer: PeerId,
    message: RegistryMessage,
    expected: K,
    options: AbortOptions
  ): Promise<Extract<RegistryMessage, { type: K }>> {
    const id = peer.toString()
    return await requestAnswer(
      async (p, protocol, o) => await this.components.connectionManager.openStream(p, protocol, o),
      peer,
      this.protocol,
      encodeRegistryMessage(message),
      {
        maxBytes: MAX_REGISTRY_MESSAGE_BYTES,
        signal: withTimeout(this.timeout, options.signal),
        decode: decodeRegistryMessage,
        expected,
        refused: answer => new RegistryRefusedError(`${id} refused: ${answer.message}`, answer.name),
        unexpected: type => new RegistryRefusedError(`${id} answered with ${type}`, 'InvalidRegistryMessageError')
      }
    )
  }

  // --- answering ---

  private async answerWithin(bytes: Uint8Array, peer: PeerId): Promise<Uint8Array> {
    const id = peer.toString()
    if (!this.budget.take(id)) throw new RegistryRefusedError(`${id} asked the registry too often: try again shortly`)
    try {
      return await this.answer(bytes)
    } finally {
      this.budget.release(id)
    }
  }

  /** Answers one request from what this node hosts and its certificate store. */
  private async answer(bytes: Uint8Array): Promise<Uint8Array> {
    const request = decodeRegistryMessage(bytes)
    switch (request.type) {
      case 'list':
        return encodeRegistryMessage({ v: 1, type: 'records', records: this.hostedDeclaring(request.skill) })
      case 'names': {
        const keys = await resolveName(this.spki.certs(), parsePrincipal(request.issuer), request.names, {
          verified: true
        })
        const certs = new Map<string, Uint8Array>()
        for (const proof of keys.values()) {
          for (const signed of proof) {
            const encoded = encodeCanonical(signedCertToSexp(signed))
            if (encoded.length <= MAX_NAME_CERT_BYTES) certs.set(base16.baseEncode(encoded), encoded)
          }
        }
        return encodeRegistryMessage({ v: 1, type: 'certs', certs: [...certs.values()].slice(0, MAX_NAME_CERTS) })
      }
      default:
        throw new InvalidRegistryMessageError(`expected a list or names request, got ${request.type}`)
    }
  }
}

export function registry(init: RegistryInit = {}): (components: RegistryComponents) => Registry {
  return components => new RegistryService(components, init)
}
