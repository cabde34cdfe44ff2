/**
 * The `cyberspace` command line: `start` runs a node in the foreground; the other commands talk
 * to a running node through its control API, found through the data directory.
 *
 * @example
 * await main(['start', '--data-dir', '/tmp/a', '--listen', '/ip4/127.0.0.1/tcp/0'])
 */
import { networkInterfaces } from 'node:os'
import { parseArgs } from 'node:util'
import { parseMultiaddrs } from '../src/network/multiaddrs.ts'
import { connectApi } from './api/client.ts'
import { DEFAULT_DATA_DIR, TOKEN_FILE } from './data-dir.ts'
import { UsageError } from './errors.ts'
import { acl, cert, key, SPKI_USAGE } from './spki-commands.ts'
import { CLUSTER_USAGE, clusterCommand } from './cluster-commands.ts'
import { STATE_USAGE, stateCommand } from './state-commands.ts'
import type { BufferedMessage } from './api/server.ts'
import type { BootstrapRetry } from '../src/network/bootstrap.ts'
import type { PeerSummary } from '../src/node.ts'

export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/4101', '/ip4/0.0.0.0/tcp/4102/ws']
export const DEFAULT_API_PORT = 4100

export const USAGE = `usage: cyberspace <command> [options]

commands:
  start [--listen <multiaddr>]... [--bootstrap <multiaddr>]... [--api-port <port>]
                              run a node in the foreground (Ctrl-C stops it)
  id [--json]                 the running node's peer id and addresses
  peers [--json]              the peers it is connected to
  dht put <name> <value>      publish a value signed by this node in the DHT
  dht get <peer-id> <name>    read and verify a value another peer published
  pubsub pub <topic> <text>   publish a gossipsub message
  pubsub sub <topic>          print messages on a topic as they arrive (Ctrl-C stops)
${SPKI_USAGE}
${CLUSTER_USAGE}
${STATE_USAGE}

options:
  --data-dir <path>           the node's data directory (default ${DEFAULT_DATA_DIR})
  --help                      this text
`

const OPTIONS = {
  'data-dir': { type: 'string' },
  listen: { type: 'string', multiple: true },
  bootstrap: { type: 'string', multiple: true },
  'api-port': { type: 'string' },
  json: { type: 'boolean' },
  propagate: { type: 'boolean' },
  'not-before': { type: 'string' },
  'not-after': { type: 'string' },
  'online-crl': { type: 'boolean' },
  in: { type: 'string' },
  from: { type: 'string' },
  transport: { type: 'boolean' },
  members: { type: 'string', multiple: true },
  threshold: { type: 'string' },
  type: { type: 'string' },
  by: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
} as const

type Out = (line: string) => void

export async function main(
  argv: string[],
  out: Out = line => {
    process.stdout.write(line + '\n')
  },
  err: Out = line => {
    process.stderr.write(line + '\n')
  }
): Promise<number> {
  try {
    let parsed
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
    } catch (e) {
      throw new UsageError((e as Error).message)
    }
    const { values, positionals } = parsed
    const [command, ...rest] = positionals
    if (values.help === true || command == null || command === 'help') {
      out(USAGE)
      return command == null && values.help !== true ? 2 : 0
    }
    const dataDir = values['data-dir'] ?? DEFAULT_DATA_DIR
    switch (command) {
      case 'start':
        return await start(dataDir, values, rest, out, err)
      case 'id':
        return await showId(dataDir, values.json === true, out)
      case 'peers':
        return await showPeers(dataDir, values.json === true, out)
      case 'dht':
        return await dht(dataDir, rest, out)
      case 'pubsub':
        return await pubsub(dataDir, rest, out)
      case 'key':
        noMore(rest, 'key')
        return await key(dataDir, values, out)
      case 'cert':
        return await cert(dataDir, rest, values, out)
      case 'acl':
        return await acl(dataDir, rest, values, out)
      case 'cluster':
        return await clusterCommand(dataDir, rest, values, out)
      case 'state':
        return await stateCommand(dataDir, rest, values, out)
      default:
        throw new UsageError(`unknown command "${command}" (see cyberspace --help)`)
    }
  } catch (e) {
    const error = e as Error
    err(`cyberspace: ${error.message}`)
    return error.name === 'UsageError' || error.name === 'InvalidMultiaddrError' ? 2 : 1
  }
}

function noMore(rest: string[], command: string): void {
  if (rest.length > 0) throw new UsageError(`${command}: unexpected argument "${rest[0]}"`)
}

async function start(
  dataDir: string,
  values: { listen?: string[]; bootstrap?: string[]; 'api-port'?: string },
  rest: string[],
  out: Out,
  err: Out
): Promise<number> {
  noMore(rest, 'start')
  const listen = parseMultiaddrs(values.listen ?? DEFAULT_LISTEN, 'listen')
  const bootstrap = parseMultiaddrs(values.bootstrap ?? [], 'bootstrap')
  const apiPortText = values['api-port'] ?? String(DEFAULT_API_PORT)
  const apiPort = Number(apiPortText)
  if (!/^\d+$/.test(apiPortText) || apiPort > 65535)
    throw new UsageError(`invalid --api-port "${apiPortText}": expected 0-65535`)

  // loaded here, not at the top: the other commands only talk to a running node and need none of the stack
  const { startNodeProcess } = await import('./platform.ts')
  const running = await startNodeProcess({ dataDir, listen, bootstrap, apiPort })
  const { node, api } = running
  const peerId = node.peerId.toString()
  for (const warning of running.dataDir.warnings) err(`warning: ${warning}`)
  out(`cyberspace node ${peerId}`)
  out(`data directory  ${running.dataDir.path}${running.dataDir.createdKey ? ' (new identity)' : ''}`)
  out('listening on')
  for (const ma of node.multiaddrs()) out(`  ${ma.toString()}`)
  out(`control API     ${api.url} (token in ${running.dataDir.path}/${TOKEN_FILE})`)
  out(`web page        ${api.url}/`)
  const join = joinAddress(node.multiaddrs().map(String))
  if (join != null) {
    out('to join this node from another machine, run there:')
    out(`  npx cyberspace start --bootstrap ${join}`)
  }

  // dials began as the node started: report failures that came before we listened for them
  for (const s of node.bootstrap.status()) {
    if (!s.connected && s.failures > 0) {
      const delay = (s.nextAttemptAt ?? Date.now()) - Date.now()
      err(describeRetry({ addr: s.addr, failures: s.failures, error: s.lastError ?? '', delay }))
    }
  }
  node.bootstrap.addEventListener('retry', evt => {
    err(describeRetry(evt.detail))
  })
  node.bootstrap.addEventListener('connected', evt => {
    out(`connected to bootstrap peer ${evt.detail.addr}`)
  })
  node.libp2p.addEventListener('peer:connect', evt => {
    out(`peer connected    ${evt.detail.toString()}`)
  })
  node.libp2p.addEventListener('peer:disconnect', evt => {
    out(`peer disconnected ${evt.detail.toString()}`)
  })

  await new Promise<void>(resolve => {
    const onSignal = (signal: string): void => {
      out(`${signal}: stopping`)
      process.once('SIGINT', () => {
        err('second signal: exiting now')
        process.exit(1)
      })
      resolve()
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
  })
  await running.stop()
  out('stopped')
  return 0
}

function describeRetry({ addr, failures, delay, error }: BootstrapRetry): string {
  return `bootstrap peer ${addr} unreachable (${failures} ${failures === 1 ? 'failure' : 'failures'}: ${error}); retrying in ${(Math.max(0, delay) / 1000).toFixed(1)}s`
}

/** The address another machine should dial: plain TCP on a non-loopback interface if there is one. */
function joinAddress(addrs: string[]): string | undefined {
  const tcp = addrs.filter(a => /^\/ip[46]\/[^/]+\/tcp\/\d+\/p2p\/[^/]+$/.test(a))
  const lan = new Set(
    Object.values(networkInterfaces())
      .flat()
      .flatMap(i => (i != null && !i.internal ? [i.address] : []))
  )
  return tcp.find(a => lan.has(a.split('/')[2])) ?? tcp[0]
}

async function showId(dataDir: string, json: boolean, out: Out): Promise<number> {
  const api = await connectApi(dataDir)
  const id = await api.get<{ peerId: string; multiaddrs: string[] }>('id')
  if (json) out(JSON.stringify(id))
  else {
    out(id.peerId)
    for (const ma of id.multiaddrs) out(`  ${ma}`)
  }
  return 0
}

async function showPeers(dataDir: string, json: boolean, out: Out): Promise<number> {
  const api = await connectApi(dataDir)
  const peers = await api.get<PeerSummary[]>('peers')
  if (json) out(JSON.stringify(peers))
  else for (const peer of peers) out(`${peer.peerId}  ${peer.direction.padEnd(8)}  ${peer.addrs.join(' ')}`)
  return 0
}

async function dht(dataDir: string, args: string[], out: Out): Promise<number> {
  const [verb, a, b, ...rest] = args
  noMore(rest, `dht ${verb ?? ''}`)
  if (verb === 'put' && a != null && b != null) {
    const api = await connectApi(dataDir)
    const { key } = await api.post<{ key: string }>('dht/put', { name: a, value: b })
    out(key)
    return 0
  }
  if (verb === 'get' && a != null && b != null) {
    const api = await connectApi(dataDir)
    const { value } = await api.get<{ value: string }>('dht/get', { peer: a, name: b })
    out(value)
    return 0
  }
  throw new UsageError('usage: cyberspace dht put <name> <value> | dht get <peer-id> <name>')
}

async function pubsub(dataDir: string, args: string[], out: Out): Promise<number> {
  const [verb, topic, text, ...rest] = args
  noMore(rest, `pubsub ${verb ?? ''}`)
  if (verb === 'pub' && topic != null && text != null) {
    const api = await connectApi(dataDir)
    const { recipients } = await api.post<{ recipients: string[] }>('pubsub/publish', { topic, data: text })
    out(`sent to ${recipients.length} ${recipients.length === 1 ? 'peer' : 'peers'}`)
    return 0
  }
  if (verb === 'sub' && topic != null && text == null) {
    const api = await connectApi(dataDir)
    await api.post('pubsub/subscribe', { topic })
    let after = 0
    let stopped = false
    const stop = (): void => {
      stopped = true
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    while (!stopped) {
      const { messages, next } = await api.get<{ messages: BufferedMessage[]; next: number }>('pubsub/messages', {
        topic,
        after: String(after)
      })
      for (const m of messages) out(`${m.from}: ${m.data}`)
      after = next
      await new Promise(resolve => setTimeout(resolve, 250))
    }
    // leave the topic, so the node stops buffering it for no one
    await api.post('pubsub/unsubscribe', { topic })
    return 0
  }
  throw new UsageError('usage: cyberspace pubsub pub <topic> <text> | pubsub sub <topic>')
}
