import { strict as assert } from 'node:assert'
import { parsePrincipal } from '../../src/crypto/principal.ts'
import { cliOk as ok, cliOn as on, startCli, spawnNode, stopNodes, waitUntil } from '../helpers/processes.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { DocumentView } from '../../node/api/state-routes.ts'

/** `cyberspace state …` between two node processes on 127.0.0.1 that trust each other's writes. */
describe('cyberspace state: documents between two node processes', function () {
  this.timeout(120_000)
  let a: NodeProcess
  let b: NodeProcess

  before(async () => {
    a = await spawnNode()
    b = await spawnNode({ bootstrap: [a.tcpAddr] })
    await waitUntil('B connected to A', async () => (await b.api.get<unknown[]>('peers')).length === 1, 60_000)
    // each operator lets the other node write any log here
    await ok(b, 'acl', 'add', parsePrincipal(a.peerId), '(cyberspace (log))')
    await ok(a, 'acl', 'add', parsePrincipal(b.peerId), '(cyberspace (log))')
  })
  after(async () => {
    await stopNodes([a, b])
  })

  it('sets values of every shape on one node and reads them on the other', async () => {
    assert.match(
      await ok(a, 'state', 'set', 'notes', 'hello there', '--type', 'lww-register'),
      /^"hello there"\n# event bafy\w+\n$/
    )
    await ok(a, 'state', 'set', 'tasks', 'report/owner', 'ana', '--type', 'or-map')
    await ok(a, 'state', 'incr', 'tasks', 'report/edits', '--by', '3')
    await ok(a, 'state', 'add', 'tasks', 'report/tags', '"urgent"')
    await ok(a, 'state', 'set', 'tasks', 'report/due', '{"day": 3, "ok": true}')
    await ok(a, 'state', 'incr', 'visits', '--type', 'pn-counter', '--by', '5')
    await ok(a, 'state', 'incr', 'visits', '--by=-2')
    await ok(a, 'state', 'set', 'draft', 'Dear Bo', '--type', 'text')

    const expected = {
      notes: '"hello there"\n',
      tasks: '{"report":{"due":{"day":3,"ok":true},"edits":3,"owner":"ana","tags":["urgent"]}}\n',
      visits: '3\n',
      draft: 'Dear Bo\n'
    }
    assert.equal(await ok(a, 'state', 'get', 'tasks'), expected.tasks)
    const types = { notes: 'lww-register', tasks: 'or-map', visits: 'pn-counter', draft: 'text' }
    for (const [name, type] of Object.entries(types)) {
      // B has never heard of these documents: naming the type opens them, and anti-entropy fetches A's events
      await waitUntil(
        `B has ${name}`,
        async () =>
          (await on(b, 'state', 'get', name, '--type', type)).stdout === expected[name as keyof typeof expected],
        30_000,
        500
      )
    }
    const listed = JSON.parse(await ok(b, 'state', 'list', '--json')) as Array<{ name: string; type: string }>
    assert.deepEqual(
      listed.map(d => `${d.name} ${d.type}`).sort(),
      Object.entries(types)
        .map(([n, t]) => `${n} ${t}`)
        .sort()
    )
    const view = JSON.parse(await ok(b, 'state', 'get', 'tasks', '--json')) as DocumentView
    const there = JSON.parse(await ok(a, 'state', 'get', 'tasks', '--json')) as DocumentView
    assert.deepEqual(view.heads, there.heads)
    assert.equal(view.events, 4)
  })

  it('watches a document: prints its value, then each change from the other node with its author', async () => {
    const watcher = startCli(['state', 'watch', 'tasks', '--data-dir', b.dataDir], 60_000)
    try {
      await waitUntil('the watch printed the value', () => watcher.stdout().includes('"owner":"ana"'), 20_000, 100)
      await ok(a, 'state', 'set', 'tasks', 'report/owner', 'bo')
      await ok(a, 'state', 'unset', 'tasks', 'report/tags')
      await waitUntil('the watch saw both changes', () => watcher.stdout().includes('"owner":"bo"}}'), 30_000, 100)
      const lines = watcher.stdout().trim().split('\n')
      const changes = lines.filter(l => l.startsWith('# event '))
      assert.equal(changes.length, 2, watcher.stdout())
      for (const c of changes) assert.match(c, new RegExp(` by ${parsePrincipal(a.peerId)} at \\d{4}-`))
      assert.equal(lines[lines.length - 1], '{"report":{"due":{"day":3,"ok":true},"edits":3,"owner":"bo"}}')
    } finally {
      watcher.proc.kill('SIGINT')
    }
    const { code, stderr } = await watcher.exited
    assert.equal(code, 0, stderr)
  })

  it('deletes a document from one node only: it stops replicating it there, the other keeps it', async () => {
    await ok(a, 'state', 'set', 'scratch', '"temporary"', '--type', 'lww-register', '--public')
    assert.match(await ok(a, 'state', 'list'), /^scratch {2}lww-register {2}public$/m)
    await waitUntil(
      'B has scratch',
      async () => (await on(b, 'state', 'get', 'scratch', '--type', 'lww-register')).stdout === '"temporary"\n',
      30_000,
      500
    )
    assert.equal(
      await ok(b, 'state', 'delete', 'scratch'),
      'deleted scratch from this node: it no longer replicates it (other nodes keep their replicas)\n'
    )
    const gone = await on(b, 'state', 'get', 'scratch')
    assert.equal(gone.code, 1)
    assert.match(gone.stderr, /^cyberspace: this node has no document scratch; open it with its type/)
    assert.doesNotMatch(await ok(b, 'state', 'list'), /scratch/)
    // a change on A no longer reaches B, and A still has its copy
    await ok(a, 'state', 'set', 'scratch', '"changed"')
    assert.equal(await ok(a, 'state', 'get', 'scratch'), '"changed"\n')
    assert.doesNotMatch(await ok(b, 'state', 'list'), /scratch/)
  })

  it('refuses what cannot be done, with the reason and a non-zero exit', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [
        ['state', 'get', 'nothing-here'],
        1,
        /^cyberspace: this node has no document nothing-here; open it with its type: npx --no-install cyberspace state get nothing-here --type <t> \(see npx --no-install cyberspace state list\)\n$/
      ],
      [['state', 'get', 'tasks', '--type', 'g-counter'], 1, /open as a or-map, not a g-counter/],
      [['state', 'watch', 'nothing-here'], 1, /no document nothing-here; open it with its type/],
      [['state', 'add', 'notes', '1'], 1, /add does not apply to a lww-register/],
      [['state', 'set', 'tasks', 'x'], 1, /set on a map needs a path/],
      [['state', 'set', 'Bad Name', '1', '--type', 'lww-register'], 1, /invalid document name/],
      [['state', 'get', 'x', '--type', 'b-tree'], 1, /type must be one of g-counter/],
      [['state', 'incr', 'visits', '--by', '1.5'], 2, /--by takes a whole number/],
      [
        ['state', 'frobnicate', 'x'],
        2,
        /^cyberspace: unknown command "state frobnicate" \(see cyberspace state --help\)\n$/
      ],
      [
        ['state', 'delete', 'tasks', 'report/due'],
        2,
        /whole document; to delete the field report\/due, run: npx --no-install cyberspace state unset tasks report\/due/
      ],
      [
        ['state', 'delete', 'nothing-here'],
        1,
        /^cyberspace: this node has no document nothing-here \(see npx --no-install cyberspace state list\)\n$/
      ],
      [
        ['state', 'set', 'notes', '1', '--public'],
        2,
        /--public applies when a document is opened: give its --type too/
      ],
      [['state', 'get'], 2, /usage: cyberspace state get <name>/]
    ]
    for (const [args, code, message] of cases) {
      const r = await on(a, ...args)
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message, args.join(' '))
    }
  })
})
