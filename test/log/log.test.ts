import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { Key } from 'interface-datastore'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { blockCid, decodeEvent, MAX_EVENT_BYTES } from '../../protocols/log/codec.ts'
import { gCounter, sumEntries } from '../../src/crdt/g-counter.ts'
import { orSet } from '../../src/crdt/or-set.ts'
import { Causal, CausalContext, DotMap } from '../../src/crdt/causal.ts'
import { VectorClock } from '../../src/clock/vector.ts'
import { signEvent } from '../../src/log/event.ts'
import { Log } from '../../src/log/log.ts'
import { allowList, replicas, signer } from './fixtures.ts'
import type { ChangeDetail } from '../../src/log/log.ts'
import type { SetStore } from '../../src/crdt/or-set.ts'

const add = (elem: unknown) => (b: { state: any; ctx: any; push: (d: any) => void }) =>
  b.push(orSet.add(b.state, b.ctx, elem))
const inc = (n: number) => (b: { state: any; ctx: any; push: (d: any) => void }) =>
  b.push(gCounter.increment(b.state, b.ctx, n))

function changes(log: Log<any, any, any>): ChangeDetail[] {
  const seen: ChangeDetail[] = []
  log.addEventListener('change', e => seen.push(e.detail))
  return seen
}

describe('log', () => {
  it('appends signed events whose parents are the heads, and replays them after a restart', async () => {
    const [a] = await replicas(gCounter, 1)
    const first = await a.log.append(inc(2))
    const second = await a.log.append(inc(3))
    assert.ok(first != null && second != null)
    assert.deepEqual(second.value.parents.map(String), [first.cid.toString()])
    assert.deepEqual(a.log.heads().map(String), [second.cid.toString()])
    assert.equal(a.log.value(), 5)
    assert.equal(decodeEvent(second.bytes).author, a.signer.principal)
    const reopened = await a.reopen()
    assert.equal(reopened.value(), 5)
    assert.deepEqual(reopened.heads().map(String), [second.cid.toString()])
    assert.equal(reopened.length, 2)
  })

  it('gives a fixed event a fixed CID', async () => {
    const s = await signer(200)
    const block = await signEvent(s, { log: 'doc', hlc: [1_700_000_000_000, 0], parents: [], ops: [{ a: 1 }] })
    assert.equal(block.cid.toString(), 'bafyreibk6h4tslolynecd7dqmvcj4g5ptkyeqhpbobqfyhasrm7h2tvgpi')
  })

  it('joins concurrent histories both ways into the same state, each event applied once', async () => {
    const [a, b] = await replicas(orSet, 2)
    await a.log.append(add('a1'))
    await b.log.append(add('b1'))
    await a.log.append(add('a2'))
    const seenByB = changes(b.log)
    const resultB = await b.log.join(a.log.heads())
    assert.equal(resultB.applied.length, 2)
    const again = await b.log.join(a.log.heads())
    assert.equal(again.applied.length, 0)
    assert.equal(seenByB.length, 2)
    assert.ok(seenByB.every(c => c.author === a.signer.principal && !c.local))
    await a.log.join(b.log.heads())
    assert.deepEqual(a.log.value(), b.log.value())
    assert.deepEqual(a.log.value(), ['a1', 'a2', 'b1'].sort())
    assert.equal(a.log.heads().length, 2)
    assert.deepEqual(a.log.heads().map(String), b.log.heads().map(String))
    const merged = await a.log.append(add('a3'))
    assert.equal(merged?.value.parents.length, 2)
    assert.ok(orSet.equals(await b.log.replayStored(), b.log.current()))
  })

  it('applies an atomic multi-op event as one change, or nothing when it is too large', async () => {
    const [a] = await replicas(orSet, 1)
    const seen = changes(a.log)
    await a.log.append(b => {
      add('x')(b)
      add('y')(b)
    })
    assert.equal(seen.length, 1)
    assert.deepEqual(a.log.value(), ['x', 'y'])
    const big = 'z'.repeat(40_000)
    await assert.rejects(
      a.log.append(b => {
        for (let i = 0; i < 8; i++) add(big + i)(b)
      }),
      { name: 'InvalidEventError' }
    )
    assert.deepEqual(a.log.value(), ['x', 'y'])
    assert.equal(seen.length, 1)
    assert.ok(MAX_EVENT_BYTES < 8 * 40_000)
  })

  it('rejects forged, unauthorized, foreign-log, far-future, out-of-order and cycle-shaped events, and applies none twice', async () => {
    const now = 1_000_000
    const [a, b] = await replicas(gCounter, 2, { now: () => now })
    const mallory = await signer()
    const put = async (event: object): Promise<CID> => {
      const bytes = dagCbor.encode(event)
      const cid = await blockCid(bytes)
      await a.blockstore.put(cid, bytes)
      return cid
    }
    const base = await a.log.append(inc(1))
    assert.ok(base != null)
    await b.log.join([base.cid])
    const make = async (s = a.signer, fields: Record<string, unknown> = {}) => {
      const block = await signEvent(s, {
        log: 'doc',
        hlc: [now, 5],
        parents: [base.cid],
        ops: [gCounter.encodeDelta(gCounter.increment(gCounter.empty(), { replica: s.principal, hlc: [now, 5] }, 7))],
        ...fields
      })
      return block.value
    }
    const forged = { ...(await make()), ops: [{ [a.signer.principal]: 1000 }] }
    const unauthorized = await make(mallory)
    const otherLog = await make(a.signer, { log: 'other' })
    const future = await make(a.signer, { hlc: [now + 120_000, 0] })
    const notAfterParent = await make(a.signer, { hlc: [0, 0] })
    const badOps = await make(a.signer, { ops: [{ 'not a replica!': 1 }] })
    // no cycle can be built from sha256 CIDs (a block cannot name a descendant); the shapes that could
    // fake one, a repeated parent or an identity CID (which carries its block inline), are refused
    const repeatedParent = { ...(await make()), parents: [base.cid, base.cid] }
    const inlineParent = { ...(await make()), parents: [CID.createV1(0x71, identity.digest(dagCbor.encode({ v: 1 })))] }
    const cases: Array<[object, string]> = [
      [forged, 'InvalidSignatureError'],
      [unauthorized, 'UnauthorizedEventError'],
      [otherLog, 'EventRejectedError'],
      [future, 'ClockDriftError'],
      [notAfterParent, 'EventRejectedError'],
      [badOps, 'EventRejectedError'],
      [repeatedParent, 'InvalidEventError'],
      [inlineParent, 'InvalidEventError']
    ]
    for (const [event, name] of cases) {
      const result = await b.log.join([await put(event)])
      assert.equal(result.applied.length, 0, `${name}: ${JSON.stringify(result)}`)
      assert.deepEqual(
        result.rejected.map(r => r.error.name),
        [name]
      )
    }
    assert.equal(b.log.value(), 1)
    assert.equal(b.log.length, 1)
  })

  it("rejects an authorized author's op that claims another writer's future dots; that writer's later adds still apply", async () => {
    const [mallory, bob, carol] = await replicas(orSet, 3)
    await bob.log.append(add('x'))
    await mallory.log.join(bob.log.heads())
    await carol.log.join(bob.log.heads())
    // signed by mallory, who may write: a remove whose context covers bob's next 1000 adds
    const forgedContext = new Causal<SetStore>(
      new DotMap(),
      new CausalContext(new VectorClock([[bob.signer.principal, 1000]]))
    )
    const hlc = mallory.init.clock.tick()
    const forged = await signEvent(mallory.signer, {
      log: 'doc',
      hlc,
      parents: mallory.log.heads(),
      ops: [orSet.encodeDelta(forgedContext)]
    })
    await mallory.blockstore.put(forged.cid, forged.bytes)
    const result = await carol.log.join([forged.cid])
    assert.deepEqual(result.applied, [])
    assert.equal(result.rejected[0]?.error.name, 'EventRejectedError')
    assert.match(result.rejected[0].error.message, /claims the dot .*:2, which its author had not seen/)
    assert.equal(await carol.blockstore.has(forged.cid), false, 'a rejected event is not stored')

    await bob.log.append(add('y'))
    await carol.log.join(bob.log.heads())
    assert.deepEqual(carol.log.value(), ['x', 'y'])
    // mallory's honest remove of what she saw is accepted
    await mallory.log.append(b => b.push(orSet.remove(b.state, b.ctx, 'x')))
    assert.equal((await carol.log.join(mallory.log.heads())).applied.length, 1)
    assert.deepEqual(carol.log.value(), ['y'])
  })

  it('refuses an op that decodes but cannot be merged, alone: the events fetched with it apply', async () => {
    // a counter whose merge throws on one delta, standing in for any op a type decodes but cannot apply
    const fragile: typeof gCounter = {
      ...gCounter,
      merge: (into, delta) => {
        if (sumEntries(delta) === 13) throw new TypeError('cannot apply this one')
        return gCounter.merge(into, delta)
      }
    }
    let now = 1_000_000
    const [mallory, bob, carol] = await replicas(fragile, 3, { now: () => now })
    const first = await bob.log.append(inc(1))
    now += 10
    const hlc = mallory.init.clock.tick()
    const delta = gCounter.increment(gCounter.empty(), { replica: mallory.signer.principal, hlc }, 13)
    const poison = await signEvent(mallory.signer, { log: 'doc', hlc, parents: [], ops: [gCounter.encodeDelta(delta)] })
    await mallory.blockstore.put(poison.cid, poison.bytes)
    now += 10
    const second = await bob.log.append(inc(1))
    assert.ok(first != null && second != null)

    const result = await carol.log.join([second.cid, poison.cid])
    assert.deepEqual(result.applied.map(String), [first.cid, second.cid].map(String))
    assert.deepEqual(
      result.rejected.map(r => [r.cid.toString(), r.error.name]),
      [[poison.cid.toString(), 'EventRejectedError']]
    )
    assert.equal(carol.log.value(), 2)
    assert.deepEqual(carol.log.heads().map(String), [second.cid.toString()])
    assert.equal((await carol.reopen()).value(), 2)
  })

  it('leaves an event whose parents never arrive unapplied, and applies it when they do', async () => {
    const [a, b] = await replicas(gCounter, 2)
    const first = await a.log.append(inc(1))
    const second = await a.log.append(inc(2))
    assert.ok(first != null && second != null)
    await a.blockstore.delete(first.cid)
    const result = await b.log.join([second.cid])
    assert.deepEqual(result.missing.map(String), [first.cid.toString()])
    assert.equal(result.applied.length, 0)
    assert.equal(b.log.value(), 0)
    await a.blockstore.put(first.cid, first.bytes)
    const retry = await b.log.join([second.cid])
    assert.equal(retry.applied.length, 2)
    assert.equal(b.log.value(), 3)
  })

  it('refuses a block that is not an event in place of a parent, and the event above it for good', async () => {
    const [a, b] = await replicas(gCounter, 2)
    const junk = dagCbor.encode({ hello: 'world' })
    const junkCid = await blockCid(junk)
    await a.blockstore.put(junkCid, junk)
    const block = await signEvent(a.signer, {
      log: 'doc',
      hlc: [Date.now(), 0],
      parents: [junkCid],
      ops: [gCounter.encodeDelta(gCounter.increment(gCounter.empty(), { replica: a.signer.principal, hlc: [1, 0] }, 1))]
    })
    await a.blockstore.put(block.cid, block.bytes)
    const result = await b.log.join([block.cid])
    assert.deepEqual(result.rejected.map(r => r.error.name).sort(), ['EventRejectedError', 'InvalidEventError'])
    assert.equal(b.log.value(), 0)
    // neither can ever apply: a later join reports both without fetching either
    const fetched: string[] = []
    const get = b.blockstore.get.bind(b.blockstore)
    b.blockstore.get = (cid, options) => {
      fetched.push(cid.toString())
      return get(cid, options)
    }
    const again = await b.log.join([block.cid])
    assert.deepEqual(again.rejected.map(r => r.error.name).sort(), ['EventRejectedError'])
    assert.deepEqual(fetched, [])
  })

  it('survives a crash between writing a block and updating its heads', async () => {
    const [a] = await replicas(orSet, 1)
    await a.log.append(add('kept'))
    const put = a.datastore.put.bind(a.datastore)
    a.datastore.put = async () => {
      throw new Error('disk full')
    }
    await assert.rejects(a.log.append(add('lost')), /disk full/)
    assert.deepEqual(a.log.value(), ['kept'])
    a.datastore.put = put
    const reopened = await a.reopen()
    assert.deepEqual(reopened.value(), ['kept'])
    const after = await reopened.append(add('next'))
    assert.equal(after?.value.parents.length, 1)
    assert.deepEqual(reopened.value(), ['kept', 'next'])
  })

  it('compacts history behind a snapshot; a new replica joins from the snapshot and converges', async () => {
    const [a, b, c] = await replicas(orSet, 3)
    for (let i = 0; i < 20; i++) await a.log.append(add(`a${i}`))
    for (let i = 0; i < 5; i++) await a.log.append(b => b.push(orSet.remove(b.state, b.ctx, `a${i}`)))
    await b.log.join(a.log.heads())
    const { snapshot, removed } = await a.log.compact()
    assert.equal(removed, 25)
    assert.equal(a.log.length, 0)
    let blocks = 0
    for await (const _ of a.blockstore.getAll()) blocks++
    assert.equal(blocks, 1, 'only the snapshot is left')
    const reopened = await a.reopen()
    assert.deepEqual(reopened.value(), b.log.value())
    // history is gone at a; b still holds it, so take b out of c's reach to show the snapshot suffices
    c.blockstore.peers.splice(0, c.blockstore.peers.length, a.blockstore)
    await reopened.append(add('after'))
    const first = await c.log.join(reopened.heads())
    assert.ok(first.missing.length > 0)
    assert.equal(await c.log.adoptSnapshot(snapshot), true)
    const second = await c.log.join(reopened.heads())
    assert.equal(second.applied.length, 1)
    assert.deepEqual(c.log.value(), reopened.value())
    // b, which has the whole history, and c, from the snapshot, agree after exchanging heads
    await b.log.join(c.log.heads())
    await c.log.join(b.log.heads())
    assert.deepEqual(b.log.value(), c.log.value())
    const restarted = await c.reopen()
    assert.deepEqual(restarted.value(), b.log.value())
  })

  it('refuses a snapshot from an author without authority over the log', async () => {
    const [a, c] = await replicas(orSet, 2)
    await a.log.append(add('x'))
    const { snapshot } = await a.log.compact()
    c.init.authorize = allowList(new Set([c.signer.principal]))
    const strict = await Log.open(c.init)
    await assert.rejects(strict.adoptSnapshot(snapshot), { name: 'UnauthorizedEventError' })
    assert.deepEqual(strict.value(), [])
  })

  it('refuses a corrupt heads record instead of guessing', async () => {
    const [a] = await replicas(gCounter, 1)
    await a.datastore.put(
      new Key('/cyberspace/log/doc'),
      dagCbor.encode({ v: 1, type: 'g-counter', heads: ['x'], snapshots: [] })
    )
    await assert.rejects(a.reopen(), { name: 'InvalidEventError' })
  })
})
