/**
 * The cluster key service: this node's share of the cluster principal, and the protocols that use
 * it. `init` runs distributed key generation among named member peers over `/cyberspace/dkg/1.0.0`
 * (the initiator relays the members' signed, sealed messages round by round); `sign` runs FROST
 * signing rounds over `/cyberspace/frost/1.0.0` with whichever t members answer in time; `issue`
 * makes cluster-signed SPKI certificates; `decrypt` opens what was encrypted to the cluster key
 * with t decryption shares; `deriveAgentSeed` derives an agent's key from t members' partial
 * evaluations of the cluster's PRF (derive.ts); `refresh` gives every member a new share of the same key; `repair`
 * rebuilds one member's share from t helpers and `reshare` moves the key to a new member set and
 * threshold, both over `/cyberspace/reshare/1.0.0` (protocols/reshare/README.md).
 *
 * Every member decides by policy: it joins a key generation only if the initiator is authorized
 * for `(cyberspace (cluster init))`, signs only payloads of kinds it accepts (an SPKI certificate
 * or CRL issued by the cluster, or a cluster message, told apart by their signing domain) for a
 * coordinator authorized for `(cyberspace (cluster sign <kind>))`, gives decryption shares for
 * `(cyberspace (cluster decrypt))`, partial evaluations of an agent's key for
 * `(cyberspace (agent (derive <kind>)))` (within a per-peer budget), joins refreshes for `(cyberspace (cluster refresh))`, repairs
 * for `(cyberspace (cluster repair))` and resharings for `(cyberspace (cluster reshare))` (dealing
 * only to new members that hold a `(cyberspace member)` chain) —
 * by a chain from its own ACL, found in its store or proven by the requester on demand. A request
 * this node makes itself is its operator's and needs no chain.
 *
 * @example
 * await node.cluster.init([a, b, c, d, e], 3)
 * const signed = await node.cluster.issue({ type: 'auth', issuer: node.cluster.info().principal, … })
 */
import { equalBytes } from '@noble/curves/utils.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import {
  decodeDkgEnvelope,
  decodeDkgMessage,
  DKG_PROTOCOL,
  encodeDkgEnvelope,
  encodeDkgMessage,
  MAX_DKG_ENVELOPE_BYTES
} from '../../protocols/dkg/codec.ts'
import {
  decodeFrostMessage,
  encodeFrostMessage,
  FROST_PROTOCOL,
  MAX_FROST_MESSAGE_BYTES,
  MAX_SIGN_PAYLOAD_BYTES,
  REFRESH_ACK_DOMAIN,
  refreshAckBody
} from '../../protocols/frost/codec.ts'
import {
  decodeReshareMessage,
  encodeReshareMessage,
  MAX_RESHARE_MESSAGE_BYTES,
  packageDigest,
  RESHARE_ACK_DOMAIN,
  RESHARE_PROTOCOL,
  RESHARE_SWITCHED_DOMAIN,
  reshareAckBody
} from '../../protocols/reshare/codec.ts'
import { signedBytes } from '../../protocols/signing.ts'
import { errorAnswer } from '../../protocols/wire.ts'
import { peerIdFromPrincipal, principalFromPeerId, principalId, principalPublicKey } from '../crypto/principal.ts'
import { PeerBudget } from '../peer-budget.ts'
import { signAs, verifyAs } from '../crypto/sign.ts'
import {
  handleRequests,
  lostStream,
  requestAnswer,
  serveRequests,
  StreamPool,
  unhandleRequests,
  withTimeout
} from '../network/rpc.ts'
import type { OpenStream } from '../network/rpc.ts'
import { CERT_DOMAIN, certToSexp, parseCert } from '../spki/cert.ts'
import { CRL_DOMAIN, parseCrl } from '../spki/crl.ts'
import { atom, decodeCanonical, encodeCanonical, parseAdvanced, toAdvanced } from '../spki/sexp.ts'
import { parseTag } from '../spki/tag.ts'
import { makeDeal, openDeals } from './deal.ts'
import { checkGroupParams } from './dealer.ts'
import { decryptionShare, encryptToGroup, openWithShares, verifyDecryptionShare } from './decrypt.ts'
import {
  agentKeyPoint,
  agentPrincipal,
  checkAgentName,
  derivationShare,
  seedFromPartials,
  verifyDerivationShare
} from './derive.ts'
import { DkgSession } from './dkg.ts'
import {
  ClusterExistsError,
  describeFailures,
  EquivocationError,
  InvalidPointError,
  InvalidScalarError,
  InvalidShareError,
  memberFailure,
  MemberRefusedError,
  MembersFailedError,
  NoClusterError,
  NotAMemberError,
  NoMemberChainError,
  NotAuthorizedError,
  NotEnoughSignersError,
  RateLimitedError,
  SigningRefusedError,
  ThresholdError,
  WrongEpochError,
  WrongSessionError
} from './errors.ts'
import { memberIdentifier, parsePoint, PointCache } from './group.ts'
import type { GroupPoint } from './group.ts'
import {
  checkRetirement,
  makeRepairDeal,
  makeRepairSum,
  makeReshareDeal,
  openRepairDeals,
  openRepairSums,
  openReshareDeals
} from './pieces.ts'
import { applyRefresh, recoverShare } from './refresh.ts'
import { combineReshare } from './reshare.ts'
import { coordinateSigning, Signer } from './sign.ts'
import {
  clusterPrincipal,
  datastoreShareStore,
  decodeClusterState,
  encodeClusterState,
  groupKeyOf,
  packagePublic,
  publicDigest,
  publicPackage
} from './state.ts'
import type { DkgEnvelope, DkgMessages } from '../../protocols/dkg/codec.ts'
import type { Tag } from '../spki/tag.ts'
import type { DeriveRequest, FrostAnswer, FrostRequest } from '../../protocols/frost/codec.ts'
import type { PublicPackage, ReshareAnswer, ReshareRequest } from '../../protocols/reshare/codec.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Cert, SignedCert } from '../spki/cert.ts'
import type { Spki } from '../spki/service.ts'
import type { DecryptionShare, GroupCiphertext } from './decrypt.ts'
import type { DerivationShare } from './derive.ts'
import type { ResharePlan } from './pieces.ts'
import type { ReceivedRefresh } from './refresh.ts'
import type { ReceivedReshare } from './reshare.ts'
import type { SigningRequest, SigningResult } from './sign.ts'
import type { ClusterState, ShareStore } from './state.ts'
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

/** Domain of cluster messages: free-form statements the cluster signs (`cluster sign`). */
export const CLUSTER_MESSAGE_DOMAIN = 'cyberspace/cluster-message/v1'

/** What a member can be asked to sign, told apart by the payload's signing domain. */
export type PayloadKind = 'cert' | 'crl' | 'message'
const DKG_WIRE = { protocol: DKG_PROTOCOL, maxBytes: MAX_DKG_ENVELOPE_BYTES, decode: decodeDkgEnvelope }
const FROST_WIRE = { protocol: FROST_PROTOCOL, maxBytes: MAX_FROST_MESSAGE_BYTES, decode: decodeFrostMessage }
const RESHARE_WIRE = { protocol: RESHARE_PROTOCOL, maxBytes: MAX_RESHARE_MESSAGE_BYTES, decode: decodeReshareMessage }

const KIND_OF_DOMAIN: Record<string, PayloadKind> = {
  [CERT_DOMAIN]: 'cert',
  [CRL_DOMAIN]: 'crl',
  [CLUSTER_MESSAGE_DOMAIN]: 'message'
}

/** An authority a member checks, parsed once. */
interface ClusterTag {
  text: string
  tag: Tag
}
const clusterTag = (text: string): ClusterTag => ({ text, tag: parseTag(parseAdvanced(text)) })
/** `(cyberspace (agent (derive <kind>)))`, built as a structure (a kind such as `1x` is no SPKI token). */
function deriveTag(kind: string): ClusterTag {
  const sexp = [atom('cyberspace'), [atom('agent'), [atom('derive'), atom(kind)]]]
  return { text: toAdvanced(sexp), tag: parseTag(sexp) }
}
const TAGS = {
  init: clusterTag('(cyberspace (cluster init))'),
  decrypt: clusterTag('(cyberspace (cluster decrypt))'),
  refresh: clusterTag('(cyberspace (cluster refresh))'),
  repair: clusterTag('(cyberspace (cluster repair))'),
  reshare: clusterTag('(cyberspace (cluster reshare))'),
  /** What every member of a resharing's new set must hold a chain to. */
  member: clusterTag('(cyberspace member)'),
  sign: {
    cert: clusterTag('(cyberspace (cluster sign cert))'),
    crl: clusterTag('(cyberspace (cluster sign crl))'),
    message: clusterTag('(cyberspace (cluster sign message))')
  } satisfies Record<PayloadKind, ClusterTag>
}

export interface ClusterInit {
  /** How long one request to a member may take, in ms; default 10 s. */
  timeout?: number
  /** Payload kinds this member signs; default all. */
  kinds?: PayloadKind[]
  /** Where the share lives; default the node's datastore. Node processes use 0600 files. */
  store?: ShareStore
  /** How long an unfinished key generation or refresh is kept, in ms; default 2 min. */
  sessionTtl?: number
  /** Agent-key partial evaluations this member gives one peer a minute; default 120. */
  maxDerivationsPerMinute?: number
  /**
   * Once t valid partial evaluations of an agent key are in, how long the members yet to answer
   * get before the key is derived without them, in ms; default 1 s. Only their naming (a bad one is
   * excluded by its proof) depends on it, never the seed.
   */
  deriveSettle?: number
}

export interface ClusterComponents {
  peerId: PeerId
  privateKey: PrivateKey
  registrar: Registrar
  connectionManager: ConnectionManager
  datastore: Datastore
  logger: ComponentLogger
  spki: Spki
}

export interface ClusterInfo {
  /** The cluster principal: the group public key as a z6Mk… id. */
  principal: PrincipalId
  groupKey: Uint8Array
  threshold: number
  members: PrincipalId[]
  /** Share generation: 0 after key generation, one more after each refresh. */
  epoch: number
}

export interface DecryptionResult {
  plaintext: Uint8Array
  /** Members whose shares opened it. */
  helpers: PrincipalId[]
  excluded: Map<PrincipalId, Error>
}

/** An agent's key, derived from t members' partial evaluations. */
export interface AgentSeed {
  /** The agent's 32-byte Ed25519 seed: the caller's alone (never logged or kept here); zero it when done. */
  seed: Uint8Array
  /** The Ed25519 public key of the seed. */
  principal: PrincipalId
  /** The t members whose partials made it. */
  signers: PrincipalId[]
  /** Members that refused, did not answer in time, or gave a partial that fails its proof, with why. */
  excluded: Map<PrincipalId, Error>
}

export interface InitResult extends ClusterInfo {
  /**
   * Members that did not report their key generation done: the answer to the confirmations was
   * lost, twice. Each may hold its share (only its answer was lost) or not (the delivery never
   * reached it); see "What each party holds" in protocols/dkg/README.md. The error says which.
   */
  unconfirmed: Map<PrincipalId, Error>
}

export interface RefreshResult extends ClusterInfo {
  /** Members that staged the new share but did not confirm the switch (see the note on lagging members in protocols/frost/README.md). */
  lagging: Map<PrincipalId, Error>
}

export interface RepairResult extends ClusterInfo {
  /** The member whose share was rebuilt. */
  member: PrincipalId
  /** The t members that rebuilt it. */
  helpers: PrincipalId[]
  /** Members tried as helpers and left out, with why. */
  excluded: Map<PrincipalId, Error>
}

/** A step of a resharing, as it happens (for progress displays). */
export interface ReshareProgress {
  step: 'check' | 'deal' | 'stage' | 'commit' | 'retire'
  message: string
}

export interface ReshareOptions extends AbortOptions {
  onProgress?: (progress: ReshareProgress) => void
}

export interface ReshareResult {
  /** Unchanged by a resharing. */
  principal: PrincipalId
  groupKey: Uint8Array
  /** The new threshold, members and share generation. */
  threshold: number
  members: PrincipalId[]
  epoch: number
  /** The old members whose deals made the new shares. */
  dealers: PrincipalId[]
  /** Old members tried as dealers and left out, with why. */
  excluded: Map<PrincipalId, Error>
  /** New members that staged the new share but did not confirm the switch: repair them (`cluster repair`). */
  lagging: Map<PrincipalId, Error>
  /** Removed members that did not confirm deleting their old share. */
  retained: Map<PrincipalId, Error>
}

export interface Cluster {
  /** The cluster this node holds a share of, if any. */
  info(): ClusterInfo | undefined
  /** Runs key generation among `members` (this node among them) with threshold t, and keeps this node's share. */
  init(members: PrincipalId[], threshold: number, options?: AbortOptions): Promise<InitResult>
  /** A t-of-n signature over signedBytes(domain, body): an ordinary Ed25519 signature by the cluster key. */
  sign(domain: string, body: Uint8Array, options?: AbortOptions): Promise<SigningResult>
  /** Signs a certificate whose issuer is the cluster principal, keeps it in the SPKI store, returns it. */
  issue(cert: Cert, options?: AbortOptions): Promise<SignedCert & { result: SigningResult }>
  /** Encrypts to the cluster key: anyone can, t members are needed to open it. */
  encrypt(plaintext: Uint8Array, aad?: Uint8Array): GroupCiphertext
  decrypt(ct: GroupCiphertext, aad?: Uint8Array, options?: AbortOptions): Promise<DecryptionResult>
  /**
   * The key of agent (kind, id): the same seed from any t members, which no fewer than t can
   * compute, and which stays through refreshes and resharings. Members give their partial only to
   * a node they authorize for `(cyberspace (agent (derive <kind>)))`; fewer than t valid partials
   * throw NotEnoughSignersError saying how many of how many and what each other member did.
   */
  deriveAgentSeed(kind: string, id: string, options?: AbortOptions): Promise<AgentSeed>
  /** New shares of the same key for every member (all must answer); old shares stop combining with new. */
  refresh(options?: AbortOptions): Promise<RefreshResult>
  /**
   * Rebuilds `member`'s share of the current generation (lost, or lagging after a refresh) from t
   * helpers, this node among them; only the member learns it. Needs `(cyberspace (cluster repair))`
   * at every helper and at the member.
   */
  repair(member: PrincipalId, options?: AbortOptions): Promise<RepairResult>
  /**
   * Moves the key to `members` (the whole new set) with threshold t: same cluster principal, next
   * share generation; old shares stop combining with new ones and removed members delete theirs.
   * Needs `(cyberspace (cluster reshare))` at every old and new member, and a `(cyberspace member)`
   * chain for every new member.
   */
  reshare(members: PrincipalId[], threshold: number, options?: ReshareOptions): Promise<ReshareResult>
}

interface RepairRun {
  session: Uint8Array
  coordinator: PrincipalId
  member: PrincipalId
  helpers: PrincipalId[]
  deal: Uint8Array
  /** The piece this helper dealt itself. */
  own: Uint8Array
  expires: number
}

interface ReshareRun {
  session: Uint8Array
  coordinator: PrincipalId
  plan: ResharePlan
  /** This old member's deal, given again if asked again, and its own piece if it is a new member too. */
  dealt?: { deal: Uint8Array; own?: ReceivedReshare }
  /** The new share this new member staged, and its ack. */
  staged?: { state: ClusterState; digest: Uint8Array; ack: Uint8Array }
  expires: number
}

interface DkgRun {
  dkg: DkgSession
  initiator: PrincipalId
  expires: number
}

interface RefreshRun {
  session: Uint8Array
  coordinator: PrincipalId
  own: ReceivedRefresh
  /** This member's signed deal, given again if asked again. */
  deal: Uint8Array
  staged?: ClusterState
  expires: number
}

class ClusterService implements Cluster, Startable {
  private readonly components: ClusterComponents
  private readonly log: Logger
  private readonly self: PrincipalId
  private readonly timeout: number
  private readonly kinds: Set<PayloadKind>
  private readonly store: ShareStore
  private readonly sessionTtl: number
  private readonly deriveSettle: number
  /** Partial evaluations of agent keys each peer may ask for. */
  private readonly derivations: PeerBudget
  private state?: ClusterState
  private signer?: Signer
  /** The key generation this node takes part in as an invited member (at most one at a time). */
  private dkgRun?: DkgRun & { id: string }
  /** The last key generation this node finished as a member, so a repeated last delivery is answered `done`. */
  private dkgFinished?: { id: string; initiator: PrincipalId }
  /** True while this node initiates a key generation or stores the share of one. */
  private generating = false
  private refreshRun?: RefreshRun
  private repairRun?: RepairRun
  private reshareRun?: ReshareRun
  /** True while this node coordinates a resharing. */
  private resharing = false
  /** The last resharing this node switched for or retired from, so a repeated commit is answered the same. */
  private reshareDone?: { session: Uint8Array; answer: ReshareAnswer }
  private readonly open: OpenStream
  /**
   * Streams to members kept between requests (each protocol also served under '<id>/many'): a
   * signature asks every member twice, and a new stream costs both sides more CPU than a
   * request and its answer.
   */
  private streams = new StreamPool()

  constructor(components: ClusterComponents, init: ClusterInit) {
    this.components = components
    this.log = components.logger.forComponent('cyberspace:cluster')
    this.self = principalFromPeerId(components.peerId)
    this.timeout = init.timeout ?? 10_000
    this.kinds = new Set(init.kinds ?? ['cert', 'crl', 'message'])
    this.store = init.store ?? datastoreShareStore(components.datastore)
    this.sessionTtl = init.sessionTtl ?? 120_000
    this.deriveSettle = init.deriveSettle ?? 1000
    this.derivations = new PeerBudget(init.maxDerivationsPerMinute ?? 120, 4, Date.now)
    this.open = async (peer, protocol, options) =>
      await components.connectionManager.openStream(peer, protocol, options)
  }

  readonly [Symbol.toStringTag] = 'cyberspace/cluster'

  async start(): Promise<void> {
    // what the store holds, nothing else: a share deleted or replaced while stopped is not kept in memory
    this.state = undefined
    this.signer = undefined
    const current = await this.store.load('current')
    if (current != null) this.use(decodeClusterState(current, this.self))
    // a refresh staged before a restart cannot be committed any more: its session is gone
    await this.store.remove('staged')
    this.streams = new StreamPool()
    const serve = { maxBytes: MAX_FROST_MESSAGE_BYTES, timeout: this.timeout, log: this.log }
    const registrar = this.components.registrar
    await handleRequests(
      registrar,
      FROST_PROTOCOL,
      serveRequests(async (bytes, connection) => await this.answerFrost(bytes, connection), serve),
      { maxInboundStreams: 16 }
    )
    await handleRequests(
      registrar,
      DKG_PROTOCOL,
      serveRequests(async (bytes, connection) => await this.answerDkg(bytes, connection), {
        ...serve,
        maxBytes: MAX_DKG_ENVELOPE_BYTES
      }),
      { maxInboundStreams: 4 }
    )
    await handleRequests(
      registrar,
      RESHARE_PROTOCOL,
      serveRequests(async (bytes, connection) => await this.answerReshare(bytes, connection), {
        ...serve,
        maxBytes: MAX_RESHARE_MESSAGE_BYTES
      }),
      { maxInboundStreams: 4 }
    )
  }

  async stop(): Promise<void> {
    this.streams.close()
    await unhandleRequests(this.components.registrar, RESHARE_PROTOCOL)
    await unhandleRequests(this.components.registrar, FROST_PROTOCOL)
    await unhandleRequests(this.components.registrar, DKG_PROTOCOL)
  }

  info(): ClusterInfo | undefined {
    const s = this.state
    if (s == null) return undefined
    return {
      principal: clusterPrincipal(s),
      groupKey: groupKeyOf(s),
      threshold: s.threshold,
      members: s.members,
      epoch: s.epoch
    }
  }

  private requireState(): ClusterState {
    if (this.state == null) throw new NoClusterError('this node holds no cluster share; run cluster init first')
    return this.state
  }

  private use(state: ClusterState): void {
    this.state = state
    this.signer = new Signer(state.key, this.self, async request => {
      await this.signingPolicy(request)
    })
  }

  private async keep(state: ClusterState): Promise<void> {
    await this.store.save('current', encodeClusterState(state))
    this.use(state)
  }

  /** The 32-byte Ed25519 seed of this node's key. */
  private seed(): Uint8Array {
    return this.components.privateKey.raw.subarray(0, 32)
  }

  // ------------------------------------------------------------------ policy

  /** Throws SigningRefusedError unless `principal` is this node or holds `required` by this node's ACL. */
  private async authorizeRequester(principal: PrincipalId, required: ClusterTag): Promise<void> {
    if (principal === this.self) return
    await this.components.spki.authorizeOrProve(principal, required.tag, {
      timeout: this.timeout,
      refuse: (local, remote) =>
        new NotAuthorizedError(
          `${principal} is not authorized for ${required.text} here: ${remote.message} (locally: ${local.message})`
        )
    })
  }

  private async signingPolicy(request: SigningRequest): Promise<void> {
    const kind = this.payloadKind(request.payload)
    await this.authorizeRequester(request.coordinator, TAGS.sign[kind])
  }

  /** The kind of a payload, from its signing domain; certificates and CRLs must be the cluster's own. */
  private payloadKind(payload: Uint8Array): PayloadKind {
    const zero = payload.indexOf(0)
    const domain = zero > 0 && zero <= 64 ? new TextDecoder().decode(payload.subarray(0, zero)) : ''
    const kind = KIND_OF_DOMAIN[domain]
    if (kind == null)
      throw new SigningRefusedError(`this member signs no payload of domain ${JSON.stringify(domain.slice(0, 64))}`)
    if (!this.kinds.has(kind)) throw new SigningRefusedError(`this member does not sign ${kind} payloads`)
    const body = payload.subarray(zero + 1)
    const cluster = clusterPrincipal(this.requireState())
    try {
      if (kind === 'cert') {
        const cert = parseCert(decodeCanonical(body))
        if (cert.issuer !== cluster) throw new Error('its issuer is not the cluster')
      } else if (kind === 'crl') {
        if (parseCrl(decodeCanonical(body)).issuer !== cluster) throw new Error('its issuer is not the cluster')
      }
    } catch (err) {
      throw new SigningRefusedError(`the ${kind} to sign is refused: ${(err as Error).message}`)
    }
    return kind
  }

  // ------------------------------------------------------------------ key generation

  async init(members: PrincipalId[], threshold: number, options: AbortOptions = {}): Promise<InitResult> {
    if (this.generating || this.liveDkgRun() != null)
      throw new ClusterExistsError('a key generation is already under way at this node')
    this.generating = true
    try {
      return await this.generate(members, threshold, options)
    } finally {
      this.generating = false
    }
  }

  private async generate(members: PrincipalId[], threshold: number, options: AbortOptions): Promise<InitResult> {
    if (this.state != null)
      throw new ClusterExistsError(`this node already holds a share of ${clusterPrincipal(this.state)}`)
    const all = [...new Set([...members, this.self])].sort() as PrincipalId[]
    checkGroupParams(all, threshold)
    const session = crypto.getRandomValues(new Uint8Array(32))
    const dkg = new DkgSession({ session, members: all, threshold }, { principal: this.self, secretKey: this.seed() })
    const others = all.filter(m => m !== this.self)
    // every message of the run, and who has been given which
    const pool: Array<{ from: PrincipalId; to?: string; bytes: Uint8Array }> = []
    const given = new Map<PrincipalId, Set<Uint8Array>>(all.map(m => [m, new Set()]))
    const done = new Set<PrincipalId>()
    // members whose delivery failed after this node's session was done: reported, never fatal
    const unconfirmed = new Map<PrincipalId, Error>()
    const add = (from: PrincipalId, bytes: Uint8Array[]): void => {
      for (const b of bytes) {
        const msg = decodeDkgMessage(b)
        if (msg.from !== from) throw new ThresholdError(`${from} relayed a message of ${msg.from}`, from)
        pool.push({ from, to: msg.type === 'round2' ? msg.to : undefined, bytes: b })
      }
    }
    const ask = async (member: PrincipalId, request: DkgEnvelope): Promise<void> => {
      const answer = await this.requestDkg(member, request, options)
      add(member, answer.messages)
      if (answer.done) done.add(member)
    }
    add(this.self, (await dkg.start()).map(encodeDkgMessage))
    await this.allOrFail(
      others,
      async m => {
        await ask(m, { v: 1, type: 'invite', session, members: all, threshold })
      },
      TAGS.init
    )
    // round 1, round 2, confirmations: relay what each member has not seen yet
    for (let round = 0; round < 4 && done.size < all.length; round++) {
      const pending = (m: PrincipalId): Uint8Array[] => {
        const out = pool
          .filter(p => p.from !== m && (p.to == null || p.to === m) && !given.get(m)?.has(p.bytes))
          .map(p => p.bytes)
        for (const b of out) given.get(m)?.add(b)
        return out
      }
      const batches = new Map(all.map(m => [m, pending(m)]))
      const produced = await receiveAll(dkg, batches.get(this.self) ?? [], this.log)
      const deliver = async (m: PrincipalId): Promise<void> => {
        await ask(m, { v: 1, type: 'deliver', session, messages: batches.get(m) ?? [] })
      }
      add(this.self, produced)
      const waiting = others.filter(m => !done.has(m) && !unconfirmed.has(m))
      if (dkg.status !== 'done') {
        await this.allOrFail(waiting, deliver, TAGS.init)
        continue
      }
      // this node has every member's matching confirmation and its own verified share of the
      // agreed key: it keeps it now, before the last delivery, whatever becomes of that
      if (!done.has(this.self)) {
        done.add(this.self)
        await this.keep({ members: all, threshold, epoch: 0, key: dkg.outcome().key })
      }
      await Promise.all(
        waiting.map(async m => {
          try {
            await deliver(m)
          } catch (err) {
            // a refusal stands; a lost request or answer is asked once more (a member that finished answers `done` again)
            if (err instanceof MemberRefusedError) {
              unconfirmed.set(m, err)
              return
            }
            try {
              await deliver(m)
            } catch (again) {
              unconfirmed.set(m, again as Error)
            }
          }
        })
      )
    }
    if (dkg.status !== 'done')
      throw new ThresholdError(`key generation did not finish: ${all.filter(m => !done.has(m)).join(', ')} not done`)
    const reported = new Map<PrincipalId, Error>()
    for (const m of others.filter(m => !done.has(m))) {
      const cause = unconfirmed.get(m) ?? new Error('it answered without finishing')
      const holds =
        cause instanceof MemberRefusedError
          ? 'it holds no share of this cluster'
          : 'it holds its share if only its answer was lost (`cyberspace cluster show` on that member tells)'
      const error = new ThresholdError(`${memberFailure(m, cause, this.self)}; ${holds}`, m)
      reported.set(m, error)
      this.log.error('key generation of %s: %s', dkg.outcome().clusterPrincipal, error.message)
    }
    return { ...(this.info() as ClusterInfo), unconfirmed: reported }
  }

  /** Runs `fn` for every member; if any fails, throws MembersFailedError naming each that did, with what fixes a missing grant of `tag`. */
  private async allOrFail(
    members: PrincipalId[],
    fn: (m: PrincipalId) => Promise<void>,
    tag: ClusterTag
  ): Promise<void> {
    const results = await Promise.allSettled(members.map(fn))
    const failed = results.flatMap((r, i) =>
      r.status === 'rejected' ? [{ member: members[i], error: r.reason as Error }] : []
    )
    if (failed.length === 0) return
    // a culprit this node found itself outranks a member that merely refused
    const blamed = failed.filter(f => f.error instanceof ThresholdError && f.error.culprit != null)
    const culprit = (blamed.find(f => !(f.error instanceof MemberRefusedError)) ?? blamed[0])?.error as
      ThresholdError | undefined
    throw new MembersFailedError(
      failed.map(f => ({ ...f, reason: memberFailure(f.member, f.error, this.self, tag.text) })),
      culprit?.culprit
    )
  }

  /**
   * Sends `request` to `member` and returns its answer, which must be of type `expected`; a refusal
   * throws MemberRefusedError. A frost request whose stream dies under it (its connection closed
   * or reset, a kept stream gone stale) is sent once more on a new stream: each may be asked twice
   * — a member answers a repeated one the same, or refuses it by name (a second commit or sign of
   * a session), which excludes it as the lost answer would have. Key generation and resharing ask
   * a lost last step again themselves.
   */
  private async request<A>(
    member: PrincipalId,
    wire: { protocol: string; maxBytes: number; decode: (bytes: Uint8Array) => { type: string } },
    request: Uint8Array,
    expected: string,
    options: AbortOptions
  ): Promise<A> {
    const signal = withTimeout(this.timeout, options.signal)
    const ask = async (pool?: StreamPool): Promise<A> =>
      (await requestAnswer(this.open, peerIdFromPrincipal(member), wire.protocol, request, {
        maxBytes: wire.maxBytes,
        signal,
        pool,
        decode: wire.decode,
        expected,
        refused: ({ name, message }) => new MemberRefusedError(member, name, message),
        unexpected: type => new ThresholdError(`${member} answered with ${type}`, member)
      })) as A
    try {
      return await ask(this.streams)
    } catch (err) {
      if (wire !== FROST_WIRE || signal.aborted || !lostStream(err)) throw err
      this.log('a request to %s lost its stream, asking once more - %e', member, err)
      return await ask()
    }
  }

  private async requestDkg(member: PrincipalId, request: DkgEnvelope, options: AbortOptions): Promise<DkgMessages> {
    return await this.request(member, DKG_WIRE, encodeDkgEnvelope(request), 'messages', options)
  }

  private async requestFrost<K extends FrostAnswer['type']>(
    member: PrincipalId,
    request: FrostRequest,
    expected: K,
    options: AbortOptions
  ): Promise<Extract<FrostAnswer, { type: K }>> {
    return await this.request(member, FROST_WIRE, encodeFrostMessage(request), expected, options)
  }

  private async answerDkg(bytes: Uint8Array, connection: Connection): Promise<Uint8Array> {
    try {
      return encodeDkgEnvelope(
        await this.handleDkg(decodeDkgEnvelope(bytes), principalFromPeerId(connection.remotePeer))
      )
    } catch (err) {
      this.log('refusing a key generation request from %p - %e', connection.remotePeer, err)
      return encodeDkgEnvelope(errorAnswer(err))
    }
  }

  private liveDkgRun(): (DkgRun & { id: string }) | undefined {
    if (this.dkgRun != null && this.dkgRun.expires <= Date.now()) this.dkgRun = undefined
    return this.dkgRun
  }

  private async handleDkg(request: DkgEnvelope, from: PrincipalId): Promise<DkgEnvelope> {
    const live = this.liveDkgRun()
    if (request.type === 'invite') {
      if (this.state != null)
        throw new ClusterExistsError(`this node already holds a share of ${clusterPrincipal(this.state)}`)
      if (this.generating) throw new ClusterExistsError('this node is generating a key of its own')
      // one key generation at a time; an initiator that starts over replaces its own earlier run
      if (live != null && live.initiator !== from) throw new SigningRefusedError('another key generation is under way')
      const members = request.members as PrincipalId[]
      if (!members.includes(from)) throw new NotAMemberError('the initiator is not among the members')
      if (members.join(',') !== [...members].sort().join(',')) throw new WrongSessionError('members must be sorted')
      await this.authorizeRequester(from, TAGS.init)
      const dkg = new DkgSession(
        { session: request.session, members, threshold: request.threshold },
        { principal: this.self, secretKey: this.seed() }
      )
      this.dkgRun = { id: bytesToHex(request.session), dkg, initiator: from, expires: Date.now() + this.sessionTtl }
      return { v: 1, type: 'messages', messages: (await dkg.start()).map(encodeDkgMessage), done: false }
    }
    if (request.type !== 'deliver') throw new WrongSessionError(`expected invite or deliver, got ${request.type}`)
    const run = live
    const id = bytesToHex(request.session)
    if (run == null || run.id !== id || run.initiator !== from) {
      // the last delivery again, its answer having been lost: this member finished and kept its share
      if (this.dkgFinished?.id === id && this.dkgFinished.initiator === from)
        return { v: 1, type: 'messages', messages: [], done: true }
      throw new WrongSessionError('no such key generation from this initiator')
    }
    let out: Uint8Array[]
    try {
      out = await receiveAll(run.dkg, request.messages, this.log)
    } catch (err) {
      if (run.dkg.status === 'aborted') this.dkgRun = undefined
      throw err
    }
    const done = run.dkg.status === 'done'
    if (done) {
      this.dkgRun = undefined
      if (this.state != null || this.generating) throw new ClusterExistsError('this node holds another cluster share')
      this.generating = true
      try {
        const outcome = run.dkg.outcome()
        await this.keep({ members: outcome.members, threshold: outcome.threshold, epoch: 0, key: outcome.key })
        this.dkgFinished = { id: run.id, initiator: run.initiator }
        this.log('joined cluster %s', outcome.clusterPrincipal)
      } finally {
        this.generating = false
      }
    }
    return { v: 1, type: 'messages', messages: out, done }
  }

  // ------------------------------------------------------------------ signing

  async sign(domain: string, body: Uint8Array, options: AbortOptions = {}): Promise<SigningResult> {
    const state = this.requireState()
    const payload = signedBytes(domain, body)
    if (payload.length > MAX_SIGN_PAYLOAD_BYTES)
      throw new RangeError(`a cluster signs at most ${MAX_SIGN_PAYLOAD_BYTES} bytes`)
    const group = groupKeyOf(state)
    const epoch = state.epoch
    const signer = this.signer as Signer
    return await coordinateSigning(
      state.key.public,
      state.members,
      payload,
      {
        commit: async (member, req) => {
          if (member === this.self) return await signer.commit(req)
          const answer = await this.requestFrost(
            member,
            { v: 1, type: 'commit', group, epoch, session: req.session, payload },
            'commitments',
            options
          )
          return { identifier: answer.identifier, hiding: answer.hiding, binding: answer.binding }
        },
        sign: async (member, pkg) => {
          if (member === this.self) return signer.signShare(pkg)
          const answer = await this.requestFrost(
            member,
            { v: 1, type: 'sign', group, epoch, session: pkg.session, payload, commitments: pkg.commitments },
            'share',
            options
          )
          return answer.share
        }
      },
      // this node's signer has checked its own commitments and the group's points already
      { coordinator: this.self, points: signer.points }
    )
  }

  async issue(cert: Cert, options: AbortOptions = {}): Promise<SignedCert & { result: SigningResult }> {
    const state = this.requireState()
    if (cert.issuer !== clusterPrincipal(state))
      throw new RangeError('a cluster certificate is issued by the cluster principal')
    // nothing is signed that a verifier could not parse
    const sexp = certToSexp(cert)
    parseCert(sexp)
    const result = await this.sign(CERT_DOMAIN, encodeCanonical(sexp), options)
    const signed = { cert, signature: result.signature }
    // the signature was verified as it was aggregated, and the store checks it again as it keeps it
    await this.components.spki.addCert(signed)
    return { ...signed, result }
  }

  private async answerFrost(bytes: Uint8Array, connection: Connection): Promise<Uint8Array> {
    try {
      const request = decodeFrostMessage(bytes)
      return encodeFrostMessage(
        await this.handleFrost(request as FrostRequest, principalFromPeerId(connection.remotePeer))
      )
    } catch (err) {
      this.log('refusing a cluster request from %p - %e', connection.remotePeer, err)
      return encodeFrostMessage(errorAnswer(err))
    }
  }

  /** The state a request for `group` at share generation `epoch` is served from. */
  private stateFor(group: Uint8Array, epoch: number): ClusterState {
    const state = this.requireState()
    if (!equalBytes(group, groupKeyOf(state))) throw new NoClusterError('this node holds no share of that cluster')
    if (epoch !== state.epoch)
      throw new WrongEpochError(`this member holds share generation ${state.epoch}, not ${epoch}`)
    return state
  }

  private async handleFrost(request: FrostRequest, from: PrincipalId): Promise<FrostAnswer> {
    if (!('group' in request)) throw new WrongSessionError('not a request')
    // who asks is checked before anything else is looked at
    const members = this.requireState().members
    if (request.type === 'derive') return await this.answerDerive(request, from)
    if (request.type === 'decrypt') await this.authorizeRequester(from, TAGS.decrypt)
    else if (!members.includes(from)) throw new NotAMemberError(`${from} is not a member of this cluster`)
    const state = this.stateFor(request.group, request.epoch)
    const signer = this.signer as Signer
    switch (request.type) {
      case 'commit': {
        const c = await signer.commit({ session: request.session, coordinator: from, payload: request.payload })
        return { v: 1, type: 'commitments', identifier: c.identifier, hiding: c.hiding, binding: c.binding }
      }
      case 'sign':
        return {
          v: 1,
          type: 'share',
          share: signer.signShare({
            session: request.session,
            coordinator: from,
            payload: request.payload,
            commitments: request.commitments
          })
        }
      case 'decrypt': {
        const d = decryptionShare(state.key, { ephemeral: request.ephemeral, ciphertext: new Uint8Array() })
        return { v: 1, type: 'decryption', identifier: d.identifier, share: d.share, proof: d.proof }
      }
      case 'refresh-deal': {
        await this.authorizeRequester(from, TAGS.refresh)
        const run = this.refreshRun
        // asked again for the same refresh: the same deal, never a second one
        if (run != null && equalBytes(run.session, request.session) && run.coordinator === from)
          return { v: 1, type: 'deal', deal: run.deal }
        if (run != null && run.expires > Date.now()) throw new SigningRefusedError('another refresh is under way')
        if (this.liveReshare() != null) throw new SigningRefusedError('a resharing is under way')
        await this.dropStaged()
        const { deal, own } = await makeDeal(state, this.self, this.seed(), request.session)
        this.refreshRun = {
          session: request.session,
          coordinator: from,
          own,
          deal,
          expires: Date.now() + this.sessionTtl
        }
        return { v: 1, type: 'deal', deal }
      }
      case 'refresh-apply': {
        const run = this.currentRefresh(request.session, from)
        const staged = run.staged ?? (await this.stage(state, run, request.deals))
        const digest = publicDigest(staged)
        return { v: 1, type: 'staged', digest, ack: await this.ack(staged, run.session, digest) }
      }
      case 'refresh-commit': {
        const run = this.currentRefresh(request.session, from)
        await this.commitStaged(run, request.acks)
        return { v: 1, type: 'committed', epoch: (this.state as ClusterState).epoch }
      }
    }
  }

  // ------------------------------------------------------------------ decryption

  encrypt(plaintext: Uint8Array, aad?: Uint8Array): GroupCiphertext {
    return encryptToGroup(groupKeyOf(this.requireState()), plaintext, aad)
  }

  async decrypt(ct: GroupCiphertext, aad?: Uint8Array, options: AbortOptions = {}): Promise<DecryptionResult> {
    const state = this.requireState()
    parsePoint(ct.ephemeral, 'ciphertext ephemeral key')
    const pub = state.key.public
    const excluded = new Map<PrincipalId, Error>()
    const valid: Array<{ member: PrincipalId; identifier: string; point: GroupPoint }> = []
    const group = groupKeyOf(state)
    await Promise.all(
      state.members.map(async member => {
        try {
          let share: DecryptionShare
          if (member === this.self) share = decryptionShare(state.key, ct)
          else {
            const a = await this.requestFrost(
              member,
              { v: 1, type: 'decrypt', group, epoch: state.epoch, ephemeral: ct.ephemeral },
              'decryption',
              options
            )
            share = { identifier: a.identifier, share: a.share, proof: a.proof }
          }
          if (share.identifier !== memberIdentifier(member))
            throw new ThresholdError(`${member} answered for another member`, member)
          const point = blame(member, () => verifyDecryptionShare(pub, ct, share))
          valid.push({ member, identifier: share.identifier, point })
        } catch (err) {
          excluded.set(member, err as Error)
        }
      })
    )
    if (valid.length < state.threshold) {
      const n = valid.length
      throw new NotEnoughSignersError(
        `${n} valid decryption share${n === 1 ? '' : 's'} of ${state.threshold} needed: ` +
          describeFailures(excluded, this.self, TAGS.decrypt.text)
      )
    }
    // each share was checked against its proof as it came: combine the first t
    const chosen = valid.slice(0, state.threshold)
    return {
      plaintext: openWithShares(pub, ct, new Map(chosen.map(v => [v.identifier, v.point])), aad),
      helpers: chosen.map(v => v.member),
      excluded
    }
  }

  // ------------------------------------------------------------------ agent keys

  async deriveAgentSeed(kind: string, id: string, options: AbortOptions = {}): Promise<AgentSeed> {
    checkAgentName(kind, id)
    const state = this.requireState()
    const pub = state.key.public
    const t = state.threshold
    const group = groupKeyOf(state)
    const H = agentKeyPoint(group, kind, id)
    const request: DeriveRequest = { v: 1, type: 'derive', group, epoch: state.epoch, kind, id }
    const excluded = new Map<PrincipalId, Error>()
    const valid: Array<{ member: PrincipalId; identifier: string; point: GroupPoint }> = []
    // members still asked once the key is derived are let go
    const stop = new AbortController()
    const signal = options.signal == null ? stop.signal : AbortSignal.any([stop.signal, options.signal])
    let settled = false
    await new Promise<void>(resolve => {
      let pending = state.members.length
      let settle: ReturnType<typeof setTimeout> | undefined
      const finish = (): void => {
        if (settled) return
        settled = true
        clearTimeout(settle)
        stop.abort()
        resolve()
      }
      const ask = async (member: PrincipalId): Promise<void> => {
        try {
          let share: DerivationShare
          if (member === this.self) share = derivationShare(state.key, kind, id)
          else {
            const a = await this.requestFrost(member, request, 'derivation', { signal })
            share = { identifier: a.identifier, share: a.share, proof: a.proof }
          }
          if (share.identifier !== memberIdentifier(member))
            throw new ThresholdError(`${member} answered for another member`, member)
          const point = blame(member, () => verifyDerivationShare(pub, kind, id, share, H))
          if (!settled) valid.push({ member, identifier: share.identifier, point })
        } catch (err) {
          if (!settled) excluded.set(member, err as Error)
        } finally {
          pending--
          if (pending === 0) finish()
          else if (valid.length >= t && settle == null) settle = setTimeout(finish, this.deriveSettle)
        }
      }
      for (const member of state.members) void ask(member)
    })
    options.signal?.throwIfAborted()
    if (valid.length < t) {
      const tag = deriveTag(kind)
      throw new NotEnoughSignersError(
        `${valid.length} of ${state.members.length} members gave a valid partial evaluation of agent ` +
          `${kind}/${id}; ${t} are needed: ` +
          describeFailures(excluded, this.self, tag.text, tag.text),
        excluded
      )
    }
    // each partial was checked against its proof as it came: combine the first t
    const chosen = valid.slice(0, t)
    const seed = seedFromPartials(pub, kind, id, new Map(chosen.map(v => [v.identifier, v.point])))
    const principal = await agentPrincipal(seed)
    this.log('derived the key of agent %s/%s, %s, from %d members', kind, id, principal, chosen.length)
    return { seed, principal, signers: chosen.map(v => v.member), excluded }
  }

  /** A member's partial evaluation for an agent key: within the peer's budget, for an authorized requester only. */
  private async answerDerive(request: DeriveRequest, from: PrincipalId): Promise<FrostAnswer> {
    if (!this.derivations.take(from))
      throw new RateLimitedError(`${from} asked for more agent-key evaluations than this member gives a peer`)
    try {
      await this.authorizeRequester(from, deriveTag(request.kind))
      const state = this.stateFor(request.group, request.epoch)
      const d = derivationShare(state.key, request.kind, request.id)
      return { v: 1, type: 'derivation', identifier: d.identifier, share: d.share, proof: d.proof }
    } finally {
      this.derivations.release(from)
    }
  }

  // ------------------------------------------------------------------ refresh

  async refresh(options: AbortOptions = {}): Promise<RefreshResult> {
    const state = this.requireState()
    if (this.refreshRun != null && this.refreshRun.expires > Date.now())
      throw new SigningRefusedError('another refresh is under way')
    if (this.liveReshare() != null) throw new SigningRefusedError('a resharing is under way')
    await this.dropStaged()
    const session = crypto.getRandomValues(new Uint8Array(32))
    const group = groupKeyOf(state)
    const epoch = state.epoch
    const others = state.members.filter(m => m !== this.self)
    const mine = await makeDeal(state, this.self, this.seed(), session)
    const run: RefreshRun = {
      session,
      coordinator: this.self,
      own: mine.own,
      deal: mine.deal,
      expires: Date.now() + this.sessionTtl
    }
    this.refreshRun = run
    const acks: Array<{ from: string; sig: Uint8Array }> = []
    try {
      const deals = new Map<PrincipalId, Uint8Array>([[this.self, mine.deal]])
      await this.allOrFail(
        others,
        async m => {
          const a = await this.requestFrost(m, { v: 1, type: 'refresh-deal', group, epoch, session }, 'deal', options)
          deals.set(m, a.deal)
        },
        TAGS.refresh
      )
      const all = state.members.map(m => deals.get(m) as Uint8Array)
      const staged = await this.stage(state, run, all)
      const digest = publicDigest(staged)
      acks.push({ from: this.self, sig: await this.ack(staged, session, digest) })
      await this.allOrFail(
        others,
        async m => {
          const a = await this.requestFrost(
            m,
            { v: 1, type: 'refresh-apply', group, epoch, session, deals: all },
            'staged',
            options
          )
          if (!equalBytes(a.digest, digest)) throw new EquivocationError(`${m} computed other public shares`, m)
          acks.push({ from: m, sig: a.ack })
        },
        TAGS.refresh
      )
      // everyone holds the new share staged and said so, signed: switch here, then tell the others
      await this.commitStaged(run, acks)
    } catch (err) {
      await this.dropStaged()
      throw err
    }
    const lagging = new Map<PrincipalId, Error>()
    await Promise.all(
      others.map(async m => {
        try {
          await this.requestFrost(
            m,
            { v: 1, type: 'refresh-commit', group, epoch, session, acks },
            'committed',
            options
          )
        } catch (err) {
          lagging.set(m, err as Error)
        }
      })
    )
    return { ...(this.info() as ClusterInfo), lagging }
  }

  private currentRefresh(session: Uint8Array, from: PrincipalId): RefreshRun {
    const run = this.refreshRun
    if (run == null || !equalBytes(run.session, session) || run.coordinator !== from || run.expires <= Date.now())
      throw new WrongSessionError('no such refresh from this coordinator')
    return run
  }

  /** Opens and checks every deal, computes the new share and keeps it staged (on disk) until the commit. */
  private async stage(state: ClusterState, run: RefreshRun, deals: Uint8Array[]): Promise<ClusterState> {
    if (deals.length !== state.members.length)
      throw new NotEnoughSignersError('a refresh needs one deal from every member')
    // our own deal in the list must be the one we made: a coordinator cannot show others another
    if (!deals.some(d => equalBytes(d, run.deal)))
      throw new EquivocationError('the refresh does not carry this member’s deal')
    // the deals' points are checked once, when opened, and reused when applied
    const points = new PointCache()
    const received = await openDeals(state, this.self, this.seed(), run.session, deals, run.own, points)
    const key = applyRefresh(state.key, this.self, state.members, received, points)
    const staged: ClusterState = { ...state, epoch: state.epoch + 1, key }
    await this.store.save('staged', encodeClusterState(staged))
    run.staged = staged
    return staged
  }

  /** This member's signed statement that it staged `staged` in `session`. */
  private async ack(staged: ClusterState, session: Uint8Array, digest: Uint8Array): Promise<Uint8Array> {
    return await signAs(
      this.seed(),
      REFRESH_ACK_DOMAIN,
      refreshAckBody(groupKeyOf(staged), staged.epoch, session, digest)
    )
  }

  /**
   * Switches to the staged share once every member's ack says it staged the same public package.
   * The new share is on disk as current before the staged copy goes: a crash keeps one of them.
   */
  private async commitStaged(run: RefreshRun, acks: Array<{ from: string; sig: Uint8Array }>): Promise<void> {
    const staged = run.staged
    if (staged == null) throw new WrongSessionError('nothing staged for this refresh')
    const body = refreshAckBody(groupKeyOf(staged), staged.epoch, run.session, publicDigest(staged))
    for (const m of staged.members) {
      const ack = acks.find(a => a.from === m)
      if (ack == null || !(await verifyAs(principalPublicKey(m), REFRESH_ACK_DOMAIN, body, ack.sig)))
        throw new EquivocationError(`no valid ack from ${m} for this refresh: members may hold different shares`, m)
    }
    await this.keep(staged)
    await this.store.remove('staged')
    this.refreshRun = undefined
  }

  /** Forgets an unfinished refresh and its staged share. */
  private async dropStaged(): Promise<void> {
    this.refreshRun = undefined
    await this.store.remove('staged')
  }

  // ------------------------------------------------------------------ repair and resharing

  private liveReshare(): ReshareRun | undefined {
    if (this.reshareRun != null && this.reshareRun.expires <= Date.now()) this.reshareRun = undefined
    return this.reshareRun
  }

  private liveRepair(): RepairRun | undefined {
    if (this.repairRun != null && this.repairRun.expires <= Date.now()) this.repairRun = undefined
    return this.repairRun
  }

  private async requestReshare<K extends ReshareAnswer['type']>(
    member: PrincipalId,
    request: ReshareRequest,
    expected: K,
    options: AbortOptions
  ): Promise<Extract<ReshareAnswer, { type: K }>> {
    if (member === this.self) {
      const answer = await this.handleReshare(request, this.self)
      if (answer.type !== expected) throw new ThresholdError(`this node answered itself with ${answer.type}`)
      return answer as Extract<ReshareAnswer, { type: K }>
    }
    return await this.request(member, RESHARE_WIRE, encodeReshareMessage(request), expected, options)
  }

  private async answerReshare(bytes: Uint8Array, connection: Connection): Promise<Uint8Array> {
    try {
      const request = decodeReshareMessage(bytes)
      return encodeReshareMessage(
        await this.handleReshare(request as ReshareRequest, principalFromPeerId(connection.remotePeer))
      )
    } catch (err) {
      this.log('refusing a repair or resharing request from %p - %e', connection.remotePeer, err)
      return encodeReshareMessage(errorAnswer(err))
    }
  }

  /** Throws NoMemberChainError unless `member` holds a `(cyberspace member)` chain by this node's ACL. */
  private async checkMemberChain(member: PrincipalId, coordinator: PrincipalId): Promise<void> {
    await this.components.spki.authorizeOrProve(member, TAGS.member.tag, {
      timeout: this.timeout,
      providers: coordinator === this.self ? [] : [peerIdFromPrincipal(coordinator)],
      refuse: (local, remote) =>
        new NoMemberChainError(
          `${member} holds no ${TAGS.member.text} chain this node accepts: ${remote.message} (locally: ${local.message})`,
          member
        )
    })
  }

  private async handleReshare(request: ReshareRequest, from: PrincipalId): Promise<ReshareAnswer> {
    switch (request.type) {
      case 'repair-deal': {
        // who asks is checked before anything else is looked at
        await this.authorizeRequester(from, TAGS.repair)
        const state = this.stateFor(request.group, request.epoch)
        const member = request.member as PrincipalId
        const helpers = request.helpers as PrincipalId[]
        checkRepairPlan(state, member, helpers)
        if (!helpers.includes(this.self)) throw new NotAMemberError('this member is not among the helpers')
        const run = this.liveRepair()
        if (run != null && equalBytes(run.session, request.session) && run.coordinator === from)
          return { v: 1, type: 'piece', piece: run.deal }
        if (run != null && run.coordinator !== from) throw new SigningRefusedError('another repair is under way')
        const { deal, own } = await makeRepairDeal(state, this.self, this.seed(), request.session, member, helpers)
        this.repairRun = {
          session: request.session,
          coordinator: from,
          member,
          helpers,
          deal,
          own,
          expires: Date.now() + this.sessionTtl
        }
        return { v: 1, type: 'piece', piece: deal }
      }
      case 'repair-sum': {
        const run = this.liveRepair()
        if (
          run == null ||
          run.coordinator !== from ||
          !equalBytes(run.session, request.session) ||
          run.member !== request.member ||
          run.helpers.join(',') !== request.helpers.join(',')
        )
          throw new WrongSessionError('no such repair from this coordinator')
        const state = this.stateFor(request.group, request.epoch)
        // one sum per run: whatever happens next, these pieces are not used again
        this.repairRun = undefined
        const pieces = await openRepairDeals(
          state,
          this.self,
          this.seed(),
          run.session,
          run.member,
          run.helpers,
          request.deals,
          { deal: run.deal, piece: run.own }
        )
        const sum = await makeRepairSum(state, this.self, this.seed(), run.session, run.member, pieces)
        return { v: 1, type: 'piece', piece: sum }
      }
      case 'repair-share':
        return await this.storeRepaired(request, from)
      case 'reshare-deal': {
        await this.authorizeRequester(from, TAGS.reshare)
        const state = this.stateFor(request.group, request.epoch)
        const plan = checkReshareRequest(state, request)
        if (!plan.dealers.includes(this.self)) throw new NotAMemberError('this member is not among the dealers')
        this.claimReshare(request.session, from)
        const run = this.liveReshare()
        if (run?.dealt != null && equalBytes(run.session, request.session))
          return { v: 1, type: 'piece', piece: run.dealt.deal }
        // this member hands a function of its share to the new set: only to members it accepts
        if (from !== this.self) for (const m of plan.members) await this.checkMemberChain(m, from)
        const dealt = await makeReshareDeal(state, this.self, this.seed(), request.session, plan)
        this.reshareRun = {
          session: request.session,
          coordinator: from,
          plan,
          dealt,
          expires: Date.now() + this.sessionTtl
        }
        return { v: 1, type: 'piece', piece: dealt.deal }
      }
      case 'reshare-apply':
        return await this.stageReshare(request, from)
      case 'reshare-commit':
        return await this.commitReshare(request, from)
      case 'reshare-retire':
        return await this.retireReshare(request, from)
      case 'reshare-abort': {
        const run = this.liveReshare()
        if (run != null && run.coordinator === from && equalBytes(run.session, request.session)) {
          this.reshareRun = undefined
          if (run.staged != null) await this.store.remove('staged')
        }
        return { v: 1, type: 'aborted', epoch: this.state?.epoch ?? 0 }
      }
    }
  }

  /** Refuses a resharing step while another coordinator's resharing, or a refresh, is under way here. */
  private claimReshare(session: Uint8Array, coordinator: PrincipalId): void {
    if (this.refreshRun != null && this.refreshRun.expires > Date.now())
      throw new SigningRefusedError('a refresh is under way')
    const run = this.liveReshare()
    if (run != null && run.coordinator !== coordinator) throw new SigningRefusedError('another resharing is under way')
    // the same coordinator starting over replaces its own earlier run
    if (run != null && !equalBytes(run.session, session)) this.reshareRun = undefined
  }

  /**
   * A coordinator hands a member the package to repair or reshare from; a member that holds that
   * generation takes only its own (else a made-up package of the same group key would replace its
   * share). Throws EquivocationError.
   */
  private checkOwnPackage(held: ClusterState, pkg: PublicPackage): void {
    if (!equalBytes(packageDigest(pkg), packageDigest(publicPackage(held))))
      throw new EquivocationError(`the package given is not the one this member holds at generation ${held.epoch}`)
  }

  /**
   * At a member holding an older generation, the members that signed the pieces (and so the
   * package's digest) must be members it knew or hold a `(cyberspace member)` chain here, not keys
   * the coordinator made up. A node without a share has nothing to compare with: the coordinator's
   * grant is what it relies on.
   */
  private async checkVouchers(signers: PrincipalId[], coordinator: PrincipalId): Promise<void> {
    const held = this.state
    if (held == null) return
    for (const s of signers) if (!held.members.includes(s)) await this.checkMemberChain(s, coordinator)
  }

  /** Repair step 3 at the member: checks the sums against the package it is given, and keeps the share. */
  private async storeRepaired(
    request: Extract<ReshareRequest, { type: 'repair-share' }>,
    from: PrincipalId
  ): Promise<ReshareAnswer> {
    await this.authorizeRequester(from, TAGS.repair)
    const pkg = request.package
    const members = pkg.members as PrincipalId[]
    if (!members.includes(this.self)) throw new NotAMemberError('this node is not a member of that group')
    const held = this.state
    if (held != null && !equalBytes(groupKeyOf(held), pkg.commitments[0]))
      throw new ClusterExistsError(`this node holds a share of another cluster, ${clusterPrincipal(held)}`)
    if (held != null && held.epoch > pkg.epoch)
      throw new WrongEpochError(`this member holds share generation ${held.epoch}, newer than ${pkg.epoch}`)
    if (held != null && held.epoch === pkg.epoch) this.checkOwnPackage(held, pkg)
    const points = new PointCache()
    const pub = packagePublic(pkg, points)
    const sums = await openRepairSums(pkg, this.self, this.seed(), request.session, request.sums)
    await this.checkVouchers(sums.helpers, from)
    // the rebuilt share must be the one the group's verifying share commits to
    const key = recoverShare(pub, this.self, sums.values, points)
    await this.keep({ members, threshold: pkg.threshold, epoch: pkg.epoch, key })
    this.log('share of %s repaired at generation %d', clusterPrincipal(this.state as ClusterState), pkg.epoch)
    return { v: 1, type: 'repaired', epoch: pkg.epoch }
  }

  /** Resharing step 2 at a new member: checks every deal, computes and stages the new share, acks it. */
  private async stageReshare(
    request: Extract<ReshareRequest, { type: 'reshare-apply' }>,
    from: PrincipalId
  ): Promise<ReshareAnswer> {
    await this.authorizeRequester(from, TAGS.reshare)
    const plan: ResharePlan = {
      members: request.members as PrincipalId[],
      threshold: request.threshold,
      dealers: request.dealers as PrincipalId[]
    }
    if (!plan.members.includes(this.self)) throw new NotAMemberError('this node is not among the new members')
    const pkg = request.package
    const group = pkg.commitments[0]
    const held = this.state
    if (held != null && !equalBytes(groupKeyOf(held), group))
      throw new ClusterExistsError(`this node holds a share of another cluster, ${clusterPrincipal(held)}`)
    if (held == null && (this.generating || this.liveDkgRun() != null))
      throw new ClusterExistsError('a key generation is under way at this node')
    if (held != null && held.epoch > pkg.epoch)
      throw new WrongEpochError(`this member holds share generation ${held.epoch}, newer than ${pkg.epoch}`)
    if (held != null && held.epoch === pkg.epoch) this.checkOwnPackage(held, pkg)
    this.claimReshare(request.session, from)
    let run = this.liveReshare()
    if (run?.staged != null) {
      if (!equalBytes(run.session, request.session)) throw new WrongSessionError('another resharing is staged')
      return { v: 1, type: 'staged', digest: run.staged.digest, ack: run.staged.ack }
    }
    if (run == null) {
      run = { session: request.session, coordinator: from, plan, expires: Date.now() + this.sessionTtl }
      this.reshareRun = run
    } else if (
      run.plan.threshold !== plan.threshold ||
      run.plan.members.join(',') !== plan.members.join(',') ||
      run.plan.dealers.join(',') !== plan.dealers.join(',')
    )
      throw new WrongSessionError('the resharing to stage is not the one this member dealt for')
    if (plan.dealers.includes(this.self) && run.dealt == null)
      throw new WrongSessionError('this member is a dealer of that resharing but made no deal for it')
    const own = run.dealt?.own == null ? undefined : { deal: run.dealt.deal, piece: run.dealt.own }
    const received = await openReshareDeals(pkg, this.self, this.seed(), request.session, plan, request.deals, own)
    await this.checkVouchers(plan.dealers, from)
    // the old package's points are checked once and reused for every deal's constant term
    const points = new PointCache()
    const key = combineReshare(
      packagePublic(pkg, points),
      plan.dealers,
      this.self,
      plan.members,
      plan.threshold,
      received,
      points
    )
    const staged: ClusterState = { members: plan.members, threshold: plan.threshold, epoch: pkg.epoch + 1, key }
    const digest = packageDigest(publicPackage(staged))
    await this.store.save('staged', encodeClusterState(staged))
    const ack = await signAs(
      this.seed(),
      RESHARE_ACK_DOMAIN,
      reshareAckBody(group, staged.epoch, request.session, digest)
    )
    run.staged = { state: staged, digest, ack }
    return { v: 1, type: 'staged', digest, ack }
  }

  /**
   * Resharing step 3: with every new member's ack of the same package, a new member switches to
   * its staged share and a removed member deletes its share. Repeated, it answers the same.
   */
  private async commitReshare(
    request: Extract<ReshareRequest, { type: 'reshare-commit' }>,
    from: PrincipalId
  ): Promise<ReshareAnswer> {
    const done = this.reshareDone
    if (done?.answer.type === 'committed' && equalBytes(done.session, request.session)) return done.answer
    const members = request.members as PrincipalId[]
    // cheap checks of who asks come first; the (up to 64) ack signatures only after them
    if (!members.includes(this.self))
      throw new NotAMemberError('this node is not among the new members: a removed member is told by reshare-retire')
    const run = this.liveReshare()
    const staged = run?.staged
    if (run == null || staged == null || run.coordinator !== from || !equalBytes(run.session, request.session))
      throw new WrongSessionError('nothing staged for this resharing from this coordinator')
    if (
      !equalBytes(staged.digest, request.digest) ||
      staged.state.epoch !== request.epoch ||
      staged.state.members.join(',') !== members.join(',')
    )
      throw new EquivocationError('the acks are for another new package than the one staged here')
    await checkReshareAcks(request.group, request.epoch, request.session, request.digest, members, request.acks)
    await this.keep(staged.state)
    await this.store.remove('staged')
    this.reshareRun = undefined
    // signed, so that removed members can see t_new new members switched before they delete theirs
    const sig = await signAs(
      this.seed(),
      RESHARE_SWITCHED_DOMAIN,
      reshareAckBody(request.group, request.epoch, request.session, request.digest)
    )
    const answer: ReshareAnswer = { v: 1, type: 'committed', epoch: staged.state.epoch, sig }
    this.reshareDone = { session: request.session, answer }
    this.log('switched to share generation %d of %s', staged.state.epoch, clusterPrincipal(staged.state))
    return answer
  }

  /**
   * Resharing step 4 at a removed member: the deals come from t members of its own generation for
   * a plan that leaves it out, and t_new new members signed they switched to the package those
   * deals make; then its share goes. Repeated, it answers the same.
   */
  private async retireReshare(
    request: Extract<ReshareRequest, { type: 'reshare-retire' }>,
    from: PrincipalId
  ): Promise<ReshareAnswer> {
    const done = this.reshareDone
    if (done?.answer.type === 'retired' && equalBytes(done.session, request.session)) return done.answer
    await this.authorizeRequester(from, TAGS.reshare)
    const state = this.requireState()
    if (!equalBytes(groupKeyOf(state), request.group))
      throw new NoClusterError('this node holds no share of that cluster')
    if (request.epoch !== state.epoch + 1)
      throw new WrongEpochError(`a resharing to generation ${request.epoch} cannot retire generation ${state.epoch}`)
    await checkRetirement(state, this.self, request.session, request.deals, request.switched)
    await this.store.remove('current')
    await this.store.remove('staged')
    this.state = undefined
    this.signer = undefined
    this.reshareRun = undefined
    this.refreshRun = undefined
    this.repairRun = undefined
    const answer: ReshareAnswer = { v: 1, type: 'retired', epoch: request.epoch }
    this.reshareDone = { session: request.session, answer }
    this.log('retired from %s: its key moved to a new member set', principalId(request.group))
    return answer
  }

  async repair(member: PrincipalId, options: AbortOptions = {}): Promise<RepairResult> {
    const state = this.requireState()
    if (!state.members.includes(member))
      throw new NotAMemberError(`${member} is not a member of this cluster: only a member's share can be repaired`)
    if (member === this.self)
      throw new RangeError('a member is repaired by the others: run cluster repair for this node on another member')
    const t = state.threshold
    const group = groupKeyOf(state)
    const epoch = state.epoch
    const excluded = new Map<PrincipalId, Error>()
    const candidates = [this.self, ...state.members.filter(m => m !== this.self && m !== member)]
    // each failed attempt leaves out at least one helper
    for (let attempt = 0; attempt <= candidates.length - t; attempt++) {
      const left = candidates.filter(m => !excluded.has(m))
      if (left.length < t)
        throw new NotEnoughSignersError(
          `${left.length} members can help repair ${member}; ${t} are needed: ` +
            describeFailures(excluded, this.self, TAGS.repair.text)
        )
      const helpers = left.slice(0, t).sort() as PrincipalId[]
      const session = crypto.getRandomValues(new Uint8Array(32))
      const base = { v: 1 as const, group, epoch, session, member, helpers }
      const deals = new Map<PrincipalId, Uint8Array>()
      const dealt = await this.everyOrExclude(helpers, excluded, async h => {
        const a = await this.requestReshare(h, { ...base, type: 'repair-deal' }, 'piece', options)
        deals.set(h, a.piece)
      })
      if (!dealt) continue
      const all = helpers.map(h => deals.get(h) as Uint8Array)
      const sums = new Map<PrincipalId, Uint8Array>()
      const summed = await this.everyOrExclude(helpers, excluded, async h => {
        const a = await this.requestReshare(h, { ...base, type: 'repair-sum', deals: all }, 'piece', options)
        sums.set(h, a.piece)
      })
      if (!summed) continue
      await this.requestReshare(
        member,
        {
          v: 1,
          type: 'repair-share',
          session,
          package: publicPackage(state),
          sums: helpers.map(h => sums.get(h) as Uint8Array)
        },
        'repaired',
        options
      )
      return { ...(this.info() as ClusterInfo), member, helpers, excluded }
    }
    throw new NotEnoughSignersError(
      `too few members could help repair ${member}: ` + describeFailures(excluded, this.self, TAGS.repair.text)
    )
  }

  /** Runs `fn` for every member; those that fail go into `excluded`. True when none failed. */
  private async everyOrExclude(
    members: PrincipalId[],
    excluded: Map<PrincipalId, Error>,
    fn: (m: PrincipalId) => Promise<void>
  ): Promise<boolean> {
    const results = await Promise.allSettled(members.map(fn))
    results.forEach((r, i) => {
      if (r.status === 'rejected') excluded.set(members[i], r.reason as Error)
    })
    return results.every(r => r.status === 'fulfilled')
  }

  async reshare(members: PrincipalId[], threshold: number, options: ReshareOptions = {}): Promise<ReshareResult> {
    this.requireState()
    // two resharings run from this node at once would replace each other's runs at every member
    if (this.resharing) throw new SigningRefusedError('a resharing coordinated by this node is under way')
    this.resharing = true
    try {
      return await this.coordinateReshare(members, threshold, options)
    } finally {
      this.resharing = false
    }
  }

  private async coordinateReshare(
    members: PrincipalId[],
    threshold: number,
    options: ReshareOptions
  ): Promise<ReshareResult> {
    const state = this.requireState()
    const progress = (step: ReshareProgress['step'], message: string): void => {
      this.log('resharing: %s', message)
      options.onProgress?.({ step, message })
    }
    const next = [...new Set(members)].sort() as PrincipalId[]
    checkGroupParams(next, threshold)
    if (this.refreshRun != null && this.refreshRun.expires > Date.now())
      throw new SigningRefusedError('a refresh is under way')
    const live = this.liveReshare()
    if (live != null && live.coordinator !== this.self) throw new SigningRefusedError('another resharing is under way')
    const group = groupKeyOf(state)
    const epoch = state.epoch
    const pkg = publicPackage(state)

    progress('check', `checking that the ${next.length} new members hold ${TAGS.member.text} chains`)
    await this.allOrFail(next, async m => await this.checkMemberChain(m, this.self), TAGS.member)

    // deal: t old members, this node first; one that fails is left out and the deal starts over
    const excluded = new Map<PrincipalId, Error>()
    const candidates = [this.self, ...state.members.filter(m => m !== this.self)]
    let dealing: { session: Uint8Array; plan: ResharePlan; deals: Uint8Array[] } | undefined
    let lastSession: Uint8Array | undefined
    for (let attempt = 0; attempt <= candidates.length - state.threshold && dealing == null; attempt++) {
      const left = candidates.filter(m => !excluded.has(m))
      if (left.length < state.threshold) break
      const dealers = left.slice(0, state.threshold).sort() as PrincipalId[]
      const session = crypto.getRandomValues(new Uint8Array(32))
      lastSession = session
      const plan: ResharePlan = { members: next, threshold, dealers }
      progress('deal', `asking ${dealers.length} old members for deals (attempt ${attempt + 1})`)
      const deals = new Map<PrincipalId, Uint8Array>()
      const ok = await this.everyOrExclude(dealers, excluded, async d => {
        const a = await this.requestReshare(
          d,
          { v: 1, type: 'reshare-deal', group, epoch, session, members: next, threshold, dealers },
          'piece',
          options
        )
        deals.set(d, a.piece)
      })
      if (ok) dealing = { session, plan, deals: dealers.map(d => deals.get(d) as Uint8Array) }
    }
    if (dealing == null) {
      await this.abortReshare(lastSession, state.members, options)
      throw new NotEnoughSignersError(
        `fewer than ${state.threshold} old members could deal: ` +
          describeFailures(excluded, this.self, TAGS.reshare.text)
      )
    }
    const { session, plan, deals } = dealing

    // stage: every new member checks every deal and stages its share; all must, or nothing changes
    progress('stage', `${next.length} new members check the deals and stage their shares`)
    const acks: Array<{ from: string; sig: Uint8Array }> = []
    let digest: Uint8Array | undefined
    try {
      await this.allOrFail(
        next,
        async m => {
          const a = await this.requestReshare(
            m,
            {
              v: 1,
              type: 'reshare-apply',
              session,
              package: pkg,
              members: next,
              threshold,
              dealers: plan.dealers,
              deals
            },
            'staged',
            options
          )
          if (digest == null) digest = a.digest
          else if (!equalBytes(a.digest, digest)) throw new EquivocationError(`${m} computed another new package`, m)
          acks.push({ from: m, sig: a.ack })
        },
        TAGS.reshare
      )
      await checkReshareAcks(group, epoch + 1, session, digest as Uint8Array, next, acks)
    } catch (err) {
      await this.abortReshare(session, [...new Set([...plan.dealers, ...next])], options)
      throw err
    }

    // commit: decided; new members switch (this node last), then removed members delete theirs
    const commit = {
      v: 1 as const,
      type: 'reshare-commit' as const,
      group,
      epoch: epoch + 1,
      session,
      digest: digest as Uint8Array,
      members: next,
      acks
    }
    progress('commit', `telling the ${next.length} new members to switch`)
    const lagging = new Map<PrincipalId, Error>()
    // each new member that switched signs so; removed members delete their share only on t_new of these
    const switched: Array<{ from: string; sig: Uint8Array }> = []
    const tell = async (
      ms: PrincipalId[],
      message: ReshareRequest,
      expected: 'committed' | 'retired',
      into: Map<PrincipalId, Error>
    ) => {
      await Promise.all(
        ms.map(async m => {
          let answer: ReshareAnswer
          try {
            answer = await this.requestReshare(m, message, expected, options)
          } catch (first) {
            // a lost request or answer is asked once more: a member that switched answers the same
            try {
              if (first instanceof MemberRefusedError) throw first
              answer = await this.requestReshare(m, message, expected, options)
            } catch (err) {
              into.set(m, err as Error)
              return
            }
          }
          if (answer.type === 'committed') switched.push({ from: m, sig: answer.sig })
        })
      )
    }
    await tell(
      next.filter(m => m !== this.self),
      commit,
      'committed',
      lagging
    )
    if (next.includes(this.self)) await tell([this.self], commit, 'committed', lagging)
    const removed = state.members.filter(m => !next.includes(m))
    const retained = new Map<PrincipalId, Error>()
    if (removed.length > 0) {
      if (switched.length < threshold) {
        // the new key has fewer than t holders yet: old shares stay as the way back
        for (const m of removed)
          retained.set(
            m,
            new ThresholdError(`not told to delete its share: only ${switched.length} new members switched`)
          )
      } else {
        progress('retire', `telling the ${removed.length} removed members to delete their shares`)
        const retire: ReshareRequest = {
          v: 1,
          type: 'reshare-retire',
          group,
          epoch: epoch + 1,
          session,
          deals,
          switched
        }
        await tell(
          removed.filter(m => m !== this.self),
          retire,
          'retired',
          retained
        )
        if (removed.includes(this.self)) await tell([this.self], retire, 'retired', retained)
      }
    }
    return {
      principal: principalId(group),
      groupKey: group,
      threshold,
      members: next,
      epoch: epoch + 1,
      dealers: plan.dealers,
      excluded,
      lagging,
      retained
    }
  }

  /**
   * Tells `members` (this node among them) to forget the failed resharing `session` and its staged
   * shares, so it blocks no other; best effort: one that misses it forgets it after the session TTL.
   */
  private async abortReshare(
    session: Uint8Array | undefined,
    members: PrincipalId[],
    options: AbortOptions
  ): Promise<void> {
    if (session == null) return
    await Promise.allSettled(
      members.map(async m => {
        await this.requestReshare(m, { v: 1, type: 'reshare-abort', session }, 'aborted', options)
      })
    )
  }
}

/**
 * `check()`, with the error of a share that fails its proof or holds a malformed point or scalar
 * made `member`'s: so the member is named as having answered wrongly, not as silent.
 */
function blame<T>(member: PrincipalId, check: () => T): T {
  try {
    return check()
  } catch (err) {
    if (err instanceof InvalidShareError) throw new InvalidShareError(err.message, member)
    if (err instanceof InvalidPointError) throw new InvalidPointError(err.message, member)
    if (err instanceof InvalidScalarError) throw new InvalidScalarError(err.message, member)
    throw err
  }
}

/** Errors for a message that is dropped while the session goes on (DkgSession.receive's rules). */
const DROPPED = new Set(['ReplayedMessageError', 'MessageSignatureError', 'NotAMemberError', 'WrongSessionError'])

/** Feeds messages to a DKG session; those it drops are logged and skipped, an abort is thrown. */
async function receiveAll(dkg: DkgSession, messages: Uint8Array[], log: Logger): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for (const bytes of messages) {
    try {
      out.push(...(await dkg.receive(decodeDkgMessage(bytes))).map(encodeDkgMessage))
    } catch (err) {
      if (dkg.status === 'aborted' || !DROPPED.has((err as Error).name)) throw err
      log('dropping a key generation message - %e', err)
    }
  }
  return out
}

/** Throws unless `helpers` are t distinct members of `state` and `member` is another member. */
function checkRepairPlan(state: ClusterState, member: PrincipalId, helpers: PrincipalId[]): void {
  if (!state.members.includes(member))
    throw new NotAMemberError(`${member.slice(0, 64)} is not a member of this cluster: no share to repair`)
  if (helpers.includes(member)) throw new WrongSessionError('the member under repair cannot help repair itself')
  if (helpers.length !== state.threshold)
    throw new NotEnoughSignersError(`a repair takes exactly ${state.threshold} helpers`)
  for (const h of helpers)
    if (!state.members.includes(h)) throw new NotAMemberError(`helper ${h.slice(0, 64)} is not a member`)
}

/** The plan of a reshare-deal request, checked against this member's state. */
function checkReshareRequest(
  state: ClusterState,
  request: { members: string[]; threshold: number; dealers: string[] }
): ResharePlan {
  const plan: ResharePlan = {
    members: request.members as PrincipalId[],
    threshold: request.threshold,
    dealers: request.dealers as PrincipalId[]
  }
  checkGroupParams(plan.members, plan.threshold)
  if (plan.dealers.length !== state.threshold)
    throw new NotEnoughSignersError(`a resharing is dealt by exactly ${state.threshold} old members`)
  for (const d of plan.dealers)
    if (!state.members.includes(d)) throw new NotAMemberError(`dealer ${d.slice(0, 64)} is not a member`)
  return plan
}

/** Throws EquivocationError naming the first new member without a valid ack of this package. */
async function checkReshareAcks(
  group: Uint8Array,
  epoch: number,
  session: Uint8Array,
  digest: Uint8Array,
  members: PrincipalId[],
  acks: ReadonlyArray<{ from: string; sig: Uint8Array }>
): Promise<void> {
  const body = reshareAckBody(group, epoch, session, digest)
  for (const m of members) {
    const ack = acks.find(a => a.from === m)
    if (ack == null || !(await verifyAs(principalPublicKey(m), RESHARE_ACK_DOMAIN, body, ack.sig)))
      throw new EquivocationError(`no valid ack from ${m} for this resharing: members may hold different shares`, m)
  }
}

export function cluster(init: ClusterInit = {}): (components: ClusterComponents) => Cluster {
  return components => new ClusterService(components, init)
}
