/**
 * Making node processes cluster members in tests: every node trusts one root key for
 * `(cyberspace member)` and holds the member certificate that root issued to it.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { grant } from '../spki/fixtures.ts'
import type { NodeProcess } from './processes.ts'
import type { Key } from '../spki/fixtures.ts'
import type { SignedCert } from '../../src/spki/cert.ts'

export const MEMBER_TAG_TEXT = '(cyberspace member)'

/** The certificate by which `root` makes the peer `peerId` a member, and its advanced text form. */
export async function memberCert(root: Key, peerId: string): Promise<{ cert: SignedCert; text: string }> {
  const principal = principalFromPeerId(peerIdFromString(peerId))
  const cert = await grant(root, { kind: 'key', principal }, MEMBER_TAG_TEXT, { propagate: false })
  return { cert, text: toAdvanced(signedCertToSexp(cert)) }
}

/** Makes `node` trust `root` for membership and hold its own member certificate; returns that certificate. */
export async function admit(node: NodeProcess, root: Key): Promise<SignedCert> {
  const { cert, text } = await memberCert(root, node.peerId)
  await node.api.post('spki/acl', { principal: root.id, tag: MEMBER_TAG_TEXT })
  await node.api.post('spki/import', { sexp: text })
  return cert
}
