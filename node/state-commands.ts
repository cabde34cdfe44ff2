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
import { connectApi } from './api/client.ts'
import { UsageError } from './errors.ts'
import type { ChangeView, DocumentView, StateOp, WatchView } from './api/state-routes.ts'
import type { ApiClient } from './api/client.ts'

export const STATE_USAGE = `  state list [--json]         the documents this node stores, with their types
  state get <name> [--type <t>] [--json]
                              a document's value (JSON; a text prints as itself)
  state set <name> [<path>] <value> [--type <t>]
                              set a register, a map field (path a/b/c) or a whole text
  state incr <name> [<path>] [--by <n>] [--type <t>]
                              add n (default 1; --by=-n subtracts) to a counter
  state add|remove <name> [<path>] <value> [--type <t>]
                              add or remove a set element
  state delete <name> <path>  delete a map field
  state watch <name> [--type <t>] [--json]
                              print the value and every change as it comes (Ctrl-C stops)
                              <t>: g-counter pn-counter or-set lww-register mv-register or-map text;
                              needed only for a document this node does not have yet, which
                              is then opened, kept and replicated from then on`

const VERBS = ['list', 'get', 'set', 'incr', 'add', 'remove', 'delete', 'watch']

export interface StateFlags {
  json?: boolean
  type?: string
  by?: string
}

type Out = (line: string) => void

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

export async function stateCommand(dataDir: string, args: string[], flags: StateFlags, out: Out): Promise<number> {
  const [verb, name, ...rest] = args
  const usage = (line: string): never => {
    throw new UsageError(`usage: cyberspace state ${line}`)
  }
  const type: Record<string, string> = flags.type == null ? {} : { type: flags.type }
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
  if (verb == null || !VERBS.includes(verb)) throw new UsageError(`usage:\n${STATE_USAGE}`)
  if (verb !== 'list' && name == null) usage(`${verb} <name> …`)
  switch (verb) {
    case 'list': {
      if (name != null) usage('list [--json]')
      const docs = await (await connectApi(dataDir)).get<Array<{ name: string; type: string; open: boolean }>>('state')
      if (flags.json === true) out(JSON.stringify(docs))
      else for (const d of docs) out(`${d.name}  ${d.type}`)
      return 0
    }
    case 'get': {
      if (rest.length > 0) usage('get <name> [--type <t>] [--json]')
      const api = await connectApi(dataDir)
      // with a type, a document this node does not have yet is opened, and fetched from peers
      if (flags.type != null) await api.post('state/open', { name, type: flags.type })
      const view = await api.get<DocumentView>('state/get', { name })
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
    case 'delete': {
      if (rest.length !== 1) usage('delete <name> <path>')
      return await post(await connectApi(dataDir), 'delete', rest[0])
    }
    case 'watch': {
      if (rest.length > 0) usage('watch <name> [--type <t>] [--json]')
      const api = await connectApi(dataDir)
      if (flags.type != null) await api.post('state/open', { name, type: flags.type })
      return await watch(api, name, flags.json === true, out)
    }
  }
  throw new UsageError(`usage:\n${STATE_USAGE}`)
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
