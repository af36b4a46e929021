/**
 * The redaction log entry: what the chain records, for ever, when a record is corrected or deleted.
 * It is committed by a PLAIN hash (SHA-256 over its canonical CBOR), never by a chameleon hash, so
 * no trapdoor, whole or shared, can ever change it. docs/crypto.md §Redaction log is normative.
 *
 *   { v: 1, policy, requestId, record, action, oldContent, newContent, reason, requester,
 *     approvals: [{ regulator, decision: "approve", comment, signature }], signers, opening, time }
 *
 *   approvals  the EIP-712 approvals (shared/protocol/approval.ts) that authorised it: anyone
 *              holding the policy re-verifies each one and counts k distinct regulators
 *   signers    the policy indices of the regulators whose FROST signature shares made the new
 *              opening (each of them must also have approved)
 *   opening    the record's new chameleon opening, exactly as stored (hex)
 *   time       when the cloud applied it (ms since the epoch, UTC)
 *
 *   entry hash = SHA-256("careledger/v1/redaction-log-entry" ‖ 0x00 ‖ canonical CBOR(entry))
 *
 * Version 2 adds the requester's signature (shared/protocol/supervision-request.ts):
 *
 *   { v: 2, …every field of v1…, request: { newManifest, nonce, issuedAt, requester, signature } }
 *
 *   request    the requester's EIP-712 signature over the request; its digest IS requestId, and it
 *              recovers to request.requester. `requester` (v1's field) stays the cloud's name for
 *              the token that filed it. Entries of version 1 (requests from before requester
 *              signatures) stay valid and verify as before.
 */
import { z } from 'zod'
import { bytesToHex } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../errors.ts'
import { sha256 } from '@noble/hashes/sha2.js'
import { canonicalDigest, decodeCanonical, domainSeparated, encodeCanonical } from '../encoding/canonical.ts'
import { MAX_COMMENT, RedactionSubjectSchema, requireApproval, type RedactionSubject, type VerifiedApproval } from './approval.ts'
import { epochMs, evmAddress, hex, MAX_REGULATORS, schemaError, supervisoryPolicyId, type SupervisoryPolicy } from './supervisory-policy.ts'
import { RequesterSignatureSchema, verifyRequesterSignature, type RequesterSignature } from './supervision-request.ts'

/** The version new entries are written in (2: with the requester's signature); 1 is still read. */
export const REDACTION_LOG_VERSION = 2
export const REDACTION_LOG_DOMAIN = 'redaction-log-entry'
export const MAX_REASON = 2000

const entryFields = {
  policy: hex(32),
  ...RedactionSubjectSchema.shape,
  reason: z.string().min(1).max(MAX_REASON),
  /** Who asked: the requester's identity as the cloud authenticated it. */
  requester: z.string().min(1).max(200),
  approvals: z
    .array(
      z.strictObject({
        regulator: evmAddress,
        decision: z.literal('approve'),
        comment: z.string().max(MAX_COMMENT),
        signature: z.string().regex(/^0x[0-9a-f]{130}$/, 'must be a 0x-prefixed lower-case 65-byte signature'),
      }),
    )
    .min(1)
    .max(MAX_REGULATORS),
  signers: z.array(z.number().int().min(1).max(MAX_REGULATORS)).min(1).max(MAX_REGULATORS),
  opening: hex(64),
  time: epochMs,
}
const sortedSigners = (e: { signers: number[] }): boolean => e.signers.every((s, i) => i === 0 || e.signers[i - 1]! < s)
const EntryV1 = z.strictObject({ v: z.literal(1), ...entryFields }).refine(sortedSigners, { message: 'signers must be sorted and unique', path: ['signers'] })
const EntryV2 = z.strictObject({ v: z.literal(2), ...entryFields, request: RequesterSignatureSchema }).refine(sortedSigners, { message: 'signers must be sorted and unique', path: ['signers'] })
const EntrySchema = z.union([EntryV1, EntryV2])

export type RedactionLogEntry = z.infer<typeof EntrySchema>

/**
 * Validate an untrusted entry. The result is deeply frozen and remembered, so passing it on (to
 * redactionLogEntryHash, verifyRedactionLogEntry: `chain verify` does both for every entry) does
 * not run the schema again; any other object, a spread copy included, is checked afresh.
 */
export function parseRedactionLogEntry(value: unknown): RedactionLogEntry {
  if (typeof value === 'object' && value !== null && parsedEntries.has(value)) return value as RedactionLogEntry
  const r = EntrySchema.safeParse(value)
  if (!r.success) schemaError('redaction log entry', r.error)
  const entry = deepFreeze(r.data)
  parsedEntries.add(entry)
  return entry
}
const parsedEntries = new WeakSet<object>()
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

/** Assemble the entry when the cloud applies a redaction; the approvals are those requireApproval returned. */
export function buildRedactionLogEntry(fields: {
  policy: SupervisoryPolicy
  subject: RedactionSubject
  reason: string
  requester: string
  approvals: readonly VerifiedApproval[]
  signers: readonly number[]
  opening: Uint8Array
  time: number
  /** The requester's signature (a signed request: version 2); without, a version-1 entry (a request filed before signatures). */
  request?: RequesterSignature | null
}): RedactionLogEntry {
  const entry = parseRedactionLogEntry({
    v: fields.request ? 2 : 1,
    policy: bytesToHex(supervisoryPolicyId(fields.policy)),
    ...fields.subject,
    reason: fields.reason,
    requester: fields.requester,
    approvals: (fields.approvals ?? []).map((a) => ({ regulator: a.regulator.address, decision: a.decision, comment: a.comment, signature: a.signature.toLowerCase() })),
    signers: [...(fields.signers ?? [])].sort((a, b) => a - b),
    opening: fields.opening instanceof Uint8Array ? bytesToHex(fields.opening) : fields.opening,
    time: fields.time,
    ...(fields.request ? { request: fields.request } : {}),
  })
  verifyRedactionLogEntry(fields.policy, entry)
  return entry
}

/**
 * Re-check an entry as an auditor or `chain verify` does: it was made under this policy, its
 * approvals verify and count k distinct regulators of the policy for exactly this request, record
 * and content, and every FROST signer is one of the approvers; version 2: the requester's signature
 * recovers to its named requester and its digest is the entry's request id. Returns the approvers.
 */
export function verifyRedactionLogEntry(policy: SupervisoryPolicy, value: unknown): readonly VerifiedApproval[] {
  const e = parseRedactionLogEntry(value)
  const policyId = bytesToHex(supervisoryPolicyId(policy))
  if (e.policy !== policyId) {
    throw new CareLedgerError('VERIFICATION_FAILED', `redaction log entry for request ${e.requestId} was made under policy ${e.policy}, not ${policyId}`, { reason: 'WRONG_POLICY', policy: e.policy })
  }
  const subject: RedactionSubject = { requestId: e.requestId, record: e.record, action: e.action, oldContent: e.oldContent, newContent: e.newContent }
  if (e.v === 2) verifyRequesterSignature(policy, e, e.request, { requestId: e.requestId })
  const approvers = requireApproval(
    policy,
    subject,
    e.approvals.map((a) => ({ ...subject, policy: e.policy, regulator: a.regulator, decision: a.decision, comment: a.comment, signature: a.signature })),
  )
  const approving = new Set(approvers.map((a) => a.regulator.index))
  const strangers = e.signers.filter((s) => !approving.has(s))
  if (strangers.length > 0) {
    throw new CareLedgerError('VERIFICATION_FAILED', `redaction log entry for request ${e.requestId}: regulator${strangers.length > 1 ? 's' : ''} ${strangers.join(', ')} signed the opening without approving`, {
      reason: 'SIGNER_DID_NOT_APPROVE',
      signers: strangers,
    })
  }
  const needed = policy.keyGeneration === 'single' ? 1 : policy.threshold
  if (e.signers.length < needed) {
    throw new CareLedgerError('VERIFICATION_FAILED', `redaction log entry for request ${e.requestId}: ${e.signers.length} signers made the opening, the policy needs ${needed}`, { reason: 'TOO_FEW_SIGNERS' })
  }
  return approvers
}

export const encodeRedactionLogEntry = (entry: RedactionLogEntry): Uint8Array => encodeCanonical(parseRedactionLogEntry(entry))

export const decodeRedactionLogEntry = (bytes: Uint8Array): RedactionLogEntry => parseRedactionLogEntry(decodeCanonical(bytes))

/**
 * decodeRedactionLogEntry and the entry's hash, from the stored bytes without re-encoding them:
 * decodeCanonical accepts only the deterministic encoding of what it returns, and the schema is
 * strict and transforms nothing, so the bytes ARE encodeCanonical(entry) (what `chain verify`
 * reads for every entry; test/supervision/approval.test.ts compares with redactionLogEntryHash).
 */
export function decodeRedactionLogEntryWithHash(bytes: Uint8Array): { entry: RedactionLogEntry; hash: Uint8Array } {
  const entry = decodeRedactionLogEntry(bytes)
  return { entry, hash: sha256(domainSeparated(REDACTION_LOG_DOMAIN, bytes)) }
}

/** The plain hash that commits the entry: 32 bytes. */
export const redactionLogEntryHash = (entry: RedactionLogEntry): Uint8Array => canonicalDigest(REDACTION_LOG_DOMAIN, parseRedactionLogEntry(entry))
