/**
 * The chain store's behaviour through the async ChainBackend interface, run against both
 * backends: SQLite (the embedded default) and a real PostgreSQL server this file starts
 * (test/helpers/postgres.ts; skipped with a printed reason where PostgreSQL is not installed).
 * Appends (created / duplicate / conflict), gaps, links and the equivocation log, bulk appends,
 * sealing, reads and proofs, the pinned chameleon key, and `chain verify` over what was written.
 */
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { bytesToHex } from '@noble/hashes/utils.js'
import { isCareLedgerError } from '../../shared/errors.ts'
import { chameleonKeyGen } from '../../shared/crypto/chameleon.ts'
import { manifestCommitment } from '../../shared/protocol/manifest.ts'
import { openChainBackend, type ChainBackend } from '../../cloud/store/chain-backend.ts'
import { verifyChain, verifyRecordProof, type VerificationReport } from '../../cloud/chain/verify.ts'
import { verifyPgChain } from '../../cloud/store/pg/snapshot.ts'
import { chainTestKeys, tempDir, TestGatewayKey, TestStream, testFleet } from './chain-helpers.ts'
import { usePostgres } from '../helpers/postgres.ts'

const tmp = tempDir('chain-backends')
afterAll(() => tmp.cleanup())
const keys = chainTestKeys('backend tests')
const postgres = usePostgres()
let n = 0

interface Backend {
  readonly name: 'sqlite' | 'postgres'
  readonly skip: string | null
  /** A fresh, empty database: its --database value. */
  fresh(): Promise<string>
  verify(database: string, signing?: Uint8Array): Promise<VerificationReport>
}

const backends: Backend[] = [
  {
    name: 'sqlite',
    skip: null,
    fresh: async () => join(tmp.dir, `chain-${++n}.db`),
    verify: (database, signing = keys.signing.publicKey) => verifyChain(database, { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: signing, workers: 0 }),
  },
  {
    name: 'postgres',
    skip: postgres.skip,
    fresh: () => postgres.server().createDatabase(`chain_${++n}`),
    verify: (database, signing = keys.signing.publicKey) => verifyPgChain(database, { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: signing, workers: 0 }),
  },
]

const errorOf = async (f: () => Promise<unknown>): Promise<{ code?: string; message: string; info: Record<string, unknown> }> => {
  try {
    await f()
  } catch (e) {
    return e as never
  }
  throw new Error('expected an error')
}

describe.each(backends)('chain store on $name', (backend) => {
  let database: string
  let store: ChainBackend
  const opened: ChainBackend[] = []
  const open = async (k = keys.store): Promise<ChainBackend> => {
    const s = await openChainBackend(database, k, { workers: 0 })
    opened.push(s)
    return s
  }
  beforeEach(async ({ skip }) => {
    if (backend.skip) skip(backend.skip)
    database = await backend.fresh()
    store = await open()
  })
  afterEach(async () => {
    while (opened.length) await opened.pop()!.close()
  })
  const verifyOk = async () => {
    const r = await backend.verify(database)
    expect(r.failures).toEqual([])
    expect(r.ok).toBe(true)
    return r
  }

  it('creates a record, answers duplicate for the same batch and conflict for another at the same position', async () => {
    const s = new TestStream(new TestGatewayKey('a'), 'bed-01', 'patient a')
    const first = await store.appendBatch(s.batch(0))
    expect(first.status).toBe('created')
    if (first.status === 'conflict') throw new Error()
    expect(first.record).toMatchObject({ id: 1, stream: s.id, seq: 0, gateway: s.gateway.id, device: 'bed-01', patient: s.patient, block: null })
    expect(await store.appendBatch(s.batch(0))).toEqual({ status: 'duplicate', record: first.record })
    const other = await store.appendBatch(s.batch(0, { variant: 1 }))
    expect(other).toMatchObject({ status: 'conflict', existing: { id: 1 } })
    await store.appendBatch(s.batch(0, { variant: 1 })) // logged once, however often retried
    expect(await store.stats()).toMatchObject({ records: 1, equivocations: 1 })
    const detail = (await store.getRecord(1))!
    expect(detail.manifest).toEqual(s.manifest(0))
    expect(detail.gatewayKey).toBe(bytesToHex(s.gateway.publicKey))
    expect(detail.manifestCommitment).toBe(s.commitments[0])
    await verifyOk()
  })

  it('records gaps and closes them as late batches arrive', async () => {
    const s = new TestStream(new TestGatewayKey('b'), 'bed-02', 'patient b')
    for (let seq = 0; seq <= 5; seq++) s.manifest(seq)
    for (const seq of [0, 1, 5]) await store.appendBatch(s.batch(seq))
    expect(await store.getStream(s.id)).toMatchObject({ batches: 3, lastSeq: 5, gaps: [[2, 4]], ranges: [[0, 1], [5, 5]] })
    await store.appendBatch(s.batch(3))
    expect(await store.getStream(s.id)).toMatchObject({ batches: 4, gaps: [[2, 2], [4, 4]], ranges: [[0, 1], [3, 3], [5, 5]] })
    await store.appendBatch(s.batch(2))
    await store.appendBatch(s.batch(4))
    expect(await store.getStream(s.id)).toMatchObject({ batches: 6, lastSeq: 5, gaps: [], ranges: [[0, 5]] })
    const t = new TestStream(new TestGatewayKey('b'), 'bed-03', 'patient c')
    for (let seq = 0; seq <= 3; seq++) t.manifest(seq)
    await store.appendBatch(t.batch(3))
    expect(await store.getStream(t.id)).toMatchObject({ batches: 1, lastSeq: 3, gaps: [[0, 2]], ranges: [[3, 3]] })
    expect(await store.stats()).toMatchObject({ streams: 2, gaps: 1, missingBatches: 3 })
    await verifyOk()
  })

  it('refuses broken links (logged as equivocations) and uploads it could not verify later', async () => {
    const s = new TestStream(new TestGatewayKey('c'), 'bed-04', 'patient d')
    await store.appendBatch(s.batch(0))
    s.manifest(1)
    const bogus = 'ab'.repeat(32)
    const e1 = await errorOf(() => store.appendBatch(s.batch(1, { prev: bogus, variant: 2 })))
    expect(isCareLedgerError(e1, 'VERIFICATION_FAILED')).toBe(true)
    expect(e1.info).toMatchObject({ reason: 'PREV_MISMATCH', prev: bogus, stored: s.commitments[0], recordId: 1 })
    await store.appendBatch(s.batch(2))
    const e2 = await errorOf(() => store.appendBatch(s.batch(1, { variant: 3 })))
    expect(e2.info).toMatchObject({ reason: 'NEXT_MISMATCH', storedPrev: s.commitments[1], commitment: manifestCommitment(s.manifest(1, { variant: 3 })) })
    expect((await store.getStream(s.id))!.gaps).toEqual([[1, 1]])
    expect((await store.appendBatch(s.batch(1))).status).toBe('created')
    expect((await store.getStream(s.id))!.gaps).toEqual([])
    expect((await store.stats()).equivocations).toBe(2)

    const u = new TestStream(new TestGatewayKey('d'), 'bed-05', 'patient e')
    const b = u.batch(0)
    const bad = b.signature.slice()
    bad[10]! ^= 0x40
    expect((await errorOf(() => store.appendBatch({ ...b, signature: bad }))).info.reason).toBe('MANIFEST_SIGNATURE')
    expect((await errorOf(() => store.appendBatch({ ...b, gatewayKey: new TestGatewayKey('e').publicKey }))).info.reason).toBe('GATEWAY_KEY_MISMATCH')
    expect((await store.stats()).records).toBe(3)
    await verifyOk()
  })

  it('judges a bulk in order, exactly as single appends would', async () => {
    const fleet = testFleet(2, 3, 'bulk')
    const inputs = []
    for (let seq = 0; seq < 4; seq++) for (const s of fleet) inputs.push(s.batch(seq))
    const s0 = fleet[0]!
    inputs.push(s0.batch(1)) // duplicate of an earlier item in the same bulk
    inputs.push(s0.batch(2, { variant: 5 })) // conflict with an earlier item in the same bulk
    const bad = { ...s0.batch(3), signature: new Uint8Array(64) }
    inputs.push(bad)
    const results = await store.appendBatches(inputs)
    expect(results.map((r) => r.status)).toEqual([...Array(24).fill('created'), 'duplicate', 'conflict', 'rejected'])
    expect(results.slice(0, 24).map((r) => (r.status === 'created' ? r.record.id : 0))).toEqual(Array.from({ length: 24 }, (_, i) => i + 1))
    expect(await store.stats()).toMatchObject({ records: 24, equivocations: 1, streams: 6 })
    await store.sealBlock(1)
    await verifyOk()
  })

  it('seals pending records into signed, linked blocks; reads and inclusion proofs', async () => {
    expect(await store.sealBlock(1000)).toBeNull()
    const fleet = testFleet(1, 4, 'seal')
    for (let seq = 0; seq < 3; seq++) await store.appendBatches(fleet.map((s) => s.batch(seq)))
    const b0 = (await store.sealBlock(5000))!
    expect(b0).toMatchObject({ height: 0, prev: null, time: 5000, count: 12, firstRecord: 1, lastRecord: 12, chameleonKey: store.chameleonKeyId, signer: store.signerKeyId })
    // Block header v2 on both backends; no redaction log here (PostgreSQL has no supervision yet): the empty state.
    expect(b0).toMatchObject({ version: 2, redactions: { count: 0, head: '0'.repeat(64) } })
    expect((await store.getBlock(0))!.header).toMatchObject({ v: 2, redactions: { count: 0, head: '0'.repeat(64) } })
    expect(await store.sealBlock(6000)).toBeNull()
    await store.appendBatches(fleet.map((s) => s.batch(3)))
    const b1 = (await store.sealBlock(4000, { maxRecords: 3 }))!
    expect(b1).toMatchObject({ height: 1, prev: b0.hash, time: 5000, count: 3, firstRecord: 13, lastRecord: 15 })
    const b2 = (await store.sealBlock(7000))!
    expect(b2).toMatchObject({ height: 2, prev: b1.hash, firstRecord: 16, lastRecord: 16 })
    expect((await store.getRecord(14))!.block).toBe(1)
    expect((await store.getBlock(1))!.records).toEqual([13, 14, 15])
    expect((await store.listBlocks({ after: 1, limit: 10 })).map((b) => b.height)).toEqual([2])
    expect(await store.head()).toEqual({ height: 2, hash: b2.hash, time: 7000 })
    expect((await store.listRecords({ after: 14, limit: 5 })).map((r) => r.id)).toEqual([15, 16])
    expect((await store.listRecords({ stream: fleet[1]!.id, limit: 10 })).map((r) => r.seq)).toEqual([0, 1, 2, 3])
    const opts = { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey }
    for (let id = 1; id <= 16; id++) expect(verifyRecordProof(JSON.parse(JSON.stringify(await store.recordProof(id))), opts).ok).toBe(true)
    const r = await verifyOk()
    expect(r).toMatchObject({ blocks: 3, records: 16, sealedRecords: 16 })
  })

  it('pins the chameleon key of a chain', async () => {
    const s = new TestStream(new TestGatewayKey('f'), 'bed-06', 'patient f')
    await store.appendBatch(s.batch(0))
    await store.sealBlock(1)
    const wrong = { ...keys.store, chameleonPublicKey: chameleonKeyGen().publicKey }
    expect((await errorOf(() => open(wrong))).info.reason).toBe('CHAMELEON_KEY_CHANGED')
  })
})

describe('a bad --database', () => {
  it('is refused with an error naming the flag, or the unreachable server (without its password)', async () => {
    const { loadCloudConfig } = await import('../../cloud/config.ts')
    expect(() => loadCloudConfig({ database: 'mysql://x/y' }, {})).toThrow(/--database="mysql:\/\/x\/y": must be a postgres:\/\/ or postgresql:\/\/ URL/)
    expect(() => loadCloudConfig({}, { CARELEDGER_CLOUD_DATABASE: 'cloud.db' })).toThrow(/CARELEDGER_CLOUD_DATABASE/)
    expect(loadCloudConfig({ database: 'postgres://a@h/db' }, {}).config.database).toBe('postgres://a@h/db')
    expect(loadCloudConfig({}, {}).config.database).toBeNull()
    const e = await errorOf(() => openChainBackend('postgres://careledger:s3cret@127.0.0.1:1/none', keys.store, { workers: 0 }))
    expect(e.info).toMatchObject({ reason: 'DATABASE_UNREACHABLE', database: 'postgres://careledger:***@127.0.0.1:1/none' })
    expect(e.message).not.toContain('s3cret')
  })
})
