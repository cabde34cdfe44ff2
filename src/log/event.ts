/**
 * Signed log events and snapshots: making them with a Signer and checking a received one's
 * signature against its author, and the one order every replica replays concurrent events in —
 * HLC, then author, then CID. An event's HLC is later than its parents' (the log enforces it),
 * so this order is also a topological order of the DAG.
 *
 * @example
 * const { event, bytes, cid } = await signEvent(signer, { log: 'tasks', hlc, parents, ops })
 * await verifySigned(EVENT_DOMAIN, event) // throws InvalidSignatureError
 */
import * as dagCbor from '@ipld/dag-cbor'
import {
  blockCid,
  checkEvent,
  encodeEvent,
  encodeSnapshot,
  EVENT_DOMAIN,
  InvalidEventError,
  MAX_EVENT_BYTES,
  SNAPSHOT_DOMAIN
} from '../../protocols/log/codec.ts'
import { unsignedBody } from '../../protocols/wire.ts'
import { principalPublicKey } from '../crypto/principal.ts'
import { verifyAs } from '../crypto/sign.ts'
import { compareHlc } from '../clock/hlc.ts'
import { compareStrings } from '../crdt/codec.ts'
import { InvalidSignatureError } from './errors.ts'
import type { Event, Snapshot } from '../../protocols/log/codec.ts'
import type { Signer } from '../crypto/sign.ts'
import type { CID } from 'multiformats/cid'

export interface Block<T> {
  cid: CID
  bytes: Uint8Array
  value: T
}

export async function signEvent(signer: Signer, fields: Omit<Event, 'v' | 'author' | 'sig'>): Promise<Block<Event>> {
  const unsigned = { v: 1 as const, author: signer.principal, ...fields }
  const body = dagCbor.encode(unsigned)
  const value: Event = { ...unsigned, sig: await signer.sign(EVENT_DOMAIN, body) }
  checkEvent(value)
  // the body signed, with the signature put in its place: the event's dag-cbor, encoded once
  const bytes = eventWithSignature(body, value)
  if (bytes.length > MAX_EVENT_BYTES) throw new InvalidEventError(`an event is at most ${MAX_EVENT_BYTES} bytes`)
  return { cid: await blockCid(bytes), bytes, value }
}

export async function signSnapshot(
  signer: Signer,
  fields: Omit<Snapshot, 'v' | 'author' | 'sig'>
): Promise<Block<Snapshot>> {
  const unsigned = { v: 1 as const, author: signer.principal, ...fields }
  const value: Snapshot = { ...unsigned, sig: await signer.sign(SNAPSHOT_DOMAIN, dagCbor.encode(unsigned)) }
  const bytes = encodeSnapshot(value)
  return { cid: await blockCid(bytes), bytes, value }
}

/**
 * `dagCbor.encode(event)` made from `body`, the dag-cbor of the event without `sig`: in dag-cbor's
 * key order (shorter keys first, then bytewise) `sig` sorts after `v`, `hlc`, `log` and `ops` and
 * before `author` and `parents`, so the signed event is the body with one more entry in its map
 * header and the `sig` entry spliced in before the encoding of those two. Falls back to encoding
 * the whole event if the body is not laid out so (it always is for a body of dag-cbor.encode).
 */
function eventWithSignature(body: Uint8Array, event: Event): Uint8Array {
  const tail = dagCbor.encode({ author: event.author, parents: event.parents })
  // one-byte map headers: 6 entries unsigned, 7 signed, 2 in `tail`
  const at = body.length - (tail.length - 1)
  if (body[0] !== 0xa6 || tail[0] !== 0xa2 || event.sig.length !== 64 || at < 1 || !sameBytes(body, at, tail, 1)) {
    return encodeEvent(event)
  }
  const out = new Uint8Array(body.length + SIG_ENTRY.length + 64)
  out[0] = 0xa7
  out.set(body.subarray(1, at), 1)
  out.set(SIG_ENTRY, at)
  out.set(event.sig, at + SIG_ENTRY.length)
  out.set(body.subarray(at), at + SIG_ENTRY.length + 64)
  return out
}

/** The dag-cbor of the key `sig` (a 3-byte text) and the head of its value (a 64-byte byte string). */
const SIG_ENTRY = Uint8Array.of(0x63, 0x73, 0x69, 0x67, 0x58, 0x40)

/** Whether `a` from `aStart` holds the same bytes as `b` from `bStart`, to their ends. */
function sameBytes(a: Uint8Array, aStart: number, b: Uint8Array, bStart: number): boolean {
  if (a.length - aStart !== b.length - bStart) return false
  for (let i = 0; i < b.length - bStart; i++) if (a[aStart + i] !== b[bStart + i]) return false
  return true
}

/**
 * Checks a received event's signature over its own block: `bytes` with the `sig` entry cut out,
 * which sits where dag-cbor puts it (between `ops` and `author`) in every block a signer makes.
 * That is the body the author signed, got without encoding the event again; and a block anyone but
 * the author re-encoded fails (InvalidSignatureError) — `sig` moved, or the bytes around it
 * changed — where a check over the re-encoded body would pass it under a second CID.
 */
export async function verifyEvent(event: Event, bytes: Uint8Array): Promise<void> {
  const body = signedBody(event, bytes)
  if (body == null) throw new InvalidSignatureError('the signature is not where dag-cbor puts it: a re-encoded block')
  await verifySigned(EVENT_DOMAIN, event, body)
}

/** `bytes` without the entry of `event.sig`, if it sits where `eventWithSignature` puts it; else undefined. */
function signedBody(event: Event, bytes: Uint8Array): Uint8Array | undefined {
  if (bytes[0] !== 0xa7 || !(event.sig instanceof Uint8Array) || event.sig.length !== 64) return undefined
  // after `sig` come `author` (a text) and `parents` (CIDs: tag 42, a byte string of 0x00 + the CID)
  let tail = 1 + 6 + headLength(event.author.length) + event.author.length + 1 + 7
  tail += headLength(event.parents.length)
  for (const p of event.parents) tail += 2 + headLength(p.bytes.length + 1) + p.bytes.length + 1
  const at = bytes.length - tail - SIG_ENTRY.length - 64
  if (at < 1 || !sameBytes(bytes.subarray(at, at + SIG_ENTRY.length), 0, SIG_ENTRY, 0)) return undefined
  if (!sameBytes(bytes.subarray(at + SIG_ENTRY.length, at + SIG_ENTRY.length + 64), 0, event.sig, 0)) return undefined
  const body = new Uint8Array(bytes.length - SIG_ENTRY.length - 64)
  body[0] = 0xa6
  body.set(bytes.subarray(1, at), 1)
  body.set(bytes.subarray(at + SIG_ENTRY.length + 64), at)
  return body
}

/** Bytes of a dag-cbor head for a length or count `n` (major types 2-5). */
function headLength(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5
}

/** Checks an event's or snapshot's signature against its author's key (over `body`, or the re-encoded unsigned form). */
export async function verifySigned(
  domain: typeof EVENT_DOMAIN | typeof SNAPSHOT_DOMAIN,
  signed: Event | Snapshot,
  body?: Uint8Array
): Promise<void> {
  let ok = false
  try {
    ok = await verifyAs(principalPublicKey(signed.author), domain, body ?? unsignedBody(signed), signed.sig)
  } catch (err) {
    throw new InvalidSignatureError(`cannot verify a signature by ${signed.author}: ${(err as Error).message}`)
  }
  if (!ok) throw new InvalidSignatureError(`signature does not verify against its author ${signed.author}`)
}

/** The replay order: HLC, then author, then CID (the key is the CID as a string). */
export function compareEvents(a: { key: string; event: Event }, b: { key: string; event: Event }): number {
  return (
    compareHlc(a.event.hlc, b.event.hlc) ||
    compareStrings(a.event.author, b.event.author) ||
    compareStrings(a.key, b.key)
  )
}
