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
      const rows = await q<{ stream: string; lo: number; hi: number }>(
        `SELECT i.stream, min(i.seq)::bigint AS lo, max(i.seq)::bigint AS hi FROM retrieval_index i JOIN records r ON r.id = i.record_id
         WHERE r.block_height IS NOT NULL AND r.block_height <= $1 AND i.to_ts >= $2 AND i.from_ts <= $3
           AND ($4::text IS NULL OR i.patient = $4) AND (i.types & $5) != 0
         GROUP BY i.stream ORDER BY i.stream COLLATE "C" LIMIT ${MAX_STREAMS + 1}`,
        [head, query.from, query.to, query.patient, typesMask(query.types)],
      )
      const streams: StreamSpan[] = []
      for (const r of rows.slice(0, MAX_STREAMS)) {
        const [s] = (await q<{ gateway_id: string; device: string; patient: string; front: number | null; back: number | null; head_seq: number }>(
          `SELECT s.gateway_id, s.device, s.patient,
             (SELECT max(i.seq) FROM retrieval_index i JOIN records r ON r.id = i.record_id
               WHERE i.stream = $1 AND i.seq < $2 AND i.sealed_at < $3 AND r.block_height IS NOT NULL AND r.block_height <= $6) AS front,
             (SELECT min(i.seq) FROM retrieval_index i JOIN records r ON r.id = i.record_id
               WHERE i.stream = $1 AND i.seq > $4 AND i.sealed_at > $5 AND r.block_height IS NOT NULL AND r.block_height <= $6) AS back,
             (SELECT max(seq) FROM records WHERE stream = $1 AND block_height IS NOT NULL AND block_height <= $6) AS head_seq
           FROM streams s WHERE s.stream = $1`,
          [r.stream, r.lo, query.from - query.skew, r.hi, query.to + query.lateness, head],
        )) as [{ gateway_id: string; device: string; patient: string; front: number | null; back: number | null; head_seq: number }]
        const firstSeq = s.front ?? 0
        const lastSeq = s.back ?? s.head_seq
        const held = (await q<{ seq: number }>('SELECT seq FROM records WHERE stream = $1 AND seq BETWEEN $2 AND $3 AND block_height IS NOT NULL AND block_height <= $4 ORDER BY seq', [r.stream, firstSeq, lastSeq, head])).map((h) => h.seq)
        streams.push({ stream: r.stream, gateway: s.gateway_id, device: s.device, patient: s.patient, firstSeq, lastSeq, headSeq: s.head_seq, gaps: gapsOf(held, firstSeq, lastSeq) })
      }
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
