/**
 * The agents routes of the control API against a program attached as one external agent that
 * tries to act as another (in process, real HTTP on 127.0.0.1, two member nodes on the memory
 * transport). What must hold (ARCHITECTURE.md, "How agents come in": an attached agent has its own
 * credential bound to its principal, and everything it does is authorized by its own chain): the
 * program attached as X cannot send as Y, answer for Y, read Y's mailbox, call tools as Y, stop Y,
 * attach to Y or mint itself Y's token, nor reach any route of the node's operator; a token that was
 * revoked, or whose agent stopped, opens nothing, and its open stream ends.
 */
import { strict as assert } from 'node:assert'
import { apiClient } from '../../node/api/client.ts'
import { startApiServer } from '../../node/api/server.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { memoryNode } from '../helpers/memory-node.ts'
import { waitUntil } from '../helpers/processes.ts'
import { grant, key, tag } from '../spki/fixtures.ts'
import type { ApiClient } from '../../node/api/client.ts'
import type { ApiServer } from '../../node/api/server.ts'
import type { HostedAgentView, HostedPage, InboxView, TokenPage } from '../../node/api/agent-routes.ts'
import type { AgentTokenInfo } from '../../node/api/agent-tokens.ts'
import type { ApiError } from '../../node/errors.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { CyberspaceNode } from '../../src/node.ts'
import type { Key } from '../spki/fixtures.ts'

/** The API's refusal of `promise`: it must be one. */
async function refusal(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise
  } catch (err) {
    assert.equal((err as Error).name, 'ApiError', (err as Error).message)
    return err as ApiError
  }
  throw new Error('expected the API to refuse')
}

/** Refused as an agent token out of its scope: 403 AgentTokenScopeError. */
async function outOfScope(promise: Promise<unknown>, what: string): Promise<ApiError> {
  const err = await refusal(promise)
  assert.equal(err.status, 403, `${what}: ${err.message}`)
  assert.equal(err.errorName, 'AgentTokenScopeError', `${what}: ${err.errorName ?? ''} ${err.message}`)
  return err
}

/** Refused as no live token: 401 ApiTokenError. */
async function unauthenticated(promise: Promise<unknown>, what: string): Promise<void> {
  const err = await refusal(promise)
  assert.equal(err.status, 401, `${what}: ${err.message}`)
  assert.equal(err.errorName, 'ApiTokenError', `${what}: ${err.errorName ?? ''}`)
}

describe('attack: a program attached as one external agent acting as another', function () {
  this.timeout(60_000)
  let root: Key
  let host: CyberspaceNode
  let peer: CyberspaceNode
  let server: ApiServer
  let operator: ApiClient
  let x: HostedAgentView
  let y: HostedAgentView
  let vault: PrincipalId

  async function grantAll(principal: PrincipalId, text: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal }, text, { propagate: false })
    for (const n of [host, peer]) await n.spki.addAll({ certs: [cert], crls: [] })
  }

  before(async () => {
    const options = { membershipOptions: { probeInterval: 300, probeTimeout: 150 } }
    host = await memoryNode(options)
    peer = await memoryNode({ ...options, bootstrap: [host.multiaddrs()[0]] })
    await waitUntil('connected', () => host.peers().length === 1)
    root = await key()
    for (const n of [host, peer]) await n.spki.addAclEntry(root.id, tag('(cyberspace)'))
    for (const n of [host, peer]) await grantAll(principalFromPeerId(n.peerId), '(cyberspace member)')
    peer.agents.define('vault', { behaviour: () => ({ handle: () => ({ secret: 'for y only' }) }) })
    await waitUntil('both are members', () => host.membership.members().filter(m => m.state === 'alive').length === 2)
    server = await startApiServer({ node: host, token: 't0ken', port: 0, pageDir: '/nonexistent' })
    operator = apiClient(server.url, 't0ken')
  })

  after(async () => {
    await server?.close()
    await Promise.all([host, peer].map(async n => await n.stop()))
  })

  it('the program attached as X cannot send as Y', async () => {
    vault = (await peer.agents.spawn('vault', { id: 'vault-1', key: 'local' })).principal
    // two programs attach, each as its own external agent, each with what the API gives it
    const attachX = apiClient(server.url, 't0ken')
    x = await attachX.post<HostedAgentView & { token?: string }>('agents', { kind: 'external', id: 'x' })
    const attachY = apiClient(server.url, 't0ken')
    y = await attachY.post<HostedAgentView>('agents', { kind: 'external', id: 'y' })
    // only Y may ask the vault
    await grantAll(y.principal, `(cyberspace (mailbox (send ${vault})))`)
    const programX = apiClient(server.url, x.token ?? 't0ken')
    let answer: unknown
    try {
      answer = await programX.post('agents/send', { from: y.principal, to: vault, type: 'ask', request: true })
    } catch (err) {
      assert.equal((err as Error & { status?: number }).status, 403, (err as Error).message)
      assert.equal((err as ApiError).errorName, 'AgentTokenScopeError')
      assert.match((err as Error).message, new RegExp(`this token is agent ${x.principal}'s: it may not send as`))
      // while Y, with its own token, may: the refusal was of the token, not of the route
      const programY = apiClient(server.url, y.token as string)
      const asked = await programY.post<{ response: unknown }>('agents/send', {
        from: y.principal,
        to: vault,
        type: 'ask',
        request: true
      })
      assert.deepEqual(asked.response, { secret: 'for y only' })
      // and X as itself is refused by its own chain, not by its token
      const own = await refusal(
        programX.post('agents/send', { from: x.principal, to: vault, type: 'ask', request: true })
      )
      assert.equal(own.errorName, 'UnauthorizedSenderError')
      return
    }
    assert.fail(
      `the program attached as ${x.principal} sent as ${y.principal} and got ${JSON.stringify(answer)}: an attached program holds the authority of every agent on its node`
    )
  })

  it('attaching hands each program a token of its own, shown once: 32 random bytes, listed by the operator without the secret', () => {
    for (const a of [x, y]) {
      assert.match(a.token ?? '', /^[A-Za-z0-9_-]{43}$/, 'base64url of 32 bytes')
      assert.match(a.tokenId ?? '', /^[0-9a-f]{16}$/)
      assert.equal(a.tokens, 1)
    }
    assert.notEqual(x.token, y.token)
  })

  it('X cannot answer a request sent to Y, even one it sent itself with an id it chose', async () => {
    await grantAll(x.principal, `(cyberspace (mailbox (send ${y.principal})))`)
    const programX = apiClient(server.url, x.token as string)
    const programY = apiClient(server.url, y.token as string)
    const asked = programX.post<{ response: unknown }>('agents/send', {
      from: x.principal,
      to: y.principal,
      type: 'ask',
      id: 'forged-1',
      request: true,
      timeout: 20_000
    })
    // Y's program sees it (X cannot, below) …
    let inbox: InboxView = { agent: y.principal, messages: [] }
    await waitUntil('the request reached Y', async () => {
      inbox = await programY.get<InboxView>('agents/inbox', { agent: y.principal, wait: '1000' })
      return inbox.messages.length > 0
    })
    assert.deepEqual(
      inbox.messages.map(m => [m.id, m.from, m.request]),
      [['forged-1', x.principal, true]]
    )
    // … and X, knowing the id, tries to answer for Y
    const forged = await outOfScope(
      programX.post('agents/reply', { agent: y.principal, id: 'forged-1', body: 'whatever X likes' }),
      'reply for Y'
    )
    assert.match(forged.message, /may not answer for agent/)
    await programY.post('agents/reply', { agent: y.principal, id: 'forged-1', body: 'from y' })
    assert.deepEqual((await asked).response, 'from y', 'the answer is the one Y gave')
  })

  it("X cannot read Y's mailbox (long poll or event stream), call tools as Y, stop Y, attach to Y, or mint Y's token", async () => {
    const programX = apiClient(server.url, x.token as string)
    await outOfScope(programX.get('agents/inbox', { agent: y.principal }), 'poll Y')
    const stream = await fetch(new URL(`/api/v0/agents/inbox/events?agent=${y.principal}`, server.url), {
      headers: { authorization: `Bearer ${x.token as string}` }
    })
    assert.equal(stream.status, 403)
    assert.equal(((await stream.json()) as { name: string }).name, 'AgentTokenScopeError')
    await outOfScope(
      programX.post('agents/tool', { agent: y.principal, name: 'doc.get', args: { doc: 'notes', key: 'k' } }),
      'tool as Y'
    )
    await outOfScope(programX.post('agents/stop', { agent: y.principal }), 'stop Y')
    await outOfScope(programX.post('agents', { kind: 'external', id: 'y' }), 'attach to Y')
    await outOfScope(programX.post('agents/token', { agent: y.principal }), "mint Y's token")
    assert.equal(host.agents.get(y.principal)?.status, 'running', 'Y still runs')
    // nor stop or re-attach itself: the operator decides over agents
    await outOfScope(programX.post('agents/stop', { agent: x.principal }), 'stop X')
    await outOfScope(programX.post('agents', { kind: 'external', id: 'x' }), 'attach to X again')
  })

  it("X's token reaches no route of the operator, and sees only its own agent among the hosted", async () => {
    const programX = apiClient(server.url, x.token as string)
    const operatorRoutes: Array<[string, () => Promise<unknown>]> = [
      ['GET id', async () => await programX.get('id')],
      ['GET peers', async () => await programX.get('peers')],
      ['GET members', async () => await programX.get('members')],
      ['POST spki/acl', async () => await programX.post('spki/acl', { principal: x.principal, tag: '(cyberspace)' })],
      ['POST agents/publish', async () => await programX.post('agents/publish', { card: {} })],
      ['GET agents/tokens', async () => await programX.get('agents/tokens')],
      ['POST agents/tokens/revoke', async () => await programX.post('agents/tokens/revoke', { agent: y.principal })],
      ['POST pubsub/publish', async () => await programX.post('pubsub/publish', { topic: 't', data: 'd' })]
    ]
    for (const [what, call] of operatorRoutes) {
      const err = await outOfScope(call(), what)
      assert.match(err.message, /needs the node's operator token/)
    }
    const hosted = await programX.get<HostedPage>('agents/hosted')
    assert.deepEqual(
      hosted.agents.map(a => a.principal),
      [x.principal]
    )
    const all = await operator.get<HostedPage>('agents/hosted')
    assert.deepEqual(all.agents.map(a => a.principal).sort(), [x.principal, y.principal].sort())
    // an unknown route is unknown to every token
    assert.equal((await refusal(programX.get('no/such/route'))).status, 404)
  })

  it('the operator lists tokens without secrets, with when each was last used', async () => {
    const { tokens } = await operator.get<TokenPage>('agents/tokens')
    assert.deepEqual(
      tokens.map(t => [t.id, t.agent]).sort(),
      [
        [x.tokenId, x.principal],
        [y.tokenId, y.principal]
      ].sort()
    )
    for (const t of tokens) {
      assert.deepEqual(Object.keys(t).sort(), ['agent', 'created', 'id', 'lastUsed'])
      assert.ok(t.lastUsed != null && t.lastUsed >= t.created, 'both tokens were used')
    }
    const text = JSON.stringify(tokens)
    assert.ok(!text.includes(x.token as string) && !text.includes(y.token as string), 'no secret in the list')
    const onlyY = await operator.get<TokenPage>('agents/tokens', { agent: y.principal })
    assert.deepEqual(
      onlyY.tokens.map(t => t.id),
      [y.tokenId]
    )
  })

  it('a second attach mints a second token; both work until revoked, then answer 401 and an open stream ends', async () => {
    const again = await operator.post<HostedAgentView>('agents', { kind: 'external', id: 'x' })
    assert.equal(again.principal, x.principal)
    assert.equal(again.attached, true)
    assert.equal(again.tokens, 2, 'the earlier token stays valid')
    const first = apiClient(server.url, x.token as string)
    const second = apiClient(server.url, again.token as string)
    for (const c of [first, second]) await c.get('agents/inbox', { agent: x.principal })
    // the first token's program holds its event stream open
    const controller = new AbortController()
    const res = await fetch(new URL(`/api/v0/agents/inbox/events?agent=${x.principal}`, server.url), {
      headers: { authorization: `Bearer ${x.token as string}` },
      signal: controller.signal
    })
    assert.equal(res.status, 200)
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    const decoder = new TextDecoder()
    let text = ''
    const readUntil = async (pattern: RegExp): Promise<void> => {
      for (let i = 0; i < 100 && !pattern.test(text); i++) {
        const { value, done } = await reader.read()
        if (done) break
        text += decoder.decode(value, { stream: true })
      }
    }
    await readUntil(/: attached/)
    const revoked = await operator.post<{ revoked: AgentTokenInfo[] }>('agents/tokens/revoke', { id: x.tokenId })
    assert.deepEqual(
      revoked.revoked.map(t => [t.id, t.agent]),
      [[x.tokenId, x.principal]]
    )
    await readUntil(/event: end/)
    controller.abort()
    assert.match(
      text,
      /event: end\ndata: \{"name":"ApiTokenError","message":"the token of agent z6Mk\w+ was revoked"\}/
    )
    await unauthenticated(first.get('agents/inbox', { agent: x.principal }), 'the revoked token')
    await second.get('agents/inbox', { agent: x.principal })
    // a long poll under way when its token is revoked takes nothing and ends with 401
    const polling = unauthenticated(
      second.get('agents/inbox', { agent: x.principal, wait: '20000' }),
      'a poll whose token was revoked while it waited'
    )
    await new Promise(resolve => setTimeout(resolve, 300))
    await operator.post('agents/tokens/revoke', { agent: x.principal })
    await polling
    await unauthenticated(second.get('agents/hosted'), 'the second token, revoked with all of X')
  })

  it('stopping an agent ends its tokens; a made-up token or none opens nothing', async () => {
    const programY = apiClient(server.url, y.token as string)
    await programY.get('agents/inbox', { agent: y.principal })
    await operator.post('agents/stop', { agent: y.principal })
    await unauthenticated(programY.get('agents/hosted'), 'the token of a stopped agent')
    const { tokens } = await operator.get<TokenPage>('agents/tokens')
    assert.deepEqual(tokens, [], 'none left: X revoked, Y stopped')
    await unauthenticated(apiClient(server.url, 'A'.repeat(43)).get('agents/hosted'), 'a made-up token')
    await unauthenticated(apiClient(server.url, '').get('agents/hosted'), 'no token')
    // only external agents get tokens: a program attaches to nothing else
    const elsewhere = await refusal(operator.post('agents/token', { agent: vault }))
    assert.equal(elsewhere.errorName, 'AgentNotFoundHereError', 'the vault runs on the other node')
    host.agents.define('plain', { behaviour: () => ({ handle: () => null }) })
    const plain = await host.agents.spawn('plain', { id: 'p-1', key: 'local' })
    const notExternal = await refusal(operator.post('agents/token', { agent: plain.principal }))
    assert.equal(notExternal.status, 409)
    assert.equal(notExternal.errorName, 'NotExternalAgentError')
    const spawned = await operator.post<HostedAgentView>('agents', { kind: 'plain', id: 'p-2' })
    assert.equal(spawned.token, undefined, 'spawning an agent of another kind mints nothing')
  })
})
