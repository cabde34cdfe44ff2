/**
 * The MCP server of a node: the tools and resources an MCP host (Claude Code and the like) gets,
 * built on the node's public HTTP API. Every tool is one call of the TypeScript SDK with the
 * attached agent's token, so what the tool may do is what that token may do: an agent's token acts
 * only as its agent, authorized by its chain on the node. Tool inputs are the API's own schemas
 * (src/api/schema.ts, src/api/routes.ts) and tool outputs the routes' answers.
 *
 * An API problem (401, 403, 404, a board's refusal…) becomes a tool result with `isError: true`
 * and the problem's detail, not a protocol error: the model reads it and can act on it. Arguments
 * that fail the schema get the SDK's validation error, naming the field; arguments with more than
 * MAX_TOOL_INPUT_ELEMENTS elements, or nested deeper than MAX_TOOL_INPUT_DEPTH, are refused before
 * the tool runs.
 *
 * Served over stdio by `cyberspace mcp` (stdio.ts) and over Streamable HTTP at `/mcp` on the API's
 * port (http.ts); one McpServer per session (stdio) or per request (HTTP, stateless).
 *
 * @example
 * const server = cyberspaceMcpServer({ api: new Client({ url, token }), agent: 'z6Mk…' })
 * await server.connect(new StdioServerTransport())
 */
import * as z from 'zod'
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js'
import { toJsonSchemaCompat } from '@modelcontextprotocol/sdk/server/zod-json-schema-compat.js'
import { ErrorCode, ListToolsRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js'
import {
  Acting,
  BoardName,
  CompleteTask,
  CreateWorknode,
  FailTask,
  HandoffTask,
  Principal,
  ProgressTask,
  Reply,
  SendMessage,
  TaskRef
} from '../../src/api/schema.ts'
import { depthOver, MAX_JSON_DEPTH } from '../../src/api/depth.ts'
import { ROUTES } from '../../src/api/routes.ts'
import type { Client } from '../../src/api/client.ts'
import { McpNoAgentError } from './errors.ts'
import type { Board, HostedAgent } from '../../src/api/schema.ts'
import type { CallToolResult, ListToolsResult, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js'

/** The name the server gives MCP hosts, and its version (the package's). */
export const MCP_SERVER_NAME = 'cyberspace'
export const MCP_SERVER_VERSION = '0.1.0'
/** Array elements and object members one tool call's arguments may hold in all. */
export const MAX_TOOL_INPUT_ELEMENTS = 10_000
/** Levels of arrays and objects one tool call's arguments may nest (the arguments object is level 1). */
export const MAX_TOOL_INPUT_DEPTH = MAX_JSON_DEPTH
/** What a send waits for beyond the message's own timeout (the node's answer on the way back). */
const SEND_MARGIN_MS = 5_000
/** Items a board resource lists (the first page; `list_work` pages on). */
export const BOARD_RESOURCE_ITEMS = 200

/** What the MCP server needs of the TypeScript SDK's Client: its typed call of a route. */
export type ApiCaller = Pick<Client, 'call'>

export interface McpServerInit {
  api: ApiCaller
  /**
   * The agent the tools act as when a call names none: the token's own agent, or the one
   * `cyberspace mcp --agent` names. Undefined for the operator's token without --agent: then every
   * acting tool needs `as`.
   */
  agent?: string
}

/** What a tool's body gets besides its arguments. */
interface ToolContext {
  api: ApiCaller
  signal: AbortSignal
  /** The agent to act as: `as` if given, else the session's; McpNoAgentError if neither. */
  actor(as: string | undefined): string
  /** `as` for a body: the one given, else the session's agent (undefined: the API says what is missing). */
  actingAs(as: string | undefined): string | undefined
}

interface ToolSpec<I extends z.ZodObject = z.ZodObject> {
  name: string
  title: string
  description: string
  input: I
  /** The route's answer (an object): declared as the tool's output schema, and what structuredContent is parsed with. */
  output: z.ZodType
  annotations: ToolAnnotations
  run(args: z.output<I>, ctx: ToolContext): Promise<unknown>
}

function tool<I extends z.ZodObject>(spec: ToolSpec<I>): ToolSpec {
  return spec as unknown as ToolSpec
}

const READ: ToolAnnotations = { readOnlyHint: true, openWorldHint: false }
const WRITE: ToolAnnotations = { readOnlyHint: false, destructiveHint: false, openWorldHint: false }
const MESSAGE: ToolAnnotations = { readOnlyHint: false, destructiveHint: false, openWorldHint: true }

/** `as` of a tool that acts as an agent: optional with an agent's token, which it must then name. */
const As = Acting.shape.as.describe(
  "The hosted agent to act as. Leave out: this session's agent (the token's). Needed only with the node operator's token."
)
const Ref = TaskRef.describe('The work item: <board>:<item>, as `ref` of list_work and create_work answers')
const withRef = <S extends z.ZodObject>(body: S): z.ZodObject => z.object({ ref: Ref }).extend(body.shape)

/** The tools, in the order hosts list them. */
export const TOOLS: ToolSpec[] = [
  tool({
    name: 'whoami',
    title: 'Who am I',
    description:
      "Who this session acts as: the agent's principal (z6Mk…) for an agent's token, or the node's for the operator's, and the node's peer id.",
    input: z.object({}),
    output: ROUTES.whoami.response,
    annotations: READ,
    run: async (_args, { api, signal }) => await api.call('whoami', { signal })
  }),
  tool({
    name: 'members',
    title: 'Cluster members',
    description:
      "The cluster's members as this node sees them (peer id, state: alive, suspect, dead or left, metadata), paged: pass `next` as `after`.",
    input: ROUTES.members.query,
    output: ROUTES.members.response,
    annotations: READ,
    run: async (query, { api, signal }) => await api.call('members', { query, signal })
  }),
  tool({
    name: 'find_agents',
    title: 'Find agents by skill',
    description:
      "Agents in the cluster's registry that offer a skill: each with its principal, host and card. Use a principal as `to` of send_message or request.",
    input: ROUTES.findAgents.query,
    output: ROUTES.findAgents.response,
    annotations: READ,
    run: async (query, { api, signal }) => await api.call('findAgents', { query, signal })
  }),
  sendTool('send_message', false, {
    title: 'Send a message',
    description:
      'Send a one-way message to an agent (a principal, or a name like "cluster\'s reviewer"); returns once the recipient handled it. The sender needs a chain granting (cyberspace (mailbox (send <to> <type>))).'
  }),
  sendTool('request', true, {
    title: 'Send a request and wait for the answer',
    description:
      'Send a request to an agent and wait (up to `timeout` ms) for its answer, returned as `response`. Same rights as send_message.'
  }),
  tool({
    name: 'read_inbox',
    title: 'Read the inbox',
    description:
      'Messages waiting for this agent (requests to answer with reply, one-way messages to confirm with reply). `wait` (ms, up to 60000) long-polls for the first one.',
    input: ROUTES.inbox.query.extend({ as: As }),
    output: ROUTES.inbox.response,
    annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    run: async ({ as, ...query }, { api, actor, signal }) =>
      await api.call('inbox', { params: { id: actor(as) }, query, signal })
  }),
  tool({
    name: 'reply',
    title: 'Answer a message',
    description:
      'Answer a request from the inbox (with `body`, or `error`), or confirm a one-way message (neither): `message` is its id.',
    input: Reply.extend({ as: As }),
    output: ROUTES.reply.response,
    annotations: MESSAGE,
    run: async ({ as, ...reply }, { api, actor, signal }) =>
      await api.call('reply', { params: { id: actor(as) }, body: reply, signal })
  }),
  tool({
    name: 'list_work',
    title: 'List work items',
    description:
      "A board's work items this agent may read, filtered (status, assignee, kind, parent, ready) and paged: pass `next` as `after`. Each item's `ref` (<board>:<item>) names it to the other work tools.",
    input: ROUTES.listWorknodes.query,
    output: ROUTES.listWorknodes.response,
    annotations: READ,
    run: async (query, { api, signal }) => await api.call('listWorknodes', { query, signal })
  }),
  tool({
    name: 'create_work',
    title: 'Create a work item',
    description:
      'Create a work item (a goal, a task) on a board: `deps` are item ids on the same board that must complete first, `parent` the goal it belongs to. Answers the outcome and the item with its `ref`.',
    input: CreateWorknode.extend({ as: As }),
    output: ROUTES.createWorknode.response,
    annotations: WRITE,
    run: async ({ as, ...body }, { api, actingAs, signal }) =>
      await api.call('createWorknode', { body: { ...body, as: actingAs(as) }, signal })
  }),
  taskAction('claim_work', 'claimTask', Acting, {
    title: 'Claim a task',
    description:
      'Claim a ready, unassigned task: on success it is assigned to this agent, working. Two claimers: one wins, the other is told who.'
  }),
  taskAction('progress_work', 'progressTask', ProgressTask, {
    title: 'Report progress',
    description: 'Report progress (percent, message) on a task this agent holds.'
  }),
  taskAction('complete_work', 'completeTask', CompleteTask, {
    title: 'Complete a task',
    description:
      'Complete a task this agent holds, with its result (any JSON) and artifacts; dependent tasks become ready.'
  }),
  taskAction('fail_work', 'failTask', FailTask, {
    title: 'Fail a task',
    description: 'Fail a task this agent holds, saying why (`error`); with `rejected`, decline it instead.'
  }),
  taskAction('handoff_work', 'handoffTask', HandoffTask, {
    title: 'Hand off a task',
    description: 'Hand a task this agent holds to another agent (`to`), with the state so far (`state`, any JSON).'
  }),
  tool({
    name: 'read_document',
    title: 'Read a shared document',
    description: "A shared document's current value (the documents this node holds and this agent may read).",
    input: ROUTES.getDocument.params,
    output: ROUTES.getDocument.response,
    annotations: READ,
    run: async ({ name }, { api, signal }) => await api.call('getDocument', { params: { name }, signal })
  }),
  tool({
    name: 'write_document',
    title: 'Update a shared document',
    description:
      'Apply one update to a shared document, as this agent: `update` is {op, path?, value?} as its type takes them (a register: set; a counter: increment/decrement; a set: add/remove; a map: any at a path). `type` opens a new document. Answers the value after it.',
    input: ROUTES.getDocument.params.extend(ROUTES.updateDocument.body.shape).extend({ as: As }),
    output: ROUTES.updateDocument.response,
    annotations: WRITE,
    run: async ({ name, as, ...body }, { api, actingAs, signal }) =>
      await api.call('updateDocument', { params: { name }, body: { ...body, as: actingAs(as) }, signal })
  }),
  tool({
    name: 'events_since',
    title: 'Events since',
    description:
      'Events this agent may see, in HLC order: since an HLC (`since`, e.g. 1763700000000.0) or after the `cursor` of the last page (`after`); `wait` (ms) long-polls when there is none yet.',
    input: ROUTES.events.query,
    output: ROUTES.events.response,
    annotations: READ,
    run: async (query, { api, signal }) => await api.call('events', { query, signal })
  })
]

/** A tool that sends a message as an agent (POST /api/agents/{id}/messages): `request` waits for the answer. */
function sendTool(name: string, request: boolean, text: { title: string; description: string }): ToolSpec {
  return tool({
    name,
    ...text,
    input: SendMessage.omit({ request: true }).extend({ as: As }),
    output: ROUTES.send.response,
    annotations: MESSAGE,
    run: async ({ as, ...message }, { api, actor, signal }) =>
      await api.call('send', {
        params: { id: actor(as) },
        body: { ...message, request },
        timeout: message.timeout + SEND_MARGIN_MS,
        signal
      })
  })
}

/** A tool for one task action: POST /api/tasks/{ref}/<action> with the route's body. */
function taskAction(
  name: string,
  route: 'claimTask' | 'progressTask' | 'completeTask' | 'failTask' | 'handoffTask',
  body: z.ZodObject,
  text: { title: string; description: string }
): ToolSpec {
  return tool({
    name,
    ...text,
    input: withRef(body.extend({ as: As })),
    output: ROUTES[route].response,
    annotations: WRITE,
    run: async ({ ref, as, ...rest }, { api, actingAs, signal }) =>
      await api.call(route, {
        params: { id: ref as string },
        body: { ...rest, as: actingAs(as as string | undefined) },
        signal
      })
  })
}

const INSTRUCTIONS = [
  'Cyberspace: a peer-to-peer cluster of agents. This session acts as one agent (whoami says which); what it may do is what its chain of certificates grants it, checked by the node on every call.',
  'Work: boards hold work items (goals, tasks) named <board>:<item>. list_work finds them (ready=true: their dependencies are done), claim_work takes one, progress_work / complete_work / fail_work / handoff_work finish it. A refused action answers isError with the reason.',
  'Messages: find_agents by skill, send_message or request (waits for the answer), read_inbox (wait long-polls) and reply. events_since follows what happens, in HLC order; keep the last `cursor` and pass it as `after`.'
].join('\n')

/** An MCP server for one session (stdio) or one request (HTTP), acting through `init.api`. */
export function cyberspaceMcpServer(init: McpServerInit): McpServer {
  const server = new McpServer(
    { name: MCP_SERVER_NAME, version: MCP_SERVER_VERSION, title: 'Cyberspace' },
    { instructions: INSTRUCTIONS, maxToolInputElements: MAX_TOOL_INPUT_ELEMENTS }
  )
  const { api } = init
  const actor = (as: string | undefined): string => {
    const agent = as ?? init.agent
    if (agent == null)
      throw new McpNoAgentError(
        "this session holds the node operator's token and no agent: pass `as` (a hosted agent's principal), or start cyberspace mcp with --agent <principal>, or better, with that agent's own token"
      )
    return agent
  }
  const actingAs = (as: string | undefined): string | undefined => as ?? init.agent

  for (const spec of TOOLS) {
    server.registerTool(
      spec.name,
      {
        title: spec.title,
        description: spec.description,
        inputSchema: spec.input,
        outputSchema: spec.output,
        annotations: { title: spec.title, ...spec.annotations }
      },
      async (args: Record<string, unknown>, extra): Promise<CallToolResult> => {
        // before anything recursive reads them (the API call's JSON.stringify overflowed its stack)
        if (depthOver(args, MAX_TOOL_INPUT_DEPTH))
          return toolError(
            new McpError(
              ErrorCode.InvalidParams,
              `Invalid arguments for tool ${spec.name}: arguments nest deeper than ${MAX_TOOL_INPUT_DEPTH} levels of arrays and objects`
            )
          )
        try {
          const answer = await spec.run(args, { api, signal: extra.signal, actor, actingAs })
          return toolResult(spec, answer)
        } catch (err) {
          return toolError(err)
        }
      }
    )
  }

  // the list is the same for every session: its JSON Schemas are made once, not at every tools/list
  // (a stateless HTTP request builds a server of its own; making them took 100+ ms)
  server.server.setRequestHandler(ListToolsRequestSchema, () => toolList())

  server.registerResource(
    'board',
    new ResourceTemplate('cyberspace://boards/{board}', {
      list: async extra => {
        const page = await api.call('listBoards', { query: { limit: 500 }, signal: extra.signal })
        return {
          resources: (page.boards as Array<z.output<typeof Board>>).map(b => ({
            uri: `cyberspace://boards/${b.name}`,
            name: b.name,
            title: `board ${b.name}`,
            // -1: not counted (a board only stored, or one the agent reads only part of)
            description: b.items >= 0 ? `${b.items} items, ${b.mode} consistency` : `${b.mode} consistency`,
            mimeType: 'application/json'
          }))
        }
      }
    }),
    {
      title: 'Work board',
      description: `A board's work items this agent may read (the first ${BOARD_RESOURCE_ITEMS}; list_work filters and pages)`,
      mimeType: 'application/json'
    },
    async (uri, variables, extra) => {
      const board = resourceName(BoardName, variables.board, 'board')
      const page = await resourceCall(
        async () =>
          await api.call('listWorknodes', { query: { board, limit: BOARD_RESOURCE_ITEMS }, signal: extra.signal })
      )
      return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify({ board, ...page }) }] }
    }
  )

  server.registerResource(
    'agent-card',
    new ResourceTemplate('cyberspace://agents/{principal}', {
      list: async extra => {
        const page = await api.call('hostedAgents', { query: { limit: 500 }, signal: extra.signal })
        return {
          resources: (page.agents as Array<z.output<typeof HostedAgent>>).map(a => ({
            uri: `cyberspace://agents/${a.principal}`,
            name: a.principal,
            title: `${a.kind}/${a.id}`,
            description: `agent ${a.kind}/${a.id} hosted on this node`,
            mimeType: 'application/json'
          }))
        }
      }
    }),
    {
      title: 'Agent card',
      description: "An agent's registry record: its card (skills, interfaces), host and addresses",
      mimeType: 'application/json'
    },
    async (uri, variables, extra) => {
      const principal = resourceName(Principal, variables.principal, 'principal')
      const record = await resourceCall(
        async () => await api.call('getAgent', { params: { id: principal }, signal: extra.signal })
      )
      return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(record) }] }
    }
  )
  return server
}

let listed: ListToolsResult | undefined

/** tools/list's answer, as McpServer would make it (the SDK's own zod-to-JSON-Schema), made once. */
function toolList(): ListToolsResult {
  listed ??= {
    tools: TOOLS.map(spec => ({
      name: spec.name,
      title: spec.title,
      description: spec.description,
      inputSchema: toJsonSchemaCompat(spec.input, { strictUnions: true, pipeStrategy: 'input' }) as {
        type: 'object'
      },
      outputSchema: toJsonSchemaCompat(spec.output as z.ZodObject, { strictUnions: true, pipeStrategy: 'output' }) as {
        type: 'object'
      },
      annotations: { title: spec.title, ...spec.annotations },
      execution: { taskSupport: 'forbidden' as const }
    }))
  }
  return listed
}

/** A tool's answer: the JSON as text (for hosts that read text) and as structured content. */
function toolResult(spec: ToolSpec, answer: unknown): CallToolResult {
  const structured = spec.output.parse(answer) as Record<string, unknown>
  const text = JSON.stringify(answer)
  // a work action the board refused answered 200 with the outcome: to the model, that is an error
  const outcome = (answer as { outcome?: { accepted?: boolean; reason?: string; error?: string } }).outcome
  if (outcome?.accepted === false) {
    const why = [outcome.error, outcome.reason].filter(s => s != null && s !== '').join(': ')
    return { content: [{ type: 'text', text: `refused${why === '' ? '' : ` (${why})`}\n${text}` }], isError: true }
  }
  return { content: [{ type: 'text', text }], structuredContent: structured }
}

/** An API problem (or any failure) as a tool error the model reads. */
function toolError(err: unknown): CallToolResult {
  return { content: [{ type: 'text', text: describeFailure(err) }], isError: true }
}

/**
 * One line for a failed call: the problem's name, status and detail, and a line for each bad field
 * the detail does not name already (a validation problem's detail names the first few).
 */
function describeFailure(err: unknown): string {
  const e = err as {
    name?: string
    message?: string
    status?: number
    detail?: string
    errors?: Array<{ field: string; message: string }>
  }
  const name = typeof e?.name === 'string' ? e.name : 'Error'
  const detail = typeof e?.detail === 'string' ? e.detail : typeof e?.message === 'string' ? e.message : String(err)
  const status = typeof e?.status === 'number' ? ` (HTTP ${e.status})` : ''
  const fields = (Array.isArray(e?.errors) ? e.errors : [])
    .filter(f => !detail.includes(`${f.field}: ${f.message}`))
    .slice(0, 32)
    .map(f => `\n  ${f.field}: ${f.message}`)
  return `${name}${status}: ${detail}${fields.join('')}`
}

/** A resource URI's variable checked with the API's schema, as MCP's invalid-params error if bad. */
function resourceName(schema: z.ZodString, value: string | string[] | undefined, what: string): string {
  const parsed = schema.safeParse(Array.isArray(value) ? value[0] : value)
  if (!parsed.success)
    throw new McpError(
      ErrorCode.InvalidParams,
      `${what} ${JSON.stringify(value)}: ${parsed.error.issues[0]?.message ?? 'invalid'}`
    )
  return parsed.data
}

/** A resource read's API call; a problem becomes an MCP error (404 → resource not found, -32002). */
async function resourceCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (err) {
    const status = (err as { status?: number }).status
    throw new McpError(status === 404 ? -32002 : ErrorCode.InternalError, describeFailure(err))
  }
}
