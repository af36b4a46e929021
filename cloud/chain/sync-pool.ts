/**
 * A synchronous map over worker threads, for the store's bulk append: better-sqlite3 is
 * synchronous and a bulk append is one transaction, so the CPU-heavy part (signature checks,
 * chameleon hashes) must run on the other cores *inside* a synchronous call. The main thread
 * posts a slice to each worker, works through its own slice, then blocks in Atomics.wait until
 * each worker has posted its answer and raised a flag, and takes the answer with
 * receiveMessageOnPort (the pattern of synckit). A worker that fails to start or to answer is
 * retired and its slice computed on the main thread: slower, never wrong.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads'
import { CareLedgerError, isCareLedgerError, type ErrorCode } from '../../shared/errors.ts'

/** A task's result or its (typed) error, in a form that crosses threads. */
export type Outcome<R> = { readonly ok: R } | { readonly error: { readonly code: ErrorCode | 'INTERNAL'; readonly message: string; readonly info: Record<string, unknown> } }

export function attempt<R>(f: () => R): Outcome<R> {
  try {
    return { ok: f() }
  } catch (e) {
    if (isCareLedgerError(e)) return { error: { code: e.code, message: e.message, info: { ...e.info } } }
    return { error: { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e), info: {} } }
  }
}

/** The CareLedgerError an outcome carries (an internal failure becomes a plain Error). */
export function outcomeError(o: Outcome<unknown>): Error | null {
  if ('ok' in o) return null
  const { code, message, info } = o.error
  return code === 'INTERNAL' ? new Error(message) : new CareLedgerError(code, message, info)
}

/** Flag values a worker raises. */
export const DONE = 1
export const FATAL = 2

interface Slot {
  readonly worker: Worker
  readonly port: MessagePort
  readonly flag: Int32Array
  alive: boolean
}

export interface SyncPoolOptions {
  /** Extra threads besides the caller's. */
  readonly size: number
  /** Passed to each worker as workerData.data. */
  readonly data: unknown
  /** Below this many items, run everything on the calling thread (posting costs more). */
  readonly threshold?: number
  /** Longest wait for one worker's slice before it is retired. */
  readonly timeoutMs?: number
}

export class SyncPool {
  readonly #url: URL
  readonly #opts: SyncPoolOptions
  #slots: Slot[] | null = null
  readonly #stats = { onWorkers: 0, onCaller: 0, retired: 0 }

  constructor(url: URL, opts: SyncPoolOptions) {
    this.#url = url
    this.#opts = opts
  }

  get size(): number {
    return this.#opts.size
  }

  /** Items computed on worker threads and on the calling thread so far, and workers retired. */
  get stats(): { readonly onWorkers: number; readonly onCaller: number; readonly retired: number } {
    return { ...this.#stats }
  }

  /** Start the threads now (they load their modules in the background) rather than at the first big run. */
  start(): void {
    if (this.#slots !== null || this.#opts.size <= 0) return
    this.#slots = []
    for (let i = 0; i < this.#opts.size; i++) {
      const { port1, port2 } = new MessageChannel()
      const flag = new Int32Array(new SharedArrayBuffer(4))
      const worker = new Worker(this.#url, { workerData: { port: port2, flag, data: this.#opts.data }, transferList: [port2] })
      worker.unref()
      const slot: Slot = { worker, port: port1, flag, alive: true }
      worker.on('error', () => void (slot.alive = false))
      worker.on('exit', () => void (slot.alive = false))
      this.#slots.push(slot)
    }
  }

  /** items.map(task) with the work spread over the calling thread and the workers; `op` names task in the worker. */
  map<T, R>(op: string, items: readonly T[], task: (item: T) => R): R[] {
    if (this.#opts.size <= 0 || items.length < (this.#opts.threshold ?? 8)) {
      this.#stats.onCaller += items.length
      return items.map(task)
    }
    this.start()
    const slots = this.#slots!.filter((s) => s.alive)
    const parts = split(items, slots.length + 1)
    const posted: boolean[] = []
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!
      const part = parts[i + 1]!
      // DONE (or the initial 0) → 0; a worker that already reported FATAL keeps it and gets no work.
      if (part.length === 0 || Atomics.compareExchange(slot.flag, 0, DONE, 0) === FATAL) {
        if (part.length > 0) this.#retire(slot)
        posted.push(false)
        continue
      }
      slot.port.postMessage({ op, items: part })
      posted.push(true)
    }
    const out: R[] = parts[0]!.map(task)
    this.#stats.onCaller += parts[0]!.length
    for (let i = 0; i < slots.length; i++) {
      const part = parts[i + 1]!
      const answer = posted[i] ? this.#collect<R>(slots[i]!, part.length) : null
      if (answer) this.#stats.onWorkers += part.length
      else this.#stats.onCaller += part.length
      out.push(...(answer ?? part.map(task)))
    }
    return out
  }

  #collect<R>(slot: Slot, expected: number): R[] | null {
    const deadline = performance.now() + (this.#opts.timeoutMs ?? 120_000)
    while (Atomics.load(slot.flag, 0) === 0) {
      const left = deadline - performance.now()
      if (left <= 0) break
      Atomics.wait(slot.flag, 0, 0, Math.min(left, 1000))
    }
    const state = Atomics.load(slot.flag, 0)
    const msg = state === DONE ? receiveMessageOnPort(slot.port) : undefined
    const result = msg?.message as R[] | undefined
    if (state !== DONE || !Array.isArray(result) || result.length !== expected) {
      // Starting failed, it threw, or it is stuck: retire it and let the caller compute the slice.
      this.#retire(slot)
      return null
    }
    return result
  }

  #retire(slot: Slot): void {
    if (slot.alive) this.#stats.retired++
    slot.alive = false
    void slot.worker.terminate()
  }

  async close(): Promise<void> {
    const slots = this.#slots ?? []
    this.#slots = null
    await Promise.all(
      slots.map((s) => {
        s.port.close()
        return s.worker.terminate()
      }),
    )
  }
}

/** n nearly equal consecutive parts (the first ones one longer). */
function split<T>(items: readonly T[], n: number): (readonly T[])[] {
  const parts: T[][] = []
  const base = Math.floor(items.length / n)
  let extra = items.length % n
  let at = 0
  for (let i = 0; i < n; i++) {
    const len = base + (extra-- > 0 ? 1 : 0)
    parts.push(items.slice(at, at + len))
    at += len
  }
  return parts
}
