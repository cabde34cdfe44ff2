/**
 * Agent sessions across nodes: an agent records its state on its host, checkpoints, records more;
 * members that follow its session resume it with the same state and replay only the events after
 * the checkpoint — whether they held every event, or only the checkpoint (the history behind it
 * compacted). A follower that was offline while the agent wrote catches up by heads sync alone.
 * In-process nodes on the memory transport; membership is a root key each node trusts.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { Sessions, sessionDocumentName } from '../../src/actor/session.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { AgentSession, SessionState } from '../../src/actor/session.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { OrMapDocument } from '../../src/log/documents.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'
import type { PrivateKey } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

const stateOptions = { syncInterval: 1000 }

/** A member node: it trusts `root` for membership and holds the member certificate `root` gave it. */
async function member(
  root: Key,
  options: { bootstrap?: CyberspaceNode; privateKey?: PrivateKey; stores?: Stores } = {}
): Promise<CyberspaceNode> {
  const node = await memoryNode({
    stateOptions,
    ...(options.bootstrap != null ? { bootstrap: [options.bootstrap.multiaddrs()[0]] } : {}),
    ...(options.privateKey != null ? { privateKey: options.privateKey } : {}),
    ...(options.stores ?? {})
  })
  await node.spki.addAclEntry(root.id, tag('(cyberspace member)'))
  const cert = await grant(root, { kind: 'key', principal: principalFromPeerId(node.peerId) }, '(cyberspace member)', {
    propagate: false
  })
  await node.spki.addCert(cert)
  return node
}

interface Stores {
  blockstore: MemoryBlockstore
  datastore: MemoryDatastore
}

/** The copy of the agent's session `node` holds, if any. */
async function copyOf(node: CyberspaceNode, agent: PrincipalId): Promise<OrMapDocument | undefined> {
  return (await node.state.find(sessionDocumentName(agent))) as OrMapDocument | undefined
}

/** Whether `node` holds every head of the host's copy (and the checkpoint `checkpoint` as its base). */
async function caughtUp(
  node: CyberspaceNode,
  agent: PrincipalId,
  host: AgentSession,
  checkpoint?: CID
): Promise<boolean> {
  const copy = await copyOf(node, agent)
  if (copy == null || String(copy.heads()) !== String(host.document.heads())) return false
  return checkpoint == null || copy.log.snapshots().some(s => s.equals(checkpoint))
}

/** Records `n` changes, each setting field `step` and `f<i>`, and marking a message from `from` handled. */
async function recordSteps(session: AgentSession, from: PrincipalId, start: number, n: number): Promise<CID[]> {
  const cids: CID[] = []
  for (let i = start; i < start + n; i++) {
    const { cid } = await session.record(
      { step: i, [`f${i}`]: { at: i, notes: `note ${i}` } },
      { handled: { from, id: `m-${i}` } }
    )
    cids.push(cid)
  }
  return cids
}

describe('agent sessions: checkpoint, resume, replication to successors', function () {
  this.timeout(180_000)
  let root: Key
  const nodes: CyberspaceNode[] = []
  let sender: PrincipalId

  before(async () => {
    root = await key()
    sender = (await seedSigner(randomBytes(32))).principal
  })

  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(async n => await n.stop().catch(() => {})))
  })

  it('record, checkpoint, record more: a follower and a member that has only the checkpoint both resume the same state, replaying only what followed', async () => {
    const host = await member(root)
    const follower = await member(root, { bootstrap: host })
    nodes.push(host, follower)
    await waitUntil('connected', () => follower.peers().length === 1)
    const agent = await seedSigner(randomBytes(32))

    await new Sessions(follower.state).follow(agent.principal, { peers: [host.peerId] })
    // each record resolves once the follower holds it too
    const session = await new Sessions(host.state, { replicas: 1 }).open(agent)
    session.replicateTo([follower.peerId])
    const before = await recordSteps(session, sender, 0, 5)
    const { snapshot: checkpoint, removed } = await session.checkpoint()
    assert.equal(removed, 5, 'the host compacts the history behind its checkpoint')
    await recordSteps(session, sender, 5, 3)
    await session.record({ f1: undefined }) // a deletion replays too
    const expected: SessionState = session.state()
    assert.equal(expected.seq, 9)
    assert.equal(expected.fields.step, 7)
    assert.equal(expected.fields.f1, undefined)
    assert.equal(expected.handled[sender], 'm-7')
    assert.equal(session.eventsSinceCheckpoint(), 4)

    await waitUntil('the follower holds every event and took the checkpoint', () =>
      caughtUp(follower, agent.principal, session, checkpoint)
    )
    // the follower dropped the history behind the checkpoint, as the host did
    for (const cid of before) assert.equal(await follower.helia.blockstore.has(cid), false)

    // a third member starts following only now: the history behind the checkpoint is gone
    // everywhere, so it can join only from the checkpoint
    const late = await member(root, { bootstrap: host })
    nodes.push(late)
    await waitUntil('connected', () => late.peers().length >= 1)
    await new Sessions(late.state).follow(agent.principal, { peers: [host.peerId] })
    await waitUntil('the late member caught up from the checkpoint', () =>
      caughtUp(late, agent.principal, session, checkpoint)
    )

    // the host dies; both resume the agent with its key
    await host.stop()
    for (const node of [follower, late]) {
      const resumed = await new Sessions(node.state).resume(agent.principal, agent)
      assert.deepEqual(resumed.state, expected)
      assert.equal(resumed.replayed, 4, 'the events after the checkpoint')
      assert.equal(resumed.checkpoint?.toString(), checkpoint.toString())
      assert.equal(resumed.session.lastHandled(sender), 'm-7')
    }
    // and the agent goes on writing where it left off; the other member, connected, follows
    await late.libp2p.dial(follower.multiaddrs()[0])
    const resumed = await new Sessions(follower.state, { replicas: 1 }).open(agent)
    resumed.replicateTo([late.peerId])
    const next = await resumed.record({ step: 8 })
    assert.equal(next.seq, 10)
    await waitUntil(
      'the other member has the write made after the move',
      async () => (await copyOf(late, agent.principal))?.get(['fields', 'step']) === 8
    )
  })

  it('a follower that was offline while the agent wrote catches up by heads sync, and resumes from its disk', async () => {
    const host = await member(root)
    const followerKey = await generateKeyPair('Ed25519')
    const stores: Stores = { blockstore: new MemoryBlockstore(), datastore: new MemoryDatastore() }
    let follower = await member(root, { bootstrap: host, privateKey: followerKey, stores })
    nodes.push(host)
    await waitUntil('connected', () => follower.peers().length === 1)
    const agent = await seedSigner(randomBytes(32))
    await new Sessions(follower.state).follow(agent.principal, { peers: [host.peerId] })
    // the follower goes offline while the agent writes: records do not wait for it
    const session = await new Sessions(host.state, { replicas: 0 }).open(agent)
    await recordSteps(session, sender, 0, 3)
    await waitUntil('the follower has the first writes', () => caughtUp(follower, agent.principal, session))

    // offline: the agent writes, checkpoints and writes more meanwhile
    await follower.stop()
    await recordSteps(session, sender, 3, 4)
    const { snapshot: checkpoint } = await session.checkpoint()
    await recordSteps(session, sender, 7, 2)
    const expected = session.state()

    // back, on the same disk: it reopens the session it follows and syncs heads with the host on
    // connecting (nothing is announced on gossip any more)
    follower = await member(root, { bootstrap: host, privateKey: followerKey, stores })
    nodes.push(follower)
    await waitUntil('the follower reopened the session', () =>
      follower.state.names().includes(sessionDocumentName(agent.principal))
    )
    await waitUntil('the follower caught up', () => caughtUp(follower, agent.principal, session, checkpoint))
    assert.deepEqual(new Sessions(follower.state).following(), [agent.principal])

    // the host dies, the follower restarts once more and resumes from its disk alone
    await host.stop()
    await follower.stop()
    nodes.splice(nodes.indexOf(follower), 1)
    const alone = await memoryNode({ privateKey: followerKey, ...stores, stateOptions })
    nodes.push(alone)
    const resumed = await new Sessions(alone.state).resume(agent.principal, agent)
    assert.deepEqual(resumed.state, expected)
    assert.equal(resumed.replayed, 2)
    assert.equal(resumed.checkpoint?.toString(), checkpoint.toString())
  })

  it('an acknowledged record is on disk: the host restarted on its stores holds it', async () => {
    const hostKey = await generateKeyPair('Ed25519')
    const stores: Stores = { blockstore: new MemoryBlockstore(), datastore: new MemoryDatastore() }
    const host = await member(root, { privateKey: hostKey, stores })
    const agent = await seedSigner(randomBytes(32))
    const session = await new Sessions(host.state, { checkpointEvery: 4, replicas: 0 }).open(agent)
    await recordSteps(session, sender, 0, 6)
    const expected = session.state()
    await host.stop()
    const again = await memoryNode({ privateKey: hostKey, ...stores, stateOptions })
    nodes.push(again)
    const resumed = await new Sessions(again.state).resume(agent.principal, agent)
    assert.deepEqual(resumed.state, expected)
    assert.equal(resumed.replayed, 2, 'an automatic checkpoint after the 4th record')
  })

  describe('on one node', () => {
    let node: CyberspaceNode
    let sessions: Sessions

    beforeEach(async () => {
      node = await member(root)
      nodes.push(node)
      sessions = new Sessions(node.state, {
        replicas: 0,
        checkpointEvery: 5,
        maxFields: 4,
        maxValueBytes: 1024,
        maxStateBytes: 4096,
        maxSenders: 2
      })
    })

    it('takes a checkpoint every N events on its own', async () => {
      const session = await sessions.open(await seedSigner(randomBytes(32)))
      const checkpoints: CID[] = []
      for (let i = 0; i < 12; i++) {
        const result = await session.record({ step: i })
        assert.equal(result.seq, i + 1)
        if (result.checkpoint != null) checkpoints.push(result.checkpoint)
        assert.ok(session.eventsSinceCheckpoint() < 5)
      }
      assert.equal(checkpoints.length, 2)
      assert.equal(session.eventsSinceCheckpoint(), 2)
      assert.deepEqual(session.document.log.snapshots().map(String), [checkpoints[1].toString()])
    })

    it('refuses changes past its bounds with named errors, and writes nothing for them', async () => {
      const session = await sessions.open(await seedSigner(randomBytes(32)))
      await session.record({ a: 1, b: 2, c: 3, d: 4 })
      await assert.rejects(session.record({ e: 5 }), { name: 'SessionLimitError', limit: 'maxFields' })
      await session.record({ d: undefined, e: 5 }) // a deletion makes room in the same record
      await assert.rejects(session.record({ a: 'x'.repeat(2000) }), {
        name: 'SessionLimitError',
        limit: 'maxValueBytes'
      })
      await session.record({ a: 'x'.repeat(900), b: 'y'.repeat(900), c: 'z'.repeat(900) })
      await assert.rejects(session.record({ e: 'w'.repeat(900) }), {
        name: 'SessionLimitError',
        limit: 'maxStateBytes'
      })
      await assert.rejects(session.record({ '': 1 }), { name: 'InvalidSessionChangeError' })
      await assert.rejects(session.record({ ['n'.repeat(129)]: 1 }), { name: 'InvalidSessionChangeError' })
      await assert.rejects(session.record({ f: () => 1 }), { name: 'InvalidSessionChangeError' })
      await assert.rejects(session.record({}, { handled: { from: 'nobody' as PrincipalId, id: 'm' } }), {
        name: 'InvalidSessionChangeError'
      })
      await assert.rejects(session.record({}, { handled: { from: sender, id: '' } }), {
        name: 'InvalidSessionChangeError'
      })
      const state = session.state()
      assert.equal(state.seq, 3, 'only the accepted records were written')
      assert.deepEqual(Object.keys(state.fields).sort(), ['a', 'b', 'c', 'e'])
    })

    it('keeps the last handled message of the most recent senders, forgetting the one unheard-of longest', async () => {
      const session = await sessions.open(await seedSigner(randomBytes(32)))
      const senders = await Promise.all([1, 2, 3].map(async () => (await seedSigner(randomBytes(32))).principal))
      await session.record({}, { handled: { from: senders[0], id: 'a-1' } })
      await session.record({}, { handled: { from: senders[1], id: 'b-1' } })
      await session.record({}, { handled: { from: senders[0], id: 'a-2' } })
      await session.record({}, { handled: { from: senders[2], id: 'c-1' } })
      assert.deepEqual(session.state().handled, { [senders[0]]: 'a-2', [senders[2]]: 'c-1' })
      assert.equal(session.lastHandled(senders[1]), undefined)
    })

    it('resume needs a copy of the session here and the agent key', async () => {
      const agent = await seedSigner(randomBytes(32))
      await assert.rejects(sessions.resume(agent.principal, agent), { name: 'SessionNotFoundError' })
      await sessions.follow(agent.principal) // an empty copy: nothing to resume yet
      await assert.rejects(sessions.resume(agent.principal, agent), { name: 'SessionNotFoundError' })
      const other = await seedSigner(randomBytes(32))
      await assert.rejects(sessions.resume(agent.principal, other), { name: 'SessionSignerError' })
      assert.equal(await sessions.unfollow(agent.principal), true)
      assert.deepEqual(sessions.following(), [])
    })
  })
})
