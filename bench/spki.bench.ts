/**
 * SPKI verification speed for a depth-5 chain, cold (every signature checked) and cached (a chain
 * or a decision seen before), beside its floors and ceilings measured in the same round: the raw
 * Ed25519 verify rate of the back end in use (a depth-5 chain checked one signature at a time
 * cannot beat a fifth of it), the signature-cache-only path callers had before reductions were
 * cached, and a plain Map lookup (what a cached authorization can at best cost). Three rounds;
 * each row gives the median and the range, each ratio the median of the rounds' ratios.
 */
import { processEd25519 } from '../node/ed25519.ts'
import { ed25519, useEd25519, webCrypto } from '../src/crypto/ed25519.ts'
import { principalId } from '../src/crypto/principal.ts'
import { parseSignedCert, signCert, signedCertToSexp, VerifiedCertCache } from '../src/spki/cert.ts'
import { revocationIndex, signCrl } from '../src/spki/crl.ts'
import { reduceChain, ReductionCache } from '../src/spki/reduce.ts'
import { decodeCanonical, encodeCanonical } from '../src/spki/sexp.ts'
import { localSpki, tag } from '../test/spki/fixtures.ts'
import { median } from './harness.ts'
import type { Benchmark, BenchResult } from './harness.ts'
import type { PrincipalId } from '../src/crypto/principal.ts'
import type { Ed25519 } from '../src/crypto/ed25519.ts'
import type { SignedCert } from '../src/spki/cert.ts'
import type { Spki } from '../src/spki/service.ts'

const DEPTH = 5
const ROUNDS = 3
/** Each figure is measured for at least this long (and at most MAX_ITERATIONS calls). */
const MEASURE_MS = 400
const MAX_ITERATIONS = 2_000_000
const HOUR = 3_600_000

/** Calls per second of `fn`, after a warm-up, over at least MEASURE_MS. */
async function opsPerSecond(fn: () => unknown): Promise<number> {
  for (let i = 0; i < 20; i++) await fn()
  let iterations = 0
  let batch = 1
  const start = performance.now()
  let elapsed = 0
  while (elapsed < MEASURE_MS && iterations < MAX_ITERATIONS) {
    for (let i = 0; i < batch; i++) await fn()
    iterations += batch
    batch = Math.min(batch * 2, 4096)
    elapsed = performance.now() - start
  }
  return iterations / (elapsed / 1000)
}

interface Setup {
  secrets: Uint8Array[]
  ids: PrincipalId[]
  chain: SignedCert[]
  wire: Uint8Array[]
}

/** root → k1 → … → k5, each link one list element narrower, valid for a day. */
async function depthFiveChain(): Promise<Setup> {
  const backend = await ed25519()
  const secrets = Array.from({ length: DEPTH + 1 }, () => crypto.getRandomValues(new Uint8Array(32)))
  const ids = await Promise.all(secrets.map(async s => principalId(await backend.publicKey(s))))
  const validity = { notBefore: spkiTimeOf(Date.now() - HOUR), notAfter: spkiTimeOf(Date.now() + 24 * HOUR) }
  const chain: SignedCert[] = []
  for (let i = 0; i < DEPTH; i++) {
    const extra = Array.from({ length: i }, (_, j) => `l${j}`).join(' ')
    chain.push(
      await signCert(
        {
          type: 'auth',
          issuer: ids[i],
          subject: { kind: 'key', principal: ids[i + 1] },
          propagate: i < DEPTH - 1,
          tag: tag(`(cyberspace (mailbox (send (* set alice bob carol) ${extra})))`),
          validity
        },
        secrets[i]
      )
    )
  }
  return { secrets, ids, chain, wire: chain.map(c => encodeCanonical(signedCertToSexp(c))) }
}

function spkiTimeOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', '_')
}

/** An SPKI service (no network: only its store, ACL and CRLs are used) trusting `root`. */
async function service(setup: Setup): Promise<Spki> {
  const node = await localSpki()
  await node.addAclEntry(setup.ids[0], tag('(cyberspace)'))
  for (const signed of setup.chain) await node.addCert(signed)
  return node
}

const benchmark: Benchmark = {
  name: 'spki',
  description: 'depth-5 SPKI chain checks per second, cold and cached, beside raw verify and a Map lookup',
  async run(): Promise<BenchResult> {
    // node processes run the node:crypto back end (node/platform.ts); browsers run WebCrypto
    const before = useEd25519(processEd25519)
    const backends: Array<[string, Ed25519]> = [['node:crypto', processEd25519]]
    const subtle = await webCrypto()
    if (subtle != null) backends.push(['WebCrypto', subtle])
    const setup = await depthFiveChain()
    const { chain, ids, wire } = setup
    const requested = tag('(cyberspace (mailbox (send alice l0 l1 l2 l3)))')
    // a CRL from the root naming some other certificate: every check consults a real index
    const crl = await signCrl(
      {
        issuer: ids[0],
        revoked: [crypto.getRandomValues(new Uint8Array(32))],
        validity: { notBefore: spkiTimeOf(Date.now() - HOUR), notAfter: spkiTimeOf(Date.now() + HOUR) }
      },
      setup.secrets[0]
    )
    const revocation = revocationIndex([crl])
    const node = await service(setup)
    await node.addCrl(crl)
    const proof = { chain: wire.map(bytes => parseSignedCert(decodeCanonical(bytes))), names: [] }

    const message = crypto.getRandomValues(new Uint8Array(100))
    const lookupKey = ReductionCache.key(chain)
    const map = new Map([[lookupKey, 1]])

    const figures: Record<string, number[]> = {}
    const ratios: Record<string, number[]> = {}
    const note = (into: Record<string, number[]>, what: string, value: number): void => {
      ;(into[what] ??= []).push(value)
    }
    try {
      for (let round = 0; round < ROUNDS; round++) {
        let coldNode = Number.NaN
        for (const [name, backend] of backends) {
          useEd25519(backend)
          const publicKey = await backend.publicKey(setup.secrets[0])
          const signature = await backend.sign(setup.secrets[0], message)
          const raw = await opsPerSecond(async () => {
            if (!(await backend.verify(publicKey, message, signature))) throw new Error('verify failed')
          })
          const cold = await opsPerSecond(async () => await reduceChain(chain, { revocation }))
          const coldWire = await opsPerSecond(async () => {
            const fresh = wire.map(bytes => parseSignedCert(decodeCanonical(bytes)))
            return await reduceChain(fresh, { revocation })
          })
          note(figures, `${name}: raw verify, one at a time`, raw)
          note(figures, `${name}: cold floor, raw verify / 5`, raw / DEPTH)
          note(figures, `${name}: depth 5 cold (every signature checked)`, cold)
          note(figures, `${name}: depth 5 cold, parsed from wire bytes each time`, coldWire)
          note(ratios, `${name}: depth 5 cold / (raw verify / 5)`, cold / (raw / DEPTH))
          if (name === 'node:crypto') coldNode = cold
        }
        useEd25519(processEd25519)
        const signatures = new VerifiedCertCache()
        const signatureCache = await opsPerSecond(
          async () => await reduceChain(chain, { cache: signatures, revocation })
        )
        const reductions = new ReductionCache()
        const cached = await opsPerSecond(async () => await reduceChain(chain, { reductions, revocation }))
        const authorizeStore = await opsPerSecond(async () => await node.authorize(ids[DEPTH], requested))
        const authorizeProof = await opsPerSecond(async () => await node.authorize(ids[DEPTH], requested, { proof }))
        const lookup = await opsPerSecond(() => map.get(ReductionCache.key(chain)))
        const plainLookup = await opsPerSecond(() => map.get(lookupKey))
        note(figures, 'depth 5, signature cache only (the old cached path)', signatureCache)
        note(figures, 'depth 5 cached (ReductionCache, revocation checked)', cached)
        note(figures, 'authorize from the store, cached decision', authorizeStore)
        note(figures, 'authorize with a shown proof, cached decision', authorizeProof)
        note(figures, 'Map lookup by the chain key (key built each time)', lookup)
        note(figures, 'Map lookup of a ready key', plainLookup)
        note(ratios, 'depth 5 cached / cold (node:crypto)', cached / coldNode)
        note(ratios, 'depth 5 cached / signature cache only', cached / signatureCache)
        note(ratios, 'depth 5 cached / Map lookup by chain key', cached / lookup)
        note(ratios, 'authorize cached / Map lookup of a ready key', authorizeStore / plainLookup)
      }
    } finally {
      useEd25519(before)
    }
    return {
      setup: {
        backends: backends.map(([name]) => name).join(' and '),
        depth: DEPTH,
        rounds: ROUNDS,
        measureMs: MEASURE_MS,
        revocation: 'a CRL from the root is consulted on every check'
      },
      columns: ['what', 'per second (median)', 'min', 'max'],
      rows: Object.entries(figures).map(([what, values]) => [
        what,
        median(values),
        Math.min(...values),
        Math.max(...values)
      ]),
      ratios: Object.fromEntries(Object.entries(ratios).map(([what, values]) => [what, median(values)]))
    }
  }
}

export default benchmark
