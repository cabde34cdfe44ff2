/**
 * Signing and checking membership updates, and SWIM's precedence between them. An update is
 * signed by the member it is about (alive, left) or by its accuser (suspect, dead) over
 * `signedBytes(UPDATE_DOMAIN, dag-cbor of the update without sig)`.
 *
 * Precedence for one member, as in SWIM: a higher incarnation wins; at the same incarnation
 * left > dead > suspect > alive. An accusation counts only at the incarnation this node knows
 * (only the member's own alive can raise it), so no accuser can push a member past its reach.
 *
 * @example
 * const alive = await signUpdate(signer, { v: 1, state: 'alive', member, incarnation: 7, addrs, meta: {}, chain })
 * await verifyUpdate(alive) // true
 */
import { UPDATE_DOMAIN, updateSigner } from '../../protocols/membership/codec.ts'
import { unsignedBody } from '../../protocols/wire.ts'
import * as dagCbor from '@ipld/dag-cbor'
import { principalPublicKey } from '../crypto/principal.ts'
import { verifyAs } from '../crypto/sign.ts'
import type { UnsignedUpdate, Update, UpdateState } from '../../protocols/membership/codec.ts'
import type { Signer } from '../crypto/sign.ts'

export const STATE_RANK: Record<UpdateState, number> = { alive: 0, suspect: 1, dead: 2, left: 3 }

export async function signUpdate<U extends UnsignedUpdate>(
  signer: Signer,
  unsigned: U
): Promise<U & { sig: Uint8Array }> {
  if (updateSigner(unsigned) !== signer.principal) {
    throw new TypeError(`a ${unsigned.state} update about ${unsigned.member} is signed by ${updateSigner(unsigned)}`)
  }
  const sig = await signer.sign(UPDATE_DOMAIN, dagCbor.encode(unsigned))
  return { ...unsigned, sig }
}

/** Whether the update's signature verifies under the key of the principal that must have signed it. */
export async function verifyUpdate(update: Update): Promise<boolean> {
  let key: Uint8Array
  try {
    key = principalPublicKey(updateSigner(update))
  } catch {
    return false
  }
  return await verifyAs(key, UPDATE_DOMAIN, unsignedBody(update), update.sig)
}

/**
 * What an update about a member does to the state this node holds for it (`current`: its state
 * and incarnation), by SWIM precedence: 'new' (it replaces it), 'confirm' (a suspicion at the
 * same incarnation by another accuser), 'stale' (it is older or weaker), 'unknown' (an accusation
 * at an incarnation this node has not seen the member announce).
 */
export function precedence(
  update: Update,
  current: { state: UpdateState; incarnation: number } | undefined
): 'new' | 'confirm' | 'stale' | 'unknown' {
  const accusation = update.state === 'suspect' || update.state === 'dead'
  if (current == null) return update.state === 'alive' ? 'new' : 'unknown'
  if (update.incarnation < current.incarnation) return 'stale'
  if (update.incarnation > current.incarnation) return accusation ? 'unknown' : 'new'
  const rank = STATE_RANK[update.state]
  const held = STATE_RANK[current.state]
  if (rank > held) return 'new'
  if (rank === held && update.state === 'suspect') return 'confirm'
  return 'stale'
}
