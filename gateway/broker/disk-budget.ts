/**
 * Disk budget of the data directory. Used bytes = live database pages ((page_count −
 * freelist_count) × page_size, so rows deleted by retention count as freed before any VACUUM)
 * + the WAL and shm files + every other file under the data directory (blocks/, tls/, corrupt
 * databases set aside). The database part is re-measured every 250 ms while readings are being
 * committed (three cheap PRAGMAs and a stat) and every 5 s otherwise (the back office's writes, WAL
 * checkpoints; an idle gateway should cost next to nothing), the directory walk every `checkIntervalMs`, and between measurements the bytes committed
 * are added as an estimate, so a burst cannot run far past the budget.
 *
 * A subdirectory whose owner reports its size (`reportDirectory`: the back office keeps the
 * blockstore's total as it writes and deletes blocks) is no longer walked: with a day's backlog
 * the blockstore holds hundreds of thousands of files, and walking them every few seconds on the
 * ingest thread would cost more CPU than ingest itself.
 *
 * Full ⇔ used ≥ budget, or the file system's free space < the floor. While full, ingest refuses
 * new readings (STORAGE_FULL, no PUBACK); it resumes by itself once a measurement shows room.
 */
import { readdirSync, statSync, statfsSync } from 'node:fs'
import { join } from 'node:path'
import type Database from 'better-sqlite3'
import type { Logger } from 'pino'
import { DB_FILE } from '../store/db.ts'
import type { GatewayMetrics } from '../metrics.ts'

export interface DiskBudgetOptions {
  readonly dataDir: string
  readonly db: Database.Database
  readonly budgetBytes: number
  readonly minFreeBytes: number
  readonly checkIntervalMs: number
  readonly metrics?: GatewayMetrics
  readonly logger?: Logger
}

export interface DiskStatus {
  readonly usedBytes: number
  readonly budgetBytes: number
  readonly freeBytes: number
  readonly full: boolean
  /** Why ingest is refused, when full. */
  readonly reason: string | null
}

const DB_INTERVAL_MS = 250
const DB_IDLE_INTERVAL_MS = 5000
const DB_FILES = new Set([DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`, `${DB_FILE}-journal`])

export class DiskBudget {
  readonly #o: DiskBudgetOptions
  readonly #pageCount: Database.Statement<[], number>
  readonly #freelist: Database.Statement<[], number>
  readonly #pageSize: number
  #dbBytes = 0
  #otherBytes = 0
  #estimate = 0
  #measuredAt = 0
  #freeBytes = Number.POSITIVE_INFINITY
  #full = false
  #reason: string | null = null
  #dbTimer: NodeJS.Timeout | null = null
  #dirTimer: NodeJS.Timeout | null = null
  #walking: Promise<void> | null = null
  /** Top-level subdirectories measured by their owner (name → bytes), skipped by the walk. */
  readonly #reported = new Map<string, number>()

  constructor(o: DiskBudgetOptions) {
    this.#o = o
    this.#pageCount = o.db.prepare<[], number>('PRAGMA page_count').pluck()
    this.#freelist = o.db.prepare<[], number>('PRAGMA freelist_count').pluck()
    this.#pageSize = o.db.pragma('page_size', { simple: true }) as number
    o.metrics?.diskBudgetBytes.set(o.budgetBytes)
  }

  /** Measure everything now, then keep measuring on timers. */
  async start(): Promise<void> {
    await this.check()
    this.#dbTimer = setInterval(() => {
      if (this.#estimate > 0 || performance.now() - this.#measuredAt >= DB_IDLE_INTERVAL_MS) this.#measureDb()
    }, DB_INTERVAL_MS).unref()
    this.#dirTimer = setInterval(() => void this.check(), this.#o.checkIntervalMs).unref()
  }

  stop(): void {
    if (this.#dbTimer) clearInterval(this.#dbTimer)
    if (this.#dirTimer) clearInterval(this.#dirTimer)
    this.#dbTimer = this.#dirTimer = null
  }

  get full(): boolean {
    return this.#full
  }

  get status(): DiskStatus {
    return { usedBytes: this.usedBytes, budgetBytes: this.#o.budgetBytes, freeBytes: this.#freeBytes, full: this.#full, reason: this.#reason }
  }

  get usedBytes(): number {
    let reported = 0
    for (const b of this.#reported.values()) reported += b
    return this.#dbBytes + this.#otherBytes + reported + this.#estimate
  }

  /** The owner of `<dataDir>/<name>` reports its size; from now on the walk skips it. */
  reportDirectory(name: string, bytes: number): void {
    this.#reported.set(name, bytes)
    this.#evaluate()
  }

  /** Bytes just committed; counted until the next database measurement. */
  noteWritten(bytes: number): void {
    this.#estimate += bytes
    if (!this.#full && this.usedBytes >= this.#o.budgetBytes) this.#measureDb()
  }

  /**
   * Full re-measurement: database, directory walk, free space. The blockstore writer (lead) may
   * call this after writing or deleting blocks to get an immediate verdict.
   */
  check(): Promise<void> {
    this.#walking ??= this.#walk().finally(() => {
      this.#walking = null
    })
    return this.#walking
  }

  async #walk(): Promise<void> {
    let other = 0
    try {
      other = this.#sizeOfTree(this.#o.dataDir, true)
    } catch (err) {
      this.#o.logger?.error({ err, dataDir: this.#o.dataDir }, 'disk budget: cannot walk the data directory')
    }
    this.#otherBytes = other
    try {
      const fs = statfsSync(this.#o.dataDir)
      this.#freeBytes = fs.bavail * fs.bsize
    } catch {
      this.#freeBytes = Number.POSITIVE_INFINITY
    }
    this.#measureDb()
  }

  /** Bytes of the files under `dir` (synchronous: a few small files once a large subtree is reported). */
  #sizeOfTree(dir: string, top: boolean): number {
    let total = 0
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (top && (this.#reported.has(e.name) || DB_FILES.has(e.name))) continue
      const path = join(dir, e.name)
      try {
        if (e.isDirectory()) total += this.#sizeOfTree(path, false)
        else if (e.isFile()) total += statSync(path).size
      } catch {
        // deleted while walking
      }
    }
    return total
  }

  #measureDb(): void {
    try {
      const live = (this.#pageCount.get()! - this.#freelist.get()!) * this.#pageSize
      let wal = 0
      for (const suffix of ['-wal', '-shm']) {
        try {
          wal += statSync(join(this.#o.dataDir, DB_FILE + suffix)).size
        } catch {
          // absent
        }
      }
      this.#dbBytes = live + wal
      this.#estimate = 0
      this.#measuredAt = performance.now()
    } catch (err) {
      this.#o.logger?.error({ err }, 'disk budget: cannot measure the database')
    }
    this.#evaluate()
  }

  #evaluate(): void {
    const used = this.usedBytes
    const { budgetBytes, minFreeBytes } = this.#o
    let reason: string | null = null
    if (used >= budgetBytes) reason = `the data directory uses ${mb(used)} of its ${mb(budgetBytes)} budget`
    else if (this.#freeBytes < minFreeBytes) reason = `the file system has ${mb(this.#freeBytes)} free, below the ${mb(minFreeBytes)} floor`
    const full = reason !== null
    const m = this.#o.metrics
    m?.diskUsedBytes.set(used)
    if (Number.isFinite(this.#freeBytes)) m?.diskFreeBytes.set(this.#freeBytes)
    m?.storageFull.set(full ? 1 : 0)
    if (full !== this.#full) {
      if (full) this.#o.logger?.error({ event: 'storage_full', usedBytes: used, budgetBytes, freeBytes: this.#freeBytes, reason }, `STORAGE FULL: refusing new readings: ${reason}`)
      else this.#o.logger?.warn({ event: 'storage_available', usedBytes: used, budgetBytes, freeBytes: this.#freeBytes }, 'storage available again: accepting readings')
    }
    this.#full = full
    this.#reason = reason
  }
}

const mb = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MB`
