/**
 * Forged directory entries against the cluster's agent-key derivations (three member nodes
 * holding a 2-of-3 cluster key, memory transport). A member writes entries whose principal is a
 * key of its own, under a kind the nodes run and a host that does not exist. Each node that ranks
 * first for an entry tries to take it over: it asks t members for a derivation, and only then
 * sees that the name does not derive to the principal. What must hold: the work one writer's entries
 * cause is bounded (refusals remembered per writer), not one derivation per entry. On the code as
 * it stands this test FAILS: each forged entry costs a derivation (again every 10 leases, or every
 * lease when the members' budget refused it), the takeover cap per pass does not cap the rate (the
 * next pass starts at once), and the derivations drain the per-peer budget real spawns and
 * takeovers need.
 */
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { AGENT_DIRECTORY } from '../../src/actor/agents.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { OrMapDocument } from '../../src/log/documents.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'

/** Derivations a member gives one peer a minute, in this test (default 120: the attack scales with it). */
const BUDGET = 12
const FORGED = 4 * BUDGET
/** What forged entries by one writer may cost in all: one placement pass's takeovers (agents.ts). */
const MAX_PER_WRITER = 8

describe('attack: forged directory entries against the agent-key derivations', function () {
  this.timeout(180_000)
  const nodes: CyberspaceNode[] = []
  let root: Key
  let derivations = 0

  before(async () => {
    const options = {
      membershipOptions: { probeInterval: 300, probeTimeout: 150 },
      agentsOptions: { leaseTtl: 4000, leaseSkew: 500, scanInterval: 500 },
      stateOptions: { syncInterval: 1000 },
      clusterOptions: { maxDerivationsPerMinute: BUDGET, deriveSettle: 200 }
    }
    nodes.push(await memoryNode(options))
    for (let i = 1; i < 3; i++) nodes.push(await memoryNode({ ...options, bootstrap: [nodes[0].multiaddrs()[0]] }))
    await waitUntil('connected', () => nodes[0].peers().length === 2)
    root = await key()
    for (const n of nodes) await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
    for (const n of nodes) {
      const cert = await grant(
        root,
        { kind: 'key', principal: principalFromPeerId(n.peerId) },
        '(cyberspace (* set member (cluster) (agent) (log)))',
        { propagate: false }
      )
      for (const m of nodes) await m.spki.addAll({ certs: [cert], crls: [] })
    }
    const ids = nodes.map(n => principalFromPeerId(n.peerId))
    for (const n of nodes.slice(1)) await n.spki.addAclEntry(ids[0], tag('(cyberspace (cluster))'))
    await nodes[0].cluster.init(ids.slice(1), 2)
    for (const n of nodes) {
      n.agents.define('echo', { behaviour: () => ({ handle: m => m.body }) })
      const service = n.cluster
      const derive = service.deriveAgentSeed.bind(service)
      service.deriveAgentSeed = async (...args) => {
        derivations++
        return await derive(...args)
      }
    }
    await waitUntil('every node sees three members offering echo', () =>
      nodes.every(
        n =>
          n.membership.members().filter(m => m.state === 'alive' && (m.meta.kinds ?? '').includes('echo')).length === 3
      )
    )
  })

  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it('a member’s forged entries cost a bounded number of derivations, not one per entry', async () => {
    const attacker = nodes[2]
    const directory = (await attacker.state.open(AGENT_DIRECTORY, 'or-map')) as OrMapDocument
    const nowhere = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const forged: PrincipalId[] = []
    for (let i = 0; i < FORGED; i++) forged.push((await key()).id)
    await directory.batch(m => {
      for (let i = 0; i < FORGED; i++)
        m.set([forged[i]], { kind: 'echo', id: `forged-${i}`, key: 'cluster', host: nowhere, since: Date.now() })
    })
    const before = derivations
    // the entries spread; every node's placement pass runs on each directory change
    await waitUntil('the forged entries cost derivations', () => derivations - before > MAX_PER_WRITER, 8_000).catch(
      () => {}
    )
    const spent = derivations - before
    // the name-to-principal check holds: no forged principal runs anywhere
    for (const n of nodes) for (const p of forged) assert.equal(n.agents.get(p), undefined)
    assert.ok(
      spent <= MAX_PER_WRITER,
      `${FORGED} entries one member wrote in one batch cost ${spent} derivations, each of t members' work (and of their per-peer budget, which real spawns and takeovers need)`
    )
  })
})
