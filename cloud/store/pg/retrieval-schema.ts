/**
 * The retrieval index in PostgreSQL (a migration of PG_MIGRATIONS, migrations.ts): the table of
 * cloud/retrieval/index-store.ts (SQLite) in PostgreSQL's types, shared by every cloud process and
 * filled by whichever of them serves an evidence plan first (cloud/store/pg/retrieval.ts). Derived
 * data: the manifest fields a read or an export selects on, which the records table keeps only
 * inside each record's canonical content. A file of its own so migrations.ts imports nothing that imports it.
 */
import type { PgMigration } from './migrations.ts'

export const RETRIEVAL_PG_MIGRATION: PgMigration = {
  name: 'ops/001-retrieval-index',
  sql: `
    CREATE TABLE retrieval_index (
      record_id BIGINT PRIMARY KEY REFERENCES records (id),
      stream TEXT NOT NULL,
      seq BIGINT NOT NULL,
      patient TEXT NOT NULL,
      from_ts BIGINT NOT NULL,
      to_ts BIGINT NOT NULL,
      sealed_at BIGINT NOT NULL,
      -- bit i set: VITAL_TYPES[i] occurs in the batch; 0 for a record whose content does not decode
      types INTEGER NOT NULL
    );
    CREATE INDEX retrieval_patient ON retrieval_index (patient, to_ts);
    CREATE INDEX retrieval_to ON retrieval_index (to_ts);
    CREATE INDEX retrieval_stream_seq ON retrieval_index (stream, seq);
  `,
}
