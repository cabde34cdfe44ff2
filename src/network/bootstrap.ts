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
import { InvalidParametersError } from '@libp2p/interface'
import { TypedEventEmitter } from 'main-event'
import { peerIdOf } from './multiaddrs.ts'
import type {
  ComponentLogger,
  Libp2pEvents,
  Logger,
  PeerId,
  PeerRouting,
  PeerStore,
  Startable,
  TypedEventTarget
} from '@libp2p/interface'
import type { ConnectionManager, TransportManager } from '@libp2p/interface-internal'
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
  /**
   * How often to look through the peer store for known but unconnected peers to dial while below
   * targetConnections, in ms. Doubles, up to 5 minutes, each time a look finds no one new; a
   * discovery or a lost connection brings it back. Default 5 s.
   */
  sweepInterval?: number
  /**
   * How often to walk the DHT (query a random key) for peers while below targetConnections, in ms.
   * The first walk comes this long after start. Doubles, up to 5 minutes, each time a walk finds no
   * one new; while no peer has connected, been lost or been discovered since the last walk, walks
   * are skipped (the pause still doubles), but one is made at least every 30 minutes. A discovery or
   * a lost connection brings it back. Default 5 s.
   */
  walkInterval?: number
}

export interface BootstrapComponents {
  peerId: PeerId
  connectionManager: ConnectionManager
  peerStore: PeerStore
  peerRouting: PeerRouting
  transportManager: TransportManager
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

interface Candidate {
  id: PeerId
  failures: number
  /** Not dialled again before this time (ms since the epoch). */
  nextAt: number
}

interface Target {
  addr: Multiaddr
  peer?: string
  connected: boolean
  /** When the current connection opened (ms since the epoch). */
  connectedAt?: number
  failures: number
  lastError?: string
  nextAttemptAt?: number
  timer?: ReturnType<typeof setTimeout>
}

/** A discovered peer that failed this many dials in a row is left alone for GIVE_UP_MS. */
const MAX_CANDIDATE_FAILURES = 8
const GIVE_UP_MS = 600_000
/** Longest pause between two DHT walks. */
const MAX_WALK_INTERVAL = 300_000
/**
 * While nothing changes, a walk is made anyway this often, for peers that joined out of sight. Not
 * more often: the DHT refreshes its own table every 5 minutes with lookups of random keys in each
 * bucket (and of its own id), which find such peers too (a discovery restarts the walks), and every
 * walk costs each peer it asks a new stream and a read of its peer store.
 */
const FORCED_WALK_INTERVAL = 1_800_000
/** Longest pause between two looks through the peer store. */
const MAX_SWEEP_INTERVAL = 300_000
/** Shortest pause before the sweep timer wakes for a candidate's retry. */
const CANDIDATE_WAKE_MS = 1_000
/** Most discovered peers remembered for dialling. */
const MAX_CANDIDATES = 1024
/** How many discovered peers are dialled at once. */
const DISCOVERY_DIAL_CONCURRENCY = 4
/** A bootstrap connection that lasted less than this counts as a failure when it drops. */
const STABLE_CONNECTION_MS = 30_000
/** Shortest delay any timing option may ask for, in ms. */
const MIN_DELAY_MS = 10

function delayOption(name: string, value: number | undefined, fallback: number): number {
  const chosen = value ?? fallback
  if (!Number.isFinite(chosen) || chosen < MIN_DELAY_MS) {
    throw new InvalidParametersError(`bootstrap ${name} must be a number of ms, at least ${MIN_DELAY_MS}`)
  }
  return chosen
}

class BootstrapService extends TypedEventEmitter<BootstrapEvents> implements Bootstrap, Startable {
  private readonly components: BootstrapComponents
  private readonly log: Logger
  private readonly targets: Target[]
  private readonly minBackoff: number
  private readonly maxBackoff: number
  private readonly targetConnections: number
  private readonly dialTimeout: number
  private readonly sweepInterval: number
  private readonly walkInterval: number
  private readonly candidates = new Map<string, Candidate>()
  /** Peers that failed MAX_CANDIDATE_FAILURES dials, until when they are left alone. */
  private readonly gaveUp = new Map<string, number>()
  private readonly dialing = new Set<string>()
  private sweepTimer?: ReturnType<typeof setTimeout>
  /** The pause before the next look through the peer store (grows while looks find no one new). */
  private sweepDelay = 0
  /** When the next look through the peer store is due (ms since the epoch). */
  private nextScanAt = 0
  /** When the sweep timer fires (ms since the epoch). */
  private sweepAt = Infinity
  private running = false
  private shutdown = new AbortController()
  /** The pause before the next DHT walk (grows while walks find no one new). */
  private walkDelay = 0
  /** Whether a peer connected, was lost or was discovered since the last walk. */
  private walkChanged = true
  /** Cuts the current pause before a walk to at most walkInterval from now, while the loop waits. */
  private walkNudge?: () => void

  constructor(components: BootstrapComponents, init: BootstrapInit) {
    super()
    this.components = components
    this.log = components.logger.forComponent('cyberspace:bootstrap')
    const self = components.peerId.toString()
    // a shared bootstrap list commonly names this node too: never dial ourselves
    this.targets = (init.list ?? [])
      .map(addr => ({ addr, peer: peerIdOf(addr), connected: false, failures: 0 }))
      .filter(target => target.peer !== self)
    this.minBackoff = delayOption('minBackoff', init.minBackoff, 1_000)
    this.maxBackoff = Math.max(this.minBackoff, delayOption('maxBackoff', init.maxBackoff, 60_000))
    this.dialTimeout = delayOption('dialTimeout', init.dialTimeout, 10_000)
    this.sweepInterval = delayOption('sweepInterval', init.sweepInterval, 5_000)
    this.walkInterval = delayOption('walkInterval', init.walkInterval, 5_000)
    this.targetConnections = init.targetConnections ?? 64
    if (!Number.isSafeInteger(this.targetConnections) || this.targetConnections < 1) {
      throw new InvalidParametersError('bootstrap targetConnections must be a positive integer')
    }
    this.onDisconnect = this.onDisconnect.bind(this)
    this.onDiscovery = this.onDiscovery.bind(this)
    this.onConnect = this.onConnect.bind(this)
  }

  readonly [Symbol.toStringTag] = 'cyberspace/bootstrap'

  start(): void {
    this.running = true
    this.shutdown = new AbortController()
    this.components.events.addEventListener('peer:disconnect', this.onDisconnect)
    this.components.events.addEventListener('peer:discovery', this.onDiscovery)
    this.components.events.addEventListener('peer:connect', this.onConnect)
  }

  /** Dialling starts once the whole node has started, so every protocol is registered first. */
  afterStart(): void {
    for (const target of this.targets) this.schedule(target, 0)
    this.sweepDelay = this.sweepInterval
    this.nextScanAt = Date.now() + this.sweepDelay
    this.scheduleSweep()
    void this.walkLoop(this.shutdown.signal)
  }

  stop(): void {
    this.running = false
    this.shutdown.abort()
    this.components.events.removeEventListener('peer:disconnect', this.onDisconnect)
    this.components.events.removeEventListener('peer:discovery', this.onDiscovery)
    this.components.events.removeEventListener('peer:connect', this.onConnect)
    this.walkNudge = undefined
    clearTimeout(this.sweepTimer)
    this.sweepAt = Infinity
    for (const target of this.targets) clearTimeout(target.timer)
    this.candidates.clear()
    this.gaveUp.clear()
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
    const signal = this.dialSignal()
    try {
      const connection = await this.components.connectionManager.openConnection(target.addr, { signal })
      target.peer = connection.remotePeer.toString()
      target.connected = true
      target.connectedAt = Date.now()
      target.lastError = undefined
      this.log('connected to bootstrap peer %a', target.addr)
      this.safeDispatchEvent('connected', { detail: { addr: target.addr.toString(), peer: target.peer } })
    } catch (err) {
      if (!this.running) return
      target.connected = false
      target.failures++
      const delay = this.backoff(target.failures)
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
        // a peer that accepts and soon drops us (full, or refusing us) is retried with backoff,
        // not every second
        const stable = Date.now() - (target.connectedAt ?? 0) >= STABLE_CONNECTION_MS
        target.failures = stable ? 0 : target.failures + 1
        this.schedule(target, stable ? this.minBackoff : this.backoff(target.failures))
      }
    }
    // a lost connection leaves room: the peer store is looked through and the DHT walked soon again
    this.sweepSoon()
    this.walkSoon()
  }

  private onConnect(): void {
    // a new neighbour may know peers we do not: the next walk is made, at its usual pause
    this.walkChanged = true
  }

  private onDiscovery(evt: CustomEvent<{ id: PeerId }>): void {
    // a (re)discovered peer may have new addresses: it gets a fresh chance
    this.gaveUp.delete(evt.detail.id.toString())
    // libp2p reports a peer each time a DHT answer names it: only one we did not know as a
    // candidate, and do not hold a connection to, brings the walks back
    if (this.addCandidate(evt.detail.id, true)) this.walkSoon()
    this.pump()
    this.sweepSoon()
  }

  /** Walks the DHT at the shortest pause again (something changed). */
  private walkSoon(): void {
    if (!this.running) return
    this.walkChanged = true
    this.walkDelay = this.walkInterval
    this.walkNudge?.()
  }

  /**
   * Remembers a peer to dial, unless it is this node or already connected. `fresh` resets the
   * backoff of a known candidate (new information about it); returns true if the peer was not a
   * candidate before.
   */
  private addCandidate(id: PeerId, fresh: boolean): boolean {
    const key = id.toString()
    if (id.equals(this.components.peerId)) return false
    if (this.components.connectionManager.getConnections(id).length > 0) return false
    const givenUpUntil = this.gaveUp.get(key)
    if (givenUpUntil != null) {
      if (givenUpUntil > Date.now()) return false
      this.gaveUp.delete(key)
    }
    const known = this.candidates.get(key)
    if (known != null) {
      if (fresh) known.nextAt = 0
      return false
    }
    if (this.candidates.size >= MAX_CANDIDATES) return false
    this.candidates.set(key, { id, failures: 0, nextAt: 0 })
    return true
  }

  /** Looks through the peer store at the shortest pause again (something changed). */
  private sweepSoon(): void {
    if (!this.running) return
    this.sweepDelay = this.sweepInterval
    this.nextScanAt = Math.min(this.nextScanAt, Date.now() + this.sweepDelay)
    this.scheduleSweep()
  }

  /**
   * Arms the sweep timer for the next look through the peer store or the next candidate due for a
   * retry, whichever comes first: an idle node at rest wakes at most every MAX_SWEEP_INTERVAL.
   */
  private scheduleSweep(): void {
    if (!this.running) return
    let at = this.nextScanAt
    const now = Date.now()
    // a candidate due for a retry, when pump() could dial it (below the target, a dial slot free);
    // never sooner than a second from now, so nothing here can spin
    if (
      this.dialing.size < DISCOVERY_DIAL_CONCURRENCY &&
      this.components.connectionManager.getConnections().length < this.targetConnections
    ) {
      for (const [key, candidate] of this.candidates) {
        if (!this.dialing.has(key)) at = Math.min(at, Math.max(candidate.nextAt, now + CANDIDATE_WAKE_MS))
      }
    }
    if (at >= this.sweepAt) return
    clearTimeout(this.sweepTimer)
    this.sweepAt = at
    this.sweepTimer = setTimeout(
      () => {
        this.sweepAt = Infinity
        this.sweep()
      },
      Math.max(0, at - Date.now())
    )
  }

  private sweep(): void {
    if (!this.running) return
    const now = Date.now()
    // at the target, pump() dials nothing: do not read the peer store for it
    const below = this.components.connectionManager.getConnections().length < this.targetConnections
    if (now < this.nextScanAt || !below) {
      if (now >= this.nextScanAt) this.backOffScan(0)
      this.pump()
      this.scheduleSweep()
      return
    }
    void this.components.peerStore.all({ limit: MAX_CANDIDATES }).then(
      peers => {
        let fresh = 0
        for (const peer of peers) {
          const dialable = peer.addresses.some(
            a => this.components.transportManager.dialTransportForMultiaddr(a.multiaddr) != null
          )
          if (dialable && this.addCandidate(peer.id, false)) fresh++
        }
        this.backOffScan(fresh)
        this.pump()
        this.scheduleSweep()
      },
      err => {
        this.log.error('could not list peers - %e', err)
        this.backOffScan(0)
        this.scheduleSweep()
      }
    )
  }

  /** The next look through the peer store: at the shortest pause after one that found someone, else twice the last. */
  private backOffScan(fresh: number): void {
    this.sweepDelay = fresh > 0 ? this.sweepInterval : Math.min(this.sweepDelay * 2, MAX_SWEEP_INTERVAL)
    this.nextScanAt = Date.now() + this.sweepDelay
  }

  /** Dials due candidates, a few at a time, while we hold fewer than targetConnections. */
  private pump(): void {
    // dials start asynchronously, so the count cannot change while this loop runs
    if (!this.running || this.components.connectionManager.getConnections().length >= this.targetConnections) return
    const now = Date.now()
    for (const [key, candidate] of this.candidates) {
      if (this.dialing.size >= DISCOVERY_DIAL_CONCURRENCY) return
      if (this.components.connectionManager.getConnections(candidate.id).length > 0) {
        this.candidates.delete(key)
        continue
      }
      if (candidate.nextAt > now || this.dialing.has(key)) continue
      void this.dialCandidate(key, candidate)
    }
  }

  private async dialCandidate(key: string, candidate: Candidate): Promise<void> {
    this.dialing.add(key)
    try {
      const signal = this.dialSignal()
      await this.components.connectionManager.openConnection(candidate.id, { signal })
      this.candidates.delete(key)
    } catch (err) {
      candidate.failures++
      candidate.nextAt = Date.now() + this.backoff(candidate.failures)
      if (candidate.failures >= MAX_CANDIDATE_FAILURES) {
        this.candidates.delete(key)
        this.gaveUp.set(key, Date.now() + GIVE_UP_MS)
      }
      // the retry is due before the next look, perhaps: the timer wakes for it
      this.scheduleSweep()
      this.log.trace('could not dial discovered peer %p - %e', candidate.id, err)
    } finally {
      this.dialing.delete(key)
      this.pump()
    }
  }

  /**
   * Finds peers beyond the DHT neighbourhood: while below targetConnections, look up random keys
   * and dial the peers found. The pause grows while lookups find no one new, and while nothing
   * changed since the last walk (no peer connected, lost or discovered) the walk is skipped — each
   * walk asks several peers, who read their peer store to answer — except that one is made at least
   * every FORCED_WALK_INTERVAL, for peers that joined out of sight. The loop belongs to one start: it
   * ends when that start's signal aborts.
   */
  private async walkLoop(signal: AbortSignal): Promise<void> {
    this.walkDelay = this.walkInterval
    this.walkChanged = true
    let lastWalk = Date.now()
    while (!signal.aborted) {
      if (!(await this.walkPause(signal))) return
      const connections = this.components.connectionManager.getConnections().length
      if (connections >= this.targetConnections || connections === 0) continue
      const now = Date.now()
      if (!this.walkChanged && now - lastWalk < FORCED_WALK_INTERVAL) {
        this.walkDelay = Math.min(this.walkDelay * 2, MAX_WALK_INTERVAL)
        continue
      }
      this.walkChanged = false
      lastWalk = now
      let fresh = 0
      try {
        const key = crypto.getRandomValues(new Uint8Array(32))
        const querySignal = this.dialSignal(signal)
        for await (const peer of this.components.peerRouting.getClosestPeers(key, { signal: querySignal })) {
          // the DHT just vouched for this peer: a known candidate is retried now (at most once per
          // walk, and walks slow down while they find no one new); a new one counts as fresh
          if (this.addCandidate(peer.id, true)) fresh++
        }
      } catch (err) {
        this.log.trace('DHT walk ended - %e', err)
      }
      this.pump()
      // a walk that found someone new is worth repeating at once, whatever else happened
      if (fresh > 0) this.walkChanged = true
      this.walkDelay = fresh > 0 ? this.walkInterval : Math.min(this.walkDelay * 2, MAX_WALK_INTERVAL)
    }
  }

  /** Waits walkDelay, or less if walkSoon() is called meanwhile; false if `signal` aborted first. */
  private async walkPause(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return false
    return await new Promise(resolve => {
      let until = Date.now() + this.walkDelay
      let timer: ReturnType<typeof setTimeout>
      const done = (ok: boolean): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        if (this.walkNudge === nudge) this.walkNudge = undefined
        resolve(ok)
      }
      const onAbort = (): void => {
        done(false)
      }
      const arm = (ms: number): void => {
        clearTimeout(timer)
        timer = setTimeout(() => {
          done(true)
        }, ms)
      }
      const nudge = (): void => {
        const at = Date.now() + this.walkInterval
        if (at >= until) return
        until = at
        arm(this.walkInterval)
      }
      arm(this.walkDelay)
      this.walkNudge = nudge
      signal.addEventListener('abort', onAbort)
    })
  }

  /** Aborts after dialTimeout, or when `base` (by default this start's shutdown) aborts. */
  private dialSignal(base: AbortSignal = this.shutdown.signal): AbortSignal {
    return AbortSignal.any([base, AbortSignal.timeout(this.dialTimeout)])
  }

  /** Exponential backoff with ±20% jitter, capped at maxBackoff. */
  private backoff(failures: number): number {
    const base = Math.min(this.maxBackoff, this.minBackoff * 2 ** Math.min(failures - 1, 30))
    return Math.round(base * (0.8 + Math.random() * 0.4))
  }
}

export function bootstrap(init: BootstrapInit = {}): (components: BootstrapComponents) => Bootstrap {
  return components => new BootstrapService(components, init)
}
