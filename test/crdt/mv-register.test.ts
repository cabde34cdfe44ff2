import { strict as assert } from 'node:assert'
import { mvRegister } from '../../src/crdt/mv-register.ts'
import { ALICE, at, BOB, CAROL } from './fixtures.ts'

describe('crdt/mv-register', () => {
  it('keeps concurrent values, then collapses them with a set that has seen them', () => {
    const a = mvRegister.empty()
    const b = mvRegister.empty()
    const fromA = mvRegister.set(a, at(ALICE), 'blue')
    const fromB = mvRegister.set(b, at(BOB), 'green')
    for (const s of [a, b]) mvRegister.merge(mvRegister.merge(s, fromA), fromB)
    assert.deepEqual(mvRegister.value(a), ['blue', 'green'])
    assert.ok(mvRegister.equals(a, b))
    const resolve = mvRegister.set(b, at(BOB), 'teal')
    mvRegister.merge(a, resolve)
    assert.deepEqual(mvRegister.value(a), ['teal'])
    assert.equal(a.store.size, 1, 'the overwritten values are gone')
  })

  it('lists values in encoded-byte order and shows one value set twice concurrently once', () => {
    const r = mvRegister.empty()
    const deltas = [
      mvRegister.set(r, at(ALICE), 'same'),
      mvRegister.set(r, at(BOB), 'same'),
      mvRegister.set(r, at(CAROL), 3)
    ]
    for (const d of deltas) mvRegister.merge(r, d)
    assert.deepEqual(mvRegister.value(r), [3, 'same'])
    assert.equal(r.store.size, 3)
  })

  it('reads nothing before any set, and its delta covers the values it replaces', () => {
    const r = mvRegister.empty()
    assert.deepEqual(mvRegister.value(r), [])
    mvRegister.merge(r, mvRegister.set(r, at(ALICE), 1))
    assert.deepEqual(mvRegister.encodeDelta(mvRegister.set(r, at(BOB), 2)), {
      ctx: { vv: { [ALICE]: 1, [BOB]: 1 }, cloud: [] },
      values: [[BOB, 1, 2]]
    })
  })
})
