/**
 * The envelope stage of chain verification, and the blockstore scrub (docs/operations.md §Blockstore
 * scrub): every record's envelope block is read from the blockstore and re-hashed against the CID
 * the record commits to (CIDv1 raw, sha2-256). The chain's own checks cover the records' content,
 * not the ciphertext they point at — a flipped byte in a block file is found only here.
 *
 *   ENVELOPE_MISSING   the record's block is not in the blockstore
 *   ENVELOPE_CORRUPT   the block's bytes do not hash to its CID (or cannot be read)
 *
 * Reads the record list from the caller's snapshot connection (or a backend's pager), and each block
 * through a checker: the SQLite cloud's envelope table, then the block files written before it
 * (`envelopeChecker`), or the service's own store. A few checks are in flight at once, so a long
 * scrub of files never blocks the event loop.
 */
import type Database from 'better-sqlite3'
import { CID } from 'multiformats/cid'
import { checkBlockFile, type BlockCheck } from '../service/blockstore.ts'
import { envelopeRowReader, hasEnvelopeTable } from '../service/envelope-table.ts'
import { ENVELOPE_REFS_SQL, type EnvelopeRef } from './envelope-refs.ts'

export type EnvelopeFailureKind = 'ENVELOPE_MISSING' | 'ENVELOPE_CORRUPT'

export interface EnvelopeFinding {
  readonly kind: EnvelopeFailureKind
  readonly recordId: number
  readonly height?: number
  readonly cid: string
  readonly gatewayId: string
  readonly message: string
}

export interface EnvelopeScan {
  /** Records whose envelope was checked. */
  readonly checked: number
  /** Bytes of the intact blocks read. */
  readonly bytes: number
  readonly findings: readonly EnvelopeFinding[]
  readonly durationMs: number
}

export interface ScanOptions {
  /** Reads in flight (default 4). */
  readonly concurrency?: number
  /** Stop early (the service stopping). */
  readonly signal?: AbortSignal
}

const PAGE = 256

/** Records with an envelope (tombstones have none), id > after, oldest first: a SQLite snapshot's or a backend's (ChainBackend.envelopeRefs). */
export type EnvelopeRefPager = (after: number, limit: number) => readonly EnvelopeRef[] | Promise<readonly EnvelopeRef[]>


/** Re-hashes one envelope block wherever the store keeps it. */
export type EnvelopeChecker = (cid: CID) => BlockCheck | Promise<BlockCheck>

/**
 * The checker for a chain's envelopes: its row in `conn`'s envelope table (a SQLite cloud's since
 * "envelopes/001"; a PostgreSQL chain's, copied into its snapshot), else its file under `blocksDir`
 * (blocks stored as files by earlier versions), else missing.
 */
export function envelopeChecker(conn: Database.Database | null, blocksDir: string | null): EnvelopeChecker {
  const row = conn && hasEnvelopeTable(conn) ? envelopeRowReader(conn) : () => null
  const missing: BlockCheck = { state: 'missing', detail: 'no block' }
  return (cid) => row(cid) ?? (blocksDir ? checkBlockFile(blocksDir, cid) : missing)
}

/** Check the envelope block of every record in `source` (a SQLite connection, or a pager) with `check`. */
export async function scanEnvelopes(source: Database.Database | EnvelopeRefPager, check: EnvelopeChecker, opts: ScanOptions = {}): Promise<EnvelopeScan> {
  const t0 = performance.now()
  const stmt = typeof source === 'function' ? null : source.prepare<[number, number], EnvelopeRef>(ENVELOPE_REFS_SQL)
  const page: EnvelopeRefPager = typeof source === 'function' ? source : (after, limit) => stmt!.all(after, limit)
  const concurrency = Math.max(1, opts.concurrency ?? 4)
  const findings: EnvelopeFinding[] = []
  let checked = 0
  let bytes = 0
  for (let after = 0; ; ) {
    if (opts.signal?.aborted) break
    const rows = await page(after, PAGE)
    if (rows.length === 0) break
    after = rows.at(-1)!.id
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < rows.length) {
        const r = rows[next++]!
        const at = { recordId: r.id, cid: r.cid, gatewayId: r.gateway_id, ...(r.block_height === null ? {} : { height: r.block_height }) }
        let cid: CID
        try {
          cid = CID.parse(r.cid)
        } catch (e) {
          findings.push({ kind: 'ENVELOPE_CORRUPT', ...at, message: `record ${r.id}: its CID ${r.cid} does not parse (${(e as Error).message})` })
          continue
        }
        const c = await check(cid)
        checked++
        if (c.state === 'ok') bytes += c.bytes
        else if (c.state === 'missing') findings.push({ kind: 'ENVELOPE_MISSING', ...at, message: `record ${r.id}: envelope ${r.cid} is missing from the blockstore` })
        else findings.push({ kind: 'ENVELOPE_CORRUPT', ...at, message: `record ${r.id}: envelope ${r.cid} is damaged: ${c.detail}` })
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker))
    // Rows are checked synchronously: let the event loop serve between pages.
    await new Promise((r) => setImmediate(r))
  }
  findings.sort((a, b) => a.recordId - b.recordId)
  return { checked, bytes, findings, durationMs: Math.round((performance.now() - t0) * 10) / 10 }
}
