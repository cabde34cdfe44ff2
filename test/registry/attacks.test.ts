/**
 * The agent registry against a hostile peer: what a PUT of junk costs and what it can change, a
 * record that claims a host that never agreed to host it, a publisher whose earlier record is
 * ahead of its clock, and providers flooded for a skill by peers that are no members. Members and
 * outsiders are in-process nodes on the memory transport, each running the registry as every node
 * does (its DHT validator shares what it has seen with the service).
 */
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import {
  AGENT_HOST_SIGNING_DOMAIN,
  AGENT_SIGNING_DOMAIN,
  agentKey,
  agentSigningBody,
  encodeAgentRecord
} from '../../protocols/registry/codec.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { agentRecordValidator, SeenRecords, signAgentRecord } from '../../src/registry/record.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { AgentCard } from '../../protocols/registry/codec.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { Key } from '../spki/fixtures.ts'
import type { PrivateKey } from '@libp2p/interface'

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

function cardOf(name: string, skill: string): AgentCard {
  return {
    name,
    description: `the ${name} agent`,
    version: '1.0.0',
    supportedInterfaces: [{ url: 'https://example.com/a2a', protocolBinding: 'JSONRPC', protocolVersion: '1.0' }],
    capabilities: {},
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: [{ id: skill, name: skill, description: `does ${skill}`, tags: [] }]
  }
}

async function rejects(promise: Promise<unknown>, name: string): Promise<void> {
  await assert.rejects(promise, (err: Error) => {
    assert.equal(err.name, name, `${err.name}: ${err.message}`)
    return true
  })
}

/** Puts `bytes` under `key` from `node`; the count of peers that stored it. */
async function put(node: CyberspaceNode, key: string, bytes: Uint8Array): Promise<number> {
  let stored = 0
  for await (const event of node.dht.put(utf8(key), bytes, { signal: AbortSignal.timeout(15_000) })) {
    if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') stored++
  }
  return stored
}

/** A record of `agent` hosted by `host`, both signing. */
async function recordOf(
  agent: Signer,
  host: Signer,
  fields: { seq: number; expires: number; card: AgentCard }
): Promise<Uint8Array> {
  return (await signAgentRecord(agent, host, { addrs: [], ...fields })).bytes
}

/** What an attacker can make: a record of its own agent key naming `host`, the host's part signed by `forger`. */
async function forgedRecord(
  agent: Signer,
  forger: Signer,
  host: string,
  fields: { seq: number; expires: number; card: AgentCard }
): Promise<Uint8Array> {
  const unsigned = { v: 1 as const, agent: agent.principal, host, addrs: [], ...fields }
  const body = agentSigningBody(agentKey(agent.principal), unsigned)
  return encodeAgentRecord({
    ...unsigned,
    sig: await agent.sign(AGENT_SIGNING_DOMAIN, body),
    hostSig: await forger.sign(AGENT_HOST_SIGNING_DOMAIN, body)
  })
}

describe('the agent registry under attack', function () {
  this.timeout(180_000)

  it('cycling fresh agent keys through a full memory of seqs never evicts an unexpired one: a replay stays refused', async () => {
    const seen = new SeenRecords({ capacity: 4 })
    const validate = agentRecordValidator(seen)
    const host = await seedSigner(new Uint8Array(32).fill(9))
    const victim = await seedSigner(new Uint8Array(32).fill(1))
    const expires = Date.now() + 600_000
    const older = await recordOf(victim, host, { seq: 1, expires, card: cardOf('v', 'x') })
    await validate(
      utf8(agentKey(victim.principal)),
      await recordOf(victim, host, { seq: 2, expires, card: cardOf('v', 'x') })
    )
    // the attacker signs valid records under 8 fresh keys, twice the memory's capacity
    for (let i = 0; i < 8; i++) {
      const junk = await seedSigner(crypto.getRandomValues(new Uint8Array(32)))
      await validate(
        utf8(agentKey(junk.principal)),
        await recordOf(junk, host, { seq: 1, expires, card: cardOf('j', 'x') })
      )
    }
    assert.equal(seen.seq(agentKey(victim.principal)), 2)
    await rejects(Promise.resolve(validate(utf8(agentKey(victim.principal)), older)), 'StaleAgentRecordError')
  })

  describe('among member nodes and outsiders', () => {
    const members: CyberspaceNode[] = []
    const outsiders: CyberspaceNode[] = []
    let memberKeys: PrivateKey[]
    let root: Key

    before(async () => {
      root = await key()
      memberKeys = await Promise.all(Array.from({ length: 4 }, async () => await generateKeyPair('Ed25519')))
      for (const [i, privateKey] of memberKeys.entries()) {
        members.push(
          await memoryNode({
            privateKey,
            bootstrap: i === 0 ? [] : [members[0].multiaddrs()[0]],
            // the last member asks one provider per find: the one a flood would crowd out
            registryOptions: { timeout: 5000, lookupTimeout: 15_000, ...(i === 3 ? { maxProviders: 1 } : {}) }
          })
        )
      }
      for (let i = 0; i < 5; i++)
        outsiders.push(
          await memoryNode({
            bootstrap: [members[0].multiaddrs()[0]],
            registryOptions: { timeout: 5000, lookupTimeout: 15_000 }
          })
        )
      await waitUntil('every node connected to the first', () => members[0].peers().length === 8)
      const certs = await Promise.all(
        members.map(
          async n =>
            await grant(root, { kind: 'key', principal: principalFromPeerId(n.peerId) }, '(cyberspace member)', {
              propagate: false
            })
        )
      )
      for (const n of [...members, ...outsiders]) {
        await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
        await n.spki.addAll({ certs, crls: [] })
      }
    })

    after(async () => {
      await Promise.all([...members, ...outsiders].map(async n => await n.stop()))
    })

    it('a record naming a member as its host without the host signing it is stored nowhere and never returned', async () => {
      const attacker = await seedSigner(crypto.getRandomValues(new Uint8Array(32)))
      const victimHost = members[1].peerId.toString()
      // the attacker signs the host's part with its own key: it holds no other
      const forged = await forgedRecord(attacker, attacker, victimHost, {
        seq: Date.now(),
        expires: Date.now() + 600_000,
        card: cardOf('impostor', 'impostor-skill')
      })
      assert.equal(await put(outsiders[0], agentKey(attacker.principal), forged), 0, 'no peer stored it')
      for (const n of [members[0], members[2]]) await rejects(n.registry.get(attacker.principal), 'AgentNotFoundError')
    })

    it("publish after a restart beats the record its key published before, with a seq ahead of this node's clock", async () => {
      const privateKey = await generateKeyPair('Ed25519')
      const self = await seedSigner(privateKey.raw)

      const cert = await grant(root, { kind: 'key', principal: self.principal }, '(cyberspace member)', {
        propagate: false
      })
      for (const n of members) await n.spki.addCert(cert)
      // an earlier run of this node (whose clock has since stepped back) left this record in the DHT
      const earlier = await recordOf(self, self, {
        seq: Date.now() + 600_000,
        expires: Date.now() + 600_000,
        card: cardOf('earlier', 'before')
      })
      assert.ok((await put(members[0], agentKey(self.principal), earlier)) > 0)
      const restarted = await memoryNode({
        privateKey,
        bootstrap: [members[0].multiaddrs()[0]],
        registryOptions: { timeout: 5000, lookupTimeout: 15_000 }
      })
      try {
        await restarted.spki.addAclEntry(root.id, tag('(cyberspace)'))
        await restarted.spki.addCert(cert)
        await waitUntil('the restarted node is connected', () => restarted.peers().length > 0)
        const published = await restarted.registry.publish({
          name: 'later',
          description: 'published after a restart',
          version: '2.0.0',
          skills: []
        })
        assert.ok(published.peers > 0, 'peers stored the new record')
        const got = await members[2].registry.get(self.principal)
        assert.equal(got.card.name, 'later')
        assert.equal(got.seq, published.seq)
      } finally {
        await restarted.stop()
      }
    })

    it("providers flooded for a skill by outsiders do not crowd out a member's record", async () => {
      for (const [i, n] of outsiders.entries())
        await n.registry.publish({
          name: `sybil-${i}`,
          description: 'an outsider',
          version: '1.0.0',
          skills: [{ id: 'crowded', name: 'crowded', description: 'much wanted', tags: [] }]
        })
      // the member provides last: in the providers' stores it comes after every outsider
      const real = await members[2].registry.publish({
        name: 'real',
        description: 'a member agent',
        version: '1.0.0',
        skills: [{ id: 'crowded', name: 'crowded', description: 'much wanted', tags: [] }]
      })
      // members[3] asks one provider per find
      const found = await members[3].registry.find({ skill: 'crowded' })
      assert.deepEqual(
        found.records.map(r => r.agent),
        [real.agent],
        JSON.stringify(found.skipped.map(s => s.error.name))
      )
    })
  })
})
