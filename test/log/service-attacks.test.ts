/**
 * The state service played by an attacker: an outsider that tries to read documents, an insider
 * that floods heads with made-up CIDs and stalls, events signed by made-up keys, and an author
 * whose ACL entry was just removed. In-process nodes on the memory transport.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { decodeDeltaMessage, deltasTopic, encodeDeltaMessage } from '../../protocols/deltas/codec.ts'
import { decodeHeadsMessage, encodeHeadsMessage, HEADS_PROTOCOL } from '../../protocols/heads/codec.ts'
import { blockCid } from '../../protocols/log/codec.ts'
import { Hlc } from '../../src/clock/hlc.ts'
import { crdtTypes } from '../../src/crdt/index.ts'
import { peerIdFromPrincipal, principalFromPeerId } from '../../src/crypto/principal.ts'
import { bytesToHex as toHex } from '@noble/hashes/utils.js'
import { seedSigner } from '../../src/crypto/sign.ts'
import { Log } from '../../src/log/log.ts'
import { handleRequests, requestOnce, reusable, unhandleRequests } from '../../src/network/rpc.ts'
import { lpStream } from '@libp2p/utils'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { tag } from '../spki/fixtures.ts'
import type { DeltaMessage } from '../../protocols/deltas/codec.ts'
import type { HeadsAnswer } from '../../protocols/heads/codec.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { PeerId, StreamHandler, StreamHandlerOptions } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

const SPKI_PROTOCOL = '/cyberspace/spki/1.0.0'

async function ask(
  from: CyberspaceNode,
  to: PeerId,
  message: Parameters<typeof encodeHeadsMessage>[0]
): Promise<HeadsAnswer> {
  const bytes = await requestOnce(
    from.libp2p.dialProtocol.bind(from.libp2p),
    to,
    HEADS_PROTOCOL,
    encodeHeadsMessage(message),
    {
      maxBytes: 2 * 1024 * 1024,
      signal: AbortSignal.timeout(10_000)
    }
  )
  return decodeHeadsMessage(bytes) as HeadsAnswer
}

/**
 * Serves `handler` in place of `node`'s own answers under `protocol` and its `/many` id, and ends the
 * streams its own handler still serves: a peer's pool would send its next request on one of those.
 */
async function replaceHandler(
  node: CyberspaceNode,
  protocol: string,
  handler: StreamHandler,
  options?: StreamHandlerOptions
): Promise<void> {
  await unhandleRequests(node.libp2p, protocol)
  for (const connection of node.libp2p.getConnections()) {
    // a copy: an aborted stream leaves the list
    for (const stream of [...connection.streams]) {
      if (stream.protocol === protocol || stream.protocol === reusable(protocol)) stream.abort(new Error('replaced'))
    }
  }
  await handleRequests(node.libp2p, protocol, handler, options)
}

async function madeUpCid(): Promise<CID> {
  return await blockCid(randomBytes(40))
}

/** A g-counter event of log `id`, signed by a key nobody has heard of. */
async function strangerEvent(id: string): Promise<{ cid: CID; bytes: Uint8Array; principal: string }> {
  const signer = await seedSigner(randomBytes(32))
  const log = await Log.open({
    id,
    type: crdtTypes['g-counter'],
    blockstore: new MemoryBlockstore(),
    datastore: new MemoryDatastore(),
    signer,
    clock: new Hlc(),
    authorize: async () => {}
  })
  const block = await log.append(b => b.push(crdtTypes['g-counter'].increment(b.state, b.ctx, 1)))
  assert.ok(block != null)
  return { cid: block.cid, bytes: block.bytes, principal: signer.principal }
}

describe('the state service under attack', function () {
  this.timeout(120_000)
  let a: CyberspaceNode
  let b: CyberspaceNode
  let x: CyberspaceNode

  before(async () => {
    const options = { stateOptions: { syncInterval: 1000 } }
    a = await memoryNode(options)
    b = await memoryNode({ ...options, bootstrap: [a.multiaddrs()[0]] })
    x = await memoryNode({ ...options, bootstrap: [a.multiaddrs()[0]] })
    await b.libp2p.dial(x.multiaddrs()[0])
    await waitUntil('all three connected', () => a.peers().length === 2 && b.peers().length === 2)
    // a and b trust each other with every document; x is an outsider to both
    await a.spki.addAclEntry(principalFromPeerId(b.peerId), tag('(cyberspace (log))'))
    await b.spki.addAclEntry(principalFromPeerId(a.peerId), tag('(cyberspace (log))'))
  })

  after(async () => {
    await Promise.all([a, b, x].map(async n => await n.stop()))
  })

  describe('read authority', () => {
    it('an outsider reads nothing: no heads, no blocks, no content on gossip, no bitswap', async () => {
      const gossip: DeltaMessage[] = []
      x.pubsub.addEventListener('gossipsub:message', e => {
        if (e.detail.msg.topic === deltasTopic('default')) gossip.push(decodeDeltaMessage(e.detail.msg.data))
      })
      const secret = await a.state.open('secret', 'or-map')
      const copy = await x.state.open('secret', 'or-map')
      const member = await b.state.open('secret', 'or-map')
      await secret.set('password', 'hunter2')
      await waitUntil('the member has the secret', () => member.get('password') === 'hunter2')
      await x.state.sync(a.peerId)
      assert.deepEqual(copy.value(), {}, 'the outsider replicated nothing')

      // the heads exchange leaves the document out
      const heads = await ask(x, a.peerId, {
        v: 1,
        type: 'heads',
        logs: [{ log: 'secret', heads: [], snapshot: null }]
      })
      assert.equal(heads.type, 'heads')
      assert.deepEqual(heads.type === 'heads' ? heads.logs : null, [])

      // asking for the blocks by CID is refused
      const want = await ask(x, a.peerId, { v: 1, type: 'want', depth: 0, log: 'secret', cids: secret.heads() })
      assert.equal(want.type, 'error')
      assert.equal(want.type === 'error' ? want.name : '', 'UnauthorizedReadError')

      // nor for a document a does not hold: the refusal does not tell which documents a holds
      const unheld = await ask(x, a.peerId, { v: 1, type: 'want', depth: 0, log: 'no-such-doc', cids: secret.heads() })
      assert.equal(unheld.type === 'error' ? unheld.name : unheld.type, 'UnauthorizedReadError')

      // naming a document it may read does not get it another document's blocks
      const notice = await a.state.open('notice', 'or-set', { public: true })
      await notice.add('open day on friday')
      const wrongLog = await ask(x, a.peerId, { v: 1, type: 'want', depth: 0, log: 'notice', cids: secret.heads() })
      assert.equal(wrongLog.type, 'blocks')
      assert.deepEqual(wrongLog.type === 'blocks' ? wrongLog.blocks : null, [])

      // a CID asked 64 times is read and sent once
      const repeated = await ask(x, a.peerId, {
        v: 1,
        type: 'want',
        depth: 0,
        log: 'notice',
        cids: Array.from({ length: 64 }, () => notice.heads()[0])
      })
      assert.equal(repeated.type === 'blocks' ? repeated.blocks.length : -1, 1)

      // gossip announced the secret's event by CID only, and the public one inline
      await waitUntil('x heard both announcements on gossip', () => gossip.some(m => m.log === 'notice'))
      assert.ok(gossip.some(m => m.log === 'secret'))
      for (const m of gossip) assert.equal(m.block != null, m.log === 'notice', `inline block for ${m.log}`)

      // nobody speaks bitswap
      assert.ok(!a.libp2p.getProtocols().some(p => p.includes('bitswap')))
    })

    it('a public document is served to anyone', async () => {
      const copy = await x.state.open('notice', 'or-set')
      // reading needs no grant; applying still needs trust in the author
      await x.spki.addAclEntry(principalFromPeerId(a.peerId), tag('(cyberspace (log (append notice)))'))
      await x.state.sync(a.peerId)
      await waitUntil('the outsider has the public notice', () => copy.has('open day on friday'))
      assert.equal(a.state.isPublic('notice'), true)
    })
  })

  describe('fair replication', () => {
    it('an honest update arrives while a reader floods heads of made-up CIDs and stalls', async () => {
      // x becomes a reader at b (the attack needs no more), and stalls every block request
      await b.spki.addAclEntry(principalFromPeerId(x.peerId), tag('(cyberspace (log (read votes)))'))
      let stalled = 0
      const held: Array<() => void> = []
      await replaceHandler(x, HEADS_PROTOCOL, async stream => {
        stalled++
        await new Promise<void>(resolve => held.push(resolve))
        stream.abort(new Error('done'))
      })
      try {
        const votes = await a.state.open('votes', 'g-counter')
        const copy = await b.state.open('votes', 'g-counter')
        const logs = [{ log: 'votes', heads: await Promise.all(Array.from({ length: 64 }, madeUpCid)), snapshot: null }]
        for (let i = 0; i < 256 - 1; i++) logs.push({ log: `other-${i}`, heads: [await madeUpCid()], snapshot: null })
        for (let i = 0; i < 4; i++) {
          logs[0].heads = await Promise.all(Array.from({ length: 64 }, madeUpCid))
          const answer = await ask(x, b.peerId, { v: 1, type: 'heads', logs })
          assert.equal(answer.type, 'heads')
        }
        await waitUntil('b asks x for its made-up blocks', () => stalled > 0, 10_000)
        await votes.increment(1)
        await waitUntil('b has the honest increment', () => copy.value() === 1, 20_000)
        // the attack was still in progress: x held b's block requests all along
        assert.ok(held.length > 0 && stalled > 0)
      } finally {
        for (const release of held) release()
        await unhandleRequests(x.libp2p, HEADS_PROTOCOL)
      }
    })

    it("one reader's joins are bounded across documents, not only per document", async () => {
      await b.spki.addAclEntry(principalFromPeerId(x.peerId), tag('(cyberspace (log (read)))'))
      const asked = new Set<string>()
      const held: Array<() => void> = []
      await replaceHandler(
        x,
        HEADS_PROTOCOL,
        async stream => {
          const request = decodeHeadsMessage((await lpStream(stream).read()).subarray())
          if (request.type === 'want') asked.add(request.log)
          await new Promise<void>(resolve => held.push(resolve))
          stream.abort(new Error('done'))
        },
        { maxInboundStreams: 256 }
      ) // the attacker takes every stream b opens
      try {
        const names = Array.from({ length: 8 }, (_, i) => `many-${i}`)
        for (const name of names) await b.state.open(name, 'g-counter')
        const logs = await Promise.all(
          names.map(async log => ({
            log,
            heads: await Promise.all(Array.from({ length: 8 }, madeUpCid)),
            snapshot: null
          }))
        )
        assert.equal((await ask(x, b.peerId, { v: 1, type: 'heads', logs })).type, 'heads')
        await waitUntil('b asks x for blocks of 4 documents', () => asked.size >= 4, 10_000)
        await new Promise(resolve => setTimeout(resolve, 1000))
        assert.equal(asked.size, 4, 'the other documents wait for x to finish one')
      } finally {
        for (const release of held) release()
        await unhandleRequests(x.libp2p, HEADS_PROTOCOL)
      }
    })
  })

  describe('gossip', () => {
    it('a malformed announcement is neither delivered nor forwarded', async () => {
      const garbage = new TextEncoder().encode('not an announcement')
      const seen: string[] = []
      for (const n of [a, b]) {
        n.pubsub.addEventListener('gossipsub:message', e => {
          if (e.detail.msg.topic !== deltasTopic('default')) return
          seen.push(Buffer.from(e.detail.msg.data).equals(garbage) ? 'garbage' : 'announcement')
        })
      }
      for (let i = 0; i < 3; i++) await x.pubsub.publish(deltasTopic('default'), garbage)
      // a well-formed announcement after them, for a document nobody holds: delivered
      const message = {
        v: 1 as const,
        type: 'event' as const,
        log: 'nobody-holds-this',
        cid: await madeUpCid(),
        block: null
      }
      await x.pubsub.publish(deltasTopic('default'), encodeDeltaMessage(message))
      await waitUntil(
        'a and b got the well-formed announcement',
        () => seen.filter(s => s === 'announcement').length >= 2
      )
      assert.deepEqual(
        seen.filter(s => s === 'garbage'),
        []
      )
    })
  })

  describe('proof requests', () => {
    it('16 events signed by made-up keys cause no DHT walk and no dial, and resending them asks nobody', async () => {
      // public, so b takes the forged events inline from gossip (for a private one it would fetch
      // them from x with a want: the same checks follow)
      const doc = await b.state.open('guarded', 'g-counter', { public: true })
      // every DHT lookup b makes, by its target: a walk for a made-up key's peer would show here
      const targets: string[] = []
      const routing = b.libp2p.peerRouting
      const findPeer = routing.findPeer.bind(routing)
      routing.findPeer = async (...args) => {
        targets.push(args[0].toString())
        return await findPeer(...args)
      }
      const closest = b.dht.getClosestPeers.bind(b.dht)
      b.dht.getClosestPeers = (...args) => {
        targets.push(toHex(args[0]))
        return closest(...args)
      }
      const connections = new Set<string>()
      b.libp2p.addEventListener('connection:open', e => connections.add(e.detail.remotePeer.toString()))
      // count the proof requests x is asked, and refuse them all
      await x.libp2p.unhandle(SPKI_PROTOCOL)
      let proofRequests = 0
      await x.libp2p.handle(SPKI_PROTOCOL, async stream => {
        proofRequests++
        stream.abort(new Error('no proofs here'))
      })
      const asked = new Set<string>()
      const authorizeOrProve = b.spki.authorizeOrProve.bind(b.spki)
      b.spki.authorizeOrProve = async (principal, t, options) => {
        asked.add(principal)
        return await authorizeOrProve(principal, t, options)
      }
      try {
        const events = await Promise.all(Array.from({ length: 16 }, async () => await strangerEvent('guarded')))
        const publish = async (): Promise<void> => {
          for (const e of events) {
            const message = { v: 1 as const, type: 'event' as const, log: 'guarded', cid: e.cid, block: e.bytes }
            await x.pubsub.publish(deltasTopic('default'), encodeDeltaMessage(message))
          }
        }
        await publish()
        await waitUntil('b checked all 16 authors', () => events.every(e => asked.has(e.principal)), 60_000)
        const afterFirst = proofRequests
        assert.ok(afterFirst <= 16)
        asked.clear()
        await publish()
        await waitUntil('b checked all 16 authors again', () => events.every(e => asked.has(e.principal)), 60_000)
        assert.equal(proofRequests, afterFirst, 'remembered refusals: no proof request the second time')
        const strangers = events.map(e => peerIdFromPrincipal(e.principal as PrincipalId))
        const strangerTargets = new Set(strangers.flatMap(p => [p.toString(), toHex(p.toMultihash().bytes)]))
        assert.deepEqual(
          targets.filter(t => strangerTargets.has(t)),
          [],
          'no DHT walk for a made-up key'
        )
        connections.delete(a.peerId.toString())
        connections.delete(x.peerId.toString())
        assert.deepEqual([...connections], [], 'no dial to a made-up peer')
        assert.equal(doc.value(), 0)
      } finally {
        b.spki.authorizeOrProve = authorizeOrProve
        routing.findPeer = findPeer
        b.dht.getClosestPeers = closest
      }
    })
  })

  describe('withdrawn trust', () => {
    it('an event from an author whose ACL entry was just removed is refused by the next check, and accepted again once re-granted', async () => {
      const doc = await a.state.open('ledger', 'g-counter')
      const copy = await b.state.open('ledger', 'g-counter')
      await doc.increment(1)
      await waitUntil('b applied the first write', () => copy.value() === 1)
      const author = principalFromPeerId(a.peerId)
      await b.spki.removeAclEntry(author)
      const refusals: string[] = []
      const authorizeOrProve = b.spki.authorizeOrProve.bind(b.spki)
      b.spki.authorizeOrProve = async (principal, t, options) => {
        try {
          return await authorizeOrProve(principal, t, options)
        } catch (err) {
          if (principal === author) refusals.push((err as Error).name)
          throw err
        }
      }
      try {
        await doc.increment(1)
        await waitUntil('b checked the second write and refused it', () => refusals.length > 0, 20_000)
        assert.equal(copy.value(), 1)
        await b.spki.addAclEntry(author, tag('(cyberspace (log))'))
        await waitUntil('b applied the second write once re-granted', () => copy.value() === 2, 20_000)
      } finally {
        b.spki.authorizeOrProve = authorizeOrProve
      }
    })
  })
})
