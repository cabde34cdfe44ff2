/**
 * Replicated state: how fast the CRDTs apply deltas against Yjs on the same map workload, how many
 * signed events a log appends per second on disk — on the durable stores a node uses (every put
 * fsynced before it resolves, node/stores.ts) next to the unsynced blockstore-fs + LevelDB it used
 * before and next to the disk's raw fsync rate — how fast a stored log replays, and how many writes
 * per second replicate between two nodes on 127.0.0.1 when each write is awaited until the other
 * node has applied it: for a private document, whose announcement carries only the CID so the
 * reader fetches each event with a `want` over /cyberspace/heads (one new stream per write), and
 * for a public one, whose announcement carries the event inline. Both nodes share one thread, so
 * the figures are CPU-bound: the gap between the two is the cost of a stream round trip.
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
import { principalFromPeerId } from '../src/crypto/principal.ts'
import { seedSigner } from '../src/crypto/sign.ts'
import { Log } from '../src/log/log.ts'
import { parseAdvanced } from '../src/spki/sexp.ts'
import { parseTag } from '../src/spki/tag.ts'
import { loopbackNode } from '../test/helpers/memory-node.ts'
import type { Benchmark } from './harness.ts'
import type { OrMapState } from '../src/crdt/or-map.ts'
import type { MutationContext } from '../src/crdt/types.ts'

const MAP_OPS = 20_000
const KEYS = 1000
const APPENDS = 2000
/** Rounds the appends are split in, alternating between the store kinds. */
const ROUNDS = 4
const FSYNCS = 1000
const REPLICATED = 200

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

/** Writes per second at one node, each awaited until the other has applied it; `public` sends events inline. */
async function replicatedWrites(options: { public: boolean }): Promise<number> {
  const a = await loopbackNode()
  const b = await loopbackNode({ bootstrap: a.multiaddrs() })
  try {
    // b trusts a's writes; a lets b read (announcements carry CIDs, b fetches each event from a)
    await b.spki.addAclEntry(principalFromPeerId(a.peerId), parseTag(parseAdvanced('(cyberspace (log))')))
    await a.spki.addAclEntry(principalFromPeerId(b.peerId), parseTag(parseAdvanced('(cyberspace (log (read bench)))')))
    const docA = await a.state.open('bench', 'or-map', { public: options.public })
    const docB = await b.state.open('bench', 'or-map', { public: options.public })
    // let gossipsub build its mesh before measuring
    for (let i = 0; i < 100 && a.pubsub.getSubscribers('/cyberspace/default/deltas/1').length === 0; i++) {
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    // every change B applies, and who is waiting for which
    const received = new Set<string>()
    const waiting = new Map<string, () => void>()
    docB.addEventListener('change', e => {
      const cid = e.detail.cid.toString()
      received.add(cid)
      waiting.get(cid)?.()
    })
    const start = performance.now()
    for (let i = 0; i < REPLICATED; i++) {
      const cid = String(await docA.set(`k${i}`, i))
      if (received.has(cid)) continue
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('a write did not replicate within 10 s')), 10_000)
        waiting.set(cid, () => {
          clearTimeout(timer)
          resolve()
        })
      })
      waiting.delete(cid)
    }
    return (REPLICATED / (performance.now() - start)) * 1000
  } finally {
    await Promise.all([a.stop(), b.stop()])
  }
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
    const replicated = await replicatedWrites({ public: false })
    const replicatedPublic = await replicatedWrites({ public: true })
    return {
      setup: {
        mapOps: MAP_OPS,
        keys: KEYS,
        appends: APPENDS,
        appendRounds: ROUNDS,
        disk: tmpdir(),
        replicatedWrites: REPLICATED,
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
        ['replicated writes, each awaited at the peer', Math.round(replicated)],
        ['replicated writes, public document (event inline, no fetch)', Math.round(replicatedPublic)]
      ],
      ratios: {
        'or-map apply / Yjs apply': ours / yjs,
        'or-map check + apply / apply': checked / ours,
        'appends durable / unsynced': disk.durablePerSec / disk.unsyncedPerSec,
        'appends durable / memory': disk.durablePerSec / disk.memoryAppendsPerSec,
        'appends durable / file-put floor': disk.durablePerSec / floor.filePutsPerSec,
        'replay / append on disk': disk.replayPerSec / disk.durablePerSec,
        'replicated writes / local durable appends': replicated / disk.durablePerSec,
        'replicated writes private (fetched) / public (inline)': replicated / replicatedPublic
      }
    }
  }
}

export default bench
