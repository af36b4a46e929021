/**
 * SyncPool (cloud/chain/sync-pool.ts), the store's synchronous map over worker threads: results in
 * order whichever thread computed them, chunks posted while the caller keeps working (stream),
 * and a worker that cannot start, dies, or leaves answers behind never changes a result.
 */
import { afterEach, describe, expect, it } from 'vitest'
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
  it('map: results in order, spread over the caller and the workers', () => {
    pool = new SyncPool(WORKER, { size: 2, data: {}, threshold: 4 })
    expect(pool.map('square', range(100), square)).toEqual(range(100).map(square))
    expect(pool.stats.onWorkers).toBeGreaterThan(0)
    expect(pool.map('square', range(3), square)).toEqual([0, 1, 4]) // below the threshold: here
  })

  it('stream: chunks posted as items arrive, the caller keeps about its share, order kept', () => {
    pool = new SyncPool(WORKER, { size: 1, data: {}, threshold: 4 })
    const run = pool.stream('slow', square, { expected: 200, callerShare: 0.25, chunk: 10 })
    for (const x of range(200)) run.push(x)
    expect(run.finish()).toEqual(range(200).map(square))
    const { onWorkers, onCaller } = pool.stats
    expect(onWorkers + onCaller).toBe(200)
    expect(onCaller).toBeGreaterThanOrEqual(40)
    expect(onCaller).toBeLessThanOrEqual(70)
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

  it('a worker that cannot start, or dies on a task, is retired and its chunks computed here', () => {
    pool = new SyncPool(WORKER, { size: 2, data: { failToLoad: true }, threshold: 4, timeoutMs: 5000 })
    expect(pool.map('square', range(40), square)).toEqual(range(40).map(square))
    expect(pool.stats.onWorkers).toBe(0)
    const dying = new SyncPool(WORKER, { size: 1, data: {}, threshold: 4, timeoutMs: 5000 })
    try {
      expect(dying.map('crash', range(40), square)).toEqual(range(40).map(square))
      expect(dying.stats.retired).toBe(1)
      expect(dying.map('square', range(40), square)).toEqual(range(40).map(square)) // on the caller from now on
      expect(dying.stats.onWorkers).toBe(0)
    } finally {
      void dying.close()
    }
  })
})
