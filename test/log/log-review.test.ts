/**
 * Cases a correctness review found: refusals of one kind of block must not refuse the other kind,
 * an applied event whose parent is covered but not stored survives a restart, a snapshot naming
 * another log's events as heads cannot get them deleted, and a replica whose merged snapshots
 * cannot be folded refuses more before fetching them.
 */
import assert from 'node:assert/strict'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { Hlc } from '../../src/clock/hlc.ts'
import { gCounter } from '../../src/crdt/g-counter.ts'
import { orSet } from '../../src/crdt/or-set.ts'
import { signSnapshot } from '../../src/log/event.ts'
import { Log } from '../../src/log/log.ts'
import { countingFetch, replicas, signer } from './fixtures.ts'
import type { CID } from 'multiformats/cid'

const inc = (n: number) => (b: { state: any; ctx: any; push: (d: any) => void }) =>
  b.push(gCounter.increment(b.state, b.ctx, n))

describe('log: refusals by kind, anchors, foreign heads, folding limits', () => {
  it('an event offered as a snapshot is still joined as an event', async () => {
    const [a, c] = await replicas(gCounter, 2)
    const e = await a.log.append(inc(5))
    assert.ok(e != null)
    await assert.rejects(c.log.adoptSnapshot(e.cid))
    await c.log.join([e.cid])
    assert.equal(c.log.value(), 5)
  })

  it('a snapshot offered as a head is still adopted as a snapshot', async () => {
    const [a, c] = await replicas(gCounter, 2)
    await a.log.append(inc(5))
    const s = await a.log.snapshot()
    const joined = await c.log.join([s.cid])
    assert.equal(joined.rejected.length, 1)
    assert.equal(await c.log.adoptSnapshot(s.cid), true)
    assert.equal(c.log.value(), 5)
  })

  it('an applied event whose parent was compacted survives a restart, and so do writes on top of it', async () => {
    const [r, p] = await replicas(gCounter, 2)
    const r1 = await r.log.append(inc(1))
    assert.ok(r1 != null)
    await p.log.join([r1.cid])
    await r.log.append(inc(10))
    await r.log.compact()
    const p1 = await p.log.append(inc(100)) // its parent r1 is compacted away at r
    assert.ok(p1 != null)
    assert.equal((await r.log.join([p1.cid])).applied.length, 1)
    await r.log.append(inc(1000))
    assert.equal((await r.reopen()).value(), 1111)
  })

  it('an applied event whose parent was found covered in an earlier join survives a restart', async () => {
    const [a, p, c] = await replicas(gCounter, 3)
    const a1 = await a.log.append(inc(1))
    assert.ok(a1 != null)
    await p.log.join([a1.cid])
    await a.log.append(inc(10))
    const s = await a.log.snapshot()
    assert.equal(await c.log.adoptSnapshot(s.cid), true)
    await c.log.join([a1.cid]) // covered: remembered, not stored
    const p1 = await p.log.append(inc(100))
    assert.ok(p1 != null)
    assert.equal((await c.log.join([p1.cid])).applied.length, 1)
    assert.equal((await c.reopen()).value(), 111)
  })

  for (const how of ['destroy', 'compact'] as const) {
    it(`${how} of one log keeps another log's events that a snapshot named as its heads`, async () => {
      const me = await signer(200)
      const mallory = await signer(201)
      const blockstore = new MemoryBlockstore()
      const datastore = new MemoryDatastore()
      const clock = new Hlc()
      const open = async (id: string): Promise<Log<any, any, number>> =>
        await Log.open({ id, type: gCounter, blockstore, datastore, signer: me, clock, authorize: async () => {} })
      const y = await open('y')
      await y.append(inc(7))
      await y.append(inc(8))
      const x = await open('x')
      await x.append(inc(1))
      const hlc = clock.tick()
      const forged = await signSnapshot(mallory, {
        log: 'x',
        hlc,
        heads: y.heads(),
        covered: { [mallory.principal]: hlc },
        state: gCounter.encodeState(gCounter.empty())
      })
      await blockstore.put(forged.cid, forged.bytes)
      assert.equal(await x.adoptSnapshot(forged.cid), true)
      if (how === 'destroy') await x.destroy()
      else await x.compact()
      y.close()
      assert.equal((await open('y')).value(), 15)
    })
  }

  it('refuses, before fetching, a snapshot it could not fold because the merged state is too large', async () => {
    const rs = await replicas(orSet, 5)
    const c = rs[4]
    const snapshots: CID[] = []
    for (const [i, r] of rs.slice(0, 4).entries()) {
      for (let k = 0; k < 6; k++) {
        await r.log.append(b => b.push(orSet.add(b.state, b.ctx, `${i}-${k}-` + 'x'.repeat(60_000))))
      }
      snapshots.push((await r.log.snapshot()).cid)
    }
    const { fetch, asked } = countingFetch(rs.map(r => r.blockstore))
    const log = await Log.open({ ...c.init, fetch, limits: { ...c.init.limits, maxSnapshots: 2 } })
    for (const s of snapshots.slice(0, 3)) await log.adoptSnapshot(s).catch(() => false)
    asked.length = 0
    await assert.rejects(log.adoptSnapshot(snapshots[3]), /cannot fold/)
    assert.deepEqual(asked, [], 'nothing fetched')
  })
})
