import { strict as assert } from 'node:assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { defaultLogger } from '@libp2p/logger'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { TypedEventEmitter } from 'main-event'
import { bootstrap } from '../../src/network/bootstrap.ts'
import { waitUntil } from '../helpers/processes.ts'
import type { BootstrapComponents } from '../../src/network/bootstrap.ts'
import type { Libp2pEvents, PeerId, Startable } from '@libp2p/interface'

const WALK_MS = 40

async function peer(): Promise<PeerId> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
}

/**
 * The bootstrap service's DHT walks, on hand-made components: one connection held (below the
 * target), a peer routing that counts the walks and answers with `answers`.
 */
async function walker(answers: () => PeerId[]): Promise<{
  walks: () => number
  neighbour: PeerId
  events: TypedEventEmitter<Libp2pEvents>
  service: Startable
}> {
  const self = await peer()
  const neighbour = await peer()
  const events = new TypedEventEmitter<Libp2pEvents>()
  let walks = 0
  const components = {
    peerId: self,
    events,
    logger: defaultLogger(),
    connectionManager: {
      getConnections: (id?: PeerId) => (id == null || id.equals(neighbour) ? [{ remotePeer: neighbour }] : []),
      openConnection: async () => {
        throw new Error('no dialling here')
      }
    },
    peerStore: { all: async () => [] },
    transportManager: { dialTransportForMultiaddr: () => undefined },
    peerRouting: {
      async *getClosestPeers() {
        walks++
        for (const id of answers()) yield { id, multiaddrs: [] }
      }
    }
  } as unknown as BootstrapComponents
  const service = bootstrap({ walkInterval: WALK_MS, sweepInterval: 60_000 })(components) as unknown as Startable
  await service.start()
  await service.afterStart?.()
  return { walks: () => walks, neighbour, events, service }
}

describe('bootstrap DHT walks', () => {
  const running: Startable[] = []
  afterEach(async () => {
    for (const s of running.splice(0)) await s.stop()
  })

  it('skips walks while nothing changed, and walks again after a lost connection or a discovery', async () => {
    const { walks, events, service } = await walker(() => [])
    running.push(service)
    await waitUntil('the first walk', () => walks() === 1)
    // nothing connects, is lost or is discovered: the next pauses (40, 80, 160, 320 ms, …) pass
    // without a walk — a walk found no one new and nothing has changed since
    await new Promise(resolve => setTimeout(resolve, 20 * WALK_MS))
    assert.equal(walks(), 1)

    // a lost connection: a walk at the shortest pause, even though the loop was in a long pause
    events.safeDispatchEvent('peer:disconnect', { detail: await peer() })
    await waitUntil('a walk after a lost connection', () => walks() === 2)

    // a discovered peer this node does not know or hold a connection to brings the walks back too
    events.safeDispatchEvent('peer:discovery', { detail: { id: await peer(), multiaddrs: [] } })
    await waitUntil('a walk after a discovery', () => walks() === 3)
  })

  it('does not treat the rediscovery of a connected peer as a change', async () => {
    const { walks, neighbour, events, service } = await walker(() => [])
    running.push(service)
    await waitUntil('the first walk', () => walks() === 1)
    // libp2p reports a peer each time a DHT answer names it: here the neighbour we hold a connection to
    for (let i = 0; i < 5; i++)
      events.safeDispatchEvent('peer:discovery', { detail: { id: neighbour, multiaddrs: [] } })
    await new Promise(resolve => setTimeout(resolve, 20 * WALK_MS))
    assert.equal(walks(), 1)
  })

  it('keeps walking while walks find new peers', async () => {
    // each walk names a peer never seen before: the next walk is worth making (a walk that found no
    // one new and nothing changed since would be skipped for minutes)
    const unseen = await Promise.all(Array.from({ length: 8 }, peer))
    const { walks, service } = await walker(() => unseen.splice(0, 1))
    running.push(service)
    await waitUntil('6 walks', () => walks() >= 6)
  })
})
