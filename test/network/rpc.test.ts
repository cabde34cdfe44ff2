/**
 * Requests over streams (src/network/rpc.ts): a StreamPool sends later requests on the stream it
 * opened first when the server serves the reusable id, falls back to a stream per request when it
 * does not, and never keeps a stream whose request failed, was aborted or whose peer misbehaved.
 */
import { strict as assert } from 'node:assert'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { memory } from '@libp2p/memory'
import { lpStream } from '@libp2p/utils'
import { createLibp2p } from 'libp2p'
import {
  handleRequests,
  requestOnce,
  reusable,
  serveRequests,
  StreamPool,
  unhandleRequests
} from '../../src/network/rpc.ts'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'

const PROTOCOL = '/cyberspace/test-rpc/1.0.0'
const MAX = 1024
let counter = 0

async function bare(): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen: [`/memory/rpc-test-${process.pid}-${counter++}`] },
    transports: [memory()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false }
  })
}

const silent = Object.assign(() => {}, { enabled: false, trace: () => {}, error: () => {}, newScope: () => silent })

describe('rpc: requests over reused streams', function () {
  this.timeout(30_000)
  let a: Libp2p
  let b: Libp2p
  /** Streams b's handler saw, in order, with the requests each carried. */
  let served: Array<{ id: string; protocol: string; requests: string[] }>

  const echo = serveRequests(
    async (request, _connection: Connection, _signal) => {
      const text = new TextDecoder().decode(request)
      if (text === 'refuse') throw new Error('refused on purpose')
      return new TextEncoder().encode(`echo ${text}`)
    },
    { maxBytes: MAX, timeout: 5_000, log: silent as never, refuse: () => new TextEncoder().encode('refused') }
  )
  const recording = async (stream: Stream, connection: Connection): Promise<void> => {
    const entry = { id: stream.id, protocol: stream.protocol, requests: [] as string[] }
    served.push(entry)
    stream.addEventListener('message', evt => {
      entry.requests.push(new TextDecoder().decode(evt.data.subarray()))
    })
    await echo(stream, connection)
  }

  beforeEach(async () => {
    served = []
    a = await bare()
    b = await bare()
    await a.dial(b.getMultiaddrs()[0])
  })

  afterEach(async () => {
    await Promise.all([a.stop(), b.stop()])
  })

  const open = async (peer: Parameters<Libp2p['dialProtocol']>[0], protocol: string | string[]): Promise<Stream> =>
    await a.dialProtocol(peer, protocol)
  const ask = async (text: string, pool?: StreamPool): Promise<string> =>
    new TextDecoder().decode(
      await requestOnce(open, b.peerId, PROTOCOL, new TextEncoder().encode(text), {
        maxBytes: MAX,
        signal: AbortSignal.timeout(5_000),
        pool
      })
    )

  it('sends later requests on the stream the first one opened, under the reusable id', async () => {
    await handleRequests(b, PROTOCOL, recording)
    const pool = new StreamPool()
    try {
      for (let i = 0; i < 5; i++) assert.equal(await ask(`m${i}`, pool), `echo m${i}`)
      assert.equal(served.length, 1)
      assert.equal(served[0].protocol, reusable(PROTOCOL))
      assert.equal(pool.size, 1)
      // a refusal is an answer: the stream stays usable
      assert.equal(await ask('refuse', pool), 'refused')
      assert.equal(await ask('after', pool), 'echo after')
      assert.equal(served.length, 1)
    } finally {
      pool.close()
    }
    assert.equal(pool.size, 0)
  })

  it('opens a stream per request when the peer serves only the plain id', async () => {
    await b.handle(PROTOCOL, recording)
    const pool = new StreamPool()
    try {
      for (let i = 0; i < 3; i++) assert.equal(await ask(`m${i}`, pool), `echo m${i}`)
      assert.deepEqual(
        served.map(s => s.protocol),
        [PROTOCOL, PROTOCOL, PROTOCOL]
      )
      assert.equal(pool.size, 0)
    } finally {
      pool.close()
    }
  })

  it('serves a requester without a pool one request per stream, as before', async () => {
    await handleRequests(b, PROTOCOL, recording)
    assert.equal(await ask('one'), 'echo one')
    assert.equal(await ask('two'), 'echo two')
    assert.deepEqual(
      served.map(s => s.protocol),
      [PROTOCOL, PROTOCOL]
    )
  })

  it('keeps at most 2 idle streams per peer and protocol, and opens more for concurrent requests', async () => {
    await handleRequests(b, PROTOCOL, recording)
    const pool = new StreamPool()
    try {
      const answers = await Promise.all(Array.from({ length: 5 }, async (_, i) => await ask(`c${i}`, pool)))
      assert.deepEqual(answers, ['echo c0', 'echo c1', 'echo c2', 'echo c3', 'echo c4'])
      assert.equal(served.length, 5)
      assert.equal(pool.size, 2)
    } finally {
      pool.close()
    }
  })

  it('asks once more on a new stream when a kept stream turns out dead, and never for any other failure', async () => {
    await handleRequests(b, PROTOCOL, recording)
    const pool = new StreamPool()
    /** Makes the kept stream fail on its next write with an error named `name`. */
    const spoil = (name: string): void => {
      const idle = (pool as unknown as { idle: Map<string, Array<{ lp: { write: () => Promise<void> } }>> }).idle
      const [entry] = [...idle.values()][0]
      entry.lp.write = async () => {
        throw Object.assign(new Error('spoiled by the test'), { name })
      }
    }
    try {
      assert.equal(await ask('one', pool), 'echo one')
      spoil('StreamResetError')
      assert.equal(await ask('two', pool), 'echo two')
      assert.equal(served.length, 2, 'the second request went on a new stream')
      spoil('InvalidDataLengthError')
      await assert.rejects(ask('three', pool), { name: 'InvalidDataLengthError' })
      assert.equal(served.length, 2, 'a failure that is not a lost stream is not asked again')
    } finally {
      pool.close()
    }
  })

  it('closes an idle stream after idleMs, and the server ends it cleanly', async () => {
    await handleRequests(b, PROTOCOL, recording)
    const pool = new StreamPool({ idleMs: 50 })
    try {
      assert.equal(await ask('x', pool), 'echo x')
      assert.equal(pool.size, 1)
      const deadline = Date.now() + 5_000
      while (pool.size > 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
      assert.equal(pool.size, 0)
      assert.equal(await ask('y', pool), 'echo y')
      assert.equal(served.length, 2)
    } finally {
      pool.close()
    }
  })

  it('never reuses a stream whose request was aborted: a late answer cannot be read as the next one', async () => {
    let release: () => void = () => {}
    const slow = serveRequests(
      async request => {
        const text = new TextDecoder().decode(request)
        if (text === 'slow') await new Promise<void>(resolve => (release = resolve))
        return new TextEncoder().encode(`echo ${text}`)
      },
      { maxBytes: MAX, timeout: 5_000, log: silent as never }
    )
    await handleRequests(b, PROTOCOL, async (stream, connection) => {
      served.push({ id: stream.id, protocol: stream.protocol, requests: [] })
      await slow(stream, connection)
    })
    const pool = new StreamPool()
    try {
      assert.equal(await ask('first', pool), 'echo first')
      const aborted = requestOnce(open, b.peerId, PROTOCOL, new TextEncoder().encode('slow'), {
        maxBytes: MAX,
        signal: AbortSignal.timeout(100),
        pool
      })
      await assert.rejects(aborted)
      release()
      assert.equal(await ask('next', pool), 'echo next')
      assert.equal(served.length, 2)
    } finally {
      pool.close()
    }
  })

  it('drops an idle stream on which the peer sends more than an answer, and answers the next request on a new one', async () => {
    // a hostile server: answers, then pushes bytes nobody asked for on the idle stream
    await b.handle(reusable(PROTOCOL), async (stream: Stream) => {
      served.push({ id: stream.id, protocol: stream.protocol, requests: [] })
      const lp = lpStream(stream)
      await lp.read()
      await lp.write(new TextEncoder().encode('echo x'))
      // once the stream is idle in the pool, bytes nobody asked for; the stream stays open
      await new Promise(resolve => setTimeout(resolve, 200))
      stream.send(new Uint8Array(4 * MAX))
      await new Promise(resolve => setTimeout(resolve, 3_000))
    })
    await b.handle(PROTOCOL, recording)
    const pool = new StreamPool()
    try {
      assert.equal(await ask('x', pool), 'echo x')
      const deadline = Date.now() + 1_500
      while (pool.size > 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
      assert.equal(pool.size, 0, 'the overflowing stream is no longer kept')
      await unhandleRequests(b, PROTOCOL)
      await handleRequests(b, PROTOCOL, recording)
      assert.equal(await ask('y', pool), 'echo y')
    } finally {
      pool.close()
    }
  })

  it('a server ends a reused stream on a request above its bound', async () => {
    await handleRequests(b, PROTOCOL, recording)
    const stream = await a.dialProtocol(b.peerId, reusable(PROTOCOL))
    const lp = lpStream(stream)
    await lp.write(new TextEncoder().encode('fine'))
    assert.equal(new TextDecoder().decode((await lp.read()).subarray()), 'echo fine')
    await lp.write(new Uint8Array(MAX + 1))
    await assert.rejects(lp.read({ signal: AbortSignal.timeout(5_000) }))
  })
})
