/**
 * `hold` and `held` (`/cyberspace/heads/2.1.0`): fixed bytes for a fixed message, and every
 * malformed or oversized form refused by the decoder (and the encoder) with InvalidHeadsMessageError.
 */
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import {
  decodeHeadsMessage,
  encodeHeadsMessage,
  HEADS_HOLD_PROTOCOL,
  MAX_HEADS_MESSAGE_BYTES,
  MAX_HOLD_BLOCKS
} from '../../protocols/heads/codec.ts'
import { blockCid, MAX_EVENT_BYTES } from '../../protocols/log/codec.ts'
import type { HeldMessage, HoldMessage } from '../../protocols/heads/codec.ts'

async function cids(n: number): Promise<CID[]> {
  return await Promise.all(Array.from({ length: n }, async (_, i) => await blockCid(dagCbor.encode({ i }))))
}

function refused(message: unknown, why: string): void {
  assert.throws(() => decodeHeadsMessage(dagCbor.encode(message)), { name: 'InvalidHeadsMessageError' }, why)
  assert.throws(() => encodeHeadsMessage(message as HoldMessage), { name: 'InvalidHeadsMessageError' }, why)
}

describe('/cyberspace/heads/2.1.0 hold and held messages', () => {
  it('is its own protocol id beside 2.0.0', () => {
    assert.equal(HEADS_HOLD_PROTOCOL, '/cyberspace/heads/2.1.0')
  })

  it('encodes a fixed hold to fixed bytes and round-trips it', async () => {
    const [head] = await cids(1)
    assert.equal(head.toString(), 'bafyreibywmvwjvbp6qiqymwyvxv6hk6nigjj3rz6474v2oxxxchmnj3vda')
    const hold: HoldMessage = {
      v: 1,
      type: 'hold',
      log: 'tasks',
      heads: [head],
      snapshot: null,
      blocks: [dagCbor.encode({ i: 0 })]
    }
    const bytes = encodeHeadsMessage(hold)
    // dag-cbor: map keys in length-then-byte order, the CID under tag 42
    assert.equal(
      Buffer.from(bytes).toString('hex'),
      'a6617601636c6f67657461736b73647479706564686f6c6465686561647381d82a5825000171122038b32b64d42ff4110c32d8adebe3abcd41929dc73ee7f95d3af7b88ec6a7751866626c6f636b738144a161690068736e617073686f74f6'
    )
    const decoded = decodeHeadsMessage(bytes) as HoldMessage
    assert.equal(decoded.type, 'hold')
    assert.deepEqual(decoded.heads.map(String), [head.toString()])
    assert.deepEqual(decoded.blocks, [dagCbor.encode({ i: 0 })])
    const held: HeldMessage = { v: 1, type: 'held', log: 'tasks', heads: [] }
    assert.deepEqual(decodeHeadsMessage(encodeHeadsMessage(held)), held)
  })

  it('refuses a malformed hold', async () => {
    const heads = await cids(65)
    const [head] = heads
    const rawCid = CID.createV1(raw.code, await sha256.digest(new Uint8Array([1])))
    const ok = { v: 1, type: 'hold', log: 'tasks', heads: [head], snapshot: null, blocks: [] }
    refused({ ...ok, heads: [] }, 'no heads')
    refused({ ...ok, heads: heads.slice(0, 65) }, '65 heads')
    refused({ ...ok, heads: [head, head] }, 'a head twice')
    refused({ ...ok, heads: ['bafy'] }, 'a head that is text')
    refused({ ...ok, heads: [rawCid] }, 'a raw CID')
    refused({ ...ok, snapshot: 'bafy' }, 'a snapshot that is text')
    refused({ ...ok, snapshot: rawCid }, 'a raw snapshot CID')
    refused({ ...ok, log: 'Bad Name' }, 'a bad log name')
    refused({ ...ok, log: 'x'.repeat(65) }, 'a log name too long')
    refused({ ...ok, blocks: Array.from({ length: MAX_HOLD_BLOCKS + 1 }, () => new Uint8Array([1])) }, '17 blocks')
    refused({ ...ok, blocks: [new Uint8Array(0)] }, 'an empty block')
    refused({ ...ok, blocks: [new Uint8Array(MAX_EVENT_BYTES + 1)] }, 'a block larger than an event')
    refused({ ...ok, blocks: ['text'] }, 'a block that is text')
    refused({ ...ok, blocks: null }, 'blocks null')
    const { blocks: _blocks, ...noBlocks } = ok
    refused(noBlocks, 'no blocks field')
    refused({ ...ok, extra: 1 }, 'another field')
    refused({ ...ok, v: 2 }, 'another version')
  })

  it('refuses a malformed held', async () => {
    const heads = await cids(65)
    const ok = { v: 1, type: 'held', log: 'tasks', heads: [heads[0]] }
    assert.equal(decodeHeadsMessage(dagCbor.encode(ok)).type, 'held')
    refused({ ...ok, heads: heads.slice(0, 65) }, '65 heads')
    refused({ ...ok, heads: [heads[0], heads[0]] }, 'a head twice')
    refused({ ...ok, heads: [1] }, 'a head that is a number')
    refused({ ...ok, snapshot: null }, 'another field')
    const { log: _log, ...noLog } = ok
    refused(noLog, 'no log')
  })

  it('refuses a message larger than the limit before decoding it', async () => {
    const [head] = await cids(1)
    // 16 blocks of 128 KiB: 2 MiB, twice the limit, each block within an event's size
    const blocks = Array.from({ length: MAX_HOLD_BLOCKS }, () => new Uint8Array(128 * 1024))
    const hold = { v: 1, type: 'hold', log: 'tasks', heads: [head], snapshot: null, blocks }
    const bytes = dagCbor.encode(hold)
    assert.ok(bytes.length > MAX_HEADS_MESSAGE_BYTES)
    assert.throws(() => decodeHeadsMessage(bytes), { name: 'InvalidHeadsMessageError', message: /larger than/ })
    assert.throws(() => encodeHeadsMessage(hold as HoldMessage), { name: 'InvalidHeadsMessageError' })
  })
})
