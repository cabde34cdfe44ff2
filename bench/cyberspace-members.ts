/**
 * Cyberspace node processes on 127.0.0.1 made members of one cluster, for the membership
 * benchmark: N nodes started with the CLI (test/helpers/processes.ts), all joined through the
 * first; the benchmark holds a root key, every node's ACL trusts it for `(cyberspace member)`, and
 * each node imports the member certificate the root issued to it (the cheapest correct setup:
 * no DKG, no proofs fetched over the network). Views are read from each node's control API,
 * `GET members`; the time a view changed is the member's `since` (every process here shares the
 * clock), so polling every 500 ms still gives exact times.
 *
 * @example
 * const cluster = await startCyberspaceCluster(10)
 * try { await cluster.waitAllAlive(60_000) } finally { await cluster.stop() }
 */
import { nobleEd25519 } from '../src/crypto/ed25519.ts'
import { parsePrincipal, principalId } from '../src/crypto/principal.ts'
import { signCert, signedCertToSexp, spkiTime } from '../src/spki/cert.ts'
import { parseAdvanced, toAdvanced } from '../src/spki/sexp.ts'
import { parseTag } from '../src/spki/tag.ts'
import { removeDir, spawnNode } from '../test/helpers/processes.ts'
import { progress, sleep } from './member-cluster.ts'
import type { MemberCluster, Observation, ObservedState } from './member-cluster.ts'
import type { NodeProcess } from '../test/helpers/processes.ts'

export const MEMBER_TAG = '(cyberspace member)'
/** How often views are read while waiting for a detection: times come from `since`, not from the read. */
const POLL_MS = 500
const REQUEST_TIMEOUT_MS = 5_000

/** The members route's answer, as far as the benchmark reads it (node/api/membership-routes.ts). */
interface MembersAnswer {
  members: Array<{ principal: string; peerId: string; state: ObservedState; incarnation: number; since: number }>
}

export class MembershipUnavailableError extends Error {
  static name = 'MembershipUnavailableError'
  name = 'MembershipUnavailableError'
}

/**
 * Starts `size` node processes, makes them members, and waits (at most `timeoutMs`) until every
 * node lists all of them alive. Throws MembershipUnavailableError when the nodes have no members
 * route or never converge; the processes are stopped then.
 */
export async function startCyberspaceCluster(size: number, timeoutMs = 180_000): Promise<MemberCluster> {
  const cluster = new CyberspaceCluster(size)
  try {
    await cluster.start(timeoutMs)
    return cluster
  } catch (err) {
    await cluster.stop()
    throw err
  }
}

class CyberspaceCluster implements MemberCluster {
  readonly system = 'cyberspace'
  readonly size: number
  readonly resolution = `exact (each view's own 'since', read every ${POLL_MS} ms)`
  private readonly nodes: Array<NodeProcess | undefined>
  private readonly dataDirs: string[] = []
  private readonly peerIds: string[] = []
  private readonly index = new Map<string, number>()
  private stopped = false

  constructor(size: number) {
    this.size = size
    this.nodes = new Array<NodeProcess | undefined>(size)
  }

  async start(timeoutMs: number): Promise<void> {
    const t0 = performance.now()
    const first = await spawnNode({ startTimeoutMs: 60_000 })
    this.adopt(0, first)
    await Promise.all(
      Array.from({ length: this.size - 1 }, async (_, i) => {
        this.adopt(i + 1, await spawnNode({ bootstrap: [first.tcpAddr], startTimeoutMs: 120_000 }))
      })
    )
    progress(`cyberspace N=${this.size}: processes started in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    try {
      await first.api.get<MembersAnswer>('members')
    } catch (err) {
      throw new MembershipUnavailableError(`GET members: ${(err as Error).message}`)
    }

    const secret = crypto.getRandomValues(new Uint8Array(32))
    const root = principalId(await nobleEd25519.publicKey(secret))
    const tag = parseTag(parseAdvanced(MEMBER_TAG))
    await Promise.all(
      this.nodes.map(async node => {
        if (node == null) return
        const cert = await signCert(
          {
            type: 'auth',
            issuer: root,
            subject: { kind: 'key', principal: parsePrincipal(node.peerId) },
            propagate: false,
            tag,
            validity: { notAfter: spkiTime(Date.now() + 24 * 3600_000) }
          },
          secret
        )
        await node.api.post('spki/acl', { principal: root, tag: MEMBER_TAG })
        await node.api.post('spki/import', { sexp: toAdvanced(signedCertToSexp(cert)) })
      })
    )
    try {
      await this.waitAllAlive(timeoutMs)
    } catch (err) {
      throw new MembershipUnavailableError((err as Error).message)
    }
    progress(`cyberspace N=${this.size}: all members alive after ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  }

  private adopt(i: number, node: NodeProcess): void {
    this.nodes[i] = node
    this.dataDirs[i] = node.dataDir
    this.peerIds[i] = node.peerId
    this.index.set(node.peerId, i)
  }

  pid(i: number): number | undefined {
    const proc = this.nodes[i]?.proc
    return proc == null || proc.exitCode != null || proc.signalCode != null ? undefined : proc.pid
  }

  kill(indices: number[]): number {
    const at = Date.now()
    for (const i of indices) this.nodes[i]?.proc.kill('SIGKILL')
    return at
  }

  async restart(indices: number[]): Promise<void> {
    await Promise.all(
      indices.map(async i => {
        const old = this.nodes[i]
        if (old != null) await old.stop(0)
        this.nodes[i] = undefined
        const first = this.nodes[0]
        if (first == null) throw new Error('member 0 is not running')
        // the same data directory: the same key, ACL and member certificate
        const node = await spawnNode({ dataDir: this.dataDirs[i], bootstrap: [first.tcpAddr], startTimeoutMs: 120_000 })
        if (node.peerId !== this.peerIds[i]) throw new Error(`member ${i} came back with another peer id`)
        this.nodes[i] = node
      })
    )
  }

  private async view(i: number): Promise<MembersAnswer | undefined> {
    const node = this.nodes[i]
    if (node == null || this.pid(i) == null) return undefined
    try {
      return await node.api.get<MembersAnswer>('members', {}, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
    } catch {
      return undefined
    }
  }

  async waitAllAlive(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let last = ''
    while (Date.now() < deadline) {
      const views = await Promise.all(this.nodes.map(async (_, i) => await this.view(i)))
      const alive = views.map(v => v?.members.filter(m => m.state === 'alive' && this.index.has(m.peerId)).length ?? -1)
      if (alive.every(n => n === this.size)) return
      last = `alive members per view (-1: no answer): ${alive.join(',')}`
      await sleep(POLL_MS)
    }
    throw new Error(`not every node lists all ${this.size} members alive after ${timeoutMs} ms (${last})`)
  }

  observe(options: { pollMs?: number } = {}): { observations: () => Observation[]; stop: () => Promise<void> } {
    const pollMs = options.pollMs ?? POLL_MS
    const seen: Observation[] = []
    const known = new Set<string>()
    let stopped = false
    const poll = async (observer: number): Promise<void> => {
      while (!stopped && !this.stopped) {
        const view = await this.view(observer)
        for (const m of view?.members ?? []) {
          const member = this.index.get(m.peerId)
          if (member == null || m.state === 'alive') continue
          const key = `${observer} ${member} ${m.state} ${m.since}`
          if (known.has(key) || seen.length >= 100_000) continue
          known.add(key)
          seen.push({ observer, member, state: m.state, at: m.since })
        }
        await sleep(pollMs)
      }
    }
    const loops = this.nodes.map(async (_, i) => await poll(i))
    return {
      observations: () => seen,
      stop: async () => {
        stopped = true
        await Promise.all(loops)
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    await Promise.all(this.nodes.map(async node => await node?.stop(5_000)))
    await Promise.all(this.dataDirs.map(async dir => await removeDir(dir)))
  }
}
