/**
 * How `access read` and `research export` show a verified redaction (clients/verify.ts
 * VerifiedRedaction): the same fields in every output — request id, action, reason, requester,
 * approvers, time, and where the entry sits in the redaction log. Pure.
 */
import type { VerifiedRedaction, VerifiedTombstone } from './verify.ts'
import type { RetrievedBatch } from './retrieve.ts'

/** "Regulator 1 (0xabc…); Regulator 3 (0xdef…)". */
export const approversText = (r: VerifiedRedaction): string => r.approvers.map((a) => `${a.name} (${a.address})`).join('; ')

export interface RedactionSummary {
  readonly record: number
  readonly stream: string
  readonly seq: number
  readonly status: 'corrected' | 'deleted'
  readonly requestId: string
  readonly reason: string
  readonly requester: string
  readonly approvers: VerifiedRedaction['approvers']
  readonly time: string
  readonly policy: string
  readonly log: { readonly seq: number; readonly entryHash: string; readonly logHash: string }
}

function summary(record: number, stream: string, seq: number, r: VerifiedRedaction): RedactionSummary {
  return {
    record,
    stream,
    seq,
    status: r.action === 'delete' ? 'deleted' : 'corrected',
    requestId: r.requestId,
    reason: r.reason,
    requester: r.requester,
    approvers: r.approvers,
    time: new Date(r.time).toISOString(),
    policy: r.policy,
    log: { seq: r.logSeq, entryHash: r.entryHash, logHash: r.logHash },
  }
}

/** The corrected batches of a retrieval. */
export const corrections = (batches: readonly RetrievedBatch[]): RedactionSummary[] =>
  batches.flatMap((b) => (b.redaction ? [summary(b.recordId, b.manifest.stream, b.manifest.seq, b.redaction)] : []))

/** The deleted batches (tombstones) of a retrieval, with the stream's device and patient. */
export const deletions = (tombstones: readonly VerifiedTombstone[], streams: readonly { span: { stream: string; device: string; patient: string } }[]): (RedactionSummary & { device: string; patient: string })[] =>
  tombstones.map((t) => {
    const span = streams.find((s) => s.span.stream === t.stream)?.span
    return { ...summary(t.id, t.stream, t.seq, t.redaction), device: span?.device ?? '', patient: span?.patient ?? '' }
  })

/** One line of a table: what happened to a batch and on whose authority. */
export const redactionLine = (s: RedactionSummary, device: string): string =>
  `record ${s.record} (${device} #${s.seq}): ${s.status} by request ${s.requestId.slice(0, 16)}… at ${s.time}, reason "${s.reason}", requested by ${s.requester}, approved by ${s.approvers.map((a) => `${a.name} (${a.address})`).join('; ')}` +
  (s.status === 'deleted' ? ' — tombstone, no readings' : ' — readings shown corrected (*)')
