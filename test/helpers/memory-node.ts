/**
 * In-process nodes on the memory transport, for tests of the node stack that do not need real
 * processes or sockets (each is a full createNode stack; only the transport and stores differ).
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { memory } from '@libp2p/memory'
import { tcp } from '@libp2p/tcp'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { createNode } from '../../src/node.ts'
import { useEd25519 } from '../../src/crypto/ed25519.ts'
import { processEd25519 } from '../../node/ed25519.ts'
import type { CreateNodeOptions, CyberspaceNode } from '../../src/node.ts'

// in-process nodes sign and verify on node:crypto, as node processes do (node/platform.ts)
useEd25519(processEd25519)

let counter = 0

export async function memoryNode(options: Partial<CreateNodeOptions> = {}): Promise<CyberspaceNode> {
  const node = await createNode({
    privateKey: await generateKeyPair('Ed25519'),
    transports: [memory()],
    blockstore: new MemoryBlockstore(),
    datastore: new MemoryDatastore(),
    listen: [`/memory/cyberspace-test-${process.pid}-${counter++}`],
    dhtServer: true,
    ...options
  })
  await node.start()
  return node
}

/** The same stack with memory stores, listening on TCP 127.0.0.1: for tests and benchmarks of real sockets. */
export async function loopbackNode(options: Partial<CreateNodeOptions> = {}): Promise<CyberspaceNode> {
  return await memoryNode({ transports: [tcp()], listen: ['/ip4/127.0.0.1/tcp/0'], ...options })
}
