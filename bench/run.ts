/** `npm run bench [filter]`: runs every bench/*.bench.ts (see harness.ts). */
import { readdir } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { benchLine, formatTable } from './harness.ts'
import type { Benchmark } from './harness.ts'

const filter = process.argv[2] ?? ''
const dir = new URL('.', import.meta.url)
const files = (await readdir(dir)).filter(f => f.endsWith('.bench.ts')).sort()
let failed = false
for (const file of files) {
  const bench = ((await import(new URL(file, dir).href)) as { default: Benchmark }).default
  if (!bench.name.includes(filter)) continue
  console.log(`\n## ${bench.name}: ${bench.description}`)
  try {
    const result = await bench.run()
    const setup = {
      node: process.version,
      cpus: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      ...result.setup
    }
    console.log(
      'setup: ' +
        Object.entries(setup)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')
    )
    console.log(formatTable(result.columns, result.rows))
    for (const [what, ratio] of Object.entries(result.ratios)) console.log(`ratio ${what}: ${ratio.toFixed(2)}`)
    console.log(benchLine(bench.name, { ...result, setup }))
  } catch (err) {
    failed = true
    console.error(`${bench.name} failed: ${(err as Error).stack ?? String(err)}`)
  }
}
process.exit(failed ? 1 : 0)
