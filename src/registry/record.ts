/**
 * Agent records (format: `protocols/registry/`): signing one with an agent's key, verifying one
 * found under a DHT key, and the DHT validator and selector every node runs on records of the
 * `cyberspace-agent` namespace.
 *
 * `validateAgentRecord` and `selectAgentRecord` are pure. `agentDhtRecords()` gives a node its own
 * validator that also remembers, per key, the highest sequence number it has validated (bounded,
 * until that record expires) and refuses anything lower, so a replayed older record is refused at
 * every node that has seen the newer one, including on a direct PUT (kad-dht stores what its
 * validator accepts without consulting the selector).
 *
 * @example
 * const { bytes } = await signAgentRecord(agentSigner, hostSigner, { addrs, seq: Date.now(), expires: Date.now() + 3_600_000, card })
 * const view = await verifyAgentRecord(agentKey(signer.principal), bytes) // throws on anything else
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { sha256 } from '@noble/hashes/sha2.js'
import { base16 } from 'multiformats/bases/base16'
import {
  AGENT_HOST_SIGNING_DOMAIN,
  AGENT_NAMESPACE,
  AGENT_RECORD_VERSION,
  AGENT_SIGNING_DOMAIN,
  agentKey,
  agentPublicKey,
  agentSigningBody,
  checkAgentCard,
  CLOCK_SKEW_MS,
  decodeAgentRecord,
  encodeAgentRecord,
  MAX_RECORD_TTL_MS,
  parseAgentKey
} from '../../protocols/registry/codec.ts'
import { peerIdFromPrincipal } from '../crypto/principal.ts'
import { verifyAs } from '../crypto/sign.ts'
import { RecentMap } from '../recent-map.ts'
import {
  AgentRecordExpiredError,
  AgentRecordSignatureError,
  InvalidAgentRecordError,
  StaleAgentRecordError
} from './errors.ts'
import type { AgentCard, AgentRecord } from '../../protocols/registry/codec.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Signer } from '../crypto/sign.ts'
import type { SelectFn, ValidateFn } from '@libp2p/kad-dht'

/** A verified agent record, as callers use it. */
export interface AgentRecordView {
  /** The DHT key it lives under. */
  key: string
  agent: PrincipalId
  /** The host's peer id. */
  host: string
  addrs: string[]
  seq: number
  expires: number
  card: AgentCard
  /** The record as stored in the DHT. */
  bytes: Uint8Array
}

export interface VerifyOptions {
  /** The clock expiry is checked against; default Date.now(). */
  now?: number
}

/** Signatures already verified, by sha256 of (key, record bytes): verifying is pure, so one cache serves every node. */
const verified = new RecentMap<string, true>(4096)

/**
 * Signs a record for `signer`'s principal, countersigned by `host` (the node that hosts the agent:
 * its key is its peer id); the card is checked and cleaned first.
 */
export async function signAgentRecord(
  signer: Signer,
  host: Signer,
  fields: { addrs: string[]; seq: number; expires: number; card: AgentCard }
): Promise<{ record: AgentRecord; bytes: Uint8Array }> {
  const key = agentKey(signer.principal)
  const unsigned = {
    v: AGENT_RECORD_VERSION,
    agent: signer.principal as string,
    host: peerIdFromPrincipal(host.principal).toString(),
    addrs: fields.addrs,
    seq: fields.seq,
    expires: fields.expires,
    card: checkAgentCard(fields.card)
  } as const
  const body = agentSigningBody(key, unsigned)
  const sig = await signer.sign(AGENT_SIGNING_DOMAIN, body)
  const hostSig = await host.sign(AGENT_HOST_SIGNING_DOMAIN, body)
  const record: AgentRecord = { ...unsigned, sig, hostSig }
  return { record, bytes: encodeAgentRecord(record) }
}

/**
 * Decodes a record found under `key` and checks, cheapest first: the key's shape, the record's
 * shape and limits, that the key is its agent's, that the host is an Ed25519 peer and the
 * addresses parse, that it is not expired and claims no more than MAX_RECORD_TTL_MS (plus clock
 * skew) of life, and last the agent's signature and its host's countersignature over the key and
 * record: an agent cannot name a host that did not agree to host it.
 */
export async function verifyAgentRecord(
  key: string | Uint8Array,
  bytes: Uint8Array,
  options: VerifyOptions = {}
): Promise<AgentRecordView> {
  const keyText = parseAgentKey(key)
  const record = decodeAgentRecord(bytes)
  if (agentKey(record.agent) !== keyText)
    throw new InvalidAgentRecordError(`the key ${keyText} is not agent ${record.agent}'s`)
  let hostKey: Uint8Array
  try {
    const hostId = peerIdFromString(record.host)
    if (hostId.type !== 'Ed25519') throw new InvalidAgentRecordError(`a host is an Ed25519 peer, not ${hostId.type}`)
    hostKey = hostId.publicKey.raw
  } catch (err) {
    if (err instanceof InvalidAgentRecordError) throw err
    throw new InvalidAgentRecordError(`host is not a peer id: ${(err as Error).message}`)
  }
  for (const a of record.addrs) {
    try {
      multiaddr(a)
    } catch (err) {
      throw new InvalidAgentRecordError(
        `address ${JSON.stringify(a.slice(0, 80))} is not a multiaddr: ${(err as Error).message}`
      )
    }
  }
  const now = options.now ?? Date.now()
  if (record.expires <= now)
    throw new AgentRecordExpiredError(
      `the record of ${record.agent} expired at ${new Date(record.expires).toISOString()}`
    )
  if (record.expires > now + MAX_RECORD_TTL_MS + CLOCK_SKEW_MS)
    throw new InvalidAgentRecordError(`a record lives at most ${MAX_RECORD_TTL_MS} ms`)
  const digest = base16.baseEncode(sha256(concat(new TextEncoder().encode(keyText), bytes)))
  if (verified.get(digest) == null) {
    const body = agentSigningBody(keyText, record)
    if (!(await verifyAs(agentPublicKey(record.agent), AGENT_SIGNING_DOMAIN, body, record.sig)))
      throw new AgentRecordSignatureError(`the record under ${keyText} is not signed by ${record.agent}`)
    if (!(await verifyAs(hostKey, AGENT_HOST_SIGNING_DOMAIN, body, record.hostSig)))
      throw new AgentRecordSignatureError(
        `the record under ${keyText} is not countersigned by its host ${record.host}: a host signs the records of the agents it hosts`
      )
    verified.set(digest, true)
  }
  return {
    key: keyText,
    agent: record.agent as PrincipalId,
    host: record.host,
    addrs: record.addrs,
    seq: record.seq,
    expires: record.expires,
    card: record.card,
    bytes
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + 1 + b.length)
  out.set(a)
  out.set(b, a.length + 1)
  return out
}

/** The pure DHT validator: shape, limits, key, expiry and signature. */
export const validateAgentRecord: ValidateFn = async (key, value) => {
  await verifyAgentRecord(key, value)
}

/**
 * Picks the valid record with the highest seq (the first of equals); a record that does not
 * decode, is expired or is badly signed never wins. Throws InvalidAgentRecordError when none is valid.
 */
export const selectAgentRecord: SelectFn = async (key, records) => {
  let best = -1
  let bestSeq = -1
  for (const [i, bytes] of records.entries()) {
    try {
      const { seq } = await verifyAgentRecord(key, bytes)
      if (seq > bestSeq) {
        best = i
        bestSeq = seq
      }
    } catch {}
  }
  if (best < 0) throw new InvalidAgentRecordError('no valid agent record among those found')
  return best
}

/**
 * The highest sequence number validated per record key, each until its record expires; at most
 * `capacity` keys. An unexpired entry is never forgotten to make room: when the memory is full of
 * them, a record under a new key is still accepted but not remembered, so a flood of valid records
 * under fresh keys can never make a node forget a seq it knows and accept a replayed older record.
 */
export class SeenRecords {
  readonly capacity: number
  private readonly highest = new Map<string, { seq: number; expires: number }>()
  private readonly now: () => number
  /** No entry expires before this (ms): until then, a full memory has nothing to drop. */
  private nextExpiry = 0

  constructor(options: { capacity?: number; now?: () => number } = {}) {
    this.capacity = Math.max(1, options.capacity ?? 10_000)
    this.now = options.now ?? Date.now
  }

  /** The highest unexpired seq seen under `key`, if any. */
  seq(key: string): number | undefined {
    const known = this.highest.get(key)
    if (known == null) return undefined
    if (known.expires > this.now()) return known.seq
    this.highest.delete(key)
    return undefined
  }

  /** Throws StaleAgentRecordError if a higher seq than `view`'s is known; else remembers `view`'s, room permitting. */
  observe(view: { key: string; seq: number; expires: number }): void {
    const known = this.seq(view.key)
    if (known != null && view.seq < known)
      throw new StaleAgentRecordError(`seq ${view.seq} under ${view.key} is older than seq ${known} already seen`)
    if (known != null && view.seq === known) return
    if (known == null && !this.makeRoom()) return
    this.highest.set(view.key, { seq: view.seq, expires: view.expires })
    this.nextExpiry = Math.min(this.nextExpiry, view.expires)
  }

  /** Drops expired entries when full; false when every entry is still current. */
  private makeRoom(): boolean {
    if (this.highest.size < this.capacity) return true
    const now = this.now()
    if (now < this.nextExpiry) return false
    let next = Infinity
    for (const [key, entry] of this.highest) {
      if (entry.expires <= now) this.highest.delete(key)
      else next = Math.min(next, entry.expires)
    }
    this.nextExpiry = next
    return this.highest.size < this.capacity
  }
}

/** A validator that checks like validateAgentRecord and refuses any record older than one `seen` already holds. */
export function agentRecordValidator(seen: SeenRecords): ValidateFn {
  return async (key, value) => {
    seen.observe(await verifyAgentRecord(key, value))
  }
}

/**
 * The agent namespace's remembering validator and selector, as createNode installs them in its DHT,
 * with the `seen` memory it shares with the node's registry service, so `get` refuses what the DHT
 * layer has already seen superseded.
 */
export function agentDhtRecords(options: { capacity?: number } = {}): {
  validators: Record<string, ValidateFn>
  selectors: Record<string, SelectFn>
  seen: SeenRecords
} {
  const seen = new SeenRecords(options)
  return {
    validators: { [AGENT_NAMESPACE]: agentRecordValidator(seen) },
    selectors: { [AGENT_NAMESPACE]: selectAgentRecord },
    seen
  }
}
