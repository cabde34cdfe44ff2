/**
 * `cyberspace mcp`: the node's MCP server over stdio, the way MCP hosts (Claude Code, …) run a
 * server — they spawn it and speak JSON-RPC on its stdin and stdout. It is a client of a running
 * node's public HTTP API, with an agent's token: every tool call is that agent's, authorized by its
 * chain on the node. Nothing but the protocol goes to stdout; what it has to say goes to stderr.
 *
 * The node is found through the data directory's api.json (or `--url`); the token comes from
 * `--token` or the environment's CYBERSPACE_TOKEN (which keeps it out of the process list). The
 * operator's token works too, but then each acting tool needs `as` (or `--agent` names one).
 *
 * @example
 * // claude mcp add cyberspace -e CYBERSPACE_TOKEN=… -- npx --no-install cyberspace mcp
 * process.exit(await mcpCommand(['--data-dir', '/home/me/.cyberspace']))
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { logger } from '@libp2p/logger'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { Client } from '../../src/api/client.ts'
import { Principal } from '../../src/api/schema.ts'
import { API_FILE, DEFAULT_DATA_DIR } from '../data-dir.ts'
import { NodeNotRunningError, UsageError } from '../errors.ts'
import { McpAgentMismatchError } from './errors.ts'
import { cyberspaceMcpServer } from './server.ts'
import type { ApiCaller } from './server.ts'
import type { CommandHelp } from '../cli.ts'
import type { Readable, Writable } from 'node:stream'

const log = logger('cyberspace:mcp')

/** The environment variable holding the token, so that it stays out of the process list. */
export const TOKEN_ENV = 'CYBERSPACE_TOKEN'
/** Bytes of one JSON-RPC message on stdin, at most (the SDK's default is 10 MiB). */
export const MAX_STDIO_MESSAGE_BYTES = 1024 * 1024

export const MCP_HELP: CommandHelp = {
  name: 'mcp',
  args: '[--token <token>] [--url <url>] [--agent <principal>]',
  summary: "serve MCP over stdio for an MCP host (Claude Code, …): its tools act as the token's agent",
  details: [
    `The host spawns this command and speaks MCP on its stdin and stdout; logs go to stderr. The token is an agent's (agents spawn external --id <id>, then agents token <principal>), from --token or ${TOKEN_ENV}; the node is the one running on --data-dir, or --url.`,
    'Tools: whoami, members, find_agents, send_message, request, read_inbox, reply, list_work, create_work, claim_work, progress_work, complete_work, fail_work, handoff_work, read_document, write_document, events_since. Resources: cyberspace://boards/{board}, cyberspace://agents/{principal}.',
    'The same server answers Streamable HTTP at /mcp on the API port, with the bearer token of each request.'
  ],
  options: [
    ['--token <token>', `the agent's bearer token (default: $${TOKEN_ENV}, better: argv is visible to other users)`],
    ['--url <url>', "the node's API (default: api.json of --data-dir); plain http only to this machine"],
    [
      '--agent <principal>',
      "with the operator's token, the hosted agent tools act as when they name none; with an agent's token, must be its agent"
    ]
  ],
  example: `mcp --data-dir ~/.cyberspace   # with ${TOKEN_ENV} set`
}

export interface McpCommandIo {
  stdin: Readable
  stdout: Writable
  /** One line for a person (stderr). */
  err: (line: string) => void
  env: Record<string, string | undefined>
  /** The API client of a URL and token (the TypeScript SDK's). */
  connect: (url: string, token: string) => ApiCaller
}

/**
 * Runs `cyberspace mcp` with `argv` (the words after `mcp`): resolves to the exit code once the
 * host closes stdin (or SIGTERM/SIGINT). Bad usage throws UsageError; a node that does not answer
 * or refuses the token throws its error before anything is served.
 */
export async function mcpCommand(argv: string[], io: Partial<McpCommandIo> = {}): Promise<number> {
  const stdin = io.stdin ?? process.stdin
  const stdout = io.stdout ?? process.stdout
  const err =
    io.err ??
    ((line: string) => {
      process.stderr.write(line + '\n')
    })
  const env = io.env ?? process.env
  const connect = io.connect ?? ((url: string, token: string) => new Client({ url, token }))

  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        token: { type: 'string' },
        url: { type: 'string' },
        agent: { type: 'string' },
        'data-dir': { type: 'string' },
        debug: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      },
      allowPositionals: false,
      strict: true
    }))
  } catch (e) {
    throw new UsageError(`mcp: ${(e as Error).message} (see cyberspace mcp --help)`)
  }
  if (values.help === true) {
    // imported here: cli.ts imports this module for its table of commands
    const { renderCommandHelp } = await import('../cli.ts')
    stdout.write(renderCommandHelp(MCP_HELP) + '\n')
    return 0
  }
  if (values.token != null)
    err(
      `cyberspace mcp: warning: --token shows the token to every user of this machine (ps, /proc); set ${TOKEN_ENV} instead`
    )
  const token = values.token ?? env[TOKEN_ENV]
  if (token == null || token === '')
    throw new UsageError(
      `mcp: no token: set ${TOKEN_ENV} (or pass --token) to an agent's token — cyberspace agents spawn external --id <id>, then cyberspace agents token <principal>`
    )
  if (values.agent != null && !Principal.safeParse(values.agent).success)
    throw new UsageError(`mcp: --agent ${values.agent} is not a principal (z6Mk…, as agents list prints)`)
  const url = checkUrl(values.url ?? (await apiUrlOf(values['data-dir'] ?? DEFAULT_DATA_DIR)))

  const api = connect(url, token)
  const who = await api.call('whoami', { signal: AbortSignal.timeout(30_000) })
  let agent: string | undefined
  if (who.caller === 'agent') {
    if (values.agent != null && values.agent !== who.principal)
      throw new McpAgentMismatchError(
        `mcp: the token is agent ${who.principal}'s, not ${values.agent}'s: leave out --agent, or use ${values.agent}'s own token`
      )
    agent = who.principal
  } else {
    agent = values.agent
  }

  const server = cyberspaceMcpServer({ api, agent })
  const transport = new StdioServerTransport(stdin, stdout, { maxBufferSize: MAX_STDIO_MESSAGE_BYTES })
  transport.onerror = (e: Error) => {
    log.error('stdio: %e', e)
  }
  const closed = new Promise<void>(resolve => {
    server.server.onclose = resolve
  })
  const stop = (): void => {
    server.close().catch((e: unknown) => {
      log.error('closing: %e', e)
    })
  }
  stdin.once('end', stop)
  stdin.once('close', stop)
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  try {
    await server.connect(transport)
    err(
      agent != null
        ? `cyberspace mcp: serving agent ${agent} on stdio, through ${url}`
        : `cyberspace mcp: serving the node's operator on stdio, through ${url}: each acting tool needs \`as\``
    )
    await closed
  } finally {
    stdin.off('end', stop)
    stdin.off('close', stop)
    process.off('SIGTERM', stop)
    process.off('SIGINT', stop)
  }
  return 0
}

/** The API's URL from the data directory's api.json (written by the running node). */
async function apiUrlOf(dataDir: string): Promise<string> {
  try {
    const info = JSON.parse(await readFile(join(dataDir, API_FILE), 'utf8')) as { url?: unknown }
    if (typeof info.url !== 'string') throw new Error('api.json names no url')
    return info.url
  } catch (e) {
    throw new NodeNotRunningError(
      `mcp: no running node found for data directory ${dataDir} (${(e as Error).message}): start one (cyberspace start --data-dir ${dataDir}), or pass --url`
    )
  }
}

/** A URL the token may go to: https anywhere, plain http only to this machine. */
function checkUrl(text: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new UsageError(`mcp: --url ${text} is not a URL (e.g. http://127.0.0.1:4100)`)
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)
  if (url.protocol === 'https:' || (url.protocol === 'http:' && loopback)) return url.origin
  throw new UsageError(
    `mcp: --url ${text}: the token goes over plain http only to this machine (127.0.0.1); use https://… for another`
  )
}
