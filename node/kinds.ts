/**
 * The kinds of agent a node process runs (`cyberspace start --kind <name|module>`): built-in
 * examples by name, or a module whose default export maps kind names to definitions. The kind
 * `external` (a program attached through the control API) is always there; the agents service
 * defines it.
 *
 * - `echo` answers a request with its body; a one-way message it takes and drops.
 * - `counter` counts the messages it handles in its session state (`agent.record`), takes a
 *   checkpoint every 10, and answers `{ n, host }`: what it counted, and the peer id of the node
 *   running it. After a move the count goes on from the checkpoint plus the replayed events.
 *
 * @example
 * const kinds = await loadKinds(['echo', './my-kinds.mjs'])
 * for (const [name, kind] of kinds) node.agents.define(name, kind({ host: node.peerId.toString() }))
 */
import { isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { AGENT_NAME_PATTERN } from '../protocols/frost/codec.ts'
import { EXTERNAL_KIND } from '../src/actor/agents.ts'
import { UsageError } from './errors.ts'
import type { AgentDefinition } from '../src/actor/agents.ts'
import type { Work } from '../src/work/service.ts'

/** What a kind knows of the node that runs it. */
export interface KindHost {
  /** The node's peer id. */
  host: string
  /** The node's coordination (`node.work`): boards, the swarm, the fleet — what its agents act on, each as itself (`agent.signer`). */
  work?: Work
}

/** A kind as loaded: its definition once the node's peer id is known. */
export type Kind = (host: KindHost) => AgentDefinition

/** How often the counter takes a checkpoint, in messages. */
export const COUNTER_CHECKPOINT_EVERY = 10

const echo: Kind = () => ({
  description: 'answers a request with its body',
  skills: [{ id: 'echo', name: 'echo', description: 'answers a request with its body', tags: ['echo'] }],
  behaviour: () => ({
    handle: message => (message.request ? message.body : undefined)
  })
})

const counter: Kind = ({ host }) => ({
  description: 'counts the messages it handles, in its session state; answers { n, host }',
  skills: [{ id: 'counter', name: 'counter', description: 'counts messages; answers { n, host }', tags: ['counter'] }],
  behaviour: agent => ({
    handle: async () => {
      const before = agent.state().n
      const n = (typeof before === 'number' && Number.isSafeInteger(before) ? before : 0) + 1
      await agent.record({ n })
      if (n % COUNTER_CHECKPOINT_EVERY === 0) await agent.checkpoint()
      return { n, host }
    }
  })
})

/** The kinds `--kind <name>` names. */
export const BUILT_IN_KINDS: Readonly<Record<string, Kind>> = { echo, counter }

/** Whether `spec` names a module (a path, or a file with a script extension) rather than a built-in kind. */
export function isModuleSpec(spec: string): boolean {
  return spec.includes('/') || spec.includes('\\') || /\.(m?js|m?ts|cjs|cts)$/.test(spec)
}

/** The kinds a module's default export defines; throws UsageError naming what is wrong. */
export function kindsOfModule(spec: string, exported: unknown): Map<string, Kind> {
  const fail = (what: string): never => {
    throw new UsageError(
      `--kind ${spec}: ${what}; its default export must be an object mapping kind names to agent definitions ({ behaviour(agent) { return { handle(message) { … } } } }) or to functions of the node ({ host, work }) returning one`
    )
  }
  if (exported == null || typeof exported !== 'object' || Array.isArray(exported))
    fail(
      `the default export is ${exported === undefined ? 'missing' : Array.isArray(exported) ? 'an array' : typeof exported}`
    )
  const kinds = new Map<string, Kind>()
  const entries = Object.entries(exported as Record<string, unknown>)
  if (entries.length === 0) fail('the default export defines no kind')
  for (const [name, definition] of entries) {
    if (!AGENT_NAME_PATTERN.test(name)) fail(`kind name ${JSON.stringify(name)} is not 1-64 of a-z 0-9 . _ -`)
    if (name === EXTERNAL_KIND) fail(`kind ${EXTERNAL_KIND} is the node's own (programs attached through the API)`)
    // a function is called with what the kind knows of its node (KindHost) and gives the definition
    if (typeof definition === 'function') {
      kinds.set(name, host => {
        const made: unknown = (definition as (host: KindHost) => unknown)(host)
        if (
          made == null ||
          typeof made !== 'object' ||
          typeof (made as { behaviour?: unknown }).behaviour !== 'function'
        )
          fail(`kind ${name}'s function returned no definition with a behaviour function`)
        return made as AgentDefinition
      })
      continue
    }
    if (
      definition == null ||
      typeof definition !== 'object' ||
      typeof (definition as { behaviour?: unknown }).behaviour !== 'function'
    )
      fail(`kind ${name} has no behaviour function`)
    kinds.set(name, () => definition as AgentDefinition)
  }
  return kinds
}

/**
 * The kinds `--kind` flags name, in order: a built-in name, or a module path (relative to the
 * working directory) loaded with a dynamic import. A kind named twice is refused.
 */
export async function loadKinds(specs: string[], cwd = process.cwd()): Promise<Map<string, Kind>> {
  const kinds = new Map<string, Kind>()
  const add = (name: string, kind: Kind, spec: string): void => {
    if (kinds.has(name)) throw new UsageError(`--kind ${spec}: kind ${name} is defined twice; pass it once`)
    kinds.set(name, kind)
  }
  for (const spec of specs) {
    if (!isModuleSpec(spec)) {
      const kind = BUILT_IN_KINDS[spec]
      if (kind == null || !Object.hasOwn(BUILT_IN_KINDS, spec))
        throw new UsageError(
          `--kind ${spec}: no built-in kind of that name (built in: ${Object.keys(BUILT_IN_KINDS).join(', ')}); a module of your own is passed as a path, like --kind ./kinds.mjs`
        )
      add(spec, kind, spec)
      continue
    }
    const url = pathToFileURL(isAbsolute(spec) ? spec : resolve(cwd, spec)).href
    let module: { default?: unknown }
    try {
      module = (await import(url)) as { default?: unknown }
    } catch (err) {
      throw new UsageError(`--kind ${spec}: cannot load the module (${(err as Error).message})`)
    }
    for (const [name, kind] of kindsOfModule(spec, module.default)) add(name, kind, spec)
  }
  return kinds
}
