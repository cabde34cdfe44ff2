import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { intersectTags, normalizeTag, parseTag, tagEquals, tagImplies, tagToSexp } from '../../src/spki/tag.ts'
import { tag as t, toTagText } from './fixtures.ts'

describe('SPKI tags', () => {
  it('normalizes a set: members sorted, repeats dropped, members another covers pruned', () => {
    // byte strings only: never one covering another, so only sorted (by canonical encoding: shorter
    // first) and deduplicated
    assert.equal(toTagText(t('(* set carol alice bob alice)')), '(* set bob alice carol)')
    // a prefix covers the byte strings it starts: they go, the others stay
    assert.equal(toTagText(t('(* set bob alice (* prefix al) alfred)')), '(* set (* prefix al) bob)')
    assert.equal(toTagText(t('(* set (file read) (file) (file write))')), '(file)')
  })

  it('follows RFC 2693 semantics on its kinds of example', () => {
    // a shorter list grants every list that extends it
    assert.ok(tagImplies(t('(ftp ftp.clark.net)'), t('(ftp ftp.clark.net cme)')))
    assert.ok(!tagImplies(t('(ftp ftp.clark.net cme)'), t('(ftp ftp.clark.net)')))
    assert.ok(!tagImplies(t('(ftp ftp.clark.net)'), t('(http ftp.clark.net)')))
    // (*) grants everything
    assert.ok(tagImplies(t('(*)'), t('(spend (account 12345) (amount 100))')))
    // prefix
    const web = t('(http (* prefix http://www.clark.net/pub/))')
    assert.ok(tagImplies(web, t('(http http://www.clark.net/pub/cme/index.html)')))
    assert.ok(!tagImplies(web, t('(http http://www.clark.net/private)')))
    // set
    assert.ok(tagImplies(t('(file (* set read write))'), t('(file read)')))
    assert.ok(!tagImplies(t('(file (* set read write))'), t('(file delete)')))
    // numeric, time, alpha and binary ranges
    const amount = t('(spend (* range numeric (ge 10) (l 20.5)))')
    assert.ok(tagImplies(amount, t('(spend 10)')))
    assert.ok(tagImplies(amount, t('(spend 20.49)')))
    assert.ok(!tagImplies(amount, t('(spend 20.5)')))
    assert.ok(!tagImplies(amount, t('(spend 9)')))
    assert.ok(!tagImplies(amount, t('(spend ten)')))
    assert.ok(tagImplies(t('(* range numeric (ge -5) (le 5))'), t('-3')))
    assert.ok(!tagImplies(t('(* range numeric (ge -5) (le 5))'), t('-6')))
    const window = t('(login (* range time (ge "2026-01-01_00:00:00") (le "2026-12-31_23:59:59")))')
    assert.ok(tagImplies(window, t('(login "2026-11-21_13:00:00")')))
    assert.ok(!tagImplies(window, t('(login "2027-01-01_00:00:00")')))
    assert.ok(tagImplies(t('(* range alpha (ge m))'), t('mailbox')))
    assert.ok(!tagImplies(t('(* range alpha (ge m))'), t('agent')))
    assert.ok(tagImplies(t('(* range binary (g #00ff#))'), t('#0100#')))
  })

  it('intersects the way delegation narrows', () => {
    const cases: Array<[string, string, string | undefined]> = [
      ['(file (* set read write))', '(file (* set write delete))', '(file write)'],
      ['(* set a b c)', '(* set c b)', '(* set b c)'],
      ['(* prefix /home/)', '(* prefix /home/cme/)', '(* prefix /home/cme/)'],
      ['(* prefix /home/)', '(* prefix /usr/)', undefined],
      ['(* range numeric (ge 1) (le 10))', '(* range numeric (g 5) (le 20))', '(* range numeric (g 5) (le 10))'],
      ['(* range numeric (ge 1) (le 5))', '(* range numeric (g 5))', undefined],
      ['(* range numeric (ge 1))', '(* range alpha (ge 1))', undefined],
      ['(a b)', '(a (*) c)', '(a b c)'],
      ['(a b)', '(a c)', undefined],
      ['x', '(x)', undefined],
      ['(*)', '(a)', '(a)'],
      // not expressible exactly: conservative
      ['(* prefix ab)', '(* range alpha (ge b))', undefined]
    ]
    for (const [a, b, expected] of cases) {
      const r = intersectTags(t(a), t(b))
      assert.equal(r == null ? undefined : toTagText(r), expected, `${a} ∩ ${b}`)
    }
  })

  it('refuses malformed tags with InvalidTagError', () => {
    for (const bad of [
      '()',
      '((a) b)',
      '(* frob)',
      '(* prefix)',
      '(* prefix (a))',
      '(* range)',
      '(* range color (ge red))',
      '(* range numeric (ge ten))',
      '(* range numeric (ge 1) (ge 2))',
      '(* range numeric (between 1))',
      '(* range time (ge yesterday))'
    ]) {
      assert.throws(() => t(bad), { name: 'InvalidTagError' }, bad)
    }
  })

  describe('properties (fast-check)', () => {
    const word = fc.constantFrom('a', 'b', 'ab', 'abc', 'b1', '5', '10', '-3', '2.5')
    const concrete: fc.Arbitrary<string> = fc.oneof(
      word,
      fc.array(word, { minLength: 1, maxLength: 4 }).map(ws => `(${ws.join(' ')})`)
    )
    const tagText: fc.Arbitrary<string> = fc.letrec<{ tag: string }>(tie => ({
      tag: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        word,
        fc.constant('(*)'),
        word.map(w => `(* prefix ${w})`),
        fc.tuple(fc.constantFrom('alpha', 'numeric'), fc.option(word), fc.option(word)).map(([o, lo, hi]) => {
          const lim = (op: string, v: string | null): string => (v == null ? '' : ` (${op} ${v})`)
          return `(* range ${o}${lim('ge', lo)}${lim('l', hi)})`
        }),
        fc.array(tie('tag'), { minLength: 1, maxLength: 3 }).map(ts => `(* set ${ts.join(' ')})`),
        fc.tuple(word, fc.array(tie('tag'), { maxLength: 3 })).map(([head, rest]) => `(${[head, ...rest].join(' ')})`)
      )
    })).tag
    const parsed = tagText.filter(text => {
      try {
        t(text)
        return true
      } catch {
        return false // e.g. a numeric range with a non-numeric limit
      }
    })

    it('intersection is commutative', () => {
      fc.assert(
        fc.property(parsed, parsed, (a, b) => {
          const ab = intersectTags(t(a), t(b))
          const ba = intersectTags(t(b), t(a))
          assert.ok(ab == null ? ba == null : ba != null && tagEquals(ab, ba), `${a} ∩ ${b}`)
        }),
        { numRuns: 1000 }
      )
    })

    it('intersection is idempotent', () => {
      fc.assert(
        fc.property(parsed, a => {
          const aa = intersectTags(t(a), t(a))
          assert.ok(aa != null && tagEquals(aa, normalizeTag(t(a))), a)
        }),
        { numRuns: 1000 }
      )
    })

    it('intersection is never wider than either side', () => {
      fc.assert(
        fc.property(parsed, parsed, concrete, (a, b, request) => {
          const ab = intersectTags(t(a), t(b))
          if (ab != null && tagImplies(ab, t(request))) {
            assert.ok(tagImplies(t(a), t(request)), `${a} must grant ${request}`)
            assert.ok(tagImplies(t(b), t(request)), `${b} must grant ${request}`)
          }
        }),
        { numRuns: 2000 }
      )
    })

    it('round-trips through its S-expression', () => {
      fc.assert(
        fc.property(parsed, a => {
          assert.ok(tagEquals(parseTag(tagToSexp(t(a))), t(a)))
        })
      )
    })
  })
})
