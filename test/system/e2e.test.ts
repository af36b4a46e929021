/**
 * End to end, real processes: bedside monitors → MQTT → `careledger gateway start` (durable store,
 * sealer: CP-ABE envelope + signed manifest, outbox) → HTTP → `careledger cloud start` (verification,
 * redactable chain) → `careledger chain verify`.
 *
 * Two kinds of monitors publish at once: four on the reference client (devices/sdk/client.ts),
 * which record on the client side every (deviceId, seq) that got a PUBACK, and three from the
 * simulator (startSimulation, with ECG, NIBP and temperature), whose acknowledged set follows from
 * its counters (fresh sequence state: seqs 0 … n−1, every one acknowledged, none dropped).
 *
 * Then, from the cloud side only (the read API with a doctor's token), every record's envelope is
 * decrypted with an authority key that satisfies its policy; the (device, seq) pairs of all the
 * batches must equal the acknowledged set, with no duplicate; every record is in a block, with an
 * inclusion proof that checks; the chain verifies by the CLI.
 *
 * Last, a forgery at the system level (not covered elsewhere in this form): a bulk upload claiming
 * the running gateway's id and continuing one of its real streams, signed (request and manifest)
 * with another key, is refused and stores nothing; the gateway's own next batch of that stream
 * then lands normally.
 */
import { join } from 'node:path'
import { hexToBytes } from '@noble/hashes/utils.js'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { leafHash, verifyInclusion } from '../../shared/crypto/merkle.ts'
import { generateSigningKey } from '../../shared/crypto/sign.ts'
import { manifestCommitment } from '../../shared/protocol/manifest.ts'
import { sealBatch } from '../../gateway/seal/seal.ts'
import { startSimulation } from '../../devices/cli.ts'
import { bulkBody, batchBody, signedPost, type TestGateway } from '../helpers/cloud-batches.ts'
import { storedState } from '../helpers/cloud-process.ts'
import { AckedMonitor, openBatch, sleep, startMonitors, TestSystem, waitFor, ward, WARD_POLICY, type ListedRecord } from '../helpers/system.ts'

const REFERENCE = ward(4) // bed-01 … bed-04, patient-01 … patient-04
const SIMULATED = ward(3, 'sim').map((d, i) => ({ ...d, patientId: `patient-${11 + i}` }))
const RUN_MS = 15_000

let sys: TestSystem
const acked = new Set<string>()
let records: ListedRecord[] = []

beforeAll(async () => {
  sys = await TestSystem.start({ label: 'e2e', devices: [...REFERENCE, ...SIMULATED], sealIntervalS: 2, blockIntervalS: 1 })
}, 60_000)

afterAll(async () => {
  await sys?.destroy()
})

/** Map with at most `n` calls in flight. */
async function mapLimit<T, R>(xs: readonly T[], n: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(xs.length)
  let next = 0
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < xs.length) {
      const i = next++
      out[i] = await f(xs[i]!)
    }
  }))
  return out
}

describe('monitors → gateway → cloud → chain', () => {
  it('every acknowledged reading is in exactly one sealed batch on the chain, readable by a doctor', async () => {
    // ── run the ward ───────────────────────────────────────────────────────────────────────────
    const refs = await startMonitors(sys.gateway.mqttUrl, sys.monitors.filter((m) => m.deviceId.startsWith('bed-')), 2) // 6 readings/s each
    const sim = startSimulation({
      gateway: sys.gateway.mqttUrl,
      devices: sys.monitors.filter((m) => m.deviceId.startsWith('sim-')),
      rate: 2,
      ecg: true,
      nibpIntervalS: 4,
      tempIntervalS: 3,
      stateDir: join(sys.root.dir, 'simulator'),
      seed: 'e2e',
      summaryIntervalS: 0,
      logger: pino({ level: 'silent' }),
    })
    await sleep(RUN_MS) // load duration, not a timing assertion
    await Promise.all(refs.map((m) => m.stop()))
    const final = await sim.stop()

    // ── the acknowledged set, as the clients saw it ────────────────────────────────────────────
    for (const m of refs) {
      expect(m.acked.size, `${m.deviceId}: everything generated was acknowledged`).toBe(m.generated)
      for (const seq of m.acked.keys()) acked.add(`${m.deviceId}/${seq}`)
    }
    for (const d of final.devices) {
      expect({ device: d.deviceId, failed: d.failed, inFlight: d.inFlight, queued: d.queued, dropped: d.dropped, faults: d.faults, deviceErrors: d.deviceErrors, acked: d.acked }).toEqual({
        device: d.deviceId, failed: null, inFlight: 0, queued: 0, dropped: 0, faults: 0, deviceErrors: 0, acked: d.generated,
      })
      expect(d.nextSeq).toBe(d.generated) // fresh state: seqs 0 … generated − 1, all acknowledged
      for (let seq = 0; seq < d.nextSeq; seq++) acked.add(`${d.deviceId}/${seq}`)
    }
    expect(acked.size).toBeGreaterThan(7 * 50)

    // ── wait for the gateway to seal and ship it all, and the cloud to seal it into blocks ─────
    await sys.settled(60_000)
    expect(sys.outbox().rejected).toBe(0)

    // ── from the cloud side: decrypt every record and collect (device, seq) ─────────────────────
    records = await sys.records(sys.tokens.doctor)
    expect(records.length).toBeGreaterThan(7 * 3)
    const seen = new Map<string, number>() // device/seq → record id
    const duplicates: string[] = []
    const types = new Set<string>()
    await mapLimit(records, 6, async (r) => {
      const detail = await sys.record(r.id, sys.tokens.doctor)
      expect(detail.manifest.gateway).toBe(sys.gatewayId)
      expect(detail.manifest.patient).toMatch(/^p-[0-9a-f]{24}$/)
      const body = openBatch(sys.authority.doctor, await sys.envelope(r.id, sys.tokens.doctor), detail.manifest)
      for (const reading of body.readings) {
        const key = `${detail.manifest.device}/${reading.seq}`
        if (seen.has(key)) duplicates.push(`${key} in records ${seen.get(key)} and ${r.id}`)
        seen.set(key, r.id)
        types.add(reading.type)
        expect(reading.ts).toBeGreaterThanOrEqual(detail.manifest.from)
        expect(reading.ts).toBeLessThanOrEqual(detail.manifest.to)
      }
    })
    expect(duplicates).toEqual([])
    const missing = [...acked].filter((k) => !seen.has(k))
    const extra = [...seen.keys()].filter((k) => !acked.has(k))
    expect({ missing: missing.slice(0, 10), missingCount: missing.length, extra: extra.slice(0, 10), extraCount: extra.length }).toEqual({ missing: [], missingCount: 0, extra: [], extraCount: 0 })
    // The simulator's ward really sent every kind of vital sign.
    expect([...types].sort()).toEqual(['body_temp', 'bp_diastolic', 'bp_systolic', 'ecg', 'heart_rate', 'resp_rate', 'spo2'])

    // Streams: one per monitor, complete.
    const streams = await sys.streams()
    expect(streams.map((s) => s.device).sort()).toEqual(sys.monitors.map((m) => m.deviceId).sort())
    for (const s of streams) expect({ device: s.device, gaps: s.gaps, ranges: s.ranges, batches: s.batches }).toEqual({ device: s.device, gaps: [], ranges: [[0, s.lastSeq]], batches: s.lastSeq + 1 })
  })

  it('every record is sealed into a block with an inclusion proof that checks, and `careledger chain verify` passes', async () => {
    expect(records.length).toBeGreaterThan(0)
    const blocks = await sys.blocks()
    expect(blocks.reduce((n, b) => n + b.count, 0)).toBe(records.length)
    const byHeight = new Map(blocks.map((b) => [b.height, b]))
    await mapLimit(records, 8, async (r) => {
      const p = await sys.api<{ record: { id: number; commitment: string; block: number }; block: { header: { recordsRoot: string; height: number } }; leafIndex: number; treeSize: number; proof: string[] }>(`/v1/records/${r.id}/proof`, sys.tokens.doctor)
      const b = byHeight.get(p.record.block)!
      expect(r.id).toBeGreaterThanOrEqual(b.firstRecord)
      expect(r.id).toBeLessThanOrEqual(b.lastRecord)
      expect(verifyInclusion(leafHash(hexToBytes(p.record.commitment)), p.leafIndex, p.treeSize, p.proof.map(hexToBytes), hexToBytes(p.block.header.recordsRoot))).toBe(true)
    })
    const head = blocks.at(-1)!
    const v = await sys.chainVerify({ height: head.height, hash: head.hash })
    expect(v.code, v.stderr + v.stdout).toBe(0)
    expect(v.report).toMatchObject({ ok: true, records: records.length, blocks: blocks.length, failures: [] })
  })

  it('the envelopes keep to their policy: a researcher with consent reads them, a doctor of another hospital cannot', async () => {
    const r = records[0]!
    const detail = await sys.record(r.id)
    const envelope = await sys.envelope(r.id, sys.tokens.researcher)
    expect(openBatch(sys.authority.key(['role:researcher', 'consent:research']), envelope, detail.manifest).readings.length).toBe(detail.manifest.count)
    expect(() => openBatch(sys.authority.key(['role:doctor', 'hospital:h2']), envelope, detail.manifest)).toThrow(/policy|satisf|DECRYPT/i)
    // An admin may read metadata, not ciphertext.
    const res = await fetch(new URL(`/v1/records/${r.id}/envelope`, sys.cloud.url), { headers: { authorization: `Bearer ${sys.tokens.admin}` } })
    expect(res.status).toBe(403)
  })

  it("a forged upload under the running gateway's id, continuing one of its streams with another key, is refused and stores nothing", async () => {
    const device = 'bed-01'
    const last = (await sys.streams()).find((s) => s.device === device)!
    const tip = records.find((r) => r.stream === last.stream && r.seq === last.lastSeq)!
    const m = (await sys.record(tip.id)).manifest
    const key = generateSigningKey()
    const forger: TestGateway = { secretKey: key.secretKey, publicKey: key.publicKey, gatewayId: sys.gatewayId, pseudonymKey: new Uint8Array(32) }
    const now = Date.now()
    const forged = await sealBatch({
      gatewayId: sys.gatewayId, // claims to be the real gateway …
      gatewaySecretKey: key.secretKey, // … but signs with a key of its own
      mpk: sys.authority.msk.mpk,
      policy: WARD_POLICY.replaceAll('{patient}', m.patient), // sealBatch adds the epoch
      stream: { streamId: m.stream, deviceId: m.device, pseudonym: m.patient, nextSeq: m.seq + 1, prevCommitment: manifestCommitment(m) },
      readings: [{ seq: 1_000_000, ts: now - 1000, rx: now, type: 'heart_rate', unit: '/min', value: 180 }],
      now,
    })
    const before = storedState(sys.dirs.cloud)
    for (const [path, body] of [['/v1/batches/bulk', await bulkBody([forged])], ['/v1/batches', await batchBody(forged)]] as const) {
      const { res } = await signedPost(sys.cloud.url, forger, path, body)
      expect(res.status, path).toBe(401)
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('BAD_SIGNATURE')
    }
    await sleep(1500) // longer than a block interval: anything stored would be sealed by now
    expect(storedState(sys.dirs.cloud)).toEqual(before)

    // The real gateway's next batch of that stream takes the position the forgery aimed at.
    const m1 = new AckedMonitor({ url: sys.gateway.mqttUrl, deviceId: device, secret: sys.monitors.find((x) => x.deviceId === device)!.secret, rate: 4, firstSeq: 1_000_000 })
    await m1.start()
    await sleep(1000)
    await m1.stop()
    await sys.settled(30_000)
    const after = (await sys.streams()).find((s) => s.stream === last.stream)!
    expect(after.lastSeq).toBeGreaterThan(last.lastSeq)
    expect(after.gaps).toEqual([])
    const next = (await sys.records()).find((r) => r.stream === last.stream && r.seq === last.lastSeq + 1)!
    const genuine = await sys.record(next.id)
    expect(genuine.manifest.cid).not.toBe(forged.manifest.cid)
    const db = sys.gatewayDb()
    try {
      const row = db.prepare('SELECT commitment, record_id FROM batches WHERE stream_id = ? AND seq = ?').get(last.stream, last.lastSeq + 1) as { commitment: string; record_id: number }
      expect(row).toEqual({ commitment: genuine.manifestCommitment, record_id: next.id })
    } finally {
      db.close()
    }
    expect((await sys.stats()).equivocations).toBe(0)
    await waitFor('the gateway outbox to be empty', () => sys.outbox().pending === 0)
  })
})
