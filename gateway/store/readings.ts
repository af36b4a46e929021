/**
 * Readings and quarantine: the group commit that makes a PUBACK mean "durably stored", and the
 * queries the sealer uses.
 *
 * Group commit: aedes handles every PUBLISH of one socket read in the same tick, and the reads of
 * one event-loop turn before `setImmediate` callbacks run. `GroupCommitter.enqueue` collects the
 * validated writes; one `setImmediate` flush commits all of them in ONE IMMEDIATE transaction
 * (one WAL fsync with synchronous=FULL), and only then calls each write's callback, in arrival
 * order — so PUBACKs keep PUBLISH order [MQTT-4.6.0-2] and every PUBACK follows a durable commit.
 * If the commit fails, every callback gets the error and nothing is acknowledged.
 */
import type Database from 'better-sqlite3'
import type { Reading, Rejection, RejectionCode } from '../../shared/schema/reading.ts'
import type { DeviceDirectory } from './devices.ts'

/**
 * ECG samples as stored (the `samples` BLOB of `readings`), two formats told apart by length:
 *   - current: the tag byte 0x02, then little-endian IEEE 754 binary64 — exactly the numbers the
 *     device sent (JSON.parse's values), so the sealed leaves are what the device can recompute
 *     (issue 8, item 8). Length 1 + 8n.
 *   - legacy (gateways before issue 8): little-endian binary32, no tag. Length 4n. Those readings
 *     were rounded when stored; they are sealed as stored.
 */
export const SAMPLES_F64_TAG = 0x02

export function encodeSamples(samples: readonly number[]): Buffer {
  const buf = Buffer.allocUnsafe(1 + samples.length * 8)
  buf[0] = SAMPLES_F64_TAG
  for (let i = 0; i < samples.length; i++) buf.writeDoubleLE(samples[i]!, 1 + i * 8)
  return buf
}

/** True for a blob in the legacy binary32 format. */
export const isLegacySamples = (blob: Uint8Array): boolean => blob.length % 4 === 0

export function decodeSamples(blob: Uint8Array): Float64Array {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength)
  if (isLegacySamples(blob)) {
    const out = new Float64Array(blob.length >>> 2)
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true)
    return out
  }
  if (blob[0] !== SAMPLES_F64_TAG || (blob.length - 1) % 8 !== 0) throw new Error(`samples blob of ${blob.length} bytes has an unknown format`)
  const out = new Float64Array((blob.length - 1) / 8)
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(1 + i * 8, true)
  return out
}

export interface StoredReading {
  readonly id: number
  readonly deviceId: string
  readonly seq: number
  readonly patientId: string
  readonly ts: number
  readonly receivedAt: number
  readonly type: string
  readonly unit: string
  readonly value: number | null
  readonly samples: Float64Array | null
  readonly hz: number | null
  readonly batchId: number | null
}

export interface QuarantineRecord {
  readonly id: number
  readonly deviceId: string
  readonly seq: number | null
  readonly code: string
  readonly message: string
  readonly raw: string
  readonly receivedAt: number
}

/** A `readings` row as SQLite returns it (the sealer reads a subset). */
export interface ReadingRow {
  id: number
  device_id: string
  seq: number
  patient_id: string
  ts: number
  received_at: number
  type: string
  unit: string
  value: number | null
  samples: Buffer | null
  hz: number | null
  batch_id: number | null
}

const toReading = (r: ReadingRow): StoredReading => ({
  id: r.id,
  deviceId: r.device_id,
  seq: r.seq,
  patientId: r.patient_id,
  ts: r.ts,
  receivedAt: r.received_at,
  type: r.type,
  unit: r.unit,
  value: r.value,
  samples: r.samples ? decodeSamples(r.samples) : null,
  hz: r.hz,
  batchId: r.batch_id,
})

/** Read side of the readings table, for the sealer, the tests and the tools. */
export class ReadingStore {
  readonly #db: Database.Database
  readonly #unsealed: Database.Statement<[number, number], ReadingRow>
  readonly #mark: Database.Statement<[number, number]>

  constructor(db: Database.Database) {
    this.#db = db
    this.#unsealed = db.prepare('SELECT * FROM readings WHERE batch_id IS NULL AND id > ? ORDER BY id LIMIT ?')
    this.#mark = db.prepare('UPDATE readings SET batch_id = ? WHERE id = ? AND batch_id IS NULL')
  }

  /**
   * Unsealed readings in arrival (id) order, at most `limit`, with id > `afterId` (page through a
   * backlog by passing the last id seen). Uses the partial index readings_unsealed.
   */
  unsealed(limit: number, afterId = 0): StoredReading[] {
    return this.#unsealed.all(afterId, limit).map(toReading)
  }

  countUnsealed(): number {
    return this.#db.prepare<[], number>('SELECT count(*) FROM readings WHERE batch_id IS NULL').pluck().get()!
  }

  /**
   * Put readings into batch `batchId`. Only rows still unsealed change (a reading is sealed once);
   * returns how many did. Runs as a savepoint when called inside the sealer's own transaction —
   * do that, so the batch row and the marks commit together.
   */
  markSealed(ids: readonly number[], batchId: number): number {
    return this.#db.transaction(() => {
      let n = 0
      for (const id of ids) n += this.#mark.run(batchId, id).changes
      return n
    })()
  }

  get(deviceId: string, seq: number): StoredReading | undefined {
    const row = this.#db.prepare<[string, number], ReadingRow>('SELECT * FROM readings WHERE device_id = ? AND seq = ?').get(deviceId, seq)
    return row ? toReading(row) : undefined
  }

  byDevice(deviceId: string, limit = 1000, afterSeq = -1): StoredReading[] {
    return this.#db
      .prepare<[string, number, number], ReadingRow>('SELECT * FROM readings WHERE device_id = ? AND seq > ? ORDER BY seq LIMIT ?')
      .all(deviceId, afterSeq, limit)
      .map(toReading)
  }

  count(): number {
    return this.#db.prepare<[], number>('SELECT count(*) FROM readings').pluck().get()!
  }

  quarantined(limit = 100, deviceId?: string): QuarantineRecord[] {
    const rows = deviceId
      ? this.#db.prepare('SELECT * FROM quarantine WHERE device_id = ? ORDER BY id DESC LIMIT ?').all(deviceId, limit)
      : this.#db.prepare('SELECT * FROM quarantine ORDER BY id DESC LIMIT ?').all(limit)
    return (rows as Array<{ id: number; device_id: string; seq: number | null; code: string; message: string; raw: string; received_at: number }>).map((q) => ({
      id: q.id,
      deviceId: q.device_id,
      seq: q.seq,
      code: q.code,
      message: q.message,
      raw: q.raw,
      receivedAt: q.received_at,
    }))
  }

  quarantineCount(): number {
    return this.#db.prepare<[], number>('SELECT count(*) FROM quarantine').pluck().get()!
  }
}

/**
 * Gateway-side rejection codes, beyond the payload ones of shared/schema/reading.ts:
 * SEQ_REUSED — (device, seq) already stored with different content (stored reading untouched, the
 * new one quarantined). UNPROCESSABLE — the gateway failed on the message (a bug): quarantined whole
 * and acknowledged. STORAGE_FULL / STORE_FAILED are never quarantined: the reading is not
 * acknowledged, so the device keeps it and resends.
 */
export type GatewayRejectionCode = 'SEQ_REUSED' | 'UNPROCESSABLE' | 'STORAGE_FULL' | 'STORE_FAILED'

/** A rejection as the gateway records it (quarantine row) and reports it (errors topic). */
export interface GatewayRejection extends Omit<Rejection, 'code'> {
  readonly code: RejectionCode | GatewayRejectionCode
}

/** What one PUBLISH asks the store to keep. */
export interface PendingWrite {
  readonly deviceId: string
  readonly receivedAt: number
  readonly readings: readonly Reading[]
  readonly rejections: readonly GatewayRejection[]
  /** Called after the commit (err null) or its failure (nothing of this write is stored). */
  readonly done: (err: Error | null, outcome: WriteOutcome | null) => void
}

export interface WriteOutcome {
  /** Readings newly stored. */
  readonly inserted: number
  /** Readings already stored with identical content (a resend): stored once, still acknowledged. */
  readonly duplicates: number
  /** Readings whose (device, seq) is already stored with DIFFERENT content: quarantined as SEQ_REUSED. */
  readonly conflicts: readonly GatewayRejection[]
}

export interface FlushReport {
  readonly writes: number
  readonly inserted: number
  readonly duplicates: number
  readonly quarantined: number
  /** Quarantine rows deleted to stay within the bound. */
  readonly quarantineDropped: number
  readonly quarantineRows: number
  /** Bytes of reading data committed (an estimate for the disk budget between measurements). */
  readonly bytes: number
  readonly seconds: number
  readonly rejectedByCode: ReadonlyMap<string, number>
}

export interface GroupCommitterOptions {
  readonly directory: DeviceDirectory
  readonly quarantineMaxRows: number
  /** After every successful flush (metrics, disk estimate). */
  readonly onFlush?: (report: FlushReport) => void
  /** After a failed flush (nothing committed). */
  readonly onError?: (err: Error, writes: number) => void
  /** Test hook: called inside the transaction before COMMIT. */
  readonly beforeCommit?: () => void
  /**
   * Commit linger, ms (0: commit at the end of every event-loop turn that queued a write). See
   * `GroupCommitter.enqueue`: the wait only happens while other devices are expected to write.
   */
  readonly lingerMs?: number
}

/** A linger ends early once this many writes wait: a burst is committed at the end of its turn. */
export const LINGER_MAX_WRITES = 64
/** A device counts as active for the linger if it wrote within the last one or two of these windows. */
const ACTIVE_WINDOW_MS = 1000

export class DeviceNotEnrolledError extends Error {
  readonly deviceId: string
  constructor(deviceId: string) {
    super(`device "${deviceId}" is no longer enrolled or is disabled; its readings are refused`)
    this.name = 'DeviceNotEnrolledError'
    this.deviceId = deviceId
  }
}

interface ExistingRow {
  ts: number
  type: string
  value: number | null
  samples: Buffer | null
  hz: number | null
}

interface CommitResult {
  readonly outcomes: Array<WriteOutcome | Error>
  readonly quarantined: number
  readonly dropped: number
  readonly quarantineRows: number
  readonly bytes: number
}

export class GroupCommitter {
  readonly #opts: GroupCommitterOptions
  readonly #insert: Database.Statement
  readonly #existing: Database.Statement<[string, number], ExistingRow>
  readonly #quarantine: Database.Statement
  readonly #countQuarantine: Database.Statement<[], number>
  readonly #trimQuarantine: Database.Statement<[number]>
  readonly #commit: (batch: PendingWrite[]) => CommitResult
  #pending: PendingWrite[] = []
  #scheduled: NodeJS.Immediate | null = null
  #lingerTimer: NodeJS.Timeout | null = null
  /** Devices with a write pending, and devices that wrote in the current and previous activity window. */
  readonly #pendingDevices = new Set<string>()
  #activeNow = new Set<string>()
  #activePrev = new Set<string>()
  #windowEndsAt = 0
  #quarantineRows: number
  #closed = false

  constructor(db: Database.Database, opts: GroupCommitterOptions) {
    this.#opts = opts
    this.#insert = db.prepare(
      `INSERT INTO readings (device_id, seq, patient_id, ts, received_at, type, unit, value, samples, hz)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, seq) DO NOTHING`,
    )
    this.#existing = db.prepare('SELECT ts, type, value, samples, hz FROM readings WHERE device_id = ? AND seq = ?')
    this.#quarantine = db.prepare('INSERT INTO quarantine (device_id, seq, code, message, raw, received_at) VALUES (?, ?, ?, ?, ?, ?)')
    this.#countQuarantine = db.prepare<[], number>('SELECT count(*) FROM quarantine').pluck()
    this.#trimQuarantine = db.prepare('DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine ORDER BY id LIMIT ?)')
    this.#quarantineRows = this.#countQuarantine.get()!
    const tx = db.transaction((batch: PendingWrite[]) => this.#write(batch))
    this.#commit = (batch) => tx.immediate(batch)
  }

  /** Writes queued for the next flush. */
  get pending(): number {
    return this.#pending.length
  }

  get quarantineRows(): number {
    return this.#quarantineRows
  }

  /**
   * Queue a write. Without a linger it is committed with everything else that arrived in this
   * event-loop turn. With `lingerMs` (ingest commit linger, issue 11) a commit waits up to that long
   * for more writes — one fsynced commit then holds the PUBLISHes of several monitors —, but only
   * while it can pay off: as long as fewer devices have a write pending than wrote in the last
   * second or two (a lone device waiting for its own PUBACK is never kept waiting), and fewer than
   * LINGER_MAX_WRITES writes wait (a burst commits at the end of its turn, as without a linger).
   * Nothing changes for durability: every write's `done` still runs only after the transaction
   * holding it committed, and a crash during the linger loses only unacknowledged writes.
   */
  enqueue(w: PendingWrite): void {
    if (this.#closed) {
      w.done(new Error('gateway store is closing'), null)
      return
    }
    this.#pending.push(w)
    const linger = this.#opts.lingerMs ?? 0
    if (linger <= 0) {
      this.#scheduled ??= setImmediate(this.flush)
      return
    }
    this.#pendingDevices.add(w.deviceId)
    this.#noteActive(w.deviceId)
    if (this.#pending.length >= LINGER_MAX_WRITES || this.#pendingDevices.size >= this.#activeDevices()) {
      this.#scheduled ??= setImmediate(this.flush)
    } else {
      this.#lingerTimer ??= setTimeout(this.flush, linger)
    }
  }

  #noteActive(deviceId: string): void {
    const now = Date.now()
    if (now >= this.#windowEndsAt) {
      // Two generations: a device is active if it wrote in this window or the one before.
      this.#activePrev = now >= this.#windowEndsAt + ACTIVE_WINDOW_MS ? new Set() : this.#activeNow
      this.#activeNow = new Set()
      this.#windowEndsAt = now + ACTIVE_WINDOW_MS
    }
    this.#activeNow.add(deviceId)
  }

  #activeDevices(): number {
    if (this.#activePrev.size === 0) return this.#activeNow.size
    let n = this.#activePrev.size
    for (const d of this.#activeNow) if (!this.#activePrev.has(d)) n++
    return n
  }

  /** Commit everything pending now (also used at shutdown). */
  readonly flush = (): void => {
    if (this.#scheduled) clearImmediate(this.#scheduled)
    this.#scheduled = null
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer)
    this.#lingerTimer = null
    this.#pendingDevices.clear()
    const batch = this.#pending
    if (batch.length === 0) return
    this.#pending = []
    const started = process.hrtime.bigint()
    let result: CommitResult
    try {
      result = this.#commit(batch)
    } catch (e) {
      // Rolled back: nothing of this batch is stored, so nothing of it may be acknowledged.
      const err = e instanceof Error ? e : new Error(String(e))
      this.#opts.onError?.(err, batch.length)
      for (const w of batch) settle(w, err, null)
      return
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    this.#quarantineRows = result.quarantineRows
    let inserted = 0
    let duplicates = 0
    const rejectedByCode = new Map<string, number>()
    for (let i = 0; i < batch.length; i++) {
      const w = batch[i]!
      const r = result.outcomes[i]!
      if (r instanceof Error) {
        settle(w, r, null)
        continue
      }
      inserted += r.inserted
      duplicates += r.duplicates
      for (const q of w.rejections) rejectedByCode.set(q.code, (rejectedByCode.get(q.code) ?? 0) + 1)
      for (const q of r.conflicts) rejectedByCode.set(q.code, (rejectedByCode.get(q.code) ?? 0) + 1)
      settle(w, null, r)
    }
    this.#opts.onFlush?.({
      writes: batch.length,
      inserted,
      duplicates,
      quarantined: result.quarantined,
      quarantineDropped: result.dropped,
      quarantineRows: result.quarantineRows,
      bytes: result.bytes,
      seconds,
      rejectedByCode,
    })
  }

  /** Commit what is pending and refuse further writes. */
  close(): void {
    this.flush()
    this.#closed = true
  }

  /** Runs inside the IMMEDIATE transaction. Per-write problems (device gone) fail only that write. */
  #write(batch: PendingWrite[]): CommitResult {
    const directory = this.#opts.directory
    directory.refreshIfChanged() // a `device move` committed by the CLI applies from this commit on
    const outcomes: Array<WriteOutcome | Error> = []
    let quarantined = 0
    let bytes = 0
    for (const w of batch) {
      const patientId = directory.patientOf(w.deviceId)
      if (patientId === undefined) {
        outcomes.push(new DeviceNotEnrolledError(w.deviceId))
        continue
      }
      let inserted = 0
      let duplicates = 0
      let conflicts: GatewayRejection[] | null = null
      for (const r of w.readings) {
        const samples = r.samples ? encodeSamples(r.samples) : null
        const res = this.#insert.run(w.deviceId, r.seq, patientId, r.ts, w.receivedAt, r.type, r.unit, r.value ?? null, samples, r.hz ?? null)
        if (res.changes === 1) {
          inserted++
          bytes += 64 + w.deviceId.length + patientId.length + (samples ? samples.length : 8)
          continue
        }
        // QoS 1 is at-least-once [MQTT-4.3.2]: a device resends when it missed our PUBACK.
        if (sameReading(this.#existing.get(w.deviceId, r.seq)!, r, samples)) {
          duplicates++
        } else {
          ;(conflicts ??= []).push({
            seq: r.seq,
            code: 'SEQ_REUSED',
            message: `seq ${r.seq} is already stored for device ${w.deviceId} with different content; seq must never repeat (a reset device must continue above its last seq)`,
            raw: JSON.stringify(r),
          })
        }
      }
      for (const q of w.rejections) this.#quarantine.run(w.deviceId, q.seq, q.code, q.message, q.raw, w.receivedAt)
      if (conflicts) for (const q of conflicts) this.#quarantine.run(w.deviceId, q.seq, q.code, q.message, q.raw, w.receivedAt)
      quarantined += w.rejections.length + (conflicts?.length ?? 0)
      outcomes.push({ inserted, duplicates, conflicts: conflicts ?? [] })
    }
    let dropped = 0
    let rows = this.#quarantineRows + quarantined
    if (rows > this.#opts.quarantineMaxRows) {
      rows = this.#countQuarantine.get()!
      if (rows > this.#opts.quarantineMaxRows) {
        dropped = this.#trimQuarantine.run(rows - this.#opts.quarantineMaxRows).changes
        rows -= dropped
      }
    }
    this.#opts.beforeCommit?.()
    return { outcomes, quarantined, dropped, quarantineRows: rows, bytes }
  }
}

function sameReading(existing: ExistingRow, r: Reading, samples: Buffer | null): boolean {
  if (existing.ts !== r.ts || existing.type !== r.type) return false
  if (samples) return existing.samples !== null && sameSamples(existing.samples, samples, r.samples!) && existing.hz === (r.hz ?? null)
  return existing.value === (r.value ?? null)
}

/** A resend of a reading stored in the legacy format matches if it rounds to what was stored. */
function sameSamples(stored: Buffer, encoded: Buffer, samples: readonly number[]): boolean {
  if (!isLegacySamples(stored)) return encoded.equals(stored)
  const old = decodeSamples(stored)
  return old.length === samples.length && samples.every((s, i) => Math.fround(s) === old[i])
}

function settle(w: PendingWrite, err: Error | null, outcome: WriteOutcome | null): void {
  try {
    w.done(err, outcome)
  } catch (e) {
    // A callback bug must not keep the other writes of the batch from being acknowledged.
    queueMicrotask(() => {
      throw e
    })
  }
}
