/**
 * `/cyberspace/frost/1.0.0` messages (spec in README.md beside this file): one request and one
 * answer at a time on a stream (`<id>` and `<id>/many`, src/network/rpc.ts), dag-cbor maps decoded with limits before anything looks at them. The
 * requester is the stream's remote peer (authenticated by the connection); refresh deals, which
 * the coordinator relays, are signed by the member that made them.
 *
 * @example
 * const bytes = encodeFrostMessage({ v: 1, type: 'commit', group, epoch: 0, session, payload })
 * decodeFrostMessage(bytes) // throws InvalidFrostMessageError on anything else
 */
import * as dagCbor from '@ipld/dag-cbor'
import { MAX_GROUP_MEMBERS } from '../dkg/codec.ts'
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

export const FROST_PROTOCOL = '/cyberspace/frost/1.0.0'
/** Domain of a signed refresh deal. */
export const REFRESH_DEAL_DOMAIN = 'cyberspace/refresh-deal/v1'
/** Domain of a member's acknowledgement that it staged a refresh. */
export const REFRESH_ACK_DOMAIN = 'cyberspace/refresh-ack/v1'
export const MAX_FROST_MESSAGE_BYTES = 1024 * 1024
/** Largest payload a cluster signs (a certificate, a CRL, a message, with its domain). */
export const MAX_SIGN_PAYLOAD_BYTES = 64 * 1024
export const MAX_DEAL_BYTES = 16 * 1024
const MAX_EPOCH = 2 ** 32
/**
 * An agent's kind, and its id within the kind: 1-64 characters of a-z, 0-9, '.', '_', '-',
 * starting with a letter or digit (the agents' naming rule, checked here because a `derive`
 * request carries both).
 */
export const AGENT_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/
export const isAgentName = (x: unknown): x is string => typeof x === 'string' && AGENT_NAME_PATTERN.test(x)

export interface CommitmentsWire {
  /** FROST identifier: 64 hex digits. */
  identifier: string
  hiding: Uint8Array<ArrayBuffer>
  binding: Uint8Array<ArrayBuffer>
}

interface GroupRequest {
  v: 1
  /** The group (cluster) public key the request is for. */
  group: Uint8Array
  /** The share generation the coordinator holds; a member refuses another. */
  epoch: number
}

export interface CommitRequest extends GroupRequest {
  type: 'commit'
  session: Uint8Array
  /** The bytes to be signed: a signing domain, 0x00, the body. */
  payload: Uint8Array
}
export interface CommitAnswer extends CommitmentsWire {
  v: 1
  type: 'commitments'
}
export interface SignRequest extends GroupRequest {
  type: 'sign'
  session: Uint8Array
  payload: Uint8Array
  commitments: CommitmentsWire[]
}
export interface ShareAnswer {
  v: 1
  type: 'share'
  share: Uint8Array
}
export interface DecryptRequest extends GroupRequest {
  type: 'decrypt'
  /** R of the ciphertext. */
  ephemeral: Uint8Array
}
export interface DecryptionAnswer {
  v: 1
  type: 'decryption'
  identifier: string
  share: Uint8Array
  proof: Uint8Array
}
/**
 * A member's partial evaluation of the agent-key PRF for (kind, id). It carries the name, never
 * a point: the member hashes the name to the point itself (a request for s_i·R with an R of the
 * requester's choosing would let it open what is encrypted to the cluster).
 */
export interface DeriveRequest extends GroupRequest {
  type: 'derive'
  kind: string
  id: string
}
export interface DerivationAnswer {
  v: 1
  type: 'derivation'
  identifier: string
  /** D_i = s_i·H(group, kind, id), 32 bytes. */
  share: Uint8Array
  /** Chaum–Pedersen proof that log_G Y_i = log_H D_i, 64 bytes. */
  proof: Uint8Array
}
export interface RefreshDealRequest extends GroupRequest {
  type: 'refresh-deal'
  session: Uint8Array
}
export interface DealAnswer {
  v: 1
  type: 'deal'
  /** A signed RefreshDeal (encodeRefreshDeal). */
  deal: Uint8Array
}
export interface RefreshApplyRequest extends GroupRequest {
  type: 'refresh-apply'
  session: Uint8Array
  /** Every member's signed deal. */
  deals: Uint8Array[]
}
export interface StagedAnswer {
  v: 1
  type: 'staged'
  /** sha256 of the new public key package: equal at every member, or the refresh is abandoned. */
  digest: Uint8Array
  /** The member's signature over refreshAckBody(group, epoch + 1, session, digest). */
  ack: Uint8Array
}
export interface RefreshCommitRequest extends GroupRequest {
  type: 'refresh-commit'
  session: Uint8Array
  /** Every member's ack: the proof that all staged the same new public package. */
  acks: Array<{ from: string; sig: Uint8Array }>
}
export interface CommittedAnswer {
  v: 1
  type: 'committed'
  epoch: number
}

export type FrostRequest =
  | CommitRequest
  | SignRequest
  | DecryptRequest
  | DeriveRequest
  | RefreshDealRequest
  | RefreshApplyRequest
  | RefreshCommitRequest
export type FrostAnswer =
  | CommitAnswer
  | ShareAnswer
  | DecryptionAnswer
  | DerivationAnswer
  | DealAnswer
  | StagedAnswer
  | CommittedAnswer
  | ErrorAnswer
export type FrostMessage = FrostRequest | FrostAnswer

/** A member's refresh contribution, signed by it over REFRESH_DEAL_DOMAIN ‖ 0x00 ‖ dag-cbor without sig. */
export interface RefreshDeal {
  v: 1
  group: Uint8Array
  epoch: number
  session: Uint8Array
  from: string
  /** Commitments to coefficients 1..t−1 of the zero-constant polynomial. */
  commitments: Uint8Array[]
  /** The dealer's X25519 key for this deal. */
  ephemeral: Uint8Array
  /** Each other member's share, sealed to it. */
  boxes: Array<{ to: string; box: Uint8Array }>
  sig: Uint8Array
}

export class InvalidFrostMessageError extends Error {
  static name = 'InvalidFrostMessageError'
  name = 'InvalidFrostMessageError'
}

function fail(what: string): never {
  throw new InvalidFrostMessageError(what)
}

const GROUP = 'epoch,group,'
const FIELDS: Record<string, string> = {
  commit: `${GROUP}payload,session,type,v`,
  commitments: 'binding,hiding,identifier,type,v',
  sign: `commitments,${GROUP}payload,session,type,v`,
  share: 'share,type,v',
  decrypt: 'ephemeral,epoch,group,type,v',
  decryption: 'identifier,proof,share,type,v',
  derive: `${GROUP}id,kind,type,v`,
  derivation: 'identifier,proof,share,type,v',
  'refresh-deal': `${GROUP}session,type,v`,
  deal: 'deal,type,v',
  'refresh-apply': `deals,${GROUP}session,type,v`,
  staged: 'ack,digest,type,v',
  'refresh-commit': `acks,${GROUP}session,type,v`,
  committed: 'epoch,type,v',
  error: ERROR_FIELDS
}

const isIdentifier = (x: unknown): x is string => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x)
/** A share generation: a whole number below 2^32. */
export const isEpoch = (x: unknown): x is number =>
  Number.isSafeInteger(x) && (x as number) >= 0 && (x as number) < MAX_EPOCH
const isCommitmentsWire = (x: unknown): boolean =>
  isMapOf(x, 'binding,hiding,identifier') &&
  isIdentifier(x.identifier) &&
  isBytes(x.hiding, 32, 32) &&
  isBytes(x.binding, 32, 32)

export function checkFrostMessage(msg: unknown): asserts msg is FrostMessage {
  const m = checkFields(msg, FIELDS, fail)
  if ('group' in m) {
    if (!isBytes(m.group, 32, 32)) fail('group is a 32-byte key')
    if (!isEpoch(m.epoch)) fail('epoch is a small whole number')
  }
  if ('session' in m && !isBytes(m.session, 32, 32)) fail('session is 32 bytes')
  if ('payload' in m && !isBytes(m.payload, 1, MAX_SIGN_PAYLOAD_BYTES))
    fail(`payload is 1-${MAX_SIGN_PAYLOAD_BYTES} bytes`)
  switch (m.type) {
    case 'commitments':
      if (!isCommitmentsWire({ identifier: m.identifier, hiding: m.hiding, binding: m.binding }))
        fail('commitments are an identifier of 64 hex digits and two 32-byte points')
      break
    case 'sign':
      if (!isListOf(m.commitments, 2, MAX_GROUP_MEMBERS, isCommitmentsWire))
        fail(`a signing package lists 2-${MAX_GROUP_MEMBERS} commitments, each an identifier and two 32-byte points`)
      break
    case 'share':
      if (!isBytes(m.share, 32, 32)) fail('a signature share is 32 bytes')
      break
    case 'decrypt':
      if (!isBytes(m.ephemeral, 32, 32)) fail('ephemeral is 32 bytes')
      break
    case 'decryption':
      if (!isIdentifier(m.identifier)) fail('an identifier is 64 hex digits')
      if (!isBytes(m.share, 32, 32) || !isBytes(m.proof, 64, 64)) fail('a decryption share is 32 bytes, its proof 64')
      break
    case 'derive':
      if (!isAgentName(m.kind)) fail('kind is 1-64 characters of a-z 0-9 . _ - starting with a letter or digit')
      if (!isAgentName(m.id)) fail('id is 1-64 characters of a-z 0-9 . _ - starting with a letter or digit')
      break
    case 'derivation':
      if (!isIdentifier(m.identifier)) fail('an identifier is 64 hex digits')
      if (!isBytes(m.share, 32, 32) || !isBytes(m.proof, 64, 64)) fail('a partial evaluation is 32 bytes, its proof 64')
      break
    case 'deal':
      if (!isBytes(m.deal, 1, MAX_DEAL_BYTES)) fail(`a deal is 1-${MAX_DEAL_BYTES} bytes`)
      break
    case 'refresh-apply':
      if (!isListOf(m.deals, 2, MAX_GROUP_MEMBERS, d => isBytes(d, 1, MAX_DEAL_BYTES)))
        fail(`a refresh carries 2-${MAX_GROUP_MEMBERS} deals of 1-${MAX_DEAL_BYTES} bytes`)
      break
    case 'staged':
      if (!isBytes(m.digest, 32, 32)) fail('digest is 32 bytes')
      if (!isBytes(m.ack, 64, 64)) fail('ack is a 64-byte signature')
      break
    case 'refresh-commit':
      if (!isListOf(m.acks, 2, MAX_GROUP_MEMBERS, isMemberSignature))
        fail(`a commit carries 2-${MAX_GROUP_MEMBERS} acks, each a member and its 64-byte signature`)
      break
    case 'committed':
      if (!isEpoch(m.epoch)) fail('epoch is a small whole number')
      break
  }
}

export function encodeFrostMessage(msg: FrostMessage): Uint8Array {
  return encodeChecked(msg, checkFrostMessage, MAX_FROST_MESSAGE_BYTES, fail)
}

export function decodeFrostMessage(bytes: Uint8Array): FrostMessage {
  return decodeChecked(bytes, MAX_FROST_MESSAGE_BYTES, checkFrostMessage, fail)
}

// ---------------------------------------------------------------- signed, sealed pieces

/** A scalar sealed to a member (src/threshold/seal.ts): `{ to, box }`, the box 48 bytes. */
export const isSealedBox = (x: unknown): boolean =>
  isMapOf(x, 'box,to') && isPrincipalText(x.to) && isBytes(x.box, 48, 48)
/** A member's signature (an ack): `{ from, sig }`, the signature 64 bytes. */
export const isMemberSignature = (x: unknown): boolean =>
  isMapOf(x, 'from,sig') && isPrincipalText(x.from) && isBytes(x.sig, 64, 64)

/**
 * What every signed, sealed piece of the cluster protocols holds (refresh deals here; repair
 * deals and sums and reshare deals in protocols/reshare): a version-1 map of exactly `fields`
 * that names its group, epoch, session and maker, with its one-time X25519 key and its signature.
 */
export function checkSealedPiece(
  x: unknown,
  fields: string,
  what: string,
  fail: (what: string) => never
): asserts x is Record<string, unknown> {
  if (x == null || typeof x !== 'object' || Array.isArray(x)) fail(`a ${what} is a map`)
  const m = x as Record<string, unknown>
  if (m.v !== 1) fail(`unsupported ${what} version ${String(m.v)}`)
  if (!isMapOf(m, fields)) fail(`a ${what} has exactly the fields ${fields}`)
  if (!isBytes(m.group, 32, 32) || !isEpoch(m.epoch) || !isBytes(m.session, 32, 32))
    fail(`a ${what} names its group, epoch and session`)
  if (!isPrincipalText(m.from)) fail('from is a principal id')
  if (!isBytes(m.ephemeral, 32, 32)) fail('ephemeral is 32 bytes')
  if (!isBytes(m.sig, 64, 64)) fail('sig is 64 bytes')
}

const DEAL_FIELDS = 'boxes,commitments,ephemeral,epoch,from,group,session,sig,v'

export function checkRefreshDeal(deal: unknown): asserts deal is RefreshDeal {
  checkSealedPiece(deal, DEAL_FIELDS, 'deal', fail)
  if (!isListOf(deal.commitments, 1, MAX_GROUP_MEMBERS - 1, c => isBytes(c, 32, 32)))
    fail(`a deal commits to 1-${MAX_GROUP_MEMBERS - 1} coefficients of 32 bytes`)
  if (!isListOf(deal.boxes, 1, MAX_GROUP_MEMBERS - 1, isSealedBox))
    fail(`a deal seals 1-${MAX_GROUP_MEMBERS - 1} shares, each naming its member and 48 bytes`)
}

export function encodeRefreshDeal(deal: RefreshDeal): Uint8Array {
  return encodeChecked(deal, checkRefreshDeal, MAX_DEAL_BYTES, fail)
}

export function decodeRefreshDeal(bytes: Uint8Array): RefreshDeal {
  return decodeChecked(bytes, MAX_DEAL_BYTES, checkRefreshDeal, fail)
}

/** The bytes a deal's signature covers (before the domain prefix). */
export const refreshDealSigningBody = (deal: RefreshDeal): Uint8Array => unsignedBody(deal)

/** What a member's refresh ack signs: the group, the new epoch, the session and the new public package's digest. */
export function refreshAckBody(group: Uint8Array, epoch: number, session: Uint8Array, digest: Uint8Array): Uint8Array {
  return dagCbor.encode({ group, epoch, session, digest })
}
