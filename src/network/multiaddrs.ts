/**
 * Parsing of user-supplied multiaddrs (`--listen`, `--bootstrap`, URL parameters) with errors that
 * name the bad input.
 *
 * @example
 * const list = parseMultiaddrs(['/ip4/127.0.0.1/tcp/4101/p2p/12D3Koo…'], 'bootstrap')
 */
import { multiaddr } from '@multiformats/multiaddr'
import { InvalidMultiaddrError } from '../errors.ts'
import type { Multiaddr } from '@multiformats/multiaddr'

/** How many multiaddrs one option may list, and how long one may be. */
export const MAX_MULTIADDRS = 64
export const MAX_MULTIADDR_LENGTH = 1024

export type MultiaddrRole = 'listen' | 'bootstrap'

/**
 * Parses a list of multiaddr strings for a role. A bootstrap address must name the peer it
 * expects (`/p2p/<peer-id>`) or be a `/dnsaddr/`, so that a dial cannot be answered by an impostor
 * without us noticing.
 */
export function parseMultiaddrs(inputs: readonly string[], role: MultiaddrRole): Multiaddr[] {
  if (inputs.length > MAX_MULTIADDRS) {
    throw new InvalidMultiaddrError(
      `too many --${role} addresses: ${inputs.length} (at most ${MAX_MULTIADDRS})`,
      String(inputs.length)
    )
  }
  return inputs.map(input => parseMultiaddr(input, role))
}

export function parseMultiaddr(input: string, role: MultiaddrRole): Multiaddr {
  if (typeof input !== 'string' || input.length === 0) {
    throw new InvalidMultiaddrError(`invalid --${role} multiaddr: empty`, String(input))
  }
  if (input.length > MAX_MULTIADDR_LENGTH) {
    throw new InvalidMultiaddrError(
      `invalid --${role} multiaddr: longer than ${MAX_MULTIADDR_LENGTH} characters`,
      input.slice(0, 64)
    )
  }
  let ma: Multiaddr
  try {
    ma = multiaddr(input)
  } catch (err) {
    throw new InvalidMultiaddrError(`invalid --${role} multiaddr "${input}": ${(err as Error).message}`, input)
  }
  const names = ma.getComponents().map(c => c.name)
  if (role === 'bootstrap' && !names.includes('p2p') && !names.includes('dnsaddr')) {
    throw new InvalidMultiaddrError(
      `invalid --bootstrap multiaddr "${input}": it must end in /p2p/<peer-id> (or be a /dnsaddr/)`,
      input
    )
  }
  if (role === 'listen' && names.includes('p2p') && !names.includes('p2p-circuit')) {
    throw new InvalidMultiaddrError(`invalid --listen multiaddr "${input}": a listen address cannot name a peer`, input)
  }
  return ma
}

/** The peer id string a multiaddr names (its last `/p2p/` component), if any. */
export function peerIdOf(ma: Multiaddr): string | undefined {
  const p2p = ma.getComponents().filter(c => c.name === 'p2p')
  return p2p.at(-1)?.value
}
