import { strict as assert } from 'node:assert'
import { chromium } from 'playwright-core'
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/browser.ts'
import { spawnNode, stopNodes, waitUntil } from '../helpers/processes.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { Browser, Page } from 'playwright-core'
import type { PeerSummary } from '../../src/node.ts'

const TOPIC = 'cyberspace-chat'

describe('a browser tab is a peer', function () {
  this.timeout(180_000)
  const nodes: NodeProcess[] = []
  let browser: Browser
  let page: Page
  let tabPeerId: string
  const pageErrors: string[] = []

  before(async () => {
    const a = await spawnNode()
    const b = await spawnNode({ bootstrap: [a.tcpAddr] })
    nodes.push(a, b)
    for (const node of nodes) await node.api.post('pubsub/subscribe', { topic: TOPIC })
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
    page = await browser.newPage()
    // record the durability each readwrite transaction of the tab's stores asks for
    await page.addInitScript(() => {
      const transaction = IDBDatabase.prototype.transaction
      const seen: string[] = []
      ;(globalThis as unknown as { readwriteDurability: string[] }).readwriteDurability = seen
      IDBDatabase.prototype.transaction = function (this: IDBDatabase, names, mode, options) {
        if (mode === 'readwrite' && this.name.startsWith('cyberspace/')) seen.push(options?.durability ?? 'default')
        return transaction.call(this, names, mode, options)
      }
    })
    page.on('pageerror', err => {
      pageErrors.push(err.message)
    })
  })

  after(async () => {
    await browser?.close()
    await stopNodes(nodes)
  })

  it('loads from a node, starts its own peer and joins both node processes over WebSockets', async () => {
    const [a, b] = nodes
    await page.goto(`${a.api.url}/`)
    await page.waitForSelector('#status[data-state="running"]', { timeout: 60_000 })
    tabPeerId = (await page.textContent('#peer-id')) ?? ''
    assert.match(tabPeerId, /^12D3KooW/)
    assert.notEqual(tabPeerId, a.peerId)
    // the page was told only of node A; it finds node B through the DHT
    for (const node of [a, b]) {
      await page.waitForSelector(`#peers li[data-peer-id="${node.peerId}"]`, { timeout: 60_000 })
    }
    const peerText = await page.textContent('#peers')
    assert.match(peerText ?? '', /\/ws\//)
    for (const node of [a, b]) {
      const peers = await node.api.get<PeerSummary[]>('peers')
      assert.ok(
        peers.some(p => p.peerId === tabPeerId && p.addrs.length > 0),
        `${node.peerId} sees the tab`
      )
    }
    await page.screenshot({ path: process.env.SCREENSHOT ?? '/tmp/cyberspace-tab.png' })
  })

  it('commits every write of its stores with strict durability', async () => {
    const seen = await page.evaluate(
      () => (globalThis as unknown as { readwriteDurability: string[] }).readwriteDurability
    )
    assert.ok(seen.length > 0, 'the tab wrote to its stores')
    assert.deepEqual([...new Set(seen)], ['strict'])
  })

  it('receives a gossipsub message from a node', async () => {
    const [, b] = nodes
    await waitUntil('node B to see the tab subscribed', async () =>
      (await b.api.get<string[]>('pubsub/peers', { topic: TOPIC })).includes(tabPeerId)
    )
    await b.api.post('pubsub/publish', { topic: TOPIC, data: 'hello tab, from node B' })
    const li = await page.waitForSelector(`#messages li[data-from="${b.peerId}"]`, { timeout: 30_000 })
    assert.match((await li.textContent()) ?? '', /hello tab, from node B/)
  })

  it('sends a gossipsub message that the nodes receive', async () => {
    await page.fill('#message', 'hello nodes, from the tab')
    await page.click('#send')
    await page.waitForSelector('#publish-result[data-recipients]:not([data-recipients="0"])', { timeout: 30_000 })
    for (const node of nodes) {
      await waitUntil(
        `${node.peerId} to receive the tab's message`,
        async () => {
          const { messages } = await node.api.get<{ messages: Array<{ from: string; data: string }> }>(
            'pubsub/messages',
            { topic: TOPIC }
          )
          return messages.some(m => m.from === tabPeerId && m.data === 'hello nodes, from the tab')
        },
        30_000
      )
    }
    assert.deepEqual(pageErrors, [])
  })

  it('a second tab connects to the first over WebRTC, signalled through a node relay', async () => {
    const [a] = nodes
    // the first tab reserves a slot on a node's relay and so becomes reachable at a /webrtc address
    const webrtcAddr = await page.waitForFunction(
      () =>
        [...document.querySelectorAll('#addrs li')]
          .map(li => li.textContent ?? '')
          .find(t => t.includes('/webrtc/p2p/')),
      undefined,
      { timeout: 60_000 }
    )
    const addr = (await webrtcAddr.jsonValue()) as string
    assert.ok(addr.endsWith(`/p2p/${tabPeerId}`), addr)
    assert.match(addr, /\/p2p-circuit\/webrtc\//)

    const second = await browser.newPage()
    second.on('pageerror', err => {
      pageErrors.push(err.message)
    })
    await second.goto(`${a.api.url}/`)
    await second.waitForSelector('#status[data-state="running"]', { timeout: 60_000 })
    const secondPeerId = (await second.textContent('#peer-id')) ?? ''
    assert.notEqual(secondPeerId, tabPeerId)
    await second.fill('#dial', addr)
    // a user retries a dial that failed (on a loaded machine the relayed signalling can time out once);
    // at most three attempts, each waiting for its own result
    let state: string | null = null
    let failures = ''
    for (let attempt = 0; attempt < 3 && state !== 'connected'; attempt++) {
      await second.click('#dial-button')
      await second.waitForSelector('#dial-result[data-state="connected"], #dial-result[data-state="failed"]', {
        timeout: 60_000
      })
      state = await second.getAttribute('#dial-result', 'data-state')
      if (state === 'failed') failures += `${(await second.textContent('#dial-result')) ?? ''}\n`
    }
    assert.equal(state, 'connected', failures)
    assert.match(
      (await second.textContent('#dial-result')) ?? '',
      new RegExp(`connected to ${tabPeerId} via .*/webrtc`)
    )
    await page.waitForSelector(`#peers li[data-peer-id="${secondPeerId}"]`, { timeout: 30_000 })
    await second.close()
    assert.deepEqual(pageErrors, [])
  })
})
