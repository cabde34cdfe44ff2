/**
 * Sequences: certificates and CRLs bundled for transport, each object followed by its signature,
 * as RFC 2693's `(sequence …)`:
 *
 *   (sequence (cert …) (signature (ed25519 |…|)) (crl …) (signature (ed25519 |…|)) …)
 *
 * A single `(signed-cert …)` or `(signed-crl …)` reads as a sequence of one. Parsing checks shape
 * only; signatures are checked by whoever uses the certificates (`verifyCert`, `verifyCrl`).
 *
 * @example
 * const text = toTransport(sequenceToSexp({ certs: [a, b], crls: [] }))
 * const { certs, crls } = parseSequence(parseAnyForm(bytes))
 */
import { parseSignedCert, signedCertToSexp } from './cert.ts'
import { parseSignedCrl, signedCrlToSexp } from './crl.ts'
import { InvalidCertError } from './errors.ts'
import { atomText, isList } from './sexp.ts'
import type { SignedCert } from './cert.ts'
import type { SignedCrl } from './crl.ts'
import type { Sexp } from './sexp.ts'

/** Most certificates plus CRLs in one sequence. */
export const MAX_SEQUENCE_ITEMS = 128

export interface Sequence {
  certs: SignedCert[]
  crls: SignedCrl[]
}

const enc = (text: string): Uint8Array => new TextEncoder().encode(text)

export function sequenceToSexp(seq: Sequence): Sexp {
  if (seq.certs.length + seq.crls.length > MAX_SEQUENCE_ITEMS) {
    throw new RangeError(`a sequence holds at most ${MAX_SEQUENCE_ITEMS} items`)
  }
  const out: Sexp[] = [enc('sequence')]
  // signed-cert and signed-crl are (<kind> <body> <signature>): a sequence lists body, signature
  for (const signed of [...seq.certs.map(signedCertToSexp), ...seq.crls.map(signedCrlToSexp)]) {
    out.push(...(signed as Sexp[]).slice(1))
  }
  return out
}

/** Reads a `(sequence …)`, `(signed-cert …)` or `(signed-crl …)`; throws InvalidCertError or InvalidCrlError. */
export function parseSequence(s: Sexp): Sequence {
  if (!isList(s) || s.length === 0)
    throw new InvalidCertError('expected (sequence …), (signed-cert …) or (signed-crl …)')
  const head = atomText(s[0])
  if (head === 'signed-cert') return { certs: [parseSignedCert(s)], crls: [] }
  if (head === 'signed-crl') return { certs: [], crls: [parseSignedCrl(s)] }
  if (head !== 'sequence') throw new InvalidCertError(`expected a sequence, certificate or CRL, not (${head ?? '…'} …)`)
  const items = s.slice(1)
  if (items.length % 2 !== 0) throw new InvalidCertError('a sequence pairs each certificate or CRL with its signature')
  if (items.length === 0 || items.length / 2 > MAX_SEQUENCE_ITEMS) {
    throw new InvalidCertError(`a sequence holds 1 to at most ${MAX_SEQUENCE_ITEMS} items`)
  }
  const seq: Sequence = { certs: [], crls: [] }
  for (let i = 0; i < items.length; i += 2) {
    const [body, signature] = [items[i], items[i + 1]]
    const kind = isList(body) ? atomText(body[0]) : undefined
    if (kind === 'cert') seq.certs.push(parseSignedCert([enc('signed-cert'), body, signature]))
    else if (kind === 'crl') seq.crls.push(parseSignedCrl([enc('signed-crl'), body, signature]))
    else throw new InvalidCertError(`sequence item ${i / 2 + 1} is neither (cert …) nor (crl …)`)
  }
  return seq
}
