import { strict as assert } from 'node:assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { tcp } from '@libp2p/tcp'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CODE_P2P, multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { memoryNode } from './helpers/memory-node.ts'
import { waitUntil } from './helpers/processes.ts'
import { fastMessageId } from '../src/node.ts'
import type { CyberspaceNode } from '../src/node.ts'

describe('createNode', () => {
  const nodes: CyberspaceNode[] = []
  afterEach(async () => {
    await Promise.all(
      nodes.splice(0).map(async n => {
        await n.stop()
      })
    )
  })

  it('joins through a bootstrap peer and learns the rest of the cluster', async () => {
    const first = await memoryNode()
    nodes.push(first)
    const addr = first.multiaddrs()[0]
    assert.ok(addr.toString().endsWith(`/p2p/${first.peerId.toString()}`))
    for (let i = 0; i < 3; i++) nodes.push(await memoryNode({ bootstrap: [addr] }))
    await waitUntil('every node to be connected to the other 3', () => nodes.every(n => n.peers().length === 3))
    for (const node of nodes) {
      const others = nodes
        .filter(n => n !== node)
        .map(n => n.peerId.toString())
        .sort()
      assert.deepEqual(
        node.peers().map(p => p.peerId),
        others
      )
    }
  })

  it('stores a signed value in the DHT that another node reads and verifies', async () => {
    const a = await memoryNode()
    const b = await memoryNode({ bootstrap: [a.multiaddrs()[0]] })
    nodes.push(a, b)
    await waitUntil('b to connect to a', () => b.peers().length === 1)
    await waitUntil(
      'DHT routing tables',
      async () => a.dht.getMode() === 'server' && (await b.libp2p.peerStore.all()).length > 0
    )
    await a.putValue('status', new TextEncoder().encode('ready'), { signal: AbortSignal.timeout(10_000) })
    const got = await b.getValue(a.peerId.toString(), 'status', { signal: AbortSignal.timeout(10_000) })
    assert.equal(new TextDecoder().decode(got.value), 'ready')
    assert.ok(got.seq > 0)
    await assert.rejects(b.getValue(a.peerId.toString(), 'absent', { signal: AbortSignal.timeout(10_000) }), {
      name: 'ValueNotFoundError'
    })
  })

  it('delivers a gossipsub message, signed by its sender', async () => {
    const a = await memoryNode()
    const b = await memoryNode({ bootstrap: [a.multiaddrs()[0]] })
    nodes.push(a, b)
    a.pubsub.subscribe('t')
    b.pubsub.subscribe('t')
    await waitUntil('a to see b subscribed', () => a.pubsub.getSubscribers('t').length === 1)
    const received = new Promise<{ from: string; data: string; type: string }>(resolve => {
      b.pubsub.addEventListener('message', evt => {
        const msg = evt.detail
        resolve({
          from: msg.type === 'signed' ? msg.from.toString() : '',
          data: new TextDecoder().decode(msg.data),
          type: msg.type
        })
      })
    })
    await a.pubsub.publish('t', new TextEncoder().encode('hello'))
    const msg = await received
    assert.deepEqual(msg, { from: a.peerId.toString(), data: 'hello', type: 'signed' })
  })

  it('keeps retrying an unreachable bootstrap peer with growing delays', async () => {
    const ghost = await memoryNode()
    const addr = ghost.multiaddrs()[0]
    await ghost.stop()
    const node = await memoryNode({ bootstrap: [addr], bootstrapOptions: { minBackoff: 20, maxBackoff: 80 } })
    nodes.push(node)
    const delays: number[] = []
    node.bootstrap.addEventListener('retry', evt => {
      delays.push(evt.detail.delay)
    })
    await waitUntil('four retries', () => delays.length >= 4)
    assert.ok(node.isStarted())
    assert.equal(node.bootstrap.status()[0].connected, false)
    assert.ok(node.bootstrap.status()[0].failures >= 4)
    // exponential with ±20% jitter, capped at maxBackoff
    assert.ok(delays.every(d => d <= 80 * 1.2))
    assert.ok(delays.at(-1)! >= 80 * 0.8)
  })

  it('connects to a bootstrap peer that comes up after the node started', async () => {
    const privateKey = await generateKeyPair('Ed25519')
    const late = await memoryNode({ privateKey })
    const addr = late.multiaddrs()[0]
    await late.stop()
    const node = await memoryNode({ bootstrap: [addr], bootstrapOptions: { minBackoff: 20, maxBackoff: 100 } })
    nodes.push(node)
    await waitUntil('a failed attempt', () => node.bootstrap.status()[0].failures > 0)
    const revived = await memoryNode({ privateKey, listen: [addr.decapsulateCode(CODE_P2P).toString()] })
    nodes.push(revived)
    await waitUntil('the node to reach the revived peer', () => node.bootstrap.status()[0].connected)
    assert.deepEqual(
      node.peers().map(p => p.peerId),
      [revived.peerId.toString()]
    )
  })

  it('delivers gossip among 16 nodes that share one IP address', async function () {
    this.timeout(120_000)
    const tcpNode = async (bootstrap: Multiaddr[]): Promise<CyberspaceNode> =>
      await memoryNode({ transports: [tcp()], listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap })
    const first = await tcpNode([])
    nodes.push(first)
    for (let i = 0; i < 15; i++) nodes.push(await tcpNode([first.multiaddrs()[0]]))
    for (const node of nodes) node.pubsub.subscribe('crowd')
    // a full mesh of connections is not needed (gossip goes over several hops), only that each node
    // is in touch with another subscriber: the 15 must all receive what the first publishes
    await waitUntil(
      'every node to see another subscriber',
      () => nodes.every(n => n.pubsub.getSubscribers('crowd').length >= 1),
      60_000
    )
    const received = nodes.slice(1).map(
      node =>
        new Promise<string>(resolve => {
          node.pubsub.addEventListener('message', evt => {
            resolve(new TextDecoder().decode(evt.detail.data))
          })
        })
    )
    const all = Promise.all(received)
    let delivered = false
    void all.then(() => {
      delivered = true
    })
    // published again (a new message) every 2 s until all 15 have one, for at most a minute: a node that
    // joined the mesh after a message passed gets the next
    for (let round = 0; round < 30 && !delivered; round++) {
      await first.pubsub.publish('crowd', new TextEncoder().encode(`to all 15 #${round}`)).catch(() => {})
      await waitUntil('the round to reach everyone', () => delivered, 2000, 50).catch(() => {})
    }
    assert.ok(delivered, 'not every node received the message: nodes sharing one IP address were cut off')
    for (const text of await all) assert.match(text, /^to all 15 #\d+$/)
  })

  it('never dials itself when its own address is in the bootstrap list', async () => {
    const privateKey = await generateKeyPair('Ed25519')
    const listen = `/memory/self-bootstrap-${process.pid}`
    const self = multiaddr(`${listen}/p2p/${peerIdFromPrivateKey(privateKey).toString()}`)
    const node = await memoryNode({ privateKey, listen: [listen], bootstrap: [self] })
    nodes.push(node)
    assert.deepEqual(node.bootstrap.status(), [])
  })

  it('refuses timing options that would make it spin', async () => {
    for (const bad of [
      { minBackoff: 0 },
      { walkInterval: -1 },
      { sweepInterval: Number.NaN },
      { targetConnections: 0 }
    ]) {
      await assert.rejects(
        memoryNode({ bootstrapOptions: bad }),
        { name: 'InvalidParametersError' },
        JSON.stringify(bad)
      )
    }
  })

  it('gives two gossip messages one fast id only when their publisher and sequence number are the same', () => {
    const from = new Uint8Array([0xab, 0xcd])
    const seqno = new Uint8Array([1, 2, 3])
    assert.equal(fastMessageId({ from, seqno }), fastMessageId({ from: from.slice(), seqno: seqno.slice() }))
    // an attacker's own signed message must never shadow another publisher's (it would be dropped as
    // seen): bytes moved from one field to the other give another id
    assert.notEqual(
      fastMessageId({ from: new Uint8Array([0xab]), seqno: new Uint8Array([0xcd, 1, 2, 3]) }),
      fastMessageId({ from, seqno })
    )
    assert.notEqual(fastMessageId({ from, seqno: new Uint8Array([1, 2, 4]) }), fastMessageId({ from, seqno }))
    assert.notEqual(fastMessageId({ from }), fastMessageId({ from, seqno: new Uint8Array() }))
  })
})
