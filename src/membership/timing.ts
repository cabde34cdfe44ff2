/**
 * Lifeguard's timing rules (after memberlist's suspicion.go, awareness.go and util.go; see
 * protocols/swim/README.md for the defaults and the detection bound they give):
 * - local health: a score 0…max−1 that missed acks and nacks and refuting one's own suspicion
 *   raise and successful probes lower; probe interval and timeout are multiplied by score + 1;
 * - suspicion timeout: starts at `max` and shrinks toward `min` as k independent members confirm
 *   the suspicion, min = suspicionMult × max(1, log10 n) × probe interval, max = maxMult × min.
 *
 * @example
 * const min = suspicionMinTimeout(4, 10, 1000) // 4000 ms
 * suspicionTimeout(1, 2, min, 6 * min)         // after one confirmation of two expected
 */

/** The shortest suspicion timeout for a cluster of `n` members, in ms. */
export function suspicionMinTimeout(suspicionMult: number, n: number, probeInterval: number): number {
  const scale = Math.max(1, Math.log10(Math.max(1, n)))
  return Math.floor(suspicionMult * scale * probeInterval)
}

/** The whole suspicion timeout after `confirmations` of `expected` independent confirmations, in ms. */
export function suspicionTimeout(confirmations: number, expected: number, min: number, max: number): number {
  if (expected < 1) return min
  const fraction = Math.log(confirmations + 1) / Math.log(expected + 1)
  return Math.max(min, Math.floor(max - fraction * (max - min)))
}

/** This node's local health: 0 is healthy; each point stretches probe intervals and timeouts by one more multiple. */
export class Awareness {
  readonly max: number
  private value = 0

  /** `maxMultiplier`: the most probe intervals and timeouts are stretched (score max − 1). */
  constructor(maxMultiplier: number) {
    this.max = Math.max(1, Math.floor(maxMultiplier))
  }

  get score(): number {
    return this.value
  }

  apply(delta: number): void {
    this.value = Math.min(this.max - 1, Math.max(0, this.value + delta))
  }

  /** `ms` stretched by the current health. */
  scale(ms: number): number {
    return ms * (this.value + 1)
  }
}
