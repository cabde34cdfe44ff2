import { strict as assert } from 'node:assert'
import { PeerBudget } from '../src/peer-budget.ts'

/** A clock the test moves by hand. */
function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000
  return { now: () => t, advance: ms => void (t += ms) }
}

describe('PeerBudget', () => {
  it('gives a peer its burst, then one token per refill interval', () => {
    const time = clock()
    const budget = new PeerBudget(600, Infinity, time.now, 1024, 3) // 10 a second
    for (let i = 0; i < 3; i++) assert.equal(budget.take('a'), true)
    assert.equal(budget.take('a'), false)
    time.advance(99)
    assert.equal(budget.take('a'), false)
    time.advance(1)
    assert.equal(budget.take('a'), true)
    assert.equal(budget.take('a'), false)
    time.advance(60_000) // refills to the burst, no further
    for (let i = 0; i < 3; i++) assert.equal(budget.take('a'), true)
    assert.equal(budget.take('a'), false)
  })

  it('holds the per-minute rate as the burst when none is set', () => {
    const time = clock()
    const budget = new PeerBudget(5, Infinity, time.now)
    for (let i = 0; i < 5; i++) assert.equal(budget.take('a'), true)
    assert.equal(budget.take('a'), false)
    time.advance(12_000)
    assert.equal(budget.take('a'), true)
    // a rate of zero allows nothing, ever
    const none = new PeerBudget(0, 1, time.now)
    assert.equal(none.take('a'), false)
    time.advance(3_600_000)
    assert.equal(none.take('a'), false)
  })

  it('refuses a peer with too many requests in flight until one is released', () => {
    const time = clock()
    const budget = new PeerBudget(100, 2, time.now)
    assert.equal(budget.take('a'), true)
    assert.equal(budget.take('a'), true)
    assert.equal(budget.take('a'), false)
    assert.equal(budget.take('b'), true) // another peer is not held up
    budget.release('a')
    assert.equal(budget.take('a'), true)
    budget.release('c') // an unknown peer's release changes nothing
  })

  it('does not refill a depleted bucket for a flooder that cycles peer ids', () => {
    const time = clock()
    const budget = new PeerBudget(60, Infinity, time.now, 4, 2)
    for (let peer = 0; peer < 4; peer++) {
      assert.equal(budget.take(`p${peer}`), true)
      assert.equal(budget.take(`p${peer}`), true)
      assert.equal(budget.take(`p${peer}`), false)
    }
    // the map is full of depleted buckets: a new id is refused, an old one stays depleted
    assert.equal(budget.take('fresh'), false)
    assert.equal(budget.take('p0'), false)
    time.advance(1_000) // one token back each, still short of a full bucket
    assert.equal(budget.take('fresh'), false)
    time.advance(2_000) // every bucket full again: they may be forgotten to make room
    assert.equal(budget.take('fresh'), true)
  })

  it('never forgets a bucket with a request in flight to make room', () => {
    const time = clock()
    const budget = new PeerBudget(60, 1, time.now, 1)
    assert.equal(budget.take('a'), true)
    time.advance(120_000) // refilled, but still busy
    assert.equal(budget.take('b'), false)
    assert.equal(budget.take('a'), false) // its request is still in flight
    budget.release('a')
    assert.equal(budget.take('b'), true)
  })
})
