/**
 * The chain's store as several cloud processes can share it: an async interface over records,
 * blocks and heads, the append path and the seal, with two implementations —
 *
 * - SQLite (SqliteChainBackend): the embedded default (`npm start`), today's synchronous
 *   ChainStore (cloud/chain/store.ts) answered through promises; one process per database file.
 * - PostgreSQL (PgChainStore, cloud/store/pg/chain-store.ts): several processes on one database,
 *   exactly one of them sealing at a time (cloud/store/pg/sealer-lease.ts).
 *
 * `openChainBackend` picks one from a `--database` value: a postgres:// or postgresql:// URL, or a
 * SQLite file path. Access, supervision, retrieval reads, verification runs, envelopes and
 * anchoring have store interfaces of their own with a PostgreSQL implementation each under
 * cloud/store/pg/ (docs/architecture.md §The store interface).
 */
import type Database from 'better-sqlite3'
import { openCloudDb } from './db.ts'
import { ChainStore, type AppendResult, type BlockDetail, type BlockSummary, type BulkAppendResult, type ChainKeys, type ChainStats, type ChainStoreOptions, type RecordProof, type StreamSummary } from '../chain/store.ts'
import type { AdmittedBatch, AppendInput, RecordDetail, RecordSummary } from '../chain/record.ts'
import type { Outcome } from '../chain/sync-pool.ts'
import { ENVELOPE_REFS_SQL, type EnvelopeRef } from '../chain/envelope-refs.ts'

export interface ChainBackend {
  readonly kind: 'sqlite' | 'postgres'
  readonly chameleonKeyId: string
  readonly signerKeyId: string
  appendBatch(input: AppendInput | AdmittedBatch): Promise<AppendResult>
  appendBatches(inputs: readonly (AppendInput | AdmittedBatch)[]): Promise<BulkAppendResult[]>
  /** Admit many uploads at once on worker threads (the bulk path); absent: the caller admits each with admitBatch. */
  admitBatches?(inputs: readonly AppendInput[]): Outcome<AdmittedBatch>[] | Promise<Outcome<AdmittedBatch>[]>
  /** Seal the pending records into the next block; null when none are pending. */
  sealBlock(now: number, opts?: { maxRecords?: number }): Promise<BlockSummary | null>
  getRecord(id: number): Promise<RecordDetail | null>
  listRecords(q: { stream?: string; after?: number; limit: number }): Promise<RecordSummary[]>
  recordProof(id: number): Promise<RecordProof | null>
  getBlock(height: number): Promise<BlockDetail | null>
  listBlocks(q: { after?: number; limit: number }): Promise<BlockSummary[]>
  head(): Promise<{ height: number; hash: string; time: number | null } | null>
  getStream(stream: string): Promise<StreamSummary | null>
  listStreams(): Promise<StreamSummary[]>
  stats(): Promise<ChainStats>
  /** Records that have an envelope (not tombstones), id > after, oldest first: what the blockstore scrub re-hashes. */
  envelopeRefs(after: number, limit: number): Promise<readonly EnvelopeRef[]>
  /** Ids of the records of this gateway whose envelope is `cid` (a resent block is accepted only for them). */
  recordsWithEnvelope(cid: string, gatewayId: string): Promise<number[]>
  close(): Promise<void>
}

export const isPostgresUrl = (database: string): boolean => /^postgres(ql)?:\/\//i.test(database)

/** A database URL fit to print or log: its password replaced by ***. */
export const redactDatabaseUrl = (url: string): string => url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@')

/** Today's SQLite ChainStore behind the async interface (the database is closed with the backend when it opened it). */
export class SqliteChainBackend implements ChainBackend {
  readonly kind = 'sqlite' as const
  readonly store: ChainStore
  readonly #closeDb: boolean
  #envelopeRefs: Database.Statement<[number, number], EnvelopeRef> | undefined
  #withEnvelope: Database.Statement<[string, string], number> | undefined

  constructor(store: ChainStore, opts: { closeDb?: boolean } = {}) {
    this.store = store
    this.#closeDb = opts.closeDb ?? false
  }

  get chameleonKeyId(): string {
    return this.store.chameleonKeyId
  }
  get signerKeyId(): string {
    return this.store.signerKeyId
  }
  async appendBatch(input: AppendInput | AdmittedBatch): Promise<AppendResult> {
    return this.store.appendBatch(input)
  }
  /** Pipelined: the records' hashes are computed on a worker before the transaction (ChainStore.appendBatchesPipelined). */
  async appendBatches(inputs: readonly (AppendInput | AdmittedBatch)[]): Promise<BulkAppendResult[]> {
    return this.store.appendBatchesPipelined(inputs)
  }
  /** Part on a worker, answered later (ChainStore.admitBatchesAsync). */
  async admitBatches(inputs: readonly AppendInput[]): Promise<Outcome<AdmittedBatch>[]> {
    return this.store.admitBatchesAsync(inputs)
  }
  async sealBlock(now: number, opts: { maxRecords?: number } = {}): Promise<BlockSummary | null> {
    return this.store.sealBlock(now, opts)
  }
  async getRecord(id: number): Promise<RecordDetail | null> {
    return this.store.getRecord(id)
  }
  async listRecords(q: { stream?: string; after?: number; limit: number }): Promise<RecordSummary[]> {
    return this.store.listRecords(q)
  }
  async envelopeRefs(after: number, limit: number): Promise<readonly EnvelopeRef[]> {
    this.#envelopeRefs ??= this.store.db.prepare<[number, number], EnvelopeRef>(ENVELOPE_REFS_SQL)
    return this.#envelopeRefs.all(after, limit)
  }
  async recordsWithEnvelope(cid: string, gatewayId: string): Promise<number[]> {
    this.#withEnvelope ??= this.store.db.prepare<[string, string], number>('SELECT id FROM records WHERE cid = ? AND gateway_id = ? ORDER BY id').pluck()
    return this.#withEnvelope.all(cid, gatewayId)
  }
  async recordProof(id: number): Promise<RecordProof | null> {
    return this.store.recordProof(id)
  }
  async getBlock(height: number): Promise<BlockDetail | null> {
    return this.store.getBlock(height)
  }
  async listBlocks(q: { after?: number; limit: number }): Promise<BlockSummary[]> {
    return this.store.listBlocks(q)
  }
  async head(): Promise<{ height: number; hash: string; time: number | null } | null> {
    return this.store.head()
  }
  async getStream(stream: string): Promise<StreamSummary | null> {
    return this.store.getStream(stream)
  }
  async listStreams(): Promise<StreamSummary[]> {
    return this.store.listStreams()
  }
  async stats(): Promise<ChainStats> {
    return this.store.stats()
  }
  async close(): Promise<void> {
    await this.store.close()
    if (this.#closeDb) this.store.db.close()
  }
}

/** A chain backend for `--database`: a postgres:// URL, or a SQLite file (":memory:" for tests). */
export async function openChainBackend(database: string, keys: ChainKeys, opts: ChainStoreOptions & { processName?: string } = {}): Promise<ChainBackend> {
  if (isPostgresUrl(database)) {
    const { openPgChainStore } = await import('./pg/chain-store.ts')
    return openPgChainStore(database, keys, { ...(opts.workers === undefined ? {} : { workers: opts.workers }), ...(opts.processName ? { processName: opts.processName } : {}) })
  }
  return new SqliteChainBackend(new ChainStore(openCloudDb(database), keys, opts), { closeDb: true })
}
