/** Named errors of the agent registry's wire format (records, cards, and the registry protocol). */

/** An agent record failed to decode, has a malformed field, or is stored under a key that is not its agent's. */
export class InvalidAgentRecordError extends Error {
  static name = 'InvalidAgentRecordError'
  name = 'InvalidAgentRecordError'
}

/** An agent card breaks the card rules: a missing or unknown field, a wrong type, or a count or length over its limit. */
export class InvalidAgentCardError extends Error {
  static name = 'InvalidAgentCardError'
  name = 'InvalidAgentCardError'
}

/** An agent record (card included) is larger than the registry accepts. */
export class AgentCardTooLargeError extends Error {
  static name = 'AgentCardTooLargeError'
  name = 'AgentCardTooLargeError'
}

/** A `/cyberspace/registry/1.0.0` message failed to decode or breaks its limits. */
export class InvalidRegistryMessageError extends Error {
  static name = 'InvalidRegistryMessageError'
  name = 'InvalidRegistryMessageError'
}
