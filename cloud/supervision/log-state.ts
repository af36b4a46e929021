/**
 * The redaction log's state as a v2 block commits to it (cloud/chain/block.ts): the number of
 * entries and the head, the newest entry's log_hash. Read by the sealer (cloud/chain/store.ts),
 * which refuses to seal a log that does not extend the last block's state.
 */
import type Database from 'better-sqlite3'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, concatBytes } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../../shared/errors.ts'
import { EMPTY_REDACTION_STATE, type BlockHeader, type RedactionState } from '../chain/block.ts'

type Conn = Database.Database

export const hasRedactionLog = (conn: Conn): boolean => conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'redaction_log'").get() !== undefined

/** The log as stored now; the empty state when there is none (a chain without supervision, or PostgreSQL). */
export function redactionLogState(conn: Conn): RedactionState {
  if (!hasRedactionLog(conn)) return EMPTY_REDACTION_STATE
  const r = conn.prepare('SELECT (SELECT count(*) FROM redaction_log) AS n, (SELECT log_hash FROM redaction_log ORDER BY seq DESC LIMIT 1) AS head').get() as { n: number; head: Uint8Array | null }
  return r.n === 0 || r.head === null ? EMPTY_REDACTION_STATE : { count: r.n, head: bytesToHex(new Uint8Array(r.head)) }
}

/** The stored log_hash after the first `count` entries (in seq order); null when the log is shorter. */
export function redactionLogHeadAt(conn: Conn, count: number): string | null {
  if (count === 0) return EMPTY_REDACTION_STATE.head
  if (!hasRedactionLog(conn)) return null
  const r = conn.prepare('SELECT log_hash FROM redaction_log ORDER BY seq LIMIT 1 OFFSET ?').pluck().get(count - 1) as Uint8Array | undefined
  return r === undefined ? null : bytesToHex(new Uint8Array(r))
}

/** The state a block committed to: a v1 block (before the log was committed) commits to nothing. */
export const committedState = (header: BlockHeader | null | undefined): RedactionState | null => (header && header.v === 2 ? header.redactions : null)

/**
 * Whether the log moved since the last block, for the next block to commit it: refuses
 * (VERIFICATION_FAILED, REDACTION_LOG) a stored log that does not extend the state the last v2
 * block committed to (`at` = the stored log_hash after committed.count entries), i.e. an entry
 * removed or rewritten. Both sealers use it (cloud/chain/store.ts, cloud/store/pg/chain-store.ts).
 */
export function logMoved(lastHeight: number | null, committed: RedactionState | null, log: RedactionState, at: string | null): boolean {
  if (!committed) return log.count > 0
  if (log.count < committed.count || at !== committed.head) {
    throw new CareLedgerError(
      'VERIFICATION_FAILED',
      `refusing to seal: block ${lastHeight} committed the redaction log at ${committed.count} entries (head ${committed.head}), the stored log ${log.count < committed.count ? `holds only ${log.count}` : `reaches ${at} there`}`,
      { reason: 'REDACTION_LOG', height: lastHeight, committed, stored: log },
    )
  }
  return log.count !== committed.count
}

/** The log's hash chain: log_hash = SHA-256(previous log_hash, or 32 zero bytes for the first ‖ entry hash). */
export const nextLogHash = (prev: Uint8Array | null, entryHash: Uint8Array): Uint8Array => sha256(concatBytes(prev ?? new Uint8Array(32), entryHash))
