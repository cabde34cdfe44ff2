import assert from 'node:assert/strict'
import { HEADS_HOLD_PROTOCOL } from '../../protocols/heads/codec.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { tag } from '../spki/fixtures.ts'
import type { CyberspaceNode } from '../../src/node.ts'

/**
 * A private document's new events are pushed (`hold`, the events inline) to its followers: peers
 * that hold it and may read it, found in a heads exchange. Periodic anti-entropy is off here (one
 * round an hour), so what arrives after the first exchange came by push or by gossip.
 */
describe('the state service: pushing new events to followers', function () {
  this.timeout(60_000)
  const quiet = { syncInterval: 3_600_000 }
  let writer: CyberspaceNode
  let deaf: CyberspaceNode
  let closed: CyberspaceNode

  before(async () => {
    writer = await memoryNode({ stateOptions: quiet })
    // hears no gossip at all: only a push brings it the writer's events
    deaf = await memoryNode({
      bootstrap: [writer.multiaddrs()[0]],
      stateOptions: { ...quiet, acceptGossip: () => false }
    })
    // lets the writer write, but not read: it refuses the writer's pushes
    closed = await memoryNode({ bootstrap: [writer.multiaddrs()[0]], stateOptions: quiet })
    await waitUntil('both connected to the writer', () => writer.peers().length === 2)
    const w = principalFromPeerId(writer.peerId)
    await deaf.spki.addAclEntry(w, tag('(cyberspace (log))'))
    await closed.spki.addAclEntry(w, tag('(cyberspace (log (append notes)))'))
    await writer.spki.addAclEntry(principalFromPeerId(deaf.peerId), tag('(cyberspace (log (read notes)))'))
    await writer.spki.addAclEntry(principalFromPeerId(closed.peerId), tag('(cyberspace (log (read notes)))'))
  })

  after(async () => {
    await Promise.all([writer, deaf, closed].map(async n => await n.stop()))
  })

  it('a follower that hears no gossip gets every new event of a private document, by push', async () => {
    const doc = await writer.state.open('notes', 'or-map')
    const copy = await deaf.state.open('notes', 'or-map')
    // the exchange that makes each the other's follower (the writer may read it at the follower)
    await deaf.state.sync(writer.peerId)
    for (let i = 0; i < 20; i++) await doc.set(`n${i}`, i)
    await waitUntil('the deaf follower holds all 20 writes', () => copy.get('n19') === 19, 10_000)
    assert.deepEqual(copy.value(), doc.value())
    assert.deepEqual(copy.heads().map(String), doc.heads().map(String))
  })

  it('pushes to a follower reuse a stream: 20 pushes, at most 2 streams opened', async () => {
    const doc = await writer.state.open('ledger', 'or-map')
    const copy = await deaf.state.open('ledger', 'or-map')
    await writer.spki.addAclEntry(principalFromPeerId(deaf.peerId), tag('(cyberspace (log (read ledger)))'))
    await deaf.state.sync(writer.peerId)
    const libp2p = writer.libp2p
    const dialProtocol = libp2p.dialProtocol.bind(libp2p)
    let streams = 0
    libp2p.dialProtocol = async (peer, protocols, options) => {
      if ([protocols].flat().some(p => p.startsWith(HEADS_HOLD_PROTOCOL))) streams++
      return await dialProtocol(peer, protocols, options)
    }
    try {
      // each write waits until the follower holds it (it hears no gossip): one push each
      for (let i = 0; i < 20; i++) {
        await doc.set(`e${i}`, i)
        await waitUntil(`the follower holds write ${i}`, () => copy.get(`e${i}`) === i, 10_000)
      }
      assert.ok(streams <= 2, `${streams} hold streams opened for 20 pushes`)
    } finally {
      libp2p.dialProtocol = dialProtocol
    }
  })

  it('a follower that refuses pushes (the writer may not read there) still replicates, by gossip and want', async () => {
    const doc = await writer.state.open('notes', 'or-map')
    const copy = await closed.state.open('notes', 'or-map')
    await closed.state.sync(writer.peerId)
    for (let i = 20; i < 30; i++) await doc.set(`n${i}`, i)
    await waitUntil('the closed follower holds the new writes', () => copy.get('n29') === 29, 10_000)
    // it fetched the history behind them as well
    assert.equal(copy.get('n0'), 0)
  })

  it('a follower whose read grant is removed gets no more pushes', async () => {
    const doc = await writer.state.open('diary', 'or-map')
    const copy = await deaf.state.open('diary', 'or-map')
    const reader = principalFromPeerId(deaf.peerId)
    await writer.spki.addAclEntry(reader, tag('(cyberspace (log (read diary)))'))
    await deaf.state.sync(writer.peerId)
    await doc.set('before', 1)
    await waitUntil('the follower got the write made while it could read', () => copy.get('before') === 1, 10_000)
    assert.equal(await writer.spki.removeAclEntry(reader), true)
    await doc.set('after', 2)
    // a push would land within milliseconds (as the first did); the deaf node hears no gossip
    await new Promise(resolve => setTimeout(resolve, 1000))
    assert.equal(copy.get('after'), undefined)
    assert.equal(doc.get('after'), 2)
  })
})
