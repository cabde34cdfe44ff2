/**
 * The agent registry among 8 in-process member nodes (all DHT servers, memory transport) and one
 * outsider: a record published on one node is found on the others by principal, by SDSI name and
 * by skill; older, forged, expired, oversized records and records of non-member hosts never win;
 * republishing keeps a short-lived record alive past its first expiry.
 */
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { agentKey, MAX_AGENT_RECORD_BYTES } from '../../protocols/registry/codec.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { agentDhtRecords, signAgentRecord } from '../../src/registry/record.ts'
import { registry } from '../../src/registry/service.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { sleep, waitUntil } from '../helpers/processes.ts'
import { grant, key, nameCert, tag } from '../spki/fixtures.ts'
import type { AgentCard } from '../../protocols/registry/codec.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { AgentCardInput, Registry } from '../../src/registry/service.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { Key } from '../spki/fixtures.ts'
import type { PrivateKey } from '@libp2p/interface'

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

interface Peer {
  node: CyberspaceNode
  registry: Registry
  validate: (key: Uint8Array, value: Uint8Array) => void | Promise<void>
  /** The node's key: it countersigns the records it hosts. */
  host: Signer
}

async function peer(bootstrap?: CyberspaceNode): Promise<Peer> {
  const records = agentDhtRecords()
  const privateKey = await generateKeyPair('Ed25519')
  const node = await memoryNode({
    privateKey,
    bootstrap: bootstrap == null ? [] : [bootstrap.multiaddrs()[0]],
    dhtRecords: records,
    services: {
      registry: registry({ seen: records.seen, timeout: 5000, lookupTimeout: 15_000, withdrawalTtl: 1500 }) as never
    }
  })
  return {
    node,
    registry: node.libp2p.services.registry as Registry,
    validate: records.validators['cyberspace-agent'],
    host: await seedSigner(privateKey.raw)
  }
}

function cardOf(name: string, skills: Array<{ id: string; tags: string[] }>): AgentCardInput {
  return {
    name,
    description: `the ${name} agent`,
    version: '1.0.0',
    skills: skills.map(s => ({ ...s, name: s.id, description: `does ${s.id}`, examples: [`please ${s.id}`] }))
  }
}

async function rejects(promise: Promise<unknown>, name: string): Promise<void> {
  await assert.rejects(promise, (err: Error) => {
    assert.equal(err.name, name, `${err.name}: ${err.message}`)
    return true
  })
}

describe('the agent registry across member nodes', function () {
  this.timeout(180_000)
  const peers: Peer[] = []
  let outsider: Peer
  let root: Key
  /** An agent key held by peers[3] (not its node key). */
  let reviewerKey: PrivateKey
  let reviewer: PrincipalId

  before(async () => {
    root = await key()
    peers.push(await peer())
    for (let i = 1; i < 8; i++) peers.push(await peer(peers[0].node))
    outsider = await peer(peers[0].node)
    await waitUntil('every node connected to the first', () => peers[0].node.peers().length === 8)
    // the root (standing in for the cluster key) makes every node but the outsider a member; every
    // node trusts the root and holds every member certificate
    const members = await Promise.all(
      peers.map(
        async p =>
          await grant(root, { kind: 'key', principal: principalFromPeerId(p.node.peerId) }, '(cyberspace member)', {
            propagate: false
          })
      )
    )
    for (const p of [...peers, outsider]) {
      await p.node.spki.addAclEntry(root.id, tag('(cyberspace)'))
      await p.node.spki.addAll({ certs: members, crls: [] })
    }
    reviewerKey = await generateKeyPair('Ed25519')
    reviewer = (await seedSigner(reviewerKey.raw)).principal
  })

  after(async () => {
    await Promise.all([...peers, outsider].map(async p => await p.node.stop()))
  })

  it('finds a record published on one node from every other node, by principal', async () => {
    const published = await peers[2].registry.publish(cardOf('planner', [{ id: 'plan', tags: ['Planning', 'review'] }]))
    assert.equal(published.agent, principalFromPeerId(peers[2].node.peerId))
    assert.ok(published.peers > 0, 'some peers stored the record')
    const byKey = await peers[3].registry.publish(cardOf('reviewer', [{ id: 'code-review', tags: ['review'] }]), {
      privateKey: reviewerKey
    })
    assert.equal(byKey.agent, reviewer)
    for (const [i, p] of peers.entries()) {
      const a = await p.registry.get(published.agent)
      assert.equal(a.seq, published.seq, `node ${i}`)
      assert.equal(a.card.name, 'planner')
      assert.equal(a.host, peers[2].node.peerId.toString())
      const b = await p.registry.get(reviewer)
      assert.equal(b.seq, byKey.seq, `node ${i}`)
      assert.equal(b.host, peers[3].node.peerId.toString())
      assert.equal(b.card.supportedInterfaces[0].url, `libp2p://${b.host}/${reviewer}`)
    }
  })

  it('finds records by skill id and by tag, from every node, verified and from members only', async () => {
    for (const [i, p] of peers.entries()) {
      const byTag = await p.registry.find({ skill: 'Review' })
      assert.deepEqual(
        byTag.records.map(r => r.agent),
        [principalFromPeerId(peers[2].node.peerId), reviewer].sort(),
        `node ${i}: ${JSON.stringify(byTag.skipped.map(s => [s.peer, s.error.message]))}`
      )
      const byId = await p.registry.find({ skill: 'code-review' })
      assert.deepEqual(
        byId.records.map(r => r.agent),
        [reviewer]
      )
    }
    const none = await peers[5].registry.find({ skill: 'no-such-skill' })
    assert.deepEqual(none.records, [])
  })

  it('finds an agent by an SDSI name relative to a principal or to "cluster"', async () => {
    // the root names the reviewer; only the first node holds that name certificate
    await peers[0].node.spki.addCert(await nameCert(root, 'reviewer', { kind: 'key', principal: reviewer }))
    for (const i of [0, 4, 7]) {
      const [found] = await peers[i].registry.resolve(`${root.id}'s reviewer`)
      assert.equal(found.agent, reviewer, `node ${i}`)
      // "cluster": no node holds a share here, and the one root trusted for (cyberspace member) is it
      const [viaCluster] = await peers[i].registry.resolve("cluster's reviewer")
      assert.equal(viaCluster.agent, reviewer, `node ${i}`)
    }
    await rejects(peers[4].registry.resolve("cluster's nobody"), 'AgentNameError')
    await rejects(peers[4].registry.resolve('just-a-word'), 'AgentNameError')
    const stranger = await key()
    await rejects(peers[4].registry.resolve(`${stranger.id}'s reviewer`), 'AgentNameError')
  })

  it('an older seq never wins: a replayed record put directly is refused, and never selected', async () => {
    const current = await peers[1].registry.get(reviewer)
    const signer = await seedSigner(reviewerKey.raw)
    const { bytes: older } = await signAgentRecord(signer, peers[3].host, {
      addrs: current.addrs,
      seq: current.seq - 1000,
      expires: Date.now() + 600_000,
      card: current.card
    })
    const keyBytes = utf8(agentKey(reviewer))
    // a node that has seen the newer record refuses the older one outright
    await rejects(Promise.resolve(peers[1].validate(keyBytes, older)), 'StaleAgentRecordError')
    // the attacker (a member node) puts it straight into the DHT
    let stored = 0
    for await (const event of peers[5].node.dht.put(keyBytes, older, { signal: AbortSignal.timeout(15_000) })) {
      if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') stored++
    }
    assert.equal(stored, 0, 'no peer that had seen the newer record stored the older one')
    for (const [i, p] of peers.entries()) {
      assert.equal((await p.registry.get(reviewer)).seq, current.seq, `node ${i}`)
    }
    // a node that joins afterwards has seen nothing, and still gets the newer record
    const late = await peer(peers[0].node)
    try {
      await late.node.spki.addAclEntry(root.id, tag('(cyberspace)'))
      await late.node.spki.addCert(
        await grant(root, { kind: 'key', principal: principalFromPeerId(peers[3].node.peerId) }, '(cyberspace member)')
      )
      assert.equal((await late.registry.get(reviewer)).seq, current.seq)
    } finally {
      await late.node.stop()
    }
  })

  it('a forged record is refused by the validators and by get: bad signature, or another key under the victim key', async () => {
    const current = await peers[1].registry.get(reviewer)
    const keyBytes = utf8(agentKey(reviewer))
    const decoded = dagCbor.decode(current.bytes) as Record<string, unknown>
    const badSignature = dagCbor.encode({ ...decoded, seq: current.seq + 1000 })
    const impostorKey = await generateKeyPair('Ed25519')
    const impostor = await seedSigner(impostorKey.raw)
    const { bytes: impostorRecord } = await signAgentRecord(impostor, peers[5].host, {
      addrs: [],
      seq: current.seq + 2000,
      expires: Date.now() + 600_000,
      card: {
        ...current.card,
        supportedInterfaces: [{ url: 'https://evil.example/a2a', protocolBinding: 'JSONRPC', protocolVersion: '1.0' }]
      }
    })
    await rejects(Promise.resolve(peers[1].validate(keyBytes, badSignature)), 'AgentRecordSignatureError')
    await rejects(Promise.resolve(peers[1].validate(keyBytes, impostorRecord)), 'InvalidAgentRecordError')
    for (const forged of [badSignature, impostorRecord]) {
      let stored = 0
      // kad-dht's put keeps it in the attacker's own store unchecked, then every peer refuses it
      for await (const event of peers[5].node.dht.put(keyBytes, forged, { signal: AbortSignal.timeout(15_000) })) {
        if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') stored++
      }
      assert.equal(stored, 0)
    }
    // even the attacker's own node, whose store holds the forgery, gets the genuine record
    for (const p of [peers[5], peers[6]]) {
      const got = await p.registry.get(reviewer)
      assert.equal(got.seq, current.seq)
      assert.equal(got.card.supportedInterfaces[0].protocolBinding, 'urn:cyberspace:a2a:libp2p')
    }
  })

  it('an expired record is gone', async () => {
    const agentKeyPair = await generateKeyPair('Ed25519')
    const signer = await seedSigner(agentKeyPair.raw)
    // long enough to outlive a DHT put on a loaded machine (2.5 s did not, once)
    const expires = Date.now() + 6000
    const { bytes } = await signAgentRecord(signer, peers[1].host, {
      addrs: [],
      seq: 1,
      expires,
      card: {
        name: 'brief',
        description: 'lives briefly',
        version: '1',
        supportedInterfaces: [{ url: 'https://example.com/a2a', protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' }],
        capabilities: {},
        defaultInputModes: ['text/plain'],
        defaultOutputModes: ['text/plain'],
        skills: []
      }
    })
    for await (const _ of peers[1].node.dht.put(utf8(agentKey(signer.principal)), bytes, {
      signal: AbortSignal.timeout(15_000)
    })) {
      // drain
    }
    assert.equal((await peers[6].registry.get(signer.principal)).seq, 1)
    await sleep(Math.max(0, expires - Date.now()) + 200)
    // the node that had fetched it knows it expired; the others find nothing current
    await rejects(peers[6].registry.get(signer.principal), 'AgentRecordExpiredError')
    await rejects(peers[7].registry.get(signer.principal), 'AgentNotFoundError')
  })

  it('an oversized card is refused at publish and at validation', async () => {
    const long = 'x'.repeat(500)
    const big = cardOf(
      'big',
      Array.from({ length: 30 }, (_, i) => ({ id: `skill-${i}`, tags: [] }))
    )
    big.skills = big.skills.map(s => ({ ...s, description: long, examples: [long, long] }))
    await rejects(peers[2].registry.publish(big), 'AgentCardTooLargeError')
    // a record built by hand past the limit, put straight into the DHT
    const signer = await seedSigner((await generateKeyPair('Ed25519')).raw)
    const { record } = await signAgentRecord(signer, peers[2].host, {
      addrs: [],
      seq: 1,
      expires: Date.now() + 60_000,
      card: {
        ...((await peers[1].registry.get(reviewer)).card as AgentCard),
        supportedInterfaces: [{ url: 'https://example.com', protocolBinding: 'JSONRPC', protocolVersion: '1.0' }]
      }
    })
    const oversized = dagCbor.encode({
      ...record,
      card: { ...record.card, description: 'y'.repeat(MAX_AGENT_RECORD_BYTES) }
    })
    const keyBytes = utf8(agentKey(signer.principal))
    await rejects(Promise.resolve(peers[3].validate(keyBytes, oversized)), 'AgentCardTooLargeError')
    let stored = 0
    for await (const event of peers[2].node.dht.put(keyBytes, oversized, { signal: AbortSignal.timeout(15_000) })) {
      if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') stored++
    }
    assert.equal(stored, 0)
    await rejects(peers[4].registry.get(signer.principal), 'AgentNotFoundError')
  })

  it('refuses the record of a host that is not a member, by get and by find', async () => {
    const published = await outsider.registry.publish(cardOf('intruder', [{ id: 'review-intruder', tags: ['review'] }]))
    // the record itself is valid and in the DHT: only membership keeps it out
    await rejects(peers[1].registry.get(published.agent), 'HostNotMemberError')
    await rejects(peers[6].registry.get(published.agent), 'HostNotMemberError')
    const found = await peers[6].registry.find({ skill: 'review' })
    assert.ok(!found.records.some(r => r.agent === published.agent))
    assert.equal(found.records.length, 2)
    const skipped = found.skipped.find(s => s.peer === outsider.node.peerId.toString())
    assert.equal(skipped?.error.name, 'HostNotMemberError')
    // and by the intruder's own skill id: nothing
    const byId = await peers[6].registry.find({ skill: 'review-intruder' })
    assert.deepEqual(byId.records, [])
  })

  it('republishing keeps a short-lived record alive past its first expiry; unpublish lets it lapse', async () => {
    const shortKey = await generateKeyPair('Ed25519')
    const first = await peers[4].registry.publish(cardOf('short', [{ id: 'ephemeral', tags: [] }]), {
      privateKey: shortKey,
      ttl: 2000
    })
    await sleep(Math.max(0, first.expires - Date.now()) + 1000)
    const later = await peers[7].registry.get(first.agent)
    assert.ok(later.seq > first.seq, 'republished with a higher seq')
    assert.ok(later.expires > Date.now())
    assert.deepEqual(
      (await peers[1].registry.find({ skill: 'ephemeral' })).records.map(r => r.agent),
      [first.agent]
    )
    await peers[4].registry.unpublish(first.agent)
    assert.deepEqual((await peers[1].registry.find({ skill: 'ephemeral' })).records, [])
    await sleep(1700)
    await rejects(peers[2].registry.get(first.agent), 'AgentNotFoundError')
    await rejects(peers[4].registry.unpublish(first.agent), 'AgentNotPublishedError')
  })
})
