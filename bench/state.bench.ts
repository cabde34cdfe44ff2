/**
 * Replicated state: how fast the CRDTs apply deltas against Yjs on the same map workload, how many
 * signed events a log appends per second on disk (blockstore-fs + LevelDB, as a node stores them),
 * how fast a stored log replays, and how many writes per second replicate between two nodes on
 * 127.0.0.1 when each write is awaited until the other node has applied it.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { LevelDatastore } from 'datastore-level'
import * as Y from 'yjs'
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

/** APPENDS signed events, each one lww write, awaited one after another. */
async function appendsPerSecond(log: Log<OrMapState, OrMapState, unknown>): Promise<number> {
  const start = performance.now()
  for (let i = 0; i < APPENDS; i++) await log.append(b => b.push(orMap.set(b.state, b.ctx, [`k${i % KEYS}`], i)))
  return (APPENDS / (performance.now() - start)) * 1000
}

async function diskLog(): Promise<{ appendsPerSec: number; replayPerSec: number; memoryAppendsPerSec: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'cyberspace-bench-log-'))
  try {
    const signer = await seedSigner(crypto.getRandomValues(new Uint8Array(32)))
    const blockstore = new FsBlockstore(join(dir, 'blocks'))
    const datastore = new LevelDatastore(join(dir, 'datastore'))
    await blockstore.open()
    await datastore.open()
    const init = {
      id: 'bench',
      type: orMap,
      blockstore,
      datastore,
      signer,
      clock: new Hlc(),
      authorize: async () => {}
    }
    const log = await Log.open(init)
    const appendsPerSec = await appendsPerSecond(log)
    const start = performance.now()
    const replayed = await Log.open({ ...init, clock: new Hlc() })
    const replayPerSec = (replayed.length / (performance.now() - start)) * 1000
    if (!orMap.equals(replayed.current(), log.current())) throw new Error('replay differs from the live state')
    await datastore.close()
    await blockstore.close()
    const memoryAppendsPerSec = await appendsPerSecond(
      await Log.open({ ...init, blockstore: new MemoryBlockstore(), datastore: new MemoryDatastore() })
    )
    return { appendsPerSec, replayPerSec, memoryAppendsPerSec }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function replicatedWrites(): Promise<number> {
  const a = await loopbackNode()
  const b = await loopbackNode({ bootstrap: a.multiaddrs() })
  try {
    await b.spki.addAclEntry(principalFromPeerId(a.peerId), parseTag(parseAdvanced('(cyberspace (log))')))
    const docA = await a.state.open('bench', 'or-map')
    const docB = await b.state.open('bench', 'or-map')
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
  description: 'CRDT apply vs Yjs, signed appends on disk, replay, replicated writes between two nodes',
  async run() {
    const ours = crdtMapApply(false)
    const checked = crdtMapApply(true)
    const yjs = yjsMapApply()
    const disk = await diskLog()
    const replicated = await replicatedWrites()
    return {
      setup: {
        mapOps: MAP_OPS,
        keys: KEYS,
        appends: APPENDS,
        replicatedWrites: REPLICATED,
        transport: 'tcp 127.0.0.1'
      },
      columns: ['measure', 'per second'],
      rows: [
        ['or-map apply (lww set)', Math.round(ours)],
        ['or-map check + apply (as for remote events)', Math.round(checked)],
        ['Yjs Y.Map apply (same workload)', Math.round(yjs)],
        ['signed appends, blockstore-fs + LevelDB', Math.round(disk.appendsPerSec)],
        ['signed appends, memory stores', Math.round(disk.memoryAppendsPerSec)],
        ['replay from disk (events)', Math.round(disk.replayPerSec)],
        ['replicated writes, each awaited at the peer', Math.round(replicated)]
      ],
      ratios: {
        'or-map apply / Yjs apply': ours / yjs,
        'or-map check + apply / apply': checked / ours,
        'appends disk / memory': disk.appendsPerSec / disk.memoryAppendsPerSec,
        'replay / append on disk': disk.replayPerSec / disk.appendsPerSec,
        'replicated writes / local disk appends': replicated / disk.appendsPerSec
      }
    }
  }
}

export default bench
