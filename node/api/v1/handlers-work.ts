/**
 * The public API's work handlers: boards, work nodes (items named `<board>:<item>`) and the actions
 * on tasks, each performed as an agent hosted here (its key signs, its chain authorizes) and read
 * with the caller's rights; an agent's tasks across the boards this node holds.
 *
 * How an operation answers (the routes' description says it to clients): what the board refuses
 * before writing is a problem (409 with the board's error named, 403 WorkUnauthorizedError, 404 for
 * an unknown board or item); an operation written and then refused by the fold (a lost race)
 * answers 200 with `outcome.accepted: false` and the error named — as v0's `POST work/op` does.
 *
 * @example
 * POST /api/worknodes { "board": "release", "title": "ship it", "as": "z6Mk…" }  → { "ref": "release:3f9c…", "op": "create", "outcome": { "accepted": true }, "item": { … } }
 * POST /api/tasks/release:t1/claim {}                                          → { "ref": "release:t1", "op": "claim", "outcome": { "accepted": true }, "item": { "status": "working", … } }
 * GET  /api/agents/z6Mk…/tasks?status=working&limit=50                         → { "tasks": [...], "next": "release:t9" }
 */
import { randomBytes } from 'node:crypto'
import { actingAs } from '../agent-tokens.ts'
import { BOARD_PATTERN, ITEM_ID_PATTERN } from '../../../protocols/work/codec.ts'
import { boardInfo, heldBoard, performAs, workItemView } from '../work-routes.ts'
import { splitTaskRef } from '../../../src/api/schema.ts'
import { ItemNotFoundError, WorkUnauthorizedError } from '../../../src/work/errors.ts'
import { opTags, workTag } from '../../../src/work/tags.ts'
import { acting, byText, dataOf, pageOf, readerOf } from './handlers-common.ts'
import { BoardNotFoundError, invalidField } from './handlers-errors.ts'
import type { Caller } from '../agent-tokens.ts'
import type { Handlers } from './handler.ts'
import type * as z from 'zod'
import type { OpResult, WorkItem as WorkItemSchema } from '../../../src/api/schema.ts'
import type { PrincipalId } from '../../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../../src/node.ts'
import type { Board, BoardInfo, ItemStatus, ListOptions, WorkAction, WorkItem } from '../../../src/work/types.ts'
import type { WorkOp } from '../../../protocols/work/types.ts'

/** How long a board may take to open or list for one request. */
const BOARD_TIMEOUT = 30_000
/** Boards one page of an agent's tasks looks through at most; the page ends there, and `next` goes on. */
const MAX_TASK_BOARDS_PER_PAGE = 64
/** Boards one page of GET /api/boards checks an agent's read rights on at most; the page ends there, and `next` goes on. */
const MAX_BOARD_CHECKS = 64

/** A pattern's source without its ^ and $, to be part of another. */
function unanchored(pattern: RegExp): string {
  return pattern.source.replace(/^\^|\$$/g, '')
}

/** A page of an agent's tasks goes on after `<board>:<item>`, or at a board's start (`<board>:`): the work codec's patterns. */
const TASK_CURSOR = new RegExp(`^(${unanchored(BOARD_PATTERN)}):(${unanchored(ITEM_ID_PATTERN)})?$`)

type ItemView = z.input<typeof WorkItemSchema>
type OpResultView = z.input<typeof OpResult>

/** An item as the public API answers it: named `<board>:<item>`, results as DAG-JSON; lists leave out its history. */
function itemView(board: string, item: WorkItem, withHistory: boolean): ItemView {
  const { history, created, updated, ...rest } = workItemView(item)
  return {
    ref: `${board}:${item.id}`,
    board,
    ...rest,
    created: [created[0], created[1]],
    updated: [updated[0], updated[1]],
    ...(withHistory ? { history: history.map(h => ({ ...h, hlc: [h.hlc[0], h.hlc[1]] })) } : {})
  }
}

/** The fields given, without those left out (the work codec takes no undefined). */
function defined(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined))
}

/** A new item id: 12 hex digits (what ItemId takes, unlikely to collide on one board). */
function newItemId(): string {
  return randomBytes(6).toString('hex')
}

export function workHandlers(
  node: CyberspaceNode
): Pick<
  Handlers,
  | 'listBoards'
  | 'openBoard'
  | 'getBoard'
  | 'listWorknodes'
  | 'createWorknode'
  | 'getWorknode'
  | 'updateWorknode'
  | 'deleteWorknode'
  | 'claimTask'
  | 'assignTask'
  | 'releaseTask'
  | 'progressTask'
  | 'completeTask'
  | 'failTask'
  | 'cancelTask'
  | 'handoffTask'
  | 'agentTasks'
> {
  /** A board this node holds, or BoardNotFoundError naming how one comes to be held. */
  const held = async (name: string): Promise<Board> => {
    const board = await heldBoard(node, name)
    if (board == null)
      throw new BoardNotFoundError(
        `this node holds no board ${name}: open it (POST /api/boards) or create an item on it (POST /api/worknodes)`
      )
    return board
  }

  /** Whether `principal` holds `tag` by this node's ACL. */
  const holds = async (
    principal: PrincipalId,
    tag: ReturnType<typeof workTag>,
    signal: AbortSignal
  ): Promise<boolean> => {
    try {
      await node.spki.authorize(principal, tag, { signal })
      return true
    } catch {
      signal.throwIfAborted()
      return false
    }
  }

  /**
   * A board as `reader` may see it, or undefined when it may read nothing on it. A reader of the
   * whole board (`(work <board> read)`) sees it as the node does; one who may read only some of
   * its items (by kind or path) sees it without its counts (-1), which would tell of the others; a
   * board only stored here (not open) is looked into only for a reader of the whole of it.
   */
  const visibleTo = async (
    info: BoardInfo,
    reader: PrincipalId,
    signal: AbortSignal
  ): Promise<BoardInfo | undefined> => {
    if (await holds(reader, workTag(info.name, 'read'), signal)) return info
    if (info.items < 0) return undefined
    const board = await node.work.board(info.name, { mode: info.mode, signal })
    const some = await board.read({ as: reader, limit: 1, signal })
    return some.items.length > 0 ? { ...info, items: -1, ops: -1 } : undefined
  }

  /** The item `id` of `board` as `reader` may see it (undefined: the node's view), or ItemNotFoundError: unreadable is missing. */
  const readable = async (board: Board, id: string, reader: PrincipalId | undefined): Promise<WorkItem> => {
    const item = board.item(id)
    if (item == null || (reader != null && !(await node.work.mayRead(board.name, reader, item))))
      throw new ItemNotFoundError(
        `board ${board.name} has no item ${id}${reader != null ? ` that ${reader} may read` : ''} (GET /api/worknodes?board=${board.name} lists them)`
      )
    return item
  }

  /**
   * A page of `board`'s items by `options`, at most `limit`, as `reader` may see them (undefined:
   * the node's view), and the id to go on after (null: the last page).
   */
  const readPage = async (
    board: Board,
    options: ListOptions,
    limit: number,
    reader: PrincipalId | undefined
  ): Promise<{ items: WorkItem[]; next: string | null }> => {
    if (reader != null) return await board.read({ ...options, limit, as: reader })
    // the node's view: one more than the page says whether there is a next one
    const found = board.items({ ...options, limit: limit + 1 })
    const items = found.slice(0, limit)
    return { items, next: found.length > limit ? items[items.length - 1].id : null }
  }

  /** Performs `op` on the item `ref` names as the agent the request acts as; answers what became of it. */
  const act = async (
    caller: Caller,
    ref: string,
    as: string | undefined,
    asField: string,
    op: WorkAction,
    fields: Record<string, unknown>
  ): Promise<OpResultView> => {
    const { board: name, item: id } = splitTaskRef(ref)
    const actor = acting(node, caller, as, asField)
    const board = await held(name)
    const performed = await performAs(node, board, defined({ ...fields, op, item: id }), actor.agent, actor.signer)
    return {
      ref,
      op,
      outcome: performed.outcome,
      item: performed.item == null ? null : itemView(name, performed.item, false)
    }
  }

  /**
   * A task action: its body's fields (all but `as`) are the operation's. Values given as DAG-JSON
   * (`dagJson`: a result, a handoff's state) are checked here, to name the field; performing the
   * operation converts them.
   */
  const taskAction =
    (op: WorkAction, dagJson?: 'result' | 'state') =>
    async ({
      params,
      body,
      caller
    }: {
      params: { id: string }
      body: Record<string, unknown> & { as?: string }
      caller: Caller
    }): Promise<OpResultView> => {
      const { as, ...fields } = body
      if (dagJson != null && fields[dagJson] !== undefined) dataOf(fields[dagJson], `body.${dagJson}`)
      return await act(caller, params.id, as, 'body.as', op, fields)
    }

  return {
    listBoards: async ({ query, caller }) => {
      const signal = AbortSignal.timeout(BOARD_TIMEOUT)
      const boards = await node.work.boards({ signal })
      const reader = readerOf(caller)
      if (reader == null) {
        const page = pageOf(boards, b => b.name, query.after, query.limit)
        return { boards: page.items, next: page.next }
      }
      const after = query.after
      const rest = boards.filter(b => after == null || b.name > after).sort(byText(b => b.name))
      // an agent's token: only the boards it may read something on, a bounded number of checks a page
      const shown: BoardInfo[] = []
      let checks = MAX_BOARD_CHECKS
      let last: string | undefined
      for (const info of rest) {
        // full, or out of checks: the page ends, and the next goes on after the last looked at
        if (shown.length === query.limit || checks-- <= 0) return { boards: shown, next: last ?? null }
        const visible = await visibleTo(info, reader, signal)
        if (visible != null) shown.push(visible)
        last = info.name
      }
      return { boards: shown, next: null }
    },
    openBoard: async ({ body }) => {
      // without a mode: the one it has, or eventual for a new board
      const mode = body.mode ?? (await boardInfo(node, body.name))?.mode
      const board = await node.work.board(body.name, { mode, signal: AbortSignal.timeout(BOARD_TIMEOUT) })
      return (await boardInfo(node, body.name)) ?? { name: body.name, mode: board.mode, items: 0, ops: 0 }
    },
    getBoard: async ({ params, caller }) => {
      const reader = readerOf(caller)
      // a board an agent may read nothing on is answered as one this node does not hold
      const missing = (): BoardNotFoundError =>
        new BoardNotFoundError(
          `this node holds no board ${params.board}${reader != null ? ` that ${reader} may read` : ''}: open it (POST /api/boards)`
        )
      const info = await boardInfo(node, params.board)
      if (info == null) throw missing()
      const signal = AbortSignal.timeout(BOARD_TIMEOUT)
      const visible = reader == null ? info : await visibleTo(info, reader, signal)
      if (visible == null) throw missing()
      // a board only stored is opened to count its items
      if (visible.items >= 0 || visible !== info) return visible
      await held(params.board)
      return (await boardInfo(node, params.board)) ?? info
    },

    // ---------------------------------------------------------------- work nodes
    listWorknodes: async ({ query, caller }) => {
      const board = await held(query.board)
      const options: ListOptions = {
        ...(query.status != null ? { status: query.status } : {}),
        ...(query.assignee != null ? { assignee: query.assignee as PrincipalId } : {}),
        ...(query.kind != null ? { kind: query.kind } : {}),
        ...(query.parent != null ? { parent: query.parent } : {}),
        ...(query.ready === true ? { ready: true } : {}),
        ...(query.after != null ? { after: query.after } : {}),
        signal: AbortSignal.timeout(BOARD_TIMEOUT)
      }
      const page = await readPage(board, options, query.limit, readerOf(caller))
      return { items: page.items.map(i => itemView(board.name, i, false)), next: page.next }
    },
    createWorknode: async ({ body, caller }) => {
      const { as, board: name, id, kind, ...fields } = body
      const actor = acting(node, caller, as, 'body.as')
      const item = id ?? newItemId()
      const signal = AbortSignal.timeout(BOARD_TIMEOUT)
      const info = await boardInfo(node, name)
      if (info == null) {
        // a create opens a board this node does not hold (eventual) only for an actor who may make
        // that item on it, checked as the board would: a refused one leaves no board behind
        const path = fields.parent != null ? `${fields.parent}/${item}` : item
        const op = { ...fields, op: 'create', item, kind, path } as WorkOp
        for (const tag of opTags(name, op))
          if (!(await holds(actor.agent, tag, signal)))
            throw new WorkUnauthorizedError(`${actor.agent} may not create ${item} on board ${name}`)
      }
      // the board as held, in its mode
      const board = await node.work.board(name, { mode: info?.mode, signal })
      const performed = await performAs(
        node,
        board,
        defined({ ...fields, kind, op: 'create', item }),
        actor.agent,
        actor.signer
      )
      return {
        ref: `${name}:${item}`,
        op: 'create',
        outcome: performed.outcome,
        item: performed.item == null ? null : itemView(name, performed.item, false)
      }
    },
    getWorknode: async ({ params, caller }) => {
      const { board: name, item: id } = splitTaskRef(params.id)
      const board = await held(name)
      return itemView(name, await readable(board, id, readerOf(caller)), true)
    },
    updateWorknode: async ({ params, body, caller }) => {
      const { as, ...fields } = body
      return await act(caller, params.id, as, 'body.as', 'update', fields)
    },
    deleteWorknode: async ({ params, query, caller }) =>
      await act(caller, params.id, query.as, 'query.as', 'delete', {}),

    // ---------------------------------------------------------------- task actions
    claimTask: taskAction('claim'),
    assignTask: taskAction('assign'),
    releaseTask: taskAction('release'),
    progressTask: taskAction('progress'),
    completeTask: taskAction('complete', 'result'),
    failTask: taskAction('fail'),
    cancelTask: taskAction('cancel'),
    handoffTask: taskAction('handoff', 'state'),

    // ---------------------------------------------------------------- an agent's tasks
    agentTasks: async ({ params, query, caller }) => {
      const agent = params.id as PrincipalId
      actingAs(caller, agent, 'list the tasks of')
      const reader = readerOf(caller)
      // where the page starts: after an item of a board (`<board>:<item>`), or at a board's start (`<board>:`)
      let startBoard: string | undefined
      let startAfter: string | undefined
      if (query.after != null) {
        const cursor = TASK_CURSOR.exec(query.after)
        if (cursor == null)
          throw invalidField('query.after', 'must be the next of an earlier page: <board>:<item> or <board>:')
        startBoard = cursor[1]
        startAfter = cursor[2]
      }
      if (query.board != null) {
        if (startBoard != null && startBoard !== query.board)
          throw invalidField('query.after', `names board ${startBoard}, not ${query.board}`)
        if ((await boardInfo(node, query.board)) == null)
          throw new BoardNotFoundError(`this node holds no board ${query.board}`)
      }
      const names = (await node.work.boards({ signal: AbortSignal.timeout(BOARD_TIMEOUT) }))
        .map(b => b.name)
        .filter(n => (query.board == null || n === query.board) && (startBoard == null || n >= startBoard))
        .sort()
      const tasks: ItemView[] = []
      const status: ItemStatus | undefined = query.status
      for (let i = 0; i < names.length; i++) {
        const name = names[i]
        if (i >= MAX_TASK_BOARDS_PER_PAGE) return { tasks, next: `${name}:` }
        const board = await held(name)
        const after = name === startBoard ? startAfter : undefined
        const want = query.limit - tasks.length
        const options: ListOptions = {
          assignee: agent,
          ...(status != null ? { status } : {}),
          ...(after != null ? { after } : {}),
          signal: AbortSignal.timeout(BOARD_TIMEOUT)
        }
        const { items, next } = await readPage(board, options, want, reader)
        for (const item of items) tasks.push(itemView(name, item, false))
        // this board has more (the page is full, or the reader's checks ran out): go on from there
        if (next != null) return { tasks, next: `${name}:${next}` }
        if (tasks.length >= query.limit) {
          const following = names[i + 1]
          return { tasks, next: following == null ? null : `${following}:` }
        }
      }
      return { tasks, next: null }
    }
  }
}
