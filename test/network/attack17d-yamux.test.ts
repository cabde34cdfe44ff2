/**
 * attack17d: the half-window rule on @chainsafe/libp2p-yamux streams (src/network/yamux.ts) against
 * what flow control must still guarantee. A reader that pauses holds at most one receive window
 * (the sender stops, the rule gives it no extra credit), and resuming carries the transfer to its end
 * (the resume goes through the rule: the sender must still get its credit); a stream used both ways
 * at once by two large transfers does not deadlock; a sender that closes with a window's worth of
 * data still in flight has every byte delivered.
 */
import { strict as assert } from 'node:assert'
import { noise } from '@chainsafe/libp2p-noise'
import { YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { memory } from '@libp2p/memory'
import { sha256 } from '@noble/hashes/sha2.js'
import { createLibp2p } from 'libp2p'
import { yamuxMuxer } from '../../src/network/yamux.ts'
import type { Libp2p, Stream } from '@libp2p/interface'

const PAUSE = '/cyberspace/test-attack17d-pause/1.0.0'
const ECHO = '/cyberspace/test-attack17d-both/1.0.0'
const SINK = '/cyberspace/test-attack17d-sink/1.0.0'
let counter = 0

async function bare(): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen: [`/memory/attack17d-yamux-${process.pid}-${counter++}`] },
    transports: [memory()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamuxMuxer()],
    connectionMonitor: { enabled: false }
  })
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

function random(total: number, chunk = 16 * 1024): Uint8Array[] {
  return Array.from({ length: Math.ceil(total / chunk) }, () => crypto.getRandomValues(new Uint8Array(chunk)))
}

function digest(chunks: Uint8Array[]): string {
  const h = sha256.create()
  for (const c of chunks) h.update(c)
  return hex(h.digest())
}

/** Sends every chunk, waiting for drain when the stream asks; bounded in time. */
async function sendAll(stream: Stream, chunks: Uint8Array[]): Promise<void> {
  const deadline = Date.now() + 30_000
  for (const c of chunks) {
    if (Date.now() > deadline) throw new Error('sending took over 30 s: flow control stalled')
    if (!stream.send(c)) await stream.onDrain({ signal: AbortSignal.timeout(10_000) })
  }
}

/** Reads a stream to its end into a digest and a byte count; bounded in time. */
async function readAll(stream: Stream): Promise<{ bytes: number; digest: string }> {
  const h = sha256.create()
  let bytes = 0
  const reading = (async () => {
    for await (const chunk of stream) {
      const b = chunk.subarray()
      bytes += b.length
      h.update(b)
    }
  })()
  await Promise.race([
    reading,
    new Promise((_resolve, reject) =>
      setTimeout(() => reject(new Error(`reading stalled at ${bytes} bytes`)), 30_000).unref()
    )
  ])
  return { bytes, digest: hex(h.digest()) }
}

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

describe('attack17d: yamux flow control under the half-window rule', function () {
  this.timeout(90_000)
  let a: Libp2p
  let b: Libp2p
  let paused: { stream?: Stream; bytes: number; chunks: Uint8Array[]; ended: boolean }

  before(async () => {
    ;[a, b] = await Promise.all([bare(), bare()])
    await b.handle(PAUSE, async stream => {
      paused.stream = stream
      stream.pause()
      stream.addEventListener('message', e => {
        const bytes = e.data.subarray()
        paused.bytes += bytes.length
        paused.chunks.push(bytes)
      })
      stream.addEventListener('remoteCloseWrite', () => {
        paused.ended = true
      })
    })
    // echoes everything back while it reads: both directions carry a large transfer at once
    await b.handle(ECHO, async stream => {
      for await (const chunk of stream) {
        if (!stream.send(chunk)) await stream.onDrain({ signal: AbortSignal.timeout(10_000) })
      }
      await stream.close()
    })
    await b.handle(SINK, async stream => {
      const got = await readAll(stream)
      stream.send(new TextEncoder().encode(`${got.bytes} ${got.digest}`))
      await stream.close()
    })
  })

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()])
  })

  it('a paused reader holds at most one receive window; once resumed, all 2 MiB arrive intact', async () => {
    paused = { bytes: 0, chunks: [], ended: false }
    const chunks = random(2 * 1024 * 1024)
    const stream = await a.dialProtocol(b.getMultiaddrs()[0], PAUSE)
    const sending = sendAll(stream, chunks).then(async () => await stream.close())
    await until('the reader has its stream', () => paused.stream != null)
    assert.ok(paused.stream instanceof YamuxStream)
    const reader = paused.stream as unknown as { readBufferLength: number; recvWindow: number }
    // the sender fills what credit it has, then waits: the buffer settles at or under one window
    let last = -1
    await until(
      'the paused buffer settles',
      () => {
        const now = reader.readBufferLength
        const settled = now === last && now > 0
        last = now
        return settled
      },
      10_000
    )
    await new Promise(resolve => setTimeout(resolve, 200))
    assert.equal(paused.bytes, 0, 'nothing is delivered while paused')
    assert.ok(
      reader.readBufferLength <= reader.recvWindow,
      `${reader.readBufferLength} bytes held for a ${reader.recvWindow}-byte window`
    )
    paused.stream!.resume()
    await sending
    await until('every byte arrives', () => paused.ended && paused.bytes === 2 * 1024 * 1024, 30_000)
    assert.equal(digest(paused.chunks), digest(chunks))
  })

  it('one stream carrying 2 MiB each way at once (an echo) does not deadlock', async () => {
    const chunks = random(2 * 1024 * 1024)
    const stream = await a.dialProtocol(b.getMultiaddrs()[0], ECHO)
    const [, echoed] = await Promise.all([
      sendAll(stream, chunks).then(async () => await stream.close()),
      readAll(stream)
    ])
    assert.equal(echoed.bytes, 2 * 1024 * 1024)
    assert.equal(echoed.digest, digest(chunks))
  })

  it('a sender that closes with a window of data in flight has every byte delivered, on 8 streams at once', async () => {
    const decoder = new TextDecoder()
    const results = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const chunks = random(384 * 1024)
        const stream = await a.dialProtocol(b.getMultiaddrs()[0], SINK)
        await sendAll(stream, chunks)
        // closed at once: up to a window of it is still in flight
        await stream.close()
        const reply: Uint8Array[] = []
        for await (const c of stream) reply.push(c.subarray())
        return { text: decoder.decode(Buffer.concat(reply)), expected: `${384 * 1024} ${digest(chunks)}` }
      })
    )
    for (const r of results) assert.equal(r.text, r.expected)
  })
})
