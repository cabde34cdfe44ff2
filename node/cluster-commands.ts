/**
 * `cyberspace cluster …`: the cluster key this node holds a share of. Everything talks to the
 * running node, which runs the threshold protocols with the other members.
 *
 * @example
 * cyberspace cluster init --members 12D3KooA… --members 12D3KooB… --threshold 2
 * cyberspace cluster issue z6MkAgent… '(cyberspace (role builder))' --not-after +30d
 */
import { connectApi } from './api/client.ts'
import { UsageError } from './errors.ts'
import { printCert } from './spki-commands.ts'
import type { ClusterView, SigningView } from './api/cluster-routes.ts'
import type { CertView } from './api/spki-routes.ts'
import type { SpkiFlags } from './spki-commands.ts'

export const CLUSTER_USAGE = `  cluster init --members <peer>... --threshold <t>
                              generate the cluster key with these members (this node included):
                              t of them sign together, no one holds the key
  cluster show [--json]       the cluster principal, members, threshold, share generation
  cluster sign <text>         a t-of-n signature over <text> (as a cluster message)
  cluster issue <subject> <tag> [--propagate] [--not-before <t>] [--not-after <t>]
                              a certificate issued by the cluster key (printed, kept here)
  cluster refresh             new shares of the same key for every member (all must be online)
  cluster encrypt <text>      encrypt to the cluster key (prints base64)
  cluster decrypt <base64>    open it with t members' decryption shares`

export interface ClusterFlags extends SpkiFlags {
  members?: string[]
  threshold?: string
}

type Out = (line: string) => void

function printExcluded(excluded: Record<string, string>, out: Out, prefix = '  '): void {
  for (const [member, why] of Object.entries(excluded)) out(`${prefix}excluded ${member}: ${why}`)
}

export async function clusterCommand(dataDir: string, args: string[], flags: ClusterFlags, out: Out): Promise<number> {
  const [verb, ...rest] = args
  const only = (n: number, usage: string): string[] => {
    if (rest.length !== n) throw new UsageError(`usage: cyberspace cluster ${usage}`)
    return rest
  }
  switch (verb) {
    case 'init': {
      only(0, 'init --members <peer>... --threshold <t>')
      const members = (flags.members ?? []).flatMap(m => m.split(',')).filter(m => m !== '')
      if (members.length === 0) throw new UsageError('cluster init needs --members <peer-id or principal>...')
      if (flags.threshold == null || !/^\d{1,2}$/.test(flags.threshold))
        throw new UsageError('cluster init needs --threshold <t>, a whole number')
      const api = await connectApi(dataDir)
      const view = await api.post<ClusterView>('cluster/init', { members, threshold: Number(flags.threshold) })
      printCluster(view, flags, out)
      return 0
    }
    case 'show': {
      only(0, 'show [--json]')
      const { cluster } = await (await connectApi(dataDir)).get<{ cluster: ClusterView | null }>('cluster')
      if (cluster == null) {
        if (flags.json === true) out('null')
        else out('this node holds no cluster share (cyberspace cluster init)')
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
    default:
      throw new UsageError(`usage:\n${CLUSTER_USAGE}`)
  }
}

function printCluster(view: ClusterView, flags: ClusterFlags, out: Out): void {
  if (flags.json === true) {
    out(JSON.stringify(view))
    return
  }
  out(view.principal)
  out(`  threshold   ${view.threshold} of ${view.members.length}`)
  out(`  generation  ${view.epoch}`)
  out(`  group key   ${view.groupKey}`)
  for (const m of view.members) out(`  member      ${m}`)
}
