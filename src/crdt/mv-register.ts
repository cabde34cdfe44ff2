/**
 * The multi-value register (delta-state): a DotFun of written values with a causal context. `set`
 * replaces every value it has observed, so concurrent sets all survive until a later set (one
 * that has seen them) collapses them into one.
 *
 * `value` is the distinct concurrent values, sorted by their dag-cbor bytes (two replicas setting
 * the same value concurrently show it once).
 *
 * Encoding: `{ ctx, values: [[replica, counter, value], …] }`, sorted by dot.
 *
 * @example
 * const r = mvRegister.empty()
 * mvRegister.merge(r, mvRegister.set(r, { replica: 'alice', hlc }, 'draft'))
 * mvRegister.value(r) // ['draft']
 */
import * as dagCbor from '@ipld/dag-cbor'
import { Causal, causalType, DotFun, writeDot } from './causal.ts'
import type { CausalContext } from './causal.ts'
import {
  checkMutationContext,
  compareBytes,
  deltaError,
  expectArray,
  expectTuple,
  MAX_VALUE_BYTES,
  storableValue,
  valueError
} from './codec.ts'
import type { DotClaims } from './causal.ts'
import type { Limits } from './codec.ts'
import type { CrdtType, MutationContext } from './types.ts'

export type MvRegisterState = Causal<DotFun<unknown>>

export interface MvRegisterType extends CrdtType<MvRegisterState, MvRegisterState, unknown[]> {
  /** Writes `value`, replacing every value observed here. */
  set(state: MvRegisterState, ctx: MutationContext, value: unknown): MvRegisterState
}

/** The distinct values among `values`, sorted by their dag-cbor bytes. */
export function distinctValues(values: Iterable<unknown>): unknown[] {
  const encoded = [...values].map(value => ({ value, bytes: dagCbor.encode(value) }))
  encoded.sort((a, b) => compareBytes(a.bytes, b.bytes))
  return encoded.filter((x, i) => i === 0 || compareBytes(encoded[i - 1].bytes, x.bytes) !== 0).map(x => x.value)
}

/** The store and context of a delta writing `value` over `old` (whose dots it covers). */
export function writeValue(
  old: DotFun<unknown> | undefined,
  seen: CausalContext,
  replica: string,
  value: unknown
): [DotFun<unknown>, CausalContext] {
  return writeDot<unknown>(old, seen, replica, storableValue(value, MAX_VALUE_BYTES, valueError('value')).value)
}

export function encodeValueStore(store: DotFun<unknown>): unknown[] {
  return store.sorted().map(([[replica, n], value]) => [replica, n, value])
}

/** Decodes `[[replica, counter, value], …]` with `min`.. maxEntries entries. */
export function decodeValueStore(data: unknown, claims: DotClaims, limits: Limits, field: string): DotFun<unknown> {
  const store = new DotFun<unknown>()
  expectArray(data, field, limits.maxEntries).forEach((x, i) => {
    const at = `${field}[${i}]`
    const entry = expectTuple(x, at, 3)
    const key = claims.claim(entry, at)
    store.entries.set(key, storableValue(entry[2], limits.maxValueBytes, deltaError(`${at}[2]`)).value)
  })
  return store
}

export const mvRegister: MvRegisterType = {
  ...causalType({
    name: 'mv-register',
    field: 'register',
    storeField: 'values',
    emptyStore: () => new DotFun<unknown>(),
    value: store => distinctValues(store.entries.values()),
    encodeStore: encodeValueStore,
    decodeStore: decodeValueStore
  }),

  set(state, ctx, value) {
    checkMutationContext(ctx)
    const [store, context] = writeValue(state.store, state.context, ctx.replica, value)
    return new Causal(store, context)
  }
}
