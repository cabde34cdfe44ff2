/**
 * SPKI certificates (RFC 2693 section 4): authorization certificates (issuer grants subject a tag,
 * optionally with the right to delegate it further) and SDSI name certificates (issuer binds a
 * local name to a subject). Certificates are S-expressions; the signature covers
 * `signedBytes('cyberspace/spki-cert/v1', canonical(cert))`.
 *
 * Forms (advanced syntax):
 *   (cert (issuer <key>) (subject <subject>) [(propagate)] (tag <tag>) [(valid [(not-before t)] [(not-after t)])])
 *   (cert (issuer (name <key> <name>)) (subject <subject>) [(valid …)])            ; a name cert
 *   <key>      (public-key (ed25519 |32 bytes|))
 *   <subject>  <key> | (hash sha256 |32 bytes|) | (name <key> n1 n2 …) | (k-of-n k n s1 … sn)
 *   times      "YYYY-MM-DD_HH:MM:SS", UTC; (valid … (online crl)) requires a current CRL from the issuer
 *   signed     (signed-cert <cert> (signature (ed25519 |64 bytes|)))
 *
 * Fields appear in exactly this order and `parseCert` refuses any other spelling, so the bytes a
 * peer sends are the bytes signed. The full wire specification, with a test vector, is
 * protocols/spki/README.md.
 *
 * @example
 * const signed = await signCert({ type: 'auth', issuer, subject: { kind: 'key', principal }, propagate: false,
 *   tag: parseTag(parseAdvanced('(cyberspace member)')), validity: {} }, secretKey)
 * await verifyCert(signed) // throws BadSignatureError if forged
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { base16 } from 'multiformats/bases/base16'
import { signedBytes } from '../../protocols/signing.ts'
import { ed25519, SIGNATURE_LENGTH } from '../crypto/ed25519.ts'
import { principalId, principalPublicKey } from '../crypto/principal.ts'
import { RecentMap } from '../recent-map.ts'
import { BadSignatureError, InvalidCertError } from './errors.ts'
import { Handles, HotCache } from './hot-cache.ts'
import { atomBytes, atomText, encodeCanonical, isList, sexpEquals, word } from './sexp.ts'
import { parseTag, tagToSexp } from './tag.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { SignedMessage } from '../crypto/ed25519.ts'
import type { Sexp } from './sexp.ts'
import type { Tag } from './tag.ts'

export const CERT_DOMAIN = 'cyberspace/spki-cert/v1'
/** Longest SDSI name chain in a subject, and widest threshold subject. */
export const MAX_NAMES = 16
export const MAX_THRESHOLD_SUBJECTS = 32
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const TIME_PATTERN = /^\d{4}-\d{2}-\d{2}_\d{2}:\d{2}:\d{2}$/

export type Subject =
  | { kind: 'key'; principal: PrincipalId }
  | { kind: 'hash'; sha256: Uint8Array }
  | { kind: 'name'; issuer: PrincipalId; names: string[] }
  | { kind: 'threshold'; k: number; subjects: Subject[] }

export interface Validity {
  notBefore?: string
  notAfter?: string
  /** Online test: the verifier must hold a CRL from the issuer that is current (`(online crl)`). */
  requireCrl?: boolean
}

export interface AuthCert {
  type: 'auth'
  issuer: PrincipalId
  subject: Subject
  propagate: boolean
  tag: Tag
  validity: Validity
}

export interface NameCert {
  type: 'name'
  issuer: PrincipalId
  name: string
  subject: Subject
  validity: Validity
}

export type Cert = AuthCert | NameCert

export interface SignedCert {
  cert: Cert
  signature: Uint8Array
}

const utf8 = new TextEncoder()
const enc = word
const text = (value: string): Uint8Array => utf8.encode(value)

/** The last second spkiTime wrote, and its text: every check within a second asks for the same. */
let lastSecond = Number.NaN
let lastTime = ''

/** SPKI time text for a moment (UTC, second precision). */
export function spkiTime(date: Date | number): string {
  const ms = typeof date === 'number' ? date : date.getTime()
  const second = Math.floor(ms / 1000)
  if (second !== lastSecond) {
    lastTime = new Date(ms).toISOString().slice(0, 19).replace('T', '_')
    lastSecond = second
  }
  return lastTime
}

/** The moment SPKI time text names, in ms since the epoch (NaN if it names none). */
export function spkiTimeMs(time: string): number {
  return Date.parse(time.replace('_', 'T') + 'Z')
}

/** Most principals whose key bytes and key hash are kept decoded (base58 decoding is slow). */
const MAX_KEPT_KEYS = 4096
/** Most certificate ids whose handles are kept (see signedCertHandle). */
const MAX_KEPT_HANDLES = 16_384
const keptKeys = new HotCache<string, { key: Uint8Array; hash?: Uint8Array }>(MAX_KEPT_KEYS)

/** The 32 key bytes of a principal, decoded once while used often (shared: read only). */
function keyOf(principal: PrincipalId): { key: Uint8Array; hash?: Uint8Array } {
  let kept = keptKeys.get(principal)
  if (kept == null) {
    kept = { key: principalPublicKey(principal) }
    keptKeys.set(principal, kept)
  }
  return kept
}

/** The public key bytes of a certificate's issuer (shared: read only). */
function issuerKey(principal: PrincipalId): Uint8Array {
  return keyOf(principal).key
}

export function publicKeySexp(principal: PrincipalId): Sexp {
  return [enc('public-key'), [enc('ed25519'), keyOf(principal).key]]
}

/** sha256 of the key's canonical (public-key …) form: what a (hash sha256 …) subject names. */
export function keyHash(principal: PrincipalId): Uint8Array {
  const kept = keyOf(principal)
  kept.hash ??= sha256(encodeCanonical(publicKeySexp(principal)))
  return kept.hash
}

export function subjectToSexp(subject: Subject): Sexp {
  switch (subject.kind) {
    case 'key':
      return publicKeySexp(subject.principal)
    case 'hash':
      return [enc('hash'), enc('sha256'), subject.sha256]
    case 'name':
      return [enc('name'), publicKeySexp(subject.issuer), ...subject.names.map(text)]
    case 'threshold':
      return [
        enc('k-of-n'),
        text(String(subject.k)),
        text(String(subject.subjects.length)),
        ...subject.subjects.map(subjectToSexp)
      ]
  }
}

export function certToSexp(cert: Cert): Sexp {
  const issuer =
    cert.type === 'auth' ? publicKeySexp(cert.issuer) : [enc('name'), publicKeySexp(cert.issuer), text(cert.name)]
  const out: Sexp[] = [enc('cert'), [enc('issuer'), issuer], [enc('subject'), subjectToSexp(cert.subject)]]
  if (cert.type === 'auth') {
    if (cert.propagate) out.push([enc('propagate')])
    out.push([enc('tag'), tagToSexp(cert.tag)])
  }
  const valid: Sexp[] = []
  if (cert.validity.notBefore != null) valid.push([enc('not-before'), text(cert.validity.notBefore)])
  if (cert.validity.notAfter != null) valid.push([enc('not-after'), text(cert.validity.notAfter)])
  if (cert.validity.requireCrl === true) valid.push([enc('online'), enc('crl')])
  if (valid.length > 0) out.push([enc('valid'), ...valid])
  return out
}

export function signedCertToSexp(signed: SignedCert): Sexp {
  return [enc('signed-cert'), certToSexp(signed.cert), [enc('signature'), [enc('ed25519'), signed.signature]]]
}

// ---------------------------------------------------------------- parsing

function fail(what: string): never {
  throw new InvalidCertError(what)
}

/** A certificate's fields by name, in one pass: every item a known field, none twice. */
function fieldsOf(cert: Sexp[]): Map<string, Sexp[]> {
  const fields = new Map<string, Sexp[]>()
  for (let i = 1; i < cert.length; i++) {
    const item = cert[i]
    const name = isList(item) && item.length > 0 ? atomText(item[0]) : undefined
    if (name == null || !isList(item) || !KNOWN_FIELDS.has(name)) fail('unknown certificate field')
    if (fields.has(name)) fail(`more than one (${name} …)`)
    fields.set(name, item)
  }
  return fields
}

function parseKey(s: Sexp): PrincipalId {
  if (!isList(s) || s.length !== 2 || atomText(s[0]) !== 'public-key') fail('expected (public-key (ed25519 |…|))')
  const inner = s[1]
  if (!isList(inner) || inner.length !== 2 || atomText(inner[0]) !== 'ed25519' || isList(inner[1])) {
    fail('only ed25519 public keys are supported')
  }
  const bytes = atomBytes(inner[1])
  // the same keys recur in every chain: their ids are encoded (base58) once while in use
  // (apply takes the typed array as it is; a spread builds an argument list first, several times slower)
  const binary = bytes.length === 32 ? String.fromCharCode.apply(null, bytes as unknown as number[]) : undefined
  const known = binary == null ? undefined : idsByKey.get(binary)
  if (known != null) return known
  try {
    const id = principalId(bytes)
    if (binary != null) idsByKey.set(binary, id)
    return id
  } catch (err) {
    return fail(`bad public key: ${(err as Error).message}`)
  }
}

/** Principal ids by their key bytes (as a binary string), for the keys parsed most recently. */
const idsByKey = new HotCache<string, PrincipalId>(MAX_KEPT_KEYS)

function parseName(s: Sexp): string {
  const name = atomText(s)
  if (name == null || !NAME_PATTERN.test(name)) fail('a name is 1-64 characters of A-Z a-z 0-9 . _ -')
  return name
}

export function parseSubject(s: Sexp, depth = 0): Subject {
  if (depth > 2) fail('threshold subjects nest too deep')
  if (!isList(s) || s.length === 0) fail('a subject is a list')
  switch (atomText(s[0])) {
    case 'public-key':
      return { kind: 'key', principal: parseKey(s) }
    case 'hash': {
      if (s.length !== 3 || atomText(s[1]) !== 'sha256' || isList(s[2]) || atomBytes(s[2]).length !== 32) {
        fail('a hash subject is (hash sha256 |32 bytes|)')
      }
      return { kind: 'hash', sha256: atomBytes(s[2] as Uint8Array) }
    }
    case 'name': {
      const names = s.slice(2)
      if (names.length === 0 || names.length > MAX_NAMES) fail(`a name subject has 1-${MAX_NAMES} names`)
      return { kind: 'name', issuer: parseKey(s[1]), names: names.map(parseName) }
    }
    case 'k-of-n': {
      const k = Number(atomText(s[1]))
      const n = Number(atomText(s[2]))
      const subjects = s.slice(3)
      if (!Number.isSafeInteger(n) || n < 1 || n > MAX_THRESHOLD_SUBJECTS || subjects.length !== n) {
        fail(`a k-of-n subject lists n (1-${MAX_THRESHOLD_SUBJECTS}) subjects`)
      }
      if (!Number.isSafeInteger(k) || k < 1 || k > n) fail('k-of-n needs 1 <= k <= n')
      return { kind: 'threshold', k, subjects: subjects.map(x => parseSubject(x, depth + 1)) }
    }
    default:
      return fail('unknown subject form')
  }
}

function parseValidity(valid: Sexp[] | undefined): Validity {
  const validity: Validity = {}
  if (valid == null) return validity
  for (const item of valid.slice(1)) {
    if (!isList(item) || item.length !== 2) fail('a validity field is (not-before t), (not-after t) or (online crl)')
    const kind = atomText(item[0])
    if (kind === 'online') {
      if (atomText(item[1]) !== 'crl' || validity.requireCrl != null)
        fail('the supported online test is one (online crl)')
      validity.requireCrl = true
      continue
    }
    const time = atomText(item[1])
    if (time == null || !TIME_PATTERN.test(time)) fail('times are "YYYY-MM-DD_HH:MM:SS"')
    if (kind === 'not-before' && validity.notBefore == null) validity.notBefore = time
    else if (kind === 'not-after' && validity.notAfter == null) validity.notAfter = time
    else fail(`unexpected validity field ${JSON.stringify(kind)}`)
  }
  return validity
}

const KNOWN_FIELDS = new Set(['issuer', 'subject', 'propagate', 'tag', 'valid'])

function parseCertFields(s: Sexp): Cert {
  if (!isList(s) || atomText(s[0]) !== 'cert') fail('a certificate is (cert …)')
  const fields = fieldsOf(s)
  const issuerField = fields.get('issuer')
  const subjectField = fields.get('subject')
  if (issuerField?.length !== 2 || subjectField?.length !== 2) fail('a certificate has one issuer and one subject')
  const subject = parseSubject(subjectField[1])
  const validity = parseValidity(fields.get('valid'))
  const issuer = issuerField[1]
  if (isList(issuer) && atomText(issuer[0]) === 'name') {
    if (issuer.length !== 3) fail('a name certificate issuer is (name <key> <name>)')
    if (fields.get('tag') != null || fields.get('propagate') != null) fail('a name certificate has no tag or propagate')
    return { type: 'name', issuer: parseKey(issuer[1]), name: parseName(issuer[2]), subject, validity }
  }
  const tagField = fields.get('tag')
  if (tagField?.length !== 2) fail('an authorization certificate has one (tag …)')
  const propagate = fields.get('propagate')
  if (propagate != null && propagate.length !== 1) fail('(propagate) takes no arguments')
  return {
    type: 'auth',
    issuer: parseKey(issuer),
    subject,
    propagate: propagate != null,
    tag: parseTag(tagField[1]),
    validity
  }
}

/**
 * Parses a certificate and insists it is written exactly as `certToSexp` writes it (field order,
 * validity order, range limits lower first, no display hints, numbers without leading zeros):
 * the signature covers that one encoding, so any other spelling could never verify, and a
 * signer handed one would sign bytes no verifier reconstructs.
 */
export function parseCert(s: Sexp): Cert {
  const cert = parseCertFields(s)
  if (!sexpEquals(certToSexp(cert), s)) {
    fail('a certificate must be in its one canonical shape (field order, no display hints; see protocols/spki)')
  }
  // its one encoding, which its signature and its hash (for CRLs) cover, written once
  canonicalOf.set(cert, encodeCanonical(s))
  return cert
}

export function parseSignedCert(s: Sexp): SignedCert {
  if (!isList(s) || s.length !== 3 || atomText(s[0]) !== 'signed-cert')
    fail('expected (signed-cert <cert> (signature …))')
  const sig = s[2]
  if (!isList(sig) || sig.length !== 2 || atomText(sig[0]) !== 'signature') fail('expected (signature (ed25519 |…|))')
  const inner = sig[1]
  if (!isList(inner) || inner.length !== 2 || atomText(inner[0]) !== 'ed25519' || isList(inner[1])) {
    fail('expected (signature (ed25519 |…|))')
  }
  const signature = atomBytes(inner[1])
  if (signature.length !== SIGNATURE_LENGTH) fail(`an ed25519 signature is ${SIGNATURE_LENGTH} bytes`)
  return { cert: parseCert(s[1]), signature }
}

// ---------------------------------------------------------------- signing

/**
 * Each certificate object's canonical encoding, written once: certificates are values, never
 * changed after they are made or parsed, so a chain checked again costs no re-encoding.
 */
const canonicalOf = new WeakMap<Cert, Uint8Array>()
const signingBytesOf = new WeakMap<Cert, Uint8Array>()

/** The canonical (cert …) bytes: what the signature covers (after its domain) and CRLs hash. Shared: read only. */
export function canonicalCert(cert: Cert): Uint8Array {
  let bytes = canonicalOf.get(cert)
  if (bytes == null) {
    bytes = encodeCanonical(certToSexp(cert))
    canonicalOf.set(cert, bytes)
  }
  return bytes
}

export function certSigningBytes(cert: Cert): Uint8Array {
  let bytes = signingBytesOf.get(cert)
  if (bytes == null) {
    bytes = signedBytes(CERT_DOMAIN, canonicalCert(cert))
    signingBytesOf.set(cert, bytes)
  }
  return bytes
}

/**
 * Each signed certificate's id and handle, with the body and a copy of the signature they were
 * computed over: a body replaced or a signature changed in place never inherits them.
 */
const idsOf = new WeakMap<SignedCert, { cert: Cert; signature: Uint8Array; id: string; handle: string }>()
/** Handles by id, for the ids computed most recently; a handle is never given to a second id. */
const handles = new Handles(MAX_KEPT_HANDLES)

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function idOf(signed: SignedCert): { id: string; handle: string } {
  const kept = idsOf.get(signed)
  if (kept != null && kept.cert === signed.cert && sameBytes(kept.signature, signed.signature)) return kept
  const id = VerifiedCertCache.key(certSigningBytes(signed.cert), signed.signature)
  const made = { cert: signed.cert, signature: signed.signature.slice(), id, handle: handles.of(id) }
  idsOf.set(signed, made)
  return made
}

/**
 * What identifies a signed certificate: hex of sha256 over its signing bytes and its signature
 * (`VerifiedCertCache.key`). Computed once per object; the signature is compared with the one the
 * id was computed over at every call, so a signature changed in place never inherits an id.
 */
export function signedCertId(signed: SignedCert): string {
  return idOf(signed).id
}

/**
 * A short stand-in for `signedCertId`, for keys built often: this process gives each id its own
 * handle, never the same one to two ids. Certificates with the same id get the same handle while
 * that id is among the MAX_KEPT_HANDLES most recent (after that, a new one: a cache keyed by
 * handles then misses, it never confuses two certificates).
 */
export function signedCertHandle(signed: SignedCert): string {
  return idOf(signed).handle
}

/** Signs a certificate with the issuer's 32-byte secret key (which must be the issuer's). */
export async function signCert(cert: Cert, secretKey: Uint8Array): Promise<SignedCert> {
  // nothing is signed that a verifier could not parse (bad names, times, subjects)
  parseCert(certToSexp(cert))
  const backend = await ed25519()
  if (principalId(await backend.publicKey(secretKey)) !== cert.issuer) {
    throw new InvalidCertError('the signing key is not the certificate issuer')
  }
  return { cert, signature: await backend.sign(secretKey, certSigningBytes(cert)) }
}

/**
 * Remembers certificates whose signatures verified (by a digest of signed bytes and signature),
 * so a verifier that sees the same chains again skips the curve arithmetic. Bounded; the least
 * recently used entry goes first.
 */
export class VerifiedCertCache {
  private readonly entries: RecentMap<string, true>

  constructor(max = 10_000) {
    this.entries = new RecentMap(max)
  }

  /** The entry for a signature over `signingBytes`. */
  static key(signingBytes: Uint8Array, signature: Uint8Array): string {
    const both = new Uint8Array(signingBytes.length + signature.length)
    both.set(signingBytes)
    both.set(signature, signingBytes.length)
    return base16.baseEncode(sha256(both))
  }

  /** Whether the signature of `key` verified; a hit counts as a use. */
  has(key: string): boolean {
    return this.entries.get(key) === true
  }

  add(key: string): void {
    this.entries.set(key, true)
  }

  get size(): number {
    return this.entries.size
  }
}

/** Most signatures `verifyCerts` and `verifiedCerts` have in flight at once. */
const MAX_VERIFYING = 16

/**
 * Whether each certificate of `batch` (at most MAX_VERIFYING) has a good signature, in order: those
 * `cache` holds are not checked again, the others at once (`verifyMany`: a native back end checks
 * them in parallel), and those that verify enter the cache. A certificate whose issuer is not a
 * key has no good signature.
 */
async function verifyBatch(batch: SignedCert[], cache?: VerifiedCertCache): Promise<boolean[]> {
  const ok = batch.map(() => true)
  const keys = batch.map(signed => (cache == null ? undefined : signedCertId(signed)))
  const todo: number[] = []
  const items: SignedMessage[] = []
  for (const [i, signed] of batch.entries()) {
    const key = keys[i]
    if (key != null && cache?.has(key) === true) continue
    try {
      items.push({
        publicKey: issuerKey(signed.cert.issuer),
        message: certSigningBytes(signed.cert),
        signature: signed.signature
      })
      todo.push(i)
    } catch {
      ok[i] = false
    }
  }
  const results = items.length === 0 ? [] : await (await ed25519()).verifyMany(items)
  for (const [n, i] of todo.entries()) {
    ok[i] = results[n]
    const key = keys[i]
    if (results[n] && key != null) cache?.add(key)
  }
  return ok
}

/**
 * Verifies every certificate's signature, several at once, and throws the error of the first one,
 * in order, that does not verify (no batch after it is checked).
 */
export async function verifyCerts(certs: SignedCert[], cache?: VerifiedCertCache): Promise<void> {
  if (certs.length === 1) return await verifyCert(certs[0], cache)
  for (let start = 0; start < certs.length; start += MAX_VERIFYING) {
    const batch = certs.slice(start, start + MAX_VERIFYING)
    const bad = (await verifyBatch(batch, cache)).indexOf(false)
    if (bad >= 0) throw badSignature(batch[bad])
  }
}

/** The certificates whose signatures verify, in order (the others left out), several checked at once. */
export async function verifiedCerts(certs: SignedCert[], cache?: VerifiedCertCache): Promise<SignedCert[]> {
  const out: SignedCert[] = []
  for (let start = 0; start < certs.length; start += MAX_VERIFYING) {
    const batch = certs.slice(start, start + MAX_VERIFYING)
    const ok = await verifyBatch(batch, cache)
    out.push(...batch.filter((_, i) => ok[i]))
  }
  return out
}

const badSignature = (signed: SignedCert): BadSignatureError =>
  new BadSignatureError(`signature of a certificate by ${signed.cert.issuer} does not verify`)

export async function verifyCert(signed: SignedCert, cache?: VerifiedCertCache): Promise<void> {
  const key = cache == null ? undefined : signedCertId(signed)
  if (key != null && cache?.has(key) === true) return
  const backend = await ed25519()
  const ok = await backend.verify(issuerKey(signed.cert.issuer), certSigningBytes(signed.cert), signed.signature)
  if (!ok) throw badSignature(signed)
  if (key != null) cache?.add(key)
}
