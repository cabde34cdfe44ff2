/**
 * The A2A binding over real HTTP on 127.0.0.1, driven by `@a2a-js/sdk`'s own client: it fetches a
 * hosted agent's card, and sends it a task that the agent's program — an external agent working
 * the board through the node's HTTP API with its own token — claims and completes; GetTask and
 * SubscribeToTask show it. Then the attacker's side: bad and missing tokens, unknown agents,
 * malformed JSON-RPC, a caller whose chain does not allow what it asks, oversized bodies, too many
 * streams.
 */
import { strict as assert } from 'node:assert'
import { SendMessageRequest, TaskState } from '@a2a-js/sdk'
import {
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory
} from '@a2a-js/sdk/client'
import { a2aMounts, A2A_PREFIX, A2A_RPC_PREFIX, MAX_A2A_BODY_BYTES } from '../../node/a2a/mount.ts'
import { A2A_FORBIDDEN_CODE } from '../../node/a2a/errors.ts'
import { MAX_STREAMS_PER_CALLER } from '../../node/a2a/tasks.ts'
import { apiClient } from '../../node/api/client.ts'
import { startApiServer } from '../../node/api/server.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { grant, key } from '../spki/fixtures.ts'
import { LegacyJsonRpcTransport, parseLegacyAgentCard } from '@a2a-js/sdk/compat/v0_3/client'
import type { Client } from '@a2a-js/sdk/client'
import type { StreamResponse, Task } from '@a2a-js/sdk'
import type { HostedAgentView } from '../../node/api/agent-routes.ts'
import type { ApiClient } from '../../node/api/client.ts'
import type { ApiServer } from '../../node/api/server.ts'
import type { WorkItemView, WorkOpResult, ItemPage } from '../../node/api/work-routes.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'

const TOKEN = 'operator-t0ken'

/** Calls `check` until it returns a value (at most `tries` times, `delay` ms apart). */
async function until<T>(check: () => Promise<T | undefined>, what: string, tries = 200, delay = 50): Promise<T> {
  let last: unknown
  for (let i = 0; i < tries; i++) {
    const value = await check().catch((err: unknown) => {
      last = err
      return undefined
    })
    if (value !== undefined) return value
    await new Promise(resolve => setTimeout(resolve, delay))
  }
  throw new Error(`gave up waiting for ${what}${last != null ? ` (last: ${(last as Error).message})` : ''}`)
}

/** A fetch that sends `token` as the bearer. */
function bearerFetch(token: string): typeof fetch {
  return async (input, init) => {
    const headers = new Headers(init?.headers)
    headers.set('authorization', `Bearer ${token}`)
    return await fetch(input, { ...init, headers })
  }
}

/** The SDK's client for the agent at `base` (…/a2a/<principal>/), calling with `token` (its card is public: fetched without). */
async function a2aClient(base: string, token: string): Promise<Client> {
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl: bearerFetch(token) })]
    })
  )
  return await factory.createFromUrl(base)
}

function textMessage(
  text: string,
  extra: { contextId?: string; returnImmediately?: boolean; as?: string } = {}
): SendMessageRequest {
  return SendMessageRequest.fromJSON({
    message: {
      messageId: crypto.randomUUID(),
      role: 'ROLE_USER',
      parts: [{ text }],
      ...(extra.contextId != null ? { contextId: extra.contextId } : {})
    },
    ...(extra.returnImmediately != null ? { configuration: { returnImmediately: extra.returnImmediately } } : {}),
    ...(extra.as != null ? { metadata: { as: extra.as } } : {})
  })
}

/** One JSON-RPC call by hand: the HTTP status and the parsed body. */
async function rpc(
  url: string,
  body: string,
  headers: Record<string, string> = {}
): Promise<{ status: number; body: Record<string, any>; type: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'a2a-version': '1.0', ...headers },
    body
  })
  const text = await res.text()
  return { status: res.status, body: JSON.parse(text), type: res.headers.get('content-type') ?? '' }
}

describe('A2A binding', function () {
  this.timeout(120_000)
  let node: CyberspaceNode
  let api: ApiServer
  let operator: ApiClient
  let root: Key
  /** The agent tasks are sent to, its program's token and API client. */
  let worker: HostedAgentView
  let workerApi: ApiClient
  /** An agent that sends tasks, with rights on the board; and one with none. */
  let requester: HostedAgentView
  let stranger: HostedAgentView
  /** The worker's path (its card is under it) and its JSON-RPC endpoint. */
  let base: string
  let endpoint: string

  const grantTo = async (principal: PrincipalId, tagText: string): Promise<void> => {
    const cert = await grant(root, { kind: 'key', principal }, tagText, { propagate: false })
    await operator.post('spki/import', { sexp: toAdvanced(signedCertToSexp(cert)) })
  }

  /** The worker's program: waits for the task's item assigned to it and claims it. */
  const claimNext = async (taskId: string): Promise<WorkItemView> => {
    const item = taskId.slice(taskId.indexOf(':') + 1)
    await until(async () => {
      const page = await workerApi.get<ItemPage>('work/items', { board: 'a2a', assignee: worker.principal })
      return page.items.find(i => i.id === item && i.status === 'submitted')
    }, `the item of ${taskId}`)
    const claimed = await workerApi.post<WorkOpResult>('work/op', {
      board: 'a2a',
      as: worker.principal,
      op: { op: 'claim', item }
    })
    assert.deepEqual(claimed.outcome, { accepted: true })
    return claimed.item as WorkItemView
  }

  const complete = async (taskId: string, result: unknown): Promise<void> => {
    const item = taskId.slice(taskId.indexOf(':') + 1)
    const done = await workerApi.post<WorkOpResult>('work/op', {
      board: 'a2a',
      as: worker.principal,
      op: { op: 'complete', item, result }
    })
    assert.deepEqual(done.outcome, { accepted: true })
  }

  before(async () => {
    node = await memoryNode()
    // the node's API server, with the binding mounted as a node process mounts it
    api = await startApiServer({
      node,
      token: TOKEN,
      port: 0,
      pageDir: '/nonexistent',
      mounts: ({ url, tokens }) => a2aMounts({ node, url, tokens })
    })
    operator = apiClient(api.url, TOKEN)
    root = await key()
    await operator.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
    worker = await operator.post<HostedAgentView>('agents', { kind: 'external', id: 'worker' })
    requester = await operator.post<HostedAgentView>('agents', { kind: 'external', id: 'requester' })
    stranger = await operator.post<HostedAgentView>('agents', { kind: 'external', id: 'stranger' })
    workerApi = apiClient(api.url, worker.token as string)
    await grantTo(worker.principal, '(cyberspace (work a2a))')
    await grantTo(requester.principal, '(cyberspace (work a2a))')
    base = `${api.url}${A2A_PREFIX}/${worker.principal}`
    endpoint = `${api.url}${A2A_RPC_PREFIX}/${worker.principal}`
  })

  after(async () => {
    await api.close()
    await node.stop()
  })

  it("serves a hosted agent's card to anyone, naming its JSON-RPC endpoint and bearer authentication", async () => {
    const res = await fetch(`${base}/.well-known/agent-card.json`, { headers: { 'a2a-version': '1.0' } })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('vary'), 'A2A-Version')
    const card = (await res.json()) as Record<string, any>
    assert.equal(card.name, 'external/worker')
    assert.deepEqual(card.supportedInterfaces[0], { url: endpoint, protocolBinding: 'JSONRPC', protocolVersion: '1.0' })
    assert.deepEqual(card.supportedInterfaces[1], { url: endpoint, protocolBinding: 'JSONRPC', protocolVersion: '0.3' })
    // the registry's libp2p interface follows
    assert.equal(card.supportedInterfaces[2].protocolBinding, 'urn:cyberspace:a2a:libp2p')
    assert.equal(card.capabilities.streaming, true)
    assert.equal(card.securitySchemes.bearer.httpAuthSecurityScheme.scheme, 'Bearer')
    assert.deepEqual(card.securityRequirements, [{ schemes: { bearer: {} } }])
    assert.ok(card.skills.some((s: { id: string }) => s.id === 'kind:external'))
    // the SDK's resolver reads it as a v1.0 card
    const resolved = await new DefaultAgentCardResolver().resolve(`${base}/`)
    assert.equal(resolved.supportedInterfaces[0].url, endpoint)
  })

  it('completes a task sent with the SDK client: the agent claims and completes its work item, GetTask shows the result as an artifact', async () => {
    const client = await a2aClient(`${base}/`, requester.token as string)
    assert.equal(client.protocolVersion, '1.0')
    // a blocking send: it answers once the agent's program completed the item
    const sent = client.sendMessage(textMessage('Summarize the release notes\nin three lines'))
    const tasks = await until(async () => {
      const page = await workerApi.get<ItemPage>('work/items', { board: 'a2a', assignee: worker.principal })
      return page.items.length > 0 ? page.items : undefined
    }, 'the task on the board')
    const item = tasks[0]
    assert.equal(item.kind, 'a2a')
    assert.equal(item.title, 'Summarize the release notes')
    assert.equal(item.description, 'Summarize the release notes\nin three lines')
    assert.equal(item.createdBy, requester.principal)
    const taskId = `a2a:${item.id}`
    await claimNext(taskId)
    await complete(taskId, { summary: ['one', 'two', 'three'] })
    const result = (await sent) as Task
    assert.equal(result.id, taskId)
    assert.equal(result.status?.state, TaskState.TASK_STATE_COMPLETED)
    const got = await client.getTask({ tenant: '', id: taskId })
    assert.equal(got.status?.state, TaskState.TASK_STATE_COMPLETED)
    assert.equal(got.contextId, taskId)
    assert.equal(got.artifacts.length, 1)
    assert.equal(got.artifacts[0].artifactId, 'result')
    const part = got.artifacts[0].parts[0].content
    assert.equal(part?.$case, 'data')
    assert.deepEqual(part?.value, { summary: ['one', 'two', 'three'] })
    // the request is the history's first message
    assert.equal(got.history[0].parts[0].content?.value, 'Summarize the release notes\nin three lines')
    assert.deepEqual((await client.getTask({ tenant: '', id: taskId, historyLength: 0 })).history, [])
  })

  it('SubscribeToTask streams the task, then working, then its artifact and completed', async () => {
    const client = await a2aClient(`${base}/`, requester.token as string)
    const task = (await client.sendMessage(textMessage('follow me', { returnImmediately: true }))) as Task
    assert.equal(task.status?.state, TaskState.TASK_STATE_SUBMITTED)
    const seen: string[] = []
    const events: StreamResponse[] = []
    const stream = client.resubscribeTask({ tenant: '', id: task.id })
    const first = await stream.next()
    assert.equal(first.value?.payload?.$case, 'task')
    events.push(first.value as StreamResponse)
    seen.push('task:submitted')
    await claimNext(task.id)
    const working = await stream.next()
    assert.equal(working.value?.payload?.$case, 'statusUpdate')
    assert.equal(
      working.value?.payload?.$case === 'statusUpdate' ? working.value.payload.value.status?.state : undefined,
      TaskState.TASK_STATE_WORKING
    )
    seen.push('working')
    await complete(task.id, 'done')
    for await (const event of stream) {
      events.push(event)
      const payload = event.payload
      if (payload?.$case === 'artifactUpdate') seen.push(`artifact:${payload.value.artifact?.artifactId ?? ''}`)
      if (payload?.$case === 'statusUpdate')
        seen.push(TaskState[payload.value.status?.state ?? 0].replace('TASK_STATE_', '').toLowerCase())
    }
    assert.deepEqual(seen, ['task:submitted', 'working', 'artifact:result', 'completed'])
    const artifact = events.find(e => e.payload?.$case === 'artifactUpdate')
    assert.equal(
      artifact?.payload?.$case === 'artifactUpdate'
        ? artifact.payload.value.artifact?.parts[0].content?.value
        : undefined,
      'done'
    )
    // an ended task has nothing to follow
    await assert.rejects(async () => {
      for await (const _ of client.resubscribeTask({ tenant: '', id: task.id })) {
      }
    }, /terminal|ended/i)
  })

  it('SendStreamingMessage streams a new task to its end; a later message in its context joins it', async () => {
    const client = await a2aClient(`${base}/`, requester.token as string)
    const states: string[] = []
    let taskId = ''
    const stream = client.sendMessageStream(textMessage('stream this'))
    for await (const event of stream) {
      const payload = event.payload
      if (payload?.$case === 'task') {
        taskId = payload.value.id
        states.push(`task:${TaskState[payload.value.status?.state ?? 0]}`)
        await claimNext(taskId)
      } else if (payload?.$case === 'statusUpdate') {
        states.push(TaskState[payload.value.status?.state ?? 0])
        if (payload.value.status?.state === TaskState.TASK_STATE_WORKING) await complete(taskId, 'streamed')
      }
    }
    assert.deepEqual(states, ['task:TASK_STATE_SUBMITTED', 'TASK_STATE_WORKING', 'TASK_STATE_COMPLETED'])
    // a follow-up in the same context: a task of its own, under the first
    const next = (await client.sendMessage(
      textMessage('and then', { contextId: taskId, returnImmediately: true })
    )) as Task
    assert.notEqual(next.id, taskId)
    assert.equal(next.contextId, taskId)
    const again = (await client.sendMessage(
      textMessage('and more', { contextId: next.contextId, returnImmediately: true })
    )) as Task
    assert.equal(again.contextId, taskId)
    // a context that is no task here is refused
    const bogus = await rpc(
      endpoint,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'SendMessage',
        params: { message: { messageId: 'm1', role: 'ROLE_USER', parts: [{ text: 'x' }], contextId: 'made-up' } }
      }),
      { authorization: `Bearer ${requester.token as string}` }
    )
    assert.equal(bogus.body.error.code, -32602)
    assert.match(bogus.body.error.message, /contextId made-up names no task context here/)
  })

  it('a blocking send answers when the agent asks for input, with what it asked; a new binding reads the task from the board', async () => {
    const client = await a2aClient(`${base}/`, requester.token as string)
    const sent = client.sendMessage(textMessage('Tag the release'))
    const taskId = await until(async () => {
      const page = await workerApi.get<ItemPage>('work/items', {
        board: 'a2a',
        assignee: worker.principal,
        status: 'submitted'
      })
      const item = page.items.find(i => i.title === 'Tag the release')
      return item == null ? undefined : `a2a:${item.id}`
    }, 'the task on the board')
    await claimNext(taskId)
    const asked = await workerApi.post<WorkOpResult>('work/op', {
      board: 'a2a',
      as: worker.principal,
      op: { op: 'progress', item: taskId.slice(4), percent: 10, status: 'input-required', message: 'Which version?' }
    })
    assert.deepEqual(asked.outcome, { accepted: true })
    const task = (await sent) as Task
    assert.equal(task.status?.state, TaskState.TASK_STATE_INPUT_REQUIRED)
    assert.equal(task.status?.message?.parts[0].content?.value, 'Which version?')
    assert.equal(task.metadata?.progress, 10)
    // nothing of a task is kept by the binding: another one (as after a restart of the API) reads it from the board
    const fresh = await startApiServer({
      node,
      token: TOKEN,
      port: 0,
      pageDir: '/nonexistent',
      mounts: ({ url }) => a2aMounts({ node, url })
    })
    try {
      const again = await a2aClient(`${fresh.url}${A2A_PREFIX}/${worker.principal}/`, TOKEN)
      const read = await again.getTask({ tenant: '', id: taskId })
      assert.equal(read.status?.state, TaskState.TASK_STATE_INPUT_REQUIRED)
      assert.deepEqual(
        read.history.map(m => m.parts[0].content?.value),
        ['Tag the release', 'Which version?']
      )
    } finally {
      await fresh.close()
    }
  })

  it('speaks A2A v0.3 to a client that does not say A2A-Version: its card form, its method names', async () => {
    const res = await fetch(`${base}/.well-known/agent-card.json`)
    const raw = (await res.json()) as Record<string, any>
    assert.equal(raw.protocolVersion, '0.3.0')
    assert.equal(raw.url, endpoint)
    assert.equal(raw.preferredTransport, 'JSONRPC')
    assert.deepEqual(raw.securitySchemes.bearer, {
      type: 'http',
      scheme: 'bearer',
      description: raw.securitySchemes.bearer.description
    })
    assert.deepEqual(raw.security, [{ bearer: [] }])
    assert.equal(parseLegacyAgentCard(raw).name, 'external/worker')
    // the SDK's v0.3 transport: message/send (not blocking, as v0.3 defaults), tasks/resubscribe, tasks/get
    const legacy = new LegacyJsonRpcTransport({ endpoint: raw.url, fetchImpl: bearerFetch(requester.token as string) })
    const sent = await legacy.sendMessage(textMessage('the old way', { returnImmediately: true }))
    assert.ok('id' in sent && 'status' in sent)
    const task = sent as Task
    assert.equal(task.status?.state, TaskState.TASK_STATE_SUBMITTED)
    const stream = legacy.resubscribeTask({ tenant: '', id: task.id })
    assert.equal((await stream.next()).value?.payload?.$case, 'task')
    await claimNext(task.id)
    const working = await stream.next()
    assert.equal(
      working.value?.payload?.$case === 'statusUpdate' ? working.value.payload.value.status?.state : undefined,
      TaskState.TASK_STATE_WORKING
    )
    await complete(task.id, 'old but fine')
    const rest: string[] = []
    for await (const event of stream) rest.push(event.payload?.$case ?? '')
    assert.deepEqual(rest, ['artifactUpdate', 'statusUpdate'])
    const done = await legacy.getTask({ tenant: '', id: task.id })
    assert.equal(done.status?.state, TaskState.TASK_STATE_COMPLETED)
    assert.equal(done.artifacts[0].parts[0].content?.value, 'old but fine')
    // on the wire: v0.3's shapes
    const wire = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${requester.token as string}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tasks/get', params: { id: task.id } })
    })
    const body = (await wire.json()) as { result: Record<string, any> }
    assert.equal(body.result.kind, 'task')
    assert.equal(body.result.status.state, 'completed')
    // a refusal keeps its code through the v0.3 transport
    const refused = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${stranger.token as string}` },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 2,
        method: 'message/send',
        params: { message: { kind: 'message', messageId: 'm', role: 'user', parts: [{ kind: 'text', text: 'hi' }] } }
      })
    })
    assert.equal(((await refused.json()) as { error: { code: number } }).error.code, A2A_FORBIDDEN_CODE)
  })

  it('a stream of a token revoked meanwhile ends, saying so', async () => {
    const minted = api.tokens.mint(requester.principal)
    const client = await a2aClient(`${base}/`, minted.token)
    const task = (await client.sendMessage(textMessage('until revoked', { returnImmediately: true }))) as Task
    const stream = client.resubscribeTask({ tenant: '', id: task.id })
    assert.equal((await stream.next()).value?.payload?.$case, 'task')
    api.tokens.revoke({ id: minted.id })
    await assert.rejects(stream.next(), (err: Error) => {
      assert.match(err.message, /was revoked/)
      assert.match(err.message, new RegExp(String(A2A_FORBIDDEN_CODE)))
      return true
    })
    await assert.rejects(client.getTask({ tenant: '', id: task.id }), /401/)
  })

  it('CancelTask cancels a task not yet ended, and refuses one that has', async () => {
    const client = await a2aClient(`${base}/`, requester.token as string)
    const task = (await client.sendMessage(textMessage('never mind', { returnImmediately: true }))) as Task
    const canceled = await client.cancelTask({ tenant: '', id: task.id, metadata: undefined })
    assert.equal(canceled.status?.state, TaskState.TASK_STATE_CANCELED)
    await assert.rejects(client.cancelTask({ tenant: '', id: task.id, metadata: undefined }), (err: Error) => {
      assert.equal(err.name, 'TaskNotCancelableError')
      return true
    })
  })

  it('refuses a missing or wrong token (401) and an unknown agent (404), for cards and calls', async () => {
    const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'GetTask', params: { id: 'a2a:x' } })
    const none = await rpc(endpoint, call)
    assert.equal(none.status, 401)
    assert.equal(none.body.name, 'ApiTokenError')
    const wrong = await rpc(endpoint, call, { authorization: 'Bearer not-a-token' })
    assert.equal(wrong.status, 401)
    // the SDK's client is told so
    const client = await a2aClient(`${base}/`, 'x'.repeat(43))
    await assert.rejects(client.getTask({ tenant: '', id: 'a2a:x' }), /401/)
    const nobody = (await key()).id
    const card = await fetch(`${api.url}${A2A_PREFIX}/${nobody}/.well-known/agent-card.json`)
    assert.equal(card.status, 404)
    assert.equal(((await card.json()) as { name: string }).name, 'AgentNotFoundHereError')
    const unknown = await rpc(`${api.url}${A2A_RPC_PREFIX}/${nobody}`, call, { authorization: `Bearer ${TOKEN}` })
    assert.equal(unknown.status, 404)
    await assert.rejects(a2aClient(`${api.url}${A2A_PREFIX}/${nobody}/`, TOKEN), /404/)
    const junk = await fetch(`${api.url}${A2A_PREFIX}/not-a-principal/.well-known/agent-card.json`)
    assert.equal(junk.status, 404)
  })

  it('answers malformed JSON-RPC with JSON-RPC errors', async () => {
    const auth = { authorization: `Bearer ${requester.token as string}` }
    const parse = await rpc(endpoint, '{"jsonrpc": "2.0", "method": ', auth)
    assert.equal(parse.status, 200)
    assert.deepEqual([parse.body.id, parse.body.error.code], [null, -32700])
    const batch = await rpc(
      endpoint,
      JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'GetTask', params: { id: 'a2a:x' } }]),
      auth
    )
    assert.equal(batch.body.error.code, -32600)
    assert.match(batch.body.error.message, /batches are not served/)
    const notRpc = await rpc(endpoint, JSON.stringify({ jsonrpc: '1.0', id: 2, method: 'GetTask' }), auth)
    assert.equal(notRpc.body.error.code, -32600)
    const method = await rpc(
      endpoint,
      JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tasks/steal', params: {} }),
      auth
    )
    assert.deepEqual([method.body.id, method.body.error.code], [3, -32601])
    const params = await rpc(endpoint, JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'GetTask', params: [1] }), auth)
    assert.equal(params.body.error.code, -32602)
    const missing = await rpc(
      endpoint,
      JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'GetTask', params: { id: 'a2a:nope' } }),
      auth
    )
    assert.equal(missing.body.error.code, -32001)
    const empty = await rpc(
      endpoint,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 6,
        method: 'SendMessage',
        params: { message: { messageId: 'm', role: 'ROLE_USER', parts: [] } }
      }),
      auth
    )
    assert.equal(empty.body.error.code, -32602)
    const bytes = await rpc(
      endpoint,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 8,
        method: 'SendMessage',
        params: { message: { messageId: 'm', role: 'ROLE_USER', parts: [{ raw: 'aGVsbG8=' }] } }
      }),
      auth
    )
    assert.equal(bytes.body.error.code, -32005)
    // a version it does not speak: the error names those it does
    const future = await rpc(
      endpoint,
      JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'GetTask', params: { id: 'a2a:x' } }),
      {
        ...auth,
        'a2a-version': '2.0'
      }
    )
    assert.equal(future.body.error.code, -32009)
    assert.match(future.body.error.message, /1\.0/)
    const form = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', ...auth },
      body: '{}'
    })
    assert.equal(form.status, 415)
    assert.equal(((await form.json()) as { name: string }).name, 'UnsupportedMediaTypeError')
    const big = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'a2a-version': '1.0', ...auth },
      body: 'x'.repeat(MAX_A2A_BODY_BYTES + 1)
    })
    assert.equal(big.status, 413)
    assert.equal(((await big.json()) as { name: string }).name, 'BodyTooLargeError')
    const get = await fetch(endpoint, { headers: auth })
    assert.equal(get.status, 405)
    assert.equal(get.headers.get('allow'), 'POST')
    await get.body?.cancel()
    // a data part nested as deep as the body allows: refused before anything reads it
    const depth = 30_000
    const deep = await rpc(
      endpoint,
      `{"jsonrpc":"2.0","id":11,"method":"SendMessage","params":{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"data":${'['.repeat(depth)}${']'.repeat(depth)}}]}}}`,
      auth
    )
    assert.equal(deep.status, 200)
    assert.equal(deep.body.error.code, -32600)
    assert.match(deep.body.error.message, /nested deeper than 32/)
    // and the node goes on serving
    const ok = await rpc(
      endpoint,
      JSON.stringify({ jsonrpc: '2.0', id: 10, method: 'GetTask', params: { id: 'a2a:nope' } }),
      auth
    )
    assert.equal(ok.body.error.code, -32001)
  })

  it("acts within the caller's chain: no task without the board's rights, no reading another's tasks without them", async () => {
    const strangerClient = await a2aClient(`${base}/`, stranger.token as string)
    const refused = await rpc(
      endpoint,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'SendMessage',
        params: SendMessageRequest.toJSON(textMessage('let me in'))
      }),
      { authorization: `Bearer ${stranger.token as string}` }
    )
    assert.equal(refused.body.error.code, A2A_FORBIDDEN_CODE)
    assert.match(refused.body.error.message, /stranger|z6Mk/)
    // the requester's task exists, but the stranger is told only that there is none it may read
    const client = await a2aClient(`${base}/`, requester.token as string)
    const task = (await client.sendMessage(textMessage('private', { returnImmediately: true }))) as Task
    await assert.rejects(strangerClient.getTask({ tenant: '', id: task.id }), (err: Error) => {
      assert.equal(err.name, 'TaskNotFoundError')
      return true
    })
    await assert.rejects(strangerClient.cancelTask({ tenant: '', id: task.id, metadata: undefined }), (err: Error) => {
      assert.equal(err.name, 'TaskNotFoundError')
      return true
    })
    // an agent's token acts only as its agent
    const as = await rpc(
      endpoint,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 2,
        method: 'SendMessage',
        params: SendMessageRequest.toJSON(textMessage('as the worker', { as: worker.principal }))
      }),
      { authorization: `Bearer ${stranger.token as string}` }
    )
    assert.equal(as.body.error.code, A2A_FORBIDDEN_CODE)
    // the operator reads every task, and sends as the agent addressed (or the one it names)
    const operatorClient = await a2aClient(`${base}/`, TOKEN)
    assert.equal((await operatorClient.getTask({ tenant: '', id: task.id })).id, task.id)
    const own = (await operatorClient.sendMessage(
      textMessage('from the operator', { returnImmediately: true })
    )) as Task
    assert.equal(own.metadata?.createdBy, worker.principal)
    const named = (await operatorClient.sendMessage(
      textMessage('for the requester', { returnImmediately: true, as: requester.principal })
    )) as Task
    assert.equal(named.metadata?.createdBy, requester.principal)
    const absent = await rpc(
      endpoint,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 4,
        method: 'SendMessage',
        params: SendMessageRequest.toJSON(textMessage('as nobody', { returnImmediately: true, as: (await key()).id }))
      }),
      { authorization: `Bearer ${TOKEN}` }
    )
    assert.equal(absent.body.error.code, -32602)
    assert.match(absent.body.error.message, /does not run on this node/)
    // a task sent to one agent is not another's, even for the operator
    const other = `${api.url}${A2A_RPC_PREFIX}/${requester.principal}`
    const elsewhere = await rpc(
      other,
      JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'GetTask', params: { id: task.id } }),
      {
        authorization: `Bearer ${TOKEN}`
      }
    )
    assert.equal(elsewhere.body.error.code, -32001)
  })

  it(`holds at most ${MAX_STREAMS_PER_CALLER} streams open per token (429 past it), and frees them when they end`, async () => {
    const client = await a2aClient(`${base}/`, requester.token as string)
    const task = (await client.sendMessage(textMessage('watched', { returnImmediately: true }))) as Task
    const controllers: AbortController[] = []
    const subscribe = async (): Promise<Response> => {
      const controller = new AbortController()
      controllers.push(controller)
      return await fetch(endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'a2a-version': '1.0',
          accept: 'text/event-stream',
          authorization: `Bearer ${requester.token as string}`
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'SubscribeToTask', params: { id: task.id } }),
        signal: controller.signal
      })
    }
    const open: Response[] = []
    for (let i = 0; i < MAX_STREAMS_PER_CALLER; i++) {
      const res = await subscribe()
      assert.equal(res.status, 200, res.status === 200 ? '' : await res.text())
      assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/)
      open.push(res)
    }
    const over = await subscribe()
    assert.equal(over.status, 429)
    assert.equal(((await over.json()) as { name: string }).name, 'TooManyWaitersError')
    // another token has places of its own
    const workerSub = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'a2a-version': '1.0', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'GetTask', params: { id: task.id } })
    })
    assert.equal(workerSub.status, 200)
    for (const c of controllers) c.abort()
    await Promise.allSettled(open.map(async r => await r.body?.cancel()))
    // the places come back once the server sees the streams closed
    const again = await until(async () => {
      const res = await subscribe()
      if (res.status === 200) return res
      await res.body?.cancel()
      return undefined
    }, 'a free place')
    assert.equal(again.status, 200)
    controllers[controllers.length - 1].abort()
  })
})
