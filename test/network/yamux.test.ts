/**
 * Yamux window updates (src/network/yamux.ts): a receiver credits its window back once half of it
 * is used, not after every frame — and flow control still carries a transfer many windows long.
 */
import { strict as assert } from 'node:assert'
import { noise } from '@chainsafe/libp2p-noise'
import { YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { memory } from '@libp2p/memory'
import { sha256 } from '@noble/hashes/sha2.js'
import { createLibp2p } from 'libp2p'
import { creditHalfWindows, yamuxMuxer } from '../../src/network/yamux.ts'
import type { YamuxMuxerInit } from '@chainsafe/libp2p-yamux'
import type { Libp2p, Stream } from '@libp2p/interface'

const PROTOCOL = '/cyberspace/test-yamux/1.0.0'
let counter = 0

async function bare(muxer: YamuxMuxerInit = {}): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen: [`/memory/yamux-test-${process.pid}-${counter++}`] },
    transports: [memory()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamuxMuxer(muxer)],
    connectionMonitor: { enabled: false }
  })
}

/** Window update frames (yamux type 1) a stream sends that only credit its window (no flag: not the ACK). */
function countWindowUpdates(stream: Stream): { count: number } {
  assert.ok(stream instanceof YamuxStream, 'the handler is given the yamux stream itself')
  const counted = { count: 0 }
  const target = stream as unknown as { sendFrame: (header: { type: number; flag: number }, body?: unknown) => boolean }
  const send = target.sendFrame
  target.sendFrame = (header, body) => {
    if (header.type === 1 && header.flag === 0) counted.count++
    return send(header, body)
  }
  return counted
}

describe('yamux: window updates once half the window is used', function () {
  this.timeout(60_000)
  let a: Libp2p
  let b: Libp2p
  let received: { count: number; bytes: number; digest?: string; updates?: { count: number } }
  let done: Promise<void> | undefined

  before(async () => {
    assert.equal(creditHalfWindows(), true, '@chainsafe/libp2p-yamux streams have the expected shape')
    ;[a, b] = await Promise.all([bare(), bare()])
    await b.handle(PROTOCOL, async stream => {
      const hash = sha256.create()
      const updates = countWindowUpdates(stream)
      received.updates = updates
      let finish: () => void = () => {}
      done = new Promise(resolve => (finish = resolve))
      for await (const chunk of stream) {
        const bytes = chunk.subarray()
        received.count++
        received.bytes += bytes.length
        hash.update(bytes)
      }
      received.digest = Buffer.from(hash.digest()).toString('hex')
      finish()
      await stream.close()
    })
  })

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()])
  })

  async function send(messages: Uint8Array[]): Promise<void> {
    received = { count: 0, bytes: 0 }
    done = undefined
    const stream = await a.dialProtocol(b.getMultiaddrs()[0], PROTOCOL)
    for (const m of messages) {
      if (!stream.send(m)) await new Promise(resolve => stream.addEventListener('drain', resolve, { once: true }))
    }
    await stream.close()
    const deadline = Date.now() + 30_000
    while (done == null && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
    await done
  }

  it('200 small messages on one stream: no window update at all (the library sent one per frame)', async () => {
    const messages = Array.from({ length: 200 }, (_, i) => new Uint8Array(100).fill(i))
    await send(messages)
    assert.equal(received.bytes, 200 * 100)
    assert.equal(received.updates?.count, 0)
  })

  it('8 MiB, 32 windows of the initial 256 KiB: every byte arrives in order, credited every half window or more', async () => {
    const chunk = 16 * 1024
    const messages = Array.from({ length: (8 * 1024 * 1024) / chunk }, () =>
      crypto.getRandomValues(new Uint8Array(chunk))
    )
    const hash = sha256.create()
    for (const m of messages) hash.update(m)
    await send(messages)
    assert.equal(received.bytes, 8 * 1024 * 1024)
    assert.equal(received.digest, Buffer.from(hash.digest()).toString('hex'))
    const updates = received.updates?.count ?? 0
    // the sender would have stalled after 256 KiB without any; one per half window (128 KiB) at most
    assert.ok(updates >= 1 && updates <= (8 * 1024) / 128, `${updates} window updates for 8 MiB`)
  })

  it('a receiver with a 1 MiB window credits a sender that assumes the spec’s 256 KiB before it runs out', async () => {
    const big = await bare({ streamOptions: { initialStreamWindowSize: 1 << 20, maxStreamWindowSize: 1 << 24 } })
    try {
      let bytes = 0
      let finish: () => void = () => {}
      const finished = new Promise<void>(resolve => (finish = resolve))
      await big.handle(PROTOCOL, async stream => {
        for await (const chunk of stream) bytes += chunk.byteLength
        finish()
        await stream.close()
      })
      const stream = await a.dialProtocol(big.getMultiaddrs()[0], PROTOCOL)
      for (let i = 0; i < 64; i++) {
        if (!stream.send(new Uint8Array(16 * 1024))) await stream.onDrain({ signal: AbortSignal.timeout(10_000) })
      }
      await stream.close()
      await Promise.race([
        finished,
        new Promise((resolve, reject) => setTimeout(() => reject(new Error(`stalled at ${bytes} bytes`)), 20_000))
      ])
      assert.equal(bytes, 1 << 20)
    } finally {
      await big.stop()
    }
  })
})
