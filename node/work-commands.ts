/**
 * `cyberspace work …`, `cyberspace fleet` and `cyberspace events`: the boards of work items on the
 * running node (create, list, show, and the operations an agent hosted there performs: claim,
 * progress, complete, fail, handoff, release, cancel), the fleet's heartbeats, and the journal of
 * events in hybrid-logical-clock order. Everything talks to the running node through its control
 * API (node/api/work-routes.ts), with the operator's token; an operation acts as the hosted agent
 * named by `--as`, signed by that agent's key and checked against that agent's chain.
 *
 * @example
 * cyberspace work create release goal --title 'ship 1.0' --kind goal --as z6MkCoord…
 * cyberspace work create release t1 --parent goal --title tests --kind task --as z6MkCoord…
 * cyberspace work list release --ready
 * cyberspace work claim release t1 --as z6MkImpl…
 * cyberspace work progress release t1 --percent 50 --message 'half way' --as z6MkImpl…
 * cyberspace work complete release t1 --result '{"passed": 120}' --as z6MkImpl…
 * cyberspace fleet
 * cyberspace events --since 1763700000000.0 --follow
 */
import { formatHlc, parseHlc } from '../src/clock/hlc.ts'
import { isPrincipalId } from '../src/crypto/principal.ts'
import { BOARD_PATTERN, ITEM_ID_PATTERN } from '../protocols/work/codec.ts'
import { CLI, connectApi } from './api/client.ts'
import { ApiError, UsageError } from './errors.ts'
import { parseBody } from './agent-commands.ts'
import type { ApiClient } from './api/client.ts'
import type { CommandHelp, GroupHelp } from './cli.ts'
import type { EventPage } from '../src/api/schema.ts'
import type * as z from 'zod'
import type { BoardPage, FleetView, ItemPage, OpenedBoard, WorkItemView, WorkOpResult } from './api/work-routes.ts'

type Out = (line: string) => void

const JSON_OPTION: [string, string] = ['--json', 'print JSON instead of text']
const AS_OPTION: [string, string] = [
  '--as <agent>',
  'the agent hosted on this node that acts (its principal, z6Mk…; see agents list): the operation is signed by its key and allowed only if its chain grants (cyberspace (work <board> <action> <kind> <path>))'
]

/** A board name: the work protocol's own pattern (its codec costs the CLI ~5 ms: its imports are loaded already). */
export const BOARD_NAME = BOARD_PATTERN
/** An item id: the work protocol's own pattern. */
export const ITEM_ID = ITEM_ID_PATTERN
/** Items one page of `work list` asks for; the API takes at most MAX_ITEMS_PAGE. */
export const MAX_ITEMS_PAGE = 500
/** Events one page of `events` asks for (the most GET /api/events answers). */
const MAX_EVENTS_PAGE = 1000
/**
 * The public journal route, GET /api/events, as a path the control API's client resolves (it
 * prefixes /api/v0/): the CLI reads the same feed as every agent, with the operator's token.
 */
const PUBLIC_EVENTS = '../events'
/** How long one long poll of `events --follow` waits (ms); the API client gives up at 60 s. */
const FOLLOW_POLL_MS = 25_000
/** Pages `work list` and `work boards` read at most (500 items a page: 50,000 items). */
const MAX_PAGES = 100
const STATUSES = [
  'submitted',
  'working',
  'input-required',
  'auth-required',
  'completed',
  'failed',
  'canceled',
  'rejected'
]
const PROGRESS_STATUSES = ['working', 'input-required', 'auth-required']

const HLC_HELP =
  'An HLC is written wall.logical (ms since the epoch, a dot, the logical counter: 1763700000000.3, as events prints it) or as a bare wall in ms (1763700000000, meaning .0).'

export const WORK_HELP: GroupHelp = {
  name: 'work',
  summary: 'boards of work items that agents create, claim, progress and complete',
  details: [
    'A board holds items (a goal, its tasks, their subtasks) with A2A states: submitted, working, input-required, auth-required, and the final completed, failed, canceled, rejected. Every change is an operation by an agent hosted on this node (--as), signed by its key, folded on every replica in HLC order; concurrent claims are settled there (earliest HLC wins).',
    'An agent needs a chain granting (cyberspace (work <board> <action> <kind> <path>)) for each operation, (cyberspace (work <board> read …)) to read: see docs/work.md.'
  ],
  commands: [
    {
      name: 'work boards',
      args: '[--json]',
      summary: 'the boards this node holds: name, mode, items, operations',
      options: [JSON_OPTION],
      example: 'work boards'
    },
    {
      name: 'work open',
      args: '<board> [--mode local|eventual]',
      summary: 'open a board here: a new one, or (eventual) one other members hold, replicated from then on',
      details: [
        'A board keeps the mode it was first opened with (another is refused: BoardModeMismatchError). local: this node only. eventual (the default): replicated to the members, conflicts settled by the fold.'
      ],
      options: [['--mode local|eventual', 'the consistency mode of a new board (default eventual)'], JSON_OPTION],
      example: 'work open release --mode eventual'
    },
    {
      name: 'work create',
      args: '<board> <item> --title <t> --kind <k> --as <agent> [options]',
      summary: 'create an item (opening the board if this node has none of that name)',
      details: [
        'An item id is 1-64 of A-Z a-z 0-9 . _ -; its path is the ids of its ancestors and its own joined by / (at most 8 levels). Dependencies are fixed at creation and must exist then; the item is ready once they are all completed.'
      ],
      options: [
        ['--title <t>', 'what is to be done (at most 200 characters)'],
        ['--kind <k>', 'the kind of item (goal, task, review…): rights can be scoped by it'],
        ['--parent <item>', 'the item it belongs to (must exist)'],
        ['--deps <a,b>', 'items that must be completed before this one is ready'],
        ['--skills <x,y>', 'skills an agent needs for it'],
        ['--priority <n>', 'a whole number from -1000 to 1000 (default 0)'],
        ['--description <text>', 'more about it (at most 4000 characters)'],
        ['--mode local|eventual', 'the mode of the board if this creates it (default eventual)'],
        AS_OPTION,
        JSON_OPTION
      ],
      example: 'work create release t1 --title tests --kind task --as z6MkCoord…'
    },
    {
      name: 'work list',
      args: '<board> [--status <s,s>] [--assignee <agent>] [--ready] [options]',
      summary: 'the items of a board: id, status, kind, assignee, title',
      options: [
        ['--status <s,s>', `only items in these states: ${STATUSES.join(' ')}`],
        ['--assignee <agent>', 'only items this agent holds'],
        ['--ready', 'only items nobody holds whose dependencies are all completed'],
        ['--parent <item>', 'only the children of this item'],
        ['--kind <k>', 'only items of this kind'],
        ['--as <agent>', "read as this hosted agent, with its rights (default: this node's)"],
        JSON_OPTION
      ],
      example: 'work list release --ready'
    },
    {
      name: 'work show',
      args: '<board> <item> [--json]',
      summary: 'one item: status, assignee, progress, result, dependencies and its history',
      options: [['--as <agent>', "read as this hosted agent, with its rights (default: this node's)"], JSON_OPTION],
      example: 'work show release t1'
    },
    {
      name: 'work claim',
      args: '<board> <item> --as <agent>',
      summary: 'take a ready item nobody holds: it becomes working, held by the agent',
      details: [
        'A claim of an item another agent holds is refused (ItemAlreadyClaimedError, naming the holder); so is one of an item not ready (ItemNotReadyError) or final (ItemTerminalError). Two claims at once on two nodes: the earlier HLC wins on every replica, the other is told.'
      ],
      options: [AS_OPTION, JSON_OPTION],
      example: 'work claim release t1 --as z6MkImpl…'
    },
    {
      name: 'work progress',
      args: '<board> <item> --percent <n> [--message <text>] --as <agent>',
      summary: 'report progress on an item the agent holds',
      options: [
        ['--percent <n>', 'a whole number from 0 to 100'],
        ['--message <text>', 'what is happening (at most 1000 characters)'],
        ['--status <s>', 'move the item to working, input-required or auth-required'],
        AS_OPTION,
        JSON_OPTION
      ],
      example: 'work progress release t1 --percent 50 --as z6MkImpl…'
    },
    {
      name: 'work complete',
      args: '<board> <item> [--result <json>] --as <agent>',
      summary: 'finish an item the agent holds, with its result: it is completed for good',
      options: [
        ['--result <json>', 'the result as JSON (DAG-JSON: {"/": "<cid>"} is a link); at most 64 KiB'],
        AS_OPTION,
        JSON_OPTION
      ],
      example: 'work complete release t1 --result \'{"passed": 120}\' --as z6MkImpl…'
    },
    {
      name: 'work fail',
      args: '<board> <item> --error <text> [--rejected] --as <agent>',
      summary: 'give up an item the agent holds: failed (or rejected: not doable) for good',
      options: [
        ['--error <text>', 'why (at most 1000 characters)'],
        ['--rejected', 'the agent declines the work as not doable (status rejected, not failed)'],
        AS_OPTION,
        JSON_OPTION
      ],
      example: "work fail release t1 --error 'the build server is gone' --as z6MkImpl…"
    },
    {
      name: 'work handoff',
      args: '<board> <item> --to <agent> [--state <json>] --as <agent>',
      summary: 'hand an item the agent holds to another agent, with the work done so far',
      options: [
        ['--to <agent>', 'the principal that holds the item from now on'],
        ['--state <json>', 'the state of the work so far, as JSON (at most 64 KiB)'],
        AS_OPTION,
        JSON_OPTION
      ],
      example: 'work handoff release t1 --to z6MkOther… --as z6MkImpl…'
    },
    {
      name: 'work release',
      args: '<board> <item> [--message <reason>] --as <agent>',
      summary: 'let go of an item the agent holds: submitted again, for anyone to claim',
      options: [['--message <reason>', 'why (at most 1000 characters)'], AS_OPTION, JSON_OPTION],
      example: 'work release release t1 --as z6MkImpl…'
    },
    {
      name: 'work cancel',
      args: '<board> <item> [--message <reason>] --as <agent>',
      summary: 'cancel an item that is not final: canceled for good',
      options: [['--message <reason>', 'why (at most 1000 characters)'], AS_OPTION, JSON_OPTION],
      example: 'work cancel release t1 --as z6MkCoord…'
    }
  ]
}

export const FLEET_HELP: CommandHelp = {
  name: 'fleet',
  args: '[--json]',
  summary: "the fleet's agents from their heartbeats: a totals line, then one row per agent",
  details: [
    'Every node publishes the heartbeats of the agents it hosts (status active, idle, overloaded or retiring, load, tasks done and failed, mean latency). A row older than 3 heartbeat intervals is stale.'
  ],
  options: [JSON_OPTION],
  example: 'fleet --json'
}

export const EVENTS_HELP: CommandHelp = {
  name: 'events',
  args: '[--since <hlc>] [--follow] [--limit <n>] [--json]',
  summary: 'changes to boards, agents and membership, in HLC order; --follow keeps printing new ones',
  details: [HLC_HELP, 'Each line starts with the HLC of its event: pass the last one as --since to go on from there.'],
  options: [
    ['--since <hlc>', 'only events after this HLC (default: the oldest the node keeps)'],
    ['--follow', 'after the events so far, print new ones as they happen (Ctrl-C stops)'],
    ['--limit <n>', `print at most n events (without --follow), 1-${MAX_EVENTS_PAGE * MAX_PAGES}`],
    ['--json', 'one JSON object per event (JSON lines)']
  ],
  example: 'events --since 1763700000000.0 --follow'
}

/** The flags `work`, `fleet` and `events` add to the CLI's (cli.ts spreads them into its own). */
export const WORK_OPTIONS = {
  title: { type: 'string' },
  description: { type: 'string' },
  parent: { type: 'string' },
  deps: { type: 'string' },
  skills: { type: 'string' },
  priority: { type: 'string' },
  as: { type: 'string' },
  status: { type: 'string' },
  assignee: { type: 'string' },
  ready: { type: 'boolean' },
  percent: { type: 'string' },
  message: { type: 'string' },
  result: { type: 'string' },
  rejected: { type: 'boolean' },
  to: { type: 'string' },
  mode: { type: 'string' },
  since: { type: 'string' },
  follow: { type: 'boolean' }
} as const

export interface WorkFlags {
  json?: boolean
  title?: string
  description?: string
  parent?: string
  deps?: string
  skills?: string
  priority?: string
  as?: string
  status?: string
  assignee?: string
  ready?: boolean
  percent?: string
  message?: string
  result?: string
  rejected?: boolean
  to?: string
  mode?: string
  since?: string
  follow?: boolean
  kind?: string[]
  error?: string
  state?: string
  limit?: string
}

function boardArg(text: string): string {
  if (!BOARD_NAME.test(text))
    throw new UsageError(
      `board "${text.slice(0, 80)}" is not 1-64 of a-z 0-9 . _ - starting with a letter or digit (see ${CLI} work boards)`
    )
  return text
}

function itemArg(text: string, what = '<item>'): string {
  if (!ITEM_ID.test(text))
    throw new UsageError(
      `${what} "${text.slice(0, 80)}" is not 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit`
    )
  return text
}

function principalFlag(text: string | undefined, flag: string): string {
  if (text == null || text === '')
    throw new UsageError(`${flag} <agent> is needed: the principal of an agent hosted here (see ${CLI} agents list)`)
  if (!isPrincipalId(text))
    throw new UsageError(`${flag} "${text.slice(0, 80)}" is not an agent principal (z6Mk…): see ${CLI} agents list`)
  return text
}

/** A comma-separated list of ids (`--deps a,b`), each checked. */
function idList(text: string, flag: string): string[] {
  const ids = text.split(',').map(s => s.trim())
  for (const id of ids) itemArg(id, flag)
  return ids
}

function wholeFlag(text: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (text == null) return undefined
  if (!/^-?\d{1,9}$/.test(text) || Number(text) < min || Number(text) > max)
    throw new UsageError(`${flag} ${text.slice(0, 80)} is not a whole number from ${min} to ${max}`)
  return Number(text)
}

function modeFlag(text: string | undefined): string | undefined {
  if (text == null) return undefined
  if (text !== 'local' && text !== 'eventual')
    throw new UsageError(
      `--mode ${text.slice(0, 80)}: pass --mode local or --mode eventual (strong comes with the ordered log)`
    )
  return text
}

/** The one `--kind` of an item (the CLI's --kind is repeatable for start). */
function kindFlag(flags: WorkFlags, required: boolean): string | undefined {
  const kinds = flags.kind ?? []
  if (kinds.length > 1) throw new UsageError('pass one --kind')
  if (kinds.length === 0) {
    if (required) throw new UsageError('work create needs --kind <k>: the kind of item (goal, task, review…)')
    return undefined
  }
  return itemArg(kinds[0], '--kind')
}

/**
 * What the board's refusals mean and what to do about them: appended to the node's message, which
 * names the error (the CLI strips "XError: " prefixes, so the name goes in parentheses).
 */
const REFUSAL_HINTS: Record<string, string> = {
  ItemAlreadyClaimedError: 'another agent holds it: see work show',
  ItemNotReadyError: 'its dependencies are not all completed: see work show',
  NotAssigneeError: 'only the agent holding it may do that: see work show',
  ItemTerminalError: 'nothing changes a final item: see work show',
  InvalidTransitionError: 'its status does not allow that: see work show',
  ItemNotFoundError: 'see work list',
  ItemDeletedError: 'it was deleted',
  ItemExistsError: 'ids are never reused, even after a delete: pick another',
  UnknownParentError: 'create the parent first',
  UnknownDependencyError: 'create the dependencies first',
  BoardModeMismatchError: 'see work boards'
}

/** The node's refusal of a work operation as one line naming the error and, where one helps, the fix. */
function refusal(err: unknown, board: string, item?: string): unknown {
  // only the node's named errors: a plain HttpError carries the name Error, and its message says enough
  if (!(err instanceof ApiError) || err.errorName == null || err.errorName === 'Error' || err.status >= 500) return err
  const hint = REFUSAL_HINTS[err.errorName]
  const fix =
    hint == null
      ? ''
      : `; ${hint.replace(/work (show|list|boards)$/, m => `${CLI} ${m}${m === 'work boards' ? '' : ` ${board}${m === 'work show' && item != null ? ` ${item}` : ''}`}`)}`
  return new ApiError(`${err.message} (${err.errorName})${fix}`, err.status, err.errorName, err.details)
}

/** The words after `work`, as cli.ts passes them. */
type WorkVerb =
  | 'boards'
  | 'open'
  | 'create'
  | 'list'
  | 'show'
  | 'claim'
  | 'progress'
  | 'complete'
  | 'fail'
  | 'handoff'
  | 'release'
  | 'cancel'

export async function workCommand(dataDir: string, args: string[], flags: WorkFlags, out: Out): Promise<number> {
  const [verb, ...rest] = args as [WorkVerb, ...string[]]
  const only = (n: number, usage: string): string[] => {
    if (rest.length !== n) throw new UsageError(`usage: cyberspace work ${verb} ${usage}`)
    return rest
  }
  const json = flags.json === true
  switch (verb) {
    case 'boards': {
      only(0, '[--json]')
      const api = await connectApi(dataDir)
      const boards: BoardPage['boards'] = []
      let after: string | null = null
      for (let pages = 0; pages < MAX_PAGES; pages++) {
        const query: Record<string, string> = { limit: String(MAX_ITEMS_PAGE) }
        if (after != null) query.after = after
        const page: BoardPage = await api.get<BoardPage>('work/boards', query)
        boards.push(...page.boards)
        after = page.next
        if (after == null) break
      }
      if (json) out(JSON.stringify(boards))
      else if (boards.length === 0) out(`# no boards on this node: ${CLI} work create <board> <item> … opens one`)
      else
        for (const b of boards)
          // a board stored here but not opened since the node started has not been folded yet
          out(
            b.items < 0
              ? `${b.name}  ${b.mode}  (stored, not open: ${CLI} work open ${b.name})`
              : `${b.name}  ${b.mode}  ${b.items} items  ${b.ops} operations`
          )
      return 0
    }
    case 'open': {
      const [board] = only(1, '<board> [--mode local|eventual]')
      boardArg(board)
      const mode = modeFlag(flags.mode)
      const opened = await (
        await connectApi(dataDir)
      )
        .post<OpenedBoard>('work/boards', { board, mode })
        .catch((err: unknown) => {
          throw refusal(err, board)
        })
      if (json) out(JSON.stringify(opened))
      else out(`opened ${opened.name} (${opened.mode}): ${opened.items} items, ${opened.ops} operations`)
      return 0
    }
    case 'create': {
      const [board, item] = only(2, '<board> <item> --title <t> --kind <k> --as <agent> [options]')
      boardArg(board)
      itemArg(item)
      if (flags.title == null || flags.title === '')
        throw new UsageError('work create needs --title <t>: what is to be done')
      const op = {
        op: 'create',
        item,
        title: flags.title,
        kind: kindFlag(flags, true),
        parent: flags.parent == null ? undefined : itemArg(flags.parent, '--parent'),
        deps: flags.deps == null ? undefined : idList(flags.deps, '--deps'),
        skills: flags.skills == null ? undefined : flags.skills.split(',').map(s => s.trim()),
        priority: wholeFlag(flags.priority, '--priority', -1000, 1000),
        description: flags.description
      }
      return await operate(dataDir, { board, op, mode: modeFlag(flags.mode) }, flags, out, 'created')
    }
    case 'list': {
      const [board] = only(1, '<board> [--status <s,s>] [--assignee <agent>] [--ready] [options]')
      boardArg(board)
      const query: Record<string, string> = { board, limit: String(MAX_ITEMS_PAGE) }
      if (flags.status != null) {
        for (const s of flags.status.split(','))
          if (!STATUSES.includes(s))
            throw new UsageError(`--status ${s.slice(0, 40)} is not a status: pass some of ${STATUSES.join(',')}`)
        query.status = flags.status
      }
      if (flags.assignee != null) query.assignee = principalFlag(flags.assignee, '--assignee')
      if (flags.parent != null) query.parent = itemArg(flags.parent, '--parent')
      const kind = kindFlag(flags, false)
      if (kind != null) query.kind = kind
      if (flags.ready === true) query.ready = 'true'
      if (flags.as != null) query.as = principalFlag(flags.as, '--as')
      const api = await connectApi(dataDir)
      const items: WorkItemView[] = []
      for (let pages = 0; pages < MAX_PAGES; pages++) {
        const page = await api.get<ItemPage>('work/items', query).catch((err: unknown) => {
          throw refusal(err, board)
        })
        items.push(...page.items)
        if (page.next == null) break
        query.after = page.next
      }
      if (json) out(JSON.stringify(items))
      else if (items.length === 0) out(`# no such items on board ${board}`)
      else for (const i of items) out(itemLine(i))
      return 0
    }
    case 'show': {
      const [board, item] = only(2, '<board> <item> [--json]')
      boardArg(board)
      itemArg(item)
      const query: Record<string, string> = { board, item }
      if (flags.as != null) query.as = principalFlag(flags.as, '--as')
      const view = await (await connectApi(dataDir)).get<WorkItemView>('work/item', query).catch((err: unknown) => {
        throw refusal(err, board, item)
      })
      if (json) out(JSON.stringify(view))
      else printItem(out, board, view)
      return 0
    }
    case 'claim': {
      const [board, item] = only(2, '<board> <item> --as <agent>')
      return await operate(
        dataDir,
        { board: boardArg(board), op: { op: 'claim', item: itemArg(item) } },
        flags,
        out,
        'claimed'
      )
    }
    case 'progress': {
      const [board, item] = only(2, '<board> <item> --percent <n> [--message <text>] --as <agent>')
      const percent = wholeFlag(flags.percent, '--percent', 0, 100)
      if (percent == null) throw new UsageError('work progress needs --percent <n>: a whole number from 0 to 100')
      if (flags.status != null && !PROGRESS_STATUSES.includes(flags.status))
        throw new UsageError(`--status ${flags.status.slice(0, 40)}: pass ${PROGRESS_STATUSES.join(', ')}`)
      const op = { op: 'progress', item: itemArg(item), percent, message: flags.message, status: flags.status }
      return await operate(dataDir, { board: boardArg(board), op }, flags, out, 'progress on')
    }
    case 'complete': {
      const [board, item] = only(2, '<board> <item> [--result <json>] --as <agent>')
      const op = { op: 'complete', item: itemArg(item), result: parseBody(flags.result, '--result') }
      return await operate(dataDir, { board: boardArg(board), op }, flags, out, 'completed')
    }
    case 'fail': {
      const [board, item] = only(2, '<board> <item> --error <text> [--rejected] --as <agent>')
      if (flags.error == null || flags.error === '') throw new UsageError('work fail needs --error <text>: why')
      const op = {
        op: 'fail',
        item: itemArg(item),
        error: flags.error,
        rejected: flags.rejected === true ? true : undefined
      }
      return await operate(
        dataDir,
        { board: boardArg(board), op },
        flags,
        out,
        flags.rejected === true ? 'rejected' : 'failed'
      )
    }
    case 'handoff': {
      const [board, item] = only(2, '<board> <item> --to <agent> [--state <json>] --as <agent>')
      const op = {
        op: 'handoff',
        item: itemArg(item),
        to: principalFlag(flags.to, '--to'),
        state: parseBody(flags.state, '--state')
      }
      return await operate(dataDir, { board: boardArg(board), op }, flags, out, 'handed off')
    }
    case 'release':
    case 'cancel': {
      const [board, item] = only(2, '<board> <item> [--message <reason>] --as <agent>')
      const op = { op: verb, item: itemArg(item), reason: flags.message }
      return await operate(
        dataDir,
        { board: boardArg(board), op },
        flags,
        out,
        verb === 'release' ? 'released' : 'canceled'
      )
    }
  }
}

/** Sends one operation as `--as`, prints what became of it; exit 1 when the board refused it. */
async function operate(
  dataDir: string,
  request: { board: string; op: Record<string, unknown>; mode?: string },
  flags: WorkFlags,
  out: Out,
  done: string
): Promise<number> {
  const as = principalFlag(flags.as, '--as')
  const item = request.op.item as string
  const result = await (
    await connectApi(dataDir)
  )
    .post<WorkOpResult>('work/op', { ...request, as })
    .catch((err: unknown) => {
      throw refusal(err, request.board, item)
    })
  const { outcome } = result
  if (flags.json === true) out(JSON.stringify(result))
  if (!outcome.accepted) {
    // written, but the fold refused it (a concurrent operation came first): say so, and exit 1
    const holder = outcome.winner == null ? '' : `; ${outcome.winner} holds it`
    throw new ApiError(
      `${String(request.op.op)} of ${item} on ${request.board} was refused: ${outcome.reason ?? 'refused'} (${outcome.error ?? 'WorkOpRefusedError'})${holder}`,
      409,
      outcome.error
    )
  }
  if (flags.json !== true) {
    const state =
      result.item == null
        ? ''
        : `: ${result.item.status}${result.item.assignee == null ? '' : ` (${result.item.assignee})`}`
    out(`${done} ${request.board}/${item}${state}`)
  }
  return 0
}

function itemLine(i: WorkItemView): string {
  const ready = i.status === 'submitted' && !i.ready ? ' (not ready)' : ''
  return `${i.id}  ${i.status}${ready}  ${i.kind}  ${i.assignee ?? '-'}  ${i.title}`
}

function printItem(out: Out, board: string, i: WorkItemView): void {
  out(`${board}/${i.path}`)
  out(`  title       ${i.title}`)
  if (i.description != null) out(`  about       ${i.description.split('\n')[0]}`)
  out(`  kind        ${i.kind}`)
  out(`  status      ${i.status}${i.deleted ? ' (deleted)' : ''}`)
  out(`  assignee    ${i.assignee ?? '-'}`)
  out(`  ready       ${i.ready ? 'yes' : 'no'}${i.deps.length > 0 ? ` (deps ${i.deps.join(', ')})` : ''}`)
  out(`  priority    ${i.priority}`)
  if (i.skills.length > 0) out(`  skills      ${i.skills.join(', ')}`)
  if (i.progress != null)
    out(`  progress    ${i.progress.percent}%${i.progress.message == null ? '' : ` ${i.progress.message}`}`)
  if (i.result != null) out(`  result      ${JSON.stringify(i.result)}`)
  if (i.error != null) out(`  error       ${i.error}`)
  for (const a of i.artifacts) out(`  artifact    ${a.name} ${a.mediaType} ${a.cid}`)
  if (i.handoff != null) out(`  handed by   ${i.handoff.from}`)
  out(`  created     ${formatHlc(i.created)} by ${i.createdBy}`)
  out(`  updated     ${formatHlc(i.updated)}`)
  for (const h of i.history)
    out(`  ${formatHlc(h.hlc)}  ${h.op} by ${h.actor} → ${h.status}${h.message == null ? '' : `: ${h.message}`}`)
}

export async function fleetCommand(dataDir: string, args: string[], flags: WorkFlags, out: Out): Promise<number> {
  if (args.length > 0)
    throw new UsageError(`fleet: unexpected argument "${args[0].slice(0, 80)}" (see cyberspace fleet --help)`)
  const view = await (await connectApi(dataDir)).get<FleetView>('fleet')
  if (flags.json === true) {
    out(JSON.stringify(view))
    return 0
  }
  const t = view.totals
  out(
    `agents ${t.agents}  active ${t.active}  idle ${t.idle}  overloaded ${t.overloaded}  retiring ${t.retiring}  stale ${t.stale}  load ${t.load.toFixed(2)}  done ${t.done}  failed ${t.failed}`
  )
  if (view.agents.length === 0) {
    out(`# no heartbeats yet: agents start with ${CLI} agents spawn <kind>`)
    return 0
  }
  out('agent  kind  status  load  done  failed  latency  host  age')
  for (const r of view.agents)
    out(
      `${r.agent}  ${r.kind}  ${r.status}${r.stale ? ' (stale)' : ''}  ${r.load.toFixed(2)}  ${r.done}  ${r.failed}  ${Math.round(r.latency)}ms  ${r.host}  ${Math.round(r.age / 1000)}s`
    )
  return 0
}

export async function eventsCommand(dataDir: string, args: string[], flags: WorkFlags, out: Out): Promise<number> {
  if (args.length > 0)
    throw new UsageError(`events: unexpected argument "${args[0].slice(0, 80)}" (see cyberspace events --help)`)
  let since: string | undefined
  if (flags.since != null) {
    const hlc = parseHlc(flags.since)
    if (hlc == null)
      throw new UsageError(
        `--since ${flags.since.slice(0, 80)} is not an HLC: pass wall.logical (1763700000000.3) or a wall in ms`
      )
    since = formatHlc(hlc)
  }
  const max = wholeFlag(flags.limit, '--limit', 1, MAX_EVENTS_PAGE * MAX_PAGES)
  if (max != null && flags.follow === true) throw new UsageError('--limit and --follow do not go together')
  const api = await connectApi(dataDir)
  const print = (e: PublicEvent): void => {
    // the public feed's events carry their cursor; the CLI prints them as it always has, without it
    const { cursor: _cursor, ...view } = e
    out(flags.json === true ? JSON.stringify(view) : eventLine(view))
  }
  if (flags.follow !== true) {
    let printed = 0
    let after: string | undefined
    for (let pages = 0; pages < MAX_PAGES; pages++) {
      const want = Math.min(MAX_EVENTS_PAGE, (max ?? Infinity) - printed)
      const page = await api.get<PublicEventPage>(PUBLIC_EVENTS, eventsQuery(since, after, { limit: String(want) }))
      page.events.forEach(print)
      printed += page.events.length
      if (!page.more || page.cursor == null || (max != null && printed >= max)) break
      after = page.cursor
    }
    return 0
  }
  return await follow(api, since, print, flags.json === true, out)
}

type PublicEventPage = z.output<typeof EventPage>
type PublicEvent = PublicEventPage['events'][number]

/** The query of one read of GET /api/events: after the cursor of the last page read, else since the HLC asked. */
function eventsQuery(
  since: string | undefined,
  after: string | undefined,
  query: Record<string, string>
): Record<string, string> {
  if (after != null) return { ...query, after }
  return since != null ? { ...query, since } : query
}

/** Prints events as they come, by long poll from the last one printed, until SIGINT or SIGTERM. */
async function follow(
  api: ApiClient,
  since: string | undefined,
  print: (e: PublicEvent) => void,
  json: boolean,
  out: Out
): Promise<number> {
  const stopped = new AbortController()
  const stop = (): void => {
    stopped.abort()
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    let after: string | undefined
    let first = true
    while (!stopped.signal.aborted) {
      const query = eventsQuery(since, after, {
        limit: String(MAX_EVENTS_PAGE),
        wait: String(first ? 0 : FOLLOW_POLL_MS)
      })
      let page: PublicEventPage
      try {
        page = await api.get<PublicEventPage>(PUBLIC_EVENTS, query, { signal: stopped.signal })
      } catch (err) {
        if (stopped.signal.aborted) break
        throw err
      }
      page.events.forEach(print)
      // the page's end: where the next poll goes on from (after its last event, or where it was asked to start)
      after = page.cursor ?? after
      if (first && !json && page.events.length === 0) out('# waiting for events (Ctrl-C stops)')
      first = false
    }
    return 0
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
}

function eventLine(e: Omit<PublicEvent, 'cursor'>): string {
  return `${formatHlc(e.hlc)}  ${e.source}  ${e.type}  ${e.subject}${e.data == null ? '' : `  ${JSON.stringify(e.data)}`}`
}
