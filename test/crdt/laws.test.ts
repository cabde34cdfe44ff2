import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { Hlc } from '../../src/clock/hlc.ts'
import { gCounter, lwwRegister, mvRegister, opLog, orMap, orSet, pnCounter, text } from '../../src/crdt/index.ts'
import { cbor, prng, REPLICAS, viaBytes } from './fixtures.ts'
import type { CrdtType, MutationContext } from '../../src/crdt/index.ts'

/** How one type is exercised: its operations and how to apply one. */
interface Model<S, D, Op> {
  type: CrdtType<S, D, unknown>
  op: fc.Arbitrary<Op>
  apply: (state: S, ctx: MutationContext, op: Op) => D
  /** Equal states have byte-identical encodings (every type but text). */
  canonical: boolean
}

type Step<Op> = { at: number; op: Op } | { from: number; to: number }

const RUNS = 40

const cid = CID.create(1, 0x55, identity.digest(new Uint8Array([1, 2, 3])))
const value = fc.constantFrom<unknown>('a', 'b', 7, -1.5, null, true, new Uint8Array([1, 2]), [1, 'x'], { k: 'v' }, cid)
const element = fc.constantFrom<unknown>('x', 'y', 1, [2], cid)
const amount = fc.integer({ min: 1, max: 5 })
const path = fc.array(fc.constantFrom('a', 'b'), { minLength: 1, maxLength: 3 })

function steps<Op>(op: fc.Arbitrary<Op>): fc.Arbitrary<Array<Step<Op>>> {
  const replica = fc.integer({ min: 0, max: REPLICAS.length - 1 })
  return fc.array(
    fc.oneof(
      { weight: 4, arbitrary: fc.record({ at: replica, op }) },
      { weight: 1, arbitrary: fc.record({ from: replica, to: replica }) }
    ),
    { maxLength: 30 }
  )
}

/**
 * Runs `steps` on three replicas (each op is applied where it happens and its delta merged there;
 * a sync merges one replica's whole state into another), then checks the lattice laws on the final
 * states and that every permutation-with-repeats of the deltas converges to the same state.
 */
function checkLaws<S, D, Op>(model: Model<S, D, Op>, run: Array<Step<Op>>, seed: number): void {
  const { type } = model
  const bytes = (s: S): Uint8Array => cbor(type.encodeState(s))
  const same = (a: S, b: S, what: string): void => {
    assert.ok(type.equals(a, b), what)
    assert.deepEqual(type.value(a), type.value(b), what)
    if (model.canonical) assert.deepEqual(bytes(a), bytes(b), what)
  }

  let now = 1_000
  const clocks = REPLICAS.map(() => new Hlc({ now: () => now }))
  const states = REPLICAS.map(() => type.empty())
  const deltas: D[] = []
  run.forEach((step, i) => {
    now = 1_000 + Math.floor(i / 4)
    if ('from' in step) {
      type.merge(states[step.to], type.toDelta(states[step.from]))
      clocks[step.to].receive(clocks[step.from].last())
      return
    }
    const state = states[step.at]
    const before = model.canonical ? bytes(state) : undefined
    // the text mutators edit their doc in place: the receivers' check sees the state before the edit
    const prior = type.clone(state)
    const ctx = { replica: REPLICAS[step.at], hlc: clocks[step.at].tick() }
    const delta = model.apply(state, ctx, step.op)
    if (before != null) assert.deepEqual(bytes(state), before, 'a mutator changed its input')
    // what a mutator makes passes the receivers' check: at a replica with the author's state before
    // the edit, and at one that has seen more
    type.checkDelta(prior, delta, ctx)
    type.checkDelta(type.join(prior, states[(step.at + 1) % states.length]), delta, ctx)
    type.merge(state, delta)
    deltas.push(delta)
  })
  const [a, b, c] = states

  // join is commutative, associative and idempotent, and leaves its inputs alone
  const inputs = model.canonical ? states.map(bytes) : []
  same(type.join(a, b), type.join(b, a), 'commutative')
  same(type.join(b, c), type.join(c, b), 'commutative')
  same(type.join(type.join(a, b), c), type.join(a, type.join(b, c)), 'associative')
  for (const s of states) same(type.join(s, s), s, 'idempotent')
  if (model.canonical) assert.deepEqual(states.map(bytes), inputs, 'join changed an input')

  // merge in place agrees with join, and merging a state into itself changes nothing
  same(type.merge(type.clone(a), type.toDelta(b)), type.join(a, b), 'merge = join')
  same(type.merge(type.clone(c), type.toDelta(c)), c, 'merge idempotent')

  // equals means equal encodings (for the canonical types)
  if (model.canonical) {
    for (const x of states)
      for (const y of states) {
        assert.equal(type.equals(x, y), Buffer.from(bytes(x)).equals(bytes(y)), 'equals = same bytes')
      }
  }

  // states and deltas survive a trip through dag-cbor bytes
  for (const s of states) {
    const decoded = type.decodeState(viaBytes(type.encodeState(s)))
    same(decoded, s, 'state round trip')
  }
  const wire = deltas.map(d => type.decodeDelta(viaBytes(type.encodeDelta(d))))
  wire.forEach((d, i) => assert.deepEqual(cbor(type.encodeDelta(d)), cbor(type.encodeDelta(deltas[i]))))

  // the deltas, merged in order, in any order, with repeats: one state, the join of all replicas
  const ordered = type.empty()
  for (const d of wire) type.merge(ordered, d)
  same(ordered, type.join(type.join(a, b), c), 'deltas = join of replicas')
  if (model.canonical) {
    // for these D = S, and join is the textbook definition: folding the deltas with it checks merge
    const folded = wire.reduce((acc, d) => type.join(acc, d as unknown as S), type.empty())
    same(folded, ordered, 'merged deltas = joined deltas')
  }
  const random = prng(seed)
  const order = wire.map((_, i) => i)
  for (let k = Math.floor(random() * (wire.length + 1)); k > 0; k--) order.push(Math.floor(random() * wire.length))
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  const shuffled = type.empty()
  for (const i of order) type.merge(shuffled, wire[i])
  same(shuffled, ordered, `permutation ${order.join(',')}`)
}

function lawsOf<S, D, Op>(name: string, model: Model<S, D, Op>): void {
  it(`${name}: join is a semilattice and deltas converge in any order`, () => {
    fc.assert(
      fc.property(steps(model.op), fc.integer(), (run, seed) => checkLaws(model, run, seed)),
      { numRuns: RUNS }
    )
  })
}

describe('CRDT laws (property tests)', () => {
  lawsOf('g-counter', {
    type: gCounter,
    op: amount,
    apply: (s, ctx, n) => gCounter.increment(s, ctx, n),
    canonical: true
  })

  lawsOf('pn-counter', {
    type: pnCounter,
    op: fc.record({ down: fc.boolean(), n: amount }),
    apply: (s, ctx, { down, n }) => (down ? pnCounter.decrement(s, ctx, n) : pnCounter.increment(s, ctx, n)),
    canonical: true
  })

  lawsOf('or-set', {
    type: orSet,
    op: fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('add' as const), elem: element }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('remove' as const), elem: element }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const), elem: fc.constant(null) }) }
    ),
    apply: (s, ctx, op) =>
      op.kind === 'add'
        ? orSet.add(s, ctx, op.elem)
        : op.kind === 'remove'
          ? orSet.remove(s, ctx, op.elem)
          : orSet.clear(s, ctx),
    canonical: true
  })

  lawsOf('lww-register', {
    type: lwwRegister,
    op: value,
    apply: (s, ctx, v) => lwwRegister.set(s, ctx, v),
    canonical: true
  })

  lawsOf('mv-register', {
    type: mvRegister,
    op: value,
    apply: (s, ctx, v) => mvRegister.set(s, ctx, v),
    canonical: true
  })

  lawsOf('or-map', {
    type: orMap,
    op: fc.oneof(
      fc.record({ kind: fc.constant('set' as const), path, arg: value }),
      fc.record({ kind: fc.constant('assign' as const), path, arg: value }),
      fc.record({ kind: fc.constant('increment' as const), path, arg: amount }),
      fc.record({ kind: fc.constant('decrement' as const), path, arg: amount }),
      fc.record({ kind: fc.constant('add' as const), path, arg: element }),
      fc.record({ kind: fc.constant('removeElement' as const), path, arg: element }),
      fc.record({ kind: fc.constant('delete' as const), path, arg: fc.constant(null) })
    ),
    apply: (s, ctx, { kind, path, arg }) => {
      switch (kind) {
        case 'increment':
        case 'decrement':
          return orMap[kind](s, ctx, path, arg as number)
        case 'delete':
          return orMap.delete(s, ctx, path)
        default:
          return orMap[kind](s, ctx, path, arg)
      }
    },
    canonical: true
  })

  lawsOf('op-log', {
    type: opLog,
    op: fc.array(value, { minLength: 1, maxLength: 3 }),
    apply: (s, ctx, bodies) => opLog.append(s, ctx, bodies),
    canonical: true
  })

  lawsOf('text', {
    type: text,
    op: fc.oneof(
      fc.record({
        kind: fc.constant('insert' as const),
        at: fc.nat(),
        content: fc.string({ unit: fc.constantFrom('a', 'b', 'c'), minLength: 1, maxLength: 3 })
      }),
      fc.record({ kind: fc.constant('remove' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 3 }) })
    ),
    apply: (doc, ctx, op) => {
      const size = text.value(doc).length
      const index = op.at % (size + 1)
      return op.kind === 'insert'
        ? text.insert(doc, ctx, index, op.content)
        : text.remove(doc, ctx, index, Math.min(op.length, size - index))
    },
    canonical: false
  })
})
