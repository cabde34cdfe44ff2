import { strict as assert } from 'node:assert'
import * as dagCbor from '@ipld/dag-cbor'
import { decodeDkgEnvelope, encodeDkgEnvelope } from '../../protocols/dkg/codec.ts'
import {
  decodeFrostMessage,
  decodeRefreshDeal,
  encodeFrostMessage,
  encodeRefreshDeal,
  MAX_FROST_MESSAGE_BYTES,
  REFRESH_DEAL_DOMAIN,
  refreshDealSigningBody
} from '../../protocols/frost/codec.ts'
import { signAs } from '../../src/crypto/sign.ts'
import { makeDeal, openDeals } from '../../src/threshold/deal.ts'
import { verifyRefreshShare } from '../../src/threshold/refresh.ts'
import { openScalar } from '../../src/threshold/seal.ts'
import { decodeClusterState, encodeClusterState } from '../../src/threshold/state.ts'
import { dealtGroup, members } from './fixtures.ts'
import type { ClusterState } from '../../src/threshold/state.ts'
import type { Member } from './fixtures.ts'

const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill)
const invalid = { name: 'InvalidFrostMessageError' }

describe('cluster wire formats and stored shares', () => {
  let ms: Member[]
  let states: ClusterState[]

  before(async () => {
    ms = await members(4)
    const { keys } = dealtGroup(ms, 3)
    const ids = ms.map(m => m.id).sort()
    states = ms.map((_, i) => ({ members: ids, threshold: 3, epoch: 0, key: keys[i] }))
  })

  it('decodes well-formed frost messages and refuses malformed ones by name', () => {
    const commit = {
      v: 1 as const,
      type: 'commit' as const,
      group: bytes(32),
      epoch: 0,
      session: bytes(32),
      payload: bytes(10)
    }
    assert.deepEqual(decodeFrostMessage(encodeFrostMessage(commit)), commit)
    const bad: unknown[] = [
      { ...commit, v: 2 },
      { ...commit, type: 'steal' },
      { ...commit, extra: 1 },
      { ...commit, group: bytes(31) },
      { ...commit, session: bytes(33) },
      { ...commit, epoch: -1 },
      { ...commit, epoch: 1.5 },
      { ...commit, payload: new Uint8Array() },
      { ...commit, payload: bytes(64 * 1024 + 1) },
      { v: 1, type: 'share', share: bytes(31) },
      { v: 1, type: 'commitments', identifier: 'not hex', hiding: bytes(32), binding: bytes(32) },
      { v: 1, type: 'decryption', identifier: 'a'.repeat(64), share: bytes(32), proof: bytes(63) },
      { ...commit, type: 'sign', commitments: [{ identifier: 'a'.repeat(64), hiding: bytes(32), binding: bytes(32) }] },
      { v: 1, type: 'error', name: 'Not a word', message: '' },
      {
        v: 1,
        type: 'refresh-apply',
        group: bytes(32),
        epoch: 0,
        session: bytes(32),
        deals: Array.from({ length: 65 }, () => bytes(8))
      },
      // an ack is a map of exactly a member and its 64-byte signature
      ...[[{ from: 'a', sig: bytes(64), extra: 1 }], [['a', bytes(64)]], [{ from: '', sig: bytes(64) }]].map(odd => ({
        v: 1,
        type: 'refresh-commit',
        group: bytes(32),
        epoch: 0,
        session: bytes(32),
        acks: [{ from: 'b', sig: bytes(64) }, ...odd]
      }))
    ]
    for (const msg of bad)
      assert.throws(() => decodeFrostMessage(dagCbor.encode(msg)), invalid, JSON.stringify(Object.keys(msg as object)))
    assert.throws(() => decodeFrostMessage(bytes(10, 0xff)), invalid)
    assert.throws(() => decodeFrostMessage(bytes(MAX_FROST_MESSAGE_BYTES + 1)), invalid)
  })

  it('refuses malformed DKG envelopes', () => {
    const invite = { v: 1 as const, type: 'invite' as const, session: bytes(32), members: ['a', 'b'], threshold: 2 }
    assert.deepEqual(decodeDkgEnvelope(encodeDkgEnvelope(invite)), invite)
    for (const msg of [
      { ...invite, members: ['a'] },
      { ...invite, threshold: 1 },
      { ...invite, members: Array.from({ length: 65 }, (_, i) => `m${i}`) },
      { v: 1, type: 'messages', messages: [], done: 'yes' },
      { v: 1, type: 'deliver', session: bytes(32), messages: [bytes(8 * 1024 + 1)] }
    ]) {
      assert.throws(() => decodeDkgEnvelope(dagCbor.encode(msg)), { name: 'InvalidDkgMessageError' })
    }
  })

  it('opens refresh deals only when signed by their member, for this session, with a share that checks', async () => {
    const session = bytes(32, 7)
    const deals = await Promise.all(states.map(async (s, i) => await makeDeal(s, ms[i].id, ms[i].secret, session)))
    const all = deals.map(d => d.deal)
    /** Member 0 opens `list` (by default every deal) for `sessionId`. */
    const open = async (list = all, sessionId = session): Promise<unknown> =>
      await openDeals(states[0], ms[0].id, ms[0].secret, sessionId, list, deals[0].own)
    const blames = (name: string, culprit: string) => (err: Error & { culprit?: string }) =>
      err.name === name && err.culprit === culprit
    assert.equal(((await open()) as unknown[]).length, 4)
    // a sealed share is a map of exactly its member and a 48-byte box
    const good = decodeRefreshDeal(all[1])
    assert.deepEqual(decodeRefreshDeal(encodeRefreshDeal(good)), good)
    for (const odd of [
      { ...good.boxes[0], extra: 1 },
      [good.boxes[0].to, good.boxes[0].box],
      { to: good.boxes[0].to, box: bytes(47) }
    ])
      assert.throws(() => decodeRefreshDeal(dagCbor.encode({ ...good, boxes: [odd] })), invalid)
    assert.throws(() => decodeRefreshDeal(dagCbor.encode({ ...good, epoch: 2 ** 32 })), invalid)

    const forged = decodeRefreshDeal(all[1])
    forged.commitments[0] = decodeRefreshDeal(all[2]).commitments[0]
    await assert.rejects(
      open([all[0], encodeRefreshDeal(forged), all[2], all[3]]),
      blames('MessageSignatureError', ms[1].id)
    )
    await assert.rejects(open(all, bytes(32, 8)), { name: 'WrongSessionError' })
    await assert.rejects(open(all.slice(0, 3)), blames('InvalidShareError', ms[3].id))
    // a dealer that seals a share not matching its commitments is named
    const liar = await makeDeal(states[1], ms[1].id, ms[1].secret, session)
    const other = await makeDeal(states[1], ms[1].id, ms[1].secret, session)
    const mixed = decodeRefreshDeal(liar.deal)
    mixed.boxes = decodeRefreshDeal(other.deal).boxes
    mixed.ephemeral = decodeRefreshDeal(other.deal).ephemeral
    mixed.sig = await signAs(ms[1].secret, REFRESH_DEAL_DOMAIN, refreshDealSigningBody(mixed))
    await assert.rejects(
      open([all[0], encodeRefreshDeal(mixed), all[2], all[3]]),
      blames('InvalidShareError', ms[1].id)
    )
  })

  it('seals a refresh share as seal.ts does, under the refresh-share info, and with nothing else', async () => {
    const session = bytes(32, 9)
    const made = await makeDeal(states[1], ms[1].id, ms[1].secret, session)
    const deal = decodeRefreshDeal(made.deal)
    const box = deal.boxes.find(b => b.to === ms[0].id)
    assert.ok(box != null && box.box.length === 48)
    const share = openScalar(
      'cyberspace/refresh-share/v1',
      session,
      ms[1].id,
      ms[0].id,
      ms[0].secret,
      deal.ephemeral,
      box.box
    )
    // what it opens to is the dealt share: it matches the dealer's commitments
    verifyRefreshShare(states[0].key.public, ms[0].id, { from: ms[1].id, commitments: deal.commitments, share })
    assert.throws(() =>
      openScalar('cyberspace/reshare-share/v1', session, ms[1].id, ms[0].id, ms[0].secret, deal.ephemeral, box.box)
    )
  })

  it('keeps a share that round-trips, and refuses a damaged or foreign one', () => {
    const encoded = encodeClusterState(states[0])
    const back = decodeClusterState(encoded, ms[0].id)
    assert.deepEqual(back.key.secret, states[0].key.secret)
    assert.equal(back.epoch, 0)
    const damaged = encodeClusterState({
      ...states[0],
      key: { ...states[0].key, secret: { ...states[0].key.secret, signingShare: states[1].key.secret.signingShare } }
    })
    assert.throws(() => decodeClusterState(damaged, ms[0].id), { name: 'CorruptShareError' })
    assert.throws(() => decodeClusterState(encoded, ms[1].id), { name: 'CorruptShareError' })
    assert.throws(() => decodeClusterState(encoded.subarray(0, encoded.length - 3), ms[0].id), {
      name: 'CorruptShareError'
    })
  })
})
