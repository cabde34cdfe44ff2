/** Keys and tags for the SPKI tests. */
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import { principalId } from '../../src/crypto/principal.ts'
import { parseAdvanced } from '../../src/spki/sexp.ts'
import { parseTag } from '../../src/spki/tag.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Tag } from '../../src/spki/tag.ts'

export interface Key {
  secret: Uint8Array
  id: PrincipalId
}

/** A fresh Ed25519 key pair as a principal. */
export async function key(): Promise<Key> {
  const secret = crypto.getRandomValues(new Uint8Array(32))
  return { secret, id: principalId(await nobleEd25519.publicKey(secret)) }
}

/** A tag from its advanced form. */
export function tag(text: string): Tag {
  return parseTag(parseAdvanced(text))
}
