/**
 * Builds the web page into dist/browser/ (index.html + bundle.js) with esbuild. The node process
 * serves that folder on its control-API port; it can also be hosted as static files anywhere and
 * pointed at nodes with `?bootstrap=<multiaddr>`.
 */
import { copyFile, mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = `${root}dist/browser`

await mkdir(out, { recursive: true })
await build({
  entryPoints: [`${root}browser/page/main.ts`],
  outfile: `${out}/bundle.js`,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: 'linked',
  logLevel: 'warning',
  define: { 'process.env.NODE_DEBUG': 'undefined', global: 'globalThis' }
})
await copyFile(`${root}browser/page/index.html`, `${out}/index.html`)
