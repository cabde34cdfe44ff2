/**
 * The public API's handlers about the node and what it holds: who the token acts as, the node, the
 * cluster's members, the fleet, shared documents (read with the caller's rights, updated as an agent
 * hosted here or as the node) and SPKI certificates.
 *
 * Documents: an agent's token reads a document that is public or that its chain grants reading
 * (`(cyberspace (log (read <name>)))`), and writes one its chain grants appending to (`(log (append
 * <name>))`) and reading; the node's own documents (agent sessions, the agent directory) are no
 * token's to read or write here. A document the caller may not read is answered as missing (404).
 *
 * @example
 * GET  /api/whoami                                   → { "caller": "agent", "principal": "z6Mk…", "node": "12D3Koo…", "tokenId": "…" }
 * POST /api/documents/notes { "type": "or-map", "update": { "op": "set", "path": ["k"], "value": 1 } } → { "name": "notes", "value": { "k": 1 }, "cid": "bafy…", … }
 */
import { logTag } from '../../../src/actor/agents.ts'
import { isMemberDocument, sessionOwner } from '../../../src/log/service.ts'
import { subjectToSexp } from '../../../src/spki/cert.ts'
import { toAdvanced } from '../../../src/spki/sexp.ts'
import { HttpError } from '../http.ts'
import { applyUpdate, documentView } from '../state-routes.ts'
import { authCertField, certView } from '../spki-routes.ts'
import { acting, byText, namedBadInput, pageOf } from './handlers-common.ts'
import { DocumentNotFoundError, DocumentUnauthorizedError, invalidField } from './handlers-errors.ts'
import type { Caller } from '../agent-tokens.ts'
import type { AnyDocument } from '../state-routes.ts'
import type { Handlers } from './handler.ts'
import type { Certificate } from '../../../src/api/schema.ts'
import type { PrincipalId } from '../../../src/crypto/principal.ts'
import type { Signer } from '../../../src/crypto/sign.ts'
import type { CyberspaceNode } from '../../../src/node.ts'
import type { SignedCert, Subject } from '../../../src/spki/cert.ts'
import type { Tag } from '../../../src/spki/tag.ts'
import type * as z from 'zod'

/** Read checks one page of documents makes for an agent at most; the page ends there and `next` goes on. */
export const MAX_DOCUMENT_CHECKS = 256
/** How long listing what is stored may take. */
const STATE_TIMEOUT = 30_000

/** A session document or the agent directory: written by the node for its agents, no token's business. */
function isNodeOwn(name: string): boolean {
  return sessionOwner(name) !== undefined || isMemberDocument(name)
}

function subjectText(subject: Subject): string {
  return subject.kind === 'key' ? subject.principal : toAdvanced(subjectToSexp(subject))
}

/** A certificate as the public API answers it. */
export function certificateView(signed: SignedCert): z.input<typeof Certificate> {
  const view = certView(signed)
  return {
    hash: view.hash,
    type: view.type,
    issuer: view.issuer,
    subject: subjectText(signed.cert.subject),
    advanced: view.advanced,
    transport: view.transport
  }
}

export function nodeHandlers(
  node: CyberspaceNode
): Pick<
  Handlers,
  | 'whoami'
  | 'node'
  | 'members'
  | 'fleet'
  | 'listDocuments'
  | 'getDocument'
  | 'updateDocument'
  | 'listCertificates'
  | 'issueCertificate'
> {
  /** Whether `principal` holds `tag` by this node's ACL. */
  const holds = async (principal: PrincipalId, tag: Tag): Promise<boolean> => {
    try {
      await node.spki.authorize(principal, tag, { signal: AbortSignal.timeout(STATE_TIMEOUT) })
      return true
    } catch {
      return false
    }
  }

  /** Whether `caller` may read document `name` (the operator reads every one). */
  const mayRead = async (caller: Caller, name: string): Promise<boolean> => {
    if (caller.kind !== 'agent') return true
    if (isNodeOwn(name)) return false
    if (node.state.isPublic(name)) return true
    return await holds(caller.agent, logTag('read', name))
  }

  /** The document `name` if this node holds it and `caller` may read it, else DocumentNotFoundError. */
  const readable = async (caller: Caller, name: string): Promise<AnyDocument> => {
    const doc = (await mayRead(caller, name)) ? await node.state.find(name) : undefined
    if (doc == null)
      throw new DocumentNotFoundError(
        `this node holds no document ${name}${caller.kind === 'agent' ? ` that agent ${caller.agent} may read` : ''} (GET /api/documents lists them)`
      )
    return doc
  }

  return {
    whoami: async ({ caller }) => ({
      caller: caller.kind,
      principal: caller.kind === 'agent' ? caller.agent : node.spki.principal,
      node: node.peerId.toString(),
      ...(caller.kind === 'agent' ? { tokenId: caller.tokenId } : {})
    }),
    node: async () => ({
      peerId: node.peerId.toString(),
      principal: node.spki.principal,
      multiaddrs: node.multiaddrs().map(String),
      kinds: node.agents.kinds()
    }),
    members: async ({ query }) => {
      const members = node.membership.members().sort(byText(m => m.principal))
      const { items, next } = pageOf(members, m => m.principal, query.after, query.limit)
      return { members: items.map(m => ({ ...m })), next }
    },
    fleet: async () => {
      const status = node.work.fleet.status()
      return { ...status, totals: { ...status.totals }, drops: node.work.fleet.drops() }
    },

    // ---------------------------------------------------------------- documents
    listDocuments: async ({ query, caller }) => {
      const stored = (await node.state.stored({ signal: AbortSignal.timeout(STATE_TIMEOUT) }))
        .filter(d => query.after == null || d.name > query.after)
        .sort(byText(d => d.name))
      const open = new Set(node.state.names())
      const documents: Array<{ name: string; type: string; open: boolean; public: boolean }> = []
      let checks = MAX_DOCUMENT_CHECKS
      let last: string | undefined
      for (const d of stored) {
        if (documents.length === query.limit) return { documents, next: last ?? null }
        // out of checks: the page ends early, and the next one goes on after the last looked at
        if (caller.kind === 'agent' && checks-- <= 0) return { documents, next: last ?? null }
        if (await mayRead(caller, d.name))
          documents.push({
            name: d.name,
            type: d.type,
            open: open.has(d.name),
            public: open.has(d.name) && node.state.isPublic(d.name)
          })
        last = d.name
      }
      return { documents, next: null }
    },
    getDocument: async ({ params, caller }) => documentView(node, await readable(caller, params.name)),
    updateDocument: async ({ params, body, caller }) => {
      const name = params.name
      if (isNodeOwn(name))
        throw new DocumentUnauthorizedError(
          `${name} is one of the node's own documents (agent sessions, the agent directory): it is written by the node for its agents, not through the API`
        )
      if (body.public === true && body.type == null)
        throw invalidField('body.public', 'public applies when a document is opened: give its type too')
      // who writes: an agent (its own with an agent's token, `as` with the operator's), or the node
      let signer: Signer | undefined
      if (caller.kind === 'agent' || body.as != null) {
        const writer = acting(node, caller, body.as, 'body.as')
        signer = writer.signer
        // before anything is opened or created: the agent may write it, and read what it answers
        if (!(await holds(writer.agent, logTag('append', name))))
          throw new DocumentUnauthorizedError(
            `agent ${writer.agent} may not write document ${name}: its chain must grant (cyberspace (log (append ${name})))`
          )
        if (caller.kind === 'agent' && !(await mayRead(caller, name)))
          throw new DocumentUnauthorizedError(
            `agent ${writer.agent} may not read document ${name}, which the answer shows: its chain must grant (cyberspace (log (read ${name})))`
          )
      }
      let doc: AnyDocument
      if (body.type == null) doc = await readable(caller, name)
      else doc = await node.state.open(name, body.type, body.public === true ? { public: true } : {})
      const { op, path, value } = body.update
      let cid
      try {
        cid = await applyUpdate(doc, op, path, value === undefined ? {} : { value }, signer == null ? {} : { signer })
      } catch (err) {
        const e = err as Error
        if (e.name === 'UnauthorizedEventError') throw new DocumentUnauthorizedError(e.message)
        namedBadInput(err, 'body.update')
      }
      return { ...documentView(node, doc), cid: cid?.toString() ?? null }
    },

    // ---------------------------------------------------------------- certificates
    listCertificates: async ({ query, caller }) => {
      const about = (signed: SignedCert, principal: string): boolean =>
        signed.cert.subject.kind === 'key' && signed.cert.subject.principal === principal
      const certs = node.spki
        .certs()
        .filter(c => query.subject == null || about(c, query.subject))
        // an agent's token sees what its agent issued or holds
        .filter(c => caller.kind !== 'agent' || c.cert.issuer === caller.agent || about(c, caller.agent))
        .map(certificateView)
        .sort(byText(c => c.hash))
      const { items, next } = pageOf(certs, c => c.hash, query.after, query.limit)
      return { certificates: items, next }
    },
    issueCertificate: async ({ body }) => {
      let cert
      try {
        cert = authCertField(
          {
            subject: body.subject,
            tag: body.tag,
            propagate: body.propagate,
            ...(body.notBefore != null ? { notBefore: body.notBefore } : {}),
            ...(body.notAfter != null ? { notAfter: body.notAfter } : {}),
            onlineCrl: body.onlineCrl ?? false
          },
          node.spki.principal
        )
      } catch (err) {
        if (err instanceof HttpError) namedBadInput(err, 'body')
        throw err
      }
      return certificateView(await node.spki.issue(cert))
    }
  }
}
