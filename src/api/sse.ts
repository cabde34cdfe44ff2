/**
 * A parser of server-sent events (the `text/event-stream` format of the WHATWG HTML standard,
 * §9.2.6), fed the response body's bytes as they arrive, in chunks of any size: lines end in CRLF,
 * LF or CR (a CRLF split between two chunks is one line end); `data:` lines of one event are joined
 * with LF; `id:` sets the last event id (kept across events, ignored if it holds NUL); `event:` names
 * the event's type (default `message`); `retry:` sets the reconnection time (digits only); lines
 * starting with `:` are comments; a field without a colon is a field with an empty value; one space
 * after the colon is dropped; a leading BOM is dropped; an event ends at a blank line, and one with
 * no data is not dispatched (its id still counts). What is left at the end of the stream is dropped.
 *
 * It reads what a server sends, so it bounds what one event may hold: the lines of one event,
 * comments included, longer than `maxEventLength` characters throw SseEventTooLargeError (before
 * they are buffered, however the stream is split).
 *
 * Runs in browsers (no node: imports). Used by the SDK's `Client.subscribe` (src/api/client.ts).
 *
 * @example
 * const parser = new SseParser({ onEvent: e => console.log(e.type, e.id, e.data) })
 * for await (const chunk of body) parser.push(chunk)
 * parser.end()
 */

/** Characters one event may hold by default: 1 MiB of ASCII, far past one journal event. */
export const DEFAULT_MAX_EVENT_LENGTH = 1024 * 1024

/** One dispatched event. */
export interface SseEvent {
  /** The `event:` field, or `message`. */
  type: string
  /** The `data:` lines, joined with LF. */
  data: string
  /** The last event id when it was dispatched (`''` if none was ever set). */
  id: string
}

export interface SseParserInit {
  /** Called with each event, in order, as the blank line that ends it is parsed. */
  onEvent: (event: SseEvent) => void
  /** Most characters of one event's lines, comments included (default 1 MiB). */
  maxEventLength?: number
  /** The last event id to start from (what a reconnecting client already had). */
  lastEventId?: string
}

/** One event of the stream is longer than the parser's bound. */
export class SseEventTooLargeError extends Error {
  static name = 'SseEventTooLargeError'
  name = 'SseEventTooLargeError'
}

/** An SSE parser option is out of range. */
export class InvalidSseOptionError extends Error {
  static name = 'InvalidSseOptionError'
  name = 'InvalidSseOptionError'
}

const LINE_END = /\r\n|\r|\n/g

export class SseParser {
  /** The last event id: set by `id:` fields, kept across events. */
  lastEventId: string
  /** The reconnection time the server asked for with `retry:`, in ms. */
  retry: number | undefined
  readonly #onEvent: (event: SseEvent) => void
  readonly #max: number
  readonly #decoder = new TextDecoder('utf-8')
  /** The line begun but not yet ended (holds no line end). */
  #pending = ''
  /** The previous chunk ended in CR: an LF starting the next one belongs to it. */
  #afterCr = false
  /** Characters of the lines of the event being read. */
  #length = 0
  #data = ''
  #hasData = false
  #type = ''
  #idBuffer: string
  #failed: Error | undefined

  constructor(init: SseParserInit) {
    const max = init.maxEventLength ?? DEFAULT_MAX_EVENT_LENGTH
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new InvalidSseOptionError(`maxEventLength must be a positive integer, not ${String(max)}`)
    }
    this.#onEvent = init.onEvent
    this.#max = max
    this.lastEventId = init.lastEventId ?? ''
    this.#idBuffer = this.lastEventId
  }

  /** Parses the next bytes of the stream; events they complete go to `onEvent` before this returns. */
  push(bytes: Uint8Array): void {
    if (this.#failed != null) throw this.#failed
    let text = this.#decoder.decode(bytes, { stream: true })
    if (text.length === 0) return
    if (this.#afterCr) {
      this.#afterCr = false
      if (text.charCodeAt(0) === 10) text = text.slice(1)
    }
    try {
      let start = 0
      LINE_END.lastIndex = 0
      for (let m = LINE_END.exec(text); m != null; m = LINE_END.exec(text)) {
        const line =
          start === 0 && this.#pending !== '' ? this.#pending + text.slice(0, m.index) : text.slice(start, m.index)
        if (start === 0) this.#pending = ''
        start = m.index + m[0].length
        // a CR ending the chunk may be the first half of a CRLF
        if (m[0] === '\r' && start === text.length) this.#afterCr = true
        this.#line(line)
      }
      if (start === 0) this.#pending += text
      else this.#pending = text.slice(start)
      this.#check(this.#pending.length)
    } catch (err) {
      this.#failed = err as Error
      throw err
    }
  }

  /** The stream ended: an event not yet ended by a blank line is dropped, as the standard says. */
  end(): void {
    this.#decoder.decode()
    this.#pending = ''
    this.#afterCr = false
    this.#idBuffer = this.lastEventId
    this.#reset()
  }

  #check(length: number): void {
    if (this.#length + length > this.#max) {
      throw new SseEventTooLargeError(
        `an event of the stream is longer than ${this.#max} characters (its lines, comments included)`
      )
    }
  }

  #line(line: string): void {
    if (line === '') {
      this.#dispatch()
      return
    }
    this.#check(line.length)
    this.#length += line.length
    if (line.charCodeAt(0) === 58) return // ':' a comment
    const colon = line.indexOf(':')
    let field = line
    let value = ''
    if (colon !== -1) {
      field = line.slice(0, colon)
      value = line.slice(line.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1)
    }
    switch (field) {
      case 'event':
        this.#type = value
        break
      case 'data':
        this.#data = this.#hasData ? `${this.#data}\n${value}` : value
        this.#hasData = true
        break
      case 'id':
        if (!value.includes('\0')) this.#idBuffer = value
        break
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.retry = Number(value)
        break
      default:
      // other fields are ignored
    }
  }

  #dispatch(): void {
    this.lastEventId = this.#idBuffer
    const event = this.#hasData
      ? { type: this.#type === '' ? 'message' : this.#type, data: this.#data, id: this.lastEventId }
      : undefined
    this.#reset()
    if (event != null) this.#onEvent(event)
  }

  #reset(): void {
    this.#length = 0
    this.#data = ''
    this.#hasData = false
    this.#type = ''
  }
}
