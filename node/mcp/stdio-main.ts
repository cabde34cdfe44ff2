#!/usr/bin/env node
// `cyberspace mcp` run on its own (what `node/bin/cyberspace.ts mcp` runs once the CLI dispatches
// it): exit codes 0 done, 1 refused or failed, 2 bad command line. Nothing but MCP on stdout.
import { mcpCommand } from './stdio.ts'

let code: number
try {
  code = await mcpCommand(process.argv.slice(2))
} catch (e) {
  const error = e as Error
  process.stderr.write(`cyberspace: ${error.message}\n`)
  code = error.name === 'UsageError' ? 2 : 1
}
process.exit(code)
