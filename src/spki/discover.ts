/**
 * SDSI name resolution and certificate chain discovery (after Clarke, Elien, Ellison, Fredette,
 * Morcos and Rivest, "Certificate chain discovery in SPKI/SDSI", 2001), over a pool of signed
 * certificates.
 *
 * `resolveName(pool, K, ['a', 'b'])` finds the keys the linked name K's a's b denotes, with the
 * name certificates that prove each. `discoverChain(pool, roots, requester, tag)` finds the
 * shortest chain from a trusted root to the requester whose tags, intersected, grant `tag`,
 * resolving name subjects on the way; the result is the proof to present. `verifyProof` is what
 * a verifier runs on a presented proof: every certificate must verify and be valid, and the
 * chain is rediscovered from the proof's certificates alone, so a proof cannot assert anything
 * its signatures do not.
 *
 * @example
 * const proof = await discoverChain(pool, [clusterKey], agentKey, parseTag(parseAdvanced('(cyberspace member)')))
 * await verifyProof(proof, [clusterKey], agentKey, tag) // throws ChainNotFoundError, BadSignatureError, …
 *
 * `discoverChain` skips revoked certificates like any other unusable one; `revokedLinkError` says
 * afterwards whether a revocation is why no chain was found.
 */
import { ChainNotFoundError, ChainTooLongError, NameCycleError } from './errors.ts'
import { spkiTime, verifiedCerts, verifyCerts, VerifiedCertCache } from './cert.ts'
import {
  checkValidity,
  DEFAULT_MAX_CHAIN_LENGTH,
  intersectValidity,
  reduceChain,
  subjectIsKey,
  validityMs
} from './reduce.ts'
import type { FiveTuple, ReductionCache } from './reduce.ts'
import { intersectTags, tagImplies, tagKey } from './tag.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { AuthCert, NameCert, SignedCert, Subject, Validity } from './cert.ts'
import type { Tag } from './tag.ts'

export interface DiscoverOptions {
  now?: Date | number
  /** Most authorization certificates in a chain; default 8. */
  maxLength?: number
  /** Most name certificates followed while resolving one name; default 32. */
  maxNameSteps?: number
  /** Most search states explored; default 10 000. */
  maxStates?: number
  /** Skips signatures already verified. */
  cache?: VerifiedCertCache
  /** Every signature in the pool is known good (a store that admits only verified certificates): none is checked again. */
  verified?: boolean
  /** Throws for revoked certificates (see crl.ts revocationCheck). */
  revocation?: (signed: SignedCert) => void
  /** Chains reduced before (see ReductionCache): `verifyProof` checks a plain chain shown in order by lookup. */
  reductions?: ReductionCache
}

export interface Proof {
  /** The authorization certificates, root first. */
  chain: SignedCert[]
  /** The name certificates that resolve the chain's name subjects. */
  names: SignedCert[]
}

export interface DiscoveredGrant {
  proof: Proof
  tag: Tag
  validity: Validity
}

/**
 * Indexes a pool after checking each certificate's signature and validity at `now`; certificates
 * that fail are left out (a pool is what a prover happens to hold, not what it vouches for).
 */
async function usable(
  pool: SignedCert[],
  at: string,
  options: DiscoverOptions
): Promise<{ auth: SignedCert[]; names: SignedCert[] }> {
  const candidates: SignedCert[] = []
  for (const [index, signed] of pool.entries()) {
    try {
      checkValidity(signed.cert.validity, at, index)
      options.revocation?.(signed)
    } catch {
      continue
    }
    candidates.push(signed)
  }
  // signatures last, the costly check, several at once
  const good = options.verified === true ? candidates : await verifiedCerts(candidates, options.cache)
  const auth: SignedCert[] = []
  const names: SignedCert[] = []
  for (const signed of good) (signed.cert.type === 'auth' ? auth : names).push(signed)
  return { auth, names }
}

/** The keys K's n1's n2… denotes, each with the name certificates proving it. */
function resolveIn(
  names: SignedCert[],
  issuer: PrincipalId,
  path: string[],
  budget: { steps: number },
  resolving: Set<string>
): Map<PrincipalId, SignedCert[]> {
  const out = new Map<PrincipalId, SignedCert[]>()
  if (path.length === 0) {
    out.set(issuer, [])
    return out
  }
  const [first, ...rest] = path
  const key = `${issuer} ${first}`
  if (resolving.has(key)) throw new NameCycleError(`resolving ${issuer}'s ${first} leads back to itself`)
  resolving.add(key)
  try {
    for (const signed of names) {
      const cert = signed.cert as NameCert
      if (cert.issuer !== issuer || cert.name !== first) continue
      if (--budget.steps < 0) throw new ChainTooLongError('name resolution followed too many certificates')
      let direct: Map<PrincipalId, SignedCert[]>
      if (cert.subject.kind === 'key') direct = new Map([[cert.subject.principal, []]])
      else if (cert.subject.kind === 'name')
        direct = resolveIn(names, cert.subject.issuer, cert.subject.names, budget, resolving)
      else continue // hash and threshold subjects do not name a key to continue from
      for (const [k, proof] of direct) {
        for (const [k2, proof2] of resolveIn(names, k, rest, budget, resolving)) {
          if (!out.has(k2)) out.set(k2, [signed, ...proof, ...proof2])
        }
      }
    }
  } finally {
    resolving.delete(key)
  }
  return out
}

export async function resolveName(
  pool: SignedCert[],
  issuer: PrincipalId,
  path: string[],
  options: DiscoverOptions = {}
): Promise<Map<PrincipalId, SignedCert[]>> {
  const { names } = await usable(pool, spkiTime(options.now ?? Date.now()), options)
  return resolveIn(names, issuer, path, { steps: options.maxNameSteps ?? 32 }, new Set())
}

interface State {
  principal: PrincipalId
  tag: Tag
  validity: Validity
  chain: SignedCert[]
  names: SignedCert[]
}

/** The principals a subject stands for; a hash subject only ever matches the requester. */
function subjectKeys(
  subject: Subject,
  requester: PrincipalId,
  names: SignedCert[],
  budget: { steps: number }
): Map<PrincipalId, SignedCert[]> {
  switch (subject.kind) {
    case 'key':
      return new Map([[subject.principal, []]])
    case 'hash':
      return subjectIsKey(subject, requester) ? new Map([[requester, []]]) : new Map()
    case 'name':
      return resolveIn(names, subject.issuer, subject.names, budget, new Set())
    case 'threshold':
      return new Map() // k-of-n subjects need k co-signed requests: not a single requester
  }
}

export async function discoverChain(
  pool: SignedCert[],
  roots: PrincipalId[],
  requester: PrincipalId,
  requested: Tag,
  options: DiscoverOptions = {}
): Promise<DiscoveredGrant> {
  const maxLength = options.maxLength ?? DEFAULT_MAX_CHAIN_LENGTH
  const maxStates = options.maxStates ?? 10_000
  const { auth, names } = await usable(pool, spkiTime(options.now ?? Date.now()), options)
  const byIssuer = new Map<string, SignedCert[]>()
  for (const signed of auth) {
    const list = byIssuer.get(signed.cert.issuer)
    if (list == null) byIssuer.set(signed.cert.issuer, [signed])
    else list.push(signed)
  }
  const budget = { steps: options.maxNameSteps ?? 32 }

  let frontier: State[] = roots.map(root => ({
    principal: root,
    tag: { kind: 'all' },
    validity: {},
    chain: [],
    names: []
  }))
  const seen = new Set<string>()
  let explored = 0
  // breadth first: the first chain found is a shortest one
  for (let depth = 0; depth < maxLength && frontier.length > 0; depth++) {
    const next: State[] = []
    for (const state of frontier) {
      for (const signed of byIssuer.get(state.principal) ?? []) {
        const cert = signed.cert as AuthCert
        const tag = intersectTags(state.tag, cert.tag)
        // a link that cannot contribute to the request is not worth following
        if (tag == null || intersectTags(tag, requested) == null) continue
        const validity = intersectValidity(state.validity, cert.validity)
        for (const [principal, nameProof] of subjectKeys(cert.subject, requester, names, budget)) {
          const reached: State = {
            principal,
            tag,
            validity,
            chain: [...state.chain, signed],
            names: [...state.names, ...nameProof]
          }
          if (principal === requester && tagImplies(tag, requested)) {
            return { proof: { chain: reached.chain, names: reached.names }, tag, validity }
          }
          if (!cert.propagate) continue
          const key = `${principal} ${tagKey(tag)}`
          if (seen.has(key)) continue
          seen.add(key)
          if (++explored > maxStates)
            throw new ChainTooLongError(`chain discovery explored more than ${maxStates} states`)
          next.push(reached)
        }
      }
    }
    frontier = next
  }
  throw new ChainNotFoundError(`no chain of at most ${maxLength} certificates grants the request to ${requester}`)
}

/**
 * The moments (ms) every certificate of a proof is valid, both included: from the latest
 * not-before to the earliest not-after of its authorization and name certificates alike.
 */
export function proofValidityMs(proof: Proof): { from: number; until: number } {
  let from = -Infinity
  let until = Infinity
  for (const signed of [...proof.chain, ...proof.names]) {
    const period = validityMs(signed.cert.validity)
    if (period.from > from) from = period.from
    if (period.until < until) until = period.until
  }
  return { from, until }
}

/**
 * Why `discoverChain` found nothing, when the reason is revocation: if some certificates of the
 * pool fail `options.revocation`, discovery is run again without that check, and if a chain then
 * exists, the revocation error of its first refused certificate is returned (a RevokedCertError
 * names the certificate's hash). Undefined when revocation is not why no chain was found.
 *
 * @example
 * try { await discoverChain(pool, roots, who, tag, opts) } catch (err) { throw (await revokedLinkError(pool, roots, who, tag, opts)) ?? err }
 */
export async function revokedLinkError(
  pool: SignedCert[],
  roots: PrincipalId[],
  requester: PrincipalId,
  requested: Tag,
  options: DiscoverOptions = {}
): Promise<Error | undefined> {
  const check = options.revocation
  if (check == null) return undefined
  const refusal = (signed: SignedCert): Error | undefined => {
    try {
      check(signed)
      return undefined
    } catch (err) {
      return err as Error
    }
  }
  if (!pool.some(signed => refusal(signed) != null)) return undefined
  let found: DiscoveredGrant
  try {
    found = await discoverChain(pool, roots, requester, requested, { ...options, revocation: undefined })
  } catch {
    return undefined
  }
  for (const signed of [...found.proof.chain, ...found.proof.names]) {
    const err = refusal(signed)
    if (err != null) return err
  }
  return undefined
}

/**
 * What a verifier runs on a presented proof: every certificate must verify and be valid now, and
 * a chain granting `requested` to `requester` from one of `roots` must exist among them.
 */
export async function verifyProof(
  proof: Proof,
  roots: PrincipalId[],
  requester: PrincipalId,
  requested: Tag,
  options: DiscoverOptions = {}
): Promise<DiscoveredGrant> {
  const all = [...proof.chain, ...proof.names]
  const maxLength = options.maxLength ?? DEFAULT_MAX_CHAIN_LENGTH
  if (proof.chain.length > maxLength)
    throw new ChainTooLongError(`a proof of ${proof.chain.length} links, at most ${maxLength}`)
  const at = spkiTime(options.now ?? Date.now())
  // a cache for this call at least, so naming a broken link below does not verify again
  const cache = options.cache ?? new VerifiedCertCache()
  // refuse, with the precise reason, rather than silently skip a bad certificate in a proof:
  // validity and revocation first, signatures (the costly check, several at once) last
  for (const [index, signed] of all.entries()) {
    checkValidity(signed.cert.validity, at, index)
    options.revocation?.(signed)
  }
  // a plain chain shown in order and reduced before is a lookup, then the request checked against its tuple
  const reductions = options.reductions
  if (reductions != null && proof.names.length === 0 && proof.chain.length > 0) {
    let tuple: FiveTuple | undefined
    try {
      tuple = await reduceChain(proof.chain, { ...options, cache, reductions })
    } catch (err) {
      // a forged signature is refused as such; a chain out of order is left to discovery
      if ((err as Error).name === 'BadSignatureError') throw err
    }
    if (
      tuple != null &&
      roots.includes(tuple.issuer) &&
      subjectIsKey(tuple.subject, requester) &&
      tagImplies(tuple.tag, requested)
    ) {
      return { proof, tag: tuple.tag, validity: tuple.validity }
    }
  }
  await verifyCerts(all, cache)
  // every signature was checked just now: discovery does not check them again
  try {
    return await discoverChain(all, roots, requester, requested, { ...options, cache, verified: true })
  } catch (err) {
    // a plain chain that leads nowhere: name its first broken link (wrong subject, propagation, tags)
    if ((err as Error).name === 'ChainNotFoundError' && proof.names.length === 0 && proof.chain.length > 1) {
      await reduceChain(proof.chain, { ...options, cache })
    }
    throw err
  }
}
