/**
 * Durable stores for a node process: nothing a store acknowledges can be lost by a power cut.
 *
 * - `DurableBlockstore` keeps blockstore-fs's layout (`<root>/<next-to-last two base32 chars>/<multihash>.data`)
 *   but a put writes the block aside, fsyncs it, renames it into place and fsyncs the shard
 *   directory before it resolves. Concurrent puts share directory fsyncs (group commit).
 * - `SyncedLevelDatastore` is datastore-level with every write synced (LevelDB's `sync` option: its
 *   log is fsynced before the write resolves; LevelDB groups concurrent writers into one fsync).
 * - The few file-system calls the stores and the data directory make go through `DurableFs`, so a
 *   test can run them on a simulated disk and cut its power.
 *
 * @example
 * const blockstore = new DurableBlockstore(join(dir, 'blocks'))
 * const datastore = new SyncedLevelDatastore(join(dir, 'datastore'))
 * await blockstore.open()
 * await datastore.open()
 */
import { link, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { NextToLast } from 'blockstore-fs/sharding'
import { LevelDatastore } from 'datastore-level'
import { concat } from '../src/log/blocks.ts'
import { RecentMap } from '../src/recent-map.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Batch, Key } from 'interface-datastore'
import type { Blockstore, InputPair, Pair } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'

/** An open file or directory: what the stores do with one. */
export interface DurableFileHandle {
  writeFile(data: Uint8Array | string): Promise<void>
  /** fsync: the file's content (or, for a directory, its entries) survives a power cut. */
  sync(): Promise<void>
  close(): Promise<void>
}

/** The file-system calls of the durable stores and the data directory (node:fs/promises semantics). */
export interface DurableFs {
  /** `wx`: create a new file (EEXIST if there is one); `r`: open for reading (also a directory, to fsync it). */
  open(path: string, flags: 'wx' | 'r', mode?: number): Promise<DurableFileHandle>
  readFile(path: string): Promise<Uint8Array>
  readdir(path: string): Promise<string[]>
  /** With `recursive`, the first directory created (undefined if all existed), as node:fs does. */
  mkdir(path: string, options: { recursive: boolean; mode?: number }): Promise<string | undefined>
  rename(from: string, to: string): Promise<void>
  /** Fails with EEXIST if `to` exists. */
  link(existing: string, to: string): Promise<void>
  unlink(path: string): Promise<void>
  /** Fails with ENOENT if nothing is at `path`. */
  exists(path: string): Promise<void>
}

/** The real file system. */
export const nodeFs: DurableFs = {
  open: async (path, flags, mode) => await open(path, flags, mode),
  readFile: async path => {
    const bytes = await readFile(path)
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  },
  readdir: async path => await readdir(path),
  mkdir: async (path, options) => await mkdir(path, options),
  rename: async (from, to) => {
    await rename(from, to)
  },
  link: async (existing, to) => {
    await link(existing, to)
  },
  unlink: async path => {
    await unlink(path)
  },
  exists: async path => {
    await stat(path)
  }
}

function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code
}

/** Creates a new file (never reusing an existing one), writes it and fsyncs it. */
export async function writeSynced(
  fs: DurableFs,
  file: string,
  data: Uint8Array | string,
  mode: number = 0o600
): Promise<void> {
  const handle = await fs.open(file, 'wx', mode)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** fsyncs a directory: the entries created, renamed or linked into it so far survive a power cut. */
export async function syncDirectory(fs: DurableFs, dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Removes a file if it is there. */
export async function removeFile(fs: DurableFs, file: string): Promise<void> {
  try {
    await fs.unlink(file)
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw err
  }
}

/**
 * Creates `dir` and any missing parents, and makes each new directory's entry durable (fsyncs the
 * parent of each one created).
 */
export async function makeDirectoryDurable(fs: DurableFs, dir: string, mode?: number): Promise<void> {
  const path = resolve(dir)
  const created = await fs.mkdir(path, { recursive: true, mode })
  if (created == null) return
  const parents: string[] = []
  for (let d = path; d !== dirname(created); d = dirname(d)) parents.push(dirname(d))
  for (const parent of parents.reverse()) await syncDirectory(fs, parent)
}

/**
 * Directory fsyncs shared by concurrent writers (group commit): a writer that renamed a file into
 * `dir` asks for a sync; it joins a sync that has not started yet (which will cover its rename), or
 * else one queued behind the sync in progress (which may have started before its rename).
 */
export class DirectorySyncs {
  private readonly fs: DurableFs
  private readonly queued = new Map<string, Promise<void>>()
  private readonly running = new Map<string, Promise<void>>()

  constructor(fs: DurableFs) {
    this.fs = fs
  }

  async sync(dir: string): Promise<void> {
    const queued = this.queued.get(dir)
    if (queued != null) return await queued
    const before = this.running.get(dir)
    const next: Promise<void> = (async () => {
      // let the writers of this turn of the event loop join, and wait for the sync in progress
      await (before ?? Promise.resolve()).catch(() => {})
      this.queued.delete(dir)
      const syncing = syncDirectory(this.fs, dir)
      this.running.set(dir, syncing)
      try {
        await syncing
      } finally {
        if (this.running.get(dir) === syncing) this.running.delete(dir)
      }
    })()
    this.queued.set(dir, next)
    return await next
  }
}

/** Named as interface-store names it: Helia, libp2p and the log match on `name === 'NotFoundError'`. */
export class NotFoundError extends Error {
  static name = 'NotFoundError'
  name = 'NotFoundError'
}

export interface DurableBlockstoreInit {
  /** The file system; default the real one. */
  fs?: DurableFs
  /** How many blocks `putMany` writes at once (they share directory fsyncs). Default 32. */
  putManyConcurrency?: number
}

/** Where blocks are written before they are renamed into place; emptied on open. */
const TMP_DIR = '.tmp'

/**
 * A blockstore in a directory, in blockstore-fs's layout, whose put resolves only once the block is
 * on disk: written to `.tmp/`, fsynced, renamed into its shard directory, the shard directory fsynced
 * (and, the first time this process uses a shard directory, the root too, so the shard's own entry
 * is durable). Deletes are not synced: a deleted block that comes back after a crash is harmless.
 */
export class DurableBlockstore implements Blockstore {
  readonly path: string
  private readonly fs: DurableFs
  private readonly sharding = new NextToLast()
  private readonly dirs: DirectorySyncs
  private readonly shards = new Map<string, Promise<void>>()
  private readonly putManyConcurrency: number
  private tmpCounter = 0

  constructor(location: string, init: DurableBlockstoreInit = {}) {
    this.path = resolve(location)
    this.fs = init.fs ?? nodeFs
    this.dirs = new DirectorySyncs(this.fs)
    this.putManyConcurrency = init.putManyConcurrency ?? 32
  }

  async open(): Promise<void> {
    await makeDirectoryDurable(this.fs, this.path)
    // blocks written aside by a process that stopped before renaming them
    const tmp = join(this.path, TMP_DIR)
    await this.fs.mkdir(tmp, { recursive: true })
    for (const name of await this.fs.readdir(tmp)) await removeFile(this.fs, join(tmp, name))
  }

  async close(): Promise<void> {}

  async put(cid: CID, bytes: InputPair['bytes'], options: AbortOptions = {}): Promise<CID> {
    options.signal?.throwIfAborted()
    const data = await collect(bytes)
    const { dir, file } = this.sharding.encode(cid)
    const shard = join(this.path, dir)
    await this.shardReady(shard)
    const tmp = join(this.path, TMP_DIR, `${file}.${++this.tmpCounter}.tmp`)
    try {
      await writeSynced(this.fs, tmp, data, 0o644)
      await this.fs.rename(tmp, join(shard, file))
    } catch (err) {
      await removeFile(this.fs, tmp).catch(() => {})
      throw err
    }
    await this.dirs.sync(shard)
    return cid
  }

  async *putMany(
    source: Iterable<InputPair> | AsyncIterable<InputPair>,
    options: AbortOptions = {}
  ): AsyncGenerator<CID> {
    let group: InputPair[] = []
    const flush = async (): Promise<CID[]> => {
      const done = await Promise.all(group.map(async ({ cid, bytes }) => await this.put(cid, bytes, options)))
      group = []
      return done
    }
    for await (const pair of source) {
      group.push(pair)
      if (group.length >= this.putManyConcurrency) yield* await flush()
    }
    yield* await flush()
  }

  async *get(cid: CID, options: AbortOptions = {}): AsyncGenerator<Uint8Array> {
    options.signal?.throwIfAborted()
    const { dir, file } = this.sharding.encode(cid)
    let data: Uint8Array
    try {
      data = await this.fs.readFile(join(this.path, dir, file))
    } catch (err) {
      throw new NotFoundError(`block ${cid} not found: ${errorCode(err) ?? (err as Error).message}`)
    }
    yield data
  }

  async *getMany(source: Iterable<CID> | AsyncIterable<CID>, options: AbortOptions = {}): AsyncGenerator<Pair> {
    for await (const cid of source) yield { cid, bytes: this.get(cid, options) }
  }

  async has(cid: CID, options: AbortOptions = {}): Promise<boolean> {
    options.signal?.throwIfAborted()
    const { dir, file } = this.sharding.encode(cid)
    try {
      await this.fs.exists(join(this.path, dir, file))
      return true
    } catch {
      return false
    }
  }

  async delete(cid: CID, options: AbortOptions = {}): Promise<void> {
    options.signal?.throwIfAborted()
    const { dir, file } = this.sharding.encode(cid)
    await removeFile(this.fs, join(this.path, dir, file))
  }

  async *deleteMany(source: Iterable<CID> | AsyncIterable<CID>, options: AbortOptions = {}): AsyncGenerator<CID> {
    for await (const cid of source) {
      await this.delete(cid, options)
      yield cid
    }
  }

  async *getAll(options: AbortOptions = {}): AsyncGenerator<Pair> {
    for (const dir of await this.fs.readdir(this.path)) {
      if (dir.startsWith('.')) continue
      let files: string[]
      try {
        files = await this.fs.readdir(join(this.path, dir))
      } catch {
        continue
      }
      for (const file of files) {
        if (!file.endsWith(this.sharding.extension)) continue
        options.signal?.throwIfAborted()
        let cid: CID
        try {
          cid = this.sharding.decode(file)
        } catch {
          continue
        }
        yield { cid, bytes: this.get(cid, options) }
      }
    }
  }

  /** The shard directory exists and its entry in the root is durable (checked once per process). */
  private async shardReady(shard: string): Promise<void> {
    let ready = this.shards.get(shard)
    if (ready == null) {
      ready = (async () => {
        try {
          await this.fs.mkdir(shard, { recursive: false })
        } catch (err) {
          if (errorCode(err) !== 'EEXIST') throw err
        }
        // also when it existed: a process that crashed may have created it without syncing the root
        await this.dirs.sync(this.path)
      })()
      this.shards.set(shard, ready)
      ready.catch(() => this.shards.delete(shard))
    }
    await ready
  }
}

async function collect(bytes: InputPair['bytes']): Promise<Uint8Array> {
  if (bytes instanceof Uint8Array) return bytes
  const chunks: Uint8Array[] = []
  for await (const chunk of bytes) chunks.push(chunk)
  return concat(
    chunks,
    chunks.reduce((n, c) => n + c.length, 0)
  )
}

type Level = LevelDatastore['db']

/** The peer store's keys (libp2p's `/peers/<cid>`): a cache of what the network told this node. */
const PEERS_PREFIX = '/peers/'
/** Peer records kept in memory, most recently used first. */
const MAX_CACHED_PEERS = 4096
/**
 * The largest record kept in memory: a record's size is set by the addresses the network reports
 * for a peer id, so 4096 records of any size could hold gigabytes. A typical one is a few hundred
 * bytes; a larger one is read from LevelDB each time. At most 16 MiB in all.
 */
const MAX_CACHED_PEER_BYTES = 4096

/**
 * datastore-level with every write synced: put, delete and batch resolve only after LevelDB has
 * fsynced its log. LevelDB queues concurrent writers and commits them as one batch with one fsync.
 * A `Level` instance may be given instead of a path (tests model LevelDB's contract with one).
 *
 * Except the peer store's records (`/peers/…`): they are a cache of addresses and protocols the
 * network gives again (a power cut loses nothing anyone was promised), and libp2p rewrites a
 * peer's record on identify and as it learns of the peer's streams. They are written unsynced and
 * read through an in-memory cache (MAX_CACHED_PEERS records of at most MAX_CACHED_PEER_BYTES): each DHT lookup reads every candidate's
 * record, most of an idle cluster's DHT refresh.
 */
export class SyncedLevelDatastore extends LevelDatastore {
  private readonly unsynced: Pick<Level, 'put' | 'del'>
  private readonly peers = new RecentMap<string, Uint8Array>(MAX_CACHED_PEERS)

  constructor(location: string | Level) {
    super(location)
    this.unsynced = syncEveryWrite(this.db)
  }

  async put(key: Key, value: Uint8Array, options?: AbortOptions): Promise<Key> {
    const text = key.toString()
    if (!text.startsWith(PEERS_PREFIX)) return await super.put(key, value, options)
    options?.signal?.throwIfAborted()
    this.peers.delete(text)
    await this.unsynced.put(text, value)
    if (value.byteLength <= MAX_CACHED_PEER_BYTES) this.peers.set(text, value)
    return key
  }

  async get(key: Key, options?: AbortOptions): Promise<Uint8Array> {
    const text = key.toString()
    if (!text.startsWith(PEERS_PREFIX)) return await super.get(key, options)
    const cached = this.peers.get(text)
    if (cached != null) return cached
    const value = await super.get(key, options)
    if (value.byteLength <= MAX_CACHED_PEER_BYTES) this.peers.set(text, value)
    return value
  }

  async has(key: Key, options?: AbortOptions): Promise<boolean> {
    if (this.peers.has(key.toString())) return true
    return await super.has(key, options)
  }

  async delete(key: Key, options?: AbortOptions): Promise<void> {
    const text = key.toString()
    if (!text.startsWith(PEERS_PREFIX)) {
      await super.delete(key, options)
      return
    }
    options?.signal?.throwIfAborted()
    this.peers.delete(text)
    await this.unsynced.del(text)
  }

  batch(): Batch {
    const inner = super.batch()
    const touched: string[] = []
    return {
      put: (key, value) => {
        touched.push(key.toString())
        inner.put(key, value)
      },
      delete: key => {
        touched.push(key.toString())
        inner.delete(key)
      },
      commit: async options => {
        // a batch is synced whole; the cached records it changes are read from disk again
        for (const k of touched) this.peers.delete(k)
        await inner.commit(options)
        for (const k of touched) this.peers.delete(k)
      }
    }
  }
}

/**
 * datastore-level passes no write options to its Level; this adds `sync: true` to every write,
 * and returns the unsynced put and del for the writes that need no sync.
 */
function syncEveryWrite(db: Level): Pick<Level, 'put' | 'del'> {
  const put = db.put.bind(db) as (key: string, value: Uint8Array, options: object) => Promise<void>
  const del = db.del.bind(db) as (key: string, options: object) => Promise<void>
  const batch = db.batch.bind(db) as (operations?: unknown[], options?: object) => unknown
  const patched = db as unknown as Record<'put' | 'del' | 'batch', unknown>
  patched.put = async (key: string, value: Uint8Array, options?: object) =>
    await put(key, value, { ...options, sync: true })
  patched.del = async (key: string, options?: object) => await del(key, { ...options, sync: true })
  patched.batch = (operations?: unknown[], options?: object) => {
    if (operations != null) return batch(operations, { ...options, sync: true })
    const chained = batch() as { write: (options?: object) => Promise<void> }
    const write = chained.write.bind(chained)
    chained.write = async (options?: object) => await write({ ...options, sync: true })
    return chained
  }
  return {
    put: (async (key: string, value: Uint8Array) => {
      await put(key, value, {})
    }) as unknown as Level['put'],
    del: (async (key: string) => {
      await del(key, {})
    }) as unknown as Level['del']
  }
}
