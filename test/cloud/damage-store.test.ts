/**
 * The envelope damage log (cloud/service/envelope-damage.ts) on both backends: cloud.db, and the
 * PostgreSQL every cloud process shares (cloud/store/pg/damage.ts). The same contract: a scrub's
 * findings open damage once (seen again: kept open, not "found" again), damage a later scrub finds
 * intact is closed "intact at scrub", a resent block closes every record naming its CID, open
 * damage comes first in `recent`, the last scrub run is kept. On PostgreSQL a second pool (another
 * process) reads what the first wrote.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { openCloudDb } from '../../cloud/store/db.ts'
import { DamageLog, type DamageStore } from '../../cloud/service/envelope-damage.ts'
import { PgDamageStore } from '../../cloud/store/pg/damage.ts'
import { openMigratedPool } from '../../cloud/store/pg/pool.ts'
import type { EnvelopeFinding, EnvelopeScan } from '../../cloud/chain/verify-envelopes.ts'
import { usePostgres } from '../helpers/postgres.ts'

const postgres = usePostgres()
const cleanups: (() => Promise<void> | void)[] = []
afterAll(async () => {
  for (const c of cleanups.reverse()) await c()
})

const finding = (recordId: number, cid: string, kind: EnvelopeFinding['kind'] = 'ENVELOPE_CORRUPT'): EnvelopeFinding => ({ kind, recordId, cid, gatewayId: '0123456789abcdef', message: `record ${recordId}: ${kind}` })
const scan = (findings: EnvelopeFinding[], checked = 10): EnvelopeScan => ({ checked, bytes: checked * 1000, findings, durationMs: 1.5 })

let dbNo = 0
const stores: [string, () => Promise<{ write: DamageStore; read: DamageStore }>, string | null][] = [
  [
    'SQLite',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'careledger-damage-'))
      const db = openCloudDb(join(dir, 'cloud.db'))
      cleanups.push(() => {
        db.close()
        rmSync(dir, { recursive: true, force: true })
      })
      const log = new DamageLog(db)
      return { write: log, read: log }
    },
    null,
  ],
  [
    'PostgreSQL',
    async () => {
      const url = await postgres.server().createDatabase(`damage_${++dbNo}`)
      const [p1, p2] = await Promise.all([openMigratedPool(url, 2), openMigratedPool(url, 2)])
      cleanups.push(async () => void (await Promise.all([p1.end(), p2.end()])))
      return { write: new PgDamageStore(p1), read: new PgDamageStore(p2) }
    },
    postgres.skip,
  ],
]

describe.each(stores)('envelope damage on %s', (_name, open, skipReason) => {
  it('opens once, keeps open while seen, heals at scrub or by a resent CID; recent and lastRun', async ({ skip }) => {
    if (skipReason) skip(skipReason)
    const { write, read } = await open()
    expect(await read.lastRun()).toBeNull()
    const first = await write.record(scan([finding(3, 'bafy-a'), finding(5, 'bafy-b', 'ENVELOPE_MISSING'), finding(6, 'bafy-b', 'ENVELOPE_MISSING')]), 1000)
    expect(first.found.map((d) => d.recordId)).toEqual([3, 5, 6])
    expect(first.healed).toEqual([])
    expect(await read.openCount()).toBe(3)
    expect((await read.open()).map((d) => [d.recordId, d.kind, d.detectedAt])).toEqual([
      [3, 'ENVELOPE_CORRUPT', 1000],
      [5, 'ENVELOPE_MISSING', 1000],
      [6, 'ENVELOPE_MISSING', 1000],
    ])
    // Seen again: not found again, still open, detected_at kept, last_seen_at moved.
    const second = await write.record(scan([finding(3, 'bafy-a'), finding(5, 'bafy-b', 'ENVELOPE_MISSING'), finding(6, 'bafy-b', 'ENVELOPE_MISSING')]), 2000)
    expect(second).toEqual({ found: [], healed: [] })
    expect((await read.open()).find((d) => d.recordId === 3)).toMatchObject({ detectedAt: 1000, lastSeenAt: 2000 })
    // A resent block closes every record naming its CID.
    expect(await write.repaired('bafy-b', 'resent by gateway 0123456789abcdef', 2500)).toBe(2)
    expect(await write.repaired('bafy-b', 'again', 2600)).toBe(0)
    expect((await read.open()).map((d) => d.recordId)).toEqual([3])
    // Restored from a backup: the next scrub finds record 3 intact.
    const third = await write.record(scan([]), 3000)
    expect(third.healed.map((d) => d.recordId)).toEqual([3])
    expect(await read.openCount()).toBe(0)
    const recent = await read.recent()
    expect(recent.map((d) => [d.recordId, d.repairedAt, d.repairedHow])).toEqual([
      [3, 3000, 'intact at scrub (restored or repaired outside the channel)'],
      [5, 2500, 'resent by gateway 0123456789abcdef'],
      [6, 2500, 'resent by gateway 0123456789abcdef'],
    ])
    // Damaged again after a repair: opened afresh with a new detection time.
    const fourth = await write.record(scan([finding(5, 'bafy-b')]), 4000)
    expect(fourth.found.map((d) => [d.recordId, d.detectedAt])).toEqual([[5, 4000]])
    expect((await read.open())[0]).toMatchObject({ recordId: 5, detectedAt: 4000, repairedAt: null, repairedHow: null })
    expect(await read.lastRun()).toEqual({ finishedAt: 4000, checked: 10, bytes: 10_000, damaged: 1, durationMs: 1.5 })
  })
})
