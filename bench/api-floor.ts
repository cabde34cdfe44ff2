/**
 * The floor of the API benchmark (bench/api.bench.ts): what bare `node:http` and a bare MCP server
 * do on this machine, run as a process of its own as a node is, so the client loop measures both
 * the same way.
 *
 * `node bench/api-floor.ts` listens on 127.0.0.1 (a free port, printed as one JSON line
 * `{"port": N}` on stdout) and answers:
 * - `GET /hello`: `{"hello":"world"}` as JSON: the hello-world every request latency is set beside;
 * - `GET /stream`: server-sent events: every event `POST /emit` is given, as it comes (`id:` a
 *   counter); with `?replay=N`, first N stored events (the last `POST /emit`s, then made-up ones);
 * - `POST /emit`: broadcasts its JSON body to every open stream, answers `{"id": n}`;
 * - `POST /mcp`: a stateless MCP server (Streamable HTTP, one server and transport per request, as
 *   the node's `/mcp` is) with one tool, `hello`, that answers a line of text.
 *
 * `node bench/api-floor.ts --stdio` is that MCP server over stdio instead.
 */
import { createServer } from 'node:http'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** Largest body `POST /emit` and `POST /mcp` read. */
const MAX_BODY = 64 * 1024
/** Events kept for `?replay=`. */
const MAX_KEPT = 100_000

function mcpServer(): McpServer {
  const server = new McpServer({ name: 'floor', version: '1.0.0' })
  server.registerTool('hello', { description: 'Answers hello' }, async () => ({
    content: [{ type: 'text', text: JSON.stringify({ hello: 'world' }) }]
  }))
  return server
}

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY) throw new Error('body too large')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

async function serveHttp(): Promise<void> {
  const streams = new Set<ServerResponse>()
  const kept: string[] = []
  let next = 0
  const frame = (id: number, data: string): string => `id: ${id}\nevent: event\ndata: ${data}\n\n`

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const route = `${req.method} ${url.pathname}`
    const answer = async (): Promise<void> => {
      if (route === 'GET /hello') return json(res, 200, { hello: 'world' })
      if (route === 'POST /emit') {
        const data = JSON.stringify(JSON.parse(await readBody(req)))
        const id = ++next
        kept.push(data)
        if (kept.length > MAX_KEPT) kept.shift()
        const text = frame(id, data)
        for (const s of streams) s.write(text)
        return json(res, 200, { id })
      }
      if (route === 'GET /stream') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
        const replay = Math.min(MAX_KEPT, Number(url.searchParams.get('replay') ?? 0) || 0)
        // in chunks, as a journal replay writes them, waiting for the socket to drain between
        for (let i = 0; i < replay;) {
          let chunk = ''
          for (const end = Math.min(replay, i + 256); i < end; i++)
            chunk += frame(i + 1, kept[i] ?? JSON.stringify({ n: i, type: 'create', subject: `floor/i${i}` }))
          if (!res.write(chunk)) await new Promise(resolve => res.once('drain', resolve))
        }
        res.write(': replayed\n\n')
        streams.add(res)
        req.on('close', () => streams.delete(res))
        return
      }
      if (route === 'POST /mcp') {
        const body = JSON.parse(await readBody(req)) as unknown
        const mcp = mcpServer()
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined })
        res.on('close', () => {
          void transport.close()
          void mcp.close()
        })
        await mcp.connect(transport)
        await transport.handleRequest(req, res, body)
        return
      }
      json(res, 404, { error: 'not found' })
    }
    answer().catch((err: Error) => {
      if (!res.headersSent) json(res, 400, { error: err.message })
      else res.destroy()
    })
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address == null || typeof address === 'string') throw new Error('the floor server has no port')
  process.stdout.write(JSON.stringify({ port: address.port }) + '\n')
  process.on('SIGTERM', () => {
    for (const s of streams) s.destroy()
    server.close(() => process.exit(0))
    server.closeAllConnections()
  })
}

if (process.argv.includes('--stdio')) await mcpServer().connect(new StdioServerTransport())
else await serveHttp()
