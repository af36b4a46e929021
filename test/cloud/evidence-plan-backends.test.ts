/**
 * The evidence plan (GET /v1/evidence, docs/api.md) is the same on SQLite and on PostgreSQL, where
 * it is one query with a LATERAL read per stream (cloud/store/pg/retrieval.ts): the same batches,
 * with a gap, neighbours sealed before and after the window, a stream outside it, uploaded to a cloud
 * on each backend; the plans of several queries must be equal, and right.
 */
import { bytesToHex } from '@noble/hashes/utils.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Cloud } from '../../cloud/runtime.ts'
import type { SealedBatch } from '../../gateway/seal/seal.ts'
import { batchBody, readings, sealTestBatch, signedPost, testGateway, testStream, type TestGateway, type TestStream } from '../helpers/cloud-batches.ts'
import { getAs, json, startTestCloud, tempDataDir } from '../helpers/cloud-process.ts'
import { usePostgres } from '../helpers/postgres.ts'

const postgres = usePostgres()
const T0 = Date.now() - 3_600_000
const gw: TestGateway = testGateway()
const streams: TestStream[] = [testStream(gw, 'bed-01', 'P-1'), testStream(gw, 'bed-02', 'P-2'), testStream(gw, 'bed-03', 'P-3')]
let batches: SealedBatch[] = []

/** Batch seq of a stream: 5 readings from T0 + offset + seq·10 s, sealed 5 s after the first. */
async function chain(s: TestStream, n: number, offset: number): Promise<SealedBatch[]> {
  const out: SealedBatch[] = []
  for (let seq = 0; seq < n; seq++) {
    const t = T0 + offset + seq * 10_000
    out.push(await sealTestBatch(s, seq, seq === 0 ? null : out[seq - 1]!.commitment, { readings: readings(seq * 5, 5, t), now: t + 5_000 }))
  }
  return out
}

interface Running {
  cloud: Cloud
  doctor: string
  cleanup: () => void
}

async function start(database: string | null): Promise<Running> {
  const data = tempDataDir(`evidence-plan-${database ? 'pg' : 'sqlite'}`)
  const cloud = await startTestCloud(data.dir, { blockIntervalS: '3600', verifyIntervalS: '3600', ...(database ? { database } : {}) })
  const { token } = await cloud.enrolment.invite('ward-1')
  const reg = await fetch(`${cloud.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, publicKey: bytesToHex(gw.publicKey), name: 'ward-1' }) })
  expect(reg.status).toBe(201)
  for (const b of batches) expect((await signedPost(cloud.url, gw, '/v1/batches', await batchBody(b))).res.status).toBe(201)
  if (database) expect(await cloud.backend.sealBlock(Date.now())).not.toBeNull()
  else expect(cloud.sealNow()).not.toBeNull()
  const doctor = (await cloud.tokens.create('doctor', 'dr')).token
  return { cloud, doctor, cleanup: data.cleanup }
}

let sqlite: Running
let pg: Running | null = null

beforeAll(async () => {
  const a = await chain(streams[0]!, 8, 0)
  batches = [...a.filter((_, seq) => seq !== 3), ...(await chain(streams[1]!, 3, 25_000)), ...(await chain(streams[2]!, 2, 200_000))]
  sqlite = await start(null)
  if (!postgres.skip) pg = await start(await postgres.server().createDatabase('evidence_plan'))
}, 120_000)

afterAll(async () => {
  for (const r of [sqlite, pg]) {
    await r?.cloud.stop()
    r?.cleanup()
  }
})

const plan = async (r: Running, query: string): Promise<unknown> => (await json(getAs(r.cloud.url, r.doctor, `/v1/evidence?${query}`))).streams

describe('the evidence plan on SQLite and PostgreSQL', () => {
  it('spans, neighbours, gaps and filters agree, and are right', async ({ skip }) => {
    const window = `from=${T0 + 30_000}&to=${T0 + 45_000}&skew=0&lateness=0`
    // Stream A: seq 3 missing; the window touches seq 4 (and 3); seq 2 was sealed before it, seq 5 after.
    const narrow = await plan(sqlite, window)
    const expected = [
      { stream: streams[0]!.streamId, device: 'bed-01', firstSeq: 2, lastSeq: 5, headSeq: 7, gaps: [[3, 3]] },
      { stream: streams[1]!.streamId, device: 'bed-02', firstSeq: 0, lastSeq: 2, headSeq: 2, gaps: [] },
    ].sort((x, y) => (x.stream < y.stream ? -1 : 1)) // the plan's order: stream ids, bytewise
    expect(narrow).toEqual(expected.map((e) => expect.objectContaining(e)))
    const queries = [
      window,
      `from=${T0}&to=${T0 + 300_000}`,
      `from=${T0}&to=${T0 + 300_000}&patient=${streams[2]!.pseudonym}`,
      `from=${T0 + 30_000}&to=${T0 + 45_000}&patient=${streams[0]!.pseudonym}&type=spo2`,
      `from=${T0 + 70_000}&to=${T0 + 71_000}&skew=0&lateness=0`,
    ]
    if (postgres.skip) skip(postgres.skip)
    for (const q of queries) expect(await plan(pg!, q), q).toEqual(await plan(sqlite, q))
  })
})
