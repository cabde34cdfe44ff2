/**
 * Block requests to one peer for one log, made within the same turn of the event loop, go out as
 * one `want` (up to MAX_WANTED_BLOCKS CIDs): a join that fetches 8 blocks at once opens one
 * stream instead of 8. Each caller gets its block, or undefined if the peer did not send it, and
 * may give up on its own signal without cancelling the others. A caller walking down a history
 * asks for ancestors too (`depth`); blocks that came unasked are handed to `extra`, by CID.
 *
 * @example
 * const wants = new WantBatcher(async (peer, log, cids, depth, signal) => (await ask(peer, { type: 'want', log, cids, depth }, signal)).blocks, 10_000, keep)
 * const block = await wants.want(peer, 'tasks', cid, 0, AbortSignal.timeout(5000))
 */
import { blockCid } from '../../protocols/log/codec.ts'
import { MAX_WANTED_BLOCKS } from '../../protocols/heads/codec.ts'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

/** Sends one `want` of `cids` to `peer` and returns the blocks it answered with, in any order. */
export type SendWant = (
  peer: PeerId,
  log: string,
  cids: CID[],
  depth: number,
  signal: AbortSignal
) => Promise<Uint8Array[]>

/** Receives the blocks of `log` a peer sent beyond those asked for (ancestors), keyed by their CID. */
export type ExtraBlocks = (log: string, blocks: Map<string, Uint8Array>) => void

interface Waiter {
  resolve(block: Uint8Array | undefined): void
  reject(err: unknown): void
}

interface Pending {
  peer: PeerId
  log: string
  depth: number
  cids: Map<string, CID>
  waiters: Map<string, Waiter[]>
  timer?: ReturnType<typeof setTimeout>
}

export class WantBatcher {
  private readonly send: SendWant
  /** How long one batched request may take, in ms. */
  private readonly timeout: number
  private readonly extra: ExtraBlocks
  private readonly pending = new Map<string, Pending>()

  constructor(send: SendWant, timeout: number, extra: ExtraBlocks) {
    this.send = send
    this.timeout = timeout
    this.extra = extra
  }

  /** The block `cid` of `log` from `peer`, or undefined if the peer answered without it. */
  async want(peer: PeerId, log: string, cid: CID, depth: number, signal: AbortSignal): Promise<Uint8Array | undefined> {
    signal.throwIfAborted()
    const batchKey = `${peer.toString()} ${log} ${depth}`
    let batch = this.pending.get(batchKey)
    if (batch == null) {
      batch = { peer, log, depth, cids: new Map(), waiters: new Map() }
      this.pending.set(batchKey, batch)
      const ready = batch
      ready.timer = setTimeout(() => this.flush(batchKey, ready), 0)
    }
    const key = cid.toString()
    batch.cids.set(key, cid)
    const answer = new Promise<Uint8Array | undefined>((resolve, reject) => {
      const waiters = batch.waiters.get(key) ?? []
      waiters.push({ resolve, reject })
      batch.waiters.set(key, waiters)
    })
    if (batch.cids.size >= MAX_WANTED_BLOCKS) {
      clearTimeout(batch.timer)
      this.flush(batchKey, batch)
    }
    return await abortable(answer, signal)
  }

  /** One block asked for on its own; undefined if the peer does not send it. */
  private async alone(batch: Pending, cid: CID): Promise<Uint8Array | undefined> {
    const blocks = await this.send(batch.peer, batch.log, [cid], 0, AbortSignal.timeout(this.timeout))
    for (const block of blocks) if ((await blockCid(block)).equals(cid)) return block
    return undefined
  }

  private flush(batchKey: string, batch: Pending): void {
    if (this.pending.get(batchKey) === batch) this.pending.delete(batchKey)
    const settle = async (): Promise<void> => {
      const cids = [...batch.cids.values()]
      const blocks = await this.send(batch.peer, batch.log, cids, batch.depth, AbortSignal.timeout(this.timeout))
      const byCid = new Map<string, Uint8Array>()
      for (const block of blocks) byCid.set((await blockCid(block)).toString(), block)
      // an answer shared by several blocks is bounded in size: one left out may simply not have
      // fitted, so it is asked for alone before the caller hears the peer does not have it
      const crowded = blocks.length > 0 && (cids.length > 1 || batch.depth > 0)
      await Promise.all(
        [...batch.waiters].map(async ([key, waiters]) => {
          let block = byCid.get(key)
          if (block == null && crowded) block = await this.alone(batch, batch.cids.get(key) as CID)
          for (const w of waiters) w.resolve(block)
        })
      )
      // unasked blocks only if ancestors were asked for, and no more of them than were
      const extra = new Map<string, Uint8Array>()
      for (const [key, block] of byCid) {
        if (batch.cids.has(key) || extra.size >= batch.depth) continue
        extra.set(key, block)
      }
      if (extra.size > 0) this.extra(batch.log, extra)
    }
    settle().catch(err => {
      for (const waiters of batch.waiters.values()) for (const w of waiters) w.reject(err)
    })
  }
}

/** `promise`, or a rejection with the signal's reason as soon as it aborts. */
async function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  promise.catch(() => {}) // a caller that gave up does not hear of the batch failing
  let onAbort = (): void => {}
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

/**
 * Blocks a peer sent ahead of being asked (ancestors in a `want` answer), kept until the walk asks
 * for them, the oldest dropped first beyond a byte budget. Keys name the log and the CID the
 * block hashes to, so a block is only ever handed out for what it is.
 */
export class Prefetched {
  private readonly blocks = new Map<string, Uint8Array>()
  private readonly maxBytes: number
  private bytes = 0

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes
  }

  put(key: string, block: Uint8Array): void {
    this.take(key)
    this.blocks.set(key, block)
    this.bytes += block.length
    if (this.bytes <= this.maxBytes) return
    for (const [oldest, b] of this.blocks) {
      if (this.bytes <= this.maxBytes) break
      this.blocks.delete(oldest)
      this.bytes -= b.length
    }
  }

  /** The block under `key`, forgotten as it is handed out. */
  take(key: string): Uint8Array | undefined {
    const block = this.blocks.get(key)
    if (block == null) return undefined
    this.blocks.delete(key)
    this.bytes -= block.length
    return block
  }
}
