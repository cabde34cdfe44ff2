/**
 * The public API (issue 16): request latency for reads and writes, events per second through the
 * server-sent-event stream, and MCP tool-call latency — each beside its floor measured in the same
 * run on the same machine: a bare `node:http` hello-world (bench/api-floor.ts, a process of its own
 * as the node is) answering JSON, the same server broadcasting SSE events it is posted, and a bare
 * MCP server (`@modelcontextprotocol/sdk`, one tool that answers a line) over Streamable HTTP and
 * over stdio. One client loop (bench/api-load.ts: a keep-alive `node:http` agent) measures both.
 *
 * - Reads (an external agent's token): `GET /api/whoami`, `GET /api/worknodes` (a page of 20
 *   items), `GET /api/worknodes/{id}` (an item with its history): one after another (p50/p99), and
 *   IN_FLIGHT at once (requests per second, p50/p99 under that load).
 * - Writes: `POST /api/worknodes` on a LOCAL and on an EVENTUAL board; `POST /api/tasks/{id}/claim`
 *   and `…/complete` on the items written: one after another, and IN_FLIGHT at once (creates).
 * - Events: `GET /api/events/stream` open while a writer creates SSE_WRITES items IN_FLIGHT at once:
 *   events per second received, and write sent (or answered) → its event received (p50/p99: the
 *   journal holds every event back for its settle delay, 500 ms by default, so events from other
 *   nodes join in HLC order); then a stream that replays the journal from its start, with the
 *   agent's token and with the operator's (no read checks): events per second. The floor: the same
 *   writer and reader on the bare server (`POST /emit` → every stream).
 * - MCP: tool calls one after another with `@modelcontextprotocol/sdk`'s Client, over Streamable
 *   HTTP (`/mcp` on the API port) and over stdio (`cyberspace mcp --url … --token …`): `whoami` and
 *   `list_work`, beside the bare MCP server's `hello`.
 *
 * Topology: one node process started by the CLI (durable stores, a member of its own cluster), an
 * external agent attached on it (`POST /api/node/agents {kind: 'external'}`, its token), granted
 * everything on the two boards by a root key the node trusts.
 *
 * `npm run bench api -- --quick` (or API_BENCH_QUICK=1) scales the counts down by 4. API_BENCH_PARTS
 * (default `reads,writes,events,mcp`) picks what is measured; the floor's hello-world always is.
 */
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { TOKEN_FILE } from '../node/data-dir.ts'
import { signedCertToSexp } from '../src/spki/cert.ts'
import { toAdvanced } from '../src/spki/sexp.ts'
import { admit } from '../test/helpers/members.ts'
import { CLI, spawnNode, stopNodes } from '../test/helpers/processes.ts'
import { grant, key } from '../test/spki/fixtures.ts'
import { HttpTarget, inFlight, readSse, sequential } from './api-load.ts'
import { percentile } from './harness.ts'
import { progress } from './member-cluster.ts'
import type { LoadResult, SseEvent } from './api-load.ts'
import type { Benchmark, BenchResult } from './harness.ts'
import type { PrincipalId } from '../src/crypto/principal.ts'
import type { NodeProcess } from '../test/helpers/processes.ts'
import type { ChildProcess } from 'node:child_process'
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js'

const QUICK =
  process.argv.includes('--quick') || process.env.API_BENCH_QUICK === '1' || process.env.npm_config_quick === 'true'
const SCALE = QUICK ? 0.25 : 1
const count = (n: number): number => Math.max(20, Math.round(n * SCALE))
/** Requests of each read route, one after another; and in flight. */
const READS = count(1000)
const READS_LOADED = count(2000)
/** Writes of each kind, one after another; creates in flight. */
const WRITES = count(300)
const WRITES_LOADED = count(600)
/** Items the stream's writer creates; events the replay reads at least. */
const SSE_WRITES = count(1000)
/** Tool calls of each MCP measure. */
const MCP_CALLS = count(300)
/** Requests in flight in the loaded measures (and the writer's). */
const IN_FLIGHT = 16
/** Items on the board the list reads; calls before each measure that are not counted. */
const LISTED = 20
const WARMUP = 50
const LOCAL = 'bench-local'
const EVENTUAL = 'bench-eventual'
const FLOOR = fileURLToPath(new URL('./api-floor.ts', import.meta.url))
/** Longest the stream may take to deliver the writer's last event once written, ms. */
const SSE_SETTLE_MS = 30_000
const PARTS = new Set((process.env.API_BENCH_PARTS ?? 'reads,writes,events,mcp').split(','))

interface Floor {
  proc: ChildProcess
  url: string
}

/** Starts the floor server (bench/api-floor.ts) and answers its URL. */
async function startFloor(): Promise<Floor> {
  const proc = spawn(process.execPath, [FLOOR], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the floor server did not start: ${out}`)), 30_000)
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n').find(l => l.startsWith('{'))
      if (line == null || !out.includes('\n')) return
      clearTimeout(timer)
      resolve((JSON.parse(line) as { port: number }).port)
    })
    proc.stderr.on('data', (d: Buffer) => {
      out += d.toString()
    })
    proc.once('exit', code => reject(new Error(`the floor server exited ${code}: ${out}`)))
  })
  return { proc, url: `http://127.0.0.1:${port}` }
}

interface Measure {
  name: string
  ms?: number[]
  perS?: number
  /** The row of the floor this one is set beside. */
  floor?: string
  /**
   * 'events/s': a rate set beside its floor's rate (the floor's / this one's is the ratio); 'shown':
   * a figure shown as it is, with no ratio (a time that may be negative, beside nothing).
   */
  unit?: 'events/s' | 'shown'
}

/** An MCP client connected over `transport`; calls `tool` and fails on an error result. */
async function mcpClient(
  transport: Transport
): Promise<{ call: (tool: string, args?: Record<string, unknown>) => Promise<unknown>; close: () => Promise<void> }> {
  const client = new McpClient({ name: 'cyberspace-bench', version: '1.0.0' })
  await client.connect(transport)
  return {
    call: async (tool, args = {}) => {
      const result = await client.callTool({ name: tool, arguments: args })
      if (result.isError === true) throw new Error(`${tool} answered an error: ${JSON.stringify(result.content)}`)
      return result
    },
    close: async () => await client.close()
  }
}

/** Events of the writer seen on a stream: `subject` → when it arrived. */
function collect(events: SseEvent[], board: string, prefix: string): Map<string, number> {
  const seen = new Map<string, number>()
  for (const e of events) {
    if (e.event === 'missed') throw new Error(`the stream missed events: ${e.data}`)
    let parsed: { source?: string; type?: string; subject?: string }
    try {
      parsed = JSON.parse(e.data) as typeof parsed
    } catch {
      continue
    }
    if (parsed.subject?.startsWith(`${board}/${prefix}`) === true && !seen.has(parsed.subject))
      seen.set(parsed.subject, e.at)
  }
  return seen
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/**
 * Events per second through a stream while IN_FLIGHT writers make SSE_WRITES events, and each
 * write's latency to its event: `write(i)` makes event `i` (subject `<board>/<prefix><i>`).
 */
async function streamWhileWriting(
  target: HttpTarget,
  streamPath: string,
  board: string,
  prefix: string,
  write: (i: number) => Promise<unknown>
): Promise<{ sentToEvent: number[]; answeredToEvent: number[]; perS: number; writes: LoadResult }> {
  const events: SseEvent[] = []
  const res = await target.send('GET', streamPath, undefined, { accept: 'text/event-stream' })
  if (res.statusCode !== 200) throw new Error(`${streamPath} answered ${res.statusCode}`)
  const stream = readSse(res, e => events.push(e))
  const sent: number[] = []
  const answered: number[] = []
  try {
    const t0 = performance.now()
    const writes = await inFlight(IN_FLIGHT, SSE_WRITES, async i => {
      sent[i] = performance.now()
      await write(i)
      answered[i] = performance.now()
    })
    await waitUntil(
      `${SSE_WRITES} events on ${streamPath}`,
      () => collect(events, board, prefix).size >= SSE_WRITES,
      SSE_SETTLE_MS
    )
    const seen = collect(events, board, prefix)
    const index = (subject: string): number => Number(subject.slice(board.length + 1 + prefix.length))
    const sorted = (xs: number[]): number[] => xs.sort((a, b) => a - b)
    const last = Math.max(...seen.values())
    return {
      sentToEvent: sorted([...seen].map(([subject, at]) => at - sent[index(subject)])),
      answeredToEvent: sorted([...seen].map(([subject, at]) => at - answered[index(subject)])),
      perS: seen.size / ((last - t0) / 1000),
      writes
    }
  } finally {
    stream.close()
  }
}

/** Events per second of a stream that replays at least `total` events, ended by the event `last`. */
async function replay(
  target: HttpTarget,
  streamPath: string,
  isLast: (e: SseEvent) => boolean
): Promise<{ events: number; perS: number }> {
  let n = 0
  let endAt = 0
  const t0 = performance.now()
  const res = await target.send('GET', streamPath, undefined, { accept: 'text/event-stream' })
  if (res.statusCode !== 200) throw new Error(`${streamPath} answered ${res.statusCode}`)
  const stream = readSse(res, e => {
    if (endAt !== 0) return
    n++
    if (isLast(e)) endAt = e.at
  })
  try {
    await waitUntil(`the replay of ${streamPath}`, () => endAt !== 0, SSE_SETTLE_MS)
  } finally {
    stream.close()
  }
  return { events: n, perS: n / ((endAt - t0) / 1000) }
}

/** Grants `principal` everything on `boards`, by `root`, imported on `node`. */
async function grantBoards(
  node: NodeProcess,
  root: Awaited<ReturnType<typeof key>>,
  principal: PrincipalId,
  boards: string[]
): Promise<void> {
  for (const board of boards) {
    const cert = await grant(root, { kind: 'key', principal }, `(cyberspace (work ${board}))`, { propagate: false })
    await node.api.post('spki/import', { sexp: toAdvanced(signedCertToSexp(cert)) })
  }
}

/** What every part measures with: the node's API as the agent, the floor, and where results go. */
interface Context {
  node: NodeProcess
  /** The node's API with the agent's token, and with the operator's. */
  api: HttpTarget
  operator: HttpTarget
  agentToken: string
  floor: Floor
  bare: HttpTarget
  add: (m: Measure) => void
}

const FLOOR_SEQ = 'floor: GET /hello (bare node:http, JSON)'
const FLOOR_LOADED = `floor: GET /hello, ${IN_FLIGHT} in flight`

async function measureFloor({ bare, add }: Context): Promise<void> {
  const hello = async (): Promise<unknown> => await bare.json('GET', '/hello')
  await sequential(WARMUP, hello)
  add({ name: FLOOR_SEQ, ms: await sequential(READS, hello) })
  add({ name: FLOOR_LOADED, ...(await inFlight(IN_FLIGHT, READS_LOADED, hello)) })
}

async function measureReads({ api, add }: Context): Promise<void> {
  const reads: Array<[string, () => Promise<unknown>]> = [
    ['GET /api/whoami', async () => await api.json('GET', '/api/whoami')],
    [
      `GET /api/worknodes (a page of ${LISTED} items)`,
      async () => await api.json('GET', `/api/worknodes?board=${LOCAL}&limit=${LISTED}`)
    ],
    ['GET /api/worknodes/{id} (with its history)', async () => await api.json('GET', `/api/worknodes/${LOCAL}:r0`)]
  ]
  for (const [name, fn] of reads) {
    await sequential(WARMUP, fn)
    add({ name, ms: await sequential(READS, fn), floor: FLOOR_SEQ })
    add({
      name: `${name}, ${IN_FLIGHT} in flight`,
      ...(await inFlight(IN_FLIGHT, READS_LOADED, fn)),
      floor: FLOOR_LOADED
    })
  }
  progress(`api: reads measured`)
}

async function measureWrites({ api, add }: Context): Promise<void> {
  for (const board of [LOCAL, EVENTUAL]) {
    const mode = board === LOCAL ? 'LOCAL' : 'EVENTUAL'
    const create = async (i: number, prefix: string): Promise<unknown> =>
      await api.json('POST', '/api/worknodes', { board, id: `${prefix}${i}`, title: `item ${i}`, kind: 'task' })
    await sequential(WARMUP, async i => await create(i, 'warm'))
    add({
      name: `POST /api/worknodes (${mode})`,
      ms: await sequential(WRITES, async i => await create(i, 'w')),
      floor: FLOOR_SEQ
    })
    add({
      name: `POST /api/tasks/{id}/claim (${mode})`,
      ms: await sequential(WRITES, async i => await api.json('POST', `/api/tasks/${board}:w${i}/claim`, {})),
      floor: FLOOR_SEQ
    })
    add({
      name: `POST /api/tasks/{id}/complete (${mode})`,
      ms: await sequential(
        WRITES,
        async i => await api.json('POST', `/api/tasks/${board}:w${i}/complete`, { result: { n: i } })
      ),
      floor: FLOOR_SEQ
    })
    add({
      name: `POST /api/worknodes (${mode}), ${IN_FLIGHT} in flight`,
      ...(await inFlight(IN_FLIGHT, WRITES_LOADED, async i => await create(i, 'l'))),
      floor: FLOOR_LOADED
    })
    progress(`api: writes on ${mode} measured`)
  }
}

async function measureEvents({ api, operator, bare, add }: Context): Promise<void> {
  const since = `${Date.now()}.0`
  const floorLive = await streamWhileWriting(
    bare,
    '/stream',
    'floor',
    's',
    async i => await bare.json('POST', '/emit', { source: 'board', type: 'create', subject: `floor/s${i}` })
  )
  const apiLive = await streamWhileWriting(
    api,
    `/api/events/stream?since=${since}`,
    LOCAL,
    's',
    async i =>
      await api.json('POST', '/api/worknodes', { board: LOCAL, id: `s${i}`, title: `streamed ${i}`, kind: 'task' })
  )
  const FLOOR_LIVE = `floor: SSE events/s while ${IN_FLIGHT} writers POST /emit (ms: write sent → event read)`
  add({ name: FLOOR_LIVE, ms: floorLive.sentToEvent, perS: floorLive.perS, unit: 'events/s' })
  add({
    name: `GET /api/events/stream: events/s while ${IN_FLIGHT} writers create on LOCAL (ms: write sent → event read)`,
    ms: apiLive.sentToEvent,
    perS: apiLive.perS,
    floor: FLOOR_LIVE,
    unit: 'events/s'
  })
  // negative where the event is read before the write's answer
  add({ name: 'floor: write answered → its event read (ms)', ms: floorLive.answeredToEvent, unit: 'shown' })
  add({
    name: 'GET /api/events/stream: write answered → its event read (ms)',
    ms: apiLive.answeredToEvent,
    unit: 'shown'
  })
  add({ name: `… the writers' creates meanwhile, ${IN_FLIGHT} in flight`, ...apiLive.writes, floor: FLOOR_LOADED })
  const lastSubject = `${LOCAL}/s${SSE_WRITES - 1}`
  const apiReplay = await replay(api, '/api/events/stream', e => e.data.includes(`"${lastSubject}"`))
  const floorReplay = await replay(bare, `/stream?replay=${apiReplay.events}`, e => e.id === String(apiReplay.events))
  const FLOOR_REPLAY = `floor: SSE replay of ${apiReplay.events} stored events (events/s)`
  add({ name: FLOOR_REPLAY, perS: floorReplay.perS, unit: 'events/s' })
  add({
    name: `GET /api/events/stream replaying the journal from its start (${apiReplay.events} events/s)`,
    perS: apiReplay.perS,
    floor: FLOOR_REPLAY,
    unit: 'events/s'
  })
  // the operator's stream checks no read rights: what the checks cost shows apart
  const operatorReplay = await replay(operator, '/api/events/stream', e => e.data.includes(`"${lastSubject}"`))
  add({
    name: `… the same replay with the operator's token, no read checks (${operatorReplay.events} events/s)`,
    perS: operatorReplay.perS,
    floor: FLOOR_REPLAY,
    unit: 'events/s'
  })
  progress(`api: events measured`)
}

/** An MCP server to call: how to reach it, and the tool call measured. */
interface McpTarget {
  name: string
  transport: () => Transport
  tool: string
  args: Record<string, unknown>
  floor?: string
}

async function measureMcp({ node, floor, agentToken, add }: Context): Promise<void> {
  const auth = { authorization: `Bearer ${agentToken}` }
  const http = (): Transport =>
    new StreamableHTTPClientTransport(new URL('/mcp', node.api.url), { requestInit: { headers: auth } })
  const stdio = (): Transport =>
    new StdioClientTransport({
      command: process.execPath,
      // --token=<t>: a token may start with '-', which a separate argument would pass off as an option
      args: [CLI, 'mcp', '--url', node.api.url, `--token=${agentToken}`],
      stderr: 'pipe'
    })
  const FLOOR_HTTP = 'floor MCP over Streamable HTTP: hello'
  const FLOOR_STDIO = 'floor MCP over stdio: hello'
  const list = { board: LOCAL, limit: LISTED }
  const targets: McpTarget[] = [
    {
      name: FLOOR_HTTP,
      transport: () => new StreamableHTTPClientTransport(new URL('/mcp', floor.url)),
      tool: 'hello',
      args: {}
    },
    { name: 'MCP over Streamable HTTP (/mcp): whoami', transport: http, tool: 'whoami', args: {}, floor: FLOOR_HTTP },
    {
      name: `MCP over Streamable HTTP (/mcp): list_work (${LISTED} items)`,
      transport: http,
      tool: 'list_work',
      args: list,
      floor: FLOOR_HTTP
    },
    {
      name: FLOOR_STDIO,
      transport: () =>
        new StdioClientTransport({ command: process.execPath, args: [FLOOR, '--stdio'], stderr: 'pipe' }),
      tool: 'hello',
      args: {}
    },
    { name: 'MCP over stdio (cyberspace mcp): whoami', transport: stdio, tool: 'whoami', args: {}, floor: FLOOR_STDIO },
    {
      name: `MCP over stdio (cyberspace mcp): list_work (${LISTED} items)`,
      transport: stdio,
      tool: 'list_work',
      args: list,
      floor: FLOOR_STDIO
    }
  ]
  for (const target of targets) {
    const client = await mcpClient(target.transport())
    try {
      const call = async (): Promise<unknown> => await client.call(target.tool, target.args)
      await sequential(WARMUP, call)
      add({ name: target.name, ms: await sequential(MCP_CALLS, call), floor: target.floor })
    } finally {
      await client.close()
    }
  }
  progress(`api: MCP measured`)
}

/** The node process, its agent (attached, granted both boards) and the items the reads read. */
async function startNode(): Promise<{ node: NodeProcess; operator: HttpTarget; api: HttpTarget; agentToken: string }> {
  const node = await spawnNode({ startTimeoutMs: 60_000 })
  try {
    const root = await key()
    await admit(node, root)
    await node.api.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
    const operator = new HttpTarget(node.api.url, (await readFile(join(node.dataDir, TOKEN_FILE), 'utf8')).trim())
    const attached = await operator.json<{ principal: PrincipalId; token: string }>('POST', '/api/node/agents', {
      kind: 'external',
      id: 'bench-agent'
    })
    await grantBoards(node, root, attached.principal, [LOCAL, EVENTUAL])
    await operator.json('POST', '/api/boards', { name: LOCAL, mode: 'local' })
    await operator.json('POST', '/api/boards', { name: EVENTUAL, mode: 'eventual' })
    const api = new HttpTarget(node.api.url, attached.token)
    for (let i = 0; i < LISTED; i++)
      await api.json('POST', '/api/worknodes', { board: LOCAL, id: `r${i}`, title: `read ${i}`, kind: 'task' })
    await api.json('POST', `/api/tasks/${LOCAL}:r0/claim`, {})
    await api.json('POST', `/api/tasks/${LOCAL}:r0/progress`, { percent: 50, message: 'half' })
    return { node, operator, api, agentToken: attached.token }
  } catch (err) {
    await stopNodes([node])
    throw err
  }
}

const benchmark: Benchmark = {
  name: 'api',
  description:
    'the public HTTP API of a node process: read and write latency, SSE events per second, MCP tool-call latency (Streamable HTTP and stdio), each beside a bare node:http (and bare MCP) floor on the same machine',
  async run(): Promise<BenchResult> {
    const t0 = performance.now()
    const loads = [`start ${loadavg()[0].toFixed(1)}`]
    const measures = new Map<string, Measure>()
    const floor = await startFloor()
    const bare = new HttpTarget(floor.url)
    let setupS = 0
    try {
      const { node, operator, api, agentToken } = await startNode()
      setupS = (performance.now() - t0) / 1000
      progress(`api: node ready with its agent and ${LISTED} items (${setupS.toFixed(1)} s)`)
      const ctx: Context = { node, api, operator, agentToken, floor, bare, add: m => measures.set(m.name, m) }
      try {
        await measureFloor(ctx)
        if (PARTS.has('reads')) await measureReads(ctx)
        if (PARTS.has('writes')) await measureWrites(ctx)
        if (PARTS.has('events')) await measureEvents(ctx)
        if (PARTS.has('mcp')) await measureMcp(ctx)
      } finally {
        api.close()
        operator.close()
        await stopNodes([node])
      }
    } finally {
      bare.close()
      floor.proc.kill('SIGTERM')
    }
    loads.push(`end ${loadavg()[0].toFixed(1)}`)

    // ---------------------------------------------------------------- the table
    const helloP50 = percentile(measures.get(FLOOR_SEQ)?.ms ?? [], 50)
    const rows: Array<Array<string | number>> = []
    const ratios: Record<string, number> = {}
    const shown = (v: number | undefined): number | string => (v != null && Number.isFinite(v) ? v : '-')
    for (const m of measures.values()) {
      const p50 = m.ms != null ? percentile(m.ms, 50) : undefined
      const p99 = m.ms != null ? percentile(m.ms, 99) : undefined
      const f = m.floor != null ? measures.get(m.floor) : undefined
      // a rate: how many times the floor's rate; a latency: how many times the floor's p50
      let vsFloor: number | undefined
      if (f != null && m.unit === 'events/s' && f.perS != null && m.perS != null) vsFloor = f.perS / m.perS
      else if (f?.ms != null && p50 != null) vsFloor = p50 / percentile(f.ms, 50)
      const vsHello = p50 != null && m.unit == null && !m.name.startsWith('floor') ? p50 / helloP50 : undefined
      if (vsFloor != null)
        ratios[m.unit === 'events/s' ? `${m.name}: floor rate / this rate` : `${m.name}: p50 / its floor's p50`] =
          vsFloor
      if (vsHello != null && m.floor !== FLOOR_SEQ) ratios[`${m.name}: p50 / hello-world p50`] = vsHello
      rows.push([m.name, shown(p50), shown(p99), shown(m.perS), shown(vsFloor), shown(vsHello)])
    }
    return {
      setup: {
        mode: QUICK ? 'quick' : 'full',
        node: '1 node process (CLI, durable stores, TCP 127.0.0.1, a member of its own cluster); an external agent attached on it (POST /api/node/agents), its token on every request, granted (cyberspace (work <board>)) on both boards by a root the node trusts',
        floor:
          'bench/api-floor.ts, a process of its own: bare node:http (JSON hello-world; POST /emit broadcast to SSE streams; a stored-event replay) and a bare stateless MCP server with one tool (@modelcontextprotocol/sdk) over Streamable HTTP and over stdio',
        client: `one keep-alive node:http agent per server; ${READS} reads and ${WRITES} writes of each kind one after another, ${READS_LOADED} reads / ${WRITES_LOADED} creates with ${IN_FLIGHT} in flight; ${SSE_WRITES} events written by ${IN_FLIGHT} writers while a stream reads; ${MCP_CALLS} calls of each MCP tool with @modelcontextprotocol/sdk's Client; ${WARMUP} uncounted calls before each`,
        latency:
          'ms from the request sent to its whole answer read; for events, from the write sent (or answered) to its event read off the stream; "× its floor" is p50 / the floor p50, or for a rate the floor rate / this rate',
        parts: [...PARTS].join(','),
        setupS: Math.round(setupS),
        durationS: Math.round((performance.now() - t0) / 1000),
        loadAverage: loads.join(', ')
      },
      columns: ['measure', 'p50 ms', 'p99 ms', 'per s', '× its floor', 'p50 × hello-world p50'],
      rows,
      ratios
    }
  }
}

export default benchmark
