/**
 * The shapes of the public HTTP API, as zod schemas: one definition that the server validates
 * requests with, the OpenAPI document is generated from (src/api/openapi.ts), the TypeScript SDK
 * takes its types from (src/api/client.ts) and the MCP tools take their inputs from.
 *
 * Runs in browsers (no node: imports). Limits are the protocol's own (protocols/work/codec.ts,
 * protocols/mailbox/codec.ts): the API refuses at its edge what the log would refuse later.
 *
 * @example
 * const item = WorkItem.parse(await res.json())   // throws a ZodError naming the bad field
 * type Item = z.infer<typeof WorkItem>
 */
import * as z from 'zod'
import {
  BOARD_PATTERN,
  ITEM_ID_PATTERN,
  KIND_PATTERN,
  MAX_ARTIFACTS,
  MAX_ARTIFACT_NAME_LENGTH,
  MAX_CID_LENGTH,
  MAX_DEPS,
  MAX_DESCRIPTION_LENGTH,
  MAX_ERROR_LENGTH,
  MAX_MEDIA_TYPE_LENGTH,
  MAX_MESSAGE_LENGTH,
  MAX_PRIORITY,
  MAX_REASON_LENGTH,
  MAX_SKILLS,
  MAX_SKILL_LENGTH,
  MAX_TITLE_LENGTH,
  SKILL_PATTERN
} from '../../protocols/work/codec.ts'
import { ITEM_STATUSES, WORK_ACTIONS } from '../../protocols/work/types.ts'
import { MAX_ID_LENGTH, MAX_TYPE_LENGTH } from '../../protocols/mailbox/codec.ts'
import { MAX_DEPTH, MAX_KEY_LENGTH } from '../crdt/codec.ts'

// ------------------------------------------------------------------ names and references

/** A principal as text: an Ed25519 multikey, `z6Mk…`. */
export const Principal = z
  .string()
  .regex(/^z6Mk[1-9A-HJ-NP-Za-km-z]{44}$/, 'must be a principal: z6Mk… (48 characters)')
  .describe('A principal: an Ed25519 public key as multikey text, z6Mk…')

// names are checked with the work protocol's own patterns (protocols/work/codec.ts), one home for each

/** A board's name. */
export const BoardName = z
  .string()
  .regex(BOARD_PATTERN, 'must be a board name: 1-64 of a-z 0-9 . _ - starting with a letter or digit')

/** An item's id on its board. */
export const ItemId = z
  .string()
  .regex(ITEM_ID_PATTERN, 'must be an item id: 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit')

/** An item's kind (`task`, `goal`…): spelled like an id. */
export const ItemKind = z
  .string()
  .regex(KIND_PATTERN, 'must be a kind: 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit')

/** A pattern's body, without its anchors: `^…$` → `…`. */
const unanchored = (pattern: RegExp): string => pattern.source.replace(/^\^/, '').replace(/\$$/, '')

/**
 * A work node (an item: a goal, a task) named across boards: `<board>:<item>`. What `ref` of an
 * item says, and what `/api/worknodes/{id}` and `/api/tasks/{id}/…` take.
 */
export const TaskRef = z
  .string()
  .regex(
    new RegExp(`^${unanchored(BOARD_PATTERN)}:${unanchored(ITEM_ID_PATTERN)}$`),
    'must be a task reference: <board>:<item>, e.g. release:t1'
  )
  .describe('A work item named across boards: <board>:<item>')

/** Splits a TaskRef (already checked) into its board and item. */
export function splitTaskRef(ref: string): { board: string; item: string } {
  const at = ref.indexOf(':')
  return { board: ref.slice(0, at), item: ref.slice(at + 1) }
}

/** An HLC as text, `<wall ms>.<logical>`, e.g. `1763700000000.0`. */
export const HlcText = z
  .string()
  .regex(/^\d{1,16}\.\d{1,10}$/, 'must be an HLC: <wall ms>.<logical>, e.g. 1763700000000.0')

/** An HLC as JSON: `[wall ms, logical]`. */
export const Hlc = z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()])

/** A skill id. */
export const Skill = z
  .string()
  .regex(
    SKILL_PATTERN,
    `must be a skill: 1-${MAX_SKILL_LENGTH} of A-Z a-z 0-9 . _ : / - starting with a letter or digit`
  )

/** JSON, carried as DAG-JSON (`{"/": "<cid>"}` a link, `{"/": {"bytes": "<base64>"}}` bytes). */
export const JsonValue = z.unknown().describe('Any JSON value, read as DAG-JSON')

export const ItemStatus = z.enum(ITEM_STATUSES)
export const WorkAction = z.enum(WORK_ACTIONS)
export const ConsistencyMode = z.enum(['local', 'eventual', 'strong'])

/** A page's limit: 1..max, default `fallback`. Query strings carry numbers as text. */
export function limitParam(max: number, fallback: number): z.ZodDefault<z.ZodCoercedNumber<unknown>> {
  return z.coerce.number().int().min(1).max(max).default(fallback)
}

/** A query string's boolean: `true` or `false`. */
export const BooleanParam = z.enum(['true', 'false']).transform(v => v === 'true')

// ------------------------------------------------------------------ errors

/**
 * Every error the API answers, as RFC 9457 problem details (`application/problem+json`). `type`
 * names the error (a URN of its name), `title` says what went wrong in general, `detail` in this
 * case and how to fix it; `name` is the node's error name (what the SDKs raise).
 */
export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    name: z.string(),
    /** For a request that failed validation: each bad field and what is wrong with it. */
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional()
  })
  .loose()

// ------------------------------------------------------------------ work

export const Artifact = z.object({
  cid: z.string().min(1).max(MAX_CID_LENGTH),
  name: z.string().min(1).max(MAX_ARTIFACT_NAME_LENGTH),
  mediaType: z.string().min(1).max(MAX_MEDIA_TYPE_LENGTH)
})

export const HistoryEntry = z.object({
  hlc: Hlc,
  actor: Principal,
  op: WorkAction,
  status: ItemStatus,
  assignee: Principal.optional(),
  message: z.string().optional()
})

export const WorkItem = z.object({
  ref: TaskRef,
  board: BoardName,
  id: ItemId,
  parent: ItemId.optional(),
  path: z.string(),
  title: z.string(),
  description: z.string().optional(),
  kind: z.string(),
  status: ItemStatus,
  assignee: Principal.optional(),
  skills: z.array(z.string()),
  deps: z.array(z.string()),
  ready: z.boolean(),
  priority: z.number(),
  progress: z.object({ percent: z.number(), message: z.string().optional() }).optional(),
  result: JsonValue.optional(),
  error: z.string().optional(),
  artifacts: z.array(Artifact),
  handoff: z.object({ from: Principal, state: JsonValue.optional() }).optional(),
  created: Hlc,
  updated: Hlc,
  createdBy: Principal,
  deleted: z.boolean(),
  /** Present when one item is read; lists leave it out. */
  history: z.array(HistoryEntry).optional()
})

export const Board = z.object({
  name: BoardName,
  mode: ConsistencyMode,
  items: z.number().int(),
  ops: z.number().int()
})

/** What became of an operation once folded where it was submitted, and the item after it. */
export const OpResult = z.object({
  ref: TaskRef,
  op: WorkAction,
  outcome: z.object({
    accepted: z.boolean(),
    reason: z.string().optional(),
    winner: Principal.optional(),
    /** For a refusal, the name of the board's error for it. */
    error: z.string().optional()
  }),
  /** Null once deleted. */
  item: WorkItem.nullable()
})

/**
 * Who acts: with an agent's token the token's agent (`as` may be left out, or must name it); with
 * the operator's token, `as` names the hosted agent to act as.
 */
export const Acting = z.object({ as: Principal.optional() })

export const CreateWorknode = Acting.extend({
  board: BoardName,
  /** Left out: the node picks one. */
  id: ItemId.optional(),
  parent: ItemId.optional(),
  title: z.string().min(1).max(MAX_TITLE_LENGTH),
  description: z.string().max(MAX_DESCRIPTION_LENGTH).optional(),
  kind: ItemKind.default('task'),
  skills: z.array(Skill).max(MAX_SKILLS).optional(),
  deps: z.array(ItemId).max(MAX_DEPS).optional(),
  priority: z.number().int().min(0).max(MAX_PRIORITY).optional(),
  assignee: Principal.optional()
})

export const UpdateWorknode = Acting.extend({
  title: z.string().min(1).max(MAX_TITLE_LENGTH).optional(),
  description: z.string().max(MAX_DESCRIPTION_LENGTH).optional(),
  priority: z.number().int().min(0).max(MAX_PRIORITY).optional(),
  skills: z.array(Skill).max(MAX_SKILLS).optional()
})

export const AssignTask = Acting.extend({ assignee: Principal.nullable() })
export const ReleaseTask = Acting.extend({ reason: z.string().max(MAX_REASON_LENGTH).optional() })
export const ProgressTask = Acting.extend({
  percent: z.number().min(0).max(100),
  message: z.string().max(MAX_MESSAGE_LENGTH).optional(),
  status: z.enum(['working', 'input-required', 'auth-required']).optional()
})
export const CompleteTask = Acting.extend({
  result: JsonValue.optional(),
  artifacts: z.array(Artifact).max(MAX_ARTIFACTS).optional()
})
export const FailTask = Acting.extend({
  error: z.string().min(1).max(MAX_ERROR_LENGTH),
  rejected: z.boolean().optional()
})
export const CancelTask = Acting.extend({ reason: z.string().max(MAX_REASON_LENGTH).optional() })
export const HandoffTask = Acting.extend({ to: Principal, state: JsonValue.optional() })

export const ItemFilter = z.object({
  status: ItemStatus.optional(),
  assignee: Principal.optional(),
  kind: ItemKind.optional(),
  parent: ItemId.optional(),
  ready: BooleanParam.optional(),
  limit: limitParam(500, 100),
  /** The `next` of the previous page. */
  after: z.string().max(200).optional()
})

// ------------------------------------------------------------------ events

export const Event = z.object({
  /** Where this event sits in the journal: pass it as `after`, or as Last-Event-ID, to go on after it. */
  cursor: z.string(),
  hlc: Hlc,
  source: z.string(),
  type: z.string(),
  subject: z.string(),
  data: JsonValue,
  id: z.string().optional(),
  /** Out of HLC order: it reached the node more than the journal's settle delay after its stamp, after later events. */
  late: z
    .boolean()
    .optional()
    .describe(
      'True when the event is out of HLC order: it reached this node more than the journal settle delay (500 ms by default) after its HLC time, after events with later HLCs had been delivered. It is still delivered, once, at its place in the journal; absent otherwise.'
    )
})

export const EventPage = z.object({
  events: z.array(Event),
  /** Pass as `after` for the next page (absent only when nothing was found and no point given). */
  cursor: z.string().optional(),
  more: z.boolean()
})

// ------------------------------------------------------------------ agents, members, tokens

export const AgentRecord = z
  .object({
    agent: Principal,
    host: z.string(),
    addrs: z.array(z.string()),
    seq: z.number().int(),
    expires: z.number().int(),
    card: z.record(z.string(), z.unknown())
  })
  .loose()

export const HostedAgent = z
  .object({
    principal: Principal,
    kind: z.string(),
    id: z.string()
  })
  .loose()

export const Token = z.object({
  id: z.string(),
  agent: Principal,
  created: z.number().int(),
  lastUsed: z.number().int().nullable()
})

export const MintedToken = Token.extend({
  /** The secret: shown this once. */
  token: z.string()
})

export const Message = z
  .object({
    id: z.string(),
    from: Principal,
    to: Principal,
    type: z.string(),
    request: z.boolean(),
    body: JsonValue
  })
  .loose()

export const SendMessage = z.object({
  /** A principal, a peer id or a name like `cluster's reviewer`. */
  to: z.string().min(1).max(512),
  type: z.string().min(1).max(MAX_TYPE_LENGTH),
  body: JsonValue.optional(),
  /** Wait for the recipient's answer. */
  request: z.boolean().default(false),
  timeout: z.number().int().min(1).max(120_000).default(30_000),
  id: z.string().min(1).max(MAX_ID_LENGTH).optional()
})

export const Reply = z.object({
  /** The id of the message answered. */
  message: z.string().min(1).max(MAX_ID_LENGTH),
  body: JsonValue.optional(),
  error: z.string().min(1).max(1000).optional()
})

/** A member as this node's view holds it (src/membership/service.ts MemberView). */
export const Member = z
  .object({
    principal: Principal,
    peerId: z.string(),
    state: z.enum(['alive', 'suspect', 'dead', 'left']),
    incarnation: z.number().int(),
    /** The multiaddrs it announced (signed). */
    addrs: z.array(z.string()),
    /** When this node last had direct word from it, ms since the epoch. */
    lastHeard: z.number(),
    /** When it entered `state` in this view, ms since the epoch. */
    since: z.number(),
    meta: z.record(z.string(), z.string()),
    /** This node itself. */
    self: z.boolean()
  })
  .loose()

export const WhoAmI = z.object({
  /** Whose token this is. */
  caller: z.enum(['operator', 'agent']),
  /** The agent's principal, or the node's for the operator. */
  principal: Principal,
  node: z.string(),
  tokenId: z.string().optional()
})

// ------------------------------------------------------------------ documents

/** A document's name (a log id). */
export const DocumentName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._-]{0,63}$/,
    'must be a document name: 1-64 of a-z 0-9 . _ - starting with a letter or digit'
  )

/** The CRDT types a document may have through the API (an op-log is a board's: see /api/worknodes). */
export const DOCUMENT_TYPES = [
  'g-counter',
  'pn-counter',
  'or-set',
  'lww-register',
  'mv-register',
  'or-map',
  'text'
] as const
export const DocumentType = z.enum(DOCUMENT_TYPES)

/** What an update of a document does; which apply depends on its type (see DocumentUpdate). */
export const STATE_OPS = ['set', 'assign', 'increment', 'decrement', 'add', 'remove', 'delete', 'clear'] as const

/**
 * One update of a document. By type: a register `set`s a value; a counter `increment`s (a
 * pn-counter also `decrement`s) by `value` (a whole number ≥ 1, default 1); an or-set `add`s,
 * `remove`s a value or is `clear`ed; a text is `set` to a string; a map takes every op but clear
 * at a `path` of field names (`set` last-writer-wins, `assign` multi-value, `add`/`remove` an
 * element of the set there, `increment`/`decrement` the counter there, `delete` the field).
 */
export const DocumentUpdate = z.object({
  op: z.enum(STATE_OPS),
  path: z.array(z.string().min(1).max(MAX_KEY_LENGTH)).min(1).max(MAX_DEPTH).optional(),
  value: JsonValue.optional()
})

export const DocumentView = z.object({
  name: z.string(),
  type: z.string(),
  /** As DAG-JSON. */
  value: JsonValue,
  heads: z.array(z.string()),
  /** Events applied since its base snapshot. */
  events: z.number().int(),
  /** Served to any peer, not only to readers the ACL grants. */
  public: z.boolean()
})

// ------------------------------------------------------------------ certificates

/** An SPKI certificate this node holds, in both text forms. */
export const Certificate = z.object({
  /** sha256 of its canonical (cert …), hex: what a CRL names it by. */
  hash: z.string(),
  type: z.enum(['auth', 'name']),
  issuer: Principal,
  /** A principal for a key subject, else the subject's S-expression. */
  subject: z.string(),
  advanced: z.string(),
  transport: z.string()
})

/** A page of anything: `next` is the cursor for `after`, null on the last page. */
export function page<F extends string, T extends z.ZodType>(field: F, item: T): z.ZodObject<PageShape<F, T>> {
  return z.object({ [field]: z.array(item), next: z.string().nullable() } as PageShape<F, T>)
}

/** A page's fields, typed: the list under its own name, and `next`. */
type PageShape<F extends string, T extends z.ZodType> = { [K in F]: z.ZodArray<T> } & {
  next: z.ZodNullable<z.ZodString>
}
