/**
 * What the agents benchmark's nodes run, in the parent process and in the child node processes
 * (bench/agents-node.ts) alike: the two kinds (`counter`, which checkpoints when asked, and the
 * node's built-in `echo` from node/kinds.ts), the two floor protocols
 * (ECHO_PROTOCOL: one frame per stream, answered, then the stream closes — the mailbox's shape;
 * ECHO_STREAM_PROTOCOL: every frame of one stream answered in turn) and the timings a node of a
 * run is started with.
 *
 * @example
 * node.agents.define('echo', echoKind)
 * await serveEcho(node)
 */
import { lpStream } from '@libp2p/utils'
import { BUILT_IN_KINDS } from '../node/kinds.ts'
import type { AgentDefinition, AgentsInit } from '../src/actor/agents.ts'
import type { MailboxInit } from '../src/actor/mailbox-service.ts'
import type { MembershipInit } from '../src/membership/service.ts'
import type { CyberspaceNode } from '../src/node.ts'
import type { StateInit } from '../src/log/service.ts'
import type { Stream } from '@libp2p/interface'

/** One frame in, the same frame out, then the stream closes: a stream per request, as the mailbox does. */
export const ECHO_PROTOCOL = '/cyberspace-bench/echo/1.0.0'
/** Every frame answered on the same stream until the caller closes it. */
export const ECHO_STREAM_PROTOCOL = '/cyberspace-bench/echo-stream/1.0.0'
/** Largest echo frame. */
export const MAX_ECHO_BYTES = 64 * 1024

/** Timings and limits a benchmark node runs with (the same for every node of a run). */
export interface BenchNodeOptions {
  membershipOptions: MembershipInit
  agentsOptions: AgentsInit
  stateOptions?: StateInit
  mailboxOptions?: MailboxInit
}

/** The stream handlers of the two floor protocols. */
export async function serveEcho(node: CyberspaceNode): Promise<void> {
  await node.libp2p.handle(
    ECHO_PROTOCOL,
    async (stream: Stream) => {
      const lp = lpStream(stream, { maxDataLength: MAX_ECHO_BYTES })
      try {
        const signal = AbortSignal.timeout(10_000)
        await lp.write(await lp.read({ signal }), { signal })
        await stream.close({ signal })
      } catch (err) {
        stream.abort(err as Error)
      }
    },
    { maxInboundStreams: 256 }
  )
  await node.libp2p.handle(
    ECHO_STREAM_PROTOCOL,
    async (stream: Stream) => {
      const lp = lpStream(stream, { maxDataLength: MAX_ECHO_BYTES })
      try {
        // bounded: a benchmark stream answers at most this many frames
        for (let i = 0; i < 10_000_000; i++) await lp.write(await lp.read())
      } catch {
        // the caller closed its side (end of stream) or went away
      }
      await stream.close().catch(() => {})
    },
    { maxInboundStreams: 256 }
  )
}

/** Counts the messages it handles in its session; answers with the count and where it runs. */
export function counterKind(host: string): AgentDefinition {
  return {
    description: 'counts what it is sent',
    behaviour: agent => ({
      handle: async message => {
        const n = ((agent.state().n as number | undefined) ?? 0) + 1
        await agent.record({ n })
        if (message.type === 'checkpoint') await agent.checkpoint()
        return { n, host }
      }
    })
  }
}

/** The built-in `echo` (`cyberspace start --kind echo`): answers a request with its body. It needs no host. */
export const echoKind: AgentDefinition = BUILT_IN_KINDS.echo({ host: '' })
