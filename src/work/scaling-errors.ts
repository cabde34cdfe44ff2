/** Named errors of the elastic scaling loop (src/work/scaling.ts). Tests match on `.name`. */

/** A scaling policy's field is missing or out of range (min above max, a target that is no load, a bad kind…). */
export class InvalidScalingPolicyError extends Error {
  static name = 'InvalidScalingPolicyError'
  name = 'InvalidScalingPolicyError'
}

/** A scaling option is out of range (interval, settle, swatAfter…), or a component it needs is missing. */
export class InvalidScalingOptionError extends Error {
  static name = 'InvalidScalingOptionError'
  name = 'InvalidScalingOptionError'
}

/** The scaling loop is not running on this node (not started, or stopped). */
export class ScalingNotRunningError extends Error {
  static name = 'ScalingNotRunningError'
  name = 'ScalingNotRunningError'
}
