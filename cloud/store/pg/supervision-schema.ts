/**
 * The supervision tables in PostgreSQL (a migration of PG_MIGRATIONS, migrations.ts): those of
 * cloud/supervision/schema.ts (SQLite, both of its migrations) in PostgreSQL's types, used by
 * cloud/store/pg/supervision.ts. A file of its own so migrations.ts imports nothing that imports it.
 */
import type { PgMigration } from './migrations.ts'

/** The tables of cloud/supervision/schema.ts (SQLite) in PostgreSQL's types; PG_MIGRATIONS lists it. */
export const SUPERVISION_PG_MIGRATION: PgMigration = {
  name: 'supervision/001-requests-approvals-log',
  sql: `
    CREATE TABLE supervisory_policies (
      id     TEXT PRIMARY KEY,
      policy TEXT NOT NULL,
      set_at BIGINT NOT NULL,
      -- The order policies were set in (SQLite's rowid): the newest is in force.
      added  BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
    );
    CREATE TABLE supervision_requests (
      id TEXT PRIMARY KEY,
      policy TEXT NOT NULL REFERENCES supervisory_policies (id),
      record_id BIGINT NOT NULL REFERENCES records (id),
      action TEXT NOT NULL CHECK (action IN ('correct', 'delete')),
      reason TEXT NOT NULL,
      requester TEXT NOT NULL,
      old_content TEXT NOT NULL,
      new_content BYTEA NOT NULL,
      new_content_digest TEXT NOT NULL,
      old_cid TEXT NOT NULL,
      new_cid TEXT,
      new_envelope BYTEA,
      evidence BYTEA,
      status TEXT NOT NULL CHECK (status IN ('pending', 'applied', 'rejected', 'withdrawn')),
      signers TEXT,
      created_at BIGINT NOT NULL,
      closed_at BIGINT,
      closed_by TEXT,
      requester_signature TEXT
    );
    CREATE UNIQUE INDEX supervision_one_pending ON supervision_requests (record_id) WHERE status = 'pending';
    CREATE TABLE supervision_decisions (
      request_id TEXT NOT NULL REFERENCES supervision_requests (id),
      regulator TEXT NOT NULL,
      decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
      approval TEXT NOT NULL,
      signature TEXT NOT NULL UNIQUE,
      at BIGINT NOT NULL,
      PRIMARY KEY (request_id, regulator)
    );
    CREATE TABLE supervision_commitments (
      request_id TEXT NOT NULL REFERENCES supervision_requests (id),
      signer INTEGER NOT NULL,
      hiding BYTEA NOT NULL,
      binding BYTEA NOT NULL,
      PRIMARY KEY (request_id, signer)
    );
    CREATE TABLE supervision_shares (
      request_id TEXT NOT NULL REFERENCES supervision_requests (id),
      signer INTEGER NOT NULL,
      share BYTEA NOT NULL,
      PRIMARY KEY (request_id, signer)
    );
    CREATE TABLE redaction_log (
      seq BIGINT PRIMARY KEY CHECK (seq >= 1),
      record_id BIGINT NOT NULL REFERENCES records (id),
      request_id TEXT NOT NULL UNIQUE,
      entry BYTEA NOT NULL,
      hash BYTEA NOT NULL CHECK (length(hash) = 32),
      log_hash BYTEA NOT NULL CHECK (length(log_hash) = 32),
      applied_at BIGINT NOT NULL
    );
    CREATE INDEX redaction_log_record ON redaction_log (record_id, seq);
    CREATE TABLE supervision_refusals (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      at BIGINT NOT NULL,
      who TEXT NOT NULL,
      operation TEXT NOT NULL,
      request_id TEXT,
      reason TEXT NOT NULL,
      message TEXT NOT NULL
    );
  `,
}
