/** The login queue's order and bounds (gateway/broker/login-queue.ts): pure scheduling, no sockets. */
import { describe, expect, it } from 'vitest'
import { LoginQueue, LoginQueueFull, type LoginLane } from '../../gateway/broker/login-queue.ts'

/** A queue whose jobs finish when the test says so; records the order they ran in. */
function harness(maxWaiting: number, maxPerSource: number) {
  const q = new LoginQueue({ maxWaiting, maxPerSource })
  const ran: string[] = []
  const finish: Array<() => void> = []
  const outcomes = new Map<string, string>()
  const submit = (name: string, source: string, lane: LoginLane = 'unknown') => {
    const p = q.submit(source, lane, () => {
      ran.push(name)
      return new Promise<void>((ok) => finish.push(ok))
    })
    if (!p) outcomes.set(name, 'refused')
    else p.then(() => outcomes.set(name, 'done'), (e) => outcomes.set(name, e instanceof LoginQueueFull ? 'evicted' : 'error'))
    return p !== null
  }
  const step = async () => {
    finish.shift()?.()
    await new Promise((ok) => setImmediate(ok))
  }
  const drain = async () => {
    while (finish.length) await step()
  }
  return { q, ran, submit, step, drain, outcomes }
}

describe('LoginQueue', () => {
  it('serves sources in turn, not in arrival order, and caps each source', async () => {
    const h = harness(100, 3)
    for (let i = 0; i < 5; i++) h.submit(`a${i}`, 'A')
    h.submit('b0', 'B')
    h.submit('c0', 'C')
    expect(h.outcomes.get('a3')).toBe('refused') // A already has 3 waiting or running
    await h.drain()
    expect(h.ran).toEqual(['a0', 'a1', 'b0', 'c0', 'a2'])
  })

  it('serves logins for enrolled ids before logins for unknown ids', async () => {
    const h = harness(100, 100)
    for (let i = 0; i < 10; i++) h.submit(`x${i}`, `S${i}`, 'unknown')
    h.submit('device', 'D', 'enrolled')
    await h.drain()
    expect(h.ran.slice(0, 2)).toEqual(['x0', 'device']) // only the check already running comes first
  })

  it('refuses at once when a lane is full, unless a busier source gives up its newest place', async () => {
    const h = harness(4, 3)
    h.submit('a0', 'A') // runs
    for (let i = 1; i < 3; i++) h.submit(`a${i}`, 'A')
    h.submit('b0', 'B')
    h.submit('b1', 'B') // lane full: a1 a2 b0 b1
    expect(h.submit('c0', 'C')).toBe(true) // A and B have 2 waiting, C none: B, served last, loses b1
    await new Promise((ok) => setImmediate(ok))
    expect(h.outcomes.get('b1')).toBe('evicted')
    expect(h.submit('c1', 'C')).toBe(false) // now C has 1, the busiest 2: no churn between near-equals
    await h.drain()
    expect(h.ran).toEqual(['a0', 'a1', 'b0', 'c0', 'a2'])
    expect(h.q.waiting).toBe(0)
  })

  it('a device on its own address gets in past a flood that knows its id', async () => {
    const h = harness(8, 2)
    for (let i = 0; i < 200; i++) h.submit(`x${i}`, `10.0.0.${i % 5}`, 'enrolled')
    expect(h.submit('device', '10.0.1.7', 'enrolled')).toBe(true)
    await h.drain()
    // At most one check per other source (5) after the one running.
    expect(h.ran.indexOf('device')).toBeLessThanOrEqual(6)
  })
})
