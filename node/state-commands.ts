/**
 * `cyberspace state …`: read, update and watch the running node's replicated documents, for quick
 * inspection. Values are JSON (DAG-JSON: `{"/": "<cid>"}` is a link); an argument that is not JSON
 * is taken as a string. A map field is named by a path, `report/owner`.
 *
 * @example
 * cyberspace state set notes 'hello' --type lww-register
 * cyberspace state set tasks report/owner '"ana"' --type or-map
 * cyberspace state incr visits --type g-counter --by 3
 * cyberspace state watch tasks
 */
import { setTimeout as delay } from 'node:timers/promises'
import { CLI, connectApi } from './api/client.ts'
import { ApiError, UsageError } from './errors.ts'
import type { GroupHelp } from './cli.ts'
import type { ChangeView, DocumentView, StateOp, WatchView } from './api/state-routes.ts'
import type { ApiClient } from './api/client.ts'

const JSON_OPTION: [string, string] = ['--json', 'print JSON instead of text']
const TYPE_OPTION: [string, string] = [
  '--type <t>',
  'g-counter pn-counter or-set lww-register mv-register or-map text: needed only for a document this node does not have yet, which is then opened, kept and replicated from then on'
]
const PUBLIC_OPTION: [string, string] = [
  '--public',
  'with --type: serve the document to any peer (otherwise only to peers this node grants (cyberspace (log (read <name>))))'
]

export const STATE_HELP: GroupHelp = {
  name: 'state',
  summary: "the running node's replicated documents (CRDTs), for quick inspection and updates",
  details: [
    'Values are JSON (DAG-JSON: {"/": "<cid>"} is a link); an argument that is not JSON is a string.',
    "A map field is named by a path, a/b/c. A node applies another node's changes only if its ACL",
    "grants that node (cyberspace (log (append <name>))), and serves a document's changes only to peers",
    'it grants (cyberspace (log (read <name>))), unless the document is public.'
  ],
  commands: [
    {
      name: 'state list',
      summary: 'the documents this node stores, with their types',
      options: [JSON_OPTION],
      example: 'state list'
    },
    {
      name: 'state get',
      args: '<name> [--type <t> [--public]] [--json]',
      summary: "a document's value (JSON; a text prints as itself)",
      options: [TYPE_OPTION, PUBLIC_OPTION, JSON_OPTION],
      example: 'state get tasks --type or-map'
    },
    {
      name: 'state set',
      args: '<name> [<path>] <value> [--type <t> [--public]]',
      summary: 'set a register, a map field (path a/b/c) or a whole text',
      options: [TYPE_OPTION, PUBLIC_OPTION, JSON_OPTION],
      example: 'state set tasks report/owner \'"ana"\' --type or-map'
    },
    {
      name: 'state incr',
      args: '<name> [<path>] [--by <n>] [--type <t> [--public]]',
      summary: 'add n to a counter (default 1; --by=-n subtracts from a pn-counter)',
      options: [['--by <n>', 'the amount, a whole number'], TYPE_OPTION, PUBLIC_OPTION, JSON_OPTION],
      example: 'state incr visits --by 3 --type g-counter'
    },
    {
      name: 'state add',
      args: '<name> [<path>] <value> [--type <t> [--public]]',
      summary: 'add an element to a set',
      options: [TYPE_OPTION, PUBLIC_OPTION, JSON_OPTION],
      example: 'state add tags urgent --type or-set'
    },
    {
      name: 'state remove',
      args: '<name> [<path>] <value>',
      summary: 'remove an element from a set',
      options: [TYPE_OPTION, PUBLIC_OPTION, JSON_OPTION],
      example: 'state remove tags urgent'
    },
    {
      name: 'state unset',
      args: '<name> <path>',
      summary: 'delete a field of a map',
      options: [JSON_OPTION],
      example: 'state unset tasks report/tags'
    },
    {
      name: 'state delete',
      args: '<name>',
      summary: 'stop replicating a document on this node and remove its blocks and record (other nodes keep theirs)',
      example: 'state delete tasks'
    },
    {
      name: 'state watch',
      args: '<name> [--type <t> [--public]] [--json]',
      summary: 'print the value, then every change and its author as it comes (Ctrl-C stops)',
      options: [TYPE_OPTION, PUBLIC_OPTION, JSON_OPTION],
      example: 'state watch tasks'
    }
  ]
}

export interface StateFlags {
  json?: boolean
  type?: string
  public?: boolean
  by?: string
}

type Out = (line: string) => void

/** The commands of STATE_HELP: cli.ts passes no other. */
type StateVerb = 'list' | 'get' | 'set' | 'incr' | 'add' | 'remove' | 'unset' | 'delete' | 'watch'

/** A command-line value: JSON if it parses as JSON, else the string itself. */
export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

function parsePath(text: string): string[] {
  const path = text.split('/')
  if (path.some(k => k === '')) throw new UsageError(`invalid path "${text}": field names separated by /`)
  return path
}

function printValue(view: DocumentView, out: Out): void {
  out(view.type === 'text' && typeof view.value === 'string' ? view.value : JSON.stringify(view.value))
}

function describeChange(c: ChangeView): string {
  const when = `${new Date(c.hlc[0]).toISOString()}${c.hlc[1] > 0 ? `+${c.hlc[1]}` : ''}`
  return `# ${c.kind} ${c.cid} by ${c.author}${c.local ? ' (here)' : ''} at ${when}`
}

/** A 404 for a document this node lacks, with the command that opens it. */
function noDocument(err: unknown, name: string, verb: string): unknown {
  if (err instanceof ApiError && err.status === 404 && /has no document/.test(err.message))
    return new ApiError(
      `this node has no document ${name}; open it with its type: ${CLI} state ${verb} ${name} --type <t> (see ${CLI} state list)`,
      404
    )
  return err
}

export async function stateCommand(dataDir: string, args: string[], flags: StateFlags, out: Out): Promise<number> {
  const [verb, name, ...rest] = args as [StateVerb, string, ...string[]]
  const usage = (line: string): never => {
    throw new UsageError(`usage: cyberspace state ${line}`)
  }
  if (flags.public === true && flags.type == null)
    throw new UsageError('--public applies when a document is opened: give its --type too')
  const type: Record<string, unknown> =
    flags.type == null ? {} : { type: flags.type, ...(flags.public === true ? { public: true } : {}) }
  const post = async (api: ApiClient, op: StateOp, path?: string, value?: unknown): Promise<number> => {
    const view = await api.post<DocumentView & { cid: string | null }>('state/update', {
      name,
      ...type,
      op,
      ...(path == null ? {} : { path: parsePath(path) }),
      ...(value === undefined ? {} : { value })
    })
    if (flags.json === true) out(JSON.stringify(view))
    else {
      printValue(view, out)
      out(view.cid == null ? '# unchanged' : `# event ${view.cid}`)
    }
    return 0
  }
  if (verb !== 'list' && name == null) usage(`${verb} <name> …`)
  switch (verb) {
    case 'list': {
      if (name != null) usage('list [--json]')
      const docs = await (
        await connectApi(dataDir)
      ).get<Array<{ name: string; type: string; open: boolean; public: boolean }>>('state')
      if (flags.json === true) out(JSON.stringify(docs))
      else if (docs.length === 0) out(`# no documents yet (${CLI} state set <name> <value> --type <t> makes one)`)
      else for (const d of docs) out(`${d.name}  ${d.type}${d.public ? '  public' : ''}`)
      return 0
    }
    case 'get': {
      if (rest.length > 0) usage('get <name> [--type <t>] [--json]')
      const api = await connectApi(dataDir)
      // with a type, a document this node does not have yet is opened, and fetched from peers
      if (flags.type != null) await api.post('state/open', { name, ...type })
      const view = await api.get<DocumentView>('state/get', { name }).catch((err: unknown) => {
        throw noDocument(err, name, 'get')
      })
      if (flags.json === true) out(JSON.stringify(view))
      else printValue(view, out)
      return 0
    }
    case 'set': {
      if (rest.length < 1 || rest.length > 2) usage('set <name> [<path>] <value> [--type <t>]')
      const [path, value] = rest.length === 2 ? rest : [undefined, rest[0]]
      return await post(await connectApi(dataDir), 'set', path, parseValue(value))
    }
    case 'incr': {
      if (rest.length > 1) usage('incr <name> [<path>] [--by <n>] [--type <t>]')
      const by = flags.by ?? '1'
      if (!/^-?\d{1,15}$/.test(by) || Number(by) === 0) throw new UsageError(`--by takes a whole number, not "${by}"`)
      const n = Number(by)
      return await post(await connectApi(dataDir), n > 0 ? 'increment' : 'decrement', rest[0], Math.abs(n))
    }
    case 'add':
    case 'remove': {
      if (rest.length < 1 || rest.length > 2) usage(`${verb} <name> [<path>] <value> [--type <t>]`)
      const [path, value] = rest.length === 2 ? rest : [undefined, rest[0]]
      return await post(await connectApi(dataDir), verb, path, parseValue(value))
    }
    case 'unset': {
      if (rest.length !== 1) usage('unset <name> <path>')
      return await post(await connectApi(dataDir), 'delete', rest[0])
    }
    case 'delete': {
      if (rest.length === 1)
        throw new UsageError(
          `state delete removes a whole document; to delete the field ${rest[0]}, run: ${CLI} state unset ${name} ${rest[0]}`
        )
      if (rest.length > 0) usage('delete <name>')
      const { deleted } = await (await connectApi(dataDir)).post<{ deleted: boolean }>('state/delete', { name })
      if (!deleted) throw new ApiError(`this node has no document ${name} (see ${CLI} state list)`, 404)
      if (flags.json === true) out(JSON.stringify({ name, deleted }))
      else out(`deleted ${name} from this node: it no longer replicates it (other nodes keep their replicas)`)
      return 0
    }
    case 'watch': {
      if (rest.length > 0) usage('watch <name> [--type <t>] [--json]')
      const api = await connectApi(dataDir)
      if (flags.type != null) await api.post('state/open', { name, ...type })
      return await watch(api, name, flags.json === true, out).catch((err: unknown) => {
        throw noDocument(err, name, 'watch')
      })
    }
  }
}

async function watch(api: ApiClient, name: string, json: boolean, out: Out): Promise<number> {
  const stopping = new AbortController()
  const stop = (): void => {
    stopping.abort()
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  const show = (view: WatchView): void => {
    if (json) out(JSON.stringify({ changes: view.changes, missed: view.missed, value: view.value, heads: view.heads }))
    else {
      if (view.missed > 0) out(`# ${view.missed} earlier changes not shown`)
      for (const c of view.changes) out(describeChange(c))
      printValue(view, out)
    }
  }
  try {
    let view = await api.get<WatchView>('state/watch', { name, after: '0', wait: '0' })
    show(view)
    let { run, next: after } = view
    while (!stopping.signal.aborted) {
      view = await api.get<WatchView>(
        'state/watch',
        { name, after: String(after), run, wait: '25000' },
        { signal: stopping.signal }
      )
      if (view.run !== run) {
        // the node restarted: its change numbers began again, and what happened meanwhile is unknown
        if (!json) out('# the node restarted')
        show({ ...view, changes: [], missed: 0 })
      } else if (view.changes.length > 0 || view.missed > 0) show(view)
      else await delay(500, undefined, { signal: stopping.signal }) // answered without waiting (busy): no spinning
      ;({ run, next: after } = view)
    }
  } catch (err) {
    if (!stopping.signal.aborted) throw err
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
  return 0
}
