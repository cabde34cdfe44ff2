/**
 * Named errors of the node layer. Tests and callers match on `.name`, never on message text.
 *
 * @example
 * try { parseMultiaddrs(['nope'], 'bootstrap') } catch (err) { if (err.name === 'InvalidMultiaddrError') … }
 */

/** A multiaddr given by a user (listen, bootstrap) could not be parsed or is unusable for its role. */
export class InvalidMultiaddrError extends Error {
  static name = 'InvalidMultiaddrError'
  name = 'InvalidMultiaddrError'
  readonly input: string

  constructor(message: string, input: string) {
    super(message)
    this.input = input
  }
}

/** An operation needs the node to be running. */
export class NodeNotStartedError extends Error {
  static name = 'NodeNotStartedError'
  name = 'NodeNotStartedError'
}

/** The DHT holds no value under the requested key. */
export class ValueNotFoundError extends Error {
  static name = 'ValueNotFoundError'
  name = 'ValueNotFoundError'
}
