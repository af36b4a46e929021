/**
 * Reading with evidence on a PostgreSQL deployment (issue 14): records are uploaded by a gateway
 * through cloud process A; a doctor's `careledger access read` (local and outsourced decryption)
 * and a researcher's `careledger research export` go through process B, which never saw an
 * upload. Both verify the evidence against B's signed head — every stream's span complete, every
 * record's inclusion proof — and decrypt exactly what the gateway sealed: the evidence plan, the
 * headers, the record proofs and the transformations are served from the shared PostgreSQL
 * (cloud/store/pg/retrieval.ts), the blocks from the shared blockstore.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { bytesToHex } from '@noble/hashes/utils.js'
import { encodeUserKey } from '../../shared/crypto/abe/codec.ts'
import type { SealedReading } from '../../shared/protocol/batch.ts'
import { VITALS, type VitalType } from '../../shared/schema/vitals.ts'
import { currentKey } from '../helpers/authority.ts'
import { batchBody, sealTestBatch, signedPost, testAuthoritySecret, testGateway, testStream, type TestStream } from '../helpers/cloud-batches.ts'
import { careledger, getAs, json } from '../helpers/cloud-process.ts'
import { usePgClouds } from '../helpers/pg-clouds.ts'
import { usePostgres } from '../helpers/postgres.ts'

const postgres = usePostgres()
const { startPair } = usePgClouds(postgres.server)
const dir = mkdtempSync(join(tmpdir(), 'careledger-pg-read-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const MIN = 60_000
const T = Date.now() - 3 * 3600_000
const TYPES: VitalType[] = ['heart_rate', 'spo2']
/** Batch k: readings at T + 10k min, one a second per type. */
const batchReadings = (k: number): SealedReading[] =>
  [0, 1, 2].flatMap((i) => TYPES.map((type, j) => ({ seq: k * 6 + i * 2 + j, ts: T + k * 10 * MIN + i * 1000, rx: T + k * 10 * MIN + i * 1000 + 30, type, unit: VITALS[type].unit, value: type === 'spo2' ? 94 + i : 70 + k })))
const BATCHES = 6

/** The JSON a successful `careledger … --json` printed. */
async function cliJson(args: string[]): Promise<{ token: string }> {
  const r = await careledger([...args, '--json'])
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout) as { token: string }
}

describe('reading with evidence from a PostgreSQL deployment, through the process that did not take the uploads', () => {
  it("a doctor's read (local and outsourced) and a researcher's export through B verify and decrypt what was uploaded through A", async ({ skip }) => {
    if (postgres.skip) skip(postgres.skip)
    const { url, a, b } = await startPair('read_two_clouds')

    // A gateway enrolled in the shared database uploads through A only.
    const gw = testGateway()
    const { token: invite } = await cliJson(['cloud', 'gateway', 'invite', '--name', 'ward-1', '--database', url])
    const reg = await fetch(`${a.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: invite, publicKey: bytesToHex(gw.publicKey), name: 'ward-1' }) })
    expect(reg.status).toBe(201)
    const research = '(role:researcher AND consent:research) OR patient:{patient}'
    const streams: TestStream[] = [testStream(gw, 'bed-01', 'P-1', research), testStream(gw, 'bed-02', 'P-2', research), testStream(gw, 'bed-03', 'P-3', 'role:doctor OR patient:{patient}')]
    for (const s of streams) {
      let prev: string | null = null
      for (let k = 0; k < BATCHES; k++) {
        const sealed = await sealTestBatch(s, k, prev, { readings: batchReadings(k), now: T + k * 10 * MIN + MIN })
        prev = sealed.commitment
        const { res } = await signedPost(a.url, gw, '/v1/batches', await batchBody(sealed))
        expect(res.status).toBe(201)
      }
    }
    const deadline = Date.now() + 60_000
    while ((await json(fetch(`${b.url}/healthz`))).pendingRecords > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 300))
    expect(await json(fetch(`${b.url}/healthz`))).toMatchObject({ records: 3 * BATCHES, pendingRecords: 0 })

    const token = async (role: string, name: string): Promise<string> => (await cliJson(['cloud', 'token', 'create', '--role', role, '--name', name, '--database', url])).token
    const doctor = await token('doctor', 'dr-house')
    const researcher = await token('researcher', 'lab')
    writeFileSync(join(dir, 'doctor.key'), encodeUserKey(currentKey(testAuthoritySecret(), ['role:doctor'])), { mode: 0o600 })
    writeFileSync(join(dir, 'lab.key'), encodeUserKey(currentKey(testAuthoritySecret(), ['role:researcher', 'consent:research'])), { mode: 0o600 })

    // The plan through B names the stream, proven from seq 0 to its newest batch at B's head.
    const plan = await json(getAs(b.url, doctor, `/v1/evidence?patient=${streams[2]!.pseudonym}&from=${T}&to=${T + 60 * MIN}`))
    expect(plan.head).not.toBeNull()
    expect(plan.streams).toMatchObject([{ stream: streams[2]!.streamId, device: 'bed-03', firstSeq: 0, lastSeq: BATCHES - 1, headSeq: BATCHES - 1, gaps: [] }])

    // The doctor reads bed-03's patient through B: exactly the readings sealed, verified and decrypted.
    const read = (extra: string[] = []) =>
      careledger(['access', 'read', '--patient', streams[2]!.pseudonym, '--from', String(T - MIN), '--to', String(T + 60 * MIN), '--key', join(dir, 'doctor.key'), '--format', 'json', ...extra], {
        CARELEDGER_CLOUD_URL: b.url,
        CARELEDGER_TOKEN: doctor,
        CARELEDGER_CLIENT_STATE: join(dir, 'doctor-state'),
      })
    const sent = Array.from({ length: BATCHES }, (_, k) => batchReadings(k))
      .flat()
      .map((r) => `${new Date(r.ts).toISOString()}|${r.type}|${r.value}`)
      .sort()
    const local = await read()
    expect(local.code, local.stderr).toBe(0)
    const out = JSON.parse(local.stdout) as { readings: { time: string; type: string; value: number; device: string }[]; notAuthorised: unknown[] }
    expect(out.notAuthorised).toEqual([])
    expect(out.readings.every((r) => r.device === 'bed-03')).toBe(true)
    expect(out.readings.map((r) => `${r.time}|${r.type}|${r.value}`).sort()).toEqual(sent)
    // Outsourced decryption: B's POST /v1/transform finds the records in the shared chain.
    const outsourced = await read(['--outsource'])
    expect(outsourced.code, outsourced.stderr).toBe(0)
    expect(JSON.parse(outsourced.stdout).readings).toEqual(out.readings)
    expect(outsourced.stderr).toMatch(/outsourced; the cloud's transformation took/)

    // The researcher exports batches 1 … 3 of every stream through B: complete, proven, decrypted where the key may.
    const dest = join(dir, 'export')
    const exp = await careledger(['research', 'export', '--type', 'spo2,heart_rate', '--from', String(T + 10 * MIN), '--to', String(T + 31 * MIN), '--lateness-min', '5', '--key', join(dir, 'lab.key'), '--out', dest, '--block-timeout-s', '5'], {
      CARELEDGER_CLOUD_URL: b.url,
      CARELEDGER_TOKEN: researcher,
      CARELEDGER_CLIENT_STATE: join(dir, 'lab-state'),
    })
    expect(exp.code, exp.stderr).toBe(0)
    const rows = readFileSync(join(dest, 'readings.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','))
    const expected = ['bed-01', 'bed-02'].flatMap((d) => [1, 2, 3].flatMap((k) => batchReadings(k).map((r) => `${d}|${new Date(r.ts).toISOString()}|${r.type}|${r.value}`)))
    expect(rows.map((c) => `${c[1]}|${c[2]}|${c[3]}|${c[4]}`).sort()).toEqual(expected.sort())
    const manifest = JSON.parse(readFileSync(join(dest, 'manifest.json'), 'utf8'))
    expect(manifest.verified.streams.map((s: { device: string; firstSeq: number; lastSeq: number }) => [s.device, s.firstSeq, s.lastSeq]).sort()).toEqual(['bed-01', 'bed-02', 'bed-03'].map((d) => [d, 0, 4]))
    expect(manifest.notAuthorised.map((n: { device: string }) => n.device)).toEqual(['bed-03', 'bed-03', 'bed-03'])
    console.log(`[pg-read] ${3 * BATCHES} records uploaded through A; read (local and outsourced, ${out.readings.length} readings) and export (${rows.length} readings) through B verified`)

    expect(await a.stop()).toEqual({ code: 0, signal: null })
    expect(await b.stop()).toEqual({ code: 0, signal: null })
  }, 240_000)
})
