import { strict as assert } from 'node:assert'
import { waitUntil } from '../helpers/processes.ts'
import { converged, membershipOf, principalOf, Recorder, sees, startCluster } from './fixtures.ts'
import type { TestCluster } from './fixtures.ts'
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

  it('a member that stops answering is suspected, then marked dead by every other; no live member is ever marked dead', async () => {
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
    for (const n of live)
      assert.deepEqual(recorder.showed(principalOf(n), 'suspect'), [], 'a live member was suspected')
  })
})
