/**
 * The types of the work protocol: item statuses, operation names, and the operations a board's
 * log holds (checked by codec.ts). Principals are their multikey text (`z6Mk…`).
 */

/** An agent principal as text, `z6Mk…` (src/crypto/principal.ts brands it PrincipalId). */
export type Principal = string

/** A2A task states; the last four are terminal (final: nothing changes a terminal item but `delete`). */
export const ITEM_STATUSES = [
  'submitted',
  'working',
  'input-required',
  'auth-required',
  'completed',
  'failed',
  'canceled',
  'rejected'
] as const
export type ItemStatus = (typeof ITEM_STATUSES)[number]
export const TERMINAL_STATUSES: ReadonlySet<ItemStatus> = new Set(['completed', 'failed', 'canceled', 'rejected'])

/** What a board's operations are called; each is also the action of its authority tag. */
export const WORK_ACTIONS = [
  'create',
  'update',
  'delete',
  'assign',
  'claim',
  'release',
  'progress',
  'complete',
  'fail',
  'cancel',
  'handoff'
] as const
export type WorkAction = (typeof WORK_ACTIONS)[number]
/** Actions an authority tag may name: every operation, and `read`. */
export type WorkRight = WorkAction | 'read'

export interface Artifact {
  /** A CID (string) of the artifact's bytes or DAG. */
  cid: string
  name: string
  mediaType: string
}

/**
 * What every operation names about its item: the id, the item's kind and its path (ancestor ids and
 * the id, joined by '/'). Authority is decided from these before an event is applied (a replica may
 * not hold the item yet), and the fold refuses an operation whose kind or path is not the item's
 * ('bad-scope'); for `create`, the path is the parent's path plus the id.
 */
export interface OpScope {
  item: string
  kind: string
  path: string
}

/** One operation, as written in a board's log (protocols/work/codec.ts decodes it with limits). */
export type WorkOp = OpScope &
  (
    | {
        op: 'create'
        parent?: string
        title: string
        description?: string
        skills?: string[]
        /** Items that must be completed before this one is ready; each must exist when it is created. Fixed at creation. */
        deps?: string[]
        priority?: number
        /** Assigned at creation (needs the `assign` right too). */
        assignee?: Principal
      }
    | { op: 'update'; title?: string; description?: string; priority?: number; skills?: string[] }
    | { op: 'delete' }
    /** Sets (or with `null` clears) the assignee of a non-terminal item; a working item goes back to submitted when cleared. */
    | { op: 'assign'; assignee: Principal | null }
    | { op: 'claim' }
    | { op: 'release'; reason?: string }
    /** By the assignee; may also move the status between working, input-required and auth-required. */
    | { op: 'progress'; percent: number; message?: string; status?: 'working' | 'input-required' | 'auth-required' }
    | { op: 'complete'; result?: unknown; artifacts?: Artifact[] }
    /** By the assignee: failed, or `rejected: true` for work the assignee declines as not doable. */
    | { op: 'fail'; error: string; rejected?: boolean }
    | { op: 'cancel'; reason?: string }
    /** By the assignee: `to` becomes the assignee, with the work's state so far. */
    | { op: 'handoff'; to: Principal; state?: unknown }
  )
