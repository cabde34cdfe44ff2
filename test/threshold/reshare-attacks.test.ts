import { strict as assert } from 'node:assert'
import { ed25519 as nobleCurve } from '@noble/curves/ed25519.js'
import { MemoryDatastore } from 'datastore-core'
import {
  decodeReshareDeal,
  decodeReshareMessage,
  encodeRepairSum,
  encodeReshareDeal,
  encodeReshareMessage,
  packageDigest,
  pieceSigningBody,
  REPAIR_SUM_DOMAIN,
  RESHARE_ACK_DOMAIN,
  RESHARE_DEAL_DOMAIN,
  RESHARE_PROTOCOL,
  RESHARE_SWITCHED_DOMAIN,
  reshareAckBody
} from '../../protocols/reshare/codec.ts'
import { signedBytes } from '../../protocols/signing.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { signAs } from '../../src/crypto/sign.ts'
import { requestOnce } from '../../src/network/rpc.ts'
import {
  evaluate,
  evaluateCommitments,
  Fn,
  identifierScalar,
  lagrange,
  memberIdentifier,
  Point,
  randomScalar,
  scalarBytes
} from '../../src/threshold/group.ts'
import { makeRepairSum, makeReshareDeal } from '../../src/threshold/pieces.ts'
import { resharedPublic } from '../../src/threshold/reshare.ts'
import { sealScalars } from '../../src/threshold/seal.ts'
import { CLUSTER_MESSAGE_DOMAIN } from '../../src/threshold/service.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { key, tag } from '../spki/fixtures.ts'
import type { PublicPackage, ReshareAnswer, ReshareMessage, ReshareRequest } from '../../protocols/reshare/codec.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { GroupPoint } from '../../src/threshold/group.ts'
import type { ClusterState, ShareStore } from '../../src/threshold/state.ts'
import type { Key } from '../spki/fixtures.ts'

/**
 * The attacker of these tests is the coordinator every member lets run the cluster's ceremonies
 * (A, with `(cyberspace (cluster))` at every member) gone rogue, or a single faulty helper: what
 * it can make a member store, stage, switch to or delete.
 */
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
const x = (m: PrincipalId): bigint => identifierScalar(memberIdentifier(m))
const bytesOf = (p: GroupPoint): Uint8Array => p.toBytes()
const SUM_INFO = 'cyberspace/repair-sum/v1'
const SHARE_INFO = 'cyberspace/reshare-share/v1'

interface Internals {
  state?: ClusterState
  store: ShareStore
  seed: () => Uint8Array
  handleReshare: (request: ReshareRequest, from: PrincipalId) => Promise<ReshareAnswer>
}
const internals = (node: CyberspaceNode): Internals => node.cluster as unknown as Internals

async function ask(from: CyberspaceNode, to: CyberspaceNode, request: ReshareRequest): Promise<ReshareMessage> {
  const bytes = await requestOnce(
    from.libp2p.dialProtocol.bind(from.libp2p),
    to.peerId,
    RESHARE_PROTOCOL,
    encodeReshareMessage(request),
    { maxBytes: 1 << 20, signal: AbortSignal.timeout(20_000) }
  )
  return decodeReshareMessage(bytes)
}

const refusal = (answer: ReshareMessage): string => (answer.type === 'error' ? answer.name : `answered ${answer.type}`)

/** Made-up keys the attacker holds, sorted by principal. */
async function madeUp(n: number): Promise<Key[]> {
  const ks = await Promise.all(Array.from({ length: n }, async () => await key()))
  return ks.sort((p, q) => (p.id < q.id ? -1 : 1))
}

/**
 * A 2-of-n package of the real group key `group` that the attacker made up: `victim`'s verifying
 * share is s·B for an s the attacker knows (the other members' are points nobody can open).
 */
function forgedPackage(group: Uint8Array, members: PrincipalId[], victim: PrincipalId, epoch: number, s: bigint) {
  const y = Point.fromBytes(group)
  const c1 = Point.BASE.multiply(s)
    .subtract(y)
    .multiply(Fn.inv(x(victim)))
  return {
    members,
    threshold: 2,
    epoch,
    commitments: [group, bytesOf(c1)],
    verifyingShares: members.map(m => bytesOf(evaluateCommitments([y, c1], x(m))))
  }
}

/** A repair sum `value` from `helper` (a made-up key) to `member`, signed and sealed as an honest one is. */
async function forgedSum(pkg: PublicPackage, helper: Key, member: PrincipalId, session: Uint8Array, value: bigint) {
  const sealed = sealScalars(SUM_INFO, session, helper.id, [{ to: member, secret: scalarBytes(value) }])
  const sum = {
    v: 1 as const,
    group: pkg.commitments[0],
    epoch: pkg.epoch,
    session,
    member,
    digest: packageDigest(pkg),
    from: helper.id,
    ephemeral: sealed.ephemeral,
    box: sealed.boxes[0].box,
    sig: new Uint8Array(64) as Uint8Array
  }
  sum.sig = await signAs(helper.secret, REPAIR_SUM_DOMAIN, pieceSigningBody(sum))
  return encodeRepairSum(sum)
}

/**
 * A resharing of the real group key `group` to `victim` and `other` (made up), dealt by two made-up
 * "old members" whose old package the attacker also made up: every check of the victim's passes
 * unless it knows the old package is not its own.
 */
async function forgedResharing(group: Uint8Array, victim: PrincipalId, epoch: number, session: Uint8Array) {
  const dealerKeys = await madeUp(2)
  const [other] = await madeUp(1)
  const dealers = dealerKeys.map(k => k.id)
  const members = [victim, other.id].sort() as PrincipalId[]
  const y = Point.fromBytes(group)
  const lambdas = dealers.map(d => lagrange(dealers.map(x), x(d)))
  // dealer 0 knows its whole polynomial; dealer 1's constant is whatever makes the sum the group key
  const a = [randomScalar(), randomScalar()]
  const c0 = [Point.BASE.multiply(a[0]), y.subtract(Point.BASE.multiply(a[0]))]
  const share1 = randomScalar()
  const c11 = Point.BASE.multiply(share1)
    .subtract(c0[1])
    .multiply(Fn.inv(x(victim)))
  const polys = [
    [c0[0], Point.BASE.multiply(a[1])],
    [c0[1], c11]
  ]
  const shares = [evaluate(a, x(victim)), share1]
  const oldPackage: PublicPackage = {
    members: dealers,
    threshold: 2,
    epoch,
    commitments: [group, bytesOf(Point.BASE)],
    verifyingShares: dealers.map((_, i) => bytesOf(c0[i].multiply(Fn.inv(lambdas[i]))))
  }
  const deals = await Promise.all(
    dealerKeys.map(async (k, i) => {
      const sealed = sealScalars(SHARE_INFO, session, k.id, [{ to: victim, secret: scalarBytes(shares[i]) }])
      const deal = {
        v: 1 as const,
        group,
        epoch,
        digest: packageDigest(oldPackage),
        session,
        members,
        threshold: 2,
        dealers,
        from: k.id,
        commitments: polys[i].map(bytesOf),
        ephemeral: sealed.ephemeral,
        boxes: sealed.boxes,
        sig: new Uint8Array(64) as Uint8Array
      }
      deal.sig = await signAs(k.secret, RESHARE_DEAL_DOMAIN, pieceSigningBody(deal))
      return encodeReshareDeal(deal)
    })
  )
  const apply: ReshareRequest = {
    v: 1,
    type: 'reshare-apply',
    session,
    package: oldPackage,
    members,
    threshold: 2,
    dealers,
    deals
  }
  return { apply, other }
}

describe('repair and resharing against a rogue coordinator and faulty helpers', function () {
  this.timeout(180_000)
  const nodes: CyberspaceNode[] = []
  let ids: PrincipalId[]
  let a: CyberspaceNode
  let c: CyberspaceNode
  let principal: PrincipalId
  let groupKey: Uint8Array

  const shareOf = (n: CyberspaceNode): Uint8Array | undefined => internals(n).state?.key.secret.signingShare
  const signs = async (text: string): Promise<number> => {
    const result = await a.cluster.sign(CLUSTER_MESSAGE_DOMAIN, utf8(text))
    assert.ok(nobleCurve.verify(result.signature, signedBytes(CLUSTER_MESSAGE_DOMAIN, utf8(text)), groupKey))
    return result.signers.length
  }

  before(async () => {
    a = await memoryNode({ datastore: new MemoryDatastore() })
    nodes.push(a)
    for (let i = 1; i < 4; i++)
      nodes.push(await memoryNode({ datastore: new MemoryDatastore(), bootstrap: [a.multiaddrs()[0]] }))
    c = nodes[2]
    await waitUntil('every node connected to A', () => a.peers().length === 3)
    ids = nodes.map(n => principalFromPeerId(n.peerId))
    for (const n of nodes.slice(1)) await n.spki.addAclEntry(ids[0], tag('(cyberspace (cluster))'))
    const info = await a.cluster.init(ids.slice(1, 3), 2)
    principal = info.principal
    groupKey = info.groupKey
    for (const id of ids)
      await a.cluster.issue({
        type: 'auth',
        issuer: principal,
        subject: { kind: 'key', principal: id },
        propagate: false,
        tag: tag('(cyberspace member)'),
        validity: {}
      })
    for (const n of nodes) await n.spki.addAclEntry(principal, tag('(cyberspace member)'))
  })
  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it('a repair with a made-up package of the same group never replaces a member’s share', async () => {
    const before = shareOf(c)!
    const helpers = await madeUp(2)
    for (const epoch of [0, 1, 7]) {
      const s = randomScalar()
      const members = [ids[2], ...helpers.map(h => h.id)].sort() as PrincipalId[]
      const pkg = forgedPackage(groupKey, members, ids[2], epoch, s)
      const session = crypto.getRandomValues(new Uint8Array(32))
      const r = randomScalar()
      const sums = [
        await forgedSum(pkg, helpers[0], ids[2], session, r),
        await forgedSum(pkg, helpers[1], ids[2], session, Fn.sub(s, r))
      ]
      const answer = await ask(a, c, { v: 1, type: 'repair-share', session, package: pkg, sums })
      // at its own generation it compares packages; at a later one the helpers must be members it knows of
      assert.equal(refusal(answer), epoch === 0 ? 'EquivocationError' : 'NoMemberChainError', `generation ${epoch}`)
      assert.deepEqual(shareOf(c), before)
      assert.equal(c.cluster.info()?.epoch, 0)
    }
    assert.equal(await signs('C still holds its own share'), 2)
  })

  it('a resharing from a made-up old package is never staged by a member that holds the real one', async () => {
    const before = shareOf(c)!
    for (const epoch of [0, 3]) {
      const session = crypto.getRandomValues(new Uint8Array(32))
      const { apply } = await forgedResharing(groupKey, ids[2], epoch, session)
      const answer = await ask(a, c, apply)
      assert.equal(refusal(answer), epoch === 0 ? 'EquivocationError' : 'NoMemberChainError', `generation ${epoch}`)
      await ask(a, c, { v: 1, type: 'reshare-abort', session })
    }
    assert.deepEqual(shareOf(c), before)
    assert.equal(await internals(c).store.load('staged'), undefined)
  })

  it('a retire acked by keys the coordinator made up never deletes a share', async () => {
    const fakes = await madeUp(2)
    const session = crypto.getRandomValues(new Uint8Array(32))
    const digest = crypto.getRandomValues(new Uint8Array(32))
    const acks = await Promise.all(
      fakes.map(async k => ({
        from: k.id,
        sig: await signAs(k.secret, RESHARE_ACK_DOMAIN, reshareAckBody(groupKey, 1, session, digest))
      }))
    )
    const answer = await ask(a, c, {
      v: 1,
      type: 'reshare-commit',
      group: groupKey,
      epoch: 1,
      session,
      digest,
      members: fakes.map(k => k.id),
      acks
    })
    assert.equal(refusal(answer), 'NotAMemberError', 'C retired on the word of made-up keys')
    assert.ok(c.cluster.info() != null)
    assert.ok((await internals(c).store.load('current')) != null)
  })

  it('a retire needs deals by members of the retiree’s own generation and t_new signed switches', async () => {
    const session = crypto.getRandomValues(new Uint8Array(32))
    const plan = {
      members: [ids[0], ids[1], ids[3]].sort() as PrincipalId[],
      threshold: 2,
      dealers: ids.slice(0, 2).sort() as PrincipalId[]
    }
    const retire = (deals: Uint8Array[], switched: Array<{ from: string; sig: Uint8Array }>): ReshareRequest => ({
      v: 1,
      type: 'reshare-retire',
      group: groupKey,
      epoch: 1,
      session,
      deals,
      switched
    })
    // dealt by keys the coordinator made up, and "switched" by them
    const { apply, other } = await forgedResharing(groupKey, ids[3], 0, session)
    const fakeSwitch = [{ from: other.id, sig: await signAs(other.secret, RESHARE_SWITCHED_DOMAIN, utf8('x')) }]
    const madeUpDeals = (apply as Extract<ReshareRequest, { type: 'reshare-apply' }>).deals
    assert.equal(refusal(await ask(a, c, retire(madeUpDeals, [...fakeSwitch, ...fakeSwitch]))), 'NotAMemberError')
    // real deals of A and B (a resharing that leaves C out), but only one new member signed it switched
    const deals = await Promise.all(
      [nodes[0], nodes[1]].map(async (n, i) => {
        const { deal } = await makeReshareDeal(internals(n).state!, ids[i], internals(n).seed(), session, plan)
        return deal
      })
    )
    const sum = deals
      .map(d => decodeReshareDeal(d).commitments.map(cm => Point.fromBytes(cm)))
      .reduce((acc, cs) => acc.map((p, k) => p.add(cs[k])))
    const pub = resharedPublic(groupKey, plan.members, 2, sum)
    const digest = packageDigest({
      members: plan.members,
      threshold: 2,
      epoch: 1,
      commitments: pub.commitments,
      verifyingShares: plan.members.map(m => pub.verifyingShares[memberIdentifier(m)])
    })
    const body = reshareAckBody(groupKey, 1, session, digest)
    const switchedA = { from: ids[0], sig: await signAs(internals(a).seed(), RESHARE_SWITCHED_DOMAIN, body) }
    const forgedD = { from: ids[3], sig: crypto.getRandomValues(new Uint8Array(64)) }
    assert.equal(refusal(await ask(a, c, retire(deals, [switchedA, forgedD]))), 'NotEnoughSignersError')
    assert.equal(refusal(await ask(a, c, retire(deals, [switchedA, switchedA]))), 'NotEnoughSignersError')
    // the same deals sent to a member of the new set: it is not retired
    const toB = await ask(a, nodes[1], retire(deals, [switchedA, forgedD]))
    assert.equal(refusal(toB), 'NotAMemberError')
    assert.ok((await internals(c).store.load('current')) != null)
    assert.ok((await internals(nodes[1]).store.load('current')) != null)
    assert.equal(await signs('nothing was deleted'), 2)
  })

  it('a helper that sends a bad sum makes the repair fail at the member, which stores nothing', async () => {
    const before = shareOf(c)!
    await internals(c).store.remove('current')
    await c.stop()
    await c.start()
    await c.libp2p.dial(a.multiaddrs()[0])
    assert.equal(c.cluster.info(), undefined)
    const b = internals(nodes[1])
    const honest = b.handleReshare.bind(b)
    b.handleReshare = async (request, from) => {
      const answer = await honest(request, from)
      if (request.type !== 'repair-sum') return answer
      const wrong = await makeRepairSum(b.state!, ids[1], b.seed(), request.session, request.member as PrincipalId, [
        scalarBytes(randomScalar())
      ])
      return { v: 1, type: 'piece', piece: wrong }
    }
    try {
      await assert.rejects(a.cluster.repair(ids[2]), (err: Error & { remoteName?: string }) => {
        assert.equal(err.name, 'MemberRefusedError')
        assert.equal(err.remoteName, 'InvalidShareError')
        return true
      })
    } finally {
      b.handleReshare = honest
    }
    assert.equal(c.cluster.info(), undefined)
    assert.equal(await internals(c).store.load('current'), undefined)
    await a.cluster.repair(ids[2])
    assert.deepEqual(shareOf(c), before)
  })

  it('one resharing at a time per coordinator; a real one retires C, and its retire replayed changes nothing', async () => {
    const seen: ReshareRequest[] = []
    const cc = internals(c)
    const honest = cc.handleReshare.bind(cc)
    cc.handleReshare = async (request, from) => {
      if (request.type === 'reshare-retire') seen.push(request)
      return await honest(request, from)
    }
    const three = [ids[0], ids[1], ids[3]]
    try {
      const first = a.cluster.reshare(three, 2)
      await assert.rejects(a.cluster.reshare(three, 2), { name: 'SigningRefusedError' })
      const result = await first
      assert.equal(result.epoch, 1)
      assert.equal(result.retained.size, 0)
      assert.equal(result.lagging.size, 0)
    } finally {
      cc.handleReshare = honest
    }
    assert.equal(c.cluster.info(), undefined)
    assert.equal(await internals(c).store.load('current'), undefined)
    for (const i of [0, 1, 3]) assert.equal(nodes[i].cluster.info()?.epoch, 1)
    assert.equal(await signs('A, B and D sign'), 2)
    assert.equal(seen.length, 1)
    // the retire replayed to a member of the new set, and to C again
    assert.equal(refusal(await ask(a, nodes[1], seen[0])), 'WrongEpochError')
    assert.equal(refusal(await ask(a, c, seen[0])), 'answered retired')
    for (const i of [0, 1, 3]) assert.equal(nodes[i].cluster.info()?.epoch, 1)
  })
})
