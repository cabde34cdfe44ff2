/**
 * `cyberspace work …`, `cyberspace fleet` and `cyberspace events` through the real CLI against two
 * member node processes on 127.0.0.1: a coordinator agent on A creates a goal and tasks on an
 * eventual board; implementers on A and B claim, report progress and complete; a second claim is
 * refused naming ItemAlreadyClaimedError; a validator reads and cannot write; B sees the board
 * replicated; the fleet's shape; the journal's board events in HLC order, and followed live. Also
 * every command's help, and bad usage (exit 2, one line naming the fix).
 */
import { strict as assert } from 'node:assert'
import { peerIdFromString } from '@libp2p/peer-id'
import { parseHlc as parseHlcText } from '../../src/clock/hlc.ts'
import { EVENTS_HELP, FLEET_HELP, WORK_HELP } from '../../node/work-commands.ts'
import { main } from '../../node/cli.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { admit } from '../helpers/members.ts'
import { cliOk, cliOn, spawnNode, startCli, stopNodes, waitUntil } from '../helpers/processes.ts'
import { grant, key } from '../spki/fixtures.ts'
import type { EventView, FleetView, WorkItemView, WorkOpResult } from '../../node/api/work-routes.ts'
import type { HostedAgentView } from '../../node/api/agent-routes.ts'
import type { MembersView } from '../../node/api/membership-routes.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { Key } from '../spki/fixtures.ts'

const BOARD = 'release'
const IMPLEMENTER = `(cyberspace (work ${BOARD} (* set claim release progress complete fail handoff read) task))`

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

describe('cyberspace work, fleet and events: help and usage', () => {
  const commands = [...WORK_HELP.commands, FLEET_HELP, EVENTS_HELP]
  for (const c of commands) {
    it(`${c.name} --help prints its usage line, options and one example, within 100 columns`, async () => {
      const { code, stdout } = await run(...c.name.split(' '), '--help')
      assert.equal(code, 0)
      const lines = stdout.split('\n')
      assert.ok(lines[0].startsWith(`usage: cyberspace ${c.name}`), lines[0])
      assert.match(stdout, /\noptions:\n {2}--/)
      assert.match(stdout, new RegExp(`\\nexample:\\n {2}npx --no-install cyberspace ${c.name}( |$)`))
      const wide = lines.filter(l => l.length > 100)
      assert.deepEqual(wide, [], 'lines wider than 100 columns')
      if (c.name !== 'events') assert.match(stdout, /--json/)
    })
  }

  it('a bare work lists its commands (exit 2)', async () => {
    const bare = await run('work')
    assert.equal(bare.code, 2)
    for (const c of WORK_HELP.commands) assert.match(bare.stdout, new RegExp(`^ {2}${c.name.split(' ')[1]} `, 'm'))
  })

  it('refuses bad usage before reaching a node: exit 2, one line naming the fix', async () => {
    const dir = ['--data-dir', '/nonexistent/cyberspace-work-cli']
    const cases: Array<[string[], RegExp]> = [
      [['work', 'claim', BOARD, 't1', ...dir], /^cyberspace: --as <agent> is needed: .* agents list\)$/],
      [['work', 'claim', BOARD, 't1', '--as', 'bob', ...dir], /^cyberspace: --as "bob" is not an agent principal/],
      [['work', 'claim', 'Release!', 't1', ...dir], /^cyberspace: board "Release!" is not 1-64 of a-z 0-9/],
      [['work', 'claim', BOARD, '-x', ...dir], /^cyberspace: Unknown option '-x'/],
      [['work', 'claim', BOARD, ...dir], /^cyberspace: usage: cyberspace work claim <board> <item> --as <agent>$/],
      [['work', 'create', BOARD, 't1', '--kind', 'task', ...dir], /^cyberspace: work create needs --title <t>/],
      [['work', 'create', BOARD, 't1', '--title', 'x', ...dir], /^cyberspace: work create needs --kind <k>/],
      [
        ['work', 'progress', BOARD, 't1', '--percent', '101', ...dir],
        /--percent 101 is not a whole number from 0 to 100/
      ],
      [
        ['work', 'complete', BOARD, 't1', '--result', '{nope', ...dir],
        /^cyberspace: --result is not JSON .*: pass a JSON value/
      ],
      [
        ['work', 'list', BOARD, '--status', 'done', ...dir],
        /--status done is not a status: pass some of submitted,working/
      ],
      [['work', 'open', BOARD, '--mode', 'strong', ...dir], /--mode strong: pass --mode local or --mode eventual/],
      [['events', '--since', 'yesterday', ...dir], /--since yesterday is not an HLC: pass wall.logical/],
      [['events', '--limit', '5', '--follow', ...dir], /--limit and --follow do not go together/],
      [['fleet', 'now', ...dir], /^cyberspace: fleet: unexpected argument "now"/]
    ]
    for (const [argv, message] of cases) {
      const r = await run(...argv)
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message, argv.join(' '))
      assert.equal(r.stderr.split('\n').length, 1, argv.join(' '))
    }
  })

  it('reads an HLC as wall.logical or as a bare wall', () => {
    assert.deepEqual(parseHlcText('1763700000000.3'), [1763700000000, 3])
    assert.deepEqual(parseHlcText('1763700000000'), [1763700000000, 0])
    assert.equal(parseHlcText('1763700000000.'), undefined)
    assert.equal(parseHlcText('-1'), undefined)
    assert.equal(parseHlcText('1.99999999999'), undefined)
    assert.equal(parseHlcText(`1.${2 ** 32}`), undefined, 'past the largest logical counter')
  })
})

describe('cyberspace work, fleet and events against node processes', function () {
  this.timeout(300_000)
  let a: NodeProcess
  let b: NodeProcess
  let root: Key
  let coord: PrincipalId
  let impl: PrincipalId
  let validator: PrincipalId
  let implB: PrincipalId
  /** An HLC from before anything happened on the board. */
  let start: string

  /** The root grants `tagText` to `principal`; both nodes import the certificate. */
  async function grantBoth(principal: string, tagText: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal: principal as PrincipalId }, tagText, { propagate: false })
    for (const n of [a, b]) await n.api.post('spki/import', { sexp: toAdvanced(signedCertToSexp(cert)) })
  }

  async function spawnAgent(node: NodeProcess, id: string): Promise<PrincipalId> {
    const info = JSON.parse(
      await cliOk(node, 'agents', 'spawn', 'echo', '--id', id, '--key', 'local', '--json')
    ) as HostedAgentView
    return info.principal
  }

  const itemsOn = async (node: NodeProcess, ...flags: string[]): Promise<WorkItemView[]> =>
    JSON.parse(await cliOk(node, 'work', 'list', BOARD, '--json', ...flags)) as WorkItemView[]

  before(async () => {
    root = await key()
    a = await spawnNode({ extraArgs: ['--kind', 'echo'] })
    b = await spawnNode({ bootstrap: [a.tcpAddr], extraArgs: ['--kind', 'echo'] })
    for (const n of [a, b]) {
      await admit(n, root)
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
    start = `${Date.now() - 1}.0`
    coord = await spawnAgent(a, 'coord')
    impl = await spawnAgent(a, 'impl-a')
    validator = await spawnAgent(a, 'check')
    implB = await spawnAgent(b, 'impl-b')
    await grantBoth(coord, `(cyberspace (work ${BOARD}))`)
    await grantBoth(impl, IMPLEMENTER)
    await grantBoth(implB, IMPLEMENTER)
    await grantBoth(validator, `(cyberspace (work ${BOARD} read))`)
  })

  after(async () => {
    await stopNodes([a, b])
  })

  it('creates a goal and dependent tasks as the coordinator, opening the board, and lists them', async () => {
    assert.match(await cliOk(a, 'work', 'boards'), /^# no boards on this node/)
    const created = await cliOk(
      a,
      'work',
      'create',
      BOARD,
      'goal',
      '--title',
      'ship 1.0',
      '--kind',
      'goal',
      '--as',
      coord
    )
    assert.equal(created, `created ${BOARD}/goal: submitted\n`)
    await cliOk(
      a,
      'work',
      'create',
      BOARD,
      't1',
      '--parent',
      'goal',
      '--title',
      'unit tests',
      '--kind',
      'task',
      '--skills',
      'ts,mocha',
      '--priority',
      '5',
      '--as',
      coord
    )
    const t2 = JSON.parse(
      await cliOk(
        a,
        'work',
        'create',
        BOARD,
        't2',
        '--parent',
        'goal',
        '--title',
        'release notes',
        '--kind',
        'task',
        '--deps',
        't1',
        '--as',
        coord,
        '--json'
      )
    ) as WorkOpResult
    assert.deepEqual(t2.outcome, { accepted: true })
    assert.equal(t2.item?.path, 'goal/t2')
    assert.deepEqual(t2.item?.deps, ['t1'])
    assert.equal(t2.item?.ready, false)
    assert.deepEqual(
      (await itemsOn(a)).map(i => [i.id, i.path, i.kind, i.status]),
      [
        ['goal', 'goal', 'goal', 'submitted'],
        ['t1', 'goal/t1', 'task', 'submitted'],
        ['t2', 'goal/t2', 'task', 'submitted']
      ]
    )
    assert.deepEqual(
      (await itemsOn(a, '--ready')).map(i => i.id),
      ['goal', 't1'],
      't2 waits for t1'
    )
    const lines = (await cliOk(a, 'work', 'list', BOARD)).trim().split('\n')
    assert.deepEqual(lines, [
      'goal  submitted  goal  -  ship 1.0',
      't1  submitted  task  -  unit tests',
      't2  submitted (not ready)  task  -  release notes'
    ])
    assert.equal(await cliOk(a, 'work', 'boards'), `${BOARD}  eventual  3 items  3 operations\n`)
  })

  it('claims, reports progress and completes as an implementer; the dependent task becomes ready', async () => {
    assert.equal(await cliOk(a, 'work', 'claim', BOARD, 't1', '--as', impl), `claimed ${BOARD}/t1: working (${impl})\n`)
    assert.equal(
      await cliOk(
        a,
        'work',
        'progress',
        BOARD,
        't1',
        '--percent',
        '50',
        '--message',
        'half the suites pass',
        '--as',
        impl
      ),
      `progress on ${BOARD}/t1: working (${impl})\n`
    )
    const shown = JSON.parse(await cliOk(a, 'work', 'show', BOARD, 't1', '--json')) as WorkItemView
    assert.deepEqual(shown.progress, { percent: 50, message: 'half the suites pass' })
    assert.equal(shown.assignee, impl)
    const text = await cliOk(a, 'work', 'show', BOARD, 't1')
    assert.match(text, /^release\/goal\/t1\n {2}title {7}unit tests\n/)
    assert.match(text, /^ {2}progress {4}50% half the suites pass$/m)
    assert.match(text, new RegExp(`^ {2}\\d+\\.\\d+  claim by ${impl} → working$`, 'm'))
    await cliOk(
      a,
      'work',
      'complete',
      BOARD,
      't1',
      '--result',
      '{"passed": 120, "cid": {"/": "bafyreidjl336ad7kddhhetkge2oehnmohh5rjn3r4enkvby5s54rmriukm"}}',
      '--as',
      impl
    )
    const done = JSON.parse(await cliOk(a, 'work', 'show', BOARD, 't1', '--json')) as WorkItemView
    assert.equal(done.status, 'completed')
    assert.deepEqual(done.result, {
      passed: 120,
      cid: { '/': 'bafyreidjl336ad7kddhhetkge2oehnmohh5rjn3r4enkvby5s54rmriukm' }
    })
    assert.deepEqual(
      done.history.map(h => h.op),
      ['create', 'claim', 'progress', 'complete']
    )
    assert.deepEqual(
      (await itemsOn(a, '--ready')).map(i => i.id),
      ['goal', 't2']
    )
    // a final item takes nothing more
    const again = await cliOn(a, 'work', 'progress', BOARD, 't1', '--percent', '90', '--as', impl)
    assert.equal(again.code, 1)
    assert.match(again.stderr, /\(ItemTerminalError\); nothing changes a final item: see .* work show release t1\n$/)
  })

  it('replicates the board to B, where a second claim of a held item is refused naming ItemAlreadyClaimedError', async () => {
    // reading never opens a board: B opens it, and it arrives from A
    const unopened = await cliOn(b, 'work', 'list', BOARD)
    assert.equal(unopened.code, 1)
    assert.match(unopened.stderr, /this node holds no board release: open it with .* work open release/)
    assert.match(await cliOk(b, 'work', 'open', BOARD), /^opened release \(eventual\)/)
    await waitUntil('B holds the board’s items', async () => (await itemsOn(b)).length === 3, 60_000, 500)
    await cliOk(a, 'work', 'claim', BOARD, 't2', '--as', impl)
    await waitUntil(
      'B sees t2 claimed',
      async () => (await itemsOn(b)).find(i => i.id === 't2')?.assignee === impl,
      60_000,
      500
    )
    const second = await cliOn(b, 'work', 'claim', BOARD, 't2', '--as', implB)
    assert.equal(second.code, 1)
    assert.match(
      second.stderr,
      /^cyberspace: .*held by z6Mk\w+ \(ItemAlreadyClaimedError\); another agent holds it: see .* work show release t2\n$/
    )
    assert.ok(second.stderr.includes(impl), 'the line names the holder')
    // the implementer on A hands t2 to B's implementer, who completes it there
    await cliOk(a, 'work', 'handoff', BOARD, 't2', '--to', implB, '--state', '{"draft": "v1"}', '--as', impl)
    await waitUntil(
      'B sees t2 handed to its implementer',
      async () => (await itemsOn(b)).find(i => i.id === 't2')?.assignee === implB,
      60_000,
      500
    )
    const handed = JSON.parse(await cliOk(b, 'work', 'show', BOARD, 't2', '--json')) as WorkItemView
    assert.deepEqual(handed.handoff, { from: impl, state: { draft: 'v1' } })
    await cliOk(b, 'work', 'complete', BOARD, 't2', '--as', implB)
    await waitUntil(
      'A sees t2 completed on B',
      async () => (await itemsOn(a)).find(i => i.id === 't2')?.status === 'completed',
      60_000,
      500
    )
  })

  it('lets a validator read with its own rights and refuses its writes; an implementer reads only tasks', async () => {
    assert.deepEqual(
      (await itemsOn(a, '--as', validator)).map(i => i.id),
      ['goal', 't1', 't2']
    )
    assert.deepEqual(
      (await itemsOn(a, '--as', impl)).map(i => i.id),
      ['t1', 't2'],
      'the implementer’s read right covers kind task only'
    )
    const goal = await cliOn(a, 'work', 'show', BOARD, 'goal', '--as', impl)
    assert.equal(goal.code, 1)
    // an item it may not read is as one that does not exist
    assert.match(goal.stderr, /has no item goal that z6Mk\w+ may read/)
    for (const argv of [
      ['create', BOARD, 'v1', '--title', 'sneak', '--kind', 'task'],
      ['cancel', BOARD, 'goal'],
      ['claim', BOARD, 'goal']
    ]) {
      const r = await cliOn(a, 'work', ...argv, '--as', validator)
      assert.equal(r.code, 1, argv.join(' '))
      assert.match(r.stderr, /\(WorkUnauthorizedError\)/, argv.join(' '))
    }
    // an implementer may not create either: its grant names no create
    const create = await cliOn(
      a,
      'work',
      'create',
      BOARD,
      't3',
      '--parent',
      'goal',
      '--title',
      'x',
      '--kind',
      'task',
      '--as',
      impl
    )
    assert.equal(create.code, 1)
    assert.match(create.stderr, /\(WorkUnauthorizedError\)/)
    assert.equal((await itemsOn(a)).length, 3, 'nothing was written')
  })

  it('refuses an actor that is not hosted on the node, naming agents list', async () => {
    const r = await cliOn(b, 'work', 'claim', BOARD, 'goal', '--as', coord)
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^cyberspace: agent z6Mk\w+ does not run on this node: .*\(see .* agents list\)/)
  })

  it('events --since prints the board’s events in HLC order, as text and JSON lines', async () => {
    const events = (await cliOk(a, 'events', '--since', start, '--json'))
      .trim()
      .split('\n')
      .map(l => JSON.parse(l) as EventView)
    for (let i = 1; i < events.length; i++) {
      const [p, q] = [events[i - 1].hlc, events[i].hlc]
      assert.ok(p[0] < q[0] || (p[0] === q[0] && p[1] <= q[1]), `event ${i} is not in HLC order`)
    }
    const board = events.filter(e => e.source === 'board')
    assert.deepEqual(
      board.filter(e => e.subject === `${BOARD}/t1`).map(e => e.type),
      ['create', 'claim', 'progress', 'complete']
    )
    assert.deepEqual(
      board.filter(e => e.subject === `${BOARD}/t2`).map(e => e.type),
      ['create', 'claim', 'handoff', 'complete']
    )
    assert.ok(
      events.some(e => e.source === 'agent' && e.type === 'agent:start'),
      'the agents’ starts are there too'
    )
    const claim = board.find(e => e.subject === `${BOARD}/t1` && e.type === 'claim')
    assert.deepEqual(claim?.data, { actor: impl, index: 0 })
    // text: one line each, starting with the HLC as --since takes it; --since that line's HLC goes on after it
    const lines = (await cliOk(a, 'events', '--since', start)).trim().split('\n')
    assert.equal(lines.length, events.length)
    const t1 = lines.find(l => l.includes(` board  claim  ${BOARD}/t1`))
    assert.ok(t1 != null)
    const hlc = t1.split('  ')[0]
    assert.match(hlc, /^\d+\.\d+$/)
    const after = (await cliOk(a, 'events', '--since', hlc, '--json'))
      .trim()
      .split('\n')
      .map(l => JSON.parse(l) as EventView)
    const [wall, logical] = parseHlcText(hlc) as [number, number]
    assert.ok(after.every(e => e.hlc[0] > wall || (e.hlc[0] === wall && e.hlc[1] > logical)))
    assert.ok(after.some(e => e.subject === `${BOARD}/t1` && e.type === 'progress'))
    assert.equal((await cliOk(a, 'events', '--since', start, '--limit', '2')).trim().split('\n').length, 2)
  })

  it('events --follow prints new events as they happen, and stops on SIGTERM', async () => {
    const follow = startCli(['events', '--since', start, '--follow', '--json', '--data-dir', a.dataDir], 120_000)
    try {
      await waitUntil(
        'follow printed the events so far',
        () => follow.stdout().includes('"type":"complete"'),
        60_000,
        200
      )
      await cliOk(a, 'work', 'create', BOARD, 'late', '--title', 'after the fact', '--kind', 'task', '--as', coord)
      await waitUntil(
        'follow printed the new create',
        () => follow.stdout().includes(`"subject":"${BOARD}/late"`),
        60_000,
        200
      )
    } finally {
      follow.proc.kill('SIGTERM')
    }
    const ended = await follow.exited
    assert.equal(ended.code, 0, ended.stderr)
    const printed = ended.stdout
      .trim()
      .split('\n')
      .map(l => JSON.parse(l) as EventView)
    const creates = printed.filter(e => e.source === 'board' && e.type === 'create').map(e => e.subject)
    assert.deepEqual(creates, [`${BOARD}/goal`, `${BOARD}/t1`, `${BOARD}/t2`, `${BOARD}/late`], 'each once, in order')
  })

  it('fleet prints totals, then a row per agent; --json has totals, members, agents and drops', async () => {
    let view: FleetView | undefined
    // a heartbeat goes out every 30 s: wait for the one that carries the agents spawned above
    await waitUntil(
      'the fleet lists the four agents',
      async () => {
        view = JSON.parse(await cliOk(a, 'fleet', '--json')) as FleetView
        return view.agents.length === 4
      },
      90_000,
      1000
    )
    assert.ok(view != null)
    assert.deepEqual(Object.keys(view.totals).sort(), [
      'active',
      'agents',
      'done',
      'failed',
      'idle',
      'load',
      'overloaded',
      'retiring',
      'stale'
    ])
    assert.equal(view.totals.agents, 4)
    assert.deepEqual(view.agents.map(r => r.agent).sort(), [coord, impl, validator, implB].sort())
    const row = view.agents.find(r => r.agent === implB)
    assert.equal(row?.kind, 'echo')
    assert.equal(row?.host, principalFromPeerId(peerIdFromString(b.peerId)))
    assert.equal(typeof row?.load, 'number')
    assert.ok(['active', 'idle', 'overloaded', 'retiring'].includes(row?.status ?? ''))
    assert.deepEqual(
      view.members.map(m => m.member).sort(),
      [a, b].map(n => principalFromPeerId(peerIdFromString(n.peerId))).sort()
    )
    assert.equal(typeof view.drops.forged, 'number')
    const text = (await cliOk(a, 'fleet')).trim().split('\n')
    assert.match(
      text[0],
      /^agents 4 {2}active \d+ {2}idle \d+ {2}overloaded \d+ {2}retiring \d+ {2}stale \d+ {2}load \d+\.\d\d {2}done \d+ {2}failed \d+$/
    )
    assert.equal(text[1], 'agent  kind  status  load  done  failed  latency  host  age')
    assert.equal(text.length, 6)
    assert.ok(
      text.slice(2).every(l => /^z6Mk\w+ {2}echo {2}\w+/.test(l)),
      text.join('\n')
    )
  })
})
