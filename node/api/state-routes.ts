/**
 * Control-API routes for replicated documents (`cyberspace state …`): list what this node stores,
 * read a document, update it, delete it from this node, and watch its changes by long polling.
 * Values travel as DAG-JSON (plain JSON, plus `{"/": "<cid>"}` for links and
 * `{"/": {"bytes": "<base64>"}}` for bytes), the JSON form of the data model the documents store.
 *
 * @example
 * POST /api/v0/state/update { "name": "tasks", "type": "or-map", "op": "set", "path": ["report", "owner"], "value": "ana" }
 * → { "name": "tasks", "type": "or-map", "value": { "report": { "owner": "ana" } }, "cid": "bafy…", … }
 * POST /api/v0/state/delete { "name": "tasks" } → { "name": "tasks", "deleted": true }
 * GET /api/v0/state/watch?name=tasks&after=0&wait=30000&run=<run of the previous answer>
 * → { "changes": [{ "seq": 1, "cid": "bafy…", "author": "z6Mk…", "hlc": [1763700000000, 0], "local": false }], "next": 1, … }
 */
import { randomUUID } from 'node:crypto'
import * as dagJson from '@ipld/dag-json'
import { checkLogId } from '../../protocols/log/codec.ts'
import { crdtTypes, MAX_DEPTH, MAX_KEY_LENGTH } from '../../src/crdt/index.ts'
import {
  GCounterDocument,
  LwwRegisterDocument,
  MvRegisterDocument,
  OrMapDocument,
  OrSetDocument,
  PnCounterDocument,
  TextDocument
} from '../../src/log/documents.ts'
import { STATE_OPS } from '../../src/api/schema.ts'
import { booleanField, HttpError, readJson, stringField } from './http.ts'
import type { Route } from './http.ts'
import type { CrdtName } from '../../src/crdt/types.ts'
import type { Document } from '../../src/log/documents.ts'
import type { AppendOptions, ChangeDetail } from '../../src/log/log.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { IncomingMessage } from 'node:http'
import type { CID } from 'multiformats/cid'

/** Documents watched at once through the API. */
export const MAX_WATCHED_DOCUMENTS = 64
/** Changes kept per watched document for pollers that fall behind. */
export const MAX_WATCH_CHANGES = 256
/** Longest a watch request waits for a change. */
export const MAX_WATCH_WAIT_MS = 30_000
/** Watch requests held open at once (each holds one of the API's connections); more are answered at once. */
export const MAX_WATCH_WAITERS = 16

/** The updates a document takes (one home: the public API's schema, src/api/schema.ts). */
export { STATE_OPS }
export type StateOp = (typeof STATE_OPS)[number]

export interface DocumentView {
  name: string
  type: CrdtName
  /** The value, as DAG-JSON. */
  value: unknown
  heads: string[]
  /** Events applied since the document's base snapshot. */
  events: number
  /** Served to any peer, not only to readers this node's ACL grants. */
  public: boolean
}

export interface ChangeView {
  seq: number
  kind: 'event' | 'snapshot'
  cid: string
  author: string
  /** Hybrid logical clock: wall-clock ms and logical counter. */
  hlc: [number, number]
  local: boolean
}

export interface WatchView extends DocumentView {
  /** This run of the node's API; change numbers begin again when it changes. */
  run: string
  changes: ChangeView[]
  /** The sequence number of the last change; pass it as `after` to the next watch. */
  next: number
  /** Changes after `after` that were dropped before this poll could see them. */
  missed: number
}

export type AnyDocument = Document<any, any, any>

interface Watched {
  changes: ChangeView[]
  next: number
  waiters: Set<() => void>
  /** When it was last polled (ms). */
  polled: number
  stop: () => void
}

const utf8 = new TextDecoder()
const toUtf8 = new TextEncoder()

/** A stored value as DAG-JSON (as a JSON value). */
export function jsonValue(value: unknown): unknown {
  if (value === undefined) return null
  return JSON.parse(utf8.decode(dagJson.encode(value)))
}

/** A DAG-JSON value (as parsed JSON) in the data model documents store. */
export function dataValue(json: unknown): unknown {
  try {
    return dagJson.decode(toUtf8.encode(JSON.stringify(json)))
  } catch (err) {
    throw new HttpError(400, `value is not DAG-JSON: ${(err as Error).message}`)
  }
}

export function documentView(node: CyberspaceNode, doc: AnyDocument): DocumentView {
  return {
    name: doc.name,
    type: doc.type,
    value: jsonValue(doc.value()),
    heads: doc.heads().map(String),
    events: doc.log.length,
    public: node.state.isPublic(doc.name)
  }
}

function nameParam(value: unknown): string {
  if (typeof value !== 'string') throw new HttpError(400, 'name must be a document name')
  checkLogId(value, what => {
    throw new HttpError(400, `invalid document name "${value.slice(0, 80)}": ${what}`)
  })
  return value
}

function typeParam(value: unknown): CrdtName | undefined {
  if (value == null || value === '') return undefined
  if (typeof value !== 'string' || !Object.hasOwn(crdtTypes, value))
    throw new HttpError(400, `type must be one of ${Object.keys(crdtTypes).join(', ')}`)
  return value as CrdtName
}

function pathParam(value: unknown): string[] | undefined {
  if (value == null) return undefined
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    value.length > MAX_DEPTH ||
    !value.every(k => typeof k === 'string' && k.length > 0 && k.length <= MAX_KEY_LENGTH)
  )
    throw new HttpError(400, `path must list 1-${MAX_DEPTH} field names of 1-${MAX_KEY_LENGTH} characters`)
  return value
}

function amountParam(value: unknown): number {
  if (value == null) return 1
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
    throw new HttpError(400, 'value of increment or decrement must be a whole number ≥ 1')
  return value
}

/**
 * Applies one update (`op`, at `path` for a map, with `body.value` as DAG-JSON); resolves to the
 * event's CID (undefined if it changed nothing). `options.signer` writes as that key (an agent
 * hosted here) instead of the node's: the log checks its authority to append.
 */
export async function applyUpdate(
  doc: AnyDocument,
  op: StateOp,
  path: string[] | undefined,
  body: Record<string, unknown>,
  options: AppendOptions = {}
): Promise<CID | undefined> {
  const value = (): unknown => {
    if (!Object.hasOwn(body, 'value')) throw new HttpError(400, `${op} needs a value`)
    return dataValue(body.value)
  }
  if (doc instanceof OrMapDocument) {
    if (path == null) throw new HttpError(400, `${op} on a map needs a path`)
    switch (op) {
      case 'set':
        return await doc.set(path, value(), options)
      case 'assign':
        return await doc.assign(path, value(), options)
      case 'increment':
        return await doc.increment(path, amountParam(body.value), options)
      case 'decrement':
        return await doc.decrement(path, amountParam(body.value), options)
      case 'add':
        return await doc.add(path, value(), options)
      case 'remove':
        return await doc.removeElement(path, value(), options)
      case 'delete':
        return await doc.delete(path, options)
      case 'clear':
        break
    }
  } else if (path != null) {
    throw new HttpError(400, `a ${doc.type} has no fields: only maps take a path`)
  } else if (doc instanceof LwwRegisterDocument || doc instanceof MvRegisterDocument) {
    if (op === 'set') return await doc.set(value(), options)
  } else if (doc instanceof GCounterDocument || doc instanceof PnCounterDocument) {
    if (op === 'increment') return await doc.increment(amountParam(body.value), options)
    if (op === 'decrement' && doc instanceof PnCounterDocument)
      return await doc.decrement(amountParam(body.value), options)
  } else if (doc instanceof OrSetDocument) {
    if (op === 'add') return await doc.add(value(), options)
    if (op === 'remove') return await doc.remove(value(), options)
    if (op === 'clear') return await doc.clear(options)
  } else if (doc instanceof TextDocument) {
    if (op === 'set') {
      const chars = value()
      if (typeof chars !== 'string') throw new HttpError(400, 'the value of a text is a string')
      return await doc.replace(chars, options)
    }
  }
  throw new HttpError(400, `${op} does not apply to a ${doc.type} (see the state section of the README)`)
}

export function stateRoutes(node: CyberspaceNode): { routes: Record<string, Route>; close: () => void } {
  const watched = new Map<string, Watched>()
  /** Names this run of the API: a watcher that sees it change knows the change numbers began again. */
  const run = randomUUID()
  let waiting = 0

  /** A document this node has; of `type`, if one is given. Reading never creates a document. */
  const existing = async (name: string, type: CrdtName | undefined): Promise<AnyDocument> => {
    const doc = await node.state.find(name)
    if (doc == null)
      throw new HttpError(
        404,
        `this node has no document ${name}; open it with its type (POST state/open, or a type with the update)`
      )
    if (type != null && doc.type !== type) throw new HttpError(409, `document ${name} is a ${doc.type}, not a ${type}`)
    return doc
  }

  /** For writes: the document, created (and from then on replicated) if a type is given; public if asked. */
  const opened = async (name: string, type: CrdtName | undefined, isPublic: boolean): Promise<AnyDocument> => {
    if (type == null) {
      if (isPublic) throw new HttpError(400, 'public applies when a document is opened: give its type too')
      return await existing(name, type)
    }
    return await node.state.open(name, type, isPublic ? { public: true } : {})
  }

  const watch = (doc: AnyDocument): Watched => {
    const known = watched.get(doc.name)
    if (known != null) return known
    if (watched.size >= MAX_WATCHED_DOCUMENTS) {
      // forget the watches no one has polled for a while
      for (const [name, w] of watched) {
        if (w.waiters.size === 0 && Date.now() - w.polled > 2 * MAX_WATCH_WAIT_MS) {
          w.stop()
          watched.delete(name)
        }
      }
      if (watched.size >= MAX_WATCHED_DOCUMENTS)
        throw new HttpError(429, `at most ${MAX_WATCHED_DOCUMENTS} documents are watched at once`)
    }
    const onChange = (e: CustomEvent<ChangeDetail>): void => {
      const { kind, cid, author, hlc, local } = e.detail
      w.changes.push({ seq: ++w.next, kind, cid: cid.toString(), author, hlc: [hlc[0], hlc[1]], local })
      if (w.changes.length > MAX_WATCH_CHANGES) w.changes.shift()
      for (const wake of [...w.waiters]) wake()
    }
    const w: Watched = {
      changes: [],
      next: 0,
      waiters: new Set(),
      polled: Date.now(),
      stop: () => {
        doc.removeEventListener('change', onChange)
        for (const wake of [...w.waiters]) wake()
      }
    }
    doc.addEventListener('change', onChange)
    watched.set(doc.name, w)
    return w
  }

  /** Waits for the next change, at most `ms`, or until the client goes away. */
  const nextChange = async (w: Watched, ms: number, req: IncomingMessage): Promise<void> => {
    if (req.socket.destroyed) return
    waiting++
    await new Promise<void>(resolve => {
      const wake = (): void => {
        clearTimeout(timer)
        w.waiters.delete(wake)
        req.socket.off('close', wake)
        resolve()
      }
      const timer = setTimeout(wake, ms)
      w.waiters.add(wake)
      req.socket.once('close', wake)
    }).finally(() => waiting--)
  }

  const routes: Record<string, Route> = {
    'GET state': async () => {
      const open = new Set(node.state.names())
      return (await node.state.stored()).map(d => ({
        ...d,
        open: open.has(d.name),
        public: open.has(d.name) && node.state.isPublic(d.name)
      }))
    },
    'GET state/get': async (_req, url) => {
      const params = url.searchParams
      return documentView(node, await existing(nameParam(params.get('name')), typeParam(params.get('type'))))
    },
    'POST state/open': async req => {
      const body = await readJson(req)
      const type = typeParam(body.type)
      if (type == null) throw new HttpError(400, `type must be one of ${Object.keys(crdtTypes).join(', ')}`)
      const isPublic = booleanField(body, 'public')
      return documentView(node, await node.state.open(nameParam(body.name), type, isPublic ? { public: true } : {}))
    },
    'POST state/delete': async req => {
      const name = nameParam((await readJson(req)).name)
      // watchers of the document stop seeing it
      watched.get(name)?.stop()
      watched.delete(name)
      const deleted = await node.state.delete(name, { signal: AbortSignal.timeout(60_000) })
      return { name, deleted }
    },
    'POST state/update': async req => {
      const body = await readJson(req)
      const op = stringField(body, 'op', 16) as StateOp
      if (!STATE_OPS.includes(op)) throw new HttpError(400, `op must be one of ${STATE_OPS.join(', ')}`)
      const doc = await opened(nameParam(body.name), typeParam(body.type), booleanField(body, 'public'))
      const cid = await applyUpdate(doc, op, pathParam(body.path), body)
      return { ...documentView(node, doc), cid: cid?.toString() ?? null }
    },
    'GET state/watch': async (req, url) => {
      const params = url.searchParams
      let after = Number(params.get('after') ?? '0')
      const wait = Number(params.get('wait') ?? '0')
      if (!Number.isSafeInteger(after) || after < 0) throw new HttpError(400, 'after must be a whole number ≥ 0')
      if (!Number.isSafeInteger(wait) || wait < 0 || wait > MAX_WATCH_WAIT_MS)
        throw new HttpError(400, `wait must be 0-${MAX_WATCH_WAIT_MS} ms`)
      const doc = await existing(nameParam(params.get('name')), typeParam(params.get('type')))
      const w = watch(doc)
      w.polled = Date.now()
      // numbers from another run of the API, or beyond the last change, mean nothing here: answer at once
      const stale = (params.get('run') ?? run) !== run || after > w.next
      if (stale) after = w.next
      else if (w.next === after && wait > 0 && waiting < MAX_WATCH_WAITERS) await nextChange(w, wait, req)
      const changes = w.changes.filter(c => c.seq > after)
      const first = changes.length > 0 ? changes[0].seq : w.next + 1
      const view: WatchView = {
        ...documentView(node, doc),
        run,
        changes,
        next: w.next,
        missed: Math.max(0, Math.min(first, w.next + 1) - after - 1)
      }
      return view
    }
  }
  return {
    routes,
    close: () => {
      for (const w of watched.values()) w.stop()
      watched.clear()
    }
  }
}

/** HTTP status of the state layer's named errors. */
export const STATE_ERROR_STATUS: Record<string, number> = {
  LogTypeMismatchError: 409,
  InvalidValueError: 400,
  InvalidPathError: 400,
  InvalidDeltaError: 400,
  CounterOverflowError: 400,
  InvalidEventError: 400,
  LogClosedError: 503
}
