/**
 * Membership against Serf, side by side in one run (issue 13): N = 10 and 20 member processes on
 * 127.0.0.1 of each system; kill -9 of two members, and the time until every survivor lists both
 * dead (Serf: `failed`), over several trials (the killed members are started again, under the same
 * name or key, between trials); members marked dead or suspect that were never killed while busy
 * loops load every core for a minute (N = 10); CPU per member of an idle cluster (N = 10). Then DHT
 * record lookups among 50 in-process Cyberspace nodes (Serf has no DHT: no comparison).
 *
 * Serf is Debian's package (`serf agent -profile=lan`, memberlist inside), found on the PATH or
 * installed with apt-get when running as root; without it the Serf half says why and is skipped.
 * A Cyberspace half that cannot run (no membership service in this build, or no convergence)
 * prints "cyberspace membership unavailable: <reason>" instead.
 *
 * Environment, for partial runs: MEMBERSHIP_BENCH_SIZES (default "10,20"), MEMBERSHIP_BENCH_TRIALS
 * (default 5), MEMBERSHIP_BENCH_SYSTEMS (default "serf,cyberspace,dht"; add "agents" for registry
 * lookups among 50 in-process members — on 2 cores their setup alone outlasts 10 minutes today).
 */
import { detectionBound } from '../src/membership/service.ts'
import { loadavg } from 'node:os'
import { startCyberspaceCluster } from './cyberspace-members.ts'
import { measureDhtLookups } from './dht-lookup.ts'
import { measureAgentLookups } from './agent-lookups.ts'
import { percentile } from './harness.ts'
import {
  detectionTrial,
  falsePositives,
  idleCpu,
  progress,
  sleep,
  STRESS_POLL_MS,
  victimsOf
} from './member-cluster.ts'
import { findSerf, startSerfCluster } from './serf.ts'
import type { Benchmark, BenchResult } from './harness.ts'
import type { DhtFigures } from './dht-lookup.ts'
import type { AgentLookupFigures } from './agent-lookups.ts'
import type { FalsePositives, MemberCluster, Trial } from './member-cluster.ts'

const SIZES = (process.env.MEMBERSHIP_BENCH_SIZES ?? '10,20').split(',').map(Number)
const TRIALS = Number(process.env.MEMBERSHIP_BENCH_TRIALS ?? 5)
const SYSTEMS = (process.env.MEMBERSHIP_BENCH_SYSTEMS ?? 'serf,cyberspace,dht').split(',')
const KILLED = 2
const DETECTION_TIMEOUT_MS = 60_000
const REJOIN_TIMEOUT_MS = 120_000
/**
 * Idle and load figures are taken on the smallest cluster only. A node process's CPU falls over its
 * first minute or two (JIT, connections, the DHT's first refreshes): idle is measured a minute in.
 */
const IDLE_SECONDS = 30
const SETTLE_SECONDS = 60
const STRESS_SECONDS = 60
const BUSY_LOOPS = 3
const DHT = { nodes: 50, records: 6, lookups: 30 }
/** Agent records through the registry (get by principal, find by skill) among as many in-process members. */
const AGENTS = { nodes: 50, agents: 6, lookups: 30 }

/** The machine's 1-minute load average as each part began: other work on the machine shows here. */
const loads: string[] = []
function noteLoad(label: string): void {
  loads.push(`${label} ${loadavg()[0].toFixed(1)}`)
}

interface SystemFigures {
  n: number
  trials: Trial[]
  idle?: number
  stress?: FalsePositives
  resolution?: string
  /** Why the figures stop short (the cluster did not start, a rejoin failed …). */
  error?: string
}

/** One line of an error for the setup: the line naming the error, else the first; at most 240 characters. */
function oneLine(message: string): string {
  const lines = message.split('\n').map(l => l.trim())
  return (lines.find(l => /Error\b/.test(l)) ?? lines[0]).slice(0, 240)
}

async function measureSystem(start: (n: number) => Promise<MemberCluster>, n: number): Promise<SystemFigures> {
  const figures: SystemFigures = { n, trials: [] }
  let cluster: MemberCluster
  try {
    cluster = await start(n)
  } catch (err) {
    figures.error = (err as Error).message
    return figures
  }
  const label = `${cluster.system} N=${n}`
  noteLoad(label)
  figures.resolution = cluster.resolution
  try {
    if (n === SIZES[0]) {
      await sleep(SETTLE_SECONDS * 1000)
      figures.idle = (await idleCpu(cluster, IDLE_SECONDS)).perMemberPerMinute
      progress(`${label}: idle CPU ${figures.idle.toFixed(3)} s per member per minute`)
    }
    for (let t = 0; t < TRIALS; t++) {
      const trial = await detectionTrial(cluster, victimsOf(t, n), DETECTION_TIMEOUT_MS)
      figures.trials.push(trial)
      const missing = trial.perSurvivor.filter(s => s === undefined).length
      progress(
        `${label} trial ${t + 1}/${TRIALS}: killed ${trial.victims.join('+')}, ` +
          (trial.all == null ? `${missing} survivors never listed both dead` : `all survivors: ${trial.all} ms`) +
          (trial.liveMarkedDead > 0
            ? `, live members marked dead ${trial.liveMarkedDead} times (members ${trial.liveMarkedDeadMembers.join(',')})`
            : '')
      )
      await cluster.restart(trial.victims)
      await cluster.waitAllAlive(REJOIN_TIMEOUT_MS)
    }
    if (n === SIZES[0]) {
      figures.stress = await falsePositives(cluster, STRESS_SECONDS, BUSY_LOOPS)
      progress(
        `${label} under load: ${figures.stress.markedDead} members marked dead, ${figures.stress.suspected} suspected`
      )
    }
  } catch (err) {
    figures.error = (err as Error).message
    progress(`${label}: ${oneLine(figures.error)}`)
  } finally {
    await cluster.stop()
  }
  return figures
}

interface Detection {
  trials: number
  completed: number
  p50?: number
  p99?: number
  max?: number
  survivorP50?: number
  survivorP99?: number
  liveMarkedDead: number
  liveMarkedDeadMembers: number
}

function detection(f: SystemFigures): Detection {
  const all = f.trials
    .map(t => t.all)
    .filter(t => t != null)
    .sort((a, b) => a - b)
  const each = f.trials
    .flatMap(t => t.perSurvivor)
    .filter(t => t != null)
    .sort((a, b) => a - b)
  const some = all.length > 0
  return {
    trials: f.trials.length,
    completed: all.length,
    p50: some ? percentile(all, 50) : undefined,
    p99: some ? percentile(all, 99) : undefined,
    max: all.at(-1),
    survivorP50: each.length > 0 ? percentile(each, 50) : undefined,
    survivorP99: each.length > 0 ? percentile(each, 99) : undefined,
    liveMarkedDead: f.trials.reduce((s, t) => s + t.liveMarkedDead, 0),
    liveMarkedDeadMembers: f.trials.reduce((s, t) => s + t.liveMarkedDeadMembers.length, 0)
  }
}

const benchmark: Benchmark = {
  name: 'membership',
  description: `kill -9 of ${KILLED} members: time until every survivor lists both dead, Cyberspace beside Serf; false positives under load; idle CPU; DHT lookups`,
  async run(): Promise<BenchResult> {
    const notes: Record<string, string> = {}
    const serf: SystemFigures[] = []
    const cyberspace: SystemFigures[] = []
    let serfVersion = 'not run'

    if (SYSTEMS.includes('serf')) {
      const found = await findSerf()
      if ('absent' in found) {
        serfVersion = 'absent'
        notes.serf = found.absent
        console.log(`serf absent: ${found.absent}; the Serf half is skipped`)
      } else {
        serfVersion = `${found.version} (${found.path})`
        for (const n of SIZES) serf.push(await measureSystem(async size => await startSerfCluster(found.path, size), n))
      }
    }
    if (SYSTEMS.includes('cyberspace')) {
      for (const n of SIZES) {
        const figures = await measureSystem(async size => await startCyberspaceCluster(size), n)
        cyberspace.push(figures)
        if (figures.error != null && figures.trials.length === 0) {
          console.log(`cyberspace membership unavailable: ${oneLine(figures.error)}`)
          notes.cyberspace = `unavailable: ${oneLine(figures.error)}`
          break
        }
      }
    }
    let dht: DhtFigures | string | undefined
    if (SYSTEMS.includes('dht')) {
      noteLoad('dht')
      try {
        dht = await measureDhtLookups(DHT)
      } catch (err) {
        dht = (err as Error).message
        console.log(`dht lookups unavailable: ${oneLine(dht)}`)
      }
    }

    let agents: AgentLookupFigures | string | undefined
    if (SYSTEMS.includes('agents')) {
      noteLoad('agents')
      try {
        agents = await measureAgentLookups(AGENTS)
      } catch (err) {
        agents = (err as Error).message
        console.log(`agent lookups unavailable: ${oneLine(agents)}`)
      }
    }

    const rows: Array<Array<string | number>> = []
    const ratios: Record<string, number> = {}
    // a half that never started says why in setup; one that stopped part way says 'failed' where it has no figure
    const cell = (value: number | undefined, figures: SystemFigures | undefined, missing: string): string | number =>
      value ??
      (figures == null
        ? missing
        : figures.error == null
          ? '-'
          : figures.trials.length === 0 && figures.idle == null
            ? 'unavailable'
            : 'failed')
    const ratioCell = (c: number | undefined, s: number | undefined): string | number =>
      c != null && s != null && s > 0 ? c / s : '-'
    const serfMissing = notes.serf != null ? 'absent' : 'not run'
    const csMissing = notes.cyberspace != null ? 'unavailable' : 'not run'

    const membershipRun = SYSTEMS.includes('serf') || SYSTEMS.includes('cyberspace')
    for (const n of membershipRun ? SIZES : []) {
      const s = serf.find(f => f.n === n)
      const c = cyberspace.find(f => f.n === n)
      const sd = s == null ? undefined : detection(s)
      const cd = c == null ? undefined : detection(c)
      const line = (what: string, pick: (d: Detection) => number | undefined): void => {
        const sv = sd == null ? undefined : pick(sd)
        const cv = cd == null ? undefined : pick(cd)
        rows.push([what, n, cell(sv, s, serfMissing), cell(cv, c, csMissing), ratioCell(cv, sv)])
      }
      line('detect+spread, all survivors p50 (ms)', d => d.p50)
      line('detect+spread, all survivors p99 (ms)', d => d.p99)
      line('detect+spread, all survivors max (ms)', d => d.max)
      line('detect+spread, each survivor p50 (ms)', d => d.survivorP50)
      line('detect+spread, each survivor p99 (ms)', d => d.survivorP99)
      // the stated bound (src/membership/service.ts detectionBound): Cyberspace's max over it
      const stated = detectionBound(n)
      rows.push([
        `stated bound ${stated} ms: Cyberspace max / bound`,
        n,
        '-',
        cd?.max == null ? csMissing : `${cd.max} ms`,
        cd?.max == null ? '-' : cd.max / stated
      ])
      rows.push([
        'trials where all survivors listed both dead',
        n,
        sd == null ? serfMissing : `${sd.completed}/${sd.trials}`,
        cd == null ? csMissing : `${cd.completed}/${cd.trials}`,
        '-'
      ])
      const falseDeaths = (d: Detection | undefined, missing: string): string =>
        d == null ? missing : `${d.liveMarkedDeadMembers} (${d.liveMarkedDead} views)`
      rows.push([
        'live members marked dead during trials (times seen)',
        n,
        falseDeaths(sd, serfMissing),
        falseDeaths(cd, csMissing),
        '-'
      ])
      for (const [what, key] of [
        ['p50', 'p50'],
        ['p99', 'p99']
      ] as const) {
        const sv = sd?.[key]
        const cv = cd?.[key]
        if (sv != null && cv != null && sv > 0) ratios[`detect+spread ${what} N=${n} cyberspace / serf`] = cv / sv
      }
      for (const f of [s, c])
        if (f?.error != null) notes[`${f === s ? 'serf' : 'cyberspace'} N=${n}`] = oneLine(f.error)
    }

    if (membershipRun) {
      const s0 = serf.find(f => f.n === SIZES[0])
      const c0 = cyberspace.find(f => f.n === SIZES[0])
      const n0 = SIZES[0]
      rows.push([
        `under load: members marked dead, none killed (${STRESS_SECONDS} s, ${BUSY_LOOPS} busy loops)`,
        n0,
        cell(s0?.stress?.markedDead, s0, serfMissing),
        cell(c0?.stress?.markedDead, c0, csMissing),
        '-'
      ])
      rows.push([
        'under load: members suspected, none killed',
        n0,
        cell(s0?.stress?.suspected, s0, serfMissing),
        cell(c0?.stress?.suspected, c0, csMissing),
        '-'
      ])
      rows.push([
        `idle CPU per member (s per minute, over ${IDLE_SECONDS} s)`,
        n0,
        cell(s0?.idle, s0, serfMissing),
        cell(c0?.idle, c0, csMissing),
        ratioCell(c0?.idle, s0?.idle)
      ])
      if (c0?.idle != null && s0?.idle != null && s0.idle > 0) {
        ratios[`idle CPU per member N=${n0} cyberspace / serf`] = c0.idle / s0.idle
      }
    }

    if (dht != null) {
      const d = typeof dht === 'string' ? undefined : dht
      const dhtRow = (what: string, value: number | undefined): void => {
        rows.push([what, DHT.nodes, 'no DHT', value ?? 'failed', '-'])
      }
      dhtRow('DHT put p50 (ms)', d?.putP50)
      dhtRow('DHT lookup, first record p50 (ms)', d?.firstP50)
      dhtRow('DHT lookup, first record p99 (ms)', d?.firstP99)
      dhtRow('DHT lookup, query done p50 (ms; node.getValue)', d?.doneP50)
      dhtRow('DHT lookup, query done p99 (ms)', d?.doneP99)
      dhtRow('DHT hops to the first record, mean', d?.meanHops)
      dhtRow('DHT hops to the first record, max', d?.maxHops)
      dhtRow('DHT peers asked before the first record, mean', d?.meanAskedFirst)
      dhtRow('DHT peers asked by the whole query, mean', d?.meanAskedDone)
      dhtRow('DHT direct GET_VALUE to a holder p50 (ms, floor)', d?.directP50)
      dhtRow('DHT direct GET_VALUE to a holder p99 (ms)', d?.directP99)
      if (d != null && d.directP50 > 0) {
        ratios['DHT first record p50 / direct fetch p50'] = d.firstP50 / d.directP50
        ratios['DHT query done p50 / direct fetch p50'] = d.doneP50 / d.directP50
      }
      if (d != null) {
        notes.dht =
          `${d.lookups} lookups of ${d.records} records, each from a node that does not hold it; ` +
          `${d.holders.toFixed(1)} holders per record; routing tables ${d.routingTable.toFixed(1)} peers on average`
      }
      if (typeof dht === 'string') notes.dht = `failed: ${oneLine(dht)}`
    }

    if (agents != null) {
      const a = typeof agents === 'string' ? undefined : agents
      const agentRow = (what: string, value: number | undefined): void => {
        rows.push([what, AGENTS.nodes, 'no registry', value ?? 'failed', '-'])
      }
      agentRow('agent record publish p50 (ms)', a?.publishP50)
      agentRow('agent get by principal p50 (ms)', a?.getP50)
      agentRow('agent get by principal p99 (ms)', a?.getP99)
      agentRow('agent get hops, mean', a?.meanHops)
      agentRow('agent get hops, max', a?.maxHops)
      agentRow('agent get DHT queries sent, mean', a?.meanQueries)
      agentRow('agent find by skill p50 (ms)', a?.findP50)
      agentRow('agent find by skill p99 (ms)', a?.findP99)
      if (a != null && typeof dht !== 'string' && dht != null && dht.directP50 > 0)
        ratios['agent get p50 / direct DHT fetch p50'] = a.getP50 / dht.directP50
      notes.agents =
        a != null
          ? `${a.lookups} gets and finds of ${a.agents} agents among ${a.nodes} members; ${a.localHits} answered from the asker's own store; failures: ${a.failures.length === 0 ? 'none' : oneLine(a.failures.join('; '))}`
          : `failed: ${oneLine(agents as string)}`
    }

    const csResolution = cyberspace.find(f => f.resolution != null)?.resolution
    return {
      setup: {
        serf: serfVersion,
        serfProfile: 'lan (probe 1 s, suspicion 4 × max(1, log10 N) × 1 s, gossip 200 ms)',
        transport: 'processes on 127.0.0.1 (Serf: udp+tcp; Cyberspace: libp2p tcp)',
        sizes: SIZES.join(','),
        killed: KILLED,
        trials: TRIALS,
        percentiles: `all-survivor p50/p99 over ${TRIALS} trials (p99 = max at this count); each-survivor over trials × (N − ${KILLED})`,
        detection: 'from kill -9 to the moment the survivor listed the member dead (Serf: failed)',
        serfResolution: 'exact: agent log lines (serf: EventMemberFailed / memberlist: Suspect) timestamped on arrival',
        cyberspaceResolution: csResolution ?? 'not measured',
        load: `${BUSY_LOOPS} busy loops (process.execPath -e 'for(;;){}') on ${STRESS_SECONDS} s; Cyberspace suspicions seen by polling every ${STRESS_POLL_MS} ms`,
        idle: `utime+stime from /proc/<pid>/stat over ${IDLE_SECONDS} s, after ${SETTLE_SECONDS} s settling, no requests`,
        dht: `${DHT.nodes} in-process nodes on the memory transport, one process, all joined through the first`,
        loadAverage: loads.join(', '),
        ...notes
      },
      columns: ['measure', 'N', 'serf', 'cyberspace', 'cyberspace / serf'],
      rows,
      ratios
    }
  }
}

export default benchmark
