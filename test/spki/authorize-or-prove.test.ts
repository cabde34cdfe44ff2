/**
 * authorizeOrProve on the receiving side: it asks only peers already connected, within a per-peer
 * budget, remembers refusals until the ACL, CRLs or store change (the epoch), and withdrawn trust
 * takes effect at the next check.
 */
import { strict as assert } from 'node:assert'
import { base16 } from 'multiformats/bases/base16'
import { SPKI_PROTOCOL } from '../../protocols/spki/codec.ts'
import { peerIdFromPrincipal } from '../../src/crypto/principal.ts'
import { spkiTime } from '../../src/spki/cert.ts'
import { certHash, signCrl } from '../../src/spki/crl.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, NO_CRL_SPREAD, tag } from './fixtures.ts'
import type { Key } from './fixtures.ts'
import type { SignedCert } from '../../src/spki/cert.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Connection } from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'

const HOUR = 3_600_000

/** Counts every way the node could reach out: dials, streams to new peers, DHT and peer-routing lookups. */
function spyOnNetwork(node: CyberspaceNode): {
  total: () => number
  reset: () => void
  counts: Record<string, number>
} {
  const counts: Record<string, number> = {}
  const spy = (target: Record<string, unknown>, method: string, label: string): void => {
    const original = target[method] as (...args: unknown[]) => unknown
    counts[label] = 0
    target[method] = function (this: unknown, ...args: unknown[]) {
      counts[label]++
      return original.apply(this, args)
    }
  }
  const cm = (node.libp2p as unknown as { components: { connectionManager: ConnectionManager } }).components
    .connectionManager
  spy(cm as unknown as Record<string, unknown>, 'openConnection', 'openConnection')
  spy(cm as unknown as Record<string, unknown>, 'openStream', 'openStream')
  spy(node.libp2p as unknown as Record<string, unknown>, 'dial', 'dial')
  spy(node.libp2p as unknown as Record<string, unknown>, 'dialProtocol', 'dialProtocol')
  spy(node.libp2p.peerRouting as unknown as Record<string, unknown>, 'findPeer', 'peerRouting.findPeer')
  spy(node.dht as unknown as Record<string, unknown>, 'findPeer', 'dht.findPeer')
  spy(node.dht as unknown as Record<string, unknown>, 'getClosestPeers', 'dht.getClosestPeers')
  return {
    counts,
    total: () => Object.values(counts).reduce((a, b) => a + b, 0),
    reset: () => {
      for (const label of Object.keys(counts)) counts[label] = 0
    }
  }
}

/** Counts the proof requests `node` sends over its open connection to `peer`. */
function countProofRequests(node: CyberspaceNode, peer: CyberspaceNode): () => number {
  let count = 0
  const connection = node.libp2p.getConnections(peer.peerId)[0] as Connection & Record<string, unknown>
  const original = connection.newStream.bind(connection)
  connection.newStream = async (protocols, options) => {
    if (protocols === SPKI_PROTOCOL || (Array.isArray(protocols) && protocols.includes(SPKI_PROTOCOL))) count++
    return await original(protocols, options)
  }
  return () => count
}

describe('authorizeOrProve asks only connected peers, and remembers refusals by epoch', () => {
  const nodes: CyberspaceNode[] = []
  let verifier: CyberspaceNode
  let provider: CyberspaceNode
  let root: Key, other: Key, author: Key, local: Key
  let authorCert: SignedCert, localCert: SignedCert
  let network: ReturnType<typeof spyOnNetwork>
  let asked: () => number
  /** The verifier's clock for rate limits and remembered refusals. */
  let clock = Date.now()
  const request = tag('(cyberspace (log (append notes)))')

  before(async () => {
    ;[root, other, author, local] = await Promise.all([key(), key(), key(), key()])
    verifier = await memoryNode({ spkiOptions: { maxProofRequestsPerMinute: 20, now: () => clock } })
    // the provider never hears of the verifier's CRLs: it still sends a revoked chain, and the
    // verifier's own refusal is what is tested (not a race between gossip and the request)
    provider = await memoryNode({ bootstrap: [verifier.multiaddrs()[0]], revocationsOptions: NO_CRL_SPREAD })
    nodes.push(verifier, provider)
    await waitUntil('the two nodes to connect', () => verifier.peers().length === 1)
    // the provider (say, the peer that relayed the author's events) holds the author's chain
    authorCert = await grant(root, author, '(cyberspace (log))', {
      validity: { notAfter: spkiTime(Date.now() + HOUR) }
    })
    await provider.spki.addCert(authorCert)
    // the verifier holds another principal's chain itself
    localCert = await grant(root, local, '(cyberspace (log))')
    await verifier.spki.addCert(localCert)
    await verifier.spki.addAclEntry(root.id, tag('(cyberspace)'))
    network = spyOnNetwork(verifier)
    asked = countProofRequests(verifier, provider)
  })

  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it('the network spies see a dial when one happens', async () => {
    const stranger = await key()
    network.reset()
    await assert.rejects(
      verifier.spki.prove(peerIdFromPrincipal(stranger.id), request, { signal: AbortSignal.timeout(300) })
    )
    assert.ok(network.counts.openStream > 0, JSON.stringify(network.counts))
  })

  it('for 16 made-up principals whose nodes are not connected: no dial, no DHT query, twice', async () => {
    const strangers = await Promise.all(Array.from({ length: 16 }, async () => await key()))
    network.reset()
    for (let round = 0; round < 2; round++) {
      for (const stranger of strangers) {
        await assert.rejects(verifier.spki.authorizeOrProve(stranger.id, request), { name: 'ProverNotConnectedError' })
      }
    }
    assert.equal(network.total(), 0, JSON.stringify(network.counts))

    // with a connected provider that holds no chain for them: it is asked once each, then never again
    const before = asked()
    for (const stranger of strangers) {
      await assert.rejects(verifier.spki.authorizeOrProve(stranger.id, request, { providers: [provider.peerId] }), {
        name: 'ProofRefusedError'
      })
    }
    assert.equal(asked() - before, 16)
    for (const stranger of strangers) {
      await assert.rejects(verifier.spki.authorizeOrProve(stranger.id, request, { providers: [provider.peerId] }), {
        name: 'ProofRefusedError'
      })
    }
    assert.equal(asked() - before, 16, 'the second round asks no one')
    assert.equal(network.total(), 0, JSON.stringify(network.counts))
  })

  it("asks a connected provider for the author's chain and accepts it, storing nothing", async () => {
    await assert.rejects(verifier.spki.authorizeOrProve(author.id, request), { name: 'ProverNotConnectedError' })
    const before = asked()
    const found = await verifier.spki.authorizeOrProve(author.id, request, { providers: [provider.peerId] })
    assert.equal(found.proof.chain.length, 1)
    assert.equal(asked() - before, 1)
    assert.equal(verifier.spki.certs().length, 1, 'only the certificate the verifier held before')
    // the chain shown is checked again next time, not asked for again
    await verifier.spki.authorizeOrProve(author.id, request, { providers: [provider.peerId] })
    assert.equal(asked() - before, 1)

    // and the verifier can now prove the author's authority on to a node that asks it
    const downstream = await memoryNode({ bootstrap: [verifier.multiaddrs()[0]] })
    nodes.push(downstream)
    await downstream.spki.addAclEntry(root.id, tag('(cyberspace)'))
    await waitUntil('the downstream node to connect', () =>
      downstream.peers().some(p => p.peerId === verifier.peerId.toString())
    )
    const relayed = await downstream.spki.prove(verifier.peerId, request, { principal: author.id })
    assert.equal(relayed.proof.chain.length, 1)

    // a burst of events from a new author: one request, shared by every check
    const newcomer = await key()
    await provider.spki.addCert(await grant(root, newcomer, '(cyberspace (log))'))
    const grants = await Promise.all(
      Array.from(
        { length: 8 },
        async () => await verifier.spki.authorizeOrProve(newcomer.id, request, { providers: [provider.peerId] })
      )
    )
    assert.equal(grants.length, 8)
    assert.equal(asked() - before, 2)
  })

  it('withdrawn trust takes effect at once; restored trust forgets the remembered refusal', async () => {
    const providers = [provider.peerId]
    clock += 60_000 // a full request budget
    await verifier.spki.authorize(local.id, request)
    const e0 = verifier.spki.epoch
    assert.equal(await verifier.spki.removeAclEntry(root.id), true)
    const e1 = verifier.spki.epoch
    assert.ok(e1 > e0, 'removing an ACL entry starts a new epoch')
    await assert.rejects(verifier.spki.authorize(local.id, request), { name: 'ChainNotFoundError' })
    await assert.rejects(verifier.spki.authorizeOrProve(author.id, request, { providers }), {
      name: 'ChainNotFoundError'
    })

    // trusting another root: the provider is asked, refuses, and the refusal is remembered
    await verifier.spki.addAclEntry(other.id, tag('(cyberspace)'))
    const before = asked()
    await assert.rejects(verifier.spki.authorizeOrProve(author.id, request, { providers }), {
      name: 'ProofRefusedError'
    })
    await assert.rejects(verifier.spki.authorizeOrProve(author.id, request, { providers }), {
      name: 'ProofRefusedError'
    })
    assert.equal(asked() - before, 1, 'the refusal was remembered')

    // trusting the root again: a new epoch, the refusal forgotten, the author authorized
    const e2 = verifier.spki.epoch
    await verifier.spki.addAclEntry(root.id, tag('(cyberspace)'))
    assert.ok(verifier.spki.epoch > e2)
    const found = await verifier.spki.authorizeOrProve(author.id, request, { providers })
    assert.equal(found.proof.chain.length, 1)
    assert.equal(asked() - before, 2)

    // a CRL of the root revoking both chains: a new epoch, and both are refused as revoked, by hash
    const e3 = verifier.spki.epoch
    await verifier.spki.addCrl(
      await signCrl(
        {
          issuer: root.id,
          revoked: [certHash(authorCert), certHash(localCert)],
          validity: { notBefore: spkiTime(Date.now() - HOUR), notAfter: spkiTime(Date.now() + HOUR) }
        },
        root.secret
      )
    )
    assert.ok(verifier.spki.epoch > e3, 'adding a CRL starts a new epoch')
    await assert.rejects(verifier.spki.authorize(local.id, request), {
      name: 'RevokedCertError',
      certHash: base16.baseEncode(certHash(localCert))
    })
    await assert.rejects(verifier.spki.authorizeOrProve(author.id, request, { providers }), {
      name: 'RevokedCertError',
      certHash: base16.baseEncode(certHash(authorCert))
    })
  })

  it('limits proof requests per peer, and recovers as the budget refills', async () => {
    const principal = await key()
    await provider.spki.addCert(await grant(root, principal, '(cyberspace (log))'))
    clock += 60_000 // a full bucket: 20 requests a minute
    let answered = 0
    let limited: Error | undefined
    for (let i = 0; i < 40 && limited == null; i++) {
      try {
        await verifier.spki.prove(provider.peerId, request, { principal: principal.id })
        answered++
      } catch (err) {
        limited = err as Error
      }
    }
    assert.equal(answered, 20)
    assert.equal(limited?.name, 'ProofRateLimitedError')
    // over budget is retryable, not a remembered refusal
    const stranger = await key()
    await assert.rejects(verifier.spki.authorizeOrProve(stranger.id, request, { providers: [provider.peerId] }), {
      name: 'ProofRateLimitedError'
    })
    clock += 3_000 // one token back
    await verifier.spki.prove(provider.peerId, request, { principal: principal.id })
    await assert.rejects(verifier.spki.prove(provider.peerId, request, { principal: principal.id }), {
      name: 'ProofRateLimitedError'
    })

    // at most two in flight to one peer
    clock += 60_000
    const results = await Promise.allSettled(
      [0, 1, 2].map(async () => await verifier.spki.prove(provider.peerId, request, { principal: principal.id }))
    )
    assert.deepEqual(
      results.map(r => (r.status === 'fulfilled' ? 'proved' : (r.reason as Error).name)),
      ['proved', 'proved', 'ProofRateLimitedError']
    )
    // and the refusal of the rate-limited stranger was not remembered
    await assert.rejects(verifier.spki.authorizeOrProve(stranger.id, request, { providers: [provider.peerId] }), {
      name: 'ProofRefusedError'
    })
  })
})

describe('a node answers proof requests within a per-peer budget', () => {
  const nodes: CyberspaceNode[] = []
  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it('refuses a peer that asks more often than its budget, and answers it again later', async () => {
    let clock = Date.now()
    const prover = await memoryNode({ spkiOptions: { maxProofAnswersPerMinute: 5, now: () => clock } })
    const asker = await memoryNode({ bootstrap: [prover.multiaddrs()[0]] })
    nodes.push(prover, asker)
    await waitUntil('the two nodes to connect', () => asker.peers().length === 1)
    const [root, who] = await Promise.all([key(), key()])
    await prover.spki.addCert(await grant(root, who, '(cyberspace)'))
    await asker.spki.addAclEntry(root.id, tag('(cyberspace)'))
    const request = tag('(cyberspace member)')
    for (let i = 0; i < 5; i++) await asker.spki.prove(prover.peerId, request, { principal: who.id })
    await assert.rejects(asker.spki.prove(prover.peerId, request, { principal: who.id }), {
      name: 'ProofRateLimitedError'
    })
    clock += 12_000 // one answer back
    await asker.spki.prove(prover.peerId, request, { principal: who.id })
  })
})

describe('authorizeOrProve remembers refusals by prover, and local misses briefly', () => {
  const nodes: CyberspaceNode[] = []
  let verifier: CyberspaceNode
  /** Holds no chain for anyone: its refusal must not stand for another provider's. */
  let liar: CyberspaceNode
  /** Holds the authors' chains. */
  let honest: CyberspaceNode
  let root: Key
  let clock = Date.now()
  const request = tag('(cyberspace (log (append notes)))')

  before(async () => {
    root = await key()
    verifier = await memoryNode({ spkiOptions: { now: () => clock } })
    liar = await memoryNode({ bootstrap: [verifier.multiaddrs()[0]] })
    honest = await memoryNode({ bootstrap: [verifier.multiaddrs()[0]] })
    nodes.push(verifier, liar, honest)
    await waitUntil('the three nodes to connect', () => verifier.peers().length === 2)
    await verifier.spki.addAclEntry(root.id, tag('(cyberspace)'))
  })

  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it("one provider's refusal does not stop a proof from another, one after the other", async () => {
    const author = await key()
    await honest.spki.addCert(await grant(root, author, '(cyberspace (log))'))
    const askedLiar = countProofRequests(verifier, liar)
    const askedHonest = countProofRequests(verifier, honest)
    await assert.rejects(verifier.spki.authorizeOrProve(author.id, request, { providers: [liar.peerId] }), {
      name: 'ProofRefusedError'
    })
    // remembered for the liar alone
    await assert.rejects(verifier.spki.authorizeOrProve(author.id, request, { providers: [liar.peerId] }), {
      name: 'ProofRefusedError'
    })
    assert.equal(askedLiar(), 1)
    const found = await verifier.spki.authorizeOrProve(author.id, request, { providers: [honest.peerId] })
    assert.equal(found.proof.chain.length, 1)
    assert.equal(askedHonest(), 1)

    // a provider whose refusal is remembered is skipped, and the next one asked
    const second = await key()
    await honest.spki.addCert(await grant(root, second, '(cyberspace (log))'))
    await assert.rejects(verifier.spki.authorizeOrProve(second.id, request, { providers: [liar.peerId] }), {
      name: 'ProofRefusedError'
    })
    const both = await verifier.spki.authorizeOrProve(second.id, request, { providers: [liar.peerId, honest.peerId] })
    assert.equal(both.proof.chain.length, 1)
    assert.equal(askedLiar(), 2, 'the liar was not asked again')
    assert.equal(askedHonest(), 2)
  })

  it("one provider's refusal does not stop a proof from another, at the same time", async () => {
    const author = await key()
    await honest.spki.addCert(await grant(root, author, '(cyberspace (log))'))
    const [fromLiar, fromHonest] = await Promise.allSettled([
      verifier.spki.authorizeOrProve(author.id, request, { providers: [liar.peerId] }),
      verifier.spki.authorizeOrProve(author.id, request, { providers: [honest.peerId] })
    ])
    assert.equal(fromLiar.status, 'rejected')
    assert.equal((fromLiar as PromiseRejectedResult).reason.name, 'ProofRefusedError')
    assert.equal(fromHonest.status, 'fulfilled', String((fromHonest as PromiseRejectedResult).reason))
    // and once shown, the chain stands whoever is named next
    const again = await verifier.spki.authorizeOrProve(author.id, request, { providers: [liar.peerId] })
    assert.equal(again.proof.chain.length, 1)
  })

  it('a second check of an unknown principal at the same epoch does no chain search', async () => {
    const stranger = await key()
    const spki = verifier.spki as unknown as { certs: () => SignedCert[] }
    const certs = spki.certs.bind(spki)
    let searches = 0
    spki.certs = () => {
      searches++
      return certs()
    }
    try {
      const check = async (): Promise<void> => {
        await assert.rejects(verifier.spki.authorizeOrProve(stranger.id, request, { providers: [liar.peerId] }), {
          name: 'ProofRefusedError'
        })
      }
      await check()
      assert.ok(searches > 0, 'the first check searches the store')
      const first = searches
      for (let i = 0; i < 16; i++) await check()
      assert.equal(searches, first, 'no search again at the same epoch')
      // time alone can make a certificate valid: the miss lapses
      clock += 31_000
      await check()
      assert.ok(searches > first)
      const second = searches
      await check()
      assert.equal(searches, second)
      // and a new epoch forgets it at once
      await verifier.spki.addCert(await grant(root, await key(), '(cyberspace (log))'))
      await check()
      assert.ok(searches > second)
    } finally {
      spki.certs = certs
    }
  })

  it('a rate limit is remembered briefly, per prover', async () => {
    const author = await key()
    const spki = verifier.spki as unknown as {
      outbound: { take: (peer: string) => boolean }
    }
    const take = spki.outbound.take.bind(spki.outbound)
    let takes = 0
    spki.outbound.take = peer => {
      takes++
      return peer === liar.peerId.toString() ? false : take(peer)
    }
    try {
      for (let i = 0; i < 8; i++) {
        await assert.rejects(verifier.spki.authorizeOrProve(author.id, request, { providers: [liar.peerId] }), {
          name: 'ProofRateLimitedError'
        })
      }
      assert.equal(takes, 1, 'the budget is tried once')
      clock += 3_000
      await assert.rejects(verifier.spki.authorizeOrProve(author.id, request, { providers: [liar.peerId] }), {
        name: 'ProofRateLimitedError'
      })
      assert.equal(takes, 2)
    } finally {
      spki.outbound.take = take
    }
  })

  it('a full set of peer budgets evicts only refilled ones, never a depleted one', () => {
    let now = 0
    const Budget = (verifier.spki as unknown as { outbound: object }).outbound.constructor as new (
      perMinute: number,
      maxInFlight: number,
      now: () => number,
      maxPeers: number
    ) => { take: (peer: string) => boolean; release: (peer: string) => void }
    const budget = new Budget(2, 2, () => now, 2)
    const spend = (peer: string): boolean => {
      const ok = budget.take(peer)
      if (ok) budget.release(peer)
      return ok
    }
    assert.equal(spend('attacker'), true)
    assert.equal(spend('attacker'), true)
    assert.equal(spend('attacker'), false, 'depleted')
    assert.equal(spend('sybil-1'), true)
    // full, and no bucket has refilled: a new peer is refused rather than the attacker's dropped
    assert.equal(spend('sybil-2'), false)
    assert.equal(spend('attacker'), false, 'still depleted')
    now += 60_000
    assert.equal(spend('sybil-2'), true, 'refilled buckets make room')
  })
})
