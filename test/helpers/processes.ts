/**
 * Real node processes started with the CLI on 127.0.0.1, for integration tests and benchmarks.
 * Every wait is bounded; every process is killed by `stop()` or, failing that, by `killAll()`.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connectApi } from '../../node/api/client.ts'
import { API_FILE } from '../../node/data-dir.ts'
import type { ApiClient } from '../../node/api/client.ts'
import type { ChildProcess } from 'node:child_process'

export const CLI = fileURLToPath(new URL('../../node/bin/cyberspace.ts', import.meta.url))
export const LOOPBACK_LISTEN = ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws']

export interface NodeProcess {
  proc: ChildProcess
  dataDir: string
  api: ApiClient
  peerId: string
  multiaddrs: string[]
  /** Plain TCP address, ending in /p2p/<peer-id>. */
  tcpAddr: string
  output(): string
  /** SIGTERM, then wait for the exit (SIGKILL after `graceMs`). Resolves to the exit code. */
  stop(graceMs?: number): Promise<number | null>
}

const live = new Set<ChildProcess>()
// a test run or benchmark that dies before its after() hooks must not leave nodes behind
process.once('exit', () => {
  killAll()
})

export async function tempDir(prefix = 'cyberspace-test-'): Promise<string> {
  return await mkdtemp(join(tmpdir(), prefix))
}

export interface SpawnNodeOptions {
  dataDir?: string
  bootstrap?: string[]
  listen?: string[]
  extraArgs?: string[]
  /** Environment additions (e.g. DEBUG). */
  env?: Record<string, string>
  startTimeoutMs?: number
}

export async function spawnNode(options: SpawnNodeOptions = {}): Promise<NodeProcess> {
  const dataDir = options.dataDir ?? (await tempDir())
  const args = [CLI, 'start', '--data-dir', dataDir, '--api-port', '0']
  for (const l of options.listen ?? LOOPBACK_LISTEN) args.push('--listen', l)
  for (const b of options.bootstrap ?? []) args.push('--bootstrap', b)
  args.push(...(options.extraArgs ?? []))
  const proc = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env }
  })
  live.add(proc)
  let out = ''
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  proc.stderr.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const exited = new Promise<number | null>(resolve => {
    proc.once('exit', code => {
      live.delete(proc)
      resolve(code)
    })
  })

  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000)
  let info: { url: string; pid: number } | undefined
  while (Date.now() < deadline && proc.exitCode == null) {
    try {
      const parsed = JSON.parse(await readFile(join(dataDir, API_FILE), 'utf8')) as { url: string; pid: number }
      if (parsed.pid === proc.pid) {
        info = parsed
        break
      }
    } catch {}
    await sleep(100)
  }
  if (info == null) {
    proc.kill('SIGKILL')
    throw new Error(`node did not start in ${dataDir}:\n${out}`)
  }
  const api = await connectApi(dataDir)
  const id = await api.get<{ peerId: string; multiaddrs: string[] }>('id')
  const tcpAddr = id.multiaddrs.find(a => /\/tcp\/\d+\/p2p\//.test(a))
  if (tcpAddr == null) {
    proc.kill('SIGKILL')
    throw new Error(`node has no TCP address: ${id.multiaddrs.join(' ')}`)
  }
  return {
    proc,
    dataDir,
    api,
    peerId: id.peerId,
    multiaddrs: id.multiaddrs,
    tcpAddr,
    output: () => out,
    stop: async (graceMs = 10_000) => {
      if (proc.exitCode != null || proc.signalCode != null) return proc.exitCode
      proc.kill('SIGTERM')
      const timer = setTimeout(() => {
        proc.kill('SIGKILL')
      }, graceMs)
      const code = await exited
      clearTimeout(timer)
      return code
    }
  }
}

/** Kills every node process still running (for after() hooks). */
export function killAll(): void {
  for (const proc of live) proc.kill('SIGKILL')
  live.clear()
}

/** For after() hooks: stops `nodes`, kills any process still running, and removes their data directories. */
export async function stopNodes(nodes: NodeProcess[], graceMs?: number): Promise<void> {
  await Promise.all(nodes.map(async n => await n.stop(graceMs)))
  killAll()
  await Promise.all(nodes.map(async n => await removeDir(n.dataDir)))
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

export interface CliProcess {
  proc: ChildProcess
  stdout(): string
  stderr(): string
  /** Resolves when the process exits (it is killed after `timeoutMs`). */
  exited: Promise<CliResult>
}

/** Starts the CLI (e.g. a command that runs until stopped, like `state watch`); killed after `timeoutMs`. */
export function startCli(args: string[], timeoutMs = 30_000): CliProcess {
  const proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(proc)
  let stdout = ''
  let stderr = ''
  proc.stdout.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  proc.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const timer = setTimeout(() => {
    proc.kill('SIGKILL')
  }, timeoutMs)
  const exited = new Promise<CliResult>(resolve => {
    // 'close', not 'exit': by then stdout and stderr are read to the end
    proc.once('close', code => {
      clearTimeout(timer)
      live.delete(proc)
      resolve({ code, stdout, stderr })
    })
  })
  return { proc, stdout: () => stdout, stderr: () => stderr, exited }
}

/** Runs the CLI to completion (killed after `timeoutMs`). */
export async function runCli(args: string[], timeoutMs = 30_000): Promise<CliResult> {
  return await startCli(args, timeoutMs).exited
}

/** Runs the CLI with `args` against `node`'s data directory. */
export async function cliOn(node: NodeProcess, ...args: string[]): Promise<CliResult> {
  return await runCli([...args, '--data-dir', node.dataDir], 60_000)
}

/** As cliOn, and fails unless the command exits 0; resolves to its stdout. */
export async function cliOk(node: NodeProcess, ...args: string[]): Promise<string> {
  const r = await cliOn(node, ...args)
  if (r.code !== 0) throw new Error(`${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return r.stdout
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
}

export async function sleep(ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** Polls `check` every `interval` ms until it is true; fails after `timeoutMs` naming `what`. */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
  interval = 200
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(interval)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}
