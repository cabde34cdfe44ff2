/**
 * Agent registry lookups among N in-process member nodes on the memory transport, for benchmarks:
 * some nodes publish agent cards, others look them up by principal (`registry.get`: the DHT query,
 * the record's checks and the host's membership) and by skill (`registry.find`: providers, then
 * each host asked). Figures: latency p50/p99 in ms, hops (this node's own store 0, a peer from the
 * routing table 1, a peer learned from a depth-d peer's answer d + 1) and queries sent per lookup.
 *
 * @example
 * const figures = await measureAgentLookups({ nodes: 50, agents: 10, lookups: 100 })
 * console.log(figures)
 */
import { principalFromPeerId } from '../src/crypto/principal.ts'
import { LookupStats } from '../src/registry/service.ts'
import { memoryNode } from '../test/helpers/memory-node.ts'
import { waitUntil } from '../test/helpers/processes.ts'
import { grant, key, tag } from '../test/spki/fixtures.ts'
import type { Registry } from '../src/registry/service.ts'
import type { CyberspaceNode } from '../src/node.ts'

export interface AgentLookupFigures {
  nodes: number
  agents: number
  lookups: number
  /** get by principal, ms */
  getP50: number
  getP99: number
  meanHops: number
  maxHops: number
  meanQueries: number
  /** Lookups answered from the asking node's own store. */
  localHits: number
  /** find by skill (one agent declares each skill), ms */
  findP50: number
  findP99: number
  /** publish (put at the closest peers, then provide each skill key), ms */
  publishP50: number
  /** Setup: starting the nodes and publishing, ms. */
  setupMs: number
  /** Lookups that failed (timed out, not found), with why: none expected. */
  failures: string[]
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/** Deterministic choices, so two runs ask the same questions. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

export async function measureAgentLookups(
  options: {
    nodes: number
    agents: number
    lookups: number
    seed?: number
    /** Which member certificates each node holds: its own (default; hosts prove membership on demand) or all. */
    certs?: 'own' | 'all'
    /** Told of each step (a node started, an agent published, a lookup done). */
    progress?: (what: string) => void
  } = { nodes: 50, agents: 10, lookups: 100 }
): Promise<AgentLookupFigures> {
  const start = performance.now()
  const random = rng(options.seed ?? 1)
  const nodes: CyberspaceNode[] = []
  const registries: Registry[] = []
  try {
    const root = await key()
    for (let i = 0; i < options.nodes; i++) {
      // each joins through one of the nodes before it, so routing tables are not all one hub
      const via = i === 0 ? [] : [nodes[Math.floor(random() * i)].multiaddrs()[0]]
      const node = await memoryNode({
        bootstrap: via,
        registryOptions: { lookupTimeout: 120_000 }
      })
      nodes.push(node)
      registries.push(node.registry)
      options.progress?.(`node ${i + 1}/${options.nodes} started`)
    }
    await waitUntil('every node connected', () => nodes.every(n => n.peers().length > 0), 120_000)
    options.progress?.('every node connected')
    const certs = await Promise.all(
      nodes.map(
        async n => await grant(root, { kind: 'key', principal: principalFromPeerId(n.peerId) }, '(cyberspace member)')
      )
    )
    // 'own': a node holds only its own member certificate, so a reader's first check of a host asks
    // the host to prove it (then remembers the chain); 'all': every node holds every one (n² stores)
    for (const [i, n] of nodes.entries()) {
      await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
      await n.spki.addAll({ certs: options.certs === 'all' ? certs : [certs[i]], crls: [] })
    }
    options.progress?.('member certificates held')
    const publishers: number[] = []
    const publishes: number[] = []
    const failures: string[] = []
    for (let a = 0; a < options.agents; a++) {
      const i = Math.floor(random() * nodes.length)
      if (publishers.includes(i)) continue
      const t = performance.now()
      try {
        await registries[i].publish({
          name: `agent-${a}`,
          description: 'benchmark agent',
          version: '1',
          skills: [{ id: `skill-${i}`, name: 's', description: 's', tags: [] }]
        })
        publishers.push(i)
        publishes.push(performance.now() - t)
      } catch (err) {
        failures.push(`publish: ${(err as Error).name}: ${(err as Error).message}`)
      }
      options.progress?.(`agent ${a + 1}/${options.agents} published`)
    }
    if (publishers.length === 0) throw new Error(`no agent could be published: ${failures.join('; ')}`)
    const setupMs = performance.now() - start
    const gets: number[] = []
    const hops: number[] = []
    const queries: number[] = []
    const finds: number[] = []
    let localHits = 0
    for (let l = 0; l < options.lookups; l++) {
      const target = publishers[Math.floor(random() * publishers.length)]
      let asker = Math.floor(random() * nodes.length)
      if (asker === target) asker = (asker + 1) % nodes.length
      const stats = new LookupStats()
      let t = performance.now()
      try {
        await registries[asker].get(principalFromPeerId(nodes[target].peerId), {
          stats,
          signal: AbortSignal.timeout(30_000)
        })
        gets.push(performance.now() - t)
        hops.push(stats.hops ?? 0)
        if (stats.hops === 0) localHits++
        queries.push(stats.queries)
      } catch (err) {
        failures.push(`get: ${(err as Error).name}: ${(err as Error).message}`)
      }
      t = performance.now()
      try {
        const found = await registries[asker].find(
          { skill: `skill-${target}` },
          { signal: AbortSignal.timeout(30_000) }
        )
        if (found.records.length !== 1)
          throw new Error(`find by skill-${target} returned ${found.records.length} records`)
        finds.push(performance.now() - t)
      } catch (err) {
        failures.push(`find: ${(err as Error).name}: ${(err as Error).message}`)
      }
      options.progress?.(`lookup ${l + 1}/${options.lookups}`)
    }
    gets.sort((a, b) => a - b)
    finds.sort((a, b) => a - b)
    const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length)
    return {
      nodes: options.nodes,
      agents: publishers.length,
      lookups: options.lookups,
      getP50: percentile(gets, 50),
      getP99: percentile(gets, 99),
      meanHops: mean(hops),
      maxHops: Math.max(...hops),
      meanQueries: mean(queries),
      localHits,
      findP50: percentile(finds, 50),
      findP99: percentile(finds, 99),
      publishP50: percentile(
        publishes.sort((x, y) => x - y),
        50
      ),
      setupMs,
      failures
    }
  } finally {
    await Promise.all(nodes.map(async n => await n.stop()))
  }
}
