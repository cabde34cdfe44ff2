/** Re-exports of the tag module plus a printer, for the tag tests. */
import { toAdvanced } from '../../src/spki/sexp.ts'
import { normalizeTag, tagToSexp } from '../../src/spki/tag.ts'
import type { Tag } from '../../src/spki/tag.ts'

export { intersectTags, normalizeTag, parseTag, tagEquals, tagImplies, tagToSexp } from '../../src/spki/tag.ts'

export function toTagText(tag: Tag): string {
  return toAdvanced(tagToSexp(normalizeTag(tag)))
}
