/**
 * Attacker: a cluster member (not the coordinator) against another coordinator's FROST sessions.
 * Every member is asked to commit, so every member learns each session id; a member that sends
 * the same session id to another member on its own behalf must not touch the coordinator's
 * session there (the per-coordinator cap promises "another coordinator's sessions are never
 * forgotten").
 */
import { strict as assert } from 'node:assert'
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import { coordinateSigning, Signer } from '../../src/threshold/sign.ts'
import { dealtGroup, members } from './fixtures.ts'
import type { SigningTransport } from '../../src/threshold/sign.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Member } from './fixtures.ts'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

describe('attack17c: a member against another coordinator’s signing sessions', () => {
  let ms: Member[]
  let ids: PrincipalId[]
  let keys: ReturnType<typeof dealtGroup>['keys']

  before(async () => {
    ms = await members(5)
    ids = ms.map(m => m.id)
    keys = dealtGroup(ms, 3).keys
  })

  const signers = (): Map<PrincipalId, Signer> =>
    new Map(ms.map((m, i) => [m.id, new Signer(keys[i], m.id, async () => {})]))

  it('a sign request naming a session of another coordinator leaves that session usable', async () => {
    const all = signers()
    const [honest, hostile, victim] = ids
    const session = crypto.getRandomValues(new Uint8Array(32))
    const payload = utf8('grant (cyberspace member) to K')
    const victimSigner = all.get(victim)!
    const own = await victimSigner.commit({ session, coordinator: honest, payload })
    // the hostile member learned `session` from its own commit request, and asks the victim to sign it
    assert.throws(
      () => victimSigner.signShare({ session, coordinator: hostile, payload, commitments: [own] }),
      (err: Error) => err.name === 'SigningRefusedError' || err.name === 'WrongSessionError'
    )
    assert.equal(victimSigner.open, 1, 'the honest coordinator’s session is still open on the victim')
  })

  it('a commit naming a session of another coordinator, sent first, does not make the victim refuse the coordinator', async () => {
    const all = signers()
    const [honest, hostile, victim] = ids
    const session = crypto.getRandomValues(new Uint8Array(32))
    const payload = utf8('grant (cyberspace member) to K')
    const victimSigner = all.get(victim)!
    // the hostile member races the coordinator's commit request to the victim with the same session id
    await victimSigner.commit({ session, coordinator: hostile, payload })
    await victimSigner.commit({ session, coordinator: honest, payload })
  })

  it('one hostile member cannot make a 3-of-5 signature by an honest coordinator fail (2 faults are tolerated)', async () => {
    const all = signers()
    const coordinator = ids[0]
    const hostile = ids[1]
    const payload = utf8('grant (cyberspace member) to K')
    const transport: SigningTransport = {
      commit: async (m, req) => {
        const answer = await all.get(m)!.commit(req)
        if (m === hostile) {
          // the hostile member answers its own request correctly, and spends the session id it
          // learned on every other member before the coordinator's signing package arrives
          for (const other of ids) {
            if (other === hostile || other === m) continue
            try {
              all.get(other)!.signShare({ ...req, coordinator: hostile, commitments: [] })
            } catch {}
          }
        }
        return answer
      },
      sign: async (m, pkg) => all.get(m)!.signShare(pkg)
    }
    const result = await coordinateSigning(keys[0].public, ids, payload, transport, { coordinator })
    assert.ok(await nobleEd25519.verify(keys[0].public.commitments[0], payload, result.signature))
    for (const excluded of result.excluded.keys()) assert.equal(excluded, hostile, `${excluded} was excluded`)
  })
})
