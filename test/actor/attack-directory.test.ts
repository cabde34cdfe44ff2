/**
 * Attacks on the agent directory (`cyberspace.agents`) and the lease, played by a member against
 * the real agents service (two member nodes on the memory transport, local-key agents). Each test
 * states what must hold; on the code as it stands they FAIL, showing a defect:
 * - a member's forged entry naming another host stops an agent it does not own (fenceByDirectory
 *   trusts the directory over the agent-signed lease);
 * - a member's deletion of an entry is never repaired by the host (no follower, no successor);
 * - a member re-writing a stopped agent's entry brings the agent back, with no spawn right;
 * - an agent crashed for good by its supervisor keeps its lease renewed, so nobody takes it over.
 */
import assert from 'node:assert/strict'
import { MemoryDatastore } from 'datastore-core'
import { Key as DatastoreKey } from 'interface-datastore'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { AGENT_DIRECTORY } from '../../src/actor/agents.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { AgentDefinition } from '../../src/actor/agents.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { OrMapDocument } from '../../src/log/documents.ts'
import type { CyberspaceNode } from '../../src/node.ts'
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

const echo: AgentDefinition = { behaviour: () => ({ handle: m => m.body }) }
/** Throws on a message of type `boom`: any sender allowed to message it can make it crash. */
const fragile: AgentDefinition = {
  behaviour: () => ({
    handle: m => {
      if (m.type === 'boom') throw new Error('boom')
      return m.body
    }
  })
}

describe('attack: a member against the agent directory and the lease', function () {
  this.timeout(120_000)
  let root: Key
  let host: CyberspaceNode
  /** A member with no grant but `(cyberspace member)`: no spawn right, no log tag. */
  let attacker: CyberspaceNode
  let caller: PrincipalId

  async function grantAll(principal: PrincipalId, text: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal }, text, { propagate: false })
    for (const n of [host, attacker]) await n.spki.addAll({ certs: [cert], crls: [] })
  }

  const hostOf = (doc: OrMapDocument, agent: PrincipalId): unknown =>
    (doc.get([agent]) as Record<string, unknown> | undefined)?.host

  const directoryOf = async (n: CyberspaceNode): Promise<OrMapDocument> =>
    (await n.state.open(AGENT_DIRECTORY, 'or-map')) as OrMapDocument

  before(async () => {
    const options = {
      membershipOptions: { probeInterval: 300, probeTimeout: 150 },
      agentsOptions: { leaseTtl: 4000, leaseSkew: 500, scanInterval: 500, intensity: 2, period: 60_000 },
      stateOptions: { syncInterval: 500 }
    }
    host = await memoryNode({ ...options, datastore: new CopyingDatastore() })
    attacker = await memoryNode({ ...options, bootstrap: [host.multiaddrs()[0]] })
    await waitUntil('connected', () => host.peers().length === 1)
    root = await key()
    for (const n of [host, attacker]) await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
    for (const n of [host, attacker]) await grantAll(principalFromPeerId(n.peerId), '(cyberspace member)')
    for (const n of [host, attacker]) {
      n.agents.define('echo', echo)
      n.agents.define('fragile', fragile)
      n.agents.define('caller', { behaviour: () => ({ handle: () => null }) })
    }
    await waitUntil('both are members', () =>
      [host, attacker].every(n => n.membership.members().filter(m => m.state === 'alive').length === 2)
    )
    caller = (await attacker.agents.spawn('caller', { id: 'caller', key: 'local' })).principal
    await grantAll(caller, '(cyberspace (mailbox (send)))')
  })

  after(async () => {
    await Promise.all([host, attacker].map(async n => await n.stop()))
  })

  it('a forged entry naming another host does not stop a running agent', async () => {
    const victim = (await host.agents.spawn('echo', { id: 'victim-1', key: 'local' })).principal
    const atAttacker = await directoryOf(attacker)
    await waitUntil('the attacker sees the entry', () => hostOf(atAttacker, victim) != null)
    const entry = atAttacker.get([victim]) as Record<string, unknown>
    // the attacker names itself: it is alive, so no one will ever take the agent over either
    await atAttacker.set([victim], { ...entry, host: attacker.peerId.toString(), since: Date.now() })
    const atHost = await directoryOf(host)
    // the host writes its entry back as soon as it sees the forgery: watch for the forgery itself
    let seen = hostOf(atHost, victim) === attacker.peerId.toString()
    const watch = (): void => {
      if (hostOf(atHost, victim) === attacker.peerId.toString()) seen = true
    }
    atHost.addEventListener('change', watch)
    await waitUntil('the forged entry reached the host', () => seen)
    await waitUntil('the host wrote its entry back', () => hostOf(atHost, victim) === host.peerId.toString())
    await waitUntil('the attacker sees the entry restored', () => hostOf(atAttacker, victim) === host.peerId.toString())
    atHost.removeEventListener('change', watch)
    assert.equal(
      host.agents.get(victim)?.status,
      'running',
      `a member with no authority over ${victim} stopped it by writing the directory (its lease, signed by the agent, still names ${host.peerId.toString()})`
    )
  })

  it('an entry a member deletes is restored by the agent’s host', async () => {
    const victim = (await host.agents.spawn('echo', { id: 'victim-2', key: 'local' })).principal
    const atAttacker = await directoryOf(attacker)
    await waitUntil('the attacker sees the entry', () => hostOf(atAttacker, victim) != null)
    await atAttacker.batch(m => m.delete([victim]))
    const atHost = await directoryOf(host)
    let deleted = atHost.get([victim]) == null
    const watch = (): void => {
      if (atHost.get([victim]) == null) deleted = true
    }
    atHost.addEventListener('change', watch)
    await waitUntil('the deletion reached the host', () => deleted)
    atHost.removeEventListener('change', watch)
    assert.equal(host.agents.get(victim)?.status, 'running')
    await waitUntil('the host wrote its entry back', () => hostOf(atHost, victim) === host.peerId.toString())
    assert.equal(
      hostOf(atHost, victim),
      host.peerId.toString(),
      'the host runs the agent but the directory no longer lists it: no member follows its session and no one takes it over when the host dies'
    )
  })

  it('re-writing a stopped agent’s entry does not bring it back', async () => {
    const stopped = (await host.agents.spawn('echo', { id: 'stopped-1', key: 'local' })).principal
    const atAttacker = await directoryOf(attacker)
    await waitUntil('the attacker sees the entry', () => hostOf(atAttacker, stopped) != null)
    const entry = atAttacker.get([stopped]) as Record<string, unknown>
    await host.agents.stop(stopped)
    await waitUntil('the attacker sees it gone', () => atAttacker.get([stopped]) == null)
    // the attacker holds no (cyberspace (agent (spawn echo))): it only writes the old entry back
    await atAttacker.set([stopped], { ...entry, since: Date.now() })
    const atHost = await directoryOf(host)
    await waitUntil('the entry reached the host', () => hostOf(atHost, stopped) != null)
    await host.agents.reconcile()
    assert.equal(
      host.agents.get(stopped),
      undefined,
      'an agent the operator stopped runs again, started by a member that may spawn nothing'
    )
  })

  it('a local agent’s key is kept as made: the node does not zero the stored copy', async () => {
    const datastore = new MemoryDatastore()
    const other = await memoryNode({
      membershipOptions: { probeInterval: 300, probeTimeout: 150 },
      bootstrap: [host.multiaddrs()[0]],
      datastore
    })
    try {
      await other.spki.addAclEntry(root.id, tag('(cyberspace)'))
      const cert = await grant(
        root,
        { kind: 'key', principal: principalFromPeerId(other.peerId) },
        '(cyberspace member)'
      )
      await other.spki.addAll({ certs: [cert], crls: [] })
      await waitUntil('a member', () => other.membership.isMember())
      other.agents.define('echo', echo)
      const spawned = await other.agents.spawn('echo', { id: 'kept-1', key: 'local' })
      const stored = (await datastore.get(new DatastoreKey('/cyberspace/agent-keys/echo/kept-1'))) as Uint8Array
      assert.ok(
        stored.some(b => b !== 0),
        `the stored seed of ${spawned.principal} is 32 zero bytes: the agent comes back under the all-zero key, whose secret everyone knows`
      )
    } finally {
      await other.stop()
    }
  })

  it('an agent its supervisor gave up on does not keep its lease', async () => {
    const agent = (await host.agents.spawn('fragile', { id: 'fragile-1', key: 'local' })).principal
    // intensity 2: the third crash within the period escalates
    for (let i = 0; i < 3; i++) {
      await assert.rejects(attacker.agents.request(caller, agent, 'boom', null, { timeout: 10_000 }), {
        name: 'HandlerFailedError'
      })
      await waitUntil('restarted or given up', () => {
        const s = host.agents.get(agent)?.status
        return s === 'running' || s === 'crashed' || s === undefined
      })
    }
    // given up: the node lets go of it (and of its lease) rather than keeping a crashed copy
    await waitUntil('given up', () => [undefined, 'crashed'].includes(host.agents.get(agent)?.status), 10_000)
    await assert.rejects(attacker.agents.request(caller, agent, 'hello', 1, { timeout: 5_000 }))
    assert.equal(
      host.registry.published().some(v => v.agent === agent),
      false,
      'three messages from any allowed sender crashed the agent for good, and its host keeps renewing its lease: no successor may take it over'
    )
  })
})
