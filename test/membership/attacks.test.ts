import { strict as assert } from 'node:assert'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { encodeTopicMessage, MEMBERSHIP_TOPIC } from '../../protocols/membership/codec.ts'
import { decodeSwimMessage, encodeSwimMessage, SWIM_PROTOCOL } from '../../protocols/swim/codec.ts'
import { requestOnce } from '../../src/network/rpc.ts'
import { signUpdate } from '../../src/membership/update.ts'
import { signedCertToSexp, spkiTime } from '../../src/spki/cert.ts'
import { certHash, signCrl } from '../../src/spki/crl.ts'
import { encodeCanonical } from '../../src/spki/sexp.ts'
import { waitUntil } from '../helpers/processes.ts'
import {
  converged,
  FAST,
  membershipOf,
  principalOf,
  Recorder,
  sees,
  signerOf,
  startCluster,
  startNodes
} from './fixtures.ts'
import type { AliveUpdate, Update } from '../../protocols/membership/codec.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { TestCluster } from './fixtures.ts'
import type { Message, TopicValidatorFn } from '@libp2p/gossipsub'

/** The service's private view, which a test reads to replay exactly what a member signed. */
type Internals = { view: Map<PrincipalId, { alive: AliveUpdate; update: Update }> }
const internals = (node: CyberspaceNode): Internals => membershipOf(node) as unknown as Internals

/** What an update can change about a member (lastHeard moves with every probe). */
function stable(node: CyberspaceNode, member: PrincipalId): unknown {
  const m = membershipOf(node).member(member)
  return m == null
    ? undefined
    : { state: m.state, incarnation: m.incarnation, addrs: m.addrs, meta: m.meta, since: m.since }
}

const validator = (node: CyberspaceNode): TopicValidatorFn => node.pubsub.topicValidators.get(MEMBERSHIP_TOPIC)!

/** A membership topic message as gossipsub hands it to the validator: published by `from`. */
function topicMessage(from: CyberspaceNode, updates: Update[]): Message {
  return {
    type: 'signed',
    from: from.peerId,
    topic: MEMBERSHIP_TOPIC,
    data: encodeTopicMessage({ v: 1, type: 'updates', updates }),
    sequenceNumber: 1n,
    signature: new Uint8Array(64),
    key: from.peerId.publicKey!
  } as Message
}

async function ask(from: CyberspaceNode, to: CyberspaceNode, msg: Parameters<typeof encodeSwimMessage>[0]) {
  const bytes = await requestOnce(
    from.libp2p.dialProtocol.bind(from.libp2p),
    to.peerId,
    SWIM_PROTOCOL,
    encodeSwimMessage(msg),
    // a loaded CI machine can take seconds to dial and answer: the tests judge answers, not speed
    { maxBytes: 2 * 1024 * 1024, signal: AbortSignal.timeout(20_000) }
  )
  return decodeSwimMessage(bytes)
}

/** Four members and an outsider (running the service, holding no member chain) on the memory transport. */
describe('membership under attack: forged, replayed and foreign updates, floods, revocation', function () {
  this.timeout(120_000)
  let cluster: TestCluster
  let outsider: CyberspaceNode
  let a: CyberspaceNode, b: CyberspaceNode, c: CyberspaceNode, d: CyberspaceNode

  before(async () => {
    cluster = await startCluster(4)
    ;[a, b, c, d] = cluster.nodes
    ;[outsider] = await startNodes(1, FAST, a)
    // the outsider trusts the root too, but holds no certificate from it
    await outsider.spki.addAclEntry(cluster.root.id, (await import('../spki/fixtures.ts')).tag('(cyberspace member)'))
    await converged(cluster.nodes)
  })
  after(async () => {
    await Promise.all([...cluster.nodes, outsider].map(async n => await n.stop()))
  })

  it('an outsider without a chain stays passive: it neither probes, announces nor appears in any view', async () => {
    assert.equal(membershipOf(outsider).isMember(), false)
    assert.deepEqual(membershipOf(outsider).members(), [])
    for (const n of cluster.nodes) assert.equal(membershipOf(n).member(principalOf(outsider)), undefined)
    await assert.rejects(membershipOf(outsider).leave(), { name: 'NotTakingPartError' })
  })

  it("the topic validator rejects a forged update and a member publishing another member's update; the view is unchanged", async () => {
    const bAlive = internals(a).view.get(principalOf(b))!.alive
    const before = stable(a, principalOf(b))
    const sig = bAlive.sig.slice()
    sig[10] ^= 0x40
    const forged = { ...bAlive, incarnation: bAlive.incarnation + 5, sig }
    assert.equal(await validator(a)(b.peerId, topicMessage(b, [forged])), TopicValidatorResult.Reject)
    const forgedMeta = { ...bAlive, meta: { role: 'admin' } }
    assert.equal(await validator(a)(b.peerId, topicMessage(b, [forgedMeta])), TopicValidatorResult.Reject)
    // c relays b's (genuine) alive as its own message: only the maker publishes its updates
    const cAlive = internals(a).view.get(principalOf(c))!.alive
    assert.equal(await validator(a)(c.peerId, topicMessage(c, [cAlive, bAlive])), TopicValidatorResult.Reject)
    assert.deepEqual(stable(a, principalOf(b)), before)
  })

  it('a replayed accusation and a replayed older alive change nothing once refuted', async () => {
    const victim = principalOf(c)
    const incarnation = membershipOf(a).member(victim)!.incarnation
    const suspect = await signUpdate(await signerOf(b), {
      v: 1,
      state: 'suspect',
      member: victim,
      incarnation,
      by: principalOf(b)
    })
    const bAlive = internals(a).view.get(principalOf(b))!.alive
    const oldAlive = internals(a).view.get(victim)!.alive
    assert.equal(await validator(a)(b.peerId, topicMessage(b, [bAlive, suspect])), TopicValidatorResult.Accept)
    // the suspect hears of it (the buddy system) and refutes at a higher incarnation
    await waitUntil(
      'a sees the refutation',
      () => {
        const m = membershipOf(a).member(victim)!
        return m.state === 'alive' && m.incarnation > incarnation
      },
      10_000,
      20
    )
    const after = stable(a, victim)
    assert.equal(await validator(a)(b.peerId, topicMessage(b, [bAlive, suspect])), TopicValidatorResult.Ignore)
    assert.equal(await validator(a)(c.peerId, topicMessage(c, [oldAlive])), TopicValidatorResult.Ignore)
    assert.deepEqual(stable(a, victim), after)
  })

  it('an accusation by a non-member, and updates about a non-member, are rejected and change nothing', async () => {
    const victim = principalOf(d)
    const before = membershipOf(a).member(victim)
    const stableBefore = stable(a, victim)
    const stolenChain = internals(a).view.get(principalOf(b))!.alive.chain
    const outsiderSigner = await signerOf(outsider)
    const outsiderAlive = await signUpdate(outsiderSigner, {
      v: 1,
      state: 'alive',
      member: principalOf(outsider),
      incarnation: 1,
      addrs: [],
      meta: {},
      chain: stolenChain
    })
    const accusation = await signUpdate(outsiderSigner, {
      v: 1,
      state: 'dead',
      member: victim,
      incarnation: before!.incarnation,
      by: principalOf(outsider)
    })
    assert.equal(
      await validator(a)(outsider.peerId, topicMessage(outsider, [outsiderAlive, accusation])),
      TopicValidatorResult.Reject
    )
    // now known as a non-member here: even without its alive the next message is rejected
    assert.equal(await validator(a)(outsider.peerId, topicMessage(outsider, [accusation])), TopicValidatorResult.Reject)
    // a member accusing the non-member: nothing to accuse, and rejected
    const bAlive = internals(a).view.get(principalOf(b))!.alive
    const aboutOutsider = await signUpdate(await signerOf(b), {
      v: 1,
      state: 'suspect',
      member: principalOf(outsider),
      incarnation: 1,
      by: principalOf(b)
    })
    assert.equal(await validator(a)(b.peerId, topicMessage(b, [bAlive, aboutOutsider])), TopicValidatorResult.Reject)
    assert.equal(membershipOf(a).member(principalOf(outsider)), undefined)
    assert.deepEqual(stable(a, victim), stableBefore)
    // and over the probe protocol: the outsider's ping carrying its alive is refused by name
    const answer = await ask(outsider, a, {
      v: 1,
      type: 'ping',
      target: principalOf(a),
      updates: [outsiderAlive, accusation]
    })
    assert.equal(answer.type, 'error')
    assert.equal((answer as { name: string }).name, 'NotAMemberError')
    const sync = await ask(outsider, b, { v: 1, type: 'sync', updates: [outsiderAlive] })
    assert.equal((sync as { name: string }).name, 'NotAMemberError')
    assert.equal(membershipOf(b).member(principalOf(outsider)), undefined)
    assert.deepEqual(stable(a, victim), stableBefore)
  })

  it('a flood of probes and updates from one member is bounded per second, and every honest member stays alive', async () => {
    const recorder = new Recorder(cluster.nodes)
    const started = Date.now()
    let acks = 0
    let limited = 0
    try {
      for (let i = 0; i < 300; i++) {
        const answer = await ask(b, a, { v: 1, type: 'ping', target: principalOf(a), updates: [] })
        if (answer.type === 'ack') acks++
        else if ((answer as { name: string }).name === 'MembershipRateLimitedError') limited++
      }
      const seconds = (Date.now() - started) / 1000
      // a burst of 20, then 10 a second (b's own probes of a draw on the same budget)
      assert.ok(acks <= 20 + Math.ceil(10 * seconds) + 1, `${acks} pings answered in ${seconds} s`)
      assert.ok(limited >= 300 - acks - 5 && limited > 0)
      // a flood of genuine, new updates on the topic: beyond the budget they are ignored unseen
      const bSigner = await signerOf(b)
      const bAlive = internals(a).view.get(principalOf(b))!.alive
      let accepted = 0
      const floodStart = Date.now()
      for (let i = 1; i <= 60; i++) {
        const { sig: _drop, ...unsigned } = bAlive
        const signed = await signUpdate(bSigner, { ...unsigned, incarnation: bAlive.incarnation + 1000 + i })
        if ((await validator(a)(b.peerId, topicMessage(b, [signed]))) === TopicValidatorResult.Accept) accepted++
      }
      const floodSeconds = (Date.now() - floodStart) / 1000
      assert.ok(
        accepted <= 20 + Math.ceil(10 * floodSeconds) + 1,
        `${accepted} topic messages accepted in ${floodSeconds} s`
      )
      assert.ok(accepted < 60)
      // honest members keep probing each other through it
      await new Promise(resolve => setTimeout(resolve, 1500))
      await converged(cluster.nodes, 20_000)
    } finally {
      recorder.stop()
    }
    for (const n of cluster.nodes) assert.deepEqual(recorder.showed(principalOf(n), 'dead'), [])
  })

  it('a member whose certificate is revoked disappears from every view, goes passive, and its updates change nothing', async () => {
    const revoked = d
    const crl = await signCrl(
      {
        issuer: cluster.root.id,
        revoked: [certHash(cluster.certs.get(principalOf(revoked))!)],
        validity: { notBefore: spkiTime(Date.now() - 60_000), notAfter: spkiTime(Date.now() + 3_600_000) }
      },
      cluster.root.secret
    )
    const removed: string[] = []
    membershipOf(a).addEventListener('member:remove', e => removed.push(e.detail.principal))
    // members do not poll the SPKI epoch: once it rests, no check is pending (only a passive node
    // looks for its chain on a timer); the CRL's epoch event is what makes them check
    const pending = (n: typeof a): unknown => (membershipOf(n) as unknown as { checkTimer?: unknown }).checkTimer
    await waitUntil('no membership check pending', () => [b, c, revoked].every(n => pending(n) == null), 5_000, 20)
    for (const n of cluster.nodes) await n.spki.addCrl(crl)
    await membershipOf(a).recheck()
    assert.equal(membershipOf(a).member(principalOf(revoked)), undefined)
    assert.deepEqual(removed, [principalOf(revoked)])
    // the others notice the SPKI epoch change by themselves (its epoch event)
    await waitUntil(
      'no view lists the revoked member',
      () => [a, b, c].every(o => membershipOf(o).member(principalOf(revoked)) == null),
      10_000,
      50
    )
    await waitUntil('the revoked member stops taking part', () => !membershipOf(revoked).isMember(), 10_000, 50)
    // a fresh alive signed by it (with its now revoked chain) is rejected
    const chain = [encodeCanonical(signedCertToSexp(cluster.certs.get(principalOf(revoked))!))]
    const rejoin = await signUpdate(await signerOf(revoked), {
      v: 1,
      state: 'alive',
      member: principalOf(revoked),
      incarnation: Math.floor(Date.now() / 1000) + 100,
      addrs: [],
      meta: {},
      chain
    })
    assert.equal(await validator(b)(revoked.peerId, topicMessage(revoked, [rejoin])), TopicValidatorResult.Reject)
    assert.equal(membershipOf(b).member(principalOf(revoked)), undefined)
    assert.ok(sees(b, [a, c], 'alive'))
  })
})
