import { strict as assert } from 'node:assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import {
  isPrincipalId,
  peerIdFromPrincipal,
  principalFromPeerId,
  principalId,
  principalPublicKey
} from '../../src/crypto/principal.ts'
import { signAs, verifyAs } from '../../src/crypto/sign.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
const RFC8032_PUB = hex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')

describe('principals', () => {
  it('names an Ed25519 key as a z6Mk multikey and reads it back', () => {
    const id = principalId(RFC8032_PUB)
    assert.match(id, /^z6Mk[1-9A-HJ-NP-Za-km-z]{44}$/)
    assert.deepEqual(principalPublicKey(id), RFC8032_PUB)
    assert.equal(isPrincipalId(id), true)
  })

  it('is the same principal as the libp2p peer id of the same key', async () => {
    const key = await generateKeyPair('Ed25519')
    const peerId = peerIdFromPrivateKey(key)
    const id = principalFromPeerId(peerId)
    assert.deepEqual(principalPublicKey(id), key.publicKey.raw)
    assert.equal(peerIdFromPrincipal(id).toString(), peerId.toString())
  })

  it('refuses ids that are not Ed25519 multikeys', () => {
    const secp = 'zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme'
    for (const bad of ['', 'z', 'not-base58', 'z0OIl', secp, 'u' + 'A'.repeat(40), 'z' + '1'.repeat(100)]) {
      assert.throws(() => principalPublicKey(bad), { name: 'InvalidKeyError' }, bad)
      assert.equal(isPrincipalId(bad), false)
    }
    assert.throws(() => principalId(new Uint8Array(31)), { name: 'InvalidKeyError' })
  })
})

describe('domain-separated signatures', () => {
  it('verifies only under the domain it was made for', async () => {
    const secret = crypto.getRandomValues(new Uint8Array(32))
    const pub = await nobleEd25519.publicKey(secret)
    const body = new TextEncoder().encode('{"grant":"member"}')
    const sig = await signAs(secret, 'cyberspace/cert/v1', body)
    assert.equal(await verifyAs(pub, 'cyberspace/cert/v1', body, sig), true)
    assert.equal(await verifyAs(pub, 'cyberspace/cert/v1', body, sig, nobleEd25519), true)
    assert.equal(await verifyAs(pub, 'cyberspace/event/v1', body, sig), false)
    // the zero byte ends the domain: 'v1' + body cannot pose as 'v10' + rest of body
    const shifted = await signAs(secret, 'cyberspace/cert/v1', new Uint8Array([0x30, ...body]))
    assert.equal(await verifyAs(pub, 'cyberspace/cert/v10', body, shifted), false)
  })

  it('refuses malformed domains', async () => {
    const secret = new Uint8Array(32)
    for (const bad of [
      '',
      'cyberspace',
      'cyberspace/cert',
      'other/cert/v1',
      'cyberspace/Cert/v1',
      'cyberspace/cert/v1\0'
    ]) {
      await assert.rejects(signAs(secret, bad, new Uint8Array()), { name: 'InvalidDomainError' }, bad)
    }
  })
})
