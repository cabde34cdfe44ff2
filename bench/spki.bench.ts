/**
 * SPKI verification speed: raw Ed25519 verifies per second with WebCrypto and with noble, and
 * 5-tuple chain reduction per second for chains of depth 1 to 8, cold (every signature checked)
 * and with a warm verified-certificate cache, all measured in one run.
 */
import { ed25519, nobleEd25519, webCrypto } from '../src/crypto/ed25519.ts'
import { principalId } from '../src/crypto/principal.ts'
import { signCert, VerifiedCertCache } from '../src/spki/cert.ts'
import { reduceChain } from '../src/spki/reduce.ts'
import { parseAdvanced } from '../src/spki/sexp.ts'
import { parseTag } from '../src/spki/tag.ts'
import type { Benchmark, BenchResult } from './harness.ts'
import type { Ed25519 } from '../src/crypto/ed25519.ts'
import type { SignedCert } from '../src/spki/cert.ts'

const RAW_VERIFIES = 2000
const CHAIN_ITERATIONS = 200
const DEPTHS = [1, 2, 3, 4, 5, 6, 7, 8]

async function opsPerSecond(iterations: number, fn: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(50, iterations); i++) await fn() // warm up the JIT
  const start = performance.now()
  for (let i = 0; i < iterations; i++) await fn()
  return iterations / ((performance.now() - start) / 1000)
}

async function rawVerifyRate(backend: Ed25519): Promise<number> {
  const secret = crypto.getRandomValues(new Uint8Array(32))
  const pub = await backend.publicKey(secret)
  const message = crypto.getRandomValues(new Uint8Array(100))
  const sig = await backend.sign(secret, message)
  return await opsPerSecond(RAW_VERIFIES, async () => {
    if (!(await backend.verify(pub, message, sig))) throw new Error('verify failed')
  })
}

async function chainOfDepth(depth: number): Promise<SignedCert[]> {
  const backend = await ed25519()
  const secrets = Array.from({ length: depth + 1 }, () => crypto.getRandomValues(new Uint8Array(32)))
  const ids = await Promise.all(secrets.map(async s => principalId(await backend.publicKey(s))))
  const chain: SignedCert[] = []
  for (let i = 0; i < depth; i++) {
    chain.push(
      await signCert(
        {
          type: 'auth',
          issuer: ids[i],
          subject: { kind: 'key', principal: ids[i + 1] },
          propagate: i < depth - 1,
          // each link narrows: one more list element than the link before
          tag: parseTag(
            parseAdvanced(
              `(cyberspace (mailbox (send (* set alice bob carol) ${Array.from({ length: i }, (_, j) => `l${j}`).join(' ')})))`
            )
          ),
          validity: {}
        },
        secrets[i]
      )
    )
  }
  return chain
}

const benchmark: Benchmark = {
  name: 'spki',
  description: 'Ed25519 verify rate (WebCrypto vs noble) and chain reduction per second, cold vs cached',
  async run(): Promise<BenchResult> {
    const native = await webCrypto()
    const nobleRate = await rawVerifyRate(nobleEd25519)
    const nativeRate = native == null ? Number.NaN : await rawVerifyRate(native)
    const rows: Array<Array<string | number>> = [
      ['raw verify, WebCrypto', '-', nativeRate, '-'],
      ['raw verify, noble', '-', nobleRate, '-']
    ]
    const ratios: Record<string, number> = { 'raw verify WebCrypto / noble': nativeRate / nobleRate }
    for (const depth of DEPTHS) {
      const chain = await chainOfDepth(depth)
      const cold = await opsPerSecond(CHAIN_ITERATIONS, async () => await reduceChain(chain))
      const cache = new VerifiedCertCache()
      const cached = await opsPerSecond(CHAIN_ITERATIONS, async () => await reduceChain(chain, { cache }))
      rows.push([`chain reduction, depth ${depth}`, depth, cold, cached])
      if (depth === 1 || depth === 8) ratios[`depth ${depth} cached / cold`] = cached / cold
    }
    return {
      setup: {
        backend: (await ed25519()).name,
        rawVerifies: RAW_VERIFIES,
        chainIterations: CHAIN_ITERATIONS,
        message: '100 bytes'
      },
      columns: ['what', 'depth', 'per second (cold)', 'per second (cached)'],
      rows,
      ratios
    }
  }
}

export default benchmark
