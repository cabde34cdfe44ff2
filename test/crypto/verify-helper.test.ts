/**
 * The helper thread of libsodium's verifyMany (node/verify-helper.ts): whatever it does — takes
 * signatures, sleeps, is stopped, ends when idle, is given up when it does not answer in time —
 * every answer is the one the calling thread alone gives, forged and oversized items included; and
 * it never keeps a process alive.
 */
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ed25519 as noble } from '@noble/curves/ed25519.js'
import { hasSodium, nodeEd25519, processEd25519, processVerifyHelper, verifyHelper } from '../../node/ed25519.ts'
import { MAX_BATCH, VerifyHelper } from '../../node/verify-helper.ts'
import type { SignedMessage } from '../../src/crypto/ed25519.ts'

/** `count` items, every third forged (a flipped bit in signature, message or key by turns). */
function items(count: number, messageBytes = 300): { items: SignedMessage[]; expected: boolean[] } {
  const out: SignedMessage[] = []
  const expected: boolean[] = []
  for (let i = 0; i < count; i++) {
    const secret = randomBytes(32)
    const publicKey = noble.getPublicKey(secret)
    const message = new Uint8Array(randomBytes(messageBytes))
    const signature = noble.sign(message, secret)
    const forged = i % 3 === 1
    if (forged) [signature, message, publicKey][i % 9 === 1 ? 0 : i % 9 === 4 ? 1 : 2][i % 32] ^= 1
    out.push({ publicKey, message, signature })
    expected.push(!forged)
  }
  return { items: out, expected }
}

const waitFor = async (what: string, done: () => boolean, ms = 10_000): Promise<void> => {
  const deadline = Date.now() + ms
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

describe('ed25519 verify helper thread (node)', function () {
  before(function () {
    if (!hasSodium) this.skip()
  })

  it('answers as the calling thread alone for batches of 1 to 70 signatures, the helper taking some', async () => {
    const helper = verifyHelper()!
    try {
      assert.equal(await helper.start(), true)
      const backend = nodeEd25519({ helper })
      const alone = nodeEd25519({ helper: false })
      const { items: all, expected } = items(2 * MAX_BATCH + 8)
      assert.deepEqual(await alone.verifyMany(all), expected)
      // bounded: the helper takes signatures once it is awake, which a few batches make sure of
      for (let round = 0; round < 20 && (round < 3 || helper.counts.byHelper === 0); round++) {
        for (let size = 1; size <= all.length; size += 7) {
          assert.deepEqual(await backend.verifyMany(all.slice(0, size)), expected.slice(0, size), `size ${size}`)
        }
      }
      assert.ok(helper.counts.byHelper > 0, 'the helper thread checked none of the signatures')
      assert.ok(helper.counts.batches > 0)
    } finally {
      await helper.stop()
    }
  })

  it('checks here what does not fit in shared memory, and refuses what the strict rules refuse', async () => {
    const helper = verifyHelper()!
    try {
      await helper.start()
      const backend = nodeEd25519({ helper })
      const small = items(6)
      const big = items(3, 70_000)
      const mixed = [small.items[0], big.items[0], small.items[1], big.items[1], ...small.items.slice(2), big.items[2]]
      const expected = [small.expected[0], big.expected[0], small.expected[1], big.expected[1]]
      expected.push(...small.expected.slice(2), big.expected[2])
      // a non-canonical S (S + L): the strict rules refuse it before either thread sees it
      const L = noble.Point.Fn.ORDER
      const honest = small.items[0]
      let s = 0n
      for (let b = 63; b >= 32; b--) s = (s << 8n) | BigInt(honest.signature[b])
      s += L
      const sig = honest.signature.slice()
      for (let b = 32; b < 64; b++, s >>= 8n) sig[b] = Number(s & 0xffn)
      mixed.push({ ...honest, signature: sig })
      expected.push(false)
      for (let round = 0; round < 5; round++) assert.deepEqual(await backend.verifyMany(mixed), expected)
    } finally {
      await helper.stop()
    }
  })

  it('gives up a helper that does not answer in time, answers all the same, and starts none for a while', async () => {
    // waiting 0 ms: whenever the helper is still checking a signature it took when this thread
    // is done with its own, it is given up
    const helper = verifyHelper({ waitMs: 0 })!
    try {
      await helper.start()
      const backend = nodeEd25519({ helper })
      const { items: all, expected } = items(MAX_BATCH)
      for (let round = 0; round < 200 && helper.counts.givenUp === 0; round++) {
        assert.deepEqual(await backend.verifyMany(all), expected)
      }
      assert.ok(helper.counts.givenUp > 0, 'the helper was never caught mid-signature')
      assert.equal(helper.running, false)
      const batches = helper.counts.batches
      assert.deepEqual(await backend.verifyMany(all), expected)
      assert.equal(helper.counts.batches, batches, 'a helper was started again at once')
      assert.equal(helper.running, false)
    } finally {
      await helper.stop()
    }
  })

  it('a stopped helper, or one that ended when idle, is replaced at the next batch', async () => {
    const helper = verifyHelper({ idleMs: 50 })!
    try {
      const backend = nodeEd25519({ helper })
      const { items: all, expected } = items(10)
      assert.equal(await helper.start(), true)
      await waitFor('the idle helper to end', () => !helper.running)
      // the first batch after it ended is checked here while another starts
      assert.deepEqual(await backend.verifyMany(all), expected)
      await waitFor('a new helper', () => helper.running)
      await helper.stop()
      assert.equal(helper.running, false)
      assert.deepEqual(await backend.verifyMany(all), expected)
      await waitFor('a new helper', () => helper.running)
      assert.deepEqual(await backend.verifyMany(all), expected)
    } finally {
      await helper.stop()
    }
  })

  it('a helper thread that cannot start is given up, and not started again at every batch', async () => {
    const helper = new VerifyHelper('/nonexistent/sodium-native')
    assert.equal(await helper.start(), false)
    assert.equal(helper.counts.givenUp, 1)
    const backend = nodeEd25519({ helper })
    const { items: all, expected } = items(10)
    for (let round = 0; round < 20; round++) assert.deepEqual(await backend.verifyMany(all), expected)
    assert.equal(helper.counts.batches, 0)
    assert.equal(await helper.start(), false, 'started again within its back-off')
    assert.equal(helper.counts.givenUp, 1)
  })

  it('does not keep a process alive', () => {
    // a file, not -e: a script given with -e exits when it ends, whatever still holds its event loop
    const dir = mkdtempSync(join(tmpdir(), 'verify-helper-'))
    const file = join(dir, 'alive.mjs')
    writeFileSync(
      file,
      `
      const { processVerifyHelper, processEd25519 } = await import(${JSON.stringify(new URL('../../node/ed25519.ts', import.meta.url).href)})
      await processVerifyHelper.start()
      const secretKey = new Uint8Array(32).fill(7)
      const message = new Uint8Array(100)
      const item = { publicKey: await processEd25519.publicKey(secretKey), message, signature: await processEd25519.sign(secretKey, message) }
      const got = await processEd25519.verifyMany(Array(8).fill(item))
      console.log(JSON.stringify({ got, running: processVerifyHelper.running }))
    `
    )
    try {
      const run = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 30_000 })
      assert.equal(run.error, undefined, 'the process did not exit by itself')
      assert.equal(run.status, 0, run.stderr)
      assert.deepEqual(JSON.parse(run.stdout), { got: Array(8).fill(true), running: true })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('the process back end shares its verifies with the process helper by default', async () => {
    assert.equal(await processVerifyHelper!.start(), true)
    const before = processVerifyHelper!.counts.batches
    const { items: some, expected } = items(4)
    assert.deepEqual(await processEd25519.verifyMany(some), expected)
    assert.equal(processVerifyHelper!.counts.batches, before + 1)
    // one signature alone is checked here
    assert.deepEqual(await processEd25519.verifyMany(some.slice(0, 1)), expected.slice(0, 1))
    assert.equal(processVerifyHelper!.counts.batches, before + 1)
  })
})
