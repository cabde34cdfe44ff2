/**
 * DHT record lookups among in-process nodes on the memory transport, for the membership
 * benchmark: signed value records (`node.putValue`, format in protocols/values/) are published by
 * some nodes and looked up by others. A lookup runs kad-dht's query (what `node.getValue` runs)
 * and follows its events: the time to the first value plus its signature check, the hop count (a
 * peer the lookup started from is 1 hop away; a peer learned from another's answer is one more),
 * and how many peers were asked. The floor is one GET_VALUE to a peer that holds the record, over
 * the connection already open. (The agent registry, src/registry/, will put agent records under
 * their own namespace in the same DHT; lookups there take the same path.)
 *
 * @example
 * const figures = await measureDhtLookups({ nodes: 50, records: 10, lookups: 100 })
 */
import { verifyValueRecord } from '../src/network/values.ts'
import { valueKey } from '../protocols/values/codec.ts'
import { memoryNode } from '../test/helpers/memory-node.ts'
import { percentile } from './harness.ts'
import { progress, sleep } from './member-cluster.ts'
import type { CyberspaceNode } from '../src/node.ts'
import type { PeerId } from '@libp2p/interface'
import type { QueryEvent } from '@libp2p/kad-dht'

export interface DhtFigures {
  nodes: number
  records: number
  lookups: number
  /** Lookups answered from the asking node's own store (it was among the record's holders): not timed. */
  localHits: number
  p50: number
  p99: number
  meanHops: number
  maxHops: number
  meanAsked: number
  /** One GET_VALUE to a holder over an open connection: p50, ms. */
  directP50: number
  directP99: number
  /** Mean peers in a routing table when lookups began. */
  routingTable: number
}

/** kad-dht's peer routing, which the KadDHT class has but its interface does not name. */
interface SinglePeerGet {
  getValueOrPeers(
    peer: PeerId,
    key: Uint8Array,
    options: { signal?: AbortSignal; path: { index: number; queued: number; running: number; total: number } }
  ): AsyncIterable<QueryEvent>
}

interface Lookup {
  ms: number
  hops: number
  asked: number
  from?: PeerId
  local: boolean
}

async function lookup(node: CyberspaceNode, key: Uint8Array): Promise<Lookup> {
  const self = node.peerId.toString()
  const depth = new Map<string, number>()
  let asked = 0
  const start = performance.now()
  for await (const event of node.dht.get(key, { signal: AbortSignal.timeout(30_000) })) {
    if (event.name === 'SEND_QUERY') {
      asked++
      if (!depth.has(event.to.toString())) depth.set(event.to.toString(), 1)
    } else if (event.name === 'PEER_RESPONSE') {
      const hops = depth.get(event.from.toString()) ?? 1
      for (const closer of event.closer) {
        if (!depth.has(closer.id.toString())) depth.set(closer.id.toString(), hops + 1)
      }
    } else if (event.name === 'VALUE') {
      await verifyValueRecord(key, event.value)
      const ms = performance.now() - start
      const from = event.from.toString()
      if (from === self) return { ms, hops: 0, asked, local: true }
      return { ms, hops: depth.get(from) ?? 1, asked, from: event.from, local: false }
    }
  }
  throw new Error('the lookup ended without a value')
}

async function directFetch(node: CyberspaceNode, holder: PeerId, key: Uint8Array): Promise<number> {
  const routing = (node.dht as unknown as { peerRouting: SinglePeerGet }).peerRouting
  const start = performance.now()
  for await (const event of routing.getValueOrPeers(holder, key, {
    signal: AbortSignal.timeout(10_000),
    path: { index: 0, queued: 0, running: 0, total: 0 }
  })) {
    if (event.name === 'PEER_RESPONSE' && event.record != null) {
      await verifyValueRecord(key, event.record.value)
      return performance.now() - start
    }
  }
  throw new Error('the holder answered without the record')
}

/** Peers in a node's Kademlia routing table (the KadDHT class has it; its interface does not name it). */
function routingTableSize(node: CyberspaceNode): number {
  return (node.dht as unknown as { routingTable: { size: number } }).routingTable.size
}

function pick<T>(items: T[], not: T[]): T {
  for (let i = 0; i < 1000; i++) {
    const item = items[Math.floor(Math.random() * items.length)]
    if (!not.includes(item)) return item
  }
  throw new Error('nothing to pick')
}

export async function measureDhtLookups(options: {
  nodes: number
  records: number
  lookups: number
}): Promise<DhtFigures> {
  const nodes: CyberspaceNode[] = []
  try {
    const t0 = performance.now()
    const first = await memoryNode()
    nodes.push(first)
    const bootstrap = [first.multiaddrs()[0]]
    // in batches, so 50 starts do not all dial the first node in the same instant
    for (let i = 1; i < options.nodes; i += 10) {
      const batch = Math.min(10, options.nodes - i)
      nodes.push(...(await Promise.all(Array.from({ length: batch }, async () => await memoryNode({ bootstrap })))))
    }
    const want = Math.min(20, options.nodes - 1)
    const deadline = Date.now() + 120_000
    while (nodes.some(n => routingTableSize(n) < want) && Date.now() < deadline) await sleep(250)
    const routingTable = nodes.reduce((sum, n) => sum + routingTableSize(n), 0) / nodes.length
    progress(
      `dht: ${options.nodes} nodes up in ${((performance.now() - t0) / 1000).toFixed(1)} s, ` +
        `routing tables hold ${routingTable.toFixed(1)} peers on average`
    )

    const publishers = nodes.slice(0, options.records).map((_, i) => nodes[(i * 7 + 3) % nodes.length])
    const keys: Uint8Array[] = []
    for (const [i, publisher] of publishers.entries()) {
      const name = `bench-${i}`
      await publisher.putValue(name, crypto.getRandomValues(new Uint8Array(64)), {
        signal: AbortSignal.timeout(30_000)
      })
      keys.push(new TextEncoder().encode(valueKey(publisher.peerId.toString(), name)))
    }

    const timed: Lookup[] = []
    const direct: number[] = []
    let localHits = 0
    for (let j = 0; j < options.lookups; j++) {
      const r = j % keys.length
      const tried: CyberspaceNode[] = [publishers[r]]
      // a node that holds the record answers from its own store: count it, and ask from another
      for (let attempt = 0; attempt < 10; attempt++) {
        const getter = pick(nodes, tried)
        tried.push(getter)
        const found = await lookup(getter, keys[r])
        if (found.local) {
          localHits++
          continue
        }
        timed.push(found)
        if (found.from != null) direct.push(await directFetch(getter, found.from, keys[r]))
        break
      }
    }
    const ms = timed.map(l => l.ms).sort((a, b) => a - b)
    direct.sort((a, b) => a - b)
    return {
      nodes: options.nodes,
      records: options.records,
      lookups: timed.length,
      localHits,
      p50: percentile(ms, 50),
      p99: percentile(ms, 99),
      meanHops: timed.reduce((s, l) => s + l.hops, 0) / timed.length,
      maxHops: Math.max(...timed.map(l => l.hops)),
      meanAsked: timed.reduce((s, l) => s + l.asked, 0) / timed.length,
      directP50: percentile(direct, 50),
      directP99: percentile(direct, 99),
      routingTable
    }
  } finally {
    await Promise.all(nodes.map(async n => await n.stop().catch(() => {})))
  }
}
