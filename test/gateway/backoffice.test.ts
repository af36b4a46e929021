/**
 * The back office's building blocks on a real gateway.db and a real blockstore (the Helia light
 * node of gateway/blocks.ts), in-process:
 *
 *   - retention (pruneSynced): only batches the cloud has held longer than the retention lose their
 *     readings and envelope block; unsynced (whatever their age), rejected and recently synced ones
 *     keep everything; the batch row stays as the audit trail; and one run clears everything due,
 *     not just the first 1000 batches (it runs hourly; a ward seals far more than that an hour);
 *   - the sealer: one pass seals a stream's whole backlog, also when ECG makes it cut batches by
 *     size (each envelope stays one IPFS block), as contiguous, linked batches;
 *   - orphan envelope blocks (left by a crash between storing a block and committing its batch) are
 *     deleted, and nothing else;
 *   - the outbox (OutboxSync) against a cloud that answers per batch: a 5xx/429 in a batch's slot of
 *     a bulk answer is "try again", not "refused for good" — the batch stays pending and goes again
 *     after the (capped) backoff; a 4xx is kept as rejected; everything else settles with its record id.
 *
 * Batches are sealed by the real Sealer from readings in the real readings table.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type Database from 'better-sqlite3'
import { pino } from 'pino'
import { CID } from 'multiformats/cid'
import { NextToLast } from 'blockstore-fs/sharding'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadIdentity } from '../../gateway/identity.ts'
import { openBlockNode, readBlock, type BlockNode } from '../../gateway/blocks.ts'
import { openGatewayDb } from '../../gateway/store/db.ts'
import { migrate } from '../../gateway/store/migrations.ts'
import { MAX_BATCH_READINGS, Sealer } from '../../gateway/seal/sealer.ts'
import { rawCid } from '../../gateway/seal/seal.ts'
import { deleteOrphanBlocks, pruneSynced } from '../../gateway/outbox/retention.ts'
import { syncBackoffMaxMs } from '../../gateway/backoffice/plugin.ts'
import { backoffDelay, DEFAULT_BACKOFF, OutboxSync, type CloudUploader, type Upload, type UploadResult } from '../../gateway/outbox/sync.ts'
import { tempDataDir } from '../helpers/gateway-process.ts'
import { testAuthorityFile } from '../helpers/backoffice.ts'

const HOUR = 3_600_000
const logger = pino({ level: 'silent' })
const dirs: Array<ReturnType<typeof tempDataDir>> = []
const nodes: BlockNode[] = []
const dbs: Database.Database[] = []
let mpkFile: string

beforeAll(() => {
  const a = tempDataDir('outbox-authority')
  dirs.push(a)
  mpkFile = testAuthorityFile(a.dir).mpkFile
})
afterAll(async () => {
  for (const db of dbs) db.close()
  for (const n of nodes) await n.stop()
  for (const d of dirs) d.cleanup()
})

async function gatewayDir() {
  const d = tempDataDir('outbox')
  dirs.push(d)
  const { db } = openGatewayDb(d.dir)
  dbs.push(db)
  const node = await openBlockNode(d.dir, db)
  nodes.push(node)
  const identity = loadIdentity(d.dir, { env: { CARELEDGER_ABE_PUBLIC_KEY: mpkFile } })
  const sealer = new Sealer(db, identity, 'role:doctor OR patient:{patient}', logger)
  const insert = db.prepare('INSERT INTO readings (device_id, seq, patient_id, ts, received_at, type, unit, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
  let seq = 0
  /** Store `n` readings of each device and seal them: one batch per device. */
  const sealRound = async (deviceIds: string[], n = 3) => {
    for (const id of deviceIds) for (let i = 0; i < n; i++) insert.run(id, ++seq, `P-${id}`, Date.now(), Date.now(), 'heart_rate', '/min', 60 + i)
    return sealer.sealDue()
  }
  return { dir: d.dir, db, node, sealRound }
}

const hasBlock = (node: BlockNode, cid: string) => node.blockstore.has(CID.parse(cid))

describe('sealer', () => {
  it('seals a whole ECG backlog in one pass, in size-capped batches of one block each', async () => {
    const { db, node } = await gatewayDir()
    const identity = loadIdentity(dirs.at(-1)!.dir, { env: { CARELEDGER_ABE_PUBLIC_KEY: mpkFile } })
    const sealer = new Sealer(db, identity, 'role:doctor', logger)
    // 10 s ECG chunks at 250 Hz (2500 samples): ~70 fit under the batch byte budget, so 200 need 3 batches.
    const samples = Buffer.alloc(2500 * 4)
    for (let k = 0; k < 2500; k++) samples.writeFloatLE(Math.sin(k / 10), k * 4)
    const insert = db.prepare("INSERT INTO readings (device_id, seq, patient_id, ts, received_at, type, unit, samples, hz) VALUES ('ecg-1', ?, 'P-ecg', ?, ?, 'ecg', 'mV', ?, 250)")
    db.transaction(() => {
      for (let i = 1; i <= 200; i++) insert.run(i, Date.now() - (200 - i) * 10_000, Date.now(), samples)
    })()
    const report = await sealer.sealDue()
    expect(report.readings).toBe(200)
    expect(db.prepare('SELECT count(*) FROM readings WHERE batch_id IS NULL').pluck().get()).toBe(0)
    const batches = db.prepare('SELECT seq, count, cid FROM batches ORDER BY batch_id').all() as Array<{ seq: number; count: number; cid: string }>
    expect(batches.length).toBeGreaterThanOrEqual(3)
    expect(batches.map((b) => b.seq)).toEqual(batches.map((_, i) => i))
    for (const b of batches) expect((await readBlock(node.blockstore, CID.parse(b.cid))).length).toBeLessThanOrEqual(1024 * 1024)
  }, 60_000)
})

describe('sealer, one bad stream', () => {
  it('seals the other streams when one cannot be sealed, and that one once it can', async () => {
    const { db, sealRound } = await gatewayDir()
    // A per-patient policy FABEO cannot use (written by hand; the CLI refuses it): that stream's seal throws.
    db.prepare("INSERT INTO patient_policies (patient_id, policy, updated_at) VALUES ('P-b', 'role:doctor AND (role:doctor OR x:y)', 0)").run()
    const report = await sealRound(['a', 'b', 'c'])
    expect(report).toMatchObject({ batches: 2, readings: 6, failed: 1 })
    const unsealed = () => db.prepare('SELECT device_id, count(*) AS n FROM readings WHERE batch_id IS NULL GROUP BY device_id').all()
    expect(unsealed()).toEqual([{ device_id: 'b', n: 3 }])
    db.prepare("DELETE FROM patient_policies WHERE patient_id = 'P-b'").run()
    expect(await sealRound([])).toMatchObject({ batches: 1, readings: 3, failed: 0 })
    expect(unsealed()).toEqual([])
  })

  it('commits a pass in one transaction, rolling back only the stream whose commit fails (its savepoint), and seals it again next pass', async () => {
    const { db, node, sealRound } = await gatewayDir()
    // The commit of device b's batch fails inside the pass's transaction (a trigger on this connection).
    db.exec("CREATE TEMP TRIGGER fail_b BEFORE INSERT ON batches WHEN NEW.stream_id = (SELECT stream_id FROM streams WHERE device_id = 'b') BEGIN SELECT RAISE(ABORT, 'injected commit failure'); END")
    expect(await sealRound(['a', 'b', 'c'])).toMatchObject({ batches: 2, readings: 6, failed: 1 })
    const unsealed = () => db.prepare('SELECT device_id, count(*) AS n FROM readings WHERE batch_id IS NULL GROUP BY device_id').all()
    expect(unsealed()).toEqual([{ device_id: 'b', n: 3 }])
    expect(db.prepare("SELECT next_seq FROM streams WHERE device_id = 'b'").pluck().get()).toBe(0)
    expect(db.prepare('SELECT count(*) FROM outbox').pluck().get()).toBe(2)
    db.exec('DROP TRIGGER fail_b')
    expect(await sealRound(['a'])).toMatchObject({ batches: 2, readings: 6, failed: 0 })
    expect(unsealed()).toEqual([])
    // b's batch 0 is the one sealed now, linked to nothing before it; a's stream went on to seq 1.
    const rows = db.prepare('SELECT s.device_id AS d, b.seq, b.cid FROM batches b JOIN streams s USING (stream_id) ORDER BY s.device_id, b.seq').all() as Array<{ d: string; seq: number; cid: string }>
    expect(rows.map((r) => `${r.d}${r.seq}`)).toEqual(['a0', 'a1', 'b0', 'c0'])
    for (const r of rows) expect(await hasBlock(node, r.cid)).toBe(true)
  })

  it('seals a stream\'s backlog as consecutive linked batches committed together', async () => {
    const { db, sealRound } = await gatewayDir()
    const insert = db.prepare('INSERT INTO readings (device_id, seq, patient_id, ts, received_at, type, unit, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
    for (let i = 0; i < MAX_BATCH_READINGS + 10; i++) insert.run('z', 100_000 + i, 'P-z', Date.now(), Date.now(), 'heart_rate', '/min', 60)
    expect(await sealRound([])).toMatchObject({ batches: 2, readings: MAX_BATCH_READINGS + 10, failed: 0 })
    const batches = db.prepare('SELECT seq, count, first_reading, last_reading, commitment FROM batches ORDER BY seq').all() as Array<{ seq: number; count: number; first_reading: number; last_reading: number }>
    expect(batches.map((b) => [b.seq, b.count])).toEqual([[0, MAX_BATCH_READINGS], [1, 10]])
    expect(batches[1]!.first_reading).toBeGreaterThan(batches[0]!.last_reading)
    expect(db.prepare("SELECT next_seq FROM streams WHERE device_id = 'z'").pluck().get()).toBe(2)
  })
})

describe('retention (pruneSynced)', () => {
  it('prunes only batches synced longer ago than the retention: readings and block go, the batch row stays', async () => {
    const { db, node, sealRound } = await gatewayDir()
    expect((await sealRound(['a', 'b', 'c', 'd', 'e'])).batches).toBe(5)
    const now = Date.now()
    const ids = db.prepare('SELECT batch_id FROM batches ORDER BY batch_id').pluck().all() as number[]
    const [oldSynced, recentSynced, oldUnsynced, rejected, exactlyDue] = ids as [number, number, number, number, number]
    const setSynced = db.prepare('UPDATE batches SET synced_at = ?, record_id = ? WHERE batch_id = ?')
    setSynced.run(now - 80 * HOUR, 1, oldSynced)
    setSynced.run(now - 1 * HOUR, 2, recentSynced)
    setSynced.run(now - 72 * HOUR, 3, exactlyDue)
    db.prepare('DELETE FROM outbox WHERE batch_id IN (?, ?, ?)').run(oldSynced, recentSynced, exactlyDue)
    // Never synced, however old: sealed long ago, still waiting; and one the cloud refused.
    db.prepare('UPDATE batches SET sealed_at = ? WHERE batch_id IN (?, ?)').run(now - 1000 * HOUR, oldUnsynced, rejected)
    db.prepare("UPDATE outbox SET state = 'rejected', last_error = '400 INVALID_MANIFEST: test' WHERE batch_id = ?").run(rejected)
    const before = new Map(ids.map((id) => [id, db.prepare('SELECT cid FROM batches WHERE batch_id = ?').pluck().get(id) as string]))

    expect(await pruneSynced(db, node.blockstore, 72 * HOUR, logger, now)).toBe(2)
    const readingsOf = (id: number) => db.prepare('SELECT count(*) FROM readings WHERE batch_id = ?').pluck().get(id) as number
    for (const id of [oldSynced, exactlyDue]) {
      expect(readingsOf(id)).toBe(0)
      expect(await hasBlock(node, before.get(id)!)).toBe(false)
      expect(db.prepare('SELECT pruned_at, record_id IS NOT NULL AS rec, length(manifest) > 0 AS man FROM batches WHERE batch_id = ?').get(id)).toEqual({ pruned_at: now, rec: 1, man: 1 })
    }
    for (const id of [recentSynced, oldUnsynced, rejected]) {
      expect(readingsOf(id)).toBe(3)
      expect(await hasBlock(node, before.get(id)!)).toBe(true)
      expect(db.prepare('SELECT pruned_at FROM batches WHERE batch_id = ?').pluck().get(id)).toBeNull()
    }
    // Idempotent: nothing more is due.
    expect(await pruneSynced(db, node.blockstore, 72 * HOUR, logger, now)).toBe(0)
    // Readings not yet sealed are never touched.
    db.prepare("INSERT INTO readings (device_id, seq, patient_id, ts, received_at, type, unit, value) VALUES ('z', 1, 'P-z', 0, 0, 'heart_rate', '/min', 60)").run()
    expect(await pruneSynced(db, node.blockstore, 0, logger, now + 100 * HOUR)).toBe(1) // recentSynced, now past retention
    expect(db.prepare("SELECT count(*) FROM readings WHERE device_id = 'z'").pluck().get()).toBe(1)
  })

  it('clears everything due in one run, beyond the first chunk of 1000', async () => {
    const { db, node, sealRound } = await gatewayDir()
    await sealRound(['seed'])
    // 2500 synced batches past retention, each with a reading and a block (rows made directly: sealing 2500 would take minutes).
    const template = db.prepare('SELECT stream_id, manifest, signature, commitment FROM batches LIMIT 1').get() as { stream_id: string; manifest: Buffer; signature: Buffer; commitment: string }
    const insertBatch = db.prepare(
      'INSERT INTO batches (stream_id, seq, manifest, signature, commitment, cid, count, first_reading, last_reading, sealed_at, synced_at, record_id) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)',
    )
    const insertReading = db.prepare("INSERT INTO readings (device_id, seq, patient_id, ts, received_at, type, unit, value, batch_id) VALUES ('bulk', ?, 'P-bulk', 0, 0, 'heart_rate', '/min', 60, ?)")
    const old = Date.now() - 100 * HOUR
    const cids: string[] = []
    for (let i = 1; i <= 2500; i++) {
      const bytes = new TextEncoder().encode(`envelope ${i}`)
      const cid = await rawCid(bytes)
      await node.blockstore.put(cid, bytes)
      cids.push(cid.toString())
      db.transaction(() => {
        const r = Number(insertReading.run(i, null).lastInsertRowid)
        const b = Number(insertBatch.run(template.stream_id, i, template.manifest, template.signature, template.commitment, cid.toString(), r, r, old, old, i).lastInsertRowid)
        db.prepare('UPDATE readings SET batch_id = ? WHERE id = ?').run(b, r)
      })()
    }
    expect(await pruneSynced(db, node.blockstore, 72 * HOUR, logger)).toBe(2500)
    expect(db.prepare("SELECT count(*) FROM readings WHERE device_id = 'bulk'").pluck().get()).toBe(0)
    expect(db.prepare('SELECT count(*) FROM batches WHERE synced_at IS NOT NULL AND pruned_at IS NULL').pluck().get()).toBe(0)
    for (const cid of [cids[0]!, cids[1500]!, cids.at(-1)!]) expect(await hasBlock(node, cid)).toBe(false)
  }, 180_000) // 2,500 durable block puts and commits: 2 fsyncs each
})

describe('orphan envelope blocks (deleteOrphanBlocks)', () => {
  it('deletes blocks no batch names and leftover temporary files, and nothing else', async () => {
    const { dir, db, node, sealRound } = await gatewayDir()
    await sealRound(['a', 'b'])
    const cids = db.prepare('SELECT cid FROM batches ORDER BY batch_id').pluck().all() as string[]
    // Since gateway schema v3 a sealed block is committed with its batch, in gateway.db: no file.
    expect(db.prepare('SELECT count(*) FROM envelope_blocks WHERE cid IN (SELECT cid FROM batches)').pluck().get()).toBe(cids.length)
    expect(readdirSync(join(dir, 'blocks'), { recursive: true }).filter((f) => String(f).endsWith('.data'))).toEqual([])
    // What an older build's crash between storeBlock and commitBatch left: a block file no batch names; and a write cut short.
    const orphan = new TextEncoder().encode('sealed, never committed')
    const orphanCid = await rawCid(orphan)
    const { dir: shard, file } = new NextToLast().encode(orphanCid)
    mkdirSync(join(dir, 'blocks', shard), { recursive: true })
    writeFileSync(join(dir, 'blocks', shard, file), orphan)
    expect(await hasBlock(node, orphanCid.toString())).toBe(true)
    writeFileSync(join(dir, 'blocks', shard, '.CIQFAKE.data.tmp'), 'half a block')
    writeFileSync(join(dir, 'blocks', shard, 'README'), 'not a block') // not ours: left alone
    expect(await deleteOrphanBlocks(db, node.blockstore, dir, logger)).toBe(1)
    expect(await hasBlock(node, orphanCid.toString())).toBe(false)
    for (const cid of cids) expect(await hasBlock(node, cid)).toBe(true)
    expect(existsSync(join(dir, 'blocks', shard, '.CIQFAKE.data.tmp'))).toBe(false)
    expect(existsSync(join(dir, 'blocks', shard, 'README'))).toBe(true)
    expect(await deleteOrphanBlocks(db, node.blockstore, dir, logger)).toBe(0)
  })
})

describe('outbox (OutboxSync)', () => {
  /** A cloud that answers each batch of a bulk upload with the next scripted status (201 when the script runs out). */
  class ScriptedCloud implements CloudUploader {
    readonly calls: number[][] = []
    readonly cars = new Map<number, Uint8Array>()
    readonly script: Map<number, number[]>
    constructor(script: Map<number, number[]>) {
      this.script = script
    }
    async upload(batches: readonly Upload[]): Promise<UploadResult[]> {
      this.calls.push(batches.map((b) => b.batchId))
      for (const b of batches) this.cars.set(b.batchId, b.car)
      return batches.map((b) => {
        const status = this.script.get(b.batchId)?.shift() ?? 201
        return status < 300 ? { status, recordId: 1000 + b.batchId, error: null } : { status, recordId: null, error: { code: status === 400 ? 'INVALID_MANIFEST' : 'INTERNAL', message: 'scripted' } }
      })
    }
  }

  it('keeps a batch the cloud could not judge (5xx, 429) pending and retries it after the backoff; a 4xx is kept as rejected', async () => {
    const { db, node, sealRound } = await gatewayDir()
    await sealRound(['a', 'b', 'c', 'd'])
    const [b1, b2, b3, b4] = db.prepare('SELECT batch_id FROM batches ORDER BY batch_id').pluck().all() as [number, number, number, number]
    const cloud = new ScriptedCloud(new Map([[b2, [500, 201]], [b3, [400]], [b4, [429, 200]]]))
    let clock = 1_000_000
    const sync = new OutboxSync(db, node.blockstore, cloud, logger, { baseMs: 1000, capMs: 2000 })
    const first = await sync.drain(() => clock)
    expect(first).toMatchObject({ sent: 4, accepted: 1, rejected: 1 })
    expect(first.failure).toMatch(/500/)
    expect(sync.depth()).toMatchObject({ pending: 2, rejected: 1 })
    expect(db.prepare('SELECT attempts, last_error FROM outbox WHERE batch_id = ?').get(b2)).toMatchObject({ attempts: 1, last_error: expect.stringMatching(/^500 INTERNAL/) })
    // Backing off: nothing is sent before notBefore, which the cap bounds.
    expect(sync.notBefore - clock).toBeLessThanOrEqual(2000)
    expect(await sync.drain(() => clock)).toMatchObject({ sent: 0, failure: 'backing off' })
    clock = sync.notBefore
    const second = await sync.drain(() => clock)
    expect(second).toEqual({ sent: 2, accepted: 2, rejected: 0, failure: null })
    expect(cloud.calls).toEqual([[b1, b2, b3, b4], [b2, b4]])
    // Settled with the record ids; the rejected one kept with its reason; none lost.
    expect(db.prepare('SELECT batch_id, record_id FROM batches WHERE synced_at IS NOT NULL ORDER BY batch_id').all()).toEqual([b1, b2, b4].map((b) => ({ batch_id: b, record_id: 1000 + b })))
    expect(db.prepare('SELECT batch_id, state FROM outbox').all()).toEqual([{ batch_id: b3, state: 'rejected' }])
    // The uploaded CAR carried the very block the sealer stored.
    const block = await readBlock(node.blockstore, CID.parse(db.prepare('SELECT cid FROM batches WHERE batch_id = ?').pluck().get(b1) as string))
    expect(Buffer.from(cloud.cars.get(b1)!).indexOf(Buffer.from(block))).toBeGreaterThan(0)
  })

  it('ships and prunes batches sealed before gateway schema v3, whose envelopes are block files', async () => {
    const { dir, db, node, sealRound } = await gatewayDir()
    await sealRound(['a', 'b'])
    // Lay the database out as a v2 gateway left it: each envelope a file in blockstore-fs's layout, no table.
    const rows = db.prepare('SELECT e.cid, e.bytes FROM envelope_blocks e JOIN batches b USING (cid) ORDER BY b.batch_id').all() as { cid: string; bytes: Buffer }[]
    expect(rows).toHaveLength(2)
    for (const r of rows) {
      const { dir: shard, file } = new NextToLast().encode(CID.parse(r.cid))
      mkdirSync(join(dir, 'blocks', shard), { recursive: true })
      writeFileSync(join(dir, 'blocks', shard, file), r.bytes)
    }
    db.exec('DROP TABLE envelope_blocks')
    db.pragma('user_version = 2')
    expect(migrate(db)).toEqual({ from: 2, to: 3 }) // what the upgraded gateway does at start
    expect(db.prepare('SELECT count(*) FROM envelope_blocks').pluck().get()).toBe(0)
    expect(node.usage.measure()).toBe(rows.reduce((n, r) => n + r.bytes.length, 0))
    const cloud = new ScriptedCloud(new Map())
    const sync = new OutboxSync(db, node.blockstore, cloud, logger, { baseMs: 1000, capMs: 2000 })
    expect(await sync.drain(() => Date.now())).toEqual({ sent: 2, accepted: 2, rejected: 0, failure: null })
    const ids = db.prepare('SELECT batch_id FROM batches ORDER BY batch_id').pluck().all() as number[]
    ids.forEach((id, i) => expect(Buffer.from(cloud.cars.get(id)!).indexOf(rows[i]!.bytes)).toBeGreaterThan(0))
    expect(await pruneSynced(db, node.blockstore, 0, logger, Date.now() + 1)).toBe(2)
    for (const r of rows) expect(await hasBlock(node, r.cid)).toBe(false)
    expect(node.usage.bytes).toBe(0)
    expect(node.usage.measure()).toBe(0)
  })

  it('caps the jittered backoff (never zero) at the configured maximum (CARELEDGER_SYNC_BACKOFF_MAX_S, default 5 min)', () => {
    expect(syncBackoffMaxMs({})).toBe(DEFAULT_BACKOFF.capMs)
    expect(syncBackoffMaxMs({ CARELEDGER_SYNC_BACKOFF_MAX_S: '' })).toBe(DEFAULT_BACKOFF.capMs)
    expect(syncBackoffMaxMs({ CARELEDGER_SYNC_BACKOFF_MAX_S: '1.5' })).toBe(1500)
    for (const bad of ['0', '-1', 'soon', '1e9']) expect(() => syncBackoffMaxMs({ CARELEDGER_SYNC_BACKOFF_MAX_S: bad })).toThrow(/CARELEDGER_SYNC_BACKOFF_MAX_S/)
    for (const attempt of [0, 3, 10, 40]) {
      expect(backoffDelay(attempt, { baseMs: 1000, capMs: 1500 }, () => 0.999999)).toBeLessThanOrEqual(1500)
    }
    expect(backoffDelay(20, undefined, () => 0.999999)).toBe(5 * 60_000 - 1)
    // Never an immediate retry: at least half the step.
    expect(backoffDelay(0, { baseMs: 1000, capMs: 2000 }, () => 0)).toBe(500)
  })
})
