import { strict as assert } from 'node:assert'
import { spawnNode, stopNodes, waitUntil } from '../helpers/processes.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { PeerSummary } from '../../src/node.ts'

async function peerIds(node: NodeProcess): Promise<string[]> {
  return (await node.api.get<PeerSummary[]>('peers')).map(p => p.peerId).sort()
}

describe('a cluster of 5 node processes on 127.0.0.1', function () {
  this.timeout(180_000)
  const nodes: NodeProcess[] = []

  before(async () => {
    const first = await spawnNode()
    nodes.push(first)
    const rest = await Promise.all([1, 2, 3, 4].map(async () => await spawnNode({ bootstrap: [first.tcpAddr] })))
    nodes.push(...rest)
  })

  after(async () => {
    await stopNodes(nodes)
  })

  it('every node sees the other 4', async () => {
    const all = nodes.map(n => n.peerId)
    await waitUntil('a full mesh of connections', async () => {
      for (const node of nodes) {
        const expected = all.filter(p => p !== node.peerId).sort()
        if (JSON.stringify(await peerIds(node)) !== JSON.stringify(expected)) return false
      }
      return true
    })
    for (const node of nodes) assert.deepEqual(await peerIds(node), all.filter(p => p !== node.peerId).sort())
  })

  it('a DHT value put on one node is read and verified on another', async () => {
    const [, writer, , , reader] = nodes
    await writer.api.post('dht/put', { name: 'greeting', value: 'hello from node 2' })
    const got = await reader.api.get<{ value: string; seq: number }>('dht/get', {
      peer: writer.peerId,
      name: 'greeting'
    })
    assert.equal(got.value, 'hello from node 2')
    // a value the writer never published is not found
    await assert.rejects(
      reader.api.get('dht/get', { peer: writer.peerId, name: 'absent' }),
      (e: Error & { status: number }) => e.status === 404
    )
    // a value over the 4096-byte limit (3000 two-byte characters) is refused before it is signed
    await assert.rejects(
      writer.api.post('dht/put', { name: 'big', value: 'é'.repeat(3000) }),
      (e: Error & { status: number }) => e.status === 400
    )
    await assert.rejects(
      reader.api.get('dht/get', { peer: 'not-a-peer-id', name: 'x' }),
      (e: Error & { status: number }) => e.status === 400
    )
  })

  it('a gossipsub message from one node reaches all the others', async () => {
    const topic = 'integration-test'
    for (const node of nodes) await node.api.post('pubsub/subscribe', { topic })
    const sender = nodes[3]
    await waitUntil('every node to know 4 subscribers', async () => {
      const counts = await Promise.all(
        nodes.map(async n => (await n.api.get<string[]>('pubsub/peers', { topic })).length)
      )
      return counts.every(c => c === 4)
    })
    await sender.api.post('pubsub/publish', { topic, data: 'one message for all' })
    for (const node of nodes.filter(n => n !== sender)) {
      await waitUntil(
        `delivery to ${node.peerId}`,
        async () => {
          const { messages } = await node.api.get<{ messages: Array<{ data: string; from: string }> }>(
            'pubsub/messages',
            { topic }
          )
          return messages.some(m => m.data === 'one message for all' && m.from === sender.peerId)
        },
        30_000
      )
    }
  })

  it('a restarted node keeps its peer id and rejoins', async () => {
    const index = 2
    const old = nodes[index]
    assert.equal(await old.stop(), 0)
    assert.match(old.output(), /stopped/)
    await waitUntil('the others to notice', async () => !(await peerIds(nodes[0])).includes(old.peerId))
    const restarted = await spawnNode({ dataDir: old.dataDir, bootstrap: [nodes[0].tcpAddr] })
    nodes[index] = restarted
    assert.equal(restarted.peerId, old.peerId)
    await waitUntil('the restarted node to see all 4 others again', async () => (await peerIds(restarted)).length === 4)
    await waitUntil('the others to see it again', async () => {
      for (const node of nodes.filter(n => n !== restarted)) {
        if (!(await peerIds(node)).includes(restarted.peerId)) return false
      }
      return true
    })
  })
})
