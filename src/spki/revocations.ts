/**
 * Revocations spread: every CRL this node signs (`spki.revoke`, and its re-signing) or imports
 * (`spki.addCrl`, `spki.addAll`) is published on the gossip topic `/cyberspace/crl/1`; every CRL
 * received there, or fetched from a peer, is kept when this node trusts its issuer and it is newer
 * than the one held. A node that was away catches up by anti-entropy over `/cyberspace/crl/1.0.0`:
 * when it connects to a peer (and every `syncInterval`, with one random peer) it asks what the peer
 * holds (`list` → `digest`) and fetches the newer CRLs of issuers it trusts (`fetch` → `crls`).
 * The wire contract is protocols/spki/REVOCATIONS.md.
 *
 * A node trusts a CRL's issuer when the issuer is one of its ACL roots or issued a certificate in
 * its store: a CRL revokes only its own issuer's certificates, so any other could change no
 * decision here and would only fill the store. So at most one CRL per trusted issuer is kept.
 *
 * Every inbound byte is hostile: gossip is validated (bounded decode, a canonical encoding, the
 * issuer's trust and freshness, then the signature) within a per-peer budget before gossipsub
 * delivers or forwards it; a forged or malformed CRL is rejected, an untrusted, stale or duplicate
 * one ignored; outcomes are remembered by hash, so a resent CRL costs one sha256.
 *
 * @example
 * const node = await createNode({ …, services: { revocations: revocations() } })
 * await node.spki.revoke([certHash(cert)]) // reaches every node that trusts this one, within a gossip round
 * await node.libp2p.services.revocations.sync(peerId) // pull what a peer holds, now
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { base16 } from 'multiformats/bases/base16'
import {
  CRL_PROTOCOL,
  CRL_TOPIC,
  decodeCrlGossip,
  decodeCrlMessage,
  encodeCrlMessage,
  InvalidCrlMessageError,
  MAX_CRL_MESSAGE_BYTES,
  MAX_DIGEST_ENTRIES,
  MAX_FETCH
} from '../../protocols/spki/crl-codec.ts'
import { errorAnswer } from '../../protocols/wire.ts'
import { requestAnswer, serveRequests, withTimeout } from '../network/rpc.ts'
import { RecentMap } from '../recent-map.ts'
import { spkiTime } from './cert.ts'
import { compareCrls, CRL_SEXP_LIMITS, crlSummary, parseSignedCrl, signedCrlToSexp, verifyCrl } from './crl.ts'
import { CrlExchangeRefusedError, CrlRateLimitedError } from './errors.ts'
import { PeerBudget } from '../peer-budget.ts'
import { decodeCanonical, encodeCanonical } from './sexp.ts'
import type { CrlMessage, DigestEntry } from '../../protocols/spki/crl-codec.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { OpenStream } from '../network/rpc.ts'
import type { CrlSummary, SignedCrl } from './crl.ts'
import type { Spki, SpkiEvents } from './service.ts'
import type { GossipSub, Message } from '@libp2p/gossipsub'
import type {
  AbortOptions,
  ComponentLogger,
  Connection,
  Libp2pEvents,
  Logger,
  PeerId,
  Startable
} from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import type { TypedEventTarget } from 'main-event'

export interface RevocationsInit {
  /** Gossip topic; default `/cyberspace/crl/1`. */
  topic?: string
  /** Stream protocol id; default `/cyberspace/crl/1.0.0`. */
  protocol?: string
  /** How long a request or answer may take, in ms; default 10 s. */
  timeout?: number
  /** How often to pull from one random connected peer, in ms; default 60 s; 0 turns it off. */
  syncInterval?: number
  /** Concurrent inbound streams per connection; default 2. */
  maxInboundStreams?: number
  /** Requests (list or fetch) this node answers for one peer per minute; default 30. */
  maxAnswersPerMinute?: number
  /** Pulls (a list and a fetch) this node makes from one peer per minute; default 6. */
  maxSyncsPerMinute?: number
  /** Gossip messages this node looks at from one neighbour per minute; beyond, ignored unread; default 60. */
  maxGossipPerMinute?: number
  /** Pulls under way at once (on connection and periodic); default 4. */
  maxConcurrentSyncs?: number
  /** The clock of rate limits and remembered refusals; default Date.now. */
  now?: () => number
}

export interface RevocationsComponents {
  peerId: PeerId
  spki: Spki
  pubsub: GossipSub
  registrar: Registrar
  connectionManager: ConnectionManager
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
}

/** Counters since start, for tests, logs and benchmarks. */
export interface RevocationStats {
  /** CRLs this node published on the topic. */
  published: number
  /** CRLs received (gossip or fetch) and kept. */
  applied: number
  /** CRLs that arrived by anti-entropy (of those applied). */
  fetched: number
  /** CRLs received whose signature was checked: the costly step, bounded per peer. */
  verified: number
  /** Forged, malformed or non-canonical CRLs and gossip messages. */
  rejected: number
  /** Untrusted, stale, expired or duplicate CRLs. */
  ignored: number
  /** Gossip messages ignored unread, and stream requests refused, for a spent per-peer budget. */
  rateLimited: number
}

export interface Revocations {
  /** Whether a CRL of `issuer` from the network may be kept: an ACL root, or the issuer of a certificate held. */
  trusts(issuer: PrincipalId): boolean
  /**
   * Pulls from `peer` the CRLs it holds that are newer than this node's, of issuers this node
   * trusts (at most 8 per pull); resolves to the number kept. CrlRateLimitedError when this node
   * pulled from `peer` too often just now, CrlExchangeRefusedError when the peer refused.
   */
  sync(peer: PeerId, options?: AbortOptions): Promise<number>
  stats(): RevocationStats
}

type Outcome = 'accept' | 'reject' | 'ignore'

/** A remembered outcome for a CRL's bytes; an untrusted issuer's only at the epoch it was judged. */
interface Remembered {
  outcome: Outcome
  epoch?: number
}

/** Most CRL outcomes remembered (by hash), and most misbehaving peers remembered. */
const MAX_REMEMBERED = 4096
/** How long a peer that sent a malformed request is refused without reading, in ms. */
const MALFORMED_TTL = 60_000

const hex = (bytes: Uint8Array): string => base16.baseEncode(bytes)

class RevocationsService implements Revocations, Startable {
  private readonly components: RevocationsComponents
  private readonly log: Logger
  private readonly topic: string
  private readonly protocol: string
  private readonly timeout: number
  private readonly syncInterval: number
  private readonly maxInboundStreams: number
  private readonly maxConcurrentSyncs: number
  private readonly now: () => number
  private readonly inbound: PeerBudget
  private readonly outbound: PeerBudget
  private readonly gossip: PeerBudget
  /** What became of CRL bytes seen before, by the hex sha256 of the bytes. */
  private readonly outcomes = new RecentMap<string, Remembered>(MAX_REMEMBERED)
  /** Peers that sent a malformed request, until when they are refused unread. */
  private readonly malformed = new RecentMap<string, number>(MAX_REMEMBERED)
  /** CRLs being kept from the network: not published again (gossipsub forwards them itself). */
  private readonly applying = new Set<string>()
  /** Peers being pulled from. */
  private readonly syncing = new Set<string>()
  private trust?: { epoch: number; issuers: Set<PrincipalId> }
  private timer?: ReturnType<typeof setInterval>
  private started = false
  private readonly counters: RevocationStats = {
    published: 0,
    applied: 0,
    fetched: 0,
    verified: 0,
    rejected: 0,
    ignored: 0,
    rateLimited: 0
  }

  constructor(components: RevocationsComponents, init: RevocationsInit) {
    this.components = components
    this.log = components.logger.forComponent('cyberspace:revocations')
    this.topic = init.topic ?? CRL_TOPIC
    this.protocol = init.protocol ?? CRL_PROTOCOL
    this.timeout = init.timeout ?? 10_000
    this.syncInterval = init.syncInterval ?? 60_000
    this.maxInboundStreams = init.maxInboundStreams ?? 2
    this.maxConcurrentSyncs = init.maxConcurrentSyncs ?? 4
    this.now = init.now ?? Date.now
    this.inbound = new PeerBudget(init.maxAnswersPerMinute ?? 30, this.maxInboundStreams, this.now)
    this.outbound = new PeerBudget(init.maxSyncsPerMinute ?? 6, 1, this.now)
    this.gossip = new PeerBudget(init.maxGossipPerMinute ?? 60, Infinity, this.now)
  }

  readonly [Symbol.toStringTag] = 'cyberspace/revocations'

  async start(): Promise<void> {
    await this.components.registrar.handle(
      this.protocol,
      serveRequests(async (bytes, connection) => await this.answer(bytes, connection), {
        maxBytes: MAX_CRL_MESSAGE_BYTES,
        timeout: this.timeout,
        log: this.log,
        refuse: err => encodeCrlMessage(errorAnswer(err))
      }),
      { maxInboundStreams: this.maxInboundStreams }
    )
    this.components.spki.addEventListener('crl:add', this.onCrlAdd)
    this.components.events.addEventListener('peer:connect', this.onConnect)
    this.started = true
  }

  /** Gossipsub is started by now (libp2p starts its services together, then calls afterStart). */
  afterStart(): void {
    const { pubsub } = this.components
    // a forged or malformed CRL is neither delivered nor forwarded, and counts against its sender
    pubsub.topicValidators.set(this.topic, this.validate)
    pubsub.subscribe(this.topic)
    if (this.syncInterval > 0) {
      this.timer = setInterval(() => {
        this.syncRandomPeer()
      }, this.syncInterval)
      if (typeof this.timer === 'object' && 'unref' in this.timer) this.timer.unref()
    }
  }

  beforeStop(): void {
    const { pubsub } = this.components
    try {
      pubsub.unsubscribe(this.topic)
    } catch (err) {
      this.log('could not unsubscribe from %s - %e', this.topic, err)
    }
    pubsub.topicValidators.delete(this.topic)
  }

  async stop(): Promise<void> {
    this.started = false
    clearInterval(this.timer)
    this.components.spki.removeEventListener('crl:add', this.onCrlAdd)
    this.components.events.removeEventListener('peer:connect', this.onConnect)
    await this.components.registrar.unhandle(this.protocol)
  }

  stats(): RevocationStats {
    return { ...this.counters }
  }

  trusts(issuer: PrincipalId): boolean {
    return this.trustedIssuers().has(issuer)
  }

  /** The issuers this node trusts CRLs of, rebuilt when the SPKI epoch changes. */
  private trustedIssuers(): Set<PrincipalId> {
    const { spki } = this.components
    const epoch = spki.epoch
    if (this.trust?.epoch === epoch) return this.trust.issuers
    const issuers = new Set<PrincipalId>(spki.acl().map(e => e.principal))
    for (const signed of spki.certs()) issuers.add(signed.cert.issuer)
    this.trust = { epoch, issuers }
    return issuers
  }

  /** A CRL was kept: publish it, unless it came from the network (gossipsub forwards those). */
  private readonly onCrlAdd = (evt: SpkiEvents['crl:add']): void => {
    const { crl, summary } = evt.detail
    if (!this.started || this.applying.has(summary.hash)) return
    const bytes = encodeCrlMessage({ v: 1, type: 'crl', crl: encodeCanonical(signedCrlToSexp(crl)) })
    this.components.pubsub.publish(this.topic, bytes).then(
      () => {
        this.counters.published++
        this.log('published the CRL of %s (%d revoked)', summary.issuer, summary.count)
      },
      // no subscriber yet: peers that connect later pull it
      (err: unknown) => {
        this.log('could not publish the CRL of %s - %e', summary.issuer, err)
      }
    )
  }

  private readonly onConnect = (evt: CustomEvent<PeerId>): void => {
    // only over a direct connection: a stream to a peer reached through a relay makes libp2p dial
    // it anew for an unlimited connection (for a tab, a WebRTC dial racing the one its user asked for)
    const direct = this.components.connectionManager
      .getConnections(evt.detail)
      .some(c => c.status === 'open' && c.limits == null)
    if (direct) this.syncSoon(evt.detail)
  }

  /** Pulls from `peer` in the background, unless a pull from it is under way or too many are. */
  private syncSoon(peer: PeerId): void {
    const id = peer.toString()
    if (!this.started || this.syncing.has(id) || this.syncing.size >= this.maxConcurrentSyncs) return
    this.syncing.add(id)
    this.sync(peer)
      .then(
        applied => {
          if (applied > 0) this.log('kept %d CRLs from %p', applied, peer)
        },
        (err: unknown) => {
          this.log('pulling CRLs from %p failed - %e', peer, err)
        }
      )
      .finally(() => {
        this.syncing.delete(id)
      })
  }

  private syncRandomPeer(): void {
    const peers = this.components.connectionManager
      .getConnections()
      .filter(c => c.status === 'open' && c.limits == null)
      .map(c => c.remotePeer)
    if (peers.length > 0) this.syncSoon(peers[Math.floor(Math.random() * peers.length)])
  }

  async sync(peer: PeerId, options: AbortOptions = {}): Promise<number> {
    const id = peer.toString()
    if (!this.outbound.take(id)) {
      throw new CrlRateLimitedError(`this node pulled CRLs from ${id} too often just now: try again shortly`)
    }
    try {
      const signal = withTimeout(this.timeout, options.signal)
      const digest = await this.request(peer, { v: 1, type: 'list' }, 'digest', signal)
      const wanted = this.wanted(digest.crls)
      if (wanted.length === 0) return 0
      const answer = await this.request(peer, { v: 1, type: 'fetch', hashes: wanted }, 'crls', signal)
      const asked = new Set(wanted.map(hex))
      let applied = 0
      for (const bytes of answer.crls) {
        const hash = hex(sha256(bytes))
        // what was not asked for is dropped unread
        if (!asked.delete(hash)) {
          this.counters.rejected++
          this.log('%p sent a CRL it was not asked for', peer)
          continue
        }
        if ((await this.consider(bytes, hash)) === 'accept') {
          applied++
          this.counters.fetched++
        }
      }
      return applied
    } finally {
      this.outbound.release(id)
    }
  }

  /** Of a peer's digest, the hashes worth fetching: newer than held, of trusted issuers, not judged before. */
  private wanted(entries: DigestEntry[]): Uint8Array[] {
    const trusted = this.trustedIssuers()
    const now = spkiTime(this.now())
    const out: Uint8Array[] = []
    for (const entry of entries) {
      if (out.length >= MAX_FETCH) break
      if (!trusted.has(entry.issuer as PrincipalId) || entry.notAfter < now) continue
      const summary: CrlSummary = { ...entry, issuer: entry.issuer as PrincipalId, hash: hex(entry.hash) }
      if (this.recall(summary.hash) != null) continue
      const held = this.components.spki.crlOf(summary.issuer)?.summary
      if (held == null || compareCrls(summary, held) > 0) out.push(entry.hash)
    }
    return out
  }

  private async request<K extends 'digest' | 'crls'>(
    peer: PeerId,
    msg: CrlMessage,
    expected: K,
    signal: AbortSignal
  ): Promise<Extract<CrlMessage, { type: K }>> {
    const open: OpenStream = async (p, protocol, o) =>
      await this.components.connectionManager.openStream(p, protocol, o)
    const id = peer.toString()
    return (await requestAnswer(open, peer, this.protocol, encodeCrlMessage(msg), {
      maxBytes: MAX_CRL_MESSAGE_BYTES,
      signal,
      decode: decodeCrlMessage,
      expected,
      refused: answer =>
        answer.name === 'CrlRateLimitedError'
          ? new CrlRateLimitedError(`${id} refused to answer more just now: try again shortly`)
          : new CrlExchangeRefusedError(`${id} refused: ${answer.message}`, answer.name),
      unexpected: type => new CrlExchangeRefusedError(`${id} answered with ${type}`, 'InvalidCrlMessageError')
    })) as Extract<CrlMessage, { type: K }>
  }

  /** Answers one `list` or `fetch`, within the asking peer's budget. */
  private async answer(bytes: Uint8Array, connection: Connection): Promise<Uint8Array> {
    const id = connection.remotePeer.toString()
    const until = this.malformed.get(id)
    if (until != null && until > this.now()) {
      throw new InvalidCrlMessageError(`${id} sent a malformed request recently: refused unread`)
    }
    if (!this.inbound.take(id)) {
      this.counters.rateLimited++
      throw new CrlRateLimitedError(`${id} asked for CRLs too often: try again shortly`)
    }
    try {
      let request: CrlMessage
      try {
        request = decodeCrlMessage(bytes)
        if (request.type !== 'list' && request.type !== 'fetch') {
          throw new InvalidCrlMessageError(`expected list or fetch, got ${request.type}`)
        }
      } catch (err) {
        this.malformed.set(id, this.now() + MALFORMED_TTL)
        throw err
      }
      if (request.type === 'list') {
        const crls = this.components.spki
          .crlSummaries()
          .slice(0, MAX_DIGEST_ENTRIES)
          .map(s => ({
            issuer: s.issuer,
            notBefore: s.notBefore,
            notAfter: s.notAfter,
            count: s.count,
            hash: base16.baseDecode(s.hash)
          }))
        return encodeCrlMessage({ v: 1, type: 'digest', crls })
      }
      // as many of the CRLs asked for as fit in one answer; the rest on the next pull
      const crls: Uint8Array[] = []
      let size = 64
      for (const hash of request.hashes) {
        const held = this.components.spki.crlByHash(hex(hash))
        if (held == null) continue
        const canonical = encodeCanonical(signedCrlToSexp(held))
        if (size + canonical.length + 8 > MAX_CRL_MESSAGE_BYTES) break
        size += canonical.length + 8
        crls.push(canonical)
      }
      return encodeCrlMessage({ v: 1, type: 'crls', crls })
    } finally {
      this.inbound.release(id)
    }
  }

  /** Gossipsub's check of a topic message before it delivers or forwards it; a good CRL is kept here. */
  private readonly validate = async (from: PeerId, msg: Message): Promise<TopicValidatorResult> => {
    if (msg.type !== 'signed') {
      this.counters.rejected++
      return TopicValidatorResult.Reject
    }
    // a neighbour's budget is spent before anything is read
    const id = from.toString()
    if (!this.gossip.take(id)) {
      this.counters.rateLimited++
      return TopicValidatorResult.Ignore
    }
    let bytes: Uint8Array
    try {
      bytes = decodeCrlGossip(msg.data).crl
    } catch {
      this.counters.rejected++
      return TopicValidatorResult.Reject
    }
    const outcome = await this.consider(bytes, hex(sha256(bytes)))
    return outcome === 'accept'
      ? TopicValidatorResult.Accept
      : outcome === 'reject'
        ? TopicValidatorResult.Reject
        : TopicValidatorResult.Ignore
  }

  /** What an outcome remembered for `hash` says, if still valid. */
  private recall(hash: string): Outcome | undefined {
    const remembered = this.outcomes.get(hash)
    if (remembered == null) return undefined
    if (remembered.epoch != null && remembered.epoch !== this.components.spki.epoch) {
      this.outcomes.delete(hash)
      return undefined
    }
    return remembered.outcome
  }

  /**
   * Judges CRL bytes from the network (`hash`: their sha256, hex) and keeps the CRL if it is good:
   * cheapest checks first — remembered, held, parse, canonical, trusted issuer, fresh — and the
   * signature last. Rejected: malformed, non-canonical, forged. Ignored: untrusted, stale, expired,
   * held.
   */
  private async consider(bytes: Uint8Array, hash: string): Promise<Outcome> {
    const remember = (outcome: Outcome, epoch?: number): Outcome => {
      this.outcomes.set(hash, { outcome, epoch })
      this.counters[outcome === 'reject' ? 'rejected' : 'ignored']++
      return outcome
    }
    const remembered = this.recall(hash)
    if (remembered != null) {
      this.counters[remembered === 'reject' ? 'rejected' : 'ignored']++
      return remembered === 'accept' ? 'ignore' : remembered
    }
    const { spki } = this.components
    if (spki.crlByHash(hash) != null) {
      this.counters.ignored++
      return 'ignore'
    }
    let signed: SignedCrl
    try {
      signed = parseSignedCrl(decodeCanonical(bytes, CRL_SEXP_LIMITS))
    } catch (err) {
      this.log('a malformed CRL - %e', err)
      return remember('reject')
    }
    // one encoding per CRL, so its hash is its id everywhere
    if (hex(sha256(encodeCanonical(signedCrlToSexp(signed)))) !== hash) return remember('reject')
    const epoch = spki.epoch
    if (!this.trusts(signed.crl.issuer)) return remember('ignore', epoch)
    const summary = crlSummary(signed, hash)
    const held = spki.crlOf(summary.issuer)?.summary
    if (summary.notAfter < spkiTime(this.now()) || (held != null && compareCrls(summary, held) <= 0)) {
      return remember('ignore')
    }
    this.counters.verified++
    try {
      await verifyCrl(signed)
    } catch (err) {
      this.log('a forged CRL of %s - %e', signed.crl.issuer, err)
      return remember('reject')
    }
    this.applying.add(hash)
    try {
      await spki.addCrl(signed)
    } catch (err) {
      // a newer one was kept meanwhile, or the store is full
      this.log('did not keep a CRL of %s - %e', signed.crl.issuer, err)
      return remember('ignore')
    } finally {
      this.applying.delete(hash)
    }
    this.outcomes.set(hash, { outcome: 'accept' })
    this.counters.applied++
    this.log('kept a CRL of %s revoking %d', summary.issuer, summary.count)
    return 'accept'
  }
}

export function revocations(init: RevocationsInit = {}): (components: RevocationsComponents) => Revocations {
  return components => new RevocationsService(components, init)
}
