/**
 * The CLI's client of a running node's control API: finds it through the data directory
 * (`api.json`, `api-token`) and sends authenticated JSON requests.
 *
 * The token goes only where it cannot be read on the way: plain HTTP to an address of this machine
 * (loopback, or one of its own interfaces when the API was bound there with --api-insecure), or
 * https to the server whose certificate api.json holds — the client pins that certificate (its
 * SHA-256 fingerprint), so it needs no CA and no matching name, and sends nothing to another server.
 *
 * @example
 * const api = await connectApi('/home/me/.cyberspace')
 * const { peerId } = await api.get('id')
 */
import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { rootCertificates } from 'node:tls'
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

/** Whether `hostname` (as a URL has it: IPv6 in brackets) is an address of this machine. */
function isOwnAddress(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, '$1')
  if (host === '127.0.0.1' || host === '::1') return true
  return Object.values(networkInterfaces()).some(list => (list ?? []).some(a => a.address === host))
}

/** Where a running node's API is, as its api.json says: its URL, and its certificate when it answers https. */
export interface ApiInfo {
  url: string
  /** The API's certificate (PEM), which a client pins: present exactly when `url` is https. */
  cert?: string
}

/**
 * The API of the node running on `dataDir`, from its api.json, checked as a token may go there: an
 * https URL with its certificate, or plain http to an address of this machine. NodeNotRunningError
 * when there is none (no api.json, or one naming anything else).
 */
export async function readApiInfo(dataDir: string): Promise<ApiInfo> {
  try {
    const info = JSON.parse(await readFile(join(dataDir, API_FILE), 'utf8')) as { url?: unknown; cert?: unknown }
    const target =
      typeof info.url === 'string' && /^https?:\/\/[^/?#@]+$/.test(info.url) ? new URL(info.url) : undefined
    if (target?.protocol === 'https:') {
      if (typeof info.cert !== 'string') throw new Error('api.json names an https API without its certificate')
      return { url: target.origin, cert: info.cert }
    }
    // the token goes over plain HTTP only to this machine, whatever api.json says
    if (target == null || !isOwnAddress(target.hostname))
      throw new Error(
        'api.json does not name a control API on 127.0.0.1 (or another address of this machine, or https with its certificate)'
      )
    return { url: target.origin }
  } catch (err) {
    throw notRunning(dataDir, err)
  }
}

function notRunning(dataDir: string, err: unknown): NodeNotRunningError {
  return new NodeNotRunningError(
    `no running node found for data directory ${dataDir} (${(err as Error).message}); start one with: npm start -- --data-dir ${dataDir}`
  )
}

export async function connectApi(dataDir: string): Promise<ApiClient> {
  const { url, cert } = await readApiInfo(dataDir)
  let token: string
  try {
    token = (await readFile(join(dataDir, TOKEN_FILE), 'utf8')).trim()
  } catch (err) {
    throw notRunning(dataDir, err)
  }
  return apiClient(url, token, { cert })
}

/**
 * A fetch for one https server, the API's own: it trusts `cert` (besides the system's CAs, so a
 * certificate a CA issued works too) and then talks only to a server showing exactly that
 * certificate (its SHA-256 fingerprint), so it needs no CA and no matching name, and sends nothing
 * to another server. Connections are kept alive for the next call (idle ones hold no process up).
 * Answers a Response whose body streams. `source` ends the error when the server shows another
 * certificate: "…than <source>" (`api.json holds`).
 *
 * @example
 * const { fetch, agent } = pinnedFetch(info.cert, 'api.json holds')
 * const client = new Client({ url: info.url, token, fetch })   // agent.destroy() when done
 */
export function pinnedFetch(
  cert: string | Buffer,
  source: string
): { fetch: typeof globalThis.fetch; agent: HttpsAgent } {
  const expected = new X509Certificate(cert).fingerprint256
  const agent = new HttpsAgent({
    keepAlive: true,
    ca: [...rootCertificates, cert.toString()],
    allowPartialTrustChain: true,
    checkServerIdentity: (host, peer) =>
      peer.fingerprint256 === expected
        ? undefined
        : new Error(`the API at ${host} shows another certificate than ${source}: the token was not sent`)
  })
  const fetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const target = new URL(typeof input === 'string' || input instanceof URL ? input : input.url)
    const body = init.body
    if (body != null && typeof body !== 'string') throw new TypeError('this fetch sends string bodies only')
    if (init.redirect !== undefined && init.redirect !== 'manual')
      throw new TypeError('this fetch follows no redirect (redirect: manual)')
    const headers = Object.fromEntries(new Headers(init.headers))
    if (body != null) headers['content-length'] = String(Buffer.byteLength(body))
    return await new Promise<Response>((resolve, reject) => {
      const req = httpsRequest(
        target,
        { method: init.method ?? 'GET', headers, agent, ...(init.signal != null ? { signal: init.signal } : {}) },
        res => {
          const answer = new Headers()
          for (const [name, value] of Object.entries(res.headers))
            for (const v of [value ?? []].flat()) answer.append(name, v)
          const status = res.statusCode ?? 0
          const empty = status === 204 || status === 304 || init.method === 'HEAD'
          if (empty) res.resume()
          resolve(
            new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
              status,
              headers: answer
            })
          )
        }
      )
      req.once('error', reject)
      req.end(body ?? undefined)
    })
  }
  return { fetch: fetch as typeof globalThis.fetch, agent }
}

export function apiClient(url: string, token: string, pin: { cert?: string } = {}): ApiClient {
  let pinned: typeof fetch | undefined
  /** fetch, or one pinned to the certificate api.json holds (made at the first request). */
  const fetchOf = (): typeof fetch => {
    if (pin.cert == null) return fetch
    try {
      pinned ??= pinnedFetch(pin.cert, 'api.json holds').fetch
    } catch (err) {
      throw new NodeNotRunningError(`api.json holds no usable certificate: ${(err as Error).message}`)
    }
    return pinned
  }
  async function request<T>(
    method: string,
    path: string,
    body?: unknown,
    query?: Record<string, string>,
    signal?: AbortSignal
  ): Promise<T> {
    const target = new URL(API_PREFIX + path, url)
    for (const [k, v] of Object.entries(query ?? {})) target.searchParams.set(k, v)
    const init = {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' })
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: signal == null ? AbortSignal.timeout(60_000) : AbortSignal.any([signal, AbortSignal.timeout(60_000)])
    }
    const send = fetchOf()
    let res: Response
    try {
      res = await send(target, init)
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
