/**
 * JSON-RPC 2.0 error answers, for the JSON-RPC servers mounted on the API's port (MCP at /mcp, A2A
 * under /a2a/jsonrpc): what they answer when the HTTP request is fine but the JSON-RPC message in it
 * is not, or a call fails before its handler answers it.
 *
 * @example
 * sendJsonRpcError(res, { code: PARSE_ERROR, message: 'Parse error: the body is not JSON' })
 * sendJsonRpcError(res, mapError(err), request.id)          // an error the SDK's transport maps
 */
import { send } from './http.ts'
import type { ServerResponse } from 'node:http'

/** JSON-RPC 2.0's own error codes. */
export const PARSE_ERROR = -32700
export const INVALID_REQUEST = -32600

/** A JSON-RPC error object. */
export interface JsonRpcError {
  code: number
  message: string
  data?: unknown
}

/**
 * Answers `error` as a JSON-RPC response to the request `id` (null when the request had none, or it
 * could not be read), with HTTP status `status`: 200 as JSON-RPC over HTTP answers, or what a
 * transport expects (MCP's Streamable HTTP answers 400 to a message it cannot read).
 */
export function sendJsonRpcError(
  res: ServerResponse,
  error: JsonRpcError,
  id: string | number | null = null,
  status = 200
): void {
  send(res, status, 'application/json', JSON.stringify({ jsonrpc: '2.0', id, error }))
}
