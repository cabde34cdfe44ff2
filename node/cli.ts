/**
 * The `cyberspace` command line: `start` runs a node in the foreground; the other commands talk
 * to a running node through its control API, found through the data directory.
 *
 * Help is table-driven: every command is a `CommandHelp` (usage line, options, one example), and
 * a command group (`cert`, `cluster`, …) a `GroupHelp` listing its commands. `--help` after any
 * command or group prints its entry; a bare group prints its commands. Errors print as one line
 * (what is wrong, and the command or flag that fixes it); `--debug` adds the stack trace.
 *
 * @example
 * await main(['start', '--data-dir', '/tmp/a', '--listen', '/ip4/127.0.0.1/tcp/0'])
 * await main(['cert', 'issue', '--help'])
 */
import { existsSync } from 'node:fs'
import { isIP } from 'node:net'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { parseMultiaddrs } from '../src/network/multiaddrs.ts'
import { checkMeta } from '../protocols/membership/codec.ts'
import { DEFAULT_FLEET_INTERVAL, MAX_FLEET_INTERVAL, MIN_FLEET_INTERVAL } from '../protocols/fleet/codec.ts'
import { CLI, connectApi } from './api/client.ts'
import { checkApiBind, isLoopback } from './api/http.ts'
import { DEFAULT_DATA_DIR, TOKEN_FILE } from './data-dir.ts'
import { ApiError, ExplainedError, plainMessage, UsageError } from './errors.ts'
import { acl, ACL_HELP, cert, CERT_HELP, key, KEY_HELP } from './spki-commands.ts'
import { CLUSTER_HELP, clusterCommand } from './cluster-commands.ts'
import { STATE_HELP, stateCommand } from './state-commands.ts'
import { LEAVE_HELP, leaveCommand, MEMBERS_HELP, membersCommand } from './membership-commands.ts'
import { AGENTS_HELP, agentsCommand } from './agent-commands.ts'
import { MCP_HELP } from './mcp/help.ts'
import {
  EVENTS_HELP,
  eventsCommand,
  FLEET_HELP,
  fleetCommand,
  WORK_HELP,
  WORK_OPTIONS,
  workCommand
} from './work-commands.ts'
import type { BufferedMessage } from './api/server.ts'
import type { BootstrapRetry } from '../src/network/bootstrap.ts'
import type { PeerSummary } from '../src/node.ts'

/** Bounds of `start --keepalive-interval`, ms. */
const MIN_KEEPALIVE = 1000
const MAX_KEEPALIVE = 3_600_000

export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/4101', '/ip4/0.0.0.0/tcp/4102/ws']
export const DEFAULT_API_PORT = 4100

/** One command's `--help`: usage line, options and an example. */
export interface CommandHelp {
  /** The words naming the command after `cyberspace`, e.g. `cert issue`. */
  name: string
  /** What follows the name on the usage line. */
  args?: string
  /** One line: what the command does. */
  summary: string
  /** Further lines `--help` shows under the summary. */
  details?: string[]
  /** [flag, what it does], besides the global options. */
  options?: Array<[string, string]>
  /** A command line a newcomer can copy, after `cyberspace`. */
  example: string
}

/** A command group's `--help`: the commands it holds. */
export interface GroupHelp {
  name: string
  summary: string
  commands: CommandHelp[]
  details?: string[]
}

const JSON_OPTION: [string, string] = ['--json', 'print JSON instead of text']

const START_HELP: CommandHelp = {
  name: 'start',
  args: '[--listen <addr>]... [--bootstrap <addr>]... [--kind <kind>]... [options]',
  summary: 'run a node in the foreground (Ctrl-C stops it)',
  details: [
    '`npm start -- <options>` does the same after building the web page the node serves.',
    `Defaults: listen on ${DEFAULT_LISTEN.join(' and ')}, API (public routes, control API, page, metrics) on 127.0.0.1:${DEFAULT_API_PORT}.`,
    'Off loopback (--api-host) the API needs TLS (--api-tls-cert and --api-tls-key: it answers https) or --api-insecure (plain HTTP: tokens cross the network in clear).'
  ],
  options: [
    ['--listen <multiaddr>', 'an address to listen on; repeatable, and replaces the defaults'],
    ['--bootstrap <multiaddr>', 'a peer to join through, ending in /p2p/<peer-id>; repeatable'],
    ['--api-port <port>', 'the API and web page port; 0 picks a free one'],
    ['--api-host <addr>', 'the address the API listens on (default 127.0.0.1; 0.0.0.0 for every interface)'],
    ['--api-tls-cert <pem>', "the API's TLS certificate (PEM file): it answers https; with --api-tls-key"],
    ['--api-tls-key <pem>', "the API's TLS private key (PEM file)"],
    ['--api-insecure', 'allow plain HTTP off loopback (tokens cross the network in clear)'],
    ['--api-public-host <name>', 'a name clients reach the API by (DNS, a proxy), accepted in Host and Origin'],
    ['--meta <key=value>', 'metadata this member publishes about itself (role, zone…); repeatable'],
    [
      '--kind <name|module>',
      'a kind of agent this node runs: built in echo or counter, or a module (./kinds.mjs) whose default export maps kind names to definitions (or to functions of the node, { host, work }, giving one); repeatable (external is always there)'
    ],
    [
      '--heartbeat-interval <ms>',
      `how often the node publishes its agents' heartbeats (fleet status), ${MIN_FLEET_INTERVAL}-${MAX_FLEET_INTERVAL} ms; default ${DEFAULT_FLEET_INTERVAL}; members should agree on it`
    ],
    [
      '--keepalive-interval <ms>',
      `how often every connection is pinged, ${MIN_KEEPALIVE}-${MAX_KEEPALIVE} ms; default 300000; behind a proxy or NAT that drops idle connections, set it below that timeout (nginx: 60 s)`
    ]
  ],
  example: 'start --bootstrap /ip4/192.168.1.5/tcp/4101/p2p/12D3KooW…'
}

const ID_HELP: CommandHelp = {
  name: 'id',
  summary: "the running node's peer id and addresses",
  options: [JSON_OPTION],
  example: 'id --json'
}

const PEERS_HELP: CommandHelp = {
  name: 'peers',
  summary: 'the peers the running node is connected to',
  options: [JSON_OPTION],
  example: 'peers'
}

const DHT_HELP: GroupHelp = {
  name: 'dht',
  summary: 'values signed by their publisher, kept in the cluster DHT',
  commands: [
    {
      name: 'dht put',
      args: '<name> <value>',
      summary: 'publish a value signed by this node in the DHT',
      example: 'dht put status ready'
    },
    {
      name: 'dht get',
      args: '<peer-id> <name>',
      summary: 'read and verify a value another peer published',
      example: 'dht get 12D3KooW… status'
    }
  ]
}

const PUBSUB_HELP: GroupHelp = {
  name: 'pubsub',
  summary: 'gossipsub messages on topics',
  commands: [
    {
      name: 'pubsub pub',
      args: '<topic> <text>',
      summary: 'publish a message to the peers subscribed to <topic>',
      example: 'pubsub pub news "hello"'
    },
    {
      name: 'pubsub sub',
      args: '<topic>',
      summary: 'print messages on <topic> as they arrive (Ctrl-C stops)',
      example: 'pubsub sub news'
    }
  ]
}

/** Every command and group, in the order the global help lists them. */
export const HELP: Array<CommandHelp | GroupHelp> = [
  START_HELP,
  ID_HELP,
  PEERS_HELP,
  MEMBERS_HELP,
  LEAVE_HELP,
  DHT_HELP,
  PUBSUB_HELP,
  KEY_HELP,
  CERT_HELP,
  ACL_HELP,
  CLUSTER_HELP,
  AGENTS_HELP,
  STATE_HELP,
  WORK_HELP,
  FLEET_HELP,
  EVENTS_HELP,
  MCP_HELP
]

const GLOBAL_OPTIONS: Array<[string, string]> = [
  ['--data-dir <path>', `the node's data directory (default ${DEFAULT_DATA_DIR})`],
  ['--debug', 'print stack traces with errors'],
  ['--help, -h', 'this text']
]

const isGroup = (entry: CommandHelp | GroupHelp): entry is GroupHelp => 'commands' in entry

/** Lines of at most `max` characters, broken at spaces. */
function wrap(text: string, max: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > max) {
      lines.push(line)
      line = word
    } else line = line === '' ? word : `${line} ${word}`
  }
  return [...lines, line]
}

const WIDTH = 100

/** A left column (a command, a flag) and its explanation, wrapped to WIDTH. */
function row(left: string, right: string, indent = 30): string {
  const [first, ...more] = wrap(right, WIDTH - indent)
  const pad = ' '.repeat(indent)
  const head = left.length <= indent - 4 ? [`  ${left.padEnd(indent - 2)}${first}`] : [`  ${left}`, pad + first]
  return [...head, ...more.map(l => pad + l)].join('\n')
}

export function renderCommandHelp(c: CommandHelp): string {
  const lines = [`usage: cyberspace ${c.name}${c.args == null ? '' : ` ${c.args}`}`, '', ...wrap(c.summary, WIDTH)]
  for (const detail of c.details ?? []) lines.push(...wrap(detail, WIDTH))
  lines.push('', 'options:')
  for (const [flag, what] of [...(c.options ?? []), ...GLOBAL_OPTIONS]) lines.push(row(flag, what))
  lines.push('', 'example:', `  ${CLI} ${c.example}`)
  return lines.join('\n')
}

export function renderGroupHelp(g: GroupHelp): string {
  const lines = [`usage: cyberspace ${g.name} <command> [options]`, '', g.summary, '', 'commands:']
  for (const c of g.commands) {
    const words = c.name.slice(g.name.length + 1)
    lines.push(row(`${words}${c.args == null ? '' : ` ${c.args}`}`, c.summary))
  }
  if (g.details != null) lines.push('', ...g.details.flatMap(d => wrap(d, WIDTH)))
  lines.push('', `${CLI} ${g.name} <command> --help shows a command's options and an example.`)
  return lines.join('\n')
}

export function renderUsage(): string {
  const lines = [
    'usage: cyberspace <command> [options]',
    '',
    `Run it from this checkout as \`${CLI} <command>\` (or \`npm run cyberspace -- <command>\`).`,
    '',
    'commands:'
  ]
  for (const entry of HELP) {
    if (isGroup(entry)) for (const c of entry.commands) lines.push(row(c.name, c.summary))
    else lines.push(row(entry.name, entry.summary))
  }
  lines.push('', 'options:')
  for (const [flag, what] of GLOBAL_OPTIONS) lines.push(row(flag, what))
  lines.push('', `${CLI} <command> --help shows a command's usage, options and an example.`)
  return lines.join('\n')
}

/** The help for the words given (`cert`, `cert issue`, …): the deepest entry they name. */
export function helpFor(words: string[]): string {
  const entry = HELP.find(e => e.name === words[0])
  if (entry == null) return renderUsage()
  if (!isGroup(entry)) return renderCommandHelp(entry)
  const command = entry.commands.find(c => c.name === `${entry.name} ${words[1]}`)
  return command == null ? renderGroupHelp(entry) : renderCommandHelp(command)
}

const OPTIONS = {
  'data-dir': { type: 'string' },
  listen: { type: 'string', multiple: true },
  bootstrap: { type: 'string', multiple: true },
  'api-port': { type: 'string' },
  'api-host': { type: 'string' },
  'api-tls-cert': { type: 'string' },
  'api-tls-key': { type: 'string' },
  'api-insecure': { type: 'boolean' },
  'api-public-host': { type: 'string' },
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
  public: { type: 'boolean' },
  by: { type: 'string' },
  state: { type: 'string' },
  watch: { type: 'boolean' },
  meta: { type: 'string', multiple: true },
  skill: { type: 'string' },
  card: { type: 'string' },
  ttl: { type: 'string' },
  limit: { type: 'string' },
  cursor: { type: 'string' },
  kind: { type: 'string', multiple: true },
  'heartbeat-interval': { type: 'string' },
  'keepalive-interval': { type: 'string' },
  id: { type: 'string' },
  key: { type: 'string' },
  body: { type: 'string' },
  timeout: { type: 'string' },
  error: { type: 'string' },
  ...WORK_OPTIONS,
  debug: { type: 'boolean' },
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
  const debug = argv.includes('--debug')
  try {
    // its own options; its stdout is the MCP protocol's alone. Loaded here: only this command
    // needs the MCP SDK and zod, which take a few hundred ms to load
    if (argv[0] === 'mcp') {
      if (argv.includes('--help') || argv.includes('-h')) {
        out(renderCommandHelp(MCP_HELP))
        return 0
      }
      const { mcpCommand } = await import('./mcp/stdio.ts')
      return await mcpCommand(argv.slice(1))
    }
    let parsed
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
    } catch (e) {
      throw new UsageError(`${(e as Error).message} (see cyberspace --help)`)
    }
    const { values, positionals } = parsed
    const [command, ...rest] = positionals
    if (command === 'help') {
      out(helpFor(rest))
      return 0
    }
    if (values.help === true) {
      out(helpFor(positionals))
      return 0
    }
    if (command == null) {
      out(renderUsage())
      return 2
    }
    const entry = HELP.find(e => e.name === command)
    if (entry == null) throw new UsageError(`unknown command "${command}" (see cyberspace --help)`)
    if (isGroup(entry)) {
      // a bare group lists its commands; an unknown one is named
      if (rest.length === 0) {
        out(renderGroupHelp(entry))
        return 2
      }
      if (!entry.commands.some(c => c.name === `${command} ${rest[0]}`))
        throw new UsageError(`unknown command "${command} ${rest[0]}" (see cyberspace ${command} --help)`)
    }
    const dataDir = values['data-dir'] ?? DEFAULT_DATA_DIR
    switch (command) {
      case 'start':
        return await start(dataDir, values, rest, out, err)
      case 'id':
        noMore(rest, 'id')
        return await showId(dataDir, values.json === true, out)
      case 'peers':
        noMore(rest, 'peers')
        return await showPeers(dataDir, values.json === true, out)
      case 'members':
        return await membersCommand(dataDir, rest, values, out)
      case 'leave':
        return await leaveCommand(dataDir, rest, out)
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
      case 'agents':
        return await agentsCommand(dataDir, rest, values, out)
      case 'state':
        return await stateCommand(dataDir, rest, values, out)
      case 'work':
        return await workCommand(dataDir, rest, values, out)
      case 'fleet':
        return await fleetCommand(dataDir, rest, values, out)
      case 'events':
        return await eventsCommand(dataDir, rest, values, out)
      default:
        throw new UsageError(`unknown command "${command}" (see cyberspace --help)`)
    }
  } catch (e) {
    const { lines, code } = describeError(e)
    for (const line of lines) err(line)
    if (debug) err(debugText(e))
    return code
  }
}

/** The stack trace, and what the node said, for --debug. */
function debugText(e: unknown): string {
  const error = e as Error
  const remote =
    e instanceof ApiError ? `\n(the node answered HTTP ${e.status}, ${e.errorName ?? 'no error name'})` : ''
  return `${error.stack ?? String(e)}${remote}`
}

/** An error as the lines the CLI prints, and the exit code: 2 for bad usage, 1 for the rest. */
export function describeError(e: unknown): { lines: string[]; code: number } {
  const error = e instanceof Error ? e : new Error(String(e))
  if (error.name === 'UsageError' || error.name === 'InvalidMultiaddrError')
    return { lines: [`cyberspace: ${error.message}`], code: 2 }
  if (error instanceof ExplainedError)
    return { lines: [`cyberspace: ${plainMessage(error.message)}`, ...error.hints], code: 1 }
  const listen = listenFailure(error)
  if (listen != null) return { lines: [`cyberspace: ${listen}`], code: 1 }
  return { lines: [`cyberspace: ${plainMessage(error.message)}`], code: 1 }
}

/**
 * Failures to listen, as one line naming the port and the flag that changes it: libp2p's
 * UnsupportedListenAddressesError (its message lists each address and why), or the control API's
 * own listen error (EADDRINUSE with the port).
 */
function listenFailure(error: Error): string | undefined {
  if (error.name === 'UnsupportedListenAddressesError') {
    const failed = [...error.message.matchAll(/^\s+(\/\S+): (.*)$/gm)].map(m => ({ addr: m[1], why: m[2] }))
    if (failed.length === 0) return undefined
    const other = (addr: string): string => `--listen ${addr.replace(/\/(tcp|udp)\/\d+/, '/$1/<other>')}`
    const port = (addr: string): string => /\/(?:tcp|udp)\/(\d+)/.exec(addr)?.[1] ?? addr
    const inUse = failed.filter(f => f.why.includes('EADDRINUSE'))
    if (inUse.length === failed.length) {
      const ports = [...new Set(inUse.map(f => port(f.addr)))]
      const which =
        ports.length === 1 ? `port ${ports[0]} is in use` : `ports ${ports.join(' and ')} are in use (another node?)`
      return `${which}: pass ${inUse.map(f => other(f.addr)).join(' ')}`
    }
    return failed
      .map(({ addr, why }) => {
        if (why.includes('EADDRINUSE')) return `port ${port(addr)} is in use: pass ${other(addr)}`
        if (why.includes('EADDRNOTAVAIL'))
          return `${addr} is not an address of this machine: pass --listen with one of its addresses, or /ip4/0.0.0.0/…`
        if (why.includes('EACCES')) return `port ${port(addr)} needs privileges: pass ${other(addr)} above 1023`
        return `cannot listen on ${addr}: ${plainMessage(why)}`
      })
      .join('; ')
  }
  const { code, port } = error as Error & { code?: string; port?: number }
  if (code === 'EADDRINUSE' && port != null)
    return `control API port ${port} is in use: pass --api-port <other> (0 picks a free one)`
  if (code === 'EACCES' && port != null)
    return `control API port ${port} needs privileges: pass --api-port <other> above 1023 (0 picks a free one)`
  return undefined
}

function noMore(rest: string[], command: string): void {
  if (rest.length > 0)
    throw new UsageError(`${command}: unexpected argument "${rest[0]}" (see cyberspace ${command} --help)`)
}

async function start(
  dataDir: string,
  values: {
    listen?: string[]
    bootstrap?: string[]
    'api-port'?: string
    'api-host'?: string
    'api-tls-cert'?: string
    'api-tls-key'?: string
    'api-insecure'?: boolean
    'api-public-host'?: string
    meta?: string[]
    kind?: string[]
    'heartbeat-interval'?: string
    'keepalive-interval'?: string
  },
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
  const apiHost = values['api-host']
  const certFile = values['api-tls-cert']
  const keyFile = values['api-tls-key']
  if ((certFile == null) !== (keyFile == null))
    throw new UsageError('--api-tls-cert and --api-tls-key go together: pass both PEM files, or neither')
  const apiTls = certFile != null && keyFile != null ? { certFile, keyFile } : undefined
  const apiInsecure = values['api-insecure'] === true
  const apiPublicHost = values['api-public-host']
  try {
    checkApiBind({ host: apiHost, tls: apiTls, insecure: apiInsecure, publicHost: apiPublicHost })
  } catch (e) {
    throw new UsageError((e as Error).message)
  }

  const keepAliveInterval = msOption('keepalive-interval', values['keepalive-interval'], MIN_KEEPALIVE, MAX_KEEPALIVE)
  const heartbeat = msOption('heartbeat-interval', values['heartbeat-interval'], MIN_FLEET_INTERVAL, MAX_FLEET_INTERVAL)

  const meta = parseMeta(values.meta ?? [])
  // the kinds load before the node starts: a bad module fails the command, not the node later
  const { loadKinds } = await import('./kinds.ts')
  const kinds = await loadKinds(values.kind ?? [])

  // loaded here, not at the top: the other commands only talk to a running node and need none of the stack
  const { startNodeProcess, DEFAULT_PAGE_DIR } = await import('./platform.ts')
  let left = (): void => {}
  const leaving = new Promise<void>(resolve => {
    left = resolve
  })
  const running = await startNodeProcess({
    dataDir,
    listen,
    bootstrap,
    apiPort,
    apiHost,
    apiTls,
    apiInsecure,
    apiPublicHost,
    meta,
    ...(heartbeat !== undefined ? { workOptions: { fleet: { interval: heartbeat } } } : {}),
    keepAliveInterval,
    onLeave: () => left()
  })
  const { node, api } = running
  const peerId = node.peerId.toString()
  for (const [name, kind] of kinds) node.agents.define(name, kind({ host: peerId, work: node.work }))
  for (const warning of running.dataDir.warnings) err(`warning: ${warning}`)
  out(`cyberspace node ${peerId}`)
  out(`data directory  ${running.dataDir.path}${running.dataDir.createdKey ? ' (new identity)' : ''}`)
  out('listening on')
  for (const ma of node.multiaddrs()) out(`  ${ma.toString()}`)
  out(`control API     ${api.url} (token in ${running.dataDir.path}/${TOKEN_FILE})`)
  if (apiHost != null && !isLoopback(apiHost)) {
    const shown = apiPublicHost ?? (isIP(apiHost) === 6 ? `[${apiHost}]` : apiHost)
    out(`public API      ${api.tls ? 'https' : 'http'}://${shown}:${api.port}/api/ (OpenAPI at /api/openapi.json)`)
    if (!api.tls)
      err(`warning: the API answers plain HTTP on ${apiHost} (--api-insecure): tokens cross the network in clear`)
  }
  out(`agent kinds     ${node.agents.kinds().join(', ')}`)
  if (existsSync(join(DEFAULT_PAGE_DIR, 'index.html'))) out(`web page        ${api.url}/`)
  else out(`web page        not built: run npm run build:browser (npm start builds it), then open ${api.url}/`)
  for (const line of joinHint(
    node.multiaddrs().map(String),
    listen.map(String),
    running.dataDir.path === DEFAULT_DATA_DIR
  ))
    out(line)

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
    void leaving.then(() => {
      out('left the cluster: stopping')
      resolve()
    })
  })
  await running.stop()
  out('stopped')
  return 0
}

/** `--meta key=value` flags as the member's metadata, checked as the membership service will. */
function parseMeta(flags: string[]): Record<string, string> {
  const meta: Record<string, string> = {}
  for (const flag of flags) {
    const eq = flag.indexOf('=')
    if (eq <= 0) throw new UsageError(`invalid --meta "${flag}": expected key=value`)
    meta[flag.slice(0, eq)] = flag.slice(eq + 1)
  }
  checkMeta(meta, what => {
    throw new UsageError(`invalid --meta: ${what}`)
  })
  return meta
}

function describeRetry({ addr, failures, delay, error }: BootstrapRetry): string {
  return `bootstrap peer ${addr} unreachable (${failures} ${failures === 1 ? 'failure' : 'failures'}: ${error}); retrying in ${(Math.max(0, delay) / 1000).toFixed(1)}s`
}

const LOOPBACK = /^\/ip4\/127\.|^\/ip6\/::1\//

/** A whole number of ms given as `--<name>`, from `min` to `max`; undefined when not given. */
function msOption(name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text == null) return undefined
  const ms = Number(text)
  if (!/^\d+$/.test(text) || ms < min || ms > max)
    throw new UsageError(`invalid --${name} "${text}": expected ${min}-${max} ms`)
  return ms
}

/**
 * How another node joins this one: from another machine through a non-loopback TCP address, if
 * the node has one; otherwise says why it has none and how to join from this machine.
 */
export function joinHint(addrs: string[], listen: string[], defaultDataDir: boolean): string[] {
  const tcp = addrs.filter(a => /^\/ip[46]\/[^/]+\/tcp\/\d+\/p2p\/[^/]+$/.test(a))
  const lan = new Set(
    Object.values(networkInterfaces())
      .flat()
      .flatMap(i => (i != null && !i.internal ? [i.address] : []))
  )
  const remote = tcp.find(a => lan.has(a.split('/')[2])) ?? tcp.find(a => !LOOPBACK.test(a))
  if (remote != null)
    return [
      'to join this node from another machine, run there (in a checkout of this repository, after npm install):',
      `  npm start -- --bootstrap ${remote}`
    ]
  const local = tcp.find(a => LOOPBACK.test(a))
  if (local == null) return []
  const wildcard = listen.some(l => /^\/ip4\/0\.0\.0\.0\/|^\/ip6\/::\//.test(l))
  return [
    wildcard
      ? 'this machine has no network address besides loopback, so other machines cannot join this node'
      : 'this node listens only on loopback, so other machines cannot join it: to let them, start it with --listen /ip4/0.0.0.0/tcp/4101',
    `to join it from this machine, run (with another data directory${defaultDataDir ? '' : ' than this one'} and free ports):`,
    `  npm start -- --data-dir /tmp/node-b --api-port 0 --listen /ip4/127.0.0.1/tcp/0 --listen /ip4/127.0.0.1/tcp/0/ws --bootstrap ${local}`
  ]
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
  else if (peers.length === 0) out('# no peers connected')
  else for (const peer of peers) out(`${peer.peerId}  ${peer.direction.padEnd(8)}  ${peer.addrs.join(' ')}`)
  return 0
}

async function dht(dataDir: string, args: string[], out: Out): Promise<number> {
  const [verb, a, b, ...rest] = args
  noMore(rest, `dht ${verb}`)
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
  throw new UsageError(
    verb === 'put' ? 'usage: cyberspace dht put <name> <value>' : 'usage: cyberspace dht get <peer-id> <name>'
  )
}

async function pubsub(dataDir: string, args: string[], out: Out): Promise<number> {
  const [verb, topic, text, ...rest] = args
  noMore(rest, `pubsub ${verb}`)
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
  throw new UsageError(
    verb === 'pub' ? 'usage: cyberspace pubsub pub <topic> <text>' : 'usage: cyberspace pubsub sub <topic>'
  )
}
