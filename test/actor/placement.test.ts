import assert from 'node:assert/strict'
import fc from 'fast-check'
import { kindsMeta, leaseDeadline, mayTakeOver, offeredKinds, rank } from '../../src/actor/placement.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'

const agent = 'z6MkagentA' as PrincipalId
const members = Array.from({ length: 8 }, (_, i) => `member-${i}`)

describe('agent placement', () => {
  it('ranks candidates the same whatever order they are given in', () => {
    fc.assert(
      fc.property(fc.shuffledSubarray(members, { minLength: 1 }), fc.string(), (subset, id) => {
        const a = rank(id as PrincipalId, subset)
        const b = rank(id as PrincipalId, [...subset].reverse())
        assert.deepEqual(a, b)
        assert.deepEqual([...a].sort(), [...subset].sort())
      })
    )
  })

  it('removing a member moves only the agents it ranked first', () => {
    const agents = Array.from({ length: 200 }, (_, i) => `agent-${i}` as PrincipalId)
    const before = new Map(agents.map(a => [a, rank(a, members)[0]]))
    const gone = 'member-3'
    const after = members.filter(m => m !== gone)
    let moved = 0
    for (const a of agents) {
      const now = rank(a, after)[0]
      if (before.get(a) === gone) {
        moved++
        // the successor is the one ranked second before
        assert.equal(now, rank(a, members)[1])
      } else assert.equal(now, before.get(a))
    }
    // about 1/8 of the agents were on the removed member
    assert.ok(moved > 5 && moved < 60, `moved ${moved}`)
  })

  it('spreads agents over the candidates', () => {
    const counts = new Map<string, number>()
    for (let i = 0; i < 800; i++) {
      const first = rank(`agent-${i}` as PrincipalId, members)[0]
      counts.set(first, (counts.get(first) ?? 0) + 1)
    }
    assert.equal(counts.size, members.length)
    for (const n of counts.values()) assert.ok(n > 50 && n < 150, `a member ranked first for ${n} of 800`)
  })

  it('depends on the agent', () => {
    const firsts = new Set(Array.from({ length: 50 }, (_, i) => rank(`agent-${i}` as PrincipalId, members)[0]))
    assert.ok(firsts.size > 1)
    assert.deepEqual(rank(agent, []), [])
  })

  it('reads and writes the kinds a member offers', () => {
    assert.deepEqual(offeredKinds({ kinds: kindsMeta(['echo', 'review', 'echo']) }), ['echo', 'review'])
    assert.deepEqual(offeredKinds({}), [])
    assert.deepEqual(offeredKinds(undefined), [])
    assert.deepEqual(offeredKinds({ kinds: '' }), [])
  })

  it('leaves a gap of twice the skew between the old host stopping and a successor starting', () => {
    const expires = 100_000
    assert.equal(leaseDeadline(expires, 2000), 98_000)
    assert.equal(mayTakeOver(expires, 101_999, 2000), false)
    assert.equal(mayTakeOver(expires, 102_000, 2000), true)
    // true time: the host (clock behind by d1) stops when its clock reads the deadline; the successor
    // (clock ahead by d2) starts when its clock first allows it; with both within the skew, no overlap
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e9 }), fc.nat(10_000), fc.nat(10_000), fc.nat(10_000), (e, skew, a, b) => {
        const d1 = a % (skew + 1)
        const d2 = b % (skew + 1)
        const hostStops = leaseDeadline(e, skew) + d1
        let successorClock = e
        while (!mayTakeOver(e, successorClock, skew)) successorClock += 1 + Math.floor(skew / 7)
        assert.ok(hostStops <= successorClock - d2)
      })
    )
  })
})
