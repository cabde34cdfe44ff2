/**
 * Messages of the distributed key generation (`/cyberspace/dkg/1.0.0`, spec in README.md):
 * dag-cbor maps, each signed by its sender over `cyberspace/dkg/v1` ‖ 0x00 ‖ the dag-cbor of the
 * map without `sig`. Decoding checks shape and sizes only; the session checks meaning.
 */
import {
  checkFields,
  decodeChecked,
  encodeChecked,
  ERROR_FIELDS,
  isBytes,
  isListOf,
  isPrincipalText,
  unsignedBody
} from '../wire.ts'
import type { ErrorAnswer } from '../wire.ts'

export const DKG_PROTOCOL = '/cyberspace/dkg/1.0.0'
export const DKG_DOMAIN = 'cyberspace/dkg/v1'
export const MAX_DKG_MESSAGE_BYTES = 8 * 1024
/** Most members of a group, so most commitments in round 1. */
export const MAX_GROUP_MEMBERS = 64

export interface DkgRound1 {
  v: 1
  type: 'round1'
  session: Uint8Array
  from: string
  /** VSS commitments to the sender's polynomial, t points of 32 bytes. */
  commitment: Uint8Array[]
  /** Proof of knowledge of the constant term, 64 bytes. */
  proof: Uint8Array
  /** The sender's X25519 key for this session, to which round-2 shares are encrypted. */
  ephemeral: Uint8Array
  sig: Uint8Array
}

export interface DkgRound2 {
  v: 1
  type: 'round2'
  session: Uint8Array
  from: string
  to: string
  /** The recipient's share, ChaCha20-Poly1305 under ECDH of the two ephemeral keys: 48 bytes. */
  box: Uint8Array
  sig: Uint8Array
}

export interface DkgConfirm {
  v: 1
  type: 'confirm'
  session: Uint8Array
  from: string
  /** sha256 over every member's round-1 message, in member order. */
  transcript: Uint8Array
  groupKey: Uint8Array
  sig: Uint8Array
}

export type DkgMessage = DkgRound1 | DkgRound2 | DkgConfirm

export class InvalidDkgMessageError extends Error {
  static name = 'InvalidDkgMessageError'
  name = 'InvalidDkgMessageError'
}

function fail(what: string): never {
  throw new InvalidDkgMessageError(what)
}

const FIELDS = {
  round1: 'commitment,ephemeral,from,proof,session,sig,type,v',
  round2: 'box,from,session,sig,to,type,v',
  confirm: 'from,groupKey,session,sig,transcript,type,v'
}

const bytesOf = (x: unknown, n: number): x is Uint8Array => isBytes(x, n, n)

export function checkDkgMessage(msg: unknown): asserts msg is DkgMessage {
  const m = checkFields(msg, FIELDS, fail)
  if (!bytesOf(m.session, 32)) fail('session is 32 bytes')
  if (!isPrincipalText(m.from)) fail('from is a principal id')
  if (!bytesOf(m.sig, 64)) fail('sig is 64 bytes')
  if (m.type === 'round1') {
    if (!isListOf(m.commitment, 2, MAX_GROUP_MEMBERS, c => bytesOf(c, 32)))
      fail(`round1 carries 2-${MAX_GROUP_MEMBERS} commitments of 32 bytes`)
    if (!bytesOf(m.proof, 64)) fail('proof is 64 bytes')
    if (!bytesOf(m.ephemeral, 32)) fail('ephemeral is 32 bytes')
  } else if (m.type === 'round2') {
    if (!isPrincipalText(m.to)) fail('to is a principal id')
    if (!bytesOf(m.box, 48)) fail('box is 48 bytes')
  } else {
    if (!bytesOf(m.transcript, 32)) fail('transcript is 32 bytes')
    if (!bytesOf(m.groupKey, 32)) fail('groupKey is 32 bytes')
  }
}

export function encodeDkgMessage(msg: DkgMessage): Uint8Array {
  return encodeChecked(msg, checkDkgMessage, MAX_DKG_MESSAGE_BYTES, fail)
}

export function decodeDkgMessage(bytes: Uint8Array): DkgMessage {
  return decodeChecked(bytes, MAX_DKG_MESSAGE_BYTES, checkDkgMessage, fail)
}

/** The bytes a DKG message's signature covers (before the domain prefix): the map without sig. */
export const dkgSigningBody = (msg: DkgMessage): Uint8Array => unsignedBody(msg)

// ---------------------------------------------------------------- the stream envelope

/** Largest request or answer on a DKG stream (a round of up to 64 members' messages). */
export const MAX_DKG_ENVELOPE_BYTES = 1024 * 1024

/** The initiator asks a member to join a session; the answer carries the member's round-1 message. */
export interface DkgInvite {
  v: 1
  type: 'invite'
  session: Uint8Array
  /** Sorted principal ids, the initiator among them. */
  members: string[]
  threshold: number
}

/** The initiator relays other members' signed messages; the answer carries what they made the member send. */
export interface DkgDeliver {
  v: 1
  type: 'deliver'
  session: Uint8Array
  messages: Uint8Array[]
}

export interface DkgMessages {
  v: 1
  type: 'messages'
  /** Encoded DkgMessages the member sends in answer. */
  messages: Uint8Array[]
  /** True once the member's session is done (its share is kept). */
  done: boolean
}

export type DkgEnvelope = DkgInvite | DkgDeliver | DkgMessages | ErrorAnswer

const ENVELOPE_FIELDS: Record<string, string> = {
  invite: 'members,session,threshold,type,v',
  deliver: 'messages,session,type,v',
  messages: 'done,messages,type,v',
  error: ERROR_FIELDS
}

function checkEnvelope(msg: unknown): asserts msg is DkgEnvelope {
  const m = checkFields(msg, ENVELOPE_FIELDS, fail)
  if ('session' in m && !bytesOf(m.session, 32)) fail('session is 32 bytes')
  if (m.type === 'invite') {
    if (!isListOf(m.members, 2, MAX_GROUP_MEMBERS, isPrincipalText))
      fail(`an invite lists 2-${MAX_GROUP_MEMBERS} members by principal id`)
    if (!Number.isSafeInteger(m.threshold) || (m.threshold as number) < 2) fail('threshold is a whole number ≥ 2')
  }
  if (m.type === 'deliver' || m.type === 'messages') {
    // a round of every member's messages, round 2 aside: at most one per member and type
    if (!isListOf(m.messages, 0, 3 * MAX_GROUP_MEMBERS, b => isBytes(b, 0, MAX_DKG_MESSAGE_BYTES)))
      fail(`at most ${3 * MAX_GROUP_MEMBERS} messages of at most ${MAX_DKG_MESSAGE_BYTES} bytes`)
  }
  if (m.type === 'messages' && typeof m.done !== 'boolean') fail('done is true or false')
}

export function encodeDkgEnvelope(msg: DkgEnvelope): Uint8Array {
  return encodeChecked(msg, checkEnvelope, MAX_DKG_ENVELOPE_BYTES, fail)
}

export function decodeDkgEnvelope(bytes: Uint8Array): DkgEnvelope {
  return decodeChecked(bytes, MAX_DKG_ENVELOPE_BYTES, checkEnvelope, fail)
}
