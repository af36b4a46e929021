/**
 * The supervision workflow's state and rules over the cloud database (docs/security.md
 * §Supervision): requests, regulators' EIP-712 decisions, FROST coordination with the cloud as
 * coordinator (RFC 9591 §5: it collects commitments, fixes the signer set, verifies every share
 * against the signer's verification share), and applying an approved redaction.
 *
 *   applyStages = [requireApproval, checkOpening, swapContent, appendRedactionLog, closeRequest]
 *
 * Every refusal is a CareLedgerError naming what was wrong; it changes nothing and is written to
 * supervision_refusals. Removing the old ciphertext from the blockstore and telling the gateway
 * are I/O the caller does with what `apply` returns.
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, concatBytes, randomBytes } from '@noble/hashes/utils.js'
import { CareLedgerError, isCareLedgerError } from '../../shared/errors.ts'
import { canonicalDigest } from '../../shared/encoding/canonical.ts'
import { chameleonVerify } from '../../shared/crypto/chameleon.ts'
import { thresholdAdaptAggregate, thresholdAdaptVerifyShare, type AdaptTarget } from '../../shared/crypto/chameleon-threshold.ts'
import type { FrostCommitment, FrostSignatureShare } from '../../shared/crypto/frost.ts'
import { contentDigest, requireApproval, tallyApprovals, verifyApproval, type RedactionAction, type RedactionSubject } from '../../shared/protocol/approval.ts'
import { buildRedactionLogEntry, decodeRedactionLogEntry, encodeRedactionLogEntry, redactionLogEntryHash, type RedactionLogEntry } from '../../shared/protocol/redaction-log.ts'
import { parseSupervisoryPolicy, policyGroup, supervisoryPolicyId, type SupervisoryPolicy } from '../../shared/protocol/supervisory-policy.ts'
import { manifestCommitment } from '../../shared/protocol/manifest.ts'
import { NO_MANIFEST, verifyRequesterSignature, type RequesterSignature } from '../../shared/protocol/supervision-request.ts'
import { applyMigrations, type CloudDb } from '../store/db.ts'
import { decodeRecordContent, toRecordRow, type RawRecord, type RecordRow } from '../chain/record.ts'
import type { BlockSummary } from '../chain/store.ts'
import { SUPERVISION_MIGRATIONS } from './schema.ts'
import { correctedContent, decodeTombstone, tombstoneFor } from './content.ts'

export const REQUEST_DOMAIN = 'supervision-request'
export const MAX_EVIDENCE = 1 << 20

export type RequestStatus = 'pending' | 'applied' | 'rejected' | 'withdrawn'

export interface RequestView {
  readonly id: string
  readonly policy: string
  readonly record: number
  readonly action: RedactionAction
  readonly reason: string
  readonly requester: string
  /** The requester's EIP-712 signature over the request (its digest is `id`), or null for a request from before signatures. */
  readonly requesterSignature: RequesterSignature | null
  readonly oldContent: string
  readonly newContent: string
  /** hex of the new content bytes (what the regulators' FROST shares open the hash to). */
  readonly newContentBytes: string
  /** The record's chameleon hash C (unchanged by the redaction). */
  readonly hash: string
  readonly oldCid: string
  readonly newCid: string | null
  /** hex of the evidence ciphertext (only regulators open it), or null. */
  readonly evidence: string | null
  readonly status: RequestStatus
  readonly decisions: readonly { regulator: string; decision: 'approve' | 'reject'; comment: string; at: number }[]
  /** The FROST signer indices once k approvers committed, else null. */
  readonly signers: readonly number[] | null
  readonly commitments: readonly { index: number; hiding: string; binding: string }[]
  readonly shares: readonly number[]
  readonly createdAt: number
  readonly closedAt: number | null
}

export interface NewRequest {
  readonly record: number
  readonly action: RedactionAction
  readonly reason: string
  /** The requester as the cloud authenticated them (token name and role). */
  readonly requester: string
  /** Correction: the re-sealed manifest (JSON) and its envelope bytes. */
  readonly manifest?: unknown
  readonly envelope?: Uint8Array
  /** The evidence, encrypted for regulators (opaque to the cloud). */
  readonly evidence?: Uint8Array
  /** A redaction log entry (its seq) named as the target: always refused (NOT_REDACTABLE). */
  readonly logEntry?: number
  /**
   * The requester's signature (shared/protocol/supervision-request.ts): verified against what is
   * filed, and the request id is its digest. The HTTP API requires it; without (a store-level
   * caller such as a benchmark) the request id is the cloud's as in version 1.
   */
  readonly signed?: unknown
}

/**
 * The timed stages of applying (bench:supervision): the k-th share's check, aggregating the
 * opening (which checks it under the unchanged hash), re-verifying the approvals, building the log
 * entry, and one transaction that swaps the content, appends the entry and closes the request
 * (its commit is the WAL fsync, synchronous=FULL). The blockstore is the caller's (afterApplied).
 */
export type ApplyStage = 'share-check' | 'aggregate' | 'approvals' | 'opening-check' | 'log-entry' | 'commit'

/** What applying changed: the caller removes oldCid from the blockstore (stores newEnvelope) and tells the gateway. */
export interface Applied {
  readonly request: RequestView
  readonly entry: RedactionLogEntry
  readonly logSeq: number
  readonly entryHash: string
  readonly oldCid: string
  readonly newCid: string | null
  readonly newEnvelope: Uint8Array | null
  readonly gateway: string
  readonly stream: string
  readonly seq: number
  /** The block that committed the log entry (sealed in the same transaction), when the store was given the sealer. */
  readonly block: BlockSummary | null
}

interface RequestRow {
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

function refuse(code: 'INVALID_ARGUMENT' | 'VERIFICATION_FAILED', reason: string, message: string, info: Record<string, unknown> = {}): never {
  throw new CareLedgerError(code, message, { reason, ...info })
}

const RECORD_COLUMNS = 'id, stream, seq, gateway_id, content, hash, opening, manifest_commitment, prev_commitment, cid, received_at, block_height'

export class SupervisionStore {
  readonly #db: CloudDb
  readonly #chameleonPublicKey: Uint8Array
  readonly #now: () => number
  readonly #log: (line: Record<string, unknown>, msg: string) => void
  readonly #onStage: ((stage: ApplyStage, ms: number) => void) | undefined
  readonly #seal: ((now: number) => BlockSummary | null) | undefined

  /**
   * `seal`: the chain's sealer (ChainStore.sealBlock on the same database). Applying a redaction
   * calls it inside the applying transaction, so the log entry and the block that commits it
   * (header v2) are written together or not at all: the log is never uncommitted. Without it
   * (tests, benches) the entry waits for the next block the sealer makes.
   */
  constructor(
    db: CloudDb,
    opts: {
      chameleonPublicKey: Uint8Array
      now?: () => number
      log?: (line: Record<string, unknown>, msg: string) => void
      onStage?: (stage: ApplyStage, ms: number) => void
      seal?: (now: number) => BlockSummary | null
    },
  ) {
    applyMigrations(db, SUPERVISION_MIGRATIONS)
    this.#db = db
    this.#chameleonPublicKey = opts.chameleonPublicKey
    this.#now = opts.now ?? Date.now
    this.#log = opts.log ?? (() => {})
    this.#onStage = opts.onStage
    this.#seal = opts.seal
  }

  /** Run one stage of the apply path, timed when the owner asked (bench:supervision). */
  #stage<T>(stage: ApplyStage, f: () => T): T {
    if (!this.#onStage) return f()
    const t0 = performance.now()
    try {
      return f()
    } finally {
      this.#onStage(stage, performance.now() - t0)
    }
  }

  // ---- the supervisory policy --------------------------------------------------------------------

  /** Install a policy (setup or rotation). Its group key must be the chain's chameleon key. */
  setPolicy(value: unknown, who = 'setup'): SupervisoryPolicy {
    return this.#refusable('set-policy', who, null, () => {
      const policy = parseSupervisoryPolicy(value)
      if (policy.groupKey !== bytesToHex(this.#chameleonPublicKey)) {
        refuse('INVALID_ARGUMENT', 'WRONG_GROUP_KEY', `the policy's group key ${policy.groupKey} is not this chain's chameleon public key ${bytesToHex(this.#chameleonPublicKey)}`)
      }
      const id = bytesToHex(supervisoryPolicyId(policy))
      this.#db.prepare('INSERT OR IGNORE INTO supervisory_policies (id, policy, set_at) VALUES (?, ?, ?)').run(id, JSON.stringify(policy), this.#now())
      this.#log({ event: 'supervision_policy', policy: id, threshold: policy.threshold, regulators: policy.regulators.length }, 'supervisory policy set')
      return policy
    })
  }

  policy(): SupervisoryPolicy | null {
    const row = this.#db.prepare('SELECT policy FROM supervisory_policies ORDER BY set_at DESC, rowid DESC LIMIT 1').pluck().get() as string | undefined
    return row ? parseSupervisoryPolicy(JSON.parse(row)) : null
  }

  #policyById(id: string): SupervisoryPolicy {
    const row = this.#db.prepare('SELECT policy FROM supervisory_policies WHERE id = ?').pluck().get(id) as string | undefined
    if (!row) refuse('INVALID_ARGUMENT', 'NO_POLICY', `supervisory policy ${id} is not known to this cloud`)
    return parseSupervisoryPolicy(JSON.parse(row))
  }

  // ---- requests ----------------------------------------------------------------------------------

  createRequest(req: NewRequest): RequestView {
    return this.#refusable('request', req.requester ?? '?', null, () => {
      const policy = this.policy()
      if (req.logEntry !== undefined) {
        refuse('INVALID_ARGUMENT', 'NOT_REDACTABLE', `redaction log entry ${req.logEntry} cannot be corrected or deleted: it is committed by a plain hash, which no trapdoor opens to other content`, { logEntry: req.logEntry })
      }
      if (!policy) refuse('INVALID_ARGUMENT', 'NO_POLICY', 'no supervisory policy is set on this cloud (careledger regulator setup)')
      if (req.action !== 'correct' && req.action !== 'delete') refuse('INVALID_ARGUMENT', 'BAD_ACTION', `action ${JSON.stringify(req.action)}: expected correct or delete`)
      if (typeof req.reason !== 'string' || req.reason.trim().length === 0 || req.reason.length > 2000) refuse('INVALID_ARGUMENT', 'BAD_REASON', 'reason: 1–2000 characters, required')
      if (!Number.isSafeInteger(req.record) || req.record < 1) refuse('INVALID_ARGUMENT', 'BAD_RECORD', `record ${JSON.stringify(req.record)}: expected a record id (a positive integer)`)
      if (req.evidence && req.evidence.length > MAX_EVIDENCE) refuse('INVALID_ARGUMENT', 'EVIDENCE_TOO_LARGE', `evidence of ${req.evidence.length} bytes exceeds ${MAX_EVIDENCE}`)
      const row = this.#record(req.record)
      if (this.#db.prepare("SELECT 1 FROM supervision_requests WHERE record_id = ? AND status = 'pending'").get(row.id)) {
        refuse('INVALID_ARGUMENT', 'PENDING_REQUEST', `record ${row.id} already has a pending request; withdraw or decide it first`, { record: row.id })
      }
      const createdAt = this.#now()
      const policyId = bytesToHex(supervisoryPolicyId(policy))
      const oldContent = contentDigest(row.content)
      if (req.action === 'delete' && this.#isTombstone(row)) refuse('INVALID_ARGUMENT', 'ALREADY_DELETED', `record ${row.id} is already deleted (a tombstone)`, { record: row.id })
      let corrected: ReturnType<typeof correctedContent> | null = null
      if (req.action === 'correct') {
        const old = decodeOrRefuse(row)
        if (!(req.envelope instanceof Uint8Array)) refuse('INVALID_ARGUMENT', 'NO_ENVELOPE', 'a correction carries the re-sealed envelope')
        corrected = correctedContent(old, req.manifest)
        if (corrected.manifest.size !== req.envelope.length) refuse('INVALID_ARGUMENT', 'ENVELOPE_SIZE', `the envelope is ${req.envelope.length} bytes, the manifest says ${corrected.manifest.size}`)
      }
      // The requester's signature covers the record, action, old content, new manifest and reason; its digest is the id.
      let signed: RequesterSignature | null = null
      let requestId: string
      if (req.signed !== undefined) {
        const v = verifyRequesterSignature(policy, { record: row.id, action: req.action, oldContent, reason: req.reason }, req.signed, { newManifest: corrected ? manifestCommitment(corrected.manifest) : NO_MANIFEST })
        signed = req.signed as RequesterSignature
        requestId = v.requestId
        if (this.#db.prepare('SELECT 1 FROM supervision_requests WHERE id = ?').get(requestId)) refuse('VERIFICATION_FAILED', 'DUPLICATE_REQUEST', `request ${requestId} was already filed: a signed request is filed once (sign a new one)`, { requestId })
      } else {
        const id0 = { v: 1, policy: policyId, record: row.id, action: req.action, oldContent, reason: req.reason, requester: req.requester, createdAt, nonce: bytesToHex(randomBytes(16)) }
        requestId = bytesToHex(canonicalDigest(REQUEST_DOMAIN, id0))
      }
      const newContent = corrected ? corrected.content : tombstoneFor(row, requestId)
      const newCid = corrected ? corrected.manifest.cid : null
      const envelope = corrected ? req.envelope! : null
      this.#db
        .prepare(
          `INSERT INTO supervision_requests (id, policy, record_id, action, reason, requester, old_content, new_content, new_content_digest, old_cid, new_cid, new_envelope, evidence, status, created_at, requester_signature)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
        )
        .run(requestId, policyId, row.id, req.action, req.reason, req.requester, oldContent, newContent, contentDigest(newContent), row.cid, newCid, envelope, req.evidence ?? null, createdAt, signed ? JSON.stringify(signed) : null)
      this.#log({ event: 'supervision_request', request: requestId, record: row.id, action: req.action, requester: req.requester, signedBy: signed?.requester ?? null }, `${req.action} of record ${row.id} requested`)
      return this.getRequest(requestId)!
    })
  }

  getRequest(id: string): RequestView | null {
    const r = this.#db.prepare('SELECT * FROM supervision_requests WHERE id = ?').get(id) as RequestRow | undefined
    return r ? this.#view(r) : null
  }

  listRequests(q: { status?: RequestStatus; limit?: number } = {}): RequestView[] {
    const rows = (q.status
      ? this.#db.prepare('SELECT * FROM supervision_requests WHERE status = ? ORDER BY created_at, id LIMIT ?').all(q.status, q.limit ?? 100)
      : this.#db.prepare('SELECT * FROM supervision_requests ORDER BY created_at, id LIMIT ?').all(q.limit ?? 100)) as RequestRow[]
    return rows.map((r) => this.#view(r))
  }

  /** The requester (or an admin) withdraws a pending request. */
  withdraw(id: string, who: string, opts: { admin?: boolean } = {}): RequestView {
    return this.#refusable('withdraw', who, id, () => {
      const r = this.#pending(id)
      if (r.requester !== who && !opts.admin) refuse('INVALID_ARGUMENT', 'NOT_REQUESTER', `request ${id} was made by ${r.requester}; only they or an admin may withdraw it`)
      this.#close(id, 'withdrawn', who)
      return this.getRequest(id)!
    })
  }

  // ---- decisions ---------------------------------------------------------------------------------

  /** A regulator's signed decision (EIP-712, shared/protocol/approval.ts). k approvals make it ready to sign; enough rejections close it. */
  decide(id: string, approval: unknown, who = 'regulator'): RequestView {
    return this.#refusable('decide', who, id, () => {
      const r = this.#pending(id)
      const policy = this.#policyById(r.policy)
      const subject = this.#subject(r)
      const v = verifyApproval(policy, subject, approval)
      const sig = v.signature.toLowerCase()
      if (this.#db.prepare('SELECT 1 FROM supervision_decisions WHERE signature = ?').get(sig)) refuse('VERIFICATION_FAILED', 'REPLAYED', `this approval by ${v.regulator.name} was already submitted`, { regulator: v.regulator.address })
      if (this.#db.prepare('SELECT 1 FROM supervision_decisions WHERE request_id = ? AND regulator = ?').get(id, v.regulator.address)) {
        refuse('VERIFICATION_FAILED', 'DUPLICATE_APPROVAL', `${v.regulator.name} (${v.regulator.address}) has already decided on request ${id}; one regulator counts once`, { regulator: v.regulator.address })
      }
      this.#db
        .prepare('INSERT INTO supervision_decisions (request_id, regulator, decision, approval, signature, at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(id, v.regulator.address, v.decision, JSON.stringify(approval), sig, this.#now())
      this.#log({ event: 'supervision_decision', request: id, regulator: v.regulator.address, decision: v.decision }, `${v.regulator.name} decided ${v.decision}`)
      const tally = tallyApprovals(policy, subject, this.#approvals(id))
      if (tally.status === 'rejected') this.#close(id, 'rejected', v.regulator.address)
      return this.getRequest(id)!
    })
  }

  // ---- FROST coordination (k ≥ 2) ------------------------------------------------------------------

  /** Round one: an approving regulator's nonce commitment. The first k approvers who commit are the signers. */
  commit(id: string, commitment: FrostCommitment, who = 'regulator'): RequestView {
    return this.#refusable('commit', who, id, () => {
      const r = this.#pending(id)
      const policy = this.#policyById(r.policy)
      if (policy.keyGeneration === 'single') refuse('INVALID_ARGUMENT', 'SINGLE_REGULATOR', 'a 1-of-1 policy has no FROST rounds: submit the adapted opening')
      const index = commitment?.index
      const reg = policy.regulators.find((x) => x.index === index)
      if (!reg) refuse('INVALID_ARGUMENT', 'UNKNOWN_SIGNER', `signer index ${JSON.stringify(index)} is not a regulator of the policy`)
      if (!this.#approvals(id).some((a) => (a as { regulator: string; decision: string }).regulator === reg.address && (a as { decision: string }).decision === 'approve')) {
        refuse('INVALID_ARGUMENT', 'NOT_APPROVED', `${reg.name} must approve request ${id} before signing for it`, { regulator: reg.address })
      }
      if (r.signers) refuse('INVALID_ARGUMENT', 'SIGNERS_FIXED', `the signers of request ${id} are already fixed (${r.signers})`)
      this.#db.prepare('INSERT OR REPLACE INTO supervision_commitments (request_id, signer, hiding, binding) VALUES (?, ?, ?, ?)').run(id, reg.index, commitment.hiding, commitment.binding)
      const committed = this.#commitments(id)
      if (committed.length >= policy.threshold) {
        const signers = committed.slice(0, policy.threshold).map((c) => c.index)
        this.#db.prepare('DELETE FROM supervision_commitments WHERE request_id = ? AND signer NOT IN (SELECT value FROM json_each(?))').run(id, JSON.stringify(signers))
        this.#db.prepare('UPDATE supervision_requests SET signers = ? WHERE id = ?').run(JSON.stringify(signers), id)
      }
      return this.getRequest(id)!
    })
  }

  /**
   * Round two: a signer's share, verified at once against its verification share (RFC 9591 §5.4);
   * a wrong share names the regulator and is not stored. The k-th valid share applies the redaction.
   */
  share(id: string, share: FrostSignatureShare, who = 'regulator'): { request: RequestView; applied: Applied | null } {
    return this.#refusable('share', who, id, () => {
      const r = this.#pending(id)
      const policy = this.#policyById(r.policy)
      if (!r.signers) refuse('INVALID_ARGUMENT', 'SIGNERS_NOT_FIXED', `request ${id} has not got ${policy.threshold} approvals with commitments yet`)
      const signers = JSON.parse(r.signers) as number[]
      const reg = policy.regulators.find((x) => x.index === share?.index)
      if (!reg || !signers.includes(reg.index)) refuse('INVALID_ARGUMENT', 'NOT_A_SIGNER', `signer index ${JSON.stringify(share?.index)} is not one of the signers ${signers.join(', ')} of request ${id}`)
      const group = policyGroup(policy)
      const commitments = this.#commitments(id)
      const target = this.#target(r)
      if (!this.#stage('share-check', () => thresholdAdaptVerifyShare(group, commitments, target, share))) {
        refuse('VERIFICATION_FAILED', 'BAD_SIGNATURE_SHARE', `the signature share of ${reg.name} (${reg.address}, signer ${reg.index}) does not verify against their verification share`, { regulator: reg.address, participants: [reg.index] })
      }
      this.#db.prepare('INSERT OR REPLACE INTO supervision_shares (request_id, signer, share) VALUES (?, ?, ?)').run(id, reg.index, share.share)
      const shares = this.#db.prepare('SELECT signer AS "index", share FROM supervision_shares WHERE request_id = ? ORDER BY signer').all(id) as { index: number; share: Uint8Array }[]
      if (shares.length < signers.length) return { request: this.getRequest(id)!, applied: null }
      const opening = this.#stage('aggregate', () => thresholdAdaptAggregate(group, commitments, target, shares.map((s) => ({ index: s.index, share: new Uint8Array(s.share) }))))
      const applied = this.#apply(r, concatBytes(opening.R, opening.s), signers, true)
      return { request: applied.request, applied }
    })
  }

  /**
   * Start the FROST rounds again (RFC 9591 §5: a session whose share failed, or whose signer lost
   * its single-use nonces, is abandoned, never resumed): commitments, shares and the signer set are
   * dropped; the request and its approvals stay. The signers commit fresh nonces.
   */
  restart(id: string, who = 'regulator'): RequestView {
    return this.#refusable('restart', who, id, () => {
      this.#pending(id)
      this.#db.transaction(() => {
        this.#db.prepare('DELETE FROM supervision_shares WHERE request_id = ?').run(id)
        this.#db.prepare('DELETE FROM supervision_commitments WHERE request_id = ?').run(id)
        this.#db.prepare('UPDATE supervision_requests SET signers = NULL WHERE id = ?').run(id)
      }).immediate()
      this.#log({ event: 'supervision_restart', request: id, who }, `FROST rounds of request ${id} restarted`)
      return this.getRequest(id)!
    })
  }

  /** k = n = 1: the single regulator's adapted opening (R ‖ s, made with the trapdoor file). */
  submitOpening(id: string, opening: Uint8Array, who = 'regulator'): Applied {
    return this.#refusable('opening', who, id, () => {
      const r = this.#pending(id)
      const policy = this.#policyById(r.policy)
      if (policy.keyGeneration !== 'single') refuse('INVALID_ARGUMENT', 'THRESHOLD_POLICY', `policy ${r.policy} is ${policy.threshold} of ${policy.regulators.length}: the opening comes from FROST signature shares`)
      return this.#apply(r, opening, [1])
    })
  }

  /** Has an approved redaction changed this record? */
  isRedacted(record: number): boolean {
    this.#redacted ??= this.#db.prepare('SELECT 1 FROM redaction_log WHERE record_id = ? LIMIT 1')
    return this.#redacted.get(record) !== undefined
  }
  #redacted: ReturnType<CloudDb['prepare']> | undefined

  /** Refused attempts, newest first. */
  refusals(limit = 100): { at: number; who: string; operation: string; requestId: string | null; reason: string; message: string }[] {
    return this.#db.prepare('SELECT at, who, operation, request_id AS requestId, reason, message FROM supervision_refusals ORDER BY id DESC LIMIT ?').all(limit) as never
  }

  /** The redaction log (oldest first). */
  redactionLog(): { seq: number; record: number; entry: RedactionLogEntry; hash: string; logHash: string }[] {
    return (this.#db.prepare('SELECT seq, record_id, entry, hash, log_hash FROM redaction_log ORDER BY seq').all() as { seq: number; record_id: number; entry: Uint8Array; hash: Uint8Array; log_hash: Uint8Array }[]).map(
      (r) => ({ seq: r.seq, record: r.record_id, entry: decodeRedactionLogEntry(new Uint8Array(r.entry)), hash: bytesToHex(r.hash), logHash: bytesToHex(r.log_hash) }),
    )
  }

  // ---- applying ----------------------------------------------------------------------------------

  /** `verified`: the opening was already checked under the record's hash (thresholdAdaptAggregate does). */
  #apply(r: RequestRow, opening: Uint8Array, signers: readonly number[], verified = false): Applied {
    const policy = this.#policyById(r.policy)
    const subject = this.#subject(r)
    const approvers = this.#stage('approvals', () => requireApproval(policy, subject, this.#approvals(r.id).filter((a) => (a as { decision: string }).decision === 'approve')))
    const row = this.#record(r.record_id)
    // The record must still be what the regulators approved a change of.
    if (contentDigest(row.content) !== r.old_content) refuse('VERIFICATION_FAILED', 'RECORD_CHANGED', `record ${row.id} changed since request ${r.id} was made`)
    const newContent = new Uint8Array(r.new_content)
    if (!verified && !this.#stage('opening-check', () => chameleonVerify(this.#chameleonPublicKey, newContent, row.hash, opening, 2))) {
      refuse('VERIFICATION_FAILED', 'BAD_OPENING', `the new opening does not open record ${row.id}'s unchanged hash to the requested content`)
    }
    const time = this.#now()
    const request = r.requester_signature ? (JSON.parse(r.requester_signature) as RequesterSignature) : null
    const { entry, hash } = this.#stage('log-entry', () => {
      const entry = buildRedactionLogEntry({ policy, subject, reason: r.reason, requester: r.requester, approvals: approvers, signers, opening, time, request })
      return { entry, hash: redactionLogEntryHash(entry) }
    })
    const tx = this.#db.transaction((): { seq: number; block: BlockSummary | null } => {
      const prev = this.#db.prepare('SELECT seq, log_hash FROM redaction_log ORDER BY seq DESC LIMIT 1').get() as { seq: number; log_hash: Uint8Array } | undefined
      const seq = (prev?.seq ?? 0) + 1
      const logHash = sha256(concatBytes(prev ? new Uint8Array(prev.log_hash) : new Uint8Array(32), hash))
      const changed = this.#db.prepare('UPDATE records SET content = ?, opening = ?, cid = ? WHERE id = ? AND hash = ?').run(newContent, opening, r.new_cid ?? '', row.id, row.hash).changes
      if (changed !== 1) throw new Error(`record ${row.id} vanished while applying`)
      this.#db.prepare('INSERT INTO redaction_log (seq, record_id, request_id, entry, hash, log_hash, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?)').run(seq, row.id, r.id, encodeRedactionLogEntry(entry), hash, logHash, time)
      this.#db.prepare("UPDATE supervision_requests SET status = 'applied', closed_at = ?, closed_by = 'cloud', new_envelope = NULL WHERE id = ?").run(time, r.id)
      // Last: the block committing the log with this entry (header v2), in this same transaction.
      return { seq, block: this.#seal ? this.#seal(time) : null }
    })
    const { seq: logSeq, block } = this.#stage('commit', () => tx.immediate())
    this.#log({ event: 'supervision_applied', request: r.id, record: row.id, action: r.action, logSeq, approvers: approvers.map((a) => a.regulator.address) }, `${r.action} of record ${row.id} applied`)
    return {
      request: this.getRequest(r.id)!,
      entry,
      logSeq,
      entryHash: bytesToHex(hash),
      oldCid: r.old_cid,
      newCid: r.new_cid,
      newEnvelope: r.new_envelope ? new Uint8Array(r.new_envelope) : null,
      gateway: row.gatewayId,
      stream: row.stream,
      seq: row.seq,
      block,
    }
  }

  // ---- helpers -----------------------------------------------------------------------------------

  #refusable<T>(operation: string, who: string, requestId: string | null, f: () => T): T {
    try {
      return f()
    } catch (e) {
      if (!isCareLedgerError(e)) throw e
      const reason = String((e.info as { reason?: unknown }).reason ?? e.code)
      this.#db.prepare('INSERT INTO supervision_refusals (at, who, operation, request_id, reason, message) VALUES (?, ?, ?, ?, ?, ?)').run(this.#now(), who, operation, requestId, reason, e.message)
      this.#log({ event: 'supervision_refused', operation, who, request: requestId, reason }, e.message)
      throw e
    }
  }

  #record(id: number): RecordRow {
    const raw = this.#db.prepare(`SELECT ${RECORD_COLUMNS} FROM records WHERE id = ?`).get(id) as RawRecord | undefined
    if (!raw) refuse('INVALID_ARGUMENT', 'UNKNOWN_RECORD', `record ${id} does not exist`, { record: id })
    return toRecordRow(raw)
  }

  #isTombstone(row: RecordRow): boolean {
    return decodeTombstone(row.content) !== null
  }

  #pending(id: string): RequestRow {
    const r = typeof id === 'string' ? (this.#db.prepare('SELECT * FROM supervision_requests WHERE id = ?').get(id) as RequestRow | undefined) : undefined
    if (!r) refuse('INVALID_ARGUMENT', 'UNKNOWN_REQUEST', `no supervision request ${JSON.stringify(id)}`)
    if (r.status !== 'pending') refuse('INVALID_ARGUMENT', 'NOT_PENDING', `request ${id} is ${r.status}`, { status: r.status })
    return r
  }

  #close(id: string, status: RequestStatus, who: string): void {
    this.#db.prepare('UPDATE supervision_requests SET status = ?, closed_at = ?, closed_by = ?, new_envelope = NULL WHERE id = ?').run(status, this.#now(), who, id)
    this.#log({ event: 'supervision_closed', request: id, status, who }, `request ${id} ${status}`)
  }

  #subject(r: RequestRow): RedactionSubject {
    return { requestId: r.id, record: r.record_id, action: r.action, oldContent: r.old_content, newContent: r.new_content_digest }
  }

  #approvals(id: string): unknown[] {
    return (this.#db.prepare('SELECT approval FROM supervision_decisions WHERE request_id = ? ORDER BY at, regulator').pluck().all(id) as string[]).map((a) => JSON.parse(a))
  }

  #commitments(id: string): FrostCommitment[] {
    return (this.#db.prepare('SELECT signer, hiding, binding FROM supervision_commitments WHERE request_id = ? ORDER BY signer').all(id) as { signer: number; hiding: Uint8Array; binding: Uint8Array }[]).map((c) => ({
      index: c.signer,
      hiding: new Uint8Array(c.hiding),
      binding: new Uint8Array(c.binding),
    }))
  }

  #target(r: RequestRow): AdaptTarget {
    return { hash: this.#record(r.record_id).hash, message: new Uint8Array(r.new_content) }
  }

  #view(r: RequestRow): RequestView {
    const decisions = (this.#db.prepare('SELECT regulator, decision, approval, at FROM supervision_decisions WHERE request_id = ? ORDER BY at, regulator').all(r.id) as { regulator: string; decision: 'approve' | 'reject'; approval: string; at: number }[]).map(
      (d) => ({ regulator: d.regulator, decision: d.decision, comment: String((JSON.parse(d.approval) as { comment?: unknown }).comment ?? ''), at: d.at }),
    )
    const hash = this.#db.prepare('SELECT hash FROM records WHERE id = ?').pluck().get(r.record_id) as Uint8Array
    return {
      id: r.id,
      policy: r.policy,
      record: r.record_id,
      action: r.action,
      reason: r.reason,
      requester: r.requester,
      requesterSignature: r.requester_signature ? (JSON.parse(r.requester_signature) as RequesterSignature) : null,
      oldContent: r.old_content,
      newContent: r.new_content_digest,
      newContentBytes: bytesToHex(new Uint8Array(r.new_content)),
      hash: bytesToHex(new Uint8Array(hash)),
      oldCid: r.old_cid,
      newCid: r.new_cid,
      evidence: r.evidence ? bytesToHex(new Uint8Array(r.evidence)) : null,
      status: r.status,
      decisions,
      signers: r.signers ? (JSON.parse(r.signers) as number[]) : null,
      commitments: this.#commitments(r.id).map((c) => ({ index: c.index, hiding: bytesToHex(c.hiding), binding: bytesToHex(c.binding) })),
      shares: this.#db.prepare('SELECT signer FROM supervision_shares WHERE request_id = ? ORDER BY signer').pluck().all(r.id) as number[],
      createdAt: r.created_at,
      closedAt: r.closed_at,
    }
  }
}

function decodeOrRefuse(row: RecordRow) {
  try {
    return decodeRecordContent(row.content)
  } catch (e) {
    return refuse('INVALID_ARGUMENT', 'NOT_CORRECTABLE', `record ${row.id} cannot be corrected: ${(e as Error).message}`, { record: row.id })
  }
}
