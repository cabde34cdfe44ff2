/**
 * The Replicator on its own, with pushes the test answers by hand: callers wait for the first
 * `replicas` peers to hold the document as it was when they asked, concurrent callers share
 * pushes (one in flight per peer, the next covering all that came meanwhile), a peer short of the
 * heads or failing is tried again until the deadline, and the errors name what happened.
 */
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { blockCid } from '../../protocols/log/codec.ts'
import { Replicator } from '../../src/log/replication.ts'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

interface Call {
  peer: PeerId
  heads: CID[]
  answer(held: CID[]): void
  fail(err: Error): void
}

/** A document whose heads the test sets, and pushes that wait for the test to answer them. */
function harness(): { replicator: Replicator; calls: Call[]; setHeads(h: CID[]): void; next(): Promise<Call> } {
  let heads: CID[] = []
  const calls: Call[] = []
  const waiting: Array<(c: Call) => void> = []
  const replicator = new Replicator({
    heads: () => heads,
    push: async (peer, pushed) =>
      await new Promise<CID[]>((resolve, reject) => {
        const call = { peer, heads: pushed, answer: resolve, fail: reject }
        calls.push(call)
        waiting.shift()?.(call)
      })
  })
  let taken = 0
  return {
    replicator,
    calls,
    setHeads: h => {
      heads = h
    },
    // the next push not yet handed to the test
    next: async () => {
      const i = taken++
      if (calls[i] != null) return calls[i]
      return await new Promise<Call>(resolve => waiting.push(resolve))
    }
  }
}

async function peer(): Promise<PeerId> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
}

async function cid(i: number): Promise<CID> {
  return await blockCid(dagCbor.encode({ event: i }))
}

/** Lets pending promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve))
}

describe('Replicator: replicated acknowledgements for one document', () => {
  it('concurrent callers share pushes: one in flight per peer, the next covering all that came meanwhile', async () => {
    const { replicator, calls, setHeads, next } = harness()
    const follower = await peer()
    setHeads([await cid(1)])
    const first = replicator.confirm({ replicas: 1, peers: [follower], timeout: 10_000 })
    const push1 = await next()
    assert.deepEqual(push1.heads.map(String), [(await cid(1)).toString()])
    // 19 more records while the first push is in flight: none of them pushes
    const later: Array<Promise<PeerId[]>> = []
    for (let i = 2; i <= 20; i++) {
      setHeads([await cid(i)])
      later.push(replicator.confirm({ replicas: 1, peers: [follower], timeout: 10_000 }))
    }
    await settle()
    assert.equal(calls.length, 1)
    push1.answer(push1.heads)
    assert.deepEqual((await first).map(String), [follower.toString()])
    // one push, with the heads as they are now, covers the 19
    const push2 = await next()
    assert.deepEqual(push2.heads.map(String), [(await cid(20)).toString()])
    let done = 0
    for (const p of later) void p.then(() => done++)
    await settle()
    assert.equal(done, 0, 'not before the follower confirmed')
    push2.answer(push2.heads)
    for (const p of later) assert.deepEqual((await p).map(String), [follower.toString()])
    await settle()
    assert.equal(replicator.pushes, 2)
    assert.equal(calls.length, 2)
  })

  it('a caller that came after a push started is not covered by it', async () => {
    const { replicator, setHeads, next } = harness()
    const follower = await peer()
    setHeads([await cid(1)])
    const first = replicator.confirm({ replicas: 1, peers: [follower], timeout: 10_000 })
    const push1 = await next()
    setHeads([await cid(2)])
    let secondDone = false
    const second = replicator.confirm({ replicas: 1, peers: [follower], timeout: 10_000 }).then(r => {
      secondDone = true
      return r
    })
    push1.answer(push1.heads)
    await first
    await settle()
    assert.equal(secondDone, false)
    const push2 = await next()
    push2.answer(push2.heads)
    await second
  })

  it('resolves with the first `replicas` peers that confirm; a failing one does not hold it up', async () => {
    const [a, b, c] = [await peer(), await peer(), await peer()]
    const heads = [await cid(1)]
    const r = new Replicator({
      heads: () => heads,
      push: async p => {
        if (p.equals(b)) throw Object.assign(new Error('connection refused'), { name: 'DialError' })
        return heads
      }
    })
    assert.deepEqual(
      (await r.confirm({ replicas: 2, peers: [a, b, c], timeout: 10_000 })).map(String).sort(),
      [a.toString(), c.toString()].sort()
    )
  })

  it('tries a peer short of the heads again (it did not follow the document yet) until it confirms', async () => {
    const follower = await peer()
    const heads = [await cid(1)]
    let asked = 0
    const r = new Replicator({
      heads: () => heads,
      push: async () => (++asked < 3 ? [] : heads)
    })
    assert.deepEqual((await r.confirm({ replicas: 1, peers: [follower], timeout: 10_000 })).map(String), [
      follower.toString()
    ])
    assert.equal(asked, 3)
  })

  it('fails at the deadline with how many confirmed of how many asked, and why each other peer did not', async () => {
    const [a, b] = [await peer(), await peer()]
    const heads = [await cid(1)]
    let pushes = 0
    const r = new Replicator({
      heads: () => heads,
      push: async p => {
        pushes++
        if (p.equals(a)) return heads
        throw Object.assign(new Error(`could not dial ${p.toString()}`), { name: 'DialError' })
      }
    })
    await assert.rejects(r.confirm({ replicas: 2, peers: [a, b], timeout: 400 }), (err: any) => {
      assert.equal(err.name, 'ReplicationTimeoutError')
      assert.equal(err.confirmed, 1)
      assert.equal(err.asked, 2)
      assert.equal(err.timeout, 400)
      assert.deepEqual(Object.keys(err.errors), [b.toString()])
      assert.match(err.errors[b.toString()], /^DialError: could not dial/)
      assert.match(err.message, /1 of the 2 replicas/)
      return true
    })
    // retried with backoff (50, 100, 200 ms …), not in a busy loop
    assert.ok(pushes <= 8, `${pushes} pushes`)
    const settled = pushes
    await new Promise(resolve => setTimeout(resolve, 1200))
    assert.equal(pushes, settled, 'no retry once no caller needs the peer')
  })

  it('refuses at once, pushing nothing, when fewer peers are named than replicas asked', async () => {
    const a = await peer()
    let pushes = 0
    const r = new Replicator({
      heads: () => [],
      push: async () => {
        pushes++
        return []
      }
    })
    await assert.rejects(r.confirm({ replicas: 2, peers: [a, a], timeout: 1000 }), {
      name: 'NotEnoughReplicasError',
      asked: 2,
      peers: 1
    })
    await assert.rejects(r.confirm({ replicas: 1, peers: [], timeout: 1000 }), { name: 'NotEnoughReplicasError' })
    assert.deepEqual(await r.confirm({ replicas: 0, peers: [], timeout: 1000 }), [])
    // a document with no heads has nothing to hold
    assert.deepEqual((await r.confirm({ replicas: 1, peers: [a], timeout: 1000 })).map(String), [a.toString()])
    assert.equal(pushes, 0)
  })

  it("stops waiting on the caller's signal, and rejects every waiting caller when closed", async () => {
    const { replicator, setHeads, next } = harness()
    const follower = await peer()
    setHeads([await cid(1)])
    const controller = new AbortController()
    const aborted = replicator.confirm({ replicas: 1, peers: [follower], timeout: 10_000, signal: controller.signal })
    await next()
    controller.abort(Object.assign(new Error('gave up'), { name: 'AbortError' }))
    await assert.rejects(aborted, { name: 'AbortError' })
    const closed = replicator.confirm({ replicas: 1, peers: [follower], timeout: 10_000 })
    replicator.close()
    await assert.rejects(closed, { name: 'LogClosedError' })
    await assert.rejects(replicator.confirm({ replicas: 1, peers: [follower], timeout: 10_000 }), {
      name: 'LogClosedError'
    })
  })

  it('nudge pushes once to each peer without waiting, and is not retried', async () => {
    const { replicator, calls, setHeads, next } = harness()
    const [a, b] = [await peer(), await peer()]
    setHeads([await cid(1)])
    replicator.nudge([a, b, a])
    const first = await next()
    const second = await next()
    assert.deepEqual([first.peer.toString(), second.peer.toString()].sort(), [a.toString(), b.toString()].sort())
    first.fail(new Error('gone'))
    second.answer(second.heads)
    await new Promise(resolve => setTimeout(resolve, 200))
    assert.equal(calls.length, 2)
  })
})
