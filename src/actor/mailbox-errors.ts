/**
 * Named errors of the mailbox protocol and service. A refusal travels as an error answer (its
 * name and message) and surfaces at the caller as the class of the same name; tests and callers
 * match on `.name`, never on message text. MailboxFullError and HandlerTimeoutError are the
 * actors' own (src/actor/errors.ts); the codec's errors live beside the codec.
 *
 * @example
 * try { await mailbox.request(me, "cluster's reviewer", 'review', diff) }
 * catch (err) { if (err.name === 'UnauthorizedSenderError') … }
 */
export { InvalidMailboxMessageError, MailboxMessageTooLargeError } from '../../protocols/mailbox/codec.ts'
export { HandlerTimeoutError, MailboxFullError } from './errors.ts'

/** The sender holds no chain to `(cyberspace (mailbox (send <recipient> <type>)))` by the receiving node's ACL. */
export class UnauthorizedSenderError extends Error {
  static name = 'UnauthorizedSenderError'
  name = 'UnauthorizedSenderError'
}

/** No current registry record names the recipient (or its name denotes no agent). */
export class UnknownAgentError extends Error {
  static name = 'UnknownAgentError'
  name = 'UnknownAgentError'
}

/** The agent is not hosted on the node asked (it moved, stopped, or was never there). */
export class AgentNotHostedError extends Error {
  static name = 'AgentNotHostedError'
  name = 'AgentNotHostedError'
}

/** A name given as recipient denotes more than one agent. */
export class AmbiguousRecipientError extends Error {
  static name = 'AmbiguousRecipientError'
  name = 'AmbiguousRecipientError'
}

/** An envelope's signature does not verify with its sender's key, or a reply's with its recipient's. */
export class MessageSignatureError extends Error {
  static name = 'MessageSignatureError'
  name = 'MessageSignatureError'
}

/** The message is past its `expires` (or claims to be sent too far in the future) and is not handed on. */
export class MessageExpiredError extends Error {
  static name = 'MessageExpiredError'
  name = 'MessageExpiredError'
}

/**
 * The message's sequence number is below what the receiver already delivered, and its answer is no
 * longer cached: it was handled before, or its sender settled it. It is not delivered again.
 */
export class DuplicateMessageError extends Error {
  static name = 'DuplicateMessageError'
  name = 'DuplicateMessageError'
}

/**
 * The recipient's behaviour failed on the message (or the receiver answered with an error this node
 * does not know by name); `remoteName` is the name of the error it raised.
 */
export class HandlerFailedError extends Error {
  static name = 'HandlerFailedError'
  name = 'HandlerFailedError'
  readonly remoteName: string
  constructor(message: string, remoteName: string) {
    super(message)
    this.remoteName = remoteName
  }
}

/** Retryable: the peer sent more messages than its budget allows just now, or too many were refused. */
export class MailboxRateLimitedError extends Error {
  static name = 'MailboxRateLimitedError'
  name = 'MailboxRateLimitedError'
}

/** Retryable: the message is too far ahead of the next one the receiver expects from that sender. */
export class SequenceGapError extends Error {
  static name = 'SequenceGapError'
  name = 'SequenceGapError'
}

/** Retryable: the message is accepted and waits its turn or its handler, past this stream's time; ask again (same id). */
export class MessagePendingError extends Error {
  static name = 'MessagePendingError'
  name = 'MessagePendingError'
}

/** Retryable: the receiver holds as many messages waiting for their turn as it allows. */
export class MailboxBusyError extends Error {
  static name = 'MailboxBusyError'
  name = 'MailboxBusyError'
}

/** The message was not acknowledged before its deadline (its `expires`): no receiver hands it on after that. */
export class DeliveryTimeoutError extends Error {
  static name = 'DeliveryTimeoutError'
  name = 'DeliveryTimeoutError'
}

/** The sender gave up after its bounded attempts; `cause` is the last failure. */
export class DeliveryFailedError extends Error {
  static name = 'DeliveryFailedError'
  name = 'DeliveryFailedError'
}

/** The sending agent is not attached to this node's mailbox, or the service is not running. */
export class SenderNotHostedError extends Error {
  static name = 'SenderNotHostedError'
  name = 'SenderNotHostedError'
}
