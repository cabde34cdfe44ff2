/**
 * What the mailbox service sees of the agents a node hosts: each one's principal, the key it signs
 * with, and `receive`, which hands it a message (already decoded within limits, signature checked,
 * sender authorized, deduplicated and in order) and resolves once its behaviour handled it. The
 * agents service attaches one per agent it runs; tests implement `HostedAgent` with small recorders.
 *
 * @example
 * const agent: HostedAgent = {
 *   principal: signer.principal,
 *   signer,
 *   receive: async message => (message.request ? { echo: message.body } : undefined)
 * }
 * node.libp2p.services.mailbox.attach(agent)
 */
import type { PrincipalId } from '../crypto/principal.ts'
import type { Signer } from '../crypto/sign.ts'
import type { AbortOptions } from '@libp2p/interface'

export interface InboundMessage {
  /** Message id (sender-chosen, unique per sender). */
  id: string
  /** The sending agent. */
  from: PrincipalId
  to: PrincipalId
  /** Message type, authorized by `(cyberspace (mailbox (send <to> <type>)))`. */
  type: string
  /** A dag-cbor value, size-bounded (null when the sender gave none). */
  body: unknown
  /** True: the handler's return value is the response. */
  request: boolean
}

export interface HostedAgent {
  readonly principal: PrincipalId
  /** Signs what the agent sends, and its replies. */
  readonly signer: Signer
  /** The deadline its handler gets, in ms; default the mailbox service's (never past the message's expiry). */
  readonly handlerTimeout?: number
  /**
   * Hands the message to the agent; resolves once the behaviour handled it (with its response for
   * a request). Rejects with MailboxFullError when the mailbox is full (backpressure). The signal
   * fires at the handler's deadline.
   */
  receive(message: InboundMessage, options?: AbortOptions): Promise<unknown>
}
