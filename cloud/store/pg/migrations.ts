/**
 * The cloud's PostgreSQL schema, as versioned migrations: the same tables as the SQLite chain
 * (cloud/chain/store.ts CHAIN_MIGRATIONS), in PostgreSQL's types, plus what several processes
 * sharing one database need (blocks.prev_hash UNIQUE: no two blocks extend one parent, i.e. no
 * fork). `migrate` applies the ones a database has not seen, each in its own transaction, under
 * an advisory lock so that processes starting together do not race, and records them in
 * schema_migrations (name, applied_at) like the SQLite side (cloud/store/db.ts).
 *
 * Names are stable forever; a change is a new migration, never an edit of an applied one.
 */
import type pg from 'pg'
import { SUPERVISION_PG_MIGRATION } from './supervision-schema.ts'
import { RETRIEVAL_PG_MIGRATION } from './retrieval-schema.ts'
import { INSTRUCTIONS_PG_MIGRATION } from './instructions-schema.ts'
import { DAMAGE_PG_MIGRATION } from './damage-schema.ts'
import { VERIFICATION_PG_MIGRATION } from './verification-schema.ts'
import { ENVELOPES_PG_MIGRATION } from './envelopes-schema.ts'
import { ANCHORS_PG_MIGRATION } from './anchors-schema.ts'

export interface PgMigration {
  readonly name: string
  readonly sql: string
}

/** pg_advisory_lock key space of CareLedger (the ASCII of "CLDG"), second key per purpose. */
export const LOCK_SPACE = 0x434c4447
export const LOCKS = { migrate: 1, chainWrite: 2, sealer: 3 } as const

export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    name: 'chain/001-records-blocks',
    sql: `
      CREATE TABLE chain_keys (
        kind TEXT NOT NULL CHECK (kind IN ('signing', 'chameleon')),
        key_id TEXT NOT NULL,
        public_key BYTEA NOT NULL CHECK (length(public_key) = 32),
        added_at BIGINT NOT NULL,
        PRIMARY KEY (kind, key_id)
      );
      CREATE TABLE blocks (
        height BIGINT PRIMARY KEY CHECK (height >= 0),
        header BYTEA NOT NULL,
        hash BYTEA NOT NULL UNIQUE CHECK (length(hash) = 32),
        signature BYTEA NOT NULL CHECK (length(signature) = 64),
        -- The parent's hash (NULL only for height 0): it must be a stored block's hash, and UNIQUE, so a
        -- parent has at most one child: no fork even if two sealers ever raced.
        prev_hash BYTEA UNIQUE REFERENCES blocks (hash) CHECK ((height = 0) = (prev_hash IS NULL)),
        sealed_by TEXT NOT NULL
      );
      CREATE UNIQUE INDEX blocks_one_genesis ON blocks ((prev_hash IS NULL)) WHERE prev_hash IS NULL;
      CREATE TABLE records (
        id BIGINT PRIMARY KEY CHECK (id >= 1),
        stream TEXT NOT NULL,
        seq BIGINT NOT NULL CHECK (seq >= 0),
        gateway_id TEXT NOT NULL,
        content BYTEA NOT NULL,
        hash BYTEA NOT NULL CHECK (length(hash) = 32),
        opening BYTEA NOT NULL CHECK (length(opening) = 64),
        manifest_commitment TEXT NOT NULL,
        prev_commitment TEXT,
        cid TEXT NOT NULL,
        received_at BIGINT NOT NULL,
        block_height BIGINT REFERENCES blocks (height),
        UNIQUE (stream, seq)
      );
      CREATE INDEX records_block ON records (block_height, id);
      CREATE INDEX records_pending ON records (id) WHERE block_height IS NULL;
      CREATE INDEX records_stream_id ON records (stream, id);
      CREATE TABLE streams (
        stream TEXT PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        device TEXT NOT NULL,
        patient TEXT NOT NULL,
        batches BIGINT NOT NULL,
        last_seq BIGINT NOT NULL,
        first_batch_at BIGINT NOT NULL,
        last_batch_at BIGINT NOT NULL
      );
      CREATE TABLE stream_gaps (
        stream TEXT NOT NULL REFERENCES streams (stream),
        from_seq BIGINT NOT NULL,
        to_seq BIGINT NOT NULL CHECK (to_seq >= from_seq),
        PRIMARY KEY (stream, from_seq)
      );
      CREATE TABLE equivocations (
        id BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('conflict', 'prev-mismatch', 'next-mismatch')),
        stream TEXT NOT NULL,
        seq BIGINT NOT NULL,
        record_id BIGINT NOT NULL REFERENCES records (id),
        offered_commitment TEXT NOT NULL,
        manifest BYTEA NOT NULL,
        signature BYTEA NOT NULL,
        gateway_key BYTEA NOT NULL,
        detected_at BIGINT NOT NULL,
        UNIQUE (kind, stream, seq, offered_commitment)
      );
    `,
  },
  {
    // The access tables of cloud/access/schema.ts (SQLite) in PostgreSQL, shared by every process:
    // people's API tokens, gateways, enrolment invites, request nonces. A nonce is claimed by an
    // INSERT … ON CONFLICT against the primary key, so a replay to another process is refused by
    // the database, not by a read-then-write race (cloud/store/pg/access.ts).
    name: 'access/001-tokens-gateways-nonces',
    sql: `
      CREATE TABLE api_tokens (
        id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name         TEXT   NOT NULL,
        role         TEXT   NOT NULL CHECK (role IN ('admin', 'regulator', 'researcher', 'doctor')),
        token_hash   BYTEA  NOT NULL UNIQUE CHECK (length(token_hash) = 32),
        created_at   BIGINT NOT NULL,
        last_used_at BIGINT,
        revoked_at   BIGINT
      );
      CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;
      CREATE TABLE gateways (
        gateway_id    TEXT   PRIMARY KEY,
        name          TEXT   NOT NULL,
        public_key    BYTEA  NOT NULL UNIQUE CHECK (length(public_key) = 32),
        registered_at BIGINT NOT NULL,
        revoked_at    BIGINT,
        last_sync_at  BIGINT
      );
      CREATE UNIQUE INDEX gateways_live_name ON gateways (name) WHERE revoked_at IS NULL;
      CREATE TABLE gateway_invites (
        id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name       TEXT   NOT NULL,
        token_hash BYTEA  NOT NULL UNIQUE CHECK (length(token_hash) = 32),
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at    BIGINT,
        gateway_id TEXT   REFERENCES gateways (gateway_id),
        revoked_at BIGINT
      );
      CREATE TABLE request_nonces (
        gateway_id TEXT   NOT NULL,
        nonce      TEXT   NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (gateway_id, nonce)
      );
      CREATE INDEX request_nonces_expiry ON request_nonces (expires_at);
    `,
  },
  SUPERVISION_PG_MIGRATION,
  RETRIEVAL_PG_MIGRATION,
  INSTRUCTIONS_PG_MIGRATION,
  DAMAGE_PG_MIGRATION,
  VERIFICATION_PG_MIGRATION,
  ENVELOPES_PG_MIGRATION,
  ANCHORS_PG_MIGRATION,
]

/** Apply the migrations this database has not seen; returns the names applied now. */
export async function migrate(client: pg.ClientBase, migrations: readonly PgMigration[] = PG_MIGRATIONS): Promise<string[]> {
  await client.query('SELECT pg_advisory_lock($1, $2)', [LOCK_SPACE, LOCKS.migrate])
  try {
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)')
    const applied = new Set((await client.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((r) => r.name))
    const now: string[] = []
    for (const m of migrations) {
      if (applied.has(m.name)) continue
      await client.query('BEGIN')
      try {
        await client.query(m.sql)
        await client.query('INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)', [m.name, Date.now()])
        await client.query('COMMIT')
      } catch (e) {
        await client.query('ROLLBACK')
        throw e
      }
      now.push(m.name)
    }
    return now
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_SPACE, LOCKS.migrate])
  }
}
