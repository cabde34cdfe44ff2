import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { ManualClock } from '../../src/actor/clock.ts'
import { MAX_MAILBOX_CAPACITY, Mailbox } from '../../src/actor/mailbox.ts'

describe('Mailbox', () => {
  it('refuses an offer at once with MailboxFullError naming its capacity, and keeps what it accepted', () => {
    const box = new Mailbox<number>({ capacity: 2 })
    box.offer(1)
    box.offer(2)
    assert.throws(
      () => box.offer(3),
      (err: any) => err.name === 'MailboxFullError' && err.capacity === 2
    )
    assert.equal(box.size, 2)
    assert.equal(box.take(), 1)
    box.offer(3)
    assert.deepEqual([box.take(), box.take(), box.take()], [2, 3, undefined])
  })

  it('checks its capacity at the edge', () => {
    for (const capacity of [0, -1, 1.5, NaN, MAX_MAILBOX_CAPACITY + 1, '3' as unknown as number]) {
      assert.throws(() => new Mailbox({ capacity }), { name: 'InvalidActorOptionError' })
    }
  })

  it('lets put wait for room until its deadline, then refuses it', async () => {
    const clock = new ManualClock()
    const box = new Mailbox<string>({ capacity: 1, clock })
    box.offer('a')
    const waiting = box.put('b', { timeout: 100 })
    const late = box.put('c', { timeout: 50 })
    let lateError: any
    late.catch(error => (lateError = error))
    const lateName = (): string | undefined => lateError?.name
    await clock.advance(49)
    assert.equal(lateName(), undefined)
    await clock.advance(1)
    assert.equal(lateName(), 'MailboxFullError')
    assert.equal(box.take(), 'a') // room: the first waiter gets in
    await waiting
    assert.equal(box.take(), 'b')
    assert.equal(box.take(), undefined)
    // put with no timeout behaves like offer
    box.offer('x')
    await assert.rejects(box.put('y'), { name: 'MailboxFullError' })
  })

  it('hands back everything it holds when closed and refuses from then on', async () => {
    const clock = new ManualClock()
    const box = new Mailbox<number>({ capacity: 2, clock })
    box.offer(1)
    box.offer(2)
    const waiting = box.put(3, { timeout: 1_000 })
    const rest = box.close()
    assert.deepEqual(rest, [1, 2])
    await assert.rejects(waiting, { name: 'ActorStoppedError' })
    assert.throws(() => box.offer(4), { name: 'ActorStoppedError' })
  })

  it('keeps FIFO order and loses nothing across any interleaving of offers, takes and removals', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.oneof(fc.constant('offer'), fc.constant('take'), fc.constant('remove')), { maxLength: 200 }),
        (capacity, ops) => {
          const box = new Mailbox<number>({ capacity })
          const model: number[] = []
          const out: number[] = []
          let next = 0
          for (const op of ops) {
            if (op === 'offer') {
              const n = next++
              try {
                box.offer(n)
                model.push(n)
              } catch (error: any) {
                assert.equal(error.name, 'MailboxFullError')
                assert.equal(model.length, capacity)
              }
            } else if (op === 'take') {
              const got = box.take()
              assert.equal(got, model.shift())
              if (got !== undefined) out.push(got)
            } else if (model.length > 0) {
              const victim = model.splice(Math.floor(model.length / 2), 1)[0]
              assert.equal(box.remove(victim), true)
            }
            assert.equal(box.size, model.length)
          }
          assert.deepEqual(box.close(), model)
          for (let i = 1; i < out.length; i++) assert.ok(out[i] > out[i - 1])
        }
      )
    )
  })
})
