/**
 * The state service (`node.state`): replicated documents over this node's libp2p and Helia.
 * Each document is a log (src/log/log.ts) of one CRDT type. New events are announced on the
 * deltas gossip topic (`protocols/deltas/`), inline when small; peers exchange heads over
 * `/cyberspace/heads/1.0.0` (`protocols/heads/`) when they connect and every `syncInterval`, and
 * fetch what they lack by CID through Helia. Whatever gossip loses, anti-entropy repairs.
 *
 * Authority: an event is applied only if its author holds `(cyberspace (log (append <name>)))`
 * by this node's ACL (a snapshot needs `(cyberspace (log (snapshot <name>)))`), found in the local
 * store or proven by the author's node over `/cyberspace/spki/1.0.0`. This node's own events need
 * no chain here; every other replica checks them.
 *
 * @example
 * const doc = await node.state.open('tasks', 'or-set')
 * await doc.add('write the report')
 * doc.addEventListener('change', e => console.log(e.detail.author, doc.value()))
 */
import { decodeDeltaMessage, deltasTopic, encodeDeltaMessage, eventAnnouncement } from '../../protocols/deltas/codec.ts'
import { blockCid, MAX_SNAPSHOT_BYTES } from '../../protocols/log/codec.ts'
import {
  decodeHeadsMessage,
  InvalidHeadsMessageError,
  encodeHeadsMessage,
  HEADS_PROTOCOL,
  MAX_HEADS_MESSAGE_BYTES,
  MAX_HEADS_PER_LOG,
  MAX_LOGS_PER_MESSAGE
} from '../../protocols/heads/codec.ts'
import { errorAnswer } from '../../protocols/wire.ts'
import { Hlc } from '../clock/hlc.ts'
import { requestAnswer, serveOnce, withTimeout } from '../network/rpc.ts'
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
  LogTypeMismatchError,
  UnauthorizedEventError
} from './errors.ts'
import { Log, storedLogs, storedLogType } from './log.ts'
import type { BlocksMessage, HeadsAnswer, HeadsRequest, LogHeads } from '../../protocols/heads/codec.ts'
import type { LogBlockstore } from './blocks.ts'
import type { Document, DocumentTypes } from './documents.ts'
import type { FetchBlock, JoinOptions, LogAction, LogLimits } from './log.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Signer } from '../crypto/sign.ts'
import type { CrdtName } from '../crdt/types.ts'
import type { Spki } from '../spki/service.ts'
import type { GossipSub, GossipsubMessage } from '@libp2p/gossipsub'
import type { AbortOptions, ComponentLogger, Libp2p, Logger, PeerId } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'
import type { CID } from 'multiformats/cid'

export interface StateInit {
  /** The heads protocol id; default `/cyberspace/heads/1.0.0`. */
  protocol?: string
  /** Gossip topic namespace: `/cyberspace/<namespace>/deltas/1`; default 'default'. */
  namespace?: string
  /** How often to exchange heads with a few peers, in ms; default 10 s. */
  syncInterval?: number
  /** Peers asked per periodic round; default 3. */
  syncFanout?: number
  /** How long one heads exchange may take, in ms; default 10 s. */
  timeout?: number
  maxInboundStreams?: number
  /** Joins running at once per document; further announcements wait for anti-entropy. Default 4. */
  maxConcurrentJoins?: number
  limits?: LogLimits
  /** How long a positive authorization is reused, in ms; default 60 s. */
  authorizationTtl?: number
  /** Fault injection for tests: return false to drop an inbound gossip message. */
  acceptGossip?: (from: PeerId) => boolean
}

export interface StateComponents {
  libp2p: Libp2p<{ pubsub: GossipSub; spki: Spki }>
  /** Helia's blockstore: local blocks, fetched from peers by CID when missing. */
  blockstore: LogBlockstore
  datastore: Datastore
  signer: Signer
  logger: ComponentLogger
}

export interface State {
  /** Opens (or returns the already open) document `name` of a CRDT type. */
  open<T extends CrdtName>(name: string, type: T, options?: AbortOptions): Promise<DocumentTypes[T]>
  /** Names of the open documents. */
  names(): string[]
  /** The open document `name`, or the stored one opened with its type; undefined if this node has none. */
  find(name: string, options?: AbortOptions): Promise<DocumentTypes[CrdtName] | undefined>
  /** The documents this node stores (open or not), with their types: at most `MAX_STORED_DOCUMENTS`. */
  stored(options?: AbortOptions): Promise<Array<{ name: string; type: CrdtName }>>
  /** One round of anti-entropy: exchange heads with `peer`, or with a few connected peers. */
  sync(peer?: PeerId, options?: AbortOptions): Promise<void>
}

/** Most documents listed by `stored()` and reopened when the node starts. */
export const MAX_STORED_DOCUMENTS = 1024

interface OpenDocument {
  doc: Document<any, any, any>
  log: Log<any, any, any>
  joins: number
}

export class StateService implements State {
  private readonly components: StateComponents
  private readonly init: StateInit
  private readonly log: Logger
  private readonly protocol: string
  private readonly topic: string
  private readonly timeout: number
  private readonly clock = new Hlc()
  private readonly docs = new Map<string, OpenDocument>()
  private readonly opening = new Map<string, Promise<OpenDocument>>()
  private readonly authorized = new Map<string, number>()
  private timer?: ReturnType<typeof setInterval>
  private readonly self: PrincipalId
  private started = false
  /** Set while stored documents are reopened at start: they sync together afterwards. */
  private reopening = false

  constructor(components: StateComponents, init: StateInit = {}) {
    this.components = components
    this.init = init
    this.log = components.logger.forComponent('cyberspace:state')
    this.protocol = init.protocol ?? HEADS_PROTOCOL
    this.topic = deltasTopic(init.namespace ?? 'default')
    this.timeout = init.timeout ?? 10_000
    this.self = components.signer.principal
  }

  async start(): Promise<void> {
    const { libp2p } = this.components
    await libp2p.handle(
      this.protocol,
      serveOnce(async (bytes, connection, signal) => await this.answerHeads(bytes, connection.remotePeer, signal), {
        maxBytes: MAX_HEADS_MESSAGE_BYTES,
        timeout: this.timeout,
        log: this.log,
        refuse: err => encodeHeadsMessage(errorAnswer(err))
      }),
      { maxInboundStreams: this.init.maxInboundStreams ?? 32, maxOutboundStreams: 64 }
    )
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
    clearInterval(this.timer)
    const { libp2p } = this.components
    libp2p.removeEventListener('peer:connect', this.onConnect)
    libp2p.services.pubsub.removeEventListener('gossipsub:message', this.onMessage)
    libp2p.services.pubsub.unsubscribe(this.topic)
    await libp2p.unhandle(this.protocol)
    for (const { log } of this.docs.values()) log.close()
    this.docs.clear()
  }

  names(): string[] {
    return [...this.docs.keys()]
  }

  async open<T extends CrdtName>(name: string, type: T, options: AbortOptions = {}): Promise<DocumentTypes[T]> {
    const open = this.docs.get(name) ?? (await this.opened(name, type, options))
    if (open.doc.type !== type) {
      throw new LogTypeMismatchError(`document ${name} is open as a ${open.doc.type}, not a ${type}`)
    }
    return open.doc as DocumentTypes[T]
  }

  async find(name: string, options: AbortOptions = {}): Promise<DocumentTypes[CrdtName] | undefined> {
    const open = this.docs.get(name)
    if (open != null) return open.doc as DocumentTypes[CrdtName]
    const type = await storedLogType(this.components.datastore, name, options)
    if (type == null) return undefined
    if (!isCrdtName(type)) throw new LogTypeMismatchError(`document ${name} holds an unknown type ${type}`)
    return await this.open(name, type, options)
  }

  async stored(options: AbortOptions = {}): Promise<Array<{ name: string; type: CrdtName }>> {
    const out: Array<{ name: string; type: CrdtName }> = []
    for (const { id, type } of await storedLogs(this.components.datastore, MAX_STORED_DOCUMENTS, options)) {
      if (isCrdtName(type)) out.push({ name: id, type })
    }
    return out.sort((a, b) => compareStrings(a.name, b.name))
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

  // --- opening documents ---

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

  private async opened(name: string, type: CrdtName, options: AbortOptions): Promise<OpenDocument> {
    let pending = this.opening.get(name)
    if (pending == null) {
      pending = this.createDocument(name, type, options)
      this.opening.set(name, pending)
      pending.finally(() => this.opening.delete(name)).catch(() => {})
    }
    return await pending
  }

  private async createDocument(name: string, type: CrdtName, options: AbortOptions): Promise<OpenDocument> {
    options.signal?.throwIfAborted()
    const log = await Log.open({
      id: name,
      type: crdtTypes[type] as any,
      blockstore: this.components.blockstore,
      fetch: this.fetchBlock,
      datastore: this.components.datastore,
      signer: this.components.signer,
      clock: this.clock,
      authorize: async (author, action, opts) => await this.authorize(name, author, action, opts),
      limits: this.init.limits,
      logger: this.components.logger
    })
    if (!this.started) {
      // stopped while the log was replaying: do not leave it open behind the service's back
      log.close()
      throw new LogClosedError(`the state service stopped while opening ${name}`)
    }
    log.addEventListener('change', e => {
      if (e.detail.local && e.detail.bytes != null) this.announce(name, e.detail.cid, e.detail.bytes)
    })
    const doc = new documentClasses[type](log)
    const open: OpenDocument = { doc, log, joins: 0 }
    this.docs.set(name, open)
    // catch up with whoever is connected now rather than at the next periodic round
    if (!this.reopening) this.sync().catch(err => this.log('initial sync of %s failed - %e', name, err))
    return open
  }

  // --- authority ---

  private async authorize(name: string, author: PrincipalId, action: LogAction, options: AbortOptions): Promise<void> {
    if (author === this.self) return
    const key = `${action} ${name} ${author}`
    const until = this.authorized.get(key)
    if (until != null && until > Date.now()) return
    const tag = parseTag([atom('cyberspace'), [atom('log'), [atom(action), atom(name)]]])
    await this.components.libp2p.services.spki.authorizeOrProve(author, tag, {
      signal: options.signal,
      timeout: this.timeout,
      refuse: (local, remote) =>
        new UnauthorizedEventError(
          `${author} may not ${action} log ${name} here: ${local.message}; asked to prove it: ${remote.message}`
        )
    })
    if (this.authorized.size >= 4096) this.authorized.clear()
    this.authorized.set(key, Date.now() + (this.init.authorizationTtl ?? 60_000))
  }

  // --- gossip ---

  private announce(name: string, cid: CID, bytes: Uint8Array): void {
    const pubsub = this.components.libp2p.services.pubsub
    if (pubsub.getSubscribers(this.topic).length === 0) return
    pubsub.publish(this.topic, encodeDeltaMessage(eventAnnouncement(name, cid, bytes))).catch(err => {
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
    const blocks = new Map<string, Uint8Array>()
    if (announcement.block != null) blocks.set(announcement.cid.toString(), announcement.block)
    // the author and the peer that forwarded it hold the event and its history
    const providers = [propagationSource, msg.from]
    void this.joinFrom(announcement.log, [announcement.cid], null, { blocks, providers })
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

  private pickPeers(): PeerId[] {
    const ids = new Map<string, PeerId>()
    for (const c of this.components.libp2p.getConnections()) {
      if (c.status === 'open' && c.limits == null) ids.set(c.remotePeer.toString(), c.remotePeer)
    }
    return shuffled(ids.values()).slice(0, this.init.syncFanout ?? 3)
  }

  private ourHeads(names: Iterable<string>): LogHeads[] {
    const out: LogHeads[] = []
    for (const name of names) {
      const open = this.docs.get(name)
      if (open == null) continue
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
    options: AbortOptions
  ): Promise<Extract<HeadsAnswer, { type: T }>> {
    return await requestAnswer(
      this.components.libp2p.dialProtocol.bind(this.components.libp2p),
      peer,
      this.protocol,
      encodeHeadsMessage(request),
      {
        maxBytes: MAX_HEADS_MESSAGE_BYTES,
        signal: withTimeout(this.timeout, options.signal),
        decode: decodeHeadsMessage,
        expected,
        refused: answer => new Error(`${peer} refused: ${answer.name}: ${answer.message}`),
        unexpected: type => new InvalidHeadsMessageError(`expected a ${expected} answer, got ${type}`)
      }
    )
  }

  private async syncWith(peer: PeerId, options: AbortOptions = {}): Promise<void> {
    const logs = this.ourHeads(shuffled(this.docs.keys()))
    if (logs.length === 0) return
    const answer = await this.request(peer, { v: 1, type: 'heads', logs }, 'heads', options)
    const providers = [peer]
    await Promise.all(
      answer.logs.map(async l => await this.joinFrom(l.log, l.heads, l.snapshot, { ...options, providers }))
    )
  }

  private async answerHeads(bytes: Uint8Array, from: PeerId, signal: AbortSignal): Promise<Uint8Array> {
    const request = decodeHeadsMessage(bytes)
    if (request.type === 'want') return encodeHeadsMessage(await this.answerWant(request.cids, signal))
    if (request.type !== 'heads') throw new InvalidHeadsMessageError(`a ${request.type} message is not a request`)
    // the exchange is symmetric: join what the asker has, in the background, as we answer
    for (const l of request.logs) void this.joinFrom(l.log, l.heads, l.snapshot, { providers: [from] })
    this.log.trace('heads exchange from %p', from)
    return encodeHeadsMessage({ v: 1, type: 'heads', logs: this.ourHeads(request.logs.map(l => l.log)) })
  }

  /** The wanted blocks this node has, as many as fit in one message. */
  private async answerWant(cids: CID[], signal: AbortSignal): Promise<BlocksMessage> {
    const blocks: Uint8Array[] = []
    let budget = MAX_HEADS_MESSAGE_BYTES - 1024
    for (const cid of cids) {
      try {
        const block = await readBlock(this.components.blockstore, cid, {
          maxBytes: MAX_SNAPSHOT_BYTES,
          offline: true,
          signal
        })
        if (block.length + 16 > budget) break
        budget -= block.length + 16
        blocks.push(block)
      } catch {
        // not here (or compacted away): the asker tries another peer or a snapshot
      }
    }
    return { v: 1, type: 'blocks', blocks }
  }

  /** Fetches a block from the peers that announced it, and checks its hash. */
  private readonly fetchBlock: FetchBlock = async (cid, options) => {
    const errors: string[] = []
    for (const peer of options.providers ?? []) {
      if (peer.equals(this.components.libp2p.peerId)) continue
      try {
        const answer = await this.request(peer, { v: 1, type: 'want', cids: [cid] }, 'blocks', options)
        for (const block of answer.blocks) {
          // the log stores the block if it accepts it
          if (block.length <= options.maxBytes && (await blockCid(block)).equals(cid)) return block
        }
        errors.push(`${peer}: does not have it`)
      } catch (err) {
        options.signal?.throwIfAborted()
        errors.push(`${peer}: ${(err as Error).message}`)
      }
    }
    throw new BlockNotFoundError(`no peer gave block ${cid}: ${errors.join('; ') || 'no peer to ask'}`)
  }

  /** Joins a peer's heads into an open document; from its snapshot if the history behind it is gone. */
  private async joinFrom(name: string, heads: CID[], snapshot: CID | null, options: JoinOptions = {}): Promise<void> {
    const open = this.docs.get(name)
    if (open == null || heads.every(h => open.log.has(h))) return
    if (open.joins >= (this.init.maxConcurrentJoins ?? 4)) return
    open.joins++
    try {
      let complete = false
      try {
        const result = await open.log.join(heads, options)
        complete = result.missing.length === 0
      } catch (err) {
        if (!(err instanceof HistoryTooLongError)) throw err
      }
      if (!complete && snapshot != null && !open.log.snapshots().some(s => s.equals(snapshot))) {
        await open.log.adoptSnapshot(snapshot, options)
        await open.log.join(heads, options)
      }
    } catch (err) {
      this.log('joining %s failed - %e', name, err)
    } finally {
      open.joins--
    }
  }
}

function isCrdtName(type: string): type is CrdtName {
  return Object.hasOwn(crdtTypes, type)
}

/** A uniformly random permutation of `items` (Fisher–Yates), as a new array. */
function shuffled<T>(items: Iterable<T>): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}
