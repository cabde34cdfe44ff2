/**
 * Tool calls against another agent's session (two member nodes on the memory transport,
 * local-key agents). An agent's session is written only with its own key (src/log/service.ts);
 * the `doc.set` tool writes a document through the node. What must hold: a tool call by agent W
 * never writes agent V's session, whatever log grant W holds. On the code as it stands this test
 * FAILS: V's session is open on its host with V's signer, `state.open` hands that same document
 * to the tool, and W's change is written as an event signed by V.
 */
import assert from 'node:assert/strict'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { sessionDocumentName } from '../../src/log/service.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { OrMapDocument } from '../../src/log/documents.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'

describe('attack: a tool call against another agent’s session', function () {
  this.timeout(60_000)
  let root: Key
  let host: CyberspaceNode
  let peer: CyberspaceNode

  async function grantAll(principal: PrincipalId, text: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal }, text, { propagate: false })
    for (const n of [host, peer]) await n.spki.addAll({ certs: [cert], crls: [] })
  }

  before(async () => {
    const options = { membershipOptions: { probeInterval: 300, probeTimeout: 150 } }
    host = await memoryNode(options)
    peer = await memoryNode({ ...options, bootstrap: [host.multiaddrs()[0]] })
    await waitUntil('connected', () => host.peers().length === 1)
    root = await key()
    for (const n of [host, peer]) await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
    for (const n of [host, peer]) await grantAll(principalFromPeerId(n.peerId), '(cyberspace member)')
    host.agents.define('worker', {
      behaviour: agent => ({
        handle: async m => {
          await agent.record({ last: m.type })
          return agent.state()
        }
      })
    })
    await waitUntil('both are members', () => host.membership.members().filter(m => m.state === 'alive').length === 2)
  })

  after(async () => {
    await Promise.all([host, peer].map(async n => await n.stop()))
  })

  it('a tool call by one agent never writes another agent’s session', async () => {
    const victim = (await host.agents.spawn('worker', { id: 'victim', key: 'local' })).principal
    const writer = (await host.agents.spawn('worker', { id: 'writer', key: 'local' })).principal
    // a broad grant: the writer may write documents through its node
    await grantAll(writer, '(cyberspace (* set (tool doc.set) (log)))')
    const session = (await host.state.find(sessionDocumentName(victim))) as OrMapDocument
    const before = JSON.stringify(session.value())
    let written: unknown
    try {
      written = await host.agents.tool(writer, 'doc.set', {
        doc: sessionDocumentName(victim),
        key: 'fields',
        value: { balance: 1_000_000 }
      })
    } catch (err) {
      assert.match((err as Error).name, /Unauthorized/, (err as Error).message)
    }
    assert.equal(
      JSON.stringify(session.value()),
      before,
      `agent ${writer} wrote ${JSON.stringify(session.value())} into the session of ${victim} (${JSON.stringify(written)}), as an event signed by ${victim}`
    )
  })
})
