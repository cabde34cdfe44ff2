/**
 * The observed-remove map (delta-state, nestable, after Riak's maps): a DotMap of fields that share
 * one causal context. A field is identified by its name and its kind:
 *
 *   'lww'      DotFun of { hlc, value }: reads the write with the greatest (hlc, replica, counter)
 *   'mv'       DotFun of values: reads every concurrent value (distinct, sorted by bytes)
 *   'counter'  DotFun of [increments, decrements]: a causal PN counter where each replica keeps one
 *              dot holding its totals, and its next change replaces that dot
 *   'set'      an OR-Set store (element → DotSet)
 *   'map'      a nested OR-Map store
 *
 * Mutators address a field by a path of names; every name but the last is a nested 'map' field,
 * created on demand. Each update's delta also covers the dots it overwrites, and `delete` removes
 * a name under every kind as observed, so an update concurrent with a delete survives
 * (update-wins; a deleted counter concurrently changed comes back with the changing replica's
 * whole total — the reset anomaly of causal counters).
 *
 * `value` is a plain object of name → value, names sorted: nested maps as objects, counters as
 * numbers, sets as arrays, lww as the value, mv as an array. A name held under several kinds shows
 * the first of map, set, counter, lww, mv (FIELD_KINDS); `get` reads one path the same way.
 * Paths are 1..MAX_DEPTH names of 1..MAX_KEY_LENGTH UTF-16 code units; decoding enforces
 * limits.maxDepth (the outermost map counts as 1) and limits.maxKeyLength the same way.
 *
 * Encoding: `{ ctx, fields }`, fields = `[[name, kind, body], …]` sorted by name then kind, body by
 * kind: lww `[[replica, counter, hlc, value], …]`, mv `[[replica, counter, value], …]`, counter
 * `[[replica, counter, increments, decrements], …]` (sorted by dot), set the OR-Set's `elems`,
 * map a nested `fields`.
 *
 * @example
 * const m = orMap.empty()
 * const ctx = { replica: 'alice', hlc: clock.tick() }
 * orMap.merge(m, orMap.set(m, ctx, ['profile', 'name'], 'Alice'))
 * orMap.merge(m, orMap.increment(m, ctx, ['visits'], 1))
 * orMap.value(m) // { profile: { name: 'Alice' }, visits: 1 }
 */
import { compareHlc } from '../clock/hlc.ts'
import { addStoreDots, Causal, CausalContext, causalType, DotFun, dotKey, DotMap, parseDotKey } from './causal.ts'
import {
  checkAmount,
  checkMutationContext,
  checkStamp,
  compareStrings,
  deltaError,
  expectArray,
  expectHlc,
  expectText,
  expectTotal,
  expectTuple,
  fail,
  MAX_DEPTH,
  MAX_KEY_LENGTH,
  MAX_VALUE_BYTES,
  storableValue,
  valueError
} from './codec.ts'
import { CounterOverflowError, InvalidPathError } from './errors.ts'
import { decodeValueStore, distinctValues, encodeValueStore, writeValue } from './mv-register.ts'
import { addElement, decodeSetStore, elementKey, encodeSetStore, setElements } from './or-set.ts'
import type { HlcTimestamp } from '../clock/hlc.ts'
import type { DotClaims, DotStore } from './causal.ts'
import type { Limits } from './codec.ts'
import type { SetStore } from './or-set.ts'
import type { CrdtType, MutationContext } from './types.ts'

export type FieldKind = 'lww' | 'mv' | 'counter' | 'set' | 'map'
/** Every kind, in the order `value` and `get` prefer them when one name has several. */
export const FIELD_KINDS: readonly FieldKind[] = ['map', 'set', 'counter', 'lww', 'mv']

/** Field key (`kind:name`) → the field's store. */
export type MapStore = DotMap
export type OrMapState = Causal<MapStore>
/** Names from the outermost map to the field. */
export type MapPath = readonly string[]

export interface LwwField {
  readonly hlc: HlcTimestamp
  readonly value: unknown
}
export type CounterTotals = readonly [increments: number, decrements: number]

export interface OrMapType extends CrdtType<OrMapState, OrMapState, Record<string, unknown>> {
  /** Writes the 'lww' field at `path`. */
  set(state: OrMapState, ctx: MutationContext, path: MapPath, value: unknown): OrMapState
  /** Writes the 'mv' field at `path`, replacing the values observed. */
  assign(state: OrMapState, ctx: MutationContext, path: MapPath, value: unknown): OrMapState
  /** Adds `n` (positive safe integer, default 1) to the 'counter' field at `path`. */
  increment(state: OrMapState, ctx: MutationContext, path: MapPath, n?: number): OrMapState
  /** Subtracts `n` (positive safe integer, default 1) from the 'counter' field at `path`. */
  decrement(state: OrMapState, ctx: MutationContext, path: MapPath, n?: number): OrMapState
  /** Adds `elem` to the 'set' field at `path`. */
  add(state: OrMapState, ctx: MutationContext, path: MapPath, elem: unknown): OrMapState
  /** Removes `elem`, as observed, from the 'set' field at `path`. */
  removeElement(state: OrMapState, ctx: MutationContext, path: MapPath, elem: unknown): OrMapState
  /** Removes the name at `path` under every kind, as observed. */
  delete(state: OrMapState, ctx: MutationContext, path: MapPath): OrMapState
  /** The value at `path` (as in `value`), or undefined. */
  get(state: OrMapState, path: MapPath): unknown
}

const fieldKey = (kind: FieldKind, name: string): string => `${kind}:${name}`

function parseFieldKey(key: string): [FieldKind, string] {
  const i = key.indexOf(':')
  return [key.slice(0, i) as FieldKind, key.slice(i + 1)]
}

const isKind = (x: unknown): x is FieldKind => FIELD_KINDS.includes(x as FieldKind)

function checkPath(path: MapPath): void {
  if (!Array.isArray(path) || path.length < 1 || path.length > MAX_DEPTH) {
    throw new InvalidPathError(`a path has 1-${MAX_DEPTH} names`)
  }
  path.forEach((name, i) => {
    if (typeof name !== 'string' || name.length < 1 || name.length > MAX_KEY_LENGTH) {
      throw new InvalidPathError(`path[${i}] is not a name of 1-${MAX_KEY_LENGTH} characters`)
    }
  })
}

/** The nested map reached through the 'map' fields `names`, if it exists. */
function mapAt(store: MapStore, names: MapPath): MapStore | undefined {
  let node: MapStore | undefined = store
  for (const name of names) node = node?.entries.get(fieldKey('map', name)) as MapStore | undefined
  return node
}

function fieldAt(store: MapStore, path: MapPath, kind: FieldKind): DotStore | undefined {
  return mapAt(store, path.slice(0, -1))?.entries.get(fieldKey(kind, path[path.length - 1]))
}

/** A delta store holding `body` as the `kind` field at `path`, inside 'map' fields. */
function nest(path: MapPath, kind: FieldKind, body: DotStore): MapStore {
  const root: MapStore = new DotMap()
  let node = root
  for (const name of path.slice(0, -1)) {
    const child: MapStore = new DotMap()
    node.entries.set(fieldKey('map', name), child)
    node = child
  }
  node.entries.set(fieldKey(kind, path[path.length - 1]), body)
  return root
}

function changeCounter(state: OrMapState, ctx: MutationContext, path: MapPath, n: number, side: 0 | 1): OrMapState {
  checkMutationContext(ctx)
  checkPath(path)
  checkAmount(n)
  const old = fieldAt(state.store, path, 'counter') as DotFun<CounterTotals> | undefined
  const context = new CausalContext()
  const totals = [0, 0]
  for (const [key, mine] of old?.entries ?? []) {
    const dot = parseDotKey(key)
    if (dot[0] !== ctx.replica) continue
    totals[0] += mine[0]
    totals[1] += mine[1]
    context.add(dot)
  }
  totals[side] += n
  if (!Number.isSafeInteger(totals[0]) || !Number.isSafeInteger(totals[1])) {
    throw new CounterOverflowError(`the counter totals of ${ctx.replica} would pass 2^53 - 1`)
  }
  const dot = state.context.nextDot(ctx.replica)
  const body = new DotFun<CounterTotals>()
  body.entries.set(dotKey(dot), [totals[0], totals[1]])
  return new Causal(nest(path, 'counter', body), context.add(dot))
}

// ---------------------------------------------------------------- reading

function lwwValue(store: DotFun<LwwField>): unknown {
  let best: [replica: string, counter: number, field: LwwField] | undefined
  for (const [key, field] of store.entries) {
    const [replica, counter] = parseDotKey(key)
    const order =
      best == null ? 1 : compareHlc(field.hlc, best[2].hlc) || compareStrings(replica, best[0]) || counter - best[1]
    if (order > 0) best = [replica, counter, field]
  }
  return best?.[2].value
}

function counterValue(store: DotFun<CounterTotals>): number {
  let sum = 0
  for (const [increments, decrements] of store.entries.values()) sum += increments - decrements
  return sum
}

function fieldValue(kind: FieldKind, store: DotStore): unknown {
  switch (kind) {
    case 'map':
      return mapValue(store as MapStore)
    case 'set':
      return setElements(store as SetStore)
    case 'counter':
      return counterValue(store as DotFun<CounterTotals>)
    case 'lww':
      return lwwValue(store as DotFun<LwwField>)
    case 'mv':
      return distinctValues((store as DotFun<unknown>).entries.values())
  }
}

/** Name → [kind, store] of the kind `value` shows for it. */
function preferredFields(store: MapStore): Map<string, [FieldKind, DotStore]> {
  const chosen = new Map<string, [FieldKind, DotStore]>()
  for (const [key, child] of store.entries) {
    const [kind, name] = parseFieldKey(key)
    const current = chosen.get(name)
    if (current == null || FIELD_KINDS.indexOf(kind) < FIELD_KINDS.indexOf(current[0])) chosen.set(name, [kind, child])
  }
  return chosen
}

function mapValue(store: MapStore): Record<string, unknown> {
  const fields = [...preferredFields(store)].sort((a, b) => compareStrings(a[0], b[0]))
  return Object.fromEntries(fields.map(([name, [kind, child]]) => [name, fieldValue(kind, child)]))
}

// ---------------------------------------------------------------- encoding

function encodeFields(store: MapStore): unknown[] {
  return [...store.entries]
    .map(([key, child]): [FieldKind, string, DotStore] => [...parseFieldKey(key), child])
    .sort((a, b) => compareStrings(a[1], b[1]) || compareStrings(a[0], b[0]))
    .map(([kind, name, child]) => [name, kind, encodeField(kind, child)])
}

function encodeField(kind: FieldKind, store: DotStore): unknown[] {
  switch (kind) {
    case 'lww':
      return (store as DotFun<LwwField>).sorted().map(([[r, n], f]) => [r, n, [f.hlc[0], f.hlc[1]], f.value])
    case 'mv':
      return encodeValueStore(store as DotFun<unknown>)
    case 'counter':
      return (store as DotFun<CounterTotals>).sorted().map(([[r, n], [p, m]]) => [r, n, p, m])
    case 'set':
      return encodeSetStore(store as SetStore)
    case 'map':
      return encodeFields(store as MapStore)
  }
}

function decodeFields(data: unknown, claims: DotClaims, limits: Limits, field: string, depth: number): MapStore {
  const store: MapStore = new DotMap()
  expectArray(data, field, limits.maxEntries).forEach((x, i) => {
    const at = `${field}[${i}]`
    const [name, kind, body] = expectTuple(x, at, 3)
    expectText(name, `${at}[0]`, limits.maxKeyLength)
    if (!isKind(kind)) fail(`${at}[1]`, `is not a field kind (${FIELD_KINDS.join(', ')})`)
    const key = fieldKey(kind, name as string)
    if (store.entries.has(key)) fail(at, 'repeats a field')
    if (kind === 'map' && depth >= limits.maxDepth) fail(at, `nests maps deeper than ${limits.maxDepth}`)
    const child = decodeField(kind, body, claims, limits, `${at}[2]`, depth)
    if (child.size === 0) fail(`${at}[2]`, 'is empty')
    store.entries.set(key, child)
  })
  return store
}

function decodeField(
  kind: FieldKind,
  data: unknown,
  claims: DotClaims,
  limits: Limits,
  field: string,
  depth: number
): DotStore {
  switch (kind) {
    case 'map':
      return decodeFields(data, claims, limits, field, depth + 1)
    case 'set':
      return decodeSetStore(data, claims, limits, field)
    case 'mv':
      return decodeValueStore(data, claims, limits, field)
    case 'lww': {
      const store = new DotFun<LwwField>()
      expectArray(data, field, limits.maxEntries).forEach((x, i) => {
        const at = `${field}[${i}]`
        const entry = expectTuple(x, at, 4)
        const key = claims.claim(entry, at)
        const hlc = expectHlc(entry[2], `${at}[2]`)
        store.entries.set(key, {
          hlc,
          value: storableValue(entry[3], limits.maxValueBytes, deltaError(`${at}[3]`)).value
        })
      })
      return store
    }
    case 'counter': {
      const store = new DotFun<CounterTotals>()
      expectArray(data, field, limits.maxEntries).forEach((x, i) => {
        const at = `${field}[${i}]`
        const entry = expectTuple(x, at, 4)
        const key = claims.claim(entry, at)
        const totals: CounterTotals = [expectTotal(entry[2], `${at}[2]`), expectTotal(entry[3], `${at}[3]`)]
        if (totals[0] === 0 && totals[1] === 0) fail(at, 'holds no change')
        store.entries.set(key, totals)
      })
      return store
    }
  }
}

// ---------------------------------------------------------------- the type

export const orMap: OrMapType = {
  ...causalType({
    name: 'or-map',
    field: 'map',
    storeField: 'fields',
    emptyStore: (): MapStore => new DotMap(),
    value: mapValue,
    encodeStore: encodeFields,
    decodeStore: (data, claims, limits, field) => decodeFields(data, claims, limits, field, 1),
    checkLeaf: (leaf, path, ctx) => {
      // a leaf is a field (…, 'kind:name') or a set element's dots (…, 'set:name', element)
      const kinds = path.map(key => parseFieldKey(key)[0])
      if (kinds[kinds.length - 1] !== 'lww' || kinds[kinds.length - 2] === 'set') return
      for (const field of leaf.entries.values()) checkStamp((field as LwwField).hlc, ctx, `map field ${path.join('/')}`)
    }
  }),

  set(state, ctx, path, value) {
    checkMutationContext(ctx)
    checkPath(path)
    const stored = storableValue(value, MAX_VALUE_BYTES, valueError('value')).value
    const dot = state.context.nextDot(ctx.replica)
    const body = new DotFun<LwwField>()
    body.entries.set(dotKey(dot), { hlc: [ctx.hlc[0], ctx.hlc[1]], value: stored })
    const context = addStoreDots(new CausalContext().add(dot), fieldAt(state.store, path, 'lww'))
    return new Causal(nest(path, 'lww', body), context)
  },

  assign(state, ctx, path, value) {
    checkMutationContext(ctx)
    checkPath(path)
    const old = fieldAt(state.store, path, 'mv') as DotFun<unknown> | undefined
    const [body, context] = writeValue(old, state.context, ctx.replica, value)
    return new Causal(nest(path, 'mv', body), context)
  },

  increment: (state, ctx, path, n = 1) => changeCounter(state, ctx, path, n, 0),
  decrement: (state, ctx, path, n = 1) => changeCounter(state, ctx, path, n, 1),

  add(state, ctx, path, elem) {
    checkMutationContext(ctx)
    checkPath(path)
    const old = fieldAt(state.store, path, 'set') as SetStore | undefined
    const [body, context] = addElement(old, state.context, ctx.replica, elementKey(elem))
    return new Causal(nest(path, 'set', body), context)
  },

  removeElement(state, ctx, path, elem) {
    checkMutationContext(ctx)
    checkPath(path)
    const old = fieldAt(state.store, path, 'set') as SetStore | undefined
    return new Causal<MapStore>(new DotMap(), addStoreDots(new CausalContext(), old?.entries.get(elementKey(elem))))
  },

  delete(state, ctx, path) {
    checkMutationContext(ctx)
    checkPath(path)
    const context = new CausalContext()
    const parent = mapAt(state.store, path.slice(0, -1))
    for (const kind of FIELD_KINDS) addStoreDots(context, parent?.entries.get(fieldKey(kind, path[path.length - 1])))
    return new Causal<MapStore>(new DotMap(), context)
  },

  get(state, path) {
    checkPath(path)
    const parent = mapAt(state.store, path.slice(0, -1))
    const name = path[path.length - 1]
    for (const kind of FIELD_KINDS) {
      const store = parent?.entries.get(fieldKey(kind, name))
      if (store != null) return fieldValue(kind, store)
    }
    return undefined
  }
}
