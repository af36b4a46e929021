/**
 * Gateway schema v2: streams, sealed batches, the outbox, per-patient policies. Appended to
 * store/migrations.ts. A stream is one device's readings for one patient (a bed change starts a
 * new stream); its batches are numbered 0, 1, 2, … and each names the previous one's commitment.
 */
export const SEALING_SCHEMA = `
  CREATE TABLE streams (
    stream_id       TEXT PRIMARY KEY,
    device_id       TEXT NOT NULL,
    patient_id      TEXT NOT NULL,            -- local only; never leaves the gateway
    pseudonym       TEXT NOT NULL,
    next_seq        INTEGER NOT NULL DEFAULT 0,
    last_commitment TEXT,                     -- hex manifest commitment of batch next_seq - 1
    UNIQUE (device_id, patient_id)
  ) STRICT;

  CREATE TABLE batches (
    batch_id      INTEGER PRIMARY KEY,
    stream_id     TEXT NOT NULL REFERENCES streams (stream_id),
    seq           INTEGER NOT NULL,
    manifest      BLOB NOT NULL,              -- canonical CBOR (shared/protocol/manifest.ts)
    signature     BLOB NOT NULL,
    commitment    TEXT NOT NULL,
    cid           TEXT NOT NULL,
    count         INTEGER NOT NULL,
    first_reading INTEGER NOT NULL,
    last_reading  INTEGER NOT NULL,
    sealed_at     INTEGER NOT NULL,
    synced_at     INTEGER,                    -- set when the cloud accepted it
    record_id     INTEGER,                    -- the cloud's record id
    pruned_at     INTEGER,                    -- readings and block deleted after retention
    UNIQUE (stream_id, seq)
  ) STRICT;
  CREATE INDEX batches_synced ON batches (synced_at) WHERE synced_at IS NOT NULL AND pruned_at IS NULL;

  -- Batches waiting for the cloud, drained oldest first. state 'rejected': the cloud refused it
  -- for good (4xx); kept, alerted on, never silently dropped.
  CREATE TABLE outbox (
    batch_id   INTEGER PRIMARY KEY REFERENCES batches (batch_id),
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'rejected'))
  ) STRICT;

  -- The sealer takes each stream's unsealed readings in arrival order.
  CREATE INDEX readings_unsealed_stream ON readings (device_id, patient_id, id) WHERE batch_id IS NULL;

  -- Per-patient CP-ABE policy templates; {patient} stands for the patient's pseudonym.
  CREATE TABLE patient_policies (
    patient_id TEXT PRIMARY KEY,
    policy     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT;
`

/**
 * Gateway schema v3: each sealed envelope (one raw IPFS block, keyed by its CIDv1) is written in
 * the same transaction that commits its batch, instead of as a file of its own fsynced before it.
 * One fsync a sealing pass instead of two per batch, and no orphan blocks (issue 11: block files
 * were 17 % of the ingest thread's CPU at a ward's load). Blocks sealed before v3 stay files under
 * <data>/blocks and are read from there (gateway/blocks.ts).
 */
export const ENVELOPE_BLOCKS_SCHEMA = `
  CREATE TABLE envelope_blocks (
    cid   TEXT PRIMARY KEY,                   -- CIDv1 raw, base32 (as batches.cid)
    bytes BLOB NOT NULL                       -- the envelope (shared/crypto/envelope.ts)
  ) STRICT;
`
