import { strict as assert } from 'node:assert'
import { orMap } from '../../src/crdt/or-map.ts'
import { ALICE, at, BOB } from './fixtures.ts'
import type { OrMapState } from '../../src/crdt/or-map.ts'

const apply = (state: OrMapState, delta: OrMapState): OrMapState => {
  orMap.merge(state, delta)
  return delta
}

/** Two replicas that have seen the same `setup` deltas. */
function pair(...setup: Array<(s: OrMapState) => OrMapState>): [OrMapState, OrMapState] {
  const a = orMap.empty()
  for (const make of setup) apply(a, make(a))
  return [a, orMap.clone(a)]
}

/** Exchanges the deltas each side made, so both have everything. */
function exchange(a: OrMapState, fromA: OrMapState[], b: OrMapState, fromB: OrMapState[]): void {
  for (const d of fromB) orMap.merge(a, d)
  for (const d of fromA) orMap.merge(b, d)
  assert.ok(orMap.equals(a, b), 'replicas converged')
}

const fields = (s: OrMapState): unknown[] => (orMap.encodeState(s) as { fields: unknown[] }).fields

describe('crdt/or-map', () => {
  it('reads as a plain object: nested maps, counters, sets, lww values and mv arrays', () => {
    const m = orMap.empty()
    apply(m, orMap.set(m, at(ALICE), ['profile', 'name'], 'Alice'))
    apply(m, orMap.assign(m, at(ALICE), ['profile', 'colour'], 'blue'))
    apply(m, orMap.increment(m, at(ALICE), ['visits'], 3))
    apply(m, orMap.decrement(m, at(BOB), ['visits']))
    apply(m, orMap.add(m, at(BOB), ['tags'], 'b'))
    apply(m, orMap.add(m, at(ALICE), ['tags'], 'a'))
    apply(m, orMap.set(m, at(ALICE), ['__proto__'], 1))
    apply(m, orMap.set(m, at(ALICE), ['lww:x'], 'a name may hold a colon'))
    assert.deepEqual(orMap.value(m), {
      ['__proto__']: 1,
      'lww:x': 'a name may hold a colon',
      profile: { colour: ['blue'], name: 'Alice' },
      tags: ['a', 'b'],
      visits: 2
    })
    assert.equal(Object.getPrototypeOf(orMap.value(m)), Object.prototype)
    assert.deepEqual(Object.keys(orMap.value(m)), ['__proto__', 'lww:x', 'profile', 'tags', 'visits'])
    assert.equal(orMap.get(m, ['profile', 'name']), 'Alice')
    assert.deepEqual(orMap.get(m, ['profile']), { colour: ['blue'], name: 'Alice' })
    assert.equal(orMap.get(m, ['nothing', 'here']), undefined)
  })

  it('resolves concurrent lww sets by timestamp, then replica id', () => {
    const [a, b] = pair()
    const x = apply(a, orMap.set(a, at(ALICE, 2_000), ['k'], 'alice late'))
    const y = apply(b, orMap.set(b, at(BOB, 1_000), ['k'], 'bob early'))
    exchange(a, [x], b, [y])
    assert.equal(orMap.get(a, ['k']), 'alice late')
    const [c, d] = pair()
    const u = apply(c, orMap.set(c, at(ALICE, 1_000), ['k'], 'alice'))
    const v = apply(d, orMap.set(d, at(BOB, 1_000), ['k'], 'bob'))
    exchange(c, [u], d, [v])
    assert.equal(orMap.get(c, ['k']), 'bob')
    // a later set that has seen both replaces both dots
    apply(c, orMap.set(c, at(ALICE, 900), ['k'], 'final'))
    assert.equal(orMap.get(c, ['k']), 'final')
    assert.deepEqual(fields(c), [['k', 'lww', [[ALICE, 2, [900, 0], 'final']]]])
  })

  it('keeps concurrent mv assignments and collapses them on a later one', () => {
    const [a, b] = pair()
    const x = apply(a, orMap.assign(a, at(ALICE), ['c'], 'red'))
    const y = apply(b, orMap.assign(b, at(BOB), ['c'], 'green'))
    exchange(a, [x], b, [y])
    assert.deepEqual(orMap.get(a, ['c']), ['red', 'green']) // encoded-byte order: shorter strings first
    apply(b, orMap.assign(b, at(BOB), ['c'], 'brown'))
    assert.deepEqual(orMap.get(b, ['c']), ['brown'])
  })

  it('counts with one dot per replica, however many changes it made', () => {
    const [a, b] = pair()
    const fromA: OrMapState[] = []
    const fromB: OrMapState[] = []
    for (let i = 0; i < 10; i++) {
      fromA.push(apply(a, orMap.increment(a, at(ALICE), ['n'], 2)))
      fromB.push(apply(b, orMap.decrement(b, at(BOB), ['n'])))
    }
    fromA.push(apply(a, orMap.decrement(a, at(ALICE), ['n'], 5)))
    exchange(a, fromA, b, fromB)
    assert.equal(orMap.get(a, ['n']), 20 - 5 - 10)
    assert.deepEqual(fields(a), [
      [
        'n',
        'counter',
        [
          [ALICE, 11, 20, 5],
          [BOB, 10, 0, 10]
        ]
      ]
    ])
  })

  it('lets a concurrent set add win over a field delete and over an element removal', () => {
    const [a, b] = pair(s => orMap.add(s, at(ALICE), ['tags'], 'x'))
    const del = apply(a, orMap.delete(a, at(ALICE), ['tags']))
    const add = apply(b, orMap.add(b, at(BOB), ['tags'], 'x'))
    exchange(a, [del], b, [add])
    assert.deepEqual(orMap.get(a, ['tags']), ['x'])
    const [c, d] = pair(s => orMap.add(s, at(ALICE), ['tags'], 'y'))
    const removal = apply(c, orMap.removeElement(c, at(ALICE), ['tags'], 'y'))
    const readd = apply(d, orMap.add(d, at(BOB), ['tags'], 'y'))
    exchange(c, [removal], d, [readd])
    assert.deepEqual(orMap.value(c), { tags: ['y'] })
    // removing an element never observed changes nothing
    const blind = orMap.removeElement(orMap.empty(), at(BOB), ['tags'], 'y')
    assert.ok(blind.context.isEmpty())
    assert.deepEqual(orMap.value(orMap.merge(c, blind)), { tags: ['y'] })
  })

  it('deletes a nested map but keeps the field updated concurrently inside it', () => {
    const [a, b] = pair(
      s => orMap.set(s, at(ALICE), ['doc', 'title'], 'draft'),
      s => orMap.increment(s, at(ALICE), ['doc', 'stats', 'views']),
      s => orMap.add(s, at(ALICE), ['doc', 'tags'], 'old')
    )
    const del = apply(a, orMap.delete(a, at(ALICE), ['doc']))
    assert.deepEqual(orMap.value(a), {})
    const edit = apply(b, orMap.set(b, at(BOB), ['doc', 'title'], 'final'))
    const view = apply(b, orMap.increment(b, at(BOB), ['doc', 'stats', 'views']))
    exchange(a, [del], b, [edit, view])
    assert.deepEqual(orMap.value(a), { doc: { stats: { views: 1 }, title: 'final' } })
  })

  it('deletes a name under every kind, and shows map, set, counter, lww, mv in that order of preference', () => {
    const m = orMap.empty()
    apply(m, orMap.assign(m, at(ALICE), ['x'], 'mv'))
    assert.deepEqual(orMap.get(m, ['x']), ['mv'])
    apply(m, orMap.set(m, at(ALICE), ['x'], 'lww'))
    assert.equal(orMap.get(m, ['x']), 'lww')
    apply(m, orMap.increment(m, at(ALICE), ['x']))
    assert.equal(orMap.get(m, ['x']), 1)
    apply(m, orMap.add(m, at(ALICE), ['x'], 'e'))
    assert.deepEqual(orMap.get(m, ['x']), ['e'])
    apply(m, orMap.set(m, at(ALICE), ['x', 'inner'], true))
    assert.deepEqual(orMap.value(m), { x: { inner: true } })
    assert.equal(fields(m).length, 5)
    apply(m, orMap.delete(m, at(ALICE), ['x']))
    assert.deepEqual(orMap.value(m), {})
    assert.deepEqual(orMap.encodeState(m), { ctx: { vv: { [ALICE]: 5 }, cloud: [] }, fields: [] })
  })

  it('makes each update’s delta cover what it overwrites', () => {
    const m = orMap.empty()
    apply(m, orMap.set(m, at(ALICE), ['a', 'b'], 1))
    const second = orMap.set(m, at(BOB), ['a', 'b'], 2)
    assert.deepEqual(orMap.encodeDelta(second), {
      ctx: { vv: { [ALICE]: 1, [BOB]: 1 }, cloud: [] },
      fields: [['a', 'map', [['b', 'lww', [[BOB, 1, [1_000, 0], 2]]]]]]
    })
    assert.deepEqual(orMap.value(m), { a: { b: 1 } }, 'the mutator left the state alone')
  })

  it('refuses empty, too deep and badly named paths', () => {
    const m = orMap.empty()
    const deepest = Array.from({ length: 8 }, (_, i) => `l${i}`)
    apply(m, orMap.set(m, at(ALICE), deepest, 'ok'))
    assert.equal(orMap.get(m, deepest), 'ok')
    for (const path of [[], [...deepest, 'l8'], [''], ['x'.repeat(257)], [1 as unknown as string]]) {
      assert.throws(() => orMap.set(m, at(ALICE), path, 1), { name: 'InvalidPathError' }, JSON.stringify(path))
    }
    assert.throws(() => orMap.delete(m, at(ALICE), []), { name: 'InvalidPathError' })
    orMap.set(m, at(ALICE), ['x'.repeat(256)], 1)
    assert.throws(() => orMap.set(m, at(ALICE), ['v'], new Uint8Array(70_000)), { name: 'InvalidValueError' })
    assert.throws(() => orMap.increment(m, at(ALICE), ['n'], 0), { name: 'RangeError' })
  })
})
