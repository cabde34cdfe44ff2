/**
 * Every route of the public HTTP API, declared once: method, path template, who may call it, and
 * the schemas of its path parameters, query, body and answer. The node's router (node/api/v1/)
 * dispatches by this table and validates with it, the OpenAPI document is generated from it, and
 * the TypeScript SDK (src/api/client.ts) is typed by it.
 *
 * Who may call: `operator` routes need the node's operator token; `agent` routes also take an
 * agent's token, which acts only as its own agent (the handler checks the agent it names); `public`
 * routes need no token.
 *
 * @example
 * const spec = ROUTES.completeTask   // { method: 'POST', path: '/api/tasks/{id}/complete', … }
 * type Body = z.input<typeof spec.body>
 */
import * as z from 'zod'
import {
  Acting,
  AgentRecord,
  AssignTask,
  Board,
  BoardName,
  CancelTask,
  CompleteTask,
  Certificate,
  ConsistencyMode,
  CreateWorknode,
  DocumentName,
  DocumentType,
  DocumentUpdate,
  DocumentView,
  EventPage,
  FailTask,
  HandoffTask,
  HlcText,
  HostedAgent,
  ItemFilter,
  ItemStatus,
  JsonValue,
  Member,
  Message,
  MintedToken,
  OpResult,
  Principal,
  ProgressTask,
  ReleaseTask,
  Reply,
  SendMessage,
  Skill,
  TaskRef,
  Token,
  UpdateWorknode,
  WhoAmI,
  WorkItem,
  limitParam,
  page
} from './schema.ts'

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE'
export type Auth = 'public' | 'agent' | 'operator'

export interface RouteSpec {
  method: Method
  /** OpenAPI path template: `/api/agents/{id}/tasks`. */
  path: string
  summary: string
  /** More than the summary says: how it answers in cases a client must know (OpenAPI `description`). */
  description?: string
  /** The OpenAPI tag it is listed under. */
  tag: string
  auth: Auth
  params?: z.ZodObject
  query?: z.ZodObject
  body?: z.ZodType
  /** The answer's schema (status 200, application/json); for a stream, the schema of one event's data. */
  response: z.ZodType
  /** Answers text/event-stream instead of JSON. */
  stream?: true
}

const Id = z.object({ id: Principal })
const Ref = z.object({ id: TaskRef })
const Paging = { limit: limitParam(500, 100), after: z.string().max(200).optional() }
const Wait = z.coerce.number().int().min(0).max(60_000).default(0)

/** How every work operation answers: refusals before and after writing. */
const OP_REFUSALS =
  'Acts as `as` (an agent hosted on this node; with an agent token its own agent). What the board refuses before ' +
  'anything is written (a claimed item, a wrong transition, no right) answers a problem: 409 with the error named, ' +
  '403 WorkUnauthorizedError, 404 for an unknown board or item. `outcome` is the operation as folded on this node ' +
  'when it answers: one written and refused by the fold (an earlier concurrent operation had arrived) answers 200 ' +
  'with `accepted: false`, its `reason` and `error` named; a loss learned later (an earlier operation arriving from ' +
  "another replica) is a `refused` event in /api/events, and a work.lost message in the agent's inbox. " +
  '`item` is the item after it, null if the actor may not read it (or it was deleted).'

/** One route per work action on a task: POST /api/tasks/{id}/<action>. */
function taskAction<B extends z.ZodType>(
  action: string,
  summary: string,
  body: B
): RouteSpec & { method: 'POST'; params: typeof Ref; body: B; response: typeof OpResult } {
  return {
    method: 'POST',
    path: `/api/tasks/{id}/${action}`,
    summary,
    description: OP_REFUSALS,
    tag: 'work',
    auth: 'agent',
    params: Ref,
    body,
    response: OpResult
  }
}

export const ROUTES = {
  // ---------------------------------------------------------------- who and where
  whoami: {
    method: 'GET',
    path: '/api/whoami',
    summary: 'Who this token acts as',
    tag: 'node',
    auth: 'agent',
    response: WhoAmI
  },
  node: {
    method: 'GET',
    path: '/api/node',
    summary: "This node's peer id, addresses and agents' kinds",
    tag: 'node',
    auth: 'agent',
    response: z.object({ peerId: z.string(), multiaddrs: z.array(z.string()), kinds: z.array(z.string()) }).loose()
  },
  members: {
    method: 'GET',
    path: '/api/members',
    summary: "The cluster's members as this node sees them",
    tag: 'node',
    auth: 'agent',
    query: z.object(Paging),
    response: page('members', Member)
  },
  fleet: {
    method: 'GET',
    path: '/api/fleet',
    summary: "The fleet's status: totals, members' summaries, one row per agent",
    tag: 'node',
    auth: 'agent',
    response: z
      .object({
        totals: z.record(z.string(), z.unknown()),
        members: z.array(z.unknown()),
        agents: z.array(z.unknown())
      })
      .loose()
  },

  // ---------------------------------------------------------------- agents
  findAgents: {
    method: 'GET',
    path: '/api/agents',
    summary: 'Find agents in the registry by skill',
    tag: 'agents',
    auth: 'agent',
    query: z.object({ skill: Skill, ...Paging }),
    response: page('agents', AgentRecord).extend({
      /** Providers of the skill left out, and why (a host that is no member, one that did not answer). */
      skipped: z.array(z.object({ peer: z.string(), name: z.string(), message: z.string() })).optional()
    })
  },
  getAgent: {
    method: 'GET',
    path: '/api/agents/{id}',
    summary: "An agent's registry record and card, by principal",
    tag: 'agents',
    auth: 'agent',
    params: Id,
    response: AgentRecord
  },
  agentTasks: {
    method: 'GET',
    path: '/api/agents/{id}/tasks',
    summary: 'The work items assigned to an agent, on every board this node holds (or one)',
    tag: 'work',
    auth: 'agent',
    params: Id,
    query: z.object({ board: BoardName.optional(), status: ItemStatus.optional(), ...Paging }),
    response: page('tasks', WorkItem)
  },
  inbox: {
    method: 'GET',
    path: '/api/agents/{id}/inbox',
    summary: 'Messages waiting for an agent hosted here (long poll with wait, in ms)',
    tag: 'agents',
    auth: 'agent',
    params: Id,
    query: z.object({ wait: Wait, limit: limitParam(100, 100) }),
    response: z.object({ agent: Principal, messages: z.array(Message) })
  },
  send: {
    method: 'POST',
    path: '/api/agents/{id}/messages',
    summary: 'Send a message (or a request, answered) as an agent hosted here',
    tag: 'agents',
    auth: 'agent',
    params: Id,
    body: SendMessage,
    response: z.object({ id: z.string(), response: JsonValue.optional(), to: z.string().optional() }).loose()
  },
  reply: {
    method: 'POST',
    path: '/api/agents/{id}/replies',
    summary: 'Answer a request (or confirm a message) in the inbox of an agent hosted here',
    tag: 'agents',
    auth: 'agent',
    params: Id,
    body: Reply,
    response: z.object({ agent: Principal, id: z.string(), answered: z.boolean() })
  },
  hostedAgents: {
    method: 'GET',
    path: '/api/node/agents',
    summary: 'The agents this node hosts (an agent token sees only its own)',
    tag: 'agents',
    auth: 'agent',
    query: z.object(Paging),
    response: page('agents', HostedAgent)
  },
  attachAgent: {
    method: 'POST',
    path: '/api/node/agents',
    summary: 'Start an agent here, or attach an external one and mint its token',
    tag: 'agents',
    auth: 'operator',
    body: z.object({
      kind: z.string().min(1).max(64),
      id: z.string().min(1).max(64).optional(),
      /** For an external agent: mint a token bound to it (default true). */
      token: z.boolean().optional()
    }),
    response: HostedAgent.extend({
      attached: z.boolean().optional(),
      token: z.string().optional(),
      tokenId: z.string().optional()
    })
  },
  stopAgent: {
    method: 'DELETE',
    path: '/api/node/agents/{id}',
    summary: 'Stop an agent hosted here (its tokens are revoked)',
    tag: 'agents',
    auth: 'operator',
    params: Id,
    response: z.object({ agent: Principal, stopped: z.boolean() })
  },

  // ---------------------------------------------------------------- tokens
  listTokens: {
    method: 'GET',
    path: '/api/tokens',
    summary: "The agents' live tokens (never their secrets)",
    tag: 'tokens',
    auth: 'operator',
    query: z.object({ agent: Principal.optional(), ...Paging }),
    response: page('tokens', Token)
  },
  mintToken: {
    method: 'POST',
    path: '/api/agents/{id}/tokens',
    summary: 'Mint a token bound to an external agent hosted here (the secret is shown once)',
    tag: 'tokens',
    auth: 'operator',
    params: Id,
    response: MintedToken
  },
  revokeToken: {
    method: 'DELETE',
    path: '/api/tokens/{tokenId}',
    summary: 'Revoke a token: it answers 401 from now on, and its streams end',
    tag: 'tokens',
    auth: 'operator',
    params: z.object({ tokenId: z.string().regex(/^[0-9a-f]{16}$/, 'must be a token id: 16 of 0-9 a-f') }),
    response: z.object({ revoked: z.array(Token) })
  },

  // ---------------------------------------------------------------- boards and work nodes
  listBoards: {
    method: 'GET',
    path: '/api/boards',
    summary: 'The boards this node holds',
    description:
      "An agent's token sees only the boards it may read something on; where it may read only part of one, the counts are -1 (not told).",
    tag: 'work',
    auth: 'agent',
    query: z.object(Paging),
    response: page('boards', Board)
  },
  openBoard: {
    method: 'POST',
    path: '/api/boards',
    summary: 'Open (or create) a board in a consistency mode',
    tag: 'work',
    auth: 'operator',
    description:
      'Without `mode`: the mode the board has, or eventual for a new one. A board keeps its mode (409 BoardModeMismatchError).',
    body: z.object({ name: BoardName, mode: ConsistencyMode.optional() }),
    response: Board
  },
  getBoard: {
    method: 'GET',
    path: '/api/boards/{board}',
    summary: 'One board',
    description:
      "An agent's token that may read nothing on the board is answered 404, as for a board not held; where it may read only part of it, the counts are -1.",
    tag: 'work',
    auth: 'agent',
    params: z.object({ board: BoardName }),
    response: Board
  },
  listWorknodes: {
    method: 'GET',
    path: '/api/worknodes',
    summary: "A board's items the caller may read, filtered and paged",
    tag: 'work',
    auth: 'agent',
    query: ItemFilter.extend({ board: BoardName }),
    response: page('items', WorkItem)
  },
  createWorknode: {
    method: 'POST',
    path: '/api/worknodes',
    summary: 'Create a work item (a goal, a task) on a board',
    description: OP_REFUSALS,
    tag: 'work',
    auth: 'agent',
    body: CreateWorknode,
    response: OpResult
  },
  getWorknode: {
    method: 'GET',
    path: '/api/worknodes/{id}',
    summary: 'One work item with its history',
    tag: 'work',
    auth: 'agent',
    params: Ref,
    response: WorkItem
  },
  updateWorknode: {
    method: 'PUT',
    path: '/api/worknodes/{id}',
    summary: "Change a work item's title, description, priority or skills",
    description: OP_REFUSALS,
    tag: 'work',
    auth: 'agent',
    params: Ref,
    body: UpdateWorknode,
    response: OpResult
  },
  deleteWorknode: {
    method: 'DELETE',
    path: '/api/worknodes/{id}',
    summary: 'Delete a work item',
    description: OP_REFUSALS,
    tag: 'work',
    auth: 'agent',
    params: Ref,
    query: Acting,
    response: OpResult
  },
  claimTask: taskAction('claim', 'Claim a ready, unassigned task', Acting),
  assignTask: taskAction('assign', 'Assign a task (or with null clear its assignee)', AssignTask),
  releaseTask: taskAction('release', 'Give back a task one holds', ReleaseTask),
  progressTask: taskAction('progress', 'Report progress on a task one holds', ProgressTask),
  completeTask: taskAction('complete', 'Complete a task one holds, with its result and artifacts', CompleteTask),
  failTask: taskAction('fail', 'Fail (or with rejected, decline) a task one holds', FailTask),
  cancelTask: taskAction('cancel', 'Cancel a task', CancelTask),
  handoffTask: taskAction('handoff', 'Hand a task one holds to another agent, with its state so far', HandoffTask),

  // ---------------------------------------------------------------- events
  events: {
    method: 'GET',
    path: '/api/events',
    summary: 'Events in HLC order since an HLC or after a cursor (long poll with wait, in ms)',
    tag: 'events',
    auth: 'agent',
    query: z.object({
      since: HlcText.optional(),
      after: z.string().max(200).optional(),
      limit: limitParam(1000, 100),
      wait: Wait
    }),
    response: EventPage
  },
  eventStream: {
    method: 'GET',
    path: '/api/events/stream',
    summary: 'Events as server-sent events; resumes after the Last-Event-ID header (or since an HLC)',
    tag: 'events',
    auth: 'agent',
    query: z.object({ since: HlcText.optional() }),
    response: EventPage.shape.events.element,
    stream: true
  },

  // ---------------------------------------------------------------- documents
  listDocuments: {
    method: 'GET',
    path: '/api/documents',
    summary: 'The shared documents this node holds that the caller may read',
    description:
      "An agent token lists the public documents and those its chain grants (cyberspace (log (read <name>))); the node's own documents (agent sessions, the agent directory) are never listed to it.",
    tag: 'documents',
    auth: 'agent',
    query: z.object(Paging),
    response: page(
      'documents',
      z.object({ name: z.string(), type: z.string(), open: z.boolean(), public: z.boolean() })
    )
  },
  getDocument: {
    method: 'GET',
    path: '/api/documents/{name}',
    summary: "A document's value",
    description: 'A document the caller may not read answers 404, as one this node does not hold.',
    tag: 'documents',
    auth: 'agent',
    params: z.object({ name: DocumentName }),
    response: DocumentView
  },
  updateDocument: {
    method: 'POST',
    path: '/api/documents/{name}',
    summary: 'Apply an update to a document (as an agent hosted here, or the node)',
    description:
      'With `type` the document is opened (created and replicated from then on) if this node has none; without it, it must exist. ' +
      'An agent writes as itself (its chain must grant (cyberspace (log (append <name>)))); the operator writes as `as` if given, else as the node. ' +
      '`public` makes a new document readable by any peer.',
    tag: 'documents',
    auth: 'agent',
    params: z.object({ name: DocumentName }),
    body: z.object({
      as: Principal.optional(),
      type: DocumentType.optional(),
      public: z.boolean().optional(),
      update: DocumentUpdate
    }),
    response: DocumentView.extend({ cid: z.string().nullable() })
  },

  // ---------------------------------------------------------------- certificates
  listCertificates: {
    method: 'GET',
    path: '/api/certificates',
    summary: 'The SPKI certificates this node holds',
    tag: 'certificates',
    auth: 'agent',
    description:
      'An agent token sees the certificates whose issuer or subject is its own agent; the operator every one. Paged by hash.',
    query: z.object({ subject: Principal.optional(), ...Paging }),
    response: page('certificates', Certificate)
  },
  issueCertificate: {
    method: 'POST',
    path: '/api/certificates',
    summary: "Issue a certificate with this node's key",
    tag: 'certificates',
    auth: 'operator',
    description:
      "`subject`: a principal, a peer id or an SDSI name; `tag` an S-expression; `notBefore`/`notAfter` a time as the CLI takes it (`+30d`, `2026-01-01`, …); `onlineCrl` makes verifiers hold this node's current CRL.",
    body: z.object({
      subject: z.string().min(1).max(4096),
      tag: z.string().min(1).max(16_384),
      propagate: z.boolean().default(false),
      notBefore: z.string().min(1).max(64).optional(),
      notAfter: z.string().min(1).max(64).optional(),
      onlineCrl: z.boolean().optional()
    }),
    response: Certificate
  }
} as const satisfies Record<string, RouteSpec>

export type RouteName = keyof typeof ROUTES
