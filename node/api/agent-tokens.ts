/**
 * Per-agent bearer tokens for the control API. The operator's token (`api-token` in the data
 * directory) can do everything; a program attached as an external agent gets a token bound to that
 * agent's principal instead, which acts only as that agent: its messages, inbox, replies and tools,
 * plus reads of the registry. Everything else answers 403 `AgentTokenScopeError`.
 *
 * A token is 32 random bytes as base64url, shown once when minted. The node keeps only its SHA-256
 * and finds a token by that hash (a lookup keyed by the hash of a 256-bit secret tells a timing
 * observer nothing about the secret), then compares the hashes with timingSafeEqual. Tokens live in
 * memory: like the operator's token, which is new at every start, they do not survive a restart of
 * the node (the operator mints new ones: `POST agents` again, or `cyberspace agents token`).
 *
 * @example
 * const tokens = new AgentTokens()
 * const { token, id } = tokens.mint(agent)     // give `token` to the program; the node keeps its hash
 * tokens.verify(token)                          // → { id, agent, created, lastUsed } or undefined
 * tokens.revoke({ agent })                      // every token of the agent; they answer 401 from now on
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { HttpError } from './http.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'

/** Bytes of secret in a token. */
export const AGENT_TOKEN_BYTES = 32
/** Tokens one agent may hold at once; minting more is refused until some are revoked. */
export const MAX_TOKENS_PER_AGENT = 16
/** Tokens a node holds in all (1000 agents a node, a few tokens each). */
export const MAX_AGENT_TOKENS = 4096
/** A token as text: base64url of AGENT_TOKEN_BYTES, no padding. */
const TOKEN_TEXT = /^[A-Za-z0-9_-]{43}$/
/** A token id as text: 8 random bytes in hex (never a leading "-" that a command line would take for a flag). */
export const TOKEN_ID = /^[0-9a-f]{16}$/

/** Who a control-API request comes from: the node's operator, or a program holding an agent's token. */
export type Caller = { kind: 'operator' } | { kind: 'agent'; agent: PrincipalId; tokenId: string }

export const OPERATOR: Caller = { kind: 'operator' }

/** What is known of a token; never its secret. */
export interface AgentTokenInfo {
  /** Names the token in lists and revocations; not a secret. */
  id: string
  agent: PrincipalId
  /** ms since the epoch */
  created: number
  /** When it last authorized a request, ms since the epoch; null if never. */
  lastUsed: number | null
}

/** A token as minted: the secret, shown this once. */
export interface MintedAgentToken extends AgentTokenInfo {
  token: string
}

/** The request's bearer token is missing, wrong, or revoked (401). */
export class ApiTokenError extends HttpError {
  static name = 'ApiTokenError'
  name = 'ApiTokenError'
  constructor(message: string) {
    super(401, message)
  }
}

/** An agent's token was used for what only the operator, or another agent, may do (403). */
export class AgentTokenScopeError extends HttpError {
  static name = 'AgentTokenScopeError'
  name = 'AgentTokenScopeError'
  constructor(message: string) {
    super(403, message)
  }
}

/** An agent holds MAX_TOKENS_PER_AGENT tokens already, or the node MAX_AGENT_TOKENS (409). */
export class AgentTokenLimitError extends HttpError {
  static name = 'AgentTokenLimitError'
  name = 'AgentTokenLimitError'
  constructor(message: string) {
    super(409, message)
  }
}

interface StoredToken {
  info: AgentTokenInfo
  hash: Buffer
}

const hashOf = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest()

export interface AgentTokensEvents {
  /** Tokens were revoked (they answer 401 from now on; open streams of theirs end). */
  revoke: CustomEvent<AgentTokenInfo[]>
}

export class AgentTokens extends EventTarget {
  /** By the hex of the token's hash. */
  private readonly byHash = new Map<string, StoredToken>()
  private readonly byId = new Map<string, StoredToken>()
  /** The open waits (streams, long polls) of each live token: aborted when it is revoked. */
  private readonly waits = new Map<string, Set<AbortController>>()
  private readonly now: () => number

  constructor(options: { now?: () => number } = {}) {
    super()
    this.now = options.now ?? Date.now
  }

  /** A new token for `agent`; refused with AgentTokenLimitError past the limits. */
  mint(agent: PrincipalId): MintedAgentToken {
    const held = this.count(agent)
    if (held >= MAX_TOKENS_PER_AGENT)
      throw new AgentTokenLimitError(
        `agent ${agent} holds ${held} tokens already: revoke some first (POST agents/tokens/revoke, or cyberspace agents revoke-token)`
      )
    if (this.byId.size >= MAX_AGENT_TOKENS)
      throw new AgentTokenLimitError(`this node holds ${this.byId.size} agent tokens already: revoke some first`)
    // never a leading "-", which a command line (`cyberspace mcp --token <t>`) would take for a flag
    let token = randomBytes(AGENT_TOKEN_BYTES).toString('base64url')
    while (token.startsWith('-')) token = randomBytes(AGENT_TOKEN_BYTES).toString('base64url')
    let id = randomBytes(8).toString('hex')
    while (this.byId.has(id)) id = randomBytes(8).toString('hex')
    const hash = hashOf(token)
    const stored: StoredToken = { info: { id, agent, created: this.now(), lastUsed: null }, hash }
    this.byHash.set(hash.toString('hex'), stored)
    this.byId.set(id, stored)
    return { ...stored.info, token }
  }

  /** The token's record if it is one this node minted and did not revoke (and marks it used), else undefined. */
  verify(token: string): AgentTokenInfo | undefined {
    if (!TOKEN_TEXT.test(token)) return undefined
    const hash = hashOf(token)
    const stored = this.byHash.get(hash.toString('hex'))
    if (stored == null || !timingSafeEqual(stored.hash, hash)) return undefined
    stored.info.lastUsed = this.now()
    return { ...stored.info }
  }

  /** Every live token, ordered by id; never a secret. */
  list(): AgentTokenInfo[] {
    return [...this.byId.values()].map(s => ({ ...s.info })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  /** Whether the token `id` is live (minted, not revoked). */
  has(id: string): boolean {
    return this.byId.has(id)
  }

  count(agent: PrincipalId): number {
    let n = 0
    for (const s of this.byId.values()) if (s.info.agent === agent) n++
    return n
  }

  /**
   * A signal aborted with ApiTokenError when the token `id` is revoked (at once if it is not live);
   * `release` forgets it, when the wait ends. The tokens keep the open waits themselves, so any
   * number of streams costs no listener each.
   */
  watch(id: string): { signal: AbortSignal; release: () => void } {
    const controller = new AbortController()
    const stored = this.byId.get(id)
    if (stored == null) {
      controller.abort(new ApiTokenError(`the token ${id} was revoked`))
      return { signal: controller.signal, release: () => {} }
    }
    let open = this.waits.get(id)
    if (open == null) this.waits.set(id, (open = new Set()))
    open.add(controller)
    const waits = open
    return {
      signal: controller.signal,
      release: () => {
        waits.delete(controller)
        if (waits.size === 0 && this.waits.get(id) === waits) this.waits.delete(id)
      }
    }
  }

  /** Open waits watched now (what `watch` holds until released or revoked). */
  watching(): number {
    let n = 0
    for (const open of this.waits.values()) n += open.size
    return n
  }

  /** Revokes the token `id`, or every token of `agent`; returns what it revoked. */
  revoke(which: { id?: string; agent?: PrincipalId }): AgentTokenInfo[] {
    const revoked: AgentTokenInfo[] = []
    for (const stored of [...this.byId.values()]) {
      if (
        (which.id != null && stored.info.id === which.id) ||
        (which.agent != null && stored.info.agent === which.agent)
      ) {
        this.byId.delete(stored.info.id)
        this.byHash.delete(stored.hash.toString('hex'))
        revoked.push({ ...stored.info })
        const open = this.waits.get(stored.info.id)
        this.waits.delete(stored.info.id)
        for (const wait of open ?? [])
          wait.abort(new ApiTokenError(`the token of agent ${stored.info.agent} was revoked`))
      }
    }
    if (revoked.length > 0) this.dispatchEvent(new CustomEvent('revoke', { detail: revoked }))
    return revoked
  }
}

/**
 * Refuses (403) an agent's token acting for another agent: `what` says what it tried
 * (`send as`, `read the inbox of`…). The operator acts for every agent hosted here.
 */
export function actingAs(caller: Caller, agent: PrincipalId, what: string): void {
  if (caller.kind === 'agent' && caller.agent !== agent)
    throw new AgentTokenScopeError(
      `this token is agent ${caller.agent}'s: it may not ${what} agent ${agent} (each agent's program holds its own token)`
    )
}

/** Refuses (403) an agent's token on a route only the operator may call. */
export function operatorOnly(caller: Caller, route: string): void {
  if (caller.kind === 'agent')
    throw new AgentTokenScopeError(
      `${route} needs the node's operator token (api-token in the data directory): agent ${caller.agent}'s token acts only as that agent (its messages, inbox, replies and tools) and reads the registry`
    )
}
