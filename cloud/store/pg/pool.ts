/**
 * A cloud process's connections to PostgreSQL: a pg.Pool whose BIGINTs come back as JS numbers
 * (ids, heights, seqs and epoch ms are all < 2^53), connected and migrated before use
 * (migrations.ts), and the BEGIN … COMMIT helper the stores share.
 */
import pg from 'pg'
import { CareLedgerError } from '../../../shared/errors.ts'
import { redactDatabaseUrl } from '../chain-backend.ts'
import { migrate } from './migrations.ts'

export const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser,
}

/** A pool of `max` connections to `url`, reachable (else a clear error naming the redacted URL) and migrated. */
export async function openMigratedPool(url: string, max: number): Promise<pg.Pool> {
  const pool = new pg.Pool({ connectionString: url, max, types: pgTypes })
  pool.on('error', () => {}) // an idle client's broken connection: the next query reconnects
  try {
    const c = await pool.connect().catch((e: Error) => {
      throw new CareLedgerError('INVALID_ARGUMENT', `cannot reach the PostgreSQL database ${redactDatabaseUrl(url)}: ${e.message}`, { reason: 'DATABASE_UNREACHABLE', database: redactDatabaseUrl(url) }, { cause: e })
    })
    try {
      await migrate(c)
    } finally {
      c.release()
    }
    return pool
  } catch (e) {
    await pool.end()
    throw e
  }
}

/** Run `body` in one transaction on a connection of `pool`: committed when it resolves, rolled back when it throws. */
export async function inTransaction<T>(pool: pg.Pool, body: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect()
  try {
    await c.query('BEGIN')
    const out = await body(c)
    await c.query('COMMIT')
    return out
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {})
    throw e
  } finally {
    c.release()
  }
}
