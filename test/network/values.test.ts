import { strict as assert } from 'node:assert'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { decodeValueRecord, encodeValueRecord, MAX_VALUE_RECORD_BYTES, valueKey } from '../../protocols/values/codec.ts'
import { selectValueRecord, signValueRecord, verifyValueRecord } from '../../src/network/values.ts'

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('signed DHT value records', () => {
  it('verifies a record signed by the peer its key names', async () => {
    const key = await generateKeyPair('Ed25519')
    const peer = peerIdFromPrivateKey(key).toString()
    const bytes = await signValueRecord(key, 'status', utf8('ready'), 7)
    const got = await verifyValueRecord(valueKey(peer, 'status'), bytes)
    assert.deepEqual(
      { ...got, value: new TextDecoder().decode(got.value) },
      { peerId: peer, name: 'status', seq: 7, value: 'ready' }
    )
  })

  it('encodes a fixed record to fixed bytes', () => {
    const bytes = encodeValueRecord({ v: 1, seq: 1, value: utf8('x'), sig: new Uint8Array(64) })
    // dag-cbor: map(4), keys by length then bytes: "v" 1, "seq" 1, "sig" bytes(64), "value" bytes("x")
    const expected =
      'a4' + '617601' + '63736571' + '01' + '63736967' + '5840' + '00'.repeat(64) + '6576616c7565' + '4178'
    assert.equal(Buffer.from(bytes).toString('hex'), expected)
    assert.deepEqual(decodeValueRecord(bytes).seq, 1)
  })

  it('rejects a record signed by another key (a forged value)', async () => {
    const owner = await generateKeyPair('Ed25519')
    const forger = await generateKeyPair('Ed25519')
    const forged = await signValueRecord(forger, 'status', utf8('evil'), 9)
    await assert.rejects(verifyValueRecord(valueKey(peerIdFromPrivateKey(owner).toString(), 'status'), forged), {
      name: 'InvalidValueRecordError'
    })
  })

  it('rejects a record replayed under another name', async () => {
    const key = await generateKeyPair('Ed25519')
    const bytes = await signValueRecord(key, 'a', utf8('v'), 1)
    await assert.rejects(verifyValueRecord(valueKey(peerIdFromPrivateKey(key).toString(), 'b'), bytes), {
      name: 'InvalidValueRecordError'
    })
  })

  it('rejects oversized, malformed and extra-field records, and bad keys', async () => {
    const bad = [
      new Uint8Array(MAX_VALUE_RECORD_BYTES + 1),
      new Uint8Array([0xff, 0x00]),
      dagCbor.encode([1, 2, 3]),
      dagCbor.encode({ v: 2, seq: 1, value: utf8('x'), sig: new Uint8Array(64) }),
      dagCbor.encode({ v: 1, seq: -1, value: utf8('x'), sig: new Uint8Array(64) }),
      dagCbor.encode({ v: 1, seq: 1, value: 'not bytes', sig: new Uint8Array(64) }),
      dagCbor.encode({ v: 1, seq: 1, value: utf8('x'), sig: new Uint8Array(64), extra: true })
    ]
    for (const bytes of bad) assert.throws(() => decodeValueRecord(bytes), { name: 'InvalidValueRecordError' })
    const key = await generateKeyPair('Ed25519')
    const bytes = await signValueRecord(key, 'ok', utf8('v'), 1)
    for (const k of [
      '/other/x/y',
      '/cyberspace-value/not_a_peer/ok',
      `/cyberspace-value/${peerIdFromPrivateKey(key).toString()}/UPPER`,
      '/cyberspace-value/a/b/c'
    ]) {
      await assert.rejects(verifyValueRecord(k, bytes), { name: 'InvalidValueRecordError' }, k)
    }
  })

  it('selects the record with the highest seq and never a malformed one', async () => {
    const key = await generateKeyPair('Ed25519')
    const records = [
      await signValueRecord(key, 'n', utf8('old'), 1),
      new Uint8Array([0xff]),
      await signValueRecord(key, 'n', utf8('new'), 5)
    ]
    assert.equal(await selectValueRecord(utf8('k'), records), 2)
  })
})
