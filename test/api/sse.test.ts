/**
 * The SSE parser (src/api/sse.ts) against the WHATWG standard's own examples, each rule of the
 * format (line ends, data joins, ids, types, retry, comments, BOM), its bound on one event, and as
 * properties: any split of a byte stream parses to the same events as the whole stream, and both
 * agree with a line-by-line reading of the standard's algorithm written here as the oracle.
 */
import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { SseEventTooLargeError, SseParser } from '../../src/api/sse.ts'
import type { SseEvent } from '../../src/api/sse.ts'

const utf8 = new TextEncoder()

interface Parsed {
  events: SseEvent[]
  lastEventId: string
  retry: number | undefined
  error?: string
}

/** Parses `chunks` one after the other, then ends the stream; records an error instead of throwing. */
function parse(chunks: Array<Uint8Array | string>, maxEventLength?: number): Parsed {
  const events: SseEvent[] = []
  const parser = new SseParser({ onEvent: e => events.push(e), maxEventLength })
  try {
    for (const c of chunks) parser.push(typeof c === 'string' ? utf8.encode(c) : c)
    parser.end()
  } catch (err) {
    return { events, lastEventId: parser.lastEventId, retry: parser.retry, error: (err as Error).name }
  }
  return { events, lastEventId: parser.lastEventId, retry: parser.retry }
}

/** The standard's algorithm read literally over the whole stream at once: the oracle. */
function oracle(bytes: Uint8Array, max: number): Parsed {
  let text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes)
  if (text.startsWith('\uFEFF')) text = text.slice(1)
  const lines = text.split(/\r\n|\r|\n/)
  const rest = lines.pop() ?? '' // what follows the last line end is not a line (yet)
  const events: SseEvent[] = []
  let data: string[] = []
  let type = ''
  let idBuffer = ''
  let lastEventId = ''
  let retry: number | undefined
  let length = 0
  for (const line of lines) {
    if (line === '') {
      lastEventId = idBuffer
      if (data.length > 0) events.push({ type: type === '' ? 'message' : type, data: data.join('\n'), id: lastEventId })
      data = []
      type = ''
      length = 0
      continue
    }
    length += line.length
    if (length > max) return { events, lastEventId, retry, error: 'SseEventTooLargeError' }
    if (line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') type = value
    else if (field === 'data') data.push(value)
    else if (field === 'id' && !value.includes('\0')) idBuffer = value
    else if (field === 'retry' && /^[0-9]+$/.test(value)) retry = Number(value)
  }
  // the unfinished last line is dropped at the end, but not one already past the bound
  if (length + rest.length > max) return { events, lastEventId, retry, error: 'SseEventTooLargeError' }
  return { events, lastEventId, retry }
}

/** Cuts `bytes` at the given offsets. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map(c => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const chunks: Uint8Array[] = []
  let at = 0
  for (const p of points) {
    chunks.push(bytes.subarray(at, p))
    at = p
  }
  chunks.push(bytes.subarray(at))
  return chunks
}

const ev = (data: string, id = '', type = 'message'): SseEvent => ({ type, data, id })

describe('SSE parser', () => {
  describe("the standard's examples", () => {
    it('joins the data lines of one event with LF', () => {
      const out = parse(['data: YHOO\ndata: +2\ndata: 10\n\n'])
      assert.deepEqual(out.events, [ev('YHOO\n+2\n10')])
    })

    it('skips comments, keeps ids across events, resets the id with an empty id field, drops one space', () => {
      const out = parse([
        ': test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n'
      ])
      assert.deepEqual(out.events, [ev('first event', '1'), ev('second event', ''), ev(' third event', '')])
    })

    it('dispatches an empty data field, and drops an event the stream ends inside', () => {
      const out = parse(['data\n\ndata\ndata\n\ndata:'])
      assert.deepEqual(out.events, [ev(''), ev('\n')])
    })

    it('reads "data:test" and "data: test" alike', () => {
      assert.deepEqual(parse(['data:test\n\ndata: test\n\n']).events, [ev('test'), ev('test')])
    })
  })

  describe('the rules of the format', () => {
    it('ends lines with CRLF, LF or CR, and a CRLF split between chunks is one line end', () => {
      assert.deepEqual(parse(['data: a\r\n\r\ndata: b\r\rdata: c\n\n']).events, [ev('a'), ev('b'), ev('c')])
      // were the split CRLF two line ends, the blank line would dispatch "x" before "y" is read
      assert.deepEqual(parse(['data: x\r', '\ndata: y\r', '\n\r', '\n']).events, [ev('x\ny')])
    })

    it('names the type with event:, and an empty event field means message', () => {
      assert.deepEqual(parse(['event: missed\ndata: {}\n\nevent:\ndata: 1\n\n']).events, [
        ev('{}', '', 'missed'),
        ev('1')
      ])
    })

    it('takes the last event field and the last id of one event', () => {
      assert.deepEqual(parse(['event: a\nevent: b\nid: 1\nid: 2\ndata: x\n\n']).events, [ev('x', '2', 'b')])
    })

    it('ignores an id holding NUL', () => {
      const out = parse(['id: 5\ndata: a\n\nid: 6\u00007\ndata: b\n\n'])
      assert.deepEqual(out.events, [ev('a', '5'), ev('b', '5')])
    })

    it('sets retry from digits only, at once, whether or not an event follows', () => {
      assert.equal(parse(['retry: 2500\n']).retry, 2500)
      assert.equal(parse(['retry: 2500\nretry: 1e3\nretry: -1\nretry: 12ms\nretry:\n\n']).retry, 2500)
      assert.equal(parse(['retry: 0\n\n']).retry, 0)
    })

    it('counts a field without a colon as an empty value and ignores unknown fields', () => {
      assert.deepEqual(parse(['data\nfoo: bar\nDATA: no\ndata:x\n\n']).events, [ev('\nx')])
    })

    it('moves the last event id on with an event that has no data, without dispatching it', () => {
      const out = parse(['data: a\nid: 1\n\nid: 2\n\n'])
      assert.deepEqual(out.events, [ev('a', '1')])
      assert.equal(out.lastEventId, '2')
    })

    it('keeps the last event id of an event the stream ends inside out of lastEventId', () => {
      const out = parse(['data: a\nid: 1\n\nid: 2\ndata: b\n'])
      assert.equal(out.lastEventId, '1')
    })

    it('starts from the last event id it is given', () => {
      const events: SseEvent[] = []
      const parser = new SseParser({ onEvent: e => events.push(e), lastEventId: 'c9' })
      parser.push(utf8.encode('data: a\n\n'))
      assert.deepEqual(events, [ev('a', 'c9')])
    })

    it('drops one leading BOM, not a second one, nor one later', () => {
      const bom = [0xef, 0xbb, 0xbf]
      const bytes = new Uint8Array([...bom, ...utf8.encode('data: a\n\n')])
      assert.deepEqual(parse([bytes]).events, [ev('a')])
      // split inside the BOM
      assert.deepEqual(parse(split(bytes, [1, 2])).events, [ev('a')])
      const twice = new Uint8Array([...bom, ...bom, ...utf8.encode('data: a\n\n')])
      // the second BOM starts a field named "\uFEFFdata": ignored
      assert.deepEqual(parse([twice]).events, [])
    })

    it('decodes UTF-8 split between chunks, and replaces bad bytes', () => {
      const bytes = utf8.encode('data: é😀\n\n')
      for (let cut = 1; cut < bytes.length; cut++) {
        assert.deepEqual(parse(split(bytes, [cut])).events, [ev('é😀')], `cut at ${cut}`)
      }
      const bad = new Uint8Array([...utf8.encode('data: '), 0xff, 0x0a, 0x0a])
      assert.deepEqual(parse([bad]).events, [ev('\uFFFD')])
    })

    it('parses byte by byte as it parses at once', () => {
      const bytes = utf8.encode(
        ': hi\r\nretry: 10\rid: 1\ndata: a\r\ndata: b\n\r\nevent: missed\ndata: {"missed":3}\n\n'
      )
      const whole = parse([bytes])
      assert.deepEqual(parse(split(bytes, [...bytes.keys()])), whole)
      assert.deepEqual(whole.events, [ev('a\nb', '1'), ev('{"missed":3}', '1', 'missed')])
      assert.equal(whole.retry, 10)
    })
  })

  describe('its bound on one event', () => {
    it('refuses an event longer than the bound, after dispatching the ones before it', () => {
      const out = parse([`data: ok\n\ndata: ${'x'.repeat(200)}\n\ndata: never\n\n`], 100)
      assert.deepEqual(out.events, [ev('ok')])
      assert.equal(out.error, 'SseEventTooLargeError')
    })

    it('refuses a line that never ends before buffering past the bound (plus one chunk)', () => {
      const events: SseEvent[] = []
      const parser = new SseParser({ onEvent: e => events.push(e), maxEventLength: 1000 })
      const chunk = utf8.encode('y'.repeat(100))
      let pushed = 0
      assert.throws(
        () => {
          for (; pushed < 100; pushed++) parser.push(chunk)
        },
        (err: Error) => err.name === 'SseEventTooLargeError'
      )
      assert.ok(pushed <= 10, `threw after ${pushed} chunks`)
      // it stays failed
      assert.throws(() => parser.push(utf8.encode('\n\n')), SseEventTooLargeError)
    })

    it('counts many short lines of one event, and comments, toward the bound', () => {
      assert.equal(parse(['data: a\n'.repeat(100) + '\n'], 500).error, 'SseEventTooLargeError')
      assert.equal(parse([':heartbeat\n'.repeat(100)], 500).error, 'SseEventTooLargeError')
    })

    it('starts counting again after each event: heartbeats between events never add up', () => {
      const out = parse([': heartbeat\n\n'.repeat(1000) + 'data: a\n\n'], 50)
      assert.equal(out.error, undefined)
      assert.deepEqual(out.events, [ev('a')])
    })

    it('takes an event exactly at the bound', () => {
      assert.deepEqual(parse(['data: 1234\n\n'], 10).events, [ev('1234')])
      assert.equal(parse(['data: 12345\n\n'], 10).error, 'SseEventTooLargeError')
    })

    it('refuses a bound that is not a positive integer', () => {
      for (const bad of [0, -1, 1.5, Number.NaN]) {
        assert.throws(() => new SseParser({ onEvent: () => {}, maxEventLength: bad }), {
          name: 'InvalidSseOptionError'
        })
      }
    })
  })

  describe('properties', () => {
    const piece = fc.oneof(
      fc.constantFrom(
        '',
        'data',
        'data:',
        'data: x',
        'data:  y',
        'event: missed',
        'event',
        'id: 7',
        'id',
        'id: a\u0000b',
        ':comment',
        ': heartbeat',
        'retry: 25',
        'retry: x',
        'é😀',
        'data: {"cursor":"c1"}'
      ),
      fc.string({ maxLength: 12 }),
      fc.string({ unit: fc.constantFrom('d', 'a', 't', ':', ' ', 'i', '\r', '\n', 'é', '\u0000'), maxLength: 12 })
    )
    const stream = fc
      .tuple(
        fc.boolean(),
        fc.array(fc.tuple(piece, fc.constantFrom('\n', '\r', '\r\n')), { maxLength: 40 }),
        fc.string({ maxLength: 6 })
      )
      .map(([bom, lines, tail]) => {
        const text = lines.map(([l, end]) => l + end).join('') + tail
        const body = utf8.encode(text)
        return bom ? new Uint8Array([0xef, 0xbb, 0xbf, ...body]) : body
      })

    it('any split of the bytes parses to the same events, ids, retry and errors as the whole', () => {
      fc.assert(
        fc.property(
          stream,
          fc.array(fc.nat(), { maxLength: 20 }),
          fc.integer({ min: 5, max: 200 }),
          (bytes, cuts, max) => {
            assert.deepEqual(parse(split(bytes, cuts), max), parse([bytes], max))
          }
        ),
        { numRuns: 500 }
      )
    })

    it('the whole stream parses as the standard reads it', () => {
      fc.assert(
        fc.property(stream, bytes => {
          assert.deepEqual(parse([bytes]), oracle(bytes, Number.MAX_SAFE_INTEGER))
        }),
        { numRuns: 500 }
      )
    })

    it('however split, a bounded parse dispatches and refuses what the oracle does with that bound', () => {
      fc.assert(
        fc.property(
          stream,
          fc.array(fc.nat(), { maxLength: 20 }),
          fc.integer({ min: 5, max: 60 }),
          (bytes, cuts, max) => {
            assert.deepEqual(parse(split(bytes, cuts), max), oracle(bytes, max))
          }
        ),
        { numRuns: 500 }
      )
    })
  })
})
