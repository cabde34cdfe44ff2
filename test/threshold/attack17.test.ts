/**
 * The threshold arithmetic of issue 17 attacked: points outside the prime-order subgroup where a
 * cheaper check could let them through, colluding dealers whose errors cancel in a batched check,
 * duplicated deals, and inputs of the wrong type at the Signer.
 */
import { strict as assert } from 'node:assert'
import { firstBadEvaluation, Fn, Point, PointCache } from '../../src/threshold/group.ts'
import { applyRefresh, dealRefresh } from '../../src/threshold/refresh.ts'
import { combineReshare, dealReshare } from '../../src/threshold/reshare.ts'
import { Signer } from '../../src/threshold/sign.ts'
import { dealtGroup, members, shifted, withTorsion } from './fixtures.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { ReceivedReshare } from '../../src/threshold/reshare.ts'
import type { SigningRequest } from '../../src/threshold/sign.ts'

const named =
  (name: string, culprit?: string) =>
  (err: Error & { culprit?: string }): boolean =>
    err.name === name && (culprit == null || err.culprit === culprit)

describe('threshold arithmetic under attack (issue 17)', () => {
  it('refuses a reshare constant term with an order-2 component (its only subgroup check is λ·Y equality), naming the dealer', async () => {
    const ms = await members(4)
    const ids = ms.map(m => m.id)
    const { keys } = dealtGroup(ms.slice(0, 3), 2)
    const byId = new Map(ids.slice(0, 3).map((m, i) => [m, keys[i]]))
    const dealers = ids.slice(0, 2).sort() as PrincipalId[]
    const to = ids.slice(1, 4)
    const deals = dealers.map(d => dealReshare(byId.get(d)!, d, dealers, to, 2))
    const received = (m: PrincipalId): ReceivedReshare[] =>
      dealers.map((d, i) => ({ from: d, commitments: deals[i].commitments, share: deals[i].shares.get(m)! }))
    for (const k of [0, 1]) {
      // the share is left as dealt: at an even x, x·T2 = O and a per-share check alone would pass
      const bad = received(to[0])
      bad[1] = { ...bad[1], commitments: bad[1].commitments.map((c, i) => (i === k ? withTorsion(c) : c)) }
      assert.throws(
        () => combineReshare(keys[0].public, dealers, to[0], to, 2, bad),
        named('InvalidShareError', dealers[1]),
        `commitment ${k}`
      )
    }
    // and the honest deals combine
    combineReshare(keys[0].public, dealers, to[0], to, 2, received(to[0]))
  })

  it('a PointCache is keyed by the bytes at the time of the call: mutating them afterwards poisons nothing', () => {
    const points = new PointCache(4)
    const bytes = Point.BASE.multiply(777n).toBytes()
    const good = points.parse(bytes, 'p')
    // the caller's array now holds the same point with an order-2 component
    bytes.set(withTorsion(bytes))
    assert.throws(() => points.parse(bytes, 'p'), named('InvalidPointError'))
    assert.ok(points.parse(Point.BASE.multiply(777n).toBytes(), 'p').equals(good))
    assert.equal(points.size, 1)
    // a refused point is never remembered: refused again, every time
    for (let i = 0; i < 3; i++) assert.throws(() => points.parse(bytes, 'p'), named('InvalidPointError'))
    assert.equal(points.size, 1)
  })

  it('refuses a refresh commitment with an order-2 component, naming its dealer', async () => {
    const ms = await members(4)
    const ids = ms.map(m => m.id)
    const { keys } = dealtGroup(ms, 3)
    const deals = ids.map(() => dealRefresh(keys[0].public, ids))
    const received = deals.map((d, j) => ({ from: ids[j], commitments: d.commitments, share: d.shares.get(ids[0])! }))
    received[2] = { ...received[2], commitments: [withTorsion(received[2].commitments[0]), received[2].commitments[1]] }
    assert.throws(() => applyRefresh(keys[0], ids[0], ids, received), named('InvalidShareError', ids[2]))
  })

  it('names the first of two colluding dealers whose share errors cancel in the sum (refresh, reshare, any batch)', async () => {
    const ms = await members(5)
    const ids = ms.map(m => m.id)
    const { keys } = dealtGroup(ms, 3)
    const deals = ids.map(() => dealRefresh(keys[0].public, ids))
    const received = deals.map((d, j) => ({ from: ids[j], commitments: d.commitments, share: d.shares.get(ids[0])! }))
    // Σ shares is right, so the refreshed share would be right at this member: each share alone is wrong
    const delta = 0x1234567890abcdefn
    received[3] = { ...received[3], share: shifted(received[3].share, delta) }
    received[1] = { ...received[1], share: shifted(received[1].share, -delta) }
    for (let i = 0; i < 8; i++) {
      assert.throws(() => applyRefresh(keys[0], ids[0], ids, received), named('InvalidShareError', ids[1]))
    }
    // directly: shares offset by multiples of 2^k for every k up to 127 (a weight reduced mod 2^k would miss them)
    const points = new PointCache()
    const x = 7n
    const polys = [0, 1].map(() => [Fn.create(BigInt(Math.floor(Math.random() * 1e9)) + 1n), 5n])
    const commit = (p: bigint[]) => p.map(a => points.parse(Point.BASE.multiply(a).toBytes(), 'c'))
    for (const k of [0, 1, 8, 64, 127]) {
      const d = 1n << BigInt(k)
      const received2 = polys.map((p, j) => ({
        from: j,
        share: Fn.add(Fn.add(p[0], Fn.mul(p[1], x)), j === 0 ? d : Fn.neg(d)),
        commitments: commit(p)
      }))
      assert.equal(firstBadEvaluation(received2, x), 0, `offset 2^${k}`)
    }
  })

  it('refuses a refresh or reshare with one dealer’s deal counted twice', async () => {
    const ms = await members(4)
    const ids = ms.map(m => m.id)
    const { keys } = dealtGroup(ms, 3)
    const deals = ids.map(() => dealRefresh(keys[0].public, ids))
    const received = deals.map((d, j) => ({ from: ids[j], commitments: d.commitments, share: d.shares.get(ids[0])! }))
    // n + 1 deals with n distinct senders: the set of senders is right, the count is not
    assert.throws(() => applyRefresh(keys[0], ids[0], ids, [...received, received[1]]), {
      name: 'NotEnoughSignersError'
    })
    const { keys: old } = dealtGroup(ms.slice(0, 3), 2)
    const byId = new Map(ids.slice(0, 3).map((m, i) => [m, old[i]]))
    const dealers = ids.slice(0, 2).sort() as PrincipalId[]
    const to = ids.slice(1, 4)
    const rd = dealers.map(d => dealReshare(byId.get(d)!, d, dealers, to, 2))
    const rr = dealers.map((d, i) => ({ from: d, commitments: rd[i].commitments, share: rd[i].shares.get(to[0])! }))
    assert.throws(() => combineReshare(old[0].public, dealers, to[0], to, 2, [...rr, rr[0]]), {
      name: 'NotEnoughSignersError'
    })
  })

  it('a Signer refuses a session that is not 32 bytes by name, whatever its type', async () => {
    const ms = await members(3)
    const { keys } = dealtGroup(ms, 2)
    const signer = new Signer(keys[0], ms[0].id, async () => {})
    for (const session of [new Uint8Array(31), 'x'.repeat(32), undefined, Array.from(new Uint8Array(32))]) {
      const request = { session, coordinator: ms[1].id, payload: new Uint8Array(1) } as unknown as SigningRequest
      await assert.rejects(signer.commit(request), { name: 'WrongSessionError' }, String(session))
      assert.throws(() => signer.signShare({ ...request, commitments: [] }), { name: 'WrongSessionError' })
    }
    assert.equal(signer.open, 0)
  })
})
