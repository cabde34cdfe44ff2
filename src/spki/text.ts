/**
 * The short text forms people type for subjects and times (on the command line, in the control
 * API), next to the full S-expression forms, which are always accepted too.
 *
 *   subject   z6Mk…  or  12D3Koo…                   a key (principal id or peer id)
 *             name:friends  or  name:friends/close   the issuer's own (linked) name
 *             name:z6Mk…/friends/close              a name in another key's name space
 *             (hash sha256 |…|), (k-of-n …), …       any subject in advanced form
 *   time      2026-12-31_23:59:59                    SPKI time (UTC)
 *             2026-12-31T23:59:59Z, 2026-12-31       ISO 8601
 *             +90s, +30m, +12h, +30d                 that long from now
 *
 * @example
 * parseSubjectText('name:friends', me) // { kind: 'name', issuer: me, names: ['friends'] }
 * parseTimeText('+30d')                 // '2026-12-21_10:00:00'
 */
import { parsePrincipal } from '../crypto/principal.ts'
import { parseSubject, spkiTime, spkiTimeMs, subjectToSexp } from './cert.ts'
import { InvalidCertError } from './errors.ts'
import { parseAdvanced } from './sexp.ts'
import type { PrincipalId } from '../crypto/principal.ts'
import type { Subject } from './cert.ts'

const MAX_TEXT = 4096
const LAST_MOMENT = Date.UTC(10000, 0, 1)
const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

export function parseSubjectText(text: string, issuer: PrincipalId): Subject {
  const t = text.trim()
  if (t.length === 0 || t.length > MAX_TEXT) throw new InvalidCertError(`a subject is 1-${MAX_TEXT} characters`)
  if (t.startsWith('(')) return parseSubject(parseAdvanced(t))
  if (t.startsWith('name:')) {
    const parts = t.slice(5).split('/')
    let space = issuer
    if (parts.length > 1) {
      try {
        space = parsePrincipal(parts[0])
        parts.shift()
      } catch {
        // not a key: the first part is one of the issuer's own names
      }
    }
    // round-trips through the parser, which checks each name and the count
    return parseSubject(subjectToSexp({ kind: 'name', issuer: space, names: parts }))
  }
  return { kind: 'key', principal: parsePrincipal(t) }
}

/** A moment as SPKI time text; throws InvalidCertError for anything unreadable. */
export function parseTimeText(text: string, now: number = Date.now()): string {
  const t = text.trim()
  const relative = /^\+(\d{1,9})([smhd])$/.exec(t)
  const ms =
    relative != null
      ? now + Number(relative[1]) * UNITS[relative[2]]
      : /^\d{4}-\d{2}-\d{2}_\d{2}:\d{2}:\d{2}$/.test(t)
        ? spkiTimeMs(t)
        : /^\d{4}-\d{2}-\d{2}/.test(t)
          ? Date.parse(t)
          : NaN
  // SPKI time has four-digit years
  if (!(ms >= 0 && ms < LAST_MOMENT)) {
    throw new InvalidCertError(`"${t.slice(0, 64)}" is not a time: use 2026-12-31_23:59:59, ISO 8601 or +30d`)
  }
  return spkiTime(ms)
}
