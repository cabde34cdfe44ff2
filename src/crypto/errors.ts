/** Named errors of the crypto layer. Tests match on `.name`. */

/** A key, signature or principal id has the wrong type, length or encoding. */
export class InvalidKeyError extends Error {
  static name = 'InvalidKeyError'
  name = 'InvalidKeyError'
}
