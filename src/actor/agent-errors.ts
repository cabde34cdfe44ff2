/** Named errors of the agents service (`node.agents`). */

/** No behaviour of this kind is registered on the node asked to run it. */
export class UnknownKindError extends Error {
  static name = 'UnknownKindError'
  name = 'UnknownKindError'
}

/** The principal asking may not do this (spawn a kind, call a tool): its chain does not grant the tag. */
export class AgentUnauthorizedError extends Error {
  static name = 'AgentUnauthorizedError'
  name = 'AgentUnauthorizedError'
}

/** The agent runs here already, or its lease is held by another host. */
export class AgentRunningError extends Error {
  static name = 'AgentRunningError'
  name = 'AgentRunningError'
}

/** No agent with this principal runs on this node. */
export class AgentNotFoundHereError extends Error {
  static name = 'AgentNotFoundHereError'
  name = 'AgentNotFoundHereError'
}

/** A tool the agent asked for is not offered by its node. */
export class UnknownToolError extends Error {
  static name = 'UnknownToolError'
  name = 'UnknownToolError'
}

/** Spawn or attach options, or a tool's arguments, are malformed. */
export class InvalidAgentOptionError extends Error {
  static name = 'InvalidAgentOptionError'
  name = 'InvalidAgentOptionError'
}

/** The agent is not an external one: nothing attaches to its mailbox. */
export class NotExternalAgentError extends Error {
  static name = 'NotExternalAgentError'
  name = 'NotExternalAgentError'
}

/** A reply names a message the external agent does not have pending (answered, expired, or never sent). */
export class NoSuchPendingMessageError extends Error {
  static name = 'NoSuchPendingMessageError'
  name = 'NoSuchPendingMessageError'
}

/** The node has no share of a cluster key, so it cannot derive a cluster agent's key. */
export class NoClusterKeyError extends Error {
  static name = 'NoClusterKeyError'
  name = 'NoClusterKeyError'
}

/** The host lost the agent's lease (it could not renew in time, or another host took the agent over). */
export class LeaseLostError extends Error {
  static name = 'LeaseLostError'
  name = 'LeaseLostError'
}

/** The agent was stopped for good: a successor does not bring it back (a spawn of the same kind and id does). */
export class AgentRetiredError extends Error {
  static name = 'AgentRetiredError'
  name = 'AgentRetiredError'
}

/** An error the program attached to an external agent answers with. */
export class ExternalAgentError extends Error {
  static name = 'ExternalAgentError'
  name = 'ExternalAgentError'
}
