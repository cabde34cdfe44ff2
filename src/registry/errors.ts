/**
 * Named errors of the agent registry. Tests and callers match on `.name`, never on message text.
 *
 * @example
 * try { await registry.get(agent) } catch (err) { if (err.name === 'AgentNotFoundError') … }
 */
export {
  AgentCardTooLargeError,
  InvalidAgentCardError,
  InvalidAgentRecordError,
  InvalidRegistryMessageError
} from '../../protocols/registry/errors.ts'

/** An agent record's signature does not verify against the agent principal it names. */
export class AgentRecordSignatureError extends Error {
  static name = 'AgentRecordSignatureError'
  name = 'AgentRecordSignatureError'
}

/** An agent record is past its expiry (or claims a lifetime longer than the registry accepts). */
export class AgentRecordExpiredError extends Error {
  static name = 'AgentRecordExpiredError'
  name = 'AgentRecordExpiredError'
  /** When the newest record known expired, ms since the epoch (0 when not known). */
  readonly expires: number
  /** That record, verified when it was current. */
  readonly record?: { agent: string; host: string; seq: number; expires: number; card: { name: string } }
  constructor(message: string, expires = 0, record?: AgentRecordExpiredError['record']) {
    super(message)
    this.expires = expires
    this.record = record
  }
}

/** An agent record has a lower sequence number than one already seen for the same agent. */
export class StaleAgentRecordError extends Error {
  static name = 'StaleAgentRecordError'
  name = 'StaleAgentRecordError'
}

/** No current record of the agent was found in the DHT. */
export class AgentNotFoundError extends Error {
  static name = 'AgentNotFoundError'
  name = 'AgentNotFoundError'
}

/** The record's host holds no chain to `(cyberspace member)` by this node's ACL. */
export class HostNotMemberError extends Error {
  static name = 'HostNotMemberError'
  name = 'HostNotMemberError'

  /** `cause`: why the host's authority was refused (the SPKI error). */
  constructor(message: string, cause?: Error) {
    super(message, { cause })
  }
}

/** An SDSI name could not be parsed, its first word names no root this node trusts, or it denotes no key. */
export class AgentNameError extends Error {
  static name = 'AgentNameError'
  name = 'AgentNameError'
}

/** The agent is not published by this node (unpublish), or this node holds no key for it. */
export class AgentNotPublishedError extends Error {
  static name = 'AgentNotPublishedError'
  name = 'AgentNotPublishedError'
}

/** A peer asked the registry protocol too often, or a host refused to answer. */
export class RegistryRefusedError extends Error {
  static name = 'RegistryRefusedError'
  name = 'RegistryRefusedError'
  /** The name of the error the host answered with, when it gave one. */
  readonly remoteName?: string

  constructor(message: string, remoteName?: string) {
    super(message)
    this.remoteName = remoteName
  }
}
