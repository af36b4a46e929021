/**
 * cloud/store/db.ts: a new cloud.db gets 16 KiB pages (CLOUD_DB_PAGE_SIZE), WAL and
 * synchronous=FULL; a cloud.db created with SQLite's default 4 KiB pages (before the change) opens
 * with its pages, rows and migrations as they were, and takes new rows.
 */
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { CLOUD_DB_PAGE_SIZE, openCloudDb } from '../../cloud/store/db.ts'
import '../../cloud/chain/store.ts' // registers the chain's migrations
import { tempDir } from './chain-helpers.ts'

const tmp = tempDir('cloud-db')
afterAll(() => tmp.cleanup())
const simple = { simple: true } as const

it('creates a new database with 16 KiB pages, in WAL mode, fsyncing every commit', () => {
  const db = openCloudDb(join(tmp.dir, 'new.db'))
  try {
    expect(CLOUD_DB_PAGE_SIZE).toBe(16384)
    expect(db.pragma('page_size', simple)).toBe(16384)
    expect(db.pragma('journal_mode', simple)).toBe('wal')
    expect(db.pragma('synchronous', simple)).toBe(2) // FULL
  } finally {
    db.close()
  }
  const again = openCloudDb(join(tmp.dir, 'new.db'))
  expect(again.pragma('page_size', simple)).toBe(16384)
  again.close()
})

it('keeps the 4 KiB pages and the rows of a database created before, and goes on writing to it', () => {
  const path = join(tmp.dir, 'old.db')
  const old = new Database(path)
  old.pragma('journal_mode = WAL')
  old.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB NOT NULL)')
  const body = Buffer.alloc(10_000, 7) // a row over several 4 KiB pages
  old.prepare('INSERT INTO notes (body) VALUES (?)').run(body)
  old.close()
  const db = openCloudDb(path)
  try {
    expect(db.pragma('page_size', simple)).toBe(4096)
    expect(db.pragma('integrity_check', simple)).toBe('ok')
    expect(db.prepare('SELECT body FROM notes WHERE id = 1').pluck().get()).toEqual(body)
    expect(db.prepare("SELECT count(*) FROM schema_migrations WHERE name = 'chain/001-records-blocks'").pluck().get()).toBe(1)
    expect(db.prepare('SELECT count(*) FROM records').pluck().get()).toBe(0)
    db.prepare('INSERT INTO notes (body) VALUES (?)').run(body)
    expect(db.prepare('SELECT count(*) FROM notes').pluck().get()).toBe(2)
  } finally {
    db.close()
  }
})
