/**
 * The SPKI service: this node's certificate store, its ACL (the roots it trusts, and for what),
 * its CRLs, the `/cyberspace/spki/1.0.0` protocol (peers ask it to prove a principal's authority
 * and it answers from its store), and `authorize(principal, tag)`, the check every protocol that
 * needs authority runs on the receiving side.
 *
 * An ACL entry (root, tag) authorizes the root itself for tag and anything a chain from the root
 * grants, within tag. Certificates, ACL entries and CRLs persist in the node's datastore.
 *
 * @example
 * await node.spki.addAclEntry(clusterKey, parseTag(parseAdvanced('(cyberspace)')))
 * const grant = await node.spki.prove(peerId, parseTag(parseAdvanced('(cyberspace member)')))
 * await node.spki.authorize(principal, tag) // throws ChainNotFoundError, …
 *
 * Authorization never makes unbounded network work: `authorizeOrProve` asks only peers already
 * connected (the principal's node, the given providers), at most two, within a per-peer budget,
 * and remembers refusals, by prover, until the ACL, the CRLs or the store change (`epoch`): one
 * peer's refusal never stops another from being asked. Inbound proof requests are bounded per
 * peer the same way.
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { base16 } from 'multiformats/bases/base16'
import { Key } from 'interface-datastore'
import { TypedEventEmitter } from 'main-event'
import {
  decodeSpkiMessage,
  encodeSpkiMessage,
  MAX_CERT_BYTES,
  MAX_PROOF_CERTS,
  MAX_ROOTS,
  MAX_SPKI_MESSAGE_BYTES,
  MAX_TAG_BYTES,
  SPKI_PROTOCOL
} from '../../protocols/spki/codec.ts'
import { errorAnswer } from '../../protocols/wire.ts'
import { isPrincipalId, peerIdFromPrincipal, principalFromPeerId } from '../crypto/principal.ts'
import { requestAnswer, serveRequests, withTimeout } from '../network/rpc.ts'
import { RecentMap } from '../recent-map.ts'
import {
  parseSignedCert,
  signCert,
  signedCertToSexp,
  spkiTime,
  spkiTimeMs,
  verifyCert,
  VerifiedCertCache
} from './cert.ts'
import {
  compareCrls,
  CRL_SEXP_LIMITS,
  crlSummary,
  MAX_REVOKED,
  parseSignedCrl,
  revocationIndex,
  signCrl,
  signedCrlToSexp,
  verifyCrl
} from './crl.ts'
import { discoverChain, proofValidityMs, revokedLinkError, verifyProof } from './discover.ts'
import {
  ChainNotFoundError,
  ProofRateLimitedError,
  ProofRefusedError,
  ProverNotConnectedError,
  StaleCrlError
} from './errors.ts'
import { PeerBudget } from '../peer-budget.ts'
import { decodeCanonical, encodeCanonical, toAdvanced } from './sexp.ts'
import { normalTagHandle, normalTagKey, parseTag, tagImplies, tagToSexp } from './tag.ts'
import { ReductionCache } from './reduce.ts'
import { HotCache } from './hot-cache.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Cert, SignedCert } from './cert.ts'
import type { CrlSummary, SignedCrl } from './crl.ts'
import type { DiscoveredGrant, DiscoverOptions, Proof } from './discover.ts'
import type { Tag } from './tag.ts'
import type { OpenStream } from '../network/rpc.ts'
import type {
  AbortOptions,
  ComponentLogger,
  Connection,
  Logger,
  PeerId,
  PrivateKey,
  Startable
} from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import type { Datastore } from 'interface-datastore'
import type { TypedEventTarget } from 'main-event'

export interface SpkiInit {
  protocol?: string
  /** Concurrent inbound proof requests per connection; default 4. */
  maxInboundStreams?: number
  /** Proof requests this node sends one peer per minute (a token bucket of that size); default 30. */
  maxProofRequestsPerMinute?: number
  /** Proof requests this node has in flight to one peer at once; default 2. */
  maxProofRequestsInFlight?: number
  /** Proof requests this node answers for one peer per minute (a token bucket of that size); default 60. */
  maxProofAnswersPerMinute?: number
  /** How long a peer's refusal to prove (principal, tag) is remembered, in ms, unless `epoch` changes first; default 5 min. */
  refusalTtl?: number
  /** How long a failure to reach the peers asked is remembered, in ms; default 30 s. */
  failureTtl?: number
  /** The clock of rate limits and remembered refusals (not of certificate validity); default Date.now. */
  now?: () => number
  /** How long a request or answer may take, in ms; default 10 s. */
  timeout?: number
  /** Most certificates kept; default 10 000. */
  maxStoredCerts?: number
  /** Longest chain accepted or searched; default 8. */
  maxChainLength?: number
  /** How long a CRL this node signs stays current, in ms; default 7 days. It is re-signed at half. */
  crlLifetime?: number
}

export interface SpkiComponents {
  peerId: PeerId
  privateKey: PrivateKey
  registrar: Registrar
  connectionManager: ConnectionManager
  datastore: Datastore
  logger: ComponentLogger
}

export interface AclEntry {
  principal: PrincipalId
  tag: Tag
}

export interface SpkiEvents {
  /**
   * A CRL was kept: signed here (`revoke`, or its re-signing), imported (`addCrl`, `addAll`) or
   * received. It replaced any older CRL of its issuer. Not fired for a CRL already held.
   */
  'crl:add': CustomEvent<{ crl: SignedCrl; summary: CrlSummary }>
  /**
   * `epoch` moved: the ACL, the CRLs or the store changed, or a CRL started or stopped being
   * current (then at that moment, while the service runs). Fired once, after the current task, for
   * any number of changes in it; a cache keyed by epoch can drop its entries, a holder of a
   * decision can check it again, instead of polling `epoch`.
   */
  epoch: CustomEvent<{ epoch: number }>
}

export interface Spki extends TypedEventTarget<SpkiEvents> {
  /** This node's principal (its libp2p key). */
  readonly principal: PrincipalId
  /**
   * Increases whenever the ACL, the CRLs or the certificate store change, and when a CRL starts
   * or stops being current. A caller that caches a decision keys it by epoch (and by the grant's
   * `validity`), so no cached decision outlives a change.
   */
  readonly epoch: number
  /** Verifies a certificate's signature and keeps it; a forged one never enters the store. */
  addCert(signed: SignedCert): Promise<void>
  certs(): SignedCert[]
  /** Verifies every certificate and CRL first, then keeps them all: a bad one means none is kept. */
  addAll(items: { certs: SignedCert[]; crls: SignedCrl[] }): Promise<void>
  /** Signs a certificate whose issuer is this node's principal, and keeps it. */
  issue(cert: Cert): Promise<SignedCert>
  /** Sets the tag `principal` is trusted for as a root (replacing any earlier entry). */
  addAclEntry(principal: PrincipalId, tag: Tag): Promise<void>
  /** Removes `principal` from the ACL; false if it was not there. */
  removeAclEntry(principal: PrincipalId): Promise<boolean>
  acl(): AclEntry[]
  /**
   * Verifies and keeps a CRL; consulted by every authorization. A CRL replaces its issuer's older
   * one (`compareCrls`); one already held is a no-op; one older than held, or already expired,
   * throws StaleCrlError. Expired CRLs are dropped.
   */
  addCrl(signed: SignedCrl): Promise<void>
  crls(): SignedCrl[]
  /** What identifies and orders each CRL held (at most one per issuer), for comparing with a peer's. */
  crlSummaries(): CrlSummary[]
  /** The CRL held whose hash (`crlHash`, hex) is `hash`, if any. */
  crlByHash(hash: string): SignedCrl | undefined
  /** The CRL held from `issuer`, with its summary, if any. */
  crlOf(issuer: PrincipalId): { crl: SignedCrl; summary: CrlSummary } | undefined
  /**
   * Revokes certificates this node issued, by the sha256 of their canonical form (`certHash`):
   * signs a CRL listing them and every earlier revocation, keeps it current, and returns it for
   * distribution to the verifiers that should know.
   */
  revoke(hashes: Uint8Array[]): Promise<SignedCrl>
  /** Whether `principal` holds `tag` by this node's ACL, from `proof` or else from the local store. */
  authorize(
    principal: PrincipalId,
    tag: Tag,
    options?: AbortOptions & { proof?: Proof; at?: number }
  ): Promise<DiscoveredGrant>
  /** Asks `peer` to prove that it (or `principal`) holds `tag`, and checks the proof against this node's ACL. */
  prove(peer: PeerId, tag: Tag, options?: AbortOptions & { principal?: PrincipalId }): Promise<DiscoveredGrant>
  /**
   * `authorize` from the local store (a local miss is remembered briefly at the current epoch);
   * else a chain a peer showed earlier, checked again now; else a proof asked of at most two peers
   * that are already connected, `principal`'s own node, then `providers`, skipping those whose
   * refusal is remembered at the current epoch; a remembered refusal is thrown again only when
   * every candidate has one. It never dials and never searches the DHT. A refusal throws `refuse(local, remote)` (default: the remote error):
   * ProverNotConnectedError when no such peer is connected, ProofRefusedError or the proof's own
   * error when one answered. ProofRateLimitedError (retryable) is thrown as it is.
   */
  authorizeOrProve(principal: PrincipalId, tag: Tag, options?: AuthorizeOrProveOptions): Promise<DiscoveredGrant>
}

export interface AuthorizeOrProveOptions extends AbortOptions {
  /** Limit on asking peers for a proof, in ms, counted from when the local check fails; default the service's timeout. */
  timeout?: number
  /** The error to throw when neither the local store nor a peer shows a chain. */
  refuse?: (local: Error, remote: Error) => Error
  /**
   * Peers that may hold the principal's chain (e.g. the peer that relayed its event); asked after
   * the principal's own node, and only if connected.
   */
  providers?: PeerId[]
  /** The moment (ms) the chain must be valid at: when the act it authorizes was done (default now). */
  at?: number
}

const CERTS_PREFIX = '/cyberspace/spki/certs/'
const ACL_PREFIX = '/cyberspace/spki/acl/'
const CRLS_PREFIX = '/cyberspace/spki/crls/'
const MAX_ACL_ENTRIES = 256
const MAX_CRLS = 1024
/** Most peers one authorizeOrProve asks, and most providers looked at. */
const MAX_PEERS_ASKED = 2
const MAX_PROVIDERS_CONSIDERED = 16
/** Most remembered refusals, local misses, and most remembered proofs. */
const MAX_REMEMBERED = 4096
/** How long a local miss is remembered at its epoch: time alone can make a certificate valid. */
const LOCAL_MISS_TTL = 30_000
/** How long a peer's (or this node's) rate limit for a (principal, tag) is remembered. */
const RATE_LIMITED_TTL = 2_000

/** Most grants remembered (see Decided). */
const MAX_DECIDED = 4096

/**
 * A grant `authorize` decided at `epoch`: every certificate of its proof is valid from `from` to
 * `until` (ms). Any change that could alter the decision — the ACL, the certificate store, a CRL
 * kept, dropped, or starting or stopping being current — starts a new epoch, so an entry is used
 * only while nothing it rests on changed, and only at moments its certificates are valid.
 */
interface Decided {
  epoch: number
  grant: DiscoveredGrant
  from: number
  until: number
}

/**
 * What a decision is remembered by: the principal, the tag's normal form and, for a proof shown,
 * the ids of its certificates (sha256 over signed bytes and signature), so a grant is never
 * reachable for another principal, another tag or another proof. The tag and the certificates
 * are written as their short handles (normalTagHandle, signedCertHandle): a short key is faster
 * to look up, and no handle ever stands for two tags or two certificates.
 */
function decisionKey(principal: PrincipalId, tag: Tag, proof?: Proof): string {
  const asked = `${principal}~${normalTagHandle(tag)}`
  return proof == null ? asked : `${asked} ${ReductionCache.key(proof.chain)}/${ReductionCache.key(proof.names)}`
}

/** A refusal to remember, and until when (every one is forgotten when the epoch changes). */
interface Remembered {
  until: number
  error: Error
  /** For a prover's failure: UNREACHABLE, REFUSED or RATE_LIMITED. */
  rank: number
}

/** `promise`, or the rejection of `signal`, whichever comes first; `promise` runs on regardless. */
async function raced<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal == null) return await promise
  signal.throwIfAborted()
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', onAbort)
    })
  })
}

/**
 * Chains peers showed, by principal and then by (principal, tag) key, at most MAX_REMEMBERED in
 * all, the least recently used forgotten first: a principal's chains are one map access away.
 */
class ShownProofs {
  private readonly byPrincipal = new Map<PrincipalId, Map<string, Proof>>()
  /** The principal of each key, in order of use. */
  private readonly recent = new RecentMap<string, PrincipalId>(MAX_REMEMBERED, {
    onEvict: (key, principal) => {
      this.unindex(principal, key)
    }
  })

  /** The chain shown for `key`, which becomes the most recently used. */
  get(key: string): Proof | undefined {
    const principal = this.recent.get(key)
    return principal == null ? undefined : this.byPrincipal.get(principal)?.get(key)
  }

  set(principal: PrincipalId, key: string, proof: Proof): void {
    let proofs = this.byPrincipal.get(principal)
    if (proofs == null) {
      proofs = new Map()
      this.byPrincipal.set(principal, proofs)
    }
    proofs.set(key, proof)
    this.recent.set(key, principal)
  }

  delete(key: string): void {
    const principal = this.recent.get(key)
    if (principal == null) return
    this.recent.delete(key)
    this.unindex(principal, key)
  }

  /** Every certificate of the chains shown for `principal`. */
  certs(principal: PrincipalId): SignedCert[] {
    const out: SignedCert[] = []
    for (const proof of this.byPrincipal.get(principal)?.values() ?? []) out.push(...proof.chain, ...proof.names)
    return out
  }

  private unindex(principal: PrincipalId, key: string): void {
    const proofs = this.byPrincipal.get(principal)
    proofs?.delete(key)
    if (proofs?.size === 0) this.byPrincipal.delete(principal)
  }
}

const tagText = (tag: Tag): string => toAdvanced(tagToSexp(tag))

/**
 * How much a prover's failure says about (principal, tag), least first: it could not be reached;
 * it refused or showed a bad chain; it was rate limited (undecided: try again shortly).
 */
const UNREACHABLE = 1
const REFUSED = 2
const RATE_LIMITED = 3

/** Of two failures, the one that says most. */
function worse(a: Remembered | undefined, b: Remembered): Remembered {
  return a == null || b.rank > a.rank ? b : a
}

class SpkiService extends TypedEventEmitter<SpkiEvents> implements Spki, Startable {
  readonly principal: PrincipalId
  private readonly components: SpkiComponents
  private readonly log: Logger
  private readonly protocol: string
  private readonly maxInboundStreams: number
  private readonly timeout: number
  private readonly maxStoredCerts: number
  private readonly maxChainLength: number
  private readonly store = new Map<string, SignedCert>()
  private readonly aclEntries = new Map<PrincipalId, AclEntry>()
  private readonly crlStore = new Map<string, SignedCrl>()
  /** The CRL held from each issuer, by its summary. */
  private readonly crlIndex = new Map<PrincipalId, CrlSummary>()
  /** CRL stores and deletions, one at a time, so "is it newer" and "keep it" see the same store. */
  private crlQueue: Promise<unknown> = Promise.resolve()
  private readonly cache = new VerifiedCertCache()
  private readonly crlLifetime: number
  private refreshTimer?: ReturnType<typeof setInterval>
  private readonly now: () => number
  private readonly refusalTtl: number
  private readonly failureTtl: number
  private readonly outbound: PeerBudget
  private readonly inbound: PeerBudget
  private epochCount = 0
  /** When a stored CRL next starts or stops being current (ms), which changes decisions too. */
  private nextCrlChange = Infinity
  /** Moves the epoch at nextCrlChange, while the service runs (reading `epoch` moves it too). */
  private crlChangeTimer?: ReturnType<typeof setTimeout>
  /** Whether an `epoch` event is queued for the end of the current task. */
  private epochEventQueued = false
  private running = false
  /** Refusals by (principal, tag, prover peer), valid until they lapse or the epoch changes. */
  private readonly refusals = new RecentMap<string, Remembered>(MAX_REMEMBERED)
  /** Local misses by (principal, tag): the local check's error, valid until it lapses or the epoch changes. */
  private readonly localMisses = new RecentMap<string, Remembered>(MAX_REMEMBERED)
  /** Chains peers showed, by (principal, tag): checked again at each use, so never stale. */
  private readonly shownProofs = new ShownProofs()
  /** Proof requests under way, by (epoch, principal, tag, peers asked): concurrent callers that would ask the same peers share one. */
  private readonly asking = new Map<string, Promise<DiscoveredGrant>>()
  /** Grants decided, by (principal, tag, proof shown): used at the epoch they were decided at, within their proof's validity. */
  private readonly decided = new HotCache<string, Decided>(MAX_DECIDED)
  /** Chains shown in proofs and reduced, so one shown again after a new epoch is a lookup (revocation still checked). */
  private readonly reductions = new ReductionCache()
  /** The index of current revocations, built at `epoch`. */
  private revocations?: { epoch: number; check: (signed: SignedCert) => void }

  constructor(components: SpkiComponents, init: SpkiInit) {
    super()
    this.components = components
    this.log = components.logger.forComponent('cyberspace:spki')
    this.principal = principalFromPeerId(components.peerId)
    this.protocol = init.protocol ?? SPKI_PROTOCOL
    this.maxInboundStreams = init.maxInboundStreams ?? 4
    this.now = init.now ?? Date.now
    this.refusalTtl = init.refusalTtl ?? 300_000
    this.failureTtl = init.failureTtl ?? 30_000
    this.outbound = new PeerBudget(init.maxProofRequestsPerMinute ?? 30, init.maxProofRequestsInFlight ?? 2, this.now)
    this.inbound = new PeerBudget(init.maxProofAnswersPerMinute ?? 60, this.maxInboundStreams, this.now)
    this.timeout = init.timeout ?? 10_000
    this.maxStoredCerts = init.maxStoredCerts ?? 10_000
    this.maxChainLength = init.maxChainLength ?? 8
    this.crlLifetime = init.crlLifetime ?? 7 * 24 * 3_600_000
  }

  readonly [Symbol.toStringTag] = 'cyberspace/spki'

  async start(): Promise<void> {
    this.running = true
    await this.load()
    this.watchCrlChange()
    await this.refreshOwnCrl()
    // every request gets an answer, a refusal included (also of one too large or too slow to read)
    const handler = serveRequests(async (bytes, connection) => await this.answerWithin(bytes, connection), {
      maxBytes: MAX_SPKI_MESSAGE_BYTES,
      timeout: this.timeout,
      log: this.log,
      refuse: err => encodeSpkiMessage(errorAnswer(err))
    })
    await this.components.registrar.handle(this.protocol, handler, { maxInboundStreams: this.maxInboundStreams })
    // a revocation lapses when its CRL expires: re-sign ours well before that
    this.refreshTimer = setInterval(
      () => {
        this.refreshOwnCrl().catch((err: unknown) => {
          this.log.error("could not re-sign this node's CRL - %e", err)
        })
      },
      Math.min(3_600_000, Math.max(1000, this.crlLifetime / 8))
    )
    if (typeof this.refreshTimer === 'object' && 'unref' in this.refreshTimer) this.refreshTimer.unref()
  }

  async stop(): Promise<void> {
    this.running = false
    clearInterval(this.refreshTimer)
    clearTimeout(this.crlChangeTimer)
    this.crlChangeTimer = undefined
    await this.components.registrar.unhandle(this.protocol)
  }

  /** Reads the persisted store, ACL and CRLs; entries that no longer parse or verify are skipped. */
  private async load(): Promise<void> {
    for await (const { key, value } of this.components.datastore.query({
      prefix: CERTS_PREFIX,
      limit: this.maxStoredCerts
    })) {
      try {
        const signed = parseSignedCert(decodeCanonical(value, { maxBytes: MAX_CERT_BYTES }))
        await verifyCert(signed, this.cache)
        this.store.set(key.baseNamespace(), signed)
      } catch (err) {
        this.log.error('skipping stored certificate %s - %e', key.toString(), err)
      }
    }
    for await (const { key, value } of this.components.datastore.query({
      prefix: ACL_PREFIX,
      limit: MAX_ACL_ENTRIES
    })) {
      const principal = key.baseNamespace()
      try {
        if (!isPrincipalId(principal)) throw new Error('not a principal id')
        this.aclEntries.set(principal, {
          principal,
          tag: parseTag(decodeCanonical(value, { maxBytes: MAX_TAG_BYTES }))
        })
      } catch (err) {
        this.log.error('skipping ACL entry %s - %e', key.toString(), err)
      }
    }
    for await (const { key, value } of this.components.datastore.query({ prefix: CRLS_PREFIX, limit: MAX_CRLS })) {
      try {
        const signed = parseSignedCrl(decodeCanonical(value, CRL_SEXP_LIMITS))
        await verifyCrl(signed)
        const summary = crlSummary(signed, key.baseNamespace())
        const held = this.crlIndex.get(signed.crl.issuer)
        if (held != null && compareCrls(held, summary) > 0) {
          await this.components.datastore.delete(key)
          continue
        }
        if (held != null) {
          await this.components.datastore.delete(new Key(CRLS_PREFIX + held.hash))
          this.crlStore.delete(held.hash)
        }
        this.crlStore.set(summary.hash, signed)
        this.crlIndex.set(signed.crl.issuer, summary)
      } catch (err) {
        this.log.error('skipping stored CRL %s - %e', key.toString(), err)
      }
    }
    this.changed()
  }

  get epoch(): number {
    // a CRL that became current or lapsed changes decisions as surely as one added
    if (Date.now() >= this.nextCrlChange) this.changed()
    return this.epochCount
  }

  /** Something decisions depend on changed: a new epoch, and every remembered refusal forgotten. */
  private changed(): void {
    this.epochCount++
    this.refusals.clear()
    this.localMisses.clear()
    this.decided.clear()
    const now = Date.now()
    let next = Infinity
    for (const signed of this.crlStore.values()) {
      // current from not-before, until the second after not-after (SPKI times are whole seconds)
      for (const at of [spkiTimeMs(signed.crl.validity.notBefore), spkiTimeMs(signed.crl.validity.notAfter) + 1000]) {
        if (at > now && at < next) next = at
      }
    }
    this.nextCrlChange = next
    this.watchCrlChange()
    if (!this.epochEventQueued) {
      this.epochEventQueued = true
      queueMicrotask(() => {
        this.epochEventQueued = false
        this.safeDispatchEvent('epoch', { detail: { epoch: this.epochCount } })
      })
    }
  }

  /** Arms the timer that moves the epoch when the next CRL starts or stops being current. */
  private watchCrlChange(): void {
    clearTimeout(this.crlChangeTimer)
    this.crlChangeTimer = undefined
    if (!this.running || this.nextCrlChange === Infinity) return
    // setTimeout holds at most 2^31 - 1 ms; a later change is armed again when this one fires
    const wait = Math.min(2 ** 31 - 1, Math.max(0, this.nextCrlChange - Date.now()))
    this.crlChangeTimer = setTimeout(() => {
      this.crlChangeTimer = undefined
      if (Date.now() >= this.nextCrlChange) this.changed()
      else this.watchCrlChange()
    }, wait)
    if (typeof this.crlChangeTimer === 'object' && 'unref' in this.crlChangeTimer) this.crlChangeTimer.unref()
  }

  async addCert(signed: SignedCert): Promise<void> {
    await verifyCert(signed, this.cache)
    await this.storeCert(signed)
  }

  async addAll({ certs, crls }: { certs: SignedCert[]; crls: SignedCrl[] }): Promise<void> {
    for (const signed of certs) await verifyCert(signed, this.cache)
    for (const signed of crls) await verifyCrl(signed)
    // of several CRLs of one issuer only the newest counts; one older than held refuses them all
    const newest = new Map<PrincipalId, { crl: SignedCrl; summary: CrlSummary }>()
    for (const crl of crls) {
      const summary = crlSummary(crl)
      const other = newest.get(crl.crl.issuer)
      if (other == null || compareCrls(summary, other.summary) > 0) newest.set(crl.crl.issuer, { crl, summary })
    }
    for (const { summary } of newest.values()) this.checkNewer(summary)
    for (const signed of certs) await this.storeCert(signed)
    for (const { crl, summary } of newest.values()) await this.storeCrl(crl, summary)
  }

  /** Keeps a certificate whose signature is known to be good. */
  private async storeCert(signed: SignedCert): Promise<void> {
    const bytes = encodeCanonical(signedCertToSexp(signed))
    const id = base16.baseEncode(sha256(bytes))
    if (this.store.has(id)) return
    if (this.store.size >= this.maxStoredCerts)
      throw new RangeError(`the certificate store holds at most ${this.maxStoredCerts}`)
    await this.components.datastore.put(new Key(CERTS_PREFIX + id), bytes)
    this.store.set(id, signed)
    this.changed()
  }

  certs(): SignedCert[] {
    return [...this.store.values()]
  }

  async addAclEntry(principal: PrincipalId, tag: Tag): Promise<void> {
    if (!isPrincipalId(principal)) throw new TypeError('an ACL entry names a principal id')
    if (!this.aclEntries.has(principal) && this.aclEntries.size >= MAX_ACL_ENTRIES) {
      throw new RangeError(`the ACL holds at most ${MAX_ACL_ENTRIES} entries`)
    }
    await this.components.datastore.put(new Key(ACL_PREFIX + principal), encodeCanonical(tagToSexp(tag)))
    this.aclEntries.set(principal, { principal, tag })
    this.changed()
  }

  async removeAclEntry(principal: PrincipalId): Promise<boolean> {
    if (!this.aclEntries.has(principal)) return false
    await this.components.datastore.delete(new Key(ACL_PREFIX + principal))
    this.aclEntries.delete(principal)
    this.changed()
    return true
  }

  acl(): AclEntry[] {
    return [...this.aclEntries.values()]
  }

  async addCrl(signed: SignedCrl): Promise<void> {
    await verifyCrl(signed)
    await this.storeCrl(signed)
  }

  /** Throws StaleCrlError unless `summary` is current and newer than its issuer's CRL held (or is that very CRL). */
  private checkNewer(summary: CrlSummary): void {
    if (summary.notAfter < spkiTime(Date.now())) {
      throw new StaleCrlError(`the CRL of ${summary.issuer} expired at ${summary.notAfter}`)
    }
    const held = this.crlIndex.get(summary.issuer)
    if (held != null && compareCrls(summary, held) < 0) {
      throw new StaleCrlError(
        `this node holds a newer CRL of ${summary.issuer} (from ${held.notBefore}, listing ${held.count})`
      )
    }
  }

  /**
   * Keeps a CRL whose signature is known to be good, replacing its issuer's older one; one already
   * held is a no-op. `replace` skips the newer check (this node's own CRL, just signed).
   */
  private async storeCrl(signed: SignedCrl, summary = crlSummary(signed), replace = false): Promise<void> {
    const run = this.crlQueue.then(async () => {
      await this.dropExpiredCrls()
      if (this.crlStore.has(summary.hash)) return false
      if (!replace) this.checkNewer(summary)
      const held = this.crlIndex.get(summary.issuer)
      if (held == null && this.crlStore.size >= MAX_CRLS) {
        throw new RangeError(`at most ${MAX_CRLS} current CRLs are kept`)
      }
      await this.components.datastore.put(new Key(CRLS_PREFIX + summary.hash), encodeCanonical(signedCrlToSexp(signed)))
      this.crlStore.set(summary.hash, signed)
      this.crlIndex.set(summary.issuer, summary)
      if (held != null) {
        this.crlStore.delete(held.hash)
        await this.components.datastore.delete(new Key(CRLS_PREFIX + held.hash))
      }
      this.changed()
      return true
    })
    this.crlQueue = run.catch(() => {})
    if (await run) this.safeDispatchEvent('crl:add', { detail: { crl: signed, summary } })
  }

  crls(): SignedCrl[] {
    return [...this.crlStore.values()]
  }

  crlSummaries(): CrlSummary[] {
    return [...this.crlIndex.values()]
  }

  crlByHash(hash: string): SignedCrl | undefined {
    return this.crlStore.get(hash)
  }

  crlOf(issuer: PrincipalId): { crl: SignedCrl; summary: CrlSummary } | undefined {
    const summary = this.crlIndex.get(issuer)
    const crl = summary == null ? undefined : this.crlStore.get(summary.hash)
    return crl == null || summary == null ? undefined : { crl, summary }
  }

  private async dropExpiredCrls(): Promise<void> {
    const now = spkiTime(Date.now())
    let deleted = false
    try {
      for (const [issuer, summary] of this.crlIndex) {
        if (summary.notAfter >= now) continue
        await this.components.datastore.delete(new Key(CRLS_PREFIX + summary.hash))
        this.crlStore.delete(summary.hash)
        this.crlIndex.delete(issuer)
        deleted = true
      }
    } finally {
      // one new epoch for the lot
      if (deleted) this.changed()
    }
  }

  /** The 32-byte Ed25519 secret of this node's key (libp2p keeps seed || public key). */
  private secretKey(): Uint8Array {
    const key = this.components.privateKey
    if (key.type !== 'Ed25519') throw new TypeError(`this node's key is ${key.type}; SPKI needs Ed25519`)
    return key.raw.subarray(0, 32)
  }

  async issue(cert: Cert): Promise<SignedCert> {
    const signed = await signCert(cert, this.secretKey())
    await this.addCert(signed)
    return signed
  }

  /** The newest CRL this node signed, if any. */
  private ownCrl(): SignedCrl | undefined {
    return this.crlOf(this.principal)?.crl
  }

  async revoke(hashes: Uint8Array[]): Promise<SignedCrl> {
    if (hashes.some(h => !(h instanceof Uint8Array) || h.length !== 32)) {
      throw new TypeError('a revoked certificate is named by its 32-byte sha256')
    }
    return await this.signOwnCrl(hashes)
  }

  /** Signs a fresh CRL with every revocation so far plus `added`, replacing the previous one. */
  private async signOwnCrl(added: Uint8Array[]): Promise<SignedCrl> {
    const previous = this.ownCrl()
    const revoked = new Map<string, Uint8Array>()
    for (const h of [...(previous?.crl.revoked ?? []), ...added]) revoked.set(base16.baseEncode(h), h)
    if (revoked.size > MAX_REVOKED) throw new RangeError(`a CRL lists at most ${MAX_REVOKED} certificates`)
    const now = Date.now()
    // a second's slack back, so a verifier whose clock is slightly behind already accepts it
    const validity = { notBefore: spkiTime(now - 1000), notAfter: spkiTime(now + this.crlLifetime) }
    const signed = await signCrl({ issuer: this.principal, revoked: [...revoked.values()], validity }, this.secretKey())
    // it replaces this node's earlier CRL even within the same second
    await this.storeCrl(signed, crlSummary(signed), true)
    return signed
  }

  /** Re-signs this node's CRL once half its lifetime has passed, so its revocations never lapse. */
  private async refreshOwnCrl(): Promise<void> {
    const own = this.ownCrl()
    if (own == null) return
    const halfway = spkiTimeMs(own.crl.validity.notAfter) - this.crlLifetime / 2
    if (Date.now() >= halfway) await this.signOwnCrl([])
  }

  async authorize(
    principal: PrincipalId,
    tag: Tag,
    options: AbortOptions & { proof?: Proof; at?: number } = {}
  ): Promise<DiscoveredGrant> {
    options.signal?.throwIfAborted()
    // a grant decided before, at this epoch and valid at `at`, is decided again by a lookup
    const epoch = this.epoch
    const at = options.at ?? Date.now()
    const key = decisionKey(principal, tag, options.proof)
    const decided = this.decided.get(key)
    if (decided != null && decided.epoch === epoch && at >= decided.from && at <= decided.until) {
      return { ...decided.grant }
    }
    const grant = await this.decide(principal, tag, options)
    // a change while deciding (a CRL, the ACL, the store) leaves the decision uncached
    if (this.epoch === epoch) {
      this.decided.set(key, { epoch, grant: { ...grant }, ...proofValidityMs(grant.proof) })
    }
    return grant
  }

  /** `authorize` without the remembered decisions. */
  private async decide(
    principal: PrincipalId,
    tag: Tag,
    options: AbortOptions & { proof?: Proof; at?: number }
  ): Promise<DiscoveredGrant> {
    const roots = this.rootsFor(tag)
    const own = this.aclEntries.get(principal)
    if (own != null && roots.includes(principal)) return { proof: { chain: [], names: [] }, tag: own.tag, validity: {} }
    if (roots.length === 0) {
      throw new ChainNotFoundError(
        `no ACL root of this node covers ${tagText(tag)}, so nothing grants it to ${principal}: trust a root for it with \`cyberspace acl add\``
      )
    }
    const opts = { ...this.discoverOptions(), ...(options.at !== undefined ? { now: options.at } : {}) }
    if (options.proof != null) return await verifyProof(options.proof, roots, principal, tag, opts)
    const pool = this.certs()
    try {
      return await discoverChain(pool, roots, principal, tag, { ...opts, verified: true })
    } catch (err) {
      if ((err as Error).name !== 'ChainNotFoundError') throw err
      // a chain that exists but runs through a revoked certificate is reported as revoked
      const revoked = await revokedLinkError(pool, roots, principal, tag, { ...opts, verified: true })
      if (revoked != null) throw revoked
      throw new ChainNotFoundError(
        `no chain grants ${principal} ${tagText(tag)} from this node's ACL roots: grant it with \`cyberspace acl add\` or \`cyberspace cert issue\``
      )
    }
  }

  /** The ACL roots whose entries cover `tag`: the chains that may grant it start there. */
  private rootsFor(tag: Tag): PrincipalId[] {
    return this.acl()
      .filter(e => tagImplies(e.tag, tag))
      .map(e => e.principal)
  }

  /** Discovery settings; CRLs were verified when they were added, so only indexing happens here. Chains found in the store need no signature checks: only verified certificates enter it. */
  private discoverOptions(): DiscoverOptions {
    // the index of current revocations changes only with the epoch (a CRL kept, dropped, or
    // starting or stopping being current), so it is built once per epoch
    const epoch = this.epoch
    if (this.revocations?.epoch !== epoch) {
      this.revocations = { epoch, check: revocationIndex(this.crlStore.values()) }
    }
    return {
      revocation: this.revocations.check,
      cache: this.cache,
      reductions: this.reductions,
      maxLength: this.maxChainLength
    }
  }

  async prove(
    peer: PeerId,
    tag: Tag,
    options: AbortOptions & { principal?: PrincipalId } = {}
  ): Promise<DiscoveredGrant> {
    const principal = options.principal ?? principalFromPeerId(peer)
    const proof = await this.requestProof(peer, principal, tag, { signal: options.signal, dial: true })
    return await this.authorize(principal, tag, { ...options, proof })
  }

  /** An open connection to `peer` that can carry the protocol (a relayed, limited one cannot), if any. */
  private connectionTo(peer: PeerId): Connection | undefined {
    return this.components.connectionManager.getConnections(peer).find(c => c.status === 'open' && c.limits == null)
  }

  /**
   * Asks `peer` for a chain granting `tag` to `principal` from this node's roots, within this
   * node's per-peer budget. With `dial` false, only over a connection already open.
   */
  private async requestProof(
    peer: PeerId,
    principal: PrincipalId,
    tag: Tag,
    options: AbortOptions & { dial: boolean }
  ): Promise<Proof> {
    const roots = this.rootsFor(tag).slice(0, MAX_ROOTS)
    if (roots.length === 0) {
      throw new ChainNotFoundError(
        `no ACL root of this node covers ${tagText(tag)}: trust a root for it with \`cyberspace acl add\``
      )
    }
    const id = peer.toString()
    if (!this.outbound.take(id)) {
      throw new ProofRateLimitedError(`this node asked ${id} for proofs too often just now: try again shortly`)
    }
    const open: OpenStream = options.dial
      ? async (p, protocol, o) => await this.components.connectionManager.openStream(p, protocol, o)
      : async (p, protocol, o) => {
          const connection = this.connectionTo(p)
          if (connection == null) throw new ProverNotConnectedError(`${p.toString()} is no longer connected`)
          return await connection.newStream(protocol, o)
        }
    try {
      const reply = await requestAnswer(
        open,
        peer,
        this.protocol,
        encodeSpkiMessage({ v: 1, type: 'prove', roots, principal, tag: encodeCanonical(tagToSexp(tag)) }),
        {
          maxBytes: MAX_SPKI_MESSAGE_BYTES,
          signal: withTimeout(this.timeout, options.signal),
          decode: decodeSpkiMessage,
          expected: 'proof',
          refused: answer =>
            answer.name === 'ProofRateLimitedError'
              ? new ProofRateLimitedError(`${id} refused to prove more just now: try again shortly`)
              : new ProofRefusedError(`${id} refused: ${answer.message}`, answer.name),
          unexpected: type => new ProofRefusedError(`${id} answered with ${type}`, 'InvalidSpkiMessageError')
        }
      )
      const certs = reply.certs.map(bytes => parseSignedCert(decodeCanonical(bytes, { maxBytes: MAX_CERT_BYTES })))
      return { chain: certs.filter(c => c.cert.type === 'auth'), names: certs.filter(c => c.cert.type === 'name') }
    } finally {
      this.outbound.release(id)
    }
  }

  async authorizeOrProve(
    principal: PrincipalId,
    tag: Tag,
    options: AuthorizeOrProveOptions = {}
  ): Promise<DiscoveredGrant> {
    const key = `${principal} ${normalTagKey(tag)}${options.at !== undefined ? ` @${options.at}` : ''}`
    const at = options.at
    const epoch = this.epoch
    // a local miss at this epoch is remembered briefly, so a flood of checks costs one chain search
    let local: Error
    const miss = this.recall(this.localMisses, key)
    if (miss != null) {
      options.signal?.throwIfAborted()
      local = miss.error
    } else {
      try {
        return await this.authorize(principal, tag, { signal: options.signal, at })
      } catch (err) {
        options.signal?.throwIfAborted()
        local = err as Error
        if (this.epoch === epoch) {
          const until = this.now() + LOCAL_MISS_TTL
          this.localMisses.set(key, { until, error: local, rank: REFUSED })
        }
      }
    }
    const refuse = (remote: Error): Error => options.refuse?.(local, remote) ?? remote
    if (this.rootsFor(tag).length === 0) throw refuse(local)
    // a chain a peer showed before, checked again against today's ACL, CRLs and clock
    const shown = this.shownProofs.get(key)
    if (shown != null) {
      try {
        return await this.authorize(principal, tag, { signal: options.signal, proof: shown, at })
      } catch {
        options.signal?.throwIfAborted()
        this.shownProofs.delete(key)
      }
    }
    // a refusal is remembered by prover: a peer that refused is skipped, the others are still asked
    const peers: PeerId[] = []
    let remembered: Remembered | undefined
    for (const peer of this.candidateProvers(principal, options.providers ?? [])) {
      const refusal = this.recall(this.refusals, `${key} ${peer.toString()}`)
      if (refusal != null) {
        remembered = worse(remembered, refusal)
        continue
      }
      if (peers.length < MAX_PEERS_ASKED && this.connectionTo(peer) != null) peers.push(peer)
    }
    if (peers.length === 0) {
      if (remembered?.rank === RATE_LIMITED) throw remembered.error
      throw refuse(
        remembered?.error ??
          new ProverNotConnectedError(
            `no chain here grants ${principal} ${tagText(tag)}, and neither its node nor a provider of its chain is connected: grant it with \`cyberspace acl add\` or \`cyberspace cert issue\`, or import its chain with \`cyberspace cert import\``
          )
      )
    }
    // a request under way since this epoch began, to the same peers, is shared; any other is not
    const askingKey = `${epoch} ${key} ${peers.map(p => p.toString()).join(' ')}`
    let asking = this.asking.get(askingKey)
    if (asking == null) {
      asking = this.askConnected(key, epoch, principal, tag, peers, options.timeout ?? this.timeout)
      this.asking.set(askingKey, asking)
      asking
        .finally(() => {
          this.asking.delete(askingKey)
        })
        .catch(() => {})
    }
    try {
      return await raced(asking, options.signal)
    } catch (err) {
      if ((err as Error).name === 'ProofRateLimitedError' || options.signal?.aborted === true) throw err
      throw refuse(err as Error)
    }
  }

  /** What `map` remembers for `key` and not yet lapsed; a lapsed entry is dropped. */
  private recall(map: RecentMap<string, Remembered>, key: string): Remembered | undefined {
    const remembered = map.get(key)
    if (remembered == null) return undefined
    if (remembered.until > this.now()) return remembered
    map.delete(key)
    return undefined
  }

  /** The peers that may be asked: the principal's node, then providers; not this node, each once. */
  private candidateProvers(principal: PrincipalId, providers: PeerId[]): PeerId[] {
    const out: PeerId[] = []
    let own: PeerId[] = []
    try {
      own = [peerIdFromPrincipal(principal)]
    } catch {
      // not a key a node can have: only providers can speak for it
    }
    for (const peer of [...own, ...providers.slice(0, MAX_PROVIDERS_CONSIDERED)]) {
      if (peer.equals(this.components.peerId) || out.some(p => p.equals(peer))) continue
      out.push(peer)
    }
    return out
  }

  /**
   * Asks `peers` in turn, over their open connections, for a chain; the first that checks out
   * wins and is remembered. Each peer's failure is remembered at `epoch` for that peer alone: for
   * `refusalTtl` when it answered (no chain, or a bad one), for `failureTtl` when it could not be
   * reached, for RATE_LIMITED_TTL when it (or this node's budget for it) was rate limited. Each
   * peer gets an equal share of `timeout`.
   */
  private async askConnected(
    key: string,
    epoch: number,
    principal: PrincipalId,
    tag: Tag,
    peers: PeerId[],
    timeout: number
  ): Promise<DiscoveredGrant> {
    let worst: Remembered | undefined
    for (const peer of peers) {
      const peerKey = `${key} ${peer.toString()}`
      const remember = (error: Error, rank: number, ttl: number): void => {
        const failure = { until: this.now() + ttl, error, rank }
        worst = worse(worst, failure)
        // a refusal from before a new epoch began is not carried into it
        if (this.epoch === epoch) this.refusals.set(peerKey, failure)
      }
      let proof: Proof
      try {
        proof = await this.requestProof(peer, principal, tag, {
          signal: AbortSignal.timeout(timeout / peers.length),
          dial: false
        })
      } catch (err) {
        const e = err as Error
        if (e.name === 'ProofRateLimitedError') remember(e, RATE_LIMITED, RATE_LIMITED_TTL)
        else if (e.name === 'ProofRefusedError' || e.name === 'ChainNotFoundError')
          remember(e, REFUSED, this.refusalTtl)
        else remember(e, UNREACHABLE, this.failureTtl)
        this.log('no proof of %s from %p - %e', principal, peer, e)
        continue
      }
      try {
        const grant = await this.authorize(principal, tag, { proof })
        this.shownProofs.set(principal, key, proof)
        return grant
      } catch (err) {
        remember(err as Error, REFUSED, this.refusalTtl)
        this.log('a bad proof of %s from %p - %e', principal, peer, err)
      }
    }
    throw worst?.error ?? new ProverNotConnectedError(`no peer could be asked to prove ${principal}`)
  }

  /** Answers one proof request, within the asking peer's budget. */
  private async answerWithin(bytes: Uint8Array, connection: Connection): Promise<Uint8Array> {
    const id = connection.remotePeer.toString()
    if (!this.inbound.take(id)) {
      throw new ProofRateLimitedError(`${id} asked for proofs too often: try again shortly`)
    }
    try {
      return await this.answer(bytes)
    } finally {
      this.inbound.release(id)
    }
  }

  /**
   * Answers one proof request from the local store and the chains peers showed for that principal
   * (so a node that relayed a principal's events can prove its authority on). Nothing received
   * enters the store.
   */
  private async answer(bytes: Uint8Array): Promise<Uint8Array> {
    const request = decodeSpkiMessage(bytes)
    if (request.type !== 'prove') throw new TypeError(`expected a prove request, got ${request.type}`)
    if (!request.roots.every(isPrincipalId) || !isPrincipalId(request.principal)) {
      throw new TypeError('roots and principal must be principal ids')
    }
    const tag = parseTag(decodeCanonical(request.tag, { maxBytes: MAX_TAG_BYTES }))
    // every certificate of a shown proof had its signature checked when the proof was accepted
    const shown = this.shownProofs.certs(request.principal)
    const { proof } = await discoverChain([...this.certs(), ...shown], request.roots, request.principal, tag, {
      ...this.discoverOptions(),
      verified: true
    })
    const certs = [...proof.chain, ...proof.names]
      .map(c => encodeCanonical(signedCertToSexp(c)))
      .slice(0, MAX_PROOF_CERTS)
    return encodeSpkiMessage({ v: 1, type: 'proof', certs })
  }
}

export function spki(init: SpkiInit = {}): (components: SpkiComponents) => Spki {
  return components => new SpkiService(components, init)
}
