/**
 * The SQLite store on real files: connection settings, migrations, corruption recovery, device
 * secrets and enrolment, the group commit, the quarantine bound, and the sealer's queries.
 */
import { scryptSync } from 'node:crypto'
import { closeSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { isCareLedgerError } from '../../shared/errors.ts'
import type { Rejection } from '../../shared/schema/reading.ts'
import { listSetAside, openGatewayDb, quickCheck } from '../../gateway/store/db.ts'
import { migrate, migrations, SCHEMA_VERSION, type Migration } from '../../gateway/store/migrations.ts'
import { DeviceDirectory, DeviceStore, DUMMY_HASH, hashSecret, scryptWaiting, verifySecret, SCRYPT, SCRYPT_V1 } from '../../gateway/store/devices.ts'
import { decodeSamples, encodeSamples, GroupCommitter, LINGER_MAX_WRITES, ReadingStore, type FlushReport, type PendingWrite, type WriteOutcome } from '../../gateway/store/readings.ts'
import { GatewayProcess, tempDataDir } from '../helpers/gateway-process.ts'

const dirs: Array<() => void> = []
const fresh = (label = 'store') => {
  const t = tempDataDir(label)
  dirs.push(t.cleanup)
  return t.dir
}
afterEach(() => {
  while (dirs.length) dirs.pop()!()
})

const hr = (seq: number, value = 70, ts = Date.UTC(2026, 0, 1)) => ({ seq, ts, type: 'heart_rate' as const, unit: '/min', value })

describe('gateway.db connection and schema', () => {
  it('opens in WAL mode with synchronous=FULL, foreign keys, busy timeout, incremental auto-vacuum, owner-only file', () => {
    const dir = fresh()
    const { db, migrated } = openGatewayDb(dir)
    expect(migrated).toEqual({ from: 0, to: SCHEMA_VERSION })
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
    expect(db.pragma('synchronous', { simple: true })).toBe(2) // FULL
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1)
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5000)
    expect(db.pragma('auto_vacuum', { simple: true })).toBe(2) // INCREMENTAL
    expect(statSync(join(dir, 'gateway.db')).mode & 0o777).toBe(0o600)
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all()
    expect(tables).toEqual(['batches', 'device_assignments', 'devices', 'envelope_blocks', 'outbox', 'patient_policies', 'quarantine', 'readings', 'streams'])
    const idx = db.prepare("SELECT sql FROM sqlite_master WHERE name = 'readings_unsealed'").pluck().get() as string
    expect(idx).toMatch(/WHERE batch_id IS NULL/)
    db.close()
    // Re-opening migrates nothing.
    const again = openGatewayDb(dir)
    expect(again.migrated).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION })
    again.db.close()
  })

  it('applies appended migrations in order and refuses a database from a newer build', () => {
    const dir = fresh()
    const { db } = openGatewayDb(dir)
    const appended: Migration[] = [...migrations, { version: SCHEMA_VERSION + 1, name: 'later', up: (d) => d.exec('CREATE TABLE later_table (id INTEGER PRIMARY KEY) STRICT') }]
    expect(migrate(db, appended)).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION + 1 })
    expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'later_table'").pluck().get()).toBe(1)
    // A failing migration leaves the previous version intact.
    const broken: Migration[] = [...appended, { version: SCHEMA_VERSION + 2, name: 'broken', up: (d) => d.exec('CREATE TABLE oops (x); SELECT * FROM nowhere') }]
    expect(() => migrate(db, broken)).toThrow(/nowhere/)
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 1)
    expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'oops'").pluck().get()).toBe(0)
    db.pragma('user_version = 99')
    let err: unknown
    try {
      migrate(db)
    } catch (e) {
      err = e
    }
    expect(isCareLedgerError(err, 'UNSUPPORTED_VERSION')).toBe(true)
    expect((err as Error).message).toMatch(/schema version 99/)
    db.close()
  })
})

describe('corruption at boot', () => {
  it('sets a corrupt database aside (renamed, never deleted) and starts a fresh one', () => {
    const dir = fresh()
    const { db } = openGatewayDb(dir)
    new DeviceStore(db).add('bed-1', 'P-1')
    db.close()
    const path = join(dir, 'gateway.db')
    // Damage b-tree pages after the header: the file opens, quick_check fails.
    const size = statSync(path).size
    const fd = openSync(path, 'r+')
    for (let off = 4096; off < size; off += 4096) writeSync(fd, Buffer.alloc(200, 0xa5), 0, 200, off + 8)
    closeSync(fd)
    const damaged = readFileSync(path)
    expect(quickCheck(path)).not.toBeNull()

    const opened = openGatewayDb(dir, { integrityCheck: true })
    expect(opened.recovered).not.toBeNull()
    expect(opened.recovered!.movedTo[0]).toMatch(/gateway\.db\.corrupt-/)
    expect(readFileSync(opened.recovered!.movedTo[0]!)).toEqual(damaged) // kept byte for byte
    expect(listSetAside(dir)).toHaveLength(1)
    expect(new DeviceStore(opened.db).list()).toEqual([]) // fresh
    opened.db.close()
  })

  it('treats a file that is not a database at all the same way', () => {
    const dir = fresh()
    writeFileSync(join(dir, 'gateway.db'), 'this is not an SQLite file, it is a power cut'.repeat(200))
    const opened = openGatewayDb(dir, { integrityCheck: true })
    expect(opened.recovered?.reason).toMatch(/NOTADB|not a database/i)
    opened.db.close()
  })

  it('a real gateway started on a corrupt database comes up degraded, says so loudly, and sets the metric', async () => {
    const dir = fresh('corrupt-gw')
    writeFileSync(join(dir, 'gateway.db'), Buffer.alloc(8192, 0x42))
    const gw = await GatewayProcess.start({ dataDir: dir, args: ['--mqtts-port', '0'] })
    try {
      const fatal = gw.logs.find((l) => l.event === 'db_corrupt')
      expect(fatal?.level).toBe(60) // pino fatal
      expect(fatal?.msg).toMatch(/DATABASE CORRUPT/)
      const health = (await (await fetch(`${gw.httpUrl}/healthz`)).json()) as { status: string; db: { corruptFilesSetAside: string[] } }
      expect(health.status).toBe('degraded')
      expect(health.db.corruptFilesSetAside).toHaveLength(1)
      const metrics = await (await fetch(`${gw.httpUrl}/metrics`)).text()
      expect(metrics).toMatch(/^careledger_gateway_db_corruption_recovered 1$/m)
      expect(metrics).toMatch(/^careledger_gateway_db_corrupt_files 1$/m)
    } finally {
      await gw.stop()
    }
  })
})

describe('device secrets and enrolment', () => {
  it('hashes secrets as scrypt$N$r$p$salt$hash and verifies them', async () => {
    const h = hashSecret('correct horse')
    expect(h).toMatch(new RegExp(`^scrypt\\$${SCRYPT.N}\\$8\\$1\\$[A-Za-z0-9_-]{22}\\$[A-Za-z0-9_-]{43}$`))
    expect(hashSecret('correct horse')).not.toBe(h) // salted
    expect(await verifySecret(Buffer.from('correct horse'), h)).toBe(true)
    expect(await verifySecret(Buffer.from('correct horsf'), h)).toBe(false)
    expect(await verifySecret(Buffer.from('x'), 'scrypt$garbage')).toBe(false)
    expect(await verifySecret(Buffer.from('x'), 'bcrypt$2$2$2$aa$bb')).toBe(false)
  })

  it('hashes new secrets at 2 MiB (N=2^11, r=8) and still accepts hashes stored with the earlier 16 MiB parameters', async () => {
    expect(128 * SCRYPT.N * SCRYPT.r).toBe(2 * 1024 * 1024)
    expect(hashSecret('x')).toMatch(/^scrypt\$2048\$8\$1\$/)
    // A hash as gateways before issue 11 stored it (scrypt$16384$8$1$…): a device enrolled then keeps logging in.
    const salt = Buffer.alloc(16, 7)
    const old = `scrypt$${SCRYPT_V1.N}$${SCRYPT_V1.r}$${SCRYPT_V1.p}$${salt.toString('base64url')}$${scryptSync('old-secret', salt, 32, SCRYPT_V1).toString('base64url')}`
    expect(old.startsWith('scrypt$16384$8$1$')).toBe(true)
    expect(await verifySecret(Buffer.from('old-secret'), old)).toBe(true)
    expect(await verifySecret(Buffer.from('old-secreu'), old)).toBe(false)
    // The dummy hash for unknown ids costs what a new device's login costs.
    expect(DUMMY_HASH.startsWith(`scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$`)).toBe(true)
  })

  it('verifies a burst of connects one scrypt at a time, each with the right answer', async () => {
    const h = hashSecret('s3cret')
    const presented = ['s3cret', 'wrong', 's3cret', 'nope', 's3cret', 's3cret']
    const pending = presented.map((p) => verifySecret(Buffer.from(p), h))
    expect(scryptWaiting()).toBe(5) // one running, five queued: never more than one scrypt buffer
    expect(await Promise.all(pending)).toEqual([true, false, true, false, true, true])
    expect(scryptWaiting()).toBe(0)
  })

  it('enrols, refuses duplicates and bad ids with clear errors, moves, rotates and removes', async () => {
    const { db } = openGatewayDb(fresh())
    const store = new DeviceStore(db)
    const e = store.add('bed-1', 'P-1', 1000)
    expect(e.secret).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(await verifySecret(Buffer.from(e.secret), store.get('bed-1')!.secretHash)).toBe(true)
    expect(() => store.add('bed-1', 'P-2')).toThrow(/already enrolled/)
    expect(() => store.add('Bed 1', 'P-2')).toThrow(/device id "Bed 1"/)
    expect(() => store.add('bed-2', 'patient with spaces')).toThrow(/patient id/)
    expect(() => store.move('bed-9', 'P-2')).toThrow(/not enrolled/)
    expect(store.move('bed-1', 'P-2', 2000)).toEqual({ from: 'P-1', to: 'P-2' })
    expect(() => store.move('bed-1', 'P-2')).toThrow(/already assigned/)
    expect(store.assignments('bed-1')).toEqual([
      { deviceId: 'bed-1', patientId: 'P-1', fromTs: 1000, toTs: 2000 },
      { deviceId: 'bed-1', patientId: 'P-2', fromTs: 2000, toTs: null },
    ])
    const before = store.get('bed-1')!.secretHash
    const rotated = store.rotateSecret('bed-1')
    expect(store.get('bed-1')!.secretHash).not.toBe(before)
    expect(await verifySecret(Buffer.from(rotated), store.get('bed-1')!.secretHash)).toBe(true)
    expect(await verifySecret(Buffer.from(e.secret), store.get('bed-1')!.secretHash)).toBe(false)
    expect(store.list().map((d) => Object.keys(d).sort())).toEqual([['createdAt', 'deviceId', 'disabled', 'patientId', 'updatedAt']])

    db.prepare('INSERT INTO readings (device_id, seq, patient_id, ts, received_at, type, unit, value) VALUES (?, 7, ?, 1, 1, ?, ?, 1)').run('bed-1', 'P-2', 'heart_rate', '/min')
    store.remove('bed-1', 3000)
    expect(store.get('bed-1')).toBeUndefined()
    expect(db.prepare('SELECT count(*) FROM readings').pluck().get()).toBe(1) // readings stay
    expect(store.assignments('bed-1').at(-1)!.toTs).toBe(3000)
    // Re-enrolling the id warns about the seqs already used.
    expect(store.add('bed-1', 'P-3').previousMaxSeq).toBe(7)
    db.close()
  })
})

describe('group commit', () => {
  let current: GroupCommitter
  function setup(quarantineMaxRows = 100, extra: Partial<ConstructorParameters<typeof GroupCommitter>[1]> = {}) {
    const dir = fresh()
    const { db } = openGatewayDb(dir)
    const devices = new DeviceStore(db)
    devices.add('bed-1', 'P-1')
    devices.add('bed-2', 'P-2')
    const reports: FlushReport[] = []
    const committer = new GroupCommitter(db, { directory: new DeviceDirectory(db, devices), quarantineMaxRows, onFlush: (r) => reports.push(r), ...extra })
    current = committer
    const reader = new Database(join(dir, 'gateway.db'), { readonly: true })
    dirs.push(() => {
      reader.close()
      db.close()
    })
    return { db, devices, committer, reports, reader }
  }
  const write = (deviceId: string, readings: PendingWrite['readings'], rejections: Rejection[] = []) =>
    new Promise<WriteOutcome>((ok, fail) => current.enqueue({ deviceId, receivedAt: Date.now(), readings, rejections, done: (err, out) => (err ? fail(err) : ok(out!)) }))

  it('commits everything queued in one event-loop turn in ONE transaction, then calls back in order, after the commit', async () => {
    const { committer, reports, reader } = setup()
    const order: number[] = []
    const seen: number[] = []
    const all = [1, 2, 3].map(
      (i) =>
        new Promise<void>((ok) =>
          committer.enqueue({
            deviceId: 'bed-1',
            receivedAt: Date.now(),
            readings: [hr(i)],
            rejections: [],
            done: (err) => {
              expect(err).toBeNull()
              order.push(i)
              // Durable before the callback: another connection already sees the row.
              seen.push(reader.prepare('SELECT count(*) FROM readings WHERE seq = ?').pluck().get(i) as number)
              ok()
            },
          }),
        ),
    )
    expect(committer.pending).toBe(3)
    await Promise.all(all)
    expect(order).toEqual([1, 2, 3])
    expect(seen).toEqual([1, 1, 1])
    expect(reports).toHaveLength(1)
    expect(reports[0]).toMatchObject({ writes: 3, inserted: 3, duplicates: 0 })
  })

  it('stores a repeated (device, seq) once; reports a reused seq with other content as SEQ_REUSED and quarantines it', async () => {
    const s = setup()
    expect(await write('bed-1', [hr(1)])).toEqual({ inserted: 1, duplicates: 0, conflicts: [] })
    expect(await write('bed-1', [hr(1), hr(2)])).toEqual({ inserted: 1, duplicates: 1, conflicts: [] })
    const ecg = { seq: 3, ts: 5, type: 'ecg' as const, unit: 'mV', samples: [0.1, 0.2], hz: 250 }
    await write('bed-1', [ecg])
    expect((await write('bed-1', [ecg])).duplicates).toBe(1)
    const out = await write('bed-1', [hr(1, 99)])
    expect(out.conflicts.map((c) => [c.seq, c.code])).toEqual([[1, 'SEQ_REUSED']])
    expect(s.db.prepare('SELECT value FROM readings WHERE seq = 1').pluck().get()).toBe(70)
    expect(s.db.prepare("SELECT count(*) FROM quarantine WHERE code = 'SEQ_REUSED'").pluck().get()).toBe(1)
    // The same seq from another device is another reading.
    expect((await write('bed-2', [hr(1)])).inserted).toBe(1)
    expect(s.db.prepare('SELECT patient_id FROM readings WHERE device_id = ? AND seq = 1').pluck().get('bed-2')).toBe('P-2')
  })

  it('keeps the quarantine within its bound, dropping the oldest rows and counting them', async () => {
    const s = setup(3)
    const rej = (seq: number): Rejection => ({ seq, code: 'IMPLAUSIBLE_VALUE', message: `bad ${seq}`, raw: `{"seq":${seq}}` })
    await write('bed-1', [], [rej(1), rej(2)])
    await write('bed-1', [], [rej(3), rej(4), rej(5)])
    expect(s.db.prepare('SELECT seq FROM quarantine ORDER BY id').pluck().all()).toEqual([3, 4, 5])
    expect(s.reports.map((r) => r.quarantineDropped)).toEqual([0, 2])
    expect(s.reports.at(-1)!.quarantineRows).toBe(3)
    expect([...s.reports.at(-1)!.rejectedByCode]).toEqual([['IMPLAUSIBLE_VALUE', 3]])
  })

  describe('commit linger (issue 11)', () => {
    const turn = () => new Promise((r) => setImmediate(r))
    /** bed-1 and bed-2 write together once, so both count as active monitors. */
    async function twoActive(lingerMs: number) {
      const s = setup(100, { lingerMs })
      await Promise.all([write('bed-1', [hr(1)]), write('bed-2', [hr(1)])])
      return s
    }
    const seenBy = (reader: Database.Database, device: string, seq: number) => reader.prepare('SELECT count(*) FROM readings WHERE device_id = ? AND seq = ?').pluck().get(device, seq) as number

    it('holds a commit while other active monitors may still write, then commits their writes in ONE transaction; each callback only after the commit', async () => {
      const { committer, reports, reader } = await twoActive(60_000) // never reached: bed-2's write ends the linger
      const seen: number[] = []
      const a = new Promise<void>((ok) => committer.enqueue({ deviceId: 'bed-1', receivedAt: Date.now(), readings: [hr(2)], rejections: [], done: (err) => (expect(err).toBeNull(), seen.push(seenBy(reader, 'bed-1', 2)), ok()) }))
      await turn()
      await turn()
      // Turns later, still lingering: not committed, not acknowledged.
      expect(committer.pending).toBe(1)
      expect(seen).toEqual([])
      expect(seenBy(reader, 'bed-1', 2)).toBe(0)
      const b = new Promise<void>((ok) => committer.enqueue({ deviceId: 'bed-2', receivedAt: Date.now(), readings: [hr(2)], rejections: [], done: (err) => (expect(err).toBeNull(), seen.push(seenBy(reader, 'bed-2', 2)), ok()) }))
      await Promise.all([a, b])
      expect(seen).toEqual([1, 1]) // durable before each callback: another connection sees the rows
      expect(reports.map((r) => r.writes)).toEqual([2, 2])
    })

    it('ends the linger after lingerMs when the others stay quiet', async () => {
      const { reports, reader } = await twoActive(20)
      await write('bed-1', [hr(2)])
      expect(seenBy(reader, 'bed-1', 2)).toBe(1)
      expect(reports.map((r) => r.writes)).toEqual([2, 1])
    })

    it('never keeps a lone device waiting for its own PUBACK, and commits a burst at the end of its turn', async () => {
      const s = setup(100, { lingerMs: 60_000 })
      for (let i = 1; i <= 3; i++) await write('bed-1', [hr(i)]) // one active device: no linger at all
      expect(s.reports.map((r) => r.writes)).toEqual([1, 1, 1])
      await Promise.all([write('bed-1', [hr(4)]), write('bed-2', [hr(1)])]) // now two are active
      const burst = Array.from({ length: LINGER_MAX_WRITES }, (_, i) => write('bed-1', [hr(100 + i)])) // bed-2 quiet: only the size ends the linger
      await Promise.all(burst)
      expect(s.reports.at(-1)!.writes).toBe(LINGER_MAX_WRITES)
    })

    it('commits what lingers at close, so shutdown acknowledges it', async () => {
      const { committer, reader } = await twoActive(60_000)
      const a = write('bed-1', [hr(2)])
      await turn()
      expect(committer.pending).toBe(1)
      committer.close()
      await a
      expect(seenBy(reader, 'bed-1', 2)).toBe(1)
    })
  })

  it('acknowledges nothing when the commit fails, and nothing of the batch is stored', async () => {
    let fail = true
    const errors: Error[] = []
    const s = setup(100, {
      beforeCommit: () => {
        if (fail) throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' })
      },
      onError: (e) => errors.push(e),
    })
    const a = write('bed-1', [hr(1)])
    const b = write('bed-2', [hr(1)])
    await expect(a).rejects.toThrow(/disk I\/O/)
    await expect(b).rejects.toThrow(/disk I\/O/)
    expect(errors).toHaveLength(1)
    expect(s.db.prepare('SELECT count(*) FROM readings').pluck().get()).toBe(0)
    fail = false
    expect((await write('bed-1', [hr(1)])).inserted).toBe(1) // the device's resend goes through
  })

  it('refuses a write from a device removed (by another process) before the commit, and sees a move immediately', async () => {
    const s = setup()
    await write('bed-2', [hr(1)])
    const other = new Database(join(s.db.name))
    other.pragma('busy_timeout = 5000')
    new DeviceStore(other).move('bed-2', 'P-9')
    await write('bed-2', [hr(2)])
    expect(s.db.prepare('SELECT patient_id FROM readings WHERE device_id = ? ORDER BY seq').pluck().all('bed-2')).toEqual(['P-2', 'P-9'])
    new DeviceStore(other).remove('bed-2')
    other.close()
    await expect(write('bed-2', [hr(3)])).rejects.toThrow(/no longer enrolled/)
  })
})

describe('what the sealer uses', () => {
  it('pages through unsealed readings in arrival order and seals each reading once', () => {
    const { db } = openGatewayDb(fresh())
    new DeviceStore(db).add('bed-1', 'P-1')
    const ins = db.prepare('INSERT INTO readings (device_id, seq, patient_id, ts, received_at, type, unit, value, samples, hz) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
    for (let i = 1; i <= 5; i++) ins.run('bed-1', i, 'P-1', i, i, 'heart_rate', '/min', 60 + i, null, null)
    ins.run('bed-1', 6, 'P-1', 6, 6, 'ecg', 'mV', null, encodeSamples([0.5, -1.25]), 500)
    const store = new ReadingStore(db)
    expect(store.countUnsealed()).toBe(6)
    const first = store.unsealed(4)
    expect(first.map((r) => r.seq)).toEqual([1, 2, 3, 4])
    expect(store.unsealed(4, first.at(-1)!.id).map((r) => r.seq)).toEqual([5, 6])
    expect([...store.get('bed-1', 6)!.samples!]).toEqual([0.5, -1.25])
    expect([...decodeSamples(encodeSamples([1, 2, 3]))]).toEqual([1, 2, 3])
    // The sealer's own transaction: insert the batch row and mark its readings together.
    db.transaction(() => expect(store.markSealed(first.map((r) => r.id), 41)).toBe(4))()
    expect(store.markSealed(first.map((r) => r.id), 42)).toBe(0) // already sealed: untouched
    expect(store.countUnsealed()).toBe(2)
    expect(store.unsealed(10).map((r) => r.seq)).toEqual([5, 6])
    expect(store.get('bed-1', 1)!.batchId).toBe(41)
    const plan = db.prepare('EXPLAIN QUERY PLAN SELECT * FROM readings WHERE batch_id IS NULL AND id > 0 ORDER BY id LIMIT 10').all() as Array<{ detail: string }>
    expect(plan.map((p) => p.detail).join(' ')).toMatch(/readings_unsealed/)
    db.close()
  })
})
