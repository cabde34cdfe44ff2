import { strict as assert } from 'node:assert'
import * as Y from 'yjs'
import { text, textClient, textSession } from '../../src/crdt/text.ts'
import { ALICE, at, BOB, viaBytes } from './fixtures.ts'

const invalid = { name: 'InvalidDeltaError' }

describe('crdt/text', () => {
  it('converges when two replicas insert at the same place concurrently', () => {
    const a = text.empty()
    const b = text.empty()
    text.merge(b, text.insert(a, at(ALICE), 0, 'hello world'))
    const fromA = [
      text.insert(a, at(ALICE), 5, ', dear'),
      text.insert(a, at(ALICE), 11, '!'), // right after ', dear': depends on it
      text.remove(a, at(ALICE), 0, 1)
    ]
    const fromB = [text.insert(b, at(BOB), 5, ' there'), text.insert(b, at(BOB), 0, 'H')]
    for (const u of fromB) text.merge(a, u)
    // newest first: the '!' waits in Yjs until the edit it depends on arrives
    text.merge(b, fromA[2])
    text.merge(b, fromA[1])
    assert.ok(!text.value(b).includes('!'))
    text.merge(b, fromA[0])
    assert.equal(text.value(a), text.value(b))
    assert.ok(text.equals(a, b))
    assert.match(text.value(a), /^Hello(, dear! there| there, dear!) world$/)
  })

  it('edits the doc it is given and returns only that edit, which merges idempotently', () => {
    const doc = text.empty()
    text.insert(doc, at(ALICE), 0, 'x'.repeat(1_000))
    const edit = text.insert(doc, at(ALICE), 1_000, '!')
    assert.equal(text.value(doc), `${'x'.repeat(1_000)}!`)
    assert.ok(edit.update.length < 40, `an edit of one character is ${edit.update.length} bytes`)
    const before = text.clone(doc)
    text.merge(doc, edit)
    text.merge(doc, edit)
    assert.ok(text.equals(doc, before))
    // the edit alone is pending on a doc without its predecessor, and applies once it arrives
    const other = text.empty()
    text.merge(other, edit)
    assert.equal(text.value(other), '')
    text.merge(other, text.toDelta(before))
    assert.equal(text.value(other), text.value(doc))
  })

  it('removes ranges and refuses ranges outside the text', () => {
    const doc = text.empty()
    text.insert(doc, at(ALICE), 0, 'abcdef')
    const removal = text.remove(doc, at(ALICE), 1, 3)
    assert.equal(text.value(doc), 'aef')
    assert.ok(removal.update.length > 2)
    assert.deepEqual(text.remove(doc, at(ALICE), 0, 0).update, Uint8Array.of(0, 0))
    assert.throws(() => text.insert(doc, at(ALICE), 4, 'x'), { name: 'RangeError' })
    assert.throws(() => text.insert(doc, at(ALICE), -1, 'x'), { name: 'RangeError' })
    assert.throws(() => text.remove(doc, at(ALICE), 2, 2), { name: 'RangeError' })
    assert.throws(() => text.insert(doc, at(ALICE), 0, 5 as unknown as string), { name: 'InvalidValueError' })
  })

  it('compares content and history, not bytes', () => {
    const a = text.empty()
    const b = text.empty()
    const one = text.insert(a, at(ALICE), 0, 'ab')
    const two = text.remove(a, at(ALICE), 0, 1)
    text.merge(b, two)
    text.merge(b, one)
    assert.ok(text.equals(a, b))
    assert.ok(text.equals(text.join(a, b), a))
    const c = text.clone(a)
    text.insert(c, at(BOB), 0, 'b')
    text.remove(c, at(BOB), 1, 1)
    assert.equal(text.value(c), text.value(a))
    assert.ok(!text.equals(c, a), 'same text, different history')
  })

  it('decodes its own states and deltas and refuses garbage, oversized input and other shared types', () => {
    const doc = text.empty()
    const delta = text.insert(doc, at(ALICE), 0, 'hi')
    assert.ok(text.equals(text.decodeState(text.encodeState(doc)), doc))
    assert.deepEqual(text.encodeDelta(delta), { session: textSession(doc), update: delta.update })
    assert.deepEqual(text.decodeDelta(viaBytes(text.encodeDelta(delta))), delta)
    // bare update bytes: the form without a session (a whole state, or a delta written before sessions)
    assert.deepEqual(text.decodeDelta(delta.update), { update: delta.update })
    assert.deepEqual(text.encodeDelta(text.toDelta(doc)), Y.encodeStateAsUpdate(doc))
    for (const bad of [
      Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9),
      new Uint8Array(20).fill(7),
      Uint8Array.of(255, 255, 255, 255, 255, 255, 255, 255, 255, 1),
      new Uint8Array(0),
      'hi',
      [1, 2],
      null
    ]) {
      assert.throws(() => text.decodeDelta(bad), invalid, String(bad))
      assert.throws(() => text.decodeDelta({ session: delta.session, update: bad }), invalid, String(bad))
      assert.throws(() => text.decodeState(bad), invalid, String(bad))
    }
    assert.throws(() => text.decodeDelta(delta.update, { maxUpdateBytes: delta.update.length - 1 }), invalid)
    assert.throws(
      () => text.decodeDelta(text.encodeDelta(delta), { maxUpdateBytes: delta.update.length - 1 }),
      /text delta\.update is larger than/
    )
    const foreign = new Y.Doc()
    foreign.getMap('settings').set('k', 1)
    assert.throws(() => text.decodeDelta(Y.encodeStateAsUpdate(foreign)), invalid)
    assert.throws(() => text.decodeDelta({ session: delta.session, update: Y.encodeStateAsUpdate(foreign) }), invalid)
  })

  it('refuses a delta whose session is not 16 bytes or whose map has other fields', () => {
    const delta = text.insert(text.empty(), at(ALICE), 0, 'hi')
    for (const session of [new Uint8Array(15), new Uint8Array(17), new Uint8Array(0), 'x'.repeat(16), null]) {
      assert.throws(() => text.decodeDelta({ session, update: delta.update }), /text delta\.session is not 16 bytes/)
    }
    assert.throws(() => text.decodeDelta({ session: delta.session }), /must have exactly the fields session, update/)
    assert.throws(
      () => text.decodeDelta({ session: delta.session, update: delta.update, clock: 0 }),
      /must have exactly the fields/
    )
  })

  it("writes each doc object under its own session: a copy of a state never reuses its original's item ids", () => {
    const original = text.empty()
    text.insert(original, at(ALICE), 0, 'shared ')
    // the same author, now in two places: a copied data directory, a restored backup, a restart
    const copy = text.decodeState(text.encodeState(original))
    const here = text.insert(original, at(ALICE), 7, 'here')
    const there = text.insert(copy, at(ALICE), 7, 'there')
    assert.notDeepEqual(here.session, there.session)
    assert.notEqual(original.clientID, copy.clientID)
    assert.equal(original.clientID, textClient(ALICE, textSession(original)))
    // successive edits of one doc stay in its session
    assert.deepEqual(text.insert(original, at(ALICE), 0, '>').session, here.session)
    // both edits survive wherever they meet, in either order
    const one = text.clone(original)
    text.merge(one, there)
    const two = text.clone(copy)
    text.merge(two, text.toDelta(original))
    assert.ok(text.equals(one, two))
    assert.match(text.value(one), /^>shared (herethere|therehere)$/)
  })
})
