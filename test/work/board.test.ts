import { strict as assert } from 'node:assert'
import { principalId } from '../../src/crypto/principal.ts'
import { BoardState, HISTORY_TAIL } from '../../src/work/board.ts'
import type { HlcTimestamp } from '../../src/clock/hlc.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'
import type { StampedOp, WorkAction, WorkOp } from '../../src/work/types.ts'

/** A principal id for a test actor (any 32 bytes make a well-formed Ed25519 multikey id). */
const principal = (n: number): PrincipalId => principalId(new Uint8Array(32).fill(n))
const alice = principal(1)
const bob = principal(2)
const carol = principal(3)

type Extra<A extends WorkAction> = Omit<Extract<WorkOp, { op: A }>, 'op' | 'item' | 'kind' | 'path'>

/**
 * Board operations as agents write them: stamped in order (every call 10 ms after the last) or at
 * a chosen HLC, each naming its item's kind and path as the creates of this script made them.
 */
class Script {
  private wall = 0
  readonly scope = new Map<string, { kind: string; path: string }>()

  private stamp(hlc?: HlcTimestamp): HlcTimestamp {
    if (hlc !== undefined) return hlc
    this.wall += 10
    return [this.wall, 0]
  }

  create(
    actor: PrincipalId,
    item: string,
    extra: Partial<Extra<'create'>> & { kind?: string; path?: string } = {},
    hlc?: HlcTimestamp
  ): StampedOp {
    const { kind = 'task', path, ...rest } = extra
    const parentPath = rest.parent === undefined ? undefined : (this.scope.get(rest.parent)?.path ?? rest.parent)
    const own = path ?? (parentPath === undefined ? item : `${parentPath}/${item}`)
    if (!this.scope.has(item)) this.scope.set(item, { kind, path: own })
    const body = { op: 'create', item, kind, path: own, title: `do ${item}`, ...rest } as WorkOp
    return { hlc: this.stamp(hlc), actor, index: 0, body }
  }

  op<A extends Exclude<WorkAction, 'create'>>(
    actor: PrincipalId,
    action: A,
    item: string,
    extra?: Extra<A> & { kind?: string; path?: string },
    hlc?: HlcTimestamp
  ): StampedOp {
    const known = this.scope.get(item) ?? { kind: 'task', path: item }
    const body = { op: action, item, kind: known.kind, path: known.path, ...extra } as WorkOp
    return { hlc: this.stamp(hlc), actor, index: 0, body }
  }
}

/** The outcome of `op` as folded: 'applied' or the refusal's reason. */
function result(state: BoardState, op: StampedOp): string | undefined {
  const outcome = state.outcome(op)
  return outcome === undefined ? undefined : outcome.accepted ? 'applied' : outcome.reason
}

/** A state holding `ops`, folded one by one in the order given. */
function fold(ops: StampedOp[]): BoardState {
  const state = new BoardState('b')
  for (const op of ops) state.add([op])
  return state
}

describe('the board fold (BoardState)', () => {
  describe('create', () => {
    it('a create makes a submitted item with its fields, path and stamps', () => {
      const s = new Script()
      const goal = s.create(alice, 'goal', { kind: 'goal', description: 'ship it', priority: 5, skills: ['ts'] })
      const t1 = s.create(alice, 't1', { parent: 'goal', deps: [] })
      const state = fold([goal, t1])
      const item = state.item('t1')
      assert.ok(item)
      assert.equal(item.status, 'submitted')
      assert.equal(item.path, 'goal/t1')
      assert.equal(item.parent, 'goal')
      assert.equal(item.kind, 'task')
      assert.equal(item.priority, 0)
      assert.deepEqual(item.created, t1.hlc)
      assert.equal(item.createdBy, alice)
      assert.equal(item.ready, true)
      assert.equal(item.deleted, false)
      assert.deepEqual(
        item.history.map(h => [h.op, h.status]),
        [['create', 'submitted']]
      )
      const g = state.item('goal')
      assert.equal(g?.description, 'ship it')
      assert.equal(g?.priority, 5)
      assert.deepEqual(g?.skills, ['ts'])
      assert.equal(g?.parent, undefined)
      assert.equal(state.liveItems, 2)
      assert.equal(state.opCount, 2)
    })

    it('a create of an id in use is refused as exists', () => {
      const s = new Script()
      const first = s.create(alice, 't1')
      const second = s.create(bob, 't1', { kind: 'task', path: 't1' })
      const state = fold([first, second])
      assert.equal(result(state, second), 'exists')
      assert.equal(state.item('t1')?.createdBy, alice)
    })

    it('a create of the id of a deleted item is refused as exists (ids stay taken)', () => {
      const s = new Script()
      const create = s.create(alice, 't1')
      const again = s.create(alice, 't1', { path: 't1' })
      const state = fold([create, s.op(alice, 'delete', 't1'), again])
      assert.equal(result(state, again), 'exists')
    })

    it('a create under a parent that does not exist is refused as unknown-parent', () => {
      const s = new Script()
      const orphan = s.create(alice, 't1', { parent: 'nowhere' })
      assert.equal(result(fold([orphan]), orphan), 'unknown-parent')
    })

    it('a create under a deleted parent is refused as unknown-parent', () => {
      const s = new Script()
      const goal = s.create(alice, 'goal')
      const del = s.op(alice, 'delete', 'goal')
      const child = s.create(alice, 't1', { parent: 'goal' })
      assert.equal(result(fold([goal, del, child]), child), 'unknown-parent')
    })

    it('a create with a dependency that does not exist, or is deleted, is refused as unknown-dependency', () => {
      const s = new Script()
      const a = s.create(alice, 'a')
      const del = s.op(alice, 'delete', 'a')
      const onMissing = s.create(alice, 't1', { deps: ['missing'] })
      const onDeleted = s.create(alice, 't2', { deps: ['a'] })
      const state = fold([a, del, onMissing, onDeleted])
      assert.equal(result(state, onMissing), 'unknown-dependency')
      assert.equal(result(state, onDeleted), 'unknown-dependency')
    })

    it('a create whose path is not the parent path and the id is refused as bad-scope', () => {
      const s = new Script()
      const goal = s.create(alice, 'goal')
      const sub = s.create(alice, 'sub', { parent: 'goal' })
      const wrong = s.create(alice, 't1', { parent: 'sub', path: 'x/sub/t1' })
      const rootWrong = s.create(alice, 't2', { path: 'goal/t2' })
      const state = fold([goal, sub, wrong, rootWrong])
      assert.equal(result(state, wrong), 'bad-scope')
      assert.equal(result(state, rootWrong), 'bad-scope')
      assert.equal(state.item('t1'), undefined)
    })

    it('a create below the eighth level is refused as too-deep', () => {
      const s = new Script()
      const ops = [s.create(alice, 'l1')]
      for (let level = 2; level <= 8; level++) ops.push(s.create(alice, `l${level}`, { parent: `l${level - 1}` }))
      const ninth = s.create(alice, 'l9', { parent: 'l8' })
      const state = fold([...ops, ninth])
      assert.equal(state.item('l8')?.path, 'l1/l2/l3/l4/l5/l6/l7/l8')
      assert.equal(result(state, ninth), 'too-deep')
    })

    it('a create with an assignee holds the item for it: only the assignee claims', () => {
      const s = new Script()
      const create = s.create(alice, 't1', { assignee: bob })
      const byCarol = s.op(carol, 'claim', 't1')
      const byBob = s.op(bob, 'claim', 't1')
      const state = fold([create, byCarol, byBob])
      assert.deepEqual(state.outcome(byCarol), { accepted: false, reason: 'already-claimed', winner: bob })
      assert.equal(result(state, byBob), 'applied')
      assert.equal(state.item('t1')?.status, 'working')
      assert.equal(state.item('t1')?.assignee, bob)
    })
  })

  describe('update, delete, assign, cancel', () => {
    it('an update changes title, description, priority and skills', () => {
      const s = new Script()
      const state = fold([
        s.create(alice, 't1'),
        s.op(alice, 'update', 't1', { title: 'new', description: 'd', priority: -3, skills: ['go', 'ts'] })
      ])
      const item = state.item('t1')
      assert.equal(item?.title, 'new')
      assert.equal(item?.description, 'd')
      assert.equal(item?.priority, -3)
      assert.deepEqual(item?.skills, ['go', 'ts'])
    })

    it('an update of a terminal item is refused as terminal', () => {
      const s = new Script()
      const ops = [s.create(alice, 't1'), s.op(alice, 'cancel', 't1')]
      const update = s.op(alice, 'update', 't1', { title: 'late' })
      const state = fold([...ops, update])
      assert.equal(result(state, update), 'terminal')
      assert.equal(state.item('t1')?.title, 'do t1')
    })

    it('a delete of a working item is refused as bad-transition', () => {
      const s = new Script()
      const ops = [s.create(alice, 't1'), s.op(bob, 'claim', 't1')]
      const del = s.op(alice, 'delete', 't1')
      const state = fold([...ops, del])
      assert.equal(result(state, del), 'bad-transition')
      assert.equal(state.item('t1')?.deleted, false)
    })

    it('a delete of a submitted or a terminal item leaves a tombstone, listed only when asked', () => {
      const s = new Script()
      const state = fold([
        s.create(alice, 'a'),
        s.create(alice, 'b'),
        s.create(alice, 'c'),
        s.op(alice, 'delete', 'a'),
        s.op(alice, 'cancel', 'b'),
        s.op(alice, 'delete', 'b')
      ])
      assert.equal(state.item('a')?.deleted, true)
      assert.equal(state.item('b')?.deleted, true)
      assert.equal(state.item('b')?.status, 'canceled')
      assert.deepEqual(
        [...state.items()].map(i => i.id),
        ['c']
      )
      assert.deepEqual([...state.items({ deleted: true })].map(i => i.id).sort(), ['a', 'b', 'c'])
      assert.equal(state.liveItems, 1)
    })

    it('anything on a deleted item is refused as deleted', () => {
      const s = new Script()
      const ops = [s.create(alice, 't1'), s.op(alice, 'delete', 't1')]
      const after = [
        s.op(bob, 'claim', 't1'),
        s.op(alice, 'update', 't1', { title: 'x' }),
        s.op(alice, 'delete', 't1'),
        s.op(alice, 'cancel', 't1')
      ]
      const state = fold([...ops, ...after])
      for (const op of after) assert.equal(result(state, op), 'deleted', op.body.op)
    })

    it('an assign sets the assignee; clearing it sends a held item back to submitted', () => {
      const s = new Script()
      const state = fold([s.create(alice, 't1'), s.op(alice, 'assign', 't1', { assignee: bob })])
      assert.equal(state.item('t1')?.assignee, bob)
      assert.equal(state.item('t1')?.status, 'submitted')
      state.add([
        s.op(bob, 'claim', 't1'),
        s.op(bob, 'progress', 't1', { percent: 10, status: 'input-required' }),
        s.op(alice, 'assign', 't1', { assignee: null })
      ])
      const item = state.item('t1')
      assert.equal(item?.status, 'submitted')
      assert.equal(item?.assignee, undefined)
      assert.equal(item?.progress, undefined)
    })

    it('an assign of another principal to a working item moves the work to it', () => {
      const s = new Script()
      const ops = [s.create(alice, 't1'), s.op(bob, 'claim', 't1'), s.op(alice, 'assign', 't1', { assignee: carol })]
      const bobsProgress = s.op(bob, 'progress', 't1', { percent: 1 })
      const state = fold([...ops, bobsProgress])
      assert.equal(state.item('t1')?.status, 'working')
      assert.equal(state.item('t1')?.assignee, carol)
      assert.equal(result(state, bobsProgress), 'not-assignee')
    })

    it('an assign of a terminal item is refused as terminal', () => {
      const s = new Script()
      const ops = [s.create(alice, 't1'), s.op(alice, 'cancel', 't1')]
      const assign = s.op(alice, 'assign', 't1', { assignee: bob })
      const state = fold([...ops, assign])
      assert.equal(result(state, assign), 'terminal')
    })

    it('a cancel of a non-terminal item (even a working one) cancels it; of a terminal one is refused as terminal', () => {
      const s = new Script()
      const ops = [s.create(alice, 't1'), s.op(bob, 'claim', 't1')]
      const cancel = s.op(alice, 'cancel', 't1', { reason: 'scope cut' })
      const again = s.op(alice, 'cancel', 't1')
      const state = fold([...ops, cancel, again])
      assert.equal(result(state, cancel), 'applied')
      assert.equal(state.item('t1')?.status, 'canceled')
      assert.equal(state.item('t1')?.history.at(-1)?.message, 'scope cut')
      assert.equal(result(state, again), 'terminal')
    })
  })

  describe('claim', () => {
    it('a claim of a ready submitted item makes it working, held by the claimer', () => {
      const s = new Script()
      const create = s.create(alice, 't1')
      const claim = s.op(bob, 'claim', 't1')
      const state = fold([create, claim])
      assert.deepEqual(state.outcome(claim), { accepted: true })
      assert.equal(state.item('t1')?.status, 'working')
      assert.equal(state.item('t1')?.assignee, bob)
    })

    it('a claim of a completed item is refused as terminal', () => {
      const s = new Script()
      const ops = [s.create(alice, 't1'), s.op(bob, 'claim', 't1'), s.op(bob, 'complete', 't1')]
      const late = s.op(carol, 'claim', 't1')
      const state = fold([...ops, late])
      assert.equal(result(state, late), 'terminal')
    })

    it('a claim of an item another principal holds is refused as already-claimed, naming the holder', () => {
      const s = new Script()
      const ops = [s.create(alice, 't1'), s.op(bob, 'claim', 't1')]
      const second = s.op(carol, 'claim', 't1')
      const state = fold([...ops, second])
      assert.deepEqual(state.outcome(second), { accepted: false, reason: 'already-claimed', winner: bob })
    })

    it('a claim of an item the claimer already works on is refused as bad-transition', () => {
      const s = new Script()
      const ops = [s.create(alice, 't1'), s.op(bob, 'claim', 't1')]
      const twice = s.op(bob, 'claim', 't1')
      const state = fold([...ops, twice])
      assert.equal(result(state, twice), 'bad-transition')
    })

    it('a claim of an item whose dependency is not completed is refused as not-ready', () => {
      const s = new Script()
      const ops = [s.create(alice, 't1'), s.create(alice, 't2', { deps: ['t1'] })]
      const claim = s.op(bob, 'claim', 't2')
      const state = fold([...ops, claim])
      assert.equal(result(state, claim), 'not-ready')
      assert.equal(state.item('t2')?.ready, false)
    })

    it('a claim of an item that does not exist is refused as unknown-item', () => {
      const s = new Script()
      const claim = s.op(bob, 'claim', 'ghost')
      assert.equal(result(fold([claim]), claim), 'unknown-item')
    })

    it('an operation naming another kind or path than its item has is refused as bad-scope', () => {
      const s = new Script()
      const create = s.create(alice, 't1', { kind: 'review' })
      const wrongKind = s.op(bob, 'claim', 't1', { kind: 'task' })
      const wrongPath = s.op(bob, 'claim', 't1', { path: 'goal/t1' })
      const state = fold([create, wrongKind, wrongPath])
      assert.equal(result(state, wrongKind), 'bad-scope')
      assert.equal(result(state, wrongPath), 'bad-scope')
      assert.equal(state.item('t1')?.status, 'submitted')
    })
  })

  describe('the assignee’s operations', () => {
    for (const action of ['release', 'progress', 'complete', 'fail', 'handoff'] as const) {
      const extra = (): Record<string, unknown> =>
        action === 'progress'
          ? { percent: 5 }
          : action === 'fail'
            ? { error: 'x' }
            : action === 'handoff'
              ? { to: carol }
              : {}

      it(`a ${action} by anyone but the assignee is refused as not-assignee`, () => {
        const s = new Script()
        const ops = [s.create(alice, 't1'), s.op(bob, 'claim', 't1')]
        const op = s.op(carol, action, 't1', extra() as never)
        const state = fold([...ops, op])
        assert.equal(result(state, op), 'not-assignee')
        assert.equal(state.item('t1')?.status, 'working')
      })

      it(`a ${action} of an item assigned but not claimed is refused as bad-transition`, () => {
        const s = new Script()
        const create = s.create(alice, 't1', { assignee: bob })
        const op = s.op(bob, action, 't1', extra() as never)
        const state = fold([create, op])
        assert.equal(result(state, op), 'bad-transition')
      })

      it(`a ${action} of a terminal item is refused as terminal`, () => {
        const s = new Script()
        const ops = [s.create(alice, 't1'), s.op(bob, 'claim', 't1'), s.op(bob, 'complete', 't1')]
        const op = s.op(bob, action, 't1', extra() as never)
        const state = fold([...ops, op])
        assert.equal(result(state, op), 'terminal')
      })
    }

    it('a release sends the item back to submitted, held by nobody', () => {
      const s = new Script()
      const state = fold([
        s.create(alice, 't1'),
        s.op(bob, 'claim', 't1'),
        s.op(bob, 'progress', 't1', { percent: 40 }),
        s.op(bob, 'release', 't1', { reason: 'blocked' })
      ])
      const item = state.item('t1')
      assert.equal(item?.status, 'submitted')
      assert.equal(item?.assignee, undefined)
      assert.equal(item?.progress, undefined)
      assert.equal(item?.history.at(-1)?.message, 'blocked')
      const carolClaims = s.op(carol, 'claim', 't1')
      state.add([carolClaims])
      assert.equal(result(state, carolClaims), 'applied')
    })

    it('a progress sets percent and message, and may move between working, input-required and auth-required', () => {
      const s = new Script()
      const state = fold([
        s.create(alice, 't1'),
        s.op(bob, 'claim', 't1'),
        s.op(bob, 'progress', 't1', { percent: 30, message: 'waiting for a key', status: 'auth-required' })
      ])
      assert.equal(state.item('t1')?.status, 'auth-required')
      assert.deepEqual(state.item('t1')?.progress, { percent: 30, message: 'waiting for a key' })
      state.add([s.op(bob, 'progress', 't1', { percent: 60, status: 'working' })])
      assert.equal(state.item('t1')?.status, 'working')
      assert.deepEqual(state.item('t1')?.progress, { percent: 60 })
      const done = s.op(bob, 'complete', 't1')
      state.add([s.op(bob, 'progress', 't1', { percent: 70, status: 'input-required' }), done])
      assert.equal(result(state, done), 'applied', 'complete from input-required')
    })

    it('a complete ends the item completed with its result and artifacts', () => {
      const s = new Script()
      const artifact = {
        cid: 'bafyreian345yhvarpflm7pbj2y7dxpdflwwj3qu65ez2tntyxqf5ud3n7e',
        name: 'report',
        mediaType: 'text/plain'
      }
      const state = fold([
        s.create(alice, 't1'),
        s.op(bob, 'claim', 't1'),
        s.op(bob, 'complete', 't1', { result: { passed: 12 }, artifacts: [artifact] })
      ])
      const item = state.item('t1')
      assert.equal(item?.status, 'completed')
      assert.deepEqual(item?.result, { passed: 12 })
      assert.deepEqual(item?.artifacts, [artifact])
      assert.equal(item?.assignee, bob)
    })

    it('a fail ends the item failed with its error, or rejected when the assignee declines it', () => {
      const s = new Script()
      const state = fold([
        s.create(alice, 't1'),
        s.create(alice, 't2'),
        s.op(bob, 'claim', 't1'),
        s.op(bob, 'claim', 't2'),
        s.op(bob, 'fail', 't1', { error: 'tests fail' }),
        s.op(bob, 'fail', 't2', { error: 'not doable', rejected: true })
      ])
      assert.equal(state.item('t1')?.status, 'failed')
      assert.equal(state.item('t1')?.error, 'tests fail')
      assert.equal(state.item('t2')?.status, 'rejected')
    })

    it('a handoff gives the item to another principal with the state so far; the old assignee may no longer act', () => {
      const s = new Script()
      const state = fold([
        s.create(alice, 't1'),
        s.op(bob, 'claim', 't1'),
        s.op(bob, 'progress', 't1', { percent: 50, status: 'input-required' }),
        s.op(bob, 'handoff', 't1', { to: carol, state: { step: 3 } })
      ])
      const bobLate = s.op(bob, 'progress', 't1', { percent: 90 })
      const carolDone = s.op(carol, 'complete', 't1')
      const item = state.item('t1')
      assert.equal(item?.assignee, carol)
      assert.equal(item?.status, 'working')
      assert.deepEqual(item?.handoff, { from: bob, state: { step: 3 } })
      state.add([bobLate, carolDone])
      assert.equal(result(state, bobLate), 'not-assignee')
      assert.equal(result(state, carolDone), 'applied')
    })
  })

  describe('arrival out of order', () => {
    it('the lost claim: a claim at t2 applied, then a claim at t1 arrives — the first is refused naming the winner, both reported', () => {
      const s = new Script()
      const create = s.create(alice, 't1', {}, [1, 0])
      const byAlice = s.op(alice, 'claim', 't1', undefined, [20, 0])
      const byBob = s.op(bob, 'claim', 't1', undefined, [10, 0])
      const state = new BoardState('b')
      state.add([create])
      assert.deepEqual(state.add([byAlice]), [
        { type: 'applied', board: 'b', item: 't1', stamp: stampOf(byAlice), op: 'claim', status: 'working' }
      ])
      const changes = state.add([byBob])
      assert.deepEqual(changes, [
        { type: 'applied', board: 'b', item: 't1', stamp: stampOf(byBob), op: 'claim', status: 'working' },
        {
          type: 'refused',
          board: 'b',
          item: 't1',
          stamp: stampOf(byAlice),
          op: 'claim',
          reason: 'already-claimed',
          winner: bob
        }
      ])
      assert.equal(state.item('t1')?.assignee, bob)
      assert.deepEqual(state.outcome(byAlice), { accepted: false, reason: 'already-claimed', winner: bob })
    })

    it('at one HLC, the claim of the lesser principal wins', () => {
      const s = new Script()
      const create = s.create(alice, 't1', {}, [1, 0])
      const [low, high] = [alice, bob].sort()
      const first = s.op(high, 'claim', 't1', undefined, [5, 0])
      const second = s.op(low, 'claim', 't1', undefined, [5, 0])
      const state = fold([create, first, second])
      assert.equal(state.item('t1')?.assignee, low)
      assert.equal(result(state, first), 'already-claimed')
    })

    it('a claim before its dependency’s completion is refused as not-ready even when it arrives after it', () => {
      const s = new Script()
      const dep = s.create(alice, 'dep', {}, [1, 0])
      const t = s.create(alice, 't', { deps: ['dep'] }, [2, 0])
      const depClaim = s.op(bob, 'claim', 'dep', undefined, [3, 0])
      const early = s.op(carol, 'claim', 't', undefined, [4, 0])
      const depDone = s.op(bob, 'complete', 'dep', undefined, [5, 0])
      const later = s.op(carol, 'claim', 't', undefined, [6, 0])
      const state = fold([dep, t, depClaim, depDone])
      assert.equal(state.item('t')?.ready, true)
      state.add([early])
      assert.equal(result(state, early), 'not-ready')
      assert.equal(state.item('t')?.status, 'submitted')
      state.add([later])
      assert.equal(result(state, later), 'applied')
    })

    it('a completion that arrives late, but sorts before a refused claim, makes that claim applied', () => {
      const s = new Script()
      const dep = s.create(alice, 'dep', {}, [1, 0])
      const t = s.create(alice, 't', { deps: ['dep'] }, [2, 0])
      const depClaim = s.op(bob, 'claim', 'dep', undefined, [3, 0])
      const depDone = s.op(bob, 'complete', 'dep', undefined, [4, 0])
      const claim = s.op(carol, 'claim', 't', undefined, [5, 0])
      const state = fold([dep, t, depClaim, claim])
      assert.equal(result(state, claim), 'not-ready')
      const changes = state.add([depDone])
      assert.deepEqual(
        changes.map(c => [c.item, c.op, c.type]),
        [
          ['dep', 'complete', 'applied'],
          ['t', 'claim', 'applied']
        ]
      )
      assert.equal(state.item('t')?.assignee, carol)
    })

    it('a parent created late brings its children and grandchildren into being, in fold order', () => {
      const s = new Script()
      const goal = s.create(alice, 'goal', {}, [1, 0])
      const task = s.create(alice, 'task', { parent: 'goal' }, [2, 0])
      const sub = s.create(alice, 'sub', { parent: 'task' }, [3, 0])
      const dependent = s.create(alice, 'after', { deps: ['sub'] }, [4, 0])
      const state = fold([dependent, sub, task])
      assert.equal(state.liveItems, 0)
      assert.deepEqual(
        [dependent, sub, task].map(op => result(state, op)),
        ['unknown-dependency', 'unknown-parent', 'unknown-parent']
      )
      const changes = state.add([goal])
      assert.deepEqual(
        changes.map(c => [c.item, c.type]),
        [
          ['goal', 'applied'],
          ['task', 'applied'],
          ['sub', 'applied'],
          ['after', 'applied']
        ]
      )
      assert.equal(state.item('sub')?.path, 'goal/task/sub')
    })

    it('a late delete of a parent refuses a child created after it, and what depends on that child', () => {
      const s = new Script()
      const goal = s.create(alice, 'goal', {}, [1, 0])
      const del = s.op(alice, 'delete', 'goal', undefined, [2, 0])
      const child = s.create(alice, 'child', { parent: 'goal' }, [3, 0])
      const dependent = s.create(alice, 'dependent', { deps: ['child'] }, [4, 0])
      const claim = s.op(bob, 'claim', 'dependent', undefined, [5, 0])
      const state = fold([goal, child, dependent, claim])
      assert.equal(result(state, claim), 'not-ready')
      const changes = state.add([del])
      assert.deepEqual(
        changes.map(c => [c.item, c.op, c.type === 'refused' ? c.reason : c.type]),
        [
          ['goal', 'delete', 'applied'],
          ['child', 'create', 'unknown-parent'],
          ['dependent', 'create', 'unknown-dependency'],
          ['dependent', 'claim', 'unknown-item']
        ]
      )
      assert.equal(state.item('child'), undefined)
      assert.equal(state.item('dependent'), undefined)
      assert.deepEqual(
        [...state.sortedItems()].map(i => i.id),
        ['goal']
      )
    })

    it('duplicates are ignored, and an arrival that changes nothing reports nothing', () => {
      const s = new Script()
      const create = s.create(alice, 't1')
      const claim = s.op(bob, 'claim', 't1')
      const state = new BoardState('b')
      assert.equal(state.add([create, claim, create]).length, 2)
      assert.deepEqual(state.add([claim, create]), [])
      assert.equal(state.opCount, 2)
      // an update arriving early changes no outcome but its own
      const update = s.op(alice, 'update', 't1', { title: 'early' }, [15, 0])
      assert.deepEqual(
        state.add([update]).map(c => c.op),
        ['update']
      )
    })
    it('an event of many operations at one HLC is deduplicated and looked up operation by operation', () => {
      const event: StampedOp[] = Array.from({ length: 40 }, (_, index) => ({
        hlc: [7, 3] as const,
        actor: alice,
        index,
        body: { op: 'create', item: `t${index}`, kind: 'task', path: `t${index}`, title: 't' }
      }))
      const state = new BoardState('b')
      assert.equal(state.add(event.slice(0, 10)).length, 10)
      assert.equal(state.add(event).length, 30)
      assert.deepEqual(state.add(event), [])
      assert.equal(state.opCount, 40)
      for (const op of event) assert.deepEqual(state.outcome(op), { accepted: true })
      assert.equal(state.outcome({ hlc: [7, 3], actor: alice, index: 40 }), undefined)
      assert.equal(state.outcome({ hlc: [7, 4], actor: alice, index: 0 }), undefined)
      assert.equal(state.outcome({ hlc: [7, 3], actor: bob, index: 0 }), undefined)
    })
  })

  describe('queries', () => {
    it('check throws the named error of the refusal the fold would record now', () => {
      const s = new Script()
      const state = fold([
        s.create(alice, 'dep'),
        s.create(alice, 't1', { deps: ['dep'] }),
        s.create(alice, 't2'),
        s.op(bob, 'claim', 't2')
      ])
      const scope = (item: string): { item: string; kind: string; path: string } => ({ item, kind: 'task', path: item })
      const throwsNamed = (op: WorkOp, actor: PrincipalId, name: string): Error => {
        let caught: Error | undefined
        try {
          state.check(op, actor)
        } catch (err) {
          caught = err as Error
        }
        assert.equal(caught?.name, name, `${op.op} ${op.item}`)
        return caught as Error
      }
      throwsNamed({ op: 'claim', ...scope('t1') }, carol, 'ItemNotReadyError')
      const claimed = throwsNamed({ op: 'claim', ...scope('t2') }, carol, 'ItemAlreadyClaimedError') as Error & {
        holder: PrincipalId
      }
      assert.equal(claimed.holder, bob)
      throwsNamed({ op: 'claim', ...scope('t9') }, carol, 'ItemNotFoundError')
      throwsNamed({ op: 'create', title: 'x', ...scope('t2') }, alice, 'ItemExistsError')
      throwsNamed(
        { op: 'create', title: 'x', parent: 'zz', ...scope('t3'), path: 'zz/t3' },
        alice,
        'UnknownParentError'
      )
      throwsNamed({ op: 'create', title: 'x', deps: ['zz'], ...scope('t3') }, alice, 'UnknownDependencyError')
      throwsNamed({ op: 'complete', ...scope('t2') }, carol, 'NotAssigneeError')
      const transition = throwsNamed({ op: 'release', ...scope('t1') }, carol, 'NotAssigneeError')
      assert.ok(transition)
      const bad = throwsNamed({ op: 'delete', ...scope('t2') }, alice, 'InvalidTransitionError') as Error & {
        from: string
      }
      assert.equal(bad.from, 'working')
      throwsNamed({ op: 'claim', item: 't1', kind: 'review', path: 't1' }, carol, 'ScopeMismatchError')
      state.add([s.op(alice, 'cancel', 't1'), s.op(alice, 'delete', 'dep')])
      throwsNamed({ op: 'claim', ...scope('t1') }, carol, 'ItemTerminalError')
      throwsNamed({ op: 'claim', ...scope('dep') }, carol, 'ItemDeletedError')
      assert.doesNotThrow(() => state.check({ op: 'complete', ...scope('t2') }, bob))
      assert.doesNotThrow(() => state.check({ op: 'create', title: 'x', ...scope('t3') }, alice))
      // check changes nothing
      assert.equal(state.item('t2')?.status, 'working')
    })

    it('sortedItems lists items in id order after a given id, deleted ones included', () => {
      const s = new Script()
      const state = fold(['c', 'a', 'e', 'b', 'd'].map(id => s.create(alice, id)))
      state.add([s.op(alice, 'delete', 'd')])
      assert.deepEqual(
        [...state.sortedItems()].map(i => i.id),
        ['a', 'b', 'c', 'd', 'e']
      )
      assert.deepEqual(
        [...state.sortedItems('b')].map(i => i.id),
        ['c', 'd', 'e']
      )
      assert.deepEqual(
        [...state.sortedItems('bb')].map(i => i.id),
        ['c', 'd', 'e']
      )
      assert.deepEqual(
        [...state.sortedItems('e')].map(i => i.id),
        []
      )
      state.add([s.create(alice, 'aa')])
      assert.deepEqual([...state.sortedItems('a')].map(i => i.id).slice(0, 2), ['aa', 'b'])
    })

    it(`history keeps the first accepted operation and the last ${HISTORY_TAIL}, refusals left out`, () => {
      const s = new Script()
      const ops = [s.create(alice, 't1'), s.op(bob, 'claim', 't1'), s.op(carol, 'claim', 't1')]
      for (let i = 0; i < 300; i++) ops.push(s.op(bob, 'progress', 't1', { percent: i % 101, message: `step ${i}` }))
      const state = new BoardState('b')
      state.add(ops)
      const history = state.item('t1')?.history ?? []
      assert.equal(history.length, HISTORY_TAIL + 1)
      assert.equal(history[0].op, 'create')
      assert.equal(history[1].message, `step ${300 - HISTORY_TAIL}`)
      assert.equal(history.at(-1)?.message, 'step 299')
      assert.equal(history.at(-1)?.assignee, bob)
      assert.ok(history.every(h => h.actor !== carol))
    })

    it('an item handed out is a copy: changing it changes nothing in the fold', () => {
      const s = new Script()
      const state = fold([s.create(alice, 't1', { skills: ['ts'] })])
      const item = state.item('t1')
      item?.skills.push('go')
      item?.history.pop()
      assert.deepEqual(state.item('t1')?.skills, ['ts'])
      assert.equal(state.item('t1')?.history.length, 1)
    })
  })

  it('folds 10,000 items with their claims and completions', () => {
    const state = new BoardState('big')
    const actors = [alice, bob, carol]
    const ops: StampedOp[] = []
    let wall = 1
    const scope = (item: string): { item: string; kind: string; path: string } => ({
      item,
      kind: 'task',
      path: `goal/${item}`
    })
    ops.push({
      hlc: [wall++, 0],
      actor: alice,
      index: 0,
      body: { op: 'create', item: 'goal', kind: 'goal', path: 'goal', title: 'g' }
    })
    for (let i = 0; i < 10_000; i++) {
      const item = `t${i}`
      const deps = i > 0 && i % 10 !== 0 ? [`t${i - 1}`] : []
      ops.push({
        hlc: [wall, 0],
        actor: alice,
        index: i % 100,
        body: { op: 'create', ...scope(item), parent: 'goal', title: item, deps }
      })
      if (i % 100 === 99) wall++
    }
    wall++
    for (let i = 0; i < 10_000; i++) {
      const actor = actors[i % 3]
      ops.push({ hlc: [wall++, 0], actor, index: 0, body: { op: 'claim', ...scope(`t${i}`) } })
      ops.push({ hlc: [wall++, 0], actor, index: 0, body: { op: 'complete', ...scope(`t${i}`) } })
    }
    // arrivals in chunks, every fifth chunk held back and delivered at the end
    const held: StampedOp[] = []
    let changes = 0
    for (let at = 0; at < ops.length; at += 500) {
      const chunk = ops.slice(at, at + 500)
      if ((at / 500) % 5 === 4) held.push(...chunk)
      else changes += state.add(chunk).length
    }
    changes += state.add(held).length
    assert.equal(state.opCount, ops.length)
    assert.equal(state.liveItems, 10_001)
    assert.ok(changes >= ops.length)
    let completed = 0
    for (const item of state.items()) if (item.status === 'completed') completed++
    assert.equal(completed, 10_000)
    assert.equal(state.item('t9999')?.path, 'goal/t9999')
  })
})

function stampOf(op: StampedOp): { hlc: HlcTimestamp; actor: PrincipalId; index: number } {
  return { hlc: op.hlc, actor: op.actor, index: op.index }
}
