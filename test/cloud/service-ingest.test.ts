/**
 * Batch ingest and the read API against an in-process cloud listening on a port, with real sealed
 * batches (gateway/seal/seal.ts under a test FABEO authority) in real CARs: every manifest and CAR
 * check refuses with its documented code and stores nothing; duplicates, conflicts, stream links
 * and gaps; the bulk endpoint; records, proofs (verified here with RFC 9162), envelopes, blocks.
 * Run twice: on the embedded SQLite chain, and with the chain on a real PostgreSQL server
 * (`--database postgres://…`, test/helpers/postgres.ts; skipped with a printed reason without one).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { encodeCanonical } from '../../shared/encoding/canonical.ts'
import { leafHash, verifyInclusion } from '../../shared/crypto/merkle.ts'
import { signManifest } from '../../shared/protocol/manifest.ts'
import { verifyBlockSignature } from '../../cloud/chain/block.ts'
import type { Cloud } from '../../cloud/runtime.ts'
import type { SealedBatch } from '../../gateway/seal/seal.ts'
import { batchBody, batchCar, bulkBody, carOf, resign, sealChain, sealTestBatch, signedPost, testGateway, testStream, uploadItem, type TestGateway, type TestStream } from '../helpers/cloud-batches.ts'
import { getAs, json, startTestCloud, storedState, tempDataDir } from '../helpers/cloud-process.ts'
import pg from 'pg'
import { usePostgres } from '../helpers/postgres.ts'

const postgres = usePostgres()
const BACKENDS = [{ name: 'sqlite' as const }, ...(postgres.skip ? [] : [{ name: 'postgres' as const }])]
const PG_CHAIN_TABLES = ['chain_keys', 'blocks', 'records', 'streams', 'stream_gaps', 'equivocations']

describe.each(BACKENDS)('ingest and read, chain on $name', ({ name: backend }) => {
let database: string | null = null
/** What the cloud stores: cloud.db and blocks/ (storedState), with the chain's tables counted in PostgreSQL when it is there. */
const storedAll = async (): Promise<Record<string, number>> => {
  const out = storedState(data.dir)
  if (!database) return out
  const c = new pg.Client({ connectionString: database })
  await c.connect()
  try {
    for (const t of PG_CHAIN_TABLES) out[t] = Number((await c.query(`SELECT count(*) AS n FROM ${t}`)).rows[0].n)
  } finally {
    await c.end()
  }
  return out
}
/** Seal now, by hand (the sealer lease would seal only at its next interval). */
const sealNow = async () => (backend === 'postgres' ? cloud.backend.sealBlock(Date.now()) : cloud.sealNow())

let data: ReturnType<typeof tempDataDir>
let cloud: Cloud
let gw: TestGateway
let admin: string
let doctor: string

const upload = async (body: Uint8Array, g: TestGateway = gw) => {
  const { res } = await signedPost(cloud.url, g, '/v1/batches', body)
  return { status: res.status, body: await json(res) }
}

/** Stored state without the nonce table (each accepted request's nonce is remembered, by design). */
const stored = async () => {
  const { request_nonces: _n, ...rest } = await storedAll()
  return rest
}

async function expectRefusal(body: Uint8Array, status: number, code: string, field?: string, g: TestGateway = gw): Promise<{ message: string; details: Record<string, unknown> }> {
  const before = await storedAll()
  const r = await upload(body, g)
  expect(r.status, JSON.stringify(r.body)).toBe(status)
  expect(r.body.error.code).toBe(code)
  if (field) expect(r.body.error.details.field).toBe(field)
  expect(r.body.error.message.length).toBeGreaterThan(10)
  const after = await storedAll()
  // The signature verified, so the nonce is remembered; nothing else.
  expect({ ...after, request_nonces: 0 }).toEqual({ ...before, request_nonces: 0 })
  return r.body.error
}

async function registerGateway(name: string): Promise<TestGateway> {
  const g = testGateway()
  const { token } = await cloud.enrolment.invite(name)
  const res = await fetch(`${cloud.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, publicKey: bytesToHex(g.publicKey), name }) })
  expect(res.status).toBe(201)
  return g
}

beforeAll(async () => {
  data = tempDataDir('cloud-ingest')
  // Blocks are sealed by hand here (cloud.sealNow) so "not sealed yet" is deterministic.
  if (backend === 'postgres') database = await postgres.server().createDatabase('service_ingest')
  cloud = await startTestCloud(data.dir, { blockIntervalS: '3600', maxBatchBytes: String(64 * 1024), ...(database ? { database } : {}) })
  admin = (await cloud.tokens.create('admin', 'admin')).token
  doctor = (await cloud.tokens.create('doctor', 'dr-who')).token
  gw = await registerGateway('ward-1')
})

afterAll(async () => {
  await cloud?.stop()
  data?.cleanup()
})

describe('manifest and CAR checks: 400 with the right code, nothing stored', () => {
  let stream: TestStream
  let b: SealedBatch
  let other: SealedBatch

  beforeAll(async () => {
    stream = testStream(gw, 'bed-checks', 'P-checks')
    const sealed = await sealChain(stream, 2)
    b = sealed[0]!
    other = sealed[1]!
  })

  it('a CAR whose root is not manifest.cid → INVALID_CAR', async () => {
    const car = await carOf([other!.cid], [{ cid: other!.cid, bytes: other!.envelope }])
    const err = await expectRefusal(await batchBody(b!, car), 400, 'INVALID_CAR')
    expect(err.message).toBe(`car: root ${other!.cid} is not manifest.cid ${b!.cid}`)
  })

  it('a CAR with two roots → INVALID_CAR', async () => {
    const car = await carOf([b!.cid, other!.cid], [{ cid: b!.cid, bytes: b!.envelope }, { cid: other!.cid, bytes: other!.envelope }])
    expect((await expectRefusal(await batchBody(b!, car), 400, 'INVALID_CAR')).message).toMatch(/exactly one root.*names 2/)
  })

  it('a block whose bytes do not hash to its CID → INVALID_CAR (the CAR reader does not check this)', async () => {
    const tampered = b!.envelope.slice()
    tampered[tampered.length - 1]! ^= 1
    const car = await carOf([b!.cid], [{ cid: b!.cid, bytes: tampered }])
    const err = await expectRefusal(await batchBody(b!, car), 400, 'INVALID_CAR')
    expect(err.message).toMatch(new RegExp(`the bytes of block ${b!.cid} do not hash to its CID`))
    expect(err.details.cid).toBe(b!.cid.toString())
  })

  it('a CAR without the root block (the DAG is incomplete) → INVALID_CAR', async () => {
    const car = await carOf([b!.cid], [])
    expect((await expectRefusal(await batchBody(b!, car), 400, 'INVALID_CAR')).message).toMatch(/root block .* is missing/)
  })

  it('a CAR with blocks outside the DAG → INVALID_CAR', async () => {
    const car = await carOf([b!.cid], [{ cid: b!.cid, bytes: b!.envelope }, { cid: other!.cid, bytes: other!.envelope }])
    expect((await expectRefusal(await batchBody(b!, car), 400, 'INVALID_CAR')).message).toMatch(/1 block\(s\) lie outside the DAG/)
  })

  it('bytes that are not a CAR → INVALID_CAR', async () => {
    const body = encodeCanonical({ ...(await uploadItem(b!)), car: new Uint8Array([1, 2, 3, 4]) })
    expect((await expectRefusal(body, 400, 'INVALID_CAR')).message).toMatch(/not a readable CARv1/)
  })

  it('a root that is not a raw block → INVALID_CAR', async () => {
    // A dag-cbor root (codec 0x71) whose bytes hash correctly: the envelope must be one raw block.
    const bytes = encodeCanonical({ hello: 'world' })
    const cid = CID.createV1(0x71, await sha256.digest(bytes))
    const m = resign(b!, gw.secretKey, { cid: cid.toString(), size: bytes.length })
    const car = await carOf([cid], [{ cid, bytes }])
    expect((await expectRefusal(await batchBody(m, car), 400, 'INVALID_CAR')).message).toMatch(/must be one raw block/)
  })

  it('manifest.size ≠ the envelope length → INVALID_MANIFEST (manifest.size)', async () => {
    const m = resign(b!, gw.secretKey, { size: b!.manifest.size + 1 })
    const err = await expectRefusal(await batchBody(m, await batchCar(b!)), 400, 'INVALID_MANIFEST', 'manifest.size')
    expect(err.details).toMatchObject({ size: b!.manifest.size + 1, envelopeBytes: b!.envelope.length })
  })

  it('manifest.gateway ≠ the gateway that signed the request → INVALID_MANIFEST (manifest.gateway)', async () => {
    const other = await registerGateway('ward-other')
    const [foreign] = await sealChain(testStream(other), 1) // another gateway's genuine batch
    const err = await expectRefusal(await batchBody(foreign!), 400, 'INVALID_MANIFEST', 'manifest.gateway', gw)
    expect(err.message).toContain(`is not the gateway that signed this request (${gw.gatewayId})`)
  })

  it('a manifest signature that does not verify → INVALID_MANIFEST (signature)', async () => {
    const flipped = { ...b!, signature: b!.signature.slice() }
    flipped.signature[10]! ^= 1
    const err = await expectRefusal(await batchBody(flipped), 400, 'INVALID_MANIFEST', 'signature')
    expect(err.message).toMatch(/signature over the manifest does not verify/)
    // Signed by a different key than the registered one:
    const forged = { ...b!, signature: signManifest(testGateway().secretKey, b!.manifest) }
    await expectRefusal(await batchBody(forged), 400, 'INVALID_MANIFEST', 'signature')
  })

  it('a manifest outside the schema → INVALID_MANIFEST listing the problems', async () => {
    const { count: _c, ...rest } = b!.manifest
    const body = encodeCanonical({ manifest: rest, signature: b!.signature, car: await batchCar(b!) })
    const err = await expectRefusal(body, 400, 'INVALID_MANIFEST', 'manifest')
    expect(err.details.problems).toEqual(['count: Invalid input: expected number, received undefined'])
  })

  it('a stream id not derived from (gateway, device, patient) → INVALID_MANIFEST (manifest.stream)', async () => {
    const m = resign(b!, gw.secretKey, { stream: 'ab'.repeat(16) })
    await expectRefusal(await batchBody(m), 400, 'INVALID_MANIFEST', 'manifest.stream')
  })

  it('a body that is not canonical CBOR, or misses a field, or is JSON → INVALID_REQUEST naming it', async () => {
    const item = await uploadItem(b!)
    // Canonical CBOR sorts keys by encoded bytes: "car" < "manifest" < "signature". Write them reversed
    // (a map of 3 pairs, 0xa3, then each key and value in its canonical encoding).
    const nonCanonical = Buffer.concat([Uint8Array.of(0xa3), ...(['signature', 'manifest', 'car'] as const).flatMap((k) => [encodeCanonical(k), encodeCanonical(item[k])])])
    expect((await expectRefusal(nonCanonical, 400, 'INVALID_REQUEST', 'body')).message).toMatch(/not canonical CBOR/)
    await expectRefusal(encodeCanonical({ manifest: item.manifest, signature: item.signature }), 400, 'INVALID_REQUEST', 'car')
    await expectRefusal(encodeCanonical({ ...item, extra: 1 }), 400, 'INVALID_REQUEST', 'extra')
    await expectRefusal(encodeCanonical({ ...item, signature: item.signature.slice(0, 10) }), 400, 'INVALID_REQUEST', 'signature')
    await expectRefusal(encodeCanonical([1, 2]), 400, 'INVALID_REQUEST', 'body')
    const asJson = new TextEncoder().encode(JSON.stringify({ manifest: item.manifest }))
    const before = await stored()
    const { res } = await signedPost(cloud.url, gw, '/v1/batches', asJson, { contentType: 'application/json' })
    expect(res.status).toBe(400)
    expect((await json(res)).error).toMatchObject({ code: 'INVALID_REQUEST', details: { field: 'content-type' } })
    expect(await stored()).toEqual(before)
  })

  it('a body over the limit → 413 PAYLOAD_TOO_LARGE, nothing stored', async () => {
    const before = await storedAll()
    const { res } = await signedPost(cloud.url, gw, '/v1/batches', new Uint8Array(64 * 1024 + 1))
    expect(res.status).toBe(413)
    expect((await json(res)).error.code).toBe('PAYLOAD_TOO_LARGE')
    expect(await storedAll()).toEqual(before)
  })

  it('after all those refusals the genuine batch is accepted', async () => {
    const r = await upload(await batchBody(b!))
    expect(r.status).toBe(201)
    expect(r.body).toEqual({ record: { id: expect.any(Number), stream: stream.streamId, seq: 0, commitment: expect.stringMatching(/^[0-9a-f]{64}$/), block: null }, duplicate: false })
  })
})

describe('idempotency, conflicts and stream links', () => {
  let stream: TestStream
  let chain: SealedBatch[]

  beforeAll(async () => {
    stream = testStream(gw, 'bed-links', 'P-links')
    chain = await sealChain(stream, 3)
  })

  it('the same batch again → 200 duplicate, same record, nothing new stored', async () => {
    const first = await upload(await batchBody(chain[0]!))
    expect(first.status).toBe(201)
    const before = await stored()
    const again = await upload(await batchBody(chain[0]!))
    expect(again.status).toBe(200)
    expect(again.body).toEqual({ record: first.body.record, duplicate: true })
    expect(await stored()).toEqual(before)
  })

  it('a different batch for an occupied (stream, seq) → 409 CONFLICT, logged as an equivocation', async () => {
    const rival = await sealTestBatch(stream, 0, null) // same position, different readings
    const before = await stored()
    const r = await upload(await batchBody(rival))
    expect(r.status).toBe(409)
    expect(r.body.error.code).toBe('CONFLICT')
    expect(r.body.error.details).toMatchObject({ stream: stream.streamId, seq: 0, existing: { seq: 0 } })
    const after = await stored()
    expect(after.equivocations).toBe(before.equivocations! + 1)
    expect(after.records).toBe(before.records)
  })

  it('a batch whose prev is not the stored predecessor\'s commitment → 409 CONFLICT (PREV_MISMATCH)', async () => {
    const wrongPrev = await sealTestBatch(stream, 1, 'cd'.repeat(32))
    const r = await upload(await batchBody(wrongPrev))
    expect(r.status).toBe(409)
    expect(r.body.error).toMatchObject({ code: 'CONFLICT', details: { field: 'manifest.prev', reason: 'PREV_MISMATCH', seq: 1 } })
    expect((await upload(await batchBody(chain[1]!))).status).toBe(201)
  })
})

describe('gaps', () => {
  it('a missing range is reported by /v1/streams and closed as the batches arrive', async () => {
    const stream = testStream(gw, 'bed-gaps', 'P-gaps')
    const b = await sealChain(stream, 6)
    const streamOf = async () => ((await json(getAs(cloud.url, admin, '/v1/streams'))).streams as Array<Record<string, unknown>>).find((s) => s.stream === stream.streamId)!

    for (const i of [0, 1, 5]) expect((await upload(await batchBody(b[i]!))).status).toBe(201)
    expect(await streamOf()).toMatchObject({ gateway: gw.gatewayId, device: 'bed-gaps', patient: stream.pseudonym, batches: 3, lastSeq: 5, ranges: [[0, 1], [5, 5]], gaps: [[2, 4]] })
    const stats = await json(getAs(cloud.url, admin, '/v1/stats'))
    expect(stats.gaps).toBeGreaterThanOrEqual(1)

    expect((await upload(await batchBody(b[3]!))).status).toBe(201)
    expect(await streamOf()).toMatchObject({ ranges: [[0, 1], [3, 3], [5, 5]], gaps: [[2, 2], [4, 4]] })

    // Closing a gap checks the link in both directions: 4's prev is 3, and 5's prev is 4.
    expect((await upload(await batchBody(b[2]!))).status).toBe(201)
    expect((await upload(await batchBody(b[4]!))).status).toBe(201)
    expect(await streamOf()).toMatchObject({ batches: 6, ranges: [[0, 5]], gaps: [] })
  })

  it('a stream that starts after seq 0 reports the leading gap', async () => {
    const stream = testStream(gw, 'bed-late', 'P-late')
    const b = await sealChain(stream, 3)
    expect((await upload(await batchBody(b[2]!))).status).toBe(201)
    const s = ((await json(getAs(cloud.url, admin, '/v1/streams'))).streams as Array<Record<string, unknown>>).find((x) => x.stream === stream.streamId)
    expect(s).toMatchObject({ ranges: [[2, 2]], gaps: [[0, 1]] })
  })
})

describe('POST /v1/batches/bulk', () => {
  it('judges each batch in order and answers one result per batch', async () => {
    const stream = testStream(gw, 'bed-bulk', 'P-bulk')
    const b = await sealChain(stream, 4)
    expect((await upload(await batchBody(b[0]!))).status).toBe(201)
    const badCar = await carOf([b[2]!.cid], [])
    const rival = await sealTestBatch(stream, 0, null)
    const body = encodeCanonical({
      batches: [await uploadItem(b[1]!), await uploadItem(b[0]!), await uploadItem(b[2]!, badCar), await uploadItem(rival), await uploadItem(b[2]!), await uploadItem(b[3]!), { manifest: 1 }],
    })
    const { res } = await signedPost(cloud.url, gw, '/v1/batches/bulk', body)
    expect(res.status).toBe(200)
    const { results } = await json(res)
    expect(results.map((r: { status: number }) => r.status)).toEqual([201, 200, 400, 409, 201, 201, 400])
    expect(results[0]).toEqual({ status: 201, record: expect.objectContaining({ seq: 1, block: null }), error: null })
    expect(results[2]).toEqual({ status: 400, record: null, error: expect.objectContaining({ code: 'INVALID_CAR', details: expect.objectContaining({ field: 'batches[2].car' }) }) })
    expect(results[2].error.message).toMatch(/^batches\[2\]\.car: /)
    expect(results[3].error.code).toBe('CONFLICT')
    expect(results[6].error).toMatchObject({ code: 'INVALID_REQUEST', details: { field: 'batches[6].manifest' } })
    // The seq 3 batch linked to the seq 2 batch accepted earlier in the same request.
    expect(results[5].record.seq).toBe(3)
  })

  it('refuses more than 500 batches, an empty list, or a body that is not {batches: [...]}', async () => {
    const [b] = await sealChain(testStream(gw, 'bed-bulk2', 'P-bulk2'), 1)
    const item = await uploadItem(b!)
    const before = await stored()
    for (const [body, field] of [
      [encodeCanonical({ batches: Array.from({ length: 501 }, () => item) }), 'batches'],
      [encodeCanonical({ batches: [] }), 'batches'],
      [encodeCanonical({ batch: [item] }), 'batch'],
    ] as const) {
      const { res } = await signedPost(cloud.url, gw, '/v1/batches/bulk', body)
      expect(res.status).toBe(400)
      expect((await json(res)).error).toMatchObject({ code: 'INVALID_REQUEST', details: { field } })
    }
    expect(await stored()).toEqual(before)
    const ok = await signedPost(cloud.url, gw, '/v1/batches/bulk', await bulkBody([b!]))
    expect((await json(ok.res)).results[0].status).toBe(201)
  })
})

describe('read API', () => {
  let b: SealedBatch[]
  let ids: number[]

  beforeAll(async () => {
    const stream = testStream(gw, 'bed-read', 'P-read')
    b = await sealChain(stream, 3)
    ids = []
    for (const x of b) ids.push((await upload(await batchBody(x))).body.record.id)
  })

  it('a record is listed with metadata only and has no proof until it is sealed', async () => {
    const { records } = await json(getAs(cloud.url, doctor, `/v1/records?stream=${b[0]!.manifest.stream}`))
    expect(records).toHaveLength(3)
    const r = records[0]
    expect(Object.keys(r).sort()).toEqual(['block', 'cid', 'commitment', 'count', 'device', 'from', 'gateway', 'id', 'patient', 'policy', 'receivedAt', 'redacted', 'seq', 'stream', 'to', 'types'])
    expect(r).toMatchObject({ id: ids[0], seq: 0, block: null, redacted: false, cid: b[0]!.cid.toString(), count: 5, types: ['heart_rate'] })
    const proof = await getAs(cloud.url, doctor, `/v1/records/${ids[0]}/proof`)
    expect(proof.status).toBe(404)
    expect((await json(proof)).error).toMatchObject({ code: 'NOT_FOUND', details: { pending: true } })
  })

  it('after sealing, the inclusion proof verifies (RFC 9162 §2.1.3.2) against a block the cloud signed', async () => {
    const block = (await sealNow())!
    expect(block.firstRecord).toBeLessThanOrEqual(ids[0]!)
    expect(await sealNow()).toBeNull() // nothing pending: no empty blocks
    const p = await json(getAs(cloud.url, admin, `/v1/records/${ids[1]}/proof`))
    expect(p.record).toMatchObject({ id: ids[1], block: block.height })
    expect(p.leafIndex).toBe(ids[1]! - block.firstRecord)
    expect(p.treeSize).toBe(block.count)
    // The leaf's data is the record's 32-byte chameleon hash; its leaf hash is SHA-256(0x00 ‖ C).
    const ok = verifyInclusion(leafHash(hexToBytes(p.record.commitment)), p.leafIndex, p.treeSize, p.proof.map(hexToBytes), hexToBytes(p.block.header.recordsRoot))
    expect(ok).toBe(true)
    const blk = await json(getAs(cloud.url, admin, `/v1/blocks/${block.height}`))
    expect(blk.records).toContain(ids[1])
    expect(verifyBlockSignature(cloud.keys.signingPublicKey, hexToBytes(blk.headerBytes), hexToBytes(blk.signature))).toBe(true)
  })

  it('record detail carries the manifest, the gateway signature and the chameleon opening', async () => {
    const d = await json(getAs(cloud.url, admin, `/v1/records/${ids[2]}`))
    expect(d.manifest).toEqual(b[2]!.manifest)
    expect(d.signature).toBe(bytesToHex(b[2]!.signature))
    expect(d.opening).toMatch(/^[0-9a-f]{128}$/)
    expect(d.manifestCommitment).toBe(b[2]!.commitment)
    expect((await getAs(cloud.url, admin, '/v1/records/999999')).status).toBe(404)
    expect((await getAs(cloud.url, admin, '/v1/records/abc')).status).toBe(400)
  })

  it('the envelope is served to a doctor byte for byte', async () => {
    const res = await getAs(cloud.url, doctor, `/v1/records/${ids[0]}/envelope`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/octet-stream')
    const bytes = new Uint8Array(await res.arrayBuffer())
    expect(Buffer.compare(bytes, b[0]!.envelope)).toBe(0)
    expect(CID.createV1(raw.code, await sha256.digest(bytes)).toString()).toBe(res.headers.get('x-careledger-cid'))
  })

  it('lists page with a cursor', async () => {
    const page1 = await json(getAs(cloud.url, admin, '/v1/records?limit=2'))
    expect(page1.records).toHaveLength(2)
    expect(page1.next).toBe(page1.records[1].id)
    const page2 = await json(getAs(cloud.url, admin, `/v1/records?limit=2&after=${page1.next}`))
    expect(page2.records[0].id).toBe(page1.next + 1)
    for (const q of ['limit=0', 'limit=1001', 'after=-1', 'stream=xyz', 'limit=ten']) {
      const res = await getAs(cloud.url, admin, `/v1/records?${q}`)
      expect(res.status, q).toBe(400)
    }
    const blocks = await json(getAs(cloud.url, admin, '/v1/blocks?after=-1&limit=10'))
    expect(blocks.blocks[0]).toMatchObject({ height: 0, prev: null })
    expect(Object.keys(blocks.blocks[0])).toEqual(expect.arrayContaining(['height', 'hash', 'prev', 'time', 'recordsRoot', 'count', 'firstRecord', 'signature']))
  })

  it('chain verification: 404 before the first run, then the latest result', async () => {
    const before = await getAs(cloud.url, admin, '/v1/chain/verification')
    expect(before.status).toBe(404)
    expect((await json(before)).error.message).toMatch(/disabled/)
    await cloud.verifyNow()
    const v = await json(getAs(cloud.url, admin, '/v1/chain/verification'))
    expect(v).toMatchObject({ ok: true, failures: [], blocks: 1 })
    expect(v.records).toBeGreaterThan(10)
    expect(v.checkedAt).toBeGreaterThan(Date.now() - 60_000)
  })

  it('stats count what the chain holds and the recent ingest rate', async () => {
    const s = await json(getAs(cloud.url, admin, '/v1/stats'))
    expect(s).toMatchObject({ blocks: 1, height: 0, gateways: 2, pendingRecords: 0, verification: { ok: true } })
    expect(s.records).toBeGreaterThan(10)
    expect(s.equivocations).toBeGreaterThanOrEqual(2)
    expect(s.batchesPerSecond).toBeGreaterThan(0)
  })
})

describe.runIf(backend === 'sqlite')('the pipelined append (SQLite; last: it seals and verifies)', () => {
  it("computes a bulk's commitments on the worker ahead of its transaction, answers as usual, and counts it on /metrics", async () => {
    const metric = async (line: string): Promise<number> => {
      const text = await (await getAs(cloud.url, admin, '/metrics')).text()
      return Number(new RegExp(`^careledger_cloud_${line.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1])
    }
    const streams = [testStream(gw, 'bed-pipe-1', 'P-pipe-1'), testStream(gw, 'bed-pipe-2', 'P-pipe-2')]
    const chains = await Promise.all(streams.map((s) => sealChain(s, 40)))
    const bulkOf = (from: number, to: number) => bulkBody(chains.flatMap((c) => c.slice(from, to)))
    const send = async (body: Uint8Array) => (await json((await signedPost(cloud.url, gw, '/v1/batches/bulk', body)).res)).results as { status: number; record: { id: number; seq: number } }[]
    const used0 = await metric('append_precomputed_total{outcome="used"}')
    // Bulks of 16 (the threshold below which a group is hashed in its transaction); the first ones
    // may find the worker still starting, and are hashed in the transaction too.
    let round = 0
    await vi.waitFor(
      async () => {
        if (round < 32) {
          const answers = await send(await bulkOf(round, round + 8))
          expect(answers.map((r) => r.status)).toEqual(Array(16).fill(201))
          round += 8
        }
        expect(await metric('append_precomputed_total{outcome="used"}')).toBeGreaterThan(used0)
      },
      { timeout: 10_000, interval: 300 },
    )
    // A bulk whose first items are duplicates: the ids of the rest shift by two, and are recomputed.
    const [a, b] = chains
    const recomputed0 = await metric('append_precomputed_total{outcome="recomputed"}')
    const answers = await send(await bulkBody([a![0]!, b![0]!, ...a!.slice(round, round + 8), ...b!.slice(round, round + 8)]))
    expect(answers.map((r) => r.status)).toEqual([200, 200, ...Array(16).fill(201)])
    expect(await metric('append_precomputed_total{outcome="recomputed"}')).toBeGreaterThanOrEqual(recomputed0 + 16)
    expect(await metric('append_workers_retired_total')).toBe(0)
    // Every record's commitment opens, whichever way it was computed.
    await sealNow()
    const verification = await cloud.verifyNow()
    expect(verification?.failures).toEqual([])
    expect(verification?.ok).toBe(true)
  })
})
})
