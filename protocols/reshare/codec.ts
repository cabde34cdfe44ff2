/**
 * `/cyberspace/reshare/1.0.0` messages (spec in README.md beside this file): share repair and
 * resharing of a cluster key. One request and one answer at a time on a stream (`<id>` and `<id>/many`), dag-cbor maps decoded with
 * limits before anything looks at them. The requester is the stream's remote peer; the pieces a
 * coordinator relays (deals, sums) are signed by the member that made them and carry their
 * secrets sealed to their recipient, so the coordinator can neither read nor alter them.
 *
 * @example
 * const bytes = encodeReshareMessage({ v: 1, type: 'repair-deal', group, epoch, session, member, helpers })
 * decodeReshareMessage(bytes) // throws InvalidReshareMessageError on anything else
 */
import * as dagCbor from '@ipld/dag-cbor'
import { sha256 } from '@noble/hashes/sha2.js'
import { MAX_GROUP_MEMBERS } from '../dkg/codec.ts'
import { checkSealedPiece, isEpoch, isMemberSignature, isSealedBox } from '../frost/codec.ts'
import {
  checkFields,
  decodeChecked,
  encodeChecked,
  ERROR_FIELDS,
  isBytes,
  isListOf,
  isMapOf,
  isPrincipalText,
  unsignedBody
} from '../wire.ts'
import type { ErrorAnswer } from '../wire.ts'

export const RESHARE_PROTOCOL = '/cyberspace/reshare/1.0.0'
/** Domains of the signed objects of this protocol. */
export const REPAIR_DEAL_DOMAIN = 'cyberspace/repair-deal/v1'
export const REPAIR_SUM_DOMAIN = 'cyberspace/repair-sum/v1'
export const RESHARE_DEAL_DOMAIN = 'cyberspace/reshare-deal/v1'
export const RESHARE_ACK_DOMAIN = 'cyberspace/reshare-ack/v1'
/** A new member's statement that it switched to its new share (what a removed member needs t_new of). */
export const RESHARE_SWITCHED_DOMAIN = 'cyberspace/reshare-switched/v1'
/** A signed deal or sum: up to 64 sealed shares and member lists of 64 principals. */
export const MAX_SIGNED_PIECE_BYTES = 32 * 1024
/** A request: an apply carries up to 64 deals. */
export const MAX_RESHARE_MESSAGE_BYTES = MAX_GROUP_MEMBERS * MAX_SIGNED_PIECE_BYTES + 64 * 1024

/** A cluster's public key package at one share generation: what every member of it holds in common. */
export interface PublicPackage {
  /** Sorted member principals. */
  members: string[]
  threshold: number
  epoch: number
  /** Commitments to the group polynomial, constant term (the group key) first: `threshold` points. */
  commitments: Uint8Array[]
  /** Each member's verifying share, in member order. */
  verifyingShares: Uint8Array[]
}

interface GroupRequest {
  v: 1
  /** The group (cluster) public key. */
  group: Uint8Array
  /** The share generation the coordinator holds. */
  epoch: number
  /** 32 random bytes naming the run. */
  session: Uint8Array
}

/** Repair step 1, to each helper: split your part of `member`'s share among `helpers`. */
export interface RepairDealRequest extends GroupRequest {
  type: 'repair-deal'
  member: string
  /** Sorted, exactly `threshold` members, `member` not among them. */
  helpers: string[]
}
/** Repair step 2, to each helper: sum the pieces dealt to you and seal the sum to `member`. */
export interface RepairSumRequest extends GroupRequest {
  type: 'repair-sum'
  member: string
  helpers: string[]
  /** Every helper's signed RepairDeal. */
  deals: Uint8Array[]
}
/** Repair step 3, to the member: the package of the group and every helper's signed, sealed sum. */
export interface RepairShareRequest {
  v: 1
  type: 'repair-share'
  session: Uint8Array
  package: PublicPackage
  sums: Uint8Array[]
}
/** Resharing step 1, to each of t old members: deal your weighted share to the new members. */
export interface ReshareDealRequest extends GroupRequest {
  type: 'reshare-deal'
  /** The new member set, sorted. */
  members: string[]
  /** The new threshold. */
  threshold: number
  /** The old members that deal, sorted: exactly the old threshold of them. */
  dealers: string[]
}
/** Resharing step 2, to each new member: every deal and the old package; stage the new share. */
export interface ReshareApplyRequest {
  v: 1
  type: 'reshare-apply'
  session: Uint8Array
  /** The old public package: every deal names its digest. */
  package: PublicPackage
  members: string[]
  threshold: number
  dealers: string[]
  deals: Uint8Array[]
}
/** Sent by the coordinator of a failed resharing to those it involved: forget the run and its staged share. */
export interface ReshareAbortRequest {
  v: 1
  type: 'reshare-abort'
  session: Uint8Array
}
/** Resharing step 3, to every new member: every new member's ack of the same new package. */
export interface ReshareCommitRequest extends GroupRequest {
  type: 'reshare-commit'
  /** Here `epoch` is the new share generation. The digest of the new public package. */
  digest: Uint8Array
  members: string[]
  acks: Array<{ from: string; sig: Uint8Array }>
}
/**
 * Resharing step 4, to every removed member once t_new new members switched: the dealers' signed
 * deals (from which it recomputes the new package, and which name the new set) and the new
 * members' signed statements that they switched to it.
 */
export interface ReshareRetireRequest extends GroupRequest {
  type: 'reshare-retire'
  /** Here `epoch` is the new share generation. The t_old signed ReshareDeals of the resharing. */
  deals: Uint8Array[]
  /** At least t_new new members' signatures over RESHARE_SWITCHED_DOMAIN ‖ 0x00 ‖ reshareAckBody(group, epoch, session, digest). */
  switched: Array<{ from: string; sig: Uint8Array }>
}

export interface PieceAnswer {
  v: 1
  type: 'piece'
  /** A signed RepairDeal, RepairSum or ReshareDeal. */
  piece: Uint8Array
}
export interface StagedAnswer {
  v: 1
  type: 'staged'
  /** packageDigest of the new public package. */
  digest: Uint8Array
  /** The member's signature over `RESHARE_ACK_DOMAIN` ‖ 0x00 ‖ reshareAckBody(group, epoch, session, digest). */
  ack: Uint8Array
}
/**
 * The member deleted its share (`retired`), stored its repaired share (`repaired`) or forgot an
 * aborted resharing (`aborted`); `epoch` is the generation it holds then.
 */
export interface DoneAnswer {
  v: 1
  type: 'retired' | 'repaired' | 'aborted'
  epoch: number
}
/** The new member switched to generation `epoch`, and signs that it did (RESHARE_SWITCHED_DOMAIN). */
export interface CommittedAnswer {
  v: 1
  type: 'committed'
  epoch: number
  sig: Uint8Array
}

export type ReshareRequest =
  | RepairDealRequest
  | RepairSumRequest
  | RepairShareRequest
  | ReshareDealRequest
  | ReshareApplyRequest
  | ReshareCommitRequest
  | ReshareRetireRequest
  | ReshareAbortRequest
export type ReshareAnswer = PieceAnswer | StagedAnswer | CommittedAnswer | DoneAnswer | ErrorAnswer
export type ReshareMessage = ReshareRequest | ReshareAnswer

/** A helper's repair pieces: a random summand of λ_i(x_member)·s_i for every other helper, sealed to it. */
export interface RepairDeal {
  v: 1
  group: Uint8Array
  epoch: number
  session: Uint8Array
  member: string
  helpers: string[]
  from: string
  ephemeral: Uint8Array
  boxes: Array<{ to: string; box: Uint8Array }>
  sig: Uint8Array
}
/** A helper's sum of the pieces it received, sealed to the member under repair. */
export interface RepairSum {
  v: 1
  group: Uint8Array
  epoch: number
  session: Uint8Array
  member: string
  /** packageDigest of the helper's public package: every helper must name the same. */
  digest: Uint8Array
  from: string
  ephemeral: Uint8Array
  box: Uint8Array
  sig: Uint8Array
}
/** An old member's resharing deal: a polynomial of degree t_new − 1 whose constant is λ_i·s_i. */
export interface ReshareDeal {
  v: 1
  group: Uint8Array
  /** The old share generation. */
  epoch: number
  /** packageDigest of the old public package. */
  digest: Uint8Array
  session: Uint8Array
  members: string[]
  threshold: number
  dealers: string[]
  from: string
  /** Commitments to all t_new coefficients, the constant term first. */
  commitments: Uint8Array[]
  ephemeral: Uint8Array
  /** A share for every new member but the dealer, sealed to it. */
  boxes: Array<{ to: string; box: Uint8Array }>
  sig: Uint8Array
}

export class InvalidReshareMessageError extends Error {
  static name = 'InvalidReshareMessageError'
  name = 'InvalidReshareMessageError'
}

function fail(what: string): never {
  throw new InvalidReshareMessageError(what)
}

const GROUP = 'epoch,group,'
const FIELDS: Record<string, string> = {
  'repair-deal': `${GROUP}helpers,member,session,type,v`,
  'repair-sum': `deals,${GROUP}helpers,member,session,type,v`,
  'repair-share': 'package,session,sums,type,v',
  'reshare-deal': `dealers,${GROUP}members,session,threshold,type,v`,
  'reshare-apply': 'dealers,deals,members,package,session,threshold,type,v',
  'reshare-commit': `acks,digest,${GROUP}members,session,type,v`,
  'reshare-retire': `deals,${GROUP}session,switched,type,v`,
  'reshare-abort': 'session,type,v',
  piece: 'piece,type,v',
  staged: 'ack,digest,type,v',
  committed: 'epoch,sig,type,v',
  retired: 'epoch,type,v',
  repaired: 'epoch,type,v',
  aborted: 'epoch,type,v',
  error: ERROR_FIELDS
}

const isThreshold = (x: unknown): x is number =>
  Number.isSafeInteger(x) && (x as number) >= 2 && (x as number) <= MAX_GROUP_MEMBERS

/** A sorted list of 1..64 distinct principal ids (sorted, so the same set is the same bytes). */
function checkPrincipals(x: unknown, what: string, min = 1): void {
  if (!Array.isArray(x) || x.length < min || x.length > MAX_GROUP_MEMBERS)
    fail(`${what} lists ${min}-${MAX_GROUP_MEMBERS} principals`)
  if (!x.every(isPrincipalText)) fail(`${what}: a principal id is text of at most 64 characters`)
  for (let i = 1; i < x.length; i++)
    if (!((x[i - 1] as string) < (x[i] as string))) fail(`${what} is sorted, no repeats`)
}

function checkList(x: unknown, what: string, max: number, each: (item: unknown) => boolean, min = 1): void {
  if (!isListOf(x, min, max, each)) fail(`${what}: ${min}-${max} well-formed entries`)
}

const isPoint = (x: unknown): boolean => isBytes(x, 32, 32)
const isPiece = (x: unknown): boolean => isBytes(x, 1, MAX_SIGNED_PIECE_BYTES)

function checkPackage(m: unknown): void {
  if (!isMapOf(m, 'commitments,epoch,members,threshold,verifyingShares'))
    fail('package is a map of exactly members, threshold, epoch, commitments, verifyingShares')
  checkPrincipals(m.members, 'package members', 2)
  if (!isThreshold(m.threshold) || (m.threshold as number) > (m.members as string[]).length)
    fail('package threshold is 2..members')
  if (!isEpoch(m.epoch)) fail('package epoch is a small whole number')
  checkList(m.commitments, 'package commitments', MAX_GROUP_MEMBERS, isPoint)
  if ((m.commitments as unknown[]).length !== m.threshold) fail('package has one commitment per threshold')
  checkList(m.verifyingShares, 'package verifying shares', MAX_GROUP_MEMBERS, isPoint)
  if ((m.verifyingShares as unknown[]).length !== (m.members as unknown[]).length)
    fail('package has one verifying share per member')
}

export function checkReshareMessage(msg: unknown): asserts msg is ReshareMessage {
  const m = checkFields(msg, FIELDS, fail)
  if ('group' in m && !isBytes(m.group, 32, 32)) fail('group is a 32-byte key')
  if ('epoch' in m && !isEpoch(m.epoch)) fail('epoch is a small whole number')
  if ('session' in m && !isBytes(m.session, 32, 32)) fail('session is 32 bytes')
  if ('member' in m && !isPrincipalText(m.member)) fail('member is a principal id')
  if ('helpers' in m) checkPrincipals(m.helpers, 'helpers', 2)
  if ('members' in m) checkPrincipals(m.members, 'members', 2)
  if ('dealers' in m) checkPrincipals(m.dealers, 'dealers', 2)
  if ('threshold' in m && (!isThreshold(m.threshold) || (m.threshold as number) > (m.members as string[]).length))
    fail('threshold is 2..members')
  if ('package' in m) checkPackage(m.package)
  if ('deals' in m) checkList(m.deals, 'deals', MAX_GROUP_MEMBERS, isPiece, 2)
  if ('sums' in m) checkList(m.sums, 'sums', MAX_GROUP_MEMBERS, isPiece, 2)
  if ('acks' in m) checkList(m.acks, 'acks', MAX_GROUP_MEMBERS, isMemberSignature, 2)
  if ('switched' in m) checkList(m.switched, 'switched', MAX_GROUP_MEMBERS, isMemberSignature, 2)
  if ('sig' in m && !isBytes(m.sig, 64, 64)) fail('sig is a 64-byte signature')
  if ('digest' in m && !isBytes(m.digest, 32, 32)) fail('digest is 32 bytes')
  if ('ack' in m && !isBytes(m.ack, 64, 64)) fail('ack is a 64-byte signature')
  if ('piece' in m && !isPiece(m.piece)) fail(`a piece is 1-${MAX_SIGNED_PIECE_BYTES} bytes`)
}

export function encodeReshareMessage(msg: ReshareMessage): Uint8Array {
  return encodeChecked(msg, checkReshareMessage, MAX_RESHARE_MESSAGE_BYTES, fail)
}

export function decodeReshareMessage(bytes: Uint8Array): ReshareMessage {
  return decodeChecked(bytes, MAX_RESHARE_MESSAGE_BYTES, checkReshareMessage, fail)
}

// ---------------------------------------------------------------- signed pieces

const REPAIR_DEAL_FIELDS = 'boxes,ephemeral,epoch,from,group,helpers,member,session,sig,v'
export function checkRepairDeal(x: unknown): asserts x is RepairDeal {
  checkSealedPiece(x, REPAIR_DEAL_FIELDS, 'repair deal', fail)
  if (!isPrincipalText(x.member)) fail('member is a principal id')
  checkPrincipals(x.helpers, 'helpers', 2)
  checkList(x.boxes, 'sealed pieces', MAX_GROUP_MEMBERS - 1, isSealedBox)
}

const REPAIR_SUM_FIELDS = 'box,digest,ephemeral,epoch,from,group,member,session,sig,v'
export function checkRepairSum(x: unknown): asserts x is RepairSum {
  checkSealedPiece(x, REPAIR_SUM_FIELDS, 'repair sum', fail)
  if (!isPrincipalText(x.member)) fail('member is a principal id')
  if (!isBytes(x.digest, 32, 32)) fail('digest is 32 bytes')
  if (!isBytes(x.box, 48, 48)) fail('a sealed sum is 48 bytes')
}

const RESHARE_DEAL_FIELDS =
  'boxes,commitments,dealers,digest,ephemeral,epoch,from,group,members,session,sig,threshold,v'
export function checkReshareDeal(x: unknown): asserts x is ReshareDeal {
  checkSealedPiece(x, RESHARE_DEAL_FIELDS, 'reshare deal', fail)
  if (!isBytes(x.digest, 32, 32)) fail('digest is 32 bytes')
  checkPrincipals(x.members, 'members', 2)
  checkPrincipals(x.dealers, 'dealers', 2)
  if (!isThreshold(x.threshold) || (x.threshold as number) > (x.members as string[]).length)
    fail('threshold is 2..members')
  checkList(x.commitments, 'commitments', MAX_GROUP_MEMBERS, isPoint)
  if ((x.commitments as unknown[]).length !== x.threshold) fail('a deal commits to threshold coefficients')
  checkList(x.boxes, 'sealed shares', MAX_GROUP_MEMBERS, isSealedBox)
}

export const encodeRepairDeal = (d: RepairDeal): Uint8Array =>
  encodeChecked(d, checkRepairDeal, MAX_SIGNED_PIECE_BYTES, fail)
export const decodeRepairDeal = (b: Uint8Array): RepairDeal =>
  decodeChecked(b, MAX_SIGNED_PIECE_BYTES, checkRepairDeal, fail)
export const encodeRepairSum = (d: RepairSum): Uint8Array =>
  encodeChecked(d, checkRepairSum, MAX_SIGNED_PIECE_BYTES, fail)
export const decodeRepairSum = (b: Uint8Array): RepairSum =>
  decodeChecked(b, MAX_SIGNED_PIECE_BYTES, checkRepairSum, fail)
export const encodeReshareDeal = (d: ReshareDeal): Uint8Array =>
  encodeChecked(d, checkReshareDeal, MAX_SIGNED_PIECE_BYTES, fail)
export const decodeReshareDeal = (b: Uint8Array): ReshareDeal =>
  decodeChecked(b, MAX_SIGNED_PIECE_BYTES, checkReshareDeal, fail)

/** The bytes a signed piece's signature covers (before the domain prefix): the map without sig. */
export const pieceSigningBody = (piece: { sig: Uint8Array }): Uint8Array => unsignedBody(piece)

/** sha256 over the dag-cbor of a public package: equal at every member of a consistent group. */
export function packageDigest(p: PublicPackage): Uint8Array {
  return sha256(
    dagCbor.encode({
      members: p.members,
      threshold: p.threshold,
      epoch: p.epoch,
      commitments: p.commitments,
      verifyingShares: p.verifyingShares
    })
  )
}

/** What a new member's reshare ack signs: the group, the new epoch, the session and the new package's digest. */
export function reshareAckBody(group: Uint8Array, epoch: number, session: Uint8Array, digest: Uint8Array): Uint8Array {
  return dagCbor.encode({ group, epoch, session, digest })
}
