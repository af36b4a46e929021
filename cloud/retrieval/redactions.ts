/**
 * Evidence v2 (shared/protocol/evidence.ts): beside each record a redaction changed, its newest
 * redaction log entry and the entry's link in the log; and the supervisory policies of the chain,
 * which the clients check the entries against. Read from the supervision tables (cloud/supervision/
 * schema.ts); nothing here is trusted by the clients, who re-check every entry and row.
 */
import { bytesToHex } from '@noble/hashes/utils.js'
import { decodeRedactionLogEntry } from '../../shared/protocol/redaction-log.ts'
import type { RecordRedaction } from '../../shared/protocol/evidence.ts'
import type { CloudDb } from '../store/db.ts'

const ZERO = '00'.repeat(32)

export class RedactionEvidence {
  readonly #newest
  readonly #logHash
  readonly #policies
  readonly #log

  constructor(db: CloudDb) {
    this.#newest = db.prepare('SELECT seq, entry, hash, log_hash FROM redaction_log WHERE record_id = ? ORDER BY seq DESC LIMIT 1')
    this.#logHash = db.prepare('SELECT log_hash FROM redaction_log WHERE seq = ?').pluck()
    this.#policies = db.prepare('SELECT policy FROM supervisory_policies ORDER BY set_at, rowid').pluck()
    this.#log = db.prepare('SELECT entry FROM redaction_log ORDER BY seq LIMIT ?').pluck()
  }

  /** The first `count` entries of the redaction log (the ones a head block commits), in seq order, as JSON. */
  log(count: number): Record<string, unknown>[] {
    if (count === 0) return []
    return (this.#log.all(count) as Uint8Array[]).map(logEntryJson)
  }

  /** The record's newest redaction log entry, or null when no redaction changed it. */
  of(record: number): RecordRedaction | null {
    const r = this.#newest.get(record) as { seq: number; entry: Uint8Array; hash: Uint8Array; log_hash: Uint8Array } | undefined
    if (!r) return null
    const prev = r.seq > 1 ? (this.#logHash.get(r.seq - 1) as Uint8Array | undefined) : undefined
    return recordRedaction(r, prev)
  }

  /** Every supervisory policy the cloud holds (oldest first), as JSON. */
  policies(): Record<string, unknown>[] {
    return (this.#policies.all() as string[]).map((p) => JSON.parse(p) as Record<string, unknown>)
  }
}

/** A stored redaction log entry as the evidence sends it (JSON). */
export const logEntryJson = (entry: Uint8Array): Record<string, unknown> => decodeRedactionLogEntry(new Uint8Array(entry)) as unknown as Record<string, unknown>

/** A record's newest log row, with the log hash of the entry before it (undefined for the first), as evidence. */
export function recordRedaction(r: { seq: number; entry: Uint8Array; hash: Uint8Array; log_hash: Uint8Array }, prevLogHash: Uint8Array | undefined): RecordRedaction {
  return {
    seq: r.seq,
    entry: logEntryJson(r.entry),
    hash: bytesToHex(new Uint8Array(r.hash)),
    prevLogHash: prevLogHash ? bytesToHex(new Uint8Array(prevLogHash)) : ZERO,
    logHash: bytesToHex(new Uint8Array(r.log_hash)),
  }
}
