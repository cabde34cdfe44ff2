/**
 * The swarm's wire format (see README.md beside this file): OFFER, NEED, REQUEST, STATE_DELTA and
 * HANDOFF messages, each a dag-cbor map signed by the sending agent, published on the gossipsub
 * topic `/cyberspace/swarm/1.0.0/<namespace>` or, when it names a recipient (`to`), carried by the
 * mailbox as a message of type `swarm.<type>`. Decoding checks the size first, then dag-cbor, then
 * every field, the body of its type and the nesting depth; nothing here verifies signatures or
 * authority (src/work/swarm.ts does, in the order the README gives).
 *
 * @example
 * const bytes = encodeSwarmMessage(message)                    // InvalidSwarmMessageError naming the field
 * const message = decodeSwarmMessage(bytes)                    // the same on anything malformed or too large
 * signedBytes(SWARM_SIGNING_DOMAIN, swarmSigningBody(message)) // what `message.sig` covers
 * swarmSubjects(message)                                       // what `(cyberspace (swarm <type> <subject>))` must grant
 */
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { isTimestamp } from '../log/codec.ts'
import { BOARD_PATTERN, ITEM_ID_PATTERN, SKILL_PATTERN } from '../work/codec.ts'
import { isBytes, unsignedBody } from '../wire.ts'

export const SWARM_VERSION = 1
/** Prefix of the bytes a message's signature (by its sending agent) covers. */
export const SWARM_SIGNING_DOMAIN = 'cyberspace/swarm/v1'
/** The topic of one namespace is this prefix followed by the namespace. */
export const SWARM_TOPIC_PREFIX = '/cyberspace/swarm/1.0.0/'
export const DEFAULT_SWARM_NAMESPACE = 'default'
/** The mailbox message type of a directed message is this prefix followed by its type. */
export const SWARM_MAILBOX_TYPE_PREFIX = 'swarm.'

export const SWARM_TYPES = ['offer', 'need', 'request', 'state-delta', 'handoff'] as const
export type SwarmType = (typeof SWARM_TYPES)[number]
export const URGENCIES = ['low', 'normal', 'high', 'critical'] as const
export type Urgency = (typeof URGENCIES)[number]

/** Largest encoded message. */
export const MAX_SWARM_MESSAGE_BYTES = 128 * 1024
/** Deepest nesting of maps and lists in a message (the message itself is level 1). */
export const MAX_SWARM_DEPTH = 16
/** Longest life of a message: from its HLC's wall time to `expires`. */
export const MAX_SWARM_TTL_MS = 10 * 60_000
export const MAX_OFFER_SKILLS = 16
export const MAX_LOAD = 1000
export const MAX_CAPACITY = 1_000_000
export const MAX_DESCRIPTION_LENGTH = 4000
export const MAX_DELTA_FIELDS = 64
/** Largest encoded value of one STATE_DELTA field. */
export const MAX_FIELD_VALUE_BYTES = 8 * 1024
/** Largest encoded `state` of a HANDOFF. */
export const MAX_HANDOFF_STATE_BYTES = 64 * 1024

/** A message id: 16 random bytes, lowercase hex. */
export const SWARM_ID_PATTERN = /^[0-9a-f]{32}$/
/** A skill: what OFFER and NEED name, and a subject of their authority tags. */
export { SKILL_PATTERN }
/** The entity a STATE_DELTA is about. */
export const ENTITY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/
/** A field name of a STATE_DELTA. */
export const FIELD_NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._:-]{0,63}$/
/** A namespace: the last part of the topic. */
export const NAMESPACE_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/
/** A principal id: `z` and base58btc (the service checks the key itself). */
const PRINCIPAL_PATTERN = /^z[1-9A-HJ-NP-Za-km-z]{1,63}$/

/** A message, or one of its fields, that is malformed or breaks a limit; `field` names it (a dotted path). */
export class InvalidSwarmMessageError extends Error {
  static name = 'InvalidSwarmMessageError'
  name = 'InvalidSwarmMessageError'
  readonly field: string
  constructor(field: string, message: string) {
    super(`${field}: ${message}`)
    this.field = field
  }
}

export interface OfferBody {
  /** 1-16 skills the sender can help with. */
  skills: string[]
  /** Its load factor: 0 idle, 1 at capacity, more overloaded; at most 1000. */
  load: number
  /** How many more tasks it would take, if it says. */
  capacity?: number
}

export interface NeedBody {
  skill: string
  urgency: Urgency
  description?: string
  /** The board and item the need is about, if any (`item` only with `board`). */
  board?: string
  item?: string
}

export interface RequestBody {
  /** The board and the item the sender created or assigned there. */
  board: string
  item: string
  skill?: string
  description?: string
}

export interface StateDeltaBody {
  entity: string
  /** 1-64 fields, each a dag-cbor value of at most 8 KiB encoded; merged per field, last writer (by HLC) wins. */
  fields: Record<string, unknown>
}

export interface HandoffBody {
  board: string
  item: string
  /** The work's state so far: a dag-cbor value of at most 64 KiB encoded. */
  state?: unknown
}

export interface SwarmBodies {
  offer: OfferBody
  need: NeedBody
  request: RequestBody
  'state-delta': StateDeltaBody
  handoff: HandoffBody
}

interface SwarmFields {
  v: typeof SWARM_VERSION
  /** 16 random bytes, hex: unique among the sender's messages. */
  id: string
  /** The sending agent's principal, which signs the message. */
  from: string
  /** The one agent a directed message is for (it travels by mailbox, never on the topic). */
  to?: string
  /** The sender's hybrid logical clock when it made the message: `[wall ms, logical]`. */
  hlc: readonly [number, number]
  /** ms since the epoch: after it, no node delivers the message; at most 10 min after `hlc[0]`. */
  expires: number
  sig: Uint8Array
}

export type SwarmMessageOf<T extends SwarmType> = SwarmFields & { type: T; body: SwarmBodies[T] }
export type SwarmMessage = { [T in SwarmType]: SwarmMessageOf<T> }[SwarmType]
export type UnsignedSwarmMessage = { [T in SwarmType]: Omit<SwarmMessageOf<T>, 'sig'> }[SwarmType]

const MESSAGE_FIELDS = ['body', 'expires', 'from', 'hlc', 'id', 'sig', 'type', 'v']
const BODY_FIELDS: Record<SwarmType, { required: string[]; optional: string[] }> = {
  offer: { required: ['load', 'skills'], optional: ['capacity'] },
  need: { required: ['skill', 'urgency'], optional: ['board', 'description', 'item'] },
  request: { required: ['board', 'item'], optional: ['description', 'skill'] },
  'state-delta': { required: ['entity', 'fields'], optional: [] },
  handoff: { required: ['board', 'item'], optional: ['state'] }
}

const fail = (field: string, what: string): never => {
  throw new InvalidSwarmMessageError(field, what)
}

function isMap(x: unknown): x is Record<string, unknown> {
  return x != null && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Uint8Array) && CID.asCID(x) == null
}

/** Exactly the required keys and any of the optional ones. */
function checkKeys(x: Record<string, unknown>, required: string[], optional: string[], field: string): void {
  for (const key of required) if (!Object.hasOwn(x, key)) fail(field, `lacks ${key}`)
  const allowed = new Set([...required, ...optional])
  for (const key of Object.keys(x)) if (!allowed.has(key)) fail(field, `has an unknown key ${key.slice(0, 64)}`)
}

function checkText(x: unknown, pattern: RegExp, field: string, what: string): void {
  if (typeof x !== 'string' || !pattern.test(x)) fail(field, what)
}

function checkDescription(x: unknown, field: string): void {
  if (typeof x !== 'string' || x.length > MAX_DESCRIPTION_LENGTH)
    fail(field, `is text of at most ${MAX_DESCRIPTION_LENGTH} characters`)
}

/** Throws unless `value` is a dag-cbor value of at most `max` bytes encoded. */
function checkValue(value: unknown, max: number, field: string): void {
  let size: number
  try {
    size = dagCbor.encode(value).length
  } catch (err) {
    return fail(field, `is not a dag-cbor value: ${(err as Error).message}`)
  }
  if (size > max) fail(field, `is ${size} bytes encoded, at most ${max}`)
}

/** Throws unless maps and lists in `x` nest at most MAX_SWARM_DEPTH deep (x itself is level 1). */
function checkDepth(x: unknown): void {
  const stack: Array<{ value: unknown; depth: number }> = [{ value: x, depth: 1 }]
  let visited = 0
  while (stack.length > 0) {
    const { value, depth } = stack.pop() as { value: unknown; depth: number }
    if (++visited > MAX_SWARM_MESSAGE_BYTES) fail('message', 'has more items than its size allows')
    if (value == null || typeof value !== 'object' || value instanceof Uint8Array || CID.asCID(value) != null) continue
    if (depth > MAX_SWARM_DEPTH) fail('message', `is nested more than ${MAX_SWARM_DEPTH} deep`)
    for (const item of Array.isArray(value) ? value : Object.values(value))
      stack.push({ value: item, depth: depth + 1 })
  }
}

function checkBody(type: SwarmType, x: unknown): void {
  if (!isMap(x)) return fail('body', 'is a map')
  const { required, optional } = BODY_FIELDS[type]
  checkKeys(x, required, optional, 'body')
  switch (type) {
    case 'offer': {
      const skills = x.skills
      if (!Array.isArray(skills) || skills.length < 1 || skills.length > MAX_OFFER_SKILLS)
        fail('body.skills', `is a list of 1-${MAX_OFFER_SKILLS} skills`)
      ;(skills as unknown[]).forEach((s, i) => {
        checkText(s, SKILL_PATTERN, `body.skills.${i}`, 'is a skill: 1-64 of A-Z a-z 0-9 . _ : / -')
      })
      if (new Set(skills as string[]).size !== (skills as string[]).length) fail('body.skills', 'lists a skill twice')
      if (typeof x.load !== 'number' || !Number.isFinite(x.load) || x.load < 0 || x.load > MAX_LOAD)
        fail('body.load', `is a number from 0 to ${MAX_LOAD}`)
      if (
        x.capacity !== undefined &&
        (!Number.isSafeInteger(x.capacity) || (x.capacity as number) < 0 || (x.capacity as number) > MAX_CAPACITY)
      )
        fail('body.capacity', `is an integer from 0 to ${MAX_CAPACITY}`)
      return
    }
    case 'need':
      checkText(x.skill, SKILL_PATTERN, 'body.skill', 'is a skill: 1-64 of A-Z a-z 0-9 . _ : / -')
      if (!(URGENCIES as readonly unknown[]).includes(x.urgency))
        fail('body.urgency', `is one of ${URGENCIES.join(' ')}`)
      if (x.description !== undefined) checkDescription(x.description, 'body.description')
      if (x.board !== undefined) checkText(x.board, BOARD_PATTERN, 'body.board', 'is a board name')
      if (x.item !== undefined) {
        checkText(x.item, ITEM_ID_PATTERN, 'body.item', 'is an item id')
        if (x.board === undefined) fail('body.item', 'comes with a board')
      }
      return
    case 'request':
      checkText(x.board, BOARD_PATTERN, 'body.board', 'is a board name')
      checkText(x.item, ITEM_ID_PATTERN, 'body.item', 'is an item id')
      if (x.skill !== undefined) checkText(x.skill, SKILL_PATTERN, 'body.skill', 'is a skill')
      if (x.description !== undefined) checkDescription(x.description, 'body.description')
      return
    case 'state-delta': {
      checkText(x.entity, ENTITY_PATTERN, 'body.entity', 'is 1-128 of A-Z a-z 0-9 . _ : / -')
      const fields = x.fields
      if (!isMap(fields)) return fail('body.fields', 'is a map')
      const names = Object.keys(fields)
      if (names.length < 1 || names.length > MAX_DELTA_FIELDS)
        fail('body.fields', `has 1-${MAX_DELTA_FIELDS} fields, not ${names.length}`)
      for (const name of names) {
        const at = `body.fields.${name.slice(0, 64)}`
        if (!FIELD_NAME_PATTERN.test(name)) fail(at, 'is a field name: 1-64 of A-Z a-z 0-9 _ . : -')
        checkValue(fields[name], MAX_FIELD_VALUE_BYTES, at)
      }
      return
    }
    case 'handoff':
      checkText(x.board, BOARD_PATTERN, 'body.board', 'is a board name')
      checkText(x.item, ITEM_ID_PATTERN, 'body.item', 'is an item id')
      if (x.state !== undefined) checkValue(x.state, MAX_HANDOFF_STATE_BYTES, 'body.state')
  }
}

/** Checks every field of a decoded message (signature not verified). */
export function checkSwarmMessage(x: unknown): asserts x is SwarmMessage {
  if (!isMap(x)) return fail('message', 'is a map')
  checkKeys(x, MESSAGE_FIELDS, ['to'], 'message')
  if (x.v !== SWARM_VERSION) fail('v', `is ${SWARM_VERSION}`)
  if (!(SWARM_TYPES as readonly unknown[]).includes(x.type)) fail('type', `is one of ${SWARM_TYPES.join(' ')}`)
  checkText(x.id, SWARM_ID_PATTERN, 'id', 'is 16 bytes in lowercase hex')
  checkText(x.from, PRINCIPAL_PATTERN, 'from', 'is a principal id')
  if (x.to !== undefined) {
    checkText(x.to, PRINCIPAL_PATTERN, 'to', 'is a principal id')
    if (x.to === x.from) fail('to', 'names another agent than the sender')
  }
  if (!isTimestamp(x.hlc)) fail('hlc', 'is [wall ms, logical]: non-negative integers')
  const wall = (x.hlc as [number, number])[0]
  if (!Number.isSafeInteger(x.expires) || (x.expires as number) <= wall)
    fail('expires', 'is an integer of ms after the wall time of hlc')
  if ((x.expires as number) - wall > MAX_SWARM_TTL_MS)
    fail('expires', `is at most ${MAX_SWARM_TTL_MS} ms after the wall time of hlc`)
  if (!isBytes(x.sig, 64, 64)) fail('sig', 'is 64 bytes (Ed25519)')
  checkDepth(x)
  checkBody(x.type as SwarmType, x.body)
}

/** Encodes a message after checking every field; InvalidSwarmMessageError over MAX_SWARM_MESSAGE_BYTES. */
export function encodeSwarmMessage(message: SwarmMessage): Uint8Array {
  checkSwarmMessage(message)
  const bytes = dagCbor.encode(message)
  if (bytes.length > MAX_SWARM_MESSAGE_BYTES)
    fail('message', `is ${bytes.length} bytes encoded, at most ${MAX_SWARM_MESSAGE_BYTES}`)
  return bytes
}

/** Decodes untrusted bytes: the size first, then dag-cbor, then every field (InvalidSwarmMessageError). */
export function decodeSwarmMessage(bytes: Uint8Array): SwarmMessage {
  if (!(bytes instanceof Uint8Array)) return fail('message', 'is bytes')
  if (bytes.length > MAX_SWARM_MESSAGE_BYTES)
    return fail('message', `is ${bytes.length} bytes, at most ${MAX_SWARM_MESSAGE_BYTES}`)
  let decoded: unknown
  try {
    decoded = dagCbor.decode(bytes)
  } catch (err) {
    return fail('message', `is not dag-cbor: ${(err as Error).message.slice(0, 200)}`)
  }
  checkSwarmMessage(decoded)
  return decoded
}

/** What a message's signature covers after its domain: dag-cbor of the message without `sig`. */
export function swarmSigningBody(message: SwarmMessage | UnsignedSwarmMessage): Uint8Array {
  return 'sig' in message ? unsignedBody(message) : dagCbor.encode(message)
}

/** Checks an unsigned message a sender is about to sign (the same rules as decoding, with a placeholder signature). */
export function checkUnsignedSwarmMessage(message: UnsignedSwarmMessage): void {
  const placeholder = { ...message, sig: new Uint8Array(64) }
  checkSwarmMessage(placeholder)
  const size = dagCbor.encode(placeholder).length
  if (size > MAX_SWARM_MESSAGE_BYTES) fail('message', `is ${size} bytes encoded, at most ${MAX_SWARM_MESSAGE_BYTES}`)
}

/** The subjects `(cyberspace (swarm <type> <subject>))` must grant for this message, one tag each. */
export function swarmSubjects(message: SwarmMessage | UnsignedSwarmMessage): string[] {
  switch (message.type) {
    case 'offer':
      return [...message.body.skills]
    case 'need':
      return [message.body.skill]
    case 'request':
      return [message.body.board]
    case 'state-delta':
      return [message.body.entity]
    case 'handoff':
      return [message.body.board]
  }
}

/** The gossipsub topic of a namespace. */
export function swarmTopic(namespace: string = DEFAULT_SWARM_NAMESPACE): string {
  if (typeof namespace !== 'string' || !NAMESPACE_PATTERN.test(namespace))
    throw new InvalidSwarmMessageError('namespace', 'is 1-64 of a-z 0-9 . _ - (starting with a letter or digit)')
  return `${SWARM_TOPIC_PREFIX}${namespace}`
}

/** The mailbox message type a directed message of `type` travels as. */
export function swarmMailboxType(type: SwarmType): string {
  return `${SWARM_MAILBOX_TYPE_PREFIX}${type}`
}

/** The swarm type of a mailbox message type (`swarm.offer` → `offer`), or undefined when it is not one. */
export function swarmTypeOfMailboxType(mailboxType: string): SwarmType | undefined {
  if (typeof mailboxType !== 'string' || !mailboxType.startsWith(SWARM_MAILBOX_TYPE_PREFIX)) return undefined
  const type = mailboxType.slice(SWARM_MAILBOX_TYPE_PREFIX.length)
  return (SWARM_TYPES as readonly string[]).includes(type) ? (type as SwarmType) : undefined
}
