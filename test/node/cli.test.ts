import { strict as assert } from 'node:assert'
import { request } from 'node:http'
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { killAll, removeDir, runCli, spawnNode, tempDir, waitUntil } from '../helpers/processes.ts'
import type { NodeProcess } from '../helpers/processes.ts'

const PEER = '12D3KooWRPYtu7rfWdixTa6QhUpPS4cnqSEURWAYndmdzqqmaL5h'

/** A raw HTTP request, so that Host and Origin can be set to anything. */
async function rawRequest(url: string, headers: Record<string, string>): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { headers, timeout: 10_000 }, res => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('error', reject)
    req.end()
  })
}

describe('cyberspace CLI on bad input', function () {
  this.timeout(120_000)
  const dirs: string[] = []
  const nodes: NodeProcess[] = []
  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
    killAll()
    await Promise.all(dirs.map(removeDir))
  })
  async function dir(): Promise<string> {
    const d = await tempDir()
    dirs.push(d)
    return d
  }

  for (const [flag, value] of [
    ['--listen', '/ip4/127.0.0.1/tcp/notaport'],
    ['--listen', 'not-a-multiaddr'],
    ['--bootstrap', '/ip4/999.0.0.1/tcp/4001/p2p/' + PEER],
    ['--bootstrap', '/ip4/127.0.0.1/tcp/4001']
  ]) {
    it(`rejects ${flag} ${value} with one line naming it and exit code 2`, async () => {
      const { code, stdout, stderr } = await runCli([
        'start',
        '--data-dir',
        await dir(),
        flag,
        value,
        '--api-port',
        '0'
      ])
      assert.equal(code, 2)
      assert.equal(stdout, '')
      const lines = stderr.trim().split('\n')
      assert.equal(lines.length, 1)
      assert.ok(lines[0].includes(value), lines[0])
      assert.ok(lines[0].includes(flag), lines[0])
    })
  }

  it('rejects an unknown option and a bad --api-port with exit code 2', async () => {
    assert.equal((await runCli(['start', '--nope'])).code, 2)
    assert.equal((await runCli(['start', '--api-port', '70000', '--data-dir', await dir()])).code, 2)
    assert.equal((await runCli(['frobnicate'])).code, 2)
  })

  it('keeps running and says so while its bootstrap peer is unreachable', async () => {
    const node = await spawnNode({ bootstrap: [`/ip4/127.0.0.1/tcp/9/p2p/${PEER}`] })
    nodes.push(node)
    dirs.push(node.dataDir)
    await waitUntil(
      'two retry reports',
      () => (node.output().match(/unreachable \(\d+ failures?/g) ?? []).length >= 2,
      30_000
    )
    assert.match(
      node.output(),
      /bootstrap peer \/ip4\/127\.0\.0\.1\/tcp\/9\/p2p\/\S+ unreachable \(1 failure: .*\); retrying in \d+\.\ds/
    )
    assert.equal(node.proc.exitCode, null)
    const id = await node.api.get<{ bootstrap: Array<{ failures: number; connected: boolean }> }>('id')
    assert.ok(id.bootstrap[0].failures >= 2)
    assert.equal(id.bootstrap[0].connected, false)
  })

  it('refuses a data directory it cannot create, with a clear error', async () => {
    const base = await dir()
    await writeFile(join(base, 'file'), 'x')
    const { code, stderr } = await runCli(['start', '--data-dir', join(base, 'file', 'sub'), '--api-port', '0'])
    assert.equal(code, 1)
    assert.match(stderr, /cannot use data directory .*file\/sub: ENOTDIR/)
  })

  it('refuses a data directory that others can write to', async () => {
    const d = await dir()
    await chmod(d, 0o777)
    const { code, stderr } = await runCli(['start', '--data-dir', d, '--api-port', '0'])
    assert.equal(code, 1)
    assert.match(stderr, /data directory .* is writable by others \(mode 777\)/)
    await assert.rejects(readFile(join(d, 'identity.key')), { code: 'ENOENT' })
  })

  it('refuses a corrupt key file and leaves it untouched', async () => {
    const d = await dir()
    const garbage = Buffer.from('this is not a protobuf private key')
    await writeFile(join(d, 'identity.key'), garbage, { mode: 0o600 })
    const { code, stderr } = await runCli([
      'start',
      '--data-dir',
      d,
      '--api-port',
      '0',
      '--listen',
      '/ip4/127.0.0.1/tcp/0'
    ])
    assert.equal(code, 1)
    assert.match(stderr, /identity key file .* is corrupt .* left untouched/)
    assert.deepEqual(await readFile(join(d, 'identity.key')), garbage)
    // and the lock is released, so a later start is not refused for the wrong reason
    await assert.rejects(readFile(join(d, 'lock')), { code: 'ENOENT' })
  })

  it('refuses a second start on the same data directory', async () => {
    const node = await spawnNode()
    nodes.push(node)
    dirs.push(node.dataDir)
    const { code, stderr } = await runCli([
      'start',
      '--data-dir',
      node.dataDir,
      '--api-port',
      '0',
      '--listen',
      '/ip4/127.0.0.1/tcp/0'
    ])
    assert.equal(code, 1)
    assert.match(
      stderr,
      new RegExp(`data directory .* is in use by another cyberspace node \\(pid ${node.proc.pid}\\)`)
    )
    // the first node is unharmed
    assert.equal((await node.api.get<{ peerId: string }>('id')).peerId, node.peerId)
    assert.equal(node.proc.exitCode, null)
  })

  it('takes over a stale lock left by a process that died', async () => {
    const d = await dir()
    await writeFile(join(d, 'lock'), '999999999\n')
    const node = await spawnNode({ dataDir: d })
    nodes.push(node)
    assert.equal((await readFile(join(d, 'lock'), 'utf8')).split(' ')[0], String(node.proc.pid))
  })

  it('refuses control-API requests without the token or from another host or origin', async () => {
    const node = await spawnNode()
    nodes.push(node)
    dirs.push(node.dataDir)
    const { url } = node.api
    const port = new URL(url).port
    const token = (await readFile(join(node.dataDir, 'api-token'), 'utf8')).trim()
    const auth = { authorization: `Bearer ${token}` }
    const idUrl = `${url}/api/v0/id`
    assert.equal(await rawRequest(idUrl, { ...auth, host: `127.0.0.1:${port}` }), 200)
    assert.equal(await rawRequest(idUrl, { ...auth, host: `localhost:${port}` }), 200)
    assert.equal(await rawRequest(idUrl, { host: `127.0.0.1:${port}` }), 401)
    assert.equal(await rawRequest(idUrl, { authorization: 'Bearer ' + 'f'.repeat(64), host: `127.0.0.1:${port}` }), 401)
    assert.equal(await rawRequest(idUrl, { ...auth, host: `evil.example:${port}` }), 403)
    assert.equal(await rawRequest(idUrl, { ...auth, host: `127.0.0.1:${port}`, origin: 'http://evil.example' }), 403)
    assert.equal(
      await rawRequest(idUrl, { ...auth, host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}` }),
      200
    )
    // the page itself is public, but still only under the loopback name
    assert.equal(await rawRequest(`${url}/bootstrap.json`, { host: `127.0.0.1:${port}` }), 200)
    assert.equal(await rawRequest(`${url}/bootstrap.json`, { host: `rebound.example:${port}` }), 403)
  })

  it('sends its token only to a control API on 127.0.0.1', async () => {
    const d = await dir()
    await writeFile(join(d, 'api.json'), JSON.stringify({ url: 'http://evil.example:80', pid: 1 }))
    await writeFile(join(d, 'api-token'), 'secret')
    const { code, stderr } = await runCli(['id', '--data-dir', d])
    assert.equal(code, 1)
    assert.match(stderr, /does not name a control API on 127\.0\.0\.1/)
  })

  it('says clearly that no node is running', async () => {
    const { code, stderr } = await runCli(['peers', '--data-dir', await dir()])
    assert.equal(code, 1)
    assert.match(stderr, /no running node found for data directory/)
  })
})
