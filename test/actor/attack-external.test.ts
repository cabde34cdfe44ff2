/**
 * An external agent's inbox against a crash of the program attached to it (two member nodes on the
 * memory transport). What must hold: a message is acknowledged to its sender only once handled,
 * so a program that took a one-way message from its inbox (a long poll answered, an event written
 * to its stream) and died before handling it must see it again, or its sender must not have been
 * told it was handled. On the code as it stands this test FAILS: `take` acknowledges a one-way
 * message as it leaves the inbox.
 */
import assert from 'node:assert/strict'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'

describe('attack: a crash of the program attached to an external agent', function () {
  this.timeout(60_000)
  let root: Key
  let host: CyberspaceNode
  let peer: CyberspaceNode

  async function grantAll(principal: PrincipalId, text: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal }, text, { propagate: false })
    for (const n of [host, peer]) await n.spki.addAll({ certs: [cert], crls: [] })
  }

  before(async () => {
    // a short handler deadline: the message nobody confirms ends there, not at the default 30 s
    const options = {
      membershipOptions: { probeInterval: 300, probeTimeout: 150 },
      agentsOptions: { handlerTimeout: 3000 }
    }
    host = await memoryNode(options)
    peer = await memoryNode({ ...options, bootstrap: [host.multiaddrs()[0]] })
    await waitUntil('connected', () => host.peers().length === 1)
    root = await key()
    for (const n of [host, peer]) await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
    for (const n of [host, peer]) await grantAll(principalFromPeerId(n.peerId), '(cyberspace member)')
    host.agents.define('caller', { behaviour: () => ({ handle: () => null }) })
    await waitUntil('both are members', () => host.membership.members().filter(m => m.state === 'alive').length === 2)
  })

  after(async () => {
    await Promise.all([host, peer].map(async n => await n.stop()))
  })

  it('a one-way message the program took and never handled is not acknowledged as handled', async () => {
    const external = (await host.agents.spawn('external', { id: 'program-1', key: 'local' })).principal
    const caller = (await host.agents.spawn('caller', { id: 'caller-1', key: 'local' })).principal
    await grantAll(caller, '(cyberspace (mailbox (send)))')
    let acknowledged = false
    const sent = host.agents.send(caller, external, 'job', { n: 1 }, { timeout: 6_000 }).then(r => {
      acknowledged = true
      return r
    })
    // the program's long poll is answered (or an event written to its stream) ... and the program dies
    const taken = await host.agents.inbox(external, { wait: 2_000 })
    assert.deepEqual(
      taken.map(m => m.body),
      [{ n: 1 }]
    )
    // it comes back and polls again
    const again = await host.agents.inbox(external, { wait: 1000 })
    assert.ok(
      again.length === 1 || !acknowledged,
      'the sender was told its message was handled, and the program that restarted will never see it'
    )
    // the sender is answered one way or the other (handled, or a named error), never left hanging
    if (again.length === 1) host.agents.reply(external, again[0].id, null)
    await sent.catch(() => {})
  })
})
