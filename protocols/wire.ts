/**
 * Shared pieces of the request/response codecs: dag-cbor decoding under a size limit, field
 * checks, and the `error` answer every protocol sends when it refuses a request.
 *
 * @example
 * const msg = decodeChecked(bytes, 64 * 1024, checkFooMessage, fail)
 * if (!isBytes(msg.session, 32, 32)) throw …
 */
import * as dagCbor from '@ipld/dag-cbor'

export const MAX_ERROR_NAME = 64
export const MAX_ERROR_MESSAGE = 1024
export const MAX_PRINCIPAL_LENGTH = 64

/** A refusal: the named error (e.g. NotAMemberError) and its message. */
export interface ErrorAnswer {
  v: 1
  type: 'error'
  name: string
  message: string
}

export const isText = (x: unknown, max: number): x is string => typeof x === 'string' && x.length > 0 && x.length <= max
/** Bytes of length min..max. */
export const isBytes = (x: unknown, min: number, max: number): x is Uint8Array =>
  x instanceof Uint8Array && x.length >= min && x.length <= max
/** Byte-wise order: the first differing byte, else the shorter first. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i]
  return a.length - b.length
}

export const isPrincipalText = (x: unknown): x is string => isText(x, MAX_PRINCIPAL_LENGTH)

/** A map (not null, not an array) whose keys are exactly `fields` (sorted, comma-separated). */
export const isMapOf = (x: unknown, fields: string): x is Record<string, unknown> =>
  x != null && typeof x === 'object' && !Array.isArray(x) && Object.keys(x).sort().join(',') === fields

/** An array of min..max entries, each accepted by `each`. */
export const isListOf = (x: unknown, min: number, max: number, each: (item: unknown) => boolean): x is unknown[] =>
  Array.isArray(x) && x.length >= min && x.length <= max && x.every(each)

/** Encodes `msg` after `check` accepts it; throws through `fail` if it is larger than `max` bytes. */
export function encodeChecked<T>(
  msg: T,
  check: (m: unknown) => void,
  max: number,
  fail: (what: string) => never
): Uint8Array {
  check(msg)
  const bytes = dagCbor.encode(msg)
  if (bytes.length > max) fail(`message larger than ${max} bytes`)
  return bytes
}

/** Decodes dag-cbor of at most `max` bytes and hands it to `check`, which throws on anything else. */
export function decodeChecked<T>(
  bytes: Uint8Array,
  max: number,
  check: (m: unknown) => asserts m is T,
  fail: (what: string) => never
): T {
  if (!(bytes instanceof Uint8Array) || bytes.length > max) fail(`message larger than ${max} bytes`)
  let decoded: unknown
  try {
    decoded = dagCbor.decode(bytes)
  } catch (err) {
    return fail(`message is not dag-cbor: ${(err as Error).message}`)
  }
  check(decoded)
  return decoded
}

/** The bytes a signed map's signature covers (before the domain prefix): dag-cbor of the map without `sig`. */
export function unsignedBody(msg: { sig: Uint8Array }): Uint8Array {
  const { sig: _sig, ...unsigned } = msg
  return dagCbor.encode(unsigned)
}

/** Checks version 1, a known type, and exactly that type's fields (comma-separated, sorted). */
export function checkFields(
  msg: unknown,
  fields: Record<string, string>,
  fail: (what: string) => never
): Record<string, unknown> & { type: string } {
  if (msg == null || typeof msg !== 'object' || Array.isArray(msg)) fail('message is not a map')
  const m = msg as Record<string, unknown>
  if (m.v !== 1) fail(`unsupported message version ${String(m.v)}`)
  if (typeof m.type !== 'string' || !Object.hasOwn(fields, m.type)) fail(`unknown message type ${String(m.type)}`)
  const expected = fields[m.type]
  if (Object.keys(m).sort().join(',') !== expected) fail(`a ${m.type} message has exactly the fields ${expected}`)
  if (m.type === 'error') {
    if (!isText(m.name, MAX_ERROR_NAME) || !/^[A-Za-z]+$/.test(m.name)) fail('error name is a word')
    if (typeof m.message !== 'string' || m.message.length > MAX_ERROR_MESSAGE) fail('error message too long')
  }
  return m as Record<string, unknown> & { type: string }
}

export const ERROR_FIELDS = 'message,name,type,v'

/** The error answer for `err`: its name if it is a plain word, its message cut to the limit. */
export function errorAnswer(err: unknown): ErrorAnswer {
  const e = err instanceof Error ? err : new Error(String(err))
  return {
    v: 1,
    type: 'error',
    name: /^[A-Za-z]+$/.test(e.name) && e.name.length <= MAX_ERROR_NAME ? e.name : 'Error',
    message: e.message.slice(0, MAX_ERROR_MESSAGE)
  }
}
