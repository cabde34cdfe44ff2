export class ClockDriftError extends Error {
  static name = 'ClockDriftError'
  name = 'ClockDriftError'
}

export class InvalidTimestampError extends Error {
  static name = 'InvalidTimestampError'
  name = 'InvalidTimestampError'
}

export class InvalidVectorClockError extends Error {
  static name = 'InvalidVectorClockError'
  name = 'InvalidVectorClockError'
}
