/**
 * What every replicated data type in Cyberspace provides. The types are delta-state CRDTs
 * (Almeida, Shoker, Baquero, "Delta State Replicated Data Types", 2018): a mutator returns a
 * small delta, and replicas converge by joining deltas and states in any order, any number of
 * times. The log (src/log/) carries deltas as the `ops` of signed events and rebuilds state by
 * merging them.
 *
 * @example
 * const type = crdtTypes['or-set']
 * let state = type.empty()
 * const delta = orSet.add(state, { replica, hlc }, 'x')   // mutators never modify their input…
 * type.merge(state, delta)                                  // …the caller merges the delta
 * type.value(state)                                         // ['x']
 * const bytes = dagCbor.encode(type.encodeDelta(delta))     // what goes into an event's ops
 */
import type { HlcTimestamp } from '../clock/hlc.ts'

export type CrdtName =
  'g-counter' | 'pn-counter' | 'or-set' | 'lww-register' | 'mv-register' | 'or-map' | 'text' | 'op-log'

/** Who is changing a replica, and when: the author's replica id (its principal id) and an HLC timestamp. */
export interface MutationContext {
  replica: string
  hlc: HlcTimestamp
}

/** Limits applied while decoding untrusted states and deltas. */
export interface CrdtLimits {
  /** Most entries of any one collection (elements, fields, dots, replicas); default 65 536. */
  maxEntries?: number
  /** Deepest nesting of OR-Maps; default 8. */
  maxDepth?: number
  /** Largest dag-cbor encoding of a single user value (register value, set element), in bytes; default 64 KiB. */
  maxValueBytes?: number
  /** Longest map field name, in characters; default 256. */
  maxKeyLength?: number
  /** Largest Yjs update, in bytes; default 1 MiB. */
  maxUpdateBytes?: number
}

/**
 * A CRDT: S is a replica's state, D a delta (for the state-based types D = S), V the value users read.
 * `join` and `merge` are commutative, associative and idempotent in the sense of `equals`.
 */
export interface CrdtType<S, D, V> {
  readonly name: CrdtName
  empty(): S
  /** Joins a delta into `into`, in place, and returns `into`. */
  merge(into: S, delta: D): S
  /** The join of two states, without modifying either. */
  join(a: S, b: S): S
  /** A state as a delta, e.g. to send a whole state where a delta is expected. */
  toDelta(state: S): D
  clone(state: S): S
  equals(a: S, b: S): boolean
  value(state: S): V
  /** The dag-cbor data model form of a state; equal states give identical encodings. */
  encodeState(state: S): unknown
  /** Decodes untrusted data with limits; throws InvalidDeltaError. */
  decodeState(data: unknown, limits?: CrdtLimits): S
  encodeDelta(delta: D): unknown
  decodeDelta(data: unknown, limits?: CrdtLimits): D
  /**
   * Throws InvalidDeltaError unless `delta`, from an event by `ctx.replica` at `ctx.hlc`, is one the
   * mutators could have made there on a state that `state` includes: everything it creates (dots,
   * counter entries, timestamps, Yjs items) is that replica's and stamped `ctx.hlc`, and it claims to
   * have seen nothing of any other replica that `state` has not. Decoding checks the shape; this
   * checks the claims, so one writer cannot forge another's writes or suppress its future ones.
   */
  checkDelta(state: S, delta: D, ctx: MutationContext): void
}
