/**
 * Runs the MCP conformance tool (`@modelcontextprotocol/conformance`, a devDependency: no network)
 * against a live node's `/mcp`, and prints which scenarios apply to a server that is not the tool's
 * fixture and how each went — a table, then one JSON line.
 *
 * The node is a real `cyberspace start` process on 127.0.0.1 with an external agent attached. Its
 * `/mcp` needs the agent's bearer token, and the conformance tool sends none; so the tool talks to
 * a loopback proxy that adds the token (and, for requests naming the proxy as Host/Origin, names
 * the node instead — a foreign Host or Origin goes through unchanged, so the DNS-rebinding scenario
 * still meets the node's own check).
 *
 * Most scenarios call the tool's fixture tools, prompts and resources (test_simple_text,
 * test://static-text, …) or capabilities this server does not offer (prompts, logging, completions,
 * sampling, elicitation, progress, subscriptions, SSE resumption of a stateful session): they are
 * listed as not applying, with why. Exit code 1 if a scenario that applies fails.
 *
 * @example
 * npx node scripts/mcp-conformance.ts              # the table, and results/ under a temp dir
 * npx node scripts/mcp-conformance.ts --out ./conformance-results
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile } from 'node:fs/promises'
import { createServer, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Client } from '../src/api/client.ts'
import { TOKEN_FILE } from '../node/data-dir.ts'
import { spawnNode, stopNodes } from '../test/helpers/processes.ts'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'

const CONFORMANCE = fileURLToPath(
  new URL('../node_modules/@modelcontextprotocol/conformance/dist/index.js', import.meta.url)
)
/** The whole run, at most. */
const RUN_TIMEOUT_MS = 10 * 60_000

/** Scenarios that test what any MCP server over Streamable HTTP must do. */
const APPLIES: Record<string, string> = {
  'server-initialize': 'initialize handshake, server info and capabilities',
  ping: 'ping answered',
  'tools-list': "the server's own 17 tools listed with valid schemas",
  'resources-list': 'resources/list: the boards and agent cards behind the two resource templates',
  'dns-rebinding-protection': 'a foreign Host/Origin refused (4xx) even with a valid token; a loopback one served'
}

/** Why each other scenario does not apply to this server. */
const NOT_APPLICABLE: Record<string, string> = {
  'logging-set-level': 'no logging capability declared (tools log to the node, not the client): -32601 is the answer',
  'completion-complete': 'asks completion of the fixture prompt test_prompt_with_arguments; no prompts here',
  'tools-call-simple-text':
    'calls the fixture tool test_simple_text (a pass only means the not-found error has the right shape)',
  'tools-call-image': 'fixture tool test_image_content; no tool here answers images',
  'tools-call-audio': 'fixture tool test_audio_content; no tool here answers audio',
  'tools-call-embedded-resource': 'fixture tool test_embedded_resource',
  'tools-call-mixed-content': 'fixture tool test_multiple_content_types',
  'tools-call-with-logging': 'fixture tool test_tool_with_logging; no logging capability',
  'tools-call-error':
    "calls the fixture tool test_error_handling (a pass only means the not-found error has the right shape); the server's own tool errors are in test/node/mcp.test.ts",
  'tools-call-with-progress': 'fixture tool test_tool_with_progress; no tool here reports progress',
  'tools-call-sampling': 'fixture tool test_sampling; the server asks nothing of the client',
  'tools-call-elicitation': 'fixture tool test_elicitation; the server asks nothing of the client',
  'json-schema-2020-12':
    "fixture tool json_schema_2020_12_tool (the SDK emits draft-07 schemas for this server's tools)",
  'elicitation-sep1034-defaults': 'fixture tool; no elicitation',
  'elicitation-sep1330-enums': 'fixture tool; no elicitation',
  'server-sse-polling':
    'needs a session id and the fixture tool test_reconnection; this server is stateless and answers JSON',
  'server-sse-multiple-streams':
    'needs a session id; this server is stateless and answers JSON (SSE streaming is optional)',
  'resources-read-text': 'reads the fixture resource test://static-text',
  'resources-read-binary': 'reads the fixture resource test://static-binary',
  'resources-templates-read': 'reads the fixture template test://template/{id}/data',
  'resources-subscribe': 'no resource subscriptions (a stateless server has no session to notify)',
  'resources-unsubscribe': 'no resource subscriptions',
  'prompts-list': 'no prompts capability',
  'prompts-get-simple': 'fixture prompt; no prompts',
  'prompts-get-with-args': 'fixture prompt; no prompts',
  'prompts-get-embedded-resource': 'fixture prompt; no prompts',
  'prompts-get-with-image': 'fixture prompt; no prompts'
}

interface Check {
  id: string
  status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO' | 'SKIPPED'
  errorMessage?: string
}

interface Row {
  scenario: string
  applies: boolean
  passed: number
  failed: number
  warnings: number
  result: 'pass' | 'fail' | 'n/a'
  note: string
}

const { values } = parseArgs({ options: { out: { type: 'string' } }, strict: true })
const out = values.out ?? (await mkdtemp(join(tmpdir(), 'mcp-conformance-')))
const deadline = setTimeout(() => {
  process.stderr.write(`mcp-conformance: gave up after ${RUN_TIMEOUT_MS} ms\n`)
  process.exit(1)
}, RUN_TIMEOUT_MS)

const node = await spawnNode()
let proxy: Server | undefined
try {
  const nodeUrl = new URL(node.api.url)
  const operator = new Client({
    url: nodeUrl.origin,
    token: (await readFile(join(node.dataDir, TOKEN_FILE), 'utf8')).trim()
  })
  const agent = await operator.call('attachAgent', { body: { kind: 'external', id: 'conformance' } })
  if (agent.token == null) throw new Error('attaching the external agent minted no token')
  // something for resources/list to list besides the agent's card
  await operator.call('openBoard', { body: { name: 'conformance' } })
  const probe = await fetch(`${nodeUrl.origin}/mcp`, { headers: { authorization: `Bearer ${agent.token}` } })
  if (probe.status !== 405)
    throw new Error(`GET /mcp answered ${probe.status}, not 405: does this node serve MCP (node/platform.ts mounts)?`)
  const { server, url } = await tokenProxy(nodeUrl, agent.token)
  proxy = server
  process.stderr.write(`mcp-conformance: node ${nodeUrl.origin}, agent ${agent.principal}, proxy ${url}\n`)

  const code = await runConformance(['server', '--url', `${url}/mcp`, '--suite', 'all', '-o', out])
  const rows = await readResults(out)
  printTable(rows, code)
  const failed = rows.filter(r => r.applies && r.result !== 'pass')
  process.exitCode = failed.length > 0 ? 1 : 0
} finally {
  clearTimeout(deadline)
  proxy?.closeAllConnections()
  proxy?.close()
  await stopNodes([node])
}

/**
 * A loopback proxy to the node that adds `Authorization: Bearer <token>`, and names the node as
 * Host/Origin where the client named the proxy.
 */
async function tokenProxy(target: URL, token: string): Promise<{ server: Server; url: string }> {
  let self = ''
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const headers = { ...req.headers, authorization: `Bearer ${token}` }
    const own = (value: string | undefined): boolean =>
      value != null && [self, self.replace('127.0.0.1', 'localhost')].some(h => value === h || value === `http://${h}`)
    const swap = (value: string): string =>
      value.replace(/^(http:\/\/)?(127\.0\.0\.1|localhost):\d+$/, (_m, scheme: string | undefined, host: string) => {
        return `${scheme ?? ''}${host}:${target.port}`
      })
    if (own(req.headers.host)) headers.host = swap(req.headers.host ?? '')
    if (own(req.headers.origin)) headers.origin = swap(req.headers.origin ?? '')
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
      answer => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      }
    )
    upstream.on('error', err => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' })
      res.end(`proxy: ${err.message}`)
    })
    req.pipe(upstream)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  const port = typeof address === 'object' && address != null ? address.port : 0
  self = `127.0.0.1:${port}`
  return { server, url: `http://${self}` }
}

/** The conformance CLI on this process's Node; resolves to its exit code. */
async function runConformance(args: string[]): Promise<number | null> {
  const child = spawn(process.execPath, [CONFORMANCE, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  child.stdout.on('data', (d: Buffer) => process.stderr.write(d))
  return await new Promise(resolve => child.once('close', code => resolve(code)))
}

/** One row per scenario, from each results/server-<scenario>-<time>/checks.json. */
async function readResults(dir: string): Promise<Row[]> {
  const rows: Row[] = []
  const known = new Set([...Object.keys(APPLIES), ...Object.keys(NOT_APPLICABLE)])
  for (const entry of (await readdir(dir)).sort()) {
    const match = /^server-(.+)-\d{4}-\d\d-\d\dT/.exec(entry)
    if (match == null) continue
    const scenario = match[1]
    const checks = JSON.parse(await readFile(join(dir, entry, 'checks.json'), 'utf8')) as Check[]
    const passed = checks.filter(c => c.status === 'SUCCESS').length
    const failed = checks.filter(c => c.status === 'FAILURE').length
    const warnings = checks.filter(c => c.status === 'WARNING').length
    const applies = scenario in APPLIES
    const firstError = checks.find(c => c.status === 'FAILURE')?.errorMessage ?? ''
    rows.push({
      scenario,
      applies,
      passed,
      failed,
      warnings,
      result: !applies ? 'n/a' : failed === 0 && passed > 0 ? 'pass' : 'fail',
      note: applies
        ? `${APPLIES[scenario]}${failed > 0 ? ` — ${firstError.slice(0, 160)}` : ''}`
        : (NOT_APPLICABLE[scenario] ??
          (known.has(scenario) ? '' : 'a scenario this script does not know yet: classify it'))
    })
  }
  return rows
}

function printTable(rows: Row[], code: number | null): void {
  const lines = ['| scenario | applies | result | checks (pass/fail/warn) | note |', '|---|---|---|---|---|']
  for (const r of rows)
    lines.push(
      `| ${r.scenario} | ${r.applies ? 'yes' : 'no'} | ${r.result} | ${r.passed}/${r.failed}/${r.warnings} | ${r.note} |`
    )
  process.stdout.write(lines.join('\n') + '\n')
  const applicable = rows.filter(r => r.applies)
  process.stdout.write(
    JSON.stringify({
      mcpConformance: {
        scenarios: rows.length,
        applicable: applicable.length,
        passed: applicable.filter(r => r.result === 'pass').map(r => r.scenario),
        failed: applicable.filter(r => r.result !== 'pass').map(r => r.scenario),
        toolExitCode: code
      }
    }) + '\n'
  )
}
