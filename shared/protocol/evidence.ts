/**
 * Retrieval evidence: what the cloud answers a doctor's read or a researcher's export with, so the
 * client can verify everything before trusting anything (docs/api.md §Retrieval, docs/security.md
 * §Verified retrieval). Shared by the cloud (which builds it) and the clients (CLI and browser),
 * which check it with the chain's own functions (cloud/chain/record-proof.ts verifyRecordProof,
 * cloud/chain/block.ts).
 *
 *   plan     GET /v1/evidence?…          the query, the cloud's keys, the signed head it answers
 *                                        at, and per device stream the seq span [firstSeq, lastSeq]
 *                                        the evidence covers, with the gaps the cloud admits
 *   headers  GET /v1/evidence/headers    canonical block headers, so each record's block links to
 *                                        the head by prev hashes
 *   records  GET /v1/evidence/records    every record of a span (matching or not), each as the
 *                                        record proof of GET /v1/records/:id/proof
 *
 * Completeness, per stream (RFC-style "MUST" for the client):
 *   - every seq of [firstSeq, lastSeq] is present and linked (manifest.prev = commitment of seq−1);
 *   - front: firstSeq = 0, or batch firstSeq was sealed before `from − skew` — readings stamped at
 *     or after `from` reach the gateway no earlier than from − (device clock skew), and a stream's
 *     batches are sealed in order, so nothing before it can hold them;
 *   - back: batch lastSeq was sealed after `to + lateness` (readings arriving later than `lateness`
 *     are outside the export by definition), or lastSeq is the stream's newest batch at the head
 *     (`tail: "head"`: the cloud cannot prove that no newer batch exists).
 * Version 2 (supervision): corrected and deleted records travel with their redaction log entry.
 *   plan     gains `policies`: the supervisory policies (shared/protocol/supervisory-policy.ts) of
 *            this chain's chameleon key, which the entries are checked against (`redactions`, v1's
 *            reserved empty list, is gone)
 *   records  a record a redaction changed carries `redaction`: { seq, entry, hash, prevLogHash,
 *            logHash } — its newest redaction log entry, the entry's plain hash and its link in the
 *            log (logHash = SHA-256(prevLogHash ‖ hash)); every other record carries `redaction: null`
 *   plan     gains `log` (optional): every redaction log entry the head block commits
 *            (`redactions: {count, head}`, cloud/chain/block.ts); the client recomputes the log hash
 *            chain, requires the head's commitment, and requires every record the log names to come
 *            with its newest entry — so a record served in its PRE-redaction form (still a valid
 *            opening of the unchanged chameleon hash) without its entry is caught
 * The client checks each entry as `chain verify` does (verifyRedactionLogEntry: k valid approvals
 * of the policy's regulators; checkRedactedRow: the new content, and the new opening of the
 * UNCHANGED chameleon hash). Version-1 plans (clouds from before supervision) stay readable: a v1
 * answer verifies when nothing in it was redacted.
 */
import { z } from 'zod'
import { VITAL_TYPES, type VitalType } from '../schema/vitals.ts'

/** The version the cloud answers in; clients read 1 and 2 (EvidencePlanSchema). */
export const EVIDENCE_VERSION = 2
/** Readings stamped after `to` may arrive this much later and still belong to the export (default). */
export const DEFAULT_LATENESS_MS = 60 * 60_000
/** A device clock may run this far ahead of the gateway's (the gateway's 5 min limit, plus margin). */
export const DEFAULT_SKEW_MS = 10 * 60_000
/** Pages. */
export const MAX_RECORDS_PAGE = 500
export const MAX_HEADERS_PAGE = 5000
/** The most CIDs one POST /v1/blocks may ask for. */
export const BULK_BLOCKS_MAX = 256

const hex = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`))
const hexBytes = z.string().regex(/^([0-9a-f]{2})+$/)
const uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

export const EvidenceQuerySchema = z.strictObject({
  /** Patient pseudonym, or null for every patient. */
  patient: z.string().regex(/^p-[0-9a-f]{24}$/).nullable(),
  /** Vital types, or null for every type. */
  types: z.array(z.enum(VITAL_TYPES as [VitalType, ...VitalType[]])).min(1).nullable(),
  from: uint,
  to: uint,
  lateness: uint,
  skew: uint,
})
export type EvidenceQuery = z.infer<typeof EvidenceQuerySchema>

export const SignedHeaderSchema = z.strictObject({
  height: uint,
  /** hex canonical CBOR header (cloud/chain/block.ts): what the hash and the signature cover. */
  header: hexBytes,
  hash: hex(32),
  signature: hex(64),
})
export type SignedHeader = z.infer<typeof SignedHeaderSchema>

export const StreamSpanSchema = z.strictObject({
  stream: hex(16),
  gateway: hex(8),
  device: z.string().min(1).max(128),
  patient: z.string().regex(/^p-[0-9a-f]{24}$/),
  firstSeq: uint,
  lastSeq: uint,
  /** The stream's newest seq in a block at the head (the cloud's statement). */
  headSeq: uint,
  /** Seqs of [firstSeq, lastSeq] the cloud does not hold (inclusive ranges). */
  gaps: z.array(z.tuple([uint, uint])),
})
export type StreamSpan = z.infer<typeof StreamSpanSchema>

const planFields = {
  query: EvidenceQuerySchema,
  keys: z.strictObject({ signing: hex(32), chameleon: hex(32) }),
  /** null when the chain has no block yet. */
  head: SignedHeaderSchema.nullable(),
  streams: z.array(StreamSpanSchema),
}
const EvidencePlanV1Schema = z.strictObject({
  v: z.literal(1),
  ...planFields,
  /** Reserved in v1 for redactions; always empty. */
  redactions: z.array(z.unknown()).max(0),
})
const EvidencePlanV2Schema = z.strictObject({
  v: z.literal(2),
  ...planFields,
  /** The supervisory policies of this chain (parsed and checked by the client: parseSupervisoryPolicy). */
  policies: z.array(z.record(z.string(), z.unknown())).max(64),
  /**
   * The redaction log as the head block commits it (header v2 `redactions.count` entries, in seq
   * order; parsed by parseRedactionLogEntry). Optional so that plans from before it still parse; a
   * client then cannot check the log, which fails when the head commits entries (clients/verify.ts
   * committedRedactionLog).
   */
  log: z.array(z.record(z.string(), z.unknown())).optional(),
})
export const EvidencePlanSchema = z.discriminatedUnion('v', [EvidencePlanV1Schema, EvidencePlanV2Schema])
export type EvidencePlan = z.infer<typeof EvidencePlanSchema>

/** v2: what a records page carries beside a record a redaction changed (the entry is parsed by parseRedactionLogEntry). */
export const RecordRedactionSchema = z.strictObject({
  /** The entry's position in the redaction log. */
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  entry: z.record(z.string(), z.unknown()),
  hash: hex(32),
  prevLogHash: hex(32),
  logHash: hex(32),
})
export type RecordRedaction = z.infer<typeof RecordRedactionSchema>

export const HeadersPageSchema = z.strictObject({ headers: z.array(z.strictObject({ height: uint, header: hexBytes })) })
export type HeadersPage = z.infer<typeof HeadersPageSchema>

/** Records pages carry record proofs as GET /v1/records/:id/proof answers them; verifyRecordProof parses each. */
export const RecordsPageSchema = z.strictObject({ records: z.array(z.record(z.string(), z.unknown())), next: uint.nullable() })
export type RecordsPage = z.infer<typeof RecordsPageSchema>

/** Does a batch's metadata match the query (types and reading-time overlap; the patient is its stream's)? */
export function batchMatches(q: Pick<EvidenceQuery, 'types' | 'from' | 'to'>, m: { readonly from: number; readonly to: number; readonly types: readonly string[] }): boolean {
  if (m.to < q.from || m.from > q.to) return false
  return q.types === null || m.types.some((t) => (q.types as readonly string[]).includes(t))
}

/** The query as URL parameters of GET /v1/evidence. */
export function evidenceQueryParams(q: EvidenceQuery): URLSearchParams {
  const p = new URLSearchParams({ from: String(q.from), to: String(q.to), lateness: String(q.lateness), skew: String(q.skew) })
  if (q.patient) p.set('patient', q.patient)
  if (q.types) p.set('type', q.types.join(','))
  return p
}
