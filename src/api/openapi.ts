/**
 * The public API's OpenAPI 3.1 document, generated from the route table (src/api/routes.ts) with
 * zod's own JSON Schema output: requests as their input type (what a client sends: defaults
 * optional, query numbers as they are coerced), answers as their output type. Served by the node at
 * `GET /api/openapi.json`; the router validates requests with the same strict forms
 * (`requestSchemas`), so what the document says a route takes is what the node takes.
 *
 * Objects in requests are strict: a field or query parameter a route does not have is refused
 * (400 InvalidRequestError naming it), so a misspelt `?limt=` or `"titel"` is not silently ignored.
 * Every error is a Problem (RFC 9457). Who may call an operation is in `security` and, as
 * `operator`, `agent` or `public`, in its `x-cyberspace-auth`. A stream route answers
 * `text/event-stream`; the schema of each event's data is in the media type's
 * `x-cyberspace-event-data` (OpenAPI 3.1 has no word for it).
 *
 * Runs in browsers (no node: imports).
 *
 * @example
 * const doc = openApiDocument()                 // every route of ROUTES
 * doc.paths['/api/tasks/{id}/complete'].post.operationId   // 'completeTask'
 */
import * as z from 'zod'
import { ROUTES } from './routes.ts'
import { Problem } from './schema.ts'
import type { RouteSpec } from './routes.ts'

export const OPENAPI_VERSION = '3.1.0'

/** A JSON Schema (2020-12, as OpenAPI 3.1 takes it). */
export type JsonSchema = Record<string, unknown>

export interface OpenApiInfo {
  title: string
  version: string
  description?: string
}

/** The OpenAPI document as plain JSON (only the parts this module writes are typed). */
export interface OpenApiDocument {
  openapi: string
  info: OpenApiInfo
  jsonSchemaDialect: string
  tags: Array<{ name: string }>
  security: Array<Record<string, string[]>>
  paths: Record<string, Record<string, OpenApiOperation>>
  components: {
    schemas: Record<string, JsonSchema>
    responses: Record<string, unknown>
    securitySchemes: Record<string, unknown>
  }
}

export interface OpenApiParameter {
  name: string
  in: 'path' | 'query'
  required: boolean
  description?: string
  schema: JsonSchema
}

export interface OpenApiOperation {
  operationId: string
  summary: string
  description?: string
  tags: string[]
  security: Array<Record<string, string[]>>
  'x-cyberspace-auth': RouteSpec['auth']
  parameters?: OpenApiParameter[]
  requestBody?: { required: boolean; content: Record<string, { schema: JsonSchema }> }
  responses: Record<string, unknown>
}

export const DEFAULT_INFO: OpenApiInfo = {
  title: 'Cyberspace node API',
  version: '1',
  description:
    "The HTTP API of a Cyberspace node: work items, agents, messages, events, documents and certificates. Authenticate with `Authorization: Bearer <token>`: the node's operator token, or an agent's token, which acts only as its agent. " +
    'Requests are checked strictly: a query parameter given twice, or a query parameter or body field an operation does not list, is refused (400 InvalidRequestError naming it). ' +
    'A request without a body is read as {}. Every error is an RFC 9457 problem (application/problem+json).'
}

const PROBLEM_REF = { $ref: '#/components/responses/Problem' }
/** Every schema in the document is plain JSON Schema 2020-12, as zod writes it. */
const SCHEMA_DIALECT = 'https://json-schema.org/draft/2020-12/schema'

/** An object schema that refuses keys it does not name (unless it was declared loose). */
function strict<S extends z.ZodType | undefined>(schema: S): S {
  if (schema instanceof z.ZodObject && schema.def.catchall === undefined) return schema.strict() as unknown as S
  return schema
}

/** What the router checks a request with: the route's schemas, objects made strict. */
export interface RequestSchemas {
  params: z.ZodObject
  query: z.ZodObject
  body?: z.ZodType
}

/** The schemas a request to `spec` is checked with; a route without params or query takes none. */
export function requestSchemas(spec: RouteSpec): RequestSchemas {
  return {
    params: strict(spec.params ?? z.object({})),
    query: strict(spec.query ?? z.object({})),
    body: strict(spec.body)
  }
}

/**
 * One schema as JSON Schema, with what zod extracted into `$defs` (schemas given an id) moved to
 * `components.schemas` and the references rewritten, so the document resolves them.
 */
function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output', components: Record<string, JsonSchema>): JsonSchema {
  const out = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' }) as JsonSchema
  delete out.$schema
  const defs = out.$defs as Record<string, JsonSchema> | undefined
  delete out.$defs
  if (defs != null) {
    for (const [name, def] of Object.entries(defs)) {
      const rewritten = rewriteRefs(def) as JsonSchema
      const held = components[name]
      if (held != null && JSON.stringify(held) !== JSON.stringify(rewritten))
        throw new Error(`two different schemas are both named ${name}`)
      components[name] = rewritten
    }
  }
  return rewriteRefs(out) as JsonSchema
}

function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs)
  if (value == null || typeof value !== 'object') return value
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      k,
      k === '$ref' && typeof v === 'string' && v.startsWith('#/$defs/')
        ? `#/components/schemas/${v.slice('#/$defs/'.length)}`
        : rewriteRefs(v)
    ])
  )
}

/** One parameter per property of an object schema (path parameters are always required). */
function parametersOf(
  schema: z.ZodObject,
  where: 'path' | 'query',
  components: Record<string, JsonSchema>
): OpenApiParameter[] {
  const json = jsonSchemaOf(schema, 'input', components)
  const properties = (json.properties ?? {}) as Record<string, JsonSchema>
  const required = new Set((json.required ?? []) as string[])
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(typeof description === 'string' ? { description } : {}),
      schema: rest
    }
  })
}

/** The OpenAPI operation of one route. */
function operationOf(name: string, spec: RouteSpec, components: Record<string, JsonSchema>): OpenApiOperation {
  const request = requestSchemas(spec)
  const security = spec.auth === 'public' ? [] : [{ bearer: [] }]
  const parameters = [
    ...parametersOf(request.params, 'path', components),
    ...parametersOf(request.query, 'query', components)
  ]
  const answer = jsonSchemaOf(spec.response, 'output', components)
  const ok =
    spec.stream === true
      ? {
          description: `${spec.summary}: server-sent events, each one's data a JSON object as x-cyberspace-event-data says`,
          content: { 'text/event-stream': { schema: { type: 'string' }, 'x-cyberspace-event-data': answer } }
        }
      : { description: spec.summary, content: { 'application/json': { schema: answer } } }
  const responses: Record<string, unknown> = { '200': ok, '400': PROBLEM_REF }
  if (spec.auth !== 'public') {
    responses['401'] = PROBLEM_REF
    responses['403'] = PROBLEM_REF
  }
  if (spec.body != null) {
    responses['413'] = PROBLEM_REF
    responses['415'] = PROBLEM_REF
  }
  responses['4XX'] = PROBLEM_REF
  responses['5XX'] = PROBLEM_REF
  const operation: OpenApiOperation = {
    operationId: name,
    summary: spec.summary,
    ...(spec.description != null ? { description: spec.description } : {}),
    tags: [spec.tag],
    security,
    'x-cyberspace-auth': spec.auth,
    ...(parameters.length > 0 ? { parameters } : {}),
    responses
  }
  if (request.body != null) {
    operation.requestBody = {
      // the router reads a request without a body as {}: a body is required only if {} is refused
      required: !request.body.safeParse({}).success,
      content: { 'application/json': { schema: jsonSchemaOf(request.body, 'input', components) } }
    }
  }
  return operation
}

/** The OpenAPI 3.1 document of `routes` (every route of the public API by default). */
export function openApiDocument(
  routes: Record<string, RouteSpec> = ROUTES,
  info: OpenApiInfo = DEFAULT_INFO
): OpenApiDocument {
  const schemas: Record<string, JsonSchema> = {}
  const paths: Record<string, Record<string, OpenApiOperation>> = {}
  const tags: string[] = []
  for (const [name, spec] of Object.entries(routes)) {
    const method = spec.method.toLowerCase()
    const path = (paths[spec.path] ??= {})
    if (path[method] != null) throw new Error(`${spec.method} ${spec.path} is declared twice (${name})`)
    path[method] = operationOf(name, spec, schemas)
    if (!tags.includes(spec.tag)) tags.push(spec.tag)
  }
  schemas.Problem = jsonSchemaOf(Problem, 'output', schemas)
  return {
    openapi: OPENAPI_VERSION,
    info,
    jsonSchemaDialect: SCHEMA_DIALECT,
    tags: tags.map(name => ({ name })),
    security: [{ bearer: [] }],
    paths,
    components: {
      schemas,
      responses: {
        Problem: {
          description: 'An error, as RFC 9457 problem details',
          content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } }
        }
      },
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description:
            "The node's operator token (api-token in its data directory) may call every operation; an agent's token only those whose x-cyberspace-auth is agent, and there only as its own agent."
        }
      }
    }
  }
}
