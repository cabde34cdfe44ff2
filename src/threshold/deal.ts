/**
 * A refresh deal on the wire: a member's zero-constant polynomial commitments and every other
 * member's share, each sealed to that member, the whole signed by the dealer — so the coordinator
 * that relays deals can neither read nor alter them.
 *
 * A share for member m is sealed with ChaCha20-Poly1305 under HKDF-SHA256(X25519(e, M), salt =
 * session, info = "cyberspace/refresh-share/v1 <from> <to>"), where e is the deal's one-time
 * X25519 key and M is m's Ed25519 principal key in its Montgomery form (RFC 7748 birational map,
 * as libsodium's crypto_sign_ed25519_pk_to_curve25519). Only m's identity secret opens it.
 *
 * @example
 * const { deal, own } = await makeDeal(state, self, seed, session)
 * const received = await openDeals(state, self, seed, session, deals) // checked, own included
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js'
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { equalBytes } from '@noble/curves/utils.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
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
import { dealRefresh, verifyRefreshShare } from './refresh.ts'
import { groupKeyOf } from './state.ts'
import type { RefreshDeal } from '../../protocols/frost/codec.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { ReceivedRefresh } from './refresh.ts'
import type { ClusterState } from './state.ts'

const SHARE_INFO = 'cyberspace/refresh-share/v1'

function sealer(
  shared: Uint8Array,
  session: Uint8Array,
  from: string,
  to: string
): ReturnType<typeof chacha20poly1305> {
  const okm = hkdf(sha256, shared, session, new TextEncoder().encode(`${SHARE_INFO} ${from} ${to}`), 44)
  return chacha20poly1305(okm.subarray(0, 32), okm.subarray(32))
}

/** This member's signed deal for a refresh, and the share it dealt itself (kept, never sent). */
export async function makeDeal(
  state: ClusterState,
  self: PrincipalId,
  seed: Uint8Array,
  session: Uint8Array
): Promise<{ deal: Uint8Array; own: ReceivedRefresh }> {
  const dealt = dealRefresh(state.key.public, state.members)
  const ephemeralSecret = x25519.utils.randomSecretKey()
  const boxes = state.members
    .filter(m => m !== self)
    .map(to => {
      const shared = x25519.getSharedSecret(ephemeralSecret, ed25519.utils.toMontgomery(principalPublicKey(to)))
      const share = dealt.shares.get(to) as Uint8Array
      const box = sealer(shared, session, self, to).encrypt(share)
      share.fill(0)
      return { to, box }
    })
  const deal: RefreshDeal = {
    v: 1,
    group: groupKeyOf(state),
    epoch: state.epoch,
    session,
    from: self,
    commitments: dealt.commitments,
    ephemeral: x25519.getPublicKey(ephemeralSecret),
    boxes,
    sig: new Uint8Array(64)
  }
  ephemeralSecret.fill(0)
  deal.sig = await signAs(seed, REFRESH_DEAL_DOMAIN, refreshDealSigningBody(deal))
  return {
    deal: encodeRefreshDeal(deal),
    own: { from: self, commitments: dealt.commitments, share: dealt.shares.get(self) as Uint8Array }
  }
}

/**
 * Every member's deal opened for `self` and checked: signed by its member, for this group, epoch
 * and session, one per member, its share for `self` matching its commitments. A bad deal throws a
 * ThresholdError naming its dealer.
 */
export async function openDeals(
  state: ClusterState,
  self: PrincipalId,
  seed: Uint8Array,
  session: Uint8Array,
  encoded: Uint8Array[],
  own: ReceivedRefresh
): Promise<ReceivedRefresh[]> {
  const secret = ed25519.utils.toMontgomerySecret(seed)
  const received: ReceivedRefresh[] = [own]
  const seen = new Set<string>([self])
  try {
    for (const bytes of encoded) {
      const deal = decodeRefreshDeal(bytes)
      const from = deal.from as PrincipalId
      if (!state.members.includes(from)) throw new NotAMemberError(`a deal from ${from.slice(0, 64)}, not a member`)
      if (!(await verifyAs(principalPublicKey(from), REFRESH_DEAL_DOMAIN, refreshDealSigningBody(deal), deal.sig)))
        throw new MessageSignatureError(`a deal claiming to be from ${from} is not signed by it`, from)
      if (from === self) continue
      if (seen.has(from)) throw new EquivocationError(`two deals from ${from}`, from)
      seen.add(from)
      if (
        !equalBytes(deal.group, groupKeyOf(state)) ||
        deal.epoch !== state.epoch ||
        !equalBytes(deal.session, session)
      )
        throw new WrongSessionError(`the deal of ${from} is for another group, epoch or session`, from)
      const box = deal.boxes.find(b => b.to === self)
      if (box == null) throw new InvalidShareError(`the deal of ${from} has no share for this member`, from)
      let share: Uint8Array
      try {
        share = sealer(x25519.getSharedSecret(secret, deal.ephemeral), session, from, self).decrypt(box.box)
      } catch {
        throw new InvalidShareError(`the share sealed by ${from} does not open`, from)
      }
      const piece = { from, commitments: deal.commitments, share }
      verifyRefreshShare(state.key.public, self, piece)
      received.push(piece)
    }
  } finally {
    secret.fill(0)
  }
  const missing = state.members.filter(m => !seen.has(m))
  if (missing.length > 0) throw new InvalidShareError(`no deal from ${missing.join(', ')}`, missing[0])
  return received
}
