/**
 * The public API's event handlers: the node's journal (src/work/events.ts) — its feed, in HLC
 * order — as pages (after a cursor or since an HLC, with a long poll) and as server-sent events that
 * resume from `Last-Event-ID`. Each event carries its `cursor`, its place in the feed: an SSE `id`,
 * and what `after` takes; resuming from it reads every event that joined after it, once. An event
 * joins the feed once settled (the journal's `settle` delay, 500 ms by default, after its HLC time),
 * so events that reach the node within that delay join in HLC order; one that arrives later joins
 * marked `late: true` rather than being lost. A read that starts `since` an HLC shows only events
 * after it, late ones included.
 *
 * Read with the caller's rights: the operator sees every event; an agent's token sees the events
 * of the board items it may read (`(work <board> read …)` by this node's ACL; an item no longer
 * there by the board's read right), its own agent's lifecycle, swarm messages sent to or by it,
 * broadcast swarm offers, needs and state deltas (a request or handoff only if it may read the item
 * named), membership and fleet events (what GET /api/members and /api/fleet show it anyway). A page
 * for an agent may so hold fewer events than its limit while `more` is true.
 *
 * The journal is in memory and starts anew with each run of the node: a cursor of another run is
 * refused (410 EventCursorExpiredError) with the HLC to resume from (`since=`); a point older than
 * what the journal keeps likewise (410 EventsTruncatedError, naming the oldest kept).
 *
 * A stream holds at most `backlog` events for a reader that does not keep up; past it the stream
 * says so — `event: missed` with `{ missed, resume }`, the events it did not send and the cursor
 * to resume from (null: from the oldest kept) — and ends. A revoked token's stream ends with
 * `event: end` naming ApiTokenError. An idle stream carries a comment every `heartbeat` ms.
 *
 * @example
 * GET /api/events?since=1763700000000.0&limit=100&wait=25000 → { "events": [{ "cursor": "…", "hlc": [1763700000001, 0], … }], "cursor": "…", "more": false }
 * GET /api/events/stream (Last-Event-ID: <cursor>)          → text/event-stream: `id: <cursor>` + `data: <event as JSON>` per event
 */
import { revokedSignal } from '../agent-routes.ts'
import { drained, startEventStream } from '../http.ts'
import { eventView, heldBoard } from '../work-routes.ts'
import { compareHlc, formatHlc, parseHlc } from '../../../src/clock/hlc.ts'
import { MAX_PAGE } from '../../../src/work/events.ts'
import {
  EventCursorExpiredError,
  EventsTruncatedError,
  InvalidEventQueryError
} from '../../../src/work/fleet-errors.ts'
import { workTag } from '../../../src/work/tags.ts'
import { RecentMap } from '../../../src/recent-map.ts'
import { invalidField } from './handlers-errors.ts'
import { waiterPlaces } from './handlers-common.ts'
import type { AgentTokens, Caller } from '../agent-tokens.ts'
import type { WaiterPlaces } from './handlers-common.ts'
import type { Handlers } from './handler.ts'
import type { ServerResponse } from 'node:http'
import type { Event } from '../../../src/api/schema.ts'
import type { HlcTimestamp } from '../../../src/clock/hlc.ts'
import type { PrincipalId } from '../../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../../src/node.ts'
import type { EventJournal, EventPage, JournalEvent } from '../../../src/work/events.ts'
import type { Board } from '../../../src/work/types.ts'
import type * as z from 'zod'

/** Long polls and streams of the journal open at once (the API takes MAX_API_CONNECTIONS in all). */
export const MAX_EVENT_WAITERS = 16
/** How often an idle event stream carries a comment, in ms, so proxies and clients see it alive. */
export const EVENTS_HEARTBEAT_MS = 15_000
/** Events a stream holds for a reader that does not keep up; past it the stream ends (resume with Last-Event-ID). */
export const MAX_STREAM_BACKLOG = 10_000

export interface EventHandlersOptions {
  /** ms between comments on an idle stream; default EVENTS_HEARTBEAT_MS (15 s). */
  heartbeat?: number
  /** Events a stream holds for a slow reader before it says what it missed and ends; default MAX_STREAM_BACKLOG. */
  backlog?: number
  /** The places of the journal's long polls and streams (the server's pool); MAX_EVENT_WAITERS of its own by default. */
  places?: WaiterPlaces
}

/** Longest cursor taken (the journal's own bound). */
const MAX_CURSOR_LENGTH = 4096
/** About how many bytes of a replay go out in one write (a page of small events is one write). */
const WRITE_BYTES = 64 * 1024
/** Read decisions one reader's filter remembers (per board item, at one SPKI epoch). */
const MAX_DECISIONS = 1024

type EventView = z.input<typeof Event>

/** Where a read starts: after a cursor, after an HLC, or (neither) at the oldest event kept. */
type Start = HlcTimestamp | string | undefined

/** An event as the public API answers it: its cursor (computed once by the caller), then the journal's view of it. */
function publicEvent(cursor: string, e: JournalEvent): EventView {
  return { cursor, ...eventView(e) }
}

/** The journal's refusals as the API says them: what to resume from, named by the field that was wrong. */
function journalError(err: unknown, field: string): unknown {
  if (err instanceof EventCursorExpiredError)
    return new EventCursorExpiredError(
      err.hlc,
      `${field} is a cursor of another run of the node (its journal of events starts anew at each start): resume with since=${formatHlc(err.hlc)}, the events after that HLC`
    )
  if (err instanceof EventsTruncatedError) {
    const oldest = err.oldest
    return new EventsTruncatedError(
      oldest,
      oldest == null
        ? 'the events after that point were dropped and none are kept now: read from the start (no since, no cursor)'
        : `the events after that point were dropped (the journal keeps the newest events only): resume with since=${formatHlc(oldest)}, where what is kept begins, or from the start`
    )
  }
  if (err instanceof InvalidEventQueryError) return invalidField(field, err.message)
  return err
}

/** A page of the journal after `from`; its refusals as journalError says them. */
function pageAfter(journal: EventJournal, from: Start, limit: number, field: string): EventPage {
  try {
    return typeof from === 'string' ? journal.since(undefined, { limit, after: from }) : journal.since(from, { limit })
  } catch (err) {
    throw journalError(err, field)
  }
}

/** Whether `e` is after `floor`, the HLC a read began since (every event, when it began elsewhere). */
function after(floor: HlcTimestamp | undefined, e: JournalEvent): boolean {
  return floor == null || compareHlc(e.hlc, floor) > 0
}

function hlcOf(text: string, field: string): HlcTimestamp {
  const hlc = parseHlc(text)
  if (hlc == null) throw invalidField(field, 'must be an HLC: <wall ms>.<logical>, e.g. 1763700000000.0')
  return hlc
}

/** Whether `res` drained (or needed not) within `ms`; true too when `signal` aborts. */
async function drainedWithin(res: ServerResponse, signal: AbortSignal, ms: number): Promise<boolean> {
  if (!res.writableNeedDrain || signal.aborted) return true
  return await new Promise<boolean>(resolve => {
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      res.off('drain', onDrain)
      signal.removeEventListener('abort', onDrain)
      resolve(ok)
    }
    const onDrain = (): void => done(true)
    const timer = setTimeout(() => done(false), ms)
    res.once('drain', onDrain)
    signal.addEventListener('abort', onDrain, { once: true })
  })
}

/** Resolves at the first event after `after`, when `ms` have passed, or when `signal` aborts. */
async function nextEvent(journal: EventJournal, after: Start, ms: number, signal: AbortSignal): Promise<void> {
  const stop = AbortSignal.any([signal, AbortSignal.timeout(ms)])
  await new Promise<void>((resolve, reject) => {
    let finished = false
    let off: (() => void) | undefined
    const finish = (): void => {
      if (finished) return
      finished = true
      stop.removeEventListener('abort', finish)
      off?.()
      resolve()
    }
    if (stop.aborted) return finish()
    stop.addEventListener('abort', finish, { once: true })
    try {
      off = journal.subscribe(after, finish, { signal: stop })
    } catch (err) {
      stop.removeEventListener('abort', finish)
      reject(journalError(err, 'after'))
      return
    }
    // the subscription hands over at once what arrived since the last page: then it is done already
    if (finished) off()
  })
}

/**
 * Whether `caller` may see an event (undefined: the operator, who sees every one). Decisions about
 * board items are remembered at the SPKI epoch they were made in (a new grant or revocation changes
 * the epoch, and so the decision).
 */
function visibilityOf(
  node: CyberspaceNode,
  caller: Caller
): ((e: JournalEvent, signal: AbortSignal) => Promise<boolean>) | undefined {
  if (caller.kind !== 'agent') return undefined
  const agent = caller.agent
  const decisions = new RecentMap<string, { epoch: number; allowed: boolean }>(MAX_DECISIONS)
  /** Per board, whether the agent reads the whole of it (`(work <board> read)`), at an SPKI epoch. */
  const wholeBoards = new RecentMap<string, { epoch: number; allowed: boolean }>(64)
  const boards = new RecentMap<string, Board>(64)

  /** Whether the agent reads every item of board `name`: one check a board and epoch decides its items' events. */
  const readsWholeBoard = async (name: string, epoch: number, signal: AbortSignal): Promise<boolean> => {
    const known = wholeBoards.get(name)
    if (known != null && known.epoch === epoch) return known.allowed
    let allowed: boolean
    try {
      await node.spki.authorize(agent, workTag(name, 'read'), { signal })
      allowed = true
    } catch {
      signal.throwIfAborted()
      allowed = false
    }
    wholeBoards.set(name, { epoch, allowed })
    return allowed
  }

  const mayReadItem = async (subject: string, signal: AbortSignal): Promise<boolean> => {
    const slash = subject.indexOf('/')
    if (slash <= 0) return false
    const name = subject.slice(0, slash)
    const id = subject.slice(slash + 1)
    const epoch = node.spki.epoch
    const known = decisions.get(subject)
    if (known != null && known.epoch === epoch) return known.allowed
    let board = boards.get(name)
    if (board == null) {
      board = await heldBoard(node, name)
      if (board == null) return false
      boards.set(name, board)
    }
    // a reader of the whole board reads each of its items, gone ones too
    if (await readsWholeBoard(name, epoch, signal)) return true
    const item = board.item(id)
    // gone (deleted, or not folded here): only a reader of the whole board sees what became of it
    const allowed = item != null && (await node.work.mayRead(name, agent, item, { signal }))
    decisions.set(subject, { epoch, allowed })
    return allowed
  }

  return async (e, signal) => {
    switch (e.source) {
      case 'membership':
      case 'fleet':
        return true
      case 'agent':
        return e.subject === agent
      case 'board':
        return await mayReadItem(e.subject, signal)
      case 'swarm': {
        const data = (e.data ?? {}) as { from?: PrincipalId; to?: PrincipalId }
        if (data.to !== undefined) return data.from === agent || data.to === agent
        if (e.type === 'request' || e.type === 'handoff') return await mayReadItem(e.subject, signal)
        return true
      }
    }
    return false
  }
}

export function eventHandlers(
  node: CyberspaceNode,
  tokens: AgentTokens,
  options: EventHandlersOptions = {}
): Pick<Handlers, 'events' | 'eventStream'> {
  const heartbeat = options.heartbeat ?? EVENTS_HEARTBEAT_MS
  const backlogMax = options.backlog ?? MAX_STREAM_BACKLOG
  const places = options.places ?? waiterPlaces(MAX_EVENT_WAITERS, 'event streams and long polls')
  const stall = Math.max(4 * heartbeat, 1000)

  return {
    events: async ({ query, caller, res, signal: closed }) => {
      // a token revoked while its poll waits ends the poll, refused
      const revoked = revokedSignal(tokens, caller, res)
      const signal = AbortSignal.any([closed, revoked])
      if (query.since != null && query.after != null)
        throw invalidField('query.after', 'pass since (an HLC) or after (a cursor of an earlier page), not both')
      if (query.after != null && query.after.length === 0)
        throw invalidField('query.after', 'must be a cursor of an earlier page')
      let from: Start = query.after ?? (query.since != null ? hlcOf(query.since, 'query.since') : undefined)
      const field = query.after != null ? 'query.after' : 'query.since'
      // a read since an HLC shows only events after it, also on the pages it goes on to by cursor
      const floor = typeof from === 'object' ? from : undefined
      const journal = node.work.events
      const visible = visibilityOf(node, caller)
      const deadline = Date.now() + query.wait
      let release: (() => void) | undefined
      try {
        for (;;) {
          const page = pageAfter(journal, from, query.limit, field)
          const shown: EventView[] = []
          for (const e of page.events)
            if (after(floor, e) && (visible == null || (await visible(e, signal))))
              shown.push(publicEvent(journal.cursorOf(e), e))
          from = page.cursor ?? from
          if (revoked.aborted) throw revoked.reason
          const left = deadline - Date.now()
          // a long poll waits (holding one of the places) for an event the caller may see, until its deadline
          if (shown.length > 0 || page.more || left <= 0 || signal.aborted)
            return { events: shown, ...(page.cursor != null ? { cursor: page.cursor } : {}), more: page.more }
          release ??= places.take(caller)
          await nextEvent(journal, from, left, signal)
        }
      } finally {
        release?.()
      }
    },

    eventStream: async ({ query, caller, req, res, signal }) => {
      let from: Start = query.since != null ? hlcOf(query.since, 'query.since') : undefined
      let field = 'query.since'
      // a reconnecting EventSource says where it was: the cursor of the last event it had (an HLC is taken too)
      const lastId = req.headers['last-event-id']
      if (typeof lastId === 'string' && lastId !== '') {
        field = 'header Last-Event-ID'
        if (/^\d+(\.\d+)?$/.test(lastId)) from = hlcOf(lastId, field)
        else if (lastId.length > MAX_CURSOR_LENGTH)
          throw invalidField(field, 'must be the id of an event of this stream')
        else from = lastId
      }
      const journal = node.work.events
      // a point the journal cannot read from answers a problem before the stream starts
      pageAfter(journal, from, 1, field)
      // a stream since an HLC shows only events after it, also once it goes on by cursor
      const floor = typeof from === 'object' ? from : undefined
      const release = places.take(caller)
      const revoked = revokedSignal(tokens, caller, res)
      const stop = AbortSignal.any([signal, revoked])
      const visible = visibilityOf(node, caller)
      const backlog: JournalEvent[] = []
      let dropped = 0
      let wake: (() => void) | undefined
      let unsubscribe = (): void => {}
      /** The cursor after the last event this stream has dealt with (written, or not the caller's to see). */
      let position: string | undefined = typeof from === 'string' ? from : undefined
      /** The SSE text of `e` ('' when the caller may not see it), its cursor computed once; `position` moves past it. */
      const frame = async (e: JournalEvent): Promise<string> => {
        const cursor = journal.cursorOf(e)
        const shown = after(floor, e) && (visible == null || (await visible(e, stop)))
        position = cursor
        return shown ? `id: ${cursor}\ndata: ${JSON.stringify(publicEvent(cursor, e))}\n\n` : ''
      }
      try {
        startEventStream(res)
        res.write(
          `: events after ${from == null ? 'the oldest kept' : typeof from === 'string' ? 'the cursor' : formatHlc(from)}\n\n`
        )
        try {
          // what is kept already, page by page (a slow reader holds the next page back), then live
          let cursor = from
          for (;;) {
            const page = pageAfter(journal, cursor, MAX_PAGE, field)
            // the page in few writes (of about WRITE_BYTES each), each waiting for the reader to take it
            let text = ''
            for (let i = 0; i < page.events.length && !stop.aborted; i++) {
              text += await frame(page.events[i])
              if (text.length < WRITE_BYTES && i < page.events.length - 1) continue
              if (text !== '') res.write(text)
              text = ''
              // a reader that reads nothing for a while is gone: it resumes from the last id it had
              if (!(await drainedWithin(res, stop, stall))) {
                res.destroy()
                return
              }
            }
            cursor = page.cursor ?? cursor
            if (!page.more || stop.aborted) break
            await drained(res, stop)
          }
          // where the replay ended (the point asked for, if nothing followed it): where a reader resumes
          if (typeof cursor === 'string') position = cursor
          unsubscribe = journal.subscribe(
            cursor,
            e => {
              if (backlog.length >= backlogMax) dropped++
              else backlog.push(e)
              wake?.()
            },
            { signal: stop }
          )
          while (!stop.aborted) {
            if (dropped > 0) {
              // it could not even take what it was sent: it reads nothing, and will not read `missed`
              if (res.writableNeedDrain) {
                res.destroy()
                return
              }
              const missed = backlog.length + dropped
              res.end(`event: missed\ndata: ${JSON.stringify({ missed, resume: position ?? null })}\n\n`)
              return
            }
            if (backlog.length === 0) {
              const idle = await new Promise<boolean>(resolve => {
                const timer = setTimeout(() => {
                  stop.removeEventListener('abort', done)
                  resolve(true)
                }, heartbeat)
                const done = (): void => {
                  clearTimeout(timer)
                  stop.removeEventListener('abort', done)
                  resolve(false)
                }
                wake = done
                stop.addEventListener('abort', done, { once: true })
              })
              wake = undefined
              if (idle && !stop.aborted) res.write(': heartbeat\n\n')
              continue
            }
            let text = ''
            for (const e of backlog.splice(0, backlog.length)) {
              if (stop.aborted) break
              text += await frame(e)
            }
            if (text !== '' && !stop.aborted) res.write(text)
            // wait for the reader, and wake when it falls past its backlog meanwhile
            while (res.writableNeedDrain && !stop.aborted && dropped === 0)
              await new Promise<void>(resolve => {
                const done = (): void => {
                  res.off('drain', done)
                  stop.removeEventListener('abort', done)
                  wake = undefined
                  resolve()
                }
                wake = done
                res.once('drain', done)
                stop.addEventListener('abort', done, { once: true })
              })
          }
          if (revoked.aborted) {
            const e = revoked.reason as Error
            res.end(`event: end\ndata: ${JSON.stringify({ name: e.name, message: e.message })}\n\n`)
          }
        } catch (err) {
          // once the stream has started, only an event can say what went wrong
          if (signal.aborted) return
          const e = journalError(err, field) as Error
          res.end(`event: end\ndata: ${JSON.stringify({ name: e.name, message: e.message })}\n\n`)
        }
      } finally {
        unsubscribe()
        release()
        if (!res.writableEnded) res.end()
      }
    }
  }
}
