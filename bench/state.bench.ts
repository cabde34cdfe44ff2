/**
 * Replicated state: how fast the CRDTs apply deltas against Yjs on the same map workload, how many
 * signed events a log appends per second on disk — on the durable stores a node uses (every put
 * fsynced before it resolves, node/stores.ts) next to the unsynced blockstore-fs + LevelDB it used
 * before and next to the disk's raw fsync rate — how fast a stored log replays, how many `doc.set`
 * writes a node on memory stores makes per second (local signed writes), and how many writes per
 * second replicate between two nodes on 127.0.0.1: each write awaited until the other node has
 * applied it, and pipelined (the writer up to WINDOW writes ahead of what the reader applied; the
 * figure is writes applied at the reader per second). Both for a private document, whose events
 * reach the reader by a `hold` push to followers (or an announcement by CID and a `want`), and for
 * a public one, whose announcement carries the event inline. Both nodes share one thread, so the
 * figures are CPU-bound; the ratios to the local writes are measured in the same run, in rounds
 * that alternate local and replicated writes, and also by CPU time per write (the process's, both
 * nodes and every thread), which other processes' load sways less than wall time.
 *
 * STATE_BASELINE=<dir of another checkout> measures the local and replicated writes of that
 * checkout too, its rounds interleaved with these (same process, same machine), and prints each
 * figure of this tree over the baseline's.
 */
import { mkdtemp, open, rename, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { LevelDatastore } from 'datastore-level'
import * as Y from 'yjs'
import { DurableBlockstore, SyncedLevelDatastore } from '../node/stores.ts'
import { Hlc } from '../src/clock/hlc.ts'
import { orMap } from '../src/crdt/or-map.ts'
import { pathToFileURL } from 'node:url'
import * as principal from '../src/crypto/principal.ts'
import { seedSigner } from '../src/crypto/sign.ts'
import { Log } from '../src/log/log.ts'
import * as sexp from '../src/spki/sexp.ts'
import * as tag from '../src/spki/tag.ts'
import * as nodes from '../test/helpers/memory-node.ts'
import type { Benchmark } from './harness.ts'
import type { OrMapState } from '../src/crdt/or-map.ts'
import type { OrMapDocument } from '../src/log/documents.ts'
import type { MutationContext } from '../src/crdt/types.ts'

const MAP_OPS = 20_000
const KEYS = 1000
const APPENDS = 2000
/** Rounds the appends are split in, alternating between the store kinds. */
const ROUNDS = 4
const FSYNCS = 1000
/** Awaited replicated writes per round. */
const REPLICATED = 100
/** Local writes per round. */
const LOCAL_SETS = 1000
/** Pipelined replicated writes per round. */
const PIPELINED = 1000
/**
 * Rounds of the replicated measures, each after a round of local writes (and one more round of
 * local writes after the last): on a machine shared with other work, a busy spell lands on both
 * sides of a replicated / local ratio, not on one figure alone.
 */
const REPLICATION_ROUNDS = 3
/** Writes A may be ahead of what B has applied, in the pipelined measure. */
const WINDOW = 64
/** Writes before each measure (streams opened, caches warm). */
const WARM_UP = 200

/** What the node measures use of a checkout: this one's, or the baseline's (STATE_BASELINE). */
interface Tree {
  nodes: typeof nodes
  principal: typeof principal
  sexp: typeof sexp
  tag: typeof tag
}

const thisTree: Tree = { nodes, principal, sexp, tag }

/** The same modules of the checkout at `dir`. */
async function treeAt(dir: string): Promise<Tree> {
  const load = async (path: string): Promise<any> => await import(pathToFileURL(join(dir, path)).href)
  return {
    nodes: await load('test/helpers/memory-node.ts'),
    principal: await load('src/crypto/principal.ts'),
    sexp: await load('src/spki/sexp.ts'),
    tag: await load('src/spki/tag.ts')
  }
}

/** Writes and the wall and CPU time they took, summed over rounds. */
class Tally {
  private ms = 0
  private cpuUs = 0
  private writes = 0

  /** Runs `measure` (which makes `writes` writes) and adds its wall and CPU time. */
  async add(writes: number, measure: () => Promise<void>): Promise<void> {
    const cpu = process.cpuUsage()
    const start = performance.now()
    await measure()
    this.ms += performance.now() - start
    const used = process.cpuUsage(cpu)
    this.cpuUs += used.user + used.system
    this.writes += writes
  }

  perSecond(): number {
    return (this.writes / this.ms) * 1000
  }

  /** CPU time of the whole process (both nodes, every thread) per write, µs. */
  cpuPerWrite(): number {
    return this.cpuUs / this.writes
  }
}

/**
 * The same workload for both: MAP_OPS last-writer-wins writes over KEYS keys, produced at one replica
 * and applied at another; `checked` also runs the check a log makes of every remote op (checkDelta).
 */
function crdtMapApply(checked: boolean): number {
  const hlc = new Hlc()
  const writer = orMap.empty()
  const reader = orMap.empty()
  const deltas: Array<[OrMapState, MutationContext]> = []
  for (let i = 0; i < MAP_OPS; i++) {
    const ctx = { replica: 'writer', hlc: hlc.tick() }
    const d = orMap.set(writer, ctx, [`k${i % KEYS}`], i)
    orMap.merge(writer, d)
    deltas.push([d, ctx])
  }
  const start = performance.now()
  for (const [d, ctx] of deltas) {
    if (checked) orMap.checkDelta(reader, d, ctx)
    orMap.merge(reader, d)
  }
  const ms = performance.now() - start
  if ((orMap.get(reader, ['k0']) as number) !== MAP_OPS - KEYS) throw new Error('crdt map did not apply')
  return (MAP_OPS / ms) * 1000
}

function yjsMapApply(): number {
  const writer = new Y.Doc()
  const reader = new Y.Doc()
  const updates: Uint8Array[] = []
  writer.on('update', (u: Uint8Array) => updates.push(u))
  const map = writer.getMap('m')
  for (let i = 0; i < MAP_OPS; i++) map.set(`k${i % KEYS}`, i)
  const start = performance.now()
  for (const u of updates) Y.applyUpdate(reader, u)
  const ms = performance.now() - start
  if (reader.getMap('m').get('k0') !== MAP_OPS - KEYS) throw new Error('yjs map did not apply')
  return (MAP_OPS / ms) * 1000
}

/** `count` signed events, each one lww write, awaited one after another. */
async function appendsPerSecond(log: Log<OrMapState, OrMapState, unknown>, count: number, from = 0): Promise<number> {
  const start = performance.now()
  for (let i = from; i < from + count; i++) {
    await log.append(b => b.push(orMap.set(b.state, b.ctx, [`k${i % KEYS}`], i)))
  }
  return (count / (performance.now() - start)) * 1000
}

type StoreKind = 'unsynced' | 'durable'

async function openStores(
  kind: StoreKind,
  dir: string
): Promise<{ blockstore: FsBlockstore | DurableBlockstore; datastore: LevelDatastore }> {
  const blockstore =
    kind === 'durable' ? new DurableBlockstore(join(dir, 'blocks')) : new FsBlockstore(join(dir, 'blocks'))
  const datastore =
    kind === 'durable' ? new SyncedLevelDatastore(join(dir, 'datastore')) : new LevelDatastore(join(dir, 'datastore'))
  await blockstore.open()
  await datastore.open()
  return { blockstore, datastore }
}

/**
 * Appends on the durable stores and on the unsynced ones, in alternating rounds so that both see
 * the same machine; replay is measured on the durable stores.
 */
async function diskLog(dir: string): Promise<{
  unsyncedPerSec: number
  durablePerSec: number
  replayPerSec: number
  memoryAppendsPerSec: number
}> {
  const signer = await seedSigner(crypto.getRandomValues(new Uint8Array(32)))
  const logs = new Map<StoreKind, { log: Log<OrMapState, OrMapState, unknown>; close: () => Promise<void> }>()
  const init = { id: 'bench', type: orMap, signer, clock: new Hlc(), authorize: async () => {} }
  for (const kind of ['unsynced', 'durable'] as const) {
    const stores = await openStores(kind, join(dir, kind))
    const log = await Log.open({ ...init, ...stores, clock: new Hlc() })
    logs.set(kind, {
      log,
      close: async () => {
        await stores.datastore.close()
        await stores.blockstore.close()
      }
    })
  }
  const ms = { unsynced: 0, durable: 0 }
  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of ['unsynced', 'durable'] as const) {
      const { log } = logs.get(kind) as { log: Log<OrMapState, OrMapState, unknown> }
      ms[kind] += (APPENDS / ROUNDS / (await appendsPerSecond(log, APPENDS / ROUNDS, round * APPENDS))) * 1000
    }
  }
  const durable = logs.get('durable') as { log: Log<OrMapState, OrMapState, unknown>; close: () => Promise<void> }
  await durable.close()
  const stores = await openStores('durable', join(dir, 'durable'))
  const start = performance.now()
  const replayed = await Log.open({ ...init, ...stores, clock: new Hlc() })
  const replayPerSec = (replayed.length / (performance.now() - start)) * 1000
  if (!orMap.equals(replayed.current(), durable.log.current())) throw new Error('replay differs from the live state')
  await stores.datastore.close()
  await logs.get('unsynced')?.close()
  const memoryAppendsPerSec = await appendsPerSecond(
    await Log.open({ ...init, blockstore: new MemoryBlockstore(), datastore: new MemoryDatastore() }),
    APPENDS
  )
  return {
    unsyncedPerSec: (APPENDS / ms.unsynced) * 1000,
    durablePerSec: (APPENDS / ms.durable) * 1000,
    replayPerSec,
    memoryAppendsPerSec
  }
}

/**
 * The disk's floor: `FSYNCS` small appends to one file each followed by fdatasync (one LevelDB
 * synced write at best), and new files each written, fsynced, renamed into a directory and the
 * directory fsynced (one durable block put at best).
 */
async function fsyncFloor(dir: string): Promise<{ appendSyncsPerSec: number; filePutsPerSec: number }> {
  const record = new Uint8Array(300)
  const file = await open(join(dir, 'floor.log'), 'w')
  let start = performance.now()
  try {
    for (let i = 0; i < FSYNCS; i++) {
      await file.write(record)
      await file.datasync()
    }
  } finally {
    await file.close()
  }
  const appendSyncsPerSec = (FSYNCS / (performance.now() - start)) * 1000
  const directory = await open(dir, 'r')
  start = performance.now()
  try {
    for (let i = 0; i < FSYNCS; i++) {
      const tmp = join(dir, `floor-${i}.tmp`)
      const handle = await open(tmp, 'wx')
      try {
        await handle.writeFile(record)
        await handle.sync()
      } finally {
        await handle.close()
      }
      await rename(tmp, join(dir, `floor-${i}.data`))
      await directory.sync()
    }
  } finally {
    await directory.close()
  }
  return { appendSyncsPerSec, filePutsPerSec: (FSYNCS / (performance.now() - start)) * 1000 }
}

/**
 * Local signed writes as an application makes them: `doc.set` of a small value on an or-map
 * document of a node on memory stores (no peer), each awaited: LOCAL_SETS on a fresh node.
 */
async function localSets(tree: Tree, tally: Tally): Promise<void> {
  const node = await tree.nodes.memoryNode()
  try {
    const doc = await node.state.open('bench', 'or-map')
    for (let i = 0; i < WARM_UP; i++) await doc.set(`w${i}`, i)
    await tally.add(LOCAL_SETS, async () => {
      for (let i = 0; i < LOCAL_SETS; i++) await doc.set(`k${i % KEYS}`, i)
    })
  } finally {
    await node.stop()
  }
}

interface Pair {
  docA: OrMapDocument
  /** Changes B applied so far, by CID string. */
  received: Set<string>
  /** Resolves once `done()` holds (checked at every change B applies); rejects after 20 s. */
  until(done: () => boolean): Promise<void>
  stop(): Promise<void>
}

/** Two nodes on 127.0.0.1: B trusts A's writes, A lets B read; both hold document 'bench'. */
async function nodePair(tree: Tree, options: { public: boolean }): Promise<Pair> {
  const a = await tree.nodes.loopbackNode()
  const b = await tree.nodes.loopbackNode({ bootstrap: a.multiaddrs() })
  const grant = (text: string): tag.Tag => tree.tag.parseTag(tree.sexp.parseAdvanced(text))
  await b.spki.addAclEntry(tree.principal.principalFromPeerId(a.peerId), grant('(cyberspace (log))'))
  await a.spki.addAclEntry(tree.principal.principalFromPeerId(b.peerId), grant('(cyberspace (log (read bench)))'))
  const docA = await a.state.open('bench', 'or-map', { public: options.public })
  const docB = await b.state.open('bench', 'or-map', { public: options.public })
  // let gossipsub build its mesh before measuring
  for (let i = 0; i < 100 && a.pubsub.getSubscribers('/cyberspace/default/deltas/1').length === 0; i++) {
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  const received = new Set<string>()
  let wake: (() => void) | undefined
  docB.addEventListener('change', e => {
    received.add(e.detail.cid.toString())
    const w = wake
    wake = undefined
    w?.()
  })
  const until = async (done: () => boolean): Promise<void> => {
    const deadline = Date.now() + 20_000
    while (!done()) {
      if (Date.now() > deadline) throw new Error('writes did not replicate within 20 s')
      await new Promise<void>(resolve => {
        wake = resolve
        setTimeout(resolve, 50)
      })
    }
  }
  const pair = { docA, received, until, stop: async () => await Promise.all([a.stop(), b.stop()]).then(() => {}) }
  // the first writes open streams and warm caches on both sides
  for (let i = 0; i < WARM_UP / 10; i++) {
    const cid = String(await docA.set(`w${i}`, i))
    await until(() => received.has(cid))
  }
  return pair
}

/** REPLICATED writes at A, each awaited until B has applied it; `public` sends events inline. */
async function replicatedWrites(tree: Tree, tally: Tally, options: { public: boolean }): Promise<void> {
  const pair = await nodePair(tree, options)
  try {
    await tally.add(REPLICATED, async () => {
      for (let i = 0; i < REPLICATED; i++) {
        const cid = String(await pair.docA.set(`k${i}`, i))
        await pair.until(() => pair.received.has(cid))
      }
    })
  } finally {
    await pair.stop()
  }
}

/**
 * PIPELINED writes applied at B while A writes without waiting for B, up to WINDOW writes ahead of
 * what B has applied: timed from the first write until B has applied all of them.
 */
async function pipelinedWrites(tree: Tree, tally: Tally, options: { public: boolean }): Promise<void> {
  const pair = await nodePair(tree, options)
  try {
    const before = pair.received.size
    const applied = (): number => pair.received.size - before
    let last = ''
    await tally.add(PIPELINED, async () => {
      for (let i = 0; i < PIPELINED; i++) {
        last = String(await pair.docA.set(`k${i % KEYS}`, i))
        if (i + 1 - applied() >= WINDOW) await pair.until(() => i + 1 - applied() < WINDOW)
      }
      await pair.until(() => applied() >= PIPELINED)
    })
    if (!pair.received.has(last)) throw new Error('the last write did not replicate')
  } finally {
    await pair.stop()
  }
}

/** With STATE_BASELINE: the baseline's own replicated / local ratios, and this tree's figures over the baseline's. */
function baselineRatios(
  mine: Record<string, Tally | Tree>,
  base: Record<string, Tally | Tree>
): Record<string, number> {
  const out: Record<string, number> = {}
  const local = base.local as Tally
  for (const kind of ['replicated', 'pipelined'] as const) {
    const t = base[kind] as Tally
    out[`baseline: replicated ${kind === 'replicated' ? 'awaited' : kind} / local doc.set`] =
      t.perSecond() / local.perSecond()
    out[`baseline: replicated ${kind === 'replicated' ? 'awaited' : kind} / local doc.set, by CPU time`] =
      local.cpuPerWrite() / t.cpuPerWrite()
  }
  for (const kind of ['local', 'replicated', 'replicatedPublic', 'pipelined', 'pipelinedPublic'] as const) {
    out[`this tree / baseline: ${kind} writes per second`] =
      (mine[kind] as Tally).perSecond() / (base[kind] as Tally).perSecond()
  }
  return out
}

const bench: Benchmark = {
  name: 'state',
  description:
    'CRDT apply vs Yjs, signed appends on durable vs unsynced disk stores and the fsync floor, replay, replicated writes between two nodes',
  async run() {
    const ours = crdtMapApply(false)
    const checked = crdtMapApply(true)
    const yjs = yjsMapApply()
    const dir = await mkdtemp(join(tmpdir(), 'cyberspace-bench-log-'))
    let disk: Awaited<ReturnType<typeof diskLog>>
    let floor: Awaited<ReturnType<typeof fsyncFloor>>
    try {
      floor = await fsyncFloor(dir)
      disk = await diskLog(dir)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
    /** The writes measured of one tree. */
    const tallies = (): Record<
      'local' | 'replicated' | 'replicatedPublic' | 'pipelined' | 'pipelinedPublic',
      Tally
    > => ({
      local: new Tally(),
      replicated: new Tally(),
      replicatedPublic: new Tally(),
      pipelined: new Tally(),
      pipelinedPublic: new Tally()
    })
    const mine = { tree: thisTree, ...tallies() }
    const baselineDir = process.env.STATE_BASELINE
    const base = baselineDir == null ? undefined : { tree: await treeAt(baselineDir), ...tallies() }
    // each round: local writes, then the replicated measures; with a baseline, its round next to ours
    const trees = base == null ? [mine] : [base, mine]
    // one round not counted, for each tree: its modules compiled and warm before either is measured
    for (const t of trees) await localSets(t.tree, new Tally())
    for (let round = 0; round < REPLICATION_ROUNDS; round++) {
      for (const t of round % 2 === 0 ? trees : [...trees].reverse()) {
        await localSets(t.tree, t.local)
        await replicatedWrites(t.tree, t.replicated, { public: false })
        await replicatedWrites(t.tree, t.replicatedPublic, { public: true })
        await pipelinedWrites(t.tree, t.pipelined, { public: false })
        await pipelinedWrites(t.tree, t.pipelinedPublic, { public: true })
      }
    }
    for (const t of trees) await localSets(t.tree, t.local)
    const { local, replicated, replicatedPublic, pipelined, pipelinedPublic } = mine
    const localSetsPerSecond = local.perSecond()
    const rate = (t: Tally): number => t.perSecond() / localSetsPerSecond
    const cpu = (t: Tally): number => local.cpuPerWrite() / t.cpuPerWrite()
    return {
      setup: {
        mapOps: MAP_OPS,
        keys: KEYS,
        appends: APPENDS,
        appendRounds: ROUNDS,
        disk: tmpdir(),
        localSetsPerRound: LOCAL_SETS,
        replicatedWritesPerRound: REPLICATED,
        pipelinedWritesPerRound: PIPELINED,
        replicationRounds: REPLICATION_ROUNDS,
        baseline: baselineDir ?? 'none',
        pipelineWindow: WINDOW,
        transport: 'tcp 127.0.0.1'
      },
      columns: ['measure', 'per second'],
      rows: [
        ['or-map apply (lww set)', Math.round(ours)],
        ['or-map check + apply (as for remote events)', Math.round(checked)],
        ['Yjs Y.Map apply (same workload)', Math.round(yjs)],
        ['signed appends, durable stores (fsync before ack)', Math.round(disk.durablePerSec)],
        ['signed appends, blockstore-fs + LevelDB unsynced (before)', Math.round(disk.unsyncedPerSec)],
        ['signed appends, memory stores', Math.round(disk.memoryAppendsPerSec)],
        ['disk floor: 300-byte append + fdatasync', Math.round(floor.appendSyncsPerSec)],
        ['disk floor: file write + fsync + rename + dir fsync', Math.round(floor.filePutsPerSec)],
        ['replay from disk (events)', Math.round(disk.replayPerSec)],
        ['local doc.set, node on memory stores (signed write)', Math.round(localSetsPerSecond)],
        ['replicated writes, each awaited at the peer', Math.round(replicated.perSecond())],
        ['replicated writes, public document (event inline, no fetch)', Math.round(replicatedPublic.perSecond())],
        [`replicated writes, pipelined (${WINDOW} in flight), applied at the peer`, Math.round(pipelined.perSecond())],
        ['replicated writes, pipelined, public document', Math.round(pipelinedPublic.perSecond())],
        ['CPU µs per local doc.set', Math.round(local.cpuPerWrite())],
        ['CPU µs per replicated write, awaited (both nodes)', Math.round(replicated.cpuPerWrite())],
        ['CPU µs per replicated write, pipelined (both nodes)', Math.round(pipelined.cpuPerWrite())]
      ],
      ratios: {
        'or-map apply / Yjs apply': ours / yjs,
        'or-map check + apply / apply': checked / ours,
        'appends durable / unsynced': disk.durablePerSec / disk.unsyncedPerSec,
        'appends durable / memory': disk.durablePerSec / disk.memoryAppendsPerSec,
        'appends durable / file-put floor': disk.durablePerSec / floor.filePutsPerSec,
        'replay / append on disk': disk.replayPerSec / disk.durablePerSec,
        'replicated writes / local durable appends': replicated.perSecond() / disk.durablePerSec,
        'replicated writes private (fetched) / public (inline)': replicated.perSecond() / replicatedPublic.perSecond(),
        'replicated awaited / local doc.set': rate(replicated),
        'replicated awaited public / local doc.set': rate(replicatedPublic),
        'replicated pipelined / local doc.set': rate(pipelined),
        'replicated pipelined public / local doc.set': rate(pipelinedPublic),
        // the same by CPU time (local CPU per write / replicated CPU per write): less swayed by
        // other processes' load than wall time, which both figures above are
        'replicated awaited / local doc.set, by CPU time': cpu(replicated),
        'replicated pipelined / local doc.set, by CPU time': cpu(pipelined),
        'replicated pipelined public / local doc.set, by CPU time': cpu(pipelinedPublic),
        ...(base == null ? {} : baselineRatios(mine, base))
      }
    }
  }
}

export default bench
