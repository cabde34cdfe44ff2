/**
 * Signed value records in the DHT: the wire format and its limits (see README.md beside this file).
 *
 * A peer publishes a small value under a name it owns: the DHT key is
 * `/cyberspace-value/<peer-id>/<name>` and the value is a dag-cbor record signed by that peer.
 *
 * @example
 * const key = valueKey('12D3KooW…', 'status')
 * const bytes = encodeValueRecord({ v: 1, seq: 1, value, sig })
 * const record = decodeValueRecord(bytes) // throws InvalidValueRecordError on anything else
 */
import * as dagCbor from '@ipld/dag-cbor'
import { InvalidValueRecordError } from './errors.ts'
import { signedBytes } from '../signing.ts'

/** The DHT namespace (the first key segment) of value records. */
export const VALUE_NAMESPACE = 'cyberspace-value'
/** Prefix of the bytes a value record's signature covers. */
export const VALUE_SIGNING_DOMAIN = 'cyberspace/value/v1'
export const VALUE_RECORD_VERSION = 1
/** Limits: the whole encoded record, the value inside it, a name, and a peer id. */
export const MAX_VALUE_RECORD_BYTES = 8192
export const MAX_VALUE_BYTES = 4096
export const MAX_NAME_LENGTH = 64
export const MAX_PEER_ID_LENGTH = 128
const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/
const PEER_ID_PATTERN = /^[1-9A-HJ-NP-Za-km-z]+$/
/** Largest signature we accept (Ed25519 is 64 bytes; room for other key types). */
const MAX_SIG_BYTES = 512

export interface ValueRecord {
  v: typeof VALUE_RECORD_VERSION
  /** Ordering among records under one key: the highest wins. */
  seq: number
  value: Uint8Array
  /** Signature by the key's peer over `VALUE_SIGNING_DOMAIN || dag-cbor({ v, key, seq, value })`. */
  sig: Uint8Array
}

export function checkValueName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH || !NAME_PATTERN.test(name)) {
    throw new InvalidValueRecordError(
      `name must be 1-${MAX_NAME_LENGTH} characters of a-z 0-9 . _ - starting with a letter or digit`
    )
  }
}

export function valueKey(peerId: string, name: string): string {
  checkPeerIdText(peerId)
  checkValueName(name)
  return `/${VALUE_NAMESPACE}/${peerId}/${name}`
}

export function parseValueKey(key: string | Uint8Array): { peerId: string; name: string } {
  const text = typeof key === 'string' ? key : new TextDecoder('utf-8', { fatal: true }).decode(key)
  const parts = text.split('/')
  if (parts.length !== 4 || parts[0] !== '' || parts[1] !== VALUE_NAMESPACE) {
    throw new InvalidValueRecordError(`key must be /${VALUE_NAMESPACE}/<peer-id>/<name>`)
  }
  checkPeerIdText(parts[2])
  checkValueName(parts[3])
  return { peerId: parts[2], name: parts[3] }
}

/** The exact bytes a value record's signature covers (see protocols/signing.ts). */
export function valueSigningBytes(key: string, seq: number, value: Uint8Array): Uint8Array {
  return signedBytes(VALUE_SIGNING_DOMAIN, dagCbor.encode({ v: VALUE_RECORD_VERSION, key, seq, value }))
}

export function encodeValueRecord(record: ValueRecord): Uint8Array {
  checkFields(record)
  return dagCbor.encode({ v: record.v, seq: record.seq, value: record.value, sig: record.sig })
}

/** Decodes untrusted bytes: size first, then strict shape. Throws InvalidValueRecordError. */
export function decodeValueRecord(bytes: Uint8Array): ValueRecord {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_VALUE_RECORD_BYTES) {
    throw new InvalidValueRecordError(`record larger than ${MAX_VALUE_RECORD_BYTES} bytes`)
  }
  let decoded: unknown
  try {
    decoded = dagCbor.decode(bytes)
  } catch (err) {
    throw new InvalidValueRecordError(`record is not dag-cbor: ${(err as Error).message}`)
  }
  if (decoded == null || typeof decoded !== 'object' || Array.isArray(decoded)) {
    throw new InvalidValueRecordError('record is not a map')
  }
  const keys = Object.keys(decoded).sort().join(',')
  if (keys !== 'seq,sig,v,value') {
    throw new InvalidValueRecordError(`record has fields ${keys}, expected seq, sig, v, value`)
  }
  const record = decoded as ValueRecord
  checkFields(record)
  return record
}

function checkFields(record: ValueRecord): void {
  if (record.v !== VALUE_RECORD_VERSION)
    throw new InvalidValueRecordError(`unsupported record version ${String(record.v)}`)
  if (!Number.isSafeInteger(record.seq) || record.seq < 0)
    throw new InvalidValueRecordError('seq must be a non-negative safe integer')
  if (!(record.value instanceof Uint8Array) || record.value.length > MAX_VALUE_BYTES) {
    throw new InvalidValueRecordError(`value must be bytes, at most ${MAX_VALUE_BYTES}`)
  }
  if (!(record.sig instanceof Uint8Array) || record.sig.length === 0 || record.sig.length > MAX_SIG_BYTES) {
    throw new InvalidValueRecordError('sig must be 1-512 bytes')
  }
}

function checkPeerIdText(peerId: string): void {
  if (
    typeof peerId !== 'string' ||
    peerId.length === 0 ||
    peerId.length > MAX_PEER_ID_LENGTH ||
    !PEER_ID_PATTERN.test(peerId)
  ) {
    throw new InvalidValueRecordError('peer id must be a base58btc peer id')
  }
}
