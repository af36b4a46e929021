/**
 * Schema of gateway.db as an ordered list of migrations, applied through `PRAGMA user_version`.
 *
 * Rules (so that several people can extend it): APPEND only — never edit or reorder a released
 * migration; `version` is the 1-based position; each `up` runs inside its own IMMEDIATE
 * transaction together with the user_version bump, so a crash mid-migration leaves the previous
 * version intact. The sealer/outbox migrations (tables `streams`, `batches`, `outbox`) go after v1.
 *
 * Conventions: STRICT tables; times are epoch milliseconds (INTEGER); ids are TEXT as the device
 * protocol spells them (shared/schema/device.ts).
 */
import type Database from 'better-sqlite3'
import { CareLedgerError } from '../../shared/errors.ts'
import { ENVELOPE_BLOCKS_SCHEMA, SEALING_SCHEMA } from '../seal/schema.ts'

export interface Migration {
  readonly version: number
  readonly name: string
  readonly up: (db: Database.Database) => void
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'devices, device_assignments, readings, quarantine',
    up(db) {
      db.exec(`
        -- Enrolled bedside monitors. secret_hash: scrypt$N$r$p$salt$hash (store/devices.ts).
        CREATE TABLE devices (
          device_id   TEXT PRIMARY KEY,
          patient_id  TEXT NOT NULL,
          secret_hash TEXT NOT NULL,
          created_at  INTEGER NOT NULL,
          updated_at  INTEGER NOT NULL,
          disabled    INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
        ) STRICT;

        -- Bed-change history: which patient a device was attached to, and when. to_ts NULL = current.
        -- No foreign key: the history outlives a removed device (its readings still point at it).
        CREATE TABLE device_assignments (
          device_id  TEXT NOT NULL,
          patient_id TEXT NOT NULL,
          from_ts    INTEGER NOT NULL,
          to_ts      INTEGER,
          PRIMARY KEY (device_id, from_ts)
        ) STRICT;

        -- Every accepted reading, stored before its PUBACK. (device_id, seq) is the idempotency key.
        -- patient_id: the device's patient when the reading was received (a later move does not change it).
        -- ts: device clock, epoch ms. received_at: gateway clock, epoch ms.
        -- Scalar vitals use value; ECG chunks use samples (mV) and hz. samples: tag 0x02 + little-endian
        -- binary64 per sample since issue 8; older rows: little-endian binary32 (encodeSamples() and
        -- decodeSamples() in store/readings.ts tell them apart by length).
        -- batch_id: NULL until the sealer puts the reading into a batch.
        CREATE TABLE readings (
          id          INTEGER PRIMARY KEY,
          device_id   TEXT NOT NULL,
          seq         INTEGER NOT NULL,
          patient_id  TEXT NOT NULL,
          ts          INTEGER NOT NULL,
          received_at INTEGER NOT NULL,
          type        TEXT NOT NULL,
          unit        TEXT NOT NULL,
          value       REAL,
          samples     BLOB,
          hz          REAL,
          batch_id    INTEGER,
          UNIQUE (device_id, seq),
          CHECK ((value IS NULL) <> (samples IS NULL))
        ) STRICT;
        -- What the sealer scans: unsealed readings in arrival order.
        CREATE INDEX readings_unsealed ON readings (id) WHERE batch_id IS NULL;

        -- Rejected readings, kept for inspection; bounded (oldest dropped) by the gateway.
        CREATE TABLE quarantine (
          id          INTEGER PRIMARY KEY,
          device_id   TEXT NOT NULL,
          seq         INTEGER,
          code        TEXT NOT NULL,
          message     TEXT NOT NULL,
          raw         TEXT NOT NULL,
          received_at INTEGER NOT NULL
        ) STRICT;
      `)
    },
  },
  {
    version: 2,
    name: 'streams, batches, outbox, patient_policies (sealing and shipping)',
    up(db) {
      db.exec(SEALING_SCHEMA)
    },
  },
  {
    version: 3,
    name: 'envelope_blocks (sealed envelopes committed with their batches)',
    up(db) {
      db.exec(ENVELOPE_BLOCKS_SCHEMA)
    },
  },
]

/** Highest schema version this build knows. */
export const SCHEMA_VERSION = migrations.length

/**
 * Bring `db` up to the newest version in `list`. Returns the versions before and after.
 * Refuses a database written by a newer build (its user_version is beyond `list`).
 */
export function migrate(db: Database.Database, list: readonly Migration[] = migrations): { from: number; to: number } {
  list.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration list is broken: entry ${i} has version ${m.version}, expected ${i + 1}`)
  })
  const current = () => db.pragma('user_version', { simple: true }) as number
  const from = current()
  if (from > list.length) {
    throw new CareLedgerError(
      'UNSUPPORTED_VERSION',
      `${db.name} has schema version ${from} but this build knows only up to ${list.length}; run a newer CareLedger`,
      { path: db.name, version: from, known: list.length },
    )
  }
  for (const m of list.slice(from)) {
    db.transaction(() => {
      // Another process (the CLI, a second gateway start) may have migrated meanwhile.
      if (current() >= m.version) return
      m.up(db)
      db.pragma(`user_version = ${m.version}`)
    }).immediate()
  }
  return { from, to: current() }
}
