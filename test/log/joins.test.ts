import assert from 'node:assert/strict'
import { blockCid } from '../../protocols/log/codec.ts'
import { JoinScheduler, MAX_PENDING_PEERS } from '../../src/log/joins.ts'
import type { Offer } from '../../src/log/joins.ts'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

function peer(name: string): PeerId {
  return { toString: () => name, equals: (other: PeerId) => other.toString() === name } as unknown as PeerId
}

let n = 0
async function cid(): Promise<CID> {
  return await blockCid(new Uint8Array([n++, n >> 8, 1]))
}

/** A scheduler whose joins wait until released, recording which ran. */
function scheduler(limits = {}): {
  joins: JoinScheduler
  started: Array<{ doc: string; offer: Offer }>
  release: () => void
} {
  const started: Array<{ doc: string; offer: Offer }> = []
  const waiting: Array<() => void> = []
  const joins = new JoinScheduler(limits, {
    has: () => false,
    run: async (doc, offer) => {
      started.push({ doc, offer })
      await new Promise<void>(resolve => waiting.push(resolve))
    }
  })
  return { joins, started, release: () => waiting.splice(0).forEach(r => r()) }
}

describe('JoinScheduler: fair joins per document and per peer', () => {
  it('runs one join per peer per document, and merges what the peer offers meanwhile', async () => {
    const { joins, started } = scheduler()
    joins.add('tasks')
    for (let i = 0; i < 5; i++) joins.offer('tasks', peer('x'), true, [await cid()], null)
    assert.equal(started.length, 1)
    joins.offer('tasks', peer('y'), true, [await cid()], null)
    assert.equal(started.length, 2, 'another peer is not held up by x')
  })

  it('bounds one peer across documents, and peers not proven share one slot', async () => {
    const { joins, started, release } = scheduler()
    for (let d = 0; d < 6; d++) joins.add(`doc-${d}`)
    for (let d = 0; d < 6; d++) joins.offer(`doc-${d}`, peer('x'), true, [await cid()], null)
    assert.equal(started.length, 4, 'x runs at most 4 joins across documents')
    joins.add('open')
    joins.offer('open', peer('u1'), false, [await cid()], null)
    joins.offer('open', peer('u2'), false, [await cid()], null)
    assert.deepEqual(
      started.filter(s => s.doc === 'open').map(s => s.offer.provider.toString()),
      ['u1']
    )
    release()
    await new Promise(resolve => setTimeout(resolve, 10))
    assert.ok(
      started.some(s => s.doc === 'doc-4'),
      'x goes on with another document once a join ends'
    )
    assert.ok(started.some(s => s.offer.provider.toString() === 'u2'))
  })

  it('keeps a bounded queue: a proven reader displaces an unproven peer, nothing else is displaced', async () => {
    const { joins } = scheduler({ maxConcurrentJoins: 0, maxUnverifiedJoins: 0 })
    joins.add('tasks')
    for (let i = 0; i < MAX_PENDING_PEERS; i++)
      assert.equal(joins.offer('tasks', peer(`u${i}`), false, [await cid()], null), true)
    assert.equal(joins.offer('tasks', peer('late-unproven'), false, [await cid()], null), false)
    assert.equal(joins.offer('tasks', peer('reader'), true, [await cid()], null), true)
    assert.equal(joins.offer('unknown-doc', peer('reader'), true, [await cid()], null), false)
  })
})
