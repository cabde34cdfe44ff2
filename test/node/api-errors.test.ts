import { strict as assert } from 'node:assert'
import { apiClient } from '../../node/api/client.ts'
import { errorFields } from '../../node/api/http.ts'
import { startApiServer } from '../../node/api/server.ts'
import { main } from '../../node/cli.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import type { ApiServer } from '../../node/api/server.ts'
import type { CyberspaceNode } from '../../src/node.ts'

/** How the control API reports errors: plain messages a person can act on, structured fields for programs. */
describe('control API errors', function () {
  this.timeout(30_000)
  let node: CyberspaceNode
  let server: ApiServer

  before(async () => {
    node = await memoryNode()
    server = await startApiServer({ node, token: 't0ken', port: 0, pageDir: '/nonexistent' })
  })
  after(async () => {
    await server.close()
    await node.stop()
  })

  it('says no peer subscribes to a topic yet, instead of a gossipsub error name', async () => {
    const client = apiClient(server.url, 't0ken')
    await assert.rejects(
      client.post('pubsub/publish', { topic: 'news', data: 'hello' }),
      (err: Error & { status?: number }) =>
        err.status === 409 && err.message === 'no peer subscribes to news yet (nothing was sent)'
    )
  })

  it('passes an error’s structured fields on as JSON: nested errors by name and message, maps as objects', () => {
    const err = Object.assign(new Error('2 members failed'), {
      members: ['z6MkA', 'z6MkB'],
      reasons: new Map([['z6MkA', 'member A refused']]),
      remoteName: 'NotAuthorizedError',
      secret: 'not passed on'
    })
    assert.deepEqual(errorFields(err), {
      members: ['z6MkA', 'z6MkB'],
      reasons: { z6MkA: 'member A refused' },
      remoteName: 'NotAuthorizedError'
    })
    assert.deepEqual(errorFields(new Error('plain')), {})
  })

  it('the CLI reports a node that is not running in one line naming the command that starts it', async () => {
    const err: string[] = []
    const code = await main(
      ['id', '--data-dir', '/nonexistent/cyberspace'],
      () => {},
      line => err.push(line)
    )
    assert.equal(code, 1)
    assert.equal(err.length, 1)
    assert.match(
      err[0],
      /^cyberspace: no running node found for data directory \/nonexistent\/cyberspace .*; start one with: npm start -- --data-dir \/nonexistent\/cyberspace$/
    )
  })
})
