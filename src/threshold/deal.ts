/**
 * A refresh deal on the wire: a member's zero-constant polynomial commitments and every other
 * member's share, each sealed to that member, the whole signed by the dealer — so the coordinator
 * that relays deals can neither read nor alter them.
 *
 * A share for member m is sealed to m's identity key by seal.ts, with info
 * "cyberspace/refresh-share/v1": only m's identity secret opens it.
 *
 * @example
 * const { deal, own } = await makeDeal(state, self, seed, session)
 * const received = await openDeals(state, self, seed, session, deals) // checked, own included
 */
import { equalBytes } from '@noble/curves/utils.js'
import {
  decodeRefreshDeal,
  encodeRefreshDeal,
  REFRESH_DEAL_DOMAIN,
  refreshDealSigningBody
} from '../../protocols/frost/codec.ts'
import { principalPublicKey } from '../crypto/principal.ts'
import { signAs, verifyAs } from '../crypto/sign.ts'
import {
  EquivocationError,
  InvalidShareError,
  MessageSignatureError,
  NotAMemberError,
  WrongSessionError
} from './errors.ts'
import { PointCache } from './group.ts'
import { dealRefresh, verifyRefreshShare } from './refresh.ts'
import { openBoxFor, sealScalars } from './seal.ts'
import { groupKeyOf } from './state.ts'
import type { RefreshDeal } from '../../protocols/frost/codec.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { ReceivedRefresh } from './refresh.ts'
import type { ClusterState } from './state.ts'

const SHARE_INFO = 'cyberspace/refresh-share/v1'

/** This member's signed deal for a refresh, and the share it dealt itself (kept, never sent). */
export async function makeDeal(
  state: ClusterState,
  self: PrincipalId,
  seed: Uint8Array,
  session: Uint8Array
): Promise<{ deal: Uint8Array; own: ReceivedRefresh }> {
  const dealt = dealRefresh(state.key.public, state.members)
  const sealed = sealScalars(
    SHARE_INFO,
    session,
    self,
    state.members.filter(m => m !== self).map(to => ({ to, secret: dealt.shares.get(to) as Uint8Array }))
  )
  const deal: RefreshDeal = {
    v: 1,
    group: groupKeyOf(state),
    epoch: state.epoch,
    session,
    from: self,
    commitments: dealt.commitments,
    ephemeral: sealed.ephemeral,
    boxes: sealed.boxes,
    sig: new Uint8Array(64)
  }
  deal.sig = await signAs(seed, REFRESH_DEAL_DOMAIN, refreshDealSigningBody(deal))
  return {
    deal: encodeRefreshDeal(deal),
    own: { from: self, commitments: dealt.commitments, share: dealt.shares.get(self) as Uint8Array }
  }
}

/**
 * Every member's deal opened for `self` and checked: signed by its member, for this group, epoch
 * and session, one per member, its share for `self` matching its commitments. A bad deal throws a
 * ThresholdError naming its dealer. Points checked land in `points` (applyRefresh reuses them).
 */
export async function openDeals(
  state: ClusterState,
  self: PrincipalId,
  seed: Uint8Array,
  session: Uint8Array,
  encoded: Uint8Array[],
  own: ReceivedRefresh,
  points: PointCache = new PointCache()
): Promise<ReceivedRefresh[]> {
  const received: ReceivedRefresh[] = [own]
  const seen = new Set<string>([self])
  for (const bytes of encoded) {
    const deal = decodeRefreshDeal(bytes)
    const from = deal.from as PrincipalId
    if (!state.members.includes(from)) throw new NotAMemberError(`a deal from ${from.slice(0, 64)}, not a member`)
    if (!(await verifyAs(principalPublicKey(from), REFRESH_DEAL_DOMAIN, refreshDealSigningBody(deal), deal.sig)))
      throw new MessageSignatureError(`a deal claiming to be from ${from} is not signed by it`, from)
    if (from === self) continue
    if (seen.has(from)) throw new EquivocationError(`two deals from ${from}`, from)
    seen.add(from)
    if (!equalBytes(deal.group, groupKeyOf(state)) || deal.epoch !== state.epoch || !equalBytes(deal.session, session))
      throw new WrongSessionError(`the deal of ${from} is for another group, epoch or session`, from)
    const share = openBoxFor(SHARE_INFO, session, from, self, seed, deal, 'refresh share')
    const piece = { from, commitments: deal.commitments, share }
    verifyRefreshShare(state.key.public, self, piece, points)
    received.push(piece)
  }
  const missing = state.members.filter(m => !seen.has(m))
  if (missing.length > 0) throw new InvalidShareError(`no deal from ${missing.join(', ')}`, missing[0])
  return received
}
