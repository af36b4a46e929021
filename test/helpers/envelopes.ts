/**
 * A SQLite cloud's stored envelope blocks, as tests reach them from outside the process: rows of
 * cloud.db's envelope table (cloud/service/envelope-table.ts), else files under `<data>/blocks`
 * (blocks stored before the table). Used to damage, lose and restore blocks while the cloud runs
 * (WAL: a second connection may write beside it).
 */
import Database from 'better-sqlite3'
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { blockFilePath } from '../../cloud/service/blockstore.ts'

const cidOf = (cid: CID | string): CID => (typeof cid === 'string' ? CID.parse(cid) : cid)

function withDb<T>(dataDir: string, f: (db: Database.Database) => T): T {
  const db = new Database(join(dataDir, 'cloud.db'), { fileMustExist: true })
  try {
    db.pragma('busy_timeout = 5000')
    return f(db)
  } finally {
    db.close()
  }
}

export interface StoredEnvelopes {
  /** The stored bytes, or null. */
  read(cid: CID | string): Buffer | null
  /** Overwrite the stored copy (damage it, or put the good bytes back); a row when the table has none yet. */
  write(cid: CID | string, bytes: Uint8Array): void
  /** Lose it. */
  remove(cid: CID | string): void
  has(cid: CID | string): boolean
}

export function storedEnvelopes(dataDir: string): StoredEnvelopes {
  const file = (cid: CID | string): string => blockFilePath(join(dataDir, 'blocks'), cidOf(cid))
  const row = (cid: CID | string): Buffer | null =>
    withDb(dataDir, (db) => (db.prepare('SELECT bytes FROM envelope_blocks WHERE cid = ?').pluck().get(cidOf(cid).bytes) as Buffer | undefined) ?? null)
  return {
    read: (cid) => row(cid) ?? (existsSync(file(cid)) ? readFileSync(file(cid)) : null),
    write: (cid, bytes) => {
      if (existsSync(file(cid)) && row(cid) === null) return writeFileSync(file(cid), bytes)
      withDb(dataDir, (db) => db.prepare('INSERT INTO envelope_blocks (cid, bytes) VALUES (?, ?) ON CONFLICT (cid) DO UPDATE SET bytes = excluded.bytes').run(cidOf(cid).bytes, bytes))
    },
    remove: (cid) => {
      withDb(dataDir, (db) => db.prepare('DELETE FROM envelope_blocks WHERE cid = ?').run(cidOf(cid).bytes))
      if (existsSync(file(cid))) unlinkSync(file(cid))
    },
    has: (cid) => row(cid) !== null || existsSync(file(cid)),
  }
}
