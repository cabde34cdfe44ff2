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
import { bytesToNumberLE, equalBytes } from '@noble/curves/utils.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256, sha512 } from '@noble/hashes/sha2.js'
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
  evaluateCommitments,
  Fn,
  frost,
  identifierScalar,
  memberIdentifier,
  parsePoint,
  parseScalar,
  Point
} from './group.ts'
import type { DkgConfirm, DkgMessage, DkgRound1, DkgRound2 } from '../../protocols/dkg/codec.ts'
import type { GroupPoint } from './group.ts'
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
  private dkgSecret?: ReturnType<typeof frost.DKG.round1>['secret']
  private ephemeralSecret?: Uint8Array
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
    if (this.dkgSecret != null) frost.DKG.clean(this.dkgSecret)
    this.ephemeralSecret?.fill(0)
    throw error
  }

  async start(): Promise<DkgMessage[]> {
    if (this.state !== 'new') throw new WrongRoundError('the session has already started')
    const { public: pub, secret } = frost.DKG.round1(memberIdentifier(this.self.principal), {
      min: this.threshold,
      max: this.members.length
    })
    this.dkgSecret = secret
    this.ephemeralSecret = x25519.utils.randomSecretKey()
    const msg = await this.sign<DkgRound1>({
      v: 1,
      type: 'round1',
      session: this.session,
      from: this.self.principal,
      commitment: pub.commitment,
      proof: pub.proofOfKnowledge,
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
    const packages = []
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
        const points = r1.commitment.map((c, i) => parsePoint(c, `commitment ${i}`))
        checkProofOfKnowledge(identifierScalar(memberIdentifier(from)), points[0], r1.proof)
        checkEphemeral(r1.ephemeral)
        this.commitments.set(from, points)
      } catch (err) {
        this.abort(new InvalidShareError(`round 1 of ${from}: ${(err as Error).message}`, from))
      }
      packages.push(this.round1Package(from))
    }
    let shares: Record<string, { signingShare: Uint8Array }>
    try {
      shares = frost.DKG.round2(this.dkgSecret!, packages)
    } catch (err) {
      return this.abort(new ThresholdError(`round 2 failed: ${(err as Error).message}`))
    }
    const out: DkgRound2[] = []
    for (const to of this.others) {
      const share = shares[memberIdentifier(to)].signingShare
      const box = this.cipher(this.self.principal, to).encrypt(share)
      out.push(
        await this.sign<DkgRound2>({ v: 1, type: 'round2', session: this.session, from: this.self.principal, to, box })
      )
    }
    this.state = 'round2'
    return out
  }

  /** Another member's round-1 message as noble's DKG takes it. */
  private round1Package(from: PrincipalId): {
    identifier: string
    commitment: Uint8Array[]
    proofOfKnowledge: Uint8Array
  } {
    const r1 = this.round1.get(from) as DkgRound1
    return { identifier: memberIdentifier(from), commitment: r1.commitment, proofOfKnowledge: r1.proof }
  }

  /** The AEAD for shares from `from` to `to`, keyed by ECDH of this member's and the other's session keys. */
  private cipher(from: PrincipalId, to: PrincipalId): ReturnType<typeof chacha20poly1305> {
    const other = from === this.self.principal ? to : from
    const shared = x25519.getSharedSecret(this.ephemeralSecret!, (this.round1.get(other) as DkgRound1).ephemeral)
    const info = new TextEncoder().encode(`${SHARE_DOMAIN} ${from} ${to}`)
    const okm = hkdf(sha256, shared, this.session, info, 44)
    return chacha20poly1305(okm.subarray(0, 32), okm.subarray(32))
  }

  private async finishKey(): Promise<DkgConfirm> {
    const x = identifierScalar(memberIdentifier(this.self.principal))
    const received = []
    for (const from of this.others) {
      const r2 = this.round2.get(from) as DkgRound2
      let share: Uint8Array
      try {
        share = this.cipher(from, this.self.principal).decrypt(r2.box)
        const s = parseScalar(share, 'share')
        if (!Point.BASE.multiply(s).equals(evaluateCommitments(this.commitments.get(from) as GroupPoint[], x)))
          throw new Error('does not match its commitments')
      } catch (err) {
        return this.abort(new InvalidShareError(`the share from ${from} is bad: ${(err as Error).message}`, from))
      }
      received.push({ identifier: memberIdentifier(from), signingShare: share })
    }
    let key: Key
    try {
      key = frost.DKG.round3(
        this.dkgSecret!,
        this.others.map(from => this.round1Package(from)),
        received
      )
    } catch (err) {
      return this.abort(new ThresholdError(`round 3 failed: ${(err as Error).message}`))
    }
    this.ephemeralSecret?.fill(0)
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

/** R = zG − c·C0 for noble's DKG proof of knowledge (R ‖ z), c = H_dkg(id ‖ C0 ‖ R). */
function checkProofOfKnowledge(id: bigint, C0: GroupPoint, proof: Uint8Array): void {
  const R = parsePoint(proof.subarray(0, 32), 'proof commitment')
  const z = parseScalar(proof.subarray(32), 'proof response', { nonZero: false })
  const c = Fn.create(bytesToNumberLE(sha512(concatBytes(POK_DST, Fn.toBytes(id), C0.toBytes(), R.toBytes()))))
  if (!R.equals(Point.BASE.multiplyUnsafe(z).subtract(C0.multiplyUnsafe(c)))) throw new Error('bad proof of knowledge')
}

function checkEphemeral(key: Uint8Array): void {
  // a low-order X25519 key makes every shared secret zero: noble refuses it
  x25519.getSharedSecret(x25519.utils.randomSecretKey(), key)
}
