/**
 * ChainStore on real SQLite files: appends (created / duplicate / conflict), stream gaps and
 * links, equivocation log, bulk appends over worker threads, sealing, reads, proofs, and a
 * verification pass over what was written.
 */
import { join } from 'node:path'
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { bytesToHex } from '@noble/hashes/utils.js'
import { isCareLedgerError, type CareLedgerError } from '../../shared/errors.ts'
import { chameleonKeyGen } from '../../shared/crypto/chameleon.ts'
import { generateSigningKey } from '../../shared/crypto/sign.ts'
import { manifestCommitment } from '../../shared/protocol/manifest.ts'
import { openCloudDb, type CloudDb } from '../../cloud/store/db.ts'
import { ChainStore, type BulkAppendResult } from '../../cloud/chain/store.ts'
import { verifyChain, verifyRecordProof, verifyRecordProofs } from '../../cloud/chain/verify.ts'
import { AppendQueue } from '../../cloud/chain/append-queue.ts'
import { admitBatch } from '../../cloud/chain/record.ts'
import { chainTestKeys, tempDir, TestGatewayKey, TestStream, testFleet } from './chain-helpers.ts'

const tmp = tempDir('chain-store')
afterAll(() => tmp.cleanup())
const keys = chainTestKeys('store tests')
let n = 0
let db: CloudDb
let store: ChainStore

const open = (workers = 0): void => {
  db = openCloudDb(join(tmp.dir, `chain-${++n}.db`))
  store = new ChainStore(db, keys.store, { workers, parallelThreshold: 2 })
}
beforeEach(() => open())

const errorOf = (f: () => unknown): { code?: string; message: string; info: Record<string, unknown> } => {
  try {
    f()
  } catch (e) {
    return e as never
  }
  throw new Error('expected an error')
}
const verifyOk = async (workers = 0) => {
  const r = await verifyChain(db, { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey, workers })
  expect(r.failures).toEqual([])
  return r
}

describe('appendBatch', () => {
  it('creates a record, answers duplicate for the same batch and conflict for another at the same position', async () => {
    const s = new TestStream(new TestGatewayKey('a'), 'bed-01', 'patient a')
    const first = store.appendBatch(s.batch(0))
    expect(first.status).toBe('created')
    if (first.status === 'conflict') throw new Error()
    expect(first.record).toMatchObject({ id: 1, stream: s.id, seq: 0, gateway: s.gateway.id, device: 'bed-01', patient: s.patient, block: null })
    expect(first.record.commitment).toMatch(/^[0-9a-f]{64}$/)

    const again = store.appendBatch(s.batch(0))
    expect(again).toEqual({ status: 'duplicate', record: first.record })
    expect(store.stats().records).toBe(1)

    const other = store.appendBatch(s.batch(0, { variant: 1 }))
    expect(other.status).toBe('conflict')
    if (other.status !== 'conflict') throw new Error()
    expect(other.existing.id).toBe(1)
    const [eq] = store.listEquivocations({ limit: 10 })
    expect(eq).toMatchObject({ kind: 'conflict', stream: s.id, seq: 0, recordId: 1, offeredCommitment: manifestCommitment(s.manifest(0, { variant: 1 })) })
    expect(eq!.manifest).toEqual(s.manifest(0, { variant: 1 }))
    // Logged once, however often it is retried.
    store.appendBatch(s.batch(0, { variant: 1 }))
    expect(store.stats().equivocations).toBe(1)

    const detail = store.getRecord(1)!
    expect(detail.manifest).toEqual(s.manifest(0))
    expect(detail.gatewayKey).toBe(bytesToHex(s.gateway.publicKey))
    expect(detail.manifestCommitment).toBe(s.commitments[0])
    await verifyOk()
  })

  it('records gaps and closes them as late batches arrive; ranges and gaps per stream', async () => {
    const s = new TestStream(new TestGatewayKey('b'), 'bed-02', 'patient b')
    for (let seq = 0; seq <= 5; seq++) s.manifest(seq) // commitments for the links
    for (const seq of [0, 1, 5]) store.appendBatch(s.batch(seq))
    expect(store.getStream(s.id)).toMatchObject({ batches: 3, lastSeq: 5, gaps: [[2, 4]], ranges: [[0, 1], [5, 5]] })
    store.appendBatch(s.batch(3))
    expect(store.getStream(s.id)).toMatchObject({ batches: 4, gaps: [[2, 2], [4, 4]], ranges: [[0, 1], [3, 3], [5, 5]] })
    store.appendBatch(s.batch(2))
    store.appendBatch(s.batch(4))
    expect(store.getStream(s.id)).toMatchObject({ batches: 6, lastSeq: 5, gaps: [], ranges: [[0, 5]] })

    // A stream first seen at seq 3: 0..2 are missing.
    const t = new TestStream(new TestGatewayKey('b'), 'bed-03', 'patient c')
    for (let seq = 0; seq <= 3; seq++) t.manifest(seq)
    store.appendBatch(t.batch(3))
    expect(store.getStream(t.id)).toMatchObject({ batches: 1, lastSeq: 3, gaps: [[0, 2]], ranges: [[3, 3]] })
    expect(store.stats()).toMatchObject({ streams: 2, gaps: 1, missingBatches: 3 })
    expect(store.listStreams().map((x) => x.stream).sort()).toEqual([s.id, t.id].sort())
    await verifyOk()
  })

  it('a late batch in no recorded gap (an inconsistent stream index) is refused in a bulk, writing nothing; the others land', () => {
    const s = new TestStream(new TestGatewayKey('g'), 'bed-09', 'patient g')
    for (let seq = 0; seq <= 4; seq++) s.manifest(seq)
    for (const seq of [0, 4]) store.appendBatch(s.batch(seq))
    db.prepare('DELETE FROM stream_gaps WHERE stream = ?').run(s.id) // the gap 1..3 lost
    const before = { records: store.stats().records, stream: store.getStream(s.id) }
    const other = new TestStream(new TestGatewayKey('g'), 'bed-10', 'patient h')
    const results = store.appendBatches([other.batch(0), s.batch(2), other.batch(1)])
    expect(results.map((r) => r.status)).toEqual(['created', 'rejected', 'created'])
    expect(((results[1] as unknown as { error: CareLedgerError }).error.info as { reason: string }).reason).toBe('STREAM_INDEX')
    expect(store.stats().records).toBe(before.records + 2)
    expect(store.getStream(s.id)).toEqual(before.stream)
    expect(db.prepare('SELECT count(*) AS n FROM records WHERE stream = ? AND seq = 2').get(s.id)).toEqual({ n: 0 })
  })

  it('refuses a batch whose prev is not the stored seq − 1, or whose commitment is not the prev of the stored seq + 1', async () => {
    const s = new TestStream(new TestGatewayKey('c'), 'bed-04', 'patient d')
    store.appendBatch(s.batch(0))
    s.manifest(1)
    // prev names something else than the stored seq 0.
    const bogus = 'ab'.repeat(32)
    const e1 = errorOf(() => store.appendBatch(s.batch(1, { prev: bogus, variant: 2 })))
    expect(isCareLedgerError(e1, 'VERIFICATION_FAILED')).toBe(true)
    expect(e1.info).toMatchObject({ reason: 'PREV_MISMATCH', prev: bogus, stored: s.commitments[0], recordId: 1 })
    expect(e1.message).toContain(bogus)
    expect(e1.message).toContain(s.commitments[0])

    // seq 2 arrives before seq 1 (a gap), then a different seq 1 than the one seq 2 chains onto.
    store.appendBatch(s.batch(2))
    const e2 = errorOf(() => store.appendBatch(s.batch(1, { variant: 3 })))
    expect(e2.info).toMatchObject({ reason: 'NEXT_MISMATCH', storedPrev: s.commitments[1], commitment: manifestCommitment(s.manifest(1, { variant: 3 })) })
    expect(store.getStream(s.id)!.gaps).toEqual([[1, 1]])
    // Both refusals are kept as signed evidence.
    expect(store.listEquivocations({ limit: 10 }).map((e) => e.kind)).toEqual(['prev-mismatch', 'next-mismatch'])
    // The right seq 1 closes the gap.
    expect(store.appendBatch(s.batch(1)).status).toBe('created')
    expect(store.getStream(s.id)!.gaps).toEqual([])
    await verifyOk()
  })

  it('refuses uploads the chain could not verify later, storing nothing', () => {
    const s = new TestStream(new TestGatewayKey('d'), 'bed-05', 'patient e')
    const b = s.batch(0)
    const bad = b.signature.slice()
    bad[10]! ^= 0x40
    expect(errorOf(() => store.appendBatch({ ...b, signature: bad })).info.reason).toBe('MANIFEST_SIGNATURE')
    expect(errorOf(() => store.appendBatch({ ...b, gatewayKey: new TestGatewayKey('e').publicKey })).info.reason).toBe('GATEWAY_KEY_MISMATCH')
    expect(store.stats()).toMatchObject({ records: 0, streams: 0 })
    // The index says the stream belongs to another device (cannot happen through appends: stream ids are derived).
    store.appendBatch(b)
    db.prepare("UPDATE streams SET device = 'bed-99'").run()
    expect(errorOf(() => store.appendBatch(s.batch(1))).info.reason).toBe('STREAM_IDENTITY')
  })
})

describe('an upload the service already admitted', () => {
  it('is not admitted twice, and what the caller changes afterwards is not what gets stored', async () => {
    const s = new TestStream(new TestGatewayKey('g'), 'bed-08', 'patient g')
    const admitted = admitBatch(s.batch(0))
    // Tampering with the returned object after admission changes nothing: the store uses its private copy.
    admitted.signature.fill(0)
    ;(admitted.manifest as { policy: string }).policy = 'role:anyone'
    const r = store.appendBatch(admitted)
    expect(r.status).toBe('created')
    expect(store.getRecord(1)!.manifest!.policy).toBe(s.manifest(0).policy)
    // A look-alike built by the caller is admitted again, and refused.
    const lookalike = { ...admitBatch(s.batch(1)) }
    lookalike.signature.fill(0)
    expect(errorOf(() => store.appendBatch(lookalike)).info.reason).toBe('MANIFEST_SIGNATURE')
    expect(store.appendBatches([admitBatch(s.batch(1)), s.batch(2)]).map((x) => x.status)).toEqual(['created', 'created'])
    await verifyOk()
  })
})

describe('appendBatches (bulk, one transaction, worker threads)', () => {
  it('judges each batch in order, exactly as single appends would, with or without workers', async () => {
    const run = (workers: number): BulkAppendResult[] => {
      open(workers)
      const fleet = testFleet(2, 3, 'bulk')
      const inputs = []
      for (let seq = 0; seq < 6; seq++) for (const s of fleet) inputs.push(s.batch(seq))
      const s0 = fleet[0]!
      inputs.push(s0.batch(2)) // duplicate inside the same bulk
      inputs.push(s0.batch(3, { variant: 1 })) // conflict with a record of this bulk
      inputs.push({ ...s0.batch(7, { prev: 'cd'.repeat(32) }), signature: new Uint8Array(64) }) // bad signature
      inputs.push(s0.batch(6, { prev: 'ef'.repeat(32), variant: 4 })) // prev mismatch
      inputs.push(s0.batch(6)) // fine
      const results = store.appendBatches(inputs)
      const threads = store.appendThreadStats()
      if (workers > 0) expect(threads).toMatchObject({ retired: 0, onWorkers: expect.any(Number) })
      // admit + commit phases spread over the threads; the caller takes back what a worker has not
      // started (work stealing), so the split depends on how fast the threads are: all counted.
      if (workers > 0) expect(threads.onWorkers + threads.onCaller).toBeGreaterThanOrEqual(inputs.length)
      return results
    }
    const serial = run(0)
    await verifyOk()
    const parallel = run(2)
    expect(parallel.map((r) => r.status)).toEqual(serial.map((r) => r.status))
    expect(parallel.map((r) => r.status).slice(-5)).toEqual(['duplicate', 'conflict', 'rejected', 'rejected', 'created'])
    const reasons = parallel.flatMap((r) => (r.status === 'rejected' ? [(r.error as CareLedgerError).info.reason] : []))
    expect(reasons).toEqual(['MANIFEST_SIGNATURE', 'PREV_MISMATCH'])
    expect(parallel.filter((r) => r.status === 'created').map((r) => (r as { record: { id: number } }).record.id)).toEqual(Array.from({ length: 37 }, (_, i) => i + 1))
    expect(store.stats()).toMatchObject({ records: 37, equivocations: 2 })
    store.sealBlock(Date.now())
    await verifyOk(2)
    await store.close()
  })
})

describe('appendBatchesPipelined (hashes computed ahead on a worker, transactions in call order)', () => {
  it('answers and stores exactly what appendBatches would, also when duplicates, refusals or another append shift the ids', async () => {
    const fleet = testFleet(2, 4, 'pipelined')
    const bulk = (from: number, to: number) => {
      const out = []
      for (let seq = from; seq < to; seq++) for (const s of fleet) out.push(s.batch(seq))
      return out
    }
    const s0 = fleet[0]!
    const a = bulk(0, 3) // 24 new
    const b = bulk(3, 5) // 16 new
    const c = [...bulk(5, 6), s0.batch(1), s0.batch(2, { variant: 1 })] // 8 new, then a duplicate and a conflict: ids stay as predicted
    const d = [s0.batch(0), ...bulk(6, 7)] // a duplicate first: its 8 new records come one id earlier than predicted
    const e = bulk(7, 9) // predicted after d's shift
    const f = [{ ...s0.batch(9), signature: new Uint8Array(64) }, ...bulk(9, 10).slice(1)] // a bad signature
    const g = bulk(10, 11)
    const order = [a, b, c, d, e, f, g]

    // The reference: the same bulks through appendBatches, one after another, no workers.
    open(0)
    const expected = order.map((x) => store.appendBatches(x))
    const reference = (id: number) => store.getRecord(id)!
    const refRecords = Array.from({ length: store.stats().records }, (_, i) => reference(i + 1))
    await store.close()

    open(1)
    await store.pipelineReady()
    // a, b, c dispatched at once; d waits behind them; a synchronous append cannot come in between (they run in order)
    const pending = [a, b, c, d].map((x) => store.appendBatchesPipelined(x))
    const [ra, rb, rc, rd] = await Promise.all(pending)
    const re = store.appendBatchesPipelined(e)
    const rf = store.appendBatchesPipelined(f)
    const rg = store.appendBatchesPipelined(g)
    const got = [ra!, rb!, rc!, rd!, await re, await rf, await rg]
    const shape = (rs: BulkAppendResult[]) => rs.map((r) => (r.status === 'rejected' ? `rejected:${(r.error as CareLedgerError).info.reason}` : `${r.status}:${'record' in r ? r.record.id : r.existing.id}`))
    expect(got.map(shape)).toEqual(expected.map(shape))
    expect(got[2]!.slice(-2).map((r) => r.status)).toEqual(['duplicate', 'conflict'])
    expect(shape(got[5]!)[0]).toBe('rejected:MANIFEST_SIGNATURE')
    // Same ids, same content bytes; each record's own commitment (verifyChain checks them all).
    expect(store.stats().records).toBe(refRecords.length)
    for (const r of refRecords) expect(store.getRecord(r.id)!.content).toEqual(r.content)
    const { used, recomputed } = store.pipelineStats()
    expect(used + recomputed).toBeGreaterThanOrEqual(refRecords.length - 8) // all but d's shifted ones had a prediction
    expect(used).toBeGreaterThan(0)
    expect(recomputed).toBeGreaterThanOrEqual(8) // d's records: one id earlier than computed
    // A synchronous append between pipelined ones: the queued ones after it are recomputed, right.
    const more = testFleet(1, 3, 'pipelined more')
    const h = store.appendBatchesPipelined(more.map((s) => s.batch(0)))
    const sync = store.appendBatches(more.map((s) => s.batch(1)))
    expect(sync.map((r) => r.status)).toEqual(['created', 'created', 'created'])
    const afterSync = await h
    expect(afterSync.map((r) => r.status)).toEqual(['created', 'created', 'created'])
    const ids = [...sync, ...afterSync].map((r) => (r as { record: { id: number } }).record.id)
    expect(ids.sort((x, y) => x - y)).toEqual(Array.from({ length: 6 }, (_, i) => refRecords.length + 1 + i))
    store.sealBlock(Date.now())
    await verifyOk(2)
    await store.close()
  })

  it('falls back to hashing in the transaction when the worker is gone, and close() waits for queued appends', async () => {
    open(0) // no worker: nothing is computed ahead
    const fleet = testFleet(1, 3, 'pipelined no worker')
    const queued = store.appendBatchesPipelined(fleet.map((s) => s.batch(0)))
    await store.close()
    expect((await queued).map((r) => r.status)).toEqual(['created', 'created', 'created'])
    expect(store.pipelineStats()).toEqual({ used: 0, recomputed: 0 })
    await verifyOk()
  })
})

describe('admitBatches (the bulk path admits on the worker threads)', () => {
  it('admits as admitBatch would, names each refusal, and stores its own copy of what it admitted', async () => {
    open(1)
    const fleet = testFleet(1, 4, 'admit many')
    const inputs = []
    for (let seq = 0; seq < 5; seq++) for (const s of fleet) inputs.push(s.batch(seq))
    inputs.push({ ...fleet[0]!.batch(5), signature: new Uint8Array(64) }) // bad signature
    inputs.push({ ...fleet[1]!.batch(5), manifest: { ...fleet[1]!.manifest(5), seq: -1 } }) // schema
    const outcomes = store.admitBatches(inputs)
    // Spread over the threads; the caller takes back what a (still starting) worker has not claimed: all counted.
    const threads = store.appendThreadStats()
    expect(threads.retired).toBe(0)
    expect(threads.onWorkers + threads.onCaller).toBeGreaterThanOrEqual(inputs.length)
    const refused = outcomes.flatMap((o) => ('ok' in o ? [] : [o.error.info.reason]))
    expect(refused).toEqual(['MANIFEST_SIGNATURE', 'SCHEMA'])
    const admitted = outcomes.flatMap((o) => ('ok' in o ? [o.ok] : []))
    expect(admitted.map((a) => a.commitment)).toEqual(inputs.slice(0, 20).map((i) => manifestCommitment(i.manifest)))
    // Changed by the caller after admission: the store appends the copy it admitted, without a second admission.
    admitted[0]!.signature.fill(0)
    ;(admitted[0]!.manifest as { policy: string }).policy = 'role:anyone'
    const results = store.appendBatches(admitted)
    expect(results.every((r) => r.status === 'created')).toBe(true)
    expect(store.getRecord(1)!.manifest!.policy).toBe(inputs[0]!.manifest.policy)
    // A look-alike the caller built is admitted again, and refused.
    const lookalike = { ...store.admitBatches([fleet[0]!.batch(5)])[0]! } as { ok: ReturnType<typeof admitBatch> }
    const copy = { ...lookalike.ok, signature: new Uint8Array(64) }
    expect((store.appendBatches([copy])[0] as unknown as { error: CareLedgerError }).error.info.reason).toBe('MANIFEST_SIGNATURE')
    store.sealBlock(Date.now())
    await verifyOk(2)
    await store.close()
  })
})

describe('AppendQueue (group commit of concurrent uploads)', () => {
  it('answers each concurrent upload on its own, after one shared transaction', async () => {
    const queue = new AppendQueue(store)
    const fleet = testFleet(1, 5, 'queue')
    const inputs = []
    for (let seq = 0; seq < 4; seq++) for (const s of fleet) inputs.push(s.batch(seq))
    const groups = vi.spyOn(store, 'appendBatchesPipelined') // observed, not replaced
    const bad = { ...inputs[3]!, signature: new Uint8Array(64) }
    const outcomes = await Promise.allSettled([...inputs.map((i) => queue.append(i)), queue.append(bad), queue.append(inputs[0]!)])
    expect(groups).toHaveBeenCalledTimes(1)
    groups.mockRestore()
    const statuses = outcomes.map((o) => (o.status === 'fulfilled' ? o.value.status : ((o.reason as CareLedgerError).info.reason as string)))
    expect(statuses).toEqual([...inputs.map(() => 'created'), 'MANIFEST_SIGNATURE', 'duplicate'])
    expect(store.stats().records).toBe(20)
    expect(queue.pending).toBe(0)
    await verifyOk()
  })
})

describe('sealing and reading', () => {
  it('seals pending records into signed, linked blocks; never an empty block; time never goes back', async () => {
    expect(store.sealBlock(1000)).toBeNull()
    const fleet = testFleet(1, 4, 'seal')
    for (let seq = 0; seq < 3; seq++) for (const s of fleet) store.appendBatch(s.batch(seq))
    const b0 = store.sealBlock(5000)!
    expect(b0).toMatchObject({ height: 0, prev: null, time: 5000, count: 12, firstRecord: 1, lastRecord: 12, chameleonKey: store.chameleonKeyId, signer: store.signerKeyId })
    expect(store.sealBlock(6000)).toBeNull()
    for (const s of fleet) store.appendBatch(s.batch(3))
    const b1 = store.sealBlock(4000, { maxRecords: 3 })! // the clock went back: the block keeps the previous time
    expect(b1).toMatchObject({ height: 1, prev: b0.hash, time: 5000, count: 3, firstRecord: 13, lastRecord: 15 })
    const b2 = store.sealBlock(7000)!
    expect(b2).toMatchObject({ height: 2, prev: b1.hash, firstRecord: 16, lastRecord: 16 })
    expect(store.getRecord(14)!.block).toBe(1)
    expect(store.getBlock(1)!.records).toEqual([13, 14, 15])
    expect(store.listBlocks({ limit: 2 }).map((b) => b.height)).toEqual([0, 1])
    expect(store.listBlocks({ after: 1, limit: 10 }).map((b) => b.height)).toEqual([2])
    expect(store.head()).toEqual({ height: 2, hash: b2.hash, time: 7000 })
    expect(store.listRecords({ limit: 5 }).map((r) => r.id)).toEqual([1, 2, 3, 4, 5])
    expect(store.listRecords({ after: 14, limit: 5 }).map((r) => r.id)).toEqual([15, 16])
    expect(store.listRecords({ stream: fleet[1]!.id, limit: 10 }).map((r) => r.seq)).toEqual([0, 1, 2, 3])
    await verifyOk()
  })

  it('gives each sealed record an inclusion proof that verifies without the database', () => {
    const fleet = testFleet(1, 5, 'proof')
    for (let seq = 0; seq < 4; seq++) for (const s of fleet) store.appendBatch(s.batch(seq))
    store.sealBlock(1)
    expect(store.recordProof(3)!.treeSize).toBe(20)
    for (const s of fleet) store.appendBatch(s.batch(4))
    expect(store.recordProof(21)).toBeNull() // pending
    store.sealBlock(2)
    const p = JSON.parse(JSON.stringify(store.recordProof(23)!)) // as the API sends it
    expect(p).toMatchObject({ leafIndex: 2, treeSize: 5, block: { header: { height: 1, first: 21, last: 25 } } })
    const opts = { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey }
    expect(verifyRecordProof(p, opts)).toMatchObject({ ok: true, signatureChecked: true, recordId: 23, height: 1, failures: [] })
    for (let id = 1; id <= 25; id++) expect(verifyRecordProof(store.recordProof(id), opts).ok).toBe(true)
    // A page (GET /v1/evidence/records): the same proofs, in the order asked, null where recordProof is null.
    for (const s of fleet.slice(0, 2)) store.appendBatch(s.batch(5))
    const page = [25, 3, 26, 999, 21, 3, 1]
    expect(store.recordProofs(page)).toEqual(page.map((id) => store.recordProof(id)))
    expect(store.recordProofs([])).toEqual([])
    // Each piece of the proof matters.
    const kinds = (q: unknown, o = opts) => verifyRecordProof(q, o).failures.map((f) => f.kind)
    const clone = () => JSON.parse(JSON.stringify(p))
    let q = clone()
    q.proof[0] = q.proof[0].replace(/^./, (c: string) => (c === '0' ? '1' : '0'))
    expect(kinds(q)).toEqual(['RECORDS_ROOT'])
    q = clone()
    q.block.header.time += 1
    expect(kinds(q)).toEqual(['BLOCK_HASH', 'BLOCK_SIGNATURE'])
    q = clone()
    q.record.opening = q.record.opening.replace(/^./, (c: string) => (c === '0' ? '1' : '0'))
    expect(kinds(q)).toEqual(['RECORD_OPENING'])
    expect(kinds(p, { ...opts, signingPublicKey: generateSigningKey().publicKey })).toEqual(['BLOCK_SIGNATURE'])
    expect(verifyRecordProof({ nonsense: true }, opts).ok).toBe(false)

    // Many at once (the chameleon openings as one batch): the same verdicts, each failure on its own proof.
    const all = Array.from({ length: 25 }, (_, i) => JSON.parse(JSON.stringify(store.recordProof(i + 1)!)))
    expect(verifyRecordProofs(all, opts)).toEqual(all.map((x) => verifyRecordProof(x, opts)))
    const bad = all.map((x) => JSON.parse(JSON.stringify(x)))
    bad[4].record.opening = bad[4].record.opening.replace(/^./, (c: string) => (c === '0' ? '1' : '0'))
    bad[17].proof[0] = bad[17].proof[0].replace(/^./, (c: string) => (c === '0' ? '1' : '0'))
    bad[9] = { nonsense: true }
    const batch = verifyRecordProofs(bad, opts)
    expect(batch).toEqual(bad.map((x) => verifyRecordProof(x, opts)))
    expect(batch.flatMap((v, i) => (v.ok ? [] : [[i, v.failures.map((f) => f.kind)]]))).toEqual([
      [4, ['RECORD_OPENING']],
      [9, ['RECORD_CONTENT']],
      [17, ['RECORDS_ROOT']],
    ])
  })

  it('pins the chameleon key of a chain; block-signing keys may rotate', async () => {
    const s = new TestStream(new TestGatewayKey('f'), 'bed-06', 'patient f')
    store.appendBatch(s.batch(0))
    store.sealBlock(1)
    const wrong = { ...keys.store, chameleonPublicKey: chameleonKeyGen().publicKey }
    expect(errorOf(() => new ChainStore(db, wrong)).info.reason).toBe('CHAMELEON_KEY_CHANGED')
    const rotated = generateSigningKey()
    const again = new ChainStore(db, { ...keys.store, signingSecretKey: rotated.secretKey, signingPublicKey: rotated.publicKey }, { workers: 0 })
    again.appendBatch(s.batch(1))
    again.sealBlock(2)
    // Checked against the keys the database lists: both signers; against the old key alone: block 1 fails.
    const self = await verifyChain(db, { chameleonPublicKey: keys.chameleon.publicKey, workers: 0 })
    expect(self).toMatchObject({ ok: true, signingKeys: { source: 'database' } })
    expect(self.signingKeys.ids).toHaveLength(2)
    const pinned = await verifyChain(db, { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: keys.signing.publicKey, workers: 0 })
    expect(pinned.failures.map((f) => [f.kind, f.height])).toEqual([['BLOCK_SIGNATURE', 1]])
    const both = await verifyChain(db, { chameleonPublicKey: keys.chameleon.publicKey, signingPublicKey: [keys.signing.publicKey, rotated.publicKey], workers: 0 })
    expect(both.ok).toBe(true)
  })
})
