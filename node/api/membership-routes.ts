/**
 * Control-API routes for membership (`cyberspace members`, `cyberspace leave`): this node's view
 * of the cluster — every member with its state, incarnation, addresses, when it was last heard
 * from and the metadata it publishes — and a graceful leave.
 *
 * @example
 * GET /api/v0/members?state=dead → { "members": [{ "principal": "z6Mk…", "state": "dead", … }], "self": { … } }
 * POST /api/v0/members/meta { "meta": { "role": "builder", "zone": null } } → the member's own entry, at its new incarnation (keys given change, null removes one)
 * POST /api/v0/members/leave → { "left": true, "principal": "z6Mk…", "incarnation": 3 }
 */
import { HttpError, readJson } from './http.ts'
import { KINDS_META_KEY } from '../../src/actor/placement.ts'
import { FLEET_META_KEY } from '../../src/work/fleet.ts'
import type { Route } from './http.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { MemberState, MemberView } from '../../src/membership/service.ts'

const NOT_A_MEMBER =
  "this node is not a member: it holds no valid chain to (cyberspace member); on a cluster member run: cluster issue <this peer id> '(cyberspace member)'"

export const MEMBER_STATES: readonly MemberState[] = ['alive', 'suspect', 'dead', 'left']

/** Metadata keys the node's services write (the kinds it runs, its fleet summary): not the operator's to set. */
const NODE_META_KEYS: readonly string[] = [KINDS_META_KEY, FLEET_META_KEY]

export interface MembersView {
  /** Whether this node takes part (it holds a chain to (cyberspace member) by its own ACL). */
  member: boolean
  members: MemberView[]
}

/** Statuses for membership errors the routes let through. */
export const MEMBERSHIP_ERROR_STATUS: Record<string, number> = {
  InvalidMetaError: 400,
  NotTakingPartError: 409
}

export interface LeaveView {
  left: true
  principal: string
  incarnation: number
}

export interface MembershipRoutesInit {
  /** Called once a leave has been spread: the node process stops, as `serf leave` does. */
  onLeave?: () => void
}

export function membershipRoutes(node: CyberspaceNode, init: MembershipRoutesInit = {}): Record<string, Route> {
  return {
    'GET members': async (_req, url) => {
      const state = url.searchParams.get('state')
      if (state != null && !MEMBER_STATES.includes(state as MemberState))
        throw new HttpError(400, `state must be one of ${MEMBER_STATES.join(', ')}`)
      const members = node.membership.members().filter(m => state == null || m.state === state)
      return { member: node.membership.isMember(), members } satisfies MembersView
    },
    'POST members/meta': async req => {
      const meta = (await readJson(req)).meta
      if (meta == null || typeof meta !== 'object' || Array.isArray(meta))
        throw new HttpError(400, 'meta must be an object of strings')
      if (!node.membership.isMember()) throw new HttpError(409, NOT_A_MEMBER)
      // the keys given change (null removes one); the node's own keys are its services'
      const patch: Record<string, string | undefined> = {}
      for (const [k, v] of Object.entries(meta as Record<string, unknown>)) {
        if (NODE_META_KEYS.includes(k))
          throw new HttpError(400, `meta key ${k} is the node's own (${NODE_META_KEYS.join(', ')}): choose another key`)
        patch[k] = v === null ? undefined : (v as string)
      }
      // the service checks counts, lengths and that every value is a string (InvalidMetaError)
      await node.membership.updateMeta(patch)
      return node.membership.members().find(m => m.self)
    },
    'POST members/leave': async req => {
      await readJson(req)
      if (!node.membership.isMember()) throw new HttpError(409, NOT_A_MEMBER)
      await node.membership.leave()
      const self = node.membership.members().find(m => m.self)
      // answer first, then stop: the caller learns the leave was spread before the node goes
      setTimeout(() => init.onLeave?.(), 100).unref?.()
      return { left: true, principal: self?.principal ?? '', incarnation: self?.incarnation ?? 0 } satisfies LeaveView
    }
  }
}
