/**
 * Replicated documents: a log of one CRDT type behind typed update methods. Each update is one
 * signed event; `batch` puts several updates of a map in one atomic event. `change` events say
 * what changed the value: the event's CID, author and HLC, and whether it was this replica's.
 *
 * @example
 * const tasks = await node.state.open('tasks', 'or-map')
 * tasks.addEventListener('change', e => console.log(e.detail.author, tasks.value()))
 * await tasks.set(['report', 'owner'], 'z6Mk…')
 * await tasks.batch(m => { m.increment(['report', 'edits']); m.add(['report', 'tags'], 'urgent') })
 */
import { TypedEventEmitter } from 'main-event'
import { gCounter } from '../crdt/g-counter.ts'
import { lwwRegister } from '../crdt/lww-register.ts'
import { mvRegister } from '../crdt/mv-register.ts'
import { opLog } from '../crdt/op-log.ts'
import { orMap } from '../crdt/or-map.ts'
import { orSet } from '../crdt/or-set.ts'
import { pnCounter } from '../crdt/pn-counter.ts'
import { text } from '../crdt/text.ts'
import type { AppendOptions, Batch, ChangeDetail, Log } from './log.ts'
import type { CrdtName } from '../crdt/types.ts'
import type { GCounterState } from '../crdt/g-counter.ts'
import type { LwwRegisterState } from '../crdt/lww-register.ts'
import type { MvRegisterState } from '../crdt/mv-register.ts'
import type { OpLogEntry, OpLogState } from '../crdt/op-log.ts'
import type { MapPath, OrMapState } from '../crdt/or-map.ts'
import type { OrSetState } from '../crdt/or-set.ts'
import type { PnCounterState } from '../crdt/pn-counter.ts'
import type { TextDelta } from '../crdt/text.ts'
import type { Doc as YDoc } from 'yjs'
import type { AbortOptions } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export interface DocumentEvents {
  change: CustomEvent<ChangeDetail>
}

export class Document<S, D, V> extends TypedEventEmitter<DocumentEvents> {
  readonly name: string
  readonly type: CrdtName
  readonly log: Log<S, D, V>

  constructor(log: Log<S, D, V>) {
    super()
    this.name = log.id
    this.type = log.type.name
    this.log = log
    log.addEventListener('change', e => this.safeDispatchEvent('change', { detail: e.detail }))
  }

  value(): V {
    return this.log.value()
  }

  heads(): CID[] {
    return this.log.heads()
  }

  /** One event with the deltas `build` pushes; resolves to its CID (undefined if it pushed none). */
  protected async update(build: (batch: Batch<S, D>) => void, options: AbortOptions = {}): Promise<CID | undefined> {
    return (await this.log.append(build, options))?.cid
  }
}

export class GCounterDocument extends Document<GCounterState, GCounterState, number> {
  async increment(n = 1, options?: AbortOptions): Promise<CID | undefined> {
    return await this.update(b => b.push(gCounter.increment(b.state, b.ctx, n)), options)
  }
}

export class PnCounterDocument extends Document<PnCounterState, PnCounterState, number> {
  async increment(n = 1, options?: AbortOptions): Promise<CID | undefined> {
    return await this.update(b => b.push(pnCounter.increment(b.state, b.ctx, n)), options)
  }

  async decrement(n = 1, options?: AbortOptions): Promise<CID | undefined> {
    return await this.update(b => b.push(pnCounter.decrement(b.state, b.ctx, n)), options)
  }
}

export class OrSetDocument extends Document<OrSetState, OrSetState, unknown[]> {
  has(elem: unknown): boolean {
    return orSet.has(this.log.current(), elem)
  }

  async add(elem: unknown, options?: AbortOptions): Promise<CID | undefined> {
    return await this.update(b => b.push(orSet.add(b.state, b.ctx, elem)), options)
  }

  async remove(elem: unknown, options?: AbortOptions): Promise<CID | undefined> {
    return await this.update(b => b.push(orSet.remove(b.state, b.ctx, elem)), options)
  }

  async clear(options?: AbortOptions): Promise<CID | undefined> {
    return await this.update(b => b.push(orSet.clear(b.state, b.ctx)), options)
  }
}

export class LwwRegisterDocument extends Document<LwwRegisterState, LwwRegisterState, unknown> {
  async set(value: unknown, options?: AbortOptions): Promise<CID | undefined> {
    return await this.update(b => b.push(lwwRegister.set(b.state, b.ctx, value)), options)
  }
}

export class MvRegisterDocument extends Document<MvRegisterState, MvRegisterState, unknown[]> {
  async set(value: unknown, options?: AbortOptions): Promise<CID | undefined> {
    return await this.update(b => b.push(mvRegister.set(b.state, b.ctx, value)), options)
  }
}

/** The updates of a map, for `batch`: each one goes into the same event. */
export interface MapUpdates {
  set(path: MapPath | string, value: unknown): void
  assign(path: MapPath | string, value: unknown): void
  increment(path: MapPath | string, n?: number): void
  decrement(path: MapPath | string, n?: number): void
  add(path: MapPath | string, elem: unknown): void
  removeElement(path: MapPath | string, elem: unknown): void
  delete(path: MapPath | string): void
}

const asPath = (path: MapPath | string): MapPath => (typeof path === 'string' ? [path] : path)

export class OrMapDocument extends Document<OrMapState, OrMapState, Record<string, unknown>> {
  get(path: MapPath | string): unknown {
    return orMap.get(this.log.current(), asPath(path))
  }

  /** Several updates in one atomic event: every one is applied, everywhere, or none. */
  async batch(build: (updates: MapUpdates) => void, options?: AbortOptions): Promise<CID | undefined> {
    return await this.update(({ state: s, ctx, push }) => {
      build({
        set: (path, value) => push(orMap.set(s, ctx, asPath(path), value)),
        assign: (path, value) => push(orMap.assign(s, ctx, asPath(path), value)),
        increment: (path, n) => push(orMap.increment(s, ctx, asPath(path), n)),
        decrement: (path, n) => push(orMap.decrement(s, ctx, asPath(path), n)),
        add: (path, elem) => push(orMap.add(s, ctx, asPath(path), elem)),
        removeElement: (path, elem) => push(orMap.removeElement(s, ctx, asPath(path), elem)),
        delete: path => push(orMap.delete(s, ctx, asPath(path)))
      })
    }, options)
  }

  /** Last-writer-wins value at `path`. */
  async set(path: MapPath | string, value: unknown, options?: AbortOptions): Promise<CID | undefined> {
    return await this.batch(m => m.set(path, value), options)
  }

  /** Multi-value register at `path`: concurrent writes are all kept until the next write. */
  async assign(path: MapPath | string, value: unknown, options?: AbortOptions): Promise<CID | undefined> {
    return await this.batch(m => m.assign(path, value), options)
  }

  async increment(path: MapPath | string, n = 1, options?: AbortOptions): Promise<CID | undefined> {
    return await this.batch(m => m.increment(path, n), options)
  }

  async decrement(path: MapPath | string, n = 1, options?: AbortOptions): Promise<CID | undefined> {
    return await this.batch(m => m.decrement(path, n), options)
  }

  async add(path: MapPath | string, elem: unknown, options?: AbortOptions): Promise<CID | undefined> {
    return await this.batch(m => m.add(path, elem), options)
  }

  async removeElement(path: MapPath | string, elem: unknown, options?: AbortOptions): Promise<CID | undefined> {
    return await this.batch(m => m.removeElement(path, elem), options)
  }

  async delete(path: MapPath | string, options?: AbortOptions): Promise<CID | undefined> {
    return await this.batch(m => m.delete(path), options)
  }
}

export class TextDocument extends Document<YDoc, TextDelta, string> {
  toString(): string {
    return this.value()
  }

  async insert(index: number, chars: string, options?: AbortOptions): Promise<CID | undefined> {
    return await this.update(b => b.push(text.insert(b.state, b.ctx, index, chars)), options)
  }

  async remove(index: number, length: number, options?: AbortOptions): Promise<CID | undefined> {
    return await this.update(b => b.push(text.remove(b.state, b.ctx, index, length)), options)
  }

  /** Replaces the whole text, in one event. */
  async replace(chars: string, options?: AbortOptions): Promise<CID | undefined> {
    return await this.update(b => {
      const length = text.value(b.state).length
      if (length > 0) b.push(text.remove(b.state, b.ctx, 0, length))
      if (chars.length > 0) b.push(text.insert(b.state, b.ctx, 0, chars))
    }, options)
  }
}

/**
 * An op-log document: entries `{ hlc, actor, index, body }` that writers append and every replica
 * reads in one order (HLC, actor, index). Each `append` is one event signed by its writer — the
 * node, or the `signer` it names (an agent writing from this node) — and its entries carry that
 * event's HLC and author, so an entry's actor is always the principal that signed it.
 *
 * A consumer that folds entries incrementally keeps its position in `arrived()` and reads `epoch`
 * before it: while `epoch` is the one it read last, `arrived()` only grew (new entries at its end,
 * in the order this replica received them, which is not the one order); once `epoch` changes —
 * the log rebuilt its state from disk after a failed write, or an author that signed two events at
 * one HLC had an entry replaced (see src/crdt/op-log.ts) — it folds again from position 0.
 *
 * @example
 * const board = await node.state.open('work.release', 'op-log')
 * const appended = await board.append([{ op: 'claim', item: 't1' }], { signer: agent })
 * board.entries()      // every entry, in HLC, actor, index order
 */
export class OpLogDocument extends Document<OpLogState, OpLogState, readonly OpLogEntry[]> {
  private seen: readonly OpLogEntry[]
  private epochs = 0

  constructor(log: Log<OpLogState, OpLogState, readonly OpLogEntry[]>) {
    super(log)
    this.seen = log.current().arrival
  }

  /**
   * Every entry in the one order (HLC, actor, index). Later entries that sort last may be appended
   * to the returned array; it is never reordered (an entry that sorts earlier makes a new one).
   */
  entries(): readonly OpLogEntry[] {
    return this.value()
  }

  /** Every entry, in the order this replica received them; it only grows while `epoch` stays the same. */
  arrived(): readonly OpLogEntry[] {
    return this.log.current().arrival
  }

  /** How many entries the document holds. */
  get size(): number {
    return this.log.current().size
  }

  /** Changes whenever `arrived()` starts over (see the class comment); never goes back. */
  get epoch(): number {
    const arrival = this.log.current().arrival
    if (arrival !== this.seen) {
      this.seen = arrival
      this.epochs++
    }
    return this.epochs
  }

  /**
   * Appends `bodies` (dag-cbor data model values, each at most 64 KiB encoded) as one event,
   * signed by `options.signer` if given (it must be authorized to write this document) or by the
   * document's signer. Resolves to the event's CID and its entries, or undefined for no bodies.
   * The event is authorized with its entries before anything is applied: a refusal
   * (UnauthorizedEventError) leaves the document as it was.
   */
  async append(
    bodies: readonly unknown[],
    options: AppendOptions = {}
  ): Promise<{ cid: CID; entries: OpLogEntry[] } | undefined> {
    if (bodies.length === 0) return undefined
    let delta: OpLogState | undefined
    const block = await this.log.appendDeltas((state, ctx) => {
      delta = opLog.append(state, ctx, bodies)
      return [delta]
    }, options)
    if (block == null || delta == null) return undefined
    return { cid: block.cid, entries: [...delta.arrival] }
  }
}

export interface DocumentTypes {
  'g-counter': GCounterDocument
  'pn-counter': PnCounterDocument
  'or-set': OrSetDocument
  'lww-register': LwwRegisterDocument
  'mv-register': MvRegisterDocument
  'or-map': OrMapDocument
  text: TextDocument
  'op-log': OpLogDocument
}

export const documentClasses: { [T in CrdtName]: new (log: Log<any, any, any>) => DocumentTypes[T] } = {
  'g-counter': GCounterDocument,
  'pn-counter': PnCounterDocument,
  'or-set': OrSetDocument,
  'lww-register': LwwRegisterDocument,
  'mv-register': MvRegisterDocument,
  'or-map': OrMapDocument,
  text: TextDocument,
  'op-log': OpLogDocument
}
