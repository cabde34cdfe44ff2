/**
 * Agents for the mailbox tests: `RecordingAgent` is a real HostedAgent with a bounded mailbox of
 * its own (it refuses with MailboxFullError when `capacity` messages wait), handling one message at
 * a time with a behaviour, and recording every message it handled, in order. `gate()` makes a
 * behaviour wait until the test lets it go.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { seedSigner } from '../../src/crypto/sign.ts'
import { MailboxFullError } from '../../src/actor/errors.ts'
import type { HostedAgent, InboundMessage } from '../../src/actor/directory.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { Signer } from '../../src/crypto/sign.ts'
import type { AbortOptions, PrivateKey } from '@libp2p/interface'

export type Behaviour = (message: InboundMessage, options: AbortOptions) => Promise<unknown> | unknown

export class RecordingAgent implements HostedAgent {
  readonly principal: PrincipalId
  readonly signer: Signer
  /** The agent's key (for publishing its registry record). */
  readonly key: PrivateKey
  /** Every message the behaviour finished handling, in order. */
  readonly handled: InboundMessage[] = []
  /** Every message handed to the behaviour (started), in order. */
  readonly started: InboundMessage[] = []
  behaviour: Behaviour
  private readonly capacity: number
  private readonly queue: Array<() => void> = []
  private busy = false

  constructor(key: PrivateKey, signer: Signer, behaviour: Behaviour, capacity: number) {
    this.key = key
    this.signer = signer
    this.principal = signer.principal
    this.behaviour = behaviour
    this.capacity = capacity
  }

  static async create(behaviour: Behaviour = echo, capacity = 64): Promise<RecordingAgent> {
    const key = await generateKeyPair('Ed25519')
    return new RecordingAgent(key, await seedSigner(key.raw), behaviour, capacity)
  }

  /** Messages waiting in the mailbox (not the one being handled). */
  get waiting(): number {
    return this.queue.length
  }

  async receive(message: InboundMessage, options: AbortOptions = {}): Promise<unknown> {
    // the message waiting counts against the capacity; the one being handled does not
    if (this.busy && this.queue.length >= this.capacity) throw new MailboxFullError(this.capacity)
    if (this.busy) await new Promise<void>(resolve => this.queue.push(resolve))
    this.busy = true
    try {
      this.started.push(message)
      const result = await this.behaviour(message, options)
      this.handled.push(message)
      return result
    } finally {
      this.busy = false
      this.queue.shift()?.()
    }
  }
}

/** Answers a request with `{ echo: <its body>, type: <its type> }`. */
export const echo: Behaviour = message => ({ echo: message.body, type: message.type })

/** A promise the test resolves: `wait` for behaviours, `open()` to let them go. */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open: () => void = () => {}
  const wait = new Promise<void>(resolve => {
    open = resolve
  })
  return { wait, open }
}

/** The agent card a test agent publishes. */
export function cardOf(name: string): {
  name: string
  description: string
  version: string
  skills: Array<{ id: string; name: string; description: string; tags: string[] }>
} {
  return {
    name,
    description: `the ${name} test agent`,
    version: '1.0.0',
    skills: [{ id: 'test', name: 'test', description: 'answers tests', tags: ['test'] }]
  }
}

/** A deterministic sequence of numbers in [0, 1) from `seed` (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
