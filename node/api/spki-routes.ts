/**
 * Control-API routes for the node's key, certificates, ACL and CRLs (`cyberspace key`, `cert`,
 * `acl`). Certificates travel as S-expression text (advanced or transport form) and come back in
 * both forms with their hash, the name a CRL revokes them by.
 *
 * @example
 * POST /api/v0/spki/issue { "subject": "z6Mk…", "tag": "(cyberspace member)", "notAfter": "+30d" }
 * → { "hash": "3f…", "issuer": "z6Mk…", "advanced": "(signed-cert (cert …) …)", "transport": "{…}" }
 */
import { base16 } from 'multiformats/bases/base16'
import { parsePrincipal, principalFromPeerId } from '../../src/crypto/principal.ts'
import { keyHash, publicKeySexp, signedCertToSexp, subjectToSexp } from '../../src/spki/cert.ts'
import { certHash, signedCrlToSexp } from '../../src/spki/crl.ts'
import { parseSequence } from '../../src/spki/sequence.ts'
import { parseAnyForm, toAdvanced, toTransport } from '../../src/spki/sexp.ts'
import { parseTag, tagToSexp } from '../../src/spki/tag.ts'
import { parseSubjectText, parseTimeText } from '../../src/spki/text.ts'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Route } from './http.ts'
import { booleanField, HttpError, MAX_BODY_BYTES, optionalString, readJson, stringField } from './http.ts'
import type { Cert, SignedCert, Validity } from '../../src/spki/cert.ts'
import type { SignedCrl } from '../../src/spki/crl.ts'
import type { DiscoveredGrant } from '../../src/spki/discover.ts'
import type { Sexp } from '../../src/spki/sexp.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { PeerId } from '@libp2p/interface'

export interface CertView {
  /** sha256 of the canonical (cert …), hex: what `cert revoke` and CRLs name it by. */
  hash: string
  type: 'auth' | 'name'
  issuer: string
  advanced: string
  transport: string
}

export interface GrantView {
  tag: string
  validity: Validity
  chain: CertView[]
  names: CertView[]
}

const MAX_TEXT = 16 * 1024
/** A revocation names certificates by full hash, or by a unique prefix of at least this many hex digits. */
const MIN_HASH_PREFIX = 8
const MAX_REVOKE_AT_ONCE = 64

function forms(s: Sexp): { advanced: string; transport: string } {
  return { advanced: toAdvanced(s), transport: toTransport(s) }
}

export function certView(signed: SignedCert): CertView {
  return {
    hash: base16.baseEncode(certHash(signed)),
    type: signed.cert.type,
    issuer: signed.cert.issuer,
    ...forms(signedCertToSexp(signed))
  }
}

function crlView(signed: SignedCrl): Record<string, unknown> {
  return {
    issuer: signed.crl.issuer,
    revoked: signed.crl.revoked.map(h => base16.baseEncode(h)),
    validity: signed.crl.validity,
    ...forms(signedCrlToSexp(signed))
  }
}

function grantView(grant: DiscoveredGrant): GrantView {
  return {
    tag: toAdvanced(tagToSexp(grant.tag)),
    validity: grant.validity,
    chain: grant.proof.chain.map(certView),
    names: grant.proof.names.map(certView)
  }
}

function tagField(body: Record<string, unknown>): ReturnType<typeof parseTag> {
  const items = parseAnyForm(new TextEncoder().encode(stringField(body, 'tag', MAX_TEXT)))
  if (items.length !== 1) throw new HttpError(400, 'tag must be one S-expression')
  return parseTag(items[0])
}

function validityField(body: Record<string, unknown>): Validity {
  const validity: Validity = {}
  const notBefore = optionalString(body, 'notBefore', 64)
  const notAfter = optionalString(body, 'notAfter', 64)
  if (notBefore != null) validity.notBefore = parseTimeText(notBefore)
  if (notAfter != null) validity.notAfter = parseTimeText(notAfter)
  if (validity.notBefore != null && validity.notAfter != null && validity.notBefore > validity.notAfter) {
    throw new HttpError(400, `notBefore ${validity.notBefore} is after notAfter ${validity.notAfter}`)
  }
  if (booleanField(body, 'onlineCrl')) validity.requireCrl = true
  return validity
}

/** The authorization certificate a request asks `issuer` to sign: subject, tag, propagate, validity. */
export function authCertField(body: Record<string, unknown>, issuer: PrincipalId): Cert {
  return {
    type: 'auth',
    issuer,
    subject: parseSubjectText(stringField(body, 'subject', MAX_TEXT), issuer),
    propagate: booleanField(body, 'propagate'),
    tag: tagField(body),
    validity: validityField(body)
  }
}

export interface KeyView {
  principal: PrincipalId
  peerId: string
  /** `(public-key (ed25519 |…|))` */
  publicKey: string
  /** `(hash sha256 |…|)`, the key as a hash subject names it */
  hash: string
}

/** A node's key in the forms people and certificates use. */
export function keyView(peerId: PeerId): KeyView {
  const principal = principalFromPeerId(peerId)
  return {
    principal,
    peerId: peerId.toString(),
    publicKey: toAdvanced(publicKeySexp(principal)),
    hash: toAdvanced(subjectToSexp({ kind: 'hash', sha256: keyHash(principal) }))
  }
}

export function spkiRoutes(node: CyberspaceNode): Record<string, Route> {
  const me = node.spki.principal

  /** Certificates this node issued whose hash starts with `prefix`. */
  function ownCertsByHash(prefix: string): SignedCert[] {
    return node.spki.certs().filter(c => c.cert.issuer === me && base16.baseEncode(certHash(c)).startsWith(prefix))
  }

  return {
    'GET key': async () => keyView(node.peerId),
    'GET spki/certs': async () => node.spki.certs().map(certView),
    'POST spki/issue': async req => {
      const body = await readJson(req)
      return certView(await node.spki.issue(authCertField(body, me)))
    },
    'POST spki/name': async req => {
      const body = await readJson(req)
      const cert: Cert = {
        type: 'name',
        issuer: me,
        name: stringField(body, 'name', 64),
        subject: parseSubjectText(stringField(body, 'subject', MAX_TEXT), me),
        validity: validityField(body)
      }
      return certView(await node.spki.issue(cert))
    },
    'POST spki/import': async req => {
      const text = stringField(await readJson(req), 'sexp', MAX_BODY_BYTES)
      const items = parseAnyForm(new TextEncoder().encode(text), { maxBytes: MAX_BODY_BYTES })
      if (items.length !== 1) throw new HttpError(400, 'sexp must hold one certificate, CRL or sequence')
      const { certs, crls } = parseSequence(items[0])
      await node.spki.addAll({ certs, crls })
      return { certs: certs.map(certView), crls: crls.map(crlView) }
    },
    'POST spki/verify': async req => {
      const body = await readJson(req)
      const principal = parsePrincipal(stringField(body, 'principal', 128))
      const tag = tagField(body)
      const from = optionalString(body, 'from', 128)
      if (from == null) return grantView(await node.spki.authorize(principal, tag))
      let peer
      try {
        peer = peerIdFromString(from)
      } catch {
        throw new HttpError(400, `from must be a peer id, not "${from.slice(0, 80)}"`)
      }
      try {
        return grantView(await node.spki.prove(peer, tag, { principal }))
      } catch (err) {
        if (err instanceof Error && err.name in SPKI_ERROR_STATUS) throw err
        throw new HttpError(504, `could not get a proof from ${from}: ${(err as Error).message}`)
      }
    },
    'POST spki/revoke': async req => {
      const body = await readJson(req)
      const given = body.hashes
      if (!Array.isArray(given) || given.length === 0 || given.length > MAX_REVOKE_AT_ONCE) {
        throw new HttpError(400, `hashes must list 1-${MAX_REVOKE_AT_ONCE} certificate hashes`)
      }
      const hashes = given.map(h => {
        if (typeof h !== 'string' || !/^[0-9a-f]+$/.test(h) || h.length < MIN_HASH_PREFIX || h.length > 64) {
          throw new HttpError(400, `a certificate hash is ${MIN_HASH_PREFIX}-64 lowercase hex digits`)
        }
        if (h.length === 64) return base16.baseDecode(h)
        const found = ownCertsByHash(h)
        if (found.length !== 1) {
          throw new HttpError(
            404,
            `${found.length === 0 ? 'no' : 'more than one'} certificate issued by this node has a hash starting ${h}`
          )
        }
        return certHash(found[0])
      })
      return crlView(await node.spki.revoke(hashes))
    },
    'GET spki/crls': async () => node.spki.crls().map(crlView),
    'GET spki/acl': async () =>
      node.spki.acl().map(e => ({ principal: e.principal, tag: toAdvanced(tagToSexp(e.tag)) })),
    'POST spki/acl': async req => {
      const body = await readJson(req)
      const principal = parsePrincipal(stringField(body, 'principal', 128))
      const tag = tagField(body)
      await node.spki.addAclEntry(principal, tag)
      return { principal, tag: toAdvanced(tagToSexp(tag)) }
    },
    'POST spki/acl/remove': async req => {
      const principal = parsePrincipal(stringField(await readJson(req), 'principal', 128))
      if (!(await node.spki.removeAclEntry(principal))) throw new HttpError(404, `${principal} is not in the ACL`)
      return { principal }
    }
  }
}

/** HTTP status of the SPKI layer's named errors: bad input 400, authority refused 403. */
export const SPKI_ERROR_STATUS: Record<string, number> = {
  SexpSyntaxError: 400,
  SexpLimitError: 400,
  InvalidTagError: 400,
  InvalidCertError: 400,
  InvalidCrlError: 400,
  InvalidKeyError: 400,
  BadSignatureError: 400,
  RangeError: 400,
  ChainNotFoundError: 403,
  WrongSubjectError: 403,
  PropagationError: 403,
  ExpiredCertError: 403,
  NotYetValidCertError: 403,
  ChainTooLongError: 403,
  TagMismatchError: 403,
  NameCycleError: 403,
  RevokedCertError: 403,
  RevalidationRequiredError: 403,
  ProofRefusedError: 403
}
