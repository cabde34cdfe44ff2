/**
 * The agent directory (`cyberspace.agents`) in the state service: members append to it and read it
 * with no log tag, a node that is no member is refused both, and it is never public (never inline
 * on gossip). In-process nodes on the memory transport; membership is a root key each node trusts
 * for `(cyberspace member)`, and no node holds any `(cyberspace (log …))` grant.
 */
import assert from 'node:assert/strict'
import { decodeDeltaMessage, deltasTopic } from '../../protocols/deltas/codec.ts'
import { decodeHeadsMessage, encodeHeadsMessage, HEADS_PROTOCOL } from '../../protocols/heads/codec.ts'
import { MAX_EVENT_BYTES } from '../../protocols/log/codec.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { readBlock } from '../../src/log/blocks.ts'
import { AGENT_DIRECTORY, isMemberDocument } from '../../src/log/service.ts'
import { requestOnce } from '../../src/network/rpc.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { DeltaMessage } from '../../protocols/deltas/codec.ts'
import type { HeadsAnswer } from '../../protocols/heads/codec.ts'
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

describe('the state service: the agent directory is the members’ document', function () {
  this.timeout(120_000)
  let root: Key
  let a: CyberspaceNode
  let b: CyberspaceNode
  /** Trusts the same root, holds no member certificate and no grant. */
  let outsider: CyberspaceNode

  before(async () => {
    root = await key()
    const options = { stateOptions: { syncInterval: 1000 } }
    a = await memoryNode(options)
    b = await memoryNode({ ...options, bootstrap: [a.multiaddrs()[0]] })
    outsider = await memoryNode({ ...options, bootstrap: [a.multiaddrs()[0]] })
    await waitUntil('every node connected to the first', () => a.peers().length === 2)
    await admit(a, root)
    await admit(b, root)
    await admit(outsider, root, false)
  })

  after(async () => {
    await Promise.all([a, b, outsider].map(async n => await n.stop()))
  })

  it('is the one member document, and is never public', async () => {
    assert.equal(AGENT_DIRECTORY, 'cyberspace.agents')
    assert.equal(isMemberDocument(AGENT_DIRECTORY), true)
    assert.equal(isMemberDocument('tasks'), false)
    await assert.rejects(a.state.open(AGENT_DIRECTORY, 'or-map', { public: true }), { name: 'MemberDocumentError' })
    const doc = await a.state.open(AGENT_DIRECTORY, 'or-map')
    assert.equal(a.state.isPublic(AGENT_DIRECTORY), false)
    await assert.rejects(a.state.open(AGENT_DIRECTORY, 'or-map', { public: true }), { name: 'MemberDocumentError' })
    assert.equal(a.state.isPublic(AGENT_DIRECTORY), false)
    assert.equal(doc.type, 'or-map')
  })

  it("a member's append, with no log grant, is applied on the other members, both ways", async () => {
    const gossip: DeltaMessage[] = []
    outsider.pubsub.addEventListener('gossipsub:message', e => {
      if (e.detail.msg.topic === deltasTopic('default')) gossip.push(decodeDeltaMessage(e.detail.msg.data))
    })
    // the outsider subscribes to the topic (it opens the document) so it sees the announcements
    await outsider.state.open(AGENT_DIRECTORY, 'or-map')
    const atA = (await a.state.open(AGENT_DIRECTORY, 'or-map')) as OrMapDocument
    const atB = (await b.state.open(AGENT_DIRECTORY, 'or-map')) as OrMapDocument
    await atA.set(['z6MkAgentOne', 'host'], a.peerId.toString())
    await waitUntil('b applied a’s entry', () => atB.get(['z6MkAgentOne', 'host']) === a.peerId.toString())
    await atB.set(['z6MkAgentTwo', 'host'], b.peerId.toString())
    await waitUntil('a applied b’s entry', () => atA.get(['z6MkAgentTwo', 'host']) === b.peerId.toString())
    await waitUntil(
      'the outsider saw both announcements',
      () => gossip.filter(m => m.log === AGENT_DIRECTORY).length >= 2
    )
    assert.ok(
      gossip.filter(m => m.log === AGENT_DIRECTORY).every(m => m.block === null),
      'announced by CID only'
    )
  })

  it('a node that is no member has its event refused, and can read nothing of the directory', async () => {
    const atA = (await a.state.open(AGENT_DIRECTORY, 'or-map')) as OrMapDocument
    const before = atA.value()
    // the outsider writes its own copy (its own key may write there) and offers the event to a
    const stolen = (await outsider.state.open(AGENT_DIRECTORY, 'or-map')) as OrMapDocument
    await stolen.set(['z6MkForged', 'host'], outsider.peerId.toString())
    const head = stolen.heads()[0]
    const bytes = await readBlock(outsider.helia.blockstore, head, { maxBytes: MAX_EVENT_BYTES, offline: true })
    const joined = await atA.log.join([head], { blocks: new Map([[head.toString(), bytes]]) })
    assert.deepEqual(joined.applied, [])
    assert.deepEqual(
      joined.rejected.map(r => r.error.name),
      ['UnauthorizedEventError']
    )
    assert.match(joined.rejected[0].error.message, /no member/)
    assert.deepEqual(atA.value(), before)

    // reading: the heads answer leaves the directory out, and its blocks are refused
    const heads = await ask(outsider, a.peerId, {
      v: 1,
      type: 'heads',
      logs: [{ log: AGENT_DIRECTORY, heads: [], snapshot: null }]
    })
    assert.deepEqual(heads.type === 'heads' ? heads.logs : heads, [])
    const want = await ask(outsider, a.peerId, {
      v: 1,
      type: 'want',
      log: AGENT_DIRECTORY,
      cids: atA.heads(),
      depth: 0
    })
    assert.equal(want.type === 'error' ? want.name : want.type, 'UnauthorizedReadError')
    // an exchange started by the outsider replicates none of the members' entries to it
    await outsider.state.sync(a.peerId)
    assert.equal(stolen.get(['z6MkAgentOne', 'host']), undefined)

    // a member asking the same gets the heads and the blocks
    const memberHeads = await ask(b, a.peerId, {
      v: 1,
      type: 'heads',
      logs: [{ log: AGENT_DIRECTORY, heads: [], snapshot: null }]
    })
    assert.deepEqual(memberHeads.type === 'heads' ? memberHeads.logs.map(l => l.heads.map(String)) : memberHeads, [
      atA.heads().map(String)
    ])
    const blocks = await ask(b, a.peerId, { v: 1, type: 'want', log: AGENT_DIRECTORY, cids: atA.heads(), depth: 0 })
    assert.equal(blocks.type === 'blocks' ? blocks.blocks.length : blocks.type, 1)
  })

  it('a holder of the append tag who is no member still writes it, as before', async () => {
    const atA = (await a.state.open(AGENT_DIRECTORY, 'or-map')) as OrMapDocument
    const writer = principalFromPeerId(outsider.peerId)
    await a.spki.addAclEntry(writer, tag(`(cyberspace (log (append ${AGENT_DIRECTORY})))`))
    const stolen = (await outsider.state.open(AGENT_DIRECTORY, 'or-map')) as OrMapDocument
    await stolen.set(['z6MkGranted', 'host'], outsider.peerId.toString())
    const head = stolen.heads()[0]
    const bytes = await readBlock(outsider.helia.blockstore, head, { maxBytes: MAX_EVENT_BYTES, offline: true })
    const joined = await atA.log.join([head], {
      blocks: new Map([[head.toString(), bytes]]),
      providers: [outsider.peerId]
    })
    // its first event (refused above while it had no grant) is applied too: that refusal was not for good
    assert.equal(joined.rejected.length, 0)
    assert.equal(atA.get(['z6MkGranted', 'host']), outsider.peerId.toString())
    assert.equal(atA.get(['z6MkForged', 'host']), outsider.peerId.toString())
  })
})
