/**
 * TurnGroup (cloud/service/turn-group.ts): what is handed over in one turn of the event loop is
 * written together, once; every caller's promise settles with that write — resolved, or rejected
 * with its error — and a later turn starts a new group.
 */
import { describe, expect, it } from 'vitest'
import { TurnGroup } from '../../cloud/service/turn-group.ts'

describe('TurnGroup', () => {
  it('writes a turn’s items once, together; settles every caller with that write; starts anew next turn', async () => {
    const writes: number[][] = []
    let fail = false
    const g = new TurnGroup<number>((items) => {
      writes.push(items)
      if (fail) throw new Error('disk full')
    })
    await Promise.all([1, 2, 3].map((n) => g.add(n)))
    expect(writes).toEqual([[1, 2, 3]])
    fail = true
    const failed = await Promise.allSettled([g.add(4), g.add(5)])
    expect(failed.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'ok'))).toEqual(['disk full', 'disk full'])
    fail = false
    const late = g.add(6)
    await g.flush() // a closing store writes what waits at once
    await late
    expect(writes).toEqual([[1, 2, 3], [4, 5], [6]])
    await g.flush() // nothing waiting: nothing written
    expect(writes).toHaveLength(3)
  })
})
