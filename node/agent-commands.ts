/**
 * `cyberspace agents …`: the agents the running node hosts (spawn, list, send, request, stop,
 * attach an external agent's mailbox, reply for it, mint, list and revoke its tokens) and the agent
 * registry in the cluster DHT (get, find, publish). Everything talks to the running node through
 * its control API, with the operator's token.
 *
 * @example
 * cyberspace agents spawn echo --id echo-1
 * cyberspace agents request z6MkCaller… z6MkEcho… ping --body '{"n": 1}'
 * cyberspace agents attach helper --json
 * cyberspace agents token z6MkHelper…          # a token for the program attached as helper
 * cyberspace agents get "cluster's reviewer"
 */
import { readFile } from 'node:fs/promises'
import { AGENT_NAME_PATTERN } from '../protocols/frost/codec.ts'
import { isPrincipalId } from '../src/crypto/principal.ts'
import { CLI, connectApi } from './api/client.ts'
import { UsageError } from './errors.ts'
import type {
  AgentPage,
  AgentView,
  HostedAgentView,
  HostedPage,
  InboxView,
  MintedTokenView,
  PendingMessageView,
  SendResult,
  TokenPage
} from './api/agent-routes.ts'
import type { AgentTokenInfo } from './api/agent-tokens.ts'
import type { ApiClient } from './api/client.ts'
import type { AgentInfo } from '../src/actor/agents.ts'
import type { GroupHelp } from './cli.ts'

const JSON_OPTION: [string, string] = ['--json', 'print JSON instead of text']
/** Largest card file read. */
const MAX_CARD_FILE_BYTES = 64 * 1024
/** A message id, as protocols/mailbox/codec.ts's ID_PATTERN (not imported: the CLI loads no codec). */
const MESSAGE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** A token id, as agent-tokens.ts's TOKEN_ID. */
const TOKEN_ID = /^[0-9a-f]{16}$/
/**
 * Longest life of a message sent through the control API, in ms: the API client gives up at 60 s.
 * The API (agent-routes.ts) enforces it; it lives here so the CLI loads none of the node's stack.
 */
export const MAX_SEND_TIMEOUT = 55_000
/** Longest wait of one long poll of an external agent's inbox, in ms (the API enforces it). */
export const MAX_INBOX_WAIT = 30_000
/** How long one long poll of `attach` waits, ms: under the API client's own 60 s. */
const ATTACH_POLL_MS = 25_000

export const AGENTS_HELP: GroupHelp = {
  name: 'agents',
  summary: 'agents this node hosts (spawn, send, request, attach) and agent records in the cluster DHT',
  details: [
    'An agent is named by its principal (z6Mk…), which agents list and agents spawn print. The kinds a node runs are given at start (cyberspace start --kind echo --kind ./kinds.mjs); the kind external is always there.'
  ],
  commands: [
    {
      name: 'agents list',
      args: '[--json]',
      summary: 'the agents this node hosts: principal, kind/id, status, key',
      options: [JSON_OPTION],
      example: 'agents list --json'
    },
    {
      name: 'agents spawn',
      args: '<kind> [--id <id>] [--key cluster|local]',
      summary: 'start an agent of a kind this node runs; prints its principal',
      details: [
        "A cluster agent's key is derived by t members (it can move to another member when this node dies); a local one's key stays on this node. For the kind external, an id that runs here already is attached to; its program needs a token of its own: agents token <agent>."
      ],
      options: [
        ['--id <id>', 'unique within the kind: 1-64 of a-z 0-9 . _ - (default random)'],
        ['--key cluster|local', "where the agent's key comes from (default cluster when this node holds a share)"],
        JSON_OPTION
      ],
      example: 'agents spawn echo --id echo-1'
    },
    {
      name: 'agents send',
      args: '<from> <to> <type> [--body <json>] [--timeout <duration>]',
      summary: 'send a one-way message from an agent hosted here; returns once the recipient handled it',
      details: [
        "<to> is a principal or an SDSI name (cluster's reviewer). The sender needs a chain granting it (cyberspace (mailbox (send <to> <type>))) by the recipient node's ACL."
      ],
      options: [
        ['--body <json>', 'the message body as JSON (DAG-JSON: {"/": "<cid>"} is a link); default null'],
        ['--timeout <duration>', `how long the message lives unacknowledged: 500ms | 10s (default 30s, at most 55s)`],
        JSON_OPTION
      ],
      example: 'agents send z6MkCaller… z6MkCounter… count --body \'{"n": 1}\''
    },
    {
      name: 'agents request',
      args: '<from> <to> <type> [--body <json>] [--timeout <duration>]',
      summary: 'send a request from an agent hosted here and print the response (JSON)',
      options: [
        ['--body <json>', 'the request body as JSON; default null'],
        ['--timeout <duration>', 'how long to wait for the response: 500ms | 10s (default 30s, at most 55s)'],
        JSON_OPTION
      ],
      example: 'agents request z6MkCaller… z6MkEcho… ping --body \'"hello"\''
    },
    {
      name: 'agents stop',
      args: '<agent>',
      summary: 'stop an agent hosted here for good: out of the directory, its record withdrawn',
      options: [JSON_OPTION],
      example: 'agents stop z6MkEcho…'
    },
    {
      name: 'agents attach',
      args: '<agent|id> [--json]',
      summary: "print an external agent's mailbox as it arrives (Ctrl-C stops); answers no request itself",
      details: [
        'Given an id, attaches to the external agent of that id here, starting it if it does not run. A one-way message is confirmed once printed (its sender learns it was handled); a request waits for agents reply and, unanswered, times out at its sender.'
      ],
      options: [['--json', 'one JSON object per message (JSON lines)']],
      example: 'agents attach helper --json'
    },
    {
      name: 'agents reply',
      args: '<agent> <message-id> [--body <json> | --error <text>]',
      summary: 'answer a request an external agent received, or confirm a one-way message (attach printed its id)',
      details: [
        "Without --body or --error, a one-way message is confirmed (its sender's send returns) and a request is answered with null."
      ],
      options: [
        ['--body <json>', 'the response as JSON; default null'],
        ['--error <text>', 'answer with an error instead (the sender gets ExternalAgentError)'],
        JSON_OPTION
      ],
      example: 'agents reply z6MkHelper… 5f0c… --body \'{"ok": true}\''
    },
    {
      name: 'agents token',
      args: '<agent>',
      summary: 'mint a bearer token for the program attached as an external agent; prints it (shown once)',
      details: [
        "The token acts only as that agent: its messages, inbox, replies and tools, and reads of the registry; any other route answers 403. Earlier tokens stay valid until revoked; all of an agent's end when it stops or the node restarts."
      ],
      options: [JSON_OPTION],
      example: 'agents token z6MkHelper…'
    },
    {
      name: 'agents tokens',
      args: '[<agent>] [--json]',
      summary: "the agents' tokens this node accepts: id, agent, created, last used (never the secret)",
      options: [JSON_OPTION],
      example: 'agents tokens z6MkHelper…'
    },
    {
      name: 'agents revoke-token',
      args: '<agent> | --id <token-id>',
      summary: 'revoke every token of an agent, or one by id; they answer 401 from now on',
      options: [['--id <token-id>', 'only this token (agents tokens lists them)'], JSON_OPTION],
      example: 'agents revoke-token z6MkHelper…'
    },
    {
      name: 'agents get',
      args: '<principal|name>',
      summary: "an agent's current record, by principal, peer id or SDSI name (cluster's reviewer)",
      details: [
        "A name starts with `cluster` (this node's cluster key) or a principal, then 's and a name, as many times as needed; name certificates (cert name) bind it to keys.",
        "A record is shown only if its host is a member by this node's ACL."
      ],
      options: [JSON_OPTION],
      example: 'agents get "cluster\'s reviewer"'
    },
    {
      name: 'agents find',
      args: '--skill <id> [--limit <n>] [--cursor <c>]',
      summary: 'agents whose cards declare a skill id or tag, from member hosts',
      options: [
        ['--skill <id>', 'a skill id or tag (compared lowercased)'],
        ['--limit <n>', 'agents per page, 1-100 (default 20)'],
        ['--cursor <c>', 'the next page: the cursor the previous page printed'],
        JSON_OPTION
      ],
      example: 'agents find --skill code-review'
    },
    {
      name: 'agents publish',
      args: '--card <file.json> [--ttl <duration>]',
      summary: "publish an A2A agent card for this node's own key, kept alive while the node runs",
      details: [
        'The card is A2A v1.0 JSON (name, description, version, skills, …); the libp2p interface of this node is added, and text/plain input and output modes when none are given.'
      ],
      options: [
        ['--card <file.json>', 'the agent card'],
        ['--ttl <duration>', 'lifetime of each record: 90s | 30m | 1h | 7d (default 1h); republished at half'],
        JSON_OPTION
      ],
      example: 'agents publish --card reviewer.json'
    }
  ]
}

export interface AgentFlags {
  json?: boolean
  skill?: string
  limit?: string
  cursor?: string
  card?: string
  ttl?: string
  id?: string
  key?: string
  body?: string
  timeout?: string
  error?: string
}

type Out = (line: string) => void

/** The commands of AGENTS_HELP: cli.ts passes no other. */
type AgentsVerb =
  | 'list'
  | 'spawn'
  | 'send'
  | 'request'
  | 'stop'
  | 'attach'
  | 'reply'
  | 'token'
  | 'tokens'
  | 'revoke-token'
  | 'get'
  | 'find'
  | 'publish'

/** A duration (`90s`, `30m`, `1h`, `7d`, `500ms`, or plain ms) in ms; `flag` names it in the error. */
export function parseDuration(text: string, flag = '--ttl'): number {
  const match = /^(\d{1,9})(ms|s|m|h|d)?$/.exec(text)
  if (match == null) throw new UsageError(`${flag} ${text} is not a duration: use 500ms, 90s, 30m, 1h or 7d`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? 'ms'] as number
  return Number(match[1]) * unit
}

/** `--body` as the JSON value it holds (null when absent). */
export function parseBody(text: string | undefined, flag = '--body'): unknown {
  if (text === undefined) return undefined
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new UsageError(
      `${flag} is not JSON (${(err as Error).message}): pass a JSON value, like ${flag} '{"n": 1}' or ${flag} '"text"'`
    )
  }
}

function principalArg(text: string, what: string): string {
  if (!isPrincipalId(text))
    throw new UsageError(`${what} "${text.slice(0, 80)}" is not an agent principal (z6Mk…): see ${CLI} agents list`)
  return text
}

function sendTimeout(flags: AgentFlags): number | undefined {
  if (flags.timeout == null) return undefined
  const ms = parseDuration(flags.timeout, '--timeout')
  if (ms < 1 || ms > MAX_SEND_TIMEOUT)
    throw new UsageError(`--timeout ${flags.timeout} is out of range: pass 1ms to ${MAX_SEND_TIMEOUT / 1000}s`)
  return ms
}

async function readCard(path: string): Promise<unknown> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (err) {
    throw new UsageError(`cannot read --card ${path}: ${(err as Error).message}`)
  }
  if (bytes.length > MAX_CARD_FILE_BYTES)
    throw new UsageError(`--card ${path} is larger than ${MAX_CARD_FILE_BYTES} bytes`)
  try {
    return JSON.parse(bytes.toString('utf8'))
  } catch (err) {
    throw new UsageError(`--card ${path} is not JSON (${(err as Error).message}): pass an A2A agent card file`)
  }
}

export async function agentsCommand(dataDir: string, args: string[], flags: AgentFlags, out: Out): Promise<number> {
  const [verb, ...rest] = args as [AgentsVerb, ...string[]]
  const only = (n: number, usage: string): string[] => {
    if (rest.length !== n) throw new UsageError(`usage: cyberspace agents ${usage}`)
    return rest
  }
  const json = flags.json === true
  switch (verb) {
    case 'list': {
      only(0, 'list [--json]')
      const agents: AgentInfo[] = []
      const api = await connectApi(dataDir)
      let cursor: string | null = null
      // a node hosts at most a few thousand agents: every page, within a bounded number of requests
      for (let pages = 0; pages < 1000; pages++) {
        const query: Record<string, string> = { limit: '100' }
        if (cursor != null) query.cursor = cursor
        const page: HostedPage = await api.get<HostedPage>('agents/hosted', query)
        agents.push(...page.agents)
        cursor = page.next
        if (cursor == null) break
      }
      if (json) out(JSON.stringify(agents))
      else if (agents.length === 0) out(`# no agents run on this node: start one with ${CLI} agents spawn <kind>`)
      else for (const a of agents) out(`${a.principal}  ${a.kind}/${a.id}  ${a.status}  ${a.key}`)
      return 0
    }
    case 'spawn': {
      const [kind] = only(1, 'spawn <kind> [--id <id>] [--key cluster|local] [--json]')
      if (!AGENT_NAME_PATTERN.test(kind))
        throw new UsageError(`kind "${kind.slice(0, 80)}" is not 1-64 of a-z 0-9 . _ - (see cyberspace agents list)`)
      if (flags.id != null && !AGENT_NAME_PATTERN.test(flags.id))
        throw new UsageError(
          `--id "${flags.id.slice(0, 80)}" is not 1-64 of a-z 0-9 . _ - starting with a letter or digit`
        )
      if (flags.key != null && flags.key !== 'cluster' && flags.key !== 'local')
        throw new UsageError(`--key ${flags.key}: pass --key cluster or --key local`)
      const info = await (
        await connectApi(dataDir)
      ).post<HostedAgentView>('agents', {
        kind,
        id: flags.id,
        key: flags.key,
        // the CLI prints no secret it was not asked for: agents token mints one
        token: false
      })
      if (json) out(JSON.stringify(info))
      else printHosted(out, info)
      return 0
    }
    case 'send':
    case 'request': {
      const [from, to, type] = only(3, `${verb} <from> <to> <type> [--body <json>] [--timeout <duration>] [--json]`)
      principalArg(from, '<from>')
      const body = parseBody(flags.body)
      const timeout = sendTimeout(flags)
      const result = await (
        await connectApi(dataDir)
      ).post<SendResult>('agents/send', {
        from,
        to,
        type,
        body,
        timeout,
        request: verb === 'request'
      })
      if (json) out(JSON.stringify(result))
      else if ('response' in result) out(JSON.stringify(result.response))
      else out(`delivered ${result.id} to ${result.to}${result.local ? ' (on this node)' : ''}`)
      return 0
    }
    case 'stop': {
      const [agent] = only(1, 'stop <agent>')
      principalArg(agent, '<agent>')
      const result = await (await connectApi(dataDir)).post<{ agent: string }>('agents/stop', { agent })
      if (json) out(JSON.stringify(result))
      else out(`stopped ${result.agent}`)
      return 0
    }
    case 'reply': {
      const [agent, id] = only(2, 'reply <agent> <message-id> [--body <json> | --error <text>]')
      principalArg(agent, '<agent>')
      if (!MESSAGE_ID.test(id))
        throw new UsageError(`message id "${id.slice(0, 80)}" is not 1-64 of A-Z a-z 0-9 . _ - (attach prints it)`)
      if (flags.body != null && flags.error != null) throw new UsageError('pass --body or --error, not both')
      const body = parseBody(flags.body)
      const result = await (
        await connectApi(dataDir)
      ).post<{ agent: string; id: string }>('agents/reply', {
        agent,
        id,
        body,
        error: flags.error
      })
      if (json) out(JSON.stringify(result))
      else out(`answered ${result.id}`)
      return 0
    }
    case 'attach': {
      const [target] = only(1, 'attach <agent|id> [--json]')
      return await attach(dataDir, target, json, out)
    }
    case 'token': {
      const [agent] = only(1, 'token <agent> [--json]')
      principalArg(agent, '<agent>')
      const minted = await (await connectApi(dataDir)).post<MintedTokenView>('agents/token', { agent })
      if (json) out(JSON.stringify(minted))
      else {
        out(minted.token)
        out(
          `# token ${minted.id} for ${minted.agent}, shown once; ${minted.tokens} in all (revoke: ${CLI} agents revoke-token --id ${minted.id})`
        )
      }
      return 0
    }
    case 'tokens': {
      if (rest.length > 1) throw new UsageError('usage: cyberspace agents tokens [<agent>] [--json]')
      const agent = rest[0] === undefined ? undefined : principalArg(rest[0], '<agent>')
      const tokens = await listTokens(await connectApi(dataDir), agent)
      if (json) out(JSON.stringify(tokens))
      else if (tokens.length === 0) out(`# no agent tokens: ${CLI} agents token <agent> mints one`)
      else for (const t of tokens) out(tokenLine(t))
      return 0
    }
    case 'revoke-token': {
      const usage = 'usage: cyberspace agents revoke-token <agent> | --id <token-id>'
      if (rest.length > 1 || (rest.length === 1) === (flags.id != null)) throw new UsageError(usage)
      const agent = rest[0] === undefined ? undefined : principalArg(rest[0], '<agent>')
      if (flags.id != null && !TOKEN_ID.test(flags.id))
        throw new UsageError(
          `--id "${flags.id.slice(0, 80)}" is not a token id (16 of 0-9 a-f): see ${CLI} agents tokens`
        )
      const { revoked } = await (
        await connectApi(dataDir)
      ).post<{ revoked: AgentTokenInfo[] }>('agents/tokens/revoke', agent == null ? { id: flags.id } : { agent })
      if (json) out(JSON.stringify(revoked))
      else if (revoked.length === 0) out(`# no such token: nothing revoked (see ${CLI} agents tokens)`)
      else for (const t of revoked) out(`revoked ${t.id} of ${t.agent}`)
      return 0
    }
    case 'get': {
      const [agent] = only(1, 'get <principal|name> [--json]')
      const { agents } = await (await connectApi(dataDir)).get<{ agents: AgentView[] }>('agents/get', { agent })
      if (json) out(JSON.stringify(agents.length === 1 ? agents[0] : agents))
      else agents.forEach(printAgent.bind(null, out))
      return 0
    }
    case 'find': {
      only(0, 'find --skill <id> [--limit n] [--cursor c] [--json]')
      if (flags.skill == null || flags.skill === '') throw new UsageError('agents find needs --skill <id>')
      const query: Record<string, string> = { skill: flags.skill }
      if (flags.limit != null) query.limit = flags.limit
      if (flags.cursor != null) query.cursor = flags.cursor
      const page = await (await connectApi(dataDir)).get<AgentPage>('agents', query)
      if (json) {
        out(JSON.stringify(page))
        return 0
      }
      if (page.agents.length === 0) out(`no member host answered with an agent declaring ${flags.skill}`)
      for (const agent of page.agents) printAgent(out, agent)
      for (const s of page.skipped) out(`skipped provider ${s.peer}: ${s.name}: ${s.message}`)
      if (page.next != null) out(`more: ${CLI} agents find --skill ${flags.skill} --cursor ${page.next}`)
      return 0
    }
    case 'publish': {
      only(0, 'publish --card <file.json> [--ttl <duration>]')
      if (flags.card == null || flags.card === '') throw new UsageError('agents publish needs --card <file.json>')
      const card = await readCard(flags.card)
      const ttl = flags.ttl == null ? undefined : parseDuration(flags.ttl)
      const view = await (
        await connectApi(dataDir)
      ).post<AgentView & { peers: number }>('agents/publish', {
        card,
        ttl
      })
      if (json) out(JSON.stringify(view))
      else {
        printAgent(out, view)
        out(`  stored at   ${view.peers} ${view.peers === 1 ? 'peer' : 'peers'}; republished while this node runs`)
      }
      return 0
    }
  }
}

/**
 * Prints the external agent's messages as they arrive, by long poll, until SIGINT or SIGTERM. An id
 * (not a principal) attaches to the external agent of that id here, starting it if need be.
 */
async function attach(dataDir: string, target: string, json: boolean, out: Out): Promise<number> {
  let agent = target
  const byId = !isPrincipalId(target)
  if (byId && !AGENT_NAME_PATTERN.test(target))
    throw new UsageError(
      `"${target.slice(0, 80)}" is neither an agent principal (z6Mk…) nor an external agent id (1-64 of a-z 0-9 . _ -)`
    )
  const api = await connectApi(dataDir)
  if (byId) {
    // no token: attach reads with the operator's and prints nothing secret
    agent = (await api.post<HostedAgentView>('agents', { kind: 'external', id: target, token: false })).principal
  }
  const stopped = new AbortController()
  const stop = (): void => {
    stopped.abort()
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    let first = true
    while (!stopped.signal.aborted) {
      let page: InboxView
      try {
        page = await api.get<InboxView>(
          'agents/inbox',
          // the first poll returns at once: the node has checked the agent before anything is printed
          { agent, wait: String(first ? 0 : ATTACH_POLL_MS) },
          { signal: stopped.signal }
        )
      } catch (err) {
        if (stopped.signal.aborted) break
        throw err
      }
      if (first && !json)
        out(
          `# attached to ${agent}: one-way messages are confirmed once printed; answer requests with ${CLI} agents reply ${agent} <message-id> --body <json>`
        )
      first = false
      for (const m of page.messages) {
        out(json ? JSON.stringify(m) : messageLine(m))
        if (!m.request) await confirm(api, agent, m.id)
      }
    }
    return 0
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
}

/**
 * Confirms a one-way message attach printed: until then it stays owed, and its sender waits. One
 * that is no longer owed (its handler deadline passed) has nothing left to confirm.
 */
async function confirm(api: ApiClient, agent: string, id: string): Promise<void> {
  try {
    await api.post('agents/reply', { agent, id })
  } catch (err) {
    if ((err as { errorName?: string }).errorName !== 'NoSuchPendingMessageError') throw err
  }
}

/** Every token the node holds (of `agent`, if given), page by page within a bounded number of requests. */
async function listTokens(api: ApiClient, agent: string | undefined): Promise<AgentTokenInfo[]> {
  const tokens: AgentTokenInfo[] = []
  let cursor: string | null = null
  for (let pages = 0; pages < 100; pages++) {
    const query: Record<string, string> = { limit: '100' }
    if (agent != null) query.agent = agent
    if (cursor != null) query.cursor = cursor
    const page: TokenPage = await api.get<TokenPage>('agents/tokens', query)
    tokens.push(...page.tokens)
    cursor = page.next
    if (cursor == null) break
  }
  return tokens
}

function tokenLine(t: AgentTokenInfo): string {
  const used = t.lastUsed == null ? 'never used' : `last used ${new Date(t.lastUsed).toISOString()}`
  return `${t.id}  ${t.agent}  created ${new Date(t.created).toISOString()}  ${used}`
}

function messageLine(m: PendingMessageView): string {
  return `${m.id}  ${m.request ? 'request' : 'message'} ${m.type} from ${m.from}: ${JSON.stringify(m.body)}`
}

function printHosted(out: Out, info: HostedAgentView): void {
  out(info.principal)
  out(`  kind        ${info.kind}`)
  out(`  id          ${info.id}`)
  out(`  key         ${info.key}`)
  out(`  host        ${info.host}`)
  out(`  status      ${info.status}${info.attached === true ? ' (it ran already: attached)' : ''}`)
}

function printAgent(out: Out, view: AgentView): void {
  out(view.agent)
  out(`  name        ${view.card.name} ${view.card.version}`)
  out(`  about       ${view.card.description.split('\n')[0]}`)
  out(`  host        ${view.host}`)
  out(`  seq         ${view.seq}`)
  out(`  expires     ${view.expiresAt}`)
  for (const skill of view.card.skills)
    out(`  skill       ${skill.id}${skill.tags.length > 0 ? ` [${skill.tags.join(', ')}]` : ''}: ${skill.name}`)
  for (const i of view.card.supportedInterfaces) out(`  interface   ${i.protocolBinding} ${i.url}`)
}
