/**
 * Vector clocks: one counter per replica, for telling whether one set of events contains another
 * (`before` / `after` / `equal`) or neither (`concurrent`). The CRDTs use one as the compact part
 * of their causal context; the log uses one for the authors a snapshot covers.
 *
 * Encoded as a dag-cbor map `{ replica: counter }`; replica ids are 1–64 characters of
 * [A-Za-z0-9_-] (principal ids, peer ids, Yjs client numbers fit).
 *
 * @example
 * const a = new VectorClock().increment('z6Mka…')
 * const b = VectorClock.decode(remote, { maxEntries: 1024 })
 * a.compare(b)       // 'before' | 'after' | 'equal' | 'concurrent'
 * a.merge(b)         // pointwise max, in place
 */
import { InvalidVectorClockError } from './errors.ts'

export type Ordering = 'before' | 'after' | 'equal' | 'concurrent'

const REPLICA_PATTERN = /^[A-Za-z0-9_-]{1,64}$/
/** Default most entries a decoded vector clock may have. */
export const MAX_VECTOR_ENTRIES = 4096

export function isReplicaId(x: unknown): x is string {
  return typeof x === 'string' && REPLICA_PATTERN.test(x)
}

export function checkReplicaId(x: unknown, field = 'replica'): asserts x is string {
  if (!isReplicaId(x)) throw new InvalidVectorClockError(`${field} must be 1-64 characters of A-Z a-z 0-9 _ -`)
}

export class VectorClock {
  private readonly counters: Map<string, number>

  constructor(entries?: Iterable<[string, number]>) {
    this.counters = new Map()
    for (const [replica, n] of entries ?? []) {
      checkReplicaId(replica)
      checkCounter(n)
      if (n > 0) this.counters.set(replica, n)
    }
  }

  get(replica: string): number {
    return this.counters.get(replica) ?? 0
  }

  /** Sets `replica` to at least `n`. */
  advance(replica: string, n: number): this {
    checkReplicaId(replica)
    checkCounter(n)
    if (n > this.get(replica)) this.counters.set(replica, n)
    return this
  }

  increment(replica: string): this {
    return this.advance(replica, this.get(replica) + 1)
  }

  /** Pointwise maximum with `other`, in place. */
  merge(other: VectorClock): this {
    for (const [replica, n] of other.counters) if (n > this.get(replica)) this.counters.set(replica, n)
    return this
  }

  compare(other: VectorClock): Ordering {
    let less = false
    let greater = false
    for (const [replica, n] of this.counters) {
      const m = other.get(replica)
      if (n < m) less = true
      else if (n > m) greater = true
    }
    for (const [replica, m] of other.counters) if (!this.counters.has(replica) && m > 0) less = true
    if (less && greater) return 'concurrent'
    if (less) return 'before'
    if (greater) return 'after'
    return 'equal'
  }

  /** True if every counter here is at least the other's. */
  dominates(other: VectorClock): boolean {
    const order = this.compare(other)
    return order === 'after' || order === 'equal'
  }

  entries(): IterableIterator<[string, number]> {
    return this.counters.entries()
  }

  get size(): number {
    return this.counters.size
  }

  clone(): VectorClock {
    return new VectorClock(this.counters)
  }

  /** The dag-cbor form: a map of replica to counter (dag-cbor sorts the keys). */
  encode(): Record<string, number> {
    return Object.fromEntries(this.counters)
  }

  static decode(data: unknown, limits: { maxEntries?: number } = {}): VectorClock {
    const max = limits.maxEntries ?? MAX_VECTOR_ENTRIES
    if (data == null || typeof data !== 'object' || Array.isArray(data) || data instanceof Uint8Array) {
      throw new InvalidVectorClockError('a vector clock is a map of replica to counter')
    }
    const entries = Object.entries(data)
    if (entries.length > max) throw new InvalidVectorClockError(`a vector clock has at most ${max} entries`)
    for (const [, n] of entries) if (n === 0) throw new InvalidVectorClockError('zero counters are left out')
    return new VectorClock(entries as Array<[string, number]>)
  }
}

function checkCounter(n: unknown): asserts n is number {
  if (!Number.isSafeInteger(n) || (n as number) < 0) {
    throw new InvalidVectorClockError('a counter is a non-negative safe integer')
  }
}
