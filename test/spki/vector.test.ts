/**
 * The test vector published in protocols/spki/README.md: a fixed key and certificate, and the
 * exact canonical bytes, signed bytes, signature and transport form our code must produce. Another
 * implementation checks itself against the same numbers. The transport form is also fed to
 * strict, standard base64 decoders (coreutils and Python), which refuse unpadded base64.
 */
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import {
  certSigningBytes,
  certToSexp,
  parseCert,
  parseSignedCert,
  signCert,
  signedCertToSexp,
  verifyCert
} from '../../src/spki/cert.ts'
import { principalId } from '../../src/crypto/principal.ts'
import {
  decodeCanonical,
  encodeCanonical,
  parseAdvanced,
  parseTransport,
  toAdvanced,
  toTransport
} from '../../src/spki/sexp.ts'
import { parseTag } from '../../src/spki/tag.ts'
import type { AuthCert } from '../../src/spki/cert.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const unhex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'))

// RFC 8032 section 7.1, TEST 1 (the issuer) and TEST 2's public key (the subject)
const SECRET = unhex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')
const ISSUER_KEY = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'
const SUBJECT_KEY = '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c'

const VECTOR = {
  issuer: 'z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw',
  subject: 'z6MkiaMbhXHNA4eJVCCj8dbzKzTgYDKf6crKgHVHid1F1WCT',
  advanced:
    '(cert (issuer (public-key (ed25519 |11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=|))) ' +
    '(subject (public-key (ed25519 |PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=|))) (propagate) ' +
    '(tag (cyberspace (mailbox (send alice)))) ' +
    '(valid (not-before 2026-01-01_00:00:00) (not-after 2027-01-01_00:00:00)))',
  canonical:
    '28343a6365727428363a6973737565722831303a7075626c69632d6b657928373a6564323535313933323a' +
    'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a' +
    '29292928373a7375626a6563742831303a7075626c69632d6b657928373a6564323535313933323a' +
    '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c' +
    '29292928393a70726f7061676174652928333a7461672831303a6379626572737061636528373a6d61696c626f78' +
    '28343a73656e64353a616c6963652929292928353a76616c69642831303a6e6f742d6265666f726531393a323032' +
    '362d30312d30315f30303a30303a30302928393a6e6f742d616674657231393a323032372d30312d30315f30303a' +
    '30303a3030292929',
  // "cyberspace/spki-cert/v1", one zero byte, then the canonical certificate
  signedPrefix: '637962657273706163652f73706b692d636572742f763100',
  signature:
    '494aa9de7f3e385633c9338adb2709f70f492de364583a57b6da6f26dbb875b6' +
    '03b9c0ad621f6834a38c4f6721b6e65b15d3691785ca756f31da4362f1d81a01',
  transport:
    '{KDExOnNpZ25lZC1jZXJ0KDQ6Y2VydCg2Omlzc3VlcigxMDpwdWJsaWMta2V5KDc6ZWQyNTUxOTMyOtdamAGCsQq31Uv+' +
    '08lkBzoO4XLz2qYjJa8CGmj3B1EaKSkpKDc6c3ViamVjdCgxMDpwdWJsaWMta2V5KDc6ZWQyNTUxOTMyOj1AF8PoQ4la' +
    'krcKp00bfrycmCzPLsSWjMDNVfEq9GYMKSkpKDk6cHJvcGFnYXRlKSgzOnRhZygxMDpjeWJlcnNwYWNlKDc6bWFpbGJv' +
    'eCg0OnNlbmQ1OmFsaWNlKSkpKSg1OnZhbGlkKDEwOm5vdC1iZWZvcmUxOToyMDI2LTAxLTAxXzAwOjAwOjAwKSg5Om5v' +
    'dC1hZnRlcjE5OjIwMjctMDEtMDFfMDA6MDA6MDApKSkoOTpzaWduYXR1cmUoNzplZDI1NTE5NjQ6SUqp3n8+OFYzyTOK' +
    '2ycJ9w9JLeNkWDpXttpvJtu4dbYDucCtYh9oNKOMT2chtuZbFdNpF4XKdW8x2kNi8dgaASkpKQ==}'
}

const CERT: AuthCert = {
  type: 'auth',
  issuer: principalId(unhex(ISSUER_KEY)),
  subject: { kind: 'key', principal: principalId(unhex(SUBJECT_KEY)) },
  propagate: true,
  tag: parseTag(parseAdvanced('(cyberspace (mailbox (send alice)))')),
  validity: { notBefore: '2026-01-01_00:00:00', notAfter: '2027-01-01_00:00:00' }
}

/** The canonical (signed-cert …) the transport form carries. */
const signedCanonical = (): Uint8Array =>
  encodeCanonical(signedCertToSexp({ cert: CERT, signature: unhex(VECTOR.signature) }))

/** Runs a strict decoder on the transport body; undefined if the program is not installed. */
function decodeWith(
  command: string,
  args: string[],
  input: string
): { status: number | null; stdout: Buffer } | undefined {
  const run = spawnSync(command, args, { input })
  if ((run.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined
  return { status: run.status, stdout: run.stdout }
}

const PYTHON_STRICT = 'import base64, sys; sys.stdout.buffer.write(base64.b64decode(sys.stdin.read(), validate=True))'

describe('the SPKI test vector (protocols/spki/README.md)', () => {
  it('encodes the certificate to the published canonical bytes and advanced text (padded |…| atoms)', () => {
    assert.equal(CERT.issuer, VECTOR.issuer)
    assert.equal((CERT.subject as { principal: string }).principal, VECTOR.subject)
    assert.equal(hex(encodeCanonical(certToSexp(CERT))), VECTOR.canonical)
    assert.equal(toAdvanced(certToSexp(CERT)), VECTOR.advanced)
    assert.deepEqual(parseCert(parseAdvanced(VECTOR.advanced)), CERT)
  })

  it('signs the domain, a zero byte and the canonical certificate, and writes the published transport form', async () => {
    assert.equal(hex(certSigningBytes(CERT)), VECTOR.signedPrefix + VECTOR.canonical)
    const signed = await signCert(CERT, SECRET)
    assert.equal(hex(signed.signature), VECTOR.signature)
    assert.equal(toTransport(signedCertToSexp(signed)), VECTOR.transport)
    assert.equal(hex(encodeCanonical(parseTransport(VECTOR.transport))), hex(signedCanonical()))

    const read = parseSignedCert(parseTransport(VECTOR.transport))
    assert.deepEqual(read, signed)
    await verifyCert(read)
    // the same unpadded, or wrapped at 76 columns, still reads
    assert.deepEqual(parseSignedCert(parseTransport(VECTOR.transport.replace(/=+}$/, '}'))), signed)
    const body = VECTOR.transport.slice(1, -1)
    const wrapped = `{\n${body.match(/.{1,76}/g)?.join('\n')}\n}`
    assert.deepEqual(parseSignedCert(parseTransport(wrapped)), signed)
    // one bit of the signature flipped, and it no longer verifies
    const forged = unhex(VECTOR.signature)
    forged[17] ^= 0x04
    await assert.rejects(verifyCert({ cert: CERT, signature: forged }), { name: 'BadSignatureError' })
  })

  /**
   * What our code writes for the vector, and for canonical forms of each length modulo 3 (so
   * bodies ending in ==, = and no padding), with the canonical bytes each must decode to.
   */
  const ourTransports = (): Array<[string, Uint8Array]> => [
    [toTransport(signedCertToSexp({ cert: CERT, signature: unhex(VECTOR.signature) })), signedCanonical()],
    ...['a', 'ab', 'abc'].map((name): [string, Uint8Array] => {
      const s = parseAdvanced(`(tag ${name})`)
      return [toTransport(s), encodeCanonical(s)]
    })
  ]

  it('writes transport forms that coreutils `base64 -d` decodes to the canonical bytes', function () {
    for (const [transport, canonical] of ourTransports()) {
      const run = decodeWith('base64', ['-d'], transport.slice(1, -1))
      if (run == null) this.skip()
      assert.equal(run.status, 0, transport)
      assert.equal(hex(run.stdout), hex(canonical), transport)
    }
  })

  it("writes transport forms that Python's strict decoder (b64decode validate=True) decodes to the canonical bytes", function () {
    for (const [transport, canonical] of ourTransports()) {
      const run = decodeWith('python3', ['-c', PYTHON_STRICT], transport.slice(1, -1))
      if (run == null) this.skip()
      assert.equal(run.status, 0, transport)
      assert.equal(hex(run.stdout), hex(canonical), transport)
      assert.deepEqual(decodeCanonical(new Uint8Array(run.stdout)), parseTransport(transport))
    }
  })

  it('is the vector the spec publishes', () => {
    const spec = readFileSync(new URL('../../protocols/spki/README.md', import.meta.url), 'utf8')
    const flat = spec.replace(/\s+/g, '')
    for (const value of [
      VECTOR.issuer,
      VECTOR.subject,
      hex(SECRET),
      VECTOR.canonical,
      VECTOR.signedPrefix,
      VECTOR.signature,
      VECTOR.transport,
      VECTOR.advanced.replace(/\s+/g, '')
    ]) {
      assert.ok(flat.includes(value), `protocols/spki/README.md lacks ${value.slice(0, 40)}…`)
    }
  })

  it('refuses a certificate spelled in any shape other than the one signatures cover', () => {
    const pk = (key: string): string => `(public-key (ed25519 #${key}#))`
    const tail = '(valid (not-before 2026-01-01_00:00:00) (not-after 2027-01-01_00:00:00))'
    const tag = '(tag (cyberspace (mailbox (send alice))))'
    for (const other of [
      // fields out of order
      `(cert (subject ${pk(SUBJECT_KEY)}) (issuer ${pk(ISSUER_KEY)}) (propagate) ${tag} ${tail})`,
      `(cert (issuer ${pk(ISSUER_KEY)}) (subject ${pk(SUBJECT_KEY)}) ${tag} (propagate) ${tail})`,
      // validity out of order, or empty
      `(cert (issuer ${pk(ISSUER_KEY)}) (subject ${pk(SUBJECT_KEY)}) (propagate) ${tag} ` +
        '(valid (not-after 2027-01-01_00:00:00) (not-before 2026-01-01_00:00:00)))',
      `(cert (issuer ${pk(ISSUER_KEY)}) (subject ${pk(SUBJECT_KEY)}) (propagate) ${tag} (valid))`,
      // a display hint
      `(cert (issuer ${pk(ISSUER_KEY)}) (subject ${pk(SUBJECT_KEY)}) (propagate) ` +
        `(tag (cyberspace (mailbox (send [text/plain]alice)))) ${tail})`,
      // range limits upper first
      `(cert (issuer ${pk(ISSUER_KEY)}) (subject ${pk(SUBJECT_KEY)}) (tag (* range numeric (le 9) (ge 1))))`
    ]) {
      assert.throws(() => parseCert(parseAdvanced(other)), { name: 'InvalidCertError' }, other)
    }
    // the canonical spelling of the same certificate, in hex atoms, parses
    const same = `(cert (issuer ${pk(ISSUER_KEY)}) (subject ${pk(SUBJECT_KEY)}) (propagate) ${tag} ${tail})`
    assert.deepEqual(parseCert(parseAdvanced(same)), CERT)
  })
})
