/**
 * A map that holds at most `capacity` entries: when a new key would exceed it, the least recently
 * used entry is forgotten. Setting a key or reading it with `get` uses it; `has` does not. For
 * memories that must stay bounded however much peers send: refusals, verified signatures,
 * proofs shown, events seen.
 *
 * @example
 * const seen = new RecentMap<string, number>(2)
 * seen.set('a', 1)
 * seen.set('b', 2)
 * seen.get('a') // 1, and 'a' is now the most recently used
 * seen.set('c', 3) // forgets 'b'
 * seen.keys() // ['a', 'c']
 */

export interface RecentMapOptions<K, V> {
  /** Called with each entry forgotten to make room (not for `delete` or `clear`). */
  onEvict?: (key: K, value: V) => void
}

export class RecentMap<K, V> {
  /** Most entries held; at least 1. */
  readonly capacity: number
  private readonly onEvict?: (key: K, value: V) => void
  /** In order of use, least recent first. */
  private readonly entries = new Map<K, V>()

  constructor(capacity: number, options: RecentMapOptions<K, V> = {}) {
    if (typeof capacity !== 'number' || Number.isNaN(capacity)) {
      throw new TypeError(`capacity must be a number, got ${String(capacity)}`)
    }
    this.capacity = Math.max(1, Math.floor(capacity))
    this.onEvict = options.onEvict
  }

  get size(): number {
    return this.entries.size
  }

  /** Whether `key` is held; does not count as a use. */
  has(key: K): boolean {
    return this.entries.has(key)
  }

  /** The value of `key`, which becomes the most recently used. */
  get(key: K): V | undefined {
    if (!this.entries.has(key)) return undefined
    const value = this.entries.get(key) as V
    this.entries.delete(key)
    this.entries.set(key, value)
    return value
  }

  /** Sets `key` as the most recently used; forgets the least recently used if over capacity. */
  set(key: K, value: V): this {
    this.entries.delete(key)
    this.entries.set(key, value)
    if (this.entries.size > this.capacity) {
      const [oldKey, oldValue] = this.entries.entries().next().value as [K, V]
      this.entries.delete(oldKey)
      this.onEvict?.(oldKey, oldValue)
    }
    return this
  }

  delete(key: K): boolean {
    return this.entries.delete(key)
  }

  clear(): void {
    this.entries.clear()
  }

  /** The keys, least recently used first (a copy: safe to `get` or `set` while going through it). */
  keys(): K[] {
    return [...this.entries.keys()]
  }

  /** The values, least recently used first (a copy). */
  values(): V[] {
    return [...this.entries.values()]
  }
}
