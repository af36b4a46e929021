/**
 * The redactable chain in PostgreSQL: the same records, blocks, stream index and equivocation log
 * as the SQLite ChainStore (cloud/chain/store.ts), the same rules (record.ts admitBatch and
 * commitRecord, block.ts makeBlock), behind the async ChainBackend interface
 * (cloud/store/chain-backend.ts), for several cloud processes sharing one database.
 *
 * Concurrency: every append and every seal takes the transaction-scoped advisory lock
 * LOCKS.chainWrite first, so record ids stay max(id) + 1 and consecutive across processes (a
 * block holds an id range) and a seal never sees a half-made append. Only the holder of the
 * sealer lease (sealer-lease.ts) seals; the seal transaction re-checks the lease in pg_locks, and
 * the schema refuses a second block at a height (PRIMARY KEY) or a second child of one parent
 * (blocks.prev_hash UNIQUE REFERENCES blocks(hash)): no block sealed twice, no fork.
 *
 * The CPU-heavy steps (admission with its Ed25519 check, the chameleon hash) run on the same
 * worker threads as the SQLite store's (append-worker.ts through SyncPool).
 */
import os from 'node:os'
import pg from 'pg'
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../../../shared/errors.ts'
import { chameleonKeyId } from '../../../shared/crypto/chameleon.ts'
import { signingKeyId, signingPublicKey } from '../../../shared/crypto/sign.ts'
import { MerkleTree } from '../../../shared/crypto/merkle.ts'
import { decodeBlockHeader, EMPTY_REDACTION_STATE, recordsTree, type RedactionState } from '../../chain/block.ts'
import { admitBatch, commitRecord, describeRow, summarize, summaryOf, toRecordRow, vouchedAdmission, type AdmittedBatch, type AppendInput, type CommittedContent, type RawRecord, type RecordDetail, type RecordFields, type RecordSummary } from '../../chain/record.ts'
import type { EnvelopeRef } from '../../chain/envelope-refs.ts'
import { blockSummary, clampLimit, nextBlock, streamSummaryOf, type AppendResult, type BlockDetail, type BlockSummary, type BulkAppendResult, type ChainKeys, type ChainStats, type RawBlock, type RawStream, type RecordProof, type StreamSummary } from '../../chain/store.ts'
import { SyncPool, attempt, outcomeError, type Outcome } from '../../chain/sync-pool.ts'
import { redactDatabaseUrl, type ChainBackend } from '../chain-backend.ts'
import { committedState, logMoved } from '../../supervision/log-state.ts'
import { LOCKS, LOCK_SPACE } from './migrations.ts'
import { inTransaction, openMigratedPool } from './pool.ts'

const hex = bytesToHex
const u8 = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
const RECORD_COLUMNS = 'id, stream, seq, gateway_id, content, hash, opening, manifest_commitment, prev_commitment, cid, received_at, block_height'
const key = (stream: string, seq: number): string => `${stream}\u0000${seq}`

export interface PgChainStoreOptions {
  /** Connections in this process's pool (default 4). */
  readonly poolSize?: number
  /** Worker threads for admission and hashing besides the caller's (default: cores − 1; 0 = none). */
  readonly workers?: number
  /** Names this process in blocks.sealed_by (default host:pid). */
  readonly processName?: string
}

type At = { id: number; manifest_commitment: string; prev_commitment: string | null }
type Verdict =
  | { kind: 'new'; stream: RawStream | undefined }
  | { kind: 'duplicate' | 'conflict'; id: number }
  | { kind: 'prev-mismatch' | 'next-mismatch'; id: number; error: CareLedgerError }
  | { kind: 'refused'; error: CareLedgerError }

/** Connect (applying migrations) and register this process's keys. */
export async function openPgChainStore(url: string, keys: ChainKeys, opts: PgChainStoreOptions = {}): Promise<PgChainStore> {
  const pool = await openMigratedPool(url, opts.poolSize ?? 4)
  try {
    const store = new PgChainStore(pool, keys, opts)
    await store.registerKeys()
    return store
  } catch (e) {
    await pool.end()
    throw e
  }
}

export class PgChainStore implements ChainBackend {
  readonly kind = 'postgres' as const
  readonly pool: pg.Pool
  readonly #signingSecretKey: Uint8Array
  readonly #signingPublicKey: Uint8Array
  readonly #chameleonPublicKey: Uint8Array
  readonly chameleonKeyId: string
  readonly signerKeyId: string
  readonly #workers: SyncPool
  readonly #name: string
  readonly #trees = new Map<number, MerkleTree>()

  constructor(pool: pg.Pool, keys: ChainKeys, opts: PgChainStoreOptions = {}) {
    this.pool = pool
    const pk = signingPublicKey(keys.signingSecretKey)
    if (hex(pk) !== hex(keys.signingPublicKey)) throw new CareLedgerError('INVALID_ARGUMENT', 'chain keys: the signing public key does not belong to the signing secret key', { reason: 'KEY_MISMATCH' })
    this.#signingSecretKey = keys.signingSecretKey.slice()
    this.#signingPublicKey = pk
    this.#chameleonPublicKey = keys.chameleonPublicKey.slice()
    this.chameleonKeyId = chameleonKeyId(this.#chameleonPublicKey)
    this.signerKeyId = signingKeyId(pk)
    this.#name = opts.processName ?? `${os.hostname()}:${process.pid}`
    this.#workers = new SyncPool(new URL('../../chain/append-worker.ts', import.meta.url), {
      size: opts.workers ?? Math.max(0, os.availableParallelism() - 1),
      data: { chameleonPublicKey: this.#chameleonPublicKey },
      threshold: 16,
    })
  }

  /** Record the keys in use; the chameleon key of a chain never changes (as in the SQLite store). */
  async registerKeys(): Promise<void> {
    await this.#tx(async (c) => {
      const existing = (await c.query<{ key_id: string }>("SELECT key_id FROM chain_keys WHERE kind = 'chameleon'")).rows.map((r) => r.key_id)
      if (existing.length > 0 && !existing.includes(this.chameleonKeyId)) {
        throw new CareLedgerError('INVALID_ARGUMENT', `this chain's records are committed under chameleon key ${existing.join(', ')}, not ${this.chameleonKeyId}`, {
          reason: 'CHAMELEON_KEY_CHANGED',
          stored: existing,
          given: this.chameleonKeyId,
        })
      }
      const add = 'INSERT INTO chain_keys (kind, key_id, public_key, added_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING'
      await c.query(add, ['chameleon', this.chameleonKeyId, this.#chameleonPublicKey, Date.now()])
      await c.query(add, ['signing', this.signerKeyId, this.#signingPublicKey, Date.now()])
    })
  }

  async close(): Promise<void> {
    await this.#workers.close()
    await this.pool.end()
  }

  #tx<T>(body: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, body)
  }

  // ---- appending -----------------------------------------------------------------------------------

  /** As ChainStore.appendBatch: 'created', 'duplicate' or 'conflict'; throws for a refused batch. */
  async appendBatch(input: AppendInput | AdmittedBatch): Promise<AppendResult> {
    const [result] = await this.appendBatches([input])
    if (result!.status === 'rejected') throw result!.error
    return result!
  }

  /** As ChainStore.appendBatches: one transaction, each batch judged in order, a refused one not affecting the others. */
  async appendBatches(inputs: readonly (AppendInput | AdmittedBatch)[]): Promise<BulkAppendResult[]> {
    const vouched = inputs.map(vouchedAdmission)
    const rest = inputs.filter((_, i) => vouched[i] === null)
    const fresh = this.#workers.map('admit', rest, (input): Outcome<AdmittedBatch> => attempt(() => admitBatch(input)))
    let next = 0
    const admitted = vouched.map((v): Outcome<AdmittedBatch> => (v ? { ok: v } : fresh[next++]!))
    return this.#tx((c) => this.#append(c, admitted))
  }

  async #append(c: pg.PoolClient, admitted: readonly Outcome<AdmittedBatch>[]): Promise<BulkAppendResult[]> {
    await c.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_SPACE, LOCKS.chainWrite])
    const ok = admitted.flatMap((o) => ('ok' in o ? [o.ok] : []))
    // What the judging reads, fetched at once: the streams and the records at seq − 1, seq, seq + 1.
    const streams = new Map<string, RawStream>()
    for (const s of (await c.query<RawStream>('SELECT * FROM streams WHERE stream = ANY($1)', [[...new Set(ok.map((a) => a.manifest.stream))]])).rows) streams.set(s.stream, s)
    const near = ok.flatMap((a) => [a.manifest.seq - 1, a.manifest.seq, a.manifest.seq + 1].map((seq) => [a.manifest.stream, seq] as const))
    const at = new Map<string, At>()
    const found = await c.query<At & { stream: string; seq: number }>(
      'SELECT r.id, r.stream, r.seq, r.manifest_commitment, r.prev_commitment FROM records r JOIN unnest($1::text[], $2::bigint[]) AS q(stream, seq) ON r.stream = q.stream AND r.seq = q.seq',
      [near.map((n) => n[0]), near.map((n) => n[1])],
    )
    for (const r of found.rows) at.set(key(r.stream, r.seq), r)
    let nextId = ((await c.query<{ max: number }>('SELECT coalesce(max(id), 0)::bigint AS max FROM records')).rows[0]!.max as number) + 1

    type Pending = { kind: 'done'; result: BulkAppendResult } | { kind: 'existing'; status: 'duplicate' | 'conflict'; id: number } | { kind: 'created'; plan: number }
    const pending: Pending[] = []
    const plans: { admitted: AdmittedBatch; fields: RecordFields }[] = []
    const equivocations: { kind: string; a: AdmittedBatch; id: number }[] = []
    const touched = new Set<string>()
    for (const outcome of admitted) {
      if (!('ok' in outcome)) {
        pending.push({ kind: 'done', result: { status: 'rejected', error: outcomeError(outcome)! } })
        continue
      }
      const a = outcome.ok
      const m = a.manifest
      const verdict = judge(a, streams.get(m.stream), (seq) => at.get(key(m.stream, seq)))
      switch (verdict.kind) {
        case 'duplicate':
        case 'conflict':
          if (verdict.kind === 'conflict') equivocations.push({ kind: 'conflict', a, id: verdict.id })
          pending.push({ kind: 'existing', status: verdict.kind, id: verdict.id })
          break
        case 'prev-mismatch':
        case 'next-mismatch':
          equivocations.push({ kind: verdict.kind, a, id: verdict.id })
          pending.push({ kind: 'done', result: { status: 'rejected', error: verdict.error } })
          break
        case 'refused':
          pending.push({ kind: 'done', result: { status: 'rejected', error: verdict.error } })
          break
        case 'new': {
          try {
            await this.#index(c, a, verdict.stream, streams)
          } catch (e) {
            pending.push({ kind: 'done', result: { status: 'rejected', error: e instanceof Error ? e : new Error(String(e)) } })
            break
          }
          touched.add(m.stream)
          const fields: RecordFields = { id: nextId++, stream: m.stream, seq: m.seq, gateway: m.gateway, gatewayKey: a.gatewayKey, manifest: m, signature: a.signature, receivedAt: a.receivedAt }
          at.set(key(m.stream, m.seq), { id: fields.id, manifest_commitment: a.commitment, prev_commitment: m.prev })
          pending.push({ kind: 'created', plan: plans.length })
          plans.push({ admitted: a, fields })
        }
      }
    }
    const committed = this.#workers.map('commit', plans.map((p) => p.fields), (f): Outcome<CommittedContent> => attempt(() => commitRecord(this.#chameleonPublicKey, f)))
    const contents = committed.map((o) => {
      if (!('ok' in o)) throw outcomeError(o)! // cannot happen for admitted fields: abort the whole transaction
      return o.ok
    })
    if (plans.length > 0) {
      const col = <T>(f: (p: (typeof plans)[number], i: number) => T): T[] => plans.map(f)
      await c.query(
        `INSERT INTO records (id, stream, seq, gateway_id, content, hash, opening, manifest_commitment, prev_commitment, cid, received_at)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bytea[], $6::bytea[], $7::bytea[], $8::text[], $9::text[], $10::text[], $11::bigint[])`,
        [
          col((p) => p.fields.id),
          col((p) => p.fields.stream),
          col((p) => p.fields.seq),
          col((p) => p.fields.gateway),
          col((_, i) => Buffer.from(contents[i]!.content)),
          col((_, i) => Buffer.from(contents[i]!.hash)),
          col((_, i) => Buffer.from(contents[i]!.opening)),
          col((p) => p.admitted.commitment),
          col((p) => p.admitted.manifest.prev),
          col((p) => p.admitted.manifest.cid),
          col((p) => p.admitted.receivedAt),
        ],
      )
    }
    const rows = [...touched].map((s) => streams.get(s)!)
    if (rows.length > 0) {
      await c.query(
        `UPDATE streams s SET batches = u.batches, last_seq = u.last_seq, last_batch_at = u.last_batch_at
         FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS u(stream, batches, last_seq, last_batch_at) WHERE s.stream = u.stream`,
        [rows.map((r) => r.stream), rows.map((r) => r.batches), rows.map((r) => r.last_seq), rows.map((r) => r.last_batch_at)],
      )
    }
    for (const e of equivocations) {
      await c.query(
        `INSERT INTO equivocations (kind, stream, seq, record_id, offered_commitment, manifest, signature, gateway_key, detected_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
        [e.kind, e.a.manifest.stream, e.a.manifest.seq, e.id, e.a.commitment, Buffer.from(e.a.manifestBytes), Buffer.from(e.a.signature), Buffer.from(e.a.gatewayKey), e.a.receivedAt],
      )
    }
    const existing = new Map<number, RecordSummary>()
    const ids = [...new Set(pending.flatMap((p) => (p.kind === 'existing' ? [p.id] : [])))]
    if (ids.length > 0) {
      for (const r of (await c.query<RawRecord>(`SELECT ${RECORD_COLUMNS} FROM records WHERE id = ANY($1)`, [ids])).rows) existing.set(r.id, summaryOf(describeRow(toRecordRow(r))))
    }
    return pending.map((p): BulkAppendResult => {
      if (p.kind === 'done') return p.result
      if (p.kind === 'created') {
        const { admitted: a, fields } = plans[p.plan]!
        return { status: 'created', record: summarize(fields.id, a.manifest, contents[p.plan]!.hash, a.receivedAt, null) }
      }
      const record = existing.get(p.id)!
      return p.status === 'duplicate' ? { status: 'duplicate', record } : { status: 'conflict', existing: record }
    })
  }

  /** The stream index for a new record: a new stream row, or the stream's last seq, count and gaps (in memory; written at the end). */
  async #index(c: pg.PoolClient, a: AdmittedBatch, stream: RawStream | undefined, streams: Map<string, RawStream>): Promise<void> {
    const m = a.manifest
    if (!stream) {
      const row: RawStream = { stream: m.stream, gateway_id: m.gateway, device: m.device, patient: m.patient, batches: 1, last_seq: m.seq, first_batch_at: a.receivedAt, last_batch_at: a.receivedAt }
      await c.query('INSERT INTO streams (stream, gateway_id, device, patient, batches, last_seq, first_batch_at, last_batch_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)', Object.values(row))
      if (m.seq > 0) await c.query('INSERT INTO stream_gaps (stream, from_seq, to_seq) VALUES ($1, $2, $3)', [m.stream, 0, m.seq - 1])
      streams.set(m.stream, row)
      return
    }
    if (m.seq > stream.last_seq) {
      if (m.seq > stream.last_seq + 1) await c.query('INSERT INTO stream_gaps (stream, from_seq, to_seq) VALUES ($1, $2, $3)', [m.stream, stream.last_seq + 1, m.seq - 1])
    } else {
      // A late batch: it must close (part of) a recorded gap.
      const gap = (await c.query<{ from_seq: number; to_seq: number }>('SELECT from_seq, to_seq FROM stream_gaps WHERE stream = $1 AND from_seq <= $2 ORDER BY from_seq DESC LIMIT 1', [m.stream, m.seq])).rows[0]
      if (!gap || gap.to_seq < m.seq) {
        throw new CareLedgerError('VERIFICATION_FAILED', `stream ${m.stream}: seq ${m.seq} is below last seq ${stream.last_seq} but in no recorded gap (the stream index is inconsistent)`, { reason: 'STREAM_INDEX', stream: m.stream, seq: m.seq })
      }
      await c.query('DELETE FROM stream_gaps WHERE stream = $1 AND from_seq = $2', [m.stream, gap.from_seq])
      if (gap.from_seq < m.seq) await c.query('INSERT INTO stream_gaps (stream, from_seq, to_seq) VALUES ($1, $2, $3)', [m.stream, gap.from_seq, m.seq - 1])
      if (m.seq < gap.to_seq) await c.query('INSERT INTO stream_gaps (stream, from_seq, to_seq) VALUES ($1, $2, $3)', [m.stream, m.seq + 1, gap.to_seq])
    }
    streams.set(m.stream, { ...stream, batches: stream.batches + 1, last_seq: Math.max(stream.last_seq, m.seq), last_batch_at: Math.max(stream.last_batch_at, a.receivedAt) })
  }

  // ---- sealing -------------------------------------------------------------------------------------

  /**
   * As ChainStore.sealBlock, in one transaction under the chain-write lock. With `lease` (the
   * sealer lease's backend pid), refuses (LEASE_LOST) unless that backend still holds the
   * sealer lock: a sealer that lost its lease mid-way never commits a block.
   */
  async sealBlock(now: number, opts: { maxRecords?: number; lease?: number } = {}): Promise<BlockSummary | null> {
    if (!Number.isSafeInteger(now) || now < 0) throw new CareLedgerError('INVALID_ARGUMENT', `sealBlock: now must be epoch milliseconds, got ${now}`, { now })
    return this.#tx((c) => this.sealIn(c, now, opts))
  }

  /**
   * sealBlock inside the caller's transaction on `c` (applying a redaction seals the block
   * committing its log entry in its own transaction, cloud/store/pg/supervision.ts). Commits the
   * redaction log as it stands (header v2) like the SQLite sealer; when only the log moved, the
   * block holds no records.
   */
  async sealIn(c: pg.PoolClient, now: number, opts: { maxRecords?: number; lease?: number } = {}): Promise<BlockSummary | null> {
    await c.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_SPACE, LOCKS.chainWrite])
    if (opts.lease !== undefined) {
      const held = await c.query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2 AND pid = $3 AND granted", [LOCK_SPACE, LOCKS.sealer, opts.lease])
      if (held.rowCount === 0) throw new CareLedgerError('VERIFICATION_FAILED', 'refusing to seal: this process no longer holds the sealer lease', { reason: 'LEASE_LOST' })
    }
    const limit = opts.maxRecords ?? null
    const rows = (await c.query<{ id: number; hash: Buffer }>('SELECT id, hash FROM records WHERE block_height IS NULL ORDER BY id LIMIT $1', [limit])).rows
    const last = (await c.query<RawBlock>('SELECT height, header, hash, signature FROM blocks ORDER BY height DESC LIMIT 1')).rows[0]
    const log = await pgRedactionLogState(c)
    const committed = last ? committedState(blockSummary(last).header) : null
    const at = committed ? await pgRedactionLogHeadAt(c, committed.count) : null
    const moved = logMoved(last?.height ?? null, committed, log, at)
    if (rows.length === 0 && (!last || !moved)) return null
    const { height, prevHash, block } = nextBlock(last, rows, now, { chameleonKeyId: this.chameleonKeyId, signerKeyId: this.signerKeyId, signingSecretKey: this.#signingSecretKey }, log)
    await c.query('INSERT INTO blocks (height, header, hash, signature, prev_hash, sealed_by) VALUES ($1, $2, $3, $4, $5, $6)', [
      height,
      Buffer.from(block.bytes),
      Buffer.from(block.hash),
      Buffer.from(block.signature),
      prevHash ? Buffer.from(prevHash) : null,
      this.#name,
    ])
    const assigned = block.header.count === 0 ? 0 : (await c.query('UPDATE records SET block_height = $1 WHERE block_height IS NULL AND id BETWEEN $2 AND $3', [height, block.header.first, block.header.last])).rowCount
    if (assigned !== block.header.count) throw new Error(`internal: sealed ${assigned} records into block ${height}, expected ${block.header.count}`)
    return blockSummary({ height, header: Buffer.from(block.bytes), hash: Buffer.from(block.hash), signature: Buffer.from(block.signature) }).summary
  }

  // ---- reading -------------------------------------------------------------------------------------

  async getRecord(id: number): Promise<RecordDetail | null> {
    const row = (await this.pool.query<RawRecord>(`SELECT ${RECORD_COLUMNS} FROM records WHERE id = $1`, [id])).rows[0]
    return row ? describeRow(toRecordRow(row)) : null
  }

  async listRecords(q: { stream?: string; after?: number; limit: number }): Promise<RecordSummary[]> {
    const after = q.after ?? 0
    const limit = clampLimit(q.limit)
    const rows =
      q.stream === undefined
        ? await this.pool.query<RawRecord>(`SELECT ${RECORD_COLUMNS} FROM records WHERE id > $1 ORDER BY id LIMIT $2`, [after, limit])
        : await this.pool.query<RawRecord>(`SELECT ${RECORD_COLUMNS} FROM records WHERE stream = $1 AND id > $2 ORDER BY id LIMIT $3`, [q.stream, after, limit])
    return rows.rows.map((r) => summaryOf(describeRow(toRecordRow(r))))
  }

  async envelopeRefs(after: number, limit: number): Promise<readonly EnvelopeRef[]> {
    return (await this.pool.query<EnvelopeRef>("SELECT id, cid, gateway_id, block_height FROM records WHERE id > $1 AND cid <> '' ORDER BY id LIMIT $2", [after, limit])).rows
  }

  async recordsWithEnvelope(cid: string, gatewayId: string): Promise<number[]> {
    return (await this.pool.query<{ id: number }>('SELECT id FROM records WHERE cid = $1 AND gateway_id = $2 ORDER BY id', [cid, gatewayId])).rows.map((r) => r.id)
  }

  async recordProof(id: number): Promise<RecordProof | null> {
    return (await this.recordProofs([id]))[0]!
  }

  /**
   * recordProof of each id, in the order given (null where it would be null): the rows in one
   * query, their blocks in another and each block's tree once (GET /v1/evidence/records serves
   * pages of them), as the SQLite store's recordProofs.
   */
  async recordProofs(ids: readonly number[]): Promise<(RecordProof | null)[]> {
    if (ids.length === 0) return []
    const raws = new Map((await this.pool.query<RawRecord>(`SELECT ${RECORD_COLUMNS} FROM records WHERE id = ANY($1::bigint[])`, [ids])).rows.map((r) => [r.id, r]))
    const heights = [...new Set([...raws.values()].flatMap((r) => (r.block_height === null ? [] : [r.block_height])))]
    const blocks = new Map(heights.length === 0 ? [] : (await this.pool.query<RawBlock>('SELECT height, header, hash, signature FROM blocks WHERE height = ANY($1::bigint[])', [heights])).rows.map((b) => [b.height, b]))
    const trees = new Map<number, MerkleTree>()
    for (const h of blocks.keys()) {
      let tree = this.#trees.get(h)
      if (!tree) {
        // A record's chameleon hash never changes (a redaction keeps it), so a sealed block's tree is fixed.
        tree = recordsTree((await this.pool.query<{ hash: Buffer }>('SELECT hash FROM records WHERE block_height = $1 ORDER BY id', [h])).rows.map((r) => u8(r.hash)))
        if (this.#trees.size >= 8) this.#trees.delete(this.#trees.keys().next().value!)
        this.#trees.set(h, tree)
      }
      trees.set(h, tree)
    }
    const headers = new Map([...blocks.values()].map((b) => [b.height, decodeBlockHeader(u8(b.header))]))
    return ids.map((id) => {
      const raw = raws.get(id)
      const b = raw && raw.block_height !== null ? blocks.get(raw.block_height) : undefined
      if (!raw || !b) return null
      const header = headers.get(b.height)!
      const tree = trees.get(b.height)!
      const leafIndex = raw.id - header.first
      return { record: describeRow(toRecordRow(raw)), block: { header, hash: hex(b.hash), signature: hex(b.signature) }, leafIndex, treeSize: tree.size, proof: tree.inclusionProof(leafIndex).map(hex) }
    })
  }

  async getBlock(height: number): Promise<BlockDetail | null> {
    const row = (await this.pool.query<RawBlock>('SELECT height, header, hash, signature FROM blocks WHERE height = $1', [height])).rows[0]
    if (!row) return null
    const { summary, header } = blockSummary(row)
    const ids = (await this.pool.query<{ id: number }>('SELECT id FROM records WHERE block_height = $1 ORDER BY id', [height])).rows.map((r) => r.id)
    return { ...summary, header, headerBytes: hex(row.header), records: ids }
  }

  async listBlocks(q: { after?: number; limit: number }): Promise<BlockSummary[]> {
    const rows = await this.pool.query<RawBlock>('SELECT height, header, hash, signature FROM blocks WHERE height > $1 ORDER BY height LIMIT $2', [q.after ?? -1, clampLimit(q.limit)])
    return rows.rows.map((r) => blockSummary(r).summary)
  }

  async head(): Promise<{ height: number; hash: string; time: number | null } | null> {
    const row = (await this.pool.query<RawBlock>('SELECT height, header, hash, signature FROM blocks ORDER BY height DESC LIMIT 1')).rows[0]
    if (!row) return null
    const { summary } = blockSummary(row)
    return { height: row.height, hash: hex(row.hash), time: summary.damaged ? null : summary.time }
  }

  async getStream(stream: string): Promise<StreamSummary | null> {
    const s = (await this.pool.query<RawStream>('SELECT * FROM streams WHERE stream = $1', [stream])).rows[0]
    if (!s) return null
    const gaps = (await this.pool.query<{ from_seq: number; to_seq: number }>('SELECT from_seq, to_seq FROM stream_gaps WHERE stream = $1 ORDER BY from_seq', [stream])).rows.map((g): [number, number] => [g.from_seq, g.to_seq])
    return streamSummaryOf(s, gaps)
  }

  async listStreams(): Promise<StreamSummary[]> {
    const gaps = new Map<string, [number, number][]>()
    for (const g of (await this.pool.query<{ stream: string; from_seq: number; to_seq: number }>('SELECT stream, from_seq, to_seq FROM stream_gaps ORDER BY stream, from_seq')).rows) {
      let list = gaps.get(g.stream)
      if (!list) gaps.set(g.stream, (list = []))
      list.push([g.from_seq, g.to_seq])
    }
    return (await this.pool.query<RawStream>('SELECT * FROM streams ORDER BY stream')).rows.map((s) => streamSummaryOf(s, gaps.get(s.stream) ?? []))
  }

  async stats(): Promise<ChainStats> {
    const r = (
      await this.pool.query<{ records: number; pending: number; blocks: number; height: number; streams: number; gaps: number; missing: number; equivocations: number }>(
        `SELECT (SELECT coalesce(max(id), 0) FROM records)::bigint AS records,
                (SELECT count(*) FROM records WHERE block_height IS NULL) AS pending,
                (SELECT count(*) FROM blocks) AS blocks,
                (SELECT coalesce(max(height), -1) FROM blocks)::bigint AS height,
                (SELECT count(*) FROM streams) AS streams,
                (SELECT count(*) FROM stream_gaps) AS gaps,
                (SELECT coalesce(sum(to_seq - from_seq + 1), 0) FROM stream_gaps)::bigint AS missing,
                (SELECT count(*) FROM equivocations) AS equivocations`,
      )
    ).rows[0]!
    const head = await this.head()
    return { records: r.records, pendingRecords: r.pending, blocks: r.blocks, height: r.height, streams: r.streams, gaps: r.gaps, missingBatches: r.missing, equivocations: r.equivocations, lastBlockTime: head?.time ?? null }
  }
}

/** Classify an admitted batch against its stream and the records at seq − 1, seq, seq + 1 (as ChainStore's #judge). */
function judge(a: AdmittedBatch, stream: RawStream | undefined, recordAt: (seq: number) => At | undefined): Verdict {
  const m = a.manifest
  if (stream && (stream.gateway_id !== m.gateway || stream.device !== m.device || stream.patient !== m.patient)) {
    return {
      kind: 'refused',
      error: new CareLedgerError('INVALID_ARGUMENT', `stream ${m.stream} belongs to gateway ${stream.gateway_id}, device ${stream.device}, patient ${stream.patient}`, { reason: 'STREAM_IDENTITY', stream: m.stream }),
    }
  }
  const here = recordAt(m.seq)
  if (here) return { kind: here.manifest_commitment === a.commitment ? 'duplicate' : 'conflict', id: here.id }
  if (m.seq > 0) {
    const before = recordAt(m.seq - 1)
    if (before && before.manifest_commitment !== m.prev) {
      return {
        kind: 'prev-mismatch',
        id: before.id,
        error: new CareLedgerError('VERIFICATION_FAILED', `stream ${m.stream} seq ${m.seq}: prev ${m.prev} is not the commitment ${before.manifest_commitment} of the stored seq ${m.seq - 1} (record ${before.id})`, {
          reason: 'PREV_MISMATCH',
          stream: m.stream,
          seq: m.seq,
          prev: m.prev,
          stored: before.manifest_commitment,
          recordId: before.id,
        }),
      }
    }
  }
  const after = recordAt(m.seq + 1)
  if (after && after.prev_commitment !== a.commitment) {
    return {
      kind: 'next-mismatch',
      id: after.id,
      error: new CareLedgerError('VERIFICATION_FAILED', `stream ${m.stream} seq ${m.seq}: its commitment ${a.commitment} is not the prev ${after.prev_commitment} of the stored seq ${m.seq + 1} (record ${after.id})`, {
        reason: 'NEXT_MISMATCH',
        stream: m.stream,
        seq: m.seq,
        commitment: a.commitment,
        storedPrev: after.prev_commitment,
        recordId: after.id,
      }),
    }
  }
  return { kind: 'new', stream }
}

/** The redaction log as stored now (cloud/supervision/log-state.ts on SQLite). */
async function pgRedactionLogState(c: pg.PoolClient): Promise<RedactionState> {
  const r = (await c.query<{ n: number; head: Buffer | null }>('SELECT (SELECT count(*) FROM redaction_log)::bigint AS n, (SELECT log_hash FROM redaction_log ORDER BY seq DESC LIMIT 1) AS head')).rows[0]!
  return r.n === 0 || r.head === null ? EMPTY_REDACTION_STATE : { count: r.n, head: hex(r.head) }
}

/** The stored log_hash after the first `count` entries; null when the log is shorter. */
async function pgRedactionLogHeadAt(c: pg.PoolClient, count: number): Promise<string | null> {
  if (count === 0) return EMPTY_REDACTION_STATE.head
  const r = (await c.query<{ log_hash: Buffer }>('SELECT log_hash FROM redaction_log ORDER BY seq LIMIT 1 OFFSET $1', [count - 1])).rows[0]
  return r ? hex(r.log_hash) : null
}
