import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { crdtTypes } from '../../src/crdt/index.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { loopbackNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { prng } from '../crdt/fixtures.ts'
import { tag } from '../spki/fixtures.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { PeerId } from '@libp2p/interface'

const N = 10
const UPDATES_PER_NODE = 15
const DROP = 0.2

describe('10 nodes on 127.0.0.1 converge under 20% gossip loss', function () {
  this.timeout(240_000)
  const nodes: CyberspaceNode[] = []
  const gossip = { seen: 0, dropped: 0 }

  before(async () => {
    const random = prng(Number(process.env.STATE_TEST_SEED ?? 7))
    const acceptGossip = (_from: PeerId): boolean => {
      gossip.seen++
      if (random() < DROP) {
        gossip.dropped++
        return false
      }
      return true
    }
    for (let i = 0; i < N; i++) {
      nodes.push(
        await loopbackNode({
          bootstrap: nodes.slice(0, 2).map(n => n.multiaddrs()[0]),
          // anti-entropy rarely while the updates run, so what gossip loses stays lost until it runs
          stateOptions: { syncInterval: 3000, acceptGossip }
        })
      )
    }
    await waitUntil('every node has at least 2 peers', () => nodes.every(n => n.peers().length >= 2), 60_000)
    for (const n of nodes) {
      for (const m of nodes)
        if (m !== n) await n.spki.addAclEntry(principalFromPeerId(m.peerId), tag('(cyberspace (log))'))
    }
  })

  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it('random concurrent updates to the same documents end in equal replicas', async () => {
    const counters = await Promise.all(nodes.map(async n => await n.state.open('votes', 'pn-counter')))
    const sets = await Promise.all(nodes.map(async n => await n.state.open('members', 'or-set')))
    const maps = await Promise.all(nodes.map(async n => await n.state.open('board', 'or-map')))
    let expectedVotes = 0
    await Promise.all(
      nodes.map(async (_, i) => {
        const random = prng(100 + i)
        for (let k = 0; k < UPDATES_PER_NODE; k++) {
          const choice = random()
          const item = `item-${Math.floor(random() * 8)}`
          if (choice < 0.25) {
            const n = 1 + Math.floor(random() * 5)
            if (random() < 0.5) {
              expectedVotes += n
              await counters[i].increment(n)
            } else {
              expectedVotes -= n
              await counters[i].decrement(n)
            }
          } else if (choice < 0.5) await sets[i].add(item)
          else if (choice < 0.6) await sets[i].remove(item)
          else if (choice < 0.8) await maps[i].set([item, 'owner'], `node-${i}`)
          else if (choice < 0.9) await maps[i].increment([item, 'count'])
          else await maps[i].delete(item)
          await new Promise(resolve => setTimeout(resolve, Math.floor(random() * 20)))
        }
      })
    )
    const encoded = (doc: { log: { type: { encodeState(s: unknown): unknown }; current(): unknown } }): string =>
      Buffer.from(dagCbor.encode(doc.log.type.encodeState(doc.log.current()))).toString('base64')
    const heads = (doc: { heads(): unknown[] }): string => doc.heads().map(String).sort().join(',')
    const converged = (docs: Array<Parameters<typeof encoded>[0] & { heads(): unknown[] }>): boolean =>
      docs.every(d => encoded(d) === encoded(docs[0]) && heads(d) === heads(docs[0]))
    await waitUntil(
      'every replica of every document is equal',
      () => converged(counters) && converged(sets) && converged(maps),
      90_000
    )
    assert.ok(gossip.dropped > 0, 'some gossip was dropped')
    assert.ok(counters.every(c => c.value() === expectedVotes))
    assert.ok(sets.every(s => JSON.stringify(s.value()) === JSON.stringify(sets[0].value())))
    assert.equal(
      counters[0].log.length + sets[0].log.length + maps[0].log.length,
      N * UPDATES_PER_NODE,
      'every update is one event, applied once at every replica'
    )
    assert.ok(crdtTypes['or-map'].equals(maps[0].log.current(), await maps[5].log.replayStored()))
  })
})
