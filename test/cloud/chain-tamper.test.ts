/**
 * Tamper evidence: a real chain in a SQLite file, copied, then one byte changed by hand with a
 * raw SQL UPDATE (hex/unhex/substr, no application code), and `verifyChain` — and for some cases
 * `careledger chain verify` as a real process — must name the kind, the height and the record.
 * Also: an approved redaction (trapdoor) passes, a content edit without it does not; the
 * verification cache re-checks exactly what changed; a run reads one snapshot while appends go on.
 */
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import Database from 'better-sqlite3'
import { bytesToHex } from '@noble/hashes/utils.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { chameleonAdapt, encodeChameleonPublicKey } from '../../shared/crypto/chameleon.ts'
import { openCloudDb } from '../../cloud/store/db.ts'
import { ChainStore } from '../../cloud/chain/store.ts'
import { decodeRecordContent, encodeRecordContent } from '../../cloud/chain/record.ts'
import { VerificationCache, VerifyWorkerPool, verifyChain, verifyRecordProof, type VerificationFailure } from '../../cloud/chain/verify.ts'
import { chainTestKeys, tempDir, testFleet } from './chain-helpers.ts'

const tmp = tempDir('chain-tamper')
afterAll(() => tmp.cleanup())
const keys = chainTestKeys('tamper tests')
const pristine = join(tmp.dir, 'pristine.db')
const chameleonKeyFile = join(tmp.dir, 'chameleon-public.key')
const ROOT = join(import.meta.dirname, '..', '..')
const fleet = testFleet(3, 4, 'tamper')
const SEQS = 6
/** Record ids of block 2 (its 12 records), and one of them. */
const TARGET_HEIGHT = 2
const TARGET_RECORD = 30

beforeAll(async () => {
  const db = openCloudDb(pristine)
  const store = new ChainStore(db, keys.store, { workers: 0 })
  for (let seq = 0; seq < SEQS; seq++) {
    for (const s of fleet) store.appendBatch(s.batch(seq))
    store.sealBlock(1_760_000_000_000 + seq * 5000)
  }
  for (const s of fleet.slice(0, 3)) store.appendBatch(s.batch(SEQS)) // a few pending records
  expect(store.getBlock(TARGET_HEIGHT)!.records).toContain(TARGET_RECORD)
  await store.close()
  db.pragma('wal_checkpoint(TRUNCATE)')
  db.close()
  writeFileSync(chameleonKeyFile, encodeChameleonPublicKey(keys.chameleon.publicKey))
})

let copies = 0
/** A fresh copy of the pristine chain and a raw connection to it (no application code). */
function copy(): { path: string; sql: Database.Database } {
  const path = join(tmp.dir, `copy-${++copies}.db`)
  copyFileSync(pristine, path)
  return { path, sql: new Database(path) }
}

/** Replace byte `offset` of a BLOB with `value` — pure SQL, the way someone with the database file would. */
function setByte(sql: Database.Database, table: string, column: string, where: string, offset: number, value?: number): void {
  const old = sql.prepare(`SELECT substr(hex(${column}), ?, 2) FROM ${table} WHERE ${where}`).pluck().get(offset * 2 + 1) as string
  const next = value ?? parseInt(old, 16) ^ 0x01
  const n = sql
    .prepare(`UPDATE ${table} SET ${column} = unhex(substr(hex(${column}), 1, ?) || ? || substr(hex(${column}), ?)) WHERE ${where}`)
    .run(offset * 2, next.toString(16).padStart(2, '0'), offset * 2 + 3).changes
  expect(n).toBe(1)
}

/** Offset of an ASCII string inside a BLOB column. */
function offsetOf(sql: Database.Database, table: string, column: string, where: string, text: string): number {
  const i = sql.prepare(`SELECT instr(${column}, CAST(? AS BLOB)) FROM ${table} WHERE ${where}`).pluck().get(text) as number
  expect(i).toBeGreaterThan(0)
  return i - 1
}

const verifyFile = (path: string, extra: { cache?: VerificationCache; workers?: number } = {}) =>
  verifyChain(path, { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey, workers: extra.workers ?? 2, ...(extra.cache ? { cache: extra.cache } : {}) })
const summary = (fs: readonly VerificationFailure[]) => fs.map((f) => [f.kind, f.height ?? null, f.recordId ?? null])

describe('the untouched chain', () => {
  it('verifies, with and without workers', async () => {
    for (const workers of [0, 2]) {
      const r = await verifyFile(pristine, { workers })
      expect(r).toMatchObject({ ok: true, blocks: SEQS, records: 12 * SEQS + 3, pendingRecords: 3, streams: 12, failures: [], recordsChecked: 12 * SEQS + 3 })
      expect(r.workers).toBe(workers)
      expect(r.head!.height).toBe(SEQS - 1)
    }
  })
})

describe('one byte changed by hand', () => {
  it("a record's content (a byte of its manifest's policy): its opening, its gateway signature and its indexed commitment fail", async () => {
    const { path, sql } = copy()
    setByte(sql, 'records', 'content', `id = ${TARGET_RECORD}`, offsetOf(sql, 'records', 'content', `id = ${TARGET_RECORD}`, 'role:doctor') + 5)
    sql.close()
    const r = await verifyFile(path)
    expect(r.ok).toBe(false)
    // The changed manifest also no longer has the commitment the row indexes it by (RECORD_CONTENT).
    expect(summary(r.failures)).toEqual([
      ['MANIFEST_SIGNATURE', TARGET_HEIGHT, TARGET_RECORD],
      ['RECORD_CONTENT', TARGET_HEIGHT, TARGET_RECORD],
      ['RECORD_OPENING', TARGET_HEIGHT, TARGET_RECORD],
    ])
    expect(r.failures.find((f) => f.kind === 'RECORD_CONTENT')!.message).toContain('manifest commitment')
  })

  it("a record's opening", async () => {
    const { path, sql } = copy()
    setByte(sql, 'records', 'opening', `id = ${TARGET_RECORD}`, 40)
    sql.close()
    expect(summary((await verifyFile(path)).failures)).toEqual([['RECORD_OPENING', TARGET_HEIGHT, TARGET_RECORD]])
  })

  it('openings damaged in several chunks, checked by a worker and the calling thread together: each named once, every other record checked', async () => {
    const { path, sql } = copy()
    const damaged = [1, TARGET_RECORD, 12 * SEQS]
    for (const id of damaged) setByte(sql, 'records', 'opening', `id = ${id}`, 40)
    sql.close()
    for (const chunkSize of [4, 1024]) {
      const r = await verifyChain(path, { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey, workers: 1, callingThreadChecks: true, chunkSize })
      expect(r.recordsChecked).toBe(12 * SEQS + 3)
      expect(r.workers).toBe(1)
      expect(r.failures.map((f) => [f.kind, f.recordId])).toEqual(damaged.map((id) => ['RECORD_OPENING', id]))
    }
  })

  it("a record's hash: its opening and its block's records root fail", async () => {
    const { path, sql } = copy()
    setByte(sql, 'records', 'hash', `id = ${TARGET_RECORD}`, 3)
    sql.close()
    expect(summary((await verifyFile(path)).failures)).toEqual([
      ['RECORDS_ROOT', TARGET_HEIGHT, null],
      ['RECORD_OPENING', TARGET_HEIGHT, TARGET_RECORD],
    ])
  })

  it('a block header (a digit of its records root): hash, signature, root, and the next block’s link fail', async () => {
    const { path, sql } = copy()
    const at = offsetOf(sql, 'blocks', 'header', `height = ${TARGET_HEIGHT}`, 'recordsRoot') + 'recordsRoot'.length + 2 // past the text header byte(s) of the value
    const old = sql.prepare(`SELECT substr(hex(header), ?, 2) FROM blocks WHERE height = ${TARGET_HEIGHT}`).pluck().get(at * 2 + 1) as string
    setByte(sql, 'blocks', 'header', `height = ${TARGET_HEIGHT}`, at, old === '30' ? 0x31 : 0x30) // another hex digit: still a valid header
    sql.close()
    expect(summary((await verifyFile(path)).failures)).toEqual([
      ['BLOCK_HASH', TARGET_HEIGHT, null],
      ['BLOCK_SIGNATURE', TARGET_HEIGHT, null],
      ['RECORDS_ROOT', TARGET_HEIGHT, null],
      ['PREV_LINK', TARGET_HEIGHT + 1, null],
    ])
  })

  it('a block signature', async () => {
    const { path, sql } = copy()
    setByte(sql, 'blocks', 'signature', `height = ${TARGET_HEIGHT}`, 17)
    sql.close()
    expect(summary((await verifyFile(path)).failures)).toEqual([['BLOCK_SIGNATURE', TARGET_HEIGHT, null]])
  })

  it("a block's prev (a digit inside the header), with and without the stored hash recomputed to match", async () => {
    for (const recompute of [false, true]) {
      const { path, sql } = copy()
      const at = offsetOf(sql, 'blocks', 'header', `height = ${TARGET_HEIGHT}`, 'prev') + 'prev'.length + 2
      const old = sql.prepare(`SELECT substr(hex(header), ?, 2) FROM blocks WHERE height = ${TARGET_HEIGHT}`).pluck().get(at * 2 + 1) as string
      setByte(sql, 'blocks', 'header', `height = ${TARGET_HEIGHT}`, at, old === '30' ? 0x31 : 0x30)
      if (recompute) {
        const header = sql.prepare(`SELECT header FROM blocks WHERE height = ${TARGET_HEIGHT}`).pluck().get() as Buffer
        sql.prepare(`UPDATE blocks SET hash = unhex(?) WHERE height = ${TARGET_HEIGHT}`).run(bytesToHex(sha256(header)))
      }
      sql.close()
      expect(summary((await verifyFile(path)).failures)).toEqual([
        ...(recompute ? [] : [['BLOCK_HASH', TARGET_HEIGHT, null]]),
        ['BLOCK_SIGNATURE', TARGET_HEIGHT, null],
        ['PREV_LINK', TARGET_HEIGHT, null],
        ['PREV_LINK', TARGET_HEIGHT + 1, null],
      ])
    }
  })

  it('`careledger chain verify` as a process: exit 1 naming kind, height and record; exit 0 when intact', () => {
    const { path, sql } = copy()
    setByte(sql, 'records', 'hash', `id = ${TARGET_RECORD}`, 0)
    sql.close()
    const cli = (args: string[]) => spawnSync(process.execPath, [join(ROOT, 'bin', 'careledger.ts'), 'chain', 'verify', ...args], { encoding: 'utf8', cwd: ROOT })
    const keyArgs = ['--chameleon-key', chameleonKeyFile, '--signing-key', bytesToHex(keys.signing.publicKey)]
    const bad = cli(['--db', path, ...keyArgs])
    expect(bad.status, bad.stderr).toBe(1)
    expect(bad.stdout).toContain('NOT INTACT (2 failures)')
    expect(bad.stdout).toMatch(new RegExp(`RECORD_OPENING\\s+height ${TARGET_HEIGHT}\\s+record ${TARGET_RECORD}\\b`))
    expect(bad.stdout).toMatch(new RegExp(`RECORDS_ROOT\\s+height ${TARGET_HEIGHT}\\b`))
    const json = cli(['--db', path, ...keyArgs, '--json', '--workers', '0'])
    expect(json.status).toBe(1)
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, failureCounts: { RECORD_OPENING: 1, RECORDS_ROOT: 1 } })

    const good = cli(['--db', pristine, ...keyArgs])
    expect(good.status, good.stderr).toBe(0)
    expect(good.stdout).toContain('INTACT')
    expect(good.stdout).toContain('given with --signing-key: independent of the audited data')

    // --data with the service's file layout: <data>/cloud.db, <data>/keys/cloud-signing.pub (raw), chameleon-public.key.
    const data = join(tmp.dir, 'data')
    mkdirSync(join(data, 'keys'), { recursive: true })
    copyFileSync(pristine, join(data, 'cloud.db'))
    writeFileSync(join(data, 'keys', 'cloud-signing.pub'), keys.signing.publicKey)
    copyFileSync(chameleonKeyFile, join(data, 'keys', 'chameleon-public.key'))
    const viaData = cli(['--data', data])
    expect(viaData.status, viaData.stderr).toBe(0)
    // Issue 8 item 11: a key read from the audited directory is said plainly not to be independent.
    expect(viaData.stdout).toContain('NOT INDEPENDENT: read from the audited data directory itself')
    expect(viaData.stdout).not.toContain('independent of the audited data')
    expect(viaData.stderr).toContain(`the block-signing key was read from ${join(data, 'keys', 'cloud-signing.pub')}, inside the data being audited: it is not independent`)
    const viaDataJson = cli(['--data', data, '--json'])
    expect(JSON.parse(viaDataJson.stdout).signingKeys.source).toBe('data-directory')
    // …and with --signing-key beside --data, the key is the given one.
    const dataWithKey = cli(['--data', data, '--signing-key', bytesToHex(keys.signing.publicKey)])
    expect(dataWithKey.stdout).toContain('given with --signing-key: independent of the audited data')
    // A usage error is exit 2, not a verdict.
    expect(cli(['--db', join(tmp.dir, 'nope.db'), ...keyArgs]).status).toBe(2)
  })
})

describe('structural damage', () => {
  const structural: [string, (sql: Database.Database) => void, (string | number | null)[][]][] = [
    ['a record moved to the next block', (sql) => sql.prepare(`UPDATE records SET block_height = ${TARGET_HEIGHT + 1} WHERE id = ${TARGET_RECORD}`).run(), [
      ['RECORDS_ROOT', TARGET_HEIGHT, null],
      ['RECORD_ASSIGNMENT', TARGET_HEIGHT, null],
      ['RECORDS_ROOT', TARGET_HEIGHT + 1, null],
      ['RECORD_ASSIGNMENT', TARGET_HEIGHT + 1, null],
    ]],
    ['a sealed record marked pending again', (sql) => sql.prepare(`UPDATE records SET block_height = NULL WHERE id = ${TARGET_RECORD}`).run(), [
      ['RECORDS_ROOT', TARGET_HEIGHT, null],
      ['RECORD_ASSIGNMENT', TARGET_HEIGHT, null],
      ['RECORD_ASSIGNMENT', null, TARGET_RECORD],
    ]],
    ['a record deleted', (sql) => sql.prepare(`DELETE FROM records WHERE id = ${TARGET_RECORD}`).run(), [
      ['RECORDS_ROOT', TARGET_HEIGHT, null],
      ['RECORD_ASSIGNMENT', TARGET_HEIGHT, null],
      ['STREAM_INDEX', null, null],
    ]],
    ['a stream link column rewritten', (sql) => sql.prepare(`UPDATE records SET prev_commitment = '${'ab'.repeat(32)}' WHERE id = ${TARGET_RECORD}`).run(), [
      ['RECORD_CONTENT', TARGET_HEIGHT, TARGET_RECORD],
      ['STREAM_LINK', TARGET_HEIGHT, TARGET_RECORD],
    ]],
    ['a block deleted from the middle', (sql) => {
      sql.pragma('foreign_keys = OFF')
      sql.prepare(`DELETE FROM blocks WHERE height = ${TARGET_HEIGHT}`).run()
    }, [
      // Its records point at a block that is gone; the next block neither links nor continues.
      ...Array.from({ length: 12 }, (_, i) => ['RECORD_ASSIGNMENT', TARGET_HEIGHT, 25 + i]),
      ['HEIGHT', TARGET_HEIGHT + 1, null],
      ['PREV_LINK', TARGET_HEIGHT + 1, null],
      ['RECORD_ASSIGNMENT', TARGET_HEIGHT + 1, null],
    ]],
  ]
  for (const [name, damage, expected] of structural) {
    it(name, async () => {
      const { path, sql } = copy()
      damage(sql)
      sql.close()
      expect(summary((await verifyFile(path)).failures)).toEqual(expected)
    })
  }

  it('truncation (the newest block dropped) is caught against a head known from elsewhere', async () => {
    const { path, sql } = copy()
    const head = sql.prepare('SELECT height, hex(hash) AS hash FROM blocks ORDER BY height DESC LIMIT 1').get() as { height: number; hash: string }
    sql.pragma('foreign_keys = OFF')
    sql.prepare('UPDATE records SET block_height = NULL WHERE block_height = ?').run(head.height)
    sql.prepare('DELETE FROM blocks WHERE height = ?').run(head.height)
    sql.close()
    expect((await verifyFile(path)).ok).toBe(true) // self-consistent: only an outside anchor can tell
    const r = await verifyChain(path, { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey, expectHead: { height: head.height, hash: head.hash.toLowerCase() } })
    expect(summary(r.failures)).toEqual([['HEAD', head.height, null]])
  })
})

describe('redaction', () => {
  it('new content stored with the trapdoor’s new opening verifies, block hashes unchanged; content alone does not', async () => {
    const { path, sql } = copy()
    sql.close()
    const db = openCloudDb(path)
    const store = new ChainStore(db, keys.store, { workers: 0 })
    const before = store.getBlock(TARGET_HEIGHT)!
    const row = db.prepare('SELECT content, hash, received_at FROM records WHERE id = ?').get(TARGET_RECORD) as { content: Buffer; hash: Buffer; received_at: number }
    // The correction: the cloud's receive time was an hour off.
    const rec = decodeRecordContent(new Uint8Array(row.content))
    const corrected = encodeRecordContent({ ...rec, receivedAt: rec.receivedAt - 3_600_000 })
    const opening = chameleonAdapt(keys.chameleon.secretKey, corrected, new Uint8Array(row.hash))
    // Content only: the opening no longer opens the hash.
    db.prepare('UPDATE records SET content = ?, received_at = ? WHERE id = ?').run(corrected, rec.receivedAt - 3_600_000, TARGET_RECORD)
    expect(summary((await verifyFile(path)).failures)).toEqual([['RECORD_OPENING', TARGET_HEIGHT, TARGET_RECORD]])
    // Content and the adapted opening together: intact, and no block changed.
    db.prepare('UPDATE records SET opening = ? WHERE id = ?').run(opening, TARGET_RECORD)
    const r = await verifyFile(path)
    expect(r.failures).toEqual([])
    const after = store.getBlock(TARGET_HEIGHT)!
    expect(after.hash).toBe(before.hash)
    expect(after.headerBytes).toBe(before.headerBytes)
    expect(after.signature).toBe(before.signature)
    expect(store.getRecord(TARGET_RECORD)!.receivedAt).toBe(rec.receivedAt - 3_600_000)
    // The old inclusion proof path still holds: the leaf is the unchanged hash.
    expect(verifyRecordProof(store.recordProof(TARGET_RECORD), { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey }).ok).toBe(true)
    // A redaction of a signed manifest field needs more than the trapdoor: the gateway's signature no longer covers it.
    const policyEdit = encodeRecordContent({ ...rec, receivedAt: rec.receivedAt - 3_600_000, manifest: { ...rec.manifest, policy: 'role:regulator' } })
    db.prepare('UPDATE records SET content = ?, opening = ? WHERE id = ?').run(policyEdit, chameleonAdapt(keys.chameleon.secretKey, policyEdit, new Uint8Array(row.hash)), TARGET_RECORD)
    expect(summary((await verifyFile(path)).failures).map((f) => f[0])).toEqual(['MANIFEST_SIGNATURE', 'RECORD_CONTENT'])
    await store.close()
    db.close()
  })
})

describe('verification cache and snapshots', () => {
  it('a cached re-run skips only unchanged records and still catches a changed one', async () => {
    const { path, sql } = copy()
    const cache = new VerificationCache()
    const first = await verifyFile(path, { cache })
    expect(first).toMatchObject({ ok: true, recordsChecked: 75, recordsCached: 0 })
    expect(cache.size).toBe(75)
    const second = await verifyFile(path, { cache })
    expect(second).toMatchObject({ ok: true, recordsChecked: 0, recordsCached: 75 })
    setByte(sql, 'records', 'opening', `id = ${TARGET_RECORD}`, 9)
    sql.close()
    const third = await verifyFile(path, { cache })
    expect(third).toMatchObject({ ok: false, recordsChecked: 1, recordsCached: 74 })
    expect(summary(third.failures)).toEqual([['RECORD_OPENING', TARGET_HEIGHT, TARGET_RECORD]])
    // It failed, so it is not remembered: the next run checks it again.
    expect((await verifyFile(path, { cache })).recordsChecked).toBe(1)
  })

  it('threads kept in a VerifyWorkerPool serve run after run, one run at a time, under one key', async () => {
    const { path, sql } = copy()
    const pool = new VerifyWorkerPool(keys.chameleon.publicKey, 2)
    const opts = { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey, pool }
    try {
      expect(await verifyChain(path, opts)).toMatchObject({ ok: true, workers: 2, recordsChecked: 75 })
      const both = await Promise.allSettled([verifyChain(path, opts), verifyChain(path, opts)])
      expect(both.map((b) => b.status).sort()).toEqual(['fulfilled', 'rejected'])
      expect(((both.find((b) => b.status === 'rejected') as PromiseRejectedResult).reason as { info: { reason: string } }).info.reason).toBe('POOL_BUSY')
      setByte(sql, 'records', 'opening', `id = ${TARGET_RECORD}`, 12)
      sql.close()
      expect(summary((await verifyChain(path, opts)).failures)).toEqual([['RECORD_OPENING', TARGET_HEIGHT, TARGET_RECORD]])
      const other = new VerifyWorkerPool(chainTestKeys('someone else').chameleon.publicKey, 1)
      await expect(verifyChain(path, { ...opts, pool: other })).rejects.toMatchObject({ info: { reason: 'POOL_KEY' } })
      await other.close()
    } finally {
      await pool.close()
    }
  })

  it('reads one snapshot while the service keeps appending and sealing', async () => {
    const { path, sql } = copy()
    sql.close()
    const db = openCloudDb(path)
    const store = new ChainStore(db, keys.store, { workers: 0 })
    let done = false
    const running = verifyChain(db, { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey, workers: 2 }).finally(() => (done = true))
    let seq = SEQS
    while (!done && seq < SEQS + 40) {
      for (const s of fleet.slice(3)) store.appendBatch(s.batch(seq))
      store.sealBlock(1_800_000_000_000 + seq)
      seq++
      await new Promise((r) => setImmediate(r))
    }
    const r = await running
    expect(seq).toBeGreaterThan(SEQS) // the writer really ran meanwhile
    expect(r).toMatchObject({ ok: true, records: 75, blocks: SEQS })
    expect((await verifyFile(path)).ok).toBe(true)
    expect(existsSync(`${path}-wal`)).toBe(true)
    expect(statSync(path).size).toBeGreaterThan(0)
    await store.close()
    db.close()
  })
})
