import { strict as assert } from 'node:assert'
import { pnCounter } from '../../src/crdt/pn-counter.ts'
import { ALICE, at, BOB } from './fixtures.ts'

describe('crdt/pn-counter', () => {
  it('is increments minus decrements over all replicas, and may go below zero', () => {
    const a = pnCounter.empty()
    const b = pnCounter.empty()
    const deltas = [
      pnCounter.increment(a, at(ALICE), 5),
      pnCounter.decrement(b, at(BOB), 7),
      pnCounter.decrement(b, at(BOB), 1) // computed before the first decrement was merged: a lower total
    ]
    for (const d of deltas) pnCounter.merge(a, d)
    for (const d of deltas.reverse()) pnCounter.merge(b, d)
    assert.equal(pnCounter.value(a), -2)
    assert.ok(pnCounter.equals(a, b))
    pnCounter.merge(a, pnCounter.decrement(a, at(BOB), 1))
    pnCounter.merge(a, pnCounter.increment(a, at(ALICE)))
    assert.equal(pnCounter.value(a), -2)
    assert.deepEqual(pnCounter.encodeState(a), { p: { [ALICE]: 6 }, n: { [BOB]: 8 } })
  })

  it('carries one changed entry per delta', () => {
    const state = pnCounter.empty()
    pnCounter.merge(state, pnCounter.increment(state, at(ALICE), 4))
    assert.deepEqual(pnCounter.encodeDelta(pnCounter.decrement(state, at(ALICE), 2)), { p: {}, n: { [ALICE]: 2 } })
    assert.deepEqual(pnCounter.encodeDelta(pnCounter.increment(state, at(ALICE), 2)), { p: { [ALICE]: 6 }, n: {} })
  })

  it('refuses bad amounts and overflow on either side', () => {
    const state = pnCounter.empty()
    assert.throws(() => pnCounter.decrement(state, at(ALICE), 0), { name: 'RangeError' })
    pnCounter.merge(state, pnCounter.decrement(state, at(ALICE), Number.MAX_SAFE_INTEGER))
    assert.throws(() => pnCounter.decrement(state, at(ALICE), 1), { name: 'CounterOverflowError' })
    assert.equal(pnCounter.value(pnCounter.merge(state, pnCounter.increment(state, at(ALICE), 1))), -(2 ** 53) + 2)
  })
})
