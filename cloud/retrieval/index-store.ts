/**
 * The retrieval index: per chain record, the manifest fields a read or an export selects on
 * (patient pseudonym, reading-time range, vital types, sealing time), which the records table
 * keeps only inside each record's canonical content. It is derived data: rebuilt from the records
 * (catchUp, incremental by record id) and never trusted by clients, who re-check every record they
 * receive. Also the evidence plans of shared/protocol/evidence.ts: which seq span of each stream a
 * query needs, with its boundary batches and the gaps the cloud admits.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { decodeRecordContent } from '../chain/record.ts'
import { registerMigrations, type CloudDb, type Migration } from '../store/db.ts'
import { VITAL_TYPES } from '../../shared/schema/vitals.ts'
import type { EvidenceQuery, StreamSpan } from '../../shared/protocol/evidence.ts'

const SQL = `
  CREATE TABLE IF NOT EXISTS retrieval_index (
    record_id INTEGER PRIMARY KEY REFERENCES records (id),
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    patient TEXT NOT NULL,
    from_ts INTEGER NOT NULL,
    to_ts INTEGER NOT NULL,
    sealed_at INTEGER NOT NULL,
    -- bit i set: VITAL_TYPES[i] occurs in the batch; 0 for a record whose content does not decode
    types INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX IF NOT EXISTS retrieval_patient ON retrieval_index (patient, to_ts);
  CREATE INDEX IF NOT EXISTS retrieval_to ON retrieval_index (to_ts);
  CREATE INDEX IF NOT EXISTS retrieval_stream_seq ON retrieval_index (stream, seq);
`

export const RETRIEVAL_MIGRATIONS: readonly Migration[] = [{ name: 'retrieval/001-index', sql: SQL }]
registerMigrations(RETRIEVAL_MIGRATIONS)

export const typesMask = (types: readonly string[] | null): number =>
  types === null ? (1 << VITAL_TYPES.length) - 1 : types.reduce((m, t) => m | (1 << (VITAL_TYPES as string[]).indexOf(t)), 0)

/** Records indexed per step of a catch-up (the event loop runs in between). */
export const CATCH_UP_CHUNK = 2000

/** A record's index row (stream, seq, patient, from, to, sealedAt, types) from its canonical content; damaged content matches no query. */
export function indexRow(content: Uint8Array): [string, number, string, number, number, number, number] {
  try {
    const { manifest: m } = decodeRecordContent(content)
    return [m.stream, m.seq, m.patient, m.from, m.to, m.sealedAt, typesMask(m.types)]
  } catch {
    // Damaged content: chain verification reports it; it matches no query.
    return ['', -1, '', -1, -1, -1, 0]
  }
}

/** The seq ranges of [first, last] missing from `held` (ascending seqs). */
export function gapsOf(held: Iterable<number>, first: number, last: number): [number, number][] {
  const gaps: [number, number][] = []
  let expect = first
  for (const seq of held) {
    if (seq > expect) gaps.push([expect, seq - 1])
    expect = seq + 1
  }
  if (expect <= last) gaps.push([expect, last])
  return gaps
}

export class RetrievalIndex {
  readonly #db: CloudDb
  readonly #s
  #catching: Promise<void> | null = null

  constructor(db: CloudDb) {
    this.#db = db
    db.exec(SQL) // also for a database opened before this module registered its migration
    this.#s = {
      indexed: db.prepare('SELECT coalesce(max(record_id), 0) FROM retrieval_index').pluck(),
      newer: db.prepare('SELECT id, content FROM records WHERE id > ? ORDER BY id LIMIT ?'),
      insert: db.prepare('INSERT OR IGNORE INTO retrieval_index (record_id, stream, seq, patient, from_ts, to_ts, sealed_at, types) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      matching: db.prepare(
        `SELECT i.stream, min(i.seq) AS lo, max(i.seq) AS hi FROM retrieval_index i JOIN records r ON r.id = i.record_id
         WHERE r.block_height IS NOT NULL AND r.block_height <= @head AND i.to_ts >= @from AND i.from_ts <= @to
           AND (@patient IS NULL OR i.patient = @patient) AND (i.types & @mask) != 0
         GROUP BY i.stream ORDER BY i.stream LIMIT 10001`,
      ),
      front: db
        .prepare(
          `SELECT max(i.seq) FROM retrieval_index i JOIN records r ON r.id = i.record_id
           WHERE i.stream = ? AND i.seq < ? AND i.sealed_at < ? AND r.block_height IS NOT NULL AND r.block_height <= ?`,
        )
        .pluck(),
      back: db
        .prepare(
          `SELECT min(i.seq) FROM retrieval_index i JOIN records r ON r.id = i.record_id
           WHERE i.stream = ? AND i.seq > ? AND i.sealed_at > ? AND r.block_height IS NOT NULL AND r.block_height <= ?`,
        )
        .pluck(),
      headSeq: db.prepare('SELECT max(seq) FROM records WHERE stream = ? AND block_height IS NOT NULL AND block_height <= ?').pluck(),
      held: db.prepare('SELECT seq FROM records WHERE stream = ? AND seq BETWEEN ? AND ? AND block_height IS NOT NULL AND block_height <= ? ORDER BY seq').pluck(),
      stream: db.prepare('SELECT gateway_id, device, patient FROM streams WHERE stream = ?'),
      span: db.prepare('SELECT id, seq FROM records WHERE stream = ? AND seq BETWEEN ? AND ? AND block_height IS NOT NULL AND block_height <= ? ORDER BY seq LIMIT ?'),
    }
  }

  /** Index every record appended since the last call, in chunks that leave the event loop free in between. */
  catchUp(): Promise<void> {
    if (this.#catching) return this.#catching
    const run = (async () => {
      for (;;) {
        const after = this.#s.indexed.get() as number
        const rows = this.#s.newer.all(after, CATCH_UP_CHUNK) as { id: number; content: Buffer }[]
        if (rows.length === 0) return
        this.#db.transaction(() => {
          for (const row of rows) this.#index(row.id, row.content)
        })()
        if (rows.length < CATCH_UP_CHUNK) return
        await yieldToLoop()
      }
    })()
    this.#catching = run.finally(() => {
      this.#catching = null
    })
    return this.#catching
  }

  #index(id: number, content: Buffer): void {
    this.#s.insert.run(id, ...indexRow(new Uint8Array(content.buffer, content.byteOffset, content.byteLength)))
  }

  /**
   * The seq span of every stream the query touches, as of block `head` (shared/protocol/evidence.ts):
   * from the front boundary (or seq 0) to the back boundary (or the stream's newest batch at the head).
   */
  plan(q: EvidenceQuery, head: number): { streams: StreamSpan[]; truncated: boolean } {
    const rows = this.#s.matching.all({ head, from: q.from, to: q.to, patient: q.patient, mask: typesMask(q.types) }) as { stream: string; lo: number; hi: number }[]
    const truncated = rows.length > 10_000
    const streams = rows.slice(0, 10_000).map((r): StreamSpan => {
      const info = this.#s.stream.get(r.stream) as { gateway_id: string; device: string; patient: string }
      const firstSeq = (this.#s.front.get(r.stream, r.lo, q.from - q.skew, head) as number | null) ?? 0
      const headSeq = this.#s.headSeq.get(r.stream, head) as number
      const lastSeq = (this.#s.back.get(r.stream, r.hi, q.to + q.lateness, head) as number | null) ?? headSeq
      return { stream: r.stream, gateway: info.gateway_id, device: info.device, patient: info.patient, firstSeq, lastSeq, headSeq, gaps: this.#gaps(r.stream, firstSeq, lastSeq, head) }
    })
    return { streams, truncated }
  }

  /** Record ids of a stream's seqs [fromSeq, toSeq] sealed into blocks up to `head`, in seq order. */
  span(stream: string, fromSeq: number, toSeq: number, head: number, limit: number): { id: number; seq: number }[] {
    return this.#s.span.all(stream, fromSeq, toSeq, head, limit) as { id: number; seq: number }[]
  }

  #gaps(stream: string, first: number, last: number, head: number): [number, number][] {
    return gapsOf(this.#s.held.iterate(stream, first, last, head) as Iterable<number>, first, last)
  }
}
