/**
 * The supervision store for a command-line tool (`careledger regulator setup --install`,
 * `regulator review`, `supervision list` given `--database` or `--data`), the way
 * cloud/access/store.ts openAccessStores does it for `cloud token`: the deployment's shared
 * PostgreSQL when `database` is a postgres:// URL (migrations applied first), else the cloud.db
 * of a data directory. It reads and installs the policy; approving and applying stay with the
 * running cloud's API, which also removes the old ciphertext and tells the gateway.
 */
import { CareLedgerError } from '../../shared/errors.ts'
import { isPostgresUrl, redactDatabaseUrl } from '../store/chain-backend.ts'
import { openCloudDb } from '../store/db.ts'
import { sqliteSupervision, SupervisionStore } from './store.ts'

const noChain = (where: string): never => {
  throw new CareLedgerError('INVALID_ARGUMENT', `${where} holds no chain yet (no chameleon key): start the cloud on it once first`, { reason: 'NO_CHAIN' })
}

export async function openSupervisionStore(database: string | null, sqlitePath: string): Promise<{ store: SupervisionStore; close(): Promise<void> }> {
  if (database !== null && isPostgresUrl(database)) {
    const [{ openMigratedPool }, { PgSupervisionTables }] = await Promise.all([import('../store/pg/pool.ts'), import('../store/pg/supervision.ts')])
    const pool = await openMigratedPool(database, 2)
    try {
      const key = (await pool.query<{ public_key: Buffer }>("SELECT public_key FROM chain_keys WHERE kind = 'chameleon' ORDER BY added_at LIMIT 1")).rows[0]?.public_key ?? noChain(`the database ${redactDatabaseUrl(database)}`)
      return { store: new SupervisionStore(new PgSupervisionTables(pool), { chameleonPublicKey: new Uint8Array(key) }), close: () => pool.end() }
    } catch (e) {
      await pool.end()
      throw e
    }
  }
  const db = openCloudDb(sqlitePath)
  try {
    const key = (db.prepare("SELECT public_key FROM chain_keys WHERE kind = 'chameleon' ORDER BY added_at LIMIT 1").pluck().get() as Buffer | undefined) ?? noChain(sqlitePath)
    return { store: sqliteSupervision(db, { chameleonPublicKey: new Uint8Array(key) }), close: async () => void db.close() }
  } catch (e) {
    db.close()
    throw e
  }
}
