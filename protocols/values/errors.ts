/** Named errors of the signed DHT value records. */

/** A value record failed to decode, is too large, has a malformed key, or is not signed by the key it names. */
export class InvalidValueRecordError extends Error {
  static name = 'InvalidValueRecordError'
  name = 'InvalidValueRecordError'
}
