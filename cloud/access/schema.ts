/**
 * The access tables, registered with the cloud database (cloud/store/db.ts) under `access/…`.
 * Secrets are never stored: API tokens and enrolment tokens as SHA-256 of the token string.
 * Names are unique among the live (not revoked) rows only, so a name can be reused after a revocation.
 */
import { registerMigrations } from '../store/db.ts'

registerMigrations([
  {
    name: 'access/001-tokens-gateways-nonces',
    sql: `
      CREATE TABLE api_tokens (
        id           INTEGER PRIMARY KEY,
        name         TEXT    NOT NULL,
        role         TEXT    NOT NULL CHECK (role IN ('admin', 'regulator', 'researcher', 'doctor')),
        token_hash   BLOB    NOT NULL UNIQUE,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER,
        revoked_at   INTEGER
      );
      CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;

      CREATE TABLE gateways (
        gateway_id    TEXT    PRIMARY KEY,
        name          TEXT    NOT NULL,
        public_key    BLOB    NOT NULL UNIQUE,
        registered_at INTEGER NOT NULL,
        revoked_at    INTEGER,
        last_sync_at  INTEGER
      );
      CREATE UNIQUE INDEX gateways_live_name ON gateways (name) WHERE revoked_at IS NULL;

      CREATE TABLE gateway_invites (
        id          INTEGER PRIMARY KEY,
        name        TEXT    NOT NULL,
        token_hash  BLOB    NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        used_at     INTEGER,
        gateway_id  TEXT    REFERENCES gateways (gateway_id),
        revoked_at  INTEGER
      );

      CREATE TABLE request_nonces (
        gateway_id TEXT    NOT NULL,
        nonce      TEXT    NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (gateway_id, nonce)
      ) WITHOUT ROWID;
      CREATE INDEX request_nonces_expiry ON request_nonces (expires_at);
    `,
  },
])
