import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { Backoff, backoffDelay, checkBackoff } from '../../src/actor/backoff.ts'
import { ManualClock } from '../../src/actor/clock.ts'

describe('restart backoff', () => {
  it('doubles from min up to max, then multiplies by 1 + random · randomFactor (Akka)', () => {
    const options = checkBackoff({ min: 200, max: 3_000, randomFactor: 0.2 })
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 100].map(n => backoffDelay(n, options, 0)),
      [200, 400, 800, 1_600, 3_000, 3_000, 3_000]
    )
    assert.deepEqual(
      [1, 2, 5].map(n => backoffDelay(n, options, 0.5)),
      [220, 440, 3_300]
    )
    assert.equal(backoffDelay(1, checkBackoff({ min: 1, max: 1, randomFactor: 0 }), 0.99), 1)
  })

  it('stays within [base, base · (1 + randomFactor)] for any attempt and random draw (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (min, extra, factor, attempt, random) => {
          const options = checkBackoff({ min, max: min + extra, randomFactor: factor })
          const base = Math.min(min + extra, min * 2 ** Math.min(attempt - 1, 52))
          const delay = backoffDelay(attempt, options, random)
          assert.ok(Number.isFinite(delay))
          assert.ok(
            delay >= Math.round(base) - 1 && delay <= Math.round(base * (1 + factor)) + 1,
            `${delay} for ${base}`
          )
        }
      )
    )
  })

  it('counts consecutive restarts and starts over after a run of resetAfter ms', async () => {
    const clock = new ManualClock({ random: () => 0 })
    const backoff = new Backoff({ min: 10, max: 1_000, resetAfter: 500 }, clock)
    backoff.started()
    assert.deepEqual(backoff.next(), { attempt: 1, delay: 10 })
    backoff.started()
    await clock.advance(499)
    assert.deepEqual(backoff.next(), { attempt: 2, delay: 20 })
    assert.deepEqual(backoff.next(), { attempt: 3, delay: 40 }) // a failed start is consecutive too
    backoff.started()
    await clock.advance(500)
    assert.deepEqual(backoff.next(), { attempt: 1, delay: 10 })
    // without options: no delay, attempts still counted within the given period
    const plain = new Backoff(undefined, clock, 5_000)
    plain.started()
    assert.deepEqual(plain.next(), { attempt: 1, delay: 0 })
    plain.started()
    assert.deepEqual(plain.next(), { attempt: 2, delay: 0 })
  })

  it('refuses options out of range, naming the field', () => {
    const bad = [
      { min: 0, max: 10 },
      { min: 10, max: 5 },
      { min: 10, max: 20, randomFactor: 1.5 },
      { min: 10, max: 20, randomFactor: -0.1 },
      { min: 10, max: Infinity },
      { min: 10, max: 20, resetAfter: 0 }
    ]
    for (const options of bad) assert.throws(() => checkBackoff(options), { name: 'InvalidActorOptionError' })
    assert.throws(() => checkBackoff({ min: 10, max: 5 }), /backoff\.max/)
  })
})
