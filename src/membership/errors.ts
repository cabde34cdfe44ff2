/** Named errors of the membership service and the SWIM protocol. Tests match on `.name`. */

/** The peer or the signer of an update holds no chain to `(cyberspace member)` by this node's ACL. */
export class NotAMemberError extends Error {
  static name = 'NotAMemberError'
  name = 'NotAMemberError'
}

/** The asking peer is not in this node's view yet: it should push its state with a sync. */
export class UnknownMemberError extends Error {
  static name = 'UnknownMemberError'
  name = 'UnknownMemberError'
}

/** An update's signature does not verify under the key of the principal that must have signed it. */
export class InvalidUpdateSignatureError extends Error {
  static name = 'InvalidUpdateSignatureError'
  name = 'InvalidUpdateSignatureError'
}

/** A peer sent probes, syncs or updates faster than its per-second budget. */
export class MembershipRateLimitedError extends Error {
  static name = 'MembershipRateLimitedError'
  name = 'MembershipRateLimitedError'
}

/** This node does not take part (it holds no member chain yet, it left, or the service stopped). */
export class NotTakingPartError extends Error {
  static name = 'NotTakingPartError'
  name = 'NotTakingPartError'
}

/** A ping named another principal than the node that received it. */
export class WrongTargetError extends Error {
  static name = 'WrongTargetError'
  name = 'WrongTargetError'
}

/** Metadata a member would publish is not a small map of short strings (see protocols/membership). */
export class InvalidMetaError extends Error {
  static name = 'InvalidMetaError'
  name = 'InvalidMetaError'
}

/** A peer answered a SWIM request with a message of the wrong type. */
export class UnexpectedAnswerError extends Error {
  static name = 'UnexpectedAnswerError'
  name = 'UnexpectedAnswerError'
}
