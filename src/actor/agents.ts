/**
 * The agents service (`node.agents`): agents as actors this node hosts, each with its own Ed25519
 * key, a mailbox (src/actor/mailbox-service.ts), a supervisor, and a session log it resumes from
 * (src/actor/session.ts), on this node after a crash of its behaviour or on another node after this
 * one dies.
 *
 * - Kinds: a node runs only kinds registered on it (`define`); it advertises them in its membership
 *   metadata (`kinds`), so every node knows which members could take an agent of a kind over.
 * - Keys: a cluster agent's key is derived from (kind, id) by the cluster's threshold PRF (t members
 *   help; src/threshold/derive.ts), so a successor derives it again; a local agent's key is random,
 *   kept in this node's datastore, and the agent never moves.
 * - Directory: the replicated document `cyberspace.agents` maps each agent to its kind, id, key
 *   source and host; members read and write it, and every member follows it. Since any member may
 *   write it, it only says where to look: a host writes back a changed or deleted entry of an agent
 *   it runs.
 * - Lease: the agent's registry record (its A2A card, signed by the agent) is its lease and what
 *   decides, with a short ttl the registry renews a third into its life. A host that could not renew
 *   stops its copy before the record expires (placement.ts's skew margin), and one that sees a newer
 *   record hosted elsewhere stops at once.
 * - Migration: once an agent's lease has lapsed, the first live member offering its kind by
 *   rendezvous rank (placement.ts) — on a record naming the entry's kind and id — derives the key
 *   again, resumes the session (it followed it ahead of time; records are acknowledged once a
 *   follower holds them), publishes a record with a higher seq, names itself in the directory, and
 *   starts the agent. A node that restarts brings back the agents it noted it ran.
 * - Tools: whatever an agent asks its node to do goes through `tool(name, args)`, checked against the
 *   agent's own chain: `(cyberspace (tool <name> <scope>))` plus the tags of what the tool does.
 * - External agents (kind `external`): a program attached through the node's API receives the agent's
 *   mailbox (`inbox`) and answers (`reply`); a request waits for its answer within the handler deadline.
 *
 * @example
 * node.agents.define('echo', { behaviour: agent => ({ handle: m => m.body }) })
 * const echo = await node.agents.spawn('echo', { id: 'echo-1' })
 * await node.agents.request(other.principal, echo.principal, 'ping', { hello: 1 })
 */
import { privateKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { Key } from 'interface-datastore'
import { shardExtension, SHARD_TYPES } from '../../protocols/registry/codec.ts'
import { isPrincipalId, principalPublicKey } from '../crypto/principal.ts'
import { seedSigner } from '../crypto/sign.ts'
import { atom, parseAdvanced } from '../spki/sexp.ts'
import { spkiTime } from '../spki/cert.ts'
import { parseTag } from '../spki/tag.ts'
import { checkAgentName } from '../threshold/derive.ts'
import { RecentMap } from '../recent-map.ts'
import {
  AgentNotFoundHereError,
  AgentRetiredError,
  AgentRunningError,
  AgentUnauthorizedError,
  ExternalAgentError,
  InvalidAgentOptionError,
  LeaseLostError,
  NoClusterKeyError,
  NoSuchPendingMessageError,
  NotExternalAgentError,
  UnknownKindError,
  UnknownToolError
} from './agent-errors.ts'
import { ActorStoppedError, HandlerTimeoutError, MailboxFullError } from './errors.ts'
import {
  KINDS_META_KEY,
  kindsMeta,
  leaseDeadline,
  mayTakeOver,
  offeredKinds,
  rank,
  successors,
  LEASE_SKEW_MS
} from './placement.ts'
import { Sessions } from './session.ts'
import { AGENT_DIRECTORY, isMemberDocument, sessionOwner } from '../log/service.ts'
import { Supervisor } from './supervisor.ts'
import type { ExitReason } from './actor.ts'
import type { HostedAgent, InboundMessage } from './directory.ts'
import { mailboxSendTag } from './mailbox-service.ts'
import type { Mailbox, Receipt, SendOptions } from './mailbox-service.ts'
import type { AgentSession, SessionChange, SessionInit } from './session.ts'
import type { SupervisionEvent } from './supervisor.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Signer } from '../crypto/sign.ts'
import type { Shard } from '../../protocols/registry/codec.ts'
import type { State } from '../log/service.ts'
import type { OrMapDocument } from '../log/documents.ts'
import type { Membership } from '../membership/service.ts'
import type { AgentSkill } from '../../protocols/registry/codec.ts'
import type { AgentRecordView, Registry } from '../registry/service.ts'
import type { Spki } from '../spki/service.ts'
import type { Tag } from '../spki/tag.ts'
import type { Cluster } from '../threshold/service.ts'
import type { AbortOptions, ComponentLogger, Libp2p, Logger, PeerId, PrivateKey } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'

export { AGENT_DIRECTORY }
/** The kind of agents whose behaviour is a program attached through the node's API. */
export const EXTERNAL_KIND = 'external'
/** Takeovers this node starts per scan interval at most (the rest wait): each costs t members a derivation. */
const MAX_TAKEOVERS_PER_INTERVAL = 4
/** A state field the agents service writes when an agent is stopped for good: no successor brings it back. */
export const STOPPED_FIELD = '$stopped'
/** Where the node notes the agents it runs (so that after a restart it brings back those, and only those). */
const RAN_PREFIX = '/cyberspace/agents-ran/'
/** Where a local agent's key is kept in the node's datastore. */
const KEY_PREFIX = '/cyberspace/agent-keys/'

export type KeySource = 'cluster' | 'local'

/** What the agents service sees of the agent it runs a behaviour for. */
export interface AgentContext {
  readonly principal: PrincipalId
  readonly kind: string
  readonly id: string
  /** Aborted when this incarnation of the behaviour ends. */
  readonly signal: AbortSignal
  /** The agent's state fields (its session), as of the last record. */
  state(): Readonly<Record<string, unknown>>
  /** Records a change of state fields (a field to `undefined` deletes it) in the session log. */
  record(change: SessionChange, options?: AbortOptions): Promise<void>
  /** Takes a checkpoint: a snapshot the agent resumes from. */
  checkpoint(options?: AbortOptions): Promise<void>
  send(to: PrincipalId | string, type: string, body: unknown, options?: SendOptions): Promise<Receipt>
  request(to: PrincipalId | string, type: string, body: unknown, options?: SendOptions): Promise<unknown>
  /** Asks the node to do something, within the agent's own authority. */
  tool(name: string, args?: Record<string, unknown>, options?: AbortOptions): Promise<unknown>
  /** The agent's own key: what it writes elsewhere (a board's operations, swarm messages) it signs with this. */
  readonly signer: Signer
}

/** An agent's behaviour: `handle` answers one message at a time (its value answers a request). */
export interface AgentBehaviour {
  init?(): void | Promise<void>
  handle(message: InboundMessage): unknown
  terminate?(reason: ExitReason): void | Promise<void>
}

export interface AgentDefinition {
  /** A fresh behaviour for each start of an agent of this kind. */
  behaviour(agent: AgentContext): AgentBehaviour
  description?: string
  /** Skills the agent's card declares (the kind is always declared as skill `kind:<kind>`). */
  skills?: AgentSkill[]
  /** Deadline of each handler call, in ms; default the service's. */
  handlerTimeout?: number
  /** Mailbox capacity; default the service's. */
  capacity?: number
  /**
   * For an agent that acts for the cluster: the tag (advanced form) of the certificate the cluster
   * issues it at spawn — signed by t members, valid `clusterCertTtl` — so its chain starts at the
   * cluster key. Only for cluster agents; the spawning node must be one the members let coordinate
   * cluster certificates.
   */
  clusterTag?: string
  /** What shard agents of this kind are (the fleet design's types), said in their card's shard extension. */
  shard?: Shard
}

export interface AgentTool {
  /** The tags (besides `(cyberspace (tool <name> …scope))`) the agent must hold for these arguments. */
  tags?(args: Record<string, unknown>, agent: AgentInfo): Tag[]
  /** What goes after the tool's name in its tag; default nothing (the tool as a whole). */
  scope?(args: Record<string, unknown>): string[]
  run(args: Record<string, unknown>, agent: AgentInfo, options: AbortOptions): Promise<unknown>
}

export interface SpawnOptions extends AbortOptions {
  /** Unique within the kind: 1-64 of a-z 0-9 . _ - ; default random. */
  id?: string
  /** The principal asking, which must hold `(cyberspace (agent (spawn <kind>)))`; none: this node's operator. */
  requester?: PrincipalId
  /** Default 'cluster' when this node holds a cluster share, else 'local'. */
  key?: KeySource
}

export type AgentStatus = 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'crashed'

export interface AgentInfo {
  principal: PrincipalId
  kind: string
  id: string
  key: KeySource
  /** This node's peer id. */
  host: string
  status: AgentStatus
  restarts: number
  /** When the lease (the registry record) expires, ms; 0 before the first publish. */
  leaseExpires: number
  /** Whether a program attached through the API is the behaviour. */
  external: boolean
  /** Why the agent stopped or crashed last, if it did. */
  lastExit?: string
  /** The shard its kind declares, if any. */
  shard?: Shard
}

/** An agent hosted on this node, as code outside its behaviour acts through it. */
export interface Agent {
  readonly principal: PrincipalId
  /** The agent's own key, to act as it (a board's operations, swarm messages). */
  readonly signer: Signer
  info(): AgentInfo | undefined
  send(to: PrincipalId | string, type: string, body: unknown, options?: SendOptions): Promise<Receipt>
  request(to: PrincipalId | string, type: string, body: unknown, options?: SendOptions): Promise<unknown>
  tool(name: string, args?: Record<string, unknown>, options?: AbortOptions): Promise<unknown>
  stop(options?: AbortOptions): Promise<void>
}

/** A message an external agent has to handle: answered with `reply` when it is a request. */
export interface PendingMessage extends InboundMessage {
  /** When it was handed over, ms. */
  received: number
}

export interface AgentsInit {
  /** Life of an agent's registry record (its lease), in ms; default 20 s. Renewed a third into its life. */
  leaseTtl?: number
  /** Clock skew between hosts that the lease allows for, in ms; default 2 s. */
  leaseSkew?: number
  /** How many members besides the host follow each session; default 2. */
  followers?: number
  /** How often the service looks for agents to take over and sessions to follow, in ms; default 5 s. */
  scanInterval?: number
  /** Deadline of a handler call, in ms; default 30 s. */
  handlerTimeout?: number
  /** Mailbox capacity of an agent; default 256. */
  capacity?: number
  /** Restarts of one agent allowed within `period` before it is left crashed; default 5 in 60 s. */
  intensity?: number
  period?: number
  /** Restart backoff of an agent, ms; default 100 ms doubling to 10 s, jitter 0.2. */
  backoff?: { min: number; max: number; randomFactor?: number }
  /** Life of the certificate the cluster issues an agent that acts for it, in ms; default 30 days. */
  clusterCertTtl?: number
  /** Most agents this node hosts; default 1000. */
  maxAgents?: number
  /** Messages an external agent holds before its mailbox pushes back; default 256. */
  maxPending?: number
  session?: SessionInit
  now?: () => number
}

export interface AgentsComponents {
  libp2p: Libp2p<{
    spki: Spki
    registry: Registry
    membership: Membership
    cluster: Cluster
    mailbox: Mailbox
  }>
  state: State
  datastore: Datastore
  logger: ComponentLogger
}

export interface AgentsEvents {
  /** An agent started, stopped, crashed, restarted, or was taken over here. */
  change: CustomEvent<AgentInfo>
}

export interface Agents extends EventTarget {
  /** Registers a kind this node runs (and may take over). */
  define(kind: string, definition: AgentDefinition): void
  kinds(): string[]
  /** Registers a tool agents may call, within their authority. */
  defineTool(name: string, tool: AgentTool): void
  spawn(kind: string, options?: SpawnOptions): Promise<AgentInfo>
  list(): AgentInfo[]
  get(principal: PrincipalId): AgentInfo | undefined
  /** A handle on an agent hosted here, to act as it: `agent.send`, `agent.request`, `agent.tool`, `agent.stop`. */
  agent(principal: PrincipalId): Agent | undefined
  /** Stops an agent for good: removed from the directory, its record withdrawn. */
  stop(principal: PrincipalId, options?: AbortOptions): Promise<void>
  send(
    from: PrincipalId,
    to: PrincipalId | string,
    type: string,
    body: unknown,
    options?: SendOptions
  ): Promise<Receipt>
  request(
    from: PrincipalId,
    to: PrincipalId | string,
    type: string,
    body: unknown,
    options?: SendOptions
  ): Promise<unknown>
  /** Calls a tool as agent `principal` (hosted here), checked against its chain. */
  tool(principal: PrincipalId, name: string, args?: Record<string, unknown>, options?: AbortOptions): Promise<unknown>
  /** The next messages an external agent has to handle, waiting up to `wait` ms for one. */
  inbox(principal: PrincipalId, options?: AbortOptions & { wait?: number; max?: number }): Promise<PendingMessage[]>
  /** Answers a message an external agent took from its inbox (a one-way message: confirms it was handled). */
  reply(principal: PrincipalId, messageId: string, body: unknown, options?: { error?: string }): void
  /** One pass of the placement loop now (takeovers, follows); normally it runs every scanInterval. */
  reconcile(options?: AbortOptions): Promise<void>
  /**
   * Checks every message whose type starts with `prefix` before any hosted agent sees it: `check`
   * returns the message the agent gets (e.g. with its body decoded and verified) or throws the
   * refusal the sender is answered with. One check per prefix; returns its removal.
   */
  intercept(prefix: string, check: InboundCheck): () => void
}

/** What `intercept` runs on a message before the agent sees it. */
export type InboundCheck = (message: InboundMessage, options: AbortOptions) => Promise<InboundMessage>

interface DirectoryEntry {
  kind: string
  id: string
  key: KeySource
  host: string
  since: number
}

interface AgentKey {
  signer: Signer
  privateKey: PrivateKey
}

interface Hosted {
  info: AgentInfo
  signer: Signer
  session: AgentSession
  definition: AgentDefinition
  supervisor?: Supervisor
  /** The message the behaviour is handling now: a record made meanwhile marks it handled. */
  current?: InboundMessage
  leaseTimer?: ReturnType<typeof setTimeout>
  external?: ExternalInbox
  stopping: boolean
  /** The seq of the record this node last published for it (its lease). */
  seq: number
  /** A check of a changed directory entry is under way. */
  checking?: boolean
}

/** The messages waiting for an external program, and the answers it owes. */
class ExternalInbox {
  private readonly waiting: PendingMessage[] = []
  private readonly owed = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  private readonly wakers = new Set<() => void>()
  private readonly max: number
  private readonly now: () => number

  constructor(max: number, now: () => number) {
    this.max = max
    this.now = now
  }

  /** Hands `message` to the program; resolves with its answer (for a one-way message, its confirmation). */
  async deliver(message: InboundMessage, signal: AbortSignal): Promise<unknown> {
    if (this.owed.size >= this.max)
      throw new MailboxFullError(this.max, `the external agent ${message.to} has ${this.max} messages unanswered`)
    return await new Promise<unknown>((resolve, reject) => {
      const entry = { ...message, received: this.now() }
      const onAbort = (): void => {
        this.owed.delete(message.id)
        const i = this.waiting.indexOf(entry)
        if (i >= 0) this.waiting.splice(i, 1)
        reject(signal.reason instanceof Error ? signal.reason : new ActorStoppedError(message.to, 'aborted'))
      }
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      this.owed.set(message.id, {
        resolve: v => {
          signal.removeEventListener('abort', onAbort)
          resolve(v)
        },
        reject: e => {
          signal.removeEventListener('abort', onAbort)
          reject(e)
        }
      })
      this.waiting.push(entry)
      for (const wake of this.wakers) wake()
    })
  }

  async take(max: number, wait: number, signal?: AbortSignal): Promise<PendingMessage[]> {
    if (this.waiting.length === 0 && wait > 0) {
      await new Promise<void>(resolve => {
        const done = (): void => {
          clearTimeout(timer)
          this.wakers.delete(done)
          signal?.removeEventListener('abort', done)
          resolve()
        }
        const timer = setTimeout(done, wait)
        this.wakers.add(done)
        signal?.addEventListener('abort', done, { once: true })
      })
    }
    // a client gone while it waited takes nothing: what it did not get stays for the next one
    if (signal?.aborted === true) return []
    // every message stays owed until the program answers it (a one-way one with an empty reply): a
    // program that took a message and died never had it acknowledged for it, and its sender retries
    return this.waiting.splice(0, max)
  }

  answer(id: string, body: unknown, error?: Error): void {
    const owed = this.owed.get(id)
    if (owed == null || this.waiting.some(m => m.id === id))
      throw new NoSuchPendingMessageError(`no message ${id} is waiting for an answer`)
    this.owed.delete(id)
    if (error != null) owed.reject(error)
    else owed.resolve(body)
  }

  close(): void {
    for (const [id, owed] of this.owed) {
      owed.reject(new ActorStoppedError(id, 'shutdown', `the external agent stopped before answering ${id}`))
    }
    this.owed.clear()
    this.waiting.length = 0
    for (const wake of this.wakers) wake()
  }
}

/** `(cyberspace (<a> (<b> <c>…)))`-shaped tags built from atoms, so no text is ever parsed. */
function nestedTag(path: string[]): Tag {
  // (cyberspace (agent (spawn echo))): the first word heads the outer list, the rest nest once
  const [head, verb, ...rest] = path
  const inner = verb == null ? [atom(head)] : [atom(head), [atom(verb), ...rest.map(r => atom(r))]]
  return parseTag([atom('cyberspace'), inner])
}

/** `(cyberspace (agent (spawn <kind>)))` */
export const spawnTag = (kind: string): Tag => nestedTag(['agent', 'spawn', kind])
/** `(cyberspace (tool <name> …scope))` */
export const toolTag = (name: string, scope: string[] = []): Tag =>
  parseTag([atom('cyberspace'), [atom('tool'), atom(name), ...scope.map(s => atom(s))]])
/** `(cyberspace (log (<action> <doc>)))` */
export const logTag = (action: 'append' | 'read', doc: string): Tag => nestedTag(['log', action, doc])

/** A kind's clusterTag, parsed; InvalidAgentOptionError naming what is wrong. */
function clusterTagOf(text: string): Tag {
  try {
    return parseTag(parseAdvanced(text))
  } catch (err) {
    throw new InvalidAgentOptionError(`clusterTag ${String(text).slice(0, 80)}: ${(err as Error).message}`)
  }
}

function checkTiming(value: unknown, field: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max)
    throw new InvalidAgentOptionError(`${field} must be a whole number from ${min} to ${max}`)
  return value
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8))
  return 'a-' + Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('')
}

function isEntry(x: unknown): x is DirectoryEntry {
  if (x == null || typeof x !== 'object') return false
  const e = x as Record<string, unknown>
  return (
    typeof e.kind === 'string' &&
    typeof e.id === 'string' &&
    (e.key === 'cluster' || e.key === 'local') &&
    typeof e.host === 'string' &&
    e.host.length <= 128 &&
    typeof e.since === 'number'
  )
}

export class AgentsService extends EventTarget implements Agents {
  private readonly components: AgentsComponents
  private readonly log: Logger
  private readonly definitions = new Map<string, AgentDefinition>()
  private readonly tools = new Map<string, AgentTool>()
  /** Checks of inbound messages by type prefix (`intercept`). */
  private readonly checks = new Map<string, InboundCheck>()
  private readonly hosted = new Map<PrincipalId, Hosted>()
  /** Agents being started or taken over here: one attempt at a time per agent. */
  private readonly starting = new Set<PrincipalId>()
  /** When to look at an agent again (its lease had not lapsed yet), ms. */
  private readonly notBefore = new RecentMap<PrincipalId, number>(4096)
  /** When to look at the lease of an agent whose named host is alive again, ms. */
  private readonly watchAt = new RecentMap<PrincipalId, number>(4096)
  private takeoverWindow = 0
  private takeoversLeft = MAX_TAKEOVERS_PER_INTERVAL
  private readonly sessions: Sessions
  private readonly leaseTtl: number
  private readonly leaseSkew: number
  private readonly followers: number
  private readonly scanInterval: number
  private readonly handlerTimeout: number
  private readonly capacity: number
  private readonly intensity: number
  private readonly period: number
  private readonly backoff: { min: number; max: number; randomFactor?: number }
  private readonly maxAgents: number
  private readonly clusterCertTtl: number
  private readonly maxPending: number
  private readonly now: () => number
  private root?: Supervisor
  private directory?: OrMapDocument
  private opening?: Promise<OrMapDocument>
  private scanTimer?: ReturnType<typeof setTimeout>
  private scanning?: Promise<void>
  private rescan = false
  private running = false
  /** Set once this node has heard the directory from a peer (or waited a lease for one): before that it takes nothing over. */
  private settled = false
  private readonly startedAt: number
  private readonly onMemberChange = (): void => {
    this.scheduleScan(0)
  }

  private readonly onDirectoryChange = (): void => {
    this.fenceByDirectory()
    this.scheduleScan(0)
  }

  constructor(components: AgentsComponents, init: AgentsInit = {}) {
    super()
    this.components = components
    this.log = components.logger.forComponent('cyberspace:agents')
    this.leaseTtl = checkTiming(init.leaseTtl, 'leaseTtl', 4000, 24 * 3600_000, 20_000)
    this.leaseSkew = checkTiming(
      init.leaseSkew,
      'leaseSkew',
      0,
      this.leaseTtl / 4,
      Math.min(LEASE_SKEW_MS, this.leaseTtl / 4)
    )
    this.followers = checkTiming(init.followers, 'followers', 0, 16, 2)
    this.scanInterval = checkTiming(init.scanInterval, 'scanInterval', 100, 3600_000, 5000)
    this.handlerTimeout = checkTiming(init.handlerTimeout, 'handlerTimeout', 10, 3600_000, 30_000)
    this.capacity = checkTiming(init.capacity, 'capacity', 1, 1_000_000, 256)
    this.intensity = checkTiming(init.intensity, 'intensity', 0, 1000, 5)
    this.period = checkTiming(init.period, 'period', 1, 24 * 3600_000, 60_000)
    this.backoff = init.backoff ?? { min: 100, max: 10_000, randomFactor: 0.2 }
    this.maxAgents = checkTiming(init.maxAgents, 'maxAgents', 1, 100_000, 1000)
    this.clusterCertTtl = checkTiming(
      init.clusterCertTtl,
      'clusterCertTtl',
      60_000,
      365 * 24 * 3600_000,
      30 * 24 * 3600_000
    )
    this.maxPending = checkTiming(init.maxPending, 'maxPending', 1, 100_000, 256)
    this.now = init.now ?? Date.now
    this.startedAt = this.now()
    this.sessions = new Sessions(components.state, init.session)
    this.define(EXTERNAL_KIND, {
      description: 'an agent whose behaviour is a program attached through the node API',
      behaviour: () => ({
        handle: () => {
          throw new NotExternalAgentError('replaced per agent')
        }
      })
    })
    this.defineBuiltInTools()
  }

  private get services(): AgentsComponents['libp2p']['services'] {
    return this.components.libp2p.services
  }

  private get self(): string {
    return this.components.libp2p.peerId.toString()
  }

  // ------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    this.root = new Supervisor({
      name: 'agents',
      strategy: 'one_for_one',
      intensity: 1000,
      period: 1000,
      maxChildren: this.maxAgents
    })
    this.root.on(event => {
      this.onSupervision(event)
    })
    await this.root.start()
    // the directory is opened once this node has to do with agents (it runs a kind, or spawns one),
    // or if it held it before: a node without agents neither stores nor syncs it
    if ((await this.components.state.find(AGENT_DIRECTORY)) != null) await this.openDirectory()
    this.services.membership.addEventListener('member:change', this.onMemberChange)
    this.services.membership.addEventListener('member:remove', this.onMemberChange)
    await this.advertiseKinds()
    this.scheduleScan(0)
  }

  async shutdown(): Promise<void> {
    if (!this.running) return
    this.running = false
    clearTimeout(this.scanTimer)
    this.directory?.removeEventListener('change', this.onDirectoryChange)
    this.services.membership.removeEventListener('member:change', this.onMemberChange)
    this.services.membership.removeEventListener('member:remove', this.onMemberChange)
    await this.scanning?.catch(() => {})
    for (const hosted of this.hosted.values()) {
      clearTimeout(hosted.leaseTimer)
      hosted.external?.close()
      this.services.mailbox.detach(hosted.info.principal)
      // the record lapses by itself: a successor takes over after it expires
      this.services.registry.forget(hosted.info.principal)
    }
    await this.root?.stop().catch(() => {})
    this.hosted.clear()
  }

  // ------------------------------------------------------------------ kinds and tools

  define(kind: string, definition: AgentDefinition): void {
    checkAgentName(kind, 'x')
    if (definition == null || typeof definition.behaviour !== 'function')
      throw new InvalidAgentOptionError(`kind ${kind}: behaviour must be a function`)
    if (definition.clusterTag !== undefined) clusterTagOf(definition.clusterTag)
    const shard = definition.shard
    if (shard !== undefined) {
      if (!(SHARD_TYPES as readonly string[]).includes(shard?.type))
        throw new InvalidAgentOptionError(`kind ${kind}: shard.type must be one of ${SHARD_TYPES.join(', ')}`)
      if (typeof shard.scope !== 'string' || shard.scope.length > 256)
        throw new InvalidAgentOptionError(`kind ${kind}: shard.scope must be a string of at most 256 characters`)
    }
    this.definitions.set(kind, definition)
    if (this.running && kind !== EXTERNAL_KIND) {
      void this.openDirectory()
        .then(async () => {
          await this.advertiseKinds()
          this.scheduleScan(0)
        })
        .catch(err => this.log.error('could not advertise kinds - %e', err))
    }
  }

  kinds(): string[] {
    return [...this.definitions.keys()].sort()
  }

  defineTool(name: string, tool: AgentTool): void {
    if (!/^[a-z][a-z0-9._-]{0,63}$/.test(name))
      throw new InvalidAgentOptionError(`tool name ${name}: 1-64 of a-z 0-9 . _ -`)
    this.tools.set(name, tool)
  }

  /** The agent directory, opened (and followed) the first time it is needed. */
  private async openDirectory(): Promise<OrMapDocument> {
    this.opening ??= (async () => {
      const directory = (await this.components.state.open(AGENT_DIRECTORY, 'or-map')) as OrMapDocument
      directory.addEventListener('change', this.onDirectoryChange)
      this.directory = directory
      return directory
    })()
    return await this.opening
  }

  /** The kinds a successor could take over: the ones defined here, but external (its program attaches to one node). */
  private movableKinds(): string[] {
    return this.kinds().filter(k => k !== EXTERNAL_KIND)
  }

  private async advertiseKinds(): Promise<void> {
    const membership = this.services.membership
    if (!membership.isMember()) return
    const kinds = kindsMeta(this.movableKinds())
    if ((membership.ownMeta()[KINDS_META_KEY] ?? '') === kinds) return
    await membership.updateMeta({ [KINDS_META_KEY]: kinds === '' ? undefined : kinds })
  }

  // ------------------------------------------------------------------ spawn, stop, list

  async spawn(kind: string, options: SpawnOptions = {}): Promise<AgentInfo> {
    if (!this.running) throw new ActorStoppedError('agents', 'shutdown', 'the agents service is not running')
    const id = options.id ?? randomId()
    checkAgentName(kind, id)
    const definition = this.definitions.get(kind)
    if (definition == null)
      throw new UnknownKindError(
        `this node runs no agents of kind ${kind}: define it first (known: ${this.kinds().join(', ')})`
      )
    if (options.requester !== undefined) await this.authorizeAgent(options.requester, spawnTag(kind), 'spawn', options)
    const key = options.key ?? (this.services.cluster.info() != null ? 'cluster' : 'local')
    if (key !== 'cluster' && key !== 'local') throw new InvalidAgentOptionError('key must be cluster or local')
    if (this.hosted.size >= this.maxAgents)
      throw new InvalidAgentOptionError(`this node hosts ${this.maxAgents} agents already`)
    const agentKey = await this.agentKey(kind, id, key, true, options)
    const principal = agentKey.signer.principal
    if (this.hosted.has(principal) || this.starting.has(principal))
      throw new AgentRunningError(`agent ${kind}/${id} (${principal}) runs on this node already`)
    // fencing: never start an agent whose lease another host holds
    const record = await this.currentRecord(principal, options)
    if (record != null && record.host !== this.self && record.expires > this.now())
      throw new AgentRunningError(
        `agent ${kind}/${id} (${principal}) runs on ${record.host} (its lease ends ${new Date(record.expires).toISOString()})`
      )
    if (definition.clusterTag !== undefined) await this.issueClusterCert(principal, key, definition.clusterTag, options)
    return await this.startHere({ kind, id, key, host: this.self, since: this.now() }, agentKey, false, options)
  }

  /** The cluster (t members) certifies an agent that acts for it; the certificate is kept in this node's store. */
  private async issueClusterCert(
    principal: PrincipalId,
    key: KeySource,
    tagText: string,
    options: AbortOptions
  ): Promise<void> {
    const cluster = this.services.cluster.info()
    if (key !== 'cluster' || cluster == null)
      throw new NoClusterKeyError(
        `an agent that acts for the cluster needs a cluster key (spawn it with key cluster on a member holding a share)`
      )
    const tag = clusterTagOf(tagText)
    await this.services.cluster.issue(
      {
        type: 'auth',
        issuer: cluster.principal,
        subject: { kind: 'key', principal },
        propagate: false,
        tag,
        validity: { notBefore: spkiTime(this.now() - 60_000), notAfter: spkiTime(this.now() + this.clusterCertTtl) }
      },
      options
    )
  }

  list(): AgentInfo[] {
    return [...this.hosted.values()].map(h => this.infoOf(h)).sort((a, b) => (a.principal < b.principal ? -1 : 1))
  }

  agent(principal: PrincipalId): Agent | undefined {
    const hosted = this.hosted.get(principal)
    if (hosted == null) return undefined
    return {
      principal,
      signer: hosted.signer,
      info: () => this.get(principal),
      send: async (to, type, body, options) => await this.send(principal, to, type, body, options),
      request: async (to, type, body, options) => await this.request(principal, to, type, body, options),
      tool: async (name, args, options) => await this.tool(principal, name, args, options),
      stop: async options => {
        await this.stop(principal, options)
      }
    }
  }

  get(principal: PrincipalId): AgentInfo | undefined {
    const hosted = this.hosted.get(principal)
    return hosted == null ? undefined : this.infoOf(hosted)
  }

  async stop(principal: PrincipalId, options: AbortOptions = {}): Promise<void> {
    const hosted = this.hosted.get(principal)
    if (hosted == null) throw new AgentNotFoundHereError(`agent ${principal} does not run on this node`)
    // the session says so first (replicated like any record): a successor that finds the entry
    // written back by someone does not bring the agent back
    await hosted.session.record({ [STOPPED_FIELD]: true }, { ...options, replicas: this.replicasOf(hosted) })
    await this.stopHere(hosted, 'normal')
    await this.noteRan(principal, false)
    await this.directory?.batch(m => m.delete([principal]), options)
    await this.services.registry.unpublish(principal, options).catch(err => {
      this.log('could not withdraw the record of %s - %e', principal, err)
    })
    if (hosted.info.key === 'local') {
      // a local key is never used again: a later spawn of the same kind and id is a new principal
      await this.components.datastore.delete(new Key(`${KEY_PREFIX}${hosted.info.kind}/${hosted.info.id}`), options)
    }
  }

  /** Followers that must hold a record before it is acknowledged: one, where one could take the agent over. */
  private replicasOf(hosted: Hosted): number {
    return hosted.info.key === 'cluster' ? Math.min(1, hosted.session.followers().length) : 0
  }

  private infoOf(hosted: Hosted): AgentInfo {
    const child = this.root?.children().find(c => c.id === hosted.info.principal)
    const worker = child?.supervisor?.children()[0]
    let status: AgentStatus = hosted.info.status
    if (hosted.stopping) status = 'stopping'
    else if (worker != null) status = worker.status === 'stopped' ? 'crashed' : worker.status
    const shard = hosted.definition.shard
    return {
      ...hosted.info,
      status,
      restarts: worker?.restarts ?? hosted.info.restarts,
      ...(shard != null ? { shard: { ...shard } } : {})
    }
  }

  // ------------------------------------------------------------------ messaging and tools

  async send(
    from: PrincipalId,
    to: PrincipalId | string,
    type: string,
    body: unknown,
    options: SendOptions = {}
  ): Promise<Receipt> {
    this.requireHosted(from)
    return await this.services.mailbox.send(from, to, type, body, options)
  }

  async request(
    from: PrincipalId,
    to: PrincipalId | string,
    type: string,
    body: unknown,
    options: SendOptions = {}
  ): Promise<unknown> {
    this.requireHosted(from)
    return await this.services.mailbox.request(from, to, type, body, options)
  }

  async tool(
    principal: PrincipalId,
    name: string,
    args: Record<string, unknown> = {},
    options: AbortOptions = {}
  ): Promise<unknown> {
    const hosted = this.requireHosted(principal)
    const tool = this.tools.get(name)
    if (tool == null)
      throw new UnknownToolError(
        `this node offers no tool ${name} (it offers ${[...this.tools.keys()].sort().join(', ')})`
      )
    if (args == null || typeof args !== 'object' || Array.isArray(args))
      throw new InvalidAgentOptionError('tool arguments are an object')
    const info = this.infoOf(hosted)
    const scope = tool.scope?.(args) ?? []
    for (const tag of [toolTag(name, scope), ...(tool.tags?.(args, info) ?? [])]) {
      await this.authorizeAgent(principal, tag, `call tool ${name}`, options)
    }
    return await tool.run(args, info, options)
  }

  private defineBuiltInTools(): void {
    const str = (args: Record<string, unknown>, field: string): string => {
      const v = args[field]
      if (typeof v !== 'string' || v.length === 0 || v.length > 1024)
        throw new InvalidAgentOptionError(`tool argument ${field} must be a string`)
      return v
    }
    this.defineTool('send', {
      scope: args => [str(args, 'type')],
      run: async (args, agent, options) =>
        await this.send(agent.principal, str(args, 'to'), str(args, 'type'), args.body ?? null, options)
    })
    this.defineTool('request', {
      scope: args => [str(args, 'type')],
      run: async (args, agent, options) =>
        await this.request(agent.principal, str(args, 'to'), str(args, 'type'), args.body ?? null, options)
    })
    this.defineTool('spawn', {
      scope: args => [str(args, 'kind')],
      run: async (args, agent, options) =>
        await this.spawn(str(args, 'kind'), {
          ...options,
          id: args.id === undefined ? undefined : str(args, 'id'),
          requester: agent.principal
        })
    })
    // the node's own documents (agent sessions, the directory) are never a tool's to touch: a
    // session is written only by its agent's key, which the node holds for every agent it hosts
    const doc = (args: Record<string, unknown>): string => {
      const name = str(args, 'doc')
      if (sessionOwner(name) !== undefined || isMemberDocument(name))
        throw new AgentUnauthorizedError(`${name} is a document of the node's own: no tool reads or writes it`)
      return name
    }
    this.defineTool('doc.set', {
      scope: args => [doc(args)],
      tags: args => [logTag('append', doc(args))],
      run: async (args, _agent, options) => {
        const document = (await this.components.state.open(doc(args), 'or-map', options)) as OrMapDocument
        const cid = await document.set(str(args, 'key'), args.value ?? null, options)
        return { cid: cid?.toString() }
      }
    })
    this.defineTool('doc.get', {
      scope: args => [doc(args)],
      tags: args => [logTag('read', doc(args))],
      run: async (args, _agent, options) => {
        const document = await this.components.state.find(doc(args), options)
        if (document == null) return null
        const value = document.value() as Record<string, unknown>
        return value?.[str(args, 'key')] ?? null
      }
    })
    this.defineTool('cluster.sign', {
      scope: args => [str(args, 'domain')],
      run: async (args, _agent, options) => {
        const body = args.body
        if (!(body instanceof Uint8Array)) throw new InvalidAgentOptionError('tool argument body must be bytes')
        const result = await this.services.cluster.sign(str(args, 'domain'), body, options)
        return { signature: result.signature }
      }
    })
  }

  private async authorizeAgent(principal: PrincipalId, tag: Tag, what: string, options: AbortOptions): Promise<void> {
    try {
      await this.services.spki.authorize(principal, tag, { signal: options.signal })
    } catch (err) {
      options.signal?.throwIfAborted()
      throw new AgentUnauthorizedError(`${principal} may not ${what}: ${(err as Error).message}`)
    }
  }

  private requireHosted(principal: PrincipalId): Hosted {
    const hosted = this.hosted.get(principal)
    if (hosted == null || hosted.stopping)
      throw new AgentNotFoundHereError(`agent ${principal} does not run on this node`)
    return hosted
  }

  // ------------------------------------------------------------------ external agents

  async inbox(
    principal: PrincipalId,
    options: AbortOptions & { wait?: number; max?: number } = {}
  ): Promise<PendingMessage[]> {
    const hosted = this.requireHosted(principal)
    if (hosted.external == null)
      throw new NotExternalAgentError(`agent ${principal} is of kind ${hosted.info.kind}, not ${EXTERNAL_KIND}`)
    const wait = checkTiming(options.wait, 'wait', 0, 60_000, 0)
    const max = checkTiming(options.max, 'max', 1, 1000, 100)
    return await hosted.external.take(max, wait, options.signal)
  }

  reply(principal: PrincipalId, messageId: string, body: unknown, options: { error?: string } = {}): void {
    const hosted = this.requireHosted(principal)
    if (hosted.external == null)
      throw new NotExternalAgentError(`agent ${principal} is of kind ${hosted.info.kind}, not ${EXTERNAL_KIND}`)
    const error = options.error == null ? undefined : new ExternalAgentError(String(options.error).slice(0, 1024))
    hosted.external.answer(messageId, body, error)
  }

  // ------------------------------------------------------------------ running an agent here

  /** The agent's key: derived with t members' help, or from this node's store (made when `create`). */
  private async agentKey(
    kind: string,
    id: string,
    key: KeySource,
    create: boolean,
    options: AbortOptions
  ): Promise<AgentKey> {
    let seed: Uint8Array
    if (key === 'cluster') {
      if (this.services.cluster.info() == null)
        throw new NoClusterKeyError(
          `this node holds no share of a cluster key: spawn ${kind}/${id} with key local, or join the cluster first`
        )
      seed = (await this.services.cluster.deriveAgentSeed(kind, id, options)).seed
    } else {
      const storeKey = new Key(`${KEY_PREFIX}${kind}/${id}`)
      if (await this.components.datastore.has(storeKey, options)) {
        // a copy: the store may hand out (and keep) the very buffer, which is zeroed below
        seed = (await this.components.datastore.get(storeKey, options)).slice()
      } else {
        if (!create) throw new AgentNotFoundHereError(`this node holds no key of local agent ${kind}/${id}`)
        seed = crypto.getRandomValues(new Uint8Array(32))
        await this.components.datastore.put(storeKey, seed.slice(), options)
      }
    }
    try {
      const signer = await seedSigner(seed)
      // libp2p's Ed25519 private key is the seed and the public key (the registry signs records with it)
      const raw = new Uint8Array(64)
      raw.set(seed.subarray(0, 32))
      raw.set(principalPublicKey(signer.principal), 32)
      const privateKey = privateKeyFromRaw(raw)
      raw.fill(0)
      return { signer, privateKey }
    } finally {
      seed.fill(0)
    }
  }

  /** Whether this node noted that it runs `principal` (and has not stopped or lost it since). */
  private async ranHere(principal: PrincipalId, options: AbortOptions): Promise<boolean> {
    return await this.components.datastore.has(new Key(`${RAN_PREFIX}${principal}`), options)
  }

  private async noteRan(principal: PrincipalId, ran: boolean): Promise<void> {
    const key = new Key(`${RAN_PREFIX}${principal}`)
    if (ran) await this.components.datastore.put(key, new Uint8Array([1]))
    else await this.components.datastore.delete(key)
  }

  /** The agent's current record in the DHT, or undefined when none is current or findable. */
  private async currentRecord(principal: PrincipalId, options: AbortOptions): Promise<AgentRecordView | undefined> {
    const lease = await this.lease(principal, options)
    return lease.state === 'live' ? lease.record : undefined
  }

  /** The agent's lease: its live record, a record known to have expired (and when), or none found. */
  private async lease(
    principal: PrincipalId,
    options: AbortOptions
  ): Promise<
    | { state: 'live'; record: AgentRecordView }
    | { state: 'expired'; expires: number; card?: string }
    | { state: 'missing' }
  > {
    try {
      return { state: 'live', record: await this.services.registry.get(principal, { signal: options.signal }) }
    } catch (err) {
      options.signal?.throwIfAborted()
      const name = (err as Error).name
      if (name === 'AgentRecordExpiredError') {
        const expired = err as { expires?: number; record?: { card?: { name?: string } } }
        return { state: 'expired', expires: expired.expires ?? 0, card: expired.record?.card?.name }
      }
      if (name === 'AgentNotFoundError' || name === 'HostNotMemberError') return { state: 'missing' }
      throw err
    }
  }

  private async startHere(
    entry: DirectoryEntry,
    agentKey: AgentKey,
    resume: boolean,
    options: AbortOptions
  ): Promise<AgentInfo> {
    const { signer } = agentKey
    const principal = signer.principal
    const definition = this.definitions.get(entry.kind)
    if (definition == null) throw new UnknownKindError(`this node runs no agents of kind ${entry.kind}`)
    if (this.starting.has(principal) || this.hosted.has(principal))
      throw new AgentRunningError(`agent ${principal} is starting or runs here already`)
    this.starting.add(principal)
    try {
      let session: AgentSession
      if (resume) {
        try {
          session = (await this.sessions.resume(principal, signer, options)).session
        } catch (err) {
          if ((err as Error).name !== 'SessionNotFoundError') throw err
          // nothing followed here: ask the peers for it once, then start from what there is
          await this.sessions.follow(principal, options)
          await this.components.state.sync(undefined, options).catch(() => {})
          session = await this.sessions.open(signer, options)
        }
      } else {
        session = await this.sessions.open(signer, options)
      }
      if (session.get(STOPPED_FIELD) === true) {
        if (resume) {
          this.notBefore.set(principal, this.now() + 10 * this.leaseTtl)
          throw new AgentRetiredError(`agent ${principal} was stopped for good: spawn it again to bring it back`)
        }
        // spawned again on purpose: its state goes on from where it stopped
        await session.record({ [STOPPED_FIELD]: undefined }, options)
      }
      const info: AgentInfo = {
        principal,
        kind: entry.kind,
        id: entry.id,
        key: entry.key,
        host: this.self,
        status: 'starting',
        restarts: 0,
        leaseExpires: 0,
        external: entry.kind === EXTERNAL_KIND
      }
      const hosted: Hosted = {
        info,
        signer,
        session,
        definition,
        stopping: false,
        seq: 0,
        external: entry.kind === EXTERNAL_KIND ? new ExternalInbox(this.maxPending, this.now) : undefined
      }
      // the lease first: a record with a seq higher than any in the DHT, then check it is the one that holds
      const published = await this.services.registry.publish(this.cardOf(entry, definition), {
        ...options,
        ttl: this.leaseTtl,
        privateKey: agentKey.privateKey
      })
      info.leaseExpires = published.expires
      hosted.seq = published.seq
      const now = await this.currentRecord(principal, options)
      if (now != null && now.host !== this.self && now.seq > published.seq) {
        this.services.registry.forget(principal)
        throw new AgentRunningError(`agent ${principal} was taken by ${now.host} meanwhile`)
      }
      await (await this.openDirectory()).set([principal], { ...entry, host: this.self, since: this.now() }, options)
      await this.noteRan(principal, true)
      this.hosted.set(principal, hosted)
      this.replicate(hosted)
      await this.trustOwnMailbox(principal)
      this.armLease(hosted)
      this.services.mailbox.attach(this.hostedAgent(hosted))
      await this.root?.startChild({
        id: principal,
        type: 'supervisor',
        restart: 'temporary',
        supervisor: () => ({
          name: principal,
          strategy: 'one_for_one',
          intensity: this.intensity,
          period: this.period,
          children: [
            {
              id: 'agent',
              restart: 'transient',
              backoff: this.backoff,
              actor: {
                capacity: definition.capacity ?? this.capacity,
                handlerTimeout: definition.handlerTimeout ?? this.handlerTimeout
              },
              behaviour: () => this.actorBehaviour(hosted)
            }
          ]
        })
      })
      info.status = 'running'
      this.emitChange(hosted)
      this.log('agent %s (%s/%s) runs here%s', principal, entry.kind, entry.id, resume ? ' (resumed)' : '')
      return this.infoOf(hosted)
    } finally {
      this.starting.delete(principal)
    }
  }

  private cardOf(entry: DirectoryEntry, definition: AgentDefinition): Parameters<Registry['publish']>[0] {
    return {
      name: `${entry.kind}/${entry.id}`,
      description: definition.description ?? `a Cyberspace agent of kind ${entry.kind}`,
      version: '1.0.0',
      ...(definition.shard != null ? { capabilities: { extensions: [shardExtension(definition.shard)] } } : {}),
      skills: [
        { id: `kind:${entry.kind}`, name: entry.kind, description: `agents of kind ${entry.kind}`, tags: [entry.kind] },
        ...(definition.skills ?? [])
      ]
    }
  }

  private actorBehaviour(hosted: Hosted): import('./actor.ts').Behaviour<InboundMessage, unknown> {
    let behaviour: AgentBehaviour | undefined
    return {
      init: async ctx => {
        behaviour =
          hosted.external != null
            ? { handle: async message => await hosted.external?.deliver(message, ctx.signal) }
            : hosted.definition.behaviour(this.contextOf(hosted, ctx.signal))
        await behaviour.init?.()
      },
      handle: async message => {
        hosted.current = message
        try {
          return await behaviour?.handle(message)
        } finally {
          hosted.current = undefined
        }
      },
      terminate: async reason => {
        await behaviour?.terminate?.(reason)
      }
    }
  }

  private contextOf(hosted: Hosted, signal: AbortSignal): AgentContext {
    const { principal, kind, id } = hosted.info
    return {
      principal,
      kind,
      id,
      signal,
      state: () => {
        const fields = { ...hosted.session.state().fields }
        delete fields[STOPPED_FIELD]
        return fields
      },
      record: async (change, options = {}) => {
        if (change != null && typeof change === 'object' && Object.keys(change).some(k => k.startsWith('$')))
          throw new InvalidAgentOptionError("state fields starting with $ are the node's own")
        const current = hosted.current
        await hosted.session.record(change, {
          ...options,
          handled: current == null ? undefined : { from: current.from, id: current.id },
          // acknowledged means replicated: a successor resumes with every change whose message was acked
          // (none to wait for when no other member runs the kind: then nobody could take the agent over)
          replicas: this.replicasOf(hosted)
        })
      },
      checkpoint: async options => {
        await hosted.session.checkpoint(options)
      },
      send: async (to, type, body, options) => await this.send(principal, to, type, body, options),
      request: async (to, type, body, options) => await this.request(principal, to, type, body, options),
      tool: async (name, args, options) => await this.tool(principal, name, args, options),
      signer: hosted.signer
    }
  }

  private hostedAgent(hosted: Hosted): HostedAgent {
    return {
      principal: hosted.info.principal,
      signer: hosted.signer,
      // the actor's own deadline is the kind's: the mailbox gives the handler as long
      handlerTimeout: hosted.definition.handlerTimeout ?? this.handlerTimeout,
      receive: async (received, options = {}) => {
        if (hosted.stopping)
          throw new ActorStoppedError(hosted.info.principal, 'shutdown', `agent ${hosted.info.principal} is stopping`)
        const message = await this.checkInbound(received, options)
        // a one-way message this agent recorded as handled before it moved is not handled again
        if (!message.request && hosted.session.lastHandled(message.from) === message.id) {
          // handled before (its record may still be only here): acknowledged once replicated like any other
          await hosted.session.replicate({ signal: options.signal, replicas: this.replicasOf(hosted) })
          return undefined
        }
        if (hosted.external != null) {
          // the program answers each message in its own time, within the handler deadline; its error
          // answers go back to the sender and are no crash of the agent
          const timeout = hosted.definition.handlerTimeout ?? this.handlerTimeout
          const deadline = AbortSignal.timeout(timeout)
          const signal = options.signal == null ? deadline : AbortSignal.any([options.signal, deadline])
          try {
            return await hosted.external.deliver(message, signal)
          } catch (err) {
            if (deadline.aborted) throw new HandlerTimeoutError(hosted.info.principal, timeout)
            throw err
          }
        }
        const ref = this.root?.child(hosted.info.principal)?.ref<InboundMessage, unknown>('agent')
        if (ref == null)
          throw new ActorStoppedError(hosted.info.principal, 'stopped', `agent ${hosted.info.principal} is not running`)
        if (message.request) return await ref.ask(message, { signal: options.signal })
        await ref.tell(message, { signal: options.signal })
        return undefined
      }
    }
  }

  intercept(prefix: string, check: InboundCheck): () => void {
    if (typeof prefix !== 'string' || prefix.length === 0 || prefix.length > 64)
      throw new InvalidAgentOptionError('an intercepted type prefix is 1-64 characters')
    if (this.checks.has(prefix)) throw new InvalidAgentOptionError(`messages of ${prefix}… are intercepted already`)
    this.checks.set(prefix, check)
    return () => {
      if (this.checks.get(prefix) === check) this.checks.delete(prefix)
    }
  }

  private async checkInbound(message: InboundMessage, options: AbortOptions): Promise<InboundMessage> {
    for (const [prefix, check] of this.checks) if (message.type.startsWith(prefix)) return await check(message, options)
    return message
  }

  /** `exited`: its supervisor is gone already (it gave up), so there is nothing to terminate. */
  private async stopHere(hosted: Hosted, why: 'normal' | Error, exited = false): Promise<void> {
    if (hosted.stopping) return
    hosted.stopping = true
    clearTimeout(hosted.leaseTimer)
    this.services.mailbox.detach(hosted.info.principal)
    hosted.external?.close()
    try {
      if (!exited) await this.root?.terminateChild(hosted.info.principal)
    } catch (err) {
      this.log('stopping %s - %e', hosted.info.principal, err)
    }
    this.hosted.delete(hosted.info.principal)
    hosted.info.status = why === 'normal' ? 'stopped' : 'crashed'
    hosted.info.lastExit = why === 'normal' ? 'normal' : why.name
    this.emitChange(hosted)
  }

  /**
   * The agent is a root for sending to itself: certificates it issues let others message it, so an
   * agent decides who may reach its mailbox (an ACL entry the operator made for it is left alone).
   */
  private async trustOwnMailbox(principal: PrincipalId): Promise<void> {
    const spki = this.services.spki
    if (spki.acl().some(e => e.principal === principal)) return
    await spki.addAclEntry(principal, mailboxSendTag(principal))
  }

  /** Stops the agent (without touching the directory or withdrawing its record) when its lease is lost. */
  private async fence(hosted: Hosted, reason: string): Promise<void> {
    this.log.error('agent %s stops here: %s', hosted.info.principal, reason)
    this.services.registry.forget(hosted.info.principal)
    await this.noteRan(hosted.info.principal, false).catch(() => {})
    await this.stopHere(hosted, new LeaseLostError(reason))
  }

  /** At the lease deadline, the record must have been renewed; else the copy stops. */
  private armLease(hosted: Hosted): void {
    clearTimeout(hosted.leaseTimer)
    const deadline = leaseDeadline(hosted.info.leaseExpires, this.leaseSkew)
    hosted.leaseTimer = setTimeout(
      () => {
        if (hosted.stopping || !this.running) return
        const renewed = this.services.registry.published().find(v => v.agent === hosted.info.principal)
        if (renewed != null && leaseDeadline(renewed.expires, this.leaseSkew) > this.now()) {
          hosted.info.leaseExpires = renewed.expires
          hosted.seq = renewed.seq
          this.armLease(hosted)
          return
        }
        void this.fence(
          hosted,
          `its lease could not be renewed before ${new Date(hosted.info.leaseExpires).toISOString()}`
        )
      },
      Math.max(0, deadline - this.now())
    )
    if (typeof hosted.leaseTimer === 'object' && 'unref' in hosted.leaseTimer) hosted.leaseTimer.unref()
  }

  /**
   * A directory entry that names another host for an agent running here is only a claim (any member
   * may write the directory): the agent's record decides. A newer record hosted elsewhere fences the
   * copy here; otherwise this node writes its entry back.
   */
  private fenceByDirectory(): void {
    const entries = this.entries()
    for (const hosted of this.hosted.values()) {
      const entry = entries.get(hosted.info.principal)
      if (hosted.stopping || hosted.checking === true) continue
      if (
        entry != null &&
        entry.host === this.self &&
        entry.kind === hosted.info.kind &&
        entry.id === hosted.info.id &&
        entry.key === hosted.info.key
      )
        continue
      hosted.checking = true
      void this.checkClaim(hosted, entry)
        .catch(err => this.log('could not check the directory entry of %s - %e', hosted.info.principal, err))
        .finally(() => {
          hosted.checking = false
        })
    }
  }

  private async checkClaim(hosted: Hosted, entry: DirectoryEntry | undefined): Promise<void> {
    const principal = hosted.info.principal
    if (entry != null && entry.host !== this.self) {
      const record = await this.currentRecord(principal, {})
      if (record != null && record.host === entry.host && record.seq > hosted.seq) {
        await this.fence(hosted, `${entry.host} holds its lease now (record seq ${record.seq})`)
        return
      }
    }
    if (hosted.stopping || !this.running) return
    this.log('the directory entry of %s was changed or removed: writing it back', principal)
    await this.directory?.set(
      [principal],
      { kind: hosted.info.kind, id: hosted.info.id, key: hosted.info.key, host: this.self, since: this.now() },
      {}
    )
  }

  private emitChange(hosted: Hosted): void {
    this.dispatchEvent(new CustomEvent('change', { detail: this.infoOf(hosted) }))
  }

  private onSupervision(event: SupervisionEvent): void {
    const principal = event.path[1] as PrincipalId | undefined
    if (principal == null) return
    const hosted = this.hosted.get(principal)
    if (hosted == null) return
    if (event.type === 'crashed') hosted.info.lastExit = event.reason.name
    if (event.type === 'escalated') {
      // the agent's own supervisor gave up: the node lets go of its lease (its directory entry stays),
      // so once the record lapses the first candidate — this node or another — starts it afresh
      hosted.info.status = 'crashed'
      hosted.info.lastExit = event.reason.name
      this.log.error('agent %s crashed too often: %s', principal, event.reason.message)
      this.notBefore.set(principal, hosted.info.leaseExpires + 2 * this.leaseSkew + this.leaseTtl)
      this.services.registry.forget(principal)
      void this.stopHere(hosted, event.reason, true)
      return
    }
    if (event.type === 'restarted') hosted.info.restarts++
    this.emitChange(hosted)
  }

  // ------------------------------------------------------------------ placement: takeovers and follows

  private entries(): Map<PrincipalId, DirectoryEntry> {
    const out = new Map<PrincipalId, DirectoryEntry>()
    const value = (this.directory?.value() ?? {}) as Record<string, unknown>
    for (const [principal, entry] of Object.entries(value)) {
      if (isPrincipalId(principal) && isEntry(entry)) out.set(principal, entry)
    }
    return out
  }

  private scheduleScan(delay: number): void {
    if (!this.running) return
    if (this.scanning != null) {
      this.rescan = true
      return
    }
    clearTimeout(this.scanTimer)
    this.scanTimer = setTimeout(() => {
      this.scanning = this.reconcile()
        .catch(err => this.log.error('placement pass failed - %e', err))
        .finally(() => {
          this.scanning = undefined
          const again = this.rescan
          this.rescan = false
          this.scheduleScan(again ? 0 : this.scanInterval)
        })
    }, delay)
    if (typeof this.scanTimer === 'object' && 'unref' in this.scanTimer) this.scanTimer.unref()
  }

  /**
   * The members that follow agent `principal`'s session while this node hosts it: the first
   * `followers` live members offering its kind, by rendezvous rank, other than this node. The same
   * ranking every other node computes when it decides whether to follow (see reconcile).
   */
  private followersOf(principal: PrincipalId, kind: string): PeerId[] {
    const live = this.services.membership
      .members()
      .filter(m => (m.state === 'alive' || m.state === 'suspect') && offeredKinds(m.meta).includes(kind))
      .map(m => m.peerId)
    return successors(principal, live, this.self)
      .slice(0, this.followers)
      .map(id => peerIdFromString(id))
  }

  /** Names the session's followers, so a record is acknowledged once one of them holds it. */
  private replicate(hosted: Hosted): void {
    if (hosted.info.key !== 'cluster') return
    hosted.session.replicateTo(this.followersOf(hosted.info.principal, hosted.info.kind))
  }

  async reconcile(options: AbortOptions = {}): Promise<void> {
    if (!this.running) return
    const membership = this.services.membership
    // nothing to place before this node has to do with agents (see openDirectory)
    if (!membership.isMember() || this.directory == null) return
    if (!this.settled) {
      // a node that just (re)started may hold a stale directory: hear it from a peer first
      if (this.now() - this.startedAt < this.leaseTtl) {
        try {
          await this.components.state.sync(undefined, options)
          this.settled = this.components.libp2p.getConnections().length > 0
        } catch {}
        if (!this.settled) return
      } else this.settled = true
    }
    await this.advertiseKinds().catch(err => this.log('could not advertise kinds - %e', err))
    const live = membership.members().filter(m => m.state === 'alive' || m.state === 'suspect')
    const liveIds = new Set(live.map(m => m.peerId))
    const offering = (kind: string): string[] =>
      live.filter(m => offeredKinds(m.meta).includes(kind)).map(m => m.peerId)
    for (const hosted of this.hosted.values()) this.replicate(hosted)
    for (const [principal, entry] of this.entries()) {
      options.signal?.throwIfAborted()
      if (!this.definitions.has(entry.kind) || this.hosted.has(principal) || this.starting.has(principal)) continue
      const candidates = offering(entry.kind)
      if (!candidates.includes(this.self)) candidates.push(this.self)
      // followers: the first `followers` candidates other than the host hold the session ahead of time
      const others = successors(principal, candidates, entry.host)
      const follow = others.slice(0, this.followers).includes(this.self)
      const followed = this.sessions.following().includes(principal)
      if (follow && !followed && entry.key === 'cluster') {
        await this.sessions
          .follow(principal, options)
          .catch(err => this.log('could not follow %s - %e', principal, err))
      } else if (!follow && followed && entry.host !== this.self) {
        await this.sessions.unfollow(principal, options).catch(() => {})
      }
      if (entry.key === 'local' && entry.host !== this.self) continue
      const wait = this.notBefore.get(principal)
      if (wait != null && this.now() < wait) continue
      // once the lease lapsed, the first live candidate takes the agent (its old host too, if alive);
      // while the named host lives, the first other candidate watches its lease now and then
      const first = rank(principal, candidates)[0] === this.self
      const watcher = others[0] === this.self
      if (entry.host !== this.self && !first && !watcher) continue
      const hostLive = entry.host !== this.self && liveIds.has(entry.host)
      if (hostLive) {
        const next = this.watchAt.get(principal)
        if (next != null && this.now() < next) continue
        this.watchAt.set(principal, this.now() + this.leaseTtl / 2)
      }
      // takeovers are rationed per scan interval: each derives a key with t members' help
      if (!this.takeTakeoverToken()) {
        this.scheduleScan(this.scanInterval)
        break
      }
      await this.takeOver(principal, entry, { first }, options).catch(err => {
        options.signal?.throwIfAborted()
        // not again before a while: a takeover that failed (no quorum, a bad entry) costs the helpers too
        if (!this.notBefore.has(principal)) this.notBefore.set(principal, this.now() + this.leaseTtl)
        this.log('could not take %s over - %e', principal, err)
      })
    }
  }

  /** One of MAX_TAKEOVERS_PER_INTERVAL takeovers this scan interval, if one is left. */
  private takeTakeoverToken(): boolean {
    const now = this.now()
    if (now - this.takeoverWindow >= this.scanInterval) {
      this.takeoverWindow = now
      this.takeoversLeft = MAX_TAKEOVERS_PER_INTERVAL
    }
    if (this.takeoversLeft <= 0) return false
    this.takeoversLeft--
    return true
  }

  /**
   * Runs the agent here if its lease allows: the registry record, signed by the agent's key, is what
   * holds — the directory only says where to look. A live record of another host means wait for its
   * expiry; this node's own live record (a restart within the lease) means resume now; a record
   * known to have expired means the first candidate takes over; no record at all while the named
   * host looks alive tells nothing, so nothing is done.
   */
  private async takeOver(
    principal: PrincipalId,
    entry: DirectoryEntry,
    rankOf: { first: boolean },
    options: AbortOptions
  ): Promise<void> {
    const lease = await this.lease(principal, options)
    const now = this.now()
    const name = `${entry.kind}/${entry.id}`
    const ranHere = await this.ranHere(principal, options)
    if (lease.state === 'live') {
      if (!(lease.record.host === this.self && ranHere)) {
        this.notBefore.set(principal, lease.record.expires + this.leaseSkew)
        this.scheduleScan(Math.max(0, lease.record.expires + this.leaseSkew - now))
        return
      }
    } else if (lease.state === 'expired') {
      // the record, signed by the agent's key, names what it is: an entry that says otherwise is not followed
      if (lease.card !== name) {
        this.notBefore.set(principal, now + 10 * this.leaseTtl)
        throw new InvalidAgentOptionError(`the directory says ${principal} is ${name}; its record says ${lease.card}`)
      }
      if (!mayTakeOver(lease.expires, now, this.leaseSkew)) {
        this.notBefore.set(principal, lease.expires + this.leaseSkew)
        return
      }
      if (!rankOf.first && !ranHere) return
    } else {
      // no record known: nothing says such an agent ever ran (a member can write any entry), except this
      // node's own store of the agents it ran — after a restart it brings those back
      if (!ranHere) {
        this.notBefore.set(principal, now + this.leaseTtl)
        return
      }
    }
    const agentKey = await this.agentKey(entry.kind, entry.id, entry.key, false, options)
    const signer = agentKey.signer
    if (signer.principal !== principal) {
      // a directory entry whose name does not derive to its principal: someone wrote it wrong
      this.notBefore.set(principal, this.now() + 10 * this.leaseTtl)
      throw new InvalidAgentOptionError(`${entry.kind}/${entry.id} derives to ${signer.principal}, not ${principal}`)
    }
    await this.startHere(entry, agentKey, true, options)
  }
}
