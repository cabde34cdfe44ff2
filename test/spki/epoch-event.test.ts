import { strict as assert } from 'node:assert'
import { spkiTime } from '../../src/spki/cert.ts'
import { signCrl } from '../../src/spki/crl.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from './fixtures.ts'
import type { CyberspaceNode } from '../../src/node.ts'

/** The SPKI service tells when its epoch moves, so holders of decisions need not poll it. */
describe("the SPKI service's epoch event", () => {
  let node: CyberspaceNode
  const seen: number[] = []
  const onEpoch = (e: CustomEvent<{ epoch: number }>): void => {
    seen.push(e.detail.epoch)
  }

  before(async () => {
    node = await memoryNode({})
    node.spki.addEventListener('epoch', onEpoch)
  })

  after(async () => {
    node.spki.removeEventListener('epoch', onEpoch)
    await node.stop()
  })

  it('fires after the changes of a task (once for all of them), naming the epoch they led to; nothing fires without a change', async () => {
    const [root, member] = await Promise.all([key(), key()])
    const cert = await grant(root, { kind: 'key', principal: member.id }, '(cyberspace member)')
    seen.length = 0
    const before = node.spki.epoch
    // addAclEntry and addCert each change the epoch; started in one task, they end in two
    await Promise.all([node.spki.addAclEntry(root.id, tag('(cyberspace)')), node.spki.addCert(cert)])
    await new Promise(resolve => setTimeout(resolve, 0))
    assert.ok(node.spki.epoch > before)
    assert.ok(seen.length >= 1 && seen.length <= 2, JSON.stringify(seen))
    assert.equal(seen.at(-1), node.spki.epoch)
    // nothing changed: nothing fires
    const count = seen.length
    await new Promise(resolve => setTimeout(resolve, 50))
    assert.equal(seen.length, count)
  })

  it('fires when a held CRL becomes current, with nobody reading the epoch', async () => {
    const issuer = await key()
    // SPKI times are whole seconds: current from the next second but one
    const from = Math.ceil(Date.now() / 1000) * 1000 + 2000
    const crl = await signCrl(
      { issuer: issuer.id, revoked: [], validity: { notBefore: spkiTime(from), notAfter: spkiTime(from + 3_600_000) } },
      issuer.secret
    )
    await node.spki.addCrl(crl)
    await new Promise(resolve => setTimeout(resolve, 0))
    const count = seen.length
    assert.ok(Date.now() < from, 'the CRL is not current yet')
    await waitUntil('an epoch event once the CRL is current', () => seen.length > count, 10_000, 20)
    assert.ok(Date.now() >= from, `fired ${from - Date.now()} ms before the CRL became current`)
  })
})
