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
import { textClient, textSession } from '../../src/crdt/text.ts'
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
    assert.equal(doc.clientID, textClient(ALICE, mine.session))
    assert.ok(textClient(ALICE, mine.session) < 2 ** 52 && textClient(ALICE) !== textClient(BOB))
    // the session is part of the claim: the same items under another session are not the author's
    const otherSession = { session: new Uint8Array(16).fill(9), update: mine.update }
    refused(() => text.checkDelta(text.empty(), otherSession, at(ALICE)), /creates items of Yjs client/)
    // nor are they BOB's, in the same session
    refused(() => text.checkDelta(text.empty(), mine, at(BOB)), /creates items of Yjs client/)
    // without a session (the form written before sessions) items are under 52 bits of sha256(author)
    const legacy = new Y.Doc()
    legacy.clientID = textClient(ALICE)
    legacy.getText('text').insert(0, 'old')
    text.checkDelta(text.empty(), { update: Y.encodeStateAsUpdate(legacy) }, at(ALICE))
    refused(() => text.checkDelta(text.empty(), { update: mine.update }, at(ALICE)), /creates items of Yjs client/)
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
    // (BOB's session shows in his events, so his client is known)
    const bobs = text.empty()
    const hidden = text.empty()
    hidden.clientID = textClient(BOB, textSession(bobs))
    hidden.getText('text').insert(0, 'x'.repeat(1000))
    const forged = text.remove(hidden, at(ALICE), 0, 1000)
    const receiver = text.empty()
    text.decodeDelta(forged)
    refused(
      () => text.checkDelta(receiver, forged, at(ALICE)),
      /deletes items \d+:0-999, which its author had not seen/
    )
    // what the check prevents: merged, BOB's next text arrives already deleted
    text.merge(receiver, forged)
    text.merge(receiver, text.insert(bobs, at(BOB), 0, 'the plan'))
    assert.equal(text.value(receiver), '')
    // an author may delete its own items of the same update
    const doc = text.empty()
    const own = text.insert(doc, at(ALICE), 0, 'abc')
    const both = {
      session: own.session,
      update: Y.mergeUpdates([own.update, text.remove(doc, at(ALICE), 0, 2).update])
    }
    text.checkDelta(text.empty(), both, at(ALICE))
  })

  it('text: an item whose id the receiver already holds is refused, whatever it contains', () => {
    // one session's next ids, written twice with different text: what a key writing from two places
    // under one client made before sessions, and what only a writer that forges its session can make
    const origin = text.empty()
    const first = text.insert(origin, at(ALICE), 0, 'abc')
    const fork = text.clone(origin)
    fork.clientID = textClient(ALICE, first.session)
    const mine = text.insert(origin, at(ALICE), 3, ' mine')
    let reused: Uint8Array | undefined
    fork.on('update', (u: Uint8Array) => (reused = u))
    fork.getText('text').insert(3, ' them')
    assert.ok(reused != null)
    const theirs = { session: first.session, update: reused }

    const receiver = text.empty()
    text.merge(receiver, first)
    // a replica that has not seen either accepts either: the ids are new there
    text.checkDelta(receiver, mine, at(ALICE))
    text.checkDelta(receiver, theirs, at(ALICE))
    text.merge(receiver, mine)
    refused(() => text.checkDelta(receiver, theirs, at(ALICE)), /reuses the item id \d+:3, which this replica holds/)
    // an exact copy of held items is refused too: the log applies each event once
    refused(() => text.checkDelta(receiver, mine, at(ALICE)), /reuses the item id \d+:3,/)
    refused(() => text.checkDelta(receiver, first, at(ALICE)), /reuses the item id \d+:0,/)
    // what the check prevents: merged, the reused ids are skipped, so which text a replica keeps
    // depends on which came first
    const mineFirst = text.clone(receiver)
    text.merge(mineFirst, theirs)
    const theirsFirst = text.empty()
    for (const d of [first, theirs, mine]) text.merge(theirsFirst, d)
    assert.deepEqual([text.value(mineFirst), text.value(theirsFirst)], ['abc mine', 'abc them'])
    // deleting held items is still an ordinary edit, and the session's next ids are still free
    text.checkDelta(receiver, text.remove(text.clone(receiver), at(BOB), 0, 8), at(BOB))
    text.checkDelta(receiver, text.insert(origin, at(ALICE), 8, '!'), at(ALICE))
  })

  it('text: ids waiting in Yjs for a missing predecessor count as held', () => {
    const origin = text.empty()
    const first = text.insert(origin, at(ALICE), 0, 'ab')
    const second = text.insert(origin, at(ALICE), 2, 'cd')
    const receiver = text.empty()
    text.merge(receiver, second) // pending: its items follow 'ab', which has not arrived
    assert.equal(text.value(receiver), '')
    const fork = new Y.Doc()
    Y.applyUpdate(fork, first.update)
    fork.clientID = textClient(ALICE, first.session)
    let reused: Uint8Array | undefined
    fork.on('update', (u: Uint8Array) => (reused = u))
    fork.getText('text').insert(2, 'XY')
    assert.ok(reused != null)
    refused(
      () => text.checkDelta(receiver, { session: first.session, update: reused as Uint8Array }, at(ALICE)),
      /reuses the item id \d+:2,/
    )
    text.checkDelta(receiver, first, at(ALICE))
  })

  it('text: bytes Yjs decodes but cannot apply are refused when decoded, before any state sees them', () => {
    // found by fuzzing a valid update: Y.decodeUpdate reads it, Y.applyUpdate throws
    const bytes = Buffer.from(POISON, 'hex')
    assert.doesNotThrow(() => Y.decodeUpdate(bytes))
    assert.throws(() => text.merge(text.empty(), { update: bytes }), TypeError)
    refused(() => text.decodeDelta(new Uint8Array(bytes)), /is not a Yjs update/)
  })
})
