/**
 * The idle benchmark's floor: a bare libp2p node (TCP, noise, yamux, no services) on 127.0.0.1.
 * Prints its address as one JSON line on stdout, dials the addresses given as arguments, then sits
 * idle until SIGTERM. bench/idle.bench.ts runs two of these as the pair whose idle CPU nothing of
 * Cyberspace's can go below.
 *
 * @example
 * node bench/idle-floor.ts /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo…
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()]
})
for (const addr of process.argv.slice(2)) await node.dial(multiaddr(addr))
process.stdout.write(
  JSON.stringify({ peerId: node.peerId.toString(), addr: node.getMultiaddrs()[0].toString() }) + '\n'
)
process.once('SIGTERM', () => {
  void Promise.resolve(node.stop()).finally(() => process.exit(0))
})
