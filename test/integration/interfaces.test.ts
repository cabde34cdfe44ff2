/**
 * The seed's success scenario through the interfaces an external agent speaks (issue 16): three node
 * processes on 127.0.0.1, members of one cluster, an EVENTUAL board, and on each node one external
 * agent attached by its operator (`POST /api/node/agents {kind: 'external'}`) that holds nothing but
 * its node's URL and its own token:
 * - agent A is driven over MCP: `@modelcontextprotocol/sdk`'s Client over stdio, spawning
 *   `cyberspace mcp --url … --token …` (what an MCP host does); it reads events with `events_since`;
 * - agent B is a Python program (test/integration/fixtures/interfaces_agent.py) using the Python
 *   SDK (sdk/python), run by the system's python3; it reads events with `client.events()`;
 * - agent C is driven with the TypeScript SDK (src/api/client.ts); it reads events with
 *   `client.subscribe()`.
 * C creates a goal with four tasks, each needing an agent's skill: t1 (A); then t2 (B) and t3 (C),
 * both after t1, worked at once on two nodes; t4 (A) after both. Each agent claims what it may when
 * it is ready, reports progress and completes it with a result; C completes the goal once every
 * task is done. Then: every task was completed once, by the agent with its skill, after its
 * dependencies; every agent's event stream showed its node's feed of the board's events — the
 * journal's one sequence for every reader of the node, in HLC order but for events it marks late —
 * with nothing missing and nothing twice; every node holds the same items and the same events.
 */
import { strict as assert } from 'node:assert'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { peerIdFromString } from '@libp2p/peer-id'
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { TOKEN_FILE } from '../../node/data-dir.ts'
import { Client } from '../../src/api/client.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { admit } from '../helpers/members.ts'
import { CLI, spawnNode, stopNodes, waitUntil } from '../helpers/processes.ts'
import { grant, key } from '../spki/fixtures.ts'
import type { Event, WorkItem } from '../../src/api/schema.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { Key } from '../spki/fixtures.ts'
import type { ChildProcess } from 'node:child_process'
import type * as z from 'zod'

const BOARD = 'e2e'
const GOAL = 'goal'
/**
 * The goal's tasks, each needing one agent's skill: t1 first; then t2 and t3 at once, on two nodes
 * (writes a third node may receive out of HLC order, which its journal settles); t4 once both are
 * done.
 */
const TASKS = [
  { id: 't1', skill: 'mcp', deps: [] as string[] },
  { id: 't2', skill: 'python', deps: ['t1'] },
  { id: 't3', skill: 'typescript', deps: ['t1'] },
  { id: 't4', skill: 'mcp', deps: ['t2', 't3'] }
]
const PYTHON_AGENT = fileURLToPath(new URL('./fixtures/interfaces_agent.py', import.meta.url))
const PYTHON_SDK = fileURLToPath(new URL('../../sdk/python', import.meta.url))
/** The longest the agents may take to finish the goal, ms. */
const RUN_MS = 240_000
/** Board events every replica keeps alike: a replica's refusals and reinstatements are its own. */
const PER_REPLICA = new Set(['refused', 'reinstated'])

type WorkItemView = z.output<typeof WorkItem>
type EventView = z.output<typeof Event>

interface Agent {
  name: string
  skill: string
  node: NodeProcess
  principal: PrincipalId
  token: string
  /** The board's events as its interface showed them, in the order it showed them. */
  seen: EventView[]
  /** Refusals the agent was told of. */
  refusals: string[]
}

const principalOf = (node: NodeProcess): PrincipalId => principalFromPeerId(peerIdFromString(node.peerId))
const hlcText = (e: { hlc: readonly number[] }): string => `${e.hlc[0]}.${e.hlc[1]}`
/** An event as every replica names it. */
const line = (e: EventView): string => `${hlcText(e)} ${e.type} ${e.subject}`
const compareHlc = (a: readonly number[], b: readonly number[]): number => a[0] - b[0] || a[1] - b[1]
const ofBoard = (e: EventView): boolean => e.source === 'board' && e.subject.startsWith(`${BOARD}/`)
const isGoalDone = (e: EventView): boolean => e.subject === `${BOARD}/${GOAL}` && e.type === 'complete'

/** The structured answer of an MCP tool call; an error result throws with its text. */
function toolAnswer<T>(result: Awaited<ReturnType<McpClient['callTool']>>, tool: string): T {
  if (result.isError === true) throw new Error(`${tool}: ${JSON.stringify(result.content)}`)
  return result.structuredContent as T
}

describe('interfaces: agents over MCP, the Python SDK and the TypeScript SDK on three node processes finish a goal of dependent tasks', function () {
  this.timeout(480_000)
  let nodes: NodeProcess[] = []
  let root: Key
  /** Each node's operator, through the TypeScript SDK. */
  const operators: Client[] = []
  const agents: Agent[] = []
  let python: ChildProcess | undefined
  let mcp: McpClient | undefined

  async function grantEverywhere(principal: PrincipalId, tagText: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal }, tagText, { propagate: false })
    const sexp = toAdvanced(signedCertToSexp(cert))
    for (const n of nodes) await n.api.post('spki/import', { sexp })
  }

  /** The board's history in the journal of `operator`'s node: its events, in the journal's order. */
  async function history(operator: Client): Promise<EventView[]> {
    const out: EventView[] = []
    let after: string | undefined
    for (let page = 0; page < 100; page++) {
      const got = await operator.events({ limit: 1000, ...(after != null ? { after } : {}) })
      out.push(...got.events.filter(ofBoard))
      if (!got.more) break
      after = got.cursor
    }
    return out.filter(e => !PER_REPLICA.has(e.type))
  }

  before(async () => {
    root = await key()
    const a = await spawnNode()
    nodes = [a, ...(await Promise.all([1, 2].map(async () => await spawnNode({ bootstrap: [a.tcpAddr] }))))]
    for (const n of nodes) {
      await admit(n, root)
      await n.api.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
    }
    for (const n of nodes) await grantEverywhere(principalOf(n), '(cyberspace (* set member (agent) (log)))')
    await waitUntil(
      'three alive members on every node',
      async () =>
        (
          await Promise.all(nodes.map(async n => await n.api.get<{ members: Array<{ state: string }> }>('members')))
        ).every(v => v.members.filter(m => m.state === 'alive').length === 3),
      90_000,
      500
    )
    for (const n of nodes) {
      const operator = new Client({
        url: n.api.url,
        token: (await readFile(join(n.dataDir, TOKEN_FILE), 'utf8')).trim()
      })
      operators.push(operator)
      await operator.openBoard(BOARD, 'eventual')
    }
    // the operators attach one external agent each and hand it its token, nothing more
    for (const [i, [name, skill]] of [
      ['A', 'mcp'],
      ['B', 'python'],
      ['C', 'typescript']
    ].entries()) {
      const attached = await operators[i].attachAgent({ kind: 'external', id: `agent-${name.toLowerCase()}` })
      assert.ok(attached.token != null, `agent ${name} got a token`)
      agents.push({
        name,
        skill,
        node: nodes[i],
        principal: attached.principal as PrincipalId,
        token: attached.token,
        seen: [],
        refusals: []
      })
    }
    // A and B read the board and work its tasks; C coordinates (everything on the board)
    for (const worker of agents.slice(0, 2)) {
      await grantEverywhere(worker.principal, `(cyberspace (work ${BOARD} read))`)
      await grantEverywhere(worker.principal, `(cyberspace (work ${BOARD} (* set claim progress complete) task))`)
    }
    await grantEverywhere(agents[2].principal, `(cyberspace (work ${BOARD}))`)
  })

  after(async () => {
    python?.kill('SIGKILL')
    await mcp?.close().catch(() => {})
    await stopNodes(nodes)
  })

  it('each agent works the task of its skill when it is ready, the goal completes, every agent saw every board event in HLC order, and every node holds the same items', async () => {
    const [agentA, agentB, agentC] = agents
    const stop = new AbortController()
    const timer = setTimeout(() => stop.abort(new Error(`the goal was not done in ${RUN_MS} ms`)), RUN_MS)

    // ------------------------------------------------------------ C: the TypeScript SDK
    const c = new Client({ url: agentC.node.api.url, token: agentC.token })
    const watchC = (async () => {
      for await (const event of c.subscribe({ signal: stop.signal })) {
        if (!ofBoard(event)) continue
        agentC.seen.push(event)
        if (isGoalDone(event)) return
      }
    })()
    // C holds the goal before any task exists, so every write after it follows the one before
    await c.createWorknode({ board: BOARD, id: GOAL, kind: 'goal', title: 'ship the release' })
    assert.equal((await c.claimTask(`${BOARD}:${GOAL}`)).outcome.accepted, true)
    for (const t of TASKS)
      await c.createWorknode({
        board: BOARD,
        id: t.id,
        parent: GOAL,
        kind: 'task',
        title: `the ${t.skill} part`,
        skills: [t.skill],
        deps: t.deps
      })
    const workC = (async () => {
      for (;;) {
        stop.signal.throwIfAborted()
        const tasks = (await c.listWorknodes(BOARD, { kind: 'task', limit: 100 })).items as WorkItemView[]
        for (const t of tasks) {
          if (!t.ready || t.status !== 'submitted' || t.assignee != null || !t.skills.includes(agentC.skill)) continue
          const claimed = await c.claimTask(t.ref)
          if (!claimed.outcome.accepted) {
            agentC.refusals.push(`${t.ref}: ${JSON.stringify(claimed.outcome)}`)
            continue
          }
          await c.progressTask(t.ref, { percent: 50, message: 'halfway, in TypeScript' })
          await c.completeTask(t.ref, { result: { by: 'typescript', skill: agentC.skill, item: t.id } })
        }
        if (tasks.length === TASKS.length && tasks.every(t => t.status === 'completed')) {
          const done = await c.completeTask(`${BOARD}:${GOAL}`, { result: { tasks: tasks.map(t => t.ref) } })
          assert.equal(done.outcome.accepted, true, JSON.stringify(done.outcome))
          return
        }
        await new Promise(resolve => setTimeout(resolve, 250))
      }
    })()

    // ------------------------------------------------------------ B: the Python SDK, in its own process
    let pythonOut = ''
    python = spawn('python3', [PYTHON_AGENT], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        PYTHONPATH: PYTHON_SDK,
        PYTHONUNBUFFERED: '1',
        CYBERSPACE_URL: agentB.node.api.url,
        CYBERSPACE_TOKEN: agentB.token,
        E2E_BOARD: BOARD,
        E2E_SKILL: agentB.skill,
        E2E_GOAL: GOAL,
        E2E_DEADLINE_S: String(RUN_MS / 1000)
      }
    })
    python.stdout?.on('data', (d: Buffer) => {
      pythonOut += d.toString()
    })
    python.stderr?.on('data', (d: Buffer) => {
      pythonOut += d.toString()
    })
    const pythonExit = new Promise<number | null>((resolve, reject) => {
      python?.once('error', reject)
      python?.once('close', resolve)
    })
    // a Python agent that gave up ends the run at once, saying why
    void pythonExit.then(
      code => {
        if (code !== 0) stop.abort(new Error(`the Python agent exited ${code}:\n${pythonOut}`))
      },
      (err: Error) => stop.abort(err)
    )

    // ------------------------------------------------------------ A: MCP over stdio (cyberspace mcp)
    mcp = new McpClient({ name: 'interfaces-test', version: '1.0.0' })
    const transport = new StdioClientTransport({
      command: process.execPath,
      // --token=<t>: a token may start with '-', which a separate argument would pass off as an option
      args: [CLI, 'mcp', '--url', agentA.node.api.url, `--token=${agentA.token}`],
      stderr: 'pipe'
    })
    let mcpErr = ''
    transport.stderr?.on('data', (d: Buffer) => {
      mcpErr += d.toString()
    })
    /** A failure of the MCP server's process, with what it said on stderr. */
    const mcpFailed = (err: unknown): Error =>
      new Error(`agent A over MCP: ${(err as Error).message}; cyberspace mcp said: ${mcpErr.slice(-2000)}`, {
        cause: err
      })
    await mcp.connect(transport).catch((err: unknown) => {
      throw mcpFailed(err)
    })
    const tool = async <T>(name: string, args: Record<string, unknown>): Promise<T> => {
      let result: Awaited<ReturnType<McpClient['callTool']>>
      try {
        result = await (mcp as McpClient).callTool({ name, arguments: args })
      } catch (err) {
        throw mcpFailed(err)
      }
      return toolAnswer<T>(result, name)
    }
    let goalSeenByA = false
    const watchA = (async () => {
      let after: string | undefined
      while (!goalSeenByA) {
        stop.signal.throwIfAborted()
        const page = await tool<{ events: EventView[]; cursor?: string }>('events_since', {
          limit: 1000,
          wait: 2000,
          ...(after != null ? { after } : {})
        })
        for (const event of page.events) {
          if (!ofBoard(event)) continue
          agentA.seen.push(event)
          if (isGoalDone(event)) goalSeenByA = true
        }
        after = page.cursor ?? after
      }
    })()
    const workA = (async () => {
      while (!goalSeenByA) {
        stop.signal.throwIfAborted()
        const page = await tool<{ items: WorkItemView[] }>('list_work', {
          board: BOARD,
          kind: 'task',
          status: 'submitted',
          ready: 'true'
        })
        for (const t of page.items) {
          if (t.assignee != null || !t.skills.includes(agentA.skill)) continue
          try {
            await tool('claim_work', { ref: t.ref })
          } catch (err) {
            agentA.refusals.push(`${t.ref}: ${(err as Error).message}`)
            continue
          }
          await tool('progress_work', { ref: t.ref, percent: 50, message: 'halfway, over MCP' })
          await tool('complete_work', { ref: t.ref, result: { by: 'mcp', skill: agentA.skill, item: t.id } })
        }
        await new Promise(resolve => setTimeout(resolve, 250))
      }
    })()

    try {
      await Promise.all([workA, watchA, workC, watchC])
      assert.equal(await pythonExit, 0, `the Python agent failed:\n${pythonOut}`)
    } finally {
      clearTimeout(timer)
      stop.abort()
    }

    // ------------------------------------------------------------ what the Python agent saw and did
    const said = pythonOut
      .split('\n')
      .filter(l => l.startsWith('{'))
      .map(l => JSON.parse(l) as Record<string, unknown>)
    assert.equal(said.at(-1)?.done, true, pythonOut)
    assert.equal(said.find(r => r.whoami != null)?.whoami, agentB.principal, 'the token acts as agent B')
    agentB.seen = said.filter(r => r.event != null).map(r => r.event as EventView)
    agentB.refusals = said.filter(r => r.refused != null).map(r => JSON.stringify(r))

    // ------------------------------------------------------------ every task once, by the right agent, when ready
    const bySkill = new Map(agents.map(x => [x.skill, x.principal]))
    const items = async (operator: Client): Promise<WorkItemView[]> =>
      await Promise.all(
        [GOAL, ...TASKS.map(t => t.id)].map(async id => (await operator.getWorknode(`${BOARD}:${id}`)) as WorkItemView)
      )
    const final = await items(operators[2])
    const byId = new Map(final.map(i => [i.id, i]))
    const doneAt = (id: string): number[] => {
      const entry = byId.get(id)?.history?.find(h => h.op === 'complete')
      assert.ok(entry != null, `${id} completed`)
      return entry.hlc
    }
    for (const t of TASKS) {
      const item = byId.get(t.id) as WorkItemView
      const who = bySkill.get(t.skill)
      assert.equal(item.status, 'completed', t.id)
      assert.equal(item.assignee, who, `${t.id} is held by the agent with skill ${t.skill}`)
      const completions = (item.history ?? []).filter(h => h.op === 'complete')
      assert.equal(completions.length, 1, `${t.id} completed exactly once`)
      assert.equal(completions[0].actor, who, `${t.id} completed by the agent with skill ${t.skill}`)
      const claims = (item.history ?? []).filter(h => h.op === 'claim')
      assert.deepEqual(
        claims.map(h => h.actor),
        [who],
        `${t.id} claimed once, by its agent`
      )
      assert.deepEqual(item.result, { by: t.skill, skill: t.skill, item: t.id })
      // claimed only once every dependency was completed
      for (const dep of t.deps)
        assert.ok(compareHlc(claims[0].hlc, doneAt(dep)) > 0, `${t.id} claimed after ${dep} completed`)
    }
    const goal = byId.get(GOAL) as WorkItemView
    assert.equal(goal.status, 'completed')
    assert.equal(goal.assignee, agentC.principal)
    for (const t of TASKS) assert.ok(compareHlc(doneAt(GOAL), doneAt(t.id)) > 0, `the goal completed after ${t.id}`)
    for (const x of agents) assert.deepEqual(x.refusals, [], `agent ${x.name} was refused nothing`)

    // ------------------------------------------------------------ nothing lost: every node holds the same items and history
    let views: WorkItemView[][] = []
    await waitUntil('every node to hold the same items', async () => {
      views = await Promise.all(operators.map(items))
      return views.every(v => JSON.stringify(v) === JSON.stringify(views[0]))
    }).catch(() => {})
    assert.deepEqual(views[0], final)
    assert.deepEqual(views[1], final)
    assert.deepEqual(views[2], final)
    // each node's feed of the board: the same events on every node (a late one may sit elsewhere)
    let feeds: EventView[][] = []
    const byHlc = (feed: EventView[]): string[] =>
      [...feed].sort((a, b) => compareHlc(a.hlc, b.hlc) || (line(a) < line(b) ? -1 : 1)).map(line)
    await waitUntil('every node to hold the same board events', async () => {
      feeds = await Promise.all(operators.map(history))
      return feeds.every(f => JSON.stringify(byHlc(f)) === JSON.stringify(byHlc(feeds[0])))
    }).catch(() => {})
    assert.deepEqual(byHlc(feeds[1]), byHlc(feeds[0]))
    assert.deepEqual(byHlc(feeds[2]), byHlc(feeds[0]))
    // the goal and every task created, claimed, progressed (not the goal) and completed, once each
    const ops = byHlc(feeds[0]).map(l => l.split(' ').slice(1).join(' '))
    for (const id of [GOAL, ...TASKS.map(t => t.id)]) {
      for (const op of id === GOAL ? ['create', 'claim', 'complete'] : ['create', 'claim', 'progress', 'complete'])
        assert.equal(ops.filter(o => o === `${op} ${BOARD}/${id}`).length, 1, `${op} of ${id} once on the board`)
    }
    assert.equal(ops.length, 3 + 4 * TASKS.length, ops.join(', '))

    // ------------------------------------------------------------ every agent saw its node's feed: in HLC order, none missing
    for (const [i, x] of agents.entries()) {
      const seen = x.seen.filter(e => !PER_REPLICA.has(e.type))
      assert.deepEqual(
        seen.map(line),
        feeds[i].map(line),
        `agent ${x.name} saw its node's feed of the board, once each`
      )
      // in HLC order, but for what the node marked late (it arrived past the journal's settle delay)
      const inOrder = seen.filter(e => e.late !== true)
      for (let k = 1; k < inOrder.length; k++)
        assert.ok(
          compareHlc(inOrder[k].hlc, inOrder[k - 1].hlc) >= 0,
          `agent ${x.name} saw ${line(inOrder[k])} after ${line(inOrder[k - 1])}`
        )
      // a late event is one the feed shows after a later one (the mark is not given lightly)
      for (const [k, e] of feeds[i].entries())
        if (e.late === true)
          assert.ok(
            feeds[i].slice(0, k).some(before => compareHlc(before.hlc, e.hlc) > 0),
            `node ${x.name} marks ${line(e)} late, yet nothing later came before it`
          )
      // and the node's feed itself puts nothing out of HLC order unmarked (events of one HLC, stamped
      // on two nodes in the same millisecond, are not ordered by it)
      const unmarked = feeds[i].filter(e => e.late !== true)
      for (let k = 1; k < unmarked.length; k++)
        assert.ok(
          compareHlc(unmarked[k].hlc, unmarked[k - 1].hlc) >= 0,
          `node ${x.name}'s feed is in HLC order: ${line(unmarked[k])} after ${line(unmarked[k - 1])}`
        )
    }
  })
})
