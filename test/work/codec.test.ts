/**
 * The work protocol's operations at the codec: the exact bytes of the README's example, every field's
 * limit at and past its edge, malformed values of every shape, names of boards and documents, and
 * the authority tags operations need.
 */
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import {
  boardDocumentName,
  boardOfDocument,
  decodeWorkOp,
  encodeWorkOp,
  MAX_ARTIFACTS,
  MAX_DEPS,
  MAX_DESCRIPTION_LENGTH,
  MAX_MESSAGE_LENGTH,
  MAX_REASON_LENGTH,
  MAX_SKILLS,
  MAX_TITLE_LENGTH,
  MAX_VALUE_BYTES,
  MAX_VALUE_DEPTH
} from '../../protocols/work/codec.ts'
import { principalId } from '../../src/crypto/principal.ts'
import { tagImplies } from '../../src/spki/tag.ts'
import { opTag, swarmTag, workTag } from '../../src/work/tags.ts'
import { tag, toTagText } from '../spki/fixtures.ts'
import type { WorkOp } from '../../src/work/types.ts'

const alice = principalId(new Uint8Array(32).fill(1))
const CID_TEXT = 'bafyreian345yhvarpflm7pbj2y7dxpdflwwj3qu65ez2tntyxqf5ud3n7e'
const scope = { item: 't1', kind: 'task', path: 'goal/t1' }

/** Throws InvalidWorkOpError naming `field`. */
function refused(value: unknown, field: string): void {
  assert.throws(
    () => decodeWorkOp(value),
    (err: Error & { field?: string }) => err.name === 'InvalidWorkOpError' && err.field === field,
    `expected a refusal naming ${field}`
  )
}

/** A value through dag-cbor bytes, as a replica receives it. */
const wire = (op: unknown): unknown => dagCbor.decode(dagCbor.encode(op))

const nested = (depth: number): unknown => {
  let v: unknown = 1
  for (let i = 0; i < depth; i++) v = [v]
  return v
}

describe('work protocol codec', () => {
  it('fixes the bytes of the README example', async () => {
    const op = encodeWorkOp({
      op: 'create',
      item: 't1',
      kind: 'task',
      path: 'goal/t1',
      parent: 'goal',
      title: 'write the tests',
      deps: ['t0'],
      skills: ['typescript'],
      priority: 2
    })
    const bytes = dagCbor.encode(op)
    assert.equal(bytes.length, 114)
    const cid = CID.createV1(dagCbor.code, await sha256.digest(bytes))
    assert.equal(cid.toString(), 'bafyreidjl336ad7kddhhetkge2oehnmohh5rjn3r4enkvby5s54rmriukm')
  })

  it('accepts every operation with only its required fields, and with all of them, through dag-cbor', () => {
    const ops: WorkOp[] = [
      { op: 'create', ...scope, parent: 'goal', title: 't' },
      {
        op: 'create',
        ...scope,
        parent: 'goal',
        title: 'x'.repeat(MAX_TITLE_LENGTH),
        description: 'd'.repeat(MAX_DESCRIPTION_LENGTH),
        skills: Array.from({ length: MAX_SKILLS }, (_, i) => `s${i}`.padEnd(64, 'x')),
        deps: Array.from({ length: MAX_DEPS }, (_, i) => `d${i}`),
        priority: -1000,
        assignee: alice
      },
      { op: 'update', ...scope, title: 'new' },
      { op: 'update', ...scope, title: 'n', description: '', priority: 1000, skills: [] },
      { op: 'delete', ...scope },
      { op: 'assign', ...scope, assignee: alice },
      { op: 'assign', ...scope, assignee: null },
      { op: 'claim', ...scope },
      { op: 'release', ...scope },
      { op: 'release', ...scope, reason: 'r'.repeat(MAX_REASON_LENGTH) },
      { op: 'progress', ...scope, percent: 0 },
      { op: 'progress', ...scope, percent: 33.5, message: 'm'.repeat(MAX_MESSAGE_LENGTH), status: 'auth-required' },
      { op: 'complete', ...scope },
      {
        op: 'complete',
        ...scope,
        result: { passed: 12, log: new Uint8Array(3), link: CID.parse(CID_TEXT), deep: nested(MAX_VALUE_DEPTH - 1) },
        artifacts: Array.from({ length: MAX_ARTIFACTS }, (_, i) => ({
          cid: CID_TEXT,
          name: `a${i}`,
          mediaType: 'text/plain'
        }))
      },
      { op: 'fail', ...scope, error: 'e' },
      { op: 'fail', ...scope, error: 'e', rejected: true },
      { op: 'cancel', ...scope, reason: '' },
      { op: 'handoff', ...scope, to: alice },
      { op: 'handoff', ...scope, to: alice, state: { step: 3, notes: ['a'] } },
      { op: 'claim', item: 'g', kind: 'goal', path: 'g' },
      { op: 'create', item: 'g', kind: 'goal', path: 'g', title: 'root' }
    ]
    for (const op of ops) assert.deepEqual(decodeWorkOp(wire(op)), op, op.op)
  })

  it('refuses what is not an operation map', () => {
    for (const value of [null, undefined, 1, 'claim', [], new Uint8Array(2), CID.parse(CID_TEXT)]) refused(value, 'op')
    refused({ ...scope, op: 'steal' }, 'op')
    refused({ ...scope, op: 'toString' }, 'op')
    refused({ ...scope }, 'op')
  })

  it('refuses unknown and missing fields, naming them', () => {
    refused({ op: 'claim', ...scope, extra: 1 }, 'extra')
    refused({ op: 'claim', ...scope, title: 'x' }, 'title')
    refused({ op: 'claim', item: 't1', kind: 'task' }, 'path')
    refused({ op: 'claim', item: 't1', path: 't1' }, 'kind')
    refused({ op: 'create', ...scope, parent: 'goal' }, 'title')
    refused({ op: 'assign', ...scope }, 'assignee')
    refused({ op: 'progress', ...scope }, 'percent')
    refused({ op: 'fail', ...scope }, 'error')
    refused({ op: 'handoff', ...scope }, 'to')
    refused({ op: 'update', ...scope }, 'update')
    refused({ op: 'release', ...scope, reason: undefined }, 'reason')
  })

  it('refuses ids, kinds and paths that break their patterns', () => {
    refused({ op: 'claim', ...scope, item: '' }, 'item')
    refused({ op: 'claim', ...scope, item: '-t1', path: '-t1' }, 'item')
    refused({ op: 'claim', ...scope, item: 'a/b' }, 'item')
    refused({ op: 'claim', ...scope, item: 'x'.repeat(65) }, 'item')
    refused({ op: 'claim', ...scope, kind: 'a kind' }, 'kind')
    refused({ op: 'claim', ...scope, kind: 7 }, 'kind')
    refused({ op: 'claim', ...scope, path: 'goal/t2' }, 'path')
    refused({ op: 'claim', ...scope, path: 'goal//t1' }, 'path')
    refused({ op: 'claim', ...scope, path: '/t1' }, 'path')
    refused({ op: 'claim', ...scope, path: 'a/b/c/d/e/f/g/h/t1' }, 'path')
    assert.ok(decodeWorkOp({ op: 'claim', ...scope, path: 'a/b/c/d/e/f/g/t1' }))
    // a create's path is its parent's path and its id; a root's is its id
    refused({ op: 'create', ...scope, title: 't', parent: 'other' }, 'path')
    refused({ op: 'create', ...scope, title: 't' }, 'path')
    refused({ op: 'create', item: 't1', kind: 'task', path: 't1', title: 't', parent: 't0' }, 'path')
    refused({ op: 'create', ...scope, title: 't', parent: 'go al' }, 'parent')
  })

  it('refuses text past its limit, empty where required, or not well-formed', () => {
    const create = { op: 'create', ...scope, parent: 'goal', title: 't' }
    refused({ ...create, title: 'x'.repeat(MAX_TITLE_LENGTH + 1) }, 'title')
    refused({ ...create, title: '' }, 'title')
    refused({ ...create, title: 5 }, 'title')
    refused({ ...create, title: 'bad \ud800 surrogate' }, 'title')
    // characters, not UTF-16 units: 200 astral characters fit
    assert.ok(decodeWorkOp({ ...create, title: '😀'.repeat(MAX_TITLE_LENGTH) }))
    refused({ ...create, description: 'd'.repeat(MAX_DESCRIPTION_LENGTH + 1) }, 'description')
    refused({ op: 'progress', ...scope, percent: 1, message: 'm'.repeat(MAX_MESSAGE_LENGTH + 1) }, 'message')
    refused({ op: 'release', ...scope, reason: 'r'.repeat(MAX_REASON_LENGTH + 1) }, 'reason')
    refused({ op: 'cancel', ...scope, reason: 'r'.repeat(MAX_REASON_LENGTH + 1) }, 'reason')
    refused({ op: 'fail', ...scope, error: 'e'.repeat(MAX_REASON_LENGTH + 1) }, 'error')
    refused({ op: 'fail', ...scope, error: '' }, 'error')
  })

  it('refuses skills, dependencies and priorities past their limits', () => {
    const create = { op: 'create', ...scope, parent: 'goal', title: 't' }
    refused({ ...create, skills: Array.from({ length: MAX_SKILLS + 1 }, (_, i) => `s${i}`) }, 'skills')
    refused({ ...create, skills: ['x'.repeat(65)] }, 'skills[0]')
    refused({ ...create, skills: [''] }, 'skills[0]')
    // a skill is what the swarm offers and a tag names: no spaces, no parentheses
    refused({ ...create, skills: ['code review'] }, 'skills[0]')
    refused({ ...create, skills: ['ts', '(x)'] }, 'skills[1]')
    refused({ ...create, skills: ['ts', 'ts'] }, 'skills')
    refused({ ...create, skills: 'ts' }, 'skills')
    refused({ ...create, deps: Array.from({ length: MAX_DEPS + 1 }, (_, i) => `d${i}`) }, 'deps')
    refused({ ...create, deps: ['t0', 't0'] }, 'deps')
    refused({ ...create, deps: ['ok', 'not ok'] }, 'deps[1]')
    refused({ ...create, priority: 1001 }, 'priority')
    refused({ ...create, priority: -1001 }, 'priority')
    refused({ ...create, priority: 1.5 }, 'priority')
    refused({ op: 'update', ...scope, priority: '1' }, 'priority')
  })

  it('refuses principals that are no Ed25519 principal ids', () => {
    refused({ op: 'assign', ...scope, assignee: 'alice' }, 'assignee')
    refused({ op: 'assign', ...scope, assignee: `${alice}x` }, 'assignee')
    refused({ op: 'assign', ...scope, assignee: alice.replace('z', 'Z') }, 'assignee')
    refused({ op: 'handoff', ...scope, to: 'z' + '1'.repeat(47) }, 'to')
    refused({ op: 'create', ...scope, parent: 'goal', title: 't', assignee: null }, 'assignee')
  })

  it('refuses progress, status and flags out of range', () => {
    refused({ op: 'progress', ...scope, percent: 101 }, 'percent')
    refused({ op: 'progress', ...scope, percent: -1 }, 'percent')
    refused({ op: 'progress', ...scope, percent: Number.NaN }, 'percent')
    refused({ op: 'progress', ...scope, percent: '50' }, 'percent')
    refused({ op: 'progress', ...scope, percent: 5, status: 'completed' }, 'status')
    refused({ op: 'fail', ...scope, error: 'e', rejected: 1 }, 'rejected')
  })

  it('refuses artifacts past their limits or with a CID that does not parse as it prints', () => {
    const artifact = { cid: CID_TEXT, name: 'report', mediaType: 'text/plain' }
    const complete = (artifacts: unknown): unknown => ({ op: 'complete', ...scope, artifacts })
    refused(complete(Array.from({ length: MAX_ARTIFACTS + 1 }, () => artifact)), 'artifacts')
    refused(complete([{ ...artifact, cid: 'not a cid' }]), 'artifacts[0].cid')
    refused(complete([{ ...artifact, cid: CID_TEXT.toUpperCase() }]), 'artifacts[0].cid')
    refused(complete([{ ...artifact, cid: CID.parse(CID_TEXT) }]), 'artifacts[0].cid')
    refused(complete([{ ...artifact, name: 'n'.repeat(201) }]), 'artifacts[0].name')
    refused(complete([{ ...artifact, name: '' }]), 'artifacts[0].name')
    refused(complete([{ ...artifact, mediaType: 'm'.repeat(101) }]), 'artifacts[0].mediaType')
    refused(complete([{ ...artifact, size: 3 }]), 'artifacts[0]')
    refused(complete([artifact, 'x']), 'artifacts[1]')
    // a CIDv0 prints as itself
    assert.ok(decodeWorkOp(complete([{ ...artifact, cid: 'QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n' }])))
  })

  it('refuses a result or a state larger than 64 KiB or nested deeper than 16', () => {
    refused({ op: 'complete', ...scope, result: nested(MAX_VALUE_DEPTH + 1) }, 'result')
    refused({ op: 'complete', ...scope, result: new Uint8Array(MAX_VALUE_BYTES) }, 'result')
    assert.ok(decodeWorkOp({ op: 'complete', ...scope, result: new Uint8Array(MAX_VALUE_BYTES - 4) }))
    refused({ op: 'handoff', ...scope, to: alice, state: { big: 'x'.repeat(MAX_VALUE_BYTES) } }, 'state')
    refused({ op: 'handoff', ...scope, to: alice, state: nested(MAX_VALUE_DEPTH + 1) }, 'state')
    refused({ op: 'handoff', ...scope, to: alice, state: { f: () => 1 } }, 'state')
    refused({ op: 'complete', ...scope, result: Array.from({ length: MAX_VALUE_BYTES + 1 }, () => null) }, 'result')
  })

  it('encodeWorkOp strips undefined fields and checks the rest', () => {
    const op = encodeWorkOp({
      op: 'release',
      ...scope,
      reason: undefined
    } as WorkOp)
    assert.deepEqual(Object.keys(op).sort(), ['item', 'kind', 'op', 'path'])
    const done = encodeWorkOp({
      op: 'complete',
      ...scope,
      artifacts: [{ cid: CID_TEXT, name: 'a', mediaType: 'text/plain', extra: undefined } as never]
    })
    assert.deepEqual(done, {
      op: 'complete',
      ...scope,
      artifacts: [{ cid: CID_TEXT, name: 'a', mediaType: 'text/plain' }]
    })
    assert.throws(() => encodeWorkOp({ op: 'claim', ...scope, item: 'bad id' }), { name: 'InvalidWorkOpError' })
  })

  it('names board documents work.<board>, and knows which documents are boards', () => {
    assert.equal(boardDocumentName('release-1.0'), 'work.release-1.0')
    assert.equal(boardOfDocument('work.release-1.0'), 'release-1.0')
    for (const name of ['work.', 'work.Upper', 'works.x', 'registry', 'work.a/b', `work.${'x'.repeat(65)}`])
      assert.equal(boardOfDocument(name), undefined, name)
    for (const board of ['', 'Release', '-x', 'a b', 'x'.repeat(65)])
      assert.throws(() => boardDocumentName(board), { name: 'InvalidBoardNameError' })
  })
})

describe('work and swarm tags', () => {
  it('builds (cyberspace (work <board> <action> <kind> <path>)) and the tag an operation needs', () => {
    assert.equal(
      toTagText(workTag('release', 'claim', 'task', 'goal/t1')),
      '(cyberspace (work release claim task goal/t1))'
    )
    assert.equal(toTagText(workTag('release', 'read')), '(cyberspace (work release read))')
    assert.equal(toTagText(workTag('release')), '(cyberspace (work release))')
    assert.equal(toTagText(workTag('release', 'read', undefined, 'goal')), '(cyberspace (work release read (*) goal))')
    assert.equal(
      toTagText(opTag('release', { op: 'complete', ...scope })),
      '(cyberspace (work release complete task goal/t1))'
    )
    assert.equal(toTagText(swarmTag('state-delta', 'repo-x')), '(cyberspace (swarm state-delta repo-x))')
    assert.throws(() => workTag('Bad Board', 'read'), { name: 'InvalidBoardNameError' })
    assert.throws(() => swarmTag('gossip' as never, 'x'), TypeError)
  })

  it('attenuates: a coordinator holds everything, an implementer its actions on tasks, a validator reading', () => {
    const coordinator = tag('(cyberspace (work release))')
    const implementer = tag(
      '(cyberspace (work release (* set claim release progress complete fail handoff read) task))'
    )
    const validator = tag('(cyberspace (work release read))')
    const underGoal = tag('(cyberspace (work release (* set claim complete) (*) (* prefix goal/)))')
    const claim = opTag('release', { op: 'claim', ...scope })
    const create = opTag('release', { op: 'create', ...scope, parent: 'goal', title: 't' })
    const readIt = workTag('release', 'read', 'task', 'goal/t1')
    assert.ok(tagImplies(coordinator, claim) && tagImplies(coordinator, create))
    assert.ok(tagImplies(implementer, claim) && tagImplies(implementer, readIt))
    assert.ok(!tagImplies(implementer, create))
    assert.ok(!tagImplies(implementer, opTag('release', { op: 'claim', item: 'g', kind: 'goal', path: 'g' })))
    assert.ok(tagImplies(validator, readIt))
    assert.ok(!tagImplies(validator, claim))
    assert.ok(tagImplies(underGoal, claim))
    assert.ok(!tagImplies(underGoal, opTag('release', { op: 'claim', item: 't1', kind: 'task', path: 'other/t1' })))
    assert.ok(!tagImplies(coordinator, opTag('other', { op: 'claim', ...scope })))
  })
})
