/**
 * `/cyberspace/heads/2.0.0` messages (spec in README.md beside this file): anti-entropy for logs.
 * The dialer sends the heads (and latest snapshot) of the logs it holds and the listener may read;
 * the listener answers with its own for the logs both hold and the dialer may read. Each side then
 * fetches by CID (`want` of one log → `blocks` of that log) whatever the other has and it lacks.
 * One request and one answer at a time on a stream (served under `<id>` and `<id>/many`,
 * src/network/rpc.ts). `/cyberspace/heads/2.1.0` adds `hold` → `held`: "join these
 * heads of one log now, and answer once you hold them" (replicated acknowledgements).
 *
 * @example
 * const bytes = encodeHeadsMessage({ v: 1, type: 'heads', logs: [{ log: 'tasks', heads: [cid], snapshot: null }] })
 * decodeHeadsMessage(bytes) // throws InvalidHeadsMessageError on anything else
 */
import { checkLogId, isBlockCid, MAX_EVENT_BYTES, MAX_SNAPSHOT_BYTES } from '../log/codec.ts'
import { checkFields, decodeChecked, encodeChecked, ERROR_FIELDS, isBytes } from '../wire.ts'
import type { ErrorAnswer } from '../wire.ts'
import type { CID } from 'multiformats/cid'

/** 2.0.0: `want` names its log, and both messages are served only to readers of that log. */
export const HEADS_PROTOCOL = '/cyberspace/heads/2.0.0'
/**
 * 2.1.0: every 2.0.0 message, and `hold` → `held`. Served beside 2.0.0 (which refuses `hold`), with
 * its own stream budget: a `hold` stream stays open while the answerer joins.
 */
export const HEADS_HOLD_PROTOCOL = '/cyberspace/heads/2.1.0'
/** Most event blocks a `hold` carries inline. */
export const MAX_HOLD_BLOCKS = 16
/** Most logs one message names. */
export const MAX_LOGS_PER_MESSAGE = 256
/** Most heads sent per log; a log with more sends the first ones, the rest follow once merged. */
export const MAX_HEADS_PER_LOG = 64
/** Most blocks one `want` asks for. */
export const MAX_WANTED_BLOCKS = 64
/** A message holds at most one snapshot-sized block and its framing. */
export const MAX_HEADS_MESSAGE_BYTES = MAX_SNAPSHOT_BYTES + 64 * 1024

export class InvalidHeadsMessageError extends Error {
  static name = 'InvalidHeadsMessageError'
  name = 'InvalidHeadsMessageError'
}

export interface LogHeads {
  log: string
  heads: CID[]
  /** The latest snapshot the sender has merged, for peers that cannot fetch the history behind it. */
  snapshot: CID | null
}

export interface HeadsMessage {
  v: 1
  type: 'heads'
  logs: LogHeads[]
}

/** Asks for blocks of one log by CID: its events or snapshots the asker lacks. */
export interface WantMessage {
  v: 1
  type: 'want'
  log: string
  cids: CID[]
  /**
   * How many of the wanted events' ancestors the answerer may add (0–63), nearest first: an asker
   * walking down a history gets a chain in one answer instead of one block per request.
   */
  depth: number
}

/** The blocks of a `want` the answerer has, in any order, within the message size limit. */
export interface BlocksMessage {
  v: 1
  type: 'blocks'
  blocks: Uint8Array[]
}

/**
 * Asks the answerer to join `heads` of `log` now (fetching what it lacks from the asker, starting
 * with the event blocks sent inline) and to answer once it holds them on disk. Served only to a
 * reader of `log`, and only for a log the answerer holds already (2.1.0).
 */
export interface HoldMessage {
  v: 1
  type: 'hold'
  log: string
  /** 1-64 distinct event CIDs: the asker's heads. */
  heads: CID[]
  /** The asker's latest snapshot, for an answerer that cannot fetch the history behind it. */
  snapshot: CID | null
  /** Up to 16 event blocks of `log` (the newest the answerer may lack), each checked against its CID before use. */
  blocks: Uint8Array[]
}

/** Those of a `hold`'s heads the answerer holds now (applied, or inside its base snapshot), on disk. */
export interface HeldMessage {
  v: 1
  type: 'held'
  log: string
  heads: CID[]
}

export type HeadsRequest = HeadsMessage | WantMessage | HoldMessage
export type HeadsAnswer = HeadsMessage | BlocksMessage | HeldMessage | ErrorAnswer

const FIELDS = {
  heads: 'logs,type,v',
  want: 'cids,depth,log,type,v',
  blocks: 'blocks,type,v',
  hold: 'blocks,heads,log,snapshot,type,v',
  held: 'heads,log,type,v',
  error: ERROR_FIELDS
}

function fail(what: string): never {
  throw new InvalidHeadsMessageError(what)
}

function check(msg: unknown): asserts msg is HeadsRequest | HeadsAnswer {
  const m = checkFields(msg, FIELDS, fail)
  if (m.type === 'want') {
    checkLogId(m.log, fail)
    if (!Array.isArray(m.cids) || m.cids.length === 0 || m.cids.length > MAX_WANTED_BLOCKS) {
      fail(`cids is a list of 1-${MAX_WANTED_BLOCKS}`)
    }
    if (!m.cids.every(isBlockCid)) fail('cids holds only block CIDs')
    if (!Number.isInteger(m.depth) || (m.depth as number) < 0 || (m.depth as number) >= MAX_WANTED_BLOCKS) {
      fail(`depth is an integer 0-${MAX_WANTED_BLOCKS - 1}`)
    }
    return
  }
  if (m.type === 'hold' || m.type === 'held') {
    checkLogId(m.log, fail)
    const min = m.type === 'hold' ? 1 : 0
    if (!Array.isArray(m.heads) || m.heads.length < min || m.heads.length > MAX_HEADS_PER_LOG) {
      fail(`heads is a list of ${min}-${MAX_HEADS_PER_LOG}`)
    }
    if (!m.heads.every(isBlockCid)) fail('heads holds only block CIDs')
    if (new Set(m.heads.map(String)).size !== m.heads.length) fail('heads are distinct')
    if (m.type === 'held') return
    if (m.snapshot !== null && !isBlockCid(m.snapshot)) fail('snapshot is a block CID or null')
    if (!Array.isArray(m.blocks) || m.blocks.length > MAX_HOLD_BLOCKS)
      fail(`blocks is a list of at most ${MAX_HOLD_BLOCKS}`)
    if (!m.blocks.every(b => isBytes(b, 1, MAX_EVENT_BYTES))) fail(`an inline block is 1-${MAX_EVENT_BYTES} bytes`)
    return
  }
  if (m.type === 'blocks') {
    if (!Array.isArray(m.blocks) || m.blocks.length > MAX_WANTED_BLOCKS)
      fail(`blocks is a list of at most ${MAX_WANTED_BLOCKS}`)
    if (!m.blocks.every(b => isBytes(b, 1, MAX_SNAPSHOT_BYTES))) fail(`a block is 1-${MAX_SNAPSHOT_BYTES} bytes`)
    return
  }
  if (m.type !== 'heads') return
  if (!Array.isArray(m.logs) || m.logs.length > MAX_LOGS_PER_MESSAGE) {
    fail(`logs is a list of at most ${MAX_LOGS_PER_MESSAGE}`)
  }
  const seen = new Set<string>()
  for (const entry of m.logs as unknown[]) {
    if (entry == null || typeof entry !== 'object' || Array.isArray(entry)) fail('a log entry is a map')
    const e = entry as Record<string, unknown>
    if (Object.keys(e).sort().join(',') !== 'heads,log,snapshot') fail('a log entry has exactly heads, log, snapshot')
    checkLogId(e.log, fail)
    if (seen.has(e.log)) fail(`log ${e.log} is listed twice`)
    seen.add(e.log)
    if (!Array.isArray(e.heads) || e.heads.length > MAX_HEADS_PER_LOG || !e.heads.every(isBlockCid)) {
      fail(`heads is a list of at most ${MAX_HEADS_PER_LOG} block CIDs`)
    }
    if (e.snapshot !== null && !isBlockCid(e.snapshot)) fail('snapshot is a block CID or null')
  }
}

export function encodeHeadsMessage(msg: HeadsRequest | HeadsAnswer): Uint8Array {
  return encodeChecked(msg, check, MAX_HEADS_MESSAGE_BYTES, fail)
}

export function decodeHeadsMessage(bytes: Uint8Array): HeadsRequest | HeadsAnswer {
  return decodeChecked(bytes, MAX_HEADS_MESSAGE_BYTES, check, fail)
}
