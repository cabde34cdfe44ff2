/**
 * How deep a JSON value nests, checked without recursion. `JSON.parse` takes any depth, but what
 * reads the value next — `JSON.stringify`, a schema, a codec, a walk of our own — recurses, and a
 * value nested some thousands deep overflows its stack. Check a parsed value here first and refuse
 * it by name. Runs in browsers (no Node built-ins).
 *
 * @example
 * if (depthOver(args, MAX_JSON_DEPTH)) throw new Error(`arguments nest deeper than ${MAX_JSON_DEPTH} levels`)
 * depthOver({ a: [1] }, 2)  // false: the object is level 1, the array level 2
 * depthOver({ a: [[1]] }, 2) // true
 */

/** Levels of arrays and objects a JSON value from outside may nest: far more than any schema here needs. */
export const MAX_JSON_DEPTH = 64

/**
 * Whether `value` nests arrays and objects deeper than `max` levels (the value itself, if an array
 * or object, is level 1; scalars are no level). Walks with a stack of its own, so any depth is
 * safe; it stops at the first container past `max`.
 */
export function depthOver(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]]
  for (let next = stack.pop(); next != null; next = stack.pop()) {
    const [v, depth] = next
    if (v == null || typeof v !== 'object') continue
    if (depth > max) return true
    for (const child of Array.isArray(v) ? v : Object.values(v))
      if (child != null && typeof child === 'object') stack.push([child, depth + 1])
  }
  return false
}
