/**
 * Replicated acknowledgements of agent sessions between in-process member nodes (memory transport):
 * a record with one replica resolves only once the follower holds it, so the host may be stopped
 * right after and the follower resumes with the change; with the only follower unreachable, or not
 * following, the record fails with ReplicationTimeoutError saying so. The `hold` request behind it
 * (`/cyberspace/heads/2.1.0`) is refused to a peer that may not read the session before any work,
 * whether or not the answerer holds the document, and bounded per peer.
 *
 * Gossip is dropped at the followers and periodic heads rounds are an hour apart, so a follower
 * gets an event only through `hold` (or the exchange when a document is opened).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import * as dagCbor from '@ipld/dag-cbor'
import { lpStream } from '@libp2p/utils'
import { Sessions, sessionDocumentName } from '../../src/actor/session.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import {
  decodeHeadsMessage,
  encodeHeadsMessage,
  HEADS_HOLD_PROTOCOL,
  HEADS_PROTOCOL
} from '../../protocols/heads/codec.ts'
import { blockCid } from '../../protocols/log/codec.ts'
import { handleRequests, requestOnce, reusable, unhandleRequests } from '../../src/network/rpc.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { HeadsAnswer, HoldMessage } from '../../protocols/heads/codec.ts'
import type { OrMapDocument } from '../../src/log/documents.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'
import type { PeerId } from '@libp2p/interface'

/** Heads rounds an hour apart: only `hold` (and the exchange on open) moves events. */
const quiet = { syncInterval: 3_600_000 }

async function node(
  root: Key,
  options: { member?: boolean; bootstrap?: CyberspaceNode; gossip?: boolean; timeout?: number } = {}
): Promise<CyberspaceNode> {
  const n = await memoryNode({
    stateOptions: {
      ...quiet,
      ...(options.gossip === false ? { acceptGossip: () => false } : {}),
      ...(options.timeout != null ? { timeout: options.timeout } : {})
    },
    ...(options.bootstrap != null ? { bootstrap: [options.bootstrap.multiaddrs()[0]] } : {})
  })
  await n.spki.addAclEntry(root.id, tag('(cyberspace member)'))
  if (options.member !== false) {
    const cert = await grant(root, { kind: 'key', principal: principalFromPeerId(n.peerId) }, '(cyberspace member)', {
      propagate: false
    })
    await n.spki.addCert(cert)
  }
  return n
}

async function hold(
  from: CyberspaceNode,
  to: PeerId,
  message: HoldMessage,
  protocol = HEADS_HOLD_PROTOCOL
): Promise<HeadsAnswer> {
  const bytes = await requestOnce(
    from.libp2p.dialProtocol.bind(from.libp2p),
    to,
    protocol,
    encodeHeadsMessage(message),
    {
      maxBytes: 2 * 1024 * 1024,
      signal: AbortSignal.timeout(20_000)
    }
  )
  return decodeHeadsMessage(bytes) as HeadsAnswer
}

const answerName = (a: HeadsAnswer): string => (a.type === 'error' ? a.name : a.type)

/** Replaces `node`'s answers on the heads protocols: counts the requests of each type made to it, and answers none. */
async function stallHeads(node: CyberspaceNode): Promise<Map<string, number>> {
  const asked = new Map<string, number>()
  for (const protocol of [HEADS_PROTOCOL, HEADS_HOLD_PROTOCOL]) {
    // under `<id>` and `<id>/many`, and the streams its own handler still serves are ended: a
    // peer's StreamPool would send its next request on one of those
    await unhandleRequests(node.libp2p, protocol)
    for (const connection of node.libp2p.getConnections()) {
      for (const stream of [...connection.streams]) {
        if (stream.protocol === protocol || stream.protocol === reusable(protocol)) stream.abort(new Error('replaced'))
      }
    }
    await handleRequests(node.libp2p, protocol, async stream => {
      // read the request, answer nothing: the asker's own deadline ends it
      try {
        const request = decodeHeadsMessage(
          (await lpStream(stream).read({ signal: AbortSignal.timeout(30_000) })).subarray()
        )
        asked.set(request.type, (asked.get(request.type) ?? 0) + 1)
      } catch {}
    })
  }
  return asked
}

describe('agent sessions: a record is acknowledged once followers hold it', function () {
  this.timeout(180_000)
  let root: Key
  const nodes: CyberspaceNode[] = []

  before(async () => {
    root = await key()
  })

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async n => await n.stop().catch(() => {})))
  })

  it('with one replica, record resolves once the follower holds the event; the host stopped right after, the follower resumes with it', async () => {
    const host = await node(root)
    const follower = await node(root, { bootstrap: host, gossip: false })
    nodes.push(host, follower)
    await waitUntil('connected', () => follower.peers().length === 1)
    const agent = await seedSigner(randomBytes(32))
    const sender = (await seedSigner(randomBytes(32))).principal
    await new Sessions(follower.state).follow(agent.principal, { peers: [host.peerId] })
    const copy = (await follower.state.find(sessionDocumentName(agent.principal))) as OrMapDocument

    const session = await new Sessions(host.state, { replicas: 1 }).open(agent)
    session.replicateTo([follower.peerId])
    assert.deepEqual(session.followers().map(String), [follower.peerId.toString()])

    // without a replica the record is on the host alone when it resolves: nothing else carries it here
    const alone = await session.record({ plan: 'draft' }, { replicas: 0 })
    assert.deepEqual(alone.replicas, [])
    assert.equal(copy.log.has(alone.cid), false)

    // with one, the follower holds it — and what came before — on disk when it resolves
    const held = await session.record({ plan: 'final', step: 2 }, { handled: { from: sender, id: 'm-2' } })
    assert.deepEqual(held.replicas.map(String), [follower.peerId.toString()])
    assert.equal(copy.log.has(held.cid), true)
    assert.equal(copy.log.has(alone.cid), true)
    assert.equal(await follower.helia.blockstore.has(held.cid), true)
    const expected = session.state()

    // the host dies at once; the follower resumes the agent with the change
    await host.stop()
    const resumed = await new Sessions(follower.state).resume(agent.principal, agent)
    assert.deepEqual(resumed.state, expected)
    assert.equal(resumed.state.fields.plan, 'final')
    assert.equal(resumed.session.lastHandled(sender), 'm-2')
  })

  it('concurrent records: each resolves only once the follower holds it, with at most one push per record', async () => {
    const host = await node(root)
    const follower = await node(root, { bootstrap: host, gossip: false })
    nodes.push(host, follower)
    await waitUntil('connected', () => follower.peers().length === 1)
    const agent = await seedSigner(randomBytes(32))
    await new Sessions(follower.state).follow(agent.principal, { peers: [host.peerId] })
    const copy = (await follower.state.find(sessionDocumentName(agent.principal))) as OrMapDocument
    const session = await new Sessions(host.state, { replicas: 1, checkpointEvery: 1000 }).open(agent)
    session.replicateTo([follower.peerId])
    // count the hold streams the host opens (each push takes one, or reuses an idle one)
    let holds = 0
    const dial = host.libp2p.dialProtocol.bind(host.libp2p)
    host.libp2p.dialProtocol = (async (peer: any, protocols: any, options: any) => {
      if ([protocols].flat().includes(HEADS_HOLD_PROTOCOL)) holds++
      return await dial(peer, protocols, options)
    }) as typeof host.libp2p.dialProtocol

    const n = 20
    const results = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const result = await session.record({ [`f${i}`]: i })
        // checked as each resolves, before the others may have
        assert.equal(copy.log.has(result.cid), true, `record ${i} resolved before the follower held it`)
        return result
      })
    )
    assert.deepEqual(
      results.map(r => r.seq).sort((a, b) => a - b),
      Array.from({ length: n }, (_, i) => i + 1)
    )
    // how many pushes depends on how an append's time compares with a round trip's (the Replicator's
    // own test shows the sharing exactly); never more than one per record
    assert.ok(holds >= 1 && holds <= n, `${holds} hold streams for ${n} concurrent records`)
    assert.deepEqual(copy.value(), session.document.value())
  })

  it('a checkpoint is pushed with the heads: once followers confirm, they have taken it as their base', async () => {
    const host = await node(root)
    const follower = await node(root, { bootstrap: host, gossip: false })
    nodes.push(host, follower)
    await waitUntil('connected', () => follower.peers().length === 1)
    const agent = await seedSigner(randomBytes(32))
    await new Sessions(follower.state).follow(agent.principal, { peers: [host.peerId] })
    const copy = (await follower.state.find(sessionDocumentName(agent.principal))) as OrMapDocument
    const session = await new Sessions(host.state, { replicas: 1 }).open(agent)
    session.replicateTo([follower.peerId])
    for (let i = 0; i < 3; i++) await session.record({ step: i })
    const { snapshot } = await session.checkpoint()
    // the follower holds every event already: the hold after the checkpoint is answered once it took it
    assert.deepEqual((await session.replicate()).map(String), [follower.peerId.toString()])
    assert.ok(
      copy.log.snapshots().some(s => s.equals(snapshot)),
      'the follower took the checkpoint'
    )
    assert.equal(copy.log.eventsSinceSnapshot(), 0, 'and dropped the history behind it')
    // a record after it lands on top of the checkpoint there too
    const next = await session.record({ step: 3 })
    assert.equal(copy.log.has(next.cid), true)
    assert.equal(copy.log.eventsSinceSnapshot(), 1)
  })

  it('with the only follower unreachable or not following, record fails with ReplicationTimeoutError naming it; with too few followers, nothing is written', async () => {
    const host = await node(root)
    const follower = await node(root, { bootstrap: host, gossip: false })
    const stranger = await node(root, { bootstrap: host, gossip: false })
    nodes.push(host, follower, stranger)
    await waitUntil('connected', () => host.peers().length === 2)
    const agent = await seedSigner(randomBytes(32))
    const session = await new Sessions(host.state, { replicas: 1, replicationTimeout: 1500 }).open(agent)

    // no follower named, or fewer than asked: refused before anything is written
    await assert.rejects(session.record({ x: 1 }), { name: 'NotEnoughReplicasError', asked: 1, peers: 0 })
    await assert.rejects(session.record({ x: 1 }, { replicas: 2, followers: [follower.peerId] }), {
      name: 'NotEnoughReplicasError',
      asked: 2,
      peers: 1
    })
    assert.equal(session.state().seq, 0)

    // a member that does not follow the session holds none of it: named, with why
    session.replicateTo([stranger.peerId])
    await assert.rejects(session.record({ x: 1 }), (err: any) => {
      assert.equal(err.name, 'ReplicationTimeoutError')
      assert.equal(err.confirmed, 0)
      assert.equal(err.asked, 1)
      assert.equal(err.timeout, 1500)
      assert.match(err.errors[stranger.peerId.toString()], /holds 0 of the 1 heads asked/)
      assert.match(err.message, /0 of the 1 replicas asked for within 1500 ms \(written here only\)/)
      return true
    })
    assert.equal(session.state().seq, 1, 'the record is on the host')

    // the only follower is gone: unreachable
    await follower.stop()
    session.replicateTo([follower.peerId])
    await assert.rejects(session.record({ x: 2 }), (err: any) => {
      assert.equal(err.name, 'ReplicationTimeoutError')
      assert.equal(err.confirmed, 0)
      assert.deepEqual(Object.keys(err.errors), [follower.peerId.toString()])
      assert.match(err.message, new RegExp(follower.peerId.toString()))
      return true
    })

    // once a member follows it, the same session's next wait succeeds and covers the earlier records
    await new Sessions(stranger.state).follow(agent.principal)
    const copy = (await stranger.state.find(sessionDocumentName(agent.principal))) as OrMapDocument
    session.replicateTo([stranger.peerId])
    assert.deepEqual((await session.replicate()).map(String), [stranger.peerId.toString()])
    assert.equal(copy.get(['fields', 'x']), 2)
  })

  it('hold is refused to a peer that may not read the session before any work, whether or not the answerer holds it', async () => {
    const follower = await node(root)
    const outsider = await node(root, { member: false, bootstrap: follower })
    const member = await node(root, { bootstrap: follower })
    nodes.push(follower, outsider, member)
    await waitUntil('connected', () => follower.peers().length === 2)
    const agent = await seedSigner(randomBytes(32))
    const name = sessionDocumentName(agent.principal)
    await new Sessions(follower.state).follow(agent.principal)
    const copy = (await follower.state.find(name)) as OrMapDocument
    // the outsider and the member count every stream the follower opens to them, and answer none
    const outsiderStreams = await stallHeads(outsider)

    // a made-up head, its "block", and a snapshot: none may be fetched, stored or taken
    const block = dagCbor.encode({ made: 'up' })
    const made = await blockCid(block)
    const snapshot = await blockCid(dagCbor.encode({ snapshot: 'made up' }))
    const ask = (log: string): HoldMessage => ({ v: 1, type: 'hold', log, heads: [made], snapshot, blocks: [block] })
    const followed = await hold(outsider, follower.peerId, ask(name))
    const other = sessionDocumentName((await seedSigner(randomBytes(32))).principal)
    const notHeld = await hold(outsider, follower.peerId, ask(other))
    assert.equal(answerName(followed), 'UnauthorizedReadError')
    assert.equal(answerName(notHeld), 'UnauthorizedReadError')
    assert.equal(
      followed.type === 'error' ? followed.message.replace(name, '<doc>') : '',
      notHeld.type === 'error' ? notHeld.message.replace(other, '<doc>') : ''
    )
    assert.equal(outsiderStreams.get('want'), undefined, 'the follower fetched nothing from it')
    assert.equal(copy.log.has(made), false)
    assert.equal(await follower.helia.blockstore.has(made), false)
    assert.deepEqual(copy.log.snapshots(), [])

    // on 2.0.0, hold is no request at all
    assert.equal(answerName(await hold(member, follower.peerId, ask(name), HEADS_PROTOCOL)), 'InvalidHeadsMessageError')
    // a reader asking for a document the answerer does not hold: it holds none of it, and does not open it
    const none = await hold(member, follower.peerId, { ...ask(other), blocks: [] })
    assert.deepEqual(none.type === 'held' ? none.heads : none, [])
    assert.equal(follower.state.names().includes(other), false)
  })

  it('a reader gets at most 4 holds worked on at once', async () => {
    const follower = await node(root, { timeout: 3000 })
    const greedy = await node(root, { bootstrap: follower })
    nodes.push(follower, greedy)
    await waitUntil('connected', () => follower.peers().length === 1)
    const agent = await seedSigner(randomBytes(32))
    const name = sessionDocumentName(agent.principal)
    await new Sessions(follower.state).follow(agent.principal)
    // the greedy member names heads it never serves: each hold stalls in its join until the deadline
    const greedyStreams = await stallHeads(greedy)
    const asks = await Promise.all(
      Array.from({ length: 5 }, async (_, i) => {
        const head = await blockCid(dagCbor.encode({ never: i }))
        const message: HoldMessage = { v: 1, type: 'hold', log: name, heads: [head], snapshot: null, blocks: [] }
        return await hold(greedy, follower.peerId, message).catch((err: Error) => err)
      })
    )
    const names = asks.map(a => (a instanceof Error ? a.name : answerName(a)))
    assert.equal(names.filter(n => n === 'TooManyHoldsError').length, 1, names.join(', '))
    assert.ok((greedyStreams.get('want') ?? 0) >= 1, 'the others did ask it for their heads')
  })
})
