/**
 * What the retrieval routes (routes.ts) read, behind one interface with two implementations, the
 * way cloud/access/store.ts does it for the access stores:
 *
 * - SQLite: the retrieval index (index-store.ts), the redaction evidence (redactions.ts) and the
 *   chain of the process's own cloud.db; their methods answer synchronously, which the
 *   `Awaitable` results allow.
 * - PostgreSQL (cloud/store/pg/retrieval.ts): the same reads on the database every cloud process
 *   of a `--database postgres://…` deployment shares — the chain, its retrieval index (migration
 *   `ops/001-retrieval-index`) and the supervision tables — so a read or an export may go to any
 *   process.
 *
 * Callers always `await` the results. Nothing read here is trusted by the clients: they check
 * every answer against the signed head (docs/api.md §Retrieval).
 */
import type { EvidenceQuery, RecordRedaction, StreamSpan } from '../../shared/protocol/evidence.ts'
import type { Awaitable } from '../access/store.ts'
import type { ChainStore, RecordProof } from '../chain/store.ts'
import type { CloudDb } from '../store/db.ts'
import { RetrievalIndex } from './index-store.ts'
import { RedactionEvidence } from './redactions.ts'

export interface RetrievalReads {
  /** Index every record appended since the last call (derived data, incremental by record id). */
  catchUp(): Promise<void>
  /** The seq span of every stream the query touches, as of block `head` (shared/protocol/evidence.ts). */
  plan(q: EvidenceQuery, head: number): Awaitable<{ streams: StreamSpan[]; truncated: boolean }>
  /** Record ids of a stream's seqs [fromSeq, toSeq] sealed into blocks up to `head`, in seq order. */
  span(stream: string, fromSeq: number, toSeq: number, head: number, limit: number): Awaitable<{ id: number; seq: number }[]>
  /** The canonical header bytes (hex) of the stored blocks from `from` to `to`, stopping at the first missing one. */
  headers(from: number, to: number): Awaitable<{ height: number; header: string }[]>
  /** The record proof of each id, in the order given (null where the record is unknown or not sealed). */
  recordProofs(ids: readonly number[]): Awaitable<(RecordProof | null)[]>
  /** Each record's newest redaction log entry with its link in the log, or null. */
  redactions(ids: readonly number[]): Awaitable<(RecordRedaction | null)[]>
  /** The first `count` entries of the redaction log (those a head commits), as JSON. */
  log(count: number): Awaitable<Record<string, unknown>[]>
  /** Every supervisory policy (oldest first), as JSON. */
  policies(): Awaitable<Record<string, unknown>[]>
}

/** The retrieval reads on a SQLite cloud database (the embedded default). */
export function sqliteRetrievalReads(db: CloudDb, chain: ChainStore): RetrievalReads {
  const index = new RetrievalIndex(db)
  const redactions = new RedactionEvidence(db)
  return {
    catchUp: () => index.catchUp(),
    plan: (q, head) => index.plan(q, head),
    span: (stream, fromSeq, toSeq, head, limit) => index.span(stream, fromSeq, toSeq, head, limit),
    headers(from, to) {
      const headers = []
      for (let h = from; h <= to; h++) {
        const b = chain.getBlock(h)
        if (!b) break
        headers.push({ height: h, header: b.headerBytes })
      }
      return headers
    },
    recordProofs: (ids) => chain.recordProofs(ids),
    redactions: (ids) => ids.map((id) => redactions.of(id)),
    log: (count) => redactions.log(count),
    policies: () => redactions.policies(),
  }
}
