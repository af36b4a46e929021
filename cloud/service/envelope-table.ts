/**
 * The SQLite cloud's envelope blocks as a table of cloud.db (migration "envelopes/001"), beside the
 * chain that commits to them: one row a block, keyed by the CID's bytes.
 *
 * Why not one file a block any more (issue 14): creating a file, fsyncing it, renaming it and
 * fsyncing its directory cost ≈ 0.35 ms of CPU per upload, a third of the cloud's append cost,
 * and most of its kernel time. A row costs a few µs of WAL writes, and its durability rides on the
 * commit that appends the record (store/riding-commit.ts): the row is committed to the WAL without
 * an fsync, before the record's transaction; that transaction's fsync of the same WAL makes every
 * earlier frame durable with it (SQLite, "Write-Ahead Logging": recovery replays the WAL in order
 * up to the last valid commit). So an acknowledged record never points at a missing envelope, as
 * before; a crash between the two leaves an orphan row (harmless, as an orphan file was: the
 * gateway resends, the put is idempotent).
 *
 * Blocks written before the table (one file each under the blocks directory, blockstore.ts) stay
 * readable: `get`, `has` and `check` fall back to them, `delete` removes both. Nothing is moved.
 *
 * Deleting a redacted record's ciphertext (`delete`) runs with `PRAGMA secure_delete` on, so SQLite
 * overwrites the row's bytes in the database file instead of leaving them in a free page.
 */
import type { CID } from 'multiformats/cid'
import Database from 'better-sqlite3'
import { applyMigrations, registerMigrations, type CloudDb, type Migration } from '../store/db.ts'
import { ridingCommit } from '../store/riding-commit.ts'
import { TurnGroup } from './turn-group.ts'
import { checkBlockBytes, type BlockCheck, type EnvelopeStore, type FileEnvelopeStore } from './blockstore.ts'

export const ENVELOPE_MIGRATIONS: readonly Migration[] = [
  {
    name: 'envelopes/001-envelope-blocks',
    sql: `
      -- Envelope blocks (CIDv1 raw, sha2-256): cid is the CID's binary form. A rowid table (not
      -- WITHOUT ROWID): rows of 1–10 KB belong in a rowid table's leaves, the cid index stays small.
      CREATE TABLE envelope_blocks (
        id INTEGER PRIMARY KEY,
        cid BLOB NOT NULL UNIQUE,
        bytes BLOB NOT NULL
      ) STRICT;
    `,
  },
]

registerMigrations(ENVELOPE_MIGRATIONS)

/** Whether `conn` holds the envelope table (a chain written before it does not). */
export const hasEnvelopeTable = (conn: CloudDb): boolean =>
  conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'envelope_blocks'").get() !== undefined

/** Whether the SQLite database at `path` holds the envelope table (opened read-only). */
export function sqliteHasEnvelopeTable(path: string): boolean {
  const conn = new Database(path, { readonly: true, fileMustExist: true })
  try {
    return hasEnvelopeTable(conn)
  } finally {
    conn.close()
  }
}

/** A block's check against its row: ok, corrupt, or null when the table has no row for it. */
export function checkEnvelopeRow(cid: CID, bytes: Uint8Array | undefined): BlockCheck | null {
  return bytes === undefined ? null : checkBlockBytes(cid, bytes)
}

/** Re-hash a block against the table of `conn` (read-only snapshots too): the reader `chain verify` and the scrub use. */
export function envelopeRowReader(conn: CloudDb): (cid: CID) => BlockCheck | null {
  const get = conn.prepare<[Uint8Array], Buffer>('SELECT bytes FROM envelope_blocks WHERE cid = ?').pluck()
  return (cid) => checkEnvelopeRow(cid, get.get(cid.bytes))
}

export class TableEnvelopeStore implements EnvelopeStore {
  readonly #db: CloudDb
  readonly #legacy: FileEnvelopeStore | null
  readonly #upsert
  readonly #select
  readonly #exists
  readonly #remove
  /** A turn's puts, one transaction, committed to the WAL without an fsync (riding on the record's commit). */
  readonly #puts = new TurnGroup<{ cid: CID; bytes: Uint8Array }>((items) =>
    ridingCommit(this.#db, () =>
      this.#db.transaction(() => {
        for (const p of items) this.#upsert.run(p.cid.bytes, p.bytes)
      })(),
    ),
  )

  /** `legacy`: the blocks directory of the files written before the table, if there is one. */
  constructor(db: CloudDb, legacy: FileEnvelopeStore | null) {
    this.#db = db
    this.#legacy = legacy
    applyMigrations(db, ENVELOPE_MIGRATIONS) // also when cloud.db was opened before this module was imported
    // REPLACE deletes a row already there and inserts a new one, with a new row id: a repaired block
    // is copied again by the next incremental backup (cloud/chain/envelope-backup.ts).
    this.#upsert = db.prepare<[Uint8Array, Uint8Array]>('INSERT OR REPLACE INTO envelope_blocks (cid, bytes) VALUES (?, ?)')
    this.#select = db.prepare<[Uint8Array], Buffer>('SELECT bytes FROM envelope_blocks WHERE cid = ?').pluck()
    this.#exists = db.prepare<[Uint8Array], number>('SELECT 1 FROM envelope_blocks WHERE cid = ?').pluck()
    this.#remove = db.prepare<[Uint8Array]>('DELETE FROM envelope_blocks WHERE cid = ?')
  }

  /**
   * The puts of one turn of the event loop (a bulk upload's items) go into one transaction,
   * committed to the WAL without an fsync: the record's append commits (and fsyncs) after it.
   */
  put(cid: CID, bytes: Uint8Array): Promise<void> {
    return this.#puts.add({ cid, bytes })
  }

  /** A repair: the good copy is committed (fsynced) before this resolves. */
  async replace(cid: CID, bytes: Uint8Array): Promise<void> {
    this.#upsert.run(cid.bytes, bytes)
  }

  async delete(cid: CID): Promise<void> {
    this.#db.pragma('secure_delete = ON')
    try {
      this.#remove.run(cid.bytes)
    } finally {
      this.#db.pragma('secure_delete = OFF')
    }
    await this.#legacy?.delete(cid)
  }

  async check(cid: CID): Promise<BlockCheck> {
    return checkEnvelopeRow(cid, this.#select.get(cid.bytes)) ?? (this.#legacy ? this.#legacy.check(cid) : { state: 'missing', detail: 'no block' })
  }

  async has(cid: CID): Promise<boolean> {
    return this.#exists.get(cid.bytes) !== undefined || (this.#legacy !== null && (await this.#legacy.has(cid)))
  }

  async get(cid: CID): Promise<Uint8Array | null> {
    return this.#select.get(cid.bytes) ?? (this.#legacy ? this.#legacy.get(cid) : null)
  }

  async close(): Promise<void> {
    await this.#puts.flush()
    await this.#legacy?.close()
  }
}
