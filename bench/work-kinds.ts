/**
 * The kinds the work benchmark's node processes run (bench/work.bench.ts), loaded with
 * `cyberspace start --kind <this file>`. Everything is measured here, in the process that holds the
 * board, and read back by the driver through the control API (`POST agents/send`, a request to the
 * process's `bench-control` agent):
 *
 * - `bench-worker`: an implementer. Once the run starts (`go`), it loops: picks a ready `task` item
 *   of the board at random, claims it as itself (`agent.signer`), and completes it at once when the
 *   claim is accepted. The time from the claim call to its outcome is recorded; a claim refused
 *   before it is written (another worker of this process got there first, by this replica's view) is
 *   counted by error name. It stops when this replica has seen every task completed, or at the run's
 *   deadline. A `work.lost` message (a claim of its that lost to an earlier one) is counted.
 * - `bench-control`: one per process. It is the coordinator on the process that creates the items
 *   (`create`: batches through `board.submit`), starts the workers (`go`), makes several workers
 *   claim one item at one instant (`contest`), and answers `stats` (what was measured here: claim
 *   latencies, counts, when this replica saw the items and the completions, the contested items'
 *   assignee timeline and a digest of the board) and `memory` (heap after a full GC when the process
 *   runs with --expose-gc, else without GC, said in the answer). Long operations answer at once and
 *   are followed through `stats`.
 *
 * Times are wall clock ms with sub-ms precision (performance.timeOrigin + performance.now()): every
 * process of a run is on one machine, so they compare across processes.
 *
 * @example
 * cyberspace start --kind ./bench/work-kinds.ts
 * POST /api/v0/agents { "kind": "bench-control", "id": "control", "key": "local" }
 * POST /api/v0/agents/send { "from": c, "to": c, "type": "stats", "request": true, "body": { "board": "bench" } }
 */
import { createHash } from 'node:crypto'
import type { KindHost } from '../node/kinds.ts'
import type { AgentContext, AgentDefinition } from '../src/actor/agents.ts'
import type { PrincipalId } from '../src/crypto/principal.ts'
import type { Board, BoardChange, WorkBoards, WorkOp } from '../src/work/types.ts'

/** The kind of the items workers claim; contested items are of another kind, so workers leave them. */
export const TASK_KIND = 'task'
export const CONTEST_KIND = 'contest'
/** The parent of every task. */
export const GOAL = 'goal'
/** Ready items a worker looks at when it picks one. */
const PICK_FROM = 16
/** How long a worker waits when it sees nothing ready, ms. */
const IDLE_MS = 20
/** Longest a run may last, ms, whatever the driver asks (every loop here is bounded). */
const MAX_RUN_MS = 600_000
/** Most items a `create` makes. */
const MAX_CREATE = 100_000
/** Most operations of one `submit`. */
const MAX_BATCH = 1000

/** Wall clock ms with sub-ms precision, comparable across the processes of one machine. */
export const now = (): number => performance.timeOrigin + performance.now()

/** The id of task `i` of `count`: zero-padded, so ids sort in creation order. */
export function taskId(i: number): string {
  return `t${String(i).padStart(6, '0')}`
}

interface Contest {
  item: string
  /** When the claims were to go, wall ms. */
  at: number
  /** Each change of the item's assignee on this replica: when, and to whom. */
  timeline: Array<{ t: number; assignee: string | null }>
  /** Claim operations of the item seen by this replica (applied or refused), as `hlc actor index`. */
  seen: string[]
  /** Claims made here: stamps written by local workers, and what each call gave. */
  outcomes: Array<{ accepted?: boolean; error?: string; ms: number }>
  done: boolean
}

/** What one process measured on one board. */
interface BoardStats {
  board: string
  mode: string
  /** Tasks expected (set by `go`); 0 before. */
  total: number
  runAt?: number
  deadline?: number
  /** Creation, when this process was the coordinator. */
  create?: { count: number; batch: number; startedAt: number; endedAt?: number; batches: number; error?: string }
  /** Tasks this replica holds, and when it first held them all. */
  tasksSeen: number
  allTasksAt?: number
  /** Claims written by workers here: call → outcome, in hundredths of ms. */
  claimMs: number[]
  claimsAccepted: number
  claimsRefusedAtWrite: number
  /** Claims refused before they were written, by error name. */
  claimsNotWritten: Record<string, number>
  completions: number
  completionsRefused: number
  /** Claims by workers here that the fold refused after they were written (lost to an earlier claim). */
  lostAfterWrite: number
  /** `work.lost` messages workers here received. */
  told: number
  firstClaimAt?: number
  lastCompletionAt?: number
  /** Tasks this replica has seen completed, and when it saw them all. */
  completedSeen: number
  allCompletedAt?: number
  workersRunning: number
  workersDone: number
  errors: string[]
  contests: Map<string, Contest>
}

interface BoardRun {
  board: Board
  stats: BoardStats
  completed: Set<string>
  tasks: Set<string>
  /** Resolves when the run starts. */
  started: Promise<void>
  start: () => void
}

/** Everything of this process: the boards it measures and the workers it runs. */
const runs = new Map<string, Promise<BoardRun>>()
const workers = new Map<PrincipalId, AgentContext>()
const workerWaiters = new Set<(board: string) => void>()
let work: WorkBoards | undefined

function boardStats(board: string, mode: string): BoardStats {
  return {
    board,
    mode,
    total: 0,
    tasksSeen: 0,
    claimMs: [],
    claimsAccepted: 0,
    claimsRefusedAtWrite: 0,
    claimsNotWritten: {},
    completions: 0,
    completionsRefused: 0,
    lostAfterWrite: 0,
    told: 0,
    completedSeen: 0,
    workersRunning: 0,
    workersDone: 0,
    errors: [],
    contests: new Map()
  }
}

function note(stats: BoardStats, what: string, err: unknown): void {
  if (stats.errors.length < 20)
    stats.errors.push(`${what}: ${(err as Error).name}: ${(err as Error).message}`.slice(0, 300))
}

/** Opens `name` (once per process) and follows its changes. */
async function open(name: string, mode: 'local' | 'eventual'): Promise<BoardRun> {
  let run = runs.get(name)
  if (run == null) {
    run = (async () => {
      if (work == null) throw new Error('this node has no work service')
      const board = await work.board(name, { mode })
      const stats = boardStats(name, board.mode)
      let start = (): void => {}
      const started = new Promise<void>(resolve => {
        start = resolve
      })
      const r: BoardRun = { board, stats, completed: new Set(), tasks: new Set(), started, start }
      board.addEventListener('change', e => {
        onChange(r, e.detail)
      })
      return r
    })()
    runs.set(name, run)
    run.catch(() => runs.delete(name))
  }
  return await run
}

function onChange(r: BoardRun, change: BoardChange): void {
  const { stats } = r
  const t = now()
  const contest = stats.contests.get(change.item)
  if (contest != null) {
    if (change.op === 'claim') {
      const stamp = `${change.stamp.hlc[0]}.${change.stamp.hlc[1]} ${change.stamp.actor} ${change.stamp.index}`
      if (!contest.seen.includes(stamp)) contest.seen.push(stamp)
    }
    const assignee = r.board.item(change.item)?.assignee ?? null
    const last = contest.timeline.at(-1)
    if (last == null || last.assignee !== assignee) contest.timeline.push({ t, assignee })
    return
  }
  if (change.type === 'refused') {
    if (change.op === 'claim' && workers.has(change.stamp.actor)) stats.lostAfterWrite++
    return
  }
  if (change.op === 'create' && change.item !== GOAL && !r.tasks.has(change.item)) {
    r.tasks.add(change.item)
    stats.tasksSeen = r.tasks.size
    if (stats.total > 0 && r.tasks.size >= stats.total) stats.allTasksAt ??= t
  }
  if (change.op === 'complete' && !r.completed.has(change.item)) {
    r.completed.add(change.item)
    stats.completedSeen = r.completed.size
    if (stats.total > 0 && r.completed.size >= stats.total) stats.allCompletedAt ??= t
  }
}

const sleep = async (ms: number, signal: AbortSignal): Promise<void> => {
  await new Promise<void>(resolve => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}

/** A random id among the tasks' (t000000…), where a worker starts looking, so workers spread over the board. */
function randomStart(total: number): string {
  return taskId(Math.floor(Math.random() * Math.max(1, total)))
}

/** One worker's run: claim a ready task, complete it, until every task is done here or the deadline. */
async function workLoop(r: BoardRun, agent: AgentContext): Promise<void> {
  const { board, stats } = r
  const as = agent.signer
  const deadline = stats.deadline ?? now()
  stats.workersRunning++
  try {
    for (let round = 0; round < 10_000_000; round++) {
      if (agent.signal.aborted || now() >= deadline || r.completed.size >= stats.total) break
      let ready = board.items({ ready: true, kind: TASK_KIND, after: randomStart(stats.total), limit: PICK_FROM })
      if (ready.length === 0) ready = board.items({ ready: true, kind: TASK_KIND, limit: PICK_FROM })
      if (ready.length === 0) {
        await sleep(IDLE_MS, agent.signal)
        continue
      }
      const item = ready[Math.floor(Math.random() * ready.length)].id
      const t0 = now()
      let accepted: boolean
      try {
        const outcome = await board.claim(item, { as })
        stats.claimMs.push(Math.round((now() - t0) * 100))
        accepted = outcome.accepted
      } catch (err) {
        const name = (err as Error).name
        stats.claimsNotWritten[name] = (stats.claimsNotWritten[name] ?? 0) + 1
        continue
      }
      stats.firstClaimAt ??= t0
      if (!accepted) {
        stats.claimsRefusedAtWrite++
        continue
      }
      stats.claimsAccepted++
      try {
        const outcome = await board.complete(item, { result: { by: agent.id } }, { as })
        if (outcome.accepted) {
          stats.completions++
          stats.lastCompletionAt = now()
        } else stats.completionsRefused++
      } catch (err) {
        // lost its claim meanwhile (by this replica's view): the winner completes it
        stats.completionsRefused++
        if ((err as Error).name !== 'NotAssigneeError') note(stats, `complete ${item}`, err)
      }
    }
  } catch (err) {
    note(stats, `worker ${agent.id}`, err)
  } finally {
    stats.workersRunning--
    stats.workersDone++
  }
}

const worker = (host: KindHost): AgentDefinition => ({
  description: 'claims ready tasks of the bench board and completes them at once',
  skills: [{ id: 'bench-work', name: 'bench work', description: 'claims and completes tasks', tags: ['bench'] }],
  behaviour: agent => ({
    init: () => {
      work ??= host.work
      workers.set(agent.principal, agent)
      // waits for `go` on a board, then works it; once per board
      const begin = (name: string): void => {
        void (async () => {
          const r = await runs.get(name)
          if (r == null) return
          await r.started
          await workLoop(r, agent)
        })().catch(() => {})
      }
      workerWaiters.add(begin)
      agent.signal.addEventListener('abort', () => {
        workerWaiters.delete(begin)
        workers.delete(agent.principal)
      })
    },
    handle: message => {
      if (message.type === 'work.lost') {
        const board = (message.body as { board?: unknown } | null)?.board
        void runs.get(String(board))?.then(r => {
          r.stats.told++
        })
      }
      return undefined
    }
  })
})

/** Creates the goal and `count` tasks under it, `batch` operations to a submit, as `agent`. */
async function create(r: BoardRun, agent: AgentContext, count: number, batch: number): Promise<void> {
  const { board, stats } = r
  const info: NonNullable<BoardStats['create']> = { count, batch, startedAt: now(), batches: 0 }
  stats.create = info
  try {
    if (board.item(GOAL) == null) {
      await board.create({ item: GOAL, title: 'the benchmark', kind: 'goal' }, { as: agent.signer })
    }
    for (let from = 0; from < count; from += batch) {
      const ops: WorkOp[] = []
      for (let i = from; i < Math.min(count, from + batch); i++) {
        const item = taskId(i)
        ops.push({ op: 'create', item, kind: TASK_KIND, path: `${GOAL}/${item}`, parent: GOAL, title: `task ${i}` })
      }
      const outcomes = await board.submit(ops, { as: agent.signer })
      const refused = outcomes.filter(o => !o.accepted)
      if (refused.length > 0) throw new Error(`${refused.length} creates refused: ${refused[0].reason}`)
      info.batches++
    }
  } catch (err) {
    info.error = `${(err as Error).name}: ${(err as Error).message}`
  } finally {
    info.endedAt = now()
  }
}

/** At `at`, `claimers` workers of this process claim `item` at once. */
async function contest(r: BoardRun, item: string, at: number, claimers: number): Promise<void> {
  const c = r.stats.contests.get(item)
  if (c == null) return
  const chosen = [...workers.values()].slice(0, claimers)
  await new Promise(resolve => setTimeout(resolve, Math.max(0, at - now())))
  await Promise.all(
    chosen.map(async agent => {
      const t0 = now()
      try {
        const outcome = await r.board.claim(item, { as: agent.signer })
        c.outcomes.push({ accepted: outcome.accepted, ms: now() - t0 })
      } catch (err) {
        c.outcomes.push({ error: (err as Error).name, ms: now() - t0 })
      }
    })
  )
  c.done = true
}

/** Items, statuses and assignees of the board, hashed: equal on replicas that agree. */
function digest(board: Board): { items: number; completed: number; digest: string } {
  const hash = createHash('sha256')
  let items = 0
  let completed = 0
  let after: string | undefined
  for (let page = 0; page < 10_000; page++) {
    const list = board.items({ after, limit: 1000 })
    if (list.length === 0) break
    for (const item of list) {
      items++
      if (item.status === 'completed') completed++
      hash.update(`${item.id} ${item.status} ${item.assignee ?? '-'}\n`)
    }
    after = list[list.length - 1].id
  }
  return { items, completed, digest: hash.digest('hex').slice(0, 16) }
}

interface ControlBody {
  board?: string
  mode?: 'local' | 'eventual'
  count?: number
  batch?: number
  total?: number
  at?: number
  ms?: number
  item?: string
  claimers?: number
  samples?: boolean
}

function int(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max)
    throw new Error(`${what} must be an integer in ${min}..${max}`)
  return value
}

async function memory(): Promise<Record<string, unknown>> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc != null) {
    // twice, with a turn between: what the first frees may hold what the second frees
    gc()
    await new Promise(resolve => setImmediate(resolve))
    gc()
  }
  const m = process.memoryUsage()
  return { gc: gc != null, heapUsed: m.heapUsed, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers }
}

const control = (host: KindHost): AgentDefinition => ({
  description: 'drives and measures the work benchmark in this process',
  behaviour: agent => ({
    init: () => {
      work ??= host.work
    },
    handle: async message => {
      const body = (message.body ?? {}) as ControlBody
      const name = String(body.board)
      switch (message.type) {
        case 'memory':
          return await memory()
        case 'open': {
          const r = await open(name, body.mode === 'local' ? 'local' : 'eventual')
          return { mode: r.board.mode, workers: workers.size }
        }
        case 'create': {
          const r = await open(name, body.mode === 'local' ? 'local' : 'eventual')
          r.stats.total = int(body.count, 'count', 1, MAX_CREATE)
          void create(r, agent, r.stats.total, int(body.batch, 'batch', 1, MAX_BATCH))
          return { started: true }
        }
        case 'expect': {
          // how many tasks this replica should see: from then on it times when it has them all
          const r = await open(name, body.mode === 'local' ? 'local' : 'eventual')
          r.stats.total = int(body.total, 'total', 1, MAX_CREATE)
          if (r.tasks.size >= r.stats.total) r.stats.allTasksAt ??= now()
          return { tasksSeen: r.tasks.size }
        }
        case 'go': {
          const r = await open(name, body.mode === 'local' ? 'local' : 'eventual')
          const at = int(body.at, 'at', 0, Number.MAX_SAFE_INTEGER)
          r.stats.total = int(body.total, 'total', 1, MAX_CREATE)
          r.stats.runAt = at
          r.stats.deadline = at + int(body.ms, 'ms', 1, MAX_RUN_MS)
          for (const begin of workerWaiters) begin(name)
          setTimeout(r.start, Math.max(0, at - now()))
          return { workers: workers.size }
        }
        case 'contest': {
          const r = await open(name, body.mode === 'local' ? 'local' : 'eventual')
          const item = String(body.item)
          if (r.board.item(item) == null) throw new Error(`no item ${item} here yet`)
          const at = int(body.at, 'at', 0, Number.MAX_SAFE_INTEGER)
          const c: Contest = { item, at, timeline: [], seen: [], outcomes: [], done: false }
          r.stats.contests.set(item, c)
          void contest(r, item, at, int(body.claimers, 'claimers', 0, 1000))
          return { workers: workers.size }
        }
        case 'create-contested': {
          // the contested items, made by the coordinator: one submit
          const r = await open(name, body.mode === 'local' ? 'local' : 'eventual')
          const count = int(body.count, 'count', 1, MAX_BATCH)
          const ops: WorkOp[] = []
          for (let i = 0; i < count; i++)
            ops.push({ op: 'create', item: `c${i}`, kind: CONTEST_KIND, path: `c${i}`, title: `contested ${i}` })
          const outcomes = await r.board.submit(ops, { as: agent.signer })
          return { accepted: outcomes.filter(o => o.accepted).length }
        }
        case 'stats': {
          const r = await runs.get(name)
          if (r == null) return null
          const { contests, claimMs, ...rest } = r.stats
          const contested = [...contests.values()].map(c => ({
            ...c,
            assignee: r.board.item(c.item)?.assignee ?? null
          }))
          // a copy: the mailbox signs the answer, then encodes it; workers change the live stats meanwhile
          return structuredClone({
            ...rest,
            claims: claimMs.length,
            ...(body.samples === true ? { claimMs } : {}),
            contests: contested,
            workers: workers.size
          })
        }
        case 'digest': {
          const r = await runs.get(name)
          return r == null ? null : digest(r.board)
        }
        case 'item': {
          const r = await runs.get(name)
          const item = r?.board.item(String(body.item))
          return item == null ? null : { status: item.status, assignee: item.assignee ?? null }
        }
        default:
          throw new Error(`unknown request ${message.type}`)
      }
    }
  })
})

export default { 'bench-worker': worker, 'bench-control': control }
