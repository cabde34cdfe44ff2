import { strict as assert } from 'node:assert'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { ed25519 as nobleCurve } from '@noble/curves/ed25519.js'
import { base16 } from 'multiformats/bases/base16'
import { parsePrincipal, principalId } from '../../src/crypto/principal.ts'
import { certSigningBytes, parseSignedCert } from '../../src/spki/cert.ts'
import { parseAnyForm } from '../../src/spki/sexp.ts'
import { cliOk as ok, cliOn as on, spawnNode, stopNodes, waitUntil } from '../helpers/processes.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { ClusterView } from '../../node/api/cluster-routes.ts'

/** `cyberspace cluster …` among five node processes on 127.0.0.1: DKG 3-of-5, signing, stops. */
describe('cyberspace cluster: a 3-of-5 cluster key among five node processes', function () {
  this.timeout(240_000)
  let nodes: NodeProcess[] = []
  let a: NodeProcess
  let cluster: ClusterView

  before(async () => {
    a = await spawnNode()
    nodes = [
      a,
      ...(await Promise.all(Array.from({ length: 4 }, async () => await spawnNode({ bootstrap: [a.tcpAddr] }))))
    ]
    await waitUntil(
      'A connected to the other four',
      async () => (await a.api.get<unknown[]>('peers')).length === 4,
      60_000
    )
    // each member's operator but E's lets A run the cluster's key ceremonies (E's comes in the first test)
    for (const n of nodes.slice(1, 4))
      await n.api.post('spki/acl', { principal: parsePrincipal(a.peerId), tag: '(cyberspace (cluster))' })
  })
  after(async () => {
    await stopNodes(nodes)
  })

  it('says, for a member that has not granted the initiator, the acl command to run there', async () => {
    const members = nodes.slice(1).flatMap(n => ['--members', n.peerId])
    const refused = await on(a, 'cluster', 'init', ...members, '--threshold', '3')
    assert.equal(refused.code, 1)
    const lines = refused.stderr.trim().split('\n')
    assert.match(
      lines[0],
      /^cyberspace: cluster init was refused by 1 member that does not let this node run the cluster's key ceremonies$/
    )
    assert.doesNotMatch(refused.stderr, /Error: /, 'no class names')
    assert.deepEqual(lines.slice(1), [
      `  member ${nodes[4].peerId} refused: it does not trust this node for (cyberspace (cluster init)); ` +
        `on that member run: npx --no-install cyberspace acl add ${parsePrincipal(a.peerId)} '(cyberspace (cluster))'`
    ])
    assert.match((await on(a, 'cluster', 'show')).stdout, /holds no cluster share/)
  })

  it('runs DKG 3-of-5 and every member shows the same cluster principal; shares are 0600 files', async () => {
    await ok(nodes[4], 'acl', 'add', parsePrincipal(a.peerId), '(cyberspace (cluster))')
    const members = nodes.slice(1).flatMap(n => ['--members', n.peerId])
    const shown = await ok(a, 'cluster', 'init', ...members, '--threshold', '3')
    assert.match(shown, /^z6Mk\w+\n {2}threshold {3}3 of 5\n {2}epoch {7}0\n/)
    assert.match(shown, new RegExp(`^ {2}member {6}${parsePrincipal(a.peerId)} {2}\\(this node\\)$`, 'm'))
    assert.equal(shown.match(/\(this node\)/g)?.length, 1)
    cluster = JSON.parse(await ok(nodes[4], 'cluster', 'show', '--json')) as ClusterView
    assert.equal(cluster.self, parsePrincipal(nodes[4].peerId))
    assert.equal(cluster.principal, shown.split('\n')[0])
    assert.equal(principalId(base16.baseDecode(cluster.groupKey)), cluster.principal)
    assert.deepEqual([...cluster.members].sort(), nodes.map(n => parsePrincipal(n.peerId)).sort())
    for (const n of nodes) assert.equal((await stat(join(n.dataDir, 'cluster.share'))).mode & 0o777, 0o600)
    const again = await on(nodes[1], 'cluster', 'init', '--members', a.peerId, '--threshold', '2')
    assert.equal(again.code, 1)
    assert.match(again.stderr, /already holds a share/)
  })

  it('issues a cluster certificate: plain Ed25519 verifies it, and a node trusting the cluster key authorizes by it', async () => {
    const agent = principalId(nobleCurve.getPublicKey(nobleCurve.utils.randomSecretKey()))
    const issued = await ok(a, 'cluster', 'issue', agent, '(cyberspace (role builder))', '--not-after', '+1d')
    const [sexp] = parseAnyForm(new TextEncoder().encode(issued))
    const signed = parseSignedCert(sexp)
    assert.equal(signed.cert.issuer, cluster.principal)
    assert.ok(nobleCurve.verify(signed.signature, certSigningBytes(signed.cert), base16.baseDecode(cluster.groupKey)))

    const b = nodes[1]
    const before = await on(b, 'cert', 'verify', agent, '(cyberspace (role builder))', '--from', a.peerId)
    assert.equal(before.code, 1, 'B does not trust the cluster yet')
    await ok(b, 'acl', 'add', cluster.principal, '(cyberspace)')
    const verified = await ok(b, 'cert', 'verify', agent, '(cyberspace (role builder))', '--from', a.peerId)
    assert.match(verified, /^authorized\n/)
    const wider = await on(b, 'cert', 'verify', agent, '(cyberspace (role admin))', '--from', a.peerId)
    assert.equal(wider.code, 1)
  })

  it('encrypts to the cluster key and opens it with decryption shares', async () => {
    const ct = (await ok(nodes[2], 'cluster', 'encrypt', 'the shared secret')).trim()
    assert.equal((await ok(a, 'cluster', 'decrypt', ct)).split('\n')[0], 'the shared secret')
  })

  it('refreshes the shares: same principal, next epoch, still signs', async () => {
    const refreshed = await ok(a, 'cluster', 'refresh')
    assert.match(refreshed, new RegExp(`^${cluster.principal}\\n {2}threshold {3}3 of 5\\n {2}epoch {7}1\\n`))
    assert.match(await ok(nodes[3], 'cluster', 'show'), / {2}epoch {7}1\n/)
    assert.equal((JSON.parse(await ok(nodes[3], 'cluster', 'show', '--json')) as ClusterView).epoch, 1)
  })

  it('signs with 2 of 5 members stopped, and fails clearly with 3 stopped', async () => {
    await Promise.all([nodes[3].stop(), nodes[4].stop()])
    const signed = JSON.parse(await ok(a, 'cluster', 'sign', 'two members are down', '--json')) as {
      signature: string
      signers: string[]
      excluded: Record<string, string>
    }
    const payload = new TextEncoder().encode('cyberspace/cluster-message/v1\0two members are down')
    assert.ok(nobleCurve.verify(base16.baseDecode(signed.signature), payload, base16.baseDecode(cluster.groupKey)))
    assert.equal(signed.signers.length, 3)
    assert.deepEqual(
      Object.keys(signed.excluded).sort(),
      [nodes[3], nodes[4]].map(n => parsePrincipal(n.peerId)).sort()
    )

    await nodes[2].stop()
    const failed = await on(a, 'cluster', 'sign', 'three members are down')
    assert.equal(failed.code, 1)
    assert.match(failed.stderr, /^cyberspace: 2 of 5 members can sign; 3 are needed\. /)
  })
})
