/**
 * Per-peer token buckets refilled every second: how many probes, syncs or updates one peer may
 * make this node handle. At most `maxPeers` buckets are kept; to make room only full buckets are
 * dropped, and if none is full a new peer is refused, so cycling peer ids never refills a depleted
 * bucket and one flooder never takes another peer's tokens.
 *
 * @example
 * const pings = new PeerRates(10, 20, Date.now)
 * if (!pings.take(peerId.toString())) throw new MembershipRateLimitedError('…')
 */
export class PeerRates {
  readonly perSecond: number
  readonly burst: number
  private readonly now: () => number
  private readonly maxPeers: number
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(perSecond: number, burst: number, now: () => number, maxPeers = 1024) {
    this.perSecond = perSecond
    this.burst = Math.max(1, burst)
    this.now = now
    this.maxPeers = maxPeers
  }

  /** Takes one token for `peer`; false when it has none left (or no bucket can be made for it). */
  take(peer: string): boolean {
    const now = this.now()
    let bucket = this.buckets.get(peer)
    if (bucket == null) {
      if (!this.makeRoom(now)) return false
      bucket = { tokens: this.burst, at: now }
      this.buckets.set(peer, bucket)
    }
    bucket.tokens = this.refilled(bucket, now)
    bucket.at = now
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }

  private refilled(bucket: { tokens: number; at: number }, now: number): number {
    return Math.min(this.burst, bucket.tokens + (Math.max(0, now - bucket.at) * this.perSecond) / 1000)
  }

  private makeRoom(now: number): boolean {
    if (this.buckets.size < this.maxPeers) return true
    for (const [peer, bucket] of this.buckets) {
      if (this.refilled(bucket, now) >= this.burst) this.buckets.delete(peer)
    }
    return this.buckets.size < this.maxPeers
  }
}
