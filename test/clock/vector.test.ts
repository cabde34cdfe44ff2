import assert from 'node:assert/strict'
import fc from 'fast-check'
import { VectorClock } from '../../src/clock/vector.ts'

const replica = fc.constantFrom('a', 'b', 'c')
const vector = fc.array(fc.tuple(replica, fc.nat(5)), { maxLength: 6 }).map(entries => {
  const v = new VectorClock()
  for (const [r, n] of entries) v.advance(r, n)
  return v
})

describe('clock/vector', () => {
  it('tells before, after, equal and concurrent apart', () => {
    const a = new VectorClock([['a', 1]])
    const b = a.clone().increment('b')
    const c = a.clone().increment('c')
    assert.equal(a.compare(b), 'before')
    assert.equal(b.compare(a), 'after')
    assert.equal(b.compare(b.clone()), 'equal')
    assert.equal(b.compare(c), 'concurrent')
    assert.ok(b.clone().merge(c).dominates(c))
  })

  it('merge is the least upper bound: commutative, associative, idempotent', () => {
    fc.assert(
      fc.property(vector, vector, vector, (x, y, z) => {
        assert.equal(x.clone().merge(y).compare(y.clone().merge(x)), 'equal')
        assert.equal(
          x
            .clone()
            .merge(y)
            .merge(z)
            .compare(x.clone().merge(y.clone().merge(z))),
          'equal'
        )
        assert.equal(x.clone().merge(x).compare(x), 'equal')
        assert.ok(x.clone().merge(y).dominates(x))
      })
    )
  })

  it('round-trips through its encoding and refuses malformed ones', () => {
    const v = new VectorClock([
      ['b', 2],
      ['a', 1]
    ])
    assert.equal(VectorClock.decode(v.encode()).compare(v), 'equal')
    for (const bad of [[], null, 'x', { a: -1 }, { a: 1.5 }, { a: 0 }, { 'no spaces': 1 }, { a: '1' }]) {
      assert.throws(() => VectorClock.decode(bad), { name: 'InvalidVectorClockError' })
    }
    assert.throws(() => VectorClock.decode({ a: 1, b: 1, c: 1 }, { maxEntries: 2 }), {
      name: 'InvalidVectorClockError'
    })
  })
})
