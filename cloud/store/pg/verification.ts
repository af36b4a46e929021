/**
 * The verification log (cloud/service/verification.ts) in the PostgreSQL every cloud process of a
 * deployment shares (migration `ops/004-verification-runs`): the sealer lease holder verifies the
 * shared chain for all (cloud/runtime.ts), every process answers GET /v1/chain/verification,
 * /v1/stats and its verification metrics from the newest run here.
 */
import type pg from 'pg'
import { KEEP_VERIFICATION_RUNS, type VerificationResult, type VerificationStore } from '../../service/verification.ts'

export class PgVerificationStore implements VerificationStore {
  readonly #pool: pg.Pool
  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async record(result: VerificationResult): Promise<void> {
    await this.#pool.query('INSERT INTO verification_runs (started_at, finished_at, ok, report) VALUES ($1, $2, $3, $4)', [result.startedAt, result.checkedAt, result.ok, JSON.stringify(result)])
    await this.#pool.query('DELETE FROM verification_runs WHERE id <= (SELECT max(id) FROM verification_runs) - $1', [KEEP_VERIFICATION_RUNS])
  }

  async latest(): Promise<VerificationResult | null> {
    const r = (await this.#pool.query<{ report: string }>('SELECT report FROM verification_runs ORDER BY id DESC LIMIT 1')).rows[0]
    return r ? (JSON.parse(r.report) as VerificationResult) : null
  }
}

export const pgVerification = (pool: pg.Pool): VerificationStore => new PgVerificationStore(pool)
