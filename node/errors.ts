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

/** The control API refused or failed a request. */
export class ApiError extends Error {
  static name = 'ApiError'
  name = 'ApiError'
  readonly status: number
  /** The name of the node's error (e.g. ChainNotFoundError), when it gave one. */
  readonly errorName?: string

  constructor(message: string, status: number, errorName?: string) {
    super(message)
    this.status = status
    if (errorName != null && /^[A-Za-z]{1,64}$/.test(errorName)) this.errorName = errorName
  }
}

/** A command line that cannot be run as written: the CLI exits with code 2. */
export class UsageError extends Error {
  static name = 'UsageError'
  name = 'UsageError'
}
