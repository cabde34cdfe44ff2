import { strict as assert } from 'node:assert'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { chromium } from 'playwright-core'
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/browser.ts'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Browser } from 'playwright-core'

const root = fileURLToPath(new URL('../../', import.meta.url))

// a real Chromium runs browser/worker-host.ts: module Web Workers, wall-clock deadline
describe('workerBehaviour on Web Workers', function () {
  this.timeout(120_000)
  let dir: string
  let server: Server
  let browser: Browser | undefined
  let base: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cyberspace-worker-browser-'))
    const common = {
      bundle: true,
      format: 'esm' as const,
      platform: 'browser' as const,
      target: 'es2022',
      logLevel: 'error' as const,
      define: { 'process.env.NODE_DEBUG': 'undefined', global: 'globalThis' }
    }
    await build({ ...common, entryPoints: [join(root, 'browser/worker-host.ts')], outfile: join(dir, 'runner.js') })
    await build({
      ...common,
      entryPoints: [join(root, 'test/actor/fixtures/browser-page.ts')],
      outfile: join(dir, 'page.js')
    })
    await build({
      ...common,
      entryPoints: [join(root, 'test/actor/fixtures/spin-behaviour.ts')],
      outfile: join(dir, 'spin-behaviour.js')
    })
    await writeFile(join(dir, 'index.html'), '<!doctype html><script type="module" src="./page.js"></script>')
    server = createServer((req, res) => {
      const name = (req.url ?? '/').split('?')[0].replace(/^\/+/, '') || 'index.html'
      if (!/^[a-z-]+\.(js|html)$/.test(name)) {
        res.writeHead(404).end()
        return
      }
      readFile(join(dir, name)).then(
        body =>
          res.writeHead(200, { 'content-type': name.endsWith('.js') ? 'text/javascript' : 'text/html' }).end(body),
        () => res.writeHead(404).end()
      )
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  })

  after(async () => {
    await browser?.close()
    server?.close()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('runs a busy loop in a Web Worker: the page keeps answering, the deadline terminates it, the restart gets a fresh worker', async () => {
    assert.ok(browser)
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', error => errors.push(error.message))
    await page.goto(`${base}/index.html`)
    await page.waitForFunction(() => 'runWorkerTest' in globalThis)
    const result = await page.evaluate(async () => await (globalThis as any).runWorkerTest())
    assert.equal(typeof result.first, 'string')
    assert.deepEqual(result.echoed, { n: 1, s: 'x' })
    assert.equal(result.timedOut, 'HandlerTimeoutError')
    assert.deepEqual(result.order, ['echo 0', 'echo 1', 'echo 2', 'echo 3', 'echo 4', 'cpu timed out'])
    assert.equal(typeof result.second, 'string')
    assert.notEqual(result.second, result.first) // a fresh worker after the restart
    assert.deepEqual(errors, [])
  })
})
