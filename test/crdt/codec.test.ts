import { strict as assert } from 'node:assert'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { crdtTypes, gCounter, lwwRegister, mvRegister, orMap, orSet, pnCounter } from '../../src/crdt/index.ts'
import { MAX_DEPTH, MAX_ENTRIES, MAX_KEY_LENGTH, MAX_UPDATE_BYTES, MAX_VALUE_BYTES } from '../../src/crdt/index.ts'
import { ALICE, at, BOB, cidOf, viaBytes } from './fixtures.ts'
import type { AnyCrdtType, CrdtLimits, CrdtName } from '../../src/crdt/index.ts'

const invalid = { name: 'InvalidDeltaError' }
const A = ALICE
const B = BOB
const ctx = (vv: Record<string, number>, cloud: unknown[] = []): unknown => ({ vv, cloud })
const cid = CID.create(1, 0x55, identity.digest(new Uint8Array([1])))

/** One fixed state of each canonical type, built with fixed replica ids and timestamps. */
function fixedStates(): Array<[AnyCrdtType, unknown]> {
  const g = gCounter.empty()
  gCounter.merge(g, gCounter.increment(g, at(A), 3))
  gCounter.merge(g, gCounter.increment(g, at(B), 2))
  const pn = pnCounter.empty()
  pnCounter.merge(pn, pnCounter.increment(pn, at(A), 3))
  pnCounter.merge(pn, pnCounter.decrement(pn, at(B), 1))
  const s = orSet.empty()
  orSet.merge(s, orSet.add(s, at(A), 'apple'))
  orSet.merge(s, orSet.add(s, at(B), 'banana'))
  orSet.merge(s, orSet.add(s, at(A), { n: 1 }))
  orSet.merge(s, orSet.remove(s, at(A), 'banana'))
  const l = lwwRegister.empty()
  lwwRegister.merge(l, lwwRegister.set(l, at(A, 1_700_000_000_000, 2), 'on'))
  const mv = mvRegister.empty()
  const red = mvRegister.set(mv, at(A), 'red')
  mvRegister.merge(mvRegister.merge(mv, mvRegister.set(mv, at(B), 'green')), red)
  const m = orMap.empty()
  orMap.merge(m, orMap.set(m, at(A, 1_700_000_000_000), ['profile', 'name'], 'Alice'))
  orMap.merge(m, orMap.assign(m, at(B), ['colour'], 'blue'))
  orMap.merge(m, orMap.increment(m, at(B), ['visits'], 3))
  orMap.merge(m, orMap.decrement(m, at(A), ['visits'], 1))
  orMap.merge(m, orMap.add(m, at(A), ['tags'], 'x'))
  orMap.merge(m, orMap.add(m, at(B), ['tags'], 'y'))
  orMap.merge(m, orMap.removeElement(m, at(B), ['tags'], 'x'))
  return [
    [gCounter, g],
    [pnCounter, pn],
    [orSet, s],
    [lwwRegister, l],
    [mvRegister, mv],
    [orMap, m]
  ] as Array<[AnyCrdtType, unknown]>
}

/** Asserts that `name`'s decoders refuse `data` by name. */
function refuses(name: CrdtName, data: unknown, limits?: CrdtLimits): void {
  const type: AnyCrdtType = crdtTypes[name]
  const what = `${name}: ${JSON.stringify(data, (_, v) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v))}`
  assert.throws(() => type.decodeState(data, limits), invalid, what)
  assert.throws(() => type.decodeDelta(data, limits), invalid, what)
}

/** A valid OR-Map encoding whose innermost field sits `depth` maps deep. */
function nested(depth: number): unknown {
  let fields: unknown = [['leaf', 'lww', [[A, 1, [1, 0], 'v']]]]
  for (let i = 1; i < depth; i++) fields = [[`m${i}`, 'map', fields]]
  return { ctx: ctx({ [A]: 1 }), fields }
}

describe('crdt codecs', () => {
  it('has the documented defaults', () => {
    assert.deepEqual(
      [MAX_ENTRIES, MAX_DEPTH, MAX_VALUE_BYTES, MAX_KEY_LENGTH, MAX_UPDATE_BYTES],
      [65_536, 8, 65_536, 256, 1_048_576]
    )
    assert.deepEqual(Object.keys(crdtTypes).sort(), [
      'g-counter',
      'lww-register',
      'mv-register',
      'op-log',
      'or-map',
      'or-set',
      'pn-counter',
      'text'
    ])
    for (const [name, type] of Object.entries(crdtTypes)) assert.equal(type.name, name)
  })

  it('encodes each type in its documented form', () => {
    const encoded = fixedStates().map(([type, state]) => type.encodeState(state))
    assert.deepEqual(encoded, [
      { [A]: 3, [B]: 2 },
      { p: { [A]: 3 }, n: { [B]: 1 } },
      {
        ctx: ctx({ [A]: 2, [B]: 1 }),
        elems: [
          ['apple', [[A, 1]]],
          [{ n: 1 }, [[A, 2]]]
        ]
      },
      { hlc: [1_700_000_000_000, 2], replica: A, value: 'on' },
      {
        ctx: ctx({ [A]: 1, [B]: 1 }),
        values: [
          [A, 1, 'red'],
          [B, 1, 'green']
        ]
      },
      {
        ctx: ctx({ [A]: 3, [B]: 3 }),
        fields: [
          ['colour', 'mv', [[B, 1, 'blue']]],
          ['profile', 'map', [['name', 'lww', [[A, 1, [1_700_000_000_000, 0], 'Alice']]]]],
          ['tags', 'set', [['y', [[B, 3]]]]],
          [
            'visits',
            'counter',
            [
              [A, 2, 0, 1],
              [B, 2, 3, 0]
            ]
          ]
        ]
      }
    ])
  })

  it('gives fixed states fixed CIDs, so a format change cannot slip through', async () => {
    const cids = await Promise.all(fixedStates().map(([type, state]) => cidOf(type.encodeState(state))))
    assert.deepEqual(cids, [
      'bafyreiafsef6yshh6vp2owzxstxfuaxwjtcaaiincxxbxi6njobehnpjoy',
      'bafyreicmoupkjmmjtkwtq5mqh4qoexybfnxpdbmdke3zjagaotqha6v34q',
      'bafyreieaofvhxf7m264gwsuioiaurr5dkw3n7zdtwrqpiyubhot756lmhm',
      'bafyreiesdnkda43jcbkkuxbmjyt577gbpr2ro2toerveza35y7tkixguvi',
      'bafyreigpqdb4oflgt7nky6o7erjm6ja37ofiu43d4o4gkkcbonzlfs3s74',
      'bafyreian5gasghjy3pkszpmvuoj477evvn2erkv6h2gluhoi2tybp2bhri'
    ])
  })

  it('decodes what it encodes, through dag-cbor bytes', () => {
    for (const [type, state] of fixedStates()) {
      const decoded = type.decodeState(viaBytes(type.encodeState(state)))
      assert.ok(type.equals(decoded, state), type.name)
      assert.deepEqual(type.value(decoded), type.value(state))
    }
    const withCid = orSet.empty()
    orSet.merge(withCid, orSet.add(withCid, at(A), cid))
    assert.deepEqual(orSet.value(orSet.decodeState(viaBytes(orSet.encodeState(withCid)))), [cid])
  })

  it('refuses what is not a map of the right fields', () => {
    for (const name of ['g-counter', 'pn-counter', 'or-set', 'lww-register', 'mv-register', 'or-map'] as const) {
      for (const bad of ['x', 5, [], true, new Uint8Array(2), cid]) refuses(name, bad)
    }
    for (const name of ['g-counter', 'pn-counter', 'or-set', 'mv-register', 'or-map'] as const) refuses(name, null)
    refuses('or-set', { ctx: ctx({}) })
    refuses('or-set', { ctx: ctx({}), elems: [], extra: 1 })
    refuses('or-set', { ctx: ctx({}), elems: {} })
    refuses('or-set', { ctx: [], elems: [] })
    refuses('mv-register', { ctx: ctx({}), elems: [] })
    refuses('or-map', { ctx: ctx({}), fields: 'x' })
    refuses('pn-counter', { p: {} })
    refuses('pn-counter', { p: {}, n: {}, z: {} })
    refuses('pn-counter', { p: [], n: {} })
    refuses('lww-register', { hlc: [1, 0], replica: A })
    refuses('lww-register', { hlc: [1, 0], replica: A, value: 1, extra: 1 })
  })

  it('refuses zero, negative, fractional and unsafe counters and invalid replica ids', () => {
    for (const n of [0, -1, 1.5, 2 ** 53, '1', null]) {
      refuses('g-counter', { [A]: n })
      refuses('pn-counter', { p: {}, n: { [A]: n } })
      refuses('or-set', { ctx: ctx({ [A]: 1 }), elems: [['x', [[A, n]]]] })
      refuses('mv-register', { ctx: ctx({ [A]: 1 }), values: [[A, n, 'v']] })
      if (n !== 0) refuses('or-map', { ctx: ctx({ [A]: 1 }), fields: [['c', 'counter', [[A, 1, n, 1]]]] })
      refuses('or-map', { ctx: ctx({ [A]: 1 }), fields: [['c', 'counter', [[A, n, 1, 0]]]] })
      refuses('or-set', { ctx: ctx({}, [[A, n]]), elems: [] })
    }
    for (const id of ['', 'has space', 'x'.repeat(65), 'ü', 7]) {
      if (typeof id === 'string') refuses('g-counter', { [id]: 1 })
      refuses('lww-register', { hlc: [1, 0], replica: id, value: 1 })
      refuses('or-set', { ctx: ctx({ [A]: 1 }), elems: [['x', [[id, 1]]]] })
      if (typeof id === 'string') refuses('or-set', { ctx: ctx({ [id]: 1 }), elems: [] })
    }
    refuses('or-map', { ctx: ctx({ [A]: 1 }), fields: [['c', 'counter', [[A, 1, 0, 0]]]] })
    for (const hlc of [[-1, 0], [1], [1, 2 ** 32], [1.5, 0], 'now']) {
      refuses('lww-register', { hlc, replica: A, value: 1 })
      refuses('or-map', { ctx: ctx({ [A]: 1 }), fields: [['k', 'lww', [[A, 1, hlc, 'v']]]] })
    }
  })

  it('refuses repeated dots, elements and fields, and dots the context does not cover', () => {
    const c = ctx({ [A]: 2 })
    refuses('or-set', {
      ctx: c,
      elems: [
        ['x', [[A, 1]]],
        ['y', [[A, 1]]]
      ]
    })
    refuses('or-set', {
      ctx: c,
      elems: [
        [
          'x',
          [
            [A, 1],
            [A, 1]
          ]
        ]
      ]
    })
    refuses('or-set', {
      ctx: c,
      elems: [
        ['x', [[A, 1]]],
        ['x', [[A, 2]]]
      ]
    })
    refuses('or-set', { ctx: c, elems: [['x', [[A, 3]]]] })
    refuses('or-set', { ctx: c, elems: [['x', []]] })
    refuses('or-set', { ctx: c, elems: [['x', [[A, 1]], 'extra']] })
    refuses('mv-register', {
      ctx: c,
      values: [
        [A, 1, 'v'],
        [A, 1, 'w']
      ]
    })
    refuses('mv-register', { ctx: c, values: [[B, 1, 'v']] })
    refuses('mv-register', { ctx: c, values: [[A, 1]] })
    refuses('or-map', {
      ctx: c,
      fields: [
        ['a', 'lww', [[A, 1, [1, 0], 'v']]],
        ['a', 'lww', [[A, 2, [1, 0], 'w']]]
      ]
    })
    refuses('or-map', {
      ctx: c,
      fields: [
        ['a', 'lww', [[A, 1, [1, 0], 'v']]],
        ['b', 'mv', [[A, 1, 'w']]]
      ]
    })
    refuses('or-map', { ctx: c, fields: [['a', 'bogus', [[A, 1, 'v']]]] })
    refuses('or-map', { ctx: c, fields: [['', 'mv', [[A, 1, 'v']]]] })
    refuses('or-map', { ctx: c, fields: [[1, 'mv', [[A, 1, 'v']]]] })
    for (const kind of ['lww', 'mv', 'counter', 'set', 'map']) refuses('or-map', { ctx: c, fields: [['a', kind, []]] })
    refuses('or-map', { ctx: c, fields: [['a', 'set', [['x', []]]]] })
    refuses('or-map', { ctx: c, fields: [['a', 'map', [['b', 'map', []]]]] })
    refuses('or-set', {
      ctx: ctx({}, [
        [A, 3],
        [A, 3]
      ]),
      elems: []
    })
    refuses('or-set', { ctx: ctx({ [A]: 2 }, [[A, 3]]), elems: [] })
  })

  it('refuses collections over maxEntries', () => {
    const limits = { maxEntries: 2 }
    const c = ctx({ [A]: 3 })
    refuses('g-counter', { [A]: 1, [B]: 1, z6MkCarol: 1 }, limits)
    refuses('pn-counter', { p: {}, n: { [A]: 1, [B]: 1, z6MkCarol: 1 } }, limits)
    refuses(
      'or-set',
      {
        ctx: c,
        elems: [
          ['x', [[A, 1]]],
          ['y', [[A, 2]]],
          ['z', [[A, 3]]]
        ]
      },
      limits
    )
    refuses(
      'or-set',
      {
        ctx: c,
        elems: [
          [
            'x',
            [
              [A, 1],
              [A, 2],
              [A, 3]
            ]
          ]
        ]
      },
      limits
    )
    refuses('or-set', { ctx: ctx({ [A]: 1, [B]: 1, z6MkCarol: 1 }), elems: [] }, limits)
    refuses(
      'mv-register',
      {
        ctx: c,
        values: [
          [A, 1, 1],
          [A, 2, 2],
          [A, 3, 3]
        ]
      },
      limits
    )
    const three = [
      ['a', 'mv', [[A, 1, 1]]],
      ['b', 'mv', [[A, 2, 2]]],
      ['c', 'mv', [[A, 3, 3]]]
    ]
    refuses('or-map', { ctx: c, fields: three }, limits)
    assert.equal(Object.keys(orMap.value(orMap.decodeState({ ctx: c, fields: three }))).length, 3)
  })

  it('refuses maps nested deeper than maxDepth and names longer than maxKeyLength', () => {
    assert.deepEqual(orMap.get(orMap.decodeState(nested(8)), ['m7', 'm6', 'm5', 'm4', 'm3', 'm2', 'm1', 'leaf']), 'v')
    refuses('or-map', nested(9))
    refuses('or-map', nested(3), { maxDepth: 2 })
    orMap.decodeState(nested(2), { maxDepth: 2 })
    const long = { ctx: ctx({ [A]: 1 }), fields: [['abcd', 'mv', [[A, 1, 'v']]]] }
    refuses('or-map', long, { maxKeyLength: 3 })
    orMap.decodeState(long, { maxKeyLength: 4 })
  })

  it('refuses values larger than maxValueBytes or outside the dag-cbor data model', () => {
    const limits = { maxValueBytes: 8 }
    const big = 'x'.repeat(8)
    refuses('lww-register', { hlc: [1, 0], replica: A, value: big }, limits)
    refuses('or-set', { ctx: ctx({ [A]: 1 }), elems: [[big, [[A, 1]]]] }, limits)
    refuses('mv-register', { ctx: ctx({ [A]: 1 }), values: [[A, 1, big]] }, limits)
    refuses('or-map', { ctx: ctx({ [A]: 1 }), fields: [['k', 'lww', [[A, 1, [1, 0], big]]]] }, limits)
    refuses('or-map', { ctx: ctx({ [A]: 1 }), fields: [['k', 'set', [[big, [[A, 1]]]]]] }, limits)
    lwwRegister.decodeState({ hlc: [1, 0], replica: A, value: 'x'.repeat(7) }, limits)
    refuses('lww-register', { hlc: [1, 0], replica: A, value: undefined })
    refuses('mv-register', { ctx: ctx({ [A]: 1 }), values: [[A, 1, { f: undefined }]] })
    refuses('or-set', { ctx: ctx({ [A]: 1 }), elems: [[Number.NaN, [[A, 1]]]] })
  })
})
