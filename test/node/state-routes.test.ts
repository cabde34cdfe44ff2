import { strict as assert } from 'node:assert'
import { apiClient } from '../../node/api/client.ts'
import { startApiServer } from '../../node/api/server.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import type { ApiClient } from '../../node/api/client.ts'
import type { ApiServer } from '../../node/api/server.ts'
import type { DocumentView, WatchView } from '../../node/api/state-routes.ts'
import type { CyberspaceNode } from '../../src/node.ts'

/** The state routes of the control API, in process, over real HTTP on 127.0.0.1. */
describe('control API: state routes', function () {
  this.timeout(30_000)
  let node: CyberspaceNode
  const servers: ApiServer[] = []
  const api = async (): Promise<ApiClient> => {
    const server = await startApiServer({ node, token: 't0ken', port: 0, pageDir: '/nonexistent' })
    servers.push(server)
    return apiClient(server.url, 't0ken')
  }
  const refused = async (request: Promise<unknown>, status: number, message: RegExp): Promise<void> => {
    await assert.rejects(
      request,
      (err: Error & { status?: number }) => err.status === status && message.test(err.message)
    )
  }

  before(async () => {
    node = await memoryNode()
  })
  after(async () => {
    for (const s of servers) await s.close()
    await node.stop()
  })

  it('reads never create a document; open and update do', async () => {
    const client = await api()
    await refused(client.get('state/get', { name: 'notes', type: 'lww-register' }), 404, /no document notes/)
    await refused(client.get('state/watch', { name: 'notes' }), 404, /no document notes/)
    assert.deepEqual(await client.get('state'), [])
    const opened = await client.post<DocumentView>('state/open', { name: 'notes', type: 'lww-register' })
    assert.deepEqual(opened, {
      name: 'notes',
      type: 'lww-register',
      value: null,
      heads: [],
      events: 0,
      public: false
    })
    await refused(client.get('state/get', { name: 'notes', type: 'or-set' }), 409, /is a lww-register, not a or-set/)
    await client.post('state/update', { name: 'counts', type: 'g-counter', op: 'increment', value: 2 })
    assert.deepEqual(
      (await client.get<Array<{ name: string }>>('state')).map(d => d.name),
      ['counts', 'notes']
    )
  })

  it('opens a public document only when asked, and deletes a document from this node', async () => {
    const client = await api()
    const shared = await client.post<DocumentView>('state/update', {
      name: 'board',
      type: 'or-set',
      public: true,
      op: 'add',
      value: 'hello'
    })
    assert.equal(shared.public, true)
    assert.equal((await client.get<DocumentView>('state/get', { name: 'board' })).public, true)
    // updating without saying public leaves it public
    await client.post('state/update', { name: 'board', op: 'add', value: 'again' })
    assert.equal((await client.get<DocumentView>('state/get', { name: 'board' })).public, true)
    await refused(
      client.post('state/update', { name: 'board', public: true, op: 'add', value: 'x' }),
      400,
      /give its type/
    )
    await refused(
      client.post('state/open', { name: 'board', type: 'or-set', public: 'yes' }),
      400,
      /public must be true or false/
    )
    const listed = await client.get<Array<{ name: string; public: boolean }>>('state')
    assert.equal(listed.find(d => d.name === 'board')?.public, true)

    assert.deepEqual(await client.post('state/delete', { name: 'board' }), { name: 'board', deleted: true })
    await refused(client.get('state/get', { name: 'board' }), 404, /no document board/)
    assert.equal((await client.get<Array<{ name: string }>>('state')).filter(d => d.name === 'board').length, 0)
    assert.deepEqual(await client.post('state/delete', { name: 'board' }), { name: 'board', deleted: false })
    await refused(client.post('state/delete', { name: 'Bad Name' }), 400, /invalid document name/)
  })

  it('carries values as DAG-JSON and refuses malformed input', async () => {
    const client = await api()
    const link = { '/': 'bafyreibk6h4tslolynecd7dqmvcj4g5ptkyeqhpbobqfyhasrm7h2tvgpi' }
    const bytes = { '/': { bytes: 'AQID' } }
    const view = await client.post<DocumentView>('state/update', {
      name: 'things',
      type: 'or-map',
      op: 'set',
      path: ['a'],
      value: { link, bytes, n: 1.5 }
    })
    assert.deepEqual(view.value, { a: { bytes, link, n: 1.5 } })
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ name: 'things', op: 'set', path: ['a'], value: { '/': 'not a cid' } }, /value is not DAG-JSON/],
      [{ name: 'things', op: 'set', path: [], value: 1 }, /path must list 1-8 field names/],
      [{ name: 'things', op: 'set', value: 1 }, /set on a map needs a path/],
      [{ name: 'things', op: 'frob', path: ['a'] }, /op must be one of/],
      [{ name: '../etc', type: 'or-map', op: 'set', path: ['a'], value: 1 }, /invalid document name/],
      [{ name: 'things', op: 'increment', path: ['c'], value: -3 }, /whole number ≥ 1/],
      [{ name: 'things', type: 'b-tree', op: 'set', path: ['a'], value: 1 }, /type must be one of/]
    ]
    for (const [body, message] of bad) await refused(client.post('state/update', body), 400, message)
  })

  it('watch: waits for the next change, counts what a slow poller missed, and resets for another run', async () => {
    const client = await api()
    const doc = await node.state.open('feed', 'or-set')
    const first = await client.get<WatchView>('state/watch', { name: 'feed', after: '0', wait: '0' })
    assert.equal(first.next, 0)
    const polling = client.get<WatchView>('state/watch', { name: 'feed', after: '0', wait: '20000', run: first.run })
    await new Promise(resolve => setTimeout(resolve, 100))
    await doc.add('one')
    const woken = await polling
    assert.deepEqual(
      woken.changes.map(c => [c.seq, c.kind, c.author, c.local]),
      [[1, 'event', principalFromPeerId(node.peerId), true]]
    )
    assert.deepEqual(woken.value, ['one'])

    for (let i = 0; i < 300; i++) await doc.add(`e${i}`)
    const behind = await client.get<WatchView>('state/watch', { name: 'feed', after: '1', wait: '0', run: first.run })
    assert.equal(behind.next, 301)
    assert.equal(behind.changes.length, 256)
    assert.equal(behind.missed, 300 - 256)

    // numbers from another run of the API (or beyond the last change) are answered at once, reset
    const other = await api()
    const reset = await other.get<WatchView>('state/watch', { name: 'feed', after: '5', wait: '20000', run: first.run })
    assert.notEqual(reset.run, first.run)
    assert.deepEqual([reset.next, reset.changes.length, reset.missed], [0, 0, 0])
    await refused(client.get('state/watch', { name: 'feed', wait: '40000' }), 400, /wait must be 0-30000/)
  })
})
