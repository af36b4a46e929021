/**
 * The supervision workflow over a real chain (cloud/supervision/store.ts), on both stores: a real
 * SQLite file and a real PostgreSQL server (test/helpers/postgres.ts; skipped with the reason
 * where its binaries are missing): request → k approvals (EIP-712) → FROST rounds with the cloud
 * as coordinator → applied, and chain verification (on PostgreSQL through the snapshot `chain
 * verify --database` takes) accepts the changed record only with its redaction log entry. Every
 * refusal is named, changes nothing, and is logged.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import Database from 'better-sqlite3'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { Wallet } from 'ethers'
import { openCloudDb } from '../../cloud/store/db.ts'
import { ChainStore } from '../../cloud/chain/store.ts'
import { decodeRecordContent } from '../../cloud/chain/record.ts'
import { verifyChain, type VerificationReport } from '../../cloud/chain/verify.ts'
import { openPgChainStore } from '../../cloud/store/pg/chain-store.ts'
import { PgSupervisionTables } from '../../cloud/store/pg/supervision.ts'
import { verifyPgChain } from '../../cloud/store/pg/snapshot.ts'
import { sqliteSupervision, SupervisionStore, type RequestView } from '../../cloud/supervision/store.ts'
import { decodeTombstone } from '../../cloud/supervision/content.ts'
import { chameleonAdapt } from '../../shared/crypto/chameleon.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { encodeRedactionLogEntry, redactionLogEntryHash, verifyRedactionLogEntry, type RedactionLogEntry } from '../../shared/protocol/redaction-log.ts'
import { contentDigest } from '../../shared/protocol/approval.ts'
import { manifestCommitment, type BatchManifest } from '../../shared/protocol/manifest.ts'
import { NO_MANIFEST, requestIdOf, signRequest } from '../../shared/protocol/supervision-request.ts'
import { checkRequester } from '../../clients/supervision-view.ts'
import { testWallet } from '../vectors/supervision.ts'
import { chainTestKeys, tempDir, testFleet } from '../cloud/chain-helpers.ts'
import { usePostgres } from '../helpers/postgres.ts'
import { committee, roundOne, roundTwo, signDecision, subjectOf, type Committee } from '../helpers/supervision.ts'

const tmp = tempDir('supervision-workflow')
afterAll(() => tmp.cleanup())
const postgres = usePostgres()
const keys = chainTestKeys('supervision workflow')
const fleet = testFleet(2, 2, 'supervision')
const SEQS = 4
const rng = deterministicRng('supervision workflow rng')
let n = 0

type Backend = 'sqlite' | 'postgres'
const BACKENDS: Backend[] = postgres.skip ? ['sqlite'] : ['sqlite', 'postgres']

interface Fixture {
  sup: SupervisionStore
  c: Committee
  chain: { getRecord(id: number): unknown; getStream(stream: string): unknown }
  /** Rows of a query written with `?` placeholders (SQLite's), on either store. */
  rows(sql: string, ...params: unknown[]): Promise<Record<string, unknown>[]>
  /** The first column of the first row. */
  one(sql: string, ...params: unknown[]): Promise<unknown>
  exec(sql: string, ...params: unknown[]): Promise<void>
  verify(opts?: { workers?: number; signing?: boolean }): Promise<VerificationReport>
  close: () => Promise<void>
}

async function sqliteFixture(): Promise<Omit<Fixture, 'sup' | 'c'> & { sup: SupervisionStore }> {
  const path = join(tmp.dir, `chain-${++n}.db`)
  const db = openCloudDb(path)
  const chain = new ChainStore(db, keys.store, { workers: 0 })
  for (let seq = 0; seq < SEQS; seq++) {
    for (const s of fleet) chain.appendBatch(s.batch(seq))
    chain.sealBlock(1_760_000_000_000 + seq * 5000)
  }
  const tick = n
  return {
    sup: sqliteSupervision(db, { chameleonPublicKey: keys.chameleon.publicKey, now: () => 1_767_300_000_000 + tick }),
    chain,
    rows: async (sql, ...p) => db.prepare(sql).all(...p) as Record<string, unknown>[],
    one: async (sql, ...p) => db.prepare(sql).pluck().get(...p),
    // Another connection, as an admin editing the file would.
    exec: async (sql, ...p) => {
      const other = new Database(path)
      try {
        other.prepare(sql).run(...p)
      } finally {
        other.close()
      }
    },
    verify: (o = {}) => verifyChain(path, { chameleonPublicKey: keys.chameleon.publicKey, ...(o.signing ? { signingPublicKey: keys.signing.publicKey } : {}), workers: o.workers ?? 0 }),
    close: async () => {
      await chain.close()
      db.close()
    },
  }
}

async function pgFixture(): Promise<Omit<Fixture, 'c'>> {
  const url = await postgres.server().createDatabase(`workflow_${++n}`)
  const chain = await openPgChainStore(url, keys.store, { workers: 0, poolSize: 3 })
  for (let seq = 0; seq < SEQS; seq++) {
    await chain.appendBatches(fleet.map((s) => s.batch(seq)))
    await chain.sealBlock(1_760_000_000_000 + seq * 5000)
  }
  const tick = n
  let i = 0
  const pgSql = (sql: string): string => sql.replace(/\?/g, () => `$${++i}`)
  const q = async (sql: string, p: unknown[]) => {
    i = 0
    return (await chain.pool.query(pgSql(sql), p)).rows as Record<string, unknown>[]
  }
  return {
    sup: new SupervisionStore(new PgSupervisionTables(chain.pool), { chameleonPublicKey: keys.chameleon.publicKey, now: () => 1_767_300_000_000 + tick }),
    chain,
    rows: (sql, ...p) => q(sql, p),
    one: async (sql, ...p) => {
      const r = (await q(sql, p))[0]
      return r ? Object.values(r)[0] : undefined
    },
    exec: async (sql, ...p) => void (await q(sql, p.map((x) => (x instanceof Uint8Array ? Buffer.from(x) : x)))),
    verify: (o = {}) => verifyPgChain(url, { chameleonPublicKey: keys.chameleon.publicKey, ...(o.signing ? { signingPublicKey: keys.signing.publicKey } : {}), workers: o.workers ?? 0 }),
    close: () => chain.close(),
  }
}

async function fixture(backend: Backend, k: number, of: number): Promise<Fixture> {
  const f = backend === 'sqlite' ? await sqliteFixture() : await pgFixture()
  const c = committee(k, of, keys.chameleon.secretKey)
  await f.sup.setPolicy(c.policy)
  return { ...f, c }
}

/** The re-sealed batch a requester would upload: the same identity, a new envelope (bytes only here). */
async function resealed(f: Fixture, record: number, variant = 1): Promise<{ manifest: unknown; envelope: Uint8Array }> {
  const content = (await f.one('SELECT content FROM records WHERE id = ?', record)) as Buffer
  const old = decodeRecordContent(new Uint8Array(content)).manifest
  const envelope = sha256(new TextEncoder().encode(`envelope ${record}/${variant}`))
  const cidSeed = bytesToHex(sha256(envelope)).replace(/[0189]/g, 'a').slice(0, 52)
  return { manifest: { ...old, cid: `bafkrei${cidSeed}`, size: envelope.length, merkleRoot: bytesToHex(sha256(envelope)) }, envelope }
}

/** Everything a refusal must leave alone. */
async function state(f: Fixture): Promise<string> {
  const rows = await f.rows('SELECT id, content, opening, cid FROM records ORDER BY id')
  const other = await Promise.all(['supervision_requests', 'supervision_decisions', 'supervision_commitments', 'supervision_shares', 'redaction_log'].map((t) => f.rows(`SELECT * FROM ${t} ORDER BY 1, 2`)))
  return bytesToHex(sha256(new TextEncoder().encode(JSON.stringify([rows, other], (_k, v) => (v?.type === 'Buffer' ? Buffer.from(v.data).toString('hex') : v)))))
}

async function errorOf(action: () => Promise<unknown>): Promise<{ reason: unknown; message: string; info: Record<string, unknown> } | null> {
  try {
    await action()
    return null
  } catch (e) {
    if (!isCareLedgerError(e)) throw e
    return { reason: (e.info as { reason?: unknown }).reason, message: e.message, info: e.info as Record<string, unknown> }
  }
}

/** A refusal: the typed reason, nothing changed, one more line in the refusal log. */
async function refused(f: Fixture, action: () => Promise<unknown>): Promise<{ reason: unknown; message: string; info: Record<string, unknown> }> {
  const before = await state(f)
  const logged = (await f.sup.refusals()).length
  const e = await errorOf(action)
  expect(e, 'expected a refusal').not.toBeNull()
  expect(await state(f)).toBe(before)
  const after = await f.sup.refusals()
  expect(after.length).toBe(logged + 1)
  expect(after[0]!.reason).toBe(e!.reason)
  return e!
}

async function approveAndSign(f: Fixture, r: RequestView, who: readonly number[]): Promise<RequestView> {
  for (const i of who) r = await f.sup.decide(r.id, await signDecision(f.c.policy, f.c.regulators[i - 1]!.wallet, subjectOf(r), 'approve', `ok by ${i}`))
  const nonces = new Map<number, ReturnType<typeof roundOne>['nonces']>()
  for (const i of who) {
    const reg = f.c.regulators[i - 1]!
    const { nonces: secret, commitment } = roundOne(reg, rng)
    nonces.set(i, secret)
    r = await f.sup.commit(r.id, commitment)
  }
  for (const i of r.signers!) {
    const out = await f.sup.share(r.id, roundTwo(f.c, f.c.regulators[i - 1]!, nonces.get(i)!, r))
    r = out.request
  }
  return r
}

const blocksOf = (f: Fixture) => f.rows('SELECT height, header, hash, signature FROM blocks ORDER BY height')
type Rec = { cid: string; stream: string; seq: number }
type Stream = { gaps: unknown[] }
const recordOf = async (f: Fixture, id: number): Promise<Rec> => (await f.chain.getRecord(id)) as Rec
const streamOf = async (f: Fixture, stream: string): Promise<Stream> => (await f.chain.getStream(stream)) as Stream

describe.each(BACKENDS)('on %s', (backend) => {
  describe('2 of 3: correction', () => {
    let f: Fixture
    beforeAll(async () => {
      f = await fixture(backend, 2, 3)
    })
    afterAll(() => f.close())

    it('applies after two approvals and two valid FROST shares; chain verify passes; no block, root or signature moved', async () => {
      const blocks = await blocksOf(f)
      const target = 6
      const hashBefore = await f.one('SELECT hash FROM records WHERE id = ?', target)
      const { manifest, envelope } = await resealed(f, target)
      let r = await f.sup.createRequest({ record: target, action: 'correct', reason: 'SpO2 probe slipped: readings 3–9 wrong', requester: 'dr-ward (doctor)', manifest, envelope })
      expect(r.status).toBe('pending')
      expect((await f.sup.listRequests({ status: 'pending' })).map((x) => x.id)).toEqual([r.id])
      r = await approveAndSign(f, r, [1, 3])
      expect(r.status).toBe('applied')
      expect(r.signers).toEqual([1, 3])

      const log = await f.sup.redactionLog()
      expect(log).toHaveLength(1)
      expect(log[0]!.entry).toMatchObject({ record: target, action: 'correct', requestId: r.id, signers: [1, 3], reason: 'SpO2 probe slipped: readings 3–9 wrong', requester: 'dr-ward (doctor)' })
      expect(verifyRedactionLogEntry(f.c.policy, log[0]!.entry).map((a) => a.regulator.index).sort()).toEqual([1, 3])

      const rec = await recordOf(f, target)
      expect(rec.cid).toBe((manifest as { cid: string }).cid)
      expect(await f.one('SELECT hash FROM records WHERE id = ?', target)).toEqual(hashBefore)
      expect(await blocksOf(f)).toEqual(blocks)
      const report = await f.verify({ signing: true })
      expect(report.failures).toEqual([])
      expect(report.ok).toBe(true)
      expect((await streamOf(f, rec.stream)).gaps).toEqual([])
    })

    it('refuses, names and logs: outsider, forged, replayed, reused, other content, wrong share, too few, unknown record, pending request', async () => {
      const target = 7
      const { manifest, envelope } = await resealed(f, target)
      const r = await f.sup.createRequest({ record: target, action: 'correct', reason: 'wrong patient bed', requester: 'dr-ward (doctor)', manifest, envelope })
      const subject = subjectOf(r)
      const [r1, r2, r3] = f.c.regulators
      const outsider = new Wallet('0x' + '11'.repeat(32))

      expect((await refused(f, () => f.sup.createRequest({ record: target, action: 'delete', reason: 'again', requester: 'x' }))).reason).toBe('PENDING_REQUEST')
      expect((await refused(f, () => f.sup.createRequest({ record: 999, action: 'delete', reason: 'nope', requester: 'x' }))).reason).toBe('UNKNOWN_RECORD')
      expect((await refused(f, () => f.sup.createRequest({ record: 0, logEntry: 1, action: 'delete', reason: 'hide the trail', requester: 'x' }))).reason).toBe('NOT_REDACTABLE')

      // Not a regulator of the policy (signed correctly, by a stranger).
      const stranger = await signDecision(f.c.policy, outsider, subject)
      expect((await refused(f, () => f.sup.decide(r.id, stranger))).reason).toBe('NOT_A_REGULATOR')
      // Forged: claims regulator 1, signed by someone else.
      expect((await refused(f, () => f.sup.decide(r.id, { ...stranger, regulator: r1!.wallet.address }))).reason).toBe('FORGED')
      // Replayed: regulator 2's genuine approval of the first (applied) request.
      const other = (await f.sup.listRequests({ status: 'applied' }))[0]!
      const replay = await signDecision(f.c.policy, r2!.wallet, subjectOf(other))
      expect((await refused(f, () => f.sup.decide(r.id, replay))).reason).toBe('REPLAYED')
      // For other content than the request.
      const otherContent = await signDecision(f.c.policy, r2!.wallet, { ...subject, newContent: 'ab'.repeat(32) })
      expect((await refused(f, () => f.sup.decide(r.id, otherContent))).reason).toBe('WRONG_CONTENT')

      // Fewer than k: one approval; a share before the signers are fixed is refused.
      const a1 = await signDecision(f.c.policy, r1!.wallet, subject)
      await f.sup.decide(r.id, a1)
      // Reused: the same approval again.
      expect((await refused(f, () => f.sup.decide(r.id, a1))).reason).toBe('REPLAYED')
      const { nonces: n1, commitment: c1 } = roundOne(r1!, rng)
      await f.sup.commit(r.id, c1)
      expect((await refused(f, () => f.sup.share(r.id, { index: 1, share: new Uint8Array(32) }))).reason).toBe('SIGNERS_NOT_FIXED')
      // Regulator 3 has not approved: it may not commit.
      expect((await refused(f, () => f.sup.commit(r.id, roundOne(r3!, rng).commitment))).reason).toBe('NOT_APPROVED')

      await f.sup.decide(r.id, await signDecision(f.c.policy, r2!.wallet, subject))
      const { nonces: n2, commitment: c2 } = roundOne(r2!, rng)
      const ready = await f.sup.commit(r.id, c2)
      expect(ready.signers).toEqual([1, 2])
      // A wrong share (regulator 2 signs another message with its nonces): named.
      const good1 = roundTwo(f.c, r1!, n1, ready)
      const bad2 = roundTwo(f.c, r2!, n2, { ...ready, newContentBytes: ready.newContentBytes.slice(0, -2) + '00' })
      const e = await refused(f, () => f.sup.share(r.id, bad2))
      expect(e.reason).toBe('BAD_SIGNATURE_SHARE')
      expect(e.message).toContain('Regulator 2')
      expect(e.info.regulator).toBe(r2!.wallet.address)
      // The good share is taken; the request is still pending (k shares needed).
      expect((await f.sup.share(r.id, good1)).applied).toBeNull()
      expect((await f.sup.getRequest(r.id))!.status).toBe('pending')
      const report = await f.verify({ signing: true })
      expect(report.ok).toBe(true)
      // Withdrawn by its requester, not by someone else.
      expect((await refused(f, () => f.sup.withdraw(r.id, 'someone-else'))).reason).toBe('NOT_REQUESTER')
      expect((await f.sup.withdraw(r.id, 'dr-ward (doctor)')).status).toBe('withdrawn')
    })

    // workers 2: the redaction jobs run on the verify workers beside the record chunks (verify.ts)
    it.each([0, 2])('chain verify (%i workers): a DB edit of a redacted row, a forged log entry and a removed log entry are each detected and named', async (workers) => {
      const base = await f.verify({ workers })
      expect(base.ok).toBe(true)
      {
        // The redacted row's content edited back by hand (its opening no longer fits).
        const row = (await f.one('SELECT content FROM records WHERE id = 6')) as Buffer
        const edited = Buffer.from(row)
        edited[edited.length - 3]! ^= 1
        await f.exec('UPDATE records SET content = ? WHERE id = 6', edited)
        const r1 = await f.verify({ workers })
        expect(r1.ok).toBe(false)
        expect(r1.failures.every((x) => x.kind === 'REDACTION' && x.recordId === 6)).toBe(true)
        await f.exec('UPDATE records SET content = ? WHERE id = 6', row)

        // Its opening edited (and the log entry left alone): the batched opening check names it.
        const opening = (await f.one('SELECT opening FROM records WHERE id = 6')) as Buffer
        const bent = Buffer.from(opening)
        bent[40]! ^= 1
        await f.exec('UPDATE records SET opening = ? WHERE id = 6', bent)
        const r0 = await f.verify({ workers })
        expect(r0.ok).toBe(false)
        expect(r0.failures.every((x) => x.kind === 'REDACTION' && x.recordId === 6)).toBe(true)
        expect(r0.failures.map((x) => x.message).join('\n')).toMatch(/opening is not the one redaction .* recorded/)
        await f.exec('UPDATE records SET opening = ? WHERE id = 6', opening)

        // A cloud admin rewrites record 9 with the trapdoor (pretend) and a log entry without approvals.
        const log = (await f.rows('SELECT * FROM redaction_log WHERE seq = 1'))[0]!
        await f.exec('INSERT INTO redaction_log (seq, record_id, request_id, entry, hash, log_hash, applied_at) VALUES (2, 9, ?, ?, ?, ?, 0)', '00'.repeat(32), log.entry, log.hash, log.log_hash)
        const r2 = await f.verify({ workers })
        expect(r2.ok).toBe(false)
        expect(r2.failures.some((x) => x.kind === 'REDACTION_LOG' && x.recordId === 9)).toBe(true)
        await f.exec('DELETE FROM redaction_log WHERE seq = 2')

        // The log entry itself edited in the database (its reason): its plain hash no longer matches.
        const entryBytes = Buffer.from(log.entry as Buffer)
        const at = entryBytes.indexOf(Buffer.from('SpO2'))
        const forged = Buffer.from(entryBytes)
        forged[at] = 'X'.charCodeAt(0)
        await f.exec('UPDATE redaction_log SET entry = ? WHERE seq = 1', forged)
        const r4 = await f.verify({ workers })
        expect(r4.failures.map((x) => [x.kind, x.recordId])).toEqual([['REDACTION_LOG', 6]])
        expect(r4.failures[0]!.message).toMatch(/does not hash to its stored hash/)
        await f.exec('UPDATE redaction_log SET entry = ? WHERE seq = 1', entryBytes)

        // The log entry removed: the changed record is now caught by the plain checks.
        await f.exec('ALTER TABLE redaction_log RENAME TO redaction_log_hidden')
        await f.exec('CREATE TABLE redaction_log AS SELECT * FROM redaction_log_hidden WHERE 1 = 0')
        const r3 = await f.verify({ workers })
        expect(r3.ok).toBe(false)
        // …and the request the cloud marked applied has no entry: named too (the blocks of this fixture are v2 only before the apply).
        expect(r3.failures.filter((x) => x.recordId === 6).map((x) => x.kind).sort()).toEqual(['MANIFEST_SIGNATURE', 'RECORD_CONTENT', 'REDACTION_LOG'])
        await f.exec('DROP TABLE redaction_log')
        await f.exec('ALTER TABLE redaction_log_hidden RENAME TO redaction_log')
      }
      expect((await f.verify({ workers })).ok).toBe(true)
    })
  })

  describe('deletion', () => {
    it('2 of 3: a tombstone keeps stream, seq and link; no gap; verify passes', async () => {
      const f = await fixture(backend, 2, 3)
      try {
        const blocks = await blocksOf(f)
        const target = 5
        const before = await recordOf(f, target)
        let r = await f.sup.createRequest({ record: target, action: 'delete', reason: 'recorded on the wrong patient', requester: 'admin-1 (admin)' })
        r = await approveAndSign(f, r, [2, 3])
        expect(r.status).toBe('applied')
        const content = (await f.one('SELECT content FROM records WHERE id = ?', target)) as Buffer
        expect(decodeTombstone(new Uint8Array(content))).toMatchObject({ id: target, stream: before.stream, seq: before.seq, request: r.id })
        expect(await blocksOf(f)).toEqual(blocks)
        const report = await f.verify({ signing: true })
        expect(report.failures).toEqual([])
        expect((await streamOf(f, before.stream)).gaps).toEqual([])
        // Deleting it again is refused; a redaction log entry is not a record anyone can name.
        expect((await refused(f, () => f.sup.createRequest({ record: target, action: 'delete', reason: 'again', requester: 'admin-1 (admin)' }))).reason).toBe('ALREADY_DELETED')
      } finally {
        await f.close()
      }
    })

    it('1 of 1: the single regulator adapts with the trapdoor file', async () => {
      const f = await fixture(backend, 1, 1)
      try {
        const target = 3
        let r = await f.sup.createRequest({ record: target, action: 'delete', reason: 'duplicate upload', requester: 'admin-1 (admin)' })
        r = await f.sup.decide(r.id, await signDecision(f.c.policy, f.c.regulators[0]!.wallet, subjectOf(r)))
        // A FROST share is refused for a 1-of-1 policy; a wrong opening is refused.
        expect((await refused(f, () => f.sup.submitOpening(r.id, new Uint8Array(64)))).reason).toBe('BAD_OPENING')
        const opening = chameleonAdapt(keys.chameleon.secretKey, Buffer.from(r.newContentBytes, 'hex'), Buffer.from(r.hash, 'hex'), rng, 2)
        const applied = await f.sup.submitOpening(r.id, opening)
        expect(applied.entry.signers).toEqual([1])
        const report = await f.verify({ signing: true })
        expect(report.failures).toEqual([])
      } finally {
        await f.close()
      }
    })
  })

  describe('requests signed by the requester (EIP-712; the request id is the typed-data digest)', () => {
    const requester = testWallet(9)
    const someoneElse = testWallet(8)
    const message = async (f: Fixture, record: number, action: 'correct' | 'delete', reason: string, manifest?: unknown) => {
      const content = (await f.one('SELECT content FROM records WHERE id = ?', record)) as Buffer
      return { record, action, oldContent: contentDigest(new Uint8Array(content)), newManifest: manifest ? manifestCommitment(manifest as BatchManifest) : NO_MANIFEST, reason, nonce: bytesToHex(rng(32)), issuedAt: 1_767_300_000_000 }
    }

    it('a signed correction is filed under its digest, applied with a version-2 log entry, and verifies next to a version-1 entry', async () => {
      const f = await fixture(backend, 2, 3)
      try {
        // An unsigned request (as before requester signatures): its entry stays version 1 and verifiable.
        let old = await f.sup.createRequest({ record: 3, action: 'delete', reason: 'duplicate upload', requester: 'admin-1 (admin)' })
        old = await approveAndSign(f, old, [1, 2])
        expect(old.status).toBe('applied')
        const { manifest, envelope } = await resealed(f, 6)
        const m = await message(f, 6, 'correct', 'SpO2 probe slipped', manifest)
        const { signed, requestId } = await signRequest(f.c.policy, requester, m)
        expect(requestId).toBe(requestIdOf(f.c.policy, m))
        let r = await f.sup.createRequest({ record: 6, action: 'correct', reason: m.reason, requester: 'dr-ward (doctor)', manifest, envelope, signed })
        expect(r.id).toBe(requestId)
        expect(r.requesterSignature).toEqual(signed)
        expect(checkRequester(f.c.policy, r)).toMatchObject({ verified: true, address: requester.address })
        r = await approveAndSign(f, r, [2, 3])
        expect(r.status).toBe('applied')
        const log = await f.sup.redactionLog()
        expect(log.map((e) => e.entry.v)).toEqual([1, 2])
        expect(log[1]!.entry).toMatchObject({ requestId, requester: 'dr-ward (doctor)', request: { requester: requester.address, signature: signed.signature } })
        expect(() => verifyRedactionLogEntry(f.c.policy, log[0]!.entry)).not.toThrow()
        expect(() => verifyRedactionLogEntry(f.c.policy, log[1]!.entry)).not.toThrow()
        expect((await f.verify()).failures).toEqual([])

        // The entry's requester signature swapped for another's, the entry re-hashed and the log re-linked: chain verify names it.
        const e2 = log[1]!.entry as Extract<RedactionLogEntry, { v: 2 }>
        const other = await signRequest(f.c.policy, someoneElse, { ...m, record: e2.record })
        const forged = { ...e2, request: { ...e2.request, signature: other.signed.signature } }
        const hash = redactionLogEntryHash(forged)
        const prev = (await f.one('SELECT log_hash FROM redaction_log WHERE seq = 1')) as Buffer
        await f.exec('UPDATE redaction_log SET entry = ?, hash = ?, log_hash = ? WHERE seq = 2', encodeRedactionLogEntry(forged), hash, sha256(Buffer.concat([prev, hash])))
        const bad = await f.verify()
        expect(bad.failures.map((x) => [x.kind, x.recordId])).toEqual([['REDACTION_LOG', 6]])
        expect(bad.failures[0]!.message).toMatch(new RegExp(`claims to be signed by ${requester.address}, but its signature .* recovers to ${someoneElse.address}`))
      } finally {
        await f.close()
      }
    })

    it('refuses a forged, mismatched or re-filed requester signature with a named reason; nothing stored, the attempt logged', async () => {
      const f = await fixture(backend, 2, 3)
      try {
        const m = await message(f, 5, 'delete', 'recorded on the wrong patient')
        const { signed } = await signRequest(f.c.policy, requester, m)
        const file = (s: unknown, reason = m.reason, record = 5) => () => f.sup.createRequest({ record, action: 'delete', reason, requester: 'dr-ward (doctor)', signed: s })
        // Signed by someone else in the requester's name.
        const byOther = (await signRequest(f.c.policy, someoneElse, m)).signed
        expect((await refused(f, file({ ...byOther, requester: requester.address }))).reason).toBe('FORGED_REQUEST')
        // Genuine, but filed with another reason or for another record than signed.
        const e = await refused(f, file(signed, 'a reason the requester never wrote'))
        expect(e.reason).toBe('FORGED_REQUEST')
        expect(e.message).toMatch(/signed for another request/)
        expect((await refused(f, file(signed, m.reason, 6))).reason).toBe('FORGED_REQUEST')
        // A correction whose signature names another re-sealed manifest.
        const a = await resealed(f, 6, 1)
        const b = await resealed(f, 6, 2)
        const mc = await message(f, 6, 'correct', 'probe slipped', b.manifest)
        const sc = (await signRequest(f.c.policy, requester, mc)).signed
        expect((await refused(f, () => f.sup.createRequest({ record: 6, action: 'correct', reason: mc.reason, requester: 'dr-ward (doctor)', manifest: a.manifest, envelope: a.envelope, signed: sc }))).reason).toBe('REQUEST_MISMATCH')
        // Malformed.
        expect((await refused(f, file({ ...signed, signature: '0x1234' }))).message).toMatch(/requester signature.*signature/)
        // Filed once; withdrawn; the same signed request again is refused (sign a new one).
        const r = await file(signed)()
        await f.sup.withdraw(r.id, 'dr-ward (doctor)')
        expect((await refused(f, file(signed))).reason).toBe('DUPLICATE_REQUEST')
      } finally {
        await f.close()
      }
    })
  })
})
