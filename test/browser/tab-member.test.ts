/**
 * A browser tab as a cluster member, reachable from one node only through a relay: node B listens
 * on TCP alone, which a tab cannot dial, so B reaches the tab through its reservation on node A's
 * relay (/p2p-circuit). The tab becomes a member through its own page (trust the root, import the
 * certificate the root issued to it), is probed and seen alive by both nodes, and closing it is
 * detected.
 */
import { strict as assert } from 'node:assert'
import { chromium } from 'playwright-core'
import { detectionBound } from '../../src/membership/service.ts'
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/browser.ts'
import { admit, memberCert } from '../helpers/members.ts'
import { spawnNode, stopNodes, waitUntil } from '../helpers/processes.ts'
import { key } from '../spki/fixtures.ts'
import type { MembersView } from '../../node/api/membership-routes.ts'
import type { PeerSummary } from '../../src/node.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { Browser, Page } from 'playwright-core'

async function stateOf(node: NodeProcess, peerId: string): Promise<string | undefined> {
  return (await node.api.get<MembersView>('members')).members.find(m => m.peerId === peerId)?.state
}

describe('a browser tab is a cluster member over a relay', function () {
  this.timeout(240_000)
  let nodes: NodeProcess[] = []
  let browser: Browser
  let page: Page
  const pageErrors: string[] = []

  before(async () => {
    const root = await key()
    const a = await spawnNode()
    // TCP only: the tab cannot dial B, so B reaches the tab through A's relay
    const b = await spawnNode({ bootstrap: [a.tcpAddr], listen: ['/ip4/127.0.0.1/tcp/0'] })
    nodes = [a, b]
    for (const node of nodes) await admit(node, root)
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
    page = await browser.newPage()
    page.on('pageerror', err => {
      pageErrors.push(err.message)
    })
    await page.goto(`${a.api.url}/`)
    await page.waitForSelector('#status[data-state="running"]', { timeout: 60_000 })
    const tabPeerId = (await page.textContent('#peer-id')) ?? ''
    await page.fill('#trust', root.id)
    await page.click('#trust-button')
    await page.waitForSelector('#cert-result[data-state="done"]', { timeout: 10_000 })
    await page.fill('#import', (await memberCert(root, tabPeerId)).text)
    await page.click('#import-button')
    await page.waitForSelector('#cert-result[data-state="done"]:has-text("imported 1")', { timeout: 10_000 })
  })

  after(async () => {
    await browser?.close()
    await stopNodes(nodes)
  })

  it('is probed through the relay and seen alive by every node; it sees them alive', async () => {
    const tabPeerId = (await page.textContent('#peer-id')) ?? ''
    await page.waitForSelector('#member-status:has-text("this tab is a member")', { timeout: 30_000 })
    for (const node of nodes)
      await waitUntil(
        `${node.peerId} to see the tab alive`,
        async () => (await stateOf(node, tabPeerId)) === 'alive',
        90_000
      )
    const [a, b] = nodes
    // B holds no direct connection to the tab: only a relayed one, through A
    let seen: PeerSummary | undefined
    await waitUntil(
      'B to hold a connection to the tab (it probes every member in turn)',
      async () => (seen = (await b.api.get<PeerSummary[]>('peers')).find(p => p.peerId === tabPeerId)) != null,
      30_000
    )
    assert.ok(seen != null)
    assert.ok(
      seen.addrs.every(addr => addr.includes('/p2p-circuit')),
      `B reaches the tab only through a relay: ${seen.addrs.join(' ')}`
    )
    // it stays alive while probes go through the relay, and the tab's own view lists both nodes alive
    await new Promise(resolve => setTimeout(resolve, 5000))
    for (const node of nodes) assert.equal(await stateOf(node, tabPeerId), 'alive')
    for (const node of [a, b])
      await page.waitForSelector(`#members tr[data-peer-id="${node.peerId}"][data-state="alive"]`, { timeout: 30_000 })
    assert.deepEqual(pageErrors, [])
  })

  it('closing the tab is detected by every node', async () => {
    const tabPeerId = (await page.textContent('#peer-id')) ?? ''
    await page.close()
    for (const node of nodes)
      await waitUntil(
        `${node.peerId} to see the closed tab dead`,
        async () => (await stateOf(node, tabPeerId)) === 'dead',
        detectionBound(3) + 30_000
      )
  })
})
