/**
 * Opening gateway.db: WAL, synchronous=FULL (a commit survives power loss, not only a process
 * crash), busy_timeout (the CLI and the gateway share the file), foreign keys on; then the
 * migrations. At gateway boot a `PRAGMA quick_check` runs first: a corrupt file is renamed aside
 * (never deleted — it may still hold unsynced readings an operator can salvage), a fresh database
 * is started and the event is logged loudly and reported (metric + /healthz).
 */
import { existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs'
import { ensurePrivateFile } from '../../shared/cli/files.ts'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { Logger } from 'pino'
import { migrate } from './migrations.ts'

export const DB_FILE = 'gateway.db'
/** journal_size_limit: the most WAL kept on disk after a checkpoint. */
export const WAL_SIZE_LIMIT = 8 * 1024 * 1024
/** Suffix of a database set aside as corrupt: gateway.db.corrupt-<ISO time>[-wal|-shm]. */
export const CORRUPT_MARK = '.corrupt-'
const SIDE_FILES = ['', '-wal', '-shm', '-journal'] as const

export interface OpenOptions {
  /** Run quick_check and set a corrupt file aside (gateway boot only; the CLI must not rename a live database). */
  readonly integrityCheck?: boolean
  readonly logger?: Logger
  readonly busyTimeoutMs?: number
  /** Open an existing database read-only (no migration, no creation). */
  readonly readonly?: boolean
}

export interface RecoveredCorruption {
  /** Why the file was judged corrupt (quick_check output or the SQLite error). */
  readonly reason: string
  /** Where the corrupt files now are. */
  readonly movedTo: readonly string[]
}

export interface OpenedDatabase {
  readonly db: Database.Database
  readonly path: string
  /** Set when this open found the database corrupt and started a fresh one. */
  readonly recovered: RecoveredCorruption | null
  readonly migrated: { readonly from: number; readonly to: number }
}

/** Apply the connection settings every gateway connection uses. */
export function configureConnection(db: Database.Database, busyTimeoutMs = 5000): void {
  db.pragma(`busy_timeout = ${busyTimeoutMs}`)
  // Must precede the first table of a new database; a no-op on an existing one. Lets the
  // retention code give freed pages back to the file system with PRAGMA incremental_vacuum.
  db.pragma('auto_vacuum = INCREMENTAL')
  const mode = db.pragma('journal_mode = WAL', { simple: true })
  if (mode !== 'wal') throw new Error(`${db.name}: could not switch to WAL journal mode (got ${String(mode)})`)
  // FULL: the WAL is fsynced at every commit, so a PUBACK (sent after the commit) means the
  // reading survives power loss, given storage that honours flushes.
  db.pragma('synchronous = FULL')
  db.pragma('foreign_keys = ON')
  // After a checkpoint the WAL file is cut back to this size (it is otherwise kept at its
  // high-water mark). The WAL normally stays under ~4 MB (auto-checkpoint at 1000 pages).
  db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`)
}

export function openGatewayDb(dataDir: string, opts: OpenOptions = {}): OpenedDatabase {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const path = join(dataDir, DB_FILE)
  let recovered: RecoveredCorruption | null = null
  if (opts.integrityCheck && existsSync(path)) {
    const problem = quickCheck(path)
    if (problem !== null) {
      const movedTo = setAside(path)
      recovered = { reason: problem, movedTo }
      opts.logger?.fatal(
        { event: 'db_corrupt', path, reason: problem, movedTo },
        'DATABASE CORRUPT: the gateway database failed quick_check; it was renamed aside (not deleted) and a fresh database was started. Readings in the old file that were not yet synced are NOT in the new one: salvage them from the renamed file.',
      )
    }
  }
  if (opts.readonly) {
    const db = new Database(path, { readonly: true, fileMustExist: true })
    db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 5000}`)
    const v = db.pragma('user_version', { simple: true }) as number
    return { db, path, recovered, migrated: { from: v, to: v } }
  }
  // Patient ids and secret hashes: owner-only, also for a file an older version, a restore or a
  // permissive umask left wider. SQLite gives -wal/-shm the database file's mode.
  for (const f of [path, `${path}-wal`, `${path}-shm`]) if (f === path || existsSync(f)) ensurePrivateFile(f)
  const db = new Database(path)
  try {
    configureConnection(db, opts.busyTimeoutMs)
    const migrated = migrate(db)
    if (migrated.from !== migrated.to) opts.logger?.info({ event: 'db_migrated', path, ...migrated }, 'database schema migrated')
    return { db, path, recovered, migrated }
  } catch (e) {
    db.close()
    throw e
  }
}

/** null if the database passes quick_check, else a description of the problem. */
export function quickCheck(path: string): string | null {
  let probe: Database.Database | null = null
  try {
    probe = new Database(path, { fileMustExist: true })
    probe.pragma('busy_timeout = 5000')
    const rows = probe.pragma('quick_check') as Array<{ quick_check: string }>
    const lines = rows.map((r) => r.quick_check)
    return lines.length === 1 && lines[0] === 'ok' ? null : lines.slice(0, 5).join('; ')
  } catch (e) {
    const code = (e as { code?: string }).code ?? ''
    if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB')) return `${code}: ${(e as Error).message}`
    throw e
  } finally {
    probe?.close()
  }
}

function setAside(path: string): string[] {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const moved: string[] = []
  for (const suffix of SIDE_FILES) {
    const from = path + suffix
    if (!existsSync(from)) continue
    const to = `${path}${CORRUPT_MARK}${stamp}${suffix}`
    renameSync(from, to)
    moved.push(to)
  }
  return moved
}

/** Corrupt databases set aside in `dataDir` and not yet cleaned up by an operator. */
export function listSetAside(dataDir: string): string[] {
  try {
    return readdirSync(dataDir).filter((f) => f.startsWith(DB_FILE + CORRUPT_MARK) && !/-(wal|shm|journal)$/.test(f))
  } catch {
    return []
  }
}
