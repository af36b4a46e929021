/**
 * The outbox: sealed batches wait here until the cloud accepts them.
 *
 *   syncStages = [takeOldest, packCars, upload, settle]
 *
 * - Oldest first (batch_id order), so each stream's batches reach the cloud in seq order.
 * - Idempotent: the cloud answers a batch it already has with 200 "duplicate", so a retry after a
 *   lost response or a crash mid-upload stores nothing twice.
 * - When the cloud is unreachable or answers 5xx, nothing is settled and the next attempt waits an
 *   exponentially growing delay with "equal jitter" (AWS Architecture Blog, "Exponential Backoff
 *   and Jitter"), capped; it resets on the first success. Never zero: a failing cloud is not retried at once.
 * - A batch the cloud refuses for good (4xx) is marked 'rejected', kept, counted in a metric and
 *   logged — never silently dropped. A batch the cloud could not judge this time (a 5xx or 429 in
 *   its slot of a bulk answer) stays pending and is retried after the backoff, like a failed request.
 * - A pending batch whose envelope block is missing from the blockstore (a power cut before the
 *   block reached the disk) cannot be shipped: it is marked 'rejected' with that reason and alerted
 *   on, and the batches behind it still ship (the cloud records the hole as a gap) — one lost block
 *   must not stop the whole outbox.
 */
import type Database from 'better-sqlite3'
import type { Blockstore } from 'interface-blockstore'
import type { Logger } from 'pino'
import { CID } from 'multiformats/cid'
import { decodeCanonical } from '../../shared/encoding/canonical.ts'
import { singleBlockCar } from './car.ts'
import { readBlock } from '../blocks.ts'

/** One batch as uploaded: canonical manifest (as a value), signature, CAR bytes. */
export interface Upload {
  readonly batchId: number
  readonly manifest: unknown
  readonly signature: Uint8Array
  readonly car: Uint8Array
}

/** The cloud's verdict on one batch of a bulk upload (docs/api.md §POST /v1/batches/bulk). */
export interface UploadResult {
  readonly status: number
  readonly recordId: number | null
  readonly error: { code: string; message: string } | null
}

export interface CloudUploader {
  /** Upload in order; throws on transport failure or a 5xx for the request as a whole. */
  upload(batches: readonly Upload[]): Promise<UploadResult[]>
}

export interface SyncReport {
  readonly sent: number
  readonly accepted: number
  readonly rejected: number
  /** Set when the round stopped on a transport error or 5xx. */
  readonly failure: string | null
}

export interface BackoffPolicy {
  readonly baseMs: number
  readonly capMs: number
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1000, capMs: 5 * 60_000 }

/** Equal jitter: uniform in [d/2, d) with d = min(cap, base·2^attempt) — spread out, yet never an immediate retry. */
export const backoffDelay = (attempt: number, p: BackoffPolicy = DEFAULT_BACKOFF, random = Math.random): number => {
  const d = Math.min(p.capMs, p.baseMs * 2 ** Math.min(attempt, 30))
  return Math.floor(d / 2 + (random() * d) / 2)
}

/** Our bounds for one bulk request (the cloud accepts up to 500 batches or 16 MiB, docs/api.md). */
export const MAX_UPLOAD_BATCHES = 200
export const MAX_UPLOAD_BYTES = 8 * 1024 * 1024
/** Envelope blocks read concurrently while packing a bulk upload. */
const READ_AHEAD = 16

function prepareQueries(db: Database.Database) {
  return {
    oldest: db.prepare<[number], { batch_id: number; manifest: Buffer; signature: Buffer; cid: string }>(
      `SELECT o.batch_id, b.manifest, b.signature, b.cid FROM outbox o JOIN batches b USING (batch_id)
       WHERE o.state = 'pending' ORDER BY o.batch_id LIMIT ?`,
    ),
    synced: db.prepare('UPDATE batches SET synced_at = ?, record_id = ? WHERE batch_id = ?'),
    done: db.prepare('DELETE FROM outbox WHERE batch_id = ?'),
    rejected: db.prepare("UPDATE outbox SET state = 'rejected', attempts = attempts + 1, last_error = ? WHERE batch_id = ?"),
    attempt: db.prepare("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE state = 'pending' AND batch_id IN (SELECT value FROM json_each(?))"),
    depth: db.prepare<[], { n: number; oldest: number | null }>(
      "SELECT count(*) AS n, min(b.sealed_at) AS oldest FROM outbox o JOIN batches b USING (batch_id) WHERE o.state = 'pending'",
    ),
    rejectedCount: db.prepare<[], number>("SELECT count(*) FROM outbox WHERE state = 'rejected'").pluck(),
  }
}

export class OutboxSync {
  readonly #db: Database.Database
  readonly #blocks: Blockstore
  readonly #cloud: CloudUploader
  readonly #log: Logger
  readonly #q: ReturnType<typeof prepareQueries>
  #failures = 0
  #notBefore = 0
  lastSuccessAt: number | null = null

  readonly #backoff: BackoffPolicy

  constructor(db: Database.Database, blocks: Blockstore, cloud: CloudUploader, logger: Logger, backoff: BackoffPolicy = DEFAULT_BACKOFF) {
    this.#db = db
    this.#blocks = blocks
    this.#cloud = cloud
    this.#log = logger
    this.#q = prepareQueries(db)
    this.#backoff = backoff
  }

  /** Pending batches and the seal time of the oldest. */
  depth(): { pending: number; oldestSealedAt: number | null; rejected: number } {
    const d = this.#q.depth.get()!
    return { pending: d.n, oldestSealedAt: d.oldest, rejected: this.#q.rejectedCount.get()! }
  }

  /** When the next attempt may run (after a failure), epoch ms. */
  /** The last round failed (cloud unreachable or 5xx) and no round has succeeded since. */
  get failing(): boolean {
    return this.#failures > 0
  }

  get notBefore(): number {
    return this.#notBefore
  }

  /** Drain as much as possible now; stops at the first transport failure. */
  async drain(now = () => Date.now()): Promise<SyncReport> {
    let sent = 0
    let accepted = 0
    let rejected = 0
    if (now() < this.#notBefore) return { sent, accepted, rejected, failure: 'backing off' }
    for (;;) {
      const uploads = await this.#pack()
      if (uploads.length === 0) return { sent, accepted, rejected, failure: null }
      let results: UploadResult[]
      try {
        results = await this.#cloud.upload(uploads)
        if (results.length !== uploads.length) throw new Error(`cloud answered ${results.length} results for ${uploads.length} batches`)
      } catch (e) {
        const message = (e as Error).message
        this.#q.attempt.run(message.slice(0, 500), JSON.stringify(uploads.map((u) => u.batchId)))
        return { sent, accepted, rejected, failure: this.#fail(message, now) }
      }
      this.lastSuccessAt = now()
      sent += uploads.length
      let retry: string | null = null
      // settle: one transaction for the whole round trip
      this.#db
        .transaction(() => {
          uploads.forEach((u, i) => {
            const r = results[i]!
            if (r.status === 200 || r.status === 201) {
              this.#q.synced.run(now(), r.recordId, u.batchId)
              this.#q.done.run(u.batchId)
              accepted++
            } else if (r.status >= 500 || r.status === 429) {
              // Not a verdict on the batch: the cloud could not judge it now. Stays pending.
              const message = `${r.status} ${r.error?.code ?? ''}: ${r.error?.message ?? ''}`.slice(0, 500)
              this.#q.attempt.run(message, JSON.stringify([u.batchId]))
              retry ??= `batch ${u.batchId}: ${message}`
            } else {
              this.#q.rejected.run(`${r.status} ${r.error?.code ?? ''}: ${r.error?.message ?? ''}`.slice(0, 500), u.batchId)
              rejected++
              this.#log.error({ event: 'batch_rejected', batchId: u.batchId, status: r.status, error: r.error }, 'the cloud refused a batch; it is kept as rejected')
            }
          })
        })
        .immediate()
      if (retry !== null) return { sent, accepted, rejected, failure: this.#fail(retry, now) }
      this.#failures = 0
      this.#notBefore = 0
    }
  }

  /** Back off after a failed round (jittered, growing, capped); returns the message. */
  #fail(message: string, now: () => number): string {
    const delay = backoffDelay(this.#failures++, this.#backoff)
    this.#notBefore = now() + delay
    this.#log.warn({ event: 'sync_failed', error: message, retryInMs: delay, pending: this.depth().pending }, 'cloud upload failed; will retry')
    return message
  }

  /** takeOldest + packCars, bounded by count and bytes. */
  async #pack(): Promise<Upload[]> {
    const uploads: Upload[] = []
    let bytes = 0
    const rows = this.#q.oldest.all(MAX_UPLOAD_BATCHES)
    // Blocks are read READ_AHEAD at a time (one after another cost 0.85 ms per batch in
    // bench:cloud §4, 16 at once 0.25 ms), then packed in outbox order.
    for (let start = 0; start < rows.length; start += READ_AHEAD) {
      const chunk = rows.slice(start, start + READ_AHEAD)
      const reads = await Promise.all(chunk.map((row) => readBlock(this.#blocks, CID.parse(row.cid)).then((block) => ({ block, error: null }), (error: unknown) => ({ block: null, error }))))
      for (const [i, row] of chunk.entries()) {
        const cid = CID.parse(row.cid)
        const { block, error } = reads[i]!
        if (block === null) {
          if (await this.#blocks.has(cid)) throw error // unreadable now (I/O): the whole pass retries later
          const reason = `envelope block ${row.cid} is missing from the gateway blockstore; this batch cannot be shipped`
          this.#q.rejected.run(reason, row.batch_id)
          this.#log.error({ event: 'batch_block_missing', batchId: row.batch_id, cid: row.cid }, reason)
          continue
        }
        const car = await singleBlockCar(cid, block)
        if (uploads.length > 0 && bytes + car.length > MAX_UPLOAD_BYTES) return uploads
        bytes += car.length + row.manifest.length + 64
        uploads.push({ batchId: row.batch_id, manifest: decodeCanonical(row.manifest), signature: row.signature, car })
      }
    }
    return uploads
  }

}
