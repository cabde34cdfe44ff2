/**
 * The browser platform: a full Cyberspace peer in a tab. It dials node processes over WebSockets,
 * reaches other tabs over WebRTC through circuit-relay-v2 (listening on `/p2p-circuit` and
 * `/webrtc`), and stores blocks and data in IndexedDB.
 *
 * A tab's identity lives in sessionStorage: a reload keeps the tab's peer id, a new tab gets its
 * own (two tabs sharing one key would fight over one peer id). Its IndexedDB stores are named
 * after that peer id.
 *
 * @example
 * const node = await createBrowserNode({ bootstrap: parseMultiaddrs(['/ip4/127.0.0.1/tcp/4102/ws/p2p/12D3…'], 'bootstrap') })
 */
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { webRTC } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { IDBBlockstore } from 'blockstore-idb'
import { IDBDatastore } from 'datastore-idb'
import { base64 } from 'multiformats/bases/base64'
import { hostOf, privateAddressGate } from '../src/network/gater.ts'
import { createNode } from '../src/node.ts'
import type { CyberspaceNode } from '../src/node.ts'
import type { PrivateKey } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

const IDENTITY_KEY = 'cyberspace:identity'

export interface BrowserNodeOptions {
  bootstrap: Multiaddr[]
  /** Where to keep the identity; default the tab's sessionStorage. */
  storage?: Storage
  /**
   * Hosts on private networks (LAN, loopback) the tab may dial. The hosts of the bootstrap
   * addresses and of the page itself are added; the caller adds more when the user asks to dial
   * one. Peers met in the cluster cannot make the tab dial other private hosts.
   */
  allowedHosts?: Set<string>
}

export async function createBrowserNode(options: BrowserNodeOptions): Promise<CyberspaceNode> {
  const privateKey = await tabIdentity(options.storage ?? sessionStorage)
  const name = `cyberspace/${peerIdFromPrivateKey(privateKey).toString()}`
  const blockstore = new IDBBlockstore(`${name}/blocks`)
  const datastore = new IDBDatastore(`${name}/data`)
  await blockstore.open()
  await datastore.open()
  strictDurability(blockstore)
  strictDurability(datastore)
  return await createNode({
    privateKey,
    transports: [webSockets(), webRTC(), circuitRelayTransport()],
    listen: ['/p2p-circuit', '/webrtc'],
    blockstore,
    datastore,
    bootstrap: options.bootstrap,
    // a tab cannot accept inbound dials except through relays: be a DHT client
    dhtServer: false,
    connectionGater: {
      denyDialMultiaddr: privateAddressGate(
        [...options.bootstrap.map(hostOf), typeof location !== 'undefined' ? location.hostname : undefined],
        options.allowedHosts
      )
    },
    connectionManager: { maxConnections: 100 }
  })
}

/**
 * IndexedDB commits a readwrite transaction with the browser's default durability, which Chrome
 * treats as relaxed: a write reported done may still be lost if the machine loses power. Every
 * readwrite transaction of an opened store here asks for 'strict' durability instead, so what the
 * tab acknowledges (an append, a heads record) is on disk first, as in a node process.
 * The stores keep their IDBDatabase in a field the libraries do not export; if it is missing (a
 * library change), the tab refuses to start rather than run without durable writes.
 */
function strictDurability(store: object): void {
  const db = (store as { db?: IDBDatabase }).db
  if (db == null) throw new Error('cannot reach the IndexedDB database of a store to make its writes durable')
  ;(db as { transaction: IDBDatabase['transaction'] }).transaction = function (
    this: IDBDatabase,
    names: string | string[],
    mode?: IDBTransactionMode,
    options?: IDBTransactionOptions
  ) {
    const durable = mode === 'readwrite' ? { ...options, durability: 'strict' as const } : options
    return IDBDatabase.prototype.transaction.call(this, names, mode, durable)
  }
}

async function tabIdentity(storage: Storage): Promise<PrivateKey> {
  const saved = storage.getItem(IDENTITY_KEY)
  if (saved != null) {
    try {
      const key = privateKeyFromProtobuf(base64.baseDecode(saved))
      // "duplicate tab" copies sessionStorage: only one tab may run as a given peer
      if (await claimIdentity(key)) return key
    } catch {
      // a damaged entry in sessionStorage: this tab starts with a fresh identity
    }
  }
  const key = await generateKeyPair('Ed25519')
  await claimIdentity(key)
  storage.setItem(IDENTITY_KEY, base64.baseEncode(privateKeyToProtobuf(key)))
  return key
}

/** Holds a Web Lock named after the key for the tab's lifetime; false if another tab holds it. */
async function claimIdentity(key: PrivateKey): Promise<boolean> {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined
  if (locks == null) return true
  const name = `cyberspace:identity:${peerIdFromPrivateKey(key).toString()}`
  return await new Promise<boolean>(resolve => {
    void locks.request(name, { ifAvailable: true }, async lock => {
      resolve(lock != null)
      if (lock != null) await new Promise(() => {})
    })
  })
}
