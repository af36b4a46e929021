/**
 * The sealer: every few seconds, each stream's unsealed readings become sealed batches.
 *
 *   sealerStages = [findDueStreams, takeReadings, sealBatch (seal.ts), commitBatch]
 *
 * Crash safety: ONE transaction per pass stores the envelope blocks (envelope_blocks, gateway
 * schema v3), inserts the batches, marks their readings sealed, advances the streams and queues the
 * outbox entries. A crash before that commit leaves the readings unsealed (they are sealed again,
 * under the same stream seq, on the next pass) and nothing else; after it, everything is
 * consistent. So every stored reading ends up in exactly one batch, and every batch has its
 * envelope.
 *
 * Stream keys (docs/crypto.md §Stream keys): each stream's encapsulation is kept in memory only —
 * never written to disk — and replaced when the stream's policy or epoch changes, after
 * KEM_MAX_AGE_MS, and at every start; so a ward costs one CP-ABE Encaps per stream a day, not
 * one per batch.
 */
import type Database from 'better-sqlite3'
import type { Logger } from 'pino'
import { patientPseudonym, streamId as makeStreamId } from '../../shared/protocol/pseudonym.ts'
import type { SealedReading } from '../../shared/protocol/batch.ts'
import { manifestBytes } from '../../shared/protocol/manifest.ts'
import type { VitalType } from '../../shared/schema/vitals.ts'
import type { GatewayIdentity } from '../identity.ts'
import type { StreamKem } from '../../shared/crypto/envelope.ts'
import { decodeSamples, type ReadingRow as StoredRow } from '../store/readings.ts'
import { policyFor, sealBatch, type SealedBatch, type StreamPosition } from './seal.ts'

/** Readings per batch, and an estimate of plaintext bytes that keeps an envelope one IPFS block. */
export const MAX_BATCH_READINGS = 5000
export const MAX_BATCH_BYTES = 900 * 1024
/** A stream's encapsulation is replaced after this long even under an unchanged policy: it bounds what one exposed K opens. */
export const KEM_MAX_AGE_MS = 24 * 3600_000

/** The columns the sealer takes (see prepareQueries). */
type ReadingRow = Pick<StoredRow, 'id' | 'seq' | 'ts' | 'received_at' | 'type' | 'unit' | 'value' | 'samples' | 'hz'>

interface StreamRow {
  stream_id: string
  pseudonym: string
  next_seq: number
  last_commitment: string | null
}

/** A pass commits what it sealed at the latest after this many readings (a backlog's pass holds at most this much sealed in memory). */
export const COMMIT_EVERY_READINGS = 20_000

/** One batch sealed and its block stored, waiting for the pass's commit. */
interface SealedPending {
  readonly position: StreamPosition
  readonly sealed: SealedBatch
  readonly count: number
  readonly first: number
  readonly last: number
  readonly now: number
}

/** A stream's batches of this pass, in stream order. */
interface StreamWork {
  readonly deviceId: string
  readonly patientId: string
  readonly batches: SealedPending[]
}

export interface SealReport {
  readonly batches: number
  readonly readings: number
  /** Streams whose sealing failed this pass (logged as seal_failed; retried next pass). */
  readonly failed: number
  /** The pass stopped at its `maxReadings` with readings left unsealed. */
  readonly more: boolean
  readonly ms: number
}

const toSealed = (r: ReadingRow): SealedReading =>
  r.samples
    ? { seq: r.seq, ts: r.ts, rx: r.received_at, type: r.type as VitalType, unit: r.unit, samples: Array.from(decodeSamples(r.samples)), hz: r.hz ?? 0 }
    : { seq: r.seq, ts: r.ts, rx: r.received_at, type: r.type as VitalType, unit: r.unit, value: r.value ?? 0 }

function prepareQueries(db: Database.Database) {
  return {
    due: db.prepare<[], { device_id: string; patient_id: string }>(
      'SELECT device_id, patient_id, min(id) AS first FROM readings WHERE batch_id IS NULL GROUP BY device_id, patient_id ORDER BY first',
    ),
    take: db.prepare<[string, string, number, number], ReadingRow>(
      'SELECT id, seq, ts, received_at, type, unit, value, samples, hz FROM readings WHERE batch_id IS NULL AND device_id = ? AND patient_id = ? AND id > ? ORDER BY id LIMIT ?',
    ),
    stream: db.prepare<[string, string], StreamRow>('SELECT stream_id, pseudonym, next_seq, last_commitment FROM streams WHERE device_id = ? AND patient_id = ?'),
    newStream: db.prepare('INSERT INTO streams (stream_id, device_id, patient_id, pseudonym) VALUES (?, ?, ?, ?)'),
    policy: db.prepare<[string], string>('SELECT policy FROM patient_policies WHERE patient_id = ?').pluck(),
    insertBatch: db.prepare(
      `INSERT INTO batches (stream_id, seq, manifest, signature, commitment, cid, count, first_reading, last_reading, sealed_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    mark: db.prepare('UPDATE readings SET batch_id = ? WHERE batch_id IS NULL AND device_id = ? AND patient_id = ? AND id BETWEEN ? AND ?'),
    advance: db.prepare('UPDATE streams SET next_seq = next_seq + 1, last_commitment = ? WHERE stream_id = ? AND next_seq = ?'),
    enqueue: db.prepare('INSERT INTO outbox (batch_id) VALUES (?)'),
    storeBlock: db.prepare('INSERT OR REPLACE INTO envelope_blocks (cid, bytes) VALUES (?, ?)'),
  }
}

export class Sealer {
  readonly #db: Database.Database
  readonly #id: GatewayIdentity
  readonly #defaultPolicy: string
  readonly #log: Logger
  readonly #q: ReturnType<typeof prepareQueries>
  /** streamId → its current encapsulation and when it was made. */
  readonly #kems = new Map<string, { kem: StreamKem; at: number }>()

  constructor(db: Database.Database, identity: GatewayIdentity, defaultPolicy: string, logger: Logger) {
    this.#db = db
    this.#id = identity
    this.#defaultPolicy = defaultPolicy
    this.#log = logger
    this.#q = prepareQueries(db)
  }

  /**
   * Seal everything unsealed now; returns what was done.
   *
   * Every stream's batches are sealed first; then ONE transaction commits the pass with their
   * blocks (each stream in its own savepoint, so a stream whose commit fails is rolled back alone
   * and tried again next pass). One fsync a pass instead of one a batch: at a ward's load that was
   * the largest cost of the back office (docs/operations.md §Capacity). A backlog is committed every
   * COMMIT_EVERY_READINGS readings, so a long pass holds neither much memory nor its work uncommitted.
   * `maxReadings` caps the pass (at a batch's end): the back office on the ingest thread uses it.
   */
  async sealDue(now = Date.now(), maxReadings = Infinity): Promise<SealReport> {
    const t0 = performance.now()
    let failed = 0
    let sealedThisPass = 0
    let more = false
    const counts = { batches: 0, readings: 0 }
    let pass: StreamWork[] = []
    let uncommitted = 0
    const commit = (): void => {
      const r = this.#commitPass(pass)
      counts.batches += r.batches
      counts.readings += r.readings
      failed += r.failed
      pass = []
      uncommitted = 0
    }
    for (const [id, k] of this.#kems) if (now - k.at >= KEM_MAX_AGE_MS) this.#kems.delete(id)
    for (const { device_id, patient_id } of this.#q.due.all()) {
      if (sealedThisPass >= maxReadings) {
        more = true
        break
      }
      // One stream that cannot be sealed (say, an unusable per-patient policy) must not hold up the others.
      let work: StreamWork | null = null
      try {
        const stream = this.#streamFor(device_id, patient_id)
        let position: StreamPosition = {
          streamId: stream.stream_id,
          deviceId: device_id,
          pseudonym: stream.pseudonym,
          nextSeq: stream.next_seq,
          prevCommitment: stream.last_commitment,
        }
        let afterId = 0
        for (;;) {
          const { rows, more: left } = this.#takeBatch(device_id, patient_id, afterId)
          if (rows.length === 0) break
          const batch = await this.#sealOne(position, patient_id, rows, now)
          work ??= { deviceId: device_id, patientId: patient_id, batches: [] }
          work.batches.push(batch)
          uncommitted += rows.length
          sealedThisPass += rows.length
          position = { ...position, nextSeq: position.nextSeq + 1, prevCommitment: batch.sealed.commitment }
          afterId = batch.last
          if (uncommitted >= COMMIT_EVERY_READINGS) {
            pass.push(work)
            work = null
            commit()
          }
          // Keep going while the stream has more: a batch cut by size (ECG) is not the end of the backlog.
          if (!left) break
          if (sealedThisPass >= maxReadings) {
            more = true
            break
          }
        }
      } catch (err) {
        failed++
        this.#log.error({ event: 'seal_failed', device: device_id, err }, `could not seal the readings of ${device_id}; they stay stored and are tried again next pass`)
      }
      // What was sealed before a failure is still committed: it is a valid prefix of the stream.
      if (work) pass.push(work)
    }
    if (pass.length) commit()
    return { ...counts, failed, more, ms: performance.now() - t0 }
  }

  /** takeReadings: oldest first after `afterId`, cut so the envelope stays one block; `more` when readings are left behind. */
  #takeBatch(deviceId: string, patientId: string, afterId: number): { rows: ReadingRow[]; more: boolean } {
    const rows = this.#q.take.all(deviceId, patientId, afterId, MAX_BATCH_READINGS)
    let bytes = 0
    for (let i = 0; i < rows.length; i++) {
      bytes += 64 + (rows[i]!.samples ? (rows[i]!.samples!.length / 4) * 5 : 9)
      if (bytes > MAX_BATCH_BYTES && i > 0) return { rows: rows.slice(0, i), more: true }
    }
    return { rows, more: rows.length === MAX_BATCH_READINGS }
  }

  /**
   * commitBatch for a whole pass: one IMMEDIATE transaction, a savepoint per stream. A stream whose
   * savepoint fails is rolled back alone, its blocks with it.
   */
  #commitPass(pass: readonly StreamWork[]): { batches: number; readings: number; failed: number } {
    const out = { batches: 0, readings: 0, failed: 0 }
    const stream = this.#db.transaction((w: StreamWork) => {
      for (const b of w.batches) {
        const streamId = b.position.streamId
        this.#q.storeBlock.run(b.sealed.cid.toString(), b.sealed.envelope)
        const batchId = Number(
          this.#q.insertBatch.run(streamId, b.position.nextSeq, manifestBytes(b.sealed.manifest), b.sealed.signature, b.sealed.commitment, b.sealed.cid.toString(), b.count, b.first, b.last, b.now)
            .lastInsertRowid,
        )
        const marked = this.#q.mark.run(batchId, w.deviceId, w.patientId, b.first, b.last).changes
        if (marked !== b.count) throw new Error(`sealer: marked ${marked} readings for a batch of ${b.count}; aborting this stream's batches`)
        if (this.#q.advance.run(b.sealed.commitment, streamId, b.position.nextSeq).changes !== 1) {
          throw new Error(`sealer: stream ${streamId} moved past seq ${b.position.nextSeq} underneath us`)
        }
        this.#q.enqueue.run(batchId)
      }
    })
    try {
      this.#db
        .transaction(() => {
          for (const w of pass) {
            try {
              stream(w) // nested: a savepoint
              out.batches += w.batches.length
              for (const b of w.batches) out.readings += b.count
            } catch (err) {
              out.failed++
              this.#log.error({ event: 'seal_failed', device: w.deviceId, err }, `could not commit the batches of ${w.deviceId}; its readings stay stored and are sealed again next pass`)
            }
          }
        })
        .immediate()
    } catch (err) {
      this.#log.error({ event: 'seal_failed', streams: pass.length, err }, 'could not commit this sealing pass; its readings stay stored and are sealed again next pass')
      return { batches: 0, readings: 0, failed: pass.length }
    }
    for (const w of pass) {
      for (const b of w.batches) this.#log.debug({ event: 'batch_sealed', stream: b.position.streamId, seq: b.position.nextSeq, count: b.count, cid: b.sealed.cid.toString() }, 'sealed batch')
    }
    return out
  }

  #streamFor(deviceId: string, patientId: string): StreamRow {
    const existing = this.#q.stream.get(deviceId, patientId)
    if (existing) return existing
    const pseudonym = patientPseudonym(this.#id.pseudonymKey, patientId)
    const id = makeStreamId(this.#id.gatewayId, deviceId, pseudonym)
    this.#q.newStream.run(id, deviceId, patientId, pseudonym)
    return { stream_id: id, pseudonym, next_seq: 0, last_commitment: null }
  }

  /** sealBatch; its block is stored by the pass's commit (commitPass), so a committed batch always has its ciphertext. */
  async #sealOne(position: StreamPosition, patientId: string, rows: ReadingRow[], now: number): Promise<SealedPending> {
    const template = this.#q.policy.get(patientId) ?? this.#defaultPolicy
    const kept = this.#kems.get(position.streamId)
    const fresh = kept && now - kept.at < KEM_MAX_AGE_MS && now >= kept.at ? kept.kem : null
    const sealed = await sealBatch({
      gatewayId: this.#id.gatewayId,
      gatewaySecretKey: this.#id.secretKey,
      mpk: this.#id.mpk,
      policy: policyFor(template, position.pseudonym),
      stream: position,
      readings: rows.map(toSealed),
      now,
      kem: fresh,
    })
    if (sealed.kem !== fresh) this.#kems.set(position.streamId, { kem: sealed.kem, at: now })
    return { position, sealed, count: rows.length, first: rows[0]!.id, last: rows[rows.length - 1]!.id, now }
  }
}
