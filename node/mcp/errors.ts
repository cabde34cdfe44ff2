/** Named errors of the MCP server (`cyberspace mcp`, `/mcp`). Tests match on `.name`. */
import { HttpError } from '../api/http.ts'

/**
 * A tool that acts as an agent (send, inbox, reply) was called with neither `as` nor an agent the
 * session acts for: the token is the operator's and `cyberspace mcp` got no `--agent`.
 */
export class McpNoAgentError extends Error {
  static name = 'McpNoAgentError'
  name = 'McpNoAgentError'
}

/** `--agent` names another agent than the one the token is bound to. */
export class McpAgentMismatchError extends Error {
  static name = 'McpAgentMismatchError'
  name = 'McpAgentMismatchError'
}

/**
 * /mcp cannot call the API its tools act through: the API answers https and the mount was given no
 * certificate to trust it by (`mcpMount({ cert })`), so no tool could run (503).
 */
export class McpApiTlsError extends HttpError {
  static name = 'McpApiTlsError'
  name = 'McpApiTlsError'
  constructor(message: string) {
    super(503, message)
  }
}
