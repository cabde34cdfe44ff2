import { strict as assert } from 'node:assert'
import { signCert, signedCertToSexp, spkiTime } from '../../src/spki/cert.ts'
import { signCrl, signedCrlToSexp } from '../../src/spki/crl.ts'
import { MAX_SEQUENCE_ITEMS, parseSequence, sequenceToSexp } from '../../src/spki/sequence.ts'
import { encodeCanonical, parseAdvanced, parseAnyForm, toAdvanced, toTransport } from '../../src/spki/sexp.ts'
import { parseSubjectText, parseTimeText } from '../../src/spki/text.ts'
import { key, tag } from './fixtures.ts'
import type { Key } from './fixtures.ts'
import type { SignedCert } from '../../src/spki/cert.ts'
import type { SignedCrl } from '../../src/spki/crl.ts'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

describe('SPKI sequences and the text forms people type', () => {
  let a: Key, b: Key
  let cert: SignedCert, name: SignedCert, crl: SignedCrl

  before(async () => {
    ;[a, b] = await Promise.all([key(), key()])
    cert = await signCert(
      {
        type: 'auth',
        issuer: a.id,
        subject: { kind: 'key', principal: b.id },
        propagate: false,
        tag: tag('(cyberspace (log (append l1)))'),
        validity: {}
      },
      a.secret
    )
    name = await signCert(
      { type: 'name', issuer: a.id, name: 'ops', subject: { kind: 'key', principal: b.id }, validity: {} },
      a.secret
    )
    crl = await signCrl(
      {
        issuer: a.id,
        revoked: [new Uint8Array(32).fill(7)],
        validity: { notBefore: spkiTime(0), notAfter: spkiTime(Date.now() + 60_000) }
      },
      a.secret
    )
  })

  it('a sequence pairs each certificate and CRL with its signature, and round-trips', () => {
    const s = sequenceToSexp({ certs: [cert, name], crls: [crl] })
    const text = toAdvanced(s)
    assert.match(text, /^\(sequence \(cert \(issuer .*\(signature \(ed25519 \|/)
    const back = parseSequence(parseAdvanced(text))
    assert.deepEqual(
      back.certs.map(c => encodeCanonical(signedCertToSexp(c))),
      [cert, name].map(c => encodeCanonical(signedCertToSexp(c)))
    )
    assert.deepEqual(encodeCanonical(signedCrlToSexp(back.crls[0])), encodeCanonical(signedCrlToSexp(crl)))
    // a lone signed object reads as a sequence of one
    assert.equal(parseSequence(signedCertToSexp(cert)).certs.length, 1)
    assert.equal(parseSequence(signedCrlToSexp(crl)).crls.length, 1)
  })

  it('refuses malformed sequences with InvalidCertError', () => {
    for (const text of [
      '(sequence)',
      '(sequence (cert))',
      '(sequence (tag (*)) (signature (ed25519 |AA|)))',
      '(certificate)',
      'atom'
    ]) {
      assert.throws(
        () => parseSequence(parseAnyForm(utf8(text))[0]),
        { name: /InvalidCertError|SexpSyntaxError/ },
        text
      )
    }
    const pair = (signedCertToSexp(cert) as unknown[]).slice(1)
    const long = [utf8('sequence'), ...Array.from({ length: MAX_SEQUENCE_ITEMS + 1 }, () => pair).flat()]
    assert.throws(() => parseSequence(long as never), { name: 'InvalidCertError', message: /at most/ })
  })

  it('reads canonical, transport and advanced input, several at once, with comments', () => {
    const s = signedCertToSexp(cert)
    const canonical = encodeCanonical(s)
    assert.deepEqual(encodeCanonical(parseAnyForm(canonical)[0]), canonical)
    assert.deepEqual(encodeCanonical(parseAnyForm(utf8(`  ${toTransport(s)}\n`))[0]), canonical)
    const mixed = `# a comment line\n${toAdvanced(s)}\n# the CRL, in transport form\n${toTransport(signedCrlToSexp(crl))}\n`
    const items = parseAnyForm(utf8(mixed))
    assert.equal(items.length, 2)
    assert.deepEqual(encodeCanonical(items[0]), canonical)
    assert.deepEqual(encodeCanonical(items[1]), encodeCanonical(signedCrlToSexp(crl)))
    for (const bad of ['', '# only a comment', '{not base64!}', '(a', new Uint8Array([0x28, 0xff, 0xfe])]) {
      assert.throws(() => parseAnyForm(typeof bad === 'string' ? utf8(bad) : bad), { name: 'SexpSyntaxError' })
    }
    assert.throws(() => parseAnyForm(utf8('(a)'.repeat(40_000))), { name: 'SexpLimitError' })
    // a transport block still counts against the depth limit of the text around it
    const deep = toTransport(parseAdvanced('('.repeat(20) + ')'.repeat(20)))
    assert.throws(() => parseAnyForm(utf8('('.repeat(20) + deep + ')'.repeat(20))), { name: 'SexpLimitError' })
  })

  it('reads subjects as keys, peer ids, own and linked names, or S-expressions', () => {
    const peerId = '12D3KooWRPYtu7rfWdixTa6QhUpPS4cnqSEURWAYndmdzqqmaL5h'
    assert.deepEqual(parseSubjectText(b.id, a.id), { kind: 'key', principal: b.id })
    assert.equal(parseSubjectText(peerId, a.id).kind, 'key')
    assert.deepEqual(parseSubjectText('name:friends/close', a.id), {
      kind: 'name',
      issuer: a.id,
      names: ['friends', 'close']
    })
    assert.deepEqual(parseSubjectText(`name:${b.id}/ops`, a.id), { kind: 'name', issuer: b.id, names: ['ops'] })
    assert.equal(parseSubjectText('(hash sha256 |' + 'A'.repeat(43) + '=|)', a.id).kind, 'hash')
    for (const bad of ['', 'name:', 'name:bad name', 'z6Mkshort', '(public-key (rsa |AA|))', 'x'.repeat(5000)]) {
      assert.throws(
        () => parseSubjectText(bad, a.id),
        { name: /InvalidCertError|InvalidKeyError|SexpSyntaxError/ },
        bad
      )
    }
  })

  it('reads times as SPKI time, ISO 8601 or a span from now', () => {
    const now = Date.UTC(2026, 10, 21, 12, 0, 0)
    assert.equal(parseTimeText('+30d', now), '2026-12-21_12:00:00')
    assert.equal(parseTimeText('+90s', now), '2026-11-21_12:01:30')
    assert.equal(parseTimeText('2027-01-02_03:04:05'), '2027-01-02_03:04:05')
    assert.equal(parseTimeText('2027-01-02T03:04:05Z'), '2027-01-02_03:04:05')
    assert.equal(parseTimeText('2027-01-02'), '2027-01-02_00:00:00')
    for (const bad of ['tomorrow', '+3w', '2027-13-45_99:00:00', '+999999999d', '-1d', '']) {
      assert.throws(() => parseTimeText(bad, now), { name: 'InvalidCertError' }, bad)
    }
  })
})
