/**
 * Work boards (issue 15): AGENTS agents and ITEMS work items, on an EVENTUAL board replicated across
 * three node processes, beside the same workload on a LOCAL board in one process (the floor).
 *
 * - Claims and completions per second over a run: every worker (bench/work-kinds.ts, `bench-worker`)
 *   loops in its node process, claiming a ready task at random and completing it at once, until its
 *   replica has seen every task completed.
 * - Claim latency p50/p99: from the claim call to its outcome, in the process (a board writes one
 *   event at a time, so this includes the wait behind the other workers of the process).
 * - Contested claim: CLAIMERS workers on each process claim one item at one instant (CONTESTS
 *   times); the time from that instant until every replica shows the same assignee (the last change
 *   of the assignee on the slowest replica, once every replica holds every claim written).
 * - Memory per 1,000 items: heap delta (after a full GC: the nodes run with --expose-gc) of a process
 *   holding the board, from before the items were created to after, and after the run (each item
 *   then also holds its claim and completion).
 *
 * Topology: node processes started by the CLI (`cyberspace start --kind bench/work-kinds.ts`, durable
 * stores, TCP on 127.0.0.1), driven through their control API. EVENTUAL: three members (a root key
 * trusted by all, member certificates), the agents spread over them; a coordinator agent on the
 * first creates the items in batches through `submit`. LOCAL: one node process with every agent.
 * The phases run one after the other (LOCAL first), so they never share the CPU.
 *
 * `npm run bench work -- --quick` (or WORK_BENCH_QUICK=1) scales down: 30 agents, 1,000 items,
 * 5 contests. Environment: WORK_BENCH_ITEMS, WORK_BENCH_AGENTS, WORK_BENCH_CONTESTS,
 * WORK_BENCH_BATCH (operations per submit), WORK_BENCH_RUN_S (cap of a run), WORK_BENCH_PHASES (default
 * `local,eventual`), WORK_BENCH_NODE_OPTIONS (added to the nodes' NODE_OPTIONS, e.g. `--cpu-prof`),
 * WORK_BENCH_DEBUG (the nodes' DEBUG, e.g. `cyberspace:agents*`; a failure prints the node's output).
 */
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { peerIdFromString } from '@libp2p/peer-id'
import { principalFromPeerId } from '../src/crypto/principal.ts'
import { signedCertToSexp } from '../src/spki/cert.ts'
import { toAdvanced } from '../src/spki/sexp.ts'
import { admit } from '../test/helpers/members.ts'
import { spawnNode, stopNodes } from '../test/helpers/processes.ts'
import { grant, key } from '../test/spki/fixtures.ts'
import { percentile } from './harness.ts'
import { progress, sleep } from './member-cluster.ts'
import type { Benchmark, BenchResult } from './harness.ts'
import type { HostedAgentView } from '../node/api/agent-routes.ts'
import type { MembersView } from '../node/api/membership-routes.ts'
import type { PrincipalId } from '../src/crypto/principal.ts'
import type { NodeProcess } from '../test/helpers/processes.ts'
import type { Key } from '../test/spki/fixtures.ts'

const QUICK =
  process.argv.includes('--quick') || process.env.WORK_BENCH_QUICK === '1' || process.env.npm_config_quick === 'true'
const ITEMS = Number(process.env.WORK_BENCH_ITEMS ?? (QUICK ? 1000 : 10_000))
const AGENTS = Number(process.env.WORK_BENCH_AGENTS ?? (QUICK ? 30 : 100))
const CONTESTS = Number(process.env.WORK_BENCH_CONTESTS ?? (QUICK ? 5 : 20))
const BATCH = Number(process.env.WORK_BENCH_BATCH ?? 100)
/** Longest a run may last, s: past it the figures are over what was done. */
const RUN_S = Number(process.env.WORK_BENCH_RUN_S ?? (QUICK ? 20 : 45))
const PROCESSES = 3
/** Workers of each process claiming a contested item at once. */
const CLAIMERS = 3
const BOARD = 'bench'
const KINDS = fileURLToPath(new URL('./work-kinds.ts', import.meta.url))
/** What the root grants: members, the coordinator (everything on the board), the workers (claim, complete). */
const MEMBER_TAG = '(cyberspace (* set member (agent) (log)))'
const COORDINATOR_TAG = `(cyberspace (* set (work ${BOARD}) (mailbox (send))))`
const WORKER_TAG = `(cyberspace (* set (work ${BOARD} (* set claim complete)) (mailbox (send))))`
/** Certificate imports in flight per node. */
const PARALLEL = 8
/** Spawns in flight per node (a spawn waits seconds for a registry lookup; the API takes 64 connections). */
const SPAWNS = 40
/** How long the replicas may take to agree once the run is over, s. */
const CATCH_UP_S = Number(process.env.WORK_BENCH_CATCH_UP_S ?? 90)
/** Lead time of a synchronized start (run, contested claim), ms: longer than it takes to tell every process. */
const LEAD_MS = 500

interface Proc {
  name: string
  node: NodeProcess
  control: PrincipalId
  workers: PrincipalId[]
}

interface Contest {
  item: string
  at: number
  timeline: Array<{ t: number; assignee: string | null }>
  seen: string[]
  outcomes: Array<{ accepted?: boolean; error?: string; ms: number }>
  done: boolean
  assignee: string | null
}

interface Stats {
  mode: string
  total: number
  runAt?: number
  create?: { count: number; batch: number; startedAt: number; endedAt?: number; batches: number; error?: string }
  tasksSeen: number
  allTasksAt?: number
  claims: number
  claimMs?: number[]
  claimsAccepted: number
  claimsRefusedAtWrite: number
  claimsNotWritten: Record<string, number>
  completions: number
  completionsRefused: number
  lostAfterWrite: number
  told: number
  firstClaimAt?: number
  lastCompletionAt?: number
  completedSeen: number
  allCompletedAt?: number
  workersRunning: number
  workersDone: number
  errors: string[]
  contests: Contest[]
  workers: number
}

interface Memory {
  gc: boolean
  heapUsed: number
  rss: number
}

interface PhaseResult {
  mode: 'local' | 'eventual'
  processes: number
  agents: number
  createS: number
  replicatedS: number
  runS: number
  claimsPerS: number
  completionsPerS: number
  claimP50: number
  claimP99: number
  claims: number
  notWritten: Record<string, number>
  refusedAtWrite: number
  lostAfterWrite: number
  told: number
  contestP50: number
  /** Claim call → outcome of the contested claims that were written: one claim per process on a quiet board. */
  quietClaimP50: number
  contestMax: number
  contestWritten: string
  contestsAgreed: number
  /** KiB per 1,000 items: the process that created them (the coordinator's), after creation and after the run. */
  memCreator: number
  memCreatorAfter: number
  /** The same for the replicas that did not create them (mean); NaN with one process. */
  memReplica: number
  memReplicaAfter: number
  memKind: string
  agree: string
  completedAll: boolean
  completed: number
  /** After the last completion, until every replica holds the same board. */
  catchUpS: number
  setupS: number
  errors: string[]
}

/** A request to the process's control agent, through the control API. */
async function ask<T>(p: Proc, type: string, body: Record<string, unknown> = {}, timeout = 30_000): Promise<T> {
  try {
    const answer = await p.node.api.post<{ response: T }>('agents/send', {
      from: p.control,
      to: p.control,
      type,
      request: true,
      timeout,
      body: { board: BOARD, ...body }
    })
    return answer.response
  } catch (err) {
    // what became of the control agent, and what the node said last
    const hosted = await p.node.api
      .get<{ agents: Array<{ principal: string; status: string; lastExit?: string; restarts?: number }> }>(
        'agents/hosted'
      )
      .catch(() => undefined)
    const control = hosted?.agents.find(a => a.principal === p.control)
    throw new Error(
      `${type} to the control agent of node ${p.name} failed: ${(err as Error).message}; control agent: ${JSON.stringify(control ?? 'not hosted')}; node output: ${p.node.output().slice(-1500)}`
    )
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, every = 250): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(every)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

/** Runs `fn` over `items`, `limit` at a time. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++
        out[i] = await fn(items[i], i)
      }
    })
  )
  return out
}

/** Starts the node processes; the first is the bootstrap of the others. */
async function startNodes(n: number): Promise<NodeProcess[]> {
  const env = {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${process.env.WORK_BENCH_NODE_OPTIONS ?? ''} --expose-gc`.trim(),
    ...(process.env.WORK_BENCH_DEBUG != null ? { DEBUG: process.env.WORK_BENCH_DEBUG } : {})
  }
  const first = await spawnNode({ extraArgs: ['--kind', KINDS], env, startTimeoutMs: 60_000 })
  const rest = await Promise.all(
    Array.from(
      { length: n - 1 },
      async () =>
        await spawnNode({ bootstrap: [first.tcpAddr], extraArgs: ['--kind', KINDS], env, startTimeoutMs: 60_000 })
    )
  )
  return [first, ...rest]
}

/** Certificates by `root` for `principals`, imported on every node. */
async function grantAll(root: Key, nodes: NodeProcess[], principals: string[], tagText: string): Promise<void> {
  const texts = await Promise.all(
    principals.map(async principal =>
      toAdvanced(
        signedCertToSexp(
          await grant(root, { kind: 'key', principal: principal as PrincipalId }, tagText, { propagate: false })
        )
      )
    )
  )
  await Promise.all(
    nodes.map(async node => await pool(texts, PARALLEL, async sexp => await node.api.post('spki/import', { sexp })))
  )
}

/** Agents on each process: the control agent, then its share of the workers. */
async function spawnAgents(nodes: NodeProcess[], agents: number): Promise<Proc[]> {
  return await Promise.all(
    nodes.map(async (node, i) => {
      const spawn = async (kind: string, id: string): Promise<PrincipalId> =>
        (await node.api.post<HostedAgentView>('agents', { kind, id, key: 'local' })).principal
      const control = await spawn('bench-control', 'control')
      const mine = Array.from({ length: agents }, (_, w) => w).filter(w => w % nodes.length === i)
      const workers = await pool(mine, SPAWNS, async w => await spawn('bench-worker', `w${w}`))
      return { name: 'ABC'[i] ?? `N${i}`, node, control, workers }
    })
  )
}

const memoryOf = async (procs: Proc[]): Promise<Memory[]> =>
  await Promise.all(procs.map(async p => await ask<Memory>(p, 'memory')))

const sorted = (values: number[]): number[] => [...values].sort((a, b) => a - b)

/**
 * One phase: the board in `mode` on `procs` (the first is the coordinator's process): items
 * created, the run, the contested claims, memory before and after. The caller has started the
 * processes, spawned the agents and granted them.
 */
async function phase(mode: 'local' | 'eventual', procs: Proc[], setupS: number): Promise<PhaseResult> {
  const [coord, ...replicas] = procs
  const label = mode.toUpperCase()
  for (const p of procs) {
    await p.node.api.post('work/boards', { board: BOARD, mode })
    await ask(p, 'open', { mode })
  }
  // memory of a process holding the board: before any item, after the items, after the run
  const before = await memoryOf(procs)
  for (const p of procs) await ask(p, 'expect', { total: ITEMS })
  const errors: string[] = []

  // ------------------------------------------------------------------ the items, in batches
  await ask(coord, 'create', { count: ITEMS, batch: BATCH })
  let coordStats: Stats | null = null
  await waitFor(
    `${label}: ${ITEMS} items created`,
    async () => {
      coordStats = await ask<Stats>(coord, 'stats')
      return coordStats?.create?.endedAt != null
    },
    240_000,
    500
  )
  const create = (coordStats as unknown as Stats).create
  if (create?.error != null) throw new Error(`${label}: creating the items failed: ${create.error}`)
  const createS = ((create?.endedAt ?? 0) - (create?.startedAt ?? 0)) / 1000
  let replicatedAt = create?.endedAt ?? 0
  await waitFor(
    `${label}: every replica to hold ${ITEMS} tasks`,
    async () => {
      const all = await Promise.all(procs.map(async p => await ask<Stats>(p, 'stats')))
      if (!all.every(s => s.allTasksAt != null)) return false
      replicatedAt = Math.max(...all.map(s => s.allTasksAt ?? 0))
      return true
    },
    240_000,
    500
  )
  const replicatedS = (replicatedAt - (create?.startedAt ?? 0)) / 1000
  progress(
    `work ${label}: ${ITEMS} items created in ${createS.toFixed(1)} s (batches of ${BATCH}), on every replica after ${replicatedS.toFixed(1)} s`
  )
  const afterCreate = await memoryOf(procs)

  // ------------------------------------------------------------------ the run
  const at = Math.round(Date.now() + LEAD_MS)
  await Promise.all(procs.map(async p => await ask(p, 'go', { at, ms: RUN_S * 1000, total: ITEMS })))
  let last: Stats[] = []
  const runDeadline = at + RUN_S * 1000 + 10_000
  for (let tick = 0; Date.now() < runDeadline; tick++) {
    await sleep(1000)
    last = await Promise.all(procs.map(async p => await ask<Stats>(p, 'stats')))
    const done = last.every(s => s.allCompletedAt != null) && last.every(s => s.workersRunning === 0)
    if (tick % 5 === 4 || done)
      progress(
        `work ${label}: ${((Date.now() - at) / 1000).toFixed(0)} s: completed as seen ${last.map(s => s.completedSeen).join('/')}, claims ${last.reduce((n, s) => n + s.claimsAccepted, 0)}`
      )
    if (done) break
  }
  const final = await Promise.all(procs.map(async p => await ask<Stats>(p, 'stats', { samples: true }, 55_000)))
  for (const s of final) errors.push(...s.errors)
  // the run: from the start to the last completion anywhere (workers stop at the cap)
  const lastCompletion = Math.max(...final.map(s => s.lastCompletionAt ?? at))
  const runS = (lastCompletion - at) / 1000
  const claimsAccepted = final.reduce((n, s) => n + s.claimsAccepted, 0)
  const latencies = sorted(final.flatMap(s => (s.claimMs ?? []).map(v => v / 100)))
  const notWritten: Record<string, number> = {}
  for (const s of final)
    for (const [name, n] of Object.entries(s.claimsNotWritten)) notWritten[name] = (notWritten[name] ?? 0) + n
  // every replica holds the same items, statuses and assignees: how long after the last completion
  let agree = 'one replica'
  let digests: Array<{ digest: string; completed: number }> = []
  let agreedAt = Number.NaN
  await waitFor(
    `${label}: every replica to hold the same board`,
    async () => {
      digests = await Promise.all(procs.map(async p => await ask<{ digest: string; completed: number }>(p, 'digest')))
      agreedAt = Date.now()
      return new Set(digests.map(d => d.digest)).size === 1
    },
    CATCH_UP_S * 1000,
    250
  ).then(
    () => {
      if (procs.length > 1) agree = `yes (digest ${digests[0].digest})`
    },
    () => {
      agree = `NO after ${CATCH_UP_S} s: ${digests.map(d => `${d.digest} (${d.completed} completed)`).join(', ')}`
      agreedAt = Number.NaN
    }
  )
  const completed = Math.min(...digests.map(d => d.completed))
  const catchUpS = procs.length > 1 ? (agreedAt - lastCompletion) / 1000 : Number.NaN
  progress(
    `work ${label}: run ${runS.toFixed(1)} s, ${claimsAccepted} claims accepted, ${completed} tasks completed; claim p50 ${percentile(latencies, 50).toFixed(1)} ms p99 ${percentile(latencies, 99).toFixed(1)} ms; replicas agree: ${agree}${Number.isFinite(catchUpS) ? ` ${catchUpS.toFixed(1)} s after the last completion` : ''}`
  )
  const afterRun = await memoryOf(procs)

  // ------------------------------------------------------------------ contested claims
  await ask(coord, 'create-contested', { count: CONTESTS })
  await waitFor(
    `${label}: every replica to hold the contested items`,
    async () =>
      (await Promise.all(procs.map(async p => await ask(p, 'item', { item: `c${CONTESTS - 1}` })))).every(
        i => i != null
      ),
    60_000
  )
  const claimers = procs.length === 1 ? CLAIMERS * PROCESSES : CLAIMERS
  const agreement: number[] = []
  const quietClaims: number[] = []
  const written: number[] = []
  for (let i = 0; i < CONTESTS; i++) {
    const item = `c${i}`
    const at = Math.round(Date.now() + LEAD_MS)
    await Promise.all(procs.map(async p => await ask(p, 'contest', { item, at, claimers })))
    let views: Contest[] = []
    try {
      await waitFor(
        `${label}: every replica to hold every claim of ${item}`,
        async () => {
          views = (await Promise.all(procs.map(async p => await ask<Stats>(p, 'stats')))).map(
            s => s.contests.find(c => c.item === item) as Contest
          )
          if (!views.every(v => v?.done)) return false
          const union = new Set(views.flatMap(v => v.seen))
          return views.every(v => v.seen.length === union.size) && new Set(views.map(v => v.assignee)).size === 1
        },
        30_000,
        100
      )
    } catch (err) {
      errors.push((err as Error).message)
      continue
    }
    const lastChange = Math.max(...views.map(v => v.timeline.at(-1)?.t ?? Number.NaN))
    agreement.push(lastChange - at)
    written.push(views[0].seen.length)
    for (const v of views) for (const o of v.outcomes) if (o.accepted != null) quietClaims.push(o.ms)
  }
  const contestSorted = sorted(agreement.filter(v => Number.isFinite(v)))
  progress(
    `work ${label}: contested claims agreed in ${contestSorted.map(v => v.toFixed(0)).join('/')} ms (${written.join('/')} claims written of ${claimers * procs.length})`
  )

  const gc = afterCreate.every(m => m.gc)
  const field = gc ? 'heapUsed' : 'rss'
  // the replicas hold the board and did not create it; with one process, that process
  /** KiB per 1,000 items the processes at `indices` hold more in `to` than before the items (mean). */
  const delta = (to: Memory[], indices: number[]): number =>
    indices.length === 0
      ? Number.NaN
      : indices.reduce((n, i) => n + (to[i][field] - before[i][field]), 0) / indices.length / (ITEMS / 1000) / 1024
  const others = replicas.map(p => procs.indexOf(p))
  return {
    mode,
    processes: procs.length,
    agents: procs.reduce((n, p) => n + p.workers.length, 0),
    createS,
    replicatedS,
    runS,
    claimsPerS: claimsAccepted / runS,
    completionsPerS: completed / runS,
    claimP50: percentile(latencies, 50),
    claimP99: percentile(latencies, 99),
    claims: latencies.length,
    notWritten,
    refusedAtWrite: final.reduce((n, s) => n + s.claimsRefusedAtWrite, 0),
    lostAfterWrite: final.reduce((n, s) => n + s.lostAfterWrite, 0),
    told: final.reduce((n, s) => n + s.told, 0),
    contestP50: percentile(contestSorted, 50),
    quietClaimP50: percentile(sorted(quietClaims), 50),
    contestMax: contestSorted.at(-1) ?? Number.NaN,
    contestWritten: written.join('/'),
    contestsAgreed: contestSorted.length,
    memCreator: delta(afterCreate, [0]),
    memCreatorAfter: delta(afterRun, [0]),
    memReplica: delta(afterCreate, others),
    memReplicaAfter: delta(afterRun, others),
    memKind: gc ? 'heap used after a full GC (the nodes run with --expose-gc)' : 'RSS (no GC exposed)',
    agree,
    completedAll: completed >= ITEMS,
    completed,
    catchUpS,
    setupS,
    errors
  }
}

/** A phase WORK_BENCH_PHASES leaves out: every figure NaN (printed as such). */
function skippedPhase(mode: 'local' | 'eventual'): PhaseResult {
  return {
    mode,
    processes: 0,
    agents: 0,
    createS: NaN,
    replicatedS: NaN,
    runS: NaN,
    claimsPerS: NaN,
    completionsPerS: NaN,
    claimP50: NaN,
    claimP99: NaN,
    claims: 0,
    notWritten: {},
    refusedAtWrite: 0,
    lostAfterWrite: 0,
    told: 0,
    contestP50: NaN,
    quietClaimP50: NaN,
    contestMax: NaN,
    contestWritten: '',
    contestsAgreed: 0,
    memCreator: NaN,
    memCreatorAfter: NaN,
    memReplica: NaN,
    memReplicaAfter: NaN,
    memKind: 'skipped',
    agree: 'skipped',
    completedAll: false,
    completed: 0,
    catchUpS: NaN,
    setupS: NaN,
    errors: []
  }
}

/** LOCAL: one process with every agent. */
async function localPhase(root: Key): Promise<PhaseResult> {
  const t0 = performance.now()
  const [node] = await startNodes(1)
  try {
    await node.api.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
    const [proc] = await spawnAgents([node], AGENTS)
    await grantAll(root, [node], [proc.control], COORDINATOR_TAG)
    await grantAll(root, [node], proc.workers, WORKER_TAG)
    const setupS = (performance.now() - t0) / 1000
    progress(`work LOCAL: 1 process, ${proc.workers.length} agents (${setupS.toFixed(1)} s)`)
    return await phase('local', [proc], setupS)
  } finally {
    await stopNodes([node])
  }
}

/** EVENTUAL: three member processes, the agents spread over them. */
async function eventualPhase(root: Key): Promise<PhaseResult> {
  const t0 = performance.now()
  const nodes = await startNodes(PROCESSES)
  try {
    for (const n of nodes) {
      await admit(n, root)
      await n.api.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
    }
    await grantAll(
      root,
      nodes,
      nodes.map(n => principalFromPeerId(peerIdFromString(n.peerId))),
      MEMBER_TAG
    )
    await waitFor(
      `every node to list ${PROCESSES} members alive`,
      async () =>
        (await Promise.all(nodes.map(async n => await n.api.get<MembersView>('members')))).every(
          v => v.members.filter(m => m.state === 'alive').length === PROCESSES
        ),
      60_000,
      500
    )
    const procs = await spawnAgents(nodes, AGENTS)
    await grantAll(
      root,
      nodes,
      procs.map(p => p.control),
      COORDINATOR_TAG
    )
    await grantAll(
      root,
      nodes,
      procs.flatMap(p => p.workers),
      WORKER_TAG
    )
    const setupS = (performance.now() - t0) / 1000
    progress(
      `work EVENTUAL: ${PROCESSES} member processes, ${procs.map(p => p.workers.length).join('+')} agents (${setupS.toFixed(1)} s)`
    )
    return await phase('eventual', procs, setupS)
  } finally {
    await stopNodes(nodes)
  }
}

const benchmark: Benchmark = {
  name: 'work',
  description: `${AGENTS} agents and ${ITEMS} work items: claims and completions per second, claim latency, contested-claim agreement, memory per 1,000 items; EVENTUAL on ${PROCESSES} processes beside LOCAL in one (the floor)`,
  async run(): Promise<BenchResult> {
    const t0 = performance.now()
    const loads = [`start ${loadavg()[0].toFixed(1)}`]
    const root = await key()
    const phases = (process.env.WORK_BENCH_PHASES ?? 'local,eventual').split(',')
    const local = phases.includes('local') ? await localPhase(root) : skippedPhase('local')
    loads.push(`after LOCAL ${loadavg()[0].toFixed(1)}`)
    const eventual = phases.includes('eventual') ? await eventualPhase(root) : skippedPhase('eventual')
    loads.push(`end ${loadavg()[0].toFixed(1)}`)
    const rows: Array<Array<string | number>> = []
    const ratios: Record<string, number> = {}
    /** A figure of both phases and their ratio; '-' where a phase has none (LOCAL has no replicas to wait for). */
    const row = (measure: string, pick: (r: PhaseResult) => number, ratioName?: string): void => {
      const e = pick(eventual)
      const l = pick(local)
      const shown = (v: number): number | string => (Number.isFinite(v) ? v : '-')
      rows.push([measure, shown(e), shown(l), shown(e / l)])
      if (ratioName != null && Number.isFinite(e / l)) ratios[ratioName] = e / l
    }
    row('claims/s (claims accepted where made / run)', r => r.claimsPerS, 'claims/s EVENTUAL / LOCAL')
    row(
      'completions/s (tasks completed, as every replica agrees / run)',
      r => r.completionsPerS,
      'completions/s EVENTUAL / LOCAL'
    )
    row('claim latency p50 (ms, claim call → outcome)', r => r.claimP50, 'claim p50 EVENTUAL / LOCAL')
    row('claim latency p99 (ms)', r => r.claimP99, 'claim p99 EVENTUAL / LOCAL')
    row(
      'claim latency on a quiet board p50 (ms: the contested claims that were written, nothing queued before them)',
      r => r.quietClaimP50,
      'quiet claim p50 EVENTUAL / LOCAL'
    )
    row(
      `contested claim → every replica shows one assignee, p50 (ms, ${CONTESTS} trials)`,
      r => r.contestP50,
      'contest p50 EVENTUAL / LOCAL'
    )
    row(
      'contested claim → every replica shows one assignee, max (ms)',
      r => r.contestMax,
      'contest max EVENTUAL / LOCAL'
    )
    row(
      'memory per 1,000 items after creation, the creating process (KiB)',
      r => r.memCreator,
      'memory per 1000 items EVENTUAL / LOCAL'
    )
    row('… a replica that did not create them (KiB, mean of 2)', r => r.memReplica)
    row('memory per 1,000 items after the run, the creating process (KiB)', r => r.memCreatorAfter)
    row('… a replica (KiB, mean of 2)', r => r.memReplicaAfter)
    row(
      `creating ${ITEMS} items (s, batches of ${BATCH} through submit)`,
      r => r.createS,
      'create time EVENTUAL / LOCAL'
    )
    row(`… until every replica holds them (s)`, r => r.replicatedS)
    row(`run (s): start → last completion (workers stop at every task done or the ${RUN_S} s cap)`, r => r.runS)
    row('tasks completed in the run', r => r.completed)
    row('last completion → every replica holds the same board (s)', r => r.catchUpS)
    const describe = (r: PhaseResult): string =>
      `${r.claims} claims written (${r.refusedAtWrite} refused by the fold at write, ${r.lostAfterWrite} lost later to an earlier claim, ${r.told} work.lost messages to the losers), not written: ${JSON.stringify(r.notWritten)}; contested claims written per trial ${r.contestWritten}, ${r.contestsAgreed}/${CONTESTS} agreed; replicas agree: ${r.agree}; every task completed: ${r.completedAll}${r.errors.length > 0 ? `; errors: ${r.errors.slice(0, 3).join(' | ')}` : ''}`
    return {
      setup: {
        mode: QUICK ? 'quick' : 'full',
        agents: AGENTS,
        items: ITEMS,
        eventual: `${PROCESSES} member node processes (CLI, durable stores, TCP 127.0.0.1), ${eventual.agents} worker agents spread over them + a coordinator agent on the first; setup ${eventual.setupS.toFixed(0)} s`,
        local: `1 node process, ${local.agents} worker agents + the coordinator; setup ${local.setupS.toFixed(0)} s`,
        workload: `a goal and ${ITEMS} tasks under it, created by the coordinator in batches of ${BATCH} operations per submit; every worker (its own key, root-granted claim and complete) loops: a ready task at random among ${16} from a random point, claim, complete at once; run capped at ${RUN_S} s`,
        contested: `${CONTESTS} items, each claimed at one instant by ${CLAIMERS} workers on each of the ${PROCESSES} processes (LOCAL: ${CLAIMERS * PROCESSES} in its one process); agreement = the last change of the assignee on the slowest replica, once every replica holds every claim written, minus the instant`,
        memory: `heap delta from before the items were created: ${eventual.memKind}; after the run, items also hold their claim and completion (and, at the cap, not every task was done)`,
        eventualDetail: describe(eventual),
        localDetail: describe(local),
        durationS: Math.round((performance.now() - t0) / 1000),
        loadAverage: loads.join(', ')
      },
      columns: ['measure', 'EVENTUAL (3 processes)', 'LOCAL (1 process, floor)', 'EVENTUAL / LOCAL'],
      rows,
      ratios
    }
  }
}

export default benchmark
