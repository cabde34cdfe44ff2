/**
 * A2A tasks as work items (README.md in this folder says the whole mapping). A message sent to
 * agent P creates an item of kind `a2a` on the board `a2a`, assigned to P, as the caller's agent:
 * the board's authority checks apply, and the task is as durable as the board (replicated, on
 * disk), not an in-memory task store's. P — its program through the API, or code in the node —
 * claims, progresses and completes the item as any other; GetTask reads the item (the board's
 * statuses are A2A's task states), SubscribeToTask follows its changes.
 *
 * `AgentTasks` implements the SDK's `A2ARequestHandler` for one request (who calls, which agent it
 * addresses); the SDK's JSON-RPC transport calls it. `A2aTasks` is what requests share: the board,
 * the limits on open streams.
 *
 * @example
 * const tasks = new A2aTasks({ node })
 * const handler = new AgentTasks(tasks, { caller, agent, card, signal })
 * const rpc = new JsonRpcTransportHandler(handler)
 */
import { randomUUID } from 'node:crypto'
import { Role, TaskState } from '@a2a-js/sdk'
import {
  ContentTypeNotSupportedError,
  ExtendedAgentCardNotConfiguredError,
  PushNotificationNotSupportedError,
  RequestMalformedError,
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError
} from '@a2a-js/sdk/errors'
import { MAX_DESCRIPTION_LENGTH, MAX_TITLE_LENGTH } from '../../protocols/work/codec.ts'
import { isPrincipalId } from '../../src/crypto/principal.ts'
import { opTags } from '../../src/work/tags.ts'
import { TERMINAL_STATUSES } from '../../src/work/types.ts'
import { jsonValue } from '../api/state-routes.ts'
import { TooManyWaitersError } from '../api/v1/handlers-errors.ts'
import { A2aForbiddenError } from './errors.ts'
import type {
  AgentCard,
  Artifact,
  CancelTaskRequest,
  DeleteTaskPushNotificationConfigRequest,
  GetExtendedAgentCardRequest,
  GetTaskPushNotificationConfigRequest,
  GetTaskRequest,
  ListTaskPushNotificationConfigsRequest,
  ListTaskPushNotificationConfigsResponse,
  ListTasksRequest,
  ListTasksResponse,
  Message,
  Part,
  SendMessageRequest,
  StreamResponse,
  SubscribeToTaskRequest,
  Task,
  TaskPushNotificationConfig,
  TaskStatus
} from '@a2a-js/sdk'
import type { A2ARequestHandler, ServerCallContext } from '@a2a-js/sdk/server'
import type { Caller } from '../api/agent-tokens.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { HlcTimestamp } from '../../src/clock/hlc.ts'
import type { WorkOp } from '../../protocols/work/types.ts'
import type { Board, BoardChange, ConsistencyMode, ItemStatus, WorkItem } from '../../src/work/types.ts'

/** The board A2A tasks live on, unless told otherwise. */
export const A2A_BOARD = 'a2a'
/** The kind of the items A2A tasks are. */
export const A2A_KIND = 'a2a'
/** How long a blocking SendMessage waits for the task to end (or ask for input) before answering it as it is, in ms. */
export const BLOCKING_WAIT_MS = 25_000
/** Task streams and blocking sends one caller (a token) holds open at once. */
export const MAX_STREAMS_PER_CALLER = 4
/** Task streams and blocking sends the node holds open at once (the API takes 64 connections in all). */
export const MAX_STREAMS = 16
/** Changes of its task a task stream queues for a reader that does not keep up; past it, it sends the task as it is then. */
export const MAX_QUEUED_TASK_CHANGES = 256
/** Parts one message may carry. */
export const MAX_PARTS = 32

/** The metadata key by which the operator's token names the hosted agent it sends as. */
export const AS_METADATA_KEY = 'as'

const STATE: Record<ItemStatus, TaskState> = {
  submitted: TaskState.TASK_STATE_SUBMITTED,
  working: TaskState.TASK_STATE_WORKING,
  'input-required': TaskState.TASK_STATE_INPUT_REQUIRED,
  'auth-required': TaskState.TASK_STATE_AUTH_REQUIRED,
  completed: TaskState.TASK_STATE_COMPLETED,
  failed: TaskState.TASK_STATE_FAILED,
  canceled: TaskState.TASK_STATE_CANCELED,
  rejected: TaskState.TASK_STATE_REJECTED
}

/** States a blocking send answers at: the terminal ones, and those that wait for the client. */
const SETTLED: ReadonlySet<ItemStatus> = new Set([...TERMINAL_STATUSES, 'input-required', 'auth-required'])

export interface A2aTasksInit {
  node: CyberspaceNode
  /** The board tasks live on; default A2A_BOARD. */
  board?: string
  /** The mode the board is opened with when this node holds none yet; default 'eventual' (replicated). */
  mode?: Exclude<ConsistencyMode, 'strong'>
  /** How long a blocking SendMessage waits, in ms; default BLOCKING_WAIT_MS. */
  blockingWait?: number
}

/** What the requests of one node's binding share: its board, and the places for open streams. */
export class A2aTasks {
  readonly node: CyberspaceNode
  readonly boardName: string
  readonly blockingWait: number
  private readonly mode: Exclude<ConsistencyMode, 'strong'>
  private opened: Board | undefined
  private open = 0
  private readonly openBy = new Map<string, number>()

  constructor(init: A2aTasksInit) {
    this.node = init.node
    this.boardName = init.board ?? A2A_BOARD
    this.mode = init.mode ?? 'eventual'
    this.blockingWait = init.blockingWait ?? BLOCKING_WAIT_MS
  }

  /** The board, opened (created if need be) in the mode it has: callers check first (openFor, heldBoard). */
  private async board(signal?: AbortSignal): Promise<Board> {
    if (this.opened != null) return this.opened
    const held = (await this.node.work.boards({ signal })).find(b => b.name === this.boardName)
    this.opened = await this.node.work.board(this.boardName, { mode: held?.mode ?? this.mode, signal })
    return this.opened
  }

  /**
   * The board, opened for `actor` to create the root task `item` assigned to `assignee`: when this
   * node holds no board yet, the actor's chain must grant that create (and its assign) first, as
   * the board would check it — a caller without the rights leaves no board behind
   * (A2aForbiddenError). Opening a board for nothing is the operator's (POST /api/boards).
   */
  async openFor(actor: Signer, item: string, assignee: PrincipalId, signal?: AbortSignal): Promise<Board> {
    if (this.opened != null) return this.opened
    if (!(await this.node.work.boards({ signal })).some(b => b.name === this.boardName)) {
      const op = { op: 'create', item, kind: A2A_KIND, path: item, title: item, assignee } as WorkOp
      for (const tag of opTags(this.boardName, op)) {
        try {
          await this.node.spki.authorize(actor.principal, tag, { signal })
        } catch (err) {
          signal?.throwIfAborted()
          throw new A2aForbiddenError(
            `${actor.principal} may not create a task on board ${this.boardName} (this node holds none yet): ${(err as Error).message}`
          )
        }
      }
    }
    return await this.board(signal)
  }

  /** The board if this node holds it: reading a task never creates the board. */
  async heldBoard(signal?: AbortSignal): Promise<Board | undefined> {
    if (this.opened != null) return this.opened
    const held = (await this.node.work.boards({ signal })).some(b => b.name === this.boardName)
    return held ? await this.board(signal) : undefined
  }

  /** The task id of an item: its reference across boards, `<board>:<item>`. */
  taskId(item: string): string {
    return `${this.boardName}:${item}`
  }

  /** The item a task id names on this board, or undefined. */
  itemOf(taskId: string): string | undefined {
    const prefix = `${this.boardName}:`
    if (typeof taskId !== 'string' || !taskId.startsWith(prefix)) return undefined
    const id = taskId.slice(prefix.length)
    return /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id) ? id : undefined
  }

  /** Takes one of the places for a stream or a blocking send of `holder` (TooManyWaitersError, 429, when none is free); returns its release. */
  place(holder: string): () => void {
    const held = this.openBy.get(holder) ?? 0
    if (held >= MAX_STREAMS_PER_CALLER)
      throw new TooManyWaitersError(
        `this token holds ${held} A2A task streams and blocking sends open already: close one (or send with returnImmediately and poll GetTask)`
      )
    if (this.open >= MAX_STREAMS)
      throw new TooManyWaitersError(
        `this node holds ${this.open} A2A task streams and blocking sends open already: try again later`
      )
    this.open++
    this.openBy.set(holder, held + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      this.open--
      const n = (this.openBy.get(holder) ?? 1) - 1
      if (n <= 0) this.openBy.delete(holder)
      else this.openBy.set(holder, n)
    }
  }

  /** A task's context: the task at the root of its item's path (a task sent with no context is its own). */
  contextOf(item: WorkItem): string {
    return this.taskId(item.path.split('/')[0])
  }

  /** The A2A task an item is, as of now (history: undefined all, 0 none, n the last n messages). */
  taskOf(item: WorkItem, historyLength?: number): Task {
    const id = this.taskId(item.id)
    const contextId = this.contextOf(item)
    let history = [requestMessage(item, id, contextId), ...agentMessages(item, id, contextId)]
    if (historyLength !== undefined) history = historyLength <= 0 ? [] : history.slice(-historyLength)
    return {
      id,
      contextId,
      status: this.statusOf(id, contextId, stepOf(item)),
      artifacts: item.status === 'completed' ? artifactsOf(item) : [],
      history,
      metadata: {
        board: this.boardName,
        item: item.id,
        createdBy: item.createdBy,
        ...(item.assignee != null ? { assignee: item.assignee } : {}),
        ...(item.progress != null ? { progress: item.progress.percent } : {})
      }
    }
  }

  /** A task's status at a step: its state, what the assignee last said of it, and when. */
  statusOf(taskId: string, contextId: string, step: Step): TaskStatus {
    const { text, updated } = step
    return {
      state: STATE[step.status],
      message:
        text == null
          ? undefined
          : agentMessage(`${taskId}/status/${updated[0]}.${updated[1]}`, taskId, contextId, text),
      timestamp: new Date(updated[0]).toISOString()
    }
  }
}

/** One request's caller and the agent it addresses. */
export interface TaskCall {
  caller: Caller
  /** The agent hosted here the request is sent to (the path's principal). */
  agent: PrincipalId
  /** Its card (the SDK's version check reads it). */
  card: AgentCard
  /** Aborted when the client goes away: ends streams and blocking waits. */
  signal: AbortSignal
}

/** The SDK's request handler over the board, for one request. */
export class AgentTasks implements A2ARequestHandler {
  private readonly tasks: A2aTasks
  private readonly call: TaskCall

  constructor(tasks: A2aTasks, call: TaskCall) {
    this.tasks = tasks
    this.call = call
  }

  async getAgentCard(): Promise<AgentCard> {
    return this.call.card
  }

  async getAuthenticatedExtendedAgentCard(
    _params: GetExtendedAgentCardRequest,
    _context: ServerCallContext
  ): Promise<AgentCard> {
    throw new ExtendedAgentCardNotConfiguredError('this agent has no extended card: its card is public')
  }

  async sendMessage(params: SendMessageRequest, _context: ServerCallContext): Promise<Message | Task> {
    const { board, item } = await this.createTask(params)
    const historyLength = params.configuration?.historyLength
    if (params.configuration?.returnImmediately === true || SETTLED.has(item.status))
      return this.tasks.taskOf(item, historyLength)
    const settled = await settle(
      board,
      item.id,
      AbortSignal.any([this.call.signal, AbortSignal.timeout(this.tasks.blockingWait)])
    )
    return this.tasks.taskOf(settled ?? item, historyLength)
  }

  async *sendMessageStream(
    params: SendMessageRequest,
    _context: ServerCallContext
  ): AsyncGenerator<StreamResponse, void, undefined> {
    const { board, item } = await this.createTask(params)
    yield* follow(this.tasks, board, item.id, this.call.signal, params.configuration?.historyLength)
  }

  async getTask(params: GetTaskRequest, _context: ServerCallContext): Promise<Task> {
    const { item } = await this.find(params.id)
    return this.tasks.taskOf(item, params.historyLength)
  }

  async listTasks(_params: ListTasksRequest, _context: ServerCallContext): Promise<ListTasksResponse> {
    throw new UnsupportedOperationError(
      `ListTasks is not offered: list the agent's work items instead (board ${this.tasks.boardName}, kind ${A2A_KIND}, through the HTTP API)`
    )
  }

  async cancelTask(params: CancelTaskRequest, _context: ServerCallContext): Promise<Task> {
    const { board, item } = await this.find(params.id)
    if (TERMINAL_STATUSES.has(item.status))
      throw new TaskNotCancelableError(`task ${params.id} is ${item.status} already: an ended task cannot be canceled`)
    const signer = this.actor(params.metadata)
    try {
      await board.cancel(item.id, { as: signer, reason: 'canceled through A2A', signal: AbortSignal.timeout(30_000) })
    } catch (err) {
      throw a2aError(err, params.id)
    }
    return this.tasks.taskOf(board.item(item.id) ?? item)
  }

  async createTaskPushNotificationConfig(
    _params: TaskPushNotificationConfig,
    _context: ServerCallContext
  ): Promise<TaskPushNotificationConfig> {
    throw noPush()
  }

  async getTaskPushNotificationConfig(
    _params: GetTaskPushNotificationConfigRequest,
    _context: ServerCallContext
  ): Promise<TaskPushNotificationConfig> {
    throw noPush()
  }

  async listTaskPushNotificationConfigs(
    _params: ListTaskPushNotificationConfigsRequest,
    _context: ServerCallContext
  ): Promise<ListTaskPushNotificationConfigsResponse> {
    throw noPush()
  }

  async deleteTaskPushNotificationConfig(
    _params: DeleteTaskPushNotificationConfigRequest,
    _context: ServerCallContext
  ): Promise<void> {
    throw noPush()
  }

  async *resubscribe(
    params: SubscribeToTaskRequest,
    _context: ServerCallContext
  ): AsyncGenerator<StreamResponse, void, undefined> {
    const { board, item } = await this.find(params.id)
    if (TERMINAL_STATUSES.has(item.status))
      throw new UnsupportedOperationError(
        `task ${params.id} is ${item.status}: an ended task has nothing to follow (GetTask reads it)`
      )
    yield* follow(this.tasks, board, item.id, this.call.signal)
  }

  // ---------------------------------------------------------------- the work items

  /**
   * The item a task id names, if it is an A2A task sent to this request's agent that the caller may
   * read; else TaskNotFoundError, whichever it is (nothing of a task is told to one who may not read it).
   */
  private async find(taskId: string): Promise<{ board: Board; item: WorkItem }> {
    const missing = (): Error =>
      new TaskNotFoundError(
        `no task ${String(taskId).slice(0, 140)} of agent ${this.call.agent} that this caller may read`
      )
    const id = this.tasks.itemOf(taskId)
    if (id == null) throw missing()
    const board = await this.tasks.heldBoard(this.call.signal)
    const item = board?.item(id)
    if (board == null || item == null || !(await this.readable(item))) throw missing()
    return { board, item }
  }

  /** Whether `item` is an A2A task sent to this request's agent that the caller may read. */
  private async readable(item: WorkItem): Promise<boolean> {
    if (item.deleted || item.kind !== A2A_KIND || item.history[0]?.assignee !== this.call.agent) return false
    const { caller } = this.call
    // the operator reads the node's view; an agent's token reads with its agent's rights
    return caller.kind === 'operator' || (await this.tasks.node.work.mayRead(this.tasks.boardName, caller.agent, item))
  }

  /**
   * The key the caller acts with: an agent's token acts as its agent (`metadata.as`, if given, must
   * be it); the operator's token as the agent `metadata.as` names, else as the agent addressed.
   */
  private actor(metadata: Record<string, unknown> | undefined): Signer {
    const { caller } = this.call
    const named = metadata?.[AS_METADATA_KEY]
    if (named !== undefined && (typeof named !== 'string' || !isPrincipalId(named)))
      throw new RequestMalformedError(
        `metadata.${AS_METADATA_KEY} must be the principal (z6Mk…) of an agent hosted on this node`
      )
    if (caller.kind === 'agent' && named !== undefined && named !== caller.agent)
      throw new A2aForbiddenError(`this token is agent ${caller.agent}'s: it acts only as that agent, not as ${named}`)
    const as = caller.kind === 'agent' ? caller.agent : ((named as PrincipalId | undefined) ?? this.call.agent)
    const signer = this.tasks.node.agents.agent(as)?.signer
    if (signer == null)
      throw new RequestMalformedError(
        `agent ${as} does not run on this node: a task is created as an agent hosted here`
      )
    return signer
  }

  /** Creates the work item a message asks for, assigned to the agent addressed, as the caller's agent. */
  private async createTask(params: SendMessageRequest): Promise<{ board: Board; item: WorkItem }> {
    const message = params.message
    if (message == null) throw new RequestMalformedError('params.message is required')
    if (message.messageId === '') throw new RequestMalformedError('message.messageId is required')
    if (message.taskId !== '')
      throw new UnsupportedOperationError(
        `a message goes on no existing task here (taskId ${message.taskId.slice(0, 140)}): each message starts a task; send it with the contextId of the earlier task to keep them together`
      )
    if (params.configuration?.taskPushNotificationConfig != null) throw noPush()
    const signer = this.actor(params.metadata)
    const text = messageText(message)
    const id = randomUUID()
    const held = await this.tasks.heldBoard(this.call.signal)
    let parent: string | undefined
    if (message.contextId !== '') {
      const root = this.tasks.itemOf(message.contextId)
      const context = root == null ? undefined : held?.item(root)
      // a context is one conversation: between the agent addressed and the one that started it
      if (
        context == null ||
        context.parent != null ||
        context.kind !== A2A_KIND ||
        context.history[0]?.assignee !== this.call.agent ||
        context.createdBy !== signer.principal ||
        !(await this.contextReadable(context))
      )
        throw new RequestMalformedError(
          `contextId ${message.contextId.slice(0, 140)} names no task context here that ${signer.principal} started with agent ${this.call.agent}: leave it out (a new task starts its own) or pass the contextId of an earlier task sent to this agent by the same agent`
        )
      parent = context.id
    }
    // a board not held yet is opened (created here) only for an actor who may create this task on it
    const board = held ?? (await this.tasks.openFor(signer, id, this.call.agent, this.call.signal))
    try {
      await board.create(
        {
          item: id,
          kind: A2A_KIND,
          ...(parent != null ? { parent } : {}),
          title: titleOf(text),
          description: text,
          assignee: this.call.agent
        },
        { as: signer, signal: AbortSignal.timeout(30_000) }
      )
    } catch (err) {
      throw a2aError(err, this.tasks.taskId(id))
    }
    const item = board.item(id)
    if (item == null) throw new Error(`the task ${this.tasks.taskId(id)} was written but this node does not hold it`)
    return { board, item }
  }

  /**
   * Whether the caller may read the context's root task (the operator may). The root was sent to
   * this request's agent by the agent the new task is created as (checked before).
   */
  private async contextReadable(item: WorkItem): Promise<boolean> {
    const { caller } = this.call
    if (item.deleted) return false
    return caller.kind === 'operator' || (await this.tasks.node.work.mayRead(this.tasks.boardName, caller.agent, item))
  }
}

function noPush(): Error {
  return new PushNotificationNotSupportedError(
    'push notifications are not offered: follow a task with SubscribeToTask, or poll GetTask'
  )
}

/** The A2A error for what the board refused. */
function a2aError(err: unknown, taskId: string): unknown {
  const name = (err as Error | undefined)?.name
  const message = (err as Error | undefined)?.message ?? String(err)
  switch (name) {
    case 'WorkUnauthorizedError':
      return new A2aForbiddenError(message)
    case 'InvalidWorkOpError':
      return new RequestMalformedError(message)
    case 'ItemTerminalError':
      return new TaskNotCancelableError(`task ${taskId}: ${message}`)
    case 'ItemNotFoundError':
    case 'ItemDeletedError':
      return new TaskNotFoundError(`task ${taskId}: ${message}`)
    default:
      return err
  }
}

// ---------------------------------------------------------------- following a task

/**
 * Resolves with the item once it is settled (terminal, or waiting for input or authentication), or
 * with what it is when `signal` aborts (undefined if it went away meanwhile).
 */
async function settle(board: Board, id: string, signal: AbortSignal): Promise<WorkItem | undefined> {
  return await new Promise(resolve => {
    const done = (): void => {
      board.removeEventListener('change', onChange)
      signal.removeEventListener('abort', done)
      resolve(board.item(id))
    }
    const onChange = (e: CustomEvent<BoardChange>): void => {
      if (e.detail.item !== id) return
      const item = board.item(id)
      if (item == null || item.deleted || SETTLED.has(item.status)) done()
    }
    board.addEventListener('change', onChange)
    signal.addEventListener('abort', done, { once: true })
    const now = board.item(id)
    if (signal.aborted || now == null || SETTLED.has(now.status)) done()
  })
}

/** What a status update of an item says, taken when the change is folded. */
interface Step {
  status: ItemStatus
  text: string | undefined
  percent: number | undefined
  updated: HlcTimestamp
  deleted: boolean
}

function stepOf(item: WorkItem): Step {
  return {
    status: item.status,
    text: statusText(item),
    percent: item.progress?.percent,
    updated: item.updated,
    deleted: item.deleted
  }
}

/**
 * The task, then its changes as they are folded — a status update for each new status, status
 * message or progress, and when it completes its artifacts — until it ends or `signal` aborts. The
 * changes wait in a bounded backlog: a reader that falls MAX_QUEUED_TASK_CHANGES behind is sent the task
 * as it is then instead.
 */
async function* follow(
  tasks: A2aTasks,
  board: Board,
  id: string,
  signal: AbortSignal,
  historyLength?: number
): AsyncGenerator<StreamResponse, void, undefined> {
  const backlog: Step[] = []
  let behind = false
  let wake: (() => void) | undefined
  const onChange = (e: CustomEvent<BoardChange>): void => {
    if (e.detail.item !== id || e.detail.type !== 'applied') return
    const item = board.item(id)
    if (item == null) return
    if (backlog.length >= MAX_QUEUED_TASK_CHANGES) {
      behind = true
      backlog.length = 0
    } else {
      backlog.push(stepOf(item))
    }
    wake?.()
  }
  const onAbort = (): void => wake?.()
  board.addEventListener('change', onChange)
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    const first = board.item(id)
    if (first == null) return
    yield { payload: { $case: 'task', value: tasks.taskOf(first, historyLength) } }
    let shown = stepKey(stepOf(first))
    let step = stepOf(first)
    while (!TERMINAL_STATUSES.has(step.status)) {
      while (backlog.length === 0 && !behind && !signal.aborted) {
        await new Promise<void>(resolve => {
          wake = resolve
        })
        wake = undefined
      }
      if (signal.aborted) return
      if (behind) {
        // the reader fell behind: the task as it is now stands for what it missed
        behind = false
        const now = board.item(id)
        if (now == null) return
        step = stepOf(now)
        shown = stepKey(step)
        if (!TERMINAL_STATUSES.has(step.status))
          yield { payload: { $case: 'task', value: tasks.taskOf(now, historyLength) } }
        continue
      }
      step = backlog.shift() as Step
      if (step.deleted) throw new TaskNotFoundError(`task ${tasks.taskId(id)} was deleted`)
      const key = stepKey(step)
      if (key !== shown && !TERMINAL_STATUSES.has(step.status)) yield statusUpdate(tasks, id, board.item(id), step)
      shown = key
    }
    // ended: nothing changes an ended item but its deletion, so the item as it is now is as it ended
    const ended = board.item(id)
    if (ended == null || ended.deleted) throw new TaskNotFoundError(`task ${tasks.taskId(id)} was deleted`)
    yield* ending(tasks, ended)
  } finally {
    board.removeEventListener('change', onChange)
    signal.removeEventListener('abort', onAbort)
  }
}

/** The last events of a task that ended: its artifacts, then its final status. */
function* ending(tasks: A2aTasks, item: WorkItem): Generator<StreamResponse, void, undefined> {
  const taskId = tasks.taskId(item.id)
  const contextId = tasks.contextOf(item)
  if (item.status === 'completed') {
    for (const artifact of artifactsOf(item)) {
      yield {
        payload: {
          $case: 'artifactUpdate',
          value: { taskId, contextId, artifact, append: false, lastChunk: true, metadata: undefined }
        }
      }
    }
  }
  yield statusUpdate(tasks, item.id, item, stepOf(item))
}

function statusUpdate(tasks: A2aTasks, id: string, item: WorkItem | undefined, step: Step): StreamResponse {
  const taskId = tasks.taskId(id)
  const contextId = item != null ? tasks.contextOf(item) : taskId
  return {
    payload: {
      $case: 'statusUpdate',
      value: {
        taskId,
        contextId,
        status: tasks.statusOf(taskId, contextId, step),
        metadata: step.percent != null ? { progress: step.percent } : undefined
      }
    }
  }
}

/** What a status update says: the status, its message and the progress. */
function stepKey(step: Step): string {
  return JSON.stringify([step.status, step.text ?? null, step.percent ?? null])
}

// ---------------------------------------------------------------- messages, parts, artifacts

/**
 * The text of a message, as the item's description: text parts as they are, data parts as JSON,
 * url parts as their url (after the file's name); file bytes are refused (give them by url).
 */
function messageText(message: Message): string {
  if (message.parts.length === 0) throw new RequestMalformedError('message.parts is empty: send at least one text part')
  if (message.parts.length > MAX_PARTS) throw new RequestMalformedError(`a message carries at most ${MAX_PARTS} parts`)
  const chunks: string[] = []
  for (const part of message.parts) {
    const content = part.content
    if (content == null) continue
    switch (content.$case) {
      case 'text':
        chunks.push(content.value)
        break
      case 'data':
        chunks.push(JSON.stringify(content.value ?? null))
        break
      case 'url':
        chunks.push(part.filename !== '' ? `${part.filename}: ${content.value}` : content.value)
        break
      case 'raw':
        throw new ContentTypeNotSupportedError('file bytes are not carried into a task: give the file as a url part')
    }
  }
  const text = chunks.join('\n\n')
  if (text.trim() === '') throw new RequestMalformedError('the message says nothing: send a text part')
  const length = [...text].length
  if (length > MAX_DESCRIPTION_LENGTH)
    throw new RequestMalformedError(
      `the message is ${length} characters; a task holds at most ${MAX_DESCRIPTION_LENGTH}: give longer input as a url part`
    )
  return text
}

/** A task's title: the first line of its text that says something, cut to the title's limit. */
function titleOf(text: string): string {
  const line =
    text
      .split(/\r?\n/)
      .find(l => l.trim() !== '')
      ?.trim() ?? text.trim()
  const chars = [...line]
  return chars.length <= MAX_TITLE_LENGTH ? line : `${chars.slice(0, MAX_TITLE_LENGTH - 1).join('')}…`
}

/** What a task's status says in words: why it failed or ended, or the assignee's latest progress message. */
function statusText(item: WorkItem): string | undefined {
  if (item.status === 'failed' || item.status === 'rejected') return item.error
  if (item.status === 'canceled') return [...item.history].reverse().find(h => h.op === 'cancel')?.message
  if (item.status === 'completed') return undefined
  return item.progress?.message
}

function textPart(text: string): Part {
  return { content: { $case: 'text', value: text }, metadata: undefined, filename: '', mediaType: 'text/plain' }
}

function agentMessage(messageId: string, taskId: string, contextId: string, text: string): Message {
  return {
    messageId,
    contextId,
    taskId,
    role: Role.ROLE_AGENT,
    parts: [textPart(text)],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: []
  }
}

/** The message the task was sent with, as the item keeps it (its text). */
function requestMessage(item: WorkItem, taskId: string, contextId: string): Message {
  return {
    messageId: `${taskId}/request`,
    contextId,
    taskId,
    role: Role.ROLE_USER,
    parts: [textPart(item.description ?? item.title)],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: []
  }
}

/** What the assignee said along the way: each progress message, failure, release or cancel reason. */
function agentMessages(item: WorkItem, taskId: string, contextId: string): Message[] {
  return item.history
    .filter(h => h.message != null && h.op !== 'create')
    .map(h => agentMessage(`${taskId}/${h.hlc[0]}.${h.hlc[1]}/${h.op}`, taskId, contextId, h.message as string))
}

/**
 * A completed item's result and artifacts as A2A artifacts: the result (a string as text, other
 * JSON as data) under the id `result`, each artifact (a CID) as an `ipfs://` url part.
 */
function artifactsOf(item: WorkItem): Artifact[] {
  const out: Artifact[] = []
  if (item.result !== undefined) {
    const value = jsonValue(item.result)
    out.push({
      artifactId: 'result',
      name: 'result',
      description: `the result of ${item.id}`,
      parts: [
        typeof value === 'string'
          ? textPart(value)
          : { content: { $case: 'data', value }, metadata: undefined, filename: '', mediaType: 'application/json' }
      ],
      metadata: undefined,
      extensions: []
    })
  }
  for (const a of item.artifacts) {
    out.push({
      artifactId: a.cid,
      name: a.name,
      description: '',
      parts: [
        {
          content: { $case: 'url', value: `ipfs://${a.cid}` },
          metadata: undefined,
          filename: a.name,
          mediaType: a.mediaType
        }
      ],
      metadata: undefined,
      extensions: []
    })
  }
  return out
}
