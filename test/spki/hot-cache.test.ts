import { strict as assert } from 'node:assert'
import { HotCache } from '../../src/spki/hot-cache.ts'

describe('HotCache', () => {
  it('never holds more than its capacity, however many keys are set', () => {
    const cache = new HotCache<number, number>(8)
    for (let i = 0; i < 1000; i++) {
      cache.set(i, i)
      // every other key is read, so eviction meets used and unused entries alike
      if (i % 2 === 0) assert.equal(cache.get(i), i)
      assert.ok(cache.size <= 8)
    }
    assert.equal(cache.size, 8)
  })

  it('keeps an entry in use and forgets one not used since it was passed over', () => {
    const cache = new HotCache<string, number>(3)
    cache.set('a', 1).set('b', 2).set('c', 3)
    assert.equal(cache.get('a'), 1)
    cache.set('d', 4) // 'a' is used: it gets a second chance; 'b' goes
    assert.equal(cache.get('b'), undefined)
    assert.equal(cache.get('a'), 1)
    assert.equal(cache.get('d'), 4)
    // every entry used: one pass clears the marks, and the oldest then goes
    assert.equal(cache.get('c'), 3)
    cache.set('e', 5)
    assert.equal(cache.size, 3)
    assert.equal(cache.get('e'), 5)
  })

  it('replaces a value in place, and forgets on delete and clear', () => {
    const cache = new HotCache<string, number>(2)
    cache.set('a', 1).set('a', 2)
    assert.equal(cache.size, 1)
    assert.equal(cache.get('a'), 2)
    assert.equal(cache.delete('a'), true)
    assert.equal(cache.get('a'), undefined)
    cache.set('b', 1).set('c', 2)
    cache.clear()
    assert.equal(cache.size, 0)
    assert.throws(() => new HotCache(Number.NaN), TypeError)
  })
})
