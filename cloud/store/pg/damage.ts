/**
 * The envelope damage log (cloud/service/envelope-damage.ts) in the PostgreSQL every cloud process
 * shares (migration `ops/003-envelope-damage`): the scrub's findings are taken in one transaction
 * (new damage opened, damage seen again kept open, open damage found intact closed); a repair —
 * a gateway's block resent to any process — closes it by CID in one UPDATE. Every process reads
 * the same open damage for /healthz, /metrics, /v1/stats and its verification reports.
 */
import type pg from 'pg'
import { damageOf, HEALED_AT_SCRUB, KEEP_RUNS, toDamage, type Damage, type DamageRow, type DamageStore, type ScrubRun } from '../../service/envelope-damage.ts'
import type { EnvelopeScan } from '../../chain/verify-envelopes.ts'
import { inTransaction } from './pool.ts'

export class PgDamageStore implements DamageStore {
  readonly #pool: pg.Pool

  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async record(scan: EnvelopeScan, now: number): Promise<{ found: Damage[]; healed: Damage[] }> {
    return inTransaction(this.#pool, async (c) => {
      const open = (await c.query<DamageRow>('SELECT * FROM envelope_damage WHERE repaired_at IS NULL ORDER BY record_id FOR UPDATE')).rows
      const wasOpen = new Set(open.map((d) => d.record_id))
      const seen = new Set<number>()
      const found: Damage[] = []
      for (const f of scan.findings) {
        seen.add(f.recordId)
        await c.query(
          `INSERT INTO envelope_damage (record_id, cid, gateway_id, kind, detail, detected_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $6)
           ON CONFLICT (record_id) DO UPDATE SET kind = excluded.kind, detail = excluded.detail, last_seen_at = excluded.last_seen_at,
             detected_at = CASE WHEN envelope_damage.repaired_at IS NULL THEN envelope_damage.detected_at ELSE excluded.detected_at END,
             repaired_at = NULL, repaired_how = NULL`,
          [f.recordId, f.cid, f.gatewayId, f.kind, f.message, now],
        )
        if (!wasOpen.has(f.recordId)) found.push(damageOf(f, now))
      }
      const healed = open.filter((d) => !seen.has(d.record_id))
      if (healed.length > 0) {
        await c.query('UPDATE envelope_damage SET repaired_at = $1, repaired_how = $2 WHERE record_id = ANY($3::bigint[]) AND repaired_at IS NULL', [now, HEALED_AT_SCRUB, healed.map((d) => d.record_id)])
      }
      await c.query('INSERT INTO scrub_runs (finished_at, checked, bytes, damaged, duration_ms) VALUES ($1, $2, $3, $4, $5)', [now, scan.checked, scan.bytes, scan.findings.length, scan.durationMs])
      await c.query('DELETE FROM scrub_runs WHERE id <= (SELECT max(id) FROM scrub_runs) - $1', [KEEP_RUNS])
      return { found, healed: healed.map(toDamage) }
    })
  }

  async repaired(cid: string, how: string, now: number): Promise<number> {
    return (await this.#pool.query('UPDATE envelope_damage SET repaired_at = $1, repaired_how = $2 WHERE cid = $3 AND repaired_at IS NULL', [now, how, cid])).rowCount ?? 0
  }

  async open(): Promise<Damage[]> {
    return (await this.#pool.query<DamageRow>('SELECT * FROM envelope_damage WHERE repaired_at IS NULL ORDER BY record_id')).rows.map(toDamage)
  }

  async openCount(): Promise<number> {
    return (await this.#pool.query<{ n: number }>('SELECT count(*)::int AS n FROM envelope_damage WHERE repaired_at IS NULL')).rows[0]!.n
  }

  async recent(limit = 200): Promise<Damage[]> {
    const sql = 'SELECT * FROM envelope_damage ORDER BY repaired_at IS NOT NULL, coalesce(repaired_at, detected_at) DESC LIMIT $1'
    return (await this.#pool.query<DamageRow>(sql, [limit])).rows.map(toDamage)
  }

  async lastRun(): Promise<ScrubRun | null> {
    const r = (await this.#pool.query<{ finished_at: number; checked: number; bytes: number; damaged: number; duration_ms: number }>('SELECT * FROM scrub_runs ORDER BY id DESC LIMIT 1')).rows[0]
    return r ? { finishedAt: r.finished_at, checked: r.checked, bytes: r.bytes, damaged: r.damaged, durationMs: r.duration_ms } : null
  }
}

export const pgDamage = (pool: pg.Pool): DamageStore => new PgDamageStore(pool)
