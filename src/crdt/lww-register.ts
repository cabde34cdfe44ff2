/**
 * The last-writer-wins register (state-based; a delta is a whole state): the value with the
 * greatest (HLC timestamp, author's replica id). Two entries with the same timestamp and author
 * but different values can only come from a misbehaving author; the one with the greater dag-cbor
 * bytes wins, so join stays commutative even then.
 *
 * A `set` wins only if its timestamp is the greatest: take `ctx.hlc` from a clock that has
 * received every timestamp this state holds (Hlc.receive) and a later set always wins.
 *
 * Encoding: `null` when empty, else `{ hlc: [wall, logical], replica, value }`.
 *
 * @example
 * const r = lwwRegister.empty()
 * lwwRegister.merge(r, lwwRegister.set(r, { replica: 'alice', hlc: clock.tick() }, 'on'))
 * lwwRegister.value(r) // 'on'
 */
import { compareHlc } from '../clock/hlc.ts'
import {
  checkMutationContext,
  compareValues,
  compareStrings,
  checkStamp,
  deltaError,
  expectHlc,
  fail,
  expectMap,
  expectReplica,
  MAX_VALUE_BYTES,
  resolveLimits,
  storableValue,
  valueError
} from './codec.ts'
import type { HlcTimestamp } from '../clock/hlc.ts'
import type { Limits } from './codec.ts'
import type { CrdtType, MutationContext } from './types.ts'

export interface LwwEntry {
  readonly hlc: HlcTimestamp
  readonly replica: string
  readonly value: unknown
}

export interface LwwRegisterState {
  /** The winning write, or null before any. */
  entry: LwwEntry | null
}

export interface LwwRegisterType extends CrdtType<LwwRegisterState, LwwRegisterState, unknown> {
  set(state: LwwRegisterState, ctx: MutationContext, value: unknown): LwwRegisterState
}

/** The order of writes: timestamp, then replica id, then (for a misbehaving author) the value's bytes. */
export function compareEntries(a: LwwEntry, b: LwwEntry): number {
  return compareHlc(a.hlc, b.hlc) || compareStrings(a.replica, b.replica) || compareValues(a.value, b.value)
}

function greater(a: LwwEntry | null, b: LwwEntry | null): LwwEntry | null {
  if (a == null) return b
  if (b == null) return a
  return compareEntries(b, a) > 0 ? b : a
}

function decode(data: unknown, limits: Limits): LwwRegisterState {
  if (data === null) return { entry: null }
  const m = expectMap(data, 'register', ['hlc', 'replica', 'value'])
  return {
    entry: {
      hlc: expectHlc(m.hlc, 'register.hlc'),
      replica: expectReplica(m.replica, 'register.replica'),
      value: storableValue(m.value, limits.maxValueBytes, deltaError('register.value')).value
    }
  }
}

export const lwwRegister: LwwRegisterType = {
  name: 'lww-register',
  empty: () => ({ entry: null }),
  merge: (into, delta) => {
    into.entry = greater(into.entry, delta.entry)
    return into
  },
  join: (a, b) => ({ entry: greater(a.entry, b.entry) }),
  toDelta: state => ({ entry: state.entry }),
  clone: state => ({ entry: state.entry }),
  equals: (a, b) =>
    a.entry === b.entry || (a.entry != null && b.entry != null && compareEntries(a.entry, b.entry) === 0),
  value: state => state.entry?.value,
  encodeState: ({ entry }) =>
    entry == null ? null : { hlc: [entry.hlc[0], entry.hlc[1]], replica: entry.replica, value: entry.value },
  decodeState: (data, limits) => decode(data, resolveLimits(limits)),
  encodeDelta: delta => lwwRegister.encodeState(delta),
  decodeDelta: (data, limits) => decode(data, resolveLimits(limits)),
  checkDelta: (_state, { entry }, ctx) => {
    if (entry == null) return
    if (entry.replica !== ctx.replica) fail('register.replica', `is ${entry.replica}, not the author ${ctx.replica}`)
    checkStamp(entry.hlc, ctx, 'register.hlc')
  },

  set(_state, ctx, value) {
    checkMutationContext(ctx)
    const stored = storableValue(value, MAX_VALUE_BYTES, valueError('value')).value
    return { entry: { hlc: [ctx.hlc[0], ctx.hlc[1]], replica: ctx.replica, value: stored } }
  }
}
