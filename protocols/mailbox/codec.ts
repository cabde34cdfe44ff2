/**
 * The mailbox protocol's wire format (see README.md beside this file): signed envelopes from one
 * agent principal to another, the signed reply that acknowledges one (an `ack`, or the `response`
 * to a request), and the three messages of `/cyberspace/mailbox/1.0.0` that carry them
 * (`deliver`, `reply`, `error`). Decoding checks the frame size first, then dag-cbor, then every
 * field and the body's depth; nothing here verifies signatures or authority.
 *
 * @example
 * const bytes = encodeMailboxMessage({ v: 1, type: 'deliver', envelope })   // MailboxMessageTooLargeError over the limit
 * const msg = decodeMailboxMessage(bytes)                                    // InvalidMailboxMessageError on anything malformed
 * signedBytes(MAILBOX_SIGNING_DOMAIN, envelopeSigningBody(envelope))         // what `envelope.sig` covers
 */
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { checkFields, decodeChecked, encodeChecked, ERROR_FIELDS, isBytes, unsignedBody } from '../wire.ts'
import type { ErrorAnswer } from '../wire.ts'

export const MAILBOX_PROTOCOL = '/cyberspace/mailbox/1.0.0'
/** Prefix of the bytes an envelope's signature (by its sender) covers. */
export const MAILBOX_SIGNING_DOMAIN = 'cyberspace/mailbox/v1'
/** Prefix of the bytes a reply's signature (by the recipient that handled the message) covers. */
export const MAILBOX_REPLY_SIGNING_DOMAIN = 'cyberspace/mailbox-reply/v1'
export const ENVELOPE_VERSION = 1

/** Largest body (its dag-cbor encoding) of an envelope or a reply. */
export const MAX_BODY_BYTES = 256 * 1024
/** Deepest nesting of maps and lists in a body. */
export const MAX_BODY_DEPTH = 64
/** Largest frame: a body at its limit plus the envelope's other fields. */
export const MAX_MAILBOX_MESSAGE_BYTES = MAX_BODY_BYTES + 2048
export const MAX_TYPE_LENGTH = 128
export const MAX_ID_LENGTH = 64
export const MAX_SESSION_LENGTH = 32
/** Longest life of a message, from `sent` to `expires`. */
export const MAX_MESSAGE_TTL_MS = 10 * 60_000
/** How far a sender's clock may run ahead of the receiver's (`sent` in the future). */
export const CLOCK_SKEW_MS = 60_000

/** A message type: what `(cyberspace (mailbox (send <recipient> <type>)))` authorizes. */
export const TYPE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/
/** A message id, chosen by the sender, unique per sender. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** A sender's session: a fresh random token each time it starts a sequence to a recipient. */
export const SESSION_PATTERN = /^[A-Za-z0-9_-]{1,32}$/
/** A principal id: `z` and base58btc (a full check of the key happens where it is used). */
const PRINCIPAL_PATTERN = /^z[1-9A-HJ-NP-Za-km-z]{1,63}$/

/** Named error of this codec: a frame, an envelope or a reply that is malformed or breaks a limit. */
export class InvalidMailboxMessageError extends Error {
  static name = 'InvalidMailboxMessageError'
  name = 'InvalidMailboxMessageError'
}

/** A frame or a body larger than the protocol allows. */
export class MailboxMessageTooLargeError extends Error {
  static name = 'MailboxMessageTooLargeError'
  name = 'MailboxMessageTooLargeError'
}

/**
 * A message from one agent to another, signed by the sender (`from`) over
 * `MAILBOX_SIGNING_DOMAIN || 0 || dag-cbor(envelope without sig)`.
 */
export interface Envelope {
  v: typeof ENVELOPE_VERSION
  /** Chosen by the sender, unique among its messages: what the receiver deduplicates by. */
  id: string
  /** The sending agent's principal. */
  from: string
  /** The recipient agent's principal. */
  to: string
  /** The message type, authorized by `(cyberspace (mailbox (send <to> <type>)))`. */
  type: string
  /** The sender's sequence to this recipient: a random token, new whenever the sender starts counting again. */
  session: string
  /** Position in the session, from 1: the receiver hands messages to the recipient in this order. */
  seq: number
  /** Every seq below this one is settled at the sender (acknowledged, or given up): the receiver waits for none of them. */
  low: number
  kind: 'send' | 'request'
  /** Any dag-cbor value (null when there is none), at most MAX_BODY_BYTES encoded and MAX_BODY_DEPTH deep. */
  body: unknown
  /** When the sender made it, ms since the epoch. */
  sent: number
  /** After this (ms since the epoch) the message is void: no receiver hands it on. */
  expires: number
  sig: Uint8Array
}

export type UnsignedEnvelope = Omit<Envelope, 'sig'>

/**
 * The recipient's answer to a handled message, signed by the recipient (`from`) over
 * `MAILBOX_REPLY_SIGNING_DOMAIN || 0 || dag-cbor(reply without sig)`.
 */
export interface Reply {
  v: typeof ENVELOPE_VERSION
  /** The id of the message it answers. */
  id: string
  /** The recipient that handled it (the envelope's `to`). */
  from: string
  /** The sender (the envelope's `from`). */
  to: string
  /** `ack` for a `send`, `response` for a `request`. */
  kind: 'ack' | 'response'
  /** The response (null for an ack). */
  body: unknown
  sig: Uint8Array
}

export type UnsignedReply = Omit<Reply, 'sig'>

export interface DeliverMessage {
  v: 1
  type: 'deliver'
  envelope: Envelope
}

export interface ReplyMessage {
  v: 1
  type: 'reply'
  reply: Reply
}

export type MailboxMessage = DeliverMessage | ReplyMessage | ErrorAnswer

const MESSAGE_FIELDS: Record<string, string> = {
  deliver: 'envelope,type,v',
  reply: 'reply,type,v',
  error: ERROR_FIELDS
}
const ENVELOPE_FIELDS = 'body,expires,from,id,kind,low,sent,seq,session,sig,to,type,v'
const REPLY_FIELDS = 'body,from,id,kind,sig,to,v'

const fail = (what: string): never => {
  throw new InvalidMailboxMessageError(what)
}

function isMap(x: unknown): x is Record<string, unknown> {
  return x != null && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Uint8Array) && CID.asCID(x) == null
}

const isPrincipal = (x: unknown): x is string => typeof x === 'string' && PRINCIPAL_PATTERN.test(x)
const isPositive = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 1

/**
 * Throws unless `body` is a dag-cbor value nested at most MAX_BODY_DEPTH deep (a map or a list is
 * one level) whose encoding is at most MAX_BODY_BYTES. `encoded`: the size of the frame it came in,
 * when known (a frame no larger than the limit holds a body no larger than it).
 */
export function checkBody(body: unknown, encoded?: number): void {
  const stack: Array<{ value: unknown; depth: number }> = [{ value: body, depth: 0 }]
  let visited = 0
  while (stack.length > 0) {
    const { value, depth } = stack.pop() as { value: unknown; depth: number }
    if (++visited > MAX_BODY_BYTES) fail('the body has more items than bytes allow')
    if (value == null || typeof value !== 'object' || value instanceof Uint8Array || CID.asCID(value) != null) continue
    if (depth >= MAX_BODY_DEPTH) fail(`the body is nested more than ${MAX_BODY_DEPTH} deep`)
    const items = Array.isArray(value) ? value : Object.values(value)
    for (const item of items) stack.push({ value: item, depth: depth + 1 })
  }
  if (encoded != null && encoded <= MAX_BODY_BYTES) return
  let size: number
  try {
    size = dagCbor.encode(body).length
  } catch (err) {
    return fail(`the body is not a dag-cbor value: ${(err as Error).message}`)
  }
  if (size > MAX_BODY_BYTES)
    throw new MailboxMessageTooLargeError(`the body is ${size} bytes encoded, at most ${MAX_BODY_BYTES}`)
}

function checkEnvelope(x: unknown, frame?: number): asserts x is Envelope {
  if (!isMap(x)) return fail('an envelope is a map')
  const keys = Object.keys(x).sort().join(',')
  if (keys !== ENVELOPE_FIELDS) fail(`an envelope has exactly the fields ${ENVELOPE_FIELDS}, not ${keys.slice(0, 160)}`)
  if (x.v !== ENVELOPE_VERSION) fail(`unsupported envelope version ${String(x.v)}`)
  if (typeof x.id !== 'string' || !ID_PATTERN.test(x.id)) fail('id is 1-64 characters of A-Z a-z 0-9 . _ -')
  if (!isPrincipal(x.from)) fail('from must be a principal id')
  if (!isPrincipal(x.to)) fail('to must be a principal id')
  if (typeof x.type !== 'string' || !TYPE_PATTERN.test(x.type))
    fail(`type is 1-${MAX_TYPE_LENGTH} characters of A-Z a-z 0-9 . _ : / - (starting with a letter or digit)`)
  if (typeof x.session !== 'string' || !SESSION_PATTERN.test(x.session))
    fail(`session is 1-${MAX_SESSION_LENGTH} characters of A-Z a-z 0-9 _ -`)
  if (!isPositive(x.seq)) fail('seq must be a safe integer of at least 1')
  if (!isPositive(x.low) || (x.low as number) > (x.seq as number)) fail('low must be a safe integer from 1 to seq')
  if (x.kind !== 'send' && x.kind !== 'request') fail('kind must be send or request')
  if (!isPositive(x.sent)) fail('sent must be a positive safe integer (ms)')
  if (!isPositive(x.expires) || (x.expires as number) <= (x.sent as number))
    fail('expires must be a safe integer after sent (ms)')
  if ((x.expires as number) - (x.sent as number) > MAX_MESSAGE_TTL_MS)
    fail(`a message lives at most ${MAX_MESSAGE_TTL_MS} ms from sent to expires`)
  if (!isBytes(x.sig, 64, 64)) fail('sig must be 64 bytes (Ed25519)')
  checkBody(x.body, frame)
}

function checkReply(x: unknown, frame?: number): asserts x is Reply {
  if (!isMap(x)) return fail('a reply is a map')
  const keys = Object.keys(x).sort().join(',')
  if (keys !== REPLY_FIELDS) fail(`a reply has exactly the fields ${REPLY_FIELDS}, not ${keys.slice(0, 160)}`)
  if (x.v !== ENVELOPE_VERSION) fail(`unsupported reply version ${String(x.v)}`)
  if (typeof x.id !== 'string' || !ID_PATTERN.test(x.id)) fail('id is 1-64 characters of A-Z a-z 0-9 . _ -')
  if (!isPrincipal(x.from)) fail('from must be a principal id')
  if (!isPrincipal(x.to)) fail('to must be a principal id')
  if (x.kind !== 'ack' && x.kind !== 'response') fail('kind must be ack or response')
  if (x.kind === 'ack' && x.body !== null) fail('an ack has a null body')
  if (!isBytes(x.sig, 64, 64)) fail('sig must be 64 bytes (Ed25519)')
  checkBody(x.body, frame)
}

function checkMessage(x: unknown, frame?: number): asserts x is MailboxMessage {
  const m = checkFields(x, MESSAGE_FIELDS, fail)
  if (m.type === 'deliver') checkEnvelope(m.envelope, frame)
  else if (m.type === 'reply') checkReply(m.reply, frame)
}

const tooLarge = (what: string): never => {
  throw new MailboxMessageTooLargeError(what)
}

/** Encodes a message after checking every field; MailboxMessageTooLargeError over MAX_MAILBOX_MESSAGE_BYTES. */
export function encodeMailboxMessage(msg: MailboxMessage): Uint8Array {
  return encodeChecked(msg, m => checkMessage(m), MAX_MAILBOX_MESSAGE_BYTES, tooLarge)
}

/**
 * Decodes an untrusted frame: its size first (MailboxMessageTooLargeError), then dag-cbor and the
 * exact fields of its type, the envelope's or reply's fields and its body (InvalidMailboxMessageError).
 */
export function decodeMailboxMessage(bytes: Uint8Array): MailboxMessage {
  if (!(bytes instanceof Uint8Array)) return fail('a frame is bytes')
  if (bytes.length > MAX_MAILBOX_MESSAGE_BYTES)
    return tooLarge(`the frame is ${bytes.length} bytes, at most ${MAX_MAILBOX_MESSAGE_BYTES}`)
  const frame = bytes.length
  const check: (m: unknown) => asserts m is MailboxMessage = m => {
    checkMessage(m, frame)
  }
  return decodeChecked(bytes, MAX_MAILBOX_MESSAGE_BYTES, check, fail)
}

/** What an envelope's signature covers after its domain: dag-cbor of the envelope without `sig`. */
export function envelopeSigningBody(envelope: UnsignedEnvelope | Envelope): Uint8Array {
  return 'sig' in envelope ? unsignedBody(envelope) : dagCbor.encode(envelope)
}

/** What a reply's signature covers after its domain: dag-cbor of the reply without `sig`. */
export function replySigningBody(reply: UnsignedReply | Reply): Uint8Array {
  return 'sig' in reply ? unsignedBody(reply) : dagCbor.encode(reply)
}

/** Checks an unsigned envelope a sender is about to sign (the same rules as decoding, with a placeholder signature). */
export function checkUnsignedEnvelope(envelope: UnsignedEnvelope): void {
  checkEnvelope({ ...envelope, sig: new Uint8Array(64) })
}

/** Checks an unsigned reply a recipient is about to sign. */
export function checkUnsignedReply(reply: UnsignedReply): void {
  checkReply({ ...reply, sig: new Uint8Array(64) })
}
