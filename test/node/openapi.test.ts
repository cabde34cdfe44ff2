/**
 * The OpenAPI 3.1 document of the public API (src/api/openapi.ts), and a walk of it against a real
 * node.
 *
 * No OpenAPI 3.1 meta-schema is available offline here, so the document's structure is checked by
 * hand against the specification's rules that matter to a client (operations, parameters and path
 * templates agree, every reference resolves, ids are unique, security names a declared scheme), and
 * every schema in it is checked against the JSON Schema 2020-12 meta-schema and compiled by Ajv.
 * Then every operation is called on a node over real HTTP with valid input — the answer must
 * validate against the documented 200 schema — and with bad input, which must get a status the
 * operation documents and a body the Problem schema takes.
 */
import { strict as assert } from 'node:assert'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import { problemOf, InvalidRequestError } from '../../node/api/http.ts'
import { startApiServer } from '../../node/api/server.ts'
import { openApiDocument, requestSchemas } from '../../src/api/openapi.ts'
import { ROUTES } from '../../src/api/routes.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { ErrorObject, ValidateFunction } from 'ajv'
import type { ApiServer } from '../../node/api/server.ts'
import type { JsonSchema, OpenApiDocument, OpenApiOperation } from '../../src/api/openapi.ts'
import type { RouteSpec } from '../../src/api/routes.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']
const OPERATOR = 'operator-t0ken-openapi'

/** A JSON value, walked field by field. */
type Json = any

function newAjv(): Ajv2020 {
  const ajv = new Ajv2020({ strict: true, allErrors: true, strictTuples: false })
  ;(addFormats as unknown as (a: Ajv2020) => void)(ajv)
  // the document's own extension keyword for a stream's event data
  ajv.addKeyword('x-cyberspace-event-data')
  return ajv
}

/** Every `$ref` in `value`, with where it stands. */
function refsIn(value: unknown, at: string, into: Array<{ ref: string; at: string }>): void {
  if (Array.isArray(value)) value.forEach((v, i) => refsIn(v, `${at}/${i}`, into))
  else if (value != null && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string') into.push({ ref: v, at })
      else refsIn(v, `${at}/${k}`, into)
    }
}

/** What a local reference (`#/a/b`) points to in `doc`. */
function resolve(doc: unknown, ref: string): unknown {
  assert.ok(ref.startsWith('#/'), `only local references: ${ref}`)
  let here: unknown = doc
  for (const part of ref.slice(2).split('/')) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~')
    here = here != null && typeof here === 'object' ? (here as Record<string, unknown>)[key] : undefined
  }
  return here
}

/** `value` with every `$ref` replaced by its target (a bounded number of times: the document has no cycles). */
function deref(doc: unknown, value: unknown, depth = 0): unknown {
  assert.ok(depth < 32, 'references nest too deep')
  if (Array.isArray(value)) return value.map(v => deref(doc, v, depth + 1))
  if (value == null || typeof value !== 'object') return value
  const ref = (value as { $ref?: unknown }).$ref
  if (typeof ref === 'string') return deref(doc, resolve(doc, ref), depth + 1)
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, deref(doc, v, depth + 1)]))
}

/** Each operation of the document with its path and method. */
function operations(doc: OpenApiDocument): Array<{ path: string; method: string; op: OpenApiOperation }> {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ path, method, op }))
  )
}

/** Every schema the document holds, by where it stands. */
function schemasOf(doc: OpenApiDocument): Array<{ at: string; schema: JsonSchema }> {
  const found: Array<{ at: string; schema: JsonSchema }> = []
  for (const [name, schema] of Object.entries(doc.components.schemas))
    found.push({ at: `components.schemas.${name}`, schema })
  for (const { path, method, op } of operations(doc)) {
    const at = `${method.toUpperCase()} ${path}`
    for (const p of op.parameters ?? []) found.push({ at: `${at} ${p.in} ${p.name}`, schema: p.schema })
    for (const [type, media] of Object.entries(op.requestBody?.content ?? {}))
      found.push({ at: `${at} body ${type}`, schema: media.schema })
    for (const [status, response] of Object.entries(op.responses)) {
      const content = (response as { content?: Record<string, Record<string, JsonSchema>> }).content ?? {}
      for (const [type, media] of Object.entries(content)) {
        found.push({ at: `${at} ${status} ${type}`, schema: media.schema })
        if (media['x-cyberspace-event-data'] != null)
          found.push({ at: `${at} ${status} event data`, schema: media['x-cyberspace-event-data'] })
      }
    }
  }
  return found
}

describe('OpenAPI document', () => {
  const doc = openApiDocument()

  it('is an OpenAPI 3.1 document: info, tags, security schemes, and JSON all through', () => {
    assert.equal(doc.openapi, '3.1.0')
    assert.equal(typeof doc.info.title, 'string')
    assert.equal(typeof doc.info.version, 'string')
    assert.deepEqual(JSON.parse(JSON.stringify(doc)), doc, 'plain JSON: nothing lost in serializing')
    const tagNames = doc.tags.map(t => t.name)
    assert.equal(new Set(tagNames).size, tagNames.length, 'tags are unique')
    assert.deepEqual(doc.components.securitySchemes.bearer, {
      type: 'http',
      scheme: 'bearer',
      description: (doc.components.securitySchemes.bearer as { description: string }).description
    })
    for (const requirement of doc.security)
      for (const name of Object.keys(requirement)) assert.ok(name in doc.components.securitySchemes, name)
    for (const path of Object.keys(doc.paths)) {
      assert.ok(path.startsWith('/'), path)
      for (const method of Object.keys(doc.paths[path])) assert.ok(METHODS.includes(method), `${path} ${method}`)
    }
  })

  it('has one operation per route, with its id, method, path, tag and who may call it', () => {
    const ops = operations(doc)
    assert.equal(ops.length, Object.keys(ROUTES).length)
    const ids = ops.map(o => o.op.operationId)
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique')
    const tagNames = new Set(doc.tags.map(t => t.name))
    for (const [name, spec] of Object.entries(ROUTES as Record<string, RouteSpec>)) {
      const op = doc.paths[spec.path]?.[spec.method.toLowerCase()]
      assert.ok(op != null, `${name}: ${spec.method} ${spec.path}`)
      assert.equal(op.operationId, name)
      assert.equal(op.summary, spec.summary)
      assert.equal(op['x-cyberspace-auth'], spec.auth)
      assert.deepEqual(op.security, spec.auth === 'public' ? [] : [{ bearer: [] }])
      for (const t of op.tags) assert.ok(tagNames.has(t), `${name}: tag ${t} is declared`)
      for (const requirement of op.security)
        for (const scheme of Object.keys(requirement)) assert.ok(scheme in doc.components.securitySchemes)
    }
  })

  it('declares each path template parameter as a required path parameter, and no other; query parameters once each', () => {
    for (const { path, method, op } of operations(doc)) {
      const at = `${method.toUpperCase()} ${path}`
      const templated = [...path.matchAll(/\{([^}]+)\}/g)].map(m => m[1]).sort()
      const params = op.parameters ?? []
      const inPath = params.filter(p => p.in === 'path')
      assert.deepEqual(inPath.map(p => p.name).sort(), templated, at)
      for (const p of inPath) assert.equal(p.required, true, `${at} ${p.name}`)
      const keys = params.map(p => `${p.in} ${p.name}`)
      assert.equal(new Set(keys).size, keys.length, `${at}: a parameter is declared once`)
      for (const p of params) {
        assert.ok(['path', 'query', 'header', 'cookie'].includes(p.in), `${at} ${p.name}`)
        assert.ok(p.schema != null && typeof p.schema === 'object', `${at} ${p.name} has a schema`)
      }
      // the query parameters are exactly the route's, with its required ones required
      const spec = ROUTES[op.operationId as keyof typeof ROUTES]
      const query = requestSchemas(spec).query
      const shape = Object.keys(query.shape).sort()
      assert.deepEqual(
        params
          .filter(p => p.in === 'query')
          .map(p => p.name)
          .sort(),
        shape,
        at
      )
      for (const p of params.filter(p => p.in === 'query'))
        assert.equal(p.required, !query.shape[p.name].safeParse(undefined).success, `${at} ${p.name}`)
    }
  })

  it('answers 200 as the route says and every error as a Problem; every reference resolves', () => {
    for (const { path, method, op } of operations(doc)) {
      const at = `${method.toUpperCase()} ${path}`
      const ok = op.responses['200'] as { description: string; content: Record<string, unknown> }
      assert.equal(typeof ok.description, 'string', at)
      const spec: RouteSpec = ROUTES[op.operationId as keyof typeof ROUTES]
      assert.deepEqual(Object.keys(ok.content), [spec.stream === true ? 'text/event-stream' : 'application/json'], at)
      for (const [status, response] of Object.entries(op.responses)) {
        assert.match(status, /^([1-5]\d\d|[1-5]XX|default)$/, `${at} ${status}`)
        if (status !== '200') assert.deepEqual(response, { $ref: '#/components/responses/Problem' }, `${at} ${status}`)
      }
      for (const s of ['400', '4XX', '5XX']) assert.ok(s in op.responses, `${at} documents ${s}`)
      if (spec.auth !== 'public') for (const s of ['401', '403']) assert.ok(s in op.responses, `${at} documents ${s}`)
      if (op.requestBody != null) {
        assert.deepEqual(Object.keys(op.requestBody.content), ['application/json'], at)
        assert.equal(typeof op.requestBody.required, 'boolean')
      }
    }
    const refs: Array<{ ref: string; at: string }> = []
    refsIn(doc, '#', refs)
    assert.ok(refs.length > 0)
    for (const { ref, at } of refs) assert.ok(resolve(doc, ref) != null, `${ref} at ${at} resolves`)
  })

  it('holds only schemas valid against JSON Schema 2020-12, each compiling', () => {
    const ajv = newAjv()
    const schemas = schemasOf(doc)
    assert.ok(schemas.length > 100)
    for (const { at, schema } of schemas) {
      const full = deref(doc, schema) as JsonSchema
      assert.equal(ajv.validateSchema(full), true, `${at}: ${ajv.errorsText(ajv.errors)}`)
      ajv.compile(full)
    }
  })

  it('takes what the router takes: request objects refuse fields they do not name', () => {
    const ajv = newAjv()
    const body = doc.paths['/api/worknodes'].post.requestBody?.content['application/json'].schema as JsonSchema
    const validate = ajv.compile(body)
    assert.equal(validate({ board: 'b1', title: 'a task' }), true, ajv.errorsText(validate.errors))
    assert.equal(validate({ board: 'b1', title: 'a task', titel: 'typo' }), false)
    assert.equal(validate({ board: 'b1' }), false, 'title is required')
    assert.equal(doc.paths['/api/worknodes'].post.requestBody?.required, true)
    // a claim needs no body: {} is what the router reads
    assert.equal(doc.paths['/api/tasks/{id}/claim'].post.requestBody?.required, false)
  })

  it("documents the Problem every error is: the server's own answers validate", () => {
    const ajv = newAjv()
    const validate = ajv.compile(deref(doc, doc.components.schemas.Problem) as JsonSchema)
    const cases = [
      problemOf(
        new InvalidRequestError('invalid request: body.title', [{ field: 'body.title', message: 'Too small' }]),
        400
      ),
      problemOf(Object.assign(new Error('2 members failed'), { name: 'ThresholdError', members: ['a'] }), 502),
      problemOf(new Error('plain'), 500, { instance: '/api/x', legacy: true })
    ]
    for (const p of cases) assert.equal(validate(p), true, `${JSON.stringify(p)}: ${ajv.errorsText(validate.errors)}`)
    assert.equal(validate({ title: 'no type' }), false)
  })
})

describe('OpenAPI walk: every operation answers as documented', function () {
  this.timeout(120_000)
  const doc = openApiDocument()
  const ajv = newAjv()
  const walked = new Set<string>()
  const byId = new Map(operations(doc).map(o => [o.op.operationId, o]))
  let node: CyberspaceNode
  let server: ApiServer
  let walker: { principal: PrincipalId; token: string }
  let peer: { principal: PrincipalId; token: string }
  const validators = new Map<string, ValidateFunction>()

  const validatorOf = (id: string, schema: JsonSchema): ValidateFunction => {
    let v = validators.get(id)
    if (v == null) validators.set(id, (v = ajv.compile(deref(doc, schema) as JsonSchema)))
    return v
  }

  interface Call {
    params?: Record<string, string>
    query?: Record<string, string>
    body?: unknown
    token?: string | null
  }

  /** The URL of operation `id` with its path parameters filled in and its query. */
  const urlOf = (id: string, call: Call): URL => {
    const { path } = byId.get(id) ?? assert.fail(`no operation ${id}`)
    const filled = path.replace(/\{([^}]+)\}/g, (_, name: string) =>
      encodeURIComponent(call.params?.[name] ?? assert.fail(`${id}: no ${name}`))
    )
    const url = new URL(filled, server.url)
    for (const [k, v] of Object.entries(call.query ?? {})) url.searchParams.set(k, v)
    return url
  }

  const send = async (id: string, call: Call): Promise<{ status: number; type: string; body: Json }> => {
    const { method } = byId.get(id) ?? assert.fail(`no operation ${id}`)
    const headers: Record<string, string> = {}
    const token = call.token === undefined ? OPERATOR : call.token
    if (token != null) headers.authorization = `Bearer ${token}`
    if (call.body !== undefined) headers['content-type'] = 'application/json'
    const res = await fetch(urlOf(id, call), {
      method: method.toUpperCase(),
      headers,
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
      signal: AbortSignal.timeout(30_000)
    })
    const text = await res.text()
    return {
      status: res.status,
      type: res.headers.get('content-type') ?? '',
      body: text === '' ? undefined : JSON.parse(text)
    }
  }

  /** Fails unless `answer` is a Problem with a status operation `id` documents. */
  const documentedProblem = (id: string, answer: { status: number; type: string; body: Json }): void => {
    const { op } = byId.get(id) ?? assert.fail(id)
    const documented = Object.keys(op.responses)
    assert.ok(
      documented.includes(String(answer.status)) || documented.includes(`${String(answer.status)[0]}XX`),
      `${id}: ${answer.status} is documented`
    )
    assert.equal(answer.type, 'application/problem+json', `${id}: ${JSON.stringify(answer.body)}`)
    const validate = validatorOf('Problem', doc.components.schemas.Problem)
    assert.equal(validate(answer.body), true, `${id}: ${ajv.errorsText(validate.errors as ErrorObject[])}`)
    assert.equal(answer.body.status, answer.status)
  }

  /**
   * Calls operation `id` with valid input: 200, and an answer the documented schema takes. Then bad
   * input: an unknown query parameter (every operation), a bad path parameter, a body with a field
   * it does not have, and no token — each a documented Problem naming what was wrong.
   */
  const walk = async (id: string, call: Call): Promise<Json> => {
    const { op } = byId.get(id) ?? assert.fail(id)
    const answer = await send(id, call)
    assert.equal(answer.status, 200, `${id}: ${JSON.stringify(answer.body)}`)
    assert.equal(answer.type, 'application/json')
    const schema = (op.responses['200'] as { content: Record<string, { schema: JsonSchema }> }).content[
      'application/json'
    ].schema
    const validate = validatorOf(id, schema)
    assert.equal(
      validate(answer.body),
      true,
      `${id}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(answer.body)}`
    )
    await badInput(id, call)
    walked.add(id)
    return answer.body
  }

  const badInput = async (id: string, call: Call): Promise<void> => {
    const { op } = byId.get(id) ?? assert.fail(id)
    const named = async (bad: Call, field: string): Promise<void> => {
      const answer = await send(id, bad)
      assert.equal(answer.status, 400, `${id} ${field}: ${JSON.stringify(answer.body)}`)
      documentedProblem(id, answer)
      assert.equal(answer.body.name, 'InvalidRequestError')
      assert.ok(
        (answer.body.errors as Array<{ field: string }>).some(e => e.field === field),
        `${id}: ${field} named in ${JSON.stringify(answer.body)}`
      )
    }
    await named({ ...call, query: { ...call.query, bogus: '1' } }, 'query.bogus')
    const pathParam = (op.parameters ?? []).find(p => p.in === 'path')
    if (pathParam != null)
      await named({ ...call, params: { ...call.params, [pathParam.name]: 'Not Valid!' } }, `params.${pathParam.name}`)
    if (op.requestBody != null) {
      const body = call.body != null && typeof call.body === 'object' ? call.body : {}
      await named({ ...call, body: { ...body, bogus: 1 } }, 'body.bogus')
    }
    if (op.security.length > 0) {
      const answer = await send(id, { ...call, token: null })
      assert.equal(answer.status, 401)
      documentedProblem(id, answer)
      assert.equal(answer.body.name, 'ApiTokenError')
    }
  }

  before(async () => {
    // alone, a registry lookup waits for peers that never come: a short wait keeps find quick
    node = await memoryNode({ registryOptions: { lookupTimeout: 1000 } })
    // the node's own handlers: what startApiServer serves when given none
    server = await startApiServer({ node, token: OPERATOR, port: 0, pageDir: '/nonexistent' })
    const root = await key()
    await node.spki.addAclEntry(root.id, tag('(cyberspace)'))
    const grantTo = async (principal: PrincipalId, tagText: string): Promise<void> => {
      await node.spki.addCert(await grant(root, { kind: 'key', principal }, tagText, { propagate: false }))
    }
    const attached = await walk('attachAgent', { body: { kind: 'external', id: 'walker' } })
    walker = { principal: attached.principal, token: attached.token }
    const other = await send('attachAgent', { body: { kind: 'external', id: 'peer' } })
    peer = { principal: other.body.principal, token: other.body.token }
    await grantTo(walker.principal, '(cyberspace (work b1))')
    await grantTo(walker.principal, `(cyberspace (mailbox (send ${peer.principal})))`)
    await grantTo(peer.principal, '(cyberspace (work b1))')
    // the registry serves records of members' agents: this node is one
    await grantTo(node.spki.principal, '(cyberspace member)')
  })

  after(async () => {
    await server.close()
    await node.stop()
  })

  it('the node: whoami, node, members, fleet', async () => {
    const me = await walk('whoami', { token: walker.token })
    assert.equal(me.principal, walker.principal)
    await walk('node', { token: walker.token })
    await walk('members', { query: { limit: '10' } })
    await walk('fleet', { token: walker.token })
  })

  it('agents and tokens: hosted, tokens listed, minted and revoked, found and read in the registry', async () => {
    await walk('hostedAgents', {})
    const minted = await walk('mintToken', { params: { id: peer.principal } })
    const listed = await walk('listTokens', {})
    assert.ok(listed.tokens.some((t: { id: string }) => t.id === minted.id))
    await walk('revokeToken', { params: { tokenId: minted.id } })
    const published = await node.registry.publish({
      name: 'reviewer',
      description: 'reviews code',
      version: '1.0.0',
      skills: [{ id: 'code-review', name: 'Code review', description: 'reviews a change', tags: ['review'] }]
    })
    await walk('findAgents', { token: walker.token, query: { skill: 'code-review' } })
    await walk('getAgent', { token: walker.token, params: { id: published.agent } })
  })

  it('boards, work items and every task action', async () => {
    await walk('openBoard', { body: { name: 'b1' } })
    await walk('listBoards', { token: walker.token })
    await walk('getBoard', { token: walker.token, params: { board: 'b1' } })
    const as = { token: walker.token }
    await walk('createWorknode', { ...as, body: { board: 'b1', id: 't1', title: 'first' } })
    for (const id of ['t2', 't3', 't4', 't5', 't6', 't7'])
      assert.equal((await send('createWorknode', { ...as, body: { board: 'b1', id, title: id } })).status, 200)
    await walk('listWorknodes', { ...as, query: { board: 'b1' } })
    await walk('getWorknode', { ...as, params: { id: 'b1:t1' } })
    await walk('updateWorknode', { ...as, params: { id: 'b1:t7' }, body: { title: 'renamed' } })
    await walk('deleteWorknode', { ...as, params: { id: 'b1:t7' } })
    await walk('claimTask', { ...as, params: { id: 'b1:t1' } })
    await walk('progressTask', { ...as, params: { id: 'b1:t1' }, body: { percent: 50 } })
    await walk('completeTask', { ...as, params: { id: 'b1:t1' }, body: { result: { ok: true } } })
    for (const id of ['b1:t2', 'b1:t3', 'b1:t5'])
      assert.equal((await send('claimTask', { ...as, params: { id } })).status, 200)
    await walk('releaseTask', { ...as, params: { id: 'b1:t2' }, body: { reason: 'busy' } })
    await walk('failTask', { ...as, params: { id: 'b1:t3' }, body: { error: 'cannot' } })
    await walk('cancelTask', { ...as, params: { id: 'b1:t4' } })
    await walk('handoffTask', { ...as, params: { id: 'b1:t5' }, body: { to: peer.principal } })
    await walk('assignTask', { ...as, params: { id: 'b1:t6' }, body: { assignee: peer.principal } })
    const tasks = await walk('agentTasks', { ...as, params: { id: walker.principal } })
    assert.ok(tasks.tasks.some((t: { ref: string }) => t.ref === 'b1:t1'))
  })

  it('events, as pages and as a stream whose every event the documented event schema takes', async () => {
    const page = await walk('events', { token: walker.token, query: { limit: '50' } })
    assert.ok(page.events.length > 0)
    const first = page.events[0].hlc as [number, number]
    const { op } = byId.get('eventStream') ?? assert.fail('eventStream')
    const media = (op.responses['200'] as { content: Record<string, Record<string, JsonSchema>> }).content[
      'text/event-stream'
    ]
    const validate = validatorOf('eventStream', media['x-cyberspace-event-data'])
    const controller = new AbortController()
    const res = await fetch(urlOf('eventStream', { query: { since: `${first[0]}.${first[1]}` } }), {
      headers: { authorization: `Bearer ${walker.token}` },
      signal: controller.signal
    })
    try {
      assert.equal(res.status, 200)
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
      const reader = (res.body as ReadableStream<Uint8Array>).getReader()
      const decoder = new TextDecoder()
      let text = ''
      let events = 0
      for (let reads = 0; reads < 100 && events < 3; reads++) {
        const { value, done } = await reader.read()
        if (done) break
        text += decoder.decode(value, { stream: true })
        const blocks = text.split('\n\n')
        text = blocks.pop() ?? ''
        for (const block of blocks) {
          const data = block
            .split('\n')
            .filter(l => l.startsWith('data:'))
            .map(l => l.slice(5).trimStart())
            .join('\n')
          if (data === '' || /^event: (?!message)/m.test(block)) continue
          assert.equal(validate(JSON.parse(data)), true, `${ajv.errorsText(validate.errors)}\n${data}`)
          events++
        }
      }
      assert.ok(events >= 3, `${events} events`)
    } finally {
      controller.abort()
    }
    await badInput('eventStream', { token: walker.token, query: {} })
    walked.add('eventStream')
  })

  it('messages: send, read the inbox, reply', async () => {
    const sending = send('send', {
      token: walker.token,
      params: { id: walker.principal },
      body: { to: peer.principal, type: 'note', body: 'hi', id: 'walk-1' }
    })
    const inbox = await walk('inbox', {
      token: peer.token,
      params: { id: peer.principal },
      query: { wait: '20000', limit: '1' }
    })
    assert.equal(inbox.messages[0].id, 'walk-1')
    await walk('reply', { token: peer.token, params: { id: peer.principal }, body: { message: 'walk-1' } })
    const sent = await sending
    assert.equal(sent.status, 200, JSON.stringify(sent.body))
    // the walk of send itself: a request the peer answers
    const asking = walk('send', {
      token: walker.token,
      params: { id: walker.principal },
      body: { to: peer.principal, type: 'ask', body: 1, request: true, timeout: 20_000 }
    })
    // the request waits for the peer's answer (then walk tries send's bad inputs): answer it
    let question: Json
    for (let polls = 0; polls < 20 && question == null; polls++) {
      const waiting = await send('inbox', {
        token: peer.token,
        params: { id: peer.principal },
        query: { wait: '1000' }
      })
      question = waiting.body.messages.find((m: { type: string }) => m.type === 'ask')
    }
    assert.ok(question != null, 'the request reached the peer')
    const replied = await send('reply', {
      token: peer.token,
      params: { id: peer.principal },
      body: { message: question.id, body: 2 }
    })
    assert.equal(replied.status, 200)
    assert.equal((await asking).response, 2)
  })

  it('documents and certificates', async () => {
    await walk('updateDocument', {
      params: { name: 'notes' },
      body: { type: 'or-map', update: { op: 'set', path: ['k'], value: 1 } }
    })
    await walk('listDocuments', {})
    await walk('getDocument', { params: { name: 'notes' } })
    await walk('issueCertificate', {
      body: { subject: peer.principal, tag: '(cyberspace (tool echo))', notAfter: '+1d' }
    })
    await walk('listCertificates', {})
  })

  it('stopping an agent; and every operation of the document was walked', async () => {
    await walk('stopAgent', { params: { id: peer.principal } })
    assert.deepEqual([...walked].sort(), [...byId.keys()].sort())
  })
})
