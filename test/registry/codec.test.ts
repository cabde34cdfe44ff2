/**
 * The agent record format: exact bytes and CID for a fixed record, the card rules, and every way
 * a record or a registry message can be malformed, each refused with a named error.
 */
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { sha256 } from '@noble/hashes/sha2.js'
import { base16 } from 'multiformats/bases/base16'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import {
  AGENT_HOST_SIGNING_DOMAIN,
  AGENT_SIGNING_DOMAIN,
  agentKey,
  agentKeyHash,
  agentSigningBody,
  CARD_LIMITS,
  checkAgentCard,
  decodeAgentRecord,
  decodeRegistryMessage,
  encodeAgentRecord,
  encodeRegistryMessage,
  libp2pInterface,
  LIBP2P_BINDING,
  MAX_AGENT_RECORD_BYTES,
  MAX_LIST_RECORDS,
  MAX_REGISTRY_MESSAGE_BYTES,
  SHARD_EXTENSION_URI,
  shardExtension,
  shardOfCard,
  skillCid
} from '../../protocols/registry/codec.ts'
import { peerIdFromPrincipal } from '../../src/crypto/principal.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { keyHash } from '../../src/spki/cert.ts'
import {
  agentRecordValidator,
  SeenRecords,
  selectAgentRecord,
  signAgentRecord,
  validateAgentRecord,
  verifyAgentRecord
} from '../../src/registry/record.ts'
import type { AgentCard, AgentRecord, RegistryMessage } from '../../protocols/registry/codec.ts'
import type { Signer } from '../../src/crypto/sign.ts'

/** The host of the fixed records: the Ed25519 key of seed 32 × 0x03, its peer id. */
const hostKey = await seedSigner(new Uint8Array(32).fill(3))
const HOST = peerIdFromPrincipal(hostKey.principal).toString()
/** A fixed expiry (2096); the fixed record is verified at a clock just before it. */
const EXPIRES = 4_000_000_000_000

function card(agent: string, extra: Partial<AgentCard> = {}): AgentCard {
  return {
    name: 'reviewer',
    description: 'Reviews code changes',
    version: '1.0.0',
    supportedInterfaces: [libp2pInterface(HOST, agent)],
    capabilities: { streaming: false },
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: [{ id: 'code-review', name: 'Code review', description: 'Reviews a diff', tags: ['review', 'typescript'] }],
    ...extra
  }
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

async function signed(
  signer: Signer,
  fields: Partial<{ seq: number; expires: number; card: AgentCard; host: Signer }> = {}
): Promise<Uint8Array> {
  const { bytes } = await signAgentRecord(signer, fields.host ?? hostKey, {
    addrs: ['/ip4/127.0.0.1/tcp/4101'],
    seq: fields.seq ?? 1,
    expires: fields.expires ?? Date.now() + 60_000,
    card: fields.card ?? card(signer.principal)
  })
  return bytes
}

/** Re-encodes a decoded record after `change`, keeping the (now stale) signature. */
function tampered(bytes: Uint8Array, change: (r: Record<string, unknown>) => void): Uint8Array {
  const record = dagCbor.decode(bytes) as Record<string, unknown>
  change(record)
  return dagCbor.encode(record)
}

async function rejects(promise: Promise<unknown>, name: string): Promise<void> {
  await assert.rejects(promise, (err: Error) => {
    assert.equal(err.name, name, err.message)
    return true
  })
}

describe('agent records: format, limits and validation', () => {
  let alice: Signer
  let bob: Signer

  before(async () => {
    alice = await seedSigner(new Uint8Array(32).fill(1))
    bob = await seedSigner(new Uint8Array(32).fill(2))
  })

  it('encodes a fixed record to fixed bytes and CID, and the key is the SPKI key hash', async () => {
    const bytes = await signed(alice, { seq: 5, expires: EXPIRES })
    const cid = CID.createV1(dagCbor.code, Digest.create(0x12, sha256(bytes)))
    assert.equal(alice.principal, 'z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX')
    assert.equal(HOST, '12D3KooWRndVhVZPCiQwHBBBdg769GyrPUW13zxwqQyf9r3ANaba')
    assert.equal(agentKey(alice.principal), `/cyberspace-agent/${base16.baseEncode(keyHash(alice.principal))}`)
    assert.deepEqual(agentKeyHash(alice.principal), keyHash(alice.principal))
    assert.equal(
      agentKey(alice.principal),
      '/cyberspace-agent/b9edfaa53155222d5a8114a9529ddec2de4b83a2244d220addcb06048526d92a'
    )
    assert.equal(bytes.length, 762)
    assert.equal(cid.toString(), 'bafyreid2sguh7mj4qxc3uw3bisix4w5dnada6avbwrdngfx674bv7afl7u')
    assert.equal(skillCid('Code-Review ').toString(), skillCid('code-review').toString())
    assert.equal(skillCid('code-review').toString(), 'bafkreibar5q34boqamhmsa7r6n2y2tm3rpzeek6szfwuy2ge46i4dgxvay')
    const view = await verifyAgentRecord(agentKey(alice.principal), bytes, { now: EXPIRES - 60_000 })
    assert.equal(view.seq, 5)
    assert.equal(view.agent, alice.principal)
    assert.deepEqual(view.card.supportedInterfaces[0], {
      url: `libp2p://${HOST}/${alice.principal}`,
      protocolBinding: LIBP2P_BINDING,
      protocolVersion: '1.0'
    })
  })

  it('refuses cards that break the rules, naming the field', () => {
    const good = card(alice.principal)
    const bad: Array<[string, unknown]> = [
      ['not a map', 'card'],
      ['unknown field', { ...good, securitySchemes: {} }],
      ['missing skills', { ...good, skills: undefined }],
      ['empty name', { ...good, name: '' }],
      ['control characters', { ...good, name: 'a\u0000b' }],
      ['name too long', { ...good, name: 'x'.repeat(CARD_LIMITS.name + 1) }],
      [
        'too many skills',
        {
          ...good,
          skills: Array.from({ length: CARD_LIMITS.skills + 1 }, (_, i) => ({
            ...good.skills[0],
            id: `s${i}`,
            tags: []
          }))
        }
      ],
      [
        'too many tags',
        {
          ...good,
          skills: [{ ...good.skills[0], tags: Array.from({ length: CARD_LIMITS.tags + 1 }, (_, i) => `t${i}`) }]
        }
      ],
      ['a skill id twice', { ...good, skills: [good.skills[0], good.skills[0]] }],
      ['a boolean capability as text', { ...good, capabilities: { streaming: 'yes' } }],
      ['an extension without a uri', { ...good, capabilities: { extensions: [{ params: {} }] } }],
      [
        'an extension param that is not text',
        { ...good, capabilities: { extensions: [{ uri: 'u', params: { a: 1 } }] } }
      ],
      [
        'too many extensions',
        {
          ...good,
          capabilities: { extensions: Array.from({ length: CARD_LIMITS.extensions + 1 }, (_, i) => ({ uri: `u${i}` })) }
        }
      ],
      [
        'too many extension params',
        {
          ...good,
          capabilities: {
            extensions: [{ uri: 'u', params: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }]
          }
        }
      ],
      ['no interfaces', { ...good, supportedInterfaces: [] }],
      [
        'too many skill keys',
        {
          ...good,
          skills: Array.from({ length: 3 }, (_, i) => ({
            ...good.skills[0],
            id: `s${i}`,
            tags: Array.from({ length: 12 }, (_, j) => `t${i}-${j}`)
          }))
        }
      ]
    ]
    for (const [what, value] of bad) {
      assert.throws(() => checkAgentCard(value), { name: 'InvalidAgentCardError' }, what)
    }
  })

  it('a card says its shard through the shard extension, and keeps it through a check', () => {
    const shard = { type: 'replica' as const, scope: 'workload:build' }
    const withShard = checkAgentCard({
      ...card(alice.principal),
      capabilities: { extensions: [shardExtension(shard)] }
    })
    assert.deepEqual(shardOfCard(withShard), shard)
    assert.equal(shardOfCard(card(alice.principal)), undefined)
    const unknownType = {
      ...withShard,
      capabilities: { extensions: [{ uri: SHARD_EXTENSION_URI, params: { type: 'moon' } }] }
    }
    assert.equal(shardOfCard(checkAgentCard(unknownType)), undefined)
  })

  it('refuses malformed records with named errors', async () => {
    const key = agentKey(alice.principal)
    const bytes = await signed(alice)
    await rejects(verifyAgentRecord(key, utf8('not cbor at all')), 'InvalidAgentRecordError')
    await rejects(verifyAgentRecord(key, dagCbor.encode([1, 2, 3])), 'InvalidAgentRecordError')
    await rejects(
      verifyAgentRecord(
        key,
        tampered(bytes, r => (r.extra = 1))
      ),
      'InvalidAgentRecordError'
    )
    await rejects(
      verifyAgentRecord(
        key,
        tampered(bytes, r => (r.v = 2))
      ),
      'InvalidAgentRecordError'
    )
    await rejects(
      verifyAgentRecord(
        key,
        tampered(bytes, r => (r.seq = -1))
      ),
      'InvalidAgentRecordError'
    )
    await rejects(
      verifyAgentRecord(
        key,
        tampered(bytes, r => (r.sig = new Uint8Array(10)))
      ),
      'InvalidAgentRecordError'
    )
    await rejects(
      verifyAgentRecord(
        key,
        tampered(bytes, r => (r.hostSig = new Uint8Array(65)))
      ),
      'InvalidAgentRecordError'
    )
    await rejects(
      verifyAgentRecord(
        key,
        tampered(bytes, r => delete r.hostSig)
      ),
      'InvalidAgentRecordError'
    )
    await rejects(
      verifyAgentRecord(
        key,
        tampered(bytes, r => (r.addrs = ['not-a-multiaddr']))
      ),
      'InvalidAgentRecordError'
    )
    await rejects(
      verifyAgentRecord(
        key,
        tampered(bytes, r => (r.addrs = ['/ip4/nope']))
      ),
      'InvalidAgentRecordError'
    )
    await rejects(
      verifyAgentRecord(
        key,
        tampered(bytes, r => (r.host = 'QmNotAnEd25519PeerId'))
      ),
      'InvalidAgentRecordError'
    )
    await rejects(verifyAgentRecord('/cyberspace-agent/zz', bytes), 'InvalidAgentRecordError')
    await rejects(verifyAgentRecord('/cyberspace-value/x/y', bytes), 'InvalidAgentRecordError')
    // a libp2p interface must name this record's host and agent
    await rejects(
      signed(alice, { card: card(alice.principal, { supportedInterfaces: [libp2pInterface(HOST, bob.principal)] }) }),
      'InvalidAgentRecordError'
    )
  })

  it('refuses a forged record: a changed field, another key, or a record under another agent key', async () => {
    const key = agentKey(alice.principal)
    const bytes = await signed(alice)
    await rejects(
      verifyAgentRecord(
        key,
        tampered(bytes, r => (r.seq = 99))
      ),
      'AgentRecordSignatureError'
    )
    await rejects(
      verifyAgentRecord(
        key,
        tampered(bytes, r => ((r.card as AgentCard).description = 'evil'))
      ),
      'AgentRecordSignatureError'
    )
    // bob signs a record that names alice as its agent
    const bobs = dagCbor.decode(await signed(bob)) as AgentRecord
    const forged = dagCbor.encode({ ...bobs, agent: alice.principal, card: card(alice.principal) })
    await rejects(verifyAgentRecord(key, forged), 'AgentRecordSignatureError')
    // alice signs a record naming HOST, and the host's part herself: the host never agreed
    const own = dagCbor.decode(bytes) as AgentRecord
    const unsigned = {
      v: own.v,
      agent: own.agent,
      host: own.host,
      addrs: own.addrs,
      seq: own.seq,
      expires: own.expires,
      card: own.card
    }
    const body = agentSigningBody(key, unsigned)
    const unagreed = encodeAgentRecord({
      ...unsigned,
      sig: await alice.sign(AGENT_SIGNING_DOMAIN, body),
      hostSig: await alice.sign(AGENT_HOST_SIGNING_DOMAIN, body)
    })
    await rejects(verifyAgentRecord(key, unagreed), 'AgentRecordSignatureError')
    // the host's signature under the agent's domain is no countersignature
    const crossed = encodeAgentRecord({
      ...unsigned,
      sig: own.sig,
      hostSig: await hostKey.sign(AGENT_SIGNING_DOMAIN, body)
    })
    await rejects(verifyAgentRecord(key, crossed), 'AgentRecordSignatureError')
    // bob's own, valid record stored under alice's key
    await rejects(verifyAgentRecord(key, await signed(bob)), 'InvalidAgentRecordError')
    await rejects(Promise.resolve(validateAgentRecord(utf8(key), forged)), 'AgentRecordSignatureError')
  })

  it('refuses expired records and records claiming too long a life', async () => {
    const key = agentKey(alice.principal)
    await rejects(verifyAgentRecord(key, await signed(alice, { expires: Date.now() - 1 })), 'AgentRecordExpiredError')
    const now = Date.now()
    await rejects(
      verifyAgentRecord(key, await signed(alice, { expires: now + 60_000 }), { now: now + 60_000 }),
      'AgentRecordExpiredError'
    )
    await rejects(
      verifyAgentRecord(key, await signed(alice, { expires: now + 30 * 24 * 3_600_000 })),
      'InvalidAgentRecordError'
    )
  })

  it('refuses an oversized card at signing and an oversized record at decoding', async () => {
    const long = 'x'.repeat(CARD_LIMITS.example)
    const big = card(alice.principal, {
      skills: Array.from({ length: 8 }, (_, i) => ({
        id: `skill-${i}`,
        name: 'n',
        description: 'd'.repeat(CARD_LIMITS.skillDescription),
        tags: [],
        examples: Array.from({ length: 4 }, () => long)
      }))
    })
    await rejects(signed(alice, { card: big }), 'AgentCardTooLargeError')
    const padded = tampered(
      await signed(alice),
      r => ((r.card as AgentCard).description = 'y'.repeat(MAX_AGENT_RECORD_BYTES))
    )
    assert.throws(() => decodeAgentRecord(padded), { name: 'AgentCardTooLargeError' })
    await rejects(
      Promise.resolve(validateAgentRecord(utf8(agentKey(alice.principal)), padded)),
      'AgentCardTooLargeError'
    )
    assert.throws(() => encodeAgentRecord(dagCbor.decode(padded) as AgentRecord), { name: 'InvalidAgentCardError' })
  })

  it('selects the highest valid seq; forged, expired and undecodable records never win', async () => {
    const key = utf8(agentKey(alice.principal))
    const old = await signed(alice, { seq: 3 })
    const current = await signed(alice, { seq: 5 })
    const forged = tampered(current, r => (r.seq = 9))
    const expired = await signed(alice, { seq: 8, expires: Date.now() - 1 })
    assert.equal(await selectAgentRecord(key, [old, current]), 1)
    assert.equal(await selectAgentRecord(key, [current, old]), 0)
    assert.equal(await selectAgentRecord(key, [forged, old, utf8('junk'), expired, current]), 4)
    await rejects(
      Promise.resolve().then(async () => await selectAgentRecord(key, [forged, expired])),
      'InvalidAgentRecordError'
    )
  })

  it('a remembering validator refuses a record older than one it validated, until that one expires', async () => {
    let now = Date.now()
    const seen = new SeenRecords({ now: () => now })
    const validate = agentRecordValidator(seen)
    const key = utf8(agentKey(alice.principal))
    await validate(key, await signed(alice, { seq: 5, expires: now + 2000 }))
    await rejects(Promise.resolve(validate(key, await signed(alice, { seq: 3 }))), 'StaleAgentRecordError')
    await validate(key, await signed(alice, { seq: 5, expires: now + 2000 }))
    await validate(key, await signed(alice, { seq: 6 }))
    await rejects(Promise.resolve(validate(key, await signed(alice, { seq: 5 }))), 'StaleAgentRecordError')
    // another agent's key is independent
    await validate(utf8(agentKey(bob.principal)), await signed(bob, { seq: 1 }))
    now += 120_000
    assert.equal(seen.seq(agentKey(alice.principal)), undefined)
  })

  it('registry messages: round trip, and malformed or oversized ones refused', () => {
    const list = { v: 1, type: 'list', skill: 'review' } as const
    assert.deepEqual(decodeRegistryMessage(encodeRegistryMessage(list)), list)
    const names: RegistryMessage = {
      v: 1,
      type: 'names',
      issuer: 'z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX',
      names: ['reviewer']
    } as const
    assert.deepEqual(decodeRegistryMessage(encodeRegistryMessage(names)), names)
    const bad: unknown[] = [
      { v: 2, type: 'list', skill: 'x' },
      { v: 1, type: 'list', skill: '' },
      { v: 1, type: 'list', skill: 'x', extra: 1 },
      { v: 1, type: 'nope' },
      { v: 1, type: 'records', records: Array.from({ length: MAX_LIST_RECORDS + 1 }, () => new Uint8Array(1)) },
      { v: 1, type: 'records', records: [new Uint8Array(0)] },
      { v: 1, type: 'names', issuer: 'z6Mk', names: [] },
      { v: 1, type: 'names', issuer: 'z6Mk', names: ["it's"] },
      { v: 1, type: 'error', name: 'Not A Word', message: 'x' }
    ]
    for (const m of bad) {
      assert.throws(
        () => decodeRegistryMessage(dagCbor.encode(m)),
        { name: 'InvalidRegistryMessageError' },
        JSON.stringify(m)
      )
    }
    assert.throws(() => decodeRegistryMessage(new Uint8Array(MAX_REGISTRY_MESSAGE_BYTES + 1)), {
      name: 'InvalidRegistryMessageError'
    })
    assert.throws(() => decodeRegistryMessage(utf8('junk')), { name: 'InvalidRegistryMessageError' })
  })
})
