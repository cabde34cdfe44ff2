/**
 * The grow-only counter (G-Counter): each replica's own total of increments, joined by pointwise
 * maximum. Its state is a version vector, so it is one: a VectorClock whose entry for a replica is
 * that replica's total. The delta of an increment is the author's single new entry.
 *
 * `value` is the sum of the entries, exact while it stays within Number.MAX_SAFE_INTEGER (each
 * entry is kept within it; an increment past it throws CounterOverflowError).
 *
 * Encoding: `{ replica: total }`, totals positive safe integers.
 *
 * @example
 * const c = gCounter.empty()
 * gCounter.merge(c, gCounter.increment(c, { replica: 'alice', hlc }, 3))
 * gCounter.value(c) // 3
 */
import { VectorClock } from '../clock/vector.ts'
import { checkAmount, checkMutationContext, decodeVector, fail, resolveLimits } from './codec.ts'
import { CounterOverflowError } from './errors.ts'
import type { CrdtLimits, CrdtType, MutationContext } from './types.ts'

export type GCounterState = VectorClock

export interface GCounterType extends CrdtType<GCounterState, GCounterState, number> {
  /** Adds `n` (a positive safe integer, default 1) to the author's total. */
  increment(state: GCounterState, ctx: MutationContext, n?: number): GCounterState
}

/** The delta raising `replica`'s entry of `state` by `n`. */
export function incrementEntry(state: VectorClock, replica: string, n: number): VectorClock {
  checkAmount(n)
  const total = state.get(replica) + n
  if (total > Number.MAX_SAFE_INTEGER) throw new CounterOverflowError(`the total of ${replica} would pass 2^53 - 1`)
  return new VectorClock([[replica, total]])
}

/** Fails unless every entry of `delta` is `replica`'s: a counter changes only its author's total. */
export function checkOwnEntries(delta: VectorClock, replica: string, field: string): void {
  for (const [r] of delta.entries())
    if (r !== replica) fail(field, `changes the total of ${r}, not of its author ${replica}`)
}

export function sumEntries(state: VectorClock): number {
  let sum = 0
  for (const [, n] of state.entries()) sum += n
  return sum
}

const decode = (data: unknown, limits?: CrdtLimits): VectorClock => decodeVector(data, resolveLimits(limits), 'counter')

export const gCounter: GCounterType = {
  name: 'g-counter',
  empty: () => new VectorClock(),
  merge: (into, delta) => into.merge(delta),
  join: (a, b) => a.clone().merge(b),
  toDelta: state => state.clone(),
  clone: state => state.clone(),
  equals: (a, b) => a.compare(b) === 'equal',
  value: sumEntries,
  encodeState: state => state.encode(),
  decodeState: decode,
  encodeDelta: delta => delta.encode(),
  decodeDelta: decode,
  checkDelta: (_state, delta, ctx) => {
    checkOwnEntries(delta, ctx.replica, 'counter')
  },

  increment(state, ctx, n = 1) {
    checkMutationContext(ctx)
    return incrementEntry(state, ctx.replica, n)
  }
}
