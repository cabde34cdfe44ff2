/**
 * Revocations spread: CRLs travel by gossip on /cyberspace/crl/1 and by anti-entropy over
 * /cyberspace/crl/1.0.0, are kept only from trusted issuers and only when newer, and a peer that
 * floods is bounded. In-process nodes on the memory transport.
 */
import { strict as assert } from 'node:assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import {
  CRL_PROTOCOL,
  CRL_TOPIC,
  decodeCrlGossip,
  decodeCrlMessage,
  encodeCrlMessage,
  MAX_CRL_MESSAGE_BYTES
} from '../../protocols/spki/crl-codec.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { requestOnce } from '../../src/network/rpc.ts'
import { spkiTime } from '../../src/spki/cert.ts'
import { certHash, crlHash, signCrl, signedCrlToSexp } from '../../src/spki/crl.ts'
import { revocations } from '../../src/spki/revocations.ts'
import { encodeCanonical } from '../../src/spki/sexp.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { key, tag } from './fixtures.ts'
import type { Key } from './fixtures.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { SignedCert } from '../../src/spki/cert.ts'
import type { Crl, SignedCrl } from '../../src/spki/crl.ts'
import type { Revocations, RevocationsInit } from '../../src/spki/revocations.ts'
import type { Message } from '@libp2p/gossipsub'
import type { PeerId, PrivateKey } from '@libp2p/interface'

const MEMBER = tag('(cyberspace member)')
const HOUR = 3_600_000
const seedOf = (privateKey: PrivateKey): Uint8Array => privateKey.raw.subarray(0, 32)
const rev = (node: CyberspaceNode): Revocations => node.libp2p.services.revocations as Revocations
const crlBytes = (crl: SignedCrl): Uint8Array => encodeCanonical(signedCrlToSexp(crl))
const gossip = (crl: SignedCrl): Uint8Array => encodeCrlMessage({ v: 1, type: 'crl', crl: crlBytes(crl) })
/** An SPKI time `ms` later. */
const later = (t: string, ms: number): string => spkiTime(Date.parse(t.replace('_', 'T') + 'Z') + ms)

/** A node running the revocations service; periodic pulls off unless asked, so what arrives is by gossip or on connection. */
async function revocationNode(init: RevocationsInit = {}, privateKey?: PrivateKey): Promise<CyberspaceNode> {
  return await memoryNode({
    ...(privateKey != null ? { privateKey } : {}),
    // libp2p types components loosely; spki and pubsub are registered before this service
    services: { revocations: revocations({ syncInterval: 0, ...init }) as never }
  })
}

async function connect(a: CyberspaceNode, b: CyberspaceNode): Promise<void> {
  await a.libp2p.dial(b.multiaddrs()[0])
}

/** Waits until `node` sees every one of `peers` subscribed to the CRL topic. */
async function subscribed(node: CyberspaceNode, peers: CyberspaceNode[]): Promise<void> {
  await waitUntil(`${peers.length} subscribers of the CRL topic`, () => {
    const subs = node.pubsub.getSubscribers(CRL_TOPIC).map(String)
    return peers.every(p => subs.includes(p.peerId.toString()))
  })
}

/** A gossipsub message as the validator sees it, from `from`. */
function topicMessage(from: PeerId, data: Uint8Array): Message {
  return {
    type: 'signed',
    from,
    topic: CRL_TOPIC,
    data,
    sequenceNumber: 1n,
    signature: new Uint8Array(64),
    key: from.publicKey
  } as unknown as Message
}

async function validate(node: CyberspaceNode, from: PeerId, data: Uint8Array): Promise<TopicValidatorResult> {
  const validator = node.pubsub.topicValidators.get(CRL_TOPIC)
  assert.ok(validator != null, 'the CRL topic has a validator')
  return await validator(from, topicMessage(from, data))
}

/** `authorize(holder, member)` on `node`: 'ok' or the error's name. */
async function memberCheck(node: CyberspaceNode, holder: PrincipalId): Promise<string> {
  try {
    await node.spki.authorize(holder, MEMBER)
    return 'ok'
  } catch (err) {
    return (err as Error).name
  }
}

describe('revocations spread through the cluster (/cyberspace/crl/1, /cyberspace/crl/1.0.0)', () => {
  const nodes: CyberspaceNode[] = []
  let aKey: PrivateKey
  let a: CyberspaceNode
  let b: CyberspaceNode
  let c: CyberspaceNode
  let aId: PrincipalId
  let holder: Key
  let membership: SignedCert
  let spread: SignedCrl

  before(async () => {
    aKey = await generateKeyPair('Ed25519')
    a = await revocationNode({}, aKey)
    b = await revocationNode()
    c = await revocationNode()
    nodes.push(a, b, c)
    aId = principalFromPeerId(a.peerId)
    holder = await key()
    // A admits the holder; B and C trust A as a root and hold the certificate
    membership = await a.spki.issue({
      type: 'auth',
      issuer: aId,
      subject: { kind: 'key', principal: holder.id },
      propagate: false,
      tag: MEMBER,
      validity: {}
    })
    for (const n of [b, c]) {
      await n.spki.addAclEntry(aId, tag('(cyberspace)'))
      await n.spki.addCert(membership)
    }
    // a line: A — B — C, so C hears only what B forwards
    await connect(a, b)
    await connect(b, c)
    await subscribed(a, [b])
    await subscribed(b, [a, c])
    await subscribed(c, [b])
  })

  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it('a CRL issued on A reaches B and, through B, C by gossip; the holder is refused and the epoch moves on both', async () => {
    assert.equal(await memberCheck(b, holder.id), 'ok')
    assert.equal(await memberCheck(c, holder.id), 'ok')
    const epochs = [b.spki.epoch, c.spki.epoch]
    spread = await a.spki.revoke([certHash(membership)])
    await waitUntil('B and C to hold the CRL', () =>
      [b, c].every(n => n.spki.crlOf(aId)?.summary.hash === crlHash(spread))
    )
    assert.equal(await memberCheck(b, holder.id), 'RevokedCertError')
    assert.equal(await memberCheck(c, holder.id), 'RevokedCertError')
    assert.ok(b.spki.epoch > epochs[0] && c.spki.epoch > epochs[1], 'applying a spread CRL starts a new epoch')
    assert.equal(rev(a).stats().published, 1)
    // C kept it from gossip, not by a pull (pulls happen only on connection here, before the revocation)
    assert.equal(rev(c).stats().applied, 1)
    assert.equal(rev(c).stats().fetched, 0)
    // B did not publish it again: gossipsub forwarded A's message
    assert.equal(rev(b).stats().published, 0)
  })

  it('a node that was away gets the CRL by anti-entropy when it connects', async () => {
    const d = await revocationNode()
    nodes.push(d)
    await d.spki.addAclEntry(aId, tag('(cyberspace)'))
    await d.spki.addCert(membership)
    assert.equal(await memberCheck(d, holder.id), 'ok')
    const epoch = d.spki.epoch
    await connect(d, c)
    await waitUntil('D to pull the CRL from C', () => d.spki.crlOf(aId) != null)
    assert.equal(await memberCheck(d, holder.id), 'RevokedCertError')
    assert.ok(d.spki.epoch > epoch)
    assert.equal(rev(d).stats().fetched, 1)
    // a second pull finds nothing new and fetches nothing
    assert.equal(await rev(d).sync(c.peerId), 0)
    await d.stop()
  })

  it('never keeps a CRL from an issuer it does not trust, from gossip or a pull', async () => {
    const stranger = await key()
    const now = Date.now()
    const foreign = await signCrl(
      {
        issuer: stranger.id,
        revoked: [new Uint8Array(32).fill(7)],
        validity: { notBefore: spkiTime(now - 1000), notAfter: spkiTime(now + HOUR) }
      },
      stranger.secret
    )
    assert.equal(rev(b).trusts(stranger.id), false)
    assert.equal(rev(b).trusts(aId), true)
    assert.equal(await validate(b, a.peerId, gossip(foreign)), TopicValidatorResult.Ignore)
    assert.equal(b.spki.crlOf(stranger.id), undefined)
    // A imports the stranger's CRL (cert import): A publishes it, B ignores it
    const ignored = rev(b).stats().ignored
    await a.spki.addCrl(foreign)
    await waitUntil('A to publish the imported CRL', () => rev(a).stats().published === 2)
    await waitUntil('B to ignore it', () => rev(b).stats().ignored > ignored)
    assert.equal(b.spki.crlOf(stranger.id), undefined)
    // and a pull does not fetch it either: B fetches only from issuers it trusts
    assert.equal(await rev(b).sync(a.peerId), 0)
    assert.equal(b.spki.crlOf(stranger.id), undefined)
  })

  it('rejects a forged CRL, ignores a stale or duplicate one, and keeps the newest', async () => {
    const held = b.spki.crlOf(aId)
    assert.ok(held != null)
    // the same CRL dated a second later with the old signature: newer on its face, forged
    const forged: SignedCrl = {
      crl: {
        ...held.crl.crl,
        validity: { ...held.crl.crl.validity, notBefore: later(held.crl.crl.validity.notBefore, 1000) }
      },
      signature: held.crl.signature
    }
    const verified = rev(b).stats().verified
    assert.equal(await validate(b, a.peerId, gossip(forged)), TopicValidatorResult.Reject)
    assert.equal(rev(b).stats().verified, verified + 1)
    // sent again, its remembered outcome answers: no second signature check
    assert.equal(await validate(b, a.peerId, gossip(forged)), TopicValidatorResult.Reject)
    assert.equal(rev(b).stats().verified, verified + 1)
    assert.equal(b.spki.crlOf(aId)?.summary.hash, held.summary.hash)
    // malformed and non-canonical bytes are rejected too
    assert.equal(await validate(b, a.peerId, new Uint8Array([1, 2, 3])), TopicValidatorResult.Reject)
    assert.equal(
      await validate(b, a.peerId, encodeCrlMessage({ v: 1, type: 'crl', crl: new TextEncoder().encode('(3:crl)') })),
      TopicValidatorResult.Reject
    )
    // the CRL already held: a duplicate, ignored
    assert.equal(await validate(b, a.peerId, gossip(held.crl)), TopicValidatorResult.Ignore)

    // A revokes more: B keeps the newer CRL; the older one is then ignored and never replaces it
    const older = held.crl
    const newer = await a.spki.revoke([new Uint8Array(32).fill(9)])
    await waitUntil('B to hold the newer CRL', () => b.spki.crlOf(aId)?.summary.hash === crlHash(newer))
    assert.equal(b.spki.crls().filter(x => x.crl.issuer === aId).length, 1, 'one CRL per issuer')
    assert.equal(await validate(b, a.peerId, gossip(older)), TopicValidatorResult.Ignore)
    await assert.rejects(b.spki.addCrl(older), { name: 'StaleCrlError' })
    assert.equal(b.spki.crlOf(aId)?.summary.hash, crlHash(newer))
    assert.equal(await memberCheck(b, holder.id), 'RevokedCertError')
    // an older CRL signed by A itself, never seen before, is still stale
    const now = Date.now()
    const backdated: Crl = {
      issuer: aId,
      revoked: [],
      validity: { notBefore: spkiTime(now - 60_000), notAfter: spkiTime(now + HOUR) }
    }
    const stale = await signCrl(backdated, seedOf(aKey))
    assert.equal(await validate(b, a.peerId, gossip(stale)), TopicValidatorResult.Ignore)
    assert.equal(b.spki.crlOf(aId)?.summary.hash, crlHash(newer))
  })

  it('bounds a flood of gossip from one peer, and honest CRLs still get through', async () => {
    const victim = await revocationNode({ maxGossipPerMinute: 10 })
    const attacker = await memoryNode()
    nodes.push(victim, attacker)
    await victim.spki.addAclEntry(aId, tag('(cyberspace)'))
    await connect(attacker, victim)
    await connect(a, victim)
    await subscribed(attacker, [victim])
    await subscribed(a, [victim])
    await waitUntil('the victim to pull A’s CRL on connecting', () => victim.spki.crlOf(aId) != null)
    const before = rev(victim).stats()
    // 50 distinct forged CRLs of a trusted issuer, each newer on its face: each would cost a signature check
    const held = (victim.spki.crlOf(aId) as { crl: SignedCrl }).crl
    const FLOOD = 50
    for (let i = 0; i < FLOOD; i++) {
      const forged: SignedCrl = {
        crl: {
          ...held.crl,
          validity: { ...held.crl.validity, notAfter: later(held.crl.validity.notAfter, (i + 1) * 1000) }
        },
        signature: held.signature
      }
      await attacker.pubsub.publish(CRL_TOPIC, gossip(forged))
    }
    await waitUntil(
      'the victim to see the flood',
      () => {
        const s = rev(victim).stats()
        return s.rateLimited - before.rateLimited + (s.rejected - before.rejected) >= FLOOD
      },
      30_000
    )
    const after = rev(victim).stats()
    assert.ok(
      after.verified - before.verified <= 10,
      `at most 10 signature checks, not ${after.verified - before.verified}`
    )
    assert.ok(after.rateLimited - before.rateLimited >= FLOOD - 10)
    // each one checked was refused: forged
    assert.equal(after.rejected - before.rejected, after.verified - before.verified)
    assert.ok(after.verified > before.verified)
    assert.equal(victim.spki.crlOf(aId)?.summary.hash, crlHash(held))
    // A's budget is its own: its next CRL is kept
    const next = await a.spki.revoke([new Uint8Array(32).fill(10)])
    await waitUntil('the victim to keep A’s next CRL', () => victim.spki.crlOf(aId)?.summary.hash === crlHash(next))
  })

  it('answers pulls within a per-peer budget, refuses malformed requests by name and remembers who sent them', async () => {
    const server = await revocationNode({ maxAnswersPerMinute: 3 })
    // every node runs the service; these two make no pulls of their own, so the server's budget
    // for them is spent only by the requests below
    const asker = await revocationNode({ maxSyncsPerMinute: 0 })
    const rude = await revocationNode({ maxSyncsPerMinute: 0 })
    nodes.push(server, asker, rude)
    await connect(asker, server)
    await connect(rude, server)
    const ask = async (from: CyberspaceNode, bytes: Uint8Array): Promise<ReturnType<typeof decodeCrlMessage>> =>
      decodeCrlMessage(
        await requestOnce(from.libp2p.dialProtocol.bind(from.libp2p), server.peerId, CRL_PROTOCOL, bytes, {
          maxBytes: MAX_CRL_MESSAGE_BYTES,
          signal: AbortSignal.timeout(10_000)
        })
      )
    const list = encodeCrlMessage({ v: 1, type: 'list' })
    const answers: string[] = []
    for (let i = 0; i < 5; i++) {
      const answer = await ask(asker, list)
      answers.push(answer.type === 'error' ? answer.name : answer.type)
    }
    assert.deepEqual(answers, ['digest', 'digest', 'digest', 'CrlRateLimitedError', 'CrlRateLimitedError'])
    // a malformed request is refused by name, and the next one from that peer is refused unread
    const bad = await ask(rude, new Uint8Array([0xa1, 0x61, 0x76, 0x02]))
    assert.equal(bad.type === 'error' && bad.name, 'InvalidCrlMessageError')
    const again = await ask(rude, list)
    assert.equal(again.type === 'error' && again.name, 'InvalidCrlMessageError')
    assert.ok(again.type === 'error' && again.message.includes('refused unread'))
    // this node's own pulls are bounded per peer too
    const puller = await revocationNode({ maxSyncsPerMinute: 2 })
    nodes.push(puller)
    await connect(puller, a)
    const results: string[] = []
    for (let i = 0; i < 4; i++) {
      results.push(
        await rev(puller)
          .sync(a.peerId)
          .then(
            () => 'ok',
            (e: Error) => e.name
          )
      )
    }
    // the pull made on connection counts too
    assert.ok(results.filter(r => r === 'CrlRateLimitedError').length >= 2, results.join(', '))
  })
})

describe('the CRL codec', () => {
  it('refuses malformed and oversized messages with InvalidCrlMessageError', () => {
    const bad: unknown[] = [
      { v: 1, type: 'fetch', hashes: [] },
      { v: 1, type: 'fetch', hashes: Array.from({ length: 9 }, () => new Uint8Array(32)) },
      { v: 1, type: 'fetch', hashes: [new Uint8Array(31)] },
      {
        v: 1,
        type: 'digest',
        crls: [{ issuer: 'z6Mk', notBefore: 'x', notAfter: 'y', count: 1, hash: new Uint8Array(32) }]
      },
      { v: 1, type: 'digest', crls: [], extra: 1 },
      { v: 2, type: 'list' },
      { v: 1, type: 'crls', crls: [new Uint8Array(256 * 1024 + 1)] }
    ]
    for (const msg of bad) {
      assert.throws(
        () => encodeCrlMessage(msg as never),
        { name: 'InvalidCrlMessageError' },
        JSON.stringify(msg, (_k, v) => (v instanceof Uint8Array ? v.length : v))
      )
    }
    // a gossip message is not a stream message, and the other way round
    const crl = encodeCrlMessage({ v: 1, type: 'crl', crl: new Uint8Array(10) })
    assert.throws(() => decodeCrlMessage(crl), { name: 'InvalidCrlMessageError' })
    assert.throws(() => decodeCrlGossip(encodeCrlMessage({ v: 1, type: 'list' })), { name: 'InvalidCrlMessageError' })
    assert.throws(() => decodeCrlGossip(new Uint8Array(300 * 1024)), { name: 'InvalidCrlMessageError' })
  })
})

describe('a node keeps one CRL per issuer, the newest', () => {
  it('replaces an older CRL, refuses a stale or expired one, and fires crl:add once per new CRL', async () => {
    const node = await memoryNode()
    try {
      const issuer = await key()
      const now = Date.now()
      const sign = async (notBefore: number, revoked: number, lifetime = HOUR): Promise<SignedCrl> =>
        await signCrl(
          {
            issuer: issuer.id,
            revoked: Array.from({ length: revoked }, (_, i) => new Uint8Array(32).fill(i + 1)),
            validity: { notBefore: spkiTime(notBefore), notAfter: spkiTime(notBefore + lifetime) }
          },
          issuer.secret
        )
      const added: string[] = []
      node.spki.addEventListener('crl:add', e => added.push(e.detail.summary.hash))
      const first = await sign(now - 10_000, 1)
      const second = await sign(now - 5_000, 2)
      await node.spki.addCrl(first)
      await node.spki.addCrl(second)
      assert.deepEqual(node.spki.crls(), [second])
      await node.spki.addCrl(second) // already held: no-op, no event
      await assert.rejects(node.spki.addCrl(first), { name: 'StaleCrlError' })
      await assert.rejects(node.spki.addCrl(await sign(now - 2 * HOUR, 3)), { name: 'StaleCrlError' })
      // an import with a stale CRL keeps nothing of it
      await assert.rejects(node.spki.addAll({ certs: [], crls: [first] }), { name: 'StaleCrlError' })
      // of several of one issuer in one import, the newest counts
      const third = await sign(now - 1_000, 3)
      await node.spki.addAll({ certs: [], crls: [third, await sign(now - 2_000, 2)] })
      assert.deepEqual(node.spki.crls(), [third])
      assert.deepEqual(added, [crlHash(first), crlHash(second), crlHash(third)])
      assert.deepEqual(
        node.spki.crlSummaries().map(s => s.count),
        [3]
      )
      assert.equal(node.spki.crlByHash(crlHash(third)), third)
    } finally {
      await node.stop()
    }
  })
})
