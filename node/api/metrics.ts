/**
 * Prometheus metrics of a node and its API port, in the text exposition format 0.0.4, served at
 * `GET /metrics` (operator token required: the figures say little — counts of peers, members,
 * boards, agents, requests — but they are the operator's, and a scraper can send a bearer token).
 *
 * Written here rather than with prom-client: a counter, a histogram and a few gauges read at scrape
 * time are ~150 lines, with no dependency and no global registry.
 *
 * - `cyberspace_api_requests_total{route,method,status}`: answers, by route name (a name of
 *   ROUTES, `v0` for the control API, a mount's prefix, `page`, `openapi`, `metrics`, `unmatched`).
 * - `cyberspace_api_request_duration_seconds{route}`: time to the end of the answer (stream
 *   routes are left out: they last as long as their reader).
 * - `cyberspace_api_streams_open{route}`: event streams answering now.
 * - `cyberspace_api_agent_tokens`, `cyberspace_peers`, `cyberspace_members{state}`,
 *   `cyberspace_boards`, `cyberspace_hosted_agents`, `cyberspace_event_journal_entries`, and the
 *   process's resident and heap memory.
 *
 * @example
 * const metrics = new ApiMetrics({ node, tokens })
 * metrics.request('claimTask', 'POST', 200, 0.0012)
 * send(res, 200, METRICS_CONTENT_TYPE, await metrics.render())
 */
import type { CyberspaceNode } from '../../src/node.ts'
import type { AgentTokens } from './agent-tokens.ts'

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
/** Upper bounds of the duration histogram's buckets, in seconds: 0.25 ms to 10 s. */
export const DURATION_BUCKETS = [
  0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
]
/** Label sets kept per metric: past it, new ones are counted under route `other` (bounded memory). */
export const MAX_SERIES = 1024

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])

interface Histogram {
  buckets: number[]
  sum: number
  count: number
}

/** A label value as the format writes it: backslash, quote and newline escaped. */
function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/** Entries in the order of their keys, so a scrape reads the same from one time to the next. */
function byKey<V>(map: Map<string, V>): Array<[string, V]> {
  return [...map].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
}

function labels(pairs: Record<string, string>): string {
  const text = Object.entries(pairs)
    .map(([k, v]) => `${k}="${label(v)}"`)
    .join(',')
  return text === '' ? '' : `{${text}}`
}

/** A number as the format writes it (`+Inf`, `NaN` spelled its way). */
function num(n: number): string {
  if (Number.isNaN(n)) return 'NaN'
  if (n === Infinity) return '+Inf'
  if (n === -Infinity) return '-Inf'
  return String(n)
}

export interface ApiMetricsInit {
  node: CyberspaceNode
  tokens: AgentTokens
}

export class ApiMetrics {
  private readonly node: CyberspaceNode
  private readonly tokens: AgentTokens
  /** By `route\0method\0status`. */
  private readonly requests = new Map<string, number>()
  private readonly durations = new Map<string, Histogram>()
  private readonly streams = new Map<string, number>()

  constructor(init: ApiMetricsInit) {
    this.node = init.node
    this.tokens = init.tokens
  }

  /** Counts one answer of `route`, and (unless it was a stream) how long it took. */
  request(route: string, method: string, status: number, seconds?: number): void {
    const m = METHODS.has(method) ? method : 'OTHER'
    let key = `${route}\0${m}\0${status}`
    if (!this.requests.has(key) && this.requests.size >= MAX_SERIES) key = `other\0${m}\0${status}`
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1)
    if (seconds === undefined) return
    let name = route
    if (!this.durations.has(name) && this.durations.size >= MAX_SERIES) name = 'other'
    let h = this.durations.get(name)
    if (h == null) this.durations.set(name, (h = { buckets: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 }))
    for (let i = 0; i < DURATION_BUCKETS.length; i++) if (seconds <= DURATION_BUCKETS[i]) h.buckets[i]++
    h.sum += seconds
    h.count++
  }

  /** A stream of `route` opened (+1) or ended (-1). */
  stream(route: string, delta: 1 | -1): void {
    const open = (this.streams.get(route) ?? 0) + delta
    if (open <= 0) this.streams.delete(route)
    else if (this.streams.has(route) || this.streams.size < MAX_SERIES) this.streams.set(route, open)
  }

  /** Every metric, in the text exposition format. */
  async render(): Promise<string> {
    const lines: string[] = []
    const family = (name: string, type: string, help: string): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    }
    const gauge = (name: string, help: string, read: () => number): void => {
      let value: number
      try {
        value = read()
      } catch {
        return // a part of the node that is not running has no figure
      }
      family(name, 'gauge', help)
      lines.push(`${name} ${num(value)}`)
    }

    family('cyberspace_api_requests_total', 'counter', 'Answers of the API port, by route, method and status.')
    for (const [key, count] of byKey(this.requests)) {
      const [route, method, status] = key.split('\0')
      lines.push(`cyberspace_api_requests_total${labels({ route, method, status })} ${count}`)
    }
    family(
      'cyberspace_api_request_duration_seconds',
      'histogram',
      'Time from a request to the end of its answer, by route (streams left out).'
    )
    for (const [route, h] of byKey(this.durations)) {
      const name = 'cyberspace_api_request_duration_seconds'
      DURATION_BUCKETS.forEach((le, i) => {
        lines.push(`${name}_bucket${labels({ route, le: num(le) })} ${h.buckets[i]}`)
      })
      lines.push(`${name}_bucket${labels({ route, le: '+Inf' })} ${h.count}`)
      lines.push(`${name}_sum${labels({ route })} ${num(h.sum)}`)
      lines.push(`${name}_count${labels({ route })} ${h.count}`)
    }
    family('cyberspace_api_streams_open', 'gauge', 'Event streams the API port is answering now, by route.')
    for (const [route, open] of byKey(this.streams)) {
      lines.push(`cyberspace_api_streams_open${labels({ route })} ${open}`)
    }

    gauge('cyberspace_api_agent_tokens', "Agents' tokens live on this node.", () => this.tokens.list().length)
    gauge('cyberspace_peers', 'Peers this node holds connections to.', () => this.node.peers().length)
    let members: Map<string, number> | undefined
    try {
      members = new Map()
      for (const m of this.node.membership.members()) members.set(m.state, (members.get(m.state) ?? 0) + 1)
    } catch {
      members = undefined
    }
    if (members != null) {
      family('cyberspace_members', 'gauge', "The cluster's members in this node's view, by state.")
      for (const [state, n] of byKey(members)) lines.push(`cyberspace_members${labels({ state })} ${n}`)
    }
    let boards: number | undefined
    try {
      boards = (await this.node.work.boards({ signal: AbortSignal.timeout(5_000) })).length
    } catch {
      boards = undefined
    }
    gauge('cyberspace_boards', 'Boards of work items open or stored on this node.', () => {
      if (boards === undefined) throw new Error('no boards')
      return boards
    })
    gauge('cyberspace_hosted_agents', 'Agents this node hosts.', () => this.node.agents.list().length)
    gauge(
      'cyberspace_event_journal_entries',
      "Events the node's journal holds (the API's events and streams read it).",
      () => this.node.work.events.size
    )
    const memory = process.memoryUsage()
    gauge('process_resident_memory_bytes', 'Resident memory of the node process, in bytes.', () => memory.rss)
    gauge('nodejs_heap_used_bytes', 'V8 heap in use, in bytes.', () => memory.heapUsed)
    return lines.join('\n') + '\n'
  }
}
