/**
 * Control-API routes for the cluster key (`cyberspace cluster …`): generate it with other
 * members, show it, sign with it, issue cluster certificates, refresh the shares, repair a
 * member's share, reshare the key to a new member set, and encrypt to it or open what was
 * encrypted to it. A resharing's progress can be read while it runs (`GET cluster/reshare`).
 *
 * @example
 * POST /api/v0/cluster/init { "members": ["12D3Koo…", …], "threshold": 3 }
 * → { "principal": "z6Mk…", "threshold": 3, "members": [...], "self": "z6Mk…", "epoch": 0, "groupKey": "…hex" }
 */
import { base16 } from 'multiformats/bases/base16'
import { base64 } from 'multiformats/bases/base64'
import { parsePrincipal, principalFromPeerId } from '../../src/crypto/principal.ts'
import { MAX_PLAINTEXT_BYTES } from '../../src/threshold/decrypt.ts'
import { CLUSTER_MESSAGE_DOMAIN } from '../../src/threshold/service.ts'
import { CLI } from './client.ts'
import { authCertField, certView } from './spki-routes.ts'
import { HttpError, MAX_BODY_BYTES, optionalString, readJson, stringField } from './http.ts'
import type { Route } from './http.ts'
import type { CertView } from './spki-routes.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { ClusterInfo, ReshareResult } from '../../src/threshold/service.ts'
import type { SigningResult } from '../../src/threshold/sign.ts'

const MAX_MEMBERS_FIELD = 64
/** Resharings whose progress is kept for `GET cluster/reshare`, and lines kept for each. */
const MAX_PROGRESS_RUNS = 8
const MAX_PROGRESS_LINES = 64

export interface RepairView extends ClusterView {
  /** The member whose share was rebuilt, and the members that rebuilt it. */
  member: PrincipalId
  helpers: PrincipalId[]
  excluded: Record<string, string>
}

export interface ReshareView extends ClusterView {
  dealers: PrincipalId[]
  /** Old members tried as dealers and left out, with why. */
  excluded: Record<string, string>
  /** New members that did not confirm the switch (repair them), removed members that did not confirm deleting. */
  lagging: Record<string, string>
  retained: Record<string, string>
}

export interface ReshareProgressView {
  /** What the resharing did so far, one line per step. */
  lines: string[]
  done: boolean
}

export interface ClusterView {
  principal: PrincipalId
  groupKey: string
  threshold: number
  members: PrincipalId[]
  /** This node's principal, one of `members`. */
  self: PrincipalId
  /** The share epoch: 0 at key generation, one more at each refresh. */
  epoch: number
}

export interface SigningView {
  signature: string
  signers: PrincipalId[]
  /** Members left out of the signature, with why. */
  excluded: Record<string, string>
  attempts: number
}

/** The members field of a request: 1-64 peer ids or principals. */
function membersField(body: Record<string, unknown>): PrincipalId[] {
  const given = body.members
  if (!Array.isArray(given) || given.length === 0 || given.length > MAX_MEMBERS_FIELD)
    throw new HttpError(400, `members must list 1-${MAX_MEMBERS_FIELD} peer ids or principals`)
  return given.map(m => {
    if (typeof m !== 'string' || m.length > 128) throw new HttpError(400, 'a member is a peer id or principal')
    return parsePrincipal(m)
  })
}

function thresholdField(body: Record<string, unknown>): number {
  const threshold = body.threshold
  if (typeof threshold !== 'number' || !Number.isSafeInteger(threshold))
    throw new HttpError(400, 'threshold must be a whole number')
  return threshold
}

function reshareView(result: ReshareResult, self: PrincipalId): ReshareView {
  return {
    principal: result.principal,
    groupKey: base16.baseEncode(result.groupKey),
    threshold: result.threshold,
    members: result.members,
    self,
    epoch: result.epoch,
    dealers: result.dealers,
    excluded: reasons(result.excluded),
    lagging: reasons(result.lagging),
    retained: reasons(result.retained)
  }
}

function clusterView(info: ClusterInfo, self: PrincipalId): ClusterView {
  return { ...info, self, groupKey: base16.baseEncode(info.groupKey) }
}

/** Why each member was left out, as text. */
function reasons(excluded: Map<PrincipalId, Error>): Record<string, string> {
  return Object.fromEntries([...excluded].map(([m, e]) => [m, `${e.name}: ${e.message}`]))
}

function signingView(result: SigningResult): SigningView {
  return {
    signature: base16.baseEncode(result.signature),
    signers: result.signers,
    excluded: reasons(result.excluded),
    attempts: result.attempts
  }
}

/** A ciphertext as text: base64 of R ‖ ChaCha20-Poly1305 ciphertext. */
function ciphertextText(ct: { ephemeral: Uint8Array; ciphertext: Uint8Array }): string {
  const bytes = new Uint8Array(32 + ct.ciphertext.length)
  bytes.set(ct.ephemeral)
  bytes.set(ct.ciphertext, 32)
  return base64.baseEncode(bytes)
}

function parseCiphertext(text: string): { ephemeral: Uint8Array; ciphertext: Uint8Array } {
  let bytes: Uint8Array
  try {
    bytes = base64.baseDecode(text)
  } catch {
    throw new HttpError(400, 'ciphertext must be base64 (as cluster encrypt prints it)')
  }
  if (bytes.length < 32 + 16) throw new HttpError(400, 'ciphertext is too short')
  return { ephemeral: bytes.subarray(0, 32), ciphertext: bytes.subarray(32) }
}

export function clusterRoutes(node: CyberspaceNode): Record<string, Route> {
  const self = principalFromPeerId(node.peerId)
  /** The progress of recent resharings, by the id their requester chose. */
  const progress = new Map<string, ReshareProgressView>()
  const required = (): ClusterInfo => {
    const info = node.cluster.info()
    if (info == null)
      throw new HttpError(
        409,
        `this node holds no cluster share; run ${CLI} cluster init --members <peer-id>... --threshold <t>`
      )
    return info
  }
  return {
    'GET cluster': async () => {
      const info = node.cluster.info()
      return info == null ? { cluster: null } : { cluster: clusterView(info, self) }
    },
    'POST cluster/init': async req => {
      const body = await readJson(req)
      return clusterView(await node.cluster.init(membersField(body), thresholdField(body)), self)
    },
    'POST cluster/repair': async req => {
      const text = stringField(await readJson(req), 'member', 128)
      const member = parsePrincipal(text)
      const info = required()
      if (!info.members.includes(member))
        throw new HttpError(400, `${text} is not a member of this cluster (see ${CLI} cluster show)`)
      const result = await node.cluster.repair(member)
      const view: RepairView = {
        ...clusterView(result, self),
        member: result.member,
        helpers: result.helpers,
        excluded: reasons(result.excluded)
      }
      return view
    },
    'POST cluster/reshare': async req => {
      const body = await readJson(req)
      const members = membersField(body)
      const threshold = thresholdField(body)
      const id = optionalString(body, 'progress', 64)
      required()
      const lines: string[] = []
      if (id != null) {
        if (progress.size >= MAX_PROGRESS_RUNS) progress.delete(progress.keys().next().value as string)
        progress.set(id, { lines, done: false })
      }
      try {
        const result = await node.cluster.reshare(members, threshold, {
          onProgress: p => {
            if (lines.length < MAX_PROGRESS_LINES) lines.push(`${p.step}: ${p.message}`)
          }
        })
        return reshareView(result, self)
      } finally {
        const run = id == null ? undefined : progress.get(id)
        if (run != null) run.done = true
      }
    },
    'GET cluster/reshare': async (_req, url) => {
      const id = url.searchParams.get('progress') ?? ''
      const run = progress.get(id)
      if (run == null) throw new HttpError(404, `no resharing with progress id ${JSON.stringify(id.slice(0, 64))}`)
      const view: ReshareProgressView = { lines: [...run.lines], done: run.done }
      return view
    },
    'POST cluster/sign': async req => {
      const text = stringField(await readJson(req), 'text', MAX_BODY_BYTES)
      required()
      return signingView(await node.cluster.sign(CLUSTER_MESSAGE_DOMAIN, new TextEncoder().encode(text)))
    },
    'POST cluster/issue': async req => {
      const body = await readJson(req)
      const { principal } = required()
      const signed = await node.cluster.issue(authCertField(body, principal))
      const view: CertView & { signing: SigningView } = { ...certView(signed), signing: signingView(signed.result) }
      return view
    },
    'POST cluster/refresh': async () => {
      required()
      const result = await node.cluster.refresh()
      return {
        ...clusterView(result, self),
        lagging: reasons(result.lagging)
      }
    },
    'POST cluster/encrypt': async req => {
      const text = stringField(await readJson(req), 'text', Math.min(MAX_BODY_BYTES, MAX_PLAINTEXT_BYTES))
      required()
      return { ciphertext: ciphertextText(node.cluster.encrypt(new TextEncoder().encode(text))) }
    },
    'POST cluster/decrypt': async req => {
      const ct = parseCiphertext(stringField(await readJson(req), 'ciphertext', MAX_BODY_BYTES))
      required()
      const result = await node.cluster.decrypt(ct)
      return {
        text: new TextDecoder().decode(result.plaintext),
        helpers: result.helpers,
        excluded: reasons(result.excluded)
      }
    }
  }
}

/** HTTP status of the threshold layer's named errors. */
export const CLUSTER_ERROR_STATUS: Record<string, number> = {
  NoClusterError: 409,
  ClusterExistsError: 409,
  NotEnoughSignersError: 503,
  ThresholdError: 502,
  MemberRefusedError: 502,
  SigningRefusedError: 403,
  DecryptionError: 400,
  InvalidPointError: 400,
  InvalidScalarError: 400,
  // a member misbehaved or disagrees: the request could not be carried out among them
  InvalidShareError: 502,
  MessageSignatureError: 502,
  ReplayedMessageError: 502,
  EquivocationError: 502,
  WrongEpochError: 502,
  WrongSessionError: 502,
  NotAMemberError: 502,
  InvalidFrostMessageError: 502,
  InvalidDkgMessageError: 502,
  InvalidReshareMessageError: 502,
  // a new member of a resharing holds no member chain this node accepts
  NoMemberChainError: 403,
  CorruptShareError: 500
}
