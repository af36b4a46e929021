/**
 * Envelope damage and scrub runs in PostgreSQL (a migration of PG_MIGRATIONS, migrations.ts): the
 * tables of cloud/service/envelope-damage.ts (SQLite migration `service/003-envelope-damage`) in
 * PostgreSQL's types, shared by every cloud process: the one that scrubs (the sealer lease
 * holder) writes them, every process's /healthz, /metrics, /v1/stats and verification report read
 * them, and a block resent to any process closes its damage. A file of its own so migrations.ts
 * imports nothing that imports it.
 */
import type { PgMigration } from './migrations.ts'

export const DAMAGE_PG_MIGRATION: PgMigration = {
  name: 'ops/003-envelope-damage',
  sql: `
    CREATE TABLE envelope_damage (
      record_id BIGINT PRIMARY KEY,
      cid TEXT NOT NULL,
      gateway_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      detail TEXT NOT NULL,
      detected_at BIGINT NOT NULL,
      last_seen_at BIGINT NOT NULL,
      repaired_at BIGINT,
      repaired_how TEXT
    );
    CREATE INDEX envelope_damage_open ON envelope_damage (record_id) WHERE repaired_at IS NULL;
    CREATE INDEX envelope_damage_cid ON envelope_damage (cid);
    CREATE TABLE scrub_runs (
      id BIGSERIAL PRIMARY KEY,
      finished_at BIGINT NOT NULL,
      checked BIGINT NOT NULL,
      bytes BIGINT NOT NULL,
      damaged BIGINT NOT NULL,
      duration_ms DOUBLE PRECISION NOT NULL
    );
  `,
}
