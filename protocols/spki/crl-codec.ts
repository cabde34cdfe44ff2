/**
 * CRL spreading (see REVOCATIONS.md beside this file): the gossip topic `/cyberspace/crl/1`, which
 * carries each CRL a node signs or imports, and the `/cyberspace/crl/1.0.0` stream protocol, by
 * which a node that missed one asks a peer what it holds (`list` → `digest`) and fetches what is
 * newer (`fetch` → `crls`). dag-cbor maps with a version and a type, decoded with limits.
 *
 * @example
 * const bytes = encodeCrlGossip({ v: 1, type: 'crl', crl: canonicalSignedCrl })
 * const msg = decodeCrlMessage(bytes) // throws InvalidCrlMessageError on anything else
 */
import { checkFields, decodeChecked, encodeChecked, ERROR_FIELDS, isBytes, isPrincipalText } from '../wire.ts'
import type { ErrorAnswer } from '../wire.ts'

export const CRL_TOPIC = '/cyberspace/crl/1'
export const CRL_PROTOCOL = '/cyberspace/crl/1.0.0'
/** A canonical (signed-crl …) listing the most entries (4096) is about 204 KiB. */
export const MAX_CRL_BYTES = 256 * 1024
/** A gossip message: one CRL and its envelope. */
export const MAX_CRL_GOSSIP_BYTES = MAX_CRL_BYTES + 64
/** A stream message (a digest, or the CRLs of one fetch). */
export const MAX_CRL_MESSAGE_BYTES = 1024 * 1024
/** Most entries of a digest: one per issuer, as many as a node keeps CRLs. */
export const MAX_DIGEST_ENTRIES = 1024
/** Most CRLs asked for, and sent, in one fetch. */
export const MAX_FETCH = 8
/** Most certificates one CRL lists (as src/spki/crl.ts). */
export const MAX_CRL_ENTRIES = 4096
export const HASH_BYTES = 32

/** A CRL on the topic: the canonical (signed-crl …). */
export interface CrlGossip {
  v: 1
  type: 'crl'
  crl: Uint8Array
}

/** Asks which CRLs the peer holds. */
export interface ListMessage {
  v: 1
  type: 'list'
}

/** What orders CRLs of one issuer (newest wins): not-before, not-after, count, then hash. */
export interface DigestEntry {
  issuer: string
  notBefore: string
  notAfter: string
  count: number
  /** sha256 of the canonical (signed-crl …). */
  hash: Uint8Array
}

/** The CRLs a node holds, at most one per issuer. */
export interface DigestMessage {
  v: 1
  type: 'digest'
  crls: DigestEntry[]
}

/** Asks for CRLs by hash. */
export interface FetchMessage {
  v: 1
  type: 'fetch'
  hashes: Uint8Array[]
}

/** The CRLs asked for that the peer holds (and that fit): canonical (signed-crl …) each. */
export interface CrlsMessage {
  v: 1
  type: 'crls'
  crls: Uint8Array[]
}

export type CrlMessage = CrlGossip | ListMessage | DigestMessage | FetchMessage | CrlsMessage | ErrorAnswer

export class InvalidCrlMessageError extends Error {
  static name = 'InvalidCrlMessageError'
  name = 'InvalidCrlMessageError'
}

function fail(what: string): never {
  throw new InvalidCrlMessageError(what)
}

const FIELDS = {
  crl: 'crl,type,v',
  list: 'type,v',
  digest: 'crls,type,v',
  fetch: 'hashes,type,v',
  crls: 'crls,type,v',
  error: ERROR_FIELDS
}
const ENTRY_FIELDS = 'count,hash,issuer,notAfter,notBefore'
const TIME = /^\d{4}-\d{2}-\d{2}_\d{2}:\d{2}:\d{2}$/

/** Encodes a message of the stream protocol or the topic. */
export function encodeCrlMessage(msg: CrlMessage): Uint8Array {
  return encodeChecked(msg, check, msg.type === 'crl' ? MAX_CRL_GOSSIP_BYTES : MAX_CRL_MESSAGE_BYTES, fail)
}

/** Decodes a stream message (at most 1 MiB); a `crl` gossip message is not one. */
export function decodeCrlMessage(bytes: Uint8Array): Exclude<CrlMessage, CrlGossip> {
  const msg = decodeChecked(bytes, MAX_CRL_MESSAGE_BYTES, check, fail)
  if (msg.type === 'crl') fail('a crl message travels on the topic, not the stream')
  return msg
}

/** Decodes a message of the topic (at most 256 KiB + 64 bytes). */
export function decodeCrlGossip(bytes: Uint8Array): CrlGossip {
  const msg = decodeChecked(bytes, MAX_CRL_GOSSIP_BYTES, check, fail)
  if (msg.type !== 'crl') fail(`the topic carries crl messages, not ${msg.type}`)
  return msg
}

function checkEntry(e: unknown): void {
  if (e == null || typeof e !== 'object' || Array.isArray(e)) fail('a digest entry is a map')
  const m = e as Record<string, unknown>
  if (Object.keys(m).sort().join(',') !== ENTRY_FIELDS) fail(`a digest entry has exactly the fields ${ENTRY_FIELDS}`)
  if (!isPrincipalText(m.issuer)) fail('issuer is a principal id')
  if (typeof m.notBefore !== 'string' || !TIME.test(m.notBefore)) fail('notBefore is an SPKI time')
  if (typeof m.notAfter !== 'string' || !TIME.test(m.notAfter)) fail('notAfter is an SPKI time')
  if (!Number.isSafeInteger(m.count) || (m.count as number) < 0 || (m.count as number) > MAX_CRL_ENTRIES) {
    fail(`count is 0-${MAX_CRL_ENTRIES}`)
  }
  if (!isBytes(m.hash, HASH_BYTES, HASH_BYTES)) fail(`hash is ${HASH_BYTES} bytes`)
}

function check(msg: unknown): asserts msg is CrlMessage {
  const m = checkFields(msg, FIELDS, fail)
  if (m.type === 'crl') {
    if (!isBytes(m.crl, 1, MAX_CRL_BYTES)) fail(`crl is 1-${MAX_CRL_BYTES} bytes`)
  } else if (m.type === 'digest') {
    if (!Array.isArray(m.crls) || m.crls.length > MAX_DIGEST_ENTRIES) {
      fail(`a digest lists at most ${MAX_DIGEST_ENTRIES} CRLs`)
    }
    m.crls.forEach(checkEntry)
  } else if (m.type === 'fetch') {
    if (!Array.isArray(m.hashes) || m.hashes.length === 0 || m.hashes.length > MAX_FETCH) {
      fail(`fetch asks for 1-${MAX_FETCH} CRLs`)
    }
    if (!m.hashes.every(h => isBytes(h, HASH_BYTES, HASH_BYTES))) fail(`a hash is ${HASH_BYTES} bytes`)
  } else if (m.type === 'crls') {
    if (!Array.isArray(m.crls) || m.crls.length > MAX_FETCH) fail(`crls carries at most ${MAX_FETCH} CRLs`)
    if (!m.crls.every(c => isBytes(c, 1, MAX_CRL_BYTES))) fail(`a CRL is 1-${MAX_CRL_BYTES} bytes`)
  }
}
