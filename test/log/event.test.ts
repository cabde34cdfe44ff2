import assert from 'node:assert/strict'
import { equals } from 'uint8arrays/equals'
import { blockCid, decodeEvent, encodeEvent } from '../../protocols/log/codec.ts'
import * as dagCbor from '@ipld/dag-cbor'
import { signEvent, verifyEvent, verifySigned } from '../../src/log/event.ts'
import { EVENT_DOMAIN } from '../../protocols/log/codec.ts'
import { signer } from './fixtures.ts'

describe('log/event: signed events', () => {
  it('encodes a signed event once, to exactly the bytes a full dag-cbor encode gives', async () => {
    const s = await signer()
    const parent = (await signEvent(s, { log: 'doc', hlc: [1, 0], parents: [], ops: [] })).cid
    // ops whose keys look like the event's own fields must not confuse where the signature goes
    const opsCases: unknown[][] = [
      [],
      [{ a: 1 }],
      [{ sig: new Uint8Array(64), author: 'x', parents: [parent], v: 2 }],
      [new Uint8Array(70_000)]
    ]
    for (const ops of opsCases) {
      for (const parents of [[], [parent]]) {
        const block = await signEvent(s, { log: 'doc', hlc: [1_700_000_000_000, 3], parents, ops })
        assert.ok(equals(block.bytes, encodeEvent(block.value)), 'the same bytes as a full encode')
        assert.ok(block.cid.equals(await blockCid(encodeEvent(block.value))))
        const decoded = decodeEvent(block.bytes)
        await verifySigned(EVENT_DOMAIN, decoded)
        await verifyEvent(decoded, block.bytes)
      }
    }
  })

  it("checks a received event over its own bytes: a copy someone re-encoded, or another key's signature in place, is refused", async () => {
    const s = await signer()
    const parent = (await signEvent(s, { log: 'doc', hlc: [1, 0], parents: [], ops: [] })).cid
    const block = await signEvent(s, { log: 'doc', hlc: [1_700_000_000_000, 3], parents: [parent], ops: [{ a: 1 }] })
    const event = decodeEvent(block.bytes)
    await verifyEvent(event, block.bytes)
    // the same event with its `hlc` and `log` entries swapped: it decodes to the same fields, and
    // the signature holds over the re-encoded body (the check before verifyEvent passed it, under a
    // second CID), but these are not the bytes the author signed
    const entry = (field: 'hlc' | 'log'): Uint8Array => dagCbor.encode({ [field]: event[field] }).subarray(1)
    const hlc = entry('hlc')
    const log = entry('log')
    const at = 4 // after the map head and `v: 1`
    assert.ok(equals(block.bytes.subarray(at, at + hlc.length), hlc), 'hlc follows v')
    assert.ok(equals(block.bytes.subarray(at + hlc.length, at + hlc.length + log.length), log), 'log follows hlc')
    const swapped = new Uint8Array(block.bytes)
    swapped.set(log, at)
    swapped.set(hlc, at + log.length)
    const reordered = decodeEvent(swapped)
    assert.deepEqual(reordered, event)
    await verifySigned(EVENT_DOMAIN, reordered)
    await assert.rejects(verifyEvent(reordered, swapped), { name: 'InvalidSignatureError' })
    // with `sig` moved to the end of the map (after `parents`): refused as well
    const sigEntry = dagCbor.encode({ sig: event.sig }).subarray(1)
    const start = indexOf(block.bytes, sigEntry)
    const moved = new Uint8Array(block.bytes.length)
    moved.set(block.bytes.subarray(0, start))
    moved.set(block.bytes.subarray(start + sigEntry.length), start)
    moved.set(sigEntry, block.bytes.length - sigEntry.length)
    assert.deepEqual(decodeEvent(moved), event)
    await verifySigned(EVENT_DOMAIN, decodeEvent(moved))
    await assert.rejects(verifyEvent(decodeEvent(moved), moved), { name: 'InvalidSignatureError' })
    // and a signature by someone else, in its place, is refused
    const other = await signEvent(await signer(), {
      log: 'doc',
      hlc: [1_700_000_000_000, 3],
      parents: [parent],
      ops: []
    })
    const forged = decodeEvent(block.bytes)
    forged.sig = decodeEvent(other.bytes).sig
    const bytes = new Uint8Array(block.bytes)
    bytes.set(forged.sig, indexOf(block.bytes, event.sig))
    await assert.rejects(verifyEvent(decodeEvent(bytes), bytes), { name: 'InvalidSignatureError' })
  })
})

/** Where `needle` first occurs in `haystack`. */
function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  for (let i = 0; i + needle.length <= haystack.length; i++) {
    if (equals(haystack.subarray(i, i + needle.length), needle)) return i
  }
  throw new Error('not found')
}
