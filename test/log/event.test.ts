import assert from 'node:assert/strict'
import { equals } from 'uint8arrays/equals'
import { blockCid, decodeEvent, encodeEvent } from '../../protocols/log/codec.ts'
import { signEvent, verifySigned } from '../../src/log/event.ts'
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
      }
    }
  })
})
