/**
 * A SQLite cloud's stored envelope blocks, as tests reach them from outside the process: rows of
 * cloud.db's envelope table (cloud/service/envelope-table.ts), else files under `<data>/blocks`
 * (blocks stored before the table). Used to damage, lose and restore blocks while the cloud runs
 * (WAL: a second connection may write beside it).
 */
import Database from 'better-sqlite3'
import pg from 'pg'
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

/** The same for a PostgreSQL deployment: rows of the shared database's envelope table (cloud/store/pg/envelopes.ts). */
export interface PgStoredEnvelopes {
  read(cid: CID | string): Promise<Buffer | null>
  write(cid: CID | string, bytes: Uint8Array): Promise<void>
  remove(cid: CID | string): Promise<void>
  has(cid: CID | string): Promise<boolean>
}

export function pgStoredEnvelopes(url: string): PgStoredEnvelopes {
  const query = async <T extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<T[]> => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    try {
      return (await c.query<T>(sql, params)).rows
    } finally {
      await c.end()
    }
  }
  const key = (cid: CID | string): Buffer => Buffer.from(cidOf(cid).bytes)
  const read = async (cid: CID | string): Promise<Buffer | null> => (await query<{ bytes: Buffer }>('SELECT bytes FROM envelope_blocks WHERE cid = $1', [key(cid)]))[0]?.bytes ?? null
  return {
    read,
    write: async (cid, bytes) => void (await query('INSERT INTO envelope_blocks (cid, bytes) VALUES ($1, $2) ON CONFLICT (cid) DO UPDATE SET bytes = excluded.bytes', [key(cid), Buffer.from(bytes)])),
    remove: async (cid) => void (await query('DELETE FROM envelope_blocks WHERE cid = $1', [key(cid)])),
    has: async (cid) => (await read(cid)) !== null,
  }
}
