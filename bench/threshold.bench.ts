/**
 * Cluster key latency: distributed key generation and one FROST signature for 3-of-5, 5-of-9 and
 * 7-of-10, over TCP on 127.0.0.1 between full nodes (a group's nodes in one process, sharing its CPU)
 * and, beside it, the compute-only time of the same rounds — the same DkgSession, Signer and
 * coordinateSigning code with messages handed over in memory — measured in the same run.
 *
 * Loopback against compute does the same work but the network's: both ask all n members for
 * commitments and use t; each of the t signers checks the whole commitment list; the coordinator
 * is a member (its own commit and share computed in place, sharing its signer's checked points)
 * and checks every share before aggregating; each signature is checked under Ed25519. Over
 * loopback each member also decides by policy (the payload's kind, the coordinator's SPKI
 * authority: a cached decision after the first) and every message is encoded, sent over noise and
 * yamux (streams kept between requests) and decoded; in memory the policy accepts all. Each
 * loopback signature is followed by one computed in memory while the nodes run (column "sign
 * compute beside"); the ratio is the median of each pair's ratio, so the machine's load, which
 * drifts, and the nodes' own upkeep (DHT, gossip, membership) weigh on both alike.
 *
 * Compute is also measured against:
 *   - raw noble FROST (`ed25519_FROST` commit / signShare / aggregate on the same keys), with the
 *     coordinator checking every share (verifyShare) and without (aggregate only);
 *   - an earlier checkout of this code, when THRESHOLD_BASELINE names its directory (e.g. a git
 *     worktree of the commit before a change): its DkgSession, Signer and coordinateSigning run
 *     interleaved with today's on the same keys.
 * THRESHOLD_LOOPBACK=0 leaves the loopback runs out (compute only); THRESHOLD_GROUPS picks groups
 * (e.g. `3-of-5,7-of-10`); THRESHOLD_SIGNATURES sets how many signatures each measures (default 15);
 * the loopback signatures start once the nodes' start-up work is over (see quiet(); the wait is
 * the column "settle s"), THRESHOLD_SETTLE=0 starts them right after the key generation.
 * With more than one group, each group runs in a process of its own (this benchmark again, with
 * THRESHOLD_GROUPS naming that group): a group's stopped nodes leave heap, closing sockets and
 * timers behind that would otherwise fall on the next group's loopback figures, and a group's
 * figures then do not depend on which groups ran before it.
 * Each signer object lives as long as its key, as in the cluster service; every simulated node has
 * its own (so no node profits from another's checks).
 */
import { spawn } from 'node:child_process'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ed25519_FROST as nobleFrost } from '@noble/curves/ed25519.js'
import { principalFromPeerId } from '../src/crypto/principal.ts'
import { parseAdvanced } from '../src/spki/sexp.ts'
import { parseTag } from '../src/spki/tag.ts'
import * as currentDkg from '../src/threshold/dkg.ts'
import { CLUSTER_MESSAGE_DOMAIN } from '../src/threshold/service.ts'
import * as currentSign from '../src/threshold/sign.ts'
import { signedBytes } from '../protocols/signing.ts'
import { loopbackNode } from '../test/helpers/memory-node.ts'
import { waitUntil } from '../test/helpers/processes.ts'
import { median, percentile, readBenchLine } from './harness.ts'
import type { Benchmark, BenchResult } from './harness.ts'
import type { DkgMessage } from '../protocols/dkg/codec.ts'
import type { PrincipalId } from '../src/crypto/principal.ts'
import type { CyberspaceNode } from '../src/node.ts'
import type { Key } from '@noble/curves/abstract/frost.js'

/** The threshold code under test: today's, or an earlier checkout's (same API). */
interface Implementation {
  DkgSession: typeof currentDkg.DkgSession
  Signer: typeof currentSign.Signer
  coordinateSigning: typeof currentSign.coordinateSigning
}

const current: Implementation = {
  DkgSession: currentDkg.DkgSession,
  Signer: currentSign.Signer,
  coordinateSigning: currentSign.coordinateSigning
}

async function implementationAt(dir: string): Promise<Implementation> {
  const dkg = (await import(pathToFileURL(join(dir, 'src/threshold/dkg.ts')).href)) as typeof currentDkg
  const sign = (await import(pathToFileURL(join(dir, 'src/threshold/sign.ts')).href)) as typeof currentSign
  return { DkgSession: dkg.DkgSession, Signer: sign.Signer, coordinateSigning: sign.coordinateSigning }
}

const ALL_GROUPS = [
  { t: 3, n: 5 },
  { t: 5, n: 9 },
  { t: 7, n: 10 }
]
const picked = (process.env.THRESHOLD_GROUPS ?? '').split(',').filter(g => g !== '')
const GROUPS = picked.length === 0 ? ALL_GROUPS : ALL_GROUPS.filter(g => picked.includes(`${g.t}-of-${g.n}`))
const DKG_RUNS = 3
const SIGNATURES = Number(process.env.THRESHOLD_SIGNATURES ?? 15)
/** Sign over loopback only once the nodes' start-up work is over (THRESHOLD_SETTLE=0: at once). */
const SETTLE = process.env.THRESHOLD_SETTLE !== '0'
/** Quiet: under this share of a core for a whole second. */
const QUIET_CPU = 0.15
const MAX_SETTLE_MS = 90_000

/**
 * Waits until this process (all the loopback nodes) used under QUIET_CPU of a core over a second,
 * at most MAX_SETTLE_MS: a fresh cluster's first minute is busy (DHT refresh and walks, gossip
 * meshes, membership joins) and would be measured as signing latency. Returns the ms waited.
 */
async function quiet(group: string): Promise<number> {
  const start = performance.now()
  while (performance.now() - start < MAX_SETTLE_MS) {
    const before = process.cpuUsage()
    const at = performance.now()
    await new Promise(resolve => setTimeout(resolve, 1000))
    const used = process.cpuUsage(before)
    const share = (used.user + used.system) / 1000 / (performance.now() - at)
    if (share < QUIET_CPU) break
  }
  const ms = performance.now() - start
  progress(`${group}: the loopback nodes settled after ${(ms / 1000).toFixed(0)} s`)
  return ms
}

/** An error's name and message, and its cause's (a member's refusal arrives wrapped), for the progress log. */
function describe(err: unknown): string {
  const parts: string[] = []
  for (let e = err, depth = 0; e != null && depth < 4; e = (e as Error).cause, depth++) {
    parts.push(e instanceof Error ? `${e.name}: ${e.message.slice(0, 300)}` : String(e))
  }
  if (err instanceof AggregateError) parts.push(...err.errors.map(e => describe(e)))
  return parts.join(' <- ')
}

function progress(line: string): void {
  process.stderr.write(`  ${line}\n`)
}

async function loopbackNodes(n: number): Promise<CyberspaceNode[]> {
  const start = async (bootstrap: CyberspaceNode[]): Promise<CyberspaceNode> =>
    await loopbackNode({
      bootstrap: bootstrap.map(b => b.multiaddrs()[0]),
      // all nodes share this process's CPU (and the machine may be busy): a slow answer is measured, not refused
      clusterOptions: { timeout: 60_000 }
    })
  const first = await start([])
  const rest = await Promise.all(Array.from({ length: n - 1 }, async () => await start([first])))
  await waitUntil(`${n} nodes connected to the first`, () => first.peers().length === n - 1, 60_000, 50)
  const tag = parseTag(parseAdvanced('(cyberspace (cluster))'))
  for (const node of rest) await node.spki.addAclEntry(principalFromPeerId(first.peerId), tag)
  return [first, ...rest]
}

type Selves = Array<{ principal: PrincipalId; secretKey: Uint8Array }>

async function selvesOf(n: number): Promise<Selves> {
  return await Promise.all(
    Array.from({ length: n }, async () => {
      const key = await generateKeyPair('Ed25519')
      return { principal: principalFromPeerId(peerIdFromPrivateKey(key)), secretKey: key.raw.subarray(0, 32) }
    })
  )
}

/** One DKG among in-memory sessions: every message delivered directly, round by round. */
async function dkgInMemory(
  impl: Implementation,
  selves: Selves,
  t: number
): Promise<{ ms: number; keys: Map<PrincipalId, Key> }> {
  const members = selves.map(s => s.principal).sort()
  const start = performance.now()
  const session = crypto.getRandomValues(new Uint8Array(32))
  const sessions = new Map(selves.map(s => [s.principal, new impl.DkgSession({ session, members, threshold: t }, s)]))
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

/** A node's signer per member, kept across signatures as the cluster service keeps its own. */
function signersOf(impl: Implementation, keys: Map<PrincipalId, Key>): Map<PrincipalId, currentSign.Signer> {
  return new Map([...keys].map(([p, k]) => [p, new impl.Signer(k, p, async () => {})]))
}

async function signInMemory(
  impl: Implementation,
  signers: Map<PrincipalId, currentSign.Signer>,
  pub: Key['public'],
  payload: Uint8Array
): Promise<number> {
  const members = [...signers.keys()]
  const start = performance.now()
  await impl.coordinateSigning(
    pub,
    members,
    payload,
    {
      commit: async (m, req) => await signers.get(m)!.commit(req),
      sign: async (m, pkg) => signers.get(m)!.signShare(pkg)
    },
    // the coordinator is members[0]'s node: it shares that node's checked points, as the service does
    { coordinator: members[0], points: signers.get(members[0])!.points }
  )
  return performance.now() - start
}

/** Raw noble FROST on the same keys: t signers commit and sign, the coordinator (optionally) checks each share and aggregates. */
function nobleSign(keys: Key[], t: number, payload: Uint8Array, checkShares: boolean): number {
  const chosen = keys.slice(0, t)
  const pub = chosen[0].public
  const start = performance.now()
  const committed = chosen.map(k => nobleFrost.commit(k.secret))
  const list = committed.map(c => c.commitments)
  const shares: Record<string, Uint8Array> = {}
  chosen.forEach((k, i) => {
    shares[k.secret.identifier] = nobleFrost.signShare(k.secret, k.public, committed[i].nonces, list, payload)
  })
  if (checkShares) {
    for (const [id, share] of Object.entries(shares)) {
      if (!nobleFrost.verifyShare(pub, list, payload, id, share)) throw new Error('noble refused a share')
    }
  }
  nobleFrost.aggregate(pub, list, payload, shares)
  return performance.now() - start
}

const RUN_SCRIPT = fileURLToPath(new URL('run.ts', import.meta.url))

/** Signals that stop the benchmark: passed on to a group's process. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/** One group's result, measured by this benchmark in a fresh process (bench/run.ts prints it as its BENCH line). */
async function groupInChild(group: string): Promise<BenchResult> {
  const child = spawn(process.execPath, [...process.execArgv, RUN_SCRIPT, 'threshold'], {
    env: { ...process.env, THRESHOLD_GROUPS: group },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  // a stopped benchmark must not leave a group measuring on the machine
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal)
  }
  for (const signal of STOP_SIGNALS) process.once(signal, forward)
  let out = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (d: string) => {
    out += d
  })
  try {
    // 'close', not 'exit': by then all of its stdout is read
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (c, s) => {
        resolve([c, s])
      })
    })
    const result = readBenchLine(out, 'threshold')
    if (code !== 0 || result == null)
      throw new Error(
        `the ${group} run ${signal != null ? `was stopped by ${signal}` : `exited with ${code}`}` +
          `${result == null ? ' without a result' : ''} (its error is above, on stderr)`
      )
    return result
  } finally {
    for (const signal of STOP_SIGNALS) process.removeListener(signal, forward)
  }
}

/** Every group, each in its own process, as one result: the first group's set-up and columns, all rows and ratios. */
async function groupsInChildren(): Promise<BenchResult> {
  const results: BenchResult[] = []
  for (const { t, n } of GROUPS) results.push(await groupInChild(`${t}-of-${n}`))
  return {
    setup: {
      ...results[0].setup,
      transport: 'TCP 127.0.0.1, each group in a process of its own (all its nodes in it)'
    },
    columns: results[0].columns,
    rows: results.flatMap(r => r.rows),
    ratios: Object.assign({}, ...results.map(r => r.ratios)) as Record<string, number>
  }
}

const bench: Benchmark = {
  name: 'threshold',
  description: 'DKG and FROST signing latency over loopback TCP against the same rounds computed in one process',
  async run(): Promise<BenchResult> {
    // compute only (THRESHOLD_LOOPBACK=0) starts no nodes: nothing is left behind for the next group
    if (GROUPS.length > 1 && process.env.THRESHOLD_LOOPBACK !== '0') return await groupsInChildren()
    const rows: Array<Array<string | number>> = []
    const ratios: Record<string, number> = {}
    const baselineDir = process.env.THRESHOLD_BASELINE
    const baseline = baselineDir != null && baselineDir !== '' ? await implementationAt(baselineDir) : undefined
    const loopback = process.env.THRESHOLD_LOOPBACK !== '0'
    const payload = signedBytes(CLUSTER_MESSAGE_DOMAIN, new TextEncoder().encode('a cluster decision'))
    for (const { t, n } of GROUPS) {
      // compute only first: the keys and signers the loopback signatures are set beside
      const dkgLocal: number[] = []
      const dkgBase: number[] = []
      let keys: Map<PrincipalId, Key> | undefined
      const selves = await selvesOf(n)
      for (let run = 0; run < DKG_RUNS; run++) {
        const r = await dkgInMemory(current, selves, t)
        dkgLocal.push(r.ms)
        keys = r.keys
        if (baseline != null) dkgBase.push((await dkgInMemory(baseline, selves, t)).ms)
      }
      const pub = [...keys!.values()][0].public
      const ordered = [...keys!.values()]
      const now = signersOf(current, keys!)
      const dkgNet: number[] = []
      const signNet: number[] = []
      // the same rounds computed in memory, one right after each loopback signature, while the
      // loopback nodes run: whatever else loads the machine (or these nodes' own upkeep) falls
      // on both alike
      const signBeside: number[] = []
      const pairs: number[] = []
      let signFailures = 0
      const settled: number[] = []
      for (let run = 0; run < (loopback ? DKG_RUNS : 0); run++) {
        const nodes = await loopbackNodes(n)
        try {
          const ids = nodes.map(x => principalFromPeerId(x.peerId))
          const start = performance.now()
          await nodes[0].cluster.init(ids, t)
          dkgNet.push(performance.now() - start)
          if (run === DKG_RUNS - 1) {
            if (SETTLE) settled.push(await quiet(`${t}-of-${n}`))
            for (let i = 0; i < SIGNATURES; i++) {
              const s = performance.now()
              let net: number | undefined
              try {
                await nodes[0].cluster.sign(CLUSTER_MESSAGE_DOMAIN, new TextEncoder().encode('a cluster decision'))
                net = performance.now() - s
              } catch (err) {
                // counted and shown, not averaged in: a refusal is not a latency
                signFailures++
                progress(`${t}-of-${n}: a signature over loopback failed: ${describe(err)}`)
              }
              const local = await signInMemory(current, now, pub, payload)
              signBeside.push(local)
              if (net != null) {
                signNet.push(net)
                // each loopback signature over the one computed right after it: the load drifts, a pair shares it
                pairs.push(net / local)
              }
            }
          }
        } finally {
          await Promise.all(nodes.map(async x => await x.stop()))
        }
      }
      // compute only, today's beside the baseline's and noble's, interleaved signature by signature
      const before = baseline != null ? signersOf(baseline, keys!) : undefined
      const signLocal: number[] = []
      const signBase: number[] = []
      const nobleChecked: number[] = []
      const nobleUnchecked: number[] = []
      for (let i = 0; i < SIGNATURES; i++) {
        signLocal.push(await signInMemory(current, now, pub, payload))
        if (before != null) signBase.push(await signInMemory(baseline!, before, pub, payload))
        nobleChecked.push(nobleSign(ordered, t, payload, true))
        nobleUnchecked.push(nobleSign(ordered, t, payload, false))
      }
      const row = {
        dkgNet: median(dkgNet),
        dkgLocal: median(dkgLocal),
        dkgBase: median(dkgBase),
        signNet: median(signNet),
        signLocal: median(signLocal),
        signBeside: median(signBeside),
        signBase: median(signBase),
        nobleChecked: median(nobleChecked),
        nobleUnchecked: median(nobleUnchecked),
        settle: settled.length > 0 ? median(settled) / 1000 : 0,
        signNetP90: percentile(
          [...signNet].sort((a, b) => a - b),
          90
        )
      }
      progress(
        `${t}-of-${n}: DKG ${loopback ? `${row.dkgNet.toFixed(0)} ms over loopback, ` : ''}${row.dkgLocal.toFixed(0)} ms computing; ` +
          `sign ${row.signLocal.toFixed(1)} ms computing (noble ${row.nobleUnchecked.toFixed(1)} ms unchecked)`
      )
      rows.push([
        `${t}-of-${n}`,
        row.dkgNet,
        row.dkgLocal,
        baseline != null ? row.dkgBase : '-',
        row.signNet,
        row.signNetP90,
        signFailures,
        row.settle,
        loopback ? row.signBeside : '-',
        row.signLocal,
        baseline != null ? row.signBase : '-',
        row.nobleChecked,
        row.nobleUnchecked
      ])
      const g = `${t}-of-${n}`
      if (loopback) {
        ratios[`DKG ${g} loopback / compute`] = row.dkgNet / row.dkgLocal
        ratios[`sign ${g} loopback / compute`] = median(pairs)
      }
      if (baseline != null) {
        ratios[`DKG ${g} compute: baseline / now`] = row.dkgBase / row.dkgLocal
        ratios[`sign ${g} compute: baseline / now`] = row.signBase / row.signLocal
      }
      ratios[`sign ${g} compute: noble with share checks / now`] = row.nobleChecked / row.signLocal
      ratios[`sign ${g} compute: noble without share checks / now`] = row.nobleUnchecked / row.signLocal
    }
    return {
      setup: {
        transport: 'TCP 127.0.0.1, all nodes in this process',
        requestTimeoutMs: 60_000,
        dkgRuns: DKG_RUNS,
        signatures: SIGNATURES,
        dkg: 'DkgSession over /cyberspace/dkg (initiator relays)',
        signing: 'one FROST round, coordinator asks all members; loopback/compute = median over interleaved pairs',
        baseline: baselineDir ?? 'none (set THRESHOLD_BASELINE to an earlier checkout)'
      },
      columns: [
        'group',
        'DKG loopback ms',
        'DKG compute ms',
        'DKG baseline ms',
        'sign loopback ms',
        'sign p90 ms',
        'sign loopback failed',
        'settle s',
        'sign compute beside ms',
        'sign compute ms',
        'sign baseline ms',
        'noble checked ms',
        'noble unchecked ms'
      ],
      rows,
      ratios
    }
  }
}

export default bench
