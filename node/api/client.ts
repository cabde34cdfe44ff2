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
import { request as httpsRequest } from 'node:https'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
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

export async function connectApi(dataDir: string): Promise<ApiClient> {
  let url: string
  let token: string
  let cert: string | undefined
  try {
    const info = JSON.parse(await readFile(join(dataDir, API_FILE), 'utf8')) as { url?: unknown; cert?: unknown }
    const target =
      typeof info.url === 'string' && /^https?:\/\/[^/?#@]+$/.test(info.url) ? new URL(info.url) : undefined
    if (target?.protocol === 'https:') {
      if (typeof info.cert !== 'string') throw new Error('api.json names an https API without its certificate')
      cert = info.cert
    } else if (target == null || !isOwnAddress(target.hostname)) {
      // the token goes over plain HTTP only to this machine, whatever api.json says
      throw new Error(
        'api.json does not name a control API on 127.0.0.1 (or another address of this machine, or https with its certificate)'
      )
    }
    url = (info.url as string).replace(/\/$/, '')
    token = (await readFile(join(dataDir, TOKEN_FILE), 'utf8')).trim()
  } catch (err) {
    throw new NodeNotRunningError(
      `no running node found for data directory ${dataDir} (${(err as Error).message}); start one with: npm start -- --data-dir ${dataDir}`
    )
  }
  return apiClient(url, token, { cert })
}

/** The certificate's SHA-256 fingerprint as node:tls writes it (AA:BB:…), or a named error. */
function fingerprintOf(cert: string): string {
  try {
    return new X509Certificate(cert).fingerprint256
  } catch (err) {
    throw new NodeNotRunningError(`api.json holds no usable certificate: ${(err as Error).message}`)
  }
}

/** One https request to the server holding `cert` and no other; its status and body. */
async function pinnedRequest(
  target: URL,
  init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
  cert: string
): Promise<{ status: number; text: string }> {
  const expected = fingerprintOf(cert)
  return await new Promise((resolve, reject) => {
    const req = httpsRequest(
      target,
      {
        method: init.method,
        headers:
          init.body === undefined ? init.headers : { ...init.headers, 'content-length': Buffer.byteLength(init.body) },
        signal: init.signal,
        agent: false,
        // the certificate itself is a trust anchor (self-signed, or issued by any CA), besides the
        // system's CAs; then the server must show exactly that one
        ca: [...rootCertificates, cert],
        allowPartialTrustChain: true,
        checkServerIdentity: (_host, peer) =>
          peer.fingerprint256 === expected
            ? undefined
            : new Error(
                `the API at ${target.host} shows another certificate than api.json holds: the token was not sent`
              )
      },
      res => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') })
        })
        res.on('error', reject)
      }
    )
    req.on('error', reject)
    req.end(init.body)
  })
}

export function apiClient(url: string, token: string, pin: { cert?: string } = {}): ApiClient {
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
    let res: { ok: boolean; status: number; text: () => Promise<string> }
    try {
      if (pin.cert != null) {
        const answer = await pinnedRequest(target, init, pin.cert)
        res = { ok: answer.status >= 200 && answer.status < 300, status: answer.status, text: async () => answer.text }
      } else res = await fetch(target, init)
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
