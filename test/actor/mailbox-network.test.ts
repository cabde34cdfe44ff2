/**
 * The mailbox protocol between two member nodes on the memory transport (agents on each, records
 * in the registry, chains granting mailbox sends held only by the sender's node, so the receiver
 * gets them proven by the connected peer), plus attacker nodes that are not members: request and
 * response, acknowledgement only once handled, names, refusals of unauthorized senders, forged and
 * replayed frames, order under injected loss, backpressure, unknown agents and bad frames.
 */
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import * as dagCbor from '@ipld/dag-cbor'
import {
  decodeMailboxMessage,
  encodeMailboxMessage,
  envelopeSigningBody,
  MAILBOX_PROTOCOL,
  MAILBOX_SIGNING_DOMAIN,
  MAX_BODY_BYTES,
  MAX_MAILBOX_MESSAGE_BYTES
} from '../../protocols/mailbox/codec.ts'
import { mailbox } from '../../src/actor/mailbox-service.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { requestOnce } from '../../src/network/rpc.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, nameCert, tag } from '../spki/fixtures.ts'
import { cardOf, gate, RecordingAgent, seeded } from './mailbox-fixtures.ts'
import type { Envelope, MailboxMessage, UnsignedEnvelope } from '../../protocols/mailbox/codec.ts'
import type { Mailbox, MailboxInit } from '../../src/actor/mailbox-service.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'
import type { SignedCert } from '../../src/spki/cert.ts'
import type { Startable } from '@libp2p/interface'

/** Loss the receiving node's test hooks inject, set per test. */
const loss: { inbound?: (e: Envelope) => boolean; answer?: (e: Envelope) => boolean } = {}

const settings: MailboxInit = {
  retryDelay: 10,
  maxRetryDelay: 100,
  attemptTimeout: 5000,
  maxRefusalsPerMinute: 8,
  dropInbound: e => loss.inbound?.(e) ?? false,
  dropAnswer: e => loss.answer?.(e) ?? false
}

async function rejects(promise: Promise<unknown>, name: string): Promise<Error> {
  let caught: Error | undefined
  await assert.rejects(promise, (err: Error) => {
    assert.equal(err.name, name, `${err.name}: ${err.message}`)
    caught = err
    return true
  })
  return caught as Error
}

/** A frame carrying an envelope signed by `signer` (as `from` unless told otherwise). */
async function frameOf(signer: Signer, fields: Partial<UnsignedEnvelope> & { to: string }): Promise<Uint8Array> {
  const now = Date.now()
  const unsigned: UnsignedEnvelope = {
    v: 1,
    id: `raw-${Math.random().toString(36).slice(2)}`,
    from: signer.principal,
    type: 'note',
    session: `s${Math.random().toString(36).slice(2, 10)}`,
    seq: 1,
    low: 1,
    kind: 'send',
    body: null,
    sent: now,
    expires: now + 30_000,
    ...fields
  }
  const sig = await signer.sign(MAILBOX_SIGNING_DOMAIN, envelopeSigningBody(unsigned))
  return encodeMailboxMessage({ v: 1, type: 'deliver', envelope: { ...unsigned, sig } })
}

/** One raw request over the mailbox protocol from `from` to `to`: the decoded answer. */
async function raw(from: CyberspaceNode, to: CyberspaceNode, bytes: Uint8Array): Promise<MailboxMessage> {
  const answer = await requestOnce(
    async (peer, protocol, o) => await from.libp2p.dialProtocol(peer, protocol, o),
    to.peerId,
    MAILBOX_PROTOCOL,
    bytes,
    { maxBytes: MAX_MAILBOX_MESSAGE_BYTES, signal: AbortSignal.timeout(10_000) }
  )
  return decodeMailboxMessage(answer)
}

function errorName(answer: MailboxMessage): string {
  assert.equal(answer.type, 'error', `expected an error answer, got ${answer.type}`)
  return answer.type === 'error' ? answer.name : ''
}

describe('mailbox protocol between nodes', function () {
  this.timeout(120_000)
  let root: Key
  let a: CyberspaceNode
  let b: CyberspaceNode
  let boxA: Mailbox
  let boxB: Mailbox
  /** On node A: alice (authorized for bob), carol (authorized for nothing). On B: bob. */
  let alice: RecordingAgent
  let carol: RecordingAgent
  let bob: RecordingAgent
  const attackers: CyberspaceNode[] = []
  let memberCerts: SignedCert[] = []

  /** Grants `to` the right to send `types` to `recipient`, held by node A only. */
  async function allow(sender: RecordingAgent, recipient: PrincipalId, types: string): Promise<void> {
    const cert = await grant(
      root,
      { kind: 'key', principal: sender.principal },
      `(cyberspace (mailbox (send ${recipient} ${types})))`,
      { propagate: false }
    )
    await a.spki.addCert(cert)
  }

  /** A node that is no member, connected to B, to attack from. */
  async function attacker(): Promise<CyberspaceNode> {
    const node = await memoryNode({ bootstrap: [b.multiaddrs()[0]] })
    attackers.push(node)
    await waitUntil('the attacker connected', () => node.peers().some(p => p.peerId === b.peerId.toString()))
    return node
  }

  before(async () => {
    root = await key()
    a = await memoryNode({ services: { mailbox: mailbox(settings) as never } })
    b = await memoryNode({ bootstrap: [a.multiaddrs()[0]], services: { mailbox: mailbox(settings) as never } })
    await waitUntil('the nodes connected', () => a.peers().length === 1)
    memberCerts = await Promise.all(
      [a, b].map(
        async n =>
          await grant(root, { kind: 'key', principal: principalFromPeerId(n.peerId) }, '(cyberspace member)', {
            propagate: false
          })
      )
    )
    for (const n of [a, b]) {
      await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
      await n.spki.addAll({ certs: memberCerts, crls: [] })
    }
    boxA = a.libp2p.services.mailbox as Mailbox
    boxB = b.libp2p.services.mailbox as Mailbox
    alice = await RecordingAgent.create()
    carol = await RecordingAgent.create()
    bob = await RecordingAgent.create()
    boxA.attach(alice)
    boxA.attach(carol)
    boxB.attach(bob)
    await a.registry.publish(cardOf('alice'), { privateKey: alice.key })
    await b.registry.publish(cardOf('bob'), { privateKey: bob.key })
    await allow(alice, bob.principal, '(* set ask note order)')
  })

  afterEach(() => {
    loss.inbound = undefined
    loss.answer = undefined
  })

  after(async () => {
    await Promise.all([a, b, ...attackers].map(async n => await n.stop()))
  })

  it('answers a request from an agent on another node with the response of the recipient', async () => {
    const answer = await boxA.request(alice.principal, bob.principal, 'ask', { question: 'why?' })
    assert.deepEqual(answer, { echo: { question: 'why?' }, type: 'ask' })
    const last = bob.handled.at(-1)
    assert.equal(last?.from, alice.principal)
    assert.equal(last?.to, bob.principal)
    assert.equal(last?.request, true)
    assert.deepEqual(last?.body, { question: 'why?' })
  })

  it('acknowledges a one-way send only once the recipient handled it', async () => {
    const g = gate()
    bob.behaviour = async () => {
      await g.wait
    }
    try {
      let acked = false
      const sending = boxA.send(alice.principal, bob.principal, 'note', 'hold on').then(receipt => {
        acked = true
        return receipt
      })
      await waitUntil('bob started on the note', () => bob.started.at(-1)?.body === 'hold on', 20_000, 20)
      // the behaviour has the message and has not finished: no ack yet, however long we look
      for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve))
      assert.equal(acked, false)
      g.open()
      const receipt = await sending
      assert.equal(receipt.to, bob.principal)
      assert.equal(receipt.local, false)
      assert.equal(bob.handled.at(-1)?.body, 'hold on')
      assert.equal(bob.handled.at(-1)?.request, false)
    } finally {
      bob.behaviour = m => ({ echo: m.body, type: m.type })
    }
  })

  it('sends to an SDSI name resolved through the registry', async () => {
    await a.spki.addCert(await nameCert(root, 'reviewer', { kind: 'key', principal: bob.principal }))
    const answer = await boxA.request(alice.principal, `${root.id}'s reviewer`, 'ask', 'by name')
    assert.deepEqual(answer, { echo: 'by name', type: 'ask' })
    const receipt = await boxA.send(alice.principal, `${root.id}'s reviewer`, 'note', 'by name too')
    assert.equal(receipt.to, bob.principal)
    await rejects(boxA.send(alice.principal, `${root.id}'s nobody`, 'note', null), 'UnknownAgentError')
  })

  it('refuses an unauthorized sender with a named error, and the behaviour never runs', async () => {
    const before = bob.started.length
    const err = await rejects(boxA.send(carol.principal, bob.principal, 'note', 'let me in'), 'UnauthorizedSenderError')
    assert.match(err.message, /may not send note/)
    // alice may send some types, not this one
    await rejects(boxA.request(alice.principal, bob.principal, 'delete', 'everything'), 'UnauthorizedSenderError')
    // asked again: the refusal is remembered, and still named
    await rejects(boxA.send(carol.principal, bob.principal, 'note', 'again'), 'UnauthorizedSenderError')
    assert.equal(bob.started.length, before)
    assert.ok(!bob.started.some(m => m.from === carol.principal || m.type === 'delete'))
  })

  it('refuses a forged or tampered envelope before the agent sees it', async () => {
    const mallory = await attacker()
    const before = bob.started.length
    // signed by another key while claiming to be alice
    const impostor = await seedSigner((await generateKeyPair('Ed25519')).raw)
    const forged = await frameOf(
      { principal: alice.principal, sign: async (d, body) => await impostor.sign(d, body) },
      { to: bob.principal, body: 'pay mallory' }
    )
    assert.equal(errorName(await raw(mallory, b, forged)), 'MessageSignatureError')
    // signed by alice, then the body changed
    const genuine = decodeMailboxMessage(await frameOf(alice.signer, { to: bob.principal, body: 'pay bob' }))
    assert.equal(genuine.type, 'deliver')
    if (genuine.type !== 'deliver') return
    const tampered = encodeMailboxMessage({ ...genuine, envelope: { ...genuine.envelope, body: 'pay mallory' } })
    assert.equal(errorName(await raw(mallory, b, tampered)), 'MessageSignatureError')
    assert.equal(bob.started.length, before)
  })

  it('delivers a replayed message once and answers every copy with the same signed ack', async () => {
    const mallory = await attacker()
    const before = bob.handled.length
    const frame = await frameOf(alice.signer, { to: bob.principal, type: 'note', body: 'once only' })
    // alice's node sends it (and proves alice's chain); then the same bytes again, from it and from a stranger
    const first = await raw(a, b, frame)
    assert.equal(first.type, 'reply')
    const again = await raw(a, b, frame)
    const replayed = await raw(mallory, b, frame)
    assert.deepEqual(again, first)
    assert.deepEqual(replayed, first)
    assert.equal(bob.handled.length, before + 1)
    assert.equal(bob.handled.filter(m => m.body === 'once only').length, 1)
    // the same id through the API (a caller retrying after a restart, say): delivered once too
    const twice = { id: 'idempotent-1' }
    await boxA.send(alice.principal, bob.principal, 'note', 'idempotent', twice)
    await boxA.send(alice.principal, bob.principal, 'note', 'idempotent', twice)
    assert.equal(bob.handled.filter(m => m.body === 'idempotent').length, 1)
  })

  it('keeps per-sender order under loss: the handler sees 1..N in order, each once', async () => {
    const random = seeded(14)
    const seen = new Map<string, number>()
    let droppedMessages = 0
    let droppedAnswers = 0
    // each message and each answer is lost with probability 0.3 on its first two tries
    loss.inbound = e => {
      if (e.type !== 'order') return false
      const n = seen.get(e.id) ?? 0
      seen.set(e.id, n + 1)
      const drop = n < 2 && random() < 0.3
      if (drop) droppedMessages++
      return drop
    }
    const answered = new Map<string, number>()
    loss.answer = e => {
      if (e.type !== 'order') return false
      const n = answered.get(e.id) ?? 0
      answered.set(e.id, n + 1)
      const drop = n < 2 && random() < 0.3
      if (drop) droppedAnswers++
      return drop
    }
    // fewer messages than the receiver's 32 in-flight slots per peer: more, with every one retrying under this
    // much loss, exhaust them (retries bypass the sender's per-host gate), which is a known limit, not this test's claim;
    // 24 still met the receiver's per-peer rate limit once on a loaded CI machine (8 attempts refused)
    const N = 16
    const receipts = await Promise.all(
      Array.from({ length: N }, async (_, i) => await boxA.send(alice.principal, bob.principal, 'order', i + 1))
    )
    assert.equal(receipts.length, N)
    assert.ok(droppedMessages > 0 && droppedAnswers > 0, `loss was injected (${droppedMessages}, ${droppedAnswers})`)
    const bodies = bob.handled.filter(m => m.type === 'order').map(m => m.body)
    assert.deepEqual(
      bodies,
      Array.from({ length: N }, (_, i) => i + 1)
    )
  })

  it('gives the sender MailboxFullError when the recipient is full, and loses nothing', async () => {
    const g = gate()
    const busy = await RecordingAgent.create(async () => await g.wait, 1)
    boxB.attach(busy)
    await b.registry.publish(cardOf('busy'), { privateKey: busy.key })
    const senders = [alice, carol, await RecordingAgent.create()]
    boxA.attach(senders[2])
    for (const s of senders) await allow(s, busy.principal, 'work')
    const first = boxA.send(senders[0].principal, busy.principal, 'work', 'first')
    await waitUntil('busy started the first', () => busy.started.length === 1, 20_000, 20)
    const second = boxA.send(senders[1].principal, busy.principal, 'work', 'second')
    await waitUntil('the second waits in the mailbox', () => busy.waiting === 1, 20_000, 20)
    const full = await rejects(boxA.send(senders[2].principal, busy.principal, 'work', 'third'), 'MailboxFullError')
    assert.match(full.message, /full/)
    g.open()
    await Promise.all([first, second])
    assert.deepEqual(
      busy.handled.map(m => m.body),
      ['first', 'second']
    )
    // the refused sender knows, and sends again once there is room
    await boxA.send(senders[2].principal, busy.principal, 'work', 'third')
    assert.deepEqual(
      busy.handled.map(m => m.body),
      ['first', 'second', 'third']
    )
  })

  it('names an unknown agent, and an agent its record places on a node that does not host it', async () => {
    const stranger = await seedSigner((await generateKeyPair('Ed25519')).raw)
    await rejects(boxA.send(alice.principal, stranger.principal, 'note', null), 'UnknownAgentError')
    const ghostKey = await generateKeyPair('Ed25519')
    await b.registry.publish(cardOf('ghost'), { privateKey: ghostKey })
    const ghost = (await seedSigner(ghostKey.raw)).principal
    await rejects(boxA.send(alice.principal, ghost, 'note', null), 'AgentNotHostedError')
    // the sending agent must be hosted here
    await rejects(boxA.send(bob.principal, alice.principal, 'note', null), 'SenderNotHostedError')
  })

  it('refuses a message too far ahead, and never hands on one its sender settled before its turn', async () => {
    const session = 'gap-test'
    const frame = async (seq: number, low: number, body: string): Promise<Uint8Array> =>
      await frameOf(alice.signer, { to: bob.principal, session, seq, low, body })
    // seq 1 never arrives; seq 2 waits for it (or, should it arrive after seq 3, finds its turn gone)
    const waiting = raw(a, b, await frame(2, 1, 'two'))
    assert.equal(errorName(await raw(a, b, await frame(100, 1, 'far ahead'))), 'SequenceGapError')
    // the sender says 1 and 2 are settled (it gave them up): 3 is next, and 2 is never handed on
    const third = await raw(a, b, await frame(3, 3, 'three'))
    assert.equal(third.type, 'reply')
    assert.equal(errorName(await waiting), 'DuplicateMessageError')
    const bodies = bob.started.map(m => m.body)
    assert.ok(bodies.includes('three'))
    assert.ok(!bodies.includes('two') && !bodies.includes('far ahead'))
  })

  it('starts a new session when the sender restarts, delivered in order from its first message', async () => {
    for (let i = 1; i <= 3; i++) await boxA.send(alice.principal, bob.principal, 'order', `before restart ${i}`)
    const service = boxA as unknown as Startable
    await service.stop()
    await service.start()
    await Promise.all(
      [1, 2, 3].map(async i => await boxA.send(alice.principal, bob.principal, 'order', `after restart ${i}`))
    )
    assert.deepEqual(
      bob.handled.map(m => m.body).filter(body => typeof body === 'string' && body.includes('restart')),
      [1, 2, 3].map(i => `before restart ${i}`).concat([1, 2, 3].map(i => `after restart ${i}`))
    )
  })

  it('follows a recipient that moved to another node: the old host says so, the record says where', async () => {
    const c = await memoryNode({ bootstrap: [a.multiaddrs()[0]], services: { mailbox: mailbox(settings) as never } })
    attackers.push(c)
    const member = await grant(root, { kind: 'key', principal: principalFromPeerId(c.peerId) }, '(cyberspace member)', {
      propagate: false
    })
    await c.spki.addAclEntry(root.id, tag('(cyberspace)'))
    for (const n of [a, b, c]) await n.spki.addAll({ certs: [member, ...memberCerts], crls: [] })
    await waitUntil('c connected to a', () => c.peers().some(p => p.peerId === a.peerId.toString()))
    // A knows bob is at B (its route is cached)
    await boxA.send(alice.principal, bob.principal, 'note', 'to bob at b')
    // bob moves: B stops hosting it and withdraws its record; C hosts it and publishes a newer one
    boxB.detach(bob.principal)
    await b.registry.unpublish(bob.principal)
    const boxC = c.libp2p.services.mailbox as Mailbox
    boxC.attach(bob)
    await c.registry.publish(cardOf('bob'), { privateKey: bob.key })
    try {
      const answer = await boxA.request(alice.principal, bob.principal, 'ask', 'where are you now?')
      assert.deepEqual(answer, { echo: 'where are you now?', type: 'ask' })
      assert.equal(bob.handled.at(-1)?.body, 'where are you now?')
    } finally {
      boxC.detach(bob.principal)
      boxB.attach(bob)
      await b.registry.publish(cardOf('bob'), { privateKey: bob.key })
    }
  })

  it('refuses oversized, malformed and expired frames', async () => {
    const mallory = await attacker()
    const before = bob.started.length
    assert.equal(errorName(await raw(mallory, b, new Uint8Array([0xff, 0xfe, 0xfd]))), 'InvalidMailboxMessageError')
    assert.equal(
      errorName(await raw(mallory, b, dagCbor.encode({ v: 1, type: 'reply', reply: {} }))),
      'InvalidMailboxMessageError'
    )
    // a frame over the limit is never read: the stream is reset
    await assert.rejects(raw(mallory, b, new Uint8Array(MAX_MAILBOX_MESSAGE_BYTES + 1)))
    const old = Date.now() - 60_000
    const expired = await frameOf(alice.signer, { to: bob.principal, sent: old, expires: old + 1000 })
    assert.equal(errorName(await raw(mallory, b, expired)), 'MessageExpiredError')
    const future = Date.now() + 5 * 60_000
    const early = await frameOf(alice.signer, { to: bob.principal, sent: future, expires: future + 1000 })
    assert.equal(errorName(await raw(mallory, b, early)), 'MessageExpiredError')
    assert.equal(bob.started.length, before)
    // a body over the limit never leaves the sender
    await rejects(
      boxA.send(alice.principal, bob.principal, 'note', new Uint8Array(MAX_BODY_BYTES + 1)),
      'MailboxMessageTooLargeError'
    )
  })

  it('refuses a peer whose messages keep being refused without decoding what it sends', async () => {
    const mallory = await attacker()
    const names: string[] = []
    for (let i = 0; i < 12; i++) names.push(errorName(await raw(mallory, b, new Uint8Array([0xff]))))
    assert.equal(names[0], 'InvalidMailboxMessageError')
    assert.equal(names.at(-1), 'MailboxRateLimitedError')
    // now even a well-formed, authorized frame from it is refused undecoded
    const frame = await frameOf(alice.signer, { to: bob.principal, body: 'from a cooled peer' })
    assert.equal(errorName(await raw(mallory, b, frame)), 'MailboxRateLimitedError')
    assert.ok(!bob.started.some(m => m.body === 'from a cooled peer'))
    // node A's traffic is unaffected
    assert.deepEqual(await boxA.request(alice.principal, bob.principal, 'ask', 'still there?'), {
      echo: 'still there?',
      type: 'ask'
    })
  })
})
