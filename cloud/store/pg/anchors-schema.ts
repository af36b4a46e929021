/**
 * Anchors in PostgreSQL (a migration of PG_MIGRATIONS, migrations.ts): the table of
 * cloud/anchor/store.ts (SQLite migration `anchor/001-anchors`) in PostgreSQL's types, shared by
 * every cloud process of a deployment (cloud/store/pg/anchors.ts). The same two partial unique
 * indexes keep one anchor in flight per (EVM chain, contract) and one live anchor per height, so a
 * process taking the sealer lease over, or `careledger chain anchor --database …` run beside the
 * service, follows the anchor in flight instead of sending a second one. A file of its own so
 * migrations.ts imports nothing that imports it.
 */
import type { PgMigration } from './migrations.ts'

export const ANCHORS_PG_MIGRATION: PgMigration = {
  name: 'ops/006-anchors',
  sql: `
    CREATE TABLE anchors (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      chain_id BIGINT NOT NULL,
      contract TEXT NOT NULL,
      account TEXT NOT NULL,
      height BIGINT NOT NULL CHECK (height >= 0),
      block_hash TEXT NOT NULL CHECK (length(block_hash) = 64),
      records_root TEXT NOT NULL CHECK (length(records_root) = 64),
      nonce BIGINT NOT NULL CHECK (nonce >= 0),
      status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed')),
      -- [{hash, raw, maxFeePerGas, maxPriorityFeePerGas, gasPrice, sentAt}], oldest first
      attempts JSONB NOT NULL CHECK (jsonb_typeof(attempts) = 'array'),
      tx_hash TEXT,
      evm_block BIGINT,
      evm_block_hash TEXT,
      confirmations BIGINT NOT NULL DEFAULT 0,
      gas_used BIGINT,
      effective_gas_price TEXT,
      resends BIGINT NOT NULL DEFAULT 0,
      error TEXT,
      created_at BIGINT NOT NULL,
      mined_at BIGINT,
      confirmed_at BIGINT
    );
    CREATE UNIQUE INDEX anchors_one_pending ON anchors (chain_id, contract) WHERE status = 'pending';
    CREATE UNIQUE INDEX anchors_height ON anchors (chain_id, contract, height) WHERE status <> 'failed';
  `,
}
