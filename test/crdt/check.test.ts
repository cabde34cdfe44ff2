import { strict as assert } from 'node:assert'
import * as Y from 'yjs'
import { VectorClock } from '../../src/clock/vector.ts'
import {
  Causal,
  CausalContext,
  DotMap,
  gCounter,
  lwwRegister,
  mvRegister,
  orMap,
  orSet,
  pnCounter,
  text
} from '../../src/crdt/index.ts'
import { textClient } from '../../src/crdt/text.ts'
import { ALICE, at, BOB } from './fixtures.ts'
import type { SetStore } from '../../src/crdt/index.ts'

const POISON =
  '0106a6ebd3c6bbd6c705000401047465787402686581a6ebd3c6bbd6c705010181a6ebd3c6bbd6c705300284a6ebd3c6bbd6c705040620776f' +
  '726c6446a6ebd3b7bbd6c7050001620474727565c6a6ebd3c6bbd6c70502a6ebd3c6bbd6c705030162046e756c6c01a6ebd3c6bbd6c705010203'

/**
 * checkDelta: a delta in an event signed by ALICE may create only ALICE's dots, entries, Yjs items
 * and timestamps, and may claim to have seen only what the receiver holds. (Honest deltas passing
 * it is a law in laws.test.ts, for every type and random histories.)
 */
describe('CRDT delta checks (what an author may claim)', () => {
  const refused = (check: () => void, message: RegExp): void => {
    assert.throws(check, (err: Error) => err.name === 'InvalidDeltaError' && message.test(err.message))
  }

  it('counters: an author changes only its own total', () => {
    const state = gCounter.empty()
    gCounter.checkDelta(state, gCounter.increment(state, at(ALICE), 2), at(ALICE))
    refused(() => gCounter.checkDelta(state, gCounter.increment(state, at(BOB), 2), at(ALICE)), /total of z6MkBob/)
    const pn = pnCounter.empty()
    pnCounter.checkDelta(pn, pnCounter.decrement(pn, at(ALICE), 1), at(ALICE))
    refused(() => pnCounter.checkDelta(pn, pnCounter.decrement(pn, at(BOB), 1), at(ALICE)), /counter\.n .*z6MkBob/)
  })

  it("lww-register: the write is the author's, stamped with the event's time", () => {
    const state = lwwRegister.empty()
    lwwRegister.checkDelta(state, lwwRegister.set(state, at(ALICE, 1_000), 'on'), at(ALICE, 1_000))
    refused(() => lwwRegister.checkDelta(state, lwwRegister.set(state, at(BOB), 'on'), at(ALICE)), /not the author/)
    // dated ahead of its event, a write would win over every later one until then
    const ahead = lwwRegister.set(state, at(ALICE, 9_000_000_000_000), 'forever')
    refused(() => lwwRegister.checkDelta(state, ahead, at(ALICE, 1_000)), /not the event's timestamp 1000\.0/)
  })

  it("or-set: a context claiming another replica's future dots is refused (it would suppress that replica's adds)", () => {
    const receiver = orSet.empty()
    orSet.merge(receiver, orSet.add(receiver, at(BOB), 'x'))
    // an honest remove by ALICE covers exactly the dot it saw
    orSet.checkDelta(receiver, orSet.remove(receiver, at(ALICE), 'x'), at(ALICE))

    const forged = new Causal<SetStore>(new DotMap(), new CausalContext(new VectorClock([[BOB, 1_000]])))
    refused(
      () => orSet.checkDelta(receiver, forged, at(ALICE)),
      /claims the dot z6MkBob:2, which its author had not seen/
    )

    // what the check prevents: once merged, BOB's next add is invisible at this replica
    const victim = orSet.clone(receiver)
    orSet.merge(victim, forged)
    const bobAdds = orSet.add(receiver, at(BOB), 'y')
    orSet.merge(victim, bobAdds)
    orSet.merge(receiver, bobAdds)
    assert.deepEqual(orSet.value(victim), [])
    assert.deepEqual(orSet.value(receiver), ['x', 'y'])
  })

  it("dot stores: a delta holds only fresh dots of its own author's", () => {
    const receiver = orSet.empty()
    const alicesFirst = orSet.add(receiver, at(ALICE), 'a')
    orSet.merge(receiver, alicesFirst)
    // BOB's dot, made by ALICE: it would take the id of BOB's next add
    refused(() => orSet.checkDelta(orSet.empty(), orSet.add(orSet.empty(), at(BOB), 'b'), at(ALICE)), /cannot make/)
    // ALICE reusing her own dot: not refused (that would depend on arrival order); merge settles it
    const reused = orSet.add(orSet.empty(), at(ALICE), 'z')
    orSet.checkDelta(receiver, reused, at(ALICE))
    const [first, second] = [orSet.clone(receiver), orSet.join(orSet.empty(), reused)]
    orSet.merge(first, reused)
    orSet.merge(second, alicesFirst)
    assert.ok(orSet.equals(first, second))
    const mv = mvRegister.empty()
    refused(() => mvRegister.checkDelta(mv, mvRegister.set(mv, at(BOB), 1), at(ALICE)), /z6MkBob:1/)
  })

  it("or-map: last-writer-wins fields carry the event's timestamp; set elements are not mistaken for fields", () => {
    const state = orMap.empty()
    orMap.checkDelta(state, orMap.set(state, at(ALICE, 1_000), ['a', 'b'], 1), at(ALICE, 1_000))
    refused(
      () => orMap.checkDelta(state, orMap.set(state, at(ALICE, 5_000), ['a', 'b'], 1), at(ALICE, 1_000)),
      /map field map:a\/lww:b is 5000\.0/
    )
    // an element that looks like a field key is still an element
    orMap.checkDelta(state, orMap.add(state, at(ALICE, 1_000), ['tags'], 'lww:x'), at(ALICE, 1_000))
    refused(() => orMap.checkDelta(state, orMap.increment(state, at(BOB), ['n'], 1), at(ALICE)), /cannot make/)
  })

  it("text: every item an update creates is under the author's Yjs client", () => {
    const doc = text.empty()
    const mine = text.insert(doc, at(ALICE), 0, 'hi')
    text.checkDelta(text.empty(), mine, at(ALICE))
    assert.equal(doc.clientID, textClient(ALICE))
    assert.ok(textClient(ALICE) < 2 ** 52 && textClient(ALICE) !== textClient(BOB))
    const theirs = text.insert(text.empty(), at(BOB), 0, 'yo')
    refused(() => text.checkDelta(text.empty(), theirs, at(ALICE)), /creates items of Yjs client/)
    // deleting someone else's text is an ordinary edit
    const shared = text.empty()
    text.merge(shared, theirs)
    text.checkDelta(shared, text.remove(shared, at(ALICE), 0, 1), at(ALICE))
  })

  it("text: a deletion of another writer's items not yet seen is refused (it would delete them as they come)", () => {
    // ALICE makes 1000 characters under BOB's client id in private and deletes them: what she sends
    // is a bare delete set over BOB's next 1000 items
    const hidden = text.empty()
    text.insert(hidden, at(BOB), 0, 'x'.repeat(1000))
    const forged = text.remove(hidden, at(ALICE), 0, 1000)
    const receiver = text.empty()
    text.decodeDelta(forged)
    refused(
      () => text.checkDelta(receiver, forged, at(ALICE)),
      /deletes items \d+:0-999, which its author had not seen/
    )
    // what the check prevents: merged, BOB's next text arrives already deleted
    text.merge(receiver, forged)
    text.merge(receiver, text.insert(text.empty(), at(BOB), 0, 'the plan'))
    assert.equal(text.value(receiver), '')
    // an author may delete its own items of the same update
    const doc = text.empty()
    const own = text.insert(doc, at(ALICE), 0, 'abc')
    const both = Y.mergeUpdates([own, text.remove(doc, at(ALICE), 0, 2)])
    text.checkDelta(text.empty(), both, at(ALICE))
  })

  it('text: bytes Yjs decodes but cannot apply are refused when decoded, before any state sees them', () => {
    // found by fuzzing a valid update: Y.decodeUpdate reads it, Y.applyUpdate throws
    const bytes = Buffer.from(POISON, 'hex')
    assert.doesNotThrow(() => Y.decodeUpdate(bytes))
    assert.throws(() => text.merge(text.empty(), bytes), TypeError)
    refused(() => text.decodeDelta(new Uint8Array(bytes)), /is not a Yjs update/)
  })
})
