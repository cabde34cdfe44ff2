/**
 * attack17d: the SPKI `epoch` event and the timer that moves the epoch at a CRL's validity
 * boundaries (src/spki/service.ts), and the membership's listener of it. What an attacker or a
 * restart could turn into work: a CRL whose boundary is centuries away (setTimeout holds at most
 * 2^31 - 1 ms), many CRLs with distinct boundaries (one timer, one epoch per boundary, no churn),
 * a stopped service (no timer left, nothing re-armed), and stop/start cycles of the membership
 * (one listener, never more).
 */
import { strict as assert } from 'node:assert'
import { spkiTime } from '../../src/spki/cert.ts'
import { signCrl } from '../../src/spki/crl.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { membershipOf, startNodes } from '../membership/fixtures.ts'
import { key } from './fixtures.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Startable } from '@libp2p/interface'

interface TimerInternals {
  crlChangeTimer?: { hasRef?: () => boolean; _idleTimeout?: number }
  nextCrlChange: number
}

/** A CRL of a fresh issuer, current over [from, to] (ms, whole seconds). */
async function crlOver(from: number, to: number): ReturnType<typeof signCrl> {
  const issuer = await key()
  return await signCrl(
    { issuer: issuer.id, revoked: [], validity: { notBefore: spkiTime(from), notAfter: spkiTime(to) } },
    issuer.secret
  )
}

describe('attack17d: the epoch timer and the epoch event', function () {
  this.timeout(60_000)
  const nodes: CyberspaceNode[] = []

  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it('a CRL whose boundary is centuries away arms one capped, unref-ed timer and moves no epoch meanwhile', async () => {
    const node = await memoryNode({})
    nodes.push(node)
    const events: number[] = []
    node.spki.addEventListener('epoch', e => events.push(e.detail.epoch))
    const now = Math.floor(Date.now() / 1000) * 1000
    // current from a second ago until the year 2200
    await node.spki.addCrl(await crlOver(now - 1000, Date.UTC(2200, 0, 1)))
    await new Promise(resolve => setTimeout(resolve, 0))
    const epoch = node.spki.epoch
    const spki = node.spki as unknown as TimerInternals
    assert.equal(spki.nextCrlChange, Date.UTC(2200, 0, 1) + 1000)
    assert.ok(spki.crlChangeTimer != null, 'a timer waits for the boundary')
    assert.equal(spki.crlChangeTimer.hasRef?.(), false, 'the timer keeps no process alive')
    assert.ok((spki.crlChangeTimer._idleTimeout ?? 0) <= 2 ** 31 - 1, 'the wait fits setTimeout')
    assert.ok((spki.crlChangeTimer._idleTimeout ?? 0) > 2 ** 30, 'the wait is not cut short (no busy re-arming)')
    const count = events.length
    await new Promise(resolve => setTimeout(resolve, 300))
    assert.equal(events.length, count, 'no epoch event without a change')
    assert.equal(node.spki.epoch, epoch)
  })

  it('many CRLs with distinct boundaries: one epoch per boundary passed, not one per CRL held per tick', async () => {
    const node = await memoryNode({})
    nodes.push(node)
    const events: number[] = []
    node.spki.addEventListener('epoch', e => events.push(e.detail.epoch))
    // SPKI times are whole seconds: 24 CRLs that become current 2, 3 and 4 s from now (8 each), all
    // current for an hour; 3 distinct boundaries to pass
    const base = Math.ceil(Date.now() / 1000) * 1000 + 2000
    const crls = []
    for (let i = 0; i < 24; i++) crls.push(await crlOver(base + (i % 3) * 1000, base + 3_600_000))
    assert.ok(Date.now() < base - 200, 'signed in time')
    for (const crl of crls) await node.spki.addCrl(crl)
    await new Promise(resolve => setTimeout(resolve, 0))
    const before = events.length
    await waitUntil('every CRL is current', () => Date.now() > base + 2000 + 500, 10_000, 50)
    await new Promise(resolve => setTimeout(resolve, 100))
    const moved = events.length - before
    assert.ok(moved >= 1 && moved <= 4, `${moved} epoch events for 3 boundaries`)
    assert.equal((node.spki as unknown as TimerInternals).nextCrlChange, base + 3_600_000 + 1000)
  })

  it('a stopped SPKI service holds no timer, and a change after the stop arms none', async () => {
    const node = await memoryNode({})
    const now = Math.floor(Date.now() / 1000) * 1000
    const service = node.spki
    await service.addCrl(await crlOver(now - 1000, now + 3_600_000))
    const spki = service as unknown as TimerInternals
    assert.ok(spki.crlChangeTimer != null)
    await node.stop()
    assert.equal(spki.crlChangeTimer, undefined, 'the timer went with the service')
    await service.addCrl(await crlOver(now - 1000, now + 7_200_000))
    assert.equal(spki.crlChangeTimer, undefined, 'a change after the stop armed a timer')
  })

  it('the membership listens to the epoch once, however often it is stopped and started, and not at all when stopped', async () => {
    const [node] = await startNodes(1)
    nodes.push(node)
    const spki = node.spki as unknown as { listenerCount: (type: string) => number }
    const service = membershipOf(node) as unknown as Startable
    const base = spki.listenerCount('epoch')
    assert.ok(base >= 1)
    for (let i = 0; i < 3; i++) {
      await service.stop()
      assert.equal(spki.listenerCount('epoch'), base - 1)
      await service.start()
      assert.equal(spki.listenerCount('epoch'), base)
    }
    // a stopped membership arms no check when the epoch moves
    await service.stop()
    const internals = membershipOf(node) as unknown as { checkTimer?: unknown }
    const now = Math.floor(Date.now() / 1000) * 1000
    await node.spki.addCrl(await crlOver(now - 1000, now + 3_600_000))
    await new Promise(resolve => setTimeout(resolve, 0))
    assert.equal(internals.checkTimer, undefined)
    await service.start()
  })
})
