/**
 * The attacker's side of the ways in for external agents (issue 16): the A2A binding, the MCP
 * server (over /mcp and `cyberspace mcp` on stdio) and the TypeScript SDK facing a hostile node.
 *
 * - A2A: a client with an agent's token (or none) trying to act beyond its chain — reading,
 *   following or cancelling tasks it may not, joining another agent's context, holding more
 *   connections than its share, odd JSON-RPC — against a real node's API server on 127.0.0.1 with
 *   the binding mounted as a node process mounts it.
 * - MCP: an agent's token trying to act as another agent through `as`, to read what it may not
 *   through resources and tools, to fan one request out into many.
 * - The SDK: a node (or a man in the middle) answering with redirects, answers that never end,
 *   event-stream lines without an end, refusals with bodies that never end.
 *
 * Each test plays an attack and states the defence that holds against it, kept as a regression
 * test (those first written as `FINDING: …` failed until their fix was in). A new attack that works
 * is added as `FINDING: …` until it is fixed.
 */
import { strict as assert } from 'node:assert'
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, request } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SendMessageRequest } from '@a2a-js/sdk'
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js'
import { A2A_FORBIDDEN_CODE } from '../../node/a2a/errors.ts'
import { a2aMounts, A2A_PREFIX, A2A_RPC_PREFIX } from '../../node/a2a/mount.ts'
import { MAX_PARTS, MAX_STREAMS_PER_CALLER } from '../../node/a2a/tasks.ts'
import { apiClient } from '../../node/api/client.ts'
import { startApiServer } from '../../node/api/server.ts'
import { mcpMount } from '../../node/mcp/http.ts'
import { MAX_DESCRIPTION_LENGTH } from '../../protocols/work/codec.ts'
import { Client, MIN_SERVER_RETRY_DELAY } from '../../src/api/client.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { grant, key } from '../spki/fixtures.ts'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import type { ApiClient } from '../../node/api/client.ts'
import type { ApiServer } from '../../node/api/server.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

const CYBERSPACE = fileURLToPath(new URL('../../node/bin/cyberspace.ts', import.meta.url))
const TOKEN = 'operator-t0ken-for-attacks'

/** A self-signed certificate and its key (openssl, ECDSA P-256), made in `dir`. */
function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const [keyFile, certFile] = [join(dir, `${name}.key.pem`), join(dir, `${name}.pem`)]
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2'].concat([
      '-subj',
      `/CN=${name}`,
      '-keyout',
      keyFile,
      '-out',
      certFile
    ]),
    { stdio: 'ignore' }
  )
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') }
}
/** How long a blocking A2A send waits here (short: a test that finds one blocking should not wait 25 s). */
const BLOCKING_WAIT = 3_000
/** A board MCP sessions work on, and one the attacking agent has no grant for. */
const OPEN_BOARD = 'open'
const CLOSED_BOARD = 'closed'

interface Agent {
  principal: PrincipalId
  token: string
}

/** Calls `check` until it returns a value (at most `tries` times, `delay` ms apart). */
async function until<T>(check: () => Promise<T | undefined>, what: string, tries = 200, delay = 50): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await check().catch(() => undefined)
    if (value !== undefined) return value
    await new Promise(resolve => setTimeout(resolve, delay))
  }
  throw new Error(`gave up waiting for ${what}`)
}

/** Settles with `work`'s outcome, or with 'hung' if it has not settled after `ms` (a liveness bound, not a timing claim). */
async function within<T>(work: Promise<T>, ms: number): Promise<{ value?: T; error?: unknown; hung?: true }> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const hung = new Promise<{ hung: true }>(resolve => {
    timer = setTimeout(() => resolve({ hung: true }), ms)
  })
  try {
    return await Promise.race([work.then(value => ({ value })).catch((error: unknown) => ({ error })), hung])
  } finally {
    clearTimeout(timer)
  }
}

/** One JSON-RPC call by hand: the HTTP status and the parsed body. */
async function rpc(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal
): Promise<{ status: number; body: any; type: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal
  })
  const text = await res.text()
  return {
    status: res.status,
    body: text === '' ? undefined : JSON.parse(text),
    type: res.headers.get('content-type') ?? ''
  }
}

function sendParams(
  text: string,
  extra: { contextId?: string; returnImmediately?: boolean; parts?: unknown[]; taskId?: string } = {}
): unknown {
  return SendMessageRequest.toJSON(
    SendMessageRequest.fromJSON({
      message: {
        messageId: crypto.randomUUID(),
        role: 'ROLE_USER',
        parts: extra.parts ?? [{ text }],
        ...(extra.contextId != null ? { contextId: extra.contextId } : {}),
        ...(extra.taskId != null ? { taskId: extra.taskId } : {})
      },
      ...(extra.returnImmediately != null ? { configuration: { returnImmediately: extra.returnImmediately } } : {})
    })
  )
}

/** A v0.3 `message/send` (no A2A-Version header). */
function legacySend(text: string, configuration?: Record<string, unknown>): unknown {
  return {
    jsonrpc: '2.0',
    id: 1,
    method: 'message/send',
    params: {
      message: { kind: 'message', messageId: crypto.randomUUID(), role: 'user', parts: [{ kind: 'text', text }] },
      ...(configuration != null ? { configuration } : {})
    }
  }
}

const textOf = (result: CallToolResult): string => {
  const first = result.content[0]
  return first?.type === 'text' ? first.text : ''
}

describe('interfaces attack: a node serving A2A and MCP', function () {
  this.timeout(120_000)
  let node: CyberspaceNode
  let api: ApiServer
  let v0: ApiClient
  let operator: Client
  /** Agents A2A tasks are sent to. */
  let worker: Agent
  let worker2: Agent
  /** Clients with the a2a board's rights; a client with none. */
  let alice: Agent
  let mallory: Agent
  let stranger: Agent
  /** The key the node's ACL trusts: it grants the agents their rights. */
  let root: Awaited<ReturnType<typeof key>>
  const sessions: McpClient[] = []

  const rpcUrl = (agent: Agent): string => `${api.url}${A2A_RPC_PREFIX}/${agent.principal}`
  const cardUrl = (agent: Agent): string => `${api.url}${A2A_PREFIX}/${agent.principal}/.well-known/agent-card.json`
  const v1 = (agent: Agent): Record<string, string> => ({
    authorization: `Bearer ${agent.token}`,
    'a2a-version': '1.0'
  })

  const grantTo = async (principal: PrincipalId, root: Awaited<ReturnType<typeof key>>, tagText: string) => {
    const cert = await grant(root, { kind: 'key', principal }, tagText, { propagate: false })
    await v0.post('spki/import', { sexp: toAdvanced(signedCertToSexp(cert)) })
  }

  /** A task sent by `from` to `to`, answered at once: its id and context. */
  const sendTask = async (from: Agent, to: Agent, text: string): Promise<{ id: string; contextId: string }> => {
    const answer = await rpc(
      rpcUrl(to),
      { jsonrpc: '2.0', id: 1, method: 'SendMessage', params: sendParams(text, { returnImmediately: true }) },
      v1(from)
    )
    assert.equal(answer.body.error, undefined, JSON.stringify(answer.body))
    return { id: answer.body.result.task.id, contextId: answer.body.result.task.contextId }
  }

  async function mcpSession(token: string): Promise<McpClient> {
    const transport = new StreamableHTTPClientTransport(new URL(`${api.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } }
    })
    const client = new McpClient({ name: 'attacker', version: '1.0.0' })
    await client.connect(transport, { timeout: 30_000 })
    sessions.push(client)
    return client
  }

  before(async () => {
    node = await memoryNode()
    api = await startApiServer({
      node,
      token: TOKEN,
      port: 0,
      pageDir: '/nonexistent',
      // as node/platform.ts mounts them
      mounts: ({ url, tokens }) => [
        mcpMount({ apiUrl: url }),
        ...a2aMounts({ node, url, tokens, blockingWait: BLOCKING_WAIT })
      ]
    })
    v0 = apiClient(api.url, TOKEN)
    operator = new Client({ url: api.url, token: TOKEN })
    root = await key()
    await v0.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
    const attach = async (id: string): Promise<Agent> => {
      const attached = await operator.call('attachAgent', { body: { kind: 'external', id } })
      return { principal: attached.principal as PrincipalId, token: attached.token as string }
    }
    worker = await attach('worker')
    worker2 = await attach('worker2')
    alice = await attach('alice')
    mallory = await attach('mallory')
    stranger = await attach('stranger')
    for (const a of [worker, worker2, alice, mallory]) await grantTo(a.principal, root, '(cyberspace (work a2a))')
    for (const a of [alice, worker]) {
      await grantTo(a.principal, root, `(cyberspace (work ${OPEN_BOARD}))`)
      await grantTo(a.principal, root, '(cyberspace (mailbox (send)))')
    }
    await grantTo(worker.principal, root, `(cyberspace (work ${CLOSED_BOARD}))`)
  })

  after(async () => {
    await Promise.all(sessions.map(async s => await s.close().catch(() => {})))
    await api.close()
    await node.stop()
  })

  // ------------------------------------------------------------------ A2A

  it('a caller with no rights on the a2a board does not make the node open it', async () => {
    const boards = async (): Promise<string[]> =>
      (await operator.call('listBoards', { query: {} })).boards.map(b => b.name)
    assert.ok(!(await boards()).includes('a2a'), 'no board a2a before any A2A call')
    const refused = await rpc(
      rpcUrl(worker),
      { jsonrpc: '2.0', id: 1, method: 'SendMessage', params: sendParams('let me in', { returnImmediately: true }) },
      v1(stranger)
    )
    assert.equal(refused.body.error?.code, A2A_FORBIDDEN_CODE, JSON.stringify(refused.body))
    // opening a board is the operator's (POST /api/boards): a refused caller must leave no trace
    assert.ok(
      !(await boards()).includes('a2a'),
      'a caller whose chain grants nothing on the board made the node open (create) board a2a'
    )
  })

  it(`a send that waits by the SDK's reading of its flags (v0.3 \`blocking: 1\`, v1.0 \`returnImmediately: 0\`) takes a stream place like blocking: true (429 past ${MAX_STREAMS_PER_CALLER}); one that answers at once takes none`, async () => {
    const task = await sendTask(alice, worker, 'watched by many')
    const controllers: AbortController[] = []
    try {
      for (let i = 0; i < MAX_STREAMS_PER_CALLER; i++) {
        const controller = new AbortController()
        controllers.push(controller)
        const res = await fetch(rpcUrl(worker), {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...v1(alice) },
          body: JSON.stringify({ jsonrpc: '2.0', id: i, method: 'SubscribeToTask', params: { id: task.id } }),
          signal: controller.signal
        })
        assert.equal(res.status, 200)
        assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/)
      }
      const auth = { authorization: `Bearer ${alice.token}` }
      // the defence: a blocking send past the token's places is refused at once
      const blocking = await rpc(rpcUrl(worker), legacySend('blocking', { blocking: true }), auth)
      assert.equal(blocking.status, 429)
      assert.equal(blocking.body.name, 'TooManyWaitersError')
      // the SDK's v0.3 reader blocks for any truthy `blocking` (returnImmediately = !blocking)
      const sneaky = await rpc(rpcUrl(worker), legacySend('sneaky', { blocking: 1 }), auth)
      assert.equal(
        sneaky.status,
        429,
        `blocking: 1 waited ${BLOCKING_WAIT} ms for its task without a place (answered ${sneaky.status}): one token can hold every connection of the API`
      )
      // v1.0, raw JSON as a client may send it: the SDK reads Boolean(returnImmediately ?? return_immediately)
      const v1Send = (configuration: Record<string, unknown>, text: string): unknown => ({
        jsonrpc: '2.0',
        id: 1,
        method: 'SendMessage',
        params: { message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text }] }, configuration }
      })
      const falsy = await rpc(rpcUrl(worker), v1Send({ returnImmediately: 0 }, 'waits'), v1(alice))
      assert.equal(falsy.status, 429, `returnImmediately: 0 waits: ${JSON.stringify(falsy.body)}`)
      const snake = await rpc(rpcUrl(worker), v1Send({ return_immediately: 0 }, 'waits too'), v1(alice))
      assert.equal(snake.status, 429, `return_immediately: 0 waits: ${JSON.stringify(snake.body)}`)
      // answered at once, so no place is needed: not refused while every place is held
      for (const configuration of [
        { returnImmediately: 'yes' },
        { returnImmediately: null, return_immediately: true }
      ]) {
        const at = await rpc(rpcUrl(worker), v1Send(configuration, 'at once'), v1(alice))
        assert.equal(at.status, 200, `${JSON.stringify(configuration)}: ${JSON.stringify(at.body)}`)
        assert.equal(at.body.result?.task?.status?.state, 'TASK_STATE_SUBMITTED', JSON.stringify(at.body))
      }
    } finally {
      for (const c of controllers) c.abort()
    }
    // the places come back once the server sees the streams closed
    await until(async () => {
      const res = await rpc(rpcUrl(worker), legacySend('after', { blocking: true }), {
        authorization: `Bearer ${alice.token}`
      })
      return res.status === 200 ? res : undefined
    }, 'a free place')
  })

  it('a message joins only a context between the same two agents: not one of a task sent to another agent, nor one another caller started', async () => {
    const elsewhere = await sendTask(alice, worker2, 'for worker2')
    const joined = await rpc(
      rpcUrl(worker),
      {
        jsonrpc: '2.0',
        id: 1,
        method: 'SendMessage',
        params: sendParams('for worker, in worker2’s context', {
          contextId: elsewhere.contextId,
          returnImmediately: true
        })
      },
      v1(alice)
    )
    assert.equal(
      joined.body.error?.code,
      -32602,
      `accepted: a task addressed to worker now sits under worker2's task ${elsewhere.id} (${JSON.stringify(joined.body.result?.task?.contextId)})`
    )
    // alice's conversation with worker: mallory may read every a2a task, yet does not join it
    const own = await sendTask(alice, worker, 'for worker')
    const inContext = (text: string): unknown => ({
      jsonrpc: '2.0',
      id: 2,
      method: 'SendMessage',
      params: sendParams(text, { contextId: own.contextId, returnImmediately: true })
    })
    const intruder = await rpc(rpcUrl(worker), inContext('mallory joins'), v1(mallory))
    assert.equal(intruder.body.error?.code, -32602, JSON.stringify(intruder.body))
    // the same answer as for a context that does not exist
    const none = await rpc(
      rpcUrl(worker),
      {
        ...(inContext('nowhere') as object),
        params: sendParams('nowhere', { contextId: 'a2a:nope', returnImmediately: true })
      },
      v1(alice)
    )
    assert.equal(none.body.error?.code, intruder.body.error?.code)
    // alice goes on in her own
    const followUp = await rpc(rpcUrl(worker), inContext('alice goes on'), v1(alice))
    assert.equal(followUp.body.result?.task?.contextId, own.contextId, JSON.stringify(followUp.body))
  })

  it("a task is not read, followed or cancelled by a caller who may not read it, nor through another agent's endpoint", async () => {
    const task = await sendTask(alice, worker, 'private to alice and worker')
    for (const method of ['GetTask', 'CancelTask', 'SubscribeToTask']) {
      const strangers = await rpc(
        rpcUrl(worker),
        { jsonrpc: '2.0', id: 7, method, params: { id: task.id } },
        v1(stranger)
      )
      assert.match(strangers.type, /application\/json/, `${method}: answered as one JSON error, not a stream`)
      assert.equal(strangers.body.error?.code, -32001, `${method} by a caller without read rights`)
      const sideways = await rpc(rpcUrl(worker2), { jsonrpc: '2.0', id: 8, method, params: { id: task.id } }, v1(alice))
      assert.equal(sideways.body.error?.code, -32001, `${method} through another agent's endpoint`)
    }
    // the same answer as for a task that does not exist: nothing is told
    const none = await rpc(
      rpcUrl(worker),
      { jsonrpc: '2.0', id: 9, method: 'GetTask', params: { id: 'a2a:nope' } },
      v1(stranger)
    )
    assert.equal(none.body.error?.code, -32001)
    const still = await rpc(
      rpcUrl(worker),
      { jsonrpc: '2.0', id: 10, method: 'GetTask', params: { id: task.id } },
      v1(alice)
    )
    assert.equal(still.body.result?.status?.state, 'TASK_STATE_SUBMITTED', 'the task was not cancelled')
  })

  it('answers odd JSON-RPC (prototype method names, bad ids, bad params, bare values) with JSON-RPC errors, and goes on', async () => {
    for (const legacy of [false, true]) {
      const headers = legacy ? { authorization: `Bearer ${alice.token}` } : v1(alice)
      for (const method of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'then']) {
        const res = await rpc(rpcUrl(worker), { jsonrpc: '2.0', id: 1, method, params: {} }, headers)
        assert.equal(res.status, 200)
        assert.equal(res.body.error?.code, -32601, `${legacy ? 'v0.3' : 'v1.0'} ${method}: ${JSON.stringify(res.body)}`)
      }
      for (const id of [{ a: 1 }, [1], 1.5, true]) {
        const res = await rpc(
          rpcUrl(worker),
          { jsonrpc: '2.0', id, method: 'GetTask', params: { id: 'a2a:x' } },
          headers
        )
        // the SDK's transport answers an invalid request -32602 where JSON-RPC says -32600: an error either way
        assert.ok(
          [-32600, -32602].includes(res.body.error?.code),
          `id ${JSON.stringify(id)}: ${JSON.stringify(res.body)}`
        )
      }
      for (const params of [null, 'a2a:x', 7, [{ id: 'a2a:x' }]]) {
        const res = await rpc(rpcUrl(worker), { jsonrpc: '2.0', id: 2, method: 'GetTask', params }, headers)
        assert.ok(
          [-32602, -32600].includes(res.body.error?.code),
          `params ${JSON.stringify(params)}: ${JSON.stringify(res.body)}`
        )
      }
      for (const bare of ['null', '7', '"GetTask"', 'true', '{}', '{"jsonrpc":"2.0","method":7}']) {
        const res = await rpc(rpcUrl(worker), bare, headers)
        assert.ok([-32600, -32602].includes(res.body.error?.code), `${bare}: ${JSON.stringify(res.body)}`)
      }
    }
    const ok = await rpc(
      rpcUrl(worker),
      { jsonrpc: '2.0', id: 3, method: 'GetTask', params: { id: 'a2a:x' } },
      v1(alice)
    )
    assert.equal(ok.body.error?.code, -32001, 'still serving')
  })

  it('refuses messages past their bounds: parts, text, a continued task, file bytes', async () => {
    const send = async (params: unknown): Promise<any> =>
      (await rpc(rpcUrl(worker), { jsonrpc: '2.0', id: 1, method: 'SendMessage', params }, v1(alice))).body
    const parts = Array.from({ length: MAX_PARTS + 1 }, (_, i) => ({ text: `part ${i}` }))
    assert.equal((await send(sendParams('', { parts, returnImmediately: true }))).error?.code, -32602)
    const long = 'x'.repeat(MAX_DESCRIPTION_LENGTH + 1)
    assert.equal((await send(sendParams(long, { returnImmediately: true }))).error?.code, -32602)
    // a data part whose JSON is past the text's bound, within the body's
    const data = [{ data: { blob: 'y'.repeat(MAX_DESCRIPTION_LENGTH) } }]
    assert.equal((await send(sendParams('', { parts: data, returnImmediately: true }))).error?.code, -32602)
    // multi-byte text counts by characters, not past the bound
    const astral = '𝕏'.repeat(MAX_DESCRIPTION_LENGTH + 1)
    assert.equal((await send(sendParams(astral, { returnImmediately: true }))).error?.code, -32602)
    const continued = await send(sendParams('more', { taskId: 'a2a:whatever', returnImmediately: true }))
    assert.equal(continued.error?.code, -32004)
  })

  it("serves cards only for hosted agents, without secrets, naming the node's own endpoint whatever the request line says", async () => {
    const res = await fetch(cardUrl(worker), { headers: { 'a2a-version': '1.0' } })
    assert.equal(res.status, 200)
    const text = await res.text()
    for (const secret of [TOKEN, worker.token, alice.token, '/nonexistent'])
      assert.ok(!text.includes(secret), `the card holds ${secret.slice(0, 8)}…`)
    // an absolute-form request target naming another host: the Host header is the node's own
    const url = new URL(api.url)
    const absolute = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          method: 'GET',
          path: `http://evil.example${A2A_PREFIX}/${worker.principal}/.well-known/agent-card.json`,
          headers: { host: url.host, 'a2a-version': '1.0' }
        },
        r => {
          let body = ''
          r.on('data', (d: Buffer) => (body += d.toString()))
          r.on('end', () => resolve({ status: r.statusCode ?? 0, text: body }))
        }
      )
      req.on('error', reject)
      req.end()
    })
    if (absolute.status === 200) {
      const card = JSON.parse(absolute.text) as { supportedInterfaces: Array<{ url: string }> }
      assert.ok(card.supportedInterfaces[0].url.startsWith(api.url), card.supportedInterfaces[0].url)
    }
    assert.ok(!absolute.text.includes('evil.example'), 'the card names the host of the request line')
    // an agent not hosted here, a name that is no principal, a path that climbs: no card
    for (const path of [
      `${A2A_PREFIX}/${(await key()).id}/.well-known/agent-card.json`,
      `${A2A_PREFIX}/%7a6Mk${worker.principal.slice(4)}/.well-known/agent-card.json`,
      `${A2A_PREFIX}/${worker.principal}/..%2f..%2fapi%2fwhoami`,
      `${A2A_PREFIX}/${worker.principal}/.well-known/agent-card.json/../../../api/v0/id`
    ]) {
      const r = await fetch(`${api.url}${path}`)
      assert.ok(r.status === 404 || r.status === 401, `${path}: ${r.status}`)
      await r.body?.cancel()
    }
  })

  // ------------------------------------------------------------------ MCP

  it("MCP: an agent's token acts only as its agent — every acting tool refuses `as` naming another (403)", async () => {
    const mcp = await mcpSession(alice.token)
    await operator.call('openBoard', { body: { name: OPEN_BOARD } })
    const ref = `${OPEN_BOARD}:w1`
    const as = worker.principal
    const calls: Array<[string, Record<string, unknown>]> = [
      ['send_message', { to: worker.principal, type: 'ping', body: 1, as }],
      ['request', { to: alice.principal, type: 'ping', timeout: 1000, as }],
      ['read_inbox', { as }],
      ['reply', { message: 'm1', as }],
      ['create_work', { board: OPEN_BOARD, id: 'w1', title: 'as another', as }],
      ['claim_work', { ref, as }],
      ['progress_work', { ref, percent: 5, as }],
      ['complete_work', { ref, result: 'stolen', as }],
      ['fail_work', { ref, error: 'no', as }],
      ['handoff_work', { ref, to: alice.principal, as }],
      ['write_document', { name: 'notes', type: 'lww-register', update: { op: 'set', value: 1 }, as }]
    ]
    for (const [name, args] of calls) {
      const result = (await mcp.callTool({ name, arguments: args })) as CallToolResult
      assert.equal(result.isError, true, `${name} as another agent: ${textOf(result)}`)
      assert.match(textOf(result), /^AgentTokenScopeError \(HTTP 403\)/, `${name}: ${textOf(result)}`)
    }
    await assert.rejects(operator.call('getWorknode', { params: { id: ref } }), { status: 404 })
  })

  it('MCP: a board the agent may not read shows none of its items; odd resource URIs are refused', async () => {
    await operator.call('openBoard', { body: { name: CLOSED_BOARD } })
    await operator.call('createWorknode', {
      body: { board: CLOSED_BOARD, id: 'secret', title: 'the secret plan', as: worker.principal }
    })
    const mcp = await mcpSession(alice.token)
    const read = await mcp.readResource({ uri: `cyberspace://boards/${CLOSED_BOARD}` })
    const text = (read.contents[0] as { text: string }).text
    assert.ok(!text.includes('secret plan'), text)
    assert.deepEqual((JSON.parse(text) as { items: unknown[] }).items, [])
    for (const uri of [
      'cyberspace://boards/..',
      'cyberspace://boards/%2e%2e',
      `cyberspace://boards/${OPEN_BOARD}%2F..%2F${CLOSED_BOARD}`,
      `cyberspace://boards/${'a'.repeat(60_000)}`,
      'cyberspace://agents/..%2Fboards%2Fclosed',
      `cyberspace://agents/${worker.principal}%00`,
      'cyberspace://boards/__proto__',
      'file:///etc/passwd'
    ]) {
      const outcome = await mcp.readResource({ uri }).then(
        r => `read: ${JSON.stringify(r).slice(0, 200)}`,
        (err: Error & { code?: number }) => err.code
      )
      assert.ok(outcome === -32602 || outcome === -32002, `${uri.slice(0, 80)}: ${String(outcome)}`)
    }
    // a URI whose path climbs is resolved as a URL first: it names the closed board, read as above
    const climbed = await mcp.readResource({ uri: `cyberspace://boards/${OPEN_BOARD}/../${CLOSED_BOARD}` })
    assert.ok(!JSON.stringify(climbed).includes('secret plan'))
    // a document it may not read: as if there were none
    await operator.call('updateDocument', {
      params: { name: 'payroll' },
      body: { type: 'lww-register', update: { op: 'set', value: 'salaries' } }
    })
    const doc = (await mcp.callTool({ name: 'read_document', arguments: { name: 'payroll' } })) as CallToolResult
    assert.equal(doc.isError, true)
    assert.ok(!textOf(doc).includes('salaries'), textOf(doc))
    assert.match(textOf(doc), /NotFound/)
  })

  it('MCP resources/list names only the boards the agent may read', async () => {
    await operator.call('openBoard', { body: { name: CLOSED_BOARD } })
    await operator.call('openBoard', { body: { name: OPEN_BOARD } })
    const mcp = await mcpSession(alice.token)
    const { resources } = await mcp.listResources()
    const names = resources.map(r => r.name)
    assert.ok(
      !names.includes(CLOSED_BOARD),
      `alice, with no grant on board ${CLOSED_BOARD}, is shown it: ${JSON.stringify(resources.find(r => r.name === CLOSED_BOARD))}`
    )
    assert.ok(names.includes(OPEN_BOARD), `alice may read board ${OPEN_BOARD}: ${names.join(', ')}`)
    // nor through the API: the board is answered as one the node does not hold
    const asAlice = new Client({ url: api.url, token: alice.token })
    await assert.rejects(asAlice.call('getBoard', { params: { board: CLOSED_BOARD } }), {
      name: 'BoardNotFoundError',
      status: 404
    })
    // a board alice may read only notes on: shown, without counts that would tell of the rest
    const mixed = 'mixed'
    await grantTo(worker.principal, root, `(cyberspace (work ${mixed}))`)
    await grantTo(alice.principal, root, `(cyberspace (work ${mixed} read note))`)
    for (const [id, kind] of [
      ['n1', 'note'],
      ['t1', 'task'],
      ['t2', 'task']
    ])
      await operator.call('createWorknode', { body: { board: mixed, id, kind, title: id, as: worker.principal } })
    const shown = (await mcp.listResources()).resources.find(r => r.name === mixed)
    assert.ok(shown != null, 'a board alice may read part of is listed')
    assert.doesNotMatch(shown.description ?? '', /items/, shown.description)
    const board = await asAlice.call('getBoard', { params: { board: mixed } })
    assert.deepEqual([board.items, board.ops], [-1, -1])
    assert.equal((await operator.call('getBoard', { params: { board: mixed } })).items, 3)
  })

  it('/mcp refuses a JSON-RPC batch instead of fanning it out into concurrent API calls', async () => {
    const batch = Array.from({ length: 3 }, (_, i) => ({
      jsonrpc: '2.0',
      id: i + 1,
      method: 'tools/call',
      params: { name: 'whoami', arguments: {} }
    }))
    const res = await fetch(`${api.url}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${alice.token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': LATEST_PROTOCOL_VERSION
      },
      body: JSON.stringify(batch)
    })
    const text = await res.text()
    assert.equal(
      res.status,
      400,
      `a batch of ${batch.length} tool calls was served (each one an API request of its own; the SDK takes up to 100): ${text.slice(0, 200)}`
    )
    assert.equal((JSON.parse(text) as { error: { code: number } }).error.code, -32600)
  })

  it('MCP arguments nested deeper than any schema needs are refused by name, not by a stack overflow', async () => {
    await operator.call('openBoard', { body: { name: OPEN_BOARD } })
    const call = async (id: number, name: string, args: string): Promise<any> => {
      const res = await fetch(`${api.url}/mcp`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${alice.token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': LATEST_PROTOCOL_VERSION
        },
        body: `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"${name}","arguments":${args}}}`
      })
      return { status: res.status, body: JSON.parse(await res.text()) }
    }
    const created = await call(1, 'create_work', `{"board":"${OPEN_BOARD}","id":"deep","title":"deep result"}`)
    assert.notEqual(created.body.result?.isError, true, JSON.stringify(created.body))
    await call(2, 'claim_work', `{"ref":"${OPEN_BOARD}:deep"}`)
    // 9000 arrays: within the 10,000 elements a call may hold and the 128 KiB a request may be
    const depth = 9_000
    const deep = await call(
      3,
      'complete_work',
      `{"ref":"${OPEN_BOARD}:deep","result":${'['.repeat(depth)}1${']'.repeat(depth)}}`
    )
    assert.equal(deep.status, 200)
    const answer = JSON.stringify(deep.body)
    assert.ok(
      deep.body.error != null || deep.body.result?.isError === true,
      `a result nested ${depth} deep was taken: ${answer.slice(0, 300)}`
    )
    assert.ok(answer.length < 4000, answer.slice(0, 300))
    // today the SDK's JSON.stringify of the API call's body overflows the stack: a RangeError, caught by luck
    assert.doesNotMatch(answer, /RangeError|call stack/, `the answer is a stack overflow: ${answer.slice(0, 200)}`)
    assert.match(answer, /deep|depth|nest/i)
    const item = await operator.call('getWorknode', { params: { id: `${OPEN_BOARD}:deep` } })
    assert.equal(item.status, 'working')
    const who = await call(4, 'whoami', '{}')
    assert.equal(who.body.result?.isError, undefined, JSON.stringify(who.body))
    // within the bound (the arguments object is level 1, so 63 more): taken
    const within = 16
    const done = await call(
      5,
      'complete_work',
      `{"ref":"${OPEN_BOARD}:deep","result":${'['.repeat(within)}1${']'.repeat(within)}}`
    )
    assert.equal(done.body.result?.isError, undefined, JSON.stringify(done.body).slice(0, 300))
    assert.equal((await operator.call('getWorknode', { params: { id: `${OPEN_BOARD}:deep` } })).status, 'completed')
  })

  it('/mcp on an https API: its tools reach the API through the certificate they are given, pinned; without one it refuses saying so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-tls-'))
    const servers: ApiServer[] = []
    try {
      const tls = selfSigned(dir, 'api.example')
      const start = async (cert: string | undefined): Promise<ApiServer> => {
        const server = await startApiServer({
          node,
          token: TOKEN,
          port: 0,
          pageDir: '/nonexistent',
          tls,
          mounts: ({ url }) => [mcpMount({ apiUrl: url, ...(cert != null ? { cert } : {}) })]
        })
        servers.push(server)
        return server
      }
      /** One tools/call of whoami over https (the test trusts the certificate as the mount does). */
      const whoami = async (server: ApiServer): Promise<{ status: number; body: any }> =>
        await new Promise((resolve, reject) => {
          const req = httpsRequest(
            `${server.url}/mcp`,
            {
              method: 'POST',
              ca: tls.cert,
              checkServerIdentity: () => undefined,
              headers: {
                authorization: `Bearer ${TOKEN}`,
                'content-type': 'application/json',
                accept: 'application/json, text/event-stream',
                'mcp-protocol-version': LATEST_PROTOCOL_VERSION
              }
            },
            res => {
              let text = ''
              res.on('data', (d: Buffer) => (text += d.toString()))
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }))
            }
          )
          req.on('error', reject)
          req.end(
            JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } })
          )
        })
      const served = await whoami(await start(tls.cert))
      assert.equal(served.status, 200)
      assert.equal(served.body.result?.isError, undefined, JSON.stringify(served.body).slice(0, 300))
      assert.equal(JSON.parse(served.body.result.content[0].text).principal, node.spki.principal)
      // another certificate: the tools' client does not send the token to the API (it cannot tell it is the node's)
      const other = selfSigned(dir, 'other')
      const pinnedWrong = await whoami(await start(other.cert))
      assert.equal(pinnedWrong.body.result?.isError, true, JSON.stringify(pinnedWrong.body).slice(0, 300))
      assert.match(pinnedWrong.body.result.content[0].text, /ApiNetworkError/)
      // no certificate: refused, naming what is missing
      const refused = await whoami(await start(undefined))
      assert.equal(refused.status, 503)
      assert.equal(refused.body.name, 'McpApiTlsError')
      assert.match(refused.body.detail, /mcpMount\(\{ cert \}\)/)
    } finally {
      await Promise.all(servers.map(async s => await s.close()))
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('cyberspace mcp on an https node: it talks to the API with the certificate api.json holds, pinned, and to no other', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-stdio-tls-'))
    let server: ApiServer | undefined
    try {
      const tls = selfSigned(dir, 'api.example')
      server = await startApiServer({ node, token: TOKEN, port: 0, pageDir: '/nonexistent', tls })
      /** `cyberspace mcp --data-dir` with the operator's token and api.json naming the server and `cert`. */
      const run = async (cert: string): Promise<{ code: number | null; stdout: string; stderr: string }> => {
        writeFileSync(join(dir, 'api.json'), JSON.stringify({ url: server?.url, cert, pid: process.pid }))
        return await new Promise(resolve => {
          const proc = spawn(process.execPath, [CYBERSPACE, 'mcp', '--data-dir', dir], {
            env: { ...process.env, CYBERSPACE_TOKEN: TOKEN },
            stdio: ['pipe', 'pipe', 'pipe']
          })
          let stdout = ''
          let stderr = ''
          proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
          proc.stderr.on('data', (d: Buffer) => {
            stderr += d.toString()
            // it asked the node who the token is, and serves: the host going away ends it
            if (stderr.includes('serving')) proc.stdin.end()
          })
          const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000)
          proc.once('close', (code: number | null) => {
            clearTimeout(timer)
            resolve({ code, stdout, stderr })
          })
        })
      }
      const pinned = await run(tls.cert)
      assert.equal(pinned.code, 0, pinned.stderr)
      assert.match(pinned.stderr, new RegExp(`serving the node's operator on stdio, through ${server.url}`))
      const wrong = await run(selfSigned(dir, 'other').cert)
      assert.equal(wrong.code, 1, wrong.stderr)
      // an unrelated certificate fails the chain before the pin is compared (api-bind.test.ts has both)
      assert.match(wrong.stderr, /self-signed certificate|another certificate than api\.json holds/)
      assert.equal(wrong.stdout, '')
    } finally {
      await server?.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('cyberspace mcp on stdio: nothing but JSON-RPC on stdout, through junk and bad calls', async () => {
    const proc = spawn(process.execPath, [CYBERSPACE, 'mcp', '--url', api.url], {
      env: { ...process.env, CYBERSPACE_TOKEN: alice.token, DEBUG: '' },
      stdio: ['pipe', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const killer = setTimeout(() => proc.kill('SIGKILL'), 60_000)
    try {
      const send = (message: unknown): void => {
        proc.stdin.write((typeof message === 'string' ? message : JSON.stringify(message)) + '\n')
      }
      const answered = async (id: number): Promise<any> =>
        await until(
          async () =>
            stdout
              .split('\n')
              .filter(l => l !== '')
              .map(l => JSON.parse(l) as { id?: number })
              .find(m => m.id === id),
          `answer ${id} (stderr: ${stderr.slice(0, 300)})`,
          400
        )
      send({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'x', version: '1' } }
      })
      await answered(1)
      send({ jsonrpc: '2.0', method: 'notifications/initialized' })
      send('this is not json')
      send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } })
      send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'no_such_tool', arguments: {} } })
      send({
        jsonrpc: '2.0',
        id: 4,
        method: 'tools/call',
        params: { name: 'read_inbox', arguments: { as: worker.principal } }
      })
      send({ jsonrpc: '2.0', id: 5, method: '__proto__', params: {} })
      const who = await answered(2)
      assert.equal(JSON.parse(who.result.content[0].text).principal, alice.principal)
      const unknown = await answered(3)
      assert.ok(unknown.error != null || unknown.result?.isError === true, JSON.stringify(unknown))
      const scoped = await answered(4)
      assert.match(scoped.result.content[0].text, /AgentTokenScopeError/)
      assert.equal((await answered(5)).error?.code, -32601)
      for (const line of stdout.split('\n').filter(l => l !== '')) {
        const message = JSON.parse(line) as { jsonrpc?: string }
        assert.equal(message.jsonrpc, '2.0', `stdout carried ${line.slice(0, 120)}`)
      }
      assert.ok(!stdout.includes(alice.token) && !stderr.includes(alice.token), 'the token is printed')
    } finally {
      clearTimeout(killer)
      proc.stdin.end()
      await new Promise(resolve => proc.once('close', resolve))
    }
  })
})

describe('interfaces attack: cyberspace mcp sends its token only to this machine over plain http', function () {
  this.timeout(60_000)
  it('refuses --url that only looks local (credentials, a lookalike name, a mapped address), printing nothing on stdout', async () => {
    const token = 'A'.repeat(43)
    for (const url of [
      'http://localhost@192.0.2.1:4100',
      'http://127.0.0.1.nip.io:4100',
      'http://localhost.:4100',
      'http://[::ffff:192.0.2.1]:4100',
      'ws://127.0.0.1:4100'
    ]) {
      const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>(resolve => {
        const proc = spawn(process.execPath, [CYBERSPACE, 'mcp', '--url', url], {
          env: { ...process.env, CYBERSPACE_TOKEN: token },
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
      assert.equal(run.code, 2, `${url}: exit ${String(run.code)} ${run.stderr}`)
      assert.equal(run.stdout, '')
      assert.ok(!run.stderr.includes(token), 'the token is printed')
    }
  })

  it('warns on stderr that --token is visible to other users, without printing it', async () => {
    const token = 'B'.repeat(43)
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>(resolve => {
      // refused before it connects (a URL the token may not go to): the warning comes first
      const proc = spawn(process.execPath, [CYBERSPACE, 'mcp', '--token', token, '--url', 'ws://127.0.0.1:4100'], {
        env: { ...process.env, CYBERSPACE_TOKEN: '' },
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
    assert.equal(run.code, 2, run.stderr)
    assert.equal(run.stdout, '')
    const warning = run.stderr.split('\n').find(l => l.includes('--token'))
    assert.ok(warning != null && /CYBERSPACE_TOKEN/.test(warning), run.stderr)
    assert.ok(!run.stderr.includes(token), 'the token is printed')
  })
})

// ------------------------------------------------------------------ the SDK facing a hostile node

/** A scripted HTTP server on 127.0.0.1: `script` answers each request (n counts them from 0). */
async function hostile(
  script: (req: IncomingMessage, res: ServerResponse, n: number) => void | Promise<void>
): Promise<{
  url: string
  requests: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string; at: number }>
  close: () => Promise<void>
}> {
  const requests: Array<{
    method: string
    url: string
    headers: IncomingMessage['headers']
    body: string
    /** When its head arrived (performance.now()). */
    at: number
  }> = []
  const server: Server = createServer((req, res) => {
    const at = performance.now()
    let body = ''
    req.on('data', (d: Buffer) => (body += d.toString()))
    req.on('end', () => {
      const n = requests.length
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, at })
      void Promise.resolve(script(req, res, n)).catch(() => res.destroy())
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
  }
}

describe('interfaces attack: the TypeScript SDK facing a hostile node', function () {
  this.timeout(60_000)
  const open: Array<{ close: () => Promise<void> }> = []
  afterEach(async () => {
    await Promise.all(open.splice(0).map(async s => await s.close()))
  })
  const serve = async (script: Parameters<typeof hostile>[0]) => {
    const s = await hostile(script)
    open.push(s)
    return s
  }
  const SECRET = 'agent-t0ken-that-must-stay-home'
  const event = (cursor: string): string =>
    `id: ${cursor}\ndata: ${JSON.stringify({ cursor, hlc: [1, 0], source: 'board', type: 'claim', subject: 'b/t', data: {} })}\n\n`

  it('a redirect to another origin does not carry the token', async () => {
    const elsewhere = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"caller":"agent"}')
    })
    const node = await serve((_req, res) => {
      res.writeHead(302, { location: `${elsewhere.url.replace('127.0.0.1', 'localhost')}/api/whoami` }).end()
    })
    const client = new Client({ url: node.url, token: SECRET })
    await client.call('whoami').catch(() => {})
    for (const r of elsewhere.requests)
      assert.equal(r.headers.authorization, undefined, 'the token followed the redirect')
  })

  it("a 307 is not followed: a request's body does not go to another origin", async () => {
    const elsewhere = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"outcome":{"accepted":true}}')
    })
    const node = await serve((_req, res) => {
      res.writeHead(307, { location: `${elsewhere.url}/collect` }).end()
    })
    const client = new Client({ url: node.url, token: SECRET })
    const answer = await client.completeTask('release:t1', { result: { secret: 'the result of my work' } }).then(
      () => 'answered',
      (err: Error) => err.name
    )
    assert.equal(
      elsewhere.requests.length,
      0,
      `the SDK followed the redirect and posted ${elsewhere.requests[0]?.body ?? ''} to ${elsewhere.url} (${answer})`
    )
    assert.equal(answer, 'InvalidResponseError', "another origin's answer was taken as the node's")
    // the event stream neither: refused, not retried, not followed
    await assert.rejects(client.subscribe({ retries: 3, retryDelay: 10 }).next(), { name: 'InvalidResponseError' })
    assert.equal(elsewhere.requests.length, 0)
    assert.equal(node.requests.length, 2)
  })

  it('a node that asks for `retry: 0` is reconnected to no sooner than MIN_SERVER_RETRY_DELAY (less its jitter)', async () => {
    const node = await serve((_req, res, n) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      // each connection: retry 0, one event, the end (bounded: the client reads 4)
      res.end(`retry: 0\n${event(`c${n}`)}`)
    })
    const client = new Client({ url: node.url, token: SECRET })
    const stream = client.subscribe({ retries: 1, retryDelay: 10 })
    const got: string[] = []
    for (let i = 0; i < 4; i++) got.push(((await stream.next()).value as { cursor: string }).cursor)
    await stream.return(undefined)
    assert.deepEqual(got, ['c0', 'c1', 'c2', 'c3'])
    // a lower bound, not a speed claim: timers do not fire early, the jitter takes at most a quarter
    const floor = MIN_SERVER_RETRY_DELAY * 0.75 - 5
    for (let i = 1; i < 4; i++) {
      const gap = node.requests[i].at - node.requests[i - 1].at
      assert.ok(
        gap >= floor,
        `reconnection ${i} came ${gap} ms after the one before (retry: 0 is taken as ${MIN_SERVER_RETRY_DELAY})`
      )
    }
  })

  it('an answer past maxResponseBytes is refused, declared or streamed without end', async () => {
    const node = await serve((req, res) => {
      if (req.url?.includes('declared')) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(1 << 30) })
        res.write('{')
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      const chunk = Buffer.alloc(64 * 1024, 0x20)
      let sent = 0
      const pump = (): void => {
        // bounded: a client that never stops reading meets the end after 8 MiB
        while (sent < 128 && res.write(chunk)) sent++
        if (sent < 128 && !res.destroyed) res.once('drain', pump)
        else res.end()
      }
      pump()
    })
    const client = new Client({ url: node.url, token: SECRET, maxResponseBytes: 256 * 1024 })
    await assert.rejects(client.call('whoami'), { name: 'ResponseTooLargeError' })
    const declared = new Client({ url: `${node.url}/declared`, token: SECRET, maxResponseBytes: 256 * 1024 })
    await assert.rejects(declared.call('whoami'), { name: 'ResponseTooLargeError' })
  })

  it('a node that sends its headers then stalls: call() gives up at its timeout', async () => {
    const node = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' })
      res.write('{"cal')
    })
    const client = new Client({ url: node.url, token: SECRET, timeout: 300 })
    const outcome = await within(client.call('whoami'), 15_000)
    assert.equal(outcome.hung, undefined, 'call() hung past its timeout')
    assert.equal((outcome.error as Error)?.name, 'ApiTimeoutError')
  })

  it('subscribe() gives up on a refusal whose body never ends', async () => {
    const node = await serve((_req, res) => {
      res.writeHead(503, { 'content-type': 'application/problem+json', 'content-length': '1000' })
      res.write('{"name":')
    })
    const client = new Client({ url: node.url, token: SECRET, timeout: 300 })
    const stream = client.subscribe({ retries: 0, idleTimeout: 300, retryDelay: 10 })
    const outcome = await within(stream.next(), 15_000)
    // (a generator busy in next() cannot be returned: closing the server ends it)
    assert.equal(
      outcome.hung,
      undefined,
      'subscribe() waits without end for the body of a 503 (no timeout covers it: a proxy or node that stalls holds the reader forever)'
    )
    assert.ok(outcome.error != null)
  })

  it('an event-stream line that never ends is refused at maxEventLength', async () => {
    const node = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: ')
      const chunk = 'x'.repeat(16 * 1024)
      let sent = 0
      const pump = (): void => {
        while (sent < 512 && res.write(chunk)) sent++
        if (sent < 512 && !res.destroyed) res.once('drain', pump)
        else res.end()
      }
      pump()
    })
    const client = new Client({ url: node.url, token: SECRET })
    const stream = client.subscribe({ maxEventLength: 64 * 1024, retries: 0 })
    await assert.rejects(stream.next(), { name: 'SseEventTooLargeError' })
  })

  it('an id with NUL is ignored: Last-Event-ID never carries it', async () => {
    const node = await serve((_req, res, n) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      if (n === 0) {
        res.write(event('c1'))
        res.write(`id: c\u0000evil\ndata: ${JSON.stringify({ cursor: 'c2' })}\n\n`)
        res.end()
      } else res.end(event('c3'))
    })
    const client = new Client({ url: node.url, token: SECRET })
    const stream = client.subscribe({ retries: 1, retryDelay: 10 })
    const got: string[] = []
    for (let i = 0; i < 3; i++) got.push(((await stream.next()).value as { cursor: string }).cursor)
    await stream.return(undefined)
    assert.deepEqual(got, ['c1', 'c2', 'c3'])
    assert.equal(node.requests[1].headers['last-event-id'], 'c1')
  })

  it('a 401 is not retried; a 503 only `retries` times', async () => {
    const denied = await serve((_req, res) => {
      res.writeHead(401, { 'content-type': 'application/problem+json' })
      res.end(JSON.stringify({ name: 'ApiTokenError', title: 'no', status: 401, detail: 'revoked' }))
    })
    await assert.rejects(new Client({ url: denied.url, token: SECRET }).subscribe({ retryDelay: 10 }).next(), {
      name: 'ApiTokenError',
      status: 401
    })
    assert.equal(denied.requests.length, 1)
    const busy = await serve((_req, res) => {
      res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '0' })
      res.end(JSON.stringify({ name: 'Busy', title: 'busy', status: 503, detail: 'later' }))
    })
    await assert.rejects(
      new Client({ url: busy.url, token: SECRET }).subscribe({ retries: 2, retryDelay: 10 }).next(),
      { name: 'EventStreamLostError' }
    )
    assert.equal(busy.requests.length, 3)
  })
})
