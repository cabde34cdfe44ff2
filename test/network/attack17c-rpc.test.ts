/**
 * Attacker against reused request streams (src/network/rpc.ts, '<id>/many'): a requester that
 * parks a half-sent request on a reused stream, and a server that sends an answer before the
 * request it answers.
 */
import { strict as assert } from 'node:assert'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { memory } from '@libp2p/memory'
import { lpStream } from '@libp2p/utils'
import { createLibp2p } from 'libp2p'
import { handleRequests, requestOnce, reusable, serveRequests, StreamPool } from '../../src/network/rpc.ts'
import type { Libp2p, Stream } from '@libp2p/interface'

const PROTOCOL = '/cyberspace/attack17c-rpc/1.0.0'
const MAX = 64 * 1024
/** The server's time for a request to arrive whole and be answered. */
const TIMEOUT = 300
let counter = 0

async function bare(): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen: [`/memory/attack17c-rpc-${process.pid}-${counter++}`] },
    transports: [memory()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false }
  })
}

const silent = Object.assign(() => {}, { enabled: false, trace: () => {}, error: () => {}, newScope: () => silent })
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

/** Waits (bounded) until the server has ended `stream` for reading or writing; whether it did. */
async function endedByServer(stream: Stream, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (stream.status !== 'open' || stream.remoteWriteStatus !== 'writable') return true
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  return false
}

describe('attack17c: reused request streams', function () {
  this.timeout(30_000)
  let a: Libp2p
  let b: Libp2p

  beforeEach(async () => {
    a = await bare()
    b = await bare()
    await a.dial(b.getMultiaddrs()[0])
  })

  afterEach(async () => {
    await Promise.all([a.stop(), b.stop()])
  })

  const echo = serveRequests(async request => bytes(`echo ${text(request)}`), {
    maxBytes: MAX,
    timeout: TIMEOUT,
    log: silent as never
  })

  /** A length prefix announcing `length` bytes and `sent` of them: a request that never ends. */
  const partial = (length: number, sent: number): Uint8Array => {
    const prefix: number[] = []
    for (let n = length; ; n = Math.floor(n / 128)) {
      if (n < 128) {
        prefix.push(n)
        break
      }
      prefix.push((n % 128) | 128)
    }
    const out = new Uint8Array(prefix.length + sent)
    out.set(prefix)
    return out
  }

  it('control: a first request left half-sent is dropped after the server timeout', async () => {
    await handleRequests(b, PROTOCOL, echo)
    const stream = await a.dialProtocol(b.peerId, reusable(PROTOCOL))
    stream.send(partial(MAX, MAX / 2))
    assert.ok(await endedByServer(stream, 20 * TIMEOUT), 'the half-sent first request is dropped')
  })

  it('a later request left half-sent on a reused stream is dropped after the server timeout, not SERVE_IDLE_MS', async () => {
    // slowloris: one honest request, then MAX/2 bytes of a request parked on the server for 115 s
    await handleRequests(b, PROTOCOL, echo)
    const stream = await a.dialProtocol(b.peerId, reusable(PROTOCOL))
    const lp = lpStream(stream)
    await lp.write(bytes('hello'))
    assert.equal(text((await lp.read({ signal: AbortSignal.timeout(5_000) })).subarray()), 'echo hello')
    stream.send(partial(MAX, MAX / 2))
    assert.ok(
      await endedByServer(stream, 20 * TIMEOUT),
      'a started request has the server timeout to arrive whole, like the first one'
    )
  })

  it('a half-sent request pipelined behind an answered one is dropped after the server timeout', async () => {
    // the same, with the parked part sent in the same write as the request before it
    await handleRequests(b, PROTOCOL, echo)
    const stream = await a.dialProtocol(b.peerId, reusable(PROTOCOL))
    const lp = lpStream(stream)
    const first = bytes('hello')
    const park = partial(MAX, MAX / 2)
    const burst = new Uint8Array(1 + first.length + park.length)
    burst[0] = first.length
    burst.set(first, 1)
    burst.set(park, 1 + first.length)
    stream.send(burst)
    assert.equal(text((await lp.read({ signal: AbortSignal.timeout(5_000) })).subarray()), 'echo hello')
    assert.ok(await endedByServer(stream, 20 * TIMEOUT), 'the parked request has the server timeout to arrive whole')
  })

  for (const pause of [0, 100]) {
    it(`a requester never reads, as the answer to its next request, bytes a server sent ${pause} ms after an answer`, async () => {
      await b.handle(reusable(PROTOCOL), async (stream: Stream) => {
        const lp = lpStream(stream)
        for (let i = 0; i < 3; i++) {
          const request = await lp.read({ signal: AbortSignal.timeout(10_000) }).catch(() => undefined)
          if (request == null) return
          await lp.write(bytes(`echo ${text(request.subarray())}`))
          if (i > 0) continue
          if (pause > 0) await new Promise(resolve => setTimeout(resolve, pause))
          await lp.write(bytes('forged'))
        }
      })
      await b.handle(PROTOCOL, echo)
      const pool = new StreamPool()
      const ask = async (s: string): Promise<string> =>
        text(
          await requestOnce(
            async (peer, protocol) => await a.dialProtocol(peer, protocol),
            b.peerId,
            PROTOCOL,
            bytes(s),
            {
              maxBytes: MAX,
              signal: AbortSignal.timeout(5_000),
              pool
            }
          )
        )
      try {
        assert.equal(await ask('one'), 'echo one')
        await new Promise(resolve => setTimeout(resolve, pause + 200))
        assert.equal(await ask('two'), 'echo two', 'the answer sent before its request is never taken')
      } finally {
        pool.close()
      }
    })
  }
})
