/**
 * The supervision workflow's rules (docs/security.md §Supervision), written once over the
 * SupervisionTables interface (tables.ts: SQLite's cloud.db, or the PostgreSQL every process of a
 * deployment shares, cloud/store/pg/supervision.ts): requests, regulators' EIP-712 decisions, FROST coordination with the cloud as
 * coordinator (RFC 9591 §5: it collects commitments, fixes the signer set, verifies every share
 * against the signer's verification share), and applying an approved redaction.
 *
 *   applyStages = [requireApproval, checkOpening, swapContent, appendRedactionLog, closeRequest]
 *
 * Every refusal is a CareLedgerError naming what was wrong; it changes nothing and is written to
 * supervision_refusals. A redaction is applied once: the applying transaction closes the request
 * only while it is still pending (another process may have applied it first). Removing the old ciphertext from the blockstore and telling the gateway
 * are I/O the caller does with what `apply` returns.
 */
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
import type { CloudDb } from '../store/db.ts'
import type { Awaitable } from '../access/store.ts'
import { decodeRecordContent, toRecordRow, type RecordRow } from '../chain/record.ts'
import type { BlockSummary } from '../chain/store.ts'
import { SqliteSupervisionTables, type ApplyOutcome, type Refusal, type RequestRow, type RequestStatus, type SupervisionTables } from './tables.ts'
import { correctedContent, decodeTombstone, tombstoneFor } from './content.ts'

export const REQUEST_DOMAIN = 'supervision-request'
export const MAX_EVIDENCE = 1 << 20

export type { RequestStatus } from './tables.ts'

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

function refuse(code: 'INVALID_ARGUMENT' | 'VERIFICATION_FAILED', reason: string, message: string, info: Record<string, unknown> = {}): never {
  throw new CareLedgerError(code, message, { reason, ...info })
}

export interface SupervisionOptions {
  readonly chameleonPublicKey: Uint8Array
  readonly now?: () => number
  readonly log?: (line: Record<string, unknown>, msg: string) => void
  readonly onStage?: (stage: ApplyStage, ms: number) => void
}

/**
 * The workflow's rules over a store (tables.ts): the same on SQLite and on PostgreSQL. Every
 * method answers a promise; on SQLite the tables answer synchronously underneath.
 */
export class SupervisionStore {
  readonly #t: SupervisionTables
  readonly #chameleonPublicKey: Uint8Array
  readonly #now: () => number
  readonly #log: (line: Record<string, unknown>, msg: string) => void
  readonly #onStage: ((stage: ApplyStage, ms: number) => void) | undefined

  constructor(tables: SupervisionTables, opts: SupervisionOptions) {
    this.#t = tables
    this.#chameleonPublicKey = opts.chameleonPublicKey
    this.#now = opts.now ?? Date.now
    this.#log = opts.log ?? (() => {})
    this.#onStage = opts.onStage
  }

  get kind(): 'sqlite' | 'postgres' {
    return this.#t.kind
  }

  /** Run one stage of the apply path, timed when the owner asked (bench:supervision). */
  async #stage<T>(stage: ApplyStage, f: () => Awaitable<T>): Promise<T> {
    if (!this.#onStage) return f()
    const t0 = performance.now()
    try {
      return await f()
    } finally {
      this.#onStage(stage, performance.now() - t0)
    }
  }

  // ---- the supervisory policy --------------------------------------------------------------------

  /** Install a policy (setup or rotation). Its group key must be the chain's chameleon key. */
  setPolicy(value: unknown, who = 'setup'): Promise<SupervisoryPolicy> {
    return this.#refusable('set-policy', who, null, async () => {
      const policy = parseSupervisoryPolicy(value)
      if (policy.groupKey !== bytesToHex(this.#chameleonPublicKey)) {
        refuse('INVALID_ARGUMENT', 'WRONG_GROUP_KEY', `the policy's group key ${policy.groupKey} is not this chain's chameleon public key ${bytesToHex(this.#chameleonPublicKey)}`)
      }
      const id = bytesToHex(supervisoryPolicyId(policy))
      await this.#t.addPolicy(id, JSON.stringify(policy), this.#now())
      this.#log({ event: 'supervision_policy', policy: id, threshold: policy.threshold, regulators: policy.regulators.length }, 'supervisory policy set')
      return policy
    })
  }

  async policy(): Promise<SupervisoryPolicy | null> {
    const row = await this.#t.latestPolicy()
    return row ? parseSupervisoryPolicy(JSON.parse(row)) : null
  }

  async #policyById(id: string): Promise<SupervisoryPolicy> {
    const row = await this.#t.policyById(id)
    if (!row) refuse('INVALID_ARGUMENT', 'NO_POLICY', `supervisory policy ${id} is not known to this cloud`)
    return parseSupervisoryPolicy(JSON.parse(row))
  }

  // ---- requests ----------------------------------------------------------------------------------

  createRequest(req: NewRequest): Promise<RequestView> {
    return this.#refusable('request', req.requester ?? '?', null, async () => {
      const policy = await this.policy()
      if (req.logEntry !== undefined) {
        refuse('INVALID_ARGUMENT', 'NOT_REDACTABLE', `redaction log entry ${req.logEntry} cannot be corrected or deleted: it is committed by a plain hash, which no trapdoor opens to other content`, { logEntry: req.logEntry })
      }
      if (!policy) refuse('INVALID_ARGUMENT', 'NO_POLICY', 'no supervisory policy is set on this cloud (careledger regulator setup)')
      if (req.action !== 'correct' && req.action !== 'delete') refuse('INVALID_ARGUMENT', 'BAD_ACTION', `action ${JSON.stringify(req.action)}: expected correct or delete`)
      if (typeof req.reason !== 'string' || req.reason.trim().length === 0 || req.reason.length > 2000) refuse('INVALID_ARGUMENT', 'BAD_REASON', 'reason: 1–2000 characters, required')
      if (!Number.isSafeInteger(req.record) || req.record < 1) refuse('INVALID_ARGUMENT', 'BAD_RECORD', `record ${JSON.stringify(req.record)}: expected a record id (a positive integer)`)
      if (req.evidence && req.evidence.length > MAX_EVIDENCE) refuse('INVALID_ARGUMENT', 'EVIDENCE_TOO_LARGE', `evidence of ${req.evidence.length} bytes exceeds ${MAX_EVIDENCE}`)
      const row = await this.#record(req.record)
      const pendingRefusal = (): never => refuse('INVALID_ARGUMENT', 'PENDING_REQUEST', `record ${row.id} already has a pending request; withdraw or decide it first`, { record: row.id })
      if (await this.#t.hasPending(row.id)) pendingRefusal()
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
      const duplicate = (id: string): never => refuse('VERIFICATION_FAILED', 'DUPLICATE_REQUEST', `request ${id} was already filed: a signed request is filed once (sign a new one)`, { requestId: id })
      if (req.signed !== undefined) {
        const v = verifyRequesterSignature(policy, { record: row.id, action: req.action, oldContent, reason: req.reason }, req.signed, { newManifest: corrected ? manifestCommitment(corrected.manifest) : NO_MANIFEST })
        signed = req.signed as RequesterSignature
        requestId = v.requestId
        if (await this.#t.hasRequest(requestId)) duplicate(requestId)
      } else {
        const id0 = { v: 1, policy: policyId, record: row.id, action: req.action, oldContent, reason: req.reason, requester: req.requester, createdAt, nonce: bytesToHex(randomBytes(16)) }
        requestId = bytesToHex(canonicalDigest(REQUEST_DOMAIN, id0))
      }
      const newContent = corrected ? corrected.content : tombstoneFor(row, requestId)
      const added = await this.#t.addRequest({
        id: requestId,
        policy: policyId,
        record_id: row.id,
        action: req.action,
        reason: req.reason,
        requester: req.requester,
        old_content: oldContent,
        new_content: newContent,
        new_content_digest: contentDigest(newContent),
        old_cid: row.cid,
        new_cid: corrected ? corrected.manifest.cid : null,
        new_envelope: corrected ? req.envelope! : null,
        evidence: req.evidence ?? null,
        created_at: createdAt,
        requester_signature: signed ? JSON.stringify(signed) : null,
      })
      // Refused by a unique key: filed at another process meanwhile.
      if (!added) return (await this.#t.hasRequest(requestId)) ? duplicate(requestId) : pendingRefusal()
      this.#log({ event: 'supervision_request', request: requestId, record: row.id, action: req.action, requester: req.requester, signedBy: signed?.requester ?? null }, `${req.action} of record ${row.id} requested`)
      return (await this.getRequest(requestId))!
    })
  }

  async getRequest(id: string): Promise<RequestView | null> {
    const r = await this.#t.request(id)
    return r ? this.#view(r) : null
  }

  async listRequests(q: { status?: RequestStatus; limit?: number } = {}): Promise<RequestView[]> {
    const rows = await this.#t.requests(q.status ?? null, q.limit ?? 100)
    return Promise.all(rows.map((r) => this.#view(r)))
  }

  /** The requester (or an admin) withdraws a pending request. */
  withdraw(id: string, who: string, opts: { admin?: boolean } = {}): Promise<RequestView> {
    return this.#refusable('withdraw', who, id, async () => {
      const r = await this.#pending(id)
      if (r.requester !== who && !opts.admin) refuse('INVALID_ARGUMENT', 'NOT_REQUESTER', `request ${id} was made by ${r.requester}; only they or an admin may withdraw it`)
      await this.#close(id, 'withdrawn', who)
      return (await this.getRequest(id))!
    })
  }

  // ---- decisions ---------------------------------------------------------------------------------

  /** A regulator's signed decision (EIP-712, shared/protocol/approval.ts). k approvals make it ready to sign; enough rejections close it. */
  decide(id: string, approval: unknown, who = 'regulator'): Promise<RequestView> {
    return this.#refusable('decide', who, id, async () => {
      const r = await this.#pending(id)
      const policy = await this.#policyById(r.policy)
      const subject = this.#subject(r)
      const v = verifyApproval(policy, subject, approval)
      const sig = v.signature.toLowerCase()
      const conflict = async (): Promise<never> => {
        const c = await this.#t.decisionConflict(id, v.regulator.address, sig)
        if (c === 'signature') refuse('VERIFICATION_FAILED', 'REPLAYED', `this approval by ${v.regulator.name} was already submitted`, { regulator: v.regulator.address })
        refuse('VERIFICATION_FAILED', 'DUPLICATE_APPROVAL', `${v.regulator.name} (${v.regulator.address}) has already decided on request ${id}; one regulator counts once`, { regulator: v.regulator.address })
      }
      if (await this.#t.decisionConflict(id, v.regulator.address, sig)) await conflict()
      // A unique key refusing it: the same decision arrived at another process meanwhile.
      if (!(await this.#t.addDecision(id, { regulator: v.regulator.address, decision: v.decision, approval: JSON.stringify(approval), signature: sig, at: this.#now() }))) await conflict()
      this.#log({ event: 'supervision_decision', request: id, regulator: v.regulator.address, decision: v.decision }, `${v.regulator.name} decided ${v.decision}`)
      const tally = tallyApprovals(policy, subject, await this.#approvals(id))
      if (tally.status === 'rejected') await this.#close(id, 'rejected', v.regulator.address)
      return (await this.getRequest(id))!
    })
  }

  // ---- FROST coordination (k ≥ 2) ------------------------------------------------------------------

  /** Round one: an approving regulator's nonce commitment. The first k approvers who commit are the signers. */
  commit(id: string, commitment: FrostCommitment, who = 'regulator'): Promise<RequestView> {
    return this.#refusable('commit', who, id, async () => {
      const r = await this.#pending(id)
      const policy = await this.#policyById(r.policy)
      if (policy.keyGeneration === 'single') refuse('INVALID_ARGUMENT', 'SINGLE_REGULATOR', 'a 1-of-1 policy has no FROST rounds: submit the adapted opening')
      const index = commitment?.index
      const reg = policy.regulators.find((x) => x.index === index)
      if (!reg) refuse('INVALID_ARGUMENT', 'UNKNOWN_SIGNER', `signer index ${JSON.stringify(index)} is not a regulator of the policy`)
      if (!(await this.#approvals(id)).some((a) => (a as { regulator: string; decision: string }).regulator === reg.address && (a as { decision: string }).decision === 'approve')) {
        refuse('INVALID_ARGUMENT', 'NOT_APPROVED', `${reg.name} must approve request ${id} before signing for it`, { regulator: reg.address })
      }
      if (r.signers) refuse('INVALID_ARGUMENT', 'SIGNERS_FIXED', `the signers of request ${id} are already fixed (${r.signers})`)
      await this.#t.putCommitment(id, reg.index, commitment.hiding, commitment.binding)
      const committed = await this.#commitments(id)
      if (committed.length >= policy.threshold) await this.#t.fixSigners(id, committed.slice(0, policy.threshold).map((c) => c.index))
      return (await this.getRequest(id))!
    })
  }

  /**
   * Round two: a signer's share, verified at once against its verification share (RFC 9591 §5.4);
   * a wrong share names the regulator and is not stored. The k-th valid share applies the
   * redaction; when another process applied it meanwhile, the request comes back applied and
   * `applied` is null (applied once).
   */
  share(id: string, share: FrostSignatureShare, who = 'regulator'): Promise<{ request: RequestView; applied: Applied | null }> {
    return this.#refusable('share', who, id, async () => {
      const r = await this.#pending(id)
      const policy = await this.#policyById(r.policy)
      if (!r.signers) refuse('INVALID_ARGUMENT', 'SIGNERS_NOT_FIXED', `request ${id} has not got ${policy.threshold} approvals with commitments yet`)
      const signers = JSON.parse(r.signers) as number[]
      const reg = policy.regulators.find((x) => x.index === share?.index)
      if (!reg || !signers.includes(reg.index)) refuse('INVALID_ARGUMENT', 'NOT_A_SIGNER', `signer index ${JSON.stringify(share?.index)} is not one of the signers ${signers.join(', ')} of request ${id}`)
      const group = policyGroup(policy)
      const commitments = await this.#commitments(id)
      const target = await this.#target(r)
      if (!(await this.#stage('share-check', () => thresholdAdaptVerifyShare(group, commitments, target, share)))) {
        refuse('VERIFICATION_FAILED', 'BAD_SIGNATURE_SHARE', `the signature share of ${reg.name} (${reg.address}, signer ${reg.index}) does not verify against their verification share`, { regulator: reg.address, participants: [reg.index] })
      }
      await this.#t.putShare(id, reg.index, share.share)
      const shares = await this.#t.shares(id)
      if (shares.length < signers.length) return { request: (await this.getRequest(id))!, applied: null }
      const opening = await this.#stage('aggregate', () => thresholdAdaptAggregate(group, commitments, target, shares.map((s) => ({ index: s.index, share: new Uint8Array(s.share) }))))
      const applied = await this.#apply(r, concatBytes(opening.R, opening.s), signers, true)
      return applied ? { request: applied.request, applied } : { request: (await this.getRequest(id))!, applied: null }
    })
  }

  /**
   * Start the FROST rounds again (RFC 9591 §5: a session whose share failed, or whose signer lost
   * its single-use nonces, is abandoned, never resumed): commitments, shares and the signer set are
   * dropped; the request and its approvals stay. The signers commit fresh nonces.
   */
  restart(id: string, who = 'regulator'): Promise<RequestView> {
    return this.#refusable('restart', who, id, async () => {
      await this.#pending(id)
      await this.#t.restartRounds(id)
      this.#log({ event: 'supervision_restart', request: id, who }, `FROST rounds of request ${id} restarted`)
      return (await this.getRequest(id))!
    })
  }

  /** k = n = 1: the single regulator's adapted opening (R ‖ s, made with the trapdoor file). */
  submitOpening(id: string, opening: Uint8Array, who = 'regulator'): Promise<Applied> {
    return this.#refusable('opening', who, id, async () => {
      const r = await this.#pending(id)
      const policy = await this.#policyById(r.policy)
      if (policy.keyGeneration !== 'single') refuse('INVALID_ARGUMENT', 'THRESHOLD_POLICY', `policy ${r.policy} is ${policy.threshold} of ${policy.regulators.length}: the opening comes from FROST signature shares`)
      const applied = await this.#apply(r, opening, [1])
      if (!applied) refuse('INVALID_ARGUMENT', 'NOT_PENDING', `request ${id} was applied meanwhile`, { status: 'applied' })
      return applied
    })
  }

  /** Has an approved redaction changed this record? */
  async isRedacted(record: number): Promise<boolean> {
    return (await this.#t.redacted([record])).has(record)
  }

  /** Which of these records an approved redaction changed (one query for a page of records). */
  redactedAmong(records: readonly number[]): Awaitable<Set<number>> {
    return records.length === 0 ? new Set() : this.#t.redacted(records)
  }

  /** Refused attempts, newest first. */
  async refusals(limit = 100): Promise<Refusal[]> {
    return this.#t.refusals(limit)
  }

  /** The redaction log (oldest first). */
  async redactionLog(): Promise<{ seq: number; record: number; entry: RedactionLogEntry; hash: string; logHash: string }[]> {
    return (await this.#t.log()).map((r) => ({ seq: r.seq, record: r.record_id, entry: decodeRedactionLogEntry(new Uint8Array(r.entry)), hash: bytesToHex(r.hash), logHash: bytesToHex(r.log_hash) }))
  }

  // ---- applying ----------------------------------------------------------------------------------

  /**
   * `verified`: the opening was already checked under the record's hash (thresholdAdaptAggregate
   * does). Null when the request was closed meanwhile (applied by another process): nothing written.
   */
  async #apply(r: RequestRow, opening: Uint8Array, signers: readonly number[], verified = false): Promise<Applied | null> {
    const policy = await this.#policyById(r.policy)
    const subject = this.#subject(r)
    const approvals = (await this.#approvals(r.id)).filter((a) => (a as { decision: string }).decision === 'approve')
    const approvers = await this.#stage('approvals', () => requireApproval(policy, subject, approvals))
    const row = await this.#record(r.record_id)
    const changed = (): never => refuse('VERIFICATION_FAILED', 'RECORD_CHANGED', `record ${row.id} changed since request ${r.id} was made`)
    // The record must still be what the regulators approved a change of.
    if (contentDigest(row.content) !== r.old_content) {
      if (await this.#appliedMeanwhile(r, row.id)) return null
      changed()
    }
    const newContent = new Uint8Array(r.new_content)
    if (!verified && !(await this.#stage('opening-check', () => chameleonVerify(this.#chameleonPublicKey, newContent, row.hash, opening, 2)))) {
      refuse('VERIFICATION_FAILED', 'BAD_OPENING', `the new opening does not open record ${row.id}'s unchanged hash to the requested content`)
    }
    const time = this.#now()
    const request = r.requester_signature ? (JSON.parse(r.requester_signature) as RequesterSignature) : null
    const { entry, hash } = await this.#stage('log-entry', () => {
      const entry = buildRedactionLogEntry({ policy, subject, reason: r.reason, requester: r.requester, approvals: approvers, signers, opening, time, request })
      return { entry, hash: redactionLogEntryHash(entry) }
    })
    const out = await this.#stage('commit', () =>
      this.#t.apply({ requestId: r.id, record: row.id, oldContent: row.content, newContent, opening, newCid: r.new_cid ?? '', entry: encodeRedactionLogEntry(entry), entryHash: hash, time }),
    )
    if (out === 'not-pending') {
      this.#log({ event: 'supervision_apply_raced', request: r.id, record: row.id }, `request ${r.id} was applied by another caller first`)
      return null
    }
    if (out === 'record-changed') {
      if (await this.#appliedMeanwhile(r, row.id)) return null
      changed()
    }
    const { seq: logSeq, block } = out as Exclude<ApplyOutcome, string>
    this.#log({ event: 'supervision_applied', request: r.id, record: row.id, action: r.action, logSeq, approvers: approvers.map((a) => a.regulator.address) }, `${r.action} of record ${row.id} applied`)
    return {
      request: (await this.getRequest(r.id))!,
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

  /**
   * The record no longer holds the content the request was made against. If the request itself was
   * closed in the meantime, another caller (another process on PostgreSQL) applied it between our
   * reads: that is the lost race, not a changed record.
   */
  async #appliedMeanwhile(r: RequestRow, record: number): Promise<boolean> {
    const now = await this.#t.request(r.id)
    if (!now || now.status === 'pending') return false
    this.#log({ event: 'supervision_apply_raced', request: r.id, record }, `request ${r.id} was applied by another caller first`)
    return true
  }

  async #refusable<T>(operation: string, who: string, requestId: string | null, f: () => Promise<T>): Promise<T> {
    try {
      return await f()
    } catch (e) {
      if (!isCareLedgerError(e)) throw e
      const reason = String((e.info as { reason?: unknown }).reason ?? e.code)
      await this.#t.addRefusal({ at: this.#now(), who, operation, requestId, reason, message: e.message })
      this.#log({ event: 'supervision_refused', operation, who, request: requestId, reason }, e.message)
      throw e
    }
  }

  async #record(id: number): Promise<RecordRow> {
    const raw = await this.#t.record(id)
    if (!raw) refuse('INVALID_ARGUMENT', 'UNKNOWN_RECORD', `record ${id} does not exist`, { record: id })
    return toRecordRow(raw)
  }

  #isTombstone(row: RecordRow): boolean {
    return decodeTombstone(row.content) !== null
  }

  async #pending(id: string): Promise<RequestRow> {
    const r = typeof id === 'string' ? await this.#t.request(id) : null
    if (!r) refuse('INVALID_ARGUMENT', 'UNKNOWN_REQUEST', `no supervision request ${JSON.stringify(id)}`)
    if (r.status !== 'pending') refuse('INVALID_ARGUMENT', 'NOT_PENDING', `request ${id} is ${r.status}`, { status: r.status })
    return r
  }

  async #close(id: string, status: RequestStatus, who: string): Promise<void> {
    await this.#t.closeRequest(id, status, this.#now(), who)
    this.#log({ event: 'supervision_closed', request: id, status, who }, `request ${id} ${status}`)
  }

  #subject(r: RequestRow): RedactionSubject {
    return { requestId: r.id, record: r.record_id, action: r.action, oldContent: r.old_content, newContent: r.new_content_digest }
  }

  async #approvals(id: string): Promise<unknown[]> {
    return (await this.#t.decisions(id)).map((d) => JSON.parse(d.approval))
  }

  async #commitments(id: string): Promise<FrostCommitment[]> {
    return (await this.#t.commitments(id)).map((c) => ({ index: c.signer, hiding: new Uint8Array(c.hiding), binding: new Uint8Array(c.binding) }))
  }

  async #target(r: RequestRow): Promise<AdaptTarget> {
    return { hash: (await this.#record(r.record_id)).hash, message: new Uint8Array(r.new_content) }
  }

  async #view(r: RequestRow): Promise<RequestView> {
    const [decisions, hash, commitments, shares] = await Promise.all([this.#t.decisions(r.id), this.#t.recordHash(r.record_id), this.#commitments(r.id), this.#t.shares(r.id)])
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
      hash: bytesToHex(hash!),
      oldCid: r.old_cid,
      newCid: r.new_cid,
      evidence: r.evidence ? bytesToHex(new Uint8Array(r.evidence)) : null,
      status: r.status,
      decisions: decisions.map((d) => ({ regulator: d.regulator, decision: d.decision, comment: String((JSON.parse(d.approval) as { comment?: unknown }).comment ?? ''), at: d.at })),
      signers: r.signers ? (JSON.parse(r.signers) as number[]) : null,
      commitments: commitments.map((c) => ({ index: c.index, hiding: bytesToHex(c.hiding), binding: bytesToHex(c.binding) })),
      shares: shares.map((s) => s.index),
      createdAt: r.created_at,
      closedAt: r.closed_at,
    }
  }
}

/** The workflow on a SQLite cloud database; `seal` (ChainStore.sealBlock on the same database) commits each applied entry in its transaction. */
export function sqliteSupervision(db: CloudDb, opts: SupervisionOptions & { seal?: (now: number) => BlockSummary | null }): SupervisionStore {
  return new SupervisionStore(new SqliteSupervisionTables(db, opts.seal), opts)
}

function decodeOrRefuse(row: RecordRow) {
  try {
    return decodeRecordContent(row.content)
  } catch (e) {
    return refuse('INVALID_ARGUMENT', 'NOT_CORRECTABLE', `record ${row.id} cannot be corrected: ${(e as Error).message}`, { record: row.id })
  }
}
