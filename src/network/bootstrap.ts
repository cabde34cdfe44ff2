/**
 * The bootstrap service: keeps this node joined to its cluster.
 *
 * It dials every bootstrap multiaddr, retries each with exponential backoff (with jitter) while it
 * is unreachable, redials it when the connection drops, and dials peers the node discovers (from
 * DHT answers, identify, …) until it holds `targetConnections`. Every retry is an event, so a CLI
 * can say what it is doing rather than fail silently.
 *
 * @example
 * createLibp2p({ services: { bootstrap: bootstrap({ list: [multiaddr('/ip4/…/p2p/12D3…')] }) } })
 * node.services.bootstrap.addEventListener('retry', e => console.log(e.detail))
 */
import { TypedEventEmitter } from 'main-event'
import { peerIdOf } from './multiaddrs.ts'
import type {
  ComponentLogger,
  Libp2pEvents,
  Logger,
  PeerId,
  PeerStore,
  Startable,
  TypedEventTarget
} from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface BootstrapInit {
  /** Multiaddrs of peers to join through; each should name its peer (`/p2p/…`). */
  list?: Multiaddr[]
  /** First retry delay in ms. Default 1 s. */
  minBackoff?: number
  /** Longest retry delay in ms. Default 60 s. */
  maxBackoff?: number
  /** Dial discovered peers while we hold fewer connections than this. Default 64. */
  targetConnections?: number
  /** How long one dial may take in ms. Default 10 s. */
  dialTimeout?: number
  /** How often to re-dial known but unconnected peers, in ms. Default 15 s. */
  sweepInterval?: number
}

export interface BootstrapComponents {
  peerId: PeerId
  connectionManager: ConnectionManager
  peerStore: PeerStore
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
}

export interface BootstrapRetry {
  addr: string
  /** Consecutive failures so far. */
  failures: number
  /** When the next attempt happens, in ms from now. */
  delay: number
  error: string
}

export interface BootstrapEvents {
  retry: CustomEvent<BootstrapRetry>
  connected: CustomEvent<{ addr: string; peer: string }>
}

export interface BootstrapPeerStatus {
  addr: string
  connected: boolean
  failures: number
  /** The last dial error, while not connected. */
  lastError?: string
  /** When the next attempt is due (ms since the epoch), while not connected. */
  nextAttemptAt?: number
}

export interface Bootstrap extends TypedEventTarget<BootstrapEvents> {
  /** The state of each bootstrap address. */
  status(): BootstrapPeerStatus[]
}

interface Target {
  addr: Multiaddr
  peer?: string
  connected: boolean
  failures: number
  lastError?: string
  nextAttemptAt?: number
  timer?: ReturnType<typeof setTimeout>
}

/** Peers that failed this many dials in a row are no longer swept (they come back when rediscovered). */
const MAX_SWEEP_FAILURES = 5
/** How many discovered peers are dialled at once. */
const DISCOVERY_DIAL_CONCURRENCY = 4

class BootstrapService extends TypedEventEmitter<BootstrapEvents> implements Bootstrap, Startable {
  private readonly components: BootstrapComponents
  private readonly log: Logger
  private readonly targets: Target[]
  private readonly minBackoff: number
  private readonly maxBackoff: number
  private readonly targetConnections: number
  private readonly dialTimeout: number
  private readonly sweepInterval: number
  private readonly sweepFailures = new Map<string, number>()
  private readonly dialing = new Set<string>()
  private sweepTimer?: ReturnType<typeof setInterval>
  private running = false
  private shutdown = new AbortController()

  constructor(components: BootstrapComponents, init: BootstrapInit) {
    super()
    this.components = components
    this.log = components.logger.forComponent('cyberspace:bootstrap')
    this.targets = (init.list ?? []).map(addr => ({ addr, peer: peerIdOf(addr), connected: false, failures: 0 }))
    this.minBackoff = init.minBackoff ?? 1_000
    this.maxBackoff = init.maxBackoff ?? 60_000
    this.targetConnections = init.targetConnections ?? 64
    this.dialTimeout = init.dialTimeout ?? 10_000
    this.sweepInterval = init.sweepInterval ?? 15_000
    this.onDisconnect = this.onDisconnect.bind(this)
    this.onDiscovery = this.onDiscovery.bind(this)
  }

  readonly [Symbol.toStringTag] = 'cyberspace/bootstrap'

  start(): void {
    this.running = true
    this.shutdown = new AbortController()
    this.components.events.addEventListener('peer:disconnect', this.onDisconnect)
    this.components.events.addEventListener('peer:discovery', this.onDiscovery)
  }

  /** Dialling starts once the whole node has started, so every protocol is registered first. */
  afterStart(): void {
    for (const target of this.targets) this.schedule(target, 0)
    this.sweepTimer = setInterval(() => {
      this.sweep()
    }, this.sweepInterval)
  }

  stop(): void {
    this.running = false
    this.shutdown.abort()
    this.components.events.removeEventListener('peer:disconnect', this.onDisconnect)
    this.components.events.removeEventListener('peer:discovery', this.onDiscovery)
    clearInterval(this.sweepTimer)
    for (const target of this.targets) clearTimeout(target.timer)
  }

  status(): BootstrapPeerStatus[] {
    return this.targets.map(t => ({
      addr: t.addr.toString(),
      connected: t.connected,
      failures: t.failures,
      ...(t.connected ? {} : { lastError: t.lastError, nextAttemptAt: t.nextAttemptAt })
    }))
  }

  private schedule(target: Target, delay: number): void {
    clearTimeout(target.timer)
    if (!this.running) return
    target.nextAttemptAt = Date.now() + delay
    target.timer = setTimeout(() => {
      void this.attempt(target)
    }, delay)
  }

  private async attempt(target: Target): Promise<void> {
    if (!this.running) return
    const signal = AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.dialTimeout)])
    try {
      const connection = await this.components.connectionManager.openConnection(target.addr, { signal })
      target.peer = connection.remotePeer.toString()
      target.connected = true
      target.failures = 0
      target.lastError = undefined
      this.log('connected to bootstrap peer %a', target.addr)
      this.safeDispatchEvent('connected', { detail: { addr: target.addr.toString(), peer: target.peer } })
    } catch (err) {
      if (!this.running) return
      target.connected = false
      target.failures++
      const base = Math.min(this.maxBackoff, this.minBackoff * 2 ** Math.min(target.failures - 1, 30))
      const delay = Math.round(base * (0.8 + Math.random() * 0.4))
      const error = (err as Error).message ?? String(err)
      target.lastError = error
      this.log(
        'bootstrap peer %a unreachable (%d failures), retrying in %d ms - %e',
        target.addr,
        target.failures,
        delay,
        err
      )
      this.safeDispatchEvent('retry', {
        detail: { addr: target.addr.toString(), failures: target.failures, delay, error }
      })
      this.schedule(target, delay)
    }
  }

  private onDisconnect(evt: CustomEvent<PeerId>): void {
    const peer = evt.detail.toString()
    for (const target of this.targets) {
      if (target.peer === peer && target.connected) {
        target.connected = false
        this.schedule(target, this.minBackoff)
      }
    }
  }

  private onDiscovery(evt: CustomEvent<{ id: PeerId }>): void {
    this.sweepFailures.delete(evt.detail.id.toString())
    void this.dialPeer(evt.detail.id)
  }

  private sweep(): void {
    void this.components.peerStore.all({ limit: this.targetConnections * 2 }).then(
      peers => {
        for (const peer of peers) {
          if ((this.sweepFailures.get(peer.id.toString()) ?? 0) < MAX_SWEEP_FAILURES && peer.addresses.length > 0) {
            void this.dialPeer(peer.id)
          }
        }
      },
      err => {
        this.log.error('could not list peers - %e', err)
      }
    )
  }

  private async dialPeer(peer: PeerId): Promise<void> {
    const key = peer.toString()
    if (
      !this.running ||
      peer.equals(this.components.peerId) ||
      this.dialing.has(key) ||
      this.dialing.size >= DISCOVERY_DIAL_CONCURRENCY ||
      this.components.connectionManager.getConnections(peer).length > 0 ||
      this.components.connectionManager.getConnections().length >= this.targetConnections
    ) {
      return
    }
    this.dialing.add(key)
    try {
      const signal = AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.dialTimeout)])
      await this.components.connectionManager.openConnection(peer, { signal })
      this.sweepFailures.delete(key)
    } catch (err) {
      this.sweepFailures.set(key, (this.sweepFailures.get(key) ?? 0) + 1)
      this.log.trace('could not dial discovered peer %p - %e', peer, err)
    } finally {
      this.dialing.delete(key)
    }
  }
}

export function bootstrap(init: BootstrapInit = {}): (components: BootstrapComponents) => Bootstrap {
  return components => new BootstrapService(components, init)
}
