/**
 * Collaborative text: a sequence CRDT backed by Yjs (YATA) rather than one of our own. The state is
 * a Y.Doc whose text lives in the Y.Text named 'text'; a delta is a Yjs update (v1 encoding) plus
 * the session it was written in. Unlike the other types, the mutators apply their edit to the
 * state's doc themselves and return the update of exactly that edit; merging it back is a no-op,
 * as is merging any update twice.
 *
 * `equals` compares the text, the state vectors and the delete sets (a Yjs snapshot), never update
 * bytes: two docs with the same content may encode it differently.
 *
 * Item ids. Yjs names every item (client, clock), and a receiver that already holds an id skips any
 * other item arriving under it, so two different items under one id leave replicas — and a replica
 * before and after a restart, whose replay order is not its arrival order — with different text.
 * Two rules keep ids unique:
 * - Writers never reuse an id. Each doc object draws a random 16-byte session the first time it is
 *   edited, and its author edits under the client `textClient(replica, session)`: 52 bits of
 *   sha256("cyberspace/text-client/v1" ‖ 0x00 ‖ session ‖ replica id). Yjs numbers a client's items
 *   on from what the doc holds, so one doc never repeats an id; every other place that writes as the
 *   same key — a restarted process, a restored backup, a copied data directory, a state rebuilt
 *   after a failed append — is another doc object, hence another session and another client.
 *   The delta carries its session, so a receiver recomputes the client from the event's author and
 *   refuses items under any other: no writer can create items under another author's client
 *   (short of a 2^52 search for a session that collides with a live one).
 * - Receivers refuse reused ids. `checkDelta` refuses an update with an item whose (client, clock)
 *   the receiver already holds, integrated or pending — exact copies included: the log applies each
 *   event once, by CID, and an honest event's items start where its ancestors' items of that
 *   session end, so an honest event never repeats one. Deletions of held items remain ordinary.
 *   Every replica therefore holds items with distinct ids, which Yjs merges to the same text in any
 *   order: replay equals the live value, and replicas that accepted the same events agree.
 * What the rules cannot settle: an author that deliberately sends two different updates for one
 * session and clock (equivocation). Each receiver keeps the one that reached it first and refuses
 * the other, so replicas that heard them in different orders keep different text — and events built
 * on the refused one wait there as missing parents. An honest writer cannot do this by accident.
 *
 * Authorship otherwise: an update creates items only under its author's client, and deletes only
 * items its author had seen (held by the receiver, or created by the same update).
 *
 * Encoding: a delta is `{ session: 16 bytes, update: bytes }`, the update at most
 * limits.maxUpdateBytes. Bare update bytes also decode — the form written before sessions, and a
 * whole state as a delta — as a delta without a session, whose items are under the client
 * `textClient(replica)` (52 bits of sha256(replica id)). A state is the update of the whole doc.
 * Decoding applies the update to a scratch doc to check it.
 *
 * @example
 * const doc = text.empty()
 * const delta = text.insert(doc, { replica: 'alice', hlc }, 0, 'hello')   // doc is already changed
 * text.merge(remoteDoc, delta)
 * text.value(remoteDoc) // 'hello'
 */
import { sha256 } from '@noble/hashes/sha2.js'
import * as Y from 'yjs'
import { checkMutationContext, expectMap, fail, MAX_UPDATE_BYTES, resolveLimits } from './codec.ts'
import { InvalidValueError } from './errors.ts'
import type { Limits } from './codec.ts'
import type { CrdtType, MutationContext } from './types.ts'

/** The name of the Y.Text in every doc. */
export const TEXT_NAME = 'text'
/** Bytes of a writer's session id. */
export const SESSION_BYTES = 16
/** An update that changes nothing: no structs, an empty delete set. */
const EMPTY_UPDATE = Uint8Array.of(0, 0)
/** Room left for Yjs' own bookkeeping when checking an insert against MAX_UPDATE_BYTES. */
const UPDATE_OVERHEAD = 1024
const CLIENT_DOMAIN = new TextEncoder().encode('cyberspace/text-client/v1\0')

/** A Yjs update and the session of the doc that wrote it (none for a whole state or the old form). */
export interface TextDelta {
  session?: Uint8Array
  update: Uint8Array
}

export interface TextType extends CrdtType<Y.Doc, TextDelta, string> {
  /** Inserts `content` at `index` (0..length, UTF-16 code units) in the doc; returns that edit's delta. */
  insert(state: Y.Doc, ctx: MutationContext, index: number, content: string): TextDelta
  /** Removes `length` code units from `index` in the doc; returns that edit's delta. */
  remove(state: Y.Doc, ctx: MutationContext, index: number, length: number): TextDelta
}

const clients = new Map<string, number>()

/**
 * The Yjs client id `replica` edits under in `session`: the first 52 bits of
 * sha256("cyberspace/text-client/v1" ‖ 0x00 ‖ session ‖ replica id); without a session (deltas
 * written before sessions), of sha256(replica id).
 */
export function textClient(replica: string, session?: Uint8Array): number {
  const key = session == null ? replica : `${replica}\n${session.join(',')}`
  let client = clients.get(key)
  if (client == null) {
    const id = new TextEncoder().encode(replica)
    let input = id
    if (session != null) {
      input = new Uint8Array(CLIENT_DOMAIN.length + session.length + id.length)
      input.set(CLIENT_DOMAIN)
      input.set(session, CLIENT_DOMAIN.length)
      input.set(id, CLIENT_DOMAIN.length + session.length)
    }
    const hash = sha256(input)
    const view = new DataView(hash.buffer, hash.byteOffset, hash.byteLength)
    client = (view.getUint32(0) >>> 12) * 2 ** 32 + view.getUint32(4)
    if (clients.size >= 4096) clients.clear()
    clients.set(key, client)
  }
  return client
}

/** Each doc object's writing session, drawn when it is first edited. */
const sessions = new WeakMap<Y.Doc, Uint8Array>()

/** The session `doc` writes in. */
export function textSession(doc: Y.Doc): Uint8Array {
  let session = sessions.get(doc)
  if (session == null) {
    session = crypto.getRandomValues(new Uint8Array(SESSION_BYTES))
    sessions.set(doc, session)
  }
  return session
}

/** Runs `edit` in one transaction on `doc`, as the author's client, and returns the delta it produced. */
function capture(doc: Y.Doc, ctx: MutationContext, edit: () => void): TextDelta {
  const session = textSession(doc)
  // set on every edit: Yjs picks a random id again when a remote update touches the current one
  doc.clientID = textClient(ctx.replica, session)
  let update: Uint8Array | undefined
  const listener = (u: Uint8Array): void => {
    update = u
  }
  doc.on('update', listener)
  try {
    doc.transact(edit, ctx)
  } finally {
    doc.off('update', listener)
  }
  return { session, update: update ?? EMPTY_UPDATE }
}

function checkRange(index: number, length: number, size: number): void {
  if (!Number.isSafeInteger(index) || index < 0 || index > size) throw new RangeError(`index must be 0-${size}`)
  if (!Number.isSafeInteger(length) || length < 0 || index + length > size) {
    throw new RangeError(`length must be 0-${size - index}`)
  }
}

/** Checks untrusted update bytes by applying them to a scratch doc, which is returned. */
function decodeUpdate(data: unknown, limits: Limits, field: string): Y.Doc {
  if (!(data instanceof Uint8Array)) fail(field, 'is not bytes')
  if (data.length > limits.maxUpdateBytes) fail(field, `is larger than ${limits.maxUpdateBytes} bytes`)
  const scratch = new Y.Doc()
  try {
    Y.applyUpdate(scratch, data)
  } catch (err) {
    fail(field, `is not a Yjs update: ${(err as Error).message}`)
  }
  for (const name of scratch.share.keys()) {
    if (name !== TEXT_NAME) fail(field, `changes the shared type "${name}"; only "${TEXT_NAME}" exists`)
  }
  return scratch
}

/**
 * The first id of `client`'s items in `[clock, clock + length)` that `doc` holds — integrated, or
 * waiting in Yjs' pending update (v2 encoded) for an item it refers to — or undefined if none.
 */
function heldId(doc: Y.Doc, client: number, clock: number, length: number): number | undefined {
  if (clock < Y.getState(doc.store, client)) return clock
  const pending = doc.store.pendingStructs
  if (pending == null) return undefined
  let first: number | undefined
  for (const s of Y.decodeUpdateV2(pending.update).structs) {
    if (s.id.client !== client || s.constructor === Y.Skip) continue
    const start = Math.max(clock, s.id.clock)
    if (start < Math.min(clock + length, s.id.clock + s.length)) first = Math.min(first ?? start, start)
  }
  return first
}

function copyDoc(...docs: Y.Doc[]): Y.Doc {
  const doc = new Y.Doc()
  for (const source of docs) Y.applyUpdate(doc, Y.encodeStateAsUpdate(source))
  return doc
}

export const text: TextType = {
  name: 'text',
  empty: () => new Y.Doc(),
  merge: (into, delta) => {
    Y.applyUpdate(into, delta.update)
    return into
  },
  join: (a, b) => copyDoc(a, b),
  toDelta: state => ({ update: Y.encodeStateAsUpdate(state) }),
  clone: state => copyDoc(state),
  equals: (a, b) => text.value(a) === text.value(b) && Y.equalSnapshots(Y.snapshot(a), Y.snapshot(b)),
  value: state => state.getText(TEXT_NAME).toString(),
  encodeState: state => Y.encodeStateAsUpdate(state),
  decodeState: (data, limits) => decodeUpdate(data, resolveLimits(limits), 'text state'),
  encodeDelta: delta => (delta.session == null ? delta.update : { session: delta.session, update: delta.update }),
  decodeDelta: (data, limits) => {
    const resolved = resolveLimits(limits)
    // applied to a scratch doc: bytes Yjs cannot apply never reach a state, and every shared type
    // the update touches shows in the scratch doc's names (Yjs creates each as it reads the items)
    if (data instanceof Uint8Array) {
      decodeUpdate(data, resolved, 'text delta')
      return { update: data }
    }
    const m = expectMap(data, 'text delta', ['session', 'update'])
    const session = m.session
    if (!(session instanceof Uint8Array) || session.length !== SESSION_BYTES) {
      fail('text delta.session', `is not ${SESSION_BYTES} bytes`)
    }
    decodeUpdate(m.update, resolved, 'text delta.update')
    return { session, update: m.update as Uint8Array }
  },
  checkDelta: (state, delta, ctx) => {
    const client = textClient(ctx.replica, delta.session)
    const { structs, ds } = Y.decodeUpdate(delta.update)
    let ownEnd = Y.getState(state.store, client)
    for (const s of structs) {
      if (s.id.client !== client)
        fail('text delta', `creates items of Yjs client ${s.id.client}, not of its author's ${client}`)
      // an id held already names other content here, or the same content twice: refused either way
      const held = heldId(state, client, s.id.clock, s.length)
      if (held != null) fail('text delta', `reuses the item id ${client}:${held}, which this replica holds`)
      ownEnd = Math.max(ownEnd, s.id.clock + s.length)
    }
    // an author deletes what it has seen: items here, or its own of this update; never items to come
    for (const [c, items] of ds.clients) {
      const known = c === client ? ownEnd : Y.getState(state.store, c)
      for (const { clock, len } of items) {
        if (clock + len > known)
          fail('text delta', `deletes items ${c}:${clock}-${clock + len - 1}, which its author had not seen`)
      }
    }
  },

  insert(state, ctx, index, content) {
    checkMutationContext(ctx)
    const ytext = state.getText(TEXT_NAME)
    checkRange(index, 0, ytext.length)
    if (typeof content !== 'string') throw new InvalidValueError('content is not a string')
    if (new TextEncoder().encode(content).length > MAX_UPDATE_BYTES - UPDATE_OVERHEAD) {
      throw new InvalidValueError(`content is too large for one update of ${MAX_UPDATE_BYTES} bytes`)
    }
    if (content.length === 0) return { session: textSession(state), update: EMPTY_UPDATE }
    return capture(state, ctx, () => ytext.insert(index, content))
  },

  remove(state, ctx, index, length) {
    checkMutationContext(ctx)
    const ytext = state.getText(TEXT_NAME)
    checkRange(index, length, ytext.length)
    if (length === 0) return { session: textSession(state), update: EMPTY_UPDATE }
    return capture(state, ctx, () => ytext.delete(index, length))
  }
}
