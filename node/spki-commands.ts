/**
 * `cyberspace key`, `cyberspace cert …` and `cyberspace acl …`: this node's principal, the
 * certificates it issues and holds, and the roots it trusts. Everything but `key` and
 * `cert show --in` talks to the running node; certificates print in the advanced form.
 *
 * @example
 * cyberspace cert issue z6MkAgent… '(cyberspace (mailbox send))' --not-after +30d
 * cyberspace acl add z6MkCluster… '(cyberspace)'
 * cyberspace cert verify z6MkAgent… '(cyberspace (mailbox send alice))'
 */
import { readFile } from 'node:fs/promises'
import { signedCertToSexp, verifyCert } from '../src/spki/cert.ts'
import { signedCrlToSexp, verifyCrl } from '../src/spki/crl.ts'
import { MAX_SEQUENCE_ITEMS, parseSequence } from '../src/spki/sequence.ts'
import type { Sequence } from '../src/spki/sequence.ts'
import type { Sexp } from '../src/spki/sexp.ts'
import { parseAnyForm, toAdvanced, toTransport } from '../src/spki/sexp.ts'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CLI, connectApi } from './api/client.ts'
import { certView, keyView } from './api/spki-routes.ts'
import { readIdentityKey } from './data-dir.ts'
import { ApiError, NodeNotRunningError, plainMessage, UsageError } from './errors.ts'
import type { CertView, GrantView, KeyView } from './api/spki-routes.ts'
import type { CommandHelp, GroupHelp } from './cli.ts'

const JSON_OPTION: [string, string] = ['--json', 'print JSON instead of text']
const TRANSPORT_OPTION: [string, string] = [
  '--transport',
  'print certificates in transport form {…}, for copy and paste'
]
const VALIDITY_OPTIONS: Array<[string, string]> = [
  ['--not-before <t>', 'valid from <t>: +30d | 2026-12-31 | an SPKI time'],
  ['--not-after <t>', 'valid until <t>']
]
const SUBJECT = '<subject>: z6Mk… | 12D3Koo… | name:<name>[/<name>…] | name:<key>/<name>… | (advanced form)'
const TAG = "<tag>: an S-expression in advanced form, e.g. '(cyberspace (mailbox send))'"

export const KEY_HELP: CommandHelp = {
  name: 'key',
  summary: "this node's principal: the key its certificates name (works without a running node)",
  options: [JSON_OPTION],
  example: 'key'
}

export const CERT_HELP: GroupHelp = {
  name: 'cert',
  summary: 'SPKI certificates: issue, name, show, import, verify and revoke',
  details: [SUBJECT, TAG],
  commands: [
    {
      name: 'cert issue',
      args: '<subject> <tag> [--propagate] [--not-after <t>] [options]',
      summary: 'sign an authorization certificate (kept by this node, printed)',
      details: [SUBJECT, TAG],
      options: [
        ['--propagate', 'let the subject delegate what it is granted'],
        ...VALIDITY_OPTIONS,
        ['--online-crl', 'verifiers must hold a current CRL from this node to accept it'],
        TRANSPORT_OPTION
      ],
      example: "cert issue z6MkAgent… '(cyberspace (mailbox send))' --not-after +30d"
    },
    {
      name: 'cert name',
      args: '<name> <subject>',
      summary: "sign a name certificate: this key's <name> means <subject>",
      details: [SUBJECT],
      options: [...VALIDITY_OPTIONS, TRANSPORT_OPTION],
      example: 'cert name ops 12D3KooW…'
    },
    {
      name: 'cert show',
      args: '[<hash>] | --in <file|->',
      summary: "the certificates this node holds (or one, by hash prefix); --in prints a file's, checking signatures",
      options: [
        ['--in <file|->', 'read certificates and CRLs in any form from a file or stdin; needs no running node'],
        TRANSPORT_OPTION,
        JSON_OPTION
      ],
      example: 'cert show --transport > certs.txt'
    },
    {
      name: 'cert import',
      args: '<file|->',
      summary: 'keep certificates and CRLs someone sent (any form, or a sequence); all signatures must verify',
      example: 'cert import certs.txt'
    },
    {
      name: 'cert verify',
      args: '<principal> <tag> [--from <peer-id>]',
      summary: "does <principal> hold <tag> by this node's ACL? prints the proof, or why not (exit 1)",
      details: [TAG],
      options: [
        ['--from <peer-id>', 'ask that peer for the proof over /cyberspace/spki/1.0.0'],
        TRANSPORT_OPTION,
        JSON_OPTION
      ],
      example: "cert verify z6MkAgent… '(cyberspace (mailbox send))' --from 12D3KooW…"
    },
    {
      name: 'cert revoke',
      args: '<hash>...',
      summary: 'revoke certificates this node issued (by hash, from cert show); prints the CRL to hand out',
      example: 'cert revoke 1ec0f725'
    }
  ]
}

export const ACL_HELP: GroupHelp = {
  name: 'acl',
  summary: 'the keys this node trusts as roots of authority, and for what',
  commands: [
    {
      name: 'acl add',
      args: '<principal> <tag>',
      summary: 'trust <principal> (z6Mk… or a peer id) as a root for <tag>',
      details: [TAG],
      example: "acl add 12D3KooW… '(cyberspace (cluster))'"
    },
    {
      name: 'acl remove',
      args: '<principal>',
      summary: 'stop trusting <principal>',
      example: 'acl remove z6MkRoot…'
    },
    { name: 'acl list', summary: 'the roots this node trusts', options: [JSON_OPTION], example: 'acl list' }
  ]
}

export interface SpkiFlags {
  json?: boolean
  propagate?: boolean
  'not-before'?: string
  'not-after'?: string
  'online-crl'?: boolean
  in?: string
  from?: string
  transport?: boolean
}

type Out = (line: string) => void

/** Most bytes read from a certificate file or stdin. */
const MAX_INPUT_BYTES = 1024 * 1024
/** A sequence lists each certificate or CRL and then its signature. */
const SEQUENCE_LIMITS = { maxBytes: MAX_INPUT_BYTES, maxListLength: 2 * MAX_SEQUENCE_ITEMS + 1 }

export function printCert(view: CertView, flags: SpkiFlags, out: Out): void {
  out(`# ${view.type} certificate ${view.hash} by ${view.issuer}`)
  out(flags.transport === true ? view.transport : view.advanced)
}

async function readInput(path: string): Promise<Uint8Array> {
  let bytes: Uint8Array
  if (path === '-') {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of process.stdin) {
      size += (chunk as Buffer).length
      if (size > MAX_INPUT_BYTES) throw new UsageError(`stdin is larger than ${MAX_INPUT_BYTES} bytes`)
      chunks.push(chunk as Buffer)
    }
    bytes = Buffer.concat(chunks)
  } else {
    try {
      bytes = await readFile(path)
    } catch (err) {
      throw new UsageError(`cannot read ${path}: ${(err as Error).message}`)
    }
    if (bytes.length > MAX_INPUT_BYTES) throw new UsageError(`${path} is larger than ${MAX_INPUT_BYTES} bytes`)
  }
  return bytes
}

/** Every certificate and CRL in the input, whether given one by one or as sequences. */
function readSequence(bytes: Uint8Array): Sequence {
  const all: Sequence = { certs: [], crls: [] }
  const seen = new Set<string>()
  const fresh = (s: Sexp): boolean => {
    const id = toTransport(s)
    if (seen.has(id)) return false
    seen.add(id)
    return true
  }
  for (const s of parseAnyForm(bytes, SEQUENCE_LIMITS)) {
    const seq = parseSequence(s)
    // the same object given twice (say, in advanced and in transport form) counts once
    all.certs.push(...seq.certs.filter(c => fresh(signedCertToSexp(c))))
    all.crls.push(...seq.crls.filter(c => fresh(signedCrlToSexp(c))))
    if (all.certs.length + all.crls.length > MAX_SEQUENCE_ITEMS) {
      throw new UsageError(`more than ${MAX_SEQUENCE_ITEMS} certificates and CRLs in one input`)
    }
  }
  return all
}

export async function key(dataDir: string, flags: SpkiFlags, out: Out): Promise<number> {
  let view: KeyView
  try {
    view = await (await connectApi(dataDir)).get<KeyView>('key')
  } catch (err) {
    if (!(err instanceof NodeNotRunningError)) throw err
    // no node running: the key file says the same
    const privateKey = await readIdentityKey(dataDir)
    if (privateKey == null)
      throw new NodeNotRunningError(`${dataDir} has no identity yet; npm start -- --data-dir ${dataDir} creates one`)
    view = keyView(peerIdFromPrivateKey(privateKey))
  }
  if (flags.json === true) out(JSON.stringify(view))
  else {
    out(view.principal)
    out(`  peer id     ${view.peerId}`)
    out(`  public key  ${view.publicKey}`)
    out(`  key hash    ${view.hash}`)
  }
  return 0
}

/** The commands of CERT_HELP: cli.ts passes no other. */
type CertVerb = 'issue' | 'name' | 'show' | 'import' | 'verify' | 'revoke'

export async function cert(dataDir: string, args: string[], flags: SpkiFlags, out: Out): Promise<number> {
  const [verb, ...rest] = args as [CertVerb, ...string[]]
  const validity = {
    notBefore: flags['not-before'],
    notAfter: flags['not-after'],
    onlineCrl: flags['online-crl'] === true
  }
  switch (verb) {
    case 'issue': {
      const [subject, tag, ...extra] = rest
      if (subject == null || tag == null || extra.length > 0)
        throw new UsageError(
          'usage: cyberspace cert issue <subject> <tag> [--propagate] [--not-before t] [--not-after t] [--online-crl]'
        )
      const api = await connectApi(dataDir)
      const view = await api.post<CertView>('spki/issue', {
        subject,
        tag,
        propagate: flags.propagate === true,
        ...validity
      })
      printCert(view, flags, out)
      return 0
    }
    case 'name': {
      const [name, subject, ...extra] = rest
      if (name == null || subject == null || extra.length > 0)
        throw new UsageError('usage: cyberspace cert name <name> <subject>')
      const api = await connectApi(dataDir)
      printCert(await api.post<CertView>('spki/name', { name, subject, ...validity }), flags, out)
      return 0
    }
    case 'show': {
      if (flags.in != null) return await showInput(flags.in, rest, flags, out)
      const [prefix, ...extra] = rest
      if (extra.length > 0) throw new UsageError('usage: cyberspace cert show [<hash>] | cert show --in <file|->')
      const views = (await (await connectApi(dataDir)).get<CertView[]>('spki/certs')).filter(
        v => prefix == null || v.hash.startsWith(prefix.toLowerCase())
      )
      if (prefix != null && views.length === 0)
        throw new ApiError(`no certificate held has a hash starting ${prefix}`, 404)
      if (flags.json === true) out(JSON.stringify(views))
      else for (const view of views) printCert(view, flags, out)
      return 0
    }
    case 'import': {
      const [path, ...extra] = rest
      if (path == null || extra.length > 0) throw new UsageError('usage: cyberspace cert import <file|->')
      const seq = readSequence(await readInput(path))
      // nothing is sent unless every signature checks
      for (const c of seq.certs) await verifyCert(c)
      for (const c of seq.crls) await verifyCrl(c)
      const api = await connectApi(dataDir)
      // one request per item keeps each under the API's body limit
      for (const c of seq.certs) await api.post('spki/import', { sexp: toTransport(signedCertToSexp(c)) })
      for (const c of seq.crls) await api.post('spki/import', { sexp: toTransport(signedCrlToSexp(c)) })
      out(
        `imported ${seq.certs.length} ${seq.certs.length === 1 ? 'certificate' : 'certificates'} and ${seq.crls.length} ${seq.crls.length === 1 ? 'CRL' : 'CRLs'}`
      )
      return 0
    }
    case 'verify': {
      const [principal, tag, ...extra] = rest
      if (principal == null || tag == null || extra.length > 0)
        throw new UsageError('usage: cyberspace cert verify <principal> <tag> [--from <peer-id>]')
      const api = await connectApi(dataDir)
      let grant: GrantView
      try {
        grant = await api.post<GrantView>('spki/verify', {
          principal,
          tag,
          ...(flags.from == null ? {} : { from: flags.from })
        })
      } catch (err) {
        if (err instanceof ApiError && err.status === 403) {
          const why = refusal(err, principal, tag)
          out(
            flags.json === true
              ? JSON.stringify({ authorized: false, error: err.errorName, message: why })
              : `refused: ${why}`
          )
          return 1
        }
        throw err
      }
      if (flags.json === true) {
        out(JSON.stringify(grant))
        return 0
      }
      out('authorized')
      out(`  the chain grants ${grant.tag}`)
      if (grant.validity.notBefore != null) out(`  not before ${grant.validity.notBefore}`)
      if (grant.validity.notAfter != null) out(`  not after  ${grant.validity.notAfter}`)
      if (grant.chain.length === 0) out('  (an ACL root itself)')
      else {
        const auth = `${grant.chain.length} authorization ${grant.chain.length === 1 ? 'certificate' : 'certificates'} (root first)`
        const names = `${grant.names.length} name ${grant.names.length === 1 ? 'certificate' : 'certificates'} resolving the subjects`
        out(`  by ${auth}${grant.names.length > 0 ? ` and ${names}` : ''}:`)
      }
      for (const view of [...grant.chain, ...grant.names]) printCert(view, flags, out)
      return 0
    }
    case 'revoke': {
      if (rest.length === 0 || rest.length > 64)
        throw new UsageError('usage: cyberspace cert revoke <hash>... (1-64 hashes, from cert show)')
      const api = await connectApi(dataDir)
      const crl = await api.post<{
        revoked: string[]
        validity: { notAfter: string }
        advanced: string
        transport: string
      }>('spki/revoke', { hashes: rest.map(h => h.toLowerCase()) })
      out(
        `# CRL revoking ${crl.revoked.length} ${crl.revoked.length === 1 ? 'certificate' : 'certificates'}, re-signed by this node while it runs (current until ${crl.validity.notAfter}); hand it to verifiers with cert import:`
      )
      out(crl.advanced)
      out('# the same in transport form:')
      out(crl.transport)
      return 0
    }
  }
}

/** Why `cert verify` was refused, in one line with what fixes it. */
function refusal(err: ApiError, principal: string, tag: string): string {
  const remoteName = typeof err.details.remoteName === 'string' ? err.details.remoteName : undefined
  const name = err.errorName === 'ProofRefusedError' && remoteName != null ? remoteName : err.errorName
  const message = plainMessage(err.message)
  switch (name) {
    case 'ChainNotFoundError':
      return err.errorName === 'ProofRefusedError'
        ? `${message}: that node holds no such chain (issue or import the certificates there)`
        : `${message}: trust a root for it (${CLI} acl add <root> '${tag}'), import a chain (${CLI} cert import <file>), or ask the issuer's node (--from <peer-id>)`
    case 'RevokedCertError':
      return `revoked: ${message}: ask the issuer for a new certificate`
    case 'ExpiredCertError':
    case 'NotYetValidCertError':
      return `${message}: ask the issuer for a certificate valid now (cert issue … --not-after +30d)`
    case 'RevalidationRequiredError':
      return `${message}: import a current CRL from the issuer (${CLI} cert import <crl-file>)`
    default:
      return `${message} (${principal} for ${tag})`
  }
}

/** Prints certificates and CRLs from a file in advanced form, each with its signature checked. */
async function showInput(path: string, rest: string[], flags: SpkiFlags, out: Out): Promise<number> {
  if (rest.length > 0) throw new UsageError('usage: cyberspace cert show --in <file|->')
  const seq = readSequence(await readInput(path))
  let bad = 0
  for (const signed of seq.certs) {
    const view = certView(signed)
    const ok = await verifyCert(signed).then(
      () => true,
      () => false
    )
    if (!ok) bad++
    out(`# signature ${ok ? 'verifies' : 'DOES NOT VERIFY'}`)
    printCert(view, flags, out)
  }
  for (const signed of seq.crls) {
    const ok = await verifyCrl(signed).then(
      () => true,
      () => false
    )
    if (!ok) bad++
    out(`# CRL by ${signed.crl.issuer}, signature ${ok ? 'verifies' : 'DOES NOT VERIFY'}`)
    out(flags.transport === true ? toTransport(signedCrlToSexp(signed)) : toAdvanced(signedCrlToSexp(signed)))
  }
  return bad === 0 ? 0 : 1
}

export async function acl(dataDir: string, args: string[], flags: SpkiFlags, out: Out): Promise<number> {
  const [verb, principal, tag, ...extra] = args
  if (extra.length > 0) throw new UsageError(`acl ${verb ?? ''}: unexpected argument "${extra[0]}"`)
  if (verb === 'add' && principal != null && tag != null) {
    const entry = await (
      await connectApi(dataDir)
    ).post<{ principal: string; tag: string }>('spki/acl', { principal, tag })
    out(`${entry.principal}  ${entry.tag}`)
    return 0
  }
  if (verb === 'remove' && principal != null && tag == null) {
    await (await connectApi(dataDir)).post('spki/acl/remove', { principal })
    out(`removed ${principal}`)
    return 0
  }
  if (verb === 'list' && principal == null) {
    const entries = await (await connectApi(dataDir)).get<Array<{ principal: string; tag: string }>>('spki/acl')
    if (flags.json === true) out(JSON.stringify(entries))
    else for (const e of entries) out(`${e.principal}  ${e.tag}`)
    return 0
  }
  throw new UsageError('usage: cyberspace acl add <principal> <tag> | acl remove <principal> | acl list')
}
