/**
 * A distributed key generation session (FROST DKG, Pedersen with proofs of knowledge) among
 * named members, authenticated: every message is signed by its sender's principal, round-2 shares
 * are encrypted to their recipient, and a third round confirms that every member saw the same
 * round-1 transcript and computed the same group key (so a member who equivocates — sends
 * different commitments to different members — is caught). No member ever holds the group secret.
 *
 *   round 1  each member broadcasts VSS commitments, a proof of knowledge and an X25519 key
 *   round 2  each member sends every other its share f_i(x_j), sealed to the recipient's key
 *   confirm  each member broadcasts sha256(transcript) and the group key
 *
 * The session is a state machine: `start()` and `receive(msg)` return the messages to send (all
 * broadcast except round 2, which names its recipient). A bad proof, share or confirmation aborts
 * the session with a ThresholdError naming the culprit; messages that cannot be attributed (bad
 * signature, wrong session, non-member) are refused without aborting.
 *
 * @example
 * const s = new DkgSession({ session, members, threshold: 3 }, { principal, secretKey })
 * send(await s.start()); for each incoming msg: send(await s.receive(msg))
 * s.outcome() // { key, groupKey, clusterPrincipal, … } once done
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js'
import { x25519 } from '@noble/curves/ed25519.js'
import { equalBytes } from '@noble/curves/utils.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes } from '@noble/hashes/utils.js'
import { DKG_DOMAIN, dkgSigningBody, encodeDkgMessage } from '../../protocols/dkg/codec.ts'
import { principalId, principalPublicKey } from '../crypto/principal.ts'
import { signAs, verifyAs } from '../crypto/sign.ts'
import { checkGroupParams } from './dealer.ts'
import {
  EquivocationError,
  InvalidShareError,
  MessageSignatureError,
  NotAMemberError,
  ReplayedMessageError,
  ThresholdError,
  WrongRoundError,
  WrongSessionError
} from './errors.ts'
import {
  evaluate,
  evaluateCommitments,
  Fn,
  identifierScalar,
  memberIdentifier,
  parseCurvePoint,
  parsePoint,
  parseScalar,
  Point,
  randomScalar,
  readShares,
  scalarOfHash
} from './group.ts'
import type { DkgConfirm, DkgMessage, DkgRound1, DkgRound2 } from '../../protocols/dkg/codec.ts'
import type { GroupPoint, Identifier } from './group.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Key } from '@noble/curves/abstract/frost.js'

export interface DkgParams {
  /** 32 random bytes naming this run; bound into every message. */
  session: Uint8Array
  members: PrincipalId[]
  threshold: number
}

export interface DkgSelf {
  principal: PrincipalId
  /** The 32-byte Ed25519 secret of `principal`, for signing this session's messages. */
  secretKey: Uint8Array
}

export interface DkgOutcome {
  /** This member's FROST key package: its share (secret) and the group's public data. */
  key: Key
  /** The group public key: an ordinary Ed25519 public key. */
  groupKey: Uint8Array
  clusterPrincipal: PrincipalId
  members: PrincipalId[]
  threshold: number
}

type State = 'new' | 'round1' | 'round2' | 'confirm' | 'done' | 'aborted'

const SHARE_DOMAIN = 'cyberspace/dkg-share/v1'
/** noble's FROST(Ed25519) DKG proof-of-knowledge hash prefix (RFC 9591 suite name + "dkg"). */
const POK_DST = new TextEncoder().encode('FROST-ED25519-SHA512-v1dkg')

export class DkgSession {
  readonly members: PrincipalId[]
  readonly threshold: number
  readonly session: Uint8Array
  private readonly self: DkgSelf
  private state: State = 'new'
  private failure?: ThresholdError
  private readonly round1 = new Map<PrincipalId, DkgRound1>()
  private readonly round2 = new Map<PrincipalId, DkgRound2>()
  private readonly confirms = new Map<PrincipalId, DkgConfirm>()
  /** Each other member's round-1 commitments, checked and parsed once. */
  private readonly commitments = new Map<PrincipalId, GroupPoint[]>()
  /** This member's secret polynomial, lowest coefficient first, until the key is made. */
  private coefficients?: bigint[]
  /** B·a_k for this member's coefficients: computed here, so in the subgroup. */
  private ownCommitments?: GroupPoint[]
  private ephemeralSecret?: Uint8Array
  /** X25519 of this member's session key and each other member's, computed once per member. */
  private readonly sharedSecrets = new Map<PrincipalId, Uint8Array>()
  private result?: DkgOutcome
  private ownConfirm?: DkgConfirm

  constructor(params: DkgParams, self: DkgSelf) {
    checkGroupParams(params.members, params.threshold)
    if (!(params.session instanceof Uint8Array) || params.session.length !== 32)
      throw new RangeError('a session id is 32 bytes')
    if (!params.members.includes(self.principal)) throw new NotAMemberError('this node is not a member of the session')
    // one order for everyone: the transcript and the confirmation depend on it
    this.members = [...params.members].sort()
    this.threshold = params.threshold
    this.session = params.session
    this.self = self
  }

  get status(): State {
    return this.state
  }

  outcome(): DkgOutcome {
    if (this.state !== 'done' || this.result == null)
      throw new WrongRoundError(`the key generation is ${this.state}, not done`)
    return this.result
  }

  private get others(): PrincipalId[] {
    return this.members.filter(m => m !== this.self.principal)
  }

  private async sign<T extends DkgMessage>(unsigned: Omit<T, 'sig'>): Promise<T> {
    const msg = { ...unsigned, sig: new Uint8Array(64) } as unknown as T
    msg.sig = await signAs(this.self.secretKey, DKG_DOMAIN, dkgSigningBody(msg))
    return msg
  }

  private abort(error: ThresholdError): never {
    this.state = 'aborted'
    this.failure = error
    this.forgetPolynomial()
    this.forgetSessionKeys()
    throw error
  }

  async start(): Promise<DkgMessage[]> {
    if (this.state !== 'new') throw new WrongRoundError('the session has already started')
    const own = dkgRound1(identifierScalar(memberIdentifier(this.self.principal)), this.threshold)
    this.coefficients = own.coefficients
    this.ownCommitments = own.commitments
    this.ephemeralSecret = x25519.utils.randomSecretKey()
    const msg = await this.sign<DkgRound1>({
      v: 1,
      type: 'round1',
      session: this.session,
      from: this.self.principal,
      commitment: own.commitments.map(c => c.toBytes()),
      proof: own.proof,
      ephemeral: x25519.getPublicKey(this.ephemeralSecret)
    })
    this.round1.set(this.self.principal, msg)
    this.state = 'round1'
    return [msg, ...(await this.advance())]
  }

  /** Takes one message from another member; returns what to send in answer (possibly nothing). */
  async receive(msg: DkgMessage): Promise<DkgMessage[]> {
    if (this.failure != null) throw this.failure
    if (this.state === 'new') throw new WrongRoundError('the session has not started')
    if (!equalBytes(msg.session, this.session)) throw new WrongSessionError('a message of another session')
    const from = msg.from as PrincipalId
    if (!this.members.includes(from) || from === this.self.principal) {
      throw new NotAMemberError(`${String(msg.from).slice(0, 64)} is not another member of this session`)
    }
    if (!(await verifyAs(principalPublicKey(from), DKG_DOMAIN, dkgSigningBody(msg), msg.sig))) {
      throw new MessageSignatureError(`a ${msg.type} message claiming to be from ${from} is not signed by it`)
    }
    const seen = msg.type === 'round1' ? this.round1 : msg.type === 'round2' ? this.round2 : this.confirms
    const earlier = seen.get(from)
    if (earlier != null) {
      if (equalBytes(encodeDkgMessage(earlier), encodeDkgMessage(msg))) {
        throw new ReplayedMessageError(`a second ${msg.type} message from ${from}`)
      }
      this.abort(new EquivocationError(`${from} sent two different ${msg.type} messages`, from))
    }
    if (msg.type === 'round2' && msg.to !== this.self.principal) {
      throw new WrongRoundError(`a round2 message for ${msg.to}, not for this member`)
    }
    if (this.state === 'done') throw new WrongRoundError('the session is done')
    ;(seen as Map<PrincipalId, DkgMessage>).set(from, msg)
    return await this.advance()
  }

  /** Moves through every round whose messages are all in. */
  private async advance(): Promise<DkgMessage[]> {
    const out: DkgMessage[] = []
    if (this.state === 'round1' && this.round1.size === this.members.length) out.push(...(await this.sendShares()))
    if (this.state === 'round2' && this.round2.size === this.others.length) out.push(await this.finishKey())
    if (this.state === 'confirm' && this.confirms.size === this.others.length) this.checkConfirms()
    return out
  }

  private async sendShares(): Promise<DkgRound2[]> {
    for (const from of this.others) {
      const r1 = this.round1.get(from) as DkgRound1
      if (r1.commitment.length !== this.threshold) {
        this.abort(
          new InvalidShareError(
            `${from} committed to ${r1.commitment.length} coefficients, not ${this.threshold}`,
            from
          )
        )
      }
      try {
        // each point checked once, here, for the whole session
        const points = r1.commitment.map((c, i) => parsePoint(c, `commitment ${i}`))
        checkProofOfKnowledge(identifierScalar(memberIdentifier(from)), points[0], r1.proof)
        // noble refuses a low-order X25519 key (every shared secret would be zero)
        this.sharedSecrets.set(from, x25519.getSharedSecret(this.ephemeralSecret!, r1.ephemeral))
        this.commitments.set(from, points)
      } catch (err) {
        this.abort(new InvalidShareError(`round 1 of ${from}: ${(err as Error).message}`, from))
      }
    }
    const out: DkgRound2[] = []
    for (const to of this.others) {
      const share = Fn.toBytes(evaluate(this.coefficients!, identifierScalar(memberIdentifier(to))))
      const box = this.cipher(this.self.principal, to).encrypt(share)
      share.fill(0)
      out.push(
        await this.sign<DkgRound2>({ v: 1, type: 'round2', session: this.session, from: this.self.principal, to, box })
      )
    }
    this.state = 'round2'
    return out
  }

  /** The AEAD for shares from `from` to `to`, keyed by ECDH of this member's and the other's session keys. */
  private cipher(from: PrincipalId, to: PrincipalId): ReturnType<typeof chacha20poly1305> {
    const other = from === this.self.principal ? to : from
    const shared = this.sharedSecrets.get(other) as Uint8Array
    const info = new TextEncoder().encode(`${SHARE_DOMAIN} ${from} ${to}`)
    const okm = hkdf(sha256, shared, this.session, info, 44)
    return chacha20poly1305(okm.subarray(0, 32), okm.subarray(32))
  }

  private async finishKey(): Promise<DkgConfirm> {
    const x = identifierScalar(memberIdentifier(this.self.principal))
    // decrypted in member order up to the first that fails; the shares before it checked together
    const received = readShares(
      this.others,
      x,
      from => from,
      from => {
        const bytes = this.cipher(from, this.self.principal).decrypt((this.round2.get(from) as DkgRound2).box)
        const share = parseScalar(bytes, 'share')
        bytes.fill(0)
        return { share, commitments: this.commitments.get(from) as GroupPoint[] }
      },
      (from, reason) => this.abort(new InvalidShareError(`the share from ${from} is bad: ${reason.message}`, from))
    )
    const key = dkgKey(
      {
        identifier: memberIdentifier(this.self.principal),
        coefficients: this.coefficients!,
        commitments: this.ownCommitments!
      },
      this.threshold,
      this.members.length,
      received.map(r => ({ identifier: memberIdentifier(r.from), share: r.share, commitments: r.commitments }))
    )
    this.forgetPolynomial()
    this.forgetSessionKeys()
    const groupKey = key.public.commitments[0]
    this.result = {
      key,
      groupKey,
      clusterPrincipal: principalId(groupKey),
      members: this.members,
      threshold: this.threshold
    }
    this.ownConfirm = await this.sign<DkgConfirm>({
      v: 1,
      type: 'confirm',
      session: this.session,
      from: this.self.principal,
      transcript: this.transcript(),
      groupKey
    })
    this.state = 'confirm'
    return this.ownConfirm
  }

  private forgetSessionKeys(): void {
    this.ephemeralSecret?.fill(0)
    for (const k of this.sharedSecrets.values()) k.fill(0)
    this.sharedSecrets.clear()
  }

  private forgetPolynomial(): void {
    const a = this.coefficients
    if (a != null) for (let i = 0; i < a.length; i++) a[i] -= a[i]
    this.coefficients = undefined
  }

  /** sha256 over every member's signed round-1 message, in member order. */
  private transcript(): Uint8Array {
    return sha256(concatBytes(...this.members.map(m => sha256(encodeDkgMessage(this.round1.get(m) as DkgRound1)))))
  }

  private checkConfirms(): void {
    const own = this.ownConfirm as DkgConfirm
    for (const [from, c] of this.confirms) {
      if (!equalBytes(c.transcript, own.transcript) || !equalBytes(c.groupKey, own.groupKey)) {
        // a round-1 message differed between members: someone equivocated
        this.abort(new EquivocationError(`${from} saw a different round 1 or group key`, from))
      }
    }
    this.state = 'done'
  }
}

/** c = H_dkg(id ‖ C0 ‖ R), noble's FROST(Ed25519) DKG proof-of-knowledge challenge. */
function pokChallenge(id: bigint, C0: GroupPoint, R: GroupPoint): bigint {
  return scalarOfHash(concatBytes(POK_DST, Fn.toBytes(id), C0.toBytes(), R.toBytes()))
}

/**
 * R = zG − c·C0 for noble's DKG proof of knowledge (R ‖ z). R is not checked for membership of the
 * prime-order subgroup on its own: it must equal zG − c·C0, a point of that subgroup, which is the
 * stronger check (every other check of parsePoint still runs first).
 */
function checkProofOfKnowledge(id: bigint, C0: GroupPoint, proof: Uint8Array): void {
  const R = parseCurvePoint(proof.subarray(0, 32), 'proof commitment')
  const z = parseScalar(proof.subarray(32), 'proof response', { nonZero: false })
  const c = pokChallenge(id, C0, R)
  if (!R.equals(Point.BASE.multiplyUnsafe(z).subtract(C0.multiplyUnsafe(c)))) throw new Error('bad proof of knowledge')
}

/**
 * Round 1 of FROST DKG for member `id` (as noble's `DKG.round1` computes it): a random polynomial of
 * degree t−1, its commitments B·a_k (constant time: the coefficients are secret) and the proof of
 * knowledge of a_0, R ‖ z with z = k + a_0·c.
 */
export function dkgRound1(
  id: bigint,
  threshold: number
): { coefficients: bigint[]; commitments: GroupPoint[]; proof: Uint8Array } {
  const coefficients = Array.from({ length: threshold }, () => randomScalar())
  const commitments = coefficients.map(a => Point.BASE.multiply(a))
  const k = randomScalar()
  const R = Point.BASE.multiply(k)
  const z = Fn.add(k, Fn.mul(coefficients[0], pokChallenge(id, commitments[0], R)))
  return { coefficients, commitments, proof: concatBytes(R.toBytes(), Fn.toBytes(z)) }
}

/**
 * Round 3 of FROST DKG once every share is checked: this member's signing share Σ_j f_j(x) and the
 * group's public package — commitments Σ_j C_jk, and each member's verifying share, the merged
 * polynomial's commitment evaluated at its identifier. The same Key noble's `DKG.round3` returns
 * (same bytes, same key order: this member first, then the others by identifier).
 */
export function dkgKey(
  own: { identifier: Identifier; coefficients: bigint[]; commitments: GroupPoint[] },
  threshold: number,
  n: number,
  others: Array<{ identifier: Identifier; share: bigint; commitments: GroupPoint[] }>
): Key {
  const x = identifierScalar(own.identifier)
  let signingShare = evaluate(own.coefficients, x)
  const merged = [...own.commitments]
  for (const o of others) {
    signingShare = Fn.add(signingShare, o.share)
    for (let k = 0; k < threshold; k++) merged[k] = merged[k].add(o.commitments[k])
  }
  const order = [
    { identifier: own.identifier, x },
    ...others
      .map(o => ({ identifier: o.identifier, x: identifierScalar(o.identifier) }))
      .sort((a, b) => (a.x < b.x ? -1 : a.x > b.x ? 1 : 0))
  ]
  const verifyingShares: Record<Identifier, Uint8Array> = {}
  for (const m of order) verifyingShares[m.identifier] = evaluateCommitments(merged, m.x).toBytes()
  return {
    public: {
      signers: { min: threshold, max: n },
      commitments: merged.map(p => p.toBytes()),
      verifyingShares
    },
    secret: { identifier: own.identifier, signingShare: Fn.toBytes(signingShare) }
  } as Key
}
