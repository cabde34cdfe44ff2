import { strict as assert } from 'node:assert'
import { parseMultiaddrs, peerIdOf } from '../../src/network/multiaddrs.ts'

const PEER = '12D3KooWRPYtu7rfWdixTa6QhUpPS4cnqSEURWAYndmdzqqmaL5h'

describe('parseMultiaddrs', () => {
  it('accepts listen and bootstrap addresses', () => {
    assert.equal(parseMultiaddrs(['/ip4/0.0.0.0/tcp/4101', '/ip6/::1/tcp/0/ws'], 'listen').length, 2)
    const [b] = parseMultiaddrs([`/ip4/10.0.0.1/tcp/4101/p2p/${PEER}`], 'bootstrap')
    assert.equal(peerIdOf(b), PEER)
    assert.equal(parseMultiaddrs(['/dnsaddr/bootstrap.example.org'], 'bootstrap').length, 1)
  })

  it('names the bad input and the option in its error', () => {
    assert.throws(
      () => parseMultiaddrs(['/ip4/1.2.3/tcp/1'], 'listen'),
      (e: Error) =>
        e.name === 'InvalidMultiaddrError' && e.message.includes('--listen') && e.message.includes('/ip4/1.2.3/tcp/1')
    )
    assert.throws(
      () => parseMultiaddrs(['/ip4/1.2.3.4/tcp/1'], 'bootstrap'),
      (e: Error) => e.name === 'InvalidMultiaddrError' && e.message.includes('/p2p/')
    )
    assert.throws(() => parseMultiaddrs([`/ip4/1.2.3.4/tcp/1/p2p/${PEER}`], 'listen'), {
      name: 'InvalidMultiaddrError'
    })
    assert.throws(() => parseMultiaddrs([''], 'listen'), { name: 'InvalidMultiaddrError' })
    assert.throws(() => parseMultiaddrs(['/ip4/' + '1'.repeat(2000)], 'listen'), { name: 'InvalidMultiaddrError' })
    assert.throws(() => parseMultiaddrs(new Array(65).fill('/ip4/127.0.0.1/tcp/0'), 'listen'), {
      name: 'InvalidMultiaddrError'
    })
  })
})
