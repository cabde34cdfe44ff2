/**
 * Signed membership updates and the membership gossip topic (spec in README.md beside this file).
 * An update says one thing about one member at one incarnation: `alive` (signed by the member:
 * its addresses, metadata and its chain to `(cyberspace member)`), `suspect` and `dead` (signed by
 * the accusing member, naming the accused and the incarnation accused), `left` (signed by the
 * leaver). Each is a dag-cbor map signed over `signedBytes(UPDATE_DOMAIN, dag-cbor without sig)`.
 *
 * @example
 * const bytes = encodeTopicMessage({ v: 1, type: 'updates', updates: [alive] })
 * decodeTopicMessage(bytes) // throws InvalidMembershipMessageError on anything else
 */
import { checkDomain } from '../signing.ts'
import { decodeChecked, encodeChecked, isBytes, isPrincipalText } from '../wire.ts'

/** A principal id (`z6Mk…`); the codec checks only its shape, the receiver decodes the key. */
export type PrincipalText = string

/** The domain every membership update is signed under. */
export const UPDATE_DOMAIN = 'cyberspace/membership/v1'
checkDomain(UPDATE_DOMAIN)

/** The gossipsub topic updates are published on; one cluster, one topic. */
export const MEMBERSHIP_TOPIC = '/cyberspace/membership/1'

/** Most addresses an alive update announces, and the longest one (characters). */
export const MAX_ADDRS = 16
export const MAX_ADDR_LENGTH = 256
/** Most metadata keys, and most characters of all keys and values together. */
export const MAX_META_KEYS = 16
export const MAX_META_CHARS = 1024
/** Most certificates in an alive update's chain, most bytes of one, and of all together. */
export const MAX_CHAIN_CERTS = 8
export const MAX_CHAIN_CERT_BYTES = 4096
export const MAX_CHAIN_BYTES = 8192
/** Most bytes of one encoded update. */
export const MAX_UPDATE_BYTES = 12 * 1024
/** Most updates in one topic message, and most bytes of it. */
export const MAX_TOPIC_UPDATES = 16
export const MAX_TOPIC_MESSAGE_BYTES = 64 * 1024

const META_KEY = /^[a-z0-9][a-z0-9._-]{0,31}$/

export class InvalidMembershipMessageError extends Error {
  static name = 'InvalidMembershipMessageError'
  name = 'InvalidMembershipMessageError'
}

/** The member says it is alive at `incarnation`, at these addresses, with this metadata. Signed by `member`. */
export interface AliveUpdate {
  v: 1
  state: 'alive'
  member: PrincipalText
  incarnation: number
  addrs: string[]
  meta: Record<string, string>
  /** Canonical `(signed-cert …)` S-expressions: the member's chain to `(cyberspace member)`, root first, then name certificates. */
  chain: Uint8Array[]
  sig: Uint8Array
}

/** `by` accuses `member` at `incarnation` (suspect: missed probes; dead: the suspicion ran out). Signed by `by`. */
export interface AccusationUpdate {
  v: 1
  state: 'suspect' | 'dead'
  member: PrincipalText
  incarnation: number
  by: PrincipalText
  sig: Uint8Array
}

/** The member leaves at `incarnation`. Signed by `member`. */
export interface LeftUpdate {
  v: 1
  state: 'left'
  member: PrincipalText
  incarnation: number
  sig: Uint8Array
}

export type Update = AliveUpdate | AccusationUpdate | LeftUpdate
export type UpdateState = Update['state']
/** An update before it is signed. */
export type UnsignedUpdate = DistributiveOmit<Update, 'sig'>
type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never

/** A message on the membership topic: updates all made by the publisher, with the publisher's own alive among them. */
export interface TopicMessage {
  v: 1
  type: 'updates'
  updates: Update[]
}

const UPDATE_FIELDS: Record<UpdateState, string> = {
  alive: 'addrs,chain,incarnation,member,meta,sig,state,v',
  suspect: 'by,incarnation,member,sig,state,v',
  dead: 'by,incarnation,member,sig,state,v',
  left: 'incarnation,member,sig,state,v'
}

/** Who must have signed an update: the accuser for suspect and dead, the member itself otherwise. */
export function updateSigner(update: Update | UnsignedUpdate): PrincipalText {
  return update.state === 'suspect' || update.state === 'dead' ? update.by : update.member
}

function failUpdate(what: string): never {
  throw new InvalidMembershipMessageError(what)
}
const fail = failUpdate

/** Throws InvalidMembershipMessageError unless `u` is exactly one well-formed update (signed unless `unsigned`). */
export function checkUpdate(
  u: unknown,
  unsigned = false,
  fail: (what: string) => never = failUpdate
): asserts u is Update {
  if (u == null || typeof u !== 'object' || Array.isArray(u)) fail('an update is a map')
  const m = u as Record<string, unknown>
  if (m.v !== 1) fail(`unsupported update version ${String(m.v)}`)
  if (typeof m.state !== 'string' || !Object.hasOwn(UPDATE_FIELDS, m.state)) {
    fail(`unknown update state ${String(m.state)}`)
  }
  const fields = UPDATE_FIELDS[m.state as UpdateState]
  const expected = unsigned ? fields.replace('sig,', '') : fields
  if (Object.keys(m).sort().join(',') !== expected) fail(`a ${m.state} update has exactly the fields ${expected}`)
  if (!isPrincipalText(m.member) || !m.member.startsWith('z')) fail('member is a principal id')
  if (!Number.isSafeInteger(m.incarnation) || (m.incarnation as number) < 0) {
    fail('incarnation is a non-negative safe integer')
  }
  if (!unsigned && !isBytes(m.sig, 64, 64)) fail('sig is 64 bytes')
  if (m.state === 'suspect' || m.state === 'dead') {
    if (!isPrincipalText(m.by) || !m.by.startsWith('z')) fail('by is a principal id')
    if (m.by === m.member) fail('a member cannot accuse itself')
  }
  if (m.state !== 'alive') return
  if (!Array.isArray(m.addrs) || m.addrs.length > MAX_ADDRS) fail(`addrs is a list of at most ${MAX_ADDRS}`)
  for (const a of m.addrs) {
    if (typeof a !== 'string' || a.length === 0 || a.length > MAX_ADDR_LENGTH || !a.startsWith('/')) {
      fail(`an address is a multiaddr string of 1-${MAX_ADDR_LENGTH} characters`)
    }
  }
  const meta = m.meta
  if (meta == null || typeof meta !== 'object' || Array.isArray(meta) || meta instanceof Uint8Array) {
    fail('meta is a map')
  }
  checkMeta(meta as Record<string, unknown>, fail)
  if (!Array.isArray(m.chain) || m.chain.length > MAX_CHAIN_CERTS) {
    fail(`chain is a list of at most ${MAX_CHAIN_CERTS} certificates`)
  }
  let total = 0
  for (const c of m.chain) {
    if (!isBytes(c, 1, MAX_CHAIN_CERT_BYTES)) fail(`a chain certificate is 1-${MAX_CHAIN_CERT_BYTES} bytes`)
    total += c.length
  }
  if (total > MAX_CHAIN_BYTES) fail(`a chain is at most ${MAX_CHAIN_BYTES} bytes`)
}

/** Throws through `failWith` unless `meta` is at most MAX_META_KEYS keys of [a-z0-9._-] with string values, MAX_META_CHARS in all. */
export function checkMeta(meta: Record<string, unknown>, failWith: (what: string) => never = fail): void {
  const keys = Object.keys(meta)
  if (keys.length > MAX_META_KEYS) failWith(`meta has at most ${MAX_META_KEYS} keys`)
  let chars = 0
  for (const k of keys) {
    if (!META_KEY.test(k)) failWith(`meta key ${JSON.stringify(k.slice(0, 40))} is 1-32 characters of a-z 0-9 . _ -`)
    const value = meta[k]
    if (typeof value !== 'string') failWith(`meta value of ${k} is a string`)
    chars += k.length + value.length
  }
  if (chars > MAX_META_CHARS) failWith(`meta keys and values are at most ${MAX_META_CHARS} characters in all`)
}

/** Checks a list of updates: at most `max`, each well formed. */
export function checkUpdates(list: unknown, max: number, failWith: (what: string) => never = fail): void {
  if (!Array.isArray(list) || list.length > max) failWith(`updates is a list of at most ${max}`)
  for (const u of list) checkUpdate(u, false, failWith)
}

function checkTopicMessage(msg: unknown): asserts msg is TopicMessage {
  if (msg == null || typeof msg !== 'object' || Array.isArray(msg)) fail('message is not a map')
  const m = msg as Record<string, unknown>
  if (m.v !== 1) fail(`unsupported message version ${String(m.v)}`)
  if (m.type !== 'updates') fail(`unknown message type ${String(m.type)}`)
  if (Object.keys(m).sort().join(',') !== 'type,updates,v')
    fail('an updates message has exactly the fields type,updates,v')
  checkUpdates(m.updates, MAX_TOPIC_UPDATES)
  if ((m.updates as unknown[]).length === 0) fail('an updates message holds at least one update')
}

export function encodeTopicMessage(msg: TopicMessage): Uint8Array {
  return encodeChecked(msg, checkTopicMessage, MAX_TOPIC_MESSAGE_BYTES, fail)
}

export function decodeTopicMessage(bytes: Uint8Array): TopicMessage {
  return decodeChecked(bytes, MAX_TOPIC_MESSAGE_BYTES, checkTopicMessage, fail)
}
