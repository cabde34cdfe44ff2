/**
 * `cyberspace mcp`: the node's MCP server over stdio, the way MCP hosts (Claude Code, …) run a
 * server — they spawn it and speak JSON-RPC on its stdin and stdout. It is a client of a running
 * node's public HTTP API, with an agent's token: every tool call is that agent's, authorized by its
 * chain on the node. Nothing but the protocol goes to stdout; what it has to say goes to stderr.
 *
 * The node is found through the data directory's api.json (or `--url`), its certificate pinned when it
 * answers https, as the CLI pins it; the token comes from
 * `--token` or the environment's CYBERSPACE_TOKEN (which keeps it out of the process list). The
 * operator's token works too, but then each acting tool needs `as` (or `--agent` names one).
 *
 * @example
 * // claude mcp add cyberspace -e CYBERSPACE_TOKEN=… -- npx --no-install cyberspace mcp
 * process.exit(await mcpCommand(['--data-dir', '/home/me/.cyberspace']))
 */
import { parseArgs } from 'node:util'
import { logger } from '@libp2p/logger'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { Client } from '../../src/api/client.ts'
import { Principal } from '../../src/api/schema.ts'
import { pinnedFetch, readApiInfo } from '../api/client.ts'
import { DEFAULT_DATA_DIR } from '../data-dir.ts'
import { NodeNotRunningError, UsageError } from '../errors.ts'
import { McpAgentMismatchError } from './errors.ts'
import { cyberspaceMcpServer } from './server.ts'
import { TOKEN_ENV } from './help.ts'
import type { ApiInfo } from '../api/client.ts'

const log = logger('cyberspace:mcp')

/** Bytes of one JSON-RPC message on stdin, at most (the SDK's default is 10 MiB). */
export const MAX_STDIO_MESSAGE_BYTES = 1024 * 1024

/**
 * Runs `cyberspace mcp` with `argv` (the words after `mcp`): resolves to the exit code once the
 * host closes stdin (or SIGTERM/SIGINT). Bad usage throws UsageError; a node that does not answer
 * or refuses the token throws its error before anything is served.
 */
export async function mcpCommand(argv: string[]): Promise<number> {
  const { stdin, stdout, env } = process
  const err = (line: string): void => {
    process.stderr.write(line + '\n')
  }

  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        token: { type: 'string' },
        url: { type: 'string' },
        agent: { type: 'string' },
        'data-dir': { type: 'string' },
        debug: { type: 'boolean' }
      },
      allowPositionals: false,
      strict: true
    }))
  } catch (e) {
    throw new UsageError(`mcp: ${(e as Error).message} (see cyberspace mcp --help)`)
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
  // api.json's URL, and its certificate when it answers https: pinned, as the CLI's client pins it
  const { url, cert } =
    values.url != null ? { url: checkUrl(values.url), cert: undefined } : await apiOf(values['data-dir'])
  const pinned = cert != null ? pinnedFetch(cert, 'api.json holds') : undefined
  const api = new Client({ url, token, ...(pinned != null ? { fetch: pinned.fetch } : {}) })
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
    pinned?.agent.destroy()
  }
  return 0
}

/** The API of the node running on `dataDir` (its api.json), or NodeNotRunningError saying to pass --url. */
async function apiOf(dataDir = DEFAULT_DATA_DIR): Promise<ApiInfo> {
  try {
    return await readApiInfo(dataDir)
  } catch (e) {
    throw new NodeNotRunningError(`mcp: ${(e as Error).message}, or pass --url`)
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
