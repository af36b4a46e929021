/**
 * Periodic chain verification (docs/api.md §GET /v1/chain/verification): the service runs the
 * chain module's `verifyChain` every few minutes and keeps each result, so the latest one survives
 * a restart and the console can show it at once. The last 100 runs are kept: in cloud.db
 * (VerificationLog), or in the PostgreSQL every process of a deployment shares
 * (cloud/store/pg/verification.ts), where the sealer lease holder verifies for all.
 */
import type { CloudDb } from '../store/db.ts'
import { registerMigrations } from '../store/db.ts'
import type { VerificationReport } from '../chain/verify.ts'

registerMigrations([
  {
    name: 'service/001-verification-runs',
    sql: `
      CREATE TABLE verification_runs (
        id          INTEGER PRIMARY KEY,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        ok          INTEGER NOT NULL,
        report      TEXT    NOT NULL
      );
    `,
  },
])

/** Runs kept (the newest). */
export const KEEP_VERIFICATION_RUNS = 100
const KEEP = KEEP_VERIFICATION_RUNS

export type VerificationResult = VerificationReport

export interface VerificationStore {
  record(result: VerificationResult): Promise<void>
  latest(): Promise<VerificationResult | null>
}

export class VerificationLog implements VerificationStore {
  readonly #q

  constructor(db: CloudDb) {
    this.#q = {
      insert: db.prepare('INSERT INTO verification_runs (started_at, finished_at, ok, report) VALUES (?, ?, ?, ?)'),
      trim: db.prepare('DELETE FROM verification_runs WHERE id <= (SELECT max(id) FROM verification_runs) - ?'),
      latest: db.prepare<[], { report: string }>('SELECT report FROM verification_runs ORDER BY id DESC LIMIT 1'),
    }
  }

  async record(result: VerificationResult): Promise<void> {
    this.#q.insert.run(result.startedAt, result.checkedAt, result.ok ? 1 : 0, JSON.stringify(result))
    this.#q.trim.run(KEEP)
  }

  async latest(): Promise<VerificationResult | null> {
    const row = this.#q.latest.get()
    return row ? (JSON.parse(row.report) as VerificationResult) : null
  }
}
