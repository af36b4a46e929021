/**
 * Group commit for concurrent single uploads (POST /v1/batches from many gateways at once): each
 * appendBatch is its own transaction and pays an fsync (≈ 3 ms here), so uploads that arrive
 * while one is being written are gathered and written together by one appendBatches call — one
 * transaction, one fsync, its records' hashes computed ahead on the store's worker threads
 * (ChainStore.appendBatchesPipelined) while more uploads arrive. Every caller still
 * gets its own answer only after its batch is durable, and a refused batch refuses only itself.
 */
import type { AdmittedBatch, AppendInput } from './record.ts'
import type { AppendResult, BulkAppendResult, ChainStore } from './store.ts'

interface Waiting {
  readonly input: AppendInput | AdmittedBatch
  readonly resolve: (r: AppendResult) => void
  readonly reject: (e: unknown) => void
}

export class AppendQueue {
  readonly #store: ChainStore
  readonly #max: number
  #waiting: Waiting[] = []
  #scheduled = false

  constructor(store: ChainStore, opts: { maxBatch?: number } = {}) {
    this.#store = store
    this.#max = opts.maxBatch ?? 500
  }

  /** Like ChainStore.appendBatch, resolved once the group holding this batch has committed. */
  append(input: AppendInput | AdmittedBatch): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ input, resolve, reject })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => this.#flush())
      }
    })
  }

  get pending(): number {
    return this.#waiting.length
  }

  #flush(): void {
    const group = this.#waiting.splice(0, this.#max)
    if (this.#waiting.length > 0) setImmediate(() => this.#flush())
    else this.#scheduled = false
    if (group.length === 0) return
    const settle = (results: readonly BulkAppendResult[]): void =>
      results.forEach((r, i) => {
        const w = group[i]!
        if (r.status === 'rejected') w.reject(r.error)
        else w.resolve(r)
      })
    // The transaction rolled back: nothing of the group is stored.
    const fail = (e: unknown): void => group.forEach((w) => w.reject(e))
    try {
      this.#store.appendBatchesPipelined(group.map((w) => w.input)).then(settle, fail)
    } catch (e) {
      fail(e)
    }
  }
}
