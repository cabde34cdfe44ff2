import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { Actor, spawn } from '../../src/actor/actor.ts'
import { ManualClock } from '../../src/actor/clock.ts'
import type { ActorEvent, Behaviour } from '../../src/actor/actor.ts'

/** A promise the test resolves by hand. */
function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void
  const promise = new Promise<T>(resolve => (open = resolve))
  return { promise, open }
}

/** Records what settled, so a test can look without awaiting. */
function watch<T>(promise: Promise<T>): { value?: T; error?: any; settled: boolean } {
  const seen: { value?: T; error?: any; settled: boolean } = { settled: false }
  promise.then(
    value => Object.assign(seen, { value, settled: true }),
    error => Object.assign(seen, { error, settled: true })
  )
  return seen
}

describe('Actor', () => {
  it('goes starting → running → stopping → stopped and answers tell and ask in between', async () => {
    const clock = new ManualClock()
    const events: string[] = []
    const initGate = gate()
    const log: string[] = []
    const actor = new Actor<number, number>(
      () => {
        let total = 0
        return {
          init: async () => await initGate.promise,
          handle: n => (total += n),
          terminate: reason => void log.push(`terminate ${String(reason)}`)
        }
      },
      { name: 'sum', clock }
    )
    actor.on(e => events.push(e.type))
    assert.equal(actor.state, 'stopped')
    const started = actor.start()
    assert.equal(actor.state, 'starting')
    const early = watch(actor.ask(1)) // accepted while starting, handled once running
    await clock.settle()
    assert.equal(early.settled, false)
    initGate.open()
    await started
    assert.equal(actor.state, 'running')
    assert.equal(await actor.ask(2), 3)
    assert.equal(early.value, 1)
    await actor.tell(10)
    assert.equal(await actor.ask(0), 13)
    const stopping = actor.stop()
    assert.equal(actor.state, 'stopping')
    await stopping
    assert.equal(actor.state, 'stopped')
    assert.deepEqual(log, ['terminate normal'])
    assert.deepEqual(events, ['started', 'stopped'])
    await assert.rejects(actor.ask(1), { name: 'ActorStoppedError' })
  })

  it('crashes when a handler throws: the caller gets that error, the next message waits for a restart', async () => {
    const clock = new ManualClock()
    const events: ActorEvent[] = []
    const actor = await spawn<string, string>(
      () => ({
        handle: m => {
          if (m === 'boom') throw new RangeError('boom')
          return m.toUpperCase()
        }
      }),
      { clock, name: 'upper' }
    )
    actor.onExit = () => {} // as a supervisor would: keep the mailbox for the next incarnation
    actor.on(e => events.push(e))
    assert.equal(await actor.ask('a'), 'A')
    const crash = actor.ask('boom')
    const after = watch(actor.ask('b'))
    await assert.rejects(crash, { name: 'RangeError' })
    await clock.settle()
    assert.equal(actor.state, 'crashed')
    assert.equal(after.settled, false) // still queued, not lost
    assert.equal(events.at(-1)?.type, 'crashed')
    await actor.start()
    await clock.settle()
    assert.equal(after.value, 'B')
    assert.equal(actor.incarnation, 2)
  })

  it('crashes when a handler rejects, and when it misses its deadline (HandlerTimeoutError)', async () => {
    const clock = new ManualClock()
    let aborted: unknown
    const actor = await spawn<string, string>(
      () => ({
        handle: async (m, ctx) => {
          if (m === 'reject') throw new TypeError('no')
          ctx.signal.addEventListener('abort', () => (aborted = ctx.signal.reason))
          return await new Promise<string>(() => {}) // never answers
        }
      }),
      { clock, handlerTimeout: 1_000 }
    )
    actor.onExit = () => {}
    await assert.rejects(actor.ask('reject'), { name: 'TypeError' })
    await clock.settle()
    assert.equal(actor.state, 'crashed')
    await actor.start()
    const stuck = watch(actor.ask('hang'))
    await clock.advance(999)
    assert.equal(stuck.settled, false)
    assert.equal(actor.state, 'running')
    await clock.advance(1)
    assert.equal(stuck.error?.name, 'HandlerTimeoutError')
    assert.equal(stuck.error?.timeout, 1_000)
    assert.equal((aborted as Error)?.name, 'HandlerTimeoutError') // the handler was told to give up
    assert.equal(actor.state, 'crashed')
  })

  it('keeps answering in other actors while one is stuck in a handler', async () => {
    const clock = new ManualClock()
    const stuck = await spawn<string, string>(() => ({ handle: () => new Promise<string>(() => {}) }), {
      clock,
      handlerTimeout: 5_000
    })
    const echo = await spawn<string, string>(() => ({ handle: m => m }), { clock })
    const pending = watch(stuck.ask('x'))
    for (let i = 0; i < 20; i++) assert.equal(await echo.ask(`m${i}`), `m${i}`)
    assert.equal(pending.settled, false)
    await clock.advance(5_000)
    assert.equal(pending.error?.name, 'HandlerTimeoutError')
    assert.equal(await echo.ask('still'), 'still')
  })

  it('refuses a message at once with MailboxFullError when full, and handles every accepted one', async () => {
    const clock = new ManualClock()
    const release = gate()
    const handled: number[] = []
    const actor = await spawn<number, number>(
      () => ({
        handle: async n => {
          if (n === 0) await release.promise
          handled.push(n)
          return n
        }
      }),
      { clock, capacity: 3 }
    )
    const first = actor.ask(0) // taken at once: being handled, not queued
    await clock.settle()
    const accepted = [1, 2, 3].map(n => actor.ask(n))
    const refused = actor.tell(4)
    await assert.rejects(refused, (err: any) => err.name === 'MailboxFullError' && err.capacity === 3)
    assert.equal(actor.queued, 3)
    release.open()
    assert.deepEqual(await Promise.all([first, ...accepted]), [0, 1, 2, 3])
    assert.deepEqual(handled, [0, 1, 2, 3])
  })

  it('lets a caller wait for room (waitForRoom), then refuses with MailboxFullError', async () => {
    const clock = new ManualClock()
    const release = gate()
    const actor = await spawn<number, number>(
      () => ({
        handle: async n => {
          if (n === 0) await release.promise
          return n
        }
      }),
      { clock, capacity: 1 }
    )
    const busy = actor.ask(0)
    await clock.settle()
    const queued = actor.ask(1)
    const waits = watch(actor.ask(2, { waitForRoom: 100 }))
    const gives = watch(actor.ask(3, { waitForRoom: 10 }))
    await clock.advance(10)
    assert.equal(gives.error?.name, 'MailboxFullError')
    assert.equal(waits.settled, false)
    release.open()
    assert.deepEqual(await Promise.all([busy, queued]), [0, 1])
    await clock.settle()
    assert.equal(waits.value, 2)
  })

  it('gives an ask AskTimeoutError at its own timeout and takes the message out if still queued', async () => {
    const clock = new ManualClock()
    const release = gate()
    const handled: number[] = []
    const actor = await spawn<number, number>(
      () => ({
        handle: async n => {
          if (n === 0) await release.promise
          handled.push(n)
          return n
        }
      }),
      { clock }
    )
    const busy = watch(actor.ask(0, { timeout: 100 }))
    await clock.settle()
    const queued = watch(actor.ask(1, { timeout: 50 }))
    const controller = new AbortController()
    const aborted = watch(actor.ask(2, { signal: controller.signal }))
    controller.abort(new Error('caller gave up'))
    await clock.advance(100)
    assert.equal(queued.error?.name, 'AskTimeoutError')
    assert.equal(busy.error?.name, 'AskTimeoutError')
    assert.equal(aborted.error?.message, 'caller gave up')
    assert.equal(actor.queued, 0)
    release.open()
    assert.equal(await actor.ask(3), 3)
    assert.deepEqual(handled, [0, 3]) // 1 and 2 were withdrawn unhandled; the actor did not crash
    assert.equal(actor.state, 'running')
  })

  it('lets a behaviour stop itself after the current message', async () => {
    const clock = new ManualClock()
    const reasons: string[] = []
    const actor = await spawn<string, string>(
      () => ({
        handle: (m, ctx) => {
          if (m === 'bye') ctx.stop()
          return m
        },
        terminate: reason => void reasons.push(String(reason))
      }),
      { clock }
    )
    assert.equal(await actor.ask('bye'), 'bye')
    const late = watch(actor.ask('late'))
    await clock.settle()
    assert.equal(actor.state, 'stopped')
    assert.deepEqual(reasons, ['normal'])
    assert.equal(late.error?.name, 'ActorStoppedError') // unsupervised: closed, answered, not lost
    assert.equal(late.error?.reason, 'normal')
  })

  it('fails to start when init throws or misses its deadline', async () => {
    const clock = new ManualClock()
    await assert.rejects(
      spawn(() => ({
        init: () => {
          throw new Error('no config')
        },
        handle: () => 0
      })),
      { message: 'no config' }
    )
    const slow = new Actor(() => ({ init: () => new Promise<void>(() => {}), handle: () => 0 }), {
      clock,
      initTimeout: 200
    })
    const started = watch(slow.start())
    await clock.advance(200)
    assert.equal(started.error?.name, 'HandlerTimeoutError')
    assert.equal(slow.state, 'crashed')
  })

  it('kills a terminate that does not return within the shutdown timeout; brutal_kill skips terminate', async () => {
    const clock = new ManualClock()
    const calls: string[] = []
    const make = (): Behaviour<string, string> => ({
      handle: m => m,
      terminate: () => {
        calls.push('terminate')
        return new Promise<void>(() => {})
      }
    })
    const actor = await spawn(make, { clock })
    actor.onExit = () => {}
    const down = watch(actor.shutdown(1_000))
    await clock.advance(999)
    assert.equal(down.settled, false)
    assert.equal(actor.state, 'stopping')
    await clock.advance(1)
    assert.equal(down.value, 'killed')
    assert.equal(actor.state, 'stopped')
    await actor.start()
    assert.equal(await actor.shutdown('brutal_kill'), 'killed')
    assert.deepEqual(calls, ['terminate']) // only the first shutdown ran terminate
  })

  it('answers a message in flight when killed with ActorStoppedError (killed)', async () => {
    const clock = new ManualClock()
    const actor = await spawn<string, string>(() => ({ handle: () => new Promise<string>(() => {}) }), { clock })
    const pending = watch(actor.ask('x'))
    await clock.settle()
    const stopping = actor.stop({ shutdown: 50 })
    await clock.advance(50)
    await stopping
    assert.equal(pending.error?.name, 'ActorStoppedError')
    assert.equal(pending.error?.reason, 'killed')
  })

  it('does not raise an unhandled rejection when a one-way tell fails and nobody awaits it', async () => {
    const clock = new ManualClock()
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const actor = await spawn<string, void>(
        () => ({
          handle: () => {
            throw new Error('fails')
          }
        }),
        { clock }
      )
      void actor.tell('x')
      await clock.settle(5)
      assert.deepEqual(unhandled, [])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })

  it('handles the messages of one sender in the order sent, each once (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 50 }),
        async (delays, capacity) => {
          const clock = new ManualClock()
          const seen: number[] = []
          const actor = await spawn<[number, number], number>(
            () => ({
              handle: async ([i, delay]) => {
                for (let k = 0; k < delay; k++) await Promise.resolve()
                seen.push(i)
                return i
              }
            }),
            { clock, capacity }
          )
          const results = delays.map((delay, i) =>
            actor.ask([i, delay]).then(
              v => ({ ok: v }),
              (e: Error) => ({ err: e.name })
            )
          )
          const outcomes = await Promise.all(results)
          const accepted = outcomes.flatMap((o, i) => ('ok' in o ? [i] : []))
          for (const o of outcomes) if ('err' in o) assert.equal(o.err, 'MailboxFullError')
          assert.deepEqual(seen, accepted)
          await actor.stop()
        }
      ),
      { numRuns: 60 }
    )
  })
})
