/** Named errors of the fleet (heartbeats, fleet status) and of the event journal. Tests match on `.name`. */
import { formatHlc } from '../clock/hlc.ts'
import type { HlcTimestamp } from '../clock/hlc.ts'

/** A heartbeat (or a row given to publish) breaks the wire rules of protocols/fleet. */
export { InvalidHeartbeatError } from '../../protocols/fleet/codec.ts'

/** A fleet option is out of range (interval, namespace, a rows callback that is not a function…). */
export class InvalidFleetOptionError extends Error {
  static name = 'InvalidFleetOptionError'
  name = 'InvalidFleetOptionError'
}

/** The fleet is not running here, or this node holds no member chain, so it publishes no heartbeat. */
export class FleetNotTakingPartError extends Error {
  static name = 'FleetNotTakingPartError'
  name = 'FleetNotTakingPartError'
}

/** An event given to the journal is malformed: bad hlc, unknown source, type or subject too long. */
export class InvalidEventError extends Error {
  static name = 'InvalidEventError'
  name = 'InvalidEventError'
}

/** A query of the journal is malformed: a cursor it did not issue, a bad hlc, a limit out of range. */
export class InvalidEventQueryError extends Error {
  static name = 'InvalidEventQueryError'
  name = 'InvalidEventQueryError'
}

/**
 * The journal no longer holds every event after the point asked for (it keeps the newest only):
 * `oldest` is where what it keeps begins, the HLC to resume from — `since(oldest)` reads every
 * event kept after it.
 */
export class EventsTruncatedError extends Error {
  static name = 'EventsTruncatedError'
  name = 'EventsTruncatedError'
  readonly oldest: HlcTimestamp | undefined

  constructor(oldest: HlcTimestamp | undefined, message?: string) {
    super(
      message ??
        (oldest == null
          ? 'events after that point were dropped and none are kept'
          : `events after that point were dropped: resume since ${formatHlc(oldest)}, where what is kept begins`)
    )
    this.oldest = oldest
  }
}

/**
 * A cursor from another run of the node (the journal starts anew at each start): `hlc` is where it
 * pointed, the point to resume from with `since`.
 */
export class EventCursorExpiredError extends Error {
  static name = 'EventCursorExpiredError'
  name = 'EventCursorExpiredError'
  readonly hlc: HlcTimestamp

  constructor(hlc: HlcTimestamp, message?: string) {
    super(
      message ??
        `the cursor is from another run of the node (its journal starts anew at each start): resume from its hlc, since ${formatHlc(hlc)}`
    )
    this.hlc = hlc
  }
}
