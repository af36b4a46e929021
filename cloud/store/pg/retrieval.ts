/**
 * The retrieval routes' reads (cloud/retrieval/reads.ts) on the PostgreSQL every cloud process of a
 * deployment shares: the evidence plan from the shared retrieval index (retrieval-schema.ts, kept up
 * by whichever process serves a plan: INSERT … ON CONFLICT DO NOTHING, so processes catching up
 * together write each row once), record proofs from the chain (PgChainStore.recordProofs), and the
 * redaction evidence from the supervision tables (supervision-schema.ts). The same queries as the
 * SQLite side (index-store.ts, redactions.ts), in PostgreSQL's dialect.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import type { EvidenceQuery, StreamSpan } from '../../../shared/protocol/evidence.ts'
import { CATCH_UP_CHUNK, gapsOf, indexRow, typesMask } from '../../retrieval/index-store.ts'
import { logEntryJson, recordRedaction } from '../../retrieval/redactions.ts'
import type { RetrievalReads } from '../../retrieval/reads.ts'
import type { PgChainStore } from './chain-store.ts'

const u8 = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
const MAX_STREAMS = 10_000

export function pgRetrievalReads(chain: PgChainStore): RetrievalReads {
  const pool = chain.pool
  const q = async <T extends object>(sql: string, params: unknown[] = []): Promise<T[]> => (await pool.query<T & import('pg').QueryResultRow>(sql, params)).rows
  let catching: Promise<void> | null = null

  const catchUpOnce = async (): Promise<void> => {
    for (;;) {
      const [{ after }] = (await q<{ after: number }>('SELECT coalesce(max(record_id), 0)::bigint AS after FROM retrieval_index')) as [{ after: number }]
      const rows = await q<{ id: number; content: Buffer }>('SELECT id, content FROM records WHERE id > $1 ORDER BY id LIMIT $2', [after, CATCH_UP_CHUNK])
      if (rows.length === 0) return
      const cols: unknown[][] = [[], [], [], [], [], [], [], [], []]
      for (const r of rows) [r.id, ...indexRow(u8(r.content))].forEach((v, i) => cols[i]!.push(v))
      await pool.query(
        `INSERT INTO retrieval_index (record_id, stream, seq, patient, from_ts, to_ts, sealed_at, types)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::int[])
         ON CONFLICT (record_id) DO NOTHING`,
        cols.slice(0, 8),
      )
      if (rows.length < CATCH_UP_CHUNK) return
      await yieldToLoop()
    }
  }

  return {
    catchUp() {
      catching ??= catchUpOnce().finally(() => {
        catching = null
      })
      return catching
    },

    async plan(query: EvidenceQuery, head: number) {
      // One query, however many streams: each stream's span in the window, then per stream (LATERAL)
      // the sealed neighbours that bound it, its head and the seqs held between them — the same
      // reads the SQLite side (index-store.ts) makes one stream at a time, without a round trip each.
      type Row = { stream: string; gateway_id: string; device: string; patient: string; front: number | null; back: number | null; head_seq: number; held: string[] | null }
      const sealed = 'r.block_height IS NOT NULL AND r.block_height <= $1'
      const rows = await q<Row>(
        `WITH spans AS (
           SELECT i.stream, min(i.seq) AS lo, max(i.seq) AS hi FROM retrieval_index i JOIN records r ON r.id = i.record_id
           WHERE ${sealed} AND i.to_ts >= $2 AND i.from_ts <= $3 AND ($4::text IS NULL OR i.patient = $4) AND (i.types & $5) != 0
           GROUP BY i.stream ORDER BY i.stream COLLATE "C" LIMIT ${MAX_STREAMS + 1}
         )
         SELECT sp.stream, s.gateway_id, s.device, s.patient, f.front, b.back, h.head_seq, held.seqs AS held
         FROM spans sp JOIN streams s ON s.stream = sp.stream
         CROSS JOIN LATERAL (SELECT max(i.seq) AS front FROM retrieval_index i JOIN records r ON r.id = i.record_id
                             WHERE i.stream = sp.stream AND i.seq < sp.lo AND i.sealed_at < $6 AND ${sealed}) f
         CROSS JOIN LATERAL (SELECT min(i.seq) AS back FROM retrieval_index i JOIN records r ON r.id = i.record_id
                             WHERE i.stream = sp.stream AND i.seq > sp.hi AND i.sealed_at > $7 AND ${sealed}) b
         CROSS JOIN LATERAL (SELECT max(r.seq) AS head_seq FROM records r WHERE r.stream = sp.stream AND ${sealed}) h
         CROSS JOIN LATERAL (SELECT array_agg(r.seq ORDER BY r.seq) AS seqs FROM records r
                             WHERE r.stream = sp.stream AND r.seq BETWEEN coalesce(f.front, 0) AND coalesce(b.back, h.head_seq) AND ${sealed}) held
         ORDER BY sp.stream COLLATE "C"`,
        [head, query.from, query.to, query.patient, typesMask(query.types), query.from - query.skew, query.to + query.lateness],
      )
      const streams: StreamSpan[] = rows.slice(0, MAX_STREAMS).map((r) => {
        const firstSeq = r.front ?? 0
        const lastSeq = r.back ?? r.head_seq
        const held = (r.held ?? []).map(Number) // int8[] arrives as text
        return { stream: r.stream, gateway: r.gateway_id, device: r.device, patient: r.patient, firstSeq, lastSeq, headSeq: r.head_seq, gaps: gapsOf(held, firstSeq, lastSeq) }
      })
      return { streams, truncated: rows.length > MAX_STREAMS }
    },

    span: (stream, fromSeq, toSeq, head, limit) =>
      q<{ id: number; seq: number }>('SELECT id, seq FROM records WHERE stream = $1 AND seq BETWEEN $2 AND $3 AND block_height IS NOT NULL AND block_height <= $4 ORDER BY seq LIMIT $5', [stream, fromSeq, toSeq, head, limit]),

    async headers(from, to) {
      const rows = await q<{ height: number; header: Buffer }>('SELECT height, header FROM blocks WHERE height BETWEEN $1 AND $2 ORDER BY height', [from, to])
      const headers = []
      for (const [i, r] of rows.entries()) {
        if (r.height !== from + i) break // as on SQLite: up to the first missing height
        headers.push({ height: r.height, header: r.header.toString('hex') })
      }
      return headers
    },

    recordProofs: (ids) => chain.recordProofs(ids),

    async redactions(ids) {
      if (ids.length === 0) return []
      const rows = await q<{ record_id: number; seq: number; entry: Buffer; hash: Buffer; log_hash: Buffer; prev: Buffer | null }>(
        `SELECT DISTINCT ON (l.record_id) l.record_id, l.seq, l.entry, l.hash, l.log_hash, p.log_hash AS prev
         FROM redaction_log l LEFT JOIN redaction_log p ON p.seq = l.seq - 1
         WHERE l.record_id = ANY($1::bigint[]) ORDER BY l.record_id, l.seq DESC`,
        [ids],
      )
      const byRecord = new Map(rows.map((r) => [r.record_id, r]))
      return ids.map((id) => {
        const r = byRecord.get(id)
        return r ? recordRedaction(r, r.prev ?? undefined) : null
      })
    },

    async log(count) {
      if (count === 0) return []
      return (await q<{ entry: Buffer }>('SELECT entry FROM redaction_log ORDER BY seq LIMIT $1', [count])).map((r) => logEntryJson(r.entry))
    },

    async policies() {
      return (await q<{ policy: string }>('SELECT policy FROM supervisory_policies ORDER BY set_at, added')).map((p) => JSON.parse(p.policy) as Record<string, unknown>)
    },
  }
}
