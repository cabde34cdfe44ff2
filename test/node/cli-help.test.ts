import { strict as assert } from 'node:assert'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describeError, HELP, helpFor, joinHint, main } from '../../node/cli.ts'
import { memberFailures } from '../../node/cluster-commands.ts'
import { ApiError } from '../../node/errors.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { grant, key } from '../spki/fixtures.ts'
import { CLI, removeDir, runCli, tempDir } from '../helpers/processes.ts'
import type { CommandHelp, GroupHelp } from '../../node/cli.ts'
import type { Server } from 'node:net'

/** Runs main() in-process, collecting what it prints. */
async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = []
  const err: string[] = []
  const code = await main(
    argv,
    line => out.push(line),
    line => err.push(line)
  )
  return { code, stdout: out.join('\n'), stderr: err.join('\n') }
}

const commands = HELP.flatMap(e => ('commands' in e ? e.commands : [e]))
const groups = HELP.filter((e): e is GroupHelp => 'commands' in e)

describe('cyberspace help', () => {
  for (const c of commands) {
    it(`${c.name} --help prints its usage line, options and an example that runs from the checkout`, async () => {
      const { code, stdout } = await run(...c.name.split(' '), '--help')
      assert.equal(code, 0)
      const lines = stdout.split('\n')
      assert.ok(lines[0].startsWith(`usage: cyberspace ${c.name}`), lines[0])
      assert.match(stdout, /\noptions:\n {2}/)
      assert.match(stdout, /--data-dir <path>/)
      assert.match(stdout, new RegExp(`\\nexample:\\n {2}npx --no-install cyberspace ${c.name}( |$)`))
      assert.ok(
        lines.every(l => l.length <= 100),
        `lines wider than 100: ${lines.filter(l => l.length > 100).join('|')}`
      )
    })
  }

  for (const g of groups) {
    it(`a bare ${g.name} prints its commands (exit 2); ${g.name} --help the same (exit 0)`, async () => {
      const bare = await run(g.name)
      assert.equal(bare.code, 2)
      assert.ok(bare.stdout.startsWith(`usage: cyberspace ${g.name} <command>`), bare.stdout)
      for (const c of g.commands) assert.match(bare.stdout, new RegExp(`^ {2}${c.name.split(' ')[1]}\\b`, 'm'))
      const help = await run(g.name, '--help')
      assert.equal(help.code, 0)
      assert.equal(help.stdout, bare.stdout)
    })
  }

  it('help <command> is --help; unknown words fall back to the nearest entry', () => {
    assert.equal(helpFor(['cert', 'issue']), helpFor(['cert', 'issue', 'extra']))
    assert.match(helpFor(['cert', 'nope']), /^usage: cyberspace cert <command>/)
    assert.match(helpFor(['nope']), /^usage: cyberspace <command>/)
  })

  it('the global help lists every command once', async () => {
    const { code, stdout } = await run('--help')
    assert.equal(code, 0)
    for (const c of commands) assert.equal(stdout.match(new RegExp(`^ {2}${c.name} `, 'gm'))?.length, 1, c.name)
  })

  it('names an unknown command of a group in one line, exit 2', async () => {
    const { code, stderr } = await run('cert', 'frobnicate')
    assert.equal(code, 2)
    assert.equal(stderr, 'cyberspace: unknown command "cert frobnicate" (see cyberspace cert --help)')
  })

  it('every entry has an example that starts with its own name', () => {
    for (const c of commands as CommandHelp[]) assert.ok(c.example.startsWith(c.name), c.name)
  })
})

describe('cyberspace errors', () => {
  it('prints a port in use by libp2p as one line naming the port and the flag', () => {
    const err = new Error(
      'Some configured addresses failed to be listened on, you may need to remove one or more listen addresses from your configuration or set `transportManager.faultTolerance` to NO_FATAL:\n\n  /ip4/0.0.0.0/tcp/4101: Error: listen EADDRINUSE: address already in use 0.0.0.0:4101\n      at Server.setupListenHandle (node:net:2328:16)\n\n  /ip4/0.0.0.0/tcp/4102/ws: Error: listen EADDRINUSE: address already in use 0.0.0.0:4102\n      at x\n'
    )
    err.name = 'UnsupportedListenAddressesError'
    assert.deepEqual(describeError(err), {
      lines: [
        'cyberspace: ports 4101 and 4102 are in use (another node?): pass --listen /ip4/0.0.0.0/tcp/<other> --listen /ip4/0.0.0.0/tcp/<other>/ws'
      ],
      code: 1
    })
  })

  it('strips the class names of nested errors', () => {
    const err = new ApiError('12D3KooW… refused: ChainNotFoundError: no chain grants it', 403, 'ProofRefusedError')
    assert.deepEqual(describeError(err).lines, ['cyberspace: 12D3KooW… refused: no chain grants it'])
  })

  it("reads the members of a failed round from the node's members and reasons fields", () => {
    const A = 'z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'
    const B = 'z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2'
    const structured = new ApiError(
      `member 12D3KooWA refused: …\nmember 12D3KooWB did not answer: …`,
      502,
      'MembersFailedError',
      {
        members: [A, B],
        reasons: { [A]: 'member 12D3KooWA refused: …', [B]: 'member 12D3KooWB did not answer: …' }
      }
    )
    assert.deepEqual(memberFailures(structured), [
      { member: A, reason: 'member 12D3KooWA refused: …' },
      { member: B, reason: 'member 12D3KooWB did not answer: …' }
    ])
    assert.deepEqual(memberFailures(new ApiError(`${A}: TimeoutError: timed out`, 502, 'ThresholdError')), [])
  })

  it('joins from another machine by a non-loopback address, or says the node listens only on loopback', () => {
    const peer = '/p2p/12D3KooWRPYtu7rfWdixTa6QhUpPS4cnqSEURWAYndmdzqqmaL5h'
    const lan = joinHint([`/ip4/127.0.0.1/tcp/4101${peer}`, `/ip4/10.1.2.3/tcp/4101${peer}`], [], true)
    assert.deepEqual(lan, [
      'to join this node from another machine, run there (in a checkout of this repository, after npm install):',
      `  npm start -- --bootstrap /ip4/10.1.2.3/tcp/4101${peer}`
    ])
    const loopback = joinHint([`/ip4/127.0.0.1/tcp/4101${peer}`], ['/ip4/127.0.0.1/tcp/4101'], true)
    assert.match(loopback[0], /listens only on loopback.*--listen \/ip4\/0\.0\.0\.0\/tcp\/4101/)
    assert.ok(loopback.every(l => !l.includes('from another machine, run there')))
    assert.match(
      loopback[2],
      new RegExp(`^ {2}npm start -- --data-dir \\S+ .*--bootstrap /ip4/127\\.0\\.0\\.1/tcp/4101${peer}$`)
    )
  })
})

describe('cyberspace as a process: ports in use, output piped into head', function () {
  this.timeout(120_000)
  const dirs: string[] = []
  let server: Server
  let port: number
  before(async () => {
    server = createServer()
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as { port: number }).port
  })
  after(async () => {
    server.close()
    await Promise.all(dirs.map(removeDir))
  })
  async function dir(): Promise<string> {
    const d = await tempDir()
    dirs.push(d)
    return d
  }

  it('a listen port in use: one line naming the port and --listen, exit 1', async () => {
    const r = await runCli([
      'start',
      '--data-dir',
      await dir(),
      '--api-port',
      '0',
      '--listen',
      `/ip4/127.0.0.1/tcp/${port}`
    ])
    assert.equal(r.code, 1)
    assert.equal(r.stderr, `cyberspace: port ${port} is in use: pass --listen /ip4/127.0.0.1/tcp/<other>\n`)
  })

  it('the control API port in use: one line naming the port and --api-port, exit 1', async () => {
    const r = await runCli([
      'start',
      '--data-dir',
      await dir(),
      '--api-port',
      String(port),
      '--listen',
      '/ip4/127.0.0.1/tcp/0'
    ])
    assert.equal(r.code, 1)
    assert.equal(
      r.stderr,
      `cyberspace: control API port ${port} is in use: pass --api-port <other> (0 picks a free one)\n`
    )
  })

  it('--debug adds the stack trace', async () => {
    const r = await runCli([
      'start',
      '--debug',
      '--data-dir',
      await dir(),
      '--api-port',
      String(port),
      '--listen',
      '/ip4/127.0.0.1/tcp/0'
    ])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^cyberspace: control API port \d+ is in use.*\n.*EADDRINUSE[^]*\n {4}at /)
  })

  it('cert show --in … | head -2 ends quietly with exit 0', async () => {
    const issuer = await key()
    const certs = await Promise.all(Array.from({ length: 100 }, async () => await grant(issuer, await key())))
    const file = join(await dir(), 'certs.txt')
    await writeFile(file, certs.map(c => toAdvanced(signedCertToSexp(c))).join('\n'))
    const proc = spawn(process.execPath, [CLI, 'cert', 'show', '--in', file], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    // like head -2: read two lines, then close the pipe
    let seen = ''
    await new Promise<void>(resolve => {
      proc.stdout.on('data', (d: Buffer) => {
        seen += d.toString()
        if (seen.split('\n').length > 2) {
          proc.stdout.destroy()
          resolve()
        }
      })
    })
    const code = await new Promise<number | null>(resolve => proc.once('close', resolve))
    assert.equal(stderr, '')
    assert.equal(code, 0)
  })
})
