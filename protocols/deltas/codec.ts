/**
 * The deltas gossip topic (spec in README.md beside this file): every new log event is announced
 * on `/cyberspace/<namespace>/deltas/1` by CID (receivers that may read the document fetch it, and
 * any missing ancestors, by CID); the block goes inline only for public documents, and only when small.
 *
 * @example
 * const bytes = encodeDeltaMessage({ v: 1, type: 'event', log: 'tasks', cid, block: null })
 * decodeDeltaMessage(bytes) // throws InvalidDeltaMessageError on anything else
 */
import { checkLogId, isBlockCid } from '../log/codec.ts'
import { checkFields, decodeChecked, encodeChecked, isBytes } from '../wire.ts'
import type { CID } from 'multiformats/cid'

/** Events up to this size travel inline; larger ones by CID only. */
export const MAX_INLINE_EVENT_BYTES = 16 * 1024
export const MAX_DELTA_MESSAGE_BYTES = MAX_INLINE_EVENT_BYTES + 1024

export class InvalidDeltaMessageError extends Error {
  static name = 'InvalidDeltaMessageError'
  name = 'InvalidDeltaMessageError'
}

export function deltasTopic(namespace: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(namespace)) {
    throw new InvalidDeltaMessageError('a deltas namespace is 1-64 characters of A-Z a-z 0-9 . _ -')
  }
  return `/cyberspace/${namespace}/deltas/1`
}

export interface DeltaMessage {
  v: 1
  type: 'event'
  log: string
  cid: CID
  /** The event block itself, if at most MAX_INLINE_EVENT_BYTES; null otherwise. */
  block: Uint8Array | null
}

function fail(what: string): never {
  throw new InvalidDeltaMessageError(what)
}

function check(msg: unknown): asserts msg is DeltaMessage {
  const m = checkFields(msg, { event: 'block,cid,log,type,v' }, fail)
  checkLogId(m.log, fail)
  if (!isBlockCid(m.cid)) fail('cid is a block CID')
  if (m.block !== null && !isBytes(m.block, 1, MAX_INLINE_EVENT_BYTES)) {
    fail(`block is null or 1-${MAX_INLINE_EVENT_BYTES} bytes`)
  }
}

export function encodeDeltaMessage(msg: DeltaMessage): Uint8Array {
  return encodeChecked(msg, check, MAX_DELTA_MESSAGE_BYTES, fail)
}

export function decodeDeltaMessage(bytes: Uint8Array): DeltaMessage {
  return decodeChecked(bytes, MAX_DELTA_MESSAGE_BYTES, check, fail)
}

/**
 * The message announcing an event: the block inline only when the caller passes it (a public
 * document) and it is small enough; otherwise by CID, fetched with `want` by readers.
 */
export function eventAnnouncement(log: string, cid: CID, bytes: Uint8Array | null): DeltaMessage {
  return {
    v: 1,
    type: 'event',
    log,
    cid,
    block: bytes != null && bytes.length <= MAX_INLINE_EVENT_BYTES ? bytes : null
  }
}
