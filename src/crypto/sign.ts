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
import type { Ed25519 } from './ed25519.ts'

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
