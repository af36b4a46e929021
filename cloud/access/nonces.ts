/**
 * Request nonces, remembered in SQLite (on PostgreSQL: cloud/store/pg/access.ts) so a replay is refused even after a restart
 * (docs/api.md: "whose nonce it has seen within that window"). A nonce need only be kept while
 * its request's timestamp could still pass the clock check: until timestamp + window. Expired rows
 * are pruned periodically; an expired row never blocks a new request.
 */
import type { CloudDb } from '../store/db.ts'
import { ridingCommit } from '../store/riding-commit.ts'
import './schema.ts'

export class NonceStore {
  readonly #q
  readonly #db: CloudDb

  constructor(db: CloudDb) {
    this.#db = db
    this.#q = {
      seen: db.prepare<[string, string, number], number>('SELECT 1 FROM request_nonces WHERE gateway_id = ? AND nonce = ? AND expires_at >= ?').pluck(),
      // Insert, or take over an expired row; `changes` is 0 exactly when a live row holds the nonce.
      claim: db.prepare(
        `INSERT INTO request_nonces (gateway_id, nonce, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (gateway_id, nonce) DO UPDATE SET expires_at = excluded.expires_at WHERE request_nonces.expires_at < ?`,
      ),
      prune: db.prepare('DELETE FROM request_nonces WHERE expires_at < ?'),
      count: db.prepare<[], number>('SELECT count(*) FROM request_nonces').pluck(),
    }
  }

  /** Whether a live row holds this nonce (a cheap early check before the body is read). */
  seen(gatewayId: string, nonce: string, now: number): boolean {
    return this.#q.seen.get(gatewayId, nonce, now) !== undefined
  }

  /**
   * Atomically remember the nonce until `expiresAt`; false if it is already remembered (a replay).
   * Durable with the next fsynced commit, e.g. the batch the request uploads (riding-commit.ts).
   */
  claim(gatewayId: string, nonce: string, expiresAt: number, now: number): boolean {
    return ridingCommit(this.#db, () => this.#q.claim.run(gatewayId, nonce, expiresAt, now).changes === 1)
  }

  /** Forget nonces whose requests can no longer pass the clock check. Returns how many. */
  prune(now: number): number {
    return this.#q.prune.run(now).changes
  }

  count(): number {
    return this.#q.count.get()!
  }
}
