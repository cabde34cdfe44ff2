/**
 * Control-API routes for coordination (`cyberspace work …`, `fleet`): the boards this node
 * holds, their items (filtered, paged), operations performed as an agent hosted here (signed by its
 * key, authorized by its chain), and the fleet's heartbeats. The journal of events is the public
 * API's (GET /api/events, v1/handlers-events.ts); `cyberspace events` reads it there.
 *
 * An agent's token (agent-tokens.ts) may call WORK_TOKEN_ROUTES, and only as its own agent: its
 * operations, and reads with its own rights. Everything else needs the operator's token.
 *
 * Results and handoff states are JSON in, JSON out, as DAG-JSON (`{"/": "<cid>"}` is a link,
 * `{"/": {"bytes": "<base64>"}}` bytes). An HLC is `[wall, logical]` in bodies and `wall.logical`
 * in query strings and event ids.
 *
 * @example
 * POST /api/v0/work/boards { "board": "release", "mode": "eventual" }   → { "name": "release", "mode": "eventual", "items": 0, "ops": 0 }
 * POST /api/v0/work/op { "board": "release", "as": "z6Mk…", "op": { "op": "claim", "item": "t1" } }
 *   → { "board": "release", "op": "claim", "outcome": { "accepted": true }, "item": { "id": "t1", "status": "working", … } }
 * GET  /api/v0/work/items?board=release&ready=true&limit=50&after=t1       → { "board": "release", "items": [...], "next": "t9" }
 * GET  /api/v0/work/item?board=release&item=t1                             → { "id": "t1", "status": "working", "history": [...], … }
 * GET  /api/v0/fleet                                                       → { "totals": {...}, "members": [...], "agents": [...] }
 */
import { AgentNotFoundHereError } from '../../src/actor/agent-errors.ts'
import { isPrincipalId } from '../../src/crypto/principal.ts'
import { ItemNotFoundError, refusalError, WorkUnauthorizedError } from '../../src/work/errors.ts'
import { workTag } from '../../src/work/tags.ts'
import { CLI } from './client.ts'
import { HttpError, readJson } from './http.ts'
import { BoardNotFoundError } from './v1/handlers-errors.ts'
import { actingAs, OPERATOR } from './agent-tokens.ts'
import { dataValue, jsonValue } from './state-routes.ts'
import { BOARD_NAME, ITEM_ID, MAX_ITEMS_PAGE } from '../work-commands.ts'
import type { Caller } from './agent-tokens.ts'
import type { Route } from './http.ts'
import { ITEM_STATUSES, WORK_ACTIONS } from '../../src/work/types.ts'
import type { JournalEvent } from '../../src/work/events.ts'
import type { FleetDropReason, FleetStatus } from '../../src/work/fleet.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type {
  Board,
  BoardInfo,
  ConsistencyMode,
  ItemStatus,
  ListOptions,
  OpOutcome,
  UnscopedWorkOp,
  WorkAction,
  WorkItem
} from '../../src/work/types.ts'

/** Default items of one page. */
const DEFAULT_ITEMS_PAGE = 100
/** How long one operation through the API may take (an eventual board writes to this node's disk). */
const OP_TIMEOUT = 30_000

/**
 * The routes an agent's token may call, only as its own agent: operations (`as` must be it) and
 * reads (with its own read rights). The server consults this set beside AGENT_TOKEN_ROUTES.
 */
export const WORK_TOKEN_ROUTES: ReadonlySet<string> = new Set([
  'POST work/op',
  'GET work/boards',
  'GET work/items',
  'GET work/item'
])

const STATUSES: readonly ItemStatus[] = ITEM_STATUSES

/** What the API accepts as `op.op`. */
const API_ACTIONS: readonly WorkAction[] = WORK_ACTIONS

/** A work item as the API answers it: results and handoff states as DAG-JSON. */
export type WorkItemView = Omit<WorkItem, 'result' | 'handoff'> & {
  result?: unknown
  handoff?: { from: PrincipalId; state?: unknown }
}

export interface BoardPage {
  boards: BoardInfo[]
  /** The cursor of the next page (a board name), or null on the last one. */
  next: string | null
}

/** What `POST work/boards` answers: the board as it is now. */
export type OpenedBoard = BoardInfo

export interface ItemPage {
  board: string
  items: WorkItemView[]
  /** The cursor of the next page (an item id, passed as `after`), or null on the last one. */
  next: string | null
}

/** What `POST work/op` answers: what became of the operation, and the item after it. */
export interface WorkOpResult {
  board: string
  op: WorkAction
  /** As folded on this node; for a refusal also the name of the board's error for it. */
  outcome: OpOutcome & { error?: string }
  /** The item after the operation (null once deleted). */
  item: WorkItemView | null
}

/** The fleet as `GET fleet` answers it: totals, members' summaries, one row per agent, and heartbeats dropped by reason. */
export type FleetView = FleetStatus & { drops: Record<FleetDropReason, number> }

/** One entry of the event journal; `data` as DAG-JSON. */
export interface EventView {
  hlc: [number, number]
  source: string
  type: string
  subject: string
  data: unknown
  /** What makes it one entry across replicas (a board event's CID and index), if it has such. */
  id?: string
  /** It reached this node more than the journal's settle delay after its stamp, once later events had been shown: out of HLC order. */
  late?: true
}

/** HTTP status of the work service's named errors. */
export const WORK_ERROR_STATUS: Record<string, number> = {
  InvalidWorkOpError: 400,
  InvalidBoardNameError: 400,
  ItemNotFoundError: 404,
  // the board's refusals: the operation conflicts with the item's state
  ItemExistsError: 409,
  UnknownParentError: 409,
  UnknownDependencyError: 409,
  TooDeepError: 409,
  ItemNotReadyError: 409,
  ItemAlreadyClaimedError: 409,
  NotAssigneeError: 409,
  ItemTerminalError: 409,
  InvalidTransitionError: 409,
  ItemDeletedError: 409,
  ScopeMismatchError: 409,
  BoardModeMismatchError: 409,
  StrongModeUnavailableError: 501,
  WorkNotStartedError: 503,
  AgentNotHostedError: 404,
  InvalidWorkOptionError: 400,
  // authority: the actor's chain does not grant the operation's tag
  WorkUnauthorizedError: 403,
  // the event journal: a point older than what it keeps is gone (the message names the oldest kept)
  EventsTruncatedError: 410,
  // a cursor of another run of the node: the journal starts anew at each start
  EventCursorExpiredError: 410,
  InvalidEventQueryError: 400
}

export function workItemView(item: WorkItem): WorkItemView {
  const { result, handoff, ...rest } = item
  return {
    ...rest,
    ...(result !== undefined ? { result: jsonValue(result) } : {}),
    ...(handoff != null
      ? { handoff: { from: handoff.from, ...(handoff.state !== undefined ? { state: jsonValue(handoff.state) } : {}) } }
      : {})
  }
}

function boardParam(value: unknown, field = 'board'): string {
  if (typeof value !== 'string' || !BOARD_NAME.test(value))
    throw new HttpError(400, `${field} must be a board name: 1-64 of a-z 0-9 . _ -, starting with a letter or digit`)
  return value
}

function itemParam(value: unknown, field = 'item'): string {
  if (typeof value !== 'string' || !ITEM_ID.test(value))
    throw new HttpError(400, `${field} must be an item id: 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit`)
  return value
}

function principalParam(value: unknown, field: string): PrincipalId {
  if (typeof value !== 'string' || !isPrincipalId(value))
    throw new HttpError(400, `${field} must be an agent principal (z6Mk…): see ${CLI} agents list`)
  return value
}

function modeParam(value: unknown): ConsistencyMode | undefined {
  if (value === undefined || value === null) return undefined
  if (value !== 'local' && value !== 'eventual' && value !== 'strong')
    throw new HttpError(400, 'mode must be local or eventual (strong comes with the ordered log)')
  return value
}

function pageSize(text: string | null, fallback: number, max: number): number {
  if (text == null) return fallback
  if (!/^\d{1,4}$/.test(text) || Number(text) < 1 || Number(text) > max)
    throw new HttpError(400, `limit must be a whole number from 1 to ${max}`)
  return Number(text)
}

/**
 * Performs one operation (`op`, as JSON) on `board` as `signer`; the service checks its wire form
 * and limits (InvalidWorkOpError), the actor's authority and the transition before anything is written.
 */
async function perform(board: Board, op: Record<string, unknown>, as: Signer): Promise<OpOutcome> {
  const action = op.op
  if (typeof action !== 'string' || !(API_ACTIONS as readonly string[]).includes(action))
    throw new HttpError(400, `op.op must be one of ${API_ACTIONS.join(', ')}`)
  itemParam(op.item, 'op.item')
  // every field is checked by the work protocol's codec (InvalidWorkOpError, 400) as every replica
  // checks it; results and handoff states come as DAG-JSON (bytes and links as dag-cbor has them)
  const fields: Record<string, unknown> = { ...op }
  if (fields.result !== undefined) fields.result = dataValue(fields.result)
  if (fields.state !== undefined) fields.state = dataValue(fields.state)
  return await board.perform(fields as UnscopedWorkOp, { as, signal: AbortSignal.timeout(OP_TIMEOUT) })
}

/** The signer of `as`, an agent hosted on this node, or AgentNotFoundHereError (404) naming how to find one. */
export function actorOf(node: CyberspaceNode, as: PrincipalId): Signer {
  const signer = node.agents.agent(as)?.signer
  if (signer == null)
    throw new AgentNotFoundHereError(
      `agent ${as} does not run on this node: an operation acts as an agent hosted here (see ${CLI} agents list)`
    )
  return signer
}

/** The reader of a read: an agent's token reads as its agent; the operator as `as` if given, else as this node. */
function readerOf(caller: Caller, asParam: string | null): PrincipalId | undefined {
  const as = asParam == null ? undefined : principalParam(asParam, 'as')
  if (caller.kind === 'agent') {
    if (as != null) actingAs(caller, as, 'read as')
    return caller.agent
  }
  return as
}

/** What this node holds of the board `name`, if anything. */
export async function boardInfo(node: CyberspaceNode, name: string): Promise<BoardInfo | undefined> {
  return (await node.work.boards({ signal: AbortSignal.timeout(OP_TIMEOUT) })).find(b => b.name === name)
}

/** The board `name` in the mode it has, if this node holds it (reading never opens a new one). */
export async function heldBoard(node: CyberspaceNode, name: string): Promise<Board | undefined> {
  const info = await boardInfo(node, name)
  if (info == null) return undefined
  return await node.work.board(name, { mode: info.mode, signal: AbortSignal.timeout(OP_TIMEOUT) })
}

/** What became of an operation performed through the API, and the item after it if the actor may read it. */
export interface PerformedOp {
  /** As folded on this node; for a refusal also the name of the board's error for it. */
  outcome: OpOutcome & { error?: string }
  item: WorkItem | undefined
}

/**
 * Performs `fields` (one operation as JSON: `op`, `item` and its fields) on `board` as the hosted
 * agent `as` (`signer` its key). What the board refuses before writing throws its named error; an
 * authority refusal names the item's scope only to a reader of it. A refusal by the fold answers
 * `accepted: false` with the reason and the error's name. The item after it is told only to a reader.
 */
export async function performAs(
  node: CyberspaceNode,
  board: Board,
  fields: Record<string, unknown>,
  as: PrincipalId,
  signer: Signer
): Promise<PerformedOp> {
  const name = board.name
  const action = fields.op as WorkAction
  const id = fields.item as string
  let outcome: OpOutcome
  try {
    outcome = await perform(board, fields, signer)
  } catch (err) {
    // the chain's refusal names the tag, and so the item's kind and path: only for a reader of it
    const existing = board.item(id)
    if (err instanceof WorkUnauthorizedError && existing != null && !(await node.work.mayRead(name, as, existing)))
      throw new WorkUnauthorizedError(`${as} may not ${action} ${id} on board ${name}`)
    // whether the item exists is the board's to tell: one who may read nothing of it hears the same either way
    if (
      (err instanceof WorkUnauthorizedError || (err as Error).name === 'ItemNotFoundError') &&
      !(await mayReadBoard(node, as, name))
    )
      throw new WorkUnauthorizedError(`${as} may not ${action} ${id} on board ${name}`)
    throw err
  }
  const seen = board.item(id)
  const after = seen != null && (await node.work.mayRead(name, as, seen)) ? seen : undefined
  const refused =
    !outcome.accepted && outcome.reason != null
      ? { error: refusalError(outcome.reason, { item: id, op: action, winner: outcome.winner }).name }
      : {}
  return { outcome: { ...outcome, ...refused }, item: after }
}

/** Whether `as` may read board `name` as a whole. */
export async function mayReadBoard(node: CyberspaceNode, as: PrincipalId, name: string): Promise<boolean> {
  try {
    await node.spki.authorize(as, workTag(name, 'read'), { signal: AbortSignal.timeout(OP_TIMEOUT) })
    return true
  } catch {
    return false
  }
}

/**
 * Refuses (WorkUnauthorizedError) a create by `as` on a board this node does not hold yet, unless its
 * chain grants it: a board is opened (stored, subscribed) only for one who may create on it.
 */
export async function mayOpenByCreate(
  node: CyberspaceNode,
  as: PrincipalId,
  name: string,
  kind: string,
  item: string
): Promise<void> {
  if ((await boardInfo(node, name)) != null) return
  try {
    await node.spki.authorize(as, workTag(name, 'create', kind, item), { signal: AbortSignal.timeout(OP_TIMEOUT) })
  } catch {
    throw new WorkUnauthorizedError(`${as} may not create ${item} on board ${name}`)
  }
}

export function workRoutes(node: CyberspaceNode): Record<string, Route> {
  const infoOf = async (name: string): Promise<BoardInfo | undefined> => await boardInfo(node, name)

  /** A board this node holds (reading never opens one), or 404 naming how to open it. */
  const held = async (name: string): Promise<Board> => {
    const board = await heldBoard(node, name)
    if (board == null)
      throw new BoardNotFoundError(
        `this node holds no board ${name}: open it with ${CLI} work open ${name} (or create an item on it)`
      )
    return board
  }

  return {
    'GET work/boards': async (_req, url) => {
      const limit = pageSize(url.searchParams.get('limit'), DEFAULT_ITEMS_PAGE, MAX_ITEMS_PAGE)
      const after = url.searchParams.get('after')
      if (after != null) boardParam(after, 'after')
      const boards = (await node.work.boards({ signal: AbortSignal.timeout(OP_TIMEOUT) }))
        .filter(b => after == null || b.name > after)
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      const page = boards.slice(0, limit)
      return { boards: page, next: boards.length > limit ? page[page.length - 1].name : null } satisfies BoardPage
    },
    'POST work/boards': async req => {
      const body = await readJson(req)
      const name = boardParam(body.board)
      // without a mode: the one it has, or eventual for a new board
      const mode = modeParam(body.mode) ?? (await infoOf(name))?.mode
      const board = await node.work.board(name, { mode, signal: AbortSignal.timeout(OP_TIMEOUT) })
      const info = (await node.work.boards()).find(b => b.name === name)
      return (info ?? { name, mode: board.mode, items: 0, ops: 0 }) satisfies OpenedBoard
    },
    'GET work/items': async (_req, url, caller = OPERATOR) => {
      const params = url.searchParams
      const name = boardParam(params.get('board'))
      const limit = pageSize(params.get('limit'), DEFAULT_ITEMS_PAGE, MAX_ITEMS_PAGE)
      // one more than the page: whether there is a next one
      const options: ListOptions = { limit: limit + 1, signal: AbortSignal.timeout(OP_TIMEOUT) }
      const status = params.get('status')
      if (status != null) {
        const statuses = status.split(',')
        if (statuses.length > STATUSES.length || !statuses.every(s => (STATUSES as string[]).includes(s)))
          throw new HttpError(400, `status must be one or more of ${STATUSES.join(',')}`)
        options.status = statuses as ItemStatus[]
      }
      const assignee = params.get('assignee')
      if (assignee != null) options.assignee = principalParam(assignee, 'assignee')
      const parent = params.get('parent')
      if (parent != null) options.parent = itemParam(parent, 'parent')
      const kind = params.get('kind')
      if (kind != null) options.kind = itemParam(kind, 'kind')
      const ready = params.get('ready')
      if (ready != null && ready !== 'true' && ready !== 'false')
        throw new HttpError(400, 'ready must be true or false')
      if (ready === 'true') options.ready = true
      const after = params.get('after')
      if (after != null) options.after = itemParam(after, 'after')
      const reader = readerOf(caller, params.get('as'))
      const board = await held(name)
      // what the reader's grants let it read (a page that ends early names where to go on)
      if (reader != null) {
        const read = await board.read({ ...options, limit, as: reader })
        return { board: name, items: read.items.map(workItemView), next: read.next } satisfies ItemPage
      }
      // the node's own view
      const items = board.items(options)
      const page = items.slice(0, limit)
      return {
        board: name,
        items: page.map(workItemView),
        next: items.length > limit ? page[page.length - 1].id : null
      } satisfies ItemPage
    },
    'GET work/item': async (_req, url, caller = OPERATOR) => {
      const params = url.searchParams
      const name = boardParam(params.get('board'))
      const id = itemParam(params.get('item'))
      const reader = readerOf(caller, params.get('as'))
      const board = await held(name)
      const item = board.item(id)
      // an item the reader may not read is answered as one that does not exist: nothing of it is told
      if (item == null || (reader != null && !(await node.work.mayRead(name, reader, item))))
        throw new ItemNotFoundError(
          `board ${name} has no item ${id}${reader != null ? ` that ${reader} may read` : ''} (see ${CLI} work list ${name})`
        )
      return workItemView(item)
    },
    'POST work/op': async (req, _url, caller = OPERATOR) => {
      const body = await readJson(req)
      const name = boardParam(body.board)
      const as = principalParam(body.as, 'as')
      actingAs(caller, as, 'act on boards as')
      const op = body.op
      if (op == null || typeof op !== 'object' || Array.isArray(op))
        throw new HttpError(
          400,
          `op must be a JSON object like { "op": "claim", "item": "t1" }, op.op one of ${API_ACTIONS.join(', ')}`
        )
      const fields = op as Record<string, unknown>
      if (!(API_ACTIONS as unknown[]).includes(fields.op))
        throw new HttpError(400, `op.op must be one of ${API_ACTIONS.join(', ')}`)
      const action = fields.op as WorkAction
      const signer = actorOf(node, as)
      const mode = modeParam(body.mode)
      // only a create opens a board this node does not hold (eventual unless `mode` says); any other operation needs its items
      if (action === 'create')
        await mayOpenByCreate(
          node,
          as,
          name,
          typeof fields.kind === 'string' ? fields.kind : 'task',
          String(fields.item)
        )
      const board =
        action === 'create'
          ? await node.work.board(name, {
              mode: mode ?? (await infoOf(name))?.mode,
              signal: AbortSignal.timeout(OP_TIMEOUT)
            })
          : await held(name)
      const { outcome, item: after } = await performAs(node, board, fields, as, signer)
      return {
        board: name,
        op: action,
        outcome,
        item: after == null ? null : workItemView(after)
      } satisfies WorkOpResult
    },

    // ---------------------------------------------------------------- the fleet
    'GET fleet': async () => {
      const status = node.work.fleet.status()
      return { ...status, drops: node.work.fleet.drops() } satisfies FleetView
    }
  }
}

/** An entry of the journal as the API answers it: data as DAG-JSON (null if it has none). */
export function eventView(e: JournalEvent): EventView {
  let data: unknown = null
  try {
    data = jsonValue(e.data)
  } catch {}
  return {
    hlc: [e.hlc[0], e.hlc[1]],
    source: e.source,
    type: e.type,
    subject: e.subject,
    data,
    ...(e.id !== undefined ? { id: e.id } : {}),
    ...(e.late === true ? { late: true as const } : {})
  }
}
