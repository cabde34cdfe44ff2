/**
 * Membership among 12 node processes on 127.0.0.1: every node trusts one root for
 * `(cyberspace member)` and holds its own member certificate. Observers poll each survivor's
 * control API (`GET members`) every 200 ms and record every state they see, so "no live member is
 * ever marked dead" is checked over the whole run, not just at the end.
 */
import { strict as assert } from 'node:assert'
import { spawn } from 'node:child_process'
import { spkiTime } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { certHash, signCrl, signedCrlToSexp } from '../../src/spki/crl.ts'
import { detectionBound, worstCaseDetection } from '../../src/membership/service.ts'
import { key } from '../spki/fixtures.ts'
import { admit } from '../helpers/members.ts'
import { cliOn, sleep, spawnNode, stopNodes, waitUntil } from '../helpers/processes.ts'
import type { ChildProcess } from 'node:child_process'
import type { MembersView } from '../../node/api/membership-routes.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { Key } from '../spki/fixtures.ts'
import type { SignedCert } from '../../src/spki/cert.ts'

const N = 12

/** Every state each observer has shown for each member, in order (repeats folded). */
class Observer {
  readonly seen = new Map<string, Map<string, string[]>>()
  private stopped = false
  private readonly loops: Array<Promise<void>> = []

  watch(nodes: NodeProcess[]): void {
    for (const node of nodes) {
      const byMember = new Map<string, string[]>()
      this.seen.set(node.peerId, byMember)
      this.loops.push(
        (async () => {
          while (!this.stopped && node.proc.exitCode == null && node.proc.signalCode == null) {
            try {
              const view = await node.api.get<MembersView>('members', {}, { signal: AbortSignal.timeout(2000) })
              for (const m of view.members) {
                const states = byMember.get(m.peerId) ?? []
                if (states.at(-1) !== m.state) states.push(m.state)
                byMember.set(m.peerId, states)
              }
            } catch {}
            await sleep(200)
          }
        })()
      )
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    await Promise.all(this.loops)
  }

  /** Observers (by peer id) that ever showed `member` in `state`. */
  showed(member: string, state: string): string[] {
    return [...this.seen].filter(([, byMember]) => (byMember.get(member) ?? []).includes(state)).map(([o]) => o)
  }
}

async function view(node: NodeProcess): Promise<MembersView> {
  return await node.api.get<MembersView>('members')
}

async function stateOf(observer: NodeProcess, member: NodeProcess): Promise<string | undefined> {
  return (await view(observer)).members.find(m => m.peerId === member.peerId)?.state
}

async function allSee(observers: NodeProcess[], member: NodeProcess, state: string): Promise<boolean> {
  const states = await Promise.all(observers.map(async o => await stateOf(o, member).catch(() => undefined)))
  return states.every(s => s === state)
}

/** Busy loops on every core, so the members run on a loaded machine. */
function loadCpu(count: number): ChildProcess[] {
  return Array.from({ length: count }, () =>
    spawn(process.execPath, ['-e', 'const end = Date.now() + 120000; while (Date.now() < end) {}'], {
      stdio: 'ignore'
    })
  )
}

describe('membership: SWIM with Lifeguard among 12 node processes', function () {
  this.timeout(600_000)
  let root: Key
  let nodes: NodeProcess[] = []
  const certs = new Map<string, SignedCert>()

  before(async () => {
    root = await key()
    const first = await spawnNode({ extraArgs: ['--meta', 'role=seed'] })
    nodes = [first]
    for (let i = 1; i < N; i++) nodes.push(await spawnNode({ bootstrap: [first.tcpAddr] }))
    for (const node of nodes) certs.set(node.peerId, await admit(node, root))
    await waitUntil(
      `all ${N} nodes list ${N} alive members`,
      async () => {
        const views = await Promise.all(nodes.map(view))
        return views.every(v => v.members.filter(m => m.state === 'alive').length === N)
      },
      120_000,
      500
    )
  })

  after(async () => {
    await stopNodes(nodes)
  })

  // how fast against the stated bound is a timing claim: `npm run bench membership` measures it; here
  // detection must happen at all, within the worst case (a loaded machine stretches Lifeguard's timers)
  it('kill -9 of two members: every survivor marks both dead, and no live member is ever marked dead', async () => {
    const observer = new Observer()
    const victims = nodes.slice(N - 2)
    const survivors = nodes.slice(0, N - 2)
    observer.watch(survivors)
    await sleep(1000)
    const bound = worstCaseDetection(N)
    const killedAt = Date.now()
    for (const v of victims) v.proc.kill('SIGKILL')
    await waitUntil(
      'every survivor marks both killed members dead',
      async () => (await Promise.all(victims.map(async v => await allSee(survivors, v, 'dead')))).every(Boolean),
      bound + 30_000,
      200
    )
    const took = Date.now() - killedAt
    await sleep(2000)
    await observer.stop()
    assert.ok(took <= bound, `detection took ${took} ms, more than the worst case of ${bound} ms`)
    for (const s of survivors)
      assert.deepEqual(observer.showed(s.peerId, 'dead'), [], `${s.peerId} is alive but was marked dead`)
    nodes = survivors.concat(victims)
  })

  it('a member stopped with SIGSTOP for 2 s on a CPU-loaded machine is suspected at most, and alive again everywhere after SIGCONT', async () => {
    const live = nodes.slice(0, N - 2)
    const paused = live[3]
    const others = live.filter(n => n !== paused)
    const load = loadCpu(2)
    const observer = new Observer()
    try {
      observer.watch(others)
      await sleep(3000)
      paused.proc.kill('SIGSTOP')
      await sleep(2000)
      paused.proc.kill('SIGCONT')
      await waitUntil(
        'every other member sees the paused one alive',
        async () => await allSee(others, paused, 'alive'),
        60_000
      )
      await sleep(3000)
    } finally {
      for (const p of load) p.kill('SIGKILL')
      paused.proc.kill('SIGCONT')
      await observer.stop()
    }
    for (const n of live)
      assert.deepEqual(observer.showed(n.peerId, 'dead'), [], `${n.peerId} is alive but was marked dead under load`)
  })

  it('a graceful leave is seen as left, not dead; the node stops', async () => {
    const live = nodes.slice(0, N - 2)
    const leaver = live[5]
    const others = live.filter(n => n !== leaver)
    const observer = new Observer()
    observer.watch(others)
    const result = await cliOn(leaver, 'leave')
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /^left the cluster as z6Mk\w+ \(incarnation \d+\)/)
    await waitUntil('every other member sees it left', async () => await allSee(others, leaver, 'left'), 30_000)
    await waitUntil('the node process exits', () => leaver.proc.exitCode != null, 30_000)
    await sleep(detectionBound(N))
    await observer.stop()
    assert.deepEqual(observer.showed(leaver.peerId, 'dead'), [], 'a member that left was marked dead')
    assert.ok(await allSee(others, leaver, 'left'))
  })

  it('a revoked member disappears from every view; its own updates then change nothing', async () => {
    const live = nodes.slice(0, N - 2).filter(n => n.proc.exitCode == null)
    const revoked = live[6]
    const others = live.filter(n => n !== revoked)
    const crl = await signCrl(
      {
        issuer: root.id,
        revoked: [certHash(certs.get(revoked.peerId)!)],
        validity: { notBefore: spkiTime(Date.now() - 60_000), notAfter: spkiTime(Date.now() + 3_600_000) }
      },
      root.secret
    )
    // imported on one node only: the CRL spreads to the others
    await others[0].api.post('spki/import', { sexp: toAdvanced(signedCrlToSexp(crl)) })
    await waitUntil(
      'no other member lists the revoked one',
      async () => (await Promise.all(others.map(view))).every(v => v.members.every(m => m.peerId !== revoked.peerId)),
      60_000
    )
    // the revoked member knows it is out once the CRL reaches it too (it spreads by gossip): it then
    // refuses to announce itself, and nothing it sent changes a view
    await waitUntil('the revoked member to hold the CRL', async () => (await view(revoked)).member === false, 60_000)
    await assert.rejects(revoked.api.post('members/meta', { meta: { role: 'back' } }), /not a member/)
    await sleep(3000)
    for (const v of await Promise.all(others.map(view))) assert.ok(v.members.every(m => m.peerId !== revoked.peerId))
  })
  it('metadata a member publishes (start --meta, POST members/meta) reaches every view at a higher incarnation', async () => {
    // the members still alive in the first node's view (not the killed, left or revoked ones)
    const alive = new Set((await view(nodes[0])).members.filter(m => m.state === 'alive').map(m => m.peerId))
    const live = nodes.filter(n => alive.has(n.peerId))
    assert.equal(live.length, N - 4)
    const [seed, other] = live
    const before = (await view(other)).members.find(m => m.peerId === seed.peerId)
    assert.deepEqual(before?.meta, { role: 'seed' })
    await seed.api.post('members/meta', { meta: { role: 'seed', load: '0.5' } })
    await waitUntil(
      'every member to see the new metadata',
      async () =>
        (await Promise.all(live.map(view))).every(
          v => v.members.find(m => m.peerId === seed.peerId)?.meta.load === '0.5'
        ),
      30_000
    )
    const after = (await view(other)).members.find(m => m.peerId === seed.peerId)
    assert.ok(after != null && before != null && after.incarnation > before.incarnation)
    // metadata outside the limits is refused by name and changes nothing
    await assert.rejects(seed.api.post('members/meta', { meta: { 'Bad Key': 'x' } }), /meta key/)
  })
})
