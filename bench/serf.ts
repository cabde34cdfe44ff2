/**
 * Serf agents (HashiCorp; memberlist inside) on 127.0.0.1, the line the membership benchmark
 * compares Cyberspace with. Finds the `serf` binary (Debian's package; installed with apt-get when
 * running as root), starts N agents with the LAN profile joined to the first, and reads each
 * agent's log as it is written: the moment a line such as `serf: EventMemberFailed: n3` reaches
 * this process is the moment that agent's view changed (the same event `serf members` reflects).
 *
 * @example
 * const serf = await findSerf()
 * if ('path' in serf) {
 *   const cluster = await startSerfCluster(serf.path, 10)
 *   try { … } finally { await cluster.stop() }
 * }
 */
import { execFile, execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'
import { progress, sleep } from './member-cluster.ts'
import type { MemberCluster, Observation, ObservedState } from './member-cluster.ts'
import type { ChildProcess } from 'node:child_process'

const run = promisify(execFile)

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const proc of live) proc.kill('SIGKILL')
})

/** Where `serf` is, or why it is not there. */
export async function findSerf(): Promise<{ path: string; version: string } | { absent: string }> {
  const found = (): string | undefined =>
    ['/usr/bin/serf', '/usr/local/bin/serf'].find(p => existsSync(p)) ??
    (() => {
      try {
        return execFileSync('sh', ['-c', 'command -v serf'], { encoding: 'utf8' }).trim() || undefined
      } catch {
        return undefined
      }
    })()
  let path = found()
  if (path == null) {
    if (process.getuid?.() !== 0) {
      return { absent: 'serf is not installed and this is not root: install it with `apt-get install -y serf`' }
    }
    progress('serf not found: apt-get install -y serf')
    try {
      await run('apt-get', ['install', '-y', 'serf'], { timeout: 300_000 })
    } catch {
      try {
        await run('apt-get', ['update'], { timeout: 300_000 })
        await run('apt-get', ['install', '-y', 'serf'], { timeout: 300_000 })
      } catch (err) {
        return { absent: `apt-get install -y serf failed: ${(err as Error).message.split('\n')[0]}` }
      }
    }
    path = found()
    if (path == null) return { absent: 'apt-get installed serf but no serf binary is on the PATH' }
  }
  const { stdout } = await run(path, ['version'], { timeout: 10_000 })
  return { path, version: stdout.split('\n')[0].trim() }
}

interface Agent {
  name: string
  bindPort: number
  rpcPort: number
  proc?: ChildProcess
  output: string
}

const EVENT_LINE = /(?:serf: EventMember(Join|Failed|Leave|Reap|Update): (\S+)|memberlist: Suspect (\S+) has failed)/

/**
 * Starts `size` agents: n0 first, then the rest joining it. Ports are a random block below the
 * ephemeral range; a block in use fails the start (it is tried again with another block, 3 times).
 */
export async function startSerfCluster(serfPath: string, size: number): Promise<MemberCluster> {
  let lastError: Error | undefined
  for (let attempt = 0; attempt < 3; attempt++) {
    const base = 17_000 + Math.floor(Math.random() * 70) * 200
    const cluster = new SerfCluster(serfPath, size, base)
    try {
      await cluster.start()
      return cluster
    } catch (err) {
      lastError = err as Error
      await cluster.stop()
    }
  }
  throw lastError ?? new Error('serf agents did not start')
}

class SerfCluster implements MemberCluster {
  readonly system = 'serf'
  readonly size: number
  readonly resolution = 'exact (each agent log line timestamped as it arrives)'
  private readonly serfPath: string
  private readonly agents: Agent[]
  private readonly byName = new Map<string, number>()
  private readonly listeners = new Set<(o: Observation) => void>()

  constructor(serfPath: string, size: number, base: number) {
    if (size > 100) throw new RangeError('at most 100 agents')
    this.serfPath = serfPath
    this.size = size
    this.agents = Array.from({ length: size }, (_, i) => ({
      name: `n${i}`,
      bindPort: base + i,
      rpcPort: base + 100 + i,
      output: ''
    }))
    this.agents.forEach((a, i) => this.byName.set(a.name, i))
  }

  async start(): Promise<void> {
    await this.launch(0)
    await Promise.all(this.agents.slice(1).map(async (_, i) => await this.launch(i + 1)))
    await this.waitAllAlive(60_000)
  }

  /** Starts agent `i` and resolves once it says it runs (it has joined n0 by then, unless it is n0). */
  private async launch(i: number): Promise<void> {
    const agent = this.agents[i]
    const args = [
      'agent',
      `-node=${agent.name}`,
      `-bind=127.0.0.1:${agent.bindPort}`,
      `-rpc-addr=127.0.0.1:${agent.rpcPort}`,
      '-profile=lan'
    ]
    if (i !== 0) args.push(`-join=127.0.0.1:${this.agents[0].bindPort}`)
    const proc = spawn(this.serfPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    live.add(proc)
    agent.proc = proc
    agent.output = ''
    let pending = ''
    const onData = (d: Buffer): void => {
      const at = Date.now()
      const text = d.toString()
      if (agent.output.length < 200_000) agent.output += text
      pending += text
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      for (const line of lines) this.onLine(i, line, at)
    }
    proc.stdout.on('data', onData)
    proc.stderr.on('data', onData)
    proc.once('exit', () => {
      live.delete(proc)
      if (agent.proc === proc) agent.proc = undefined
    })
    const deadline = Date.now() + 20_000
    while (!agent.output.includes('Serf agent running!')) {
      if (agent.proc !== proc || proc.exitCode != null) {
        throw new Error(`serf agent ${agent.name} exited: ${agent.output.slice(-600)}`)
      }
      if (Date.now() > deadline) throw new Error(`serf agent ${agent.name} did not start: ${agent.output.slice(-600)}`)
      await sleep(50)
    }
  }

  private onLine(observer: number, line: string, at: number): void {
    const m = EVENT_LINE.exec(line)
    if (m == null) return
    const name = m[2] ?? m[3]
    const member = this.byName.get(name)
    if (member == null) return
    let state: ObservedState
    if (m[3] != null) state = 'suspect'
    else if (m[1] === 'Failed') state = 'dead'
    else if (m[1] === 'Leave') state = 'left'
    else if (m[1] === 'Join') state = 'alive'
    else return
    for (const listener of this.listeners) listener({ observer, member, state, at })
  }

  pid(i: number): number | undefined {
    return this.agents[i].proc?.pid
  }

  kill(indices: number[]): number {
    const at = Date.now()
    for (const i of indices) this.agents[i].proc?.kill('SIGKILL')
    return at
  }

  async restart(indices: number[]): Promise<void> {
    for (const i of indices) {
      const proc = this.agents[i].proc
      if (proc != null && proc.exitCode == null && proc.signalCode == null) {
        await new Promise(resolve => proc.once('exit', resolve))
      }
    }
    await Promise.all(indices.map(async i => await this.launch(i)))
  }

  /** `serf members` of agent `i`: name → status. */
  private async members(i: number): Promise<Map<string, string>> {
    const { stdout } = await run(
      this.serfPath,
      ['members', `-rpc-addr=127.0.0.1:${this.agents[i].rpcPort}`, '-format=json'],
      { timeout: 10_000 }
    )
    const parsed = JSON.parse(stdout) as { members: Array<{ name: string; status: string }> }
    return new Map(parsed.members.map(m => [m.name, m.status]))
  }

  async waitAllAlive(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let last = ''
    while (Date.now() < deadline) {
      try {
        const running = this.agents.map((a, i) => (a.proc == null ? -1 : i)).filter(i => i >= 0)
        const views = await Promise.all(running.map(async i => await this.members(i)))
        const lacking = views.map(v => this.agents.filter(a => v.get(a.name) !== 'alive').length)
        if (running.length === this.size && lacking.every(n => n === 0)) return
        last = `${running.length} agents running; members not alive per view: ${lacking.join(',')}`
      } catch (err) {
        last = (err as Error).message
      }
      await sleep(500)
    }
    throw new Error(`serf: not every agent lists all ${this.size} alive after ${timeoutMs} ms (${last})`)
  }

  observe(_options?: { pollMs?: number }): { observations: () => Observation[]; stop: () => Promise<void> } {
    const seen: Observation[] = []
    const listener = (o: Observation): void => {
      if (o.state !== 'alive' && seen.length < 100_000) seen.push(o)
    }
    this.listeners.add(listener)
    return {
      observations: () => seen,
      stop: async () => {
        this.listeners.delete(listener)
      }
    }
  }

  async stop(): Promise<void> {
    const procs = this.agents.map(a => a.proc).filter(p => p != null)
    await Promise.all(
      procs.map(async proc => {
        if (proc.exitCode != null || proc.signalCode != null) return
        const exited = new Promise(resolve => proc.once('exit', resolve))
        proc.kill('SIGKILL')
        await exited
      })
    )
  }
}
