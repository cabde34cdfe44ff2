/**
 * S-expressions as SPKI uses them (RFC 2692/2693, Rivest's S-expression draft), in their three
 * forms: canonical (the one signatures cover: `(3:tag(1:*))`, unique per value), advanced (for
 * people: `(tag (*))`, tokens, "quoted strings", |base64|, #hex#) and transport (canonical in
 * base64 between braces, for copy and paste). Every decoder enforces limits before it allocates.
 *
 * Base64 (in `{…}` and `|…|`) is RFC 4648 section 4, written with `=` padding so any standard
 * decoder reads it; readers also take it unpadded, ignore ASCII whitespace inside the delimiters,
 * and refuse misplaced or excess padding and non-zero leftover bits (protocols/spki/README.md).
 *
 * An atom is a byte string, optionally with a display hint (`[text/plain]"hi"`); a list is an
 * array of S-expressions.
 *
 * @example
 * const s = parseAdvanced('(tag (cyberspace member))')
 * encodeCanonical(s)              // bytes of "(3:tag(10:cyberspace6:member))"
 * toAdvanced(decodeCanonical(b))  // '(tag (cyberspace member))'
 */
import { equalBytes } from '@noble/curves/utils.js'
import { base64, base64pad } from 'multiformats/bases/base64'
import { SexpLimitError, SexpSyntaxError } from './errors.ts'

export interface HintedAtom {
  hint: Uint8Array
  bytes: Uint8Array
}
export type Atom = Uint8Array | HintedAtom
export type Sexp = Atom | Sexp[]

export interface SexpLimits {
  /** Longest input, in bytes (canonical) or characters (advanced, transport). Default 64 KiB. */
  maxBytes?: number
  /** Deepest list nesting. Default 32. */
  maxDepth?: number
  /** Longest atom, in bytes. Default 16 KiB. */
  maxAtomBytes?: number
  /** Most elements in one list. Default 1024. */
  maxListLength?: number
}

const DEFAULTS: Required<SexpLimits> = { maxBytes: 65536, maxDepth: 32, maxAtomBytes: 16384, maxListLength: 1024 }

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder('utf-8', { fatal: true })

/** An atom from text (UTF-8). */
export function atom(text: string, hint?: string): Atom {
  const bytes = utf8.encode(text)
  return hint == null ? bytes : { hint: utf8.encode(hint), bytes }
}

/** Words encoded by `word`, at most MAX_WORDS of them. */
const words = new Map<string, Uint8Array>()
const MAX_WORDS = 64

/**
 * The atom of a fixed word of the certificate and tag forms ('cert', '*', 'range' …), encoded once
 * (shared: read only). Not for text that varies (names, times): the first MAX_WORDS words are kept.
 */
export function word(text: string): Uint8Array {
  let bytes = words.get(text)
  if (bytes == null) {
    bytes = utf8.encode(text)
    if (words.size < MAX_WORDS) words.set(text, bytes)
  }
  return bytes
}

export function isList(s: Sexp): s is Sexp[] {
  return Array.isArray(s)
}

/** The bytes of an atom (without its hint). */
export function atomBytes(a: Atom): Uint8Array {
  return a instanceof Uint8Array ? a : a.bytes
}

/** The atom's bytes as UTF-8 text, or undefined if the atom is not valid UTF-8 (or is a list). */
export function atomText(s: Sexp): string | undefined {
  if (isList(s)) return undefined
  const bytes = atomBytes(s)
  // the words of certificates and tags are short ASCII, which is its own UTF-8
  if (bytes.length <= 64) {
    let text = ''
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] >= 0x80) return decodeUtf8(bytes)
      text += String.fromCharCode(bytes[i])
    }
    return text
  }
  return decodeUtf8(bytes)
}

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return fromUtf8.decode(bytes)
  } catch {
    return undefined
  }
}

export function sexpEquals(a: Sexp, b: Sexp): boolean {
  if (isList(a) || isList(b)) {
    return isList(a) && isList(b) && a.length === b.length && a.every((x, i) => sexpEquals(x, b[i]))
  }
  const ha = a instanceof Uint8Array ? undefined : a.hint
  const hb = b instanceof Uint8Array ? undefined : b.hint
  return equalBytes(atomBytes(a), atomBytes(b)) && (ha == null ? hb == null : hb != null && equalBytes(ha, hb))
}

// ---------------------------------------------------------------- canonical

export function encodeCanonical(s: Sexp): Uint8Array {
  // measured first, then written into one buffer: no intermediate parts, no text encoding
  const out = new Uint8Array(canonicalLength(s))
  let offset = 0
  const writeLength = (n: number): void => {
    const digits = String(n)
    for (let i = 0; i < digits.length; i++) out[offset++] = digits.charCodeAt(i)
    out[offset++] = 0x3a // ':'
  }
  const writeBytes = (bytes: Uint8Array): void => {
    if (bytes.length > 16) out.set(bytes, offset)
    else for (let i = 0; i < bytes.length; i++) out[offset + i] = bytes[i]
    offset += bytes.length
  }
  const write = (x: Sexp): void => {
    if (isList(x)) {
      out[offset++] = 0x28 // '('
      for (const item of x) write(item)
      out[offset++] = 0x29 // ')'
      return
    }
    if (!(x instanceof Uint8Array)) {
      out[offset++] = 0x5b // '['
      writeLength(x.hint.length)
      writeBytes(x.hint)
      out[offset++] = 0x5d // ']'
    }
    const bytes = atomBytes(x)
    writeLength(bytes.length)
    writeBytes(bytes)
  }
  write(s)
  return out
}

/** Decimal digits of a length. */
function digitCount(n: number): number {
  return n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : String(n).length
}

/** How many bytes the canonical encoding of `s` takes. */
function canonicalLength(s: Sexp): number {
  if (isList(s)) {
    let n = 2
    for (const item of s) n += canonicalLength(item)
    return n
  }
  const bytes = atomBytes(s)
  const hinted = s instanceof Uint8Array ? 0 : 3 + digitCount(s.hint.length) + s.hint.length
  return hinted + digitCount(bytes.length) + 1 + bytes.length
}

/** Decodes the canonical form strictly: no whitespace, no leading zeros, nothing after the end. */
export function decodeCanonical(bytes: Uint8Array, limits: SexpLimits = {}): Sexp {
  const lim = { ...DEFAULTS, ...limits }
  if (!(bytes instanceof Uint8Array)) throw new SexpSyntaxError('canonical S-expression must be bytes')
  if (bytes.length > lim.maxBytes) throw new SexpLimitError(`S-expression longer than ${lim.maxBytes} bytes`)
  let pos = 0
  const fail = (what: string): never => {
    throw new SexpSyntaxError(`${what} at byte ${pos}`)
  }
  const readLength = (): number => {
    const start = pos
    while (pos < bytes.length && bytes[pos] >= 0x30 && bytes[pos] <= 0x39) {
      pos++
      if (pos - start > 9) throw new SexpLimitError(`atom length too long at byte ${start}`)
    }
    if (pos === start) fail('expected a length')
    if (bytes[start] === 0x30 && pos - start > 1) fail('length with a leading zero')
    let n = 0
    for (let i = start; i < pos; i++) n = n * 10 + (bytes[i] - 0x30)
    if (bytes[pos] !== 0x3a) fail('expected ":" after a length')
    pos++
    if (n > lim.maxAtomBytes) throw new SexpLimitError(`atom of ${n} bytes exceeds ${lim.maxAtomBytes}`)
    if (pos + n > bytes.length) fail('truncated atom')
    return n
  }
  const readAtom = (): Atom => {
    let hint: Uint8Array | undefined
    if (bytes[pos] === 0x5b) {
      pos++
      const n = readLength()
      hint = bytes.slice(pos, pos + n)
      pos += n
      if (bytes[pos] !== 0x5d) fail('expected "]" after a display hint')
      pos++
    }
    const n = readLength()
    const value = bytes.slice(pos, pos + n)
    pos += n
    return hint == null ? value : { hint, bytes: value }
  }
  const read = (depth: number): Sexp => {
    if (pos >= bytes.length) fail('unexpected end')
    if (bytes[pos] !== 0x28) return readAtom()
    if (depth >= lim.maxDepth) throw new SexpLimitError(`nesting deeper than ${lim.maxDepth}`)
    pos++
    const items: Sexp[] = []
    while (true) {
      if (pos >= bytes.length) fail('unterminated list')
      if (bytes[pos] === 0x29) {
        pos++
        return items
      }
      if (items.length >= lim.maxListLength) throw new SexpLimitError(`list longer than ${lim.maxListLength}`)
      items.push(read(depth + 1))
    }
  }
  const result = read(0)
  if (pos !== bytes.length) fail('trailing bytes')
  return result
}

// ---------------------------------------------------------------- base64

/** Whitespace a reader ignores inside `{…}`, `|…|` and `#…#`: space, tab, LF, VT, FF, CR. */
const ASCII_SPACE = /[ \t\n\v\f\r]+/g
/** Whole groups of four, then an optional last group: padded (`xx==`, `xxx=`) or not (`xx`, `xxx`). */
const BASE64_SHAPE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/

/** Standard base64 with padding (RFC 4648 section 4): what every base64 decoder reads. */
export function encodeBase64(bytes: Uint8Array): string {
  return base64pad.baseEncode(bytes)
}

/**
 * Reads standard base64, padded or not; whitespace must already be gone. Throws (a plain Error
 * naming the fault) for other characters, `=` anywhere but the end of the last group, a last
 * group of one character, or leftover bits that are not zero — so each byte string has exactly
 * one padded and one unpadded spelling.
 */
export function decodeBase64(text: string): Uint8Array {
  if (/[^A-Za-z0-9+/=]/.test(text)) throw new Error('a character outside A-Z a-z 0-9 + / =')
  if (!BASE64_SHAPE.test(text)) {
    throw new Error(text.includes('=') ? 'misplaced or excess padding' : 'a length of 4n+1 characters')
  }
  // the shape is right; multiformats rejects non-zero leftover bits ("Unexpected end of data")
  try {
    return base64.baseDecode(text.replace(/=+$/, ''))
  } catch {
    throw new Error('leftover bits that are not zero')
  }
}

// ---------------------------------------------------------------- transport

export function toTransport(s: Sexp): string {
  return `{${encodeBase64(encodeCanonical(s))}}`
}

/** Characters of base64 (padded) that `n` bytes take. */
const base64Length = (n: number): number => 4 * Math.ceil(n / 3)

/**
 * Reads `{<base64 of the canonical form>}`. Whitespace around the braces and ASCII whitespace
 * inside them is ignored (so a form wrapped across lines still reads); the base64 may be padded
 * or not.
 */
export function parseTransport(text: string, limits: SexpLimits = {}): Sexp {
  const lim = { ...DEFAULTS, ...limits }
  if (typeof text !== 'string') throw new SexpSyntaxError('transport form must be text')
  // generous for line breaks; the exact bound is checked once whitespace is gone
  if (text.length > 2 * base64Length(lim.maxBytes) + 64) throw new SexpLimitError('transport form too long')
  const trimmed = text.trim()
  if (!trimmed.startsWith('{') || !trimmed.endsWith('}')) throw new SexpSyntaxError('transport form must be {base64}')
  const body = trimmed.slice(1, -1).replace(ASCII_SPACE, '')
  if (body.length > base64Length(lim.maxBytes)) {
    throw new SexpLimitError(`S-expression longer than ${lim.maxBytes} bytes`)
  }
  let bytes: Uint8Array
  try {
    bytes = decodeBase64(body)
  } catch (err) {
    throw new SexpSyntaxError(`transport form is not base64: ${(err as Error).message}`)
  }
  return decodeCanonical(bytes, limits)
}

// ---------------------------------------------------------------- advanced

/** Printed bare: token characters, and not something that reads as a <len>: prefix. */
const TOKEN = /^(?![0-9]+:)[A-Za-z0-9\-./_*+=][A-Za-z0-9\-./_:*+=]*$/

/** The readable form: tokens where possible, then "quoted" printable text, else |base64|. */
export function toAdvanced(s: Sexp): string {
  if (isList(s)) return `(${s.map(toAdvanced).join(' ')})`
  const show = (bytes: Uint8Array): string => {
    let text: string | undefined
    try {
      text = fromUtf8.decode(bytes)
    } catch {}
    if (text != null && TOKEN.test(text)) return text
    if (text != null && /^[\x20-\x7e]*$/.test(text)) return JSON.stringify(text)
    return `|${encodeBase64(bytes)}|`
  }
  return s instanceof Uint8Array ? show(s) : `[${show(s.hint)}]${show(s.bytes)}`
}

/** Parses the advanced form (also accepts canonical pieces such as `3:abc` inside it). */
export function parseAdvanced(text: string, limits: SexpLimits = {}): Sexp {
  const lim = { ...DEFAULTS, ...limits }
  if (typeof text !== 'string') throw new SexpSyntaxError('advanced form must be text')
  if (text.length > lim.maxBytes) throw new SexpLimitError(`S-expression longer than ${lim.maxBytes} characters`)
  let pos = 0
  const fail = (what: string): never => {
    throw new SexpSyntaxError(`${what} at character ${pos}`)
  }
  const skip = (): void => {
    while (pos < text.length && /\s/.test(text[pos])) pos++
  }
  const checkAtom = (bytes: Uint8Array): Uint8Array => {
    if (bytes.length > lim.maxAtomBytes)
      throw new SexpLimitError(`atom of ${bytes.length} bytes exceeds ${lim.maxAtomBytes}`)
    return bytes
  }
  const readSimple = (): Uint8Array => {
    const c = text[pos]
    if (c === '"') {
      // a JSON-style quoted string
      let end = pos + 1
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1
      if (end >= text.length) fail('unterminated quoted string')
      let value: string
      try {
        value = JSON.parse(text.slice(pos, end + 1)) as string
      } catch {
        return fail('bad escape in quoted string')
      }
      pos = end + 1
      return checkAtom(utf8.encode(value))
    }
    if (c === '|' || c === '#') {
      const end = text.indexOf(c, pos + 1)
      if (end < 0) fail(`unterminated ${c}…${c}`)
      const inner = text.slice(pos + 1, end).replace(ASCII_SPACE, '')
      pos = end + 1
      const longest = c === '|' ? base64Length(lim.maxAtomBytes) : 2 * lim.maxAtomBytes
      if (inner.length > longest) throw new SexpLimitError(`atom exceeds ${lim.maxAtomBytes} bytes`)
      try {
        if (c === '|') return checkAtom(decodeBase64(inner))
        if (!/^([0-9a-fA-F]{2})*$/.test(inner)) throw new Error('odd or non-hex digits')
        return checkAtom(Uint8Array.from(inner.match(/../g) ?? [], h => Number.parseInt(h, 16)))
      } catch (err) {
        return fail(`bad ${c === '|' ? 'base64' : 'hex'} atom (${(err as Error).message})`)
      }
    }
    const verbatim = c >= '0' && c <= '9' ? /^(0|[1-9][0-9]{0,8}):/.exec(text.slice(pos, pos + 11)) : null
    if (verbatim != null) {
      // verbatim: <len>:<bytes>, the length counting UTF-8 bytes
      const m = verbatim
      const n = Number(m[1])
      if (n > lim.maxAtomBytes) throw new SexpLimitError(`atom of ${n} bytes exceeds ${lim.maxAtomBytes}`)
      pos += m[0].length
      const rest = utf8.encode(text.slice(pos))
      if (rest.length < n) fail('truncated verbatim atom')
      const bytes = rest.slice(0, n)
      pos += fromUtf8.decode(bytes).length
      return bytes
    }
    // a token; unlike Rivest's draft we also accept one that starts with a digit (10, 2.5), which
    // numeric range limits need, as long as it is not a <len>: prefix
    const m = /^[A-Za-z0-9\-./_*+=][A-Za-z0-9\-./_:*+=]*/.exec(text.slice(pos))
    if (m == null) return fail(`unexpected ${JSON.stringify(c ?? 'end')}`)
    pos += m[0].length
    return checkAtom(utf8.encode(m[0]))
  }
  const read = (depth: number): Sexp => {
    skip()
    if (pos >= text.length) fail('unexpected end')
    if (text[pos] === '{') {
      // a transport-form expression embedded in advanced text (Rivest's draft allows it)
      const end = text.indexOf('}', pos)
      if (end < 0) fail('unterminated {…}')
      const inner = parseTransport(text.slice(pos, end + 1), { ...limits, maxDepth: Math.max(1, lim.maxDepth - depth) })
      pos = end + 1
      return inner
    }
    if (text[pos] === '(') {
      if (depth >= lim.maxDepth) throw new SexpLimitError(`nesting deeper than ${lim.maxDepth}`)
      pos++
      const items: Sexp[] = []
      while (true) {
        skip()
        if (pos >= text.length) fail('unterminated list')
        if (text[pos] === ')') {
          pos++
          return items
        }
        if (items.length >= lim.maxListLength) throw new SexpLimitError(`list longer than ${lim.maxListLength}`)
        items.push(read(depth + 1))
      }
    }
    if (text[pos] === ')') fail('unexpected ")"')
    if (text[pos] === '[') {
      pos++
      skip()
      const hint = readSimple()
      skip()
      if (text[pos] !== ']') fail('expected "]" after a display hint')
      pos++
      skip()
      return { hint, bytes: readSimple() }
    }
    return readSimple()
  }
  const result = read(0)
  skip()
  if (pos !== text.length) fail('trailing characters')
  return result
}

// ---------------------------------------------------------------- any form

/**
 * Reads the S-expressions in a file or paste, in any of the three forms: one canonical
 * expression (`(4:cert…`, exact bytes as signed), or text holding transport (`{…}`) or advanced
 * expressions separated by whitespace. Text lines starting with "# " are comments.
 */
export function parseAnyForm(bytes: Uint8Array, limits: SexpLimits = {}): Sexp[] {
  const lim = { ...DEFAULTS, ...limits }
  if (bytes.length > Math.ceil((lim.maxBytes * 4) / 3) + 8) throw new SexpLimitError('S-expression input too long')
  // canonical: "(" then a length digit; advanced text never starts a list with a bare length
  if (bytes[0] === 0x28 && bytes[1] >= 0x30 && bytes[1] <= 0x39) return [decodeCanonical(bytes, limits)]
  let text: string
  try {
    text = fromUtf8.decode(bytes)
  } catch {
    throw new SexpSyntaxError('input is neither canonical nor UTF-8 text')
  }
  text = text
    .split('\n')
    .filter(line => !/^\s*#(\s|$)/.test(line))
    .join('\n')
    .trim()
  if (text.length === 0) throw new SexpSyntaxError('no S-expression in the input')
  // several expressions (advanced, or transport {…} blocks) read as the items of one list
  const all = parseAdvanced(`(${text})`, { ...limits, maxBytes: lim.maxBytes + 2, maxDepth: lim.maxDepth + 1 })
  return all as Sexp[]
}
