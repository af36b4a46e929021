/**
 * The queue of logins waiting for their scrypt check (issue 8, item 4). One scrypt runs at a time
 * (16 MB each, see store/devices.ts), so a burst of strangers' CONNECTs used to delay an enrolled
 * device's login by seconds: 300 bad CONNECTs → 15.6 s. Now:
 *
 *   - bounded: at most `maxWaiting` logins wait; beyond that a CONNECT is refused at once
 *     (CONNACK 3, server unavailable: the device retries with backoff, docs/protocol.md);
 *   - fair between sources: at most `maxPerSource` logins of one source address wait or run, and
 *     the queue serves sources in turn (round robin), not in arrival order. A device on its own
 *     address waits for at most one check per other busy source, however many CONNECTs they send;
 *   - cheaper checks first (auth.ts): a device that logged in since the gateway started is checked
 *     against a cached digest without scrypt, and a malformed user name is refused without one.
 */

export interface LoginQueueLimits {
  readonly maxWaiting: number
  readonly maxPerSource: number
}

export class LoginQueue {
  readonly limits: LoginQueueLimits
  #running = false
  #waiting = 0
  /** Waiting jobs per source, in round-robin order (a Map iterates in insertion order). */
  readonly #queues = new Map<string, Array<() => void>>()
  /** Waiting + running per source. */
  readonly #perSource = new Map<string, number>()

  constructor(limits: LoginQueueLimits) {
    this.limits = limits
  }

  get waiting(): number {
    return this.#waiting
  }

  /** Run `job` when its turn comes; null (refuse now) when the queue or the source's share is full. */
  submit<T>(source: string, job: () => Promise<T>): Promise<T> | null {
    const mine = this.#perSource.get(source) ?? 0
    if (mine >= this.limits.maxPerSource) return null
    if (this.#running && this.#waiting >= this.limits.maxWaiting) return null
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
          const left = (this.#perSource.get(source) ?? 1) - 1
          if (left > 0) this.#perSource.set(source, left)
          else this.#perSource.delete(source)
          this.#next()
        })
      }
      if (!this.#running) return run()
      this.#waiting++
      const q = this.#queues.get(source)
      if (q) q.push(run)
      else this.#queues.set(source, [run])
    })
  }

  #next(): void {
    const first = this.#queues.entries().next()
    if (first.done) return
    const [source, q] = first.value
    const run = q.shift()!
    // Move this source to the back of the rotation (or drop it when it has nothing left).
    this.#queues.delete(source)
    if (q.length > 0) this.#queues.set(source, q)
    this.#waiting--
    run()
  }
}
