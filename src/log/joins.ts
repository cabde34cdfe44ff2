/**
 * Fair joins: what peers offer for a document (heads from an exchange, CIDs from gossip) waits in
 * a bounded queue per document and peer, and joins start as budgets allow — per document for
 * proven readers, one shared slot for peers not proven, per peer per document, and per peer across
 * documents. A peer that offers made-up CIDs and then stalls holds up only its own queue.
 *
 * @example
 * const joins = new JoinScheduler({ ...limits }, { has: (doc, cid) => log.has(cid), run: async (doc, offer) => … })
 * joins.offer('tasks', peer, true, heads, null)
 */
import { RecentMap } from '../recent-map.ts'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

/** Most peers with offers waiting per document. */
export const MAX_PENDING_PEERS = 32
/** Most heads waiting per peer and document; the oldest are dropped first. */
export const MAX_PENDING_HEADS = 64
/** Most inline blocks kept per waiting offer. */
const MAX_PENDING_BLOCKS = 16

export interface JoinLimits {
  /** Joins of one document running at once for peers proven to read it; default 4. */
  maxConcurrentJoins?: number
  /** Joins of one document running at once for one peer; default 1. */
  maxJoinsPerPeer?: number
  /** Joins running at once for one peer, across all documents; default 4. */
  maxJoinsPerPeerTotal?: number
  /** Joins of one document running at once for all peers not proven to read it; default 1. */
  maxUnverifiedJoins?: number
}

/** What one peer offered for one document, waiting for a join slot. */
export interface Offer {
  /** The peer the join fetches from first: it told us about these heads. */
  provider: PeerId
  /** Whether `provider` is proven to read the document. */
  verified: boolean
  /** The latest heads offered, the oldest dropped first. */
  heads: RecentMap<string, CID>
  snapshot: CID | null
  blocks: Map<string, Uint8Array>
  /** Other peers that hold them (for gossip: the relay). */
  providers: PeerId[]
}

export interface JoinHooks {
  /** Whether the document holds `cid` already (then it is not queued). */
  has(doc: string, cid: CID): boolean
  /** Runs one join of an offer; never rejects. */
  run(doc: string, offer: Offer): Promise<void>
}

interface DocumentQueue {
  pending: Map<string, Offer>
  /** Running joins by provider. */
  running: Map<string, number>
  verifiedJoins: number
  unverifiedJoins: number
}

export class JoinScheduler {
  private readonly limits: Required<JoinLimits>
  private readonly hooks: JoinHooks
  private readonly queues = new Map<string, DocumentQueue>()
  /** Running joins by provider, across documents. */
  private readonly peerJoins = new Map<string, number>()

  constructor(limits: JoinLimits, hooks: JoinHooks) {
    this.limits = {
      maxConcurrentJoins: limits.maxConcurrentJoins ?? 4,
      maxJoinsPerPeer: limits.maxJoinsPerPeer ?? 1,
      maxJoinsPerPeerTotal: limits.maxJoinsPerPeerTotal ?? 4,
      maxUnverifiedJoins: limits.maxUnverifiedJoins ?? 1
    }
    this.hooks = hooks
  }

  /** Starts taking offers for `doc`. */
  add(doc: string): void {
    if (!this.queues.has(doc))
      this.queues.set(doc, { pending: new Map(), running: new Map(), verifiedJoins: 0, unverifiedJoins: 0 })
  }

  /** Drops `doc`'s waiting offers and takes no more (running joins finish on their own). */
  remove(doc: string): void {
    this.queues.delete(doc)
  }

  /** Queues what `provider` offered for `doc`, and starts joins where budgets allow. */
  offer(
    doc: string,
    provider: PeerId,
    verified: boolean,
    heads: CID[],
    snapshot: CID | null,
    blocks?: Map<string, Uint8Array>,
    others: PeerId[] = []
  ): boolean {
    const queue = this.queues.get(doc)
    if (queue == null) return false
    const wanted = heads.filter(h => !this.hooks.has(doc, h))
    if (wanted.length === 0) return true
    const key = provider.toString()
    let offer = queue.pending.get(key)
    if (offer == null) {
      if (queue.pending.size >= MAX_PENDING_PEERS && !evictUnverified(queue, verified)) return false
      offer = {
        provider,
        verified,
        heads: new RecentMap(MAX_PENDING_HEADS),
        snapshot: null,
        blocks: new Map(),
        providers: []
      }
      queue.pending.set(key, offer)
    }
    offer.verified ||= verified
    for (const h of wanted) {
      const k = h.toString()
      offer.heads.set(k, h)
      const block = blocks?.get(k)
      if (block != null && offer.blocks.size < MAX_PENDING_BLOCKS) offer.blocks.set(k, block)
    }
    if (snapshot != null) offer.snapshot = snapshot
    for (const p of others) {
      if (!p.equals(provider) && offer.providers.length < 2 && !offer.providers.some(q => q.equals(p))) {
        offer.providers.push(p)
      }
    }
    this.pump(doc, queue)
    return true
  }

  /** Starts the waiting joins that the document's and each peer's budgets allow. */
  private pump(doc: string, queue: DocumentQueue): void {
    for (const [key, offer] of queue.pending) {
      if (this.queues.get(doc) !== queue) return
      if ((queue.running.get(key) ?? 0) >= this.limits.maxJoinsPerPeer) continue
      if ((this.peerJoins.get(key) ?? 0) >= this.limits.maxJoinsPerPeerTotal) continue
      if (
        offer.verified
          ? queue.verifiedJoins >= this.limits.maxConcurrentJoins
          : queue.unverifiedJoins >= this.limits.maxUnverifiedJoins
      ) {
        continue
      }
      queue.pending.delete(key)
      count(queue.running, key, 1)
      count(this.peerJoins, key, 1)
      if (offer.verified) queue.verifiedJoins++
      else queue.unverifiedJoins++
      void this.hooks.run(doc, offer).finally(() => {
        count(queue.running, key, -1)
        count(this.peerJoins, key, -1)
        if (offer.verified) queue.verifiedJoins--
        else queue.unverifiedJoins--
        this.pump(doc, queue)
        // the peer may have offers in other documents that waited for its budget
        for (const [other, q] of this.queues) if (q !== queue && q.pending.has(key)) this.pump(other, q)
      })
    }
  }
}

/** Makes room for a proven reader's offer by dropping one of an unproven peer. */
function evictUnverified(queue: DocumentQueue, verified: boolean): boolean {
  if (!verified) return false
  for (const [key, offer] of queue.pending) {
    if (!offer.verified) {
      queue.pending.delete(key)
      return true
    }
  }
  return false
}

/** Adds `by` to the count of `key`, forgetting it at zero. */
function count(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by
  if (n > 0) counts.set(key, n)
  else counts.delete(key)
}
