import { strict as assert } from 'node:assert'
import { ed25519 as noble } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { sha512 } from '@noble/hashes/sha2.js'
import { nodeEd25519 } from '../../node/ed25519.ts'
import {
  ed25519,
  isStrictPublicKey,
  nobleEd25519,
  useEd25519,
  webCrypto,
  webCryptoEd25519
} from '../../src/crypto/ed25519.ts'
import { seedSigner, signAs, verifyAs } from '../../src/crypto/sign.ts'
import { principalId } from '../../src/crypto/principal.ts'
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
    // Node 24 has WebCrypto Ed25519: the test must exercise every back end, not silently one
    assert.ok(native != null, 'this runtime should have WebCrypto Ed25519')
    backends = [native, nobleEd25519, nodeEd25519()]
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

  it('each verifies the others’ signatures over random messages', async () => {
    for (let i = 0; i < 20; i++) {
      const secret = crypto.getRandomValues(new Uint8Array(32))
      const message = crypto.getRandomValues(new Uint8Array(i * 13))
      const pub = await backends[0].publicKey(secret)
      const sigs: Uint8Array[] = []
      for (const backend of backends) {
        assert.deepEqual(await backend.publicKey(secret), pub, backend.name)
        sigs.push(await backend.sign(secret, message))
        const prepared = await backend.prepare(secret)
        assert.deepEqual(prepared.publicKey, pub, `${backend.name} prepared public key`)
        assert.deepEqual(await prepared.sign(message), sigs[0], `${backend.name}: prepared signs the same`)
      }
      for (const sig of sigs) assert.deepEqual(sig, sigs[0], 'Ed25519 is deterministic')
      for (const backend of backends) assert.equal(await backend.verify(pub, message, sigs[0]), true, backend.name)
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

/**
 * Signatures built with noble's point arithmetic where Ed25519 implementations are known to
 * differ (small-order and mixed-order points, non-canonical encodings: "Taming the many EdDSAs",
 * C2SP's CCTV vectors), each with the answer of the strict rules in src/crypto/ed25519.ts.
 */
describe('Ed25519 edge cases: every back end gives the strict rules’ answer', () => {
  const Point = noble.Point
  const Fn = Point.Fn
  const p = (1n << 255n) - 19n
  type P = typeof Point.BASE
  const message = new TextEncoder().encode('edge')
  const a = Fn.create(bytesToNumberLE(sha512(new TextEncoder().encode('a fixed test scalar'))))
  const honest = Point.BASE.multiply(a)
  /** A point of order 8 and one of order 4 (y = 0). */
  const T8 = Point.fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a')
  const T4 = Point.fromHex('0000000000000000000000000000000000000000000000000000000000000000')
  const k = (r: Uint8Array, key: Uint8Array, m = message): bigint =>
    Fn.create(bytesToNumberLE(sha512(new Uint8Array([...r, ...key, ...m]))))
  const sig = (r: Uint8Array, s: bigint): Uint8Array => new Uint8Array([...r, ...numberToBytesLE(s, 32)])
  /** A signature by a key of discrete log `scalar` (its point `key`) with nonce point rB + extra. */
  const signWith = (key: Uint8Array, scalar: bigint, r: bigint, extra: P = Point.ZERO): Uint8Array => {
    const R = Point.BASE.multiply(r).add(extra).toBytes()
    return sig(R, Fn.create(r + k(R, key) * scalar))
  }
  /** The cofactorless equation [S]B − [k]A = R, solved for small-order A by trying S and residues. */
  const forSmallOrderKey = (key: Uint8Array, T: P, order: bigint): Uint8Array => {
    for (let s = 1n; s < 200n; s++) {
      for (let j = 0n; j < order; j++) {
        const R = Point.BASE.multiply(s).subtract(T.multiplyUnsafe(j)).toBytes()
        if (k(R, key) % order === j) return sig(R, s)
      }
    }
    throw new Error('no signature found')
  }
  const cases = (): Array<[string, Uint8Array, Uint8Array, boolean]> => {
    const A = honest.toBytes()
    const mixedA = honest.add(T8)
    const mixed = mixedA.toBytes()
    // a nonce whose k is a multiple of 8 (the torsion of A cancels) and one whose k is not
    let clean: Uint8Array | undefined
    let residue: Uint8Array | undefined
    for (let r = 1n; clean == null || residue == null; r++) {
      const s = signWith(mixed, a, r)
      if (k(s.subarray(0, 32), mixed) % 8n === 0n) clean ??= s
      else residue ??= s
    }
    const identity = Point.ZERO.toBytes()
    return [
      ['an honest signature', A, signWith(A, a, 12345n), true],
      ['small-order A (identity), R = [S]B', identity, sig(Point.BASE.multiply(42n).toBytes(), 42n), false],
      ['small-order A (order 8), cofactorless-valid', T8.toBytes(), forSmallOrderKey(T8.toBytes(), T8, 8n), false],
      ['small-order A (order 4), cofactorless-valid', T4.toBytes(), forSmallOrderKey(T4.toBytes(), T4, 4n), false],
      [
        'non-canonical A (identity as y = p + 1)',
        numberToBytesLE(p + 1n, 32),
        sig(Point.BASE.multiply(42n).toBytes(), 42n),
        false
      ],
      [
        'non-canonical A (order 4 as y = p), cofactorless-valid',
        numberToBytesLE(p, 32),
        forSmallOrderKey(numberToBytesLE(p, 32), T4, 4n),
        false
      ],
      [
        'non-canonical A (identity with the sign bit of x = 0)',
        hex('0100000000000000000000000000000000000000000000000000000000000080'),
        sig(Point.BASE.multiply(42n).toBytes(), 42n),
        false
      ],
      // noble's cofactored check accepts these three; OpenSSL's cofactorless one does not
      ['small-order R (identity), S = k·a by the key owner', A, sig(identity, Fn.create(k(identity, A) * a)), false],
      ['mixed-order R (rB + T8), honest key', A, signWith(A, a, 777n, T8), false],
      ['mixed-order A, torsion left in [k]A', mixed, residue, false],
      // …and this one both equations accept: the torsion of A is cleared by k
      ['mixed-order A, torsion cleared by k', mixed, clean, true],
      ['S + L', A, addL(signWith(A, a, 12345n)), false],
      ['S = L', A, sig(signWith(A, a, 12345n).subarray(0, 32), Fn.ORDER), false]
    ]
  }

  it('gives each case the expected answer in every back end', async () => {
    const native = await webCrypto()
    assert.ok(native != null)
    for (const backend of [native, nobleEd25519, nodeEd25519()]) {
      for (const [what, key, signature, expected] of cases()) {
        assert.equal(await backend.verify(key, message, signature), expected, `${backend.name}: ${what}`)
      }
    }
  })

  it('verifyMany gives every case, all at once, the answer verify gives it alone, in order', async () => {
    const native = await webCrypto()
    assert.ok(native != null)
    const all = cases()
    for (const backend of [native, nobleEd25519, nodeEd25519()]) {
      const items = all.map(([, publicKey, signature]) => ({ publicKey, message, signature }))
      assert.deepEqual(
        await backend.verifyMany(items),
        all.map(([, , , expected]) => expected),
        backend.name
      )
      // one item takes the single path
      assert.deepEqual(await backend.verifyMany(items.slice(-1)), [all[all.length - 1][3]], backend.name)
    }
  })

  it('the cheap public-key checks refuse every small-order and non-canonical encoding noble refuses', () => {
    // all 2^255 encodings cannot be walked; these are every y < 19 and y ≥ p, both signs
    for (let y = 0n; y < 19n; y++) {
      for (const sign of [0n, 1n << 255n]) {
        for (const value of [y, y + p]) {
          if (value >= 1n << 255n) continue
          const bytes = numberToBytesLE(value + sign, 32)
          const decodes = (zip215: boolean): P | undefined => {
            try {
              return Point.fromBytes(bytes, zip215)
            } catch {
              return undefined
            }
          }
          const strict = decodes(false)
          const what = `y=${value} sign=${sign > 0n}`
          if (strict != null && !strict.isSmallOrder()) assert.equal(isStrictPublicKey(bytes), true, what)
          // a point, but small-order or encoded non-canonically
          else if (decodes(true) != null) assert.equal(isStrictPublicKey(bytes), false, what)
          // not a point at all: the verifier refuses it
          else assert.equal(strict, undefined, what)
        }
      }
    }
  })
})

describe('Ed25519 key caches', () => {
  it('a back end whose caches hold two keys stays right over many keys, used out of order', async () => {
    for (const backend of [
      nodeEd25519({ publicKeys: 2, privateKeys: 2 }),
      webCryptoEd25519(crypto.subtle, { publicKeys: 2, privateKeys: 2 })
    ]) {
      const secrets = Array.from({ length: 6 }, (_, i) => new Uint8Array(32).fill(i + 1))
      const pubs = await Promise.all(secrets.map(s => nobleEd25519.publicKey(s)))
      const message = hex('0102')
      for (const i of [0, 1, 2, 3, 4, 5, 0, 3, 1, 5, 2, 4]) {
        assert.deepEqual(await backend.publicKey(secrets[i]), pubs[i], `${backend.name} key ${i}`)
        const signature = await backend.sign(secrets[i], message)
        assert.deepEqual(signature, await nobleEd25519.sign(secrets[i], message))
        assert.equal(await backend.verify(pubs[i], message, signature), true)
        // the same signature under the next key: a cache that mixed keys up would accept it
        assert.equal(await backend.verify(pubs[(i + 1) % 6], message, signature), false)
      }
    }
  })

  it('a refused key stays refused and does not stand in for a good one', async () => {
    const backend = nodeEd25519({ publicKeys: 4 })
    const v = RFC8032[1]
    const identity = hex('0100000000000000000000000000000000000000000000000000000000000000')
    for (let i = 0; i < 3; i++) {
      assert.equal(await backend.verify(identity, hex(v.message), hex(v.signature)), false)
      assert.equal(await backend.verify(hex(v.public), hex(v.message), hex(v.signature)), true)
    }
  })

  it('a prepared key keeps signing with the seed it was given, whatever happens to the caller’s array', async () => {
    for (const backend of [nodeEd25519(), nobleEd25519, webCryptoEd25519(crypto.subtle)]) {
      const seed = hex(RFC8032[2].secret)
      const key = await backend.prepare(seed)
      seed.fill(0)
      assert.deepEqual(key.publicKey, hex(RFC8032[2].public), backend.name)
      assert.deepEqual(await key.sign(hex(RFC8032[2].message)), hex(RFC8032[2].signature), backend.name)
    }
  })
})

describe('installing an Ed25519 back end', () => {
  it('ed25519() returns the installed back end, and detection again once it is removed', async () => {
    const mine = nodeEd25519()
    const before = useEd25519(mine)
    try {
      assert.equal(await ed25519(), mine)
      assert.equal((await webCrypto())?.name, 'webcrypto', 'WebCrypto stays reachable for comparison')
      useEd25519(undefined)
      assert.equal((await ed25519()).name, 'webcrypto')
    } finally {
      useEd25519(before)
    }
  })

  it('a seed signer signs with the installed back end, as signAs does, and its signatures verify', async () => {
    const before = useEd25519(nodeEd25519())
    try {
      const seed = hex(RFC8032[0].secret)
      // a libp2p key's raw form is the seed followed by the public key
      const signer = await seedSigner(new Uint8Array([...seed, ...hex(RFC8032[0].public)]))
      assert.equal(signer.principal, principalId(hex(RFC8032[0].public)))
      const body = hex('a1b2')
      const sig = await signer.sign('cyberspace/test/v1', body)
      assert.deepEqual(sig, await signAs(seed, 'cyberspace/test/v1', body, nobleEd25519))
      assert.equal(await verifyAs(hex(RFC8032[0].public), 'cyberspace/test/v1', body, sig), true)
      assert.equal(await verifyAs(hex(RFC8032[0].public), 'cyberspace/other/v1', body, sig), false)
    } finally {
      useEd25519(before)
    }
  })
})
