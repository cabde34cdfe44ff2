/**
 * DHT record lookups among in-process nodes on the memory transport, for the membership
 * benchmark: signed value records (format in protocols/values/, signed as `node.putValue` signs
 * them) are put by some nodes and looked up by nodes that do not hold them. A lookup runs
 * kad-dht's get (the query `node.getValue` runs) and follows its events: the time until the first
 * verified record arrives, the time until the query ends and the best record is chosen (what
 * `node.getValue` waits for), the hops to the peer that sent the first record (a peer the query
 * started from is 1 hop away; a peer named in another's answer is one more), and the peers asked.
 * The floor is one GET_VALUE to a holder over the connection already open. (The agent registry,
 * src/registry/, puts agent records under its own namespace in the same DHT: the same query.)
 *
 * @example
 * const figures = await measureDhtLookups({ nodes: 50, records: 8, lookups: 40 })
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { signValueRecord, verifyValueRecord } from '../src/network/values.ts'
import { valueKey } from '../protocols/values/codec.ts'
import { memoryNode } from '../test/helpers/memory-node.ts'
import { percentile } from './harness.ts'
import { progress, sleep } from './member-cluster.ts'
import type { CyberspaceNode } from '../src/node.ts'
import type { PeerId } from '@libp2p/interface'
import type { QueryEvent } from '@libp2p/kad-dht'

/** Lookups begin once every routing table holds this many peers, or after the wait. */
const ROUTING_TABLE_WANTED = 10
const ROUTING_TABLE_WAIT_MS = 90_000

export interface DhtFigures {
  nodes: number
  records: number
  lookups: number
  /** Publishing a record (the query for the closest peers, then PUT_VALUE to each): p50, ms. */
  putP50: number
  /** Until the first verified record arrives from a peer: p50 / p99, ms. */
  firstP50: number
  firstP99: number
  /** Until the query ends and the best record is chosen: what `node.getValue` waits for. */
  doneP50: number
  doneP99: number
  /** Hops to the peer that sent the first record, and peers asked before it. */
  meanHops: number
  maxHops: number
  meanAskedFirst: number
  /** Peers asked by the whole query. */
  meanAskedDone: number
  /** One GET_VALUE to a holder over an open connection: p50 / p99, ms. */
  directP50: number
  directP99: number
  /** Mean peers in a routing table when lookups began, and holders per record. */
  routingTable: number
  holders: number
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
  firstMs: number
  doneMs: number
  hops: number
  askedFirst: number
  askedDone: number
  holder: PeerId
}

/** kad-dht's get, followed event by event (the query `node.getValue` runs, through libp2p's content routing). */
async function lookup(node: CyberspaceNode, key: Uint8Array): Promise<Lookup> {
  const depth = new Map<string, number>()
  let asked = 0
  let first: Omit<Lookup, 'doneMs' | 'askedDone'> | undefined
  const start = performance.now()
  for await (const event of node.dht.get(key, { signal: AbortSignal.timeout(60_000) })) {
    if (event.name === 'SEND_QUERY') {
      asked++
      if (!depth.has(event.to.toString())) depth.set(event.to.toString(), 1)
    } else if (event.name === 'PEER_RESPONSE') {
      const hops = depth.get(event.from.toString()) ?? 1
      for (const closer of event.closer) {
        if (!depth.has(closer.id.toString())) depth.set(closer.id.toString(), hops + 1)
      }
      if (first == null && event.record != null) {
        await verifyValueRecord(key, event.record.value)
        first = { firstMs: performance.now() - start, hops, askedFirst: asked, holder: event.from }
      }
    } else if (event.name === 'VALUE') {
      await verifyValueRecord(key, event.value)
      if (first == null) throw new Error('the lookup chose a value no peer sent')
      return { ...first, doneMs: performance.now() - start, askedDone: asked }
    }
  }
  throw new Error('the lookup ended without a value')
}

/** One GET_VALUE to `holder` (kad-dht checks the record with the node's validator, as in a lookup). */
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

export async function measureDhtLookups(options: {
  nodes: number
  records: number
  lookups: number
}): Promise<DhtFigures> {
  const nodes: CyberspaceNode[] = []
  try {
    const t0 = performance.now()
    const keys = await Promise.all(Array.from({ length: options.nodes }, async () => await generateKeyPair('Ed25519')))
    const first = await memoryNode({ privateKey: keys[0] })
    nodes.push(first)
    const bootstrap = [first.multiaddrs()[0]]
    // in batches, so 50 starts do not all dial the first node in the same instant
    for (let i = 1; i < options.nodes; i += 10) {
      const batch = keys.slice(i, Math.min(i + 10, options.nodes))
      nodes.push(...(await Promise.all(batch.map(async privateKey => await memoryNode({ bootstrap, privateKey })))))
    }
    const want = Math.min(ROUTING_TABLE_WANTED, options.nodes - 1)
    const deadline = Date.now() + ROUTING_TABLE_WAIT_MS
    while (nodes.some(n => routingTableSize(n) < want) && Date.now() < deadline) await sleep(500)
    const routingTable = nodes.reduce((sum, n) => sum + routingTableSize(n), 0) / nodes.length
    progress(
      `dht: ${options.nodes} nodes up in ${((performance.now() - t0) / 1000).toFixed(1)} s, ` +
        `routing tables hold ${routingTable.toFixed(1)} peers on average (smallest ${Math.min(...nodes.map(routingTableSize))})`
    )

    // records signed as node.putValue signs them, put with kad-dht's events to learn who holds each
    const records: Array<{ key: Uint8Array; publisher: number; holders: Set<string> }> = []
    const puts: number[] = []
    for (let r = 0; r < options.records; r++) {
      const publisher = (r * 7 + 3) % nodes.length
      const node = nodes[publisher]
      const name = `bench-${r}`
      const key = new TextEncoder().encode(valueKey(node.peerId.toString(), name))
      const record = await signValueRecord(
        keys[publisher],
        name,
        crypto.getRandomValues(new Uint8Array(64)),
        Date.now()
      )
      const holders = new Set([node.peerId.toString()])
      const start = performance.now()
      for await (const event of node.dht.put(key, record, { signal: AbortSignal.timeout(120_000) })) {
        if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') holders.add(event.from.toString())
      }
      puts.push(performance.now() - start)
      records.push({ key, publisher, holders })
    }
    progress(
      `dht: ${options.records} records put, p50 ${percentile(
        [...puts].sort((a, b) => a - b),
        50
      ).toFixed(0)} ms`
    )

    const timed: Lookup[] = []
    const direct: number[] = []
    for (let j = 0; j < options.lookups; j++) {
      const { key, holders } = records[j % records.length]
      // asked by a node that does not hold the record itself
      const askers = nodes.filter(n => !holders.has(n.peerId.toString()))
      if (askers.length === 0) continue
      const asker = askers[Math.floor(Math.random() * askers.length)]
      const found = await lookup(asker, key)
      timed.push(found)
      direct.push(await directFetch(asker, found.holder, key))
    }
    const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b)
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
    const firsts = sorted(timed.map(l => l.firstMs))
    const dones = sorted(timed.map(l => l.doneMs))
    const directs = sorted(direct)
    return {
      nodes: options.nodes,
      records: options.records,
      lookups: timed.length,
      putP50: percentile(sorted(puts), 50),
      firstP50: percentile(firsts, 50),
      firstP99: percentile(firsts, 99),
      doneP50: percentile(dones, 50),
      doneP99: percentile(dones, 99),
      meanHops: mean(timed.map(l => l.hops)),
      maxHops: Math.max(...timed.map(l => l.hops)),
      meanAskedFirst: mean(timed.map(l => l.askedFirst)),
      meanAskedDone: mean(timed.map(l => l.askedDone)),
      directP50: percentile(directs, 50),
      directP99: percentile(directs, 99),
      routingTable,
      holders: mean(records.map(r => r.holders.size))
    }
  } finally {
    await Promise.all(nodes.map(async n => await n.stop().catch(() => {})))
  }
}
