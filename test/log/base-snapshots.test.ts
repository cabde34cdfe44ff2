/**
 * A replica that may not sign snapshots (a member following an agent's session) still keeps its
 * log short: it takes the writer's snapshots as its base even when it holds every event they
 * cover, a newer one replaces the older, and dropCovered deletes the history behind them. Also:
 * the signer can change, and each append and snapshot is checked for its signer; an author no
 * grant can authorize is refused for good.
 */
import assert from 'node:assert/strict'
import { gCounter } from '../../src/crdt/g-counter.ts'
import { orSet } from '../../src/crdt/or-set.ts'
import { UnauthorizedEventError } from '../../src/log/errors.ts'
import { signEvent } from '../../src/log/event.ts'
import { Log } from '../../src/log/log.ts'
import { countingFetch, replicas, signer } from './fixtures.ts'
import type { CID } from 'multiformats/cid'

const add = (elem: unknown) => (b: { state: any; ctx: any; push: (d: any) => void }) =>
  b.push(orSet.add(b.state, b.ctx, elem))
const inc = (n: number) => (b: { state: any; ctx: any; push: (d: any) => void }) =>
  b.push(gCounter.increment(b.state, b.ctx, n))

async function appendAll(log: Log<any, any, any>, elems: string[]): Promise<CID[]> {
  const cids: CID[] = []
  for (const e of elems) {
    const block = await log.append(add(e))
    assert.ok(block != null)
    cids.push(block.cid)
  }
  return cids
}

describe('log: base snapshots a replica adopts without signing its own', () => {
  it("takes the writer's snapshot as its base though it holds every event, drops the history behind it, and replays only what followed", async () => {
    const [a, c] = await replicas(orSet, 2)
    const first = await appendAll(a.log, ['a0', 'a1', 'a2', 'a3', 'a4'])
    await c.log.join(a.log.heads())
    assert.equal(c.log.length, 5)
    const s1 = (await a.log.snapshot()).cid

    assert.equal(await c.log.adoptSnapshot(s1), false, 'adds nothing as a plain merge')
    assert.equal(await c.log.adoptSnapshot(s1, { base: true }), true, 'taken as the base')
    assert.deepEqual(c.log.snapshots().map(String), [s1.toString()])
    assert.equal(c.log.eventsSinceSnapshot(), 0)
    assert.equal(c.log.length, 5, 'still applied, until dropped')

    assert.equal(await c.log.dropCovered(), 5)
    assert.equal(c.log.length, 0)
    for (const cid of first) {
      assert.equal(await c.blockstore.has(cid), false, 'deleted from the disk')
      assert.equal(c.log.has(cid), true, 'still inside the base')
    }
    assert.deepEqual(c.log.value(), a.log.value())

    const later = await appendAll(a.log, ['b0', 'b1', 'b2'])
    const joined = await c.log.join(a.log.heads())
    assert.deepEqual(joined.applied.map(String).sort(), later.map(String).sort())
    assert.equal(c.log.eventsSinceSnapshot(), 3)

    const s2 = (await a.log.snapshot()).cid
    assert.equal(await c.log.adoptSnapshot(s2, { base: true }), true)
    assert.deepEqual(c.log.snapshots().map(String), [s2.toString()], 'the newer snapshot replaces the older')
    assert.equal(await c.blockstore.has(s1), false, 'and the older one is deleted')
    assert.equal(await c.log.dropCovered(), 3)
    assert.equal(await c.log.adoptSnapshot(s1, { base: true }), false, 'an older snapshot adds nothing')
    assert.deepEqual(c.log.snapshots().map(String), [s2.toString()])

    await appendAll(a.log, ['c0', 'c1'])
    await c.log.join(a.log.heads())
    const reopened = await c.reopen()
    assert.deepEqual(reopened.value(), a.log.value())
    assert.deepEqual(reopened.snapshots().map(String), [s2.toString()])
    assert.equal(reopened.length, 2, 'a replay applies only the events after the base')
    assert.equal(reopened.eventsSinceSnapshot(), 2)
  })

  it('an event that stays, whose parent was dropped, survives a restart', async () => {
    const [a, b, c] = await replicas(orSet, 3)
    const [a1] = await appendAll(a.log, ['a1'])
    await b.log.join([a1])
    const [b1] = await appendAll(b.log, ['b1']) // its parent is a1
    await appendAll(a.log, ['a2']) // concurrent with b1
    const snapshot = (await a.log.snapshot()).cid // covers a1, a2: not b1
    await c.log.join([...a.log.heads(), b1])
    assert.equal(c.log.length, 3)
    assert.equal(await c.log.adoptSnapshot(snapshot, { base: true }), true)
    assert.equal(await c.log.dropCovered(), 2, 'a1 and a2 dropped, b1 kept')
    assert.equal(await c.blockstore.has(a1), false)
    const value = c.log.value()
    const reopened = await c.reopen()
    assert.deepEqual(reopened.value(), value)
    assert.deepEqual([...reopened.value()].sort(), ['a1', 'a2', 'b1'])
    assert.equal(reopened.length, 1, 'b1 replayed on top of the base')
    // and a write on top of it still applies everywhere
    await appendAll(reopened, ['c1'])
    await a.log.join(reopened.heads())
    assert.deepEqual([...a.log.value()].sort(), ['a1', 'a2', 'b1', 'c1'])
  })

  it('checks each append and snapshot against its signer: a signer the log does not authorize writes nothing', async () => {
    const allowed = new Set<string>()
    const [a] = await replicas(gCounter, 1, { allowed })
    allowed.add(a.signer.principal)
    await a.log.append(inc(2))
    const stranger = await signer()
    a.log.useSigner(stranger)
    assert.equal(a.log.author, stranger.principal)
    await assert.rejects(a.log.append(inc(5)), { name: 'UnauthorizedEventError' })
    await assert.rejects(a.log.snapshot(), { name: 'UnauthorizedEventError' })
    assert.equal(a.log.value(), 2)
    allowed.add(stranger.principal)
    const block = await a.log.append(inc(5))
    assert.equal(block?.value.author, stranger.principal, 'signed by the new signer')
    assert.equal(a.log.value(), 7)
    assert.equal((await a.reopen()).value(), 7)
  })

  it('refuses for good an author no grant can ever authorize, and checks another again', async () => {
    const [writer, other, c] = await replicas(gCounter, 3)
    const forever = new Set<string>([writer.signer.principal])
    let grantOther = false
    const authorize = async (author: string): Promise<void> => {
      if (author === other.signer.principal && grantOther) return
      if (!forever.has(author)) {
        throw new UnauthorizedEventError(`${author} is not the writer`, {
          permanent: author !== other.signer.principal
        })
      }
    }
    const intruder = await signer()
    const events: CID[] = []
    for (const s of [intruder, other.signer]) {
      const hlc = c.init.clock.tick()
      const block = await signEvent(s, {
        log: 'doc',
        hlc,
        parents: [],
        ops: [gCounter.encodeDelta(gCounter.increment(gCounter.empty(), { replica: s.principal, hlc }, 1))]
      })
      await writer.blockstore.put(block.cid, block.bytes)
      events.push(block.cid)
    }
    const { fetch, asked } = countingFetch([writer.blockstore])
    const log = await Log.open({ ...c.init, fetch, authorize })
    for (const cid of events) {
      const result = await log.join([cid])
      assert.equal(result.rejected[0]?.error.name, 'UnauthorizedEventError')
    }
    asked.length = 0
    const again = await log.join(events)
    assert.deepEqual(asked, [events[1].toString()], 'only the author that may yet be granted is fetched again')
    assert.equal(again.rejected.length, 2)
    grantOther = true
    const granted = await log.join(events)
    assert.deepEqual(granted.applied.map(String), [events[1].toString()])
    assert.equal(log.value(), 1)
  })
})
