/**
 * The redactable chain in the cloud's SQLite database: records (one per accepted batch), blocks
 * (signed headers over consecutive records), the per-stream index with its gaps, and the
 * equivocation log. A synchronous API, like better-sqlite3 itself.
 *
 * Crash safety: every append (or bulk append) and every block seal is one IMMEDIATE transaction
 * on a WAL database with synchronous=FULL (cloud/store/db.ts), so after a crash a batch is either
 * wholly in (record, stream index, gaps) or absent, and a block is either sealed with all its
 * records assigned or not at all. Record ids are max(id) + 1 inside the write lock: consecutive,
 * so a block holds the id range (last of previous block, last].
 *
 * The caller (the HTTP service) has checked the gateway's request signature and the CAR;
 * appendBatch still checks what the chain relies on (record.ts admitBatch), because a record it
 * stores can never be changed without the regulator.
 */
import os from 'node:os'
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../../shared/errors.ts'
import { chameleonKeyId, chameleonPrepareHashTables } from '../../shared/crypto/chameleon.ts'
import { ristrettoFastReady } from '../../shared/crypto/ristretto-fast.ts'
import { signingKeyId, signingPublicKey } from '../../shared/crypto/sign.ts'
import { MerkleTree } from '../../shared/crypto/merkle.ts'
import { decodeCanonical } from '../../shared/encoding/canonical.ts'
import type { BatchManifest } from '../../shared/protocol/manifest.ts'
import { registerMigrations, type CloudDb, type Migration } from '../store/db.ts'
import { blockHash, decodeBlockHeader, EMPTY_REDACTION_STATE, makeBlock, recordsTree, type BlockHeader, type RedactionState, type SealedBlock } from './block.ts'
import { committedState, logMoved, redactionLogHeadAt, redactionLogState } from '../supervision/log-state.ts'
import {
  admitBatch,
  admitBatches as admitBatchesOf,
  commitRecord,
  describeRow,
  summarize,
  summaryOf,
  toRecordRow,
  vouchedAdmission,
  type AdmittedBatch,
  type RawRecord,
  type AppendInput,
  type CommittedContent,
  type RecordDetail,
  type RecordFields,
  type RecordRow,
  type RecordSummary,
} from './record.ts'
import { SyncPool, attempt, outcomeError, type Outcome } from './sync-pool.ts'

export type { AdmittedBatch, AppendInput, RecordDetail, RecordSummary } from './record.ts'

// ---- schema --------------------------------------------------------------------------------------

export const CHAIN_MIGRATIONS: readonly Migration[] = [
  {
    name: 'chain/001-records-blocks',
    sql: `
      -- Keys the chain has used: block signers (may rotate) and the regulator's chameleon key (may not).
      CREATE TABLE chain_keys (
        kind TEXT NOT NULL CHECK (kind IN ('signing', 'chameleon')),
        key_id TEXT NOT NULL,
        public_key BLOB NOT NULL CHECK (length(public_key) = 32),
        added_at INTEGER NOT NULL,
        PRIMARY KEY (kind, key_id)
      ) STRICT;
      CREATE TABLE blocks (
        height INTEGER PRIMARY KEY CHECK (height >= 0),
        header BLOB NOT NULL,
        hash BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
        signature BLOB NOT NULL CHECK (length(signature) = 64)
      ) STRICT;
      CREATE TABLE records (
        id INTEGER PRIMARY KEY CHECK (id >= 1),
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL CHECK (seq >= 0),
        gateway_id TEXT NOT NULL,
        content BLOB NOT NULL,
        hash BLOB NOT NULL CHECK (length(hash) = 32),
        opening BLOB NOT NULL CHECK (length(opening) = 64),
        manifest_commitment TEXT NOT NULL,
        prev_commitment TEXT,
        cid TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        block_height INTEGER REFERENCES blocks (height),
        UNIQUE (stream, seq)
      ) STRICT;
      CREATE INDEX records_block ON records (block_height, id);
      CREATE INDEX records_pending ON records (id) WHERE block_height IS NULL;
      CREATE INDEX records_stream_id ON records (stream, id);
      CREATE TABLE streams (
        stream TEXT PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        device TEXT NOT NULL,
        patient TEXT NOT NULL,
        batches INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        first_batch_at INTEGER NOT NULL,
        last_batch_at INTEGER NOT NULL
      ) STRICT;
      -- Missing seqs [from_seq, to_seq] below a stream's last_seq; closed as the batches arrive.
      CREATE TABLE stream_gaps (
        stream TEXT NOT NULL REFERENCES streams (stream),
        from_seq INTEGER NOT NULL,
        to_seq INTEGER NOT NULL CHECK (to_seq >= from_seq),
        PRIMARY KEY (stream, from_seq)
      ) STRICT, WITHOUT ROWID;
      -- Signed evidence of a gateway contradicting itself: two batches for one (stream, seq), or a
      -- batch whose link disagrees with a stored neighbour.
      CREATE TABLE equivocations (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('conflict', 'prev-mismatch', 'next-mismatch')),
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        record_id INTEGER NOT NULL REFERENCES records (id),
        offered_commitment TEXT NOT NULL,
        manifest BLOB NOT NULL,
        signature BLOB NOT NULL,
        gateway_key BLOB NOT NULL,
        detected_at INTEGER NOT NULL,
        UNIQUE (kind, stream, seq, offered_commitment)
      ) STRICT;
    `,
  },
]

registerMigrations(CHAIN_MIGRATIONS)

/** Apply chain migrations the database has not seen (when it was opened before this module was imported). */
function ensureSchema(db: CloudDb): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)')
  const applied = new Set(db.prepare('SELECT name FROM schema_migrations').pluck().all() as string[])
  for (const m of CHAIN_MIGRATIONS) {
    if (applied.has(m.name)) continue
    db.transaction(() => {
      db.exec(m.sql)
      db.prepare('INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)').run(m.name, Date.now())
    }).immediate()
  }
}

// ---- types -----------------------------------------------------------------------------------------

export interface ChainKeys {
  readonly signingSecretKey: Uint8Array
  readonly signingPublicKey: Uint8Array
  readonly chameleonPublicKey: Uint8Array
}

export interface ChainStoreOptions {
  /** Worker threads for appendBatches besides the caller's (default: cores − 1; 0 = none). */
  readonly workers?: number
  /** Bulk appends smaller than this stay on the calling thread (default 16). */
  readonly parallelThreshold?: number
  /**
   * Build the chameleon Hash's fixed-base tables on every thread (warmUp) once this many records
   * were appended here: a long-lived appender (the service) under load, where ~1 s of CPU a
   * thread pays for itself within seconds. Default: never (the tables then come after 5,000
   * hashes a thread, chameleon.ts), which keeps short-lived processes and tests light.
   */
  readonly warmUpAfter?: number
}

export type AppendResult = { readonly status: 'created' | 'duplicate'; readonly record: RecordSummary } | { readonly status: 'conflict'; readonly existing: RecordSummary }
export type BulkAppendResult = AppendResult | { readonly status: 'rejected'; readonly error: Error }

export interface BlockSummary {
  readonly height: number
  readonly hash: string
  readonly prev: string | null
  readonly time: number
  readonly recordsRoot: string
  readonly count: number
  readonly firstRecord: number
  readonly lastRecord: number
  readonly chameleonKey: string
  readonly signer: string
  readonly signature: string
  /** The header version: 1 (before the redaction log was committed) or 2. */
  readonly version?: 1 | 2
  /** Version 2: the redaction log as it stood at sealing (entries, head = the last entry's log_hash). */
  readonly redactions?: RedactionState
  /** Set when the stored header no longer decodes (the other fields are then empty). */
  readonly damaged?: true
}

export interface BlockDetail extends BlockSummary {
  readonly header: BlockHeader | null
  /** hex canonical CBOR header: what the hash and the signature cover. */
  readonly headerBytes: string
  readonly records: readonly number[]
}

export interface RecordProof {
  readonly record: RecordDetail
  readonly block: { readonly header: BlockHeader; readonly hash: string; readonly signature: string }
  readonly leafIndex: number
  readonly treeSize: number
  /** RFC 9162 §2.1.3.1 PATH, leaf to root, hex. */
  readonly proof: readonly string[]
}

export interface StreamSummary {
  readonly stream: string
  readonly gateway: string
  readonly device: string
  readonly patient: string
  readonly batches: number
  readonly lastSeq: number
  /** Held seqs, as inclusive ranges. */
  readonly ranges: readonly (readonly [number, number])[]
  /** Missing seqs below lastSeq, as inclusive ranges. */
  readonly gaps: readonly (readonly [number, number])[]
  readonly firstBatchAt: number
  readonly lastBatchAt: number
}

export interface EquivocationEntry {
  readonly id: number
  readonly kind: 'conflict' | 'prev-mismatch' | 'next-mismatch'
  readonly stream: string
  readonly seq: number
  /** The stored record the offered batch contradicts. */
  readonly recordId: number
  readonly offeredCommitment: string
  readonly manifest: BatchManifest
  readonly signature: string
  readonly gatewayKey: string
  readonly detectedAt: number
}

export interface ChainStats {
  readonly records: number
  readonly pendingRecords: number
  readonly blocks: number
  /** Height of the newest block, −1 before the first. */
  readonly height: number
  readonly streams: number
  readonly gaps: number
  readonly missingBatches: number
  readonly equivocations: number
  readonly lastBlockTime: number | null
}

// ---- rows ------------------------------------------------------------------------------------------


export interface RawBlock {
  height: number
  header: Buffer
  hash: Buffer
  signature: Buffer
}

export interface RawStream {
  stream: string
  gateway_id: string
  device: string
  patient: string
  batches: number
  last_seq: number
  first_batch_at: number
  last_batch_at: number
}

const u8 = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
const hex = bytesToHex
/** Leaves of the block trees a store keeps for inclusion proofs (a leaf and its share of the inner nodes: ~0.25 KB, so ~8 MB). */
const TREE_CACHE_LEAVES = 32_768
const RECORD_COLUMNS = 'id, stream, seq, gateway_id, content, hash, opening, manifest_commitment, prev_commitment, cid, received_at, block_height'


export function blockSummary(row: RawBlock): { summary: BlockSummary; header: BlockHeader | null } {
  let header: BlockHeader | null
  try {
    header = decodeBlockHeader(u8(row.header))
  } catch {
    header = null
  }
  const common = { height: row.height, hash: hex(row.hash), signature: hex(row.signature) }
  if (header === null) {
    return { header, summary: { ...common, prev: null, time: 0, recordsRoot: '', count: 0, firstRecord: 0, lastRecord: 0, chameleonKey: '', signer: '', damaged: true } }
  }
  return {
    header,
    summary: {
      ...common,
      prev: header.prev,
      time: header.time,
      recordsRoot: header.recordsRoot,
      count: header.count,
      firstRecord: header.first,
      lastRecord: header.last,
      chameleonKey: header.chameleonKey,
      signer: header.signer,
      version: header.v,
      ...(header.v === 2 ? { redactions: header.redactions } : {}),
    },
  }
}

/** Inclusive ranges of [0, last] not covered by the (sorted, disjoint) gaps. */
export function rangesOf(lastSeq: number, gaps: readonly (readonly [number, number])[]): [number, number][] {
  const ranges: [number, number][] = []
  let from = 0
  for (const [a, b] of gaps) {
    if (a > from) ranges.push([from, a - 1])
    from = b + 1
  }
  if (from <= lastSeq) ranges.push([from, lastSeq])
  return ranges
}

/** A streams row with its (sorted) gaps, as the API shows it. */
export function streamSummaryOf(s: RawStream, gaps: [number, number][]): StreamSummary {
  return {
    stream: s.stream,
    gateway: s.gateway_id,
    device: s.device,
    patient: s.patient,
    batches: s.batches,
    lastSeq: s.last_seq,
    ranges: rangesOf(s.last_seq, gaps),
    gaps,
    firstBatchAt: s.first_batch_at,
    lastBatchAt: s.last_batch_at,
  }
}

/**
 * The next block over the pending `rows` (id order) after `last` (undefined before the first), at
 * max(now, last's time): refuses (VERIFICATION_FAILED) to extend a chain whose last block's stored
 * hash is not the hash of its header, or pending records that do not continue where it ended.
 * Both stores seal through this (cloud/store/pg/chain-store.ts too).
 */
export function nextBlock(
  last: RawBlock | undefined,
  rows: readonly { id: number; hash: Uint8Array }[],
  now: number,
  signer: { chameleonKeyId: string; signerKeyId: string; signingSecretKey: Uint8Array },
  redactions: RedactionState = EMPTY_REDACTION_STATE,
): { height: number; prevHash: Uint8Array | null; block: SealedBlock } {
  let height = 0
  let prevHash: Uint8Array | null = null
  let prevLast = 0
  let time = now
  if (last) {
    const bytes = u8(last.header)
    prevHash = blockHash(bytes)
    if (hex(prevHash) !== hex(last.hash)) {
      throw new CareLedgerError('VERIFICATION_FAILED', `refusing to seal: block ${last.height}'s stored hash is not the hash of its header`, { reason: 'BLOCK_HASH', height: last.height })
    }
    const h = decodeBlockHeader(bytes)
    height = last.height + 1
    prevLast = h.last
    time = Math.max(now, h.time)
  }
  if (rows.length > 0 && rows[0]!.id !== prevLast + 1) {
    throw new CareLedgerError('VERIFICATION_FAILED', `refusing to seal: the first pending record is ${rows[0]!.id}, the last block ended at ${prevLast}`, {
      reason: 'RECORD_ASSIGNMENT',
      first: rows[0]!.id,
      prevLast,
    })
  }
  const block = makeBlock({ height, prevHash, time, records: rows.map((r) => ({ id: r.id, hash: u8(r.hash) })), ...signer, redactions, nextRecord: prevLast + 1 })
  return { height, prevHash, block }
}

/** A copy of an admitted batch no caller holds a reference into. */
const privateAdmission = (a: AdmittedBatch): AdmittedBatch => ({
  ...a,
  manifest: structuredClone(a.manifest),
  manifestBytes: a.manifestBytes.slice(),
  gatewayKey: a.gatewayKey.slice(),
  signature: a.signature.slice(),
})

export const clampLimit = (limit: number): number => (Number.isSafeInteger(limit) && limit > 0 ? Math.min(limit, 1000) : 100)

// ---- the store -------------------------------------------------------------------------------------

/**
 * How much of an even share of a bulk's hashing the appending thread keeps: it also judges,
 * inserts and fills every row (≈ 0.1 ms a record against ≈ 0.35 ms a hash), so with one worker it
 * keeps ≈ 35 % instead of 50 % and both finish together.
 */
const CALLER_HASH_SHARE = 0.7

/**
 * The share of a bulk's admissions admitBatchesAsync sends to a worker thread; this thread does
 * the rest at once. The worker also computes every record's hash ahead (appendBatchesPipelined),
 * ≈ 2× an admission's CPU, while this thread does all the HTTP and SQLite work: about half each
 * evens the two threads out on two cores (bench:append-http).
 */
const ASYNC_ADMIT_SHARE = 0.5

type Verdict =
  | { kind: 'new'; stream: RawStream | undefined }
  | { kind: 'duplicate' | 'conflict'; id: number }
  | { kind: 'prev-mismatch' | 'next-mismatch'; id: number; error: CareLedgerError }
  | { kind: 'refused'; error: CareLedgerError }

/** Where a batch's result comes from once the transaction's writes are complete. */
type Pending = { kind: 'done'; result: BulkAppendResult } | { kind: 'existing'; status: 'duplicate' | 'conflict'; id: number } | { kind: 'created'; plan: number }

interface Plan {
  readonly admitted: AdmittedBatch
  readonly fields: RecordFields
  /** Its content and commitment, when the pipelined append computed them for this very id. */
  committed?: CommittedContent
}

/** A row's commitment columns until the transaction fills them in (the CHECKs want their lengths). */
const UNFILLED: CommittedContent = { content: new Uint8Array(0), hash: new Uint8Array(32), opening: new Uint8Array(64) }

/** What the pipelined append computed ahead for an admitted batch: the id it assumed, and the commitment. */
interface Precommitted {
  readonly id: number
  readonly committed: CommittedContent
}

/** The record fields of an admitted batch stored under `id` (its content is encoded from these). */
function fieldsOf(a: AdmittedBatch, id: number): RecordFields {
  const m = a.manifest
  return { id, stream: m.stream, seq: m.seq, gateway: m.gateway, gatewayKey: a.gatewayKey, manifest: m, signature: a.signature, receivedAt: a.receivedAt }
}

export class ChainStore {
  readonly db: CloudDb
  readonly #signingSecretKey: Uint8Array
  readonly #chameleonPublicKey: Uint8Array
  readonly #chameleonKeyId: string
  readonly #signerKeyId: string
  readonly #pool: SyncPool
  readonly #parallelThreshold: number
  #warmUpAfter: number
  /** Batches handed to #append in this process (for warmUpAfter). */
  #appended = 0
  readonly #trees = new Map<number, MerkleTree>()
  #treeLeaves = 0
  readonly #headers = new Map<number, { bytes: Buffer; header: BlockHeader }>()
  readonly #s
  /** Batches admitBatches admitted on the worker threads, with the private copy appendBatches trusts. */
  readonly #admitted = new WeakMap<object, AdmittedBatch>()
  /** Pipelined appends (appendBatchesPipelined) dispatched and not yet written, their transactions chained in order. */
  #queued = 0
  #tail: Promise<unknown> = Promise.resolve()
  /** While #queued > 0: the id after those the queued appends will take if every batch they carry is new. */
  #predictedEnd = 0
  /** Records written with the commitment computed ahead, and records hashed in the transaction after all (their id had shifted). */
  readonly #ahead = { used: 0, recomputed: 0 }

  constructor(db: CloudDb, keys: ChainKeys, opts: ChainStoreOptions = {}) {
    this.db = db
    const pk = signingPublicKey(keys.signingSecretKey)
    if (hex(pk) !== hex(keys.signingPublicKey)) throw new CareLedgerError('INVALID_ARGUMENT', 'chain keys: the signing public key does not belong to the signing secret key', { reason: 'KEY_MISMATCH' })
    this.#signingSecretKey = keys.signingSecretKey.slice()
    this.#chameleonPublicKey = keys.chameleonPublicKey.slice()
    this.#chameleonKeyId = chameleonKeyId(this.#chameleonPublicKey)
    this.#signerKeyId = signingKeyId(pk)
    ensureSchema(db)
    // An appender hashes every record: libsodium's WebAssembly (ristretto-fast.ts, ~60 ms once) starts
    // loading now, or the first bulks — synchronous, so the load cannot finish in between — hash on
    // noble without tables at ~3× the cost (issue 14's profile: ~1,000 records of a cold start).
    void ristrettoFastReady()
    this.#registerKeys(pk)
    const workers = opts.workers ?? Math.max(0, os.availableParallelism() - 1)
    this.#warmUpAfter = opts.warmUpAfter ?? Infinity
    this.#parallelThreshold = opts.parallelThreshold ?? 16
    this.#pool = new SyncPool(new URL('./append-worker.ts', import.meta.url), {
      size: workers,
      data: { chameleonPublicKey: this.#chameleonPublicKey },
      threshold: this.#parallelThreshold,
    })
    this.#s = this.#prepare()
  }

  #prepare() {
    const db = this.db
    return {
      maxId: db.prepare('SELECT coalesce(max(id), 0) FROM records').pluck(),
      recordAt: db.prepare('SELECT id, manifest_commitment, prev_commitment FROM records WHERE stream = ? AND seq = ?'),
      record: db.prepare(`SELECT ${RECORD_COLUMNS} FROM records WHERE id = ?`),
      // A page of records (or blocks) in one query: the ids as a JSON array (SQLite json_each).
      recordsIn: db.prepare(`SELECT ${RECORD_COLUMNS} FROM records WHERE id IN (SELECT value FROM json_each(?))`),
      blocksIn: db.prepare('SELECT height, header, hash, signature FROM blocks WHERE height IN (SELECT value FROM json_each(?))'),
      insertRecord: db.prepare(
        `INSERT INTO records (id, stream, seq, gateway_id, content, hash, opening, manifest_commitment, prev_commitment, cid, received_at)
         VALUES (@id, @stream, @seq, @gateway, @content, @hash, @opening, @commitment, @prev, @cid, @receivedAt)`,
      ),
      fillRecord: db.prepare('UPDATE records SET content = ?, hash = ?, opening = ? WHERE id = ?'),
      stream: db.prepare('SELECT * FROM streams WHERE stream = ?'),
      insertStream: db.prepare(
        `INSERT INTO streams (stream, gateway_id, device, patient, batches, last_seq, first_batch_at, last_batch_at)
         VALUES (@stream, @gateway, @device, @patient, 1, @seq, @at, @at)`,
      ),
      updateStream: db.prepare('UPDATE streams SET batches = batches + 1, last_seq = max(last_seq, @seq), last_batch_at = max(last_batch_at, @at) WHERE stream = @stream'),
      insertGap: db.prepare('INSERT INTO stream_gaps (stream, from_seq, to_seq) VALUES (?, ?, ?)'),
      gapAt: db.prepare('SELECT from_seq, to_seq FROM stream_gaps WHERE stream = ? AND from_seq <= ? ORDER BY from_seq DESC LIMIT 1'),
      deleteGap: db.prepare('DELETE FROM stream_gaps WHERE stream = ? AND from_seq = ?'),
      logEquivocation: db.prepare(
        `INSERT OR IGNORE INTO equivocations (kind, stream, seq, record_id, offered_commitment, manifest, signature, gateway_key, detected_at)
         VALUES (@kind, @stream, @seq, @recordId, @commitment, @manifest, @signature, @gatewayKey, @at)`,
      ),
      pending: db.prepare('SELECT id, hash FROM records WHERE block_height IS NULL ORDER BY id LIMIT ?'),
      lastBlock: db.prepare('SELECT height, header, hash, signature FROM blocks ORDER BY height DESC LIMIT 1'),
      insertBlock: db.prepare('INSERT INTO blocks (height, header, hash, signature) VALUES (?, ?, ?, ?)'),
      assign: db.prepare('UPDATE records SET block_height = ? WHERE block_height IS NULL AND id BETWEEN ? AND ?'),
      block: db.prepare('SELECT height, header, hash, signature FROM blocks WHERE height = ?'),
      blocksAfter: db.prepare('SELECT height, header, hash, signature FROM blocks WHERE height > ? ORDER BY height LIMIT ?'),
      blockRecordIds: db.prepare('SELECT id FROM records WHERE block_height = ? ORDER BY id').pluck(),
      blockHashes: db.prepare('SELECT hash FROM records WHERE block_height = ? ORDER BY id').pluck(),
      recordsAfter: db.prepare(`SELECT ${RECORD_COLUMNS} FROM records WHERE id > ? ORDER BY id LIMIT ?`),
      streamRecordsAfter: db.prepare(`SELECT ${RECORD_COLUMNS} FROM records WHERE stream = ? AND id > ? ORDER BY id LIMIT ?`),
      streams: db.prepare('SELECT * FROM streams ORDER BY stream'),
      gaps: db.prepare('SELECT stream, from_seq, to_seq FROM stream_gaps ORDER BY stream, from_seq'),
      streamGaps: db.prepare('SELECT stream, from_seq, to_seq FROM stream_gaps WHERE stream = ? ORDER BY from_seq'),
      equivocationsAfter: db.prepare('SELECT * FROM equivocations WHERE id > ? ORDER BY id LIMIT ?'),
      stats: db.prepare(
        `SELECT (SELECT coalesce(max(id), 0) FROM records) AS records,
                (SELECT count(*) FROM records WHERE block_height IS NULL) AS pending,
                (SELECT count(*) FROM blocks) AS blocks,
                (SELECT coalesce(max(height), -1) FROM blocks) AS height,
                (SELECT count(*) FROM streams) AS streams,
                (SELECT count(*) FROM stream_gaps) AS gaps,
                (SELECT coalesce(sum(to_seq - from_seq + 1), 0) FROM stream_gaps) AS missing,
                (SELECT count(*) FROM equivocations) AS equivocations`,
      ),
    }
  }

  /** Record the keys in use; the chameleon key of a chain never changes (its trapdoor opens the old records). */
  #registerKeys(signingPk: Uint8Array): void {
    this.db
      .transaction(() => {
        const existing = this.db.prepare("SELECT key_id FROM chain_keys WHERE kind = 'chameleon'").pluck().all() as string[]
        if (existing.length > 0 && !existing.includes(this.#chameleonKeyId)) {
          throw new CareLedgerError('INVALID_ARGUMENT', `this chain's records are committed under chameleon key ${existing.join(', ')}, not ${this.#chameleonKeyId}`, {
            reason: 'CHAMELEON_KEY_CHANGED',
            stored: existing,
            given: this.#chameleonKeyId,
          })
        }
        const add = this.db.prepare('INSERT OR IGNORE INTO chain_keys (kind, key_id, public_key, added_at) VALUES (?, ?, ?, ?)')
        add.run('chameleon', this.#chameleonKeyId, this.#chameleonPublicKey, Date.now())
        add.run('signing', this.#signerKeyId, signingPk, Date.now())
      })
      .immediate()
  }

  get chameleonKeyId(): string {
    return this.#chameleonKeyId
  }

  get signerKeyId(): string {
    return this.#signerKeyId
  }

  /**
   * Start the append worker threads now rather than at the first large appendBatches, and build
   * the chameleon Hash's fixed-base tables for the regulator's key on this thread and each worker
   * (~1 s of CPU each, ~20 MB): for a long-lived appender before its traffic, not mid-backlog.
   */
  warmUp(): void {
    this.#warmUpAfter = Infinity
    this.#pool.start()
    this.#pool.broadcast('prepare', null, () => chameleonPrepareHashTables(this.#chameleonPublicKey))
  }

  /** Start the worker threads and resolve once they take the pipelined append's hashes (appendBatchesPipelined computes in the transaction until then). */
  async pipelineReady(): Promise<void> {
    await this.#pool.asyncReady()
  }

  /** How the append work was spread: items computed on worker threads vs this thread, workers retired after a failure. */
  appendThreadStats(): { readonly onWorkers: number; readonly onCaller: number; readonly retired: number } {
    return this.#pool.stats
  }

  /** The pipelined append's hit rate: records written with the commitment computed ahead, and those recomputed (their id had shifted). */
  pipelineStats(): { readonly used: number; readonly recomputed: number } {
    return { ...this.#ahead }
  }

  /** Stop the worker threads, once the pipelined appends queued so far are written. The database stays open (it belongs to the caller). */
  async close(): Promise<void> {
    await this.#tail
    await this.#pool.close()
  }

  // ---- appending -----------------------------------------------------------------------------------

  /**
   * Append one gateway batch: 'created' (a new record, block null until sealed), 'duplicate' (the
   * same manifest is already stored: nothing new) or 'conflict' (another manifest holds this
   * (stream, seq): logged as an equivocation). Throws CareLedgerError for a batch the chain
   * refuses, with `info.reason`: the admission reasons of record.ts, PREV_MISMATCH (its prev is not
   * the stored seq − 1's commitment), NEXT_MISMATCH (the stored seq + 1 names another prev) or
   * STREAM_IDENTITY; link mismatches are logged as equivocations before the error is thrown.
   */
  appendBatch(input: AppendInput | AdmittedBatch): AppendResult {
    const admitted = vouchedAdmission(input) ?? this.#admitted.get(input) ?? admitBatch(input)
    const [result] = this.#append([{ ok: admitted }])
    if (result!.status === 'rejected') throw result!.error
    return result!
  }

  /**
   * Append many batches in one transaction (one fsync), each judged as by appendBatch, in order;
   * a refused batch does not affect the others. Signature checks and chameleon hashes are spread
   * over the worker threads. For POST /v1/batches/bulk and for coalescing concurrent uploads.
   * Pass the AdmittedBatch objects admitBatch returned (not copies) to skip their second admission.
   */
  appendBatches(inputs: readonly (AppendInput | AdmittedBatch)[]): BulkAppendResult[] {
    return this.#append(this.#admitAll(inputs))
  }

  /**
   * appendBatches, pipelined for a busy appender (the service's bulk and grouped uploads): the
   * records' chameleon hashes are computed on a worker thread *before* the transaction, while this
   * thread serves other requests, instead of inside it. Each new record's id is predicted from the
   * appends queued before it (the next free id, assuming every batch is new); the transactions run
   * strictly in the order of the calls, and a record whose id turned out different (a duplicate or
   * a refusal earlier in the queue shifted it, or another append came in between) is hashed in the
   * transaction as appendBatches does — so the result is exactly appendBatches' own, only its CPU
   * moved off this thread (issue 14: the event-loop thread was the bottleneck, its worker ⅔ idle).
   */
  appendBatchesPipelined(inputs: readonly (AppendInput | AdmittedBatch)[]): Promise<BulkAppendResult[]> {
    const admitted = this.#admitAll(inputs)
    const fresh = admitted.flatMap((o) => ('ok' in o ? [o.ok] : []))
    const start = this.#queued > 0 ? this.#predictedEnd : (this.#s.maxId.get() as number) + 1
    const fields = fresh.map((a, k) => fieldsOf(a, start + k))
    this.#predictedEnd = start + fields.length
    this.#queued++
    // A few records (single uploads grouped by AppendQueue) are hashed in the transaction, as
    // appendBatches does: a round trip to a worker would add more latency than it saves.
    const ahead = fields.length >= this.#parallelThreshold ? this.#pool.mapAsync('commit', fields, (f): Outcome<CommittedContent> => attempt(() => commitRecord(this.#chameleonPublicKey, f))) : null
    const run = this.#tail
      .then(async () => {
        const committed = (await ahead) ?? []
        const pre = new Map<AdmittedBatch, Precommitted>()
        committed.forEach((c, k) => {
          if ('ok' in c) pre.set(fresh[k]!, { id: fields[k]!.id, committed: c.ok })
        })
        return this.#append(admitted, pre, fields.length)
      })
      .finally(() => void this.#queued--)
    this.#tail = run.catch(() => undefined)
    return run
  }

  /** Each input as an admitted batch or its refusal: what admitBatch or admitBatches already returned here (the service admits each upload before its CAR check) is not admitted twice. */
  #admitAll(inputs: readonly (AppendInput | AdmittedBatch)[]): Outcome<AdmittedBatch>[] {
    const vouched = inputs.map((x) => vouchedAdmission(x) ?? this.#admitted.get(x) ?? null)
    const rest = inputs.filter((_, i) => vouched[i] === null)
    const fresh = this.#pool.mapChunks('admitMany', rest, admitBatchesOf)
    let next = 0
    return vouched.map((v) => (v ? { ok: v } : fresh[next++]!))
  }

  /**
   * Admit many uploads as admitBatch does (schema, keys, stream id, Ed25519 signature), spread over
   * the worker threads: the service's bulk path (POST /v1/batches/bulk) judges a request's items
   * here at once instead of one by one on the event loop. Each admitted batch is vouched for, like
   * admitBatch's, so appendBatches does not admit it again; a refusal is its typed error.
   * Each thread's chunk has its signatures checked as one Ed25519 batch (record.ts admitBatches,
   * shared/crypto/ed25519-batch.ts), a failing batch re-judged one by one so each refusal still
   * names its item.
   */
  admitBatches(inputs: readonly AppendInput[]): Outcome<AdmittedBatch>[] {
    return this.#keepAdmitted(this.#pool.mapChunks('admitMany', inputs, admitBatchesOf))
  }

  /**
   * admitBatches for the service's bulk path, leaving this thread free sooner: a share of the items
   * (ASYNC_ADMIT_SHARE) goes to a worker thread, answered later, while this thread admits the rest
   * at once and then serves other requests until the worker's answer is in. Where no worker is
   * ready (starting, none, retired) it is admitBatches. The same verdicts, the same vouching.
   * (Issue 14's profile: with the hashes computed ahead on the worker, it is busy when admitBatches
   * posts its chunk there, so this thread took every chunk back and did all the admission itself.)
   */
  async admitBatchesAsync(inputs: readonly AppendInput[]): Promise<Outcome<AdmittedBatch>[]> {
    const share = inputs.length >= this.#parallelThreshold ? Math.floor(inputs.length * ASYNC_ADMIT_SHARE) : 0
    const theirs = share > 0 ? this.#pool.mapChunkAsync('admitMany', inputs.slice(0, share), admitBatchesOf) : null
    if (!theirs) return this.admitBatches(inputs)
    const mine = admitBatchesOf(inputs.slice(share))
    return this.#keepAdmitted([...(await theirs), ...mine])
  }

  /** Each batch a worker admitted, kept with a private copy (see admitBatches). */
  #keepAdmitted(out: Outcome<AdmittedBatch>[]): Outcome<AdmittedBatch>[] {
    for (const o of out) {
      // A worker's answer crossed threads by structured clone: it is this store's own object, kept
      // with a private copy so a caller mutating it afterwards cannot smuggle a changed batch in.
      if ('ok' in o && vouchedAdmission(o.ok) === null) this.#admitted.set(o.ok, privateAdmission(o.ok))
    }
    return out
  }

  /**
   * The append transaction. `pre`: commitments computed ahead (appendBatchesPipelined), used for a
   * record only if it gets the id they were computed for; `predicted`: how many ids that caller
   * reserved, so the next predictions shift by what this transaction created instead.
   */
  #append(admitted: readonly Outcome<AdmittedBatch>[], pre?: ReadonlyMap<AdmittedBatch, Precommitted>, predicted = 0): BulkAppendResult[] {
    let created = 0
    try {
      const results = this.#appendTransaction(admitted, pre)
      for (const r of results) if (r.status === 'created') created++
      return results
    } finally {
      if (this.#queued > 0) this.#predictedEnd += created - predicted
    }
  }

  #appendTransaction(admitted: readonly Outcome<AdmittedBatch>[], pre: ReadonlyMap<AdmittedBatch, Precommitted> | undefined): BulkAppendResult[] {
    this.#appended += admitted.length
    if (this.#appended >= this.#warmUpAfter) this.warmUp()
    return this.db.transaction((): BulkAppendResult[] => {
      let nextId = (this.#s.maxId.get() as number) + 1
      const pending: Pending[] = []
      const plans: Plan[] = []
      // The new records' chameleon hashes start on the workers as soon as each row is planned, so
      // they hash while this thread goes on judging and inserting; this thread takes a smaller
      // share (CALLER_HASH_SHARE), since it also does every SQLite write.
      const commits = this.#pool.stream('commit', (f: RecordFields): Outcome<CommittedContent> => attempt(() => commitRecord(this.#chameleonPublicKey, f)), {
        expected: admitted.length, // an upper bound: records computed ahead are not pushed
        callerShare: CALLER_HASH_SHARE / (this.#pool.size + 1),
      })
      for (const outcome of admitted) {
        if (!('ok' in outcome)) {
          pending.push({ kind: 'done', result: { status: 'rejected', error: outcomeError(outcome)! } })
          continue
        }
        const a = outcome.ok
        const verdict = this.#judge(a)
        switch (verdict.kind) {
          case 'duplicate':
          case 'conflict':
            if (verdict.kind === 'conflict') this.#logEquivocation('conflict', a, verdict.id)
            pending.push({ kind: 'existing', status: verdict.kind, id: verdict.id })
            break
          case 'prev-mismatch':
          case 'next-mismatch':
            this.#logEquivocation(verdict.kind, a, verdict.id)
            pending.push({ kind: 'done', result: { status: 'rejected', error: verdict.error } })
            break
          case 'refused':
            pending.push({ kind: 'done', result: { status: 'rejected', error: verdict.error } })
            break
          case 'new': {
            const fields = fieldsOf(a, nextId)
            const ahead = pre?.get(a)
            const committed = ahead && ahead.id === fields.id ? ahead.committed : undefined
            const refused = this.#insert(a, fields.id, verdict.stream, committed)
            if (refused) {
              pending.push({ kind: 'done', result: { status: 'rejected', error: refused } })
              break
            }
            nextId++
            pending.push({ kind: 'created', plan: plans.length })
            if (committed) {
              plans.push({ admitted: a, fields, committed })
              this.#ahead.used++
            } else {
              if (ahead) this.#ahead.recomputed++
              plans.push({ admitted: a, fields })
              commits.push(fields)
            }
          }
        }
      }
      // The rest of the hashes here, the workers' answers collected; then fill those rows in (a
      // row whose commitment was computed ahead was inserted whole).
      const committed = commits.finish()
      let next = 0
      const hashes = plans.map((plan) => {
        if (plan.committed) return plan.committed.hash
        const o = committed[next++]!
        if (!('ok' in o)) throw outcomeError(o)! // cannot happen for admitted fields: abort the whole transaction
        this.#s.fillRecord.run(o.ok.content, o.ok.hash, o.ok.opening, plan.fields.id)
        return o.ok.hash
      })
      return pending.map((p): BulkAppendResult => {
        if (p.kind === 'done') return p.result
        if (p.kind === 'created') {
          const { admitted: a, fields } = plans[p.plan]!
          return { status: 'created', record: summarize(fields.id, a.manifest, hashes[p.plan]!, a.receivedAt, null) }
        }
        const existing = summaryOf(describeRow(toRecordRow(this.#s.record.get(p.id) as RawRecord)))
        return p.status === 'duplicate' ? { status: 'duplicate', record: existing } : { status: 'conflict', existing }
      })
    }).immediate()
  }

  /** Classify an admitted batch against the stored stream (including this transaction's earlier inserts). */
  #judge(a: AdmittedBatch): Verdict {
    const m = a.manifest
    const stream = this.#s.stream.get(m.stream) as RawStream | undefined
    if (stream && (stream.gateway_id !== m.gateway || stream.device !== m.device || stream.patient !== m.patient)) {
      return {
        kind: 'refused',
        error: new CareLedgerError('INVALID_ARGUMENT', `stream ${m.stream} belongs to gateway ${stream.gateway_id}, device ${stream.device}, patient ${stream.patient}`, {
          reason: 'STREAM_IDENTITY',
          stream: m.stream,
        }),
      }
    }
    type At = { id: number; manifest_commitment: string; prev_commitment: string | null }
    const here = this.#s.recordAt.get(m.stream, m.seq) as At | undefined
    if (here) return { kind: here.manifest_commitment === a.commitment ? 'duplicate' : 'conflict', id: here.id }
    if (m.seq > 0) {
      const before = this.#s.recordAt.get(m.stream, m.seq - 1) as At | undefined
      if (before && before.manifest_commitment !== m.prev) {
        return {
          kind: 'prev-mismatch',
          id: before.id,
          error: new CareLedgerError(
            'VERIFICATION_FAILED',
            `stream ${m.stream} seq ${m.seq}: prev ${m.prev} is not the commitment ${before.manifest_commitment} of the stored seq ${m.seq - 1} (record ${before.id})`,
            { reason: 'PREV_MISMATCH', stream: m.stream, seq: m.seq, prev: m.prev, stored: before.manifest_commitment, recordId: before.id },
          ),
        }
      }
    }
    const after = this.#s.recordAt.get(m.stream, m.seq + 1) as At | undefined
    if (after && after.prev_commitment !== a.commitment) {
      return {
        kind: 'next-mismatch',
        id: after.id,
        error: new CareLedgerError(
          'VERIFICATION_FAILED',
          `stream ${m.stream} seq ${m.seq}: its commitment ${a.commitment} is not the prev ${after.prev_commitment} of the stored seq ${m.seq + 1} (record ${after.id})`,
          { reason: 'NEXT_MISMATCH', stream: m.stream, seq: m.seq, commitment: a.commitment, storedPrev: after.prev_commitment, recordId: after.id },
        ),
      }
    }
    return { kind: 'new', stream }
  }

  /**
   * The record row (content, hash and opening: `committed`, or filled in later in the same
   * transaction) and the stream index. What can refuse the record (a late seq in no recorded gap) is checked before the
   * first write, so a refusal writes nothing and needs no savepoint; a failing write (a constraint
   * the judge has already ruled out) throws and aborts the whole transaction.
   */
  #insert(a: AdmittedBatch, id: number, stream: RawStream | undefined, committed: CommittedContent | undefined): CareLedgerError | null {
    const m = a.manifest
    const s = this.#s
    const late = stream !== undefined && m.seq <= stream.last_seq
    const gap = late ? (s.gapAt.get(m.stream, m.seq) as { from_seq: number; to_seq: number } | undefined) : undefined
    if (late && (!gap || gap.to_seq < m.seq)) {
      return new CareLedgerError('VERIFICATION_FAILED', `stream ${m.stream}: seq ${m.seq} is below last seq ${stream.last_seq} but in no recorded gap (the stream index is inconsistent)`, {
        reason: 'STREAM_INDEX',
        stream: m.stream,
        seq: m.seq,
      })
    }
    const c = committed ?? UNFILLED
    s.insertRecord.run({ id, stream: m.stream, seq: m.seq, gateway: m.gateway, content: c.content, hash: c.hash, opening: c.opening, commitment: a.commitment, prev: m.prev, cid: m.cid, receivedAt: a.receivedAt })
    if (!stream) {
      s.insertStream.run({ stream: m.stream, gateway: m.gateway, device: m.device, patient: m.patient, seq: m.seq, at: a.receivedAt })
      if (m.seq > 0) s.insertGap.run(m.stream, 0, m.seq - 1)
      return null
    }
    if (gap) {
      // A late batch: it closes (part of) a recorded gap.
      s.deleteGap.run(m.stream, gap.from_seq)
      if (gap.from_seq < m.seq) s.insertGap.run(m.stream, gap.from_seq, m.seq - 1)
      if (m.seq < gap.to_seq) s.insertGap.run(m.stream, m.seq + 1, gap.to_seq)
    } else if (m.seq > stream.last_seq + 1) {
      s.insertGap.run(m.stream, stream.last_seq + 1, m.seq - 1)
    }
    s.updateStream.run({ stream: m.stream, seq: m.seq, at: a.receivedAt })
    return null
  }

  #logEquivocation(kind: 'conflict' | 'prev-mismatch' | 'next-mismatch', a: AdmittedBatch, recordId: number): void {
    this.#s.logEquivocation.run({
      kind,
      stream: a.manifest.stream,
      seq: a.manifest.seq,
      recordId,
      commitment: a.commitment,
      manifest: a.manifestBytes,
      signature: a.signature,
      gatewayKey: a.gatewayKey,
      at: a.receivedAt,
    })
  }

  // ---- sealing -------------------------------------------------------------------------------------

  /**
   * Seal every pending record (at most `maxRecords`) into the next block, in one transaction,
   * committing the redaction log as it stands (block header v2). Null when nothing is pending and
   * the log has not moved since the last block; when only the log moved, the block holds no
   * records. The block time never goes backwards: it is max(now, previous block's time). Refuses
   * (VERIFICATION_FAILED) to extend a chain whose last block's stored hash is not the hash of its
   * header, whose pending records do not continue where the last block ended, or whose redaction
   * log does not extend the state the last v2 block committed to (an entry removed or rewritten).
   * Called inside another transaction (SupervisionStore applying a redaction), it joins it.
   */
  sealBlock(now: number, opts: { maxRecords?: number } = {}): BlockSummary | null {
    if (!Number.isSafeInteger(now) || now < 0) throw new CareLedgerError('INVALID_ARGUMENT', `sealBlock: now must be epoch milliseconds, got ${now}`, { now })
    const limit = opts.maxRecords ?? -1
    return this.db.transaction((): BlockSummary | null => {
      const rows = this.#s.pending.all(limit) as { id: number; hash: Buffer }[]
      const last = this.#s.lastBlock.get() as RawBlock | undefined
      const log = redactionLogState(this.db)
      const committed = last ? committedState(blockSummary(last).header) : null
      const moved = logMoved(last?.height ?? null, committed, log, committed ? redactionLogHeadAt(this.db, committed.count) : null)
      if (rows.length === 0 && (!last || !moved)) return null
      const { height, block } = nextBlock(last, rows, now, { chameleonKeyId: this.#chameleonKeyId, signerKeyId: this.#signerKeyId, signingSecretKey: this.#signingSecretKey }, log)
      this.#s.insertBlock.run(height, block.bytes, block.hash, block.signature)
      const assigned = block.header.count === 0 ? 0 : this.#s.assign.run(height, block.header.first, block.header.last).changes
      if (assigned !== block.header.count) throw new Error(`internal: sealed ${assigned} records into block ${height}, expected ${block.header.count}`)
      return blockSummary({ height, header: Buffer.from(block.bytes), hash: Buffer.from(block.hash), signature: Buffer.from(block.signature) }).summary
    }).immediate()
  }

  // ---- reading -------------------------------------------------------------------------------------

  getRecord(id: number): RecordDetail | null {
    const row = this.#s.record.get(id) as RawRecord | undefined
    return row ? describeRow(toRecordRow(row)) : null
  }

  /** Records in id order after the cursor `after` (an id), optionally of one stream; limit ≤ 1000. */
  listRecords(q: { stream?: string; after?: number; limit: number }): RecordSummary[] {
    const after = q.after ?? 0
    const limit = clampLimit(q.limit)
    const rows = (q.stream === undefined ? this.#s.recordsAfter.all(after, limit) : this.#s.streamRecordsAfter.all(q.stream, after, limit)) as RawRecord[]
    return rows.map((r) => summaryOf(describeRow(toRecordRow(r))))
  }

  /**
   * The record with its RFC 9162 inclusion proof in its block (docs/api.md GET /v1/records/:id/proof);
   * null when there is no such record or it is not sealed yet (getRecord(id).block === null).
   */
  recordProof(id: number): RecordProof | null {
    return this.recordProofs([id])[0]!
  }

  /**
   * recordProof of each id, in the order given (null where it would be null): the rows in one
   * query and their blocks in another, instead of two queries a record (GET /v1/evidence/records
   * serves pages of them).
   */
  recordProofs(ids: readonly number[]): (RecordProof | null)[] {
    if (ids.length === 0) return []
    const raws = new Map((this.#s.recordsIn.all(JSON.stringify(ids)) as RawRecord[]).map((r) => [r.id, r]))
    const heights = [...new Set([...raws.values()].flatMap((r) => (r.block_height === null ? [] : [r.block_height])))]
    const blocks = new Map(heights.length === 0 ? [] : (this.#s.blocksIn.all(JSON.stringify(heights)) as RawBlock[]).map((b) => [b.height, b]))
    return ids.map((id) => {
      const raw = raws.get(id)
      if (!raw || raw.block_height === null) return null
      const b = blocks.get(raw.block_height)
      if (!b) return null
      const row = toRecordRow(raw)
      const header = this.#header(b)
      const tree = this.#tree(b.height)
      const leafIndex = row.id - header.first
      return {
        record: describeRow(row),
        block: { header, hash: hex(b.hash), signature: hex(b.signature) },
        leafIndex,
        treeSize: tree.size,
        proof: tree.inclusionProof(leafIndex).map(hex),
      }
    })
  }

  /** A block's decoded header, kept for the blocks whose proofs are being served (only while its stored bytes are the same). */
  #header(b: RawBlock): BlockHeader {
    const kept = this.#headers.get(b.height)
    if (kept && kept.bytes.equals(b.header)) return kept.header
    const header = decodeBlockHeader(u8(b.header))
    if (this.#headers.size >= 64) this.#headers.delete(this.#headers.keys().next().value!)
    this.#headers.set(b.height, { bytes: Buffer.from(b.header), header })
    return header
  }

  /**
   * A block's Merkle tree, kept (least recently used out) while the kept trees hold at most
   * TREE_CACHE_LEAVES leaves: an export pages through one stream after another over the same
   * blocks, and rebuilding a 1,000-record tree (its hashes read, 2,000 SHA-256) for every few
   * records was most of a records page's cost.
   */
  #tree(height: number): MerkleTree {
    let tree = this.#trees.get(height)
    if (tree) {
      this.#trees.delete(height) // to the back: most recently used
      this.#trees.set(height, tree)
      return tree
    }
    tree = recordsTree((this.#s.blockHashes.all(height) as Buffer[]).map(u8))
    this.#treeLeaves += tree.size
    this.#trees.set(height, tree)
    while (this.#treeLeaves > TREE_CACHE_LEAVES && this.#trees.size > 1) {
      const [oldest, dropped] = this.#trees.entries().next().value!
      this.#trees.delete(oldest)
      this.#treeLeaves -= dropped.size
    }
    return tree
  }

  getBlock(height: number): BlockDetail | null {
    const row = this.#s.block.get(height) as RawBlock | undefined
    if (!row) return null
    const { summary, header } = blockSummary(row)
    return { ...summary, header, headerBytes: hex(row.header), records: this.#s.blockRecordIds.all(height) as number[] }
  }

  /** Blocks in height order after the cursor `after` (a height); limit ≤ 1000. */
  listBlocks(q: { after?: number; limit: number }): BlockSummary[] {
    return (this.#s.blocksAfter.all(q.after ?? -1, clampLimit(q.limit)) as RawBlock[]).map((r) => blockSummary(r).summary)
  }

  /** The newest block's height, hash and time; null before the first block. */
  head(): { height: number; hash: string; time: number | null } | null {
    const row = this.#s.lastBlock.get() as RawBlock | undefined
    if (!row) return null
    const { summary } = blockSummary(row)
    return { height: row.height, hash: hex(row.hash), time: summary.damaged ? null : summary.time }
  }

  listStreams(): StreamSummary[] {
    const gaps = new Map<string, [number, number][]>()
    for (const g of this.#s.gaps.all() as { stream: string; from_seq: number; to_seq: number }[]) {
      let list = gaps.get(g.stream)
      if (!list) gaps.set(g.stream, (list = []))
      list.push([g.from_seq, g.to_seq])
    }
    return (this.#s.streams.all() as RawStream[]).map((s) => this.#streamSummary(s, gaps.get(s.stream) ?? []))
  }

  getStream(stream: string): StreamSummary | null {
    const s = this.#s.stream.get(stream) as RawStream | undefined
    if (!s) return null
    const gaps = (this.#s.streamGaps.all(stream) as { from_seq: number; to_seq: number }[]).map((g): [number, number] => [g.from_seq, g.to_seq])
    return this.#streamSummary(s, gaps)
  }

  #streamSummary(s: RawStream, gaps: [number, number][]): StreamSummary {
    return streamSummaryOf(s, gaps)
  }

  listEquivocations(q: { after?: number; limit: number }): EquivocationEntry[] {
    type Raw = { id: number; kind: EquivocationEntry['kind']; stream: string; seq: number; record_id: number; offered_commitment: string; manifest: Buffer; signature: Buffer; gateway_key: Buffer; detected_at: number }
    return (this.#s.equivocationsAfter.all(q.after ?? 0, clampLimit(q.limit)) as Raw[]).map((r) => ({
      id: r.id,
      kind: r.kind,
      stream: r.stream,
      seq: r.seq,
      recordId: r.record_id,
      offeredCommitment: r.offered_commitment,
      manifest: decodeManifestBytes(u8(r.manifest)),
      signature: hex(r.signature),
      gatewayKey: hex(r.gateway_key),
      detectedAt: r.detected_at,
    }))
  }

  stats(): ChainStats {
    const r = this.#s.stats.get() as { records: number; pending: number; blocks: number; height: number; streams: number; gaps: number; missing: number; equivocations: number }
    return {
      records: r.records,
      pendingRecords: r.pending,
      blocks: r.blocks,
      height: r.height,
      streams: r.streams,
      gaps: r.gaps,
      missingBatches: r.missing,
      equivocations: r.equivocations,
      lastBlockTime: this.head()?.time ?? null,
    }
  }
}

/** The logged manifest (stored as the canonical bytes the gateway signed, admitted before logging). */
const decodeManifestBytes = (bytes: Uint8Array): BatchManifest => decodeCanonical(bytes) as unknown as BatchManifest
