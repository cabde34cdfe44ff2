#!/usr/bin/env node
// The `cyberspace` command. Exit codes: 0 done, 1 refused or failed, 2 bad command line or input.
import { main } from '../cli.ts'

// Output piped into a reader that stops early (`| head`) ends quietly: once stdout is closed,
// nothing more is written; a command that runs until stopped (start, watch, sub) stops as on
// SIGTERM, and any other exits 0.
let stdoutClosed = false
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err
  if (stdoutClosed) return
  stdoutClosed = true
  if (process.listenerCount('SIGTERM') > 0) process.emit('SIGTERM', 'SIGTERM')
  else process.exit(0)
})

const code = await main(process.argv.slice(2), line => {
  if (!stdoutClosed) process.stdout.write(line + '\n')
})
process.exit(code)
