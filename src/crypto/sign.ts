/**
 * Domain-separated signatures: every signed object of a kind is signed over
 * `signedBytes(domain, body)` (see protocols/signing.ts), so a signature made for one kind of
 * object can never be replayed as another.
 *
 * @example
 * const sig = await signAs(secretKey, 'cyberspace/cert/v1', body)
 * await verifyAs(publicKey, 'cyberspace/cert/v1', body, sig) // true
 */
import { signedBytes } from '../../protocols/signing.ts'
import { ed25519 } from './ed25519.ts'
import { principalId } from './principal.ts'
import type { Ed25519 } from './ed25519.ts'
import type { PrincipalId } from './principal.ts'

export async function signAs(
  secretKey: Uint8Array,
  domain: string,
  body: Uint8Array,
  backend?: Ed25519
): Promise<Uint8Array> {
  return await (backend ?? (await ed25519())).sign(secretKey, signedBytes(domain, body))
}

export async function verifyAs(
  publicKey: Uint8Array,
  domain: string,
  body: Uint8Array,
  signature: Uint8Array,
  backend?: Ed25519
): Promise<boolean> {
  return await (backend ?? (await ed25519())).verify(publicKey, signedBytes(domain, body), signature)
}

/** Something that signs as a principal: a node's key, an agent's key, a test key. */
export interface Signer {
  readonly principal: PrincipalId
  sign(domain: string, body: Uint8Array): Promise<Uint8Array>
}

/**
 * A Signer for an Ed25519 secret key (the 32-byte seed; a libp2p key's `raw` starts with it). It
 * holds the key prepared, so its signatures do not import the key again.
 */
export async function seedSigner(secretKey: Uint8Array, backend?: Ed25519): Promise<Signer> {
  const ed = backend ?? (await ed25519())
  const key = await ed.prepare(secretKey.slice(0, 32))
  return {
    principal: principalId(key.publicKey),
    sign: async (domain, body) => await key.sign(signedBytes(domain, body))
  }
}
