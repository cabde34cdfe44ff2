/**
 * 5-tuple reduction (RFC 2693 section 6): a chain of authorization certificates, each issued by
 * the previous one's subject, reduces to one tuple <issuer, subject, propagate, tag, validity>:
 * the first issuer grants the last subject the intersection of all tags, valid in the
 * intersection of all validity periods. Every link must allow delegation (propagate) except the
 * last. Signatures and validity at `now` are checked for every certificate.
 *
 * Name certificates and threshold subjects reduce through name resolution (a later step); a chain
 * here links keys directly or through (hash sha256 …) subjects.
 *
 * @example
 * const tuple = await reduceChain([rootToA, aToB, bToC], { now: Date.now() })
 * authorizeTuple(tuple, rootPrincipal, cPrincipal, requestedTag) // throws unless granted
 */
import {
  ChainTooLongError,
  ExpiredCertError,
  InvalidCertError,
  NotYetValidCertError,
  PropagationError,
  TagMismatchError,
  WrongSubjectError
} from './errors.ts'
import { equalBytes } from '@noble/curves/utils.js'
import { keyHash, spkiTime, verifyCert } from './cert.ts'
import { intersectTags, tagImplies } from './tag.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { SignedCert, Subject, Validity, VerifiedCertCache } from './cert.ts'
import type { Tag } from './tag.ts'

export interface FiveTuple {
  issuer: PrincipalId
  subject: Subject
  propagate: boolean
  tag: Tag
  validity: Validity
}

export interface ReduceOptions {
  /** The moment validity is checked at; default now. */
  now?: Date | number
  /** Longest chain accepted; default 8. */
  maxLength?: number
  /** Skips signatures already verified. */
  cache?: VerifiedCertCache
  /** Throws for revoked certificates (see crl.ts revocationCheck). */
  revocation?: (signed: SignedCert) => void
}

export const DEFAULT_MAX_CHAIN_LENGTH = 8

/** Whether `subject` names the key `principal` (directly or by its hash). */
export function subjectIsKey(subject: Subject, principal: PrincipalId): boolean {
  if (subject.kind === 'key') return subject.principal === principal
  if (subject.kind === 'hash') {
    return equalBytes(subject.sha256, keyHash(principal))
  }
  return false
}

/** Throws ExpiredCertError or NotYetValidCertError unless `at` lies in the validity period. */
export function checkValidity(validity: Validity, at: string, index: number): void {
  if (validity.notBefore != null && at < validity.notBefore) {
    throw new NotYetValidCertError(`certificate ${index} is valid from ${validity.notBefore}, it is ${at}`)
  }
  if (validity.notAfter != null && at > validity.notAfter) {
    throw new ExpiredCertError(`certificate ${index} expired at ${validity.notAfter}, it is ${at}`)
  }
}

export function intersectValidity(a: Validity, b: Validity): Validity {
  const out: Validity = {}
  const notBefore = [a.notBefore, b.notBefore]
    .filter((x): x is string => x != null)
    .sort()
    .at(-1)
  const notAfter = [a.notAfter, b.notAfter].filter((x): x is string => x != null).sort()[0]
  if (notBefore != null) out.notBefore = notBefore
  if (notAfter != null) out.notAfter = notAfter
  return out
}

export async function reduceChain(chain: SignedCert[], options: ReduceOptions = {}): Promise<FiveTuple> {
  const maxLength = options.maxLength ?? DEFAULT_MAX_CHAIN_LENGTH
  if (chain.length === 0) throw new InvalidCertError('an empty chain proves nothing')
  if (chain.length > maxLength)
    throw new ChainTooLongError(`chain of ${chain.length} certificates, at most ${maxLength}`)
  const at = spkiTime(options.now ?? Date.now())
  let tuple: FiveTuple | undefined
  for (const [index, signed] of chain.entries()) {
    const cert = signed.cert
    if (cert.type !== 'auth')
      throw new InvalidCertError(`certificate ${index} is a name certificate, not an authorization`)
    await verifyCert(signed, options.cache)
    checkValidity(cert.validity, at, index)
    options.revocation?.(signed)
    if (tuple == null) {
      tuple = {
        issuer: cert.issuer,
        subject: cert.subject,
        propagate: cert.propagate,
        tag: cert.tag,
        validity: cert.validity
      }
      continue
    }
    if (!subjectIsKey(tuple.subject, cert.issuer)) {
      throw new WrongSubjectError(
        `certificate ${index} is issued by ${cert.issuer}, not by the subject of certificate ${index - 1}`
      )
    }
    if (!tuple.propagate) {
      throw new PropagationError(
        `certificate ${index - 1} does not allow delegation, yet certificate ${index} delegates`
      )
    }
    const tag = intersectTags(tuple.tag, cert.tag)
    if (tag == null)
      throw new TagMismatchError(`the tag of certificate ${index} has nothing in common with the chain before it`)
    tuple = {
      issuer: tuple.issuer,
      subject: cert.subject,
      propagate: cert.propagate,
      tag,
      validity: intersectValidity(tuple.validity, cert.validity)
    }
  }
  return tuple as FiveTuple
}

/** Checks a reduced tuple grants `requested` to `requester` on the authority of `root`. */
export function authorizeTuple(tuple: FiveTuple, root: PrincipalId, requester: PrincipalId, requested: Tag): void {
  if (tuple.issuer !== root)
    throw new WrongSubjectError(`the chain starts at ${tuple.issuer}, not at the trusted root ${root}`)
  if (!subjectIsKey(tuple.subject, requester)) throw new WrongSubjectError(`the chain does not end at ${requester}`)
  if (!tagImplies(tuple.tag, requested)) throw new TagMismatchError('the chain does not grant what was asked')
}
