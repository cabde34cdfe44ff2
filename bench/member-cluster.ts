/**
 * What the membership benchmark measures, written once for any cluster of member processes on
 * this machine (Serf agents in bench/serf.ts, Cyberspace nodes in bench/cyberspace-members.ts):
 * detection-plus-spread time after kill -9, false positives under CPU load, idle CPU per member.
 *
 * @example
 * const cluster = await startSerfCluster(serfPath, 10)
 * const trial = await detectionTrial(cluster, [1, 2], 60_000)
 */
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { ChildProcess } from 'node:child_process'

/** A member's state as one observer saw it: Serf's `failed` is `dead` here. */
export type ObservedState = 'alive' | 'suspect' | 'dead' | 'left'

export interface Observation {
  /** Index of the member whose view this is. */
  observer: number
  /** Index of the member the view is about. */
  member: number
  state: ObservedState
  /** When the observer's view entered `state` (Date.now clock; every process here shares it). */
  at: number
}

export interface MemberCluster {
  /** 'serf' or 'cyberspace'. */
  readonly system: string
  readonly size: number
  /** How exact an observation's `at` is, for the report. */
  readonly resolution: string
  /** The process id of member `i`, or undefined while it is killed. */
  pid(i: number): number | undefined
  /** kill -9 of the members; resolves to Date.now() taken just before the first signal. */
  kill(indices: number[]): number
  /** Starts killed members again under the same identity (name, key). */
  restart(indices: number[]): Promise<void>
  /** Resolves when every running member lists all `size` members alive; throws after `timeoutMs`. */
  waitAllAlive(timeoutMs: number): Promise<void>
  /**
   * Every observation of a state other than alive made since the call, until `stop()`. Where views
   * are polled, `pollMs` is how often: a state that comes and goes between two reads is missed.
   */
  observe(options?: { pollMs?: number }): { observations: () => Observation[]; stop: () => Promise<void> }
  /** Stops every member process (always; safe to call twice). */
  stop(): Promise<void>
}

export async function sleep(ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

export function progress(line: string): void {
  process.stderr.write(`  ${line}\n`)
}

export interface Trial {
  victims: number[]
  /** ms from the kill until each survivor listed every victim dead (undefined: not within the timeout). */
  perSurvivor: Array<number | undefined>
  /** ms from the kill until every survivor listed every victim dead; undefined when one never did. */
  all?: number
  /** Survivors' observations of a member that was not killed as dead (false positives during the trial). */
  liveMarkedDead: number
  /** The members those observations were about. */
  liveMarkedDeadMembers: number[]
}

/**
 * Kills `victims` at once, then waits (at most `timeoutMs`) until every survivor's view holds each
 * victim dead. Times come from the observations themselves, not from when they were read.
 */
export async function detectionTrial(cluster: MemberCluster, victims: number[], timeoutMs: number): Promise<Trial> {
  const observer = cluster.observe()
  const survivors = Array.from({ length: cluster.size }, (_, i) => i).filter(i => !victims.includes(i))
  const killedAt = cluster.kill(victims)
  const done = (): Array<number | undefined> =>
    survivors.map(s => {
      let latest = 0
      for (const v of victims) {
        const seen = observer
          .observations()
          .filter(o => o.observer === s && o.member === v && o.state === 'dead' && o.at >= killedAt)
        if (seen.length === 0) return undefined
        latest = Math.max(latest, Math.min(...seen.map(o => o.at)))
      }
      return latest - killedAt
    })
  const deadline = Date.now() + timeoutMs
  let perSurvivor = done()
  while (perSurvivor.some(t => t === undefined) && Date.now() < deadline) {
    await sleep(100)
    perSurvivor = done()
  }
  await observer.stop()
  const falseDeaths = observer
    .observations()
    .filter(o => o.state === 'dead' && !victims.includes(o.member) && o.at >= killedAt)
  const all = perSurvivor.some(t => t === undefined) ? undefined : Math.max(...(perSurvivor as number[]))
  return {
    victims,
    perSurvivor,
    all,
    liveMarkedDead: falseDeaths.length,
    liveMarkedDeadMembers: [...new Set(falseDeaths.map(o => o.member))].sort((a, b) => a - b)
  }
}

/** The two members killed in trial `t`: never member 0 (every other member joins through it). */
export function victimsOf(t: number, size: number): number[] {
  const a = 1 + ((2 * t) % (size - 1))
  const b = 1 + ((2 * t + 1) % (size - 1))
  return a === b ? [a, 1 + (b % (size - 1))] : [a, b]
}

/** How often polled views are read under load: short suspicions between two reads go unseen. */
export const STRESS_POLL_MS = 200

export interface FalsePositives {
  seconds: number
  busyLoops: number
  /** Distinct members (none was killed) that some member's view held dead. */
  markedDead: number
  /** Distinct members that some member's view held suspect. */
  suspected: number
  /** Observations of suspect or dead, all members and observers together. */
  observations: number
}

/**
 * Loads the machine with `busyLoops` processes spinning on a core each (this Node's binary) for
 * `seconds`, with no member killed, and counts members marked dead or suspect all the same.
 */
export async function falsePositives(
  cluster: MemberCluster,
  seconds: number,
  busyLoops: number
): Promise<FalsePositives> {
  const loops: ChildProcess[] = []
  const observer = cluster.observe({ pollMs: STRESS_POLL_MS })
  try {
    for (let i = 0; i < busyLoops; i++) {
      loops.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }))
    }
    await sleep(seconds * 1000)
  } finally {
    for (const loop of loops) loop.kill('SIGKILL')
    await observer.stop()
  }
  const seen = observer.observations().filter(o => o.state === 'dead' || o.state === 'suspect')
  return {
    seconds,
    busyLoops,
    markedDead: new Set(seen.filter(o => o.state === 'dead').map(o => o.member)).size,
    suspected: new Set(seen.filter(o => o.state === 'suspect').map(o => o.member)).size,
    observations: seen.length
  }
}

let clockTicks: number | undefined
function ticksPerSecond(): number {
  if (clockTicks == null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // the command name, field 2, is in parentheses and may hold spaces: count fields after it
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return (utime + stime) / ticksPerSecond()
}

/** CPU seconds per member per minute while the cluster sits idle for `seconds` (no requests to it). */
export async function idleCpu(cluster: MemberCluster, seconds: number): Promise<{ perMemberPerMinute: number }> {
  const pids = Array.from({ length: cluster.size }, (_, i) => cluster.pid(i)).filter(p => p != null)
  const before = pids.map(cpuSeconds)
  const start = performance.now()
  await sleep(seconds * 1000)
  const elapsedMin = (performance.now() - start) / 60_000
  const used = pids.map((pid, i) => cpuSeconds(pid) - before[i])
  return { perMemberPerMinute: used.reduce((a, b) => a + b, 0) / pids.length / elapsedMin }
}
