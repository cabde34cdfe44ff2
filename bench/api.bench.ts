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
 *   events per second received, and write sent → its event received (p50/p99); then a stream that
 *   replays the journal from its start: events per second. The floor: the same writer and reader on
 *   the bare server (`POST /emit` → every stream).
 * - MCP: tool calls one after another with `@modelcontextprotocol/sdk`'s Client, over Streamable
 *   HTTP (`/mcp` on the API port) and over stdio (`cyberspace mcp --url … --token …`): `whoami` and
 *   `list_work`, beside the bare MCP server's `hello`.
 *
 * Topology: one node process started by the CLI (durable stores, a member of its own cluster), an
 * external agent attached on it (`POST /api/node/agents {kind: 'external'}`, its token), granted
 * everything on the two boards by a root key the node trusts.
 *
 * `npm run bench api -- --quick` (or API_BENCH_QUICK=1) scales the counts down by 4.
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
  /** For rates: the floor's rate beside this one (floor / this is the ratio). */
  unit?: string
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
): Promise<{ live: Measure; writes: LoadResult }> {
  const events: SseEvent[] = []
  const res = await target.send('GET', streamPath, undefined, { accept: 'text/event-stream' })
  if (res.statusCode !== 200) throw new Error(`${streamPath} answered ${res.statusCode}`)
  const stream = readSse(res, e => events.push(e))
  const sent: number[] = []
  try {
    const t0 = performance.now()
    const writes = await inFlight(IN_FLIGHT, SSE_WRITES, async i => {
      sent[i] = performance.now()
      await write(i)
    })
    await waitUntil(
      `${SSE_WRITES} events on ${streamPath}`,
      () => collect(events, board, prefix).size >= SSE_WRITES,
      SSE_SETTLE_MS
    )
    const seen = collect(events, board, prefix)
    const lags = [...seen].map(([subject, at]) => at - sent[Number(subject.slice(board.length + 1 + prefix.length))])
    const last = Math.max(...seen.values())
    return { live: { name: '', ms: lags.sort((a, b) => a - b), perS: seen.size / ((last - t0) / 1000) }, writes }
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

const benchmark: Benchmark = {
  name: 'api',
  description:
    'the public HTTP API of a node process: read and write latency, SSE events per second, MCP tool-call latency (Streamable HTTP and stdio), each beside a bare node:http (and bare MCP) floor on the same machine',
  async run(): Promise<BenchResult> {
    const t0 = performance.now()
    const loads = [`start ${loadavg()[0].toFixed(1)}`]
    const floor = await startFloor()
    const nodes: NodeProcess[] = []
    const closers: Array<() => Promise<void> | void> = []
    const measures = new Map<string, Measure>()
    const add = (m: Measure): void => {
      measures.set(m.name, m)
    }
    try {
      // ---------------------------------------------------------------- the node, its agent, its boards
      const node = await spawnNode({ startTimeoutMs: 60_000 })
      nodes.push(node)
      const root = await key()
      await admit(node, root)
      await node.api.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
      const operatorToken = (await readFile(join(node.dataDir, TOKEN_FILE), 'utf8')).trim()
      const operator = new HttpTarget(node.api.url, operatorToken)
      closers.push(() => operator.close())
      const attached = await operator.json<{ principal: PrincipalId; token: string }>('POST', '/api/node/agents', {
        kind: 'external',
        id: 'bench-agent'
      })
      await grantBoards(node, root, attached.principal, [LOCAL, EVENTUAL])
      await operator.json('POST', '/api/boards', { name: LOCAL, mode: 'local' })
      await operator.json('POST', '/api/boards', { name: EVENTUAL, mode: 'eventual' })
      const api = new HttpTarget(node.api.url, attached.token)
      closers.push(() => api.close())
      for (let i = 0; i < LISTED; i++)
        await api.json('POST', '/api/worknodes', { board: LOCAL, id: `r${i}`, title: `read ${i}`, kind: 'task' })
      await api.json('POST', `/api/tasks/${LOCAL}:r0/claim`, {})
      await api.json('POST', `/api/tasks/${LOCAL}:r0/progress`, { percent: 50, message: 'half' })
      const setupS = (performance.now() - t0) / 1000
      progress(`api: node ready, agent ${attached.principal.slice(0, 12)}…, ${LISTED} items (${setupS.toFixed(1)} s)`)

      // ---------------------------------------------------------------- the floor
      const bare = new HttpTarget(floor.url)
      closers.push(() => bare.close())
      const hello = async (): Promise<unknown> => await bare.json('GET', '/hello')
      await sequential(WARMUP, hello)
      add({ name: 'floor: GET /hello (bare node:http, JSON)', ms: await sequential(READS, hello) })
      const helloLoaded = await inFlight(IN_FLIGHT, READS_LOADED, hello)
      add({ name: `floor: GET /hello, ${IN_FLIGHT} in flight`, ...helloLoaded })
      const FLOOR_SEQ = 'floor: GET /hello (bare node:http, JSON)'
      const FLOOR_LOADED = `floor: GET /hello, ${IN_FLIGHT} in flight`

      // ---------------------------------------------------------------- reads
      const reads: Array<[string, () => Promise<unknown>]> = [
        ['GET /api/whoami', async () => await api.json('GET', '/api/whoami')],
        [
          `GET /api/worknodes (${LISTED} items)`,
          async () => await api.json('GET', `/api/worknodes?board=${LOCAL}&limit=${LISTED}`)
        ],
        ['GET /api/worknodes/{id} (with history)', async () => await api.json('GET', `/api/worknodes/${LOCAL}:r0`)]
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

      // ---------------------------------------------------------------- writes
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

      // ---------------------------------------------------------------- events through SSE
      const since = `${Date.now()}.0`
      const floorLive = await streamWhileWriting(
        bare,
        '/stream',
        'floor',
        's',
        async i => await bare.json('POST', '/emit', { source: 'board', type: 'create', subject: `floor/s${i}` })
      )
      const FLOOR_SSE = `floor: SSE events while ${IN_FLIGHT} writers POST /emit`
      add({ ...floorLive.live, name: FLOOR_SSE, unit: 'events/s' })
      const apiLive = await streamWhileWriting(
        api,
        `/api/events/stream?since=${since}`,
        LOCAL,
        's',
        async i =>
          await api.json('POST', '/api/worknodes', { board: LOCAL, id: `s${i}`, title: `streamed ${i}`, kind: 'task' })
      )
      add({
        ...apiLive.live,
        name: `GET /api/events/stream while ${IN_FLIGHT} writers create (LOCAL)`,
        floor: FLOOR_SSE,
        unit: 'events/s'
      })
      const lastSubject = `${LOCAL}/s${SSE_WRITES - 1}`
      const apiReplay = await replay(api, '/api/events/stream', e => e.data.includes(`"${lastSubject}"`))
      const floorReplay = await replay(
        bare,
        `/stream?replay=${apiReplay.events}`,
        e => e.id === String(apiReplay.events)
      )
      const FLOOR_REPLAY = `floor: SSE replay of ${apiReplay.events} stored events`
      add({ name: FLOOR_REPLAY, perS: floorReplay.perS, unit: 'events/s' })
      add({
        name: `GET /api/events/stream replaying the journal (${apiReplay.events} events)`,
        perS: apiReplay.perS,
        floor: FLOOR_REPLAY,
        unit: 'events/s'
      })
      progress(`api: events measured`)

      // ---------------------------------------------------------------- MCP
      const auth = { authorization: `Bearer ${attached.token}` }
      const mcps: Array<[string, () => Transport, string, Record<string, unknown>]> = [
        [
          'floor MCP over Streamable HTTP: hello',
          () => new StreamableHTTPClientTransport(new URL('/mcp', floor.url)),
          'hello',
          {}
        ],
        [
          'MCP over Streamable HTTP (/mcp): whoami',
          () => new StreamableHTTPClientTransport(new URL('/mcp', node.api.url), { requestInit: { headers: auth } }),
          'whoami',
          {}
        ],
        [
          'MCP over Streamable HTTP (/mcp): list_work',
          () => new StreamableHTTPClientTransport(new URL('/mcp', node.api.url), { requestInit: { headers: auth } }),
          'list_work',
          { board: LOCAL, limit: LISTED }
        ],
        [
          'floor MCP over stdio: hello',
          () => new StdioClientTransport({ command: process.execPath, args: [FLOOR, '--stdio'], stderr: 'pipe' }),
          'hello',
          {}
        ],
        [
          'MCP over stdio (cyberspace mcp): whoami',
          () =>
            new StdioClientTransport({
              command: process.execPath,
              args: [CLI, 'mcp', '--url', node.api.url, '--token', attached.token],
              stderr: 'pipe'
            }),
          'whoami',
          {}
        ],
        [
          'MCP over stdio (cyberspace mcp): list_work',
          () =>
            new StdioClientTransport({
              command: process.execPath,
              args: [CLI, 'mcp', '--url', node.api.url, '--token', attached.token],
              stderr: 'pipe'
            }),
          'list_work',
          { board: LOCAL, limit: LISTED }
        ]
      ]
      for (const [name, transport, tool, args] of mcps) {
        const client = await mcpClient(transport())
        try {
          await sequential(WARMUP, async () => await client.call(tool, args))
          const isFloor = name.startsWith('floor')
          const floorName = name.includes('stdio')
            ? 'floor MCP over stdio: hello'
            : 'floor MCP over Streamable HTTP: hello'
          add({
            name,
            ms: await sequential(MCP_CALLS, async () => await client.call(tool, args)),
            ...(isFloor ? {} : { floor: floorName })
          })
        } finally {
          await client.close()
        }
      }
      progress(`api: MCP measured`)
    } finally {
      for (const close of closers) await close()
      floor.proc.kill('SIGTERM')
      await stopNodes(nodes)
    }
    loads.push(`end ${loadavg()[0].toFixed(1)}`)

    // ---------------------------------------------------------------- the table
    const helloP50 = percentile(measures.get('floor: GET /hello (bare node:http, JSON)')?.ms ?? [], 50)
    const rows: Array<Array<string | number>> = []
    const ratios: Record<string, number> = {}
    const shown = (v: number | undefined): number | string => (v != null && Number.isFinite(v) ? v : '-')
    for (const m of measures.values()) {
      const p50 = m.ms != null ? percentile(m.ms, 50) : undefined
      const p99 = m.ms != null ? percentile(m.ms, 99) : undefined
      const f = m.floor != null ? measures.get(m.floor) : undefined
      let vsFloor: number | undefined
      let vsHello: number | undefined
      if (f != null && m.unit === 'events/s' && f.perS != null && m.perS != null) vsFloor = f.perS / m.perS
      else if (f?.ms != null && p50 != null) vsFloor = p50 / percentile(f.ms, 50)
      if (p50 != null && m.unit == null && !m.name.startsWith('floor: GET /hello')) vsHello = p50 / helloP50
      if (vsFloor != null)
        ratios[m.unit === 'events/s' ? `${m.name}: floor events/s / this` : `${m.name}: p50 / floor p50`] = vsFloor
      if (vsHello != null && (m.floor == null || !m.floor.startsWith('floor: GET /hello')))
        ratios[`${m.name}: p50 / hello-world p50`] = vsHello
      rows.push([m.name, shown(p50), shown(p99), shown(m.perS), shown(vsFloor), shown(vsHello)])
    }
    return {
      setup: {
        mode: QUICK ? 'quick' : 'full',
        node: '1 node process (CLI, durable stores, TCP 127.0.0.1, a member of its own cluster); an external agent attached on it, its token on every request, granted (cyberspace (work <board>)) on both boards by a root the node trusts',
        floor:
          'bench/api-floor.ts: a bare node:http server in a process of its own (JSON hello-world; SSE broadcast of POST /emit; a stateless MCP server with one tool, over Streamable HTTP and stdio)',
        client: `one keep-alive node:http agent per server; ${READS} reads and ${WRITES} writes of each kind one after another, ${READS_LOADED} reads / ${WRITES_LOADED} creates with ${IN_FLIGHT} in flight; ${SSE_WRITES} events written by ${IN_FLIGHT} writers while a stream reads; ${MCP_CALLS} calls of each MCP tool with @modelcontextprotocol/sdk's Client; ${WARMUP} uncounted calls before each`,
        latency:
          'ms from the request sent to its whole answer read; for events, from the write sent to its event read off the stream',
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
