/**
 * The swarm between three member nodes on the memory transport (a fourth, plain node publishes
 * crafted messages raw, as any peer could): offers and needs reach every subscriber and fill the
 * tables, STATE_DELTA converges per field by HLC whatever the arrival order (on the network, and
 * over every permutation in the table itself), a directed handoff reaches only the named agent
 * through the mailbox, publishing refuses what its node cannot prove, and the replay window keeps
 * each message until it expires.
 */
import assert from 'node:assert/strict'
import { SWARM_SIGNING_DOMAIN, swarmSigningBody, swarmTopic } from '../../protocols/swarm/codec.ts'
import { encodeSwarmMessage } from '../../protocols/swarm/codec.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { EntityTable, ReplayWindow, swarm } from '../../src/work/swarm.ts'
import { defaultLogger } from '@libp2p/logger'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import { cardOf, RecordingAgent } from '../actor/mailbox-fixtures.ts'
import type { SwarmMessage, UnsignedSwarmMessage } from '../../protocols/swarm/codec.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Swarm, SwarmStamp } from '../../src/work/swarm.ts'
import type { Key } from '../spki/fixtures.ts'
import type { Startable } from '@libp2p/interface'

/** Its own namespace: the work service of every node runs a swarm on the default one. */
const NAMESPACE = 'swarm-test'
const TOPIC = swarmTopic(NAMESPACE)

/** A message signed by `signer` with the HLC the test chooses (what an agent's node would have made). */
async function craft(
  signer: Signer,
  fields: { type: UnsignedSwarmMessage['type']; body: unknown; hlc: readonly [number, number]; to?: string }
): Promise<SwarmMessage> {
  const unsigned = {
    v: 1,
    id: Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('hex'),
    from: signer.principal,
    ...(fields.to == null ? {} : { to: fields.to }),
    type: fields.type,
    hlc: fields.hlc,
    expires: fields.hlc[0] + 120_000,
    body: fields.body
  } as UnsignedSwarmMessage
  return { ...unsigned, sig: await signer.sign(SWARM_SIGNING_DOMAIN, swarmSigningBody(unsigned)) } as SwarmMessage
}

async function rejects(promise: Promise<unknown>, name: string): Promise<void> {
  await assert.rejects(promise, (err: Error) => {
    assert.equal(err.name, name, `${err.name}: ${err.message}`)
    return true
  })
}

describe('swarm between nodes', function () {
  this.timeout(120_000)
  let root: Key
  let a: CyberspaceNode
  let b: CyberspaceNode
  let c: CyberspaceNode
  /** A plain node (no swarm service) that publishes crafted bytes on the topic. */
  let relay: CyberspaceNode
  let swarms: Swarm[]
  let sa: Swarm
  let sb: Swarm
  let sc: Swarm
  /** alice on A, bob on B, carol on C. */
  let alice: RecordingAgent
  let bob: RecordingAgent
  let carol: RecordingAgent
  /** Every message each swarm delivered, by node. */
  const seen = new Map<Swarm, SwarmMessage[]>()

  async function allow(to: PrincipalId, tagText: string, nodes = [a, b, c, relay]): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal: to }, tagText, { propagate: false })
    for (const n of nodes) await n.spki.addCert(cert)
  }

  before(async () => {
    root = await key()
    const init = { namespace: NAMESPACE, messagesPerAgentPerMinute: 6000 }
    a = await memoryNode({ services: { swarm: swarm(init) as never } })
    b = await memoryNode({ bootstrap: [a.multiaddrs()[0]], services: { swarm: swarm(init) as never } })
    c = await memoryNode({
      bootstrap: [a.multiaddrs()[0], b.multiaddrs()[0]],
      services: { swarm: swarm(init) as never }
    })
    relay = await memoryNode({ bootstrap: [a.multiaddrs()[0], b.multiaddrs()[0], c.multiaddrs()[0]] })
    await waitUntil('the nodes connected', () => [a, b, c].every(n => n.peers().length === 3))
    const members = await Promise.all(
      [a, b, c, relay].map(
        async n =>
          await grant(root, { kind: 'key', principal: principalFromPeerId(n.peerId) }, '(cyberspace member)', {
            propagate: false
          })
      )
    )
    for (const n of [a, b, c, relay]) {
      await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
      await n.spki.addAll({ certs: members, crls: [] })
    }
    swarms = [a, b, c].map(n => n.libp2p.services.swarm as Swarm)
    ;[sa, sb, sc] = swarms
    for (const s of swarms) {
      seen.set(s, [])
      s.addEventListener('message', e => seen.get(s)?.push(e.detail))
    }
    alice = await RecordingAgent.create()
    bob = await RecordingAgent.create()
    carol = await RecordingAgent.create()
    a.mailbox.attach(alice)
    b.mailbox.attach(bob)
    c.mailbox.attach(carol)
    await b.registry.publish(cardOf('bob'), { privateKey: bob.key })
    await allow(alice.principal, '(cyberspace (swarm offer (* set review code)))')
    await allow(alice.principal, '(cyberspace (swarm state-delta (* prefix svc/)))')
    await allow(alice.principal, '(cyberspace (swarm handoff release))')
    await allow(alice.principal, `(cyberspace (mailbox (send ${bob.principal} swarm.handoff)))`)
    await allow(bob.principal, '(cyberspace (swarm (* set need offer)))')
    await allow(carol.principal, '(cyberspace (swarm offer review))')
    await allow(carol.principal, '(cyberspace (swarm state-delta svc/api))')
    await waitUntil(
      'every node sees the others subscribe',
      () => [a, b, c].every(n => n.pubsub.getSubscribers(TOPIC).length >= 2),
      30_000,
      50
    )
  })

  afterEach(function () {
    // what each node made of the swarm, when a test failed
    if (this.currentTest?.state === 'failed')
      for (const [i, s] of swarms.entries()) console.log('node', i, s.stats(), s.refusals().slice(-5))
  })

  after(async () => {
    await Promise.all([a, b, c, relay].map(async n => await n.stop()))
  })

  it('delivers an offer and a need to every subscriber, and each node lists them', async () => {
    const offered = await sa.publish(
      { type: 'offer', body: { skills: ['review', 'code'], load: 0.4, capacity: 2 } },
      { as: alice.signer }
    )
    assert.ok(offered.recipients >= 2)
    const needed = await sb.publish(
      { type: 'need', body: { skill: 'review', urgency: 'high', description: 'a second pair of eyes' } },
      { as: bob.signer }
    )
    await waitUntil(
      'every node has both',
      () => swarms.every(s => s.offers('review').length === 1 && s.needs('review').length === 1),
      20_000,
      20
    )
    for (const s of swarms) {
      const [offer] = s.offers('review')
      assert.equal(offer.from, alice.principal)
      assert.deepEqual(offer.skills, ['review', 'code'])
      assert.equal(offer.load, 0.4)
      assert.equal(offer.capacity, 2)
      assert.equal(offer.id, offered.message.id)
      assert.deepEqual(s.offers('rust'), [])
      const [need] = s.needs()
      assert.equal(need.from, bob.principal)
      assert.equal(need.urgency, 'high')
      assert.equal(need.description, 'a second pair of eyes')
      assert.equal(need.id, needed.message.id)
      // the message event fired once for each, on the publishing node too
      assert.equal(seen.get(s)?.filter(m => m.id === offered.message.id).length, 1)
      assert.equal(seen.get(s)?.filter(m => m.id === needed.message.id).length, 1)
    }
  })

  it("lists each agent's latest offer, least loaded first, and forgets expired offers and needs", async () => {
    await sa.publish({ type: 'offer', body: { skills: ['review'], load: 3 } }, { as: alice.signer })
    await sc.publish({ type: 'offer', body: { skills: ['review'], load: 0.5 } }, { as: carol.signer })
    const last = await sa.publish({ type: 'offer', body: { skills: ['review'], load: 0.1 } }, { as: alice.signer })
    await waitUntil(
      "every node has alice's last offer and carol's",
      () =>
        swarms.every(s => {
          const offers = s.offers('review')
          return offers.length === 2 && offers.some(o => o.id === last.message.id)
        }),
      20_000,
      20
    )
    for (const s of swarms) {
      assert.deepEqual(
        s.offers('review').map(o => [o.from, o.load]),
        [
          [alice.principal, 0.1],
          [carol.principal, 0.5]
        ]
      )
    }
    // an offer and a need that live 1.5 s
    const brief = await sb.publish({ type: 'offer', body: { skills: ['ops'], load: 0 } }, { as: bob.signer, ttl: 1500 })
    await sb.publish({ type: 'need', body: { skill: 'ops', urgency: 'critical' } }, { as: bob.signer, ttl: 1500 })
    await waitUntil('node C has them', () => sc.offers('ops').length === 1 && sc.needs('ops').length === 1, 20_000, 20)
    assert.equal(sc.offers('ops')[0].id, brief.message.id)
    // needs are listed most urgent first
    assert.deepEqual(
      sc.needs().map(n => n.urgency),
      ['critical', 'high']
    )
    await waitUntil(
      'they expire everywhere',
      () => swarms.every(s => s.offers('ops').length === 0 && s.needs('ops').length === 0),
      10_000,
      100
    )
    assert.deepEqual(
      sc.needs().map(n => n.urgency),
      ['high']
    )
  })

  it('converges STATE_DELTA per field by HLC whatever the order the deltas arrive in', async () => {
    const entity = 'svc/api'
    // carol's delta is published now; then alice's, made earlier (older HLC), arrives after it
    const newer = await sc.publish(
      { type: 'state-delta', body: { entity, fields: { status: 'up', version: 2 } } },
      { as: carol.signer }
    )
    await waitUntil('every node has the newer delta', () => swarms.every(s => s.entity(entity) != null), 20_000, 20)
    const older = await craft(alice.signer, {
      type: 'state-delta',
      body: { entity, fields: { status: 'down', owner: 'alice' } },
      hlc: [newer.message.hlc[0] - 5000, 0]
    })
    // two deltas with one HLC: the greater sender principal wins the field they share
    const tie: [number, number] = [newer.message.hlc[0] - 1000, 7]
    const tieAlice = await craft(alice.signer, {
      type: 'state-delta',
      body: { entity, fields: { tie: 'alice' } },
      hlc: tie
    })
    const tieCarol = await craft(carol.signer, {
      type: 'state-delta',
      body: { entity, fields: { tie: 'carol' } },
      hlc: tie
    })
    const tieWinner = alice.principal > carol.principal ? 'alice' : 'carol'
    await relay.pubsub.publish(TOPIC, encodeSwarmMessage(tieCarol))
    await relay.pubsub.publish(TOPIC, encodeSwarmMessage(older))
    await relay.pubsub.publish(TOPIC, encodeSwarmMessage(tieAlice))
    const ids = [older.id, tieAlice.id, tieCarol.id]
    await waitUntil(
      'every node delivered the three crafted deltas',
      () => swarms.every(s => ids.every(id => seen.get(s)?.some(m => m.id === id))),
      20_000,
      20
    )
    const views = swarms.map(s => s.entity(entity))
    for (const view of views) {
      assert.deepEqual(view?.fields, { owner: 'alice', status: 'up', tie: tieWinner, version: 2 })
      assert.equal(view?.stamps.status.id, newer.message.id)
      assert.equal(view?.stamps.owner.id, older.id)
      assert.deepEqual(view?.updated, newer.message.hlc)
    }
    assert.deepEqual(views[0], views[1])
    assert.deepEqual(views[1], views[2])
  })

  it('delivers a directed handoff to the named agent only, through the mailbox', async () => {
    const received: SwarmMessage[] = []
    bob.behaviour = async message => {
      received.push(
        await sb.acceptDirect(message.body as Uint8Array, undefined, {
          from: message.from,
          to: message.to,
          type: message.type
        })
      )
    }
    const before = swarms.map(s => s.stats().received)
    try {
      const sent = await sa.publish(
        { type: 'handoff', body: { board: 'release', item: 't1', state: { step: 3, notes: ['half done'] } } },
        { as: alice.signer, to: bob.principal }
      )
      // resolved once bob's behaviour handled it
      assert.equal(sent.receipt?.to, bob.principal)
      assert.equal(sent.recipients, 0)
      assert.equal(received.length, 1)
      assert.equal(received[0].id, sent.message.id)
      assert.equal(received[0].to, bob.principal)
      assert.deepEqual(received[0].body, { board: 'release', item: 't1', state: { step: 3, notes: ['half done'] } })
      assert.equal(bob.handled.at(-1)?.type, 'swarm.handoff')
      // B's listeners heard it; nobody else received anything of it, on the topic or otherwise
      assert.equal(seen.get(sb)?.filter(m => m.id === sent.message.id).length, 1)
      assert.equal(
        seen.get(sa)?.some(m => m.id === sent.message.id),
        false
      )
      assert.equal(
        seen.get(sc)?.some(m => m.id === sent.message.id),
        false
      )
      assert.equal(sa.stats().received, before[0])
      assert.equal(sc.stats().received, before[2])
      // the same bytes again (a replayed mailbox message) are refused
      await rejects(
        sb.acceptDirect(encodeSwarmMessage(sent.message), undefined, { from: alice.principal }),
        'DuplicateSwarmMessageError'
      )
      // a directed message carried by another sender's mailbox message is refused
      const other = await craft(alice.signer, {
        type: 'handoff',
        body: { board: 'release', item: 't2' },
        hlc: [Date.now(), 0],
        to: bob.principal
      })
      await rejects(
        sb.acceptDirect(encodeSwarmMessage(other), undefined, { from: carol.principal }),
        'InvalidSwarmMessageError'
      )
    } finally {
      bob.behaviour = () => undefined
    }
  })

  it('refuses to start a second swarm on a topic this node already validates', async () => {
    const second = swarm({ namespace: NAMESPACE })({
      pubsub: a.pubsub,
      spki: a.spki,
      logger: defaultLogger()
    }) as Swarm & Startable
    await rejects(
      (async () => {
        await second.start()
      })(),
      'SwarmTopicInUseError'
    )
    // the first still runs: a message published now is delivered everywhere
    const sent = await sa.publish({ type: 'offer', body: { skills: ['code'], load: 1 } }, { as: alice.signer })
    await waitUntil(
      'every node delivered it',
      () => swarms.every(s => seen.get(s)?.some(m => m.id === sent.message.id)),
      20_000,
      20
    )
  })

  it('refuses to publish what its own node cannot prove, or what breaks the format, sending nothing', async () => {
    const before = swarms.map(s => s.stats().received)
    await rejects(
      sa.publish({ type: 'offer', body: { skills: ['review', 'deploy'], load: 0 } }, { as: alice.signer }),
      'UnauthorizedSwarmSenderError'
    )
    await rejects(
      sa.publish({ type: 'need', body: { skill: 'review', urgency: 'low' } }, { as: alice.signer }),
      'UnauthorizedSwarmSenderError'
    )
    await rejects(
      sa.publish({ type: 'offer', body: { skills: ['review'], load: -1 } }, { as: alice.signer }),
      'InvalidSwarmMessageError'
    )
    await rejects(
      sa.publish({ type: 'offer', body: { skills: ['review'], load: 0 } }, { as: alice.signer, ttl: 11 * 60_000 }),
      'InvalidSwarmMessageError'
    )
    sa.setMailbox(undefined)
    try {
      await rejects(
        sa.publish(
          { type: 'handoff', body: { board: 'release', item: 't1' } },
          { as: alice.signer, to: bob.principal }
        ),
        'SwarmMailboxMissingError'
      )
    } finally {
      sa.setMailbox(a.mailbox)
    }
    // a moment for anything sent to arrive: nothing was
    await new Promise(resolve => setTimeout(resolve, 300))
    assert.deepEqual(
      swarms.map(s => s.stats().received),
      before
    )
  })
})

describe('swarm tables', () => {
  it('merges deltas per field to one state for every arrival order', () => {
    const z1 = 'z6MkAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' as PrincipalId
    const z2 = 'z6MkBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' as PrincipalId
    const stamp = (wall: number, logical: number, from: PrincipalId, id: string): SwarmStamp => ({
      hlc: [wall, logical],
      from,
      id
    })
    const deltas: Array<[Record<string, unknown>, SwarmStamp]> = [
      [{ a: 1, b: 1 }, stamp(100, 0, z1, '01')],
      [{ a: 2 }, stamp(100, 1, z1, '02')],
      [{ b: 2, c: 2 }, stamp(100, 1, z2, '03')], // same HLC as the one before: z2 > z1 wins
      [{ c: 3 }, stamp(100, 1, z2, '00')], // same HLC and sender: the greater id ('03') wins
      [{ d: { deep: [1] } }, stamp(99, 5, z2, '04')]
    ]
    const permutations = (n: number): number[][] =>
      n === 0
        ? [[]]
        : permutations(n - 1).flatMap(p =>
            Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)])
          )
    const results = permutations(deltas.length).map(order => {
      const table = new EntityTable()
      for (const i of order) table.merge('e', deltas[i][0], deltas[i][1])
      return table.get('e')
    })
    assert.equal(results.length, 120)
    for (const r of results) assert.deepEqual(r, results[0])
    assert.deepEqual(results[0]?.fields, { a: 2, b: 2, c: 2, d: { deep: [1] } })
    assert.equal(results[0]?.stamps.c.id, '03')
    assert.deepEqual(results[0]?.updated, [100, 1])
  })

  it('forgets the entity changed longest ago past its bounds', () => {
    const table = new EntityTable({ maxEntities: 3, maxBytes: 1024 })
    const z = 'z6MkAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' as PrincipalId
    for (let i = 0; i < 5; i++) table.merge(`e${i}`, { v: i }, { hlc: [i, 0], from: z, id: `${i}` })
    assert.deepEqual(
      table.list().map(e => e.entity),
      ['e2', 'e3', 'e4']
    )
    // a change moves an entity to the back of the line
    table.merge('e2', { v: 9 }, { hlc: [9, 0], from: z, id: '9' })
    table.merge('e5', { v: 5 }, { hlc: [10, 0], from: z, id: '10' })
    assert.deepEqual(
      table.list().map(e => e.entity),
      ['e4', 'e2', 'e5']
    )
    // bytes: one large value pushes the others out
    table.merge('big', { blob: new Uint8Array(1020) }, { hlc: [11, 0], from: z, id: '11' })
    assert.deepEqual(
      table.list().map(e => e.entity),
      ['e5', 'big']
    )
  })

  it('remembers a message until it expires, and refuses new ones rather than forget one early', () => {
    // a whole minute: the window forgets by the minute, never before an entry's time
    let now = 1_200_000
    const window = new ReplayWindow(2, () => now)
    window.add('alice 1', now + 90_000)
    window.add('alice 2', now + 200_000)
    assert.equal(window.has('alice 1'), true)
    assert.throws(
      () => {
        window.add('alice 3', now + 10_000)
      },
      (err: Error) => err.name === 'SwarmBusyError'
    )
    now += 60_000
    assert.equal(window.has('alice 1'), true, 'kept until it expires')
    now += 60_000
    window.add('alice 3', now + 10_000)
    assert.equal(window.has('alice 1'), false, 'forgotten once expired')
    assert.equal(window.has('alice 2'), true)
    assert.equal(window.size, 2)
  })
})
