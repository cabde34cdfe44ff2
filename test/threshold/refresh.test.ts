import { strict as assert } from 'node:assert'
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import { reconstructSecret } from '../../src/threshold/dealer.ts'
import { Fn, frost } from '../../src/threshold/group.ts'
import {
  applyRefresh,
  dealRefresh,
  recoverShare,
  repairShares,
  sumRepairShares,
  verifyRefreshShare
} from '../../src/threshold/refresh.ts'
import { dealtGroup, members, shifted, signWith } from './fixtures.ts'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

describe('share refresh and repair', () => {
  it('a refresh keeps the group key, the new shares sign, and old shares no longer combine with new', async () => {
    const ms = await members(5)
    const ids = ms.map(m => m.id)
    const { secret, keys } = dealtGroup(ms, 3)
    const deals = ids.map(() => dealRefresh(keys[0].public, ids))
    const fresh = ids.map((m, i) =>
      applyRefresh(
        keys[i],
        m,
        ids,
        deals.map((d, j) => ({ from: ids[j], commitments: d.commitments, share: d.shares.get(m)! }))
      )
    )
    const groupKey = keys[0].public.commitments[0]
    for (const k of fresh) {
      assert.deepEqual(k.public.commitments[0], groupKey)
      assert.notDeepEqual(k.secret.signingShare, keys[fresh.indexOf(k)].secret.signingShare)
      assert.deepEqual(k.public, fresh[0].public)
    }
    const msg = utf8('after refresh')
    assert.ok(await nobleEd25519.verify(groupKey, msg, signWith(fresh.slice(2, 5), msg)))
    // the secret is the same, reached from new shares only
    assert.deepEqual(
      reconstructSecret(
        fresh[0].public,
        fresh.slice(0, 3).map(k => k.secret)
      ),
      secret
    )
    // an old share among new ones: refused against the new commitments, and wrong if forced together
    assert.throws(() => reconstructSecret(fresh[0].public, [keys[0].secret, fresh[1].secret, fresh[2].secret]), {
      name: 'InvalidShareError'
    })
    const mixed = frost.combineSecret([keys[0].secret, fresh[1].secret, fresh[2].secret], keys[0].public.signers)
    assert.notDeepEqual(mixed, secret)
    let mixedSig: Uint8Array | undefined
    try {
      mixedSig = signWith([{ ...fresh[0], secret: keys[0].secret }, fresh[1], fresh[2]], msg)
    } catch {}
    assert.ok(mixedSig == null || !(await nobleEd25519.verify(groupKey, msg, mixedSig)))
  })

  it('names the member whose refresh share does not match its commitments', async () => {
    const ms = await members(4)
    const ids = ms.map(m => m.id)
    const { keys } = dealtGroup(ms, 3)
    const deal = dealRefresh(keys[0].public, ids)
    const bad = { from: ids[2], commitments: deal.commitments, share: deal.shares.get(ids[1])! }
    assert.throws(
      () => verifyRefreshShare(keys[0].public, ids[0], bad),
      (err: Error & { culprit?: string }) => {
        return err.name === 'InvalidShareError' && err.culprit === ids[2]
      }
    )
    const deals = ids.map(() => dealRefresh(keys[0].public, ids))
    const received = deals.map((d, j) => ({ from: ids[j], commitments: d.commitments, share: d.shares.get(ids[0])! }))
    assert.throws(() => applyRefresh(keys[0], ids[0], ids, received.slice(1)), { name: 'NotEnoughSignersError' })
    received[3] = { ...received[3], commitments: received[3].commitments.slice(1) }
    assert.throws(() => applyRefresh(keys[0], ids[0], ids, received), { name: 'InvalidShareError' })
  })

  it('names the first of two dealers whose share errors cancel in the sum, and the first bad one before a malformed one', async () => {
    const ms = await members(4)
    const ids = ms.map(m => m.id)
    const { keys } = dealtGroup(ms, 3)
    const deals = ids.map(() => dealRefresh(keys[0].public, ids))
    const received = deals.map((d, j) => ({ from: ids[j], commitments: d.commitments, share: d.shares.get(ids[0])! }))
    const colluding = received.map((r, j) =>
      j === 1 ? { ...r, share: shifted(r.share, 99n) } : j === 2 ? { ...r, share: shifted(r.share, Fn.neg(99n)) } : r
    )
    const culprit = (err: Error & { culprit?: string }, who: string): boolean =>
      err.name === 'InvalidShareError' && err.culprit === who
    assert.throws(
      () => applyRefresh(keys[0], ids[0], ids, colluding),
      (err: Error) => culprit(err, ids[1])
    )
    // a bad share from dealer 1 and a malformed deal from dealer 3: dealer 1 is named, as in order
    const both = [...colluding.slice(0, 2), received[2], { ...received[3], commitments: [] }]
    assert.throws(
      () => applyRefresh(keys[0], ids[0], ids, both),
      (err: Error) => culprit(err, ids[1])
    )
    // the malformed one alone is named when every share before it is good
    const malformed = [...received.slice(0, 3), { ...received[3], commitments: [] }]
    assert.throws(
      () => applyRefresh(keys[0], ids[0], ids, malformed),
      (err: Error) => culprit(err, ids[3])
    )
  })

  it('t helpers repair a lost share without reconstructing the secret, and it signs', async () => {
    const ms = await members(5)
    const ids = ms.map(m => m.id)
    const { keys } = dealtGroup(ms, 3)
    const lost = ids[4]
    const helpers = ids.slice(0, 3)
    const pieces = helpers.map((h, i) => repairShares(keys[i], h, helpers, lost))
    const sums = helpers.map(h => sumRepairShares(pieces.map(p => p.get(h)!)))
    const repaired = recoverShare(keys[0].public, lost, sums)
    assert.deepEqual(repaired.secret.signingShare, keys[4].secret.signingShare)
    const msg = utf8('signed with a repaired share')
    assert.ok(
      await nobleEd25519.verify(keys[0].public.commitments[0], msg, signWith([repaired, keys[1], keys[2]], msg))
    )
    // a helper who sends a wrong sum is caught by the verifying share
    const wrong = [...sums]
    wrong[1] = sums[0]
    assert.throws(() => recoverShare(keys[0].public, lost, wrong), { name: 'InvalidShareError' })
    assert.throws(() => recoverShare(keys[0].public, lost, sums.slice(0, 2)), { name: 'NotEnoughSignersError' })
    assert.throws(() => repairShares(keys[0], ids[0], ids.slice(0, 2), lost), { name: 'NotEnoughSignersError' })
  })
})
