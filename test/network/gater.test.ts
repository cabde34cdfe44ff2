import { strict as assert } from 'node:assert'
import { multiaddr } from '@multiformats/multiaddr'
import { hostOf, privateAddressGate } from '../../src/network/gater.ts'

describe('privateAddressGate', () => {
  it('lets a tab dial named private hosts and public ones, but no other private host', () => {
    const allowed = new Set<string>()
    const deny = privateAddressGate(['127.0.0.1', undefined, ''], allowed)
    assert.equal(deny(multiaddr('/ip4/127.0.0.1/tcp/4102/ws')), false)
    assert.equal(deny(multiaddr('/ip4/8.8.8.8/tcp/443/wss')), false)
    assert.equal(deny(multiaddr('/ip4/10.0.0.5/tcp/4102/ws')), true)
    assert.equal(deny(multiaddr('/ip4/192.168.1.20/tcp/4102/ws')), true)
    assert.equal(deny(multiaddr('/dns4/localhost/tcp/4102/ws')), true)
    // a relayed address is judged by its relay's host
    assert.equal(
      deny(multiaddr('/ip4/127.0.0.1/tcp/1/ws/p2p/12D3KooWRPYtu7rfWdixTa6QhUpPS4cnqSEURWAYndmdzqqmaL5h/p2p-circuit')),
      false
    )
    allowed.add('10.0.0.5')
    assert.equal(deny(multiaddr('/ip4/10.0.0.5/tcp/4102/ws')), false)
  })

  it('finds the host of a multiaddr', () => {
    assert.equal(hostOf(multiaddr('/ip6/::1/tcp/1')), '::1')
    assert.equal(hostOf(multiaddr('/dns4/example.org/tcp/443/wss')), 'example.org')
    assert.equal(hostOf(multiaddr('/memory/x')), undefined)
  })
})
