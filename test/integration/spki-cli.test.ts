import { strict as assert } from 'node:assert'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parsePrincipal } from '../../src/crypto/principal.ts'
import { killAll, removeDir, runCli, spawnNode, tempDir, waitUntil } from '../helpers/processes.ts'
import type { NodeProcess } from '../helpers/processes.ts'

/** `cyberspace key`, `cert …` and `acl …` against two node processes on 127.0.0.1. */
describe('cyberspace key, cert and acl', function () {
  this.timeout(180_000)
  let a: NodeProcess, b: NodeProcess
  let work: string
  const on = (node: NodeProcess, ...args: string[]): ReturnType<typeof runCli> =>
    runCli([...args, '--data-dir', node.dataDir])
  const ok = async (node: NodeProcess, ...args: string[]): Promise<string> => {
    const r = await on(node, ...args)
    assert.equal(r.code, 0, `${args.join(' ')} failed: ${r.stderr}`)
    return r.stdout
  }
  const certHashes = (stdout: string): string[] =>
    [...stdout.matchAll(/^# \w+ certificate ([0-9a-f]{64})/gm)].map(m => m[1])

  before(async () => {
    work = await tempDir()
    a = await spawnNode()
    b = await spawnNode({ bootstrap: [a.tcpAddr] })
    await waitUntil('B connected to A', async () => (await b.api.get<unknown[]>('peers')).length > 0, 30_000)
  })
  after(async () => {
    await Promise.all([a, b].map(async n => await n?.stop()))
    killAll()
    await Promise.all([a?.dataDir, b?.dataDir, work].filter(d => d != null).map(removeDir))
  })

  it('key shows the node principal, with and without a running node', async () => {
    const expected = parsePrincipal(a.peerId)
    const shown = JSON.parse(await ok(a, 'key', '--json')) as Record<string, string>
    assert.equal(shown.principal, expected)
    assert.equal(shown.peerId, a.peerId)
    assert.match(shown.publicKey, /^\(public-key \(ed25519 \|[A-Za-z0-9+/]{43}=?\|\)\)$/)
    assert.match(shown.hash, /^\(hash sha256 \|[A-Za-z0-9+/]{43}=?\|\)$/)
    const plain = await ok(a, 'key')
    assert.equal(plain.split('\n')[0], expected)
    const empty = await tempDir()
    const none = await runCli(['key', '--data-dir', empty])
    await removeDir(empty)
    assert.equal(none.code, 1)
    assert.match(none.stderr, /no identity yet/)
  })

  it('issues a name and an authorization certificate that a peer proves over the protocol', async () => {
    await ok(b, 'acl', 'add', parsePrincipal(a.peerId), '(cyberspace)')
    assert.match(await ok(b, 'acl', 'list'), new RegExp(`^${parsePrincipal(a.peerId)}  \\(cyberspace\\)$`, 'm'))

    const name = await ok(a, 'cert', 'name', 'friends', b.peerId)
    assert.match(name, /^\(signed-cert \(cert \(issuer \(name \(public-key \(ed25519 \|.+\|\)\) friends\)\)/m)
    const auth = await ok(
      a,
      'cert',
      'issue',
      'name:friends',
      '(cyberspace (mailbox (* set send read)))',
      '--not-after',
      '+1d'
    )
    assert.match(auth, /\(tag \(cyberspace \(mailbox \(\* set send read\)\)\)\) \(valid \(not-after \d{4}-\d\d-\d\d_/)

    // B holds no certificates: only A can prove, over /cyberspace/spki/1.0.0
    const local = await on(b, 'cert', 'verify', b.peerId, '(cyberspace (mailbox send))')
    assert.equal(local.code, 1)
    assert.match(
      local.stdout,
      /^refused: no .*: trust a root for it \(npx --no-install cyberspace acl add <root> '\(cyberspace \(mailbox send\)\)'\), import a chain .*, or ask the issuer's node \(--from <peer-id>\)\n$/
    )
    const proved = await ok(b, 'cert', 'verify', b.peerId, '(cyberspace (mailbox send))', '--from', a.peerId)
    assert.match(proved, /^authorized\n {2}the chain grants \(cyberspace \(mailbox \(\* set send read\)\)\)/)
    // one authorization certificate, granted to a SDSI name that one name certificate resolves
    assert.match(
      proved,
      /^ {2}by 1 authorization certificate \(root first\) and 1 name certificate resolving the subjects:$/m
    )
    assert.deepEqual(certHashes(proved).sort(), [...certHashes(name), ...certHashes(auth)].sort())

    const wider = await on(b, 'cert', 'verify', b.peerId, '(cyberspace (mailbox delete))', '--from', a.peerId)
    assert.equal(wider.code, 1)
    assert.match(wider.stdout, /^refused: 12D3Koo\w+ refused: no chain.*: that node holds no such chain/)
    assert.doesNotMatch(wider.stdout, /Error\b/, 'no class names')
  })

  it('moves certificates in transport form, verifies them offline, and revokes one', async () => {
    const exported = await ok(a, 'cert', 'show', '--transport')
    assert.equal(certHashes(exported).length, 2)
    const file = join(work, 'certs.txt')
    await writeFile(file, exported)

    const shown = await runCli(['cert', 'show', '--in', file])
    assert.equal(shown.code, 0, shown.stderr)
    assert.equal(shown.stdout.match(/^# signature verifies$/gm)?.length, 2)
    // a widened tag no longer matches the signature
    const tampered = join(work, 'tampered.txt')
    await writeFile(tampered, shown.stdout.replace('(* set send read)', '(* set send read delete)'))
    const bad = await runCli(['cert', 'show', '--in', tampered])
    assert.equal(bad.code, 1)
    assert.match(bad.stdout, /DOES NOT VERIFY/)
    const refused = await on(b, 'cert', 'import', tampered)
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /does not verify/)
    assert.equal(JSON.parse(await ok(b, 'cert', 'show', '--json')).length, 0, 'nothing of a bad import is kept')

    assert.match(await ok(b, 'cert', 'import', file), /^imported 2 certificates and 0 CRLs$/m)
    assert.match(await ok(b, 'cert', 'verify', b.peerId, '(cyberspace (mailbox read))'), /^authorized/)

    const authHash = certHashes(exported).find(h => exported.includes(`auth certificate ${h}`)) ?? ''
    const crl = await ok(a, 'cert', 'revoke', authHash.slice(0, 12))
    assert.match(crl, /^# CRL revoking 1 certificate/)
    const crlFile = join(work, 'crl.txt')
    await writeFile(crlFile, crl)
    assert.match(await ok(b, 'cert', 'import', crlFile), /^imported 0 certificates and 1 CRL$/m)
    const revoked = await on(b, 'cert', 'verify', b.peerId, '(cyberspace (mailbox read))')
    assert.equal(revoked.code, 1)
    assert.match(revoked.stdout, /^refused: revoked: /)
    // and A, the issuer, no longer proves it either
    const fromA = await on(b, 'cert', 'verify', b.peerId, '(cyberspace (mailbox read))', '--from', a.peerId)
    assert.equal(fromA.code, 1)
  })

  it('refuses bad input with a clear message and keeps running', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['cert', 'issue', 'z6Mknotakey', '(cyberspace)'], 1, /neither a principal id/],
      [['cert', 'issue', b.peerId, '(cyberspace'], 1, /unterminated list/],
      [['cert', 'issue', b.peerId, '(* range sideways (g 5))'], 1, /ordering/],
      [['cert', 'issue', b.peerId, '(x)', '--not-after', 'tomorrow'], 1, /is not a time/],
      [['cert', 'issue', b.peerId, '(x)', '--not-before', '+2d', '--not-after', '+1d'], 1, /is after/],
      [['cert', 'name', 'bad name!', b.peerId], 1, /a name is 1-64 characters/],
      [['cert', 'issue', b.peerId], 2, /usage: cyberspace cert issue/],
      [['cert', 'revoke', 'xyz'], 1, /hex digits/],
      [['cert', 'revoke', '00000000'], 1, /no certificate issued by this node/],
      [['cert', 'frobnicate'], 2, /^cyberspace: unknown command "cert frobnicate" \(see cyberspace cert --help\)\n$/],
      [['acl', 'add', 'nobody', '(x)'], 1, /neither a principal id/],
      [['acl', 'remove', parsePrincipal(b.peerId)], 1, /not in the ACL/],
      [['cert', 'show', '--in', join(work, 'missing.txt')], 2, /cannot read/]
    ]
    for (const [args, code, message] of cases) {
      const r = await on(a, ...args)
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message, args.join(' '))
    }
    const garbage = join(work, 'garbage.txt')
    for (const text of ['garbage', '(signed-cert (cert))', '{bm90IGEgY2VydA}', '('.repeat(100)]) {
      await writeFile(garbage, text)
      const r = await on(a, 'cert', 'import', garbage)
      assert.equal(r.code, 1, text)
      assert.match(r.stderr, /^cyberspace: /)
    }
    assert.equal((await a.api.get<{ peerId: string }>('id')).peerId, a.peerId)
  })
})
