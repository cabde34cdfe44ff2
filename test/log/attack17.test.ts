import assert from 'node:assert/strict'
import { memory } from '@libp2p/memory'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { signEvent, verifySigned } from '../../src/log/event.ts'
import { encodeEvent, EVENT_DOMAIN } from '../../protocols/log/codec.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { tag } from '../spki/fixtures.ts'
import type { CyberspaceNode } from '../../src/node.ts'

/**
 * Issue 17 attacks on the log's pushes, pacing and encode-once path. Anti-entropy is off (one
 * round an hour) and the follower hears no gossip, so whatever reaches it came by push.
 */
describe('log attacks (issue 17): pushes, pacing, events encoded once', function () {
  this.timeout(60_000)
  const quiet = { syncInterval: 3_600_000 }
  let writer: CyberspaceNode
  let deaf: CyberspaceNode

  before(async () => {
    // a slow link: a push stays in flight for a few hundred ms, while local writes take far less
    writer = await memoryNode({ stateOptions: quiet, transports: [memory({ latency: 100 })] })
    deaf = await memoryNode({
      bootstrap: [writer.multiaddrs()[0]],
      transports: [memory({ latency: 100 })],
      stateOptions: { ...quiet, acceptGossip: () => false }
    })
    await waitUntil('connected', () => writer.peers().length === 1, 10_000)
    await deaf.spki.addAclEntry(principalFromPeerId(writer.peerId), tag('(cyberspace (log))'))
  })

  after(async () => {
    await Promise.all([writer, deaf].map(async n => await n.stop()))
  })

  it('an event written after a follower lost its read grant is never pushed to it (not even by a push queued before)', async () => {
    const reader = principalFromPeerId(deaf.peerId)
    const copies = []
    // a race: three rounds, so a leak shows even when one round's push in flight fails instead
    for (let round = 0; round < 3; round++) {
      const name = `secret${round}`
      const doc = await writer.state.open(name, 'or-map')
      const copy = await deaf.state.open(name, 'or-map')
      copies.push(copy)
      await writer.spki.addAclEntry(reader, tag(`(cyberspace (log (read ${name})))`))
      await deaf.state.sync(writer.peerId)
      await doc.set('warm', 0)
      await waitUntil('the follower got a first push', () => copy.get('warm') === 0, 10_000)
      // a push in flight (slow link), then a write that queues the next push while the grant holds
      await doc.set('a', 1)
      await doc.set('b', 2)
      await new Promise(resolve => setTimeout(resolve, 20))
      // the grant is removed, then something is written the follower may no longer read
      assert.equal(await writer.spki.removeAclEntry(reader), true)
      await doc.set('after-revocation', 3)
      assert.equal(doc.get('after-revocation'), 3)
    }
    // the pushes queued before would land within a few round trips
    await new Promise(resolve => setTimeout(resolve, 3000))
    for (const copy of copies) {
      assert.equal(copy.get('after-revocation'), undefined, 'an event written after the revocation was pushed')
    }
  })

  it('a single write to a public document, then silence, reaches a follower that hears no gossip (its first event is pushed too)', async () => {
    // another node that hears gossip, so the writer's announcement goes out inline to someone
    const listener = await memoryNode({ bootstrap: [writer.multiaddrs()[0]], stateOptions: quiet })
    try {
      const topic = '/cyberspace/default/deltas/1'
      await waitUntil(
        'the writer sees a subscriber',
        () => writer.libp2p.services.pubsub.getSubscribers(topic).length > 0,
        10_000
      )
      const doc = await writer.state.open('public-single', 'or-map', { public: true })
      const copy = await deaf.state.open('public-single', 'or-map', { public: true })
      await deaf.state.sync(writer.peerId)
      // a quiet spell, so the next write is announced at once (inline) rather than paced
      await new Promise(resolve => setTimeout(resolve, 100))
      await doc.set('only', 1)
      await waitUntil('the follower holds the single write', () => copy.get('only') === 1, 5_000)
    } finally {
      await listener.stop()
    }
  })

  it("an own event's bytes, encoded once with the signature spliced in, are exactly dag-cbor of the event, and verify", async () => {
    const s = await seedSigner(crypto.getRandomValues(new Uint8Array(32)))
    const parent = CID.createV1(dagCbor.code, await sha256.digest(Uint8Array.of(1)))
    const parent2 = CID.createV1(dagCbor.code, await sha256.digest(Uint8Array.of(2)))
    const cases = [
      { log: 'x', hlc: [0, 0] as [number, number], ops: [], parents: [] },
      {
        log: 'y'.repeat(64),
        hlc: [2 ** 40, 7] as [number, number],
        ops: [{ sig: new Uint8Array(70), author: 'z' }],
        parents: [parent, parent2]
      }
    ]
    for (const fields of cases) {
      const block = await signEvent(s, fields as Parameters<typeof signEvent>[1])
      assert.deepEqual(Uint8Array.from(block.bytes), Uint8Array.from(encodeEvent(block.value)))
      assert.deepEqual(dagCbor.decode(block.bytes), block.value)
      await verifySigned(EVENT_DOMAIN, block.value)
    }
  })
})
