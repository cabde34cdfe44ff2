/** Named errors of the SPKI layer. Tests match on `.name`. */

/** An S-expression is malformed or truncated (the message says where). */
export class SexpSyntaxError extends Error {
  static name = 'SexpSyntaxError'
  name = 'SexpSyntaxError'
}

/** An S-expression exceeds a decode limit (size, depth, atom length, list length). */
export class SexpLimitError extends Error {
  static name = 'SexpLimitError'
  name = 'SexpLimitError'
}

/** A tag is not a valid SPKI tag body (bad `*` form, unknown ordering, malformed range limit). */
export class InvalidTagError extends Error {
  static name = 'InvalidTagError'
  name = 'InvalidTagError'
}
