/**
 * Threads for outsourced decryption (POST /v1/transform): three pairings a record would stall the
 * event loop that serves ingest, so they run on `size` worker threads, least-busy first.
 */
import { Worker } from 'node:worker_threads'
import type { TransformAnswer, TransformJob } from './transform-worker.ts'

interface Slot {
  readonly worker: Worker
  busy: number
}

export class TransformPool {
  readonly #slots: Slot[] = []
  readonly #waiting = new Map<number, (a: TransformAnswer) => void>()
  readonly #size: number
  #next = 1

  constructor(size: number) {
    this.#size = size
  }

  #start(): void {
    for (let i = 0; i < this.#size; i++) {
      const worker = new Worker(new URL('./transform-worker.ts', import.meta.url))
      worker.unref()
      const slot: Slot = { worker, busy: 0 }
      worker.on('message', (a: TransformAnswer) => {
        slot.busy--
        this.#waiting.get(a.id)?.(a)
        this.#waiting.delete(a.id)
      })
      worker.on('error', () => {
        // A dead worker fails what it held; the next call starts a fresh pool slot.
        for (const [id, done] of this.#waiting) done({ id, error: { code: 'INTERNAL', message: 'transformation worker failed' } })
        this.#waiting.clear()
        this.#slots.splice(this.#slots.indexOf(slot), 1)
      })
      this.#slots.push(slot)
    }
  }

  transform(transformKey: Uint8Array, envelope: Uint8Array): Promise<TransformAnswer> {
    if (this.#slots.length === 0) this.#start()
    const slot = this.#slots.reduce((a, b) => (b.busy < a.busy ? b : a))
    const id = this.#next++
    slot.busy++
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve)
      slot.worker.postMessage({ id, transformKey, envelope } satisfies TransformJob)
    })
  }

  async close(): Promise<void> {
    await Promise.all(this.#slots.splice(0).map((s) => s.worker.terminate()))
  }
}
