#!/usr/bin/env node
// The `cyberspace` command. Exit codes: 0 done, 1 failed, 2 bad command line or input.
import { main } from '../cli.ts'

process.exit(await main(process.argv.slice(2)))
