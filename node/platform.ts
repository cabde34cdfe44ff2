/**
 * The Node.js platform: a node process with TCP and WebSocket listeners, a circuit-relay-v2
 * server (so browser tabs can reach each other through it), durable disk stores (node/stores.ts) and a persisted
 * identity under its data directory, and its API port (the public API, the CLI's control API, the
 * page, metrics and mounts such as MCP), on 127.0.0.1 unless `apiHost` says otherwise.
 *
 * `api.json` in the data directory tells the CLI where the API is: `url` (for a client on this
 * machine), the process id, and with TLS the certificate (`cert`, PEM) its client pins.
 *
 * @example
 * const running = await startNodeProcess({ dataDir, listen, bootstrap: [], apiPort: 0 })
 * process.on('SIGINT', () => running.stop())
 */
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { createNode } from '../src/node.ts'
import { useEd25519 } from '../src/crypto/ed25519.ts'
import { processEd25519 } from './ed25519.ts'
import { startApiServer } from './api/server.ts'
import { a2aMounts } from './a2a/mount.ts'
import { mcpMount } from './mcp/http.ts'
import { API_FILE, createApiToken, fileShareStore, openDataDir, writeFileAtomic } from './data-dir.ts'
import { ApiBindError, DataDirError } from './errors.ts'
import { checkApiBind } from './api/http.ts'
import { DurableBlockstore, nodeFs, SyncedLevelDatastore, syncDirectory } from './stores.ts'
import type { WorkInit } from '../src/work/service.ts'
import type { ApiServer, ApiServerInit } from './api/server.ts'
import type { DataDir } from './data-dir.ts'
import type { BootstrapInit } from '../src/network/bootstrap.ts'
import type { CyberspaceNode } from '../src/node.ts'
import type { Multiaddr } from '@multiformats/multiaddr'

/** Where `npm run build:browser` puts the page. */
export const DEFAULT_PAGE_DIR = fileURLToPath(new URL('../dist/browser/', import.meta.url))

export interface NodeProcessOptions {
  dataDir: string
  listen: Multiaddr[]
  bootstrap: Multiaddr[]
  bootstrapOptions?: Omit<BootstrapInit, 'list'>
  /** The API's port; 0 picks a free one. */
  apiPort: number
  /** The address the API listens on; 127.0.0.1 by default. Off loopback: `apiTls` or `apiInsecure`. */
  apiHost?: string
  /** PEM files of the API's TLS certificate and key: it answers https. */
  apiTls?: { certFile: string; keyFile: string }
  /** Plain HTTP off loopback, knowingly. */
  apiInsecure?: boolean
  /** The name clients reach the API by, accepted in Host and Origin. */
  apiPublicHost?: string
  /** Served on the API port under their prefixes, beside the MCP endpoint (/mcp) and the A2A binding (/a2a) every node serves: see ApiServerInit.mounts. */
  mounts?: ApiServerInit['mounts']
  pageDir?: string
  /** Metadata this node publishes as a member (`start --meta key=value`). */
  meta?: Record<string, string>
  /** Called when the node has left the cluster through the control API (`cyberspace leave`). */
  onLeave?: () => void
  /** Coordination settings (`start --heartbeat-interval`). */
  workOptions?: WorkInit
  /** How often yamux pings every connection, ms (`start --keepalive-interval`); see CreateNodeOptions. */
  keepAliveInterval?: number
}

export interface RunningNode {
  node: CyberspaceNode
  dataDir: DataDir
  api: ApiServer
  stop(): Promise<void>
}

export async function startNodeProcess(options: NodeProcessOptions): Promise<RunningNode> {
  // signatures on node:crypto, the node's own key imported once
  useEd25519(processEd25519)
  const dataDir = await openDataDir(options.dataDir)
  const cleanups: Array<() => Promise<unknown>> = [
    async () => {
      await dataDir.close()
    }
  ]
  const cleanup = async (): Promise<void> => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn()
      } catch {}
    }
  }
  try {
    // the API's settings are checked (and its certificate read) before anything starts
    checkApiBind({
      host: options.apiHost,
      tls: options.apiTls,
      insecure: options.apiInsecure,
      publicHost: options.apiPublicHost
    })
    const tls = options.apiTls == null ? undefined : await readTls(options.apiTls)
    // every put is on disk before it resolves: an append is acknowledged only once it is durable
    const blockstore = new DurableBlockstore(join(dataDir.path, 'blocks'))
    const datastore = new SyncedLevelDatastore(join(dataDir.path, 'datastore'))
    try {
      await blockstore.open()
      cleanups.push(async () => {
        await blockstore.close()
      })
      await datastore.open()
      cleanups.push(async () => {
        await datastore.close()
      })
      // LevelDB syncs the files inside its directory, not the directory's own entry
      await syncDirectory(nodeFs, dataDir.path)
    } catch (err) {
      throw new DataDirError(`cannot open the stores in ${dataDir.path}: ${(err as Error).message}`)
    }
    const node = await createNode({
      privateKey: dataDir.privateKey,
      // the relay transport only dials (the node listens directly): members reachable only
      // through a relay, such as tabs, are probed at their /p2p-circuit addresses
      transports: [tcp(), webSockets(), circuitRelayTransport()],
      blockstore,
      datastore,
      listen: options.listen,
      bootstrap: options.bootstrap,
      bootstrapOptions: options.bootstrapOptions,
      dhtServer: true,
      clusterOptions: { store: fileShareStore(dataDir.path) },
      membershipOptions: { meta: options.meta },
      workOptions: options.workOptions,
      keepAliveInterval: options.keepAliveInterval,
      // libp2p's defaults (5 inbound connections per second per host, 10 pending) assume every
      // peer has its own address; cluster members often share one (several agents on a machine,
      // a LAN behind one NAT), and a joining burst would be refused and left to backoff
      connectionManager: { inboundConnectionThreshold: 64, maxIncomingPendingConnections: 64 },
      services: {
        // members reachable only through this relay (tabs, peers behind NAT) are probed through it
        // every second: libp2p's default limits (128 KiB, 2 min per relayed connection) would cut
        // them off and redial all the time
        relay: circuitRelayServer({
          reservations: {
            maxReservations: 128,
            defaultDataLimit: 16n * 1024n * 1024n,
            defaultDurationLimit: 30 * 60_000
          }
        })
      }
    })
    await node.start()
    cleanups.push(async () => {
      await node.stop()
    })
    const token = await createApiToken(dataDir.path)
    const api = await startApiServer({
      node,
      token,
      port: options.apiPort,
      pageDir: options.pageDir ?? DEFAULT_PAGE_DIR,
      host: options.apiHost,
      tls,
      insecure: options.apiInsecure,
      publicHost: options.apiPublicHost,
      // every node serves MCP at /mcp and its agents over A2A (cards public, calls with a token)
      mounts: api => [
        mcpMount({ apiUrl: api.url, ...(tls != null ? { cert: tls.cert } : {}) }),
        ...a2aMounts({ node, url: api.url, tokens: api.tokens }),
        ...(typeof options.mounts === 'function' ? options.mounts(api) : (options.mounts ?? []))
      ],
      onLeave: options.onLeave,
      onError: err => {
        process.stderr.write(`control API error: ${err.message}\n`)
      }
    })
    cleanups.push(async () => {
      await api.close()
    })
    const apiFile = join(dataDir.path, API_FILE)
    // with TLS the CLI's client pins this certificate: it sends its token to that server only
    const apiInfo = { url: api.url, pid: process.pid, ...(tls != null ? { cert: tls.cert } : {}) }
    await writeFileAtomic(apiFile, JSON.stringify(apiInfo) + '\n')
    cleanups.push(async () => {
      await rm(apiFile, { force: true })
    })
    return { node, dataDir, api, stop: cleanup }
  } catch (err) {
    await cleanup()
    throw err
  }
}

/** The API's certificate and key, read: a file that cannot be read or is not PEM is named. */
async function readTls(files: { certFile: string; keyFile: string }): Promise<{ cert: string; key: string }> {
  const read = async (file: string, flag: string, label: string): Promise<string> => {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      throw new ApiBindError(`cannot read ${flag} ${file}: ${(err as Error).message}`)
    }
    if (!new RegExp(`-----BEGIN [A-Z ]*${label}-----`).test(text))
      throw new ApiBindError(`${flag} ${file} holds no PEM ${label.toLowerCase()}`)
    return text
  }
  return {
    cert: await read(files.certFile, '--api-tls-cert', 'CERTIFICATE'),
    key: await read(files.keyFile, '--api-tls-key', 'PRIVATE KEY')
  }
}
