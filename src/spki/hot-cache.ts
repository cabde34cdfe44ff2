import { RecentMap } from '../recent-map.ts'

/**
 * A bounded map for lookups on a hot path (remembered SPKI decisions and reductions): a hit is one
 * Map lookup and a flag set, where RecentMap (src/recent-map.ts) deletes and re-inserts the entry
 * on every read — which, measured, was over half the cost of a remembered authorization. When full,
 * the oldest entry not used since it was last passed over is forgotten (second chance, or CLOCK):
 * an entry in use survives, and the map never holds more than its capacity however many keys are
 * set.
 *
 * @example
 * const decided = new HotCache<string, Grant>(4096)
 * decided.set(key, grant)
 * decided.get(key) // grant, marked as used
 */
export class HotCache<K, V> {
  /** Most entries held; at least 1. */
  readonly capacity: number
  /** Oldest first; `used` is set by a hit and cleared when eviction passes the entry over. */
  private readonly entries = new Map<K, { value: V; used: boolean }>()

  constructor(capacity: number) {
    if (typeof capacity !== 'number' || Number.isNaN(capacity)) {
      throw new TypeError(`capacity must be a number, got ${String(capacity)}`)
    }
    this.capacity = Math.max(1, Math.floor(capacity))
  }

  get size(): number {
    return this.entries.size
  }

  /** The value of `key`, which is marked as used. */
  get(key: K): V | undefined {
    const entry = this.entries.get(key)
    if (entry == null) return undefined
    entry.used = true
    return entry.value
  }

  set(key: K, value: V): this {
    const held = this.entries.get(key)
    if (held != null) {
      held.value = value
      held.used = true
      return this
    }
    while (this.entries.size >= this.capacity) this.evictOne()
    this.entries.set(key, { value, used: false })
    return this
  }

  delete(key: K): boolean {
    return this.entries.delete(key)
  }

  clear(): void {
    this.entries.clear()
  }

  /**
   * Forgets the oldest entry not used since it was last passed over; a used one it passes loses
   * its mark and goes to the back. At most size + 1 steps: after one pass every mark is cleared.
   */
  private evictOne(): void {
    for (const [key, entry] of this.entries) {
      this.entries.delete(key)
      if (!entry.used) return
      entry.used = false
      this.entries.set(key, entry)
    }
  }
}

/**
 * Short stand-ins for long keys, for cache keys built often: each key gets its own handle, and a
 * handle is never given to a second key. The `capacity` keys used most recently keep theirs; a key
 * forgotten and seen again gets a new one (a cache keyed by handles then misses, it never confuses
 * two keys).
 *
 * @example
 * const handles = new Handles(4096)
 * handles.of(longId) // '0', and '0' again while longId is among the 4096 most recent
 */
export class Handles {
  private readonly byKey: RecentMap<string, string>
  private next = 0

  constructor(capacity: number) {
    this.byKey = new RecentMap(capacity)
  }

  of(key: string): string {
    let handle = this.byKey.get(key)
    if (handle == null) {
      handle = (this.next++).toString(36)
      this.byKey.set(key, handle)
    }
    return handle
  }
}
