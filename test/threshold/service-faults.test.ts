import { strict as assert } from 'node:assert'
import { ed25519 as nobleCurve } from '@noble/curves/ed25519.js'
import { defaultLogger } from '@libp2p/logger'
import { decodeDkgEnvelope, decodeDkgMessage, DKG_PROTOCOL, MAX_DKG_ENVELOPE_BYTES } from '../../protocols/dkg/codec.ts'
import { decodeFrostMessage, FROST_PROTOCOL, MAX_FROST_MESSAGE_BYTES } from '../../protocols/frost/codec.ts'
import { signedBytes } from '../../protocols/signing.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { handleRequests, serveRequests, unhandleRequests } from '../../src/network/rpc.ts'
import { CLUSTER_MESSAGE_DOMAIN } from '../../src/threshold/service.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { tag } from '../spki/fixtures.ts'
import type { DkgEnvelope } from '../../protocols/dkg/codec.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { MembersFailedError, MemberRefusedError } from '../../src/threshold/errors.ts'
import type { Connection } from '@libp2p/interface'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

/** The member side of the DKG protocol, which the fault-injecting handler below wraps. */
type DkgInternals = { answerDkg: (bytes: Uint8Array, connection: Connection) => Promise<Uint8Array> }

/** The member side of the frost protocol. */
type FrostInternals = { answerFrost: (bytes: Uint8Array, connection: Connection) => Promise<Uint8Array> }

/** Where a member's DKG stream breaks: before the member reads the request, or after it answered. */
interface DkgFault {
  request?: (request: DkgEnvelope) => boolean
  answer?: (answer: DkgEnvelope) => boolean
}

/**
 * Replaces `node`'s DKG handler by the real one wrapped with a fault: the stream is reset before
 * the member sees the request, or after the member handled it (its share kept) but before its
 * answer is written — the initiator sees the stream fail either way.
 */
async function injectDkgFault(node: CyberspaceNode, fault: DkgFault): Promise<void> {
  const member = node.cluster as unknown as DkgInternals
  await unhandleRequests(node.libp2p, DKG_PROTOCOL)
  await handleRequests(
    node.libp2p,
    DKG_PROTOCOL,
    serveRequests(
      async (bytes, connection) => {
        if (fault.request?.(decodeDkgEnvelope(bytes)) === true) throw new Error('request lost')
        const answer = await member.answerDkg(bytes, connection)
        if (fault.answer?.(decodeDkgEnvelope(answer)) === true) throw new Error('answer lost')
        return answer
      },
      { maxBytes: MAX_DKG_ENVELOPE_BYTES, timeout: 10_000, log: defaultLogger().forComponent('test:dkg-fault') }
    ),
    { maxInboundStreams: 4 }
  )
  // (every test injects into a fresh trio before its first key generation: no stream is kept yet
  // that the old handler would go on serving)
}

const isDoneAnswer = (answer: DkgEnvelope): boolean => answer.type === 'messages' && answer.done
const carriesConfirmations = (request: DkgEnvelope): boolean =>
  request.type === 'deliver' && request.messages.some(m => decodeDkgMessage(m).type === 'confirm')

/** Three in-process nodes on the memory transport, connected to the first, the initiator. */
async function trio(grant: boolean): Promise<{ nodes: CyberspaceNode[]; ids: PrincipalId[] }> {
  const first = await memoryNode()
  const nodes = [first]
  for (let i = 0; i < 2; i++) nodes.push(await memoryNode({ bootstrap: [first.multiaddrs()[0]] }))
  await waitUntil('both members connected to the initiator', () => first.peers().length === 2)
  const ids = nodes.map(n => principalFromPeerId(n.peerId))
  if (grant) for (const n of nodes.slice(1)) await n.spki.addAclEntry(ids[0], tag('(cyberspace (cluster))'))
  return { nodes, ids }
}

/** Signs a cluster message through `coordinator` and checks it under the cluster key with plain Ed25519. */
async function signAndVerify(coordinator: CyberspaceNode, text: string): Promise<PrincipalId[]> {
  const info = coordinator.cluster.info()!
  const result = await coordinator.cluster.sign(CLUSTER_MESSAGE_DOMAIN, utf8(text))
  assert.ok(nobleCurve.verify(result.signature, signedBytes(CLUSTER_MESSAGE_DOMAIN, utf8(text)), info.groupKey))
  return result.signers
}

describe('cluster key generation when members refuse or answers are lost', function () {
  this.timeout(120_000)
  const started: CyberspaceNode[] = []
  const fresh = async (grant = true): Promise<{ nodes: CyberspaceNode[]; ids: PrincipalId[] }> => {
    const t = await trio(grant)
    started.push(...t.nodes)
    return t
  }
  after(async () => {
    await Promise.all(started.map(async n => await n.stop()))
  })

  it('refuses an init that members have not granted, naming each member with the command that grants it', async () => {
    const { nodes, ids } = await fresh(false)
    const [initiator] = nodes
    await assert.rejects(initiator.cluster.init(ids, 2), (err: MembersFailedError) => {
      assert.equal(err.name, 'MembersFailedError')
      assert.deepEqual(err.members, [ids[1], ids[2]].sort())
      for (const [i, m] of [ids[1], ids[2]].entries()) {
        assert.equal(
          err.reasons.get(m),
          `member ${nodes[i + 1].peerId.toString()} refused: it does not trust this node for ` +
            `(cyberspace (cluster init)); on that member run: cyberspace acl add ${ids[0]} '(cyberspace (cluster))'`
        )
        const refusal = err.errors.get(m) as MemberRefusedError
        assert.equal(refusal.name, 'MemberRefusedError')
        assert.equal(refusal.remoteName, 'NotAuthorizedError')
      }
      // one line per member, in member order
      assert.deepEqual(
        err.message.split('\n'),
        err.members.map(m => err.reasons.get(m))
      )
      return true
    })
    // one member grants: only the other is named
    await nodes[1].spki.addAclEntry(ids[0], tag('(cyberspace (cluster))'))
    await assert.rejects(initiator.cluster.init(ids, 2), (err: MembersFailedError) => {
      assert.deepEqual(err.members, [ids[2]])
      assert.equal(err.culprit, ids[2])
      assert.equal(err.message.split('\n').length, 1)
      return true
    })
    assert.equal(initiator.cluster.info(), undefined)
    await nodes[2].spki.addAclEntry(ids[0], tag('(cyberspace (cluster))'))
    assert.equal((await initiator.cluster.init(ids, 2)).unconfirmed.size, 0)
  })

  it('keeps every share when a member’s last answer is lost once, so t = n members sign afterwards', async () => {
    const { nodes, ids } = await fresh()
    let lost = 0
    await injectDkgFault(nodes[2], { answer: a => isDoneAnswer(a) && lost++ === 0 })
    const info = await nodes[0].cluster.init(ids, 3)
    assert.equal(lost, 2, 'the done answer was lost, and given again when asked again')
    assert.equal(info.unconfirmed.size, 0)
    for (const n of nodes) assert.equal(n.cluster.info()?.principal, info.principal)
    assert.deepEqual((await signAndVerify(nodes[0], 'after a lost answer')).sort(), [...ids].sort())
  })

  it('asks again a member whose last delivery was lost before it arrived', async () => {
    const { nodes, ids } = await fresh()
    let lost = 0
    await injectDkgFault(nodes[1], { request: r => carriesConfirmations(r) && lost++ === 0 })
    const info = await nodes[0].cluster.init(ids, 3)
    assert.equal(lost, 2)
    assert.equal(info.unconfirmed.size, 0)
    for (const n of nodes) assert.equal(n.cluster.info()?.principal, info.principal)
    assert.equal((await signAndVerify(nodes[0], 'after a lost delivery')).length, 3)
  })

  it('asks a member once more on a new stream when the connection drops under a signing request', async () => {
    const { nodes, ids } = await fresh()
    await nodes[0].cluster.init(ids, 3)
    // no frost request went to member 1 yet, so no kept stream bypasses the handler below
    // member 1 drops its connection the first time it is asked to commit, and to sign
    const member = nodes[1].cluster as unknown as FrostInternals
    const dropped: string[] = []
    await unhandleRequests(nodes[1].libp2p, FROST_PROTOCOL)
    await handleRequests(
      nodes[1].libp2p,
      FROST_PROTOCOL,
      serveRequests(
        async (bytes, connection) => {
          const type = decodeFrostMessage(bytes).type
          if ((type === 'commit' || type === 'sign') && !dropped.includes(type)) {
            dropped.push(type)
            connection.abort(new Error(`dropped under ${type}`))
            return await new Promise<Uint8Array>(() => {})
          }
          return await member.answerFrost(bytes, connection)
        },
        { maxBytes: MAX_FROST_MESSAGE_BYTES, timeout: 10_000, log: defaultLogger().forComponent('test:frost-drop') }
      ),
      { maxInboundStreams: 16 }
    )
    const result = await nodes[0].cluster.sign(CLUSTER_MESSAGE_DOMAIN, utf8('through a drop'))
    assert.deepEqual(dropped, ['commit', 'sign'])
    // t = n = 3: had the member been excluded, nothing could have been signed
    assert.deepEqual([...result.excluded.keys()], [])
    assert.equal(result.attempts, 1)
    assert.ok(
      nobleCurve.verify(
        result.signature,
        signedBytes(CLUSTER_MESSAGE_DOMAIN, utf8('through a drop')),
        nodes[0].cluster.info()!.groupKey
      )
    )
  })

  describe('a member whose every last answer is lost', () => {
    let nodes: CyberspaceNode[]
    let ids: PrincipalId[]

    before(async () => {
      ;({ nodes, ids } = await fresh())
      await injectDkgFault(nodes[1], { answer: isDoneAnswer })
    })

    it('is reported unconfirmed while the initiator and it keep their shares, and the cluster signs and refreshes', async () => {
      const info = await nodes[0].cluster.init(ids, 3)
      assert.deepEqual([...info.unconfirmed.keys()], [ids[1]])
      assert.match(
        info.unconfirmed.get(ids[1])!.message,
        new RegExp(
          `^member ${nodes[1].peerId.toString()} did not answer: .*it holds its share if only its answer was lost`
        )
      )
      for (const n of nodes) assert.equal(n.cluster.info()?.principal, info.principal)
      assert.equal((await signAndVerify(nodes[0], 'with the unconfirmed member')).length, 3)
      // every member holds a share of generation 0, so a refresh takes all of them along
      const refreshed = await nodes[0].cluster.refresh()
      assert.equal(refreshed.lagging.size, 0)
      for (const n of nodes) assert.equal(n.cluster.info()?.epoch, 1)
      assert.equal((await signAndVerify(nodes[0], 'after the refresh')).length, 3)
    })

    it('says how many decryption shares it got of how many, and which members did not answer', async () => {
      const ct = nodes[0].cluster.encrypt(utf8('secret'))
      await unhandleRequests(nodes[2].libp2p, FROST_PROTOCOL)
      // a stream kept open for requests stays with the handler that took it: drop them all
      await Promise.all(nodes[2].libp2p.getConnections().map(async c => await c.close()))
      await assert.rejects(nodes[0].cluster.decrypt(ct), (err: Error) => {
        assert.equal(err.name, 'NotEnoughSignersError')
        assert.equal(
          err.message,
          `2 valid decryption shares of 3 needed: member ${nodes[2].peerId.toString()} did not answer`
        )
        return true
      })
      await unhandleRequests(nodes[1].libp2p, FROST_PROTOCOL)
      // a stream kept open for requests stays with the handler that took it: drop them all
      await Promise.all(nodes[1].libp2p.getConnections().map(async c => await c.close()))
      await assert.rejects(nodes[0].cluster.decrypt(ct), (err: Error) => {
        const quiet = [nodes[1], nodes[2]].map(n => n.peerId.toString())
        assert.match(err.message, /^1 valid decryption share of 3 needed: members \S+, \S+ did not answer$/)
        for (const p of quiet) assert.ok(err.message.includes(p))
        return true
      })
    })
  })
})
