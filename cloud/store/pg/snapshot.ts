/**
 * `careledger chain verify --database postgres://…`: one consistent snapshot of the chain's
 * tables (a REPEATABLE READ, READ ONLY transaction) copied into a fresh SQLite file with the same
 * schema, then checked by the very verifier the SQLite chain uses (cloud/chain/verify.ts) — one
 * implementation of the rules, whatever the store. The copy is paged in key order. When the
 * envelopes are checked too, their blocks (migration `ops/005-envelope-blocks`) are copied in the
 * same snapshot, so a redaction committed meanwhile cannot make a block look missing; that needs
 * temporary space for all the ciphertext.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { openCloudDb } from '../db.ts'
import '../../chain/store.ts' // registers the chain's SQLite migrations
import '../../supervision/schema.ts' // …and the supervision tables'
import '../../service/envelope-table.ts' // …and the envelope table (filled only when the envelopes are checked)
import { verifyChain, type VerificationReport, type VerifyOptions } from '../../chain/verify.ts'

const PAGE = 5000
const SUPERVISION_TABLES: readonly { name: string; columns: string; order: string }[] = [
  { name: 'supervisory_policies', columns: 'id, policy, set_at', order: 'added' },
  {
    name: 'supervision_requests',
    columns: 'id, policy, record_id, action, reason, requester, old_content, new_content, new_content_digest, old_cid, new_cid, evidence, status, signers, created_at, closed_at, closed_by, requester_signature',
    order: 'created_at, id',
  },
  { name: 'supervision_decisions', columns: 'request_id, regulator, decision, approval, signature, at', order: 'request_id, regulator' },
  { name: 'redaction_log', columns: 'seq, record_id, request_id, entry, hash, log_hash, applied_at', order: 'seq' },
]
const TABLES: readonly { name: string; columns: string; order: string }[] = [
  { name: 'chain_keys', columns: 'kind, key_id, public_key, added_at', order: 'kind, key_id' },
  { name: 'blocks', columns: 'height, header, hash, signature', order: 'height' },
  { name: 'records', columns: 'id, stream, seq, gateway_id, content, hash, opening, manifest_commitment, prev_commitment, cid, received_at, block_height', order: 'id' },
  { name: 'streams', columns: 'stream, gateway_id, device, patient, batches, last_seq, first_batch_at, last_batch_at', order: 'stream' },
  { name: 'stream_gaps', columns: 'stream, from_seq, to_seq', order: 'stream, from_seq' },
  { name: 'equivocations', columns: 'id, kind, stream, seq, record_id, offered_commitment, manifest, signature, gateway_key, detected_at', order: 'id' },
  // What chain verify judges redactions by (cloud/supervision/verify-redactions.ts): policies, applied requests, the log.
  ...SUPERVISION_TABLES,
]

/** Copy the chain at one instant from PostgreSQL into a new SQLite file at `path` (with `envelopes`, the envelope blocks too); returns rows copied per table. */
export async function copyChainToSqlite(url: string, path: string, opts: { envelopes?: boolean } = {}): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: url, types: { getTypeParser: ((oid: number, f?: 'text') => (oid === 20 ? Number : pg.types.getTypeParser(oid, f))) as typeof pg.types.getTypeParser } })
  await client.connect()
  const db = openCloudDb(path)
  const counts: Record<string, number> = {}
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    for (const t of TABLES) {
      const cols = t.columns.split(', ')
      const insert = db.prepare(`INSERT INTO ${t.name} (${t.columns}) VALUES (${cols.map(() => '?').join(', ')})`)
      const many = db.transaction((rows: Record<string, unknown>[]) => {
        for (const r of rows) insert.run(...cols.map((c) => r[c]))
      })
      counts[t.name] = 0
      for (let offset = 0; ; offset += PAGE) {
        const { rows } = await client.query(`SELECT ${t.columns} FROM ${t.name} ORDER BY ${t.order} LIMIT ${PAGE} OFFSET ${offset}`)
        many(rows)
        counts[t.name] = counts[t.name]! + rows.length
        if (rows.length < PAGE) break
      }
    }
    if (opts.envelopes) {
      const insert = db.prepare('INSERT INTO envelope_blocks (cid, bytes) VALUES (?, ?)')
      const many = db.transaction((rows: { cid: Buffer; bytes: Buffer }[]) => {
        for (const r of rows) insert.run(r.cid, r.bytes)
      })
      counts.envelope_blocks = 0
      // Keyset pages (the table is the big one): cid > the last one copied.
      for (let after: Buffer = Buffer.alloc(0); ; ) {
        const { rows } = await client.query<{ cid: Buffer; bytes: Buffer }>(`SELECT cid, bytes FROM envelope_blocks WHERE cid > $1 ORDER BY cid LIMIT ${PAGE}`, [after])
        many(rows)
        counts.envelope_blocks += rows.length
        if (rows.length < PAGE) break
        after = rows.at(-1)!.cid
      }
    }
    await client.query('COMMIT')
    return counts
  } finally {
    db.close()
    await client.end()
  }
}

/**
 * verifyChain over a PostgreSQL chain (through a temporary SQLite snapshot, removed afterwards);
 * `alsoOnSnapshot` runs further checks on the same snapshot first (`chain verify --anchors`).
 */
export async function verifyPgChain(url: string, opts: VerifyOptions, alsoOnSnapshot?: (path: string) => Promise<void>): Promise<VerificationReport> {
  const dir = mkdtempSync(join(tmpdir(), 'careledger-pg-verify-'))
  try {
    const path = join(dir, 'snapshot.db')
    await copyChainToSqlite(url, path, { envelopes: opts.envelopes !== undefined })
    await alsoOnSnapshot?.(path)
    return await verifyChain(path, opts)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
