import { strict as assert } from 'node:assert'
import * as dagCbor from '@ipld/dag-cbor'
import { sha256 } from 'multiformats/hashes/sha2'
import { CID } from 'multiformats/cid'
import {
  decodeTopicMessage,
  encodeTopicMessage,
  MAX_TOPIC_MESSAGE_BYTES,
  MAX_TOPIC_UPDATES
} from '../../protocols/membership/codec.ts'
import {
  decodeSwimMessage,
  encodeSwimMessage,
  MAX_PIGGYBACK_UPDATES,
  MAX_PROBE_MESSAGE_BYTES,
  MAX_SWIM_MESSAGE_BYTES
} from '../../protocols/swim/codec.ts'
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import { principalId } from '../../src/crypto/principal.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { precedence, signUpdate, verifyUpdate } from '../../src/membership/update.ts'
import type { AliveUpdate, Update } from '../../protocols/membership/codec.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'

const seed = (byte: number): Uint8Array => new Uint8Array(32).fill(byte)
const cidOf = async (bytes: Uint8Array): Promise<string> =>
  CID.createV1(dagCbor.code, await sha256.digest(bytes)).toString()

describe('membership and swim codecs', () => {
  let alive: AliveUpdate
  let member: PrincipalId
  let accuser: PrincipalId

  before(async () => {
    const signer = await seedSigner(seed(1), nobleEd25519)
    member = signer.principal
    accuser = principalId(await nobleEd25519.publicKey(seed(2)))
    alive = await signUpdate(signer, {
      v: 1,
      state: 'alive',
      member,
      incarnation: 7,
      addrs: ['/ip4/127.0.0.1/tcp/4001'],
      meta: { role: 'worker' },
      chain: [new TextEncoder().encode('(11:signed-cert)')]
    })
  })

  it('encodes a fixed alive and topic message to fixed bytes (exact CIDs), and its signature verifies', async () => {
    assert.equal(member, 'z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX')
    assert.ok(await verifyUpdate(alive))
    const update = dagCbor.encode(alive)
    assert.equal(await cidOf(update), 'bafyreibivczqo5ixegaqb36wbm3fe3heibhugh4xysv5nmog2b74cfda4e')
    const topic = encodeTopicMessage({ v: 1, type: 'updates', updates: [alive] })
    assert.equal(await cidOf(topic), 'bafyreiehtba5bcespeqiknp46uczmclwnhaqifn4bj3k45ivfkgffoiz6u')
    assert.deepEqual(decodeTopicMessage(topic).updates[0], alive)
    const ping = encodeSwimMessage({ v: 1, type: 'ping', target: member, updates: [alive] })
    assert.equal(await cidOf(ping), 'bafyreidlcmbd2f462q7prqnarkjop5gbns7dzcs6eehe7ualj2ak73pjhq')
  })

  it('a signature made for one update does not verify for any change of it', async () => {
    for (const changed of [
      { ...alive, incarnation: 8 },
      { ...alive, meta: { role: 'admin' } },
      { ...alive, addrs: [] },
      { ...alive, chain: [] }
    ]) {
      assert.equal(await verifyUpdate(changed as Update), false)
    }
    const sig = alive.sig.slice()
    sig[0] ^= 1
    assert.equal(await verifyUpdate({ ...alive, sig }), false)
  })

  it('orders updates by SWIM precedence: higher incarnation, then left > dead > suspect > alive', () => {
    const suspect = { v: 1, state: 'suspect', member, incarnation: 7, by: accuser, sig: alive.sig } as const
    assert.equal(precedence(alive, undefined), 'new')
    assert.equal(precedence(suspect, undefined), 'unknown')
    assert.equal(precedence(suspect, { state: 'alive', incarnation: 7 }), 'new')
    assert.equal(precedence(suspect, { state: 'suspect', incarnation: 7 }), 'confirm')
    assert.equal(precedence(suspect, { state: 'alive', incarnation: 8 }), 'stale')
    assert.equal(precedence(suspect, { state: 'alive', incarnation: 6 }), 'unknown')
    assert.equal(precedence({ ...suspect, state: 'dead' }, { state: 'suspect', incarnation: 7 }), 'new')
    assert.equal(precedence(alive, { state: 'dead', incarnation: 7 }), 'stale')
    assert.equal(precedence({ ...alive, incarnation: 8 }, { state: 'dead', incarnation: 7 }), 'new')
    const left = { v: 1, state: 'left', member, incarnation: 7, sig: alive.sig } as const
    assert.equal(precedence(left, { state: 'dead', incarnation: 7 }), 'new')
    assert.equal(precedence({ ...suspect, state: 'dead' }, { state: 'left', incarnation: 7 }), 'stale')
    assert.equal(precedence(alive, { state: 'alive', incarnation: 7 }), 'stale')
  })

  const refusals: Array<[string, () => unknown, string]> = [
    [
      'a message that is not dag-cbor',
      () => decodeTopicMessage(Uint8Array.from([0xff, 0x00])),
      'InvalidMembershipMessageError'
    ],
    [
      'an oversized topic message',
      () => decodeTopicMessage(new Uint8Array(MAX_TOPIC_MESSAGE_BYTES + 1)),
      'InvalidMembershipMessageError'
    ],
    [
      'a wrong version',
      () => decodeTopicMessage(dagCbor.encode({ v: 2, type: 'updates', updates: [] })),
      'InvalidMembershipMessageError'
    ],
    [
      'an update of a wrong version',
      () => decodeTopicMessage(dagCbor.encode({ v: 1, type: 'updates', updates: [{ ...alive, v: 2 }] })),
      'InvalidMembershipMessageError'
    ],
    [
      'an unknown state',
      () => decodeTopicMessage(dagCbor.encode({ v: 1, type: 'updates', updates: [{ ...alive, state: 'zombie' }] })),
      'InvalidMembershipMessageError'
    ],
    [
      'an extra field',
      () => decodeTopicMessage(dagCbor.encode({ v: 1, type: 'updates', updates: [{ ...alive, extra: 1 }] })),
      'InvalidMembershipMessageError'
    ],
    [
      'an empty topic message',
      () => decodeTopicMessage(dagCbor.encode({ v: 1, type: 'updates', updates: [] })),
      'InvalidMembershipMessageError'
    ],
    [
      'too many updates on the topic',
      () =>
        decodeTopicMessage(
          dagCbor.encode({ v: 1, type: 'updates', updates: Array.from({ length: MAX_TOPIC_UPDATES + 1 }, () => alive) })
        ),
      'InvalidMembershipMessageError'
    ],
    [
      'a negative incarnation',
      () => decodeTopicMessage(dagCbor.encode({ v: 1, type: 'updates', updates: [{ ...alive, incarnation: -1 }] })),
      'InvalidMembershipMessageError'
    ],
    [
      'a fractional incarnation',
      () => decodeTopicMessage(dagCbor.encode({ v: 1, type: 'updates', updates: [{ ...alive, incarnation: 1.5 }] })),
      'InvalidMembershipMessageError'
    ],
    [
      'a short signature',
      () =>
        decodeTopicMessage(dagCbor.encode({ v: 1, type: 'updates', updates: [{ ...alive, sig: new Uint8Array(63) }] })),
      'InvalidMembershipMessageError'
    ],
    [
      'a member that is not a principal id',
      () => decodeTopicMessage(dagCbor.encode({ v: 1, type: 'updates', updates: [{ ...alive, member: '12D3KooW' }] })),
      'InvalidMembershipMessageError'
    ],
    [
      'metadata of 17 keys',
      () =>
        decodeTopicMessage(
          dagCbor.encode({
            v: 1,
            type: 'updates',
            updates: [{ ...alive, meta: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }]
          })
        ),
      'InvalidMembershipMessageError'
    ],
    [
      'metadata over 1 KiB',
      () =>
        decodeTopicMessage(
          dagCbor.encode({ v: 1, type: 'updates', updates: [{ ...alive, meta: { big: 'x'.repeat(1100) } }] })
        ),
      'InvalidMembershipMessageError'
    ],
    [
      'a metadata value that is not a string',
      () => decodeTopicMessage(dagCbor.encode({ v: 1, type: 'updates', updates: [{ ...alive, meta: { load: 3 } }] })),
      'InvalidMembershipMessageError'
    ],
    [
      'an address that is not a multiaddr string',
      () =>
        decodeTopicMessage(dagCbor.encode({ v: 1, type: 'updates', updates: [{ ...alive, addrs: ['localhost:80'] }] })),
      'InvalidMembershipMessageError'
    ],
    [
      'a chain of 9 certificates',
      () =>
        decodeTopicMessage(
          dagCbor.encode({
            v: 1,
            type: 'updates',
            updates: [{ ...alive, chain: Array.from({ length: 9 }, () => new Uint8Array(10)) }]
          })
        ),
      'InvalidMembershipMessageError'
    ],
    [
      'a self-accusation',
      () =>
        decodeTopicMessage(
          dagCbor.encode({
            v: 1,
            type: 'updates',
            updates: [{ v: 1, state: 'suspect', member, incarnation: 7, by: member, sig: alive.sig }]
          })
        ),
      'InvalidMembershipMessageError'
    ],
    [
      'a swim message that is not dag-cbor',
      () => decodeSwimMessage(Uint8Array.from([0x1f])),
      'InvalidSwimMessageError'
    ],
    [
      'an oversized swim message',
      () => decodeSwimMessage(new Uint8Array(MAX_SWIM_MESSAGE_BYTES + 1)),
      'InvalidSwimMessageError'
    ],
    [
      'a swim message of a wrong version',
      () => decodeSwimMessage(dagCbor.encode({ v: 0, type: 'ping', target: member, updates: [] })),
      'InvalidSwimMessageError'
    ],
    [
      'an unknown swim type',
      () => decodeSwimMessage(dagCbor.encode({ v: 1, type: 'pong', updates: [] })),
      'InvalidSwimMessageError'
    ],
    [
      'a ping without a target',
      () => decodeSwimMessage(dagCbor.encode({ v: 1, type: 'ping', updates: [] })),
      'InvalidSwimMessageError'
    ],
    [
      'a ping with 17 piggybacked updates',
      () =>
        decodeSwimMessage(
          dagCbor.encode({
            v: 1,
            type: 'ping',
            target: member,
            updates: Array.from({ length: MAX_PIGGYBACK_UPDATES + 1 }, () => alive)
          })
        ),
      'InvalidSwimMessageError'
    ],
    [
      'a ping-req with a timeout out of range',
      () => decodeSwimMessage(dagCbor.encode({ v: 1, type: 'ping-req', target: member, timeout: 60_000, updates: [] })),
      'InvalidSwimMessageError'
    ],
    [
      'a malformed update inside a sync',
      () => decodeSwimMessage(dagCbor.encode({ v: 1, type: 'sync', updates: [{ ...alive, member: 42 }] })),
      'InvalidSwimMessageError'
    ],
    [
      'a ping larger than a probe message may be',
      () =>
        decodeSwimMessage(
          dagCbor.encode({
            v: 1,
            type: 'ping',
            target: member,
            updates: Array.from({ length: 16 }, () => ({
              ...alive,
              meta: {},
              chain: [new Uint8Array(4096), new Uint8Array(4096)]
            }))
          })
        ),
      'InvalidSwimMessageError'
    ]
  ]
  for (const [what, run, name] of refusals) {
    it(`refuses ${what} with ${name}`, () => {
      assert.throws(run, { name })
    })
  }

  it('round-trips every swim message type', () => {
    const messages = [
      { v: 1, type: 'ping', target: member, updates: [alive] },
      { v: 1, type: 'ping-req', target: member, timeout: 400, updates: [] },
      { v: 1, type: 'ack', updates: [alive] },
      { v: 1, type: 'nack', updates: [] },
      { v: 1, type: 'sync', updates: [alive] },
      { v: 1, type: 'error', name: 'NotAMemberError', message: 'no chain' }
    ] as const
    for (const msg of messages) assert.deepEqual(decodeSwimMessage(encodeSwimMessage(msg as never)), msg)
    assert.ok(MAX_PROBE_MESSAGE_BYTES < MAX_SWIM_MESSAGE_BYTES)
  })
})
