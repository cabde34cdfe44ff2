/**
 * Where an agent runs: rendezvous (highest-random-weight) hashing over the live members that offer
 * the agent's kind, and the lease rule that keeps two hosts from running one agent at once.
 *
 * Every node computes the same ranking from the same view, so when a host dies its agents' successors
 * agree without a vote: the first live candidate of `rank(agent, offering)` takes the agent over.
 * Removing one member moves only the agents it ran (the property that makes rendezvous hashing fit).
 *
 * The lease is the agent's registry record: the host republishes it well within its ttl; a host that
 * could not renew stops its copy at `leaseDeadline` (before the record expires, by the skew margin);
 * a successor starts only once the record it saw has expired (`mayTakeOver`), and publishes with a
 * higher seq, which fences the old host out: a host that sees a record of its agent with a higher seq
 * and another host stops its copy before doing anything else.
 *
 * @example
 * const order = rank(agent, members.filter(m => offers(m, kind)))
 * if (order[0] === self && mayTakeOver(record, Date.now())) await resume(agent)
 */
import { sha256 } from '@noble/hashes/sha2.js'
import type { PrincipalId } from '../crypto/principal.ts'

/** Domain of the rendezvous weights: a change makes every node rank alike again. */
const WEIGHT_DOMAIN = 'cyberspace/placement/v1'
/** The membership metadata key under which a host lists the kinds it runs, comma-separated. */
export const KINDS_META_KEY = 'kinds'
/** Clock skew between hosts that a lease allows for, in ms. */
export const LEASE_SKEW_MS = 2000

const utf8 = new TextEncoder()

/** The rendezvous weight of `candidate` for `agent`: the first 8 bytes of sha256, big-endian. */
function weight(agent: PrincipalId, candidate: string): bigint {
  const digest = sha256(utf8.encode(`${WEIGHT_DOMAIN}\0${agent}\0${candidate}`))
  let w = 0n
  for (let i = 0; i < 8; i++) w = (w << 8n) | BigInt(digest[i])
  return w
}

/** `candidates` from the one that should host `agent` first to the last; ties (never in practice) by id. */
export function rank<T extends string>(agent: PrincipalId, candidates: Iterable<T>): T[] {
  const weighted = [...new Set(candidates)].map(c => ({ c, w: weight(agent, c) }))
  weighted.sort((a, b) => (a.w > b.w ? -1 : a.w < b.w ? 1 : a.c < b.c ? -1 : a.c > b.c ? 1 : 0))
  return weighted.map(x => x.c)
}

/**
 * The members after `host` in line for `agent`: `offering` (live members running its kind) without
 * the host, by rank. The first `followers` of them hold the agent's session while the host runs it,
 * and the first takes the agent over when the host is gone — the host and every other node compute
 * the same list from the same view.
 */
export function successors<T extends string>(agent: PrincipalId, offering: Iterable<T>, host: string): T[] {
  return rank(
    agent,
    [...offering].filter(c => c !== host)
  )
}

/** The kinds a member's metadata says it runs. */
export function offeredKinds(meta: Readonly<Record<string, string>> | undefined): string[] {
  const text = meta?.[KINDS_META_KEY]
  if (typeof text !== 'string' || text === '') return []
  return text.split(',').filter(k => k !== '')
}

/** Metadata value listing `kinds` (sorted, without duplicates). */
export function kindsMeta(kinds: Iterable<string>): string {
  return [...new Set(kinds)].sort().join(',')
}

/** The last moment a host may keep running an agent whose lease (record) expires at `expires`. */
export function leaseDeadline(expires: number, skew = LEASE_SKEW_MS): number {
  return expires - skew
}

/** Whether a successor may start an agent whose host's last record expires at `expires`. */
export function mayTakeOver(expires: number, now: number, skew = LEASE_SKEW_MS): boolean {
  return now >= expires + skew
}
