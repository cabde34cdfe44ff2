/**
 * `cyberspace mcp --help`, apart from the command: the CLI lists it with every command's help, and
 * importing it must not load the MCP SDK and zod (stdio.ts), which only `cyberspace mcp` needs.
 * Nothing but types is imported here.
 *
 * @example
 * out(renderCommandHelp(MCP_HELP))
 */
import type { CommandHelp } from '../cli.ts'

/** The environment variable holding the token, so that it stays out of the process list. */
export const TOKEN_ENV = 'CYBERSPACE_TOKEN'

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
