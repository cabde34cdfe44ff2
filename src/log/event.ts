/**
 * Signed log events and snapshots: making them with a Signer and checking a received one's
 * signature against its author, and the one order every replica replays concurrent events in —
 * HLC, then author, then CID. An event's HLC is later than its parents' (the log enforces it),
 * so this order is also a topological order of the DAG.
 *
 * @example
 * const { event, bytes, cid } = await signEvent(signer, { log: 'tasks', hlc, parents, ops })
 * await verifySigned(EVENT_DOMAIN, event) // throws InvalidSignatureError
 */
import * as dagCbor from '@ipld/dag-cbor'
import { blockCid, encodeEvent, encodeSnapshot, EVENT_DOMAIN, SNAPSHOT_DOMAIN } from '../../protocols/log/codec.ts'
import { unsignedBody } from '../../protocols/wire.ts'
import { principalPublicKey } from '../crypto/principal.ts'
import { verifyAs } from '../crypto/sign.ts'
import { compareHlc } from '../clock/hlc.ts'
import { compareStrings } from '../crdt/codec.ts'
import { InvalidSignatureError } from './errors.ts'
import type { Event, Snapshot } from '../../protocols/log/codec.ts'
import type { Signer } from '../crypto/sign.ts'
import type { CID } from 'multiformats/cid'

export interface Block<T> {
  cid: CID
  bytes: Uint8Array
  value: T
}

export async function signEvent(signer: Signer, fields: Omit<Event, 'v' | 'author' | 'sig'>): Promise<Block<Event>> {
  return await signBlock(signer, EVENT_DOMAIN, { v: 1, author: signer.principal, ...fields }, encodeEvent)
}

export async function signSnapshot(
  signer: Signer,
  fields: Omit<Snapshot, 'v' | 'author' | 'sig'>
): Promise<Block<Snapshot>> {
  return await signBlock(signer, SNAPSHOT_DOMAIN, { v: 1, author: signer.principal, ...fields }, encodeSnapshot)
}

/** Signs the dag-cbor of `unsigned` under `domain`, and encodes the signed block with its limits. */
async function signBlock<T extends { sig: Uint8Array }>(
  signer: Signer,
  domain: string,
  unsigned: Omit<T, 'sig'>,
  encode: (signed: T) => Uint8Array
): Promise<Block<T>> {
  const value = { ...unsigned, sig: await signer.sign(domain, dagCbor.encode(unsigned)) } as T
  const bytes = encode(value)
  return { cid: await blockCid(bytes), bytes, value }
}

/** Checks an event's or snapshot's signature against its author's key. */
export async function verifySigned(
  domain: typeof EVENT_DOMAIN | typeof SNAPSHOT_DOMAIN,
  signed: Event | Snapshot
): Promise<void> {
  let ok = false
  try {
    ok = await verifyAs(principalPublicKey(signed.author), domain, unsignedBody(signed), signed.sig)
  } catch (err) {
    throw new InvalidSignatureError(`cannot verify a signature by ${signed.author}: ${(err as Error).message}`)
  }
  if (!ok) throw new InvalidSignatureError(`signature does not verify against its author ${signed.author}`)
}

/** The replay order: HLC, then author, then CID (the key is the CID as a string). */
export function compareEvents(a: { key: string; event: Event }, b: { key: string; event: Event }): number {
  return (
    compareHlc(a.event.hlc, b.event.hlc) ||
    compareStrings(a.event.author, b.event.author) ||
    compareStrings(a.key, b.key)
  )
}
