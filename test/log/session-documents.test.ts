/**
 * Agent session documents in the state service: written only with the agent's own key (the node's
 * key and other agents are refused on every replica), read by members or holders of the read tag
 * and by no one else, never public, and never carried inline on gossip. In-process nodes on the
 * memory transport; membership is a root key each node trusts for `(cyberspace member)`.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { decodeDeltaMessage, deltasTopic } from '../../protocols/deltas/codec.ts'
import { decodeHeadsMessage, encodeHeadsMessage, HEADS_PROTOCOL } from '../../protocols/heads/codec.ts'
import { decodeEvent, MAX_EVENT_BYTES } from '../../protocols/log/codec.ts'
import { orMap } from '../../src/crdt/or-map.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { readBlock } from '../../src/log/blocks.ts'
import { signEvent, signSnapshot } from '../../src/log/event.ts'
import { SESSION_PREFIX, sessionDocumentName, sessionOwner } from '../../src/log/service.ts'
import { requestOnce } from '../../src/network/rpc.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { DeltaMessage } from '../../protocols/deltas/codec.ts'
import type { HeadsAnswer } from '../../protocols/heads/codec.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { OrMapDocument } from '../../src/log/documents.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'
import type { PeerId } from '@libp2p/interface'

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

/** Makes `node` trust `root` for membership and, unless `member` is false, hold the member certificate `root` gave it. */
async function admit(node: CyberspaceNode, root: Key, member = true): Promise<void> {
  await node.spki.addAclEntry(root.id, tag('(cyberspace member)'))
  if (!member) return
  const cert = await grant(root, { kind: 'key', principal: principalFromPeerId(node.peerId) }, '(cyberspace member)', {
    propagate: false
  })
  await node.spki.addCert(cert)
}

/** An or-map event of `doc`'s log on top of its heads, signed by `signer`, and its bytes. */
async function forgedEvent(doc: OrMapDocument, signer: Signer, field: string) {
  const hlc: [number, number] = [Date.now(), 0]
  const delta = orMap.set(doc.log.current(), { replica: signer.principal, hlc }, ['fields', field], 'forged')
  return await signEvent(signer, { log: doc.name, hlc, parents: doc.heads(), ops: [orMap.encodeDelta(delta)] })
}

describe('the state service: agent session documents', function () {
  this.timeout(120_000)
  let root: Key
  let a: CyberspaceNode
  let b: CyberspaceNode
  /** Not a member; granted the read tag of the session by `a`. */
  let reader: CyberspaceNode
  /** Not a member, no grant. */
  let outsider: CyberspaceNode
  let agent: Signer
  let other: Signer
  /** b's node key, as its state service signs with it. */
  let bSigner: Signer
  let name: string

  before(async () => {
    root = await key()
    const options = { stateOptions: { syncInterval: 1000 } }
    a = await memoryNode(options)
    const bKey = await generateKeyPair('Ed25519')
    bSigner = await seedSigner(bKey.raw)
    b = await memoryNode({ ...options, privateKey: bKey, bootstrap: [a.multiaddrs()[0]] })
    reader = await memoryNode({ ...options, bootstrap: [a.multiaddrs()[0]] })
    outsider = await memoryNode({ ...options, bootstrap: [a.multiaddrs()[0]] })
    await waitUntil('every node connected to the first', () => a.peers().length === 3)
    await admit(a, root)
    await admit(b, root)
    await admit(reader, root, false)
    await admit(outsider, root, false)
    agent = await seedSigner(randomBytes(32))
    other = await seedSigner(randomBytes(32))
    name = sessionDocumentName(agent.principal)
    await a.spki.addAclEntry(principalFromPeerId(reader.peerId), tag(`(cyberspace (log (read ${name})))`))
  })

  after(async () => {
    await Promise.all([a, b, reader, outsider].map(async n => await n.stop()))
  })

  it('names one document per agent, in the characters a document name may hold', () => {
    assert.ok(name.startsWith(SESSION_PREFIX))
    assert.match(name, /^[a-z0-9][a-z0-9._-]{0,63}$/)
    assert.equal(sessionOwner(name), agent.principal)
    assert.equal(sessionOwner('tasks'), undefined)
    assert.equal(sessionOwner(`${SESSION_PREFIX}bnotakey`), null)
    // the same key spelled with its last character changed names nobody (or another key), never this agent
    const respelled = name.slice(0, -1) + (name.endsWith('a') ? 'b' : 'a')
    assert.notEqual(sessionOwner(respelled), agent.principal)
  })

  it('is written only with the agent key: the node key and another agent are refused where they write', async () => {
    const plain = await a.state.open(name, 'or-map')
    await assert.rejects(plain.set(['fields', 'x'], 1), { name: 'UnauthorizedEventError' })
    assert.deepEqual(plain.value(), {})
    await assert.rejects(a.state.open(name, 'or-map', { signer: other }), { name: 'UnauthorizedEventError' })
    await assert.rejects(a.state.open(name, 'or-map', { public: true }), { name: 'SessionDocumentError' })
    await assert.rejects(a.state.open(`${SESSION_PREFIX}bnotakey`, 'or-map'), { name: 'SessionDocumentError' })
    assert.equal(a.state.isPublic(name), false)

    const doc = await a.state.open(name, 'or-map', { signer: agent })
    assert.equal(doc, plain, 'the same document, now signed by the agent')
    await doc.set(['fields', 'plan'], 'draft')
    const head = await readBlock(a.helia.blockstore, doc.heads()[0], { maxBytes: MAX_EVENT_BYTES, offline: true })
    assert.equal(decodeEvent(head).author, agent.principal)
    const copy = await b.state.open(name, 'or-map')
    await waitUntil('the member has the write', () => copy.get(['fields', 'plan']) === 'draft')
  })

  it("refuses on every replica, for good, events and snapshots signed by a node's key or another agent", async () => {
    const host = await a.state.open(name, 'or-map')
    const follower = await b.state.open(name, 'or-map')
    await waitUntil('both replicas hold the same heads', () => String(follower.heads()) === String(host.heads()))
    const forgers: Array<[string, Signer]> = [
      ['another agent', other],
      ["b's node key", bSigner],
      ['a stranger key', await seedSigner(randomBytes(32))]
    ]
    for (const [who, signer] of forgers) {
      for (const doc of [host, follower]) {
        const before = doc.value()
        const block = await forgedEvent(doc, signer, who)
        const first = await doc.log.join([block.cid], { blocks: new Map([[block.cid.toString(), block.bytes]]) })
        assert.equal(first.applied.length, 0, who)
        assert.deepEqual(
          first.rejected.map(r => r.error.name),
          ['UnauthorizedEventError'],
          who
        )
        // remembered for good: offered again, even without the block, it is refused at once
        const again = await doc.log.join([block.cid])
        assert.deepEqual(
          again.rejected.map(r => r.error.name),
          ['UnauthorizedEventError']
        )
        assert.deepEqual(doc.value(), before)
      }
    }
    // a snapshot signed by a node or another agent is refused where it would be taken, for good
    for (const signer of [bSigner, other]) {
      const head = (await forgedEvent(follower, signer, 'snap')).cid
      const now = Date.now()
      const snapshot = await signSnapshot(signer, {
        log: name,
        hlc: [now, 1],
        heads: [head],
        covered: { [signer.principal]: [now, 0] },
        state: orMap.encodeState(orMap.empty())
      })
      await a.helia.blockstore.put(snapshot.cid, snapshot.bytes)
      await assert.rejects(host.log.adoptSnapshot(snapshot.cid, { base: true }), { name: 'UnauthorizedEventError' })
      await assert.rejects(host.log.adoptSnapshot(snapshot.cid), { name: 'UnauthorizedEventError' })
    }
    assert.deepEqual(host.log.snapshots(), [])
  })

  it('a node that held the agent key goes back to its own and writes nothing more', async () => {
    const doc = await b.state.open(name, 'or-map', { signer: agent })
    await doc.set(['fields', 'moved'], 'to b')
    const back = await b.state.open(name, 'or-map', { signer: null })
    assert.equal(back.log.author, principalFromPeerId(b.peerId))
    await assert.rejects(back.set(['fields', 'owned'], 'by b'), { name: 'UnauthorizedEventError' })
    const host = await a.state.open(name, 'or-map')
    await waitUntil('the agent write reached a', () => host.get(['fields', 'moved']) === 'to b')
    assert.equal(host.get(['fields', 'owned']), undefined)
  })

  it('serves the session to members and to holders of its read tag only, and never puts it inline on gossip', async () => {
    const gossip: DeltaMessage[] = []
    outsider.pubsub.addEventListener('gossipsub:message', e => {
      if (e.detail.msg.topic === deltasTopic('default')) gossip.push(decodeDeltaMessage(e.detail.msg.data))
    })
    const host = await a.state.open(name, 'or-map', { signer: agent })
    const stolen = await outsider.state.open(name, 'or-map')
    for (let i = 0; i < 3; i++) await host.set(['fields', `step-${i}`], i)
    // a private document's announcements are paced: the latest event's is sent (its past holds the others)
    const latest = host.heads()[0].toString()
    await waitUntil('the outsider saw the announcement of the latest event', () =>
      gossip.some(m => m.log === name && m.cid.toString() === latest)
    )
    assert.ok(
      gossip.filter(m => m.log === name).every(m => m.block === null),
      'by CID only'
    )

    // the outsider: no heads, no blocks, nothing replicated
    const heads = await ask(outsider, a.peerId, {
      v: 1,
      type: 'heads',
      logs: [{ log: name, heads: [], snapshot: null }]
    })
    assert.deepEqual(heads.type === 'heads' ? heads.logs : heads, [])
    const want = await ask(outsider, a.peerId, { v: 1, type: 'want', log: name, cids: host.heads(), depth: 0 })
    assert.equal(want.type === 'error' ? want.name : want.type, 'UnauthorizedReadError')
    await outsider.state.sync(a.peerId)
    assert.deepEqual(stolen.value(), {})

    // a member: heads and blocks
    const memberHeads = await ask(b, a.peerId, {
      v: 1,
      type: 'heads',
      logs: [{ log: name, heads: [], snapshot: null }]
    })
    assert.deepEqual(memberHeads.type === 'heads' ? memberHeads.logs.map(l => l.heads.map(String)) : memberHeads, [
      host.heads().map(String)
    ])
    const blocks = await ask(b, a.peerId, { v: 1, type: 'want', log: name, cids: host.heads(), depth: 0 })
    assert.equal(blocks.type, 'blocks')
    assert.equal(blocks.type === 'blocks' ? blocks.blocks.length : 0, 1)

    // not a member, but granted the read tag: reads and replicates
    const granted = await reader.state.open(name, 'or-map')
    await reader.state.sync(a.peerId)
    await waitUntil('the reader replicated the session', () => granted.get(['fields', 'step-2']) === 2)
  })
})
