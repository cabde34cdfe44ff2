/**
 * The data directory of a node process: its identity key, lock, stores and control-API files.
 *
 * Layout (all files 0600, the directory 0700):
 *   identity.key   libp2p protobuf-encoded Ed25519 private key; created once, never overwritten
 *   lock           "<pid> <per-start token>" of the process running a node on this directory
 *   api.json       { url, pid } of the running node's control API (removed on clean stop)
 *   api-token      bearer token for the control API, new on every start
 *   cluster.share  this node's share of the cluster key (src/threshold/state.ts), if it has one
 *   cluster.staged a refreshed share waiting for the refresh to commit
 *   blocks/        Helia blockstore (blockstore-fs layout; `.tmp/` holds blocks being written)
 *   datastore/     libp2p + Helia datastore (LevelDB, every write synced)
 *
 * Nothing is acknowledged before it is on disk: files are written aside and fsynced, then renamed
 * or linked into place and the directory fsynced (node/stores.ts holds the stores that do the same).
 *
 * @example
 * const dir = await openDataDir('/home/me/.cyberspace')
 * try { … dir.privateKey … } finally { await dir.close() }
 */
import { randomBytes } from 'node:crypto'
import { chmod, link, readFile, rename, rm, stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { CorruptKeyError, DataDirError, DataDirLockedError } from './errors.ts'
import { makeDirectoryDurable, nodeFs, removeFile, syncDirectory, writeSynced } from './stores.ts'
import type { DurableFs } from './stores.ts'
import type { ShareSlot, ShareStore } from '../src/threshold/state.ts'
import type { PrivateKey } from '@libp2p/interface'

export const DEFAULT_DATA_DIR = join(homedir(), '.cyberspace')
export const KEY_FILE = 'identity.key'
export const LOCK_FILE = 'lock'
export const API_FILE = 'api.json'
export const TOKEN_FILE = 'api-token'
export const SHARE_FILES: Record<ShareSlot, string> = { current: 'cluster.share', staged: 'cluster.staged' }
/** A share file larger than this is not a share. */
const MAX_SHARE_FILE_BYTES = 64 * 1024
/** An identity key file larger than this is not a key. */
const MAX_KEY_FILE_BYTES = 4096

export interface DataDir {
  path: string
  privateKey: PrivateKey
  /** True when this open created the identity (first start). */
  createdKey: boolean
  /** Notes for the operator (e.g. a key file's permissions were tightened). */
  warnings: string[]
  /** Releases the lock. */
  close(): Promise<void>
}

export async function openDataDir(dir: string): Promise<DataDir> {
  const path = resolve(dir)
  try {
    // a new data directory's entry is made durable, as everything acknowledged will live in it
    await makeDirectoryDurable(nodeFs, path, 0o700)
  } catch (err) {
    throw new DataDirError(`cannot use data directory ${path}: ${describe(err)}`)
  }
  await checkDirectory(path)
  const lock = await acquireLock(path)
  try {
    const warnings: string[] = []
    const { privateKey, created } = await loadOrCreateKey(join(path, KEY_FILE), warnings)
    return { path, privateKey, createdKey: created, warnings, close: lock.release }
  } catch (err) {
    await lock.release()
    throw err
  }
}

/** The directory must be ours and not writable by others: it holds our key and API token. */
async function checkDirectory(path: string): Promise<void> {
  let info
  try {
    info = await stat(path)
  } catch (err) {
    throw new DataDirError(`cannot use data directory ${path}: ${describe(err)}`)
  }
  if (!info.isDirectory()) throw new DataDirError(`cannot use data directory ${path}: ENOTDIR`)
  const uid = process.getuid?.()
  if (uid != null && info.uid !== uid) {
    throw new DataDirError(`data directory ${path} belongs to uid ${info.uid}, not to this user (${uid})`)
  }
  if ((info.mode & 0o022) !== 0) {
    throw new DataDirError(
      `data directory ${path} is writable by others (mode ${(info.mode & 0o777).toString(8)}); use chmod 700 or another --data-dir`
    )
  }
}

/**
 * Takes the pid lock. The lock file appears with its content in one step (written aside, then
 * hard-linked into place), and is released only by the process whose token it holds.
 */
async function acquireLock(dir: string): Promise<{ release: () => Promise<void> }> {
  const file = join(dir, LOCK_FILE)
  const token = `${process.pid} ${randomBytes(8).toString('hex')}\n`
  const release = async (): Promise<void> => {
    if ((await readFile(file, 'utf8').catch(() => '')) === token) await rm(file, { force: true })
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await createOnce(file, token)
      return { release }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new DataDirError(`cannot write to data directory ${dir}: ${describe(err)}`)
      }
    }
    const held = await readFile(file, 'utf8').catch(() => '')
    const pid = Number.parseInt(held, 10)
    if (Number.isSafeInteger(pid) && pid > 0 && isRunning(pid)) {
      throw new DataDirLockedError(
        `data directory ${dir} is in use by another cyberspace node (pid ${pid}); stop it first or use --data-dir`
      )
    }
    // the process that held the lock is gone. Move the stale lock aside; if what we moved is not
    // what we judged stale, another starter took the lock meanwhile: put theirs back
    const aside = `${file}.${randomBytes(6).toString('hex')}.stale`
    try {
      await rename(file, aside)
      if ((await readFile(aside, 'utf8')) !== held) await link(aside, file).catch(() => {})
    } catch {
      // someone else moved it first; try again
    } finally {
      await rm(aside, { force: true })
    }
  }
  throw new DataDirLockedError(`could not take the lock on data directory ${dir}`)
}

/** Whether another process with this pid runs. Our own pid in a lock file is a previous life of ours (e.g. a restarted container). */
function isRunning(pid: number): boolean {
  if (pid === process.pid) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * The identity key of a data directory, read without locking, creating or changing anything
 * (for `cyberspace key` when no node runs there). Undefined if the directory has no key yet.
 */
export async function readIdentityKey(dir: string): Promise<PrivateKey | undefined> {
  return await readKeyFile(join(resolve(dir), KEY_FILE))
}

/**
 * The key in `file`, or undefined if there is none. With `warnings`, a key file others can read
 * is made 0600 and the change reported there.
 */
async function readKeyFile(file: string, warnings?: string[]): Promise<PrivateKey | undefined> {
  let bytes: Buffer | undefined
  try {
    bytes = await readPrivateFile(file, MAX_KEY_FILE_BYTES, {
      refuse: detail =>
        new CorruptKeyError(`identity key file ${file} is not a key file (${detail}); it was left untouched`),
      loose:
        warnings == null
          ? undefined
          : mode => {
              warnings.push(`identity key file ${file} was readable by others (mode ${mode}); it is now 0600`)
            }
    })
  } catch (err) {
    if (err instanceof CorruptKeyError) throw err
    throw new DataDirError(`cannot read identity key file ${file}: ${describe(err)}`)
  }
  if (bytes == null) return undefined
  try {
    const privateKey = privateKeyFromProtobuf(bytes)
    if (privateKey.type !== 'Ed25519') throw new Error(`key type ${privateKey.type}, expected Ed25519`)
    return privateKey
  } catch (err) {
    throw new CorruptKeyError(
      `identity key file ${file} is corrupt (${describe(err)}); it was left untouched. Restore it from a backup, or move it away to start with a new identity`
    )
  }
}

async function loadOrCreateKey(
  file: string,
  warnings: string[]
): Promise<{ privateKey: PrivateKey; created: boolean }> {
  const existing = await readKeyFile(file, warnings)
  if (existing != null) return { privateKey: existing, created: false }
  const privateKey = await generateKeyPair('Ed25519')
  try {
    // an existing key is never replaced
    await createOnce(file, privateKeyToProtobuf(privateKey))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return await loadOrCreateKey(file, warnings)
    throw new DataDirError(`cannot write identity key file ${file}: ${describe(err)}`)
  }
  return { privateKey, created: true }
}

/**
 * The bytes of a file only this user should read, or undefined if it does not exist. A directory,
 * device or oversized file is refused (`refuse` names the error) and left untouched. With `loose`,
 * a file others can read is made 0600 first and `loose` is told its old mode; without, nothing is changed.
 */
async function readPrivateFile(
  file: string,
  maxBytes: number,
  handling: { refuse: (detail: string) => Error; loose?: (mode: string) => void }
): Promise<Buffer | undefined> {
  try {
    const info = await stat(file)
    if (!info.isFile() || info.size > maxBytes)
      throw handling.refuse(info.isFile() ? `${info.size} bytes` : 'not a regular file')
    if (handling.loose != null && (info.mode & 0o077) !== 0) {
      await chmod(file, 0o600)
      handling.loose((info.mode & 0o777).toString(8))
    }
    return await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** A temporary sibling name for `file`. */
function tmpName(file: string): string {
  return `${file}.${randomBytes(6).toString('hex')}.tmp`
}

/**
 * Creates `file` (0600) with its whole content in one step: written and synced aside, then
 * hard-linked into place, then the directory synced (the new entry survives a power cut before
 * this resolves). Unlike rename, link fails with EEXIST if the file appeared meanwhile.
 */
export async function createOnce(file: string, data: Uint8Array | string, fs: DurableFs = nodeFs): Promise<void> {
  const tmp = tmpName(file)
  try {
    await writeSynced(fs, tmp, data)
    await fs.link(tmp, file)
    await syncDirectory(fs, dirname(file))
  } finally {
    await removeFile(fs, tmp)
  }
}

/**
 * Replaces a 0600 file atomically and durably: a new temporary sibling, synced, renamed into place,
 * then the directory synced, so that after a power cut the file holds the new content, never the old.
 */
export async function writeFileAtomic(file: string, data: Uint8Array | string, fs: DurableFs = nodeFs): Promise<void> {
  const tmp = tmpName(file)
  try {
    await writeSynced(fs, tmp, data)
    await fs.rename(tmp, file)
    await syncDirectory(fs, dirname(file))
  } catch (err) {
    await removeFile(fs, tmp).catch(() => {})
    throw new DataDirError(`cannot write ${file}: ${describe(err)}`)
  }
}

/** A fresh bearer token for the control API, stored 0600 in the data directory. */
export async function createApiToken(dir: string): Promise<string> {
  const token = randomBytes(32).toString('hex')
  await writeFileAtomic(join(dir, TOKEN_FILE), token)
  return token
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException
  return e.code != null ? `${e.code}${e.message.includes(e.code) ? '' : `: ${e.message}`}` : (e.message ?? String(err))
}

/**
 * The cluster share as 0600 files in the data directory, each replaced atomically (a crash leaves
 * the old file or the new one). The content is checked when the node loads it.
 */
export function fileShareStore(dir: string): ShareStore {
  const file = (slot: ShareSlot): string => join(resolve(dir), SHARE_FILES[slot])
  return {
    load: async slot =>
      await readPrivateFile(file(slot), MAX_SHARE_FILE_BYTES, {
        refuse: () => new DataDirError(`${file(slot)} is not a share file; it was left untouched`),
        loose: () => {}
      }),
    save: async (slot, bytes) => {
      await writeFileAtomic(file(slot), bytes)
    },
    remove: async slot => {
      // durable before it resolves: a retired member's share must not come back after a power cut
      await removeFile(nodeFs, file(slot))
      await syncDirectory(nodeFs, dirname(file(slot)))
    }
  }
}
