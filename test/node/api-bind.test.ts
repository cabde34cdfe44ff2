/**
 * Where the API listens: loopback by default; off loopback only with TLS (https, a certificate made
 * here with openssl) or an explicit --api-insecure, and a start without either fails naming both
 * fixes. The Host check follows the bound address (and --api-public-host), and the CLI's client
 * sends its token only to the server whose certificate api.json holds.
 */
import { strict as assert } from 'node:assert'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { createServer as createTlsServer, request as httpsRequest } from 'node:https'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { apiClient } from '../../node/api/client.ts'
import { checkApiBind } from '../../node/api/http.ts'
import { startApiServer } from '../../node/api/server.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { removeDir, runCli, spawnNode, stopNodes, tempDir } from '../helpers/processes.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { AddressInfo } from 'node:net'

const TOKEN = 'operator-t0ken'

/** A self-signed certificate and its key, as PEM files in `dir` (openssl, ECDSA P-256). */
function selfSigned(dir: string, name: string): { certFile: string; keyFile: string; cert: string; key: string } {
  const certFile = join(dir, `${name}.crt`)
  const keyFile = join(dir, `${name}.key`)
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      keyFile,
      '-out',
      certFile
    ],
    { stdio: 'ignore' }
  )
  return {
    certFile,
    keyFile,
    cert: readFileSync(certFile, 'utf8'),
    key: readFileSync(keyFile, 'utf8')
  }
}

/** A certificate for `name` signed by `ca` (openssl), and its key, as PEM. */
function signedBy(dir: string, ca: { certFile: string; keyFile: string }, name: string): { cert: string; key: string } {
  const keyFile = join(dir, `${name}.key`)
  const csrFile = join(dir, `${name}.csr`)
  const certFile = join(dir, `${name}.crt`)
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile], { stdio: 'ignore' })
  execFileSync('openssl', ['req', '-new', '-key', keyFile, '-subj', `/CN=${name}`, '-out', csrFile], {
    stdio: 'ignore'
  })
  execFileSync(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      csrFile,
      '-CA',
      ca.certFile,
      '-CAkey',
      ca.keyFile,
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      certFile
    ],
    { stdio: 'ignore' }
  )
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') }
}

/** An address of this machine other than loopback, if it has one. */
function otherAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  return undefined
}

/** The status of one request with exactly these headers (Host included), https trusting only `ca`. */
async function status(url: string, headers: Record<string, string>, ca?: string): Promise<number> {
  const target = new URL(url)
  return await new Promise((resolve, reject) => {
    const options = {
      host: target.hostname,
      port: target.port,
      path: target.pathname,
      headers,
      signal: AbortSignal.timeout(10_000)
    }
    const done = (res: import('node:http').IncomingMessage): void => {
      res.resume()
      res.on('end', () => {
        resolve(res.statusCode ?? 0)
      })
    }
    const req =
      target.protocol === 'https:'
        ? httpsRequest({ ...options, ca, checkServerIdentity: () => undefined }, done)
        : httpRequest(options, done)
    req.on('error', reject)
    req.end()
  })
}

describe('API bind and TLS', function () {
  this.timeout(120_000)
  let dir: string
  let node: CyberspaceNode
  let a: ReturnType<typeof selfSigned>
  let b: ReturnType<typeof selfSigned>
  const processes: NodeProcess[] = []

  before(async () => {
    dir = await tempDir('cyberspace-bind-')
    a = selfSigned(dir, 'node-a')
    b = selfSigned(dir, 'node-b')
    node = await memoryNode()
  })

  after(async () => {
    await stopNodes(processes)
    await node.stop()
    await removeDir(dir)
  })

  it('refuses an address off loopback without TLS or --api-insecure, naming both fixes', async () => {
    for (const host of ['0.0.0.0', '::', '192.0.2.7']) {
      assert.throws(
        () => {
          checkApiBind({ host })
        },
        (err: Error) => {
          assert.equal(err.name, 'ApiBindError')
          assert.match(err.message, /--api-tls-cert <pem> --api-tls-key <pem>/)
          assert.match(err.message, /--api-insecure/)
          return true
        }
      )
    }
    assert.throws(() => {
      checkApiBind({ host: 'node.example', insecure: true })
    }, /not an IP address/)
    assert.throws(() => {
      checkApiBind({ host: '0.0.0.0', insecure: true, publicHost: 'a b' })
    }, /not a host name/)
    for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost', undefined]) checkApiBind({ host })
    checkApiBind({ host: '0.0.0.0', insecure: true })
    checkApiBind({ host: '0.0.0.0', tls: { cert: 'x', key: 'y' } })
    // the server itself refuses too, before it holds anything
    await assert.rejects(startApiServer({ node, token: TOKEN, port: 0, pageDir: '/nonexistent', host: '0.0.0.0' }), {
      name: 'ApiBindError'
    })
    await assert.rejects(
      startApiServer({
        node,
        token: TOKEN,
        port: 0,
        pageDir: '/nonexistent',
        host: '127.0.0.1',
        tls: { cert: a.cert, key: b.key }
      }),
      { name: 'ApiBindError', message: /certificate and key do not work/ }
    )
  })

  it('answers https with the certificate given, bound to every interface; the Host check takes its addresses and --api-public-host', async () => {
    const server = await startApiServer({
      node,
      token: TOKEN,
      port: 0,
      pageDir: '/nonexistent',
      host: '0.0.0.0',
      tls: { cert: a.cert, key: a.key },
      publicHost: 'node.example'
    })
    try {
      assert.equal(server.tls, true)
      assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/)
      const port = server.port
      const auth = { authorization: `Bearer ${TOKEN}` }
      assert.equal(await status(`${server.url}/api/v0/id`, { ...auth, host: `127.0.0.1:${port}` }, a.cert), 200)
      assert.equal(await status(`${server.url}/api/v0/id`, { ...auth, host: `node.example:${port}` }, a.cert), 200)
      assert.equal(await status(`${server.url}/api/v0/id`, { ...auth, host: 'node.example' }, a.cert), 200)
      assert.equal(await status(`${server.url}/api/v0/id`, { ...auth, host: `evil.example:${port}` }, a.cert), 403)
      assert.equal(
        await status(
          `${server.url}/api/v0/id`,
          { ...auth, host: `node.example:${port}`, origin: `https://node.example:${port}` },
          a.cert
        ),
        200
      )
      assert.equal(
        await status(
          `${server.url}/api/v0/id`,
          { ...auth, host: `node.example:${port}`, origin: `http://node.example:${port}` },
          a.cert
        ),
        403,
        'an http origin is not the https API'
      )
      const other = otherAddress()
      if (other != null) {
        const there = `https://${other}:${port}`
        assert.equal(await status(`${there}/api/v0/id`, { ...auth, host: `${other}:${port}` }, a.cert), 200)
      }
      // plain HTTP is not answered
      await assert.rejects(status(`http://127.0.0.1:${port}/api/v0/id`, { ...auth, host: `127.0.0.1:${port}` }))
      // the CLI's client, pinned to the certificate, gets through; pinned to another it sends nothing
      const id = await apiClient(server.url, TOKEN, { cert: a.cert }).get<{ peerId: string }>('id')
      assert.equal(id.peerId, node.peerId.toString())
      await assert.rejects(apiClient(server.url, TOKEN, { cert: b.cert }).get('id'), {
        name: 'NodeNotRunningError'
      })
    } finally {
      await server.close()
    }
  })

  it('the pinned client never sends its token to a server with another certificate', async () => {
    // one impostor shows an unrelated certificate; the other one signed by the pinned certificate
    // itself (a CA by openssl's defaults), so only the pin, not the chain, tells it apart
    const signed = signedBy(dir, a, 'impostor')
    for (const [impostorCert, impostorKey, why] of [
      [b.cert, b.key, /self-signed certificate/],
      [signed.cert, signed.key, /another certificate than api\.json holds/]
    ] as const) {
      const seen: string[] = []
      const impostor = createTlsServer({ cert: impostorCert, key: impostorKey }, (req, res) => {
        seen.push(req.headers.authorization ?? '')
        res.end('{}')
      })
      await new Promise<void>(resolve => impostor.listen(0, '127.0.0.1', resolve))
      try {
        const url = `https://127.0.0.1:${(impostor.address() as AddressInfo).port}`
        await assert.rejects(apiClient(url, 'secret-token', { cert: a.cert }).get('id'), (err: Error) => {
          assert.equal(err.name, 'NodeNotRunningError')
          assert.match(err.message, why)
          return true
        })
        assert.deepEqual(seen, [])
        // the same server, pinned right: the request arrives
        await apiClient(url, 'secret-token', { cert: impostorCert }).get('id')
        assert.deepEqual(seen, ['Bearer secret-token'])
      } finally {
        impostor.close()
      }
    }
  })

  it('answers plain HTTP off loopback only with --api-insecure', async () => {
    const server = await startApiServer({
      node,
      token: TOKEN,
      port: 0,
      pageDir: '/nonexistent',
      host: '0.0.0.0',
      insecure: true
    })
    try {
      assert.equal(server.tls, false)
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/)
      const auth = { authorization: `Bearer ${TOKEN}` }
      assert.equal(await status(`${server.url}/api/v0/id`, { ...auth, host: `127.0.0.1:${server.port}` }), 200)
      const other = otherAddress()
      if (other != null)
        assert.equal(
          await status(`http://${other}:${server.port}/api/v0/id`, { ...auth, host: `${other}:${server.port}` }),
          200
        )
      assert.equal(await status(`${server.url}/api/v0/id`, { ...auth, host: `rebound.example:${server.port}` }), 403)
    } finally {
      await server.close()
    }
  })

  it('start refuses --api-host off loopback without TLS or --api-insecure (exit 2), naming both', async () => {
    const data = join(dir, 'refused')
    const { code, stderr } = await runCli(['start', '--data-dir', data, '--api-port', '0', '--api-host', '0.0.0.0'])
    assert.equal(code, 2)
    assert.match(stderr, /--api-tls-cert <pem> --api-tls-key <pem>/)
    assert.match(stderr, /--api-insecure/)
    assert.equal(stderr.trim().split('\n').length, 1, stderr)
    const half = await runCli(['start', '--data-dir', data, '--api-host', '0.0.0.0', '--api-tls-cert', a.certFile])
    assert.equal(half.code, 2)
    assert.match(half.stderr, /--api-tls-cert and --api-tls-key go together/)
  })

  it('start refuses a --keepalive-interval that is not 1000-3600000 ms (exit 2), naming the flag', async () => {
    const data = await tempDir()
    try {
      for (const bad of ['5', '1e4', '99999999']) {
        const { code, stderr } = await runCli([
          'start',
          '--data-dir',
          data,
          '--api-port',
          '0',
          '--keepalive-interval',
          bad
        ])
        assert.equal(code, 2, stderr)
        assert.match(stderr, /--keepalive-interval/)
      }
    } finally {
      await removeDir(data)
    }
  })

  it('start with TLS answers https; api.json holds the certificate, and the CLI talks to it pinned', async () => {
    const started = await spawnNode({
      dataDir: join(dir, 'tls'),
      extraArgs: ['--api-host', '0.0.0.0', '--api-tls-cert', a.certFile, '--api-tls-key', a.keyFile]
    })
    processes.push(started)
    const info = JSON.parse(await readFile(join(started.dataDir, 'api.json'), 'utf8')) as { url: string; cert: string }
    assert.match(info.url, /^https:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(info.cert, a.cert)
    // spawnNode reached it through connectApi already; the CLI does too
    const { code, stdout } = await runCli(['id', '--data-dir', started.dataDir, '--json'])
    assert.equal(code, 0)
    assert.equal((JSON.parse(stdout) as { peerId: string }).peerId, started.peerId)
    assert.match(started.output(), /public API +https:\/\/0\.0\.0\.0:\d+\/api\//)
  })

  it('start with --api-insecure warns that tokens cross the network in clear', async () => {
    const started = await spawnNode({
      dataDir: join(dir, 'insecure'),
      extraArgs: ['--api-host', '0.0.0.0', '--api-insecure']
    })
    processes.push(started)
    assert.match(started.output(), /warning: the API answers plain HTTP on 0\.0\.0\.0 \(--api-insecure\)/)
    const { code } = await runCli(['id', '--data-dir', started.dataDir])
    assert.equal(code, 0)
  })
})
