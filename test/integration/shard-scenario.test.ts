/**
 * The shard scenario of issue 15's fleet design, among three in-process member nodes (memory
 * transport), with three agent kinds on three nodes each acting by itself (test/work/fixtures/
 * shard-kinds.ts): a `monitor` on A is told a reading and detects an anomaly (STATE_DELTA degraded),
 * publishes a NEED for repair; a `repairer` on B OFFERs; the monitor creates a `repair` item assigned
 * to it and sends it a REQUEST through the mailbox; the repairer claims, progresses, executes
 * (STATE_DELTA ok) and completes; the monitor asks for verification (NEED, then a `verify` item for
 * the `verifier` on C that OFFERed), which checks the entity's merged state and the repair item and
 * completes with { verified: true } (STATE_DELTA verified). Checked on every node: the entity's
 * merged fields, both items and their histories, the journal's board and swarm events in one HLC
 * order, and the order of the steps by their HLCs. Then an attacker: a forged and an unauthorized
 * OFFER, from a node outside the cluster, are refused on every node and never lead to an
 * assignment; the need stays open until an agent whose chain grants the offer answers it.
 */
import assert from 'node:assert/strict'
import { encodeSwarmMessage, SWARM_SIGNING_DOMAIN, swarmSigningBody, swarmTopic } from '../../protocols/swarm/codec.ts'
import { compareHlc } from '../../src/clock/hlc.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import { BOARD, monitorKind, repairerKind, verifierKind } from '../work/fixtures/shard-kinds.ts'
import type { SwarmMessage, UnsignedSwarmMessage } from '../../protocols/swarm/codec.ts'
import type { HlcTimestamp } from '../../src/clock/hlc.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { SignedCert } from '../../src/spki/cert.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { JournalEvent } from '../../src/work/events.ts'
import type { Board, WorkItem } from '../../src/work/types.ts'
import type { Key } from '../spki/fixtures.ts'
import type { TraceEntry } from '../work/fixtures/shard-kinds.ts'

const TOPIC = swarmTopic()

async function rejects(promise: Promise<unknown>, name: string): Promise<void> {
  await assert.rejects(promise, (err: Error) => {
    assert.equal(err.name, name, `${err.name}: ${err.message}`)
    return true
  })
}

/** A message signed by `signer` that says it is from `from` (default: the signer): a forgery when they differ. */
async function craft(
  signer: Signer,
  fields: { type: UnsignedSwarmMessage['type']; body: unknown; from?: string }
): Promise<SwarmMessage> {
  const hlc = [Date.now(), 0] as const
  const unsigned = {
    v: 1,
    id: Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('hex'),
    from: fields.from ?? signer.principal,
    type: fields.type,
    hlc,
    expires: hlc[0] + 60_000,
    body: fields.body
  } as UnsignedSwarmMessage
  return { ...unsigned, sig: await signer.sign(SWARM_SIGNING_DOMAIN, swarmSigningBody(unsigned)) } as SwarmMessage
}

const hlcText = (h: HlcTimestamp): string => `${h[0]}.${String(h[1]).padStart(4, '0')}`

describe('the shard scenario: detect → STATE_DELTA → NEED → OFFER → REQUEST → execute → STATE_DELTA → verify', function () {
  this.timeout(180_000)
  const nodes: CyberspaceNode[] = []
  const outsiders: CyberspaceNode[] = []
  let root: Key
  let boards: Board[] = []
  const signers = new Map<string, Signer>()
  const names = new Map<string, string>()
  const principal = (name: string): PrincipalId => signers.get(name)?.principal as PrincipalId
  const nameOf = (p: PrincipalId | undefined): string => (p == null ? '-' : (names.get(p) ?? p))
  const trace: TraceEntry[] = []

  /** Every certificate granted, for a node that comes later. */
  const issued: SignedCert[] = []

  async function grantAll(who: PrincipalId, tagText: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal: who }, tagText, { propagate: false })
    issued.push(cert)
    for (const n of nodes) await n.spki.addAll({ certs: [cert], crls: [] })
  }

  async function spawn(i: number, kind: string, name: string): Promise<PrincipalId> {
    const info = await nodes[i].agents.spawn(kind, { id: name, key: 'local' })
    signers.set(name, nodes[i].agents.agent(info.principal)?.signer as Signer)
    names.set(info.principal, name)
    return info.principal
  }

  /** The items the monitor made for `entity` on a board (it names the entity in each item's description). */
  const itemsFor = (board: Board, entity: string): WorkItem[] =>
    board.items({ limit: 1000 }).filter(i => i.description === entity)

  const settled = (entity: string): boolean =>
    nodes.every((n, i) => {
      const items = itemsFor(boards[i], entity)
      return (
        n.work.swarm.entity(entity)?.fields.verified === true &&
        items.length === 2 &&
        items.every(x => x.status === 'completed')
      )
    })

  before(async () => {
    const options = {
      membershipOptions: { probeInterval: 300, probeTimeout: 150 },
      stateOptions: { syncInterval: 1000 },
      workOptions: { fleet: { interval: 500 } }
    }
    nodes.push(await memoryNode(options))
    const at = [nodes[0].multiaddrs()[0]]
    for (let i = 1; i < 3; i++) nodes.push(await memoryNode({ ...options, bootstrap: at }))
    await waitUntil('every node connected to the first', () => nodes[0].peers().length === 2)
    root = await key()
    for (const n of nodes) await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
    for (const n of nodes) await grantAll(principalFromPeerId(n.peerId), '(cyberspace (* set member (agent)))')
    await waitUntil('three alive members everywhere', () =>
      nodes.every(n => n.membership.members().filter(m => m.state === 'alive').length === 3)
    )
    const record = (entry: TraceEntry): void => {
      trace.push(entry)
    }
    const idle = { behaviour: () => ({ handle: () => undefined }) }
    for (const n of nodes) n.agents.define('idle', idle)
    nodes[0].agents.define('monitor', monitorKind({ work: nodes[0].work }, { trace: record }))
    nodes[1].agents.define('repairer', repairerKind({ work: nodes[1].work }, { scope: 'db/', trace: record }))
    nodes[2].agents.define('verifier', verifierKind({ work: nodes[2].work }, { trace: record }))
    nodes[2].agents.define('repairer', repairerKind({ work: nodes[2].work }, { scope: 'cache/', trace: record }))

    // the sensor tells the monitor its readings; the rogue is an agent no swarm right was granted to
    await spawn(0, 'idle', 'sensor')
    await spawn(1, 'idle', 'rogue')
    // an agent's key exists once it is spawned; its rights follow at once, before anything asks it to act
    const monitor = await spawn(0, 'monitor', 'monitor')
    await grantAll(principal('sensor'), `(cyberspace (mailbox (send ${monitor} observe)))`)
    await grantAll(monitor, `(cyberspace (work ${BOARD}))`)
    await grantAll(monitor, '(cyberspace (swarm need (* set repair verify)))')
    await grantAll(monitor, '(cyberspace (swarm state-delta))')
    await grantAll(monitor, `(cyberspace (swarm request ${BOARD}))`)
    await grantAll(monitor, '(cyberspace (mailbox (send (*) swarm.request)))')
    const repairer = await spawn(1, 'repairer', 'repairer')
    const implementerRights = `(cyberspace (work ${BOARD} (* set claim progress complete fail release read) repair))`
    await grantAll(repairer, implementerRights)
    await grantAll(repairer, '(cyberspace (swarm offer repair))')
    await grantAll(repairer, '(cyberspace (swarm state-delta (* prefix db/)))')
    const verifier = await spawn(2, 'verifier', 'verifier')
    await grantAll(verifier, `(cyberspace (work ${BOARD} (* set claim progress complete fail release) verify))`)
    await grantAll(verifier, `(cyberspace (work ${BOARD} read))`)
    await grantAll(verifier, '(cyberspace (swarm offer verify))')
    await grantAll(verifier, '(cyberspace (swarm state-delta))')
    // a second repairer, for cache/*: it may work on the board, but no swarm right is granted yet
    const cacheRepairer = await spawn(2, 'repairer', 'cache-repairer')
    await grantAll(cacheRepairer, implementerRights)
    boards = await Promise.all(nodes.map(async n => await n.work.board(BOARD)))
    await waitUntil(
      'every node sees the others subscribed to the swarm',
      () => nodes.every(n => n.pubsub.getSubscribers(TOPIC).length >= 2),
      30_000,
      50
    )
  })

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return
    for (const e of trace) console.log(e.agent, e.what, JSON.stringify(e.detail))
    for (const [i, n] of nodes.entries())
      console.log('node', i, n.work.swarm.stats(), n.work.swarm.refusals().slice(-5))
  })

  after(async () => {
    await Promise.all([...nodes, ...outsiders].map(async n => await n.stop()))
  })

  it('each kind acts by itself on its own node: the entity is repaired and verified, the same on every node, in causal HLC order', async () => {
    const entity = 'db/primary'
    // the one push: a reading the monitor finds anomalous
    await nodes[0].agents.send(principal('sensor'), principal('monitor'), 'observe', { entity, errorRate: 0.42 })
    await waitUntil('every node to see the entity verified and both items completed', () => settled(entity), 60_000, 50)

    // the entity's merged fields, on every node, from the agents that wrote them
    const views = nodes.map(n => n.work.swarm.entity(entity))
    for (const view of views) {
      assert.deepEqual(view?.fields, { health: 'ok', repairedBy: principal('repairer'), verified: true })
      assert.equal(view?.stamps.health.from, principal('repairer'))
      assert.equal(view?.stamps.repairedBy.from, principal('repairer'))
      assert.equal(view?.stamps.verified.from, principal('verifier'))
      assert.ok(compareHlc(view?.stamps.verified.hlc, view?.stamps.health.hlc) > 0)
    }
    assert.deepEqual(views[1], views[0])
    assert.deepEqual(views[2], views[0])

    // both items, their assignees and histories, the same on every replica
    const history = (x: WorkItem): string[] =>
      x.history.map(h => `${h.op} by ${nameOf(h.actor)} → ${h.status} (${nameOf(h.assignee)})`)
    const found = boards.map(b => {
      const items = itemsFor(b, entity)
      return {
        repair: items.find(x => x.kind === 'repair') as WorkItem,
        verify: items.find(x => x.kind === 'verify') as WorkItem
      }
    })
    for (const { repair, verify } of found) {
      assert.equal(repair.status, 'completed')
      assert.equal(repair.assignee, principal('repairer'))
      assert.equal(repair.createdBy, principal('monitor'))
      assert.deepEqual(repair.result, { entity, health: 'ok' })
      assert.deepEqual(repair.progress, { percent: 50, message: `repairing ${entity}` })
      assert.deepEqual(history(repair), [
        'create by monitor → submitted (repairer)',
        'claim by repairer → working (repairer)',
        'progress by repairer → working (repairer)',
        'complete by repairer → completed (repairer)'
      ])
      assert.equal(verify.status, 'completed')
      assert.equal(verify.assignee, principal('verifier'))
      assert.deepEqual(verify.deps, [repair.id])
      assert.deepEqual(verify.result, { verified: true })
      assert.deepEqual(history(verify), [
        'create by monitor → submitted (verifier)',
        'claim by verifier → working (verifier)',
        'complete by verifier → completed (verifier)'
      ])
    }
    assert.deepEqual(found[1], found[0])
    assert.deepEqual(found[2], found[0])
    const { repair, verify } = found[0]
    const subjects = new Set([`${BOARD}/${repair.id}`, `${BOARD}/${verify.id}`])

    // the journal of every node: the scenario's board operations and (topic) swarm messages in one HLC order
    const journal = (n: CyberspaceNode): JournalEvent[] => {
      const out: JournalEvent[] = []
      let page = n.work.events.since(undefined, { limit: 1000 })
      out.push(...page.events)
      for (let i = 0; i < 100 && page.more; i++) {
        page = n.work.events.since(undefined, { limit: 1000, after: page.cursor })
        out.push(...page.events)
      }
      return out
    }
    const isDirected = (e: JournalEvent): boolean => (e.data as { to?: string }).to !== undefined
    const inScenario = (e: JournalEvent): boolean =>
      (e.source === 'board' && subjects.has(e.subject)) ||
      (e.source === 'swarm' &&
        !isDirected(e) &&
        (e.subject === entity ||
          ((e.type === 'need' || e.type === 'offer') && ['skill:repair', 'skill:verify'].includes(e.subject))))
    const who = (e: JournalEvent): string => {
      const data = e.data as { actor?: PrincipalId; from?: PrincipalId }
      return nameOf(data.actor ?? data.from)
    }
    const scenarioEvents = (n: CyberspaceNode): JournalEvent[] => journal(n).filter(inScenario)
    const scenario = (n: CyberspaceNode): string[] =>
      scenarioEvents(n).map(e => `${hlcText(e.hlc)} ${e.source} ${e.type} ${e.subject} by ${who(e)}`)
    // every journal holds the same events once they settled (each in its own feed order: one that
    // reached a node past the settle delay joins its feed at the end, marked late)
    const held = (n: CyberspaceNode): string[] => [...scenario(n)].sort()
    await waitUntil(
      'every journal to hold the whole scenario',
      () => {
        const a = held(nodes[0])
        return (
          a.filter(l => l.includes(' board ')).length >= 7 &&
          a.filter(l => l.includes(' swarm state-delta ')).length >= 3 &&
          nodes.every(n => JSON.stringify(held(n)) === JSON.stringify(a))
        )
      },
      20_000,
      50
    )
    const lines = scenario(nodes[0])
    assert.deepEqual(held(nodes[1]), held(nodes[0]))
    assert.deepEqual(held(nodes[2]), held(nodes[0]))
    for (const n of nodes) {
      const inOrder = scenarioEvents(n).filter(e => e.late !== true)
      for (let i = 1; i < inOrder.length; i++)
        assert.ok(compareHlc(inOrder[i - 1].hlc, inOrder[i].hlc) <= 0, `in HLC order:\n${scenario(n).join('\n')}`)
    }
    // the seven board operations and at least: three deltas, two needs, two offers
    const count = (what: string): number => lines.filter(l => l.includes(what)).length
    assert.equal(count(' board '), 7, lines.join('\n'))
    assert.equal(count(' swarm state-delta '), 3, lines.join('\n'))
    assert.ok(count(' swarm need ') >= 2 && count(' swarm offer ') >= 2, lines.join('\n'))

    // the REQUEST went to the repairer alone: only B's swarm delivered it
    const requests = nodes.map(n =>
      journal(n).filter(e => e.source === 'swarm' && e.type === 'request' && e.subject === `${BOARD}/${repair.id}`)
    )
    assert.equal(requests[0].length, 0)
    assert.equal(requests[1].length, 1)
    assert.equal(requests[2].length, 0)
    assert.equal((requests[1][0].data as { from: string; to: string }).from, principal('monitor'))
    assert.equal((requests[1][0].data as { from: string; to: string }).to, principal('repairer'))

    // the order of the steps, by their HLCs (the request from B's journal, the rest from A's)
    const a = journal(nodes[0])
    const first = (what: string, test: (e: JournalEvent) => boolean, events = a): HlcTimestamp => {
      const e = events.find(test)
      assert.ok(e != null, `no ${what} in the journal`)
      return e.hlc
    }
    const body = (e: JournalEvent): Record<string, any> => (e.data as { body: Record<string, any> }).body
    const from = (e: JournalEvent): string => (e.data as { from: string }).from
    const boardOp = (item: WorkItem, op: string) => (e: JournalEvent) =>
      e.source === 'board' && e.subject === `${BOARD}/${item.id}` && e.type === op
    const delta = (field: string, value: unknown) => (e: JournalEvent) =>
      e.source === 'swarm' && e.type === 'state-delta' && e.subject === entity && body(e).fields[field] === value
    const need = (skill: string) => (e: JournalEvent) =>
      e.source === 'swarm' && e.type === 'need' && body(e).skill === skill && body(e).description === entity
    const offer = (skill: string, by: string) => (e: JournalEvent) =>
      e.source === 'swarm' && e.type === 'offer' && body(e).skills.includes(skill) && from(e) === principal(by)
    const steps: Array<[string, HlcTimestamp]> = [
      ['detect (STATE_DELTA degraded)', first('detection', delta('health', 'degraded'))],
      ['NEED repair', first('need', need('repair'))],
      ['OFFER repair', first('offer', offer('repair', 'repairer'))],
      ['create the repair item, assigned', first('create', boardOp(repair, 'create'))],
      ['REQUEST', requests[1][0].hlc],
      ['claim', first('claim', boardOp(repair, 'claim'))],
      ['progress', first('progress', boardOp(repair, 'progress'))],
      ['execute (STATE_DELTA ok)', first('execution', delta('health', 'ok'))],
      ['complete the repair', first('completion', boardOp(repair, 'complete'))],
      ['NEED verify', first('need', need('verify'))],
      ['OFFER verify', first('offer', offer('verify', 'verifier'))],
      ['create the verify item, assigned', first('create', boardOp(verify, 'create'))],
      ['claim the verify item', first('claim', boardOp(verify, 'claim'))],
      ['complete the verify item', first('completion', boardOp(verify, 'complete'))],
      ['verified (STATE_DELTA)', first('verification', delta('verified', true))]
    ]
    for (let i = 1; i < steps.length; i++) {
      const [before, b] = steps[i - 1]
      const [after, c] = steps[i]
      assert.ok(compareHlc(b, c) < 0, `${before} (${hlcText(b)}) comes before ${after} (${hlcText(c)})`)
    }
    // the offer answered the first need: the repairer offered once
    assert.equal(a.filter(offer('repair', 'repairer')).length, 1)
  })

  it('a forged or unauthorized OFFER is refused on every node and never leads to an assignment', async () => {
    const entity = 'cache/7'
    const mallory = await seedSigner(crypto.getRandomValues(new Uint8Array(32)))
    names.set(mallory.principal, 'mallory')
    // an agent without the grant cannot send an offer from its own node: nothing leaves it
    const published = nodes[1].work.swarm.stats().published
    await rejects(
      nodes[1].work.swarm.publish(
        { type: 'offer', body: { skills: ['repair'], load: 0 } },
        { as: signers.get('rogue') as Signer }
      ),
      'UnauthorizedSwarmSenderError'
    )
    assert.equal(nodes[1].work.swarm.stats().published, published)
    // a node outside the cluster (no member grant), connected to A and C, publishes crafted bytes on
    // the topic; it knows the cluster's key and certificates before it connects, so it takes the
    // cluster's own gossip as valid (a node that rejected it would score A and C down and stop
    // sending them anything)
    const x = await memoryNode()
    outsiders.push(x)
    await x.spki.addAclEntry(root.id, tag('(cyberspace)'))
    await x.spki.addAll({ certs: issued, crls: [] })
    await x.libp2p.dial(nodes[0].multiaddrs()[0])
    await x.libp2p.dial(nodes[2].multiaddrs()[0])
    await waitUntil(
      'the outsider sees A and C subscribed',
      () => [nodes[0], nodes[2]].every(n => x.pubsub.getSubscribers(TOPIC).some(p => p.equals(n.peerId))),
      30_000,
      50
    )
    const deliveredAtA: SwarmMessage[] = []
    nodes[0].work.swarm.addEventListener('message', e => deliveredAtA.push(e.detail))

    // an anomaly of cache/7: the repairer of db/* does not offer, the cache repairer may not
    await nodes[0].agents.send(principal('sensor'), principal('monitor'), 'observe', { entity, errorRate: 0.9 })
    await waitUntil('the monitor to need a repair of cache/7', () =>
      nodes.every(n => n.work.swarm.needs('repair').some(need => need.description === entity))
    )
    // unauthorized: mallory's own offer (no chain grants it); forged: "from the repairer", signed by mallory
    const unauthorized = await craft(mallory, { type: 'offer', body: { skills: ['repair'], load: 0 } })
    const forged = await craft(mallory, {
      type: 'offer',
      from: principal('repairer'),
      body: { skills: ['repair'], load: 0 }
    })
    await x.pubsub.publish(TOPIC, encodeSwarmMessage(unauthorized))
    await x.pubsub.publish(TOPIC, encodeSwarmMessage(forged))
    const refusalOf = (n: CyberspaceNode, id: string): string | undefined =>
      n.work.swarm.refusals().find(r => r.id === id)?.error
    const checked = (n: CyberspaceNode, id: string): boolean =>
      refusalOf(n, id) != null || n.work.swarm.offers('repair').some(o => o.id === id)
    await waitUntil(
      'A and C to have checked both',
      () => [nodes[0], nodes[2]].every(n => checked(n, unauthorized.id) && checked(n, forged.id)),
      30_000,
      50
    )
    for (const n of [nodes[0], nodes[2]]) {
      assert.equal(refusalOf(n, unauthorized.id), 'UnauthorizedSwarmSenderError')
      assert.equal(refusalOf(n, forged.id), 'SwarmSignatureError')
      assert.ok(n.work.swarm.offers('repair').every(o => o.id !== unauthorized.id && o.id !== forged.id))
    }
    // the monitor never saw them; the need stays open, announced again, and nothing is assigned
    const seen = (id: string): boolean =>
      trace.some(t => t.what === 'offer-seen' && (t.detail as { id: string }).id === id)
    assert.equal(seen(unauthorized.id) || seen(forged.id), false)
    assert.equal(
      deliveredAtA.some(m => m.id === unauthorized.id || m.id === forged.id),
      false
    )
    const needsAtA = (): number =>
      deliveredAtA.filter(m => m.type === 'need' && m.body.skill === 'repair' && m.body.description === entity).length
    const needsBefore = needsAtA()
    await waitUntil('the monitor to announce the need again', () => needsAtA() > needsBefore, 20_000, 50)
    assert.deepEqual(itemsFor(boards[0], entity), [])
    // the cache repairer tried to answer and its own node refused to send it
    assert.ok(
      trace.some(
        t =>
          t.agent === 'cache-repairer' &&
          t.what === 'offer-refused' &&
          (t.detail as { error: string }).error === 'UnauthorizedSwarmSenderError'
      ),
      'the cache repairer was refused its offer'
    )

    // authority arrives: the next announcement is answered by the cache repairer, which does the work
    await grantAll(principal('cache-repairer'), '(cyberspace (swarm offer repair))')
    await grantAll(principal('cache-repairer'), '(cyberspace (swarm state-delta (* prefix cache/)))')
    await waitUntil('every node to see cache/7 verified', () => settled(entity), 60_000, 50)
    for (const [i, n] of nodes.entries()) {
      const repair = itemsFor(boards[i], entity).find(x => x.kind === 'repair') as WorkItem
      assert.equal(repair.assignee, principal('cache-repairer'))
      assert.equal(n.work.swarm.entity(entity)?.fields.repairedBy, principal('cache-repairer'))
      // on no board did mallory or the rogue ever act or hold anything
      for (const item of boards[i].items({ limit: 1000 })) {
        for (const h of item.history) {
          assert.ok(![mallory.principal, principal('rogue')].includes(h.actor), `${item.id}: ${h.op} by ${h.actor}`)
          assert.ok(
            h.assignee == null || ![mallory.principal, principal('rogue')].includes(h.assignee),
            `${item.id} assigned to ${h.assignee}`
          )
        }
      }
      assert.ok(n.work.swarm.offers().every(o => o.from !== mallory.principal && o.from !== principal('rogue')))
    }
  })
})
