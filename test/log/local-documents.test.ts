/**
 * Local documents in the state service: a document opened with `{ local: true }` is never
 * announced, never offered or answered in a heads exchange, never served and never joined from a
 * peer — even a peer that holds a replicated document of the same name — and it is reopened local
 * after a restart. In-process nodes on the memory transport that grant each other every log right,
 * so any other document replicates between them.
 */
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { decodeDeltaMessage, deltasTopic } from '../../protocols/deltas/codec.ts'
import { decodeHeadsMessage, encodeHeadsMessage, HEADS_PROTOCOL } from '../../protocols/heads/codec.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { AGENT_DIRECTORY } from '../../src/log/service.ts'
import { requestOnce } from '../../src/network/rpc.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { tag } from '../spki/fixtures.ts'
import type { DeltaMessage } from '../../protocols/deltas/codec.ts'
import type { HeadsAnswer } from '../../protocols/heads/codec.ts'
import type { OpLogDocument } from '../../src/log/documents.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { PrivateKey, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

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
    { maxBytes: 2 * 1024 * 1024, signal: AbortSignal.timeout(10_000) }
  )
  return decodeHeadsMessage(bytes) as HeadsAnswer
}

const bodies = (doc: OpLogDocument): unknown[] => doc.entries().map(e => e.body)

describe('the state service: local documents stay on their node', function () {
  this.timeout(120_000)
  let privateKey: PrivateKey
  const stores = { datastore: new MemoryDatastore(), blockstore: new MemoryBlockstore() }
  let a: CyberspaceNode
  let b: CyberspaceNode
  /** Announcements that reached b. */
  const heard: DeltaMessage[] = []
  /** Whether b heard an announcement of one of these events. */
  const announced = (cids: CID[]): boolean => heard.some(m => cids.some(c => c.equals(m.cid)))

  /** Appends to a's `shared` until b hears one of those events announced. */
  async function untilHeard(shared: OpLogDocument): Promise<void> {
    const cids: CID[] = []
    await waitUntil('b heard a’s announcements', async () => {
      const appended = await shared.append(['shared from a'])
      if (appended != null) cids.push(appended.cid)
      return announced(cids)
    })
  }

  /** Each node may write and read every log at the other. */
  async function trust(x: CyberspaceNode, y: CyberspaceNode): Promise<void> {
    await x.spki.addAclEntry(principalFromPeerId(y.peerId), tag('(cyberspace (log))'))
    await y.spki.addAclEntry(principalFromPeerId(x.peerId), tag('(cyberspace (log))'))
  }

  /** Both ways, twice: whatever either would offer the other has been offered. */
  async function exchange(): Promise<void> {
    for (let i = 0; i < 2; i++) {
      await a.state.sync(b.peerId)
      await b.state.sync(a.peerId)
    }
  }

  before(async () => {
    privateKey = await generateKeyPair('Ed25519')
    const options = { stateOptions: { syncInterval: 1000 } }
    b = await memoryNode(options)
    a = await memoryNode({ ...options, ...stores, privateKey, bootstrap: [b.multiaddrs()[0]] })
    await waitUntil('a connected to b', () => a.peers().length === 1)
    await trust(a, b)
    b.pubsub.addEventListener('gossipsub:message', e => {
      if (e.detail.msg.topic !== deltasTopic('default')) return
      heard.push(decodeDeltaMessage(e.detail.msg.data))
    })
  })

  after(async () => {
    await Promise.all([a, b].map(async n => await n.stop()))
  })

  it('refuses to make a document both local and public, or a members’ document local', async () => {
    await assert.rejects(a.state.open('both', 'op-log', { local: true, public: true }), { name: 'LocalDocumentError' })
    await assert.rejects(a.state.open(AGENT_DIRECTORY, 'or-map', { local: true }), { name: 'LocalDocumentError' })
    await a.state.open('scratch', 'op-log', { local: true })
    await assert.rejects(a.state.open('scratch', 'op-log', { public: true }), { name: 'LocalDocumentError' })
    assert.equal(a.state.isPublic('scratch'), false)
    assert.equal(a.state.isLocal('scratch'), true)
    assert.equal(await a.state.delete('scratch'), true)
  })

  it('is not replicated, either way, even when the other node opens the same name', async () => {
    const local = await a.state.open('notes', 'op-log', { local: true })
    const theirs = await b.state.open('notes', 'op-log')
    assert.equal(a.state.isLocal('notes'), true)
    assert.equal(b.state.isLocal('notes'), false)
    await local.append(['a’s own note'])
    await theirs.append(['b’s note'])
    // a document that is not local goes across in the same rounds
    const sharedA = await a.state.open('shared', 'op-log')
    const sharedB = await b.state.open('shared', 'op-log')
    const notes = local.heads()
    await untilHeard(sharedA)
    await exchange()
    await waitUntil('the shared document reached b', () => sharedB.size === sharedA.size)
    await exchange()
    assert.deepEqual(bodies(local), ['a’s own note'])
    assert.deepEqual(bodies(theirs), ['b’s note'])
    assert.equal(announced(notes), false, 'never announced')
  })

  it('is never offered in heads nor served, to a peer that may read every log', async () => {
    const local = await a.state.open('notes', 'op-log')
    const heads = await ask(b, a.peerId, { v: 1, type: 'heads', logs: [{ log: 'notes', heads: [], snapshot: null }] })
    assert.deepEqual(heads.type === 'heads' ? heads.logs : heads, [])
    const want = await ask(b, a.peerId, { v: 1, type: 'want', log: 'notes', cids: local.heads(), depth: 0 })
    assert.equal(want.type === 'error' ? want.name : want.type, 'UnauthorizedReadError')
    // asked to hold b's heads of it: refused, and nothing joined
    await assert.rejects(b.state.hold('notes', a.peerId), {
      name: 'RequestRefusedError',
      reason: 'UnauthorizedReadError'
    })
    assert.deepEqual(bodies(local), ['a’s own note'])
    // nor does this node ask peers to hold it
    await assert.rejects(a.state.hold('notes', b.peerId), { name: 'LocalDocumentError' })
    await assert.rejects(a.state.replicate('notes', { replicas: 1, peers: [b.peerId] }), { name: 'LocalDocumentError' })
  })

  it('is reopened local after a restart, and still kept apart', async () => {
    await a.stop()
    a = await memoryNode({
      stateOptions: { syncInterval: 1000 },
      ...stores,
      privateKey,
      bootstrap: [b.multiaddrs()[0]]
    })
    await waitUntil('a reopened its stored documents', () => a.state.names().includes('notes'))
    assert.equal(a.state.isLocal('notes'), true)
    assert.equal(a.state.isLocal('shared'), false)
    const local = (await a.state.open('notes', 'op-log')) as OpLogDocument
    assert.deepEqual(bodies(local), ['a’s own note'])
    await waitUntil('a connected to b again', () => a.peers().length === 1)
    const theirs = await b.state.open('notes', 'op-log')
    await theirs.append(['b’s second note'])
    await local.append(['a’s second note'])
    const notes = local.heads()
    await untilHeard(await a.state.open('shared', 'op-log'))
    await exchange()
    assert.deepEqual(bodies(local), ['a’s own note', 'a’s second note'])
    assert.deepEqual(bodies(theirs), ['b’s note', 'b’s second note'])
    assert.equal(announced(notes), false, 'never announced')

    // what kept them apart is the flag alone: opened not local, the two replicate
    await a.state.open('notes', 'op-log', { local: false })
    assert.equal(a.state.isLocal('notes'), false)
    await exchange()
    await waitUntil('both hold all four notes', () => local.size === 4 && theirs.size === 4)
    assert.deepEqual(local.entries(), theirs.entries())
  })
})
