import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { decodeHeadsMessage, encodeHeadsMessage } from '../../protocols/heads/codec.ts'
import { blockCid } from '../../protocols/log/codec.ts'
import type { WantMessage } from '../../protocols/heads/codec.ts'

describe('/cyberspace/heads/2.0.0 messages', () => {
  it('round-trips a want naming its log and how many ancestors may come with it', async () => {
    const cid = await blockCid(new Uint8Array([1, 2, 3]))
    const want: WantMessage = { v: 1, type: 'want', log: 'tasks', cids: [cid], depth: 63 }
    const decoded = decodeHeadsMessage(encodeHeadsMessage(want))
    assert.equal(decoded.type, 'want')
    assert.deepEqual(decoded.type === 'want' ? [decoded.log, decoded.depth, decoded.cids.map(String)] : [], [
      'tasks',
      63,
      [cid.toString()]
    ])
  })

  it('refuses a want without a log, with a depth outside 0-63, or with another field', async () => {
    const cid = await blockCid(new Uint8Array([1, 2, 3]))
    const bad: unknown[] = [
      { v: 1, type: 'want', cids: [cid], depth: 0 },
      { v: 1, type: 'want', log: 'tasks', cids: [cid] },
      { v: 1, type: 'want', log: 'tasks', cids: [cid], depth: 64 },
      { v: 1, type: 'want', log: 'tasks', cids: [cid], depth: -1 },
      { v: 1, type: 'want', log: 'tasks', cids: [cid], depth: 1.5 },
      { v: 1, type: 'want', log: 'Bad Name', cids: [cid], depth: 0 },
      { v: 1, type: 'want', log: 'tasks', cids: [cid], depth: 0, extra: true }
    ]
    for (const message of bad) {
      assert.throws(
        () => decodeHeadsMessage(dagCbor.encode(message)),
        { name: 'InvalidHeadsMessageError' },
        JSON.stringify(Object.keys(message as object))
      )
    }
  })
})
