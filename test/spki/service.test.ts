import { strict as assert } from 'node:assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { lpStream } from '@libp2p/utils'
import { MemoryDatastore } from 'datastore-core'
import { base16 } from 'multiformats/bases/base16'
import { decodeSpkiMessage, encodeSpkiMessage, SPKI_PROTOCOL } from '../../protocols/spki/codec.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { signCert, signedCertToSexp, spkiTime } from '../../src/spki/cert.ts'
import { encodeCanonical } from '../../src/spki/sexp.ts'
import { certHash, signCrl } from '../../src/spki/crl.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import { grant, key, nameCert, NO_CRL_SPREAD, tag } from './fixtures.ts'
import type { Key } from './fixtures.ts'
import type { SignedCert, Subject } from '../../src/spki/cert.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { PrivateKey } from '@libp2p/interface'

/** The 32-byte Ed25519 seed of a libp2p private key (its raw form is seed || public key). */
const seedOf = (privateKey: PrivateKey): Uint8Array => privateKey.raw.subarray(0, 32)
const k = (id: PrincipalId): Subject => ({ kind: 'key', principal: id })

describe('the SPKI service over /cyberspace/spki/1.0.0', () => {
  const nodes: CyberspaceNode[] = []
  let verifier: CyberspaceNode
  let prover: CyberspaceNode
  let proverKey: Key
  let root: Key
  let chain: SignedCert[]
  const request = tag('(cyberspace (mailbox (send alice note)))')
  const proverStore = new MemoryDatastore()
  const verifierStore = new MemoryDatastore()

  before(async () => {
    const proverPrivate = await generateKeyPair('Ed25519')
    verifier = await memoryNode({ datastore: verifierStore })
    prover = await memoryNode({
      privateKey: proverPrivate,
      datastore: proverStore,
      bootstrap: [verifier.multiaddrs()[0]],
      // a prover that never hears of the verifier's CRLs, so a revoked chain is still sent and the
      // verifier's own refusal is what is tested (not a race between gossip and the request)
      revocationsOptions: NO_CRL_SPREAD
    })
    nodes.push(verifier, prover)
    await waitUntil('the two nodes to connect', () => prover.peers().length === 1)
    proverKey = { secret: seedOf(proverPrivate), id: principalFromPeerId(prover.peerId) }
    const [k1, k2, k3, k4] = await Promise.all([key(), key(), key(), key()])
    root = await key()
    // root → k1 → (k1's team's lead = k3) → k4 → prover: depth 5 through a linked name
    chain = [
      await grant(root, k(k1.id), '(cyberspace)'),
      await grant(k1, { kind: 'name', issuer: k1.id, names: ['team', 'lead'] }, '(cyberspace (mailbox))'),
      await nameCert(k1, 'team', k(k2.id)),
      await nameCert(k2, 'lead', k(k3.id)),
      await grant(k3, k(k4.id), '(cyberspace (mailbox (send (* set alice bob))))'),
      await grant(k4, k(k2.id), '(cyberspace (mailbox (send alice)))'),
      await grant(k2, k(proverKey.id), '(cyberspace (mailbox (send alice (* set note task))))', { propagate: false })
    ]
    for (const cert of chain) await prover.spki.addCert(cert)
    await verifier.spki.addAclEntry(root.id, tag('(cyberspace)'))
  })

  after(async () => {
    await Promise.all(
      nodes.map(async n => {
        await n.stop()
      })
    )
  })

  it('a prover discovers a depth-5 chain through a linked name and the verifier accepts it', async () => {
    const grantFound = await verifier.spki.prove(prover.peerId, request)
    assert.equal(grantFound.proof.chain.length, 5)
    assert.equal(grantFound.proof.names.length, 2)
    // the verifier never stored what it was shown
    assert.equal(verifier.spki.certs().length, 0)
  })

  it('refuses what the chain does not grant, and roots the verifier does not trust', async () => {
    await assert.rejects(
      verifier.spki.prove(prover.peerId, tag('(cyberspace (mailbox (send bob note)))')),
      (e: Error) => {
        return (
          e.name === 'ProofRefusedError' && (e as Error & { remoteName: string }).remoteName === 'ChainNotFoundError'
        )
      }
    )
    await assert.rejects(verifier.spki.prove(prover.peerId, tag('(other)')), { name: 'ChainNotFoundError' })
  })

  it('never stores a forged certificate', async () => {
    const forged = { ...(await grant(root, k(proverKey.id), '(cyberspace)')), signature: new Uint8Array(64) }
    await assert.rejects(prover.spki.addCert(forged), { name: 'BadSignatureError' })
    assert.equal(prover.spki.certs().length, chain.length)
  })

  it('answers a malformed request with a named error and keeps serving', async () => {
    for (const bytes of [new Uint8Array([0xff, 0x01]), new TextEncoder().encode('{"v":1}')]) {
      const stream = await prover.libp2p.dialProtocol(verifier.peerId, SPKI_PROTOCOL)
      const lp = lpStream(stream)
      await lp.write(bytes)
      const reply = decodeSpkiMessage((await lp.read()).subarray())
      assert.equal(reply.type, 'error')
      assert.equal(reply.type === 'error' ? reply.name : '', 'InvalidSpkiMessageError')
      await stream.close()
    }
    // a request over the size limit is refused from its length prefix, not buffered
    const stream = await prover.libp2p.dialProtocol(verifier.peerId, SPKI_PROTOCOL)
    const lp = lpStream(stream, { maxDataLength: 1024 * 1024 })
    await lp.write(new Uint8Array(300 * 1024)).catch(() => {})
    const reply = decodeSpkiMessage((await lp.read({ signal: AbortSignal.timeout(5_000) })).subarray())
    assert.equal(reply.type, 'error')
    stream.abort(new Error('done'))
    // and the service still works
    await verifier.spki.prove(prover.peerId, request)
  })

  it('refuses a revoked chain once the verifier holds the CRL', async () => {
    const revoker = chain[0]
    const crl = await signCrl(
      {
        issuer: root.id,
        revoked: [certHash(revoker)],
        validity: { notBefore: spkiTime(Date.now() - 60_000), notAfter: spkiTime(Date.now() + 3_600_000) }
      },
      root.secret
    )
    await verifier.spki.addCrl(crl)
    await assert.rejects(verifier.spki.prove(prover.peerId, request), { name: 'RevokedCertError' })
  })

  it('keeps its store, ACL and CRLs across a restart', async () => {
    await prover.stop()
    const again = await memoryNode({ datastore: proverStore })
    nodes.push(again)
    assert.equal(again.spki.certs().length, chain.length)
    await verifier.stop()
    const verifierAgain = await memoryNode({ datastore: verifierStore })
    nodes.push(verifierAgain)
    assert.deepEqual(
      verifierAgain.spki.acl().map(e => e.principal),
      [root.id]
    )
    // the CRL came back too: the revoked chain stays refused
    await assert.rejects(
      verifierAgain.spki.authorize(proverKey.id, request, {
        proof: { chain: chain.filter(c => c.cert.type === 'auth'), names: chain.filter(c => c.cert.type === 'name') }
      }),
      {
        name: 'RevokedCertError'
      }
    )
  })
})

describe("the SPKI service's own certificates and CRL", () => {
  const nodes: CyberspaceNode[] = []
  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  it('issues with the node key, and keeps its revocations current by re-signing its CRL', async () => {
    const store = new MemoryDatastore()
    // a 4 s CRL lifetime: re-signed after 2 s, checked every second
    const privateKey = await generateKeyPair('Ed25519')
    const node = await memoryNode({ privateKey, datastore: store, spkiOptions: { crlLifetime: 4000 } })
    nodes.push(node)
    const other = await key()
    const issued = await node.spki.issue({
      type: 'auth',
      issuer: node.spki.principal,
      subject: k(other.id),
      propagate: false,
      tag: tag('(cyberspace (mailbox send))'),
      validity: {}
    })
    assert.equal(node.spki.certs().length, 1)
    await node.spki.addAclEntry(node.spki.principal, tag('(cyberspace)'))
    const request = tag('(cyberspace (mailbox send))')
    assert.equal((await node.spki.authorize(other.id, request)).proof.chain.length, 1)

    // a certificate naming another issuer is not signed
    await assert.rejects(node.spki.issue({ ...issued.cert, issuer: other.id }), { name: 'InvalidCertError' })
    // nor one that would not parse
    await assert.rejects(
      node.spki.issue({
        type: 'name',
        issuer: node.spki.principal,
        name: 'no spaces',
        subject: k(other.id),
        validity: {}
      }),
      { name: 'InvalidCertError' }
    )

    const epochBefore = node.spki.epoch
    const first = await node.spki.revoke([certHash(issued)])
    assert.ok(node.spki.epoch > epochBefore, 'revoking starts a new epoch')
    // the chain in the store runs through a revoked certificate: reported as revoked, by hash
    const hash = base16.baseEncode(certHash(issued))
    await assert.rejects(node.spki.authorize(other.id, request), (e: Error & { certHash?: string }) => {
      assert.equal(e.name, 'RevokedCertError')
      assert.equal(e.certHash, hash)
      assert.ok(e.message.includes(hash), e.message)
      return true
    })
    await assert.rejects(node.spki.authorize(other.id, request, { proof: { chain: [issued], names: [] } }), {
      name: 'RevokedCertError'
    })
    // a second revocation keeps the first: one CRL of this node, listing both
    const second = await node.spki.revoke([new Uint8Array(32).fill(1)])
    assert.equal(second.crl.revoked.length, 2)
    assert.deepEqual(
      node.spki.crls().filter(c => c.crl.issuer === node.spki.principal),
      [second]
    )
    await assert.rejects(node.spki.revoke([new Uint8Array(31)]), { name: 'TypeError' })

    // the CRL is re-signed before it lapses, with the same revocations
    await waitUntil(
      'the CRL to be re-signed',
      () => node.spki.crls()[0].crl.validity.notBefore > second.crl.validity.notBefore,
      10_000
    )
    assert.equal(node.spki.crls().length, 1)
    assert.equal(node.spki.crls()[0].crl.revoked.length, 2)
    assert.notDeepEqual(first.signature, node.spki.crls()[0].signature)

    // and the revocations survive a restart
    await node.stop()
    const again = await memoryNode({ privateKey, datastore: store })
    nodes.push(again)
    await assert.rejects(again.spki.authorize(other.id, request, { proof: { chain: [issued], names: [] } }), {
      name: 'RevokedCertError'
    })
    assert.equal(await again.spki.removeAclEntry(again.spki.principal), true)
    assert.equal(await again.spki.removeAclEntry(again.spki.principal), false)
    assert.equal(again.spki.acl().length, 0)
  })
})

describe('a verifier over /cyberspace/spki/1.0.0 refuses each kind of bad proof', () => {
  const nodes: CyberspaceNode[] = []
  let verifier: CyberspaceNode
  let liar: CyberspaceNode
  let root: Key, a: Key, b: Key, leaf: Key
  /** What the lying prover answers with next. */
  let answer: SignedCert[] = []
  const request = tag('(cyberspace (mailbox send))')
  const HOUR = 3_600_000

  before(async () => {
    ;[root, a, b, leaf] = await Promise.all([key(), key(), key(), key()])
    verifier = await memoryNode()
    liar = await memoryNode({ bootstrap: [verifier.multiaddrs()[0]] })
    nodes.push(verifier, liar)
    await waitUntil('the two nodes to connect', () => liar.peers().length === 1)
    await verifier.spki.addAclEntry(root.id, tag('(cyberspace)'))
    // the liar answers every proof request with `answer`, whatever it is
    await liar.libp2p.unhandle(SPKI_PROTOCOL)
    await liar.libp2p.handle(SPKI_PROTOCOL, async stream => {
      const lp = lpStream(stream)
      await lp.read()
      await lp.write(
        encodeSpkiMessage({ v: 1, type: 'proof', certs: answer.map(c => encodeCanonical(signedCertToSexp(c))) })
      )
      await stream.close()
    })
  })
  after(async () => {
    await Promise.all(nodes.map(async n => await n.stop()))
  })

  async function refusal(chain: SignedCert[]): Promise<string> {
    answer = chain
    try {
      await verifier.spki.prove(liar.peerId, request, { principal: leaf.id })
    } catch (err) {
      return (err as Error).name
    }
    return 'accepted'
  }

  it('accepts an honest chain, and refuses every corruption of it with its own error', async () => {
    const now = Date.now()
    assert.equal(
      await refusal([await grant(root, k(a.id), '(cyberspace)'), await grant(a, k(leaf.id), '(cyberspace)')]),
      'accepted'
    )
    const forged = { ...(await grant(a, k(leaf.id), '(cyberspace)')), signature: new Uint8Array(64).fill(3) }
    assert.equal(await refusal([await grant(root, k(a.id), '(cyberspace)'), forged]), 'BadSignatureError')
    assert.equal(
      await refusal([await grant(root, k(a.id), '(cyberspace)'), await grant(b, k(leaf.id), '(cyberspace)')]),
      'WrongSubjectError'
    )
    assert.equal(
      await refusal([
        await grant(root, k(a.id), '(cyberspace)', { propagate: false }),
        await grant(a, k(leaf.id), '(cyberspace)')
      ]),
      'PropagationError'
    )
    const past = { notAfter: spkiTime(now - HOUR) }
    const future = { notBefore: spkiTime(now + HOUR) }
    assert.equal(
      await refusal([
        await grant(root, k(a.id), '(cyberspace)', { validity: past }),
        await grant(a, k(leaf.id), '(cyberspace)')
      ]),
      'ExpiredCertError'
    )
    assert.equal(
      await refusal([
        await grant(root, k(a.id), '(cyberspace)'),
        await grant(a, k(leaf.id), '(cyberspace)', { validity: future })
      ]),
      'NotYetValidCertError'
    )
    const long = [await grant(root, k(a.id), '(cyberspace)')]
    for (let i = 0; i < 8; i++) long.push(await grant(a, k(a.id), '(cyberspace)'))
    long.push(await grant(a, k(leaf.id), '(cyberspace)'))
    assert.equal(await refusal(long), 'ChainTooLongError')
    // a's x is a's y, and a's y is a's x: a name that never reaches a key
    const cycle = [
      await grant(root, { kind: 'name', issuer: a.id, names: ['x'] }, '(cyberspace)'),
      await signCert(
        { type: 'name', issuer: a.id, name: 'x', subject: { kind: 'name', issuer: a.id, names: ['y'] }, validity: {} },
        a.secret
      ),
      await signCert(
        { type: 'name', issuer: a.id, name: 'y', subject: { kind: 'name', issuer: a.id, names: ['x'] }, validity: {} },
        a.secret
      )
    ]
    assert.equal(await refusal(cycle), 'NameCycleError')
    // revoked: once the verifier holds root's CRL naming the first link
    const first = await grant(root, k(a.id), '(cyberspace)', { validity: { notAfter: spkiTime(now + 2 * HOUR) } })
    const chain = [first, await grant(a, k(leaf.id), '(cyberspace)')]
    assert.equal(await refusal(chain), 'accepted')
    await verifier.spki.addCrl(
      await signCrl(
        {
          issuer: root.id,
          revoked: [certHash(first)],
          validity: { notBefore: spkiTime(now - HOUR), notAfter: spkiTime(now + HOUR) }
        },
        root.secret
      )
    )
    assert.equal(await refusal(chain), 'RevokedCertError')
    // and nothing the liar said entered the verifier's store
    assert.equal(verifier.spki.certs().length, 0)
  })
})
