/**
 * The scaling loop's policy decisions from fake fleet rows (above target → one spawn; below → retire
 * of a scaling-spawned replica; min and max respected; one swat agent per urgent need; a rebalanced
 * skill), the settlement of the decisions document (concurrent decisions of one change, in any
 * arrival order, settle on the same winner; the loser is undone), and the loop on three members over
 * a fake replicated log: two members deciding at once end with one spawn, and a target that carried
 * the loser out first stops it and says so.
 */
import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { Hlc } from '../../src/clock/hlc.ts'
import { compareOpLogEntries } from '../../src/crdt/op-log.ts'
import { peerIdFromPrincipal, principalId } from '../../src/crypto/principal.ts'
import {
  checkPolicy,
  createScaling,
  familyOf,
  fleetView,
  membersOf,
  parseScalingEntry,
  ScalingPlanner,
  settle,
  shardOf,
  summaryLoad,
  swarmView
} from '../../src/work/scaling.ts'
import { defaultLogger } from '@libp2p/logger'
import type { HlcTimestamp } from '../../src/clock/hlc.ts'
import type { OpLogEntry } from '../../src/crdt/op-log.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type {
  ScalingEvent,
  ScalingLog,
  ScalingMember,
  ScalingNeed,
  ScalingOffer,
  ScalingPolicy,
  ScalingRow,
  ScalingView
} from '../../src/work/scaling.ts'

const randomPrincipal = (): PrincipalId => principalId(crypto.getRandomValues(new Uint8Array(32)))

interface Member {
  principal: PrincipalId
  peer: string
}

function member(): Member {
  const principal = randomPrincipal()
  return { principal, peer: peerIdFromPrincipal(principal).toString() }
}

const [A, B, C] = [member(), member(), member()]

function entry(hlc: HlcTimestamp, actor: string, index: number, body: unknown): OpLogEntry {
  return { hlc, actor, index, body }
}

function view(parts: Partial<ScalingView> & { entries?: OpLogEntry[] }): ScalingView {
  return {
    now: parts.now ?? 0,
    rows: parts.rows ?? [],
    members: parts.members ?? [],
    needs: parts.needs ?? [],
    offers: parts.offers ?? [],
    settled: parts.settled ?? settle(parts.entries ?? [])
  }
}

const offering = (kinds: string[], loads: number[] = []): ScalingMember[] =>
  [A, B, C].map((m, i) => ({ peerId: m.peer, kinds, load: loads[i] }))

const row = (agent: PrincipalId, host: Member, load: number, kind = 'w'): ScalingRow => ({
  agent,
  kind,
  status: load > 1 ? 'overloaded' : load === 0 ? 'idle' : 'active',
  load,
  host: host.peer
})

let ids = 0
const planner = (policies: ScalingPolicy[], swatAfter = 15_000): ScalingPlanner =>
  new ScalingPlanner(
    policies.map(p => checkPolicy(p)),
    { swatAfter, newId: reason => `${reason === 'load' ? 'r' : reason}-${ids++}` }
  )

const POLICY: ScalingPolicy = { kind: 'w', min: 1, max: 3, target: 0.8, sustain: 60_000 }

describe('work/scaling: policies', () => {
  it('fills in defaults and refuses fields out of range, naming them', () => {
    const p = checkPolicy({ kind: 'w', min: 0, max: 2, target: 1 })
    assert.equal(p.sustain, 60_000)
    assert.equal(p.idleBelow, 0.5)
    for (const [bad, field] of [
      [{ ...POLICY, kind: 'W!' }, 'kind'],
      [{ ...POLICY, min: 4 }, 'max'],
      [{ ...POLICY, max: 0, min: 0 }, 'max'],
      [{ ...POLICY, target: 0 }, 'target'],
      [{ ...POLICY, target: Number.NaN }, 'target'],
      [{ ...POLICY, idleBelow: 0.8 }, 'idleBelow'],
      [{ ...POLICY, sustain: -1 }, 'sustain'],
      [{ ...POLICY, swat: { 'bad skill': 'x' } }, 'swat'],
      [{ ...POLICY, rebalance: [{ skill: 'ok', kind: 'Bad Kind' }] }, 'rebalance.kind']
    ] as const) {
      assert.throws(
        () => checkPolicy(bad as ScalingPolicy),
        (err: Error) => err.name === 'InvalidScalingPolicyError' && err.message.includes(field)
      )
    }
  })
})

describe('work/scaling: the planner', () => {
  const original = randomPrincipal()
  const second = randomPrincipal()

  it('spawns one replica once load stays above target for sustain, on the least-loaded member offering the kind', () => {
    const p = planner([POLICY])
    const rows = [row(original, A, 0.9), row(second, B, 1.0)]
    const members = offering(['w'], [0.95, 0.9, 0.1])
    assert.deepEqual(p.plan(view({ now: 0, rows, members })), [])
    assert.deepEqual(p.plan(view({ now: 30_000, rows, members })), [])
    const decided = p.plan(view({ now: 60_000, rows, members }))
    assert.equal(decided.length, 1)
    assert.deepEqual(
      { ...decided[0], id: undefined },
      {
        decision: 'spawn',
        kind: 'w',
        slot: 'grow:w:2',
        gen: 0,
        target: C.peer,
        reason: 'load',
        id: undefined
      }
    )
    // written and not carried out yet: the kind's clock stops, nothing more is decided
    const written = [entry([60_000, 0], A.principal, 0, decided[0])]
    assert.deepEqual(p.plan(view({ now: 200_000, rows, members, entries: written })), [])
    // carried out, but the fleet rows do not show the new agent yet: still waiting
    const spawned = randomPrincipal()
    const done = [
      ...written,
      entry([61_000, 0], C.principal, 0, { done: 'grow:w:2', id: decided[0].id, agent: spawned })
    ]
    assert.deepEqual(p.plan(view({ now: 210_000, rows, members, entries: done })), [])
    // it shows: the next change needs sustain of its own, and is the next generation
    const three = [...rows, row(spawned, C, 0.9)]
    assert.deepEqual(p.plan(view({ now: 220_000, rows: three, members, entries: done })), [], 'max is 3')
    const p4 = planner([{ ...POLICY, max: 4 }])
    assert.deepEqual(p4.plan(view({ now: 220_000, rows: three, members, entries: done })), [])
    const next = p4.plan(view({ now: 280_000, rows: three, members, entries: done }))
    assert.equal(next.length, 1)
    assert.equal(next[0].slot, 'grow:w:3')
    assert.equal(next[0].gen, 1)
  })

  it('does nothing while load dips below target before sustain is up, and never grows past max', () => {
    const p = planner([{ ...POLICY, max: 2 }])
    const members = offering(['w'])
    const high = [row(original, A, 0.9)]
    const low = [row(original, A, 0.7)]
    p.plan(view({ now: 0, rows: high, members }))
    p.plan(view({ now: 50_000, rows: low, members }))
    assert.deepEqual(p.plan(view({ now: 100_000, rows: high, members })), [], 'the clock restarted')
    const full = [row(original, A, 2), row(second, B, 2)]
    p.plan(view({ now: 0, rows: full, members }))
    assert.deepEqual(p.plan(view({ now: 1_000_000, rows: full, members })), [], 'at max')
  })

  it('spawns nothing when no live member offers the kind', () => {
    const p = planner([POLICY])
    const rows = [row(original, A, 0.9)]
    p.plan(view({ now: 0, rows, members: offering(['other']) }))
    assert.deepEqual(p.plan(view({ now: 100_000, rows, members: offering(['other']) })), [])
  })

  it('retires the idlest replica scaling spawned (never the original), and never below min', () => {
    const replicaBusy = randomPrincipal()
    const replicaIdle = randomPrincipal()
    const entries = [
      entry([1, 0], A.principal, 0, {
        decision: 'spawn',
        kind: 'w',
        slot: 'grow:w:1',
        gen: 0,
        target: B.peer,
        reason: 'load',
        id: 'r-a'
      }),
      entry([2, 0], B.principal, 0, { done: 'grow:w:1', id: 'r-a', agent: replicaBusy }),
      entry([3, 0], A.principal, 0, {
        decision: 'spawn',
        kind: 'w',
        slot: 'grow:w:2',
        gen: 1,
        target: C.peer,
        reason: 'load',
        id: 'r-b'
      }),
      entry([4, 0], C.principal, 0, { done: 'grow:w:2', id: 'r-b', agent: replicaIdle })
    ]
    const rows = [row(original, A, 0), row(replicaBusy, B, 0.2), row(replicaIdle, C, 0.1)]
    const members = offering(['w'])
    const p = planner([POLICY])
    assert.deepEqual(p.plan(view({ now: 100_000, rows, members, entries })), [])
    const decided = p.plan(view({ now: 160_000, rows, members, entries }))
    assert.equal(decided.length, 1)
    const retire = decided[0]
    assert.equal(retire.decision, 'retire')
    assert.ok(retire.decision === 'retire')
    assert.equal(retire.agent, replicaIdle, 'the replica with the lowest load, not the original at 0')
    assert.equal(retire.target, C.peer, 'its host retires it')
    assert.equal(retire.slot, 'shrink:w:3')
    assert.equal(retire.gen, 2)
    assert.equal(retire.reason, 'idle')
    // at min: nothing retires
    const atMin = planner([{ ...POLICY, min: 3 }])
    atMin.plan(view({ now: 0, rows, members, entries }))
    assert.deepEqual(atMin.plan(view({ now: 1_000_000, rows, members, entries })), [])
  })

  it('grows a kind below min up to min', () => {
    const p = planner([{ ...POLICY, min: 1 }])
    p.plan(view({ now: 0, rows: [], members: offering(['w']) }))
    const decided = p.plan(view({ now: 60_000, rows: [], members: offering(['w']) }))
    assert.equal(decided.length, 1)
    assert.equal(decided[0].slot, 'grow:w:0')
  })

  it('picks the same member on every member: equal loads are ranked by the change', () => {
    const rows = [row(original, A, 0.9)]
    const targets = new Set<string>()
    for (let i = 0; i < 3; i++) {
      const p = planner([POLICY])
      p.plan(view({ now: 0, rows, members: offering(['w'], [0.5, 0.5, 0.5]) }))
      for (const d of p.plan(view({ now: 60_000, rows, members: offering(['w'], [0.5, 0.5, 0.5]).reverse() })))
        targets.add(d.target)
    }
    assert.equal(targets.size, 1)
  })

  it('spawns one swat agent per urgent need nobody offers, after swatAfter, and retires it once the need is gone', () => {
    const policy = { ...POLICY, min: 0, swat: { 'db-repair': 'medic' } }
    const p = planner([policy], 15_000)
    const members = offering(['w', 'medic'], [0.3, 0.1, 0.2])
    const need: ScalingNeed = { key: `${randomPrincipal()}/n1`, skill: 'db-repair', urgency: 'critical' }
    const lowNeed: ScalingNeed = { key: `${randomPrincipal()}/n2`, skill: 'db-repair', urgency: 'low' }
    const coveredNeed: ScalingNeed = { key: `${randomPrincipal()}/n3`, skill: 'backup', urgency: 'high' }
    const needs = [need, lowNeed, coveredNeed]
    const offers: ScalingOffer[] = [{ from: randomPrincipal(), skills: ['backup'], load: 0.1 }]
    assert.deepEqual(p.plan(view({ now: 0, members, needs, offers })), [])
    const decided = p.plan(view({ now: 15_000, members, needs, offers }))
    assert.equal(decided.length, 1)
    const swat = decided[0]
    assert.deepEqual(
      { ...swat, id: undefined },
      {
        decision: 'spawn',
        kind: 'medic',
        slot: `swat:${need.key}`,
        gen: 0,
        target: B.peer,
        reason: 'swat',
        id: undefined,
        scope: 'db-repair',
        need: need.key
      }
    )
    assert.equal(shardOf(swat), 'swat')
    // once per need: written (then carried out), nothing more for it however long it stays open
    const medic = randomPrincipal()
    const entries = [
      entry([15_000, 0], A.principal, 0, swat),
      entry([15_100, 0], B.principal, 0, { done: swat.slot, id: swat.id, agent: medic })
    ]
    const rows = [row(medic, B, 0.5, 'medic')]
    for (const now of [20_000, 60_000, 120_000])
      assert.deepEqual(p.plan(view({ now, members, needs, offers, entries, rows })), [])
    // the need expired: the swat agent retires on its host
    const after = p.plan(view({ now: 130_000, members, needs: [lowNeed], offers, entries, rows }))
    assert.equal(after.length, 1)
    assert.deepEqual(
      { ...after[0], id: undefined },
      {
        decision: 'retire',
        kind: 'medic',
        slot: `swat-end:${need.key}`,
        gen: 1,
        target: B.peer,
        agent: medic,
        reason: 'swat',
        id: undefined,
        need: need.key,
        scope: 'db-repair'
      }
    )
    assert.equal(familyOf(after[0]), familyOf(swat))
  })

  it('rebalances a skill from an agent overloaded for sustain to one new agent of the dedicated kind', () => {
    const policy = { ...POLICY, rebalance: [{ skill: 'search', kind: 'searcher' }] }
    const p = planner([policy])
    const busy = randomPrincipal()
    const rows = [row(busy, A, 1.5), row(original, B, 0.2)]
    const offers: ScalingOffer[] = [
      { from: busy, skills: ['search', 'write'], load: 1.5 },
      { from: original, skills: ['search'], load: 0.2 }
    ]
    const members = offering(['w', 'searcher'], [1.5, 0.2, 0.4])
    p.plan(view({ now: 0, rows, offers, members }))
    const decided = p.plan(view({ now: 60_000, rows, offers, members })).filter(d => d.reason === 'rebalance')
    assert.equal(decided.length, 1)
    assert.deepEqual(
      { ...decided[0], id: undefined },
      {
        decision: 'spawn',
        kind: 'searcher',
        slot: 'rebalance:searcher:search:0',
        gen: 0,
        target: B.peer,
        reason: 'rebalance',
        id: undefined,
        scope: 'search'
      }
    )
    assert.equal(shardOf(decided[0]), 'domain')
    // one runs for the skill: no second one while it does
    const searcher = randomPrincipal()
    const entries = [
      entry([60_000, 0], A.principal, 0, decided[0]),
      entry([60_100, 0], B.principal, 0, { done: decided[0].slot, id: decided[0].id, agent: searcher })
    ]
    const withIt = [...rows, row(searcher, B, 0.1, 'searcher')]
    for (const now of [120_000, 200_000, 400_000])
      assert.equal(
        p.plan(view({ now, rows: withIt, offers, members, entries })).filter(d => d.reason === 'rebalance').length,
        0
      )
  })
})

describe('work/scaling: reading the fleet and the swarm', () => {
  it('takes fresh rows with their host as a peer id, and member loads from their summaries', () => {
    const fresh = randomPrincipal()
    const stale = randomPrincipal()
    const view = fleetView({
      rows: () => [
        { agent: fresh, kind: 'w', status: 'active', load: 0.7, host: A.principal, stale: false },
        { agent: stale, kind: 'w', status: 'active', load: 0.7, host: B.principal, stale: true }
      ],
      status: () => ({
        members: [
          { member: A.principal, summary: 'n=1 a=1 i=0 o=0 r=0 load=0.70' },
          { member: B.principal, summary: 'n=0 a=0 i=0 o=0 r=0 load=garbage' }
        ]
      })
    })
    assert.deepEqual(view.rows(), [{ agent: fresh, kind: 'w', status: 'active', load: 0.7, host: A.peer }])
    assert.deepEqual([...view.memberLoads()], [[A.peer, 0.7]])
    assert.equal(summaryLoad('load=1.5'), 1.5)
    assert.equal(summaryLoad('n=2 load=-1'), undefined)
    const from = randomPrincipal()
    const swarm = swarmView({
      needs: () => [{ from, id: 'ab12', skill: 'x', urgency: 'high' }],
      offers: () => [{ from, skills: ['x'], load: 0.2 }]
    })
    assert.deepEqual(swarm.needs(), [{ key: `${from}/ab12`, skill: 'x', urgency: 'high' }])
    assert.deepEqual(swarm.offers(), [{ from, skills: ['x'], load: 0.2 }])
  })
})

/** Two concurrent spawn decisions of one change (A's earlier by HLC), the target's done for the winner and its undo of the loser. */
function contest(): { entries: OpLogEntry[]; winner: string; loser: string } {
  const common = { decision: 'spawn', kind: 'w', slot: 'grow:w:1', gen: 0, target: C.peer, reason: 'load' }
  return {
    winner: 'r-early',
    loser: 'r-late',
    entries: [
      entry([1_000, 0], A.principal, 0, { ...common, id: 'r-early' }),
      entry([1_000, 1], B.principal, 0, { ...common, id: 'r-late' }),
      entry([1_002, 0], C.principal, 0, { done: 'grow:w:1', id: 'r-early', agent: randomPrincipal() }),
      entry([1_003, 0], C.principal, 0, { undo: 'grow:w:1', id: 'r-late' })
    ]
  }
}

describe('work/scaling: the settlement', () => {
  it('settles concurrent decisions of one change on the earlier, whatever order they arrive in', () => {
    const { entries, winner, loser } = contest()
    fc.assert(
      fc.property(fc.shuffledSubarray(entries, { minLength: entries.length, maxLength: entries.length }), shuffled => {
        const s = settle(shuffled)
        assert.equal(s.byId.get(winner)?.status, 'done')
        assert.equal(s.byId.get(loser)?.status, 'undone')
        assert.equal(s.byId.get(loser)?.winner, winner)
        assert.equal(s.nextGen('scale:w'), 1)
      })
    )
    // before the target says anything: the later one is lost, the earlier won
    for (const arrival of [entries.slice(0, 2), [entries[1], entries[0]]]) {
      const s = settle(arrival)
      assert.equal(s.byId.get(winner)?.status, 'won')
      assert.equal(s.byId.get(loser)?.status, 'lost')
    }
    // an HLC tie goes to the actor that sorts first
    const tie = entries.slice(0, 2).map(e => ({ ...e, hlc: [5, 5] as const }))
    const first = [A.principal, B.principal].sort()[0] === A.principal ? winner : loser
    assert.equal(settle(tie).byId.get(first)?.status, 'won')
  })

  it('ignores done and undo from any member but the target, and malformed entries', () => {
    const { entries, winner, loser } = contest()
    const forged = [
      entries[0],
      entries[1],
      // B says the loser's target undid the winner: B is not the target
      entry([1_001, 0], B.principal, 0, { undo: 'grow:w:1', id: winner }),
      entry([1_001, 1], B.principal, 0, { done: 'grow:w:1', id: loser, agent: randomPrincipal() }),
      entry([1_001, 2], B.principal, 0, { done: 'grow:w:1', id: winner, extra: 1 }),
      entry([1_001, 3], B.principal, 0, {
        decision: 'spawn',
        kind: 'w',
        slot: 'grow:w:1',
        gen: -1,
        target: C.peer,
        reason: 'load',
        id: 'r-x'
      }),
      entry([1_001, 4], B.principal, 0, {
        decision: 'retire',
        kind: 'w',
        slot: 'shrink:w:1',
        gen: 0,
        target: C.peer,
        reason: 'idle',
        id: 'r-y',
        agent: 'not-a-key'
      }),
      entry([1_001, 5], B.principal, 0, 'just text')
    ]
    const s = settle(forged)
    assert.equal(s.byId.get(winner)?.status, 'won')
    assert.equal(s.byId.get(loser)?.status, 'lost')
    assert.equal(s.decisions.length, 2)
    assert.equal(s.ignored, 6)
    assert.equal(parseScalingEntry({ undo: 'x', id: 'r-1', agent: A.principal }) != null, true)
    assert.equal(parseScalingEntry({ undo: 'x'.repeat(400), id: 'r-1' }), undefined)
  })

  it('a failed winner opens its generation again; a slot is taken again once the kind shrank back', () => {
    const { entries, winner, loser } = contest()
    const s = settle([
      entries[0],
      entries[1],
      entry([1_004, 0], C.principal, 0, { failed: 'grow:w:1', id: winner, error: 'UnknownKindError' }),
      entry([1_005, 0], C.principal, 0, { undo: 'grow:w:1', id: loser })
    ])
    assert.equal(s.byId.get(winner)?.status, 'failed')
    assert.equal(s.byId.get(loser)?.status, 'undone')
    assert.equal(s.nextGen('scale:w'), 0)
    const agent = randomPrincipal()
    const cycle = settle([
      entries[0],
      entries[2],
      entry([2_000, 0], A.principal, 0, {
        decision: 'retire',
        kind: 'w',
        slot: 'shrink:w:2',
        gen: 1,
        target: C.peer,
        reason: 'idle',
        id: 'x-1',
        agent
      }),
      entry([3_000, 0], B.principal, 0, {
        decision: 'spawn',
        kind: 'w',
        slot: 'grow:w:1',
        gen: 2,
        target: C.peer,
        reason: 'load',
        id: 'r-again'
      })
    ])
    assert.equal(cycle.byId.get('r-again')?.status, 'won', 'grow:w:1 again, as the third change of w')
    assert.equal(cycle.nextGen('scale:w'), 3)
  })
})

/** A replicated log among fake members: appends stay local until the test delivers them. */
class FakeNet {
  readonly replicas = new Map<string, FakeReplica>()
  readonly inFlight: Array<{ to: FakeReplica; entries: OpLogEntry[] }> = []

  replica(principal: string, now: () => number): FakeReplica {
    const r = new FakeReplica(this, principal, new Hlc({ now }))
    this.replicas.set(principal, r)
    return r
  }

  /** Delivers what is in flight (those `which` picks, default all), in order. */
  deliver(which: (m: { to: FakeReplica; entries: OpLogEntry[] }) => boolean = () => true): number {
    let n = 0
    for (let i = 0; i < this.inFlight.length;) {
      const m = this.inFlight[i]
      if (which(m)) {
        this.inFlight.splice(i, 1)
        m.to.add(m.entries)
        n++
      } else i++
    }
    return n
  }
}

class FakeReplica extends EventTarget implements ScalingLog {
  private readonly list: OpLogEntry[] = []
  private readonly net: FakeNet
  readonly principal: string
  private readonly clock: Hlc

  constructor(net: FakeNet, principal: string, clock: Hlc) {
    super()
    this.net = net
    this.principal = principal
    this.clock = clock
  }

  entries(): readonly OpLogEntry[] {
    return [...this.list].sort(compareOpLogEntries)
  }

  async append(bodies: readonly unknown[]): Promise<unknown> {
    const hlc = this.clock.tick()
    const entries = bodies.map((body, index) => entry(hlc, this.principal, index, structuredClone(body)))
    this.add(entries)
    for (const other of this.net.replicas.values()) if (other !== this) this.net.inFlight.push({ to: other, entries })
    return entries
  }

  add(entries: OpLogEntry[]): void {
    for (const e of entries) {
      if (this.list.some(x => compareOpLogEntries(x, e) === 0)) continue
      this.clock.witness(e.hlc)
      this.list.push(e)
    }
    this.dispatchEvent(new Event('change'))
  }
}

/** Agents a member hosts, as the loop sees them. */
class FakeAgents {
  readonly running = new Map<PrincipalId, { principal: PrincipalId; kind: string; id: string }>()
  readonly spawned: string[] = []
  readonly stopped: PrincipalId[] = []

  async spawn(kind: string, options: { id: string }): Promise<{ principal: PrincipalId }> {
    const principal = randomPrincipal()
    this.running.set(principal, { principal, kind, id: options.id })
    this.spawned.push(options.id)
    return { principal }
  }

  async stop(principal: PrincipalId): Promise<void> {
    this.running.delete(principal)
    this.stopped.push(principal)
  }

  list(): Array<{ principal: PrincipalId; kind: string; id: string }> {
    return [...this.running.values()]
  }

  get(principal: PrincipalId): { principal: PrincipalId; kind: string; id: string } | undefined {
    return this.running.get(principal)
  }
}

describe('work/scaling: the loop on three members over a replicated log', () => {
  /** Three members offering `w`; A's clock runs behind B's so A's decisions are the earlier ones. */
  async function cluster(settleMs: number) {
    const net = new FakeNet()
    let now = 1_000_000
    const clocks = { [A.principal]: () => now - 500, [B.principal]: () => now, [C.principal]: () => now }
    const original = randomPrincipal()
    const rows: ScalingRow[] = [row(original, A, 0.95)]
    const events: ScalingEvent[] = []
    const dead = new Set<string>()
    const members = [A, B, C].map(m => {
      const agents = new FakeAgents()
      const doc = net.replica(m.principal, clocks[m.principal])
      const retired: PrincipalId[] = []
      const scaling = createScaling(
        {
          policies: [{ kind: 'w', min: 1, max: 3, target: 0.8, sustain: 0 }],
          settle: settleMs,
          interval: 3_600_000,
          abandonAfter: 30_000,
          carryTimeout: 300_000,
          now: () => now
        },
        {
          self: m.peer,
          openLog: async () => doc,
          fleet: {
            rows: () => rows,
            memberLoads: () =>
              new Map([
                [A.peer, 0.95],
                [B.peer, 0.5]
              ])
          },
          members: () =>
            membersOf(
              [A, B, C].map(x => ({ peerId: x.peer, state: dead.has(x.peer) ? 'dead' : 'alive', meta: { kinds: 'w' } }))
            ),
          agents,
          retire: async p => {
            retired.push(p)
            await agents.stop(p)
          },
          record: e => {
            if (m === A) events.push(e)
          },
          logger: defaultLogger()
        }
      )
      return { ...m, agents, doc, scaling, retired }
    })
    for (const x of members) await x.scaling.start()
    return { net, members, rows, events, dead, advance: (ms: number) => (now += ms), original }
  }

  it('two members deciding at once: one replica results, the loser says so', async () => {
    const { net, members, events } = await cluster(0)
    const [a, b, c] = members
    try {
      // both see the same rows and decide before hearing each other
      const [fromA, fromB] = await Promise.all([a.scaling.tick(), b.scaling.tick()])
      assert.equal(fromA.length, 1)
      assert.equal(fromB.length, 1)
      assert.equal(fromA[0].slot, fromB[0].slot)
      const target = members.find(m => m.peer === fromA[0].target)
      assert.equal(target, c, 'the least-loaded member')
      assert.equal(fromB[0].target, c.peer, 'both pick the same member')
      for (let i = 0; i < 5 && net.inFlight.length > 0; i++) {
        net.deliver()
        for (const m of members) await m.scaling.carryOut()
      }
      const spawnedAll = members.flatMap(m => m.agents.spawned)
      assert.deepEqual(spawnedAll, [fromA[0].id], 'the earlier decision (A) is the only one carried out')
      for (const m of members) {
        const d = m.scaling.decisions()
        assert.equal(d.find(x => x.decision.id === fromA[0].id)?.status, 'done')
        const lost = d.find(x => x.decision.id === fromB[0].id)
        assert.equal(lost?.status, 'undone')
        assert.equal(lost?.winner, fromA[0].id)
      }
      assert.ok(events.some(e => e.type === 'scaling.undo' && e.subject === fromB[0].slot))
      assert.equal(events.filter(e => e.type === 'scaling.spawn').length, 2)
      assert.equal(c.agents.stopped.length + a.agents.stopped.length + b.agents.stopped.length, 0)
    } finally {
      for (const m of members) await m.scaling.stop()
    }
  })

  it('a target that carried out the later decision first stops that agent, says so, and spawns the winner', async () => {
    const { net, members } = await cluster(0)
    const [a, b] = members
    try {
      const [fromA] = await a.scaling.tick()
      const [fromB] = await b.scaling.tick()
      const target = members.find(m => m.peer === fromA.target)
      assert.ok(target != null && target !== a && target !== b, 'the least-loaded member, C')
      // B's decision reaches the target first
      net.deliver(m => m.to === target.doc && m.entries[0].actor === B.principal)
      await target.scaling.carryOut()
      assert.deepEqual(target.agents.spawned, [fromB.id])
      const wrong = target.agents.list()[0].principal
      // then A's, which is earlier
      net.deliver(m => m.to === target.doc)
      await target.scaling.carryOut()
      assert.deepEqual(target.agents.stopped, [wrong], 'the agent spawned for the loser is stopped')
      assert.deepEqual(target.agents.spawned, [fromB.id, fromA.id])
      assert.deepEqual(
        target.agents.list().map(x => x.id),
        [fromA.id]
      )
      for (let i = 0; i < 5 && net.inFlight.length > 0; i++) net.deliver()
      for (const m of members) {
        const lost = m.scaling.decisions().find(x => x.decision.id === fromB.id)
        assert.equal(lost?.status, 'undone')
        assert.equal(lost?.agent, wrong, 'the undo names the agent it stopped')
      }
    } finally {
      for (const m of members) await m.scaling.stop()
    }
  })

  it('waits `settle` before carrying a decision out, so a concurrent earlier one that arrives meanwhile is the only one done', async () => {
    const { net, members, advance } = await cluster(2_000)
    const [a, b] = members
    try {
      const [fromA] = await a.scaling.tick()
      const [fromB] = await b.scaling.tick()
      const target = members.find(m => m.peer === fromA.target)
      assert.ok(target != null)
      net.deliver(m => m.to === target.doc && m.entries[0].actor === B.principal)
      await target.scaling.carryOut()
      assert.deepEqual(target.agents.spawned, [], 'not before settle')
      net.deliver()
      await target.scaling.carryOut()
      assert.deepEqual(target.agents.spawned, [], 'not before settle')
      advance(2_000)
      await target.scaling.carryOut()
      assert.deepEqual(target.agents.spawned, [fromA.id])
      assert.equal(target.agents.stopped.length, 0)
      assert.equal(target.scaling.decisions().find(x => x.decision.id === fromB.id)?.status, 'undone')
    } finally {
      for (const m of members) await m.scaling.stop()
    }
  })

  it('a decision whose spawn fails is marked failed, and the next pass decides the same change again', async () => {
    const { net, members } = await cluster(0)
    const [a] = members
    try {
      const [first] = await a.scaling.tick()
      const target = members.find(m => m.peer === first.target)
      assert.ok(target != null)
      target.agents.spawn = async () => {
        const err = new Error('no such kind here')
        err.name = 'UnknownKindError'
        throw err
      }
      net.deliver()
      await target.scaling.carryOut()
      net.deliver()
      const failed = a.scaling.decisions().find(x => x.decision.id === first.id)
      assert.equal(failed?.status, 'failed')
      assert.equal(failed?.error, 'UnknownKindError')
      const [again] = await a.scaling.tick()
      assert.equal(again.slot, first.slot)
      assert.equal(again.gen, first.gen, 'the failed generation is open again')
    } finally {
      for (const m of members) await m.scaling.stop()
    }
  })

  it('a winner whose target died is marked failed after abandonAfter and the change goes to a live member', async () => {
    const { net, members, dead, advance } = await cluster(0)
    const [a] = members
    try {
      const [first] = await a.scaling.tick()
      const target = members.find(m => m.peer === first.target)
      assert.ok(target != null && target !== a)
      // the target dies before hearing of it
      dead.add(target.peer)
      net.inFlight.splice(0, net.inFlight.length, ...net.inFlight.filter(m => m.to !== target.doc))
      assert.deepEqual(await a.scaling.tick(), [], 'not before abandonAfter')
      advance(30_000)
      const [again] = await a.scaling.tick()
      const failed = a.scaling.decisions().find(x => x.decision.id === first.id)
      assert.equal(failed?.status, 'failed')
      assert.equal(failed?.error, 'target-gone')
      assert.equal(again.gen, first.gen)
      assert.notEqual(again.target, target.peer)
    } finally {
      for (const m of members) await m.scaling.stop()
    }
  })

  it('a target that spawned a decision later marked failed (it took too long) stops that agent and says so', async () => {
    const { net, members, advance } = await cluster(0)
    const [a] = members
    try {
      const [first] = await a.scaling.tick()
      const target = members.find(m => m.peer === first.target)
      assert.ok(target != null)
      // A gives up on it before the target acts; then the target hears both
      advance(300_000)
      await a.scaling.tick()
      assert.equal(a.scaling.decisions().find(x => x.decision.id === first.id)?.status, 'failed')
      net.deliver(m => m.to === target.doc && m.entries.length === 1 && 'decision' in (m.entries[0].body as object))
      await target.scaling.carryOut()
      assert.deepEqual(target.agents.spawned, [first.id], 'it heard the decision alone and carried it out')
      net.deliver(m => m.to === target.doc)
      await target.scaling.carryOut()
      assert.equal(target.agents.stopped.length, 1, 'the agent of a failed decision goes')
      assert.equal(target.agents.list().filter(x => x.id === first.id).length, 0)
      net.deliver()
      const undone = a.scaling.decisions().find(x => x.decision.id === first.id)
      assert.equal(undone?.status, 'failed')
      assert.equal(undone?.agent, target.agents.stopped[0], 'its undo names the agent stopped')
    } finally {
      for (const m of members) await m.scaling.stop()
    }
  })

  it('a flood of spawn decisions from one member: the target spawns up to max and marks the rest failed, at most 8 per pass', async () => {
    const { net, members } = await cluster(0)
    const [, b, c] = members
    try {
      const flood = Array.from({ length: 12 }, (_, gen) => ({
        decision: 'spawn',
        kind: 'w',
        slot: `grow:w:${gen + 1}`,
        gen,
        target: c.peer,
        reason: 'load',
        id: `r-flood-${gen}`
      }))
      await b.doc.append(flood)
      net.deliver()
      await c.scaling.carryOut()
      const acted = (): number => c.scaling.decisions().filter(d => d.status === 'done' || d.status === 'failed').length
      assert.equal(acted(), 8, 'one pass acts on 8')
      for (let i = 0; i < 3; i++) await c.scaling.carryOut()
      assert.equal(acted(), 12)
      // max 3 with the original running: two replicas, whatever was written
      assert.deepEqual(c.agents.spawned, ['r-flood-0', 'r-flood-1'])
      const failed = c.scaling.decisions().filter(d => d.status === 'failed')
      assert.equal(failed.length, 10)
      assert.ok(failed.every(d => d.error === 'over-max'))
    } finally {
      for (const m of members) await m.scaling.stop()
    }
  })

  it('a member with no policy and no kind opens no decisions document until it has one', async () => {
    let opened = 0
    const net = new FakeNet()
    const doc = net.replica(A.principal, () => 1_000)
    let kinds: string[] = []
    const scaling = createScaling(
      { interval: 3_600_000 },
      {
        self: A.peer,
        openLog: async () => {
          opened++
          return doc
        },
        fleet: { rows: () => [], memberLoads: () => new Map() },
        members: () => [{ peerId: A.peer, kinds }],
        agents: new FakeAgents(),
        retire: async () => {},
        logger: defaultLogger()
      }
    )
    try {
      await scaling.start()
      assert.deepEqual(await scaling.tick(), [])
      assert.deepEqual(scaling.decisions(), [])
      assert.equal(opened, 0)
      kinds = ['w']
      await scaling.tick()
      assert.equal(opened, 1, 'it runs a kind: it may be a target')
      await scaling.tick()
      assert.equal(opened, 1)
    } finally {
      await scaling.stop()
    }
    await assert.rejects(scaling.tick(), { name: 'ScalingNotRunningError' })
  })

  it('a retire decision is carried out by the agent’s host through retire()', async () => {
    const { net, members, rows, original } = await cluster(0)
    const [a] = members
    try {
      // grow once, carried out, and seen in the rows
      const [grow] = await a.scaling.tick()
      net.deliver()
      const target = members.find(m => m.peer === grow.target)
      assert.ok(target != null)
      await target.scaling.carryOut()
      net.deliver()
      const replica = target.agents.list()[0].principal
      rows.splice(0, rows.length, row(original, A, 0.05), row(replica, target, 0.01))
      const [retire] = await a.scaling.tick()
      assert.equal(retire.decision, 'retire')
      assert.equal(retire.slot, 'shrink:w:2')
      net.deliver()
      await target.scaling.carryOut()
      assert.deepEqual(target.retired, [replica])
      net.deliver()
      assert.equal(a.scaling.decisions().find(x => x.decision.id === retire.id)?.status, 'done')
    } finally {
      for (const m of members) await m.scaling.stop()
    }
  })
})
