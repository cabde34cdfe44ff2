import { strict as assert } from 'node:assert'
import { ed25519 as nobleCurve } from '@noble/curves/ed25519.js'
import { MemoryDatastore } from 'datastore-core'
import { decodeReshareMessage, encodeReshareMessage, RESHARE_PROTOCOL } from '../../protocols/reshare/codec.ts'
import { signedBytes } from '../../protocols/signing.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { requestOnce } from '../../src/network/rpc.ts'
import { makeReshareDeal } from '../../src/threshold/pieces.ts'
import { randomScalar, scalarBytes } from '../../src/threshold/group.ts'
import { CLUSTER_MESSAGE_DOMAIN } from '../../src/threshold/service.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { key, tag } from '../spki/fixtures.ts'
import { signWith } from './fixtures.ts'
import type { ReshareAnswer, ReshareMessage, ReshareRequest } from '../../protocols/reshare/codec.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { MembersFailedError, MemberRefusedError } from '../../src/threshold/errors.ts'
import type { ClusterState, ShareStore } from '../../src/threshold/state.ts'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
/** The service's private parts a test reaches into to play a faulty member or a lost share. */
interface Internals {
  state?: ClusterState
  store: ShareStore
  handleReshare: (request: ReshareRequest, from: PrincipalId) => Promise<ReshareAnswer>
}
const internals = (node: CyberspaceNode): Internals => node.cluster as unknown as Internals

async function signAndVerify(coordinator: CyberspaceNode, text: string): Promise<PrincipalId[]> {
  const info = coordinator.cluster.info()!
  const result = await coordinator.cluster.sign(CLUSTER_MESSAGE_DOMAIN, utf8(text))
  assert.ok(nobleCurve.verify(result.signature, signedBytes(CLUSTER_MESSAGE_DOMAIN, utf8(text)), info.groupKey))
  return result.signers
}

async function ask(from: CyberspaceNode, to: CyberspaceNode, request: ReshareRequest): Promise<ReshareMessage> {
  const bytes = await requestOnce(
    from.libp2p.dialProtocol.bind(from.libp2p),
    to.peerId,
    RESHARE_PROTOCOL,
    encodeReshareMessage(request),
    { maxBytes: 1 << 20, signal: AbortSignal.timeout(10_000) }
  )
  return decodeReshareMessage(bytes)
}

/** Six in-process nodes on the memory transport: A, B, C start a 2-of-3 cluster; D, E join later; F is an outsider. */
describe('repair and resharing over /cyberspace/reshare', function () {
  this.timeout(180_000)
  const nodes: CyberspaceNode[] = []
  let ids: PrincipalId[]
  let a: CyberspaceNode
  let outsider: CyberspaceNode
  let principal: PrincipalId

  const memberCert = async (subject: PrincipalId): Promise<void> => {
    await a.cluster.issue({
      type: 'auth',
      issuer: principal,
      subject: { kind: 'key', principal: subject },
      propagate: false,
      tag: tag('(cyberspace member)'),
      validity: {}
    })
  }

  before(async () => {
    a = await memoryNode({ datastore: new MemoryDatastore() })
    nodes.push(a)
    for (let i = 1; i < 5; i++)
      nodes.push(await memoryNode({ datastore: new MemoryDatastore(), bootstrap: [a.multiaddrs()[0]] }))
    outsider = await memoryNode({ bootstrap: [a.multiaddrs()[0]] })
    await waitUntil('every node connected to A', () => a.peers().length === 5)
    ids = nodes.map(n => principalFromPeerId(n.peerId))
    // every member's operator lets A run the cluster's ceremonies
    for (const n of nodes.slice(1)) await n.spki.addAclEntry(ids[0], tag('(cyberspace (cluster))'))
    principal = (await a.cluster.init(ids.slice(1, 3), 2)).principal
    // the cluster admits all five; every node accepts the cluster's member certificates
    for (const id of ids) await memberCert(id)
    for (const n of nodes) await n.spki.addAclEntry(principal, tag('(cyberspace member)'))
  })
  after(async () => {
    await Promise.all([...nodes, outsider].map(async n => await n.stop()))
  })

  it('refuses a new member without a (cyberspace member) chain, naming it, and changes nothing', async () => {
    const stranger = principalFromPeerId(outsider.peerId)
    await assert.rejects(a.cluster.reshare([...ids.slice(0, 3), stranger], 2), (err: MembersFailedError) => {
      assert.equal(err.name, 'MembersFailedError')
      assert.deepEqual(err.members, [stranger])
      assert.equal(err.errors.get(stranger)?.name, 'NoMemberChainError')
      return true
    })
    assert.equal(a.cluster.info()?.epoch, 0)
  })

  it('fails a resharing with a new member missing, and the old 2-of-3 still signs', async () => {
    const offline = (await key()).id
    await memberCert(offline)
    await assert.rejects(a.cluster.reshare([...ids, offline], 3), (err: MembersFailedError) => {
      assert.equal(err.name, 'MembersFailedError')
      assert.deepEqual(err.members, [offline])
      return true
    })
    for (const n of nodes.slice(0, 3)) assert.equal(n.cluster.info()?.epoch, 0)
    for (const n of nodes.slice(3)) assert.equal(n.cluster.info(), undefined)
    assert.equal((await signAndVerify(a, 'the old set still signs')).length, 2)
  })

  it('refuses an unauthorized coordinator with a named error at every member', async () => {
    const b = nodes[1]
    // B's operator imported the members' certificates, so B's own check of the new set passes
    for (const cert of a.spki.certs()) await b.spki.addCert(cert)
    // B holds a share, but neither A nor C lets B run the cluster's ceremonies
    await assert.rejects(b.cluster.reshare(ids, 3), (err: Error) => {
      assert.equal(err.name, 'NotEnoughSignersError')
      assert.match(err.message, /does not trust this node for \(cyberspace \(cluster reshare\)\)/)
      return true
    })
    const info = a.cluster.info()!
    const answer = await ask(outsider, nodes[2], {
      v: 1,
      type: 'reshare-deal',
      group: info.groupKey,
      epoch: 0,
      session: crypto.getRandomValues(new Uint8Array(32)),
      members: [...ids].sort(),
      threshold: 3,
      dealers: ids.slice(0, 2).sort()
    })
    assert.equal(answer.type === 'error' && answer.name, 'NotAuthorizedError')
    assert.equal(await a.cluster.sign(CLUSTER_MESSAGE_DOMAIN, utf8('unchanged')).then(r => r.signers.length), 2)
  })

  it('detects a dealer that deals from a share that is not its own and names it; nothing changes', async () => {
    const c = nodes[2]
    const member = internals(c)
    const honest = member.handleReshare.bind(member)
    member.handleReshare = async (request, from) => {
      if (request.type !== 'reshare-deal') return await honest(request, from)
      const answer = await honest(request, from)
      // a properly signed deal made from a forged share
      const state = member.state!
      const forged = {
        ...state,
        key: { ...state.key, secret: { ...state.key.secret, signingShare: scalarBytes(randomScalar()) } }
      }
      const { deal } = await makeReshareDeal(
        forged,
        ids[2],
        (c.cluster as unknown as { seed: () => Uint8Array }).seed(),
        request.session,
        {
          members: request.members as PrincipalId[],
          threshold: request.threshold,
          dealers: request.dealers as PrincipalId[]
        }
      )
      return answer.type === 'piece' ? { ...answer, piece: deal } : answer
    }
    try {
      // A's own share is dealt first: B is left out so that C deals
      await nodes[1].stop()
      await assert.rejects(a.cluster.reshare([ids[0], ids[2], ids[3]], 2), (err: MembersFailedError) => {
        assert.equal(err.name, 'MembersFailedError')
        assert.equal(err.culprit, ids[2])
        const refusal = err.errors.get(ids[3]) as MemberRefusedError
        assert.equal(refusal.remoteName, 'InvalidShareError')
        assert.match(refusal.remoteMessage, new RegExp(`deal of ${ids[2]} is bad: its constant term`))
        return true
      })
    } finally {
      member.handleReshare = honest
      await nodes[1].start()
      await nodes[1].libp2p.dial(a.multiaddrs()[0])
    }
    assert.equal(c.cluster.info()?.epoch, 0)
    assert.equal(nodes[3].cluster.info(), undefined)
    assert.equal((await signAndVerify(a, 'still the old shares')).length, 2)
  })

  it('reshares 2-of-3 to 3-of-5: the principal is unchanged and the new set signs', async () => {
    const steps: string[] = []
    const result = await a.cluster.reshare(ids, 3, { onProgress: p => steps.push(p.step) })
    assert.equal(result.principal, principal)
    assert.equal(result.epoch, 1)
    assert.equal(result.threshold, 3)
    assert.equal(result.lagging.size, 0)
    assert.deepEqual(steps, ['check', 'deal', 'stage', 'commit'])
    for (const n of nodes) {
      const info = n.cluster.info()!
      assert.equal(info.principal, principal)
      assert.equal(info.epoch, 1)
      assert.deepEqual(info.members, [...ids].sort())
    }
    assert.equal((await signAndVerify(a, 'the five sign')).length, 3)
  })

  it('repairs a lost share from t helpers: the member signs again with the same share', async () => {
    const d = nodes[3]
    const before = internals(d).state!.key
    await internals(d).store.remove('current')
    await d.stop()
    await d.start()
    await d.libp2p.dial(a.multiaddrs()[0])
    assert.equal(d.cluster.info(), undefined)
    const repaired = await a.cluster.repair(ids[3])
    assert.equal(repaired.helpers.length, 3)
    assert.ok(!repaired.helpers.includes(ids[3]))
    const after = internals(d).state!.key
    assert.deepEqual(after.secret.signingShare, before.secret.signingShare)
    assert.equal(d.cluster.info()?.epoch, 1)
    const msg = utf8('signed with a repaired share')
    const sig = signWith([after, internals(nodes[0]).state!.key, internals(nodes[4]).state!.key], msg)
    assert.ok(nobleCurve.verify(sig, msg, a.cluster.info()!.groupKey))
  })

  it('refuses to repair a non-member, locally and on the wire', async () => {
    const stranger = principalFromPeerId(outsider.peerId)
    await assert.rejects(a.cluster.repair(stranger), { name: 'NotAMemberError' })
    const info = a.cluster.info()!
    const answer = await ask(a, nodes[1], {
      v: 1,
      type: 'repair-deal',
      group: info.groupKey,
      epoch: info.epoch,
      session: crypto.getRandomValues(new Uint8Array(32)),
      member: stranger,
      helpers: [ids[0], ids[1], ids[2]].sort()
    })
    assert.equal(answer.type === 'error' && answer.name, 'NotAMemberError')
    // asked by a peer that holds no repair grant
    const refused = await ask(outsider, nodes[1], {
      v: 1,
      type: 'repair-deal',
      group: info.groupKey,
      epoch: info.epoch,
      session: crypto.getRandomValues(new Uint8Array(32)),
      member: ids[3],
      helpers: [ids[0], ids[1], ids[2]].sort()
    })
    assert.equal(refused.type === 'error' && refused.name, 'NotAuthorizedError')
  })

  it('a member keeps its share when told to retire without deals and signed switches that hold up', async () => {
    const info = a.cluster.info()!
    const four = [ids[0], ids[1], ids[3], ids[4]].sort()
    // a commit is for new members only: a removed member is never retired by one
    const commit = await ask(a, nodes[2], {
      v: 1,
      type: 'reshare-commit',
      group: info.groupKey,
      epoch: info.epoch + 1,
      session: crypto.getRandomValues(new Uint8Array(32)),
      digest: crypto.getRandomValues(new Uint8Array(32)),
      members: four,
      acks: four.map(from => ({ from, sig: crypto.getRandomValues(new Uint8Array(64)) }))
    })
    assert.equal(commit.type === 'error' && commit.name, 'NotAMemberError')
    const retire: ReshareRequest = {
      v: 1,
      type: 'reshare-retire',
      group: info.groupKey,
      epoch: info.epoch + 1,
      session: crypto.getRandomValues(new Uint8Array(32)),
      deals: [crypto.getRandomValues(new Uint8Array(200)), crypto.getRandomValues(new Uint8Array(200))],
      switched: four.map(from => ({ from, sig: crypto.getRandomValues(new Uint8Array(64)) }))
    }
    const forged = await ask(a, nodes[2], retire)
    assert.equal(forged.type === 'error' && forged.name, 'NotEnoughSignersError')
    // and from a peer without the reshare grant, nothing is even checked
    const stranger = await ask(outsider, nodes[2], retire)
    assert.equal(stranger.type === 'error' && stranger.name, 'NotAuthorizedError')
    assert.equal(nodes[2].cluster.info()?.epoch, info.epoch)
  })

  it('reshares 3-of-5 to 2-of-4: the removed member deletes its share, and old shares are useless with new ones', async () => {
    const removed = nodes[2]
    const oldKeys = nodes.map(n => internals(n).state!.key)
    const four = [ids[0], ids[1], ids[3], ids[4]]
    const result = await a.cluster.reshare(four, 2)
    assert.equal(result.principal, principal)
    assert.equal(result.epoch, 2)
    assert.equal(result.retained.size, 0)
    assert.equal(removed.cluster.info(), undefined)
    assert.equal(await internals(removed).store.load('current'), undefined)
    for (const i of [0, 1, 3, 4]) assert.equal(nodes[i].cluster.info()?.epoch, 2)
    assert.equal((await signAndVerify(a, 'the four sign')).length, 2)
    const msg = utf8('mixing generations')
    const groupKey = a.cluster.info()!.groupKey
    const newKey = internals(nodes[1]).state!.key
    // the removed member's old share with a new one, and a continuing member's old share with a new one
    for (const old of [oldKeys[2], oldKeys[0]]) {
      let sig: Uint8Array | undefined
      try {
        sig = signWith([{ public: newKey.public, secret: old.secret }, newKey], msg)
      } catch {}
      assert.ok(sig == null || !nobleCurve.verify(sig, msg, groupKey))
    }
    // old-generation requests are refused by the new members
    const answer = await ask(removed, nodes[1], {
      v: 1,
      type: 'repair-deal',
      group: groupKey,
      epoch: 1,
      session: crypto.getRandomValues(new Uint8Array(32)),
      member: ids[3],
      helpers: [ids[0], ids[1]].sort()
    })
    assert.equal(answer.type, 'error')
  })
})
