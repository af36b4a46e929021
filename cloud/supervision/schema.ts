/**
 * The supervision tables (docs/security.md §Supervision). The redaction log is append-only and
 * hash-linked: log_hash = SHA-256(prev log_hash ‖ entry hash), entry hash = the plain hash of
 * shared/protocol/redaction-log.ts (never a chameleon hash, so no trapdoor can change an entry).
 */
import { registerMigrations, type Migration } from '../store/db.ts'
import '../chain/store.ts' // the records table first

export const SUPERVISION_MIGRATIONS: readonly Migration[] = [
  {
    name: 'supervision/001-requests-approvals-log',
    sql: `
      -- The supervisory policy in force is the newest row (policies rotate; old ones stay for old entries).
      CREATE TABLE supervisory_policies (
        id TEXT PRIMARY KEY,
        policy TEXT NOT NULL,
        set_at INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE supervision_requests (
        id TEXT PRIMARY KEY,
        policy TEXT NOT NULL REFERENCES supervisory_policies (id),
        record_id INTEGER NOT NULL REFERENCES records (id),
        action TEXT NOT NULL CHECK (action IN ('correct', 'delete')),
        reason TEXT NOT NULL,
        requester TEXT NOT NULL,
        old_content TEXT NOT NULL,
        new_content BLOB NOT NULL,
        new_content_digest TEXT NOT NULL,
        old_cid TEXT NOT NULL,
        new_cid TEXT,
        new_envelope BLOB,
        evidence BLOB,
        status TEXT NOT NULL CHECK (status IN ('pending', 'applied', 'rejected', 'withdrawn')),
        signers TEXT,
        created_at INTEGER NOT NULL,
        closed_at INTEGER,
        closed_by TEXT
      ) STRICT;
      -- At most one open request per record.
      CREATE UNIQUE INDEX supervision_one_pending ON supervision_requests (record_id) WHERE status = 'pending';
      CREATE TABLE supervision_decisions (
        request_id TEXT NOT NULL REFERENCES supervision_requests (id),
        regulator TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
        approval TEXT NOT NULL,
        signature TEXT NOT NULL UNIQUE,
        at INTEGER NOT NULL,
        PRIMARY KEY (request_id, regulator)
      ) STRICT;
      -- FROST round one (public commitments) and round two (signature shares), per request and signer index.
      CREATE TABLE supervision_commitments (
        request_id TEXT NOT NULL REFERENCES supervision_requests (id),
        signer INTEGER NOT NULL,
        hiding BLOB NOT NULL,
        binding BLOB NOT NULL,
        PRIMARY KEY (request_id, signer)
      ) STRICT;
      CREATE TABLE supervision_shares (
        request_id TEXT NOT NULL REFERENCES supervision_requests (id),
        signer INTEGER NOT NULL,
        share BLOB NOT NULL,
        PRIMARY KEY (request_id, signer)
      ) STRICT;
      CREATE TABLE redaction_log (
        seq INTEGER PRIMARY KEY CHECK (seq >= 1),
        record_id INTEGER NOT NULL REFERENCES records (id),
        request_id TEXT NOT NULL UNIQUE,
        entry BLOB NOT NULL,
        hash BLOB NOT NULL CHECK (length(hash) = 32),
        log_hash BLOB NOT NULL CHECK (length(log_hash) = 32),
        applied_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX redaction_log_record ON redaction_log (record_id, seq);
      -- Refused attempts (who, what, why): an auditor reads them; nothing else changes on a refusal.
      CREATE TABLE supervision_refusals (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        who TEXT NOT NULL,
        operation TEXT NOT NULL,
        request_id TEXT,
        reason TEXT NOT NULL,
        message TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    // The requester's EIP-712 signature over the request (shared/protocol/supervision-request.ts),
    // JSON; NULL for requests filed before requester signatures.
    name: 'supervision/002-requester-signature',
    sql: `ALTER TABLE supervision_requests ADD COLUMN requester_signature TEXT;`,
  },
]

registerMigrations(SUPERVISION_MIGRATIONS)