/**
 * Idle cost: the CPU an idle node process uses, read from /proc/<pid>/stat (user + system) over a
 * window after a warm-up, with nothing asked of the nodes during the window. Three set-ups, run
 * one after the other: a bare libp2p pair (bench/idle-floor.ts: TCP, noise, yamux, no services) as
 * the floor, a connected pair of Cyberspace nodes, and a 10-process cluster — both with membership
 * running (every node a `(cyberspace member)`, bench/cyberspace-members.ts), started with the CLI.
 *
 * Environment: IDLE_REPO, the checkout whose CLI is spawned (default: this one); IDLE_BASELINE,
 * a second checkout measured the same way in the same run (e.g. a worktree of an older commit);
 * IDLE_SETUPS, a comma-separated subset of floor,pair,cluster to run (default: all three; the ratios
 * need the floor); IDLE_SECONDS (120: a fleet member with unchanged rows publishes every 2 minutes,
 * so a shorter window would hold all of the cluster's heartbeats or none) and IDLE_WARMUP_SECONDS
 * (30: a 10-process cluster on 2 cores is still settling its DHT and mesh for a while after every
 * member is alive).
 *
 * @example
 * IDLE_BASELINE=/tmp/base npm run bench idle
 */
import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { cpuSeconds, sleep } from './member-cluster.ts'
import type { Benchmark, BenchResult } from './harness.ts'
import type { MemberCluster } from './member-cluster.ts'
import type { ChildProcess } from 'node:child_process'

const HERE = fileURLToPath(new URL('..', import.meta.url))
const WINDOW_S = Number(process.env.IDLE_SECONDS ?? 120)
const WARMUP_S = Number(process.env.IDLE_WARMUP_SECONDS ?? 30)
const CLUSTER = 10
const SETUPS = new Set((process.env.IDLE_SETUPS ?? 'floor,pair,cluster').split(',').map(s => s.trim()))
const FLOOR_SCRIPT = fileURLToPath(new URL('idle-floor.ts', import.meta.url))

interface Figures {
  label: string
  nodes: number
  /** Per process, % of one core over the window. */
  percent: number[]
}

function progress(line: string): void {
  process.stderr.write(`  ${line}\n`)
}

/** % of one core each process used over WINDOW_S, read after WARMUP_S. */
async function window(pids: number[]): Promise<number[]> {
  await sleep(WARMUP_S * 1000)
  const before = pids.map(cpuSeconds)
  const t0 = performance.now()
  await sleep(WINDOW_S * 1000)
  const elapsed = (performance.now() - t0) / 1000
  return pids.map((pid, i) => ((cpuSeconds(pid) - before[i]) / elapsed) * 100)
}

async function floorPair(): Promise<Figures> {
  const procs: ChildProcess[] = []
  const start = async (dial: string[]): Promise<{ pid: number; addr: string }> => {
    const proc = spawn(process.execPath, [FLOOR_SCRIPT, ...dial], { stdio: ['ignore', 'pipe', 'inherit'] })
    procs.push(proc)
    return await new Promise((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => {
        reject(new Error('the floor node did not start in 30 s'))
      }, 30_000)
      proc.stdout?.on('data', (d: Buffer) => {
        out += d.toString()
        const line = out.split('\n')[0]
        if (out.includes('\n')) {
          clearTimeout(timer)
          resolve({ pid: proc.pid ?? -1, addr: (JSON.parse(line) as { addr: string }).addr })
        }
      })
      proc.once('exit', code => {
        clearTimeout(timer)
        reject(new Error(`the floor node exited with ${code}`))
      })
    })
  }
  try {
    const a = await start([])
    const b = await start([a.addr])
    return { label: 'bare libp2p (floor)', nodes: 2, percent: await window([a.pid, b.pid]) }
  } finally {
    for (const p of procs) p.kill('SIGTERM')
  }
}

async function cluster(repo: string, label: string, size: number): Promise<Figures> {
  const { startCyberspaceCluster } = (await import(
    pathToFileURL(resolve(repo, 'bench/cyberspace-members.ts')).href
  )) as { startCyberspaceCluster: (size: number, timeoutMs?: number) => Promise<MemberCluster> }
  const members = await startCyberspaceCluster(size)
  try {
    const pids = Array.from({ length: size }, (_, i) => members.pid(i)).filter(p => p != null)
    if (pids.length !== size) throw new Error(`${label}: ${size - pids.length} of ${size} members are not running`)
    return { label, nodes: size, percent: await window(pids) }
  } finally {
    await members.stop()
  }
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length

const benchmark: Benchmark = {
  name: 'idle',
  description: `idle CPU per process (% of a core over ${WINDOW_S} s after ${WARMUP_S} s): bare libp2p pair, member pair, ${CLUSTER}-member cluster`,
  async run(): Promise<BenchResult> {
    const repo = resolve(process.env.IDLE_REPO ?? HERE)
    const baseline = process.env.IDLE_BASELINE == null ? undefined : resolve(process.env.IDLE_BASELINE)
    const systems: Array<[string, string]> = [['cyberspace', repo]]
    if (baseline != null) systems.push(['baseline', baseline])
    const figures: Figures[] = []
    const run = async (f: () => Promise<Figures>): Promise<Figures> => {
      const result = await f()
      progress(`${result.label} x${result.nodes}: ${result.percent.map(p => p.toFixed(2)).join(' ')} % of a core`)
      figures.push(result)
      return result
    }
    const floor = SETUPS.has('floor') ? await run(floorPair) : undefined
    const pairs = new Map<string, Figures>()
    const clusters = new Map<string, Figures>()
    if (SETUPS.has('pair'))
      for (const [name, path] of systems) pairs.set(name, await run(async () => await cluster(path, `${name} pair`, 2)))
    if (SETUPS.has('cluster'))
      for (const [name, path] of systems)
        clusters.set(name, await run(async () => await cluster(path, `${name} cluster`, CLUSTER)))
    const ratios: Record<string, number> = {}
    for (const [name] of systems) {
      if (floor == null) break
      const pair = pairs.get(name)
      const many = clusters.get(name)
      if (pair != null) ratios[`${name} pair / floor (per node)`] = mean(pair.percent) / mean(floor.percent)
      if (many != null) ratios[`${name} cluster / floor (per node)`] = mean(many.percent) / mean(floor.percent)
    }
    if (baseline != null && SETUPS.has('pair'))
      ratios['cyberspace pair / baseline pair'] =
        mean(pairs.get('cyberspace')!.percent) / mean(pairs.get('baseline')!.percent)
    if (baseline != null && SETUPS.has('cluster'))
      ratios['cyberspace cluster / baseline cluster'] =
        mean(clusters.get('cyberspace')!.percent) / mean(clusters.get('baseline')!.percent)
    return {
      setup: {
        windowSeconds: WINDOW_S,
        warmupSeconds: WARMUP_S,
        transport: 'tcp (+ ws for Cyberspace) on 127.0.0.1',
        cyberspace: repo,
        ...(baseline != null ? { baseline } : {}),
        cpu: '/proc/<pid>/stat utime+stime'
      },
      columns: ['set-up', 'processes', 'mean % of a core per node', 'min %', 'max %'],
      rows: figures.map(f => [f.label, f.nodes, mean(f.percent), Math.min(...f.percent), Math.max(...f.percent)]),
      ratios
    }
  }
}

export default benchmark
