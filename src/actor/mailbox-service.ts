/**
 * The mailbox service: signed messages between agent principals over `/cyberspace/mailbox/1.0.0`
 * (wire format: protocols/mailbox/), one-way (`send`, resolved once the recipient handled it) and
 * request/response (`request`, resolved with the response), at least once, in order per sender and
 * recipient, and with the same semantics between two agents of this node, without the network.
 *
 * Sending: the recipient is a principal or an SDSI name (resolved by the registry); its host comes
 * from its registry record (cached briefly; looked up again, without the cache, when the host says
 * the agent is not there or cannot be reached). Each message carries a sender-chosen id, the
 * sender's session and a seq per (sender, recipient), and `low`, below which every seq is settled
 * at the sender. An unacknowledged message is retried with the same id (bounded attempts, doubling
 * delays with jitter) until it is acknowledged, refused for good, or its `expires` passes.
 *
 * Receiving, every time and in this order, before the agent sees anything: the peer's budget, the
 * frame decoded within limits, expiry, the recipient hosted here, the sender's signature, the
 * sender's authority — `(cyberspace (mailbox (send <recipient> <type>)))` by this node's ACL, from
 * the local store or proven by the peer that delivered it — then deduplication (a duplicate of a
 * handled message gets the same answer again; one still waiting or in progress waits for it), then
 * order: a session's messages reach the agent one at a time in seq order; later ones wait (at most
 * `maxHeld` ahead per session) until the gap is filled by the sender's retries. A reply is signed by
 * the recipient. Refusals are error answers with their names (src/actor/mailbox-errors.ts).
 *
 * Bounds (defaults): frames 258 KiB; 64 messages held ahead per session, 1024 held in all (32 MiB);
 * 4096 sessions and 4096 sender pairs remembered; 16384 cached answers (32 MiB), each until its
 * message expires; per peer 32 inbound streams, 60 000 messages a minute, 30 refusals a minute
 * (then its messages are refused undecoded for a while); 16 first attempts in flight per host.
 *
 * @example
 * const node = await memoryNode({ services: { mailbox: mailbox() } })
 * const box = node.libp2p.services.mailbox as Mailbox
 * box.attach(agent)                                   // a HostedAgent (see directory.ts)
 * await box.send(agent.principal, other, 'note', { text: 'hi' })
 * const answer = await box.request(agent.principal, "cluster's reviewer", 'review', { diff })
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { base16 } from 'multiformats/bases/base16'
import {
  checkBody,
  checkUnsignedEnvelope,
  CLOCK_SKEW_MS,
  decodeMailboxMessage,
  encodeMailboxMessage,
  envelopeSigningBody,
  ID_PATTERN,
  MAILBOX_PROTOCOL,
  MAILBOX_REPLY_SIGNING_DOMAIN,
  MAILBOX_SIGNING_DOMAIN,
  MAX_MAILBOX_MESSAGE_BYTES,
  MAX_MESSAGE_TTL_MS,
  replySigningBody,
  TYPE_PATTERN
} from '../../protocols/mailbox/codec.ts'
import { errorAnswer } from '../../protocols/wire.ts'
import { isPrincipalId, parsePrincipal, principalPublicKey } from '../crypto/principal.ts'
import * as dagCbor from '@ipld/dag-cbor'
import { verifyAs } from '../crypto/sign.ts'
import { requestOnce } from '../network/rpc.ts'
import { PeerBudget } from '../peer-budget.ts'
import { RecentMap } from '../recent-map.ts'
import { spkiTimeMs } from '../spki/cert.ts'
import { backoffDelay, checkBackoff } from './backoff.ts'
import { atom } from '../spki/sexp.ts'
import { parseTag } from '../spki/tag.ts'
import {
  AgentNotHostedError,
  AmbiguousRecipientError,
  DeliveryFailedError,
  DeliveryTimeoutError,
  DuplicateMessageError,
  HandlerFailedError,
  HandlerTimeoutError,
  InvalidMailboxMessageError,
  MailboxBusyError,
  MailboxFullError,
  MailboxMessageTooLargeError,
  MailboxRateLimitedError,
  MessageExpiredError,
  MessagePendingError,
  MessageSignatureError,
  SenderNotHostedError,
  SequenceGapError,
  UnauthorizedSenderError,
  UnknownAgentError
} from './mailbox-errors.ts'
import type { Envelope, MailboxMessage, Reply, UnsignedEnvelope, UnsignedReply } from '../../protocols/mailbox/codec.ts'
import type { ErrorAnswer } from '../../protocols/wire.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Registry } from '../registry/service.ts'
import type { Spki } from '../spki/service.ts'
import type { BackoffOptions } from './backoff.ts'
import type { HostedAgent, InboundMessage } from './directory.ts'
import type { AbortOptions, ComponentLogger, Connection, Logger, PeerId, Startable, Stream } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'

export interface MailboxInit {
  protocol?: string
  /** Default life of a message, in ms: a send or request not acknowledged by then fails; default 30 s, at most 10 min. */
  timeout?: number
  /** How long one delivery attempt waits for its answer, in ms; default 10 s. */
  attemptTimeout?: number
  /** Most attempts per message; default 8. */
  maxAttempts?: number
  /** Delay before the first retry, in ms, doubling up to maxRetryDelay, plus up to 20 % jitter; default 100. */
  retryDelay?: number
  maxRetryDelay?: number
  /** The deadline the recipient's handler gets, in ms (and never past the message's expiry); default 30 s. */
  handlerTimeout?: number
  /** How long an inbound stream waits for its message's answer before answering MessagePendingError, in ms (below the sender's attempt timeout, so it hears that rather than nothing); default 8 s. */
  streamTimeout?: number
  /** Concurrent inbound mailbox streams per connection, and inbound messages in flight per peer; default 32. */
  maxInboundStreams?: number
  /** First attempts this node has in flight to one host at once (retries go regardless); default 16. */
  maxInFlightPerHost?: number
  /** Messages this node accepts from one peer per minute; default 60 000. */
  maxMessagesPerMinute?: number
  /** Refused messages (malformed, forged, unauthorized) a peer may send per minute before its frames are refused undecoded; default 30. */
  maxRefusalsPerMinute?: number
  /** How far ahead of the next expected seq a session's messages may arrive and wait; default 64. */
  maxHeld?: number
  /** Messages waiting for their turn, in all sessions; default 1024. */
  maxHeldTotal?: number
  maxHeldBytes?: number
  /** Receiver sessions remembered (their next seq); default 4096. */
  maxSessions?: number
  /** Sender pairs (agent, recipient) remembered; default 4096. */
  maxPairs?: number
  /** Answers kept for duplicates, by count and by bytes; default 16384 and 32 MiB. */
  maxCachedAnswers?: number
  maxCachedAnswerBytes?: number
  /** How long an authorization is reused (at the same SPKI epoch), in ms; default 60 s. */
  authorizationTtl?: number
  /** The clock of expiry checks; default Date.now. */
  now?: () => number
  /** Test hook (loss): a true result drops the inbound message before anything looks at it. */
  dropInbound?: (envelope: Envelope) => boolean
  /** Test hook (loss): a true result drops the answer after the message was handled. */
  dropAnswer?: (envelope: Envelope) => boolean
}

export interface MailboxComponents {
  peerId: PeerId
  registrar: Registrar
  connectionManager: ConnectionManager
  logger: ComponentLogger
  spki: Spki
  registry: Registry
}

export interface SendOptions extends AbortOptions {
  /** Life of the message in ms (1 ms to 10 min): it fails with DeliveryTimeoutError when not acknowledged by then; default the service's. */
  timeout?: number
  /** The message id (1-64 of A-Z a-z 0-9 . _ -), to make a send idempotent across caller restarts; default random. */
  id?: string
}

/** What a send's acknowledgement says. */
export interface Receipt {
  id: string
  /** The recipient principal (a name resolved). */
  to: PrincipalId
  /** Whether it was delivered on this node. */
  local: boolean
}

export interface Mailbox {
  /** Hosts `agent` here: messages to its principal are handed to it, and it may send. */
  attach(agent: HostedAgent): void
  /** Stops hosting an attached agent; false if it was not attached. */
  detach(principal: PrincipalId): boolean
  /** Sends a one-way message; resolves once the recipient handled it. */
  send(
    from: PrincipalId,
    to: PrincipalId | string,
    type: string,
    body: unknown,
    options?: SendOptions
  ): Promise<Receipt>
  /** Sends a request; resolves with the recipient's response (signed by the recipient). */
  request(
    from: PrincipalId,
    to: PrincipalId | string,
    type: string,
    body: unknown,
    options?: SendOptions
  ): Promise<unknown>
}

/** The tag a sender needs to send `type` to `recipient`; without a type, anything sent to `recipient`. */
export function mailboxSendTag(recipient: PrincipalId, type?: string): ReturnType<typeof parseTag> {
  const send = [atom('send'), atom(recipient), ...(type === undefined ? [] : [atom(type)])]
  return parseTag([atom('cyberspace'), [atom('mailbox'), send]])
}

/** Errors whose answer means "try again": the message may still be delivered. */
/** Refusals that say the receiver is busy right now (no loss): retried without counting as an attempt. */
const BACKPRESSURE = new Set(['MailboxRateLimitedError', 'MailboxBusyError'])
/** Most backpressure answers one message waits out before they count as attempts again. */
const MAX_BACKPRESSURE_WAITS = 16
const RETRYABLE = new Set(['MailboxRateLimitedError', 'SequenceGapError', 'MessagePendingError', 'MailboxBusyError'])

/** The classes a refusal's name surfaces as at the caller. */
const KNOWN: Record<string, new (message: string) => Error> = {
  UnauthorizedSenderError,
  UnknownAgentError,
  AgentNotHostedError,
  MessageSignatureError,
  MessageExpiredError,
  DuplicateMessageError,
  MailboxRateLimitedError,
  SequenceGapError,
  MessagePendingError,
  MailboxBusyError,
  InvalidMailboxMessageError,
  MailboxMessageTooLargeError
}

/** An error answer from the peer (or the local receiver): a refusal, as opposed to a lost message. */
class Refusal extends Error {
  readonly answer: ErrorAnswer
  constructor(answer: ErrorAnswer) {
    super(answer.message)
    this.answer = answer
  }
}

/** A message or answer lost on the way (the test hooks, on local delivery). */
class LostError extends Error {
  static name = 'LostError'
  name = 'LostError'
}

/** The error a refusal surfaces as: the class of its name, else HandlerFailedError. */
function refusalError(answer: ErrorAnswer, to: string): Error {
  if (answer.name === 'MailboxFullError') return new MailboxFullError(0, answer.message)
  if (answer.name === 'HandlerTimeoutError') {
    const err = new HandlerTimeoutError(to, 0)
    err.message = answer.message
    return err
  }
  const known = KNOWN[answer.name]
  if (known != null) return new known(answer.message)
  // the receiver's wrapping of a behaviour's error: "<its name>: <its message>"
  if (answer.name === 'HandlerFailedError')
    return new HandlerFailedError(answer.message, /^([A-Za-z]+): /.exec(answer.message)?.[1] ?? 'Error')
  return new HandlerFailedError(`${answer.name}: ${answer.message}`, answer.name)
}

const errorBytes = (err: Error): Uint8Array => encodeMailboxMessage(errorAnswer(err))

/** A random token of `bytes` bytes, lowercase hex. */
const randomHex = (bytes: number): string => base16.baseEncode(crypto.getRandomValues(new Uint8Array(bytes)))

/** `promise`, or `onAbort()` thrown when `signal` fires first; `promise` runs on regardless. */
async function raced<T>(promise: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  if (signal.aborted) throw onAbort()
  return await new Promise<T>((resolve, reject) => {
    const abort = (): void => {
      reject(onAbort())
    }
    signal.addEventListener('abort', abort, { once: true })
    promise.then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', abort)
    })
  })
}

async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const done = (): void => {
      signal.removeEventListener('abort', abort)
      resolve()
    }
    const timer = setTimeout(done, ms)
    const abort = (): void => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    signal.addEventListener('abort', abort, { once: true })
  })
}

/** A first-come, first-served limit on concurrent work. */
class Gate {
  private active = 0
  private readonly waiting: Array<() => void> = []
  private readonly limit: number
  constructor(limit: number) {
    this.limit = limit
  }

  get idle(): boolean {
    return this.active === 0 && this.waiting.length === 0
  }

  async enter(signal: AbortSignal): Promise<void> {
    if (this.active < this.limit && this.waiting.length === 0) {
      this.active++
      return
    }
    await new Promise<void>((resolve, reject) => {
      const go = (): void => {
        signal.removeEventListener('abort', abort)
        this.active++
        resolve()
      }
      const abort = (): void => {
        const i = this.waiting.indexOf(go)
        if (i >= 0) this.waiting.splice(i, 1)
        reject(signal.reason)
      }
      this.waiting.push(go)
      signal.addEventListener('abort', abort, { once: true })
    })
  }

  leave(): void {
    this.active--
    this.waiting.shift()?.()
  }
}

/** An answer kept for duplicates: until its message expires, within a count and a byte budget. */
interface CachedAnswer {
  bytes: Uint8Array
  until: number
  /** For a MailboxFullError: the (session, seq) it answered; the same id in another place is a new attempt. */
  place?: string
}

/** Least recently used answers, bounded by count and total bytes. */
class AnswerCache {
  private readonly entries = new Map<string, CachedAnswer>()
  private bytes = 0
  private readonly maxEntries: number
  private readonly maxBytes: number
  constructor(maxEntries: number, maxBytes: number) {
    this.maxEntries = maxEntries
    this.maxBytes = maxBytes
  }

  get(key: string, now: number): CachedAnswer | undefined {
    const entry = this.entries.get(key)
    if (entry == null) return undefined
    this.entries.delete(key)
    if (entry.until <= now) {
      this.bytes -= entry.bytes.length
      return undefined
    }
    this.entries.set(key, entry)
    return entry
  }

  set(key: string, entry: CachedAnswer): void {
    this.delete(key)
    if (entry.bytes.length > this.maxBytes) return
    this.entries.set(key, entry)
    this.bytes += entry.bytes.length
    for (const [oldest, old] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break
      this.entries.delete(oldest)
      this.bytes -= old.bytes.length
    }
  }

  delete(key: string): void {
    const entry = this.entries.get(key)
    if (entry == null) return
    this.entries.delete(key)
    this.bytes -= entry.bytes.length
  }

  clear(): void {
    this.entries.clear()
    this.bytes = 0
  }
}

/** A message accepted by the receiver, waiting for its turn or being handled. */
interface Slot {
  key: string
  envelope: Envelope
  size: number
  answer: Promise<Uint8Array>
  settle: (bytes: Uint8Array) => void
  /** A duplicate in a place of its own (the same id under another seq): passed over in order, nothing delivered. */
  skip?: boolean
  timer?: ReturnType<typeof setTimeout>
}

/** A sender's session as the receiver sees it. */
interface Session {
  next: number
  slots: Map<number, Slot>
  /** The seq being handled now, if any. */
  handling?: number
}

/** A (sender agent, recipient) pair as the sender sees it. */
interface Pair {
  session: string
  next: number
  /** Seqs sent and not settled yet. */
  pending: Set<number>
}

/** Where a recipient is: here, or at a host peer. */
type Route = { local: true } | { local: false; host: PeerId; until: number }

class MailboxService implements Mailbox, Startable {
  private readonly components: MailboxComponents
  private readonly init: MailboxInit
  private readonly log: Logger
  private readonly protocol: string
  private readonly now: () => number
  private readonly timeout: number
  private readonly attemptTimeout: number
  private readonly maxAttempts: number
  /** Delays between attempts: the supervisors' restart backoff (doubling, capped, with jitter). */
  private readonly retryBackoff: Required<BackoffOptions>
  private readonly handlerTimeout: number
  private readonly streamTimeout: number
  private readonly maxInboundStreams: number
  private readonly maxInFlightPerHost: number
  private readonly maxRefusalsPerMinute: number
  private readonly maxHeld: number
  private readonly maxHeldTotal: number
  private readonly maxHeldBytes: number
  private readonly maxPairs: number
  private readonly authorizationTtl: number
  private readonly attached = new Map<PrincipalId, HostedAgent>()
  private readonly inbound: PeerBudget
  private readonly refusals: PeerBudget
  /** Peers whose refusal budget ran out, until when their frames are refused undecoded. */
  private readonly cooling = new RecentMap<string, number>(1024)
  private readonly sessions: RecentMap<string, Session>
  /** Accepted messages not answered yet, by (from, to, id). */
  private readonly inProgress = new Map<string, Slot>()
  private readonly answers: AnswerCache
  private held = 0
  private heldBytes = 0
  /** Authorizations, by (from, to, type): reused at the same SPKI epoch until they lapse. */
  private readonly authorized = new RecentMap<string, { epoch: number; until: number }>(4096)
  /** Refusals to authorize, by (from, to, type), at an SPKI epoch. */
  private readonly unauthorized = new RecentMap<string, { epoch: number; until: number; message: string }>(4096)
  private readonly pairs = new Map<string, Pair>()
  private readonly routes = new RecentMap<PrincipalId, Route & { local: false }>(4096)
  private readonly gates = new Map<string, Gate>()
  private shutdown = new AbortController()
  private running = false

  constructor(components: MailboxComponents, init: MailboxInit) {
    this.components = components
    this.init = init
    this.log = components.logger.forComponent('cyberspace:mailbox')
    this.protocol = init.protocol ?? MAILBOX_PROTOCOL
    this.now = init.now ?? Date.now
    this.timeout = init.timeout ?? 30_000
    if (!(this.timeout >= 1 && this.timeout <= MAX_MESSAGE_TTL_MS))
      throw new RangeError(`timeout must be 1-${MAX_MESSAGE_TTL_MS} ms`)
    this.attemptTimeout = init.attemptTimeout ?? 10_000
    this.maxAttempts = Math.max(1, init.maxAttempts ?? 8)
    this.retryBackoff = checkBackoff({
      min: init.retryDelay ?? 100,
      max: init.maxRetryDelay ?? 2000,
      randomFactor: 0.2
    })
    this.handlerTimeout = init.handlerTimeout ?? 30_000
    this.streamTimeout = init.streamTimeout ?? 8000
    this.maxInboundStreams = init.maxInboundStreams ?? 32
    this.maxInFlightPerHost = init.maxInFlightPerHost ?? 16
    this.maxRefusalsPerMinute = init.maxRefusalsPerMinute ?? 30
    this.maxHeld = init.maxHeld ?? 64
    this.maxHeldTotal = init.maxHeldTotal ?? 1024
    this.maxHeldBytes = init.maxHeldBytes ?? 32 * 1024 * 1024
    this.maxPairs = init.maxPairs ?? 4096
    this.authorizationTtl = init.authorizationTtl ?? 60_000
    this.inbound = new PeerBudget(init.maxMessagesPerMinute ?? 60_000, this.maxInboundStreams, this.now)
    this.refusals = new PeerBudget(this.maxRefusalsPerMinute, Infinity, this.now)
    this.sessions = new RecentMap(init.maxSessions ?? 4096, {
      onEvict: (_key, session) => {
        this.dropSession(session)
      }
    })
    this.answers = new AnswerCache(init.maxCachedAnswers ?? 16_384, init.maxCachedAnswerBytes ?? 32 * 1024 * 1024)
  }

  readonly [Symbol.toStringTag] = 'cyberspace/mailbox'

  async start(): Promise<void> {
    this.shutdown = new AbortController()
    await this.components.registrar.handle(
      this.protocol,
      (stream, connection) => {
        void this.onStream(stream, connection)
      },
      { maxInboundStreams: this.maxInboundStreams, maxOutboundStreams: Math.max(64, this.maxInFlightPerHost * 2) }
    )
    this.running = true
  }

  async stop(): Promise<void> {
    this.running = false
    this.shutdown.abort(new SenderNotHostedError('the mailbox service stopped'))
    await this.components.registrar.unhandle(this.protocol)
    for (const session of this.sessions.values()) this.dropSession(session)
    this.sessions.clear()
    this.inProgress.clear()
    this.answers.clear()
    this.pairs.clear()
    this.routes.clear()
  }

  attach(agent: HostedAgent): void {
    if (agent == null || !isPrincipalId(agent.principal) || agent.signer?.principal !== agent.principal)
      throw new TypeError('an agent has a principal id and a signer of that principal')
    this.attached.set(agent.principal, agent)
  }

  detach(principal: PrincipalId): boolean {
    return this.attached.delete(principal)
  }

  private agent(principal: PrincipalId): HostedAgent | undefined {
    return this.attached.get(principal)
  }

  // --- sending ---

  async send(
    from: PrincipalId,
    to: PrincipalId | string,
    type: string,
    body: unknown,
    options: SendOptions = {}
  ): Promise<Receipt> {
    const { receipt } = await this.deliver(from, to, type, body, 'send', options)
    return receipt
  }

  async request(
    from: PrincipalId,
    to: PrincipalId | string,
    type: string,
    body: unknown,
    options: SendOptions = {}
  ): Promise<unknown> {
    const { reply } = await this.deliver(from, to, type, body, 'request', options)
    return reply.body
  }

  private async deliver(
    from: PrincipalId,
    to: string,
    type: string,
    body: unknown,
    kind: 'send' | 'request',
    options: SendOptions
  ): Promise<{ receipt: Receipt; reply: Reply }> {
    if (!this.running) throw new SenderNotHostedError('the mailbox service is not running')
    const sender = this.agent(from)
    if (sender == null) throw new SenderNotHostedError(`${String(from)} is not hosted on this node`)
    if (typeof type !== 'string' || !TYPE_PATTERN.test(type))
      throw new InvalidMailboxMessageError('a message type is 1-128 characters of A-Z a-z 0-9 . _ : / -')
    const id = options.id ?? randomHex(16)
    if (typeof id !== 'string' || !ID_PATTERN.test(id))
      throw new InvalidMailboxMessageError('a message id is 1-64 characters of A-Z a-z 0-9 . _ -')
    const timeout = options.timeout ?? this.timeout
    if (!Number.isSafeInteger(timeout) || timeout < 1 || timeout > MAX_MESSAGE_TTL_MS)
      throw new RangeError(`timeout must be 1-${MAX_MESSAGE_TTL_MS} ms`)
    checkBody(body ?? null)
    const sent = this.now()
    const expires = sent + timeout
    const deadline = AbortSignal.timeout(timeout)
    const signal = AbortSignal.any([
      deadline,
      this.shutdown.signal,
      ...(options.signal == null ? [] : [options.signal])
    ])
    // the caller's abort and a stop are thrown as they are; anything else that ends the wait is the deadline
    const timedOut = (cause?: unknown): Error =>
      options.signal?.aborted === true
        ? (options.signal.reason as Error)
        : this.shutdown.signal.aborted
          ? (this.shutdown.signal.reason as Error)
          : new DeliveryTimeoutError(`${kind} ${id} to ${to} was not acknowledged within ${timeout} ms`, { cause })
    try {
      const recipient = await this.recipient(to, signal)
      const pair = this.pair(from, recipient)
      const seq = pair.next++
      pair.pending.add(seq)
      try {
        const unsigned: UnsignedEnvelope = {
          v: 1,
          id,
          from,
          to: recipient,
          type,
          session: pair.session,
          seq,
          low: Math.min(...pair.pending),
          kind,
          body: body ?? null,
          sent,
          expires
        }
        checkUnsignedEnvelope(unsigned)
        return await this.attempts(sender, unsigned, pair, signal, timedOut)
      } finally {
        pair.pending.delete(seq)
      }
    } catch (err) {
      if (signal.aborted) throw timedOut(err)
      throw err
    }
  }

  /** The recipient principal: `to` itself, or the one agent the name `to` denotes. */
  private async recipient(to: string, signal: AbortSignal): Promise<PrincipalId> {
    if (typeof to !== 'string') throw new UnknownAgentError('a recipient is a principal id or a name')
    if (!to.includes("'s")) {
      try {
        return parsePrincipal(to)
      } catch (err) {
        throw new UnknownAgentError(`${to.slice(0, 80)} is neither a principal nor a name: ${(err as Error).message}`)
      }
    }
    let records
    try {
      records = await this.components.registry.resolve(to, { signal })
    } catch (err) {
      signal.throwIfAborted()
      const e = err as Error
      if (e.name === 'AgentNameError' || e.name === 'AgentNotFoundError' || e.name === 'AgentRecordExpiredError')
        throw new UnknownAgentError(`${to} names no agent with a current record: ${e.message}`)
      throw err
    }
    if (records.length === 0) throw new UnknownAgentError(`${to} names no agent with a current record`)
    if (records.length > 1)
      throw new AmbiguousRecipientError(`${to} names ${records.length} agents: send to one of them by principal`)
    const record = records[0]
    if (record.host !== this.components.peerId.toString()) this.remember(record.agent, record.host, record.expires)
    return record.agent
  }

  /** This node's sequence towards `to` for agent `from` (a new session when it was forgotten). */
  private pair(from: PrincipalId, to: PrincipalId): Pair {
    const key = `${from} ${to}`
    let pair = this.pairs.get(key)
    if (pair != null) {
      this.pairs.delete(key)
      this.pairs.set(key, pair)
      return pair
    }
    if (this.pairs.size >= this.maxPairs) {
      for (const [k, p] of this.pairs) {
        if (this.pairs.size < this.maxPairs) break
        if (p.pending.size === 0) this.pairs.delete(k)
      }
      if (this.pairs.size >= this.maxPairs)
        throw new MailboxBusyError(`this node has messages in flight to ${this.maxPairs} recipients: try again shortly`)
    }
    pair = { session: randomHex(12), next: 1, pending: new Set() }
    this.pairs.set(key, pair)
    return pair
  }

  private async sign(sender: HostedAgent, unsigned: UnsignedEnvelope): Promise<Uint8Array> {
    const sig = await sender.signer.sign(MAILBOX_SIGNING_DOMAIN, envelopeSigningBody(unsigned))
    return encodeMailboxMessage({ v: 1, type: 'deliver', envelope: { ...unsigned, sig } })
  }

  /**
   * Attempts delivery until acknowledged or refused for good: retries after a lost message or a
   * retryable refusal with the same id (re-signed when `low` moved), looks the recipient up again
   * without the cache after a failure to reach its host, and once after AgentNotHostedError.
   */
  private async attempts(
    sender: HostedAgent,
    unsigned: UnsignedEnvelope,
    pair: Pair,
    signal: AbortSignal,
    timedOut: (cause?: unknown) => Error
  ): Promise<{ receipt: Receipt; reply: Reply }> {
    let frame = await this.sign(sender, unsigned)
    let fresh = false
    let movedOnce = false
    let lost = 0
    let waited = 0
    let last: Error | undefined
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      if (attempt > 1 || waited > 0) {
        const delay = backoffDelay(attempt - 1 + waited, this.retryBackoff, Math.random())
        if (this.now() + delay >= unsigned.expires) throw timedOut(last)
        await sleep(delay, signal)
        const low = Math.min(...pair.pending)
        if (low !== unsigned.low) {
          unsigned = { ...unsigned, low }
          frame = await this.sign(sender, unsigned)
        }
      }
      let route: Route
      try {
        route = await this.route(unsigned.to as PrincipalId, fresh, signal)
      } catch (err) {
        signal.throwIfAborted()
        if ((err as Error).name === 'UnknownAgentError' || (err as Error).name === 'HostNotMemberError') throw err
        last = err as Error
        this.log('no route to %s - %e', unsigned.to, err)
        continue
      }
      fresh = false
      try {
        const answer = await this.attempt(route, unsigned.to as PrincipalId, frame, attempt === 1, signal)
        const reply = await this.checkReply(answer, unsigned)
        return { reply, receipt: { id: unsigned.id, to: unsigned.to as PrincipalId, local: route.local } }
      } catch (err) {
        signal.throwIfAborted()
        if (!(err instanceof Refusal)) {
          // lost on the way, or the host unreachable: from the second loss on, the record is read
          // again before each attempt (a dead host's successor publishes a new one)
          if (!route.local && ++lost >= 2) {
            this.routes.delete(unsigned.to as PrincipalId)
            fresh = true
          }
          last = err as Error
          this.log('attempt %d of %s to %s failed - %e', attempt, unsigned.id, unsigned.to, err)
          continue
        }
        const { answer } = err
        if (answer.name === 'AgentNotHostedError' && !movedOnce) {
          // the agent moved: its record, read again without the cache, says where to
          movedOnce = true
          fresh = true
          this.routes.delete(unsigned.to as PrincipalId)
          attempt--
          continue
        }
        last = refusalError(answer, unsigned.to)
        if (!RETRYABLE.has(answer.name)) throw last
        if (BACKPRESSURE.has(answer.name) && waited < MAX_BACKPRESSURE_WAITS) {
          // the recipient's node is busy, not lossy: wait (longer each time) without spending an
          // attempt; the message's expiry still bounds it
          waited++
          attempt--
        }
      }
    }
    throw new DeliveryFailedError(
      `${unsigned.kind} ${unsigned.id} to ${unsigned.to} not acknowledged after ${this.maxAttempts} attempts: ${last?.message ?? ''}`,
      { cause: last }
    )
  }

  /** One attempt: the decoded answer of the recipient's node (a Refusal for an error answer). */
  private async attempt(
    route: Route,
    to: PrincipalId,
    frame: Uint8Array,
    first: boolean,
    signal: AbortSignal
  ): Promise<MailboxMessage> {
    // per host, bounding the streams to it; locally per recipient, so one busy agent never holds up another
    const gateKey = route.local ? `local ${to}` : route.host.toString()
    let gate = this.gates.get(gateKey)
    if (gate == null) {
      gate = new Gate(this.maxInFlightPerHost)
      this.gates.set(gateKey, gate)
    }
    // first attempts queue in order; retries go at once, so a message held ahead of a gap can
    // never keep the message that fills it waiting for a turn
    if (first) await gate.enter(signal)
    const attemptSignal = AbortSignal.any([signal, AbortSignal.timeout(this.attemptTimeout)])
    try {
      let bytes: Uint8Array
      if (route.local) {
        bytes = await this.acceptLocal(frame, attemptSignal)
      } else {
        bytes = await requestOnce(
          async (peer, protocol, o) => await this.components.connectionManager.openStream(peer, protocol, o),
          route.host,
          this.protocol,
          frame,
          { maxBytes: MAX_MAILBOX_MESSAGE_BYTES, signal: attemptSignal }
        )
      }
      const answer = decodeMailboxMessage(bytes)
      if (answer.type === 'error') throw new Refusal(answer)
      return answer
    } finally {
      if (first) {
        gate.leave()
        if (gate.idle) this.gates.delete(gateKey)
      }
    }
  }

  /** The reply's body once it is the signed answer of the recipient to this very message. */
  private async checkReply(answer: MailboxMessage, envelope: UnsignedEnvelope): Promise<Reply> {
    if (answer.type !== 'reply')
      throw new Refusal(errorAnswer(new InvalidMailboxMessageError(`expected a reply, got ${answer.type}`)))
    const reply = answer.reply
    const kind = envelope.kind === 'send' ? 'ack' : 'response'
    if (reply.id !== envelope.id || reply.from !== envelope.to || reply.to !== envelope.from || reply.kind !== kind)
      throw new Refusal(
        errorAnswer(new InvalidMailboxMessageError(`the reply does not answer ${envelope.kind} ${envelope.id}`))
      )
    const ok = await verifyAs(
      principalPublicKey(reply.from),
      MAILBOX_REPLY_SIGNING_DOMAIN,
      replySigningBody(reply),
      reply.sig
    ).catch(() => false)
    if (!ok)
      throw new Refusal(
        errorAnswer(new MessageSignatureError(`the reply to ${envelope.id} is not signed by ${reply.from}`))
      )
    return reply
  }

  /** Where `to` is: hosted here, or the host its registry record names (cached until `fresh`). */
  private async route(to: PrincipalId, fresh: boolean, signal: AbortSignal): Promise<Route> {
    if (this.agent(to) != null) return { local: true }
    const cached = fresh ? undefined : this.routes.get(to)
    if (cached != null && cached.until > this.now()) return cached
    let record
    try {
      record = await this.components.registry.get(to, { signal })
    } catch (err) {
      signal.throwIfAborted()
      const e = err as Error
      if (e.name === 'AgentNotFoundError' || e.name === 'AgentRecordExpiredError')
        throw new UnknownAgentError(`no current record of ${to}: ${e.message}`)
      throw err
    }
    if (record.host === this.components.peerId.toString()) {
      // the record says here, but nothing here hosts it (stopped, or still starting)
      return { local: true }
    }
    return this.remember(to, record.host, record.expires)
  }

  /** Caches where `agent` is (its record's host, a verified peer id) until its record expires, at most 30 s. */
  private remember(agent: PrincipalId, host: string, expires: number): Route & { local: false } {
    const route = { local: false as const, host: peerIdFromString(host), until: Math.min(expires, this.now() + 30_000) }
    this.routes.set(agent, route)
    return route
  }

  // --- receiving ---

  private async onStream(stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer
    const lp = lpStream(stream, { maxDataLength: MAX_MAILBOX_MESSAGE_BYTES })
    try {
      const bytes = (await lp.read({ signal: AbortSignal.timeout(this.streamTimeout) })).subarray()
      const answer = await this.answerInbound(bytes, peer)
      if (answer == null) {
        stream.abort(new LostError('dropped by the test hook'))
        return
      }
      const signal = AbortSignal.timeout(this.streamTimeout)
      await lp.write(answer, { signal })
      await stream.close({ signal })
    } catch (err) {
      this.log('mailbox stream from %p failed - %e', peer, err)
      stream.abort(err as Error)
    }
  }

  /** The answer to one inbound frame from `peer`, within its budgets; undefined when a test hook drops it. */
  private async answerInbound(bytes: Uint8Array, peer: PeerId): Promise<Uint8Array | undefined> {
    const id = peer.toString()
    const cooling = this.cooling.get(id)
    if (cooling != null && cooling > this.now())
      return errorBytes(new MailboxRateLimitedError(`${id} sent too many refused messages: try again later`))
    if (!this.inbound.take(id))
      return errorBytes(new MailboxRateLimitedError(`${id} sent too many messages just now: try again shortly`))
    try {
      let envelope: Envelope
      try {
        const msg = decodeMailboxMessage(bytes)
        if (msg.type !== 'deliver') throw new InvalidMailboxMessageError(`expected a deliver message, got ${msg.type}`)
        envelope = msg.envelope
      } catch (err) {
        this.refused(id)
        return errorBytes(err as Error)
      }
      if (this.init.dropInbound?.(envelope) === true) return undefined
      const { answer: pending } = await this.accept(envelope, bytes.length, peer)
      const answer = await raced(
        pending,
        AbortSignal.timeout(this.streamTimeout),
        () => new MessagePendingError(`${envelope.id} is not handled yet: ask again with the same id`)
      ).catch((err: Error) => errorBytes(err))
      if (this.init.dropAnswer?.(envelope) === true) return undefined
      return answer
    } finally {
      this.inbound.release(id)
    }
  }

  /** Counts a refusal against `peer`; one over its budget makes its next frames refused undecoded for a while. */
  private refused(peer: string): void {
    if (!this.refusals.take(peer)) this.cooling.set(peer, this.now() + 60_000 / Math.max(1, this.maxRefusalsPerMinute))
  }

  /** Local delivery: the same frame, decoded and checked as if it came from a peer, without budgets. */
  private async acceptLocal(frame: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    const msg = decodeMailboxMessage(frame)
    if (msg.type !== 'deliver') throw new InvalidMailboxMessageError('expected a deliver message')
    const envelope = msg.envelope
    if (this.init.dropInbound?.(envelope) === true) throw new LostError('dropped by the test hook')
    const { answer: pending } = await this.accept(envelope, frame.length)
    const answer = await raced(pending, signal, () => new LostError(`${envelope.id} is not handled yet`))
    if (this.init.dropAnswer?.(envelope) === true) throw new LostError('answer dropped by the test hook')
    return answer
  }

  /**
   * Checks an envelope (expiry, recipient, signature, authority) and admits it in its session's
   * order. Resolves with a promise of the encoded answer; refusals are answers too.
   */
  private async accept(envelope: Envelope, size: number, peer?: PeerId): Promise<{ answer: Promise<Uint8Array> }> {
    const answered = (err: Error): { answer: Promise<Uint8Array> } => ({ answer: Promise.resolve(errorBytes(err)) })
    const refuse = (err: Error): { answer: Promise<Uint8Array> } => {
      if (peer != null) this.refused(peer.toString())
      return answered(err)
    }
    const now = this.now()
    if (envelope.expires <= now)
      return answered(new MessageExpiredError(`${envelope.id} expired at ${envelope.expires}`))
    if (envelope.sent > now + CLOCK_SKEW_MS)
      return answered(new MessageExpiredError(`${envelope.id} claims to be sent in the future`))
    if (!isPrincipalId(envelope.from) || !isPrincipalId(envelope.to))
      return refuse(new InvalidMailboxMessageError('from and to must be Ed25519 principal ids'))
    const from = envelope.from
    const to = envelope.to
    if (this.agent(to) == null) return answered(new AgentNotHostedError(`${to} is not hosted on this node`))
    const authKey = `${from} ${to} ${envelope.type}`
    const spki = this.components.spki
    const refusal = this.unauthorized.get(authKey)
    if (refusal != null && refusal.epoch === spki.epoch && refusal.until > now)
      return refuse(new UnauthorizedSenderError(refusal.message))
    const signed = await verifyAs(
      principalPublicKey(from),
      MAILBOX_SIGNING_DOMAIN,
      envelopeSigningBody(envelope),
      envelope.sig
    ).catch(() => false)
    if (!signed) return refuse(new MessageSignatureError(`${envelope.id} is not signed by ${from}`))
    try {
      await this.authorize(from, to, envelope.type, peer)
    } catch (err) {
      return refuse(err as Error)
    }
    return { answer: this.admit(envelope, size) }
  }

  /** Resolves if `from` holds (cyberspace (mailbox (send <to> <type>))) by this node's ACL. */
  private async authorize(from: PrincipalId, to: PrincipalId, type: string, peer?: PeerId): Promise<void> {
    const key = `${from} ${to} ${type}`
    const spki = this.components.spki
    const epoch = spki.epoch
    const cached = this.authorized.get(key)
    if (cached != null && cached.epoch === epoch && cached.until > this.now()) return
    try {
      const grant = await spki.authorizeOrProve(from, mailboxSendTag(to, type), {
        signal: this.shutdown.signal,
        providers: peer == null ? [] : [peer],
        refuse: (local, remote) =>
          new UnauthorizedSenderError(
            `${from} may not send ${type} to ${to} here: ${local.message}; asked for a proof: ${remote.message}`
          )
      })
      const notAfter = grant.validity.notAfter != null ? spkiTimeMs(grant.validity.notAfter) : Infinity
      this.authorized.set(key, { epoch, until: Math.min(this.now() + this.authorizationTtl, notAfter) })
    } catch (err) {
      const e = err as Error
      const refusal =
        e.name === 'UnauthorizedSenderError'
          ? e
          : new UnauthorizedSenderError(`${from} may not send ${type} to ${to} here: ${e.message}`)
      // a rate limit is no verdict; anything else is remembered until the ACL or the store changes
      if (e.name !== 'ProofRateLimitedError' && spki.epoch === epoch)
        this.unauthorized.set(key, { epoch, until: this.now() + 30_000, message: refusal.message })
      throw refusal
    }
  }

  /**
   * Admits a checked envelope: a duplicate gets its message's answer (waiting for it if it is not
   * ready); a new message waits for its turn in its session (at most maxHeld ahead).
   */
  private admit(envelope: Envelope, size: number): Promise<Uint8Array> {
    const now = this.now()
    const key = `${envelope.from} ${envelope.to} ${envelope.id}`
    const place = `${envelope.session} ${envelope.seq}`
    const sessionKey = `${envelope.from} ${envelope.to} ${envelope.session}`
    let session = this.sessions.get(sessionKey)
    if (session == null) {
      // a session this node has not seen (or forgot, or the agent moved here): it starts where the sender says nothing is settled
      session = { next: envelope.low, slots: new Map() }
      this.sessions.set(sessionKey, session)
    }
    if (envelope.low > session.next) this.skipTo(session, envelope.low)
    let known = this.answers.get(key, now)
    if (known?.place != null && known.place !== place) {
      // the same id refused for a full mailbox, sent again in a new place: a new attempt
      this.answers.delete(key)
      known = undefined
    }
    const duplicate = this.inProgress.get(key)?.answer ?? (known == null ? undefined : Promise.resolve(known.bytes))
    if (duplicate != null) {
      // the same message again: its answer, once there is one. In a place of the session not
      // taken yet (the same id sent again under a new seq), it is passed over in order.
      if (
        envelope.seq >= session.next &&
        envelope.seq < session.next + this.maxHeld &&
        session.handling !== envelope.seq &&
        !session.slots.has(envelope.seq)
      ) {
        session.slots.set(envelope.seq, { key, envelope, size: 0, answer: duplicate, settle: () => {}, skip: true })
        this.pump(session)
      }
      return duplicate
    }
    if (envelope.seq < session.next || session.handling === envelope.seq)
      return Promise.resolve(
        errorBytes(new DuplicateMessageError(`${envelope.id} (seq ${envelope.seq}) was handled or settled before`))
      )
    if (session.slots.has(envelope.seq))
      return Promise.resolve(
        errorBytes(new InvalidMailboxMessageError(`seq ${envelope.seq} of this session is another message`))
      )
    if (envelope.seq >= session.next + this.maxHeld)
      return Promise.resolve(
        errorBytes(
          new SequenceGapError(
            `seq ${envelope.seq} is more than ${this.maxHeld} ahead of ${session.next}: send again later`
          )
        )
      )
    if (this.held >= this.maxHeldTotal || this.heldBytes + size > this.maxHeldBytes)
      return Promise.resolve(errorBytes(new MailboxBusyError('this node holds as many waiting messages as it allows')))
    let settle: (bytes: Uint8Array) => void = () => {}
    const answer = new Promise<Uint8Array>(resolve => {
      settle = resolve
    })
    const slot: Slot = { key, envelope, size, answer, settle }
    session.slots.set(envelope.seq, slot)
    this.inProgress.set(key, slot)
    this.held++
    this.heldBytes += size
    // a message whose gap is never filled goes when it expires
    slot.timer = setTimeout(
      () => {
        if (session.slots.get(envelope.seq) !== slot) return
        session.slots.delete(envelope.seq)
        this.finish(slot, errorBytes(new MessageExpiredError(`${envelope.id} expired waiting for its turn`)), false)
      },
      Math.max(0, envelope.expires - now)
    )
    this.pump(session)
    return answer
  }

  /** Settles a slot with its answer, keeping it for duplicates when `keep`. */
  private finish(slot: Slot, bytes: Uint8Array, keep: boolean, place?: string): void {
    clearTimeout(slot.timer)
    if (this.inProgress.get(slot.key) === slot) {
      this.inProgress.delete(slot.key)
      this.held--
      this.heldBytes -= slot.size
    }
    if (keep) this.answers.set(slot.key, { bytes, until: slot.envelope.expires + CLOCK_SKEW_MS, place })
    slot.settle(bytes)
  }

  /** Drops the slots below `low` (their sender settled them) and moves the session on. */
  private skipTo(session: Session, low: number): void {
    for (const [seq, slot] of session.slots) {
      if (seq >= low) continue
      session.slots.delete(seq)
      this.finish(slot, errorBytes(new DuplicateMessageError(`seq ${seq} was settled by its sender`)), false)
    }
    session.next = low
    this.pump(session)
  }

  private dropSession(session: Session): void {
    for (const slot of session.slots.values())
      this.finish(slot, errorBytes(new MailboxBusyError('this node forgot the session: send again')), false)
    session.slots.clear()
  }

  /** Hands the session's next message to its agent, if it is there and none is being handled. */
  private pump(session: Session): void {
    while (session.handling == null) {
      const slot = session.slots.get(session.next)
      if (slot == null) return
      session.slots.delete(session.next)
      if (slot.skip === true) {
        session.next++
        continue
      }
      const seq = slot.envelope.seq
      session.handling = seq
      void this.handle(slot.envelope).then(({ bytes, keep, place }) => {
        this.finish(slot, bytes, keep, place)
        session.next = Math.max(session.next, seq + 1)
        session.handling = undefined
        this.pump(session)
      })
    }
  }

  /** Hands one message to its agent within its deadline; the encoded answer, and whether to keep it for duplicates. */
  private async handle(envelope: Envelope): Promise<{ bytes: Uint8Array; keep: boolean; place?: string }> {
    const agent = this.agent(envelope.to as PrincipalId)
    if (agent == null)
      return { bytes: errorBytes(new AgentNotHostedError(`${envelope.to} is not hosted on this node`)), keep: false }
    const now = this.now()
    if (envelope.expires <= now)
      return { bytes: errorBytes(new MessageExpiredError(`${envelope.id} expired waiting for its turn`)), keep: false }
    const deadline = Math.min(agent.handlerTimeout ?? this.handlerTimeout, envelope.expires - now)
    const signal = AbortSignal.any([AbortSignal.timeout(deadline), this.shutdown.signal])
    const message: InboundMessage = {
      id: envelope.id,
      from: envelope.from as PrincipalId,
      to: envelope.to as PrincipalId,
      type: envelope.type,
      body: envelope.body,
      request: envelope.kind === 'request'
    }
    let result: unknown
    try {
      result = await raced(
        agent.receive(message, { signal }),
        signal,
        () => new HandlerTimeoutError(envelope.to, deadline)
      )
    } catch (err) {
      let e = err instanceof Error ? err : new HandlerFailedError(String(err), 'Error')
      // a behaviour's error must not read as "try again" to the sender: that is the protocol's to say
      if (RETRYABLE.has(e.name)) e = new HandlerFailedError(`${e.name}: ${e.message}`, e.name)
      // a full mailbox, or an actor stopped before it got there, handled nothing: the same id in
      // another place is a new attempt
      if (e.name === 'MailboxFullError' || e.name === 'ActorStoppedError')
        return { bytes: errorBytes(e), keep: true, place: `${envelope.session} ${envelope.seq}` }
      return { bytes: errorBytes(e), keep: true }
    }
    try {
      // the answer as it was when the handler returned: a copy, so what the behaviour changes
      // afterwards (while this signs) is neither signed nor sent
      const body = envelope.kind === 'send' ? null : dagCbor.decode(dagCbor.encode(result ?? null))
      const unsigned: UnsignedReply = {
        v: 1,
        id: envelope.id,
        from: envelope.to,
        to: envelope.from,
        kind: envelope.kind === 'send' ? 'ack' : 'response',
        body
      }
      checkBody(unsigned.body)
      const sig = await agent.signer.sign(MAILBOX_REPLY_SIGNING_DOMAIN, replySigningBody(unsigned))
      return { bytes: encodeMailboxMessage({ v: 1, type: 'reply', reply: { ...unsigned, sig } }), keep: true }
    } catch (err) {
      return { bytes: errorBytes(err as Error), keep: true }
    }
  }
}

export function mailbox(init: MailboxInit = {}): (components: MailboxComponents) => Mailbox {
  return components => new MailboxService(components, init)
}
