import { strict as assert } from 'node:assert'
import { spkiTime } from '../../src/spki/cert.ts'
import { certHash, signCrl } from '../../src/spki/crl.ts'
import { reduceChain, ReductionCache } from '../../src/spki/reduce.ts'
import { normalTagHandle } from '../../src/spki/tag.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { grant, key, tag } from './fixtures.ts'
import type { Key } from './fixtures.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { SignedCert } from '../../src/spki/cert.ts'

/**
 * Issue 17 attacks on SPKI's remembered decisions and reductions: a cached answer must never
 * outlive what it rests on (validity, ACL, CRLs) nor answer for another principal, tag or chain.
 */
describe('SPKI attacks (issue 17): remembered decisions and reductions', function () {
  this.timeout(60_000)
  let node: CyberspaceNode
  let root: Key
  let alice: Key
  let mallory: Key
  const asked = tag('(cyberspace (log (read notes)))')

  before(async () => {
    node = await memoryNode()
    ;[root, alice, mallory] = await Promise.all([key(), key(), key()])
  })

  after(async () => {
    await node.stop()
  })

  async function refused(promise: Promise<unknown>, names: string[]): Promise<void> {
    await assert.rejects(promise, (err: Error) => names.includes(err.name))
  }

  it('a remembered grant is not used past its certificate’s not-after, nor before its not-before', async () => {
    await node.spki.addAclEntry(root.id, tag('(cyberspace)'))
    const now = Date.now()
    const validity = { notBefore: spkiTime(now - 60_000), notAfter: spkiTime(now + 60_000) }
    await node.spki.addCert(await grant(root, alice, '(cyberspace (log))', { validity }))
    await node.spki.authorize(alice.id, asked)
    await node.spki.authorize(alice.id, asked) // remembered now
    await refused(node.spki.authorize(alice.id, asked, { at: now + 120_000 }), [
      'ChainNotFoundError',
      'ExpiredCertError'
    ])
    await refused(node.spki.authorize(alice.id, asked, { at: now - 120_000 }), [
      'ChainNotFoundError',
      'NotYetValidCertError'
    ])
    // and the remembered grant still answers inside its validity
    await node.spki.authorize(alice.id, asked)
  })

  it('a remembered grant answers for no other principal and no broader tag', async () => {
    await node.spki.authorize(alice.id, asked)
    await refused(node.spki.authorize(mallory.id, asked), ['ChainNotFoundError'])
    await refused(node.spki.authorize(alice.id, tag('(cyberspace (mailbox))')), ['ChainNotFoundError'])
  })

  it('a proof shown once and remembered answers for no other principal, and is refused once revoked', async () => {
    const bob = await key()
    const shown: SignedCert[] = [await grant(root, bob, '(cyberspace (log (read notes)))')]
    const proof = { chain: shown, names: [] }
    await node.spki.authorize(bob.id, asked, { proof })
    await node.spki.authorize(bob.id, asked, { proof }) // remembered
    await refused(node.spki.authorize(mallory.id, asked, { proof }), ['ChainNotFoundError', 'WrongSubjectError'])
    const now = Date.now()
    const crl = await signCrl(
      {
        issuer: root.id,
        revoked: [certHash(shown[0])],
        validity: { notBefore: spkiTime(now - 1000), notAfter: spkiTime(now + 600_000) }
      },
      root.secret
    )
    await node.spki.addCrl(crl)
    await refused(node.spki.authorize(bob.id, asked, { proof }), ['RevokedCertError'])
  })

  it('a remembered grant is dropped when its root leaves the ACL', async () => {
    await node.spki.authorize(alice.id, asked)
    assert.equal(await node.spki.removeAclEntry(root.id), true)
    await refused(node.spki.authorize(alice.id, asked), ['ChainNotFoundError'])
    await node.spki.addAclEntry(root.id, tag('(cyberspace)'))
  })

  it('tag handles stay distinct after thousands of other tags evicted a tag’s handle (no old key maps to a new tag)', async () => {
    const granted = await node.spki.authorize(alice.id, asked)
    assert.ok(granted != null)
    const handles = new Map<string, string>()
    for (let i = 0; i < 5000; i++) {
      const text = `(cyberspace (log (read n${i})))`
      const handle = normalTagHandle(tag(text))
      const other = handles.get(handle)
      assert.equal(other, undefined, `${text} got the handle of ${other ?? ''}`)
      handles.set(handle, text)
    }
    // a fresh object of the evicted tag gets a handle no other tag has, and it is still granted
    assert.equal(handles.has(normalTagHandle(tag('(cyberspace (log (read notes)))'))), false)
    await node.spki.authorize(alice.id, tag('(cyberspace (log (read notes)))'))
    // a tag made after the flood is not granted by anything remembered
    await refused(node.spki.authorize(alice.id, tag('(cyberspace (mailbox (read n4999)))')), ['ChainNotFoundError'])
  })

  it('a certificate object whose body is replaced in place is not answered by its old reduction', async () => {
    const reductions = new ReductionCache()
    const signed = await grant(root, alice, '(cyberspace (log))')
    await reduceChain([signed], { reductions })
    // the same object, now claiming another subject under the old signature (which no longer matches)
    ;(signed as { cert: SignedCert['cert'] }).cert = { ...signed.cert, subject: { kind: 'key', principal: mallory.id } }
    await refused(reduceChain([signed], { reductions }), ['BadSignatureError'])
  })
})
