/**
 * The mailbox wire format: exact bytes (CID) of a fixed envelope and reply, signatures over the
 * right domain, and every way a frame, an envelope or a reply can be malformed or too large, each
 * refused with a named error before anything else looks at it.
 */
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import {
  checkBody,
  decodeMailboxMessage,
  encodeMailboxMessage,
  envelopeSigningBody,
  MAILBOX_REPLY_SIGNING_DOMAIN,
  MAILBOX_SIGNING_DOMAIN,
  MAX_BODY_BYTES,
  MAX_BODY_DEPTH,
  MAX_MAILBOX_MESSAGE_BYTES,
  MAX_MESSAGE_TTL_MS,
  replySigningBody
} from '../../protocols/mailbox/codec.ts'
import { errorAnswer } from '../../protocols/wire.ts'
import { principalPublicKey } from '../../src/crypto/principal.ts'
import { seedSigner, verifyAs } from '../../src/crypto/sign.ts'
import type { Envelope, Reply, UnsignedEnvelope } from '../../protocols/mailbox/codec.ts'

const alice = await seedSigner(new Uint8Array(32).fill(1))
const bob = await seedSigner(new Uint8Array(32).fill(2))

const UNSIGNED: UnsignedEnvelope = {
  v: 1,
  id: 'm1',
  from: alice.principal,
  to: bob.principal,
  type: 'review',
  session: 's1',
  seq: 1,
  low: 1,
  kind: 'request',
  body: { diff: '+1' },
  sent: 1_700_000_000_000,
  expires: 1_700_000_030_000
}

async function envelope(fields: Partial<UnsignedEnvelope> = {}): Promise<Envelope> {
  const unsigned = { ...UNSIGNED, ...fields }
  return { ...unsigned, sig: await alice.sign(MAILBOX_SIGNING_DOMAIN, envelopeSigningBody(unsigned)) }
}

async function reply(fields: Partial<Reply> = {}): Promise<Reply> {
  const unsigned = {
    v: 1 as const,
    id: 'm1',
    from: bob.principal,
    to: alice.principal,
    kind: 'response' as const,
    body: { verdict: 'ok' } as unknown,
    ...fields
  }
  return { ...unsigned, sig: await bob.sign(MAILBOX_REPLY_SIGNING_DOMAIN, replySigningBody(unsigned)) }
}

const cidOf = async (bytes: Uint8Array): Promise<string> =>
  CID.createV1(dagCbor.code, await sha256.digest(bytes)).toString()

/** A deliver frame whose envelope was changed after `change`, encoded without the codec's checks. */
function raw(env: Record<string, unknown>, change: (e: Record<string, unknown>) => void): Uint8Array {
  const copy = { ...env }
  change(copy)
  return dagCbor.encode({ v: 1, type: 'deliver', envelope: copy })
}

function refused(bytes: Uint8Array, name: string, what: string): void {
  assert.throws(
    () => decodeMailboxMessage(bytes),
    (err: Error) => {
      assert.equal(err.name, name, `${what}: ${err.name} ${err.message}`)
      return true
    },
    what
  )
}

describe('mailbox codec', () => {
  it('encodes a fixed signed envelope and reply to fixed bytes', async () => {
    const env = await envelope()
    const bytes = encodeMailboxMessage({ v: 1, type: 'deliver', envelope: env })
    assert.equal(bytes.length, 305)
    assert.equal(await cidOf(bytes), 'bafyreian345yhvarpflm7pbj2y7dxpdflwwj3qu65ez2tntyxqf5ud3n7e')
    const answer = encodeMailboxMessage({ v: 1, type: 'reply', reply: await reply() })
    assert.equal(answer.length, 240)
    assert.equal(await cidOf(answer), 'bafyreibwrl633k2ket33etx4t73vxtupryg75fsalilyctkirce6qinohu')
    const back = decodeMailboxMessage(bytes)
    assert.equal(back.type, 'deliver')
    assert.deepEqual(back.type === 'deliver' && back.envelope, env)
  })

  it('signs envelopes and replies under their own domains: one never verifies as the other', async () => {
    const env = await envelope()
    const key = principalPublicKey(alice.principal)
    assert.equal(await verifyAs(key, MAILBOX_SIGNING_DOMAIN, envelopeSigningBody(env), env.sig), true)
    assert.equal(await verifyAs(key, MAILBOX_REPLY_SIGNING_DOMAIN, envelopeSigningBody(env), env.sig), false)
    // any changed field breaks the signature
    for (const change of [{ seq: 2 }, { body: { diff: '+2' } }, { to: alice.principal }, { low: 1, seq: 3 }]) {
      const tampered = { ...env, ...change }
      assert.equal(await verifyAs(key, MAILBOX_SIGNING_DOMAIN, envelopeSigningBody(tampered), env.sig), false)
    }
    const r = await reply()
    assert.equal(
      await verifyAs(principalPublicKey(bob.principal), MAILBOX_REPLY_SIGNING_DOMAIN, replySigningBody(r), r.sig),
      true
    )
  })

  it('round-trips an error answer and an ack', async () => {
    const err = errorAnswer(Object.assign(new Error('no'), { name: 'UnauthorizedSenderError' }))
    assert.deepEqual(decodeMailboxMessage(encodeMailboxMessage(err)), err)
    const ack = await reply({ kind: 'ack', body: null })
    const back = decodeMailboxMessage(encodeMailboxMessage({ v: 1, type: 'reply', reply: ack }))
    assert.deepEqual(back.type === 'reply' && back.reply, ack)
  })

  it('refuses frames over the limit before decoding them', () => {
    const big = new Uint8Array(MAX_MAILBOX_MESSAGE_BYTES + 1)
    refused(big, 'MailboxMessageTooLargeError', 'an oversized frame of zeros')
  })

  it('refuses what is not dag-cbor, or not a message of the protocol', () => {
    refused(new Uint8Array([0xff, 0x00, 0x13]), 'InvalidMailboxMessageError', 'garbage')
    refused(new Uint8Array([0x9f]), 'InvalidMailboxMessageError', 'a truncated list')
    refused(dagCbor.encode('hello'), 'InvalidMailboxMessageError', 'a string')
    refused(dagCbor.encode({ v: 2, type: 'deliver', envelope: {} }), 'InvalidMailboxMessageError', 'version 2')
    refused(dagCbor.encode({ v: 1, type: 'gossip' }), 'InvalidMailboxMessageError', 'an unknown type')
    refused(dagCbor.encode({ v: 1, type: 'deliver' }), 'InvalidMailboxMessageError', 'a deliver without envelope')
    refused(
      dagCbor.encode({ v: 1, type: 'error', name: 'Not a word', message: 'x' }),
      'InvalidMailboxMessageError',
      'an error name that is no word'
    )
  })

  it('refuses every malformed envelope field', async () => {
    const env = (await envelope()) as unknown as Record<string, unknown>
    const cases: Array<[string, (e: Record<string, unknown>) => void]> = [
      ['an extra field', e => (e.extra = 1)],
      ['a missing field', e => delete e.low],
      ['envelope version 2', e => (e.v = 2)],
      ['an empty id', e => (e.id = '')],
      ['an id of 65 characters', e => (e.id = 'a'.repeat(65))],
      ['an id with a space', e => (e.id = 'a b')],
      ['a from that is no principal', e => (e.from = '12D3KooWxyz')],
      ['a to that is bytes', e => (e.to = new Uint8Array(34))],
      ['an empty type', e => (e.type = '')],
      ['a type of 129 characters', e => (e.type = 'a'.repeat(129))],
      ['a type with a control character', e => (e.type = 'a\u0000b')],
      ['a type with a space', e => (e.type = 'a b')],
      ['a session of 33 characters', e => (e.session = 'a'.repeat(33))],
      ['seq 0', e => (e.seq = 0)],
      ['a fractional seq', e => (e.seq = 1.5)],
      ['seq past 2^53', e => (e.seq = 2 ** 53)],
      ['low above seq', e => ((e.seq = 2), (e.low = 3))],
      ['low 0', e => (e.low = 0)],
      ['an unknown kind', e => (e.kind = 'tell')],
      ['expires before sent', e => (e.expires = (e.sent as number) - 1)],
      ['expires equal to sent', e => (e.expires = e.sent)],
      ['a life past the limit', e => (e.expires = (e.sent as number) + MAX_MESSAGE_TTL_MS + 1)],
      ['a short signature', e => (e.sig = new Uint8Array(63))],
      ['a signature that is text', e => (e.sig = 'sig')],
      ['a numeric extra field', e => Object.assign(e, { 0: 1 })]
    ]
    for (const [what, change] of cases) refused(raw(env, change), 'InvalidMailboxMessageError', what)
    refused(dagCbor.encode({ v: 1, type: 'deliver', envelope: [1, 2] }), 'InvalidMailboxMessageError', 'a list')
  })

  it('refuses malformed replies, and an ack that carries a body', async () => {
    const good = (await reply()) as unknown as Record<string, unknown>
    const frame = (change: (r: Record<string, unknown>) => void): Uint8Array => {
      const copy = { ...good }
      change(copy)
      return dagCbor.encode({ v: 1, type: 'reply', reply: copy })
    }
    refused(
      frame(r => (r.kind = 'ack')),
      'InvalidMailboxMessageError',
      'an ack with a body'
    )
    refused(
      frame(r => (r.kind = 'done')),
      'InvalidMailboxMessageError',
      'an unknown reply kind'
    )
    refused(
      frame(r => delete r.to),
      'InvalidMailboxMessageError',
      'a reply without to'
    )
    refused(
      frame(r => (r.id = '-x')),
      'InvalidMailboxMessageError',
      'an id that starts with a dash'
    )
  })

  it('bounds the body: depth, and size when encoding', async () => {
    let deep: unknown = 1
    for (let i = 0; i < MAX_BODY_DEPTH; i++) deep = [deep]
    assert.doesNotThrow(() => checkBody(deep))
    const tooDeep = [deep]
    assert.throws(() => checkBody(tooDeep), { name: 'InvalidMailboxMessageError' })
    const env = (await envelope()) as unknown as Record<string, unknown>
    refused(
      raw(env, e => (e.body = tooDeep)),
      'InvalidMailboxMessageError',
      'a body nested too deep'
    )
    // a nesting far deeper than the stack: refused as malformed, the decoder never crashes
    const abyss = new Uint8Array(200_000).fill(0x81)
    refused(abyss, 'InvalidMailboxMessageError', 'a list nested 200 000 deep')
    assert.throws(() => checkBody(new Uint8Array(MAX_BODY_BYTES + 1)), { name: 'MailboxMessageTooLargeError' })
    await assert.rejects(
      async () => {
        encodeMailboxMessage({ v: 1, type: 'deliver', envelope: await envelope({ body: 'x'.repeat(MAX_BODY_BYTES) }) })
      },
      { name: 'MailboxMessageTooLargeError' }
    )
    // a body at the limit fits in a frame
    const fits = MAX_BODY_BYTES - 5
    const bytes = encodeMailboxMessage({
      v: 1,
      type: 'deliver',
      envelope: await envelope({ body: new Uint8Array(fits) })
    })
    assert.ok(bytes.length <= MAX_MAILBOX_MESSAGE_BYTES)
    assert.equal(dagCbor.encode(new Uint8Array(fits)).length, MAX_BODY_BYTES)
  })

  it('refuses a body that is no dag-cbor value when encoding', async () => {
    assert.throws(() => checkBody({ a: undefined }), { name: 'InvalidMailboxMessageError' })
    assert.throws(() => checkBody(() => 1), { name: 'InvalidMailboxMessageError' })
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    assert.throws(() => checkBody(cyclic), { name: 'InvalidMailboxMessageError' })
  })
})
