/**
 * The work protocol's wire form (see README.md beside this file): one operation on a board, as the
 * body of an op-log entry in the board's document `work.<board>`. The op-log (src/crdt/op-log.ts)
 * has already decoded the entry's bytes; this checks the value field by field against the limits
 * below, because every replica folds what it accepts and a value one replica refuses another must
 * refuse too. Nothing here checks authority or the state machine (src/work/board.ts does that).
 *
 * @example
 * const body = encodeWorkOp({ op: 'claim', item: 't1', kind: 'task', path: 'goal/t1' })  // checked, undefined stripped
 * const op = decodeWorkOp(entry.body)                                                  // InvalidWorkOpError naming the field
 * boardDocumentName('release')                                                         // 'work.release'
 */
import * as dagCbor from '@ipld/dag-cbor'
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import type { WorkOp } from './types.ts'

/** Prefix of a board's document name: `work.<board>`. */
export const BOARD_DOCUMENT_PREFIX = 'work.'
/** A board name: lower-case letters, digits, `.`, `_`, `-`; 1–64, starting with a letter or digit. */
export const BOARD_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/
/** A skill, as items require it and the swarm offers it (an atom of an SPKI tag: no spaces). */
export const SKILL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$/
/** An item id (and an item kind): 1–64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit. */
export const ITEM_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** A kind is spelled like an id. */
export const KIND_PATTERN = ITEM_ID_PATTERN
/** Most levels of an item's path (a root item is level 1). */
export const MAX_PATH_DEPTH = 8

export const MAX_TITLE_LENGTH = 200
export const MAX_DESCRIPTION_LENGTH = 4000
/** A progress message. */
export const MAX_MESSAGE_LENGTH = 1000
/** A release's or a cancel's reason, and a failure's error. */
export const MAX_REASON_LENGTH = 1000
export const MAX_ERROR_LENGTH = MAX_REASON_LENGTH
export const MAX_SKILLS = 32
export const MAX_SKILL_LENGTH = 64
export const MAX_DEPS = 64
export const MIN_PRIORITY = -1000
export const MAX_PRIORITY = 1000
export const MAX_ARTIFACTS = 32
export const MAX_ARTIFACT_NAME_LENGTH = 200
export const MAX_MEDIA_TYPE_LENGTH = 100
/** Longest CID string of an artifact (a CIDv1 of a 64-byte digest in base32 is about 120). */
export const MAX_CID_LENGTH = 256
/** Largest `result` (complete) or `state` (handoff), dag-cbor encoded. */
export const MAX_VALUE_BYTES = 64 * 1024
/** Deepest nesting of maps and lists in a `result` or `state` (the value itself, if a map or list, is level 1). */
export const MAX_VALUE_DEPTH = 16

/** An operation that is malformed or breaks a limit; `field` names what is wrong. */
export class InvalidWorkOpError extends Error {
  static name = 'InvalidWorkOpError'
  name = 'InvalidWorkOpError'
  readonly field: string

  constructor(field: string, message: string) {
    super(`${field}: ${message}`)
    this.field = field
  }
}

/** A board name that does not match BOARD_PATTERN. */
export class InvalidBoardNameError extends Error {
  static name = 'InvalidBoardNameError'
  name = 'InvalidBoardNameError'
}

/** The document a board lives in: `work.<board>`; InvalidBoardNameError for a malformed name. */
export function boardDocumentName(board: string): string {
  checkBoardName(board)
  return BOARD_DOCUMENT_PREFIX + board
}

/** The board whose document `name` is, or undefined if `name` is no board's document. */
export function boardOfDocument(name: string): string | undefined {
  if (typeof name !== 'string' || !name.startsWith(BOARD_DOCUMENT_PREFIX)) return undefined
  const board = name.slice(BOARD_DOCUMENT_PREFIX.length)
  return BOARD_PATTERN.test(board) ? board : undefined
}

export function checkBoardName(board: unknown): asserts board is string {
  if (typeof board !== 'string' || !BOARD_PATTERN.test(board)) {
    throw new InvalidBoardNameError(
      `a board name is 1-64 of a-z 0-9 . _ - starting with a letter or digit, not ${JSON.stringify(String(board).slice(0, 80))}`
    )
  }
}

// ---------------------------------------------------------------- fields of each operation

const SCOPE = ['op', 'item', 'kind', 'path']
/** Each operation's required fields (besides op, item, kind, path) and optional ones. */
const FIELDS: Record<WorkOp['op'], { required: string[]; optional: string[] }> = {
  create: { required: ['title'], optional: ['parent', 'description', 'skills', 'deps', 'priority', 'assignee'] },
  update: { required: [], optional: ['title', 'description', 'priority', 'skills'] },
  delete: { required: [], optional: [] },
  assign: { required: ['assignee'], optional: [] },
  claim: { required: [], optional: [] },
  release: { required: [], optional: ['reason'] },
  progress: { required: ['percent'], optional: ['message', 'status'] },
  complete: { required: [], optional: ['result', 'artifacts'] },
  fail: { required: ['error'], optional: ['rejected'] },
  cancel: { required: [], optional: ['reason'] },
  handoff: { required: ['to'], optional: ['state'] }
}
const PROGRESS_STATUSES = new Set(['working', 'input-required', 'auth-required'])
const ARTIFACT_FIELDS = 'cid,mediaType,name'
/** A principal id: `z` and base58btc of the Ed25519 multikey (0xed 0x01, then 32 bytes). */
const PRINCIPAL_PATTERN = /^z[1-9A-HJ-NP-Za-km-z]{46,50}$/

const fail = (field: string, message: string): never => {
  throw new InvalidWorkOpError(field, message)
}

function isMap(x: unknown): x is Record<string, unknown> {
  return x != null && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Uint8Array) && CID.asCID(x) == null
}

/**
 * Length in Unicode code points, or -1 if `s` holds a lone surrogate (such a string would not
 * survive the UTF-8 round trip: the local value and every replica's would differ).
 */
export function codePoints(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1)
      if (!(d >= 0xdc00 && d <= 0xdfff)) return -1
      i++
    } else if (c >= 0xdc00 && c <= 0xdfff) return -1
    n++
  }
  return n
}

function text(x: unknown, field: string, min: number, max: number): string {
  if (typeof x !== 'string') return fail(field, 'must be a string')
  const n = codePoints(x)
  if (n < 0) return fail(field, 'is not well-formed Unicode (a lone surrogate)')
  if (n < min || n > max) return fail(field, `must be ${min}-${max} characters, not ${n}`)
  return x
}

function id(x: unknown, field: string): string {
  if (typeof x !== 'string' || !ITEM_ID_PATTERN.test(x))
    return fail(field, 'must be 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit')
  return x
}

function principal(x: unknown, field: string): string {
  if (typeof x !== 'string' || !PRINCIPAL_PATTERN.test(x)) return fail(field, 'must be a principal id (z6Mk…)')
  let bytes: Uint8Array
  try {
    bytes = base58btc.decode(x)
  } catch {
    return fail(field, 'must be a principal id (base58btc)')
  }
  if (bytes.length !== 34 || bytes[0] !== 0xed || bytes[1] !== 0x01)
    fail(field, 'must be a principal id (an Ed25519 public key multikey)')
  return x
}

function list(x: unknown, field: string, max: number): unknown[] {
  if (!Array.isArray(x)) return fail(field, 'must be a list')
  if (x.length > max) return fail(field, `must have at most ${max} entries, not ${x.length}`)
  return x
}

function unique(values: string[], field: string): void {
  if (new Set(values).size !== values.length) fail(field, 'must not repeat an entry')
}

function integer(x: unknown, field: string, min: number, max: number): number {
  if (!Number.isSafeInteger(x) || (x as number) < min || (x as number) > max)
    return fail(field, `must be an integer from ${min} to ${max}`)
  return x as number
}

/** A path: 1..MAX_PATH_DEPTH ids joined by '/', ending in the item's id. */
function checkPath(x: unknown, item: string): string[] {
  if (typeof x !== 'string') return fail('path', 'must be a string')
  if (x.length > MAX_PATH_DEPTH * 65) return fail('path', 'is too long')
  const segments = x.split('/')
  if (segments.length > MAX_PATH_DEPTH)
    return fail('path', `has at most ${MAX_PATH_DEPTH} levels, not ${segments.length}`)
  for (const s of segments)
    if (!ITEM_ID_PATTERN.test(s)) fail('path', 'is ids joined by / (each 1-64 of A-Z a-z 0-9 . _ -)')
  if (segments[segments.length - 1] !== item) fail('path', 'must end in the item id')
  return segments
}

/**
 * Throws unless `value` is a dag-cbor data model value nested at most MAX_VALUE_DEPTH deep whose
 * encoding is at most MAX_VALUE_BYTES.
 */
export function checkOpValue(value: unknown, field: string): void {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }]
  let visited = 0
  while (stack.length > 0) {
    const top = stack.pop() as { value: unknown; depth: number }
    if (++visited > MAX_VALUE_BYTES) fail(field, 'has more items than its byte limit allows')
    const v = top.value
    if (v == null || typeof v !== 'object' || v instanceof Uint8Array || CID.asCID(v) != null) continue
    if (top.depth >= MAX_VALUE_DEPTH) fail(field, `is nested more than ${MAX_VALUE_DEPTH} deep`)
    for (const item of Array.isArray(v) ? v : Object.values(v)) stack.push({ value: item, depth: top.depth + 1 })
  }
  let size: number
  try {
    size = dagCbor.encode(value).length
  } catch (err) {
    return fail(field, `is not a dag-cbor value: ${(err as Error).message}`)
  }
  if (size > MAX_VALUE_BYTES) fail(field, `is ${size} bytes encoded, at most ${MAX_VALUE_BYTES}`)
}

function checkArtifact(x: unknown, field: string): void {
  if (!isMap(x) || Object.keys(x).sort().join(',') !== ARTIFACT_FIELDS)
    return fail(field, `must be a map of exactly ${ARTIFACT_FIELDS}`)
  if (typeof x.cid !== 'string' || x.cid.length === 0 || x.cid.length > MAX_CID_LENGTH)
    return fail(`${field}.cid`, 'must be a CID string')
  let cid: CID
  try {
    cid = CID.parse(x.cid)
  } catch {
    return fail(`${field}.cid`, 'must be a CID string')
  }
  if (cid.toString() !== x.cid) fail(`${field}.cid`, 'must be a CID as it prints (base32 for v1, base58btc for v0)')
  text(x.name, `${field}.name`, 1, MAX_ARTIFACT_NAME_LENGTH)
  text(x.mediaType, `${field}.mediaType`, 1, MAX_MEDIA_TYPE_LENGTH)
}

function checkSkills(x: unknown): void {
  const skills = list(x, 'skills', MAX_SKILLS)
  skills.forEach((s, i) => {
    if (typeof s !== 'string' || !SKILL_PATTERN.test(s))
      fail(
        `skills[${i}]`,
        `must be a skill: 1-${MAX_SKILL_LENGTH} of A-Z a-z 0-9 . _ : / - starting with a letter or digit`
      )
  })
  unique(skills as string[], 'skills')
}

/**
 * Checks an untrusted value (an op-log entry's body, already decoded from dag-cbor) and returns it
 * as a WorkOp: the exact fields of its operation (an unknown or missing field is refused), each
 * within its limit. InvalidWorkOpError names the first field that is wrong.
 */
export function decodeWorkOp(data: unknown): WorkOp {
  if (!isMap(data)) return fail('op', 'an operation is a map')
  const action = data.op
  if (typeof action !== 'string' || !Object.hasOwn(FIELDS, action))
    return fail('op', `unknown operation ${String(action).slice(0, 40)}`)
  const { required, optional } = FIELDS[action as WorkOp['op']]
  for (const key of Object.keys(data)) {
    if (!SCOPE.includes(key) && !required.includes(key) && !optional.includes(key))
      fail(key.slice(0, 64), `is not a field of ${action}`)
    if (data[key] === undefined) fail(key.slice(0, 64), 'is undefined (leave it out)')
  }
  for (const key of [...SCOPE, ...required]) if (!Object.hasOwn(data, key)) fail(key, `is required for ${action}`)
  const item = id(data.item, 'item')
  id(data.kind, 'kind')
  const path = checkPath(data.path, item)
  const has = (key: string): boolean => Object.hasOwn(data, key)

  switch (action as WorkOp['op']) {
    case 'create':
      text(data.title, 'title', 1, MAX_TITLE_LENGTH)
      if (has('parent')) {
        const parent = id(data.parent, 'parent')
        if (path.length < 2 || path[path.length - 2] !== parent) fail('path', 'must be the parent path, /, and the id')
      } else if (path.length !== 1) fail('path', 'of an item without a parent is its id')
      if (has('description')) text(data.description, 'description', 0, MAX_DESCRIPTION_LENGTH)
      if (has('skills')) checkSkills(data.skills)
      if (has('deps')) {
        const deps = list(data.deps, 'deps', MAX_DEPS)
        deps.forEach((d, i) => id(d, `deps[${i}]`))
        unique(deps as string[], 'deps')
      }
      if (has('priority')) integer(data.priority, 'priority', MIN_PRIORITY, MAX_PRIORITY)
      if (has('assignee')) principal(data.assignee, 'assignee')
      break
    case 'update':
      if (!optional.some(has)) fail('update', `changes at least one of ${optional.join(', ')}`)
      if (has('title')) text(data.title, 'title', 1, MAX_TITLE_LENGTH)
      if (has('description')) text(data.description, 'description', 0, MAX_DESCRIPTION_LENGTH)
      if (has('priority')) integer(data.priority, 'priority', MIN_PRIORITY, MAX_PRIORITY)
      if (has('skills')) checkSkills(data.skills)
      break
    case 'assign':
      if (data.assignee !== null) principal(data.assignee, 'assignee')
      break
    case 'release':
    case 'cancel':
      if (has('reason')) text(data.reason, 'reason', 0, MAX_REASON_LENGTH)
      break
    case 'progress':
      if (typeof data.percent !== 'number' || !Number.isFinite(data.percent) || data.percent < 0 || data.percent > 100)
        fail('percent', 'must be a number from 0 to 100')
      if (has('message')) text(data.message, 'message', 0, MAX_MESSAGE_LENGTH)
      if (has('status') && !PROGRESS_STATUSES.has(data.status as string))
        fail('status', 'must be working, input-required or auth-required')
      break
    case 'complete':
      if (has('result')) checkOpValue(data.result, 'result')
      if (has('artifacts'))
        list(data.artifacts, 'artifacts', MAX_ARTIFACTS).forEach((a, i) => checkArtifact(a, `artifacts[${i}]`))
      break
    case 'fail':
      text(data.error, 'error', 1, MAX_ERROR_LENGTH)
      if (has('rejected') && typeof data.rejected !== 'boolean') fail('rejected', 'must be true or false')
      break
    case 'handoff':
      principal(data.to, 'to')
      if (has('state')) checkOpValue(data.state, 'state')
      break
    case 'delete':
    case 'claim':
      break
  }
  return data as unknown as WorkOp
}

/**
 * The body to append for `op`: a plain map without undefined fields (at the top and in
 * artifacts), checked as decodeWorkOp checks it on every replica.
 */
export function encodeWorkOp(op: WorkOp): WorkOp {
  if (!isMap(op)) return fail('op', 'an operation is a map')
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(op)) {
    if (value === undefined) continue
    out[key] =
      key === 'artifacts' && Array.isArray(value)
        ? value.map(a => (isMap(a) ? Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined)) : a))
        : value
  }
  return decodeWorkOp(out)
}
