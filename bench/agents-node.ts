/**
 * A member node in its own OS process, for the agents benchmark (bench/agents.bench.ts): started
 * with `process.execPath bench/agents-node.ts`, it reads one JSON command a line on stdin and
 * writes one JSON line per answer (`{ id, ok, result }` or `{ id, ok: false, error }`) or event
 * (`{ event, … , at }`, `at` being Date.now() when it happened) on stdout. It ends when stdin
 * closes (its parent is gone) or on `stop`.
 *
 * The node is the real stack with durable stores under a data directory (as `cyberspace start`
 * keeps them), so a node killed with SIGKILL and started again on the same directory comes back
 * with its identity, its certificates and its cluster share. It runs the kinds `start` names of
 * `counter` and `echo` (bench/agents-kinds.ts) and serves the two floor protocols: ECHO_PROTOCOL
 * answers the one frame of each stream and closes it (the mailbox's shape: one stream per message),
 * ECHO_STREAM_PROTOCOL answers every frame of a stream until the caller closes it.
 *
 * @example
 * {"id":1,"cmd":"start","dataDir":"/tmp/x","key":"08011240…","bootstrap":["/ip4/127.0.0.1/tcp/4001/p2p/12D3…"],"kinds":["counter"],"options":{…}}
 * {"id":2,"cmd":"spawn","kind":"counter","agent":"c-1","key":"cluster"}
 */
import { createInterface } from 'node:readline'
import { join } from 'node:path'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { hexToBytes } from '@noble/hashes/utils.js'
import { tcp } from '@libp2p/tcp'
import { createNode } from '../src/node.ts'
import { parsePrincipal } from '../src/crypto/principal.ts'
import { parseSignedCert } from '../src/spki/cert.ts'
import { parseAdvanced } from '../src/spki/sexp.ts'
import { parseTag } from '../src/spki/tag.ts'
import { fileShareStore } from '../node/data-dir.ts'
import { DurableBlockstore, nodeFs, SyncedLevelDatastore, syncDirectory } from '../node/stores.ts'
import { counterKind, echoKind, serveEcho } from './agents-kinds.ts'
import type { BenchNodeOptions } from './agents-kinds.ts'
import type { AgentInfo } from '../src/actor/agents.ts'
import type { PrincipalId } from '../src/crypto/principal.ts'
import type { MemberView } from '../src/membership/service.ts'
import type { CyberspaceNode } from '../src/node.ts'

interface Command {
  id: number
  cmd: string
  [field: string]: unknown
}

let node: CyberspaceNode | undefined
let stores: { close: () => Promise<void> } | undefined

function write(line: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(line) + '\n')
}

function summary(m: MemberView): Record<string, unknown> {
  return { peerId: m.peerId, state: m.state, since: m.since, kinds: m.meta.kinds ?? '' }
}

function agentSummary(a: AgentInfo): Record<string, unknown> {
  return { principal: a.principal, kind: a.kind, id: a.id, status: a.status, host: a.host, lastExit: a.lastExit }
}

async function start(c: Command): Promise<unknown> {
  if (node != null) throw new Error('started already')
  const dir = String(c.dataDir)
  const options = c.options as BenchNodeOptions
  const blockstore = new DurableBlockstore(join(dir, 'blocks'))
  const datastore = new SyncedLevelDatastore(join(dir, 'datastore'))
  await blockstore.open()
  await datastore.open()
  await syncDirectory(nodeFs, dir)
  stores = {
    close: async () => {
      await blockstore.close()
      await datastore.close()
    }
  }
  node = await createNode({
    privateKey: privateKeyFromProtobuf(hexToBytes(String(c.key))),
    transports: [tcp()],
    blockstore,
    datastore,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: (c.bootstrap as string[]).map(a => multiaddr(a)),
    dhtServer: true,
    clusterOptions: { store: fileShareStore(dir) },
    membershipOptions: options.membershipOptions,
    agentsOptions: options.agentsOptions,
    stateOptions: options.stateOptions,
    mailboxOptions: options.mailboxOptions
  })
  await node.start()
  const self = node.peerId.toString()
  const kinds = c.kinds as string[]
  if (kinds.includes('counter')) node.agents.define('counter', counterKind(self))
  if (kinds.includes('echo')) node.agents.define('echo', echoKind)
  await serveEcho(node)
  node.membership.addEventListener('member:change', e => {
    write({ event: 'member', ...summary(e.detail), at: Date.now() })
  })
  node.agents.addEventListener('change', e => {
    write({ event: 'agent', ...agentSummary((e as CustomEvent<AgentInfo>).detail), at: Date.now() })
  })
  return { peerId: self, addrs: node.multiaddrs().map(a => a.toString()) }
}

async function run(c: Command): Promise<unknown> {
  if (c.cmd === 'start') return await start(c)
  if (node == null) throw new Error('not started')
  const n = node
  switch (c.cmd) {
    case 'trust':
      await n.spki.addAclEntry(parsePrincipal(String(c.principal)), parseTag(parseAdvanced(String(c.tag))))
      return null
    case 'certs':
      await n.spki.addAll({ certs: (c.certs as string[]).map(t => parseSignedCert(parseAdvanced(t))), crls: [] })
      return null
    case 'members':
      return n.membership.members().map(summary)
    case 'clusterInit': {
      const result = await n.cluster.init(
        (c.members as string[]).map(m => parsePrincipal(m)),
        Number(c.threshold)
      )
      return { principal: result.principal }
    }
    case 'clusterInfo':
      return n.cluster.info()?.principal ?? null
    case 'spawn': {
      const info = await n.agents.spawn(String(c.kind), {
        id: String(c.agent),
        key: c.key as 'cluster' | 'local'
      })
      return agentSummary(info)
    }
    case 'record': {
      const r = await n.registry.get(String(c.principal))
      return { host: r.host, seq: r.seq, expires: r.expires }
    }
    case 'published': {
      const r = n.registry.published().find(v => v.agent === c.principal)
      return r == null ? null : { host: r.host, seq: r.seq, expires: r.expires }
    }
    case 'agents':
      return n.agents.list().map(agentSummary)
    case 'request':
      return await n.agents.request(c.from as PrincipalId, c.to as PrincipalId, String(c.type), c.body ?? null, {
        timeout: Number(c.timeout ?? 30_000)
      })
    case 'stop':
      await n.stop()
      await stores?.close()
      node = undefined
      setImmediate(() => process.exit(0))
      return null
    default:
      throw new Error(`unknown command ${c.cmd}`)
  }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', line => {
  let c: Command
  try {
    c = JSON.parse(line) as Command
  } catch {
    write({ event: 'bad-command', line: line.slice(0, 200) })
    return
  }
  run(c).then(
    result => {
      write({ id: c.id, ok: true, result })
    },
    (err: Error) => {
      write({ id: c.id, ok: false, error: `${err.name}: ${err.message}` })
    }
  )
})
// the parent is gone: nothing is left to measure
lines.on('close', () => {
  process.exit(0)
})
