/**
 * The SPKI tags of coordination. A board operation needs
 * `(cyberspace (work <board> <action> <kind> <path>))`; reading an item needs the same with action
 * `read`; a swarm message needs `(cyberspace (swarm <type> <subject>))`. Tags are built from atoms,
 * never parsed from text, so no name can inject structure. Delegation narrows by SPKI
 * intersection: `(cyberspace (work B))` grants everything on board B,
 * `(cyberspace (work B (* set claim progress complete) task))` those actions on items of kind task,
 * `(cyberspace (work B read (*) (* prefix goal/)))` reading under goal/.
 *
 * @example
 * workTag('release', 'claim', 'task', 'goal/t1')   // (cyberspace (work release claim task goal/t1))
 * opTag('release', op)                              // the tag of op's action, kind and path
 * swarmTag('offer', 'typescript')                   // (cyberspace (swarm offer typescript))
 */
import { SWARM_TYPES } from '../../protocols/swarm/codec.ts'
import { checkBoardName } from '../../protocols/work/codec.ts'
import { atom } from '../spki/sexp.ts'
import { ALL, parseTag, tagToSexp } from '../spki/tag.ts'
import type { Sexp } from '../spki/sexp.ts'
import type { Tag } from '../spki/tag.ts'
import type { SwarmType } from '../../protocols/swarm/codec.ts'
import type { WorkOp, WorkRight } from './types.ts'

/** The swarm's message types (protocols/swarm/), each the second word of its tag. */
export { SWARM_TYPES }
export type { SwarmType }

const ANY: Sexp = tagToSexp(ALL)

/**
 * `(cyberspace (work <board> [<action> [<kind> [<path>]]]))`. Without an action: everything on the
 * board; a path without a kind stands for any kind (`(*)`). InvalidBoardNameError for a bad name.
 */
export function workTag(board: string, action?: WorkRight, kind?: string, path?: string): Tag {
  checkBoardName(board)
  const words: Sexp[] = [atom('work'), atom(board)]
  if (action !== undefined) {
    words.push(atom(action))
    if (kind !== undefined || path !== undefined) words.push(kind === undefined ? ANY : atom(kind))
    if (path !== undefined) words.push(atom(path))
  } else if (kind !== undefined || path !== undefined) {
    throw new TypeError('a work tag names an action before a kind or a path')
  }
  return parseTag([atom('cyberspace'), words])
}

/** The tag an operation needs: its action, and the kind and path it names (for create, the new item's). */
export function opTag(board: string, op: WorkOp): Tag {
  return workTag(board, op.op, op.kind, op.path)
}

/**
 * Every tag an operation needs: its own, and for a create that names an assignee also the
 * `assign` right on the new item (an assignee given at creation is an assign in effect).
 */
export function opTags(board: string, op: WorkOp): Tag[] {
  const tags = [opTag(board, op)]
  if (op.op === 'create' && op.assignee !== undefined) tags.push(workTag(board, 'assign', op.kind, op.path))
  return tags
}

/** `(cyberspace (swarm <type> <subject>))`: what sending a swarm message of `type` about `subject` needs. */
export function swarmTag(type: SwarmType, subject: string): Tag {
  if (!(SWARM_TYPES as readonly string[]).includes(type))
    throw new TypeError(`unknown swarm message type ${String(type)}`)
  return parseTag([atom('cyberspace'), [atom('swarm'), atom(type), atom(subject)]])
}
