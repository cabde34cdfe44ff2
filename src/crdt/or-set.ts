/**
 * The add-wins observed-remove set (AWORSet, delta-state): a DotMap from element to the DotSet of
 * the add that put it there, with a causal context. `remove` removes only the adds it has
 * observed, so an add concurrent with a remove wins. Removed elements leave nothing behind but
 * their dots in the context, which compacts to about one vector entry per replica.
 *
 * Elements are dag-cbor data model values (strings, numbers, booleans, null, bytes, arrays, maps,
 * CIDs) of at most limits.maxValueBytes encoded; an element's identity is its dag-cbor encoding,
 * and `value` lists the elements sorted by those bytes.
 *
 * Encoding: `{ ctx, elems: [[element, [[replica, counter], …]], …] }`, elements sorted by their
 * encoded bytes, dots sorted.
 *
 * @example
 * const s = orSet.empty()
 * orSet.merge(s, orSet.add(s, { replica: 'alice', hlc }, 'x'))
 * orSet.merge(s, orSet.remove(s, { replica: 'alice', hlc }, 'x'))
 * orSet.value(s) // []
 */
import * as dagCbor from '@ipld/dag-cbor'
import { addStoreDots, Causal, CausalContext, causalType, DotMap, dotSet } from './causal.ts'
import {
  bytesToKey,
  checkMutationContext,
  compareStrings,
  deltaError,
  expectArray,
  expectTuple,
  fail,
  keyToBytes,
  MAX_VALUE_BYTES,
  encodeValue,
  valueError
} from './codec.ts'
import type { DotClaims, DotSet } from './causal.ts'
import type { Limits } from './codec.ts'
import type { CrdtType, MutationContext } from './types.ts'

/** Element key (its dag-cbor bytes as a binary string, see bytesToKey) → the dots of its add. */
export type SetStore = DotMap<DotSet>
export type OrSetState = Causal<SetStore>

export interface OrSetType extends CrdtType<OrSetState, OrSetState, unknown[]> {
  /** Adds `elem`, replacing the adds of it observed here. */
  add(state: OrSetState, ctx: MutationContext, elem: unknown): OrSetState
  /** Removes `elem` as observed here; a concurrent add survives. A no-op delta if `elem` is absent. */
  remove(state: OrSetState, ctx: MutationContext, elem: unknown): OrSetState
  /** Removes every element observed here. */
  clear(state: OrSetState, ctx: MutationContext): OrSetState
  has(state: OrSetState, elem: unknown): boolean
}

/** The key an element is stored under: its dag-cbor bytes. Throws InvalidValueError for unstorable elements. */
export function elementKey(elem: unknown): string {
  return bytesToKey(encodeValue(elem, MAX_VALUE_BYTES, valueError('elem')))
}

export function elementOf(key: string): unknown {
  return dagCbor.decode(keyToBytes(key))
}

/** The store and context of a delta adding the element stored under `key` to `store`. */
export function addElement(
  store: SetStore | undefined,
  seen: CausalContext,
  replica: string,
  key: string
): [SetStore, CausalContext] {
  const dot = seen.nextDot(replica)
  const added: SetStore = new DotMap()
  added.entries.set(key, dotSet(dot))
  return [added, addStoreDots(new CausalContext().add(dot), store?.entries.get(key))]
}

/** The elements of a set store, sorted by their encoded bytes (the order of their keys). */
export function setElements(store: SetStore): unknown[] {
  return [...store.entries.keys()].sort(compareStrings).map(elementOf)
}

export function encodeSetStore(store: SetStore): unknown[] {
  return [...store.entries]
    .sort((a, b) => compareStrings(a[0], b[0]))
    .map(([key, dots]) => [elementOf(key), dots.sorted().map(([[r, n]]) => [r, n])])
}

export function decodeSetStore(data: unknown, claims: DotClaims, limits: Limits, field: string): SetStore {
  const store: SetStore = new DotMap()
  expectArray(data, field, limits.maxEntries).forEach((x, i) => {
    const [elem, dots] = expectTuple(x, `${field}[${i}]`, 2)
    const key = bytesToKey(encodeValue(elem, limits.maxValueBytes, deltaError(`${field}[${i}][0]`)))
    if (store.entries.has(key)) fail(`${field}[${i}][0]`, 'repeats an element')
    const set = dotSet()
    expectArray(dots, `${field}[${i}][1]`, limits.maxEntries, 1).forEach((d, j) => {
      const at = `${field}[${i}][1][${j}]`
      set.entries.set(claims.claim(expectTuple(d, at, 2), at), true)
    })
    store.entries.set(key, set)
  })
  return store
}

export const orSet: OrSetType = {
  ...causalType({
    name: 'or-set',
    field: 'set',
    storeField: 'elems',
    emptyStore: (): SetStore => new DotMap(),
    value: setElements,
    encodeStore: encodeSetStore,
    decodeStore: decodeSetStore
  }),

  add(state, ctx, elem) {
    checkMutationContext(ctx)
    const [store, context] = addElement(state.store, state.context, ctx.replica, elementKey(elem))
    return new Causal(store, context)
  },

  remove(state, ctx, elem) {
    checkMutationContext(ctx)
    return new Causal<SetStore>(
      new DotMap(),
      addStoreDots(new CausalContext(), state.store.entries.get(elementKey(elem)))
    )
  },

  clear(state, ctx) {
    checkMutationContext(ctx)
    return new Causal<SetStore>(new DotMap(), addStoreDots(new CausalContext(), state.store))
  },

  has: (state, elem) => state.store.entries.has(elementKey(elem))
}
