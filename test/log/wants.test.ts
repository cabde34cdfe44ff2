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
  it('sends one want for 8 blocks asked at once, and gives each caller its own', async () => {
    const all = await blocks(10)
    const sent: Array<{ cids: string[]; depth: number }> = []
    const extra = new Map<string, Uint8Array>()
    const wants = new WantBatcher(
      async (_peer, _log, cids, depth) => {
        sent.push({ cids: cids.map(String), depth })
        // the peer answers every block it was asked for but the last, plus two it was not
        return [
          ...all
            .filter(b => cids.some(c => c.equals(b.cid)))
            .slice(0, -1)
            .map(b => b.bytes),
          all[8].bytes,
          all[9].bytes
        ]
      },
      1000,
      (_log, received) => {
        for (const [k, v] of received) extra.set(k, v)
      }
    )
    const got = await Promise.all(
      all.slice(0, 8).map(async b => await wants.want(peer, 'tasks', b.cid, 63, AbortSignal.timeout(1000)))
    )
    assert.equal(sent.length, 1)
    assert.equal(sent[0].cids.length, 8)
    assert.equal(sent[0].depth, 63)
    assert.deepEqual(
      got.slice(0, 7),
      all.slice(0, 7).map(b => b.bytes)
    )
    assert.equal(got[7], undefined, 'not sent: undefined, for the caller to ask elsewhere')
    assert.deepEqual([...extra.keys()].sort(), [all[8].cid.toString(), all[9].cid.toString()].sort())
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
