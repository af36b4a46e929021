/**
 * Latency histogram with ~2.5 % relative resolution (log-spaced buckets from 1 µs to ~1 h), small
 * enough to ship between processes as JSON and merge exactly.
 */
const BASE = 1.025
const LOG_BASE = Math.log(BASE)
const MIN_MS = 0.001

export class LatencyHistogram {
  counts = new Map<number, number>()
  n = 0
  max = 0

  record(ms: number): void {
    const i = ms <= MIN_MS ? 0 : Math.ceil(Math.log(ms / MIN_MS) / LOG_BASE)
    this.counts.set(i, (this.counts.get(i) ?? 0) + 1)
    this.n++
    if (ms > this.max) this.max = ms
  }

  merge(other: LatencyHistogram): this {
    for (const [i, c] of other.counts) this.counts.set(i, (this.counts.get(i) ?? 0) + c)
    this.n += other.n
    this.max = Math.max(this.max, other.max)
    return this
  }

  /** Upper edge of the bucket holding quantile q (0..1), ms. */
  quantile(q: number): number {
    if (this.n === 0) return Number.NaN
    const target = Math.ceil(q * this.n)
    let seen = 0
    for (const i of [...this.counts.keys()].sort((a, b) => a - b)) {
      seen += this.counts.get(i)!
      if (seen >= target) return Math.min(MIN_MS * BASE ** i, this.max)
    }
    return this.max
  }

  toJSON(): { counts: Array<[number, number]>; n: number; max: number } {
    return { counts: [...this.counts], n: this.n, max: this.max }
  }

  static fromJSON(j: { counts: Array<[number, number]>; n: number; max: number }): LatencyHistogram {
    const h = new LatencyHistogram()
    h.counts = new Map(j.counts)
    h.n = j.n
    h.max = j.max
    return h
  }
}
