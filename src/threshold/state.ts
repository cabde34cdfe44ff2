/**
 * What a member keeps of its cluster: the member list, threshold, share generation (epoch), its
 * FROST key package (its secret share and the group's public data), as dag-cbor. Decoding checks
 * everything (points, scalars, that the share matches its verifying share), so a damaged or
 * foreign file is refused rather than used. Where the bytes live is the platform's business
 * (`ShareStore`): 0600 files in a node's data directory, the datastore elsewhere.
 *
 * @example
 * await store.save('current', encodeClusterState(state))
 * const state = decodeClusterState(await store.load('current'), self)
 */
import * as dagCbor from '@ipld/dag-cbor'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes } from '@noble/hashes/utils.js'
import { Key as DatastoreKey } from 'interface-datastore'
import { MAX_GROUP_MEMBERS } from '../../protocols/dkg/codec.ts'
import { isPrincipalId, principalId } from '../crypto/principal.ts'
import { checkGroupParams } from './dealer.ts'
import { ThresholdError } from './errors.ts'
import { frost, memberIdentifier, parsePoint, parseScalar, PointCache } from './group.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { PublicPackage } from '../../protocols/reshare/codec.ts'
import type { FrostPublic, Key } from '@noble/curves/abstract/frost.js'
import type { Datastore } from 'interface-datastore'

export interface ClusterState {
  /** Sorted member principals. */
  members: PrincipalId[]
  threshold: number
  /** Share generation: 0 after key generation, one more after each refresh. */
  epoch: number
  key: Key
}

/** The stored share is missing parts, damaged, or not this member's. */
export class CorruptShareError extends ThresholdError {
  static name = 'CorruptShareError'
  name = 'CorruptShareError'
}

/** Where a member keeps its share: `current`, and `staged` while a refresh waits for its commit. */
export interface ShareStore {
  load(slot: ShareSlot): Promise<Uint8Array | undefined>
  /** Replaces the slot atomically: a crash leaves the old bytes or the new, never a mix. */
  save(slot: ShareSlot, bytes: Uint8Array): Promise<void>
  remove(slot: ShareSlot): Promise<void>
}
export type ShareSlot = 'current' | 'staged'

const MAX_STATE_BYTES = 16 * 1024

export function groupKeyOf(state: ClusterState): Uint8Array {
  return state.key.public.commitments[0]
}

export function clusterPrincipal(state: ClusterState): PrincipalId {
  return principalId(groupKeyOf(state))
}

/** sha256 over the public key package, in member order: equal at every member of a consistent group. */
export function publicDigest(state: ClusterState): Uint8Array {
  const pub = state.key.public
  return sha256(concatBytes(...pub.commitments, ...state.members.map(m => pub.verifyingShares[memberIdentifier(m)])))
}

export function encodeClusterState(state: ClusterState): Uint8Array {
  const pub = state.key.public
  return dagCbor.encode({
    v: 1,
    epoch: state.epoch,
    members: state.members,
    threshold: state.threshold,
    commitments: pub.commitments,
    verifyingShares: state.members.map(m => pub.verifyingShares[memberIdentifier(m)]),
    share: state.key.secret.signingShare
  })
}

/** Decodes and checks a stored state of member `self`; throws CorruptShareError on anything wrong. */
export function decodeClusterState(bytes: Uint8Array, self: PrincipalId): ClusterState {
  try {
    if (bytes.length > MAX_STATE_BYTES) throw new Error(`larger than ${MAX_STATE_BYTES} bytes`)
    const m = dagCbor.decode<Record<string, unknown>>(bytes)
    if (m == null || typeof m !== 'object' || m.v !== 1) throw new Error('not a version 1 cluster state')
    const { epoch, members, threshold, commitments, verifyingShares, share } = m
    if (!Number.isSafeInteger(epoch) || (epoch as number) < 0) throw new Error('bad epoch')
    if (!Array.isArray(members) || members.length > MAX_GROUP_MEMBERS || !members.every(isPrincipalId))
      throw new Error('bad member list')
    checkGroupParams(members, threshold as number)
    if (!members.includes(self)) throw new Error('this node is not among its members')
    const t = threshold as number
    if (!Array.isArray(commitments) || commitments.length !== t) throw new Error(`${t} commitments expected`)
    if (!Array.isArray(verifyingShares) || verifyingShares.length !== members.length)
      throw new Error('one verifying share per member expected')
    commitments.forEach((c, i) => parsePoint(c as Uint8Array, `commitment ${i}`))
    verifyingShares.forEach((c, i) => parsePoint(c as Uint8Array, `verifying share ${i}`))
    parseScalar(share as Uint8Array, 'share')
    const key: Key = {
      public: {
        signers: { min: t, max: members.length },
        commitments: commitments as Uint8Array[],
        verifyingShares: Object.fromEntries(members.map((p, i) => [memberIdentifier(p), verifyingShares[i]]))
      },
      secret: { identifier: memberIdentifier(self), signingShare: share as Uint8Array }
    } as Key
    frost.validateSecret(key.secret, key.public)
    return { members: [...members].sort() as PrincipalId[], threshold: t, epoch: epoch as number, key }
  } catch (err) {
    if (err instanceof CorruptShareError) throw err
    throw new CorruptShareError(`the stored cluster share is unusable: ${(err as Error).message}`)
  }
}

/** Shares in a datastore (browser tabs, tests): the same bytes as the files of a node process. */
export function datastoreShareStore(datastore: Datastore): ShareStore {
  const key = (slot: ShareSlot): DatastoreKey => new DatastoreKey(`/cyberspace/cluster/${slot}`)
  return {
    load: async slot => {
      try {
        return await datastore.get(key(slot))
      } catch (err) {
        if ((err as Error).name === 'NotFoundError') return undefined
        throw err
      }
    },
    save: async (slot, bytes) => {
      await datastore.put(key(slot), bytes)
    },
    remove: async slot => {
      await datastore.delete(key(slot))
    }
  }
}

/** The public half of a state, as it travels: members, threshold, epoch, commitments, verifying shares. */
export function publicPackage(state: ClusterState): PublicPackage {
  const pub = state.key.public
  return {
    members: state.members,
    threshold: state.threshold,
    epoch: state.epoch,
    commitments: pub.commitments,
    verifyingShares: state.members.map(m => pub.verifyingShares[memberIdentifier(m)])
  }
}

/**
 * A received package as noble's FrostPublic, every point checked (and kept in `points`, for what
 * checks the same package next); throws InvalidPointError or RangeError (bad parameters). The
 * package's shape was checked by its codec.
 */
export function packagePublic(p: PublicPackage, points: PointCache = new PointCache()): FrostPublic {
  checkGroupParams(p.members as PrincipalId[], p.threshold)
  if (p.commitments.length !== p.threshold || p.verifyingShares.length !== p.members.length)
    throw new RangeError('a package has t commitments and one verifying share per member')
  p.commitments.forEach((c, i) => points.parse(c, `package commitment ${i}`))
  p.verifyingShares.forEach((c, i) => points.parse(c, `package verifying share ${i}`))
  return {
    signers: { min: p.threshold, max: p.members.length },
    commitments: p.commitments,
    verifyingShares: Object.fromEntries(
      p.members.map((m, i) => [memberIdentifier(m as PrincipalId), p.verifyingShares[i]])
    )
  } as FrostPublic
}
