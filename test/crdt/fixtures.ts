/**
 * Shared fixtures of the CRDT tests: replica ids, mutation contexts, and dag-cbor round trips
 * through real bytes (what the log does with states and deltas).
 */
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import type { HlcTimestamp } from '../../src/clock/hlc.ts'
import type { MutationContext } from '../../src/crdt/types.ts'

export const ALICE = 'z6MkAlice'
export const BOB = 'z6MkBob'
export const CAROL = 'z6MkCarol'
export const REPLICAS = [ALICE, BOB, CAROL] as const

export const at = (replica: string, wall = 1_000, logical = 0): MutationContext => ({
  replica,
  hlc: [wall, logical] as HlcTimestamp
})

export const cbor = (data: unknown): Uint8Array => dagCbor.encode(data)

/** `data` after a trip through dag-cbor bytes. */
export const viaBytes = (data: unknown): unknown => dagCbor.decode(dagCbor.encode(data))

export async function cidOf(data: unknown): Promise<string> {
  return CID.create(1, dagCbor.code, await sha256.digest(dagCbor.encode(data))).toString()
}

/** A small deterministic PRNG (mulberry32), for shuffles driven by a fast-check seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
