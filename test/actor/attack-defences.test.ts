/**
 * Attacks on the agent layer that its defences hold against (two member nodes on the memory
 * transport, local-key agents), kept as regression guards:
 * - tool arguments are atoms: a document name with spaces, parentheses or `*` never widens the
 *   scope the agent's chain grants, and a kind never matches another by prefix;
 * - an external agent's answer goes only to its own pending message: another agent replying to that
 *   message id, or anyone replying for an in-process agent, is refused by name;
 * - a delivered envelope replayed by a peer is never handed on again: its answer is repeated while
 *   kept, then it is a duplicate of its session, and once it expired it is refused as expired;
 * - a directory entry whose name is no key this node holds, or holds for another principal, never runs.
 */
import assert from 'node:assert/strict'
import { MemoryDatastore } from 'datastore-core'
import {
  decodeMailboxMessage,
  encodeMailboxMessage,
  MAILBOX_PROTOCOL,
  MAX_MAILBOX_MESSAGE_BYTES
} from '../../protocols/mailbox/codec.ts'
import { AGENT_DIRECTORY } from '../../src/actor/agents.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { requestOnce } from '../../src/network/rpc.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { Envelope } from '../../protocols/mailbox/codec.ts'
import type { InboundMessage } from '../../src/actor/directory.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { OrMapDocument } from '../../src/log/documents.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key as DatastoreKey } from 'interface-datastore'
import type { Key } from '../spki/fixtures.ts'

/** A memory datastore that stores and returns copies, as the Level and IndexedDB stores do. */
class CopyingDatastore extends MemoryDatastore {
  async put(key: DatastoreKey, value: Uint8Array): Promise<DatastoreKey> {
    return await super.put(key, value.slice())
  }

  async get(key: DatastoreKey): Promise<Uint8Array> {
    return (await super.get(key)).slice()
  }
}

async function rejects(promise: Promise<unknown>, name: string): Promise<Error> {
  let caught: Error | undefined
  await assert.rejects(promise, (err: Error) => {
    assert.equal(err.name, name, `${err.name}: ${err.message}`)
    caught = err
    return true
  })
  return caught as Error
}

describe('attack: defences of the agent layer that hold', function () {
  this.timeout(120_000)
  let root: Key
  let host: CyberspaceNode
  let peer: CyberspaceNode
  /** Messages the host's agents handled, by agent. */
  const handled = new Map<string, InboundMessage[]>()
  /** Envelopes the host's mailbox received, as they came. */
  const received: Envelope[] = []
  /** How far the host's mailbox clock is moved ahead, in ms. */
  let ahead = 0

  async function grantAll(principal: PrincipalId, text: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal }, text, { propagate: false })
    for (const n of [host, peer]) await n.spki.addAll({ certs: [cert], crls: [] })
  }

  before(async () => {
    const options = {
      membershipOptions: { probeInterval: 300, probeTimeout: 150 },
      agentsOptions: { leaseTtl: 4000, leaseSkew: 500, scanInterval: 500 },
      stateOptions: { syncInterval: 500 }
    }
    host = await memoryNode({
      ...options,
      datastore: new CopyingDatastore(),
      mailboxOptions: {
        now: () => Date.now() + ahead,
        // one answer kept: a replay of an older message meets its session, not its answer
        maxCachedAnswers: 1,
        dropInbound: envelope => {
          received.push(envelope)
          return false
        }
      }
    })
    peer = await memoryNode({ ...options, bootstrap: [host.multiaddrs()[0]] })
    await waitUntil('connected', () => host.peers().length === 1)
    root = await key()
    for (const n of [host, peer]) await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
    for (const n of [host, peer]) await grantAll(principalFromPeerId(n.peerId), '(cyberspace member)')
    for (const n of [host, peer]) {
      n.agents.define('recorder', {
        behaviour: agent => ({
          handle: m => {
            handled.set(agent.principal, [...(handled.get(agent.principal) ?? []), m])
            return { n: handled.get(agent.principal)?.length }
          }
        })
      })
      n.agents.define('echo', { behaviour: () => ({ handle: m => m.body }) })
      n.agents.define('echo.x', { behaviour: () => ({ handle: m => m.body }) })
    }
    await waitUntil('both are members', () =>
      [host, peer].every(n => n.membership.members().filter(m => m.state === 'alive').length === 2)
    )
  })

  after(async () => {
    await Promise.all([host, peer].map(async n => await n.stop()))
  })

  it('a tool’s arguments are atoms: no document name or kind widens what the chain grants', async () => {
    const agent = (await host.agents.spawn('recorder', { id: 'tools-1', key: 'local' })).principal
    await grantAll(agent, '(cyberspace (tool doc.set notes))')
    await grantAll(agent, '(cyberspace (log (append notes)))')
    const written = (await host.agents.tool(agent, 'doc.set', { doc: 'notes', key: 'k', value: 1 })) as { cid?: string }
    assert.equal(typeof written.cid, 'string')
    for (const doc of ['notes x', 'notes) (*', '(*)', '*', 'notes2', 'note', 'Notes', AGENT_DIRECTORY]) {
      await rejects(host.agents.tool(agent, 'doc.set', { doc, key: 'k', value: 1 }), 'AgentUnauthorizedError')
    }
    // the spawn right for kind echo is not one for echo.x, nor is a tool grant for echo
    await grantAll(agent, '(cyberspace (tool spawn echo))')
    await grantAll(agent, '(cyberspace (agent (spawn echo)))')
    await rejects(host.agents.tool(agent, 'spawn', { kind: 'echo.x', id: 'e-1' }), 'AgentUnauthorizedError')
    await rejects(host.agents.tool(agent, 'spawn', { kind: 'echo (*)', id: 'e-1' }), 'AgentUnauthorizedError')
    assert.equal(host.agents.list().filter(a => a.kind === 'echo.x').length, 0, 'nothing was spawned by a refused call')
  })

  it('an external agent’s answer goes only to its own message: other agents cannot answer it', async () => {
    const x = (await host.agents.spawn('external', { id: 'ext-x', key: 'local' })).principal
    const y = (await host.agents.spawn('external', { id: 'ext-y', key: 'local' })).principal
    const asker = (await peer.agents.spawn('recorder', { id: 'asker-1', key: 'local' })).principal
    await grantAll(asker, `(cyberspace (mailbox (send ${x})))`)
    const answer = peer.agents.request(asker, x, 'ask', { q: 1 }, { id: 'm-1', timeout: 20_000 })
    const [pending] = await host.agents.inbox(x, { wait: 10_000 })
    assert.equal(pending.id, 'm-1')
    // the program attached as y answers x's message id: there is no such message of y's
    await rejects(
      Promise.resolve().then(() => host.agents.reply(y, 'm-1', { forged: true })),
      'NoSuchPendingMessageError'
    )
    // an in-process agent has no inbox anyone answers for
    const recorder = (await host.agents.spawn('recorder', { id: 'inproc-1', key: 'local' })).principal
    await rejects(
      Promise.resolve().then(() => host.agents.reply(recorder, 'm-1', { forged: true })),
      'NotExternalAgentError'
    )
    host.agents.reply(x, 'm-1', { a: 1 })
    assert.deepEqual(await answer, { a: 1 })
    // answered once: a second answer to the same id is refused
    await rejects(
      Promise.resolve().then(() => host.agents.reply(x, 'm-1', { a: 2 })),
      'NoSuchPendingMessageError'
    )
  })

  it('a replayed envelope is never handed on again: its answer, then a duplicate, then expired', async () => {
    const target = (await host.agents.spawn('recorder', { id: 'replay-1', key: 'local' })).principal
    const sender = (await peer.agents.spawn('recorder', { id: 'sender-1', key: 'local' })).principal
    await grantAll(sender, `(cyberspace (mailbox (send ${target})))`)
    assert.deepEqual(await peer.agents.request(sender, target, 'count', null, { id: 'r-1', timeout: 5000 }), { n: 1 })
    const envelope = received.find(e => e.id === 'r-1' && e.to === target)
    assert.ok(envelope != null)
    const replay = async (): Promise<ReturnType<typeof decodeMailboxMessage>> =>
      decodeMailboxMessage(
        await requestOnce(
          peer.libp2p.dialProtocol.bind(peer.libp2p),
          host.peerId,
          MAILBOX_PROTOCOL,
          encodeMailboxMessage({ v: 1, type: 'deliver', envelope }),
          { maxBytes: MAX_MAILBOX_MESSAGE_BYTES, signal: AbortSignal.timeout(10_000) }
        )
      )
    // while its answer is kept: the same signed reply, and the handler does not run
    const again = await replay()
    assert.equal(again.type, 'reply')
    // the next message of the session pushes its answer out of the cache: a replay is then a duplicate of its session
    assert.deepEqual(await peer.agents.request(sender, target, 'count', null, { id: 'r-2', timeout: 5000 }), { n: 2 })
    const duplicate = await replay()
    assert.equal(duplicate.type === 'error' ? duplicate.name : duplicate.type, 'DuplicateMessageError')
    // past its expiry (the receiver's clock moved on): refused as expired before anything else
    ahead = envelope.expires - Date.now() + 1
    try {
      const late = await replay()
      assert.equal(late.type, 'error')
      assert.equal(late.type === 'error' ? late.name : '', 'MessageExpiredError')
    } finally {
      ahead = 0
    }
    assert.deepEqual(
      (handled.get(target) ?? []).map(m => m.id),
      ['r-1', 'r-2'],
      'each message handled once'
    )
  })

  it('a directory entry for a principal this node holds no key of never runs', async () => {
    const real = (await host.agents.spawn('echo', { id: 'keyed-1', key: 'local' })).principal
    await host.agents.stop(real)
    const directory = (await peer.state.open(AGENT_DIRECTORY, 'or-map')) as OrMapDocument
    const stranger = (await key()).id
    const other = (await key()).id
    const at = host.peerId.toString()
    await directory.batch(m => {
      // a name the host holds no key of
      m.set([stranger], { kind: 'echo', id: 'no-key-here', key: 'local', host: at, since: Date.now() })
      // the name of a key the host holds, under another principal
      m.set([other], { kind: 'echo', id: 'keyed-1', key: 'local', host: at, since: Date.now() })
    })
    const atHost = (await host.state.open(AGENT_DIRECTORY, 'or-map')) as OrMapDocument
    await waitUntil('the entries reached the host', () => atHost.get([stranger]) != null && atHost.get([other]) != null)
    await host.agents.reconcile()
    await host.agents.reconcile()
    assert.equal(host.agents.get(stranger), undefined)
    assert.equal(host.agents.get(other), undefined)
    // nor does the stopped agent whose name the second entry borrows
    assert.equal(host.agents.get(real), undefined)
  })
})
