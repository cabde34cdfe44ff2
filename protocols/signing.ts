/**
 * The bytes a Cyberspace signature covers, for every kind of signed object: the kind's domain
 * string (`cyberspace/<kind>/v<n>`, UTF-8), one zero byte, then the object's bytes (normally the
 * dag-cbor of its unsigned form). The zero byte ends the domain, so no domain is a prefix of
 * another's signed bytes and a signature made for one kind never verifies as another.
 *
 * @example
 * signedBytes('cyberspace/value/v1', dagCbor.encode(unsigned))
 */

const DOMAIN_PATTERN = /^cyberspace(\/[a-z0-9][a-z0-9-]*)+\/v[0-9]+$/
const MAX_DOMAIN_LENGTH = 64

export class InvalidDomainError extends Error {
  static name = 'InvalidDomainError'
  name = 'InvalidDomainError'
}

export function checkDomain(domain: string): void {
  if (typeof domain !== 'string' || domain.length > MAX_DOMAIN_LENGTH || !DOMAIN_PATTERN.test(domain)) {
    throw new InvalidDomainError(`signing domain must look like cyberspace/<kind>/v<n>, got ${JSON.stringify(domain)}`)
  }
}

export function signedBytes(domain: string, body: Uint8Array): Uint8Array {
  checkDomain(domain)
  const prefix = new TextEncoder().encode(domain)
  const out = new Uint8Array(prefix.length + 1 + body.length)
  out.set(prefix)
  out.set(body, prefix.length + 1)
  return out
}
