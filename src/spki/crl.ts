/**
 * Revocation: issuer-signed, timed certificate revocation lists (RFC 2693 section 6.6). A CRL
 * names the certificates its issuer revokes by the sha256 of their canonical form, and is valid
 * for a short period; verifiers consult the current CRLs of each certificate's issuer. A
 * certificate with `(valid (online crl))` is accepted only while a current CRL from its issuer is
 * at hand (online revalidation).
 *
 *   (crl (issuer <key>) (revoked (hash sha256 |…|)…) (valid (not-before t) (not-after t)))
 *   (signed-crl <crl> (signature (ed25519 |64 bytes|)))
 *
 * @example
 * const crl = await signCrl({ issuer, revoked: [certHash(bad)], validity: { notBefore, notAfter } }, secret)
 * const check = await revocationCheck([crl], now)
 * check(signedCert) // throws RevokedCertError (naming the certificate's hash) / RevalidationRequiredError
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { base16 } from 'multiformats/bases/base16'
import { signedBytes } from '../../protocols/signing.ts'
import { ed25519, SIGNATURE_LENGTH } from '../crypto/ed25519.ts'
import { principalId, principalPublicKey } from '../crypto/principal.ts'
import { canonicalCert, publicKeySexp, spkiTime } from './cert.ts'
import { InvalidCrlError, RevalidationRequiredError, RevokedCertError } from './errors.ts'
import { atomBytes, atomText, encodeCanonical, isList } from './sexp.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { SignedCert } from './cert.ts'
import type { Sexp } from './sexp.ts'

export const CRL_DOMAIN = 'cyberspace/spki-crl/v1'
export const MAX_REVOKED = 4096
/** Decode limits for a canonical (signed-crl …): 4096 entries are about 204 KiB, in one list. */
export const CRL_SEXP_LIMITS = { maxBytes: 256 * 1024, maxDepth: 8, maxAtomBytes: 1024, maxListLength: MAX_REVOKED + 1 }

export interface Crl {
  issuer: PrincipalId
  /** sha256 of each revoked certificate's canonical form. */
  revoked: Uint8Array[]
  /** CRLs are always timed. */
  validity: { notBefore: string; notAfter: string }
}

export interface SignedCrl {
  crl: Crl
  signature: Uint8Array
}

const enc = (text: string): Uint8Array => new TextEncoder().encode(text)

/**
 * What orders two CRLs of one issuer, newest last: not-before, then not-after, then how many
 * certificates it lists (an issuer's CRLs only grow), then its hash (hex of sha256 of the
 * canonical signed CRL), so every node picks the same one. A newer CRL replaces an older one.
 */
export interface CrlSummary {
  issuer: PrincipalId
  notBefore: string
  notAfter: string
  count: number
  /** Hex of sha256 of the canonical (signed-crl …): the CRL's id. */
  hash: string
}

/** The id of a CRL: hex of sha256 of its canonical (signed-crl …). */
export function crlHash(signed: SignedCrl): string {
  return base16.baseEncode(sha256(encodeCanonical(signedCrlToSexp(signed))))
}

export function crlSummary(signed: SignedCrl, hash = crlHash(signed)): CrlSummary {
  const { issuer, validity, revoked } = signed.crl
  return { issuer, notBefore: validity.notBefore, notAfter: validity.notAfter, count: revoked.length, hash }
}

/** Negative when `a` is older than `b`, positive when newer, 0 for the same CRL (compare within one issuer). */
export function compareCrls(a: CrlSummary, b: CrlSummary): number {
  const order = (x: string | number, y: string | number): number => (x < y ? -1 : x > y ? 1 : 0)
  return (
    order(a.notBefore, b.notBefore) || order(a.notAfter, b.notAfter) || order(a.count, b.count) || order(a.hash, b.hash)
  )
}

/** The hash a CRL names a certificate by. */
const hashes = new WeakMap<SignedCert['cert'], Uint8Array>()

/** sha256 of the canonical (cert …): what CRLs name a certificate by. Kept per certificate object (treat as read only). */
export function certHash(signed: SignedCert): Uint8Array {
  let hash = hashes.get(signed.cert)
  if (hash == null) {
    hash = sha256(canonicalCert(signed.cert))
    hashes.set(signed.cert, hash)
  }
  return hash
}

const hexHashes = new WeakMap<SignedCert['cert'], string>()

/** `certHash` in hex, as revocations are indexed; kept per certificate object like the hash. */
function certHashHex(signed: SignedCert): string {
  let hex = hexHashes.get(signed.cert)
  if (hex == null) {
    hex = base16.baseEncode(certHash(signed))
    hexHashes.set(signed.cert, hex)
  }
  return hex
}

export function crlToSexp(crl: Crl): Sexp {
  return [
    enc('crl'),
    [enc('issuer'), publicKeySexp(crl.issuer)],
    [enc('revoked'), ...crl.revoked.map(h => [enc('hash'), enc('sha256'), h])],
    [enc('valid'), [enc('not-before'), enc(crl.validity.notBefore)], [enc('not-after'), enc(crl.validity.notAfter)]]
  ]
}

export function signedCrlToSexp(signed: SignedCrl): Sexp {
  return [enc('signed-crl'), crlToSexp(signed.crl), [enc('signature'), [enc('ed25519'), signed.signature]]]
}

function fail(what: string): never {
  throw new InvalidCrlError(what)
}

/** Parses the `(crl (issuer …) (revoked …) (valid …))` a CRL signature covers. */
export function parseCrl(body: Sexp): Crl {
  if (!isList(body) || body.length !== 4 || atomText(body[0]) !== 'crl')
    fail('expected (crl (issuer …) (revoked …) (valid …))')
  const [, issuerField, revokedField, validField] = body
  if (!isList(issuerField) || atomText(issuerField[0]) !== 'issuer' || issuerField.length !== 2) fail('bad (issuer …)')
  const key = issuerField[1]
  if (!isList(key) || atomText(key[0]) !== 'public-key' || !isList(key[1]) || atomText(key[1][0]) !== 'ed25519') {
    fail('the issuer is (public-key (ed25519 |…|))')
  }
  const keyBytes = key[1][1]
  if (keyBytes == null || isList(keyBytes)) fail('bad issuer key')
  let issuer: PrincipalId
  try {
    issuer = principalId(atomBytes(keyBytes))
  } catch {
    return fail('bad issuer key')
  }
  if (!isList(revokedField) || atomText(revokedField[0]) !== 'revoked') fail('bad (revoked …)')
  if (revokedField.length - 1 > MAX_REVOKED) fail(`a CRL lists at most ${MAX_REVOKED} certificates`)
  const revoked = revokedField.slice(1).map(h => {
    if (!isList(h) || h.length !== 3 || atomText(h[0]) !== 'hash' || atomText(h[1]) !== 'sha256' || isList(h[2])) {
      return fail('a revoked entry is (hash sha256 |32 bytes|)')
    }
    const bytes = atomBytes(h[2])
    if (bytes.length !== 32) fail('a revoked entry is (hash sha256 |32 bytes|)')
    return bytes
  })
  if (!isList(validField) || validField.length !== 3 || atomText(validField[0]) !== 'valid')
    fail('a CRL has (valid (not-before t) (not-after t))')
  const [nb, na] = [validField[1], validField[2]]
  const notBefore = isList(nb) && atomText(nb[0]) === 'not-before' ? atomText(nb[1]) : undefined
  const notAfter = isList(na) && atomText(na[0]) === 'not-after' ? atomText(na[1]) : undefined
  const time = /^\d{4}-\d{2}-\d{2}_\d{2}:\d{2}:\d{2}$/
  if (notBefore == null || notAfter == null || !time.test(notBefore) || !time.test(notAfter))
    fail('a CRL has (valid (not-before t) (not-after t))')
  return { issuer, revoked, validity: { notBefore, notAfter } }
}

export function parseSignedCrl(s: Sexp): SignedCrl {
  if (!isList(s) || s.length !== 3 || atomText(s[0]) !== 'signed-crl') fail('expected (signed-crl <crl> (signature …))')
  const crl = parseCrl(s[1])
  const sig = s[2]
  if (!isList(sig) || atomText(sig[0]) !== 'signature' || !isList(sig[1]) || atomText(sig[1][0]) !== 'ed25519')
    fail('bad signature')
  const sigBytes = sig[1][1]
  if (sigBytes == null || isList(sigBytes) || atomBytes(sigBytes).length !== SIGNATURE_LENGTH) fail('bad signature')
  return { crl, signature: atomBytes(sigBytes) }
}

function crlSigningBytes(crl: Crl): Uint8Array {
  return signedBytes(CRL_DOMAIN, encodeCanonical(crlToSexp(crl)))
}

export async function signCrl(crl: Crl, secretKey: Uint8Array): Promise<SignedCrl> {
  const backend = await ed25519()
  if (principalId(await backend.publicKey(secretKey)) !== crl.issuer) fail('the signing key is not the CRL issuer')
  return { crl, signature: await backend.sign(secretKey, crlSigningBytes(crl)) }
}

/** Throws InvalidCrlError unless the CRL's signature verifies with its issuer's key. */
export async function verifyCrl(signed: SignedCrl): Promise<void> {
  const backend = await ed25519()
  const ok = await backend.verify(principalPublicKey(signed.crl.issuer), crlSigningBytes(signed.crl), signed.signature)
  if (!ok) throw new InvalidCrlError(`a CRL of ${signed.crl.issuer} does not verify`)
}

/**
 * Verifies the given CRLs and returns a check for certificates at `now`: it throws
 * RevokedCertError for a certificate a current CRL of its issuer lists, and
 * RevalidationRequiredError for a certificate that asks for a current CRL when there is none.
 * CRLs that do not verify are refused (InvalidCrlError); expired or future ones are ignored.
 */
export async function revocationCheck(
  crls: SignedCrl[],
  now: Date | number = Date.now()
): Promise<(signed: SignedCert) => void> {
  for (const signed of crls) await verifyCrl(signed)
  return revocationIndex(crls, now)
}

/** The same check over CRLs whose signatures were already verified (e.g. when they were stored). */
export function revocationIndex(
  crls: Iterable<SignedCrl>,
  now: Date | number = Date.now()
): (signed: SignedCert) => void {
  const at = spkiTime(now)
  const current = new Map<PrincipalId, Set<string>>()
  for (const signed of crls) {
    if (at < signed.crl.validity.notBefore || at > signed.crl.validity.notAfter) continue
    const set = current.get(signed.crl.issuer) ?? new Set<string>()
    for (const h of signed.crl.revoked) set.add(base16.baseEncode(h))
    current.set(signed.crl.issuer, set)
  }
  return signed => {
    const revoked = current.get(signed.cert.issuer)
    if (revoked != null) {
      const hash = certHashHex(signed)
      if (revoked.has(hash)) {
        throw new RevokedCertError(`certificate ${hash} by ${signed.cert.issuer} is revoked by its issuer's CRL`, hash)
      }
    }
    if (signed.cert.validity.requireCrl === true && revoked == null) {
      throw new RevalidationRequiredError(`a certificate by ${signed.cert.issuer} needs a current CRL from its issuer`)
    }
  }
}
