/**
 * Per-peer token buckets, with an optional cap on requests in flight: how much work one peer may
 * cause or be asked for (proof requests, CRL exchanges, gossip to validate, probes, syncs, registry
 * answers). A bucket holds `burst` tokens (the per-minute rate unless set; a rate of 0 allows
 * nothing) and refills at `perMinute`. At most `maxPeers` buckets are kept; to make room only
 * buckets that have refilled and have nothing in flight are dropped, and if none has, a new peer is
 * refused, so cycling peer ids never refills a depleted bucket and one flooder never takes another
 * peer's tokens.
 *
 * @example
 * const budget = new PeerBudget(30, 2, Date.now)
 * if (!budget.take(peer.toString())) throw new ProofRateLimitedError('…')
 * try { … } finally { budget.release(peer.toString()) }
 *
 * // a rate alone: 10 a second, bursts of 20, nothing to release
 * const pings = new PeerBudget(600, Infinity, Date.now, 1024, 20)
 */

export class PeerBudget {
  private readonly perMinute: number
  /** Most tokens a bucket holds, and what a new peer starts with. */
  private readonly burst: number
  /** Infinity: requests in flight are not counted and `release` is not needed. */
  private readonly maxInFlight: number
  private readonly now: () => number
  private readonly maxPeers: number
  private readonly buckets = new Map<string, { tokens: number; at: number; inFlight: number }>()

  constructor(perMinute: number, maxInFlight: number, now: () => number, maxPeers = 1024, burst = perMinute) {
    this.perMinute = perMinute
    this.burst = burst
    this.maxInFlight = maxInFlight
    this.now = now
    this.maxPeers = maxPeers
  }

  /** Takes a token for `peer`; false when none is left or too many requests are in flight. `release` when done. */
  take(peer: string): boolean {
    const now = this.now()
    let bucket = this.buckets.get(peer)
    if (bucket == null) {
      if (!this.makeRoom(now)) return false
      bucket = { tokens: this.burst, at: now, inFlight: 0 }
      this.buckets.set(peer, bucket)
    }
    bucket.tokens = this.refilled(bucket, now)
    bucket.at = now
    if (bucket.inFlight >= this.maxInFlight || bucket.tokens < 1) return false
    bucket.tokens -= 1
    if (this.maxInFlight !== Infinity) bucket.inFlight++
    return true
  }

  release(peer: string): void {
    const bucket = this.buckets.get(peer)
    if (bucket != null && bucket.inFlight > 0) bucket.inFlight--
  }

  private refilled(bucket: { tokens: number; at: number }, now: number): number {
    return Math.min(this.burst, bucket.tokens + (Math.max(0, now - bucket.at) * this.perMinute) / 60_000)
  }

  /** Makes room for one more bucket by dropping refilled idle ones; false when none could go. */
  private makeRoom(now: number): boolean {
    if (this.buckets.size < this.maxPeers) return true
    for (const [peer, bucket] of this.buckets) {
      if (bucket.inFlight === 0 && this.refilled(bucket, now) >= this.burst) this.buckets.delete(peer)
    }
    // a depleted bucket is never forgotten: that would hand its peer a fresh one
    return this.buckets.size < this.maxPeers
  }
}
