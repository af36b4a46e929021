/**
 * The verification log in PostgreSQL (a migration of PG_MIGRATIONS, migrations.ts): the table of
 * cloud/service/verification.ts (SQLite migration `service/001-verification-runs`) in PostgreSQL's
 * types, shared by every cloud process (cloud/store/pg/verification.ts). A file of its own so
 * migrations.ts imports nothing that imports it.
 */
import type { PgMigration } from './migrations.ts'

export const VERIFICATION_PG_MIGRATION: PgMigration = {
  name: 'ops/004-verification-runs',
  sql: `
    CREATE TABLE verification_runs (
      id BIGSERIAL PRIMARY KEY,
      started_at BIGINT NOT NULL,
      finished_at BIGINT NOT NULL,
      ok BOOLEAN NOT NULL,
      report TEXT NOT NULL
    );
  `,
}
