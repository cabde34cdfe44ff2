/**
 * Agents among three in-process member nodes holding a 2-of-3 cluster key (memory transport): an
 * agent spawned on one node answers requests from an agent on another, keeps its state in its
 * session, refuses what its chains do not allow, and when its host stops it resumes on another
 * node under the same principal, with its state, once its lease has lapsed.
 */
import assert from 'node:assert/strict'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { AgentDefinition } from '../../src/actor/agents.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'

async function rejects(promise: Promise<unknown>, name: string): Promise<Error> {
  let caught: Error | undefined
  await assert.rejects(promise, (err: Error) => {
    assert.equal(err.name, name, `${err.name}: ${err.message}`)
    caught = err
    return true
  })
  return caught as Error
}

/** Counts the messages it handles in its session; answers with the count and where it runs. */
const counter = (host: string): AgentDefinition => ({
  description: 'counts what it is sent',
  behaviour: agent => ({
    handle: async message => {
      const n = ((agent.state().n as number | undefined) ?? 0) + 1
      await agent.record({ n })
      if (message.type === 'checkpoint') await agent.checkpoint()
      return { n, host }
    }
  })
})

const caller: AgentDefinition = { behaviour: () => ({ handle: () => null }) }

describe('agents across member nodes', function () {
  this.timeout(180_000)
  const nodes: CyberspaceNode[] = []
  let root: Key
  let counterAgent: PrincipalId
  let callerAgent: PrincipalId
  /** The node that took the counter agent over. */
  let successor: CyberspaceNode | undefined

  /** The root grants `tagText` to `principal` and every node holds the certificate. */
  async function grantAll(principal: PrincipalId, tagText: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal }, tagText, { propagate: false })
    for (const n of nodes) await n.spki.addAll({ certs: [cert], crls: [] })
  }

  before(async () => {
    const options = {
      membershipOptions: { probeInterval: 300, probeTimeout: 150 },
      agentsOptions: { leaseTtl: 4000, leaseSkew: 500, scanInterval: 500 },
      stateOptions: { syncInterval: 1000 }
    }
    nodes.push(await memoryNode(options))
    const at = [nodes[0].multiaddrs()[0]]
    for (let i = 1; i < 3; i++) nodes.push(await memoryNode({ ...options, bootstrap: at }))
    await waitUntil('every node connected to the first', () => nodes[0].peers().length === 2)
    root = await key()
    for (const n of nodes) await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
    // every node is a member that may run the cluster key and host, spawn and derive agents
    for (const n of nodes)
      await grantAll(principalFromPeerId(n.peerId), '(cyberspace (* set member (cluster) (agent)))')
    const ids = nodes.map(n => principalFromPeerId(n.peerId))
    for (const n of nodes.slice(1)) await n.spki.addAclEntry(ids[0], tag('(cyberspace (cluster))'))
    await nodes[0].cluster.init(ids.slice(1), 2)
    for (const n of nodes) {
      n.agents.define('counter', counter(n.peerId.toString()))
      n.agents.define('caller', caller)
    }
    await waitUntil('every node sees three members offering counter', () =>
      nodes.every(
        n =>
          n.membership.members().filter(m => m.state === 'alive' && (m.meta.kinds ?? '').includes('counter')).length ===
          3
      )
    )
  })

  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it('spawns a cluster agent whose key t members derive, and a local one; both are listed and in the directory', async () => {
    const spawned = await nodes[0].agents.spawn('counter', { id: 'c-1' })
    counterAgent = spawned.principal
    assert.equal(spawned.key, 'cluster')
    assert.equal(spawned.status, 'running')
    assert.equal(spawned.host, nodes[0].peerId.toString())
    // the same principal derives from (kind, id) on another node
    assert.equal((await nodes[1].cluster.deriveAgentSeed('counter', 'c-1')).principal, counterAgent)
    const local = await nodes[1].agents.spawn('caller', { id: 'q-1', key: 'local' })
    callerAgent = local.principal
    assert.equal(local.key, 'local')
    assert.deepEqual(
      nodes[0].agents.list().map(a => a.principal),
      [counterAgent]
    )
    await rejects(nodes[0].agents.spawn('counter', { id: 'c-1' }), 'AgentRunningError')
    // a second host may not run it while its lease holds
    const elsewhere = await rejects(nodes[2].agents.spawn('counter', { id: 'c-1' }), 'AgentRunningError')
    assert.match(elsewhere.message, new RegExp(nodes[0].peerId.toString()))
    assert.equal(nodes[2].agents.get(counterAgent), undefined)
    await rejects(nodes[0].agents.spawn('nobody-runs-this', { id: 'x' }), 'UnknownKindError')
    const record = await nodes[2].registry.get(counterAgent)
    assert.equal(record.host, nodes[0].peerId.toString())
    assert.ok(record.card.skills.some(s => s.id === 'kind:counter'))
  })

  it('delivers a request from an agent on another node only once the sender is authorized', async () => {
    await rejects(nodes[1].agents.request(callerAgent, counterAgent, 'count', {}), 'UnauthorizedSenderError')
    await grantAll(callerAgent, '(cyberspace (mailbox (send)))')
    // as the issue spells it: a handle on the agent, agent.request
    const agent = nodes[1].agents.agent(callerAgent)
    assert.ok(agent != null)
    assert.equal(nodes[0].agents.agent(callerAgent), undefined, 'a handle only where the agent runs')
    assert.deepEqual(await agent.request(counterAgent, 'count', {}), {
      n: 1,
      host: nodes[0].peerId.toString()
    })
    assert.deepEqual(await nodes[1].agents.request(callerAgent, counterAgent, 'checkpoint', {}), {
      n: 2,
      host: nodes[0].peerId.toString()
    })
    assert.deepEqual(await nodes[1].agents.request(callerAgent, counterAgent, 'count', {}), {
      n: 3,
      host: nodes[0].peerId.toString()
    })
  })

  it('an agent decides who may message it: a certificate it issues is enough', async () => {
    const stranger = (await nodes[2].agents.spawn('caller', { id: 'r-1', key: 'local' })).principal
    await rejects(nodes[2].agents.request(stranger, counterAgent, 'count', {}), 'UnauthorizedSenderError')
    // the counter's own key (derived again here, as any successor would) grants the stranger its mailbox
    const seed = (await nodes[1].cluster.deriveAgentSeed('counter', 'c-1')).seed
    const own = await grant(
      { secret: seed, id: counterAgent },
      { kind: 'key', principal: stranger },
      `(cyberspace (mailbox (send ${counterAgent})))`,
      {
        propagate: false
      }
    )
    for (const n of nodes) await n.spki.addAll({ certs: [own], crls: [] })
    const answer = (await nodes[2].agents.request(stranger, counterAgent, 'count', {})) as { n: number }
    assert.equal(answer.n, 4)
    // but not another agent's mailbox
    await rejects(nodes[2].agents.request(stranger, callerAgent, 'hello', {}), 'UnauthorizedSenderError')
    await nodes[2].agents.stop(stranger)
  })

  it('checks tool calls against the agent’s own chain', async () => {
    await rejects(nodes[1].agents.tool(callerAgent, 'spawn', { kind: 'counter', id: 'c-2' }), 'AgentUnauthorizedError')
    await rejects(nodes[1].agents.tool(callerAgent, 'no.such.tool', {}), 'UnknownToolError')
    // the tool, but not the spawn right: still refused
    await grantAll(callerAgent, '(cyberspace (tool spawn counter))')
    const refused = await rejects(
      nodes[1].agents.tool(callerAgent, 'spawn', { kind: 'counter', id: 'c-2' }),
      'AgentUnauthorizedError'
    )
    assert.match(refused.message, /spawn/)
    await grantAll(callerAgent, '(cyberspace (agent (spawn counter)))')
    const child = (await nodes[1].agents.tool(callerAgent, 'spawn', { kind: 'counter', id: 'c-2' })) as {
      principal: string
    }
    assert.ok(nodes[1].agents.get(child.principal as PrincipalId) != null)
    await nodes[1].agents.stop(child.principal as PrincipalId)
    assert.equal(nodes[1].agents.get(child.principal as PrincipalId), undefined)
  })

  it('an agent that acts for the cluster gets a certificate from the cluster key at spawn, signed by t members', async () => {
    nodes[0].agents.define('delegate', {
      clusterTag: '(cyberspace (log (append board)))',
      behaviour: () => ({ handle: () => null })
    })
    const cluster = nodes[0].cluster.info()
    assert.ok(cluster != null)
    const board = tag('(cyberspace (log (append board)))')
    const spawned = await nodes[0].agents.spawn('delegate', { id: 'd-1' })
    // a verifier that trusts the cluster key finds the chain: one certificate, issued by the cluster
    await nodes[0].spki.addAclEntry(cluster.principal, tag('(cyberspace)'))
    const grant = await nodes[0].spki.authorize(spawned.principal, board)
    assert.ok(grant != null)
    await rejects(
      nodes[0].spki.authorize(spawned.principal, tag('(cyberspace (log (append other)))')),
      'ChainNotFoundError'
    )
    // a local agent cannot act for the cluster
    await rejects(nodes[0].agents.spawn('delegate', { id: 'd-2', key: 'local' }), 'NoClusterKeyError')
    await nodes[0].agents.stop(spawned.principal)
    await nodes[0].spki.removeAclEntry(cluster.principal)
  })

  it('resumes on another node under the same principal, with its state, once its host stops', async () => {
    await nodes[0].stop()
    await waitUntil(
      'another node runs the counter agent',
      () => {
        successor = nodes.slice(1).find(n => n.agents.get(counterAgent)?.status === 'running')
        return successor != null
      },
      60_000
    )
    assert.ok(successor != null)
    // only one runs it
    assert.equal(nodes.slice(1).filter(n => n.agents.get(counterAgent) != null).length, 1)
    const answer = (await nodes[1].agents.request(callerAgent, counterAgent, 'count', {}, { timeout: 30_000 })) as {
      n: number
      host: string
    }
    assert.equal(answer.host, successor.peerId.toString())
    assert.equal(answer.n, 5, 'the state survived: four counted before, this is the fifth')
    const record = await nodes[1].registry.get(counterAgent)
    assert.equal(record.host, successor.peerId.toString())
  })

  it('without t members a cluster agent can be neither spawned nor resumed, and says why', async () => {
    assert.ok(successor != null)
    const left = nodes.slice(1).find(n => n !== successor) as CyberspaceNode
    const hostAt = successor.peerId.toString()
    await successor.stop()
    const err = await rejects(left.agents.spawn('counter', { id: 'c-3' }), 'NotEnoughSignersError')
    assert.match(err.message, /needed/)
    // the counter agent's host is dead and its lease lapsed, and the one member left is first in line: it tries, and cannot derive
    await waitUntil('the host is seen dead', () =>
      ['dead', undefined].includes(left.membership.members().find(m => m.peerId === hostAt)?.state)
    )
    await waitUntil(
      'its lease lapsed',
      async () => {
        try {
          await left.registry.get(counterAgent)
          return false
        } catch (err) {
          return ['AgentRecordExpiredError', 'AgentNotFoundError'].includes((err as Error).name)
        }
      },
      30_000
    )
    await new Promise(resolve => setTimeout(resolve, 1000))
    await left.agents.reconcile()
    assert.equal(left.agents.get(counterAgent), undefined)
    assert.deepEqual(
      left.agents.list().filter(a => a.kind === 'counter'),
      []
    )
  })
})
