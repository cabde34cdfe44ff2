/**
 * Which private-network addresses a browser tab may dial.
 *
 * The browser's default gater refuses every private address and plain ws://. A cluster commonly
 * lives on a LAN or loopback, so those are allowed, but only to hosts the user named (bootstrap
 * addresses, the page's own host, addresses typed into the page): otherwise any peer could
 * advertise internal addresses and have every tab probe the user's network.
 *
 * @example
 * const allowed = new Set<string>()
 * const deny = privateAddressGate(['127.0.0.1'], allowed)
 * deny(multiaddr('/ip4/10.0.0.5/tcp/1/ws')) // true, until allowed.add('10.0.0.5')
 */
import { isPrivateIp } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'

/** The first IP or DNS host a multiaddr names. */
export function hostOf(ma: Multiaddr): string | undefined {
  return ma.getComponents().find(c => ['ip4', 'ip6', 'dns', 'dns4', 'dns6'].includes(c.name))?.value
}

/**
 * A `denyDialMultiaddr` function: public addresses pass; private ones (and `localhost`) only for
 * `initial` hosts or those in `allowed`, a set the caller may grow later.
 */
export function privateAddressGate(
  initial: Array<string | undefined>,
  allowed: Set<string> = new Set()
): (ma: Multiaddr) => boolean {
  for (const host of initial) if (host != null && host !== '') allowed.add(host)
  return ma => {
    const host = hostOf(ma)
    if (host == null || allowed.has(host)) return false
    return isPrivateIp(host) === true || host === 'localhost'
  }
}
