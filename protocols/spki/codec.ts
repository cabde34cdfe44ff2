/**
 * `/cyberspace/spki/1.0.0` messages (see README.md beside this file): dag-cbor maps with a
 * version and a type, each decoded with limits before anything looks at it.
 *
 * @example
 * const bytes = encodeSpkiMessage({ v: 1, type: 'prove', roots: [rootId], principal: id, tag: canonicalTag })
 * const msg = decodeSpkiMessage(bytes) // throws InvalidSpkiMessageError on anything else
 */
import { checkFields, decodeChecked, encodeChecked, ERROR_FIELDS, isBytes, isPrincipalText } from '../wire.ts'
import type { ErrorAnswer } from '../wire.ts'

export const SPKI_PROTOCOL = '/cyberspace/spki/1.0.0'
export const MAX_SPKI_MESSAGE_BYTES = 256 * 1024
export const MAX_ROOTS = 16
export const MAX_PROOF_CERTS = 64
export const MAX_CERT_BYTES = 16 * 1024
export const MAX_TAG_BYTES = 4096

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

/** A refusal: the named error, e.g. ChainNotFoundError. */
export type SpkiMessage = ProveMessage | ProofMessage | ErrorAnswer

export class InvalidSpkiMessageError extends Error {
  static name = 'InvalidSpkiMessageError'
  name = 'InvalidSpkiMessageError'
}

function fail(what: string): never {
  throw new InvalidSpkiMessageError(what)
}

export function encodeSpkiMessage(msg: SpkiMessage): Uint8Array {
  return encodeChecked(msg, check, MAX_SPKI_MESSAGE_BYTES, fail)
}

export function decodeSpkiMessage(bytes: Uint8Array): SpkiMessage {
  return decodeChecked(bytes, MAX_SPKI_MESSAGE_BYTES, check, fail)
}

const FIELDS = { prove: 'principal,roots,tag,type,v', proof: 'certs,type,v', error: ERROR_FIELDS }

function check(msg: unknown): asserts msg is SpkiMessage {
  const m = checkFields(msg, FIELDS, fail)
  if (m.type === 'prove') {
    if (!Array.isArray(m.roots) || m.roots.length === 0 || m.roots.length > MAX_ROOTS)
      fail(`prove lists 1-${MAX_ROOTS} roots`)
    if (!m.roots.every(isPrincipalText)) fail('a root is a principal id')
    if (!isPrincipalText(m.principal)) fail('principal is a principal id')
    if (!isBytes(m.tag, 1, MAX_TAG_BYTES)) fail(`tag is 1-${MAX_TAG_BYTES} bytes`)
  } else if (m.type === 'proof') {
    if (!Array.isArray(m.certs) || m.certs.length === 0 || m.certs.length > MAX_PROOF_CERTS) {
      fail(`a proof carries 1-${MAX_PROOF_CERTS} certificates`)
    }
    if (!m.certs.every(c => isBytes(c, 1, MAX_CERT_BYTES))) fail(`a certificate is 1-${MAX_CERT_BYTES} bytes`)
  }
}
