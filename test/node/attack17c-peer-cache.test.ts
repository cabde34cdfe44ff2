/**
 * Attacker against the peer store's in-memory record cache (node/stores.ts): a peer record's size
 * is set by what the network says about a peer — libp2p merges every address a DHT answer or an
 * identify lists for any peer id, with no cap — so 4096 cached records are a memory bound only if
 * each cached record is small. A large record is read from LevelDB (whose own cache is bounded).
 */
import { strict as assert } from 'node:assert'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Key } from 'interface-datastore'
import { SyncedLevelDatastore } from '../../node/stores.ts'

describe('attack17c: peer records cached in memory', () => {
  let dir: string
  let store: SyncedLevelDatastore

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'attack17c-peers-'))
    store = new SyncedLevelDatastore(join(dir, 'datastore'))
    await store.open()
  })

  afterEach(async () => {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })

  /** Whether `key` is answered from memory: its value is gone from LevelDB underneath, get still has it. */
  async function heldInMemory(key: Key): Promise<boolean> {
    await store.db.del(key.toString())
    try {
      await store.get(key)
      return true
    } catch (err) {
      assert.equal((err as Error).name, 'NotFoundError')
      return false
    }
  }

  it('a small record is served from memory (the cache works)', async () => {
    const key = new Key('/peers/small')
    await store.put(key, new Uint8Array(512).fill(1))
    assert.equal(await heldInMemory(key), true)
  })

  it('a record of 1 MiB (addresses an attacker made up for a peer id) is not held in memory', async () => {
    const key = new Key('/peers/inflated')
    await store.put(key, new Uint8Array(1024 * 1024).fill(7))
    assert.equal(await heldInMemory(key), false, '4096 such records would hold 4 GiB')
    const read = new Key('/peers/inflated-read')
    await store.put(read, new Uint8Array(1024 * 1024).fill(8))
    await store.db.del(read.toString())
    await store.db.put(read.toString(), new Uint8Array(1024 * 1024).fill(9))
    // read through: a get of a large record does not keep it either
    assert.equal((await store.get(read))[0], 9)
    assert.equal(await heldInMemory(read), false)
  })
})
