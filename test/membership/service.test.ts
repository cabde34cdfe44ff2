import { strict as assert } from 'node:assert'
import { waitUntil } from '../helpers/processes.ts'
import { admit, converged, membershipOf, principalOf, Recorder, sees, startCluster, startNodes } from './fixtures.ts'
import type { TestCluster } from './fixtures.ts'
import { key, tag } from '../spki/fixtures.ts'
import type { Startable } from '@libp2p/interface'

/** Five in-process members on the memory transport, probing each other over /cyberspace/swim/1.0.0. */
describe('membership: SWIM with Lifeguard among in-process members', function () {
  this.timeout(120_000)
  let cluster: TestCluster

  before(async () => {
    cluster = await startCluster(5)
  })
  after(async () => {
    await Promise.all(cluster.nodes.map(async n => await n.stop()))
  })

  it('five members converge to a view where all five are alive, self included', async () => {
    await converged(cluster.nodes)
    for (const node of cluster.nodes) {
      const view = membershipOf(node).members()
      assert.equal(view.length, 5)
      assert.deepEqual(
        view.map(m => m.principal),
        [...view.map(m => m.principal)].sort()
      )
      assert.equal(view.filter(m => m.self).length, 1)
      assert.equal(view.find(m => m.self)?.principal, principalOf(node))
      assert.ok(membershipOf(node).isMember())
      for (const m of view) assert.ok(m.addrs.length > 0, 'every member announced its addresses')
    }
  })

  it('a member that stops answering is suspected, then marked dead by every other; no live member is ever marked dead, and a live member suspected under load refutes it', async () => {
    const [a, b, c, d, victim] = cluster.nodes
    const live = [a, b, c, d]
    const recorder = new Recorder(live)
    try {
      // the victim's membership service stops: its connections stay up, it answers nothing
      await (membershipOf(victim) as unknown as Startable).stop()
      await waitUntil('every other member marks it dead', () => live.every(o => sees(o, [victim], 'dead')), 30_000, 50)
    } finally {
      recorder.stop()
    }
    assert.ok(
      recorder.showed(principalOf(victim), 'suspect').length > 0,
      'it was suspected before it was declared dead'
    )
    for (const n of live) assert.deepEqual(recorder.showed(principalOf(n), 'dead'), [], 'a live member was marked dead')
    // a live member may be suspected when a loaded machine delays its answers (SWIM allows it;
    // Lifeguard makes it rarer): what must hold is that it refuted the suspicion and stays alive
    const suspectedLive = live.filter(n => recorder.showed(principalOf(n), 'suspect').length > 0)
    if (suspectedLive.length > 0)
      await waitUntil(
        'every suspected live member refutes it',
        () => live.every(o => sees(o, live, 'alive')),
        30_000,
        50
      )
    for (const n of live) assert.ok(sees(n, live, 'alive'), 'every live member sees every live member alive')
  })

  it('a graceful leave is seen as left, never dead; a restart rejoins above the left incarnation', async () => {
    const [a, b, c, d] = cluster.nodes
    const others = [a, b, d]
    const recorder = new Recorder(others)
    const leaver = membershipOf(c)
    try {
      await leaver.leave()
      assert.equal(leaver.member(principalOf(c))?.state, 'left')
      await waitUntil('every other member sees it left', () => others.every(o => sees(o, [c], 'left')), 20_000, 50)
      const leftAt = membershipOf(a).member(principalOf(c))!.incarnation
      // it stays left for longer than a suspicion could last
      await new Promise(resolve => setTimeout(resolve, 2000))
      assert.ok(others.every(o => sees(o, [c], 'left')))
      await (leaver as unknown as Startable).stop()
      await (leaver as unknown as Startable).start()
      await waitUntil(
        'every other member sees it alive again',
        () => others.every(o => sees(o, [c], 'alive')),
        20_000,
        50
      )
      for (const o of others) assert.ok(membershipOf(o).member(principalOf(c))!.incarnation > leftAt)
    } finally {
      recorder.stop()
    }
    assert.deepEqual(recorder.showed(principalOf(c), 'dead'), [], 'a member that left was marked dead')
  })

  it('a node that joins late learns the whole view, history included, in one sync', async () => {
    const [a, , c, d, victim] = cluster.nodes
    const [late] = await startNodes(1, undefined, a)
    cluster.nodes.push(late)
    await admit(late, cluster.root)
    // the dead member is gossiped about no more: only a full state exchange tells of it
    await waitUntil(
      'the newcomer lists the dead member and every live one',
      () => sees(late, [victim], 'dead') && sees(late, [a, c, d, late], 'alive'),
      20_000,
      50
    )
    await waitUntil(
      'every member lists the newcomer alive',
      () => [a, c, d].every(o => sees(o, [late], 'alive')),
      20_000,
      50
    )
    assert.equal(membershipOf(late).members().length, 6)
  })

  it('publishes metadata as a signed alive at a higher incarnation; bad metadata is refused by name', async () => {
    const [a, b] = cluster.nodes
    const before = membershipOf(b).member(principalOf(a))!.incarnation
    await membershipOf(a).setMeta({ role: 'builder', load: '0.5' })
    await waitUntil(
      'b sees the new metadata',
      () => membershipOf(b).member(principalOf(a))?.meta.role === 'builder',
      10_000,
      50
    )
    const seen = membershipOf(b).member(principalOf(a))!
    assert.deepEqual(seen.meta, { load: '0.5', role: 'builder' })
    assert.ok(seen.incarnation > before)
    await assert.rejects(membershipOf(a).setMeta({ 'Bad Key': 'x' }), { name: 'InvalidMetaError' })
    await assert.rejects(membershipOf(a).setMeta({ big: 'x'.repeat(2000) }), { name: 'InvalidMetaError' })
    await assert.rejects(
      membershipOf(a).setMeta(Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, '1']))),
      { name: 'InvalidMetaError' }
    )
  })

  it('concurrent updateMeta calls each change only their keys, and none is lost', async () => {
    const [a, b] = cluster.nodes
    await Promise.all([
      membershipOf(a).updateMeta({ kinds: 'echo' }),
      membershipOf(a).updateMeta({ fleet: 'n=1' }),
      membershipOf(a).updateMeta({ load: undefined })
    ])
    assert.deepEqual(membershipOf(a).ownMeta(), { fleet: 'n=1', kinds: 'echo', role: 'builder' })
    await waitUntil(
      'b sees both keys',
      () => {
        const meta = membershipOf(b).member(principalOf(a))?.meta
        return meta?.kinds === 'echo' && meta?.fleet === 'n=1' && meta.load == null
      },
      10_000,
      50
    )
  })

  it('checks when the SPKI epoch moves, at most once per checkInterval however often it moves', async () => {
    const [a] = cluster.nodes
    const svc = membershipOf(a) as unknown as { runRecheck: (o: unknown) => Promise<void>; checkTimer?: unknown }
    const run = svc.runRecheck.bind(svc)
    const pending = (): unknown => svc.checkTimer
    let checks = 0
    svc.runRecheck = async o => {
      checks++
      await run(o)
    }
    try {
      await waitUntil('no check pending', () => pending() == null, 5_000, 10)
      await new Promise(resolve => setTimeout(resolve, 300))
      assert.equal(checks, 0, 'an idle member does not check')
      assert.equal(pending(), undefined, 'an idle member arms no check (it used to poll every checkInterval)')
      // 40 epoch changes, each in a task of its own, within well under the fixtures' 200 ms interval
      const started = Date.now()
      for (let i = 0; i < 40; i++) await a.spki.addAclEntry((await key()).id, tag('(cyberspace other)'))
      const burst = Date.now() - started
      await waitUntil('a check after the burst', () => checks >= 1, 5_000, 10)
      await new Promise(resolve => setTimeout(resolve, 500))
      // one at once, then at most one per 200 ms while changes kept coming, and one for the last
      assert.ok(checks <= 2 + Math.ceil(burst / 200), `${checks} checks for a ${burst} ms burst`)
      await waitUntil('no check pending again', () => pending() == null, 5_000, 10)
    } finally {
      delete (svc as { runRecheck?: unknown }).runRecheck
    }
  })

  it('notices an event-loop stall while idle (its next probe comes due late), and ticks every 100 ms only while a probe is pending', async () => {
    const [a] = cluster.nodes
    const svc = membershipOf(a) as unknown as {
      lagTimer?: unknown
      lastStall: number
      probing: Set<string>
      watchStalls: () => void
      awareness: { score: number }
    }
    // once every probe of a round answered and nothing is pending, no lag tick runs; probes come
    // every 200 ms here, so it is caught resting between two of them
    // (with local health at its best, probes come at most 4 × 200 ms apart: one falls due in the stall)
    await waitUntil(
      'the lag tick rests',
      () => svc.lagTimer == null && svc.probing.size === 0 && svc.awareness.score === 0,
      10_000,
      1
    )
    const before = svc.lastStall
    const start = Date.now()
    // a 2 s stall: the probe timer due meanwhile fires more than stallThreshold (500 ms) late
    while (Date.now() - start < 2_000) {}
    await waitUntil('the stall is noticed', () => svc.lastStall > before && svc.lastStall >= start, 5_000, 10)
    // probes keep going; as each starts, the tick runs (checked as it starts: in-process acks come
    // within a millisecond), and it stops once nothing is pending
    const atStart: Array<{ probing: number; ticking: boolean }> = []
    const watch = svc.watchStalls.bind(svc)
    svc.watchStalls = () => {
      watch()
      atStart.push({ probing: svc.probing.size, ticking: svc.lagTimer != null })
    }
    try {
      await waitUntil('probes start', () => atStart.length >= 3, 10_000, 10)
    } finally {
      delete (svc as { watchStalls?: unknown }).watchStalls
    }
    assert.ok(
      atStart.every(x => x.probing > 0 && x.ticking),
      JSON.stringify(atStart)
    )
    await waitUntil('the lag tick rests again', () => svc.lagTimer == null, 10_000, 1)
  })
})
