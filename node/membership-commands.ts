/**
 * `cyberspace members` and `cyberspace leave`: the running node's view of the cluster, and a
 * graceful leave. Membership is SWIM with Lifeguard among the nodes that hold a chain to
 * `(cyberspace member)` (see protocols/swim/ and protocols/membership/).
 *
 * @example
 * cyberspace members            # a table: member, state, incarnation, last heard, addresses, metadata
 * cyberspace members --watch    # the same table, redrawn every second until Ctrl-C
 * cyberspace leave              # spread a signed leave, then stop the node
 */
import { connectApi } from './api/client.ts'
import { MEMBER_STATES } from './api/membership-routes.ts'
import { UsageError } from './errors.ts'
import type { ApiClient } from './api/client.ts'
import type { LeaveView, MembersView } from './api/membership-routes.ts'
import type { CommandHelp } from './cli.ts'

type Out = (line: string) => void

export const MEMBERS_HELP: CommandHelp = {
  name: 'members',
  args: '[--state <alive|suspect|dead|left>] [--watch]',
  summary: "the cluster's members as this node sees them: state, incarnation, last heard, addresses",
  details: [
    "A member is a node holding a chain to (cyberspace member) from a root this node trusts (cluster issue <peer> '(cyberspace member)')."
  ],
  options: [
    ['--state <state>', 'only members in this state'],
    ['--watch', 'redraw the table every second until Ctrl-C'],
    ['--json', 'print JSON instead of text']
  ],
  example: 'members --state suspect'
}

export const LEAVE_HELP: CommandHelp = {
  name: 'leave',
  summary: 'leave the cluster gracefully (others see "left", not "dead"), then stop the node',
  details: ['Starting the node again rejoins with a higher incarnation.'],
  example: 'leave'
}

export interface MembersFlags {
  json?: boolean
  state?: string
  watch?: boolean
}

function ago(ms: number, now: number): string {
  if (ms <= 0) return '-'
  const s = Math.max(0, now - ms) / 1000
  return s < 60 ? `${s.toFixed(1)}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`
}

/** The members table: one row per member, this node marked. */
export function formatMembers(view: MembersView, now = Date.now()): string[] {
  if (view.members.length === 0)
    return [
      view.member
        ? '# no members match'
        : "# this node is not a member: it holds no chain to (cyberspace member) (on a cluster member run: cluster issue <this peer id> '(cyberspace member)')"
    ]
  const rows = view.members.map(m => [
    m.principal + (m.self ? ' (this node)' : ''),
    m.state,
    String(m.incarnation),
    m.self ? '-' : ago(m.lastHeard, now),
    String(m.addrs.length),
    Object.entries(m.meta)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')
  ])
  const head = ['MEMBER', 'STATE', 'INC', 'LAST HEARD', 'ADDRS', 'META']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)))
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd()
  return [line(head), ...rows.map(line)]
}

async function fetchMembers(api: ApiClient, state: string | undefined): Promise<MembersView> {
  return await api.get<MembersView>('members', state == null ? {} : { state })
}

export async function membersCommand(dataDir: string, rest: string[], flags: MembersFlags, out: Out): Promise<number> {
  if (rest.length > 0) throw new UsageError(`members: unexpected argument "${rest[0]}" (see cyberspace members --help)`)
  if (flags.state != null && !MEMBER_STATES.includes(flags.state as never))
    throw new UsageError(`invalid --state "${flags.state}": expected one of ${MEMBER_STATES.join(', ')}`)
  const api = await connectApi(dataDir)
  if (flags.watch !== true) {
    const view = await fetchMembers(api, flags.state)
    if (flags.json === true) out(JSON.stringify(view))
    else for (const line of formatMembers(view)) out(line)
    return 0
  }
  let stopped = false
  const stop = (): void => {
    stopped = true
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  while (!stopped) {
    const view = await fetchMembers(api, flags.state)
    if (flags.json === true) out(JSON.stringify(view))
    else {
      // clear the screen only on a terminal; piped output gets one table after another
      if (process.stdout.isTTY) process.stdout.write('\x1b[H\x1b[2J')
      for (const line of formatMembers(view)) out(line)
      out('')
    }
    await new Promise(resolve => setTimeout(resolve, 1000))
  }
  return 0
}

export async function leaveCommand(dataDir: string, rest: string[], out: Out): Promise<number> {
  if (rest.length > 0) throw new UsageError(`leave: unexpected argument "${rest[0]}" (see cyberspace leave --help)`)
  const api = await connectApi(dataDir)
  const left = await api.post<LeaveView>('members/leave', {})
  out(`left the cluster as ${left.principal} (incarnation ${left.incarnation}); the node is stopping`)
  return 0
}
