/**
 * An external agent: a program that is no TypeScript in the node, attached through the control API
 * with nothing but HTTP. Two member node processes on 127.0.0.1; the operator attaches two external
 * agents on A (`POST agents` with A's api-token) and hands the program, a small .mjs run as its own
 * process using only fetch, nothing but A's API URL and the two agents' own tokens: `helper` reads
 * its mailbox as server-sent events, answers every request and confirms every one-way message;
 * `mute` reads by long poll and answers nothing. Echo agents on node B send them messages through
 * B's API.
 */
import { strict as assert } from 'node:assert'
import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { apiClient } from '../../node/api/client.ts'
import { TOKEN_FILE } from '../../node/data-dir.ts'
import { principalFromPeerId } from '../../src/crypto/principal.ts'
import { signedCertToSexp } from '../../src/spki/cert.ts'
import { toAdvanced } from '../../src/spki/sexp.ts'
import { admit } from '../helpers/members.ts'
import { removeDir, spawnNode, stopNodes, tempDir, waitUntil } from '../helpers/processes.ts'
import { grant, key } from '../spki/fixtures.ts'
import type { HostedAgentView, PendingMessageView } from '../../node/api/agent-routes.ts'
import type { MembersView } from '../../node/api/membership-routes.ts'
import type { ApiError } from '../../node/errors.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { Key } from '../spki/fixtures.ts'
import type { ChildProcess } from 'node:child_process'

/**
 * The external program. It knows the API only as HTTP, and holds no operator token: `node
 * external.mjs <api-url> <helper-principal> <helper-token> <mute-principal> <mute-token>`; prints
 * one JSON line per thing it sees or does.
 */
const PROGRAM = String.raw`
const [url, helperPrincipal, helperToken, mutePrincipal, muteToken] = process.argv.slice(2)
const helper = { principal: helperPrincipal, auth: { authorization: 'Bearer ' + helperToken } }
const mute = { principal: mutePrincipal, auth: { authorization: 'Bearer ' + muteToken } }
const at = path => new URL('/api/v0/' + path, url)
const emit = event => process.stdout.write(JSON.stringify(event) + '\n')

async function post(agent, path, body) {
  const res = await fetch(at(path), {
    method: 'POST',
    headers: { ...agent.auth, 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  const answer = await res.json()
  if (!res.ok) throw new Error(path + ' answered ' + res.status + ' ' + answer.name + ': ' + answer.error)
  return answer
}

// each token is its own agent's only: the helper's does not read the mute's mailbox
const other = await fetch(at('agents/inbox?agent=' + mute.principal), { headers: helper.auth })
emit({ event: 'scope', status: other.status, name: (await other.json()).name })

// helper: its mailbox as server-sent events; every request is answered with what it asked, every
// one-way message confirmed with an empty reply once handled
async function stream() {
  const res = await fetch(at('agents/inbox/events?agent=' + helper.principal), { headers: helper.auth })
  if (!res.ok) throw new Error('events answered ' + res.status)
  emit({ event: 'stream', type: res.headers.get('content-type') })
  const decoder = new TextDecoder()
  let buffer = ''
  for await (const chunk of res.body) {
    buffer += decoder.decode(chunk, { stream: true })
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const fields = {}
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue
        const colon = line.indexOf(':')
        fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, '')
      }
      if (fields.event === 'message') {
        const message = JSON.parse(fields.data)
        emit({ event: 'message', via: 'events', eventId: fields.id, message })
        if (message.request && message.type === 'fail') {
          await post(helper, 'agents/reply', { agent: helper.principal, id: message.id, error: 'cannot do that' })
          emit({ event: 'replied', id: message.id })
        } else if (message.request) {
          await post(helper, 'agents/reply', { agent: helper.principal, id: message.id, body: { asked: message.body, by: 'helper' } })
          emit({ event: 'replied', id: message.id })
        } else {
          await post(helper, 'agents/reply', { agent: helper.principal, id: message.id })
          emit({ event: 'confirmed', id: message.id })
        }
      } else if (fields.event === 'end') {
        emit({ event: 'end', ...JSON.parse(fields.data) })
        return
      }
    }
  }
}

// mute: its mailbox by long poll; it answers and confirms nothing
async function poll() {
  for (let i = 0; i < 1000; i++) {
    const res = await fetch(at('agents/inbox?agent=' + mute.principal + '&wait=20000&max=10'), { headers: mute.auth })
    const page = await res.json()
    if (!res.ok) return emit({ event: 'poll-ended', status: res.status, name: page.name })
    for (const message of page.messages) emit({ event: 'message', via: 'poll', message })
  }
}

await Promise.all([stream(), poll()])
`

interface ProgramEvent {
  event: string
  via?: string
  eventId?: string
  message?: PendingMessageView
  type?: string
  id?: string
  name?: string
  status?: number
}

async function refusal(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise
  } catch (err) {
    assert.equal((err as Error).name, 'ApiError', (err as Error).message)
    return err as ApiError
  }
  throw new Error('expected the API to refuse')
}

describe('an external agent attached over HTTP answers a request from an agent on another node', function () {
  this.timeout(300_000)
  let a: NodeProcess
  let b: NodeProcess
  let root: Key
  let dir: string
  let program: ChildProcess
  let programOut = ''
  let helper: PrincipalId
  let mute: PrincipalId
  let helperToken: string
  let caller: HostedAgentView
  let otherCaller: HostedAgentView

  const events = (): ProgramEvent[] =>
    programOut
      .split('\n')
      .filter(l => l.startsWith('{'))
      .map(l => JSON.parse(l) as ProgramEvent)

  async function grantBoth(principal: PrincipalId, tagText: string): Promise<void> {
    const cert = await grant(root, { kind: 'key', principal }, tagText, { propagate: false })
    for (const n of [a, b]) await n.api.post('spki/import', { sexp: toAdvanced(signedCertToSexp(cert)) })
  }

  before(async () => {
    dir = await tempDir()
    root = await key()
    a = await spawnNode({ extraArgs: ['--kind', 'echo'] })
    b = await spawnNode({ bootstrap: [a.tcpAddr], extraArgs: ['--kind', 'echo'] })
    for (const n of [a, b]) {
      await admit(n, root)
      await n.api.post('spki/acl', { principal: root.id, tag: '(cyberspace)' })
    }
    for (const n of [a, b])
      await grantBoth(principalFromPeerId(peerIdFromString(n.peerId)), '(cyberspace (* set member (agent) (log)))')
    await waitUntil(
      'both nodes list 2 alive members',
      async () =>
        (await Promise.all([a, b].map(async n => await n.api.get<MembersView>('members')))).every(
          v => v.members.filter(m => m.state === 'alive').length === 2
        ),
      60_000,
      500
    )
    // the operator attaches both agents and hands the program their tokens, nothing more
    const attachedHelper = await a.api.post<HostedAgentView>('agents', { kind: 'external', id: 'helper' })
    const attachedMute = await a.api.post<HostedAgentView>('agents', { kind: 'external', id: 'mute' })
    assert.deepEqual([attachedHelper.attached, attachedMute.attached], [false, false], 'both were started')
    helper = attachedHelper.principal
    mute = attachedMute.principal
    helperToken = attachedHelper.token as string
    const operatorToken = (await readFile(join(a.dataDir, TOKEN_FILE), 'utf8')).trim()
    const args = [a.api.url, helper, helperToken, mute, attachedMute.token as string]
    assert.ok(!args.includes(operatorToken), 'the program gets no operator token')
    const script = join(dir, 'external.mjs')
    await writeFile(script, PROGRAM)
    program = spawn(process.execPath, [script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe']
    })
    program.stdout?.on('data', (d: Buffer) => {
      programOut += d.toString()
    })
    program.stderr?.on('data', (d: Buffer) => {
      programOut += d.toString()
    })
    await waitUntil('the program opened its event stream', () => events().some(e => e.event === 'stream'), 60_000, 200)
    // the in-node senders on B, allowed to send to any agent by the root
    caller = await b.api.post<HostedAgentView>('agents', { kind: 'echo', id: 'caller' })
    otherCaller = await b.api.post<HostedAgentView>('agents', { kind: 'echo', id: 'other-caller' })
    for (const c of [caller, otherCaller]) await grantBoth(c.principal, '(cyberspace (mailbox (send)))')
  })

  after(async () => {
    program?.kill('SIGKILL')
    await stopNodes([a, b])
    await removeDir(dir)
  })

  it('attached through POST agents: A hosts both as external agents; attaching again returns the same agent with a new token', async () => {
    const hosted = await a.api.get<{ agents: HostedAgentView[] }>('agents/hosted')
    assert.deepEqual(
      hosted.agents
        .filter(x => x.external)
        .map(x => [x.principal, x.kind, x.id])
        .sort(),
      [
        [helper, 'external', 'helper'],
        [mute, 'external', 'mute']
      ].sort()
    )
    const again = await a.api.post<HostedAgentView>('agents', { kind: 'external', id: 'helper' })
    assert.equal(again.principal, helper)
    assert.equal(again.attached, true)
    assert.equal(again.tokens, 2, "the program's token stays valid beside the new one")
    assert.notEqual(again.token, helperToken)
    const revoked = await a.api.post<{ revoked: Array<{ id: string }> }>('agents/tokens/revoke', { id: again.tokenId })
    assert.deepEqual(
      revoked.revoked.map(t => t.id),
      [again.tokenId]
    )
    assert.equal(events().find(e => e.event === 'stream')?.type, 'text/event-stream; charset=utf-8')
    // the program's token is its agent's only: the helper's token does not read the mute's mailbox
    const scope = events().find(e => e.event === 'scope')
    assert.deepEqual([scope?.status, scope?.name], [403, 'AgentTokenScopeError'])
  })

  it('the program receives a request from the agent on B as an event, answers over HTTP, and the sender gets the answer', async () => {
    const result = await b.api.post<{ id: string; response: unknown }>('agents/send', {
      from: caller.principal,
      to: helper,
      type: 'ask',
      body: { question: 'why?', n: [1, 2.5], raw: { '/': { bytes: 'AAEC' } } },
      request: true,
      timeout: 30_000
    })
    assert.deepEqual(result.response, {
      asked: { question: 'why?', n: [1, 2.5], raw: { '/': { bytes: 'AAEC' } } },
      by: 'helper'
    })
    const seen = events().filter(e => e.event === 'message' && e.via === 'events')
    assert.equal(seen.length, 1)
    const message = seen[0].message as PendingMessageView
    assert.equal(message.id, result.id)
    assert.equal(seen[0].eventId, result.id, 'the event id is the message id')
    assert.equal(message.from, caller.principal)
    assert.equal(message.to, helper)
    assert.equal(message.type, 'ask')
    assert.equal(message.request, true)
    assert.ok(events().some(e => e.event === 'replied' && e.id === result.id))
  })

  it('an error the program answers with reaches the sender by name', async () => {
    const err = await refusal(
      b.api.post('agents/send', { from: caller.principal, to: helper, type: 'fail', request: true, timeout: 30_000 })
    )
    assert.equal(err.status, 502)
    assert.equal(err.errorName, 'HandlerFailedError')
    assert.equal(err.details.remoteName, 'ExternalAgentError')
    assert.match(err.message, /cannot do that/)
  })

  it('a one-way message reaches the program too, acknowledged once the program confirms it', async () => {
    const receipt = await b.api.post<{ id: string; to: string; local: boolean }>('agents/send', {
      from: caller.principal,
      to: helper,
      type: 'note',
      body: 'fyi'
    })
    assert.equal(receipt.to, helper)
    assert.equal(receipt.local, false, 'delivered on node A')
    await waitUntil(
      'the program printed and confirmed the note',
      () =>
        events().some(e => e.message?.id === receipt.id && e.message.request === false && e.message.body === 'fyi') &&
        events().some(e => e.event === 'confirmed' && e.id === receipt.id)
    )
  })

  it('a one-way message the program took but never confirmed is not acknowledged: its sender times out', async () => {
    const err = await refusal(
      b.api.post('agents/send', { from: otherCaller.principal, to: mute, type: 'note', body: 'fyi', timeout: 3000 })
    )
    assert.equal(err.status, 504)
    assert.ok(['DeliveryTimeoutError', 'HandlerTimeoutError'].includes(err.errorName ?? ''), err.errorName)
    await waitUntil('the mute agent took the note by long poll', () =>
      events().some(e => e.via === 'poll' && e.message?.type === 'note' && e.message.request === false)
    )
  })

  it('a request the program never answers times out at its sender with a named error', async () => {
    const err = await refusal(
      b.api.post('agents/send', {
        from: caller.principal,
        to: mute,
        type: 'ask',
        body: 1,
        request: true,
        timeout: 3000
      })
    )
    assert.equal(err.status, 504)
    // the sender's deadline, or the receiver's handler deadline answering first: both at the message's expiry
    assert.ok(['DeliveryTimeoutError', 'HandlerTimeoutError'].includes(err.errorName ?? ''), err.errorName)
    // it did reach the program, by long poll
    await waitUntil('the mute agent got the request', () =>
      events().some(e => e.via === 'poll' && e.message?.type === 'ask' && e.message.request)
    )
  })

  it('a reply to a message id the agent does not hold is refused with 404 naming it', async () => {
    const asHelper = apiClient(a.api.url, helperToken)
    const err = await refusal(asHelper.post('agents/reply', { agent: helper, id: 'no-such-message-7', body: null }))
    assert.equal(err.status, 404)
    assert.equal(err.errorName, 'NoSuchPendingMessageError')
    assert.match(err.message, /no message no-such-message-7 is waiting for an answer/)
    // a one-way message the program confirmed is settled: confirming it again is refused
    const confirmed = events().find(e => e.event === 'confirmed')?.id as string
    const twice = await refusal(asHelper.post('agents/reply', { agent: helper, id: confirmed }))
    assert.equal(twice.errorName, 'NoSuchPendingMessageError')
    const notExternal = await refusal(a.api.get('agents/inbox', { agent: caller.principal }))
    assert.equal(notExternal.status, 404, 'the caller runs on B, not A')
    const badWait = await refusal(asHelper.get('agents/inbox', { agent: helper, wait: '999999' }))
    assert.equal(badWait.status, 400)
    assert.match(badWait.message, /wait \(ms\) must be a whole number from 0 to 30000/)
  })

  it('acts through the API only within its own chain: a tool call with its token is refused until the root grants it', async () => {
    const asHelper = apiClient(a.api.url, helperToken)
    const call = { agent: helper, name: 'doc.set', args: { doc: 'notes', key: 'seen', value: { by: 'helper' } } }
    const refused = await refusal(asHelper.post('agents/tool', call))
    assert.equal(refused.status, 403)
    assert.equal(refused.errorName, 'AgentUnauthorizedError')
    assert.match(refused.message, /may not call tool doc\.set/)
    // the tool, scoped to the document, and the right to append to it
    await grantBoth(helper, '(cyberspace (tool doc.set notes))')
    const half = await refusal(asHelper.post('agents/tool', call))
    assert.equal(half.errorName, 'AgentUnauthorizedError', 'the tool alone is not the right to write the document')
    await grantBoth(helper, '(cyberspace (log (append notes)))')
    const done = await asHelper.post<{ result: { cid: string } }>('agents/tool', call)
    assert.match(done.result.cid, /^bafy/)
    const unknown = await refusal(asHelper.post('agents/tool', { ...call, name: 'no.such.tool' }))
    assert.equal(unknown.status, 404)
    assert.equal(unknown.errorName, 'UnknownToolError')
  })

  it('stopping an agent ends its event stream with a named event', async () => {
    await a.api.post('agents/stop', { agent: helper })
    await waitUntil('the program saw its stream end', () => events().some(e => e.event === 'end'))
    assert.equal(events().find(e => e.event === 'end')?.name, 'AgentNotFoundHereError')
    // its token ended with it
    const res = await fetch(new URL(`/api/v0/agents/hosted`, a.api.url), {
      headers: { authorization: `Bearer ${helperToken}` }
    })
    assert.equal(res.status, 401)
    assert.equal(((await res.json()) as { name: string }).name, 'ApiTokenError')
    const gone = await refusal(
      b.api.post('agents/send', { from: caller.principal, to: helper, type: 'ask', request: true, timeout: 5000 })
    )
    // A says it hosts no such agent, or B no longer finds its record
    assert.equal(gone.status, 404)
    assert.ok(['AgentNotHostedError', 'UnknownAgentError'].includes(gone.errorName ?? ''), gone.errorName)
  })
})
