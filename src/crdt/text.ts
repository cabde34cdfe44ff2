/**
 * Collaborative text: a sequence CRDT backed by Yjs (YATA) rather than one of our own. The state is
 * a Y.Doc whose text lives in the Y.Text named 'text'; a delta is a Yjs update (v1 encoding).
 * Unlike the other types, the mutators apply their edit to the state's doc themselves and return
 * the update of exactly that edit; merging it back is a no-op, as is merging any update twice.
 *
 * `equals` compares the text, the state vectors and the delete sets (a Yjs snapshot), never update
 * bytes: two docs with the same content may encode it differently.
 *
 * Authorship: an edit is made under the Yjs client id of its author, `textClient(replica)` (52 bits
 * of a hash of the replica id), so `checkDelta` can refuse an update that creates items under any
 * other client — which could otherwise occupy another writer's future item ids and make replicas
 * that see the forgery and the real edit in different orders disagree. As with every type here, a
 * replica id writes from one place at a time.
 *
 * Encoding: the Yjs update itself (bytes), at most limits.maxUpdateBytes; a state is the update
 * of the whole doc. Decoding applies the bytes to a scratch doc to check them.
 *
 * @example
 * const doc = text.empty()
 * const delta = text.insert(doc, { replica: 'alice', hlc }, 0, 'hello')   // doc is already changed
 * text.merge(remoteDoc, delta)
 * text.value(remoteDoc) // 'hello'
 */
import { sha256 } from '@noble/hashes/sha2.js'
import * as Y from 'yjs'
import { checkMutationContext, fail, MAX_UPDATE_BYTES, resolveLimits } from './codec.ts'
import { InvalidValueError } from './errors.ts'
import type { Limits } from './codec.ts'
import type { CrdtType, MutationContext } from './types.ts'

/** The name of the Y.Text in every doc. */
export const TEXT_NAME = 'text'
/** An update that changes nothing: no structs, an empty delete set. */
const EMPTY_UPDATE = Uint8Array.of(0, 0)
/** Room left for Yjs' own bookkeeping when checking an insert against MAX_UPDATE_BYTES. */
const UPDATE_OVERHEAD = 1024

export interface TextType extends CrdtType<Y.Doc, Uint8Array, string> {
  /** Inserts `content` at `index` (0..length, UTF-16 code units) in the doc; returns that edit's update. */
  insert(state: Y.Doc, ctx: MutationContext, index: number, content: string): Uint8Array
  /** Removes `length` code units from `index` in the doc; returns that edit's update. */
  remove(state: Y.Doc, ctx: MutationContext, index: number, length: number): Uint8Array
}

const clients = new Map<string, number>()

/** The Yjs client id a replica edits under: the first 52 bits of sha256(replica id). */
export function textClient(replica: string): number {
  let client = clients.get(replica)
  if (client == null) {
    const hash = sha256(new TextEncoder().encode(replica))
    const view = new DataView(hash.buffer, hash.byteOffset, hash.byteLength)
    client = (view.getUint32(0) >>> 12) * 2 ** 32 + view.getUint32(4)
    if (clients.size >= 4096) clients.clear()
    clients.set(replica, client)
  }
  return client
}

/** Runs `edit` in one transaction on `doc`, as the author's client, and returns the update it produced. */
function capture(doc: Y.Doc, ctx: MutationContext, edit: () => void): Uint8Array {
  // set on every edit: Yjs picks a random id again when a remote update touches the current one
  doc.clientID = textClient(ctx.replica)
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
  return update ?? EMPTY_UPDATE
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

function copyDoc(...docs: Y.Doc[]): Y.Doc {
  const doc = new Y.Doc()
  for (const source of docs) Y.applyUpdate(doc, Y.encodeStateAsUpdate(source))
  return doc
}

export const text: TextType = {
  name: 'text',
  empty: () => new Y.Doc(),
  merge: (into, delta) => {
    Y.applyUpdate(into, delta)
    return into
  },
  join: (a, b) => copyDoc(a, b),
  toDelta: state => Y.encodeStateAsUpdate(state),
  clone: state => copyDoc(state),
  equals: (a, b) => text.value(a) === text.value(b) && Y.equalSnapshots(Y.snapshot(a), Y.snapshot(b)),
  value: state => state.getText(TEXT_NAME).toString(),
  encodeState: state => Y.encodeStateAsUpdate(state),
  decodeState: (data, limits) => decodeUpdate(data, resolveLimits(limits), 'text state'),
  encodeDelta: delta => delta,
  decodeDelta: (data, limits) => {
    // applied to a scratch doc: bytes Yjs cannot apply never reach a state, and every shared type
    // the update touches shows in the scratch doc's names (Yjs creates each as it reads the items)
    decodeUpdate(data, resolveLimits(limits), 'text delta')
    return data as Uint8Array
  },
  checkDelta: (state, delta, ctx) => {
    const client = textClient(ctx.replica)
    const { structs, ds } = Y.decodeUpdate(delta)
    let ownEnd = Y.getState(state.store, client)
    for (const s of structs) {
      if (s.id.client !== client)
        fail('text delta', `creates items of Yjs client ${s.id.client}, not of its author's ${client}`)
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
    if (content.length === 0) return EMPTY_UPDATE
    return capture(state, ctx, () => ytext.insert(index, content))
  },

  remove(state, ctx, index, length) {
    checkMutationContext(ctx)
    const ytext = state.getText(TEXT_NAME)
    checkRange(index, length, ytext.length)
    if (length === 0) return EMPTY_UPDATE
    return capture(state, ctx, () => ytext.delete(index, length))
  }
}
