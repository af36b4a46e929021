/**
 * Chain verification from the database alone (`careledger chain verify`, and the service every
 * few minutes). Everything is recomputed; nothing the database says about itself is trusted:
 *
 *   blocks   header decodes (BLOCK_HEADER); stored hash = SHA-256(header) (BLOCK_HASH); heights
 *            0, 1, 2, … (HEIGHT); prev = hash of the previous header (PREV_LINK); Ed25519
 *            signature by a trusted key (BLOCK_SIGNATURE); time never decreases (BLOCK_TIME);
 *            chameleon key id (CHAMELEON_KEY); RFC 9162 root over the assigned records' hashes
 *            (RECORDS_ROOT); the records assigned are exactly first..last, continuing the
 *            previous block, none sealed outside a block, none pending inside (RECORD_ASSIGNMENT)
 *   records  chameleon opening over the stored content (RECORD_OPENING); content decodes and
 *            agrees with the indexed columns (RECORD_CONTENT); gateway signature (MANIFEST_SIGNATURE)
 *   streams  prev of seq n = commitment of seq n − 1 (STREAM_LINK); the stream index and its
 *            gaps agree with the records (STREAM_INDEX)
 *   redaction log  the log as stored extends the state every v2 block committed to: entry count
 *            and head (REDACTION_LOG: an entry removed, reordered, rewritten or rolled back, named
 *            with the block that committed it; checkLogCommitments in verify-redactions.ts)
 *   envelopes (with `envelopes`) every record's block re-hashed against its CID
 *            (ENVELOPE_MISSING, ENVELOPE_CORRUPT; verify-envelopes.ts)
 *
 * The record checks run on worker threads fed with chunks of rows (checkRecordRows: each chunk's
 * format-2 chameleon openings as one batch, docs/crypto.md §Batch verification; Ed25519 one by one
 * through OpenSSL); block checks run meanwhile on the main thread. The whole run reads one
 * snapshot (a read transaction on its own read-only connection), so a live service can keep
 * appending while it runs. Truncation (dropping the newest blocks) is only detectable against a
 * head known from elsewhere: pass `expectHead`.
 */
import os from 'node:os'
import { createHash } from 'node:crypto'
import { Worker } from 'node:worker_threads'
import Database from 'better-sqlite3'
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../../shared/errors.ts'
import { chameleonKeyId } from '../../shared/crypto/chameleon.ts'
import { signingKeyId } from '../../shared/crypto/sign.ts'
import type { CloudDb } from '../store/db.ts'
import { blockHash, decodeBlockHeader, recordsRoot, verifyBlockSignature, type BlockHeader } from './block.ts'
import { checkRecordRows, toRecordRow, type RawRecord, type RecordFailure, type RecordFailureKind, type RecordRow } from './record.ts'
import type { EnvelopeFailureKind } from './verify-envelopes.ts'
import { checkLogCommitments, chunkRedactionJobs, hasRedactionLog, planRedactionChecks, runRedactionJobs, UNREDACTED_ROWS, type CommittedLogState, type RedactionFailure, type RedactionJob } from '../supervision/verify-redactions.ts'
import type { SupervisoryPolicy } from '../../shared/protocol/supervisory-policy.ts'

export type FailureKind =
  | 'BLOCK_HEADER'
  | 'BLOCK_HASH'
  | 'PREV_LINK'
  | 'HEIGHT'
  | 'BLOCK_SIGNATURE'
  | 'BLOCK_TIME'
  | 'CHAMELEON_KEY'
  | 'RECORDS_ROOT'
  | 'RECORD_ASSIGNMENT'
  | RecordFailureKind
  | 'STREAM_LINK'
  | 'STREAM_INDEX'
  | 'REDACTION'
  | 'REDACTION_LOG'
  | EnvelopeFailureKind
  | 'HEAD'

export interface VerificationFailure {
  readonly kind: FailureKind
  readonly height?: number
  readonly recordId?: number
  readonly stream?: string
  readonly seq?: number
  readonly message: string
}

/** Rows a worker checks as one batch: see bench:cloud's records/s against batch size. */
export const DEFAULT_BATCH_SIZE = 1024

export interface VerifyOptions {
  /** The regulator's chameleon public key (32 bytes): every record hash is checked under it. */
  readonly chameleonPublicKey: Uint8Array
  /**
   * Trusted block-signing key(s). Without: the keys the chain recorded in its own database
   * (chain_keys), which proves self-consistency only; the report says which.
   */
  readonly signingPublicKey?: Uint8Array | readonly Uint8Array[]
  /** Record-checking threads (default: one per core; 0 = on the calling thread). Ignored with `pool`. */
  readonly workers?: number
  /** Threads kept across runs (a long-lived verifier: each new thread costs ~0.3 s of module loading). */
  readonly pool?: VerifyWorkerPool
  /** Rows per message to a worker, whose chameleon openings are checked as one batch (default DEFAULT_BATCH_SIZE). */
  readonly chunkSize?: number
  /**
   * The calling thread checks chunks too, beside its workers (`careledger chain verify`: a one-shot
   * process whose event loop serves nothing else, so it needs one thread fewer). Not for a service:
   * a chunk holds the event loop for a few hundred ms.
   */
  readonly callingThreadChecks?: boolean
  /** Failures listed in the report (all are counted; default 1000). */
  readonly maxFailures?: number
  /** Skip the cryptographic checks of records that passed them before, byte for byte (see VerificationCache). */
  readonly cache?: VerificationCache
  /** A head known from elsewhere (a published block hash): detects truncation and rewritten history. */
  readonly expectHead?: { readonly height: number; readonly hash: string }
  /** Re-hash every record's envelope block in this blockstore directory (absent: not checked). */
  /** Re-hash every record's envelope: rows of the chain database's envelope table, else files under `blocksDir`. */
  readonly envelopes?: { readonly blocksDir?: string }
  /** Trusted supervisory policies for the redaction log (absent: the ones the database holds). */
  readonly supervisoryPolicies?: readonly SupervisoryPolicy[]
}

export interface VerificationReport {
  readonly ok: boolean
  readonly startedAt: number
  readonly checkedAt: number
  readonly durationMs: number
  readonly blocks: number
  readonly head: { readonly height: number; readonly hash: string } | null
  readonly records: number
  readonly sealedRecords: number
  readonly pendingRecords: number
  readonly streams: number
  /** Records whose chameleon opening and signature were checked in this run. */
  readonly recordsChecked: number
  /** Records skipped because the cache held an identical row that passed under the same key. */
  readonly recordsCached: number
  readonly workers: number
  readonly chameleonKey: string
  /** 'data-directory': given, but read from the audited data directory (CLI), so not independent. */
  readonly signingKeys: { readonly ids: readonly string[]; readonly source: 'argument' | 'database' | 'data-directory' }
  /** Envelope blocks re-hashed against their CIDs; null when not checked. */
  readonly envelopes: { readonly checked: number; readonly bytes: number } | null
  readonly failures: readonly VerificationFailure[]
  readonly failureCounts: Readonly<Partial<Record<FailureKind, number>>>
  /** Failures counted but not listed (beyond maxFailures). */
  readonly failuresOmitted: number
  /**
   * The redaction log: its entries, how many the newest v2 block commits to, and how many were
   * applied since (not yet committed by a block); `committedAt` is that block's height (null: no
   * v2 block yet). Absent in reports made before block header v2 (a stored or remote report).
   */
  readonly redactionLog?: { readonly entries: number; readonly committed: number; readonly uncommitted: number; readonly committedAt: number | null }
}

// ---- the memo of verified rows ---------------------------------------------------------------------

const DIGEST_BYTES = 16

/**
 * Memo for repeated runs in one long-lived process (the service verifies every few minutes): for
 * each record that passed, a 128-bit SHA-256 digest of the chameleon key and every byte the record
 * checks read (content, hash, opening, the indexed columns). A later run skips the chameleon and
 * Ed25519 checks of a row only if its digest is identical — any edit to the row changes it — and
 * still runs every block, root, assignment and stream check. Keep it in memory, never in the
 * database it vouches for. 16 bytes per record id.
 */
export class VerificationCache {
  #digests = new Uint8Array(DIGEST_BYTES * 1024)
  #valid = new Uint8Array(1024)
  #size = 0

  get size(): number {
    return this.#size
  }

  has(id: number, digest: Uint8Array): boolean {
    if (id >= this.#valid.length || this.#valid[id] !== 1) return false
    const at = id * DIGEST_BYTES
    for (let i = 0; i < DIGEST_BYTES; i++) if (this.#digests[at + i] !== digest[i]) return false
    return true
  }

  set(id: number, digest: Uint8Array): void {
    if (id >= this.#valid.length) {
      let n = this.#valid.length
      while (n <= id) n *= 2
      const valid = new Uint8Array(n)
      valid.set(this.#valid)
      const digests = new Uint8Array(n * DIGEST_BYTES)
      digests.set(this.#digests)
      this.#valid = valid
      this.#digests = digests
    }
    if (this.#valid[id] !== 1) this.#size++
    this.#valid[id] = 1
    this.#digests.set(digest.subarray(0, DIGEST_BYTES), id * DIGEST_BYTES)
  }

  delete(id: number): void {
    if (id < this.#valid.length && this.#valid[id] === 1) {
      this.#valid[id] = 0
      this.#size--
    }
  }

  clear(): void {
    this.#valid.fill(0)
    this.#size = 0
  }
}

// ---- threads kept across runs -----------------------------------------------------------------------

let runCounter = 0

/**
 * Record-checking threads for repeated verifyChain runs under one chameleon key (the service's
 * periodic job): started once, reused by each run, closed with close(). One run at a time.
 */
export class VerifyWorkerPool {
  readonly size: number
  readonly chameleonPublicKey: Uint8Array
  #workers: Worker[] = []
  #busy = false

  constructor(chameleonPublicKey: Uint8Array, size: number = os.availableParallelism()) {
    chameleonKeyId(chameleonPublicKey) // a usable key, or INVALID_ENCODING now rather than in every thread
    this.chameleonPublicKey = chameleonPublicKey.slice()
    this.size = Math.max(1, size)
  }

  /** Start (or restart after a crash) the threads now rather than in the first run. */
  start(): void {
    this.#workers = this.#workers.filter((w) => w.threadId !== -1)
    while (this.#workers.length < this.size) {
      const w = new Worker(new URL('./verify-worker.ts', import.meta.url), { workerData: { chameleonPublicKey: this.chameleonPublicKey } })
      w.unref()
      w.on('error', () => {}) // a run that uses it reports the failure; start() replaces it
      this.#workers.push(w)
    }
  }

  /** For verifyChain. */
  acquire(): Worker[] {
    if (this.#busy) throw new CareLedgerError('INVALID_ARGUMENT', 'this VerifyWorkerPool is in use by another verification run', { reason: 'POOL_BUSY' })
    this.#busy = true
    this.start()
    return [...this.#workers]
  }

  /** For verifyChain. */
  release(): void {
    this.#busy = false
  }

  async close(): Promise<void> {
    const ws = this.#workers
    this.#workers = []
    await Promise.all(ws.map((w) => w.terminate()))
  }
}

function rowDigest(chameleonPublicKey: Uint8Array, r: RecordRow): Uint8Array {
  const h = createHash('sha256')
  const len = Buffer.alloc(4)
  const put = (b: Uint8Array | string): void => {
    const bytes = typeof b === 'string' ? Buffer.from(b, 'utf8') : b
    len.writeUInt32BE(bytes.length)
    h.update(len)
    h.update(bytes)
  }
  put(chameleonPublicKey)
  put(String(r.id))
  put(r.stream)
  put(String(r.seq))
  put(r.gatewayId)
  put(r.manifestCommitment)
  put(r.prevCommitment ?? '\u0000null')
  put(r.cid)
  put(String(r.receivedAt))
  put(r.content)
  put(r.hash)
  put(r.opening)
  return new Uint8Array(h.digest().subarray(0, DIGEST_BYTES))
}

// ---- collecting failures ---------------------------------------------------------------------------

class Failures {
  readonly list: VerificationFailure[] = []
  readonly counts: Partial<Record<FailureKind, number>> = {}
  omitted = 0
  readonly #max: number

  constructor(max: number) {
    this.#max = max
  }

  add(f: VerificationFailure): void {
    this.counts[f.kind] = (this.counts[f.kind] ?? 0) + 1
    if (this.list.length < this.#max) this.list.push(f)
    else this.omitted++
  }

  get total(): number {
    return this.list.length + this.omitted
  }

  sorted(): VerificationFailure[] {
    const key = (f: VerificationFailure): [number, number] => [f.height ?? Number.MAX_SAFE_INTEGER, f.recordId ?? 0]
    return [...this.list].sort((a, b) => {
      const [ha, ra] = key(a)
      const [hb, rb] = key(b)
      return ha - hb || ra - rb || (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0)
    })
  }
}

// ---- reading the snapshot ------------------------------------------------------------------------

type Conn = Database.Database


const u8 = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
const hex = bytesToHex
const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i])


/**
 * A read-only connection of our own, so the snapshot's read transaction can stay open across
 * awaits without touching the caller's connection. An in-memory database can only be read
 * through the caller's connection: then no snapshot (the caller must not write meanwhile).
 */
function openSnapshot(db: CloudDb | string): { conn: Conn; close: () => void } {
  if (typeof db !== 'string' && db.memory) return { conn: db, close: () => {} }
  const path = typeof db === 'string' ? db : db.name
  const conn = new Database(path, { readonly: true, fileMustExist: true })
  conn.pragma('busy_timeout = 5000')
  conn.exec('BEGIN')
  return {
    conn,
    close: () => {
      try {
        conn.exec('COMMIT')
      } finally {
        conn.close()
      }
    },
  }
}

const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r))

function trustedSigningKeys(conn: Conn, given: VerifyOptions['signingPublicKey']): { keys: Map<string, Uint8Array>; source: 'argument' | 'database' } {
  const keys = new Map<string, Uint8Array>()
  if (given !== undefined) {
    for (const k of given instanceof Uint8Array ? [given] : given) keys.set(signingKeyId(k), k)
    return { keys, source: 'argument' }
  }
  const hasTable = conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'chain_keys'").get() !== undefined
  if (hasTable) {
    for (const r of conn.prepare("SELECT public_key FROM chain_keys WHERE kind = 'signing'").all() as { public_key: Buffer }[]) keys.set(signingKeyId(u8(r.public_key)), u8(r.public_key))
  }
  return { keys, source: 'database' }
}

// ---- the checks ----------------------------------------------------------------------------------

/** Verify the whole chain in `db` (a connection or a file path). Never throws for a broken chain: the report says what is wrong. */
export async function verifyChain(db: CloudDb | string, opts: VerifyOptions): Promise<VerificationReport> {
  const startedAt = Date.now()
  const t0 = performance.now()
  const chameleonPk = opts.chameleonPublicKey
  const chameleonId = chameleonKeyId(chameleonPk) // throws INVALID_ENCODING for a bad key: a usage error, not a chain failure
  const failures = new Failures(opts.maxFailures ?? 1000)
  const snapshot = openSnapshot(db)
  const conn = snapshot.conn
  const pool = opts.pool
  if (pool && !equalBytes(pool.chameleonPublicKey, chameleonPk)) {
    throw new CareLedgerError('INVALID_ARGUMENT', `the worker pool checks under chameleon key ${chameleonKeyId(pool.chameleonPublicKey)}, not ${chameleonId}`, { reason: 'POOL_KEY' })
  }
  const workerCount = pool ? pool.size : Math.max(0, opts.workers ?? os.availableParallelism())
  const workers: Worker[] = []
  let acquired = false
  try {
    const hasChain = conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records'").get() !== undefined
    if (!hasChain) throw new CareLedgerError('INVALID_ARGUMENT', `${typeof db === 'string' ? db : db.name} holds no chain (no records table)`, { reason: 'NO_CHAIN' })
    const { keys: signers, source } = trustedSigningKeys(conn, opts.signingPublicKey)
    const counts = conn
      .prepare(
        `SELECT (SELECT count(*) FROM records) AS records, (SELECT count(*) FROM records WHERE block_height IS NULL) AS pending,
                (SELECT count(*) FROM blocks) AS blocks, (SELECT count(*) FROM streams) AS streams`,
      )
      .get() as { records: number; pending: number; blocks: number; streams: number }

    // Started only once some row needs checking (a warm cache may leave none): each costs a module load.
    const spawn = (): Worker[] => {
      if (pool) {
        workers.push(...pool.acquire())
        acquired = true
        return workers
      }
      for (let i = 0; i < Math.min(workerCount, Math.ceil(counts.records / 64)); i++) {
        workers.push(new Worker(new URL('./verify-worker.ts', import.meta.url), { workerData: { chameleonPublicKey: chameleonPk } }))
      }
      return workers
    }
    // The redaction log is walked here (cheap); its signature and opening checks go to the workers with the record chunks.
    const redactions = planRedactionChecks(conn, opts.supervisoryPolicies)
    for (const f of redactions.failures) failures.add(f)
    const records = checkRecords(conn, workerCount > 0 ? spawn : null, chameleonPk, opts, failures, redactions.jobs)
    records.catch(() => {}) // awaited below; a worker failure during the block checks must not count as unhandled
    const logStates: CommittedLogState[] = []
    const blocks = await checkBlocks(conn, signers, chameleonId, failures, logStates)
    const commitments = checkLogCommitments(logStates, redactions.log)
    for (const f of commitments.failures) failures.add(f)
    const recordStats = await records
    checkStreams(conn, failures)
    if (opts.expectHead) checkHead(conn, opts.expectHead, failures)
    // Imported only when asked for: the blockstore code (fast-glob, multiformats) is ~0.07 s to load.
    const envelopes = opts.envelopes ? await (async ({ scanEnvelopes, envelopeChecker }) => scanEnvelopes(conn, envelopeChecker(conn, opts.envelopes!.blocksDir ?? null)))(await import('./verify-envelopes.ts')) : null
    for (const f of envelopes?.findings ?? []) failures.add({ kind: f.kind, recordId: f.recordId, ...(f.height === undefined ? {} : { height: f.height }), message: f.message })

    const durationMs = performance.now() - t0
    return {
      ok: failures.total === 0,
      startedAt,
      checkedAt: Date.now(),
      durationMs: Math.round(durationMs * 10) / 10,
      blocks: counts.blocks,
      head: blocks.head,
      records: counts.records,
      sealedRecords: counts.records - counts.pending,
      pendingRecords: counts.pending,
      streams: counts.streams,
      recordsChecked: recordStats.checked + redactions.rows,
      recordsCached: recordStats.cached,
      workers: workers.length,
      chameleonKey: chameleonId,
      signingKeys: { ids: [...signers.keys()], source },
      envelopes: envelopes ? { checked: envelopes.checked, bytes: envelopes.bytes } : null,
      failures: failures.sorted(),
      failureCounts: failures.counts,
      failuresOmitted: failures.omitted,
      redactionLog: { entries: redactions.entries, committed: commitments.committed, uncommitted: commitments.uncommitted, committedAt: logStates.at(-1)?.height ?? null },
    }
  } finally {
    if (pool) {
      if (acquired) pool.release()
    } else await Promise.all(workers.map((w) => w.terminate()))
    snapshot.close()
  }
}

/** Block-by-block checks; yields to the event loop now and then so the record workers stay fed. */
async function checkBlocks(
  conn: Conn,
  signers: Map<string, Uint8Array>,
  chameleonId: string,
  failures: Failures,
  logStates: CommittedLogState[],
): Promise<{ head: { height: number; hash: string } | null }> {
  const page = conn.prepare('SELECT height, header, hash, signature FROM blocks WHERE height > ? ORDER BY height LIMIT 128')
  const assigned = conn.prepare('SELECT id, hash FROM records WHERE block_height = ? ORDER BY id')
  let expectedHeight = 0
  let prevHash: Uint8Array | null = null
  let prevLast = 0
  let prevTime = 0
  let head: { height: number; hash: string } | null = null
  let lastYield = performance.now()
  for (let after = -1; ; ) {
    const rows = page.all(after) as { height: number; header: Buffer; hash: Buffer; signature: Buffer }[]
    if (rows.length === 0) break
    for (const b of rows) {
      const height = b.height
      const fail = (kind: FailureKind, message: string): void => failures.add({ kind, height, message: `block ${height}: ${message}` })
      const bytes = u8(b.header)
      if (height !== expectedHeight) fail('HEIGHT', `found after block ${expectedHeight - 1}; blocks ${expectedHeight}..${height - 1} are missing`)
      const computed = blockHash(bytes)
      if (!equalBytes(computed, u8(b.hash))) fail('BLOCK_HASH', `the stored hash ${hex(b.hash)} is not the hash of the header, ${hex(computed)}`)
      let header: BlockHeader | null = null
      try {
        header = decodeBlockHeader(bytes)
      } catch (e) {
        fail('BLOCK_HEADER', `the header does not decode: ${(e as Error).message}`)
      }
      // The signature covers the raw header bytes: check it even when they no longer decode.
      const signer = header ? signers.get(header.signer) : undefined
      if (header && !signer) fail('BLOCK_SIGNATURE', `signed by key ${header.signer}, which is not a trusted block-signing key (${[...signers.keys()].join(', ') || 'none'})`)
      else if (signer ? !verifyBlockSignature(signer, bytes, u8(b.signature)) : ![...signers.values()].some((k) => verifyBlockSignature(k, bytes, u8(b.signature)))) {
        fail('BLOCK_SIGNATURE', `the Ed25519 signature ${hex(b.signature).slice(0, 16)}… does not verify over the header`)
      }
      if (header) {
        if (header.height !== height) fail('HEIGHT', `the header says height ${header.height}`)
        if (height === 0 || prevHash !== null) {
          const expectedPrev = height === 0 ? null : hex(prevHash!)
          if (header.prev !== expectedPrev) fail('PREV_LINK', `prev is ${header.prev}, but block ${height - 1}'s header hashes to ${expectedPrev}`)
        }
        if (header.chameleonKey !== chameleonId) fail('CHAMELEON_KEY', `records committed under chameleon key ${header.chameleonKey}, expected ${chameleonId}`)
        if (header.time < prevTime) fail('BLOCK_TIME', `time ${header.time} is before the previous block's ${prevTime}`)
        const recs = assigned.all(height) as { id: number; hash: Buffer }[]
        const root = hex(recordsRoot(recs.map((r) => u8(r.hash))))
        if (root !== header.recordsRoot) {
          fail('RECORDS_ROOT', `the root over its ${recs.length} stored record hashes is ${root}, the header commits to ${header.recordsRoot}`)
        }
        const contiguous = recs.every((r, i) => r.id === header.first + i)
        // A v2 block may hold no records (only the redaction log moved): then none may be assigned to it.
        if (recs.length !== header.count || !contiguous || (header.count > 0 && (recs[0]?.id !== header.first || recs.at(-1)?.id !== header.last))) {
          const ids = recs.length <= 6 ? recs.map((r) => r.id).join(', ') : `${recs[0]!.id}…${recs.at(-1)!.id}`
          fail('RECORD_ASSIGNMENT', `the header covers records ${header.first}..${header.last} (${header.count}), the records table assigns ${recs.length} [${ids}]`)
        }
        if (header.first !== prevLast + 1) fail('RECORD_ASSIGNMENT', `starts at record ${header.first}, but the previous block ended at ${prevLast}`)
        prevLast = Math.max(prevLast, header.last)
        prevTime = Math.max(prevTime, header.time)
        if (header.v === 2) logStates.push({ height, count: header.redactions.count, head: header.redactions.head })
      }
      prevHash = computed
      expectedHeight = height + 1
      head = { height, hash: hex(b.hash) }
      if (performance.now() - lastYield > 15) {
        await yieldToLoop()
        lastYield = performance.now()
      }
    }
    after = rows.at(-1)!.height
  }
  // Records sealed into a block that does not exist, or left pending inside the sealed range.
  for (const r of conn
    .prepare('SELECT id, block_height FROM records r WHERE block_height IS NOT NULL AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.height = r.block_height) ORDER BY id LIMIT 100')
    .all() as { id: number; block_height: number }[]) {
    failures.add({ kind: 'RECORD_ASSIGNMENT', recordId: r.id, height: r.block_height, message: `record ${r.id} is assigned to block ${r.block_height}, which does not exist` })
  }
  for (const id of conn.prepare('SELECT id FROM records WHERE block_height IS NULL AND id <= ? ORDER BY id LIMIT 100').pluck().all(prevLast) as number[]) {
    failures.add({ kind: 'RECORD_ASSIGNMENT', recordId: id, message: `record ${id} is pending, but the blocks already cover records up to ${prevLast}` })
  }
  return { head }
}

/** Feed record rows to the workers (or check them here), a chunk at a time. */
async function checkRecords(
  conn: Conn,
  spawn: (() => Worker[]) | null,
  chameleonPk: Uint8Array,
  opts: VerifyOptions,
  failures: Failures,
  redactionJobs: readonly RedactionJob[] = [],
): Promise<{ checked: number; cached: number }> {
  // Rows the redaction log changed are checked by the redaction jobs instead.
  const page = conn.prepare(
    `SELECT id, stream, seq, gateway_id, content, hash, opening, manifest_commitment, prev_commitment, cid, received_at, block_height FROM records WHERE id > ?${hasRedactionLog(conn) ? ` AND ${UNREDACTED_ROWS}` : ''} ORDER BY id LIMIT ?`,
  )
  const chunkSize = opts.chunkSize ?? DEFAULT_BATCH_SIZE
  const cache = opts.cache
  const digests = new Map<number, Uint8Array>()
  let cursor = 0
  let exhausted = false
  let checked = 0
  let cached = 0
  /** The next rows that need checking (cache hits are counted and skipped). */
  const next = (): RecordRow[] | null => {
    while (!exhausted) {
      const raw = page.all(cursor, chunkSize) as RawRecord[]
      if (raw.length < chunkSize) exhausted = true
      if (raw.length === 0) break
      cursor = raw.at(-1)!.id
      const rows: RecordRow[] = []
      for (const r of raw) {
        const row = toRecordRow(r)
        if (cache) {
          const d = rowDigest(chameleonPk, row)
          if (cache.has(row.id, d)) {
            cached++
            continue
          }
          digests.set(row.id, d)
        }
        rows.push(row)
      }
      if (rows.length > 0) return rows
    }
    return null
  }
  // Redaction jobs stay on this thread, with or without workers: it parsed them and has their code
  // warm, and they are cheap here (the rows' openings as one batch, ~20 µs a row; the entries a few
  // at a time between yields). A worker would first load the supervisory code (ethers, FROST),
  // ~0.2 s of CPU that made 1 % redacted cost +13 % with 2 workers (bench:supervision).
  const jobChunks = chunkRedactionJobs(redactionJobs)
  const settle = (found: readonly (RecordFailure | RedactionFailure)[], passed: readonly number[], rows: number): void => {
    checked += rows
    for (const f of found) {
      failures.add(f)
      if (f.recordId === undefined) continue
      cache?.delete(f.recordId)
      digests.delete(f.recordId)
    }
    if (cache) {
      for (const id of passed) {
        cache.set(id, digests.get(id)!)
        digests.delete(id)
      }
    }
  }

  let first = next()
  const workers = first === null ? [] : (spawn?.() ?? [])
  if (workers.length === 0) {
    await yieldToLoop() // let the block checks start
    for (const jobs of jobChunks) {
      settle(runRedactionJobs(jobs, chameleonPk), [], 0)
      await yieldToLoop()
    }
    for (let rows: RecordRow[] | null = first; rows; rows = next()) {
      const { failures: found, passed } = checkRecordRows(rows, chameleonPk)
      settle(found, passed, rows.length)
      await yieldToLoop()
    }
    return { checked, cached }
  }

  const run = ++runCounter
  return new Promise((resolve, reject) => {
    let inFlight = 0
    let jobsLeft = jobChunks.length > 0
    let chunkNo = 0
    let settled = false
    /** The calling thread is checking a chunk itself (opts.callingThreadChecks). */
    let localBusy = false
    const take = (): RecordRow[] | null => {
      const rows = first ?? next()
      first = null
      return rows
    }
    const doneIfIdle = (): void => {
      if (exhausted && first === null && inFlight === 0 && !localBusy && !jobsLeft) finish(() => resolve({ checked, cached }))
    }
    const sizes = new Map<number, number>()
    const detach: (() => void)[] = []
    // Our listeners come off the threads when the run ends either way (pooled threads outlive it).
    const finish = (f: () => void): void => {
      if (settled) return
      settled = true
      for (const off of detach) off()
      f()
    }
    const feed = (w: Worker): void => {
      let rows: RecordRow[] | null
      try {
        rows = take()
      } catch (e) {
        finish(() => reject(e))
        return
      }
      if (rows === null) {
        doneIfIdle()
        return
      }
      inFlight++
      sizes.set(chunkNo, rows.length)
      w.postMessage({ run, chunk: chunkNo++, rows })
    }
    for (const w of workers) {
      const onMessage = (msg: { run: number; chunk: number; failures: (RecordFailure | RedactionFailure)[]; passed: number[] }): void => {
        if (msg.run !== run || settled) return // a late answer to an earlier run that gave up (pooled threads)
        inFlight--
        settle(msg.failures, msg.passed, sizes.get(msg.chunk) ?? 0)
        sizes.delete(msg.chunk)
        feed(w)
      }
      const onError = (e: Error): void => finish(() => reject(e))
      const onExit = (code: number): void => {
        if (inFlight > 0) finish(() => reject(new Error(`a verification worker exited with code ${code} while checking records`)))
      }
      w.on('message', onMessage)
      w.on('error', onError)
      w.on('exit', onExit)
      detach.push(() => void w.off('message', onMessage).off('error', onError).off('exit', onExit))
    }
    // Two chunks per worker in flight: one being checked, one waiting.
    for (let k = 0; k < 2; k++) for (const w of workers) feed(w)
    if (jobsLeft) {
      const redactionChecks = async (): Promise<void> => {
        for (const jobs of jobChunks) {
          await yieldToLoop()
          if (settled) return
          settle(runRedactionJobs(jobs, chameleonPk), [], 0)
        }
      }
      redactionChecks().then(
        () => {
          jobsLeft = false
          doneIfIdle()
        },
        (e: unknown) => finish(() => reject(e)),
      )
    }
    if (opts.callingThreadChecks) {
      // Meanwhile this thread takes chunks too, between the block checks and the workers' answers
      // (each handled at the yields): one thread fewer to start, and no copy of these rows.
      const local = async (): Promise<void> => {
        for (;;) {
          await yieldToLoop()
          if (settled) return
          localBusy = true
          try {
            const rows = take()
            if (rows === null) return
            const { failures: found, passed } = checkRecordRows(rows, chameleonPk)
            settle(found, passed, rows.length)
          } finally {
            localBusy = false
          }
        }
      }
      local().then(doneIfIdle, (e: unknown) => finish(() => reject(e)))
    }
  })
}

/** Stream links over the columns (which the record checks tie to the signed content) and the stream index. */
function checkStreams(conn: Conn, failures: Failures): void {
  type Link = { id: number; stream: string; seq: number; prev: string | null; height: number | null; prevId: number; expected: string }
  for (const l of conn
    .prepare(
      `SELECT b.id, b.stream, b.seq, b.prev_commitment AS prev, b.block_height AS height, a.id AS prevId, a.manifest_commitment AS expected
       FROM records b JOIN records a ON a.stream = b.stream AND a.seq = b.seq - 1
       WHERE b.prev_commitment IS NOT a.manifest_commitment ORDER BY b.id`,
    )
    .iterate() as IterableIterator<Link>) {
    failures.add({
      kind: 'STREAM_LINK',
      recordId: l.id,
      ...(l.height === null ? {} : { height: l.height }),
      stream: l.stream,
      seq: l.seq,
      message: `record ${l.id} (${l.stream}#${l.seq}): prev ${l.prev} is not the commitment ${l.expected} of ${l.stream}#${l.seq - 1} (record ${l.prevId})`,
    })
  }
  const index = (stream: string, message: string): void => failures.add({ kind: 'STREAM_INDEX', stream, message: `stream ${stream}: ${message}` })
  for (const s of conn
    .prepare(
      `SELECT s.stream, s.batches, s.last_seq, r.n, r.max_seq FROM streams s
       LEFT JOIN (SELECT stream, count(*) AS n, max(seq) AS max_seq FROM records GROUP BY stream) r ON r.stream = s.stream
       WHERE r.n IS NOT s.batches OR r.max_seq IS NOT s.last_seq`,
    )
    .all() as { stream: string; batches: number; last_seq: number; n: number | null; max_seq: number | null }[]) {
    index(s.stream, `the index says ${s.batches} batches up to seq ${s.last_seq}, the records hold ${s.n ?? 0} up to ${s.max_seq ?? 'none'}`)
  }
  for (const stream of conn.prepare('SELECT DISTINCT stream FROM records WHERE stream NOT IN (SELECT stream FROM streams) LIMIT 100').pluck().all() as string[]) {
    index(stream, 'has records but no entry in the stream index')
  }
  for (const g of conn
    .prepare(
      `SELECT g.stream, g.from_seq, g.to_seq, r.seq FROM stream_gaps g JOIN records r ON r.stream = g.stream AND r.seq BETWEEN g.from_seq AND g.to_seq LIMIT 100`,
    )
    .all() as { stream: string; from_seq: number; to_seq: number; seq: number }[]) {
    index(g.stream, `gap ${g.from_seq}..${g.to_seq} is recorded, but seq ${g.seq} is present`)
  }
  for (const s of conn
    .prepare(
      `SELECT s.stream, s.batches, s.last_seq, coalesce(g.missing, 0) AS missing FROM streams s
       LEFT JOIN (SELECT stream, sum(to_seq - from_seq + 1) AS missing FROM stream_gaps GROUP BY stream) g ON g.stream = s.stream
       WHERE coalesce(g.missing, 0) + s.batches <> s.last_seq + 1`,
    )
    .all() as { stream: string; batches: number; last_seq: number; missing: number }[]) {
    index(s.stream, `${s.batches} batches and ${s.missing} missing do not add up to seqs 0..${s.last_seq}`)
  }
}

function checkHead(conn: Conn, expect: { height: number; hash: string }, failures: Failures): void {
  const row = conn.prepare('SELECT header FROM blocks WHERE height = ?').get(expect.height) as { header: Buffer } | undefined
  if (!row) {
    failures.add({ kind: 'HEAD', height: expect.height, message: `block ${expect.height} (expected hash ${expect.hash}) is not in the chain: truncated?` })
    return
  }
  const actual = hex(blockHash(u8(row.header)))
  if (actual !== expect.hash.toLowerCase()) failures.add({ kind: 'HEAD', height: expect.height, message: `block ${expect.height} hashes to ${actual}, expected ${expect.hash}: history was rewritten` })
}

// One record from the API's proof JSON: cloud/chain/record-proof.ts (pure; clients and the doctor view use it).
export { verifyRecordProof, verifyRecordProofs, type ProofVerification } from './record-proof.ts'
