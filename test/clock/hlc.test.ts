import assert from 'node:assert/strict'
import fc from 'fast-check'
import { compareHlc, formatHlc, Hlc, isHlc, MAX_LOGICAL, parseHlc } from '../../src/clock/hlc.ts'
import type { HlcTimestamp } from '../../src/clock/hlc.ts'

describe('clock/hlc', () => {
  it('ticks strictly upwards even when physical time stands still or goes back', () => {
    let now = 1000
    const clock = new Hlc({ now: () => now })
    const a = clock.tick()
    const b = clock.tick()
    now = 500
    const c = clock.tick()
    now = 2000
    const d = clock.tick()
    assert.deepEqual(
      [a, b, c, d],
      [
        [1000, 0],
        [1000, 1],
        [1000, 2],
        [2000, 0]
      ]
    )
  })

  it('orders a received timestamp before the next local one', () => {
    const clock = new Hlc({ now: () => 1000 })
    const after = clock.receive([1500, 7])
    assert.deepEqual(after, [1500, 8])
    assert.equal(compareHlc(clock.tick(), [1500, 8]), 1)
  })

  it('refuses a timestamp further ahead than the allowed drift, and keeps its own time', () => {
    const clock = new Hlc({ now: () => 10_000, maxDrift: 1000 })
    clock.tick()
    assert.throws(() => clock.receive([11_001, 0]), { name: 'ClockDriftError' })
    assert.deepEqual(clock.last(), [10_000, 0])
    assert.deepEqual(clock.receive([11_000, 0]), [11_000, 1])
  })

  it('refuses malformed timestamps', () => {
    const clock = new Hlc({ now: () => 1 })
    for (const bad of [[1], [1, -1], [1.5, 0], [0, MAX_LOGICAL + 1], 'x', null, [1, 2, 3]]) {
      assert.throws(() => clock.receive(bad as unknown as HlcTimestamp), { name: 'InvalidTimestampError' })
    }
  })

  it('moves the wall part on when the logical counter is exhausted', () => {
    const clock = new Hlc({ now: () => 5, last: [5, MAX_LOGICAL] })
    assert.deepEqual(clock.tick(), [6, 0])
  })

  it('continues after the last timestamp of a previous run', () => {
    const clock = new Hlc({ now: () => 100, last: [200, 3] })
    assert.deepEqual(clock.tick(), [200, 4])
  })

  it('is monotonic and stays within drift for any interleaving of ticks and receives', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ kind: fc.constant('tick' as const), step: fc.integer({ min: -50, max: 50 }) }),
            fc.record({
              kind: fc.constant('receive' as const),
              step: fc.integer({ min: -50, max: 50 }),
              lead: fc.integer({ min: -100, max: 150 }),
              logical: fc.nat(10)
            })
          ),
          { maxLength: 60 }
        ),
        ops => {
          let now = 10_000
          const clock = new Hlc({ now: () => now, maxDrift: 100 })
          let prev: HlcTimestamp = clock.last()
          for (const op of ops) {
            now = Math.max(0, now + op.step)
            let next: HlcTimestamp
            if (op.kind === 'tick') next = clock.tick()
            else {
              const remote: HlcTimestamp = [Math.max(0, now + op.lead), op.logical]
              try {
                next = clock.receive(remote)
              } catch (err) {
                assert.equal((err as Error).name, 'ClockDriftError')
                assert.ok(remote[0] > now + 100)
                continue
              }
              assert.equal(compareHlc(next, remote), 1)
            }
            assert.ok(isHlc(next))
            assert.equal(compareHlc(next, prev), 1)
            prev = next
          }
        }
      )
    )
  })

  it('writes a timestamp as wall.logical and reads it back, or a bare wall; refuses anything else', () => {
    assert.equal(formatHlc([1767000000000, 3]), '1767000000000.3')
    assert.deepEqual(parseHlc('1767000000000.3'), [1767000000000, 3])
    assert.deepEqual(parseHlc('1767000000000'), [1767000000000, 0])
    for (const bad of ['', 'noon', '1.2.3', '-1', '1.', `1.${MAX_LOGICAL + 1}`, '9'.repeat(16)])
      assert.equal(parseHlc(bad), undefined, bad)
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 0, max: MAX_LOGICAL }), (wall, logical) => {
        assert.deepEqual(parseHlc(formatHlc([wall, logical])), [wall, logical])
      })
    )
  })
})
