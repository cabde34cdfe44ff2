/**
 * Per-peer token buckets with a cap on requests in flight: how much work one peer may cause or be
 * asked for (proof requests, CRL exchanges, gossip to validate).
 *
 * @example
 * const budget = new PeerBudget(30, 2, Date.now)
 * if (!budget.take(peer.toString())) throw new ProofRateLimitedError('…')
 * try { … } finally { budget.release(peer.toString()) }
 */

/**
 * When `maxPeers` are tracked, only buckets that have refilled (and have nothing
 * in flight) are dropped; if none has, a new peer is refused, so cycling peer ids never refills a
 * depleted bucket.
 */
export class PeerBudget {
  private readonly perMinute: number
  private readonly maxInFlight: number
  private readonly now: () => number
  private readonly maxPeers: number
  private readonly buckets = new Map<string, { tokens: number; at: number; inFlight: number }>()

  constructor(perMinute: number, maxInFlight: number, now: () => number, maxPeers = 1024) {
    this.perMinute = perMinute
    this.maxInFlight = maxInFlight
    this.now = now
    this.maxPeers = maxPeers
  }

  /** Takes a token for `peer`; false when none is left or too many requests are in flight. `release` when done. */
  take(peer: string): boolean {
    const now = this.now()
    let bucket = this.buckets.get(peer)
    if (bucket == null) {
      if (!this.evict()) return false
      bucket = { tokens: this.perMinute, at: now, inFlight: 0 }
      this.buckets.set(peer, bucket)
    }
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + (Math.max(0, now - bucket.at) * this.perMinute) / 60_000)
    bucket.at = now
    if (bucket.inFlight >= this.maxInFlight || bucket.tokens < 1) return false
    bucket.tokens -= 1
    bucket.inFlight++
    return true
  }

  release(peer: string): void {
    const bucket = this.buckets.get(peer)
    if (bucket != null && bucket.inFlight > 0) bucket.inFlight--
  }

  /** Makes room for one more bucket by dropping refilled idle ones; false when none could go. */
  private evict(): boolean {
    if (this.buckets.size < this.maxPeers) return true
    const now = this.now()
    for (const [peer, bucket] of this.buckets) {
      const full = bucket.tokens + (Math.max(0, now - bucket.at) * this.perMinute) / 60_000 >= this.perMinute
      if (bucket.inFlight === 0 && full) this.buckets.delete(peer)
    }
    // a depleted bucket is never forgotten: that would hand its peer a fresh one
    return this.buckets.size < this.maxPeers
  }
}
