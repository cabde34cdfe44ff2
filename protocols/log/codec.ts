/**
 * The blocks of a Cyberspace log (spec in README.md beside this file): signed events and signed
 * snapshots, each a dag-cbor block addressed by its CIDv1 (dag-cbor, sha256). Decoding checks
 * size first, then exact shape and every limit; nothing here verifies signatures or authority.
 *
 * @example
 * const bytes = encodeEvent(event)                 // throws InvalidEventError if malformed
 * const cid = await blockCid(bytes)
 * const event = decodeEvent(bytes)                 // throws InvalidEventError on anything else
 * signedBytes(EVENT_DOMAIN, unsignedBody(event))   // what event.sig covers
 */
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { decodeChecked, encodeChecked, isBytes, isPrincipalText } from '../wire.ts'

export const EVENT_DOMAIN = 'cyberspace/event/v1'
export const SNAPSHOT_DOMAIN = 'cyberspace/snapshot/v1'
/** Largest event block. */
export const MAX_EVENT_BYTES = 256 * 1024
/** Largest snapshot block. */
export const MAX_SNAPSHOT_BYTES = 1024 * 1024
export const MAX_PARENTS = 64
export const MAX_OPS = 256
/** Most heads a snapshot covers. */
export const MAX_SNAPSHOT_HEADS = 256
/** Most authors a snapshot's covered vector names. */
export const MAX_COVERED_AUTHORS = 4096
const LOG_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/
/** Largest logical part of a timestamp. */
export const MAX_LOGICAL = 0xffff_ffff
const SHA2_256 = 0x12

export class InvalidEventError extends Error {
  static name = 'InvalidEventError'
  name = 'InvalidEventError'
}

export type Timestamp = readonly [wall: number, logical: number]

export interface Event {
  v: 1
  /** The log this event belongs to. */
  log: string
  /** The author's principal id (z6Mk…); its key made `sig`. */
  author: string
  /** The author's hybrid logical clock at the event: later than every parent's. */
  hlc: Timestamp
  /** The heads of the log the author saw: CIDs of events, distinct. */
  parents: CID[]
  /** CRDT deltas, applied together or not at all; none in a merge event, which only folds heads. */
  ops: unknown[]
  sig: Uint8Array
}

export interface Snapshot {
  v: 1
  log: string
  author: string
  hlc: Timestamp
  /** The heads whose whole history `state` is the result of. */
  heads: CID[]
  /** For each author in that history, the timestamp of its latest event. */
  covered: Record<string, Timestamp>
  /** The CRDT state, in the log type's encoding. */
  state: unknown
  sig: Uint8Array
}

function isLogId(x: unknown): x is string {
  return typeof x === 'string' && LOG_ID_PATTERN.test(x)
}

export function checkLogId(x: unknown, fail: (what: string) => never = invalid): asserts x is string {
  if (!isLogId(x)) fail('a log id is 1-64 characters of a-z 0-9 . _ - starting with a letter or digit')
}

export function isTimestamp(x: unknown): x is Timestamp {
  return (
    Array.isArray(x) &&
    x.length === 2 &&
    Number.isSafeInteger(x[0]) &&
    x[0] >= 0 &&
    Number.isSafeInteger(x[1]) &&
    x[1] >= 0 &&
    x[1] <= MAX_LOGICAL
  )
}

/** A CID of a log block: CIDv1, dag-cbor, sha256. */
export function isBlockCid(x: unknown): x is CID {
  const cid = CID.asCID(x)
  return (
    cid != null &&
    cid.version === 1 &&
    cid.code === dagCbor.code &&
    cid.multihash.code === SHA2_256 &&
    cid.multihash.digest.length === 32
  )
}

export async function blockCid(bytes: Uint8Array): Promise<CID> {
  return CID.createV1(dagCbor.code, await sha256.digest(bytes))
}

export function encodeEvent(event: Event): Uint8Array {
  return encodeChecked(event, checkEvent, MAX_EVENT_BYTES, invalid)
}

export function decodeEvent(bytes: Uint8Array): Event {
  return decodeChecked(bytes, MAX_EVENT_BYTES, checkEvent, invalid)
}

export function encodeSnapshot(snapshot: Snapshot): Uint8Array {
  return encodeChecked(snapshot, checkSnapshot, MAX_SNAPSHOT_BYTES, invalid)
}

export function decodeSnapshot(bytes: Uint8Array): Snapshot {
  return decodeChecked(bytes, MAX_SNAPSHOT_BYTES, checkSnapshot, invalid)
}

const EVENT_FIELDS = 'author,hlc,log,ops,parents,sig,v'
const SNAPSHOT_FIELDS = 'author,covered,heads,hlc,log,sig,state,v'

export function checkEvent(x: unknown): asserts x is Event {
  const e = checkCommon(x, EVENT_FIELDS, 'an event')
  checkCids(e.parents, MAX_PARENTS, 'parents')
  if (!Array.isArray(e.ops) || e.ops.length > MAX_OPS) invalid(`ops is a list of 0-${MAX_OPS} deltas`)
}

export function checkSnapshot(x: unknown): asserts x is Snapshot {
  const s = checkCommon(x, SNAPSHOT_FIELDS, 'a snapshot')
  checkCids(s.heads, MAX_SNAPSHOT_HEADS, 'heads')
  if (s.heads.length === 0) invalid('a snapshot covers at least one head')
  const covered = s.covered
  if (covered == null || typeof covered !== 'object' || Array.isArray(covered) || covered instanceof Uint8Array) {
    invalid('covered is a map of author to timestamp')
  }
  const entries = Object.entries(covered)
  if (entries.length === 0 || entries.length > MAX_COVERED_AUTHORS) {
    invalid(`covered names 1-${MAX_COVERED_AUTHORS} authors`)
  }
  for (const [author, t] of entries) {
    if (!isPrincipalText(author) || !isTimestamp(t)) invalid('covered maps author ids to [wall, logical]')
  }
}

function checkCommon(x: unknown, fields: string, what: string): Record<string, unknown> & { heads: unknown[] } {
  if (x == null || typeof x !== 'object' || Array.isArray(x) || x instanceof Uint8Array) invalid(`${what} is a map`)
  const m = x as Record<string, unknown> & { heads: unknown[] }
  if (m.v !== 1) invalid(`unsupported version ${String(m.v)}`)
  if (Object.keys(m).sort().join(',') !== fields) invalid(`${what} has exactly the fields ${fields}`)
  checkLogId(m.log)
  if (!isPrincipalText(m.author)) invalid('author is a principal id')
  if (!isTimestamp(m.hlc)) invalid('hlc is [wall, logical]: non-negative integers')
  if (!isBytes(m.sig, 64, 64)) invalid('sig is a 64-byte Ed25519 signature')
  return m
}

function checkCids(list: unknown, max: number, field: string): asserts list is CID[] {
  if (!Array.isArray(list) || list.length > max) invalid(`${field} is a list of at most ${max} CIDs`)
  const seen = new Set<string>()
  for (const c of list) {
    if (!isBlockCid(c)) invalid(`${field} holds only CIDv1 dag-cbor sha256 CIDs`)
    const key = c.toString()
    if (seen.has(key)) invalid(`${field} lists ${key} twice`)
    seen.add(key)
  }
}

function invalid(what: string): never {
  throw new InvalidEventError(what)
}
