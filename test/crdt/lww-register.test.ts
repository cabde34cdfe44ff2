import { strict as assert } from 'node:assert'
import { lwwRegister } from '../../src/crdt/lww-register.ts'
import { ALICE, at, BOB } from './fixtures.ts'
import type { LwwRegisterState } from '../../src/crdt/lww-register.ts'

/** Merges `deltas` into an empty register in the given order and returns its value. */
const mergedValue = (...deltas: LwwRegisterState[]): unknown => {
  const r = lwwRegister.empty()
  for (const d of deltas) lwwRegister.merge(r, d)
  return lwwRegister.value(r)
}

describe('crdt/lww-register', () => {
  it('keeps the write with the higher timestamp, in whatever order writes arrive', () => {
    const empty = lwwRegister.empty()
    const early = lwwRegister.set(empty, at(BOB, 1_000, 5), 'early')
    const late = lwwRegister.set(empty, at(ALICE, 1_001, 0), 'late')
    assert.equal(mergedValue(early, late), 'late')
    assert.equal(mergedValue(late, early), 'late')
    const later = lwwRegister.set(empty, at(ALICE, 1_001, 1), 'later')
    assert.equal(mergedValue(later, late, early), 'later')
  })

  it('breaks a timestamp tie by replica id', () => {
    const empty = lwwRegister.empty()
    const a = lwwRegister.set(empty, at(ALICE, 1_000), 'from alice')
    const b = lwwRegister.set(empty, at(BOB, 1_000), 'from bob')
    assert.ok(BOB > ALICE)
    assert.equal(mergedValue(a, b), 'from bob')
    assert.equal(mergedValue(b, a), 'from bob')
  })

  it('stays commutative when one author writes two values under one timestamp', () => {
    const empty = lwwRegister.empty()
    const x = lwwRegister.set(empty, at(ALICE, 1_000), 'x')
    const y = lwwRegister.set(empty, at(ALICE, 1_000), 'y')
    assert.equal(mergedValue(x, y), 'y') // the greater dag-cbor bytes
    assert.equal(mergedValue(y, x), 'y')
    assert.ok(lwwRegister.equals(lwwRegister.join(x, y), lwwRegister.join(y, x)))
    assert.ok(!lwwRegister.equals(x, y))
  })

  it('reads undefined and encodes null before any write', () => {
    const r = lwwRegister.empty()
    assert.equal(lwwRegister.value(r), undefined)
    assert.equal(lwwRegister.encodeState(r), null)
    assert.ok(lwwRegister.equals(lwwRegister.decodeState(null), r))
    const written = lwwRegister.set(r, at(ALICE, 7, 1), { on: true })
    assert.deepEqual(lwwRegister.encodeDelta(written), { hlc: [7, 1], replica: ALICE, value: { on: true } })
    assert.equal(lwwRegister.value(r), undefined, 'the mutator left the state alone')
  })

  it('keeps its own copy of the value written', () => {
    const r = lwwRegister.empty()
    const value = { n: 1 }
    lwwRegister.merge(r, lwwRegister.set(r, at(ALICE), value))
    value.n = 2
    assert.deepEqual(lwwRegister.value(r), { n: 1 })
    assert.throws(() => lwwRegister.set(r, at(ALICE), undefined), { name: 'InvalidValueError' })
    assert.throws(() => lwwRegister.set(r, { replica: ALICE, hlc: [-1, 0] }, 1), { name: 'InvalidTimestampError' })
  })
})
