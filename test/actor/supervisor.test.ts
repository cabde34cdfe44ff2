import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { ManualClock } from '../../src/actor/clock.ts'
import { Supervisor } from '../../src/actor/supervisor.ts'
import type { Behaviour } from '../../src/actor/actor.ts'
import type { ChildSpec, SupervisionEvent, SupervisorOptions } from '../../src/actor/supervisor.ts'

type Msg = 'ping' | 'crash' | 'reject' | 'hang' | 'exit'

/** A worker that logs its starts and stops, and crashes, hangs or exits when told. */
function recorder(name: string, log: string[]): Behaviour<Msg, string> {
  return {
    init: ctx => void log.push(`start ${name}#${ctx.incarnation}`),
    handle: async (m, ctx) => {
      if (m === 'crash') throw new RangeError(`${name} crashed`)
      if (m === 'reject') return await Promise.reject(new TypeError(`${name} rejected`))
      if (m === 'hang') return await new Promise<string>(() => {})
      if (m === 'exit') ctx.stop()
      return `${name}#${ctx.incarnation}`
    },
    terminate: reason => void log.push(`stop ${name} ${typeof reason === 'string' ? reason : reason.name}`)
  }
}

const worker = (id: string, log: string[], extra: Partial<ChildSpec> = {}): ChildSpec =>
  ({ id, behaviour: () => recorder(id, log), ...extra }) as ChildSpec

function tree(options: SupervisorOptions): { sup: Supervisor; events: SupervisionEvent[]; clock: ManualClock } {
  const clock = (options.clock as ManualClock | undefined) ?? new ManualClock()
  const sup = new Supervisor({ ...options, clock })
  const events: SupervisionEvent[] = []
  sup.on(e => events.push(e))
  return { sup, events, clock }
}

/** Events as short strings: 'crashed b', 'restarted b 1 0', 'escalated inner'. */
const brief = (events: SupervisionEvent[]): string[] =>
  events.map(e => {
    const who = e.path.slice(1).join('/') || e.path[0]
    if (e.type === 'restarted') return `restarted ${who} ${e.attempt} ${e.delay}`
    return `${e.type} ${who}`
  })

async function crash(sup: Supervisor, id: string, clock: ManualClock, how: Msg = 'crash'): Promise<void> {
  const ref = sup.ref<Msg, string>(id)
  assert.ok(ref, `no child ${id}`)
  await assert.rejects(ref.ask(how))
  await clock.settle()
}

describe('Supervisor', () => {
  describe('strategies', () => {
    it('one_for_one restarts only the child that crashed', async () => {
      const log: string[] = []
      const { sup, events, clock } = tree({
        strategy: 'one_for_one',
        children: ['a', 'b', 'c'].map(id => worker(id, log))
      })
      await sup.start()
      assert.deepEqual(log, ['start a#1', 'start b#1', 'start c#1'])
      log.length = 0
      await crash(sup, 'b', clock)
      assert.deepEqual(log, ['stop b RangeError', 'start b#2'])
      assert.deepEqual(brief(events).slice(3), ['crashed b', 'restarted b 1 0'])
      assert.equal(await sup.ref('a')?.ask('ping'), 'a#1')
      assert.equal(await sup.ref('b')?.ask('ping'), 'b#2')
      assert.equal(await sup.ref('c')?.ask('ping'), 'c#1')
    })

    it('one_for_all stops the others in reverse order, then restarts all in start order', async () => {
      const log: string[] = []
      const { sup, events, clock } = tree({
        strategy: 'one_for_all',
        children: ['a', 'b', 'c'].map(id => worker(id, log))
      })
      await sup.start()
      log.length = 0
      await crash(sup, 'b', clock)
      assert.deepEqual(log, [
        'stop b RangeError',
        'stop c shutdown',
        'stop a shutdown',
        'start a#2',
        'start b#2',
        'start c#2'
      ])
      assert.deepEqual(brief(events).slice(3), [
        'crashed b',
        'stopped c',
        'stopped a',
        'restarted a 1 0',
        'restarted b 1 0',
        'restarted c 1 0'
      ])
    })

    it('rest_for_one restarts the crashed child and those started after it', async () => {
      const log: string[] = []
      const { sup, clock } = tree({
        strategy: 'rest_for_one',
        children: ['a', 'b', 'c', 'd'].map(id => worker(id, log))
      })
      await sup.start()
      log.length = 0
      await crash(sup, 'b', clock)
      assert.deepEqual(log, [
        'stop b RangeError',
        'stop d shutdown',
        'stop c shutdown',
        'start b#2',
        'start c#2',
        'start d#2'
      ])
      assert.equal(await sup.ref('a')?.ask('ping'), 'a#1')
    })

    it('simple_one_for_one runs a pool from one spec, restarting a crashed worker alone with its args', async () => {
      const log: string[] = []
      const { sup, clock } = tree({
        strategy: 'simple_one_for_one',
        template: { id: 'conn', behaviour: (peer: string) => recorder(`conn:${peer}`, log) }
      })
      await sup.start()
      const ids = []
      for (const peer of ['p1', 'p2', 'p3']) ids.push((await sup.startChild(peer)).id)
      assert.deepEqual(ids, ['conn-1', 'conn-2', 'conn-3'])
      log.length = 0
      await crash(sup, 'conn-2', clock)
      assert.deepEqual(log, ['stop conn:p2 RangeError', 'start conn:p2#2'])
      assert.equal(await sup.ref('conn-1')?.ask('ping'), 'conn:p1#1')
      assert.equal(await sup.ref('conn-2')?.ask('ping'), 'conn:p2#2')
      log.length = 0
      await sup.stop()
      assert.deepEqual(log.sort(), ['stop conn:p1 shutdown', 'stop conn:p2 shutdown', 'stop conn:p3 shutdown'])
      assert.deepEqual(sup.children(), [])
    })

    it('starts children in order and stops them in reverse', async () => {
      const log: string[] = []
      const { sup } = tree({ strategy: 'one_for_one', children: ['a', 'b', 'c'].map(id => worker(id, log)) })
      await sup.start()
      await sup.startChild(worker('d', log))
      await sup.stop()
      assert.deepEqual(log, [
        'start a#1',
        'start b#1',
        'start c#1',
        'start d#1',
        'stop d shutdown',
        'stop c shutdown',
        'stop b shutdown',
        'stop a shutdown'
      ])
      assert.equal(sup.state, 'stopped')
    })

    it('shuts down what it started when a static child fails to start (ChildStartError)', async () => {
      const log: string[] = []
      const failing: ChildSpec = {
        id: 'bad',
        behaviour: () => ({
          init: () => {
            throw new Error('no')
          },
          handle: () => 0
        })
      }
      const { sup } = tree({ children: [worker('a', log), failing, worker('c', log)] })
      await assert.rejects(sup.start(), (err: any) => err.name === 'ChildStartError' && err.child === 'bad')
      assert.deepEqual(log, ['start a#1', 'stop a shutdown'])
      assert.equal(sup.state, 'stopped')
    })
  })

  describe('restart types', () => {
    it('permanent is restarted after a normal exit as after a crash', async () => {
      const log: string[] = []
      const { sup, events, clock } = tree({ intensity: 5, children: [worker('p', log, { restart: 'permanent' })] })
      await sup.start()
      await sup.ref('p')?.ask('exit')
      await clock.settle()
      assert.equal(await sup.ref('p')?.ask('ping'), 'p#2')
      await crash(sup, 'p', clock)
      assert.equal(await sup.ref('p')?.ask('ping'), 'p#3')
      // attempts count consecutive restarts: the child never ran a whole period in between
      assert.deepEqual(brief(events), ['started p', 'stopped p', 'restarted p 1 0', 'crashed p', 'restarted p 2 0'])
    })

    it('transient is restarted only after an abnormal exit; after a normal one it is gone and its mail answered', async () => {
      const log: string[] = []
      const { sup, clock } = tree({ intensity: 5, children: [worker('t', log, { restart: 'transient' })] })
      await sup.start()
      const ref = sup.ref<Msg, string>('t')
      assert.ok(ref)
      await crash(sup, 't', clock, 'reject')
      assert.equal(await ref.ask('ping'), 't#2')
      const exiting = ref.ask('exit')
      const queued = ref.ask('ping')
      assert.equal(await exiting, 't#2')
      await assert.rejects(queued, (err: any) => err.name === 'ActorStoppedError' && err.reason === 'normal')
      await clock.settle()
      assert.equal(sup.ref('t'), undefined)
      assert.deepEqual(log, ['start t#1', 'stop t TypeError', 'start t#2', 'stop t normal'])
    })

    it('temporary is never restarted, not even when a sibling takes it down under one_for_all', async () => {
      const log: string[] = []
      const { sup, clock } = tree({
        strategy: 'one_for_all',
        intensity: 5,
        children: [
          worker('tmp', log, { restart: 'temporary' }),
          worker('perm', log),
          worker('tmp2', log, { restart: 'temporary' })
        ]
      })
      await sup.start()
      await crash(sup, 'tmp2', clock)
      assert.deepEqual(
        sup.children().map(c => c.id),
        ['tmp', 'perm']
      )
      await crash(sup, 'perm', clock)
      assert.deepEqual(
        sup.children().map(c => c.id),
        ['perm']
      )
      assert.equal(await sup.ref('perm')?.ask('ping'), 'perm#2')
      assert.equal(log.filter(l => l.startsWith('start tmp')).length, 2) // each started once
    })
  })

  describe('intensity and escalation', () => {
    it('escalates when restarts exceed the intensity within the period; the parent applies its strategy', async () => {
      const log: string[] = []
      const clock = new ManualClock()
      const { sup: root, events } = tree({
        name: 'root',
        strategy: 'one_for_all',
        intensity: 3,
        clock,
        children: [
          {
            id: 'inner',
            type: 'supervisor',
            supervisor: () => ({
              strategy: 'one_for_one',
              intensity: 1,
              period: 5_000,
              children: [worker('w1', log), worker('w2', log)]
            })
          },
          worker('sibling', log)
        ]
      })
      await root.start()
      const inner = root.child('inner')
      assert.ok(inner)
      log.length = 0
      await crash(inner, 'w1', clock) // 1 restart in 5 s: allowed
      await clock.advance(4_999)
      await crash(inner, 'w1', clock) // 2 within 5 s: inner gives up
      await clock.settle()
      assert.equal(inner.state, 'crashed')
      assert.equal(inner.escalation?.name, 'RestartIntensityError')
      // inner stopped w2 then (already dead) w1; root (one_for_all) stops sibling and restarts both anew
      assert.deepEqual(log, [
        'stop w1 RangeError',
        'start w1#2',
        'stop w1 RangeError',
        'stop w2 shutdown',
        'stop sibling shutdown',
        'start w1#1',
        'start w2#1',
        'start sibling#2'
      ])
      assert.deepEqual(brief(events).slice(-9), [
        'crashed inner/w1',
        'stopped inner/w2',
        'escalated inner',
        'crashed inner',
        'stopped sibling',
        'started inner/w1',
        'started inner/w2',
        'restarted inner 1 0',
        'restarted sibling 1 0'
      ])
      const fresh = root.child('inner')
      assert.notEqual(fresh, inner)
      assert.equal(await fresh?.ref('w1')?.ask('ping'), 'w1#1')
    })

    it('does not escalate when the crashes are further apart than the period', async () => {
      const log: string[] = []
      const { sup, events, clock } = tree({ intensity: 1, period: 5_000, children: [worker('w', log)] })
      await sup.start()
      for (let i = 0; i < 5; i++) {
        await crash(sup, 'w', clock)
        await clock.advance(5_000)
      }
      assert.equal(sup.state, 'running')
      assert.equal(await sup.ref('w')?.ask('ping'), 'w#6')
      assert.equal(brief(events).filter(e => e.startsWith('escalated')).length, 0)
    })

    it('a root that escalates stops its children, answers their queued mail and refuses new children', async () => {
      const log: string[] = []
      const { sup, events, clock } = tree({
        name: 'root',
        intensity: 0,
        children: [worker('a', log), worker('b', log)]
      })
      await sup.start()
      const b = sup.ref<Msg, string>('b')
      assert.ok(b)
      await crash(sup, 'a', clock)
      assert.equal(sup.state, 'crashed')
      assert.deepEqual(brief(events).slice(-3), ['crashed a', 'stopped b', 'escalated root'])
      await assert.rejects(b.ask('ping'), { name: 'ActorStoppedError' })
      await assert.rejects(sup.startChild(worker('c', log)), { name: 'SupervisorStoppedError' })
    })

    it('never lets a crash sequence exceed the intensity without escalating (property)', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 0, max: 4 }),
          fc.integer({ min: 1, max: 2_000 }),
          fc.array(fc.integer({ min: 0, max: 1_500 }), { minLength: 1, maxLength: 12 }),
          async (intensity, period, gaps) => {
            const log: string[] = []
            const { sup, events, clock } = tree({ intensity, period, children: [worker('w', log)] })
            await sup.start()
            // the model: restart times within the period, counted as OTP does
            const times: number[] = []
            let expected: number | undefined
            for (let i = 0; i < gaps.length; i++) {
              await clock.advance(gaps[i])
              const now = clock.now()
              const recent = times.filter(t => now - t < period)
              recent.push(now)
              times.splice(0, times.length, ...recent)
              await crash(sup, 'w', clock)
              if (recent.length > intensity) {
                expected = i
                break
              }
              assert.equal(sup.state, 'running')
            }
            const escalations = events.filter(e => e.type === 'escalated').length
            const restarts = events.filter(e => e.type === 'restarted').length
            if (expected === undefined) {
              assert.equal(escalations, 0)
              assert.equal(restarts, gaps.length)
            } else {
              assert.equal(sup.state, 'crashed')
              assert.equal(escalations, 1)
              assert.equal(restarts, expected)
            }
            await sup.stop()
          }
        ),
        { numRuns: 80 }
      )
    })
  })

  describe('shutdown', () => {
    /** A worker whose terminate waits for the test (or forever). */
    const slowStop = (id: string, log: string[], release?: Promise<void>): Behaviour<Msg, string> => ({
      handle: () => id,
      terminate: async () => {
        log.push(`terminating ${id}`)
        await (release ?? new Promise<void>(() => {}))
        log.push(`terminated ${id}`)
      }
    })

    it('kills a child whose terminate does not return within its shutdown timeout', async () => {
      const log: string[] = []
      const { sup, events, clock } = tree({
        children: [{ id: 'slow', shutdown: 2_000, behaviour: () => slowStop('slow', log) }]
      })
      await sup.start()
      const start = clock.now()
      let stopped = false
      const stopping = sup.stop().then(() => (stopped = true))
      await clock.advance(1_999)
      assert.equal(stopped, false)
      await clock.advance(1)
      await stopping
      assert.equal(clock.now() - start, 2_000)
      assert.deepEqual(log, ['terminating slow'])
      assert.deepEqual(brief(events).at(-1), 'stopped slow')
      assert.equal((events.at(-1) as any).reason, 'killed')
    })

    it('brutal_kill stops a child without calling terminate', async () => {
      const log: string[] = []
      const { sup } = tree({ children: [worker('gentle', log), worker('brutal', log, { shutdown: 'brutal_kill' })] })
      await sup.start()
      await sup.stop()
      assert.deepEqual(log, ['start gentle#1', 'start brutal#1', 'stop gentle shutdown'])
    })

    it("'infinity' waits for terminate however long it takes", async () => {
      const log: string[] = []
      let release!: () => void
      const released = new Promise<void>(resolve => (release = resolve))
      const { sup, clock } = tree({
        children: [{ id: 'patient', shutdown: 'infinity', behaviour: () => slowStop('patient', log, released) }]
      })
      await sup.start()
      let stopped = false
      const stopping = sup.stop().then(() => (stopped = true))
      await clock.advance(3_600_000)
      assert.equal(stopped, false)
      release()
      await stopping
      assert.deepEqual(log, ['terminating patient', 'terminated patient'])
    })

    it('a nested supervisor with a shutdown timeout has its slow children killed at it', async () => {
      const log: string[] = []
      const { sup, clock } = tree({
        children: [
          {
            id: 'inner',
            type: 'supervisor',
            shutdown: 1_000,
            supervisor: () => ({
              children: [{ id: 'slow', shutdown: 'infinity', behaviour: () => slowStop('slow', log) }]
            })
          }
        ]
      })
      await sup.start()
      const inner = sup.child('inner')
      const stopping = sup.stop()
      await clock.advance(1_000)
      await stopping
      assert.equal(inner?.state, 'stopped')
      assert.deepEqual(log, ['terminating slow'])
    })
  })

  describe('backoff', () => {
    it('doubles the delay per consecutive restart up to max, with jitter, and resets after a stable run', async () => {
      const log: string[] = []
      const { sup, events, clock } = tree({
        intensity: 100,
        period: 1_000,
        clock: new ManualClock({ random: () => 0.5 }),
        children: [worker('w', log, { backoff: { min: 100, max: 1_000, randomFactor: 0.5, resetAfter: 3_000 } })]
      })
      await sup.start()
      const delays: number[] = []
      const waited: number[] = []
      for (let i = 0; i < 6; i++) {
        await crash(sup, 'w', clock)
        const crashedAt = clock.now()
        const before = events.length
        while (events.length === before) await clock.advance(1)
        const last = events.at(-1)
        assert.equal(last?.type, 'restarted')
        delays.push((last as any).delay)
        waited.push(clock.now() - crashedAt)
      }
      // min · 2^(n−1) capped at max, times 1 + 0.5 · 0.5
      assert.deepEqual(delays, [125, 250, 500, 1_000, 1_250, 1_250])
      assert.deepEqual(waited, delays)
      assert.deepEqual(
        events.filter(e => e.type === 'restarted').map(e => (e as any).attempt),
        [1, 2, 3, 4, 5, 6]
      )
      // messages sent while it waits are handled once it runs again
      await crash(sup, 'w', clock)
      const queued = sup.ref('w')?.ask('ping')
      await clock.advance(1_250)
      assert.equal(await queued, 'w#8')
      // a run of resetAfter ms without a crash starts the delays over
      await clock.advance(3_000)
      await crash(sup, 'w', clock)
      await clock.advance(125)
      assert.deepEqual(brief(events).at(-1), 'restarted w 1 125')
    })
  })

  describe('misbehaving handlers', () => {
    it('restarts a child whose handler throws, rejects or never answers; callers get named errors; others keep answering', async () => {
      const log: string[] = []
      const { sup, events, clock } = tree({
        intensity: 10,
        children: [worker('bad', log, { actor: { handlerTimeout: 10_000 } }), worker('good', log)]
      })
      await sup.start()
      const bad = sup.ref<Msg, string>('bad')
      const good = sup.ref<Msg, string>('good')
      assert.ok(bad && good)
      await assert.rejects(bad.ask('crash'), { name: 'RangeError' })
      await assert.rejects(bad.ask('reject'), { name: 'TypeError' })
      let hangError: any
      const hanging = bad.ask('hang').catch(error => (hangError = error))
      for (let i = 0; i < 5; i++) assert.equal(await good.ask('ping'), 'good#1') // while bad is stuck
      await clock.advance(10_000)
      await hanging
      assert.equal(hangError?.name, 'HandlerTimeoutError')
      await clock.settle()
      assert.equal(await bad.ask('ping'), 'bad#4')
      assert.deepEqual(
        brief(events).filter(e => e.includes('bad')),
        [
          'started bad',
          'crashed bad',
          'restarted bad 1 0',
          'crashed bad',
          'restarted bad 2 0',
          'crashed bad',
          'restarted bad 1 0'
        ]
      )
    })
  })

  describe('while starting and stopping', () => {
    it('handles a child that crashes while later siblings still start', async () => {
      const log: string[] = []
      let release!: () => void
      const released = new Promise<void>(resolve => (release = resolve))
      const slowInit: ChildSpec = {
        id: 'slow',
        behaviour: () => ({ init: async () => await released, handle: () => 'slow' })
      }
      const { sup, events, clock } = tree({ children: [worker('early', log), slowInit] })
      const starting = sup.start()
      await clock.settle()
      await assert.rejects(sup.ref<Msg, string>('early')!.ask('crash'), { name: 'RangeError' })
      await clock.settle()
      assert.equal(sup.state, 'starting')
      release()
      await starting
      await clock.settle()
      assert.equal(await sup.ref('early')?.ask('ping'), 'early#2')
      assert.deepEqual(brief(events), ['started early', 'started slow', 'crashed early', 'restarted early 1 0'])
    })

    it('cancels a restart waiting on its backoff when stopped, and answers the mail queued meanwhile', async () => {
      const log: string[] = []
      const { sup, events, clock } = tree({ children: [worker('w', log, { backoff: { min: 1_000, max: 1_000 } })] })
      await sup.start()
      const ref = sup.ref<Msg, string>('w')
      assert.ok(ref)
      await crash(sup, 'w', clock)
      const queued = ref.ask('ping')
      await sup.stop()
      await assert.rejects(queued, { name: 'ActorStoppedError' })
      await clock.advance(5_000)
      assert.deepEqual(log, ['start w#1', 'stop w RangeError'])
      assert.equal(events.filter(e => e.type === 'restarted').length, 0)
      assert.equal(clock.pending, 0)
    })

    it('terminateChild stops one child for good and leaves the others running', async () => {
      const log: string[] = []
      const { sup, events } = tree({ children: [worker('a', log), worker('b', log)] })
      await sup.start()
      const a = sup.ref<Msg, string>('a')
      await sup.terminateChild('a')
      await assert.rejects(a!.ask('ping'), { name: 'ActorStoppedError' })
      await assert.rejects(sup.terminateChild('a'), { name: 'ChildIdError' })
      assert.equal(await sup.ref('b')?.ask('ping'), 'b#1')
      assert.deepEqual(brief(events), ['started a', 'started b', 'stopped a'])
      await assert.rejects(sup.startChild(worker('b', log)), { name: 'ChildIdError' })
    })
  })

  it('answers every accepted message once, in order, across random crashes and backoff restarts (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.boolean(), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 1, max: 40 }),
        async (crashes, capacity) => {
          const handled: number[] = []
          const { sup, clock } = tree({
            intensity: 1_000,
            children: [
              {
                id: 'w',
                backoff: { min: 10, max: 80 },
                actor: { capacity },
                behaviour: () => ({
                  handle: ([i, fail]: [number, boolean]) => {
                    handled.push(i)
                    if (fail) throw new RangeError(`crash at ${i}`)
                    return i
                  }
                })
              }
            ]
          })
          await sup.start()
          const ref = sup.ref<[number, boolean], number>('w')
          assert.ok(ref)
          const outcomes = crashes.map((fail, i) =>
            ref.ask([i, fail]).then(
              value => `ok ${value}`,
              (error: Error) => error.name
            )
          )
          let all: string[] = []
          const settled = Promise.all(outcomes).then(o => (all = o))
          for (let step = 0; step < 200 && all.length === 0; step++) await clock.advance(100)
          await settled
          const accepted = all.flatMap((o, i) => (o === 'MailboxFullError' ? [] : [i]))
          assert.deepEqual(handled, accepted) // each accepted message handled once, in order
          all.forEach((o, i) => {
            if (o !== 'MailboxFullError') assert.equal(o, crashes[i] ? 'RangeError' : `ok ${i}`)
          })
          await sup.stop()
        }
      ),
      { numRuns: 50 }
    )
  })

  it('refuses bad options with named errors', () => {
    assert.throws(() => new Supervisor({ strategy: 'one_for_some' as any }), { name: 'InvalidActorOptionError' })
    assert.throws(() => new Supervisor({ intensity: -1 }), { name: 'InvalidActorOptionError' })
    assert.throws(() => new Supervisor({ period: 0 }), { name: 'InvalidActorOptionError' })
    assert.throws(() => new Supervisor({ strategy: 'simple_one_for_one' }), { name: 'InvalidActorOptionError' })
    const log: string[] = []
    assert.throws(() => new Supervisor({ children: [worker('a', log), worker('a', log)] }), { name: 'ChildIdError' })
    assert.throws(() => new Supervisor({ children: [worker('a b', log)] }), { name: 'InvalidActorOptionError' })
    assert.throws(() => new Supervisor({ children: [worker('a', log, { shutdown: -5 })] }), {
      name: 'InvalidActorOptionError'
    })
    assert.throws(() => new Supervisor({ children: [worker('a', log, { backoff: { min: 10, max: 5 } })] }), {
      name: 'InvalidActorOptionError'
    })
  })
})
