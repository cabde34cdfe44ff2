import { strict as assert } from 'node:assert'
import { compareOpLogEntries, crdtTypes, opLog, opLogEntries, OpLogState } from '../../src/crdt/index.ts'
import { ALICE, at, BOB, CAROL, viaBytes } from './fixtures.ts'
import type { OpLogEntry } from '../../src/crdt/index.ts'

/** (wall, logical, actor, index) of each entry: what the order is made of. */
const stamps = (entries: Iterable<OpLogEntry>): string[] =>
  [...entries].map(e => `${e.hlc[0]}.${e.hlc[1]} ${e.actor} ${e.index}`)

/** The deltas of a few events by three authors, in HLC order. */
function events(): OpLogState[] {
  const s = opLog.empty()
  return [
    opLog.append(s, at(BOB, 1_000, 0), ['b0', 'b1']),
    opLog.append(s, at(ALICE, 1_000, 0), ['a0']),
    opLog.append(s, at(CAROL, 1_000, 1), [{ op: 'claim', item: 't1' }]),
    opLog.append(s, at(ALICE, 1_001, 0), ['a2', 'a3', 'a4'])
  ]
}

describe('crdt/op-log', () => {
  it('is registered as op-log', () => {
    assert.equal(crdtTypes['op-log'], opLog)
    assert.equal(opLog.name, 'op-log')
  })

  it('stamps an append’s bodies with the event’s HLC, its author and their positions, as private copies', () => {
    const body = { op: 'create', item: 'goal', tags: ['x'] }
    const delta = opLog.append(opLog.empty(), at(ALICE, 1_234, 7), [body, 'second'])
    body.tags.push('changed later')
    assert.deepEqual(
      [...delta].map(e => ({ ...e, hlc: [...e.hlc] })),
      [
        { hlc: [1_234, 7], actor: ALICE, index: 0, body: { op: 'create', item: 'goal', tags: ['x'] } },
        { hlc: [1_234, 7], actor: ALICE, index: 1, body: 'second' }
      ]
    )
    assert.deepEqual(opLogEntries([delta]), [...delta])
    assert.equal(opLog.append(opLog.empty(), at(ALICE), []).size, 0)
  })

  it('refuses bodies outside the dag-cbor data model or larger than 64 KiB', () => {
    const s = opLog.empty()
    assert.throws(() => opLog.append(s, at(ALICE), [() => 1]), { name: 'InvalidValueError', message: /bodies\[0\]/ })
    assert.throws(() => opLog.append(s, at(ALICE), ['ok', 'x'.repeat(64 * 1024)]), {
      name: 'InvalidValueError',
      message: /bodies\[1\] is larger than/
    })
    assert.throws(() => opLog.append(s, { replica: 'bad id!', hlc: [1, 0] }, ['x']), {
      name: 'InvalidVectorClockError'
    })
  })

  it('reads entries in (HLC, actor, index) order whatever order they arrive in, and keeps the arrival order', () => {
    const deltas = events()
    const forward = opLog.empty()
    for (const d of deltas) opLog.merge(forward, d)
    const backward = opLog.empty()
    for (const d of [...deltas].reverse()) opLog.merge(backward, d)
    const expected = [
      `1000.0 ${ALICE} 0`,
      `1000.0 ${BOB} 0`,
      `1000.0 ${BOB} 1`,
      `1000.1 ${CAROL} 0`,
      `1001.0 ${ALICE} 0`,
      `1001.0 ${ALICE} 1`,
      `1001.0 ${ALICE} 2`
    ]
    assert.deepEqual(stamps(opLog.value(forward)), expected)
    assert.deepEqual(stamps(opLog.value(backward)), expected)
    assert.deepEqual(stamps(backward.arrival), [
      `1001.0 ${ALICE} 0`,
      `1001.0 ${ALICE} 1`,
      `1001.0 ${ALICE} 2`,
      `1000.1 ${CAROL} 0`,
      `1000.0 ${ALICE} 0`,
      `1000.0 ${BOB} 0`,
      `1000.0 ${BOB} 1`
    ])
    // a delta merged again adds nothing, not even to the arrival order
    const arrival = backward.arrival
    opLog.merge(backward, deltas[1])
    opLog.merge(backward, opLog.toDelta(forward))
    assert.equal(backward.arrival, arrival)
    assert.equal(backward.size, 7)
    assert.ok(opLog.equals(forward, backward))
  })

  it('extends the array entries() handed out only at its end, and makes a new one for an earlier entry', () => {
    const [b, a, c, late] = events()
    const s = opLog.empty()
    opLog.merge(s, a)
    const first = opLog.value(s)
    opLog.merge(s, c)
    assert.equal(opLog.value(s), first, 'an entry that sorts last is appended in place')
    assert.deepEqual(stamps(first), [`1000.0 ${ALICE} 0`, `1000.1 ${CAROL} 0`])
    opLog.merge(s, b)
    const second = opLog.value(s)
    assert.notEqual(second, first, 'an earlier entry makes a new array')
    assert.deepEqual(stamps(first), [`1000.0 ${ALICE} 0`, `1000.1 ${CAROL} 0`], 'the old array is left as it was')
    opLog.merge(s, late)
    assert.deepEqual(stamps(opLog.value(s)), stamps(opLog.value(opLog.join(opLog.join(a, b), opLog.join(c, late)))))
  })

  it('stays sorted through 100,000 entries arriving mostly in order with some late events', () => {
    const s = opLog.empty()
    const held: OpLogState[] = []
    let n = 0
    for (let event = 0; event < 20_000; event++) {
      const actor = [ALICE, BOB, CAROL][event % 3]
      const delta = opLog.append(s, at(actor, 1_000 + event, 0), [event, 'x', null, true, -1])
      n += 5
      // every 97th event is held back and arrives 500 events late
      if (event % 97 === 0) held.push(delta)
      else opLog.merge(s, delta)
      if (event % 500 === 499) {
        for (const d of held.splice(0)) opLog.merge(s, d)
        // a consumer reads the order now and then, between merges
        opLog.value(s)
      }
    }
    for (const d of held) opLog.merge(s, d)
    const entries = opLog.value(s)
    assert.equal(n, 100_000)
    assert.equal(entries.length, 100_000)
    assert.equal(s.arrival.length, 100_000)
    for (let i = 1; i < entries.length; i++) {
      if (compareOpLogEntries(entries[i - 1], entries[i]) >= 0)
        assert.fail(`entries ${i - 1} and ${i} are out of order`)
    }
    assert.deepEqual(stamps(entries.slice(0, 6)), [
      `1000.0 ${ALICE} 0`,
      `1000.0 ${ALICE} 1`,
      `1000.0 ${ALICE} 2`,
      `1000.0 ${ALICE} 3`,
      `1000.0 ${ALICE} 4`,
      `1001.0 ${BOB} 0`
    ])
  })

  it('encodes one map per event, sorted, and decodes it back to an equal state', () => {
    const s = opLog.empty()
    for (const d of events().reverse()) opLog.merge(s, d)
    const data = opLog.encodeState(s) as Array<{ hlc: number[]; actor: string; bodies: unknown[] }>
    assert.deepEqual(
      data.map(g => [g.hlc, g.actor, g.bodies.length]),
      [
        [[1_000, 0], ALICE, 1],
        [[1_000, 0], BOB, 2],
        [[1_000, 1], CAROL, 1],
        [[1_001, 0], ALICE, 3]
      ]
    )
    const decoded = opLog.decodeState(viaBytes(data))
    assert.ok(opLog.equals(decoded, s))
    assert.deepEqual(stamps(opLog.value(decoded)), stamps(opLog.value(s)))
    assert.deepEqual(opLog.decodeDelta(viaBytes([])).size, 0)
  })

  describe('decoding untrusted data, with limits', () => {
    const group = (fields: Record<string, unknown> = {}): Record<string, unknown> => ({
      hlc: [1_000, 0],
      actor: ALICE,
      bodies: ['x'],
      ...fields
    })
    const refuses = (data: unknown, message: RegExp, limits?: Parameters<typeof opLog.decodeDelta>[1]): void => {
      assert.throws(() => opLog.decodeDelta(data, limits), { name: 'InvalidDeltaError', message })
      assert.throws(() => opLog.decodeState(data, limits), { name: 'InvalidDeltaError', message })
    }

    it('refuses a body larger than maxValueBytes', () => {
      refuses([group({ bodies: ['ok', 'x'.repeat(200)] })], /oplog\[0\]\.bodies\[1\] is larger than 100 bytes/, {
        maxValueBytes: 100
      })
      refuses([group({ bodies: ['x'.repeat(64 * 1024)] })], /is larger than 65536 bytes/)
    })

    it('refuses more entries than maxEntries, counted across events', () => {
      const data = [group({ bodies: ['a', 'b', 'c'] }), group({ actor: BOB, bodies: ['d', 'e'] })]
      assert.equal(opLog.decodeDelta(data, { maxEntries: 5 }).size, 5)
      refuses(data, /oplog has more than 4 entries/, { maxEntries: 4 })
      refuses([group({ bodies: ['a', 'b', 'c'] })], /bodies has more than 2 entries/, { maxEntries: 2 })
      refuses(
        Array.from({ length: 3 }, (_, i) => group({ hlc: [1_000, i] })),
        /oplog has more than 2 entries/,
        { maxEntries: 2 }
      )
    })

    it('refuses a malformed HLC, actor, field set, empty event or repeated event', () => {
      refuses({}, /oplog is not an array/)
      refuses([group({ hlc: [1_000] })], /oplog\[0\]\.hlc is not an HLC/)
      refuses([group({ hlc: [-1, 0] })], /oplog\[0\]\.hlc is not an HLC/)
      refuses([group({ hlc: [1.5, 0] })], /oplog\[0\]\.hlc is not an HLC/)
      refuses([group({ actor: 'x'.repeat(129) })], /oplog\[0\]\.actor is not a string of 1-128/)
      refuses([group({ actor: '' })], /oplog\[0\]\.actor is not a string/)
      refuses([group({ actor: 7 })], /oplog\[0\]\.actor is not a string/)
      refuses([group({ index: 0 })], /must have exactly the fields/)
      refuses([group({ bodies: [] })], /oplog\[0\]\.bodies is empty/)
      refuses([group(), group({ bodies: ['other'] })], /oplog\[1\] repeats an hlc and actor/)
      assert.equal(opLog.decodeDelta([group({ actor: 'x'.repeat(128) })]).size, 1)
    })
  })

  describe('checkDelta: an event writes only its author’s entries, at its own time', () => {
    const state = opLog.empty()

    it('accepts what append makes, at the author and time of the event', () => {
      const delta = opLog.decodeDelta(viaBytes(opLog.encodeDelta(opLog.append(state, at(BOB, 2_000, 3), ['x', 'y']))))
      opLog.checkDelta(state, delta, at(BOB, 2_000, 3))
    })

    it('refuses entries written as another actor', () => {
      const forged = opLog.decodeDelta([{ hlc: [2_000, 3], actor: ALICE, bodies: ['in alice’s name'] }])
      assert.throws(() => opLog.checkDelta(state, forged, at(BOB, 2_000, 3)), {
        name: 'InvalidDeltaError',
        message: /is written as .*Alice, not as its author .*Bob/
      })
    })

    it('refuses entries stamped with another time than the event’s', () => {
      const backdated = opLog.decodeDelta([{ hlc: [1_000, 0], actor: BOB, bodies: ['earlier than its event'] }])
      assert.throws(() => opLog.checkDelta(state, backdated, at(BOB, 2_000, 3)), {
        name: 'InvalidDeltaError',
        message: /is 1000\.0, not the event's timestamp 2000\.3/
      })
      const twoTimes = opLog.decodeDelta([
        { hlc: [2_000, 3], actor: BOB, bodies: ['now'] },
        { hlc: [2_000, 4], actor: BOB, bodies: ['later'] }
      ])
      assert.throws(() => opLog.checkDelta(state, twoTimes, at(BOB, 2_000, 3)), { name: 'InvalidDeltaError' })
    })

    it('refuses an event whose indices are not 0..n-1', () => {
      const holey = new OpLogState()
      holey.add({ hlc: [2_000, 3], actor: BOB, index: 1, body: 'no index 0' })
      assert.throws(() => opLog.checkDelta(state, holey, at(BOB, 2_000, 3)), {
        name: 'InvalidDeltaError',
        message: /has no entry at index 0 of 2/
      })
    })
  })

  it('an author that signs two bodies under one identity: every replica keeps the greater one, and consumers see a new arrival array', () => {
    const s = opLog.empty()
    const x = opLog.append(s, at(ALICE, 1_000), ['x'])
    const y = opLog.append(s, at(ALICE, 1_000), ['y'])
    const other = opLog.append(s, at(BOB, 999), ['first'])
    const xy = opLog.empty()
    opLog.merge(xy, other)
    opLog.merge(xy, x)
    const arrival = xy.arrival
    const sorted = opLog.value(xy)
    // not refused: which one a replica saw first must not decide what it keeps
    opLog.checkDelta(xy, y, at(ALICE, 1_000))
    opLog.merge(xy, y)
    const yx = opLog.join(opLog.join(y, x), other)
    assert.ok(opLog.equals(xy, yx))
    assert.deepEqual(
      opLog.value(xy).map(e => e.body),
      ['first', 'y']
    )
    assert.deepEqual(
      opLog.value(yx).map(e => e.body),
      ['first', 'y']
    )
    assert.notEqual(xy.arrival, arrival, 'a replaced entry starts a new arrival array')
    assert.deepEqual(
      arrival.map(e => e.body),
      ['first', 'x'],
      'the old one is left as it was'
    )
    assert.deepEqual(
      sorted.map(e => e.body),
      ['first', 'x'],
      'so is an order handed out before'
    )
    assert.equal(xy.size, 2)
  })
})
