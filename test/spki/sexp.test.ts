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
    assert.equal(toAdvanced(s), '(a "q\\"uote" |AAEC| |AP8=| "x y" [text/plain]hi ())')
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

  it('writes standard padded base64 in the transport form and in |…| atoms', () => {
    // one, two and three bytes past a whole group: ==, = and no padding
    assert.equal(toTransport(parseAdvanced('(1:a)')), '{KDE6YSk=}')
    assert.equal(toTransport(parseAdvanced('(2:ab)')), '{KDI6YWIp}')
    assert.equal(toTransport(parseAdvanced('(3:abc)')), '{KDM6YWJjKQ==}')
    assert.equal(toAdvanced(Uint8Array.of(0xff)), '|/w==|')
    assert.equal(toAdvanced(Uint8Array.of(0xff, 0)), '|/wA=|')
    assert.equal(toAdvanced(Uint8Array.of(0xff, 0, 1)), '|/wAB|')
    assert.equal(toAdvanced(new Uint8Array(0)), '""')
  })

  it('reads base64 padded or not, with ASCII whitespace, and refuses malformed padding', () => {
    const a = bytes('(1:a)')
    for (const good of ['{KDE6YSk=}', '{KDE6YSk}', ' {KDE6\r\n YSk=}\n', '{KDE6YSk\t=}']) {
      assert.deepEqual(encodeCanonical(parseTransport(good)), a, JSON.stringify(good))
    }
    assert.deepEqual(parseAdvanced('|/w==|'), Uint8Array.of(0xff))
    assert.deepEqual(parseAdvanced('|/w|'), Uint8Array.of(0xff))
    assert.deepEqual(parseAdvanced('| /w A= |'), Uint8Array.of(0xff, 0))
    for (const bad of [
      '{KDE6YSk==}', // excess padding
      '{KDE6YSk=A}', // data after padding
      '{KDE6=YSk}', // padding inside
      '{KDE6YS=k}',
      '{KDE6Y}', // 4n+1 characters
      '{KDE6YSl=}', // leftover bits not zero (l = 37: low bits set)
      '{=}',
      '{KDE6YSk\u00a0=}', // not ASCII whitespace
      '{KDE6YSk-}' // the URL alphabet is not standard base64
    ]) {
      assert.throws(() => parseTransport(bad), { name: 'SexpSyntaxError' }, JSON.stringify(bad))
    }
    for (const bad of ['|/w===|', '|/w=|', '|/x==|', '|A|', '|_w==|', '|/w=A|']) {
      assert.throws(() => parseAdvanced(bad), { name: 'SexpSyntaxError' }, JSON.stringify(bad))
    }
  })

  it('limits the transport form by its base64, not by the line breaks wrapped into it', () => {
    // 294 canonical bytes, 392 base64 characters, wrapped and indented as in an e-mail
    const value = new Uint8Array(290).fill(7)
    const body = toTransport(value).slice(1, -1)
    const wrapped = `{\r\n  ${body.match(/.{1,64}/g)?.join('\r\n  ')}\r\n}`
    assert.deepEqual(parseTransport(wrapped, { maxBytes: 300 }), value)
    // one byte over the limit is refused, however it is spelled
    assert.throws(() => parseTransport(toTransport(new Uint8Array(297)), { maxBytes: 300 }), {
      name: 'SexpLimitError'
    })
    assert.throws(() => parseTransport(`{${' '.repeat(1000)}${body}}`, { maxBytes: 300 }), { name: 'SexpLimitError' })
    assert.throws(() => parseAdvanced(`|${'A'.repeat(44)}|`, { maxAtomBytes: 30 }), { name: 'SexpLimitError' })
    assert.equal(atomText(parseAdvanced(`|${'QUFB'.repeat(10)}|`, { maxAtomBytes: 30 })), 'A'.repeat(30))
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
