/**
 * A cluster of in-process members for the membership tests: one root key that every node's ACL
 * trusts for `(cyberspace member)` and that issues each node its member certificate, every node
 * running the membership service with fast timings, and a recorder of every state change seen.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { seedSigner } from '../../src/crypto/sign.ts'
import { membership } from '../../src/membership/service.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Membership, MembershipInit, MemberState } from '../../src/membership/service.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { SignedCert } from '../../src/spki/cert.ts'
import type { Key } from '../spki/fixtures.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { PrivateKey } from '@libp2p/interface'

export const MEMBER = '(cyberspace member)'

/** Fast timings: a probe every 200 ms, so the suspicion floor is 800 ms for up to 10 members. */
export const FAST: MembershipInit = {
  probeInterval: 200,
  probeTimeout: 100,
  gossipInterval: 100,
  pushPullInterval: 2000,
  checkInterval: 200
}

export const membershipOf = (node: CyberspaceNode): Membership => node.libp2p.services.membership as Membership
export const principalOf = (node: CyberspaceNode): PrincipalId => principalFromPeerId(node.peerId)

export interface TestCluster {
  root: Key
  nodes: CyberspaceNode[]
  certs: Map<PrincipalId, SignedCert>
}

/** Each test node's libp2p key, so a test can sign as that node (to replay, forge or flood). */
const privateKeys = new Map<string, PrivateKey>()

/** A signer holding `node`'s own key. */
export async function signerOf(node: CyberspaceNode): Promise<Signer> {
  const privateKey = privateKeys.get(node.peerId.toString())
  if (privateKey == null) throw new Error('not a node of these fixtures')
  return await seedSigner(privateKey.raw)
}

/** Starts `n` nodes (all bootstrapped from the first, or from `bootstrap`) running membership with `init`. */
export async function startNodes(
  n: number,
  init: MembershipInit = FAST,
  bootstrap?: CyberspaceNode
): Promise<CyberspaceNode[]> {
  const nodes: CyberspaceNode[] = []
  for (let i = 0; i < n; i++) {
    const via = bootstrap ?? nodes[0]
    const privateKey = await generateKeyPair('Ed25519')
    const node = await memoryNode({
      privateKey,
      services: { membership: membership(init) as never },
      bootstrap: via == null ? [] : [via.multiaddrs()[0]]
    })
    privateKeys.set(node.peerId.toString(), privateKey)
    nodes.push(node)
  }
  return nodes
}

/** Makes `node` a member under `root`: the ACL trusts root for (cyberspace member), and root certifies the node. */
export async function admit(
  node: CyberspaceNode,
  root: Key,
  certs?: Map<PrincipalId, SignedCert>
): Promise<SignedCert> {
  await node.spki.addAclEntry(root.id, tag(MEMBER))
  const cert = await grant(root, { kind: 'key', principal: principalOf(node) }, MEMBER, { propagate: false })
  await node.spki.addCert(cert)
  certs?.set(principalOf(node), cert)
  return cert
}

export async function startCluster(n: number, init: MembershipInit = FAST): Promise<TestCluster> {
  const root = await key()
  const nodes = await startNodes(n, init)
  const certs = new Map<PrincipalId, SignedCert>()
  for (const node of nodes) await admit(node, root, certs)
  return { root, nodes, certs }
}

/** Whether `observer` lists every one of `members` in `state`. */
export function sees(observer: CyberspaceNode, members: CyberspaceNode[], state: MemberState): boolean {
  const view = membershipOf(observer)
  return members.every(m => view.member(principalOf(m))?.state === state)
}

export async function converged(nodes: CyberspaceNode[], timeout = 30_000): Promise<void> {
  await waitUntil(
    `every node lists all ${nodes.length} alive`,
    () =>
      nodes.every(
        o =>
          sees(o, nodes, 'alive') &&
          membershipOf(o)
            .members()
            .filter(m => m.state === 'alive').length === nodes.length
      ),
    timeout,
    50
  )
}

/** Every state change each observer reports, by observer and member. */
export class Recorder {
  readonly changes: Array<{ observer: PrincipalId; member: PrincipalId; state: MemberState; incarnation: number }> = []
  private readonly detach: Array<() => void> = []

  constructor(nodes: CyberspaceNode[]) {
    for (const node of nodes) {
      const observer = principalOf(node)
      const listener = (e: CustomEvent<{ principal: PrincipalId; state: MemberState; incarnation: number }>): void => {
        this.changes.push({
          observer,
          member: e.detail.principal,
          state: e.detail.state,
          incarnation: e.detail.incarnation
        })
      }
      const m = membershipOf(node)
      m.addEventListener('member:change', listener)
      this.detach.push(() => m.removeEventListener('member:change', listener))
    }
  }

  /** Observers that ever reported `member` in `state`. */
  showed(member: PrincipalId, state: MemberState): PrincipalId[] {
    return [...new Set(this.changes.filter(c => c.member === member && c.state === state).map(c => c.observer))]
  }

  stop(): void {
    for (const d of this.detach) d()
  }
}
