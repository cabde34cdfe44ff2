import { strict as assert } from 'node:assert'
import { decodeDkgMessage, DKG_DOMAIN, dkgSigningBody, encodeDkgMessage } from '../../protocols/dkg/codec.ts'
import { signAs } from '../../src/crypto/sign.ts'
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import { DkgSession } from '../../src/threshold/dkg.ts'
import { reconstructSecret } from '../../src/threshold/dealer.ts'
import {
  evaluate,
  Fn,
  frost,
  identifierScalar,
  memberIdentifier,
  randomScalar,
  scalarBytes
} from '../../src/threshold/group.ts'
import { members, signWith, withTorsion } from './fixtures.ts'
import type { DkgMessage, DkgRound1 } from '../../protocols/dkg/codec.ts'
import type { Member } from './fixtures.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'

/** Runs sessions to the end, delivering every message (through the codec) to its recipients; `tamper` may rewrite any in flight. */
async function run(
  sessions: Map<string, DkgSession>,
  tamper: (msg: DkgMessage, to: string) => DkgMessage | Promise<DkgMessage> = m => m
): Promise<Map<string, Error>> {
  const errors = new Map<string, Error>()
  const queue: Array<{ to: string; msg: DkgMessage }> = []
  const post = async (from: string, msgs: DkgMessage[]): Promise<void> => {
    for (const msg of msgs) {
      for (const to of sessions.keys()) {
        if (to === from || (msg.type === 'round2' && msg.to !== to)) continue
        queue.push({ to, msg: decodeDkgMessage(encodeDkgMessage(await tamper(msg, to))) })
      }
    }
  }
  for (const [id, s] of sessions) await post(id, await s.start())
  for (let steps = 0; queue.length > 0 && steps < 10_000; steps++) {
    const { to, msg } = queue.shift()!
    if (errors.has(to)) continue
    try {
      await post(to, await sessions.get(to)!.receive(msg))
    } catch (err) {
      errors.set(to, err as Error)
    }
  }
  return errors
}

function sessionsFor(
  ms: Member[],
  t: number,
  session = crypto.getRandomValues(new Uint8Array(32))
): Map<string, DkgSession> {
  const list = ms.map(m => m.id)
  return new Map(
    ms.map(m => [
      m.id,
      new DkgSession({ session, members: list, threshold: t }, { principal: m.id, secretKey: m.secret })
    ])
  )
}

describe('DKG session (authenticated, encrypted round 2, confirmed)', () => {
  it('3-of-5: every member gets a share of one group key that t of them sign for', async () => {
    const ms = await members(5)
    const sessions = sessionsFor(ms, 3)
    assert.equal((await run(sessions)).size, 0)
    const outcomes = [...sessions.values()].map(s => s.outcome())
    for (const o of outcomes) assert.deepEqual(o.groupKey, outcomes[0].groupKey)
    assert.ok(outcomes.every(o => o.clusterPrincipal.startsWith('z6Mk')))
    // any 3 shares sign; the result is a plain Ed25519 signature
    const msg = new TextEncoder().encode('admit member')
    const sig = signWith(
      outcomes.slice(1, 4).map(o => o.key),
      msg
    )
    assert.ok(await nobleEd25519.verify(outcomes[0].groupKey, msg, sig))
    // the shares are a sharing of one secret (checked here only because a test may look)
    const secret = reconstructSecret(
      outcomes[0].key.public,
      outcomes.slice(0, 3).map(o => o.key.secret)
    )
    assert.ok(await nobleEd25519.verify(outcomes[0].groupKey, msg, frost.sign(msg, secret)))
  })

  it('aborts naming the member who sends a corrupt share, signed', async () => {
    const ms = await members(4)
    const [victim, liar] = [ms[0], ms[2]]
    for (const corrupt of ['a share off its polynomial', 'a box that does not open']) {
      const fresh = sessionsFor(ms, 3)
      const liarFresh = fresh.get(liar.id) as unknown as {
        cipher: (f: string, t: string) => { encrypt: (b: Uint8Array) => Uint8Array }
      }
      const errors = await run(fresh, async (msg, to) => {
        if (msg.type !== 'round2' || msg.from !== liar.id || to !== victim.id) return msg
        const box =
          corrupt === 'a box that does not open'
            ? crypto.getRandomValues(new Uint8Array(48))
            : liarFresh.cipher(liar.id, victim.id).encrypt(scalarBytes(randomScalar()))
        return await resign({ ...msg, box }, liar)
      })
      const error = errors.get(victim.id) as Error & { culprit?: string }
      assert.equal(error?.name, 'InvalidShareError', corrupt)
      assert.equal(error.culprit, liar.id, corrupt)
      assert.equal(fresh.get(victim.id)!.status, 'aborted')
      assert.throws(() => fresh.get(victim.id)!.outcome(), { name: 'WrongRoundError' })
    }
  })

  it('aborts naming the first of two colluders whose share errors cancel in the sum', async () => {
    const ms = await members(5)
    const victim = ms[0]
    const fresh = sessionsFor(ms, 3)
    // the sorted member order decides who is "first": the victim checks senders in that order
    const order = [...fresh.keys()].sort().filter(id => id !== victim.id)
    const [first, second] = order.slice(1, 3)
    const x = identifierScalar(memberIdentifier(victim.id as PrincipalId))
    const delta = 424242n
    type Inside = {
      cipher: (f: string, t: string) => { encrypt: (b: Uint8Array) => Uint8Array }
      coefficients: bigint[]
    }
    const errors = await run(fresh, async (msg, to) => {
      if (msg.type !== 'round2' || to !== victim.id || (msg.from !== first && msg.from !== second)) return msg
      const sender = fresh.get(msg.from) as unknown as Inside
      const share = evaluate(sender.coefficients, x)
      const shifted = msg.from === first ? Fn.add(share, delta) : Fn.sub(share, delta)
      const box = sender.cipher(msg.from, victim.id).encrypt(Fn.toBytes(shifted))
      return await resign(
        { ...msg, box },
        ms.find(m => m.id === msg.from)!
      )
    })
    const error = errors.get(victim.id) as Error & { culprit?: string }
    assert.equal(error?.name, 'InvalidShareError')
    assert.equal(error.culprit, first)
  })

  it('catches a member who shows different round-1 commitments to different members', async () => {
    const ms = await members(4)
    const session = crypto.getRandomValues(new Uint8Array(32))
    const sessions = sessionsFor(ms, 3, session)
    const [victim, liar] = [ms[0], ms[3]]
    // a second, validly signed round 1 of the liar's, shown to the victim only
    const shadow = new DkgSession(
      { session, members: ms.map(m => m.id), threshold: 3 },
      { principal: liar.id, secretKey: liar.secret }
    )
    const [other] = (await shadow.start()) as DkgRound1[]
    const errors = await run(sessions, (msg, to) =>
      msg.type === 'round1' && msg.from === liar.id && to === victim.id ? other : msg
    )
    const error = errors.get(victim.id) as Error & { culprit?: string }
    assert.equal(error?.name, 'InvalidShareError')
    assert.equal(error.culprit, liar.id)
  })

  it('refuses replays, strangers, other sessions and forged senders without aborting', async () => {
    const ms = await members(3)
    const sessions = sessionsFor(ms, 2)
    const [a, b] = [sessions.get(ms[0].id)!, sessions.get(ms[1].id)!]
    await a.start()
    const [r1] = (await b.start()) as DkgRound1[]
    await a.receive(r1)
    await assert.rejects(a.receive(r1), { name: 'ReplayedMessageError' })
    const stranger = (await members(1))[0]
    await assert.rejects(a.receive(await resign({ ...r1, from: stranger.id }, stranger)), { name: 'NotAMemberError' })
    await assert.rejects(a.receive({ ...r1, session: new Uint8Array(32) }), { name: 'WrongSessionError' })
    await assert.rejects(a.receive({ ...r1, from: ms[2].id }), { name: 'MessageSignatureError' })
    await assert.rejects(a.receive({ ...r1, from: ms[0].id }), { name: 'NotAMemberError' })
    // a different round 1 from b, validly signed: equivocation, which does abort
    const again = new DkgSession(
      { session: r1.session, members: ms.map(m => m.id), threshold: 2 },
      { principal: ms[1].id, secretKey: ms[1].secret }
    )
    const [r1b] = (await again.start()) as DkgRound1[]
    await assert.rejects(a.receive(r1b), { name: 'EquivocationError' })
    assert.equal(a.status, 'aborted')
  })

  it('aborts on malformed points and proofs in round 1, naming the sender', async () => {
    const ms = await members(3)
    const identity = new Uint8Array(32)
    identity[0] = 1
    const smallOrder = new Uint8Array(32)
    const cases: Array<[string, (r: DkgRound1) => DkgRound1, number?]> = [
      ['identity commitment', r => ({ ...r, commitment: [identity, ...r.commitment.slice(1)] })],
      ['small-order commitment', r => ({ ...r, commitment: [r.commitment[0], smallOrder] })],
      ['non-point commitment', r => ({ ...r, commitment: [r.commitment[0], new Uint8Array(32).fill(0xff)] })],
      [
        'wrong proof',
        r => ({ ...r, proof: new Uint8Array([...r.proof.subarray(0, 32), ...new Uint8Array(32).fill(1)]) })
      ],
      ['low-order X25519 key', r => ({ ...r, ephemeral: new Uint8Array(32) })],
      // points with an order-2 component: canonical, not of small order, outside the prime-order subgroup
      ['commitment outside the subgroup', r => ({ ...r, commitment: [r.commitment[0], withTorsion(r.commitment[1])] })],
      [
        'proof commitment outside the subgroup',
        r => ({ ...r, proof: new Uint8Array([...withTorsion(r.proof.subarray(0, 32)), ...r.proof.subarray(32)]) })
      ],
      // with threshold 3 a member commits to 3 coefficients; two are well-formed but too few
      ['too few commitments', r => ({ ...r, commitment: r.commitment.slice(0, 2) }), 3]
    ]
    for (const [what, change, t = 2] of cases) {
      const sessions = sessionsFor(ms, t)
      const [victim, liar] = [ms[0], ms[1]]
      const errors = await run(sessions, async (msg, to) =>
        msg.type === 'round1' && msg.from === liar.id && to === victim.id ? await resign(change(msg), liar) : msg
      )
      const error = errors.get(victim.id) as Error & { culprit?: string }
      assert.equal(error?.name, 'InvalidShareError', what)
      assert.equal(error.culprit, liar.id, what)
    }
  })
})

async function resign<T extends DkgMessage>(msg: T, member: Member): Promise<T> {
  return { ...msg, sig: await signAs(member.secret, DKG_DOMAIN, dkgSigningBody(msg)) }
}
