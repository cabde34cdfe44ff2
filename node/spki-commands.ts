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
import { connectApi } from './api/client.ts'
import { certView, keyView } from './api/spki-routes.ts'
import { readIdentityKey } from './data-dir.ts'
import { ApiError, NodeNotRunningError, UsageError } from './errors.ts'
import type { CertView, GrantView, KeyView } from './api/spki-routes.ts'

export const SPKI_USAGE = `  key [--json]                this node's principal (the key its certificates name)
  cert issue <subject> <tag> [--propagate] [--not-before <t>] [--not-after <t>] [--online-crl]
                              sign an authorization certificate (kept by this node, printed)
  cert name <name> <subject>  sign a name certificate: this key's <name> means <subject>
  cert show [<hash>]          certificates this node holds (or one, by hash prefix)
  cert show --in <file|->     print certificates given in any form, checking their signatures
  cert import <file|->        keep certificates and CRLs someone sent (any form, or a sequence)
  cert verify <principal> <tag> [--from <peer-id>]
                              does <principal> hold <tag> by this node's ACL? --from asks that
                              peer for the proof over /cyberspace/spki/1.0.0
  cert revoke <hash>...       revoke certificates this node issued; prints the CRL to hand out
  acl add <principal> <tag>   trust <principal> as a root for <tag>
  acl remove <principal>
  acl list
    <subject>: z6Mk… | 12D3Koo… | name:<name>[/<name>…] | name:<key>/<name>… | (advanced form)
    <tag>: advanced form, e.g. '(cyberspace (mailbox send))'; <t>: +30d | 2026-12-31 | SPKI time
    --transport prints certificates in transport form {…} for copy and paste`

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
      throw new NodeNotRunningError(`${dataDir} has no identity yet; cyberspace start creates one`)
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

export async function cert(dataDir: string, args: string[], flags: SpkiFlags, out: Out): Promise<number> {
  const [verb, ...rest] = args
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
          out(`refused: ${err.errorName ?? 'Error'}: ${err.message}`)
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
      out(grant.chain.length === 0 ? '  (an ACL root itself)' : `  by a chain of ${grant.chain.length}, root first:`)
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
    default:
      throw new UsageError('usage: cyberspace cert issue|name|show|import|verify|revoke … (see cyberspace --help)')
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
