/**
 * The benchmark harness: a benchmark is a module in bench/ named `*.bench.ts` whose default export
 * is a `Benchmark`. `npm run bench` runs them all (or those whose name contains the first
 * argument), prints each one's setup and table, and one JSON line per benchmark, prefixed `BENCH `,
 * for machines.
 */

export interface BenchResult {
  /** What was measured on what: machine, sizes, counts. */
  setup: Record<string, string | number>
  /** Column names, then rows. */
  columns: string[]
  rows: Array<Array<string | number>>
  /** The side-by-side comparison measured in the same run, e.g. { 'convergence N=30 / N=10': 2.1 }. */
  ratios: Record<string, number>
}

export interface Benchmark {
  name: string
  description: string
  run(): Promise<BenchResult>
}

const BENCH_PREFIX = 'BENCH '

/** A benchmark's result as the one machine-readable line `npm run bench` prints for it. */
export function benchLine(name: string, result: BenchResult): string {
  return BENCH_PREFIX + JSON.stringify({ name, ...result })
}

/**
 * The result of benchmark `name` in a run's output (its benchLine), or undefined. JSON has no NaN
 * (a figure with no samples): it comes back from null.
 */
export function readBenchLine(output: string, name: string): BenchResult | undefined {
  for (const line of output.split('\n')) {
    if (!line.startsWith(BENCH_PREFIX)) continue
    const parsed = JSON.parse(line.slice(BENCH_PREFIX.length), (_key, value: unknown) =>
      value === null ? Number.NaN : value
    ) as BenchResult & { name: string }
    if (parsed.name === name) return parsed
  }
  return undefined
}

export function formatTable(columns: string[], rows: Array<Array<string | number>>): string {
  const cells = [columns, ...rows.map(r => r.map(c => (typeof c === 'number' ? formatNumber(c) : c)))]
  const widths = columns.map((_, i) => Math.max(...cells.map(r => String(r[i] ?? '').length)))
  const line = (r: Array<string | number>): string => r.map((c, i) => String(c).padStart(widths[i])).join('  ')
  return [line(cells[0]), widths.map(w => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n')
}

function formatNumber(n: number): string {
  if (Number.isInteger(n)) return String(n)
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index]
}

/** The median of `values` in any order (the lower middle one of an even count), by `percentile`. */
export function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50
  )
}
