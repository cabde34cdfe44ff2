/**
 * `cyberspace agents …`: the agent registry in the cluster DHT. Everything talks to the running
 * node, which looks records up in the DHT, checks them and their hosts' membership, and publishes.
 *
 * @example
 * cyberspace agents publish --card reviewer.json
 * cyberspace agents get "cluster's reviewer"
 * cyberspace agents find --skill code-review --json
 */
import { readFile } from 'node:fs/promises'
import { CLI, connectApi } from './api/client.ts'
import { UsageError } from './errors.ts'
import type { AgentPage, AgentView } from './api/agent-routes.ts'
import type { GroupHelp } from './cli.ts'

const JSON_OPTION: [string, string] = ['--json', 'print JSON instead of text']
/** Largest card file read. */
const MAX_CARD_FILE_BYTES = 64 * 1024

export const AGENTS_HELP: GroupHelp = {
  name: 'agents',
  summary: 'agent records (A2A agent cards, signed and expiring) in the cluster DHT: publish, get, find',
  commands: [
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
}

type Out = (line: string) => void

/** The commands of AGENTS_HELP: cli.ts passes no other. */
type AgentsVerb = 'get' | 'find' | 'publish'

/** A duration (`90s`, `30m`, `1h`, `7d`, or plain ms) in ms. */
export function parseDuration(text: string): number {
  const match = /^(\d{1,9})(ms|s|m|h|d)?$/.exec(text)
  if (match == null) throw new UsageError(`--ttl ${text} is not a duration: use 90s, 30m, 1h or 7d`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? 'ms'] as number
  return Number(match[1]) * unit
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
  switch (verb) {
    case 'get': {
      const [agent] = only(1, 'get <principal|name> [--json]')
      const { agents } = await (await connectApi(dataDir)).get<{ agents: AgentView[] }>('agents/get', { agent })
      if (flags.json === true) out(JSON.stringify(agents.length === 1 ? agents[0] : agents))
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
      if (flags.json === true) {
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
      const view = await (await connectApi(dataDir)).post<AgentView & { peers: number }>('agents', { card, ttl })
      if (flags.json === true) out(JSON.stringify(view))
      else {
        printAgent(out, view)
        out(`  stored at   ${view.peers} ${view.peers === 1 ? 'peer' : 'peers'}; republished while this node runs`)
      }
      return 0
    }
  }
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
