import { strict as assert } from 'node:assert'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { orSet } from '../../src/crdt/or-set.ts'
import { ALICE, at, BOB, cbor, CAROL } from './fixtures.ts'
import type { OrSetState } from '../../src/crdt/or-set.ts'

/** Applies a mutation where it is made and returns its delta. */
const apply = (state: OrSetState, delta: OrSetState): OrSetState => {
  orSet.merge(state, delta)
  return delta
}

describe('crdt/or-set', () => {
  it('holds any dag-cbor value, identified by its encoding, listed in encoded-byte order', () => {
    const s = orSet.empty()
    const cid = CID.create(1, 0x55, identity.digest(new Uint8Array([9])))
    for (const elem of ['b', 'a', 10, -1, null, true, new Uint8Array([0]), [1, 2], { y: 1, x: 2 }, cid]) {
      apply(s, orSet.add(s, at(ALICE), elem))
    }
    apply(s, orSet.add(s, at(BOB), { x: 2, y: 1 })) // the same map, keys in another order
    apply(s, orSet.add(s, at(BOB), 'a'))
    const value = orSet.value(s)
    assert.equal(value.length, 10)
    const encodings = value.map(v => Buffer.from(cbor(v)))
    assert.deepEqual(encodings, [...encodings].sort(Buffer.compare))
    assert.deepEqual(value.slice(0, 3), [10, -1, new Uint8Array([0])])
    assert.ok(orSet.has(s, { x: 2, y: 1 }))
    assert.ok(orSet.has(s, cid))
    assert.ok(!orSet.has(s, 'c'))
  })

  it('lets a concurrent add win over a remove', () => {
    const a = orSet.empty()
    const b = orSet.empty()
    orSet.merge(b, apply(a, orSet.add(a, at(ALICE), 'x')))
    const removal = apply(a, orSet.remove(a, at(ALICE), 'x'))
    const readd = apply(b, orSet.add(b, at(BOB), 'x'))
    orSet.merge(a, readd)
    orSet.merge(b, removal)
    assert.deepEqual(orSet.value(a), ['x'])
    assert.deepEqual(orSet.value(b), ['x'])
    assert.ok(orSet.equals(a, b))
  })

  it('makes removing an element it has not observed a no-op', () => {
    const a = orSet.empty()
    const b = orSet.empty()
    const add = apply(a, orSet.add(a, at(ALICE), 'x'))
    const blind = orSet.remove(b, at(BOB), 'x')
    assert.deepEqual(orSet.encodeDelta(blind), { ctx: { vv: {}, cloud: [] }, elems: [] })
    orSet.merge(b, blind)
    orSet.merge(b, add)
    orSet.merge(a, blind)
    assert.deepEqual(orSet.value(a), ['x'])
    assert.deepEqual(orSet.value(b), ['x'])
  })

  it('clears what it has observed, and a concurrent add survives the clear', () => {
    const a = orSet.empty()
    const b = orSet.empty()
    for (const e of ['x', 'y']) orSet.merge(b, apply(a, orSet.add(a, at(ALICE), e)))
    const clear = apply(a, orSet.clear(a, at(ALICE)))
    const z = apply(b, orSet.add(b, at(BOB), 'z'))
    const y = apply(b, orSet.add(b, at(BOB), 'y'))
    for (const d of [z, y]) orSet.merge(a, d)
    orSet.merge(b, clear)
    assert.deepEqual(orSet.value(a), ['y', 'z'])
    assert.ok(orSet.equals(a, b))
  })

  it('re-adding replaces the element’s earlier dots instead of piling them up', () => {
    const s = orSet.empty()
    for (let i = 0; i < 5; i++) apply(s, orSet.add(s, at(ALICE), 'x'))
    assert.deepEqual(orSet.encodeState(s), { ctx: { vv: { [ALICE]: 5 }, cloud: [] }, elems: [['x', [[ALICE, 5]]]] })
  })

  it('leaves no tombstones: adding and removing 2000 elements leaves a state of a few bytes', () => {
    const a = orSet.empty()
    const b = orSet.empty()
    const deltas: OrSetState[] = []
    for (let i = 0; i < 2000; i++) {
      const [author, replica] = i % 2 === 0 ? [a, ALICE] : [b, BOB]
      deltas.push(apply(author, orSet.add(author, at(replica), { item: i, body: 'x'.repeat(20) })))
    }
    for (let i = 0; i < 2000; i++) {
      const [author, replica] = i % 3 === 0 ? [a, ALICE] : [b, CAROL]
      // each remover first sees the element it removes
      orSet.merge(author, deltas[i])
      deltas.push(apply(author, orSet.remove(author, at(replica), { item: i, body: 'x'.repeat(20) })))
    }
    // a third replica receives everything, newest first: the cloud fills with gaps, then compacts
    const c = orSet.empty()
    for (const d of [...deltas].reverse()) orSet.merge(c, d)
    for (const s of [a, b, c]) orSet.merge(s, orSet.toDelta(a)).merge(orSet.toDelta(b))
    for (const s of [a, b, c]) {
      assert.deepEqual(orSet.value(s), [])
      assert.equal(s.context.cloudSize, 0)
      assert.deepEqual(orSet.encodeState(s), { ctx: { vv: { [ALICE]: 1000, [BOB]: 1000 }, cloud: [] }, elems: [] })
      assert.ok(cbor(orSet.encodeState(s)).length < 40 + 2 * 20, `${cbor(orSet.encodeState(s)).length} bytes`)
    }
  })

  it('refuses elements outside the dag-cbor data model or larger than 64 KiB', () => {
    const s = orSet.empty()
    assert.throws(() => orSet.add(s, at(ALICE), undefined), { name: 'InvalidValueError' })
    assert.throws(() => orSet.add(s, at(ALICE), { f: () => 1 }), { name: 'InvalidValueError' })
    assert.throws(() => orSet.add(s, at(ALICE), new Uint8Array(64 * 1024)), { name: 'InvalidValueError' })
    assert.throws(() => orSet.remove(s, at(ALICE), Number.NaN), { name: 'InvalidValueError' })
    orSet.add(s, at(ALICE), new Uint8Array(64 * 1024 - 4))
  })
})
