/**
 * Where the supervision workflow keeps its state: the reads and writes SupervisionStore
 * (store.ts, the rules) makes, behind one interface with two implementations, the way
 * cloud/access/store.ts does it for the access stores:
 *
 * - SQLite (this file): the process's own cloud.db, the embedded default; answers synchronously,
 *   which the `Awaitable` results allow.
 * - PostgreSQL (cloud/store/pg/supervision.ts): the database every process of a `--database
 *   postgres://…` deployment shares, so a request made at one process is approved at another.
 *
 * The rules never trust a read-then-write across processes: the schema's unique keys decide
 * (one pending request per record, one decision per regulator, a signature used once), and
 * `apply` is one transaction that closes the request only while it is still pending.
 */
import type { Awaitable } from '../access/store.ts'
import { applyMigrations, type CloudDb } from '../store/db.ts'
import type { RawRecord } from '../chain/record.ts'
import type { BlockSummary } from '../chain/store.ts'
import type { RedactionAction } from '../../shared/protocol/approval.ts'
import { nextLogHash } from './log-state.ts'
import { SUPERVISION_MIGRATIONS } from './schema.ts'

export type RequestStatus = 'pending' | 'applied' | 'rejected' | 'withdrawn'

export interface RequestRow {
  id: string
  policy: string
  record_id: number
  action: RedactionAction
  reason: string
  requester: string
  old_content: string
  new_content: Uint8Array
  new_content_digest: string
  old_cid: string
  new_cid: string | null
  new_envelope: Uint8Array | null
  evidence: Uint8Array | null
  status: RequestStatus
  signers: string | null
  created_at: number
  closed_at: number | null
  requester_signature: string | null
}

export type NewRequestRow = Omit<RequestRow, 'status' | 'signers' | 'closed_at'>

export interface DecisionRow {
  regulator: string
  decision: 'approve' | 'reject'
  approval: string
  at: number
}

export interface Refusal {
  at: number
  who: string
  operation: string
  requestId: string | null
  reason: string
  message: string
}

export interface LogRow {
  seq: number
  record_id: number
  entry: Uint8Array
  hash: Uint8Array
  log_hash: Uint8Array
}

/** What applying writes, in one transaction. */
export interface ApplyWrite {
  readonly requestId: string
  readonly record: number
  /** The record's content as the rules read it: the swap happens only if it is still this. */
  readonly oldContent: Uint8Array
  readonly newContent: Uint8Array
  readonly opening: Uint8Array
  readonly newCid: string
  readonly entry: Uint8Array
  readonly entryHash: Uint8Array
  readonly time: number
}

/** 'not-pending': another caller (process) closed the request first; 'record-changed': the record is not what was read. Nothing written then. */
export type ApplyOutcome = { seq: number; block: BlockSummary | null } | 'not-pending' | 'record-changed'

export interface SupervisionTables {
  readonly kind: 'sqlite' | 'postgres'
  addPolicy(id: string, policy: string, at: number): Awaitable<void>
  /** The policy in force (the newest set), JSON. */
  latestPolicy(): Awaitable<string | null>
  policyById(id: string): Awaitable<string | null>
  record(id: number): Awaitable<RawRecord | null>
  recordHash(id: number): Awaitable<Uint8Array | null>
  hasPending(record: number): Awaitable<boolean>
  hasRequest(id: string): Awaitable<boolean>
  /** False when a unique key refused it (this id filed, or the record got a pending request meanwhile). */
  addRequest(r: NewRequestRow): Awaitable<boolean>
  request(id: string): Awaitable<RequestRow | null>
  requests(status: RequestStatus | null, limit: number): Awaitable<RequestRow[]>
  /** Close a request that is still pending. */
  closeRequest(id: string, status: RequestStatus, at: number, who: string): Awaitable<void>
  /** The stored decision this one collides with: the same signature, or the same regulator on this request. */
  decisionConflict(requestId: string, regulator: string, signature: string): Awaitable<'signature' | 'regulator' | null>
  /** False when a unique key refused it (the same signature or regulator arrived meanwhile). */
  addDecision(requestId: string, d: DecisionRow & { signature: string }): Awaitable<boolean>
  decisions(requestId: string): Awaitable<DecisionRow[]>
  commitments(requestId: string): Awaitable<{ signer: number; hiding: Uint8Array; binding: Uint8Array }[]>
  putCommitment(requestId: string, signer: number, hiding: Uint8Array, binding: Uint8Array): Awaitable<void>
  /** Fix the signer set (once: a no-op when fixed already) and drop the other commitments. */
  fixSigners(requestId: string, signers: readonly number[]): Awaitable<void>
  putShare(requestId: string, signer: number, share: Uint8Array): Awaitable<void>
  shares(requestId: string): Awaitable<{ index: number; share: Uint8Array }[]>
  /** Drop the FROST session of a request: commitments, shares, signer set. */
  restartRounds(requestId: string): Awaitable<void>
  /** Which of `records` an applied redaction changed. */
  redacted(records: readonly number[]): Awaitable<Set<number>>
  addRefusal(r: Refusal): Awaitable<void>
  refusals(limit: number): Awaitable<Refusal[]>
  log(): Awaitable<LogRow[]>
  /**
   * In one transaction: close the request as applied (only while pending), swap the record's
   * content, opening and CID (only while its content is `oldContent`), append the log entry
   * (hash-linked) and, given a sealer, seal the block committing it (header v2).
   */
  apply(w: ApplyWrite): Awaitable<ApplyOutcome>
}

const u8 = (b: Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
const RECORD_COLUMNS = 'id, stream, seq, gateway_id, content, hash, opening, manifest_commitment, prev_commitment, cid, received_at, block_height'
const isConstraint = (e: unknown): boolean => (e as { code?: string } | null)?.code?.startsWith('SQLITE_CONSTRAINT') === true

export class SqliteSupervisionTables implements SupervisionTables {
  readonly kind = 'sqlite' as const
  readonly #db: CloudDb
  readonly #seal: ((now: number) => BlockSummary | null) | undefined
  #redacted: ReturnType<CloudDb['prepare']> | undefined

  /** `seal`: the chain's sealer on the same database (ChainStore.sealBlock), called inside the applying transaction. */
  constructor(db: CloudDb, seal?: (now: number) => BlockSummary | null) {
    applyMigrations(db, SUPERVISION_MIGRATIONS)
    this.#db = db
    this.#seal = seal
  }

  addPolicy(id: string, policy: string, at: number): void {
    this.#db.prepare('INSERT OR IGNORE INTO supervisory_policies (id, policy, set_at) VALUES (?, ?, ?)').run(id, policy, at)
  }

  latestPolicy(): string | null {
    return (this.#db.prepare('SELECT policy FROM supervisory_policies ORDER BY set_at DESC, rowid DESC LIMIT 1').pluck().get() as string | undefined) ?? null
  }

  policyById(id: string): string | null {
    return (this.#db.prepare('SELECT policy FROM supervisory_policies WHERE id = ?').pluck().get(id) as string | undefined) ?? null
  }

  record(id: number): RawRecord | null {
    return (this.#db.prepare(`SELECT ${RECORD_COLUMNS} FROM records WHERE id = ?`).get(id) as RawRecord | undefined) ?? null
  }

  recordHash(id: number): Uint8Array | null {
    const h = this.#db.prepare('SELECT hash FROM records WHERE id = ?').pluck().get(id) as Uint8Array | undefined
    return h ? u8(h) : null
  }

  hasPending(record: number): boolean {
    return this.#db.prepare("SELECT 1 FROM supervision_requests WHERE record_id = ? AND status = 'pending'").get(record) !== undefined
  }

  hasRequest(id: string): boolean {
    return this.#db.prepare('SELECT 1 FROM supervision_requests WHERE id = ?').get(id) !== undefined
  }

  addRequest(r: NewRequestRow): boolean {
    try {
      this.#db
        .prepare(
          `INSERT INTO supervision_requests (id, policy, record_id, action, reason, requester, old_content, new_content, new_content_digest, old_cid, new_cid, new_envelope, evidence, status, created_at, requester_signature)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
        )
        .run(r.id, r.policy, r.record_id, r.action, r.reason, r.requester, r.old_content, r.new_content, r.new_content_digest, r.old_cid, r.new_cid, r.new_envelope, r.evidence, r.created_at, r.requester_signature)
      return true
    } catch (e) {
      if (isConstraint(e)) return false
      throw e
    }
  }

  request(id: string): RequestRow | null {
    return (this.#db.prepare('SELECT * FROM supervision_requests WHERE id = ?').get(id) as RequestRow | undefined) ?? null
  }

  requests(status: RequestStatus | null, limit: number): RequestRow[] {
    return (status
      ? this.#db.prepare('SELECT * FROM supervision_requests WHERE status = ? ORDER BY created_at, id LIMIT ?').all(status, limit)
      : this.#db.prepare('SELECT * FROM supervision_requests ORDER BY created_at, id LIMIT ?').all(limit)) as RequestRow[]
  }

  closeRequest(id: string, status: RequestStatus, at: number, who: string): void {
    this.#db.prepare("UPDATE supervision_requests SET status = ?, closed_at = ?, closed_by = ?, new_envelope = NULL WHERE id = ? AND status = 'pending'").run(status, at, who, id)
  }

  decisionConflict(requestId: string, regulator: string, signature: string): 'signature' | 'regulator' | null {
    if (this.#db.prepare('SELECT 1 FROM supervision_decisions WHERE signature = ?').get(signature)) return 'signature'
    if (this.#db.prepare('SELECT 1 FROM supervision_decisions WHERE request_id = ? AND regulator = ?').get(requestId, regulator)) return 'regulator'
    return null
  }

  addDecision(requestId: string, d: DecisionRow & { signature: string }): boolean {
    try {
      this.#db.prepare('INSERT INTO supervision_decisions (request_id, regulator, decision, approval, signature, at) VALUES (?, ?, ?, ?, ?, ?)').run(requestId, d.regulator, d.decision, d.approval, d.signature, d.at)
      return true
    } catch (e) {
      if (isConstraint(e)) return false
      throw e
    }
  }

  decisions(requestId: string): DecisionRow[] {
    return this.#db.prepare('SELECT regulator, decision, approval, at FROM supervision_decisions WHERE request_id = ? ORDER BY at, regulator').all(requestId) as DecisionRow[]
  }

  commitments(requestId: string): { signer: number; hiding: Uint8Array; binding: Uint8Array }[] {
    return this.#db.prepare('SELECT signer, hiding, binding FROM supervision_commitments WHERE request_id = ? ORDER BY signer').all(requestId) as never
  }

  putCommitment(requestId: string, signer: number, hiding: Uint8Array, binding: Uint8Array): void {
    this.#db.prepare('INSERT OR REPLACE INTO supervision_commitments (request_id, signer, hiding, binding) VALUES (?, ?, ?, ?)').run(requestId, signer, hiding, binding)
  }

  fixSigners(requestId: string, signers: readonly number[]): void {
    this.#db.transaction(() => {
      if (this.#db.prepare('UPDATE supervision_requests SET signers = ? WHERE id = ? AND signers IS NULL').run(JSON.stringify(signers), requestId).changes !== 1) return
      this.#db.prepare('DELETE FROM supervision_commitments WHERE request_id = ? AND signer NOT IN (SELECT value FROM json_each(?))').run(requestId, JSON.stringify(signers))
    }).immediate()
  }

  putShare(requestId: string, signer: number, share: Uint8Array): void {
    this.#db.prepare('INSERT OR REPLACE INTO supervision_shares (request_id, signer, share) VALUES (?, ?, ?)').run(requestId, signer, share)
  }

  shares(requestId: string): { index: number; share: Uint8Array }[] {
    return this.#db.prepare('SELECT signer AS "index", share FROM supervision_shares WHERE request_id = ? ORDER BY signer').all(requestId) as never
  }

  restartRounds(requestId: string): void {
    this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM supervision_shares WHERE request_id = ?').run(requestId)
      this.#db.prepare('DELETE FROM supervision_commitments WHERE request_id = ?').run(requestId)
      this.#db.prepare('UPDATE supervision_requests SET signers = NULL WHERE id = ?').run(requestId)
    }).immediate()
  }

  redacted(records: readonly number[]): Set<number> {
    this.#redacted ??= this.#db.prepare('SELECT 1 FROM redaction_log WHERE record_id = ? LIMIT 1')
    return new Set(records.filter((r) => this.#redacted!.get(r) !== undefined))
  }

  addRefusal(r: Refusal): void {
    this.#db.prepare('INSERT INTO supervision_refusals (at, who, operation, request_id, reason, message) VALUES (?, ?, ?, ?, ?, ?)').run(r.at, r.who, r.operation, r.requestId, r.reason, r.message)
  }

  refusals(limit: number): Refusal[] {
    return this.#db.prepare('SELECT at, who, operation, request_id AS requestId, reason, message FROM supervision_refusals ORDER BY id DESC LIMIT ?').all(limit) as Refusal[]
  }

  log(): LogRow[] {
    return this.#db.prepare('SELECT seq, record_id, entry, hash, log_hash FROM redaction_log ORDER BY seq').all() as LogRow[]
  }

  apply(w: ApplyWrite): ApplyOutcome {
    const changed = new Error('record changed')
    try {
      return this.#db.transaction((): ApplyOutcome => {
        if (this.#db.prepare("UPDATE supervision_requests SET status = 'applied', closed_at = ?, closed_by = 'cloud', new_envelope = NULL WHERE id = ? AND status = 'pending'").run(w.time, w.requestId).changes !== 1) return 'not-pending'
        if (this.#db.prepare('UPDATE records SET content = ?, opening = ?, cid = ? WHERE id = ? AND content = ?').run(w.newContent, w.opening, w.newCid, w.record, w.oldContent).changes !== 1) throw changed
        const prev = this.#db.prepare('SELECT seq, log_hash FROM redaction_log ORDER BY seq DESC LIMIT 1').get() as { seq: number; log_hash: Uint8Array } | undefined
        const seq = (prev?.seq ?? 0) + 1
        this.#db
          .prepare('INSERT INTO redaction_log (seq, record_id, request_id, entry, hash, log_hash, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
          .run(seq, w.record, w.requestId, w.entry, w.entryHash, nextLogHash(prev ? u8(prev.log_hash) : null, w.entryHash), w.time)
        // Last: the block committing the log with this entry (header v2), in this same transaction.
        return { seq, block: this.#seal ? this.#seal(w.time) : null }
      }).immediate()
    } catch (e) {
      if (e === changed) return 'record-changed'
      throw e
    }
  }
}
