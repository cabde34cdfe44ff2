import { strict as assert } from 'node:assert'
import { ed25519, nobleEd25519, webCrypto } from '../../src/crypto/ed25519.ts'
import type { Ed25519 } from '../../src/crypto/ed25519.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))

/** RFC 8032 section 7.1, tests 1-3. */
const RFC8032 = [
  {
    secret: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    public: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature:
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'
  },
  {
    secret: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    public: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature:
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00'
  },
  {
    secret: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    public: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature:
      '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a'
  }
]

/** The group order L, little-endian, to build a non-canonical S (S + L). */
const L = (1n << 252n) + 27742317777372353535851937790883648493n

function addL(sig: Uint8Array): Uint8Array {
  let s = 0n
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i])
  s += L
  const out = Uint8Array.from(sig)
  for (let i = 32; i < 64; i++) {
    out[i] = Number(s & 0xffn)
    s >>= 8n
  }
  return out
}

describe('Ed25519 back ends', () => {
  let backends: Ed25519[]
  before(async () => {
    const native = await webCrypto()
    // Node 24 has WebCrypto Ed25519: the test must exercise both back ends, not silently one
    assert.ok(native != null, 'this runtime should have WebCrypto Ed25519')
    backends = [native, nobleEd25519]
    assert.equal((await ed25519()).name, 'webcrypto')
  })

  it('both reproduce the RFC 8032 test vectors', async () => {
    for (const backend of backends) {
      for (const v of RFC8032) {
        assert.deepEqual(await backend.publicKey(hex(v.secret)), hex(v.public), `${backend.name} public key`)
        assert.deepEqual(
          await backend.sign(hex(v.secret), hex(v.message)),
          hex(v.signature),
          `${backend.name} signature`
        )
        assert.equal(await backend.verify(hex(v.public), hex(v.message), hex(v.signature)), true)
      }
    }
  })

  it('each verifies the other’s signatures over random messages', async () => {
    const [a, b] = backends
    for (let i = 0; i < 20; i++) {
      const secret = crypto.getRandomValues(new Uint8Array(32))
      const message = crypto.getRandomValues(new Uint8Array(i * 13))
      const pub = await a.publicKey(secret)
      assert.deepEqual(await b.publicKey(secret), pub)
      const sigA = await a.sign(secret, message)
      const sigB = await b.sign(secret, message)
      assert.deepEqual(sigA, sigB, 'Ed25519 is deterministic')
      assert.equal(await b.verify(pub, message, sigA), true)
      assert.equal(await a.verify(pub, message, sigB), true)
    }
  })

  it('both reject the same bad signatures', async () => {
    const v = RFC8032[1]
    const pub = hex(v.public)
    const sig = hex(v.signature)
    const flipped = Uint8Array.from(sig)
    flipped[10] ^= 1
    const notOnCurve = hex('0200000000000000000000000000000000000000000000000000000000000000')
    const cases: Array<[string, Uint8Array, Uint8Array, Uint8Array]> = [
      ['wrong message', pub, hex('73'), sig],
      ['flipped signature bit', pub, hex(v.message), flipped],
      ['non-canonical S (S + L)', pub, hex(v.message), addL(sig)],
      ['short signature', pub, hex(v.message), sig.subarray(0, 63)],
      ['other key', hex(RFC8032[0].public), hex(v.message), sig],
      ['public key not on the curve', notOnCurve, hex(v.message), sig]
    ]
    for (const [what, key, message, signature] of cases) {
      for (const backend of backends) {
        assert.equal(await backend.verify(key, message, signature), false, `${backend.name}: ${what}`)
      }
    }
  })

  it('names a key of the wrong length', async () => {
    for (const backend of backends) {
      await assert.rejects(backend.sign(new Uint8Array(31), new Uint8Array()), { name: 'InvalidKeyError' })
      await assert.rejects(backend.verify(new Uint8Array(33), new Uint8Array(), new Uint8Array(64)), {
        name: 'InvalidKeyError'
      })
    }
  })
})
