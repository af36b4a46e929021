/**
 * No protected health information reaches the cloud. Monitors with known patients publish values
 * nobody else would (heart rate 123.4567, SpO2 97.654321, a distinctive ECG pattern) through the
 * real gateway to the real cloud; then everything the cloud holds — every file of its data
 * directory (cloud.db with its envelope table, its -wal and -shm, keys) while it runs
 * and again after it stopped, and its whole log output — and every byte the gateway sent to or got
 * from the cloud (recorded by a relay in between) is searched for:
 *
 *   - the raw patient ids the gateway knows (patient-01 …), as UTF-8, UTF-16, hex and base64;
 *   - the plaintext values: their decimal text, their float64 and float32 encodings (both byte
 *     orders), their CBOR encodings; the ECG pattern as the gateway stores it (float32 LE), in
 *     either order, in float64, as JSON text and as the CBOR array the sealed body carries;
 *   - the canonical CBOR of whole readings (the Merkle leaves inside the sealed body, and the
 *     readings without the gateway's receive time) and the JSON the monitors published.
 *
 * None may be found. So that "none found" means something, the same search finds them where they
 * are supposed to be: in the gateway's own database, and in the bodies decrypted (with the
 * authority's key) from the very envelopes the cloud stores and the gateway uploaded.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { storedEnvelopes } from '../helpers/envelopes.ts'
import { join } from 'node:path'
import { CarReader } from '@ipld/car'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { openEnvelope } from '../../shared/crypto/envelope.ts'
import { encodeCanonical } from '../../shared/encoding/canonical.ts'
import { manifestAad } from '../../shared/protocol/manifest.ts'
import { readingLeaf, type BatchBody } from '../../shared/protocol/batch.ts'
import type { DeviceReading } from '../../devices/sdk/client.ts'
import { bulkItems, openBatch, sleep, startMonitors, TestSystem, vitalsTick, ward, type AckedMonitor, type TickReadings } from '../helpers/system.ts'

const DEVICES = ward(4) // bed-01 … bed-04 for patient-01 … patient-04
const HR = 123.4567
const SPO2 = 97.654321
const HR2 = 87.6543
const ECG = [1.2345678, -0.9876543, 2.7182818, -1.4142135, 0.5772156, -3.1415926, 1.6180339, -0.6931471, 4.6692016, -2.5029078, 0.3183098, -1.7320508]

const distinctive: TickReadings = (seq, t) => [
  { seq, ts: t, type: 'heart_rate', unit: '/min', value: HR },
  { seq: seq + 1, ts: t, type: 'spo2', unit: '%', value: SPO2 },
]
const withEcg: TickReadings = (seq, t) => [
  { seq, ts: t, type: 'heart_rate', unit: '/min', value: HR2 },
  { seq: seq + 1, ts: t, type: 'ecg', unit: 'mV', hz: 250, samples: ECG },
]

let sys: TestSystem
let monitors: AckedMonitor[] = []

beforeAll(async () => {
  sys = await TestSystem.start({ label: 'no-phi', devices: DEVICES, sealIntervalS: 1, blockIntervalS: 0.5, relay: true })
}, 60_000)

afterAll(async () => {
  await Promise.all(monitors.map((m) => m.stop().catch(() => {})))
  await sys?.destroy()
})

// ---- what to look for -----------------------------------------------------------------------------

interface Needle {
  readonly name: string
  readonly bytes: Buffer
}

const f64 = (x: number, le: boolean): Buffer => {
  const b = Buffer.alloc(8)
  if (le) b.writeDoubleLE(x)
  else b.writeDoubleBE(x)
  return b
}
const f32 = (x: number, le: boolean): Buffer => {
  const b = Buffer.alloc(4)
  if (le) b.writeFloatLE(x)
  else b.writeFloatBE(x)
  return b
}

/**
 * A scalar value as text, as float64 (both orders) and in CBOR as float64 and as float32. A bare
 * 4-byte float32 is left to the ECG windows below: any 4 bytes turn up by chance about once per
 * 400 MB of ciphertext, too often for a search over megabytes to mean anything.
 */
function valueNeedles(name: string, x: number): Needle[] {
  return [
    { name: `${name} as text`, bytes: Buffer.from(String(x)) },
    { name: `${name} float64 BE`, bytes: f64(x, false) },
    { name: `${name} float64 LE`, bytes: f64(x, true) },
    { name: `${name} CBOR`, bytes: Buffer.from(encodeCanonical(x)) },
    { name: `${name} CBOR float32`, bytes: Buffer.concat([Buffer.of(0xfa), f32(x, false)]) },
  ]
}

/** The ECG pattern in every form it has on its way: sent as JSON, stored as float64 LE (float32 LE before issue 8), sealed as CBOR floats. */
function ecgNeedles(): Needle[] {
  const f = ECG.map(Math.fround)
  const window = (xs: Buffer[]): Buffer => Buffer.concat(xs.slice(2, 6)) // four samples from the middle
  const sealed = Buffer.from(encodeCanonical(ECG)) // batch body v2: the values as sent (binary64)
  const oneCbor = Buffer.from(encodeCanonical(ECG[2]!))
  const at = sealed.indexOf(oneCbor)
  const sealedV1 = Buffer.from(encodeCanonical(f)) // v1 bodies held binary32-rounded samples
  const oneV1 = Buffer.from(encodeCanonical(f[2]!))
  const atV1 = sealedV1.indexOf(oneV1)
  return [
    { name: 'ECG float64 LE (as the gateway stores it)', bytes: window(ECG.map((x) => f64(x, true))) },
    { name: 'ECG float32 LE (as gateways before issue 8 stored it)', bytes: window(f.map((x) => f32(x, true))) },
    { name: 'ECG float32 BE', bytes: window(f.map((x) => f32(x, false))) },
    { name: 'ECG float64 BE', bytes: window(f.map((x) => f64(x, false))) },
    { name: 'ECG float64 LE', bytes: window(f.map((x) => f64(x, true))) },
    { name: 'ECG as JSON text', bytes: Buffer.from(JSON.stringify(ECG.slice(2, 6)).slice(1, -1)) },
    { name: 'ECG as sealed CBOR floats', bytes: sealed.subarray(at, at + 4 * oneCbor.length) },
    { name: 'ECG as binary32 CBOR (v1 bodies)', bytes: sealedV1.subarray(atV1, atV1 + 4 * oneV1.length) },
    { name: 'ECG as CBOR of the sent float64s', bytes: Buffer.from(encodeCanonical(ECG)).subarray(1 + 9 * 2, 1 + 9 * 6) },
  ]
}

function patientNeedles(): Needle[] {
  return DEVICES.flatMap(({ patientId: p }) => [
    { name: `${p} UTF-8`, bytes: Buffer.from(p, 'utf8') },
    { name: `${p} UTF-16LE`, bytes: Buffer.from(p, 'utf16le') },
    { name: `${p} hex`, bytes: Buffer.from(Buffer.from(p).toString('hex')) },
    { name: `${p} base64`, bytes: Buffer.from(Buffer.from(p).toString('base64').replace(/=+$/, '').slice(0, 12)) },
  ])
}

/** Whole readings: the sealed Merkle leaves (with the gateway's rx), without rx, and the JSON published. */
function readingNeedles(bodies: readonly BatchBody[], published: readonly DeviceReading[][]): Needle[] {
  const out: Needle[] = []
  for (const body of bodies.slice(0, 6)) {
    for (const r of body.readings.slice(0, 2)) {
      out.push({ name: `sealed leaf ${r.type} seq ${r.seq}`, bytes: Buffer.from(readingLeaf(r)) })
      const { rx: _rx, ...withoutRx } = r
      out.push({ name: `reading ${r.type} seq ${r.seq} without rx`, bytes: Buffer.from(encodeCanonical(withoutRx)) })
    }
  }
  for (const message of published.slice(0, 4)) {
    out.push({ name: `published message seq ${message[0]!.seq}`, bytes: Buffer.from(JSON.stringify(message)) })
    out.push({ name: `published reading seq ${message[0]!.seq}`, bytes: Buffer.from(JSON.stringify(message[0])) })
  }
  return out
}

// ---- where to look ---------------------------------------------------------------------------------

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => join(dir, f))
    .filter((p) => statSync(p).isFile())
}

/** The needles found in `haystack`, by name. */
const found = (haystack: Buffer, needles: readonly Needle[]): string[] => needles.filter((n) => haystack.includes(n.bytes)).map((n) => n.name)

/** needle name → files (relative) holding it. */
function scanDir(dir: string, needles: readonly Needle[]): Record<string, string[]> {
  const hits: Record<string, string[]> = {}
  for (const file of filesUnder(dir)) for (const n of found(readFileSync(file), needles)) (hits[n] ??= []).push(file.slice(dir.length + 1))
  return hits
}

it('the cloud never holds, logs or receives a raw patient id or a plaintext value', async () => {
  monitors = await startMonitors(sys.gateway.mqttUrl, sys.monitors, 2, (id) => (id === 'bed-01' ? distinctive : id === 'bed-02' ? withEcg : vitalsTick))
  await sleep(6000) // load duration
  await Promise.all(monitors.map((m) => m.stop()))
  await sys.settled(40_000)

  // Decrypt what the cloud stores (positive control: the plaintext really is in there, encrypted).
  const records = await sys.records(sys.tokens.doctor)
  const bodies: BatchBody[] = []
  const plaintexts: Buffer[] = []
  for (const r of records) {
    const detail = await sys.record(r.id, sys.tokens.doctor)
    expect(detail.manifest.patient).toMatch(/^p-[0-9a-f]{24}$/)
    const envelope = await sys.envelope(r.id, sys.tokens.doctor)
    bodies.push(openBatch(sys.authority.doctor, envelope, detail.manifest))
    plaintexts.push(Buffer.from(openEnvelope(sys.authority.doctor, envelope, manifestAad(detail.manifest)))) // the sealed body's exact bytes
  }
  const plaintext = Buffer.concat(plaintexts)
  const ofDevice = (d: string) => bodies.filter((_, i) => records[i]!.device === d)
  const needles: Needle[] = [
    ...patientNeedles(),
    ...valueNeedles('heart rate 123.4567', HR),
    ...valueNeedles('SpO2 97.654321', SPO2),
    ...valueNeedles('heart rate 87.6543', HR2),
    ...ecgNeedles(),
    ...readingNeedles([...ofDevice('bed-01'), ...ofDevice('bed-02')], [...monitors[0]!.published, ...monitors[1]!.published]),
  ]

  // The search works: the decrypted plaintext holds every sealed form, the gateway's own store the stored ones.
  const sealedForms = needles.filter((n) => /CBOR$|sealed CBOR|sealed leaf/.test(n.name))
  expect(sealedForms.length).toBeGreaterThanOrEqual(12)
  expect(found(plaintext, sealedForms).sort()).toEqual(sealedForms.map((n) => n.name).sort())
  const atGateway = Object.keys(scanDir(sys.dirs.gateway, needles))
  for (const n of ['patient-01 UTF-8', 'patient-04 UTF-8', 'heart rate 123.4567 float64 BE', 'SpO2 97.654321 float64 BE', 'ECG float64 LE (as the gateway stores it)']) expect(atGateway).toContain(n)

  // ── the cloud, running: data directory (WAL included) and logs ──────────────────────────────────
  const files = filesUnder(sys.dirs.cloud)
  expect(files.some((f) => f.endsWith('cloud.db-wal'))).toBe(true)
  // The envelopes are rows of cloud.db (cloud/service/envelope-table.ts), searched with it.
  for (const r of records) expect(storedEnvelopes(sys.dirs.cloud).has(r.cid)).toBe(true)
  expect(scanDir(sys.dirs.cloud, needles)).toEqual({})
  expect(found(Buffer.from(sys.cloud.stdout + sys.cloud.stderr), needles)).toEqual([])
  expect(sys.cloud.logs.length).toBeGreaterThan(20)

  // ── the traffic: every byte both ways, and every upload taken apart ─────────────────────────────
  const relay = sys.relay!
  expect(found(Buffer.concat(relay.toCloud), needles)).toEqual([])
  expect(found(Buffer.concat(relay.fromCloud), needles)).toEqual([])
  for (const x of relay.exchanges) expect(found(Buffer.concat([x.requestBody, x.responseBody ?? Buffer.alloc(0)]), needles)).toEqual([])
  const uploads = relay.bulks().flatMap(bulkItems)
  expect(uploads.length).toBe(records.length)
  const byCid = new Map(records.map((r, i) => [r.cid, { record: r, body: bodies[i]! }]))
  for (const u of uploads) {
    expect(u.manifest.patient).toMatch(/^p-[0-9a-f]{24}$/)
    expect(JSON.stringify(u.manifest)).not.toMatch(/patient-\d/)
    // The CAR's one block is the envelope the cloud stores, and it decrypts to the body above.
    const blocks = []
    for await (const b of (await CarReader.fromBytes(u.car)).blocks()) blocks.push(b)
    expect(blocks.map((b) => b.cid.toString())).toEqual([u.manifest.cid])
    const stored = byCid.get(u.manifest.cid)!
    expect(Buffer.from(await sys.envelope(stored.record.id)).equals(Buffer.from(blocks[0]!.bytes))).toBe(true)
    expect(openBatch(sys.authority.doctor, blocks[0]!.bytes, u.manifest)).toEqual(stored.body)
  }

  // ── the cloud, stopped (the WAL checkpointed into cloud.db) ──────────────────────────────────────
  await sys.gateway.stop()
  await sys.cloud.stop()
  expect(scanDir(sys.dirs.cloud, needles)).toEqual({})
  expect(found(Buffer.from(sys.cloud.stdout + sys.cloud.stderr), needles)).toEqual([])
})
