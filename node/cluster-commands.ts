/**
 * `cyberspace cluster …`: the cluster key this node holds a share of. Everything talks to the
 * running node, which runs the threshold protocols with the other members.
 *
 * @example
 * cyberspace cluster init --members 12D3KooA… --members 12D3KooB… --threshold 2
 * cyberspace cluster issue z6MkAgent… '(cyberspace (role builder))' --not-after +30d
 * cyberspace cluster reshare --members 12D3KooA…,12D3KooB…,12D3KooC…,12D3KooD… --threshold 3
 */
import { CLI, connectApi } from './api/client.ts'
import type { ApiClient } from './api/client.ts'
import { ApiError, ExplainedError, plainMessage, UsageError } from './errors.ts'
import { printCert } from './spki-commands.ts'
import type { ClusterView, RepairView, ReshareProgressView, ReshareView, SigningView } from './api/cluster-routes.ts'
import type { CertView } from './api/spki-routes.ts'
import type { GroupHelp } from './cli.ts'
import type { SpkiFlags } from './spki-commands.ts'

const JSON_OPTION: [string, string] = ['--json', 'print JSON instead of text']
const CEREMONY =
  "Every other member must first let this node run the cluster's key ceremonies: on each, run acl add <this node> '(cyberspace (cluster))'."

export const CLUSTER_HELP: GroupHelp = {
  name: 'cluster',
  summary: 'the cluster key: t of n members sign and decrypt together; no one holds the key',
  commands: [
    {
      name: 'cluster init',
      args: '--members <peer>... --threshold <t>',
      summary: 'generate the cluster key with these members (this node included)',
      details: [CEREMONY],
      options: [
        ['--members <peer>', 'another member, by peer id or principal; repeatable (or comma-separated)'],
        ['--threshold <t>', 'how many members must sign together'],
        JSON_OPTION
      ],
      example: 'cluster init --members 12D3KooWB… --members 12D3KooWC… --threshold 2'
    },
    {
      name: 'cluster show',
      summary: 'the cluster principal, threshold, epoch and members (this node marked)',
      options: [JSON_OPTION],
      example: 'cluster show'
    },
    {
      name: 'cluster sign',
      args: '<text>',
      summary: 'a t-of-n signature over <text>, as a cluster message',
      options: [JSON_OPTION],
      example: "cluster sign 'release 1.4 approved'"
    },
    {
      name: 'cluster issue',
      args: '<subject> <tag> [--propagate] [--not-before <t>] [--not-after <t>]',
      summary: 'a certificate issued by the cluster key (printed, kept here)',
      options: [
        ['--propagate', 'let the subject delegate what it is granted'],
        ['--not-before <t>', 'valid from <t>: +30d | 2026-12-31 | an SPKI time'],
        ['--not-after <t>', 'valid until <t>'],
        ['--transport', 'print the certificate in transport form {…}'],
        JSON_OPTION
      ],
      example: "cluster issue z6MkAgent… '(cyberspace member)' --not-after +90d"
    },
    {
      name: 'cluster refresh',
      summary: 'new shares of the same key for every member, and the next epoch (all must be online)',
      options: [JSON_OPTION],
      example: 'cluster refresh'
    },
    {
      name: 'cluster repair',
      args: '<member>',
      summary: "rebuild a member's lost or lagging share from t other members (only that member learns it)",
      details: [
        "Run it on a member that holds a current share. The helpers and the member must let this node run the cluster's key ceremonies (acl add <this node> '(cyberspace (cluster))')."
      ],
      options: [JSON_OPTION],
      example: 'cluster repair 12D3KooWD…'
    },
    {
      name: 'cluster reshare',
      args: '--members <peer>... --threshold <t>',
      summary: 'move the key to a new member set and threshold: same cluster principal, old shares retired',
      details: [
        "--members lists the whole new set (this node only if listed). Every new member needs a (cyberspace member) chain that the old members accept (cluster issue <member> '(cyberspace member)'), and every old and new member must let this node run the key ceremonies. Removed members delete their shares."
      ],
      options: [
        ['--members <peer>', 'a member of the new set, by peer id or principal; repeatable (or comma-separated)'],
        ['--threshold <t>', 'how many members of the new set must sign together'],
        JSON_OPTION
      ],
      example: 'cluster reshare --members 12D3KooWA…,12D3KooWD… --threshold 2'
    },
    {
      name: 'cluster encrypt',
      args: '<text>',
      summary: 'encrypt to the cluster key (prints base64); anyone can',
      example: "cluster encrypt 'db password'"
    },
    {
      name: 'cluster decrypt',
      args: '<base64>',
      summary: "open what was encrypted to the cluster key, with t members' decryption shares",
      options: [JSON_OPTION],
      example: 'cluster decrypt <base64>'
    }
  ]
}

export interface ClusterFlags extends SpkiFlags {
  members?: string[]
  threshold?: string
}

type Out = (line: string) => void

/** The commands of CLUSTER_HELP: cli.ts passes no other. */
type ClusterVerb = 'init' | 'show' | 'sign' | 'issue' | 'refresh' | 'repair' | 'reshare' | 'encrypt' | 'decrypt'

function printExcluded(excluded: Record<string, string>, out: Out, prefix = '  '): void {
  for (const [member, why] of Object.entries(excluded)) out(`${prefix}excluded ${member}: ${why}`)
}

export async function clusterCommand(dataDir: string, args: string[], flags: ClusterFlags, out: Out): Promise<number> {
  try {
    return await runClusterCommand(dataDir, args, flags, out)
  } catch (err) {
    // a round that failed at some members: say, per member, what happened and what to do there
    throw err instanceof ApiError ? explainFailures(err, `cluster ${args[0]}`) : err
  }
}

async function runClusterCommand(dataDir: string, args: string[], flags: ClusterFlags, out: Out): Promise<number> {
  const [verb, ...rest] = args as [ClusterVerb, ...string[]]
  const only = (n: number, usage: string): string[] => {
    if (rest.length !== n) throw new UsageError(`usage: cyberspace cluster ${usage}`)
    return rest
  }
  switch (verb) {
    case 'init': {
      only(0, 'init --members <peer>... --threshold <t>')
      const { members, threshold } = memberSet(flags, 'init')
      const api = await connectApi(dataDir)
      const view = await api.post<ClusterView>('cluster/init', { members, threshold })
      printCluster(view, flags, out)
      return 0
    }
    case 'repair': {
      const [member] = only(1, 'repair <member>')
      const view = await (await connectApi(dataDir)).post<RepairView>('cluster/repair', { member })
      if (flags.json === true) out(JSON.stringify(view))
      else {
        out(`repaired ${view.member} at epoch ${view.epoch} of ${view.principal}`)
        out(`  helpers ${view.helpers.join(' ')}`)
        printExcluded(view.excluded, out)
      }
      return 0
    }
    case 'reshare': {
      only(0, 'reshare --members <peer>... --threshold <t>')
      const { members, threshold } = memberSet(flags, 'reshare')
      const view = await reshare(await connectApi(dataDir), members, threshold)
      if (flags.json === true) {
        out(JSON.stringify(view))
        return 0
      }
      printCluster(view, flags, out)
      out(`  dealt by    ${view.dealers.join(' ')}`)
      printExcluded(view.excluded, out)
      for (const [member, why] of Object.entries(view.lagging))
        out(`  ${member} has not confirmed the switch; run ${CLI} cluster repair ${member}: ${why}`)
      for (const [member, why] of Object.entries(view.retained))
        out(`  ${member} was removed but has not confirmed deleting its old share: ${why}`)
      return 0
    }
    case 'show': {
      only(0, 'show [--json]')
      const { cluster } = await (await connectApi(dataDir)).get<{ cluster: ClusterView | null }>('cluster')
      if (cluster == null) {
        if (flags.json === true) out('null')
        else out(`this node holds no cluster share (${CLI} cluster init --members <peer-id>... --threshold <t>)`)
        return flags.json === true ? 0 : 1
      }
      printCluster(cluster, flags, out)
      return 0
    }
    case 'sign': {
      const [text] = only(1, 'sign <text>')
      const view = await (await connectApi(dataDir)).post<SigningView>('cluster/sign', { text })
      if (flags.json === true) out(JSON.stringify(view))
      else {
        out(view.signature)
        out(`  signed by ${view.signers.join(' ')}`)
        printExcluded(view.excluded, out)
      }
      return 0
    }
    case 'issue': {
      const [subject, tag] = only(2, 'issue <subject> <tag> [--propagate] [--not-before t] [--not-after t]')
      const view = await (
        await connectApi(dataDir)
      ).post<CertView & { signing: SigningView }>('cluster/issue', {
        subject,
        tag,
        propagate: flags.propagate === true,
        notBefore: flags['not-before'],
        notAfter: flags['not-after']
      })
      if (flags.json === true) out(JSON.stringify(view))
      else {
        printCert(view, flags, out)
        out(`# signed by ${view.signing.signers.join(' ')}`)
        printExcluded(view.signing.excluded, out, '# ')
      }
      return 0
    }
    case 'refresh': {
      only(0, 'refresh')
      const view = await (
        await connectApi(dataDir)
      ).post<ClusterView & { lagging: Record<string, string> }>('cluster/refresh', {})
      printCluster(view, flags, out)
      for (const [member, why] of Object.entries(view.lagging))
        out(`  ${member} has not confirmed the switch (it will on its next request): ${why}`)
      return 0
    }
    case 'encrypt': {
      const [text] = only(1, 'encrypt <text>')
      out((await (await connectApi(dataDir)).post<{ ciphertext: string }>('cluster/encrypt', { text })).ciphertext)
      return 0
    }
    case 'decrypt': {
      const [ciphertext] = only(1, 'decrypt <base64>')
      const view = await (
        await connectApi(dataDir)
      ).post<{ text: string; helpers: string[]; excluded: Record<string, string> }>('cluster/decrypt', { ciphertext })
      if (flags.json === true) out(JSON.stringify(view))
      else {
        out(view.text)
        printExcluded(view.excluded, out)
      }
      return 0
    }
  }
}

/** The --members and --threshold of init and reshare. */
function memberSet(flags: ClusterFlags, verb: string): { members: string[]; threshold: number } {
  const members = (flags.members ?? []).flatMap(m => m.split(',')).filter(m => m !== '')
  if (members.length === 0) throw new UsageError(`cluster ${verb} needs --members <peer-id or principal>...`)
  if (flags.threshold == null || !/^\d{1,2}$/.test(flags.threshold))
    throw new UsageError(`cluster ${verb} needs --threshold <t>, a whole number`)
  return { members, threshold: Number(flags.threshold) }
}

/** How often a running resharing's progress is read, in ms. */
const PROGRESS_POLL_MS = 250

/**
 * Asks the node to reshare and, while it runs, prints its progress on stderr (stdout keeps the
 * result, so --json output stays one JSON document).
 */
async function reshare(api: ApiClient, members: string[], threshold: number): Promise<ReshareView> {
  const id = crypto.randomUUID()
  let shown = 0
  let finished = false
  const show = async (): Promise<void> => {
    try {
      const { lines } = await api.get<ReshareProgressView>('cluster/reshare', { progress: id })
      for (const line of lines.slice(shown)) process.stderr.write(`${line}\n`)
      shown = lines.length
    } catch {
      // not started yet, or already forgotten: nothing to show
    }
  }
  const request = api.post<ReshareView>('cluster/reshare', { members, threshold, progress: id })
  const poll = (async () => {
    // bounded: the request itself gives up after the API client's timeout
    for (let i = 0; i < 1200 && !finished; i++) {
      await show()
      await new Promise(resolve => setTimeout(resolve, PROGRESS_POLL_MS))
    }
  })()
  try {
    return await request
  } finally {
    finished = true
    await poll
    await show()
  }
}

function printCluster(view: ClusterView, flags: ClusterFlags, out: Out): void {
  if (flags.json === true) {
    out(JSON.stringify(view))
    return
  }
  out(view.principal)
  out(`  threshold   ${view.threshold} of ${view.members.length}`)
  out(`  epoch       ${view.epoch}`)
  out(`  group key   ${view.groupKey}`)
  for (const m of view.members) out(`  member      ${m}${m === view.self ? '  (this node)' : ''}`)
}

/** One member's part in a failed round: who, and the node's line on what happened there. */
interface MemberFailure {
  member: string
  reason: string
}

/** How the node's reasons begin the command to run on a member; this CLI is run as CLI. */
const RUN_THERE = 'on that member run: cyberspace '

/** The members a failed round names, with their reasons: the `members` and `reasons` fields of its error. */
export function memberFailures(err: ApiError): MemberFailure[] {
  const { members, reasons } = err.details
  if (!Array.isArray(members) || reasons == null || typeof reasons !== 'object') return []
  return members.flatMap((member: unknown) => {
    const reason = typeof member === 'string' ? (reasons as Record<string, unknown>)[member] : undefined
    return typeof member === 'string' && typeof reason === 'string' ? [{ member, reason }] : []
  })
}

/** A cluster round that failed at some members, as an error with the node's line for each. */
function explainFailures(err: ApiError, command: string): Error {
  const failures = memberFailures(err)
  if (failures.length === 0) return err
  const refused = failures.filter(f => f.reason.includes(RUN_THERE)).length
  const members = (n: number): string => `${n} ${n === 1 ? 'member' : 'members'}`
  const head =
    refused > 0
      ? `${command} was refused by ${members(refused)} that ${refused === 1 ? 'does' : 'do'} not let this node run the cluster's key ceremonies`
      : `${command} failed at ${members(failures.length)}`
  return new ExplainedError(
    head,
    failures.map(f => `  ${plainMessage(f.reason).replace(RUN_THERE, `on that member run: ${CLI} `)}`)
  )
}
