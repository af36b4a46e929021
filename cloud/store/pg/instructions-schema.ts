/**
 * Gateway instructions in PostgreSQL (a migration of PG_MIGRATIONS, migrations.ts): the table of
 * cloud/service/instructions.ts (SQLite migration `service/002-gateway-instructions`) in
 * PostgreSQL's types, shared by every cloud process, so that an instruction one process issues
 * (a redaction's delete-batch, the scrub's resend-block) reaches its gateway through whichever
 * process the gateway polls. A file of its own so migrations.ts imports nothing that imports it.
 */
import type { PgMigration } from './migrations.ts'

export const INSTRUCTIONS_PG_MIGRATION: PgMigration = {
  name: 'ops/002-gateway-instructions',
  sql: `
    CREATE TABLE gateway_instructions (
      id BIGSERIAL PRIMARY KEY,
      gateway_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      key TEXT NOT NULL,
      args TEXT NOT NULL,
      issued_at BIGINT NOT NULL,
      deliveries INTEGER NOT NULL DEFAULT 0,
      delivered_at BIGINT,
      state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed', 'unsupported', 'cancelled')),
      acked_at BIGINT,
      detail TEXT
    );
    -- One pending instruction per gateway, kind and key: issuing again (from any process) finds it.
    CREATE UNIQUE INDEX gateway_instructions_open ON gateway_instructions (gateway_id, kind, key) WHERE state = 'pending';
    CREATE INDEX gateway_instructions_by_gateway ON gateway_instructions (gateway_id, state, id);
    CREATE INDEX gateway_instructions_by_key ON gateway_instructions (kind, key, id);
  `,
}
