/** Events per second over the last minute, in one-second buckets (the console's batches/s). */
export class RateWindow {
  readonly #buckets = new Float64Array(60)
  readonly #stamps = new Float64Array(60)

  add(now: number, n = 1): void {
    const sec = Math.floor(now / 1000)
    const i = sec % 60
    if (this.#stamps[i] !== sec) {
      this.#stamps[i] = sec
      this.#buckets[i] = 0
    }
    this.#buckets[i]! += n
  }

  perSecond(now: number): number {
    const sec = Math.floor(now / 1000)
    let sum = 0
    for (let i = 0; i < 60; i++) if (sec - this.#stamps[i]! < 60) sum += this.#buckets[i]!
    return sum / 60
  }
}
