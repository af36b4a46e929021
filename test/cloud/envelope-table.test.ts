/**
 * The SQLite cloud's envelope table (cloud/service/envelope-table.ts, issue 14's append work):
 *
 *   - a turn's puts share one transaction; every block reads back, re-hashes, and is replaced by a put;
 *   - blocks stored as files before the table (one file each under blocks/) stay readable: get, has,
 *     check and delete reach them, and a damaged one is named;
 *   - delete overwrites the row's bytes (secure_delete): the old ciphertext is not left in cloud.db;
 *   - a real cloud whose data directory holds both (records uploaded, then some of their envelopes
 *     turned back into files, as a cloud of an earlier version had them): the API serves every
 *     envelope, `careledger chain verify --data` re-hashes all of them and names a damaged file and
 *     a damaged row, and the scrub does too;
 *   - `careledger chain backup-envelopes` copies only the rows added since its last run, as block
 *     files; `chain restore-envelopes` puts back missing and damaged blocks from such a directory or
 *     from a cloud.db copy, beside the running service, and names the ones no backup holds.
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { afterAll, describe, expect, it } from 'vitest'
import { blockFilePath, FileEnvelopeStore } from '../../cloud/service/blockstore.ts'
import { TableEnvelopeStore } from '../../cloud/service/envelope-table.ts'
import { openCloudDb } from '../../cloud/store/db.ts'
import { batchBody, registerTestGateway, sealChain, signedPost, testStream } from '../helpers/cloud-batches.ts'
import { careledger, getAs, json, startTestCloud, tempDataDir } from '../helpers/cloud-process.ts'
import { storedEnvelopes } from '../helpers/envelopes.ts'
import { tempDir } from './chain-helpers.ts'

const tmp = tempDir('envelope-table')
afterAll(() => tmp.cleanup())
let n = 0
const fresh = (): string => join(tmp.dir, `case-${++n}`)

async function block(size = 2048): Promise<{ cid: CID; bytes: Uint8Array }> {
  const bytes = randomBytes(size)
  return { cid: CID.createV1(0x55, await sha256.digest(bytes)), bytes }
}

describe('TableEnvelopeStore', () => {
  it('puts of one turn share a transaction; blocks read back, re-hash, and a put replaces a damaged row', async () => {
    const dir = fresh()
    const db = openCloudDb(join(dir, 'cloud.db'))
    const store = new TableEnvelopeStore(db, null)
    const blocks = await Promise.all(Array.from({ length: 50 }, () => block()))
    const changes = db.prepare('SELECT total_changes()').pluck()
    const walFrames = (): number => (db.pragma('wal_checkpoint(PASSIVE)') as { log: number }[])[0]!.log
    db.pragma('wal_checkpoint(TRUNCATE)')
    const before = changes.get() as number
    await Promise.all(blocks.map((b) => store.put(b.cid, b.bytes)))
    expect((changes.get() as number) - before).toBe(50)
    // One commit: 50 rows of 2 KB fill a few dozen pages, written once each (not 50 commits' worth).
    expect(walFrames()).toBeLessThan(80)
    for (const b of blocks) {
      expect(Buffer.from((await store.get(b.cid))!)).toEqual(Buffer.from(b.bytes))
      expect(await store.has(b.cid)).toBe(true)
      expect(await store.check(b.cid)).toEqual({ state: 'ok', bytes: 2048 })
    }
    const [first] = blocks
    db.prepare('UPDATE envelope_blocks SET bytes = ? WHERE cid = ?').run(Buffer.alloc(2048), first!.cid.bytes)
    expect((await store.check(first!.cid)).state).toBe('corrupt')
    await store.put(first!.cid, first!.bytes)
    expect(await store.check(first!.cid)).toEqual({ state: 'ok', bytes: 2048 })
    const absent = await block()
    expect(await store.get(absent.cid)).toBeNull()
    expect(await store.check(absent.cid)).toMatchObject({ state: 'missing' })
    await store.close()
    db.close()
  })

  it('reads, checks and deletes blocks stored as files before the table', async () => {
    const dir = fresh()
    const files = await FileEnvelopeStore.open(join(dir, 'blocks'))
    const old = await block()
    const damaged = await block()
    await files.put(old.cid, old.bytes)
    await files.put(damaged.cid, damaged.bytes)
    writeFileSync(blockFilePath(join(dir, 'blocks'), damaged.cid), Buffer.alloc(10))
    const db = openCloudDb(join(dir, 'cloud.db'))
    const store = new TableEnvelopeStore(db, files)
    expect(Buffer.from((await store.get(old.cid))!)).toEqual(Buffer.from(old.bytes))
    expect(await store.has(old.cid)).toBe(true)
    expect(await store.check(old.cid)).toEqual({ state: 'ok', bytes: 2048 })
    expect(await store.check(damaged.cid)).toMatchObject({ state: 'corrupt', detail: expect.stringMatching(/its 10 bytes hash to SHA-256/) })
    // A repair puts the good copy into the table; it wins over the damaged file.
    await store.replace(damaged.cid, damaged.bytes)
    expect(await store.check(damaged.cid)).toEqual({ state: 'ok', bytes: 2048 })
    await store.delete(old.cid)
    expect(await store.has(old.cid)).toBe(false)
    expect(await files.has(old.cid)).toBe(false)
    await store.close()
    db.close()
  })

  it('delete leaves none of the bytes in cloud.db (secure_delete)', async () => {
    const dir = fresh()
    const path = join(dir, 'cloud.db')
    const db = openCloudDb(path)
    const store = new TableEnvelopeStore(db, null)
    const keep = await block()
    const gone = await block()
    await store.put(keep.cid, keep.bytes)
    await store.put(gone.cid, gone.bytes)
    db.pragma('wal_checkpoint(TRUNCATE)')
    const needle = Buffer.from(gone.bytes.subarray(100, 164))
    expect(readFileSync(path).includes(needle)).toBe(true)
    await store.delete(gone.cid)
    db.pragma('wal_checkpoint(TRUNCATE)')
    expect(readFileSync(path).includes(needle)).toBe(false)
    expect(readFileSync(path).includes(Buffer.from(keep.bytes.subarray(100, 164)))).toBe(true)
    await store.close()
    db.close()
  })
})

describe('a cloud whose envelopes are partly files of an earlier version', () => {
  it('serves, verifies and scrubs both', async () => {
    const data = tempDataDir('envelope-table-mixed')
    try {
      let cloud = await startTestCloud(data.dir, { blockIntervalS: '3600', verifyIntervalS: '3600' })
      const gw = await registerTestGateway(cloud)
      const batches = await sealChain(testStream(gw, 'bed-01', 'P-1'), 4)
      for (const b of batches) expect((await signedPost(cloud.url, gw, '/v1/batches', await batchBody(b))).res.status).toBe(201)
      expect(cloud.sealNow()).not.toBeNull()
      const doctor = (await cloud.tokens.create('doctor', 'dr')).token
      await cloud.stop()

      // Records 1 and 2's envelopes as a pre-table cloud stored them: files, no rows.
      const files = await FileEnvelopeStore.open(join(data.dir, 'blocks'))
      const db = new Database(join(data.dir, 'cloud.db'))
      for (const b of batches.slice(0, 2)) {
        await files.put(b.cid, b.envelope)
        db.prepare('DELETE FROM envelope_blocks WHERE cid = ?').run(b.cid.bytes)
      }
      db.close()
      await files.close()

      cloud = await startTestCloud(data.dir, { blockIntervalS: '3600', verifyIntervalS: '3600' })
      try {
        for (const [i, b] of batches.entries()) {
          const res = await getAs(cloud.url, doctor, `/v1/records/${i + 1}/envelope`)
          expect(res.status).toBe(200)
          expect(Buffer.from(await res.arrayBuffer())).toEqual(Buffer.from(b.envelope))
        }
        const ok = await careledger(['chain', 'verify', '--data', data.dir, '--workers', '0', '--json'])
        expect(ok.code, ok.stderr).toBe(0)
        expect(JSON.parse(ok.stdout).envelopes).toEqual({ checked: 4, bytes: batches.reduce((s, b) => s + b.envelope.length, 0) })

        // One damaged file (record 1), one damaged row (record 3): both named, by the CLI and the scrub.
        writeFileSync(blockFilePath(join(data.dir, 'blocks'), batches[0]!.cid), Buffer.alloc(5))
        const stored = storedEnvelopes(data.dir)
        stored.write(batches[2]!.cid, Buffer.alloc(7))
        const bad = await careledger(['chain', 'verify', '--data', data.dir, '--workers', '0'])
        expect(bad.code).toBe(1)
        expect(bad.stdout).toMatch(/ENVELOPE_CORRUPT\s+(height \d+\s+)?record 1\b/)
        expect(bad.stdout).toMatch(/ENVELOPE_CORRUPT\s+(height \d+\s+)?record 3\b/)
        const scrub = await cloud.scrubNow()
        expect(scrub.open).toBe(2)
        // What an operator watches now that cloud.db holds the ciphertext: its size and the free space.
        const admin = (await cloud.tokens.create('admin', 'ops')).token
        const metrics = await (await getAs(cloud.url, admin, '/metrics')).text()
        const gauge = (name: string): number => Number(new RegExp(`^careledger_cloud_${name} (\\S+)$`, 'm').exec(metrics)?.[1])
        expect(gauge('db_bytes')).toBeGreaterThan(batches.reduce((n, b) => n + b.envelope.length, 0) / 2)
        expect(gauge('data_free_bytes')).toBeGreaterThan(0)
        expect(gauge('data_size_bytes')).toBeGreaterThan(gauge('data_free_bytes'))
        expect((await json(getAs(cloud.url, doctor, '/v1/records/3/envelope'))).error.code).toBe('DAMAGED')
      } finally {
        await cloud.stop()
      }
    } finally {
      data.cleanup()
    }
  })
})

describe('careledger chain backup-envelopes / restore-envelopes', () => {
  it('backs up new rows incrementally as block files, and restores missing and damaged blocks from them or from a cloud.db copy', async () => {
    const data = tempDataDir('envelope-backup')
    const backup = join(data.dir, 'backup')
    try {
      const cloud = await startTestCloud(data.dir, { blockIntervalS: '3600', verifyIntervalS: '3600' })
      try {
        const gw = await registerTestGateway(cloud)
        const batches = await sealChain(testStream(gw, 'bed-01', 'P-1'), 4)
        const upload = async (i: number): Promise<void> => void expect((await signedPost(cloud.url, gw, '/v1/batches', await batchBody(batches[i]!))).res.status).toBe(201)
        for (const i of [0, 1, 2]) await upload(i)
        const first = await careledger(['chain', 'backup-envelopes', '--to', backup, '--data', data.dir])
        expect(first.code, first.stderr).toBe(0)
        expect(first.stdout).toMatch(/^backed up 3 envelope blocks/)
        await upload(3)
        const second = await careledger(['chain', 'backup-envelopes', '--to', backup, '--data', data.dir])
        expect(second.stdout).toMatch(/^backed up 1 envelope block /) // only the new one
        for (const b of batches) expect(readFileSync(blockFilePath(backup, b.cid))).toEqual(Buffer.from(b.envelope))
        const verified = await careledger(['chain', 'verify', '--db', join(data.dir, 'cloud.db'), '--chameleon-key', join(data.dir, 'keys', 'chameleon-public.key'), '--blocks', backup, '--workers', '0', '--json'])
        expect(JSON.parse(verified.stdout).envelopes.checked).toBe(4)

        // Record 2's block lost, record 3's damaged: back from the backup directory, while the service runs.
        const stored = storedEnvelopes(data.dir)
        stored.remove(batches[1]!.cid)
        stored.write(batches[2]!.cid, Buffer.alloc(9))
        expect((await cloud.scrubNow()).open).toBe(2)
        const restored = await careledger(['chain', 'restore-envelopes', '--from', backup, '--data', data.dir])
        expect(restored.code, restored.stderr).toBe(0)
        expect(restored.stdout).toMatch(/checked 4 records' envelope blocks: 2 restored .* \(records 2, 3\)/)
        expect((await cloud.scrubNow()).open).toBe(0)
        expect(stored.read(batches[2]!.cid)).toEqual(Buffer.from(batches[2]!.envelope))
        // The restored rows are new rows: the next incremental backup copies them (nothing else).
        expect((await careledger(['chain', 'backup-envelopes', '--to', backup, '--data', data.dir])).stdout).toMatch(/^backed up 2 envelope blocks/)

        // From a copy of cloud.db; and a block no backup holds is named, exit 1.
        const copy = join(data.dir, 'cloud-copy.db')
        const live = new Database(join(data.dir, 'cloud.db'), { readonly: true })
        await live.backup(copy)
        live.close()
        stored.write(batches[0]!.cid, Buffer.alloc(3))
        const fromDb = await careledger(['chain', 'restore-envelopes', '--from', copy, '--data', data.dir])
        expect(fromDb.stdout).toMatch(/1 restored .* \(records 1\)/)
        stored.remove(batches[3]!.cid)
        const empty = join(data.dir, 'empty')
        mkdirSync(empty)
        const none = await careledger(['chain', 'restore-envelopes', '--from', empty, '--data', data.dir])
        expect(none.code).toBe(1)
        expect(none.stderr).toMatch(/1 record's block is missing or damaged and the backup has no good copy: records 4/)
        const notThere = await careledger(['chain', 'restore-envelopes', '--from', join(data.dir, 'nope'), '--data', data.dir])
        expect(notThere.code).not.toBe(0)
        expect(notThere.stderr).toMatch(/--from .*nope: no such file or directory/)
      } finally {
        await cloud.stop()
      }
    } finally {
      data.cleanup()
    }
  })
})
