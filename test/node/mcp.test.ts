/**
 * The MCP server against a real node process: the SDK's own MCP client over stdio, spawning
 * `cyberspace mcp` as an MCP host does, and over Streamable HTTP at /mcp. It lists the tools, acts
 * as the token's agent (who am I, a work item created, claimed and completed, a message read from
 * the inbox and confirmed, a request answered), and each bad case gets a clear answer while the
 * server keeps serving: arguments that fail the schema, a call the node's authority refuses, a
 * revoked token, no token, a foreign Host, a body too large.
 */
import { strict as assert } from 'node:assert'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { request } from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { Client } from '../../src/api/client.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { apiClient } from '../../node/api/client.ts'
import { startApiServer } from '../../node/api/server.ts'
import { TOKEN_FILE } from '../../node/data-dir.ts'
import { MAX_MCP_BODY_BYTES, mcpMount } from '../../node/mcp/http.ts'
import { cyberspaceMcpServer, MAX_TOOL_INPUT_ELEMENTS, TOOLS } from '../../node/mcp/server.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { spawnNode, stopNodes, waitUntil } from '../helpers/processes.ts'
import { grant, key } from '../spki/fixtures.ts'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import type { ApiClient } from '../../node/api/client.ts'
import type { ApiServer } from '../../node/api/server.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { NodeProcess } from '../helpers/processes.ts'

const CYBERSPACE = fileURLToPath(new URL('../../node/bin/cyberspace.ts', import.meta.url))
const BOARD = 'mcp'
/** A board no agent here has a grant for. */
const CLOSED_BOARD = 'closed'
const TOOL_NAMES = [
  'whoami',
  'members',
  'find_agents',
  'send_message',
  'request',
  'read_inbox',
  'reply',
  'list_work',
  'create_work',
  'claim_work',
  'progress_work',
  'complete_work',
  'fail_work',
  'handoff_work',
  'read_document',
  'write_document',
  'events_since'
]

interface Agent {
  principal: PrincipalId
  token: string
  api: Client
}

/** The text of a tool result's first content block. */
const textOf = (result: CallToolResult): string => {
  const first = result.content[0]
  return first?.type === 'text' ? first.text : ''
}

/** Calls `name` and fails unless it succeeded; answers its structured content. */
async function ok(client: McpClient, name: string, args: Record<string, unknown> = {}): Promise<any> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult
  assert.notEqual(result.isError, true, `${name}: ${textOf(result)}`)
  assert.ok(result.structuredContent != null, `${name} answered no structured content`)
  assert.deepEqual(JSON.parse(textOf(result)), result.structuredContent, `${name}: the text is the JSON answer`)
  return result.structuredContent
}

/** Calls `name` and fails unless it answered a tool error matching `text`; answers the error text. */
async function refused(client: McpClient, name: string, args: Record<string, unknown>, text: RegExp): Promise<string> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult
  assert.equal(result.isError, true, `${name} should have failed: ${textOf(result)}`)
  assert.match(textOf(result), text)
  return textOf(result)
}

/** What every part of the test needs on a node's API: two external agents, a board they may work, one they may not. */
interface Fixture {
  apiUrl: string
  operatorToken: string
  operator: Client
  coder: Agent
  peer: Agent
}

async function fixture(apiUrl: string, operatorToken: string, v0: ApiClient): Promise<Fixture> {
  const operator = new Client({ url: apiUrl, token: operatorToken })
  const attach = async (id: string): Promise<Agent> => {
    const attached = await operator.call('attachAgent', { body: { kind: 'external', id } })
    assert.ok(attached.token != null, 'attaching an external agent mints its token')
    return {
      principal: attached.principal as PrincipalId,
      token: attached.token,
      api: new Client({ url: apiUrl, token: attached.token })
    }
  }
  const root = await key()
  await v0.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
  const coder = await attach('coder')
  const peer = await attach('peer')
  for (const agent of [coder, peer]) {
    for (const tagText of [`(cyberspace (work ${BOARD}))`, '(cyberspace (mailbox (send)))']) {
      const cert = await grant(root, { kind: 'key', principal: agent.principal }, tagText, { propagate: false })
      await v0.post('spki/import', { sexp: toAdvanced(signedCertToSexp(cert)) })
    }
  }
  await operator.call('openBoard', { body: { name: BOARD } })
  await operator.call('openBoard', { body: { name: CLOSED_BOARD } })
  return { apiUrl, operatorToken, operator, coder, peer }
}

describe('MCP server: cyberspace mcp over stdio, against a node process', function () {
  this.timeout(180_000)
  let node: NodeProcess
  let apiUrl: string
  let operator: Client
  let operatorToken: string
  let coder: Agent
  let peer: Agent
  /** The session most tests use: coder's token. */
  let mcp: McpClient
  let stderr: () => string
  const sessions: McpClient[] = []

  /** An MCP client over stdio: spawns `cyberspace mcp` with `token` (as an MCP host does). */
  async function stdioSession(
    token: string,
    extra: string[] = []
  ): Promise<{ client: McpClient; stderr: () => string }> {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CYBERSPACE, 'mcp', '--url', apiUrl, ...extra],
      env: { ...(process.env as Record<string, string>), CYBERSPACE_TOKEN: token },
      stderr: 'pipe'
    })
    let stderr = ''
    transport.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const client = new McpClient({ name: 'mcp-test', version: '1.0.0' })
    await client.connect(transport, { timeout: 30_000 })
    sessions.push(client)
    return { client, stderr: () => stderr }
  }

  before(async () => {
    node = await spawnNode()
    const url = new URL(node.api.url).origin
    const token = (await readFile(join(node.dataDir, TOKEN_FILE), 'utf8')).trim()
    ;({ apiUrl, operatorToken, operator, coder, peer } = await fixture(url, token, node.api))
    ;({ client: mcp, stderr } = await stdioSession(coder.token))
  })

  after(async () => {
    await Promise.all(sessions.map(async s => await s.close().catch(() => {})))
    await stopNodes([node])
  })

  it('lists every tool with its input and output schema, and the resource templates', async () => {
    const { tools } = await mcp.listTools()
    assert.deepEqual(
      tools.map(t => t.name),
      TOOL_NAMES
    )
    assert.equal(TOOLS.length, TOOL_NAMES.length)
    for (const t of tools) {
      assert.equal(t.inputSchema.type, 'object', t.name)
      assert.equal(t.outputSchema?.type, 'object', t.name)
      assert.ok((t.description ?? '').length > 20, `${t.name} has a description`)
    }
    const complete = tools.find(t => t.name === 'complete_work')
    assert.deepEqual(complete?.inputSchema.required, ['ref'], 'complete_work needs only the ref')
    const { resourceTemplates } = await mcp.listResourceTemplates()
    assert.deepEqual(resourceTemplates.map(t => t.uriTemplate).sort(), [
      'cyberspace://agents/{principal}',
      'cyberspace://boards/{board}'
    ])
    assert.match(stderr(), new RegExp(`serving agent ${coder.principal} on stdio`))
  })

  it("whoami answers the token's agent", async () => {
    const who = await ok(mcp, 'whoami')
    assert.equal(who.caller, 'agent')
    assert.equal(who.principal, coder.principal)
  })

  it('creates, claims, progresses and completes a work item as the agent', async () => {
    const created = await ok(mcp, 'create_work', { board: BOARD, id: 't1', title: 'write the parser' })
    assert.equal(created.outcome.accepted, true)
    assert.equal(created.item.ref, `${BOARD}:t1`)
    assert.equal(created.item.createdBy, coder.principal)
    const listed = await ok(mcp, 'list_work', { board: BOARD, ready: 'true' })
    assert.ok(
      listed.items.some((i: { ref: string }) => i.ref === `${BOARD}:t1`),
      'the ready item is listed'
    )
    const claimed = await ok(mcp, 'claim_work', { ref: `${BOARD}:t1` })
    assert.equal(claimed.item.status, 'working')
    assert.equal(claimed.item.assignee, coder.principal)
    await ok(mcp, 'progress_work', { ref: `${BOARD}:t1`, percent: 50, message: 'half' })
    const done = await ok(mcp, 'complete_work', { ref: `${BOARD}:t1`, result: { lines: 120 } })
    assert.equal(done.item.status, 'completed')
    // the node says the same, to another reader
    const item = await operator.call('getWorknode', { params: { id: `${BOARD}:t1` } })
    assert.equal(item.status, 'completed')
    assert.deepEqual(item.result, { lines: 120 })
    assert.equal(item.assignee, coder.principal)
    // events reach readers once settled (the journal's settle delay after their HLC time)
    await waitUntil(
      "the item's events are seen",
      async () => {
        const events = await ok(mcp, 'events_since', { limit: 100, wait: 2000 })
        return events.events.some((e: { subject: string }) => e.subject.includes('t1'))
      },
      20_000,
      100
    )
  })

  it('reads a message another agent sent from the inbox, and its reply confirms it to the sender', async () => {
    const sent = peer.api.call('send', {
      params: { id: peer.principal },
      body: { to: coder.principal, type: 'note', body: { hello: 'coder' }, timeout: 30_000 }
    })
    const inbox = await ok(mcp, 'read_inbox', { wait: 20_000 })
    const message = inbox.messages.find((m: { type: string }) => m.type === 'note')
    assert.ok(message != null, `a note in ${JSON.stringify(inbox)}`)
    assert.equal(message.from, peer.principal)
    assert.deepEqual(message.body, { hello: 'coder' })
    await ok(mcp, 'reply', { message: message.id })
    const answer = await sent
    assert.equal(answer.id, message.id)
  })

  it("request waits for the recipient's answer", async () => {
    const answered = (async () => {
      const inbox = await peer.api.call('inbox', { params: { id: peer.principal }, query: { wait: 20_000 } })
      const ask = inbox.messages.find(m => m.type === 'ask')
      assert.ok(ask != null, 'the request reached the peer')
      await peer.api.call('reply', { params: { id: peer.principal }, body: { message: ask.id, body: { yes: true } } })
    })()
    const answer = await ok(mcp, 'request', { to: peer.principal, type: 'ask', body: 'ready?', timeout: 20_000 })
    await answered
    assert.deepEqual(answer.response, { yes: true })
  })

  it('refuses arguments that fail the schema, naming the field, and keeps serving', async () => {
    await refused(mcp, 'complete_work', { ref: 'not a ref' }, /Input validation error.*ref/s)
    await refused(mcp, 'progress_work', { ref: `${BOARD}:t1`, percent: 101 }, /Input validation error.*percent/s)
    await refused(mcp, 'create_work', { board: BOARD }, /Input validation error.*title/s)
    await refused(mcp, 'no_such_tool', {}, /no_such_tool not found/)
    const huge = { op: 'set', value: new Array(MAX_TOOL_INPUT_ELEMENTS + 1).fill(0) }
    await refused(mcp, 'write_document', { name: 'notes', update: huge }, /more than the maximum of 10000 elements/)
    assert.equal((await ok(mcp, 'whoami')).principal, coder.principal)
  })

  it("a call the node refuses is a tool error with the problem's name and detail", async () => {
    // no chain grants coder the closed board
    await refused(
      mcp,
      'create_work',
      { board: CLOSED_BOARD, id: 'x1', title: 'nope' },
      /^WorkUnauthorizedError \(HTTP 403\): .*may not create x1 on board/
    )
    const page = await operator.call('listWorknodes', { query: { board: CLOSED_BOARD } })
    assert.deepEqual(page.items, [], 'nothing was created')
    // an agent's token acts only as its agent
    await refused(mcp, 'claim_work', { ref: `${BOARD}:t1`, as: peer.principal }, /^AgentTokenScopeError \(HTTP 403\)/)
    await refused(mcp, 'read_inbox', { as: peer.principal }, /^AgentTokenScopeError \(HTTP 403\)/)
    // a task it does not hold
    await ok(mcp, 'create_work', { board: BOARD, id: 't2', title: 'review' })
    await peer.api.call('claimTask', { params: { id: `${BOARD}:t2` }, body: {} })
    await refused(mcp, 'complete_work', { ref: `${BOARD}:t2` }, /^NotAssigneeError \(HTTP 409\): .*only the assignee/)
    const t2 = await operator.call('getWorknode', { params: { id: `${BOARD}:t2` } })
    assert.equal(t2.assignee, peer.principal, "the task stays the peer's")
    assert.equal(t2.status, 'working')
  })

  it('a revoked token: each tool call answers the 401, while other sessions go on', async () => {
    const minted = await operator.call('mintToken', { params: { id: coder.principal } })
    const { client } = await stdioSession(minted.token)
    assert.equal((await ok(client, 'whoami')).principal, coder.principal)
    await operator.call('revokeToken', { params: { tokenId: minted.id } })
    await refused(client, 'whoami', {}, /^ApiTokenError \(HTTP 401\)/)
    await refused(client, 'list_work', { board: BOARD }, /^ApiTokenError \(HTTP 401\)/)
    assert.equal((await ok(mcp, 'whoami')).principal, coder.principal, 'the first token still works')
  })

  it("the operator's token with --agent acts as that agent; without, acting tools ask for `as`", async () => {
    const { client: withAgent } = await stdioSession(operatorToken, ['--agent', peer.principal])
    const created = await ok(withAgent, 'create_work', { board: BOARD, id: 't3', title: 'by the peer' })
    assert.equal(created.item.createdBy, peer.principal)
    const { client: bare } = await stdioSession(operatorToken)
    await refused(bare, 'read_inbox', {}, /^McpNoAgentError: .*pass `as`/)
    // the API names the field in its detail: the tool error says it once
    const missing = await refused(
      bare,
      'create_work',
      { board: BOARD, id: 't4', title: 'by nobody' },
      /^InvalidRequestError \(HTTP 400\): .*body\.as/
    )
    assert.equal(missing.split('body.as').length, 2, missing)
    const inbox = await ok(bare, 'read_inbox', { as: peer.principal })
    assert.equal(inbox.agent, peer.principal)
  })

  it('reads a board as a resource, and refuses a malformed board name', async () => {
    await ok(mcp, 'create_work', { board: BOARD, id: 'r1', title: 'seen as a resource' })
    const { resources } = await mcp.listResources()
    assert.ok(
      resources.some(r => r.uri === `cyberspace://boards/${BOARD}`),
      JSON.stringify(resources)
    )
    const read = await mcp.readResource({ uri: `cyberspace://boards/${BOARD}` })
    const content = read.contents[0] as { text: string; mimeType: string }
    assert.equal(content.mimeType, 'application/json')
    const board = JSON.parse(content.text) as { board: string; items: Array<{ ref: string }> }
    assert.equal(board.board, BOARD)
    assert.ok(board.items.some(i => i.ref === `${BOARD}:r1`))
    await assert.rejects(mcp.readResource({ uri: 'cyberspace://boards/Not_A_Board!' }), /board/)
  })

  it('the node process serves the same server at /mcp on its API port', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(`${apiUrl}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${coder.token}` } }
    })
    const client = new McpClient({ name: 'mcp-process-http', version: '1.0.0' })
    await client.connect(transport, { timeout: 30_000 })
    sessions.push(client)
    assert.equal((await ok(client, 'whoami')).principal, coder.principal)
    const page = await ok(client, 'list_work', { board: BOARD, limit: 500 })
    assert.ok(page.items.some((i: { ref: string }) => i.ref === `${BOARD}:t1`))
  })

  it("refuses to start without a token (exit 2), with a wrong one or another agent's --agent (exit 1); stdout stays empty", async () => {
    const env = { ...process.env }
    delete env.CYBERSPACE_TOKEN
    const run = async (
      args: string[],
      token?: string
    ): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      await new Promise(resolve => {
        const proc = spawn(process.execPath, [CYBERSPACE, 'mcp', '--url', apiUrl, ...args], {
          env: token == null ? env : { ...env, CYBERSPACE_TOKEN: token },
          stdio: ['pipe', 'pipe', 'pipe']
        })
        let stdout = ''
        let stderr = ''
        proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
        proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
        const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000)
        proc.once('close', (code: number | null) => {
          clearTimeout(timer)
          resolve({ code, stdout, stderr })
        })
      })
    const none = await run([])
    assert.equal(none.code, 2, none.stderr)
    assert.match(none.stderr, /^cyberspace: mcp: no token: set CYBERSPACE_TOKEN/)
    const wrong = await run([], 'A'.repeat(43))
    assert.equal(wrong.code, 1, wrong.stderr)
    assert.match(wrong.stderr, /^cyberspace: wrong or revoked token/)
    const mismatch = await run(['--agent', peer.principal], coder.token)
    assert.equal(mismatch.code, 1, mismatch.stderr)
    assert.match(mismatch.stderr, /the token is agent .*'s, not/)
    const plain = await run(['--url', 'http://192.0.2.1:4100'], coder.token)
    assert.equal(plain.code, 2, plain.stderr)
    assert.match(plain.stderr, /plain http only to this machine/)
    for (const r of [none, wrong, mismatch, plain]) assert.equal(r.stdout, '', 'nothing but MCP on stdout')
  })
})

describe('MCP server: /mcp over Streamable HTTP, mounted on the API server', function () {
  this.timeout(120_000)
  const TOKEN = 'operator-t0ken-for-mcp'
  let node: CyberspaceNode
  let api: ApiServer
  let mcpUrl: string
  let f: Fixture
  const sessions: McpClient[] = []

  /** An MCP client over Streamable HTTP with `token` as its bearer (the scheme's name as `scheme` spells it). */
  async function httpSession(token: string, scheme = 'Bearer'): Promise<McpClient> {
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
      requestInit: { headers: { authorization: `${scheme} ${token}` } }
    })
    const client = new McpClient({ name: 'mcp-http-test', version: '1.0.0' })
    await client.connect(transport, { timeout: 30_000 })
    sessions.push(client)
    return client
  }

  /** One raw request to /mcp, for what an MCP client would not send. */
  async function raw(
    method: string,
    body: string | Buffer | undefined,
    headers: Record<string, string> = {},
    path = '/mcp'
  ): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
    const url = new URL(mcpUrl)
    return await new Promise((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path,
          method,
          headers: {
            authorization: `Bearer ${f.peer.token}`,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            ...headers
          }
        },
        res => {
          let text = ''
          res.on('data', (d: Buffer) => (text += d.toString()))
          res.on('end', () => {
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text })
          })
        }
      )
      req.on('error', reject)
      req.setTimeout(30_000, () => req.destroy(new Error('timed out')))
      req.end(body)
    })
  }

  before(async () => {
    node = await memoryNode()
    api = await startApiServer({
      node,
      token: TOKEN,
      port: 0,
      pageDir: '/nonexistent',
      mounts: ({ url }) => [mcpMount({ apiUrl: url })]
    })
    mcpUrl = `${api.url}/mcp`
    f = await fixture(api.url, TOKEN, apiClient(api.url, TOKEN))
  })

  after(async () => {
    await Promise.all(sessions.map(async s => await s.close().catch(() => {})))
    await api.close()
    await node.stop()
  })

  it("serves the same tools, each call as the bearer token's agent", async () => {
    const mcp = await httpSession(f.peer.token)
    const { tools } = await mcp.listTools()
    assert.deepEqual(
      tools.map(t => t.name),
      TOOL_NAMES
    )
    assert.equal((await ok(mcp, 'whoami')).principal, f.peer.principal)
    const created = await ok(mcp, 'create_work', { board: BOARD, id: 'h1', title: 'over http' })
    assert.equal(created.item.createdBy, f.peer.principal)
    await ok(mcp, 'claim_work', { ref: `${BOARD}:h1` })
    const done = await ok(mcp, 'complete_work', { ref: `${BOARD}:h1`, result: 'ok' })
    assert.equal(done.item.status, 'completed')
    assert.equal(done.item.assignee, f.peer.principal)
    const item = await f.operator.call('getWorknode', { params: { id: `${BOARD}:h1` } })
    assert.equal(item.status, 'completed')
    await refused(mcp, 'fail_work', { ref: `${BOARD}:h1` }, /Input validation error.*error/s)
    // the scheme's name in any case, as the API server takes it: the tools act with the same token
    const lower = await httpSession(f.peer.token, 'bearer')
    assert.equal((await ok(lower, 'whoami')).principal, f.peer.principal)
  })

  it("reads the inbox of the token's agent, and another agent's only with the operator's token and `as`", async () => {
    const sent = f.coder.api.call('send', {
      params: { id: f.coder.principal },
      body: { to: f.peer.principal, type: 'ping', body: 1, timeout: 30_000 }
    })
    const mcp = await httpSession(f.peer.token)
    const inbox = await ok(mcp, 'read_inbox', { wait: 20_000 })
    const ping = inbox.messages.find((m: { type: string }) => m.type === 'ping')
    assert.ok(ping != null, JSON.stringify(inbox))
    await ok(mcp, 'reply', { message: ping.id })
    await sent
    await refused(mcp, 'read_inbox', { as: f.coder.principal }, /^AgentTokenScopeError \(HTTP 403\)/)
    const asOperator = await httpSession(TOKEN)
    await refused(asOperator, 'read_inbox', {}, /^McpNoAgentError: /)
    assert.equal((await ok(asOperator, 'read_inbox', { as: f.coder.principal })).agent, f.coder.principal)
  })

  it('refuses a request without a token or with a revoked one (401), and goes on serving the others', async () => {
    await assert.rejects(httpSession(''), /401/)
    await assert.rejects(httpSession('A'.repeat(43)), /401.*ApiTokenError/s)
    const minted = await f.operator.call('mintToken', { params: { id: f.peer.principal } })
    const mcp = await httpSession(minted.token)
    assert.equal((await ok(mcp, 'whoami')).principal, f.peer.principal)
    await f.operator.call('revokeToken', { params: { tokenId: minted.id } })
    await assert.rejects(mcp.callTool({ name: 'whoami', arguments: {} }), /401/)
    assert.equal((await ok(await httpSession(f.peer.token), 'whoami')).principal, f.peer.principal)
  })

  it('answers GET with 405, a foreign Host or Origin with 403, bad JSON with a parse error, a huge body with 413', async () => {
    const get = await raw('GET', undefined)
    assert.equal(get.status, 405)
    assert.equal(get.headers.allow, 'POST')
    assert.equal(JSON.parse(get.text).name, 'MethodNotAllowedError')
    const evil = await raw('POST', '{}', { host: 'evil.example.com' })
    assert.equal(evil.status, 403)
    assert.equal(JSON.parse(evil.text).name, 'ForbiddenHostError')
    const page = await raw('POST', '{}', { origin: 'http://evil.example.com' })
    assert.equal(page.status, 403)
    const junk = await raw('POST', '{"jsonrpc": ')
    assert.equal(junk.status, 400)
    assert.equal(JSON.parse(junk.text).error.code, -32700)
    const huge = await raw('POST', Buffer.alloc(MAX_MCP_BODY_BYTES + 1, 0x20))
    assert.equal(huge.status, 413)
    assert.equal(JSON.parse(huge.text).name, 'BodyTooLargeError')
    const notRpc = await raw('POST', '{"hello": "mcp"}')
    assert.equal(notRpc.status, 400, notRpc.text)
    assert.equal(JSON.parse(notRpc.text).error.code, -32700, 'not a JSON-RPC message')
    const below = await raw('POST', '{}', {}, '/mcp/tools')
    assert.equal(below.status, 404)
    assert.equal(JSON.parse(below.text).name, 'RouteNotFoundError')
    const mcp = await httpSession(f.peer.token)
    assert.equal((await ok(mcp, 'whoami')).principal, f.peer.principal, 'still serving')
  })
})

describe('MCP server: the tool list', () => {
  it('is what McpServer itself would list for the same tools (made once, not at every tools/list)', async () => {
    const list = async (server: McpServer): Promise<unknown> => {
      const [serverSide, clientSide] = InMemoryTransport.createLinkedPair()
      await server.connect(serverSide)
      const client = new McpClient({ name: 'list', version: '1.0.0' })
      await client.connect(clientSide)
      const answer = await client.listTools()
      await client.close()
      return JSON.parse(JSON.stringify(answer))
    }
    const plain = new McpServer({ name: 'plain', version: '1.0.0' })
    for (const spec of TOOLS)
      plain.registerTool(
        spec.name,
        {
          title: spec.title,
          description: spec.description,
          inputSchema: spec.input,
          outputSchema: spec.output,
          annotations: { title: spec.title, ...spec.annotations }
        },
        async () => ({ content: [] })
      )
    const api = { call: async () => await Promise.reject(new Error('no API here')) }
    assert.deepEqual(await list(cyberspaceMcpServer({ api })), await list(plain))
  })
})
