/**
 * The CLI's client of a running node's control API: finds it through the data directory
 * (`api.json`, `api-token`) and sends authenticated JSON requests.
 *
 * @example
 * const api = await connectApi('/home/me/.cyberspace')
 * const { peerId } = await api.get('id')
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { API_PREFIX } from './http.ts'
import { API_FILE, TOKEN_FILE } from '../data-dir.ts'
import { ApiError, NodeNotRunningError } from '../errors.ts'

/**
 * How the CLI's hints (and the README) run the CLI: this checkout's `cyberspace` bin. `--no-install`
 * keeps npx from ever fetching a registry package of that name.
 */
export const CLI = 'npx --no-install cyberspace'

/** The members every problem has; the rest are the error's own fields (`members`, `remoteName`…). */
const PROBLEM_MEMBERS = new Set(['type', 'title', 'status', 'detail', 'instance', 'name', 'error'])

export interface ApiClient {
  url: string
  get<T = unknown>(path: string, query?: Record<string, string>, options?: { signal?: AbortSignal }): Promise<T>
  post<T = unknown>(path: string, body: unknown): Promise<T>
}

export async function connectApi(dataDir: string): Promise<ApiClient> {
  let url: string
  let token: string
  try {
    const info = JSON.parse(await readFile(join(dataDir, API_FILE), 'utf8')) as { url?: unknown }
    // the token goes only to a loopback control API, whatever api.json says
    if (typeof info.url !== 'string' || !/^http:\/\/127\.0\.0\.1:\d{1,5}$/.test(info.url)) {
      throw new Error('api.json does not name a control API on 127.0.0.1')
    }
    url = info.url
    token = (await readFile(join(dataDir, TOKEN_FILE), 'utf8')).trim()
  } catch (err) {
    throw new NodeNotRunningError(
      `no running node found for data directory ${dataDir} (${(err as Error).message}); start one with: npm start -- --data-dir ${dataDir}`
    )
  }
  return apiClient(url, token)
}

export function apiClient(url: string, token: string): ApiClient {
  async function request<T>(
    method: string,
    path: string,
    body?: unknown,
    query?: Record<string, string>,
    signal?: AbortSignal
  ): Promise<T> {
    const target = new URL(API_PREFIX + path, url)
    for (const [k, v] of Object.entries(query ?? {})) target.searchParams.set(k, v)
    let res: Response
    try {
      res = await fetch(target, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' })
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: signal == null ? AbortSignal.timeout(60_000) : AbortSignal.any([signal, AbortSignal.timeout(60_000)])
      })
    } catch (err) {
      signal?.throwIfAborted()
      throw new NodeNotRunningError(`the node at ${url} does not answer: ${(err as Error).message}`)
    }
    const text = await res.text()
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      parsed = { error: text }
    }
    if (!res.ok) {
      // problem details (RFC 9457): `detail` says what went wrong; nodes before them sent `error`
      const problem = (parsed ?? {}) as Record<string, unknown>
      const { detail, error, name } = problem
      const message = typeof detail === 'string' ? detail : typeof error === 'string' ? error : `HTTP ${res.status}`
      const details = Object.fromEntries(Object.entries(problem).filter(([k]) => !PROBLEM_MEMBERS.has(k)))
      throw new ApiError(message, res.status, typeof name === 'string' ? name : undefined, details)
    }
    return parsed as T
  }
  return {
    url,
    get: async (path, query, options) => await request('GET', path, undefined, query, options?.signal),
    post: async (path, body) => await request('POST', path, body)
  }
}
