/**
 * What the CRDT codecs and mutators share: the decoding limits and their defaults, checks that turn
 * untrusted dag-cbor data into typed fields (throwing InvalidDeltaError that names the field), and
 * user values — their canonical dag-cbor form, equality, and the byte order that breaks ties so
 * joins stay commutative even when a misbehaving author writes two values under one identity.
 *
 * @example
 * const limits = resolveLimits({ maxEntries: 1024 })
 * const m = expectMap(data, 'delta', ['ctx', 'elems'])
 * const elems = expectArray(m.elems, 'delta.elems', limits.maxEntries)
 * const { value, bytes } = storableValue(elems[0], limits.maxValueBytes, deltaError('delta.elems[0]'))
 */
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { checkHlc, isHlc } from '../clock/hlc.ts'
import { checkReplicaId, isReplicaId, VectorClock } from '../clock/vector.ts'
import { compareBytes, isText } from '../../protocols/wire.ts'
export { compareBytes }
import { InvalidDeltaError, InvalidValueError } from './errors.ts'
import type { HlcTimestamp } from '../clock/hlc.ts'
import type { CrdtLimits, MutationContext } from './types.ts'

/** Default most entries of any one collection (elements, fields, dots, replicas). */
export const MAX_ENTRIES = 65_536
/** Default deepest nesting of OR-Maps (the outermost map counts as 1). */
export const MAX_DEPTH = 8
/** Default largest dag-cbor encoding of one user value, in bytes. */
export const MAX_VALUE_BYTES = 64 * 1024
/** Default longest OR-Map field name, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 256
/** Default largest Yjs update, in bytes. */
export const MAX_UPDATE_BYTES = 1024 * 1024

export type Limits = Required<CrdtLimits>

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxEntries: MAX_ENTRIES,
  maxDepth: MAX_DEPTH,
  maxValueBytes: MAX_VALUE_BYTES,
  maxKeyLength: MAX_KEY_LENGTH,
  maxUpdateBytes: MAX_UPDATE_BYTES
})

/** The limits with defaults filled in; each must be a positive integer. */
export function resolveLimits(limits: CrdtLimits = {}): Limits {
  const out: Limits = { ...DEFAULT_LIMITS }
  for (const name of Object.keys(out) as Array<keyof Limits>) out[name] = limits[name] ?? out[name]
  for (const [name, n] of Object.entries(out)) {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`limits.${name} must be a positive integer`)
  }
  return out
}

// ---------------------------------------------------------------- decoding untrusted data

export function fail(field: string, what: string): never {
  throw new InvalidDeltaError(`${field} ${what}`)
}

/** A `refuse` callback for storableValue that throws InvalidDeltaError about `field`. */
export const deltaError =
  (field: string) =>
  (what: string): never =>
    fail(field, what)

/** A dag-cbor map: a plain object, not an array, bytes or a CID. */
export function isMap(x: unknown): x is Record<string, unknown> {
  return x != null && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Uint8Array) && CID.asCID(x) == null
}

/** A map with exactly the fields `keys`. */
export function expectMap(x: unknown, field: string, keys: readonly string[]): Record<string, unknown> {
  if (!isMap(x)) fail(field, 'is not a map')
  const have = Object.keys(x)
  if (have.length !== keys.length || !keys.every(k => Object.hasOwn(x, k))) {
    fail(field, `must have exactly the fields ${keys.join(', ')}`)
  }
  return x
}

/** An array of `min`..`max` items. */
export function expectArray(x: unknown, field: string, max: number, min = 0): unknown[] {
  if (!Array.isArray(x)) fail(field, 'is not an array')
  if (x.length > max) fail(field, `has more than ${max} entries`)
  if (x.length < min) fail(field, min === 1 ? 'is empty' : `has fewer than ${min} entries`)
  return x
}

/** An array of exactly `n` items. */
export function expectTuple(x: unknown, field: string, n: number): unknown[] {
  if (!Array.isArray(x) || x.length !== n) fail(field, `is not an array of ${n} items`)
  return x
}

/** A positive safe integer: a dot counter or a G-Counter entry. */
export function expectCount(x: unknown, field: string): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 1) fail(field, 'is not a positive safe integer')
  return x
}

/** A non-negative safe integer: a total that may be zero. */
export function expectTotal(x: unknown, field: string): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) fail(field, 'is not a non-negative safe integer')
  return x
}

export function expectReplica(x: unknown, field: string): string {
  if (!isReplicaId(x)) fail(field, 'is not a replica id (1-64 characters of A-Z a-z 0-9 _ -)')
  return x
}

export function expectHlc(x: unknown, field: string): HlcTimestamp {
  if (!isHlc(x)) fail(field, 'is not an HLC timestamp [wall, logical]')
  return [x[0], x[1]]
}

/** A string of 1..max UTF-16 code units. */
export function expectText(x: unknown, field: string, max: number): string {
  if (!isText(x, max)) fail(field, `is not a string of 1-${max} characters`)
  return x
}

// ---------------------------------------------------------------- mutation arguments

/** Checks the author and timestamp a mutator was handed. */
export function checkMutationContext(ctx: MutationContext): void {
  if (ctx == null || typeof ctx !== 'object') throw new TypeError('a mutation context is { replica, hlc }')
  checkReplicaId(ctx.replica, 'ctx.replica')
  checkHlc(ctx.hlc, 'ctx.hlc')
}

/** Checks that `n` is a positive safe integer (an increment). */
/** Fails unless a write's timestamp is its event's: a writer cannot date its write after the event. */
export function checkStamp(hlc: HlcTimestamp, ctx: MutationContext, field: string): void {
  if (hlc[0] !== ctx.hlc[0] || hlc[1] !== ctx.hlc[1])
    fail(field, `is ${hlc.join('.')}, not the event's timestamp ${ctx.hlc.join('.')}`)
}

export function checkAmount(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError('n must be a positive safe integer')
}

// ---------------------------------------------------------------- user values

export interface StoredValue {
  /** The value as dag-cbor decodes it: a private copy, so the caller's object cannot change a state. */
  value: unknown
  /** Its dag-cbor encoding. */
  bytes: Uint8Array
}

/**
 * A user value's dag-cbor bytes. `refuse` is called (and must throw) if the value is outside the
 * dag-cbor data model or encodes to more than `maxBytes`.
 */
export function encodeValue(value: unknown, maxBytes: number, refuse: (what: string) => never): Uint8Array {
  let bytes: Uint8Array
  try {
    bytes = dagCbor.encode(value)
  } catch (err) {
    return refuse(`is not in the dag-cbor data model: ${(err as Error).message}`)
  }
  if (bytes.length > maxBytes) refuse(`is larger than ${maxBytes} bytes when dag-cbor encoded`)
  return bytes
}

/** The canonical copy of a user value (decoded from its bytes) and the bytes, checked as in encodeValue. */
export function storableValue(value: unknown, maxBytes: number, refuse: (what: string) => never): StoredValue {
  const bytes = encodeValue(value, maxBytes, refuse)
  return { value: dagCbor.decode(bytes), bytes }
}

/** A `refuse` callback for storableValue that throws InvalidValueError: for mutator arguments. */
export const valueError =
  (field: string) =>
  (what: string): never => {
    throw new InvalidValueError(`${field} ${what}`)
  }

/** Structural equality of dag-cbor data model values (what their encodings being equal means). */
export function dataEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (a == null || b == null || typeof a !== 'object' || typeof b !== 'object') return false
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && compareBytes(a, b) === 0
  }
  const cidA = CID.asCID(a)
  const cidB = CID.asCID(b)
  if (cidA != null || cidB != null) return cidA != null && cidB != null && cidA.equals(cidB)
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => dataEquals(x, b[i]))
  }
  const keys = Object.keys(a)
  if (keys.length !== Object.keys(b).length) return false
  const ra = a as Record<string, unknown>
  const rb = b as Record<string, unknown>
  return keys.every(k => Object.hasOwn(rb, k) && dataEquals(ra[k], rb[k]))
}

/** Lexicographic order of byte strings (a proper prefix sorts first). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** Equal values compare 0; others by their dag-cbor bytes. */
export function compareValues(a: unknown, b: unknown): number {
  return dataEquals(a, b) ? 0 : compareBytes(dagCbor.encode(a), dagCbor.encode(b))
}

/**
 * Of two values stored under one identity (the same dot, or the same timestamp and author), the
 * one every replica keeps: `a` if they are equal, else the one with the greater dag-cbor bytes.
 * Only a misbehaving author can make them differ; the byte order keeps joins commutative then.
 */
export function greaterValue<V>(a: V, b: V): V {
  return compareValues(a, b) >= 0 ? a : b
}

/** Decodes `{ replica: counter }`: valid replica ids, positive safe integers, at most maxEntries. */
export function decodeVector(data: unknown, limits: Limits, field: string): VectorClock {
  if (!isMap(data)) fail(field, 'is not a map of replica to counter')
  try {
    return VectorClock.decode(data, { maxEntries: limits.maxEntries })
  } catch (err) {
    return fail(field, (err as Error).message)
  }
}

/** Bytes as a string of char codes 0-255: a Map key that sorts like the bytes. */
export function bytesToKey(bytes: Uint8Array): string {
  let key = ''
  for (let i = 0; i < bytes.length; i += 4096) {
    key += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096) as unknown as number[])
  }
  return key
}

export function keyToBytes(key: string): Uint8Array {
  const bytes = new Uint8Array(key.length)
  for (let i = 0; i < key.length; i++) bytes[i] = key.charCodeAt(i)
  return bytes
}
