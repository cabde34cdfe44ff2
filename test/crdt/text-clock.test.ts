/**
 * One key writing a text document from two places — a copied data directory, a restored backup, a
 * restart — through real logs: item ids never repeat, so every replica that received the same
 * events holds the same text, whatever the order, and a replay gives the live value.
 */
import { strict as assert } from 'node:assert'
import { MemoryDatastore } from 'datastore-core'
import * as Y from 'yjs'
import { Hlc } from '../../src/clock/hlc.ts'
import { text, textClient } from '../../src/crdt/text.ts'
import { signEvent } from '../../src/log/event.ts'
import { Log } from '../../src/log/log.ts'
import { allowList, PeerBlockstore, signer } from '../log/fixtures.ts'
import type { TextDelta } from '../../src/crdt/text.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { HlcTimestamp } from '../../src/clock/hlc.ts'
import type { Batch } from '../../src/log/log.ts'
import type { CID } from 'multiformats/cid'

type TextLog = Log<Y.Doc, TextDelta, string>

interface Place {
  log: TextLog
  blockstore: PeerBlockstore
  datastore: MemoryDatastore
  signer: Signer
}

const network: PeerBlockstore[] = []

async function open(s: Signer, allowed: Set<string>, from?: Place): Promise<Place> {
  const blockstore = new PeerBlockstore()
  const datastore = new MemoryDatastore()
  if (from != null) {
    // a copy of the other place's data directory, taken now
    for await (const { key, value } of from.datastore.query({})) await datastore.put(key, value)
    for await (const { cid, bytes } of from.blockstore.getAll()) {
      const chunks: Uint8Array[] = []
      for await (const c of bytes) chunks.push(c)
      await blockstore.put(cid, chunks.length === 1 ? chunks[0] : Uint8Array.from(chunks.flatMap(c => [...c])))
    }
  }
  for (const other of network) {
    other.peers.push(blockstore)
    blockstore.peers.push(other)
  }
  network.push(blockstore)
  const log: TextLog = await Log.open({
    id: 'notes',
    type: text,
    blockstore,
    datastore,
    signer: s,
    clock: new Hlc(),
    authorize: allowList(allowed),
    limits: { fetchTimeout: 1000 }
  })
  return { log, blockstore, datastore, signer: s }
}

const append = (chars: string) => (b: Batch<Y.Doc, TextDelta>) =>
  b.push(text.insert(b.state, b.ctx, text.value(b.state).length, chars))

async function agreeWithReplay(place: Place): Promise<void> {
  const replayed = await place.log.replayStored()
  assert.equal(text.value(replayed), place.log.value())
  assert.ok(text.equals(replayed, place.log.current()), 'replay gives the live state')
}

describe('crdt/text: one key writing from two places', () => {
  beforeEach(() => {
    network.length = 0
  })

  it('a copied data directory and its original write under different ids: replicas agree in any order, and replay equals live', async () => {
    const [key, carol, dave] = await Promise.all([signer(), signer(), signer()])
    const allowed = new Set([key, carol, dave].map(s => s.principal as string))
    const original = await open(key, allowed)
    await original.log.append(append('shared:'))
    const copy = await open(key, allowed, original)
    assert.equal(copy.log.value(), 'shared:')

    const here = await original.log.append(append(' here'))
    const there = await copy.log.append(append(' there'))
    assert.ok(here != null && there != null)
    // and the original again, after a restart that replays its directory
    original.log.close()
    const restarted = await open(key, allowed, original)
    // two edits in one event, both checked before either is merged
    const again = await restarted.log.append(b => {
      append(' again')(b)
      append('!')(b)
    })
    assert.ok(again != null)

    // two receivers hear the places in opposite orders
    const c = await open(carol, allowed)
    const d = await open(dave, allowed)
    for (const heads of [[here.cid], [there.cid], [again.cid]]) {
      const result = await c.log.join(heads)
      assert.deepEqual(result.rejected, [])
    }
    for (const heads of [[again.cid], [there.cid], [here.cid]]) {
      const result = await d.log.join(heads)
      assert.deepEqual(result.rejected, [])
    }
    await copy.log.join(restarted.log.heads())
    await restarted.log.join(copy.log.heads())

    const value = c.log.value()
    for (const word of ['shared:', ' here', ' there', ' again!'])
      assert.ok(value.includes(word), `${word} in "${value}"`)
    for (const place of [d, copy, restarted]) {
      assert.equal(place.log.value(), value)
      assert.ok(text.equals(place.log.current(), c.log.current()))
    }
    for (const place of [c, d, copy, restarted]) await agreeWithReplay(place)
  })

  it('an author that reuses ids on purpose splits replicas by arrival order, but each replica refuses the reuse and replays what it shows', async () => {
    const [key, carol, dave] = await Promise.all([signer(), signer(), signer()])
    const allowed = new Set([key, carol, dave].map(s => s.principal as string))
    // two first events with different text under one client and clock (the form without a session,
    // whose client is fixed by the key: what any key writing from two places produced before)
    const fork = async (content: string, hlc: HlcTimestamp): Promise<{ cid: CID; bytes: Uint8Array }> => {
      const doc = new Y.Doc()
      doc.clientID = textClient(key.principal)
      doc.getText('text').insert(0, content)
      const ops = [Y.encodeStateAsUpdate(doc)] // bare update bytes: a delta without a session
      return await signEvent(key, { log: 'notes', hlc, parents: [], ops })
    }
    const now = Date.now()
    const early = await fork('early', [now, 0])
    const late = await fork('late', [now, 1])
    const blocks = new Map([early, late].map(b => [b.cid.toString(), b.bytes]))

    const c = await open(carol, allowed)
    const d = await open(dave, allowed)
    // c hears the one that replays last first: without the check it would show 'late' and replay 'early'
    assert.equal((await c.log.join([late.cid], { blocks })).applied.length, 1)
    const refused = await c.log.join([early.cid], { blocks })
    assert.deepEqual(
      refused.rejected.map(r => [r.error.name, /reuses the item id/.test(r.error.message)]),
      [['EventRejectedError', true]]
    )
    assert.equal((await d.log.join([early.cid], { blocks })).applied.length, 1)
    assert.equal((await d.log.join([late.cid], { blocks })).rejected.length, 1)
    // what still diverges: equivocation by the key itself, settled by arrival at each replica
    assert.deepEqual([c.log.value(), d.log.value()], ['late', 'early'])
    await agreeWithReplay(c)
    await agreeWithReplay(d)
  })
})
