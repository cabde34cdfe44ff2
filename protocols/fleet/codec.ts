/**
 * Fleet heartbeats (spec in README.md beside this file): once per interval a member publishes ONE
 * message, signed by its node key, holding a row per agent it hosts — status, load factor, tasks
 * done and failed, mean latency — on the gossipsub topic `/cyberspace/fleet/1.0.0/<namespace>`.
 * Decoded with explicit limits (64 KiB, 256 rows); the signature covers
 * `signedBytes(HEARTBEAT_DOMAIN, dag-cbor of the message without sig)`.
 *
 * @example
 * const bytes = encodeHeartbeat({ v: 1, type: 'heartbeat', host, hlc: [1767000000000, 0], rows, sig })
 * decodeHeartbeat(bytes) // throws InvalidHeartbeatError on anything else
 * fleetTopic('default')  // '/cyberspace/fleet/1.0.0/default'
 */
import { isTimestamp } from '../log/codec.ts'
import { checkDomain } from '../signing.ts'
import { decodeChecked, encodeChecked, isBytes, isListOf, isPrincipalText } from '../wire.ts'
import type { Timestamp } from '../log/codec.ts'

/** The domain a heartbeat is signed under. */
/** Time between two heartbeats of a member, ms: the default, and the range a node accepts. Members should agree on it. */
export const DEFAULT_FLEET_INTERVAL = 30_000
export const MIN_FLEET_INTERVAL = 20
export const MAX_FLEET_INTERVAL = 3_600_000

export const HEARTBEAT_DOMAIN = 'cyberspace/fleet/v1'
checkDomain(HEARTBEAT_DOMAIN)

/** Topics are `FLEET_TOPIC_PREFIX + <namespace>`. */
export const FLEET_TOPIC_PREFIX = '/cyberspace/fleet/1.0.0/'
/** A namespace (normally one per cluster): 1-64 of a-z 0-9 . _ - starting with a letter or digit. */
export const NAMESPACE_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/
export const DEFAULT_NAMESPACE = 'default'

/** Most bytes of one encoded heartbeat, and most rows in it (agents one node hosts and reports). */
export const MAX_HEARTBEAT_BYTES = 64 * 1024
export const MAX_HEARTBEAT_ROWS = 256
/** An agent kind, as the agents service names kinds. */
export const KIND_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/
/** Largest load factor (1 = at capacity) and mean latency (ms) a row may carry. */
export const MAX_LOAD = 1_000_000
export const MAX_LATENCY_MS = 86_400_000

export const AGENT_LOAD_STATUSES = ['active', 'idle', 'overloaded', 'retiring'] as const
/** What an agent says it is doing: working, waiting for work, over its target load, or handing off to stop. */
export type AgentLoadStatus = (typeof AGENT_LOAD_STATUSES)[number]

export class InvalidHeartbeatError extends Error {
  static name = 'InvalidHeartbeatError'
  name = 'InvalidHeartbeatError'
}

/** One agent's line in its host's heartbeat. */
export interface HeartbeatRow {
  /** The agent's principal (`z6Mk…`). */
  agent: string
  kind: string
  status: AgentLoadStatus
  /** Load factor, ≥ 0 (1 = at its target capacity). */
  load: number
  /** Tasks completed and failed since the agent started (integers ≥ 0). */
  done: number
  failed: number
  /** Mean task latency in ms (≥ 0). */
  latency: number
  /** When these figures were taken; at most the message's hlc. */
  hlc: Timestamp
}

export interface Heartbeat {
  v: 1
  type: 'heartbeat'
  /** The publishing node's principal: it must be the gossipsub `from`, and it signs. */
  host: string
  hlc: Timestamp
  /** Every agent the host reports, each agent at most once. */
  rows: HeartbeatRow[]
  sig: Uint8Array
}

export type UnsignedHeartbeat = Omit<Heartbeat, 'sig'>

const HEARTBEAT_FIELDS = 'hlc,host,rows,sig,type,v'
const ROW_FIELDS = 'agent,done,failed,hlc,kind,latency,load,status'

function fail(what: string): never {
  throw new InvalidHeartbeatError(what)
}

export function fleetTopic(namespace: string = DEFAULT_NAMESPACE): string {
  if (typeof namespace !== 'string' || !NAMESPACE_PATTERN.test(namespace)) {
    fail(`namespace ${JSON.stringify(String(namespace).slice(0, 80))}: 1-64 characters of a-z 0-9 . _ -`)
  }
  return FLEET_TOPIC_PREFIX + namespace
}

const isPrincipal = (x: unknown): x is string => isPrincipalText(x) && x.startsWith('z')
const isFiniteIn = (x: unknown, max: number): x is number =>
  typeof x === 'number' && Number.isFinite(x) && x >= 0 && x <= max
const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0

const laterThan = (a: Timestamp, b: Timestamp): boolean => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1])

/** Throws InvalidHeartbeatError unless `r` is one well-formed row no later than `at`. */
export function checkHeartbeatRow(r: unknown, at?: Timestamp): asserts r is HeartbeatRow {
  if (r == null || typeof r !== 'object' || Array.isArray(r)) fail('a row is a map')
  const m = r as Record<string, unknown>
  if (Object.keys(m).sort().join(',') !== ROW_FIELDS) fail(`a row has exactly the fields ${ROW_FIELDS}`)
  if (!isPrincipal(m.agent)) fail('agent is a principal id')
  if (typeof m.kind !== 'string' || !KIND_PATTERN.test(m.kind)) fail('kind is 1-64 of a-z 0-9 . _ -')
  if (typeof m.status !== 'string' || !(AGENT_LOAD_STATUSES as readonly string[]).includes(m.status)) {
    fail(`status is one of ${AGENT_LOAD_STATUSES.join(', ')}`)
  }
  if (!isFiniteIn(m.load, MAX_LOAD)) fail(`load is a number from 0 to ${MAX_LOAD}`)
  if (!isCount(m.done)) fail('done is a non-negative integer')
  if (!isCount(m.failed)) fail('failed is a non-negative integer')
  if (!isFiniteIn(m.latency, MAX_LATENCY_MS)) fail(`latency is a number of ms from 0 to ${MAX_LATENCY_MS}`)
  if (!isTimestamp(m.hlc)) fail('a row hlc is [wall, logical]')
  if (at != null && laterThan(m.hlc, at)) fail("a row's hlc is at most its heartbeat's")
}

/** Throws InvalidHeartbeatError unless `msg` is a well-formed heartbeat (signed unless `unsigned`). */
export function checkHeartbeat(msg: unknown, unsigned = false): asserts msg is Heartbeat {
  if (msg == null || typeof msg !== 'object' || Array.isArray(msg)) fail('message is not a map')
  const m = msg as Record<string, unknown>
  if (m.v !== 1) fail(`unsupported heartbeat version ${String(m.v)}`)
  if (m.type !== 'heartbeat') fail(`unknown message type ${String(m.type)}`)
  const expected = unsigned ? HEARTBEAT_FIELDS.replace('sig,', '') : HEARTBEAT_FIELDS
  if (Object.keys(m).sort().join(',') !== expected) fail(`a heartbeat has exactly the fields ${expected}`)
  if (!isPrincipal(m.host)) fail('host is a principal id')
  if (!isTimestamp(m.hlc)) fail('hlc is [wall, logical]')
  if (!unsigned && !isBytes(m.sig, 64, 64)) fail('sig is 64 bytes')
  if (!isListOf(m.rows, 0, MAX_HEARTBEAT_ROWS, () => true)) fail(`rows is a list of at most ${MAX_HEARTBEAT_ROWS}`)
  const agents = new Set<string>()
  for (const row of m.rows) {
    checkHeartbeatRow(row, m.hlc)
    if (agents.has(row.agent)) fail(`agent ${row.agent} has two rows`)
    agents.add(row.agent)
  }
}

function checkSignedHeartbeat(msg: unknown): asserts msg is Heartbeat {
  checkHeartbeat(msg)
}

export function encodeHeartbeat(msg: Heartbeat): Uint8Array {
  return encodeChecked(msg, checkSignedHeartbeat, MAX_HEARTBEAT_BYTES, fail)
}

/** Decodes at most MAX_HEARTBEAT_BYTES of dag-cbor; throws InvalidHeartbeatError on anything but one heartbeat. */
export function decodeHeartbeat(bytes: Uint8Array): Heartbeat {
  return decodeChecked(bytes, MAX_HEARTBEAT_BYTES, checkSignedHeartbeat, fail)
}
