import { strict as assert } from 'node:assert'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import {
  decodeHeartbeat,
  encodeHeartbeat,
  fleetTopic,
  HEARTBEAT_DOMAIN,
  MAX_HEARTBEAT_BYTES,
  MAX_HEARTBEAT_ROWS
} from '../../protocols/fleet/codec.ts'
import { Hlc } from '../../src/clock/hlc.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { EventJournal } from '../../src/work/events.ts'
import { EMPTY_BEATS, fleet, FLEET_META_KEY, fleetSummary, QUIET_BEATS, STALE_AFTER } from '../../src/work/fleet.ts'
import { waitUntil } from '../helpers/processes.ts'
import { key } from '../spki/fixtures.ts'
import { membership } from '../../src/membership/service.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { admit, converged, FAST, membershipOf, principalOf } from '../membership/fixtures.ts'
import type { Heartbeat, HeartbeatRow } from '../../protocols/fleet/codec.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Fleet, HeartbeatRowInput } from '../../src/work/fleet.ts'
import type { JournalEvent } from '../../src/work/events.ts'
import type { TestCluster } from '../membership/fixtures.ts'
import type { Startable } from '@libp2p/interface'

const INTERVAL = 400

describe('fleet: the heartbeat codec', function () {
  const principal = 'z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'
  const row = (agent: string, i: number): HeartbeatRow => ({
    agent,
    kind: 'worker',
    status: 'active',
    load: 0.75,
    done: i,
    failed: 0,
    latency: 12.5,
    hlc: [1767000000000, 0]
  })

  it('encodes a fixed heartbeat to fixed bytes, and back', async () => {
    const signer = await seedSigner(new Uint8Array(32).fill(7))
    const unsigned = {
      v: 1 as const,
      type: 'heartbeat' as const,
      host: signer.principal,
      hlc: [1767000000000, 3] as const,
      rows: [row(principal, 4)]
    }
    const sig = await signer.sign(HEARTBEAT_DOMAIN, dagCbor.encode(unsigned))
    const bytes = encodeHeartbeat({ ...unsigned, sig })
    // Ed25519 is deterministic: these bytes change only if the format does
    assert.equal(bytesToHex(sha256(bytes)), EXPECTED_SHA256)
    assert.deepEqual(decodeHeartbeat(bytes), { ...unsigned, sig })
    assert.equal(fleetTopic('default'), '/cyberspace/fleet/1.0.0/default')
    assert.throws(() => fleetTopic('Bad/Name'), { name: 'InvalidHeartbeatError' })
  })

  it('fits 256 rows of the longest kind in 64 KiB and refuses a 257th, a duplicate agent, a bad row', async () => {
    const signer = await seedSigner(new Uint8Array(32).fill(1))
    const agents: string[] = []
    for (let i = 0; i <= MAX_HEARTBEAT_ROWS; i++) agents.push((await key()).id)
    const rows = agents.map((a, i) => ({ ...row(a, i), kind: 'k'.repeat(64), load: 1 / 3, latency: 1e6 / 7 }))
    const msg = (rs: HeartbeatRow[]): Heartbeat => ({
      v: 1,
      type: 'heartbeat',
      host: signer.principal,
      hlc: [1767000000000, 0],
      rows: rs,
      sig: new Uint8Array(64)
    })
    const full = encodeHeartbeat(msg(rows.slice(0, MAX_HEARTBEAT_ROWS)))
    assert.ok(full.length <= MAX_HEARTBEAT_BYTES, `${full.length} bytes`)
    assert.throws(() => encodeHeartbeat(msg(rows)), { name: 'InvalidHeartbeatError' })
    assert.throws(() => decodeHeartbeat(dagCbor.encode(msg(rows))), { name: 'InvalidHeartbeatError' })
    assert.throws(() => encodeHeartbeat(msg([rows[0], rows[0]])), { name: 'InvalidHeartbeatError' })
    for (const bad of [
      { status: 'busy' },
      { load: -1 },
      { load: Number.NaN },
      { done: 1.5 },
      { kind: 'Upper' },
      { agent: 'not-a-principal' },
      { hlc: [1767000000001, 0] } // later than its heartbeat
    ]) {
      assert.throws(() => encodeHeartbeat(msg([{ ...rows[0], ...bad } as HeartbeatRow])), {
        name: 'InvalidHeartbeatError'
      })
    }
    assert.throws(() => decodeHeartbeat(new Uint8Array(MAX_HEARTBEAT_BYTES + 1)), { name: 'InvalidHeartbeatError' })
  })

  it('summarises rows in one short line', () => {
    assert.equal(
      fleetSummary([
        { status: 'active', load: 1 },
        { status: 'overloaded', load: 2 },
        { status: 'idle', load: 0 },
        { status: 'idle', load: 0, stale: true }
      ]),
      'n=4 a=1 i=1 o=1 r=0 load=1.00'
    )
  })
})

type FleetUnderTest = Fleet & Startable

/**
 * Members as the membership fixtures make them, but the fleet each node's work service runs (on the
 * default namespace) keeps out of membership metadata: the tests' own fleets write the `fleet` key.
 */
async function startMembers(n: number): Promise<TestCluster & { signers: Map<CyberspaceNode, Signer> }> {
  const root = await key()
  const nodes: CyberspaceNode[] = []
  const signers = new Map<CyberspaceNode, Signer>()
  for (let i = 0; i < n; i++) {
    const privateKey = await generateKeyPair('Ed25519')
    const node = await memoryNode({
      privateKey,
      services: { membership: membership(FAST) as never },
      bootstrap: nodes.length === 0 ? [] : [nodes[0].multiaddrs()[0]],
      workOptions: { fleet: { summaryInMeta: false } }
    })
    signers.set(node, await seedSigner(privateKey.raw))
    nodes.push(node)
  }
  const certs = new Map()
  for (const node of nodes) await admit(node, root, certs)
  return { root, nodes, certs, signers }
}

/** Three members on the memory transport; each hosts local agents and runs the fleet every 400 ms. */
describe('fleet: heartbeats among three members', function () {
  this.timeout(120_000)
  let cluster: Awaited<ReturnType<typeof startMembers>>
  let a: CyberspaceNode, b: CyberspaceNode, c: CyberspaceNode
  const fleets = new Map<CyberspaceNode, FleetUnderTest>()
  // entries join as they come: these tests read the journal right after what they wait for
  const journal = new EventJournal({ settle: 0 })
  const clockOfA = new Hlc()
  let stopWatching: () => void
  let stopWatchingAgents: () => void
  /** The rows c reports: its own figures, changed by the tests. */
  let cRows: HeartbeatRowInput[] = []
  const agentsOf = new Map<CyberspaceNode, PrincipalId[]>()

  before(async () => {
    cluster = await startMembers(3)
    ;[a, b, c] = cluster.nodes
    await converged(cluster.nodes)
    stopWatchingAgents = journal.watchAgents(a.agents, clockOfA)
    for (const [node, n] of [
      [a, 2],
      [b, 1],
      [c, 2]
    ] as const) {
      node.agents.define('worker', { behaviour: () => ({ handle: () => null }) })
      const list: PrincipalId[] = []
      for (let i = 0; i < n; i++)
        list.push((await node.agents.spawn('worker', { id: `w-${i}`, key: 'local' })).principal)
      agentsOf.set(node, list)
    }
    const [c0, c1] = agentsOf.get(c)!
    cRows = [
      { agent: c0, kind: 'worker', status: 'active', load: 0.5, done: 7, failed: 1, latency: 40 },
      { agent: c1, kind: 'worker', status: 'overloaded', load: 1.5, done: 3, failed: 2, latency: 90 }
    ]
    stopWatching = journal.watchMembership(membershipOf(a), clockOfA)
    for (const node of cluster.nodes) {
      const f = fleet({
        interval: INTERVAL,
        // the work service runs a fleet on the default namespace of every node: these are the test's own
        namespace: 'three-members',
        // a silent member is not forgotten during the test: only its death removes its rows
        forgetAfter: 600_000,
        clock: node === a ? clockOfA : undefined,
        journal: node === a ? journal : undefined,
        rows: node === c ? () => cRows : undefined
      })({
        peerId: node.peerId,
        signer: cluster.signers.get(node)!,
        pubsub: node.pubsub,
        membership: membershipOf(node),
        logger: node.libp2p.logger,
        agents: node.agents
      })
      await f.start()
      fleets.set(node, f)
    }
  })

  after(async () => {
    stopWatching?.()
    stopWatchingAgents?.()
    for (const f of fleets.values()) await f.stop()
    await Promise.all(cluster.nodes.map(async n => await n.stop()))
  })

  it("every member sees every member's agents, with their host, sorted by kind then principal", async () => {
    const everyone = [...agentsOf.values()].flat()
    for (const node of cluster.nodes) {
      const f = fleets.get(node)!
      await waitUntil(
        'all five agents are listed',
        () => f.status().agents.filter(r => !r.stale).length === 5,
        30_000,
        50
      )
      const rows = f.rows()
      assert.deepEqual(
        rows.map(r => r.agent),
        [...everyone].sort()
      )
      for (const [host, list] of agentsOf) {
        for (const agent of list) assert.equal(rows.find(r => r.agent === agent)?.host, principalOf(host))
      }
      assert.deepEqual(f.rows('worker').length, 5)
      assert.deepEqual(f.rows('nobody'), [])
    }
  })

  it('totals add up: statuses, mean load, done and failed', async () => {
    const status = fleets.get(a)!.status()
    assert.deepEqual(
      { ...status.totals, load: Number(status.totals.load.toFixed(6)) },
      { agents: 5, active: 1, idle: 3, overloaded: 1, retiring: 0, stale: 0, load: 0.4, done: 10, failed: 3 }
    )
    const ofC = status.members.find(m => m.member === principalOf(c))
    assert.equal(ofC?.summary, 'n=2 a=1 i=0 o=1 r=0 load=1.00')
    assert.ok(ofC.at > 0)
    assert.equal(status.members.length, 3)
  })

  it('puts its summary in membership metadata under `fleet`, keeping the other keys', async () => {
    await waitUntil(
      "a sees c's summary in its metadata",
      () => membershipOf(a).member(principalOf(c))?.meta[FLEET_META_KEY] === 'n=2 a=1 i=0 o=1 r=0 load=1.00',
      30_000,
      50
    )
    // the agents service advertises its kinds in the same map: the fleet's summary must not wipe them
    assert.equal(membershipOf(a).member(principalOf(c))!.meta.kinds, 'worker')
  })

  it('beat() publishes at once: a retiring agent is seen as retiring, and the journal records the change', async () => {
    const [, c1] = agentsOf.get(c)!
    cRows = cRows.map(r => (r.agent === c1 ? { ...r, status: 'retiring', load: 0 } : r))
    await fleets.get(c)!.beat()
    for (const node of [a, b]) {
      await waitUntil(
        'the agent shows retiring',
        () =>
          fleets
            .get(node)!
            .rows()
            .find(r => r.agent === c1)?.status === 'retiring',
        10_000,
        20
      )
    }
    assert.equal(fleets.get(a)!.status().totals.retiring, 1)
    const changes = journal
      .since(undefined, { limit: 1000 })
      .events.filter(e => e.source === 'fleet' && e.subject === c1)
    assert.deepEqual(
      changes.map(e => [
        e.type,
        (e.data as { from: string; to: string }).from,
        (e.data as { from: string; to: string }).to
      ]),
      [['agent:status', 'overloaded', 'retiring']]
    )
  })

  it('a member whose heartbeats stop is listed stale after STALE_AFTER intervals, and fresh again when they resume', async () => {
    const fb = fleets.get(b)!
    await fb.stop()
    const [b0] = agentsOf.get(b)!
    await waitUntil(
      "b's agent shows stale on a",
      () =>
        fleets
          .get(a)!
          .rows()
          .find(r => r.agent === b0)?.stale === true,
      30_000,
      50
    )
    const stale = fleets.get(a)!.status()
    assert.equal(stale.totals.stale, 1)
    assert.equal(stale.totals.agents, 5)
    assert.equal(stale.totals.idle, 2)
    assert.ok(stale.agents.find(r => r.agent === b0)!.age >= STALE_AFTER * INTERVAL)
    await fb.start()
    await waitUntil(
      "b's agent is fresh again",
      () =>
        fleets
          .get(a)!
          .rows()
          .find(r => r.agent === b0)?.stale === false,
      30_000,
      50
    )
    assert.equal(fleets.get(a)!.status().totals.stale, 0)
  })

  it('a member that dies loses its rows on every other member; the journal records it dead', async () => {
    const live: JournalEvent[] = []
    const stop = journal.subscribe(clockOfA.last(), e => live.push(e))
    const victim = c
    await fleets.get(victim)!.stop()
    fleets.delete(victim)
    await victim.stop()
    for (const node of [a, b]) {
      await waitUntil('its rows are gone', () => fleets.get(node)!.status().totals.agents === 3, 30_000, 50)
      assert.ok([undefined, 'dead', 'left'].includes(membershipOf(node).member(principalOf(victim))?.state))
      const status = fleets.get(node)!.status()
      assert.ok(status.agents.every(r => r.host !== principalOf(victim)))
      assert.equal(status.totals.done, 0)
      assert.ok(status.members.every(m => m.member !== principalOf(victim)))
    }
    stop()
    assert.ok(
      live.some(e => e.source === 'membership' && e.type === 'member:dead' && e.subject === principalOf(victim)),
      'the journal holds the death'
    )
  })

  it('the journal holds the agents a hosts starting, and stopping; the fleet drops a stopped agent', async () => {
    const [a0, a1] = agentsOf.get(a)!
    await a.agents.stop(a0)
    await waitUntil(
      'b no longer lists the stopped agent',
      () =>
        fleets
          .get(b)!
          .rows()
          .every(r => r.agent !== a0),
      30_000,
      50
    )
    assert.ok(
      fleets
        .get(b)!
        .rows()
        .some(r => r.agent === a1)
    )
    const agentEvents = journal
      .since(undefined, { limit: 1000 })
      .events.filter(e => e.source === 'agent')
      .map(e => [e.type, e.subject])
    assert.deepEqual(
      agentEvents.filter(([, subject]) => subject === a0),
      [
        ['agent:start', a0],
        ['agent:stop', a0]
      ]
    )
    assert.deepEqual(
      agentEvents.filter(([, subject]) => subject === a1),
      [['agent:start', a1]]
    )
  })
})

const EXPECTED_SHA256 = 'dac252e2d07b41a36ad0ae2eff02bbe6d36905d5c23eeff6721270dcef176178'

describe('fleet: as a libp2p service (no agents component)', function () {
  this.timeout(60_000)
  let nodes: CyberspaceNode[] = []

  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it('starts with the node, publishes once the node becomes a member, and peers list its empty summary', async () => {
    const first = await memoryNode({
      services: {
        membership: membership(FAST) as never,
        fleet: fleet({ interval: 300, namespace: 'as-service' }) as never
      }
    })
    const second = await memoryNode({
      services: {
        membership: membership(FAST) as never,
        fleet: fleet({ interval: 300, namespace: 'as-service' }) as never
      },
      bootstrap: [first.multiaddrs()[0]]
    })
    nodes = [first, second]
    const fleetOf = (n: CyberspaceNode): Fleet => (n.libp2p.services as unknown as { fleet: Fleet }).fleet
    // not members yet: nothing to publish
    await assert.rejects(fleetOf(first).beat(), { name: 'FleetNotTakingPartError' })
    const root = await key()
    for (const n of nodes) await admit(n, root)
    await converged(nodes)
    await waitUntil(
      'each lists the other with a heartbeat',
      () =>
        nodes.every(n =>
          nodes.every(o =>
            fleetOf(n)
              .status()
              .members.some(m => m.member === principalOf(o) && m.at > 0)
          )
        ),
      30_000,
      50
    )
    assert.deepEqual(
      fleetOf(first)
        .status()
        .members.map(m => m.summary),
      ['n=0 a=0 i=0 o=0 r=0 load=0.00', 'n=0 a=0 i=0 o=0 r=0 load=0.00']
    )
    assert.deepEqual(fleetOf(first).status().totals.agents, 0)
    // hosting no agents, a member says so EMPTY_BEATS times, then publishes nothing while that holds
    const publishes: number[] = []
    const pubsub = first.libp2p.services.pubsub
    const publish = pubsub.publish.bind(pubsub)
    pubsub.publish = async (topic: string, data?: Uint8Array) => {
      if (topic.startsWith('/cyberspace/fleet/')) publishes.push(Date.now())
      return await publish(topic, data)
    }
    try {
      const beats = (): number => (fleetOf(first) as unknown as { emptyBeats: number }).emptyBeats
      await waitUntil('the empty heartbeat said twice', () => beats() >= EMPTY_BEATS, 30_000, 20)
      assert.equal(beats(), EMPTY_BEATS)
      const said = publishes.length
      // well over two quiet periods (QUIET_BEATS intervals each) without a heartbeat
      await new Promise(resolve => setTimeout(resolve, 2.5 * QUIET_BEATS * 300))
      assert.equal(publishes.length, said, 'an agentless member repeated its empty heartbeat')
      // peers forget its empty heartbeat after forgetAfter (10 intervals), and still list it, with no agents
      const listed = (): { at: number; summary: string } | undefined =>
        fleetOf(second)
          .status()
          .members.find(m => m.member === principalOf(first))
      await waitUntil('its heartbeat forgotten', () => listed()?.at === 0, 10_000, 50)
      assert.equal(listed()?.summary, 'n=0 a=0 i=0 o=0 r=0 load=0.00')
    } finally {
      delete (pubsub as { publish?: unknown }).publish
    }
  })
})
