/**
 * The gateway as devices see it: a real gateway process, real MQTT connections over TCP and TLS,
 * the real SQLite file read back. Enrolment and device management through the real CLI.
 */
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RejectionCode } from '../../shared/schema/reading.ts'
import { careledger, closed, connectDevice, enrol, GatewayProcess, tempDataDir, type EnrolledDevice } from '../helpers/gateway-process.ts'

const readings = (id: string) => `careledger/v1/devices/${id}/readings`
const hr = (seq: number, value = 72, ts = Date.now()) => ({ seq, ts, type: 'heart_rate', unit: '/min', value })

let gw: GatewayProcess
let data: ReturnType<typeof tempDataDir>
let db: Database.Database
let bed1: EnrolledDevice
let bed2: EnrolledDevice

const rowsOf = (deviceId: string) =>
  db.prepare('SELECT seq, patient_id AS patientId, ts, received_at AS receivedAt, type, unit, value, samples, hz, batch_id AS batchId FROM readings WHERE device_id = ? ORDER BY seq').all(deviceId) as Array<{
    seq: number
    patientId: string
    ts: number
    receivedAt: number
    type: string
    unit: string
    value: number | null
    samples: Buffer | null
    hz: number | null
    batchId: number | null
  }>
const quarantineOf = (deviceId: string) =>
  db.prepare('SELECT seq, code, message, raw FROM quarantine WHERE device_id = ? ORDER BY id').all(deviceId) as Array<{ seq: number | null; code: string; message: string; raw: string }>

async function metrics(): Promise<string> {
  return (await fetch(`${gw.httpUrl}/metrics`)).text()
}
const metric = (text: string, name: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

beforeAll(async () => {
  data = tempDataDir('ingest')
  // Enrol before the first start (the CLI creates the database), and one more while it runs (below).
  bed1 = await enrol(data.dir, 'bed-1', 'P-1')
  gw = await GatewayProcess.start({ dataDir: data.dir, args: ['--max-payload-bytes', '4096', '--max-readings', '5'] })
  bed2 = await enrol(data.dir, 'bed-2', 'P-2')
  db = new Database(join(data.dir, 'gateway.db'), { readonly: true })
})

afterAll(async () => {
  db?.close()
  await gw?.stop()
  data?.cleanup()
})

describe('ingest over MQTT 3.1.1', () => {
  it('stores an acknowledged reading with the device patient, device ts and gateway receive time', async () => {
    const dev = await connectDevice(gw.mqttUrl, bed1)
    const ts = Date.now() - 1500
    const before = Date.now()
    await dev.publish(hr(1, 71.5, ts))
    const rows = rowsOf('bed-1')
    expect(rows).toHaveLength(1) // visible from another connection the moment the PUBACK arrived
    expect(rows[0]).toMatchObject({ seq: 1, patientId: 'P-1', ts, type: 'heart_rate', unit: '/min', value: 71.5, samples: null, batchId: null })
    expect(rows[0]!.receivedAt).toBeGreaterThanOrEqual(before)

    // An array payload and an ECG chunk (samples stored exactly: tag 0x02 + little-endian binary64).
    const samples = [0.1, -0.25, 1.5, 0.75]
    await dev.publish([hr(2, 80), { seq: 3, ts: Date.now(), type: 'ecg', unit: 'mV', samples, hz: 250 }, { seq: 4, ts: new Date().toISOString(), type: 'spo2', unit: '%', value: 97 }])
    const [r2, r3, r4] = rowsOf('bed-1').slice(1)
    expect(r2).toMatchObject({ seq: 2, value: 80 })
    expect(r3).toMatchObject({ seq: 3, type: 'ecg', unit: 'mV', value: null, hz: 250 })
    expect(r3!.samples![0]).toBe(0x02)
    expect([...new Float64Array(new Uint8Array(r3!.samples!).buffer.slice(1))]).toEqual(samples)
    expect(r4).toMatchObject({ seq: 4, type: 'spo2', value: 97 })
    expect(dev.errors).toEqual([])
    await dev.end()
  })

  it('refuses a wrong password, an unknown device, a client id that is not the device id, and a disabled device', async () => {
    const refused = async (dev: { deviceId: string; secret: string }, clientId?: string) => {
      const err = await connectDevice(gw.mqttUrl, dev, { subscribe: false, ...(clientId ? { clientId } : {}) }).then(
        async (d) => {
          await d.end()
          return null
        },
        (e: { code?: number }) => e,
      )
      return err?.code
    }
    expect(await refused({ deviceId: 'bed-1', secret: 'not-the-secret' })).toBe(4) // bad user name or password
    expect(await refused({ deviceId: 'bed-404', secret: bed1.secret })).toBe(4)
    expect(await refused(bed1, 'someone-else')).toBe(2) // identifier rejected
    const off = await enrol(data.dir, 'bed-off', 'P-9')
    expect((await careledger(['gateway', 'device', 'disable', 'bed-off', '--data', data.dir])).code).toBe(0)
    expect(await refused(off)).toBe(5) // not authorized
    const m = await metrics()
    expect(metric(m, 'careledger_gateway_auth_failures_total{reason="BAD_CREDENTIALS"}')).toBe(2)
    expect(metric(m, 'careledger_gateway_auth_failures_total{reason="CLIENT_ID_MISMATCH"}')).toBe(1)
    expect(metric(m, 'careledger_gateway_auth_failures_total{reason="DISABLED"}')).toBe(1)
  })

  it("refuses a publish to another device's topic or to $SYS: no PUBACK, connection closed, nothing stored", async () => {
    for (const topic of [readings('bed-2'), '$SYS/broker/readings', 'careledger/v1/devices/bed-1/errors']) {
      const dev = await connectDevice(gw.mqttUrl, bed1)
      const wasClosed = closed(dev.client)
      let acked = false
      const pub = dev.publish(hr(900), topic).then(() => (acked = true))
      await wasClosed
      const told = dev.errors.find((e) => e.code === 'FORBIDDEN_TOPIC')
      expect(told?.message).toContain(topic)
      await dev.end()
      await pub.catch(() => {})
      expect(acked).toBe(false)
    }
    expect(rowsOf('bed-2')).toEqual([])
    expect(rowsOf('bed-1').map((r) => r.seq)).not.toContain(900)
    expect(metric(await metrics(), 'careledger_gateway_publish_refused_total{reason="FORBIDDEN_TOPIC"}')).toBe(3)
  })

  it('never publishes or stores a will message (a will is sent when the gateway cannot answer for it)', async () => {
    const { default: mqtt } = await import('mqtt')
    const will = { topic: readings('bed-1'), payload: Buffer.from(JSON.stringify(hr(950))), qos: 1 as const, retain: false }
    const client = await mqtt.connectAsync(gw.mqttUrl, { protocolVersion: 4, clientId: 'bed-1', username: 'bed-1', password: bed1.secret, reconnectPeriod: 0, will })
    const gone = closed(client)
    client.stream.destroy() // an abrupt drop: aedes would now publish the will
    await gone
    await gw.waitForLog((l) => l.event === 'device_disconnected' && l.deviceId === 'bed-1')
    await new Promise((r) => setTimeout(r, 200))
    expect(rowsOf('bed-1').map((r) => r.seq)).not.toContain(950)
    expect(metric(await metrics(), 'careledger_gateway_publish_refused_total{reason="WILL"}')).toBe(1)
    await client.endAsync(true)
  })

  it("refuses subscriptions to another device's errors topic, to readings, to wildcards and to $SYS (SUBACK 0x80)", async () => {
    const dev = await connectDevice(gw.mqttUrl, bed1, { subscribe: false })
    for (const topic of ['careledger/v1/devices/bed-2/errors', readings('bed-2'), 'careledger/v1/devices/+/errors', '#', '$SYS/#']) {
      await expect(dev.client.subscribeAsync(topic, { qos: 1 }), topic).rejects.toThrow()
    }
    // …while its own errors topic is granted.
    const granted = await dev.client.subscribeAsync('careledger/v1/devices/bed-1/errors', { qos: 1 })
    expect(granted[0]!.qos).toBe(1)
    // bed-2's errors never reach bed-1.
    const other = await connectDevice(gw.mqttUrl, bed2)
    await other.publish({ seq: 1, ts: Date.now(), type: 'heart_rate', unit: 'bpm', value: 60 })
    await other.nextError((e) => e.code === 'WRONG_UNIT')
    await new Promise((r) => setTimeout(r, 200))
    expect(dev.errors).toEqual([])
    await dev.end()
    await other.end()
  })

  it('answers every kind of invalid reading on the errors topic with its code, acknowledges it, quarantines it and stores nothing', async () => {
    const dev = await connectDevice(gw.mqttUrl, bed2)
    const now = Date.now()
    // Record<RejectionCode, …>: the compiler insists on a case for every code the schema defines.
    // PAYLOAD_TOO_LARGE is refused by the packet header instead (next test).
    const cases: Record<Exclude<RejectionCode, 'PAYLOAD_TOO_LARGE'>, { payload: unknown; seq: number | null }> = {
      MALFORMED_JSON: { payload: '{"seq": 21, "ts": ', seq: null },
      TOO_MANY_READINGS: { payload: [1, 2, 3, 4, 5, 6].map((i) => hr(21 + i)), seq: null },
      SCHEMA: { payload: { seq: 30, ts: now, type: 'heart_rate', unit: '/min', value: 70, extra: true }, seq: 30 },
      UNKNOWN_TYPE: { payload: { seq: 31, ts: now, type: 'glucose', unit: 'mmol/L', value: 5 }, seq: 31 },
      WRONG_UNIT: { payload: { seq: 32, ts: now, type: 'body_temp', unit: '[degF]', value: 98.6 }, seq: 32 },
      IMPLAUSIBLE_VALUE: { payload: { seq: 33, ts: now, type: 'spo2', unit: '%', value: 130 }, seq: 33 },
      BAD_TIMESTAMP: { payload: { seq: 34, ts: '2025-01-01', type: 'heart_rate', unit: '/min', value: 70 }, seq: 34 },
      FUTURE_TIMESTAMP: { payload: { seq: 35, ts: now + 3_600_000, type: 'heart_rate', unit: '/min', value: 70 }, seq: 35 },
    }
    for (const [code, c] of Object.entries(cases)) {
      await dev.publish(c.payload) // acknowledged, or this would hang and time out
      const e = await dev.nextError((x) => x.code === code)
      expect(e.seq, code).toBe(c.seq)
      expect(e.message.length, code).toBeGreaterThan(10)
    }
    // A payload mixing good and bad readings: the good one is stored, the bad one reported.
    await dev.publish([hr(40), { ...hr(41), value: -5 }])
    await dev.nextError((x) => x.seq === 41 && x.code === 'IMPLAUSIBLE_VALUE')

    expect(rowsOf('bed-2').map((r) => r.seq)).toEqual([40])
    const q = quarantineOf('bed-2')
    for (const [code, c] of Object.entries(cases)) expect(q.find((r) => r.code === code && r.seq === c.seq), code).toBeDefined()
    expect(q.find((r) => r.code === 'IMPLAUSIBLE_VALUE' && r.seq === 41)?.raw).toContain('-5')
    const m = await metrics()
    for (const code of Object.keys(cases)) expect(metric(m, `careledger_gateway_readings_rejected_total{reason="${code}"}`), code).toBeGreaterThanOrEqual(1)
    expect(metric(m, 'careledger_gateway_quarantine_rows')).toBe(q.length + quarantineOf('bed-1').length)
    await dev.end()
  })

  it('refuses a PUBLISH over the payload limit by its fixed header: PAYLOAD_TOO_LARGE on the errors topic, no PUBACK, connection closed, nothing stored', async () => {
    const dev = await connectDevice(gw.mqttUrl, bed2)
    const gone = closed(dev.client)
    const acked = dev.publish(JSON.stringify({ ...hr(20), pad: 'x'.repeat(5000) })).then(() => 'acked', () => 'failed')
    const e = await dev.nextError((x) => x.code === 'PAYLOAD_TOO_LARGE')
    expect(e.seq).toBeNull()
    expect(e.message).toMatch(/over the limit of \d+ \(payload at most 4096 bytes\): refused by its header, NOT stored, NOT acknowledged/)
    await gone
    expect(await Promise.race([acked, new Promise((ok) => setTimeout(() => ok('no answer'), 300))])).not.toBe('acked')
    expect(rowsOf('bed-2').some((r) => r.seq === 20)).toBe(false)
    expect(metric(await metrics(), 'careledger_gateway_publish_refused_total{reason="PAYLOAD_TOO_LARGE"}')).toBeGreaterThanOrEqual(1)
    dev.client.end(true)
  })

  it('stores a repeated (device, seq) once and still acknowledges it; a reused seq with other content is quarantined as SEQ_REUSED', async () => {
    const dev = await connectDevice(gw.mqttUrl, bed1)
    const before = metric(await metrics(), 'careledger_gateway_readings_duplicate_total') ?? 0
    const reading = hr(50, 66)
    await dev.publish(reading)
    await dev.publish(reading)
    await dev.publish([reading, hr(51)])
    expect(rowsOf('bed-1').filter((r) => r.seq === 50)).toHaveLength(1)
    expect(rowsOf('bed-1').filter((r) => r.seq === 51)).toHaveLength(1)
    expect(metric(await metrics(), 'careledger_gateway_readings_duplicate_total')).toBe(before + 2)
    expect(dev.errors).toEqual([])

    await dev.publish({ ...reading, value: 99 })
    const e = await dev.nextError((x) => x.code === 'SEQ_REUSED')
    expect(e.seq).toBe(50)
    expect(rowsOf('bed-1').find((r) => r.seq === 50)?.value).toBe(66) // the stored reading is untouched
    await dev.end()
  })

  it('device move: later readings belong to the new patient, earlier ones keep theirs', async () => {
    const dev = await connectDevice(gw.mqttUrl, bed2)
    await dev.publish(hr(60))
    const moved = await careledger(['gateway', 'device', 'move', 'bed-2', '--patient', 'P-7', '--data', data.dir])
    expect(moved.code, moved.stderr).toBe(0)
    expect(moved.stdout).toContain('P-2 → P-7')
    await dev.publish(hr(61)) // same connection: no reconnect needed
    const rows = rowsOf('bed-2')
    expect(rows.find((r) => r.seq === 60)?.patientId).toBe('P-2')
    expect(rows.find((r) => r.seq === 61)?.patientId).toBe('P-7')
    const history = db.prepare('SELECT patient_id AS p, to_ts AS t FROM device_assignments WHERE device_id = ? ORDER BY from_ts').all('bed-2') as Array<{ p: string; t: number | null }>
    expect(history.map((h) => h.p)).toEqual(['P-2', 'P-7'])
    expect(history[0]!.t).not.toBeNull()
    expect(history[1]!.t).toBeNull()
    await dev.end()
  })

  it('connects over TLS with the CA printed by `careledger gateway ca`, and not without it', async () => {
    const ca = await careledger(['gateway', 'ca', '--data', data.dir])
    expect(ca.code).toBe(0)
    expect(ca.stdout).toMatch(/^-----BEGIN CERTIFICATE-----/)
    expect(ca.stderr).toContain('SHA-256 fingerprint')
    const dev = await connectDevice(gw.mqttsUrl, bed1, { ca: ca.stdout })
    await dev.publish(hr(70))
    expect(rowsOf('bed-1').find((r) => r.seq === 70)).toBeDefined()
    await dev.end()
    const localhost = await connectDevice(gw.mqttsUrl.replace('127.0.0.1', 'localhost'), bed1, { ca: ca.stdout })
    await localhost.end()
    await expect(connectDevice(gw.mqttsUrl, bed1, {})).rejects.toThrow(/self[- ]signed|certificate/i)
  })

  it('rotating the secret closes the open connection and only the new secret works; removing a device refuses it', async () => {
    const dev = await connectDevice(gw.mqttUrl, bed1)
    const wasClosed = closed(dev.client)
    const r = await careledger(['gateway', 'device', 'rotate-secret', 'bed-1', '--json', '--data', data.dir])
    expect(r.code, r.stderr).toBe(0)
    const { secret } = JSON.parse(r.stdout) as { secret: string }
    await wasClosed // the gateway noticed within its 1 s enrolment watch
    await dev.end()
    await expect(connectDevice(gw.mqttUrl, bed1)).rejects.toMatchObject({ code: 4 })
    const again = await connectDevice(gw.mqttUrl, { deviceId: 'bed-1', secret })
    await again.publish(hr(80))
    await again.end()
    bed1 = { ...bed1, secret }

    const gone = await enrol(data.dir, 'bed-gone', 'P-3')
    const g = await connectDevice(gw.mqttUrl, gone)
    const gClosed = closed(g.client)
    expect((await careledger(['gateway', 'device', 'remove', 'bed-gone', '--data', data.dir])).code).toBe(0)
    await gClosed
    await g.end()
    await expect(connectDevice(gw.mqttUrl, gone)).rejects.toMatchObject({ code: 4 })
  })

  it('serves /healthz and /metrics', async () => {
    const res = await fetch(`${gw.httpUrl}/healthz`)
    expect(res.status).toBe(200)
    const h = (await res.json()) as Record<string, any>
    expect(h).toMatchObject({
      status: 'ok',
      db: { ok: true, corruptFilesSetAside: [] },
      listeners: { mqtt: { port: gw.ports.mqtt }, mqtts: { port: gw.ports.mqtts }, http: { port: gw.ports.http } },
      disk: { full: false, budgetBytes: 1024 * 1024 * 1024 },
    })
    expect(h.uptimeSeconds).toBeGreaterThanOrEqual(0)
    expect(h.disk.usedBytes).toBeGreaterThan(0)

    const dev = await connectDevice(gw.mqttUrl, bed1)
    const m = await metrics()
    expect(metric(m, 'careledger_gateway_connected_devices')).toBe(1)
    expect(metric(m, 'careledger_gateway_readings_accepted_total')).toBe((db.prepare('SELECT count(*) AS n FROM readings').get() as { n: number }).n)
    expect(metric(m, 'careledger_gateway_storage_full')).toBe(0)
    expect(metric(m, 'careledger_gateway_disk_budget_bytes')).toBe(1024 * 1024 * 1024)
    expect(metric(m, 'careledger_gateway_commit_duration_seconds_count')).toBeGreaterThan(0)
    expect(metric(m, 'careledger_gateway_db_corruption_recovered')).toBe(0)
    expect(m).toContain('# TYPE careledger_gateway_commit_duration_seconds histogram')
    expect(m).toContain('careledger_gateway_process_resident_memory_bytes')
    await dev.end()
  })
})
