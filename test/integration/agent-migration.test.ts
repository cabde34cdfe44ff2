/**
 * kill -9 of the node process hosting an agent, among three member processes holding a 2-of-3
 * cluster key: the agent resumes on another node under the same principal (its key derived again
 * with t members' help) with its checkpoint plus the replayed events, its registry record points to
 * the new host, a request sent to it by SDSI name reaches it there, and the old host, restarted on
 * the same data directory, does not run it.
 */
import { strict as assert } from 'node:assert'
import { peerIdFromString } from '@libp2p/peer-id'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { cliOk, sleep, spawnNode, stopNodes, waitUntil } from '../helpers/processes.ts'
import { grant, key, nameCert } from '../spki/fixtures.ts'
import type { AgentView } from '../../node/api/agent-routes.ts'
import type { MembersView } from '../../node/api/membership-routes.ts'
import type { AgentInfo } from '../../src/actor/agents.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { Key } from '../spki/fixtures.ts'

const KINDS = ['--kind', 'counter', '--kind', 'echo']
const principalOf = (node: NodeProcess): PrincipalId => principalFromPeerId(peerIdFromString(node.peerId))

interface Counted {
  n: number
  host: string
}

describe('agents: kill -9 of the host, and the agent resumes on another node', function () {
  this.timeout(300_000)
  let nodes: NodeProcess[] = []
  let root: Key
  let counter: PrincipalId
  let caller: PrincipalId

  async function importAll(sexp: string): Promise<void> {
    for (const n of nodes)
      if (n.proc.exitCode == null && n.proc.signalCode == null) await n.api.post('spki/import', { sexp })
  }

  async function grantAll(principal: PrincipalId, tagText: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal }, tagText, { propagate: false })
    await importAll(toAdvanced(signedCertToSexp(cert)))
  }

  async function hosted(node: NodeProcess): Promise<AgentInfo[]> {
    return (await node.api.get<{ agents: AgentInfo[] }>('agents/hosted')).agents
  }

  async function count(from: NodeProcess, to: string): Promise<Counted> {
    const sent = await from.api.post<{ response: Counted }>('agents/send', {
      from: caller,
      to,
      type: 'count',
      request: true,
      timeout: 50_000
    })
    return sent.response
  }

  before(async () => {
    root = await key()
    const a = await spawnNode({ extraArgs: KINDS })
    nodes = [
      a,
      ...(await Promise.all([1, 2].map(async () => await spawnNode({ bootstrap: [a.tcpAddr], extraArgs: KINDS }))))
    ]
    await waitUntil('A connected to B and C', async () => (await a.api.get<unknown[]>('peers')).length === 2, 60_000)
    // each node trusts the root, which makes it a member that may host, spawn and derive agents
    for (const n of nodes) await n.api.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
    for (const n of nodes) await grantAll(principalOf(n), '(cyberspace (* set member (agent)))')
    // A runs the key generation: a 2-of-3 cluster key
    for (const n of nodes.slice(1))
      await n.api.post('spki/acl', { principal: principalOf(a), tag: '(cyberspace (cluster))' })
    await cliOk(
      a,
      'cluster',
      'init',
      '--members',
      `${nodes[1].peerId},${nodes[2].peerId}`,
      '--threshold',
      '2',
      '--json'
    )
    await waitUntil(
      'every node to see three alive members offering counter',
      async () =>
        (await Promise.all(nodes.map(async n => await n.api.get<MembersView>('members')))).every(
          v =>
            v.members.filter(m => m.state === 'alive' && (m.meta.kinds ?? '').split(',').includes('counter')).length ===
            3
        ),
      90_000,
      500
    )
  })

  after(async () => {
    await stopNodes(nodes)
  })

  it('spawns a counter on A and counts requests from an agent on B', async () => {
    const [a, b] = nodes
    const spawned = await a.api.post<AgentInfo>('agents', { kind: 'counter', id: 'c-1' })
    counter = spawned.principal
    assert.equal(spawned.key, 'cluster')
    caller = (await b.api.post<AgentInfo>('agents', { kind: 'echo', id: 'caller', key: 'local' })).principal
    await grantAll(caller, '(cyberspace (mailbox (send)))')
    // the root names the counter: B resolves "<root>'s counter" through the registry
    const named = await nameCert(root, 'counter', { kind: 'key', principal: counter })
    await importAll(toAdvanced(signedCertToSexp(named)))
    for (let i = 1; i <= 12; i++) assert.deepEqual(await count(b, counter), { n: i, host: a.peerId })
  })

  it('resumes on B or C after kill -9 of A: same principal, state from its checkpoint and replay, record and name follow it', async () => {
    const [a, b, c] = nodes
    a.proc.kill('SIGKILL')
    let successor: NodeProcess | undefined
    await waitUntil(
      'B or C to run the counter',
      async () => {
        for (const n of [b, c])
          if ((await hosted(n)).some(x => x.principal === counter && x.status === 'running')) successor = n
        return successor != null
      },
      120_000,
      500
    )
    assert.ok(successor != null)
    const other = successor === b ? c : b
    assert.ok(!(await hosted(other)).some(x => x.principal === counter), 'one host only')
    // checkpoint at 10, two events replayed: the next is 13
    assert.deepEqual(await count(b, `${root.id}'s counter`), { n: 13, host: successor.peerId })
    const record = await b.api.get<{ agents: AgentView[] }>('agents/get', { agent: counter })
    assert.equal(record.agents[0].host, successor.peerId)
  })

  it('the old host, restarted on its data directory, does not run the agent', async () => {
    const [a, b] = nodes
    const again = await spawnNode({ dataDir: a.dataDir, bootstrap: [b.tcpAddr], extraArgs: KINDS })
    nodes[0] = again
    await waitUntil(
      'B to see A alive again',
      async () =>
        (await b.api.get<MembersView>('members')).members.some(m => m.peerId === again.peerId && m.state === 'alive'),
      90_000,
      500
    )
    // it has heard the directory and passed several placement rounds: it still does not run it
    for (let i = 0; i < 10; i++) {
      assert.ok(!(await hosted(again)).some(x => x.principal === counter), 'the restarted host runs the agent')
      await sleep(1000)
    }
    const next = await count(b, counter)
    assert.equal(next.n, 14)
    assert.notEqual(next.host, again.peerId)
  })
})
