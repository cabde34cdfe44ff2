/**
 * Durability of what a node acknowledges: the log's stores and the data directory's files run on a
 * simulated disk whose power can be cut. The simulation keeps what was written apart from what was
 * made durable: a file's content survives only once the file is fsynced, a directory entry (made by
 * create, rename, link, mkdir) only once its directory is fsynced. LevelDB's internals cannot run on
 * it, so LevelDB is modelled at its API: a write survives once a write with `sync: true` followed it.
 */
import { strict as assert } from 'node:assert'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import { LevelDatastore } from 'datastore-level'
import { Key } from 'interface-datastore'
import * as raw from 'multiformats/codecs/raw'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { createOnce, writeFileAtomic } from '../../node/data-dir.ts'
import {
  DirectorySyncs,
  DurableBlockstore,
  makeDirectoryDurable,
  SyncedLevelDatastore,
  writeSynced
} from '../../node/stores.ts'
import { Hlc } from '../../src/clock/hlc.ts'
import { orMap } from '../../src/crdt/or-map.ts'
import { Log } from '../../src/log/log.ts'
import { signer } from '../log/fixtures.ts'
import type { DurableFileHandle, DurableFs } from '../../node/stores.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { OrMapState } from '../../src/crdt/or-map.ts'

class SimFile {
  data = new Uint8Array(0)
  durable = new Uint8Array(0)
}

class SimDir {
  entries = new Map<string, SimNode>()
  durable = new Map<string, SimNode>()
}

type SimNode = SimFile | SimDir

interface SimFaults {
  /** A disk that lies: fsync of a file does nothing. */
  ignoreFileSync?: boolean
  /** A disk that lies: fsync of a directory does nothing. */
  ignoreDirSync?: boolean
}

function fsError(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${path}`), { code })
}

function parts(path: string): string[] {
  return path.split('/').filter(p => p !== '')
}

/** A disk in memory that separates written from durable, and can lose power (`crashImage`). */
class SimDisk implements DurableFs {
  readonly root: SimDir
  readonly faults: SimFaults
  fileSyncs = 0
  dirSyncs = 0
  /** Runs before each directory fsync (tests hold one in progress with it). */
  beforeDirSync?: (path: string) => Promise<void>

  constructor(faults: SimFaults = {}, root = new SimDir()) {
    this.faults = faults
    this.root = root
  }

  /** What the machine finds on this disk when it boots after losing power now. */
  crashImage(): SimDisk {
    const seen = new Map<SimNode, SimNode>()
    const restore = (dir: SimDir): SimDir => {
      const copy = new SimDir()
      for (const [name, node] of dir.durable) {
        let c = seen.get(node)
        if (c == null) {
          if (node instanceof SimDir) c = restore(node)
          else {
            c = new SimFile()
            c.data = node.durable.slice()
            c.durable = node.durable.slice()
          }
          seen.set(node, c)
        }
        copy.entries.set(name, c)
        copy.durable.set(name, c)
      }
      return copy
    }
    return new SimDisk(this.faults, restore(this.root))
  }

  private lookup(path: string): SimNode | undefined {
    let node: SimNode | undefined = this.root
    for (const p of parts(path)) {
      if (!(node instanceof SimDir)) return undefined
      node = node.entries.get(p)
      if (node == null) return undefined
    }
    return node
  }

  private parentOf(path: string): { dir: SimDir; name: string } {
    const ps = parts(path)
    const name = ps.pop()
    const dir = this.lookup('/' + ps.join('/'))
    if (name == null || !(dir instanceof SimDir)) throw fsError('ENOENT', path)
    return { dir, name }
  }

  async open(path: string, flags: 'wx' | 'r'): Promise<DurableFileHandle> {
    let node: SimNode
    if (flags === 'wx') {
      const { dir, name } = this.parentOf(path)
      if (dir.entries.has(name)) throw fsError('EEXIST', path)
      node = new SimFile()
      dir.entries.set(name, node)
    } else {
      const found = this.lookup(path)
      if (found == null) throw fsError('ENOENT', path)
      node = found
    }
    return {
      writeFile: async data => {
        if (!(node instanceof SimFile)) throw fsError('EISDIR', path)
        node.data = typeof data === 'string' ? new TextEncoder().encode(data) : data.slice()
      },
      sync: async () => {
        if (node instanceof SimFile) {
          this.fileSyncs++
          if (this.faults.ignoreFileSync !== true) node.durable = node.data.slice()
        } else {
          await this.beforeDirSync?.(path)
          this.dirSyncs++
          if (this.faults.ignoreDirSync !== true) node.durable = new Map(node.entries)
        }
      },
      close: async () => {}
    }
  }

  async readFile(path: string): Promise<Uint8Array> {
    const node = this.lookup(path)
    if (node == null) throw fsError('ENOENT', path)
    if (node instanceof SimDir) throw fsError('EISDIR', path)
    return node.data.slice()
  }

  async readdir(path: string): Promise<string[]> {
    const node = this.lookup(path)
    if (node == null) throw fsError('ENOENT', path)
    if (!(node instanceof SimDir)) throw fsError('ENOTDIR', path)
    return [...node.entries.keys()]
  }

  async mkdir(path: string, options: { recursive: boolean }): Promise<string | undefined> {
    if (!options.recursive) {
      const { dir, name } = this.parentOf(path)
      if (dir.entries.has(name)) throw fsError('EEXIST', path)
      dir.entries.set(name, new SimDir())
      return undefined
    }
    let dir = this.root
    let first: string | undefined
    const walked: string[] = []
    for (const p of parts(path)) {
      walked.push(p)
      let next = dir.entries.get(p)
      if (next == null) {
        next = new SimDir()
        dir.entries.set(p, next)
        first ??= '/' + walked.join('/')
      }
      if (!(next instanceof SimDir)) throw fsError('ENOTDIR', path)
      dir = next
    }
    return first
  }

  async rename(from: string, to: string): Promise<void> {
    const src = this.parentOf(from)
    const node = src.dir.entries.get(src.name)
    if (node == null) throw fsError('ENOENT', from)
    const dst = this.parentOf(to)
    src.dir.entries.delete(src.name)
    dst.dir.entries.set(dst.name, node)
  }

  async link(existing: string, to: string): Promise<void> {
    const node = this.lookup(existing)
    if (!(node instanceof SimFile)) throw fsError('ENOENT', existing)
    const dst = this.parentOf(to)
    if (dst.dir.entries.has(dst.name)) throw fsError('EEXIST', to)
    dst.dir.entries.set(dst.name, node)
  }

  async unlink(path: string): Promise<void> {
    const { dir, name } = this.parentOf(path)
    const node = dir.entries.get(name)
    if (node == null) throw fsError('ENOENT', path)
    if (node instanceof SimDir) throw fsError('EISDIR', path)
    dir.entries.delete(name)
  }

  async exists(path: string): Promise<void> {
    if (this.lookup(path) == null) throw fsError('ENOENT', path)
  }
}

/**
 * LevelDB as its API promises it (the part datastore-level uses): every write goes to a log; a write
 * with `sync: true` resolves after the log, up to and including it, is fsynced; at a power cut the
 * writes after the last sync may be lost (here: are lost).
 */
class SimLevel {
  status = 'opening'
  private readonly writes: Array<{ key: string; value?: Uint8Array }>
  private synced: number
  private readonly state = new Map<string, Uint8Array>()

  constructor(writes: Array<{ key: string; value?: Uint8Array }> = []) {
    this.writes = writes
    this.synced = writes.length
    for (const w of writes) this.apply(w)
  }

  crashImage(): SimLevel {
    return new SimLevel(this.writes.slice(0, this.synced))
  }

  async open(): Promise<void> {
    this.status = 'open'
  }

  async close(): Promise<void> {
    this.status = 'closed'
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return this.state.get(key)
  }

  async put(key: string, value: Uint8Array, options: { sync?: boolean } = {}): Promise<void> {
    this.write([{ key, value }], options)
  }

  async del(key: string, options: { sync?: boolean } = {}): Promise<void> {
    this.write([{ key }], options)
  }

  async batch(
    ops: Array<{ type: 'put' | 'del'; key: string; value?: Uint8Array }>,
    options: { sync?: boolean } = {}
  ): Promise<void> {
    this.write(
      ops.map(op => ({ key: op.key, value: op.type === 'put' ? op.value : undefined })),
      options
    )
  }

  private write(writes: Array<{ key: string; value?: Uint8Array }>, options: { sync?: boolean }): void {
    for (const w of writes) {
      this.writes.push(w)
      this.apply(w)
    }
    if (options.sync === true) this.synced = this.writes.length
  }

  private apply(w: { key: string; value?: Uint8Array }): void {
    if (w.value == null) this.state.delete(w.key)
    else this.state.set(w.key, w.value)
  }
}

type Level = ConstructorParameters<typeof SyncedLevelDatastore>[0]
type MapLog = Log<OrMapState, OrMapState, unknown>

const BLOCKS = '/data/blocks'

async function openLog(
  id: string,
  disk: SimDisk,
  level: SimLevel,
  author: Signer,
  datastoreKind: 'synced' | 'unsynced' = 'synced'
): Promise<MapLog> {
  const blockstore = new DurableBlockstore(BLOCKS, { fs: disk })
  await blockstore.open()
  const datastore =
    datastoreKind === 'synced'
      ? new SyncedLevelDatastore(level as unknown as Level)
      : new LevelDatastore(level as unknown as Level)
  await datastore.open()
  return await Log.open({
    id,
    type: orMap,
    blockstore,
    datastore,
    signer: author,
    clock: new Hlc(),
    authorize: async () => {}
  })
}

const setKey = (i: number) => (b: { state: OrMapState; ctx: any; push: (d: OrMapState) => void }) =>
  b.push(orMap.set(b.state, b.ctx, [`k${i}`], i))

/**
 * What is left of the logs after the cut: for each, whether it opened and which writes it holds.
 * A log whose record names a block that did not survive fails to open.
 */
async function survivors(
  ids: string[],
  disk: SimDisk,
  level: SimLevel,
  author: Signer
): Promise<Map<string, { value: Record<string, number>; events: number } | Error>> {
  const out = new Map<string, { value: Record<string, number>; events: number } | Error>()
  for (const id of ids) {
    try {
      const log = await openLog(id, disk, level, author)
      out.set(id, { value: log.value() as Record<string, number>, events: log.length })
    } catch (err) {
      out.set(id, err as Error)
    }
  }
  return out
}

describe('durable stores', () => {
  let author: Signer
  before(async () => {
    author = await signer()
  })

  describe('a log on the durable stores and a power cut', () => {
    it('keeps every acknowledged append, and nothing never written', async () => {
      const disk = new SimDisk()
      const level = new SimLevel()
      const ids = ['a', 'b', 'c']
      const logs = await Promise.all(ids.map(async id => await openLog(id, disk, level, author)))
      const acked = new Map(ids.map(id => [id, new Set<number>()]))
      let total = 0
      let image: { disk: SimDisk; level: SimLevel; acked: Map<string, Set<number>> } | undefined
      await Promise.all(
        logs.flatMap((log, l) =>
          Array.from({ length: 40 }, async (_, i) => {
            await log.append(setKey(i))
            acked.get(ids[l])?.add(i)
            // the acknowledgement has been given: what the disk holds at this instant is what a power cut leaves
            if (++total === 70) {
              image = {
                disk: disk.crashImage(),
                level: level.crashImage(),
                acked: new Map([...acked].map(([id, s]) => [id, new Set(s)]))
              }
            }
          })
        )
      )
      assert.ok(image != null)
      const after = await survivors(ids, image.disk, image.level, author)
      for (const id of ids) {
        const log = after.get(id)
        assert.ok(log != null && !(log instanceof Error), `log ${id} does not open after the cut: ${String(log)}`)
        for (const i of image.acked.get(id) ?? [])
          assert.equal(log.value[`k${i}`], i, `acknowledged ${id}/k${i} is lost`)
        for (const [key, v] of Object.entries(log.value)) assert.equal(v, Number(key.slice(1)))
        assert.equal(log.events, Object.keys(log.value).length)
      }
      // and the log goes on from what survived
      const again = await openLog('a', image.disk, image.level, author)
      await again.append(setKey(1000))
      assert.equal((again.value() as Record<string, number>).k1000, 1000)
    })

    for (const fault of ['ignoreDirSync', 'ignoreFileSync'] as const) {
      it(`loses acknowledged appends on a disk that ignores ${fault === 'ignoreDirSync' ? 'directory' : 'file'} fsyncs (the model has teeth)`, async () => {
        const disk = new SimDisk({ [fault]: true })
        const level = new SimLevel()
        const log = await openLog('a', disk, level, author)
        for (let i = 0; i < 10; i++) await log.append(setKey(i))
        const after = await survivors(['a'], disk.crashImage(), level.crashImage(), author)
        const survived = after.get('a')
        const complete = survived != null && !(survived instanceof Error) && Object.keys(survived.value).length === 10
        assert.equal(complete, false, 'a lying disk should have lost acknowledged appends')
      })
    }

    it('loses the log record with an unsynced LevelDB (datastore-level as it was), keeps it with SyncedLevelDatastore', async () => {
      for (const kind of ['unsynced', 'synced'] as const) {
        const disk = new SimDisk()
        const level = new SimLevel()
        const log = await openLog('a', disk, level, author, kind)
        for (let i = 0; i < 5; i++) await log.append(setKey(i))
        const after = (await survivors(['a'], disk.crashImage(), level.crashImage(), author)).get('a')
        assert.ok(after != null && !(after instanceof Error))
        assert.equal(Object.keys(after.value).length, kind === 'synced' ? 5 : 0, kind)
      }
    })
  })

  describe('data directory files and a power cut', () => {
    it('writeFileAtomic: the file holds the new content after a power cut, never the old', async () => {
      const disk = new SimDisk()
      await makeDirectoryDurable(disk, '/data')
      await writeFileAtomic('/data/cluster.share', 'epoch 1', disk)
      await writeFileAtomic('/data/cluster.share', 'epoch 2', disk)
      const image = disk.crashImage()
      assert.equal(new TextDecoder().decode(await image.readFile('/data/cluster.share')), 'epoch 2')
      assert.deepEqual(await image.readdir('/data'), ['cluster.share'])
    })

    it('createOnce: a created key file survives a power cut, and an existing one is never replaced', async () => {
      const disk = new SimDisk()
      await makeDirectoryDurable(disk, '/data')
      await createOnce('/data/identity.key', 'key 1', disk)
      await assert.rejects(
        createOnce('/data/identity.key', 'key 2', disk),
        (err: NodeJS.ErrnoException) => err.code === 'EEXIST'
      )
      const image = disk.crashImage()
      assert.equal(new TextDecoder().decode(await image.readFile('/data/identity.key')), 'key 1')
    })
  })

  describe('group commit', () => {
    it('concurrent writers into one directory share its fsyncs', async () => {
      const disk = new SimDisk()
      await makeDirectoryDurable(disk, '/d')
      disk.dirSyncs = 0
      const syncs = new DirectorySyncs(disk)
      await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          await writeSynced(disk, `/d/f${i}`, 'x')
          await syncs.sync('/d')
        })
      )
      assert.ok(disk.dirSyncs <= 3, `${disk.dirSyncs} directory fsyncs for 50 writers`)
      assert.equal((await disk.crashImage().readdir('/d')).length, 50)
    })

    it('a writer arriving while a directory fsync runs gets a later one, not the running one', async () => {
      const disk = new SimDisk()
      await makeDirectoryDurable(disk, '/d')
      disk.dirSyncs = 0
      let release = (): void => {}
      const held = new Promise<void>(resolve => {
        release = resolve
      })
      let started = false
      disk.beforeDirSync = async () => {
        if (started) return
        started = true
        await held
      }
      const syncs = new DirectorySyncs(disk)
      const first = syncs.sync('/d')
      while (!started) await new Promise(resolve => setImmediate(resolve))
      // the first fsync has begun (it will not cover what follows)
      await writeSynced(disk, '/d/late', 'x')
      const second = syncs.sync('/d')
      release()
      await Promise.all([first, second])
      assert.deepEqual(await disk.crashImage().readdir('/d'), ['late'])
      assert.equal(disk.dirSyncs, 2)
    })

    it('blocks put concurrently through putMany are all durable when it yields them', async () => {
      const disk = new SimDisk()
      const store = new DurableBlockstore(BLOCKS, { fs: disk })
      await store.open()
      const blocks = await Promise.all(Array.from({ length: 64 }, async (_, i) => await rawBlock(`block ${i}`)))
      const put: CID[] = []
      for await (const cid of store.putMany(blocks)) put.push(cid)
      assert.equal(put.length, 64)
      const image = new DurableBlockstore(BLOCKS, { fs: disk.crashImage() })
      await image.open()
      for (const { cid, bytes } of blocks) assert.deepEqual(await first(image.get(cid)), bytes)
      assert.equal(disk.fileSyncs, 64)
    })
  })

  describe('on the real file system', () => {
    let dir: string
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'cyberspace-durability-'))
    })
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true })
    })

    it('reads the blocks blockstore-fs wrote (existing data directories), and blockstore-fs reads ours', async () => {
      const old = new FsBlockstore(join(dir, 'blocks'))
      await old.open()
      const a = await rawBlock('written by blockstore-fs')
      await old.put(a.cid, a.bytes)
      const store = new DurableBlockstore(join(dir, 'blocks'))
      await store.open()
      assert.deepEqual(await first(store.get(a.cid)), a.bytes)
      const b = await rawBlock('written durably')
      await store.put(b.cid, b.bytes)
      assert.deepEqual(Uint8Array.from(await first(old.get(b.cid))), b.bytes)
      const all: string[] = []
      // the layout keeps multihashes, not codecs: getAll gives v0 CIDs of the same hashes, as blockstore-fs does
      for await (const pair of store.getAll()) all.push(String(CID.createV1(raw.code, pair.cid.multihash)))
      assert.deepEqual(all.sort(), [a.cid.toString(), b.cid.toString()].sort())
      assert.equal(await store.has(b.cid), true)
      await store.delete(b.cid)
      assert.equal(await store.has(b.cid), false)
      await assert.rejects(first(store.get(b.cid)), (err: Error) => err.name === 'NotFoundError')
    })

    it('leaves no temporary file behind, and open clears what a crash left', async () => {
      const store = new DurableBlockstore(join(dir, 'blocks'))
      await store.open()
      const a = await rawBlock('a')
      await store.put(a.cid, a.bytes)
      assert.deepEqual(await readdir(join(dir, 'blocks', '.tmp')), [])
      await writeSynced(
        (store as unknown as { fs: DurableFs }).fs,
        join(dir, 'blocks', '.tmp', 'left-by-a-crash.tmp'),
        'x'
      )
      await new DurableBlockstore(join(dir, 'blocks')).open()
      assert.deepEqual(await readdir(join(dir, 'blocks', '.tmp')), [])
    })

    it('SyncedLevelDatastore: put, delete and batch reach LevelDB with sync: true', async () => {
      const store = new SyncedLevelDatastore(join(dir, 'datastore'))
      await store.open()
      try {
        const db = store.db as unknown as Record<string, (...args: any[]) => Promise<unknown>>
        const synced: Array<[string, unknown]> = []
        for (const method of ['_put', '_del', '_batch']) {
          const original = db[method].bind(db)
          db[method] = async (...args: any[]) => {
            synced.push([method, (args.at(-1) as { sync?: boolean }).sync])
            return await original(...args)
          }
        }
        await store.put(new Key('/a'), Uint8Array.of(1))
        await store.delete(new Key('/a'))
        const batch = store.batch()
        batch.put(new Key('/b'), Uint8Array.of(2))
        await batch.commit()
        assert.deepEqual(synced, [
          ['_put', true],
          ['_del', true],
          ['_batch', true]
        ])
        assert.deepEqual(Uint8Array.from(await store.get(new Key('/b'))), Uint8Array.of(2))
      } finally {
        await store.close()
      }
    })

    it("SyncedLevelDatastore: the peer store's records are written unsynced and read through a cache; the rest stays synced", async () => {
      const level = new SimLevel()
      const store = new SyncedLevelDatastore(level as unknown as Level)
      await store.open()
      const peer = new Key('/peers/bafzaa')
      await store.put(peer, Uint8Array.of(1))
      // unsynced: a power cut now may lose it
      const cut = new SyncedLevelDatastore(level.crashImage() as unknown as Level)
      await cut.open()
      await assert.rejects(cut.get(peer), { name: 'NotFoundError' })
      // a synced write after it makes both durable (LevelDB's log is written in order)
      await store.put(new Key('/state/x'), Uint8Array.of(9))
      const later = new SyncedLevelDatastore(level.crashImage() as unknown as Level)
      await later.open()
      assert.deepEqual(Uint8Array.from(await later.get(peer)), Uint8Array.of(1))
      assert.deepEqual(Uint8Array.from(await later.get(new Key('/state/x'))), Uint8Array.of(9))
      // reads come from the cache: a record changed beneath the store is not read again
      await level.put(peer.toString(), Uint8Array.of(7))
      assert.deepEqual(Uint8Array.from(await store.get(peer)), Uint8Array.of(1))
      // but every write through the store is seen at once, batches included
      await store.put(peer, Uint8Array.of(2))
      assert.deepEqual(Uint8Array.from(await store.get(peer)), Uint8Array.of(2))
      const batch = store.batch()
      batch.put(peer, Uint8Array.of(3))
      await batch.commit()
      assert.deepEqual(Uint8Array.from(await store.get(peer)), Uint8Array.of(3))
      assert.equal(await store.has(peer), true)
      await store.delete(peer)
      await assert.rejects(store.get(peer), { name: 'NotFoundError' })
      assert.equal(await store.has(peer), false)
    })
  })
})

async function rawBlock(text: string): Promise<{ cid: CID; bytes: Uint8Array }> {
  const bytes = new TextEncoder().encode(text)
  return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
}

async function first(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const out: Uint8Array[] = []
  for await (const c of chunks) out.push(c)
  assert.equal(out.length, 1)
  return out[0]
}
