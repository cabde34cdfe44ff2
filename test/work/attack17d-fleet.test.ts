/**
 * attack17d: a member that hosts no agents says so EMPTY_BEATS times, then publishes no heartbeat
 * (src/work/fleet.ts). Its peers forget its empty entry after forgetAfter; from then on they must
 * still list it, with no agents — it writes no fleet summary in its membership metadata either, so
 * without care it would drop out of `status().members` (which the scaling loop reads).
 */
import { strict as assert } from 'node:assert'
import { EMPTY_BEATS, fleet, fleetSummary, STALE_AFTER } from '../../src/work/fleet.ts'
import { membership } from '../../src/membership/service.ts'
import { waitUntil } from '../helpers/processes.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { key } from '../spki/fixtures.ts'
import { admit, converged, FAST, principalOf } from '../membership/fixtures.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Fleet } from '../../src/work/fleet.ts'

const INTERVAL = 300

describe('attack17d: an agentless member after its last empty heartbeat', function () {
  this.timeout(60_000)
  let nodes: CyberspaceNode[] = []

  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it('is still listed by its peers, with no agents, once they forgot its empty heartbeat', async () => {
    const services = (): Record<string, never> => ({
      membership: membership(FAST) as never,
      fleet: fleet({ interval: INTERVAL, namespace: 'attack17d', forgetAfter: STALE_AFTER * INTERVAL }) as never
    })
    const first = await memoryNode({ services: services() })
    const second = await memoryNode({ services: services(), bootstrap: [first.multiaddrs()[0]] })
    nodes = [first, second]
    const fleetOf = (n: CyberspaceNode): Fleet => (n.libp2p.services as unknown as { fleet: Fleet }).fleet
    const root = await key()
    for (const n of nodes) await admit(n, root)
    await converged(nodes)
    const held = (n: CyberspaceNode): Map<string, unknown> =>
      (fleetOf(n) as unknown as { table: Map<string, unknown> }).table
    await waitUntil('second holds a heartbeat of first', () => held(second).has(principalOf(first)), 30_000, 20)
    const beats = (): number => (fleetOf(first) as unknown as { emptyBeats: number }).emptyBeats
    await waitUntil('first said twice that it hosts no agents', () => beats() >= EMPTY_BEATS, 30_000, 20)
    await waitUntil('second forgot the empty heartbeat', () => !held(second).has(principalOf(first)), 30_000, 20)
    const listed = fleetOf(second)
      .status()
      .members.find(m => m.member === principalOf(first))
    assert.ok(listed != null, "an agentless member dropped out of its peers' fleet status")
    assert.equal(listed.summary, fleetSummary([]))
  })
})
