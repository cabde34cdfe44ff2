import { strict as assert } from 'node:assert'
import { depthOver, MAX_JSON_DEPTH } from '../../src/api/depth.ts'

/** `n` arrays, one inside the other, around 1. */
const nested = (n: number): unknown => JSON.parse(`${'['.repeat(n)}1${']'.repeat(n)}`)

describe('api depth', () => {
  it('counts the value itself as level 1 and scalars as no level', () => {
    for (const scalar of [null, 1, 'x', true, undefined]) assert.equal(depthOver(scalar, 0), false)
    assert.equal(depthOver({}, 1), false)
    assert.equal(depthOver({}, 0), true)
    assert.equal(depthOver({ a: [1] }, 2), false)
    assert.equal(depthOver({ a: [[1]] }, 2), true)
  })

  it('takes MAX_JSON_DEPTH levels and refuses one more, in arrays and objects alike', () => {
    assert.equal(depthOver(nested(MAX_JSON_DEPTH), MAX_JSON_DEPTH), false)
    assert.equal(depthOver(nested(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH), true)
    const objects = JSON.parse(`${'{"a":'.repeat(MAX_JSON_DEPTH + 1)}1${'}'.repeat(MAX_JSON_DEPTH + 1)}`)
    assert.equal(depthOver(objects, MAX_JSON_DEPTH), true)
    // the deep branch last among wide shallow ones
    assert.equal(depthOver([...Array.from({ length: 1000 }, () => [1]), nested(MAX_JSON_DEPTH)], MAX_JSON_DEPTH), true)
  })

  it('walks a value nested 100,000 deep without a stack overflow (JSON.stringify of it throws RangeError)', () => {
    const deep = nested(100_000)
    assert.throws(() => JSON.stringify(deep), RangeError)
    assert.equal(depthOver(deep, MAX_JSON_DEPTH), true)
  })
})
