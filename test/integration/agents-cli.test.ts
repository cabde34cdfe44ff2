/**
 * `cyberspace agents …` for the agents a node hosts, through the real CLI against two member node
 * processes on 127.0.0.1 (A runs the built-in kinds, B a kind from a module): spawn, list, send,
 * request, stop, attach and reply, an external agent's tokens (mint, list, revoke), each verb's help,
 * bad usage (exit 2, one line naming the fix) and refusals (exit 1, naming what is wrong).
 */
import { strict as assert } from 'node:assert'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { AGENTS_HELP } from '../../node/agent-commands.ts'
import { main } from '../../node/cli.ts'
import { loadKinds } from '../../node/kinds.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { admit } from '../helpers/members.ts'
import { cliOk, cliOn, removeDir, spawnNode, startCli, stopNodes, tempDir, waitUntil } from '../helpers/processes.ts'
import { apiClient } from '../../node/api/client.ts'
import { grant, key } from '../spki/fixtures.ts'
import type { HostedAgentView, MintedTokenView, PendingMessageView } from '../../node/api/agent-routes.ts'
import type { AgentTokenInfo } from '../../node/api/agent-tokens.ts'
import type { ApiError } from '../../node/errors.ts'
import type { AgentInfo } from '../../src/actor/agents.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { MembersView } from '../../node/api/membership-routes.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { Key } from '../spki/fixtures.ts'

/** A module of kinds, as `start --kind <path>` loads it: `shout` answers its body upper-cased. */
const KINDS_MODULE = `export default {
  shout: {
    description: 'answers a request with its body upper-cased',
    behaviour: () => ({ handle: message => String(message.body).toUpperCase() })
  }
}
`

/** Runs main() in-process, collecting what it prints (for checks that never reach a node). */
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

describe('cyberspace agents: hosted agents through the CLI against node processes', function () {
  this.timeout(300_000)
  let a: NodeProcess
  let b: NodeProcess
  let root: Key
  let dir: string
  let echo: HostedAgentView
  let counter: HostedAgentView
  let helper: AgentInfo | undefined

  /** The root grants `tagText` to `principal`; both nodes import the certificate. */
  async function grantBoth(principal: string, tagText: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal: principal as PrincipalId }, tagText, { propagate: false })
    for (const n of [a, b]) await n.api.post('spki/import', { sexp: toAdvanced(signedCertToSexp(cert)) })
  }

  before(async () => {
    dir = await tempDir()
    await writeFile(join(dir, 'kinds.mjs'), KINDS_MODULE)
    root = await key()
    a = await spawnNode({ extraArgs: ['--kind', 'echo', '--kind', 'counter'] })
    b = await spawnNode({ bootstrap: [a.tcpAddr], extraArgs: ['--kind', 'echo', '--kind', join(dir, 'kinds.mjs')] })
    for (const n of [a, b]) {
      await admit(n, root)
      // the root's grants count for everything under cyberspace: the agents' mailbox grants below
      await n.api.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
    }
    for (const n of [a, b])
      await grantBoth(principalFromPeerId(peerIdFromString(n.peerId)), '(cyberspace (* set member (agent) (log)))')
    await waitUntil(
      'both nodes list 2 alive members',
      async () =>
        (await Promise.all([a, b].map(async n => await n.api.get<MembersView>('members')))).every(
          v => v.members.filter(m => m.state === 'alive').length === 2
        ),
      60_000,
      500
    )
  })

  after(async () => {
    await stopNodes([a, b])
    await removeDir(dir)
  })

  it('start prints the kinds the node runs: built-in ones, a module’s, and external', () => {
    assert.match(a.output(), /^agent kinds {5}counter, echo, external$/m)
    assert.match(b.output(), /^agent kinds {5}echo, external, shout$/m)
  })

  it('spawns agents of the kinds the node runs, and lists them', async () => {
    echo = JSON.parse(await cliOk(a, 'agents', 'spawn', 'echo', '--id', 'echo-1', '--json')) as HostedAgentView
    assert.equal(echo.kind, 'echo')
    assert.equal(echo.id, 'echo-1')
    assert.equal(echo.key, 'local', 'no cluster key here: the key is the node’s own')
    assert.equal(echo.host, a.peerId)
    assert.equal(echo.status, 'running')
    const text = await cliOk(a, 'agents', 'spawn', 'counter', '--id', 'count-1', '--key', 'local')
    const principal = text.split('\n')[0]
    assert.match(text, /^ {2}kind {8}counter$/m)
    assert.match(text, /^ {2}status {6}running$/m)
    const listed = JSON.parse(await cliOk(a, 'agents', 'list', '--json')) as AgentInfo[]
    counter = listed.find(x => x.principal === principal) as HostedAgentView
    assert.ok(counter != null, 'the counter is listed')
    assert.deepEqual(listed.map(x => `${x.kind}/${x.id}`).sort(), ['counter/count-1', 'echo/echo-1'])
    const lines = (await cliOk(a, 'agents', 'list')).trim().split('\n')
    assert.ok(lines.includes(`${echo.principal}  echo/echo-1  running  local`), lines.join('\n'))
    // B runs none yet
    assert.match(await cliOk(b, 'agents', 'list'), /^# no agents run on this node/)
  })

  it('refuses a kind the node does not run: exit 1, naming the kinds it runs and the flag that adds one', async () => {
    const r = await cliOn(a, 'agents', 'spawn', 'shout')
    assert.equal(r.code, 1)
    assert.equal(
      r.stderr,
      'cyberspace: this node runs no agents of kind shout (it runs counter, echo, external): start it with --kind shout\n'
    )
    const twice = await cliOn(a, 'agents', 'spawn', 'echo', '--id', 'echo-1')
    assert.equal(twice.code, 1)
    assert.match(twice.stderr, /^cyberspace: agent echo\/echo-1 .* runs on this node already\n$/)
  })

  it('sends and requests between agents once the sender holds a mailbox grant', async () => {
    const refused = await cliOn(a, 'agents', 'request', echo.principal, counter.principal, 'count')
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^cyberspace: .*may not send count to/)
    await grantBoth(echo.principal, '(cyberspace (mailbox (send)))')
    assert.deepEqual(JSON.parse(await cliOk(a, 'agents', 'request', echo.principal, counter.principal, 'count')), {
      n: 1,
      host: a.peerId
    })
    const sent = await cliOk(a, 'agents', 'send', echo.principal, counter.principal, 'count', '--body', '{"x": [1, 2]}')
    assert.match(sent, new RegExp(`^delivered [0-9a-f]{32} to ${counter.principal} \\(on this node\\)\\n$`))
    const third = JSON.parse(
      await cliOk(a, 'agents', 'request', echo.principal, counter.principal, 'count', '--timeout', '20s', '--json')
    ) as { id: string; response: { n: number } }
    assert.equal(third.response.n, 3, 'the one-way message was counted too')
    assert.match(third.id, /^[0-9a-f]{32}$/)
    // the echo agent answers with the body, bytes and all (DAG-JSON)
    const body = { text: 'hi', list: [1, 2.5, null, true], bytes: { '/': { bytes: 'AQID' } } }
    assert.deepEqual(
      JSON.parse(
        await cliOk(a, 'agents', 'request', echo.principal, echo.principal, 'echo', '--body', JSON.stringify(body))
      ),
      body
    )
  })

  it('runs a kind loaded from a module, and delivers across the two nodes', async () => {
    const shout = JSON.parse(await cliOk(b, 'agents', 'spawn', 'shout', '--id', 'loud', '--json')) as HostedAgentView
    assert.equal(shout.host, b.peerId)
    const answer = await cliOk(a, 'agents', 'request', echo.principal, shout.principal, 'say', '--body', '"hello"')
    assert.equal(answer, '"HELLO"\n')
  })

  it('attach prints an external agent’s mailbox as JSON lines; reply answers a request for it', async () => {
    const attach = startCli(['agents', 'attach', 'helper', '--json', '--data-dir', a.dataDir], 120_000)
    try {
      await waitUntil(
        'attach started the external agent helper',
        async () => {
          const listed = JSON.parse(await cliOk(a, 'agents', 'list', '--json')) as AgentInfo[]
          helper = listed.find(x => x.kind === 'external' && x.id === 'helper')
          return helper != null
        },
        60_000,
        500
      )
      assert.ok(helper != null)
      assert.equal(helper.external, true)
      // a one-way message is printed as it arrives, and attach confirms it then: only that returns the send
      await cliOk(a, 'agents', 'send', echo.principal, helper.principal, 'note', '--body', '{"n": 7}')
      const request = startCli(
        [
          'agents',
          'request',
          echo.principal,
          helper.principal,
          'ask',
          '--body',
          '"why?"',
          '--timeout',
          '50s',
          '--data-dir',
          a.dataDir
        ],
        90_000
      )
      await waitUntil('attach printed the request', () => attach.stdout().includes('"type":"ask"'), 60_000, 200)
      const printed = attach
        .stdout()
        .trim()
        .split('\n')
        .map(l => JSON.parse(l) as PendingMessageView)
      assert.deepEqual(
        printed.map(m => [m.type, m.request, m.from, m.to, m.body]),
        [
          ['note', false, echo.principal, helper.principal, { n: 7 }],
          ['ask', true, echo.principal, helper.principal, 'why?']
        ]
      )
      const unknown = await cliOn(a, 'agents', 'reply', helper.principal, 'no-such-message', '--body', '1')
      assert.equal(unknown.code, 1)
      assert.match(unknown.stderr, /^cyberspace: no message no-such-message is waiting for an answer\n$/)
      assert.equal(
        await cliOk(a, 'agents', 'reply', helper.principal, printed[1].id, '--body', '{"because": 42}'),
        `answered ${printed[1].id}\n`
      )
      const answered = await request.exited
      assert.equal(answered.code, 0, answered.stderr)
      assert.deepEqual(JSON.parse(answered.stdout), { because: 42 })
      // attaching by principal to a kind that is not external is refused before anything is printed
      const notExternal = await cliOn(a, 'agents', 'attach', echo.principal)
      assert.equal(notExternal.code, 1)
      assert.match(notExternal.stderr, /is of kind echo, not external/)
      assert.equal(notExternal.stdout, '')
    } finally {
      attach.proc.kill('SIGTERM')
    }
    const ended = await attach.exited
    assert.equal(ended.code, 0, ended.stderr)
    // attach minted no token and printed none: it reads with the operator's
    assert.deepEqual(JSON.parse(await cliOk(a, 'agents', 'tokens', '--json')), [])
    assert.doesNotMatch(ended.stdout, /token/)
  })

  it("mints a token for an external agent's program, lists tokens without secrets, and revokes them", async () => {
    assert.ok(helper != null)
    const text = await cliOk(a, 'agents', 'token', helper.principal)
    const [token, note] = text.trim().split('\n')
    assert.match(token, /^[A-Za-z0-9_-]{43}$/)
    const id =
      /^# token ([0-9a-f]{16}) for (z6Mk\w+), shown once; 1 in all \(revoke: .* agents revoke-token --id \1\)$/.exec(
        note
      )
    assert.ok(id != null, note)
    assert.equal(id[2], helper.principal)
    const second = JSON.parse(await cliOk(a, 'agents', 'token', helper.principal, '--json')) as MintedTokenView
    assert.equal(second.tokens, 2)
    // the program with the token acts as its agent, and only as it
    const program = apiClient(a.api.url, token)
    await program.get('agents/inbox', { agent: helper.principal })
    const listed = JSON.parse(await cliOk(a, 'agents', 'tokens', helper.principal, '--json')) as AgentTokenInfo[]
    assert.deepEqual(listed.map(t => t.id).sort(), [id[1], second.id].sort())
    assert.ok(listed.find(t => t.id === id[1])?.lastUsed != null, 'the first token was used')
    const lines = await cliOk(a, 'agents', 'tokens')
    assert.ok(!lines.includes(token) && !lines.includes(second.token), 'no secret is listed')
    assert.match(lines, new RegExp(`^${id[1]}  ${helper.principal}  created \\S+  last used \\S+$`, 'm'))
    assert.match(lines, new RegExp(`^${second.id}  ${helper.principal}  created \\S+  never used$`, 'm'))
    assert.equal(await cliOk(a, 'agents', 'revoke-token', '--id', id[1]), `revoked ${id[1]} of ${helper.principal}\n`)
    try {
      await program.get('agents/inbox', { agent: helper.principal })
      assert.fail('a revoked token still works')
    } catch (err) {
      assert.equal((err as ApiError).status, 401)
      assert.equal((err as ApiError).errorName, 'ApiTokenError')
    }
    assert.equal(
      await cliOk(a, 'agents', 'revoke-token', helper.principal),
      `revoked ${second.id} of ${helper.principal}\n`
    )
    assert.match(await cliOk(a, 'agents', 'revoke-token', helper.principal), /^# no such token: nothing revoked/)
    // only external agents get tokens
    const refused = await cliOn(a, 'agents', 'token', echo.principal)
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /is of kind echo, not external/)
  })

  it('stops an agent for good; a second stop names it as not running here', async () => {
    assert.equal(await cliOk(a, 'agents', 'stop', counter.principal), `stopped ${counter.principal}\n`)
    const listed = JSON.parse(await cliOk(a, 'agents', 'list', '--json')) as AgentInfo[]
    assert.ok(!listed.some(x => x.principal === counter.principal))
    const again = await cliOn(a, 'agents', 'stop', counter.principal)
    assert.equal(again.code, 1)
    assert.equal(again.stderr, `cyberspace: agent ${counter.principal} does not run on this node\n`)
  })

  it('bad usage exits 2 with one line naming the fix, from the real command too', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['agents', 'spawn'], /^cyberspace: usage: cyberspace agents spawn <kind>/],
      [['agents', 'spawn', 'Echo!'], /kind "Echo!" is not 1-64 of a-z 0-9/],
      [['agents', 'spawn', 'echo', '--key', 'maybe'], /pass --key cluster or --key local/],
      [['agents', 'spawn', 'echo', '--id', 'No Spaces'], /--id "No Spaces" is not 1-64/],
      [['agents', 'send', 'z6Mk'], /^cyberspace: usage: cyberspace agents send <from> <to> <type>/],
      [['agents', 'request', 'nobody', 'z6Mk', 'ping'], /<from> "nobody" is not an agent principal .*agents list/],
      [['agents', 'request', echo.principal, 'x', 'ping', '--body', '{oops'], /--body is not JSON .*pass a JSON value/],
      [
        ['agents', 'request', echo.principal, 'x', 'ping', '--timeout', '2m'],
        /--timeout 2m is out of range: pass 1ms to 55s/
      ],
      [['agents', 'send', echo.principal, 'x', 'ping', '--timeout', 'soon'], /--timeout soon is not a duration/],
      [['agents', 'stop'], /^cyberspace: usage: cyberspace agents stop <agent>/],
      [['agents', 'reply', echo.principal], /usage: cyberspace agents reply <agent> <message-id>/],
      [['agents', 'reply', echo.principal, 'm1', '--body', '1', '--error', 'no'], /pass --body or --error, not both/],
      [['agents', 'attach', 'Not An Id'], /neither an agent principal .* nor an external agent id/],
      [['agents', 'token'], /^cyberspace: usage: cyberspace agents token <agent>/],
      [['agents', 'token', 'helper'], /<agent> "helper" is not an agent principal/],
      [['agents', 'tokens', 'a', 'b'], /usage: cyberspace agents tokens \[<agent>\]/],
      [['agents', 'revoke-token'], /usage: cyberspace agents revoke-token <agent> \| --id <token-id>/],
      [['agents', 'revoke-token', echo.principal, '--id', '0123456789abcdef'], /usage: cyberspace agents revoke-token/],
      [['agents', 'revoke-token', '--id', 'short'], /--id "short" is not a token id/],
      [['agents', 'frobnicate'], /unknown command "agents frobnicate" \(see cyberspace agents --help\)/],
      [
        ['start', '--kind', 'nosuch'],
        /--kind nosuch: no built-in kind of that name \(built in: echo, counter\).*--kind \.\/kinds\.mjs/
      ]
    ]
    for (const [argv, message] of cases) {
      const r = await run(...argv, '--data-dir', a.dataDir)
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
      assert.equal(r.stderr.split('\n').length, 1, r.stderr)
      assert.match(r.stderr, message)
    }
    // the same from the installed command, as a user runs it
    const real = await cliOn(a, 'agents', 'request', echo.principal, 'x', 'ping', '--body', '{oops')
    assert.equal(real.code, 2)
    assert.match(real.stderr, /^cyberspace: --body is not JSON/)
  })

  it('every verb prints its usage, options and an example with --help', async () => {
    for (const c of AGENTS_HELP.commands) {
      const r = await run(...c.name.split(' '), '--help')
      assert.equal(r.code, 0)
      assert.ok(r.stdout.startsWith(`usage: cyberspace ${c.name}`), r.stdout)
      assert.match(r.stdout, /\noptions:\n/)
      assert.match(r.stdout, new RegExp(`\\nexample:\\n {2}npx --no-install cyberspace ${c.name} `))
    }
    const verbs = AGENTS_HELP.commands.map(c => c.name.split(' ')[1])
    assert.deepEqual(verbs, [
      'list',
      'spawn',
      'send',
      'request',
      'stop',
      'attach',
      'reply',
      'token',
      'tokens',
      'revoke-token',
      'get',
      'find',
      'publish'
    ])
    const real = await cliOn(a, 'agents', 'attach', '--help')
    assert.equal(real.code, 0)
    assert.match(real.stdout, /^usage: cyberspace agents attach <agent\|id> \[--json\]\n/)
    assert.match(real.stdout, /--json +one JSON object per message \(JSON lines\)/)
  })

  it('loads kinds from a module only if its default export maps names to definitions', async () => {
    const bad: Array<[string, string, RegExp]> = [
      ['none.mjs', 'export const x = 1\n', /the default export is missing/],
      ['array.mjs', 'export default [1]\n', /the default export is an array/],
      ['nofn.mjs', 'export default { k: { behaviour: 1 } }\n', /kind k has no behaviour function/],
      ['badname.mjs', 'export default { "Big Kind": { behaviour() {} } }\n', /kind name "Big Kind" is not/],
      ['external.mjs', 'export default { external: { behaviour() {} } }\n', /kind external is the node's own/],
      ['broken.mjs', 'export default {\n', /cannot load the module/]
    ]
    for (const [file, text, message] of bad) {
      await writeFile(join(dir, file), text)
      await assert.rejects(loadKinds([join(dir, file)]), (err: Error) => {
        assert.equal(err.name, 'UsageError')
        assert.match(err.message, message)
        return true
      })
    }
    await assert.rejects(loadKinds(['echo', 'echo']), /kind echo is defined twice/)
    const kinds = await loadKinds(['counter', './kinds.mjs'], dir)
    assert.deepEqual([...kinds.keys()], ['counter', 'shout'])
    // a function of the node gives the definition, called with what the kind knows of its node
    await writeFile(
      join(dir, 'fn.mjs'),
      'export default { host: ({ host }) => ({ description: host, behaviour() {} }), empty: () => 1 }\n'
    )
    const made = await loadKinds([join(dir, 'fn.mjs')])
    assert.equal(made.get('host')?.({ host: 'peer-1' }).description, 'peer-1')
    assert.throws(() => made.get('empty')?.({ host: 'peer-1' }), /kind empty's function returned no definition/)
    const r = await run('start', '--kind', join(dir, 'array.mjs'), '--data-dir', join(dir, 'unused'))
    assert.equal(r.code, 2)
    assert.match(
      r.stderr,
      /^cyberspace: --kind .*array\.mjs: the default export is an array; its default export must be/
    )
  })
})
