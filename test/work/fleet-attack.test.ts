import { strict as assert } from 'node:assert'
import * as dagCbor from '@ipld/dag-cbor'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { encodeHeartbeat, fleetTopic, HEARTBEAT_DOMAIN, MAX_HEARTBEAT_BYTES } from '../../protocols/fleet/codec.ts'
import { Hlc } from '../../src/clock/hlc.ts'
import { fleet, QUIET_BEATS, STALE_AFTER } from '../../src/work/fleet.ts'
import { waitUntil } from '../helpers/processes.ts'
import {
  converged,
  FAST,
  membershipOf,
  principalOf,
  signerOf,
  startCluster,
  startNodes
} from '../membership/fixtures.ts'
import { key, tag } from '../spki/fixtures.ts'
import type { Heartbeat, HeartbeatRow } from '../../protocols/fleet/codec.ts'
import type { HlcTimestamp } from '../../src/clock/hlc.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { FleetInit, FleetService } from '../../src/work/fleet.ts'
import type { TestCluster } from '../membership/fixtures.ts'
import type { Message } from '@libp2p/gossipsub'

const INTERVAL = 1000

const row = (agent: string, wall: number, more: Partial<HeartbeatRow> = {}): HeartbeatRow => ({
  agent,
  kind: 'worker',
  status: 'active',
  load: 0.5,
  done: 1,
  failed: 0,
  latency: 10,
  hlc: [wall, 0],
  ...more
})

async function signed(
  signer: Signer,
  hlc: HlcTimestamp,
  rows: HeartbeatRow[],
  host: string = signer.principal
): Promise<Heartbeat> {
  const unsigned = { v: 1 as const, type: 'heartbeat' as const, host, hlc, rows }
  return { ...unsigned, sig: await signer.sign(HEARTBEAT_DOMAIN, dagCbor.encode(unsigned)) }
}

/** A topic message as gossipsub hands it to the validator: published (and gossipsub-signed) by `from`. */
function message(from: CyberspaceNode, data: Uint8Array, topic: string): Message {
  return {
    type: 'signed',
    from: from.peerId,
    topic,
    data,
    sequenceNumber: 1n,
    signature: new Uint8Array(64),
    key: from.peerId.publicKey!
  } as Message
}

async function principals(n: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push((await key()).id)
  return out
}

/** Three members and an outsider (it trusts the root, holds no member certificate). */
describe('fleet under attack: non-members, forgeries, floods, oversize, replays', function () {
  this.timeout(120_000)
  let cluster: TestCluster
  let a: CyberspaceNode, b: CyberspaceNode, c: CyberspaceNode, outsider: CyberspaceNode
  /** A fleet on `a` whose clock the test sets, driven through its validator. */
  let t = 1_800_000_000_000
  const fakeNow = (): number => t
  const services: FleetService[] = []
  /** Agents `c` hosts, as `a`'s directory would say. */
  const hostedByC = new Set<string>()

  async function fleetOn(node: CyberspaceNode, init: FleetInit): Promise<FleetService> {
    const f = fleet(init)({
      peerId: node.peerId,
      signer: await signerOf(node),
      pubsub: node.pubsub,
      membership: membershipOf(node),
      logger: node.libp2p.logger
    }) as FleetService
    await f.start()
    services.push(f)
    return f
  }

  const gatedInit = (namespace: string, more: Partial<FleetInit> = {}): FleetInit => ({
    interval: INTERVAL,
    namespace,
    now: fakeNow,
    clock: new Hlc({ now: fakeNow }),
    summaryInMeta: false,
    hostOf: agent => (hostedByC.has(agent) ? principalOf(c) : undefined),
    ...more
  })

  const hostRows = (f: FleetService, host: CyberspaceNode): number =>
    f.rows().filter(r => r.host === principalOf(host)).length

  before(async () => {
    cluster = await startCluster(3)
    ;[a, b, c] = cluster.nodes
    ;[outsider] = await startNodes(1, FAST, a)
    await outsider.spki.addAclEntry(cluster.root.id, tag('(cyberspace member)'))
    await converged(cluster.nodes)
  })

  after(async () => {
    for (const f of services) await f.stop()
    await Promise.all([...cluster.nodes, outsider].map(async n => await n.stop()))
  })

  it("drops a non-member's heartbeat, at the validator and over the network", async () => {
    const gated = await fleetOn(a, gatedInit('outsider'))
    const topic = fleetTopic('outsider')
    const [agent] = await principals(1)
    const forged = encodeHeartbeat(await signed(await signerOf(outsider), [t, 0], [row(agent, t)]))
    assert.equal(await gated.validate(outsider.peerId, message(outsider, forged, topic)), TopicValidatorResult.Ignore)
    assert.equal(gated.drops()['non-member'], 1)
    assert.deepEqual(gated.rows(), [])

    // over gossipsub: a real fleet on a (real clock) hears the outsider publish and takes nothing
    const real = await fleetOn(a, { interval: INTERVAL, namespace: 'network' })
    const realTopic = fleetTopic('network')
    outsider.pubsub.subscribe(realTopic)
    await waitUntil(
      'the outsider sees a subscribed',
      () => outsider.pubsub.getSubscribers(realTopic).length > 0,
      20_000,
      50
    )
    const now = Date.now()
    const bytes = encodeHeartbeat(await signed(await signerOf(outsider), [now, 0], [row(agent, now)]))
    await outsider.pubsub.publish(realTopic, bytes)
    await waitUntil('a counts the drop', () => real.drops()['non-member'] >= 1, 20_000, 50)
    assert.ok(real.rows().every(r => r.host !== principalOf(outsider)))
  })

  it('rejects a forged signature, a host that is not the publisher, rows changed after signing, an unsigned message', async () => {
    const gated = await fleetOn(a, gatedInit('forgery'))
    const topic = fleetTopic('forgery')
    const [x, y] = await principals(2)
    const check = async (from: CyberspaceNode, hb: Heartbeat): Promise<TopicValidatorResult> =>
      await gated.validate(from.peerId, message(from, encodeHeartbeat(hb), topic))
    // b's name, the outsider's key
    const wrongKey = await signed(await signerOf(outsider), [t, 1], [row(x, t)], principalOf(b))
    assert.equal(await check(b, wrongKey), TopicValidatorResult.Reject)
    // b signs, but names c as the host
    assert.equal(
      await check(b, await signed(await signerOf(b), [t, 2], [row(x, t)], principalOf(c))),
      TopicValidatorResult.Reject
    )
    // b signs; the rows are changed on the way
    const honest = await signed(await signerOf(b), [t, 3], [row(x, t), row(y, t)])
    assert.equal(await check(b, { ...honest, rows: [row(x, t, { load: 9 }), row(y, t)] }), TopicValidatorResult.Reject)
    assert.equal(await check(b, { ...honest, rows: [row(x, t)] }), TopicValidatorResult.Reject)
    const unsigned = { type: 'unsigned', topic, data: encodeHeartbeat(honest) } as Message
    assert.equal(await gated.validate(b.peerId, unsigned), TopicValidatorResult.Reject)
    assert.equal(gated.drops().forged, 5)
    assert.deepEqual(gated.rows(), [])
    // and the honest one is taken
    assert.equal(await check(b, honest), TopicValidatorResult.Accept)
    assert.deepEqual(
      gated.rows().map(r => [r.agent, r.host]),
      [
        [x, principalOf(b)],
        [y, principalOf(b)]
      ].sort()
    )
  })

  it('a flooding member: one heartbeat per interval/4 taken, the rest counted, its rows replaced and bounded', async () => {
    const gated = await fleetOn(a, gatedInit('flood'))
    const topic = fleetTopic('flood')
    const signer = await signerOf(c)
    const batches: string[][] = []
    for (let i = 0; i < 3; i++) batches.push(await principals(256))
    const results: TopicValidatorResult[] = []
    for (let i = 0; i < 50; i++) {
      const hb = await signed(
        signer,
        [t, i],
        batches[i % 2].map(x => row(x, t))
      )
      results.push(await gated.validate(c.peerId, message(c, encodeHeartbeat(hb), topic)))
    }
    assert.equal(results.filter(r => r === TopicValidatorResult.Accept).length, 1)
    assert.equal(gated.drops().flood, 49)
    assert.equal(hostRows(gated, c), 256)
    // a quarter interval later the next is taken, and replaces (not adds to) what c had
    t += INTERVAL / 4
    const next = await signed(
      signer,
      [t, 0],
      batches[2].map(x => row(x, t))
    )
    assert.equal(await gated.validate(c.peerId, message(c, encodeHeartbeat(next), topic)), TopicValidatorResult.Accept)
    assert.equal(hostRows(gated, c), 256)
    assert.deepEqual(
      gated
        .rows()
        .map(r => r.agent)
        .sort(),
      [...batches[2]].sort()
    )
    // garbage that is never accepted does not pass the flood gate's reset, but the budget bounds the work it causes
    t += INTERVAL / 4
    const garbage = new Uint8Array(100).fill(0xff)
    const verdicts: TopicValidatorResult[] = []
    for (let i = 0; i < 30; i++) verdicts.push(await gated.validate(c.peerId, message(c, garbage, topic)))
    const drops = gated.drops()
    assert.equal(drops.malformed + drops.budget, 30)
    assert.ok(drops.budget >= 20, `${drops.budget} over budget`)
    assert.equal(verdicts.filter(v => v === TopicValidatorResult.Reject).length, drops.malformed)
    assert.equal(hostRows(gated, c), 256)
  })

  it('refuses oversize and malformed heartbeats before verifying anything', async () => {
    const gated = await fleetOn(a, gatedInit('oversize'))
    const topic = fleetTopic('oversize')
    const signer = await signerOf(b)
    const agents = await principals(257)
    const tooMany = await signed(
      signer,
      [t, 0],
      agents.map(x => row(x, t))
    )
    const duplicate = await signed(signer, [t, 1], [row(agents[0], t), row(agents[0], t)])
    const cases = [
      new Uint8Array(MAX_HEARTBEAT_BYTES + 1),
      dagCbor.encode(tooMany),
      dagCbor.encode(duplicate),
      dagCbor.encode({ ...(await signed(signer, [t, 2], [row(agents[1], t)])), extra: 1 }),
      dagCbor.encode({ ...(await signed(signer, [t, 3], [])), v: 2 }),
      new Uint8Array([0xa1, 0x61])
    ]
    for (const data of cases) {
      assert.equal(await gated.validate(b.peerId, message(b, data, topic)), TopicValidatorResult.Reject)
    }
    assert.equal(gated.drops().malformed, cases.length)
    assert.deepEqual(gated.rows(), [])
  })

  it('ignores a replayed, a stale and a far-future heartbeat; drops rows of agents another member hosts', async () => {
    const gated = await fleetOn(a, gatedInit('replay'))
    const topic = fleetTopic('replay')
    const signer = await signerOf(b)
    const [mine, theirs] = await principals(2)
    hostedByC.add(theirs)
    const first = encodeHeartbeat(await signed(signer, [t, 0], [row(mine, t), row(theirs, t)]))
    assert.equal(await gated.validate(b.peerId, message(b, first, topic)), TopicValidatorResult.Accept)
    // the row of c's agent was not b's to report
    assert.deepEqual(
      gated.rows().map(r => r.agent),
      [mine]
    )
    assert.equal(gated.drops()['foreign-row'], 1)
    t += INTERVAL
    assert.equal(await gated.validate(b.peerId, message(b, first, topic)), TopicValidatorResult.Ignore)
    assert.equal(gated.drops().replay, 1)
    // newer than the last, but older than STALE_AFTER intervals
    t += 10 * INTERVAL
    const old = encodeHeartbeat(await signed(signer, [t - (STALE_AFTER + 1) * INTERVAL, 5], []))
    assert.equal(await gated.validate(b.peerId, message(b, old, topic)), TopicValidatorResult.Ignore)
    assert.equal(gated.drops().stale, 1)
    const future = encodeHeartbeat(await signed(signer, [t + 120_000, 0], []))
    assert.equal(await gated.validate(b.peerId, message(b, future, topic)), TopicValidatorResult.Ignore)
    assert.equal(gated.drops().drift, 1)
    assert.deepEqual(
      gated.rows().map(r => r.agent),
      [mine]
    )
  })

  it('holds the rows of at most maxHosts members', async () => {
    const gated = await fleetOn(a, gatedInit('small', { maxHosts: 1 }))
    const topic = fleetTopic('small')
    t += INTERVAL
    const [x, y] = await principals(2)
    const fromB = encodeHeartbeat(await signed(await signerOf(b), [t, 0], [row(x, t)]))
    const fromC = encodeHeartbeat(await signed(await signerOf(c), [t, 0], [row(y, t)]))
    assert.equal(await gated.validate(b.peerId, message(b, fromB, topic)), TopicValidatorResult.Accept)
    assert.equal(await gated.validate(c.peerId, message(c, fromC, topic)), TopicValidatorResult.Ignore)
    assert.equal(gated.drops().full, 1)
    assert.deepEqual(
      gated.rows().map(r => r.agent),
      [x]
    )
  })

  it('a member flooding over gossipsub: the flood is counted, what it holds stays one heartbeat of rows', async () => {
    const real = await fleetOn(a, { interval: 5000, namespace: 'netflood', summaryInMeta: false })
    const topic = fleetTopic('netflood')
    b.pubsub.subscribe(topic)
    await waitUntil('b sees a subscribed', () => b.pubsub.getSubscribers(topic).length > 0, 20_000, 50)
    const signer = await signerOf(b)
    const agents = await principals(256)
    const clock = new Hlc()
    for (let i = 0; i < 30; i++) {
      const hb = await signed(
        signer,
        clock.tick(),
        agents.map((x, j) => row(x, Date.now() - 1000, { done: i + j }))
      )
      await b.pubsub.publish(topic, encodeHeartbeat(hb))
    }
    await waitUntil(
      'a took one and counted the rest',
      () => {
        const d = real.drops()
        return hostRows(real, b) === 256 && d.flood + d.budget >= 1
      },
      20_000,
      50
    )
    assert.equal(real.rows().filter(r => r.host === principalOf(b)).length, 256)
    b.pubsub.unsubscribe(topic)
  })

  it('a quiet member publishes every QUIET_BEATS intervals, never letting its rows go stale, and a change at the next interval', async () => {
    // what a publishes, as seen by the pubsub it was given
    const sent: number[] = []
    const counting = new Proxy(a.pubsub, {
      get(target, prop) {
        if (prop === 'publish')
          return async (topic: string, data: Uint8Array) => {
            sent.push(Date.now())
            return await target.publish(topic, data)
          }
        const value = Reflect.get(target, prop, target)
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
    let load = 0.25
    const [agent] = await principals(1)
    const quiet = fleet({
      interval: 200,
      namespace: 'quiet',
      summaryInMeta: false,
      rows: () => [{ agent, kind: 'worker', status: 'active', load, done: 0, failed: 0, latency: 0 }]
    })({
      peerId: a.peerId,
      signer: await signerOf(a),
      pubsub: counting as typeof a.pubsub,
      membership: membershipOf(a),
      logger: a.libp2p.logger
    }) as FleetService
    services.push(quiet)
    await quiet.start()
    await waitUntil('4 heartbeats', () => sent.length >= 4, 20_000, 20)
    // unchanged rows: at the first tick from QUIET_BEATS intervals less half an interval after the
    // last (room for timer drift; ticks are not aligned with a publish that took a while, so a gap
    // can be as short as that), fewer than the STALE_AFTER after which the others list them stale
    assert.ok(QUIET_BEATS < STALE_AFTER)
    for (let i = 1; i < 4; i++)
      assert.ok(sent[i] - sent[i - 1] >= QUIET_BEATS * 200 - 200 / 2 - 20, `gap ${i}: ${sent[i] - sent[i - 1]} ms`)
    // a change goes out at the next tick, not after a quiet spell: its heartbeat carries the new load
    const before = sent.length
    load = 0.75
    await waitUntil('the changed rows published', () => sent.length > before, 20_000, 20)
    await waitUntil(
      'a sees its own new load',
      () => quiet.rows().find(r => r.agent === agent)?.load === 0.75,
      20_000,
      20
    )
  })
})
