import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { base64url } from 'multiformats/bases/base64'
import { compareHlc } from '../../src/clock/hlc.ts'
import { EVENT_SOURCES, EventJournal } from '../../src/work/events.ts'
import type { HlcTimestamp } from '../../src/clock/hlc.ts'
import type { EventInput, EventJournalInit, EventSource, JournalEvent } from '../../src/work/events.ts'

/** The one order, written out independently of the journal: hlc, source, subject, type, id. */
function expectedOrder(a: EventInput, b: EventInput): number {
  const byHlc = compareHlc(a.hlc, b.hlc)
  if (byHlc !== 0) return byHlc
  for (const k of ['source', 'subject', 'type', 'id'] as const) {
    const x = a[k] ?? ''
    const y = b[k] ?? ''
    if (x !== y) return x < y ? -1 : 1
  }
  return 0
}

/** What identifies an event in these tests: every input has a distinct id. */
const ids = (events: Array<{ id?: string }>): string[] => events.map(e => e.id ?? '?')

const ev = (wall: number, logical: number, id: string, more: Partial<EventInput> = {}): EventInput => ({
  hlc: [wall, logical],
  source: 'board',
  type: 'claim',
  subject: 'b/t1',
  data: { id },
  id,
  ...more
})

/** A journal whose clock the test moves: `clock.t` is now. */
function journalAt(init: EventJournalInit = {}): { journal: EventJournal; clock: { t: number } } {
  const clock = { t: 0 }
  return { journal: new EventJournal({ now: () => clock.t, ...init }), clock }
}

/** Everything the feed keeps, read page by page from its start. */
function feedOf(journal: EventJournal): JournalEvent[] {
  const out: JournalEvent[] = []
  let page = journal.since(undefined, { limit: 7 })
  for (let n = 0; n < 10_000; n++) {
    out.push(...page.events)
    if (!page.more) break
    page = journal.since(undefined, { limit: 7, after: page.cursor })
  }
  return out
}

/** Inputs with few distinct hlcs, sources, subjects and types, so ties and late arrivals are common. */
const arbitraryEvents = (max: number, walls = 6): fc.Arbitrary<EventInput[]> =>
  fc
    .array(
      fc.record({
        wall: fc.integer({ min: 1, max: walls }),
        logical: fc.integer({ min: 0, max: 2 }),
        source: fc.constantFrom(...EVENT_SOURCES),
        subject: fc.constantFrom('a', 'b', 'c/d'),
        type: fc.constantFrom('claim', 'complete', 'member:dead')
      }),
      { minLength: 0, maxLength: max }
    )
    .map(list =>
      list.map((e, i) => ({
        hlc: [e.wall, e.logical] as HlcTimestamp,
        source: e.source as EventSource,
        type: e.type,
        subject: e.subject,
        data: i,
        id: `e${i}`
      }))
    )

/** Entries with the delay after their stamp at which each arrives. */
const arbitraryArrivals = (max: number, maxDelay: number): fc.Arbitrary<Array<{ e: EventInput; at: number }>> =>
  arbitraryEvents(max, 20).chain(list =>
    fc
      .array(fc.integer({ min: 0, max: maxDelay }), { minLength: list.length, maxLength: list.length })
      .map(delays => list.map((e, i) => ({ e, at: e.hlc[0] + delays[i] })))
  )

/**
 * Plays arrivals on a journal with an injected clock, one ms at a time: at each ms what arrives
 * then is recorded, then the journal settles what is due (as its timer would at that ms).
 */
function play(journal: EventJournal, clock: { t: number }, arrivals: Array<{ e: EventInput; at: number }>): void {
  const byTime = [...arrivals].sort((x, y) => x.at - y.at)
  const end = Math.max(0, ...arrivals.map(a => a.at)) + journal.settle + 2
  let next = 0
  for (clock.t = 0; clock.t <= end; clock.t++) {
    while (next < byTime.length && byTime[next].at === clock.t) journal.record(byTime[next++].e)
    journal.settleDue()
  }
  assert.equal(journal.pendingSize, 0, 'everything has settled by the end')
}

describe('event journal: a feed in HLC order, settled, resumable by cursor, bounded', function () {
  it('with settle 0 entries join as they arrive; one below an entry already joined is marked late, not dropped', () => {
    const journal = new EventJournal({ settle: 0 })
    journal.record(ev(5, 0, 'five'))
    journal.record(ev(9, 0, 'nine'))
    journal.record(ev(1, 0, 'one'))
    journal.record(ev(9, 1, 'nine-1'))
    // at the same HLC, out of the tie order: still in HLC order, not late
    journal.record(ev(9, 1, 'nine-1-agent', { source: 'agent' }))
    const feed = feedOf(journal)
    assert.deepEqual(ids(feed), ['five', 'nine', 'one', 'nine-1', 'nine-1-agent'])
    assert.deepEqual(
      feed.map(e => e.late === true),
      [false, false, true, false, false]
    )
    assert.deepEqual(
      feed.map(e => e.index),
      [0, 1, 2, 3, 4]
    )
    assert.deepEqual(journal.oldest(), [5, 0])
    assert.deepEqual(journal.newest(), [9, 1])
    assert.equal(journal.pendingSize, 0)
  })

  it('entries recorded out of order within the settle delay join in HLC order, ties by source, subject, type', () => {
    const { journal, clock } = journalAt({ settle: 100 })
    clock.t = 10
    journal.record(ev(5, 0, 'late-5'))
    journal.record(ev(9, 0, 'x9'))
    journal.record(ev(1, 0, 'first'))
    journal.record(ev(5, 0, 'swarm-5', { source: 'swarm' }))
    journal.record(ev(5, 0, 'agent-5', { source: 'agent' }))
    journal.record(ev(5, 0, 'board-5-a', { subject: 'a/x' }))
    journal.record(ev(5, 0, 'board-5-b-cancel', { type: 'cancel' }))
    journal.record(ev(5, 1, 'logical-1'))
    assert.equal(journal.size, 0, 'nothing has settled yet')
    assert.equal(journal.pendingSize, 8)
    assert.deepEqual(journal.since().events, [])
    // at 1 + 100 the entry stamped 1 has settled, alone
    clock.t = 101
    journal.settleDue()
    assert.deepEqual(ids(feedOf(journal)), ['first'])
    clock.t = 200
    journal.settleDue()
    assert.deepEqual(ids(feedOf(journal)), [
      'first',
      'agent-5',
      'board-5-a',
      'board-5-b-cancel',
      'late-5',
      'swarm-5',
      'logical-1',
      'x9'
    ])
    assert.ok(feedOf(journal).every(e => e.late === undefined))
    journal.close()
  })

  it('an entry is held until settle ms after its HLC time, or after its arrival if it is stamped ahead of this clock', () => {
    const { journal, clock } = journalAt({ settle: 100 })
    clock.t = 1000
    journal.record(ev(950, 0, 'stamped-50-ago'))
    journal.record(ev(5000, 0, 'stamped-ahead'))
    clock.t = 1049
    journal.settleDue()
    assert.equal(journal.size, 0)
    clock.t = 1050
    journal.settleDue()
    assert.deepEqual(ids(feedOf(journal)), ['stamped-50-ago'])
    clock.t = 1100
    journal.settleDue()
    assert.deepEqual(ids(feedOf(journal)), ['stamped-50-ago', 'stamped-ahead'])
    // an entry that arrives after its time has come joins at once; below what has joined it is late
    journal.record(ev(900, 0, 'long-delayed'))
    assert.equal(journal.pendingSize, 0)
    assert.deepEqual(ids(feedOf(journal)), ['stamped-50-ago', 'stamped-ahead', 'long-delayed'])
    assert.equal(feedOf(journal)[2].late, true)
    journal.close()
  })

  it('entries arriving in one turn at their very settle time join together in HLC order (found by fast-check)', () => {
    const { journal, clock } = journalAt({ settle: 15 })
    clock.t = 34
    journal.record(ev(19, 2, 'later'))
    journal.record(ev(19, 1, 'earlier'))
    journal.settleDue() // the timer's turn
    assert.deepEqual(ids(feedOf(journal)), ['earlier', 'later'])
    assert.ok(feedOf(journal).every(e => e.late === undefined))
    journal.close()
  })

  it('an entry that settles takes every entry pending before it along, in order', () => {
    const { journal, clock } = journalAt({ settle: 100 })
    clock.t = 0
    journal.record(ev(3000, 0, 'ahead')) // stamped ahead of this clock: due at its arrival + 100
    journal.record(ev(4000, 0, 'further-ahead')) // likewise
    clock.t = 40
    journal.record(ev(30, 0, 'old')) // due at 30 + 100
    clock.t = 99
    journal.settleDue()
    assert.equal(journal.size, 0)
    clock.t = 100
    journal.settleDue()
    assert.deepEqual(ids(feedOf(journal)), ['old', 'ahead', 'further-ahead'])
    assert.equal(journal.pendingSize, 0)
    journal.close()
  })

  it('any arrival order within the settle delay gives the feed in HLC order, nothing late (fast-check)', () => {
    fc.assert(
      fc.property(arbitraryArrivals(30, 15), fc.integer({ min: 0, max: 10 }), (arrivals, extra) => {
        const { journal, clock } = journalAt({ settle: 15 + extra })
        play(journal, clock, arrivals)
        const feed = feedOf(journal)
        assert.deepEqual(ids(feed), ids(arrivals.map(a => a.e).sort(expectedOrder)))
        assert.ok(feed.every(e => e.late === undefined))
        journal.close()
      }),
      { numRuns: 200 }
    )
  })

  it('whatever the delays, every entry joins once, and exactly those with an HLC below one before them are marked late (fast-check)', () => {
    fc.assert(
      fc.property(arbitraryArrivals(30, 40), fc.integer({ min: 0, max: 20 }), (arrivals, settle) => {
        const { journal, clock } = journalAt({ settle })
        play(journal, clock, arrivals)
        const feed = feedOf(journal)
        assert.deepEqual([...ids(feed)].sort(), ids(arrivals.map(a => a.e)).sort())
        // late means out of HLC order: below the greatest HLC before it; the others never go down
        let top: HlcTimestamp | undefined
        for (const e of feed) {
          const below = top != null && compareHlc(e.hlc, top) < 0
          assert.equal(e.late === true, below)
          if (!below) top = e.hlc
        }
        journal.close()
      }),
      { numRuns: 200 }
    )
  })

  it('with settle 0 the feed holds every entry once, and a reader resuming from its cursors at random points sees each once (fast-check)', () => {
    fc.assert(
      fc.property(
        arbitraryEvents(40),
        fc.array(fc.record({ at: fc.nat(40), limit: fc.integer({ min: 1, max: 5 }), byEvent: fc.boolean() }), {
          maxLength: 20
        }),
        (list, reads) => {
          const journal = new EventJournal({ settle: 0 })
          const seen: JournalEvent[] = []
          let cursor: string | undefined
          const read = (limit: number, byEvent: boolean): boolean => {
            const page = journal.since(undefined, { limit, ...(cursor != null ? { after: cursor } : {}) })
            seen.push(...page.events)
            // resume from the page's cursor, or from the cursor of the last event read (an SSE id)
            const last = page.events[page.events.length - 1]
            cursor = byEvent && last != null ? journal.cursorOf(last) : (page.cursor ?? cursor)
            return page.more
          }
          for (let i = 0; i <= list.length; i++) {
            for (const r of reads) if (r.at === i) read(r.limit, r.byEvent)
            if (i < list.length) journal.record(list[i])
          }
          for (let n = 0; n < 100 && read(3, false); n++);
          assert.deepEqual(ids(seen), ids(list), 'each entry once, in the order it joined (its arrival)')
          assert.deepEqual(ids(feedOf(journal)), ids(list))
        }
      ),
      { numRuns: 300 }
    )
  })

  it('since(hlc) is the feed filtered to HLCs after hlc, also page by page (fast-check)', () => {
    fc.assert(
      fc.property(
        arbitraryEvents(40),
        fc.integer({ min: 0, max: 7 }),
        fc.nat(2),
        fc.integer({ min: 1, max: 6 }),
        (list, wall, logical, limit) => {
          const journal = new EventJournal({ settle: 0 })
          for (const e of list) journal.record(e)
          const at: HlcTimestamp = [wall, logical]
          const expected = ids(feedOf(journal).filter(e => compareHlc(e.hlc, at) > 0))
          assert.deepEqual(ids(journal.since(at, { limit: 1000 }).events), expected)
          const first = journal.since(at, { limit })
          assert.deepEqual(ids(first.events), expected.slice(0, limit))
          // and a subscription from the hlc replays the same
          const got: JournalEvent[] = []
          journal.subscribe(at, e => got.push(e))()
          assert.deepEqual(ids(got), expected)
        }
      ),
      { numRuns: 300 }
    )
  })

  it('since(hlc) after late entries: starts at the first in-order entry past it and leaves out late ones at or before it', () => {
    const journal = new EventJournal({ settle: 0 })
    for (const [w, id] of [
      [10, 'a'],
      [20, 'b'],
      [5, 'late-5'],
      [30, 'c'],
      [25, 'late-25'],
      [15, 'late-15'],
      [40, 'd']
    ] as const)
      journal.record(ev(w, 0, id))
    assert.deepEqual(ids(journal.since([20, 0]).events), ['c', 'late-25', 'd'])
    assert.deepEqual(ids(journal.since([9, 0]).events), ['a', 'b', 'c', 'late-25', 'late-15', 'd'])
    assert.deepEqual(ids(journal.since([14, 0]).events), ['b', 'c', 'late-25', 'late-15', 'd'])
    assert.deepEqual(ids(journal.since([40, 0]).events), [])
    // a cursor resumes by place: everything that joined after it, late ones included
    const page = journal.since([20, 0], { limit: 1 })
    assert.deepEqual(ids(page.events), ['c'])
    assert.deepEqual(ids(journal.since(undefined, { after: page.cursor }).events), ['late-25', 'late-15', 'd'])
  })

  it('an id already kept or pending is not kept again', () => {
    const journal = new EventJournal({ settle: 0 })
    assert.equal(journal.record(ev(3, 0, 'same')), true)
    assert.equal(journal.record(ev(4, 0, 'same', { data: 'other' })), false)
    assert.equal(journal.size, 1)
    // entries without an id are distinct entries
    journal.record({ hlc: [5, 0], source: 'fleet', type: 'agent:move', subject: 'z', data: 1 })
    journal.record({ hlc: [5, 0], source: 'fleet', type: 'agent:move', subject: 'z', data: 2 })
    assert.deepEqual(
      journal.since([4, 0]).events.map(e => e.data),
      [1, 2]
    )
    const { journal: held, clock } = journalAt({ settle: 50 })
    assert.equal(held.record(ev(3, 0, 'p')), true)
    assert.equal(held.record(ev(3, 0, 'p')), false)
    clock.t = 100
    held.settleDue()
    assert.equal(held.record(ev(3, 0, 'p')), false)
    assert.equal(held.size, 1)
    held.close()
  })

  it('pages continue from their cursor through entries that share an hlc; an empty page keeps its place', () => {
    const journal = new EventJournal({ settle: 0 })
    journal.record(ev(9, 5, 'before'))
    for (let i = 0; i < 7; i++) journal.record(ev(10, 0, `same-${i}`, { subject: `s${i}` }))
    journal.record(ev(11, 0, 'after'))
    assert.deepEqual(ids(journal.since([10, 0]).events), ['after'])
    assert.equal(journal.since([9, 5]).events.length, 8)
    const seen: string[] = []
    let page = journal.since([9, 5], { limit: 2 })
    let pages = 0
    while (pages++ < 20) {
      seen.push(...ids(page.events))
      if (!page.more) break
      page = journal.since(undefined, { limit: 2, after: page.cursor })
    }
    assert.deepEqual(seen, [...Array.from({ length: 7 }, (_, i) => `same-${i}`), 'after'])
    const end = journal.since(undefined, { after: page.cursor })
    assert.deepEqual(end.events, [])
    assert.equal(end.cursor, page.cursor)
    journal.record(ev(12, 0, 'newer'))
    assert.deepEqual(ids(journal.since(undefined, { after: end.cursor }).events), ['newer'])
    // a read from an hlc past everything answers a cursor at the end, which then reads what joins
    const ahead = journal.since([50, 0])
    assert.deepEqual(ahead.events, [])
    journal.record(ev(60, 0, 'sixty'))
    assert.deepEqual(ids(journal.since(undefined, { after: ahead.cursor }).events), ['sixty'])
    // an empty journal read from its start has no cursor
    assert.equal(new EventJournal().since().cursor, undefined)
  })

  it('refuses malformed entries, queries, options and cursors by name', () => {
    const journal = new EventJournal({ settle: 0 })
    assert.throws(() => journal.record({ ...ev(1, 0, 'x'), source: 'mail' as EventSource }), {
      name: 'InvalidEventError'
    })
    assert.throws(() => journal.record({ ...ev(1, 0, 'x'), hlc: [-1, 0] }), { name: 'InvalidEventError' })
    assert.throws(() => journal.record({ ...ev(1, 0, 'x'), type: '' }), { name: 'InvalidEventError' })
    assert.throws(() => journal.record({ ...ev(1, 0, 'x'), subject: 's'.repeat(513) }), { name: 'InvalidEventError' })
    assert.throws(() => journal.since(undefined, { limit: 1001 }), { name: 'InvalidEventQueryError' })
    assert.throws(() => journal.since(undefined, { limit: 0 }), { name: 'InvalidEventQueryError' })
    assert.throws(() => journal.since(undefined, { after: 'not-a-cursor' }), { name: 'InvalidEventQueryError' })
    assert.throws(() => journal.since([1.5, 0] as unknown as HlcTimestamp), { name: 'InvalidEventQueryError' })
    assert.throws(() => journal.subscribe('uW10', () => {}), { name: 'InvalidEventQueryError' })
    assert.equal(journal.size, 0)
    for (const settle of [-1, 1.5, 60_001])
      assert.throws(() => new EventJournal({ settle }), { name: 'InvalidEventQueryError' })
    assert.throws(() => new EventJournal({ maxPending: 0 }), { name: 'InvalidEventQueryError' })
    // a cursor of this run past the end of its feed was not issued by it
    const forged = base64url.encode(new TextEncoder().encode(JSON.stringify([journal.run, 5, 1, 0])))
    assert.throws(() => journal.since(undefined, { after: forged }), { name: 'InvalidEventQueryError' })
    const negative = base64url.encode(new TextEncoder().encode(JSON.stringify([journal.run, -1, 1, 0])))
    assert.throws(() => journal.since(undefined, { after: negative }), { name: 'InvalidEventQueryError' })
  })

  it('a cursor of another run, or of the earlier format, is refused with EventCursorExpiredError naming its HLC', () => {
    const earlier = new EventJournal({ settle: 0 })
    earlier.record(ev(1763700000000, 4, 'x'))
    const journal = new EventJournal({ settle: 0 })
    for (const cursor of [
      earlier.since().cursor!,
      earlier.cursorOf(earlier.since().events[0]),
      base64url.encode(new TextEncoder().encode(JSON.stringify([1763700000000, 4, 'board', 'b/t1', 'claim', 'x', 0]))),
      base64url.encode(
        new TextEncoder().encode(JSON.stringify(['old-run', 1763700000000, 4, 'board', 'b/t1', 'claim', 'x', 0]))
      )
    ]) {
      assert.throws(
        () => journal.since(undefined, { after: cursor }),
        (err: Error & { hlc?: HlcTimestamp }) => {
          assert.equal(err.name, 'EventCursorExpiredError')
          assert.deepEqual(err.hlc, [1763700000000, 4])
          return true
        }
      )
      assert.throws(() => journal.subscribe(cursor, () => {}), { name: 'EventCursorExpiredError' })
    }
  })

  it('subscribe replays what is after its point, then hands over entries as they join: no gap, no duplicate (fast-check over interleavings)', () => {
    fc.assert(
      fc.property(
        arbitraryEvents(30),
        fc.nat(30),
        fc.oneof(
          fc.constant<{ kind: 'all' }>({ kind: 'all' }),
          fc.record({ kind: fc.constant('hlc' as const), wall: fc.integer({ min: 0, max: 6 }), logical: fc.nat(2) }),
          fc.record({ kind: fc.constant('cursor' as const), page: fc.integer({ min: 1, max: 10 }) })
        ),
        fc.nat(30),
        (list, splitAt, point, stopAt) => {
          const journal = new EventJournal({ settle: 0 })
          const before = list.slice(0, Math.min(splitAt, list.length))
          const after = list.slice(before.length)
          for (const e of before) journal.record(e)
          // the starting point, and the model of what is after it: by place for a cursor, by HLC for an hlc
          let from: HlcTimestamp | string | undefined
          let skip = 0
          let isAfter: (e: EventInput) => boolean = () => true
          if (point.kind === 'hlc') {
            const at: HlcTimestamp = [point.wall, point.logical]
            from = at
            isAfter = e => compareHlc(e.hlc, at) > 0
          } else if (point.kind === 'cursor') {
            const page = journal.since(undefined, { limit: point.page })
            from = page.cursor
            skip = page.events.length
          }
          const got: JournalEvent[] = []
          const stop = journal.subscribe(from, e => got.push(e))
          const replayed = got.length
          assert.deepEqual(ids(got), ids(before.slice(skip).filter(isAfter)), 'the replay: the feed after the point')
          const live = after.slice(0, Math.min(stopAt, after.length))
          const ignored = after.slice(live.length)
          for (const e of live) journal.record(e)
          stop()
          for (const e of ignored) journal.record(e)
          assert.deepEqual(ids(got.slice(replayed)), ids(live.filter(isAfter)), 'live entries, in the order they join')
          const all = ids(got)
          assert.equal(new Set(all).size, all.length, 'no entry handed over twice')
        }
      ),
      { numRuns: 300 }
    )
  })

  it('a live subscriber gets an entry when it joins the feed, not when it is recorded', () => {
    const { journal, clock } = journalAt({ settle: 100 })
    const got: string[] = []
    journal.subscribe(undefined, e => got.push(e.id!))
    clock.t = 10
    journal.record(ev(10, 0, 'b'))
    journal.record(ev(5, 0, 'a'))
    assert.deepEqual(got, [])
    clock.t = 110
    journal.settleDue()
    assert.deepEqual(got, ['a', 'b'])
    journal.close()
  })

  it('a listener that records while its replay runs gets the new entry after the replay, once', () => {
    const journal = new EventJournal({ settle: 0 })
    journal.record(ev(1, 0, 'one'))
    journal.record(ev(2, 0, 'two'))
    const got: string[] = []
    journal.subscribe(undefined, e => {
      got.push(e.id!)
      if (e.id === 'one') journal.record(ev(3, 0, 'three'))
    })
    assert.deepEqual(got, ['one', 'two', 'three'])
    assert.deepEqual(ids(feedOf(journal)), ['one', 'two', 'three'])
  })

  it('a subscriber aborted by its signal gets nothing more; a throwing listener does not stop the others', () => {
    const errors: unknown[] = []
    const journal = new EventJournal({ settle: 0, onListenerError: err => errors.push(err) })
    const controller = new AbortController()
    const a: string[] = []
    const b: string[] = []
    journal.subscribe(undefined, e => a.push(e.id!), { signal: controller.signal })
    journal.subscribe(undefined, e => {
      b.push(e.id!)
      throw new Error('listener fault')
    })
    journal.record(ev(1, 0, 'one'))
    controller.abort()
    journal.record(ev(2, 0, 'two'))
    assert.deepEqual(a, ['one'])
    assert.deepEqual(b, ['one', 'two'])
    assert.equal(errors.length, 2)
  })

  it('is bounded: the oldest go; a point before what is kept throws EventsTruncatedError naming where to resume', () => {
    const journal = new EventJournal({ settle: 0, maxEntries: 10 })
    let firstCursor: string | undefined
    for (let i = 1; i <= 25; i++) {
      journal.record(ev(i, 0, `e${i}`))
      if (i === 1) firstCursor = journal.since().cursor
    }
    assert.equal(journal.size, 10)
    assert.deepEqual(journal.oldest(), [16, 0])
    const truncated = (err: Error & { oldest?: HlcTimestamp }): boolean => {
      assert.equal(err.name, 'EventsTruncatedError')
      assert.deepEqual(err.oldest, [15, 0], 'the newest dropped: since it reads all that is kept')
      return true
    }
    assert.throws(() => journal.since([3, 0]), truncated)
    assert.throws(() => journal.since(undefined, { after: firstCursor }), truncated)
    assert.throws(() => journal.subscribe([14, 0], () => {}), { name: 'EventsTruncatedError' })
    assert.deepEqual(
      ids(journal.since([15, 0]).events),
      Array.from({ length: 10 }, (_, i) => `e${i + 16}`)
    )
    assert.equal(journal.since().events.length, 10)
    // a late entry at or before what was dropped is not kept; one above it joins, late
    assert.equal(journal.record(ev(2, 0, 'too-late')), false)
    assert.equal(journal.record(ev(20, 1, 'late-but-kept')), true)
    assert.equal(journal.size, 10)
    assert.equal(feedOf(journal)[9].late, true)
    assert.deepEqual(journal.oldest(), [17, 0])
    // a dropped entry recorded again stays out (its id is free again, but it is at the floor)
    assert.equal(journal.record(ev(16, 0, 'e16')), false)
    assert.equal(journal.record(ev(1, 0, 'e1')), false)
  })

  it('keeps at most maxPending waiting: past it the oldest join at once, in order', () => {
    const { journal, clock } = journalAt({ settle: 1000, maxPending: 3 })
    clock.t = 10
    for (const [w, id] of [
      [9, 'c'],
      [7, 'a'],
      [10, 'd'],
      [8, 'b'],
      [11, 'e']
    ] as const)
      journal.record(ev(w, 0, id))
    assert.equal(journal.pendingSize, 3)
    assert.deepEqual(ids(feedOf(journal)), ['a', 'b'])
    journal.close()
    assert.deepEqual(ids(feedOf(journal)), ['a', 'b', 'c', 'd', 'e'])
  })

  it('settled() resolves once what was recorded before it has joined the feed', async () => {
    const { journal, clock } = journalAt({ settle: 100 })
    await journal.settled() // nothing waits: at once
    clock.t = 10
    journal.record(ev(10, 0, 'a'))
    let done = false
    const waiting = journal.settled().then(() => {
      done = true
    })
    clock.t = 60
    journal.record(ev(60, 0, 'b')) // recorded after the call: not waited for
    clock.t = 110
    journal.settleDue()
    await waiting
    assert.equal(done, true)
    assert.deepEqual(ids(feedOf(journal)), ['a'])
    assert.equal(journal.pendingSize, 1)
    const controller = new AbortController()
    const aborted = journal.settled({ signal: controller.signal })
    controller.abort()
    await assert.rejects(aborted, { name: 'AbortError' })
    journal.close()
  })

  it('close lets what is pending join at once; entries recorded afterwards join as they come', () => {
    const { journal } = journalAt({ settle: 1000 })
    const got: string[] = []
    journal.subscribe(undefined, e => got.push(e.id!))
    journal.record(ev(5, 0, 'b'))
    journal.record(ev(4, 0, 'a'))
    journal.close()
    assert.deepEqual(got, ['a', 'b'])
    journal.record(ev(6, 0, 'c'))
    assert.equal(journal.pendingSize, 0)
    assert.deepEqual(got, ['a', 'b', 'c'])
  })

  it('its timer moves settled entries into the feed without being asked', async () => {
    const journal = new EventJournal({ settle: 20 })
    journal.record(ev(Date.now(), 0, 'x'))
    for (let i = 0; i < 200 && journal.size === 0; i++) await new Promise(resolve => setTimeout(resolve, 10))
    assert.deepEqual(ids(feedOf(journal)), ['x'])
    assert.equal(journal.pendingSize, 0)
    journal.close()
  })

  it('stays bounded past many drops (compaction keeps order and size)', () => {
    const journal = new EventJournal({ settle: 0, maxEntries: 500 })
    for (let i = 0; i < 5000; i++) journal.record(ev(1000 + i, 0, `e${i}`))
    // late, but above what was dropped (walls up to 5499 went, and each of these pushes one more out)
    for (let i = 0; i < 100; i++) journal.record(ev(5600 + i, 0, `late${i}`))
    assert.equal(journal.size, 500)
    const all = journal.since(undefined, { limit: 500 }).events
    assert.equal(all.length, 500)
    assert.deepEqual(all[0].hlc, [5600, 0])
    assert.deepEqual(all[all.length - 1].hlc, [5699, 0])
    assert.equal(all.filter(e => e.late === true).length, 100)
    // the in-order ones stay sorted, and since(hlc) finds its start among them
    const ordered = all.filter(e => e.late !== true)
    for (let i = 1; i < ordered.length; i++) assert.ok(compareHlc(ordered[i - 1].hlc, ordered[i].hlc) < 0)
    assert.deepEqual(ids(journal.since([5650, 0], { limit: 1000 }).events), [
      ...Array.from({ length: 349 }, (_, i) => `e${4651 + i}`),
      ...Array.from({ length: 49 }, (_, i) => `late${51 + i}`)
    ])
  })
})
