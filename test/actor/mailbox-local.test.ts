/**
 * Local delivery: agents hosted on the same node message each other with the semantics of the
 * network (signature, authority, deduplication, order, backpressure, deadlines) and no network at
 * all — the node has no peers, and no registry record is needed.
 */
import assert from 'node:assert/strict'
import { mailbox } from '../../src/actor/mailbox-service.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import { echo, gate, RecordingAgent, seeded } from './mailbox-fixtures.ts'
import type { Envelope } from '../../protocols/mailbox/codec.ts'
import type { Mailbox, MailboxInit } from '../../src/actor/mailbox-service.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'

const loss: { inbound?: (e: Envelope) => boolean; answer?: (e: Envelope) => boolean } = {}

const settings: MailboxInit = {
  retryDelay: 10,
  maxRetryDelay: 100,
  attemptTimeout: 2000,
  handlerTimeout: 300,
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

describe('mailbox local delivery', function () {
  this.timeout(60_000)
  let root: Key
  let node: CyberspaceNode
  let box: Mailbox
  let alice: RecordingAgent
  let carol: RecordingAgent
  let bob: RecordingAgent

  async function allow(sender: RecordingAgent, recipient: PrincipalId, types: string): Promise<void> {
    await node.spki.addCert(
      await grant(
        root,
        { kind: 'key', principal: sender.principal },
        `(cyberspace (mailbox (send ${recipient} ${types})))`,
        {
          propagate: false
        }
      )
    )
  }

  before(async () => {
    root = await key()
    node = await memoryNode({ services: { mailbox: mailbox(settings) as never } })
    await node.spki.addAclEntry(root.id, tag('(cyberspace)'))
    box = node.libp2p.services.mailbox as Mailbox
    alice = await RecordingAgent.create()
    carol = await RecordingAgent.create()
    bob = await RecordingAgent.create()
    for (const agent of [alice, carol, bob]) box.attach(agent)
    await allow(alice, bob.principal, '(* set ask note order fail slow)')
  })

  beforeEach(() => {
    bob.behaviour = echo
  })

  afterEach(() => {
    loss.inbound = undefined
    loss.answer = undefined
  })

  after(async () => {
    await node.stop()
  })

  it('answers a request between agents of one node without the network', async () => {
    assert.equal(node.peers().length, 0)
    assert.deepEqual(await box.request(alice.principal, bob.principal, 'ask', [1, 2]), { echo: [1, 2], type: 'ask' })
    const receipt = await box.send(alice.principal, bob.principal, 'note', 'hi')
    assert.equal(receipt.local, true)
    assert.equal(bob.handled.at(-1)?.body, 'hi')
    assert.equal(bob.handled.at(-1)?.from, alice.principal)
    assert.equal(node.peers().length, 0)
  })

  it('answers with the value the handler returned, even if the handler changes that object right after', async () => {
    const live = { n: 1, items: ['a'] }
    bob.behaviour = () => {
      // the behaviour goes on changing what it returned while the reply is being signed
      setTimeout(() => {
        live.n = 2
        live.items.push('b')
      }, 0)
      return live
    }
    assert.deepEqual(await box.request(alice.principal, bob.principal, 'ask', null), { n: 1, items: ['a'] })
  })

  it('refuses an unauthorized local sender, and the behaviour never runs', async () => {
    const before = bob.started.length
    await rejects(box.send(carol.principal, bob.principal, 'note', 'sneaky'), 'UnauthorizedSenderError')
    await rejects(box.request(alice.principal, bob.principal, 'shutdown', null), 'UnauthorizedSenderError')
    // bob may not message alice: nothing granted it
    await rejects(box.send(bob.principal, alice.principal, 'note', null), 'UnauthorizedSenderError')
    assert.equal(bob.started.length, before)
    assert.equal(alice.started.length, 0)
  })

  it('delivers a message sent twice under one id once, even concurrently, and keeps going', async () => {
    const before = bob.handled.length
    const g = gate()
    bob.behaviour = async () => await g.wait
    const first = box.send(alice.principal, bob.principal, 'note', 'dup', { id: 'same-id' })
    const second = box.send(alice.principal, bob.principal, 'note', 'dup', { id: 'same-id' })
    const after = box.send(alice.principal, bob.principal, 'note', 'after')
    await waitUntil('bob has the first copy', () => bob.started.at(-1)?.body === 'dup', 10_000, 10)
    g.open()
    await Promise.all([first, second, after])
    await box.send(alice.principal, bob.principal, 'note', 'dup', { id: 'same-id' })
    assert.deepEqual(
      bob.handled.slice(before).map(m => m.body),
      ['dup', 'after']
    )
  })

  it('keeps order under loss of messages and answers', async () => {
    const random = seeded(7)
    const tries = new Map<string, number>()
    let dropped = 0
    const lose = (e: Envelope, tag: string): boolean => {
      if (e.type !== 'order') return false
      const n = tries.get(tag + e.id) ?? 0
      tries.set(tag + e.id, n + 1)
      const drop = n < 2 && random() < 0.35
      if (drop) dropped++
      return drop
    }
    loss.inbound = e => lose(e, 'in ')
    loss.answer = e => lose(e, 'out ')
    const N = 30
    await Promise.all(
      Array.from({ length: N }, async (_, i) => await box.send(alice.principal, bob.principal, 'order', i + 1))
    )
    assert.ok(dropped > 0)
    assert.deepEqual(
      bob.handled.filter(m => m.type === 'order').map(m => m.body),
      Array.from({ length: N }, (_, i) => i + 1)
    )
  })

  it('gives MailboxFullError to the sender that found the mailbox full, and delivers the rest', async () => {
    const g = gate()
    const busy = await RecordingAgent.create(async () => await g.wait, 1)
    box.attach(busy)
    const senders = [alice, carol, await RecordingAgent.create()]
    box.attach(senders[2])
    for (const s of senders) await allow(s, busy.principal, 'work')
    const first = box.send(senders[0].principal, busy.principal, 'work', 1)
    await waitUntil('busy started', () => busy.started.length === 1, 10_000, 10)
    const second = box.send(senders[1].principal, busy.principal, 'work', 2)
    await waitUntil('one waits', () => busy.waiting === 1, 10_000, 10)
    await rejects(box.send(senders[2].principal, busy.principal, 'work', 3), 'MailboxFullError')
    g.open()
    await Promise.all([first, second])
    await box.send(senders[2].principal, busy.principal, 'work', 3)
    assert.deepEqual(
      busy.handled.map(m => m.body),
      [1, 2, 3]
    )
  })

  it('names a behaviour that throws, and answers the same id with the same error without running it again', async () => {
    bob.behaviour = () => {
      throw new TypeError('cannot read the diff')
    }
    const before = bob.started.length
    const err = await rejects(
      box.request(alice.principal, bob.principal, 'fail', null, { id: 'fails-once' }),
      'HandlerFailedError'
    )
    assert.equal((err as Error & { remoteName: string }).remoteName, 'TypeError')
    assert.match(err.message, /cannot read the diff/)
    await rejects(box.request(alice.principal, bob.principal, 'fail', null, { id: 'fails-once' }), 'HandlerFailedError')
    assert.equal(bob.started.length, before + 1)
  })

  it('never lets a behaviour\'s error read as the protocol\'s "try again"', async () => {
    bob.behaviour = () => {
      throw Object.assign(new Error('my own busy'), { name: 'MailboxBusyError' })
    }
    const before = bob.started.length
    const err = await rejects(box.request(alice.principal, bob.principal, 'fail', null), 'HandlerFailedError')
    assert.equal((err as Error & { remoteName: string }).remoteName, 'MailboxBusyError')
    // handled once, not retried
    assert.equal(bob.started.length, before + 1)
  })

  it('answers HandlerTimeoutError when a behaviour misses its deadline, and the next message still flows', async () => {
    const g = gate()
    bob.behaviour = async m => {
      if (m.type === 'slow') await g.wait
      return 'done'
    }
    await rejects(box.request(alice.principal, bob.principal, 'slow', null), 'HandlerTimeoutError')
    const next = box.request(alice.principal, bob.principal, 'ask', 'next')
    g.open()
    assert.equal(await next, 'done')
  })

  it('never delivers a message that waited behind a gap past its expiry; later messages flow', async () => {
    const before = bob.started.length
    // the first message is lost on every attempt, so the second waits behind it until both expire
    // (200 ms is less than the sum of the delays of 8 attempts, 450 ms at least, so the first is pending
    // at its sender until then, and nothing moves the receiver past it)
    loss.inbound = e => e.body === 'lost'
    const lost = box.send(alice.principal, bob.principal, 'note', 'lost', { timeout: 200 })
    const behind = box.send(alice.principal, bob.principal, 'note', 'behind', { timeout: 200 })
    const results = await Promise.allSettled([lost, behind])
    for (const r of results) {
      assert.equal(r.status, 'rejected')
      const name = (r as PromiseRejectedResult).reason.name
      assert.ok(['DeliveryTimeoutError', 'MessageExpiredError'].includes(name), name)
    }
    assert.equal((results[0] as PromiseRejectedResult).reason.name, 'DeliveryTimeoutError')
    loss.inbound = undefined
    await box.send(alice.principal, bob.principal, 'note', 'later')
    assert.deepEqual(
      bob.started.slice(before).map(m => m.body),
      ['later']
    )
  })

  it('with small hold limits, retries what was too far ahead or found no room, and still delivers in order', async () => {
    let firstTry = true
    const small = await memoryNode({
      services: {
        mailbox: mailbox({
          ...settings,
          maxHeld: 2,
          maxHeldTotal: 3,
          // the first message is lost once, so everything after it must wait or be refused
          dropInbound: e => {
            const drop = firstTry && e.body === 1
            if (drop) firstTry = false
            return drop
          }
        }) as never
      }
    })
    try {
      await small.spki.addAclEntry(root.id, tag('(cyberspace)'))
      const smallBox = small.libp2p.services.mailbox as Mailbox
      const to = await RecordingAgent.create()
      smallBox.attach(alice)
      smallBox.attach(to)
      await small.spki.addCert(
        await grant(
          root,
          { kind: 'key', principal: alice.principal },
          `(cyberspace (mailbox (send ${to.principal} note)))`,
          {
            propagate: false
          }
        )
      )
      const N = 12
      await Promise.all(
        Array.from({ length: N }, async (_, i) => await smallBox.send(alice.principal, to.principal, 'note', i + 1))
      )
      assert.equal(firstTry, false)
      assert.deepEqual(
        to.handled.map(m => m.body),
        Array.from({ length: N }, (_, i) => i + 1)
      )
    } finally {
      await small.stop()
    }
  })

  it('stops with its caller: an aborted send rejects with the caller’s reason', async () => {
    const g = gate()
    bob.behaviour = async () => await g.wait
    const controller = new AbortController()
    const sending = box.send(alice.principal, bob.principal, 'note', 'abort me', { signal: controller.signal })
    await waitUntil('bob has it', () => bob.started.at(-1)?.body === 'abort me', 10_000, 10)
    controller.abort(new Error('caller gave up'))
    await assert.rejects(sending, /caller gave up/)
    g.open()
  })
})
