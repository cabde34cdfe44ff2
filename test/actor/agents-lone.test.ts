/**
 * A node with no peers at all (what `npm start` gives first): it hosts local agents at once, and they
 * talk through the mailbox without the network; the registry answers from what the node holds
 * instead of waiting for DHT peers that are not there.
 */
import assert from 'node:assert/strict'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { CyberspaceNode } from '../../src/node.ts'

describe('agents on a node with no peers', function () {
  this.timeout(60_000)
  let node: CyberspaceNode

  before(async () => {
    node = await memoryNode()
    const root = await key()
    await node.spki.addAclEntry(root.id, tag('(cyberspace)'))
    const member = await grant(
      root,
      { kind: 'key', principal: principalFromPeerId(node.peerId) },
      '(cyberspace member)',
      {
        propagate: false
      }
    )
    await node.spki.addAll({ certs: [member], crls: [] })
    node.agents.define('echo', { behaviour: () => ({ handle: m => (m.request ? m.body : undefined) }) })
    node.agents.define('caller', { behaviour: () => ({ handle: () => null }) })
  })

  after(async () => {
    await node.stop()
  })

  it('spawns local agents, finds their records, and delivers between them locally', async () => {
    assert.equal(node.peers().length, 0)
    const echo = await node.agents.spawn('echo', { id: 'e-1', key: 'local' })
    const caller = await node.agents.spawn('caller', { id: 'q-1', key: 'local' })
    assert.equal(echo.key, 'local')
    // no cluster share here: local is the default
    assert.equal((await node.agents.spawn('echo', { id: 'e-2' })).key, 'local')
    const record = await node.registry.get(echo.principal)
    assert.equal(record.host, node.peerId.toString())
    await assert.rejects(node.agents.request(caller.principal, echo.principal, 'ping', { hi: 1 }), {
      name: 'UnauthorizedSenderError'
    })
    // the echo agent lets the caller write to it: its own certificate would do; here the node's root grants it
    await node.spki.addAclEntry(caller.principal, tag(`(cyberspace (mailbox (send ${echo.principal})))`))
    assert.deepEqual(await node.agents.request(caller.principal, echo.principal, 'ping', { hi: 1 }), { hi: 1 })
    const receipt = await node.agents.send(caller.principal, echo.principal, 'note', 'x')
    assert.equal(receipt.local, true)
    await assert.rejects(node.registry.get(principalFromPeerId(node.peerId)), { name: 'AgentNotFoundError' })
  })
})
