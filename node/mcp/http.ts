/**
 * The MCP server over Streamable HTTP at `/mcp` on the API's port, stateless: every POST gets a
 * server and a transport of its own (no session id, nothing kept between requests), and its tools
 * call the public API with the bearer token the request carried — so a tool call is the token's
 * agent's, exactly as the same call through the API would be. The API server has checked the Host
 * and Origin (DNS-rebinding protection: the names and addresses it answers as, one list for every
 * request on the port, so every name that reaches its routes reaches /mcp) and resolved the token
 * before the mount runs.
 *
 * Answers are JSON (`enableJsonResponse`): no tool streams. GET (a server-to-client stream) and
 * DELETE (a session's end) answer 405: a stateless server has neither. What is wrong with the HTTP
 * request (path, method, size) is answered as the API answers it, a problem; what is wrong with the
 * JSON-RPC inside, as MCP clients expect it, a JSON-RPC error. A batch (a JSON array) is refused
 * (-32600): each of its calls would be an API request of its own, run at once.
 *
 * The tools reach the API over the network like any client: on an https API the mount needs the
 * API's certificate (`cert`), which its client trusts and pins (as the CLI's client pins api.json's);
 * without it every /mcp request is refused (McpApiTlsError, 503) saying so.
 *
 * @example
 * const api = await startApiServer({ …, mounts: ({ url }) => [mcpMount({ apiUrl: url })] })
 * mounts: ({ url }) => [mcpMount({ apiUrl: url, cert: tls.cert })]   // an https API: its certificate
 */
import { logger } from '@libp2p/logger'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { Client } from '../../src/api/client.ts'
import { pinnedFetch } from '../api/client.ts'
import { bearerToken, MethodNotAllowedError, readBody, RouteNotFoundError } from '../api/http.ts'
import { INVALID_REQUEST, PARSE_ERROR, sendJsonRpcError } from '../api/jsonrpc.ts'
import { McpApiTlsError } from './errors.ts'
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
  /** The node's public API, which the tools call (http://127.0.0.1:<port>, or https://…). */
  apiUrl: string
  /**
   * The API's certificate (PEM) when apiUrl is https: the tools' client trusts it as an anchor and
   * talks only to a server showing exactly it (pinned by its SHA-256 fingerprint).
   */
  cert?: string | Buffer
}

export function mcpMount(init: McpMountInit): Mount {
  const url = new URL(init.apiUrl).origin
  const https = url.startsWith('https:')
  const pinned = https && init.cert != null ? pinnedFetch(init.cert, 'the MCP mount was given') : undefined
  /** The tools' API client, acting with `token`. */
  const connect = (token: string): ApiCaller => {
    if (https && pinned == null)
      throw new McpApiTlsError(
        `/mcp cannot reach the API its tools act through: ${url} answers https, and the MCP mount was given no certificate to trust it by (mcpMount({ cert })); use cyberspace mcp on stdio meanwhile`
      )
    return new Client({ url, token, ...(pinned != null ? { fetch: pinned.fetch } : {}) })
  }

  return {
    prefix: MCP_PATH,
    auth: 'agent',
    async close() {
      pinned?.agent.destroy()
    },
    async handle(req: IncomingMessage, res: ServerResponse, url: URL, caller: Caller | undefined): Promise<void> {
      if (url.pathname !== MCP_PATH && url.pathname !== `${MCP_PATH}/`)
        throw new RouteNotFoundError(`no such endpoint: ${url.pathname} (MCP is served at ${MCP_PATH})`)
      // a stateless server has no stream to open (GET) and no session to end (DELETE)
      if (req.method !== 'POST')
        throw new MethodNotAllowedError(`${req.method ?? ''} ${MCP_PATH}: this MCP server is stateless, POST only`, [
          'POST'
        ])
      const body = await readBody(req, MAX_MCP_BODY_BYTES, 'request body')
      let message: unknown
      try {
        message = JSON.parse(body.toString('utf8'))
      } catch {
        sendJsonRpcError(res, { code: PARSE_ERROR, message: 'Parse error: the body is not JSON' }, null, 400)
        return
      }
      // each call of a batch would be an API request of its own, all at once: one request per POST
      if (Array.isArray(message)) {
        sendJsonRpcError(
          res,
          {
            code: INVALID_REQUEST,
            message: 'Invalid Request: batches are not served; send one JSON-RPC message per POST'
          },
          null,
          400
        )
        return
      }
      const token = bearerToken(req)
      const server = cyberspaceMcpServer({
        api: connect(token),
        agent: caller?.kind === 'agent' ? caller.agent : undefined
      })
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: undefined,
        enableJsonResponse: true
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
