import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { principalId } from '../../src/crypto/principal.ts'
import { BoardState } from '../../src/work/board.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { BoardChange, OpOutcome, StampedOp, WorkAction, WorkItem, WorkOp } from '../../src/work/types.ts'

const ACTORS: PrincipalId[] = [1, 2, 3].map(n => principalId(new Uint8Array(32).fill(n)))
const ITEMS = ['a', 'b', 'c', 'd', 'e']

/**
 * Where each item is meant to sit, what it depends on and when it is created: every case creates
 * every item once as planned; the random operations add creates that name another parent or path.
 */
interface Plan {
  parent: Array<number | null>
  deps: number[][]
  kind: string[]
  createdAt: number[]
}

const planArb: fc.Arbitrary<Plan> = fc.record({
  // an item's planned parent and dependencies are earlier ones, so planned paths form a tree
  parent: fc.tuple(...ITEMS.map((_, i) => (i === 0 ? fc.constant(null) : fc.option(fc.nat(i - 1), { freq: 2 })))),
  deps: fc.tuple(
    ...ITEMS.map((_, i) =>
      fc.subarray(
        ITEMS.slice(0, i).map((_, j) => j),
        { maxLength: Math.min(i, 2) }
      )
    )
  ),
  kind: fc.tuple(...ITEMS.map(() => fc.constantFrom('task', 'goal'))),
  createdAt: fc.tuple(...ITEMS.map((_, i) => fc.integer({ min: 1 + i, max: 8 + 2 * i })))
})

/** The planned creates, at indices 2.. of their stamps (random operations use 0 and 1). */
function plannedCreates(plan: Plan): StampedOp[] {
  return ITEMS.map((item, i) => {
    const parent = plan.parent[i]
    const body: WorkOp = {
      op: 'create',
      item,
      kind: plan.kind[i],
      path: plannedPath(plan, i),
      title: item,
      deps: plan.deps[i].map(d => ITEMS[d])
    }
    if (parent !== null) body.parent = ITEMS[parent]
    return { hlc: [plan.createdAt[i], 0], actor: ACTORS[0], index: 2 + i, body }
  })
}

function plannedPath(plan: Plan, i: number): string {
  const parent = plan.parent[i]
  return parent === null ? ITEMS[i] : `${plannedPath(plan, parent)}/${ITEMS[i]}`
}

const ACTIONS: WorkAction[] = ['create', 'claim', 'claim', 'claim', 'release', 'progress', 'complete', 'complete']
const RARE: WorkAction[] = ['fail', 'cancel', 'delete', 'assign', 'handoff', 'update']

interface RawOp {
  wall: number
  logical: number
  actor: number
  index: number
  action: WorkAction
  item: number
  /** Follow the plan (parent and path), or go astray. */
  planned: boolean
  other: number
  deps: number[]
  flag: boolean
  percent: number
}

const rawOpArb: fc.Arbitrary<RawOp> = fc.record({
  wall: fc.integer({ min: 1, max: 30 }),
  logical: fc.integer({ min: 0, max: 1 }),
  actor: fc.nat(ACTORS.length - 1),
  index: fc.nat(1),
  action: fc.oneof(
    { arbitrary: fc.constantFrom(...ACTIONS), weight: 4 },
    { arbitrary: fc.constantFrom(...RARE), weight: 1 }
  ),
  item: fc.nat(ITEMS.length - 1),
  planned: fc.oneof({ arbitrary: fc.constant(true), weight: 6 }, { arbitrary: fc.constant(false), weight: 1 }),
  other: fc.nat(ITEMS.length),
  deps: fc.subarray([0, 1, 2, 3, 4], { maxLength: 2 }),
  flag: fc.boolean(),
  percent: fc.integer({ min: 0, max: 100 })
})

function toOp(plan: Plan, raw: RawOp): StampedOp {
  const item = ITEMS[raw.item]
  const kind = plan.kind[raw.item]
  const other = raw.other < ITEMS.length ? ITEMS[raw.other] : undefined
  let body: WorkOp
  if (raw.action === 'create') {
    const planned = plan.parent[raw.item]
    const parent = raw.planned ? (planned === null ? undefined : ITEMS[planned]) : other
    const path = raw.planned ? plannedPath(plan, raw.item) : parent === undefined ? item : `${parent}/${item}`
    body = { op: 'create', item, kind, path, title: item, deps: raw.deps.map(d => ITEMS[d]) }
    if (parent !== undefined) body.parent = parent
    if (raw.flag && raw.percent < 20) body.assignee = ACTORS[raw.percent % ACTORS.length]
  } else {
    const scope = { item, kind, path: raw.planned ? plannedPath(plan, raw.item) : item }
    const someone = ACTORS[raw.other % ACTORS.length]
    switch (raw.action) {
      case 'progress':
        body = {
          op: 'progress',
          ...scope,
          percent: raw.percent,
          ...(raw.flag ? { status: 'input-required' as const } : {})
        }
        break
      case 'fail':
        body = { op: 'fail', ...scope, error: 'e', rejected: raw.flag }
        break
      case 'assign':
        body = { op: 'assign', ...scope, assignee: raw.flag ? someone : null }
        break
      case 'handoff':
        body = { op: 'handoff', ...scope, to: someone }
        break
      case 'update':
        body = { op: 'update', ...scope, title: `t${raw.percent}` }
        break
      default:
        body = { op: raw.action, ...scope } as WorkOp
    }
  }
  return { hlc: [raw.wall, raw.logical], actor: ACTORS[raw.actor], index: raw.index, body }
}

const key = (op: { hlc: readonly number[]; actor: string; index: number }): string =>
  `${op.hlc[0]}.${op.hlc[1]}.${op.index} ${op.actor}`

const caseArb = fc.record({
  plan: planArb,
  raws: fc.uniqueArray(rawOpArb, {
    minLength: 12,
    maxLength: 40,
    selector: r => `${r.wall}.${r.logical}.${r.index}.${r.actor}`
  }),
  /** Arrival order: ops sorted by these keys. */
  order: fc.array(fc.nat(1000), { minLength: 45, maxLength: 45 }),
  /** Where the arrival is cut into batches. */
  cuts: fc.array(fc.boolean(), { minLength: 45, maxLength: 45 })
})

function compareStamps(a: StampedOp, b: StampedOp): number {
  return (
    a.hlc[0] - b.hlc[0] ||
    a.hlc[1] - b.hlc[1] ||
    (a.actor < b.actor ? -1 : a.actor > b.actor ? 1 : 0) ||
    a.index - b.index
  )
}

interface Snapshot {
  items: WorkItem[]
  outcomes: Array<OpOutcome | undefined>
  live: number
  ops: number
}

function snapshot(state: BoardState, ops: StampedOp[]): Snapshot {
  return {
    items: [...state.sortedItems()],
    outcomes: ops.map(op => state.outcome(op)),
    live: state.liveItems,
    ops: state.opCount
  }
}

/** Arrives `ops` in `order` cut into batches; returns the state and every change reported, concatenated. */
function arrive(ops: StampedOp[], order: number[], cuts: boolean[]): { state: BoardState; changes: BoardChange[] } {
  const arrival = ops.map((op, i) => ({ op, k: order[i % order.length], i })).sort((x, y) => x.k - y.k || x.i - y.i)
  const state = new BoardState('b')
  const changes: BoardChange[] = []
  let batch: StampedOp[] = []
  arrival.forEach(({ op }, i) => {
    batch.push(op)
    if (cuts[i % cuts.length]) {
      changes.push(...state.add(batch))
      batch = []
    }
  })
  changes.push(...state.add(batch))
  // a duplicate arrival changes nothing
  assert.deepEqual(state.add(ops), [])
  return { state, changes }
}

/** The concatenated changes end, for every operation, in its final outcome (and status, if applied). */
function checkChanges(
  changes: BoardChange[],
  reference: Map<string, BoardChange>,
  state: BoardState,
  ops: StampedOp[]
): void {
  const last = new Map<string, BoardChange>()
  for (const change of changes) last.set(key(change.stamp), change)
  assert.equal(last.size, ops.length, 'every operation reported at least once')
  for (const op of ops) {
    const change = last.get(key(op)) as BoardChange
    const outcome = state.outcome(op) as OpOutcome
    assert.equal(change.type === 'applied', outcome.accepted)
    if (change.type === 'refused') {
      assert.equal(change.reason, outcome.reason)
      assert.equal(change.winner, outcome.winner)
    }
    assert.deepEqual(change, reference.get(key(op)))
  }
}

describe('the board fold converges (fast-check)', () => {
  it('every arrival order and batching ends in the state and refusals of one fold of the sorted operations', () => {
    let refusedSeen = 0
    let lostClaims = 0
    fc.assert(
      fc.property(caseArb, ({ plan, raws, order, cuts }) => {
        const ops = [...plannedCreates(plan), ...raws.map(raw => toOp(plan, raw))]
        const sorted = [...ops].sort(compareStamps)
        const reference = new BoardState('b')
        const referenceChanges = reference.add(sorted)
        // one fold of the sorted list reports each operation once, in fold order
        assert.deepEqual(
          referenceChanges.map(c => key(c.stamp)),
          sorted.map(key)
        )
        const expected = snapshot(reference, ops)
        const byOp = new Map(referenceChanges.map(c => [key(c.stamp), c]))
        refusedSeen += referenceChanges.filter(c => c.type === 'refused').length
        lostClaims += referenceChanges.filter(c => c.type === 'refused' && c.reason === 'already-claimed').length

        for (const [name, arrival] of [
          ['random batches', arrive(ops, order, cuts)],
          [
            'one at a time, reversed',
            arrive(
              ops,
              ops.map((_, i) => -i),
              [true]
            )
          ],
          ['one at a time, shuffled', arrive(ops, order, [true])],
          ['all at once, shuffled', arrive(ops, order, [false])]
        ] as const) {
          assert.deepEqual(snapshot(arrival.state, ops), expected, name)
          checkChanges(arrival.changes, byOp, arrival.state, ops)
        }
      }),
      { seed: 1515, numRuns: 300 }
    )
    // the generator reaches the interesting cases, not only trivial folds
    assert.ok(refusedSeen > 1000, `refusals seen: ${refusedSeen}`)
    assert.ok(lostClaims > 20, `lost claims seen: ${lostClaims}`)
  })

  it('items arriving children first, each in its own batch, end as one sorted fold', () => {
    // a chain a ← b ← c ← d ← e (each the parent of the next and a dependency of it), created in order,
    // claimed and completed in order, delivered newest first
    const ops: StampedOp[] = []
    let wall = 1
    let path = ''
    ITEMS.forEach((item, i) => {
      path = path === '' ? item : `${path}/${item}`
      const parent = i === 0 ? {} : { parent: ITEMS[i - 1], deps: [ITEMS[i - 1]] }
      ops.push({
        hlc: [wall++, 0],
        actor: ACTORS[0],
        index: 0,
        body: { op: 'create', item, kind: 'task', path, title: item, ...parent }
      })
    })
    ITEMS.forEach((item, i) => {
      const scope = { item, kind: 'task', path: ITEMS.slice(0, i + 1).join('/') }
      ops.push({ hlc: [wall++, 0], actor: ACTORS[i % 3], index: 0, body: { op: 'claim', ...scope } })
      ops.push({ hlc: [wall++, 0], actor: ACTORS[i % 3], index: 0, body: { op: 'complete', ...scope } })
    })
    const reference = new BoardState('b')
    reference.add(ops)
    assert.ok(ops.every(op => reference.outcome(op)?.accepted))
    const state = new BoardState('b')
    for (const op of [...ops].reverse()) state.add([op])
    assert.deepEqual(snapshot(state, ops), snapshot(reference, ops))
  })
})
