/**
 * The state service (`node.state`): replicated documents over this node's libp2p. Each document is
 * a log (src/log/log.ts) of one CRDT type. New events are announced by CID on the deltas gossip
 * topic (`protocols/deltas/`; inline only for public documents); peers exchange heads over
 * `/cyberspace/heads/2.0.0` (`protocols/heads/`) when they connect and every `syncInterval`, and
 * fetch what they lack by CID from the peer that told them, over the same protocol. Whatever gossip
 * loses, anti-entropy repairs.
 *
 * Authority, checked here on the receiving side every time (decisions are cached only until this
 * node's ACL, CRLs or certificates change, and never past the grant's validity):
 * - writing: an event is applied only if its author holds `(cyberspace (log (append <name>)))` by
 *   this node's ACL (a snapshot needs `(cyberspace (log (snapshot <name>)))`), found in the local
 *   store or proven by a connected peer that sent it over `/cyberspace/spki/1.0.0`;
 * - reading: heads and blocks of a document are served only to peers holding
 *   `(cyberspace (log (read <name>)))`, unless the document is public; a heads exchange covers only
 *   documents each side may read at the other.
 * - agent sessions: the document `sessionDocumentName(P)` is agent P's session. Its events and
 *   snapshots are applied only if P signed them (self-certifying: no certificate; anyone else,
 *   this node included, is refused for good), and it is served to members
 *   (`(cyberspace member)`) or holders of its read tag, never publicly. A node writes it only after
 *   opening it with P's signer; a member that follows it adopts each checkpoint (snapshot) P signs
 *   and drops the history behind it, and exchanges heads with the node that announced P's events
 *   at every periodic round, so it catches up with the agent's host in one round.
 *
 * - the agent directory: the document `AGENT_DIRECTORY` (`cyberspace.agents`, src/actor/agents.ts)
 *   is appended to and read by members (`(cyberspace member)`) as well as by holders of its log
 *   tags; it is never public, so its events are never inline on gossip. Its snapshots still need
 *   the snapshot tag.
 * - document rules (`addRule(prefix, rule)`): for documents whose name starts with the prefix, the
 *   rule decides every append — including this node's own — from the event's author and decoded
 *   deltas, in place of the append tag; members read and replicate them (or holders of the read
 *   tag), they are never public; snapshots still need the snapshot tag. A folder (work boards)
 *   decides per operation this way.
 * - local documents (`open(name, type, { local: true })`, remembered): never announced, never in a
 *   heads exchange either way, never served (no peer may read them) and never joined from a peer.
 *
 * Fairness: what a peer offers waits in bounded queues and joins start within per-document and
 * per-peer budgets (src/log/joins.ts); every join ends within `joinTimeout`.
 *
 * @example
 * const doc = await node.state.open('tasks', 'or-set')
 * await doc.add('write the report')
 * doc.addEventListener('change', e => console.log(e.detail.author, doc.value()))
 */
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { Key } from 'interface-datastore'
import { decodeDeltaMessage, deltasTopic, encodeDeltaMessage, eventAnnouncement } from '../../protocols/deltas/codec.ts'
import { blockCid, checkLogId, decodeEvent, MAX_EVENT_BYTES, MAX_SNAPSHOT_BYTES } from '../../protocols/log/codec.ts'
import {
  decodeHeadsMessage,
  InvalidHeadsMessageError,
  encodeHeadsMessage,
  HEADS_HOLD_PROTOCOL,
  HEADS_PROTOCOL,
  MAX_HOLD_BLOCKS,
  MAX_HEADS_MESSAGE_BYTES,
  MAX_HEADS_PER_LOG,
  MAX_LOGS_PER_MESSAGE,
  MAX_WANTED_BLOCKS
} from '../../protocols/heads/codec.ts'
import { errorAnswer } from '../../protocols/wire.ts'
import { Hlc } from '../clock/hlc.ts'
import { base32 } from 'multiformats/bases/base32'
import { principalFromPeerId, principalId, principalPublicKey } from '../crypto/principal.ts'
import { MEMBER_TAG } from '../membership/service.ts'
import {
  handleRequests,
  requestAnswer,
  serveRequests,
  StreamPool,
  unhandleRequests,
  withTimeout
} from '../network/rpc.ts'
import { RecentMap } from '../recent-map.ts'
import { spkiTimeMs } from '../spki/cert.ts'
import { atom } from '../spki/sexp.ts'
import { parseTag } from '../spki/tag.ts'
import { crdtTypes } from '../crdt/index.ts'
import { compareStrings } from '../crdt/codec.ts'
import { documentClasses } from './documents.ts'
import { readBlock } from './blocks.ts'
import {
  BlockNotFoundError,
  HistoryTooLongError,
  LogClosedError,
  InvalidRuleError,
  LocalDocumentError,
  LogTypeMismatchError,
  MemberDocumentError,
  RequestRefusedError,
  SessionDocumentError,
  TooManyHoldsError,
  UnauthorizedEventError,
  UnauthorizedReadError
} from './errors.ts'
import { Log, storedLogs, storedLogType } from './log.ts'
import { JoinScheduler, MAX_PENDING_HEADS } from './joins.ts'
import { Replicator } from './replication.ts'
import { Prefetched, WantBatcher } from './wants.ts'
import type { JoinLimits, Offer } from './joins.ts'
import type {
  BlocksMessage,
  HeadsAnswer,
  HeadsRequest,
  HeldMessage,
  HoldMessage,
  LogHeads,
  WantMessage
} from '../../protocols/heads/codec.ts'
import type { LogBlockstore } from './blocks.ts'
import type { Document, DocumentTypes } from './documents.ts'
import type { FetchBlock, FetchOptions, JoinOptions, LogLimits } from './log.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Signer } from '../crypto/sign.ts'
import type { CrdtName } from '../crdt/types.ts'
import type { Spki } from '../spki/service.ts'
import type { Tag } from '../spki/tag.ts'
import type { GossipSub, GossipsubMessage, Message } from '@libp2p/gossipsub'
import type { AbortOptions, ComponentLogger, Libp2p, Logger, PeerId } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'
import type { CID } from 'multiformats/cid'

export interface StateInit extends JoinLimits {
  /**
   * The node's hybrid logical clock: its events are stamped with it and remote ones received into
   * it. Default a clock of its own; a node shares one between its services, so what they stamp is
   * in one causal order.
   */
  clock?: Hlc
  /** The heads protocol id; default `/cyberspace/heads/2.0.0`. */
  protocol?: string
  /** The heads protocol id that also serves `hold`; default `/cyberspace/heads/2.1.0`. */
  holdProtocol?: string
  /** `hold` requests one peer may have this node working on at once, across documents; default 4. */
  maxHoldsPerPeer?: number
  /** Gossip topic namespace: `/cyberspace/<namespace>/deltas/1`; default 'default'. */
  namespace?: string
  /** How often to exchange heads with a few peers, in ms; default 10 s. */
  syncInterval?: number
  /** Peers asked per periodic round; default 3. */
  syncFanout?: number
  /** How long one heads exchange (or one proof request) may take, in ms; default 10 s. */
  timeout?: number
  maxInboundStreams?: number
  /** Longest a join (fetching, checking, applying) may take, in ms; default 30 s. */
  joinTimeout?: number
  limits?: LogLimits
  /** Longest a positive authorization is reused while nothing changes in the ACL, CRLs or certificates, in ms; default 60 s. */
  authorizationTtl?: number
  /** Fault injection for tests: return false to drop an inbound gossip message. */
  acceptGossip?: (from: PeerId) => boolean
}

export interface StateComponents {
  libp2p: Libp2p<{ pubsub: GossipSub; spki: Spki }>
  /** The node's blockstore (local blocks only: missing blocks are fetched over the heads protocol). */
  blockstore: LogBlockstore
  datastore: Datastore
  signer: Signer
  logger: ComponentLogger
}

export interface OpenOptions extends AbortOptions {
  /**
   * True: serve the document to any peer and announce its events inline; false: only to peers
   * holding `(cyberspace (log (read <name>)))`. Remembered; left as it was when not given.
   */
  public?: boolean
  /**
   * Signs this node's appends and snapshots of the document from now on; `null` goes back to the
   * node's key (the default). Not remembered across restarts. A session document takes only its
   * agent's signer (UnauthorizedEventError otherwise).
   */
  signer?: Signer | null
  /**
   * True: this node's only — never announced, offered, served or joined from a peer (a LOCAL
   * board); false: replicated as usual. Remembered; left as it was when not given. A local
   * document cannot be public (LocalDocumentError), nor a session document or the agent directory
   * be local.
   */
  local?: boolean
}

/**
 * How the documents under a name prefix are written and read (`State.addRule`): the rule decides
 * each append in place of the `(cyberspace (log (append <name>)))` check.
 */
export interface DocumentRule {
  /**
   * Resolves if `author` may append an event of document `name` writing `deltas` (decoded: for an
   * op-log, `opLogEntries(deltas)` are its entries; empty for a merge event that only folds heads);
   * throws UnauthorizedEventError if not — `{ permanent: true }` when no grant can ever change
   * that (a malformed entry): the event is then refused for good, with every event after it. Asked
   * for this node's own appends too (before signing, with nothing applied yet for an op-log) and
   * for every received event (after its signature is checked, before it is applied); `options`
   * carries the peers it came from, to ask for a proof.
   */
  authorizeAppend(name: string, author: PrincipalId, deltas: unknown[], options: FetchOptions): Promise<void>
  /** Who reads and replicates such documents besides holders of their read tag: members. Never public. */
  readers: 'members'
}

export interface ReplicateOptions extends AbortOptions {
  /** How many of `peers` must confirm (0: resolve at once, ask nobody). */
  replicas: number
  /** The peers to ask, other than this node: those that follow the document. */
  peers: PeerId[]
  /** Longest wait, in ms; default 5 s. */
  timeout?: number
}

export interface HoldOptions extends AbortOptions {
  /** The heads the peer is asked to hold; default this node's heads of the document now. */
  heads?: CID[]
}

export interface State {
  /** Opens (or returns the already open) document `name` of a CRDT type. */
  open<T extends CrdtName>(name: string, type: T, options?: OpenOptions): Promise<DocumentTypes[T]>
  /** Names of the open documents. */
  names(): string[]
  /** The open document `name`, or the stored one opened with its type; undefined if this node has none. */
  find(name: string, options?: AbortOptions): Promise<DocumentTypes[CrdtName] | undefined>
  /** The documents this node stores (open or not), with their types: at most `MAX_STORED_DOCUMENTS`. */
  stored(options?: AbortOptions): Promise<Array<{ name: string; type: CrdtName }>>
  /** Whether document `name` is served to any peer (see `OpenOptions.public`). */
  isPublic(name: string): boolean
  /** Whether document `name` is open here as a local document (see `OpenOptions.local`). */
  isLocal(name: string): boolean
  /**
   * Makes `rule` decide appends to, and readers of, every document whose name starts with `prefix`
   * (the longest matching prefix wins), from now on, open documents included. Throws
   * InvalidRuleError for a prefix that already has a rule, is not the start of a document name, or
   * would cover session documents or the agent directory.
   */
  addRule(prefix: string, rule: DocumentRule): void
  /** Removes the rule of `prefix`; false if there was none. */
  removeRule(prefix: string): boolean
  /** Stops replicating document `name` and deletes its blocks and record; false if this node has none. */
  delete(name: string, options?: AbortOptions): Promise<boolean>
  /** One round of anti-entropy: exchange heads with `peer`, or with a few connected peers. */
  sync(peer?: PeerId, options?: AbortOptions): Promise<void>
  /**
   * Resolves once `replicas` of `peers` hold document `name` as it is here now — every event this
   * node holds of it, or a later state covering them — with the peers that confirmed first. Each
   * peer is asked over `/cyberspace/heads/2.1.0` (`hold`) to join this node's heads at once and
   * answer when it holds them on disk; concurrent calls for one document share those requests.
   * Throws NotEnoughReplicasError at once if fewer than `replicas` peers are named, and
   * ReplicationTimeoutError (how many confirmed, and why the others did not) at the deadline.
   */
  replicate(name: string, options: ReplicateOptions): Promise<PeerId[]>
  /** Asks `peers` to hold document `name` as it is now (a checkpoint reaches them at once), without waiting. */
  push(name: string, peers: PeerId[]): void
  /** One `hold` exchange: asks `peer` to hold `heads` of document `name`; resolves to those it holds. */
  hold(name: string, peer: PeerId, options?: HoldOptions): Promise<CID[]>
}

/** Most documents listed by `stored()` and reopened when the node starts. */
export const MAX_STORED_DOCUMENTS = 1024
/** Most bytes of blocks received ahead of being asked that are kept. */
const MAX_PREFETCHED_BYTES = 16 * 1024 * 1024
/** Most cached authorization decisions. */
const MAX_AUTHORIZATIONS = 4096
/** Most peers whose principal is kept decoded. */
const MAX_PRINCIPALS = 1024
/** Most peers that announced followed sessions a periodic round adds to its random peers. */
const MAX_SESSION_SOURCES = 16
/** Inbound `hold` streams per connection: each stays open while this node joins. */
const MAX_HOLD_STREAMS = 8
/** (document, peer) pairs whose last confirmed heads are remembered, so a `hold` sends only newer blocks. */
const MAX_CONFIRMED = 4096
/** Most followers of one document this node pushes its new events to (the others hear of them by gossip). */
const MAX_FOLLOWERS = 8
/** This node's latest own event blocks kept in memory, so a push or a `want` does not read them back from the store. */
const MAX_RECENT_BLOCKS = 256
/** Largest block kept among them (so they hold at most 4 MiB). */
const MAX_RECENT_BLOCK_BYTES = 16 * 1024
/** How long after a peer's last push of a document its gossip announcements of it wait, in ms, before they are joined. */
const PUSH_GRACE = 1000
/** Shortest time between two gossip announcements of one document, in ms (see `announce`). */
const ANNOUNCE_INTERVAL = 5
/**
 * The same while the document has followers, which are pushed every event: its announcements are
 * for the peers that are not (those reached through others), and each costs a gossipsub signature
 * made here and checked at every subscriber — more than the rest of a replicated write.
 */
const FOLLOWED_ANNOUNCE_INTERVAL = 100
/** How long a follower that refused a push is not pushed to again, in ms. */
const PUSH_REFUSAL_TTL = 60_000

/**
 * The replicated directory of agents (agent principal → kind, id, key source, host; written by the
 * hosts, src/actor/agents.ts): members append to it and read it without a log tag; never public.
 */
export const AGENT_DIRECTORY = 'cyberspace.agents'

/** Whether members (`(cyberspace member)`) may append to and read document `name` without its log tags. */
export function isMemberDocument(name: string): boolean {
  return name === AGENT_DIRECTORY
}

/** Names of agent session documents start with this; no other document's name does. */
export const SESSION_PREFIX = 'session.'
/** The multicodec varint of an Ed25519 public key: a multikey's first two bytes. */
const ED25519_MULTIKEY = [0xed, 0x01]

/**
 * The name of agent `principal`'s session document: `session.` and the agent's multikey in base32
 * multibase (`session.b5ua…`, 64 characters), since a document name is lower case.
 */
export function sessionDocumentName(principal: PrincipalId): string {
  const key = principalPublicKey(principal)
  const bytes = new Uint8Array(ED25519_MULTIKEY.length + key.length)
  bytes.set(ED25519_MULTIKEY)
  bytes.set(key, ED25519_MULTIKEY.length)
  return SESSION_PREFIX + base32.encode(bytes)
}

/**
 * The agent whose session document `name` is; undefined for a name without the session prefix;
 * null for one with the prefix that names no agent exactly (no one may write or read it).
 */
export function sessionOwner(name: string): PrincipalId | null | undefined {
  if (!name.startsWith(SESSION_PREFIX)) return undefined
  const known = owners.get(name)
  if (known !== undefined) return known
  const owner = parseSessionName(name)
  owners.set(name, owner)
  return owner
}

/** Session names already parsed (every append and read check asks): parsing one costs tens of µs. */
const owners = new RecentMap<string, PrincipalId | null>(1024)

function parseSessionName(name: string): PrincipalId | null {
  try {
    const bytes = base32.decode(name.slice(SESSION_PREFIX.length))
    if (bytes.length !== 34 || bytes[0] !== ED25519_MULTIKEY[0] || bytes[1] !== ED25519_MULTIKEY[1]) return null
    const owner = principalId(bytes.slice(ED25519_MULTIKEY.length))
    // one name per agent: a non-canonical spelling of the same key names nobody
    return sessionDocumentName(owner) === name ? owner : null
  } catch {
    return null
  }
}

type Action = 'append' | 'snapshot' | 'read'

/** Announcements of one document from one peer that pushes it, waiting PUSH_GRACE (see `deferOffer`). */
interface DeferredOffer {
  cids: RecentMap<string, CID>
  blocks: RecentMap<string, Uint8Array>
  relays: Map<string, PeerId>
  verified: boolean
  timer: ReturnType<typeof setTimeout>
}

/** Most inline blocks and relays kept per deferred announcement batch. */
const MAX_PENDING_BLOCKS = 16
const MAX_DEFERRED_RELAYS = 4

interface OpenDocument {
  name: string
  doc: Document<any, any, any>
  log: Log<any, any, any>
  public: boolean
  /** Never announced, offered, served or joined (see `OpenOptions.local`). */
  local: boolean
  /** The agent, for a session document. */
  owner?: PrincipalId
  /** For a session document: the peer that last announced its agent's events (its host). */
  source?: PeerId
  /** Waits for peers to hold the document (`replicate`); made on first use. */
  replicator?: Replicator
  /**
   * Peers that hold the document and may read it here (found in heads exchanges), to which each
   * new event of this node's is pushed with `hold` at once, the event inline: one stream instead
   * of an announcement, then a `want`. At most one push per follower is in flight; the next one
   * carries every event written meanwhile.
   */
  followers: RecentMap<string, PeerId>
  /** The pacing of a private document's announcements (see `announce`). */
  announcing: { at: number; latest?: { cid: CID; bytes: Uint8Array }; timer?: ReturnType<typeof setTimeout> }
}

export class StateService implements State {
  private readonly components: StateComponents
  private readonly init: StateInit
  private readonly log: Logger
  private readonly protocol: string
  private readonly topic: string
  private readonly timeout: number
  private readonly clock: Hlc
  /** Block requests to one peer for one log in the same turn go out as one `want`. */
  private readonly wants: WantBatcher
  /** Ancestors a peer sent ahead of being asked, by `<log> <cid>` (their hashes were checked). */
  private readonly prefetched = new Prefetched(MAX_PREFETCHED_BYTES)
  private readonly docs = new Map<string, OpenDocument>()
  private readonly opening = new Map<string, Promise<OpenDocument>>()
  private readonly deleting = new Map<string, Promise<boolean>>()
  /** What peers offered, waiting for a join slot within the per-document and per-peer budgets. */
  private readonly joins: JoinScheduler
  /** Positive authorizations: valid while the SPKI epoch is the same and until their expiry. */
  private readonly authorized = new RecentMap<string, { epoch: number; until: number }>(MAX_AUTHORIZATIONS)
  private timer?: ReturnType<typeof setInterval>
  private readonly self: PrincipalId
  private started = false
  private shutdown = new AbortController()
  /** Session documents whose offered checkpoint is being taken. */
  private readonly checkpointing = new Set<string>()
  /** Set while stored documents are reopened at start: they sync together afterwards. */
  private reopening = false
  private readonly holdProtocol: string
  /** `hold` requests being worked on, by asking peer. */
  private readonly holding = new Map<string, number>()
  /** By `<document> <peer>`: the heads that peer last confirmed it holds. */
  private readonly confirmedAt = new RecentMap<string, Set<string>>(MAX_CONFIRMED)
  /** Document rules by name prefix. */
  private readonly rules = new Map<string, DocumentRule>()
  /** This node's latest event blocks and their parents, by CID string (see MAX_RECENT_BLOCKS). */
  private readonly recentBlocks = new RecentMap<string, { bytes: Uint8Array; parents: CID[] }>(MAX_RECENT_BLOCKS)
  /** By `<document> <peer>`: when that peer last pushed the document here (`hold`). */
  private readonly pushedBy = new RecentMap<string, number>(MAX_CONFIRMED)
  /** By `<document> <peer>`: until when that follower, having refused a push, is not pushed to. */
  private readonly pushRefused = new RecentMap<string, number>(MAX_CONFIRMED)
  /** Gossip announcements from a peer that pushes the document, waiting PUSH_GRACE before they are joined. */
  private readonly deferred = new Map<string, DeferredOffer>()
  /** Principals of peers, by peer id string (see `principalOf`). */
  private readonly principals = new RecentMap<string, PrincipalId>(MAX_PRINCIPALS)
  /**
   * Streams kept open between requests to a peer (`heads`/`want` and `hold` each their own): a
   * new stream costs more CPU on both sides than a push of a few events, and a follower is pushed
   * after every write.
   */
  private streams = new StreamPool()

  constructor(components: StateComponents, init: StateInit = {}) {
    this.components = components
    this.init = init
    this.log = components.logger.forComponent('cyberspace:state')
    this.protocol = init.protocol ?? HEADS_PROTOCOL
    this.holdProtocol = init.holdProtocol ?? HEADS_HOLD_PROTOCOL
    this.topic = deltasTopic(init.namespace ?? 'default')
    this.timeout = init.timeout ?? 10_000
    this.clock = init.clock ?? new Hlc()
    this.self = components.signer.principal
    this.joins = new JoinScheduler(init, {
      has: (doc, cid) => this.docs.get(doc)?.log.has(cid) ?? true,
      run: async (doc, offer) => {
        const open = this.docs.get(doc)
        if (open != null && this.started) await this.runJoin(open, offer)
      }
    })
    this.wants = new WantBatcher(
      async (peer, log, cids, depth, signal) => {
        const want: WantMessage = { v: 1, type: 'want', log, cids, depth }
        return (await this.request(peer, want, 'blocks', { signal })).blocks
      },
      this.timeout,
      (log, blocks) => {
        // an answer's ancestors run on past what this node holds (the answerer cannot know where
        // to stop): those it holds are not kept
        const held = this.docs.get(log)?.log
        for (const [cid, block] of blocks)
          if (held == null || !held.has(cid)) this.prefetched.put(`${log} ${cid}`, block)
      }
    )
  }

  async start(): Promise<void> {
    const { libp2p } = this.components
    this.shutdown = new AbortController()
    this.streams = new StreamPool()
    const serve = (hold: boolean): ReturnType<typeof serveRequests> =>
      serveRequests(
        async (bytes, connection, signal) => await this.answer(bytes, connection.remotePeer, signal, hold),
        {
          maxBytes: MAX_HEADS_MESSAGE_BYTES,
          timeout: this.timeout,
          log: this.log,
          refuse: err => encodeHeadsMessage(errorAnswer(err))
        }
      )
    // each id and its `/many` id (several requests a stream, rpc.ts) have these budgets per
    // connection; a requester's pool keeps at most 2 streams of each idle between requests
    await handleRequests(libp2p, this.protocol, serve(false), {
      // per connection: a join fetches up to 8 blocks at once, and several documents may join
      maxInboundStreams: this.init.maxInboundStreams ?? 32,
      maxOutboundStreams: 64
    })
    // its own stream budget: a hold keeps its stream open while this node joins
    await handleRequests(libp2p, this.holdProtocol, serve(true), {
      maxInboundStreams: MAX_HOLD_STREAMS,
      maxOutboundStreams: 64
    })
    // a malformed announcement is neither delivered nor forwarded, and counts against its sender
    libp2p.services.pubsub.topicValidators.set(this.topic, validateAnnouncement)
    libp2p.services.pubsub.subscribe(this.topic)
    libp2p.services.pubsub.addEventListener('gossipsub:message', this.onMessage)
    libp2p.addEventListener('peer:connect', this.onConnect)
    this.timer = setInterval(() => {
      this.sync().catch(err => this.log('periodic sync failed - %e', err))
    }, this.init.syncInterval ?? 10_000)
    this.started = true
    // keep replicating what this node stored before it stopped
    this.reopenStored().catch(err => this.log.error('could not reopen stored documents - %e', err))
  }

  async stop(): Promise<void> {
    this.started = false
    this.shutdown.abort(new LogClosedError('the state service stopped'))
    clearInterval(this.timer)
    const { libp2p } = this.components
    libp2p.removeEventListener('peer:connect', this.onConnect)
    libp2p.services.pubsub.removeEventListener('gossipsub:message', this.onMessage)
    libp2p.services.pubsub.unsubscribe(this.topic)
    libp2p.services.pubsub.topicValidators.delete(this.topic)
    await unhandleRequests(libp2p, this.protocol)
    await unhandleRequests(libp2p, this.holdProtocol)
    this.streams.close()
    for (const { log, replicator, announcing } of this.docs.values()) {
      replicator?.close()
      clearTimeout(announcing.timer)
      log.close()
    }
    for (const name of this.docs.keys()) this.joins.remove(name)
    this.docs.clear()
    for (const d of this.deferred.values()) clearTimeout(d.timer)
    this.deferred.clear()
  }

  names(): string[] {
    return [...this.docs.keys()]
  }

  async open<T extends CrdtName>(name: string, type: T, options: OpenOptions = {}): Promise<DocumentTypes[T]> {
    const owner = sessionOwner(name)
    if (owner === null) throw new SessionDocumentError(`${name} has the session prefix but names no agent`)
    if (owner != null && options.public === true) {
      throw new SessionDocumentError(`session document ${name} is read by members only: it cannot be public`)
    }
    if ((isMemberDocument(name) || this.ruleOf(name) != null) && options.public === true) {
      throw new MemberDocumentError(`document ${name} is read by members only: it cannot be public`)
    }
    if (options.local === true && (owner != null || isMemberDocument(name))) {
      throw new LocalDocumentError(`document ${name} is shared by members: it cannot be local`)
    }
    if (options.public === true && options.local === true) {
      throw new LocalDocumentError(`document ${name} cannot be both local and public`)
    }
    if (owner != null && options.signer != null && options.signer.principal !== owner) {
      throw new UnauthorizedEventError(
        `only ${owner} signs session document ${name}, not ${options.signer.principal}`,
        {
          permanent: true
        }
      )
    }
    const open = this.docs.get(name) ?? (await this.opened(name, type, options))
    if (open.doc.type !== type) {
      throw new LogTypeMismatchError(`document ${name} is open as a ${open.doc.type}, not a ${type}`)
    }
    if (options.signer !== undefined) open.log.useSigner(options.signer ?? this.components.signer)
    if (options.public === true && options.local == null && open.local) {
      throw new LocalDocumentError(`document ${name} is local: it cannot be public`)
    }
    if (options.local != null && options.local !== open.local) {
      const key = localKey(name)
      if (options.local) await this.components.datastore.put(key, Uint8Array.of(1), options)
      else await this.components.datastore.delete(key, options)
      open.local = options.local
      // a local document is served to no one: it stops being public
      if (open.local && open.public) {
        await this.components.datastore.delete(publicKey(name), options)
        open.public = false
      }
      if (!open.local) this.sync().catch(err => this.log('sync of %s, no longer local, failed - %e', name, err))
    }
    if (options.public != null && options.public !== open.public) {
      const key = publicKey(name)
      if (options.public) await this.components.datastore.put(key, Uint8Array.of(1), options)
      else await this.components.datastore.delete(key, options)
      open.public = options.public
    }
    return open.doc as DocumentTypes[T]
  }

  async find(name: string, options: AbortOptions = {}): Promise<DocumentTypes[CrdtName] | undefined> {
    await this.deleting.get(name)?.catch(() => {})
    const open = this.docs.get(name)
    if (open != null) return open.doc as DocumentTypes[CrdtName]
    const type = await this.storedType(name, options)
    return type == null ? undefined : await this.open(name, type, options)
  }

  async stored(options: AbortOptions = {}): Promise<Array<{ name: string; type: CrdtName }>> {
    const out: Array<{ name: string; type: CrdtName }> = []
    for (const { id, type } of await storedLogs(this.components.datastore, MAX_STORED_DOCUMENTS, options)) {
      if (isCrdtName(type)) out.push({ name: id, type })
    }
    return out.sort((a, b) => compareStrings(a.name, b.name))
  }

  isPublic(name: string): boolean {
    const open = this.docs.get(name)
    return open != null && this.served(open)
  }

  isLocal(name: string): boolean {
    return this.docs.get(name)?.local ?? false
  }

  addRule(prefix: string, rule: DocumentRule): void {
    if (typeof prefix !== 'string' || !RULE_PREFIX_PATTERN.test(prefix)) {
      throw new InvalidRuleError(`a rule's prefix is 1-64 characters of a-z 0-9 . _ - starting with a letter or digit`)
    }
    if (this.rules.has(prefix)) throw new InvalidRuleError(`prefix ${prefix} has a rule already`)
    if (SESSION_PREFIX.startsWith(prefix) || prefix.startsWith(SESSION_PREFIX) || AGENT_DIRECTORY.startsWith(prefix)) {
      throw new InvalidRuleError(`prefix ${prefix} would cover session documents or the agent directory`)
    }
    if (typeof rule?.authorizeAppend !== 'function' || rule.readers !== 'members') {
      throw new InvalidRuleError(`a rule has authorizeAppend and readers 'members'`)
    }
    this.rules.set(prefix, rule)
  }

  removeRule(prefix: string): boolean {
    return this.rules.delete(prefix)
  }

  /** The rule of the longest prefix of `name` that has one. */
  private ruleOf(name: string): DocumentRule | undefined {
    let best: string | undefined
    for (const prefix of this.rules.keys()) {
      if (name.startsWith(prefix) && (best == null || prefix.length > best.length)) best = prefix
    }
    return best == null ? undefined : this.rules.get(best)
  }

  /** Whether members read document `name` (and it is never public): the agent directory, sessions, rule documents. */
  private membersRead(name: string): boolean {
    return isMemberDocument(name) || sessionOwner(name) != null || this.ruleOf(name) != null
  }

  /** Whether an open document is served to any peer: public, and neither local nor read by members only. */
  private served(open: OpenDocument): boolean {
    return open.public && !open.local && !this.membersRead(open.name)
  }

  async delete(name: string, options: AbortOptions = {}): Promise<boolean> {
    checkLogId(name)
    const running = this.deleting.get(name)
    if (running != null) return await running
    const deletion = this.deleteDocument(name, options)
    this.deleting.set(name, deletion)
    try {
      return await deletion
    } finally {
      this.deleting.delete(name)
    }
  }

  /** One deletion of `name`; opens and finds of it wait until it is done. */
  private async deleteDocument(name: string, options: AbortOptions): Promise<boolean> {
    // no await before the document leaves `docs` unless it is still opening: an open() meanwhile
    // must not be handed the document being deleted
    const opening = this.opening.get(name)
    if (opening != null) await opening.catch(() => {})
    let log = this.docs.get(name)?.log
    if (log != null) {
      this.docs.get(name)?.replicator?.close()
      clearTimeout(this.docs.get(name)?.announcing.timer)
      this.docs.delete(name)
      this.joins.remove(name)
    } else {
      const type = await this.storedType(name, options)
      if (type == null) return false
      log = await Log.open(this.logInit(name, type))
    }
    await log.destroy(options)
    await this.components.datastore.delete(publicKey(name), options)
    await this.components.datastore.delete(localKey(name), options)
    this.log('deleted document %s', name)
    return true
  }

  async sync(peer?: PeerId, options: AbortOptions = {}): Promise<void> {
    if (this.docs.size === 0) return
    const peers = peer != null ? [peer] : this.pickPeers()
    await Promise.all(
      peers.map(async p => {
        try {
          await this.syncWith(p, options)
        } catch (err) {
          options.signal?.throwIfAborted()
          if (peer != null) throw err
          this.log('heads exchange with %p failed - %e', p, err)
        }
      })
    )
  }

  async replicate(name: string, options: ReplicateOptions): Promise<PeerId[]> {
    return await this.replicatorOf(name).confirm({ ...options, timeout: options.timeout ?? 5000 })
  }

  push(name: string, peers: PeerId[]): void {
    this.replicatorOf(name).nudge(peers)
  }

  async hold(name: string, peer: PeerId, options: HoldOptions = {}): Promise<CID[]> {
    const open = this.docs.get(name)
    if (open == null) throw new LogClosedError(`document ${name} is not open here`)
    if (open.local) throw new LocalDocumentError(`document ${name} is local: no peer holds it`)
    if (peer.equals(this.components.libp2p.peerId))
      throw new RequestRefusedError('Self', 'this node does not ask itself to hold a document')
    const heads = (options.heads ?? open.log.heads()).slice(0, MAX_HEADS_PER_LOG)
    if (heads.length === 0) return []
    const snapshots = open.log.snapshots()
    const request: HoldMessage = {
      v: 1,
      type: 'hold',
      log: name,
      heads,
      snapshot: snapshots.length > 0 ? snapshots[snapshots.length - 1] : null,
      blocks: await this.inlineBlocks(open, peer, heads)
    }
    const answer = await this.request(peer, request, 'held', options, this.holdProtocol)
    const asked = new Set(heads.map(String))
    const held = answer.heads.filter(h => asked.has(h.toString()))
    if (held.length === heads.length) this.confirmedAt.set(`${name} ${peer}`, asked)
    return held
  }

  private replicatorOf(name: string): Replicator {
    const open = this.docs.get(name)
    if (open == null) throw new LogClosedError(`document ${name} is not open here`)
    if (open.local) throw new LocalDocumentError(`document ${name} is local: no peer holds it`)
    open.replicator ??= new Replicator({
      heads: () => open.log.heads(),
      push: async (peer, heads, signal) => {
        // checked when the push goes, not when it was asked for: a push that waited behind the one
        // in flight carries what was written meanwhile, perhaps after a grant was removed (the
        // decision is cached until the ACL, CRLs or certificates change). A peer that may not read
        // the document stops being its follower; a heads exchange makes it one again once it may.
        if (!(await this.mayRead(peer, name, signal))) {
          open.followers.delete(peer.toString())
          throw new UnauthorizedReadError(`${peer} may not read document ${name} here: not pushed to`)
        }
        try {
          return await this.hold(name, peer, { heads, signal })
        } catch (err) {
          // a follower that will not take pushes (it does not let this node read the document, does
          // not serve `hold`, or did not answer) is left to gossip for a while; one that is busy is
          // asked again next time
          const busy = err instanceof RequestRefusedError && err.reason === 'TooManyHoldsError'
          if (!busy && !signal.aborted) {
            const key = `${name} ${peer}`
            open.followers.delete(peer.toString())
            this.pushRefused.set(key, Date.now() + PUSH_REFUSAL_TTL)
          }
          throw err
        }
      }
    })
    return open.replicator
  }

  /**
   * The event blocks a `hold` to `peer` carries: its heads, and — if the peer confirmed earlier
   * heads — their ancestors back to those, newest first, within MAX_HOLD_BLOCKS and the message
   * size. The peer fetches whatever else it lacks.
   */
  private async inlineBlocks(open: OpenDocument, peer: PeerId, heads: CID[]): Promise<Uint8Array[]> {
    const confirmed = this.confirmedAt.get(`${open.name} ${peer}`)
    const blocks: Uint8Array[] = []
    let budget = MAX_HEADS_MESSAGE_BYTES - 64 * 1024
    const queue = [...heads]
    const seen = new Set<string>()
    for (let i = 0; i < queue.length && blocks.length < MAX_HOLD_BLOCKS; i++) {
      const key = queue[i].toString()
      if (seen.has(key) || confirmed?.has(key) === true) continue
      seen.add(key)
      // the copy in memory only while the block is stored (a compacted one is not sent)
      const recent = open.log.holdsBlock(key) ? this.recentBlocks.get(key) : undefined
      let block: Uint8Array
      try {
        block =
          recent?.bytes ??
          (await readBlock(this.components.blockstore, queue[i], {
            maxBytes: Math.min(MAX_EVENT_BYTES, budget),
            offline: true
          }))
      } catch {
        continue // compacted away, or larger than what is left
      }
      if (block.length > Math.min(MAX_EVENT_BYTES, budget)) continue
      budget -= block.length + 16
      blocks.push(block)
      // a peer that confirmed nothing yet gets the heads alone: it may hold their past already
      if (confirmed == null) continue
      try {
        queue.push(...(recent?.parents ?? decodeEvent(block).parents))
      } catch {
        // not an event: nothing behind it
      }
    }
    return blocks
  }

  // --- opening documents ---

  private async storedType(name: string, options: AbortOptions): Promise<CrdtName | undefined> {
    const type = await storedLogType(this.components.datastore, name, options)
    if (type == null) return undefined
    if (!isCrdtName(type)) throw new LogTypeMismatchError(`document ${name} holds an unknown type ${type}`)
    return type
  }

  private async reopenStored(): Promise<void> {
    const stored = await this.stored()
    if (stored.length === MAX_STORED_DOCUMENTS)
      this.log.error('reopening only the first %d stored documents', MAX_STORED_DOCUMENTS)
    this.reopening = true
    try {
      for (const { name, type } of stored) {
        if (!this.started) return
        try {
          await this.open(name, type)
        } catch (err) {
          this.log.error('could not reopen document %s - %e', name, err)
        }
      }
    } finally {
      this.reopening = false
    }
    // one round of anti-entropy for all of them, rather than one per document
    if (this.started) await this.sync()
  }

  private async opened(name: string, type: CrdtName, options: OpenOptions): Promise<OpenDocument> {
    let pending = this.opening.get(name)
    if (pending == null) {
      pending = this.createDocument(name, type, options)
      this.opening.set(name, pending)
      pending.finally(() => this.opening.delete(name)).catch(() => {})
    }
    return await pending
  }

  private logInit(name: string, type: CrdtName): Parameters<typeof Log.open>[0] {
    return {
      id: name,
      type: crdtTypes[type] as any,
      blockstore: this.components.blockstore,
      fetch: async (cid, opts) => await this.fetchBlock(name, cid, opts),
      datastore: this.components.datastore,
      signer: this.components.signer,
      clock: this.clock,
      authorize: async (author, action, opts) => {
        await this.authorize(name, author, action, opts)
      },
      limits: this.init.limits,
      logger: this.components.logger
    }
  }

  private async createDocument(name: string, type: CrdtName, options: OpenOptions): Promise<OpenDocument> {
    // opened while being deleted: it starts anew once the deletion is done
    await this.deleting.get(name)?.catch(() => {})
    options.signal?.throwIfAborted()
    const log = await Log.open(this.logInit(name, type))
    const owner = sessionOwner(name) ?? undefined
    // a session document or the agent directory is never public, whatever a datastore says
    const isLocal = options.local ?? (await this.components.datastore.has(localKey(name)))
    const isPublic =
      owner == null &&
      !isMemberDocument(name) &&
      !isLocal &&
      (options.public ?? (await this.components.datastore.has(publicKey(name))))
    // remembered as asked for: a flag asked off is deleted, or the next start would bring it back
    const { datastore } = this.components
    if (options.public === true && !isLocal) await datastore.put(publicKey(name), Uint8Array.of(1))
    else if (options.public === false || isLocal) await datastore.delete(publicKey(name))
    if (options.local === true) await datastore.put(localKey(name), Uint8Array.of(1))
    else if (options.local === false) await datastore.delete(localKey(name))
    if (!this.started) {
      // stopped while the log was replaying: do not leave it open behind the service's back
      log.close()
      throw new LogClosedError(`the state service stopped while opening ${name}`)
    }
    const doc = new documentClasses[type](log)
    const open: OpenDocument = {
      name,
      doc,
      log,
      public: isPublic,
      local: isLocal,
      owner,
      followers: new RecentMap(MAX_FOLLOWERS),
      announcing: { at: 0 }
    }
    log.addEventListener('change', e => {
      const { local, bytes, cid, parents } = e.detail
      if (!local || bytes == null) return
      if (bytes.length <= MAX_RECENT_BLOCK_BYTES)
        this.recentBlocks.set(cid.toString(), { bytes, parents: parents ?? [] })
      this.announce(open, cid, bytes)
      // pushed even when announced inline: a follower that missed the gossip still gets it now
      this.pushToFollowers(open)
    })
    this.docs.set(name, open)
    this.joins.add(name)
    // catch up with whoever is connected now rather than at the next periodic round
    if (!this.reopening && !isLocal) this.sync().catch(err => this.log('initial sync of %s failed - %e', name, err))
    return open
  }

  // --- authority ---

  /**
   * Resolves if `principal` may do `action` on document `name` by this node's ACL; asks only
   * connected `providers` for a proof (through the SPKI service, which remembers refusals). A
   * session document is written by its agent alone: no chain, nor this node's own key, counts.
   */
  private async authorize(
    name: string,
    principal: PrincipalId,
    action: Action,
    options: FetchOptions & { deltas?: unknown[] } = {}
  ): Promise<void> {
    const owner = sessionOwner(name)
    if (owner !== undefined && action !== 'read') {
      if (principal === owner) return
      throw new UnauthorizedEventError(
        `${principal} may not ${action} to session document ${name}: only ${owner ?? 'its agent'} signs it`,
        { permanent: true }
      )
    }
    // a rule decides appends by what they write, this node's own included; it needs the deltas
    // (an append asks once before building its event, without them: the second ask decides)
    const rule = action === 'append' ? this.ruleOf(name) : undefined
    if (rule != null) {
      if (options.deltas === undefined) return
      await rule.authorizeAppend(name, principal, options.deltas, {
        signal: options.signal,
        providers: options.providers
      })
      return
    }
    if (principal === this.self) return
    let member = ''
    if (action === 'append' && isMemberDocument(name)) {
      try {
        await this.authorizeMember(principal, options)
        return
      } catch (err) {
        options.signal?.throwIfAborted()
        member = ` (nor is it a member: ${(err as Error).message})`
      }
    }
    const tag = (): Tag => parseTag([atom('cyberspace'), [atom('log'), [atom(action), atom(name)]]])
    await this.authorizeTag(principal, tag, `${action} ${name} ${principal}`, options, (local, remote) => {
      const what = action === 'read' ? 'read' : `${action} to`
      const message = `${principal} may not ${what} document ${name} here${member}: ${local.message}; asked for a proof: ${remote.message}`
      return action === 'read' ? new UnauthorizedReadError(message) : new UnauthorizedEventError(message)
    })
  }

  /** Resolves if `principal` holds `(cyberspace member)` by this node's ACL (a proof asked only of `providers`). */
  private async authorizeMember(principal: PrincipalId, options: FetchOptions): Promise<void> {
    await this.authorizeTag(
      principal,
      () => MEMBER_TAG,
      `member ${principal}`,
      options,
      local => {
        return new UnauthorizedReadError(`${principal} is no member here: ${local.message}`)
      }
    )
  }

  /**
   * Resolves if `principal` holds `tag()` (a positive decision is cached under `key`: a repeat costs
   * a lookup, the tag is made only when it is not cached); throws `refuse(…)` if not.
   */
  private async authorizeTag(
    principal: PrincipalId,
    tag: () => Tag,
    key: string,
    options: FetchOptions,
    refuse: (local: Error, remote: Error) => Error
  ): Promise<void> {
    const { spki } = this.components.libp2p.services
    const epoch = spki.epoch
    const cached = this.authorized.get(key)
    if (cached != null && cached.epoch === epoch && cached.until > Date.now()) return
    const grant = await spki.authorizeOrProve(principal, tag(), {
      signal: options.signal,
      timeout: this.timeout,
      providers: options.providers,
      refuse
    })
    const notAfter = grant.validity.notAfter != null ? spkiTimeMs(grant.validity.notAfter) : Infinity
    this.authorized.set(key, { epoch, until: Math.min(Date.now() + (this.init.authorizationTtl ?? 60_000), notAfter) })
  }

  /**
   * Whether `peer` may read document `name` here: it is public, or the peer holds `(log (read name))`;
   * for a session document or the agent directory, also any member (`(cyberspace member)`), and
   * they are never public.
   */
  private async mayRead(peer: PeerId, name: string, signal?: AbortSignal): Promise<boolean> {
    const owner = sessionOwner(name)
    if (owner === null) return false
    const open = this.docs.get(name)
    // a local document is no peer's to read
    if (open?.local === true) return false
    const members = this.membersRead(name)
    if (open != null && this.served(open)) return true
    const principal = this.principalOf(peer)
    if (members && principal !== this.self) {
      try {
        await this.authorizeMember(principal, { providers: [peer], signal })
        return true
      } catch (err) {
        this.log.trace('%p is no member, for %s - %e', peer, name, err)
      }
    }
    try {
      await this.authorize(name, principal, 'read', { providers: [peer], signal })
      return true
    } catch (err) {
      this.log.trace('%p may not read %s - %e', peer, name, err)
      return false
    }
  }

  /** The principal of a peer (its key): decoding it costs tens of µs, and every read check asks. */
  private principalOf(peer: PeerId): PrincipalId {
    const key = peer.toString()
    let principal = this.principals.get(key)
    if (principal == null) {
      principal = principalFromPeerId(peer)
      this.principals.set(key, principal)
    }
    return principal
  }

  /** The names among `names` that `peer` may read, in order. */
  private async readable(peer: PeerId, names: string[], signal?: AbortSignal): Promise<string[]> {
    const allowed = await Promise.all(names.map(async name => await this.mayRead(peer, name, signal)))
    return names.filter((_, i) => allowed[i])
  }

  // --- gossip ---

  /**
   * Announces an own event on gossip, at most one announcement per document every
   * ANNOUNCE_INTERVAL (FOLLOWED_ANNOUNCE_INTERVAL while it has followers): the first after a quiet
   * spell at once, then the latest event at the end of the interval. Its past holds the events not
   * announced: a reader fetches them with it (and the document's followers have them pushed
   * anyway). A public document's announcement carries the event inline.
   */
  private announce(open: OpenDocument, cid: CID, bytes: Uint8Array): void {
    if (open.local) return
    const pacing = open.announcing
    pacing.latest = { cid, bytes }
    if (pacing.timer != null) return
    const interval = open.followers.size > 0 ? FOLLOWED_ANNOUNCE_INTERVAL : ANNOUNCE_INTERVAL
    const wait = pacing.at + interval - Date.now()
    if (wait <= 0) {
      pacing.at = Date.now()
      this.publish(open, cid, bytes)
      return
    }
    pacing.timer = setTimeout(() => {
      pacing.timer = undefined
      pacing.at = Date.now()
      const latest = pacing.latest
      if (this.started && this.docs.get(open.name) === open && latest != null) {
        this.publish(open, latest.cid, latest.bytes)
      }
    }, wait)
  }

  /** Publishes an announcement, if anyone subscribes. */
  private publish(open: OpenDocument, cid: CID, bytes: Uint8Array): void {
    const pubsub = this.components.libp2p.services.pubsub
    if (pubsub.getSubscribers(this.topic).length === 0) return
    // every subscriber sees the message: content goes inline only where anyone may read it
    const message = eventAnnouncement(open.name, cid, this.served(open) ? bytes : null)
    pubsub.publish(this.topic, encodeDeltaMessage(message)).catch(err => {
      this.log('could not announce %c - %e', cid, err)
    })
  }

  private readonly onMessage = (evt: CustomEvent<GossipsubMessage>): void => {
    const { msg, propagationSource } = evt.detail
    if (msg.topic !== this.topic || msg.type !== 'signed') return
    if (this.init.acceptGossip != null && !this.init.acceptGossip(msg.from)) return
    let announcement
    try {
      announcement = decodeDeltaMessage(msg.data)
    } catch (err) {
      this.log('dropping a bad deltas message from %p - %e', msg.from, err)
      return
    }
    const { log: name, cid, block } = announcement
    const held = this.docs.get(name)
    // a local document takes nothing from peers
    if (held == null || held.local || held.log.has(cid)) return
    // inline blocks are used only where they may be sent at all: public documents
    const blocks = new Map<string, Uint8Array>()
    if (block != null && this.served(held)) blocks.set(cid.toString(), block)
    // charged to the peer that signed the announcement, not to the honest neighbour that relayed
    // it: junk from an outsider fills only the outsider's queue. The author holds the event and
    // its history; if it is not connected, the forwarding peer is asked for it.
    const origin = msg.from
    void this.mayRead(origin, name, this.shutdown.signal).then(verified => {
      // a session's events are announced by the node its agent runs on: periodic rounds ask it
      const open = this.docs.get(name)
      if (verified && open?.owner != null) open.source = origin
      // a peer that pushes this document here sends the event in its push: its announcement waits
      // a little, and is joined then only if the push did not bring the event — inline or not, a
      // join now would fetch and check, beside the push, the events the paced announcements skipped
      const pushed = this.pushedBy.get(`${name} ${origin}`)
      if (pushed != null && Date.now() - pushed < PUSH_GRACE * 10) {
        this.deferOffer(name, origin, verified, cid, blocks, propagationSource)
        return
      }
      this.joins.offer(name, origin, verified, [cid], null, blocks, [propagationSource])
    })
  }

  /** Queues an announcement for a join after PUSH_GRACE (one timer per document and peer). */
  private deferOffer(
    name: string,
    origin: PeerId,
    verified: boolean,
    cid: CID,
    blocks: Map<string, Uint8Array>,
    relay: PeerId
  ): void {
    const key = `${name} ${origin}`
    let waiting = this.deferred.get(key)
    if (waiting == null) {
      const offer: DeferredOffer = {
        cids: new RecentMap(MAX_PENDING_HEADS),
        blocks: new RecentMap(MAX_PENDING_BLOCKS),
        relays: new Map(),
        verified,
        timer: setTimeout(() => {
          this.deferred.delete(key)
          if (!this.started) return
          const inline = new Map<string, Uint8Array>()
          for (const k of offer.blocks.keys()) inline.set(k, offer.blocks.get(k) as Uint8Array)
          this.joins.offer(name, origin, offer.verified, offer.cids.values(), null, inline, [...offer.relays.values()])
        }, PUSH_GRACE)
      }
      waiting = offer
      this.deferred.set(key, waiting)
    }
    waiting.verified &&= verified
    waiting.cids.set(cid.toString(), cid)
    for (const [k, b] of blocks) waiting.blocks.set(k, b)
    if (waiting.relays.size < MAX_DEFERRED_RELAYS) waiting.relays.set(relay.toString(), relay)
  }

  /** Pushes the document's new heads to its connected followers (see OpenDocument.followers). */
  private pushToFollowers(open: OpenDocument): void {
    if (open.local || open.followers.size === 0 || !this.started) return
    const { libp2p } = this.components
    const now = Date.now()
    const peers = open.followers.values().filter(peer => {
      const refused = this.pushRefused.get(`${open.name} ${peer}`)
      return (refused == null || refused < now) && libp2p.getConnections(peer).length > 0
    })
    // a push carries events: the replicator's push checks the follower may read the document
    // when it goes (one push in flight per follower, the next carries every event written meanwhile)
    if (peers.length > 0) this.replicatorOf(open.name).nudge(peers)
  }

  /** Remembers `peer` as a follower of document `name`: it holds it and may read it here. */
  private follow(name: string, peer: PeerId): void {
    const open = this.docs.get(name)
    if (open == null || open.local || peer.equals(this.components.libp2p.peerId)) return
    const refused = this.pushRefused.get(`${name} ${peer}`)
    if (refused != null && refused > Date.now()) return
    open.followers.set(peer.toString(), peer)
  }

  // --- anti-entropy ---

  private readonly onConnect = (evt: CustomEvent<PeerId>): void => {
    if (this.docs.size === 0) return
    const peer = evt.detail
    // give identify a moment, so the peer's protocols are known before we ask
    setTimeout(() => {
      if (!this.started) return
      this.syncWith(peer).catch(err => this.log('heads exchange with new peer %p failed - %e', peer, err))
    }, 250)
  }

  /** A few random connected peers, and the hosts of the sessions this node follows. */
  private pickPeers(): PeerId[] {
    const ids = new Map<string, PeerId>()
    for (const c of this.components.libp2p.getConnections()) {
      if (c.status === 'open' && c.limits == null) ids.set(c.remotePeer.toString(), c.remotePeer)
    }
    const picked = new Map(
      shuffled(ids.values())
        .slice(0, this.init.syncFanout ?? 3)
        .map(p => [p.toString(), p])
    )
    const sources = new Map<string, PeerId>()
    for (const { source } of this.docs.values()) {
      if (source != null && ids.has(source.toString())) sources.set(source.toString(), source)
    }
    for (const source of shuffled(sources.values()).slice(0, MAX_SESSION_SOURCES)) picked.set(source.toString(), source)
    return [...picked.values()]
  }

  private ourHeads(names: Iterable<string>): LogHeads[] {
    const out: LogHeads[] = []
    for (const name of names) {
      const open = this.docs.get(name)
      if (open == null || open.local) continue
      const snapshots = open.log.snapshots()
      out.push({
        log: name,
        heads: open.log.heads().slice(0, MAX_HEADS_PER_LOG),
        snapshot: snapshots.length > 0 ? snapshots[snapshots.length - 1] : null
      })
      if (out.length === MAX_LOGS_PER_MESSAGE) break
    }
    return out
  }

  private async request<T extends HeadsAnswer['type']>(
    peer: PeerId,
    request: HeadsRequest,
    expected: T,
    options: AbortOptions,
    protocol = this.protocol
  ): Promise<Extract<HeadsAnswer, { type: T }>> {
    const { libp2p } = this.components
    return await requestAnswer(
      async (p, ids, options) => await libp2p.dialProtocol(p, ids, options),
      peer,
      protocol,
      encodeHeadsMessage(request),
      {
        maxBytes: MAX_HEADS_MESSAGE_BYTES,
        signal: withTimeout(this.timeout, options.signal),
        pool: this.streams,
        decode: decodeHeadsMessage,
        expected,
        refused: answer => new RequestRefusedError(answer.name, `${peer} refused: ${answer.name}: ${answer.message}`),
        unexpected: type => new InvalidHeadsMessageError(`expected a ${expected} answer, got ${type}`)
      }
    )
  }

  private async syncWith(peer: PeerId, options: AbortOptions = {}): Promise<void> {
    const logs = this.ourHeads(shuffled(this.docs.keys()))
    if (logs.length === 0) return
    // names are not secret (gossip carries them too), heads are: the peer learns the heads only of
    // the documents it may read here, and for the rest only that we would like its own
    const readable = new Set(
      await this.readable(
        peer,
        logs.map(l => l.log),
        options.signal
      )
    )
    const request = logs.map(l => (readable.has(l.log) ? l : { log: l.log, heads: [], snapshot: null }))
    const answer = await this.request(peer, { v: 1, type: 'heads', logs: request }, 'heads', options)
    const asked = new Set(logs.map(l => l.log))
    for (const l of answer.logs) {
      if (!asked.has(l.log)) continue
      // it holds the document (it answered for it) and may read it here: new events are pushed to it
      if (readable.has(l.log)) this.follow(l.log, peer)
      this.offerHeads(l.log, peer, readable.has(l.log), l.heads, l.snapshot)
    }
  }

  /**
   * Queues the heads a peer offered for a join. A session document's checkpoint offered by a
   * reader with no event this node lacks needs no join: it is taken as the base at once (one at a
   * time per document), and the history behind it dropped.
   */
  private offerHeads(name: string, peer: PeerId, verified: boolean, heads: CID[], snapshot: CID | null): void {
    const open = this.docs.get(name)
    if (open == null || open.local) return
    if (
      open?.owner != null &&
      verified &&
      snapshot != null &&
      heads.every(h => open.log.has(h)) &&
      !open.log.snapshots().some(s => s.equals(snapshot))
    ) {
      void this.takeCheckpoint(open, peer, snapshot)
      return
    }
    this.joins.offer(name, peer, verified, heads, snapshot)
  }

  private async takeCheckpoint(open: OpenDocument, peer: PeerId, snapshot: CID): Promise<void> {
    if (this.checkpointing.has(open.name)) return
    this.checkpointing.add(open.name)
    const options = {
      providers: [peer],
      signal: withTimeout(this.init.joinTimeout ?? 30_000, this.shutdown.signal)
    }
    try {
      if (await open.log.adoptSnapshot(snapshot, { ...options, base: true })) await open.log.dropCovered(options)
    } catch (err) {
      this.log('taking checkpoint %c of %s from %p failed - %e', snapshot, open.name, peer, err)
    } finally {
      this.checkpointing.delete(open.name)
    }
  }

  private async answer(bytes: Uint8Array, from: PeerId, signal: AbortSignal, hold: boolean): Promise<Uint8Array> {
    const request = decodeHeadsMessage(bytes)
    if (request.type === 'want') return encodeHeadsMessage(await this.answerWant(request, from, signal))
    if (request.type === 'hold') {
      if (!hold) throw new InvalidHeadsMessageError(`hold is served on ${this.holdProtocol}, not ${this.protocol}`)
      return encodeHeadsMessage(await this.answerHold(request, from, signal))
    }
    if (request.type !== 'heads') throw new InvalidHeadsMessageError(`a ${request.type} message is not a request`)
    const held = request.logs.filter(l => this.docs.has(l.log) && this.docs.get(l.log)?.local !== true)
    const allowed = new Set(
      await this.readable(
        from,
        held.map(l => l.log),
        signal
      )
    )
    // the exchange is symmetric: join what the asker has, in the background, as we answer; the
    // asker holds these documents and may read them here, so new events are pushed to it
    for (const l of held) {
      if (!allowed.has(l.log)) continue
      this.follow(l.log, from)
      this.offerHeads(l.log, from, true, l.heads, l.snapshot)
    }
    this.log.trace('heads exchange from %p', from)
    return encodeHeadsMessage({ v: 1, type: 'heads', logs: this.ourHeads(allowed) })
  }

  /**
   * Joins the heads a reader asks this node to hold, from that reader (with the blocks it sent),
   * and answers with those it holds now. Within the asker's budget, and only once the asker is
   * known to read the document: a refusal is the same whether or not this node holds it. A
   * document this node does not hold is not opened for the asker: it holds none of its heads.
   */
  private async answerHold(request: HoldMessage, from: PeerId, signal: AbortSignal): Promise<HeldMessage> {
    const key = from.toString()
    const running = this.holding.get(key) ?? 0
    if (running >= (this.init.maxHoldsPerPeer ?? 4)) {
      throw new TooManyHoldsError(`${from} has ${running} hold requests running here already`)
    }
    this.holding.set(key, running + 1)
    try {
      if (!(await this.mayRead(from, request.log, signal))) {
        throw new UnauthorizedReadError(`${from} may not read document ${request.log} here`)
      }
      const open = this.docs.get(request.log)
      if (open == null) return { v: 1, type: 'held', log: request.log, heads: [] }
      this.pushedBy.set(`${request.log} ${key}`, Date.now())
      const missing = request.heads.filter(h => !open.log.has(h))
      const { snapshot } = request
      if (missing.length > 0) {
        const blocks = new Map<string, Uint8Array>()
        // keyed by their hash: the join uses only those its walk meets, and checks each as it would a fetched one
        for (const block of request.blocks) blocks.set((await blockCid(block)).toString(), block)
        await this.joinHeads(open, missing, snapshot, {
          providers: [from],
          proofProviders: [from],
          blocks,
          hashed: true,
          signal: AbortSignal.any([signal, this.shutdown.signal])
        })
      } else if (open.owner != null && snapshot != null && !open.log.snapshots().some(s => s.equals(snapshot))) {
        // a session's new checkpoint, pushed as soon as it was taken
        await this.takeCheckpoint(open, from, snapshot)
      }
      return { v: 1, type: 'held', log: request.log, heads: request.heads.filter(h => open.log.has(h)) }
    } finally {
      const left = (this.holding.get(key) ?? 1) - 1
      if (left > 0) this.holding.set(key, left)
      else this.holding.delete(key)
    }
  }

  /** The wanted blocks of one log, to a peer that may read it, as many as fit in one message. */
  private async answerWant(request: WantMessage, from: PeerId, signal: AbortSignal): Promise<BlocksMessage> {
    // the same answer whether or not this node holds the document: a refusal says nothing of it
    if (!(await this.mayRead(from, request.log, signal))) {
      throw new UnauthorizedReadError(`${from} may not read document ${request.log} here`)
    }
    const open = this.docs.get(request.log)
    const blocks: Uint8Array[] = []
    if (open == null) return { v: 1, type: 'blocks', blocks }
    let budget = MAX_HEADS_MESSAGE_BYTES - 1024
    const snapshots = new Set(open.log.snapshots().map(String))
    // the wanted blocks first, then (up to `depth` more) their ancestors, nearest first
    const queue = [...new Map(request.cids.map(c => [c.toString(), c])).values()]
    const wanted = queue.length
    const sent = new Set<string>()
    const most = Math.min(MAX_WANTED_BLOCKS, wanted + request.depth)
    let misses = 0
    for (let i = 0; i < queue.length && blocks.length < most && budget >= 1024 && misses < 2 * MAX_WANTED_BLOCKS; i++) {
      const cid = queue[i]
      const key = cid.toString()
      if (sent.has(key)) continue
      sent.add(key)
      // a reader of one log gets no block of another: only what this log holds is looked up
      if (!open.log.has(key) && !snapshots.has(key)) continue
      // the copy in memory only while the block is stored (a compacted one is not sent)
      const recent = open.log.holdsBlock(key) ? this.recentBlocks.get(key) : undefined
      let block: Uint8Array
      try {
        block =
          recent?.bytes ??
          (await readBlock(this.components.blockstore, cid, {
            maxBytes: Math.min(MAX_SNAPSHOT_BYTES, budget - 16),
            offline: true,
            signal
          }))
      } catch {
        misses++
        continue // not here (compacted away, or larger than what is left of the answer)
      }
      if (block.length > budget - 16) {
        misses++
        continue
      }
      budget -= block.length + 16
      blocks.push(block)
      if (request.depth > 0 && !snapshots.has(key)) {
        try {
          for (const p of recent?.parents ?? decodeEvent(block).parents) if (!sent.has(p.toString())) queue.push(p)
        } catch {
          // a stored block that is not an event: nothing behind it to add
        }
      }
    }
    return { v: 1, type: 'blocks', blocks }
  }

  /**
   * Fetches a block of log `name` from the peers that told us of it, and checks its hash. Only peers
   * already connected are asked: a made-up provider costs no dial and no DHT lookup.
   */
  private async fetchBlock(name: string, cid: CID, options: Parameters<FetchBlock>[1]): Promise<Uint8Array> {
    const ahead = this.prefetched.take(`${name} ${cid}`)
    if (ahead != null && ahead.length <= options.maxBytes) return ahead
    const signal = withTimeout(options.timeout, options.signal)
    const errors: string[] = []
    const { libp2p } = this.components
    const peers = (options.providers ?? []).filter(peer => {
      if (peer.equals(libp2p.peerId)) return false
      if (libp2p.getConnections(peer).length > 0) return true
      errors.push(`${peer}: not connected`)
      return false
    })
    // each peer gets its share of the time, so one that stalls does not use up the next one's
    const share = Math.max(1000, this.timeout / Math.max(1, peers.length))
    // a short walk (a missed event or two) asks for little it may already hold; a long one, for more
    const depth = Math.min(MAX_WANTED_BLOCKS - 1, 2 ** (options.level ?? 0) - 1)
    for (const peer of peers) {
      try {
        const block = await this.wants.want(peer, name, cid, depth, withTimeout(share, signal))
        // the log stores the block if it accepts it
        if (block != null && block.length <= options.maxBytes) return block
        errors.push(`${peer}: does not have it`)
      } catch (err) {
        signal.throwIfAborted()
        errors.push(`${peer}: ${(err as Error).message}`)
      }
    }
    throw new BlockNotFoundError(`no peer gave block ${cid}: ${errors.join('; ') || 'no peer to ask'}`)
  }

  // --- joins: queued per peer, bounded per peer and in time ---

  /** Joins an offer's heads; from its snapshot if the history behind them is gone. */
  private async runJoin(open: OpenDocument, offer: Offer): Promise<void> {
    // offered before it became local: a local document takes nothing from peers
    if (open.local) return
    const heads = offer.heads.values().filter(h => !open.log.has(h))
    if (heads.length === 0) return
    const providers = [offer.provider, ...offer.providers]
    await this.joinHeads(open, heads, offer.snapshot, {
      providers,
      // only a proven reader's offer may make this node ask peers for authors' proofs
      proofProviders: offer.verified ? providers : [],
      blocks: offer.blocks,
      signal: withTimeout(this.init.joinTimeout ?? 30_000, this.shutdown.signal)
    })
  }

  /** Joins `heads`; from `snapshot` if the history behind them is gone (a session takes it as its base). Never rejects. */
  private async joinHeads(open: OpenDocument, heads: CID[], snapshot: CID | null, options: JoinOptions): Promise<void> {
    try {
      let complete = false
      try {
        const result = await open.log.join(heads, options)
        complete = result.missing.length === 0
      } catch (err) {
        if (!(err instanceof HistoryTooLongError)) throw err
      }
      // a follower of a session takes each checkpoint its agent signs as its base, and drops the
      // history behind it, as the agent's host does
      const session = open.owner != null
      if ((!complete || session) && snapshot != null && !open.log.snapshots().some(s => s.equals(snapshot))) {
        const adopted = await open.log.adoptSnapshot(snapshot, { ...options, base: session })
        if (!complete) await open.log.join(heads, options)
        if (session && adopted) await open.log.dropCovered(options)
      }
    } catch (err) {
      this.log('joining %s from %p failed - %e', open.name, options.providers?.[0], err)
    }
  }
}

/** Gossipsub's check of a deltas message before it delivers or forwards it. */
function validateAnnouncement(_from: PeerId, msg: Message): TopicValidatorResult {
  if (msg.type !== 'signed') return TopicValidatorResult.Reject
  try {
    decodeDeltaMessage(msg.data)
    return TopicValidatorResult.Accept
  } catch {
    return TopicValidatorResult.Reject
  }
}

function isCrdtName(type: string): type is CrdtName {
  return Object.hasOwn(crdtTypes, type)
}

function publicKey(name: string): Key {
  return new Key(`/cyberspace/state/public/${name}`)
}

function localKey(name: string): Key {
  return new Key(`/cyberspace/state/local/${name}`)
}

/** What a rule's prefix may be: the start of a document name. */
const RULE_PREFIX_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/

/** A uniformly random permutation of `items` (Fisher–Yates), as a new array. */
function shuffled<T>(items: Iterable<T>): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}
