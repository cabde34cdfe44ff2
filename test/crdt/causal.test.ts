import { strict as assert } from 'node:assert'
import { Causal, CausalContext, DotFun, DotMap, dotSet, joinStores } from '../../src/crdt/causal.ts'
import { resolveLimits } from '../../src/crdt/codec.ts'
import type { Dot, DotSet } from '../../src/crdt/causal.ts'

const invalid = { name: 'InvalidDeltaError' }
const contextOf = (...dots: Dot[]): CausalContext => {
  const context = new CausalContext()
  for (const dot of dots) context.add(dot)
  return context
}
const setMap = (entries: Record<string, Dot[]>): DotMap<DotSet> => {
  const map = new DotMap<DotSet>()
  for (const [key, dots] of Object.entries(entries)) map.entries.set(key, dotSet(...dots))
  return map
}
const keysOf = (store: DotFun<unknown>): string[] => [...store.entries.keys()].sort()

describe('crdt/causal', () => {
  it('keeps dots that arrive out of order in the cloud until the gap fills, then compacts them', () => {
    const context = contextOf(['a', 3], ['a', 5], ['b', 1])
    assert.deepEqual(context.encode(), {
      vv: { b: 1 },
      cloud: [
        ['a', 3],
        ['a', 5]
      ]
    })
    assert.equal(context.has('a', 3), true)
    assert.equal(context.has('a', 4), false)
    context.add(['a', 1]).add(['a', 2])
    assert.deepEqual(context.encode(), { vv: { a: 3, b: 1 }, cloud: [['a', 5]] })
    context.add(['a', 4])
    assert.deepEqual(context.encode(), { vv: { a: 5, b: 1 }, cloud: [] })
    assert.equal(context.cloudSize, 0)
    assert.equal(context.span, 6)
  })

  it('joins contexts into one vector entry per replica plus the gaps still missing', () => {
    const a = contextOf(['a', 1], ['a', 2], ['b', 2])
    const b = contextOf(['b', 1], ['a', 4], ['c', 1])
    a.join(b)
    assert.deepEqual(a.encode(), { vv: { a: 2, b: 2, c: 1 }, cloud: [['a', 4]] })
    a.join(contextOf(['a', 1], ['a', 2], ['a', 3]))
    assert.deepEqual(a.encode(), { vv: { a: 4, b: 2, c: 1 }, cloud: [] })
    assert.ok(a.equals(a.clone()))
    assert.ok(!a.equals(b))
  })

  it('hands out the next dot past every dot of the replica it has seen', () => {
    assert.deepEqual(new CausalContext().nextDot('a'), ['a', 1])
    assert.deepEqual(contextOf(['a', 1], ['a', 7]).nextDot('a'), ['a', 8])
    assert.deepEqual(contextOf(['a', 1], ['a', 2]).nextDot('b'), ['b', 1])
    assert.throws(() => new CausalContext().nextDot('not a replica!'), { name: 'InvalidVectorClockError' })
    assert.throws(() => contextOf(['a', Number.MAX_SAFE_INTEGER]).nextDot('a'), { name: 'CounterOverflowError' })
  })

  it('joins (store, context) pairs: a dot survives unless the other side has seen it and dropped it', () => {
    // x: in both; y: only in a, b never saw it; z: only in a, b saw and removed it; w: only in b, new to a
    const a = setMap({ x: [['a', 1]], y: [['a', 2]], z: [['a', 3]] })
    const ca = contextOf(['a', 1], ['a', 2], ['a', 3])
    const b = setMap({ x: [['a', 1]], w: [['b', 1]] })
    const cb = contextOf(['a', 1], ['a', 3], ['b', 1])
    const joined = joinStores(a, ca, b, cb)
    assert.deepEqual([...joined.entries.keys()].sort(), ['w', 'x', 'y'])
    assert.equal(joinStores(b, cb, a, ca).entries.size, 3)
    // a dot that a has seen and removed does not come back from b
    const revived = joinStores(setMap({}), contextOf(['b', 1]), b, cb)
    assert.deepEqual([...revived.entries.keys()], ['x'])
    assert.equal(a.entries.size, 3, 'join leaves its inputs alone')
  })

  it('removes without tombstones: an empty store whose context holds the removed dots', () => {
    const state = new Causal(setMap({ x: [['a', 1]], y: [['a', 2]] }), contextOf(['a', 1], ['a', 2]))
    state.merge(new Causal(new DotMap<DotSet>(), contextOf(['a', 1])))
    assert.deepEqual([...state.store.entries.keys()], ['y'])
    assert.deepEqual(state.context.encode(), { vv: { a: 2 }, cloud: [] })
    // a later delta re-adding the removed dot cannot bring it back
    state.merge(new Causal(setMap({ x: [['a', 1]] }), contextOf(['a', 1])))
    assert.deepEqual([...state.store.entries.keys()], ['y'])
  })

  it('merges a nested delta in place, dropping maps that become empty', () => {
    const inner = new DotMap<DotFun<unknown>>()
    const leaf = new DotFun<unknown>()
    leaf.entries.set('a:1', 'v')
    inner.entries.set('f', leaf)
    const root = new DotMap<DotMap<DotFun<unknown>>>()
    root.entries.set('m', inner)
    const state = new Causal(root, contextOf(['a', 1]))
    const overwrite = new DotMap<DotMap<DotFun<unknown>>>()
    const newInner = new DotMap<DotFun<unknown>>()
    const newLeaf = new DotFun<unknown>()
    newLeaf.entries.set('b:1', 'w')
    newInner.entries.set('g', newLeaf)
    overwrite.entries.set('n', newInner)
    state.merge(new Causal(overwrite, contextOf(['a', 1], ['b', 1])))
    assert.deepEqual([...state.store.entries.keys()], ['n'])
    assert.deepEqual(keysOf(state.store.entries.get('n')!.entries.get('g')!), ['b:1'])
  })

  it('keeps one value, the same everywhere, when two deltas disagree about a dot', () => {
    const one = new DotFun<unknown>()
    one.entries.set('a:1', 'first')
    const two = new DotFun<unknown>()
    two.entries.set('a:1', 'second')
    const x = new Causal(one, contextOf(['a', 1]))
    const y = new Causal(two, contextOf(['a', 1]))
    const xy = x.clone().merge(y)
    const yx = y.clone().merge(x)
    assert.ok(xy.equals(yx))
    assert.ok(xy.equals(Causal.join(x, y)))
    assert.equal(xy.store.entries.get('a:1'), 'second') // the greater dag-cbor bytes
  })

  it('decodes only compacted contexts without repeated dots', () => {
    const limits = resolveLimits()
    const ok = { vv: { a: 2 }, cloud: [['a', 4]] }
    assert.ok(CausalContext.decode(ok, limits, 'ctx').equals(contextOf(['a', 1], ['a', 2], ['a', 4])))
    for (const bad of [
      { vv: { a: 2 }, cloud: [['a', 2]] },
      { vv: { a: 2 }, cloud: [['a', 3]] },
      { vv: {}, cloud: [['a', 1]] },
      {
        vv: {},
        cloud: [
          ['a', 5],
          ['a', 5]
        ]
      },
      { vv: {}, cloud: [['a', 0]] },
      { vv: { a: 0 }, cloud: [] },
      { vv: { 'no spaces': 1 }, cloud: [] },
      { vv: [], cloud: [] },
      { vv: {}, cloud: {} },
      { vv: {} },
      { vv: {}, cloud: [], extra: 1 }
    ]) {
      assert.throws(() => CausalContext.decode(bad, limits, 'ctx'), invalid, JSON.stringify(bad))
    }
    const many = { vv: { a: 1, b: 1, c: 1 }, cloud: [] }
    assert.throws(() => CausalContext.decode(many, resolveLimits({ maxEntries: 2 }), 'ctx'), invalid)
    const cloud = {
      vv: {},
      cloud: [
        ['a', 3],
        ['a', 5],
        ['a', 7]
      ]
    }
    assert.throws(() => CausalContext.decode(cloud, resolveLimits({ maxEntries: 2 }), 'ctx'), invalid)
  })
})
