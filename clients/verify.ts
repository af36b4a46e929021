/**
 * Checking the cloud's retrieval evidence before trusting any of it (shared/protocol/evidence.ts,
 * docs/security.md §Verified retrieval). Pure: JSON in, verified records or named failures out.
 * The chain's own functions do the cryptographic checks — block.ts (header hash, signature) and
 * record-proof.ts verifyRecordProof (chameleon opening, content, gateway signature, RFC 9162 inclusion)
 * — so a change of the chain's formats flows through here.
 *
 *   head          signed by the pinned block-signing key; not behind (nor beside) a head seen before
 *   header chain  each record's block links to the head by prev hashes
 *   records       every proof verifies; listed in seq order; belong to the span's stream
 *   completeness  every seq of [firstSeq, lastSeq] present and linked; boundary batches prove that
 *                 nothing outside the span can hold readings of the query (evidence.ts)
 *   log           (evidence v2, head block v2) the plan's redaction log hashes to the head's
 *                 commitment; every record it names comes with its newest entry, and no other entry
 *                 is served (committedRedactionLog)
 *   redactions    (evidence v2) a record a redaction changed comes with its redaction log entry,
 *                 checked as `chain verify` checks it (verifyRedactionLogEntry, redactedRowProblems:
 *                 k approvals of the policy's regulators, the new content, the new opening of the
 *                 unchanged chameleon hash); a corrected record is read in its corrected form, a
 *                 deleted one is a tombstone that keeps its place in the stream
 */
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../shared/errors.ts'
import { chameleonKeyId } from '../shared/crypto/chameleon.ts'
import { signingKeyId } from '../shared/crypto/sign.ts'
import { manifestCommitment, type BatchManifest } from '../shared/protocol/manifest.ts'
import { batchMatches, EvidencePlanSchema, type EvidencePlan, type EvidenceQuery, type StreamSpan } from '../shared/protocol/evidence.ts'
import { blockHash, decodeBlockHeader, verifyBlockSignature, type BlockHeader } from '../cloud/chain/block.ts'
import { checkProofPage, type CheckedProof } from './retrieval-work.ts'
import { verifyRedactedRecordProof, type ProofVerification } from '../cloud/chain/record-proof.ts'
import { decodeRecordContent } from '../cloud/chain/record.ts'
import { decodeTombstone } from '../cloud/supervision/content.ts'
import { redactedRowProblems } from '../cloud/supervision/verify-redactions.ts'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes } from '@noble/hashes/utils.js'
import { RecordRedactionSchema } from '../shared/protocol/evidence.ts'
import { parseRedactionLogEntry, redactionLogEntryHash, verifyRedactionLogEntry, type RedactionLogEntry } from '../shared/protocol/redaction-log.ts'
import { parseSupervisoryPolicy, supervisoryPolicyId, type SupervisoryPolicy } from '../shared/protocol/supervisory-policy.ts'

/** What went wrong, named for the report (docs/security.md §Verified retrieval). */
export type RetrievalFailureKind =
  /** A batch of a stream's span is missing from the answer (the cloud did not admit a gap for it). */
  | 'OMITTED'
  /** A record, its proof, its block or a stream link does not verify: changed content. */
  | 'ALTERED'
  /** A block's bytes do not hash to the CID its signed manifest names. */
  | 'SUBSTITUTED'
  /** Records not in their chain order (a stream's seqs must ascend). */
  | 'REORDERED'
  /** The head is behind a head this client has seen (or was told to expect). */
  | 'STALE_HEAD'
  /** The head does not extend a head this client has seen. */
  | 'FORKED_HEAD'
  /** The head is not signed by the pinned key, or the keys are not the chain's. */
  | 'UNTRUSTED_HEAD'
  /** A stream's span does not reach a proven boundary (so readings could sit outside it). */
  | 'BOUNDARY'
  /** The cloud admits it does not hold batches of a span. */
  | 'GAP'
  /** The answer is malformed or answers another question. */
  | 'MALFORMED'
  /**
   * A redacted record whose redaction log entry is missing (hidden), forged, altered, not made under
   * a policy of this chain, or does not describe the record served (e.g. its pre-redaction content).
   */
  | 'REDACTION'

export interface RetrievalFailure {
  readonly kind: RetrievalFailureKind
  readonly message: string
  readonly stream?: string
  readonly seq?: number
  readonly recordId?: number
  readonly height?: number
}

/** Thrown when evidence does not verify: VERIFICATION_FAILED with every failure in `info.failures`. */
export class RetrievalError extends CareLedgerError {
  readonly failures: readonly RetrievalFailure[]
  constructor(failures: readonly RetrievalFailure[]) {
    const kinds = [...new Set(failures.map((f) => f.kind))].join(', ')
    super('VERIFICATION_FAILED', `the cloud's answer does not verify (${kinds}): ${failures[0]!.message}${failures.length > 1 ? ` (and ${failures.length - 1} more)` : ''}`, { failures, reason: failures[0]!.kind })
    this.name = 'RetrievalError'
    this.failures = failures
  }
}

export interface KnownHead {
  readonly height: number
  readonly hash: string
}

export interface VerifiedHead {
  readonly height: number
  readonly hash: string
  readonly header: BlockHeader
  readonly signingKey: Uint8Array
  readonly chameleonKey: Uint8Array
}

const sameQuery = (a: EvidenceQuery, b: EvidenceQuery): boolean => JSON.stringify(a) === JSON.stringify(b)

/**
 * Parse the plan and check its head: signed by `signingKey` (the pinned key; the plan's own key
 * only when none is pinned, trust on first use), the chameleon key the header names, the question
 * we asked. Throws RetrievalError.
 */
export function verifyPlan(json: unknown, asked: EvidenceQuery, opts: { signingKey?: Uint8Array | null }): { plan: EvidencePlan; head: VerifiedHead | null } {
  const parsed = EvidencePlanSchema.safeParse(json)
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || 'plan'}: ${i.message}`)
    throw new RetrievalError([{ kind: 'MALFORMED', message: `the evidence plan is malformed: ${problems.join('; ')}` }])
  }
  const plan = parsed.data
  if (!sameQuery(plan.query, asked)) throw new RetrievalError([{ kind: 'MALFORMED', message: `the cloud answered another query (${JSON.stringify(plan.query)}) than the one asked (${JSON.stringify(asked)})` }])
  const signingKey = hexToBytes(plan.keys.signing)
  if (opts.signingKey && bytesToHex(opts.signingKey) !== plan.keys.signing) {
    throw new RetrievalError([{ kind: 'UNTRUSTED_HEAD', message: `the cloud names block-signing key ${signingKeyId(signingKey)}, not the pinned ${signingKeyId(opts.signingKey)}` }])
  }
  if (!plan.head) {
    if (plan.streams.length > 0) throw new RetrievalError([{ kind: 'MALFORMED', message: 'the plan lists streams but no head' }])
    return { plan, head: null }
  }
  const bytes = hexToBytes(plan.head.header)
  let header: BlockHeader
  try {
    header = decodeBlockHeader(bytes)
  } catch (e) {
    throw new RetrievalError([{ kind: 'ALTERED', height: plan.head.height, message: `the head's header does not decode: ${(e as Error).message}` }])
  }
  const hash = bytesToHex(blockHash(bytes))
  const failures: RetrievalFailure[] = []
  const at = { height: header.height }
  if (hash !== plan.head.hash) failures.push({ kind: 'ALTERED', ...at, message: `the head's header hashes to ${hash}, the cloud says ${plan.head.hash}` })
  if (header.height !== plan.head.height) failures.push({ kind: 'ALTERED', ...at, message: `the head's header is block ${header.height}, the cloud says ${plan.head.height}` })
  if (header.signer !== signingKeyId(signingKey) || !verifyBlockSignature(signingKey, bytes, hexToBytes(plan.head.signature))) {
    failures.push({ kind: 'UNTRUSTED_HEAD', ...at, message: `the head (block ${header.height}) is not signed by block-signing key ${signingKeyId(signingKey)}` })
  }
  const chameleonKey = hexToBytes(plan.keys.chameleon)
  if (header.chameleonKey !== chameleonKeyId(chameleonKey)) failures.push({ kind: 'UNTRUSTED_HEAD', ...at, message: `the head commits under chameleon key ${header.chameleonKey}, the cloud names ${chameleonKeyId(chameleonKey)}` })
  if (failures.length > 0) throw new RetrievalError(failures)
  return { plan, head: { height: header.height, hash, header, signingKey, chameleonKey } }
}

/** The head must not be behind `known` (stale); the chain check links `known` in (fork). */
export function checkNotStale(head: VerifiedHead | null, known: readonly KnownHead[]): void {
  for (const k of known) {
    if (!head || head.height < k.height) {
      throw new RetrievalError([
        { kind: 'STALE_HEAD', height: head?.height ?? -1, message: `the cloud answers at block ${head?.height ?? 'none'}, behind block ${k.height} (${k.hash.slice(0, 16)}…) already seen or expected: a stale or truncated chain` },
      ])
    }
  }
}

/**
 * Link block headers to the verified head by prev hashes. `headers` are canonical header bytes of
 * consecutive heights ending just below the head; returns height → block hash for all of them and
 * the head. Every `known` head inside the range must be on this chain (FORKED_HEAD otherwise).
 */
export function linkHeaders(head: VerifiedHead, headers: readonly { height: number; header: string }[], known: readonly KnownHead[]): Map<number, string> {
  const hashes = new Map<number, string>([[head.height, head.hash]])
  let expectPrev = head.header.prev
  for (let i = headers.length - 1; i >= 0; i--) {
    const h = headers[i]!
    const bytes = hexToBytes(h.header)
    const hash = bytesToHex(blockHash(bytes))
    let header: BlockHeader
    try {
      header = decodeBlockHeader(bytes)
    } catch (e) {
      throw new RetrievalError([{ kind: 'ALTERED', height: h.height, message: `block ${h.height}'s header does not decode: ${(e as Error).message}` }])
    }
    const wanted = head.height - (headers.length - i)
    if (header.height !== wanted || h.height !== wanted) throw new RetrievalError([{ kind: 'MALFORMED', height: h.height, message: `expected the header of block ${wanted}, got block ${header.height}` }])
    if (hash !== expectPrev) throw new RetrievalError([{ kind: 'ALTERED', height: wanted, message: `block ${wanted} hashes to ${hash}, but block ${wanted + 1} names ${expectPrev} as its predecessor` }])
    hashes.set(wanted, hash)
    expectPrev = header.prev
  }
  for (const k of known) {
    const ours = hashes.get(k.height)
    if (ours !== undefined && ours !== k.hash) {
      throw new RetrievalError([{ kind: 'FORKED_HEAD', height: k.height, message: `block ${k.height} is ${ours.slice(0, 16)}… on this chain, but ${k.hash.slice(0, 16)}… was seen or expected: the cloud rewrote history` }])
    }
  }
  return hashes
}

/** A redaction log entry that verified, as the outputs show it. */
export interface VerifiedRedaction {
  readonly action: 'correct' | 'delete'
  readonly requestId: string
  readonly reason: string
  /** The requester as the cloud authenticated it (v2 entries: its signature verified too). */
  readonly requester: string
  readonly approvers: readonly { readonly index: number; readonly name: string; readonly address: string; readonly comment: string }[]
  /** When the cloud applied it (ms since the epoch). */
  readonly time: number
  readonly policy: string
  /** The entry's plain hash, its position and link in the redaction log. */
  readonly entryHash: string
  readonly logSeq: number
  readonly logHash: string
  readonly entry: RedactionLogEntry
}

export interface VerifiedRecord {
  readonly id: number
  readonly seq: number
  readonly height: number
  /** For a corrected record, the corrected manifest (the one its content now holds). */
  readonly manifest: BatchManifest
  /** The batch holds readings the query asks for (its ciphertext is fetched and opened). */
  readonly matches: boolean
  /** The correction that made it what it is, or null for a record as its gateway sealed it. */
  readonly redaction: VerifiedRedaction | null
}

/** A deleted batch: its place in the stream (and the link) stays, its readings are gone. */
export interface VerifiedTombstone {
  readonly id: number
  readonly seq: number
  readonly height: number
  readonly stream: string
  readonly redaction: VerifiedRedaction
}

export interface VerifiedStream {
  readonly span: StreamSpan
  readonly records: readonly VerifiedRecord[]
  readonly tombstones: readonly VerifiedTombstone[]
  /** How the end of the span is proven: a batch sealed after `to + lateness`, or the stream's newest at the head. */
  readonly tail: 'boundary' | 'head'
}

export interface SpanCheck {
  readonly query: EvidenceQuery
  readonly head: VerifiedHead
  /** height → hash of every block from the lowest needed to the head (linkHeaders). */
  readonly hashes: ReadonlyMap<number, string>
  /** Accept the gaps the cloud admits (listed as GAP warnings instead of failing). */
  readonly allowGaps?: boolean
  /** The proofs' own checks, already done page by page (clients/retrieval-work.ts checkProofPage); done here when absent. */
  readonly checked?: readonly CheckedProof[]
  /** Evidence v2: the supervisory policies redaction log entries are checked against, by id (supervisoryPolicies). */
  readonly policies?: ReadonlyMap<string, SupervisoryPolicy>
  /** The redaction log the head commits, record id → newest entry (committedRedactionLog); unchecked when absent. */
  readonly log?: ReadonlyMap<number, LoggedRedaction>
}

/**
 * The supervisory policies of a v2 plan that belong to this chain (their group key is the head's
 * chameleon key), by policy id. A policy of another key is left out (entries made under it then
 * fail); one that does not parse is MALFORMED. v1 plans have none.
 */
export function supervisoryPolicies(plan: EvidencePlan, head: VerifiedHead): { policies: Map<string, SupervisoryPolicy>; failures: RetrievalFailure[] } {
  const policies = new Map<string, SupervisoryPolicy>()
  const failures: RetrievalFailure[] = []
  if (plan.v !== 2) return { policies, failures }
  const key = bytesToHex(head.chameleonKey)
  for (const [i, json] of plan.policies.entries()) {
    try {
      const p = parseSupervisoryPolicy(json)
      if (p.groupKey === key) policies.set(bytesToHex(supervisoryPolicyId(p)), p)
    } catch (e) {
      failures.push({ kind: 'MALFORMED', message: `supervisory policy ${i} of the plan: ${(e as Error).message}` })
    }
  }
  return { policies, failures }
}

/** Where the committed redaction log names a record last: its newest entry. */
export interface LoggedRedaction {
  readonly seq: number
  readonly hash: string
  readonly logHash: string
  readonly requestId: string
  readonly action: 'correct' | 'delete'
}

const ZERO_LOG_HASH = '00'.repeat(32)

/**
 * The redaction log the head block commits (header v2 `redactions: {count, head}`, docs/protocol.md
 * §Chain blocks): recompute log_hash_i = SHA-256(log_hash_{i−1} ‖ entry hash_i) from 32 zero bytes
 * over the plan's `log` and require `count` entries ending in `head`. Returns record id → its
 * newest entry (verifyStreamSpan then requires every record the log names to come with exactly
 * that entry), or null when there is nothing to check against: a v1 head commits no log (a
 * warning says so). A plan without the log while the head commits entries is a failure: that is
 * how a cloud would hide a redaction (the pre-redaction row still opens the unchanged chameleon
 * hash). Only the entries of records in the answer are verified in full (checkEntry).
 */
export function committedRedactionLog(plan: EvidencePlan, head: VerifiedHead): { log: Map<number, LoggedRedaction> | null; failures: RetrievalFailure[]; warnings: RetrievalFailure[] } {
  const at = { height: head.height }
  if (head.header.v !== 2) {
    return { log: null, failures: [], warnings: [{ kind: 'REDACTION', ...at, message: `the head (block ${head.height}) is a version-1 block, which commits no redaction log: whether a record is served in its pre-redaction form without its entry could not be checked` }] }
  }
  const committed = head.header.redactions
  const entries = plan.v === 2 ? plan.log : undefined
  if (entries === undefined) {
    if (committed.count === 0) return { log: new Map(), failures: [], warnings: [] }
    return { log: null, failures: [{ kind: 'REDACTION', ...at, message: `the head (block ${head.height}) commits a redaction log of ${committed.count} entries, but the cloud's plan carries no redaction log: the reader cannot check that no redacted record is served in its pre-redaction form without its entry` }], warnings: [] }
  }
  const log = new Map<number, LoggedRedaction>()
  let logHash = ZERO_LOG_HASH
  for (const [i, json] of entries.entries()) {
    let entry: RedactionLogEntry
    try {
      entry = parseRedactionLogEntry(json)
    } catch (e) {
      return { log: null, failures: [{ kind: 'MALFORMED', ...at, message: `redaction log entry ${i + 1} of the plan: ${(e as Error).message}` }], warnings: [] }
    }
    const hash = bytesToHex(redactionLogEntryHash(entry))
    logHash = bytesToHex(sha256(concatBytes(hexToBytes(logHash), hexToBytes(hash))))
    log.set(entry.record, { seq: i + 1, hash, logHash, requestId: entry.requestId, action: entry.action })
  }
  if (entries.length !== committed.count || logHash !== committed.head) {
    return {
      log: null,
      failures: [{ kind: 'REDACTION', ...at, message: `the redaction log in the plan (${entries.length} entries, head ${logHash}) is not the one the head (block ${head.height}) commits (${committed.count} entries, head ${committed.head}): entries were left out, added, reordered or altered` }],
      warnings: [],
    }
  }
  return { log, failures: [], warnings: [] }
}

/**
 * Check the redaction log entry served beside a record: well formed, hashes to its stated hash,
 * links into the log (logHash = SHA-256(prevLogHash ‖ hash), docs/security.md §Supervision), names
 * this record, was made under a policy of this chain and holds k valid approvals of its regulators
 * (verifyRedactionLogEntry, the function `chain verify` uses). Throws a message.
 */
function checkEntry(value: unknown, recordId: number, policies: ReadonlyMap<string, SupervisoryPolicy>): VerifiedRedaction {
  const r = RecordRedactionSchema.safeParse(value)
  if (!r.success) throw new Error(`its redaction is malformed: ${r.error.issues.slice(0, 2).map((i) => `${i.path.join('.') || 'redaction'}: ${i.message}`).join('; ')}`)
  const entry = parseRedactionLogEntry(r.data.entry)
  const hash = bytesToHex(redactionLogEntryHash(entry))
  if (hash !== r.data.hash) throw new Error(`its redaction log entry hashes to ${hash}, the cloud says ${r.data.hash} (altered)`)
  if (bytesToHex(sha256(concatBytes(hexToBytes(r.data.prevLogHash), hexToBytes(hash)))) !== r.data.logHash) throw new Error(`its redaction log entry ${r.data.seq} does not link into the log (logHash ≠ SHA-256(prevLogHash ‖ entry hash))`)
  if (entry.record !== recordId) throw new Error(`the redaction log entry served for it is request ${entry.requestId}'s for record ${entry.record}`)
  const policy = policies.get(entry.policy)
  if (!policy) throw new Error(`its redaction log entry (request ${entry.requestId}) was made under supervisory policy ${entry.policy}, which is not a policy of this chain's chameleon key in the plan`)
  const approvers = verifyRedactionLogEntry(policy, entry)
  return {
    action: entry.action,
    requestId: entry.requestId,
    reason: entry.reason,
    requester: entry.requester,
    approvers: approvers.map((a) => ({ index: a.regulator.index, name: a.regulator.name, address: a.regulator.address, comment: a.comment })),
    time: entry.time,
    policy: entry.policy,
    entryHash: hash,
    logSeq: r.data.seq,
    logHash: r.data.logHash,
    entry,
  }
}

/**
 * Verify one stream's span. Returns the verified records and any failures (the caller collects
 * them over all streams and refuses the whole answer if there is one; with allowGaps, admitted
 * gaps come back as `warnings`).
 */
export function verifyStreamSpan(span: StreamSpan, proofs: readonly unknown[], check: SpanCheck): { stream: VerifiedStream; failures: RetrievalFailure[]; warnings: RetrievalFailure[] } {
  const failures: RetrievalFailure[] = []
  const warnings: RetrievalFailure[] = []
  const s = span.stream
  const { query } = check
  if (query.patient !== null && span.patient !== query.patient) failures.push({ kind: 'MALFORMED', stream: s, message: `stream ${s} is patient ${span.patient}'s, not ${query.patient}'s` })
  if (span.firstSeq > span.lastSeq || span.lastSeq > span.headSeq) failures.push({ kind: 'MALFORMED', stream: s, message: `stream ${s}: span ${span.firstSeq}…${span.lastSeq} (newest ${span.headSeq}) is not a span` })
  const records: VerifiedRecord[] = []
  const tombstones: VerifiedTombstone[] = []
  // seq → the batch's stream link: what it names as prev, and the commitment seq + 1 must name
  const links = new Map<number, { id: number; prev: string | null; commitment: string }>()
  let lastSeq = -1
  const key = check.head.chameleonKey
  // Evidence v2: a record a redaction changed travels with its entry (`redaction`); the others
  // (`redaction: null`, or v1) are checked as sealed. The block's own signature is not checked
  // again per record: its hash must be the chain's block at that height (below), linked by prev
  // hashes to the head whose signature verifyPlan checked. The chameleon openings of the span are
  // checked as one batch, page by page (clients/retrieval-work.ts checkProofPage, possibly on a
  // work thread); a redacted record's own result there is not used: it is judged by its entry.
  const redactionOf = (p: unknown): unknown => (check.policies ? ((p as { redaction?: unknown } | null)?.redaction ?? null) : null)
  const checked = check.checked ?? checkProofPage(proofs, key)
  if (checked.length !== proofs.length) throw new RangeError(`${checked.length} proof checks for ${proofs.length} proofs`)
  for (const [i, proof] of proofs.entries()) {
    const p = proof as { record?: { id?: unknown; seq?: unknown; stream?: unknown; manifest?: unknown }; block?: { hash?: unknown } }
    const seq = typeof p.record?.seq === 'number' ? p.record.seq : -1
    const redactionJson = redactionOf(proof)
    let redaction: VerifiedRedaction | null = null
    let v: ReturnType<typeof verifyRedactedRecordProof> | ProofVerification
    // The committed log (committedRedactionLog) says which records were redacted: each must come
    // with its newest entry, and an entry served must be that one (docs/security.md §Verified retrieval).
    const logged = check.log?.get(typeof p.record?.id === 'number' ? p.record.id : -1)
    if (redactionJson !== null) {
      const id = typeof p.record?.id === 'number' ? p.record.id : -1
      try {
        redaction = checkEntry(redactionJson, id, check.policies!)
      } catch (e) {
        failures.push({ kind: 'REDACTION', stream: s, seq, recordId: id, message: `record ${id} (${s}#${seq}): ${(e as Error).message}` })
        continue
      }
      const served = redactionJson as { seq: number; hash: string; logHash: string }
      const stale = check.log && (!logged ? 'it is not in the redaction log the head commits' : served.hash !== logged.hash || served.seq !== logged.seq || served.logHash !== logged.logHash ? `its newest entry in the redaction log the head commits is entry ${logged.seq} (request ${logged.requestId})` : null)
      if (stale) {
        failures.push({ kind: 'REDACTION', stream: s, seq, recordId: id, message: `record ${id} (${s}#${seq}) is served with redaction log entry ${served.seq} (request ${redaction.requestId}), but ${stale}: an older or another entry` })
        continue
      }
      const entry = redaction.entry
      v = verifyRedactedRecordProof(proof, (row) => redactedRowProblems(row, entry, key), { chameleonPublicKey: key })
    } else v = checked[i]!.verification
    if (!v.ok) {
      // A record changed under its unchanged chameleon hash (the opening still opens it: only a
      // trapdoor holder could do that) and served without a redaction log entry: a hidden entry.
      const kinds = new Set(v.failures.map((f) => f.kind))
      if (redaction === null && !kinds.has('RECORD_OPENING') && [...kinds].every((k) => k === 'MANIFEST_SIGNATURE' || k === 'RECORD_CONTENT')) {
        failures.push({ kind: 'REDACTION', stream: s, seq, recordId: v.recordId!, message: `record ${v.recordId} (${s}#${seq}) was changed under its unchanged chameleon hash (its opening verifies, its content is not what the gateway signed) and the cloud serves no redaction log entry for it: a hidden redaction${logged ? ` (entry ${logged.seq} of the log the head commits, request ${logged.requestId})` : ''}` })
        continue
      }
      for (const f of v.failures) failures.push({ kind: redaction ? 'REDACTION' : 'ALTERED', stream: s, seq, ...(f.recordId !== undefined ? { recordId: f.recordId } : {}), ...(f.height !== undefined ? { height: f.height } : {}), message: `${f.kind}: ${f.message}${redaction ? ` (redaction request ${redaction.requestId})` : ''}` })
      continue
    }
    if (redaction === null && logged) {
      // Its content and opening verify as sealed: the PRE-redaction form (the old row still opens
      // the unchanged chameleon hash), which only the committed log gives away.
      failures.push({ kind: 'REDACTION', stream: s, seq, recordId: v.recordId!, message: `record ${v.recordId} (${s}#${seq}): the redaction log the head commits names it (entry ${logged.seq}, request ${logged.requestId}, ${logged.action}), but the cloud serves it without that entry: a hidden redaction (the record is served in its pre-redaction form)` })
      // not `continue`: it holds its place in the stream (no OMITTED beside this failure)
    }
    const height = v.height!
    if (check.hashes.get(height) !== p.block?.hash) {
      failures.push({ kind: 'ALTERED', stream: s, seq, recordId: v.recordId!, height, message: `record ${v.recordId}'s block ${height} (${String(p.block?.hash).slice(0, 16)}…) is not the block ${height} of the chain ending at the head` })
      continue
    }
    if (redaction !== null) {
      // The row verified against its entry; its content (not the JSON beside it) says what it is now.
      const row = (v as ReturnType<typeof verifyRedactedRecordProof>).row!
      if (row.stream !== s) {
        failures.push({ kind: 'MALFORMED', stream: s, seq, recordId: row.id, message: `record ${row.id} belongs to stream ${row.stream}, listed under ${s}` })
        continue
      }
      if (seq <= lastSeq) failures.push({ kind: 'REORDERED', stream: s, seq, recordId: row.id, message: `stream ${s}: seq ${seq} (record ${row.id}) is listed after seq ${lastSeq}; a stream's batches come in seq order` })
      lastSeq = Math.max(lastSeq, seq)
      if (redaction.action === 'delete') {
        const t = decodeTombstone(row.content)!
        links.set(seq, { id: row.id, prev: t.prev, commitment: t.commitment })
        tombstones.push({ id: row.id, seq, height, stream: s, redaction })
      } else {
        const manifest = decodeRecordContent(row.content).manifest
        // The corrected batch keeps its prev; seq + 1 still names the ORIGINAL manifest's
        // commitment, which the row keeps (content.ts): the link the cloud states for it.
        links.set(seq, { id: row.id, prev: manifest.prev, commitment: row.manifestCommitment })
        records.push({ id: row.id, seq, height, manifest, matches: batchMatches(query, manifest), redaction })
      }
      continue
    }
    // The manifest is the one the content holds — the content the chameleon opening and the gateway
    // signature cover — never merely the JSON beside it: verifyRecordProofs checked the content's
    // manifest against the record's manifestCommitment, so the JSON manifest must hash to it too
    // (SHA-256 over its canonical encoding: the same bytes, without decoding the content again).
    const { manifest, commitment } = checked[i]!
    if (!manifest || commitment !== (p.record as { manifestCommitment: string }).manifestCommitment) {
      failures.push({ kind: 'ALTERED', stream: s, seq, recordId: v.recordId!, message: `record ${v.recordId}: the manifest shown beside the record is not the one its signed content holds` })
      continue
    }
    links.set(seq, { id: v.recordId!, prev: manifest.prev, commitment: commitment! })
    if (manifest.stream !== s) {
      failures.push({ kind: 'MALFORMED', stream: s, seq, recordId: v.recordId!, message: `record ${v.recordId} belongs to stream ${manifest.stream}, listed under ${s}` })
      continue
    }
    if (seq <= lastSeq) failures.push({ kind: 'REORDERED', stream: s, seq, recordId: v.recordId!, message: `stream ${s}: seq ${seq} (record ${v.recordId}) is listed after seq ${lastSeq}; a stream's batches come in seq order` })
    lastSeq = Math.max(lastSeq, seq)
    records.push({ id: v.recordId!, seq, height, manifest, matches: batchMatches(query, manifest), redaction: null })
  }
  // Completeness: every seq of the span (a tombstone holds its deleted batch's place), linked to its predecessor.
  const bySeq = new Map(records.map((r) => [r.seq, r]))
  const admitted = (seq: number): boolean => span.gaps.some(([a, b]) => seq >= a && seq <= b)
  for (let seq = span.firstSeq; seq <= span.lastSeq; seq++) {
    const r = links.get(seq)
    if (!r) {
      if (!admitted(seq)) failures.push({ kind: 'OMITTED', stream: s, seq, message: `stream ${s} (device ${span.device}): batch seq ${seq} is missing from the answer, and the cloud admits no gap there` })
      continue
    }
    const before = links.get(seq - 1)
    if (before && r.prev !== before.commitment) {
      failures.push({ kind: 'ALTERED', stream: s, seq, recordId: r.id, message: `stream ${s}: batch seq ${seq} (record ${r.id}) does not link to the batch seq ${seq - 1} given (record ${before.id})` })
    }
  }
  // A deleted boundary batch no longer says when it was sealed, so it proves no boundary.
  const deleted = new Set(tombstones.map((t) => t.seq))
  if (span.firstSeq > 0 && deleted.has(span.firstSeq)) failures.push({ kind: 'BOUNDARY', stream: s, seq: span.firstSeq, message: `stream ${s}: the span starts at seq ${span.firstSeq}, a deleted batch (tombstone) whose sealing time is gone, so it proves no front boundary` })
  if (deleted.has(span.lastSeq) && span.lastSeq !== span.headSeq) failures.push({ kind: 'BOUNDARY', stream: s, seq: span.lastSeq, message: `stream ${s}: the span ends at seq ${span.lastSeq}, a deleted batch (tombstone) whose sealing time is gone, so it proves no back boundary` })
  for (const [a, b] of span.gaps) {
    const gap: RetrievalFailure = { kind: 'GAP', stream: s, seq: a, message: `stream ${s} (device ${span.device}): the cloud does not hold batches ${a}…${b} (not received from the gateway)` }
    if (check.allowGaps) warnings.push(gap)
    else failures.push(gap)
  }
  // Boundaries.
  const first = bySeq.get(span.firstSeq)
  if (first && span.firstSeq > 0 && !(first.manifest.sealedAt < query.from - query.skew)) {
    failures.push({ kind: 'BOUNDARY', stream: s, seq: span.firstSeq, message: `stream ${s}: the span starts at seq ${span.firstSeq}, sealed ${new Date(first.manifest.sealedAt).toISOString()} — not before from − skew, so earlier batches could hold readings of the range` })
  }
  const last = bySeq.get(span.lastSeq)
  let tail: 'boundary' | 'head' = 'head'
  if (last && last.manifest.sealedAt > query.to + query.lateness) tail = 'boundary'
  else if (span.lastSeq !== span.headSeq && !deleted.has(span.lastSeq)) {
    failures.push({ kind: 'BOUNDARY', stream: s, seq: span.lastSeq, message: `stream ${s}: the span ends at seq ${span.lastSeq}, which is neither sealed after to + lateness nor the stream's newest batch (${span.headSeq})` })
  }
  for (let i = 1; i < records.length; i++) {
    if (records[i]!.manifest.sealedAt < records[i - 1]!.manifest.sealedAt) {
      warnings.push({ kind: 'BOUNDARY', stream: s, seq: records[i]!.seq, message: `stream ${s}: batch seq ${records[i]!.seq} was sealed before seq ${records[i - 1]!.seq} (the gateway clock went back): time boundaries are approximate` })
    }
  }
  return { stream: { span, records, tombstones, tail }, failures, warnings }
}
