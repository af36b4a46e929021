/**
 * The redaction log is on the chain (issue 10): every block sealed after an apply is a v2 block
 * committing the log's entry count and head, sealed in the applying transaction itself, so a cloud
 * admin with direct SQLite access can neither undo an approved redaction (old row restored, entry
 * removed) nor delete, reorder or rewrite entries without `chain verify` naming it. Real SQLite
 * files, real ChainStore and SupervisionStore; 1-of-1 policies keep the applies quick.
 */
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import Database from 'better-sqlite3'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, concatBytes } from '@noble/hashes/utils.js'
import { openCloudDb, type CloudDb } from '../../cloud/store/db.ts'
import { ChainStore } from '../../cloud/chain/store.ts'
import { decodeBlockHeader } from '../../cloud/chain/block.ts'
import { verifyChain, type VerificationReport } from '../../cloud/chain/verify.ts'
import { formatReport } from '../../cloud/chain/cli.ts'
import { sqliteSupervision, type SupervisionStore, type Applied } from '../../cloud/supervision/store.ts'
import { chameleonAdapt } from '../../shared/crypto/chameleon.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { decodeRedactionLogEntry, encodeRedactionLogEntry, redactionLogEntryHash } from '../../shared/protocol/redaction-log.ts'
import { chainTestKeys, tempDir, testFleet } from '../cloud/chain-helpers.ts'
import { errorOf } from '../helpers/frost.ts'
import { usePostgres } from '../helpers/postgres.ts'
import { openPgChainStore } from '../../cloud/store/pg/chain-store.ts'
import { pgSupervision } from '../../cloud/store/pg/supervision.ts'
import { verifyPgChain } from '../../cloud/store/pg/snapshot.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { committee, signDecision, subjectOf, type Committee } from '../helpers/supervision.ts'

const tmp = tempDir('log-commitment')
const postgres = usePostgres()
afterAll(() => tmp.cleanup())
const keys = chainTestKeys('log commitment')
const fleet = testFleet(2, 2, 'log-commitment')
const rng = deterministicRng('log commitment rng')
const T0 = 1_767_300_000_000
let n = 0

interface Fixture {
  path: string
  db: CloudDb
  chain: ChainStore
  /** Seals in the applying transaction, as the cloud service does (cloud/runtime.ts). */
  sup: SupervisionStore
  /** Without the sealer: its entries wait for the next block. */
  lazy: SupervisionStore
  c: Committee
  close: () => Promise<void>
}

async function fixture(): Promise<Fixture> {
  const path = join(tmp.dir, `chain-${++n}.db`)
  const db = openCloudDb(path)
  const chain = new ChainStore(db, keys.store, { workers: 0 })
  for (let seq = 0; seq < 3; seq++) {
    for (const s of fleet) chain.appendBatch(s.batch(seq))
    chain.sealBlock(1_760_000_000_000 + seq * 5000)
  }
  let tick = 0
  const now = () => T0 + ++tick * 1000
  const sup = sqliteSupervision(db, { chameleonPublicKey: keys.chameleon.publicKey, now, seal: (t) => chain.sealBlock(t) })
  const lazy = sqliteSupervision(db, { chameleonPublicKey: keys.chameleon.publicKey, now })
  const c = committee(1, 1, keys.chameleon.secretKey)
  await sup.setPolicy(c.policy)
  return { path, db, chain, sup, lazy, c, close: async () => { await chain.close(); db.close() } }
}

/** Delete `record` under the 1-of-1 policy: request, approval, opening made with the trapdoor. */
async function redact(f: Fixture, record: number, reason: string, via: SupervisionStore = f.sup): Promise<Applied> {
  let r = await via.createRequest({ record, action: 'delete', reason, requester: 'admin-1 (admin)' })
  r = await via.decide(r.id, await signDecision(f.c.policy, f.c.regulators[0]!.wallet, subjectOf(r)))
  return via.submitOpening(r.id, chameleonAdapt(keys.chameleon.secretKey, Buffer.from(r.newContentBytes, 'hex'), Buffer.from(r.hash, 'hex'), rng, 2))
}

const verify = (f: Fixture): Promise<VerificationReport> => verifyChain(f.path, { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey, workers: 0 })
const logFailures = (r: VerificationReport) => r.failures.filter((x) => x.kind === 'REDACTION_LOG')

/** Rewrite the log's log_hash column from its entries, as an admin covering their tracks would. */
function relink(sql: Database.Database): void {
  let prev = new Uint8Array(32)
  for (const row of sql.prepare('SELECT seq, hash FROM redaction_log ORDER BY seq').all() as { seq: number; hash: Buffer }[]) {
    prev = sha256(concatBytes(prev, new Uint8Array(row.hash)))
    sql.prepare('UPDATE redaction_log SET log_hash = ? WHERE seq = ?').run(prev, row.seq)
  }
}

describe('the redaction log committed by block headers v2', () => {
  it('an apply seals, in its own transaction, a block committing the log (no records: only the log moved)', async () => {
    const f = await fixture()
    try {
      const applied = await redact(f, 5, 'recorded on the wrong patient')
      const log = await f.sup.redactionLog()
      expect(applied.block).toMatchObject({ height: 3, count: 0, version: 2, redactions: { count: 1, head: log[0]!.logHash } })
      expect(f.chain.getBlock(3)!.header).toMatchObject({ v: 2, count: 0, first: 13, last: 12, redactions: { count: 1, head: log[0]!.logHash } })
      // The blocks before the apply are unchanged (they commit the empty log).
      expect(f.chain.getBlock(2)!.header).toMatchObject({ v: 2, redactions: { count: 0, head: '0'.repeat(64) } })
      const report = await verify(f)
      expect(report.failures).toEqual([])
      expect(report.redactionLog).toEqual({ entries: 1, committed: 1, uncommitted: 0, committedAt: 3 })
      // Nothing pending and the log committed: no further block.
      expect(f.chain.sealBlock(T0 + 60_000)).toBeNull()
    } finally {
      await f.close()
    }
  })

  it('the undo attack: an admin restores the pre-redaction row and deletes the entry (and its request) — verify names it', async () => {
    const f = await fixture()
    try {
      const target = 6
      const before = f.db.prepare('SELECT content, opening, cid FROM records WHERE id = ?').get(target) as { content: Buffer; opening: Buffer; cid: string }
      const applied = await redact(f, target, 'recorded on the wrong patient')
      expect((await verify(f)).ok).toBe(true)

      // The admin, with direct SQLite access and a backup of the row, undoes the approved deletion.
      const sql = new Database(f.path)
      sql.pragma('foreign_keys = OFF') // the admin removes the request, its decisions left dangling
      try {
        sql.prepare('UPDATE records SET content = ?, opening = ?, cid = ? WHERE id = ?').run(before.content, before.opening, before.cid, target)
        sql.prepare('DELETE FROM redaction_log WHERE request_id = ?').run(applied.request.id)
        sql.prepare('DELETE FROM supervision_requests WHERE id = ?').run(applied.request.id)
      } finally {
        sql.close()
      }
      const report = await verify(f)
      expect(report.ok).toBe(false)
      // The restored row is a valid original record: only the block's commitment to the log catches it.
      expect(report.failures.filter((x) => x.recordId === target)).toEqual([])
      expect(report.failures.map((x) => [x.kind, x.height])).toEqual([['REDACTION_LOG', applied.block!.height]])
      expect(report.failures[0]!.message).toMatch(/committed the redaction log at 1 entries .* the log holds only 0: entry 1 was removed \(an applied redaction deleted or undone\)/)

      // The sealer refuses to seal over the rolled-back log (it would otherwise bury the evidence deeper).
      for (const s of fleet) f.chain.appendBatch(s.batch(3))
      const e = errorOf(() => f.chain.sealBlock(T0 + 60_000))
      expect([e?.code, e?.reason]).toEqual(['VERIFICATION_FAILED', 'REDACTION_LOG'])
    } finally {
      await f.close()
    }
  })

  it('the undo attack leaving the request row: the applied request without an entry names the record too', async () => {
    const f = await fixture()
    try {
      const before = f.db.prepare('SELECT content, opening, cid FROM records WHERE id = 7').get() as { content: Buffer; opening: Buffer; cid: string }
      await redact(f, 7, 'duplicate upload')
      const sql = new Database(f.path)
      try {
        sql.prepare('UPDATE records SET content = ?, opening = ?, cid = ? WHERE id = 7').run(before.content, before.opening, before.cid)
        sql.prepare('DELETE FROM redaction_log').run()
      } finally {
        sql.close()
      }
      const report = await verify(f)
      expect(logFailures(report).map((x) => x.recordId ?? `block ${x.height}`).sort()).toEqual([7, 'block 3'])
    } finally {
      await f.close()
    }
  })

  describe('three entries, each committed', () => {
    let f: Fixture
    let pristine: { seq: number; record_id: number; request_id: string; entry: Buffer; hash: Buffer; log_hash: Buffer; applied_at: number }[]
    const restore = (sql: Database.Database) => {
      sql.prepare('DELETE FROM redaction_log').run()
      for (const r of pristine) sql.prepare('INSERT INTO redaction_log (seq, record_id, request_id, entry, hash, log_hash, applied_at) VALUES (@seq, @record_id, @request_id, @entry, @hash, @log_hash, @applied_at)').run(r)
    }
    const tamper = async (edit: (sql: Database.Database) => void): Promise<VerificationReport> => {
      const sql = new Database(f.path)
      try {
        edit(sql)
        relink(sql)
        return await verify(f)
      } finally {
        restore(sql)
        sql.close()
      }
    }

    it('setup: three deletions, three blocks committing 1, 2, 3 entries; verify passes', async () => {
      f = await fixture()
      for (const [i, record] of [2, 5, 9].entries()) {
        const a = await redact(f, record, `duplicate upload ${i}`)
        expect(a.block!.redactions).toEqual({ count: i + 1, head: a.block!.redactions!.head })
      }
      pristine = f.db.prepare('SELECT * FROM redaction_log ORDER BY seq').all() as typeof pristine
      expect((await verify(f)).failures).toEqual([])
    })

    it('a deleted entry (every later log_hash recomputed) is named with the block that committed it', async () => {
      const report = await tamper((sql) => sql.prepare('DELETE FROM redaction_log WHERE seq = 2').run())
      const named = logFailures(report).map((x) => x.message).join('\n')
      expect(named).toMatch(/block 4: committed the redaction log at 2 entries with head .*: entry 2 was removed, reordered or rewritten/)
      expect(named).toMatch(/block 5: committed the redaction log at 3 entries .* the log holds only 2: entry 3 was removed/)
      // …and the record it redacted, now a tombstone without its entry, fails the plain record checks.
      expect(report.failures.some((x) => x.recordId === 5 && x.kind !== 'REDACTION_LOG')).toBe(true)
    })

    it('reordered entries are named', async () => {
      const report = await tamper((sql) => {
        sql.prepare('UPDATE redaction_log SET seq = seq + 100 WHERE seq IN (1, 2)').run()
        sql.prepare('UPDATE redaction_log SET seq = 1 WHERE seq = 102').run()
        sql.prepare('UPDATE redaction_log SET seq = 2 WHERE seq = 101').run()
      })
      const failures = logFailures(report).filter((x) => x.height !== undefined)
      // The log hash is cumulative: every block committing entries 1 or 2 disagrees with the stored log.
      expect(failures.map((x) => x.height)).toEqual([3, 4, 5])
      expect(failures[0]!.message).toMatch(/block 3: committed the redaction log at 1 entries .*: entry 1 was removed, reordered or rewritten/)
    })

    it('a rewritten entry (its hash and every log_hash recomputed, so the log is self-consistent) is named', async () => {
      const report = await tamper((sql) => {
        const row = pristine[2]!
        const entry = decodeRedactionLogEntry(new Uint8Array(row.entry))
        const rewritten = { ...entry, reason: 'nothing to see here' } // the reason is not under the approvals' signatures
        sql.prepare('UPDATE redaction_log SET entry = ?, hash = ? WHERE seq = 3').run(encodeRedactionLogEntry(rewritten), redactionLogEntryHash(rewritten))
      })
      expect(logFailures(report).map((x) => [x.height, x.message.replace(/ with head .*/, '')])).toEqual([[5, 'block 5: committed the redaction log at 3 entries']])
      expect(report.failures.every((x) => x.kind === 'REDACTION_LOG')).toBe(true)
    })

    it('the log rolled back and a later block sealed over it: the shrinking commitment is named', async () => {
      // An admin with the signing key could seal a block over a shortened log; the earlier blocks still commit to more.
      const sql = new Database(f.path)
      try {
        sql.prepare('DELETE FROM redaction_log WHERE seq = 3').run()
        const report = await verify(f)
        expect(logFailures(report).map((x) => x.height)).toContain(5)
      } finally {
        restore(sql)
        sql.close()
      }
      expect((await verify(f)).ok).toBe(true)
    })

    it('an entry applied after the last block (no sealer) verifies and is reported as not yet committed; the next block commits it', async () => {
      await redact(f, 10, 'duplicate upload 3', f.lazy)
      const report = await verify(f)
      expect(report.failures).toEqual([])
      expect(report.redactionLog).toEqual({ entries: 4, committed: 3, uncommitted: 1, committedAt: 5 })
      expect(formatReport(report, f.path)).toContain('redactions 4 log entries: 3 committed by block 5; 1 applied since, not yet committed by a block')
      const block = f.chain.sealBlock(T0 + 3_600_000)!
      expect(block).toMatchObject({ height: 6, count: 0, redactions: { count: 4 } })
      expect((await verify(f)).redactionLog).toEqual({ entries: 4, committed: 4, uncommitted: 0, committedAt: 6 })
      await f.close()
    })
  })

  it('v1 blocks carry no log state: a v2 block after v1 blocks commits the whole log so far', async () => {
    const f = await fixture()
    try {
      // Make the three blocks v1, as a chain sealed before this change (re-signed by the same key).
      const { makeBlock } = await import('../../cloud/chain/block.ts')
      let prev: Uint8Array | null = null
      for (let h = 0; h < 3; h++) {
        const old = decodeBlockHeader(new Uint8Array(f.db.prepare('SELECT header FROM blocks WHERE height = ?').pluck().get(h) as Buffer))
        const hashes = (f.db.prepare('SELECT id, hash FROM records WHERE block_height = ? ORDER BY id').all(h) as { id: number; hash: Buffer }[]).map((r) => ({ id: r.id, hash: new Uint8Array(r.hash) }))
        const b = makeBlock({ height: h, prevHash: prev, time: old.time, records: hashes, chameleonKeyId: old.chameleonKey, signerKeyId: old.signer, signingSecretKey: keys.signing.secretKey, version: 1 })
        f.db.prepare('UPDATE blocks SET header = ?, hash = ?, signature = ? WHERE height = ?').run(b.bytes, b.hash, b.signature, h)
        prev = b.hash
      }
      // An entry applied while only v1 blocks existed (no sealer) is uncommitted, and verifies.
      await redact(f, 4, 'duplicate upload', f.lazy)
      const v1 = await verify(f)
      expect(v1.failures).toEqual([])
      expect(v1.redactionLog).toEqual({ entries: 1, committed: 0, uncommitted: 1, committedAt: null })
      // The next apply seals a v2 block after the v1 blocks, committing both entries.
      const a = await redact(f, 8, 'duplicate upload again')
      expect(a.block).toMatchObject({ height: 3, version: 2, redactions: { count: 2 } })
      const report = await verify(f)
      expect(report.failures).toEqual([])
      expect(report.redactionLog).toEqual({ entries: 2, committed: 2, uncommitted: 0, committedAt: 3 })
      expect(f.chain.getBlock(3)!.header!.prev).toBe(bytesToHex(prev!))
    } finally {
      await f.close()
    }
  })
})

// The same two rules on PostgreSQL: PgChainStore.sealIn commits the log's state, sealed in the
// applying transaction (cloud/store/pg/supervision.ts), and refuses to seal over a rolled-back log.
describe('on PostgreSQL: the applying transaction seals the block committing the log; the sealer refuses a rolled-back log', () => {
  it('apply → block v2 {count: 1}; nothing more to seal; the entry deleted by an admin → sealBlock refuses (REDACTION_LOG), verify --database names the block', async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const url = await postgres.server().createDatabase('log_commitment')
    const chain = await openPgChainStore(url, keys.store, { workers: 0, poolSize: 3 })
    try {
      for (let seq = 0; seq < 3; seq++) {
        await chain.appendBatches(fleet.map((s) => s.batch(seq)))
        await chain.sealBlock(T0 - 100_000 + seq * 5000)
      }
      let tick = 0
      const sup = pgSupervision(chain, { chameleonPublicKey: keys.chameleon.publicKey, now: () => T0 + ++tick * 1000 })
      const c = committee(1, 1, keys.chameleon.secretKey)
      await sup.setPolicy(c.policy)
      let r = await sup.createRequest({ record: 5, action: 'delete', reason: 'recorded on the wrong patient', requester: 'admin-1 (admin)' })
      r = await sup.decide(r.id, await signDecision(c.policy, c.regulators[0]!.wallet, subjectOf(r)))
      const applied = await sup.submitOpening(r.id, chameleonAdapt(keys.chameleon.secretKey, Buffer.from(r.newContentBytes, 'hex'), Buffer.from(r.hash, 'hex'), rng, 2))
      const log = await sup.redactionLog()
      expect(applied.block).toMatchObject({ height: 3, count: 0, version: 2, redactions: { count: 1, head: log[0]!.logHash } })
      expect((await chain.getBlock(3))!.header).toMatchObject({ v: 2, count: 0, redactions: { count: 1, head: log[0]!.logHash } })
      expect(await chain.sealBlock(T0 + 60_000)).toBeNull()
      const opts = { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey, workers: 0 }
      const ok = await verifyPgChain(url, opts)
      expect(ok.failures).toEqual([])
      expect(ok.redactionLog).toEqual({ entries: 1, committed: 1, uncommitted: 0, committedAt: 3 })

      await chain.pool.query('DELETE FROM redaction_log')
      const report = await verifyPgChain(url, opts)
      expect(report.failures.map((x) => [x.kind, x.height])).toEqual(expect.arrayContaining([['REDACTION_LOG', 3]]))
      await chain.appendBatches(fleet.map((s) => s.batch(3)))
      const e = await chain.sealBlock(T0 + 120_000).then(() => null, (err: unknown) => err)
      expect(isCareLedgerError(e) ? [e.code, (e.info as { reason?: unknown }).reason] : e).toEqual(['VERIFICATION_FAILED', 'REDACTION_LOG'])
    } finally {
      await chain.close()
    }
  }, 120_000)
})
