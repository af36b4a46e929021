/**
 * Worker threads for a verified retrieval (Node only; the browser runs clients/retrieval-work.ts
 * in its one thread): proof pages and batches go to the least-busy thread, so the client verifies
 * page n and decrypts while the cloud answers page n+1, on every core (`--workers`, default the
 * number of cores, at most 4). Nothing is retried: a job's error comes back with its code, and a
 * thread that dies fails what it held and every later job, so the retrieval stops with the reason.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { encodeRetrievalKey, encodeUserKey } from '../shared/crypto/abe/codec.ts'
import { reviveCareLedgerError } from '../shared/errors.ts'
import type { Decryptor } from './retrieve.ts'
import type { CheckedProof, OpenResult, RetrievalWork } from './retrieval-work.ts'
import type { WorkAnswer, WorkJob, WorkerKey } from './work-worker.ts'

/** The default number of threads: the cores, at most 4 (beyond that the cloud's answers are the limit). */
export const defaultWorkers = (): number => Math.min(4, availableParallelism())

interface Slot {
  readonly worker: Worker
  busy: number
  readonly held: Set<number>
  readonly ready: Promise<void>
}

type Pending = { resolve: (v: unknown) => void; reject: (e: unknown) => void }
type JobBody = WorkJob extends infer J ? (J extends { id: number } ? Omit<J, 'id'> : never) : never

export class WorkPool implements RetrievalWork {
  readonly #slots: Slot[] = []
  readonly #pending = new Map<number, Pending>()
  #failed: Error | null = null
  #next = 1

  readonly #size: number
  readonly #key: WorkerKey
  readonly minRecords: number | undefined

  /**
   * `key`: what the threads open batches with (the decryptor's key); 'none' to check proofs only.
   * The threads start on start() or the first job: loading the code costs each ≈ 0.3–0.5 s of CPU,
   * worth it for an export, not for a few batches (retrieve() decides by the plan's size).
   */
  constructor(size: number, key: WorkerKey, opts: { minRecords?: number } = {}) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`a work pool needs at least one thread, not ${size}`)
    this.#size = size
    this.#key = key
    this.minRecords = opts.minRecords
  }

  /** Start the threads (idempotent). */
  start(): void {
    if (this.#slots.length > 0 || this.#failed) return
    for (let i = 0; i < this.#size; i++) {
      const worker = new Worker(new URL('./work-worker.ts', import.meta.url), { workerData: { key: this.#key } })
      let started!: () => void
      const slot: Slot = { worker, busy: 0, held: new Set(), ready: new Promise<void>((ok) => (started = ok)) }
      worker.on('message', (a: WorkAnswer | { ready: true }) => {
        if ('ready' in a) return started()
        slot.busy--
        slot.held.delete(a.id)
        const p = this.#pending.get(a.id)
        this.#pending.delete(a.id)
        if (!p) return
        if ('error' in a) p.reject(reviveCareLedgerError(Object.assign(new Error(a.error.message), a.error)))
        else p.resolve(a.result)
      })
      const die = (why: Error) => {
        this.#failed ??= new Error(`a retrieval worker thread failed: ${why.message}`, { cause: why })
        for (const id of slot.held) {
          this.#pending.get(id)?.reject(this.#failed)
          this.#pending.delete(id)
        }
        slot.held.clear()
        started()
      }
      worker.on('error', die)
      worker.on('exit', (code) => die(new Error(`it exited with code ${code}`)))
      this.#slots.push(slot)
    }
  }

  /** Forget the keys decapsulated so far (a new retrieval starts as a fresh session would). */
  reset(): void {
    for (const s of this.#slots) s.worker.postMessage({ id: 0, kind: 'reset' } satisfies WorkJob)
  }

  /** The work pool for a session's decryptor (its key encoded for the threads). */
  static forDecryptor(size: number, d: Decryptor, opts: { minRecords?: number } = {}): WorkPool {
    return new WorkPool(size, d.kind === 'local' ? { kind: 'local', userKey: encodeUserKey(d.opener.key) } : { kind: 'outsourced', retrievalKey: encodeRetrievalKey(d.retrievalKey) }, opts)
  }

  /** Resolves when every thread has loaded (a job sent before simply waits in its queue). */
  async ready(): Promise<void> {
    this.start()
    await Promise.all(this.#slots.map((s) => s.ready))
    if (this.#failed) throw this.#failed
  }

  get threads(): number {
    return this.#size
  }

  #run<T>(job: JobBody, thread?: number): Promise<T> {
    if (this.#failed) return Promise.reject(this.#failed)
    this.start()
    const slot = thread !== undefined ? this.#slots[thread % this.#slots.length]! : this.#slots.reduce((a, b) => (b.busy < a.busy ? b : a))
    const id = this.#next++
    slot.busy++
    slot.held.add(id)
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      slot.worker.postMessage({ ...job, id })
    })
  }

  checkProofs(proofs: readonly unknown[], chameleonKey: Uint8Array): Promise<CheckedProof[]> {
    return this.#run({ kind: 'proofs', proofs, chameleonKey })
  }

  openBatches(items: Parameters<RetrievalWork['openBatches']>[0], query: Parameters<RetrievalWork['openBatches']>[1], thread?: number): Promise<OpenResult[]> {
    return this.#run({ kind: 'open', items, query: { from: query.from, to: query.to, types: query.types } }, thread)
  }

  async close(): Promise<void> {
    this.#failed ??= new Error('the retrieval work pool is closed')
    const slots = this.#slots.splice(0)
    await Promise.all(slots.map((s) => s.worker.terminate()))
  }
}
