/**
 * The SPKI service: this node's certificate store, its ACL (the roots it trusts, and for what),
 * its CRLs, the `/cyberspace/spki/1.0.0` protocol (peers ask it to prove a principal's authority
 * and it answers from its store), and `authorize(principal, tag)`, the check every protocol that
 * needs authority runs on the receiving side.
 *
 * An ACL entry (root, tag) authorizes the root itself for tag and anything a chain from the root
 * grants, within tag. Certificates, ACL entries and CRLs persist in the node's datastore.
 *
 * @example
 * await node.spki.addAclEntry(clusterKey, parseTag(parseAdvanced('(cyberspace)')))
 * const grant = await node.spki.prove(peerId, parseTag(parseAdvanced('(cyberspace member)')))
 * await node.spki.authorize(principal, tag) // throws ChainNotFoundError, …
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { base16 } from 'multiformats/bases/base16'
import { Key } from 'interface-datastore'
import {
  decodeSpkiMessage,
  encodeSpkiMessage,
  MAX_CERT_BYTES,
  MAX_PROOF_CERTS,
  MAX_ROOTS,
  MAX_SPKI_MESSAGE_BYTES,
  MAX_TAG_BYTES,
  SPKI_PROTOCOL
} from '../../protocols/spki/codec.ts'
import { errorAnswer } from '../../protocols/wire.ts'
import { isPrincipalId, peerIdFromPrincipal, principalFromPeerId } from '../crypto/principal.ts'
import { requestAnswer, serveOnce, withTimeout } from '../network/rpc.ts'
import {
  parseSignedCert,
  signCert,
  signedCertToSexp,
  spkiTime,
  spkiTimeMs,
  verifyCert,
  VerifiedCertCache
} from './cert.ts'
import { MAX_REVOKED, parseSignedCrl, revocationIndex, signCrl, signedCrlToSexp, verifyCrl } from './crl.ts'
import { discoverChain, verifyProof } from './discover.ts'
import { ChainNotFoundError, ProofRefusedError } from './errors.ts'
import { decodeCanonical, encodeCanonical } from './sexp.ts'
import { parseTag, tagImplies, tagToSexp } from './tag.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Cert, SignedCert } from './cert.ts'
import type { SignedCrl } from './crl.ts'
import type { DiscoveredGrant, DiscoverOptions, Proof } from './discover.ts'
import type { Tag } from './tag.ts'
import type { AbortOptions, ComponentLogger, Logger, PeerId, PrivateKey, Startable } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import type { Datastore } from 'interface-datastore'

export interface SpkiInit {
  protocol?: string
  /** Concurrent inbound proof requests per connection; default 8. */
  maxInboundStreams?: number
  /** How long a request or answer may take, in ms; default 10 s. */
  timeout?: number
  /** Most certificates kept; default 10 000. */
  maxStoredCerts?: number
  /** Longest chain accepted or searched; default 8. */
  maxChainLength?: number
  /** How long a CRL this node signs stays current, in ms; default 7 days. It is re-signed at half. */
  crlLifetime?: number
}

export interface SpkiComponents {
  peerId: PeerId
  privateKey: PrivateKey
  registrar: Registrar
  connectionManager: ConnectionManager
  datastore: Datastore
  logger: ComponentLogger
}

export interface AclEntry {
  principal: PrincipalId
  tag: Tag
}

export interface Spki {
  /** This node's principal (its libp2p key). */
  readonly principal: PrincipalId
  /** Verifies a certificate's signature and keeps it; a forged one never enters the store. */
  addCert(signed: SignedCert): Promise<void>
  certs(): SignedCert[]
  /** Verifies every certificate and CRL first, then keeps them all: a bad one means none is kept. */
  addAll(items: { certs: SignedCert[]; crls: SignedCrl[] }): Promise<void>
  /** Signs a certificate whose issuer is this node's principal, and keeps it. */
  issue(cert: Cert): Promise<SignedCert>
  /** Sets the tag `principal` is trusted for as a root (replacing any earlier entry). */
  addAclEntry(principal: PrincipalId, tag: Tag): Promise<void>
  /** Removes `principal` from the ACL; false if it was not there. */
  removeAclEntry(principal: PrincipalId): Promise<boolean>
  acl(): AclEntry[]
  /** Verifies and keeps a CRL; consulted by every authorization. Expired CRLs are dropped. */
  addCrl(signed: SignedCrl): Promise<void>
  crls(): SignedCrl[]
  /**
   * Revokes certificates this node issued, by the sha256 of their canonical form (`certHash`):
   * signs a CRL listing them and every earlier revocation, keeps it current, and returns it for
   * distribution to the verifiers that should know.
   */
  revoke(hashes: Uint8Array[]): Promise<SignedCrl>
  /** Whether `principal` holds `tag` by this node's ACL, from `proof` or else from the local store. */
  authorize(principal: PrincipalId, tag: Tag, options?: AbortOptions & { proof?: Proof }): Promise<DiscoveredGrant>
  /** Asks `peer` to prove that it (or `principal`) holds `tag`, and checks the proof against this node's ACL. */
  prove(peer: PeerId, tag: Tag, options?: AbortOptions & { principal?: PrincipalId }): Promise<DiscoveredGrant>
  /**
   * `authorize` from the local store, or else `prove`, asking `principal`'s own node. If both fail,
   * throws `refuse(local, remote)` (default: the remote error).
   */
  authorizeOrProve(principal: PrincipalId, tag: Tag, options?: AuthorizeOrProveOptions): Promise<DiscoveredGrant>
}

export interface AuthorizeOrProveOptions extends AbortOptions {
  /** Limit on asking the principal's node, in ms, counted from when the local check fails. */
  timeout?: number
  /** The error to throw when neither the local store nor the principal's node shows a chain. */
  refuse?: (local: Error, remote: Error) => Error
}

const CERTS_PREFIX = '/cyberspace/spki/certs/'
const ACL_PREFIX = '/cyberspace/spki/acl/'
const CRLS_PREFIX = '/cyberspace/spki/crls/'
const MAX_ACL_ENTRIES = 256
const MAX_CRLS = 1024

class SpkiService implements Spki, Startable {
  readonly principal: PrincipalId
  private readonly components: SpkiComponents
  private readonly log: Logger
  private readonly protocol: string
  private readonly maxInboundStreams: number
  private readonly timeout: number
  private readonly maxStoredCerts: number
  private readonly maxChainLength: number
  private readonly store = new Map<string, SignedCert>()
  private readonly aclEntries = new Map<PrincipalId, AclEntry>()
  private readonly crlStore = new Map<string, SignedCrl>()
  private readonly cache = new VerifiedCertCache()
  private readonly crlLifetime: number
  private refreshTimer?: ReturnType<typeof setInterval>

  constructor(components: SpkiComponents, init: SpkiInit) {
    this.components = components
    this.log = components.logger.forComponent('cyberspace:spki')
    this.principal = principalFromPeerId(components.peerId)
    this.protocol = init.protocol ?? SPKI_PROTOCOL
    this.maxInboundStreams = init.maxInboundStreams ?? 8
    this.timeout = init.timeout ?? 10_000
    this.maxStoredCerts = init.maxStoredCerts ?? 10_000
    this.maxChainLength = init.maxChainLength ?? 8
    this.crlLifetime = init.crlLifetime ?? 7 * 24 * 3_600_000
  }

  readonly [Symbol.toStringTag] = 'cyberspace/spki'

  async start(): Promise<void> {
    await this.load()
    await this.refreshOwnCrl()
    // every request gets an answer, a refusal included (also of one too large or too slow to read)
    const handler = serveOnce(async bytes => await this.answer(bytes), {
      maxBytes: MAX_SPKI_MESSAGE_BYTES,
      timeout: this.timeout,
      log: this.log,
      refuse: err => encodeSpkiMessage(errorAnswer(err))
    })
    await this.components.registrar.handle(this.protocol, handler, { maxInboundStreams: this.maxInboundStreams })
    // a revocation lapses when its CRL expires: re-sign ours well before that
    this.refreshTimer = setInterval(
      () => {
        this.refreshOwnCrl().catch((err: unknown) => {
          this.log.error("could not re-sign this node's CRL - %e", err)
        })
      },
      Math.min(3_600_000, Math.max(1000, this.crlLifetime / 8))
    )
    if (typeof this.refreshTimer === 'object' && 'unref' in this.refreshTimer) this.refreshTimer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.refreshTimer)
    await this.components.registrar.unhandle(this.protocol)
  }

  /** Reads the persisted store, ACL and CRLs; entries that no longer parse or verify are skipped. */
  private async load(): Promise<void> {
    for await (const { key, value } of this.components.datastore.query({
      prefix: CERTS_PREFIX,
      limit: this.maxStoredCerts
    })) {
      try {
        const signed = parseSignedCert(decodeCanonical(value, { maxBytes: MAX_CERT_BYTES }))
        await verifyCert(signed, this.cache)
        this.store.set(key.baseNamespace(), signed)
      } catch (err) {
        this.log.error('skipping stored certificate %s - %e', key.toString(), err)
      }
    }
    for await (const { key, value } of this.components.datastore.query({
      prefix: ACL_PREFIX,
      limit: MAX_ACL_ENTRIES
    })) {
      const principal = key.baseNamespace()
      try {
        if (!isPrincipalId(principal)) throw new Error('not a principal id')
        this.aclEntries.set(principal, {
          principal,
          tag: parseTag(decodeCanonical(value, { maxBytes: MAX_TAG_BYTES }))
        })
      } catch (err) {
        this.log.error('skipping ACL entry %s - %e', key.toString(), err)
      }
    }
    for await (const { key, value } of this.components.datastore.query({ prefix: CRLS_PREFIX, limit: MAX_CRLS })) {
      try {
        const signed = parseSignedCrl(decodeCanonical(value))
        await verifyCrl(signed)
        this.crlStore.set(key.baseNamespace(), signed)
      } catch (err) {
        this.log.error('skipping stored CRL %s - %e', key.toString(), err)
      }
    }
  }

  async addCert(signed: SignedCert): Promise<void> {
    await verifyCert(signed, this.cache)
    await this.storeCert(signed)
  }

  async addAll({ certs, crls }: { certs: SignedCert[]; crls: SignedCrl[] }): Promise<void> {
    for (const signed of certs) await verifyCert(signed, this.cache)
    for (const signed of crls) await verifyCrl(signed)
    for (const signed of certs) await this.storeCert(signed)
    for (const signed of crls) await this.storeCrl(signed)
  }

  /** Keeps a certificate whose signature is known to be good. */
  private async storeCert(signed: SignedCert): Promise<void> {
    const bytes = encodeCanonical(signedCertToSexp(signed))
    const id = base16.baseEncode(sha256(bytes))
    if (this.store.has(id)) return
    if (this.store.size >= this.maxStoredCerts)
      throw new RangeError(`the certificate store holds at most ${this.maxStoredCerts}`)
    await this.components.datastore.put(new Key(CERTS_PREFIX + id), bytes)
    this.store.set(id, signed)
  }

  certs(): SignedCert[] {
    return [...this.store.values()]
  }

  async addAclEntry(principal: PrincipalId, tag: Tag): Promise<void> {
    if (!isPrincipalId(principal)) throw new TypeError('an ACL entry names a principal id')
    if (!this.aclEntries.has(principal) && this.aclEntries.size >= MAX_ACL_ENTRIES) {
      throw new RangeError(`the ACL holds at most ${MAX_ACL_ENTRIES} entries`)
    }
    await this.components.datastore.put(new Key(ACL_PREFIX + principal), encodeCanonical(tagToSexp(tag)))
    this.aclEntries.set(principal, { principal, tag })
  }

  async removeAclEntry(principal: PrincipalId): Promise<boolean> {
    if (!this.aclEntries.has(principal)) return false
    await this.components.datastore.delete(new Key(ACL_PREFIX + principal))
    this.aclEntries.delete(principal)
    return true
  }

  acl(): AclEntry[] {
    return [...this.aclEntries.values()]
  }

  async addCrl(signed: SignedCrl): Promise<void> {
    await verifyCrl(signed)
    await this.storeCrl(signed)
  }

  /** Keeps a CRL whose signature is known to be good. */
  private async storeCrl(signed: SignedCrl): Promise<void> {
    await this.dropExpiredCrls()
    const bytes = encodeCanonical(signedCrlToSexp(signed))
    const id = base16.baseEncode(sha256(bytes))
    if (this.crlStore.size >= MAX_CRLS && !this.crlStore.has(id)) {
      throw new RangeError(`at most ${MAX_CRLS} current CRLs are kept`)
    }
    await this.components.datastore.put(new Key(CRLS_PREFIX + id), bytes)
    this.crlStore.set(id, signed)
  }

  crls(): SignedCrl[] {
    return [...this.crlStore.values()]
  }

  private async dropExpiredCrls(): Promise<void> {
    const now = spkiTime(Date.now())
    for (const [id, signed] of this.crlStore) {
      if (signed.crl.validity.notAfter >= now) continue
      await this.components.datastore.delete(new Key(CRLS_PREFIX + id))
      this.crlStore.delete(id)
    }
  }

  /** The 32-byte Ed25519 secret of this node's key (libp2p keeps seed || public key). */
  private secretKey(): Uint8Array {
    const key = this.components.privateKey
    if (key.type !== 'Ed25519') throw new TypeError(`this node's key is ${key.type}; SPKI needs Ed25519`)
    return key.raw.subarray(0, 32)
  }

  async issue(cert: Cert): Promise<SignedCert> {
    const signed = await signCert(cert, this.secretKey())
    await this.addCert(signed)
    return signed
  }

  /** The newest CRL this node signed, if any. */
  private ownCrl(): [string, SignedCrl] | undefined {
    let newest: [string, SignedCrl] | undefined
    for (const entry of this.crlStore) {
      if (entry[1].crl.issuer !== this.principal) continue
      if (newest == null || entry[1].crl.validity.notBefore > newest[1].crl.validity.notBefore) newest = entry
    }
    return newest
  }

  async revoke(hashes: Uint8Array[]): Promise<SignedCrl> {
    if (hashes.some(h => !(h instanceof Uint8Array) || h.length !== 32)) {
      throw new TypeError('a revoked certificate is named by its 32-byte sha256')
    }
    return await this.signOwnCrl(hashes)
  }

  /** Signs a fresh CRL with every revocation so far plus `added`, replacing the previous one. */
  private async signOwnCrl(added: Uint8Array[]): Promise<SignedCrl> {
    const previous = this.ownCrl()
    const revoked = new Map<string, Uint8Array>()
    for (const h of [...(previous?.[1].crl.revoked ?? []), ...added]) revoked.set(base16.baseEncode(h), h)
    if (revoked.size > MAX_REVOKED) throw new RangeError(`a CRL lists at most ${MAX_REVOKED} certificates`)
    const now = Date.now()
    // a second's slack back, so a verifier whose clock is slightly behind already accepts it
    const validity = { notBefore: spkiTime(now - 1000), notAfter: spkiTime(now + this.crlLifetime) }
    const signed = await signCrl({ issuer: this.principal, revoked: [...revoked.values()], validity }, this.secretKey())
    await this.storeCrl(signed)
    for (const [id, crl] of this.crlStore) {
      if (crl.crl.issuer !== this.principal || crl === signed) continue
      await this.components.datastore.delete(new Key(CRLS_PREFIX + id))
      this.crlStore.delete(id)
    }
    return signed
  }

  /** Re-signs this node's CRL once half its lifetime has passed, so its revocations never lapse. */
  private async refreshOwnCrl(): Promise<void> {
    const own = this.ownCrl()?.[1]
    if (own == null) return
    const halfway = spkiTimeMs(own.crl.validity.notAfter) - this.crlLifetime / 2
    if (Date.now() >= halfway) await this.signOwnCrl([])
  }

  async authorize(
    principal: PrincipalId,
    tag: Tag,
    options: AbortOptions & { proof?: Proof } = {}
  ): Promise<DiscoveredGrant> {
    options.signal?.throwIfAborted()
    const roots = this.rootsFor(tag)
    const own = this.aclEntries.get(principal)
    if (own != null && roots.includes(principal)) return { proof: { chain: [], names: [] }, tag: own.tag, validity: {} }
    if (roots.length === 0) throw new ChainNotFoundError(`no ACL root of this node grants the request to ${principal}`)
    const opts = this.discoverOptions()
    return options.proof != null
      ? await verifyProof(options.proof, roots, principal, tag, opts)
      : await discoverChain(this.certs(), roots, principal, tag, { ...opts, verified: true })
  }

  /** The ACL roots whose entries cover `tag`: the chains that may grant it start there. */
  private rootsFor(tag: Tag): PrincipalId[] {
    return this.acl()
      .filter(e => tagImplies(e.tag, tag))
      .map(e => e.principal)
  }

  /** Discovery settings; CRLs were verified when they were added, so only indexing happens here. Chains found in the store need no signature checks: only verified certificates enter it. */
  private discoverOptions(): DiscoverOptions {
    return { revocation: revocationIndex(this.crlStore.values()), cache: this.cache, maxLength: this.maxChainLength }
  }

  async prove(
    peer: PeerId,
    tag: Tag,
    options: AbortOptions & { principal?: PrincipalId } = {}
  ): Promise<DiscoveredGrant> {
    const principal = options.principal ?? principalFromPeerId(peer)
    const roots = this.rootsFor(tag).slice(0, MAX_ROOTS)
    if (roots.length === 0) throw new ChainNotFoundError('no ACL root of this node covers the requested tag')
    const reply = await requestAnswer(
      async (p, protocol, o) => await this.components.connectionManager.openStream(p, protocol, o),
      peer,
      this.protocol,
      encodeSpkiMessage({ v: 1, type: 'prove', roots, principal, tag: encodeCanonical(tagToSexp(tag)) }),
      {
        maxBytes: MAX_SPKI_MESSAGE_BYTES,
        signal: withTimeout(this.timeout, options.signal),
        decode: decodeSpkiMessage,
        expected: 'proof',
        refused: answer => new ProofRefusedError(`${peer.toString()} refused: ${answer.message}`, answer.name),
        unexpected: type => new ProofRefusedError(`${peer.toString()} answered with ${type}`, 'InvalidSpkiMessageError')
      }
    )
    const certs = reply.certs.map(bytes => parseSignedCert(decodeCanonical(bytes, { maxBytes: MAX_CERT_BYTES })))
    const proof = { chain: certs.filter(c => c.cert.type === 'auth'), names: certs.filter(c => c.cert.type === 'name') }
    return await this.authorize(principal, tag, { ...options, proof })
  }

  async authorizeOrProve(
    principal: PrincipalId,
    tag: Tag,
    options: AuthorizeOrProveOptions = {}
  ): Promise<DiscoveredGrant> {
    try {
      return await this.authorize(principal, tag)
    } catch (local) {
      const signal = options.timeout == null ? options.signal : withTimeout(options.timeout, options.signal)
      try {
        return await this.prove(peerIdFromPrincipal(principal), tag, { signal })
      } catch (remote) {
        throw options.refuse?.(local as Error, remote as Error) ?? remote
      }
    }
  }

  /** Answers one proof request from the local store. Nothing received enters the store. */
  private async answer(bytes: Uint8Array): Promise<Uint8Array> {
    const request = decodeSpkiMessage(bytes)
    if (request.type !== 'prove') throw new TypeError(`expected a prove request, got ${request.type}`)
    if (!request.roots.every(isPrincipalId) || !isPrincipalId(request.principal)) {
      throw new TypeError('roots and principal must be principal ids')
    }
    const tag = parseTag(decodeCanonical(request.tag, { maxBytes: MAX_TAG_BYTES }))
    const { proof } = await discoverChain(this.certs(), request.roots, request.principal, tag, {
      ...this.discoverOptions(),
      verified: true
    })
    const certs = [...proof.chain, ...proof.names]
      .map(c => encodeCanonical(signedCertToSexp(c)))
      .slice(0, MAX_PROOF_CERTS)
    return encodeSpkiMessage({ v: 1, type: 'proof', certs })
  }
}

export function spki(init: SpkiInit = {}): (components: SpkiComponents) => Spki {
  return components => new SpkiService(components, init)
}
