/**
 * Ed25519 speed, side by side in one run: node:crypto with a KeyObject made once (OpenSSL's
 * floor), libsodium called directly, the back end a Node process installs (node/ed25519.ts:
 * libsodium verifies, OpenSSL signs, keys from its caches) and its OpenSSL verifier,
 * the WebCrypto back end with its cached keys (the browser's path) one at a time and 32 in flight,
 * the WebCrypto path as it was before (the key imported on every call: raw for a verify, PKCS#8 for
 * a signature), and noble. Every contender runs in each of ROUNDS short interleaved rounds (each
 * starting with another contender), so all see the same machine. Rates are operations per second
 * over all rounds; each comparison is the median over rounds of the two rates in the same round.
 */
import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify } from 'node:crypto'
import { createRequire } from 'node:module'
import { hasSodium, nodeEd25519 } from '../node/ed25519.ts'
import { nobleEd25519, PKCS8_PREFIX, SPKI_PREFIX, webCrypto } from '../src/crypto/ed25519.ts'
import { median } from './harness.ts'
import type { Benchmark, BenchResult } from './harness.ts'

/** Many short rounds: on a shared machine, load that comes and goes falls on every contender alike. */
const ROUNDS = 100
/** Operations per contender per round (noble runs a tenth of them). */
const OPS = 20
const IN_FLIGHT = 32
const MESSAGE_BYTES = 200

interface Contender {
  name: string
  op: 'verify' | 'sign'
  ops: number
  /** Runs `count` operations. */
  run(count: number): Promise<void>
  /** Milliseconds of each round. */
  ms: number[]
}

const benchmark: Benchmark = {
  name: 'crypto',
  description:
    'Ed25519 sign and verify: the node back end (libsodium verifies) vs node:crypto and libsodium themselves, WebCrypto cached and per-call import, noble',
  async run(): Promise<BenchResult> {
    const seed = crypto.getRandomValues(new Uint8Array(32))
    const message = crypto.getRandomValues(new Uint8Array(MESSAGE_BYTES))
    const publicKey = await nobleEd25519.publicKey(seed)
    const signature = await nobleEd25519.sign(seed, message)
    const pkcs8 = new Uint8Array([...PKCS8_PREFIX, ...seed])
    const publicObject = createPublicKey({
      key: Buffer.from([...SPKI_PREFIX, ...publicKey]),
      format: 'der',
      type: 'spki'
    })
    const privateObject = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' })
    const node = nodeEd25519()
    const nodeOpenssl = nodeEd25519({ verifier: 'openssl' })
    const sodium = hasSodium
      ? (createRequire(import.meta.url)('sodium-native') as {
          crypto_sign_verify_detached(s: Uint8Array, m: Uint8Array, k: Uint8Array): boolean
        })
      : undefined
    const prepared = await node.prepare(seed)
    const web = await webCrypto()
    if (web == null) throw new Error('this runtime has no WebCrypto Ed25519')
    const subtle = crypto.subtle
    const algorithm = { name: 'Ed25519' }
    const ok = (valid: boolean): void => {
      if (!valid) throw new Error('a signature did not verify')
    }
    const loop = async (count: number, fn: () => Promise<unknown>): Promise<void> => {
      for (let i = 0; i < count; i++) await fn()
    }
    const contenders: Contender[] = [
      {
        name: 'node:crypto.verify, KeyObject made once',
        op: 'verify',
        ops: OPS,
        run: async count => {
          for (let i = 0; i < count; i++) ok(nodeVerify(null, message, publicObject, signature))
        },
        ms: []
      },
      ...(sodium == null
        ? []
        : [
            {
              name: 'libsodium (sodium-native) itself, no checks around it',
              op: 'verify' as const,
              ops: OPS,
              run: async (count: number) => {
                for (let i = 0; i < count; i++) ok(sodium.crypto_sign_verify_detached(signature, message, publicKey))
              },
              ms: [] as number[]
            }
          ]),
      {
        name: 'node back end, OpenSSL verifier (the fallback)',
        op: 'verify',
        ops: OPS,
        run: async count => await loop(count, async () => ok(await nodeOpenssl.verify(publicKey, message, signature))),
        ms: []
      },
      {
        name: 'node back end (installed in Node)',
        op: 'verify',
        ops: OPS,
        run: async count => await loop(count, async () => ok(await node.verify(publicKey, message, signature))),
        ms: []
      },
      {
        name: 'WebCrypto, key imported per call (before)',
        op: 'verify',
        ops: OPS,
        run: async count =>
          await loop(count, async () => {
            const key = await subtle.importKey('raw', publicKey as BufferSource, algorithm, false, ['verify'])
            ok(await subtle.verify(algorithm, key, signature as BufferSource, message as BufferSource))
          }),
        ms: []
      },
      {
        name: 'WebCrypto back end, keys cached (browser)',
        op: 'verify',
        ops: OPS,
        run: async count => await loop(count, async () => ok(await web.verify(publicKey, message, signature))),
        ms: []
      },
      {
        name: `WebCrypto back end, ${IN_FLIGHT} in flight`,
        op: 'verify',
        ops: OPS,
        run: async count => {
          for (let done = 0; done < count; done += IN_FLIGHT) {
            const batch = Array.from({ length: Math.min(IN_FLIGHT, count - done) }, () =>
              web.verify(publicKey, message, signature)
            )
            for (const valid of await Promise.all(batch)) ok(valid)
          }
        },
        ms: []
      },
      {
        name: 'noble (pure JS, cofactorless)',
        op: 'verify',
        ops: OPS / 10,
        run: async count => await loop(count, async () => ok(await nobleEd25519.verify(publicKey, message, signature))),
        ms: []
      },
      {
        name: 'node:crypto.sign, KeyObject made once',
        op: 'sign',
        ops: OPS,
        run: async count => {
          for (let i = 0; i < count; i++) nodeSign(null, message, privateObject)
        },
        ms: []
      },
      {
        name: 'node back end, sign(seed, message)',
        op: 'sign',
        ops: OPS,
        run: async count => await loop(count, async () => await node.sign(seed, message)),
        ms: []
      },
      {
        name: 'node back end, prepared key (a seed signer)',
        op: 'sign',
        ops: OPS,
        run: async count => await loop(count, async () => await prepared.sign(message)),
        ms: []
      },
      {
        name: 'WebCrypto, PKCS#8 imported per call (before)',
        op: 'sign',
        ops: OPS,
        run: async count =>
          await loop(count, async () => {
            const key = await subtle.importKey('pkcs8', pkcs8, algorithm, true, ['sign'])
            await subtle.sign(algorithm, key, message as BufferSource)
          }),
        ms: []
      },
      {
        name: 'WebCrypto back end, key cached (browser)',
        op: 'sign',
        ops: OPS,
        run: async count => await loop(count, async () => await web.sign(seed, message)),
        ms: []
      },
      {
        name: 'noble (pure JS)',
        op: 'sign',
        ops: OPS / 10,
        run: async count => await loop(count, async () => await nobleEd25519.sign(seed, message)),
        ms: []
      }
    ]
    // warm-up: JIT, key caches, the thread pool
    for (const c of contenders) await c.run(50)
    for (let round = 0; round < ROUNDS; round++) {
      // each round starts with a different contender, so none always runs after the same one
      const order = contenders.map((_, i) => contenders[(i + round) % contenders.length])
      for (const c of order) {
        const start = performance.now()
        await c.run(c.ops)
        c.ms.push(performance.now() - start)
      }
    }
    const byName = (name: string): Contender => contenders.find(x => x.name === name) as Contender
    const rate = (c: Contender): number => (c.ops * ROUNDS) / (c.ms.reduce((a, b) => a + b, 0) / 1000)
    /**
     * How fast `c` is against `reference`: the median over rounds of the two rates in the same
     * round, so a burst of load from other processes weighs on one round, not on the figure.
     */
    const against = (c: Contender, reference: Contender): number => {
      return median(c.ms.map((ms, r) => c.ops / ms / (reference.ops / reference.ms[r])))
    }
    const nativeVerify = byName('node:crypto.verify, KeyObject made once')
    const nativeSign = byName('node:crypto.sign, KeyObject made once')
    const rows = contenders.map(c => [c.op, c.name, rate(c), against(c, c.op === 'verify' ? nativeVerify : nativeSign)])
    const nodeVerifier = byName('node back end (installed in Node)')
    const nodeSigner = byName('node back end, sign(seed, message)')
    const preparedSigner = byName('node back end, prepared key (a seed signer)')
    const webVerifier = byName('WebCrypto back end, keys cached (browser)')
    const webSigner = byName('WebCrypto back end, key cached (browser)')
    const beforeVerify = byName('WebCrypto, key imported per call (before)')
    const beforeSign = byName('WebCrypto, PKCS#8 imported per call (before)')
    return {
      setup: { rounds: ROUNDS, opsPerRound: OPS, message: `${MESSAGE_BYTES} bytes`, openssl: process.versions.openssl },
      columns: ['op', 'how', 'per second', '× node:crypto (median of rounds)'],
      rows,
      ratios: {
        'verify: node back end / node:crypto': against(nodeVerifier, nativeVerify),
        'verify: node back end, OpenSSL verifier / node:crypto': against(
          byName('node back end, OpenSSL verifier (the fallback)'),
          nativeVerify
        ),
        'sign: node back end / node:crypto.sign': against(nodeSigner, nativeSign),
        'sign: prepared key / node:crypto.sign': against(preparedSigner, nativeSign),
        'verify: node back end / before': against(nodeVerifier, beforeVerify),
        'sign: prepared key / before': against(preparedSigner, beforeSign),
        'verify: WebCrypto cached / before': against(webVerifier, beforeVerify),
        'sign: WebCrypto cached / before': against(webSigner, beforeSign),
        [`verify: WebCrypto ${IN_FLIGHT} in flight / node:crypto`]: against(
          byName(`WebCrypto back end, ${IN_FLIGHT} in flight`),
          nativeVerify
        )
      }
    }
  }
}

export default benchmark
