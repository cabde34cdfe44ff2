/**
 * The positive-negative counter (PN-Counter): two G-Counters, one of increments and one of
 * decrements; its value is their difference. A delta carries only the entry that changed.
 *
 * Encoding: `{ p: { replica: total }, n: { replica: total } }`.
 *
 * @example
 * const c = pnCounter.empty()
 * pnCounter.merge(c, pnCounter.increment(c, { replica: 'alice', hlc }, 5))
 * pnCounter.merge(c, pnCounter.decrement(c, { replica: 'bob', hlc }, 2))
 * pnCounter.value(c) // 3
 */
import { VectorClock } from '../clock/vector.ts'
import { checkMutationContext, decodeVector, expectMap, resolveLimits } from './codec.ts'
import { checkOwnEntries, incrementEntry, sumEntries } from './g-counter.ts'
import type { Limits } from './codec.ts'
import type { CrdtType, MutationContext } from './types.ts'

export interface PnCounterState {
  /** Increments by replica. */
  readonly p: VectorClock
  /** Decrements by replica. */
  readonly n: VectorClock
}

export interface PnCounterType extends CrdtType<PnCounterState, PnCounterState, number> {
  /** Adds `n` (a positive safe integer, default 1). */
  increment(state: PnCounterState, ctx: MutationContext, n?: number): PnCounterState
  /** Subtracts `n` (a positive safe integer, default 1). */
  decrement(state: PnCounterState, ctx: MutationContext, n?: number): PnCounterState
}

function decode(data: unknown, limits: Limits): PnCounterState {
  const m = expectMap(data, 'counter', ['p', 'n'])
  return { p: decodeVector(m.p, limits, 'counter.p'), n: decodeVector(m.n, limits, 'counter.n') }
}

export const pnCounter: PnCounterType = {
  name: 'pn-counter',
  empty: () => ({ p: new VectorClock(), n: new VectorClock() }),
  merge: (into, delta) => {
    into.p.merge(delta.p)
    into.n.merge(delta.n)
    return into
  },
  join: (a, b) => ({ p: a.p.clone().merge(b.p), n: a.n.clone().merge(b.n) }),
  toDelta: state => pnCounter.clone(state),
  clone: state => ({ p: state.p.clone(), n: state.n.clone() }),
  equals: (a, b) => a.p.compare(b.p) === 'equal' && a.n.compare(b.n) === 'equal',
  value: state => sumEntries(state.p) - sumEntries(state.n),
  encodeState: state => ({ p: state.p.encode(), n: state.n.encode() }),
  decodeState: (data, limits) => decode(data, resolveLimits(limits)),
  encodeDelta: delta => pnCounter.encodeState(delta),
  decodeDelta: (data, limits) => decode(data, resolveLimits(limits)),
  checkDelta: (_state, delta, ctx) => {
    checkOwnEntries(delta.p, ctx.replica, 'counter.p')
    checkOwnEntries(delta.n, ctx.replica, 'counter.n')
  },

  increment(state, ctx, n = 1) {
    checkMutationContext(ctx)
    return { p: incrementEntry(state.p, ctx.replica, n), n: new VectorClock() }
  },

  decrement(state, ctx, n = 1) {
    checkMutationContext(ctx)
    return { p: new VectorClock(), n: incrementEntry(state.n, ctx.replica, n) }
  }
}
