/**
 * Idle cost under the new gossip timer (src/membership/service.ts): it runs only while updates are
 * queued — but an update leaves the queue only by being sent, so a member with no one to send to
 * (alone, or every other member dead or left) keeps a timer firing every gossipInterval forever.
 */
import { strict as assert } from 'node:assert'
import { waitUntil } from '../helpers/processes.ts'
import { FAST, membershipOf, startCluster } from './fixtures.ts'
import type { TestCluster } from './fixtures.ts'

describe('attack17c: a member with no one to gossip to', function () {
  this.timeout(30_000)
  let cluster: TestCluster

  before(async () => {
    cluster = await startCluster(1, FAST)
  })

  after(async () => {
    await Promise.all(cluster.nodes.map(async n => await n.stop()))
  })

  it('rests its gossip timer', async () => {
    const [a] = cluster.nodes
    const svc = membershipOf(a) as unknown as { active: boolean; gossipTimer?: unknown; queue: { size: number } }
    await waitUntil('a is active', () => svc.active, 10_000, 20)
    // 20 gossip intervals: any update could have gone to someone by now, had there been anyone
    await new Promise(resolve => setTimeout(resolve, 20 * (FAST.gossipInterval ?? 100)))
    assert.equal(svc.gossipTimer, undefined, `the timer still runs with ${svc.queue.size} updates queued for no one`)
  })
})
