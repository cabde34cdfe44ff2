import { strict as assert } from 'node:assert'
import { removeDir, spawnNode, stopNodes, tempDir } from '../helpers/processes.ts'
import type { NodeProcess } from '../helpers/processes.ts'
import type { DocumentView } from '../../node/api/state-routes.ts'

const WRITERS = 4
const ROUNDS = 3
const WRITES_PER_ROUND = 80

/**
 * A node process writing a document through its control API is killed with SIGKILL while writes
 * are in flight, three times over. Each restart must find every acknowledged write, nothing that was
 * never sent, each event once; and after a clean stop, replay must give exactly the live state.
 */
describe('a node killed while writing', function () {
  this.timeout(180_000)
  let dataDir: string
  let node: NodeProcess | undefined

  before(async () => {
    dataDir = await tempDir()
  })
  after(async () => {
    await stopNodes(node == null ? [] : [node])
    await removeDir(dataDir)
  })

  it('restarts with a consistent log every time; replay after a clean stop equals the live state', async () => {
    const sent = new Set<number>()
    const acked = new Set<number>()
    let next = 0

    const check = async (n: NodeProcess): Promise<DocumentView> => {
      // no type given: the node reopened the document from its own record
      const view = await n.api.get<DocumentView>('state/get', { name: 'journal' })
      const value = view.value as Record<string, number>
      for (const i of acked) assert.equal(value[`w${i}`], i, `acknowledged write ${i} is lost`)
      for (const [key, v] of Object.entries(value)) {
        assert.ok(sent.has(Number(key.slice(1))), `${key} was never written`)
        assert.equal(v, Number(key.slice(1)))
      }
      // one event per write, each applied once
      assert.equal(view.events, Object.keys(value).length)
      assert.ok(view.heads.length >= 1)
      return view
    }

    let killedInFlight = 0
    for (let round = 0; round < ROUNDS; round++) {
      const n = (node = await spawnNode({ dataDir }))
      if (round > 0) await check(n)
      const target = acked.size + WRITES_PER_ROUND
      let inFlight = 0
      let killed = false
      const writer = async (): Promise<void> => {
        while (!killed) {
          const i = next++
          sent.add(i)
          inFlight++
          try {
            await n.api.post('state/update', {
              name: 'journal',
              type: 'or-map',
              op: 'set',
              path: [`w${i}`],
              value: i
            })
            acked.add(i)
          } catch (err) {
            if (!killed) throw err
            return // killed: this write may or may not have reached the disk
          } finally {
            inFlight--
          }
          if (acked.size >= target && !killed) {
            killed = true
            killedInFlight += inFlight
            n.proc.kill('SIGKILL')
          }
        }
      }
      await Promise.all(Array.from({ length: WRITERS }, writer))
      await new Promise(resolve => {
        if (n.proc.exitCode != null || n.proc.signalCode != null) resolve(undefined)
        else n.proc.once('exit', resolve)
      })
      assert.equal(n.proc.signalCode, 'SIGKILL')
    }
    assert.ok(killedInFlight > 0, 'each kill should have come with writes in flight')

    const n = (node = await spawnNode({ dataDir }))
    await check(n)
    // the restarted log goes on: a write after the crashes, then a clean stop and a replay
    await n.api.post('state/update', { name: 'journal', op: 'set', path: ['after'], value: 'crashes' })
    const live = await n.api.get<DocumentView>('state/get', { name: 'journal' })
    assert.equal((live.value as Record<string, unknown>).after, 'crashes')
    assert.equal(await n.stop(), 0)

    const replayed = (node = await spawnNode({ dataDir }))
    const view = await replayed.api.get<DocumentView>('state/get', { name: 'journal' })
    assert.deepEqual(view, live)
    assert.ok(acked.size >= ROUNDS * WRITES_PER_ROUND)
  })
})
