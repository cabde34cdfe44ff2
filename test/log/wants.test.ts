import assert from 'node:assert/strict'
import { blockCid } from '../../protocols/log/codec.ts'
import { WantBatcher } from '../../src/log/wants.ts'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

const peer = { toString: () => 'peer-a' } as unknown as PeerId

async function blocks(n: number): Promise<Array<{ cid: CID; bytes: Uint8Array }>> {
  return await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const bytes = new Uint8Array([i, 7, 7])
      return { cid: await blockCid(bytes), bytes }
    })
  )
}

describe('WantBatcher: block requests in one turn go out as one want', () => {
  it('sends one want for 8 blocks asked at once, gives each caller its own, and asks alone for one left out', async () => {
    const all = await blocks(10)
    const sent: Array<{ cids: string[]; depth: number }> = []
    const extra = new Map<string, Uint8Array>()
    const wants = new WantBatcher(
      async (_peer, _log, cids, depth) => {
        sent.push({ cids: cids.map(String), depth })
        const asked = all.filter(b => cids.some(c => c.equals(b.cid))).map(b => b.bytes)
        // a crowded answer leaves the last block out (as if it did not fit), plus two unasked ones
        return cids.length > 1 ? [...asked.slice(0, -1), all[8].bytes, all[9].bytes] : asked
      },
      1000,
      (_log, received) => {
        for (const [k, v] of received) extra.set(k, v)
      }
    )
    const got = await Promise.all(
      all.slice(0, 8).map(async b => await wants.want(peer, 'tasks', b.cid, 63, AbortSignal.timeout(1000)))
    )
    assert.deepEqual(
      sent.map(s => [s.cids.length, s.depth]),
      [
        [8, 63],
        [1, 0]
      ]
    )
    assert.equal(sent[1].cids[0], all[7].cid.toString(), 'the one left out, asked alone')
    assert.deepEqual(
      got,
      all.slice(0, 8).map(b => b.bytes)
    )
    assert.deepEqual([...extra.keys()].sort(), [all[8].cid.toString(), all[9].cid.toString()].sort())
  })

  it('keeps no unasked blocks when no ancestors were asked for, and does not retry a peer that sent nothing', async () => {
    const all = await blocks(3)
    let calls = 0
    const extra = new Map<string, Uint8Array>()
    const wants = new WantBatcher(
      async (_peer, _log, cids) => {
        calls++
        return cids.some(c => c.equals(all[0].cid)) ? [all[0].bytes, all[2].bytes] : []
      },
      1000,
      (_log, received) => {
        for (const [k, v] of received) extra.set(k, v)
      }
    )
    assert.deepEqual(await wants.want(peer, 'tasks', all[0].cid, 0, AbortSignal.timeout(1000)), all[0].bytes)
    assert.equal(extra.size, 0)
    assert.equal(await wants.want(peer, 'tasks', all[1].cid, 0, AbortSignal.timeout(1000)), undefined)
    assert.equal(calls, 2)
  })

  it('lets one caller give up without cancelling the others, and fails them all if the request fails', async () => {
    const all = await blocks(2)
    let release = (): void => {}
    const wants = new WantBatcher(
      async () => {
        await new Promise<void>(resolve => {
          release = resolve
        })
        return [all[0].bytes, all[1].bytes]
      },
      1000,
      () => {}
    )
    const quitter = new AbortController()
    const first = wants.want(peer, 'tasks', all[0].cid, 0, quitter.signal)
    const second = wants.want(peer, 'tasks', all[1].cid, 0, AbortSignal.timeout(1000))
    quitter.abort(new Error('gave up'))
    await assert.rejects(first, /gave up/)
    await new Promise(resolve => setTimeout(resolve, 10))
    release()
    assert.deepEqual(await second, all[1].bytes)
    const failing = new WantBatcher(
      async () => {
        throw new Error('stream reset')
      },
      1000,
      () => {}
    )
    await assert.rejects(failing.want(peer, 'tasks', all[0].cid, 0, AbortSignal.timeout(1000)), /stream reset/)
  })
})
