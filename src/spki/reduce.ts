/**
 * 5-tuple reduction (RFC 2693 section 6): a chain of authorization certificates, each issued by
 * the previous one's subject, reduces to one tuple <issuer, subject, propagate, tag, validity>:
 * the first issuer grants the last subject the intersection of all tags, valid in the
 * intersection of all validity periods. Every link must allow delegation (propagate) except the
 * last. Signatures and validity at `now` are checked for every certificate. A `ReductionCache`
 * makes a repeated reduction of the same chain a map lookup (validity and revocation still checked).
 *
 * Name certificates and threshold subjects reduce through name resolution (a later step); a chain
 * here links keys directly or through (hash sha256 …) subjects.
 *
 * @example
 * const tuple = await reduceChain([rootToA, aToB, bToC], { now: Date.now() })
 * authorizeTuple(tuple, rootPrincipal, cPrincipal, requestedTag) // throws unless granted
 * const reductions = new ReductionCache()
 * await reduceChain(chain, { reductions, revocation }) // the second time: a lookup
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
import { keyHash, signedCertHandle, spkiTime, spkiTimeMs, verifyCerts } from './cert.ts'
import { HotCache } from './hot-cache.ts'
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
  /** Throws for revoked certificates (see crl.ts revocationCheck); called on every reduction, cached or not. */
  revocation?: (signed: SignedCert) => void
  /** Skips whole reductions already made (see ReductionCache). */
  reductions?: ReductionCache
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

/** A moment as ms since the epoch. */
function msOf(now: Date | number): number {
  return typeof now === 'number' ? now : now.getTime()
}

/** The moments (ms) a validity period runs from and to, both included; unbounded sides are infinite. */
export function validityMs(validity: Validity): { from: number; until: number } {
  return {
    from: validity.notBefore == null ? -Infinity : spkiTimeMs(validity.notBefore),
    until: validity.notAfter == null ? Infinity : spkiTimeMs(validity.notAfter)
  }
}

interface Reduction {
  tuple: FiveTuple
  /** The tuple's validity in ms: a hit must fall inside. */
  from: number
  until: number
}

/**
 * Reduced chains, by the ids of their certificates in order (`signedCertId`: sha256 over each
 * certificate's signed bytes and signature, written as its short handle), so reducing a chain again costs a map lookup, a
 * validity check and the caller's revocation check. Only chains that reduced (every signature
 * verified, every link sound) enter; an entry is used only at a moment inside the tuple's validity
 * (the intersection of every certificate's). Bounded (see HotCache): an entry not used lately goes
 * first, so however many distinct chains peers present it never grows past `max`.
 */
export class ReductionCache {
  private readonly entries: HotCache<string, Reduction>

  constructor(max = 1024) {
    this.entries = new HotCache(max)
  }

  /** The key of a chain: its certificates' handles (stand-ins for their ids, see signedCertHandle), in order. */
  static key(chain: SignedCert[]): string {
    return chain.map(signedCertHandle).join(' ')
  }

  /** The tuple `key` reduced to, if held and valid at `at` (ms); a copy, so the entry cannot be changed. */
  lookup(key: string, at: number): FiveTuple | undefined {
    const entry = this.entries.get(key)
    if (entry == null || at < entry.from || at > entry.until) return undefined
    return { ...entry.tuple }
  }

  remember(key: string, tuple: FiveTuple): void {
    this.entries.set(key, { tuple: { ...tuple }, ...validityMs(tuple.validity) })
  }

  get size(): number {
    return this.entries.size
  }
}

/**
 * The links of a chain, checked without signatures: each certificate is an authorization valid at
 * `at` and not refused by `revocation`, each is issued by the previous one's subject, every one
 * but the last allows delegation, and the tags have something in common.
 */
function reduceLinks(chain: SignedCert[], at: string, revocation?: (signed: SignedCert) => void): FiveTuple {
  let tuple: FiveTuple | undefined
  for (let index = 0; index < chain.length; index++) {
    const signed = chain[index]
    const cert = signed.cert
    if (cert.type !== 'auth')
      throw new InvalidCertError(`certificate ${index} is a name certificate, not an authorization`)
    checkValidity(cert.validity, at, index)
    revocation?.(signed)
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

/**
 * Reduces a chain to one tuple. The links are checked first (cheap: a broken chain costs no
 * signature check), then every signature, several at once. With `reductions`, a chain reduced
 * before is a lookup plus the validity and revocation checks.
 */
export async function reduceChain(chain: SignedCert[], options: ReduceOptions = {}): Promise<FiveTuple> {
  const maxLength = options.maxLength ?? DEFAULT_MAX_CHAIN_LENGTH
  if (chain.length === 0) throw new InvalidCertError('an empty chain proves nothing')
  if (chain.length > maxLength)
    throw new ChainTooLongError(`chain of ${chain.length} certificates, at most ${maxLength}`)
  const now = msOf(options.now ?? Date.now())
  const reductions = options.reductions
  const key = reductions == null ? undefined : ReductionCache.key(chain)
  if (key != null) {
    const hit = reductions?.lookup(key, now)
    if (hit != null) {
      // revocations are never cached: a certificate revoked since is refused now
      if (options.revocation != null) for (const signed of chain) options.revocation(signed)
      return hit
    }
  }
  const tuple = reduceLinks(chain, spkiTime(now), options.revocation)
  await verifyCerts(chain, options.cache)
  if (key != null) reductions?.remember(key, tuple)
  return tuple
}

/** Checks a reduced tuple grants `requested` to `requester` on the authority of `root`. */
export function authorizeTuple(tuple: FiveTuple, root: PrincipalId, requester: PrincipalId, requested: Tag): void {
  if (tuple.issuer !== root)
    throw new WrongSubjectError(`the chain starts at ${tuple.issuer}, not at the trusted root ${root}`)
  if (!subjectIsKey(tuple.subject, requester)) throw new WrongSubjectError(`the chain does not end at ${requester}`)
  if (!tagImplies(tuple.tag, requested)) throw new TagMismatchError('the chain does not grant what was asked')
}
