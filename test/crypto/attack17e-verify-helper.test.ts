/**
 * attack17e: the attacker's and the crash's view of libsodium's helper thread (node/verify-helper.ts).
 * Whatever the interleaving — the helper racing the caller for the last signature of batches of two,
 * a helper given up mid-signature, one ending when idle as a batch is published, one terminated or
 * out of memory in the middle of a batch, back ends sharing one helper, worker threads each with
 * their own, a process that exits while batches run — every answer is the calling thread's alone
 * (nodeEd25519({ helper: false })) and noble's, with a forged signature at every position, messages
 * of 0 bytes and at the edge of the shared memory (64 KiB), and items the strict pre-checks refuse.
 */
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { ed25519 as noble } from '@noble/curves/ed25519.js'
import { hasSodium, nodeEd25519, processEd25519, sodiumPath } from '../../node/ed25519.ts'
import { MAX_BATCH, VerifyHelper } from '../../node/verify-helper.ts'
import type { SignedMessage } from '../../src/crypto/ed25519.ts'

const alone = nodeEd25519({ helper: false })
/** 64 KiB of shared memory less its header (63 Int32 words) and one item's fixed part (100 bytes). */
const FITS_ALONE = 65_536 - 4 * 63 - 100
/** Two of these fill the shared memory exactly; one byte more and each batch holds one. */
const FITS_TWO = FITS_ALONE / 2 - 50
const SIZES = [0, 1, 64, 300, 4096, FITS_TWO, FITS_TWO + 1, FITS_ALONE, FITS_ALONE + 1, 70_000]

interface Case {
  item: SignedMessage
  expected: boolean
  /** Honest or with one flipped bit: noble (strict) must give the same answer. */
  plain: boolean
}

const flip = (bytes: Uint8Array, bit: number): Uint8Array => {
  const out = bytes.slice()
  out[(bit >> 3) % out.length] ^= 1 << (bit & 7)
  return out
}

async function signed(size: number): Promise<SignedMessage> {
  const secret = randomBytes(32)
  const message = new Uint8Array(randomBytes(size))
  return { publicKey: await alone.publicKey(secret), message, signature: await alone.sign(secret, message) }
}

/** An honest case and the forged ones made from it (`kind` picks which). */
async function forgedCase(kind: number, size: number): Promise<Case> {
  const honest = await signed(size)
  const bit = Math.floor(Math.random() * 256)
  switch (kind % 6) {
    case 0: // a bit of R
      return { item: { ...honest, signature: flip(honest.signature, bit) }, expected: false, plain: true }
    case 1: // a low bit of S (S stays below L)
      return { item: { ...honest, signature: flip(honest.signature, 256 + (bit % 128)) }, expected: false, plain: true }
    case 2: // a bit of the message (an empty one: a byte added)
      return {
        item: { ...honest, message: size === 0 ? Uint8Array.of(0) : flip(honest.message, bit) },
        expected: false,
        plain: true
      }
    case 3: // a bit of the key (often no point at all)
      return { item: { ...honest, publicKey: flip(honest.publicKey, bit) }, expected: false, plain: true }
    case 4: {
      // S + L: refused by the strict pre-checks, so never shared with the helper
      let s = 0n
      for (let b = 63; b >= 32; b--) s = (s << 8n) | BigInt(honest.signature[b])
      s += noble.Point.Fn.ORDER
      const signature = honest.signature.slice()
      for (let b = 32; b < 64; b++, s >>= 8n) signature[b] = Number(s & 0xffn)
      return { item: { ...honest, signature }, expected: false, plain: false }
    }
    default: {
      // the identity as key, R the identity and S = 0: the cofactorless equation holds, the strict
      // rules refuse the small-order key before either thread sees it
      const identity = new Uint8Array(32)
      identity[0] = 1
      const signature = new Uint8Array(64)
      signature.set(identity)
      return { item: { publicKey: identity, message: honest.message, signature }, expected: false, plain: false }
    }
  }
}

/** A pool of honest and forged cases over every size, each checked against the caller alone and noble. */
async function pool(honestCount: number, forgedCount: number): Promise<{ honest: Case[]; forged: Case[] }> {
  const honest: Case[] = []
  const forged: Case[] = []
  for (let i = 0; i < honestCount; i++) {
    honest.push({ item: await signed(SIZES[i % SIZES.length]), expected: true, plain: true })
  }
  for (let i = 0; i < forgedCount; i++) forged.push(await forgedCase(i, SIZES[(i * 7) % SIZES.length]))
  const all = [...honest, ...forged]
  assert.deepEqual(
    await alone.verifyMany(all.map(c => c.item)),
    all.map(c => c.expected)
  )
  for (const c of all.filter(c => c.plain)) {
    const { publicKey, message, signature } = c.item
    let ok = false
    try {
      ok = noble.verify(signature, message, publicKey, { zip215: false })
    } catch {}
    assert.equal(ok, c.expected, 'noble disagrees with the calling thread alone')
  }
  return { honest, forged }
}

const pick = <T>(from: T[]): T => from[Math.floor(Math.random() * from.length)]

/** `size` honest cases from the pool with forged ones at `forgedAt`. */
function batchOf(cases: { honest: Case[]; forged: Case[] }, size: number, forgedAt: Set<number>): Case[] {
  return Array.from({ length: size }, (_, i) => pick(forgedAt.has(i) ? cases.forged : cases.honest))
}

async function check(backend: ReturnType<typeof nodeEd25519>, batch: Case[], what: string): Promise<void> {
  assert.deepEqual(
    await backend.verifyMany(batch.map(c => c.item)),
    batch.map(c => c.expected),
    what
  )
}

/** The VerifyHelper's current thread (a private field, reached for the crash tests only). */
const threadOf = (helper: VerifyHelper): Worker | undefined =>
  (helper as unknown as { helper?: { worker: Worker } }).helper?.worker

describe('attack17e: the verify helper thread under races, forgeries and crashes', function () {
  let cases: { honest: Case[]; forged: Case[] }

  before(async function () {
    if (!hasSodium) this.skip()
    cases = await pool(40, 60)
  })

  it('answers as the calling thread alone with a forged signature at every position of batches of 2 to 70', async () => {
    const helper = new VerifyHelper(sodiumPath!)
    try {
      assert.equal(await helper.start(), true)
      const backend = nodeEd25519({ helper })
      for (const size of [2, 3, 30, MAX_BATCH, MAX_BATCH + 1, 2 * MAX_BATCH, 2 * MAX_BATCH + 1, 70]) {
        for (let at = 0; at < size; at++) {
          await check(backend, batchOf(cases, size, new Set([at])), `size ${size}, forged at ${at}`)
          // and every signature but that one forged
          const others = new Set(Array.from({ length: size }, (_, i) => i).filter(i => i !== at))
          if (at % 5 === 0) await check(backend, batchOf(cases, size, others), `size ${size}, honest at ${at} only`)
        }
      }
      assert.ok(helper.counts.batches > 0)
    } finally {
      await helper.stop()
    }
  })

  it('answers right while the helper and the caller race for the last signature of thousands of small batches', async () => {
    // batches of two and three: each thread claims from a word the other just moved (the case a
    // claim from a stale reading of the word would break)
    const helper = new VerifyHelper(sodiumPath!)
    try {
      assert.equal(await helper.start(), true)
      const backend = nodeEd25519({ helper })
      const small = { honest: cases.honest.filter(c => c.item.message.length <= 300), forged: cases.forged }
      const deadline = Date.now() + 8_000
      for (let round = 0; round < 3_000 && Date.now() < deadline; round++) {
        const size = 2 + (round % 2)
        const forgedAt = new Set([round % size, ...(round % 7 === 0 ? [(round + 1) % size] : [])])
        await check(backend, batchOf(small, size, forgedAt), `round ${round}`)
      }
      assert.ok(helper.counts.byHelper > 0, 'the helper took no signature')
    } finally {
      await helper.stop()
    }
  })

  it('answers right with random mixes of sizes, forgeries and strict refusals, through helpers given up, idle or waiting', async () => {
    const configs = [{}, { waitMs: 0 }, { idleMs: 1 }]
    for (const options of configs) {
      let helper = new VerifyHelper(sodiumPath!, options)
      let helpers = 1
      try {
        await helper.start()
        let backend = nodeEd25519({ helper })
        const deadline = Date.now() + 1_500
        for (let round = 0; round < 150 && Date.now() < deadline; round++) {
          // a given-up helper is not started again within its back-off: take a new one (bounded)
          if (helper.counts.givenUp > 0 && !helper.running && helpers < 15) {
            await helper.stop()
            helper = new VerifyHelper(sodiumPath!, options)
            helpers++
            backend = nodeEd25519({ helper })
          }
          const size = 2 + Math.floor(Math.random() * 69)
          const forgedAt = new Set(Array.from({ length: 1 + (round % 4) }, () => Math.floor(Math.random() * size)))
          await check(backend, batchOf(cases, size, forgedAt), `${JSON.stringify(options)} round ${round}`)
          if (round % 10 === 0) await new Promise(resolve => setTimeout(resolve, 2))
        }
      } finally {
        await helper.stop()
      }
    }
  })

  it('answers right when several back ends share one helper and their calls interleave', async () => {
    const helper = new VerifyHelper(sodiumPath!)
    try {
      await helper.start()
      const backends = [nodeEd25519({ helper }), nodeEd25519({ helper }), nodeEd25519({ helper })]
      for (let round = 0; round < 20; round++) {
        const batches = backends.flatMap((backend, b) =>
          Array.from({ length: 4 }, (_, k) => {
            const size = 2 + ((round + b + k) % 40)
            return { backend, batch: batchOf(cases, size, new Set([(round + k) % size])) }
          })
        )
        await Promise.all(batches.map(({ backend, batch }, i) => check(backend, batch, `round ${round} call ${i}`)))
      }
    } finally {
      await helper.stop()
    }
  })

  it('answers right when the helper thread is terminated in the middle of a batch', async () => {
    let terminatedRunning = 0
    for (let round = 0; round < 8; round++) {
      const helper = new VerifyHelper(sodiumPath!)
      try {
        assert.equal(await helper.start(), true)
        const backend = nodeEd25519({ helper })
        // the thread stops at some point of the batch (terminate is not immediate): the caller
        // either takes everything, or waits for a signature the thread took, then gives it up
        const stopping = threadOf(helper)!.terminate()
        await check(backend, batchOf(cases, MAX_BATCH, new Set([round, 30 - round])), `round ${round}`)
        await check(backend, batchOf(cases, 20, new Set([round])), `round ${round}, after`)
        await stopping
        terminatedRunning++
        assert.deepEqual(await alone.verifyMany(cases.honest.slice(0, 2).map(c => c.item)), [true, true])
      } finally {
        await helper.stop()
      }
    }
    assert.equal(terminatedRunning, 8)
  })

  it('a helper thread that runs out of memory (16 MB) while checking is given up, and the answers stay right', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'attack17e-'))
    try {
      // a stand-in for libsodium whose verify fills the helper's heap
      const oom = join(dir, 'oom.cjs')
      writeFileSync(
        oom,
        'module.exports = { crypto_sign_verify_detached() { const a = []; for (;;) a.push(new Array(1e5).fill(1.5)) } }'
      )
      const helper = new VerifyHelper(oom)
      assert.equal(await helper.start(), true)
      const backend = nodeEd25519({ helper })
      for (let round = 0; round < 50 && helper.counts.givenUp === 0; round++) {
        await check(backend, batchOf(cases, MAX_BATCH, new Set([round % MAX_BATCH])), `round ${round}`)
        await new Promise(resolve => setTimeout(resolve, 5))
      }
      assert.equal(helper.counts.givenUp, 1, 'the helper that ran out of memory was not given up')
      assert.equal(helper.counts.byHelper, 0, 'an answer was taken from a helper that never answered')
      assert.equal(helper.running, false)
      // within the back-off every batch is checked here, and no thread is started
      const batches = helper.counts.batches
      await check(backend, batchOf(cases, 10, new Set([3])), 'after')
      assert.equal(helper.counts.batches, batches)

      // one that runs out of memory as it starts is given up before any batch
      const atStart = join(dir, 'oom-at-start.cjs')
      writeFileSync(atStart, 'const a = []; for (;;) a.push(new Array(1e5).fill(1.5))')
      const never = new VerifyHelper(atStart)
      assert.equal(await never.start(), false)
      assert.equal(never.counts.givenUp, 1)
      await check(nodeEd25519({ helper: never }), batchOf(cases, 10, new Set([0])), 'never started')
      assert.equal(never.counts.batches, 0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('worker threads each verify with a helper of their own, right while the main thread does too, and one terminated mid-run', async () => {
    const url = new URL('../../node/ed25519.ts', import.meta.url).href
    const source = `
      const { parentPort, workerData } = require('node:worker_threads')
      ;(async () => {
        const { processEd25519, processVerifyHelper, nodeEd25519 } = await import(workerData.url)
        const alone = nodeEd25519({ helper: false })
        const items = []
        for (let i = 0; i < 40; i++) {
          const secret = new Uint8Array(32).fill(i + 1)
          const message = new Uint8Array(i * 97)
          const signature = await processEd25519.sign(secret, message)
          if (i % 3 === 1) signature[i % 64] ^= 1
          items.push({ publicKey: await processEd25519.publicKey(secret), message, signature })
        }
        let mismatches = 0
        let rounds = 0
        const deadline = Date.now() + workerData.ms
        while (rounds < 400 && Date.now() < deadline) {
          const from = rounds % 20
          const batch = items.slice(from, from + 2 + (rounds % 19))
          const [got, want] = [await processEd25519.verifyMany(batch), await alone.verifyMany(batch)]
          if (JSON.stringify(got) !== JSON.stringify(want)) mismatches++
          if (++rounds === 5) parentPort.postMessage({ progress: true })
        }
        parentPort.postMessage({ mismatches, rounds, counts: processVerifyHelper.counts })
      })()
    `
    const start = (ms: number): { worker: Worker; progress: Promise<void>; done: Promise<Record<string, unknown>> } => {
      const worker = new Worker(source, { eval: true, workerData: { url, ms } })
      let progressed: () => void = () => {}
      const progress = new Promise<void>(resolve => (progressed = resolve))
      const done = new Promise<Record<string, unknown>>((resolve, reject) => {
        worker.on('message', message => (message.progress === true ? progressed() : resolve(message)))
        worker.once('error', reject)
        worker.once('exit', code => reject(new Error(`worker exited with ${code}`)))
      })
      return { worker, progress, done }
    }
    const workers = [start(3_000), start(3_000)]
    const doomed = start(60_000)
    const helper = new VerifyHelper(sodiumPath!)
    try {
      const backend = nodeEd25519({ helper })
      await doomed.progress
      const stopped = doomed.worker.terminate()
      doomed.done.catch(() => {})
      for (let round = 0; round < 60; round++) {
        await check(backend, batchOf(cases, 2 + (round % 40), new Set([round % 2])), `main round ${round}`)
        await new Promise(resolve => setImmediate(resolve))
      }
      assert.equal(await stopped, 1)
      for (const { done } of workers) {
        const result = await done
        assert.equal(result.mismatches, 0, 'a worker thread got an answer its calling thread alone does not give')
        assert.ok((result.rounds as number) > 0)
      }
    } finally {
      await helper.stop()
      await Promise.all([...workers, doomed].map(({ worker }) => worker.terminate()))
    }
  })

  it('a process exits at once and cleanly while batches run on it, on its worker threads, and with helpers given up', () => {
    const dir = mkdtempSync(join(tmpdir(), 'attack17e-'))
    const file = join(dir, 'exit.mjs')
    const url = new URL('../../node/ed25519.ts', import.meta.url).href
    writeFileSync(
      file,
      `
      import { Worker } from 'node:worker_threads'
      const { processEd25519, sodiumPath, nodeEd25519 } = await import(${JSON.stringify(url)})
      const { VerifyHelper } = await import(${JSON.stringify(new URL('../../node/verify-helper.ts', import.meta.url).href)})
      const secret = new Uint8Array(32).fill(9)
      const message = new Uint8Array(5000)
      const item = { publicKey: await processEd25519.publicKey(secret), message, signature: await processEd25519.sign(secret, message) }
      const worker = new Worker(\`
        const { workerData } = require('node:worker_threads')
        import(workerData.url).then(async ({ processEd25519 }) => {
          for (;;) await processEd25519.verifyMany(Array(31).fill(workerData.item))
        })
      \`, { eval: true, workerData: { url: ${JSON.stringify(url)}, item } })
      const eager = nodeEd25519({ helper: new VerifyHelper(sodiumPath, { waitMs: 0 }) })
      let batches = 0
      setTimeout(() => { console.log(JSON.stringify({ batches })); process.exit(0) }, 500)
      for (;;) {
        const got = await (batches % 2 ? eager : processEd25519).verifyMany(Array(31).fill(item))
        if (!got.every(ok => ok)) process.exit(3)
        batches++
        await new Promise(resolve => setImmediate(resolve))
      }
    `
    )
    try {
      const run = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 30_000 })
      assert.equal(run.error, undefined, 'the process did not exit')
      assert.equal(run.signal, null, run.stderr)
      assert.equal(run.status, 0, run.stderr)
      assert.ok(JSON.parse(run.stdout).batches > 0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('the process back end answers right for forged batches too', async () => {
    for (let round = 0; round < 30; round++) {
      await check(processEd25519, batchOf(cases, 2 + round, new Set([round % (2 + round)])), `round ${round}`)
    }
  })
})
