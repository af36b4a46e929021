/**
 * The queue of logins waiting for their scrypt check (issue 8, item 4). One scrypt runs at a time
 * (16 MB each, see store/devices.ts), so a burst of strangers' CONNECTs used to delay an enrolled
 * device's login by seconds: 300 bad CONNECTs → 15.6 s. Now:
 *
 *   - cheaper checks first: a login for an enrolled device id waits in the `enrolled` lane, which
 *     is always served before the `unknown` lane (unknown ids are checked against a dummy hash so
 *     that, when nothing is waiting, timing does not tell the two apart). A stranger who does not
 *     know a device id cannot delay a device's login by more than the one check running;
 *   - bounded: in each lane at most `maxWaiting` logins wait; beyond that a CONNECT is refused at
 *     once (CONNACK 3, server unavailable: the device retries with backoff, docs/protocol.md);
 *   - fair between sources: at most `maxPerSource` logins of one source address wait or run, and
 *     a lane serves sources in turn (round robin), not in arrival order. When a lane is full, a
 *     login from a source with at least two fewer waiting than the busiest source takes that
 *     source's newest place (which is refused with CONNACK 3). So even strangers who know device
 *     ids cannot keep a device on another address out with a flood from one address.
 */

export type LoginLane = 'enrolled' | 'unknown'

/** The login lost its place to a login from a less busy source (see above). */
export class LoginQueueFull extends Error {
  constructor() {
    super('the login queue is full')
    this.name = 'LoginQueueFull'
  }
}

export interface LoginQueueLimits {
  readonly maxWaiting: number
  readonly maxPerSource: number
}

interface Waiting {
  readonly run: () => void
  readonly evict: () => void
}

/** One lane: waiting logins per source, in round-robin order (a Map iterates in insertion order). */
class Lane {
  readonly queues = new Map<string, Waiting[]>()
  waiting = 0

  add(source: string, w: Waiting): void {
    this.waiting++
    const q = this.queues.get(source)
    if (q) q.push(w)
    else this.queues.set(source, [w])
  }

  /** The next source's oldest login; that source goes to the back of the rotation. */
  take(): Waiting | null {
    const first = this.queues.entries().next()
    if (first.done) return null
    const [source, q] = first.value
    const w = q.shift()!
    this.queues.delete(source)
    if (q.length > 0) this.queues.set(source, q)
    this.waiting--
    return w
  }

  /**
   * Make room for a login from a source with `mine` waiting: drop the newest login of the busiest
   * source if it has at least two more (a swap between equals would only churn); among equally
   * busy sources the one served last loses.
   */
  evictFromBusierThan(mine: number): boolean {
    let busiest: string | null = null
    let most = mine + 2
    for (const [s, q] of this.queues) if (q.length >= most) [busiest, most] = [s, q.length]
    if (busiest === null) return false
    const q = this.queues.get(busiest)!
    const victim = q.pop()!
    if (q.length === 0) this.queues.delete(busiest)
    this.waiting--
    victim.evict()
    return true
  }
}

export class LoginQueue {
  readonly limits: LoginQueueLimits
  #running = false
  readonly #lanes: Record<LoginLane, Lane> = { enrolled: new Lane(), unknown: new Lane() }
  /** Waiting + running per source, over both lanes. */
  readonly #perSource = new Map<string, number>()

  constructor(limits: LoginQueueLimits) {
    this.limits = limits
  }

  get waiting(): number {
    return this.#lanes.enrolled.waiting + this.#lanes.unknown.waiting
  }

  /**
   * Run `job` when its turn comes; null (refuse now) when the source's share is full, or the lane
   * is and no busier source can give up a place. Rejects with LoginQueueFull if the place is lost.
   */
  submit<T>(source: string, lane: LoginLane, job: () => Promise<T>): Promise<T> | null {
    const mine = this.#perSource.get(source) ?? 0
    if (mine >= this.limits.maxPerSource) return null
    const l = this.#lanes[lane]
    if (this.#running && l.waiting >= this.limits.maxWaiting && !l.evictFromBusierThan(l.queues.get(source)?.length ?? 0)) return null
    this.#perSource.set(source, mine + 1)
    return new Promise<T>((resolve, reject) => {
      const run = (): void => {
        this.#running = true
        let p: Promise<T>
        try {
          p = job()
        } catch (e) {
          p = Promise.reject(e)
        }
        p.then(resolve, reject).finally(() => {
          this.#running = false
          this.#release(source)
          this.#next()
        })
      }
      if (!this.#running) return run()
      l.add(source, {
        run,
        evict: () => {
          this.#release(source)
          reject(new LoginQueueFull())
        },
      })
    })
  }

  #release(source: string): void {
    const left = (this.#perSource.get(source) ?? 1) - 1
    if (left > 0) this.#perSource.set(source, left)
    else this.#perSource.delete(source)
  }

  #next(): void {
    ;(this.#lanes.enrolled.take() ?? this.#lanes.unknown.take())?.run()
  }
}
