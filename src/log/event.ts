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
  const unsigned = {
    v: 1 as const,
    log: fields.log,
    author: signer.principal,
    hlc: fields.hlc,
    parents: fields.parents,
    ops: fields.ops
  }
  const event: Event = { ...unsigned, sig: await signer.sign(EVENT_DOMAIN, dagCbor.encode(unsigned)) }
  const bytes = encodeEvent(event)
  return { cid: await blockCid(bytes), bytes, value: event }
}

export async function signSnapshot(
  signer: Signer,
  fields: Omit<Snapshot, 'v' | 'author' | 'sig'>
): Promise<Block<Snapshot>> {
  const unsigned = {
    v: 1 as const,
    log: fields.log,
    author: signer.principal,
    hlc: fields.hlc,
    heads: fields.heads,
    covered: fields.covered,
    state: fields.state
  }
  const snapshot: Snapshot = { ...unsigned, sig: await signer.sign(SNAPSHOT_DOMAIN, dagCbor.encode(unsigned)) }
  const bytes = encodeSnapshot(snapshot)
  return { cid: await blockCid(bytes), bytes, value: snapshot }
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

export { EVENT_DOMAIN, SNAPSHOT_DOMAIN }

/** The replay order: HLC, then author, then CID. */
export function compareEvents(
  a: { hlc: Event['hlc']; author: string; key: string },
  b: { hlc: Event['hlc']; author: string; key: string }
): number {
  return (
    compareHlc(a.hlc, b.hlc) ||
    (a.author < b.author ? -1 : a.author > b.author ? 1 : 0) ||
    (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
  )
}
