import { strict as assert } from 'node:assert'
import { rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { ed25519 as nobleCurve } from '@noble/curves/ed25519.js'
import { base16 } from 'multiformats/bases/base16'
import { parsePrincipal } from '../../src/crypto/principal.ts'
import { cliOk as ok, cliOn as on, spawnNode, stopNodes, waitUntil } from '../helpers/processes.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { ClusterView, RepairView, ReshareView } from '../../node/api/cluster-routes.ts'

const exists = async (file: string): Promise<boolean> =>
  await stat(file).then(
    () => true,
    () => false
  )

/**
 * `cyberspace cluster reshare` among five node processes on 127.0.0.1: a 2-of-3 cluster key moves
 * to 3-of-5, then to 2-of-4 without one of the first members; the principal never changes.
 */
describe('cyberspace cluster reshare: 2-of-3 → 3-of-5 → 2-of-4 between node processes', function () {
  this.timeout(240_000)
  let nodes: NodeProcess[] = []
  let principal: string
  let groupKey: Uint8Array
  const id = (n: NodeProcess): string => parsePrincipal(n.peerId)

  /** A cluster message signed through `node`, checked with plain Ed25519 under the unchanged group key. */
  const signs = async (node: NodeProcess, text: string): Promise<string[]> => {
    const signed = JSON.parse(await ok(node, 'cluster', 'sign', text, '--json')) as {
      signature: string
      signers: string[]
    }
    const payload = new TextEncoder().encode(`cyberspace/cluster-message/v1\0${text}`)
    assert.ok(nobleCurve.verify(base16.baseDecode(signed.signature), payload, groupKey))
    return signed.signers
  }

  before(async () => {
    const a = await spawnNode()
    nodes = [
      a,
      ...(await Promise.all(Array.from({ length: 4 }, async () => await spawnNode({ bootstrap: [a.tcpAddr] }))))
    ]
    await waitUntil(
      'A connected to the other four',
      async () => (await a.api.get<unknown[]>('peers')).length === 4,
      60_000
    )
    // every other node's operator lets A run the cluster's key ceremonies
    for (const n of nodes.slice(1)) await n.api.post('spki/acl', { principal: id(a), tag: '(cyberspace (cluster))' })
    const view = JSON.parse(
      await ok(a, 'cluster', 'init', '--members', `${nodes[1].peerId},${nodes[2].peerId}`, '--threshold', '2', '--json')
    ) as ClusterView
    principal = view.principal
    groupKey = base16.baseDecode(view.groupKey)
    // the cluster admits all five as members, and the old members accept its member certificates
    for (const n of nodes) await a.api.post('cluster/issue', { subject: id(n), tag: '(cyberspace member)' })
    for (const n of nodes.slice(0, 3)) await n.api.post('spki/acl', { principal, tag: '(cyberspace member)' })
  })
  after(async () => {
    await stopNodes(nodes)
  })

  it('refuses bad usage and a repair of a non-member by name, changing nothing', async () => {
    const a = nodes[0]
    const usage = await on(a, 'cluster', 'reshare', '--threshold', '2')
    assert.equal(usage.code, 2)
    assert.match(usage.stderr, /cluster reshare needs --members/)
    const stranger = await on(a, 'cluster', 'repair', nodes[3].peerId)
    assert.equal(stranger.code, 1)
    assert.match(stranger.stderr, /is not a member of this cluster/)
    assert.equal((JSON.parse(await ok(a, 'cluster', 'show', '--json')) as ClusterView).epoch, 0)
  })

  it('reshares 2-of-3 to 3-of-5, showing progress: same principal, every new member holds a share, the five sign', async () => {
    const a = nodes[0]
    const run = await on(
      a,
      'cluster',
      'reshare',
      '--members',
      nodes.map(n => n.peerId).join(','),
      '--threshold',
      '3',
      '--json'
    )
    assert.equal(run.code, 0, run.stderr)
    const view = JSON.parse(run.stdout) as ReshareView
    assert.equal(view.principal, principal)
    assert.equal(view.threshold, 3)
    assert.equal(view.epoch, 1)
    assert.deepEqual(view.lagging, {})
    assert.match(run.stderr, /^deal: asking 2 old members for deals/m)
    assert.match(run.stderr, /^commit: telling the 5 new members to switch/m)
    for (const n of nodes) {
      const shown = JSON.parse(await ok(n, 'cluster', 'show', '--json')) as ClusterView
      assert.equal(shown.principal, principal)
      assert.equal(shown.epoch, 1)
      assert.equal(shown.members.length, 5)
    }
    assert.equal((await signs(nodes[0], 'signed by three of the five')).length, 3)
  })

  it('repairs a member whose share file is gone, with cluster repair', async () => {
    const d = nodes[3]
    await d.stop()
    await rm(join(d.dataDir, 'cluster.share'))
    nodes[3] = await spawnNode({ dataDir: d.dataDir, bootstrap: [nodes[0].tcpAddr] })
    await waitUntil('D connected again', async () => (await nodes[3].api.get<unknown[]>('peers')).length > 0, 30_000)
    assert.equal((await on(nodes[3], 'cluster', 'show')).code, 1)
    const repaired = JSON.parse(await ok(nodes[0], 'cluster', 'repair', nodes[3].peerId, '--json')) as RepairView
    assert.equal(repaired.member, id(nodes[3]))
    assert.equal(repaired.helpers.length, 3)
    const shown = JSON.parse(await ok(nodes[3], 'cluster', 'show', '--json')) as ClusterView
    assert.equal(shown.principal, principal)
    assert.equal(shown.epoch, 1)
    assert.equal((await stat(join(nodes[3].dataDir, 'cluster.share'))).mode & 0o777, 0o600)
  })

  it('reshares 3-of-5 to 2-of-4 without C: same principal, C deletes its share, the four sign', async () => {
    const [a, b, c, d, e] = nodes
    const out = await ok(
      a,
      'cluster',
      'reshare',
      '--members',
      [a, b, d, e].map(n => n.peerId).join(','),
      '--threshold',
      '2'
    )
    assert.match(out, new RegExp(`^${principal}\\n {2}threshold {3}2 of 4\\n {2}epoch {7}2\\n`))
    const shown = JSON.parse(await ok(e, 'cluster', 'show', '--json')) as ClusterView
    assert.equal(shown.principal, principal)
    assert.equal(shown.epoch, 2)
    assert.deepEqual([...shown.members].sort(), [a, b, d, e].map(id).sort())
    // C no longer holds a share, on disk or in memory
    assert.equal(await exists(join(c.dataDir, 'cluster.share')), false)
    assert.match((await on(c, 'cluster', 'show')).stdout, /holds no cluster share/)
    assert.equal((await on(c, 'cluster', 'sign', 'C alone')).code, 1)
    const signers = await signs(a, 'signed by two of the four')
    assert.equal(signers.length, 2)
    assert.ok(!signers.includes(id(c)))
  })
})
