/**
 * The agent registry's control-API routes, run in-process against member nodes on the memory
 * transport (publish, get by principal and by name, find with pages), and the `agents` commands'
 * checks that need no running node. End-to-end runs through `cyberspace agents …` belong with the
 * CLI tests once cli.ts and server.ts route to these.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { AGENTS_HELP, agentsCommand, parseDuration } from '../../node/agent-commands.ts'
import { AGENT_ERROR_STATUS, agentRoutes } from '../../node/api/agent-routes.ts'
import { HttpError } from '../../node/api/http.ts'
import { renderCommandHelp } from '../../node/cli.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { agentDhtRecords } from '../../src/registry/record.ts'
import { registry } from '../../src/registry/service.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { removeDir, tempDir, waitUntil } from '../helpers/processes.ts'
import { grant, key, nameCert, tag } from '../spki/fixtures.ts'
import type { AgentPage, AgentView } from '../../node/api/agent-routes.ts'
import type { Route } from '../../node/api/http.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { IncomingMessage } from 'node:http'

function post(body: unknown): IncomingMessage {
  return Object.assign(Readable.from([Buffer.from(JSON.stringify(body))]), {
    headers: { 'content-type': 'application/json' }
  }) as unknown as IncomingMessage
}

async function call(
  routes: Record<string, Route>,
  route: string,
  query: Record<string, string> = {},
  body?: unknown
): Promise<unknown> {
  const url = new URL(`http://127.0.0.1/api/v0/${route.split(' ')[1]}`)
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v)
  const handler = routes[route]
  assert.ok(handler != null, route)
  return await handler(body === undefined ? ({} as IncomingMessage) : post(body), url)
}

async function status(promise: Promise<unknown>): Promise<number> {
  try {
    await promise
  } catch (err) {
    if (err instanceof HttpError) return err.status
    const s = AGENT_ERROR_STATUS[(err as Error).name]
    assert.ok(s != null, `${(err as Error).name}: ${(err as Error).message}`)
    return s
  }
  throw new Error('expected a refusal')
}

function card(name: string, skill: string): Record<string, unknown> {
  return {
    name,
    description: `${name} agent`,
    version: '0.1.0',
    skills: [{ id: skill, name: skill, description: `does ${skill}`, tags: ['shared'] }]
  }
}

describe('agents: control-API routes and commands', function () {
  this.timeout(120_000)
  const nodes: CyberspaceNode[] = []
  const routes: Array<Record<string, Route>> = []
  let dir: string

  before(async () => {
    dir = await tempDir()
    const root = await key()
    for (let i = 0; i < 4; i++) {
      const records = agentDhtRecords()
      nodes.push(
        await memoryNode({
          bootstrap: i === 0 ? [] : [nodes[0].multiaddrs()[0]],
          dhtRecords: records,
          services: {
            // the first node returns at most 2 agents per find: pages must still reach all 4
            registry: registry({
              seen: records.seen,
              timeout: 5000,
              lookupTimeout: 15_000,
              ...(i === 0 ? { maxResults: 2 } : {})
            }) as never
          }
        })
      )
    }
    await waitUntil('every node connected to the first', () => nodes[0].peers().length === 3)
    const certs = await Promise.all(
      nodes.map(
        async n => await grant(root, { kind: 'key', principal: principalFromPeerId(n.peerId) }, '(cyberspace member)')
      )
    )
    certs.push(await nameCert(root, 'writer', { kind: 'key', principal: principalFromPeerId(nodes[1].peerId) }))
    for (const n of nodes) {
      await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
      await n.spki.addAll({ certs, crls: [] })
      routes.push(agentRoutes(n))
    }
  })

  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
    await removeDir(dir)
  })

  it('POST agents/publish publishes a card for the node key; GET agents/get reads it by principal and by name elsewhere', async () => {
    const published = (await call(
      routes[1],
      'POST agents/publish',
      {},
      { card: card('writer', 'write'), ttl: 600_000 }
    )) as AgentView & {
      peers: number
    }
    assert.equal(published.agent, principalFromPeerId(nodes[1].peerId))
    assert.ok(published.peers > 0)
    assert.ok(published.expires - Date.now() <= 600_000)
    const byPrincipal = (await call(routes[3], 'GET agents/get', { agent: published.agent })) as { agents: AgentView[] }
    assert.deepEqual(
      byPrincipal.agents.map(a => [a.agent, a.seq, a.card.name]),
      [[published.agent, published.seq, 'writer']]
    )
    const byPeerId = (await call(routes[2], 'GET agents/get', { agent: nodes[1].peerId.toString() })) as {
      agents: AgentView[]
    }
    assert.equal(byPeerId.agents[0].agent, published.agent)
    const byName = (await call(routes[2], 'GET agents/get', { agent: "cluster's writer" })) as { agents: AgentView[] }
    assert.equal(byName.agents[0].agent, published.agent)
  })

  it('GET agents pages through the agents of a skill with limit and cursor, past what one find returns', async () => {
    for (const i of [0, 2, 3])
      await call(routes[i], 'POST agents/publish', {}, { card: card(`agent-${i}`, `skill-${i}`) })
    const seen: string[] = []
    let cursor: string | null = null
    for (let pages = 0; pages < 10; pages++) {
      const query: Record<string, string> = { skill: 'shared', limit: '1' }
      if (cursor != null) query.cursor = cursor
      const page = (await call(routes[0], 'GET agents', query)) as AgentPage
      assert.ok(page.agents.length <= 1)
      seen.push(...page.agents.map(a => a.agent))
      cursor = page.next
      if (cursor == null) break
    }
    assert.deepEqual(seen, nodes.map(n => principalFromPeerId(n.peerId)).sort())
    const all = (await call(routes[1], 'GET agents', { skill: 'skill-2' })) as AgentPage
    assert.deepEqual(
      all.agents.map(a => a.agent),
      [principalFromPeerId(nodes[2].peerId)]
    )
    assert.equal(all.next, null)
  })

  it('refuses bad requests with 4xx statuses', async () => {
    assert.equal(await status(call(routes[0], 'GET agents', {})), 400)
    assert.equal(await status(call(routes[0], 'GET agents', { skill: 'x', limit: '0' })), 400)
    assert.equal(await status(call(routes[0], 'GET agents', { skill: 'x', limit: '1000' })), 400)
    assert.equal(await status(call(routes[0], 'GET agents', { skill: 'x', cursor: 'nope' })), 400)
    assert.equal(await status(call(routes[0], 'GET agents/get', {})), 400)
    assert.equal(await status(call(routes[0], 'GET agents/get', { agent: "cluster's nobody" })), 404)
    assert.equal(await status(call(routes[0], 'GET agents/get', { agent: (await key()).id })), 404)
    assert.equal(await status(call(routes[0], 'POST agents/publish', {}, { card: 'no' })), 400)
    assert.equal(await status(call(routes[0], 'POST agents/publish', {}, { card: { name: 'x' } })), 400)
    assert.equal(await status(call(routes[0], 'POST agents/publish', {}, { card: card('x', 'y'), ttl: 5 })), 400)
    const big = card('big', 'big')
    big.description = 'd'.repeat(2048)
    big.skills = Array.from({ length: 30 }, (_, i) => ({
      id: `s${i}`,
      name: 's',
      description: 'e'.repeat(1000),
      tags: []
    }))
    assert.equal(await status(call(routes[0], 'POST agents/publish', {}, { card: big })), 413)
  })

  it('the commands refuse bad usage before reaching a node, with one line naming the fix', async () => {
    const out: string[] = []
    const print = (line: string): void => {
      out.push(line)
    }
    await assert.rejects(agentsCommand(dir, ['find'], {}, print), { name: 'UsageError', message: /--skill/ })
    await assert.rejects(agentsCommand(dir, ['get'], {}, print), { name: 'UsageError' })
    await assert.rejects(agentsCommand(dir, ['publish'], {}, print), { name: 'UsageError', message: /--card/ })
    await assert.rejects(agentsCommand(dir, ['publish'], { card: join(dir, 'missing.json') }, print), {
      name: 'UsageError',
      message: /cannot read --card/
    })
    const notJson = join(dir, 'card.txt')
    await writeFile(notJson, 'name: reviewer')
    await assert.rejects(agentsCommand(dir, ['publish'], { card: notJson }, print), {
      name: 'UsageError',
      message: /not JSON/
    })
    // a well-formed command with no node running names how to start one
    const good = join(dir, 'card.json')
    await writeFile(good, JSON.stringify(card('a', 'b')))
    await assert.rejects(agentsCommand(dir, ['publish'], { card: good, ttl: '1h' }, print), {
      name: 'NodeNotRunningError',
      message: /npm start -- --data-dir/
    })
    assert.deepEqual(out, [])
    assert.equal(parseDuration('90s'), 90_000)
    assert.equal(parseDuration('30m'), 1_800_000)
    assert.equal(parseDuration('2d'), 172_800_000)
    assert.equal(parseDuration('1500'), 1500)
    assert.throws(() => parseDuration('1 hour'), { name: 'UsageError' })
    for (const c of AGENTS_HELP.commands) {
      const text = renderCommandHelp(c)
      assert.match(text, new RegExp(`^usage: cyberspace ${c.name}`))
      assert.match(text, /\nexample:\n {2}npx --no-install cyberspace agents /)
    }
  })
})
