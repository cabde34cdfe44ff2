/**
 * Document rules in the state service, on op-log documents: a rule decides each append (this
 * node's own included) from the event's author and entries in place of the append tag, members
 * read and replicate the documents, and a refusal the rule marks permanent refuses the event for
 * good. Agents write from a node with their own keys (a signer per append). In-process nodes on
 * the memory transport; membership is a root key each node trusts for `(cyberspace member)`, and
 * no node holds any `(cyberspace (log …))` grant.
 */
import assert from 'node:assert/strict'
import { decodeDeltaMessage, deltasTopic } from '../../protocols/deltas/codec.ts'
import { decodeHeadsMessage, encodeHeadsMessage, HEADS_PROTOCOL } from '../../protocols/heads/codec.ts'
import { MAX_EVENT_BYTES } from '../../protocols/log/codec.ts'
import { opLogEntries } from '../../src/crdt/index.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { readBlock } from '../../src/log/blocks.ts'
import { UnauthorizedEventError } from '../../src/log/errors.ts'
import { AGENT_DIRECTORY } from '../../src/log/service.ts'
import { requestOnce } from '../../src/network/rpc.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { DeltaMessage } from '../../protocols/deltas/codec.ts'
import type { HeadsAnswer } from '../../protocols/heads/codec.ts'
import type { OpLogEntry } from '../../src/crdt/index.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { OpLogDocument } from '../../src/log/documents.ts'
import type { DocumentRule } from '../../src/log/service.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'
import type { PeerId } from '@libp2p/interface'

const PREFIX = 'board.'
const DOC = 'board.release'

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

/** Makes `node` trust `root` for membership and, unless `member` is false, hold the member certificate `root` gave it. */
async function admit(node: CyberspaceNode, root: Key, member = true): Promise<void> {
  await node.spki.addAclEntry(root.id, tag('(cyberspace member)'))
  if (!member) return
  const cert = await grant(root, { kind: 'key', principal: principalFromPeerId(node.peerId) }, '(cyberspace member)', {
    propagate: false
  })
  await node.spki.addCert(cert)
}

/** What a rule saw: the author and entries of each append it was asked about. */
interface Asked {
  author: PrincipalId
  entries: OpLogEntry[]
}

/** A rule that refuses, for good, any event with an entry whose body says `{ deny: true }`. */
function denyRule(asked: Asked[]): DocumentRule {
  return {
    readers: 'members',
    authorizeAppend: async (_name, author, deltas) => {
      const entries = opLogEntries(deltas)
      asked.push({ author, entries })
      if (entries.some(e => (e.body as { deny?: unknown } | null)?.deny === true)) {
        throw new UnauthorizedEventError(`${author} wrote an entry the rule denies`, { permanent: true })
      }
    }
  }
}

const bodies = (doc: OpLogDocument): unknown[] => doc.entries().map(e => e.body)

describe('the state service: document rules decide appends by what they write', function () {
  this.timeout(120_000)
  let root: Key
  let a: CyberspaceNode
  let b: CyberspaceNode
  /** Trusts the same root, holds no member certificate and no grant; has no rule. */
  let outsider: CyberspaceNode
  const askedA: Asked[] = []
  const askedB: Asked[] = []
  let agentX: Signer
  let agentY: Signer

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
    a.state.addRule(PREFIX, denyRule(askedA))
    b.state.addRule(PREFIX, denyRule(askedB))
    agentX = await seedSigner((await key()).secret)
    agentY = await seedSigner((await key()).secret)
  })

  after(async () => {
    await Promise.all([a, b, outsider].map(async n => await n.stop()))
  })

  it('refuses prefixes that are malformed, taken, or would cover sessions or the agent directory', () => {
    const rule = denyRule([])
    for (const prefix of [
      '',
      'Board.',
      'session.',
      'session.b5ua',
      'sess',
      AGENT_DIRECTORY,
      'cyberspace',
      'c',
      PREFIX
    ]) {
      assert.throws(() => a.state.addRule(prefix, rule), { name: 'InvalidRuleError' }, prefix)
    }
    a.state.addRule('scratch.', rule)
    assert.equal(a.state.removeRule('scratch.'), true)
    assert.equal(a.state.removeRule('scratch.'), false)
  })

  it('agents on two nodes write one document, each event signed by its own agent: both replicas converge, in one order', async () => {
    const atA = await a.state.open(DOC, 'op-log')
    const atB = await b.state.open(DOC, 'op-log')
    const authors: string[] = []
    atA.addEventListener('change', e => {
      if (e.detail.local) authors.push(e.detail.author)
    })
    const [x, y, own] = await Promise.all([
      atA.append(
        [
          { op: 'create', item: 'goal' },
          { op: 'create', item: 't1' }
        ],
        { signer: agentX }
      ),
      atB.append([{ op: 'claim', item: 't1' }], { signer: agentY }),
      atA.append([{ op: 'note', by: 'the node itself' }])
    ])
    assert.ok(x != null && y != null && own != null)
    assert.deepEqual(
      x.entries.map(e => [e.actor, e.index]),
      [
        [agentX.principal, 0],
        [agentX.principal, 1]
      ]
    )
    assert.equal(y.entries[0].actor, agentY.principal)
    assert.equal(own.entries[0].actor, principalFromPeerId(a.peerId))
    assert.deepEqual(authors.sort(), [agentX.principal, principalFromPeerId(a.peerId)].sort())
    await waitUntil('both replicas hold all four entries', () => atA.size === 4 && atB.size === 4)
    assert.deepEqual(atA.entries(), atB.entries())
    assert.deepEqual(
      new Set(atA.entries().map(e => e.actor)),
      new Set([agentX.principal, agentY.principal, principalFromPeerId(a.peerId)])
    )
    // the rule was asked about each event, with its author and entries, on both nodes
    for (const asked of [askedA, askedB]) {
      assert.ok(asked.some(q => q.author === agentX.principal && q.entries.length === 2))
      assert.ok(asked.some(q => q.author === agentY.principal && q.entries.length === 1))
    }
  })

  it('an entry the rule denies is not appended here, and nothing is applied', async () => {
    const atA = await a.state.open(DOC, 'op-log')
    const before = bodies(atA)
    const epoch = atA.epoch
    const heads = atA.heads().map(String)
    await assert.rejects(atA.append([{ op: 'fine' }, { deny: true }], { signer: agentX }), {
      name: 'UnauthorizedEventError',
      message: /denies/
    })
    assert.deepEqual(bodies(atA), before)
    assert.deepEqual(atA.heads().map(String), heads)
    assert.equal(atA.epoch, epoch, 'nothing was applied, so nothing was rebuilt')
    // the rule decides for this node's own key as well
    await assert.rejects(atA.append([{ deny: true }]), { name: 'UnauthorizedEventError' })
    assert.deepEqual(bodies(atA), before)
  })

  it('a denied event written elsewhere is refused for good at the receiver; events beside it apply', async () => {
    // a member node without the rule writes a denied entry: its own key may write there
    const rogue = await memoryNode({ stateOptions: { syncInterval: 1000 } })
    try {
      await admit(rogue, root)
      const atRogue = await rogue.state.open(DOC, 'op-log')
      await atRogue.append([{ op: 'fine' }, { deny: true }])
      const head = atRogue.heads()[0]
      const bytes = await readBlock(rogue.helia.blockstore, head, { maxBytes: MAX_EVENT_BYTES, offline: true })
      const atB = await b.state.open(DOC, 'op-log')
      const before = bodies(atB)
      const rogueId = principalFromPeerId(rogue.peerId)
      const joined = await atB.log.join([head], { blocks: new Map([[head.toString(), bytes]]) })
      assert.deepEqual(joined.applied, [])
      assert.deepEqual(
        joined.rejected.map(r => r.error.name),
        ['UnauthorizedEventError']
      )
      assert.deepEqual(bodies(atB), before)
      const asks = askedB.filter(q => q.author === rogueId).length
      assert.equal(asks, 1)
      // for good: offered again, it is refused without asking the rule
      const again = await atB.log.join([head], { blocks: new Map([[head.toString(), bytes]]) })
      assert.deepEqual(
        again.rejected.map(r => r.error.name),
        ['UnauthorizedEventError']
      )
      assert.equal(askedB.filter(q => q.author === rogueId).length, asks)
      // an event of another writer is applied as before
      const atA = await a.state.open(DOC, 'op-log')
      await atA.append([{ op: 'progress', item: 't1' }], { signer: agentX })
      await waitUntil('b applied the allowed event', () =>
        bodies(atB).some(body => (body as { op?: string }).op === 'progress')
      )
      assert.ok(!bodies(atB).some(body => (body as { deny?: boolean }).deny === true))
    } finally {
      await rogue.stop()
    }
  })

  it('members read and replicate a rule document; a peer that is no member gets nothing of it; it is never public', async () => {
    const atA = await a.state.open(DOC, 'op-log')
    await assert.rejects(a.state.open(DOC, 'op-log', { public: true }), { name: 'MemberDocumentError' })
    assert.equal(a.state.isPublic(DOC), false)
    const gossip: DeltaMessage[] = []
    outsider.pubsub.addEventListener('gossipsub:message', e => {
      if (e.detail.msg.topic === deltasTopic('default')) gossip.push(decodeDeltaMessage(e.detail.msg.data))
    })
    const stolen = await outsider.state.open(DOC, 'op-log')
    await atA.append([{ op: 'complete', item: 't1' }], { signer: agentX })
    await waitUntil('the outsider saw the announcement', () => gossip.some(m => m.log === DOC))
    assert.ok(
      gossip.filter(m => m.log === DOC).every(m => m.block === null),
      'announced by CID only'
    )
    await outsider.state.sync(a.peerId)
    await outsider.state.sync(b.peerId)
    assert.equal(stolen.size, 0)

    const heads = await ask(outsider, a.peerId, {
      v: 1,
      type: 'heads',
      logs: [{ log: DOC, heads: [], snapshot: null }]
    })
    assert.deepEqual(heads.type === 'heads' ? heads.logs : heads, [])
    const want = await ask(outsider, a.peerId, { v: 1, type: 'want', log: DOC, cids: atA.heads(), depth: 0 })
    assert.equal(want.type === 'error' ? want.name : want.type, 'UnauthorizedReadError')

    // a member asking the same gets the heads and the blocks
    const memberHeads = await ask(b, a.peerId, { v: 1, type: 'heads', logs: [{ log: DOC, heads: [], snapshot: null }] })
    assert.deepEqual(memberHeads.type === 'heads' ? memberHeads.logs.map(l => l.heads.map(String)) : memberHeads, [
      atA.heads().map(String)
    ])
    const blocks = await ask(b, a.peerId, { v: 1, type: 'want', log: DOC, cids: atA.heads(), depth: 0 })
    assert.equal(blocks.type === 'blocks' ? blocks.blocks.length : blocks.type, 1)
    const atB = await b.state.open(DOC, 'op-log')
    await waitUntil('the member replicated it', () => atB.size === atA.size)
    assert.equal(stolen.size, 0)
  })

  it('without a rule, an agent signing an append needs the append tag, like any author', async () => {
    const notes = await a.state.open('notes', 'op-log')
    await assert.rejects(notes.append(['from an agent without a grant'], { signer: agentY }), {
      name: 'UnauthorizedEventError'
    })
    assert.equal(notes.size, 0)
    await a.spki.addAclEntry(agentY.principal, tag('(cyberspace (log (append notes)))'))
    const appended = await notes.append(['granted'], { signer: agentY })
    assert.equal(appended?.entries[0].actor, agentY.principal)
    assert.deepEqual(bodies(notes), ['granted'])
  })
})
