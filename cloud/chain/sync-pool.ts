/**
 * A synchronous map over worker threads, for the store's bulk append: better-sqlite3 is
 * synchronous and a bulk append is one transaction, so the CPU-heavy part (signature checks,
 * chameleon hashes) must run on the other cores *inside* a synchronous call. The main thread
 * posts chunks to the workers — as they arrive, so they hash while it does its SQLite work —
 * works through the chunks it kept, then blocks in Atomics.wait until each worker has posted its
 * answers and counted them in a shared flag, and takes them with receiveMessageOnPort (the
 * pattern of synckit). A worker that fails to start or to answer is retired and its chunks
 * computed on the main thread: slower, never wrong.
 *
 * Work stealing: each posted chunk carries a shared claim word. A worker claims a chunk before
 * computing it (claimChunk); the caller, once its own chunks are done, takes back the posted
 * chunks no worker has claimed yet, from the last one down, and computes them itself (the worker
 * then answers them with [] at once). So on a loaded machine, where a worker thread may get less
 * of a core than the caller, the caller computes instead of blocking in Atomics.wait — the event
 * loop it holds up waits only for chunks already being computed (issue 14's profile: a third of
 * the append thread's time went to that wait).
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads'
export { attempt, outcomeError, type Outcome } from './outcome.ts'

/**
 * The two Int32 slots a worker shares with the caller: ANSWERED counts the messages it has
 * answered (one answer per message, in order, each posted before the count rises), FATAL is set
 * when it cannot go on (its module failed to load, or a task threw outside `attempt`).
 */
export const ANSWERED = 0
export const FATAL = 1

/** Claim word of a posted chunk: 0 free, CLAIMED by the worker, TAKEN_BACK by the caller. */
const CLAIMED = 1
const TAKEN_BACK = 2

/** A worker's side: may it compute this chunk (false: the caller took it back; answer [] then). */
export function claimChunk(msg: { readonly claim?: Int32Array }): boolean {
  return !msg.claim || Atomics.compareExchange(msg.claim, 0, 0, CLAIMED) === 0
}

/** A worker's side of the protocol: answer, then count, then wake the caller. */
export function answered(flag: Int32Array): void {
  Atomics.add(flag, ANSWERED, 1)
  Atomics.notify(flag, ANSWERED)
}

/**
 * A worker's side of mapAsync and mapChunkAsync (`whole`): answer each {id, op, items} on `port` with {id, results}, or {id,
 * failed} when `compute` throws. Call it once the worker can compute: it tells the caller so
 * ({ready: true}), and mapAsync sends nothing to a worker still loading.
 */
export function serveAsync(port: MessagePort, compute: (op: string, items: never[], whole: boolean) => unknown[]): void {
  port.postMessage({ ready: true })
  port.on('message', (msg: { id: number; op: string; items: never[]; whole?: boolean }) => {
    try {
      port.postMessage({ id: msg.id, results: compute(msg.op, msg.items, msg.whole === true) })
    } catch (e) {
      port.postMessage({ id: msg.id, failed: String(e) })
    }
  })
}

export function fatal(flag: Int32Array): void {
  Atomics.store(flag, FATAL, 1)
  Atomics.add(flag, ANSWERED, 1) // wake a caller waiting for this answer
  Atomics.notify(flag, ANSWERED)
}

/** A mapAsync request a worker holds: what to compute here if it cannot answer. */
interface AsyncRequest {
  readonly count: number
  /** Compute the items here and settle the promise with them (or with what the task threw). */
  readonly computeHere: () => void
  readonly resolve: (results: unknown[]) => void
  readonly timer: NodeJS.Timeout
}

interface Slot {
  readonly worker: Worker
  readonly port: MessagePort
  /** mapAsync's port, and its requests not answered yet, by id. */
  readonly asyncPort: MessagePort
  readonly asyncPending: Map<number, AsyncRequest>
  /** It has said it can take mapAsync requests (its modules loaded). */
  asyncReady: boolean
  readonly flag: Int32Array
  /** Messages posted to it so far, answers taken so far (the caller's counts). */
  posted: number
  taken: number
  alive: boolean
}

export interface SyncPoolOptions {
  /** Extra threads besides the caller's. */
  readonly size: number
  /** Passed to each worker as workerData.data. */
  readonly data: unknown
  /** Below this many items, run everything on the calling thread (posting costs more). */
  readonly threshold?: number
  /** Longest wait for one worker's answer before it is retired. */
  readonly timeoutMs?: number
}

/** A run whose items arrive while the caller works (see SyncPool.stream). */
export interface StreamRun<T, R> {
  /** Hand over one item: it goes to a worker in the next posted chunk, or stays for the caller. */
  push(item: T): void
  /** Compute what stayed here, take the workers' answers, and return every result in push order. */
  finish(): R[]
}

export class SyncPool {
  readonly #url: URL
  readonly #opts: SyncPoolOptions
  #slots: Slot[] | null = null
  readonly #stats = { onWorkers: 0, onCaller: 0, retired: 0, takenBack: 0 }
  #asyncIds = 0

  constructor(url: URL, opts: SyncPoolOptions) {
    this.#url = url
    this.#opts = opts
  }

  get size(): number {
    return this.#opts.size
  }

  /** Items computed on worker threads and on the calling thread (of which taken back from workers) so far, and workers retired. */
  get stats(): { readonly onWorkers: number; readonly onCaller: number; readonly retired: number; readonly takenBack: number } {
    return { ...this.#stats }
  }

  /** Start the threads now (they load their modules in the background) rather than at the first big run. */
  start(): void {
    if (this.#slots !== null || this.#opts.size <= 0) return
    this.#slots = []
    for (let i = 0; i < this.#opts.size; i++) {
      const { port1, port2 } = new MessageChannel()
      const asyncChannel = new MessageChannel()
      const flag = new Int32Array(new SharedArrayBuffer(8))
      const worker = new Worker(this.#url, {
        workerData: { port: port2, asyncPort: asyncChannel.port2, flag, data: this.#opts.data },
        transferList: [port2, asyncChannel.port2],
      })
      worker.unref()
      const slot: Slot = { worker, port: port1, asyncPort: asyncChannel.port1, asyncPending: new Map(), asyncReady: false, flag, posted: 0, taken: 0, alive: true }
      slot.asyncPort.on('message', (msg: { id: number; results?: unknown[]; failed?: string; ready?: true }) => {
        if (msg.ready) slot.asyncReady = true
        else this.#answerAsync(slot, msg)
      })
      slot.asyncPort.unref() // held (ref'd) only while it has requests out
      worker.on('error', () => this.#retire(slot))
      worker.on('exit', () => this.#retire(slot))
      this.#slots.push(slot)
    }
  }

  /** items.map(task) with the work spread evenly over the calling thread and the workers; `op` names task in the worker. */
  map<T, R>(op: string, items: readonly T[], task: (item: T) => R): R[] {
    return this.#spread(op, items, task)
  }

  /**
   * Like map, for a task that does a chunk at once (`whole(chunk)` returns one result per item, in
   * order: the bulk admission checks a chunk's signatures as one batch); `op` names it in the worker.
   */
  mapChunks<T, R>(op: string, items: readonly T[], whole: (chunk: T[]) => R[]): R[] {
    return this.#spread(op, items, (item) => whole([item])[0]!, whole)
  }

  #spread<T, R>(op: string, items: readonly T[], task: (item: T) => R, whole?: (chunk: T[]) => R[]): R[] {
    const live = this.#opts.size > 0 && items.length >= (this.#opts.threshold ?? 8) ? this.#live().length : 0
    const run = this.stream(op, task, { expected: items.length, callerShare: 1 / (live + 1), chunk: Math.ceil(items.length / (live + 1)), ...(whole ? { whole } : {}) })
    for (const item of items) run.push(item)
    return run.finish()
  }

  /**
   * Like map, for items that arrive one by one while the caller does other work (the store's
   * bulk append judges and inserts rows while the workers already hash the earlier ones): full
   * chunks are posted at once, round robin, except that the caller keeps about `callerShare` of
   * them for itself (it computes those in finish(), when its other work is done). `expected`
   * (the most items there will be) decides, as in map, whether workers are used at all. With
   * `whole`, a chunk is computed by one call, here and in the worker (posted with `whole: true`).
   */
  stream<T, R>(op: string, task: (item: T) => R, opts: { expected: number; callerShare: number; chunk?: number; whole?: (chunk: T[]) => R[] }): StreamRun<T, R> {
    const compute = opts.whole ?? ((chunk: T[]): R[] => chunk.map(task))
    const useWorkers = this.#opts.size > 0 && opts.expected >= (this.#opts.threshold ?? 8)
    // Answers this run does not want (of a run abandoned by an exception, or of a chunk taken back)
    // are dropped by #take on the way to the answers it wants, never waited for here.
    const slots = useWorkers ? this.#live() : []
    const chunkSize = Math.max(1, opts.chunk ?? Math.min(32, Math.ceil(opts.expected / (4 * (slots.length + 1)))))
    /** In push order: a chunk kept here, or posted to a slot (answered in order per slot). */
    const chunks: { items: T[]; slot: Slot | null; seq?: number; claim?: Int32Array; takenBack?: boolean }[] = []
    let current: T[] = []
    let kept = 0
    let posted = 0
    let next = 0
    const close = (): void => {
      if (current.length === 0) return
      const items = current
      current = []
      // Keep this chunk here while the caller's share of items so far is below callerShare.
      const keep = slots.length === 0 || kept < opts.callerShare * (kept + posted + items.length)
      let slot: Slot | null = null
      if (!keep) {
        for (let tries = 0; tries < slots.length && slot === null; tries++) {
          const candidate = slots[next++ % slots.length]!
          if (candidate.alive && Atomics.load(candidate.flag, FATAL) === 0) slot = candidate
        }
      }
      if (slot) {
        const claim = new Int32Array(new SharedArrayBuffer(4))
        slot.port.postMessage({ op, items, claim, whole: opts.whole !== undefined })
        slot.posted++
        posted += items.length
        chunks.push({ items, slot, seq: slot.posted, claim })
      } else {
        kept += items.length
        chunks.push({ items, slot })
      }
    }
    return {
      push: (item: T): void => {
        current.push(item)
        if (current.length >= chunkSize) close()
      },
      finish: (): R[] => {
        // The caller's last partial chunk stays here: it is about to be idle anyway.
        if (current.length > 0) {
          chunks.push({ items: current, slot: null })
          kept += current.length
          current = []
        }
        const local = new Map<number, R[]>()
        chunks.forEach((c, i) => {
          if (c.slot === null) local.set(i, compute(c.items))
        })
        this.#stats.onCaller += kept
        // Take back what no worker has started, from the last chunk down (the workers go forward).
        for (let i = chunks.length - 1; i >= 0; i--) {
          const c = chunks[i]!
          if (c.claim && Atomics.compareExchange(c.claim, 0, 0, TAKEN_BACK) === 0) {
            c.takenBack = true
            local.set(i, compute(c.items))
            this.#stats.onCaller += c.items.length
            this.#stats.takenBack += c.items.length
          }
        }
        const out: R[] = []
        chunks.forEach((c, i) => {
          // A chunk taken back: its answer ([], or the items if the worker ignores claims) is not
          // waited for; the next #take on that slot drops it (a busy worker must not hold this thread).
          if (c.slot === null || c.takenBack) return void out.push(...local.get(i)!)
          const answer = this.#take<R>(c.slot, c.seq!, c.items.length)
          if (answer) this.#stats.onWorkers += c.items.length
          else this.#stats.onCaller += c.items.length
          out.push(...(answer ?? compute(c.items)))
        })
        this.#live() // a worker found failed meanwhile (its chunks all taken back) is retired now
        return out
      },
    }
  }

  /**
   * items.map(task) on a worker thread, answered by a promise, so this thread goes on meanwhile; the
   * worker with the fewest items outstanding takes it. null when no worker is ready (no pool, all
   * retired, or still loading: the first call starts them): the caller computes when it needs the
   * results. A worker that dies, fails the request, or does not answer within the pool's timeout is
   * retired and the items computed here.
   */
  mapAsync<T, R>(op: string, items: readonly T[], task: (item: T) => R): Promise<R[]> | null {
    return this.#async(op, items, () => items.map(task), false)
  }

  /** mapAsync for a task that does the items at once (`whole(items)`, one result per item, in order), as mapChunks is to map. */
  mapChunkAsync<T, R>(op: string, items: readonly T[], whole: (items: T[]) => R[]): Promise<R[]> | null {
    return this.#async(op, items, () => whole([...items]), true)
  }

  #async<R>(op: string, items: readonly unknown[], here: () => R[], whole: boolean): Promise<R[]> | null {
    const slots = this.#opts.size > 0 ? this.#live().filter((s) => s.asyncReady) : []
    if (slots.length === 0) return null
    const load = (s: Slot): number => [...s.asyncPending.values()].reduce((n, r) => n + r.count, 0)
    const slot = slots.reduce((best, s) => (load(s) < load(best) ? s : best))
    const id = ++this.#asyncIds
    return new Promise<R[]>((resolve, reject) => {
      const computeHere = (): void => {
        try {
          resolve(here())
        } catch (e) {
          reject(e)
        }
      }
      const timer = setTimeout(() => {
        // Stuck: retire it; #retire computes what it held (this request included) here.
        this.#retire(slot)
      }, this.#opts.timeoutMs ?? 120_000)
      timer.unref()
      slot.asyncPending.set(id, { count: items.length, computeHere, resolve: resolve as (r: unknown[]) => void, timer })
      slot.asyncPort.ref()
      slot.asyncPort.postMessage({ id, op, items, whole })
    })
  }

  /** How many workers take mapAsync requests now. */
  get asyncWorkers(): number {
    return (this.#slots ?? []).filter((s) => s.alive && s.asyncReady).length
  }

  /** Resolves once a worker takes mapAsync requests, or none can (no pool, all retired); starts the threads. */
  async asyncReady(): Promise<void> {
    while (this.#opts.size > 0) {
      const live = this.#live()
      if (live.length === 0 || live.some((s) => s.asyncReady)) return
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  #answerAsync(slot: Slot, msg: { id: number; results?: unknown[]; failed?: string }): void {
    const req = slot.asyncPending.get(msg.id)
    if (!req) return
    slot.asyncPending.delete(msg.id)
    clearTimeout(req.timer)
    if (slot.asyncPending.size === 0) slot.asyncPort.unref()
    if (Array.isArray(msg.results) && msg.results.length === req.count) {
      this.#stats.onWorkers += req.count
      req.resolve(msg.results)
    } else {
      // It failed the request (a task threw outside `attempt`): retire it, as the synchronous path does.
      this.#stats.onCaller += req.count
      req.computeHere()
      this.#retire(slot)
    }
  }

  /** Run `op` on `item` once on every live worker (and `task` here), e.g. to build per-thread tables. */
  broadcast<T>(op: string, item: T, task: (item: T) => unknown): void {
    task(item)
    const slots = this.#opts.size > 0 ? this.#live() : []
    for (const slot of slots) {
      slot.port.postMessage({ op, items: [item] })
      slot.posted++
    }
    for (const slot of slots) this.#take(slot, slot.posted, 1)
  }

  /** The workers that can take work; one that has signalled FATAL is retired on the way. */
  #live(): Slot[] {
    this.start()
    for (const s of this.#slots ?? []) if (s.alive && Atomics.load(s.flag, FATAL) !== 0) this.#retire(s)
    return (this.#slots ?? []).filter((s) => s.alive)
  }

  /**
   * The slot's answer to its `seq`-th message (of `expected` results), the answers before it that
   * nobody wants dropped on the way; or null (then the caller computes the chunk) if the worker
   * failed or is stuck.
   */
  #take<R>(slot: Slot, seq: number, expected: number): R[] | null {
    const deadline = performance.now() + (this.#opts.timeoutMs ?? 120_000)
    while (slot.alive && slot.taken < seq) {
      const want = slot.taken + 1
      for (;;) {
        const count = Atomics.load(slot.flag, ANSWERED)
        if (count >= want || Atomics.load(slot.flag, FATAL) !== 0) break
        const left = deadline - performance.now()
        if (left <= 0) break
        Atomics.wait(slot.flag, ANSWERED, count, Math.min(left, 1000))
      }
      if (Atomics.load(slot.flag, FATAL) !== 0 || Atomics.load(slot.flag, ANSWERED) < want) break
      const result = receiveMessageOnPort(slot.port)?.message as R[] | undefined
      slot.taken = want
      if (want < seq) continue // an answer nobody waits for
      if (!Array.isArray(result) || result.length !== expected) break
      return result
    }
    // Starting failed, it threw, or it is stuck: retire it; the caller computes this chunk and any later one.
    this.#retire(slot)
    return null
  }

  #retire(slot: Slot): void {
    if (slot.alive) this.#stats.retired++
    slot.alive = false
    void slot.worker.terminate()
    this.#settleHeld(slot)
  }

  /** The slot's outstanding mapAsync requests, computed here in the order they were made. */
  #settleHeld(slot: Slot): void {
    const held = [...slot.asyncPending.values()]
    slot.asyncPending.clear()
    slot.asyncPort.unref()
    for (const req of held) {
      clearTimeout(req.timer)
      this.#stats.onCaller += req.count
      req.computeHere()
    }
  }

  async close(): Promise<void> {
    const slots = this.#slots ?? []
    this.#slots = null
    await Promise.all(
      slots.map((s) => {
        s.alive = false // closing, not retired
        this.#settleHeld(s)
        s.port.close()
        s.asyncPort.close()
        return s.worker.terminate()
      }),
    )
  }
}
