/**
 * SyncPool (cloud/chain/sync-pool.ts), the store's synchronous map over worker threads: results in
 * order whichever thread computed them, chunks posted while the caller keeps working (stream),
 * and a worker that cannot start, dies, or leaves answers behind never changes a result.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { SyncPool } from '../../cloud/chain/sync-pool.ts'

const WORKER = new URL('./sync-pool-worker.ts', import.meta.url)
const square = (x: number): number => x * x
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i)
let pool: SyncPool | null = null
afterEach(async () => {
  await pool?.close()
  pool = null
})

describe('SyncPool', () => {
  it('map: results in order, spread over the caller and the workers', async () => {
    pool = new SyncPool(WORKER, { size: 2, data: {}, threshold: 4 })
    expect(pool.map('square', range(100), square)).toEqual(range(100).map(square))
    // While the threads still load, the caller takes their chunks back; once up, they compute some.
    for (let i = 0; i < 100 && pool.stats.onWorkers === 0; i++) {
      await new Promise((r) => setTimeout(r, 100))
      expect(pool.map('square', range(400), square)).toEqual(range(400).map(square))
    }
    expect(pool.stats.onWorkers).toBeGreaterThan(0)
    expect(pool.map('square', range(3), square)).toEqual([0, 1, 4]) // below the threshold: here
  })

  it('stream: chunks posted as items arrive, the caller keeps about its share, order kept', () => {
    pool = new SyncPool(WORKER, { size: 1, data: {}, threshold: 4 })
    const run = pool.stream('slow', square, { expected: 200, callerShare: 0.25, chunk: 10 })
    for (const x of range(200)) run.push(x)
    expect(run.finish()).toEqual(range(200).map(square))
    const { onWorkers, onCaller, takenBack } = pool.stats
    expect(onWorkers + onCaller).toBe(200)
    expect(onCaller - takenBack).toBeGreaterThanOrEqual(40) // kept when posting
    expect(onCaller - takenBack).toBeLessThanOrEqual(70)
  })

  it('work stealing: the caller takes back chunks a slow worker has not started, order and results kept', () => {
    pool = new SyncPool(WORKER, { size: 1, data: {}, threshold: 4 })
    for (const op of ['slow', 'slow-noclaim']) {
      const before = pool.stats
      const run = pool.stream(op, square, { expected: 300, callerShare: 0.1, chunk: 10 })
      for (const x of range(300)) run.push(x)
      expect(run.finish()).toEqual(range(300).map(square))
      const after = pool.stats
      expect(after.takenBack - before.takenBack).toBeGreaterThan(0) // 27 chunks posted, 50 ms each: the caller took some back
      expect(after.onWorkers - before.onWorkers + after.onCaller - before.onCaller).toBe(300)
      expect(after.retired).toBe(0)
    }
    // The next run is not confused by answers to chunks that were taken back.
    expect(pool.map('square', range(100), square)).toEqual(range(100).map(square))
  })

  it('a run abandoned by an exception leaves no stale answers for the next one', () => {
    pool = new SyncPool(WORKER, { size: 2, data: {}, threshold: 4 })
    const abandoned = pool.stream('square', (x: number) => -x, { expected: 100, callerShare: 0.2, chunk: 5 })
    for (const x of range(60)) abandoned.push(x + 1000) // posted, never finished
    const run = pool.stream('square', square, { expected: 50, callerShare: 0.2, chunk: 5 })
    for (const x of range(50)) run.push(x)
    expect(run.finish()).toEqual(range(50).map(square))
    expect(pool.stats.retired).toBe(0)
  })

  it('a worker that cannot start, or dies on a task, is retired and its chunks computed here', async () => {
    pool = new SyncPool(WORKER, { size: 2, data: { failToLoad: true }, threshold: 4, timeoutMs: 5000 })
    expect(pool.map('square', range(40), square)).toEqual(range(40).map(square))
    expect(pool.stats.onWorkers).toBe(0)
    const dying = new SyncPool(WORKER, { size: 1, data: {}, threshold: 4, timeoutMs: 5000 })
    try {
      expect(dying.map('crash', range(40), square)).toEqual(range(40).map(square))
      // The caller may have taken the crashing chunk back before the worker read it (then it did not
      // wait for it): the death is seen by the next run at the latest, whose results stay right.
      await vi.waitFor(() => {
        expect(dying.map('square', range(40), square)).toEqual(range(40).map(square))
        expect(dying.stats.retired).toBe(1)
      })
      const { onWorkers } = dying.stats
      expect(dying.map('square', range(40), square)).toEqual(range(40).map(square)) // on the caller from now on
      expect(dying.stats.onWorkers).toBe(onWorkers)
    } finally {
      void dying.close()
    }
  })

  it('mapAsync: answered by a worker while this thread goes on, in order; a worker that fails or dies is retired and its requests computed here', async () => {
    const p = (pool = new SyncPool(WORKER, { size: 2, data: {}, threshold: 4, timeoutMs: 5000 }))
    expect(pool.mapAsync('square', [1], square)).toBeNull() // started now, not loaded yet: the caller computes
    await pool.asyncReady()
    await vi.waitFor(() => expect(p.asyncWorkers).toBe(2))
    const asked = [pool.mapAsync('square', range(50), square)!, pool.mapAsync('square', range(30), square)!, pool.mapAsync('square', [7], square)!]
    // Meanwhile the synchronous path still works (its chunks not held up by the async ones).
    expect(pool.map('square', range(40), square)).toEqual(range(40).map(square))
    expect(await Promise.all(asked)).toEqual([range(50).map(square), range(30).map(square), [49]])
    expect(pool.stats.retired).toBe(0)
    // A request the worker fails: computed here, that worker retired; the other one still answers.
    expect(await pool.mapAsync('throw', range(10), square)!).toEqual(range(10).map(square))
    expect(pool.stats.retired).toBe(1)
    // A worker that dies with requests out: they are computed here.
    const dying = pool.mapAsync('exit', range(10), square)!
    const after = pool.mapAsync('square', range(5), square)
    expect(await dying).toEqual(range(10).map(square))
    if (after) expect(await after).toEqual(range(5).map(square))
    await vi.waitFor(() => expect(p.stats.retired).toBe(2))
    expect(pool.mapAsync('square', range(5), square)).toBeNull() // no worker left: the caller computes when it needs them
    const none = new SyncPool(WORKER, { size: 0, data: {} })
    expect(none.mapAsync('square', [1], square)).toBeNull()
    await none.close()
  })
})
