/**
 * Damaged envelope blocks the scrub found (docs/operations.md §Blockstore scrub and repair): one row
 * per record whose block is missing or does not hash to its CID, open until the block is intact
 * again — repaired from a gateway (PUT /v1/envelopes/{cid}) or restored from a backup (the next
 * scrub finds it intact). Open damage is an alert: /healthz, /metrics, /v1/stats, the console and
 * the verification report (`withDamage`) all name the records. The scrub's runs are kept too, so
 * the last one is known after a restart. Two stores, one contract (DamageStore): this one in
 * cloud.db, and the PostgreSQL one every process of a deployment shares (cloud/store/pg/damage.ts).
 */
import type { CloudDb } from '../store/db.ts'
import { registerMigrations } from '../store/db.ts'
import type { VerificationFailure, VerificationReport } from '../chain/verify.ts'
import type { EnvelopeFailureKind, EnvelopeFinding, EnvelopeScan } from '../chain/verify-envelopes.ts'

registerMigrations([
  {
    name: 'service/003-envelope-damage',
    sql: `
      CREATE TABLE envelope_damage (
        record_id     INTEGER PRIMARY KEY,
        cid           TEXT    NOT NULL,
        gateway_id    TEXT    NOT NULL,
        kind          TEXT    NOT NULL,
        detail        TEXT    NOT NULL,
        detected_at   INTEGER NOT NULL,
        last_seen_at  INTEGER NOT NULL,
        repaired_at   INTEGER,
        repaired_how  TEXT
      );
      CREATE INDEX envelope_damage_open ON envelope_damage (repaired_at, record_id);
      CREATE INDEX envelope_damage_cid ON envelope_damage (cid);
      CREATE TABLE scrub_runs (
        id           INTEGER PRIMARY KEY,
        finished_at  INTEGER NOT NULL,
        checked      INTEGER NOT NULL,
        bytes        INTEGER NOT NULL,
        damaged      INTEGER NOT NULL,
        duration_ms  REAL    NOT NULL
      );
    `,
  },
])

export interface Damage {
  readonly recordId: number
  readonly cid: string
  readonly gatewayId: string
  readonly kind: EnvelopeFailureKind
  readonly detail: string
  readonly detectedAt: number
  readonly lastSeenAt: number
  readonly repairedAt: number | null
  readonly repairedHow: string | null
}

export interface ScrubRun {
  readonly finishedAt: number
  readonly checked: number
  readonly bytes: number
  readonly damaged: number
  readonly durationMs: number
}

/** A damage row as both stores return it. */
export interface DamageRow {
  record_id: number
  cid: string
  gateway_id: string
  kind: EnvelopeFailureKind
  detail: string
  detected_at: number
  last_seen_at: number
  repaired_at: number | null
  repaired_how: string | null
}

/** What the scrub, the routes and the verification job use. */
export interface DamageStore {
  /**
   * Take a full scrub's findings: new damage is opened (returned as `found`), damage seen again is
   * kept open, and open damage the scrub found intact is closed ("intact at scrub": restored from a
   * backup, or repaired meanwhile).
   */
  record(scan: EnvelopeScan, now: number): Promise<{ found: Damage[]; healed: Damage[] }>
  /** The block of `cid` is intact again: close the damage of every record that names it; returns how many. */
  repaired(cid: string, how: string, now: number): Promise<number>
  open(): Promise<Damage[]>
  openCount(): Promise<number>
  /** Open damage first, then the most recently repaired. */
  recent(limit?: number): Promise<Damage[]>
  lastRun(): Promise<ScrubRun | null>
}

export const HEALED_AT_SCRUB = 'intact at scrub (restored or repaired outside the channel)'

export const toDamage = (r: DamageRow): Damage => ({
  recordId: r.record_id,
  cid: r.cid,
  gatewayId: r.gateway_id,
  kind: r.kind,
  detail: r.detail,
  detectedAt: r.detected_at,
  lastSeenAt: r.last_seen_at,
  repairedAt: r.repaired_at,
  repairedHow: r.repaired_how,
})

/** Scrub runs kept (the newest). */
export const KEEP_RUNS = 100

export class DamageLog implements DamageStore {
  readonly #db: CloudDb
  readonly #q

  constructor(db: CloudDb) {
    this.#db = db
    this.#q = {
      upsert: db.prepare(
        `INSERT INTO envelope_damage (record_id, cid, gateway_id, kind, detail, detected_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (record_id) DO UPDATE SET kind = excluded.kind, detail = excluded.detail, last_seen_at = excluded.last_seen_at,
           detected_at = CASE WHEN repaired_at IS NULL THEN detected_at ELSE excluded.detected_at END, repaired_at = NULL, repaired_how = NULL`,
      ),
      wasOpen: db.prepare<[number], number>('SELECT 1 FROM envelope_damage WHERE record_id = ? AND repaired_at IS NULL').pluck(),
      open: db.prepare<[], DamageRow>('SELECT * FROM envelope_damage WHERE repaired_at IS NULL ORDER BY record_id'),
      openCount: db.prepare<[], number>('SELECT count(*) FROM envelope_damage WHERE repaired_at IS NULL').pluck(),
      recent: db.prepare<[number], DamageRow>('SELECT * FROM envelope_damage ORDER BY repaired_at IS NOT NULL, coalesce(repaired_at, detected_at) DESC LIMIT ?'),
      repairCid: db.prepare('UPDATE envelope_damage SET repaired_at = ?, repaired_how = ? WHERE cid = ? AND repaired_at IS NULL'),
      repairRecord: db.prepare('UPDATE envelope_damage SET repaired_at = ?, repaired_how = ? WHERE record_id = ? AND repaired_at IS NULL'),
      run: db.prepare('INSERT INTO scrub_runs (finished_at, checked, bytes, damaged, duration_ms) VALUES (?, ?, ?, ?, ?)'),
      trimRuns: db.prepare('DELETE FROM scrub_runs WHERE id <= (SELECT max(id) FROM scrub_runs) - ?'),
      lastRun: db.prepare<[], { finished_at: number; checked: number; bytes: number; damaged: number; duration_ms: number }>('SELECT * FROM scrub_runs ORDER BY id DESC LIMIT 1'),
    }
  }

  async record(scan: EnvelopeScan, now: number): Promise<{ found: Damage[]; healed: Damage[] }> {
    const found: Damage[] = []
    const healed: Damage[] = []
    this.#db.transaction(() => {
      const seen = new Set<number>()
      for (const f of scan.findings) {
        seen.add(f.recordId)
        const wasOpen = this.#q.wasOpen.get(f.recordId) !== undefined
        this.#q.upsert.run(f.recordId, f.cid, f.gatewayId, f.kind, f.message, now, now)
        if (!wasOpen) found.push(damageOf(f, now))
      }
      for (const d of this.#q.open.all()) {
        if (seen.has(d.record_id)) continue
        this.#q.repairRecord.run(now, HEALED_AT_SCRUB, d.record_id)
        healed.push(toDamage(d))
      }
      this.#q.run.run(now, scan.checked, scan.bytes, scan.findings.length, scan.durationMs)
      this.#q.trimRuns.run(KEEP_RUNS)
    })()
    return { found, healed }
  }

  async repaired(cid: string, how: string, now: number): Promise<number> {
    return this.#q.repairCid.run(now, how, cid).changes
  }

  async open(): Promise<Damage[]> {
    return this.#q.open.all().map(toDamage)
  }

  async openCount(): Promise<number> {
    return this.#q.openCount.get()!
  }

  async recent(limit = 200): Promise<Damage[]> {
    return this.#q.recent.all(limit).map(toDamage)
  }

  async lastRun(): Promise<ScrubRun | null> {
    const r = this.#q.lastRun.get()
    return r ? { finishedAt: r.finished_at, checked: r.checked, bytes: r.bytes, damaged: r.damaged, durationMs: r.duration_ms } : null
  }
}

export const damageOf = (f: EnvelopeFinding, now: number): Damage => ({
  recordId: f.recordId,
  cid: f.cid,
  gatewayId: f.gatewayId,
  kind: f.kind,
  detail: f.message,
  detectedAt: now,
  lastSeenAt: now,
  repairedAt: null,
  repairedHow: null,
})

/** A verification report with the open envelope damage added as failures (the service's periodic run does not read the blocks itself). */
export function withDamage(report: VerificationReport, open: readonly Damage[]): VerificationReport {
  if (open.length === 0) return report
  const extra: VerificationFailure[] = open.map((d) => ({ kind: d.kind, recordId: d.recordId, message: `${d.detail} (found by the blockstore scrub ${new Date(d.detectedAt).toISOString()})` }))
  const counts = { ...report.failureCounts }
  for (const f of extra) counts[f.kind] = (counts[f.kind] ?? 0) + 1
  return { ...report, ok: false, failures: [...report.failures, ...extra], failureCounts: counts }
}
