/**
 * Reading and writing log blocks. A blockstore's `get` streams a block in chunks (a Helia
 * blockstore could fetch from peers, but nodes run no bitswap: missing blocks come over
 * /cyberspace/heads, see service.ts): `readBlock` bounds the size while it reads, can stay
 * offline, and checks the bytes hash to the CID asked for.
 *
 * @example
 * const bytes = await readBlock(helia.blockstore, cid, { maxBytes: MAX_EVENT_BYTES, offline: true })
 */
import { blockCid } from '../../protocols/log/codec.ts'
import { BlockNotFoundError } from './errors.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'

/** A blockstore that may fetch from the network unless asked to stay offline (Helia's does). */
export type LogBlockstore = Blockstore<{}, {}, {}, { offline?: boolean }>

export interface ReadBlockOptions extends AbortOptions {
  maxBytes: number
  /** Only the local store, no network fetch. */
  offline?: boolean
}

export async function readBlock(store: LogBlockstore, cid: CID, options: ReadBlockOptions): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  let length = 0
  try {
    for await (const chunk of store.get(cid, { signal: options.signal, offline: options.offline })) {
      length += chunk.length
      if (length > options.maxBytes)
        throw new BlockNotFoundError(`block ${cid} is larger than ${options.maxBytes} bytes`)
      chunks.push(chunk)
    }
  } catch (err) {
    if (err instanceof BlockNotFoundError) throw err
    throw new BlockNotFoundError(`block ${cid} not found: ${(err as Error).message}`)
  }
  const bytes = chunks.length === 1 ? chunks[0] : concat(chunks, length)
  if (!(await blockCid(bytes)).equals(cid)) {
    throw new BlockNotFoundError(`block ${cid} does not hash to its CID`)
  }
  return bytes
}

/** The chunks joined into one array of `length` bytes. */
export function concat(chunks: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length)
  let offset = 0
  for (const c of chunks) {
    out.set(c, offset)
    offset += c.length
  }
  return out
}
