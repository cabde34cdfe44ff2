/**
 * Causal contexts and dot stores: the machinery of the dot-based delta CRDTs (OR-Set, MV-Register,
 * OR-Map; Almeida, Shoker, Baquero 2018, §5). Every write is tagged with a fresh dot
 * (replica, counter). A causal context is the set of dots a replica has seen: a version vector plus
 * a "cloud" of dots not (yet) contiguous with it. A dot store holds the dots still alive: a DotSet,
 * a DotFun (dot → immutable value) or a DotMap (key → nested store, empty stores dropped). A dot the
 * context has seen that the store does not hold was removed, so removals leave no tombstones: a
 * removal is a delta with an empty store whose context holds the removed dots.
 *
 * Encodings: a context is `{ vv: { replica: counter }, cloud: [[replica, counter], …] }` with the
 * cloud sorted and compacted; a dot is `[replica, counter]`.
 *
 * @example
 * const state = new Causal(new DotMap<DotSet>())
 * const dot = state.context.nextDot('alice')             // ['alice', 1]
 * const delta = new Causal(new DotMap<DotSet>(), new CausalContext().add(dot))
 * delta.store.entries.set('x', dotSet(dot))
 * state.merge(delta)                                     // in place, O(size of delta)
 * Causal.join(state, other)                              // a new state; neither input changes
 */
import { checkReplicaId, VectorClock } from '../clock/vector.ts'
import {
  compareStrings,
  dataEquals,
  expectArray,
  expectCount,
  expectMap,
  expectReplica,
  fail,
  greaterValue,
  decodeVector
} from './codec.ts'
import { CounterOverflowError } from './errors.ts'
import { resolveLimits } from './codec.ts'
import type { Limits } from './codec.ts'
import type { CrdtLimits, CrdtName, CrdtType, MutationContext } from './types.ts'

/** An event's identity: its author's replica id and that author's counter (from 1). */
export type Dot = readonly [replica: string, counter: number]

/** A dot as a Map key. Replica ids never contain ':', so the last ':' splits it. */
export const dotKey = (dot: Dot): string => `${dot[0]}:${dot[1]}`

export function parseDotKey(key: string): Dot {
  const i = key.lastIndexOf(':')
  return [key.slice(0, i), Number(key.slice(i + 1))]
}

export function compareDots(a: Dot, b: Dot): number {
  return compareStrings(a[0], b[0]) || a[1] - b[1]
}

/** Decodes an untrusted `[replica, counter]`. */
export function decodeDot(x: unknown, field: string): Dot {
  if (!Array.isArray(x) || x.length !== 2) fail(field, 'is not a dot [replica, counter]')
  return [expectReplica(x[0], `${field}[0]`), expectCount(x[1], `${field}[1]`)]
}

// ---------------------------------------------------------------- causal context

/** The dots a replica has seen: a version vector plus the dots not contiguous with it. */
export class CausalContext {
  readonly vector: VectorClock
  private readonly cloud = new Map<string, Set<number>>()

  constructor(vector: VectorClock = new VectorClock()) {
    this.vector = vector
  }

  has(replica: string, counter: number): boolean {
    return counter <= this.vector.get(replica) || (this.cloud.get(replica)?.has(counter) ?? false)
  }

  hasDot(dot: Dot): boolean {
    return this.has(dot[0], dot[1])
  }

  hasKey(key: string): boolean {
    return this.hasDot(parseDotKey(key))
  }

  /** Adds one dot, in place, keeping the context compact. */
  add(dot: Dot): this {
    const [replica, counter] = dot
    if (!Number.isSafeInteger(counter) || counter < 1) throw new RangeError('a dot counter is a positive safe integer')
    const top = this.vector.get(replica)
    if (counter <= top) return this
    if (counter === top + 1) {
      this.vector.advance(replica, counter)
      this.absorb(replica)
      return this
    }
    let gaps = this.cloud.get(replica)
    if (gaps == null) {
      checkReplicaId(replica)
      gaps = new Set()
      this.cloud.set(replica, gaps)
    }
    gaps.add(counter)
    return this
  }

  /** The union with `other`, in place. */
  join(other: CausalContext): this {
    this.vector.merge(other.vector)
    for (const [replica] of other.vector.entries()) this.absorb(replica)
    for (const [replica, gaps] of other.cloud) for (const n of gaps) this.add([replica, n])
    return this
  }

  /** A dot `replica` has not used: one past the highest of its dots seen here. */
  nextDot(replica: string): Dot {
    checkReplicaId(replica)
    let top = this.vector.get(replica)
    for (const n of this.cloud.get(replica) ?? []) if (n > top) top = n
    if (top >= Number.MAX_SAFE_INTEGER) throw new CounterOverflowError(`the dots of ${replica} are exhausted`)
    return [replica, top + 1]
  }

  /** A dot `other` covers that this context does not, of any replica but `except`; undefined if none. */
  unseenDot(other: CausalContext, except?: string): Dot | undefined {
    for (const [replica, top] of other.vector.entries()) {
      if (replica === except) continue
      const mine = this.vector.get(replica)
      // mine + 1 is never in the cloud (it would have been absorbed), so it is the first one missing
      if (top > mine) return [replica, mine + 1]
    }
    for (const [replica, gaps] of other.cloud) {
      if (replica === except) continue
      for (const n of gaps) if (!this.has(replica, n)) return [replica, n]
    }
    return undefined
  }

  /** How many dots the context covers. */
  get span(): number {
    let n = this.cloudSize
    for (const [, top] of this.vector.entries()) n += top
    return n
  }

  get cloudSize(): number {
    let n = 0
    for (const gaps of this.cloud.values()) n += gaps.size
    return n
  }

  /** The cloud's dots, sorted. */
  cloudDots(): Dot[] {
    const dots: Dot[] = []
    for (const [replica, gaps] of this.cloud) for (const n of gaps) dots.push([replica, n])
    return dots.sort(compareDots)
  }

  /** The key of every dot covered (span of them). */
  *keys(): Generator<string> {
    for (const [replica, top] of this.vector.entries()) for (let n = 1; n <= top; n++) yield `${replica}:${n}`
    for (const [replica, gaps] of this.cloud) for (const n of gaps) yield `${replica}:${n}`
  }

  isEmpty(): boolean {
    return this.vector.size === 0 && this.cloud.size === 0
  }

  clone(): CausalContext {
    const copy = new CausalContext(this.vector.clone())
    for (const [replica, gaps] of this.cloud) copy.cloud.set(replica, new Set(gaps))
    return copy
  }

  equals(other: CausalContext): boolean {
    if (this.vector.compare(other.vector) !== 'equal' || this.cloud.size !== other.cloud.size) return false
    for (const [replica, gaps] of this.cloud) {
      const theirs = other.cloud.get(replica)
      if (theirs == null || theirs.size !== gaps.size) return false
      for (const n of gaps) if (!theirs.has(n)) return false
    }
    return true
  }

  encode(): { vv: Record<string, number>; cloud: Array<[string, number]> } {
    return { vv: this.vector.encode(), cloud: this.cloudDots().map(([r, n]) => [r, n]) }
  }

  /** Decodes an untrusted context; the cloud must be compacted, sorted or not, without repeats. */
  static decode(data: unknown, limits: Limits, field: string): CausalContext {
    const m = expectMap(data, field, ['vv', 'cloud'])
    const vector = decodeVector(m.vv, limits, `${field}.vv`)
    const context = new CausalContext(vector)
    expectArray(m.cloud, `${field}.cloud`, limits.maxEntries).forEach((x, i) => {
      const [replica, n] = decodeDot(x, `${field}.cloud[${i}]`)
      if (n <= vector.get(replica) + 1) fail(`${field}.cloud[${i}]`, 'is covered by or contiguous with the vector')
      let gaps = context.cloud.get(replica)
      if (gaps == null) context.cloud.set(replica, (gaps = new Set()))
      if (gaps.has(n)) fail(`${field}.cloud[${i}]`, 'repeats a dot')
      gaps.add(n)
    })
    return context
  }

  private absorb(replica: string): void {
    const gaps = this.cloud.get(replica)
    if (gaps == null) return
    let top = this.vector.get(replica)
    for (const n of gaps) if (n <= top) gaps.delete(n)
    while (gaps.delete(top + 1)) top++
    this.vector.advance(replica, top)
    if (gaps.size === 0) this.cloud.delete(replica)
  }
}

// ---------------------------------------------------------------- dot stores

/** Dot → immutable value. Keys are dotKey strings. */
export class DotFun<V> {
  readonly entries = new Map<string, V>()

  get size(): number {
    return this.entries.size
  }

  /** The entries as [dot, value], sorted by dot: the order of every encoding. */
  sorted(): Array<[Dot, V]> {
    return [...this.entries].map(([key, v]): [Dot, V] => [parseDotKey(key), v]).sort((a, b) => compareDots(a[0], b[0]))
  }
}

/** A set of dots: the DotFun whose values are all `true`. */
export type DotSet = DotFun<true>

export function dotSet(...dots: Dot[]): DotSet {
  const set = new DotFun<true>()
  for (const dot of dots) set.entries.set(dotKey(dot), true)
  return set
}

/** Key → nested dot store; a key whose store becomes empty is dropped. Keys are strings: callers encode theirs. */
export class DotMap<S extends DotStore = DotStore> {
  readonly entries = new Map<string, S>()

  get size(): number {
    return this.entries.size
  }
}

export type DotStore = DotFun<unknown> | DotMap

export function emptyLike<S extends DotStore>(store: S): S {
  return (store instanceof DotMap ? new DotMap() : new DotFun()) as S
}

export function cloneStore<S extends DotStore>(store: S): S {
  if (store instanceof DotFun) {
    const copy = new DotFun<unknown>()
    for (const [key, v] of store.entries) copy.entries.set(key, v)
    return copy as S
  }
  const copy = new DotMap()
  for (const [key, child] of store.entries) copy.entries.set(key, cloneStore(child))
  return copy as S
}

export function storesEqual(a: DotStore, b: DotStore): boolean {
  if (a.size !== b.size) return false
  if (a instanceof DotFun) {
    if (!(b instanceof DotFun)) return false
    for (const [key, v] of a.entries) if (!b.entries.has(key) || !dataEquals(v, b.entries.get(key))) return false
    return true
  }
  if (!(b instanceof DotMap)) return false
  for (const [key, child] of a.entries) {
    const other = b.entries.get(key)
    if (other == null || !storesEqual(child, other)) return false
  }
  return true
}

/** Calls `visit` with every DotFun in `store` and the keys leading to it. */
export function forEachLeaf(
  store: DotStore,
  visit: (leaf: DotFun<unknown>, path: readonly string[]) => void,
  path: readonly string[] = []
): void {
  if (store instanceof DotFun) visit(store, path)
  else for (const [key, child] of store.entries) forEachLeaf(child, visit, [...path, key])
}

/** Adds every dot held in `store` to `context`: what a write overwrites or a removal removes. */
export function addStoreDots(context: CausalContext, store: DotStore | undefined): CausalContext {
  if (store != null) forEachLeaf(store, leaf => leaf.entries.forEach((_, key) => context.add(parseDotKey(key))))
  return context
}

/**
 * The join of (a, ca) and (b, cb), the definition from the paper: a dot survives if both stores
 * hold it, or one holds it and the other's context has not seen it; DotMaps join key by key and
 * drop keys that become empty. Returns a new store and leaves the inputs alone.
 */
export function joinStores<S extends DotStore>(a: S, ca: CausalContext, b: S, cb: CausalContext): S {
  if (a instanceof DotFun) {
    const theirs = b as DotFun<unknown>
    const out = new DotFun<unknown>()
    for (const [key, v] of a.entries) {
      if (theirs.entries.has(key)) out.entries.set(key, greaterValue(v, theirs.entries.get(key)))
      else if (!cb.hasKey(key)) out.entries.set(key, v)
    }
    for (const [key, v] of theirs.entries) if (!a.entries.has(key) && !ca.hasKey(key)) out.entries.set(key, v)
    return out as S
  }
  const theirs = b as DotMap
  const out = new DotMap()
  for (const [key, child] of a.entries) {
    const joined = joinStores(child, ca, theirs.entries.get(key) ?? emptyLike(child), cb)
    if (joined.size > 0) out.entries.set(key, joined)
  }
  for (const [key, child] of theirs.entries) {
    if (a.entries.has(key)) continue
    const joined = joinStores(emptyLike(child), ca, child, cb)
    if (joined.size > 0) out.entries.set(key, joined)
  }
  return out as S
}

function leafAt(store: DotStore, path: readonly string[]): DotFun<unknown> | undefined {
  let node: DotStore | undefined = store
  for (const key of path) {
    if (!(node instanceof DotMap)) return undefined
    node = node.entries.get(key)
  }
  return node instanceof DotFun ? node : undefined
}

/** The DotFun at `path` in `store`, created (with its parents, shaped like `model`'s) if missing. */
function makeLeaf(store: DotStore, model: DotStore, path: readonly string[]): DotFun<unknown> {
  let node = store
  let like: DotStore | undefined = model
  for (const key of path) {
    if (!(node instanceof DotMap) || !(like instanceof DotMap)) throw new TypeError('dot stores of different shapes')
    like = like.entries.get(key) as DotStore
    let child: DotStore | undefined = node.entries.get(key)
    if (child == null) node.entries.set(key, (child = emptyLike(like)))
    node = child
  }
  if (!(node instanceof DotFun)) throw new TypeError('dot stores of different shapes')
  return node
}

/** Deletes one dot and then every store on its path that became empty. */
function deleteDot(store: DotStore, path: readonly string[], key: string): void {
  const nodes: DotStore[] = [store]
  for (const k of path) nodes.push((nodes[nodes.length - 1] as DotMap).entries.get(k) as DotStore)
  ;(nodes[path.length] as DotFun<unknown>).entries.delete(key)
  for (let i = path.length; i > 0 && nodes[i].size === 0; i--) (nodes[i - 1] as DotMap).entries.delete(path[i - 1])
}

// ---------------------------------------------------------------- a store with its context

/**
 * A dot store with its causal context: the state, and the delta, of every dot-based type. `merge`
 * works in place in time proportional to the delta: an index from each held dot to where it is
 * lives beside the store (built on the first merge) so that dots a delta removes are found
 * without a scan.
 */
export class Causal<S extends DotStore> {
  readonly store: S
  readonly context: CausalContext
  private index: Map<string, readonly string[]> | undefined

  constructor(store: S, context: CausalContext = new CausalContext()) {
    this.store = store
    this.context = context
  }

  /** The join of two states; neither changes. */
  static join<S extends DotStore>(a: Causal<S>, b: Causal<S>): Causal<S> {
    return new Causal(joinStores(a.store, a.context, b.store, b.context), a.context.clone().join(b.context))
  }

  /** Joins `delta` into this state, in place; the same result as Causal.join. */
  merge(delta: Causal<S>): this {
    if (delta === this) return this
    const index = this.dotIndex()
    const seen = this.context
    // the delta's dots: keep those held here too, add those this state has never seen
    forEachLeaf(delta.store, (theirs, path) => {
      let ours = leafAt(this.store, path)
      for (const [key, value] of theirs.entries) {
        if (ours?.entries.has(key)) {
          const current = ours.entries.get(key)
          const winner = greaterValue(current, value)
          if (winner !== current) ours.entries.set(key, winner)
        } else if (!seen.hasKey(key)) {
          ours ??= makeLeaf(this.store, delta.store, path)
          ours.entries.set(key, value)
          index.set(key, path)
        }
      }
    })
    // dots held here that the delta has seen but does not hold (at the same place) were removed
    const removeUnlessHeld = (key: string, path: readonly string[]): void => {
      if (leafAt(delta.store, path)?.entries.has(key)) return
      deleteDot(this.store, path, key)
      index.delete(key)
    }
    if (delta.context.span <= index.size) {
      for (const key of delta.context.keys()) {
        const path = index.get(key)
        if (path != null) removeUnlessHeld(key, path)
      }
    } else {
      for (const [key, path] of index) if (delta.context.hasKey(key)) removeUnlessHeld(key, path)
    }
    this.context.join(delta.context)
    return this
  }

  clone(): Causal<S> {
    return new Causal(cloneStore(this.store), this.context.clone())
  }

  equals(other: Causal<S>): boolean {
    return this.context.equals(other.context) && storesEqual(this.store, other.store)
  }

  private dotIndex(): Map<string, readonly string[]> {
    if (this.index == null) {
      const index = new Map<string, readonly string[]>()
      forEachLeaf(this.store, (leaf, path) => leaf.entries.forEach((_, key) => index.set(key, path)))
      this.index = index
    }
    return this.index
  }
}

// ---------------------------------------------------------------- decoding

/** While a causal state is decoded: each dot held must be new and covered by the context. */
export class DotClaims {
  readonly context: CausalContext
  private readonly seen = new Set<string>()

  constructor(context: CausalContext) {
    this.context = context
  }

  /** Decodes the dot at `x[0]`, `x[1]` of an entry, checks it and returns its key. */
  claim(x: readonly unknown[], field: string): string {
    const dot = decodeDot([x[0], x[1]], field)
    const key = dotKey(dot)
    if (this.seen.has(key)) fail(field, `repeats the dot ${key}`)
    if (!this.context.hasDot(dot)) fail(field, `holds the dot ${key}, which ctx does not cover`)
    this.seen.add(key)
    return key
  }
}

/** Decodes `{ ctx, [storeField]: … }`, handing the store part to `decodeStore`. */
export function decodeCausal<S extends DotStore>(
  data: unknown,
  limits: Limits,
  field: string,
  storeField: string,
  decodeStore: (data: unknown, claims: DotClaims, field: string) => S
): Causal<S> {
  const m = expectMap(data, field, ['ctx', storeField])
  const context = CausalContext.decode(m.ctx, limits, `${field}.ctx`)
  return new Causal(decodeStore(m[storeField], new DotClaims(context), `${field}.${storeField}`), context)
}

/** A one-dot store holding `value` at a fresh dot of `replica`, with a context of that dot and every dot of `overwritten`. */
export function writeDot<V>(
  overwritten: DotStore | undefined,
  seen: CausalContext,
  replica: string,
  value: V
): [DotFun<V>, CausalContext] {
  const dot = seen.nextDot(replica)
  const body = new DotFun<V>()
  body.entries.set(dotKey(dot), value)
  return [body, addStoreDots(new CausalContext().add(dot), overwritten)]
}

/** The CrdtType methods every dot-based type shares; encoded as `{ ctx, [storeField]: … }`. */
export function causalType<S extends DotStore, V>(spec: {
  name: CrdtName
  field: string
  storeField: string
  emptyStore: () => S
  value: (store: S) => V
  encodeStore: (store: S) => unknown
  decodeStore: (data: unknown, claims: DotClaims, limits: Limits, field: string) => S
  /** Checks the entries of one new leaf of a delta (e.g. their timestamps) against the event's context. */
  checkLeaf?: (leaf: DotFun<unknown>, path: readonly string[], ctx: MutationContext) => void
}): CrdtType<Causal<S>, Causal<S>, V> {
  const encode = (state: Causal<S>): unknown => ({
    ctx: state.context.encode(),
    [spec.storeField]: spec.encodeStore(state.store)
  })
  const decode = (data: unknown, limits?: CrdtLimits): Causal<S> => {
    const resolved = resolveLimits(limits)
    return decodeCausal(data, resolved, spec.field, spec.storeField, (x, claims, f) =>
      spec.decodeStore(x, claims, resolved, f)
    )
  }
  return {
    name: spec.name,
    empty: () => new Causal(spec.emptyStore()),
    merge: (into, delta) => into.merge(delta),
    join: (a, b) => Causal.join(a, b),
    toDelta: state => state.clone(),
    clone: state => state.clone(),
    equals: (a, b) => a.equals(b),
    value: state => spec.value(state.store),
    encodeState: encode,
    decodeState: decode,
    encodeDelta: encode,
    decodeDelta: decode,
    checkDelta: (state, delta, ctx) => {
      // a mutator's store holds only dots of the write it makes. (An author that reuses one of its
      // own dots harms only its own writes, and merge settles the conflict the same way everywhere,
      // so reuse is not refused: refusing it here would depend on what each receiver saw first.)
      forEachLeaf(delta.store, (leaf, path) => {
        for (const key of leaf.entries.keys()) {
          if (parseDotKey(key)[0] !== ctx.replica)
            fail(spec.field, `holds the dot ${key}, which its author ${ctx.replica} cannot make`)
        }
        spec.checkLeaf?.(leaf, path, ctx)
      })
      // and its context claims to have seen only dots this replica has seen, or its author's own
      const unseen = state.context.unseenDot(delta.context, ctx.replica)
      if (unseen != null) fail(`${spec.field}.ctx`, `claims the dot ${dotKey(unseen)}, which its author had not seen`)
    }
  }
}
