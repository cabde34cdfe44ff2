/**
 * Cluster key latency: distributed key generation and one FROST signature for 3-of-5, 5-of-9 and
 * 7-of-10, over TCP on 127.0.0.1 between full nodes (in this one process, so all share its CPU)
 * and, beside it, the compute-only time of the same rounds — the same DkgSession, Signer and
 * coordinateSigning code with messages handed over in memory — measured in the same run.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { principalFromPeerId } from '../src/crypto/principal.ts'
import { parseAdvanced } from '../src/spki/sexp.ts'
import { parseTag } from '../src/spki/tag.ts'
import { DkgSession } from '../src/threshold/dkg.ts'
import { CLUSTER_MESSAGE_DOMAIN } from '../src/threshold/service.ts'
import { coordinateSigning, Signer } from '../src/threshold/sign.ts'
import { signedBytes } from '../protocols/signing.ts'
import { loopbackNode } from '../test/helpers/memory-node.ts'
import { waitUntil } from '../test/helpers/processes.ts'
import { percentile } from './harness.ts'
import type { Benchmark, BenchResult } from './harness.ts'
import type { DkgMessage } from '../protocols/dkg/codec.ts'
import type { PrincipalId } from '../src/crypto/principal.ts'
import type { CyberspaceNode } from '../src/node.ts'
import type { Key } from '@noble/curves/abstract/frost.js'

const GROUPS = [
  { t: 3, n: 5 },
  { t: 5, n: 9 },
  { t: 7, n: 10 }
]
const DKG_RUNS = 3
const SIGNATURES = 20

function progress(line: string): void {
  process.stderr.write(`  ${line}\n`)
}

const median = (xs: number[]): number =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50
  )

async function loopbackNodes(n: number): Promise<CyberspaceNode[]> {
  const start = async (bootstrap: CyberspaceNode[]): Promise<CyberspaceNode> =>
    await loopbackNode({ bootstrap: bootstrap.map(b => b.multiaddrs()[0]) })
  const first = await start([])
  const rest = await Promise.all(Array.from({ length: n - 1 }, async () => await start([first])))
  await waitUntil(`${n} nodes connected to the first`, () => first.peers().length === n - 1, 60_000, 50)
  const tag = parseTag(parseAdvanced('(cyberspace (cluster))'))
  for (const node of rest) await node.spki.addAclEntry(principalFromPeerId(first.peerId), tag)
  return [first, ...rest]
}

/** One DKG among in-memory sessions: every message delivered directly, round by round. */
async function dkgInMemory(n: number, t: number): Promise<{ ms: number; keys: Map<PrincipalId, Key> }> {
  const selves = await Promise.all(
    Array.from({ length: n }, async () => {
      const key = await generateKeyPair('Ed25519')
      return { principal: principalFromPeerId(peerIdFromPrivateKey(key)), secretKey: key.raw.subarray(0, 32) }
    })
  )
  const members = selves.map(s => s.principal).sort()
  const start = performance.now()
  const session = crypto.getRandomValues(new Uint8Array(32))
  const sessions = new Map(selves.map(s => [s.principal, new DkgSession({ session, members, threshold: t }, s)]))
  let queue: DkgMessage[] = []
  for (const s of sessions.values()) queue.push(...(await s.start()))
  for (let round = 0; round < 4 && queue.length > 0; round++) {
    const next: DkgMessage[] = []
    for (const msg of queue) {
      for (const [p, s] of sessions) {
        if (p === msg.from || (msg.type === 'round2' && msg.to !== p)) continue
        next.push(...(await s.receive(msg)))
      }
    }
    queue = next
  }
  const ms = performance.now() - start
  return { ms, keys: new Map([...sessions].map(([p, s]) => [p, s.outcome().key])) }
}

async function signInMemory(keys: Map<PrincipalId, Key>, payload: Uint8Array): Promise<number> {
  const signers = new Map([...keys].map(([p, k]) => [p, new Signer(k, p, async () => {})]))
  const members = [...keys.keys()]
  const pub = keys.get(members[0])!.public
  const start = performance.now()
  await coordinateSigning(
    pub,
    members,
    payload,
    {
      commit: async (m, req) => await signers.get(m)!.commit(req),
      sign: async (m, pkg) => signers.get(m)!.signShare(pkg)
    },
    { coordinator: members[0] }
  )
  return performance.now() - start
}

const bench: Benchmark = {
  name: 'threshold',
  description: 'DKG and FROST signing latency over loopback TCP against the same rounds computed in one process',
  async run(): Promise<BenchResult> {
    const rows: Array<Array<string | number>> = []
    const ratios: Record<string, number> = {}
    const payload = signedBytes(CLUSTER_MESSAGE_DOMAIN, new TextEncoder().encode('a cluster decision'))
    for (const { t, n } of GROUPS) {
      const dkgNet: number[] = []
      const signNet: number[] = []
      for (let run = 0; run < DKG_RUNS; run++) {
        const nodes = await loopbackNodes(n)
        try {
          const ids = nodes.map(x => principalFromPeerId(x.peerId))
          const start = performance.now()
          await nodes[0].cluster.init(ids, t)
          dkgNet.push(performance.now() - start)
          if (run === DKG_RUNS - 1) {
            for (let i = 0; i < SIGNATURES; i++) {
              const s = performance.now()
              await nodes[0].cluster.sign(CLUSTER_MESSAGE_DOMAIN, new TextEncoder().encode('a cluster decision'))
              signNet.push(performance.now() - s)
            }
          }
        } finally {
          await Promise.all(nodes.map(async x => await x.stop()))
        }
      }
      const dkgLocal: number[] = []
      const signLocal: number[] = []
      let keys: Map<PrincipalId, Key> | undefined
      for (let run = 0; run < DKG_RUNS; run++) {
        const r = await dkgInMemory(n, t)
        dkgLocal.push(r.ms)
        keys = r.keys
      }
      for (let i = 0; i < SIGNATURES; i++) signLocal.push(await signInMemory(keys!, payload))
      const row = {
        dkgNet: median(dkgNet),
        dkgLocal: median(dkgLocal),
        signNet: median(signNet),
        signLocal: median(signLocal),
        signNetP90: percentile(
          [...signNet].sort((a, b) => a - b),
          90
        )
      }
      progress(`${t}-of-${n}: DKG ${row.dkgNet.toFixed(0)} ms over loopback, ${row.dkgLocal.toFixed(0)} ms computing`)
      rows.push([`${t}-of-${n}`, row.dkgNet, row.dkgLocal, row.signNet, row.signNetP90, row.signLocal])
      ratios[`DKG ${t}-of-${n} loopback / compute`] = row.dkgNet / row.dkgLocal
      ratios[`sign ${t}-of-${n} loopback / compute`] = row.signNet / row.signLocal
    }
    return {
      setup: {
        transport: 'TCP 127.0.0.1, all nodes in this process',
        dkgRuns: DKG_RUNS,
        signatures: SIGNATURES,
        dkg: 'DkgSession over /cyberspace/dkg (initiator relays)',
        signing: 'one FROST round, coordinator asks all members'
      },
      columns: ['group', 'DKG loopback ms', 'DKG compute ms', 'sign loopback ms', 'sign p90 ms', 'sign compute ms'],
      rows,
      ratios
    }
  }
}

export default bench
