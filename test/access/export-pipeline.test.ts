/**
 * The export client's pipeline (clients/retrieve.ts with clients/work-pool.ts): record proofs are
 * checked page by page on worker threads while the next page is fetched, and batches are opened
 * there too. Against a real cloud (HTTP service, chain, blockstore) with real worker threads:
 *
 *   same answer    threads and the main thread give the same verified readings, pages reassembled;
 *                  outsourced decryption finished on the threads gives the local readings
 *   bad late page  a page that does not verify after good ones stops the retrieval with the record
 *                  named, nothing returned; through the CLI, nothing is written
 *   thread errors  an error thrown on a worker thread reaches the caller with its code; a closed
 *                  pool refuses work
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeTransformKey, encodeUserKey } from '../../shared/crypto/abe/codec.ts'
import { makeTransformKey } from '../../shared/crypto/abe/outsource.ts'
import type { Cloud } from '../../cloud/runtime.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import type { SealedReading } from '../../shared/protocol/batch.ts'
import { VITALS, type VitalType } from '../../shared/schema/vitals.ts'
import { DEFAULT_SKEW_MS, type EvidenceQuery } from '../../shared/protocol/evidence.ts'
import { CloudApi } from '../../clients/cloud-api.ts'
import { LocalOpener } from '../../clients/decrypt.ts'
import { retrieve, type BlockSource, type Decryptor, type EvidenceSource, type TrustStore } from '../../clients/retrieve.ts'
import { RetrievalError } from '../../clients/verify.ts'
import { WorkPool } from '../../clients/work-pool.ts'
import { currentKey } from '../helpers/authority.ts'
import { batchBody, registerTestGateway, sealTestBatch, signedPost, testAuthoritySecret, testStream, type TestStream } from '../helpers/cloud-batches.ts'
import { startTestCloud, tempDataDir } from '../helpers/cloud-process.ts'
import { careledger } from '../helpers/gateway-process.ts'
import { RewritingProxy, rewriteJson } from '../helpers/rewriting-proxy.ts'

const MIN = 60_000
const T = Date.now() - 4 * 3600_000
const TYPES: VitalType[] = ['heart_rate', 'spo2']
const N = 10 // batches a stream
const batchReadings = (k: number): SealedReading[] =>
  Array.from({ length: 3 }, (_, i) => i).flatMap((i) => TYPES.map((type, j) => ({ seq: k * 6 + i * 2 + j, ts: T + k * 10 * MIN + i * 1000, rx: T + k * 10 * MIN + i * 1000 + 30, type, unit: VITALS[type].unit, value: 60 + k + i })))
/** Batches 1 … 8 of each stream; 0 and 9 are the boundaries. */
const query: EvidenceQuery = { patient: null, types: TYPES, from: T + 10 * MIN, to: T + 81 * MIN, lateness: 5 * MIN, skew: DEFAULT_SKEW_MS }

let data: ReturnType<typeof tempDataDir>
let cloud: Cloud
let api: CloudApi
let researcher: string
let streams: TestStream[]
let dir: string
const key = currentKey(testAuthoritySecret(), ['role:researcher', 'consent:research'])
const local = (): Decryptor => ({ kind: 'local', attributes: key.attributes, opener: new LocalOpener(key) })
const noTrust: TrustStore = { signingKey: () => null, knownHeads: () => [], remember: () => {} }

beforeAll(async () => {
  data = tempDataDir('access-export-pipeline')
  cloud = await startTestCloud(data.dir, { blockIntervalS: '3600', verifyIntervalS: '0' })
  researcher = (await cloud.tokens.create('researcher', 'lab')).token
  api = new CloudApi({ url: cloud.url, token: researcher })
  const gw = await registerTestGateway(cloud)
  streams = [testStream(gw, 'bed-11', 'P-11', '(role:researcher AND consent:research)'), testStream(gw, 'bed-12', 'P-12', '(role:researcher AND consent:research)')]
  for (const s of streams) {
    let prev: string | null = null
    for (let k = 0; k < N; k++) {
      const b = await sealTestBatch(s, k, prev, { readings: batchReadings(k), now: T + k * 10 * MIN + MIN })
      prev = b.commitment
      const { res } = await signedPost(cloud.url, s.gateway, '/v1/batches', await batchBody(b))
      expect(res.status).toBe(201)
    }
  }
  cloud.sealNow()
  dir = mkdtempSync(join(tmpdir(), 'careledger-export-pipeline-'))
  writeFileSync(join(dir, 'lab.key'), encodeUserKey(key), { mode: 0o600 })
}, 120_000)

afterAll(async () => {
  await cloud?.stop()
  data?.cleanup()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** Blocks by CID from the cloud's trustless gateway, raw. */
const blocks: BlockSource = {
  get: async (cid) => {
    const res = await fetch(`${cloud.url}/ipfs/${cid}`, { headers: { authorization: `Bearer ${researcher}`, accept: 'application/vnd.ipld.raw' } })
    if (!res.ok) throw new Error(`${cid}: ${res.status}`)
    return new Uint8Array(await res.arrayBuffer())
  },
}

/** The cloud's evidence, with `page` (0-based, per stream) of stream `device` rewritten by `f`. */
function rewritingEvidence(device: string, badPage: number, f: (records: { record: Record<string, unknown> }[]) => void): EvidenceSource & { pages: string[] } {
  const streamId = streams.find((s) => s.deviceId === device)!.streamId
  const count = new Map<string, number>()
  const pages: string[] = []
  return {
    pages,
    plan: (q) => api.plan(q),
    headers: (a, b) => api.headers(a, b),
    records: async (stream, from, to, head) => {
      const page = await api.records(stream, from, to, head)
      const n = count.get(stream) ?? 0
      count.set(stream, n + 1)
      pages.push(`${stream}:${from}-${to}`)
      if (stream === streamId && n === badPage) f(page.records as { record: Record<string, unknown> }[])
      return page
    },
  }
}

describe('the export pipeline on worker threads', () => {
  it('gives the same verified readings as the main thread, pages of proofs reassembled in order', async () => {
    const pool = WorkPool.forDecryptor(2, local(), { minRecords: 0 })
    try {
      const threaded = await retrieve({ query, evidence: api, blocks, trust: noTrust, decryptor: local(), work: pool, recordsPage: 3 })
      const inline = await retrieve({ query, evidence: api, blocks, trust: noTrust, decryptor: local() })
      expect(threaded.streams.map((s) => s.records.map((r) => r.seq))).toEqual(inline.streams.map((s) => s.records.map((r) => r.seq)))
      expect(threaded.streams.map((s) => [s.span.firstSeq, s.span.lastSeq, s.tail])).toEqual(streams.map(() => [0, 9, 'boundary']))
      expect(threaded.batches.map((b) => [b.recordId, b.status, b.readings])).toEqual(inline.batches.map((b) => [b.recordId, b.status, b.readings]))
      expect(threaded.batches.flatMap((b) => b.readings).length).toBe(2 * 8 * 6)
      expect(threaded.decryptions).toBe(16)
    } finally {
      await pool.close()
    }
  })

  it('outsourced decryption finishes on the threads with the retrieval key: the same readings as local', async () => {
    const { transformKey, retrievalKey } = makeTransformKey(key)
    const outsourced: Decryptor = { kind: 'outsourced', attributes: key.attributes, retrievalKey, proxy: api.transformer(encodeTransformKey(transformKey)) }
    const pool = WorkPool.forDecryptor(2, outsourced, { minRecords: 0 })
    try {
      const threaded = await retrieve({ query, evidence: api, blocks, trust: noTrust, decryptor: outsourced, work: pool, recordsPage: 4 })
      const inline = await retrieve({ query, evidence: api, blocks, trust: noTrust, decryptor: local() })
      expect(threaded.decryptions).toBe(16)
      expect(threaded.batches.map((b) => [b.recordId, b.readings])).toEqual(inline.batches.map((b) => [b.recordId, b.readings]))
    } finally {
      await pool.close()
    }
  })

  it('a bad page after good ones stops the retrieval, naming the record, and returns nothing', async () => {
    const pool = WorkPool.forDecryptor(2, local(), { minRecords: 0 })
    // Pages of 3 seqs: stream bed-12's pages 0 and 1 (seqs 0…5) are good, page 2 (seqs 6…8) holds an altered record.
    const evidence = rewritingEvidence('bed-12', 2, (records) => {
      const r = records.find((x) => x.record.seq === 7)!.record
      r.content = String(r.content).replace(/6a/, '6b')
    })
    try {
      const e = await retrieve({ query, evidence, blocks, trust: noTrust, decryptor: local(), work: pool, recordsPage: 3 }).then(
        () => null,
        (e: unknown) => e,
      )
      expect(e).toBeInstanceOf(RetrievalError)
      const failures = (e as RetrievalError).failures
      expect(failures.length).toBeGreaterThan(0)
      // Named: the altered record, and (its proof refused) seq 7 therefore missing from the stream; nothing else.
      expect(failures.map((f) => [f.kind, f.stream, f.seq])).toEqual(expect.arrayContaining([['ALTERED', streams[1]!.streamId, 7]]))
      expect(failures.every((f) => f.seq === 7 && f.stream === streams[1]!.streamId && ['ALTERED', 'OMITTED'].includes(f.kind)), JSON.stringify(failures)).toBe(true)
      expect(failures.find((f) => f.kind === 'ALTERED')!.message).toMatch(/RECORD_(OPENING|CONTENT): record \d+/)
      // The pages were fetched and checked in a pipeline: the good ones before and the one after the bad one too.
      expect(evidence.pages.filter((p) => p.startsWith(streams[1]!.streamId)).length).toBe(4)
    } finally {
      await pool.close()
    }
  })

  it('through the CLI (--workers 2): the bad stream page after a good one fails the export, nothing written', async () => {
    const proxy = await RewritingProxy.start(cloud.url)
    try {
      const second = streams[1]!.streamId
      proxy.rewrite = (p, a) =>
        p.startsWith('/v1/evidence/records') && p.includes(`stream=${second}`)
          ? rewriteJson<{ records: { record: { seq: number; manifest: { count: number } } }[] }>(a, (b) => void (b.records.find((x) => x.record.seq === 8)!.record.manifest.count = 99))
          : a
      const out = join(dir, 'out-bad')
      const r = await careledger(['research', 'export', '--type', 'spo2,heart_rate', '--from', String(query.from), '--to', String(query.to), '--lateness-min', '5', '--key', join(dir, 'lab.key'), '--out', out, '--workers', '2'], {
        CARELEDGER_CLOUD_URL: proxy.url,
        CARELEDGER_TOKEN: researcher,
        CARELEDGER_CLIENT_STATE: join(dir, 'state'),
      })
      expect(r.code, r.stderr).toBe(1)
      expect(r.stderr).toMatch(/^export FAILED: nothing was written\. The cloud's answer does not verify:\n/)
      expect(r.stderr).toMatch(/^ {2}ALTERED\s+record \d+: the manifest shown beside the record is not the one its signed content holds/m)
      expect(existsSync(out)).toBe(false)
      expect(readdirSync(dir).filter((f) => f.includes('out-bad'))).toEqual([])
    } finally {
      await proxy.close()
    }
  })

  it('an error thrown on a worker thread reaches the caller with its code', async () => {
    // A key that does not decode: the threads decode it on their first batch and throw INVALID_ENCODING.
    const pool = new WorkPool(2, { kind: 'local', userKey: new Uint8Array([1, 2, 3]) }, { minRecords: 0 })
    try {
      const e = await retrieve({ query, evidence: api, blocks, trust: noTrust, decryptor: local(), work: pool }).then(
        () => null,
        (e: unknown) => e,
      )
      expect(isCareLedgerError(e, 'INVALID_ENCODING'), String(e)).toBe(true)
    } finally {
      await pool.close()
    }
    await expect(pool.checkProofs([], new Uint8Array(32))).rejects.toThrow(/the retrieval work pool is closed/)
  })

  it('--workers must be a number of threads', async () => {
    const r = await careledger(['research', 'export', '--type', 'spo2', '--from', String(query.from), '--to', String(query.to), '--key', join(dir, 'lab.key'), '--out', join(dir, 'out-w'), '--workers', 'many'], {
      CARELEDGER_CLOUD_URL: cloud.url,
      CARELEDGER_TOKEN: researcher,
      CARELEDGER_CLIENT_STATE: join(dir, 'state'),
    })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/--workers: "many" is not a number of threads from 0 to 64/)
  })
})
