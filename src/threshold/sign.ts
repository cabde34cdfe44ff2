/**
 * FROST signing sessions (RFC 9591 §5), network-independent: a `Signer` on each member, and
 * `coordinateSigning`, which asks members for nonce commitments, picks t that answered (itself
 * first, when the coordinator is a member), sends them
 * the signing package, checks every signature share, and aggregates an ordinary Ed25519
 * signature. A member that does not answer, refuses or sends a bad share is excluded (and named),
 * and the round is retried with fresh nonces among the rest, while t remain.
 *
 * A signer's nonces exist only in its memory, are bound to one session and one payload, are used
 * at most once (removed before signing) and expire unused after a while; they are never
 * persisted and never leave the signer — only their commitments do.
 *
 * @example
 * const signer = new Signer(key, principal, async req => { await policy(req) })
 * const { signature } = await coordinateSigning(key.public, members, payload, transport)
 */
import { equalBytes } from '@noble/curves/utils.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { ed25519 } from '../crypto/ed25519.ts'
import {
  describeFailures,
  InvalidShareError,
  NotEnoughSignersError,
  ReplayedMessageError,
  SigningRefusedError,
  ThresholdError,
  WrongSessionError
} from './errors.ts'
import { commitNonces, prepareRound } from './frost-round.ts'
import { memberIdentifier, PointCache } from './group.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { FrostPublic, Key, NonceCommitments, Nonces } from '@noble/curves/abstract/frost.js'

export interface SigningRequest {
  /** 32 random bytes naming one signing attempt. */
  session: Uint8Array
  coordinator: PrincipalId
  payload: Uint8Array
}

export interface SigningPackage extends SigningRequest {
  /** The commitments of the t chosen signers. */
  commitments: NonceCommitments[]
}

/** How a coordinator reaches members; each call may throw (unreachable, refused, timed out). */
export interface SigningTransport {
  commit(member: PrincipalId, request: SigningRequest): Promise<NonceCommitments>
  sign(member: PrincipalId, pkg: SigningPackage): Promise<Uint8Array>
}

/** Decides whether this member signs a request; throws SigningRefusedError (or any error) to refuse. */
export type SigningPolicy = (request: SigningRequest) => Promise<void>

export interface SignerOptions {
  /** How long committed nonces wait for their signing package, in ms; default 60 s. */
  nonceTtl?: number
  /** Most sessions with nonces outstanding; default 64. */
  maxPending?: number
  /**
   * Most sessions with nonces outstanding for one coordinator; default 16. A new one past it
   * forgets that coordinator's oldest: a coordinator asks every member to commit and uses t, so
   * the n − t it did not pick hold nonces that are never asked for, one per signature, until they
   * expire; a coordinator signing often would otherwise fill maxPending with them and be refused.
   * Only the asking coordinator's own sessions are forgotten, never another's.
   */
  maxPendingPerCoordinator?: number
  now?: () => number
  /** Points already checked by this node (default: a cache of its own). */
  points?: PointCache
}

interface Pending {
  nonces: Nonces
  commitments: NonceCommitments
  coordinator: PrincipalId
  payloadHash: Uint8Array
  expires: number
}

export class Signer {
  readonly principal: PrincipalId
  /** Points this signer has checked (or computed): its own key's, and commitments of open sessions. */
  readonly points: PointCache
  private readonly key: Key
  private readonly policy: SigningPolicy
  private readonly pending = new Map<string, Pending>()
  private readonly nonceTtl: number
  private readonly maxPending: number
  private readonly maxPendingPerCoordinator: number
  private readonly now: () => number

  constructor(key: Key, principal: PrincipalId, policy: SigningPolicy, options: SignerOptions = {}) {
    if (key.secret.identifier !== memberIdentifier(principal))
      throw new RangeError('the key share is not this principal’s')
    this.key = key
    this.principal = principal
    this.policy = policy
    this.nonceTtl = options.nonceTtl ?? 60_000
    this.maxPending = options.maxPending ?? 64
    this.maxPendingPerCoordinator = Math.min(options.maxPendingPerCoordinator ?? 16, this.maxPending)
    this.now = options.now ?? Date.now
    this.points = options.points ?? new PointCache()
  }

  /** Round 1: after the policy agrees, fresh nonces for this session; only their commitments are returned. */
  async commit(request: SigningRequest): Promise<NonceCommitments> {
    this.expire()
    // keyed by coordinator too: every member learns a session's id when asked to commit, and must
    // not be able to spend or pre-empt another coordinator's session by naming it
    const id = pendingKey(request.coordinator, request.session)
    this.checkRoom(id, request.coordinator)
    await this.policy(request)
    // the policy may take a while: the session and the limits are checked again after it
    this.expire()
    this.checkRoom(id, request.coordinator)
    this.forgetOldestBeyond(request.coordinator, this.maxPendingPerCoordinator - 1)
    const { nonces, commitments } = commitNonces(this.key.secret, this.points)
    this.pending.set(id, {
      nonces,
      commitments,
      coordinator: request.coordinator,
      payloadHash: sha256(request.payload),
      expires: this.now() + this.nonceTtl
    })
    return commitments
  }

  /** Round 2: the signature share over the payload committed to, with the nonces of that session, once. */
  signShare(pkg: SigningPackage): Uint8Array {
    this.expire()
    const id = pendingKey(pkg.coordinator, pkg.session)
    const pending = this.pending.get(id)
    // gone before anything else: whatever happens next, these nonces are never used again
    this.pending.delete(id)
    if (pending == null) throw new WrongSessionError('no nonces for this session (unknown, expired or used)')
    try {
      if (!equalBytes(pending.payloadHash, sha256(pkg.payload))) {
        throw new SigningRefusedError('the session committed to another payload')
      }
      // checks the list (t..n distinct members, every point) before anything is signed
      const round = prepareRound(this.key.public, pkg.commitments, pkg.payload, this.points)
      const own = pkg.commitments.find(c => c.identifier === this.key.secret.identifier)
      if (
        own == null ||
        !equalBytes(own.hiding, pending.commitments.hiding) ||
        !equalBytes(own.binding, pending.commitments.binding)
      ) {
        throw new SigningRefusedError('the package does not carry this signer’s commitments')
      }
      return round.signShare(this.key.secret, pending.nonces)
    } finally {
      pending.nonces.hiding.fill(0)
      pending.nonces.binding.fill(0)
    }
  }

  /** Sessions with nonces outstanding. */
  get open(): number {
    this.expire()
    return this.pending.size
  }

  /** Throws unless a new session `id` may open: not open already, and room for it (counting what its coordinator may recycle). */
  private checkRoom(id: string, coordinator: PrincipalId): void {
    if (this.pending.has(id)) throw new ReplayedMessageError('this session already has nonces')
    if (this.pending.size < this.maxPending) return
    // full: only a coordinator at its own limit makes room, by forgetting its own oldest
    if (this.openFor(coordinator) < this.maxPendingPerCoordinator)
      throw new SigningRefusedError(`${this.maxPending} signing sessions are already open`)
  }

  private openFor(coordinator: PrincipalId): number {
    let count = 0
    for (const p of this.pending.values()) if (p.coordinator === coordinator) count++
    return count
  }

  /** Forgets `coordinator`'s oldest sessions (the map keeps insertion order) until at most `keep` remain. */
  private forgetOldestBeyond(coordinator: PrincipalId, keep: number): void {
    let excess = this.openFor(coordinator) - keep
    for (const [id, p] of this.pending) {
      if (excess <= 0) return
      if (p.coordinator !== coordinator) continue
      p.nonces.hiding.fill(0)
      p.nonces.binding.fill(0)
      this.pending.delete(id)
      excess--
    }
  }

  private expire(): void {
    const now = this.now()
    for (const [id, p] of this.pending) {
      if (p.expires > now) continue
      p.nonces.hiding.fill(0)
      p.nonces.binding.fill(0)
      this.pending.delete(id)
    }
  }
}

/** The key of a session's nonces: its coordinator and its id; an id of anything but 32 bytes is refused by name. */
function pendingKey(coordinator: PrincipalId, session: unknown): string {
  if (!(session instanceof Uint8Array) || session.length !== 32) throw new WrongSessionError('a session id is 32 bytes')
  return `${coordinator} ${bytesToHex(session)}`
}

export interface SigningResult {
  signature: Uint8Array
  /** The members whose shares made the signature. */
  signers: PrincipalId[]
  /** Members left out, with why (unreachable, refused, bad share). */
  excluded: Map<PrincipalId, Error>
  attempts: number
}

export interface CoordinateOptions {
  coordinator: PrincipalId
  /** Attempts before giving up; default n − t + 1 (each failed attempt excludes someone). */
  maxAttempts?: number
  /** Points this node has already checked (its Signer's cache); default a cache for this call. */
  points?: PointCache
}

/**
 * Runs signing rounds until t members produce valid shares. Throws NotEnoughSignersError (listing
 * why each excluded member is out) when fewer than t remain.
 */
export async function coordinateSigning(
  pub: FrostPublic,
  members: PrincipalId[],
  payload: Uint8Array,
  transport: SigningTransport,
  options: CoordinateOptions
): Promise<SigningResult> {
  const t = pub.signers.min
  if (new Set(members).size !== members.length) throw new RangeError('members repeat')
  for (const m of members) {
    if (pub.verifyingShares[memberIdentifier(m)] == null) throw new RangeError(`${m} has no share in this group`)
  }
  const excluded = new Map<PrincipalId, Error>()
  const points = options.points ?? new PointCache()
  const maxAttempts = options.maxAttempts ?? members.length - t + 1
  const notEnough = (): NotEnoughSignersError =>
    new NotEnoughSignersError(
      `${members.length - excluded.size} of ${members.length} members can sign; ${t} are needed. ` +
        describeFailures(excluded, options.coordinator)
    )
  // a coordinator that is a member asks itself first, so it is one of the t whenever it can sign:
  // its commitments and share are computed in place, and it has checked every point of the list
  const order = members.includes(options.coordinator)
    ? [options.coordinator, ...members.filter(m => m !== options.coordinator)]
    : members
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const candidates = order.filter(m => !excluded.has(m))
    if (candidates.length < t) throw notEnough()
    const request: SigningRequest = {
      session: crypto.getRandomValues(new Uint8Array(32)),
      coordinator: options.coordinator,
      payload
    }
    const answers = await Promise.allSettled(candidates.map(async m => await transport.commit(m, request)))
    const committed: Array<{ member: PrincipalId; commitments: NonceCommitments }> = []
    answers.forEach((a, i) => {
      const member = candidates[i]
      if (a.status === 'rejected') {
        excluded.set(member, a.reason instanceof Error ? a.reason : new ThresholdError(String(a.reason)))
        return
      }
      try {
        if (a.value.identifier !== memberIdentifier(member))
          throw new InvalidShareError('commitments under another identifier', member)
        points.parse(a.value.hiding, 'hiding commitment')
        points.parse(a.value.binding, 'binding commitment')
        committed.push({ member, commitments: a.value })
      } catch (err) {
        excluded.set(member, err as Error)
      }
    })
    if (committed.length < t) throw notEnough()
    const chosen = committed.slice(0, t)
    const pkg: SigningPackage = { ...request, commitments: chosen.map(c => c.commitments) }
    const shares = await Promise.allSettled(chosen.map(async c => await transport.sign(c.member, pkg)))
    const round = prepareRound(pub, pkg.commitments, payload, points)
    const arrived = new Map<string, Uint8Array>()
    shares.forEach((s, i) => {
      if (s.status === 'fulfilled') arrived.set(chosen[i].commitments.identifier, s.value)
    })
    // every share in one weighted check; one by one only if that fails: the same shares are
    // refused as checking each alone would refuse
    const invalid = new Set(round.invalidShares(arrived))
    const valid = new Map<string, Uint8Array>()
    shares.forEach((s, i) => {
      const { member, commitments } = chosen[i]
      if (s.status === 'rejected') {
        excluded.set(member, s.reason instanceof Error ? s.reason : new ThresholdError(String(s.reason)))
      } else if (invalid.has(commitments.identifier)) {
        excluded.set(member, new InvalidShareError(`${member} sent a signature share that does not verify`, member))
      } else {
        valid.set(commitments.identifier, s.value)
      }
    })
    if (valid.size < t) continue
    const signature = round.aggregate(valid)
    // an ordinary Ed25519 signature: check it as anyone will
    if (!(await (await ed25519()).verify(pub.commitments[0], payload, signature))) {
      throw new ThresholdError('the aggregated signature does not verify')
    }
    return { signature, signers: chosen.map(c => c.member), excluded, attempts: attempt }
  }
  throw notEnough()
}
