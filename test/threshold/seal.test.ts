import { strict as assert } from 'node:assert'
import { openBoxFor, openScalar, sealScalars } from '../../src/threshold/seal.ts'
import { randomScalar, scalarBytes } from '../../src/threshold/group.ts'
import { members } from './fixtures.ts'

describe('scalars sealed to a member’s identity key', () => {
  it('open only for their recipient, sender, session and kind of piece, and each box under its own key', async () => {
    const [from, to, other] = await members(3)
    const session = crypto.getRandomValues(new Uint8Array(32))
    const secret = scalarBytes(randomScalar())
    const { ephemeral, boxes } = sealScalars('cyberspace/reshare-share/v1', session, from.id, [
      { to: to.id, secret: Uint8Array.from(secret) },
      { to: other.id, secret: Uint8Array.from(secret) }
    ])
    const box = boxes[0].box
    assert.deepEqual(
      openScalar('cyberspace/reshare-share/v1', session, from.id, to.id, to.secret, ephemeral, box),
      secret
    )
    // the same secret to two members: two different boxes (distinct keys and nonces)
    assert.notDeepEqual(boxes[0].box, boxes[1].box)
    const wrong: Array<[string, Uint8Array, string, string, Uint8Array]> = [
      ['another member’s key', session, from.id, other.id, other.secret],
      ['another session', crypto.getRandomValues(new Uint8Array(32)), from.id, to.id, to.secret],
      ['another sender', session, other.id, to.id, to.secret]
    ]
    for (const [what, s, f, t, seed] of wrong)
      assert.throws(
        () => openScalar('cyberspace/reshare-share/v1', s, f, t as never, seed, ephemeral, box),
        Error,
        what
      )
    assert.throws(() => openScalar('cyberspace/repair-sum/v1', session, from.id, to.id, to.secret, ephemeral, box))
    const tampered = Uint8Array.from(box)
    tampered[0] ^= 1
    assert.throws(() =>
      openScalar('cyberspace/reshare-share/v1', session, from.id, to.id, to.secret, ephemeral, tampered)
    )
    // the secrets given to sealScalars are zeroed
    const given = Uint8Array.from(secret)
    sealScalars('cyberspace/reshare-share/v1', session, from.id, [{ to: to.id, secret: given }])
    assert.ok(given.every(b => b === 0))
  })
  it('open the recipient’s own box among many, and name the sender when there is none or it does not open', async () => {
    const [from, to, other] = await members(3)
    const session = crypto.getRandomValues(new Uint8Array(32))
    const secrets = [scalarBytes(randomScalar()), scalarBytes(randomScalar())]
    const sealed = sealScalars('cyberspace/repair-piece/v1', session, from.id, [
      { to: other.id, secret: Uint8Array.from(secrets[0]) },
      { to: to.id, secret: Uint8Array.from(secrets[1]) }
    ])
    const open = (piece: typeof sealed, self = to): Uint8Array =>
      openBoxFor('cyberspace/repair-piece/v1', session, from.id, self.id, self.secret, piece, 'repair piece')
    assert.deepEqual(open(sealed), secrets[1])
    assert.deepEqual(open(sealed, other), secrets[0])
    const blamesSender = { name: 'InvalidShareError', culprit: from.id }
    assert.throws(() => open({ ...sealed, boxes: sealed.boxes.filter(b => b.to !== to.id) }), blamesSender)
    // the other member's box, relabelled as this one's, does not open
    assert.throws(() => open({ ...sealed, boxes: [{ to: to.id, box: sealed.boxes[0].box }] }), blamesSender)
  })
})
