/**
 * Cluster formation and gossip on loopback: N node processes started with the CLI, all
 * bootstrapped from the first. Measures the time until every node is connected to every other,
 * then the gossipsub delivery latency and ratio of 1 KB messages published from every node in turn.
 * N = 10 and N = 30 run back to back, and the ratios compare them.
 */
import { sleep, spawnNode, stopNodes, waitUntil } from '../test/helpers/processes.ts'
import { percentile } from './harness.ts'
import type { Benchmark, BenchResult } from './harness.ts'
import type { NodeProcess } from '../test/helpers/processes.ts'
import type { PeerSummary } from '../src/node.ts'

const SIZES = [10, 30]
const MESSAGES = 60
const MESSAGE_BYTES = 1024
const PUBLISH_INTERVAL_MS = 50
const TOPIC = 'bench-gossip'
const SUBSCRIBE_WAIT_MS = 30_000

interface ClusterFigures {
  n: number
  startMs: number
  convergeMs: number
  meshMs: number
  subscriptionCoverage: number
  p50: number
  p99: number
  max: number
  deliveryRatio: number
}

function progress(line: string): void {
  process.stderr.write(`  ${line}\n`)
}

async function measure(n: number): Promise<ClusterFigures> {
  const nodes: NodeProcess[] = []
  try {
    const t0 = performance.now()
    const first = await spawnNode({ startTimeoutMs: 60_000 })
    nodes.push(first)
    nodes.push(
      ...(await Promise.all(
        Array.from(
          { length: n - 1 },
          async () => await spawnNode({ bootstrap: [first.tcpAddr], startTimeoutMs: 120_000 })
        )
      ))
    )
    const started = performance.now()
    progress(`N=${n}: all started in ${((started - t0) / 1000).toFixed(1)} s`)

    await waitUntil(
      `a full mesh of ${n} nodes`,
      async () => {
        const counts = await Promise.all(nodes.map(async node => (await node.api.get<PeerSummary[]>('peers')).length))
        return counts.every(c => c === n - 1)
      },
      180_000,
      100
    )
    const converged = performance.now()
    progress(`N=${n}: full mesh after ${((converged - started) / 1000).toFixed(1)} s`)

    await Promise.all(nodes.map(async node => await node.api.post('pubsub/subscribe', { topic: TOPIC })))
    // wait for every node to see every other as a subscriber, for at most SUBSCRIBE_WAIT_MS; a
    // shortfall is reported (and shows again in the delivery ratio), not hidden
    let seen = 0
    const subscribeDeadline = Date.now() + SUBSCRIBE_WAIT_MS
    while (Date.now() < subscribeDeadline) {
      const counts = await Promise.all(
        nodes.map(async node => (await node.api.get<string[]>('pubsub/peers', { topic: TOPIC })).length)
      )
      seen = counts.reduce((sum, c) => sum + c, 0)
      if (seen === n * (n - 1)) break
      await sleep(200)
    }
    const meshed = performance.now()
    const subscriptionCoverage = seen / (n * (n - 1))
    progress(
      `N=${n}: ${(subscriptionCoverage * 100).toFixed(1)}% of subscriptions seen after ${((meshed - converged) / 1000).toFixed(1)} s`
    )
    // let gossipsub's heartbeat graft the mesh before measuring
    await sleep(2_000)

    const sent = new Map<string, { at: number; from: string }>()
    for (let i = 0; i < MESSAGES; i++) {
      const sender = nodes[i % n]
      const id = `m${i}`
      const head = JSON.stringify({ id })
      const data = head + ' '.repeat(MESSAGE_BYTES - head.length)
      const at = performance.timeOrigin + performance.now()
      sent.set(id, { at, from: sender.peerId })
      await sender.api.post('pubsub/publish', { topic: TOPIC, data })
      await sleep(PUBLISH_INTERVAL_MS)
    }
    const expected = MESSAGES * (n - 1)
    const latencies: number[] = []
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline) {
      latencies.length = 0
      for (const node of nodes) {
        const { messages } = await node.api.get<{ messages: Array<{ data: string; receivedAt: number }> }>(
          'pubsub/messages',
          { topic: TOPIC }
        )
        for (const m of messages) {
          const { id } = JSON.parse(m.data) as { id: string }
          const s = sent.get(id)
          if (s != null) latencies.push(m.receivedAt - s.at)
        }
      }
      if (latencies.length >= expected) break
      await sleep(500)
    }
    latencies.sort((a, b) => a - b)
    return {
      n,
      startMs: started - t0,
      convergeMs: converged - started,
      meshMs: meshed - converged,
      subscriptionCoverage,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies.at(-1) ?? Number.NaN,
      deliveryRatio: latencies.length / expected
    }
  } finally {
    await stopNodes(nodes, 5_000)
  }
}

const benchmark: Benchmark = {
  name: 'cluster',
  description: 'N node processes on 127.0.0.1: time to a full mesh, then 1 KB gossipsub latency',
  async run(): Promise<BenchResult> {
    const figures: ClusterFigures[] = []
    for (const n of SIZES) figures.push(await measure(n))
    const [small, large] = figures
    return {
      setup: {
        sizes: SIZES.join(','),
        transport: 'tcp on 127.0.0.1',
        messages: MESSAGES,
        messageBytes: MESSAGE_BYTES,
        publishIntervalMs: PUBLISH_INTERVAL_MS,
        latency: 'publish request at the sender to arrival at each receiver'
      },
      columns: [
        'nodes',
        'start all (ms)',
        'full mesh (ms)',
        'subscriptions (ms)',
        'seen',
        'gossip p50 (ms)',
        'p99 (ms)',
        'max (ms)',
        'delivered'
      ],
      rows: figures.map(f => [
        f.n,
        f.startMs,
        f.convergeMs,
        f.meshMs,
        `${(f.subscriptionCoverage * 100).toFixed(1)}%`,
        f.p50,
        f.p99,
        f.max,
        `${(f.deliveryRatio * 100).toFixed(1)}%`
      ]),
      ratios: {
        [`full mesh time N=${large.n} / N=${small.n}`]: large.convergeMs / small.convergeMs,
        [`gossip p50 N=${large.n} / N=${small.n}`]: large.p50 / small.p50,
        [`gossip p99 N=${large.n} / N=${small.n}`]: large.p99 / small.p99
      }
    }
  }
}

export default benchmark
