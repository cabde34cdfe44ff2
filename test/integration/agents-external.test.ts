/**
 * An external agent: a program that is no TypeScript in the node, attached through the control API
 * with nothing but HTTP. Two member node processes on 127.0.0.1; the program (a small .mjs run as
 * its own process, using only fetch with node A's API URL and token) attaches two external agents
 * on A: `helper` reads its mailbox as server-sent events and answers every request, `mute` reads by
 * long poll and answers nothing. An echo agent on node B sends them requests through B's API.
 */
import { strict as assert } from 'node:assert'
import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
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
 * The external program. It knows the API only as HTTP: `node external.mjs <api-url> <token>
 * <helper-id> <mute-id>`; prints one JSON line per thing it sees or does.
 */
const PROGRAM = String.raw`
const [url, token, helperId, muteId] = process.argv.slice(2)
const auth = { authorization: 'Bearer ' + token }
const at = path => new URL('/api/v0/' + path, url)
const emit = event => process.stdout.write(JSON.stringify(event) + '\n')

async function post(path, body) {
  const res = await fetch(at(path), {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  const answer = await res.json()
  if (!res.ok) throw new Error(path + ' answered ' + res.status + ' ' + answer.name + ': ' + answer.error)
  return answer
}

const helper = await post('agents', { kind: 'external', id: helperId })
const mute = await post('agents', { kind: 'external', id: muteId })
emit({ event: 'attached', helper: helper.principal, mute: mute.principal, attached: [helper.attached, mute.attached] })

// helper: its mailbox as server-sent events; every request is answered with what it asked
async function stream() {
  const res = await fetch(at('agents/inbox/events?agent=' + helper.principal), { headers: auth })
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
          await post('agents/reply', { agent: helper.principal, id: message.id, error: 'cannot do that' })
          emit({ event: 'replied', id: message.id })
        } else if (message.request) {
          await post('agents/reply', { agent: helper.principal, id: message.id, body: { asked: message.body, by: helperId } })
          emit({ event: 'replied', id: message.id })
        }
      } else if (fields.event === 'end') {
        emit({ event: 'end', ...JSON.parse(fields.data) })
        return
      }
    }
  }
}

// mute: its mailbox by long poll; it answers nothing
async function poll() {
  for (let i = 0; i < 1000; i++) {
    const res = await fetch(at('agents/inbox?agent=' + mute.principal + '&wait=20000&max=10'), { headers: auth })
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
  helper?: PrincipalId
  mute?: PrincipalId
  attached?: boolean[]
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
  let caller: HostedAgentView

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
    const script = join(dir, 'external.mjs')
    await writeFile(script, PROGRAM)
    const token = (await readFile(join(a.dataDir, TOKEN_FILE), 'utf8')).trim()
    program = spawn(process.execPath, [script, a.api.url, token, 'helper', 'mute'], {
      stdio: ['ignore', 'pipe', 'pipe']
    })
    program.stdout?.on('data', (d: Buffer) => {
      programOut += d.toString()
    })
    program.stderr?.on('data', (d: Buffer) => {
      programOut += d.toString()
    })
    await waitUntil(
      'the program attached and opened its event stream',
      () => events().some(e => e.event === 'stream'),
      60_000,
      200
    )
    const attached = events().find(e => e.event === 'attached') as ProgramEvent
    helper = attached.helper as PrincipalId
    mute = attached.mute as PrincipalId
    assert.deepEqual(attached.attached, [false, false], 'the program started both agents')
    // the in-node sender on B, allowed to send to any agent by the root
    caller = await b.api.post<HostedAgentView>('agents', { kind: 'echo', id: 'caller' })
    await grantBoth(caller.principal, '(cyberspace (mailbox (send)))')
  })

  after(async () => {
    program?.kill('SIGKILL')
    await stopNodes([a, b])
    await removeDir(dir)
  })

  it('attached through POST agents: A hosts both as external agents; attaching again returns the same agent', async () => {
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
    assert.equal(events().find(e => e.event === 'stream')?.type, 'text/event-stream; charset=utf-8')
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

  it('a one-way message reaches the program too, acknowledged once it has it', async () => {
    const receipt = await b.api.post<{ id: string; to: string; local: boolean }>('agents/send', {
      from: caller.principal,
      to: helper,
      type: 'note',
      body: 'fyi'
    })
    assert.equal(receipt.to, helper)
    assert.equal(receipt.local, false, 'delivered on node A')
    await waitUntil('the program printed the note', () =>
      events().some(e => e.message?.id === receipt.id && e.message.request === false && e.message.body === 'fyi')
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
    const err = await refusal(a.api.post('agents/reply', { agent: helper, id: 'no-such-message-7', body: null }))
    assert.equal(err.status, 404)
    assert.equal(err.errorName, 'NoSuchPendingMessageError')
    assert.match(err.message, /no message no-such-message-7 is waiting for an answer/)
    const notExternal = await refusal(a.api.get('agents/inbox', { agent: caller.principal }))
    assert.equal(notExternal.status, 404, 'the caller runs on B, not A')
    const badWait = await refusal(a.api.get('agents/inbox', { agent: helper, wait: '999999' }))
    assert.equal(badWait.status, 400)
    assert.match(badWait.message, /wait \(ms\) must be a whole number from 0 to 30000/)
  })

  it('acts through the API only within its own chain: a tool call is refused until the root grants it', async () => {
    const call = { agent: helper, name: 'doc.set', args: { doc: 'notes', key: 'seen', value: { by: 'helper' } } }
    const refused = await refusal(a.api.post('agents/tool', call))
    assert.equal(refused.status, 403)
    assert.equal(refused.errorName, 'AgentUnauthorizedError')
    assert.match(refused.message, /may not call tool doc\.set/)
    // the tool, scoped to the document, and the right to append to it
    await grantBoth(helper, '(cyberspace (tool doc.set notes))')
    const half = await refusal(a.api.post('agents/tool', call))
    assert.equal(half.errorName, 'AgentUnauthorizedError', 'the tool alone is not the right to write the document')
    await grantBoth(helper, '(cyberspace (log (append notes)))')
    const done = await a.api.post<{ result: { cid: string } }>('agents/tool', call)
    assert.match(done.result.cid, /^bafy/)
    const unknown = await refusal(a.api.post('agents/tool', { ...call, name: 'no.such.tool' }))
    assert.equal(unknown.status, 404)
    assert.equal(unknown.errorName, 'UnknownToolError')
  })

  it('stopping an agent ends its event stream with a named event', async () => {
    await a.api.post('agents/stop', { agent: helper })
    await waitUntil('the program saw its stream end', () => events().some(e => e.event === 'end'))
    assert.equal(events().find(e => e.event === 'end')?.name, 'AgentNotFoundHereError')
    const gone = await refusal(
      b.api.post('agents/send', { from: caller.principal, to: helper, type: 'ask', request: true, timeout: 5000 })
    )
    // A says it hosts no such agent, or B no longer finds its record
    assert.equal(gone.status, 404)
    assert.ok(['AgentNotHostedError', 'UnknownAgentError'].includes(gone.errorName ?? ''), gone.errorName)
  })
})
