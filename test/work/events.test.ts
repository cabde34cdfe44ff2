import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { compareHlc } from '../../src/clock/hlc.ts'
import { EVENT_SOURCES, EventJournal } from '../../src/work/events.ts'
import type { HlcTimestamp } from '../../src/clock/hlc.ts'
import type { EventInput, EventSource, JournalEvent } from '../../src/work/events.ts'

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

/** Inputs with few distinct hlcs, sources, subjects and types, so ties and late arrivals are common. */
const arbitraryEvents = (max: number): fc.Arbitrary<EventInput[]> =>
  fc
    .array(
      fc.record({
        wall: fc.integer({ min: 1, max: 6 }),
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

describe('event journal: HLC order, since, subscribe, bounds', function () {
  it('keeps entries in HLC order whatever order they are recorded in, ties by source, subject, type', () => {
    const journal = new EventJournal()
    journal.record(ev(5, 0, 'late-5'))
    journal.record(ev(9, 0, 'x9'))
    journal.record(ev(1, 0, 'first'))
    journal.record(ev(5, 0, 'swarm-5', { source: 'swarm' }))
    journal.record(ev(5, 0, 'agent-5', { source: 'agent' }))
    journal.record(ev(5, 0, 'board-5-a', { subject: 'a/x' }))
    journal.record(ev(5, 0, 'board-5-b-cancel', { type: 'cancel' }))
    journal.record(ev(5, 1, 'logical-1'))
    const page = journal.since(undefined, { limit: 1000 })
    assert.deepEqual(ids(page.events), [
      'first',
      'agent-5',
      'board-5-a',
      'board-5-b-cancel',
      'late-5',
      'swarm-5',
      'logical-1',
      'x9'
    ])
    assert.equal(page.more, false)
    assert.deepEqual(journal.oldest(), [1, 0])
    assert.deepEqual(journal.newest(), [9, 0])
  })

  it('the same entries recorded in any order give the same sequence (fast-check)', () => {
    fc.assert(
      fc.property(
        arbitraryEvents(40).chain(list =>
          fc.tuple(fc.constant(list), fc.shuffledSubarray(list, { minLength: list.length }))
        ),
        ([list, shuffled]) => {
          const a = new EventJournal()
          const b = new EventJournal()
          for (const e of list) a.record(e)
          for (const e of shuffled) b.record(e)
          const seqA = ids(a.since(undefined, { limit: 1000 }).events)
          const seqB = ids(b.since(undefined, { limit: 1000 }).events)
          assert.deepEqual(seqA, seqB)
          assert.deepEqual(seqA, ids([...list].sort(expectedOrder)))
        }
      ),
      { numRuns: 200 }
    )
  })

  it('an id already kept is not kept again', () => {
    const journal = new EventJournal()
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
  })

  it('since(hlc) is strictly after the hlc; pages continue from their cursor through entries that share an hlc', () => {
    const journal = new EventJournal()
    for (let i = 0; i < 7; i++) journal.record(ev(10, 0, `same-${i}`, { subject: `s${i}` }))
    journal.record(ev(9, 5, 'before'))
    journal.record(ev(11, 0, 'after'))
    assert.deepEqual(ids(journal.since([10, 0]).events), ['after'])
    assert.deepEqual(ids(journal.since([9, 5]).events).length, 8)
    const seen: string[] = []
    let page = journal.since([9, 5], { limit: 2 })
    let pages = 0
    while (pages++ < 20) {
      seen.push(...ids(page.events))
      if (!page.more) break
      page = journal.since(undefined, { limit: 2, after: page.cursor })
    }
    assert.deepEqual(seen, [...Array.from({ length: 7 }, (_, i) => `same-${i}`), 'after'])
    // an empty page keeps its place: nothing new after the last cursor, then something is
    const end = journal.since(undefined, { after: page.cursor })
    assert.deepEqual(end.events, [])
    assert.equal(end.cursor, page.cursor)
    journal.record(ev(12, 0, 'newer'))
    assert.deepEqual(ids(journal.since(undefined, { after: end.cursor }).events), ['newer'])
  })

  it('refuses malformed entries and queries by name', () => {
    const journal = new EventJournal()
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
  })

  it('subscribe replays what is after its point, then hands over live entries: no gap, no duplicate (fast-check over interleavings)', () => {
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
          const journal = new EventJournal()
          const before = list.slice(0, Math.min(splitAt, list.length))
          const after = list.slice(before.length)
          for (const e of before) journal.record(e)
          // the starting point, and the model of what is after it
          let from: HlcTimestamp | string | undefined
          let isAfter: (e: EventInput) => boolean = () => true
          if (point.kind === 'hlc') {
            const at: HlcTimestamp = [point.wall, point.logical]
            from = at
            isAfter = e => compareHlc(e.hlc, at) > 0
          } else if (point.kind === 'cursor') {
            const page = journal.since(undefined, { limit: point.page })
            from = page.cursor
            const last = page.events[page.events.length - 1]
            if (last != null) isAfter = e => expectedOrder(e, last as EventInput) > 0
          }
          const got: JournalEvent[] = []
          const stop = journal.subscribe(from, e => got.push(e))
          const replayed = got.length
          const replayExpected = [...before].filter(isAfter).sort(expectedOrder)
          assert.deepEqual(ids(got), ids(replayExpected), 'the replay is what is after the point, in order')
          // live: each recorded entry after the point is handed over once, as it arrives; after stop, nothing
          const live = after.slice(0, Math.min(stopAt, after.length))
          const ignored = after.slice(live.length)
          for (const e of live) journal.record(e)
          stop()
          for (const e of ignored) journal.record(e)
          assert.deepEqual(ids(got.slice(replayed)), ids(live.filter(isAfter)), 'live entries, in arrival order')
          const all = ids(got)
          assert.equal(new Set(all).size, all.length, 'no entry handed over twice')
          // together: exactly what since() from the same point holds of what was recorded until stop
          const union = [...before, ...live].filter(isAfter).sort(expectedOrder)
          assert.deepEqual([...all].sort(), ids(union).sort())
        }
      ),
      { numRuns: 300 }
    )
  })

  it('a subscriber aborted by its signal gets nothing more; a throwing listener does not stop the others', () => {
    const errors: unknown[] = []
    const journal = new EventJournal({ onListenerError: err => errors.push(err) })
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

  it('is bounded: the oldest go, a point older than what is kept throws EventsTruncatedError naming the oldest kept', () => {
    const journal = new EventJournal({ maxEntries: 10 })
    for (let i = 1; i <= 25; i++) journal.record(ev(i, 0, `e${i}`))
    assert.equal(journal.size, 10)
    assert.deepEqual(journal.oldest(), [16, 0])
    assert.throws(
      () => journal.since([3, 0]),
      (err: Error & { oldest?: HlcTimestamp }) => {
        assert.equal(err.name, 'EventsTruncatedError')
        assert.deepEqual(err.oldest, [16, 0])
        return true
      }
    )
    assert.throws(() => journal.subscribe([14, 0], () => {}), { name: 'EventsTruncatedError' })
    // from the last dropped on, nothing is missing
    assert.deepEqual(
      ids(journal.since([15, 0]).events),
      Array.from({ length: 10 }, (_, i) => `e${i + 16}`)
    )
    // everything kept, when no point is given
    assert.equal(journal.since().events.length, 10)
    // a late entry older than what was dropped is not kept; one in the kept range is
    assert.equal(journal.record(ev(2, 0, 'too-late')), false)
    assert.equal(journal.record(ev(20, 1, 'late-but-kept')), true)
    assert.equal(journal.size, 10)
    assert.deepEqual(journal.oldest(), [17, 0])
    // a dropped id can be used again only above the dropped range (it is a new entry then)
    assert.equal(journal.record(ev(1, 0, 'e1')), false)
  })

  it('stays bounded past many drops (compaction keeps order and size)', () => {
    const journal = new EventJournal({ maxEntries: 500 })
    for (let i = 0; i < 5000; i++) journal.record(ev(1000 + i, 0, `e${i}`))
    for (let i = 0; i < 100; i++) journal.record(ev(5000 + i, 0, `late${i}`))
    assert.equal(journal.size, 500)
    const all = journal.since(undefined, { limit: 500 }).events
    for (let i = 1; i < all.length; i++) assert.ok(compareHlc(all[i - 1].hlc, all[i].hlc) <= 0)
    assert.deepEqual(all[all.length - 1].hlc, [5999, 0])
  })
})
