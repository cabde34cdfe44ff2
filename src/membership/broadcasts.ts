/**
 * The piggyback queue: updates waiting to ride on probes and gossip pings, each sent at most
 * `limit(n)` times (retransmitMult × ceil(log10(n + 1)), as memberlist does), the least sent
 * first. One alive and one other update (suspect, dead or left) per member: a newer one replaces
 * the older, and an alive at a higher incarnation drops the state update of a lower one. The queue
 * holds at most `capacity` entries; past that the most sent are dropped first.
 *
 * @example
 * const queue = new BroadcastQueue(512)
 * queue.add(update)
 * const riding = queue.take(16, 64 * 1024, 4) // the updates for one message
 */
import * as dagCbor from '@ipld/dag-cbor'
import type { Update } from '../../protocols/membership/codec.ts'

interface Entry {
  update: Update
  bytes: number
  sent: number
  /** Insertion order, for ties: older first. */
  order: number
}

export class BroadcastQueue {
  readonly capacity: number
  private readonly entries = new Map<string, Entry>()
  private counter = 0

  constructor(capacity: number) {
    this.capacity = Math.max(2, capacity)
  }

  get size(): number {
    return this.entries.size
  }

  /** Queues `update`, replacing what it supersedes for its member. */
  add(update: Update): void {
    const slot = update.state === 'alive' ? 'alive' : 'state'
    const key = `${update.member} ${slot}`
    if (update.state === 'alive') {
      const state = this.entries.get(`${update.member} state`)
      if (state != null && state.update.incarnation < update.incarnation) this.entries.delete(`${update.member} state`)
    }
    this.entries.set(key, { update, bytes: dagCbor.encode(update).length, sent: 0, order: this.counter++ })
    while (this.entries.size > this.capacity) {
      let worst: [string, Entry] | undefined
      for (const e of this.entries) if (worst == null || e[1].sent > worst[1].sent) worst = e
      if (worst != null) this.entries.delete(worst[0])
    }
  }

  /** Drops everything queued about `member`. */
  forget(member: string): void {
    this.entries.delete(`${member} alive`)
    this.entries.delete(`${member} state`)
  }

  /**
   * Up to `max` updates of at most `maxBytes` together, least sent first (an alive before its
   * member's state update), each counted as sent once more and dropped after `limit` sends.
   * `first` goes ahead of the rest (the buddy system: a suspect hears its suspicion first).
   */
  take(max: number, maxBytes: number, limit: number, first: Update[] = []): Update[] {
    const out: Update[] = []
    let bytes = 0
    for (const u of first) {
      if (out.length >= max) break
      const size = dagCbor.encode(u).length
      if (bytes + size > maxBytes) continue
      out.push(u)
      bytes += size
    }
    const sorted = [...this.entries].sort(
      (a, b) =>
        a[1].sent - b[1].sent ||
        (a[1].update.state === 'alive' ? 0 : 1) - (b[1].update.state === 'alive' ? 0 : 1) ||
        a[1].order - b[1].order
    )
    for (const [key, entry] of sorted) {
      if (out.length >= max) break
      if (first.includes(entry.update)) continue
      if (bytes + entry.bytes > maxBytes) continue
      out.push(entry.update)
      bytes += entry.bytes
      entry.sent++
      if (entry.sent >= limit) this.entries.delete(key)
    }
    // alives first, so a receiver knows a member's incarnation before an update naming it
    return [...out.filter(u => u.state === 'alive'), ...out.filter(u => u.state !== 'alive')]
  }
}
