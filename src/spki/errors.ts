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

/** A certificate's S-expression is not a certificate of the shape the spec gives. */
export class InvalidCertError extends Error {
  static name = 'InvalidCertError'
  name = 'InvalidCertError'
}

/** A certificate's signature does not verify with its issuer's key. */
export class BadSignatureError extends Error {
  static name = 'BadSignatureError'
  name = 'BadSignatureError'
}

/** A link in a chain does not name the next certificate's issuer as its subject. */
export class WrongSubjectError extends Error {
  static name = 'WrongSubjectError'
  name = 'WrongSubjectError'
}

/** A certificate in the middle of a chain does not allow delegation (propagate bit off). */
export class PropagationError extends Error {
  static name = 'PropagationError'
  name = 'PropagationError'
}

/** A certificate is outside its validity period at the time of the check. */
export class ExpiredCertError extends Error {
  static name = 'ExpiredCertError'
  name = 'ExpiredCertError'
}

/** A certificate's validity period has not begun at the time of the check. */
export class NotYetValidCertError extends Error {
  static name = 'NotYetValidCertError'
  name = 'NotYetValidCertError'
}

/** A chain is longer than the verifier accepts. */
export class ChainTooLongError extends Error {
  static name = 'ChainTooLongError'
  name = 'ChainTooLongError'
}

/** The tags along a chain have nothing in common, or do not cover what was asked. */
export class TagMismatchError extends Error {
  static name = 'TagMismatchError'
  name = 'TagMismatchError'
}

/** Resolving a SDSI name led back to a name being resolved (a cycle of name certificates). */
export class NameCycleError extends Error {
  static name = 'NameCycleError'
  name = 'NameCycleError'
}

/** No chain in the certificates at hand grants the request. */
export class ChainNotFoundError extends Error {
  static name = 'ChainNotFoundError'
  name = 'ChainNotFoundError'
}

/** A certificate is listed in a current CRL of its issuer. */
export class RevokedCertError extends Error {
  static name = 'RevokedCertError'
  name = 'RevokedCertError'
  /** The revoked certificate's sha256 (`certHash`), hex: what its issuer's CRL names it by. */
  readonly certHash?: string

  constructor(message: string, certHash?: string) {
    super(message)
    this.certHash = certHash
  }
}

/** A certificate asks for online revalidation and no current CRL from its issuer is at hand. */
export class RevalidationRequiredError extends Error {
  static name = 'RevalidationRequiredError'
  name = 'RevalidationRequiredError'
}

/** A CRL is malformed or its signature does not verify. */
export class InvalidCrlError extends Error {
  static name = 'InvalidCrlError'
  name = 'InvalidCrlError'
}

/** The peer asked to prove refused, with the named error it gave. */
export class ProofRefusedError extends Error {
  static name = 'ProofRefusedError'
  name = 'ProofRefusedError'
  readonly remoteName: string

  constructor(message: string, remoteName: string) {
    super(message)
    this.remoteName = remoteName
  }
}

/**
 * This node will not send another proof request to a peer yet: too many are in flight to it, or
 * its per-minute budget is spent (or the peer said so of its own). Retryable, never remembered
 * as a refusal.
 */
export class ProofRateLimitedError extends Error {
  static name = 'ProofRateLimitedError'
  name = 'ProofRateLimitedError'
}

/**
 * No chain is held here and no peer that could show one (the principal's own node, the given
 * providers) is connected; authorization never dials or searches the DHT for one.
 */
export class ProverNotConnectedError extends Error {
  static name = 'ProverNotConnectedError'
  name = 'ProverNotConnectedError'
}

/**
 * A CRL is not newer than the one this node holds from the same issuer (or has already expired):
 * a newer CRL replaces an older one, never the other way round.
 */
export class StaleCrlError extends Error {
  static name = 'StaleCrlError'
  name = 'StaleCrlError'
}

/** A peer asked for CRLs too often (or this node asked it too often): retryable, not a refusal. */
export class CrlRateLimitedError extends Error {
  static name = 'CrlRateLimitedError'
  name = 'CrlRateLimitedError'
}

/** A peer refused a CRL exchange with the named error it gave, or answered out of turn. */
export class CrlExchangeRefusedError extends Error {
  static name = 'CrlExchangeRefusedError'
  name = 'CrlExchangeRefusedError'
  readonly remoteName: string

  constructor(message: string, remoteName: string) {
    super(message)
    this.remoteName = remoteName
  }
}
