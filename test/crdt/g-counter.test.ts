import { strict as assert } from 'node:assert'
import { gCounter } from '../../src/crdt/g-counter.ts'
import { ALICE, at, BOB } from './fixtures.ts'

describe('crdt/g-counter', () => {
  it('sums every replica’s increments and counts a delta once however often it arrives', () => {
    const a = gCounter.empty()
    const b = gCounter.empty()
    const d1 = gCounter.increment(a, at(ALICE), 3)
    gCounter.merge(a, d1)
    const d2 = gCounter.increment(b, at(BOB))
    gCounter.merge(b, d2)
    gCounter.merge(a, d2)
    gCounter.merge(a, d2)
    gCounter.merge(b, d1)
    gCounter.merge(a, gCounter.increment(a, at(ALICE), 2))
    assert.equal(gCounter.value(a), 6)
    assert.equal(gCounter.value(b), 4)
    assert.equal(gCounter.value(gCounter.join(a, b)), 6)
  })

  it('sends only the author’s new total as the delta', () => {
    const state = gCounter.empty()
    gCounter.merge(state, gCounter.increment(state, at(BOB), 5))
    const delta = gCounter.increment(state, at(ALICE), 2)
    assert.deepEqual(gCounter.encodeDelta(delta), { [ALICE]: 2 })
    assert.deepEqual(gCounter.encodeDelta(gCounter.increment(state, at(BOB), 1)), { [BOB]: 6 })
    assert.equal(gCounter.value(state), 5, 'the mutator left the state alone')
  })

  it('refuses increments that are not positive safe integers, and totals past 2^53 - 1', () => {
    const state = gCounter.empty()
    for (const n of [0, -1, 1.5, Number.NaN, 2 ** 53]) {
      assert.throws(() => gCounter.increment(state, at(ALICE), n), { name: 'RangeError' }, String(n))
    }
    gCounter.merge(state, gCounter.increment(state, at(ALICE), Number.MAX_SAFE_INTEGER))
    assert.throws(() => gCounter.increment(state, at(ALICE), 1), { name: 'CounterOverflowError' })
    assert.throws(() => gCounter.increment(state, at('not a replica id'), 1), { name: 'InvalidVectorClockError' })
  })
})
