/**
 * SPKI verification speed for a depth-5 chain, cold (every signature checked) and cached (a chain
 * or a decision seen before), beside its floors and ceilings measured in the same round: the raw
 * Ed25519 verify rate of each back end, one at a time and on every core this machine lets us use
 * (the main thread and a worker verifying at once: what two cores give when other processes share
 * them), the floor that sets (raw verify × usable cores / 5: no depth-5 chain checked cold can go
 * faster), the CPU a cold chain costs (steady under load, where rates are not), the
 * signature-cache-only path callers had before reductions were cached, the installed back end
 * (libsodium on the calling thread and its helper thread) beside libsodium on the calling thread
 * alone, and a plain Map lookup
 * (what a cached authorization can at best cost). Three rounds; each row gives the median and the
 * range, each ratio the median of the rounds' ratios; the load average is printed with them.
 */
import { loadavg } from 'node:os'
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import { hasSodium, nodeEd25519, processEd25519, processVerifyHelper, sodiumPath } from '../node/ed25519.ts'
import { createPublicKey, verify } from 'node:crypto'
import { ed25519, SPKI_PREFIX, useEd25519, webCrypto } from '../src/crypto/ed25519.ts'
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
/**
 * The cold figures, whose rates swing with other processes' load, are measured in many short
 * rounds instead, each contender in turn, so load that comes and goes falls on all alike; each
 * ratio is the median of the ratios within a round.
 */
const COLD_ROUNDS = 15
const COLD_MS = 80
/** Chains checked at once in the in-flight figures. */
const IN_FLIGHT = 8
/** Each figure is measured for at least this long (and at most MAX_ITERATIONS calls). */
const MEASURE_MS = 400
const MAX_ITERATIONS = 2_000_000
const HOUR = 3_600_000

/** Calls per second of `fn`, after a warm-up, over at least MEASURE_MS. */
async function opsPerSecond(fn: () => unknown, ms = MEASURE_MS): Promise<number> {
  return (await measured(fn, ms)).perSecond
}

/** Calls per second of `fn` and the process's CPU time per call (µs, every thread), over at least `ms`. */
async function measured(fn: () => unknown, ms = MEASURE_MS): Promise<{ perSecond: number; cpuUs: number }> {
  for (let i = 0; i < 20; i++) await fn()
  let iterations = 0
  let batch = 1
  const cpu = process.cpuUsage()
  const start = performance.now()
  let elapsed = 0
  while (elapsed < ms && iterations < MAX_ITERATIONS) {
    for (let i = 0; i < batch; i++) await fn()
    iterations += batch
    batch = Math.min(batch * 2, 4096)
    elapsed = performance.now() - start
  }
  const used = process.cpuUsage(cpu)
  return { perSecond: iterations / (elapsed / 1000), cpuUs: (used.user + used.system) / iterations }
}

/**
 * A worker that verifies one signature over and over (libsodium where it loads, else OpenSSL)
 * while `running` is set in shared memory, counting: run beside the main thread's loop, the two
 * counts are what this machine's cores give right now.
 */
const SPINNER_SOURCE = `
const { workerData } = require('node:worker_threads')
const control = new Int32Array(workerData.buffer)
const { publicKey, message, signature, sodiumPath } = workerData
const verify = sodiumPath != null
  ? (s => () => s.crypto_sign_verify_detached(signature, message, publicKey))(require(sodiumPath))
  : (c => {
      const key = c.createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), publicKey]), format: 'der', type: 'spki' })
      return () => c.verify(null, message, key, signature)
    })(require('node:crypto'))
for (;;) {
  Atomics.wait(control, 0, 0)
  if (control[0] === 2) break
  let count = 0
  while (Atomics.load(control, 0) === 1) { if (!verify()) throw new Error('verify failed'); count++ }
  control[1] = count
  Atomics.store(control, 0, 0)
  Atomics.notify(control, 0)
}
`

interface Spinner {
  /** Verifies per second on the main thread and this worker at once, over COLD_MS. */
  allCores(verifyHere: () => boolean): Promise<number>
  stop(): Promise<void>
}

async function spinner(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  sodium: boolean
): Promise<Spinner> {
  const buffer = new SharedArrayBuffer(8)
  const control = new Int32Array(buffer)
  const worker = new Worker(SPINNER_SOURCE, {
    eval: true,
    workerData: { buffer, publicKey, message, signature, sodiumPath: sodium ? sodiumPath : undefined }
  })
  await new Promise(resolve => worker.once('online', resolve))
  return {
    async allCores(verifyHere) {
      Atomics.store(control, 0, 1)
      Atomics.notify(control, 0)
      let here = 0
      const start = performance.now()
      while (performance.now() - start < COLD_MS) {
        for (let i = 0; i < 16; i++) if (verifyHere()) here++
      }
      const elapsed = performance.now() - start
      Atomics.store(control, 0, 3)
      while (Atomics.load(control, 0) !== 0) {
        const waited = Atomics.waitAsync(control, 0, 3)
        if (waited.async) await waited.value
      }
      return (here + control[1]) / (elapsed / 1000)
    },
    async stop() {
      Atomics.store(control, 0, 2)
      Atomics.notify(control, 0)
      await worker.terminate()
    }
  }
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
  description:
    'depth-5 SPKI chain checks per second, cold and cached, beside raw verify on one and on all usable cores, and a Map lookup',
  async run(): Promise<BenchResult> {
    // node processes run the node back end (node/platform.ts): libsodium where sodium-native loads,
    // on the calling thread and the process's helper thread at once; browsers run WebCrypto
    const before = useEd25519(processEd25519)
    const installed = hasSodium ? 'libsodium + helper thread (installed)' : 'OpenSSL (installed)'
    const alone = 'libsodium, calling thread only'
    const backends: Array<[string, Ed25519]> = [[installed, processEd25519]]
    if (hasSodium) {
      await processVerifyHelper?.start()
      backends.push([alone, nodeEd25519({ helper: false })])
      backends.push(['OpenSSL (libuv pool)', nodeEd25519({ verifier: 'openssl' })])
    }
    const subtle = await webCrypto()
    if (subtle != null) backends.push(['WebCrypto', subtle])
    const load = [loadavg()[0]]
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

    // a certificate's signed bytes are about 340 bytes long: the raw figures verify as much
    const message = crypto.getRandomValues(new Uint8Array(340))
    const lookupKey = ReductionCache.key(chain)
    const map = new Map([[lookupKey, 1]])
    const rawPublicKey = await processEd25519.publicKey(setup.secrets[0])
    const rawSignature = await processEd25519.sign(setup.secrets[0], message)
    // the main thread's half of "all cores at once", in the same library as the worker's
    const here = (library: 'sodium' | 'openssl'): (() => boolean) => {
      if (library === 'sodium') {
        const sodium = createRequire(import.meta.url)('sodium-native') as {
          crypto_sign_verify_detached(s: Uint8Array, m: Uint8Array, k: Uint8Array): boolean
        }
        return () => sodium.crypto_sign_verify_detached(rawSignature, message, rawPublicKey)
      }
      const key = createPublicKey({ key: Buffer.from([...SPKI_PREFIX, ...rawPublicKey]), format: 'der', type: 'spki' })
      return () => verify(null, message, key, rawSignature)
    }
    const spinners: Array<[string, Spinner, () => boolean]> = []
    if (hasSodium)
      spinners.push(['libsodium', await spinner(rawPublicKey, message, rawSignature, true), here('sodium')])
    spinners.push(['OpenSSL', await spinner(rawPublicKey, message, rawSignature, false), here('openssl')])

    const figures: Record<string, number[]> = {}
    const ratios: Record<string, number[]> = {}
    const note = (into: Record<string, number[]>, what: string, value: number): void => {
      ;(into[what] ??= []).push(value)
    }
    const coldInstalled: number[] = []
    try {
      for (let round = 0; round < COLD_ROUNDS; round++) {
        const cold: Record<string, number> = {}
        const floors: Record<string, number> = {}
        for (const [library, spin, verifyHere] of spinners) {
          const one = await opsPerSecond(() => verifyHere(), COLD_MS)
          const all = await spin.allCores(verifyHere)
          floors[library] = all / DEPTH
          note(figures, `${library}: raw verify, one thread`, one)
          note(figures, `${library}: raw verify, main thread + a worker at once`, all)
          note(figures, `${library}: cold floor, raw verify × usable cores / 5`, all / DEPTH)
          note(ratios, `${library}: usable cores (both threads at once / one thread)`, all / one)
        }
        for (const [name, backend] of backends) {
          useEd25519(backend)
          const raw = await opsPerSecond(async () => {
            if (!(await backend.verify(rawPublicKey, message, rawSignature))) throw new Error('verify failed')
          }, COLD_MS)
          const chains = await measured(async () => await reduceChain(chain, { revocation }), COLD_MS)
          const coldWire = await opsPerSecond(async () => {
            const fresh = wire.map(bytes => parseSignedCert(decodeCanonical(bytes)))
            return await reduceChain(fresh, { revocation })
          }, COLD_MS)
          if (name === installed) {
            // several requests at once, as a busy node has them
            const inFlight = await opsPerSecond(
              async () =>
                await Promise.all(Array.from({ length: IN_FLIGHT }, () => reduceChain(chain, { revocation }))),
              COLD_MS
            )
            note(figures, `${name}: depth 5 cold, ${IN_FLIGHT} chains in flight`, inFlight * IN_FLIGHT)
          }
          cold[name] = chains.perSecond
          note(figures, `${name}: raw verify through the back end, one at a time`, raw)
          note(figures, `${name}: depth 5 cold (every signature checked)`, chains.perSecond)
          note(figures, `${name}: depth 5 cold per CPU-second (all threads' CPU)`, 1e6 / chains.cpuUs)
          note(figures, `${name}: depth 5 cold, parsed from wire bytes each time`, coldWire)
          note(ratios, `${name}: depth 5 cold / (raw verify one at a time / 5)`, chains.perSecond / (raw / DEPTH))
        }
        const floor = floors.libsodium ?? floors.OpenSSL
        note(ratios, `${installed}: depth 5 cold / floor (raw × usable cores / 5)`, cold[installed] / floor)
        if (hasSodium) {
          note(ratios, `cold: ${installed} / ${alone}`, cold[installed] / cold[alone])
          note(ratios, `cold: ${installed} / OpenSSL (libuv pool)`, cold[installed] / cold['OpenSSL (libuv pool)'])
        }
        coldInstalled.push(cold[installed])
      }
      const coldNode = median(coldInstalled)
      useEd25519(processEd25519)
      for (let round = 0; round < ROUNDS; round++) {
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
        note(ratios, `depth 5 cached / cold (${installed})`, cached / coldNode)
        note(ratios, 'depth 5 cached / signature cache only', cached / signatureCache)
        note(ratios, 'depth 5 cached / Map lookup by chain key', cached / lookup)
        note(ratios, 'authorize cached / Map lookup of a ready key', authorizeStore / plainLookup)
      }
    } finally {
      useEd25519(before)
      for (const [, spin] of spinners) await spin.stop()
    }
    load.push(loadavg()[0])
    return {
      setup: {
        backends: backends.map(([name]) => name).join(', '),
        loadAverage: load.map(x => x.toFixed(2)).join(' → '),
        depth: DEPTH,
        rounds: `${COLD_ROUNDS} of ${COLD_MS} ms a figure (cold), ${ROUNDS} of ${MEASURE_MS} ms (cached)`,
        revocation: 'a CRL from the root is consulted on every check',
        ...(processVerifyHelper == null
          ? {}
          : {
              helperThread: `${processVerifyHelper.counts.batches} batches, ${processVerifyHelper.counts.byHelper} signatures checked by the helper, given up ${processVerifyHelper.counts.givenUp} times`
            })
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
