/**
 * `/cyberspace/spki/1.0.0` messages (see README.md beside this file): dag-cbor maps with a
 * version and a type, each decoded with limits before anything looks at it.
 *
 * @example
 * const bytes = encodeSpkiMessage({ v: 1, type: 'prove', roots: [rootId], principal: id, tag: canonicalTag })
 * const msg = decodeSpkiMessage(bytes) // throws InvalidSpkiMessageError on anything else
 */
import { decodeChecked, encodeChecked } from '../wire.ts'

export const SPKI_PROTOCOL = '/cyberspace/spki/1.0.0'
export const SPKI_MESSAGE_VERSION = 1
export const MAX_SPKI_MESSAGE_BYTES = 256 * 1024
export const MAX_ROOTS = 16
export const MAX_PROOF_CERTS = 64
export const MAX_CERT_BYTES = 16 * 1024
export const MAX_TAG_BYTES = 4096
const MAX_PRINCIPAL_LENGTH = 64
const MAX_ERROR_NAME = 64
const MAX_ERROR_MESSAGE = 1024

export interface ProveMessage {
  v: 1
  type: 'prove'
  /** The verifier's trusted roots: the chain must start at one of them. */
  roots: string[]
  /** The principal whose authority is to be proven. */
  principal: string
  /** Canonical S-expression of the requested tag body. */
  tag: Uint8Array
}

export interface ProofMessage {
  v: 1
  type: 'proof'
  /** Canonical (signed-cert …) S-expressions: the chain, then the name certificates. */
  certs: Uint8Array[]
}

export interface ErrorMessage {
  v: 1
  type: 'error'
  /** The named error, e.g. ChainNotFoundError. */
  name: string
  message: string
}

export type SpkiMessage = ProveMessage | ProofMessage | ErrorMessage

export class InvalidSpkiMessageError extends Error {
  static name = 'InvalidSpkiMessageError'
  name = 'InvalidSpkiMessageError'
}

function fail(what: string): never {
  throw new InvalidSpkiMessageError(what)
}

const isText = (x: unknown, max: number): x is string => typeof x === 'string' && x.length > 0 && x.length <= max
const isBytes = (x: unknown, max: number): x is Uint8Array => x instanceof Uint8Array && x.length > 0 && x.length <= max

export function encodeSpkiMessage(msg: SpkiMessage): Uint8Array {
  return encodeChecked(msg, check, MAX_SPKI_MESSAGE_BYTES, fail)
}

export function decodeSpkiMessage(bytes: Uint8Array): SpkiMessage {
  return decodeChecked(bytes, MAX_SPKI_MESSAGE_BYTES, check, fail)
}

const FIELDS = { prove: 'principal,roots,tag,type,v', proof: 'certs,type,v', error: 'message,name,type,v' }

function check(msg: unknown): asserts msg is SpkiMessage {
  if (msg == null || typeof msg !== 'object' || Array.isArray(msg)) fail('message is not a map')
  const m = msg as Record<string, unknown>
  if (m.v !== SPKI_MESSAGE_VERSION) fail(`unsupported message version ${String(m.v)}`)
  if (m.type !== 'prove' && m.type !== 'proof' && m.type !== 'error') fail(`unknown message type ${String(m.type)}`)
  if (Object.keys(m).sort().join(',') !== FIELDS[m.type])
    fail(`a ${m.type} message has exactly the fields ${FIELDS[m.type]}`)
  if (m.type === 'prove') {
    if (!Array.isArray(m.roots) || m.roots.length === 0 || m.roots.length > MAX_ROOTS)
      fail(`prove lists 1-${MAX_ROOTS} roots`)
    if (!m.roots.every(r => isText(r, MAX_PRINCIPAL_LENGTH))) fail('a root is a principal id')
    if (!isText(m.principal, MAX_PRINCIPAL_LENGTH)) fail('principal is a principal id')
    if (!isBytes(m.tag, MAX_TAG_BYTES)) fail(`tag is 1-${MAX_TAG_BYTES} bytes`)
  } else if (m.type === 'proof') {
    if (!Array.isArray(m.certs) || m.certs.length === 0 || m.certs.length > MAX_PROOF_CERTS) {
      fail(`a proof carries 1-${MAX_PROOF_CERTS} certificates`)
    }
    if (!m.certs.every(c => isBytes(c, MAX_CERT_BYTES))) fail(`a certificate is 1-${MAX_CERT_BYTES} bytes`)
  } else {
    if (!isText(m.name, MAX_ERROR_NAME) || !/^[A-Za-z]+$/.test(m.name)) fail('error name is a word')
    if (typeof m.message !== 'string' || m.message.length > MAX_ERROR_MESSAGE) fail('error message too long')
  }
}
