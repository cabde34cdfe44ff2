/**
 * The agent registry's wire format (see README.md beside this file): agent records (an A2A v1.0
 * agent card, the agent principal, its host, a sequence number and an expiry, signed by the
 * agent's key) stored in the DHT under `/cyberspace-agent/<key hash>`, the provider keys that
 * index them by skill, and the messages of `/cyberspace/registry/1.0.0`.
 *
 * @example
 * const key = agentKey('z6Mk…')                       // '/cyberspace-agent/<64 hex>'
 * const bytes = encodeAgentRecord(record)             // AgentCardTooLargeError over 16 KiB
 * const back = decodeAgentRecord(bytes)               // InvalidAgentRecordError on anything else
 * skillCid('code-review')                             // the provider key of a skill id or tag
 */
import * as dagCbor from '@ipld/dag-cbor'
import { sha256 } from '@noble/hashes/sha2.js'
import { base16 } from 'multiformats/bases/base16'
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { signedBytes } from '../signing.ts'
import { checkFields, decodeChecked, encodeChecked, ERROR_FIELDS, isBytes, isText } from '../wire.ts'
import {
  AgentCardTooLargeError,
  InvalidAgentCardError,
  InvalidAgentRecordError,
  InvalidRegistryMessageError
} from './errors.ts'
import type { ErrorAnswer } from '../wire.ts'

/** The DHT namespace (the first key segment) of agent records: their validator and selector key. */
export const AGENT_NAMESPACE = 'cyberspace-agent'
/** Prefix of the bytes an agent record's signature covers. */
export const AGENT_SIGNING_DOMAIN = 'cyberspace/agent/v1'
/** Prefix of the bytes the host's countersignature covers: the host agrees to host the agent. */
export const AGENT_HOST_SIGNING_DOMAIN = 'cyberspace/agent-host/v1'
/** Prefix of the bytes whose hash is a skill's provider key. */
export const SKILL_KEY_DOMAIN = 'cyberspace/agent-skill/v1'
export const AGENT_RECORD_VERSION = 1
export const REGISTRY_PROTOCOL = '/cyberspace/registry/1.0.0'
/** The A2A protocol binding of an agent reached through its host peer over libp2p. */
export const LIBP2P_BINDING = 'urn:cyberspace:a2a:libp2p'
/** The A2A protocol version the libp2p binding exposes. */
export const A2A_PROTOCOL_VERSION = '1.0'

/** The whole encoded record, card included. */
export const MAX_AGENT_RECORD_BYTES = 16 * 1024
export const MAX_ADDRS = 8
export const MAX_ADDR_LENGTH = 256
/** Longest lifetime a record may claim, and how far a publisher's clock may run ahead. */
export const MAX_RECORD_TTL_MS = 7 * 24 * 3_600_000
export const CLOCK_SKEW_MS = 5 * 60_000
/** Card limits: counts and lengths (UTF-16 code units). */
export const CARD_LIMITS = {
  name: 128,
  description: 2048,
  version: 64,
  url: 512,
  organization: 128,
  mode: 128,
  modes: 16,
  interfaces: 8,
  skills: 32,
  skillId: 64,
  skillName: 128,
  skillDescription: 1024,
  tags: 16,
  example: 512,
  examples: 8,
  /** Distinct skill keys (ids and tags, lowercased) in one card: how many provider records it needs. */
  skillKeys: 32,
  extensions: 8,
  extensionParams: 16,
  paramKey: 64,
  paramValue: 256
} as const
/** Most records in one `records` answer and certificates in one `certs` answer. */
export const MAX_LIST_RECORDS = 16
export const MAX_NAME_CERTS = 16
export const MAX_NAME_CERT_BYTES = 16 * 1024
export const MAX_NAME_PATH = 16
export const MAX_REGISTRY_MESSAGE_BYTES = 288 * 1024

const PEER_ID_PATTERN = /^[1-9A-HJ-NP-Za-km-z]{1,128}$/
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** Any C0 control character or DEL. */
const CONTROL = /[\u0000-\u001f\u007f]/
/** Control characters other than tab, line feed and carriage return. */
const CONTROL_BUT_BREAKS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/
/** The 2-byte multicodec prefix of an Ed25519 public key. */
const ED25519_PUB = [0xed, 0x01]

export interface AgentInterface {
  url: string
  protocolBinding: string
  protocolVersion: string
  tenant?: string
}

export interface AgentProvider {
  url: string
  organization: string
}

export interface AgentCapabilities {
  streaming?: boolean
  pushNotifications?: boolean
  extendedAgentCard?: boolean
  /** A2A extensions the agent supports, by URI; `params` here are strings only. */
  extensions?: AgentExtension[]
}

/** An A2A agent extension: what it is (a URI) and its parameters. */
export interface AgentExtension {
  uri: string
  description?: string
  required?: boolean
  params?: Record<string, string>
}

export interface AgentSkill {
  id: string
  name: string
  description: string
  tags: string[]
  examples?: string[]
  inputModes?: string[]
  outputModes?: string[]
}

/** The A2A v1.0 agent card fields a record carries (JSON names of the A2A spec). */
export interface AgentCard {
  name: string
  description: string
  version: string
  supportedInterfaces: AgentInterface[]
  provider?: AgentProvider
  documentationUrl?: string
  iconUrl?: string
  capabilities: AgentCapabilities
  defaultInputModes: string[]
  defaultOutputModes: string[]
  skills: AgentSkill[]
}

export interface AgentRecord {
  v: typeof AGENT_RECORD_VERSION
  /** The agent principal (`z6Mk…`): the key that signs the record. */
  agent: string
  /** The peer id of the node hosting the agent. */
  host: string
  /** Where the host listens (multiaddr strings), at most MAX_ADDRS. */
  addrs: string[]
  /** Ordering among records of one agent: the highest valid one wins. */
  seq: number
  /** Milliseconds since the epoch after which the record is void. */
  expires: number
  card: AgentCard
  /** The agent's signature over `AGENT_SIGNING_DOMAIN || 0 || dag-cbor({ v, key, agent, host, addrs, seq, expires, card })`. */
  sig: Uint8Array
  /** The host's signature over `AGENT_HOST_SIGNING_DOMAIN || 0 ||` the same dag-cbor: it agrees to host the agent. */
  hostSig: Uint8Array
}

export type UnsignedAgentRecord = Omit<AgentRecord, 'sig' | 'hostSig'>

const failCard = (what: string): never => {
  throw new InvalidAgentCardError(what)
}
const failRecord = (what: string): never => {
  throw new InvalidAgentRecordError(what)
}

function isMap(x: unknown): x is Record<string, unknown> {
  return x != null && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Uint8Array) && !CID.asCID(x)
}

/** Exactly the `required` fields, and any of `optional`, each once. */
function checkKeys(x: Record<string, unknown>, required: string[], optional: string[], what: string): void {
  for (const k of required) if (!Object.hasOwn(x, k)) failCard(`${what} lacks ${k}`)
  for (const k of Object.keys(x)) {
    if (!required.includes(k) && !optional.includes(k))
      failCard(`${what} has an unknown field ${JSON.stringify(k.slice(0, 64))}`)
  }
}

function text(x: unknown, max: number, what: string, opts: { lines?: boolean; empty?: boolean } = {}): string {
  if (typeof x !== 'string' || x.length > max || (x.length === 0 && opts.empty !== true))
    failCard(`${what} must be a string of ${opts.empty === true ? 0 : 1}-${max} characters`)
  if ((opts.lines === true ? CONTROL_BUT_BREAKS : CONTROL).test(x as string))
    failCard(`${what} contains control characters`)
  return x as string
}

function list<T>(x: unknown, max: number, what: string, item: (v: unknown, what: string) => T): T[] {
  if (!Array.isArray(x) || x.length > max) failCard(`${what} must be a list of at most ${max}`)
  return (x as unknown[]).map((v, i) => item(v, `${what}[${i}]`))
}

function bool(x: unknown, what: string): boolean {
  if (typeof x !== 'boolean') failCard(`${what} must be true or false`)
  return x as boolean
}

const mode = (v: unknown, what: string): string => text(v, CARD_LIMITS.mode, what)

function checkInterface(x: unknown, what: string): AgentInterface {
  if (!isMap(x)) return failCard(`${what} must be a map`)
  checkKeys(x, ['url', 'protocolBinding', 'protocolVersion'], ['tenant'], what)
  const out: AgentInterface = {
    url: text(x.url, CARD_LIMITS.url, `${what}.url`),
    protocolBinding: text(x.protocolBinding, CARD_LIMITS.url, `${what}.protocolBinding`),
    protocolVersion: text(x.protocolVersion, CARD_LIMITS.version, `${what}.protocolVersion`)
  }
  if (x.tenant !== undefined) out.tenant = text(x.tenant, CARD_LIMITS.name, `${what}.tenant`)
  return out
}

function checkSkill(x: unknown, what: string): AgentSkill {
  if (!isMap(x)) return failCard(`${what} must be a map`)
  checkKeys(x, ['id', 'name', 'description', 'tags'], ['examples', 'inputModes', 'outputModes'], what)
  const out: AgentSkill = {
    id: text(x.id, CARD_LIMITS.skillId, `${what}.id`),
    name: text(x.name, CARD_LIMITS.skillName, `${what}.name`),
    description: text(x.description, CARD_LIMITS.skillDescription, `${what}.description`, { lines: true }),
    tags: list(x.tags, CARD_LIMITS.tags, `${what}.tags`, (v, w) => text(v, CARD_LIMITS.skillId, w))
  }
  if (x.examples !== undefined)
    out.examples = list(x.examples, CARD_LIMITS.examples, `${what}.examples`, (v, w) =>
      text(v, CARD_LIMITS.example, w, { lines: true })
    )
  if (x.inputModes !== undefined) out.inputModes = list(x.inputModes, CARD_LIMITS.modes, `${what}.inputModes`, mode)
  if (x.outputModes !== undefined) out.outputModes = list(x.outputModes, CARD_LIMITS.modes, `${what}.outputModes`, mode)
  return out
}

function checkExtension(x: unknown, what: string): AgentExtension {
  if (!isMap(x)) return failCard(`${what} must be a map`)
  checkKeys(x, ['uri'], ['description', 'required', 'params'], what)
  const out: AgentExtension = { uri: text(x.uri, CARD_LIMITS.url, `${what}.uri`) }
  if (x.description !== undefined)
    out.description = text(x.description, CARD_LIMITS.skillDescription, `${what}.description`, { lines: true })
  if (x.required !== undefined) out.required = bool(x.required, `${what}.required`)
  if (x.params !== undefined) {
    const params = x.params
    if (!isMap(params)) return failCard(`${what}.params must be a map`)
    const keys = Object.keys(params)
    if (keys.length > CARD_LIMITS.extensionParams)
      failCard(`${what}.params has at most ${CARD_LIMITS.extensionParams} entries`)
    out.params = {}
    for (const k of keys.sort()) {
      text(k, CARD_LIMITS.paramKey, `${what}.params key`)
      out.params[k] = text(params[k], CARD_LIMITS.paramValue, `${what}.params.${k}`, { empty: true })
    }
  }
  return out
}

/**
 * Checks an agent card against the card rules and returns a clean copy: exactly the known fields,
 * optional ones only when present, every count and length within CARD_LIMITS. Throws
 * InvalidAgentCardError naming the first bad field.
 */
export function checkAgentCard(x: unknown): AgentCard {
  if (!isMap(x)) return failCard('an agent card must be a map')
  checkKeys(
    x,
    [
      'name',
      'description',
      'version',
      'supportedInterfaces',
      'capabilities',
      'defaultInputModes',
      'defaultOutputModes',
      'skills'
    ],
    ['provider', 'documentationUrl', 'iconUrl'],
    'the card'
  )
  const caps = x.capabilities
  if (!isMap(caps)) return failCard('capabilities must be a map')
  checkKeys(caps, [], ['streaming', 'pushNotifications', 'extendedAgentCard', 'extensions'], 'capabilities')
  const capabilities: AgentCapabilities = {}
  for (const k of ['streaming', 'pushNotifications', 'extendedAgentCard'] as const) {
    if (caps[k] !== undefined) capabilities[k] = bool(caps[k], `capabilities.${k}`)
  }
  if (caps.extensions !== undefined)
    capabilities.extensions = list(caps.extensions, CARD_LIMITS.extensions, 'capabilities.extensions', checkExtension)
  const card: AgentCard = {
    name: text(x.name, CARD_LIMITS.name, 'name'),
    description: text(x.description, CARD_LIMITS.description, 'description', { lines: true }),
    version: text(x.version, CARD_LIMITS.version, 'version'),
    supportedInterfaces: list(x.supportedInterfaces, CARD_LIMITS.interfaces, 'supportedInterfaces', checkInterface),
    capabilities,
    defaultInputModes: list(x.defaultInputModes, CARD_LIMITS.modes, 'defaultInputModes', mode),
    defaultOutputModes: list(x.defaultOutputModes, CARD_LIMITS.modes, 'defaultOutputModes', mode),
    skills: list(x.skills, CARD_LIMITS.skills, 'skills', checkSkill)
  }
  if (card.supportedInterfaces.length === 0) failCard('supportedInterfaces must list at least one interface')
  if (x.provider !== undefined) {
    const p = x.provider
    if (!isMap(p)) return failCard('provider must be a map')
    checkKeys(p, ['url', 'organization'], [], 'provider')
    card.provider = {
      url: text(p.url, CARD_LIMITS.url, 'provider.url'),
      organization: text(p.organization, CARD_LIMITS.organization, 'provider.organization')
    }
  }
  if (x.documentationUrl !== undefined)
    card.documentationUrl = text(x.documentationUrl, CARD_LIMITS.url, 'documentationUrl')
  if (x.iconUrl !== undefined) card.iconUrl = text(x.iconUrl, CARD_LIMITS.url, 'iconUrl')
  const ids = new Set<string>()
  for (const skill of card.skills) {
    if (ids.has(skill.id)) failCard(`skill id ${JSON.stringify(skill.id)} appears twice`)
    ids.add(skill.id)
  }
  const keys = skillKeysOf(card)
  if (keys.length > CARD_LIMITS.skillKeys)
    failCard(`the card declares ${keys.length} distinct skill ids and tags, at most ${CARD_LIMITS.skillKeys}`)
  return card
}

/** A skill id or tag as it is matched and keyed: trimmed and lowercased. */
export function normalizeSkill(skill: string): string {
  if (typeof skill !== 'string') throw new InvalidAgentCardError('a skill is a string')
  const s = skill.trim().toLowerCase()
  if (s.length === 0 || s.length > CARD_LIMITS.skillId || CONTROL.test(s))
    throw new InvalidAgentCardError(
      `a skill id or tag is 1-${CARD_LIMITS.skillId} characters without control characters`
    )
  return s
}

/** The distinct normalized skill ids and tags a card declares, sorted. */
export function skillKeysOf(card: AgentCard): string[] {
  const keys = new Set<string>()
  for (const skill of card.skills) {
    keys.add(normalizeSkill(skill.id))
    for (const t of skill.tags) keys.add(normalizeSkill(t))
  }
  return [...keys].sort()
}

/** Whether the card declares `skill` as a skill id or tag (compared normalized). */
export function declaresSkill(card: AgentCard, skill: string): boolean {
  const wanted = normalizeSkill(skill)
  return card.skills.some(s => normalizeSkill(s.id) === wanted || s.tags.some(t => normalizeSkill(t) === wanted))
}

/**
 * The provider key of a skill id or tag: a CIDv1 (raw codec, sha256) of the UTF-8 bytes of
 * SKILL_KEY_DOMAIN, one zero byte, and the normalized skill.
 */
export function skillCid(skill: string): CID {
  const bytes = new TextEncoder().encode(`${SKILL_KEY_DOMAIN}\u0000${normalizeSkill(skill)}`)
  return CID.createV1(0x55, Digest.create(0x12, sha256(bytes)))
}

/** The Ed25519 public key inside a principal id (`z` + base58btc of 0xed 0x01 ‖ key). */
export function agentPublicKey(principal: string): Uint8Array {
  if (typeof principal !== 'string' || principal.length > 64 || !principal.startsWith('z'))
    return failRecord('an agent is a principal id (z6Mk…)')
  let bytes: Uint8Array
  try {
    bytes = base58btc.decode(principal)
  } catch {
    return failRecord('an agent principal is not base58btc')
  }
  if (bytes.length !== 34 || bytes[0] !== ED25519_PUB[0] || bytes[1] !== ED25519_PUB[1])
    return failRecord('an agent principal is not an Ed25519 public key')
  return bytes.slice(2)
}

/**
 * The key hash of a principal: sha256 of its SPKI canonical form `(10:public-key(7:ed2551932:<key>))`,
 * the same hash a `(hash sha256 …)` certificate subject names.
 */
export function agentKeyHash(principal: string): Uint8Array {
  const key = agentPublicKey(principal)
  const enc = new TextEncoder()
  const head = enc.encode('(10:public-key(7:ed2551932:')
  const bytes = new Uint8Array(head.length + 32 + 2)
  bytes.set(head)
  bytes.set(key, head.length)
  bytes.set(enc.encode('))'), head.length + 32)
  return sha256(bytes)
}

/** The DHT key of an agent's record: `/cyberspace-agent/<lowercase hex of its key hash>`. */
export function agentKey(principal: string): string {
  return `/${AGENT_NAMESPACE}/${base16.baseEncode(agentKeyHash(principal))}`
}

/** The key hash a record key names; throws InvalidAgentRecordError for any other key. */
export function parseAgentKey(key: string | Uint8Array): string {
  let textKey: string
  try {
    textKey = typeof key === 'string' ? key : new TextDecoder('utf-8', { fatal: true }).decode(key)
  } catch {
    return failRecord('an agent key is UTF-8')
  }
  const parts = textKey.split('/')
  if (parts.length !== 3 || parts[0] !== '' || parts[1] !== AGENT_NAMESPACE || !/^[0-9a-f]{64}$/.test(parts[2]))
    return failRecord(`an agent key is /${AGENT_NAMESPACE}/<64 lowercase hex digits>`)
  return textKey
}

/** What an agent record's two signatures (the agent's and its host's, each under its own domain) cover after the domain: dag-cbor of `{ v, key, agent, host, addrs, seq, expires, card }`. */
export function agentSigningBody(key: string, record: UnsignedAgentRecord): Uint8Array {
  const { v, agent, host, addrs, seq, expires, card } = record
  return dagCbor.encode({ v, key, agent, host, addrs, seq, expires, card })
}

/** The exact bytes an agent record's signature covers (see protocols/signing.ts); `host` for the host's. */
export function agentSigningBytes(
  key: string,
  record: UnsignedAgentRecord,
  signer: 'agent' | 'host' = 'agent'
): Uint8Array {
  return signedBytes(
    signer === 'agent' ? AGENT_SIGNING_DOMAIN : AGENT_HOST_SIGNING_DOMAIN,
    agentSigningBody(key, record)
  )
}

/** The libp2p interface of an agent hosted on `host`: `libp2p://<host peer id>/<agent principal>`. */
export function libp2pInterface(host: string, agent: string): AgentInterface {
  return { url: `libp2p://${host}/${agent}`, protocolBinding: LIBP2P_BINDING, protocolVersion: A2A_PROTOCOL_VERSION }
}

function checkRecordFields(x: unknown): asserts x is AgentRecord {
  if (!isMap(x)) return failRecord('a record is a map')
  const keys = Object.keys(x).sort().join(',')
  if (keys !== 'addrs,agent,card,expires,host,hostSig,seq,sig,v')
    failRecord(
      `a record has the fields addrs, agent, card, expires, host, hostSig, seq, sig, v; not ${keys.slice(0, 128)}`
    )
  if (x.v !== AGENT_RECORD_VERSION) failRecord(`unsupported record version ${String(x.v)}`)
  agentPublicKey(x.agent as string)
  if (typeof x.host !== 'string' || !PEER_ID_PATTERN.test(x.host)) failRecord('host must be a base58btc peer id')
  if (!Array.isArray(x.addrs) || x.addrs.length > MAX_ADDRS) failRecord(`addrs must list at most ${MAX_ADDRS}`)
  for (const a of x.addrs as unknown[]) {
    if (typeof a !== 'string' || a.length === 0 || a.length > MAX_ADDR_LENGTH || !a.startsWith('/') || CONTROL.test(a))
      failRecord(`an address is a multiaddr string of at most ${MAX_ADDR_LENGTH} characters`)
  }
  if (!Number.isSafeInteger(x.seq) || (x.seq as number) < 0) failRecord('seq must be a non-negative safe integer')
  if (!Number.isSafeInteger(x.expires) || (x.expires as number) <= 0)
    failRecord('expires must be a positive safe integer (ms)')
  if (!isBytes(x.sig, 64, 64)) failRecord('sig must be 64 bytes (Ed25519)')
  if (!isBytes(x.hostSig, 64, 64)) failRecord('hostSig must be 64 bytes (Ed25519)')
  const card = checkAgentCard(x.card)
  for (const iface of card.supportedInterfaces) {
    if (iface.protocolBinding !== LIBP2P_BINDING) continue
    const expected = libp2pInterface(x.host as string, x.agent as string).url
    if (iface.url !== expected) failRecord(`a libp2p interface of this record must have the url ${expected}`)
  }
}

/** Encodes a record after checking every field; AgentCardTooLargeError over MAX_AGENT_RECORD_BYTES. */
export function encodeAgentRecord(record: AgentRecord): Uint8Array {
  checkRecordFields(record)
  const { v, agent, host, addrs, seq, expires, card, sig, hostSig } = record
  const bytes = dagCbor.encode({ v, agent, host, addrs, seq, expires, card: checkAgentCard(card), sig, hostSig })
  if (bytes.length > MAX_AGENT_RECORD_BYTES)
    throw new AgentCardTooLargeError(`the record is ${bytes.length} bytes, at most ${MAX_AGENT_RECORD_BYTES}`)
  return bytes
}

/** Decodes untrusted bytes: size first (AgentCardTooLargeError), then strict shape (InvalidAgentRecordError, InvalidAgentCardError). */
export function decodeAgentRecord(bytes: Uint8Array): AgentRecord {
  if (!(bytes instanceof Uint8Array)) return failRecord('a record is bytes')
  if (bytes.length > MAX_AGENT_RECORD_BYTES)
    throw new AgentCardTooLargeError(`the record is ${bytes.length} bytes, at most ${MAX_AGENT_RECORD_BYTES}`)
  let decoded: unknown
  try {
    decoded = dagCbor.decode(bytes)
  } catch (err) {
    return failRecord(`a record is dag-cbor: ${(err as Error).message}`)
  }
  checkRecordFields(decoded)
  return decoded
}

/** `list`: the records the answering host holds whose cards declare `skill`. */
export interface ListMessage {
  v: 1
  type: 'list'
  skill: string
}

/** The answer to `list`: encoded agent records, at most MAX_LIST_RECORDS. */
export interface RecordsMessage {
  v: 1
  type: 'records'
  records: Uint8Array[]
}

/** `names`: the name certificates the answerer holds that resolve `issuer`'s `names[0]`'s `names[1]`… */
export interface NamesMessage {
  v: 1
  type: 'names'
  issuer: string
  names: string[]
}

/** The answer to `names`: SPKI signed certificates in canonical form, at most MAX_NAME_CERTS. */
export interface CertsMessage {
  v: 1
  type: 'certs'
  certs: Uint8Array[]
}

export type RegistryMessage = ListMessage | RecordsMessage | NamesMessage | CertsMessage | ErrorAnswer

const MESSAGE_FIELDS: Record<string, string> = {
  list: 'skill,type,v',
  records: 'records,type,v',
  names: 'issuer,names,type,v',
  certs: 'certs,type,v',
  error: ERROR_FIELDS
}

const failMessage = (what: string): never => {
  throw new InvalidRegistryMessageError(what)
}

function checkRegistryMessage(x: unknown): asserts x is RegistryMessage {
  const m = checkFields(x, MESSAGE_FIELDS, failMessage)
  switch (m.type) {
    case 'list':
      if (!isText(m.skill, CARD_LIMITS.skillId) || CONTROL.test(m.skill)) failMessage('skill must be 1-64 characters')
      break
    case 'records':
      if (!Array.isArray(m.records) || m.records.length > MAX_LIST_RECORDS)
        failMessage(`records must list at most ${MAX_LIST_RECORDS}`)
      for (const r of m.records as unknown[]) {
        if (!isBytes(r, 1, MAX_AGENT_RECORD_BYTES)) failMessage(`a record is 1-${MAX_AGENT_RECORD_BYTES} bytes`)
      }
      break
    case 'names':
      if (typeof m.issuer !== 'string' || !m.issuer.startsWith('z') || m.issuer.length > 64)
        failMessage('issuer must be a principal id')
      if (!Array.isArray(m.names) || m.names.length === 0 || m.names.length > MAX_NAME_PATH)
        failMessage(`names must list 1-${MAX_NAME_PATH} names`)
      for (const n of m.names as unknown[]) {
        if (typeof n !== 'string' || !NAME_PATTERN.test(n))
          failMessage('a name is 1-64 characters of A-Z a-z 0-9 . _ -')
      }
      break
    case 'certs':
      if (!Array.isArray(m.certs) || m.certs.length > MAX_NAME_CERTS)
        failMessage(`certs must list at most ${MAX_NAME_CERTS}`)
      for (const c of m.certs as unknown[]) {
        if (!isBytes(c, 1, MAX_NAME_CERT_BYTES)) failMessage(`a certificate is 1-${MAX_NAME_CERT_BYTES} bytes`)
      }
      break
  }
}

export function encodeRegistryMessage(msg: RegistryMessage): Uint8Array {
  return encodeChecked(msg, checkRegistryMessage, MAX_REGISTRY_MESSAGE_BYTES, failMessage)
}

export function decodeRegistryMessage(bytes: Uint8Array): RegistryMessage {
  return decodeChecked(bytes, MAX_REGISTRY_MESSAGE_BYTES, checkRegistryMessage, failMessage)
}

/**
 * The A2A extension by which a card says what shard an agent is (the fleet design's shard types):
 * `params.type` one of SHARD_TYPES, `params.scope` what it covers (a domain, a region, a workload kind).
 */
export const SHARD_EXTENSION_URI = 'urn:cyberspace:shard:1'
export const SHARD_TYPES = ['domain', 'geographic', 'workload', 'swat', 'replica'] as const
export type ShardType = (typeof SHARD_TYPES)[number]

export interface Shard {
  type: ShardType
  scope: string
}

/** The card's shard extension as a Shard, or undefined without one (or with a type this version does not know). */
export function shardOfCard(card: AgentCard): Shard | undefined {
  const ext = card.capabilities.extensions?.find(e => e.uri === SHARD_EXTENSION_URI)
  const type = ext?.params?.type
  if (type == null || !(SHARD_TYPES as readonly string[]).includes(type)) return undefined
  return { type: type as ShardType, scope: ext?.params?.scope ?? '' }
}

/** The card extension saying an agent is `shard`. */
export function shardExtension(shard: Shard): AgentExtension {
  return {
    uri: SHARD_EXTENSION_URI,
    description: `a ${shard.type} shard`,
    params: { type: shard.type, scope: shard.scope }
  }
}
