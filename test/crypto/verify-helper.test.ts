/**
 * The helper thread of libsodium's verifyMany (node/verify-helper.ts): whatever it does — takes
 * signatures, sleeps, is stopped, ends when idle, is given up when it does not answer in time —
 * every answer is the one the calling thread alone gives, forged and oversized items included; and
 * it never keeps a process alive.
 */
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hasSodium, nodeEd25519, sodiumPath } from '../../node/ed25519.ts'
import { MAX_BATCH, VerifyHelper } from '../../node/verify-helper.ts'
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import type { SignedMessage } from '../../src/crypto/ed25519.ts'
import { waitUntil } from '../helpers/processes.ts'
import { candidates } from './forgeries.ts'

/** `count` signed items, most of them forged (./forgeries.ts), and the strict rules' answers. */
async function items(count: number): Promise<{ items: SignedMessage[]; expected: boolean[] }> {
  const all = candidates(count)
  return { items: all, expected: await nobleEd25519.verifyMany(all) }
}

describe('ed25519 verify helper thread (node)', function () {
  before(function () {
    if (!hasSodium) this.skip()
  })

  it('answers as the calling thread alone for batches of 1 to 70 forged, oversized and honest signatures, the helper taking some', async () => {
    const helper = new VerifyHelper(sodiumPath!)
    try {
      assert.equal(await helper.start(), true)
      const backend = nodeEd25519({ helper })
      const alone = nodeEd25519({ helper: false })
      // messages of 0 B to 70 kB: those over 64 KiB do not fit in shared memory and are checked here
      const { items: all, expected } = await items(2 * MAX_BATCH + 8)
      assert.deepEqual(await alone.verifyMany(all), expected)
      // bounded: the helper takes signatures once it is awake, which a few batches make sure of
      for (let round = 0; round < 20 && (round < 3 || helper.counts.byHelper === 0); round++) {
        for (let size = 1; size <= all.length; size += 7) {
          assert.deepEqual(await backend.verifyMany(all.slice(0, size)), expected.slice(0, size), `size ${size}`)
        }
      }
      assert.ok(helper.counts.byHelper > 0, 'the helper thread checked none of the signatures')
    } finally {
      await helper.stop()
    }
  })

  it('gives up a helper that does not answer in time, answers all the same, and starts none for a while', async () => {
    // waiting 0 ms: whenever the helper is still checking a signature it took when this thread
    // is done with its own, it is given up
    const helper = new VerifyHelper(sodiumPath!, { waitMs: 0 })
    try {
      await helper.start()
      const backend = nodeEd25519({ helper })
      const { items: all, expected } = await items(MAX_BATCH)
      for (let round = 0; round < 200 && helper.counts.givenUp === 0; round++) {
        assert.deepEqual(await backend.verifyMany(all), expected)
      }
      assert.ok(helper.counts.givenUp > 0, 'the helper was never caught mid-signature')
      assert.deepEqual(await backend.verifyMany(all), expected)
      assert.equal(helper.counts.started, 1, 'a helper was started again at once')
      assert.equal(await helper.start(), false, 'started again within its back-off')
    } finally {
      await helper.stop()
    }
  })

  it('a stopped helper, or one that ended when idle, is replaced at the next batch', async () => {
    const helper = new VerifyHelper(sodiumPath!, { idleMs: 50 })
    try {
      const backend = nodeEd25519({ helper })
      const { items: all, expected } = await items(10)
      assert.equal(await helper.start(), true)
      await waitUntil('the idle helper to end', () => !helper.running, 10_000, 10)
      // the first batch after it ended is checked here while another starts
      assert.deepEqual(await backend.verifyMany(all), expected)
      assert.equal(helper.counts.started, 2, 'no helper started after an idle end')
      assert.equal(await helper.start(), true)
      await helper.stop()
      assert.deepEqual(await backend.verifyMany(all), expected)
      assert.equal(helper.counts.started, 3, 'no helper started after stop()')
      assert.equal(await helper.start(), true)
    } finally {
      await helper.stop()
    }
  })

  it('a batch left by an exception gives its helper up: a late answer of the helper never lands in the next batch', async () => {
    const helper = new VerifyHelper(sodiumPath!)
    try {
      assert.equal(await helper.start(), true)
      const sodium = createRequire(import.meta.url)('sodium-native') as {
        crypto_sign_verify_detached(s: Uint8Array, m: Uint8Array, k: Uint8Array): boolean
      }
      const here = (item: SignedMessage): boolean =>
        sodium.crypto_sign_verify_detached(item.signature, item.message, item.publicKey)
      // all honest: the forgery below is the second one's message with its last byte changed
      const honest = (await items(16)).items.filter((_, i) => i % 8 === 0).slice(0, 2)
      const message = honest[1].message.slice()
      message[message.length - 1] ^= 1
      const forged = { ...honest[1], message }
      // a batch of the two, repeated (the helper may take both before this thread takes one, on a
      // loaded machine: then nothing throws and nothing changes); bounded
      const batch = Array.from({ length: MAX_BATCH }, (_, i) => honest[i % 2])
      let threw = 0
      for (let round = 0; round < 50 && threw === 0; round++) {
        try {
          helper.verify(batch, () => {
            throw new Error('verifyHere failed')
          })
        } catch {
          threw++
        }
      }
      assert.equal(threw, 1, 'this thread never took a signature of the batch')
      // the helper may still be checking a signature of that batch: its memory is not used again
      assert.equal(helper.counts.givenUp, 1)
      assert.equal(helper.running, false)
      assert.deepEqual(helper.verify([honest[0], forged], here), [true, false])
    } finally {
      await helper.stop()
    }
  })

  it('a helper thread that cannot start is given up, and not started again at every batch', async () => {
    const helper = new VerifyHelper('/nonexistent/sodium-native')
    assert.equal(await helper.start(), false)
    assert.equal(helper.counts.givenUp, 1)
    const backend = nodeEd25519({ helper })
    const { items: all, expected } = await items(10)
    for (let round = 0; round < 20; round++) assert.deepEqual(await backend.verifyMany(all), expected)
    assert.equal(helper.counts.batches, 0)
    assert.equal(await helper.start(), false, 'started again within its back-off')
    assert.equal(helper.counts.givenUp, 1)
  })

  it('the process back end shares its verifies with the process helper, which does not keep the process alive', () => {
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
      // one signature alone is checked here: no second batch
      got.push(...(await processEd25519.verifyMany([item])))
      const { running, counts } = processVerifyHelper
      console.log(JSON.stringify({ got, running, batches: counts.batches }))
    `
    )
    try {
      const run = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 30_000 })
      assert.equal(run.error, undefined, 'the process did not exit by itself')
      assert.equal(run.status, 0, run.stderr)
      assert.deepEqual(JSON.parse(run.stdout), { got: Array(9).fill(true), running: true, batches: 1 })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
