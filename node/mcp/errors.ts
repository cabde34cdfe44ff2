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

/** A request to `/mcp` larger than MAX_MCP_BODY_BYTES (413). */
export class McpBodyTooLargeError extends HttpError {
  static name = 'McpBodyTooLargeError'
  name = 'McpBodyTooLargeError'
  constructor(message: string) {
    super(413, message)
  }
}

/** A path under `/mcp` other than `/mcp` itself (404). */
export class McpNotFoundError extends HttpError {
  static name = 'McpNotFoundError'
  name = 'McpNotFoundError'
  constructor(message: string) {
    super(404, message)
  }
}
