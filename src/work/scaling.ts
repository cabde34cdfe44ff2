/**
 * Elastic scaling: a loop on every member that spawns and retires agents of a kind with its load,
 * spawns a temporary "swat" agent for an urgent need nobody offers, and rebalances a skill away from
 * an overloaded agent to a new agent of a dedicated kind — and the settlement that makes members
 * deciding at once end with one change, not two.
 *
 * - Decisions are entries of the replicated op-log document `cyberspace.scaling` (members read and
 *   write it). A decision names the change (`slot`: `grow:K:n` grows kind K from n replicas to n+1,
 *   `shrink:K:n` retires one of n), the member that carries it out (`target`) and, for a spawn, the
 *   agent id to spawn. Every member folds the document the same way (`settle`): decisions about the
 *   same change — the same family (a kind's replica count, one need, one rebalanced skill) at the same
 *   generation `gen` — compete, and the earliest by (HLC, actor, index) that was neither undone nor
 *   failed wins. The generation is what a decider had seen of its family (how many changes of it had
 *   won), so a decision made without knowing an earlier winner competes with it and loses, while a
 *   slot such as `grow:K:1` can be taken again after the kind shrank back to one replica.
 * - The target carries a winning decision out (spawn, or retire through the work service) after it has
 *   known it for `settle` ms, and writes `{ done }`; it undoes a decision it carried out that turned
 *   out to lose (stops the agent it spawned, spawns a retired one again) and writes `{ undo }` —
 *   and writes `{ undo }` without an agent for a losing decision it had not carried out, so the loser
 *   always says so. A decision whose spawn or retire failed, or whose target is gone, is marked
 *   `{ failed }` and its generation is open again. Since the target acts from the document, a decision
 *   is carried out exactly once even when its decider dies.
 * - Swat: an urgent (high, critical) need that no offer covers for `swatAfter` gets one agent of the
 *   policy's swat kind for its skill (family `swat:<need>`), retired once the need is no longer open.
 *   Rebalance: an agent of a policy's kind overloaded for `sustain` while it offers a skill the policy
 *   rebalances gets a new agent of the dedicated kind for that skill (shard domain), one while it runs.
 * - A target checks a winning decision against its own policy and view before acting (a spawn past
 *   `max`, a retire below `min`, a swat agent for a need it does not know: marked failed), and acts on
 *   at most 8 decisions per pass, so what one member writes cannot make another spawn without bound.
 * - Each member runs the loop for each policy every `interval`: the kind's load is the mean load of
 *   its fleet rows; above `target` for `sustain` and below `max` → spawn a replica on the least-loaded
 *   member offering the kind (member load from the fleet summaries, ties by rendezvous rank); below
 *   `idleBelow` for `sustain` and above `min` → retire the scaling-spawned replica with the lowest
 *   load. While a family's last winning decision is not yet carried out (or not yet seen in the fleet
 *   rows) its clock stops: one change at a time, each after `sustain` of its own.
 *
 * @example
 * const scaling = createScaling({ policies: [{ kind: 'worker', min: 1, max: 4, target: 0.8 }] }, {
 *   self: node.peerId.toString(), openLog: scalingDocument(node.state),
 *   fleet: fleetView(fleet), swarm: swarmView(swarm), members: () => membersOf(node.membership.members()), agents: node.agents,
 *   retire: p => node.work.retire(p), record: e => journal.record(e), logger })
 * await scaling.start()
 * scaling.decisions() // every decision, its status and, for a loser, the winner
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { AGENT_NAME_PATTERN } from '../../protocols/frost/codec.ts'
import { isHlc } from '../clock/hlc.ts'
import { compareOpLogEntries } from '../crdt/op-log.ts'
import { isPrincipalId, peerIdFromPrincipal, principalFromPeerId } from '../crypto/principal.ts'
import { offeredKinds, rank } from '../actor/placement.ts'
import { RecentMap } from '../recent-map.ts'
import { InvalidScalingOptionError, InvalidScalingPolicyError, ScalingNotRunningError } from './scaling-errors.ts'
import type { ShardType } from '../../protocols/registry/codec.ts'
import type { HlcTimestamp } from '../clock/hlc.ts'
import type { OpLogEntry } from '../crdt/op-log.ts'
import type { State } from '../log/service.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { AbortOptions, ComponentLogger, Logger } from '@libp2p/interface'

/** The replicated op-log document that holds the decisions (members read and write it). */
export const SCALING_DOCUMENT = 'cyberspace.scaling'

export const SCALING_REASONS = ['load', 'swat', 'rebalance', 'idle'] as const
export type ScalingReason = (typeof SCALING_REASONS)[number]

/** Needs of these urgencies get a swat agent when no offer covers them. */
const URGENT = new Set(['high', 'critical'])
/** Decisions a target carries out or undoes in one pass at most (the rest wait for the next). */
const MAX_ACTS_PER_PASS = 8
const MAX_POLICY_ENTRIES = 64
const MAX_SLOT_CHARS = 320
const MAX_SKILL_CHARS = 64
const MAX_NEED_CHARS = 256
const MAX_ERROR_CHARS = 256
const MAX_GEN = 2 ** 31
/** Printable ASCII without spaces: slots, skills, needs. */
const TOKEN = /^[\x21-\x7e]+$/
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{1,128}$/

// ------------------------------------------------------------------ policies

export interface ScalingPolicy {
  /** The agent kind this policy scales. */
  kind: string
  /** Fewest agents of the kind: never retired below, spawned up to. */
  min: number
  /** Most agents of the kind: never spawned above. */
  max: number
  /** Load (mean of the kind's fleet rows) above which a replica is added. */
  target: number
  /** How long load stays above target (or below idleBelow) before the loop acts, ms; default 60 s. */
  sustain?: number
  /** Load below which an idle replica retires; default target / 2. */
  idleBelow?: number
  /** For an urgent need of a skill nobody offers: the kind of the temporary agent to spawn. */
  swat?: Record<string, string>
  /** An agent of this kind overloaded while offering `skill`: spawn one agent of `kind` for that skill. */
  rebalance?: Array<{ skill: string; kind: string }>
}

export interface ResolvedPolicy {
  kind: string
  min: number
  max: number
  target: number
  sustain: number
  idleBelow: number
  swat: ReadonlyMap<string, string>
  rebalance: ReadonlyArray<{ skill: string; kind: string }>
}

const isKind = (x: unknown): x is string => typeof x === 'string' && AGENT_NAME_PATTERN.test(x)
const isToken = (x: unknown, max: number): x is string =>
  typeof x === 'string' && x.length > 0 && x.length <= max && TOKEN.test(x)

/** Checks a policy at the API edge and fills in its defaults; throws InvalidScalingPolicyError naming the field. */
export function checkPolicy(policy: ScalingPolicy): ResolvedPolicy {
  const bad = (field: string, what: string): never => {
    throw new InvalidScalingPolicyError(`scaling policy ${field}: ${what}`)
  }
  if (policy == null || typeof policy !== 'object') return bad('', 'must be an object')
  const { kind, min, max, target } = policy
  if (!isKind(kind)) bad('kind', '1-64 characters of a-z 0-9 . _ - starting with a letter or digit')
  if (!Number.isSafeInteger(min) || min < 0 || min > 10_000) bad('min', 'an integer 0..10000')
  if (!Number.isSafeInteger(max) || max < Math.max(1, min) || max > 10_000)
    bad('max', 'an integer ≥ min and ≥ 1, ≤ 10000')
  if (typeof target !== 'number' || !Number.isFinite(target) || target <= 0) bad('target', 'a load > 0')
  const sustain = policy.sustain ?? 60_000
  if (!Number.isSafeInteger(sustain) || sustain < 0 || sustain > 86_400_000) bad('sustain', 'ms, 0..86400000')
  const idleBelow = policy.idleBelow ?? target / 2
  if (typeof idleBelow !== 'number' || !Number.isFinite(idleBelow) || idleBelow < 0 || idleBelow >= target)
    bad('idleBelow', 'a load ≥ 0 and below target')
  const swat = new Map<string, string>()
  if (policy.swat != null) {
    if (typeof policy.swat !== 'object' || Array.isArray(policy.swat)) bad('swat', 'an object of skill → kind')
    const pairs = Object.entries(policy.swat)
    if (pairs.length > MAX_POLICY_ENTRIES) bad('swat', `at most ${MAX_POLICY_ENTRIES} skills`)
    for (const [skill, k] of pairs) {
      if (!isToken(skill, MAX_SKILL_CHARS))
        bad('swat', `skill ${JSON.stringify(String(skill).slice(0, 80))} is no skill name`)
      if (!isKind(k)) bad(`swat.${skill}`, 'a kind name')
      swat.set(skill, k)
    }
  }
  const rebalance: Array<{ skill: string; kind: string }> = []
  if (policy.rebalance != null) {
    if (!Array.isArray(policy.rebalance) || policy.rebalance.length > MAX_POLICY_ENTRIES)
      bad('rebalance', `an array of at most ${MAX_POLICY_ENTRIES} { skill, kind }`)
    for (const r of policy.rebalance) {
      if (r == null || !isToken(r.skill, MAX_SKILL_CHARS)) bad('rebalance.skill', 'a skill name')
      if (!isKind(r.kind)) bad('rebalance.kind', 'a kind name')
      rebalance.push({ skill: r.skill, kind: r.kind })
    }
  }
  return { kind, min, max, target, sustain, idleBelow, swat, rebalance }
}

// ------------------------------------------------------------------ entries of the document

export interface SpawnDecision {
  decision: 'spawn'
  kind: string
  /** What the change is, for people: `grow:K:n`, `swat:<need>`, `rebalance:K:<skill>:<gen>`. */
  slot: string
  /** Which change of its family this is: decisions of one family and generation compete. */
  gen: number
  /** The member (peer id) that spawns. */
  target: string
  reason: 'load' | 'swat' | 'rebalance'
  /** The agent id to spawn (and what the other entries name the decision by). */
  id: string
  /** The skill a swat or domain agent is for. */
  scope?: string
  /** For a swat agent: the need it answers (`<from>/<id>` of the swarm message). */
  need?: string
}

export interface RetireDecision {
  decision: 'retire'
  kind: string
  /** `shrink:K:n`, or `swat-end:<need>`. */
  slot: string
  gen: number
  /** The member (peer id) that hosts the agent and retires it. */
  target: string
  agent: PrincipalId
  reason: 'idle' | 'swat'
  /** Names the decision for the entries that follow it. */
  id: string
  need?: string
  scope?: string
}

export type ScalingDecision = SpawnDecision | RetireDecision

/** The target carried the decision out; for a spawn, `agent` is the principal it spawned. */
export interface DoneEntry {
  done: string
  id: string
  agent?: PrincipalId
}

/** The target undid (or had not carried out) a decision that lost; `agent` is the one it stopped or brought back. */
export interface UndoEntry {
  undo: string
  id: string
  agent?: PrincipalId
}

/** The decision could not be carried out (spawn or retire failed, target gone): its generation is open again. */
export interface FailedEntry {
  failed: string
  id: string
  error: string
}

export type ScalingEntry = ScalingDecision | DoneEntry | UndoEntry | FailedEntry

const DECISION_KEYS = new Set(['decision', 'kind', 'slot', 'gen', 'target', 'agent', 'reason', 'id', 'scope', 'need'])

function plainObject(x: unknown): x is Record<string, unknown> {
  if (x == null || typeof x !== 'object' || Array.isArray(x)) return false
  const proto = Object.getPrototypeOf(x)
  return proto === Object.prototype || proto === null
}

function onlyKeys(x: Record<string, unknown>, allowed: ReadonlySet<string>): boolean {
  return Object.keys(x).every(k => allowed.has(k))
}

/**
 * A document entry's body as a scaling entry, or undefined for anything else (every field checked:
 * what a member wrote is input like any other). Exact keys, bounded strings, consistent reasons.
 */
export function parseScalingEntry(body: unknown): ScalingEntry | undefined {
  if (!plainObject(body)) return undefined
  if ('decision' in body) {
    if (!onlyKeys(body, DECISION_KEYS)) return undefined
    const { decision, kind, slot, gen, target, agent, reason, id, scope, need } = body
    if (!isKind(kind) || !isToken(slot, MAX_SLOT_CHARS) || !isKind(id)) return undefined
    if (typeof gen !== 'number' || !Number.isSafeInteger(gen) || gen < 0 || gen >= MAX_GEN) return undefined
    if (typeof target !== 'string' || !PEER_ID.test(target)) return undefined
    if (scope !== undefined && !isToken(scope, MAX_SKILL_CHARS)) return undefined
    if (need !== undefined && !isToken(need, MAX_NEED_CHARS)) return undefined
    const extra = { ...(scope === undefined ? {} : { scope }), ...(need === undefined ? {} : { need }) }
    if (decision === 'spawn') {
      if (agent !== undefined) return undefined
      if (reason === 'load') return { decision, kind, slot, gen, target, reason, id, ...extra }
      if (reason === 'swat' && need !== undefined && scope !== undefined)
        return { decision, kind, slot, gen, target, reason, id, ...extra }
      if (reason === 'rebalance' && scope !== undefined)
        return { decision, kind, slot, gen, target, reason, id, ...extra }
      return undefined
    }
    if (decision === 'retire') {
      if (!isPrincipalId(agent)) return undefined
      if (reason === 'idle' || (reason === 'swat' && need !== undefined))
        return { decision, kind, slot, gen, target, agent, reason, id, ...extra }
      return undefined
    }
    return undefined
  }
  for (const verb of ['done', 'undo'] as const) {
    if (verb in body) {
      if (!onlyKeys(body, new Set([verb, 'id', 'agent']))) return undefined
      const slot = body[verb]
      if (!isToken(slot, MAX_SLOT_CHARS) || !isKind(body.id)) return undefined
      if (body.agent !== undefined && !isPrincipalId(body.agent)) return undefined
      const agent = body.agent === undefined ? {} : { agent: body.agent }
      return verb === 'done' ? { done: slot, id: body.id, ...agent } : { undo: slot, id: body.id, ...agent }
    }
  }
  if ('failed' in body) {
    if (!onlyKeys(body, new Set(['failed', 'id', 'error']))) return undefined
    if (!isToken(body.failed, MAX_SLOT_CHARS) || !isKind(body.id)) return undefined
    if (typeof body.error !== 'string' || body.error.length > MAX_ERROR_CHARS) return undefined
    return { failed: body.failed, id: body.id, error: body.error }
  }
  return undefined
}

export const isDecision = (e: ScalingEntry): e is ScalingDecision => 'decision' in e

/** The shard type of what a decision spawns or retires: a replica for load, swat for a need, domain for a rebalanced skill. */
export function shardOf(decision: ScalingDecision): ShardType {
  if (decision.reason === 'swat') return 'swat'
  if (decision.reason === 'rebalance') return 'domain'
  return 'replica'
}

/**
 * The family a decision belongs to: the thing whose changes are numbered by `gen` — a kind's replica
 * count (`scale:K`), one need (`swat:<need>`), one skill rebalanced to a kind (`rebalance:K:<skill>`).
 */
export function familyOf(decision: ScalingDecision): string {
  if (decision.reason === 'swat') return `swat:${decision.need ?? ''}`
  if (decision.reason === 'rebalance') return `rebalance:${decision.kind}:${decision.scope ?? ''}`
  return `scale:${decision.kind}`
}

// ------------------------------------------------------------------ the fold

/** An entry of the op-log document (src/crdt/op-log.ts): its place in the one order, and its body. */
export type ScalingLogEntry = OpLogEntry

/**
 * won: the winner of its generation, not carried out yet; done: carried out; lost: an earlier decision
 * of its generation won and its target has not said so yet; undone: it lost and its target said so
 * (undoing what it did, if anything); failed: it could not be carried out.
 */
export type DecisionStatus = 'won' | 'done' | 'lost' | 'undone' | 'failed'

export interface SettledDecision {
  hlc: HlcTimestamp
  /** The principal of the member that wrote it. */
  actor: string
  index: number
  decision: ScalingDecision
  family: string
  /** family@gen: the decisions that compete. */
  key: string
  status: DecisionStatus
  /** For a decision that lost: the id of its generation's winner (if one is left). */
  winner?: string
  /** The principal the target spawned (done), or stopped / brought back (undo). */
  agent?: PrincipalId
  /** Wall time (ms) of the target's `done` entry. */
  doneAt?: number
  error?: string
}

export interface Settlement {
  /** Every decision, in the one order. */
  readonly decisions: readonly SettledDecision[]
  readonly byId: ReadonlyMap<string, SettledDecision>
  /** The generation the next change of `family` takes: one past the last that has a standing winner. */
  nextGen(family: string): number
  /** Entries that were no scaling entry, repeated a decision id, or named a decision they may not (done or undo by another member). */
  readonly ignored: number
}

export interface SettleOptions {
  /** Whether `actor` (a principal) is the member `target` (a peer id); default: the same Ed25519 key. */
  sameMember?(actor: string, target: string): boolean
  /** Only the newest this many entries are folded (every replica drops the same ones); default 10,000. */
  maxEntries?: number
}

const principalOfPeer = new RecentMap<string, string | null>(1024)

/** Whether the principal `actor` is the key of the peer id `target`. */
export function isSameMember(actor: string, target: string): boolean {
  let principal = principalOfPeer.get(target)
  if (principal === undefined) {
    try {
      principal = principalFromPeerId(peerIdFromString(target))
    } catch {
      principal = null
    }
    principalOfPeer.set(target, principal)
  }
  return principal === actor
}

/**
 * Folds the document into decisions and their winners: the same entries in any arrival order give
 * the same result. In each generation of a family the earliest decision (HLC, actor, index) that was
 * neither undone nor failed wins; `done` and `undo` count only from the decision's target, `failed`
 * from any member (a target that died is marked failed by whoever sees it gone).
 */
export function settle(entries: readonly ScalingLogEntry[], options: SettleOptions = {}): Settlement {
  const sameMember = options.sameMember ?? isSameMember
  const maxEntries = options.maxEntries ?? 10_000
  let sorted = entries.filter(e => e != null && isHlc(e.hlc) && typeof e.actor === 'string').slice()
  sorted.sort(compareOpLogEntries)
  if (sorted.length > maxEntries) sorted = sorted.slice(sorted.length - maxEntries)
  let ignored = entries.length - sorted.length
  const decisions: SettledDecision[] = []
  const byId = new Map<string, SettledDecision>()
  const done = new Map<string, { agent?: PrincipalId; at: number }>()
  const undone = new Map<string, { agent?: PrincipalId }>()
  const failed = new Map<string, string>()
  // decisions first (an entry about a decision may sort before it: a replica's clock behind another's)
  const others: Array<{ entry: Exclude<ScalingEntry, ScalingDecision>; at: ScalingLogEntry }> = []
  for (const e of sorted) {
    const parsed = parseScalingEntry(e.body)
    if (parsed == null) {
      ignored++
      continue
    }
    if (!isDecision(parsed)) {
      others.push({ entry: parsed, at: e })
      continue
    }
    if (byId.has(parsed.id)) {
      ignored++
      continue
    }
    const family = familyOf(parsed)
    const settled: SettledDecision = {
      hlc: e.hlc,
      actor: e.actor,
      index: e.index,
      decision: parsed,
      family,
      key: `${family}@${parsed.gen}`,
      status: 'lost'
    }
    decisions.push(settled)
    byId.set(parsed.id, settled)
  }
  for (const { entry, at } of others) {
    const d = byId.get(entry.id)
    const slot = 'done' in entry ? entry.done : 'undo' in entry ? entry.undo : entry.failed
    if (d == null || d.decision.slot !== slot) {
      ignored++
      continue
    }
    if ('failed' in entry) {
      // another member may give up on a decision its target has not carried out; once the target
      // said done (earlier in the one order), only the target may say it failed
      if (done.has(entry.id) && !sameMember(at.actor, d.decision.target)) {
        ignored++
        continue
      }
      if (!failed.has(entry.id)) failed.set(entry.id, entry.error)
      continue
    }
    if (!sameMember(at.actor, d.decision.target)) {
      ignored++
      continue
    }
    if ('done' in entry) {
      if (!done.has(entry.id)) done.set(entry.id, { agent: entry.agent, at: at.hlc[0] })
    } else if (!undone.has(entry.id)) undone.set(entry.id, { agent: entry.agent })
  }
  const winners = new Map<string, SettledDecision>()
  for (const d of decisions) {
    const id = d.decision.id
    if (failed.has(id) || undone.has(id) || winners.has(d.key)) continue
    winners.set(d.key, d)
  }
  const lastGen = new Map<string, number>()
  for (const d of decisions) {
    const id = d.decision.id
    const did = done.get(id)
    if (did != null) {
      if (did.agent !== undefined) d.agent = did.agent
      d.doneAt = did.at
    }
    const winner = winners.get(d.key)
    if (failed.has(id)) {
      d.status = 'failed'
      d.error = failed.get(id)
    } else if (undone.has(id)) {
      d.status = 'undone'
      const agent = undone.get(id)?.agent
      if (agent !== undefined) d.agent = agent
    } else if (winner === d) {
      d.status = did != null ? 'done' : 'won'
      lastGen.set(d.family, Math.max(lastGen.get(d.family) ?? -1, d.decision.gen))
    } else d.status = 'lost'
    if ((d.status === 'lost' || d.status === 'undone') && winner != null && winner !== d) d.winner = winner.decision.id
  }
  return {
    decisions,
    byId,
    nextGen: family => (lastGen.get(family) ?? -1) + 1,
    ignored
  }
}

// ------------------------------------------------------------------ what the loop sees

/** One agent's fleet row, as the loop needs it (src/work/fleet.ts heartbeats). */
export interface ScalingRow {
  agent: PrincipalId
  kind: string
  status: 'active' | 'idle' | 'overloaded' | 'retiring'
  load: number
  /** The member (peer id) that hosts it. */
  host: string
}

/** A live member that could host agents: its peer id, the kinds it runs, its load (fleet summary). */
export interface ScalingMember {
  peerId: string
  kinds: readonly string[]
  load?: number
}

/** An open need of the swarm (src/work/swarm.ts): `key` names it for good (`<from>/<id>`). */
export interface ScalingNeed {
  key: string
  skill: string
  urgency: 'low' | 'normal' | 'high' | 'critical'
}

/** The latest offer of an agent (expired ones are not listed). */
export interface ScalingOffer {
  from: PrincipalId
  skills: readonly string[]
  load: number
}

export interface ScalingView {
  now: number
  /** Fresh fleet rows (stale ones left out). */
  rows: readonly ScalingRow[]
  /** Alive members. */
  members: readonly ScalingMember[]
  needs: readonly ScalingNeed[]
  offers: readonly ScalingOffer[]
  settled: Settlement
}

export interface PlannerOptions {
  /** How long an urgent need goes uncovered before a swat agent is spawned, ms; default 15 s. */
  swatAfter?: number
  /** How long a carried-out decision may take to show in the fleet rows before the loop stops waiting for it, ms; default 90 s. */
  realizeGrace?: number
  /** A new decision id (an agent id for a spawn); default random. */
  newId?(reason: ScalingReason): string
}

function randomDecisionId(reason: ScalingReason): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8))
  const prefix = reason === 'load' ? 'r' : reason === 'idle' ? 'x' : reason === 'swat' ? 'swat' : 'd'
  return `${prefix}-${Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('')}`
}

/** When a condition was first seen, restarted whenever it changes. */
class Since<T> {
  private value?: T
  private at = 0

  /** How long `value` has held, as of `now` (0 the first time it is seen). */
  held(value: T, now: number): number {
    if (this.value !== value) {
      this.value = value
      this.at = now
    }
    return now - this.at
  }

  reset(): void {
    this.value = undefined
  }
}

/**
 * The policy decisions, from what a member sees: pure but for the clocks of sustained conditions it
 * keeps between passes (the condition must hold for `sustain` as seen by this member).
 */
export class ScalingPlanner {
  private policies: ResolvedPolicy[]
  private readonly swatAfter: number
  private readonly realizeGrace: number
  private readonly newId: (reason: ScalingReason) => string
  private readonly scale = new Map<string, Since<'grow' | 'shrink' | undefined>>()
  private readonly uncovered = new Map<string, number>()
  private readonly overloaded = new Map<string, number>()

  constructor(policies: ResolvedPolicy[], options: PlannerOptions = {}) {
    this.policies = policies
    this.swatAfter = options.swatAfter ?? 15_000
    this.realizeGrace = options.realizeGrace ?? 90_000
    this.newId = options.newId ?? randomDecisionId
  }

  setPolicies(policies: ResolvedPolicy[]): void {
    this.policies = policies
    for (const kind of this.scale.keys()) if (!policies.some(p => p.kind === kind)) this.scale.delete(kind)
  }

  /** The decisions to write now (none most of the time). */
  plan(view: ScalingView): ScalingDecision[] {
    const live = view.rows.filter(r => r.status !== 'retiring')
    const out: ScalingDecision[] = []
    for (const policy of this.policies) {
      const d = this.planKind(policy, view, live)
      if (d != null) out.push(d)
    }
    out.push(...this.planSwat(view, live))
    out.push(...this.planRebalance(view, live))
    return out
  }

  /**
   * Whether the family's last change is still under way: a winner not carried out, a loser carried
   * out and not undone yet, or a change carried out that the fleet rows do not show yet.
   */
  pending(family: string, view: ScalingView): boolean {
    for (const d of view.settled.decisions) {
      if (d.family !== family) continue
      if (d.status === 'won') return true
      if (d.status === 'lost' && d.agent !== undefined) return true
      if (d.status !== 'done' || d.doneAt === undefined || view.now - d.doneAt >= this.realizeGrace) continue
      if (d.decision.decision === 'spawn' && d.agent !== undefined && !view.rows.some(r => r.agent === d.agent))
        return true
      if (d.decision.decision === 'retire') {
        const agent = d.decision.agent
        if (view.rows.some(r => r.agent === agent && r.status !== 'retiring')) return true
      }
    }
    return false
  }

  /** The least-loaded live member offering `kind`; ties by rendezvous rank on `key`. */
  pickMember(kind: string, key: string, view: ScalingView): string | undefined {
    const offering = view.members.filter(m => m.kinds.includes(kind))
    if (offering.length === 0) return undefined
    const order = rank(
      key as PrincipalId,
      offering.map(m => m.peerId)
    )
    const place = new Map(order.map((p, i) => [p, i]))
    offering.sort((a, b) => (a.load ?? 0) - (b.load ?? 0) || (place.get(a.peerId) ?? 0) - (place.get(b.peerId) ?? 0))
    return offering[0].peerId
  }

  private planKind(
    policy: ResolvedPolicy,
    view: ScalingView,
    live: readonly ScalingRow[]
  ): ScalingDecision | undefined {
    const { kind } = policy
    const family = `scale:${kind}`
    let since = this.scale.get(kind)
    if (since == null) {
      since = new Since()
      this.scale.set(kind, since)
    }
    if (this.pending(family, view)) {
      since.reset()
      return undefined
    }
    const rows = live.filter(r => r.kind === kind)
    const n = rows.length
    const load = n === 0 ? undefined : rows.reduce((sum, r) => sum + r.load, 0) / n
    let want: 'grow' | 'shrink' | undefined
    if (n < policy.min || (load !== undefined && load > policy.target && n < policy.max)) want = 'grow'
    else if (load !== undefined && load < policy.idleBelow && n > policy.min) want = 'shrink'
    const held = since.held(want, view.now)
    if (want === undefined || held < policy.sustain) return undefined
    const gen = view.settled.nextGen(family)
    if (want === 'grow') {
      const slot = `grow:${kind}:${n}`
      const target = this.pickMember(kind, `${family}@${gen}`, view)
      if (target === undefined) return undefined
      since.reset()
      return { decision: 'spawn', kind, slot, gen, target, reason: 'load', id: this.newId('load') }
    }
    // only what scaling spawned as a replica retires for idleness
    const replicas = new Set<string>()
    for (const d of view.settled.decisions)
      if (d.status === 'done' && d.decision.reason === 'load' && d.agent !== undefined) replicas.add(d.agent)
    const idlest = rows
      .filter(r => replicas.has(r.agent))
      .sort((a, b) => a.load - b.load || (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0))[0]
    if (idlest == null) return undefined
    since.reset()
    return {
      decision: 'retire',
      kind,
      slot: `shrink:${kind}:${n}`,
      gen,
      target: idlest.host,
      agent: idlest.agent,
      reason: 'idle',
      id: this.newId('idle')
    }
  }

  private planSwat(view: ScalingView, live: readonly ScalingRow[]): ScalingDecision[] {
    const swatKinds = new Map<string, string>()
    for (const p of this.policies)
      for (const [skill, kind] of p.swat) if (!swatKinds.has(skill)) swatKinds.set(skill, kind)
    const out: ScalingDecision[] = []
    const open = new Set<string>()
    for (const need of view.needs) {
      open.add(need.key)
      const kind = swatKinds.get(need.skill)
      if (kind === undefined || !URGENT.has(need.urgency)) continue
      const family = `swat:${need.key}`
      // once per need: any standing decision (carried out or not) settles it
      if (view.settled.nextGen(family) > 0 || this.pending(family, view)) {
        this.uncovered.delete(need.key)
        continue
      }
      if (view.offers.some(o => o.skills.includes(need.skill))) {
        this.uncovered.delete(need.key)
        continue
      }
      const since = this.uncovered.get(need.key) ?? view.now
      this.uncovered.set(need.key, since)
      if (view.now - since < this.swatAfter) continue
      const target = this.pickMember(kind, `${family}@0`, view)
      if (target === undefined) continue
      this.uncovered.delete(need.key)
      out.push({
        decision: 'spawn',
        kind,
        slot: `swat:${need.key}`,
        gen: 0,
        target,
        reason: 'swat',
        id: this.newId('swat'),
        scope: need.skill,
        need: need.key
      })
    }
    for (const key of this.uncovered.keys()) if (!open.has(key)) this.uncovered.delete(key)
    // a swat agent is temporary: once its need is no longer open (expired or met), it retires
    for (const d of view.settled.decisions) {
      if (d.decision.reason !== 'swat' || d.decision.decision !== 'spawn' || d.status !== 'done') continue
      const need = d.decision.need ?? ''
      if (open.has(need) || d.agent === undefined) continue
      const family = d.family
      if (view.settled.nextGen(family) > 1 || this.pending(family, view)) continue
      const row = live.find(r => r.agent === d.agent)
      if (row == null) continue
      out.push({
        decision: 'retire',
        kind: d.decision.kind,
        slot: `swat-end:${need}`,
        gen: 1,
        target: row.host,
        agent: row.agent,
        reason: 'swat',
        id: this.newId('swat'),
        need,
        ...(d.decision.scope === undefined ? {} : { scope: d.decision.scope })
      })
    }
    return out
  }

  private planRebalance(view: ScalingView, live: readonly ScalingRow[]): ScalingDecision[] {
    const out: ScalingDecision[] = []
    const touched = new Set<string>()
    for (const policy of this.policies) {
      for (const { skill, kind } of policy.rebalance) {
        const family = `rebalance:${kind}:${skill}`
        let decided = false
        for (const row of live) {
          if (row.kind !== policy.kind) continue
          const offers = view.offers.some(o => o.from === row.agent && o.skills.includes(skill))
          const overloaded = row.status === 'overloaded' || row.load > policy.target
          if (!offers || !overloaded) continue
          const trackKey = `${family}|${row.agent}`
          touched.add(trackKey)
          const since = this.overloaded.get(trackKey) ?? view.now
          this.overloaded.set(trackKey, since)
          if (decided || view.now - since < policy.sustain) continue
          if (this.pending(family, view) || this.domainRuns(family, view)) continue
          const gen = view.settled.nextGen(family)
          const target = this.pickMember(kind, `${family}@${gen}`, view)
          if (target === undefined) continue
          decided = true
          this.overloaded.delete(trackKey)
          out.push({
            decision: 'spawn',
            kind,
            slot: `rebalance:${kind}:${skill}:${gen}`,
            gen,
            target,
            reason: 'rebalance',
            id: this.newId('rebalance'),
            scope: skill
          })
        }
      }
    }
    for (const key of this.overloaded.keys()) if (!touched.has(key)) this.overloaded.delete(key)
    return out
  }

  /** Whether an agent spawned for this rebalanced skill runs (is in the fleet rows). */
  private domainRuns(family: string, view: ScalingView): boolean {
    return view.settled.decisions.some(
      d =>
        d.family === family && d.status === 'done' && d.agent !== undefined && view.rows.some(r => r.agent === d.agent)
    )
  }
}

// ------------------------------------------------------------------ the loop

/** The op-log document the decisions live in (an OpLogDocument of `cyberspace.scaling`). */
export interface ScalingLog {
  entries(): readonly ScalingLogEntry[]
  append(bodies: readonly unknown[], options?: AbortOptions): Promise<unknown>
  addEventListener(type: 'change', listener: () => void): void
  removeEventListener(type: 'change', listener: () => void): void
}

/** What the loop needs of the fleet (src/work/fleet.ts). */
export interface ScalingFleet {
  /** Fresh rows (stale ones left out), with their host. */
  rows(): ScalingRow[]
  /** Load of each member by peer id, from its fleet summary; a member missing counts as 0. */
  memberLoads(): ReadonlyMap<string, number>
}

/** What the loop needs of the swarm (src/work/swarm.ts). */
export interface ScalingSwarm {
  needs(): ScalingNeed[]
  offers(): ScalingOffer[]
}

/** What the loop needs of the agents service (src/actor/agents.ts). */
export interface ScalingAgents {
  spawn(kind: string, options: { id: string } & AbortOptions): Promise<{ principal: PrincipalId }>
  stop(principal: PrincipalId, options?: AbortOptions): Promise<void>
  list(): Array<{ principal: PrincipalId; kind: string; id: string }>
  get(principal: PrincipalId): { principal: PrincipalId; kind: string; id: string } | undefined
}

/** A journal event (src/work/events.ts `EventJournal.record`): one per decision and per done/undo/failed entry. */
export interface ScalingEvent {
  hlc: HlcTimestamp
  source: 'fleet'
  /** scaling.spawn, scaling.retire, scaling.done, scaling.undo, scaling.failed */
  type: string
  /** The slot. */
  subject: string
  data: Record<string, unknown>
  /** Dedup key: the entry's place in the document. */
  id: string
}

export interface ScalingInit {
  policies?: ScalingPolicy[]
  /** Time between two passes of the loop, ms; default 10 s. */
  interval?: number
  /** How long a decision addressed here is known before it is carried out, ms; default 2 s (so a concurrent one can arrive first). */
  settle?: number
  /** How long an urgent need goes uncovered before a swat agent is spawned, ms; default 15 s. */
  swatAfter?: number
  /** How long a change carried out may take to show in the fleet rows, ms; default 90 s. */
  realizeGrace?: number
  /** How long a winning decision may wait for a target that is no longer a live member before it is marked failed, ms; default 30 s. */
  abandonAfter?: number
  /** How long a winning decision may wait for its target to carry it out before it is marked failed, ms; default 5 min. */
  carryTimeout?: number
  now?: () => number
  newId?(reason: ScalingReason): string
}

export interface ScalingComponents {
  /** This member's peer id. */
  self: string
  /** Opens the decisions document (`state.open(SCALING_DOCUMENT, 'op-log')`). */
  openLog(): Promise<ScalingLog>
  fleet: ScalingFleet
  swarm?: ScalingSwarm
  /** Alive members and the kinds they run (see `membersOf`). */
  members(): ScalingMember[]
  agents: ScalingAgents
  /** Retires a hosted agent: hands its items on, says so, stops it (the work service's `retire`). */
  retire(principal: PrincipalId, options?: AbortOptions): Promise<void>
  record?(event: ScalingEvent): void
  logger: ComponentLogger
}

export interface Scaling {
  start(): Promise<void>
  stop(): Promise<void>
  policies(): ResolvedPolicy[]
  /** Adds or replaces the policy of a kind. */
  setPolicy(policy: ScalingPolicy): ResolvedPolicy
  removePolicy(kind: string): void
  /** One pass now: decide what the policies call for, write it, then carry out what is addressed here. Returns what it wrote. */
  tick(options?: AbortOptions): Promise<ScalingDecision[]>
  /** Carries out (or undoes) the decisions addressed to this member that are due. */
  carryOut(options?: AbortOptions): Promise<void>
  /** Every decision, folded: its status and, for a loser, the winner. */
  decisions(): SettledDecision[]
}

function checkMs(value: number | undefined, field: string, min: number, max: number, fallback: number): number {
  const v = value ?? fallback
  if (!Number.isSafeInteger(v) || v < min || v > max)
    throw new InvalidScalingOptionError(`${field} must be an integer of ms in ${min}..${max}`)
  return v
}

/** The alive members of a membership view (src/membership/service.ts) with the kinds their metadata says they run. */
export function membersOf(
  members: ReadonlyArray<{ peerId: string; state: string; meta: Record<string, string> }>,
  loads: ReadonlyMap<string, number> = new Map()
): ScalingMember[] {
  return members
    .filter(m => m.state === 'alive')
    .map(m => ({ peerId: m.peerId, kinds: offeredKinds(m.meta), load: loads.get(m.peerId) }))
}

/** What `fleetView` reads of the fleet (src/work/fleet.ts `Fleet`): rows with their host's principal, and member summaries. */
export interface FleetLike {
  rows(): ReadonlyArray<{
    agent: PrincipalId
    kind: string
    status: ScalingRow['status']
    load: number
    host: string
    stale: boolean
  }>
  status(): { members: ReadonlyArray<{ member: string; summary: string }> }
}

const peerOfPrincipal = new RecentMap<string, string | null>(1024)

/** The peer id of a member's principal (a fleet row names its host by principal; decisions by peer id). */
function peerIdOf(principal: string): string | undefined {
  let peer = peerOfPrincipal.get(principal)
  if (peer === undefined) {
    try {
      peer = peerIdFromPrincipal(principal as PrincipalId).toString()
    } catch {
      peer = null
    }
    peerOfPrincipal.set(principal, peer)
  }
  return peer ?? undefined
}

/** A member's load from its fleet summary line (`n=3 a=2 i=1 o=0 r=0 load=0.71`). */
export function summaryLoad(summary: string): number | undefined {
  const match = /(?:^|\s)load=(\d+(?:\.\d+)?)(?:\s|$)/.exec(summary)
  if (match == null) return undefined
  const load = Number(match[1])
  return Number.isFinite(load) ? load : undefined
}

/** The fleet as the loop reads it: fresh rows with their host's peer id, and each member's summary load. */
export function fleetView(fleet: FleetLike): ScalingFleet {
  return {
    rows: () => {
      const out: ScalingRow[] = []
      for (const r of fleet.rows()) {
        if (r.stale) continue
        const host = peerIdOf(r.host)
        if (host === undefined) continue
        out.push({ agent: r.agent, kind: r.kind, status: r.status, load: r.load, host })
      }
      return out
    },
    memberLoads: () => {
      const loads = new Map<string, number>()
      for (const m of fleet.status().members) {
        const peer = peerIdOf(m.member)
        const load = summaryLoad(m.summary)
        if (peer !== undefined && load !== undefined) loads.set(peer, load)
      }
      return loads
    }
  }
}

/** What `swarmView` reads of the swarm (src/work/swarm.ts `Swarm`). */
export interface SwarmLike {
  needs(): ReadonlyArray<{ from: PrincipalId; id: string; skill: string; urgency: ScalingNeed['urgency'] }>
  offers(): ReadonlyArray<{ from: PrincipalId; skills: readonly string[]; load: number }>
}

/** The swarm as the loop reads it: open needs named `<from>/<id>`, and the live offers. */
export function swarmView(swarm: SwarmLike): ScalingSwarm {
  return {
    needs: () => swarm.needs().map(n => ({ key: `${n.from}/${n.id}`, skill: n.skill, urgency: n.urgency })),
    offers: () => swarm.offers().map(o => ({ from: o.from, skills: o.skills, load: o.load }))
  }
}

export class ScalingService implements Scaling {
  private readonly components: ScalingComponents
  private readonly log: Logger
  private readonly planner: ScalingPlanner
  private readonly policyMap = new Map<string, ResolvedPolicy>()
  private readonly interval: number
  private readonly settleMs: number
  private readonly abandonAfter: number
  private readonly carryTimeout: number
  private readonly realizeGrace: number
  private readonly now: () => number
  private doc?: ScalingLog
  private opening?: Promise<ScalingLog>
  private settled?: Settlement
  private running = false
  private timer?: ReturnType<typeof setTimeout>
  private carryTimer?: ReturnType<typeof setTimeout>
  /** Serializes passes and carrying out: one at a time. */
  private chain: Promise<unknown> = Promise.resolve()
  /** When this member first knew each decision addressed to it (the settle delay counts from there). */
  private readonly firstSeen = new RecentMap<string, number>(4096)
  /** What this member did for a decision: the agent it spawned, or the agent (kind, id) it retired. */
  private readonly carried = new RecentMap<string, { agent: PrincipalId; kind: string; id: string }>(4096)
  /** Journal events already recorded (by entry place). */
  private readonly recorded = new RecentMap<string, true>(20_000)
  private readonly onChange = (): void => {
    this.settled = undefined
    this.recordNew()
    this.scheduleCarry(0)
  }

  constructor(init: ScalingInit, components: ScalingComponents) {
    this.components = components
    this.log = components.logger.forComponent('cyberspace:scaling')
    this.interval = checkMs(init.interval, 'interval', 10, 86_400_000, 10_000)
    this.settleMs = checkMs(init.settle, 'settle', 0, 600_000, 2_000)
    this.abandonAfter = checkMs(init.abandonAfter, 'abandonAfter', 0, 86_400_000, 30_000)
    this.carryTimeout = checkMs(init.carryTimeout, 'carryTimeout', 0, 86_400_000, 300_000)
    const swatAfter = checkMs(init.swatAfter, 'swatAfter', 0, 86_400_000, 15_000)
    const realizeGrace = checkMs(init.realizeGrace, 'realizeGrace', 0, 86_400_000, 90_000)
    this.realizeGrace = realizeGrace
    this.now = init.now ?? Date.now
    if (typeof components.openLog !== 'function') throw new InvalidScalingOptionError('openLog must be a function')
    if (typeof components.retire !== 'function') throw new InvalidScalingOptionError('retire must be a function')
    for (const p of init.policies ?? []) {
      const resolved = checkPolicy(p)
      this.policyMap.set(resolved.kind, resolved)
    }
    this.planner = new ScalingPlanner([...this.policyMap.values()], { swatAfter, realizeGrace, newId: init.newId })
  }

  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    await this.openIfNeeded()
    this.scheduleTick(this.interval)
  }

  /**
   * The decisions document, opened the first time this member has to do with scaling: it has a
   * policy (it decides), or it runs a kind (it may be a target). A node with neither stores and
   * syncs nothing for scaling.
   */
  private async openIfNeeded(): Promise<ScalingLog | undefined> {
    if (this.doc != null) return this.doc
    if (!this.running) return undefined
    const self = this.components.self
    const runsKinds = this.components.members().some(m => m.peerId === self && m.kinds.length > 0)
    if (this.policyMap.size === 0 && !runsKinds) return undefined
    this.opening ??= (async () => {
      try {
        const doc = await this.components.openLog()
        doc.addEventListener('change', this.onChange)
        this.doc = doc
        this.settled = undefined
        this.recordNew()
        this.scheduleCarry(0)
        return doc
      } finally {
        this.opening = undefined
      }
    })()
    return await this.opening
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    clearTimeout(this.timer)
    clearTimeout(this.carryTimer)
    await this.opening?.catch(() => {})
    await this.chain.catch(() => {})
    this.doc?.removeEventListener('change', this.onChange)
    this.doc = undefined
  }

  policies(): ResolvedPolicy[] {
    return [...this.policyMap.values()]
  }

  setPolicy(policy: ScalingPolicy): ResolvedPolicy {
    const resolved = checkPolicy(policy)
    this.policyMap.set(resolved.kind, resolved)
    this.planner.setPolicies(this.policies())
    this.openIfNeeded().catch(err => this.log.error('could not open %s - %e', SCALING_DOCUMENT, err))
    return resolved
  }

  removePolicy(kind: string): void {
    this.policyMap.delete(kind)
    this.planner.setPolicies(this.policies())
  }

  decisions(): SettledDecision[] {
    return this.settlement().decisions.map(d => ({ ...d }))
  }

  async tick(options: AbortOptions = {}): Promise<ScalingDecision[]> {
    if (!this.running) throw new ScalingNotRunningError('the scaling loop is not running')
    return await this.serial(async () => {
      if ((await this.openIfNeeded()) == null) return []
      // winners nobody will carry out are given up first, so this pass can decide their change again
      const abandoned = this.abandoned(this.view())
      if (abandoned.length > 0) await this.append(abandoned, options)
      const decisions = this.planner.plan(this.view())
      if (decisions.length > 0) {
        await this.append(decisions, options)
        for (const d of decisions)
          this.log('decided %s %s of %s on %s (%s)', d.decision, d.slot, d.kind, d.target, d.reason)
      }
      await this.carryDue(options)
      return decisions
    })
  }

  async carryOut(options: AbortOptions = {}): Promise<void> {
    if (!this.running) throw new ScalingNotRunningError('the scaling loop is not running')
    await this.serial(async () => {
      if ((await this.openIfNeeded()) == null) return
      await this.carryDue(options)
    })
  }

  // ------------------------------------------------------------------ internals

  private async serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.chain.then(work, work)
    this.chain = run.catch(() => {})
    return await run
  }

  private settlement(): Settlement {
    this.settled ??= settle(this.doc?.entries() ?? [])
    return this.settled
  }

  private view(): ScalingView {
    const loads = this.components.fleet.memberLoads()
    const members = this.components.members().map(m => ({ ...m, load: m.load ?? loads.get(m.peerId) }))
    return {
      now: this.now(),
      rows: this.components.fleet.rows(),
      members,
      needs: this.components.swarm?.needs() ?? [],
      offers: this.components.swarm?.offers() ?? [],
      settled: this.settlement()
    }
  }

  /**
   * Winners never carried out, addressed to a member that is no longer alive (after abandonAfter) or
   * to one that has not acted (after carryTimeout): marked failed, so their change can be decided again.
   */
  private abandoned(view: ScalingView): FailedEntry[] {
    const alive = new Set(view.members.map(m => m.peerId))
    alive.add(this.components.self)
    const out: FailedEntry[] = []
    for (const d of view.settled.decisions) {
      if (d.status !== 'won') continue
      const age = view.now - d.hlc[0]
      const gone = !alive.has(d.decision.target) && age >= this.abandonAfter
      if (!gone && age < this.carryTimeout) continue
      out.push({ failed: d.decision.slot, id: d.decision.id, error: gone ? 'target-gone' : 'not-carried-out' })
    }
    return out
  }

  private scheduleTick(delay: number): void {
    if (!this.running) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.tick()
        .catch(err => this.log.error('scaling pass failed - %e', err))
        .finally(() => this.scheduleTick(this.interval))
    }, delay)
  }

  private scheduleCarry(delay: number): void {
    if (!this.running) return
    clearTimeout(this.carryTimer)
    this.carryTimer = setTimeout(() => {
      this.carryOut().catch(err => this.log.error('carrying out scaling decisions failed - %e', err))
    }, delay)
  }

  /** Carries out the winners addressed here that are due, and undoes the losers addressed here. */
  private async carryDue(options: AbortOptions): Promise<void> {
    const self = this.components.self
    let wake: number | undefined
    let acts = 0
    for (const d of this.settlement().decisions) {
      if (!this.running) return
      if (d.decision.target !== self) continue
      if (acts >= MAX_ACTS_PER_PASS) {
        // bounded work per pass, whatever members wrote: the rest in the next one
        wake = this.now()
        break
      }
      const id = d.decision.id
      if (d.status === 'won') {
        const now = this.now()
        let seen = this.firstSeen.get(id)
        if (seen === undefined) {
          seen = now
          this.firstSeen.set(id, seen)
        }
        const due = seen + this.settleMs
        if (now < due) {
          wake = Math.min(wake ?? due, due)
          continue
        }
        acts++
        await this.perform(d, options)
      } else if (d.status === 'lost') {
        acts++
        await this.undo(d, options)
      } else if (d.status === 'failed' && d.decision.decision === 'spawn') {
        // marked failed while (or after) this member spawned it: the agent goes, the change is decided again
        const agent = this.carried.get(id)?.agent ?? d.agent
        if (agent !== undefined && this.components.agents.get(agent) != null) {
          acts++
          await this.undo(d, options)
        }
      }
    }
    if (wake !== undefined) this.scheduleCarry(Math.max(0, wake - this.now()))
  }

  private async append(bodies: unknown[], options: AbortOptions): Promise<void> {
    await this.doc?.append(bodies, options)
    this.settled = undefined
    this.recordNew()
  }

  /**
   * Why this member, as target, will not carry a winning decision out, if it will not: another member
   * may have decided from an older view, or be mistaken or hostile — the target checks the decision
   * against its own policy and view before acting.
   */
  private refusal(decision: ScalingDecision): string | undefined {
    if (decision.decision === 'spawn' && decision.reason === 'swat') {
      const swarm = this.components.swarm
      if (swarm != null && !swarm.needs().some(n => n.key === decision.need)) return 'no-such-need'
      return undefined
    }
    if (decision.decision === 'retire') {
      // scaling retires only what a scaling spawn of this member's put here, of the kind named
      const info = this.components.agents.get(decision.agent)
      if (info == null) return 'not-hosted'
      if (info.kind !== decision.kind) return 'wrong-kind'
      const spawn = this.settlement().decisions.find(
        d => d.decision.decision === 'spawn' && d.status === 'done' && d.agent === decision.agent
      )
      if (spawn == null) return 'not-scaled'
      if (decision.reason === 'swat' && spawn.decision.reason !== 'swat') return 'not-swat'
      if (decision.reason === 'swat') return undefined
    }
    if (decision.decision === 'spawn' && decision.reason === 'rebalance') {
      const asked = [...this.policyMap.values()].some(p =>
        p.rebalance.some(r => r.skill === decision.scope && r.kind === decision.kind)
      )
      return asked ? undefined : 'no-such-rebalance'
    }
    const policy = this.policyMap.get(decision.kind)
    if (policy == null) return 'no-policy'
    const rows = this.components.fleet.rows().filter(r => r.kind === decision.kind && r.status !== 'retiring')
    let n = rows.length
    if (decision.decision === 'spawn') {
      // replicas spawned lately that the rows do not show yet count too
      const now = this.now()
      const shown = new Set(rows.map(r => r.agent))
      for (const d of this.settlement().decisions) {
        if (d.family !== `scale:${decision.kind}` || d.decision.decision !== 'spawn' || d.agent === undefined) continue
        if (
          (d.status === 'done' || d.status === 'lost') &&
          !shown.has(d.agent) &&
          now - (d.doneAt ?? 0) < this.realizeGrace
        )
          n++
      }
      if (n >= policy.max) return 'over-max'
    }
    if (decision.decision === 'retire' && n <= policy.min) return 'at-min'
    return undefined
  }

  private async perform(d: SettledDecision, options: AbortOptions): Promise<void> {
    const { decision } = d
    const agents = this.components.agents
    const refused = this.carried.has(decision.id) ? undefined : this.refusal(decision)
    if (refused !== undefined) {
      this.log('refused to carry out %s %s: %s', decision.decision, decision.slot, refused)
      await this.append([{ failed: decision.slot, id: decision.id, error: refused }], options)
      return
    }
    try {
      if (decision.decision === 'spawn') {
        let agent = this.carried.get(decision.id)?.agent
        agent ??= agents.list().find(a => a.kind === decision.kind && a.id === decision.id)?.principal
        agent ??= (await agents.spawn(decision.kind, { ...options, id: decision.id })).principal
        this.carried.set(decision.id, { agent, kind: decision.kind, id: decision.id })
        this.log('spawned %s/%s (%s) for %s', decision.kind, decision.id, agent, decision.slot)
        await this.append([{ done: decision.slot, id: decision.id, agent }], options)
      } else {
        const info = agents.get(decision.agent)
        if (!this.carried.has(decision.id)) {
          await this.components.retire(decision.agent, options)
          this.carried.set(decision.id, {
            agent: decision.agent,
            kind: info?.kind ?? decision.kind,
            id: info?.id ?? ''
          })
        }
        this.log('retired %s for %s', decision.agent, decision.slot)
        await this.append([{ done: decision.slot, id: decision.id, agent: decision.agent }], options)
      }
    } catch (err) {
      if (options.signal?.aborted === true) throw err
      this.log('could not carry out %s %s - %e', decision.decision, decision.slot, err)
      const error = (err instanceof Error ? err.name : 'Error').slice(0, 64)
      await this.append([{ failed: decision.slot, id: decision.id, error }], options)
    }
  }

  /** A decision addressed here lost: undo what was done for it (if anything) and say so. */
  private async undo(d: SettledDecision, options: AbortOptions): Promise<void> {
    const { decision } = d
    const agents = this.components.agents
    const carried = this.carried.get(decision.id)
    let agent: PrincipalId | undefined
    if (decision.decision === 'spawn') {
      agent =
        carried?.agent ??
        d.agent ??
        agents.list().find(a => a.kind === decision.kind && a.id === decision.id)?.principal
      if (agent !== undefined && agents.get(agent) != null) {
        try {
          await agents.stop(agent, options)
        } catch (err) {
          // said once it is done: the next pass tries again
          this.log.error('could not stop %s, spawned for %s that did not stand - %e', agent, decision.slot, err)
          return
        }
      }
    } else if (carried != null && carried.id !== '') {
      // it retired an agent it should not have: the agent comes back (a cluster agent under the same principal)
      try {
        agent = (await agents.spawn(carried.kind, { ...options, id: carried.id })).principal
      } catch (err) {
        this.log.error('could not bring back %s retired for the losing %s - %e', carried.agent, decision.slot, err)
      }
    }
    this.log('undid %s %s (%s, winner %s)', decision.decision, decision.slot, d.status, d.winner ?? 'none')
    await this.append([{ undo: decision.slot, id: decision.id, ...(agent === undefined ? {} : { agent }) }], options)
    this.carried.delete(decision.id)
  }

  /** One journal event per document entry, the first time this member sees it. */
  private recordNew(): void {
    const record = this.components.record
    if (record == null || this.doc == null) return
    for (const e of this.doc.entries()) {
      const id = `scaling:${e.hlc[0]}.${e.hlc[1]}:${e.actor}:${e.index}`
      if (this.recorded.has(id)) continue
      this.recorded.set(id, true)
      const parsed = parseScalingEntry(e.body)
      if (parsed == null) continue
      const type = isDecision(parsed)
        ? `scaling.${parsed.decision}`
        : 'done' in parsed
          ? 'scaling.done'
          : 'undo' in parsed
            ? 'scaling.undo'
            : 'scaling.failed'
      const subject = isDecision(parsed)
        ? parsed.slot
        : 'done' in parsed
          ? parsed.done
          : 'undo' in parsed
            ? parsed.undo
            : parsed.failed
      try {
        record({ hlc: e.hlc, source: 'fleet', type, subject, data: { ...parsed, by: e.actor }, id })
      } catch (err) {
        this.log.error('could not record %s - %e', type, err)
      }
    }
  }
}

/** Opens the decisions document of `state`: the `openLog` component. */
export function scalingDocument(state: Pick<State, 'open'>): () => Promise<ScalingLog> {
  return async () => await state.open(SCALING_DOCUMENT, 'op-log')
}

/** The scaling loop of one member: start it once the fleet, the swarm and the decisions document are there. */
export function createScaling(init: ScalingInit, components: ScalingComponents): Scaling {
  return new ScalingService(init, components)
}
