/** Named errors of the Node.js platform. The CLI prints their messages; tests match on `.name`. */

/** The data directory cannot be created, is not a directory, or cannot be written. */
export class DataDirError extends Error {
  static name = 'DataDirError'
  name = 'DataDirError'
}

/** Another process holds the data directory's lock. */
export class DataDirLockedError extends Error {
  static name = 'DataDirLockedError'
  name = 'DataDirLockedError'
}

/** The identity key file exists but cannot be decoded. It is never overwritten. */
export class CorruptKeyError extends Error {
  static name = 'CorruptKeyError'
  name = 'CorruptKeyError'
}

/** No node is running on the data directory (no API file), or it does not answer. */
export class NodeNotRunningError extends Error {
  static name = 'NodeNotRunningError'
  name = 'NodeNotRunningError'
}

/**
 * The API cannot listen as asked: an address that is not an IP, or an address off loopback with
 * neither TLS (`--api-tls-cert`, `--api-tls-key`) nor `--api-insecure`.
 */
export class ApiBindError extends Error {
  static name = 'ApiBindError'
  name = 'ApiBindError'
}

/** The control API refused or failed a request. */
export class ApiError extends Error {
  static name = 'ApiError'
  name = 'ApiError'
  readonly status: number
  /** The name of the node's error (e.g. ChainNotFoundError), when it gave one. */
  readonly errorName?: string
  /** The error's structured fields the node passed on (e.g. `members`, `remoteName`), if any. */
  readonly details: Record<string, unknown>

  constructor(message: string, status: number, errorName?: string, details: Record<string, unknown> = {}) {
    super(message)
    this.status = status
    if (errorName != null && /^[A-Za-z]{1,64}$/.test(errorName)) this.errorName = errorName
    this.details = details
  }
}

/** A command line that cannot be run as written: the CLI exits with code 2. */
export class UsageError extends Error {
  static name = 'UsageError'
  name = 'UsageError'
}

/** A failure the CLI explains over several lines: the message says what is wrong, `hints` what fixes it. */
export class ExplainedError extends Error {
  static name = 'ExplainedError'
  name = 'ExplainedError'
  readonly hints: string[]

  constructor(message: string, hints: string[]) {
    super(message)
    this.hints = hints
  }
}

/** A message without the class names nested errors put in front of theirs ("XError: "). */
export function plainMessage(message: string): string {
  return message.replace(/\b[A-Z][A-Za-z0-9]*Error: /g, '').replace(/^Error: /, '')
}
