/**
 * Replicas of a log for the log's own tests: each has its own memory stores, and its blockstore
 * "fetches" a missing block from the other replicas' stores, the way Helia's fetches from peers
 * (the real network is exercised in test/integration).
 */
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { Hlc } from '../../src/clock/hlc.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { UnauthorizedEventError } from '../../src/log/errors.ts'
import { readBlock } from '../../src/log/blocks.ts'
import { Log } from '../../src/log/log.ts'
import type { CrdtType } from '../../src/crdt/types.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { Authorize, FetchBlock, LogInit } from '../../src/log/log.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export class PeerBlockstore extends MemoryBlockstore {
  readonly peers: PeerBlockstore[] = []

  async *get(cid: CID, options: AbortOptions & { offline?: boolean } = {}): AsyncGenerator<Uint8Array> {
    if (await this.has(cid)) {
      yield* super.get(cid, options)
      return
    }
    if (options.offline !== true) {
      for (const peer of this.peers) {
        if (await peer.has(cid)) {
          const chunks: Uint8Array[] = []
          for await (const c of super.get.call(peer, cid, options)) chunks.push(c)
          yield* chunks
          return
        }
      }
    }
    throw Object.assign(new Error(`not found ${cid}`), { name: 'NotFoundError' })
  }
}

export interface Replica<S, D, V> {
  log: Log<S, D, V>
  signer: Signer
  blockstore: PeerBlockstore
  datastore: MemoryDatastore
  init: LogInit<S, D, V>
  reopen(): Promise<Log<S, D, V>>
}

/** Authorizes exactly the principals in `allowed` (all actions). */
export function allowList(allowed: Set<string>): Authorize {
  return async (author: string) => {
    if (!allowed.has(author)) throw new UnauthorizedEventError(`${author} may not write`)
  }
}

let seedCounter = 1

/** A signer from a fixed seed; seeds above 255 (many writers) stay distinct. */
export async function signer(seed = seedCounter++): Promise<Signer> {
  const bytes = new Uint8Array(32).fill(seed & 0xff)
  if (seed > 0xff) new DataView(bytes.buffer).setUint32(0, seed)
  return await seedSigner(bytes)
}

export async function replicas<S, D, V>(
  type: CrdtType<S, D, V>,
  n: number,
  options: { id?: string; now?: () => number; authorize?: Authorize; allowed?: Set<string> } = {}
): Promise<Array<Replica<S, D, V>>> {
  const signers = await Promise.all(Array.from({ length: n }, async () => await signer()))
  const allowed = options.allowed ?? new Set(signers.map(s => s.principal as string))
  const stores = signers.map(() => new PeerBlockstore())
  for (const s of stores) s.peers.push(...stores.filter(o => o !== s))
  return await Promise.all(
    signers.map(async (signer, i) => {
      const init: LogInit<S, D, V> = {
        id: options.id ?? 'doc',
        type,
        blockstore: stores[i],
        datastore: new MemoryDatastore(),
        signer,
        clock: new Hlc({ now: options.now }),
        authorize: options.authorize ?? allowList(allowed),
        limits: { fetchTimeout: 1000 }
      }
      const replica: Replica<S, D, V> = {
        log: await Log.open(init),
        signer,
        blockstore: stores[i],
        datastore: init.datastore as MemoryDatastore,
        init,
        reopen: async () => {
          replica.log.close()
          replica.log = await Log.open({ ...init, clock: new Hlc({ now: options.now }) })
          return replica.log
        }
      }
      return replica
    })
  )
}

/** A `fetch` hook that reads missing blocks from `stores` and records every CID it is asked for. */
export function countingFetch(stores: PeerBlockstore[]): { fetch: FetchBlock; asked: string[] } {
  const asked: string[] = []
  const fetch: FetchBlock = async (cid, options) => {
    asked.push(cid.toString())
    for (const store of stores) {
      if (await store.has(cid)) return await readBlock(store, cid, { maxBytes: options.maxBytes, offline: true })
    }
    throw Object.assign(new Error(`not found ${cid}`), { name: 'NotFoundError' })
  }
  return { fetch, asked }
}
