import { strict as assert } from 'node:assert'
import { ed25519 as nobleCurve } from '@noble/curves/ed25519.js'
import { MemoryDatastore } from 'datastore-core'
import { encodeFrostMessage, decodeFrostMessage, FROST_PROTOCOL } from '../../protocols/frost/codec.ts'
import { signedBytes } from '../../protocols/signing.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { requestOnce } from '../../src/network/rpc.ts'
import { certSigningBytes, verifyCert } from '../../src/spki/cert.ts'
import { CLUSTER_MESSAGE_DOMAIN } from '../../src/threshold/service.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { tag } from '../spki/fixtures.ts'
import { signWith } from './fixtures.ts'
import type { CommitmentsWire, FrostMessage, FrostRequest } from '../../protocols/frost/codec.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Signer } from '../../src/threshold/sign.ts'
import type { ClusterState } from '../../src/threshold/state.ts'
import type { Key } from '@noble/curves/abstract/frost.js'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
/** The service's private parts a test reaches into to play a faulty member. */
type Internals = { signer: Signer; state: ClusterState }
const internals = (node: CyberspaceNode): Internals => node.cluster as unknown as Internals

/** Five in-process members on the memory transport, over the real protocols. */
describe('the cluster key service over /cyberspace/dkg and /cyberspace/frost', function () {
  this.timeout(120_000)
  const nodes: CyberspaceNode[] = []
  let coordinator: CyberspaceNode
  let outsider: CyberspaceNode
  let ids: PrincipalId[]
  const stores = Array.from({ length: 5 }, () => new MemoryDatastore())

  before(async () => {
    coordinator = await memoryNode({ datastore: stores[0] })
    nodes.push(coordinator)
    for (let i = 1; i < 5; i++)
      nodes.push(await memoryNode({ datastore: stores[i], bootstrap: [coordinator.multiaddrs()[0]] }))
    outsider = await memoryNode({ bootstrap: [coordinator.multiaddrs()[0]] })
    await waitUntil('every node connected to the coordinator', () => coordinator.peers().length === 5)
    ids = nodes.map(n => principalFromPeerId(n.peerId))
    // members 1-3 let the coordinator run the cluster; member 4 has not agreed yet
    for (const n of nodes.slice(1, 4)) await n.spki.addAclEntry(ids[0], tag('(cyberspace (cluster))'))
  })
  after(async () => {
    await Promise.all([...nodes, outsider].map(async n => await n.stop()))
  })

  it('refuses to generate a key when a member does not authorize the initiator, naming it', async () => {
    await assert.rejects(coordinator.cluster.init(ids, 3), (err: Error & { culprit?: string; members?: string[] }) => {
      assert.equal(err.name, 'MembersFailedError')
      assert.equal(err.culprit, ids[4])
      assert.deepEqual(err.members, [ids[4]])
      assert.match(err.message, /refused: it does not trust this node for \(cyberspace \(cluster init\)\)/)
      return true
    })
    assert.equal(coordinator.cluster.info(), undefined)
  })

  it('runs DKG 3-of-5: every member holds a share of the same key, no one the key', async () => {
    await nodes[4].spki.addAclEntry(ids[0], tag('(cyberspace (cluster))'))
    const info = await coordinator.cluster.init(ids.slice(1), 3)
    assert.equal(info.threshold, 3)
    assert.deepEqual(info.members, [...ids].sort())
    assert.equal(info.epoch, 0)
    for (const n of nodes) assert.equal(n.cluster.info()?.principal, info.principal)
    const shares = new Set(nodes.map(n => Buffer.from(internals(n).state.key.secret.signingShare).toString('hex')))
    assert.equal(shares.size, 5)
    await assert.rejects(nodes[1].cluster.init(ids, 3), { name: 'ClusterExistsError' })
  })

  it('issues a cluster certificate that verifies with plain Ed25519 and authorizes on a node trusting the cluster', async () => {
    const cluster = coordinator.cluster.info()!
    const subject = principalFromPeerId(outsider.peerId)
    const signed = await coordinator.cluster.issue({
      type: 'auth',
      issuer: cluster.principal,
      subject: { kind: 'key', principal: subject },
      propagate: false,
      tag: tag('(cyberspace (role builder))'),
      validity: {}
    })
    assert.equal(signed.result.signers.length, 3)
    assert.ok(nobleCurve.verify(signed.signature, certSigningBytes(signed.cert), cluster.groupKey))
    await verifyCert(signed)
    await outsider.spki.addAclEntry(cluster.principal, tag('(cyberspace)'))
    const grant = await outsider.spki.authorize(subject, tag('(cyberspace (role builder))'), {
      proof: { chain: [signed], names: [] }
    })
    assert.equal(grant.proof.chain.length, 1)
    // the coordinator kept it: a verifier can have it proven over /cyberspace/spki
    const proven = await outsider.spki.prove(coordinator.peerId, tag('(cyberspace (role builder))'), {
      principal: subject
    })
    assert.equal(proven.proof.chain.length, 1)
  })

  it('names and excludes a member that sends a corrupt signature share, and still signs', async () => {
    const cluster = coordinator.cluster.info()!
    // the first member after the coordinator in member order is always among the t chosen
    const liar = nodes.find(
      n => n !== coordinator && principalFromPeerId(n.peerId) === cluster.members.find(m => m !== ids[0])
    )!
    const signer = internals(liar).signer
    const honest = signer.signShare.bind(signer)
    signer.signShare = pkg => {
      const share = honest(pkg)
      share[0] ^= 1
      return share
    }
    try {
      const body = utf8('the cluster admits a member')
      const result = await coordinator.cluster.sign(CLUSTER_MESSAGE_DOMAIN, body)
      assert.equal(result.excluded.get(principalFromPeerId(liar.peerId))?.name, 'InvalidShareError')
      assert.equal(result.attempts, 2)
      assert.ok(!result.signers.includes(principalFromPeerId(liar.peerId)))
      assert.ok(nobleCurve.verify(result.signature, signedBytes(CLUSTER_MESSAGE_DOMAIN, body), cluster.groupKey))
    } finally {
      signer.signShare = honest
    }
  })

  it('decrypts with t decryption shares, each checked by its proof', async () => {
    const secret = utf8('the cluster database password')
    const ct = nodes[3].cluster.encrypt(secret, utf8('db'))
    const opened = await coordinator.cluster.decrypt(ct, utf8('db'))
    assert.deepEqual(opened.plaintext, secret)
    assert.equal(opened.helpers.length, 3)
    await assert.rejects(coordinator.cluster.decrypt(ct, utf8('other')), { name: 'DecryptionError' })
    // the outsider is no member and has no authority: members refuse it a decryption share
    const answer = await ask(outsider, coordinator, {
      v: 1,
      type: 'decrypt',
      group: coordinator.cluster.info()!.groupKey,
      epoch: 0,
      ephemeral: ct.ephemeral
    })
    assert.equal(answer.type, 'error')
    assert.equal(answer.type === 'error' && answer.name, 'NotAuthorizedError')
  })

  it('refuses bad requests with named errors and keeps serving', async () => {
    const info = coordinator.cluster.info()!
    const base = { v: 1 as const, group: info.groupKey, epoch: 0, session: crypto.getRandomValues(new Uint8Array(32)) }
    const member = nodes[1]
    const refusal = async (from: CyberspaceNode, request: FrostRequest): Promise<string> => {
      const a = await ask(from, member, request)
      return a.type === 'error' ? a.name : a.type
    }
    // a stranger asking for commitments
    assert.equal(
      await refusal(outsider, { ...base, type: 'commit', payload: signedBytes(CLUSTER_MESSAGE_DOMAIN, utf8('x')) }),
      'NotAMemberError'
    )
    // a payload of a kind no member signs: DKG messages, say
    assert.equal(
      await refusal(coordinator, { ...base, type: 'commit', payload: signedBytes('cyberspace/dkg/v1', utf8('x')) }),
      'SigningRefusedError'
    )
    // a certificate not issued by the cluster
    const foreign = {
      ...base,
      type: 'commit' as const,
      payload: certSigningBytes({
        type: 'name',
        issuer: ids[0],
        name: 'x',
        subject: { kind: 'key', principal: ids[1] },
        validity: {}
      })
    }
    assert.equal(await refusal(coordinator, foreign), 'SigningRefusedError')
    // another share generation, another group
    assert.equal(
      await refusal(coordinator, {
        ...base,
        epoch: 7,
        type: 'commit',
        payload: signedBytes(CLUSTER_MESSAGE_DOMAIN, utf8('x'))
      }),
      'WrongEpochError'
    )
    assert.equal(
      await refusal(coordinator, {
        ...base,
        group: nobleCurve.getPublicKey(nobleCurve.utils.randomSecretKey()),
        type: 'commit',
        payload: signedBytes(CLUSTER_MESSAGE_DOMAIN, utf8('x'))
      }),
      'NoClusterError'
    )
    // commitments for one payload, then a signing package for another
    const message = (text: string): Uint8Array => signedBytes(CLUSTER_MESSAGE_DOMAIN, utf8(text))
    const list: CommitmentsWire[] = []
    for (const signer of [member, nodes[2], nodes[3]]) {
      const c = await ask(coordinator, signer, { ...base, type: 'commit', payload: message('pay 1') })
      assert.equal(c.type, 'commitments')
      if (c.type === 'commitments') list.push({ identifier: c.identifier, hiding: c.hiding, binding: c.binding })
    }
    const signFor = (text: string): FrostRequest => ({
      ...base,
      type: 'sign',
      payload: message(text),
      commitments: list
    })
    assert.equal(await refusal(coordinator, signFor('pay 2')), 'SigningRefusedError')
    // the nonces went with the refusal: the same session cannot be used again, even for the first payload
    assert.equal(await refusal(coordinator, signFor('pay 1')), 'WrongSessionError')
    // garbage on the wire
    const garbage = decodeFrostMessage(
      await requestOnce(
        outsider.libp2p.dialProtocol.bind(outsider.libp2p),
        member.peerId,
        FROST_PROTOCOL,
        utf8('not cbor'),
        {
          maxBytes: 1 << 20,
          signal: AbortSignal.timeout(5000)
        }
      )
    )
    assert.equal(garbage.type === 'error' && garbage.name, 'InvalidFrostMessageError')
    // and the member still signs
    const result = await coordinator.cluster.sign(CLUSTER_MESSAGE_DOMAIN, utf8('still here'))
    assert.equal(result.excluded.size, 0)
  })

  it('refreshes: same key, new shares sign, old shares do not combine with new; shares survive a restart', async () => {
    const before = coordinator.cluster.info()!
    const oldKeys: Key[] = nodes.map(n => internals(n).state.key)
    const refreshed = await coordinator.cluster.refresh()
    assert.equal(refreshed.principal, before.principal)
    assert.equal(refreshed.epoch, 1)
    assert.equal(refreshed.lagging.size, 0)
    for (const n of nodes) assert.equal(n.cluster.info()?.epoch, 1)
    const newKeys: Key[] = nodes.map(n => internals(n).state.key)
    for (let i = 0; i < 5; i++) assert.notDeepEqual(newKeys[i].secret.signingShare, oldKeys[i].secret.signingShare)
    const msg = utf8('after the refresh')
    const result = await coordinator.cluster.sign(CLUSTER_MESSAGE_DOMAIN, msg)
    assert.ok(nobleCurve.verify(result.signature, signedBytes(CLUSTER_MESSAGE_DOMAIN, msg), before.groupKey))
    // old share of member 0 with new shares of members 1 and 2: not a valid signature
    const mixed = [{ public: newKeys[1].public, secret: oldKeys[0].secret }, newKeys[1], newKeys[2]]
    let mixedSig: Uint8Array | undefined
    try {
      mixedSig = signWith(mixed, msg)
    } catch {}
    assert.ok(mixedSig == null || !nobleCurve.verify(mixedSig, msg, before.groupKey))
    assert.ok(nobleCurve.verify(signWith(newKeys.slice(2), msg), msg, before.groupKey))

    // a member restarted from its datastore holds the refreshed share
    const restarted = nodes[2]
    await restarted.stop()
    await restarted.start()
    assert.equal(restarted.cluster.info()?.epoch, 1)
    assert.deepEqual(internals(restarted).state.key.secret.signingShare, newKeys[2].secret.signingShare)
  })
})

async function ask(from: CyberspaceNode, to: CyberspaceNode, request: FrostRequest): Promise<FrostMessage> {
  const bytes = await requestOnce(
    from.libp2p.dialProtocol.bind(from.libp2p),
    to.peerId,
    FROST_PROTOCOL,
    encodeFrostMessage(request),
    {
      maxBytes: 1 << 20,
      signal: AbortSignal.timeout(10_000)
    }
  )
  return decodeFrostMessage(bytes)
}
