/**
 * The Python SDK (sdk/python) against a real node process: starts a node on 127.0.0.1 (once
 * before too, for an event cursor of an earlier run, which the node must refuse), attaches two
 * external agents (one with a token, for the SDK; one the operator acts as), grants both the work
 * on a board and opens it, then runs the SDK's unittest suite with the system's python3, pointed at
 * the node by CYBERSPACE_URL and friends. The Python tests skip themselves only when CYBERSPACE_URL
 * is absent; here it is set, so none may skip. Fails, saying so, when python3 is not installed (CI
 * has it).
 */
import { strict as assert } from 'node:assert'
import { spawn, spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TOKEN_FILE } from '../../node/data-dir.ts'
import { ROUTES } from '../../src/api/routes.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { spawnNode, stopNodes } from '../helpers/processes.ts'
import { grant, key } from '../spki/fixtures.ts'
import type { HostedAgentView } from '../../node/api/agent-routes.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { NodeProcess } from '../helpers/processes.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SDK = join(ROOT, 'sdk', 'python')
const BOARD = 'pysdk'
/**
 * The Python method of each route: its name in snake_case, but for the events, where `events()` is
 * the stream (the seed's `for event in client.events(since=hlc)`) and a page is `events_page()`.
 */
function pythonMethodOf(route: string): string {
  if (route === 'events') return 'events_page'
  if (route === 'eventStream') return 'events'
  return route.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`)
}

/** The longest the Python suite may run. */
const SUITE_TIMEOUT_MS = 240_000

interface PythonRun {
  code: number | null
  signal: NodeJS.Signals | null
  output: string
}

/** Runs the SDK's tests with `env` added; killed after SUITE_TIMEOUT_MS. */
async function runPythonTests(env: Record<string, string>): Promise<PythonRun> {
  const proc = spawn('python3', ['-m', 'unittest', 'discover', '-s', join(SDK, 'tests'), '-v'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONPATH: SDK, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1', ...env }
  })
  let output = ''
  proc.stdout.on('data', (d: Buffer) => (output += d.toString()))
  proc.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const timer = setTimeout(() => proc.kill('SIGKILL'), SUITE_TIMEOUT_MS)
  return await new Promise<PythonRun>((resolve, reject) => {
    proc.once('error', reject)
    proc.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, output })
    })
  })
}

async function operatorTokenOf(node: NodeProcess): Promise<string> {
  return (await readFile(join(node.dataDir, TOKEN_FILE), 'utf8')).trim()
}

/** The first page of the node's events, through the public API with the operator's token. */
async function eventsPage(node: NodeProcess): Promise<{ events: Array<{ cursor: string; hlc: [number, number] }> }> {
  const res = await fetch(`${node.api.url}/api/events?limit=5&wait=10000`, {
    headers: { authorization: `Bearer ${await operatorTokenOf(node)}` }
  })
  const text = await res.text()
  assert.equal(res.status, 200, `GET /api/events answered ${res.status}: ${text}`)
  return JSON.parse(text) as { events: Array<{ cursor: string; hlc: [number, number] }> }
}

describe('the Python SDK against a node process', function () {
  this.timeout(SUITE_TIMEOUT_MS + 120_000)
  let node: NodeProcess | undefined

  before(function () {
    const probe = spawnSync('python3', ['--version'], { encoding: 'utf8' })
    if (probe.error != null || probe.status !== 0) {
      assert.fail(
        `python3 is not installed (or does not run: ${probe.error?.message ?? probe.stderr}): the Python SDK's tests need it — install Python 3.8 or newer`
      )
    }
  })

  after(async () => {
    if (node != null) await stopNodes([node])
  })

  it('has a method for every route of the table', async () => {
    const source = await readFile(join(SDK, 'cyberspace', 'client.py'), 'utf8')
    const methods = new Set([...source.matchAll(/^ {4}def ([a-z][a-z_]*)\(\s*self\b/gm)].map(m => m[1]))
    const missing = Object.keys(ROUTES).filter(route => !methods.has(pythonMethodOf(route)))
    assert.deepEqual(missing, [], 'routes without a method in sdk/python/cyberspace/client.py')
  })

  it('passes its unittest suite against the node, none skipped', async () => {
    // a first run of the node, for a cursor that the next run must refuse (its journal starts anew)
    node = await spawnNode()
    await node.api.post('agents', { kind: 'external', id: 'first-run', token: false })
    const first = await eventsPage(node)
    assert.ok(first.events.length > 0, 'the first run journaled the agent it started')
    const old = first.events[0]
    const dataDir = node.dataDir
    assert.equal(await node.stop(), 0, 'the first run stopped cleanly')
    node = await spawnNode({ dataDir })

    const operatorToken = await operatorTokenOf(node)
    const root = await key()
    await node.api.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
    const grantWork = async (principal: PrincipalId): Promise<void> => {
      const cert = await grant(root, { kind: 'key', principal }, `(cyberspace (work ${BOARD}))`, { propagate: false })
      await node!.api.post('spki/import', { sexp: toAdvanced(signedCertToSexp(cert)) })
    }
    const agent = await node.api.post<HostedAgentView>('agents', { kind: 'external', id: 'py-agent' })
    const other = await node.api.post<HostedAgentView>('agents', { kind: 'external', id: 'py-other', token: false })
    assert.ok(agent.token != null, 'attaching an external agent minted its token')
    await grantWork(agent.principal)
    await grantWork(other.principal)
    await node.api.post('work/boards', { board: BOARD, mode: 'eventual' })

    const run = await runPythonTests({
      CYBERSPACE_URL: node.api.url,
      CYBERSPACE_TOKEN: agent.token,
      CYBERSPACE_AGENT: agent.principal,
      CYBERSPACE_OTHER_AGENT: other.principal,
      CYBERSPACE_OPERATOR_TOKEN: operatorToken,
      CYBERSPACE_BOARD: BOARD,
      CYBERSPACE_OLD_CURSOR: old.cursor,
      CYBERSPACE_OLD_HLC: `${old.hlc[0]}.${old.hlc[1]}`
    })
    assert.equal(run.code, 0, `python3 -m unittest exited ${run.code ?? run.signal}:\n${run.output}`)
    const ran = /^Ran (\d+) tests? in /m.exec(run.output)
    assert.ok(ran != null, `no unittest summary in:\n${run.output}`)
    assert.doesNotMatch(run.output, /\.\.\. skipped|skipped=\d+/, `tests were skipped:\n${run.output}`)
    // the tests against the node ran and passed, not only the parser's
    const live = run.output.match(/\(test_client\.[\w.]+\) \.\.\. ok$/gm) ?? []
    assert.ok(live.length >= 10, `only ${live.length} tests against the node passed:\n${run.output}`)
  })
})
