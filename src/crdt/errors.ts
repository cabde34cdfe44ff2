/**
 * Named errors of the CRDT layer. Decoders throw InvalidDeltaError for anything malformed they
 * are handed (the message names the bad field); mutators throw the others for bad arguments.
 *
 * @example
 * try { orSet.decodeDelta(data) } catch (err) { if (err.name === 'InvalidDeltaError') drop(event) }
 */

/** A state or delta from outside is malformed or exceeds a limit. */
export class InvalidDeltaError extends Error {
  static name = 'InvalidDeltaError'
  name = 'InvalidDeltaError'
}

/** A value handed to a mutator cannot be stored: not in the dag-cbor data model, or too large. */
export class InvalidValueError extends Error {
  static name = 'InvalidValueError'
  name = 'InvalidValueError'
}

/** A map path handed to a mutator is empty, too deep, or has a field name of a wrong length. */
export class InvalidPathError extends Error {
  static name = 'InvalidPathError'
  name = 'InvalidPathError'
}

/** A counter (or a dot counter) would pass Number.MAX_SAFE_INTEGER. */
export class CounterOverflowError extends RangeError {
  static name = 'CounterOverflowError'
  name = 'CounterOverflowError'
}
