/** Keys, tags and a network-less SPKI service for the SPKI tests (and bench/spki.bench.ts). */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { defaultLogger } from '@libp2p/logger'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { MemoryDatastore } from 'datastore-core'
import { nobleEd25519 } from '../../src/crypto/ed25519.ts'
import { principalId } from '../../src/crypto/principal.ts'
import { signCert } from '../../src/spki/cert.ts'
import { spki } from '../../src/spki/service.ts'
import { parseAdvanced, toAdvanced } from '../../src/spki/sexp.ts'
import { normalizeTag, parseTag, tagToSexp } from '../../src/spki/tag.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Tag } from '../../src/spki/tag.ts'
import type { SignedCert, Subject, Validity } from '../../src/spki/cert.ts'
import type { Spki, SpkiComponents } from '../../src/spki/service.ts'

export interface Key {
  secret: Uint8Array
  id: PrincipalId
}

/** A fresh Ed25519 key pair as a principal. */
export async function key(): Promise<Key> {
  const secret = crypto.getRandomValues(new Uint8Array(32))
  return { secret, id: principalId(await nobleEd25519.publicKey(secret)) }
}

/** A tag from its advanced form. */
export function tag(text: string): Tag {
  return parseTag(parseAdvanced(text))
}

/** A tag's advanced form, normalized (set members ordered), for comparing in tests. */
export function toTagText(t: Tag): string {
  return toAdvanced(tagToSexp(normalizeTag(t)))
}

/** An authorization certificate from `from` to a key or any subject; delegable unless told otherwise. */
export async function grant(
  from: Key,
  to: Key | Subject,
  tagText = '(cyberspace)',
  opts: { propagate?: boolean; validity?: Validity } = {}
): Promise<SignedCert> {
  const subject: Subject = 'secret' in to ? { kind: 'key', principal: to.id } : to
  return await signCert(
    {
      type: 'auth',
      issuer: from.id,
      subject,
      propagate: opts.propagate ?? true,
      tag: tag(tagText),
      validity: opts.validity ?? {}
    },
    from.secret
  )
}

/** A name certificate: `from`'s `localName` is `subject`. */
export async function nameCert(from: Key, localName: string, subject: Subject): Promise<SignedCert> {
  return await signCert({ type: 'name', issuer: from.id, name: localName, subject, validity: {} }, from.secret)
}

/** Revocations on a topic and protocol no other node uses, never pulled: a node that hears of no CRL. */
export const NO_CRL_SPREAD = {
  topic: '/cyberspace/test/no-crl/1',
  protocol: '/cyberspace/test/no-crl/1.0.0',
  syncInterval: 0
}

/** An SPKI service with no network (its store, ACL and CRLs only): no handler is registered, no peer dialled. */
export async function localSpki(): Promise<Spki> {
  const privateKey = await generateKeyPair('Ed25519')
  const components = {
    peerId: peerIdFromPrivateKey(privateKey),
    privateKey,
    datastore: new MemoryDatastore(),
    logger: defaultLogger(),
    registrar: {},
    connectionManager: {}
  } as unknown as SpkiComponents
  return spki()(components)
}
