/**
 * The cloud's SQLite database: one file, WAL, synchronous=FULL (an accepted batch or a sealed
 * block survives power loss), foreign keys on, 16 KiB pages. Each cloud module registers its own named
 * migrations (chain, access, …); `openCloudDb` applies the ones a database has not seen yet,
 * each in its own transaction, and records them in `schema_migrations`.
 */
import Database from 'better-sqlite3'
import { existsSync, mkdirSync } from 'node:fs'
import { ensurePrivateFile } from '../../shared/cli/files.ts'
import { dirname } from 'node:path'

export type CloudDb = Database.Database

/**
 * Page size of a new cloud.db. A bulk append writes ~200 record rows, envelope rows of ~2 KB and
 * index entries spread over 200 streams; with 4 KiB pages each commit wrote twice as many WAL
 * frames (one pwrite, one checksum each), and the append thread spent ~10 % more CPU a record
 * (docs/operations.md §Capacity). A database created before keeps its page size: SQLite changes it
 * only on a VACUUM outside WAL mode.
 */
export const CLOUD_DB_PAGE_SIZE = 16384

export interface Migration {
  /** Unique and stable forever, e.g. "chain/001-records-blocks". Applied in registration order. */
  readonly name: string
  readonly sql: string
}

const registry: Migration[] = []

/** Modules call this at import time with their migrations, oldest first. */
export function registerMigrations(migrations: readonly Migration[]): void {
  for (const m of migrations) {
    if (registry.some((r) => r.name === m.name)) continue
    registry.push(m)
  }
}

export function openCloudDb(path: string, opts: { readonly?: boolean } = {}): CloudDb {
  if (path !== ':memory:' && !opts.readonly) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
    // Tokens' hashes, enrolment secrets' hashes, who reads what: owner-only, also when the data
    // directory already existed (a Docker volume) and whatever the umask. SQLite gives -wal and
    // -shm the database file's mode; existing ones are narrowed too.
    for (const f of [path, `${path}-wal`, `${path}-shm`]) if (f === path || existsSync(f)) ensurePrivateFile(f)
  }
  const db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false })
  db.pragma('busy_timeout = 5000')
  if (opts.readonly) return db
  db.pragma(`page_size = ${CLOUD_DB_PAGE_SIZE}`) // takes effect only on a new, empty file
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.pragma('foreign_keys = ON')
  applyMigrations(db, registry)
  return db
}

/** Apply the migrations a database has not seen, each in its own transaction (also for a module imported after the database was opened). */
export function applyMigrations(db: CloudDb, migrations: readonly Migration[]): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)')
  const applied = new Set((db.prepare('SELECT name FROM schema_migrations').all() as { name: string }[]).map((r) => r.name))
  const record = db.prepare('INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)')
  for (const m of migrations) {
    if (applied.has(m.name)) continue
    db.transaction(() => {
      db.exec(m.sql)
      record.run(m.name, Date.now())
    }).immediate()
  }
}
