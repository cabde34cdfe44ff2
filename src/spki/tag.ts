/**
 * SPKI authorization tags (RFC 2693 section 6, the SPKI structure draft section 6.3) and their
 * intersection. A tag says what a certificate grants; delegation can only narrow it, because the
 * authority a chain proves is the intersection of every tag along it.
 *
 * Forms: a byte string; a list whose first element names it (`(cyberspace (log (append x)))`);
 * `(*)` — everything; `(* set t…)` — any of; `(* prefix s)` — byte strings starting with s;
 * `(* range <ordering> [(ge|g lo)] [(le|l hi)])` with orderings alpha, numeric, time, binary.
 * A shorter list grants every longer list that extends it: `(ftp host)` covers `(ftp host dir)`.
 *
 * Intersection is exact where the result is expressible as a tag and otherwise conservative:
 * where two forms cannot be combined exactly (a prefix against a range, ranges of different
 * orderings) the result grants nothing. It is never wider than either side.
 *
 * @example
 * const granted = parseTag(parseAdvanced('(cyberspace (log (* set a b)))'))
 * const asked = parseTag(parseAdvanced('(cyberspace (log a))'))
 * tagImplies(granted, asked) // true
 */
import { base16 } from 'multiformats/bases/base16'
import { compareBytes } from '../../protocols/wire.ts'
import { InvalidTagError } from './errors.ts'
import { Handles } from './hot-cache.ts'
import { atomBytes, atomText, encodeCanonical, isList, word } from './sexp.ts'
import type { Sexp } from './sexp.ts'

export type Ordering = 'alpha' | 'numeric' | 'time' | 'binary'
export interface Limit {
  value: Uint8Array
  inclusive: boolean
}
export type Tag =
  | { kind: 'all' }
  | { kind: 'bytes'; value: Uint8Array }
  | { kind: 'list'; items: Tag[] }
  | { kind: 'set'; items: Tag[] }
  | { kind: 'prefix'; value: Uint8Array }
  | { kind: 'range'; ordering: Ordering; lower?: Limit; upper?: Limit }

const ORDERINGS = new Set<string>(['alpha', 'numeric', 'time', 'binary'])
/** Most members a (* set …) may list. */
export const MAX_SET_MEMBERS = 64
/** Sets up to this size are pruned of covered members (pairwise, so quadratic). */
const MAX_PRUNED_SET = 64
export const ALL: Tag = { kind: 'all' }

// ---------------------------------------------------------------- parse and print

/** Reads a tag body (what stands inside `(tag …)`). */
export function parseTag(s: Sexp): Tag {
  if (!isList(s)) return { kind: 'bytes', value: atomBytes(s) }
  if (s.length === 0) throw new InvalidTagError('a tag list cannot be empty')
  if (isList(s[0])) throw new InvalidTagError('a tag list must start with a byte string')
  if (atomText(s[0]) !== '*') return { kind: 'list', items: s.map(parseTag) }
  if (s.length === 1) return ALL
  const form = atomText(s[1])
  switch (form) {
    case 'set':
      if (s.length - 2 > MAX_SET_MEMBERS) throw new InvalidTagError(`a set lists at most ${MAX_SET_MEMBERS} members`)
      return { kind: 'set', items: s.slice(2).map(parseTag) }
    case 'prefix':
      if (s.length !== 3 || isList(s[2])) throw new InvalidTagError('(* prefix <byte-string>) takes one byte string')
      return { kind: 'prefix', value: atomBytes(s[2]) }
    case 'range':
      return parseRange(s.slice(2))
    default:
      throw new InvalidTagError(`unknown * form ${JSON.stringify(form ?? '(list)')}`)
  }
}

function parseRange(args: Sexp[]): Tag {
  const ordering = args[0] != null ? atomText(args[0]) : undefined
  if (ordering == null || !ORDERINGS.has(ordering)) {
    throw new InvalidTagError(`range ordering must be one of ${[...ORDERINGS].join(', ')}`)
  }
  const range: Extract<Tag, { kind: 'range' }> = { kind: 'range', ordering: ordering as Ordering }
  for (const limit of args.slice(1)) {
    if (!isList(limit) || limit.length !== 2 || isList(limit[1]))
      throw new InvalidTagError('a range limit is (op value)')
    const op = atomText(limit[0])
    const value = atomBytes(limit[1])
    checkValue(range.ordering, value)
    if (op === 'g' || op === 'ge') {
      if (range.lower != null) throw new InvalidTagError('a range has at most one lower limit')
      range.lower = { value, inclusive: op === 'ge' }
    } else if (op === 'l' || op === 'le') {
      if (range.upper != null) throw new InvalidTagError('a range has at most one upper limit')
      range.upper = { value, inclusive: op === 'le' }
    } else {
      throw new InvalidTagError(`range limit must be g, ge, l or le, not ${JSON.stringify(op)}`)
    }
  }
  if (rangeEmpty(range)) throw new InvalidTagError('the range admits no value')
  return range
}

function checkValue(ordering: Ordering, value: Uint8Array): void {
  const text = new TextDecoder().decode(value)
  if (ordering === 'numeric' && !/^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/.test(text)) {
    throw new InvalidTagError(`numeric range value ${JSON.stringify(text)} is not a decimal number`)
  }
  if (ordering === 'time' && !/^\d{4}-\d{2}-\d{2}_\d{2}:\d{2}:\d{2}$/.test(text)) {
    throw new InvalidTagError(`time range value ${JSON.stringify(text)} is not YYYY-MM-DD_HH:MM:SS`)
  }
}

const enc = word

/** The tag body as an S-expression (the inverse of parseTag). */
export function tagToSexp(tag: Tag): Sexp {
  switch (tag.kind) {
    case 'all':
      return [enc('*')]
    case 'bytes':
      return tag.value
    case 'list':
      return tag.items.map(tagToSexp)
    case 'set':
      return [enc('*'), enc('set'), ...tag.items.map(tagToSexp)]
    case 'prefix':
      return [enc('*'), enc('prefix'), tag.value]
    case 'range': {
      const out: Sexp[] = [enc('*'), enc('range'), enc(tag.ordering)]
      if (tag.lower != null) out.push([enc(tag.lower.inclusive ? 'ge' : 'g'), tag.lower.value])
      if (tag.upper != null) out.push([enc(tag.upper.inclusive ? 'le' : 'l'), tag.upper.value])
      return out
    }
  }
}

// ---------------------------------------------------------------- orderings

function compareDecimal(a: string, b: string): number {
  const [ai, af = ''] = a.replace(/^-/, '').split('.')
  const [bi, bf = ''] = b.replace(/^-/, '').split('.')
  const negA = a.startsWith('-') && /[1-9]/.test(a)
  const negB = b.startsWith('-') && /[1-9]/.test(b)
  if (negA !== negB) return negA ? -1 : 1
  const magnitude =
    ai.length !== bi.length
      ? ai.length - bi.length
      : ai !== bi
        ? ai < bi
          ? -1
          : 1
        : af.padEnd(bf.length, '0') === bf.padEnd(af.length, '0')
          ? 0
          : af.padEnd(bf.length, '0') < bf.padEnd(af.length, '0')
            ? -1
            : 1
  return negA ? -magnitude : magnitude
}

/** Compares two values under an ordering; undefined if a value is not of that ordering. */
export function compare(ordering: Ordering, a: Uint8Array, b: Uint8Array): number | undefined {
  switch (ordering) {
    case 'alpha':
    case 'time': {
      if (ordering === 'time') {
        const pattern = /^\d{4}-\d{2}-\d{2}_\d{2}:\d{2}:\d{2}$/
        if (!pattern.test(new TextDecoder().decode(a)) || !pattern.test(new TextDecoder().decode(b))) return undefined
      }
      return compareBytes(a, b)
    }
    case 'binary': {
      // unsigned big-endian integers: strip leading zeros, then longer is larger
      const strip = (x: Uint8Array): Uint8Array =>
        x.subarray(x.findIndex(v => v !== 0) < 0 ? x.length : x.findIndex(v => v !== 0))
      const sa = strip(a)
      const sb = strip(b)
      return sa.length !== sb.length ? sa.length - sb.length : compareBytes(sa, sb)
    }
    case 'numeric': {
      const ta = new TextDecoder().decode(a)
      const tb = new TextDecoder().decode(b)
      const number = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/
      if (!number.test(ta) || !number.test(tb)) return undefined
      return compareDecimal(ta, tb)
    }
  }
}

function inRange(range: Extract<Tag, { kind: 'range' }>, value: Uint8Array): boolean {
  if (range.lower != null) {
    const c = compare(range.ordering, value, range.lower.value)
    if (c == null || c < 0 || (c === 0 && !range.lower.inclusive)) return false
  }
  if (range.upper != null) {
    const c = compare(range.ordering, value, range.upper.value)
    if (c == null || c > 0 || (c === 0 && !range.upper.inclusive)) return false
  }
  if (range.lower == null && range.upper == null) {
    // an unbounded range still only admits values of its ordering
    return compare(range.ordering, value, value) != null
  }
  return true
}

/** The tighter of two lower (or two upper) limits. */
function tighter(ordering: Ordering, a: Limit | undefined, b: Limit | undefined, lower: boolean): Limit | undefined {
  if (a == null) return b
  if (b == null) return a
  const c = compare(ordering, a.value, b.value) ?? 0
  if (c === 0) return { value: a.value, inclusive: a.inclusive && b.inclusive }
  return c > 0 === lower ? a : b
}

function rangeEmpty(r: Extract<Tag, { kind: 'range' }>): boolean {
  if (r.lower == null || r.upper == null) return false
  const c = compare(r.ordering, r.lower.value, r.upper.value) ?? 0
  return c > 0 || (c === 0 && !(r.lower.inclusive && r.upper.inclusive))
}

// ---------------------------------------------------------------- intersection

const startsWith = (s: Uint8Array, p: Uint8Array): boolean =>
  s.length >= p.length && compareBytes(s.subarray(0, p.length), p) === 0

/** The tag granting what both grant; undefined if they grant nothing in common. */
export function intersectTags(a: Tag, b: Tag): Tag | undefined {
  if (a.kind === 'all') return b
  if (b.kind === 'all') return a
  if (a.kind === 'set' || b.kind === 'set') {
    const [set, other] = a.kind === 'set' ? [a, b] : [b as Extract<Tag, { kind: 'set' }>, a]
    const items = normalizeSet(
      set.items.flatMap(item => {
        const r = intersectTags(item, other)
        return r == null ? [] : r.kind === 'set' ? r.items : [r]
      })
    )
    if (items.length === 0) return undefined
    return items.length === 1 ? items[0] : { kind: 'set', items }
  }
  switch (a.kind) {
    case 'bytes':
      if (b.kind === 'bytes') return compareBytes(a.value, b.value) === 0 ? a : undefined
      if (b.kind === 'prefix') return startsWith(a.value, b.value) ? a : undefined
      if (b.kind === 'range') return inRange(b, a.value) ? a : undefined
      return undefined
    case 'prefix':
      if (b.kind === 'bytes') return intersectTags(b, a)
      if (b.kind === 'prefix') {
        if (startsWith(a.value, b.value)) return a
        if (startsWith(b.value, a.value)) return b
        return undefined
      }
      // a prefix against a range or a list: not expressible exactly; grant nothing
      return undefined
    case 'range':
      if (b.kind === 'bytes') return intersectTags(b, a)
      if (b.kind === 'range' && b.ordering === a.ordering) {
        const r: Extract<Tag, { kind: 'range' }> = {
          kind: 'range',
          ordering: a.ordering,
          lower: tighter(a.ordering, a.lower, b.lower, true),
          upper: tighter(a.ordering, a.upper, b.upper, false)
        }
        if (r.lower == null) delete r.lower
        if (r.upper == null) delete r.upper
        return rangeEmpty(r) ? undefined : r
      }
      return undefined
    case 'list': {
      if (b.kind !== 'list') return undefined
      // a shorter list stands for every longer list extending it
      const n = Math.max(a.items.length, b.items.length)
      const items: Tag[] = []
      for (let i = 0; i < n; i++) {
        const r = intersectTags(a.items[i] ?? ALL, b.items[i] ?? ALL)
        if (r == null) return undefined
        items.push(r)
      }
      return { kind: 'list', items }
    }
  }
}

/**
 * Set members sorted by canonical encoding, duplicates removed, and (for sets small enough to
 * compare pairwise) members another member already covers dropped: one spelling per set.
 */
function normalizeSet(items: Tag[]): Tag[] {
  const byKey = new Map<string, Tag>()
  for (const item of items) byKey.set(tagKey(item), item)
  const sorted = [...byKey.entries()].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)).map(([, t]) => t)
  // distinct byte strings never cover one another: nothing to prune (the usual set, and pruning
  // is pairwise)
  if (sorted.length > MAX_PRUNED_SET || sorted.every(t => t.kind === 'bytes')) return sorted
  return sorted.filter((x, i) => !sorted.some((y, j) => j !== i && tagImplies(y, x) && (j < i || !tagImplies(x, y))))
}

/** Each tag object's key (tags are values, never changed once made). */
const keys = new WeakMap<Tag, string>()

/** A string identifying a tag's canonical encoding (for sorting and equality). Computed once per tag object. */
export function tagKey(tag: Tag): string {
  let key = keys.get(tag)
  if (key == null) {
    key = base16.baseEncode(encodeCanonical(tagToSexp(tag)))
    keys.set(tag, key)
  }
  return key
}

/** Each tag object's normal key and its handle (tags are values, never changed once made). */
const normalKeys = new WeakMap<Tag, { key: string; handle: string }>()
/** Most normal keys whose handles are kept. */
const MAX_KEPT_HANDLES = 4096
/** Handles by normal key, for the keys used most recently; a handle is never given to a second key. */
const handles = new Handles(MAX_KEPT_HANDLES)

function normalOf(tag: Tag): { key: string; handle: string } {
  let kept = normalKeys.get(tag)
  if (kept == null) {
    const key = tagKey(normalizeTag(tag))
    kept = { key, handle: handles.of(key) }
    normalKeys.set(tag, kept)
  }
  return kept
}

/**
 * The key of a tag's normal form (`tagKey(normalizeTag(tag))`): equal for tags that grant the
 * same. Computed once per tag object, so a caller asking for the same tag again pays a lookup.
 */
export function normalTagKey(tag: Tag): string {
  return normalOf(tag).key
}

/**
 * A short stand-in for `normalTagKey`, for keys built often: this process gives each normal key
 * its own handle, never the same one to two keys (a key forgotten and seen again gets a new one).
 */
export function normalTagHandle(tag: Tag): string {
  return normalOf(tag).handle
}

export function tagEquals(a: Tag, b: Tag): boolean {
  return tagKey(normalizeTag(a)) === tagKey(normalizeTag(b))
}

/** The same tag with every set normalized (members sorted, deduplicated, singletons unwrapped). */
export function normalizeTag(tag: Tag): Tag {
  switch (tag.kind) {
    case 'list':
      return { kind: 'list', items: tag.items.map(normalizeTag) }
    case 'set': {
      const items = normalizeSet(tag.items.map(normalizeTag).flatMap(t => (t.kind === 'set' ? t.items : [t])))
      return items.length === 1 ? items[0] : { kind: 'set', items }
    }
    default:
      return tag
  }
}

/** Whether `granted` covers all of `requested`: their intersection is `requested` itself. */
export function tagImplies(granted: Tag, requested: Tag): boolean {
  const r = intersectTags(granted, requested)
  return r != null && tagEquals(r, requested)
}
