import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { RecentMap } from '../src/recent-map.ts'

describe('RecentMap', () => {
  it('holds at most its capacity, forgetting the least recently set first', () => {
    const map = new RecentMap<string, number>(3)
    for (const [i, key] of ['a', 'b', 'c', 'd', 'e'].entries()) map.set(key, i)
    assert.equal(map.size, 3)
    assert.deepEqual(map.keys(), ['c', 'd', 'e'])
    assert.deepEqual(map.values(), [2, 3, 4])
    assert.equal(map.has('a'), false)
    assert.equal(map.get('b'), undefined)
  })

  it('counts get and set as a use, and has as none', () => {
    const map = new RecentMap<string, number>(3)
    map.set('a', 1).set('b', 2).set('c', 3)
    assert.equal(map.get('a'), 1) // a is now the most recent: b is the least
    map.set('d', 4)
    assert.deepEqual(map.keys(), ['c', 'a', 'd'])
    map.set('c', 30) // setting an existing key uses it and keeps one entry
    assert.equal(map.size, 3)
    assert.equal(map.has('a'), true) // does not use a
    map.set('e', 5)
    assert.deepEqual(map.keys(), ['d', 'c', 'e'])
    assert.equal(map.get('c'), 30)
  })

  it('tells onEvict what it forgot for room, and not what was deleted or cleared', () => {
    const evicted: Array<[string, number]> = []
    const map = new RecentMap<string, number>(2, { onEvict: (key, value) => evicted.push([key, value]) })
    map.set('a', 1).set('b', 2).set('c', 3)
    assert.deepEqual(evicted, [['a', 1]])
    assert.equal(map.delete('b'), true)
    assert.equal(map.delete('b'), false)
    map.set('d', 4)
    assert.deepEqual(evicted, [['a', 1]], 'room was made by delete')
    map.clear()
    assert.equal(map.size, 0)
    assert.deepEqual(evicted, [['a', 1]])
  })

  it('keeps undefined values apart from missing keys', () => {
    const map = new RecentMap<string, number | undefined>(2)
    map.set('a', undefined).set('b', 2)
    map.get('a') // a use, though its value is undefined
    map.set('c', 3)
    assert.deepEqual(map.keys(), ['a', 'c'])
  })

  it('holds at least one entry, and refuses a capacity that is not a number', () => {
    const map = new RecentMap<string, number>(0)
    assert.equal(map.capacity, 1)
    map.set('a', 1).set('b', 2)
    assert.deepEqual(map.keys(), ['b'])
    assert.throws(() => new RecentMap(Number.NaN), { name: 'TypeError' })
  })

  it('behaves as a list kept in order of use, cut to capacity', () => {
    const op = fc.oneof(
      fc.record({ op: fc.constant('set' as const), key: fc.nat(7), value: fc.integer() }),
      fc.record({ op: fc.constant('get' as const), key: fc.nat(7) }),
      fc.record({ op: fc.constant('has' as const), key: fc.nat(7) }),
      fc.record({ op: fc.constant('delete' as const), key: fc.nat(7) })
    )
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(op, { maxLength: 60 }), (capacity, ops) => {
        const map = new RecentMap<number, number>(capacity)
        let model: Array<[number, number]> = [] // least recently used first
        for (const o of ops) {
          const at = model.findIndex(([k]) => k === o.key)
          if (o.op === 'set') {
            if (at >= 0) model.splice(at, 1)
            model.push([o.key, o.value])
            if (model.length > capacity) model.shift()
            map.set(o.key, o.value)
          } else if (o.op === 'get') {
            const found = at >= 0 ? model.splice(at, 1)[0] : undefined
            if (found != null) model.push(found)
            assert.equal(map.get(o.key), found?.[1])
          } else if (o.op === 'has') {
            assert.equal(map.has(o.key), at >= 0)
          } else {
            if (at >= 0) model = model.filter(([k]) => k !== o.key)
            assert.equal(map.delete(o.key), at >= 0)
          }
          assert.deepEqual(
            map.keys(),
            model.map(([k]) => k)
          )
        }
      })
    )
  })
})
