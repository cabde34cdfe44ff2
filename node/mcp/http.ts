/**
 * The MCP server over Streamable HTTP at `/mcp` on the API's port, stateless: every POST gets a
 * server and a transport of its own (no session id, nothing kept between requests), and its tools
 * call the public API with the bearer token the request carried — so a tool call is the token's
 * agent's, exactly as the same call through the API would be. The API server has checked the Host
 * and Origin and resolved the token before the mount runs; the transport checks Host and Origin
 * again against the API's own names (DNS-rebinding protection, in depth).
 *
 * Answers are JSON (`enableJsonResponse`): no tool streams. GET (a server-to-client stream) and
 * DELETE (a session's end) answer 405: a stateless server has neither.
 *
 * @example
 * const mcp = mcpMount({ apiUrl: () => api.url })   // the API's URL, once it listens
 * const api = await startApiServer({ …, mounts: [mcp] })
 */
import { logger } from '@libp2p/logger'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { Client } from '../../src/api/client.ts'
import { McpBodyTooLargeError, McpNotFoundError } from './errors.ts'
import { cyberspaceMcpServer } from './server.ts'
import type { ApiCaller } from './server.ts'
import type { Caller } from '../api/agent-tokens.ts'
import type { Mount } from '../api/v1/handler.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'

const log = logger('cyberspace:mcp:http')

export const MCP_PATH = '/mcp'
/** Bytes of one request to /mcp: the API's body limit (64 KiB) and room for the JSON-RPC envelope. */
export const MAX_MCP_BODY_BYTES = 128 * 1024

export interface McpMountInit {
  /**
   * The node's public API, which the tools call (http://127.0.0.1:<port>); a function for a server
   * that learns its port when it listens (read at the first request).
   */
  apiUrl: string | (() => string)
  /**
   * Host headers accepted: pass the API server's own list when it accepts more names than its URL's
   * (default: the API URL's host, and for a loopback one both 127.0.0.1:<port> and localhost:<port>).
   */
  allowedHosts?: string[]
  /** The API client of a token (default: the TypeScript SDK's Client on apiUrl). */
  connect?: (token: string) => ApiCaller
}

export function mcpMount(init: McpMountInit): Mount {
  let resolved: { connect: (token: string) => ApiCaller; allowedHosts: string[]; allowedOrigins: string[] } | undefined
  const setup = (): NonNullable<typeof resolved> => {
    if (resolved != null) return resolved
    const base = new URL(typeof init.apiUrl === 'string' ? init.apiUrl : init.apiUrl())
    const allowedHosts = init.allowedHosts ?? hostsOf(base)
    resolved = {
      connect: init.connect ?? ((token: string) => new Client({ url: base.origin, token })),
      allowedHosts,
      allowedOrigins: allowedHosts.map(host => `${base.protocol}//${host}`)
    }
    return resolved
  }

  return {
    prefix: MCP_PATH,
    auth: 'agent',
    async handle(req: IncomingMessage, res: ServerResponse, url: URL, caller: Caller | undefined): Promise<void> {
      if (url.pathname !== MCP_PATH && url.pathname !== `${MCP_PATH}/`)
        throw new McpNotFoundError(`no such endpoint: ${url.pathname} (MCP is served at ${MCP_PATH})`)
      if (req.method !== 'POST') {
        // a stateless server has no stream to open (GET) and no session to end (DELETE)
        jsonRpcError(res, 405, -32000, `${req.method ?? ''} is not served: this MCP server is stateless, POST only`, {
          allow: 'POST'
        })
        return
      }
      const body = await readBody(req)
      let message: unknown
      try {
        message = JSON.parse(body.toString('utf8'))
      } catch {
        jsonRpcError(res, 400, -32700, 'Parse error: the body is not JSON')
        return
      }
      const { connect, allowedHosts, allowedOrigins } = setup()
      const token = bearerOf(req)
      const server = cyberspaceMcpServer({
        api: connect(token),
        agent: caller?.kind === 'agent' ? caller.agent : undefined
      })
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: undefined,
        enableJsonResponse: true,
        enableDnsRebindingProtection: true,
        allowedHosts,
        allowedOrigins
      })
      transport.onerror = (e: Error) => {
        log('%s', e.message)
      }
      res.once('close', () => {
        transport.close().catch(() => {})
        server.close().catch(() => {})
      })
      await server.connect(transport)
      await transport.handleRequest(req, res, message)
    }
  }
}

/** The API's host, and for a loopback API both loopback names (as the API's own Host check). */
function hostsOf(url: URL): string[] {
  const port = url.port === '' ? (url.protocol === 'https:' ? '443' : '80') : url.port
  if (url.hostname === '127.0.0.1' || url.hostname === 'localhost') return [`127.0.0.1:${port}`, `localhost:${port}`]
  return [url.host]
}

function bearerOf(req: IncomingMessage): string {
  const auth = req.headers.authorization ?? ''
  return auth.startsWith('Bearer ') ? auth.slice(7) : ''
}

/** The request's body, refused past MAX_MCP_BODY_BYTES (by its content-length, or as it arrives). */
async function readBody(req: IncomingMessage): Promise<Buffer> {
  const tooLarge = (): McpBodyTooLargeError =>
    new McpBodyTooLargeError(`request body larger than ${MAX_MCP_BODY_BYTES} bytes`)
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > MAX_MCP_BODY_BYTES) throw tooLarge()
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_MCP_BODY_BYTES) throw tooLarge()
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

/** A JSON-RPC error as MCP's transport answers one (id null: it answers no request). */
function jsonRpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {}
): void {
  const body = JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null })
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
    ...headers
  })
  res.end(body)
}
