import { strict as assert } from 'node:assert'
import * as dagCbor from '@ipld/dag-cbor'
import {
  decodeReshareDeal,
  decodeReshareMessage,
  encodeReshareMessage,
  MAX_RESHARE_MESSAGE_BYTES
} from '../../protocols/reshare/codec.ts'
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import { reconstructSecret } from '../../src/threshold/dealer.ts'
import { memberIdentifier } from '../../src/threshold/group.ts'
import { combineReshare, dealReshare } from '../../src/threshold/reshare.ts'
import { dealtGroup, members, signWith } from './fixtures.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { ReceivedReshare } from '../../src/threshold/reshare.ts'
import type { FrostPublic, Key } from '@noble/curves/abstract/frost.js'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

/** Reshares `keys` (of `from`) to `to` with threshold t, dealt by `dealers` (indexes into from). */
function reshareAll(
  pub: FrostPublic,
  keys: Map<PrincipalId, Key>,
  dealers: PrincipalId[],
  to: PrincipalId[],
  t: number
): Key[] {
  const deals = dealers.map(d => ({ from: d, dealt: dealReshare(keys.get(d)!, d, dealers, to, t) }))
  return to.map(m =>
    combineReshare(
      pub,
      dealers,
      m,
      to,
      t,
      deals.map(({ from, dealt }) => ({ from, commitments: dealt.commitments, share: dealt.shares.get(m)! }))
    )
  )
}

describe('resharing math', () => {
  it('moves a 2-of-3 key to 3-of-5 and then 2-of-4: same key, new sets sign, old shares do not combine with new', async () => {
    const ms = await members(6)
    const ids = ms.map(m => m.id)
    const { secret, keys } = dealtGroup(ms.slice(0, 3), 2)
    const groupKey = keys[0].public.commitments[0]
    const first = ids.slice(0, 3)
    const five = ids.slice(0, 5)
    const k5 = reshareAll(
      keys[0].public,
      new Map(first.map((m, i) => [m, keys[i]])),
      [first[2], first[0]].sort(),
      five,
      3
    )
    for (const k of k5) assert.deepEqual(k.public, k5[0].public)
    assert.deepEqual(k5[0].public.commitments[0], groupKey)
    assert.equal(k5[0].public.signers.min, 3)
    assert.deepEqual(
      reconstructSecret(
        k5[0].public,
        k5.slice(2).map(k => k.secret)
      ),
      secret
    )
    const msg = utf8('signed by the new set')
    assert.ok(await nobleEd25519.verify(groupKey, msg, signWith([k5[0], k5[3], k5[4]], msg)))

    // to 2-of-4 without member 2, dealt by three of the five; member 5 is new
    const four = [ids[0], ids[1], ids[3], ids[5]]
    const dealers = [ids[1], ids[3], ids[4]].sort() as PrincipalId[]
    const k4 = reshareAll(k5[0].public, new Map(five.map((m, i) => [m, k5[i]])), dealers, four, 2)
    assert.deepEqual(reconstructSecret(k4[0].public, [k4[1].secret, k4[3].secret]), secret)
    assert.ok(await nobleEd25519.verify(groupKey, msg, signWith([k4[2], k4[3]], msg)))
    // an old share (of a removed or a continuing member) among new ones does not make a signature
    for (const old of [k5[2], k5[0]]) {
      let sig: Uint8Array | undefined
      try {
        sig = signWith([{ public: k4[0].public, secret: old.secret }, k4[1]], msg)
      } catch {}
      assert.ok(sig == null || !(await nobleEd25519.verify(groupKey, msg, sig)))
      assert.throws(() => reconstructSecret(k4[0].public, [old.secret, k4[1].secret]), { name: 'InvalidShareError' })
    }
    // the removed member has no verifying share in the new group
    assert.equal(k4[0].public.verifyingShares[memberIdentifier(ids[2])], undefined)
  })

  it('names a dealer whose constant term is not its weighted share, or whose share does not match', async () => {
    const ms = await members(4)
    const ids = ms.map(m => m.id)
    const { keys } = dealtGroup(ms.slice(0, 3), 2)
    const dealers = ids.slice(0, 2).sort() as PrincipalId[]
    const byId = new Map(ids.slice(0, 3).map((m, i) => [m, keys[i]]))
    const to = ids.slice(1, 4)
    const honest = dealReshare(byId.get(dealers[0])!, dealers[0], dealers, to, 2)
    // dealer 1 deals from another share (a forged constant): its deal is consistent but not its share
    const liarKey = { ...byId.get(dealers[1])!, secret: byId.get(ids[2])!.secret }
    const liar = dealReshare(liarKey, dealers[1], dealers, to, 2)
    const received = (m: PrincipalId): ReceivedReshare[] => [
      { from: dealers[0], commitments: honest.commitments, share: honest.shares.get(m)! },
      { from: dealers[1], commitments: liar.commitments, share: liar.shares.get(m)! }
    ]
    assert.throws(
      () => combineReshare(keys[0].public, dealers, to[2], to, 2, received(to[2])),
      (err: Error & { culprit?: string }) => err.name === 'InvalidShareError' && err.culprit === dealers[1]
    )
    // a share that does not match its dealer's commitments
    const bad = received(to[2])
    bad[0] = { ...bad[0], share: honest.shares.get(to[1])! }
    assert.throws(
      () => combineReshare(keys[0].public, dealers, to[2], to, 2, bad),
      (err: Error & { culprit?: string }) => err.name === 'InvalidShareError' && err.culprit === dealers[0]
    )
    assert.throws(() => combineReshare(keys[0].public, dealers, to[2], to, 2, received(to[2]).slice(1)), {
      name: 'NotEnoughSignersError'
    })
    assert.throws(() => dealReshare(byId.get(ids[0])!, ids[0], ids.slice(0, 3), to, 2), {
      name: 'NotEnoughSignersError'
    })
  })
})

describe('the /cyberspace/reshare codec', () => {
  const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill)
  const invalid = { name: 'InvalidReshareMessageError' }

  it('decodes well-formed requests and refuses malformed or oversized ones by name', async () => {
    const ids = (await members(3)).map(m => m.id).sort()
    const deal = {
      v: 1 as const,
      type: 'reshare-deal' as const,
      group: bytes(32),
      epoch: 0,
      session: bytes(32),
      members: ids,
      threshold: 2,
      dealers: ids.slice(0, 2)
    }
    assert.deepEqual(decodeReshareMessage(encodeReshareMessage(deal)), deal)
    const bad: unknown[] = [
      { ...deal, v: 2 },
      { ...deal, type: 'reshare-everything' },
      { ...deal, extra: 1 },
      { ...deal, members: [...ids].reverse() },
      { ...deal, members: [ids[0], ids[0]] },
      { ...deal, threshold: 4 },
      { ...deal, threshold: 1 },
      { ...deal, dealers: [ids[0]] },
      { ...deal, members: Array.from({ length: 65 }, (_, i) => `z6Mk${String(i).padStart(3, '0')}`) },
      { ...deal, epoch: 2 ** 32 },
      { ...deal, group: bytes(31) },
      { v: 1, type: 'repair-share', session: bytes(32), sums: [bytes(10), bytes(10)], package: { members: ids } },
      {
        v: 1,
        type: 'reshare-commit',
        group: bytes(32),
        epoch: 1,
        session: bytes(32),
        digest: bytes(32),
        members: ids,
        acks: [
          { from: ids[0], sig: bytes(63) },
          { from: ids[1], sig: bytes(64) }
        ]
      },
      {
        v: 1,
        type: 'reshare-retire',
        group: bytes(32),
        epoch: 1,
        session: bytes(32),
        deals: [bytes(10), bytes(10)],
        switched: [{ from: ids[0], sig: bytes(64) }, [ids[1], bytes(64)]]
      }
    ]
    for (const b of bad) assert.throws(() => decodeReshareMessage(dagCbor.encode(b)), invalid, JSON.stringify(b))
    assert.throws(() => decodeReshareMessage(new Uint8Array(MAX_RESHARE_MESSAGE_BYTES + 1)), invalid)
    assert.throws(() => decodeReshareMessage(new TextEncoder().encode('not cbor')), invalid)
    assert.throws(() => decodeReshareDeal(dagCbor.encode({ ...deal, v: 1 })), invalid)
  })
})
