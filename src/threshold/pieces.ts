/**
 * The signed, sealed pieces of share repair and resharing as they travel through a coordinator
 * (`/cyberspace/reshare/1.0.0`, protocols/reshare/README.md): each is signed by the member that
 * made it and carries its secrets sealed to their recipients (seal.ts), so the coordinator can
 * drop pieces but neither read, alter nor forge them. Opening checks signature, group, epoch,
 * session and plan, and names the member whose piece is bad.
 *
 * @example
 * const { deal, own } = await makeRepairDeal(state, self, seed, session, lost, helpers)
 * const pieces = await openRepairDeals(state, self, seed, session, lost, helpers, deals, own)
 */
import { equalBytes } from '@noble/curves/utils.js'
import {
  decodeRepairDeal,
  decodeRepairSum,
  decodeReshareDeal,
  encodeRepairDeal,
  encodeRepairSum,
  encodeReshareDeal,
  packageDigest,
  pieceSigningBody,
  REPAIR_DEAL_DOMAIN,
  REPAIR_SUM_DOMAIN,
  RESHARE_DEAL_DOMAIN,
  RESHARE_SWITCHED_DOMAIN,
  reshareAckBody
} from '../../protocols/reshare/codec.ts'
import { principalPublicKey } from '../crypto/principal.ts'
import { signAs, verifyAs } from '../crypto/sign.ts'
import {
  EquivocationError,
  InvalidShareError,
  MessageSignatureError,
  NotAMemberError,
  NotEnoughSignersError,
  WrongSessionError
} from './errors.ts'
import { memberIdentifier, parsePoint } from './group.ts'
import { repairShares, sumRepairShares } from './refresh.ts'
import { dealReshare, resharedPublic } from './reshare.ts'
import { openBoxFor, openScalar, sealScalars } from './seal.ts'
import { groupKeyOf, publicPackage } from './state.ts'
import type { PublicPackage, RepairDeal, RepairSum, ReshareDeal } from '../../protocols/reshare/codec.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { GroupPoint } from './group.ts'
import type { ReceivedReshare } from './reshare.ts'
import type { ClusterState } from './state.ts'

const PIECE_INFO = 'cyberspace/repair-piece/v1'
const SUM_INFO = 'cyberspace/repair-sum/v1'
const SHARE_INFO = 'cyberspace/reshare-share/v1'

/** What a resharing is for: the new members, the new threshold and the old members that deal. */
export interface ResharePlan {
  members: PrincipalId[]
  threshold: number
  dealers: PrincipalId[]
}

const sameList = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i])

async function checkSignature(
  domain: string,
  piece: { from: string; sig: Uint8Array },
  allowed: readonly string[],
  what: string
): Promise<PrincipalId> {
  const from = piece.from as PrincipalId
  if (!allowed.includes(from)) throw new NotAMemberError(`a ${what} from ${from.slice(0, 64)}, who takes no part`)
  if (!(await verifyAs(principalPublicKey(from), domain, pieceSigningBody(piece), piece.sig)))
    throw new MessageSignatureError(`a ${what} claiming to be from ${from} is not signed by it`, from)
  return from
}

// ---------------------------------------------------------------- repair

/** Helper `self`'s pieces for repairing `member`'s share, signed; `own` is the piece it keeps. */
export async function makeRepairDeal(
  state: ClusterState,
  self: PrincipalId,
  seed: Uint8Array,
  session: Uint8Array,
  member: PrincipalId,
  helpers: PrincipalId[]
): Promise<{ deal: Uint8Array; own: Uint8Array }> {
  const pieces = repairShares(state.key, self, helpers, member)
  const own = pieces.get(self) as Uint8Array
  const sealed = sealScalars(
    PIECE_INFO,
    session,
    self,
    helpers.filter(h => h !== self).map(to => ({ to, secret: pieces.get(to) as Uint8Array }))
  )
  const unsigned: RepairDeal = {
    v: 1,
    group: groupKeyOf(state),
    epoch: state.epoch,
    session,
    member,
    helpers,
    from: self,
    ephemeral: sealed.ephemeral,
    boxes: sealed.boxes,
    sig: new Uint8Array(64)
  }
  unsigned.sig = await signAs(seed, REPAIR_DEAL_DOMAIN, pieceSigningBody(unsigned))
  return { deal: encodeRepairDeal(unsigned), own }
}

/** The pieces dealt to helper `self` by every helper (its own included), each deal checked. */
export async function openRepairDeals(
  state: ClusterState,
  self: PrincipalId,
  seed: Uint8Array,
  session: Uint8Array,
  member: PrincipalId,
  helpers: PrincipalId[],
  deals: Uint8Array[],
  own: { deal: Uint8Array; piece: Uint8Array }
): Promise<Uint8Array[]> {
  if (!deals.some(d => equalBytes(d, own.deal)))
    throw new EquivocationError('the repair does not carry this helper’s own deal')
  const pieces: Uint8Array[] = [own.piece]
  const seen = new Set<string>([self])
  for (const bytes of deals) {
    const deal = decodeRepairDeal(bytes)
    const from = await checkSignature(REPAIR_DEAL_DOMAIN, deal, helpers, 'repair deal')
    if (from === self) continue
    if (seen.has(from)) throw new EquivocationError(`two repair deals from ${from}`, from)
    seen.add(from)
    if (
      !equalBytes(deal.group, groupKeyOf(state)) ||
      deal.epoch !== state.epoch ||
      !equalBytes(deal.session, session) ||
      deal.member !== member ||
      !sameList(deal.helpers, helpers)
    )
      throw new WrongSessionError(`the repair deal of ${from} is for another repair`, from)
    pieces.push(openBoxFor(PIECE_INFO, session, from, self, seed, deal, 'repair piece'))
  }
  const missing = helpers.filter(h => !seen.has(h))
  if (missing.length > 0) throw new InvalidShareError(`no repair deal from ${missing.join(', ')}`, missing[0])
  return pieces
}

/** Helper `self`'s sum of its pieces, sealed to `member` and signed with the group's package digest. */
export async function makeRepairSum(
  state: ClusterState,
  self: PrincipalId,
  seed: Uint8Array,
  session: Uint8Array,
  member: PrincipalId,
  pieces: Uint8Array[]
): Promise<Uint8Array> {
  const sealed = sealScalars(SUM_INFO, session, self, [{ to: member, secret: sumRepairShares(pieces) }])
  for (const p of pieces) p.fill(0)
  const unsigned: RepairSum = {
    v: 1,
    group: groupKeyOf(state),
    epoch: state.epoch,
    session,
    member,
    digest: packageDigest(publicPackage(state)),
    from: self,
    ephemeral: sealed.ephemeral,
    box: sealed.boxes[0].box,
    sig: new Uint8Array(64)
  }
  unsigned.sig = await signAs(seed, REPAIR_SUM_DOMAIN, pieceSigningBody(unsigned))
  return encodeRepairSum(unsigned)
}

/**
 * The sums sent to member `self` for its repair, each from a distinct member of `pkg`, all for
 * this package, session and member; `threshold` of them, opened, and the helpers that signed them.
 */
export async function openRepairSums(
  pkg: PublicPackage,
  self: PrincipalId,
  seed: Uint8Array,
  session: Uint8Array,
  sums: Uint8Array[]
): Promise<{ values: Uint8Array[]; helpers: PrincipalId[] }> {
  if (sums.length !== pkg.threshold) throw new InvalidShareError(`a repair takes exactly ${pkg.threshold} sums`)
  const digest = packageDigest(pkg)
  const seen = new Set<string>()
  const out: Uint8Array[] = []
  for (const bytes of sums) {
    const sum = decodeRepairSum(bytes)
    const from = await checkSignature(
      REPAIR_SUM_DOMAIN,
      sum,
      pkg.members.filter(m => m !== self),
      'repair sum'
    )
    if (seen.has(from)) throw new EquivocationError(`two repair sums from ${from}`, from)
    seen.add(from)
    if (
      !equalBytes(sum.group, pkg.commitments[0]) ||
      sum.epoch !== pkg.epoch ||
      !equalBytes(sum.session, session) ||
      sum.member !== self ||
      !equalBytes(sum.digest, digest)
    )
      throw new WrongSessionError(`the repair sum of ${from} is for another group, epoch, session or member`, from)
    try {
      out.push(openScalar(SUM_INFO, session, from, self, seed, sum.ephemeral, sum.box))
    } catch {
      throw new InvalidShareError(`the repair sum sealed by ${from} does not open`, from)
    }
  }
  return { values: out, helpers: [...seen] as PrincipalId[] }
}

// ---------------------------------------------------------------- resharing

/** Old member `self`'s signed resharing deal; `own` is its piece when it is itself a new member. */
export async function makeReshareDeal(
  state: ClusterState,
  self: PrincipalId,
  seed: Uint8Array,
  session: Uint8Array,
  plan: ResharePlan
): Promise<{ deal: Uint8Array; own?: ReceivedReshare }> {
  const dealt = dealReshare(state.key, self, plan.dealers, plan.members, plan.threshold)
  const sealed = sealScalars(
    SHARE_INFO,
    session,
    self,
    plan.members.filter(m => m !== self).map(to => ({ to, secret: dealt.shares.get(to) as Uint8Array }))
  )
  const unsigned: ReshareDeal = {
    v: 1,
    group: groupKeyOf(state),
    epoch: state.epoch,
    digest: packageDigest(publicPackage(state)),
    session,
    members: plan.members,
    threshold: plan.threshold,
    dealers: plan.dealers,
    from: self,
    commitments: dealt.commitments,
    ephemeral: sealed.ephemeral,
    boxes: sealed.boxes,
    sig: new Uint8Array(64)
  }
  unsigned.sig = await signAs(seed, RESHARE_DEAL_DOMAIN, pieceSigningBody(unsigned))
  const mine = dealt.shares.get(self)
  return {
    deal: encodeReshareDeal(unsigned),
    own: mine == null ? undefined : { from: self, commitments: dealt.commitments, share: mine }
  }
}

/**
 * Every dealer's deal opened for new member `self` and checked: signed by its dealer, for the
 * old package `pkg` (by digest), this session and plan, one per dealer. The shares' algebra is
 * checked by combineReshare. `own` is this member's own piece when it dealt too.
 */
export async function openReshareDeals(
  pkg: PublicPackage,
  self: PrincipalId,
  seed: Uint8Array,
  session: Uint8Array,
  plan: ResharePlan,
  deals: Uint8Array[],
  own?: { deal: Uint8Array; piece: ReceivedReshare }
): Promise<ReceivedReshare[]> {
  const digest = packageDigest(pkg)
  const received: ReceivedReshare[] = []
  const seen = new Set<string>()
  if (own != null) {
    if (!deals.some(d => equalBytes(d, own.deal)))
      throw new EquivocationError('the resharing does not carry this member’s own deal')
    received.push(own.piece)
    seen.add(self)
  }
  for (const bytes of deals) {
    const deal = decodeReshareDeal(bytes)
    const from = await checkSignature(RESHARE_DEAL_DOMAIN, deal, plan.dealers, 'reshare deal')
    if (from === self && own != null) continue
    if (seen.has(from)) throw new EquivocationError(`two reshare deals from ${from}`, from)
    seen.add(from)
    if (
      !equalBytes(deal.group, pkg.commitments[0]) ||
      deal.epoch !== pkg.epoch ||
      !equalBytes(deal.digest, digest) ||
      !equalBytes(deal.session, session) ||
      deal.threshold !== plan.threshold ||
      !sameList(deal.members, plan.members) ||
      !sameList(deal.dealers, plan.dealers)
    )
      throw new WrongSessionError(`the reshare deal of ${from} is for another group, package, session or plan`, from)
    const share = openBoxFor(SHARE_INFO, session, from, self, seed, deal, 'reshare share')
    received.push({ from, commitments: deal.commitments, share })
  }
  const missing = plan.dealers.filter(d => !seen.has(d))
  if (missing.length > 0) throw new InvalidShareError(`no reshare deal from ${missing.join(', ')}`, missing[0])
  return received
}

/**
 * What a removed member checks before it deletes its share (`reshare-retire`): the deals are
 * signed by t distinct members of its own generation, for its own package (by digest), this
 * session and one plan that leaves it out; the new package recomputed from their commitments is
 * the one at least t_new new members signed they switched to. A coordinator alone can forge
 * none of it, and an old commit or a deal of another run does not fit. Returns the new members.
 */
export async function checkRetirement(
  state: ClusterState,
  self: PrincipalId,
  session: Uint8Array,
  deals: Uint8Array[],
  switched: ReadonlyArray<{ from: string; sig: Uint8Array }>
): Promise<PrincipalId[]> {
  if (deals.length !== state.threshold)
    throw new NotEnoughSignersError(`a resharing of this generation is dealt by ${state.threshold} members`)
  const group = groupKeyOf(state)
  const digest = packageDigest(publicPackage(state))
  const seen = new Set<string>()
  let plan: ResharePlan | undefined
  const sum: GroupPoint[] = []
  for (const bytes of deals) {
    const deal = decodeReshareDeal(bytes)
    // a dealer is a member of the generation this node holds: not a key the coordinator made up
    const from = await checkSignature(RESHARE_DEAL_DOMAIN, deal, state.members, 'reshare deal')
    if (seen.has(from)) throw new EquivocationError(`two reshare deals from ${from}`, from)
    seen.add(from)
    plan ??= {
      members: deal.members as PrincipalId[],
      threshold: deal.threshold,
      dealers: deal.dealers as PrincipalId[]
    }
    if (
      !equalBytes(deal.group, group) ||
      deal.epoch !== state.epoch ||
      !equalBytes(deal.digest, digest) ||
      !equalBytes(deal.session, session) ||
      deal.threshold !== plan.threshold ||
      !sameList(deal.members, plan.members) ||
      !sameList(deal.dealers, plan.dealers)
    )
      throw new WrongSessionError(`the reshare deal of ${from} is for another group, package, session or plan`, from)
    deal.commitments.forEach((c, k) => {
      const point = parsePoint(c, `commitment ${k} of ${from}`)
      sum[k] = sum[k] == null ? point : sum[k].add(point)
    })
  }
  const p = plan as ResharePlan
  if (!sameList([...seen].sort(), p.dealers))
    throw new WrongSessionError('the deals are not those of the dealers their plan names')
  if (p.members.includes(self)) throw new NotAMemberError('this member is in the new set: it is not retired')
  const pub = resharedPublic(group, p.members, p.threshold, sum)
  const next = packageDigest({
    members: p.members,
    threshold: p.threshold,
    epoch: state.epoch + 1,
    commitments: pub.commitments,
    verifyingShares: p.members.map(m => pub.verifyingShares[memberIdentifier(m)])
  })
  const body = reshareAckBody(group, state.epoch + 1, session, next)
  const confirmed = new Set<string>()
  for (const s of switched) {
    if (!p.members.includes(s.from as PrincipalId) || confirmed.has(s.from)) continue
    if (await verifyAs(principalPublicKey(s.from as PrincipalId), RESHARE_SWITCHED_DOMAIN, body, s.sig))
      confirmed.add(s.from)
  }
  if (confirmed.size < p.threshold)
    throw new NotEnoughSignersError(
      `${confirmed.size} new members showed they switched to the new package; ${p.threshold} are needed before a share is deleted`
    )
  return p.members
}
