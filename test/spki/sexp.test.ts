import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import {
  atom,
  atomText,
  decodeCanonical,
  encodeCanonical,
  parseAdvanced,
  parseTransport,
  sexpEquals,
  toAdvanced,
  toTransport
} from '../../src/spki/sexp.ts'
import type { Sexp } from '../../src/spki/sexp.ts'

const text = (b: Uint8Array): string => new TextDecoder().decode(b)
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

/** Arbitrary S-expressions: atoms of any bytes (some hinted), lists up to depth 4. */
const sexpArb: fc.Arbitrary<Sexp> = fc.letrec<{ sexp: Sexp }>(tie => ({
  sexp: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.uint8Array({ maxLength: 24 }),
    fc.record({ hint: fc.uint8Array({ maxLength: 8 }), bytes: fc.uint8Array({ maxLength: 16 }) }),
    fc.array(tie('sexp'), { maxLength: 5 })
  )
})).sexp

describe('S-expressions', () => {
  it('encodes the canonical form of an SPKI tag', () => {
    const tag = parseAdvanced('(tag (cyberspace (mailbox (send "agent one" *))))')
    assert.equal(text(encodeCanonical(tag)), '(3:tag(10:cyberspace(7:mailbox(4:send9:agent one1:*))))')
    assert.equal(toAdvanced(tag), '(tag (cyberspace (mailbox (send "agent one" *))))')
  })

  it('reads every advanced atom syntax and display hints', () => {
    const s = parseAdvanced('(a "q\\"uote" |AAEC| #00ff# 3:x y [text/plain]"hi" ())')
    const items = s as Sexp[]
    assert.equal(atomText(items[1]), 'q"uote')
    assert.deepEqual(items[2], Uint8Array.of(0, 1, 2))
    assert.deepEqual(items[3], Uint8Array.of(0, 255))
    assert.equal(atomText(items[4]), 'x y')
    assert.deepEqual(items[5], { hint: bytes('text/plain'), bytes: bytes('hi') })
    assert.deepEqual(items[6], [])
    assert.equal(toAdvanced(items[2]), '|AAEC|')
    assert.equal(toAdvanced(s), '(a "q\\"uote" |AAEC| |AP8| "x y" [text/plain]hi ())')
  })

  it('round-trips every form (property)', () => {
    fc.assert(
      fc.property(sexpArb, s => {
        const canonical = encodeCanonical(s)
        assert.ok(sexpEquals(decodeCanonical(canonical), s))
        assert.ok(sexpEquals(parseAdvanced(toAdvanced(s)), s))
        assert.ok(sexpEquals(parseTransport(toTransport(s)), s))
        // canonical is canonical: re-encoding what was decoded gives the same bytes
        assert.deepEqual(encodeCanonical(parseAdvanced(toAdvanced(s))), canonical)
      }),
      { numRuns: 500 }
    )
  })

  it('rejects malformed and truncated canonical input with SexpSyntaxError', () => {
    for (const bad of [
      '',
      '(',
      '(3:abc',
      '3:ab',
      '03:abc',
      '(1:a))',
      '(1:a) ',
      ' (1:a)',
      'abc',
      '(a)',
      '[2:hi',
      '[2:hi]',
      ')'
    ]) {
      assert.throws(() => decodeCanonical(bytes(bad)), { name: 'SexpSyntaxError' }, JSON.stringify(bad))
    }
    for (const bad of ['(a', 'a)', '(a "open)', '|AAE', '#0g#', '#0#', '[hint x', '3:ab', '(a) b', '{']) {
      assert.throws(() => parseAdvanced(bad), { name: 'SexpSyntaxError' }, JSON.stringify(bad))
    }
    assert.throws(() => parseTransport('AAEC'), { name: 'SexpSyntaxError' })
    assert.throws(() => parseTransport('{not base64!}'), { name: 'SexpSyntaxError' })
  })

  it('enforces size, depth, atom and list limits before building anything', () => {
    const deep = '('.repeat(40) + ')'.repeat(40)
    assert.throws(() => decodeCanonical(bytes(deep)), { name: 'SexpLimitError' })
    assert.throws(() => parseAdvanced(deep), { name: 'SexpLimitError' })
    assert.throws(() => decodeCanonical(bytes('99999999:x')), { name: 'SexpLimitError' })
    assert.throws(() => decodeCanonical(bytes('9999999999:x')), { name: 'SexpLimitError' })
    assert.throws(() => decodeCanonical(new Uint8Array(70_000)), { name: 'SexpLimitError' })
    assert.throws(() => parseAdvanced('(' + 'a '.repeat(2000) + ')'), { name: 'SexpLimitError' })
    assert.throws(() => decodeCanonical(bytes('(1:a1:b1:c)'), { maxListLength: 2 }), { name: 'SexpLimitError' })
    assert.throws(() => parseAdvanced('"' + 'x'.repeat(20_000) + '"'), { name: 'SexpLimitError' })
    // within limits, the same shapes decode
    assert.equal((decodeCanonical(bytes('(1:a1:b)'), { maxListLength: 2 }) as Sexp[]).length, 2)
  })

  it('builds atoms from text', () => {
    assert.equal(
      text(encodeCanonical([atom('public-key'), atom('x', 'text/plain')])),
      '(10:public-key[10:text/plain]1:x)'
    )
  })
})
