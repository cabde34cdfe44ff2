/**
 * The agent registry end to end through the real CLI among four member node processes: a card
 * published on one node is found from another by principal, by SDSI name and by skill; a record
 * published by a node that is no member is refused.
 */
import { strict as assert } from 'node:assert'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { admit } from '../helpers/members.ts'
import { cliOk, cliOn, spawnNode, stopNodes, tempDir, waitUntil } from '../helpers/processes.ts'
import { key, nameCert } from '../spki/fixtures.ts'
import type { AgentView } from '../../node/api/agent-routes.ts'
import type { MembersView } from '../../node/api/membership-routes.ts'
import type { NodeProcess } from '../helpers/processes.ts'

const CARD = {
  name: 'reviewer',
  description: 'reviews pull requests',
  version: '1.2.0',
  skills: [
    {
      id: 'code-review',
      name: 'Code review',
      description: 'reads a diff and comments',
      tags: ['review', 'typescript'],
      examples: ['review this diff']
    }
  ]
}

describe('agents: the registry through the CLI among node processes', function () {
  this.timeout(300_000)
  let nodes: NodeProcess[] = []
  let outsider: NodeProcess
  let cardFile: string
  let rootId: string

  before(async () => {
    const root = await key()
    rootId = root.id
    const first = await spawnNode()
    nodes = [first]
    for (let i = 1; i < 4; i++) nodes.push(await spawnNode({ bootstrap: [first.tcpAddr] }))
    outsider = await spawnNode({ bootstrap: [first.tcpAddr] })
    for (const node of nodes) await admit(node, root)
    // the outsider trusts the root too, but holds no member certificate
    await outsider.api.post('spki/acl', { principal: root.id, tag: '(cyberspace member)' })
    // the root's "reviewer" is node A's key: a name certificate held by node B alone
    const reviewer = principalFromPeerId(peerIdFromString(nodes[0].peerId))
    const named = await nameCert(root, 'reviewer', { kind: 'key', principal: reviewer })
    await nodes[1].api.post('spki/import', { sexp: toAdvanced(signedCertToSexp(named)) })
    await waitUntil(
      'every member to list 4 alive members',
      async () =>
        (await Promise.all(nodes.map(async n => await n.api.get<MembersView>('members')))).every(
          v => v.members.filter(m => m.state === 'alive').length === 4
        ),
      90_000,
      500
    )
    cardFile = join(await tempDir(), 'reviewer.json')
    await writeFile(cardFile, JSON.stringify(CARD))
  })

  after(async () => {
    await stopNodes([...nodes, outsider])
  })

  it('publishes on A; D finds it by principal, by name and by skill', async () => {
    const [a, , , d] = nodes
    const published = JSON.parse(
      await cliOk(a, 'agents', 'publish', '--card', cardFile, '--ttl', '10m', '--json')
    ) as AgentView
    const agent = principalFromPeerId(peerIdFromString(a.peerId))
    assert.equal(published.agent, agent)
    assert.equal(published.host, a.peerId)

    const byPrincipal = JSON.parse(await cliOk(d, 'agents', 'get', agent, '--json')) as AgentView
    assert.equal(byPrincipal.card.name, 'reviewer')
    assert.equal(byPrincipal.seq, published.seq)
    assert.ok(byPrincipal.card.supportedInterfaces.some(i => i.url.includes(a.peerId)))

    const byName = JSON.parse(await cliOk(d, 'agents', 'get', `${rootId}'s reviewer`, '--json')) as
      AgentView | AgentView[]
    assert.equal((Array.isArray(byName) ? byName[0] : byName).agent, agent)

    for (const skill of ['code-review', 'typescript']) {
      const found = JSON.parse(await cliOk(d, 'agents', 'find', '--skill', skill, '--json')) as { agents: AgentView[] }
      assert.deepEqual(
        found.agents.map(x => x.agent),
        [agent],
        `found by ${skill}`
      )
    }
    const text = await cliOk(d, 'agents', 'get', agent)
    assert.match(text, /^ {2}skill {7}code-review \[review, typescript\]: Code review$/m)
  })

  it('a record published by a node that is no member is refused by every member', async () => {
    const [, b] = nodes
    await cliOk(outsider, 'agents', 'publish', '--card', cardFile, '--ttl', '10m')
    const refused = await cliOn(b, 'agents', 'get', principalFromPeerId(peerIdFromString(outsider.peerId)))
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^cyberspace: .*member/m)
    const found = JSON.parse(await cliOk(b, 'agents', 'find', '--skill', 'code-review', '--json')) as {
      agents: AgentView[]
    }
    assert.ok(found.agents.every(x => x.host !== outsider.peerId))
  })
})
