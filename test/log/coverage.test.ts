/**
 * What a snapshot's covered vector may claim, and what a replica remembers: every append folds a
 * frontier wider than MAX_PARENTS so each author's events form one chain, covered entries are
 * checked against the snapshot's own time, signatures are checked before coverage counts, refusals
 * for good are remembered (bounded), and a log can be destroyed.
 */
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { Key } from 'interface-datastore'
import { blockCid, decodeEvent, MAX_PARENTS } from '../../protocols/log/codec.ts'
import { gCounter, sumEntries } from '../../src/crdt/g-counter.ts'
import { orSet } from '../../src/crdt/or-set.ts'
import { signEvent, signSnapshot } from '../../src/log/event.ts'
import { Log } from '../../src/log/log.ts'
import { allowList, countingFetch, replicas } from './fixtures.ts'
import type { Replica } from './fixtures.ts'
import type { Event } from '../../protocols/log/codec.ts'
import type { Authorize } from '../../src/log/log.ts'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

const add = (elem: unknown) => (b: { state: any; ctx: any; push: (d: any) => void }) =>
  b.push(orSet.add(b.state, b.ctx, elem))
const inc = (n: number) => (b: { state: any; ctx: any; push: (d: any) => void }) =>
  b.push(gCounter.increment(b.state, b.ctx, n))

/** Every event reachable from `heads` in `replica`'s own blockstore, by CID string. */
async function past(replica: Replica<any, any, any>, heads: CID[]): Promise<Map<string, Event>> {
  const found = new Map<string, Event>()
  const stack = [...heads]
  while (stack.length > 0) {
    const cid = stack.pop() as CID
    if (found.has(cid.toString())) continue
    const chunks: Uint8Array[] = []
    for await (const c of replica.blockstore.get(cid, { offline: true })) chunks.push(c)
    const event = decodeEvent(chunks.length === 1 ? chunks[0] : Uint8Array.from(chunks.flatMap(c => [...c])))
    found.set(cid.toString(), event)
    stack.push(...event.parents)
  }
  return found
}

describe('log coverage', () => {
  describe('140 concurrent writers', function () {
    this.timeout(300_000)
    const WRITERS = 140
    let all: Array<Replica<any, any, any>>
    let writers: Array<Replica<any, any, any>>
    let origin: Replica<any, any, any>
    let snapshotter: Replica<any, any, any>
    let fresh: Replica<any, any, any>
    let w: Replica<any, any, any>
    let wIndex: number
    let e1: CID
    let e2: CID

    before(async () => {
      all = await replicas(orSet, WRITERS + 3)
      writers = all.slice(0, WRITERS)
      ;[origin, snapshotter, fresh] = all.slice(WRITERS)
      const base = await origin.log.append(add('base'))
      assert.ok(base != null)
      await Promise.all(writers.map(async r => await r.log.join([base.cid])))
      const firsts = await Promise.all(writers.map(async (r, i) => await r.log.append(add(`w${i}`))))
      // W: a writer whose first event sorts after the first MAX_PARENTS heads, the one a plain
      // `heads().slice(0, MAX_PARENTS)` leaves out of its own next event's parents
      const sorted = firsts
        .map((b, i) => ({ key: b?.cid.toString() as string, i }))
        .sort((a, b) => (a.key < b.key ? -1 : 1))
      wIndex = sorted[sorted.length - 1].i
      w = writers[wIndex]
      e1 = firsts[wIndex]?.cid as CID
      await w.log.join(firsts.map(b => b?.cid as CID))
      assert.equal(w.log.heads().length, WRITERS)
      const second = await w.log.append(add('w-after'))
      assert.ok(second != null)
      e2 = second.cid
    })

    it("folds a frontier wider than MAX_PARENTS: the append's past holds every head, its author's previous event included", async () => {
      const history = await past(w, [e2])
      assert.ok((history.get(e2.toString())?.parents.length ?? 0) <= MAX_PARENTS)
      assert.ok(history.has(e1.toString()), "W's previous event is in its next event's past")
      for (const r of writers)
        for (const h of r.log.heads()) assert.ok(history.has(h.toString()), `head ${h} folded in`)
      const merges = [...history.values()].filter(e => e.ops.length === 0)
      assert.ok(merges.length >= 2, `${WRITERS} heads need at least two merge events, got ${merges.length}`)
      for (const m of merges) {
        assert.equal(m.author, w.signer.principal)
        assert.ok(m.parents.length <= MAX_PARENTS)
      }
      assert.deepEqual(w.log.heads().map(String), [e2.toString()])
    })

    it('a replica from a snapshot taken with only the later event applies the earlier one, and all converge', async () => {
      // the snapshotter hears of W's later event alone
      await snapshotter.log.join([e2])
      const { snapshot } = await snapshotter.log.compact()
      assert.equal(await fresh.log.adoptSnapshot(snapshot), true)
      // then the fresh replica hears every writer's heads, W's first event among them
      await fresh.log.join([e1])
      for (const r of [w, ...writers.slice(0, 5)]) await fresh.log.join(r.log.heads())
      const expected = ['base', 'w-after', ...writers.map((_, i) => `w${i}`)].sort()
      assert.ok((fresh.log.value() as string[]).includes(`w${wIndex}`), "W's first write is in the fresh replica")
      assert.deepEqual([...(fresh.log.value() as string[])].sort(), expected)
      assert.deepEqual(snapshotter.log.value(), w.log.value())
      assert.deepEqual(fresh.log.value(), w.log.value())
      await writers[0].log.join(fresh.log.heads())
      assert.deepEqual(writers[0].log.value(), w.log.value())
      assert.deepEqual((await fresh.reopen()).value(), w.log.value())
    })
  })

  it("refuses a snapshot whose covered vector reaches past its own time; the victim's later write applies", async () => {
    const [mallory, victim, carol] = await replicas(orSet, 3)
    await mallory.log.append(add('m'))
    const hlc = mallory.init.clock.tick()
    const forged = await signSnapshot(mallory.signer, {
      log: 'doc',
      hlc,
      heads: mallory.log.heads(),
      covered: { [mallory.signer.principal]: hlc, [victim.signer.principal]: [hlc[0] + 10 * 365 * 86_400_000, 0] },
      state: orSet.encodeState(mallory.log.current())
    })
    await mallory.blockstore.put(forged.cid, forged.bytes)
    await assert.rejects(carol.log.adoptSnapshot(forged.cid), { name: 'EventRejectedError' })
    assert.deepEqual(carol.log.snapshots(), [])
    await victim.log.append(add('v'))
    const result = await carol.log.join(victim.log.heads())
    assert.equal(result.applied.length, 1)
    assert.deepEqual(carol.log.value(), ['v'])
    // an honest snapshot of the same author is merged
    const { snapshot } = await mallory.log.compact()
    assert.equal(await carol.log.adoptSnapshot(snapshot), true)
    assert.deepEqual(carol.log.value(), ['m', 'v'])
  })

  it('tells the authorize callback which peers a snapshot or event came from, and which may be asked for proofs', async () => {
    const [a, b] = await replicas(orSet, 2)
    await a.log.append(add('x'))
    const { snapshot } = await a.log.compact()
    const told: Array<{ action: string; providers?: PeerId[] }> = []
    const authorize: Authorize = async (author, action, options) => {
      told.push({ action, providers: options.providers })
    }
    const log = await Log.open({ ...b.init, authorize })
    const peer = { toString: () => 'the-sender' } as unknown as PeerId
    assert.equal(await log.adoptSnapshot(snapshot, { providers: [peer] }), true)
    assert.deepEqual(told, [{ action: 'snapshot', providers: [peer] }])
    // what an unproven peer offered: fetched from it, but nobody is asked for proofs
    await a.log.append(add('y'))
    told.length = 0
    await log.join(a.log.heads(), { providers: [peer], proofProviders: [] })
    assert.deepEqual(told, [{ action: 'append', providers: [] }])
  })

  it('does not count 1 000 forged blocks claiming a covered author, and remembers a bounded number of them', async () => {
    const [a, mallory, c] = await replicas(gCounter, 3)
    for (let i = 0; i < 3; i++) await a.log.append(inc(1))
    const { snapshot } = await a.log.compact()
    const { fetch, asked } = countingFetch([a.blockstore, mallory.blockstore])
    const log = await Log.open({ ...c.init, fetch, limits: { ...c.init.limits, maxRefused: 100 } })
    assert.equal(await log.adoptSnapshot(snapshot), true)
    const forged: CID[] = []
    for (let i = 0; i < 1000; i++) {
      // a's name, a time a's snapshot covers, but not a's signature
      const bytes = dagCbor.encode({
        v: 1,
        log: 'doc',
        author: a.signer.principal,
        hlc: [1, i],
        parents: [],
        ops: [{ [a.signer.principal]: i + 1 }],
        sig: new Uint8Array(64).fill(7)
      })
      const cid = await blockCid(bytes)
      await mallory.blockstore.put(cid, bytes)
      forged.push(cid)
    }
    const result = await log.join(forged)
    assert.equal(result.rejected.length, 1000)
    assert.ok(result.rejected.every(r => r.error.name === 'InvalidSignatureError'))
    assert.equal(forged.filter(cid => log.has(cid)).length, 0, 'no forged block is taken as inside the snapshot')
    assert.equal(log.value(), 3)
    // only the latest 100 refusals are remembered: the oldest is fetched again, the newest is not
    asked.length = 0
    const again = await log.join([forged[0], forged[999]])
    assert.deepEqual(asked, [forged[0].toString()])
    assert.deepEqual(
      again.rejected.map(r => r.error.name),
      ['InvalidSignatureError', 'InvalidSignatureError']
    )
  })

  it('remembers a bounded number of covered events it did not apply', async () => {
    const [a, c] = await replicas(gCounter, 2)
    const events: CID[] = []
    for (let i = 0; i < 10; i++) events.push(((await a.log.append(inc(1))) as { cid: CID }).cid)
    const snapshot = await a.log.snapshot()
    const log = await Log.open({ ...c.init, limits: { ...c.init.limits, maxCoveredEvents: 4 } })
    await log.adoptSnapshot(snapshot.cid)
    for (const cid of events.slice(0, 9)) {
      const result = await log.join([cid])
      assert.deepEqual([result.applied, result.rejected, result.missing], [[], [], []])
    }
    assert.deepEqual(
      events.map(cid => log.has(cid)),
      [false, false, false, false, false, true, true, true, true, true]
    )
    assert.equal(log.value(), 10)
  })

  it('never stores a block because it claims a covered author: a revoked author cannot fill the disk', async () => {
    const allowed = new Set<string>()
    const [a, c] = await replicas(gCounter, 2, { allowed })
    allowed.add(a.signer.principal)
    const first = await a.log.append(inc(1))
    await a.log.append(inc(1))
    assert.ok(first != null)
    const snapshot = await a.log.snapshot()
    assert.equal(await c.log.adoptSnapshot(snapshot.cid), true)
    allowed.delete(a.signer.principal) // a's grant is withdrawn; its old events stay in the snapshot
    const forged: CID[] = []
    for (let i = 0; i < 20; i++) {
      const block = await signEvent(a.signer, {
        log: 'doc',
        hlc: first.value.hlc,
        parents: [await blockCid(new Uint8Array([i, 1, 2, 3]))],
        ops: [new Uint8Array(1000).fill(i)] as any
      })
      forged.push(block.cid)
      await c.log.join([block.cid], { blocks: new Map([[block.cid.toString(), block.bytes]]) })
    }
    for (const cid of forged) assert.equal(await c.blockstore.has(cid), false, 'not on disk')
    assert.equal(c.log.value(), 2)
  })

  it('bounds the bytes one join holds: beyond them it asks for a snapshot instead', async () => {
    const [a, c] = await replicas(orSet, 2)
    for (let i = 0; i < 20; i++) await a.log.append(add('x'.repeat(2000) + i))
    const log = await Log.open({ ...c.init, limits: { ...c.init.limits, maxJoinBytes: 16 * 1024 } })
    await assert.rejects(log.join(a.log.heads()), { name: 'HistoryTooLongError' })
    assert.equal(log.value().length, 0)
    const roomy = await Log.open({ ...c.init, limits: { ...c.init.limits, maxJoinBytes: 1024 * 1024 } })
    await roomy.join(a.log.heads())
    assert.equal(roomy.value().length, 20)
  })

  it('folds merged snapshots into its own when it holds the most it merges, and adopts the next', async () => {
    const [a, b, d, c] = await replicas(gCounter, 4)
    const snapshots: CID[] = []
    for (const r of [a, b, d]) {
      await r.log.append(inc(1))
      snapshots.push((await r.log.snapshot()).cid)
    }
    const log = await Log.open({ ...c.init, limits: { ...c.init.limits, maxSnapshots: 2 } })
    for (const cid of snapshots) assert.equal(await log.adoptSnapshot(cid), true)
    assert.equal(log.value(), 3)
    const held = log.snapshots()
    assert.equal(held.length, 2, 'its own snapshot of the first two, and the third')
    assert.ok(held[1].equals(snapshots[2]))
    assert.ok(!snapshots.slice(0, 2).some(s => held.some(h => h.equals(s))))
    assert.equal(await c.blockstore.has(snapshots[0]), false, 'the folded snapshots are dropped')
    // replayed from disk: the same value
    assert.equal((await Log.open({ ...c.init, limits: { ...c.init.limits, maxSnapshots: 2 } })).value(), 3)
  })

  it('does not fetch again, for a while, a snapshot that added nothing or whose author was refused', async () => {
    const allowed = new Set<string>()
    const [a, c] = await replicas(gCounter, 2, { allowed })
    allowed.add(a.signer.principal)
    await a.log.append(inc(1))
    const snapshot = (await a.log.snapshot()).cid
    const { fetch, asked } = countingFetch([a.blockstore])
    const log = await Log.open({ ...c.init, fetch })
    allowed.delete(a.signer.principal)
    await assert.rejects(log.adoptSnapshot(snapshot), { name: 'UnauthorizedEventError' })
    await assert.rejects(log.adoptSnapshot(snapshot), { name: 'UnauthorizedEventError' })
    assert.equal(asked.filter(k => k === snapshot.toString()).length, 1, 'fetched once')
    await log.join(a.log.heads()) // the events themselves: refused too, the snapshot adds nothing new
    const other = await Log.open({ ...c.init, fetch })
    allowed.add(a.signer.principal)
    await other.join(a.log.heads())
    asked.length = 0
    assert.equal(await other.adoptSnapshot(snapshot), false)
    assert.equal(await other.adoptSnapshot(snapshot), false)
    assert.equal(asked.length, 1, 'a snapshot of nothing new is fetched once')
  })

  it('refuses, before fetching, a snapshot it could not fold into its own', async () => {
    const writers = await replicas(gCounter, 260)
    const [a, b, c] = writers
    const snapshots: CID[] = []
    for (const r of [a, b]) {
      await r.log.append(inc(1))
      snapshots.push((await r.log.snapshot()).cid)
    }
    const { fetch, asked } = countingFetch(writers.map(w => w.blockstore))
    const log = await Log.open({ ...c.init, fetch, limits: { ...c.init.limits, maxSnapshots: 1 } })
    assert.equal(await log.adoptSnapshot(snapshots[0]), true)
    // 260 concurrent heads: more than a snapshot may list
    for (const w of writers.slice(3)) await w.log.append(inc(1))
    await log.join(writers.slice(3).flatMap(w => w.log.heads()))
    assert.ok(log.heads().length > 256)
    asked.length = 0
    await assert.rejects(log.adoptSnapshot(snapshots[1]), /cannot fold/)
    assert.deepEqual(asked, [], 'nothing fetched')
  })

  it('takes an event a snapshot merged during its join covers as inside, not as refused', async () => {
    const [a, c] = await replicas(orSet, 2)
    const first = await a.log.append(add('x'))
    const second = await a.log.append(add('y'))
    assert.ok(first != null && second != null)
    const snapshot = await a.log.snapshot()
    const { fetch } = countingFetch([a.blockstore])
    let release = (): void => {}
    const blocked = new Promise<void>(resolve => {
      release = resolve
    })
    const log = await Log.open({
      ...c.init,
      // the join has checked `second` and waits for its parent while the snapshot is merged
      fetch: async (cid, options) => {
        if (cid.equals(first.cid)) await blocked
        return await fetch(cid, options)
      }
    })
    const joining = log.join([second.cid])
    await new Promise(resolve => setTimeout(resolve, 50))
    assert.equal(await log.adoptSnapshot(snapshot.cid), true)
    release()
    const result = await joining
    assert.deepEqual([result.applied, result.rejected, result.missing], [[], [], []])
    assert.ok(log.has(second.cid))
    const third = await a.log.append(add('z'))
    assert.ok(third != null)
    assert.deepEqual((await log.join([third.cid])).applied.map(String), [third.cid.toString()])
    assert.deepEqual(log.value(), ['x', 'y', 'z'])
  })

  it('fetches and checks a block refused for good once; an unauthorized author is checked again', async () => {
    // a counter whose merge throws on one delta: an op that decodes but cannot be applied
    let empties = 0
    const fragile: typeof gCounter = {
      ...gCounter,
      empty: () => {
        empties++
        return gCounter.empty()
      },
      merge: (into, delta) => {
        if (sumEntries(delta) === 13) throw new TypeError('cannot apply this one')
        return gCounter.merge(into, delta)
      }
    }
    const allowed = new Set<string>()
    const [mallory, dave, carol] = await replicas(fragile, 3, { authorize: allowList(allowed) })
    allowed.add(mallory.signer.principal).add(carol.signer.principal)
    const hlc = mallory.init.clock.tick()
    const delta = gCounter.increment(gCounter.empty(), { replica: mallory.signer.principal, hlc }, 13)
    const poison = await signEvent(mallory.signer, { log: 'doc', hlc, parents: [], ops: [gCounter.encodeDelta(delta)] })
    await mallory.blockstore.put(poison.cid, poison.bytes)
    const childHlc = mallory.init.clock.tick()
    const childDelta = gCounter.increment(gCounter.empty(), { replica: mallory.signer.principal, hlc: childHlc }, 14)
    const child = await signEvent(mallory.signer, {
      log: 'doc',
      hlc: childHlc,
      parents: [poison.cid],
      ops: [gCounter.encodeDelta(childDelta)]
    })
    await mallory.blockstore.put(child.cid, child.bytes)

    const { fetch, asked } = countingFetch([mallory.blockstore, dave.blockstore])
    const log = await Log.open({ ...carol.init, fetch })
    const first = await log.join([child.cid])
    assert.deepEqual(asked.sort(), [poison.cid.toString(), child.cid.toString()].sort())
    assert.deepEqual(
      first.rejected.map(r => [r.cid.toString(), r.error.name]).sort(),
      [
        [poison.cid.toString(), 'EventRejectedError'],
        [child.cid.toString(), 'EventRejectedError']
      ].sort()
    )
    const rebuilt = empties
    const second = await log.join([poison.cid])
    const third = await log.join([child.cid])
    assert.deepEqual(asked.length, 2, 'nothing fetched again')
    assert.equal(empties, rebuilt, 'the state is not rebuilt again')
    assert.equal(second.rejected[0]?.error, first.rejected.find(r => r.cid.equals(poison.cid))?.error)
    assert.equal(third.rejected[0]?.error.name, 'EventRejectedError')
    assert.equal(log.value(), 0)

    // an author refused for want of authority is asked about again, and applies once allowed
    const daveHlc = dave.init.clock.tick()
    const daveEvent = await signEvent(dave.signer, {
      log: 'doc',
      hlc: daveHlc,
      parents: [],
      ops: [
        gCounter.encodeDelta(gCounter.increment(gCounter.empty(), { replica: dave.signer.principal, hlc: daveHlc }, 2))
      ]
    })
    await dave.blockstore.put(daveEvent.cid, daveEvent.bytes)
    const refused = await log.join([daveEvent.cid])
    assert.equal(refused.rejected[0]?.error.name, 'UnauthorizedEventError')
    allowed.add(dave.signer.principal)
    const accepted = await log.join([daveEvent.cid])
    assert.deepEqual(accepted.applied.map(String), [daveEvent.cid.toString()])
    assert.equal(log.value(), 2)
  })

  it('destroys a log: its blocks and its record are deleted, and a reopen starts empty', async () => {
    const [a, b] = await replicas(orSet, 2)
    for (let i = 0; i < 3; i++) await a.log.append(add(`a${i}`))
    await b.log.join(a.log.heads())
    await b.log.compact()
    await b.log.append(add('b'))
    await a.log.append(add('a-late'))
    await b.log.join(a.log.heads())
    let stored = 0
    for await (const _ of b.blockstore.getAll()) stored++
    assert.ok(stored >= 3)
    await b.log.destroy()
    const left: string[] = []
    for await (const { cid } of b.blockstore.getAll()) left.push(cid.toString())
    assert.deepEqual(left, [])
    assert.equal(await b.datastore.has(new Key('/cyberspace/log/doc')), false)
    await assert.rejects(b.log.append(add('after')), { name: 'LogClosedError' })
    const reopened = await Log.open(b.init)
    assert.deepEqual(reopened.value(), [])
    assert.deepEqual(reopened.heads(), [])
    assert.deepEqual(reopened.snapshots(), [])
    assert.equal(reopened.length, 0)
  })
})
