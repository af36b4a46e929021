/**
 * Backing up and restoring a SQLite cloud's envelope blocks (docs/operations.md §Cloud backup and
 * restore), with the service running.
 *
 *   backupEnvelopes   the rows of cloud.db's `envelope_blocks` added since the last run, each
 *                     re-hashed, written as block files (blockstore-fs layout, fsynced: the form
 *                     `chain verify --blocks` and a PostgreSQL cloud read) under a backup directory;
 *                     a cursor file there remembers the last row copied, so a run copies only what
 *                     is new — the incremental backup the one-file-a-block store had with rsync.
 *                     A damaged row is not copied (it is named; the scrub repairs it, and a repair
 *                     writes a new row, which the next run copies).
 *   restoreEnvelopes  every record whose block is missing or damaged in the cloud gets the copy a
 *                     backup holds (a directory of block files, or a cloud.db copy), checked against
 *                     the record's CID before it is written; the scrub then finds it intact.
 */
import Database from 'better-sqlite3'
import { existsSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { CareLedgerError } from '../../shared/errors.ts'
import { blockFilePath, FileEnvelopeStore, isBlockOf } from '../service/blockstore.ts'
import { ENVELOPE_MIGRATIONS, hasEnvelopeTable } from '../service/envelope-table.ts'
import { applyMigrations } from '../store/db.ts'
import { ENVELOPE_REFS_SQL, type EnvelopeRef } from './envelope-refs.ts'
import { envelopeChecker } from './verify-envelopes.ts'

/** The cursor file of a backup directory. */
export const BACKUP_CURSOR = 'careledger-envelope-backup.json'

export interface BackupResult {
  /** Blocks written this run. */
  readonly copied: number
  readonly bytes: number
  /** Rows whose bytes do not hash to their CID: not copied. */
  readonly damaged: readonly string[]
  /** The last row id copied (the cursor for the next run). */
  readonly lastRow: number
}

function openLive(dbPath: string): Database.Database {
  if (!existsSync(dbPath)) throw new CareLedgerError('INVALID_ARGUMENT', `no database at ${dbPath} (use --db or --data)`, { path: dbPath })
  const db = new Database(dbPath, { fileMustExist: true })
  db.pragma('busy_timeout = 5000')
  return db
}

/** Copy the envelope rows added since the last run into `dir` as block files. */
export async function backupEnvelopes(dbPath: string, dir: string): Promise<BackupResult> {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true })
  const files = await FileEnvelopeStore.open(dir)
  try {
    if (!hasEnvelopeTable(db)) return { copied: 0, bytes: 0, damaged: [], lastRow: 0 }
    const cursorPath = join(dir, BACKUP_CURSOR)
    let lastRow = existsSync(cursorPath) ? Number((JSON.parse(readFileSync(cursorPath, 'utf8')) as { lastRow?: unknown }).lastRow) : 0
    if (!Number.isSafeInteger(lastRow) || lastRow < 0) throw new CareLedgerError('INVALID_ENCODING', `${cursorPath}: lastRow must be a row id`, { path: cursorPath })
    const page = db.prepare<[number], { id: number; cid: Buffer; bytes: Buffer }>('SELECT id, cid, bytes FROM envelope_blocks WHERE id > ? ORDER BY id LIMIT 256')
    let copied = 0
    let bytes = 0
    const damaged: string[] = []
    for (;;) {
      const rows = page.all(lastRow)
      if (rows.length === 0) break
      for (const r of rows) {
        const cid = CID.decode(r.cid)
        if (!isBlockOf(cid, r.bytes)) damaged.push(cid.toString())
        else {
          await files.put(cid, r.bytes)
          copied++
          bytes += r.bytes.length
        }
      }
      lastRow = rows.at(-1)!.id
      // The cursor moves only past blocks already fsynced in the backup.
      writeFileSync(`${cursorPath}.tmp`, JSON.stringify({ lastRow, at: new Date().toISOString() }))
      renameSync(`${cursorPath}.tmp`, cursorPath)
    }
    return { copied, bytes, damaged, lastRow }
  } finally {
    db.close()
    await files.close()
  }
}

export interface RestoreResult {
  /** Records whose envelope was checked in the cloud. */
  readonly checked: number
  /** Records whose block was missing or damaged and came back from the backup. */
  readonly restored: readonly number[]
  /** Records whose block was missing or damaged and the backup has no good copy of. */
  readonly unavailable: readonly number[]
}

/** A backup's block by CID: a directory of block files, or a cloud.db copy (its envelope table). */
function backupReader(from: string): { get: (cid: CID) => Uint8Array | null; close: () => void } {
  if (!existsSync(from)) throw new CareLedgerError('INVALID_ARGUMENT', `--from ${from}: no such file or directory`, { path: from })
  if (statSync(from).isDirectory()) {
    return {
      get: (cid) => {
        const path = blockFilePath(from, cid)
        return existsSync(path) ? readFileSync(path) : null
      },
      close: () => {},
    }
  }
  const db = new Database(from, { readonly: true, fileMustExist: true })
  if (!hasEnvelopeTable(db)) {
    db.close()
    throw new CareLedgerError('INVALID_ARGUMENT', `--from ${from}: not a block directory, and a database without envelope blocks`, { path: from })
  }
  const get = db.prepare<[Uint8Array], Buffer>('SELECT bytes FROM envelope_blocks WHERE cid = ?').pluck()
  return { get: (cid) => get.get(cid.bytes) ?? null, close: () => db.close() }
}

/**
 * Put the backup's good copy of every missing or damaged block into the cloud's envelope table
 * (`legacyDir`: the cloud's own block files of earlier versions, checked too).
 */
export async function restoreEnvelopes(dbPath: string, from: string, legacyDir: string | null): Promise<RestoreResult> {
  const backup = backupReader(from)
  const db = openLive(dbPath)
  try {
    applyMigrations(db, ENVELOPE_MIGRATIONS)
    const check = envelopeChecker(db, legacyDir)
    const refs = db.prepare<[number, number], EnvelopeRef>(ENVELOPE_REFS_SQL)
    // REPLACE: a new row id, so the next incremental backup copies the restored block too.
    const insert = db.prepare<[Uint8Array, Uint8Array]>('INSERT OR REPLACE INTO envelope_blocks (cid, bytes) VALUES (?, ?)')
    const put = (cid: CID, bytes: Uint8Array): void => void insert.run(cid.bytes, bytes)
    let checked = 0
    const restored: number[] = []
    const unavailable: number[] = []
    for (let after = 0; ; ) {
      const rows = refs.all(after, 256)
      if (rows.length === 0) break
      after = rows.at(-1)!.id
      for (const r of rows) {
        checked++
        const cid = CID.parse(r.cid)
        if ((await check(cid)).state === 'ok') continue
        const copy = backup.get(cid)
        if (copy && isBlockOf(cid, copy)) {
          put(cid, copy)
          restored.push(r.id)
        } else unavailable.push(r.id)
      }
    }
    return { checked, restored, unavailable }
  } finally {
    db.close()
    backup.close()
  }
}
