/**
 * The supervision workflow's tables in PostgreSQL (cloud/supervision/tables.ts is the interface
 * and the SQLite side), shared by every cloud process of a `--database postgres://…` deployment:
 * a request made at one process is approved, signed and applied at any other.
 *
 * Across processes the database decides, never a read-then-write: the partial unique index allows
 * one pending request per record, the primary key one decision per regulator and request, the
 * UNIQUE signature one use of an approval. Applying a redaction is one transaction under the
 * chain-write advisory lock (LOCKS.chainWrite, the lock every append and seal takes first), so it
 * never interleaves with an append or a seal of another process; it closes the request only while
 * it is still pending (of two processes receiving the last share at once, exactly one applies),
 * swaps the record's content only while it is what the rules read, appends the hash-linked log
 * entry and seals the block committing it (header v2) in the same transaction.
 */
import type pg from 'pg'
import type { RawRecord } from '../../chain/record.ts'
import type { BlockSummary } from '../../chain/store.ts'
import { nextLogHash } from '../../supervision/log-state.ts'
import type { ApplyOutcome, ApplyWrite, DecisionRow, LogRow, NewRequestRow, Refusal, RequestRow, RequestStatus, SupervisionTables } from '../../supervision/tables.ts'
import { LOCKS, LOCK_SPACE } from './migrations.ts'
import { inTransaction } from './pool.ts'
import { SupervisionStore, type SupervisionOptions } from '../../supervision/store.ts'
import type { PgChainStore } from './chain-store.ts'

/** The sealer the applying transaction calls on its own connection (PgChainStore.sealIn). */
export type PgSeal = (c: pg.PoolClient, now: number) => Promise<BlockSummary | null>

const RECORD_COLUMNS = 'id, stream, seq, gateway_id, content, hash, opening, manifest_commitment, prev_commitment, cid, received_at, block_height'
const REQUEST_COLUMNS = 'id, policy, record_id, action, reason, requester, old_content, new_content, new_content_digest, old_cid, new_cid, new_envelope, evidence, status, signers, created_at, closed_at, requester_signature'
const isUniqueViolation = (e: unknown): boolean => (e as { code?: string } | null)?.code === '23505'
const b = (x: Uint8Array): Buffer => Buffer.from(x.buffer, x.byteOffset, x.byteLength)

export class PgSupervisionTables implements SupervisionTables {
  readonly kind = 'postgres' as const
  readonly #pool: pg.Pool
  readonly #seal: PgSeal | undefined

  constructor(pool: pg.Pool, seal?: PgSeal) {
    this.#pool = pool
    this.#seal = seal
  }

  async #rows<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.#pool.query<T>(sql, params)).rows
  }

  async #unique(sql: string, params: unknown[]): Promise<boolean> {
    try {
      await this.#pool.query(sql, params)
      return true
    } catch (e) {
      if (isUniqueViolation(e)) return false
      throw e
    }
  }

  async addPolicy(id: string, policy: string, at: number): Promise<void> {
    await this.#pool.query('INSERT INTO supervisory_policies (id, policy, set_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING', [id, policy, at])
  }

  async latestPolicy(): Promise<string | null> {
    return (await this.#rows<{ policy: string }>('SELECT policy FROM supervisory_policies ORDER BY set_at DESC, added DESC LIMIT 1'))[0]?.policy ?? null
  }

  async policyById(id: string): Promise<string | null> {
    return (await this.#rows<{ policy: string }>('SELECT policy FROM supervisory_policies WHERE id = $1', [id]))[0]?.policy ?? null
  }

  async record(id: number): Promise<RawRecord | null> {
    return (await this.#rows<RawRecord>(`SELECT ${RECORD_COLUMNS} FROM records WHERE id = $1`, [id]))[0] ?? null
  }

  async recordHash(id: number): Promise<Uint8Array | null> {
    return (await this.#rows<{ hash: Buffer }>('SELECT hash FROM records WHERE id = $1', [id]))[0]?.hash ?? null
  }

  async hasPending(record: number): Promise<boolean> {
    return (await this.#rows("SELECT 1 FROM supervision_requests WHERE record_id = $1 AND status = 'pending'", [record])).length > 0
  }

  async hasRequest(id: string): Promise<boolean> {
    return (await this.#rows('SELECT 1 FROM supervision_requests WHERE id = $1', [id])).length > 0
  }

  addRequest(r: NewRequestRow): Promise<boolean> {
    return this.#unique(
      `INSERT INTO supervision_requests (id, policy, record_id, action, reason, requester, old_content, new_content, new_content_digest, old_cid, new_cid, new_envelope, evidence, status, created_at, requester_signature)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'pending', $14, $15)`,
      [r.id, r.policy, r.record_id, r.action, r.reason, r.requester, r.old_content, b(r.new_content), r.new_content_digest, r.old_cid, r.new_cid, r.new_envelope && b(r.new_envelope), r.evidence && b(r.evidence), r.created_at, r.requester_signature],
    )
  }

  async request(id: string): Promise<RequestRow | null> {
    return (await this.#rows<RequestRow>(`SELECT ${REQUEST_COLUMNS} FROM supervision_requests WHERE id = $1`, [id]))[0] ?? null
  }

  requests(status: RequestStatus | null, limit: number): Promise<RequestRow[]> {
    return status
      ? this.#rows<RequestRow>(`SELECT ${REQUEST_COLUMNS} FROM supervision_requests WHERE status = $1 ORDER BY created_at, id LIMIT $2`, [status, limit])
      : this.#rows<RequestRow>(`SELECT ${REQUEST_COLUMNS} FROM supervision_requests ORDER BY created_at, id LIMIT $1`, [limit])
  }

  async closeRequest(id: string, status: RequestStatus, at: number, who: string): Promise<void> {
    await this.#pool.query("UPDATE supervision_requests SET status = $1, closed_at = $2, closed_by = $3, new_envelope = NULL WHERE id = $4 AND status = 'pending'", [status, at, who, id])
  }

  async decisionConflict(requestId: string, regulator: string, signature: string): Promise<'signature' | 'regulator' | null> {
    const r = await this.#rows<{ same_signature: boolean }>('SELECT signature = $3 AS same_signature FROM supervision_decisions WHERE signature = $3 OR (request_id = $1 AND regulator = $2) ORDER BY 1 DESC LIMIT 1', [requestId, regulator, signature])
    return r.length === 0 ? null : r[0]!.same_signature ? 'signature' : 'regulator'
  }

  addDecision(requestId: string, d: DecisionRow & { signature: string }): Promise<boolean> {
    return this.#unique('INSERT INTO supervision_decisions (request_id, regulator, decision, approval, signature, at) VALUES ($1, $2, $3, $4, $5, $6)', [requestId, d.regulator, d.decision, d.approval, d.signature, d.at])
  }

  decisions(requestId: string): Promise<DecisionRow[]> {
    return this.#rows<DecisionRow>('SELECT regulator, decision, approval, at FROM supervision_decisions WHERE request_id = $1 ORDER BY at, regulator', [requestId])
  }

  commitments(requestId: string): Promise<{ signer: number; hiding: Uint8Array; binding: Uint8Array }[]> {
    return this.#rows('SELECT signer, hiding, binding FROM supervision_commitments WHERE request_id = $1 ORDER BY signer', [requestId])
  }

  async putCommitment(requestId: string, signer: number, hiding: Uint8Array, binding: Uint8Array): Promise<void> {
    await this.#pool.query(
      'INSERT INTO supervision_commitments (request_id, signer, hiding, binding) VALUES ($1, $2, $3, $4) ON CONFLICT (request_id, signer) DO UPDATE SET hiding = excluded.hiding, binding = excluded.binding',
      [requestId, signer, b(hiding), b(binding)],
    )
  }

  async fixSigners(requestId: string, signers: readonly number[]): Promise<void> {
    await inTransaction(this.#pool, async (c) => {
      // Once: of two processes fixing the set at once, the first one's set stands.
      if ((await c.query('UPDATE supervision_requests SET signers = $1 WHERE id = $2 AND signers IS NULL', [JSON.stringify(signers), requestId])).rowCount !== 1) return
      await c.query('DELETE FROM supervision_commitments WHERE request_id = $1 AND signer <> ALL($2::int[])', [requestId, signers])
    })
  }

  async putShare(requestId: string, signer: number, share: Uint8Array): Promise<void> {
    await this.#pool.query('INSERT INTO supervision_shares (request_id, signer, share) VALUES ($1, $2, $3) ON CONFLICT (request_id, signer) DO UPDATE SET share = excluded.share', [requestId, signer, b(share)])
  }

  shares(requestId: string): Promise<{ index: number; share: Uint8Array }[]> {
    return this.#rows('SELECT signer AS "index", share FROM supervision_shares WHERE request_id = $1 ORDER BY signer', [requestId])
  }

  async restartRounds(requestId: string): Promise<void> {
    await inTransaction(this.#pool, async (c) => {
      await c.query('DELETE FROM supervision_shares WHERE request_id = $1', [requestId])
      await c.query('DELETE FROM supervision_commitments WHERE request_id = $1', [requestId])
      await c.query('UPDATE supervision_requests SET signers = NULL WHERE id = $1', [requestId])
    })
  }

  async redacted(records: readonly number[]): Promise<Set<number>> {
    return new Set((await this.#rows<{ record_id: number }>('SELECT DISTINCT record_id FROM redaction_log WHERE record_id = ANY($1::bigint[])', [records])).map((r) => r.record_id))
  }

  async addRefusal(r: Refusal): Promise<void> {
    await this.#pool.query('INSERT INTO supervision_refusals (at, who, operation, request_id, reason, message) VALUES ($1, $2, $3, $4, $5, $6)', [r.at, r.who, r.operation, r.requestId, r.reason, r.message])
  }

  refusals(limit: number): Promise<Refusal[]> {
    return this.#rows<Refusal>('SELECT at, who, operation, request_id AS "requestId", reason, message FROM supervision_refusals ORDER BY id DESC LIMIT $1', [limit])
  }

  log(): Promise<LogRow[]> {
    return this.#rows<LogRow>('SELECT seq, record_id, entry, hash, log_hash FROM redaction_log ORDER BY seq')
  }

  async apply(w: ApplyWrite): Promise<ApplyOutcome> {
    const changed = new Error('record changed')
    try {
      return await inTransaction(this.#pool, async (c): Promise<ApplyOutcome> => {
        // The chain-write lock first, as appends and seals take it: nothing interleaves with this.
        await c.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_SPACE, LOCKS.chainWrite])
        const closed = await c.query("UPDATE supervision_requests SET status = 'applied', closed_at = $1, closed_by = 'cloud', new_envelope = NULL WHERE id = $2 AND status = 'pending'", [w.time, w.requestId])
        if (closed.rowCount !== 1) return 'not-pending'
        const swapped = await c.query('UPDATE records SET content = $1, opening = $2, cid = $3 WHERE id = $4 AND content = $5', [b(w.newContent), b(w.opening), w.newCid, w.record, b(w.oldContent)])
        if (swapped.rowCount !== 1) throw changed
        const prev = (await c.query<{ seq: number; log_hash: Buffer }>('SELECT seq, log_hash FROM redaction_log ORDER BY seq DESC LIMIT 1')).rows[0]
        const seq = (prev?.seq ?? 0) + 1
        await c.query('INSERT INTO redaction_log (seq, record_id, request_id, entry, hash, log_hash, applied_at) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
          seq,
          w.record,
          w.requestId,
          b(w.entry),
          b(w.entryHash),
          b(nextLogHash(prev ? prev.log_hash : null, w.entryHash)),
          w.time,
        ])
        // Last: the block committing the log with this entry (header v2), in this same transaction.
        return { seq, block: this.#seal ? await this.#seal(c, w.time) : null }
      })
    } catch (e) {
      if (e === changed) return 'record-changed'
      throw e
    }
  }
}

/** The workflow on the shared PostgreSQL chain: each applied entry is committed by a block sealed in its transaction. */
export function pgSupervision(chain: PgChainStore, opts: SupervisionOptions): SupervisionStore {
  return new SupervisionStore(new PgSupervisionTables(chain.pool, (c, now) => chain.sealIn(c, now)), opts)
}
