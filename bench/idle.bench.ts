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
 * Each set-up is measured in two windows of IDLE_SECONDS: the first after IDLE_WARMUP_SECONDS, and
 * a settled one from IDLE_SETTLED_SECONDS (300; 0 leaves it out) after start, on the same
 * processes. The first still holds one-time start-up work: a node's start grows V8's heap to about
 * 200 MB committed for 50-75 MB live, and V8's memory reducer then shrinks it with up to three full
 * garbage collections about 100 s apart (about 250 ms of CPU each, mostly on V8's worker threads):
 * measured per thread in a 10-member cluster, they came 60-110, 160-210 and for some nodes 220-250 s
 * after every member was alive, and no such collection came in the 350 s after that. The settled
 * window is the node's idle cost once that is over.
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
const SETTLED_S = Number(process.env.IDLE_SETTLED_SECONDS ?? 300)
const CLUSTER = 10
const SETUPS = new Set((process.env.IDLE_SETUPS ?? 'floor,pair,cluster').split(',').map(s => s.trim()))
const FLOOR_SCRIPT = fileURLToPath(new URL('idle-floor.ts', import.meta.url))

/** The per-process figures of both windows. */
interface Windows {
  /** Per process, % of one core over the first window. */
  percent: number[]
  /** Per process, % of one core over the settled window (when measured). */
  settled?: number[]
}

interface Figures extends Windows {
  label: string
  nodes: number
}

function progress(line: string): void {
  process.stderr.write(`  ${line}\n`)
}

/** % of one core each process used over WINDOW_S from `fromS` after `start` (performance.now()). */
async function percentOver(pids: number[], start: number, fromS: number): Promise<number[]> {
  await sleep(Math.max(0, start + fromS * 1000 - performance.now()))
  const before = pids.map(cpuSeconds)
  const t0 = performance.now()
  await sleep(WINDOW_S * 1000)
  const elapsed = (performance.now() - t0) / 1000
  return pids.map((pid, i) => ((cpuSeconds(pid) - before[i]) / elapsed) * 100)
}

/** The first window (after WARMUP_S) and, unless it would overlap it, the settled one (from SETTLED_S). */
async function windows(pids: number[]): Promise<Windows> {
  const start = performance.now()
  const percent = await percentOver(pids, start, WARMUP_S)
  if (SETTLED_S <= 0 || SETTLED_S < WARMUP_S + WINDOW_S) return { percent }
  return { percent, settled: await percentOver(pids, start, SETTLED_S) }
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
    return { label: 'bare libp2p (floor)', nodes: 2, ...(await windows([a.pid, b.pid])) }
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
    return { label, nodes: size, ...(await windows(pids)) }
  } finally {
    await members.stop()
  }
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length

const benchmark: Benchmark = {
  name: 'idle',
  description: `idle CPU per process (% of a core over ${WINDOW_S} s after ${WARMUP_S} s, and after ${SETTLED_S} s once settled): bare libp2p pair, member pair, ${CLUSTER}-member cluster`,
  async run(): Promise<BenchResult> {
    const repo = resolve(process.env.IDLE_REPO ?? HERE)
    const baseline = process.env.IDLE_BASELINE == null ? undefined : resolve(process.env.IDLE_BASELINE)
    const systems: Array<[string, string]> = [['cyberspace', repo]]
    if (baseline != null) systems.push(['baseline', baseline])
    const figures: Figures[] = []
    const show = (xs: number[]): string => xs.map(p => p.toFixed(2)).join(' ')
    const run = async (f: () => Promise<Figures>): Promise<Figures> => {
      const result = await f()
      progress(`${result.label} x${result.nodes}: ${show(result.percent)} % of a core`)
      if (result.settled != null) progress(`${result.label} x${result.nodes}, settled: ${show(result.settled)} %`)
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
    /** a / b per node, in the first window and (where both have it) the settled one. */
    const ratio = (what: string, a: Figures | undefined, b: Figures | undefined): void => {
      if (a == null || b == null) return
      ratios[what] = mean(a.percent) / mean(b.percent)
      if (a.settled != null && b.settled != null) ratios[`${what}, settled`] = mean(a.settled) / mean(b.settled)
    }
    for (const [name] of systems) {
      ratio(`${name} pair / floor (per node)`, pairs.get(name), floor)
      ratio(`${name} cluster / floor (per node)`, clusters.get(name), floor)
    }
    ratio('cyberspace pair / baseline pair', pairs.get('cyberspace'), pairs.get('baseline'))
    ratio('cyberspace cluster / baseline cluster', clusters.get('cyberspace'), clusters.get('baseline'))
    const row = (label: string, nodes: number, xs: number[]): Array<string | number> => [
      label,
      nodes,
      mean(xs),
      Math.min(...xs),
      Math.max(...xs)
    ]
    return {
      setup: {
        windowSeconds: WINDOW_S,
        warmupSeconds: WARMUP_S,
        settledSeconds: SETTLED_S,
        transport: 'tcp (+ ws for Cyberspace) on 127.0.0.1',
        cyberspace: repo,
        ...(baseline != null ? { baseline } : {}),
        cpu: '/proc/<pid>/stat utime+stime'
      },
      columns: ['set-up', 'processes', 'mean % of a core per node', 'min %', 'max %'],
      rows: figures.flatMap(f => [
        row(`${f.label}, ${WINDOW_S} s after ${WARMUP_S} s`, f.nodes, f.percent),
        ...(f.settled == null
          ? []
          : [row(`${f.label}, settled: ${WINDOW_S} s after ${SETTLED_S} s`, f.nodes, f.settled)])
      ]),
      ratios
    }
  }
}

export default benchmark
