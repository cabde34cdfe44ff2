/**
 * Replicated acknowledgements for one document: a caller waits until `replicas` of the peers it
 * names hold the document as it was when it asked (every event then held here, or a later state
 * covering them), and concurrent callers share their pushes. At most one push is in flight per
 * peer; the next one carries the heads as they are then, so it covers every caller that came
 * meanwhile. A push that fails or finds the peer short of the heads is tried again with backoff
 * while a caller still needs that peer, until the caller's deadline.
 *
 * @example
 * const replicator = new Replicator({ heads: () => log.heads(), push: async (peer, heads, signal) => await askHold(peer, heads, signal) })
 * const confirmedBy = await replicator.confirm({ replicas: 1, peers: [follower], timeout: 5000 })
 */
import { LogClosedError, NotEnoughReplicasError, ReplicationTimeoutError } from './errors.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export interface ReplicatorHooks {
  /** The document's heads now. */
  heads(): CID[]
  /** Asks `peer` to hold `heads`; resolves to those of them it holds. */
  push(peer: PeerId, heads: CID[], signal: AbortSignal): Promise<CID[]>
}

export interface ConfirmOptions extends AbortOptions {
  /** How many of `peers` must hold the document (0: resolve at once, push nothing). */
  replicas: number
  /** The peers asked, in order of preference; repeated ones count once. */
  peers: PeerId[]
  /** Longest wait for the confirmations, in ms. */
  timeout: number
}

/** First retry of a peer after a failed push, in ms; doubled each time, up to MAX_RETRY_DELAY. */
const FIRST_RETRY_DELAY = 50
const MAX_RETRY_DELAY = 1000

interface Waiter {
  /** Pushes that started at or after this generation cover the caller. */
  gen: number
  replicas: number
  peers: Set<string>
  confirmed: PeerId[]
  settle(err?: Error): void
}

interface PeerState {
  peer: PeerId
  inFlight: boolean
  /** The newest generation a caller needs this peer to hold. */
  wanted: number
  /** The newest generation this peer confirmed. */
  done: number
  failures: number
  retry?: ReturnType<typeof setTimeout>
  /** Why its last push did not confirm, for a caller's timeout error. */
  lastError?: string
}

export class Replicator {
  private readonly hooks: ReplicatorHooks
  private gen = 0
  private readonly waiters = new Set<Waiter>()
  private readonly states = new Map<string, PeerState>()
  private readonly closing = new AbortController()
  /** Pushes started, for tests and benchmarks. */
  pushes = 0

  constructor(hooks: ReplicatorHooks) {
    this.hooks = hooks
  }

  /** Resolves, with the first `replicas` peers that confirmed, once they hold the document as it is now. */
  async confirm(options: ConfirmOptions): Promise<PeerId[]> {
    const { replicas, timeout, signal } = options
    if (!Number.isSafeInteger(replicas) || replicas < 0) throw new RangeError('replicas is a whole number')
    if (replicas === 0) return []
    const peers = distinct(options.peers)
    if (peers.length < replicas) throw new NotEnoughReplicasError(replicas, peers.length)
    signal?.throwIfAborted()
    if (this.closing.signal.aborted) throw new LogClosedError('the document is closed')
    const gen = ++this.gen
    return await new Promise<PeerId[]>((resolve, reject) => {
      const onAbort = (): void => {
        waiter.settle(signal?.reason instanceof Error ? signal.reason : new Error('aborted'))
      }
      const timer = setTimeout(() => {
        const errors: Record<string, string> = {}
        for (const p of peers) {
          const state = this.states.get(p.toString())
          if (waiter.confirmed.some(c => c.equals(p))) continue
          errors[p.toString()] = state?.lastError ?? (state?.inFlight === true ? 'no answer yet' : 'not asked')
        }
        waiter.settle(new ReplicationTimeoutError(waiter.confirmed.length, replicas, timeout, errors))
      }, timeout)
      const waiter: Waiter = {
        gen,
        replicas,
        peers: new Set(peers.map(String)),
        confirmed: [],
        settle: err => {
          if (!this.waiters.delete(waiter)) return
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          if (err != null) reject(err)
          else resolve(waiter.confirmed)
          for (const p of peers) this.forget(p.toString())
        }
      }
      this.waiters.add(waiter)
      signal?.addEventListener('abort', onAbort, { once: true })
      for (const p of peers) this.want(p, gen)
    })
  }

  /** Pushes the document as it is now to `peers`, without waiting (once each: no retry). */
  nudge(peers: PeerId[]): void {
    if (this.closing.signal.aborted) return
    const gen = ++this.gen
    for (const p of distinct(peers)) this.want(p, gen)
  }

  /** Rejects the waiting callers with LogClosedError and stops pushing. */
  close(): void {
    this.closing.abort(new LogClosedError('the document is closed'))
    for (const waiter of [...this.waiters])
      waiter.settle(new LogClosedError('the document closed before it was replicated'))
    for (const state of this.states.values()) clearTimeout(state.retry)
    this.states.clear()
  }

  private want(peer: PeerId, gen: number): void {
    const key = peer.toString()
    let state = this.states.get(key)
    if (state == null) {
      state = { peer, inFlight: false, wanted: 0, done: 0, failures: 0 }
      this.states.set(key, state)
    }
    state.wanted = Math.max(state.wanted, gen)
    this.pump(state)
  }

  private pump(state: PeerState): void {
    if (state.inFlight || state.retry != null || state.wanted <= state.done || this.closing.signal.aborted) return
    const pushGen = this.gen
    const heads = this.hooks.heads()
    if (heads.length === 0) {
      // nothing to hold: every caller so far is covered
      this.confirmed(state, pushGen)
      return
    }
    state.inFlight = true
    this.pushes++
    let failure: string | undefined
    this.hooks
      .push(state.peer, heads, this.closing.signal)
      .then(held => {
        const have = new Set(held.map(String))
        const missing = heads.filter(h => !have.has(h.toString())).length
        if (missing === 0) this.confirmed(state, pushGen)
        else
          failure = `holds ${heads.length - missing} of the ${heads.length} heads asked (does it follow the document?)`
      })
      .catch((err: Error) => {
        failure = `${err.name}: ${err.message}`
      })
      .finally(() => {
        state.inFlight = false
        if (failure == null) {
          state.failures = 0
          state.lastError = undefined
          this.pump(state)
        } else {
          state.failures++
          state.lastError = failure
          this.retry(state)
        }
        this.forget(state.peer.toString())
      })
  }

  /** `peer` holds everything up to generation `gen`: the callers it covers count it. */
  private confirmed(state: PeerState, gen: number): void {
    state.done = Math.max(state.done, gen)
    const key = state.peer.toString()
    for (const waiter of [...this.waiters]) {
      if (waiter.gen > gen || !waiter.peers.has(key) || waiter.confirmed.some(c => c.equals(state.peer))) continue
      waiter.confirmed.push(state.peer)
      if (waiter.confirmed.length >= waiter.replicas) waiter.settle()
    }
  }

  /** After a failed push, tries the peer again with backoff while a caller still needs it. */
  private retry(state: PeerState): void {
    if (!this.needed(state) || this.closing.signal.aborted) return
    const delay = Math.min(MAX_RETRY_DELAY, FIRST_RETRY_DELAY * 2 ** (state.failures - 1))
    state.retry = setTimeout(() => {
      state.retry = undefined
      if (this.needed(state)) this.pump(state)
      else this.forget(state.peer.toString())
    }, delay)
  }

  /** Whether a waiting caller still needs `state.peer` to confirm. */
  private needed(state: PeerState): boolean {
    const key = state.peer.toString()
    for (const waiter of this.waiters) {
      if (waiter.peers.has(key) && waiter.gen > state.done) return true
    }
    return false
  }

  /** Drops the state of a peer no caller needs (its retry cancelled) and no push uses. */
  private forget(key: string): void {
    const state = this.states.get(key)
    if (state == null || state.inFlight) return
    if (state.retry != null) {
      if (this.needed(state)) return
      clearTimeout(state.retry)
      state.retry = undefined
    }
    if (state.wanted > state.done && this.needed(state)) return
    for (const waiter of this.waiters) if (waiter.peers.has(key)) return
    this.states.delete(key)
  }
}

function distinct(peers: PeerId[]): PeerId[] {
  const out = new Map<string, PeerId>()
  for (const p of peers) out.set(p.toString(), p)
  return [...out.values()]
}
