/**
 * `/cyberspace/swim/1.0.0` messages (spec in README.md beside this file): SWIM failure detection
 * between members. One request and one answer at a time on a stream (`<id>` and `<id>/many`): `ping` → `ack` (a direct probe),
 * `ping-req` → `ack` or `nack` (ask a member to probe a target for you), `sync` → `sync` (push/pull
 * of the full view). Every message carries signed membership updates (`../membership/codec.ts`).
 *
 * @example
 * const bytes = encodeSwimMessage({ v: 1, type: 'ping', target: 'z6Mk…', updates: [] })
 * decodeSwimMessage(bytes) // throws InvalidSwimMessageError on anything else
 */
import { checkUpdates } from '../membership/codec.ts'
import { checkFields, decodeChecked, encodeChecked, ERROR_FIELDS, isPrincipalText } from '../wire.ts'
import type { PrincipalText, Update } from '../membership/codec.ts'
import type { ErrorAnswer } from '../wire.ts'

export const SWIM_PROTOCOL = '/cyberspace/swim/1.0.0'
/** Most updates piggybacked on a ping, ping-req, ack or nack. */
export const MAX_PIGGYBACK_UPDATES = 16
/** Most bytes of a ping, ping-req, ack, nack or error. */
export const MAX_PROBE_MESSAGE_BYTES = 128 * 1024
/** Most updates in a sync: an alive and one other update for each of up to 512 members. */
export const MAX_SYNC_UPDATES = 1024
/** Most bytes of any message (a sync). */
export const MAX_SWIM_MESSAGE_BYTES = 2 * 1024 * 1024
/** Bounds of the time a ping-req gives the helper to reach the target, in ms. */
export const MIN_INDIRECT_TIMEOUT = 20
export const MAX_INDIRECT_TIMEOUT = 10_000

export class InvalidSwimMessageError extends Error {
  static name = 'InvalidSwimMessageError'
  name = 'InvalidSwimMessageError'
}

/** A direct probe of `target` (the answerer's own principal), with piggybacked updates. */
export interface PingMessage {
  v: 1
  type: 'ping'
  target: PrincipalText
  updates: Update[]
}

/** Asks the answerer to ping `target` within `timeout` ms and say whether it answered. */
export interface PingReqMessage {
  v: 1
  type: 'ping-req'
  target: PrincipalText
  timeout: number
  updates: Update[]
}

/** The target answered (to a ping: the answerer is alive; to a ping-req: the target answered the helper). */
export interface AckMessage {
  v: 1
  type: 'ack'
  updates: Update[]
}

/** To a ping-req: the helper could not reach the target in time (the helper itself is healthy). */
export interface NackMessage {
  v: 1
  type: 'nack'
  updates: Update[]
}

/** The sender's whole view: each member's latest alive and its state update if not alive. */
export interface SyncMessage {
  v: 1
  type: 'sync'
  updates: Update[]
}

export type SwimRequest = PingMessage | PingReqMessage | SyncMessage
export type SwimAnswer = AckMessage | NackMessage | SyncMessage | ErrorAnswer
export type SwimMessage = SwimRequest | SwimAnswer

const FIELDS = {
  ping: 'target,type,updates,v',
  'ping-req': 'target,timeout,type,updates,v',
  ack: 'type,updates,v',
  nack: 'type,updates,v',
  sync: 'type,updates,v',
  error: ERROR_FIELDS
}

function fail(what: string): never {
  throw new InvalidSwimMessageError(what)
}

function check(msg: unknown): asserts msg is SwimMessage {
  const m = checkFields(msg, FIELDS, fail)
  if (m.type === 'error') return
  if (m.type === 'sync') {
    checkUpdates(m.updates, MAX_SYNC_UPDATES, fail)
    return
  }
  checkUpdates(m.updates, MAX_PIGGYBACK_UPDATES, fail)
  if (m.type === 'ping' || m.type === 'ping-req') {
    if (!isPrincipalText(m.target) || !m.target.startsWith('z')) fail('target is a principal id')
  }
  if (m.type === 'ping-req') {
    const t = m.timeout
    if (!Number.isInteger(t) || (t as number) < MIN_INDIRECT_TIMEOUT || (t as number) > MAX_INDIRECT_TIMEOUT) {
      fail(`timeout is an integer ${MIN_INDIRECT_TIMEOUT}-${MAX_INDIRECT_TIMEOUT} (ms)`)
    }
  }
}

/** A sync may be MAX_SWIM_MESSAGE_BYTES; anything else at most MAX_PROBE_MESSAGE_BYTES. */
function checkSized(bytes: number): (msg: unknown) => asserts msg is SwimMessage {
  return (msg: unknown): asserts msg is SwimMessage => {
    check(msg)
    if (msg.type !== 'sync' && bytes > MAX_PROBE_MESSAGE_BYTES) {
      fail(`a ${msg.type} message is at most ${MAX_PROBE_MESSAGE_BYTES} bytes`)
    }
  }
}

export function encodeSwimMessage(msg: SwimMessage): Uint8Array {
  const bytes = encodeChecked(msg, check, MAX_SWIM_MESSAGE_BYTES, fail)
  if (msg.type !== 'sync' && bytes.length > MAX_PROBE_MESSAGE_BYTES) {
    fail(`a ${msg.type} message is at most ${MAX_PROBE_MESSAGE_BYTES} bytes`)
  }
  return bytes
}

export function decodeSwimMessage(bytes: Uint8Array): SwimMessage {
  return decodeChecked(bytes, MAX_SWIM_MESSAGE_BYTES, checkSized(bytes?.length ?? 0), fail)
}
