/**
 * attack17d: the lag tick now runs only while a probe or a suspicion is pending. A stall that
 * starts while a probe is under way (a GC pause, SIGSTOP, a busy loop) and ends well before the
 * probe's deadline must still keep this node from accusing the member it was probing: the probe's
 * own `late` check cannot see such a stall (the deadline comes on time), only the tick can.
 */
import { strict as assert } from 'node:assert'
import { waitUntil } from '../helpers/processes.ts'
import { converged, membershipOf, principalOf, startCluster } from './fixtures.ts'
import type { TestCluster } from './fixtures.ts'
import type { MembershipInit } from '../../src/membership/service.ts'

const INIT: MembershipInit = {
  probeInterval: 1500,
  probeTimeout: 300,
  stallThreshold: 300,
  quietProbeMult: 1,
  gossipInterval: 100,
  pushPullInterval: 30_000,
  checkInterval: 200
}

interface Internals {
  probe: (target: { principal: string }) => Promise<boolean>
  accuse: (record: { principal: string }) => Promise<void>
  answer: (...args: unknown[]) => Promise<Uint8Array>
  request: (...args: unknown[]) => Promise<never>
  probing: Set<string>
  lagTimer?: unknown
  lastStall: number
}

describe('attack17d: a stall during a probe, ended before its deadline', function () {
  this.timeout(90_000)
  let cluster: TestCluster

  before(async () => {
    cluster = await startCluster(2, INIT)
    await converged(cluster.nodes)
  })

  after(async () => {
    await Promise.all(cluster.nodes.map(async n => await n.stop()))
  })

  it('accuses no one in that probe (the tick saw the stall), and accuses once no stall excuses it', async () => {
    const [a, b] = cluster.nodes
    const svc = membershipOf(a) as unknown as Internals
    // b stops answering and asking (its connection stays up): every probe of it from now on fails
    // at its deadline (a member that asked lately would be spared its probe)
    const silent = membershipOf(b) as unknown as Internals
    silent.answer = async () => await new Promise<Uint8Array>(() => {})
    silent.request = async () => await new Promise<never>(() => {})
    // a probe of b already under way (its ping perhaps answered) ends first
    await waitUntil('a has no probe under way', () => svc.probing.size === 0, 10_000, 1)
    const accusations: Array<{ at: number; member: string }> = []
    const accuse = svc.accuse.bind(svc)
    svc.accuse = async record => {
      accusations.push({ at: Date.now(), member: record.principal })
      await accuse(record)
    }
    const probe = svc.probe.bind(svc)
    let stalled: { started: number; stallEnd: number; settled?: number; ok?: boolean } | undefined
    svc.probe = target => {
      const p = probe(target)
      if (stalled == null && target.principal === principalOf(b)) {
        // the probe has started (its ping is on its way); this node now does not run for 700 ms,
        // more than stallThreshold but ending well before the probe's 1.5 s deadline
        const started = Date.now()
        while (Date.now() - started < 700) {}
        const entry: { started: number; stallEnd: number; settled?: number; ok?: boolean } = {
          started,
          stallEnd: Date.now()
        }
        stalled = entry
        void p.then(
          ok => {
            entry.ok = ok
            entry.settled = Date.now()
          },
          () => {
            entry.settled = Date.now()
          }
        )
      }
      return p
    }
    try {
      await waitUntil('the stalled probe settles', () => stalled?.settled != null, 20_000, 10)
      const s = stalled!
      assert.equal(s.ok, false, 'b answered nothing')
      // it ran to its deadline after the stall, and on time: only the lag tick could tell the stall
      assert.ok(s.settled! - s.stallEnd > 300, `settled ${s.settled! - s.stallEnd} ms after the stall ended`)
      assert.ok(svc.lastStall >= s.started, 'the lag tick noted the stall')
      assert.deepEqual(
        accusations.filter(x => x.at <= s.settled!),
        [],
        'a accused b in the probe its stall falsified'
      )
      // not vacuous: with no stall to excuse it, a accuses b at a later probe
      await waitUntil('a accuses b later', () => accusations.some(x => x.member === principalOf(b)), 60_000, 50)
    } finally {
      delete (svc as Partial<Internals>).probe
      delete (svc as Partial<Internals>).accuse
    }
  })
})
