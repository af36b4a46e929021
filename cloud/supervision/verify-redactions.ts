/**
 * `chain verify`'s checks of the supervision record (cloud/chain/verify.ts calls them): the
 * redaction log and every row it changed. A row named by the log is checked HERE instead of by the
 * plain record checks (its gateway signature no longer covers the new manifest: the k approvals
 * stand in for it); anything else about the chain is checked as always.
 *
 *   REDACTION_LOG  an entry that does not hash to its stored hash, a broken log_hash link, an entry
 *                  not made under a known policy for this chameleon key, or without k valid
 *                  approvals of that policy's regulators, or naming another record than its row;
 *                  version 2: a requester signature that does not recover to its requester or
 *                  whose digest is not the request id
 *   REDACTION      a changed row that is not exactly what its newest entry made it (v2 corrections:
 *                  with the manifest the requester signed)
 *
 * Split in two: planRedactionChecks walks the log in order (links, hashes, policies, content
 * transitions: cheap and sequential) and returns the costly, independent checks as jobs — each
 * entry's k EIP-712 approvals, each redacted row's opening and content — which runRedactionJobs
 * does a chunk at a time; `chain verify` runs them on its calling thread between yields, beside
 * the workers' record chunks (cloud/chain/verify.ts).
 */
import type Database from 'better-sqlite3'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, concatBytes } from '@noble/hashes/utils.js'
import { decodeRedactionLogEntryWithHash, verifyRedactionLogEntry, type RedactionLogEntry } from '../../shared/protocol/redaction-log.ts'
import { parseSupervisoryPolicy, supervisoryPolicyId, type SupervisoryPolicy } from '../../shared/protocol/supervisory-policy.ts'
import { manifestCommitment } from '../../shared/protocol/manifest.ts'
import { decodeRecordContent, toRecordRow, type RawRecord, type RecordRow } from '../chain/record.ts'
import { checkRedactedRows } from './content.ts'
import { hasRedactionLog } from './log-state.ts'

type Conn = Database.Database

export interface RedactionFailure {
  readonly kind: 'REDACTION' | 'REDACTION_LOG'
  readonly recordId?: number
  readonly height?: number
  readonly message: string
}

export { hasRedactionLog } from './log-state.ts'

/** The records query of the plain checks, leaving out rows the redaction log changed. */
export const UNREDACTED_ROWS = 'id NOT IN (SELECT record_id FROM redaction_log)'

/** One independent check: an entry's approvals against its policy, or a redacted row against its newest entry. */
export type RedactionJob =
  | { readonly kind: 'entry'; readonly seq: number; readonly recordId: number; readonly policy: SupervisoryPolicy; readonly entry: RedactionLogEntry }
  | { readonly kind: 'row'; readonly recordId: number; readonly row: RecordRow; readonly entry: RedactionLogEntry }

export interface RedactionPlan {
  readonly failures: RedactionFailure[]
  readonly jobs: RedactionJob[]
  readonly rows: number
  readonly entries: number
  /** The log as stored, in seq order: each entry's seq and the log hash recomputed from the entries up to it (hex). */
  readonly log: readonly { readonly seq: number; readonly logHash: string }[]
}

/**
 * Walk the log in order. `trusted`: policies given by the auditor (by default the ones the
 * database holds, which proves self-consistency only, as for signing keys).
 */
export function planRedactionChecks(conn: Conn, trusted?: readonly SupervisoryPolicy[]): RedactionPlan {
  const failures: RedactionFailure[] = []
  const jobs: RedactionJob[] = []
  const log: { seq: number; logHash: string }[] = []
  if (!hasRedactionLog(conn)) return { failures, jobs, rows: 0, entries: 0, log }
  const policies = new Map<string, SupervisoryPolicy>()
  const known = trusted ?? (conn.prepare('SELECT policy FROM supervisory_policies').pluck().all() as string[]).map((p) => parseSupervisoryPolicy(JSON.parse(p)))
  for (const p of known) policies.set(bytesToHex(supervisoryPolicyId(p)), p)

  const newest = new Map<number, { entry: RedactionLogEntry; seq: number }>()
  let prevLog = new Uint8Array(32)
  let running = new Uint8Array(32)
  let entries = 0
  for (const r of conn.prepare('SELECT seq, record_id, request_id, entry, hash, log_hash FROM redaction_log ORDER BY seq').iterate() as IterableIterator<{ seq: number; record_id: number; request_id: string; entry: Uint8Array; hash: Uint8Array; log_hash: Uint8Array }>) {
    entries++
    const fail = (message: string): void => void failures.push({ kind: 'REDACTION_LOG', recordId: r.record_id, message: `redaction log entry ${r.seq}: ${message}` })
    const logHash = sha256(concatBytes(prevLog, new Uint8Array(r.hash)))
    if (bytesToHex(logHash) !== bytesToHex(new Uint8Array(r.log_hash))) fail('its log hash does not follow from the previous entry (an entry was removed, reordered or altered)')
    prevLog = new Uint8Array(r.log_hash)
    log.push({ seq: r.seq, logHash: bytesToHex(logHash) })
    let entry: RedactionLogEntry
    let entryHash: Uint8Array
    try {
      ;({ entry, hash: entryHash } = decodeRedactionLogEntryWithHash(new Uint8Array(r.entry)))
    } catch (e) {
      fail(`does not decode: ${(e as Error).message}`)
      continue
    }

    if (bytesToHex(entryHash) !== bytesToHex(new Uint8Array(r.hash))) fail('the entry does not hash to its stored hash')
    if (entry.record !== r.record_id || entry.requestId !== r.request_id) fail(`names record ${entry.record} / request ${entry.requestId}, its row says ${r.record_id} / ${r.request_id}`)
    const policy = policies.get(entry.policy)
    if (!policy) fail(`made under policy ${entry.policy}, which is not ${trusted ? 'a given' : 'a known'} supervisory policy`)
    else jobs.push({ kind: 'entry', seq: r.seq, recordId: r.record_id, policy, entry })
    const before = newest.get(entry.record)
    if (before && before.entry.newContent !== entry.oldContent) fail(`changes record ${entry.record} from content ${entry.oldContent}, but entry ${before.seq} left it at ${before.entry.newContent}`)
    newest.set(entry.record, { entry, seq: r.seq })
  }
  // A request the cloud marked applied must have its entry: an undone redaction often leaves this trace.
  const requests = conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'supervision_requests'").get() !== undefined
  if (requests) {
    for (const q of conn.prepare("SELECT id, record_id, closed_at FROM supervision_requests WHERE status = 'applied' AND id NOT IN (SELECT request_id FROM redaction_log) ORDER BY closed_at, id LIMIT 100").all() as { id: string; record_id: number; closed_at: number | null }[]) {
      failures.push({ kind: 'REDACTION_LOG', recordId: q.record_id, message: `request ${q.id} (record ${q.record_id}) was applied${q.closed_at === null ? '' : ` at ${new Date(q.closed_at).toISOString()}`}, but the redaction log holds no entry for it: the entry was removed (the redaction undone?)` })
    }
  }

  const get = conn.prepare('SELECT id, stream, seq, gateway_id, content, hash, opening, manifest_commitment, prev_commitment, cid, received_at, block_height FROM records WHERE id = ?')
  for (const [id, { entry }] of newest) {
    const raw = get.get(id) as RawRecord | undefined
    if (!raw) failures.push({ kind: 'REDACTION', recordId: id, message: `record ${id}: the redaction log changed it, but it does not exist` })
    else jobs.push({ kind: 'row', recordId: id, row: toRecordRow(raw), entry })
  }
  return { failures, jobs, rows: newest.size, entries, log }
}

/** The redaction log state one v2 block committed to (cloud/chain/block.ts). */
export interface CommittedLogState {
  readonly height: number
  readonly count: number
  readonly head: string
}

/**
 * The stored log must extend every state a block committed to (REDACTION_LOG, naming the block and
 * the entries): no block commits to more entries than the log holds (entries removed: a redaction
 * deleted or undone), the log hash after `count` entries is the committed head (an entry removed,
 * reordered or rewritten, even with every later log_hash recomputed), and the committed counts
 * never go down from block to block (a rollback sealed over). Entries after the last committed
 * state are not yet committed (`uncommitted`: applied since the last block; each is still checked
 * for its k approvals like every entry). Each distinct committed state is judged once.
 */
export function checkLogCommitments(states: readonly CommittedLogState[], log: RedactionPlan['log']): { failures: RedactionFailure[]; committed: number; uncommitted: number } {
  const failures: RedactionFailure[] = []
  let matched: CommittedLogState | null = null
  let previous: CommittedLogState | null = null
  for (const b of states) {
    const fail = (message: string): void => void failures.push({ kind: 'REDACTION_LOG', height: b.height, message: `block ${b.height}: ${message}` })
    const same = previous !== null && previous.count === b.count && previous.head === b.head
    if (previous && b.count < previous.count) fail(`commits the redaction log at ${b.count} entries, but block ${previous.height} already committed ${previous.count}: the log was rolled back`)
    previous = b
    if (same) continue
    const from = (matched?.count ?? 0) + 1
    if (b.count > log.length) {
      fail(
        `committed the redaction log at ${b.count} entries (head ${b.head}), the log holds only ${log.length}: ` +
          `${b.count - log.length === 1 ? `entry ${b.count} was` : `entries ${log.length + 1}..${b.count} were`} removed (an applied redaction deleted or undone)`,
      )
    } else if (b.count > 0 && log[b.count - 1]!.logHash !== b.head) {
      const at = log[b.count - 1]!
      fail(
        `committed the redaction log at ${b.count} entries with head ${b.head}, the stored log hashes to ${at.logHash} there (entry ${at.seq}): ` +
          `${from === b.count ? `entry ${b.count}` : `an entry among entries ${from}..${b.count}`} was removed, reordered or rewritten`,
      )
    } else if (!matched || b.count >= matched.count) matched = b
  }
  const committed = previous?.count ?? 0
  return { failures, committed: Math.min(committed, log.length), uncommitted: Math.max(0, log.length - committed) }
}

/** Entry jobs (k + 1 secp256k1 recoveries each, ~1 ms) per chunk. */
export const ENTRY_JOBS_PER_CHUNK = 8
/** Row jobs per message: their openings are one batch (chameleon-batch.ts), whose fixed cost wants many rows. */
export const ROW_JOBS_PER_CHUNK = 512

/**
 * A plan's jobs in chunks: redacted rows together (one batch of openings instead of many small
 * ones: a batch of 4 cost ~1 ms a row, a batch of hundreds ~20 µs), entries a few at a time (so
 * the thread checking them yields between chunks; cloud/chain/verify.ts keeps them on the calling
 * thread, where they were parsed).
 */
export function chunkRedactionJobs(jobs: readonly RedactionJob[]): RedactionJob[][] {
  const chunks: RedactionJob[][] = []
  const entries = jobs.filter((j) => j.kind === 'entry')
  const rows = jobs.filter((j) => j.kind === 'row')
  for (let i = 0; i < rows.length; i += ROW_JOBS_PER_CHUNK) chunks.push(rows.slice(i, i + ROW_JOBS_PER_CHUNK))
  for (let i = 0; i < entries.length; i += ENTRY_JOBS_PER_CHUNK) chunks.push(entries.slice(i, i + ENTRY_JOBS_PER_CHUNK))
  return chunks
}

/** The costly checks of a plan; pure (no I/O), so any thread runs them. The rows' openings are checked as a batch. */
export function runRedactionJobs(jobs: readonly RedactionJob[], chameleonPublicKey: Uint8Array): RedactionFailure[] {
  const failures: RedactionFailure[] = []
  const chameleonHex = bytesToHex(chameleonPublicKey)
  const rows: Extract<RedactionJob, { kind: 'row' }>[] = []
  for (const job of jobs) {
    if (job.kind === 'row') {
      rows.push(job)
      continue
    }
    const fail = (message: string): void => void failures.push({ kind: 'REDACTION_LOG', recordId: job.recordId, message: `redaction log entry ${job.seq}: ${message}` })
    if (job.policy.groupKey !== chameleonHex) fail(`policy ${job.entry.policy} holds group key ${job.policy.groupKey}, not this chain's chameleon key`)
    else {
      try {
        verifyRedactionLogEntry(job.policy, job.entry)
      } catch (e) {
        fail((e as Error).message)
      }
    }
  }
  const problems = redactedRowsProblems(rows, chameleonPublicKey)
  rows.forEach(({ row, recordId }, i) => {
    for (const p of problems[i]!) {
      failures.push({ kind: 'REDACTION', recordId, ...(row.blockHeight === null ? {} : { height: row.blockHeight }), message: `record ${recordId}: ${p}` })
    }
  })
  return failures
}

/**
 * Rows a redaction changed, each against its newest entry (the entries' approvals are checked
 * apart): checkRedactedRows (openings as a batch), and for a version-2 correction the manifest the
 * requester signed. Also what a retrieval client checks a redacted record of the evidence with
 * (clients/verify.ts, through redactedRowProblems).
 */
export function redactedRowsProblems(items: readonly { row: RecordRow; entry: RedactionLogEntry }[], chameleonPublicKey: Uint8Array): string[][] {
  const problems = checkRedactedRows(items, chameleonPublicKey)
  items.forEach(({ row, entry }, i) => {
    const found = problems[i]!
    // Version 2: the requester signed the re-sealed manifest; the row must hold exactly that one.
    if (found.length === 0 && entry.v === 2 && entry.action === 'correct') {
      const held = manifestCommitment(decodeRecordContent(row.content).manifest)
      if (held !== entry.request.newManifest) found.push(`its manifest ${held} is not the one the requester ${entry.request.requester} signed (${entry.request.newManifest})`)
    }
  })
  return problems
}

/** One row: redactedRowsProblems of one. */
export const redactedRowProblems = (row: RecordRow, entry: RedactionLogEntry, chameleonPublicKey: Uint8Array): string[] => redactedRowsProblems([{ row, entry }], chameleonPublicKey)[0]!

/** Both halves on the calling thread. */
export function checkRedactions(conn: Conn, chameleonPublicKey: Uint8Array, trusted?: readonly SupervisoryPolicy[]): { failures: RedactionFailure[]; rows: number; entries: number } {
  const plan = planRedactionChecks(conn, trusted)
  return { failures: [...plan.failures, ...runRedactionJobs(plan.jobs, chameleonPublicKey)], rows: plan.rows, entries: plan.entries }
}
