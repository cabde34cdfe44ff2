/** Named errors of the crypto layer. Tests match on `.name`. */

/** A key, signature or principal id has the wrong type, length or encoding. */
export class InvalidKeyError extends Error {
  static name = 'InvalidKeyError'
  name = 'InvalidKeyError'
}

/** A signing domain is not of the form `cyberspace/<kind>/v<n>`. */
export class InvalidDomainError extends Error {
  static name = 'InvalidDomainError'
  name = 'InvalidDomainError'
}
