/**
 * `createNode(options)`: the one composition root of a Cyberspace node, used unchanged by the
 * Node.js platform (`node/`) and the browser platform (`browser/`). The platform injects what
 * differs — identity key, transports, stores, extra services (a relay server), the connection
 * gater — and everything else is the same stack: noise, yamux, identify, ping, a private Kademlia
 * DHT on `/cyberspace/kad/1.0.0`, gossipsub with strict signing, the bootstrap service, and
 * Helia (its blockstore and dag-cbor; no bitswap, see below) on that same libp2p.
 *
 * @example
 * const node = await createNode({ privateKey, transports: [tcp()], blockstore, datastore, dhtServer: true })
 * await node.start()
 * console.log(node.peerId.toString(), node.multiaddrs().map(String))
 */
import { noise } from '@chainsafe/libp2p-noise'
import { withLibp2pLight } from '@helia/libp2p'
import * as dagCbor from '@ipld/dag-cbor'
import { gossipsub } from '@libp2p/gossipsub'
import { identify, identifyPush } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { createHeliaLight } from 'helia'
import { NodeNotStartedError, ValueNotFoundError } from './errors.ts'
import { bootstrap } from './network/bootstrap.ts'
import {
  InvalidValueRecordError,
  selectValueRecord,
  signValueRecord,
  validateValueRecord,
  verifyValueRecord
} from './network/values.ts'
import { VALUE_NAMESPACE, valueKey } from '../protocols/values/codec.ts'
import { spki } from './spki/service.ts'
import { revocations } from './spki/revocations.ts'
import { CRL_TOPIC } from '../protocols/spki/crl-codec.ts'
import { membership, MEMBERSHIP_TOPIC, MEMBERSHIP_TOPIC_SCORE_PARAMS } from './membership/service.ts'
import { yamuxMuxer } from './network/yamux.ts'
import { cluster } from './threshold/service.ts'
import { agentDhtRecords } from './registry/record.ts'
import { registry } from './registry/service.ts'
import { StateService } from './log/service.ts'
import { mailbox } from './actor/mailbox-service.ts'
import { AgentsService } from './actor/agents.ts'
import { WorkService } from './work/service.ts'
import { Hlc } from './clock/hlc.ts'
import { fleetTopic } from '../protocols/fleet/codec.ts'
import { swarmTopic } from '../protocols/swarm/codec.ts'
import { SWARM_TOPIC_SCORE_PARAMS } from './work/swarm.ts'
import { seedSigner } from './crypto/sign.ts'
import type { Bootstrap, BootstrapInit } from './network/bootstrap.ts'
import type { Spki, SpkiInit } from './spki/service.ts'
import type { Revocations, RevocationsInit } from './spki/revocations.ts'
import type { Membership, MembershipInit } from './membership/service.ts'
import type { Cluster, ClusterInit } from './threshold/service.ts'
import type { Registry, RegistryInit } from './registry/service.ts'
import type { State, StateInit } from './log/service.ts'
import type { Mailbox, MailboxInit } from './actor/mailbox-service.ts'
import type { Agents, AgentsInit } from './actor/agents.ts'
import type { Work, WorkInit } from './work/service.ts'
import type { GossipSub } from '@libp2p/gossipsub'
import type { Identify, IdentifyPush } from '@libp2p/identify'
import type { AbortOptions, ComponentLogger, ConnectionGater, Libp2p, PeerId, PrivateKey } from '@libp2p/interface'
import type { KadDHT, SelectFn, ValidateFn } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Helia } from 'helia'
import type { Blockstore } from 'interface-blockstore'
import type { Datastore } from 'interface-datastore'
import type { Libp2pOptions, ServiceFactoryMap } from 'libp2p'

/** The private Kademlia DHT protocol id: separate from the public IPFS DHT. */
export const KAD_PROTOCOL = '/cyberspace/kad/1.0.0'
/**
 * Gossipsub's fast message id: the publisher's peer id and sequence number, the fields the message
 * id itself is made of under StrictSign (the peer id holds the public key), written so that no two
 * pairs give the same string. A copy whose id was seen is dropped before its signature is checked;
 * only a message whose signature held is remembered, so a forged copy cannot shadow one to come.
 */
export function fastMessageId(msg: { from?: Uint8Array; seqno?: Uint8Array }): string {
  return `${hex(msg.from)}/${hex(msg.seqno)}`
}

function hex(bytes: Uint8Array | undefined): string {
  if (bytes == null) return '-'
  let out = ''
  for (const b of bytes) out += b.toString(16).padStart(2, '0')
  return out
}

/** How often libp2p's connection monitor pings each connection, ms (libp2p's default: 10 s). */
export const CONNECTION_PING_INTERVAL = 300_000
/** Largest gossipsub message payload a node accepts. */
export const MAX_PUBSUB_MESSAGE_BYTES = 1024 * 1024

export interface CyberspaceServices {
  identify: Identify
  identifyPush: IdentifyPush
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
  bootstrap: Bootstrap
  spki: Spki
  revocations: Revocations
  membership: Membership
  cluster: Cluster
  registry: Registry
  mailbox: Mailbox
  [name: string]: unknown
}

export interface CreateNodeOptions {
  /** The node's identity: its libp2p key, which is also its principal. */
  privateKey: PrivateKey
  /** Transports the platform provides (TCP and WebSockets in Node; WebSockets, WebRTC and circuit relay in a browser). */
  transports: NonNullable<Libp2pOptions['transports']>
  blockstore: Blockstore
  datastore: Datastore
  /** Addresses to listen on. */
  listen?: Array<string | Multiaddr>
  /** Addresses to announce instead of the listen addresses. */
  announce?: Array<string | Multiaddr>
  /** Peers to join through; retried with backoff while unreachable. */
  bootstrap?: Multiaddr[]
  bootstrapOptions?: Omit<BootstrapInit, 'list'>
  /** SPKI service settings (chain length, store size, CRL lifetime). */
  spkiOptions?: SpkiInit
  /** CRL spreading settings (gossip topic, catch-up interval, per-peer limits). */
  revocationsOptions?: RevocationsInit
  /** Membership settings (SWIM timings, Lifeguard, per-peer limits, this member's metadata). */
  membershipOptions?: MembershipInit
  /** Cluster key service settings (share store, accepted payload kinds, timeouts). */
  clusterOptions?: ClusterInit
  /** Agent registry settings (record lifetime, lookup limits, per-peer limits). */
  registryOptions?: Omit<RegistryInit, 'seen'>
  /** Replicated state settings (gossip namespace, anti-entropy interval, limits). */
  stateOptions?: StateInit
  /** Agent mailbox settings (message life, retries, per-peer limits). */
  mailboxOptions?: MailboxInit
  /** Agents settings (lease, followers, supervision, limits). */
  agentsOptions?: AgentsInit
  /** Coordination settings (heartbeat interval, swarm limits, scaling policies, event journal size). */
  workOptions?: WorkInit
  /** Answer DHT queries (true where the node is dialable, e.g. a Node process with listeners). */
  dhtServer: boolean
  /**
   * Record validators and selectors for further DHT namespaces (keys `/<namespace>/…`). The node's own
   * namespaces (`cyberspace-value`, `cyberspace-agent`) keep their own: an entry for one of them is ignored.
   */
  dhtRecords?: { validators?: Record<string, ValidateFn>; selectors?: Record<string, SelectFn> }
  /** Extra libp2p services the platform adds (e.g. the circuit relay server in Node). */
  services?: ServiceFactoryMap<Record<string, unknown>>
  connectionGater?: ConnectionGater
  /** Connection limits; maxConnections defaults to 300, the rest to libp2p's defaults. */
  connectionManager?: Libp2pOptions['connectionManager']
  /**
   * How often yamux pings every connection, ms; default 5 minutes. An idle connection says nothing
   * more often than that: behind a proxy or NAT that drops idle connections sooner (nginx's
   * websocket proxy_read_timeout is 60 s), set it below that timeout, e.g. 50_000.
   */
  keepAliveInterval?: number
  logger?: ComponentLogger
}

export interface PeerSummary {
  peerId: string
  addrs: string[]
  direction: 'inbound' | 'outbound'
  limited: boolean
}

export interface CyberspaceNode {
  readonly peerId: PeerId
  /** The libp2p node; available once started. */
  readonly libp2p: Libp2p<CyberspaceServices>
  readonly helia: Helia
  readonly dht: KadDHT
  readonly pubsub: GossipSub
  readonly bootstrap: Bootstrap
  /** Certificates, ACL, CRLs and authorize(): see src/spki/service.ts. */
  readonly spki: Spki
  /** Spreads CRLs to the cluster and catches up on missed ones: see src/spki/revocations.ts. */
  readonly revocations: Revocations
  /** SWIM + Lifeguard membership among the nodes holding (cyberspace member): see src/membership/service.ts. */
  readonly membership: Membership
  /** This node's share of the cluster key, and the threshold protocols: see src/threshold/service.ts. */
  readonly cluster: Cluster
  /** Agent records in the DHT: publish, get by principal or SDSI name, find by skill: see src/registry/service.ts. */
  readonly registry: Registry
  /** Replicated documents (CRDTs over signed Merkle-DAG logs): see src/log/service.ts. Available once started. */
  readonly state: State
  /** Messages between agents, signed and authorized: see src/actor/mailbox-service.ts. */
  readonly mailbox: Mailbox
  /** The agents this node hosts (actors with their own keys, supervised, resumable): see src/actor/agents.ts. Available once started. */
  readonly agents: Agents
  /** Boards of work items, the swarm's messages, fleet heartbeats, scaling and the event journal: see src/work/service.ts. Available once started. */
  readonly work: Work
  start(): Promise<void>
  stop(): Promise<void>
  isStarted(): boolean
  /** Addresses other peers can dial, each ending in `/p2p/<peer-id>`. */
  multiaddrs(): Multiaddr[]
  /** Peers we hold connections to, one entry per peer. */
  peers(): PeerSummary[]
  /** Publishes a value signed by this node under `/cyberspace-value/<peer-id>/<name>` in the DHT. */
  putValue(name: string, value: Uint8Array, options?: AbortOptions): Promise<void>
  /** Reads and verifies the value `peerId` published under `name`. */
  getValue(peerId: string, name: string, options?: AbortOptions): Promise<{ seq: number; value: Uint8Array }>
}

export async function createNode(options: CreateNodeOptions): Promise<CyberspaceNode> {
  const peerId = peerIdFromPrivateKey(options.privateKey)
  // agent records: the DHT validator remembers the highest seq it has seen, and the registry refuses what it superseded
  const agents = agentDhtRecords()
  const base = createHeliaLight({
    blockstore: options.blockstore,
    datastore: options.datastore,
    codecs: [dagCbor],
    logger: options.logger
  })
  const withNet = withLibp2pLight(base, {
    privateKey: options.privateKey,
    datastore: options.datastore,
    logger: options.logger,
    addresses: {
      listen: (options.listen ?? []).map(String),
      announce: (options.announce ?? []).map(String)
    },
    transports: options.transports,
    connectionEncrypters: [noise()],
    // yamux pings every connection at start (its round-trip time sizes stream windows) and then
    // every 30 s by default, never acting on a lost answer; with many connections per node that was
    // an idle node's most frequent wake-up. The connection monitor finds dead connections; a proxy
    // or NAT on the path may need keepAliveInterval below its idle timeout. Window
    // updates go out once half a stream's window is used, not after every frame (./network/yamux.ts).
    streamMuxers: [yamuxMuxer({ keepAliveInterval: options.keepAliveInterval ?? CONNECTION_PING_INTERVAL })],
    connectionGater: options.connectionGater,
    connectionManager: { maxConnections: 300, ...options.connectionManager },
    // libp2p pings every connection every 10 s to find dead ones: a new stream each way per peer,
    // which cost an idle 10-member cluster more than everything else it does (a third of its
    // frames at 30 s). Members' failures are found by the membership's probes (over streams kept
    // between probes); the monitor only has to close a connection that died silently, and
    // 5 minutes does that.
    // A ping that times out aborts the connection: libp2p's 5 s floor did so to live connections on
    // a loaded machine (every stream on them failing with it); a dead one is found within 30 s more.
    connectionMonitor: { pingInterval: CONNECTION_PING_INTERVAL, pingTimeout: { minTimeout: 30_000 } },
    services: {
      identify: identify(),
      identifyPush: identifyPush(),
      // the connection monitor, kad-dht's liveness checks and users all ping over the same
      // protocol; with libp2p's default of one stream per connection they collide and the
      // monitor aborts healthy connections
      ping: ping({ maxInboundStreams: 4, maxOutboundStreams: 4 }),
      dht: kadDHT({
        protocol: KAD_PROTOCOL,
        clientMode: !options.dhtServer,
        // classic Kademlia parallelism: libp2p's default of 10 (with as many disjoint paths) makes
        // every lookup in a small cluster ask each peer up to 10 times
        alpha: 3,
        // a private cluster commonly lives on a LAN or loopback: keep private addresses in answers
        peerInfoMapper: passthroughMapper,
        validators: { ...options.dhtRecords?.validators, ...agents.validators, [VALUE_NAMESPACE]: validateValueRecord },
        selectors: { ...options.dhtRecords?.selectors, ...agents.selectors, [VALUE_NAMESPACE]: selectValueRecord }
      }),
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictSign',
        // every copy of a message (a node gets one from each mesh peer) had its signature checked
        // before gossipsub looked it up among those seen: most of an idle cluster's gossip cost
        fastMsgIdFn: fastMessageId,
        allowPublishToZeroTopicPeers: false,
        maxInboundDataLength: MAX_PUBSUB_MESSAGE_BYTES,
        emitSelf: false,
        // gossipsub penalises more than 10 peers sharing one IP address (Sybil defence on the open
        // network): at 30 agents on one host every peer is graylisted and all gossip is dropped.
        // Cluster members share hosts by design; their admission is a matter for authorization.
        // A message the topic validator rejects (forged, from a non-member) costs the peer that
        // delivered it; the cluster's own topics carry that weight.
        scoreParams: {
          IPColocationFactorWeight: 0,
          topics: {
            [MEMBERSHIP_TOPIC]: MEMBERSHIP_TOPIC_SCORE_PARAMS,
            [CRL_TOPIC]: MEMBERSHIP_TOPIC_SCORE_PARAMS,
            // a rejected heartbeat (malformed, forged) costs the peer that forwarded it
            [fleetTopic(options.workOptions?.fleet?.namespace)]: MEMBERSHIP_TOPIC_SCORE_PARAMS,
            [swarmTopic(options.workOptions?.swarm?.namespace)]: SWARM_TOPIC_SCORE_PARAMS
          }
        }
      }),
      bootstrap: bootstrap({ ...options.bootstrapOptions, list: options.bootstrap ?? [] }),
      spki: spki(options.spkiOptions),
      revocations: revocations(options.revocationsOptions),
      membership: membership(options.membershipOptions),
      cluster: cluster(options.clusterOptions),
      registry: registry({ ...options.registryOptions, seen: agents.seen }),
      mailbox: mailbox(options.mailboxOptions),
      ...options.services
    },
    start: false
  })
  // no bitswap: it would serve every block to any peer that names its CID. Log blocks travel over
  // /cyberspace/heads, which checks the asker's read authority for the block's document.
  return new Node(peerId, withNet as unknown as Helia & { libp2p: Libp2p<CyberspaceServices> }, options)
}

class Node implements CyberspaceNode {
  readonly peerId: PeerId
  readonly helia: Helia & { libp2p: Libp2p<CyberspaceServices> }
  private readonly options: CreateNodeOptions
  private started = false
  private lastValueSeq = 0
  private stateService?: StateService
  private agentsService?: AgentsService
  private workService?: WorkService

  constructor(peerId: PeerId, helia: Helia & { libp2p: Libp2p<CyberspaceServices> }, options: CreateNodeOptions) {
    this.peerId = peerId
    this.helia = helia
    this.options = options
  }

  get libp2p(): Libp2p<CyberspaceServices> {
    if (!this.started) throw new NodeNotStartedError('the node is not started')
    return this.helia.libp2p
  }

  get dht(): KadDHT {
    return this.libp2p.services.dht
  }
  get pubsub(): GossipSub {
    return this.libp2p.services.pubsub
  }
  get bootstrap(): Bootstrap {
    return this.libp2p.services.bootstrap
  }
  get spki(): Spki {
    return this.libp2p.services.spki
  }
  get revocations(): Revocations {
    return this.libp2p.services.revocations
  }
  get membership(): Membership {
    return this.libp2p.services.membership
  }
  get cluster(): Cluster {
    return this.libp2p.services.cluster
  }

  get registry(): Registry {
    return this.libp2p.services.registry
  }

  get state(): State {
    if (!this.started || this.stateService == null) throw new NodeNotStartedError('the node is not started')
    return this.stateService
  }

  get mailbox(): Mailbox {
    return this.libp2p.services.mailbox
  }

  get agents(): Agents {
    if (!this.started || this.agentsService == null) throw new NodeNotStartedError('the node is not started')
    return this.agentsService
  }

  get work(): Work {
    if (!this.started || this.workService == null) throw new NodeNotStartedError('the node is not started')
    return this.workService
  }

  isStarted(): boolean {
    return this.started
  }

  async start(): Promise<void> {
    if (this.started) return
    await this.helia.start()
    this.started = true
    if (this.options.dhtServer) await this.dht.setMode('server')
    // one clock for what this node stamps: board operations, swarm messages, heartbeats, events
    const clock = this.options.stateOptions?.clock ?? new Hlc()
    this.stateService = new StateService(
      {
        libp2p: this.helia.libp2p,
        blockstore: this.options.blockstore,
        datastore: this.options.datastore,
        signer: await seedSigner(this.options.privateKey.raw),
        logger: this.helia.logger
      },
      { ...this.options.stateOptions, clock }
    )
    await this.stateService.start()
    this.agentsService = new AgentsService(
      {
        libp2p: this.helia.libp2p,
        state: this.stateService,
        datastore: this.options.datastore,
        logger: this.helia.logger
      },
      this.options.agentsOptions
    )
    await this.agentsService.start()
    const { services } = this.helia.libp2p
    this.workService = new WorkService(
      {
        peerId: this.peerId,
        signer: await seedSigner(this.options.privateKey.raw),
        state: this.stateService,
        spki: services.spki,
        membership: services.membership,
        pubsub: services.pubsub,
        mailbox: services.mailbox,
        agents: this.agentsService,
        logger: this.helia.logger,
        clock
      },
      this.options.workOptions
    )
    await this.workService.start()
  }

  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    await this.workService?.stop()
    this.workService = undefined
    await this.agentsService?.shutdown()
    this.agentsService = undefined
    await this.stateService?.stop()
    this.stateService = undefined
    await this.helia.stop()
  }

  multiaddrs(): Multiaddr[] {
    return this.libp2p.getMultiaddrs()
  }

  peers(): PeerSummary[] {
    const byPeer = new Map<string, PeerSummary>()
    for (const connection of this.libp2p.getConnections()) {
      if (connection.status !== 'open') continue
      const id = connection.remotePeer.toString()
      const entry = byPeer.get(id) ?? { peerId: id, addrs: [], direction: connection.direction, limited: true }
      entry.addrs.push(connection.remoteAddr.toString())
      entry.limited &&= connection.limits != null
      byPeer.set(id, entry)
    }
    return [...byPeer.values()].sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
  }

  async putValue(name: string, value: Uint8Array, options: AbortOptions = {}): Promise<void> {
    const key = valueKey(this.peerId.toString(), name)
    // strictly increasing even within one millisecond or when the clock steps back
    this.lastValueSeq = Math.max(Date.now(), this.lastValueSeq + 1)
    const record = await signValueRecord(this.options.privateKey, name, value, this.lastValueSeq)
    for await (const _event of this.dht.put(new TextEncoder().encode(key), record, options)) {
      // drain: the put completes when the query has stored the record at the closest peers
    }
  }

  async getValue(
    peerId: string,
    name: string,
    options: AbortOptions = {}
  ): Promise<{ seq: number; value: Uint8Array }> {
    const key = valueKey(peerId, name)
    try {
      peerIdFromString(peerId)
    } catch (err) {
      throw new InvalidValueRecordError(`invalid peer id ${peerId}: ${(err as Error).message}`)
    }
    let bytes: Uint8Array
    try {
      bytes = await this.libp2p.contentRouting.get(new TextEncoder().encode(key), options)
    } catch (err) {
      // libp2p asks every content router and rejects with an AggregateError of their answers
      const errors = err instanceof AggregateError ? err.errors : [err]
      if (errors.every(e => (e as Error)?.name === 'NotFoundError')) {
        throw new ValueNotFoundError(`no value "${name}" from ${peerId} in the DHT`)
      }
      throw err
    }
    const { seq, value } = await verifyValueRecord(key, bytes)
    return { seq, value }
  }
}
