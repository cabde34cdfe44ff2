import { strict as assert } from 'node:assert'
import { nodeWorkerHost } from '../../node/worker-host.ts'
import { spawn } from '../../src/actor/actor.ts'
import { Supervisor } from '../../src/actor/supervisor.ts'
import { workerBehaviour } from '../../src/actor/worker.ts'
import type { WorkerHost } from '../../src/actor/worker.ts'

const FIXTURE = new URL('./fixtures/busy-worker.ts', import.meta.url)

/** A host that counts the workers it starts and terminates. */
function counting(host: WorkerHost): WorkerHost & { spawned: number; terminated: number } {
  const counts = { spawned: 0, terminated: 0 }
  return Object.assign(counts, {
    spawn(options: { moduleUrl: string; name: string }) {
      counts.spawned++
      const handle = host.spawn(options)
      return {
        ...handle,
        terminate: async () => {
          counts.terminated++
          await handle.terminate()
        }
      }
    }
  })
}

// these tests start real worker threads and wait on the wall clock (the deadline of a busy loop)
describe('workerBehaviour on worker_threads', function () {
  this.timeout(60_000)

  it('runs a busy loop off the main thread: other actors answer meanwhile, the deadline terminates the worker, the restart gets a fresh one', async () => {
    const host = counting(nodeWorkerHost())
    const sup = new Supervisor({
      intensity: 5,
      children: [
        {
          id: 'cpu',
          behaviour: () => workerBehaviour(host, FIXTURE, { args: { tag: 'a' } }),
          actor: { handlerTimeout: 2_000 }
        },
        { id: 'echo', behaviour: () => ({ handle: (m: unknown) => m }) }
      ]
    })
    await sup.start()
    const cpu = sup.ref('cpu')
    const echo = sup.ref('echo')
    assert.ok(cpu && echo)
    const firstThread = await cpu.ask('thread')
    assert.deepEqual(await cpu.ask({ echo: [1, 'two'] }), { tag: 'a', echo: [1, 'two'] })
    const order: string[] = []
    const spinning = cpu.ask({ spin: 'forever' }).catch((error: Error) => {
      order.push('cpu timed out')
      return error
    })
    for (let i = 0; i < 5; i++) {
      assert.equal(await echo.ask(i), i)
      await new Promise(resolve => setTimeout(resolve, 1)) // timers fire too: the event loop is free
      order.push(`echo ${i}`)
    }
    const error = (await spinning) as Error
    assert.equal(error.name, 'HandlerTimeoutError')
    assert.deepEqual(order, ['echo 0', 'echo 1', 'echo 2', 'echo 3', 'echo 4', 'cpu timed out'])
    assert.equal(host.terminated, 1) // the spinning worker was terminated
    const secondThread = await cpu.ask('thread') // handled by the restarted actor's new worker
    assert.notEqual(secondThread, firstThread)
    assert.equal(host.spawned, 2)
    await sup.stop()
    assert.equal(host.terminated, 2)
  })

  it("carries a handler's error name back and crashes the actor; a worker that exits is a WorkerCrashedError", async () => {
    const host = counting(nodeWorkerHost())
    const sup = new Supervisor({
      intensity: 5,
      children: [{ id: 'w', behaviour: () => workerBehaviour(host, FIXTURE, { args: { tag: 'b' } }) }]
    })
    const events: string[] = []
    sup.on(e => events.push(e.type))
    await sup.start()
    const w = sup.ref('w')
    assert.ok(w)
    await assert.rejects(w.ask({ fail: 'out of range' }), { name: 'RangeError', message: 'out of range' })
    await assert.rejects(w.ask({ exit: 3 }), { name: 'WorkerCrashedError' })
    assert.deepEqual(await w.ask({ echo: 'back' }), { tag: 'b', echo: 'back' })
    assert.deepEqual(events, ['started', 'crashed', 'restarted', 'crashed', 'restarted'])
    assert.equal(host.spawned, 3)
    await sup.stop()
  })

  it('bounds what crosses the boundary: a large message or answer is a MessageTooLargeError', async () => {
    const host = nodeWorkerHost()
    const actor = await spawn(() => workerBehaviour(host, FIXTURE, { args: { tag: 'c' }, maxMessageBytes: 64 * 1024 }))
    const ended: Array<() => void> = []
    actor.onExit = () => ended.shift()?.() // keep the mailbox across the crashes
    const crash = (): Promise<void> => new Promise(resolve => ended.push(resolve))
    let crashed = crash()
    await assert.rejects(actor.ask({ echo: new Uint8Array(65 * 1024) }), { name: 'MessageTooLargeError' })
    await crashed
    await actor.start()
    crashed = crash()
    await assert.rejects(actor.ask({ big: 65 * 1024 }), { name: 'MessageTooLargeError' })
    await crashed
    await actor.start()
    assert.equal(((await actor.ask({ big: 1024 })) as Uint8Array).length, 1024)
    actor.onExit = undefined
    await actor.stop()
  })

  it('fails to start when the module exports no behaviour', async () => {
    const host = nodeWorkerHost()
    const notABehaviour = new URL('./fixtures/no-behaviour.ts', import.meta.url)
    await assert.rejects(
      spawn(() => workerBehaviour(host, notABehaviour)),
      { name: 'InvalidActorOptionError' }
    )
  })
})
