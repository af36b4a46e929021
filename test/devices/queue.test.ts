import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { OutboundQueue } from '../../devices/simulator/queue.ts'

describe('OutboundQueue', () => {
  it('drops the oldest waiting message when full, never one in flight', () => {
    const q = new OutboundQueue<number>(3)
    for (const i of [1, 2, 3]) expect(q.push(i)).toEqual([])
    expect(q.takeNext()).toBe(1) // in flight: safe from dropping
    expect(q.push(4)).toEqual([])
    expect(q.push(5)).toEqual([2])
    expect(q.push(6)).toEqual([3])
    expect(q.items()).toEqual([1, 4, 5, 6])
    expect([q.waiting, q.inFlight]).toEqual([3, 1])
  })

  it('sends oldest first and resends a failed message before anything newer', () => {
    const q = new OutboundQueue<string>(10)
    for (const m of ['a', 'b', 'c', 'd']) q.push(m)
    expect([q.takeNext(), q.takeNext(), q.takeNext()]).toEqual(['a', 'b', 'c'])
    q.nack('a')
    // b and c are still in flight: hold everything until they settle, then rewind to a.
    expect(q.takeNext()).toBeUndefined()
    q.ack('b')
    expect(q.takeNext()).toBeUndefined()
    q.nack('c')
    expect([q.takeNext(), q.takeNext(), q.takeNext(), q.takeNext()]).toEqual(['a', 'c', 'd', undefined])
  })

  it('property: always sends the oldest waiting message; in order unless a send failed; nothing lost but drops', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(fc.constantFrom('push', 'send', 'ack', 'nack'), { maxLength: 300 }), (limit, ops) => {
        const q = new OutboundQueue<number>(limit)
        let next = 0
        const inFlight: number[] = []
        const firstSent: number[] = []
        const dropped: number[] = []
        const acked: number[] = []
        let nacked = false
        for (const op of ops) {
          if (op === 'push') {
            dropped.push(...q.push(next++))
            expect(q.waiting).toBeLessThanOrEqual(limit) // a nack may exceed it briefly; the next push trims
          } else if (op === 'send') {
            const waiting = q.items().filter((m) => !inFlight.includes(m))
            const m = q.takeNext()
            if (m !== undefined) {
              expect(m).toBe(Math.min(...waiting))
              inFlight.push(m)
              if (!firstSent.includes(m)) firstSent.push(m)
            }
          } else if (inFlight.length) {
            const m = inFlight.shift()!
            if (op === 'ack') {
              q.ack(m)
              acked.push(m)
            } else {
              q.nack(m)
              nacked = true
            }
          }
        }
        const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b)
        expect(firstSent).toEqual(sorted(firstSent))
        // Only a failed send (ACK_TIMEOUT on a live connection) can let a newer message be stored first.
        if (!nacked) expect(acked).toEqual(sorted(acked))
        expect(sorted([...q.items(), ...dropped, ...acked])).toEqual(Array.from({ length: next }, (_, i) => i))
      }),
      { numRuns: 1000 },
    )
  })
})
