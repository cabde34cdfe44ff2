/**
 * The swarm wire format: exact bytes (CID) of the README's example, the signature over its
 * domain, each type's body, and every way a message can be malformed or too large, each refused
 * with InvalidSwarmMessageError naming the field.
 */
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import {
  decodeSwarmMessage,
  encodeSwarmMessage,
  MAX_DELTA_FIELDS,
  MAX_FIELD_VALUE_BYTES,
  MAX_HANDOFF_STATE_BYTES,
  MAX_OFFER_SKILLS,
  MAX_SWARM_DEPTH,
  MAX_SWARM_MESSAGE_BYTES,
  MAX_SWARM_TTL_MS,
  SWARM_SIGNING_DOMAIN,
  swarmMailboxType,
  swarmSigningBody,
  swarmSubjects,
  swarmTopic,
  swarmTypeOfMailboxType
} from '../../protocols/swarm/codec.ts'
import { principalPublicKey } from '../../src/crypto/principal.ts'
import { seedSigner, verifyAs } from '../../src/crypto/sign.ts'
import type { SwarmMessage, UnsignedSwarmMessage } from '../../protocols/swarm/codec.ts'

const alice = await seedSigner(new Uint8Array(32).fill(1))
const bob = await seedSigner(new Uint8Array(32).fill(2))

const HLC = [1_700_000_000_000, 0] as const
const BASE = {
  v: 1 as const,
  id: '00112233445566778899aabbccddeeff',
  from: alice.principal as string,
  hlc: HLC,
  expires: HLC[0] + 60_000
}

async function signed(message: UnsignedSwarmMessage): Promise<SwarmMessage> {
  return { ...message, sig: await alice.sign(SWARM_SIGNING_DOMAIN, swarmSigningBody(message)) } as SwarmMessage
}

const offer = async (body: unknown = { skills: ['review', 'code'], load: 0.25, capacity: 3 }): Promise<SwarmMessage> =>
  await signed({ ...BASE, type: 'offer', body } as UnsignedSwarmMessage)

/** Bytes of any map, bypassing the encoder's checks: what an attacker sends. */
const raw = (x: unknown): Uint8Array => dagCbor.encode(x)

function refuses(fn: () => unknown, field: string): void {
  assert.throws(fn, (err: Error & { field?: string }) => {
    assert.equal(err.name, 'InvalidSwarmMessageError', `${err.name}: ${err.message}`)
    assert.equal(err.field, field, err.message)
    return true
  })
}

/** Decoding `message` changed by `change` is refused naming `field`. */
async function refusesChanged(
  change: (m: Record<string, unknown>) => void,
  field: string,
  base?: SwarmMessage
): Promise<void> {
  const m = { ...(base ?? (await offer())) } as unknown as Record<string, unknown>
  m.body = structuredClone(m.body)
  change(m)
  refuses(() => decodeSwarmMessage(raw(m)), field)
}

describe('swarm codec', () => {
  it('encodes the README example to fixed bytes, signed by its sender over the swarm domain', async () => {
    const message = await offer()
    const bytes = encodeSwarmMessage(message)
    const cid = CID.createV1(dagCbor.code, await sha256.digest(bytes))
    assert.equal(bytes.length, 259)
    assert.equal(cid.toString(), 'bafyreihemncadun4zvrpcaxbbza7xaljqftleic564ypffnmg2c6hmg3ba')
    assert.deepEqual(decodeSwarmMessage(bytes), message)
    assert.equal(
      await verifyAs(principalPublicKey(alice.principal), SWARM_SIGNING_DOMAIN, swarmSigningBody(message), message.sig),
      true
    )
    // the signature covers the body: another load does not verify
    const changed = { ...message, body: { ...message.body, load: 0.5 } } as SwarmMessage
    assert.equal(
      await verifyAs(principalPublicKey(alice.principal), SWARM_SIGNING_DOMAIN, swarmSigningBody(changed), message.sig),
      false
    )
  })

  it('round-trips every type, with and without its optional fields, and names its subjects', async () => {
    const cases: Array<[UnsignedSwarmMessage, string[]]> = [
      [{ ...BASE, type: 'offer', body: { skills: ['a'], load: 0 } }, ['a']],
      [{ ...BASE, type: 'offer', body: { skills: ['a', 'b:c/d'], load: 1000, capacity: 0 } }, ['a', 'b:c/d']],
      [{ ...BASE, type: 'need', body: { skill: 'rust', urgency: 'critical' } }, ['rust']],
      [
        {
          ...BASE,
          type: 'need',
          body: { skill: 'rust', urgency: 'low', description: 'x'.repeat(4000), board: 'b', item: 'i' }
        },
        ['rust']
      ],
      [{ ...BASE, type: 'request', body: { board: 'release', item: 't1' } }, ['release']],
      [
        { ...BASE, type: 'request', body: { board: 'release', item: 't1', skill: 'go', description: 'do it' } },
        ['release']
      ],
      [
        { ...BASE, type: 'state-delta', body: { entity: 'svc/api', fields: { up: true, n: null, x: { y: [1] } } } },
        ['svc/api']
      ],
      [{ ...BASE, type: 'handoff', to: bob.principal, body: { board: 'b', item: 't1', state: { step: 3 } } }, ['b']],
      [{ ...BASE, type: 'handoff', body: { board: 'b', item: 't1' } }, ['b']]
    ]
    for (const [unsigned, subjects] of cases) {
      const message = await signed(unsigned)
      assert.deepEqual(decodeSwarmMessage(encodeSwarmMessage(message)), message)
      assert.deepEqual(swarmSubjects(message), subjects)
    }
  })

  it('refuses a message with a field too many, too few, or of the wrong kind, naming the field', async () => {
    await refusesChanged(m => {
      m.extra = 1
    }, 'message')
    await refusesChanged(m => {
      delete m.hlc
    }, 'message')
    await refusesChanged(m => {
      m.v = 2
    }, 'v')
    await refusesChanged(m => {
      m.type = 'gossip'
    }, 'type')
    await refusesChanged(m => {
      m.id = 'm1'
    }, 'id')
    await refusesChanged(m => {
      m.id = '00112233445566778899AABBCCDDEEFF'
    }, 'id')
    await refusesChanged(m => {
      m.from = 'alice'
    }, 'from')
    await refusesChanged(m => {
      m.to = m.from
    }, 'to')
    await refusesChanged(m => {
      m.to = 7
    }, 'to')
    await refusesChanged(m => {
      m.hlc = [1, -1]
    }, 'hlc')
    await refusesChanged(m => {
      m.hlc = 1
    }, 'hlc')
    await refusesChanged(m => {
      m.expires = HLC[0]
    }, 'expires')
    await refusesChanged(m => {
      m.expires = HLC[0] + MAX_SWARM_TTL_MS + 1
    }, 'expires')
    await refusesChanged(m => {
      m.sig = new Uint8Array(63)
    }, 'sig')
    await refusesChanged(m => {
      m.body = [1]
    }, 'body')
    await refusesChanged(m => {
      ;(m.body as Record<string, unknown>).owner = 'me'
    }, 'body')
    // at the limit is fine
    const ok = { ...(await offer()), expires: HLC[0] + MAX_SWARM_TTL_MS }
    assert.equal(decodeSwarmMessage(raw(ok)).expires, HLC[0] + MAX_SWARM_TTL_MS)
  })

  it('refuses offers out of their limits', async () => {
    const body = (b: unknown) => (m: Record<string, unknown>) => {
      m.body = b
    }
    await refusesChanged(body({ skills: [], load: 0 }), 'body.skills')
    const skills = Array.from({ length: MAX_OFFER_SKILLS + 1 }, (_, i) => `s${i}`)
    await refusesChanged(body({ skills, load: 0 }), 'body.skills')
    await refusesChanged(body({ skills: ['a', 'a'], load: 0 }), 'body.skills')
    await refusesChanged(body({ skills: ['a', 'two words'], load: 0 }), 'body.skills.1')
    await refusesChanged(body({ skills: ['-a'], load: 0 }), 'body.skills.0')
    await refusesChanged(body({ skills: ['x'.repeat(65)], load: 0 }), 'body.skills.0')
    await refusesChanged(body({ skills: ['a'], load: -0.5 }), 'body.load')
    await refusesChanged(body({ skills: ['a'], load: 1000.5 }), 'body.load')
    await refusesChanged(body({ skills: ['a'], load: '1' }), 'body.load')
    await refusesChanged(body({ skills: ['a'], load: 1, capacity: 1.5 }), 'body.capacity')
    await refusesChanged(body({ skills: ['a'], load: 1, capacity: -1 }), 'body.capacity')
    await refusesChanged(body({ skills: ['a'] }), 'body')
    const full = Array.from({ length: MAX_OFFER_SKILLS }, (_, i) => `s${i}`)
    assert.equal((await offer({ skills: full, load: 0.5 })).type, 'offer')
    assert.deepEqual(
      swarmSubjects(decodeSwarmMessage(encodeSwarmMessage(await offer({ skills: full, load: 0.5 })))),
      full
    )
  })

  it('refuses needs, requests, deltas and handoffs out of their limits', async () => {
    const of = (type: string, b: unknown) => (m: Record<string, unknown>) => {
      m.type = type
      m.body = b
    }
    await refusesChanged(of('need', { skill: 'a', urgency: 'asap' }), 'body.urgency')
    await refusesChanged(of('need', { skill: 'a', urgency: 'low', item: 'i' }), 'body.item')
    await refusesChanged(of('need', { skill: 'a', urgency: 'low', board: 'Bad' }), 'body.board')
    await refusesChanged(of('need', { skill: 'a', urgency: 'low', description: 'x'.repeat(4001) }), 'body.description')
    await refusesChanged(of('request', { board: 'b' }), 'body')
    await refusesChanged(of('request', { board: 'b', item: '/t' }), 'body.item')
    await refusesChanged(of('state-delta', { entity: 'e', fields: {} }), 'body.fields')
    await refusesChanged(of('state-delta', { entity: 'x'.repeat(129), fields: { a: 1 } }), 'body.entity')
    const many = Object.fromEntries(Array.from({ length: MAX_DELTA_FIELDS + 1 }, (_, i) => [`f${i}`, i]))
    await refusesChanged(of('state-delta', { entity: 'e', fields: many }), 'body.fields')
    await refusesChanged(of('state-delta', { entity: 'e', fields: { 'a b': 1 } }), 'body.fields.a b')
    const big = new Uint8Array(MAX_FIELD_VALUE_BYTES)
    await refusesChanged(of('state-delta', { entity: 'e', fields: { blob: big } }), 'body.fields.blob')
    const state = new Uint8Array(MAX_HANDOFF_STATE_BYTES)
    await refusesChanged(of('handoff', { board: 'b', item: 'i', state }), 'body.state')
    await refusesChanged(of('handoff', { board: 'b', item: 'i', to: 'x' }), 'body')
    // at the limits
    const fits = new Uint8Array(MAX_FIELD_VALUE_BYTES - 5)
    const delta = await signed({ ...BASE, type: 'state-delta', body: { entity: 'e', fields: { blob: fits } } })
    assert.deepEqual(decodeSwarmMessage(encodeSwarmMessage(delta)), delta)
  })

  it('refuses a message nested deeper than the limit, larger than the limit, or not dag-cbor', async () => {
    let deep: unknown = 1
    // message (1) → body (2) → fields (3) → value: MAX_SWARM_DEPTH - 3 lists fit, one more does not
    for (let i = 0; i < MAX_SWARM_DEPTH - 2; i++) deep = [deep]
    await refusesChanged(m => {
      m.type = 'state-delta'
      m.body = { entity: 'e', fields: { deep } }
    }, 'message')
    const fitting = await signed({
      ...BASE,
      type: 'state-delta',
      body: { entity: 'e', fields: { deep: (deep as unknown[])[0] } }
    })
    assert.equal(decodeSwarmMessage(encodeSwarmMessage(fitting)).type, 'state-delta')

    // 20 fields of 7 KiB: each within its limit, the whole past 128 KiB
    const fields = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}`, new Uint8Array(7 * 1024)]))
    const large = await signed({ ...BASE, type: 'state-delta', body: { entity: 'e', fields } })
    refuses(() => encodeSwarmMessage(large), 'message')
    const bytes = raw(large)
    assert.ok(bytes.length > MAX_SWARM_MESSAGE_BYTES)
    refuses(() => decodeSwarmMessage(bytes), 'message')

    refuses(() => decodeSwarmMessage(new Uint8Array([0xff, 0x00, 0x01])), 'message')
    refuses(() => decodeSwarmMessage('{}' as unknown as Uint8Array), 'message')
    // a list 100 000 deep in few bytes: refused, not a crash
    const bomb = new Uint8Array(100_000).fill(0x81)
    refuses(() => decodeSwarmMessage(bomb), 'message')
  })

  it('names the topic of a namespace and the mailbox type of a directed message', () => {
    assert.equal(swarmTopic(), '/cyberspace/swarm/1.0.0/default')
    assert.equal(swarmTopic('fleet-1'), '/cyberspace/swarm/1.0.0/fleet-1')
    refuses(() => swarmTopic('Fleet/1'), 'namespace')
    assert.equal(swarmMailboxType('handoff'), 'swarm.handoff')
    assert.equal(swarmTypeOfMailboxType('swarm.state-delta'), 'state-delta')
    assert.equal(swarmTypeOfMailboxType('swarm.gossip'), undefined)
    assert.equal(swarmTypeOfMailboxType('review'), undefined)
  })
})
