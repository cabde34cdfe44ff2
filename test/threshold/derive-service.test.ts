import { strict as assert } from 'node:assert'
import * as dagCbor from '@ipld/dag-cbor'
import { defaultLogger } from '@libp2p/logger'
import {
  decodeFrostMessage,
  encodeFrostMessage,
  FROST_PROTOCOL,
  MAX_FROST_MESSAGE_BYTES
} from '../../protocols/frost/codec.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { handleRequests, requestOnce, serveRequests, unhandleRequests } from '../../src/network/rpc.ts'
import { agentPrincipal, derivationShare } from '../../src/threshold/derive.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { tag } from '../spki/fixtures.ts'
import type { FrostMessage } from '../../protocols/frost/codec.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { AgentSeed } from '../../src/threshold/service.ts'
import type { MemberRefusedError, NotEnoughSignersError, ThresholdError } from '../../src/threshold/errors.ts'
import type { ClusterState } from '../../src/threshold/state.ts'
import type { Connection } from '@libp2p/interface'

/** The service's private parts a test reaches into to play a faulty member or count work. */
interface Internals {
  state: ClusterState
  answerFrost: (bytes: Uint8Array, connection: Connection) => Promise<Uint8Array>
  answerDerive: (...args: unknown[]) => Promise<unknown>
}
const internals = (node: CyberspaceNode): Internals => node.cluster as unknown as Internals

/**
 * Drops `node`'s connections: a stream kept open for requests (served under '<id>/many') stays
 * with the handler that took it, so a replaced handler sees only streams opened after this.
 */
async function hangUpAll(node: CyberspaceNode): Promise<void> {
  await Promise.all(node.libp2p.getConnections().map(async c => await c.close()))
}

/**
 * Replaces `node`'s frost handler by the real one with `rewrite` applied to each answer (or by
 * one that never answers, when `rewrite` returns undefined); `restore` puts the real one back.
 */
async function rewriteAnswers(
  node: CyberspaceNode,
  rewrite: (answer: FrostMessage) => FrostMessage | undefined
): Promise<{ restore: () => Promise<void> }> {
  const member = internals(node)
  const serve = { maxBytes: MAX_FROST_MESSAGE_BYTES, timeout: 10_000, log: defaultLogger().forComponent('test:derive') }
  await unhandleRequests(node.libp2p, FROST_PROTOCOL)
  await handleRequests(
    node.libp2p,
    FROST_PROTOCOL,
    serveRequests(async (bytes, connection) => {
      const changed = rewrite(decodeFrostMessage(await member.answerFrost(bytes, connection)))
      // never answers: the requester gives up on its own
      if (changed == null) return await new Promise<Uint8Array>(() => {})
      return encodeFrostMessage(changed)
    }, serve),
    { maxInboundStreams: 16 }
  )
  await hangUpAll(node)
  return {
    restore: async () => {
      await unhandleRequests(node.libp2p, FROST_PROTOCOL)
      await handleRequests(
        node.libp2p,
        FROST_PROTOCOL,
        serveRequests(async (bytes, connection) => await member.answerFrost(bytes, connection), serve),
        { maxInboundStreams: 16 }
      )
      await hangUpAll(node)
    }
  }
}

/** Counts the partial evaluations a member starts (after decoding, before any scalar work). */
function countDerivations(node: CyberspaceNode): { count: () => number } {
  const member = internals(node)
  const real = member.answerDerive.bind(member)
  let n = 0
  member.answerDerive = async (...args) => {
    n++
    return await real(...args)
  }
  return { count: () => n }
}

async function ask(from: CyberspaceNode, to: CyberspaceNode, request: unknown): Promise<FrostMessage> {
  const bytes = await requestOnce(
    from.libp2p.dialProtocol.bind(from.libp2p),
    to.peerId,
    FROST_PROTOCOL,
    dagCbor.encode(request),
    { maxBytes: MAX_FROST_MESSAGE_BYTES, signal: AbortSignal.timeout(10_000) }
  )
  return decodeFrostMessage(bytes)
}

/** Five in-process members on the memory transport, 3-of-5, over the real protocols. */
describe('agent keys derived by the cluster over /cyberspace/frost (derive)', function () {
  this.timeout(180_000)
  const nodes: CyberspaceNode[] = []
  let outsider: CyberspaceNode
  let ids: PrincipalId[]
  let first: AgentSeed

  before(async () => {
    // the first node waits for every member before deriving, so every bad answer is named;
    // the second keeps the default (members still silent a second after t valid partials are let go);
    // the second gives each peer 10 partials a minute
    nodes.push(await memoryNode({ clusterOptions: { deriveSettle: 60_000 } }))
    const at = [nodes[0].multiaddrs()[0]]
    nodes.push(await memoryNode({ bootstrap: at, clusterOptions: { maxDerivationsPerMinute: 10 } }))
    for (let i = 2; i < 5; i++) nodes.push(await memoryNode({ bootstrap: at }))
    outsider = await memoryNode({ bootstrap: at })
    await waitUntil('every node connected to the first', () => nodes[0].peers().length === 5)
    ids = nodes.map(n => principalFromPeerId(n.peerId))
    for (const n of nodes.slice(1)) await n.spki.addAclEntry(ids[0], tag('(cyberspace (cluster))'))
    await nodes[0].cluster.init(ids.slice(1), 3)
    // nodes 0 and 1 may have workers' keys derived; node 2 may not
    for (const n of nodes)
      for (const requester of ids.slice(0, 2))
        await n.spki.addAclEntry(requester, tag('(cyberspace (agent (derive worker)))'))
  })
  after(async () => {
    await Promise.all([...nodes, outsider].map(async n => await n.stop()))
  })

  it('derives the same seed and principal from one node and from another', async () => {
    first = await nodes[0].cluster.deriveAgentSeed('worker', 'w-1')
    assert.equal(first.seed.length, 32)
    assert.equal(first.principal, await agentPrincipal(first.seed))
    assert.equal(first.signers.length, 3)
    assert.equal(first.excluded.size, 0)
    const again = await nodes[1].cluster.deriveAgentSeed('worker', 'w-1')
    assert.deepEqual(again.seed, first.seed)
    assert.equal(again.principal, first.principal)
    // the t members' partials are checked by their proofs: the partial of each signer is its own
    for (const m of again.signers) assert.ok(ids.includes(m))
    // another id is another agent
    const other = await nodes[1].cluster.deriveAgentSeed('worker', 'w-2')
    assert.notEqual(other.principal, first.principal)
  })

  it('is refused by every member to a requester without the derive grant, naming each with the grant it lacks', async () => {
    await assert.rejects(nodes[2].cluster.deriveAgentSeed('worker', 'w-1'), (err: NotEnoughSignersError) => {
      assert.equal(err.name, 'NotEnoughSignersError')
      assert.match(err.message, /^1 of 5 members gave a valid partial evaluation of agent worker\/w-1; 3 are needed: /)
      assert.deepEqual([...err.failures.keys()].sort(), ids.filter(m => m !== ids[2]).sort())
      for (const e of err.failures.values()) {
        assert.equal(e.name, 'MemberRefusedError')
        assert.equal((e as MemberRefusedError).remoteName, 'NotAuthorizedError')
      }
      assert.ok(err.message.includes(`cyberspace acl add ${ids[2]} '(cyberspace (agent (derive worker)))'`))
      return true
    })
    // a grant for one kind is no grant for another
    await assert.rejects(nodes[0].cluster.deriveAgentSeed('planner', 'p-1'), (err: NotEnoughSignersError) => {
      assert.equal(err.name, 'NotEnoughSignersError')
      assert.equal(err.failures.size, 4)
      for (const e of err.failures.values()) assert.equal((e as MemberRefusedError).remoteName, 'NotAuthorizedError')
      return true
    })
    // on the wire, from a node that is no member either
    const info = nodes[0].cluster.info()!
    const answer = await ask(outsider, nodes[3], {
      v: 1,
      type: 'derive',
      group: info.groupKey,
      epoch: info.epoch,
      kind: 'worker',
      id: 'w-1'
    })
    assert.equal(answer.type === 'error' && answer.name, 'NotAuthorizedError')
  })

  it('refuses a malformed kind or id before any scalar work, at the member and at the requester', async () => {
    const info = nodes[0].cluster.info()!
    const member = nodes[3]
    const counter = countDerivations(member)
    const base = { v: 1, type: 'derive', group: info.groupKey, epoch: info.epoch }
    for (const fields of [
      { kind: 'Worker', id: 'w-1' },
      { kind: 'worker', id: 'w 1' },
      { kind: 'worker', id: 'x'.repeat(65) },
      { kind: '', id: 'w-1' },
      { kind: 'worker', id: 'w-1', point: new Uint8Array(32).fill(9) }
    ]) {
      const answer = await ask(nodes[0], member, { ...base, ...fields })
      assert.equal(answer.type === 'error' && answer.name, 'InvalidFrostMessageError')
    }
    assert.equal(counter.count(), 0)
    // the requester checks the name before it asks anyone
    for (const [kind, id] of [
      ['worker', '../w-1'],
      ['-worker', 'w-1']
    ])
      await assert.rejects(nodes[0].cluster.deriveAgentSeed(kind, id), { name: 'InvalidAgentNameError' })
    assert.equal(counter.count(), 0)
    // a well-formed request from an authorized requester is served
    const ok = await ask(nodes[0], member, { ...base, kind: 'worker', id: 'w-1' })
    assert.equal(ok.type, 'derivation')
    assert.equal(counter.count(), 1)
  })

  it('names and excludes a member whose partial fails its proof, and still derives the same key', async () => {
    const liar = nodes[3]
    const key = internals(liar).state.key
    // a valid partial of the liar, but for another agent's point
    const faulty = await rewriteAnswers(liar, answer =>
      answer.type === 'derivation' ? { ...answer, share: derivationShare(key, 'worker', 'w-9').share } : answer
    )
    try {
      const result = await nodes[0].cluster.deriveAgentSeed('worker', 'w-1')
      assert.deepEqual(result.seed, first.seed)
      assert.equal(result.principal, first.principal)
      assert.ok(!result.signers.includes(ids[3]))
      const err = result.excluded.get(ids[3]) as ThresholdError
      assert.equal(err.name, 'InvalidShareError')
      assert.equal(err.culprit, ids[3])
      assert.equal(result.excluded.size, 1)
    } finally {
      await faulty.restore()
    }
  })

  it('lets a member that never answers go once t valid partials are in', async () => {
    const silent = await rewriteAnswers(nodes[4], answer => (answer.type === 'derivation' ? undefined : answer))
    try {
      const result = await nodes[1].cluster.deriveAgentSeed('worker', 'w-1')
      assert.deepEqual(result.seed, first.seed)
      assert.ok(!result.signers.includes(ids[4]))
      // let go, not failed: it had not answered when the key was derived
      assert.ok(!result.excluded.has(ids[4]))
    } finally {
      await silent.restore()
    }
  })

  it('bounds the partials a peer may ask a member for, authorized or not', async () => {
    const info = nodes[0].cluster.info()!
    const request = { v: 1, type: 'derive', group: info.groupKey, epoch: info.epoch, kind: 'worker', id: 'w-1' }
    const names: string[] = []
    for (let i = 0; i < 12; i++) {
      const a = await ask(outsider, nodes[1], request)
      names.push(a.type === 'error' ? a.name : a.type)
    }
    // 10 a minute, burst 10: the flooder is refused for want of authority, then for want of budget
    assert.deepEqual(names.slice(0, 10), Array(10).fill('NotAuthorizedError'))
    assert.deepEqual(names.slice(10), ['RateLimitedError', 'RateLimitedError'])
    // another peer's budget is its own
    const a = await ask(nodes[0], nodes[1], request)
    assert.equal(a.type, 'derivation')
  })

  it('derives with two members offline, and fails clearly with three', async () => {
    await nodes[4].stop()
    await nodes[3].stop()
    const result = await nodes[0].cluster.deriveAgentSeed('worker', 'w-1')
    assert.deepEqual(result.seed, first.seed)
    assert.equal(result.principal, first.principal)
    assert.deepEqual([...result.excluded.keys()].sort(), [ids[3], ids[4]].sort())
    await nodes[2].stop()
    await assert.rejects(nodes[0].cluster.deriveAgentSeed('worker', 'w-1'), (err: NotEnoughSignersError) => {
      assert.equal(err.name, 'NotEnoughSignersError')
      assert.match(
        err.message,
        /^2 of 5 members gave a valid partial evaluation of agent worker\/w-1; 3 are needed: members \S+, \S+, \S+ did not answer$/
      )
      for (const n of nodes.slice(2)) assert.ok(err.message.includes(n.peerId.toString()))
      assert.deepEqual([...err.failures.keys()].sort(), ids.slice(2).sort())
      return true
    })
  })
})
