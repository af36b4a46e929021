/**
 * Sealing, end to end on a real gateway process: a FABEO authority made here (its public key given
 * through CARELEDGER_ABE_PUBLIC_KEY), a default policy through CARELEDGER_DEFAULT_POLICY, a 1 s seal
 * interval, devices publishing scalar vitals and ECG over real MQTT. The batches are read back from
 * gateway.db and the blockstore and checked the way a doctor, a patient, an auditor would:
 *
 *   manifest schema · gateway signature (key from `careledger gateway identity`) · pseudonym, never
 *   the patient id · stream link (prev = commitment of seq − 1) · CID = envelope bytes · Merkle root
 *   over the decrypted readings · decrypts for keys satisfying the policy (directly and outsourced),
 *   POLICY_NOT_SATISFIED for the others · per-patient policy from `careledger gateway policy set` ·
 *   no plaintext value or patient id in envelope or manifest · /healthz, /metrics, `gateway batches`
 *   · one patient whose readings cannot be sealed does not stop the others (seal_failures_total).
 * MQTTS is on, so the TLS CA is created in the same process that loads the back office.
 */
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { bytesToHex } from '@noble/hashes/utils.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MasterSecretKey, UserKey } from '../../shared/crypto/abe/fabeo.ts'
import { currentKey } from '../helpers/authority.ts'
import { epochOf, withEpoch } from '../../shared/protocol/epoch.ts'
import { makeTransformKey } from '../../shared/crypto/abe/outsource.ts'
import { decodeEnvelope, finishEnvelope, openEnvelope, transformEnvelope } from '../../shared/crypto/envelope.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { decodeBatchBody, readingLeaf, readingsTree, type SealedReading } from '../../shared/protocol/batch.ts'
import { manifestAad, manifestBytes, manifestCommitment, verifyManifest } from '../../shared/protocol/manifest.ts'
import { patientPseudonym, streamId } from '../../shared/protocol/pseudonym.ts'
import { rawCid } from '../../gateway/seal/seal.ts'
import { careledger, connectDevice, enrol, GatewayProcess, tempDataDir, type EnrolledDevice, type TestDevice } from '../helpers/gateway-process.ts'
import { batchesOf, gatewayIdentity, healthOf, metric, metricsOf, openReadonly, testAuthorityFile, waitFor, withBlocks, type SealedBatchRow } from '../helpers/backoffice.ts'
import { readTestSecret } from '../helpers/test-keys.ts'

const DEFAULT_POLICY = '(role:doctor AND hospital:h1) OR patient:{patient}'
const NURSE_POLICY = '(role:nurse AND ward:icu) OR patient:{patient}'
// Patient ids that would be easy to spot in any bytes that leak them.
const P1 = 'PATIENT-ALPHA-77310'
const P2 = 'PATIENT-BRAVO-44102'

let data: ReturnType<typeof tempDataDir>
let keysDir: ReturnType<typeof tempDataDir>
let gw: GatewayProcess
let db: Database.Database
let msk: MasterSecretKey
let env: Record<string, string>
let bed1: EnrolledDevice
let bed2: EnrolledDevice
let identity: Awaited<ReturnType<typeof gatewayIdentity>>

/** What each device published, by seq. */
const published = new Map<string, Map<number, Record<string, unknown>>>()

const scalar = (seq: number, i: number) => {
  const kinds = [
    ['heart_rate', '/min', 71.25 + i],
    ['spo2', '%', 96.5],
    ['resp_rate', '/min', 14.75],
    ['body_temp', 'Cel', 37.125],
  ] as const
  const [type, unit, value] = kinds[i % kinds.length]!
  return { seq, ts: Date.now() - 1000 + i, type, unit, value }
}
const ecg = (seq: number) => ({ seq, ts: Date.now(), type: 'ecg', unit: 'mV', hz: 250, samples: Array.from({ length: 250 }, (_, k) => Math.round(Math.sin((seq * 250 + k) / 12) * 1500) / 1000) })

async function publish(dev: TestDevice, deviceId: string, readings: Record<string, unknown>[]): Promise<void> {
  const mine = published.get(deviceId) ?? new Map()
  published.set(deviceId, mine)
  for (const r of readings) {
    await dev.publish(r)
    mine.set(r.seq as number, r)
  }
}

const unsealed = (deviceId: string) => db.prepare('SELECT count(*) FROM readings WHERE device_id = ? AND batch_id IS NULL').pluck().get(deviceId) as number
const allSealed = (deviceId: string) => waitFor(`readings of ${deviceId} sealed`, () => unsealed(deviceId) === 0, 30_000)

const key = (attrs: string[]): UserKey => currentKey(msk, attrs)
const aadOf = (b: SealedBatchRow) => manifestAad(b.m)

beforeAll(async () => {
  data = tempDataDir('seal')
  keysDir = tempDataDir('seal-authority')
  const authority = testAuthorityFile(keysDir.dir)
  msk = authority.msk
  env = { CARELEDGER_ABE_PUBLIC_KEY: authority.mpkFile, CARELEDGER_DEFAULT_POLICY: DEFAULT_POLICY }
  bed1 = await enrol(data.dir, 'bed-1', P1)
  bed2 = await enrol(data.dir, 'bed-2', P2)
  gw = await GatewayProcess.start({ dataDir: data.dir, args: ['--seal-interval-s', '1'], env, readyTimeoutMs: 60_000 }) // MQTTS on: the TLS CA is created in the same process as the back office
  identity = await gatewayIdentity(data.dir, env)
  db = openReadonly(data.dir)
})

afterAll(async () => {
  db?.close()
  await gw?.stop()
  data?.cleanup()
  keysDir?.cleanup()
})

describe('sealing on a real gateway', () => {
  it('seals scalar and ECG readings into signed, linked, content-addressed batches under the policy', async () => {
    const d1 = await connectDevice(gw.mqttUrl, bed1)
    const d2 = await connectDevice(gw.mqttUrl, bed2)
    // Two rounds for bed-1 with a seal in between, so its stream has at least two batches.
    await publish(d1, 'bed-1', [...Array.from({ length: 12 }, (_, i) => scalar(i + 1, i)), ecg(13), ecg(14)])
    await publish(d2, 'bed-2', Array.from({ length: 6 }, (_, i) => scalar(i + 1, i)))
    await allSealed('bed-1')
    await publish(d1, 'bed-1', [ecg(15), ...Array.from({ length: 5 }, (_, i) => scalar(16 + i, i))])
    await allSealed('bed-1')
    await allSealed('bed-2')
    await d1.end()
    await d2.end()

    expect(identity.authority).toBe(bytesToHex(msk.mpk.id))
    const pseudonymKey = readTestSecret(join(data.dir, 'keys', 'pseudonym.key')) // sealed under the tests' passphrase
    const batches = batchesOf(db)
    const byDevice = (id: string) => batches.filter((b) => b.m.device === id)
    expect(byDevice('bed-1').length).toBeGreaterThanOrEqual(2)
    expect(byDevice('bed-2').length).toBeGreaterThanOrEqual(1)

    const doctorH1 = key(['role:doctor', 'hospital:h1'])
    const doctorH2 = key(['role:doctor', 'hospital:h2'])
    const researcher = key(['role:researcher', 'consent:research'])
    const { transformKey, retrievalKey } = makeTransformKey(doctorH1)

    await withBlocks(data.dir, async (_node, get) => {
      for (const [deviceId, patientId] of [['bed-1', P1], ['bed-2', P2]] as const) {
        const stream = byDevice(deviceId)
        const pseudonym = patientPseudonym(pseudonymKey, patientId)
        const patientKey = key([`patient:${pseudonym}`])
        const seen: SealedReading[] = []
        stream.forEach((b, i) => {
          // Manifest: schema (parsed by batchesOf), stored canonically, signed by this gateway, committed.
          expect(Buffer.compare(Buffer.from(manifestBytes(b.m)), b.manifest)).toBe(0)
          expect(verifyManifest(identity.publicKey, b.m, b.signature)).toBe(true)
          expect(verifyManifest(identity.publicKey, { ...b.m, count: b.m.count + 1 }, b.signature)).toBe(false)
          expect(b.commitment).toBe(manifestCommitment(b.m))
          expect(b.m).toMatchObject({ v: 1, gateway: identity.gatewayId, device: deviceId, patient: pseudonym, seq: i, count: b.count, authority: bytesToHex(msk.mpk.id) })
          expect(b.m.stream).toBe(streamId(identity.gatewayId, deviceId, pseudonym))
          expect(b.stream_id).toBe(b.m.stream)
          expect(b.seq).toBe(i)
          // Stream link.
          expect(b.m.prev).toBe(i === 0 ? null : stream[i - 1]!.commitment)
          expect(b.m.policy).toBe(withEpoch(DEFAULT_POLICY.replace('{patient}', pseudonym), epochOf(b.m.sealedAt)))
        })
        const headers = new Set<string>()
        for (const b of stream) {
          const envelope = await get(b.cid)
          // Envelope format 2: one encapsulation for the stream's batches in this epoch (docs/crypto.md §Stream keys).
          const layout = decodeEnvelope(envelope)
          expect(layout.version).toBe(2)
          expect({ ...layout.context, digest: bytesToHex(layout.context!.digest) }).toEqual({ stream: b.m.stream, seq: b.m.seq, digest: b.m.merkleRoot })
          headers.add(bytesToHex(layout.header))
          // Content address and size.
          expect((await rawCid(envelope)).toString()).toBe(b.m.cid)
          expect(b.cid).toBe(b.m.cid)
          expect(envelope.length).toBe(b.m.size)
          // Opens for a doctor at h1 and for the patient; the outsourced path gives the same bytes.
          const plain = openEnvelope(doctorH1, envelope, aadOf(b))
          expect(Buffer.compare(Buffer.from(openEnvelope(patientKey, envelope, aadOf(b))), Buffer.from(plain))).toBe(0)
          const viaProxy = finishEnvelope(retrievalKey, envelope, transformEnvelope(transformKey, envelope), aadOf(b))
          expect(Buffer.compare(Buffer.from(viaProxy), Buffer.from(plain))).toBe(0)
          // Bound to its manifest: another manifest's AAD does not open it.
          expect(() => openEnvelope(doctorH1, envelope, manifestAad({ ...b.m, count: b.m.count + 1 }))).toThrow(/altered/)
          // Not for a doctor elsewhere, nor a researcher, nor another patient.
          for (const wrong of [doctorH2, researcher, key([`patient:${patientPseudonym(pseudonymKey, 'someone-else')}`])]) {
            let err: unknown
            try {
              openEnvelope(wrong, envelope, aadOf(b))
            } catch (e) {
              err = e
            }
            expect(isCareLedgerError(err, 'POLICY_NOT_SATISFIED'), String(err)).toBe(true)
          }
          // The body: this stream and seq, the readings in order, the Merkle root of the manifest.
          const body = decodeBatchBody(plain)
          expect(body).toMatchObject({ stream: b.m.stream, seq: b.m.seq })
          expect(body.readings).toHaveLength(b.m.count)
          expect(bytesToHex(readingsTree(body.readings).root)).toBe(b.m.merkleRoot)
          expect(b.m.types).toEqual([...new Set(body.readings.map((r) => r.type))].sort())
          expect(b.m.from).toBe(Math.min(...body.readings.map((r) => r.ts)))
          expect(b.m.to).toBe(Math.max(...body.readings.map((r) => r.ts)))
          seen.push(...body.readings)
          // Nothing in the clear: no reading's encoding, no ECG sample run, no patient id, in envelope or manifest.
          const env = Buffer.from(envelope)
          for (const r of body.readings) {
            expect(env.indexOf(Buffer.from(readingLeaf(r)))).toBe(-1)
            if (r.type === 'ecg') expect(env.indexOf(Buffer.from(new Float64Array(r.samples!.slice(0, 8)).buffer))).toBe(-1)
          }
          for (const secret of [P1, P2]) {
            expect(env.indexOf(secret)).toBe(-1)
            expect(b.manifest.indexOf(secret)).toBe(-1)
            expect(JSON.stringify(b.m)).not.toContain(secret)
          }
          expect(Object.keys(b.m).sort()).toEqual(['authority', 'cid', 'count', 'device', 'from', 'gateway', 'merkleRoot', 'patient', 'policy', 'prev', 'sealedAt', 'seq', 'size', 'stream', 'to', 'types', 'v'])
        }
        // One Encaps per stream and epoch, however many batches (reuse across passes: the policy test below).
        expect(headers.size).toBe(new Set(stream.map((b) => epochOf(b.m.sealedAt))).size)
        // Every published reading, exactly once, in order, as published (rx is the gateway's receive time).
        const sent = [...published.get(deviceId)!.values()]
        expect(seen.map((r) => r.seq)).toEqual(sent.map((r) => r.seq))
        seen.forEach((r, i) => {
          const p = sent[i]!
          expect(r).toMatchObject({ seq: p.seq, ts: p.ts, type: p.type, unit: p.unit })
          if (p.type === 'ecg') {
            expect(r.samples).toEqual(p.samples) // exactly as sent: binary64, no rounding (issue 8)
            expect(r.hz).toBe(250)
          } else expect(r.value).toBe(p.value)
          expect(r.rx as number).toBeGreaterThanOrEqual(p.ts as number)
        })
        // Readings rows point at the batch that holds them.
        for (const b of stream) {
          const ids = db.prepare('SELECT id FROM readings WHERE batch_id = ? ORDER BY id').pluck().all(b.batch_id) as number[]
          expect(ids).toHaveLength(b.count)
          expect([ids[0], ids.at(-1)]).toEqual([b.first_reading, b.last_reading])
        }
      }
    })
    // The two patients have different pseudonyms (and so different streams).
    expect(new Set(batches.map((b) => b.m.patient)).size).toBe(2)
  })

  it('applies a per-patient policy (careledger gateway policy set) to that patient\'s later batches only', async () => {
    const before = batchesOf(db)
    const set = await careledger(['gateway', 'policy', 'set', '--patient', P2, '--data', data.dir, NURSE_POLICY], env)
    expect(set.code, set.stderr).toBe(0)
    expect(set.stdout).toContain(P2)
    const list = await careledger(['gateway', 'policy', 'list', '--data', data.dir], env)
    expect(list.stdout).toContain(`${P2}\t(role:nurse AND ward:icu) OR patient:{patient}`)
    // A policy that FABEO cannot use is refused now, not at the next seal.
    const bad = await careledger(['gateway', 'policy', 'set', '--patient', P1, '--data', data.dir, 'role:doctor AND (role:doctor OR x:y)'], env)
    expect(bad.code).not.toBe(0)

    const d1 = await connectDevice(gw.mqttUrl, bed1)
    const d2 = await connectDevice(gw.mqttUrl, bed2)
    await publish(d2, 'bed-2', Array.from({ length: 4 }, (_, i) => scalar(100 + i, i)))
    await publish(d1, 'bed-1', Array.from({ length: 4 }, (_, i) => scalar(100 + i, i)))
    await allSealed('bed-2')
    await allSealed('bed-1')
    await d1.end()
    await d2.end()

    const fresh = batchesOf(db, 'batch_id > ?', before.at(-1)!.batch_id)
    const p2 = fresh.filter((b) => b.m.device === 'bed-2')
    const p1 = fresh.filter((b) => b.m.device === 'bed-1')
    expect(p2.length).toBeGreaterThanOrEqual(1)
    expect(p1.length).toBeGreaterThanOrEqual(1)
    const nurse = key(['role:nurse', 'ward:icu'])
    const doctorH1 = key(['role:doctor', 'hospital:h1'])
    await withBlocks(data.dir, async (_n, get) => {
      for (const b of p2) {
        expect(b.m.policy).toBe(withEpoch(NURSE_POLICY.replace('{patient}', b.m.patient), epochOf(b.m.sealedAt)))
        const envelope = await get(b.cid)
        expect(decodeBatchBody(openEnvelope(nurse, envelope, aadOf(b))).readings.map((r) => r.seq)).toEqual(
          (db.prepare('SELECT seq FROM readings WHERE batch_id = ? ORDER BY id').pluck().all(b.batch_id) as number[]),
        )
        expect(() => openEnvelope(doctorH1, envelope, aadOf(b))).toThrow(/do not satisfy/)
      }
      // A policy change means a new encapsulation: P2's new batches share no header with its earlier ones.
      const headerOf = async (b: (typeof before)[number]): Promise<string> => bytesToHex(decodeEnvelope(await get(b.cid)).header)
      const oldHeaders = new Set(await Promise.all(before.filter((b) => b.m.device === 'bed-2').map(headerOf)))
      for (const b of p2) expect(oldHeaders.has(await headerOf(b))).toBe(false)
      // …while bed-1, whose policy did not change, seals its later batches under its earlier encapsulation (same epoch).
      const bed1Before = before.filter((b) => b.m.device === 'bed-1')
      const bed1Headers = new Set(await Promise.all(bed1Before.map(headerOf)))
      for (const b of p1) if (epochOf(b.m.sealedAt) === epochOf(bed1Before.at(-1)!.m.sealedAt)) expect(bed1Headers.has(await headerOf(b))).toBe(true)
      // The other patient keeps the default, and the earlier batches of P2 keep theirs.
      for (const b of p1) expect(b.m.policy).toBe(withEpoch(DEFAULT_POLICY.replace('{patient}', b.m.patient), epochOf(b.m.sealedAt)))
      for (const b of before) expect(b.m.policy).toBe(withEpoch(DEFAULT_POLICY.replace('{patient}', b.m.patient), epochOf(b.m.sealedAt)))
    })
    // The stream link continues across the policy change.
    const stream2 = batchesOf(db, 'stream_id = ?', p2[0]!.stream_id)
    stream2.forEach((b, i) => {
      expect(b.seq).toBe(i)
      expect(b.m.prev).toBe(i === 0 ? null : stream2[i - 1]!.commitment)
    })
  })

  it('reports sealing in /healthz, /metrics and `careledger gateway batches` (no cloud: everything waits in the outbox)', async () => {
    const batches = batchesOf(db)
    const readingsSealed = db.prepare('SELECT count(*) FROM readings WHERE batch_id IS NOT NULL').pluck().get() as number
    // The worker reports after each pass; wait for the one that follows the last seal.
    const health = await waitFor('healthz to count every batch', async () => {
      const h = await healthOf(gw.httpUrl)
      return h.components?.backoffice?.sealedBatches === batches.length ? h : null
    })
    expect(health.status).toBe('ok')
    expect(health.components.backoffice).toMatchObject({ status: 'ok', gatewayId: identity.gatewayId, cloud: null, outboxPending: batches.length, outboxRejected: 0, lastSyncAt: null })
    const m = await metricsOf(gw.httpUrl)
    expect(metric(m, 'careledger_gateway_batches_sealed_total')).toBe(batches.length)
    expect(metric(m, 'careledger_gateway_readings_sealed_total')).toBe(readingsSealed)
    expect(metric(m, 'careledger_gateway_outbox_depth')).toBe(batches.length)
    expect(metric(m, 'careledger_gateway_outbox_rejected')).toBe(0)
    expect(metric(m, 'careledger_gateway_outbox_oldest_age_seconds')).toBeGreaterThan(0)

    const listed = await careledger(['gateway', 'batches', '--limit', '100', '--data', data.dir], env)
    expect(listed.code, listed.stderr).toBe(0)
    const lines = listed.stdout.trim().split('\n')
    expect(lines).toHaveLength(batches.length)
    expect(lines[0]).toMatch(new RegExp(`^${batches.at(-1)!.batch_id}\\t`)) // newest first
    for (const l of lines) expect(l).toMatch(/\d+ readings\t.*\twaiting in the outbox$/)
    const json = await careledger(['gateway', 'batches', '--json', '--data', data.dir], env)
    expect(json.code, json.stderr).toBe(0)
    const parsed = JSON.parse(json.stdout) as Array<Record<string, unknown>>
    expect(parsed[0]).toMatchObject({ batchId: batches.at(-1)!.batch_id, stream: batches.at(-1)!.stream_id, seq: batches.at(-1)!.seq, state: 'pending', recordId: null })
  })

  it('keeps sealing the other patients when one patient\'s readings cannot be sealed, and counts it (seal_failures_total)', async () => {
    // A per-patient policy FABEO cannot use, written into the database by hand (the CLI refuses it).
    const w = new Database(join(data.dir, 'gateway.db'))
    w.pragma('busy_timeout = 5000')
    const setBad = () => w.prepare("INSERT INTO patient_policies (patient_id, policy, updated_at) VALUES (?, 'role:doctor AND (role:doctor OR x:y)', 0) ON CONFLICT (patient_id) DO UPDATE SET policy = excluded.policy").run(P2)
    try {
      setBad()
      const d1 = await connectDevice(gw.mqttUrl, bed1)
      const d2 = await connectDevice(gw.mqttUrl, bed2)
      await publish(d2, 'bed-2', [scalar(200, 0)])
      await publish(d1, 'bed-1', [scalar(200, 0)])
      await allSealed('bed-1')
      await waitFor('seal failures counted', async () => (metric(await metricsOf(gw.httpUrl), 'careledger_gateway_seal_failures_total') ?? 0) >= 1)
      expect(unsealed('bed-2')).toBe(1)
      expect(gw.logs.some((l) => l.event === 'seal_failed' && l.device === 'bed-2')).toBe(true)
      // Fixed: sealed at the next pass.
      w.prepare('DELETE FROM patient_policies WHERE patient_id = ?').run(P2)
      await allSealed('bed-2')
      await d1.end()
      await d2.end()
    } finally {
      w.close()
    }
  })
})
