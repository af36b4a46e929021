/**
 * Envelope blocks in PostgreSQL (a migration of PG_MIGRATIONS, migrations.ts): the table of
 * cloud/service/envelope-table.ts in PostgreSQL's types, shared by every cloud process
 * (cloud/store/pg/envelopes.ts), so several processes — on several machines — need no shared
 * filesystem for the ciphertext. A file of its own so migrations.ts imports nothing that imports it.
 */
import type { PgMigration } from './migrations.ts'

export const ENVELOPES_PG_MIGRATION: PgMigration = {
  name: 'ops/005-envelope-blocks',
  sql: `
    CREATE TABLE envelope_blocks (
      cid BYTEA PRIMARY KEY,
      bytes BYTEA NOT NULL
    );
    -- Ciphertext does not compress: store it out of line without trying (TOAST's EXTERNAL).
    ALTER TABLE envelope_blocks ALTER COLUMN bytes SET STORAGE EXTERNAL;
  `,
}
